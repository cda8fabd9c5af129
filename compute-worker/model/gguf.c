/*
 * gguf.c — the validating GGUF (v2/v3) reader.
 *
 * A model file is untrusted input: it may be truncated, hand-edited or hostile. Loading is
 * therefore two steps with a hard wall between them:
 *
 *   1. Copy. The file is copied once into a memfd, the memfd is sealed against writes,
 *      shrinking and growing (and further seal changes), and mapped read-only. From then on
 *      nobody — not another process holding the fd, not a concurrent writer of the original
 *      file — can change the bytes under us, so checking once is enough (no TOCTOU), and the
 *      same fd can be handed to other processes to share the one host copy of the weights.
 *   2. Parse. One bounds-checked cursor walks the header. Every count, length and shape is
 *      checked against realm/limits.h AND against the bytes actually present before anything
 *      is allocated or read, every multiplication is overflow-checked, and every failure
 *      returns REALM_E_BAD_MODEL with one message naming the field and the offending value.
 *
 * Invariants after a successful open:
 *   I1. Every gguf_str, array and tensor data pointer lies entirely inside the mapping.
 *   I2. Keys are unique; tensor names are unique; both are non-empty.
 *   I3. Every tensor's type is known, its element count is a multiple of the type's block
 *       size, its offset is a multiple of the alignment, its bytes end inside the file, and no
 *       two tensors overlap.
 *   I4. For STRING arrays, arr.data points to a table of `count` struct gguf_str built at open
 *       time (so gguf_arr_str() is O(1)); for other arrays it points at the raw elements.
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "realm/error.h"
#include "realm/limits.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_COPY_CHUNK (8u << 20) /* bytes per read() while copying into the memfd */

/* A KV entry as stored: the public struct plus nothing else, kept separate so the public
 * pointers stay stable (the arrays are allocated once, never reallocated after parsing). */
struct gguf_file {
  int fd;                       /* sealed memfd holding the whole file */
  const uint8_t *base;          /* read-only MAP_SHARED mapping of fd (NULL when size is 0) */
  size_t size;                  /* bytes in the file */
  size_t map_size;              /* bytes mapped: size, rounded up to 2 MiB for huge pages */
  bool huge;                    /* the memfd is hugetlbfs-backed (2 MiB pages) */
  uint32_t version;             /* 2 or 3 */
  uint32_t alignment;           /* general.alignment or 32 */
  uint64_t data_offset;         /* start of the tensor data section in the file */
  uint64_t n_kv;
  struct gguf_kv *kvs;          /* [n_kv], in file order */
  const struct gguf_kv **kv_sorted;         /* [n_kv], sorted by key, for lookup */
  uint64_t n_tensors;
  struct gguf_tensor *tensors;  /* [n_tensors], in file order */
  const struct gguf_tensor **tensor_sorted; /* [n_tensors], sorted by name, for lookup */
  struct gguf_str *str_tables;  /* one allocation backing every STRING array's table (I4) */
};

/* ------------------------------------------------------------------------------------------ */
/* type tables                                                                                 */

const char *ggml_type_name(enum ggml_type t) {
  switch (t) {
  case GGML_TYPE_F32: return "f32";
  case GGML_TYPE_F16: return "f16";
  case GGML_TYPE_Q4_0: return "q4_0";
  case GGML_TYPE_Q8_0: return "q8_0";
  case GGML_TYPE_BF16: return "bf16";
  }
  return "unknown";
}

uint32_t ggml_type_block_elems(enum ggml_type t) {
  switch (t) {
  case GGML_TYPE_F32:
  case GGML_TYPE_F16:
  case GGML_TYPE_BF16: return 1;
  case GGML_TYPE_Q4_0:
  case GGML_TYPE_Q8_0: return 32;
  }
  return 0;
}

uint32_t ggml_type_block_bytes(enum ggml_type t) {
  switch (t) {
  case GGML_TYPE_F32: return 4;
  case GGML_TYPE_F16:
  case GGML_TYPE_BF16: return 2;
  case GGML_TYPE_Q4_0: return 18; /* f16 scale + 16 bytes of 4-bit quants */
  case GGML_TYPE_Q8_0: return 34; /* f16 scale + 32 int8 quants */
  }
  return 0;
}

const char *gguf_value_type_name(enum gguf_value_type t) {
  static const char *const names[] = {"u8",   "i8",   "u16",    "i16", "u32", "i32", "f32",
                                      "bool", "string", "array", "u64", "i64", "f64"};
  return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

/* Size in bytes of one scalar of type T, 0 for STRING/ARRAY/unknown. */
static size_t value_type_size(uint32_t t) {
  switch (t) {
  case GGUF_VALUE_UINT8:
  case GGUF_VALUE_INT8:
  case GGUF_VALUE_BOOL: return 1;
  case GGUF_VALUE_UINT16:
  case GGUF_VALUE_INT16: return 2;
  case GGUF_VALUE_UINT32:
  case GGUF_VALUE_INT32:
  case GGUF_VALUE_FLOAT32: return 4;
  case GGUF_VALUE_UINT64:
  case GGUF_VALUE_INT64:
  case GGUF_VALUE_FLOAT64: return 8;
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* the bounds-checked cursor                                                                   */

struct cursor {
  const uint8_t *p; /* mapping base */
  size_t size;      /* bytes in the mapping */
  size_t pos;       /* next byte to read */
  char *err;
  size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int fail(struct cursor *c, const char *fmt, ...) {
  if (c->err && c->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
  }
  return REALM_E_BAD_MODEL;
}

static size_t remaining(const struct cursor *c) { return c->size - c->pos; }

/* Copies N bytes out (the mapping has no alignment guarantee at arbitrary positions). */
static bool take(struct cursor *c, void *out, size_t n) {
  if (remaining(c) < n) return false;
  memcpy(out, c->p + c->pos, n);
  c->pos += n;
  return true;
}

/* Little-endian readers. The project targets little-endian hosts (x86-64, aarch64), where
 * GGUF's byte order is the native one; a big-endian build would need swaps here. */
static bool take_u32(struct cursor *c, uint32_t *v) { return take(c, v, sizeof *v); }
static bool take_u64(struct cursor *c, uint64_t *v) { return take(c, v, sizeof *v); }

/* A printable rendering of a name from the file for error messages: at most 64 bytes, bytes
 * outside printable ASCII shown as '?', so a hostile name cannot inject terminal escapes. */
struct shown {
  char s[72];
};

static struct shown show(struct gguf_str str) {
  struct shown out;
  size_t n = str.len < 64 ? (size_t)str.len : 64, i;
  for (i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)str.data[i];
    out.s[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
  }
  if (str.len > 64) {
    memcpy(out.s + i, "...", 3);
    i += 3;
  }
  out.s[i] = '\0';
  return out;
}

/* Reads a gguf string (u64 length + bytes) of at most MAX bytes. WHAT names the field. */
static int take_str(struct cursor *c, struct gguf_str *out, uint64_t max, const char *what) {
  uint64_t len;
  size_t at = c->pos;
  if (!take_u64(c, &len))
    return fail(c, "%s: string length truncated at byte %zu (file is %zu bytes)", what, at,
                c->size);
  if (len > max)
    return fail(c, "%s: string length %llu exceeds the limit of %llu bytes", what,
                (unsigned long long)len, (unsigned long long)max);
  if (len > remaining(c))
    return fail(c, "%s: string length %llu exceeds the %zu bytes left in the file", what,
                (unsigned long long)len, remaining(c));
  out->len = len;
  out->data = (const char *)(c->p + c->pos);
  c->pos += (size_t)len;
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* metadata                                                                                    */

/* Reads one scalar of type T into KV's union (widened). */
static void decode_scalar(uint32_t t, const uint8_t *src, struct gguf_kv *kv) {
  switch (t) {
  case GGUF_VALUE_UINT8: kv->v.u64 = src[0]; break;
  case GGUF_VALUE_BOOL: kv->v.u64 = src[0] != 0; break;
  case GGUF_VALUE_INT8: kv->v.i64 = (int8_t)src[0]; break;
  case GGUF_VALUE_UINT16: { uint16_t x; memcpy(&x, src, 2); kv->v.u64 = x; break; }
  case GGUF_VALUE_INT16: { int16_t x; memcpy(&x, src, 2); kv->v.i64 = x; break; }
  case GGUF_VALUE_UINT32: { uint32_t x; memcpy(&x, src, 4); kv->v.u64 = x; break; }
  case GGUF_VALUE_INT32: { int32_t x; memcpy(&x, src, 4); kv->v.i64 = x; break; }
  case GGUF_VALUE_FLOAT32: { float x; memcpy(&x, src, 4); kv->v.f64 = x; break; }
  case GGUF_VALUE_UINT64: { uint64_t x; memcpy(&x, src, 8); kv->v.u64 = x; break; }
  case GGUF_VALUE_INT64: { int64_t x; memcpy(&x, src, 8); kv->v.i64 = x; break; }
  case GGUF_VALUE_FLOAT64: { double x; memcpy(&x, src, 8); kv->v.f64 = x; break; }
  }
}

/* Parses the value of KV number I (key already read). String arrays are only validated here;
 * their tables are filled in a second pass once the total element count is known. */
static int parse_value(struct cursor *c, uint64_t i, struct gguf_kv *kv, uint64_t *str_elems) {
  struct shown key = show(kv->key);
  uint32_t t;
  if (!take_u32(c, &t))
    return fail(c, "kv %llu ('%s'): value type truncated", (unsigned long long)i, key.s);
  if (t > GGUF_VALUE_FLOAT64)
    return fail(c, "kv %llu ('%s'): unknown value type %u", (unsigned long long)i, key.s, t);
  kv->type = (enum gguf_value_type)t;
  if (t == GGUF_VALUE_STRING) {
    char what[128];
    snprintf(what, sizeof what, "kv '%s' value", key.s);
    return take_str(c, &kv->v.str, REALM_GGUF_MAX_STRING_BYTES, what);
  }
  if (t != GGUF_VALUE_ARRAY) {
    size_t sz = value_type_size(t);
    if (remaining(c) < sz)
      return fail(c, "kv '%s': %s value truncated", key.s, gguf_value_type_name(t));
    decode_scalar(t, c->p + c->pos, kv);
    c->pos += sz;
    return 0;
  }
  uint32_t et;
  uint64_t count;
  if (!take_u32(c, &et) || !take_u64(c, &count))
    return fail(c, "kv '%s': array header truncated", key.s);
  if (et == GGUF_VALUE_ARRAY)
    return fail(c, "kv '%s': array of arrays is not supported (nested arrays refused)", key.s);
  if (et > GGUF_VALUE_FLOAT64)
    return fail(c, "kv '%s': unknown array element type %u", key.s, et);
  if (count > REALM_GGUF_MAX_ARRAY_ELEMS)
    return fail(c, "kv '%s': array length %llu exceeds the limit of %llu elements", key.s,
                (unsigned long long)count, (unsigned long long)REALM_GGUF_MAX_ARRAY_ELEMS);
  kv->v.arr.elem_type = (enum gguf_value_type)et;
  kv->v.arr.count = count;
  kv->v.arr.data = c->p + c->pos;
  if (et != GGUF_VALUE_STRING) {
    uint64_t bytes;
    if (__builtin_mul_overflow(count, (uint64_t)value_type_size(et), &bytes) ||
        bytes > remaining(c))
      return fail(c, "kv '%s': array length %llu x %zu-byte %s exceeds the %zu bytes left in "
                  "the file", key.s, (unsigned long long)count, value_type_size(et),
                  gguf_value_type_name(et), remaining(c));
    c->pos += (size_t)bytes;
    return 0;
  }
  /* Each string element needs at least its 8-byte length: refuse impossible counts before
   * walking (bounds the walk and the later table allocation by the file size). */
  if (count > remaining(c) / 8)
    return fail(c, "kv '%s': array length %llu of strings exceeds the %zu bytes left in the "
                "file", key.s, (unsigned long long)count, remaining(c));
  for (uint64_t j = 0; j < count; j++) {
    uint64_t len;
    /* No message formatting on the hot path: vocabularies hold 100k+ strings. */
    if (!take_u64(c, &len))
      return fail(c, "kv '%s' element %llu: string length truncated", key.s,
                  (unsigned long long)j);
    if (len > REALM_GGUF_MAX_STRING_BYTES || len > remaining(c))
      return fail(c, "kv '%s' element %llu: string length %llu exceeds the %s", key.s,
                  (unsigned long long)j, (unsigned long long)len,
                  len > REALM_GGUF_MAX_STRING_BYTES ? "string limit" : "bytes left in the file");
    c->pos += (size_t)len;
  }
  *str_elems += count;
  return 0;
}

/* Fills the gguf_str tables of every STRING array (invariant I4). The values were validated
 * by parse_value, so this walk cannot leave the mapping. */
static int build_string_tables(struct gguf_file *f, uint64_t total, char *err, size_t errlen) {
  if (total == 0) return 0;
  f->str_tables = calloc((size_t)total, sizeof *f->str_tables);
  if (!f->str_tables) {
    snprintf(err, errlen, "out of memory for %llu string array elements",
             (unsigned long long)total);
    return REALM_E_NOMEM;
  }
  struct gguf_str *next = f->str_tables;
  for (uint64_t i = 0; i < f->n_kv; i++) {
    struct gguf_kv *kv = &f->kvs[i];
    if (kv->type != GGUF_VALUE_ARRAY || kv->v.arr.elem_type != GGUF_VALUE_STRING) continue;
    const uint8_t *p = kv->v.arr.data;
    for (uint64_t j = 0; j < kv->v.arr.count; j++) {
      uint64_t len;
      memcpy(&len, p, 8);
      next[j].len = len;
      next[j].data = (const char *)p + 8;
      p += 8 + len;
    }
    kv->v.arr.data = (const uint8_t *)next;
    next += kv->v.arr.count;
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* sorting and lookup                                                                          */

static int str_cmp(struct gguf_str a, struct gguf_str b) {
  size_t n = a.len < b.len ? (size_t)a.len : (size_t)b.len;
  int r = n ? memcmp(a.data, b.data, n) : 0;
  if (r) return r;
  return a.len < b.len ? -1 : a.len > b.len;
}

static int kv_ptr_cmp(const void *a, const void *b) {
  return str_cmp((*(const struct gguf_kv *const *)a)->key, (*(const struct gguf_kv *const *)b)->key);
}

static int tensor_ptr_name_cmp(const void *a, const void *b) {
  return str_cmp((*(const struct gguf_tensor *const *)a)->name,
                 (*(const struct gguf_tensor *const *)b)->name);
}

static int tensor_ptr_offset_cmp(const void *a, const void *b) {
  const struct gguf_tensor *x = *(const struct gguf_tensor *const *)a;
  const struct gguf_tensor *y = *(const struct gguf_tensor *const *)b;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static struct gguf_str cstr(const char *s) {
  struct gguf_str r = {strlen(s), s};
  return r;
}

/* ------------------------------------------------------------------------------------------ */
/* tensors                                                                                     */

static int parse_tensor_info(struct cursor *c, uint64_t i, struct gguf_tensor *t) {
  char what[64];
  snprintf(what, sizeof what, "tensor %llu name", (unsigned long long)i);
  int rc = take_str(c, &t->name, REALM_GGUF_MAX_TENSOR_NAME_BYTES, what);
  if (rc < 0) return rc;
  struct shown name = show(t->name);
  if (t->name.len == 0) return fail(c, "tensor %llu: empty name", (unsigned long long)i);
  if (!take_u32(c, &t->n_dims)) return fail(c, "tensor '%s': n_dims truncated", name.s);
  if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
    return fail(c, "tensor '%s': n_dims %u is not in 1..%d", name.s, t->n_dims, GGUF_MAX_DIMS);
  uint64_t nelem = 1;
  for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
  for (uint32_t d = 0; d < t->n_dims; d++) {
    if (!take_u64(c, &t->ne[d])) return fail(c, "tensor '%s': ne[%u] truncated", name.s, d);
    if (t->ne[d] < 1 || t->ne[d] > REALM_GGUF_MAX_DIM)
      return fail(c, "tensor '%s': ne[%u] %llu is not in 1..%llu", name.s, d,
                  (unsigned long long)t->ne[d], (unsigned long long)REALM_GGUF_MAX_DIM);
    if (__builtin_mul_overflow(nelem, t->ne[d], &nelem))
      return fail(c, "tensor '%s': element count overflows at ne[%u] %llu", name.s, d,
                  (unsigned long long)t->ne[d]);
  }
  uint32_t type;
  if (!take_u32(c, &type)) return fail(c, "tensor '%s': type truncated", name.s);
  uint32_t block = ggml_type_block_elems((enum ggml_type)type);
  if (block == 0)
    return fail(c, "tensor '%s': unknown or unsupported type %u (supported: f32, f16, bf16, "
                "q8_0, q4_0)", name.s, type);
  t->type = (enum ggml_type)type;
  /* Only the total element count must fill whole blocks: see docs/model-format.md on rows
   * whose length is not a multiple of the block size (the v2 Q8_0 stories260K file). */
  if (nelem % block != 0)
    return fail(c, "tensor '%s': element count %llu is not a multiple of the %s block size %u",
                name.s, (unsigned long long)nelem, ggml_type_name(t->type), block);
  if (__builtin_mul_overflow(nelem / block, (uint64_t)ggml_type_block_bytes(t->type),
                             &t->nbytes) ||
      t->nbytes > c->size)
    return fail(c, "tensor '%s': size of %llu %s elements exceeds the file size %zu", name.s,
                (unsigned long long)nelem, ggml_type_name(t->type), c->size);
  if (!take_u64(c, &t->offset)) return fail(c, "tensor '%s': offset truncated", name.s);
  return 0;
}

/* Checks invariants I3 once the data section start is known, and sets every data pointer. */
static int place_tensors(struct cursor *c, struct gguf_file *f) {
  uint64_t data_bytes = f->size - f->data_offset;
  for (uint64_t i = 0; i < f->n_tensors; i++) {
    struct gguf_tensor *t = &f->tensors[i];
    struct shown name = show(t->name);
    if (t->offset % f->alignment != 0)
      return fail(c, "tensor '%s': offset %llu is not a multiple of alignment %u", name.s,
                  (unsigned long long)t->offset, f->alignment);
    if (t->offset > data_bytes || t->nbytes > data_bytes - t->offset)
      return fail(c, "tensor '%s': offset %llu + size %llu runs past the end of the data "
                  "section (%llu bytes)", name.s, (unsigned long long)t->offset,
                  (unsigned long long)t->nbytes, (unsigned long long)data_bytes);
    t->data = f->base + f->data_offset + t->offset;
  }
  /* Overlap: sort by offset, each tensor must end before the next begins. */
  const struct gguf_tensor **by_off = malloc((size_t)f->n_tensors * sizeof *by_off);
  if (!by_off && f->n_tensors) {
    (void)fail(c, "out of memory sorting %llu tensors", (unsigned long long)f->n_tensors);
    return REALM_E_NOMEM; /* not the file's fault: callers may retry, so not BAD_MODEL */
  }
  for (uint64_t i = 0; i < f->n_tensors; i++) by_off[i] = &f->tensors[i];
  if (f->n_tensors) qsort(by_off, (size_t)f->n_tensors, sizeof *by_off, tensor_ptr_offset_cmp);
  int rc = 0;
  for (uint64_t i = 1; i < f->n_tensors; i++) {
    const struct gguf_tensor *a = by_off[i - 1], *b = by_off[i];
    if (a->offset + a->nbytes > b->offset) {
      struct shown an = show(a->name), bn = show(b->name);
      rc = fail(c, "tensor '%s': offset %llu overlaps tensor '%s' (offset %llu, %llu bytes)",
                bn.s, (unsigned long long)b->offset, an.s, (unsigned long long)a->offset,
                (unsigned long long)a->nbytes);
      break;
    }
  }
  free(by_off);
  return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* parse                                                                                       */

static int parse(struct gguf_file *f, char *err, size_t errlen) {
  struct cursor cur = {f->base, f->size, 0, err, errlen};
  struct cursor *c = &cur;
  char magic[4];
  if (f->size < 4)
    return fail(c, "file is %zu bytes, too short for the GGUF magic", f->size);
  take(c, magic, 4);
  if (memcmp(magic, GGUF_MAGIC, 4) != 0)
    return fail(c, "magic is %02x %02x %02x %02x, expected \"GGUF\" (not a GGUF file)",
                (unsigned char)magic[0], (unsigned char)magic[1], (unsigned char)magic[2],
                (unsigned char)magic[3]);
  if (!take_u32(c, &f->version)) return fail(c, "version truncated (file is %zu bytes)", f->size);
  if (f->version == 1)
    return fail(c, "GGUF version 1 is not supported (legacy u32 counts); convert with a "
                "current llama.cpp");
  if (f->version != 2 && f->version != 3)
    return fail(c, "GGUF version %u is not supported (expected 2 or 3%s)", f->version,
                (f->version & 0xffff) == 0 ? "; big-endian files are not supported" : "");
  uint64_t n_tensors, n_kv;
  if (!take_u64(c, &n_tensors)) return fail(c, "tensor_count truncated");
  if (!take_u64(c, &n_kv)) return fail(c, "kv_count truncated");
  if (n_tensors > REALM_GGUF_MAX_TENSORS)
    return fail(c, "tensor_count %llu exceeds the limit of %d", (unsigned long long)n_tensors,
                REALM_GGUF_MAX_TENSORS);
  if (n_kv > REALM_GGUF_MAX_KV)
    return fail(c, "kv_count %llu exceeds the limit of %d", (unsigned long long)n_kv,
                REALM_GGUF_MAX_KV);
  /* Smallest encodings: a KV is >= 13 bytes (key len, 1-byte key, type, 1-byte value), a
   * tensor info >= 32 bytes. Refusing impossible counts here bounds the allocations below by
   * the file size. */
  if (n_kv > remaining(c) / 13)
    return fail(c, "kv_count %llu cannot fit in the %zu bytes left in the file",
                (unsigned long long)n_kv, remaining(c));
  if (n_tensors > remaining(c) / 32)
    return fail(c, "tensor_count %llu cannot fit in the %zu bytes left in the file",
                (unsigned long long)n_tensors, remaining(c));
  f->n_kv = n_kv;
  f->n_tensors = n_tensors;
  f->kvs = calloc(n_kv ? (size_t)n_kv : 1, sizeof *f->kvs);
  f->kv_sorted = calloc(n_kv ? (size_t)n_kv : 1, sizeof *f->kv_sorted);
  f->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *f->tensors);
  f->tensor_sorted = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *f->tensor_sorted);
  if (!f->kvs || !f->kv_sorted || !f->tensors || !f->tensor_sorted) {
    snprintf(err, errlen, "out of memory for %llu kvs and %llu tensors",
             (unsigned long long)n_kv, (unsigned long long)n_tensors);
    return REALM_E_NOMEM;
  }

  uint64_t str_elems = 0;
  for (uint64_t i = 0; i < n_kv; i++) {
    struct gguf_kv *kv = &f->kvs[i];
    char what[64];
    snprintf(what, sizeof what, "kv %llu key", (unsigned long long)i);
    int rc = take_str(c, &kv->key, REALM_GGUF_MAX_KEY_BYTES, what);
    if (rc < 0) return rc;
    if (kv->key.len == 0) return fail(c, "kv %llu: empty key", (unsigned long long)i);
    rc = parse_value(c, i, kv, &str_elems);
    if (rc < 0) return rc;
    f->kv_sorted[i] = kv;
  }
  if (n_kv) qsort(f->kv_sorted, (size_t)n_kv, sizeof *f->kv_sorted, kv_ptr_cmp);
  for (uint64_t i = 1; i < n_kv; i++)
    if (str_cmp(f->kv_sorted[i - 1]->key, f->kv_sorted[i]->key) == 0)
      return fail(c, "duplicate key '%s'", show(f->kv_sorted[i]->key).s);
  int rc = build_string_tables(f, str_elems, err, errlen);
  if (rc < 0) return rc;

  f->alignment = GGUF_DEFAULT_ALIGNMENT;
  const struct gguf_kv *al = gguf_find_kv(f, "general.alignment");
  if (al) {
    uint64_t v;
    if (al->type == GGUF_VALUE_UINT8 || al->type == GGUF_VALUE_UINT16 ||
        al->type == GGUF_VALUE_UINT32 || al->type == GGUF_VALUE_UINT64)
      v = al->v.u64;
    else if ((al->type == GGUF_VALUE_INT8 || al->type == GGUF_VALUE_INT16 ||
              al->type == GGUF_VALUE_INT32 || al->type == GGUF_VALUE_INT64) && al->v.i64 >= 0)
      v = (uint64_t)al->v.i64;
    else
      return fail(c, "general.alignment has type %s, expected u32",
                  gguf_value_type_name(al->type));
    if (v == 0 || (v & (v - 1)) != 0 || v > REALM_GGUF_MAX_ALIGNMENT)
      return fail(c, "general.alignment %llu is not a power of two in 1..%d",
                  (unsigned long long)v, REALM_GGUF_MAX_ALIGNMENT);
    f->alignment = (uint32_t)v;
  }

  for (uint64_t i = 0; i < n_tensors; i++) {
    rc = parse_tensor_info(c, i, &f->tensors[i]);
    if (rc < 0) return rc;
    f->tensor_sorted[i] = &f->tensors[i];
  }
  if (n_tensors)
    qsort(f->tensor_sorted, (size_t)n_tensors, sizeof *f->tensor_sorted, tensor_ptr_name_cmp);
  for (uint64_t i = 1; i < n_tensors; i++)
    if (str_cmp(f->tensor_sorted[i - 1]->name, f->tensor_sorted[i]->name) == 0)
      return fail(c, "duplicate tensor name '%s'", show(f->tensor_sorted[i]->name).s);

  /* The data section starts at the next multiple of the alignment after the header. A file
   * without tensors (a vocabulary-only file) need not carry the padding. */
  uint64_t pad = (f->alignment - c->pos % f->alignment) % f->alignment;
  f->data_offset = c->pos + pad;
  if (f->data_offset > f->size) {
    if (n_tensors)
      return fail(c, "data section would start at byte %llu (header ends at %zu, alignment "
                  "%u) but the file is %zu bytes", (unsigned long long)f->data_offset, c->pos,
                  f->alignment, f->size);
    f->data_offset = f->size;
  }
  return place_tensors(c, f);
}

/* ------------------------------------------------------------------------------------------ */
/* loading into a sealed memfd                                                                 */

/*
 * Huge pages. One decode step reads every weight once, so with 4 KiB pages a 1 GB model is a
 * quarter of a million TLB entries per step; under a hypervisor each miss is a two-level page
 * walk. Measured here (engine_bench, docs/benchmarks.md): 2 MiB pages make a batch-1 step
 * 4-19 % faster and remove most of the run-to-run spread that came from where the 4 KiB
 * pages of each copy landed. Shared memory gets no transparent huge pages on most systems
 * (shmem_enabled = never), so the memfd is made on hugetlbfs (MFD_HUGETLB) from the pool the
 * operator reserves (vm.nr_hugepages). mmap of a hugetlbfs memfd reserves its pages up front,
 * so a pool that is too small fails there, cleanly, and AUTO falls back to small pages.
 */
#define GGUF_HUGE_PAGE (2u << 20)
#ifndef MFD_HUGE_2MB /* <linux/memfd.h> has it, but clashes with glibc's MFD_* spellings */
#define MFD_HUGE_2MB (21u << 26) /* log2(2 MiB) << MFD_HUGE_SHIFT */
#endif

/* Creates a memfd for SIZE bytes of file (hugetlbfs-backed when HUGE) and maps it writable
 * so the caller can fill it; *ret_map_size is what was mapped. */
static int memfd_create_sized(size_t size, bool huge, int *ret_fd, uint8_t **ret_map,
                              size_t *ret_map_size, char *err, size_t errlen) {
  size_t map_size = size;
  if (huge) {
    if (size > SIZE_MAX - GGUF_HUGE_PAGE) {
      snprintf(err, errlen, "%zu bytes cannot be rounded to huge pages", size);
      return REALM_E_TOO_LARGE;
    }
    map_size = (size + GGUF_HUGE_PAGE - 1) & ~(size_t)(GGUF_HUGE_PAGE - 1);
  }
  int fd = memfd_create("realm-gguf",
                        MFD_CLOEXEC | MFD_ALLOW_SEALING | (huge ? MFD_HUGETLB | MFD_HUGE_2MB : 0));
  if (fd < 0) {
    int e = errno;
    snprintf(err, errlen, "memfd_create%s: %s", huge ? " (hugetlbfs, 2 MiB pages)" : "",
             strerror(e));
    return realm_err_from_errno(e);
  }
  if (ftruncate(fd, (off_t)map_size) < 0) {
    int e = errno;
    snprintf(err, errlen, "ftruncate memfd to %zu bytes: %s", map_size, strerror(e));
    close(fd);
    return realm_err_from_errno(e);
  }
  uint8_t *map = NULL;
  if (map_size) {
    map = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
      int e = errno;
      if (huge)
        snprintf(err, errlen, "mapping %zu bytes in 2 MiB huge pages: %s (the pool, "
                 "vm.nr_hugepages, needs %zu free pages)", map_size, strerror(e),
                 map_size / GGUF_HUGE_PAGE);
      else
        snprintf(err, errlen, "mmap memfd of %zu bytes: %s", map_size, strerror(e));
      close(fd);
      return realm_err_from_errno(e);
    }
  }
  *ret_fd = fd;
  *ret_map = map;
  *ret_map_size = map_size;
  return 0;
}

/* memfd_create_sized as PAGES asks: AUTO tries huge pages first and takes small ones when
 * the kernel or the pool cannot give them. Sets f->fd, f->map_size and f->huge. */
static int memfd_for(struct gguf_file *f, enum gguf_pages pages, uint8_t **ret_map, char *err,
                     size_t errlen) {
  if (pages != GGUF_PAGES_SMALL && f->size > 0) {
    int rc = memfd_create_sized(f->size, true, &f->fd, ret_map, &f->map_size, err, errlen);
    if (rc == 0) {
      f->huge = true;
      return 0;
    }
    if (pages == GGUF_PAGES_HUGE) return rc;
  }
  f->huge = false;
  return memfd_create_sized(f->size, false, &f->fd, ret_map, &f->map_size, err, errlen);
}

/* Drops the writable mapping, seals FD and maps it read-only into F. F_SEAL_WRITE requires
 * that no writable shared mapping exists, hence the munmap first. */
static int seal_and_map(struct gguf_file *f, uint8_t *wmap, char *err, size_t errlen) {
  if (wmap) munmap(wmap, f->map_size);
  if (fcntl(f->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
    int e = errno;
    snprintf(err, errlen, "sealing the model memfd: %s", strerror(e));
    return realm_err_from_errno(e);
  }
  if (f->map_size) {
    void *map = mmap(NULL, f->map_size, PROT_READ, MAP_SHARED, f->fd, 0);
    if (map == MAP_FAILED) {
      int e = errno;
      snprintf(err, errlen, "mmap sealed model of %zu bytes: %s", f->map_size, strerror(e));
      return realm_err_from_errno(e);
    }
    f->base = map;
  }
  return 0;
}

static struct gguf_file *file_new(void) {
  struct gguf_file *f = calloc(1, sizeof *f);
  if (f) f->fd = -1;
  return f;
}

void gguf_close(struct gguf_file *f) {
  if (!f) return;
  if (f->base) munmap((void *)f->base, f->map_size);
  if (f->fd >= 0) close(f->fd);
  free(f->kvs);
  free(f->kv_sorted);
  free(f->tensors);
  free(f->tensor_sorted);
  free(f->str_tables);
  free(f);
}

/* Parses F (mapped) and hands it out, or closes it. */
static int finish_open(struct gguf_file *f, struct gguf_file **ret_file, char *err,
                       size_t errlen) {
  int rc = parse(f, err, errlen);
  if (rc < 0) {
    gguf_close(f);
    return rc;
  }
  *ret_file = f;
  return 0;
}

int gguf_open_buffer(const void *buf, size_t len, struct gguf_file **ret_file, char *err,
                     size_t errlen) {
  char dummy[1];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof dummy;
  }
  if (!ret_file || (!buf && len)) {
    snprintf(err, errlen, "gguf_open_buffer: invalid argument");
    return REALM_E_INVALID_ARGUMENT;
  }
  struct gguf_file *f = file_new();
  if (!f) {
    snprintf(err, errlen, "out of memory");
    return REALM_E_NOMEM;
  }
  f->size = len;
  uint8_t *wmap = NULL;
  int rc = memfd_for(f, GGUF_PAGES_SMALL, &wmap, err, errlen);
  if (rc < 0) {
    gguf_close(f);
    return rc;
  }
  if (len) memcpy(wmap, buf, len);
  rc = seal_and_map(f, wmap, err, errlen);
  if (rc < 0) {
    gguf_close(f);
    return rc;
  }
  return finish_open(f, ret_file, err, errlen);
}

int gguf_open(const char *path, struct gguf_file **ret_file, char *err, size_t errlen) {
  /* Small pages: most opens are brief (a runner reading the vocabulary, realmctl inspect) and
   * must not take the huge page pool from the worker that starts beside them. */
  return gguf_open_pages(path, GGUF_PAGES_SMALL, ret_file, err, errlen);
}

int gguf_open_pages(const char *path, enum gguf_pages pages, struct gguf_file **ret_file,
                    char *err, size_t errlen) {
  char dummy[1];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof dummy;
  }
  if (!path || !ret_file) {
    snprintf(err, errlen, "gguf_open: invalid argument");
    return REALM_E_INVALID_ARGUMENT;
  }
  int src = open(path, O_RDONLY | O_CLOEXEC);
  if (src < 0) {
    int e = errno;
    snprintf(err, errlen, "%s: %s", path, strerror(e));
    return e == ENOENT ? REALM_E_NOT_FOUND : realm_err_from_errno(e);
  }
  struct stat st;
  if (fstat(src, &st) < 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "%s: not a regular file", path);
    close(src);
    return REALM_E_BAD_MODEL;
  }
  if ((uint64_t)st.st_size > REALM_GGUF_MAX_FILE_BYTES || (uint64_t)st.st_size > SIZE_MAX) {
    snprintf(err, errlen, "%s: file size %lld exceeds the limit of %llu bytes", path,
             (long long)st.st_size, (unsigned long long)REALM_GGUF_MAX_FILE_BYTES);
    close(src);
    return REALM_E_BAD_MODEL;
  }
  struct gguf_file *f = file_new();
  if (!f) {
    close(src);
    snprintf(err, errlen, "out of memory");
    return REALM_E_NOMEM;
  }
  f->size = (size_t)st.st_size;
  uint8_t *wmap = NULL;
  int rc = memfd_for(f, pages, &wmap, err, errlen);
  if (rc < 0) {
    if (pages == GGUF_PAGES_HUGE) {
      char why[384];
      snprintf(why, sizeof why, "%s", err);
      snprintf(err, errlen, "%s: huge pages asked for: %s", path, why);
    }
    close(src);
    gguf_close(f);
    return rc;
  }
  /* read() straight into the memfd's pages: one copy, no bounce buffer. */
  size_t done = 0;
  while (done < f->size) {
    size_t want = f->size - done < GGUF_COPY_CHUNK ? f->size - done : GGUF_COPY_CHUNK;
    ssize_t n = read(src, wmap + done, want);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : 0;
      if (e)
        snprintf(err, errlen, "%s: read at byte %zu: %s", path, done, strerror(e));
      else
        snprintf(err, errlen, "%s: file shrank while being read (%zu of %zu bytes)", path,
                 done, f->size);
      munmap(wmap, f->map_size);
      close(src);
      gguf_close(f);
      return e ? REALM_E_IO : REALM_E_BAD_MODEL;
    }
    done += (size_t)n;
  }
  close(src);
  rc = seal_and_map(f, wmap, err, errlen);
  if (rc < 0) {
    gguf_close(f);
    return rc;
  }
  return finish_open(f, ret_file, err, errlen);
}

/* ------------------------------------------------------------------------------------------ */
/* accessors                                                                                   */

uint32_t gguf_version(const struct gguf_file *f) { return f->version; }
uint32_t gguf_alignment(const struct gguf_file *f) { return f->alignment; }
uint64_t gguf_data_offset(const struct gguf_file *f) { return f->data_offset; }
uint64_t gguf_kv_count(const struct gguf_file *f) { return f->n_kv; }
uint64_t gguf_tensor_count(const struct gguf_file *f) { return f->n_tensors; }
int gguf_memfd(const struct gguf_file *f) { return f->fd; }
size_t gguf_mapped_size(const struct gguf_file *f) { return f->size; }
bool gguf_huge_pages(const struct gguf_file *f) { return f->huge; }

static const char *const pages_names[] = {[GGUF_PAGES_AUTO] = "auto", [GGUF_PAGES_HUGE] = "huge",
                                          [GGUF_PAGES_SMALL] = "small"};

const char *gguf_pages_name(enum gguf_pages p) {
  return (unsigned)p < sizeof pages_names / sizeof *pages_names ? pages_names[p] : "?";
}

int gguf_pages_from_name(const char *name) {
  for (int i = 0; name && i < (int)(sizeof pages_names / sizeof *pages_names); i++)
    if (strcmp(name, pages_names[i]) == 0) return i;
  return -1;
}
const void *gguf_mapped_base(const struct gguf_file *f) { return f->base; }

const struct gguf_kv *gguf_kv_at(const struct gguf_file *f, uint64_t i) {
  return i < f->n_kv ? &f->kvs[i] : NULL;
}

const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *f, uint64_t i) {
  return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const struct gguf_kv *gguf_find_kv(const struct gguf_file *f, const char *key) {
  if (!f || !key) return NULL;
  struct gguf_kv probe;
  probe.key = cstr(key);
  const struct gguf_kv *pp = &probe;
  const struct gguf_kv **hit =
      f->n_kv ? bsearch(&pp, f->kv_sorted, (size_t)f->n_kv, sizeof *f->kv_sorted, kv_ptr_cmp)
              : NULL;
  return hit ? *hit : NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name) {
  if (!f || !name) return NULL;
  struct gguf_tensor probe;
  probe.name = cstr(name);
  const struct gguf_tensor *pp = &probe;
  const struct gguf_tensor **hit =
      f->n_tensors ? bsearch(&pp, f->tensor_sorted, (size_t)f->n_tensors,
                             sizeof *f->tensor_sorted, tensor_ptr_name_cmp)
                   : NULL;
  return hit ? *hit : NULL;
}

static bool is_unsigned_type(enum gguf_value_type t) {
  return t == GGUF_VALUE_UINT8 || t == GGUF_VALUE_UINT16 || t == GGUF_VALUE_UINT32 ||
         t == GGUF_VALUE_UINT64;
}

static bool is_signed_type(enum gguf_value_type t) {
  return t == GGUF_VALUE_INT8 || t == GGUF_VALUE_INT16 || t == GGUF_VALUE_INT32 ||
         t == GGUF_VALUE_INT64;
}

int gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *ret) {
  const struct gguf_kv *kv = gguf_find_kv(f, key);
  if (!kv) return REALM_E_NOT_FOUND;
  if (is_unsigned_type(kv->type) && kv->v.u64 <= UINT32_MAX) {
    *ret = (uint32_t)kv->v.u64;
    return 0;
  }
  if (is_signed_type(kv->type) && kv->v.i64 >= 0 && kv->v.i64 <= (int64_t)UINT32_MAX) {
    *ret = (uint32_t)kv->v.i64;
    return 0;
  }
  return REALM_E_BAD_MODEL;
}

int gguf_get_i32(const struct gguf_file *f, const char *key, int32_t *ret) {
  const struct gguf_kv *kv = gguf_find_kv(f, key);
  if (!kv) return REALM_E_NOT_FOUND;
  if (is_unsigned_type(kv->type) && kv->v.u64 <= INT32_MAX) {
    *ret = (int32_t)kv->v.u64;
    return 0;
  }
  if (is_signed_type(kv->type) && kv->v.i64 >= INT32_MIN && kv->v.i64 <= INT32_MAX) {
    *ret = (int32_t)kv->v.i64;
    return 0;
  }
  return REALM_E_BAD_MODEL;
}

int gguf_get_bool(const struct gguf_file *f, const char *key, int *ret) {
  const struct gguf_kv *kv = gguf_find_kv(f, key);
  if (!kv) return REALM_E_NOT_FOUND;
  if (kv->type != GGUF_VALUE_BOOL) return REALM_E_BAD_MODEL;
  *ret = kv->v.u64 != 0;
  return 0;
}

int gguf_get_f32(const struct gguf_file *f, const char *key, float *ret) {
  const struct gguf_kv *kv = gguf_find_kv(f, key);
  if (!kv) return REALM_E_NOT_FOUND;
  if (kv->type != GGUF_VALUE_FLOAT32 && kv->type != GGUF_VALUE_FLOAT64) return REALM_E_BAD_MODEL;
  *ret = (float)kv->v.f64;
  return 0;
}

int gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *ret) {
  const struct gguf_kv *kv = gguf_find_kv(f, key);
  if (!kv) return REALM_E_NOT_FOUND;
  if (kv->type != GGUF_VALUE_STRING) return REALM_E_BAD_MODEL;
  *ret = kv->v.str;
  return 0;
}

int gguf_get_arr(const struct gguf_file *f, const char *key, enum gguf_value_type elem_type,
                 const struct gguf_kv **ret) {
  const struct gguf_kv *kv = gguf_find_kv(f, key);
  if (!kv) return REALM_E_NOT_FOUND;
  if (kv->type != GGUF_VALUE_ARRAY || kv->v.arr.elem_type != elem_type) return REALM_E_BAD_MODEL;
  *ret = kv;
  return 0;
}

struct gguf_str gguf_arr_str(const struct gguf_kv *kv, uint64_t i) {
  struct gguf_str empty = {0, ""};
  if (!kv || kv->type != GGUF_VALUE_ARRAY || kv->v.arr.elem_type != GGUF_VALUE_STRING ||
      i >= kv->v.arr.count)
    return empty;
  return ((const struct gguf_str *)(const void *)kv->v.arr.data)[i];
}

int gguf_arr_f32(const struct gguf_kv *kv, uint64_t i, float *ret) {
  if (!kv || kv->type != GGUF_VALUE_ARRAY || i >= kv->v.arr.count) return REALM_E_OUT_OF_RANGE;
  if (kv->v.arr.elem_type == GGUF_VALUE_FLOAT32) {
    memcpy(ret, kv->v.arr.data + i * 4, 4);
    return 0;
  }
  if (kv->v.arr.elem_type == GGUF_VALUE_FLOAT64) {
    double d;
    memcpy(&d, kv->v.arr.data + i * 8, 8);
    *ret = (float)d;
    return 0;
  }
  return REALM_E_BAD_MODEL;
}

int gguf_arr_i64(const struct gguf_kv *kv, uint64_t i, int64_t *ret) {
  if (!kv || kv->type != GGUF_VALUE_ARRAY || i >= kv->v.arr.count) return REALM_E_OUT_OF_RANGE;
  struct gguf_kv tmp = {0}; /* decode_scalar fills the member the type selects */
  enum gguf_value_type et = kv->v.arr.elem_type;
  size_t sz = value_type_size(et);
  if (!is_unsigned_type(et) && !is_signed_type(et) && et != GGUF_VALUE_BOOL)
    return REALM_E_BAD_MODEL;
  decode_scalar(et, kv->v.arr.data + i * sz, &tmp);
  if (is_signed_type(et)) {
    *ret = tmp.v.i64;
  } else {
    if (tmp.v.u64 > INT64_MAX) return REALM_E_OUT_OF_RANGE;
    *ret = (int64_t)tmp.v.u64;
  }
  return 0;
}
