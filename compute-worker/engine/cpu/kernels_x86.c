/*
 * kernels_x86.c — AVX2/FMA and AVX-512 matmul kernels.
 *
 * Each function carries its own __attribute__((target(...))) so the file compiles in the
 * portable baseline build; engine_cpu_kernels_avx2()/avx512() hand out a table only when
 * __builtin_cpu_supports says the running CPU has the instructions.
 *
 * Register tiling: one weight row against up to 4 activation vectors at once (4 independent
 * accumulators, each weight vector loaded once and used 4 times), then the remaining
 * activations one by one. Q8_0/Q4_0 blocks are multiplied as int8 with the usual
 * sign/maddubs trick: |w| (unsigned) times sign(w)·x (signed) gives the exact pair sums,
 * which madd widens to int32 before a single float scale per block.
 */
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))
#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

/* ---------------- AVX2 ---------------- */

/* Hardware fp16 → f32 (F16C): the scalar bit-twiddling version costs more than the block's
 * whole dot product. Same result for every input (both are exact). */
T_AVX2 static inline float fp16_hw(uint16_t h) { return _cvtsh_ss(h); }

T_AVX2 static inline float hsum256(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

T_AVX2 static inline __m256 load8_f32(const float *p) { return _mm256_loadu_ps(p); }
T_AVX2 static inline __m256 load8_f16(const uint16_t *p) {
  return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
T_AVX2 static inline __m256 load8_bf16(const uint16_t *p) {
  __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}
static inline float conv_f32(float v) { return v; }

#define AVX2_FLOAT_KERNEL(name, elem_t, LOAD8, CONV)                                          \
  T_AVX2 static void name(const void *w, size_t row_bytes, int n_in, int row0, int row1,   \
                          const void *x, size_t x_stride, int nb, float *y,                \
                          size_t y_stride) {                                               \
    const int n8 = n_in & ~7, n16 = n_in & ~15;                                            \
    for (int j = row0; j < row1; j++) {                                                    \
      const elem_t *row = (const elem_t *)((const char *)w + (size_t)j * row_bytes);        \
      int b = 0;                                                                           \
      for (; b + 4 <= nb; b += 4) {                                                        \
        const float *x0 = (const float *)((const char *)x + (size_t)b * x_stride);         \
        const float *x1 = (const float *)((const char *)x0 + x_stride);                    \
        const float *x2 = (const float *)((const char *)x1 + x_stride);                    \
        const float *x3 = (const float *)((const char *)x2 + x_stride);                    \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                        \
        for (int i = 0; i < n8; i += 8) {                                                  \
          __m256 wv = LOAD8(row + i);                                                      \
          a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x0 + i), a0);                           \
          a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x1 + i), a1);                           \
          a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x2 + i), a2);                           \
          a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x3 + i), a3);                           \
        }                                                                                  \
        float s0 = hsum256(a0), s1 = hsum256(a1), s2 = hsum256(a2), s3 = hsum256(a3);      \
        for (int i = n8; i < n_in; i++) {                                                  \
          float wi = CONV(row[i]);                                                         \
          s0 += wi * x0[i], s1 += wi * x1[i], s2 += wi * x2[i], s3 += wi * x3[i];          \
        }                                                                                  \
        y[(size_t)b * y_stride + j] = s0;                                                  \
        y[(size_t)(b + 1) * y_stride + j] = s1;                                            \
        y[(size_t)(b + 2) * y_stride + j] = s2;                                            \
        y[(size_t)(b + 3) * y_stride + j] = s3;                                            \
      }                                                                                    \
      for (; b < nb; b++) {                                                                \
        const float *x0 = (const float *)((const char *)x + (size_t)b * x_stride);         \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;                                          \
        int i = 0;                                                                         \
        for (; i < n16; i += 16) {                                                         \
          a0 = _mm256_fmadd_ps(LOAD8(row + i), _mm256_loadu_ps(x0 + i), a0);               \
          a1 = _mm256_fmadd_ps(LOAD8(row + i + 8), _mm256_loadu_ps(x0 + i + 8), a1);       \
        }                                                                                  \
        for (; i < n8; i += 8) a0 = _mm256_fmadd_ps(LOAD8(row + i), _mm256_loadu_ps(x0 + i), a0); \
        float s0 = hsum256(_mm256_add_ps(a0, a1));                                         \
        for (; i < n_in; i++) s0 += CONV(row[i]) * x0[i];                                  \
        y[(size_t)b * y_stride + j] = s0;                                                  \
      }                                                                                    \
    }                                                                                      \
  }

AVX2_FLOAT_KERNEL(matmul_f32_avx2, float, load8_f32, conv_f32)
AVX2_FLOAT_KERNEL(matmul_f16_avx2, uint16_t, load8_f16, engine_fp16_to_f32)
AVX2_FLOAT_KERNEL(matmul_bf16_avx2, uint16_t, load8_bf16, engine_bf16_to_f32)

/* Exact int8·int8 block dot product as 8 int32 lanes converted to float. */
T_AVX2 static inline __m256 dot_i8x32(__m256i w, __m256i x) {
  __m256i aw = _mm256_sign_epi8(w, w);
  __m256i sx = _mm256_sign_epi8(x, w);
  __m256i p16 = _mm256_maddubs_epi16(aw, sx);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

T_AVX2 static inline __m256i load_q8_0(const struct engine_block_q8_0 *b) {
  return _mm256_loadu_si256((const __m256i *)b->qs);
}
T_AVX2 static inline __m256i load_q4_0(const struct engine_block_q4_0 *b) {
  __m128i t = _mm_loadu_si128((const __m128i *)b->qs);
  __m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
  v = _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
  return _mm256_sub_epi8(v, _mm256_set1_epi8(8));
}

#define AVX2_QUANT_KERNEL(name, block_t, LOADQ)                                               \
  T_AVX2 static void name(const void *w, size_t row_bytes, int n_in, int row0, int row1,   \
                          const void *x, size_t x_stride, int nb, float *y,                \
                          size_t y_stride) {                                               \
    const int nblk = n_in / ENGINE_QK;                                                     \
    for (int j = row0; j < row1; j++) {                                                    \
      const block_t *row = (const block_t *)((const char *)w + (size_t)j * row_bytes);      \
      int b = 0;                                                                           \
      for (; b + 4 <= nb; b += 4) {                                                        \
        const struct engine_q8_act *x0 =                                                   \
            (const struct engine_q8_act *)((const char *)x + (size_t)b * x_stride);        \
        const struct engine_q8_act *x1 =                                                   \
            (const struct engine_q8_act *)((const char *)x0 + x_stride);                   \
        const struct engine_q8_act *x2 =                                                   \
            (const struct engine_q8_act *)((const char *)x1 + x_stride);                   \
        const struct engine_q8_act *x3 =                                                   \
            (const struct engine_q8_act *)((const char *)x2 + x_stride);                   \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                        \
        for (int k = 0; k < nblk; k++) {                                                   \
          __m256i wq = LOADQ(&row[k]);                                                     \
          float dw = fp16_hw(row[k].d);                                         \
          a0 = _mm256_fmadd_ps(                                                            \
              dot_i8x32(wq, _mm256_loadu_si256((const __m256i *)x0[k].qs)),               \
              _mm256_set1_ps(dw * x0[k].d), a0);                                           \
          a1 = _mm256_fmadd_ps(                                                            \
              dot_i8x32(wq, _mm256_loadu_si256((const __m256i *)x1[k].qs)),               \
              _mm256_set1_ps(dw * x1[k].d), a1);                                           \
          a2 = _mm256_fmadd_ps(                                                            \
              dot_i8x32(wq, _mm256_loadu_si256((const __m256i *)x2[k].qs)),               \
              _mm256_set1_ps(dw * x2[k].d), a2);                                           \
          a3 = _mm256_fmadd_ps(                                                            \
              dot_i8x32(wq, _mm256_loadu_si256((const __m256i *)x3[k].qs)),               \
              _mm256_set1_ps(dw * x3[k].d), a3);                                           \
        }                                                                                  \
        y[(size_t)b * y_stride + j] = hsum256(a0);                                         \
        y[(size_t)(b + 1) * y_stride + j] = hsum256(a1);                                   \
        y[(size_t)(b + 2) * y_stride + j] = hsum256(a2);                                   \
        y[(size_t)(b + 3) * y_stride + j] = hsum256(a3);                                   \
      }                                                                                    \
      for (; b < nb; b++) {                                                                \
        const struct engine_q8_act *x0 =                                                   \
            (const struct engine_q8_act *)((const char *)x + (size_t)b * x_stride);        \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;                                          \
        int k = 0;                                                                         \
        for (; k + 2 <= nblk; k += 2) {                                                    \
          a0 = _mm256_fmadd_ps(                                                            \
              dot_i8x32(LOADQ(&row[k]), _mm256_loadu_si256((const __m256i *)x0[k].qs)),   \
              _mm256_set1_ps(fp16_hw(row[k].d) * x0[k].d), a0);                 \
          a1 = _mm256_fmadd_ps(dot_i8x32(LOADQ(&row[k + 1]),                               \
                                         _mm256_loadu_si256((const __m256i *)x0[k + 1].qs)), \
                               _mm256_set1_ps(fp16_hw(row[k + 1].d) * x0[k + 1].d), \
                               a1);                                                        \
        }                                                                                  \
        for (; k < nblk; k++)                                                              \
          a0 = _mm256_fmadd_ps(                                                            \
              dot_i8x32(LOADQ(&row[k]), _mm256_loadu_si256((const __m256i *)x0[k].qs)),   \
              _mm256_set1_ps(fp16_hw(row[k].d) * x0[k].d), a0);                 \
        y[(size_t)b * y_stride + j] = hsum256(_mm256_add_ps(a0, a1));                      \
      }                                                                                    \
    }                                                                                      \
  }

AVX2_QUANT_KERNEL(matmul_q8_0_avx2, struct engine_block_q8_0, load_q8_0)
AVX2_QUANT_KERNEL(matmul_q4_0_avx2, struct engine_block_q4_0, load_q4_0)

/* Quantized weights × f32 activations: the 32 int8 weights of a block become 4 vectors of
 * 8 floats once, reused for up to 4 activations; the block's f32 partial dot is scaled by d. */
T_AVX2 static inline void widen_i8x32(__m256i q, __m256 out[4]) {
  __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  out[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
  out[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
  out[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
  out[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

T_AVX2 static inline __m256 block_dot_f32(const __m256 wf[4], const float *x) {
  __m256 t = _mm256_mul_ps(wf[0], _mm256_loadu_ps(x));
  t = _mm256_fmadd_ps(wf[1], _mm256_loadu_ps(x + 8), t);
  t = _mm256_fmadd_ps(wf[2], _mm256_loadu_ps(x + 16), t);
  return _mm256_fmadd_ps(wf[3], _mm256_loadu_ps(x + 24), t);
}

#define AVX2_QF_KERNEL(name, block_t, LOADQ)                                                  \
  T_AVX2 static void name(const void *w, size_t row_bytes, int n_in, int row0, int row1,   \
                          const void *x, size_t x_stride, int nb, float *y,                \
                          size_t y_stride) {                                               \
    const int nblk = n_in / ENGINE_QK;                                                     \
    for (int j = row0; j < row1; j++) {                                                    \
      const block_t *row = (const block_t *)((const char *)w + (size_t)j * row_bytes);      \
      for (int b = 0; b < nb; b += 4) {                                                    \
        int nt = nb - b < 4 ? nb - b : 4;                                                  \
        const float *xs[4];                                                                \
        __m256 acc[4];                                                                     \
        for (int t = 0; t < 4; t++) {                                                      \
          xs[t] = (const float *)((const char *)x + (size_t)(b + (t < nt ? t : 0)) * x_stride); \
          acc[t] = _mm256_setzero_ps();                                                    \
        }                                                                                  \
        for (int k = 0; k < nblk; k++) {                                                   \
          __m256 wf[4];                                                                    \
          widen_i8x32(LOADQ(&row[k]), wf);                                                 \
          __m256 d = _mm256_set1_ps(fp16_hw(row[k].d));                         \
          for (int t = 0; t < nt; t++)                                                     \
            acc[t] = _mm256_fmadd_ps(block_dot_f32(wf, xs[t] + k * ENGINE_QK), d, acc[t]); \
        }                                                                                  \
        for (int t = 0; t < nt; t++) y[(size_t)(b + t) * y_stride + j] = hsum256(acc[t]);  \
      }                                                                                    \
    }                                                                                      \
  }

AVX2_QF_KERNEL(matmul_q8_0_f32act_avx2, struct engine_block_q8_0, load_q8_0)
AVX2_QF_KERNEL(matmul_q4_0_f32act_avx2, struct engine_block_q4_0, load_q4_0)

static const struct engine_cpu_kernels avx2_kernels = {
    .isa_name = "avx2",
    .matmul = {matmul_f32_avx2, matmul_f16_avx2, matmul_bf16_avx2, matmul_q8_0_avx2,
               matmul_q4_0_avx2},
    .matmul_f32act = {matmul_f32_avx2, matmul_f16_avx2, matmul_bf16_avx2,
                      matmul_q8_0_f32act_avx2, matmul_q4_0_f32act_avx2},
};

const struct engine_cpu_kernels *engine_cpu_kernels_avx2(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c"))
    return &avx2_kernels;
  return NULL;
}

/* ---------------- AVX-512 (float weight types; quantized types reuse AVX2) ---------------- */

T_AVX512 static inline __m512 load16_f32(const float *p) { return _mm512_loadu_ps(p); }
T_AVX512 static inline __m512 load16_f16(const uint16_t *p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
T_AVX512 static inline __m512 load16_bf16(const uint16_t *p) {
  __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

#define AVX512_FLOAT_KERNEL(name, elem_t, LOAD16, CONV)                                       \
  T_AVX512 static void name(const void *w, size_t row_bytes, int n_in, int row0, int row1, \
                            const void *x, size_t x_stride, int nb, float *y,              \
                            size_t y_stride) {                                             \
    const int n16 = n_in & ~15, n32 = n_in & ~31;                                          \
    for (int j = row0; j < row1; j++) {                                                    \
      const elem_t *row = (const elem_t *)((const char *)w + (size_t)j * row_bytes);        \
      int b = 0;                                                                           \
      for (; b + 4 <= nb; b += 4) {                                                        \
        const float *x0 = (const float *)((const char *)x + (size_t)b * x_stride);         \
        const float *x1 = (const float *)((const char *)x0 + x_stride);                    \
        const float *x2 = (const float *)((const char *)x1 + x_stride);                    \
        const float *x3 = (const float *)((const char *)x2 + x_stride);                    \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                        \
        for (int i = 0; i < n16; i += 16) {                                                \
          __m512 wv = LOAD16(row + i);                                                     \
          a0 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x0 + i), a0);                           \
          a1 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x1 + i), a1);                           \
          a2 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x2 + i), a2);                           \
          a3 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x3 + i), a3);                           \
        }                                                                                  \
        float s0 = _mm512_reduce_add_ps(a0), s1 = _mm512_reduce_add_ps(a1);                \
        float s2 = _mm512_reduce_add_ps(a2), s3 = _mm512_reduce_add_ps(a3);                \
        for (int i = n16; i < n_in; i++) {                                                 \
          float wi = CONV(row[i]);                                                         \
          s0 += wi * x0[i], s1 += wi * x1[i], s2 += wi * x2[i], s3 += wi * x3[i];          \
        }                                                                                  \
        y[(size_t)b * y_stride + j] = s0;                                                  \
        y[(size_t)(b + 1) * y_stride + j] = s1;                                            \
        y[(size_t)(b + 2) * y_stride + j] = s2;                                            \
        y[(size_t)(b + 3) * y_stride + j] = s3;                                            \
      }                                                                                    \
      for (; b < nb; b++) {                                                                \
        const float *x0 = (const float *)((const char *)x + (size_t)b * x_stride);         \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;                                          \
        int i = 0;                                                                         \
        for (; i < n32; i += 32) {                                                         \
          a0 = _mm512_fmadd_ps(LOAD16(row + i), _mm512_loadu_ps(x0 + i), a0);              \
          a1 = _mm512_fmadd_ps(LOAD16(row + i + 16), _mm512_loadu_ps(x0 + i + 16), a1);    \
        }                                                                                  \
        for (; i < n16; i += 16)                                                           \
          a0 = _mm512_fmadd_ps(LOAD16(row + i), _mm512_loadu_ps(x0 + i), a0);              \
        float s0 = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));                            \
        for (; i < n_in; i++) s0 += CONV(row[i]) * x0[i];                                  \
        y[(size_t)b * y_stride + j] = s0;                                                  \
      }                                                                                    \
    }                                                                                      \
  }

AVX512_FLOAT_KERNEL(matmul_f32_avx512, float, load16_f32, conv_f32)
AVX512_FLOAT_KERNEL(matmul_f16_avx512, uint16_t, load16_f16, engine_fp16_to_f32)
AVX512_FLOAT_KERNEL(matmul_bf16_avx512, uint16_t, load16_bf16, engine_bf16_to_f32)

static const struct engine_cpu_kernels avx512_kernels = {
    .isa_name = "avx512",
    .matmul = {matmul_f32_avx512, matmul_f16_avx512, matmul_bf16_avx512, matmul_q8_0_avx2,
               matmul_q4_0_avx2},
    .matmul_f32act = {matmul_f32_avx512, matmul_f16_avx512, matmul_bf16_avx512,
                      matmul_q8_0_f32act_avx2, matmul_q4_0_f32act_avx2},
};

const struct engine_cpu_kernels *engine_cpu_kernels_avx512(void) {
  __builtin_cpu_init();
  if (engine_cpu_kernels_avx2() && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    return &avx512_kernels;
  return NULL;
}

#else /* not x86 */

const struct engine_cpu_kernels *engine_cpu_kernels_avx2(void) { return NULL; }
const struct engine_cpu_kernels *engine_cpu_kernels_avx512(void) { return NULL; }

#endif
