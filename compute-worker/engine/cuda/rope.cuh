/* rope.cuh — rotary position embedding, adjacent pairs (ggml NORM mode), in place. */
#ifndef REALM_ENGINE_CUDA_ROPE_CUH
#define REALM_ENGINE_CUDA_ROPE_CUH
#include <cuda_runtime_api.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
/* x (n_tok, n_heads * head_dim): the first rope_dim dims of each head rotate by
 * pos[t] * base^(-2i / rope_dim) in pairs (2i, 2i + 1). pos is device memory. */
cudaError_t cuda_op_rope(cudaStream_t s, float *x, uint32_t n_tok, uint32_t n_heads,
                         uint32_t head_dim, uint32_t rope_dim, float base, const uint32_t *pos);
#ifdef __cplusplus
}
#endif
#endif
