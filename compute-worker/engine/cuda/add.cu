/* add.cu — x[i] += y[i], a grid-stride loop. */
#include "add.cuh"
#include "common.cuh"

static __global__ void add_kernel(float *x, const float *y, size_t n) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    x[i] += y[i];
}

static void add_launch(cudaStream_t s, float *x, const float *y, size_t n) {
  unsigned blocks = cuda_blocks(n, 256);
  if (blocks > 65535) blocks = 65535;
  add_kernel<<<blocks, 256, 0, s>>>(x, y, n);
}

extern "C" cudaError_t cuda_op_add(cudaStream_t s, float *x, const float *y, size_t n) {
  if (n == 0) return cudaSuccess;
  add_launch(s, x, y, n);
  return cudaGetLastError();
}
