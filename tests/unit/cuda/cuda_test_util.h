/*
 * cuda_test_util.h — helpers shared by the suite-'cuda' tests: a deterministic random
 * source, synthetic weights in GGUF byte layout for every engine type, and the normalized
 * mean squared error that the per-op comparisons use (ggml test-backend-ops' NMSE:
 * Σ(a - b)² / Σ b², so a tolerance means the same at every magnitude).
 */
#ifndef REALM_TEST_CUDA_UTIL_H
#define REALM_TEST_CUDA_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/layout.h"
#include "model.h"

/* GGUF's block layouts, restated so these tests depend on the file format only. */
struct test_block_q8_0 {
  uint16_t d;
  int8_t qs[32];
} __attribute__((packed));
struct test_block_q4_0 {
  uint16_t d;
  uint8_t qs[16];
} __attribute__((packed));

static uint64_t cuda_test_rng = 0x9e3779b97f4a7c15ull;

static inline uint32_t rnd_u32(void) {
  cuda_test_rng ^= cuda_test_rng << 13;
  cuda_test_rng ^= cuda_test_rng >> 7;
  cuda_test_rng ^= cuda_test_rng << 17;
  return (uint32_t)(cuda_test_rng >> 16);
}

/* Uniform in [-1, 1). */
static inline float rnd_f(void) { return (float)rnd_u32() / 2147483648.0f - 1.0f; }

static inline void rnd_fill(float *x, size_t n, float scale) {
  for (size_t i = 0; i < n; i++) x[i] = scale * rnd_f();
}

/* A random normal fp16 of magnitude in [2^-(15-lo_exp)...) : sign, exponent in
 * [lo_exp, hi_exp], random mantissa — no encoder needed. */
static inline uint16_t rnd_fp16(int sign, uint32_t lo_exp, uint32_t hi_exp) {
  uint32_t e = lo_exp + rnd_u32() % (hi_exp - lo_exp + 1);
  return (uint16_t)((sign && (rnd_u32() & 1) ? 0x8000u : 0) | (e << 10) | (rnd_u32() & 0x3ffu));
}

/* A random weight of TYPE, N_OUT rows of N_IN, in the GGUF layout the CPU backend reads.
 * The caller frees w->data. */
static inline void synth_weight(enum engine_wtype type, uint32_t n_in, uint32_t n_out,
                                struct engine_weight *w) {
  size_t row;
  switch (type) {
  case ENGINE_W_F32: row = (size_t)n_in * 4; break;
  case ENGINE_W_F16:
  case ENGINE_W_BF16: row = (size_t)n_in * 2; break;
  case ENGINE_W_Q8_0: row = (size_t)n_in / 32 * sizeof(struct test_block_q8_0); break;
  default: row = (size_t)n_in / 32 * sizeof(struct test_block_q4_0); break;
  }
  unsigned char *d = malloc(row * n_out);
  for (uint32_t r = 0; r < n_out; r++) {
    unsigned char *p = d + row * r;
    for (uint32_t j = 0; j < n_in; j++) {
      float v = 0.1f * rnd_f();
      if (type == ENGINE_W_F32) memcpy(p + 4 * j, &v, 4);
      else if (type == ENGINE_W_F16) {
        uint16_t h = rnd_fp16(1, 5, 13); /* about ±2^-10 .. ±0.25 */
        memcpy(p + 2 * j, &h, 2);
      } else if (type == ENGINE_W_BF16) {
        uint32_t bits;
        memcpy(&bits, &v, 4);
        uint16_t h = (uint16_t)(bits >> 16);
        memcpy(p + 2 * j, &h, 2);
      }
    }
    if (type == ENGINE_W_Q8_0) {
      struct test_block_q8_0 *b = (struct test_block_q8_0 *)p;
      for (uint32_t i = 0; i < n_in / 32; i++) {
        b[i].d = rnd_fp16(0, 4, 6); /* 2^-11 .. 2^-9 */
        for (int j = 0; j < 32; j++) b[i].qs[j] = (int8_t)(rnd_u32() % 255 - 127);
      }
    } else if (type == ENGINE_W_Q4_0) {
      struct test_block_q4_0 *b = (struct test_block_q4_0 *)p;
      for (uint32_t i = 0; i < n_in / 32; i++) {
        b[i].d = rnd_fp16(0, 6, 8); /* 2^-9 .. 2^-7 */
        for (int j = 0; j < 16; j++) b[i].qs[j] = (uint8_t)rnd_u32();
      }
    }
  }
  *w = (struct engine_weight){.type = type, .n_in = n_in, .n_out = n_out, .row_bytes = row,
                              .data = d};
}

static inline double nmse(const float *got, const float *want, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)got[i] - want[i];
    num += d * d;
    den += (double)want[i] * want[i];
  }
  return den > 0.0 ? num / den : num;
}

static const char *const wtype_names[] = {"f32", "f16", "bf16", "q8_0", "q4_0"};

#endif /* REALM_TEST_CUDA_UTIL_H */
