/*
 * kernels.h — CPU matmul kernels: one table per instruction set (scalar reference, AVX2/FMA,
 * AVX-512, AVX-512 VNNI, AMX int8 tiles), picked at run time from what the CPU (and, for
 * AMX, the OS) supports.
 *
 * Every kernel computes, for a range of weight rows [row0, row1) and a batch of NB activation
 * vectors, y[b * y_stride + j] = dot(row_j, x_b). The loop order is the point: the SIMD
 * kernels take a tile of weight rows and a tile of activations at once, so each weight block
 * is loaded once and used for every activation of the batch while it sits in registers, and
 * a decode step for a batch of sequences costs about the same memory traffic as for one.
 * Float weight types (F32/F16/BF16) take f32 activations; Q8_0/Q4_0 take activations
 * quantized once per matmul to an engine "q8 activation row" (integer dot products).
 * All kernels compute every output from the same data in the same order whatever the thread
 * split, so results do not depend on the number of threads.
 *
 * Block layouts and fp16 conversions are the model's (model/quant.h, model/fp16.h): the
 * weights are used in place, exactly as GGUF stores them.
 */
#ifndef REALM_ENGINE_CPU_KERNELS_H
#define REALM_ENGINE_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Relative paths: the kernel library is built without the model's include directory. */
#include "../../model/fp16.h"
#include "../../model/quant.h"

#define ENGINE_QK 32 /* elements per Q8_0 / Q4_0 block (REALM_QK8_0 == REALM_QK4_0) */
_Static_assert(REALM_QK8_0 == ENGINE_QK && REALM_QK4_0 == ENGINE_QK, "block sizes");

/* Weight types the kernels handle, dense-indexed. */
enum engine_wtype {
  ENGINE_W_F32 = 0,
  ENGINE_W_F16,
  ENGINE_W_BF16,
  ENGINE_W_Q8_0,
  ENGINE_W_Q4_0,
  ENGINE_W_COUNT
};

/* AVX512 is the AVX-512 table without VNNI (integer dots with maddubs); AVX512_VNNI adds
 * vpdpbusd for Q8_0/Q4_0. AMX is the VNNI table whose Q8_0/Q4_0 matmuls run batches of
 * ENGINE_AMX_MIN_NB or more activations on AMX int8 tiles (kernels_amx.c); "best" picks it
 * when the CPU has AMX-INT8 and the kernel grants the tile state, else VNNI. */
enum engine_isa {
  ENGINE_ISA_SCALAR = 0,
  ENGINE_ISA_AVX2,
  ENGINE_ISA_AVX512,
  ENGINE_ISA_AVX512_VNNI,
  ENGINE_ISA_AMX,
  ENGINE_ISA_COUNT
};

/* Smallest batch of activations the AMX table runs on tiles; smaller ones take the VNNI
 * kernels (a tile product costs the same for 1 or 16 activations). */
#define ENGINE_AMX_MIN_NB 4

/* A quantized activation row of N elements (N a multiple of 32), written once per matmul by
 * a quantize_q8_act function and then read by every weight row. Blocks go in pairs (A, B) =
 * (2p, 2p+1); a row with an odd block count ends with a pair whose B is all zero. Per pair:
 *   qs: 64 int8 (x ≈ d_k · q, q in [-127, 127]) with A and B interleaved by 4-byte groups
 *       in the order AVX2's unpacklo/unpackhi_epi32(A, B) produce — 32-bit lane 2i of the
 *       pair holds 4 elements of A, lane 2i+1 the same 4 elements of B (engine_q8_act_pos);
 *   then, after all pairs' qs: float d[2·pairs] (the block scales, d[k] for block k),
 *   int32 c128[2·pairs] = −128·Σq of each block, int32 c8[2·pairs] = −8·Σq.
 * Why this shape: vpdpbusd multiplies unsigned by signed bytes, and the kernels feed it the
 * weights as unsigned bytes (Q8_0: w + 128; Q4_0: the raw nibble q that stands for q − 8)
 * and the activations as signed ones, so the bias is a property of the activation block:
 *   Σ w·x = Σ (w + 128)·x − 128·Σx,     Σ (q − 8)·x = Σ q·x − 8·Σx.
 * With A/B alternating lanes, the pair's two corrections (c128[2p], c128[2p+1]) and two
 * scales (d[2p], d[2p+1]) are each one 8-byte broadcast or zero-extending load that lines up
 * with the dot product's lanes — load-port work only, nothing per weight row — and the whole
 * row is 1.375 bytes per element, so 8 activations of a 5632-wide row stay in L1/L2. */
#define ENGINE_Q8_ACT_PAIR_BYTES 88 /* 64 qs + 2 d + 2 c128 + 2 c8 */
static inline int engine_q8_act_pairs(int n) { return (n / 32 + 1) / 2; }
static inline size_t engine_q8_act_row_bytes(int n) {
  return (size_t)engine_q8_act_pairs(n) * ENGINE_Q8_ACT_PAIR_BYTES;
}
/* Byte offset in the qs area of element I of the row. */
static inline size_t engine_q8_act_pos(int i) {
  int k = i / 32, e = i % 32, j = e / 4;
  return (size_t)(k / 2) * 64 +
         (size_t)(((j >> 1) & 1) * 8 + (j >> 2) * 4 + (j & 1) * 2 + (k & 1)) * 4 + (size_t)(e & 3);
}
static inline const int8_t *engine_q8_act_qs(const void *row) { return (const int8_t *)row; }
static inline const float *engine_q8_act_d(const void *row, int n) {
  return (const float *)((const uint8_t *)row + (size_t)engine_q8_act_pairs(n) * 64);
}
static inline const int32_t *engine_q8_act_c128(const void *row, int n) {
  return (const int32_t *)(engine_q8_act_d(row, n) + 2 * engine_q8_act_pairs(n));
}
static inline const int32_t *engine_q8_act_c8(const void *row, int n) {
  return engine_q8_act_c128(row, n) + 2 * engine_q8_act_pairs(n);
}

/* w: first byte of row 0; row_bytes: bytes per row; n_in: elements per row (a multiple of 32
 * for the quantized types). x: activation b starts at (const char *)x + b * x_stride bytes,
 * either n_in floats or one q8 activation row of n_in elements. */
typedef void (*engine_matmul_fn)(const void *w, size_t row_bytes, int n_in, int row0, int row1,
                                 const void *x, size_t x_stride, int nb, float *y,
                                 size_t y_stride);

/* A matmul on activations pre-packed by the table's q8_pack (see struct engine_cpu_kernels):
 * the arguments of engine_matmul_fn plus XPACK, the packed groups of this call's NB
 * activations (the pack of activation 0's group first); X is still read for what the packed
 * path leaves to another kernel (the AMX table: groups under ENGINE_AMX_MIN_NB, row tails). */
typedef void (*engine_matmul_packed_fn)(const void *w, size_t row_bytes, int n_in, int row0,
                                        int row1, const void *x, size_t x_stride,
                                        const void *xpack, int nb, float *y, size_t y_stride);

/* Activations per packed group (q8_pack); a multiple of it must start every packed call. */
#define ENGINE_Q8_PACK_GROUP 16

struct engine_cpu_kernels {
  const char *isa_name;
  engine_matmul_fn matmul[ENGINE_W_COUNT];
  /* Exact variants: every type against f32 activations (quantized weights dequantized block
   * by block in registers). Same as matmul[] for the float types. Slower for batches, but
   * free of the activation-quantization drift. */
  engine_matmul_fn matmul_f32act[ENGINE_W_COUNT];
  /* Quantizes n floats into one q8 activation row (same result in every table). */
  void (*quantize_q8_act)(const float *x, int n, void *out);
  /* Optional (NULL but in the AMX table): a repack of q8 activation rows into the layout the
   * kernel's tiles read, done once per matmul by the backend instead of once per kernel call
   * (i.e. per row chunk and thread). q8_pack_group_bytes(n_in): bytes of one packed group
   * of ENGINE_Q8_PACK_GROUP activations (64-byte multiple); q8_pack writes group GROUP
   * (activations [16·GROUP, min(16·GROUP + 16, NB)) of X) at OUT, which is 64-byte aligned.
   * matmul_packed[t] reads it (NULL for types without a packed path); its results are
   * bit-identical to matmul[t]'s. */
  size_t (*q8_pack_group_bytes)(int n_in);
  void (*q8_pack)(const void *x, size_t x_stride, int n_in, int nb, int group, void *out);
  engine_matmul_packed_fn matmul_packed[ENGINE_W_COUNT];
};

/* Whether the activations for a weight type are quantized to a q8 activation row first. */
static inline int engine_wtype_wants_q8(enum engine_wtype t) {
  return t == ENGINE_W_Q8_0 || t == ENGINE_W_Q4_0;
}

/* The kernel table for ISA, or NULL when this CPU (or this build) lacks it. */
const struct engine_cpu_kernels *engine_cpu_kernels_get(enum engine_isa isa);
/* The best table this CPU supports. */
const struct engine_cpu_kernels *engine_cpu_kernels_best(void);
/* "scalar", "avx2", "avx512", "avx512vnni", "amx" → enum engine_isa; "auto"/NULL → -1; unknown →
 * -2. The CPU backend also reads REALM_ENGINE_ISA (same names) when asked for "auto". */
int engine_cpu_isa_from_name(const char *name);
/* The name of a table ("avx512vnni"), "?" out of range. */
const char *engine_cpu_isa_name(enum engine_isa isa);

/* Scalar reference: quantizes n floats (n a multiple of 32) into one q8 activation row. */
void engine_quantize_q8_act(const float *x, int n, void *out);
/* Dequantizes N elements of a weight row of type T starting at element 0 of SRC into DST. */
void engine_dequantize_row(enum engine_wtype t, const void *src, int n, float *dst);

/* Per-ISA tables (defined in kernels_*.c; NULL-returning stubs when not compiled). */
const struct engine_cpu_kernels *engine_cpu_kernels_scalar(void);
const struct engine_cpu_kernels *engine_cpu_kernels_avx2(void);
const struct engine_cpu_kernels *engine_cpu_kernels_avx512(void);
const struct engine_cpu_kernels *engine_cpu_kernels_avx512_vnni(void);
/* The AMX table; the first call (of this or the next function) probes the CPU and asks
 * Linux for the tile state (arch_prctl), so make it before entering a seccomp jail. */
const struct engine_cpu_kernels *engine_cpu_kernels_amx(void);
/* NULL when the AMX table is available, else why not (CPU, kernel), for logs and errors. */
const char *engine_cpu_amx_unavailable_reason(void);

#endif /* REALM_ENGINE_CPU_KERNELS_H */
