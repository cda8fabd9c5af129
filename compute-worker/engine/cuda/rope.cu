/*
 * rope.cu — one block per (head, token), one thread per rotated pair. The angle and its
 * cosine/sine are computed in double and rounded to float, exactly as the CPU backend does,
 * so positions in the thousands do not lose the phase to f32 argument rounding.
 */
#include "common.cuh"
#include "rope.cuh"

static __global__ void rope_kernel(float *x, uint32_t n_heads, uint32_t head_dim,
                                   uint32_t rope_dim, float base, const uint32_t *pos) {
  const uint32_t h = blockIdx.x, t = blockIdx.y;
  float *v = x + ((size_t)t * n_heads + h) * head_dim;
  const double p = (double)pos[t];
  for (uint32_t i = threadIdx.x; i < rope_dim / 2; i += blockDim.x) {
    double theta = p * pow((double)base, -2.0 * i / (double)rope_dim);
    float co = (float)cos(theta), si = (float)sin(theta);
    float x0 = v[2 * i], x1 = v[2 * i + 1];
    v[2 * i] = x0 * co - x1 * si;
    v[2 * i + 1] = x0 * si + x1 * co;
  }
}

static void rope_launch(cudaStream_t s, float *x, uint32_t n_tok, uint32_t n_heads,
                        uint32_t head_dim, uint32_t rope_dim, float base, const uint32_t *pos) {
  unsigned threads = rope_dim / 2 < 128 ? (rope_dim / 2 + 31) / 32 * 32 : 128;
  dim3 grid(n_heads, n_tok);
  rope_kernel<<<grid, threads, 0, s>>>(x, n_heads, head_dim, rope_dim, base, pos);
}

extern "C" cudaError_t cuda_op_rope(cudaStream_t s, float *x, uint32_t n_tok, uint32_t n_heads,
                                    uint32_t head_dim, uint32_t rope_dim, float base,
                                    const uint32_t *pos) {
  if (rope_dim > head_dim || rope_dim % 2 != 0 || n_tok > 65535 || !(base > 0.0f))
    return cudaErrorInvalidValue;
  if (n_tok == 0 || n_heads == 0 || rope_dim == 0) return cudaSuccess;
  rope_launch(s, x, n_tok, n_heads, head_dim, rope_dim, base, pos);
  return cudaGetLastError();
}
