/* matmul_vec.cuh — weight × a few activation vectors (decode): one warp per weight row. */
#ifndef REALM_ENGINE_CUDA_MATMUL_VEC_CUH
#define REALM_ENGINE_CUDA_MATMUL_VEC_CUH
#include <cuda_runtime_api.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
#define CUDA_MMV_MAX_TOKENS 8
/* y (n_tok, n_out) = x (n_tok, n_in) · Wᵀ for W in the device layout of TYPE, f32
 * activations and accumulation. 1 ≤ n_tok ≤ CUDA_MMV_MAX_TOKENS, n_in % 8 == 0 (% 32 for
 * the quantized types), x 16-byte aligned. */
cudaError_t cuda_op_matmul_vec(cudaStream_t s, int type, const void *w, uint32_t n_in,
                               uint32_t n_out, const float *x, uint32_t n_tok, float *y);
#ifdef __cplusplus
}
#endif
#endif
