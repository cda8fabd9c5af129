/*
 * common.cuh — what every CUDA op file shares: the runtime headers, warp reductions, and
 * the launch convention. Device code only (included by the .cu files, never by C).
 *
 * Convention (ggml's, see STYLE.md): each op is a .cu/.cuh pair with a static kernel, a
 * static launcher that takes the stream, and one public extern "C" entry that checks types
 * and shapes and returns a cudaError_t: cudaErrorInvalidValue for a call the kernel cannot
 * serve (the caller records it like any failed CUDA call — no abort() in a serving
 * process), otherwise cudaGetLastError() after the launch.
 */
#ifndef REALM_ENGINE_CUDA_COMMON_CUH
#define REALM_ENGINE_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "layout.h"

#define CUDA_WARP 32

static __device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = CUDA_WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

static __device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = CUDA_WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

static inline unsigned cuda_blocks(size_t n, unsigned per_block) {
  return (unsigned)((n + per_block - 1) / per_block);
}

#endif /* REALM_ENGINE_CUDA_COMMON_CUH */
