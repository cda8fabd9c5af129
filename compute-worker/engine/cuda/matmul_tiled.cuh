/* matmul_tiled.cuh — weight × many activation vectors (prefill, big batches) for the
 * quantized types, dequantizing tiles into shared memory. */
#ifndef REALM_ENGINE_CUDA_MATMUL_TILED_CUH
#define REALM_ENGINE_CUDA_MATMUL_TILED_CUH
#include <cuda_runtime_api.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
/* y (n_tok, n_out) = x (n_tok, n_in) · Wᵀ, f32 activations and accumulation, any n_tok;
 * n_in % 32 == 0, x 16-byte aligned. Serves every type (the float types normally go to
 * cuBLAS; this is their fallback). */
cudaError_t cuda_op_matmul_tiled(cudaStream_t s, int type, const void *w, uint32_t n_in,
                                 uint32_t n_out, const float *x, uint32_t n_tok, float *y);
#ifdef __cplusplus
}
#endif
#endif
