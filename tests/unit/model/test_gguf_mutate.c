/*
 * test_gguf_mutate.c — the GGUF reader against hostile and broken files.
 *
 * A small valid file is built byte by byte here (so every field's position is known) from a
 * set of knobs; each test turns one knob to a bad value and requires REALM_E_BAD_MODEL with a
 * message that names the field. Also: every truncation prefix of the valid file, and a bounded
 * seeded byte-flip fuzz that accepts only success or a clean BAD_MODEL (never a crash).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "realm/error.h"
#include "realm/limits.h"
#include "realm_test.h"

/* ---- a tiny byte builder ---- */

struct buf {
  uint8_t p[4096];
  size_t len;
};

static void put(struct buf *b, const void *src, size_t n) {
  if (b->len + n > sizeof b->p) abort(); /* test bug, not a reader failure */
  memcpy(b->p + b->len, src, n);
  b->len += n;
}
static void put_u32(struct buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(struct buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(struct buf *b, const char *s) {
  put_u64(b, strlen(s));
  put(b, s, strlen(s));
}

/* Knobs of the synthesized file; defaults() gives a valid one. */
struct knobs {
  uint32_t version;
  int64_t tensor_count;      /* -1: the real count */
  int64_t kv_count;          /* -1: the real count */
  uint64_t arch_len_override;/* 0: real length of "llama" */
  uint64_t arr_count_override; /* 0: real count 4 */
  int alignment_kv;          /* write general.alignment */
  uint64_t alignment;        /* its value (also used for layout when valid) */
  int dup_key;               /* add a second general.architecture */
  int nested_array;          /* add an array of arrays */
  uint32_t a_n_dims;
  uint64_t a_ne[5];
  uint32_t a_type;
  int64_t a_offset;          /* -1: computed */
  int64_t b_offset;          /* -1: computed */
  const char *b_name;
  uint32_t b_type;
  uint64_t b_ne0;
};

static struct knobs defaults(void) {
  struct knobs k = {0};
  k.version = 3;
  k.tensor_count = -1;
  k.kv_count = -1;
  k.alignment = 32;
  k.a_n_dims = 2;
  k.a_ne[0] = 8;
  k.a_ne[1] = 4;
  k.a_type = GGML_TYPE_F32;
  k.a_offset = -1;
  k.b_offset = -1;
  k.b_name = "b.weight";
  k.b_type = GGML_TYPE_Q8_0;
  k.b_ne0 = 32;
  return k;
}

/* Builds the file: 4-5 KVs, tensor "a.weight" (F32 8x4 = 128 bytes by default) and tensor
 * b (Q8_0 32 = 34 bytes), b's data ending exactly at the end of the file. */
static void build(const struct knobs *k, struct buf *b) {
  memset(b, 0, sizeof *b);
  int n_kv = 3 + (k->alignment_kv ? 1 : 0) + (k->dup_key ? 1 : 0) + (k->nested_array ? 1 : 0);
  put(b, "GGUF", 4);
  put_u32(b, k->version);
  put_u64(b, k->tensor_count >= 0 ? (uint64_t)k->tensor_count : 2);
  put_u64(b, k->kv_count >= 0 ? (uint64_t)k->kv_count : (uint64_t)n_kv);
  put_str(b, "general.architecture");
  put_u32(b, GGUF_VALUE_STRING);
  put_u64(b, k->arch_len_override ? k->arch_len_override : 5);
  put(b, "llama", 5);
  put_str(b, "test.ints");
  put_u32(b, GGUF_VALUE_ARRAY);
  put_u32(b, GGUF_VALUE_INT32);
  put_u64(b, k->arr_count_override ? k->arr_count_override : 4);
  for (int32_t i = 0; i < 4; i++) put_u32(b, (uint32_t)(i * 10 - 5));
  put_str(b, "test.strs");
  put_u32(b, GGUF_VALUE_ARRAY);
  put_u32(b, GGUF_VALUE_STRING);
  put_u64(b, 2);
  put_str(b, "hello");
  put_str(b, "");
  if (k->alignment_kv) {
    put_str(b, "general.alignment");
    put_u32(b, GGUF_VALUE_UINT32);
    put_u32(b, (uint32_t)k->alignment);
  }
  if (k->dup_key) {
    put_str(b, "general.architecture");
    put_u32(b, GGUF_VALUE_STRING);
    put_str(b, "gpt2");
  }
  if (k->nested_array) {
    put_str(b, "test.nested");
    put_u32(b, GGUF_VALUE_ARRAY);
    put_u32(b, GGUF_VALUE_ARRAY);
    put_u64(b, 1);
    put_u32(b, GGUF_VALUE_UINT8);
    put_u64(b, 1);
    put(b, "x", 1);
  }
  uint64_t align =
      (k->alignment && k->alignment <= 256 && !(k->alignment & (k->alignment - 1))) ? k->alignment : 32;
  uint64_t a_bytes = 8 * 4 * 4, b_bytes = 34;
  uint64_t a_off = 0, b_off = (a_bytes + align - 1) / align * align;
  /* tensor a */
  put_str(b, "a.weight");
  put_u32(b, k->a_n_dims);
  for (uint32_t d = 0; d < k->a_n_dims && d < 5; d++) put_u64(b, k->a_ne[d]);
  put_u32(b, k->a_type);
  put_u64(b, k->a_offset >= 0 ? (uint64_t)k->a_offset : a_off);
  /* tensor b */
  put_str(b, k->b_name);
  put_u32(b, 1);
  put_u64(b, k->b_ne0);
  put_u32(b, k->b_type);
  put_u64(b, k->b_offset >= 0 ? (uint64_t)k->b_offset : b_off);
  while (b->len % align) put(b, "", 1);
  /* b_off + b_bytes is at most 256 + 34 (alignment 256): the source must hold that many. */
  uint8_t data[512];
  for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 7);
  put(b, data, (size_t)(b_off + b_bytes));
}

/* Opens the built file; returns the code, copies the message to ERR. */
static int open_knobs(const struct knobs *k, char *err, size_t errlen) {
  struct buf b;
  build(k, &b);
  struct gguf_file *f = NULL;
  err[0] = '\0';
  int rc = gguf_open_buffer(b.p, b.len, &f, err, errlen);
  if (rc == 0) gguf_close(f);
  else if (f) return REALM_E_INTERNAL; /* ret_file must stay untouched on failure */
  printf("# rc %d: %s\n", rc, err);
  return rc;
}

#define EXPECT_BAD(k, needle)                                                     \
  do {                                                                            \
    char err_[512];                                                               \
    CHECK_EQ_INT(open_knobs(&(k), err_, sizeof err_), REALM_E_BAD_MODEL);         \
    CHECK_STR_CONTAINS(err_, needle);                                             \
  } while (0)

TEST(baseline_file_is_valid) {
  struct knobs k = defaults();
  struct buf b;
  build(&k, &b);
  struct gguf_file *f = NULL;
  char err[256] = "";
  CHECK_EQ_INT(gguf_open_buffer(b.p, b.len, &f, err, sizeof err), 0);
  CHECK_EQ_INT(gguf_tensor_count(f), 2);
  CHECK_EQ_INT(gguf_kv_count(f), 3);
  const struct gguf_kv *kv = gguf_find_kv(f, "test.ints");
  CHECK(kv && kv->type == GGUF_VALUE_ARRAY && kv->v.arr.count == 4);
  int64_t v;
  CHECK_EQ_INT(gguf_arr_i64(kv, 3, &v), 0);
  CHECK_EQ_INT(v, 25);
  CHECK_EQ_INT(gguf_arr_i64(kv, 4, &v), REALM_E_OUT_OF_RANGE);
  kv = gguf_find_kv(f, "test.strs");
  CHECK(kv != NULL);
  CHECK_EQ_INT(gguf_arr_str(kv, 0).len, 5);
  CHECK(memcmp(gguf_arr_str(kv, 0).data, "hello", 5) == 0);
  CHECK_EQ_INT(gguf_arr_str(kv, 1).len, 0);
  const struct gguf_tensor *t = gguf_find_tensor(f, "b.weight");
  CHECK(t && t->type == GGML_TYPE_Q8_0 && t->nbytes == 34);
  CHECK((const uint8_t *)t->data + 34 == (const uint8_t *)gguf_mapped_base(f) + b.len);
  gguf_close(f);
  gguf_close(NULL);
}

TEST(every_truncation_is_refused) {
  struct knobs k = defaults();
  struct buf b;
  build(&k, &b);
  CHECK(b.len < 1024); /* keeps this loop bounded */
  for (size_t len = 0; len < b.len; len++) {
    struct gguf_file *f = NULL;
    char err[256] = "";
    int rc = gguf_open_buffer(b.p, len, &f, err, sizeof err);
    if (rc != REALM_E_BAD_MODEL) printf("# prefix %zu: rc %d\n", len, rc);
    CHECK_EQ_INT(rc, REALM_E_BAD_MODEL);
    CHECK(f == NULL);
    CHECK(err[0] != '\0');
  }
}

TEST(bad_magic) {
  struct knobs k = defaults();
  struct buf b;
  build(&k, &b);
  b.p[0] = 'X';
  struct gguf_file *f = NULL;
  char err[256];
  CHECK_EQ_INT(gguf_open_buffer(b.p, b.len, &f, err, sizeof err), REALM_E_BAD_MODEL);
  CHECK_STR_CONTAINS(err, "magic");
}

TEST(version_1_refused) {
  struct knobs k = defaults();
  k.version = 1;
  EXPECT_BAD(k, "GGUF version 1 is not supported");
}

TEST(version_unknown_refused) {
  struct knobs k = defaults();
  k.version = 7;
  EXPECT_BAD(k, "version 7");
}

TEST(absurd_kv_count) {
  struct knobs k = defaults();
  k.kv_count = (int64_t)1 << 40;
  EXPECT_BAD(k, "kv_count");
  k.kv_count = REALM_GGUF_MAX_KV; /* within the limit, but cannot fit in the bytes present */
  EXPECT_BAD(k, "kv_count");
}

TEST(absurd_tensor_count) {
  struct knobs k = defaults();
  k.tensor_count = INT64_MAX;
  EXPECT_BAD(k, "tensor_count");
  k.tensor_count = 1000;
  EXPECT_BAD(k, "tensor_count");
}

TEST(kv_count_larger_than_present) {
  struct knobs k = defaults();
  k.kv_count = 5; /* parser runs into the tensor infos and must fail cleanly */
  char err[512];
  CHECK_EQ_INT(open_knobs(&k, err, sizeof err), REALM_E_BAD_MODEL);
  CHECK(err[0] != '\0');
}

TEST(absurd_string_length) {
  struct knobs k = defaults();
  k.arch_len_override = UINT64_MAX;
  EXPECT_BAD(k, "string length");
  k.arch_len_override = 1000; /* under the limit, past the end */
  EXPECT_BAD(k, "string length 1000");
}

TEST(absurd_array_length) {
  struct knobs k = defaults();
  k.arr_count_override = UINT64_MAX / 2;
  EXPECT_BAD(k, "array length");
  k.arr_count_override = 1ull << 62; /* x 4 bytes overflows 64 bits */
  EXPECT_BAD(k, "array length");
  k.arr_count_override = 10000; /* within limits, past the end */
  EXPECT_BAD(k, "array length 10000");
}

TEST(nested_array_refused) {
  struct knobs k = defaults();
  k.nested_array = 1;
  EXPECT_BAD(k, "nested");
}

TEST(duplicate_key_refused) {
  struct knobs k = defaults();
  k.dup_key = 1;
  EXPECT_BAD(k, "duplicate key 'general.architecture'");
}

TEST(n_dims_5_refused) {
  struct knobs k = defaults();
  k.a_n_dims = 5;
  k.a_ne[2] = k.a_ne[3] = k.a_ne[4] = 1;
  EXPECT_BAD(k, "n_dims 5");
  k.a_n_dims = 0;
  EXPECT_BAD(k, "n_dims 0");
}

TEST(zero_dim_refused) {
  struct knobs k = defaults();
  k.a_ne[1] = 0;
  EXPECT_BAD(k, "ne[1] 0");
}

TEST(dim_over_limit_refused) {
  struct knobs k = defaults();
  k.a_ne[0] = REALM_GGUF_MAX_DIM + 1;
  EXPECT_BAD(k, "ne[0]");
}

TEST(element_count_overflow_refused) {
  struct knobs k = defaults();
  k.a_n_dims = 4;
  k.a_ne[0] = k.a_ne[1] = k.a_ne[2] = k.a_ne[3] = REALM_GGUF_MAX_DIM;
  EXPECT_BAD(k, "overflows");
}

TEST(huge_tensor_size_refused) {
  struct knobs k = defaults();
  k.a_ne[0] = 1ull << 20;
  k.a_ne[1] = 1ull << 20; /* 4 TiB of f32 in a 400-byte file */
  EXPECT_BAD(k, "a.weight");
}

TEST(unknown_type_refused) {
  struct knobs k = defaults();
  k.a_type = 99;
  EXPECT_BAD(k, "tensor 'a.weight': unknown or unsupported type 99");
}

TEST(partial_block_refused) {
  struct knobs k = defaults();
  k.b_ne0 = 33; /* Q8_0 needs whole blocks of 32 */
  EXPECT_BAD(k, "block size 32");
}

TEST(misaligned_offset_refused) {
  struct knobs k = defaults();
  k.b_offset = 130;
  EXPECT_BAD(k, "tensor 'b.weight': offset 130 is not a multiple of alignment 32");
}

TEST(offset_past_end_refused) {
  struct knobs k = defaults();
  k.b_offset = 1 << 20;
  EXPECT_BAD(k, "offset 1048576");
  k.b_offset = (int64_t)(UINT64_MAX / 64 * 32); /* offset + size would wrap */
  EXPECT_BAD(k, "offset");
}

TEST(overlapping_tensors_refused) {
  struct knobs k = defaults();
  k.b_offset = 96; /* a covers 0..127 */
  EXPECT_BAD(k, "overlaps");
}

TEST(duplicate_tensor_name_refused) {
  struct knobs k = defaults();
  k.b_name = "a.weight";
  k.b_type = GGML_TYPE_F32; /* same name: refuse even when shapes differ */
  EXPECT_BAD(k, "duplicate tensor name 'a.weight'");
}

TEST(bad_alignment_refused) {
  struct knobs k = defaults();
  k.alignment_kv = 1;
  k.alignment = 3;
  EXPECT_BAD(k, "general.alignment 3");
  k.alignment = 0;
  EXPECT_BAD(k, "general.alignment 0");
  k.alignment = REALM_GGUF_MAX_ALIGNMENT * 2;
  EXPECT_BAD(k, "general.alignment");
}

TEST(custom_alignment_accepted) {
  struct knobs k = defaults();
  k.alignment_kv = 1;
  k.alignment = 256;
  char err[512];
  CHECK_EQ_INT(open_knobs(&k, err, sizeof err), 0);
  k.b_offset = 128 + 32; /* multiple of 32 but not of 256 */
  EXPECT_BAD(k, "alignment 256");
}

TEST(empty_tensor_name_refused) {
  struct knobs k = defaults();
  k.b_name = "";
  EXPECT_BAD(k, "empty name");
}

/* Seeded byte flips over the whole file: every outcome must be success or a clean error. */
TEST(byte_flip_fuzz_never_crashes) {
  struct knobs k = defaults();
  struct buf base, b;
  build(&k, &base);
  uint64_t s = 0x9e3779b97f4a7c15ull;
  int ok = 0, bad = 0;
  for (int iter = 0; iter < 3000; iter++) {
    b = base;
    int flips = 1 + iter % 4;
    for (int j = 0; j < flips; j++) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      size_t pos = (size_t)(s % b.len);
      b.p[pos] = (uint8_t)(s >> 32);
    }
    struct gguf_file *f = NULL;
    char err[256];
    int rc = gguf_open_buffer(b.p, b.len, &f, err, sizeof err);
    if (rc == 0) {
      ok++;
      /* Accessors stay inside the mapping for whatever was accepted. */
      for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(f, i);
        CHECK((const uint8_t *)t->data + t->nbytes <=
              (const uint8_t *)gguf_mapped_base(f) + gguf_mapped_size(f));
      }
      gguf_close(f);
    } else {
      CHECK_EQ_INT(rc, REALM_E_BAD_MODEL);
      bad++;
    }
  }
  printf("# fuzz: %d accepted, %d refused\n", ok, bad);
  CHECK(bad > 0);
}
