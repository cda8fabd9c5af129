/* store_kv.cuh — writes a step's K/V rows into the sequences' paged KV blocks. */
#ifndef REALM_ENGINE_CUDA_STORE_KV_CUH
#define REALM_ENGINE_CUDA_STORE_KV_CUH
#include <cuda_runtime_api.h>
#include <stdint.h>

#include "kv_view.h"
#ifdef __cplusplus
extern "C" {
#endif
/* k, v (n_tok, kv->kv_dim) → the rows of LAYER at each token's position. */
cudaError_t cuda_op_store_kv(cudaStream_t s, const struct cuda_kv_view *kv, uint32_t layer,
                             uint32_t n_tok, const float *k, const float *v);
#ifdef __cplusplus
}
#endif
#endif
