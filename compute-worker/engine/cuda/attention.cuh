/* attention.cuh — causal GQA attention of a step's tokens over their sequences' paged KV. */
#ifndef REALM_ENGINE_CUDA_ATTENTION_CUH
#define REALM_ENGINE_CUDA_ATTENTION_CUH
#include <cuda_runtime_api.h>
#include <stdint.h>

#include "kv_view.h"
#ifdef __cplusplus
extern "C" {
#endif
/* out (n_tok, n_head * head_dim): for each token t and query head h, softmax over positions
 * [0, tok_pos[t]] of q·k / sqrt(head_dim), times V, with K/V of kv head h / (n_head /
 * n_head_kv) read from LAYER of the token's sequence. Serves decode (one token per
 * sequence) and chunked prefill (each token of the chunk sees the chunk's earlier tokens,
 * already stored). head_dim ≤ 256. */
cudaError_t cuda_op_attention(cudaStream_t s, const struct cuda_kv_view *kv, uint32_t layer,
                              uint32_t n_tok, uint32_t n_head, uint32_t n_head_kv,
                              uint32_t head_dim, const float *q, float *out);
#ifdef __cplusplus
}
#endif
#endif
