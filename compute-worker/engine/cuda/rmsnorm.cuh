/* rmsnorm.cuh — y = x / rms(x) * g per token row. */
#ifndef REALM_ENGINE_CUDA_RMSNORM_CUH
#define REALM_ENGINE_CUDA_RMSNORM_CUH
#include <cuda_runtime_api.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
/* y (n_tok, dim) = x (n_tok, dim) / sqrt(mean(x²) + eps) * g (dim); y may equal x. */
cudaError_t cuda_op_rmsnorm(cudaStream_t s, const float *x, const float *g, uint32_t n_tok,
                            uint32_t dim, float eps, float *y);
#ifdef __cplusplus
}
#endif
#endif
