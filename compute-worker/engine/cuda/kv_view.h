/*
 * kv_view.h — what the store_kv and attention kernels need to find a token's K/V rows in
 * the paged pool on the device: the pool, its geometry (layout.h) and the step's block
 * tables, all device pointers. Plain C: built by backend_cuda.c, read by the .cu files.
 */
#ifndef REALM_ENGINE_CUDA_KV_VIEW_H
#define REALM_ENGINE_CUDA_KV_VIEW_H

#include <stdint.h>

struct cuda_kv_view {
  float *pool;                   /* block b at pool + b * 2 * n_layer * block_tokens * kv_dim */
  uint32_t block_tokens, n_layer, kv_dim;
  const uint32_t *block_table;   /* (n_seqs, stride) pool block of each sequence block */
  uint32_t stride;
  const uint32_t *tok_seq_index; /* (n_tok) row of block_table of each token */
  const uint32_t *tok_pos;       /* (n_tok) position of each token */
};

#endif /* REALM_ENGINE_CUDA_KV_VIEW_H */
