/*
 * layout.h — how the CUDA backend lays weights and KV rows out in device memory, as inline
 * functions that compile both for the host (C, the repacker and the CPU-side tests) and for
 * the device (CUDA, the get_rows kernel). One definition of each layout, so a test that runs
 * without a GPU checks the very addressing the kernels use.
 *
 * Weights (engine_weight as prepare_weight returns it; n_out rows of n_in elements):
 *   F32 / F16 / BF16: row-major as in the GGUF file; row_bytes = n_in * element size.
 *   Q8_0: [qs: n_out][n_in] int8, then [d: n_out][n_in / 32] fp16. row_bytes = n_in.
 *   Q4_0: [qs: n_out][n_in / 32][16] bytes (each 16-byte group is one ggml block's nibbles,
 *         element j in the low nibble of byte j, element j + 16 in its high nibble, both
 *         offset by 8), then [d: n_out][n_in / 32] fp16. row_bytes = n_in / 2.
 *   Splitting scales from quants (ggml interleaves them in 34/18-byte blocks) makes every
 *   row 16-byte aligned, so the mat-vec kernels load 8 or 16 quants per instruction. The
 *   engine's loader guarantees n_in % 32 == 0 for the quantized types (it dequantizes any
 *   other tensor to F32 at load), and prepare_weight refuses anything else.
 * KV pool (kv.h): block b at pool + b * block_floats; K rows [layer][token][kv_dim], then V.
 */
#ifndef REALM_ENGINE_CUDA_LAYOUT_H
#define REALM_ENGINE_CUDA_LAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define CUDA_LAYOUT_FN static __host__ __device__ __forceinline__
#else
#define CUDA_LAYOUT_FN static inline
#endif

/* Weight types: the same numbering as enum engine_wtype (cpu/kernels.h), restated here so
 * the .cu files need no engine header; backend_cuda.c checks they agree. */
enum cuda_wtype { CUDA_W_F32 = 0, CUDA_W_F16, CUDA_W_BF16, CUDA_W_Q8_0, CUDA_W_Q4_0 };

#define CUDA_QK 32 /* elements per Q8_0 / Q4_0 block */

/* fp16 bits → f32, exact (subnormals included); written out so host and device agree. */
CUDA_LAYOUT_FN float cuda_layout_fp16(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {
      int e = -1;
      do {
        e++;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

CUDA_LAYOUT_FN float cuda_layout_bf16(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* Bytes of the quant part of one row, and of the whole device copy. */
CUDA_LAYOUT_FN size_t cuda_layout_row_bytes(int type, uint32_t n_in) {
  switch (type) {
  case CUDA_W_F32: return (size_t)n_in * 4;
  case CUDA_W_F16:
  case CUDA_W_BF16: return (size_t)n_in * 2;
  case CUDA_W_Q8_0: return n_in;
  default: return n_in / 2; /* Q4_0 */
  }
}

CUDA_LAYOUT_FN size_t cuda_layout_bytes(int type, uint32_t n_in, uint32_t n_out) {
  size_t b = cuda_layout_row_bytes(type, n_in) * n_out;
  if (type == CUDA_W_Q8_0 || type == CUDA_W_Q4_0) b += (size_t)n_out * (n_in / CUDA_QK) * 2;
  return b;
}

/* The fp16 scales of a quantized weight: they follow the n_out rows of quants. */
CUDA_LAYOUT_FN const uint16_t *cuda_layout_scales(const void *w, int type, uint32_t n_in,
                                                 uint32_t n_out) {
  return (const uint16_t *)((const char *)w + cuda_layout_row_bytes(type, n_in) * n_out);
}

/* Element J of row ROW of a device-layout weight W (n_out rows). */
CUDA_LAYOUT_FN float cuda_layout_get(const void *w, int type, uint32_t n_in, uint32_t n_out,
                                     uint32_t row, uint32_t j) {
  const char *r = (const char *)w + cuda_layout_row_bytes(type, n_in) * row;
  switch (type) {
  case CUDA_W_F32: return ((const float *)r)[j];
  case CUDA_W_F16: return cuda_layout_fp16(((const uint16_t *)r)[j]);
  case CUDA_W_BF16: return cuda_layout_bf16(((const uint16_t *)r)[j]);
  case CUDA_W_Q8_0: {
    float d = cuda_layout_fp16(cuda_layout_scales(w, type, n_in, n_out)[(size_t)row * (n_in / CUDA_QK) + j / CUDA_QK]);
    return d * (float)((const int8_t *)r)[j];
  }
  default: { /* Q4_0 */
    float d = cuda_layout_fp16(cuda_layout_scales(w, type, n_in, n_out)[(size_t)row * (n_in / CUDA_QK) + j / CUDA_QK]);
    uint32_t jj = j % CUDA_QK;
    uint8_t byte = ((const uint8_t *)r)[(j / CUDA_QK) * 16 + (jj & 15)];
    int nib = jj < 16 ? (byte & 15) : (byte >> 4);
    return d * (float)(nib - 8);
  }
  }
}

/* Float offset of the K (v = 0) or V (v = 1) row of (layer, pos) of a sequence whose block
 * table is BLOCKS, from the start of the pool. */
CUDA_LAYOUT_FN size_t cuda_layout_kv_offset(const uint32_t *blocks, uint32_t block_tokens,
                                            uint32_t n_layer, uint32_t kv_dim, uint32_t layer,
                                            uint32_t pos, int v) {
  size_t half = (size_t)n_layer * block_tokens * kv_dim;
  return (size_t)blocks[pos / block_tokens] * 2 * half + (v ? half : 0) +
         ((size_t)layer * block_tokens + pos % block_tokens) * kv_dim;
}

#endif /* REALM_ENGINE_CUDA_LAYOUT_H */
