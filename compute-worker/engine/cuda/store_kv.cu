/*
 * store_kv.cu — one block per token copies its K and V rows to the pool block the
 * sequence's block table names for that position (layout.h's cuda_layout_kv_offset).
 */
#include "common.cuh"
#include "store_kv.cuh"

static __global__ void store_kv_kernel(struct cuda_kv_view kv, uint32_t layer, const float *k,
                                       const float *v) {
  const uint32_t t = blockIdx.x;
  const uint32_t *blocks = kv.block_table + (size_t)kv.tok_seq_index[t] * kv.stride;
  const uint32_t pos = kv.tok_pos[t];
  float *kd = kv.pool + cuda_layout_kv_offset(blocks, kv.block_tokens, kv.n_layer, kv.kv_dim,
                                              layer, pos, 0);
  float *vd = kv.pool + cuda_layout_kv_offset(blocks, kv.block_tokens, kv.n_layer, kv.kv_dim,
                                              layer, pos, 1);
  for (uint32_t i = threadIdx.x; i < kv.kv_dim; i += blockDim.x) {
    kd[i] = k[(size_t)t * kv.kv_dim + i];
    vd[i] = v[(size_t)t * kv.kv_dim + i];
  }
}

static void store_kv_launch(cudaStream_t s, const struct cuda_kv_view *kv, uint32_t layer,
                            uint32_t n_tok, const float *k, const float *v) {
  store_kv_kernel<<<n_tok, 128, 0, s>>>(*kv, layer, k, v);
}

extern "C" cudaError_t cuda_op_store_kv(cudaStream_t s, const struct cuda_kv_view *kv,
                                        uint32_t layer, uint32_t n_tok, const float *k,
                                        const float *v) {
  if (layer >= kv->n_layer || kv->kv_dim == 0 || kv->block_tokens == 0)
    return cudaErrorInvalidValue;
  if (n_tok == 0) return cudaSuccess;
  store_kv_launch(s, kv, layer, n_tok, k, v);
  return cudaGetLastError();
}
