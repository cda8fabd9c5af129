/*
 * get_rows.cu — embedding lookup: one thread per output element, dequantizing through
 * layout.h's cuda_layout_get (the same function the CPU-side layout test checks). Memory
 * bound and tiny (a few rows per step), so there is no vectorized variant.
 */
#include "common.cuh"
#include "get_rows.cuh"

static __global__ void get_rows_kernel(int type, const void *w, uint32_t n_in, uint32_t n_rows,
                                       const int32_t *ids, float *out) {
  uint32_t j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n_in) return;
  uint32_t row = (uint32_t)ids[blockIdx.y];
  out[(size_t)blockIdx.y * n_in + j] = cuda_layout_get(w, type, n_in, n_rows, row, j);
}

static void get_rows_launch(cudaStream_t s, int type, const void *w, uint32_t n_in,
                            uint32_t n_rows, const int32_t *ids, uint32_t n, float *out) {
  dim3 grid(cuda_blocks(n_in, 256), n);
  get_rows_kernel<<<grid, 256, 0, s>>>(type, w, n_in, n_rows, ids, out);
}

extern "C" cudaError_t cuda_op_get_rows(cudaStream_t s, int type, const void *w, uint32_t n_in,
                                        uint32_t n_rows, const int32_t *ids, uint32_t n,
                                        float *out) {
  if (type < CUDA_W_F32 || type > CUDA_W_Q4_0 || n > 65535 ||
      ((type == CUDA_W_Q8_0 || type == CUDA_W_Q4_0) && n_in % CUDA_QK != 0))
    return cudaErrorInvalidValue;
  if (n == 0 || n_in == 0) return cudaSuccess;
  get_rows_launch(s, type, w, n_in, n_rows, ids, n, out);
  return cudaGetLastError();
}
