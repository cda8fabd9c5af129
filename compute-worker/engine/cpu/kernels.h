/*
 * kernels.h — CPU matmul kernels: one table per instruction set (scalar reference, AVX2/FMA,
 * AVX-512), picked at run time from what the CPU supports.
 *
 * Every kernel computes, for a range of weight rows [row0, row1) and a batch of NB activation
 * vectors, y[b * y_stride + j] = dot(row_j, x_b). The loop order is the point: each weight
 * row is loaded once and used for all NB activations while it sits in L1, so a decode step
 * for a batch of sequences costs about the same memory traffic as for one sequence.
 * Float weight types (F32/F16/BF16) take f32 activations; Q8_0/Q4_0 take activations
 * quantized once per matmul to struct engine_q8_act blocks (integer dot products, like ggml).
 * All kernels compute every output from the same data in the same order whatever the thread
 * split, so results do not depend on the number of threads.
 */
#ifndef REALM_ENGINE_CPU_KERNELS_H
#define REALM_ENGINE_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "quant_blocks.h"

/* Weight types the kernels handle, dense-indexed. */
enum engine_wtype {
  ENGINE_W_F32 = 0,
  ENGINE_W_F16,
  ENGINE_W_BF16,
  ENGINE_W_Q8_0,
  ENGINE_W_Q4_0,
  ENGINE_W_COUNT
};

enum engine_isa { ENGINE_ISA_SCALAR = 0, ENGINE_ISA_AVX2, ENGINE_ISA_AVX512, ENGINE_ISA_COUNT };

/* w: first byte of row 0; row_bytes: bytes per row; n_in: elements per row (a multiple of 32
 * for the quantized types). x: activation b starts at (const char *)x + b * x_stride bytes,
 * either n_in floats or n_in/32 engine_q8_act blocks. */
typedef void (*engine_matmul_fn)(const void *w, size_t row_bytes, int n_in, int row0, int row1,
                                 const void *x, size_t x_stride, int nb, float *y,
                                 size_t y_stride);

struct engine_cpu_kernels {
  const char *isa_name;
  engine_matmul_fn matmul[ENGINE_W_COUNT];
  /* Exact variants: every type against f32 activations (quantized weights dequantized block
   * by block in registers). Same as matmul[] for the float types. Slower for batches, but
   * free of the activation-quantization drift. */
  engine_matmul_fn matmul_f32act[ENGINE_W_COUNT];
};

/* Whether the activations for a weight type are quantized to Q8 blocks first. */
static inline int engine_wtype_wants_q8(enum engine_wtype t) {
  return t == ENGINE_W_Q8_0 || t == ENGINE_W_Q4_0;
}

/* The kernel table for ISA, or NULL when this CPU (or this build) lacks it. */
const struct engine_cpu_kernels *engine_cpu_kernels_get(enum engine_isa isa);
/* The best table this CPU supports. */
const struct engine_cpu_kernels *engine_cpu_kernels_best(void);

/* Quantizes n floats (n a multiple of 32) into n/32 activation blocks. */
void engine_quantize_q8_act(const float *x, int n, struct engine_q8_act *out);
/* Dequantizes N elements of a weight row of type T starting at element 0 of SRC into DST. */
void engine_dequantize_row(enum engine_wtype t, const void *src, int n, float *dst);

/* Per-ISA tables (defined in kernels_*.c; NULL-returning stubs when not compiled). */
const struct engine_cpu_kernels *engine_cpu_kernels_scalar(void);
const struct engine_cpu_kernels *engine_cpu_kernels_avx2(void);
const struct engine_cpu_kernels *engine_cpu_kernels_avx512(void);

#endif /* REALM_ENGINE_CPU_KERNELS_H */
