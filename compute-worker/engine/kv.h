/*
 * kv.h — the paged KV cache: a fixed pool of blocks shared by all sequences, and a block
 * table per sequence.
 *
 * A block holds KV_BLOCK_TOKENS consecutive positions of one sequence for every layer, K and
 * V, in f32: [K: layer][token][kv_dim] then [V: layer][token][kv_dim]. f32 keeps the CPU
 * engine exactly equal to an unpaged reference (f16 would halve the memory; the layout
 * allows switching later, only kv.c and the attention kernel know the element type).
 * Sequences grow a block at a time on demand (kv_seq_reserve) and give all their blocks back
 * when closed. Optional quotas (struct kv_quota, e.g. one per tenant) cap how many blocks a
 * group of sequences may hold. Not thread-safe: one owner (the engine's scheduler) calls it.
 */
#ifndef REALM_ENGINE_KV_H
#define REALM_ENGINE_KV_H

#include <stddef.h>
#include <stdint.h>

struct kv_cache;
struct kv_seq;

/* Where the block pool lives. NULL in kv_cache_config means host memory (aligned_alloc,
 * memset). A device backend (CUDA) passes its own: the pool is then device memory, the
 * pointers kv_k/kv_v/kv_cache_pool return are device addresses the host must not read, and
 * zero() is queued on the backend's stream so it is ordered before the next step's writes. */
struct kv_storage {
  void *ctx;
  void *(*alloc)(void *ctx, size_t bytes);          /* NULL on failure */
  void (*free)(void *ctx, void *p);                 /* accepts NULL */
  void (*zero)(void *ctx, void *p, size_t bytes);   /* errors are recorded by the owner */
};

struct kv_cache_config {
  uint32_t n_layer;        /* layers of the model */
  uint32_t kv_dim;         /* n_head_kv * head_dim */
  uint32_t block_tokens;   /* positions per block; 0 = 16 */
  uint32_t n_blocks;       /* blocks in the pool (allocated up front) */
  uint32_t max_seq_tokens; /* longest sequence (the model's context); 0 = unlimited */
  const struct kv_storage *storage; /* NULL: host memory; must outlive the cache */
};

/* A block budget shared by the sequences opened with it. The caller owns it and must keep
 * it alive while those sequences are open. */
struct kv_quota {
  uint32_t max_blocks;
  uint32_t used_blocks; /* maintained by kv.c */
};

int kv_cache_create(const struct kv_cache_config *cfg, struct kv_cache **ret_cache, char *err,
                    size_t errlen);
void kv_cache_destroy(struct kv_cache *kv); /* accepts NULL; sequences must be closed first */

/* Opens an empty sequence charged to QUOTA (may be NULL). */
int kv_seq_open(struct kv_cache *kv, struct kv_quota *quota, struct kv_seq **ret_seq);
/* Returns all blocks of SEQ to the pool and frees it. Accepts NULL. */
void kv_seq_close(struct kv_cache *kv, struct kv_seq *seq);

/* Makes room for positions [0, n_tokens). Allocates (and zeroes) blocks as needed. Returns
 * 0, REALM_E_OUT_OF_RANGE (past max_seq_tokens), REALM_E_QUOTA (the quota would be
 * exceeded) or REALM_E_NOMEM (pool exhausted); on failure nothing changes. */
int kv_seq_reserve(struct kv_cache *kv, struct kv_seq *seq, uint32_t n_tokens);
/* Number of valid positions (those written by forward passes). */
uint32_t kv_seq_len(const struct kv_seq *seq);
/* Sets the number of valid positions (n ≤ capacity) and releases blocks past it. Used by the
 * engine after a step, and by callers to roll a sequence back. */
void kv_seq_set_len(struct kv_cache *kv, struct kv_seq *seq, uint32_t n);
/* Positions that fit in the blocks the sequence holds. */
uint32_t kv_seq_capacity(const struct kv_cache *kv, const struct kv_seq *seq);

/* K or V row (kv_dim floats) of LAYER at POS, which must be < capacity. */
float *kv_k(struct kv_cache *kv, const struct kv_seq *seq, uint32_t layer, uint32_t pos);
float *kv_v(struct kv_cache *kv, const struct kv_seq *seq, uint32_t layer, uint32_t pos);

uint32_t kv_cache_free_blocks(const struct kv_cache *kv);
uint32_t kv_cache_total_blocks(const struct kv_cache *kv);
uint32_t kv_cache_block_tokens(const struct kv_cache *kv);
/* Bytes of one block (K and V, all layers). */
size_t kv_cache_block_bytes(const struct kv_cache *kv);
/* First byte of the pool (a device address with a device kv_storage). Block b starts
 * kv_cache_block_bytes() * b bytes in; the layout is the one at the top of this file. */
float *kv_cache_pool(struct kv_cache *kv);
/* The block table of SEQ: *ret_n pool indices, block i holding positions
 * [i * block_tokens, (i + 1) * block_tokens). Valid until the next reserve/set_len/close. */
const uint32_t *kv_seq_blocks(const struct kv_seq *seq, uint32_t *ret_n);

#endif /* REALM_ENGINE_KV_H */
