/*
 * kv.c — paged KV cache: block pool, free list, per-sequence block tables.
 *
 * Invariants (checked by tests/unit/engine/test_kv.c):
 *   1. Every block index in [0, n_blocks) is in exactly one place: the free stack or one
 *      sequence's block table. free_count + Σ seq->n_blocks == n_blocks.
 *   2. A sequence's block table covers positions [0, n_blocks * block_tokens); its length
 *      len ≤ that capacity, and it holds no block entirely past ceil(len / block_tokens)
 *      except those reserved for the step being computed (reserve → forward → set_len).
 *   3. A block is zeroed when it leaves the free stack, so a sequence never sees another
 *      sequence's keys or values, even through a bug that reads past its length.
 *   4. quota->used_blocks == Σ n_blocks over the open sequences charged to that quota, and
 *      never exceeds quota->max_blocks.
 *   5. Failed calls change nothing (reserve allocates all-or-nothing).
 *
 * Block memory: [K: n_layer][block_tokens][kv_dim] then [V: same], f32.
 */
#include "kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "realm/error.h"

/*
 * Host pool memory. Attention reads one head's slice of every position's row, kv_dim floats
 * apart, so with 4 KiB pages nearly every position is another TLB entry, and in a VM every
 * miss is a two-level page walk: it made attention's loads (and its prefetches) stall. The
 * pool is therefore mmap'ed 2 MiB-aligned and marked MADV_HUGEPAGE, which transparent huge
 * pages honour in the common "madvise" mode. Without THP the advice is a no-op and nothing
 * else changes; the pages are still touched only when a block is first handed out.
 */
#define KV_HUGE (2u << 20)

struct kv_mem { void *map; size_t map_bytes; };

static float *pool_alloc(size_t bytes, struct kv_mem *m) {
  if (bytes > SIZE_MAX - 2 * (size_t)KV_HUGE) return NULL;
  size_t len = ((bytes + KV_HUGE - 1) & ~(size_t)(KV_HUGE - 1)) + KV_HUGE;
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  uintptr_t aligned = ((uintptr_t)p + KV_HUGE - 1) & ~(uintptr_t)(KV_HUGE - 1);
  (void)madvise((void *)aligned, len - (aligned - (uintptr_t)p), MADV_HUGEPAGE);
  m->map = p;
  m->map_bytes = len;
  return (float *)aligned;
}

struct kv_cache {
  uint32_t n_layer, kv_dim, block_tokens, n_blocks, max_seq_tokens;
  size_t block_floats; /* floats per block: 2 * n_layer * block_tokens * kv_dim */
  float *pool;         /* n_blocks * block_floats, host or storage memory */
  struct kv_mem mem;   /* host: the mapping pool lies in (pool_alloc) */
  const struct kv_storage *storage; /* NULL: host */
  uint32_t *free_stack;
  uint32_t free_count;
};

struct kv_seq {
  struct kv_quota *quota;
  uint32_t len;
  uint32_t n_blocks, cap_blocks;
  uint32_t *blocks; /* block table: pool index of block i */
};

int kv_cache_create(const struct kv_cache_config *cfg, struct kv_cache **ret_cache, char *err,
                    size_t errlen) {
  uint32_t bt = cfg->block_tokens ? cfg->block_tokens : 16;
  if (cfg->n_layer == 0 || cfg->kv_dim == 0 || cfg->n_blocks == 0 || bt > 4096) {
    snprintf(err, errlen, "kv cache: bad config (n_layer %u, kv_dim %u, n_blocks %u, block_tokens %u)",
             cfg->n_layer, cfg->kv_dim, cfg->n_blocks, bt);
    return REALM_E_INVALID_ARGUMENT;
  }
  size_t block_floats = 2 * (size_t)cfg->n_layer * bt * cfg->kv_dim;
  if (block_floats > SIZE_MAX / sizeof(float) / cfg->n_blocks) {
    snprintf(err, errlen, "kv cache: %u blocks of %zu floats overflow", cfg->n_blocks,
             block_floats);
    return REALM_E_TOO_LARGE;
  }
  struct kv_cache *kv = calloc(1, sizeof *kv);
  if (!kv) goto nomem;
  kv->n_layer = cfg->n_layer;
  kv->kv_dim = cfg->kv_dim;
  kv->block_tokens = bt;
  kv->n_blocks = cfg->n_blocks;
  kv->max_seq_tokens = cfg->max_seq_tokens;
  kv->block_floats = block_floats;
  kv->storage = cfg->storage;
  /* Pages are touched lazily: blocks are zeroed when handed out, not here. */
  size_t pool_bytes = (block_floats * sizeof(float) * cfg->n_blocks + 63) & ~(size_t)63;
  kv->pool = kv->storage ? kv->storage->alloc(kv->storage->ctx, pool_bytes)
                         : pool_alloc(pool_bytes, &kv->mem);
  kv->free_stack = malloc(sizeof(uint32_t) * cfg->n_blocks);
  if (!kv->pool || !kv->free_stack) {
    kv_cache_destroy(kv);
    goto nomem;
  }
  /* Pop order 0, 1, 2, ... keeps a fresh cache's layout easy to reason about in tests. */
  for (uint32_t i = 0; i < cfg->n_blocks; i++) kv->free_stack[i] = cfg->n_blocks - 1 - i;
  kv->free_count = cfg->n_blocks;
  *ret_cache = kv;
  return 0;
nomem:
  snprintf(err, errlen, "kv cache: cannot allocate %u blocks of %zu bytes", cfg->n_blocks,
           block_floats * sizeof(float));
  return REALM_E_NOMEM;
}

void kv_cache_destroy(struct kv_cache *kv) {
  if (!kv) return;
  if (kv->storage) kv->storage->free(kv->storage->ctx, kv->pool);
  else if (kv->mem.map) munmap(kv->mem.map, kv->mem.map_bytes);
  free(kv->free_stack);
  free(kv);
}

int kv_seq_open(struct kv_cache *kv, struct kv_quota *quota, struct kv_seq **ret_seq) {
  (void)kv;
  struct kv_seq *s = calloc(1, sizeof *s);
  if (!s) return REALM_E_NOMEM;
  s->quota = quota;
  *ret_seq = s;
  return 0;
}

static void release_blocks_from(struct kv_cache *kv, struct kv_seq *s, uint32_t keep) {
  while (s->n_blocks > keep) {
    kv->free_stack[kv->free_count++] = s->blocks[--s->n_blocks];
    if (s->quota) s->quota->used_blocks--;
  }
}

void kv_seq_close(struct kv_cache *kv, struct kv_seq *s) {
  if (!s) return;
  release_blocks_from(kv, s, 0);
  free(s->blocks);
  free(s);
}

int kv_seq_reserve(struct kv_cache *kv, struct kv_seq *s, uint32_t n_tokens) {
  if (kv->max_seq_tokens && n_tokens > kv->max_seq_tokens) return REALM_E_OUT_OF_RANGE;
  uint32_t need = (uint32_t)(((uint64_t)n_tokens + kv->block_tokens - 1) / kv->block_tokens);
  if (need <= s->n_blocks) return 0;
  uint32_t extra = need - s->n_blocks;
  if (s->quota && (uint64_t)s->quota->used_blocks + extra > s->quota->max_blocks)
    return REALM_E_QUOTA;
  if (extra > kv->free_count) return REALM_E_NOMEM;
  if (need > s->cap_blocks) {
    uint32_t cap = s->cap_blocks ? s->cap_blocks : 4;
    while (cap < need) cap *= 2;
    uint32_t *nb = realloc(s->blocks, sizeof(uint32_t) * cap);
    if (!nb) return REALM_E_NOMEM;
    s->blocks = nb;
    s->cap_blocks = cap;
  }
  while (s->n_blocks < need) {
    uint32_t b = kv->free_stack[--kv->free_count];
    float *blk = kv->pool + (size_t)b * kv->block_floats;
    if (kv->storage) kv->storage->zero(kv->storage->ctx, blk, kv->block_floats * sizeof(float));
    else memset(blk, 0, kv->block_floats * sizeof(float));
    s->blocks[s->n_blocks++] = b;
    if (s->quota) s->quota->used_blocks++;
  }
  return 0;
}

uint32_t kv_seq_len(const struct kv_seq *s) { return s->len; }

uint32_t kv_seq_capacity(const struct kv_cache *kv, const struct kv_seq *s) {
  return s->n_blocks * kv->block_tokens;
}

void kv_seq_set_len(struct kv_cache *kv, struct kv_seq *s, uint32_t n) {
  uint32_t cap = kv_seq_capacity(kv, s);
  if (n > cap) n = cap;
  s->len = n;
  release_blocks_from(kv, s, (n + kv->block_tokens - 1) / kv->block_tokens);
}

static inline float *kv_row(struct kv_cache *kv, const struct kv_seq *s, uint32_t layer,
                            uint32_t pos, int v) {
  uint32_t blk = s->blocks[pos / kv->block_tokens], off = pos % kv->block_tokens;
  size_t half = (size_t)kv->n_layer * kv->block_tokens * kv->kv_dim;
  return kv->pool + (size_t)blk * kv->block_floats + (v ? half : 0) +
         ((size_t)layer * kv->block_tokens + off) * kv->kv_dim;
}

float *kv_k(struct kv_cache *kv, const struct kv_seq *s, uint32_t layer, uint32_t pos) {
  return kv_row(kv, s, layer, pos, 0);
}
float *kv_v(struct kv_cache *kv, const struct kv_seq *s, uint32_t layer, uint32_t pos) {
  return kv_row(kv, s, layer, pos, 1);
}

uint32_t kv_cache_free_blocks(const struct kv_cache *kv) { return kv->free_count; }
uint32_t kv_cache_total_blocks(const struct kv_cache *kv) { return kv->n_blocks; }
uint32_t kv_cache_block_tokens(const struct kv_cache *kv) { return kv->block_tokens; }
size_t kv_cache_block_bytes(const struct kv_cache *kv) {
  return kv->block_floats * sizeof(float);
}

float *kv_cache_pool(struct kv_cache *kv) { return kv->pool; }

const uint32_t *kv_seq_blocks(const struct kv_seq *s, uint32_t *ret_n) {
  *ret_n = s->n_blocks;
  return s->blocks;
}
