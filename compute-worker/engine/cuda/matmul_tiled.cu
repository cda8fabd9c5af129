/*
 * matmul_tiled.cu — classic shared-memory tiled GEMM with dequantization on the tile load:
 * a block computes a 64 (weight rows) × 64 (tokens) tile of y, walking n_in in steps of 32
 * (one quant block). Each of the 256 threads loads 8 weight elements (one load8) and 8
 * activations per step, and accumulates a 4 × 4 sub-tile from shared memory. The weight
 * tile is read once per 64 tokens instead of once per token, which is what makes prefill
 * compute bound rather than bandwidth bound. f32 FMA only (no tensor cores): the simple,
 * verifiable first version; docs/cuda.md lists the faster variants (dequantize to f16 and
 * cuBLAS, or int8 MMA) as next steps.
 */
#include "common.cuh"
#include "dequant.cuh"
#include "matmul_tiled.cuh"

#define TM 64 /* weight rows per tile */
#define TN 64 /* tokens per tile */
#define TK 32 /* inner dimension per step */

template <int TYPE>
static __global__ void __launch_bounds__(256) matmul_tiled_kernel(const void *w, uint32_t n_in,
                                                                  uint32_t n_out, const float *x,
                                                                  uint32_t n_tok, float *y) {
  __shared__ float ws[TK][TM + 1]; /* +1: the transposed stores do not all hit one bank */
  __shared__ float xs[TK][TN + 1];
  const uint32_t tid = threadIdx.x;
  const uint32_t row0 = blockIdx.x * TM, tok0 = blockIdx.y * TN;
  const uint32_t ty = tid / 16, tx = tid % 16; /* sub-tile: rows ty*4.., tokens tx*4.. */
  const uint32_t lr = tid / 4, lk = (tid % 4) * 8; /* loader: row/token lr, k offset lk */
  float acc[4][4] = {};
  for (uint32_t k0 = 0; k0 < n_in; k0 += TK) {
    float v[8];
    if (row0 + lr < n_out) {
      load8<TYPE>(w, n_in, n_out, row0 + lr, k0 + lk, v);
    } else {
#pragma unroll
      for (int i = 0; i < 8; i++) v[i] = 0.0f;
    }
#pragma unroll
    for (int i = 0; i < 8; i++) ws[lk + i][lr] = v[i];
    if (tok0 + lr < n_tok) {
      const float4 *xp = (const float4 *)(x + (size_t)(tok0 + lr) * n_in + k0 + lk);
      float4 a = xp[0], b = xp[1];
      v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
      v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
    } else {
#pragma unroll
      for (int i = 0; i < 8; i++) v[i] = 0.0f;
    }
#pragma unroll
    for (int i = 0; i < 8; i++) xs[lk + i][lr] = v[i];
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < TK; kk++) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; i++) {
        a[i] = ws[kk][ty * 4 + i];
        b[i] = xs[kk][tx * 4 + i];
      }
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; i++) {
    uint32_t row = row0 + ty * 4 + i;
    if (row >= n_out) continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      uint32_t tok = tok0 + tx * 4 + j;
      if (tok < n_tok) y[(size_t)tok * n_out + row] = acc[i][j];
    }
  }
}

template <int TYPE>
static void matmul_tiled_launch(cudaStream_t s, const void *w, uint32_t n_in, uint32_t n_out,
                                const float *x, uint32_t n_tok, float *y) {
  dim3 grid(cuda_blocks(n_out, TM), cuda_blocks(n_tok, TN));
  matmul_tiled_kernel<TYPE><<<grid, 256, 0, s>>>(w, n_in, n_out, x, n_tok, y);
}

extern "C" cudaError_t cuda_op_matmul_tiled(cudaStream_t s, int type, const void *w,
                                            uint32_t n_in, uint32_t n_out, const float *x,
                                            uint32_t n_tok, float *y) {
  if (n_in % TK != 0 || ((uintptr_t)x & 15) != 0 || cuda_blocks(n_tok, TN) > 65535)
    return cudaErrorInvalidValue;
  if (n_tok == 0 || n_out == 0) return cudaSuccess;
  switch (type) {
  case CUDA_W_F32: matmul_tiled_launch<CUDA_W_F32>(s, w, n_in, n_out, x, n_tok, y); break;
  case CUDA_W_F16: matmul_tiled_launch<CUDA_W_F16>(s, w, n_in, n_out, x, n_tok, y); break;
  case CUDA_W_BF16: matmul_tiled_launch<CUDA_W_BF16>(s, w, n_in, n_out, x, n_tok, y); break;
  case CUDA_W_Q8_0: matmul_tiled_launch<CUDA_W_Q8_0>(s, w, n_in, n_out, x, n_tok, y); break;
  case CUDA_W_Q4_0: matmul_tiled_launch<CUDA_W_Q4_0>(s, w, n_in, n_out, x, n_tok, y); break;
  default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}
