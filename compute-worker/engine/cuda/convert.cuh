/* convert.cuh — f32 activations → f16 / bf16, the B operand of the cuBLAS GEMMs. */
#ifndef REALM_ENGINE_CUDA_CONVERT_CUH
#define REALM_ENGINE_CUDA_CONVERT_CUH
#include <cuda_runtime_api.h>
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif
/* dst (n elements of TO: CUDA_W_F16 or CUDA_W_BF16) = round-to-nearest(src). */
cudaError_t cuda_op_convert_f32(cudaStream_t s, const float *src, size_t n, int to, void *dst);
#ifdef __cplusplus
}
#endif
#endif
