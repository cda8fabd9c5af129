/*
 * matmul_vec.cu — the decode mat-vec: memory bound, so the goal is to stream every weight
 * byte exactly once per step at full bandwidth. One warp per weight row; lane i loads 8
 * consecutive elements at k = 8i, 8i + 256, ... (one vector load each, dequantized in
 * registers, dequant.cuh) and multiplies them into the NT activation vectors (NT ≤ 8, a
 * template parameter so the accumulators stay in registers); a shuffle reduction per token
 * gives the row's NT outputs. Activations are small and re-read by every warp from L1/L2.
 */
#include "common.cuh"
#include "dequant.cuh"
#include "matmul_vec.cuh"

#define MMV_WARPS 4 /* rows per block */

template <int TYPE, int NT>
static __global__ void matmul_vec_kernel(const void *w, uint32_t n_in, uint32_t n_out,
                                         const float *x, float *y) {
  const uint32_t lane = threadIdx.x % CUDA_WARP;
  const uint32_t row = blockIdx.x * MMV_WARPS + threadIdx.x / CUDA_WARP;
  if (row >= n_out) return;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; t++) acc[t] = 0.0f;
  for (uint32_t k = lane * 8; k < n_in; k += CUDA_WARP * 8) {
    float wv[8];
    load8<TYPE>(w, n_in, n_out, row, k, wv);
#pragma unroll
    for (int t = 0; t < NT; t++) {
      const float4 *xp = (const float4 *)(x + (size_t)t * n_in + k);
      float4 a = xp[0], b = xp[1];
      acc[t] += wv[0] * a.x + wv[1] * a.y + wv[2] * a.z + wv[3] * a.w + wv[4] * b.x +
                wv[5] * b.y + wv[6] * b.z + wv[7] * b.w;
    }
  }
#pragma unroll
  for (int t = 0; t < NT; t++) {
    float v = warp_sum(acc[t]);
    if (lane == 0) y[(size_t)t * n_out + row] = v;
  }
}

template <int TYPE, int NT>
static void matmul_vec_launch(cudaStream_t s, const void *w, uint32_t n_in, uint32_t n_out,
                              const float *x, float *y) {
  matmul_vec_kernel<TYPE, NT><<<cuda_blocks(n_out, MMV_WARPS), MMV_WARPS * CUDA_WARP, 0, s>>>(
      w, n_in, n_out, x, y);
}

template <int TYPE>
static void matmul_vec_dispatch(cudaStream_t s, const void *w, uint32_t n_in, uint32_t n_out,
                                const float *x, uint32_t n_tok, float *y) {
  switch (n_tok) {
  case 1: matmul_vec_launch<TYPE, 1>(s, w, n_in, n_out, x, y); break;
  case 2: matmul_vec_launch<TYPE, 2>(s, w, n_in, n_out, x, y); break;
  case 3: matmul_vec_launch<TYPE, 3>(s, w, n_in, n_out, x, y); break;
  case 4: matmul_vec_launch<TYPE, 4>(s, w, n_in, n_out, x, y); break;
  case 5: matmul_vec_launch<TYPE, 5>(s, w, n_in, n_out, x, y); break;
  case 6: matmul_vec_launch<TYPE, 6>(s, w, n_in, n_out, x, y); break;
  case 7: matmul_vec_launch<TYPE, 7>(s, w, n_in, n_out, x, y); break;
  default: matmul_vec_launch<TYPE, 8>(s, w, n_in, n_out, x, y); break;
  }
}

extern "C" cudaError_t cuda_op_matmul_vec(cudaStream_t s, int type, const void *w, uint32_t n_in,
                                          uint32_t n_out, const float *x, uint32_t n_tok,
                                          float *y) {
  if (n_tok == 0 || n_tok > CUDA_MMV_MAX_TOKENS || n_in % 8 != 0 ||
      ((uintptr_t)x & 15) != 0 ||
      ((type == CUDA_W_Q8_0 || type == CUDA_W_Q4_0) && n_in % CUDA_QK != 0))
    return cudaErrorInvalidValue;
  if (n_out == 0) return cudaSuccess;
  switch (type) {
  case CUDA_W_F32: matmul_vec_dispatch<CUDA_W_F32>(s, w, n_in, n_out, x, n_tok, y); break;
  case CUDA_W_F16: matmul_vec_dispatch<CUDA_W_F16>(s, w, n_in, n_out, x, n_tok, y); break;
  case CUDA_W_BF16: matmul_vec_dispatch<CUDA_W_BF16>(s, w, n_in, n_out, x, n_tok, y); break;
  case CUDA_W_Q8_0: matmul_vec_dispatch<CUDA_W_Q8_0>(s, w, n_in, n_out, x, n_tok, y); break;
  case CUDA_W_Q4_0: matmul_vec_dispatch<CUDA_W_Q4_0>(s, w, n_in, n_out, x, n_tok, y); break;
  default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}
