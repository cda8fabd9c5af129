/*
 * test_gguf_write.c — the streaming writer and the quantizers.
 *
 * Round trip: a file written with every KV kind, several tensor types, a non-default alignment
 * and data streamed in awkward chunk sizes must read back with equal values. KV copy: the 32k
 * llama vocabulary copied key by key must read back identical. Quantizers: Q8_0/Q4_0 error
 * bounds on random data, exact cases, and the Q4_0 nibble layout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fp16.h"
#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"
#include "realm/error.h"
#include "realm_test.h"

/* Opens what was written to memfd FD through the path interface (exercises gguf_open). */
static int reopen(int fd, struct gguf_file **ret, char *err, size_t errlen) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  return gguf_open(path, ret, err, errlen);
}

static uint32_t lcg(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(*s >> 33);
}

static float frand(uint64_t *s) { return (float)lcg(s) / 2147483648.0f - 1.0f; } /* [-1, 1) */

TEST(writer_round_trip) {
  char err[256] = "";
  struct gguf_writer *w = NULL;
  CHECK_EQ_INT(gguf_writer_new(&w, err, sizeof err), 0);
  CHECK_EQ_INT(gguf_writer_set_alignment(w, 64), 0);
  CHECK_EQ_INT(gguf_writer_add_str(w, "general.architecture", "llama"), 0);
  CHECK_EQ_INT(gguf_writer_add_u32(w, "llama.block_count", 7), 0);
  CHECK_EQ_INT(gguf_writer_add_i32(w, "test.neg", -42), 0);
  CHECK_EQ_INT(gguf_writer_add_f32(w, "test.eps", 1e-5f), 0);
  CHECK_EQ_INT(gguf_writer_add_bool(w, "test.flag", true), 0);
  const char *strs[] = {"<unk>", "", "héllo"};
  CHECK_EQ_INT(gguf_writer_add_str_arr(w, "test.strs", strs, 3), 0);
  float fs[] = {0.5f, -1.25f, 3.0f};
  CHECK_EQ_INT(gguf_writer_add_f32_arr(w, "test.fs", fs, 3), 0);
  int32_t is[] = {1, -2, 3, 2147483647};
  CHECK_EQ_INT(gguf_writer_add_i32_arr(w, "test.is", is, 4), 0);
  /* Refusals name the problem. */
  CHECK_EQ_INT(gguf_writer_add_u32(w, "llama.block_count", 8), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "duplicate key");
  uint64_t bad_ne[1] = {33};
  CHECK_EQ_INT(gguf_writer_add_tensor(w, "bad", 1, bad_ne, GGML_TYPE_Q8_0),
               REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "block size");

  uint64_t ne_a[2] = {5, 3}, ne_b[2] = {64, 2}, ne_c[1] = {7}, ne_d[1] = {32};
  CHECK_EQ_INT(gguf_writer_add_tensor(w, "a", 2, ne_a, GGML_TYPE_F32), 0);
  CHECK_EQ_INT(gguf_writer_add_tensor(w, "b", 2, ne_b, GGML_TYPE_Q8_0), 0);
  CHECK_EQ_INT(gguf_writer_add_tensor(w, "c", 1, ne_c, GGML_TYPE_F16), 0);
  CHECK_EQ_INT(gguf_writer_add_tensor(w, "d", 1, ne_d, GGML_TYPE_Q4_0), 0);
  CHECK_EQ_INT(gguf_writer_add_tensor(w, "a", 1, ne_c, GGML_TYPE_F32), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "duplicate tensor name");

  /* Tensor bytes: a = 60, b = 4 blocks * 34 = 136, c = 14, d = 18. */
  uint8_t data[60 + 136 + 14 + 18];
  for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 13 + 1);
  uint64_t size = gguf_writer_file_size(w);
  int fd = memfd_create("gguf-write-test", MFD_CLOEXEC);
  CHECK(fd >= 0);
  CHECK_EQ_INT(gguf_writer_begin(w, fd), 0);
  CHECK_EQ_INT(gguf_writer_add_u32(w, "late", 1), REALM_E_INVALID_ARGUMENT);
  /* Chunks of 7 bytes cross every tensor boundary. */
  for (size_t off = 0; off < sizeof data; off += 7) {
    size_t n = sizeof data - off < 7 ? sizeof data - off : 7;
    CHECK_EQ_INT(gguf_writer_write(w, data + off, n), 0);
  }
  CHECK_EQ_INT(gguf_writer_write(w, data, 1), REALM_E_INVALID_ARGUMENT); /* past the end */
  CHECK_EQ_INT(gguf_writer_finish(w), 0);
  gguf_writer_free(w);
  CHECK_EQ_INT((uint64_t)lseek(fd, 0, SEEK_END), size);

  struct gguf_file *f = NULL;
  int rc = reopen(fd, &f, err, sizeof err);
  if (rc) printf("# %s\n", err);
  CHECK_EQ_INT(rc, 0);
  close(fd);
  CHECK_EQ_INT(gguf_version(f), 3);
  CHECK_EQ_INT(gguf_alignment(f), 64);
  CHECK_EQ_INT(gguf_data_offset(f) % 64, 0);
  struct gguf_str s;
  CHECK_EQ_INT(gguf_get_str(f, "general.architecture", &s), 0);
  CHECK(s.len == 5 && memcmp(s.data, "llama", 5) == 0);
  uint32_t u;
  CHECK_EQ_INT(gguf_get_u32(f, "llama.block_count", &u), 0);
  CHECK_EQ_INT(u, 7);
  int32_t i32;
  CHECK_EQ_INT(gguf_get_i32(f, "test.neg", &i32), 0);
  CHECK_EQ_INT(i32, -42);
  CHECK_EQ_INT(gguf_get_u32(f, "test.neg", &u), REALM_E_BAD_MODEL); /* negative: does not fit */
  float fv;
  CHECK_EQ_INT(gguf_get_f32(f, "test.eps", &fv), 0);
  CHECK(fv == 1e-5f);
  int flag = 0;
  CHECK_EQ_INT(gguf_get_bool(f, "test.flag", &flag), 0);
  CHECK_EQ_INT(flag, 1);
  const struct gguf_kv *kv = NULL;
  CHECK_EQ_INT(gguf_get_arr(f, "test.strs", GGUF_VALUE_STRING, &kv), 0);
  CHECK_EQ_INT(kv->v.arr.count, 3);
  for (int i = 0; i < 3; i++) {
    struct gguf_str e = gguf_arr_str(kv, (uint64_t)i);
    CHECK(e.len == strlen(strs[i]) && memcmp(e.data, strs[i], e.len) == 0);
  }
  CHECK_EQ_INT(gguf_get_arr(f, "test.fs", GGUF_VALUE_FLOAT32, &kv), 0);
  for (int i = 0; i < 3; i++) {
    CHECK_EQ_INT(gguf_arr_f32(kv, (uint64_t)i, &fv), 0);
    CHECK(fv == fs[i]);
  }
  CHECK_EQ_INT(gguf_get_arr(f, "test.is", GGUF_VALUE_INT32, &kv), 0);
  for (int i = 0; i < 4; i++) {
    int64_t v;
    CHECK_EQ_INT(gguf_arr_i64(kv, (uint64_t)i, &v), 0);
    CHECK_EQ_INT(v, is[i]);
  }
  const char *names[] = {"a", "b", "c", "d"};
  const enum ggml_type types[] = {GGML_TYPE_F32, GGML_TYPE_Q8_0, GGML_TYPE_F16, GGML_TYPE_Q4_0};
  const size_t sizes[] = {60, 136, 14, 18};
  size_t off = 0;
  for (int i = 0; i < 4; i++) {
    const struct gguf_tensor *t = gguf_find_tensor(f, names[i]);
    CHECK(t != NULL);
    CHECK_EQ_INT(t->type, types[i]);
    CHECK_EQ_INT(t->nbytes, sizes[i]);
    CHECK_EQ_INT(t->offset % 64, 0);
    CHECK(memcmp(t->data, data + off, sizes[i]) == 0);
    off += sizes[i];
  }
  CHECK_EQ_INT(gguf_find_tensor(f, "b")->ne[1], 2);
  gguf_close(f);
}

TEST(writer_finish_detects_missing_bytes) {
  char err[256] = "";
  struct gguf_writer *w = NULL;
  CHECK_EQ_INT(gguf_writer_new(&w, err, sizeof err), 0);
  uint64_t ne[1] = {4};
  CHECK_EQ_INT(gguf_writer_add_tensor(w, "t", 1, ne, GGML_TYPE_F32), 0);
  int fd = memfd_create("gguf-write-short", MFD_CLOEXEC);
  CHECK(fd >= 0);
  CHECK_EQ_INT(gguf_writer_begin(w, fd), 0);
  CHECK_EQ_INT(gguf_writer_write(w, "abcd", 4), 0);
  CHECK_EQ_INT(gguf_writer_finish(w), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "'t': only 4 of 16 bytes");
  gguf_writer_free(w);
  close(fd);
}

TEST(writer_copies_vocab_kvs) {
  char path[4096], err[256] = "";
  snprintf(path, sizeof path, "%s/vocab/ggml-vocab-llama-spm.gguf", realm_test_models_dir());
  if (access(path, R_OK) != 0) SKIP("vocab file not present");
  struct gguf_file *src = NULL;
  CHECK_EQ_INT(gguf_open(path, &src, err, sizeof err), 0);
  struct gguf_writer *w = NULL;
  CHECK_EQ_INT(gguf_writer_new(&w, err, sizeof err), 0);
  for (uint64_t i = 0; i < gguf_kv_count(src); i++)
    CHECK_EQ_INT(gguf_writer_add_kv_copy(w, gguf_kv_at(src, i)), 0);
  int fd = memfd_create("gguf-vocab-copy", MFD_CLOEXEC);
  CHECK_EQ_INT(gguf_writer_begin(w, fd), 0);
  CHECK_EQ_INT(gguf_writer_finish(w), 0);
  gguf_writer_free(w);
  struct gguf_file *f = NULL;
  CHECK_EQ_INT(reopen(fd, &f, err, sizeof err), 0);
  close(fd);
  CHECK_EQ_INT(gguf_kv_count(f), gguf_kv_count(src));
  for (uint64_t i = 0; i < gguf_kv_count(src); i++) {
    const struct gguf_kv *a = gguf_kv_at(src, i), *b = gguf_kv_at(f, i);
    CHECK(a->key.len == b->key.len && memcmp(a->key.data, b->key.data, a->key.len) == 0);
    CHECK_EQ_INT(a->type, b->type);
    if (a->type == GGUF_VALUE_ARRAY) {
      CHECK_EQ_INT(a->v.arr.count, b->v.arr.count);
      CHECK_EQ_INT(a->v.arr.elem_type, b->v.arr.elem_type);
      for (uint64_t j = 0; a->v.arr.elem_type == GGUF_VALUE_STRING && j < a->v.arr.count; j++) {
        struct gguf_str x = gguf_arr_str(a, j), y = gguf_arr_str(b, j);
        CHECK(x.len == y.len && memcmp(x.data, y.data, x.len) == 0);
      }
    } else if (a->type == GGUF_VALUE_STRING) {
      CHECK(a->v.str.len == b->v.str.len && memcmp(a->v.str.data, b->v.str.data, a->v.str.len) == 0);
    } else {
      CHECK(a->v.u64 == b->v.u64);
    }
  }
  gguf_close(f);
  gguf_close(src);
}

TEST(q8_0_round_trip_error_bound) {
  enum { N = 32 * 64 };
  static float x[N], y[N];
  static struct realm_block_q8_0 q[N / 32];
  uint64_t s = 1;
  for (int i = 0; i < N; i++) x[i] = frand(&s) * (float)(1 + i / 32); /* scales vary per block */
  quantize_row_q8_0(x, q, N);
  dequantize_row_q8_0(q, y, N);
  double worst = 0;
  for (int b = 0; b < N / 32; b++) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
    /* half a quantization step, plus the fp16 rounding of the scale (2^-11 relative) */
    double bound = amax / 127.0 * 0.5 + amax * (1.0 / 2048) + 1e-7;
    for (int j = 0; j < 32; j++) {
      double e = fabs((double)x[b * 32 + j] - y[b * 32 + j]);
      if (e / amax > worst) worst = e / amax;
      CHECK(e <= bound);
    }
  }
  printf("# q8_0 worst relative error %.5f of block max\n", worst);
  /* A zero block stays zero, and integers times a scale are exact. */
  float z[32] = {0}, zz[32];
  quantize_row_q8_0(z, q, 32);
  dequantize_row_q8_0(q, zz, 32);
  for (int j = 0; j < 32; j++) CHECK(zz[j] == 0.0f);
  for (int j = 0; j < 32; j++) z[j] = (float)(j - 16) * 0.5f;
  z[0] = 63.5f; /* amax 63.5 -> d = 0.5 exactly */
  quantize_row_q8_0(z, q, 32);
  dequantize_row_q8_0(q, zz, 32);
  CHECK_NEAR(realm_fp16_to_f32(q[0].d), 0.5, 0);
  for (int j = 0; j < 32; j++) CHECK(zz[j] == z[j]);
}

TEST(q4_0_round_trip_error_bound) {
  enum { N = 32 * 64 };
  static float x[N], y[N];
  static struct realm_block_q4_0 q[N / 32];
  uint64_t s = 7;
  for (int i = 0; i < N; i++) x[i] = frand(&s) * 0.02f * (float)(1 + i % 5);
  quantize_row_q4_0(x, q, N);
  dequantize_row_q4_0(q, y, N);
  double worst = 0;
  for (int b = 0; b < N / 32; b++) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
    double bound = amax / 8.0 * 0.5 + amax * (1.0 / 1024) + 1e-9;
    for (int j = 0; j < 32; j++) {
      double e = fabs((double)x[b * 32 + j] - y[b * 32 + j]);
      if (e / amax > worst) worst = e / amax;
      CHECK(e <= bound);
    }
  }
  printf("# q4_0 worst relative error %.5f of block max\n", worst);
}

TEST(q4_0_layout_matches_ggml) {
  /* Largest magnitude -8 (negative) -> d = 1; x = q - 8, so q = x + 8 exactly. */
  float x[32], y[32];
  for (int j = 0; j < 32; j++) x[j] = (float)((j % 16) - 8);
  x[20] = 7.0f;
  struct realm_block_q4_0 q;
  quantize_row_q4_0(x, &q, 32);
  CHECK_NEAR(realm_fp16_to_f32(q.d), 1.0, 0);
  CHECK_EQ_INT(q.qs[0], 0x00);                 /* x[0] = -8 -> 0, x[16] = -8 -> 0 */
  CHECK_EQ_INT(q.qs[3], (3) | (3 << 4));       /* x[3] = -5 -> 3, x[19] = -5 -> 3 */
  CHECK_EQ_INT(q.qs[4], (4) | (15 << 4));      /* x[4] = -4 -> 4, x[20] = 7 -> 15 */
  CHECK_EQ_INT(q.qs[15], (15) | (15 << 4));
  dequantize_row_q4_0(&q, y, 32);
  for (int j = 0; j < 32; j++) CHECK(y[j] == x[j]);
  /* Positive extreme: max 16 -> d = -2; 16 maps to quant 0. */
  for (int j = 0; j < 32; j++) x[j] = 0.0f;
  x[5] = 16.0f;
  quantize_row_q4_0(x, &q, 32);
  CHECK_NEAR(realm_fp16_to_f32(q.d), -2.0, 0);
  CHECK_EQ_INT(q.qs[5] & 0x0f, 0);
  CHECK_EQ_INT(q.qs[6] & 0x0f, 8);
}
