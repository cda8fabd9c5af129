/*
 * model.c — llama hyperparameters and tensors from a GGUF file, validated.
 *
 * Every limit comes from the architecture section of realm/limits.h; every error message
 * names the key or tensor it is about. Tensor shapes are compared exactly (ne[0] = n_in,
 * ne[1] = n_out, higher dims 1) because a transposed or truncated tensor would otherwise
 * compute garbage silently.
 */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realm/error.h"
#include "realm/limits.h"

static int keep_owned(struct engine_model *m, void *p) {
  void **n = realloc(m->owned, sizeof(void *) * (m->n_owned + 1));
  if (!n) return REALM_E_NOMEM;
  m->owned = n;
  m->owned[m->n_owned++] = p;
  return 0;
}

static int map_type(enum ggml_type t, enum engine_wtype *ret) {
  switch (t) {
  case GGML_TYPE_F32: *ret = ENGINE_W_F32; return 0;
  case GGML_TYPE_F16: *ret = ENGINE_W_F16; return 0;
  case GGML_TYPE_BF16: *ret = ENGINE_W_BF16; return 0;
  case GGML_TYPE_Q8_0: *ret = ENGINE_W_Q8_0; return 0;
  case GGML_TYPE_Q4_0: *ret = ENGINE_W_Q4_0; return 0;
  default: return REALM_E_UNSUPPORTED;
  }
}

/* Reads an optional/required u32 key with bounds [lo, hi]. */
static int get_u32(const struct gguf_file *f, const char *key, int required, uint32_t dflt,
                   uint32_t lo, uint32_t hi, uint32_t *ret, char *err, size_t errlen) {
  uint32_t v;
  int rc = gguf_get_u32(f, key, &v);
  if (rc == REALM_E_NOT_FOUND && !required) {
    v = dflt;
  } else if (rc == REALM_E_NOT_FOUND) {
    snprintf(err, errlen, "model: required key %s is missing", key);
    return REALM_E_BAD_MODEL;
  } else if (rc < 0) {
    snprintf(err, errlen, "model: key %s is not an unsigned integer that fits 32 bits", key);
    return REALM_E_BAD_MODEL;
  }
  if (v < lo || v > hi) {
    snprintf(err, errlen, "model: key %s = %u is outside [%u, %u]", key, v, lo, hi);
    return REALM_E_BAD_MODEL;
  }
  *ret = v;
  return 0;
}

static int get_f32(const struct gguf_file *f, const char *key, float dflt, float *ret,
                   char *err, size_t errlen) {
  float v;
  int rc = gguf_get_f32(f, key, &v);
  if (rc == REALM_E_NOT_FOUND) v = dflt;
  else if (rc < 0) {
    snprintf(err, errlen, "model: key %s is not a float", key);
    return REALM_E_BAD_MODEL;
  }
  if (!isfinite(v) || v <= 0.0f) {
    snprintf(err, errlen, "model: key %s = %g must be a positive finite number", key, (double)v);
    return REALM_E_BAD_MODEL;
  }
  *ret = v;
  return 0;
}

static int load_hparams(const struct gguf_file *f, struct engine_hparams *hp, char *err,
                        size_t errlen) {
  struct gguf_str arch;
  if (gguf_get_str(f, "general.architecture", &arch) == 0 &&
      !(arch.len == 5 && memcmp(arch.data, "llama", 5) == 0)) {
    snprintf(err, errlen, "model: general.architecture = \"%.*s\" is not supported (want llama)",
             (int)(arch.len > 64 ? 64 : arch.len), arch.data);
    return REALM_E_UNSUPPORTED;
  }
  int rc;
  if ((rc = get_u32(f, "llama.embedding_length", 1, 0, 1, REALM_MAX_EMBD, &hp->dim, err, errlen)) ||
      (rc = get_u32(f, "llama.block_count", 1, 0, 1, REALM_MAX_LAYERS, &hp->n_layer, err, errlen)) ||
      (rc = get_u32(f, "llama.attention.head_count", 1, 0, 1, REALM_MAX_HEADS, &hp->n_head, err,
                    errlen)))
    return rc;
  if ((rc = get_u32(f, "llama.attention.head_count_kv", 0, hp->n_head, 1, hp->n_head,
                    &hp->n_head_kv, err, errlen)) ||
      (rc = get_u32(f, "llama.feed_forward_length", 1, 0, 1, 16 * REALM_MAX_EMBD, &hp->ff_dim,
                    err, errlen)) ||
      (rc = get_u32(f, "llama.context_length", 0, 2048, 1, REALM_MAX_CONTEXT, &hp->n_ctx, err,
                    errlen)))
    return rc;
  if (hp->dim % hp->n_head != 0) {
    snprintf(err, errlen,
             "model: llama.embedding_length = %u is not divisible by llama.attention.head_count = %u",
             hp->dim, hp->n_head);
    return REALM_E_BAD_MODEL;
  }
  if (hp->n_head % hp->n_head_kv != 0) {
    snprintf(err, errlen,
             "model: llama.attention.head_count = %u is not a multiple of "
             "llama.attention.head_count_kv = %u",
             hp->n_head, hp->n_head_kv);
    return REALM_E_BAD_MODEL;
  }
  hp->head_dim = hp->dim / hp->n_head;
  if (hp->head_dim % 2 != 0) {
    snprintf(err, errlen, "model: head dimension %u (llama.embedding_length / head_count) is odd",
             hp->head_dim);
    return REALM_E_BAD_MODEL;
  }
  hp->kv_dim = hp->n_head_kv * hp->head_dim;
  if ((rc = get_u32(f, "llama.rope.dimension_count", 0, hp->head_dim, 2, hp->head_dim,
                    &hp->rope_dim, err, errlen)))
    return rc;
  if (hp->rope_dim % 2 != 0) {
    snprintf(err, errlen, "model: llama.rope.dimension_count = %u is odd", hp->rope_dim);
    return REALM_E_BAD_MODEL;
  }
  if ((rc = get_f32(f, "llama.rope.freq_base", 10000.0f, &hp->rope_base, err, errlen)) ||
      (rc = get_f32(f, "llama.attention.layer_norm_rms_epsilon", 1e-5f, &hp->rms_eps, err,
                    errlen)))
    return rc;
  if ((rc = get_u32(f, "tokenizer.ggml.bos_token_id", 0, 1, 0, REALM_MAX_VOCAB, &hp->bos_id, err,
                    errlen)) ||
      (rc = get_u32(f, "tokenizer.ggml.eos_token_id", 0, 2, 0, REALM_MAX_VOCAB, &hp->eos_id, err,
                    errlen)))
    return rc;
  return 0;
}

static const struct gguf_tensor *find_tensor(const struct gguf_file *f, const char *name,
                                             uint64_t ne0, uint64_t ne1, char *err,
                                             size_t errlen, int *rc) {
  const struct gguf_tensor *t = gguf_find_tensor(f, name);
  if (!t) {
    snprintf(err, errlen, "model: tensor %s is missing", name);
    *rc = REALM_E_BAD_MODEL;
    return NULL;
  }
  int ok = t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == 1 && t->ne[3] == 1;
  if (!ok) {
    snprintf(err, errlen,
             "model: tensor %s has shape [%llu, %llu, %llu, %llu], expected [%llu, %llu]", name,
             (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
             (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
             (unsigned long long)ne0, (unsigned long long)ne1);
    *rc = REALM_E_BAD_MODEL;
    return NULL;
  }
  return t;
}

/* Binds a 2-D weight [n_in, n_out]. */
static int bind_weight(struct engine_model *m, const char *name, uint32_t n_in, uint32_t n_out,
                       struct engine_weight *w, char *err, size_t errlen) {
  int rc = 0;
  const struct gguf_tensor *t = find_tensor(m->file, name, n_in, n_out, err, errlen, &rc);
  if (!t) return rc;
  enum engine_wtype wt;
  if (map_type(t->type, &wt) < 0) {
    snprintf(err, errlen, "model: tensor %s has unsupported type %s", name,
             ggml_type_name(t->type));
    return REALM_E_UNSUPPORTED;
  }
  uint64_t be = ggml_type_block_elems(t->type), bb = ggml_type_block_bytes(t->type);
  uint64_t n = (uint64_t)n_in * n_out;
  if (be == 0 || n % be != 0 || t->nbytes < n / be * bb) {
    snprintf(err, errlen, "model: tensor %s: %llu elements do not fill whole %s blocks in %llu bytes",
             name, (unsigned long long)n, ggml_type_name(t->type),
             (unsigned long long)t->nbytes);
    return REALM_E_BAD_MODEL;
  }
  w->n_in = n_in;
  w->n_out = n_out;
  if (n_in % be == 0) {
    w->type = wt;
    w->row_bytes = n_in / be * bb;
    w->data = t->data;
    return 0;
  }
  /* Blocks run across row boundaries: dequantize the flattened tensor once, on purpose. */
  float *buf = malloc(sizeof(float) * n);
  if (!buf || keep_owned(m, buf) < 0) {
    free(buf);
    snprintf(err, errlen, "model: no memory to dequantize tensor %s", name);
    return REALM_E_NOMEM;
  }
  engine_dequantize_row(wt, t->data, (int)n, buf);
  w->type = ENGINE_W_F32;
  w->row_bytes = sizeof(float) * n_in;
  w->data = buf;
  m->n_dequantized_at_load++;
  return 0;
}

/* Binds a 1-D norm vector of DIM floats (F32 in place, F16/BF16 converted). */
static int bind_norm(struct engine_model *m, const char *name, uint32_t dim, const float **ret,
                     char *err, size_t errlen) {
  int rc = 0;
  const struct gguf_tensor *t = find_tensor(m->file, name, dim, 1, err, errlen, &rc);
  if (!t) return rc;
  if (t->type == GGML_TYPE_F32 && t->nbytes >= sizeof(float) * dim) {
    *ret = t->data;
    return 0;
  }
  enum engine_wtype wt;
  if ((t->type != GGML_TYPE_F16 && t->type != GGML_TYPE_BF16) || map_type(t->type, &wt) < 0 ||
      t->nbytes < 2ull * dim) {
    snprintf(err, errlen, "model: norm tensor %s has type %s (want f32, f16 or bf16)", name,
             ggml_type_name(t->type));
    return REALM_E_UNSUPPORTED;
  }
  float *buf = malloc(sizeof(float) * dim);
  if (!buf || keep_owned(m, buf) < 0) {
    free(buf);
    return REALM_E_NOMEM;
  }
  engine_dequantize_row(wt, t->data, (int)dim, buf);
  *ret = buf;
  return 0;
}

static uint64_t weight_bytes(const struct engine_weight *w) {
  return (uint64_t)w->row_bytes * w->n_out;
}

int engine_model_load(const struct gguf_file *f, struct engine_model **ret_model, char *err,
                      size_t errlen) {
  struct engine_model *m = calloc(1, sizeof *m);
  if (!m) return REALM_E_NOMEM;
  m->file = f;
  int rc = load_hparams(f, &m->hp, err, errlen);
  if (rc < 0) goto fail;
  struct engine_hparams *hp = &m->hp;

  const struct gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
  if (!emb) {
    snprintf(err, errlen, "model: tensor token_embd.weight is missing");
    rc = REALM_E_BAD_MODEL;
    goto fail;
  }
  if (emb->ne[1] == 0 || emb->ne[1] > REALM_MAX_VOCAB) {
    snprintf(err, errlen, "model: tensor token_embd.weight vocabulary %llu outside [1, %u]",
             (unsigned long long)emb->ne[1], REALM_MAX_VOCAB);
    rc = REALM_E_BAD_MODEL;
    goto fail;
  }
  hp->n_vocab = (uint32_t)emb->ne[1];
  if (hp->bos_id >= hp->n_vocab || hp->eos_id >= hp->n_vocab) {
    snprintf(err, errlen, "model: tokenizer.ggml.bos/eos_token_id (%u/%u) >= vocabulary %u",
             hp->bos_id, hp->eos_id, hp->n_vocab);
    rc = REALM_E_BAD_MODEL;
    goto fail;
  }
  if ((rc = bind_weight(m, "token_embd.weight", hp->dim, hp->n_vocab, &m->token_embd, err,
                        errlen)) < 0 ||
      (rc = bind_norm(m, "output_norm.weight", hp->dim, &m->output_norm, err, errlen)) < 0)
    goto fail;
  if (gguf_find_tensor(f, "output.weight")) {
    if ((rc = bind_weight(m, "output.weight", hp->dim, hp->n_vocab, &m->output, err, errlen)) < 0)
      goto fail;
  } else {
    m->output = m->token_embd;
    m->output_tied = 1;
  }
  m->layers = calloc(hp->n_layer, sizeof *m->layers);
  if (!m->layers) {
    rc = REALM_E_NOMEM;
    goto fail;
  }
  m->matmul_bytes = weight_bytes(&m->output);
  for (uint32_t l = 0; l < hp->n_layer; l++) {
    struct engine_layer *L = &m->layers[l];
    char name[64];
#define NAME(s) (snprintf(name, sizeof name, "blk.%u." s, l), name)
    if ((rc = bind_norm(m, NAME("attn_norm.weight"), hp->dim, &L->attn_norm, err, errlen)) < 0 ||
        (rc = bind_weight(m, NAME("attn_q.weight"), hp->dim, hp->dim, &L->wq, err, errlen)) < 0 ||
        (rc = bind_weight(m, NAME("attn_k.weight"), hp->dim, hp->kv_dim, &L->wk, err, errlen)) < 0 ||
        (rc = bind_weight(m, NAME("attn_v.weight"), hp->dim, hp->kv_dim, &L->wv, err, errlen)) < 0 ||
        (rc = bind_weight(m, NAME("attn_output.weight"), hp->dim, hp->dim, &L->wo, err, errlen)) < 0 ||
        (rc = bind_norm(m, NAME("ffn_norm.weight"), hp->dim, &L->ffn_norm, err, errlen)) < 0 ||
        (rc = bind_weight(m, NAME("ffn_gate.weight"), hp->dim, hp->ff_dim, &L->w_gate, err, errlen)) < 0 ||
        (rc = bind_weight(m, NAME("ffn_up.weight"), hp->dim, hp->ff_dim, &L->w_up, err, errlen)) < 0 ||
        (rc = bind_weight(m, NAME("ffn_down.weight"), hp->ff_dim, hp->dim, &L->w_down, err, errlen)) < 0)
      goto fail;
#undef NAME
    m->matmul_bytes += weight_bytes(&L->wq) + weight_bytes(&L->wk) + weight_bytes(&L->wv) +
                       weight_bytes(&L->wo) + weight_bytes(&L->w_gate) + weight_bytes(&L->w_up) +
                       weight_bytes(&L->w_down);
  }
  *ret_model = m;
  return 0;
fail:
  engine_model_free(m);
  return rc;
}

void engine_model_free(struct engine_model *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n_owned; i++) free(m->owned[i]);
  free(m->owned);
  free(m->layers);
  free(m);
}

void engine_weight_get_row(const struct engine_weight *w, uint32_t row, float *dst) {
  engine_dequantize_row(w->type, (const char *)w->data + (size_t)row * w->row_bytes,
                        (int)w->n_in, dst);
}
