/*
 * gguf.h — a GGUF (v2/v3) reader that distrusts the file.
 *
 * gguf_open() copies the file once into a memfd, seals it (no write, shrink or grow), maps it
 * read-only and parses it. Every count, string length, array length, tensor shape, type and
 * offset is checked against the limits in realm/limits.h and the bytes present; a bad file
 * fails with REALM_E_BAD_MODEL and a message naming the field and the offending value.
 * All pointers handed out point into the read-only mapping and live until gguf_close().
 */
#ifndef REALM_GGUF_H
#define REALM_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Metadata value types, numbered as in the GGUF specification. */
enum gguf_value_type {
  GGUF_VALUE_UINT8 = 0,
  GGUF_VALUE_INT8 = 1,
  GGUF_VALUE_UINT16 = 2,
  GGUF_VALUE_INT16 = 3,
  GGUF_VALUE_UINT32 = 4,
  GGUF_VALUE_INT32 = 5,
  GGUF_VALUE_FLOAT32 = 6,
  GGUF_VALUE_BOOL = 7,
  GGUF_VALUE_STRING = 8,
  GGUF_VALUE_ARRAY = 9,
  GGUF_VALUE_UINT64 = 10,
  GGUF_VALUE_INT64 = 11,
  GGUF_VALUE_FLOAT64 = 12,
};

/* Tensor element types, numbered as ggml numbers them. Only these are accepted. */
enum ggml_type {
  GGML_TYPE_F32 = 0,
  GGML_TYPE_F16 = 1,
  GGML_TYPE_Q4_0 = 2,
  GGML_TYPE_Q8_0 = 8,
  GGML_TYPE_BF16 = 30,
};

/* A string inside the mapping: NOT NUL-terminated. */
struct gguf_str {
  uint64_t len;
  const char *data;
};

struct gguf_kv {
  struct gguf_str key;
  enum gguf_value_type type;
  union {
    uint64_t u64;           /* every unsigned integer type and bool, widened */
    int64_t i64;            /* every signed integer type, widened */
    double f64;             /* FLOAT32 and FLOAT64, widened */
    struct gguf_str str;
    struct {
      enum gguf_value_type elem_type;
      uint64_t count;
      const uint8_t *data;  /* raw little-endian elements (unaligned: memcpy them out); for
                             * STRING arrays a table of `count` struct gguf_str built at open
                             * time — use gguf_arr_str() */
    } arr;
  } v;
};

#define GGUF_MAX_DIMS 4

struct gguf_tensor {
  struct gguf_str name;
  uint32_t n_dims;
  uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the fastest-varying (row length); unused dims = 1 */
  enum ggml_type type;
  uint64_t offset;            /* relative to the data section, as stored */
  uint64_t nbytes;            /* bytes the tensor occupies */
  const void *data;           /* read-only, inside the sealed mapping */
};

struct gguf_file; /* opaque */

/* Opens, copies into a sealed memfd, maps and validates PATH. On failure returns a negative
 * realm error and writes a message naming the bad field into err (errlen bytes). */
int gguf_open(const char *path, struct gguf_file **ret_file, char *err, size_t errlen);
/* Page size of the memfd. AUTO: 2 MiB huge pages from the hugetlbfs pool (vm.nr_hugepages)
 * when it has room for the whole file, else ordinary pages. HUGE: huge pages or an error
 * naming the pool. SMALL (what gguf_open does): ordinary pages. Only what computes on the
 * weights for long (the worker, benchmarks, realmctl generate) should take the pool; see
 * gguf.c for why it pays. */
enum gguf_pages { GGUF_PAGES_AUTO = 0, GGUF_PAGES_HUGE, GGUF_PAGES_SMALL };
int gguf_open_pages(const char *path, enum gguf_pages pages, struct gguf_file **ret_file,
                    char *err, size_t errlen);
/* Name of a gguf_pages value ("auto", "huge", "small") and back (-1 for an unknown name). */
const char *gguf_pages_name(enum gguf_pages p);
int gguf_pages_from_name(const char *name);
/* Same over an in-memory buffer (copied into a sealed memfd); used by tests and fuzzers. */
int gguf_open_buffer(const void *buf, size_t len, struct gguf_file **ret_file, char *err,
                     size_t errlen);
void gguf_close(struct gguf_file *f); /* accepts NULL */

uint32_t gguf_version(const struct gguf_file *f);
uint64_t gguf_kv_count(const struct gguf_file *f);
const struct gguf_kv *gguf_kv_at(const struct gguf_file *f, uint64_t i);
const struct gguf_kv *gguf_find_kv(const struct gguf_file *f, const char *key);
uint64_t gguf_tensor_count(const struct gguf_file *f);
const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *f, uint64_t i);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name);

/* Typed metadata getters: return 0 and store the value, or a negative realm error when the
 * key is missing (REALM_E_NOT_FOUND) or has another type (REALM_E_BAD_MODEL). Integer getters
 * accept any integer type whose value fits. */
int gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *ret);
int gguf_get_f32(const struct gguf_file *f, const char *key, float *ret);
int gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *ret);
/* Element I of a STRING array (bounds-checked; returns a zero-length string when out of range). */
struct gguf_str gguf_arr_str(const struct gguf_kv *kv, uint64_t i);

/* Additions beyond the first API draft. */
uint32_t gguf_alignment(const struct gguf_file *f);   /* general.alignment or 32 */
uint64_t gguf_data_offset(const struct gguf_file *f); /* file offset of the data section */
const char *gguf_value_type_name(enum gguf_value_type t); /* "u32", "string", ... */
int gguf_get_i32(const struct gguf_file *f, const char *key, int32_t *ret);
int gguf_get_bool(const struct gguf_file *f, const char *key, int *ret);
/* The ARRAY kv KEY whose elements have type ELEM_TYPE (REALM_E_NOT_FOUND / REALM_E_BAD_MODEL). */
int gguf_get_arr(const struct gguf_file *f, const char *key, enum gguf_value_type elem_type,
                 const struct gguf_kv **ret);
/* Element I of a FLOAT32/FLOAT64 array, or of any integer/bool array widened to int64.
 * REALM_E_OUT_OF_RANGE past the end, REALM_E_BAD_MODEL for another element type. */
int gguf_arr_f32(const struct gguf_kv *kv, uint64_t i, float *ret);
int gguf_arr_i64(const struct gguf_kv *kv, uint64_t i, int64_t *ret);

/* The sealed memfd holding the whole file (for sharing with other processes), its size, and
 * the read-only mapping's base address. */
int gguf_memfd(const struct gguf_file *f);
size_t gguf_mapped_size(const struct gguf_file *f);
/* True when the memfd is backed by 2 MiB huge pages (its fstat size is then rounded up). */
bool gguf_huge_pages(const struct gguf_file *f);
const void *gguf_mapped_base(const struct gguf_file *f);

/* Name of a tensor type ("f32", "q8_0", ...), block size in elements and bytes per block. */
const char *ggml_type_name(enum ggml_type t);
uint32_t ggml_type_block_elems(enum ggml_type t);
uint32_t ggml_type_block_bytes(enum ggml_type t);

#endif /* REALM_GGUF_H */
