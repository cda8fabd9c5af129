/*
 * test_kernels.c — every SIMD matmul kernel against the scalar reference, for every weight
 * type and every kernel table this CPU has, on random data with odd row lengths (odd block
 * counts for the quantized types, which the two-block VNNI kernels finish with a half step),
 * every batch size 1..9 (the 4-row and 2-row × 8 tiles plus remainders), row ranges that do
 * not start at 0 or end on a tile; the vectorised activation quantization bit for bit
 * against the scalar one; and the quantized block layouts.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels.h"
#include "realm_test.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (float)((rng >> 40) & 0xffffff) / (float)(1 << 23) - 1.0f;
}

/* Builds ROWS rows of N elements of type T from random floats; returns row_bytes. */
static size_t make_weights(enum engine_wtype t, int rows, int n, void **ret) {
  size_t rb;
  switch (t) {
  case ENGINE_W_F32: rb = 4 * (size_t)n; break;
  case ENGINE_W_F16:
  case ENGINE_W_BF16: rb = 2 * (size_t)n; break;
  case ENGINE_W_Q8_0: rb = (size_t)n / 32 * 34; break;
  default: rb = (size_t)n / 32 * 18; break;
  }
  uint8_t *w = malloc(rb * rows);
  for (int r = 0; r < rows; r++) {
    uint8_t *row = w + rb * r;
    for (int i = 0; i < n; i++) {
      float v = frand();
      if (t == ENGINE_W_F32) memcpy(row + 4 * i, &v, 4);
      if (t == ENGINE_W_F16) {
        uint16_t h = realm_f32_to_fp16(v);
        memcpy(row + 2 * i, &h, 2);
      }
      if (t == ENGINE_W_BF16) {
        uint32_t bits;
        memcpy(&bits, &v, 4);
        uint16_t h = (uint16_t)(bits >> 16);
        memcpy(row + 2 * i, &h, 2);
      }
    }
    if (t == ENGINE_W_Q8_0 || t == ENGINE_W_Q4_0) {
      for (int b = 0; b < n / 32; b++) {
        uint16_t d = realm_f32_to_fp16(0.01f + 0.02f * (frand() + 1.0f));
        if (t == ENGINE_W_Q8_0) {
          struct realm_block_q8_0 *q = (struct realm_block_q8_0 *)(row + 34 * b);
          memcpy(&q->d, &d, 2);
          for (int i = 0; i < 32; i++) q->qs[i] = (int8_t)(frand() * 127.0f);
          if (b % 3 == 0) q->qs[5] = -128; /* never written by quantizers, legal in a file */
        } else {
          struct realm_block_q4_0 *q = (struct realm_block_q4_0 *)(row + 18 * b);
          memcpy(&q->d, &d, 2);
          for (int i = 0; i < 16; i++) q->qs[i] = (uint8_t)(rng >> (i % 56));
        }
      }
    }
  }
  *ret = w;
  return rb;
}

static void compare_isa(enum engine_isa isa) {
  const struct engine_cpu_kernels *ref = engine_cpu_kernels_scalar(), *k = engine_cpu_kernels_get(isa);
  if (!k) SKIP("ISA not supported by this CPU");
  static const int lens_float[] = {1, 7, 33, 100, 257, 1031};
  static const int lens_quant[] = {32, 64, 96, 160, 1024, 1056};
  for (int t = 0; t < ENGINE_W_COUNT; t++) {
    int quant = engine_wtype_wants_q8((enum engine_wtype)t);
    const int *lens = quant ? lens_quant : lens_float;
    int nlens = 6;
    for (int li = 0; li < nlens; li++) {
      int n = lens[li], rows = 15;
      void *w;
      size_t rb = make_weights((enum engine_wtype)t, rows, n, &w);
      for (int nb = 1; nb <= 9; nb++) {
        float *x = malloc(sizeof(float) * n * nb);
        for (int i = 0; i < n * nb; i++) x[i] = frand();
        uint8_t *xq = malloc(engine_q8_act_row_bytes(n) * nb);
        const void *xin = x;
        size_t xs = sizeof(float) * n;
        if (quant) {
          for (int b = 0; b < nb; b++)
            engine_quantize_q8_act(x + (size_t)b * n, n, xq + engine_q8_act_row_bytes(n) * b);
          xin = xq;
          xs = engine_q8_act_row_bytes(n);
        }
        float *y0 = calloc((size_t)rows * nb, sizeof(float)), *y1 = calloc((size_t)rows * nb, sizeof(float));
        float *y2 = calloc((size_t)rows * nb, sizeof(float)), *y3 = calloc((size_t)rows * nb, sizeof(float));
        ref->matmul[t](w, rb, n, 0, rows, xin, xs, nb, y0, rows);
        /* rows 0,1 untouched; two calls split at an odd row, as two threads would */
        k->matmul[t](w, rb, n, 2, 9, xin, xs, nb, y1, rows);
        k->matmul[t](w, rb, n, 9, rows, xin, xs, nb, y1, rows);
        ref->matmul_f32act[t](w, rb, n, 0, rows, x, sizeof(float) * n, nb, y2, rows);
        k->matmul_f32act[t](w, rb, n, 0, rows, x, sizeof(float) * n, nb, y3, rows);
        int bad = 0;
        for (int b = 0; b < nb && !bad; b++)
          for (int r = 0; r < rows; r++) {
            float a = y0[b * rows + r], c = y1[b * rows + r];
            double tol = 1e-4 * (1.0 + fabs(a)) + 1e-5 * n;
            if (r < 2 ? c != 0.0f : fabs(a - c) > tol) {
              printf("# %s type %d n %d nb %d b %d row %d: %.7g vs %.7g\n", k->isa_name, t, n,
                     nb, b, r, a, c);
              bad = 1;
              break;
            }
            if (fabs(y2[b * rows + r] - y3[b * rows + r]) > tol) {
              printf("# f32act %s type %d n %d: %.7g vs %.7g\n", k->isa_name, t, n,
                     y2[b * rows + r], y3[b * rows + r]);
              bad = 1;
              break;
            }
            /* The int8-activation result stays within its rounding bound of the exact one:
             * each x_i moves by at most d_x / 2 = max|x| / 254 ≤ 1/254. */
            double bound = 1e-4 * n;
            if (quant) {
              float *wr = malloc(sizeof(float) * n);
              engine_dequantize_row((enum engine_wtype)t, (const char *)w + rb * r, n, wr);
              for (int i = 0; i < n; i++) bound += fabs(wr[i]) / 254.0;
              free(wr);
            }
            if (quant && fabs(y0[b * rows + r] - y2[b * rows + r]) > bound) {
              printf("# drift type %d n %d: %.7g vs %.7g\n", t, n, y0[b * rows + r],
                     y2[b * rows + r]);
              bad = 1;
              break;
            }
          }
        free(x), free(xq), free(y0), free(y1), free(y2), free(y3);
        if (bad) {
          free(w);
          CHECK(!bad);
        }
      }
      free(w);
    }
  }
}

TEST(avx2_kernels_match_scalar) { compare_isa(ENGINE_ISA_AVX2); }
TEST(avx512_kernels_match_scalar) { compare_isa(ENGINE_ISA_AVX512); }
TEST(avx512_vnni_kernels_match_scalar) { compare_isa(ENGINE_ISA_AVX512_VNNI); }
/* The AMX table at the shapes above: 15 rows are less than one 16-row tile, so this checks
 * its VNNI fallbacks and float kernels; the tiles are checked below. */
TEST(amx_table_matches_scalar_below_one_tile) {
  if (!engine_cpu_kernels_amx()) {
    printf("# amx unavailable: %s\n", engine_cpu_amx_unavailable_reason());
    SKIP("AMX unavailable (CPU or kernel)");
  }
  compare_isa(ENGINE_ISA_AMX);
}

/* AMX tiles against the scalar reference: 40 rows (two full 16-row tiles and an 8-row tail
 * left to VNNI, or with a start at row 3, tiles that do not start on a multiple of 16),
 * batches around the tile thresholds (below ENGINE_AMX_MIN_NB, 8- and 16-wide tiles, a
 * group of 16 plus a remainder), and rows of 1, 3, 64, 67 and 129 blocks (the packed
 * activations go in chunks of 64 blocks, summed into y). */
TEST(amx_tiles_match_scalar) {
  const struct engine_cpu_kernels *ref = engine_cpu_kernels_scalar(), *k = engine_cpu_kernels_amx();
  if (!k) {
    printf("# amx unavailable: %s\n", engine_cpu_amx_unavailable_reason());
    SKIP("AMX unavailable (CPU or kernel)");
  }
  static const int lens[] = {32, 96, 2048, 32 * 67, 32 * 129};
  static const int nbs[] = {1, 3, 4, 5, 8, 9, 13, 16, 17, 20, 33};
  const int rows = 40;
  for (int t = ENGINE_W_Q8_0; t <= ENGINE_W_Q4_0; t++)
    for (int li = 0; li < 5; li++) {
      int n = lens[li];
      void *w;
      size_t rb = make_weights((enum engine_wtype)t, rows, n, &w);
      size_t xs = engine_q8_act_row_bytes(n);
      for (int bi = 0; bi < 11; bi++) {
        int nb = nbs[bi], bad = 0;
        float *x = malloc(sizeof(float) * n);
        uint8_t *xq = malloc(xs * nb);
        for (int b = 0; b < nb; b++) {
          for (int i = 0; i < n; i++) x[i] = frand() * (1.0f + (float)b);
          engine_quantize_q8_act(x, n, xq + xs * b);
        }
        float *y0 = calloc((size_t)rows * nb, sizeof(float));
        float *y1 = calloc((size_t)rows * nb, sizeof(float));
        float *y2 = calloc((size_t)rows * nb, sizeof(float));
        ref->matmul[t](w, rb, n, 0, rows, xq, xs, nb, y0, rows);
        k->matmul[t](w, rb, n, 0, 16, xq, xs, nb, y1, rows); /* as two threads would */
        k->matmul[t](w, rb, n, 16, rows, xq, xs, nb, y1, rows);
        k->matmul[t](w, rb, n, 3, rows, xq, xs, nb, y2, rows); /* rows 0..2 untouched */
        for (int b = 0; b < nb && !bad; b++)
          for (int r = 0; r < rows && !bad; r++) {
            float a = y0[b * rows + r], c = y1[b * rows + r], e = y2[b * rows + r];
            double tol = 1e-4 * (1.0 + fabs(a)) + 1e-5 * n;
            if (fabs(a - c) > tol || (r < 3 ? e != 0.0f : fabs(a - e) > tol)) {
              printf("# amx type %d n %d nb %d b %d row %d: %.7g vs %.7g / %.7g\n", t, n, nb,
                     b, r, a, c, e);
              bad = 1;
            }
          }
        free(x), free(xq), free(y0), free(y1), free(y2);
        CHECK(!bad);
        if (bad) break;
      }
      free(w);
    }
}

/* The pre-packed AMX entry (the backend packs once per matmul) gives the same bits as the
 * plain one (which packs per call), for batches below, in and across the 16-activation
 * groups, row ranges split as threads would split them, odd and chunked block counts. */
TEST(amx_packed_matmul_is_bit_identical) {
  const struct engine_cpu_kernels *k = engine_cpu_kernels_amx();
  if (!k) {
    printf("# amx unavailable: %s\n", engine_cpu_amx_unavailable_reason());
    SKIP("AMX unavailable (CPU or kernel)");
  }
  CHECK(k->q8_pack != NULL && k->matmul_packed[ENGINE_W_Q8_0] && k->matmul_packed[ENGINE_W_Q4_0]);
  CHECK(engine_cpu_kernels_avx512_vnni()->q8_pack == NULL);
  static const int lens[] = {32, 96, 768, 32 * 67, 32 * 129};
  static const int nbs[] = {1, 4, 5, 8, 9, 16, 20, 32};
  const int rows = 48;
  for (int t = ENGINE_W_Q8_0; t <= ENGINE_W_Q4_0; t++)
    for (int li = 0; li < 5; li++) {
      int n = lens[li], bad = 0;
      void *w;
      size_t rb = make_weights((enum engine_wtype)t, rows, n, &w);
      size_t xs = engine_q8_act_row_bytes(n), gb = k->q8_pack_group_bytes(n);
      CHECK_EQ_INT((int)(gb % 64), 0);
      for (int bi = 0; bi < 8 && !bad; bi++) {
        int nb = nbs[bi], groups = (nb + 15) / 16;
        float *x = malloc(sizeof(float) * n);
        uint8_t *xq = malloc(xs * nb), *xp = aligned_alloc(64, gb * groups);
        for (int b = 0; b < nb; b++) {
          for (int i = 0; i < n; i++) x[i] = frand() * (1.0f + (float)b);
          engine_quantize_q8_act(x, n, xq + xs * b);
        }
        for (int g = 0; g < groups; g++) k->q8_pack(xq, xs, n, nb, g, xp + gb * g);
        float *y0 = calloc((size_t)rows * nb, sizeof(float));
        float *y1 = calloc((size_t)rows * nb, sizeof(float));
        /* the same split both ways: which rows form 16-row tiles depends on it */
        k->matmul[t](w, rb, n, 0, 16, xq, xs, nb, y0, rows);
        k->matmul[t](w, rb, n, 16, 40, xq, xs, nb, y0, rows);
        k->matmul[t](w, rb, n, 40, rows, xq, xs, nb, y0, rows);
        k->matmul_packed[t](w, rb, n, 0, 16, xq, xs, xp, nb, y1, rows);
        k->matmul_packed[t](w, rb, n, 16, 40, xq, xs, xp, nb, y1, rows); /* 8-row tail to VNNI */
        k->matmul_packed[t](w, rb, n, 40, rows, xq, xs, xp, nb, y1, rows);
        bad = memcmp(y0, y1, sizeof(float) * rows * nb) != 0;
        if (bad) printf("# type %d n %d nb %d: packed differs\n", t, n, nb);
        free(x), free(xq), free(xp), free(y0), free(y1);
      }
      CHECK(!bad);
      free(w);
    }
}

TEST(best_table_and_isa_names) {
  CHECK(engine_cpu_kernels_best() != NULL);
  CHECK(engine_cpu_kernels_get(ENGINE_ISA_SCALAR) == engine_cpu_kernels_scalar());
  CHECK(engine_cpu_kernels_get(ENGINE_ISA_COUNT) == NULL);
  CHECK_EQ_INT(engine_cpu_isa_from_name("scalar"), ENGINE_ISA_SCALAR);
  CHECK_EQ_INT(engine_cpu_isa_from_name("avx512vnni"), ENGINE_ISA_AVX512_VNNI);
  CHECK_EQ_INT(engine_cpu_isa_from_name("amx"), ENGINE_ISA_AMX);
  /* the AMX table exists exactly when no reason against it is given */
  CHECK((engine_cpu_kernels_amx() != NULL) == (engine_cpu_amx_unavailable_reason() == NULL));
  CHECK_EQ_INT(engine_cpu_isa_from_name("auto"), -1);
  CHECK_EQ_INT(engine_cpu_isa_from_name(NULL), -1);
  CHECK_EQ_INT(engine_cpu_isa_from_name("sse9"), -2);
}

/* Every table's activation quantizer writes the same bytes as the scalar one (the integer
 * kernels are compared against the scalar kernel on the scalar quantizer's output, so a
 * different rounding here would go unnoticed there). */
TEST(simd_activation_quantization_is_bit_identical) {
  const int n = 32 * 7;
  float x[32 * 7];
  for (int i = 0; i < n; i++) x[i] = frand() * 5.0f;
  for (int i = 0; i < 32; i++) x[64 + i] = 0.0f;  /* an all-zero block: scale 0 */
  x[100] = 127.5f / 127.0f * 3.0f;                  /* values near a rounding tie */
  uint8_t ref[4 * ENGINE_Q8_ACT_PAIR_BYTES], got[4 * ENGINE_Q8_ACT_PAIR_BYTES];
  CHECK_EQ_INT((int)engine_q8_act_row_bytes(n), (int)sizeof ref);
  engine_quantize_q8_act(x, n, ref);
  for (int isa = 0; isa < ENGINE_ISA_COUNT; isa++) {
    const struct engine_cpu_kernels *k = engine_cpu_kernels_get((enum engine_isa)isa);
    if (!k) continue;
    memset(got, 0xa5, sizeof got);
    k->quantize_q8_act(x, n, got);
    CHECK(memcmp(ref, got, sizeof ref) == 0);
  }
}

TEST(scalar_f32_kernel_is_a_dot_product) {
  const float w[6] = {1, 2, 3, 4, 5, 6}, x[3] = {1, 0, -1};
  float y[2];
  engine_cpu_kernels_scalar()->matmul[ENGINE_W_F32](w, sizeof(float) * 3, 3, 0, 2, x,
                                                    sizeof x, 1, y, 2);
  CHECK_NEAR(y[0], -2.0, 0);
  CHECK_NEAR(y[1], -2.0, 0);
}

TEST(q4_0_dequantize_layout) {
  struct realm_block_q4_0 b;
  b.d = realm_f32_to_fp16(0.5f);
  for (int i = 0; i < 16; i++) b.qs[i] = (uint8_t)((15 - (i & 15)) << 4 | (i & 15));
  float out[32];
  engine_dequantize_row(ENGINE_W_Q4_0, &b, 32, out);
  CHECK_NEAR(out[0], -4.0, 0);  /* (0 - 8) * 0.5 */
  CHECK_NEAR(out[15], 3.5, 0);  /* (15 - 8) * 0.5 */
  CHECK_NEAR(out[16], 3.5, 0);  /* high nibble of byte 0 is 15 */
  CHECK_NEAR(out[31], -4.0, 0);
}

TEST(fp16_conversions) {
  CHECK_NEAR(realm_fp16_to_f32(0x3c00), 1.0, 0);
  CHECK_NEAR(realm_fp16_to_f32(0xc000), -2.0, 0);
  CHECK_NEAR(realm_fp16_to_f32(0x0001), 5.960464477539063e-08, 0); /* smallest subnormal */
  CHECK_NEAR(realm_fp16_to_f32(0x7bff), 65504.0, 0);
  CHECK_EQ_INT(realm_f32_to_fp16(1.0f), 0x3c00);
  CHECK_EQ_INT(realm_f32_to_fp16(65504.0f), 0x7bff);
  CHECK_EQ_INT(realm_f32_to_fp16(1e6f), 0x7c00);
  CHECK_EQ_INT(realm_f32_to_fp16(5.960464477539063e-08f), 0x0001);
  for (uint32_t h = 0; h < 0x7c00; h += 7) /* round trip of every 7th finite positive half */
    CHECK_EQ_INT(realm_f32_to_fp16(realm_fp16_to_f32((uint16_t)h)), h);
  CHECK_NEAR(realm_bf16_to_f32(0x3f80), 1.0, 0);
}

TEST(q8_activation_quantization_roundtrips) {
  /* 3 blocks: one full pair and a pair whose block B is missing (zero-filled) */
  float x[96], back[96];
  for (int i = 0; i < 96; i++) x[i] = frand() * 3.0f;
  uint8_t row[2 * ENGINE_Q8_ACT_PAIR_BYTES];
  CHECK_EQ_INT((int)engine_q8_act_row_bytes(96), (int)sizeof row);
  memset(row, 0x5a, sizeof row);
  engine_quantize_q8_act(x, 96, row);
  const int8_t *qs = engine_q8_act_qs(row);
  const float *d = engine_q8_act_d(row, 96);
  const int32_t *c128 = engine_q8_act_c128(row, 96), *c8 = engine_q8_act_c8(row, 96);
  for (int b = 0; b < 3; b++) {
    int32_t sum = 0;
    for (int i = 0; i < 32; i++) sum += qs[engine_q8_act_pos(b * 32 + i)];
    CHECK_EQ_INT(c128[b], -128 * sum); /* the bias corrections start each block's dot */
    CHECK_EQ_INT(c8[b], -8 * sum);
  }
  CHECK_NEAR(d[3], 0, 0); /* the missing block: zero scale, correction and quants */
  CHECK_EQ_INT(c128[3], 0);
  for (int i = 96; i < 128; i++) CHECK_EQ_INT(qs[engine_q8_act_pos(i)], 0);
  /* the positions are a permutation of the qs bytes */
  int seen[128] = {0};
  for (int i = 0; i < 128; i++) seen[engine_q8_act_pos(i)]++;
  for (int i = 0; i < 128; i++) CHECK_EQ_INT(seen[i], 1);
  /* 4-byte groups of A and B alternate: element 4 of block 0 is in the third group */
  CHECK_EQ_INT((int)engine_q8_act_pos(4), 8);
  CHECK_EQ_INT((int)engine_q8_act_pos(32), 4);
  for (int i = 0; i < 96; i++) {
    int8_t q = qs[engine_q8_act_pos(i)];
    CHECK(q != -128); /* q in [-127, 127] */
    back[i] = d[i / 32] * (float)q;
  }
  for (int i = 0; i < 96; i++) CHECK_NEAR(back[i], x[i], d[i / 32] * 0.5 + 1e-6);
}
