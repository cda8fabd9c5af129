/*
 * ops.c — the fine-grained requests: Matmul (activations × a named weight) and Attention (one
 * layer over a session's paged KV cache), plus the shared-memory range checks every request
 * uses.
 *
 * Both run on a second instance of the CPU backend (backend.h), built over the same bound
 * weights as the engine. Same kernels, same KV layout, and the CPU kernels' results do not
 * depend on the thread split, so a guest that chains Matmul/Attention (with its own
 * embedding lookup, RMSNorm, SwiGLU and residuals) reproduces engine_forward's logits; the
 * engine's internals are not touched (it exposes no backend accessor), and a CUDA engine
 * would bring its own backend table here the same way.
 *
 * Decisions (docs/worker.md):
 *  - Matmul accepts the 2-D weights the engine binds: token_embd.weight, output.weight
 *    (token_embd when the model ties them) and blk.N.{attn_q,attn_k,attn_v,attn_output,
 *    ffn_gate,ffn_up,ffn_down}.weight. A 1-D tensor (norm gains) is invalid_argument; any
 *    other name not_found. At most batch_tokens rows per request.
 *  - Attention needs pos <= the session's length (no holes) and pos + n_tokens within the
 *    session's max_tokens; it stores k/v at [pos, pos+n) for that layer and then sets the
 *    session's length to max(length, pos + n_tokens) — a guest runs layer 0..L-1 at the same
 *    pos, then moves on. It is refused (invalid_argument) while a Step of that session is
 *    queued: the two would interleave writes to the same positions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "realm/log.h"

int ops_init(struct worker *w, char *err, size_t errlen) {
  const struct engine_hparams *hp = &w->model->hp;
  uint32_t max_in = hp->dim > hp->ff_dim ? hp->dim : hp->ff_dim;
  int isa = -1;
  if (w->cfg.isa && strcmp(w->cfg.isa, "scalar") == 0) isa = ENGINE_ISA_SCALAR;
  else if (w->cfg.isa && strcmp(w->cfg.isa, "avx2") == 0) isa = ENGINE_ISA_AVX2;
  else if (w->cfg.isa && strcmp(w->cfg.isa, "avx512") == 0) isa = ENGINE_ISA_AVX512;
  /* One thread: these requests are small, and a second full pool would compete with the
   * engine's for the same cores. */
  struct engine_cpu_options opt = {.n_threads = 1, .isa = isa, .max_tokens = w->cfg.batch_tokens,
                                   .max_in = max_in, .max_ctx = hp->n_ctx,
                                   .max_head_dim = hp->head_dim};
  char msg[256];
  int rc = engine_backend_cpu_create(&opt, &w->ops_be, msg, sizeof msg);
  if (rc < 0) snprintf(err, errlen, "ops backend: %s", msg);
  return rc;
}

void ops_fini(struct worker *w) {
  if (w->ops_be.ops) w->ops_be.ops->destroy(w->ops_be.ctx);
  w->ops_be.ops = NULL;
}

int ops_shm_range(struct worker_conn *c, const char *field, uint64_t off, uint64_t len,
                  void **ret_ptr, char *msg, size_t msglen) {
  if (!c->shm) {
    snprintf(msg, msglen, "%s: this connection has no shared memory (use the inline fields)",
             field);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (off % REALM_PROTOCOL_SHM_ALIGN != 0) {
    snprintf(msg, msglen, "%s: offset %llu is not a multiple of %d", field,
             (unsigned long long)off, REALM_PROTOCOL_SHM_ALIGN);
    return REALM_E_INVALID_ARGUMENT;
  }
  char e[200];
  int rc = realm_shm_slice(c->shm, off, len, ret_ptr, e, sizeof e);
  if (rc < 0) snprintf(msg, msglen, "%s: %s", field, e);
  return rc;
}

bool ops_ranges_overlap(uint64_t a_off, uint64_t a_len, uint64_t b_off, uint64_t b_len) {
  if (a_len == 0 || b_len == 0) return false;
  return a_off < b_off + b_len && b_off < a_off + a_len;
}

/* The engine weight bound for a GGUF tensor name; NULL when unknown. *ret_1d is set for the
 * 1-D tensors the model has (norms), which Matmul cannot use. */
static const struct engine_weight *find_weight(const struct engine_model *m, const char *name,
                                               bool *ret_1d) {
  *ret_1d = false;
  if (strcmp(name, "token_embd.weight") == 0) return &m->token_embd;
  if (strcmp(name, "output.weight") == 0) return &m->output;
  if (strcmp(name, "output_norm.weight") == 0) {
    *ret_1d = true;
    return NULL;
  }
  unsigned layer;
  int used = 0;
  if (sscanf(name, "blk.%u.%n", &layer, &used) != 1 || used == 0 || layer >= m->hp.n_layer)
    return NULL;
  const char *rest = name + used;
  const struct engine_layer *L = &m->layers[layer];
  static const struct {
    const char *suffix;
    size_t off;
  } map[] = {
      {"attn_q.weight", offsetof(struct engine_layer, wq)},
      {"attn_k.weight", offsetof(struct engine_layer, wk)},
      {"attn_v.weight", offsetof(struct engine_layer, wv)},
      {"attn_output.weight", offsetof(struct engine_layer, wo)},
      {"ffn_gate.weight", offsetof(struct engine_layer, w_gate)},
      {"ffn_up.weight", offsetof(struct engine_layer, w_up)},
      {"ffn_down.weight", offsetof(struct engine_layer, w_down)},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcmp(rest, map[i].suffix) == 0)
      return (const struct engine_weight *)((const char *)L + map[i].off);
  if (strcmp(rest, "attn_norm.weight") == 0 || strcmp(rest, "ffn_norm.weight") == 0)
    *ret_1d = true;
  return NULL;
}

/* Reads float32[count] for a request input: inline bytes (exact size) or a shm range; the
 * copy goes to dst, private memory. */
static int read_input(struct worker_conn *c, const char *field, uint64_t off,
                      const ProtobufCBinaryData *inl, size_t count, float *dst, char *msg,
                      size_t msglen) {
  size_t bytes = count * sizeof(float);
  if (!c->shm) {
    if (inl->len != bytes) {
      snprintf(msg, msglen, "%s_inline: %zu bytes, expected %zu", field, inl->len, bytes);
      return REALM_E_INVALID_ARGUMENT;
    }
    memcpy(dst, inl->data, bytes);
    return 0;
  }
  char name[48];
  snprintf(name, sizeof name, "%s_offset", field);
  void *p;
  int rc = ops_shm_range(c, name, off, bytes, &p, msg, msglen);
  if (rc == 0) memcpy(dst, p, bytes);
  return rc;
}

void ops_handle_matmul(struct worker *w, struct worker_conn *c, uint64_t request_id,
                       const Realm__V1__Matmul *m) {
  char msg[256];
  if (!m) {
    worker_reply_error(w, &c->peer, request_id, REALM_E_PROTOCOL, "Matmul without a body", "matmul");
    return;
  }
  bool is_1d;
  const char *name = m->tensor ? m->tensor : "";
  const struct engine_weight *wt = find_weight(w->model, name, &is_1d);
  if (!wt) {
    snprintf(msg, sizeof msg, "tensor '%.100s' %s", name,
             is_1d ? "is 1-D (a norm), not a matrix" : "not found");
    worker_reply_error(w, &c->peer, request_id, is_1d ? REALM_E_INVALID_ARGUMENT : REALM_E_NOT_FOUND,
                       msg, "tensor");
    return;
  }
  if (m->n_rows == 0 || m->n_rows > w->cfg.batch_tokens) {
    snprintf(msg, sizeof msg, "n_rows %u outside [1, %u]", m->n_rows, w->cfg.batch_tokens);
    worker_reply_error(w, &c->peer, request_id, REALM_E_INVALID_ARGUMENT, msg, "n_rows");
    return;
  }
  size_t n_in = wt->n_in, n_out = wt->n_out, rows = m->n_rows;
  size_t out_bytes = sizeof(float) * rows * n_out, in_bytes = sizeof(float) * rows * n_in;
  if (!c->shm && out_bytes > REALM_MAX_INLINE_TENSOR_BYTES) {
    snprintf(msg, sizeof msg, "inline output of %zu bytes exceeds %u", out_bytes,
             REALM_MAX_INLINE_TENSOR_BYTES);
    worker_reply_error(w, &c->peer, request_id, REALM_E_TOO_LARGE, msg, "n_rows");
    return;
  }
  void *out_shm = NULL;
  if (c->shm) {
    int rc = ops_shm_range(c, "output_offset", m->output_offset, out_bytes, &out_shm, msg, sizeof msg);
    if (rc == 0 && ops_ranges_overlap(m->output_offset, out_bytes, m->input_offset, in_bytes)) {
      snprintf(msg, sizeof msg, "output range at %llu overlaps the input range at %llu",
               (unsigned long long)m->output_offset, (unsigned long long)m->input_offset);
      rc = REALM_E_INVALID_ARGUMENT;
    }
    if (rc < 0) {
      worker_reply_error(w, &c->peer, request_id, rc, msg, "output_offset");
      return;
    }
  }
  float *x = malloc(in_bytes), *y = malloc(out_bytes);
  if (!x || !y) {
    free(x);
    free(y);
    worker_reply_error(w, &c->peer, request_id, REALM_E_NOMEM, "no memory for the matmul", NULL);
    return;
  }
  int rc = read_input(c, "input", m->input_offset, &m->input_inline, rows * n_in, x, msg, sizeof msg);
  if (rc < 0) {
    worker_reply_error(w, &c->peer, request_id, rc, msg, "input");
    free(x);
    free(y);
    return;
  }
  w->ops_be.ops->matmul(w->ops_be.ctx, wt, x, (uint32_t)rows, y);
  Realm__V1__MatmulReply mr;
  realm__v1__matmul_reply__init(&mr);
  mr.n_rows = (uint32_t)rows;
  mr.n_in = (uint32_t)n_in;
  mr.n_out = (uint32_t)n_out;
  if (c->shm) {
    memcpy(out_shm, y, out_bytes);
  } else {
    mr.output_inline.data = (uint8_t *)y;
    mr.output_inline.len = out_bytes;
  }
  Realm__V1__WorkerReply reply;
  realm__v1__worker_reply__init(&reply);
  reply.request_id = request_id;
  reply.body_case = REALM__V1__WORKER_REPLY__BODY_MATMUL;
  reply.matmul = &mr;
  worker_send_reply(w, &c->peer, &reply);
  free(x);
  free(y);
}

void ops_handle_attention(struct worker *w, struct worker_conn *c, uint64_t request_id,
                          const Realm__V1__Attention *m) {
  char msg[256];
  if (!m) {
    worker_reply_error(w, &c->peer, request_id, REALM_E_PROTOCOL, "Attention without a body",
                       "attention");
    return;
  }
  const struct engine_hparams *hp = &w->model->hp;
  struct kv_cache *kv = engine_kv(w->engine);
  struct worker_session *s = session_find(c, m->session_id);
  int code = 0;
  const char *param = NULL;
  if (!s) {
    snprintf(msg, sizeof msg, "session %llu not found", (unsigned long long)m->session_id);
    code = REALM_E_NOT_FOUND, param = "session_id";
  } else if (s->queued) {
    snprintf(msg, sizeof msg, "session %llu has a Step queued", (unsigned long long)s->id);
    code = REALM_E_INVALID_ARGUMENT, param = "session_id";
  } else if (m->layer >= hp->n_layer) {
    snprintf(msg, sizeof msg, "layer %u outside [0, %u)", m->layer, hp->n_layer);
    code = REALM_E_OUT_OF_RANGE, param = "layer";
  } else if (m->n_tokens == 0 || m->n_tokens > w->cfg.batch_tokens) {
    snprintf(msg, sizeof msg, "n_tokens %u outside [1, %u]", m->n_tokens, w->cfg.batch_tokens);
    code = REALM_E_INVALID_ARGUMENT, param = "n_tokens";
  } else if (m->pos > kv_seq_len(s->seq)) {
    snprintf(msg, sizeof msg, "pos %u is past the session's length %u", m->pos,
             kv_seq_len(s->seq));
    code = REALM_E_OUT_OF_RANGE, param = "pos";
  } else if ((uint64_t)m->pos + m->n_tokens > s->max_tokens) {
    snprintf(msg, sizeof msg, "pos %u + %u tokens exceeds the session's max_tokens %u", m->pos,
             m->n_tokens, s->max_tokens);
    code = REALM_E_OUT_OF_RANGE, param = "pos";
  }
  if (code) {
    worker_reply_error(w, &c->peer, request_id, code, msg, param);
    return;
  }
  const uint32_t n = m->n_tokens;
  const size_t q_n = (size_t)n * hp->n_head * hp->head_dim, kv_n = (size_t)n * hp->kv_dim;
  const uint64_t q_bytes = q_n * sizeof(float), kv_bytes = kv_n * sizeof(float);
  void *out_shm = NULL;
  if (c->shm) {
    int rc = ops_shm_range(c, "output_offset", m->output_offset, q_bytes, &out_shm, msg, sizeof msg);
    if (rc == 0 && (ops_ranges_overlap(m->output_offset, q_bytes, m->q_offset, q_bytes) ||
                    ops_ranges_overlap(m->output_offset, q_bytes, m->k_offset, kv_bytes) ||
                    ops_ranges_overlap(m->output_offset, q_bytes, m->v_offset, kv_bytes))) {
      snprintf(msg, sizeof msg, "output range at %llu overlaps an input range",
               (unsigned long long)m->output_offset);
      rc = REALM_E_INVALID_ARGUMENT;
    }
    if (rc < 0) {
      worker_reply_error(w, &c->peer, request_id, rc, msg, "output_offset");
      return;
    }
  }
  float *q = malloc(q_bytes), *k = malloc(kv_bytes), *v = malloc(kv_bytes), *out = malloc(q_bytes);
  uint32_t *pos = malloc(sizeof(uint32_t) * n);
  struct kv_seq **tok_seq = malloc(sizeof(*tok_seq) * n);
  int rc = REALM_E_NOMEM;
  snprintf(msg, sizeof msg, "no memory for the attention request");
  const char *bad = NULL;
  if (q && k && v && out && pos && tok_seq) {
    rc = read_input(c, "q", m->q_offset, &m->q_inline, q_n, q, msg, sizeof msg);
    if (rc < 0) bad = "q";
    if (rc == 0) {
      rc = read_input(c, "k", m->k_offset, &m->k_inline, kv_n, k, msg, sizeof msg);
      if (rc < 0) bad = "k";
    }
    if (rc == 0) {
      rc = read_input(c, "v", m->v_offset, &m->v_inline, kv_n, v, msg, sizeof msg);
      if (rc < 0) bad = "v";
    }
  }
  if (rc == 0) {
    uint32_t old_len = kv_seq_len(s->seq);
    rc = kv_seq_reserve(kv, s->seq, m->pos + n);
    if (rc < 0) {
      struct worker_tenant *t = c->tenant;
      snprintf(msg, sizeof msg, "%s for %u positions (tenant %s: %u of %u pages used)",
               rc == REALM_E_QUOTA ? "KV quota exceeded" : "no KV pages", m->pos + n, t->id,
               t->quota.used_blocks, t->quota.max_blocks);
      bad = "n_tokens";
    } else {
      const struct engine_backend_ops *ops = w->ops_be.ops;
      void *ctx = w->ops_be.ctx;
      for (uint32_t i = 0; i < n; i++) {
        pos[i] = m->pos + i;
        tok_seq[i] = s->seq;
      }
      if (m->rope) {
        ops->rope(ctx, q, n, hp->n_head, hp->head_dim, hp->rope_dim, hp->rope_base, pos);
        ops->rope(ctx, k, n, hp->n_head_kv, hp->head_dim, hp->rope_dim, hp->rope_base, pos);
      }
      struct engine_attn_args aa = {.kv = kv, .layer = m->layer, .n_tok = n, .n_head = hp->n_head,
                                    .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
                                    .tok_seq = tok_seq, .tok_pos = pos, .q = q, .k = k, .v = v,
                                    .out = out};
      ops->store_kv(ctx, &aa);
      ops->attention(ctx, &aa);
      uint32_t new_len = m->pos + n > old_len ? m->pos + n : old_len;
      kv_seq_set_len(kv, s->seq, new_len);
    }
  }
  if (rc < 0) {
    worker_reply_error(w, &c->peer, request_id, rc, msg, bad);
  } else {
    Realm__V1__AttentionReply ar;
    realm__v1__attention_reply__init(&ar);
    ar.n_tokens = n;
    if (c->shm) {
      memcpy(out_shm, out, q_bytes);
    } else {
      ar.output_inline.data = (uint8_t *)out;
      ar.output_inline.len = q_bytes;
    }
    Realm__V1__WorkerReply reply;
    realm__v1__worker_reply__init(&reply);
    reply.request_id = request_id;
    reply.body_case = REALM__V1__WORKER_REPLY__BODY_ATTENTION;
    reply.attention = &ar;
    worker_send_reply(w, &c->peer, &reply);
  }
  free(q);
  free(k);
  free(v);
  free(out);
  free(pos);
  free(tok_seq);
}
