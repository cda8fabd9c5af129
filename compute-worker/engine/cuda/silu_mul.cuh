/* silu_mul.cuh — SwiGLU's elementwise half: gate = silu(gate) * up. */
#ifndef REALM_ENGINE_CUDA_SILU_MUL_CUH
#define REALM_ENGINE_CUDA_SILU_MUL_CUH
#include <cuda_runtime_api.h>
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif
cudaError_t cuda_op_silu_mul(cudaStream_t s, float *gate, const float *up, size_t n);
#ifdef __cplusplus
}
#endif
#endif
