/*
 * kernels_scalar.c — the scalar reference kernels, activation quantization, row
 * dequantization, and run-time selection of the best kernel table.
 *
 * The reference kernels are written for clarity; the SIMD kernels are tested against them.
 * For Q8_0/Q4_0 the reference does the same integer arithmetic per block as the SIMD paths
 * (exact int32 block sums scaled by d_w * d_x), so the two differ only by f32 summation order.
 */
#include "kernels.h"

#include <math.h>
#include <string.h>

void engine_quantize_q8_act(const float *x, int n, void *out) {
  int8_t *qs = out;
  float *d = (float *)engine_q8_act_d(out, n);
  int32_t *c128 = (int32_t *)engine_q8_act_c128(out, n), *c8 = (int32_t *)engine_q8_act_c8(out, n);
  const int nblk = n / ENGINE_QK;
  memset(out, 0, engine_q8_act_row_bytes(n)); /* the missing B of an odd row stays zero */
  for (int b = 0; b < nblk; b++) {
    const float *xb = x + b * ENGINE_QK;
    float amax = 0.0f;
    for (int i = 0; i < ENGINE_QK; i++) amax = fmaxf(amax, fabsf(xb[i]));
    float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
    int32_t sum = 0;
    for (int i = 0; i < ENGINE_QK; i++) {
      int8_t q = (int8_t)lrintf(xb[i] * id);
      qs[engine_q8_act_pos(b * ENGINE_QK + i)] = q;
      sum += q;
    }
    d[b] = db;
    c128[b] = -128 * sum;
    c8[b] = -8 * sum;
  }
}

void engine_dequantize_row(enum engine_wtype t, const void *src, int n, float *dst) {
  switch (t) {
  case ENGINE_W_F32:
    memcpy(dst, src, (size_t)n * sizeof(float));
    break;
  case ENGINE_W_F16: {
    const uint16_t *s = src;
    for (int i = 0; i < n; i++) dst[i] = realm_fp16_to_f32(s[i]);
    break;
  }
  case ENGINE_W_BF16: {
    const uint16_t *s = src;
    for (int i = 0; i < n; i++) dst[i] = realm_bf16_to_f32(s[i]);
    break;
  }
  case ENGINE_W_Q8_0:
    dequantize_row_q8_0(src, dst, n);
    break;
  case ENGINE_W_Q4_0:
    dequantize_row_q4_0(src, dst, n);
    break;
  default:
    break;
  }
}

/* ---- float weights ---- */

#define SCALAR_FLOAT_KERNEL(name, elem_t, conv)                                               \
  static void name(const void *w, size_t row_bytes, int n_in, int row0, int row1,          \
                   const void *x, size_t x_stride, int nb, float *y, size_t y_stride) {    \
    for (int j = row0; j < row1; j++) {                                                    \
      const elem_t *row = (const elem_t *)((const char *)w + (size_t)j * row_bytes);        \
      for (int b = 0; b < nb; b++) {                                                       \
        const float *xb = (const float *)((const char *)x + (size_t)b * x_stride);         \
        float sum = 0.0f;                                                                  \
        for (int i = 0; i < n_in; i++) sum += conv(row[i]) * xb[i];                        \
        y[(size_t)b * y_stride + j] = sum;                                                 \
      }                                                                                    \
    }                                                                                      \
  }

#define IDENT(v) (v)
SCALAR_FLOAT_KERNEL(matmul_f32_scalar, float, IDENT)
SCALAR_FLOAT_KERNEL(matmul_f16_scalar, uint16_t, realm_fp16_to_f32)
SCALAR_FLOAT_KERNEL(matmul_bf16_scalar, uint16_t, realm_bf16_to_f32)

/* ---- quantized weights × Q8 activations ---- */

static void matmul_q8_0_scalar(const void *w, size_t row_bytes, int n_in, int row0, int row1,
                               const void *x, size_t x_stride, int nb, float *y,
                               size_t y_stride) {
  int nblk = n_in / ENGINE_QK;
  for (int j = row0; j < row1; j++) {
    const struct realm_block_q8_0 *row =
        (const struct realm_block_q8_0 *)((const char *)w + (size_t)j * row_bytes);
    for (int b = 0; b < nb; b++) {
      const int8_t *xq = engine_q8_act_qs((const char *)x + (size_t)b * x_stride);
      const float *xd = engine_q8_act_d((const char *)x + (size_t)b * x_stride, n_in);
      float sum = 0.0f;
      for (int k = 0; k < nblk; k++) {
        int32_t s = 0;
        for (int i = 0; i < ENGINE_QK; i++)
          s += (int32_t)row[k].qs[i] * xq[engine_q8_act_pos(k * ENGINE_QK + i)];
        sum += (float)s * (realm_fp16_to_f32(row[k].d) * xd[k]);
      }
      y[(size_t)b * y_stride + j] = sum;
    }
  }
}

static void matmul_q4_0_scalar(const void *w, size_t row_bytes, int n_in, int row0, int row1,
                               const void *x, size_t x_stride, int nb, float *y,
                               size_t y_stride) {
  int nblk = n_in / ENGINE_QK;
  for (int j = row0; j < row1; j++) {
    const struct realm_block_q4_0 *row =
        (const struct realm_block_q4_0 *)((const char *)w + (size_t)j * row_bytes);
    for (int b = 0; b < nb; b++) {
      const int8_t *xq = engine_q8_act_qs((const char *)x + (size_t)b * x_stride);
      const float *xd = engine_q8_act_d((const char *)x + (size_t)b * x_stride, n_in);
      float sum = 0.0f;
      for (int k = 0; k < nblk; k++) {
        int32_t s = 0;
        for (int i = 0; i < ENGINE_QK / 2; i++) {
          s += ((row[k].qs[i] & 0x0f) - 8) * xq[engine_q8_act_pos(k * ENGINE_QK + i)];
          s += ((row[k].qs[i] >> 4) - 8) * xq[engine_q8_act_pos(k * ENGINE_QK + i + 16)];
        }
        sum += (float)s * (realm_fp16_to_f32(row[k].d) * xd[k]);
      }
      y[(size_t)b * y_stride + j] = sum;
    }
  }
}

/* Quantized weights × f32 activations: per block, the f32 dot of the integer weights with x,
 * scaled once by d. */
#define SCALAR_QF_KERNEL(name, block_t, GETQ)                                                 \
  static void name(const void *w, size_t row_bytes, int n_in, int row0, int row1,          \
                   const void *x, size_t x_stride, int nb, float *y, size_t y_stride) {    \
    int nblk = n_in / ENGINE_QK;                                                           \
    for (int j = row0; j < row1; j++) {                                                    \
      const block_t *row = (const block_t *)((const char *)w + (size_t)j * row_bytes);      \
      for (int b = 0; b < nb; b++) {                                                       \
        const float *xb = (const float *)((const char *)x + (size_t)b * x_stride);         \
        float sum = 0.0f;                                                                  \
        for (int k = 0; k < nblk; k++) {                                                   \
          float s = 0.0f;                                                                  \
          for (int i = 0; i < ENGINE_QK; i++) s += (float)GETQ(row[k], i) * xb[k * ENGINE_QK + i]; \
          sum += s * realm_fp16_to_f32(row[k].d);                                         \
        }                                                                                  \
        y[(size_t)b * y_stride + j] = sum;                                                 \
      }                                                                                    \
    }                                                                                      \
  }
#define GETQ8(blk, i) ((blk).qs[i])
#define GETQ4(blk, i) ((i) < 16 ? ((blk).qs[i] & 0x0f) - 8 : ((blk).qs[(i)-16] >> 4) - 8)
SCALAR_QF_KERNEL(matmul_q8_0_f32act_scalar, struct realm_block_q8_0, GETQ8)
SCALAR_QF_KERNEL(matmul_q4_0_f32act_scalar, struct realm_block_q4_0, GETQ4)

static const struct engine_cpu_kernels scalar_kernels = {
    .isa_name = "scalar",
    .matmul = {matmul_f32_scalar, matmul_f16_scalar, matmul_bf16_scalar, matmul_q8_0_scalar,
               matmul_q4_0_scalar},
    .matmul_f32act = {matmul_f32_scalar, matmul_f16_scalar, matmul_bf16_scalar,
                      matmul_q8_0_f32act_scalar, matmul_q4_0_f32act_scalar},
    .quantize_q8_act = engine_quantize_q8_act,
};

const struct engine_cpu_kernels *engine_cpu_kernels_scalar(void) { return &scalar_kernels; }

const struct engine_cpu_kernels *engine_cpu_kernels_get(enum engine_isa isa) {
  switch (isa) {
  case ENGINE_ISA_SCALAR:
    return engine_cpu_kernels_scalar();
  case ENGINE_ISA_AVX2:
    return engine_cpu_kernels_avx2();
  case ENGINE_ISA_AVX512:
    return engine_cpu_kernels_avx512();
  case ENGINE_ISA_AVX512_VNNI:
    return engine_cpu_kernels_avx512_vnni();
  case ENGINE_ISA_AMX:
    return engine_cpu_kernels_amx();
  default:
    return NULL;
  }
}

const struct engine_cpu_kernels *engine_cpu_kernels_best(void) {
  const struct engine_cpu_kernels *k = engine_cpu_kernels_amx();
  if (!k) k = engine_cpu_kernels_avx512_vnni();
  if (!k) k = engine_cpu_kernels_avx512();
  if (!k) k = engine_cpu_kernels_avx2();
  if (!k) k = engine_cpu_kernels_scalar();
  return k;
}

static const char *const isa_names[ENGINE_ISA_COUNT] = {"scalar", "avx2", "avx512",
                                                        "avx512vnni", "amx"};

const char *engine_cpu_isa_name(enum engine_isa isa) {
  return (unsigned)isa < ENGINE_ISA_COUNT ? isa_names[isa] : "?";
}

int engine_cpu_isa_from_name(const char *name) {
  if (!name || !*name || strcmp(name, "auto") == 0) return -1;
  for (int i = 0; i < ENGINE_ISA_COUNT; i++)
    if (strcmp(name, isa_names[i]) == 0) return i;
  return -2;
}
