/* silu_mul.cu — gate[i] = gate[i] / (1 + e^-gate[i]) * up[i], a grid-stride loop. */
#include "common.cuh"
#include "silu_mul.cuh"

static __global__ void silu_mul_kernel(float *gate, const float *up, size_t n) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    float g = gate[i];
    gate[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

static void silu_mul_launch(cudaStream_t s, float *gate, const float *up, size_t n) {
  unsigned blocks = cuda_blocks(n, 256);
  if (blocks > 65535) blocks = 65535;
  silu_mul_kernel<<<blocks, 256, 0, s>>>(gate, up, n);
}

extern "C" cudaError_t cuda_op_silu_mul(cudaStream_t s, float *gate, const float *up, size_t n) {
  if (n == 0) return cudaSuccess;
  silu_mul_launch(s, gate, up, n);
  return cudaGetLastError();
}
