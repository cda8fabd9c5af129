/* convert.cu — elementwise f32 → f16 / bf16 (round to nearest even), a grid-stride loop. */
#include "common.cuh"
#include "convert.cuh"

template <typename T> static __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

template <typename T> static __global__ void convert_kernel(const float *src, size_t n, T *dst) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    dst[i] = from_f32<T>(src[i]);
}

template <typename T> static void convert_launch(cudaStream_t s, const float *src, size_t n, T *dst) {
  unsigned blocks = cuda_blocks(n, 256);
  if (blocks > 65535) blocks = 65535;
  convert_kernel<T><<<blocks, 256, 0, s>>>(src, n, dst);
}

extern "C" cudaError_t cuda_op_convert_f32(cudaStream_t s, const float *src, size_t n, int to,
                                           void *dst) {
  if (n == 0) return cudaSuccess;
  if (to == CUDA_W_F16) convert_launch(s, src, n, (__half *)dst);
  else if (to == CUDA_W_BF16) convert_launch(s, src, n, (__nv_bfloat16 *)dst);
  else return cudaErrorInvalidValue;
  return cudaGetLastError();
}
