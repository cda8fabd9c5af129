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
  int device;                    /* be has memory hooks: buffers below are backend memory */
  struct kv_cache *kv;
  uint32_t max_tokens, max_ctx;
  uint32_t bt_stride;            /* block-table row length: ceil(max_ctx / block_tokens) */
  char backend_name[96];
  /* Weights as the backend sees them: the model's own on a host backend; device copies
   * (prepare_weight) otherwise, with the norm vectors uploaded beside them. */
  struct engine_weight token_embd, output;
  const float *output_norm;
  struct engine_layer *layers;   /* (n_layer); == m->layers on a host backend */
  /* activations in backend memory, T = max_tokens */
  float *x;      /* (T, dim) residual stream */
  float *xb;     /* (T, dim) normed input */
  float *q;      /* (T, dim) */
  float *k, *v;  /* (T, kv_dim) */
  float *att;    /* (T, dim) attention output */
  float *tmp;    /* (T, dim) projection output */
  float *gate;   /* (T, ff_dim) */
  float *up;     /* (T, ff_dim) */
  float *logits; /* (T, n_vocab) device backend only; a host backend writes ret_logits */
  /* per-step index arrays: host side, and (device backend) backend copies d_* */
  int32_t *ids, *d_ids;             /* (T) */
  uint32_t *pos, *d_pos;            /* (T) */
  uint32_t *out_rows, *d_out_rows;  /* (T) token index of each logits row */
  uint32_t *seq_index, *d_seq_index; /* (T) batch sequence of each token */
  uint32_t *block_table, *d_block_table; /* (T, bt_stride) device backend only */
  struct kv_seq **tok_seq;          /* (T) host only */
};

/* ---- memory through the backend (host aligned_alloc when it has no hooks) ---- */

static void *be_alloc(struct engine *e, size_t bytes) {
  bytes = (bytes + 63) & ~(size_t)63;
  if (e->device) return e->be.ops->alloc(e->be.ctx, bytes ? bytes : 64);
  return aligned_alloc(64, bytes ? bytes : 64);
}

static void be_free(struct engine *e, void *p) {
  if (!p) return;
  if (e->device) e->be.ops->free(e->be.ctx, p);
  else free(p);
}

static void be_upload(struct engine *e, void *dst, const void *src, size_t bytes) {
  if (e->device) e->be.ops->copy(e->be.ctx, dst, src, bytes, ENGINE_COPY_H2D);
  else if (dst != src) memcpy(dst, src, bytes);
}

static int parse_isa(const char *s, int *ret_isa, char *err, size_t errlen) {
  /* the kernels' own name table, so every table (avx512vnni, amx too) can be asked for */
  int isa = engine_cpu_isa_from_name(s);
  if (isa == -2) {
    snprintf(err, errlen,
             "engine: isa \"%.32s\" unknown (auto, scalar, avx2, avx512, avx512vnni, amx)", s);
    return REALM_E_INVALID_ARGUMENT;
  }
  *ret_isa = isa;
  return 0;
}

/* Creates the backend engine_config.backend names; fills e->be and e->backend_name. */
static int create_backend(struct engine *e, const struct engine_config *cfg, char *err,
                          size_t errlen) {
  const struct engine_hparams *hp = &e->m->hp;
  const char *want = cfg->backend ? cfg->backend : "cpu";
  int use_cuda;
  if (strcmp(want, "cpu") == 0) use_cuda = 0;
  else if (strcmp(want, "cuda") == 0) use_cuda = 1;
  else if (strcmp(want, "auto") == 0) {
    char why[160];
    use_cuda = engine_backend_cuda_devices(why, sizeof why) > 0;
  } else {
    snprintf(err, errlen, "engine: backend \"%s\" unknown (cpu, cuda, auto)", want);
    return REALM_E_INVALID_ARGUMENT;
  }
  uint32_t max_in = hp->dim > hp->ff_dim ? hp->dim : hp->ff_dim;
  if (use_cuda) {
    uint32_t max_out = hp->n_vocab > max_in ? hp->n_vocab : max_in;
    struct engine_cuda_options co = {.device = cfg->cuda_device, .max_tokens = e->max_tokens,
                                     .max_in = max_in, .max_out = max_out,
                                     .max_ctx = e->max_ctx, .max_head_dim = hp->head_dim};
    int rc = engine_backend_cuda_create(&co, &e->be, err, errlen);
    if (rc < 0) return rc;
    snprintf(e->backend_name, sizeof e->backend_name, "%s/%s", e->be.ops->name,
             engine_backend_cuda_device_name(&e->be));
    e->device = 1;
    return 0;
  }
  int isa;
  int rc = parse_isa(cfg->isa, &isa, err, errlen);
  if (rc < 0) return rc;
  struct engine_cpu_options opt = {.n_threads = cfg->n_threads,
                                   .spin_us = cfg->pool_spin_us, .isa = isa,
                                   .max_tokens = e->max_tokens, .max_in = max_in,
                                   .max_ctx = e->max_ctx, .max_head_dim = hp->head_dim,
                                   .f32_activations = cfg->exact_quant};
  rc = engine_backend_cpu_create(&opt, &e->be, err, errlen);
  if (rc < 0) return rc;
  snprintf(e->backend_name, sizeof e->backend_name, "%s/%s", e->be.ops->name,
           engine_backend_cpu_isa(&e->be));
  return 0;
}

/* Uploads a norm vector (dim floats) to backend memory. */
static const float *bind_vector(struct engine *e, const float *v, uint32_t n) {
  float *d = be_alloc(e, sizeof(float) * n);
  if (d) be_upload(e, d, v, sizeof(float) * n);
  return d;
}

/* Binds the model's weights to the backend: in place on a host backend, through
 * prepare_weight on a device backend (a tied output reuses the embedding's copy). */
static int bind_weights(struct engine *e, char *err, size_t errlen) {
  const struct engine_model *m = e->m;
  const struct engine_hparams *hp = &m->hp;
  if (!e->device) {
    e->token_embd = m->token_embd;
    e->output = m->output;
    e->output_norm = m->output_norm;
    e->layers = m->layers;
    return 0;
  }
  const struct engine_backend_ops *ops = e->be.ops;
  e->layers = calloc(hp->n_layer, sizeof *e->layers);
  if (!e->layers) return REALM_E_NOMEM;
  int rc = ops->prepare_weight(e->be.ctx, &m->token_embd, &e->token_embd, err, errlen);
  if (rc < 0) return rc;
  if (m->output.data == m->token_embd.data) {
    e->output = e->token_embd;
  } else {
    rc = ops->prepare_weight(e->be.ctx, &m->output, &e->output, err, errlen);
    if (rc < 0) return rc;
  }
  if (!(e->output_norm = bind_vector(e, m->output_norm, hp->dim))) goto nomem;
  for (uint32_t l = 0; l < hp->n_layer; l++) {
    const struct engine_layer *L = &m->layers[l];
    struct engine_layer *D = &e->layers[l];
    const struct engine_weight *src[7] = {&L->wq, &L->wk, &L->wv, &L->wo,
                                          &L->w_gate, &L->w_up, &L->w_down};
    struct engine_weight *dst[7] = {&D->wq, &D->wk, &D->wv, &D->wo,
                                    &D->w_gate, &D->w_up, &D->w_down};
    for (int i = 0; i < 7; i++) {
      rc = ops->prepare_weight(e->be.ctx, src[i], dst[i], err, errlen);
      if (rc < 0) return rc;
    }
    if (!(D->attn_norm = bind_vector(e, L->attn_norm, hp->dim))) goto nomem;
    if (!(D->ffn_norm = bind_vector(e, L->ffn_norm, hp->dim))) goto nomem;
  }
  return ops->sync(e->be.ctx, err, errlen);
nomem:
  snprintf(err, errlen, "engine: backend %s: no memory for norm vectors", e->backend_name);
  return REALM_E_NOMEM;
}

static void unbind_weights(struct engine *e) {
  if (!e->device || !e->be.ops) return;
  const struct engine_backend_ops *ops = e->be.ops;
  if (e->layers) {
    for (uint32_t l = 0; l < e->m->hp.n_layer; l++) {
      struct engine_layer *D = &e->layers[l];
      struct engine_weight *w[7] = {&D->wq, &D->wk, &D->wv, &D->wo, &D->w_gate, &D->w_up, &D->w_down};
      for (int i = 0; i < 7; i++) ops->release_weight(e->be.ctx, w[i]);
      be_free(e, (void *)D->attn_norm);
      be_free(e, (void *)D->ffn_norm);
    }
    free(e->layers);
  }
  if (e->output.data != e->token_embd.data) ops->release_weight(e->be.ctx, &e->output);
  ops->release_weight(e->be.ctx, &e->token_embd);
  be_free(e, (void *)e->output_norm);
}

int engine_create(const struct engine_model *m, const struct engine_config *cfg,
                  struct engine **ret_engine, char *err, size_t errlen) {
  const struct engine_hparams *hp = &m->hp;
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
  int rc = create_backend(e, cfg, err, errlen);
  if (rc < 0) {
    free(e);
    return rc;
  }
  /* Refuse now what the backend cannot run later. */
  const struct engine_weight *ws[] = {&m->token_embd, &m->output, &m->layers[0].wq,
                                      &m->layers[0].w_down};
  for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
    if (!e->be.ops->supports_op(e->be.ctx, ENGINE_OP_MATMUL, ws[i]->type) ||
        !e->be.ops->supports_op(e->be.ctx, ENGINE_OP_GET_ROWS, ws[i]->type)) {
      snprintf(err, errlen, "engine: backend %s has no matmul for weight type %d",
               e->backend_name, (int)ws[i]->type);
      engine_destroy(e);
      return REALM_E_UNSUPPORTED;
    }
  rc = bind_weights(e, err, errlen);
  if (rc < 0) {
    engine_destroy(e);
    return rc;
  }
  uint32_t bt = cfg->kv_block_tokens ? cfg->kv_block_tokens : 16;
  struct kv_cache_config kc = {.n_layer = hp->n_layer, .kv_dim = hp->kv_dim, .block_tokens = bt,
                               .n_blocks = cfg->kv_blocks ? cfg->kv_blocks : (max_ctx + bt - 1) / bt,
                               .max_seq_tokens = max_ctx,
                               .storage = e->device ? e->be.ops->kv_storage(e->be.ctx) : NULL};
  rc = kv_cache_create(&kc, &e->kv, err, errlen);
  if (rc < 0) {
    engine_destroy(e);
    return rc;
  }
  e->bt_stride = (max_ctx + bt - 1) / bt;
  size_t T = max_tokens;
  e->x = be_alloc(e, sizeof(float) * T * hp->dim);
  e->xb = be_alloc(e, sizeof(float) * T * hp->dim);
  e->q = be_alloc(e, sizeof(float) * T * hp->dim);
  e->k = be_alloc(e, sizeof(float) * T * hp->kv_dim);
  e->v = be_alloc(e, sizeof(float) * T * hp->kv_dim);
  e->att = be_alloc(e, sizeof(float) * T * hp->dim);
  e->tmp = be_alloc(e, sizeof(float) * T * hp->dim);
  e->gate = be_alloc(e, sizeof(float) * T * hp->ff_dim);
  e->up = be_alloc(e, sizeof(float) * T * hp->ff_dim);
  e->ids = malloc(sizeof(int32_t) * T);
  e->pos = malloc(sizeof(uint32_t) * T);
  e->tok_seq = malloc(sizeof(struct kv_seq *) * T);
  e->out_rows = malloc(sizeof(uint32_t) * T);
  e->seq_index = malloc(sizeof(uint32_t) * T);
  int ok = e->x && e->xb && e->q && e->k && e->v && e->att && e->tmp && e->gate && e->up &&
           e->ids && e->pos && e->tok_seq && e->out_rows && e->seq_index;
  if (ok && e->device) {
    e->logits = be_alloc(e, sizeof(float) * T * hp->n_vocab);
    e->block_table = malloc(sizeof(uint32_t) * T * e->bt_stride);
    e->d_ids = be_alloc(e, sizeof(int32_t) * T);
    e->d_pos = be_alloc(e, sizeof(uint32_t) * T);
    e->d_out_rows = be_alloc(e, sizeof(uint32_t) * T);
    e->d_seq_index = be_alloc(e, sizeof(uint32_t) * T);
    e->d_block_table = be_alloc(e, sizeof(uint32_t) * T * e->bt_stride);
    ok = e->logits && e->block_table && e->d_ids && e->d_pos && e->d_out_rows &&
         e->d_seq_index && e->d_block_table;
  } else if (ok) { /* host backend: the ops read the host arrays directly */
    e->d_ids = e->ids;
    e->d_pos = e->pos;
    e->d_out_rows = e->out_rows;
    e->d_seq_index = e->seq_index;
  }
  if (!ok) {
    engine_destroy(e);
    snprintf(err, errlen, "engine: no memory for activations of %u tokens", max_tokens);
    return REALM_E_NOMEM;
  }
  *ret_engine = e;
  return 0;
}

void engine_destroy(struct engine *e) {
  if (!e) return;
  kv_cache_destroy(e->kv); /* before the backend: a device pool is the backend's memory */
  if (e->be.ops) {
    float *bufs[] = {e->x, e->xb, e->q, e->k, e->v, e->att, e->tmp, e->gate, e->up, e->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) be_free(e, bufs[i]);
    if (e->device) {
      be_free(e, e->d_ids);
      be_free(e, e->d_pos);
      be_free(e, e->d_out_rows);
      be_free(e, e->d_seq_index);
      be_free(e, e->d_block_table);
    }
    unbind_weights(e);
    e->be.ops->destroy(e->be.ctx);
  }
  free(e->ids);
  free(e->pos);
  free(e->tok_seq);
  free(e->out_rows);
  free(e->seq_index);
  free(e->block_table);
  free(e);
}

struct kv_cache *engine_kv(struct engine *e) { return e->kv; }
const struct engine_model *engine_model(const struct engine *e) { return e->m; }
const char *engine_backend_name(const struct engine *e) { return e->backend_name; }
int engine_threads(const struct engine *e) {
  return e->device ? 1 : engine_backend_cpu_threads(&e->be);
}
uint32_t engine_max_step_tokens(const struct engine *e) { return e->max_tokens; }
const struct engine_backend *engine_get_backend(const struct engine *e) { return &e->be; }
const struct engine_layer *engine_bound_layer(const struct engine *e, uint32_t layer) {
  return layer < e->m->hp.n_layer ? &e->layers[layer] : NULL;
}
const struct engine_weight *engine_bound_token_embd(const struct engine *e) {
  return &e->token_embd;
}
const struct engine_weight *engine_bound_output(const struct engine *e) { return &e->output; }

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
  uint32_t n_out = 0, max_ctx_len = 0;
  for (uint32_t i = 0, t = 0; i < b->n_seqs; i++) {
    const struct engine_seq_step *s = &b->seqs[i];
    for (uint32_t j = 0; j < s->n_tokens; j++, t++) {
      e->ids[t] = s->tokens[j];
      e->pos[t] = s->pos + j;
      e->tok_seq[t] = s->seq;
      e->seq_index[t] = i;
      if (b->all_logits || j + 1 == s->n_tokens) e->out_rows[n_out++] = t;
    }
    if (s->pos + s->n_tokens > max_ctx_len) max_ctx_len = s->pos + s->n_tokens;
  }
  if (e->device) {
    /* A device backend reads the step's indices and block tables from its own memory. */
    for (uint32_t i = 0; i < b->n_seqs; i++) {
      uint32_t nb;
      const uint32_t *blocks = kv_seq_blocks(b->seqs[i].seq, &nb);
      memcpy(e->block_table + (size_t)i * e->bt_stride, blocks, sizeof(uint32_t) * nb);
    }
    be_upload(e, e->d_ids, e->ids, sizeof(int32_t) * T);
    be_upload(e, e->d_pos, e->pos, sizeof(uint32_t) * T);
    be_upload(e, e->d_seq_index, e->seq_index, sizeof(uint32_t) * T);
    be_upload(e, e->d_out_rows, e->out_rows, sizeof(uint32_t) * n_out);
    be_upload(e, e->d_block_table, e->block_table, sizeof(uint32_t) * b->n_seqs * e->bt_stride);
  }

  const struct engine_model *m = e->m;
  const struct engine_hparams *hp = &m->hp;
  const struct engine_backend_ops *ops = e->be.ops;
  void *c = e->be.ctx;
  const size_t dim = hp->dim;

  ops->get_rows(c, &e->token_embd, e->d_ids, T, e->x);
  struct engine_attn_args aa = {.kv = e->kv, .n_tok = T, .n_head = hp->n_head,
                                .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
                                .tok_seq = e->tok_seq, .tok_pos = e->d_pos, .q = e->q,
                                .k = e->k, .v = e->v, .out = e->att,
                                .tok_seq_index = e->d_seq_index,
                                .block_table = e->device ? e->d_block_table : NULL,
                                .n_seqs = b->n_seqs, .block_table_stride = e->bt_stride,
                                .max_ctx_len = max_ctx_len};
  for (uint32_t l = 0; l < hp->n_layer; l++) {
    const struct engine_layer *L = &e->layers[l];
    ops->rmsnorm(c, e->x, L->attn_norm, T, hp->dim, hp->rms_eps, e->xb);
    ops->matmul(c, &L->wq, e->xb, T, e->q);
    ops->matmul(c, &L->wk, e->xb, T, e->k);
    ops->matmul(c, &L->wv, e->xb, T, e->v);
    ops->rope(c, e->q, T, hp->n_head, hp->head_dim, hp->rope_dim, hp->rope_base, e->d_pos);
    ops->rope(c, e->k, T, hp->n_head_kv, hp->head_dim, hp->rope_dim, hp->rope_base, e->d_pos);
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
  /* Gather the rows whose logits are wanted, then norm and project only those. The gather
   * is get_rows over the residual stream seen as an F32 weight of T rows: one op that every
   * backend already has, on whichever side the stream lives. */
  struct engine_weight xs = {.type = ENGINE_W_F32, .n_in = hp->dim, .n_out = T,
                             .row_bytes = dim * sizeof(float), .data = e->x};
  ops->get_rows(c, &xs, (const int32_t *)e->d_out_rows, n_out, e->tmp);
  ops->rmsnorm(c, e->tmp, e->output_norm, n_out, hp->dim, hp->rms_eps, e->xb);
  if (e->device) {
    ops->matmul(c, &e->output, e->xb, n_out, e->logits);
    ops->copy(c, ret_logits, e->logits, sizeof(float) * n_out * hp->n_vocab, ENGINE_COPY_D2H);
    int rc = ops->sync(c, err, errlen);
    if (rc < 0) {
      for (uint32_t i = 0; i < b->n_seqs; i++)
        kv_seq_set_len(e->kv, b->seqs[i].seq, kv_seq_len(b->seqs[i].seq));
      return rc;
    }
  } else {
    ops->matmul(c, &e->output, e->xb, n_out, ret_logits);
  }

  for (uint32_t i = 0; i < b->n_seqs; i++)
    kv_seq_set_len(e->kv, b->seqs[i].seq, b->seqs[i].pos + b->seqs[i].n_tokens);
  return 0;
}
