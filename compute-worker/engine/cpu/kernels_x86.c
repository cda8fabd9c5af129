/*
 * kernels_x86.c — AVX2/FMA, AVX-512 and AVX-512 VNNI matmul kernels.
 *
 * Each function carries its own __attribute__((target(...))) so the file compiles in the
 * portable baseline build; engine_cpu_kernels_avx2()/avx512()/avx512_vnni() hand out a table
 * only when __builtin_cpu_supports says the running CPU has the instructions.
 *
 * Float weights: one weight row against up to 4 activation vectors at once (4 independent
 * accumulators, each weight vector loaded once and used 4 times), then the remaining
 * activations one by one. Quantized weights: tiles of weight rows × activations with integer
 * block dot products (maddubs on AVX2, vpdpbusd on VNNI); see the section comment below.
 */
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))
#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define T_VNNI \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")))

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
AVX2_FLOAT_KERNEL(matmul_f16_avx2, uint16_t, load8_f16, realm_fp16_to_f32)
AVX2_FLOAT_KERNEL(matmul_bf16_avx2, uint16_t, load8_bf16, realm_bf16_to_f32)

/* ---------------- integer kernels for Q8_0 / Q4_0 (AVX2 and AVX-512 VNNI) ----------------
 *
 * Tiling: a tile is R weight rows × NB activations (R*NB ≤ 16 accumulators). For every weight
 * block the R rows are prepared once (loaded, Q4_0 nibbles unpacked, the fp16 scale
 * converted) and then used against all NB activations, so at batch B a step reads each
 * weight byte from memory once and does B cheap integer dots on it. Batch 1 takes 4-row
 * tiles (4 independent accumulator chains hide the FMA latency); larger batches take 2-row
 * tiles of up to 8 activations.
 *
 * The integer dots are exact (int32) and the bias of the unsigned operand is removed by the
 * activation row's per-block correction vector (kernels.h), so nothing bias-related is done
 * per weight row. Each block's int32 sum is then scaled by d_w·d_x in f32 and accumulated
 * with FMA, as the scalar reference does; only the f32 summation order differs. */

#define ALWAYS_INLINE __attribute__((always_inline)) inline

enum { QT_Q8 = 0, QT_Q4 = 1 };

/* Software prefetch: while a tile works on rows j..j+R-1 at block k, the same block of the
 * next tile's rows (j+R..j+2R-1) is fetched. Rows are contiguous, so this runs one tile
 * ahead of the loads; at batch 8 a tile takes long enough (integer work) that the hardware
 * prefetcher alone leaves the next rows cold, and a fixed byte distance along the current
 * row measured worse. Prefetches never fault, so running past the tensor's end is harmless. */
#define PF_NEXT_TILE(blk) _mm_prefetch((blk) + (size_t)R * row_bytes, _MM_HINT_T0)

/* The 32 nibbles of a Q4_0 block in element order, as bytes 0..15 (not yet minus 8). */
T_AVX2 static inline __m256i q4_nibbles_avx2(const uint8_t *qs) {
  __m128i t = _mm_loadu_si128((const __m128i *)qs);
  __m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}
T_AVX2 static inline __m256i q4_unpack_avx2(const uint8_t *qs) {
  return _mm256_sub_epi8(q4_nibbles_avx2(qs), _mm256_set1_epi8(8));
}

/* AVX2 flavour: a pair of blocks per step as two 256-bit halves in the activation row's
 * interleaved order (weights interleaved with the same unpacklo/hi_epi32). Q8_0: the sign
 * trick maddubs(|w|, sign(x, w)) is exact (pair sums ≤ 2·128·127) and needs no correction.
 * Q4_0: maddubs(q, x) with the raw nibble q (unsigned, ≤ 15) is exact too; c8 removes −8. */
T_AVX2 static ALWAYS_INLINE void qtile_avx2(const int type, const int R, const int NB,
                                            const char *w, size_t row_bytes, int nblk,
                                            const char *x, size_t x_stride, int n_in, float *y,
                                            size_t y_stride) {
  const size_t bsz = type == QT_Q8 ? sizeof(struct realm_block_q8_0)
                                   : sizeof(struct realm_block_q4_0);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[4][8];
  _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
    _Pragma("GCC unroll 8") for (int b = 0; b < NB; b++) acc[r][b] = _mm256_setzero_ps();
  for (int k = 0; k < nblk; k += 2) {
    const int two = k + 1 < nblk;
    __m256i wl[4], wh[4];
    __m256 ws[4];
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
      const char *blk = w + (size_t)r * row_bytes + (size_t)k * bsz;
      PF_NEXT_TILE(blk);
      uint16_t da, db = 0;
      memcpy(&da, blk, 2);
      if (two) memcpy(&db, blk + bsz, 2);
      ws[r] = _mm256_cvtph_ps(_mm_set1_epi32((int)(da | (uint32_t)db << 16)));
      __m256i A, B;
      if (type == QT_Q8) {
        A = _mm256_loadu_si256((const __m256i *)(blk + 2));
        B = two ? _mm256_loadu_si256((const __m256i *)(blk + bsz + 2)) : _mm256_setzero_si256();
      } else {
        __m256i lo = q4_nibbles_avx2((const uint8_t *)blk + 2);  /* A.lo | A.hi */
        __m256i hi = two ? q4_nibbles_avx2((const uint8_t *)blk + bsz + 2) : _mm256_setzero_si256();
        A = lo;
        B = hi;
      }
      wl[r] = _mm256_unpacklo_epi32(A, B);
      wh[r] = _mm256_unpackhi_epi32(A, B);
    }
    _Pragma("GCC unroll 8") for (int b = 0; b < NB; b++) {
      const char *xr = x + (size_t)b * x_stride;
      __m256i xl = _mm256_loadu_si256((const __m256i *)(xr + (size_t)k * 32));
      __m256i xh = _mm256_loadu_si256((const __m256i *)(xr + (size_t)k * 32 + 32));
      double dpair; /* (d_A, d_B): broadcast, it lines up with the A/B lanes */
      memcpy(&dpair, engine_q8_act_d(xr, n_in) + k, sizeof dpair);
      __m256 xs = _mm256_castpd_ps(_mm256_set1_pd(dpair));
      __m256i c = type == QT_Q4 ? _mm256_zextsi128_si256(_mm_loadl_epi64(
                                      (const __m128i *)(engine_q8_act_c8(xr, n_in) + k)))
                                : _mm256_setzero_si256();
      _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
        __m256i dl, dh;
        if (type == QT_Q8) {
          dl = _mm256_maddubs_epi16(_mm256_sign_epi8(wl[r], wl[r]), _mm256_sign_epi8(xl, wl[r]));
          dh = _mm256_maddubs_epi16(_mm256_sign_epi8(wh[r], wh[r]), _mm256_sign_epi8(xh, wh[r]));
        } else {
          dl = _mm256_maddubs_epi16(wl[r], xl);
          dh = _mm256_maddubs_epi16(wh[r], xh);
        }
        /* int16 pair sums ≤ 2·128·127 each; add the halves after widening to int32 */
        __m256i dot = _mm256_add_epi32(_mm256_madd_epi16(dl, ones), _mm256_madd_epi16(dh, ones));
        if (type == QT_Q4) dot = _mm256_add_epi32(dot, c);
        acc[r][b] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(ws[r], xs), acc[r][b]);
      }
    }
  }
  _Pragma("GCC unroll 8") for (int b = 0; b < NB; b++)
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
      y[(size_t)b * y_stride + r] = hsum256(acc[r][b]);
}

/* AVX-512 VNNI flavour: a pair of blocks per 512-bit vpdpbusd, weights permuted once per row
 * into the activation row's interleaved order. Weights are the unsigned operand: Q8_0 as
 * w + 128 (w ^ 0x80), Q4_0 as the raw nibbles; the activation row's c128 / c8 start each
 * dot. Without a block B (odd row), B's weights are zero and so are its activations, scale
 * and correction. */
T_VNNI static inline __m512i q8_pair_vnni(const char *blk, int two) {
  __m256i a = _mm256_loadu_si256((const __m256i *)(blk + 2));
  __m256i b = two ? _mm256_loadu_si256((const __m256i *)(blk + 34 + 2)) : _mm256_setzero_si256();
  const __m512i idx = _mm512_setr_epi32(0, 16, 1, 17, 4, 20, 5, 21, 2, 18, 3, 19, 6, 22, 7, 23);
  __m512i v = _mm512_permutex2var_epi32(_mm512_castsi256_si512(a), idx, _mm512_castsi256_si512(b));
  return _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80));
}

/* Byte gather for a Q4_0 pair straight into the interleaved order: output byte o comes from
 * byte q4_pair_gather[o] of the pair (A's nibble bytes at 2..17, B's at 20..35); dwords
 * holding elements 16..31 of a block then take the high nibble (shift 4). One vpermb, one
 * variable shift and one mask, instead of an insert, two masks, a shift and a permute. */
static const uint8_t q4_pair_gather[64] __attribute__((aligned(64))) = {
    2,  3,  4,  5,  20, 21, 22, 23, 6,  7,  8,  9,  24, 25, 26, 27, 2,  3,  4,  5,  20, 21,
    22, 23, 6,  7,  8,  9,  24, 25, 26, 27, 10, 11, 12, 13, 28, 29, 30, 31, 14, 15, 16, 17,
    32, 33, 34, 35, 10, 11, 12, 13, 28, 29, 30, 31, 14, 15, 16, 17, 32, 33, 34, 35};

T_VNNI static inline __m512i q4_pair_vnni(const char *blk, int two) {
  /* masked: never reads past the pair (or past block A alone), so never past the tensor */
  __m512i v = _mm512_maskz_loadu_epi8(two ? 0xfffffffffull : 0x3ffffull, blk);
  v = _mm512_permutexvar_epi8(_mm512_load_si512((const void *)q4_pair_gather), v);
  const __m512i shift = _mm512_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4, 0, 0, 0, 0, 4, 4, 4, 4);
  /* without B, its bytes are zero (masked load); its activations are zero too */
  return _mm512_and_si512(_mm512_srlv_epi32(v, shift), _mm512_set1_epi8(0x0f));
}

/* (d_A, d_B) repeated 8 times as floats for the pair at BLK (d_B = 0 without a second
 * block): one masked load of the words up to d_B (never past the pair, so never past the
 * tensor), one word permute, one fp16 conversion. */
T_VNNI static inline __m512 scale_pair_vnni(const char *blk, int type, int two) {
  const short wb = type == QT_Q8 ? 17 : 9; /* word index of d_B */
  const __mmask32 m = two ? (type == QT_Q8 ? 0x3ffffu : 0x3ffu) : 0x1u;
  __m512i v = _mm512_maskz_loadu_epi16(m, blk);
  const __m512i idx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, wb, 0,
                                       wb, 0, wb, 0, wb, 0, wb, 0, wb, 0, wb, 0, wb, 0);
  return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(idx, v)));
}

T_VNNI static ALWAYS_INLINE void qtile_vnni(const int type, const int R, const int NB,
                                            const char *w, size_t row_bytes, int nblk,
                                            const char *x, size_t x_stride, int n_in, float *y,
                                            size_t y_stride) {
  const size_t bsz = type == QT_Q8 ? sizeof(struct realm_block_q8_0)
                                   : sizeof(struct realm_block_q4_0);
  __m512 acc[4][8];
  _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
    _Pragma("GCC unroll 8") for (int b = 0; b < NB; b++) acc[r][b] = _mm512_setzero_ps();
  for (int k = 0; k < nblk; k += 2) {
    const int two = k + 1 < nblk;
    __m512i wq[4];
    __m512 ws[4];
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
      const char *blk = w + (size_t)r * row_bytes + (size_t)k * bsz;
      PF_NEXT_TILE(blk);
      wq[r] = type == QT_Q8 ? q8_pair_vnni(blk, two) : q4_pair_vnni(blk, two);
      ws[r] = scale_pair_vnni(blk, type, two);
    }
    _Pragma("GCC unroll 8") for (int b = 0; b < NB; b++) {
      const char *xr = x + (size_t)b * x_stride;
      const int32_t *xc = (type == QT_Q8 ? engine_q8_act_c128(xr, n_in)
                                         : engine_q8_act_c8(xr, n_in)) + k;
      __m512i xv = _mm512_loadu_si512((const void *)(xr + (size_t)k * 32));
      double dpair; /* (d_A, d_B): broadcast, it lines up with the A/B lanes */
      memcpy(&dpair, engine_q8_act_d(xr, n_in) + k, sizeof dpair);
      __m512 xs = _mm512_castpd_ps(_mm512_set1_pd(dpair));
      __m512i c = _mm512_zextsi128_si512(_mm_loadl_epi64((const __m128i *)xc));
      _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
        __m512i dot = _mm512_dpbusd_epi32(c, wq[r], xv);
        acc[r][b] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(ws[r], xs), acc[r][b]);
      }
    }
  }
  _Pragma("GCC unroll 8") for (int b = 0; b < NB; b++)
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
      y[(size_t)b * y_stride + r] = _mm512_reduce_add_ps(acc[r][b]);
}

/* Tile dispatch with compile-time R and NB so the accumulators live in registers. */
#define QT_CALL(TILE, TYPE, R, NB)                                                            \
  TILE(TYPE, R, NB, w + (size_t)j * row_bytes, row_bytes, nblk,                             \
       (const char *)x + (size_t)b * x_stride, x_stride, n_in, y + (size_t)b * y_stride + j, \
       y_stride)
#define QT_CASES8(TILE, TYPE, R)                                                              \
  case 1: QT_CALL(TILE, TYPE, R, 1); break;                                                 \
  case 2: QT_CALL(TILE, TYPE, R, 2); break;                                                 \
  case 3: QT_CALL(TILE, TYPE, R, 3); break;                                                 \
  case 4: QT_CALL(TILE, TYPE, R, 4); break;                                                 \
  case 5: QT_CALL(TILE, TYPE, R, 5); break;                                                 \
  case 6: QT_CALL(TILE, TYPE, R, 6); break;                                                 \
  case 7: QT_CALL(TILE, TYPE, R, 7); break;                                                 \
  default: QT_CALL(TILE, TYPE, R, 8); break;

#define QUANT_KERNEL(name, TARGET, TILE, TYPE)                                                \
  TARGET static void name(const void *wv, size_t row_bytes, int n_in, int row0, int row1,  \
                          const void *x, size_t x_stride, int nb, float *y,                \
                          size_t y_stride) {                                               \
    const char *w = wv;                                                                    \
    const int nblk = n_in / ENGINE_QK;                                                     \
    const int rows_per_tile = nb <= 4 ? 4 : 2;                                             \
    for (int j = row0; j < row1;) {                                                        \
      const int r = row1 - j >= rows_per_tile ? rows_per_tile : 1;                         \
      for (int b = 0; b < nb;) {                                                           \
        const int nbt = nb - b < 8 ? nb - b : 8;                                           \
        if (r == 4) {                                                                      \
          switch (nbt) {                                                                   \
          case 1: QT_CALL(TILE, TYPE, 4, 1); break;                                        \
          case 2: QT_CALL(TILE, TYPE, 4, 2); break;                                        \
          case 3: QT_CALL(TILE, TYPE, 4, 3); break;                                        \
          default: QT_CALL(TILE, TYPE, 4, 4); break;                                       \
          }                                                                                \
        } else if (r == 2) {                                                               \
          switch (nbt) { QT_CASES8(TILE, TYPE, 2) }                                        \
        } else {                                                                           \
          switch (nbt) { QT_CASES8(TILE, TYPE, 1) }                                        \
        }                                                                                  \
        b += nbt;                                                                          \
      }                                                                                    \
      j += r;                                                                              \
    }                                                                                      \
  }

QUANT_KERNEL(matmul_q8_0_avx2, T_AVX2, qtile_avx2, QT_Q8)
QUANT_KERNEL(matmul_q4_0_avx2, T_AVX2, qtile_avx2, QT_Q4)
QUANT_KERNEL(matmul_q8_0_vnni, T_VNNI, qtile_vnni, QT_Q8)
QUANT_KERNEL(matmul_q4_0_vnni, T_VNNI, qtile_vnni, QT_Q4)

/* Activation quantization, vectorised; bit-identical to engine_quantize_q8_act (same max,
 * same division, same product, round-to-nearest-even conversion). */
/* One block of 32 floats to 32 int8 in element order; its scale and Σq. */
T_AVX2 static inline __m256i quantize_block_avx2(const float *xb, float *ret_d, int32_t *ret_sum) {
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
  __m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
  __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v0, absmask), _mm256_and_ps(v1, absmask)),
                           _mm256_max_ps(_mm256_and_ps(v2, absmask), _mm256_and_ps(v3, absmask)));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  float amax = _mm_cvtss_f32(h);
  float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
  __m256 vid = _mm256_set1_ps(id);
  __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, vid));
  __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, vid));
  __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, vid));
  __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, vid));
  __m256i s4 = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
  __m128i s2 = _mm_add_epi32(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
  s2 = _mm_add_epi32(s2, _mm_shuffle_epi32(s2, 0x4e));
  s2 = _mm_add_epi32(s2, _mm_shuffle_epi32(s2, 0xb1));
  *ret_sum = _mm_cvtsi128_si32(s2);
  *ret_d = db;
  /* packs work per 128-bit lane: the permute restores element order */
  __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
  return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Activation quantization, vectorised; bit-identical to engine_quantize_q8_act (same max,
 * same division, same product, round-to-nearest-even conversion, same layout). */
T_AVX2 static void quantize_q8_act_avx2(const float *x, int n, void *out) {
  int8_t *qs = out;
  float *d = (float *)engine_q8_act_d(out, n);
  int32_t *c128 = (int32_t *)engine_q8_act_c128(out, n), *c8 = (int32_t *)engine_q8_act_c8(out, n);
  const int nblk = n / ENGINE_QK;
  for (int k = 0; k < nblk; k += 2) {
    float da, db = 0.0f;
    int32_t sa, sb = 0;
    __m256i a = quantize_block_avx2(x + k * ENGINE_QK, &da, &sa);
    __m256i b = k + 1 < nblk ? quantize_block_avx2(x + (k + 1) * ENGINE_QK, &db, &sb)
                             : _mm256_setzero_si256();
    _mm256_storeu_si256((__m256i *)(qs + k * 32), _mm256_unpacklo_epi32(a, b));
    _mm256_storeu_si256((__m256i *)(qs + k * 32 + 32), _mm256_unpackhi_epi32(a, b));
    d[k] = da, d[k + 1] = db;
    c128[k] = -128 * sa, c128[k + 1] = -128 * sb;
    c8[k] = -8 * sa, c8[k + 1] = -8 * sb;
  }
}

T_AVX2 static inline __m256i load_q8_0(const struct realm_block_q8_0 *b) {
  return _mm256_loadu_si256((const __m256i *)b->qs);
}
T_AVX2 static inline __m256i load_q4_0(const struct realm_block_q4_0 *b) {
  return q4_unpack_avx2(b->qs);
}

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

AVX2_QF_KERNEL(matmul_q8_0_f32act_avx2, struct realm_block_q8_0, load_q8_0)
AVX2_QF_KERNEL(matmul_q4_0_f32act_avx2, struct realm_block_q4_0, load_q4_0)

static const struct engine_cpu_kernels avx2_kernels = {
    .isa_name = "avx2",
    .matmul = {matmul_f32_avx2, matmul_f16_avx2, matmul_bf16_avx2, matmul_q8_0_avx2,
               matmul_q4_0_avx2},
    .matmul_f32act = {matmul_f32_avx2, matmul_f16_avx2, matmul_bf16_avx2,
                      matmul_q8_0_f32act_avx2, matmul_q4_0_f32act_avx2},
    .quantize_q8_act = quantize_q8_act_avx2,
};

const struct engine_cpu_kernels *engine_cpu_kernels_avx2(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c"))
    return &avx2_kernels;
  return NULL;
}

/* ---------------- AVX-512 float kernels ---------------- */
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
AVX512_FLOAT_KERNEL(matmul_f16_avx512, uint16_t, load16_f16, realm_fp16_to_f32)
AVX512_FLOAT_KERNEL(matmul_bf16_avx512, uint16_t, load16_bf16, realm_bf16_to_f32)

static const struct engine_cpu_kernels avx512_kernels = {
    .isa_name = "avx512",
    .matmul = {matmul_f32_avx512, matmul_f16_avx512, matmul_bf16_avx512, matmul_q8_0_avx2,
               matmul_q4_0_avx2},
    .matmul_f32act = {matmul_f32_avx512, matmul_f16_avx512, matmul_bf16_avx512,
                      matmul_q8_0_f32act_avx2, matmul_q4_0_f32act_avx2},
    .quantize_q8_act = quantize_q8_act_avx2,
};

const struct engine_cpu_kernels *engine_cpu_kernels_avx512(void) {
  __builtin_cpu_init();
  if (engine_cpu_kernels_avx2() && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    return &avx512_kernels;
  return NULL;
}

static const struct engine_cpu_kernels avx512_vnni_kernels = {
    .isa_name = "avx512vnni",
    .matmul = {matmul_f32_avx512, matmul_f16_avx512, matmul_bf16_avx512, matmul_q8_0_vnni,
               matmul_q4_0_vnni},
    .matmul_f32act = {matmul_f32_avx512, matmul_f16_avx512, matmul_bf16_avx512,
                      matmul_q8_0_f32act_avx2, matmul_q4_0_f32act_avx2},
    .quantize_q8_act = quantize_q8_act_avx2,
};

const struct engine_cpu_kernels *engine_cpu_kernels_avx512_vnni(void) {
  __builtin_cpu_init();
  /* VBMI for the Q4_0 byte gather: every VNNI CPU since Ice Lake (and Zen 4) has it;
   * Cascade Lake (VNNI without VBMI) uses the avx512 table. */
  if (engine_cpu_kernels_avx512() && __builtin_cpu_supports("avx512vnni") &&
      __builtin_cpu_supports("avx512vbmi"))
    return &avx512_vnni_kernels;
  return NULL;
}

#else /* not x86 */

const struct engine_cpu_kernels *engine_cpu_kernels_avx2(void) { return NULL; }
const struct engine_cpu_kernels *engine_cpu_kernels_avx512(void) { return NULL; }
const struct engine_cpu_kernels *engine_cpu_kernels_avx512_vnni(void) { return NULL; }

#endif
