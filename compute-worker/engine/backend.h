/*
 * backend.h — the compute backend interface: one table of function pointers per backend
 * (CPU first; CUDA slots in later, DESIGN.md §6).
 *
 * The forward pass in llama.c is written only against this table, so a backend supplies
 * exactly the ops a llama step needs and nothing else. Tensors are plain row-major f32
 * arrays in the backend's memory ("host" for the CPU backend); a weight is an engine_weight
 * from model.h. supports_op() lets the engine refuse a model a backend cannot run (for
 * example a weight type with no kernel) at engine_create() instead of mid-step.
 */
#ifndef REALM_ENGINE_BACKEND_H
#define REALM_ENGINE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "model.h"

enum engine_op {
  ENGINE_OP_GET_ROWS,  /* embedding lookup */
  ENGINE_OP_MATMUL,    /* weight × batch of activations */
  ENGINE_OP_RMSNORM,
  ENGINE_OP_ROPE,      /* adjacent pairs (ggml NORM mode) */
  ENGINE_OP_STORE_KV,  /* write this step's K/V rows into the paged cache */
  ENGINE_OP_ATTENTION, /* causal GQA attention over a sequence's paged KV */
  ENGINE_OP_SILU_MUL,
  ENGINE_OP_ADD,
  ENGINE_OP_COUNT
};

/* Per-token description of one step, shared by store_kv and attention. */
struct engine_attn_args {
  struct kv_cache *kv;
  uint32_t layer, n_tok, n_head, n_head_kv, head_dim;
  struct kv_seq *const *tok_seq; /* (n_tok) sequence of each token */
  const uint32_t *tok_pos;       /* (n_tok) position of each token; attends to [0, pos] */
  const float *q;                /* (n_tok, n_head * head_dim), RoPE applied */
  const float *k, *v;            /* (n_tok, n_head_kv * head_dim), for store_kv */
  float *out;                    /* (n_tok, n_head * head_dim) */
};

struct engine_backend_ops {
  const char *name;
  bool (*supports_op)(void *ctx, enum engine_op op, enum engine_wtype type);
  /* out (n, w->n_in) = rows ids[0..n) of w, dequantized */
  void (*get_rows)(void *ctx, const struct engine_weight *w, const int32_t *ids, uint32_t n,
                   float *out);
  /* y (n_tok, w->n_out) = x (n_tok, w->n_in) · wᵀ — every weight row read once per call */
  void (*matmul)(void *ctx, const struct engine_weight *w, const float *x, uint32_t n_tok,
                 float *y);
  /* y (n_tok, dim) = x / rms(x) * g */
  void (*rmsnorm)(void *ctx, const float *x, const float *g, uint32_t n_tok, uint32_t dim,
                  float eps, float *y);
  /* in place on x (n_tok, n_heads * head_dim); the first rope_dim dims of each head rotate */
  void (*rope)(void *ctx, float *x, uint32_t n_tok, uint32_t n_heads, uint32_t head_dim,
               uint32_t rope_dim, float base, const uint32_t *pos);
  void (*store_kv)(void *ctx, const struct engine_attn_args *a);
  void (*attention)(void *ctx, const struct engine_attn_args *a);
  /* gate[i] = silu(gate[i]) * up[i] */
  void (*silu_mul)(void *ctx, float *gate, const float *up, size_t n);
  /* x[i] += y[i] */
  void (*add)(void *ctx, float *x, const float *y, size_t n);
  void (*destroy)(void *ctx);
};

struct engine_backend {
  const struct engine_backend_ops *ops;
  void *ctx;
};

struct engine_cpu_options {
  int n_threads;         /* <= 0: online CPUs */
  int isa;               /* -1: best available; else enum engine_isa */
  uint32_t max_tokens;   /* most tokens per step */
  uint32_t max_in;       /* longest weight row (elements) */
  uint32_t max_ctx;      /* longest sequence */
  uint32_t max_head_dim; /* for RoPE scratch */
  int f32_activations;   /* Q8_0/Q4_0 against f32 activations (exact) instead of int8 */
};

/* Creates the CPU backend. Errors: REALM_E_UNSUPPORTED (ISA not on this CPU), NOMEM, SYSTEM. */
int engine_backend_cpu_create(const struct engine_cpu_options *opt, struct engine_backend *ret,
                              char *err, size_t errlen);
/* Kernel ISA name in use ("scalar", "avx2", "avx512") and thread count of a CPU backend. */
const char *engine_backend_cpu_isa(const struct engine_backend *b);
int engine_backend_cpu_threads(const struct engine_backend *b);

#endif /* REALM_ENGINE_BACKEND_H */
