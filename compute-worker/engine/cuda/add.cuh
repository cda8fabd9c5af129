/* add.cuh — the residual add: x += y. */
#ifndef REALM_ENGINE_CUDA_ADD_CUH
#define REALM_ENGINE_CUDA_ADD_CUH
#include <cuda_runtime_api.h>
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif
cudaError_t cuda_op_add(cudaStream_t s, float *x, const float *y, size_t n);
#ifdef __cplusplus
}
#endif
#endif
