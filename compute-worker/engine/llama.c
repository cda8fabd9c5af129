/*
 * llama.c — the batched llama forward pass, written against the backend table.
 *
 * Per step: embeddings for all T tokens; per layer: RMSNorm, Q/K/V matmuls over all T
 * tokens, RoPE (adjacent pairs) at each token's position, K/V written to the sequences'
 * paged caches, causal GQA attention per token over its own sequence, output projection and
 * residual, RMSNorm, SwiGLU FFN, residual; then the final RMSNorm and the output matmul for
 * just the rows whose logits are wanted. Activation buffers are sized once for
 * max_step_tokens at engine_create(); a step allocates nothing.
 */
#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "realm/error.h"
#include "realm/limits.h"

struct engine {
  const struct engine_model *m;
  struct engine_backend be;
  struct kv_cache *kv;
  uint32_t max_tokens, max_ctx;
  char backend_name[32];
  /* activations, T = max_tokens */
  float *x;      /* (T, dim) residual stream */
  float *xb;     /* (T, dim) normed input */
  float *q;      /* (T, dim) */
  float *k, *v;  /* (T, kv_dim) */
  float *att;    /* (T, dim) attention output */
  float *tmp;    /* (T, dim) projection output */
  float *gate;   /* (T, ff_dim) */
  float *up;     /* (T, ff_dim) */
  int32_t *ids;  /* (T) */
  uint32_t *pos; /* (T) */
  struct kv_seq **tok_seq; /* (T) */
  uint32_t *out_rows;      /* (T) token index of each logits row */
};

static void *alloc_f32(size_t n) { return aligned_alloc(64, (n * sizeof(float) + 63) & ~(size_t)63); }

int engine_create(const struct engine_model *m, const struct engine_config *cfg,
                  struct engine **ret_engine, char *err, size_t errlen) {
  const struct engine_hparams *hp = &m->hp;
  int isa = -1;
  if (cfg->isa && strcmp(cfg->isa, "auto") != 0) {
    if (strcmp(cfg->isa, "scalar") == 0) isa = ENGINE_ISA_SCALAR;
    else if (strcmp(cfg->isa, "avx2") == 0) isa = ENGINE_ISA_AVX2;
    else if (strcmp(cfg->isa, "avx512") == 0) isa = ENGINE_ISA_AVX512;
    else {
      snprintf(err, errlen, "engine: isa \"%s\" unknown (auto, scalar, avx2, avx512)", cfg->isa);
      return REALM_E_INVALID_ARGUMENT;
    }
  }
  uint32_t max_tokens = cfg->max_step_tokens ? cfg->max_step_tokens : 512;
  if (max_tokens > REALM_MAX_STEP_TOKENS) {
    snprintf(err, errlen, "engine: max_step_tokens %u > %u", max_tokens, REALM_MAX_STEP_TOKENS);
    return REALM_E_TOO_LARGE;
  }
  uint32_t max_ctx = cfg->max_ctx ? cfg->max_ctx : hp->n_ctx;
  if (max_ctx > REALM_MAX_CONTEXT) {
    snprintf(err, errlen, "engine: max_ctx %u > %u", max_ctx, REALM_MAX_CONTEXT);
    return REALM_E_TOO_LARGE;
  }
  struct engine *e = calloc(1, sizeof *e);
  if (!e) return REALM_E_NOMEM;
  e->m = m;
  e->max_tokens = max_tokens;
  e->max_ctx = max_ctx;
  uint32_t max_in = hp->dim > hp->ff_dim ? hp->dim : hp->ff_dim;
  struct engine_cpu_options opt = {.n_threads = cfg->n_threads, .isa = isa,
                                   .max_tokens = max_tokens, .max_in = max_in,
                                   .max_ctx = max_ctx, .max_head_dim = hp->head_dim,
                                   .f32_activations = cfg->exact_quant};
  int rc = engine_backend_cpu_create(&opt, &e->be, err, errlen);
  if (rc < 0) {
    free(e);
    return rc;
  }
  snprintf(e->backend_name, sizeof e->backend_name, "%s/%s", e->be.ops->name,
           engine_backend_cpu_isa(&e->be));
  /* Refuse now what the backend cannot run later. */
  const struct engine_weight *ws[] = {&m->token_embd, &m->output};
  for (size_t i = 0; i < 2; i++)
    if (!e->be.ops->supports_op(e->be.ctx, ENGINE_OP_MATMUL, ws[i]->type)) {
      snprintf(err, errlen, "engine: backend %s has no matmul for weight type %d",
               e->backend_name, (int)ws[i]->type);
      engine_destroy(e);
      return REALM_E_UNSUPPORTED;
    }
  uint32_t bt = cfg->kv_block_tokens ? cfg->kv_block_tokens : 16;
  struct kv_cache_config kc = {.n_layer = hp->n_layer, .kv_dim = hp->kv_dim, .block_tokens = bt,
                               .n_blocks = cfg->kv_blocks ? cfg->kv_blocks : (max_ctx + bt - 1) / bt,
                               .max_seq_tokens = max_ctx};
  rc = kv_cache_create(&kc, &e->kv, err, errlen);
  if (rc < 0) {
    engine_destroy(e);
    return rc;
  }
  size_t T = max_tokens;
  e->x = alloc_f32(T * hp->dim);
  e->xb = alloc_f32(T * hp->dim);
  e->q = alloc_f32(T * hp->dim);
  e->k = alloc_f32(T * hp->kv_dim);
  e->v = alloc_f32(T * hp->kv_dim);
  e->att = alloc_f32(T * hp->dim);
  e->tmp = alloc_f32(T * hp->dim);
  e->gate = alloc_f32(T * hp->ff_dim);
  e->up = alloc_f32(T * hp->ff_dim);
  e->ids = malloc(sizeof(int32_t) * T);
  e->pos = malloc(sizeof(uint32_t) * T);
  e->tok_seq = malloc(sizeof(struct kv_seq *) * T);
  e->out_rows = malloc(sizeof(uint32_t) * T);
  if (!e->x || !e->xb || !e->q || !e->k || !e->v || !e->att || !e->tmp || !e->gate || !e->up ||
      !e->ids || !e->pos || !e->tok_seq || !e->out_rows) {
    engine_destroy(e);
    snprintf(err, errlen, "engine: no memory for activations of %u tokens", max_tokens);
    return REALM_E_NOMEM;
  }
  *ret_engine = e;
  return 0;
}

void engine_destroy(struct engine *e) {
  if (!e) return;
  if (e->be.ops) e->be.ops->destroy(e->be.ctx);
  kv_cache_destroy(e->kv);
  free(e->x);
  free(e->xb);
  free(e->q);
  free(e->k);
  free(e->v);
  free(e->att);
  free(e->tmp);
  free(e->gate);
  free(e->up);
  free(e->ids);
  free(e->pos);
  free(e->tok_seq);
  free(e->out_rows);
  free(e);
}

struct kv_cache *engine_kv(struct engine *e) { return e->kv; }
const struct engine_model *engine_model(const struct engine *e) { return e->m; }
const char *engine_backend_name(const struct engine *e) { return e->backend_name; }
int engine_threads(const struct engine *e) { return engine_backend_cpu_threads(&e->be); }
uint32_t engine_max_step_tokens(const struct engine *e) { return e->max_tokens; }

/* Checks the whole batch before anything changes. Returns the total token count or an error. */
static int64_t validate_batch(const struct engine *e, const struct engine_batch *b, char *err,
                              size_t errlen) {
  if (!b || b->n_seqs == 0 || !b->seqs) {
    snprintf(err, errlen, "engine: empty batch");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (b->n_seqs > REALM_MAX_BATCH_SEQS) {
    snprintf(err, errlen, "engine: batch has %u sequences (max %u)", b->n_seqs,
             REALM_MAX_BATCH_SEQS);
    return REALM_E_TOO_LARGE;
  }
  uint64_t total = 0;
  for (uint32_t i = 0; i < b->n_seqs; i++) {
    const struct engine_seq_step *s = &b->seqs[i];
    if (!s->seq || !s->tokens || s->n_tokens == 0) {
      snprintf(err, errlen, "engine: batch sequence %u has no sequence handle or no tokens", i);
      return REALM_E_INVALID_ARGUMENT;
    }
    if (s->pos > kv_seq_len(s->seq)) {
      snprintf(err, errlen, "engine: batch sequence %u starts at pos %u past its length %u", i,
               s->pos, kv_seq_len(s->seq));
      return REALM_E_INVALID_ARGUMENT;
    }
    if ((uint64_t)s->pos + s->n_tokens > e->max_ctx) {
      snprintf(err, errlen, "engine: batch sequence %u: pos %u + %u tokens exceeds context %u",
               i, s->pos, s->n_tokens, e->max_ctx);
      return REALM_E_OUT_OF_RANGE;
    }
    for (uint32_t j = 0; j < i; j++)
      if (b->seqs[j].seq == s->seq) {
        snprintf(err, errlen, "engine: batch sequences %u and %u are the same sequence", j, i);
        return REALM_E_INVALID_ARGUMENT;
      }
    for (uint32_t t = 0; t < s->n_tokens; t++)
      if (s->tokens[t] < 0 || (uint32_t)s->tokens[t] >= e->m->hp.n_vocab) {
        snprintf(err, errlen, "engine: batch sequence %u token %u: id %d outside [0, %u)", i, t,
                 s->tokens[t], e->m->hp.n_vocab);
        return REALM_E_INVALID_ARGUMENT;
      }
    total += s->n_tokens;
  }
  if (total > e->max_tokens) {
    snprintf(err, errlen, "engine: step has %llu tokens (max %u)", (unsigned long long)total,
             e->max_tokens);
    return REALM_E_TOO_LARGE;
  }
  return (int64_t)total;
}

int engine_forward(struct engine *e, const struct engine_batch *b, float *ret_logits, char *err,
                   size_t errlen) {
  int64_t total = validate_batch(e, b, err, errlen);
  if (total < 0) return (int)total;
  const uint32_t T = (uint32_t)total;

  /* Reserve KV room for every sequence; all or nothing. */
  for (uint32_t i = 0; i < b->n_seqs; i++) {
    const struct engine_seq_step *s = &b->seqs[i];
    int rc = kv_seq_reserve(e->kv, s->seq, s->pos + s->n_tokens);
    if (rc < 0) {
      for (uint32_t j = 0; j < i; j++)
        kv_seq_set_len(e->kv, b->seqs[j].seq, kv_seq_len(b->seqs[j].seq));
      snprintf(err, errlen, "engine: batch sequence %u: no KV room for %u positions (%s)", i,
               s->pos + s->n_tokens, realm_err_name(rc));
      return rc;
    }
  }

  /* Flatten the batch into per-token arrays. */
  uint32_t n_out = 0;
  for (uint32_t i = 0, t = 0; i < b->n_seqs; i++) {
    const struct engine_seq_step *s = &b->seqs[i];
    for (uint32_t j = 0; j < s->n_tokens; j++, t++) {
      e->ids[t] = s->tokens[j];
      e->pos[t] = s->pos + j;
      e->tok_seq[t] = s->seq;
      if (b->all_logits || j + 1 == s->n_tokens) e->out_rows[n_out++] = t;
    }
  }

  const struct engine_model *m = e->m;
  const struct engine_hparams *hp = &m->hp;
  const struct engine_backend_ops *ops = e->be.ops;
  void *c = e->be.ctx;
  const size_t dim = hp->dim;

  ops->get_rows(c, &m->token_embd, e->ids, T, e->x);
  struct engine_attn_args aa = {.kv = e->kv, .n_tok = T, .n_head = hp->n_head,
                                .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
                                .tok_seq = e->tok_seq, .tok_pos = e->pos, .q = e->q,
                                .k = e->k, .v = e->v, .out = e->att};
  for (uint32_t l = 0; l < hp->n_layer; l++) {
    const struct engine_layer *L = &m->layers[l];
    ops->rmsnorm(c, e->x, L->attn_norm, T, hp->dim, hp->rms_eps, e->xb);
    ops->matmul(c, &L->wq, e->xb, T, e->q);
    ops->matmul(c, &L->wk, e->xb, T, e->k);
    ops->matmul(c, &L->wv, e->xb, T, e->v);
    ops->rope(c, e->q, T, hp->n_head, hp->head_dim, hp->rope_dim, hp->rope_base, e->pos);
    ops->rope(c, e->k, T, hp->n_head_kv, hp->head_dim, hp->rope_dim, hp->rope_base, e->pos);
    aa.layer = l;
    ops->store_kv(c, &aa);
    ops->attention(c, &aa);
    ops->matmul(c, &L->wo, e->att, T, e->tmp);
    ops->add(c, e->x, e->tmp, (size_t)T * dim);
    ops->rmsnorm(c, e->x, L->ffn_norm, T, hp->dim, hp->rms_eps, e->xb);
    ops->matmul(c, &L->w_gate, e->xb, T, e->gate);
    ops->matmul(c, &L->w_up, e->xb, T, e->up);
    ops->silu_mul(c, e->gate, e->up, (size_t)T * hp->ff_dim);
    ops->matmul(c, &L->w_down, e->gate, T, e->tmp);
    ops->add(c, e->x, e->tmp, (size_t)T * dim);
  }
  /* Gather the rows whose logits are wanted, then norm and project only those. */
  for (uint32_t r = 0; r < n_out; r++)
    memcpy(e->tmp + (size_t)r * dim, e->x + (size_t)e->out_rows[r] * dim, dim * sizeof(float));
  ops->rmsnorm(c, e->tmp, m->output_norm, n_out, hp->dim, hp->rms_eps, e->xb);
  ops->matmul(c, &m->output, e->xb, n_out, ret_logits);

  for (uint32_t i = 0; i < b->n_seqs; i++)
    kv_seq_set_len(e->kv, b->seqs[i].seq, b->seqs[i].pos + b->seqs[i].n_tokens);
  return 0;
}
