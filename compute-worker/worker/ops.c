/*
 * ops.c — the fine-grained requests: Matmul (activations × a named weight), Attention (one
 * layer over a session's paged KV cache) and GetRows (rows of a named tensor: embedding
 * lookup, norm gains), plus the shared-memory range checks every request uses.
 *
 * Matmul and Attention run on the engine's own backend (engine_get_backend) over the weights
 * as that backend holds them (engine_bound_layer & co.): on the CPU that is the model's
 * memory and the engine's thread pool; on CUDA the device copies, with the request's tensors
 * copied to grow-on-demand device scratch and back, and the KV cache the engine's Steps
 * write. Same kernels, same KV, so a guest that chains GetRows (embeddings, norm gains),
 * Matmul and Attention with its own RMSNorm, SwiGLU and residuals reproduces
 * engine_forward's logits. Everything runs on the loop thread between forward passes, the
 * only thread that drives the engine. GetRows reads the host model (a norm vector or a few
 * rows: no device round trip; the values are the ones the device copies were made from).
 *
 * Decisions (docs/worker.md):
 *  - Weight access is the operator's to grant: Matmul with an identity matrix, or GetRows,
 *    hands a tenant the weights. Both answer permission_denied unless the tenant is listed in
 *    --allow-weight-access (HelloReply.weight_access says which). Attention reads only the
 *    caller's own session and inputs, so it is not gated.
 *  - Matmul accepts the 2-D weights the engine binds: token_embd.weight, output.weight
 *    (token_embd when the model ties them) and blk.N.{attn_q,attn_k,attn_v,attn_output,
 *    ffn_gate,ffn_up,ffn_down}.weight. A 1-D tensor (norm gains) is invalid_argument; any
 *    other name not_found. At most batch_tokens rows per request.
 *  - GetRows accepts the same 2-D names plus the norms (output_norm.weight,
 *    blk.N.{attn,ffn}_norm.weight), which are one row; at most batch_tokens rows; a row id
 *    outside the tensor is out_of_range.
 *  - Attention needs pos <= the session's length (no holes) and pos + n_tokens within the
 *    session's max_tokens; it stores k/v at [pos, pos+n) for that layer and then sets the
 *    session's length to max(length, pos + n_tokens) — a guest runs layer 0..L-1 at the same
 *    pos, then moves on. It is refused (invalid_argument) while a Step of that session is
 *    queued: the two would interleave writes to the same positions.
 *  - A device failure during an op (sync reports it) answers that request "unavailable" and
 *    marks the backend failed: the loop then fails everything and the worker exits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "realm/log.h"

/* Scratch slots of w->ops_dev (device backends only). */
enum { DEV_A, DEV_B, DEV_C, DEV_D, DEV_POS, DEV_SEQ, DEV_TABLE, DEV_SLOTS };

int ops_init(struct worker *w, char *err, size_t errlen) {
  (void)err, (void)errlen;
  w->be = engine_get_backend(w->engine);
  w->device = w->be->ops->alloc != NULL;
  return 0;
}

void ops_fini(struct worker *w) {
  for (int i = 0; i < DEV_SLOTS; i++) {
    if (w->ops_dev[i].p && w->be) w->be->ops->free(w->be->ctx, w->ops_dev[i].p);
    w->ops_dev[i].p = NULL;
    w->ops_dev[i].cap = 0;
  }
}

/* Backend memory for HOST's contents: HOST itself on a host backend, else scratch slot SLOT
 * (grown as needed) with HOST copied in when UPLOAD. NULL when the device is out of memory. */
static void *dev_buf(struct worker *w, int slot, void *host, size_t bytes, bool upload) {
  if (!w->device) return host;
  if (w->ops_dev[slot].cap < bytes) {
    w->be->ops->free(w->be->ctx, w->ops_dev[slot].p);
    size_t cap = (bytes + 4095) & ~(size_t)4095;
    w->ops_dev[slot].p = w->be->ops->alloc(w->be->ctx, cap);
    w->ops_dev[slot].cap = w->ops_dev[slot].p ? cap : 0;
    if (!w->ops_dev[slot].p) return NULL;
  }
  if (upload) w->be->ops->copy(w->be->ctx, w->ops_dev[slot].p, host, bytes, ENGINE_COPY_H2D);
  return w->ops_dev[slot].p;
}

/* Copies a result back to the host and waits for the device; 0 or REALM_E_UNAVAILABLE (the
 * backend is then marked failed and msg names the failed call). */
static int dev_finish(struct worker *w, void *host, const void *dev, size_t bytes, char *msg,
                      size_t msglen) {
  if (!w->device) return 0;
  w->be->ops->copy(w->be->ctx, host, dev, bytes, ENGINE_COPY_D2H);
  char e[200];
  int rc = w->be->ops->sync(w->be->ctx, e, sizeof e);
  if (rc < 0) {
    worker_backend_failed(w, e);
    snprintf(msg, msglen, "worker compute backend failed (%s); the worker restarts", e);
    return REALM_E_UNAVAILABLE;
  }
  return 0;
}

/* The permission gate of Matmul and GetRows. */
static bool weight_access_denied(struct worker *w, struct worker_conn *c, uint64_t request_id,
                                 const char *what) {
  if (c->tenant->weight_access) return false;
  char msg[256];
  snprintf(msg, sizeof msg, "%s: tenant %s may not read model weights (the operator grants it "
           "with --allow-weight-access)", what, c->tenant->id);
  worker_reply_error(w, &c->peer, request_id, REALM_E_PERMISSION, msg, "tensor");
  return true;
}

/* The inline-size gate of an op's output (a shm connection has no such limit: its range is
 * checked instead). Replies too_large naming param and returns true when out_bytes cannot
 * travel inline. */
static bool inline_output_too_large(struct worker *w, struct worker_conn *c, uint64_t request_id,
                                    size_t out_bytes, const char *param) {
  if (c->shm || out_bytes <= REALM_MAX_INLINE_TENSOR_BYTES) return false;
  char msg[256];
  snprintf(msg, sizeof msg, "inline output of %zu bytes exceeds %u", out_bytes,
           REALM_MAX_INLINE_TENSOR_BYTES);
  worker_reply_error(w, &c->peer, request_id, REALM_E_TOO_LARGE, msg, param);
  return true;
}

/* Puts an op's result (bytes at y) where the runner asked for it: into the shared region at
 * out_shm, or inline through *inl, the reply body's output_inline (y must then live until the
 * reply is sent). */
static void place_output(const struct worker_conn *c, void *out_shm, float *y, size_t bytes,
                         ProtobufCBinaryData *inl) {
  if (c->shm) {
    memcpy(out_shm, y, bytes);
  } else {
    inl->data = (uint8_t *)y;
    inl->len = bytes;
  }
}

/* A reply to request_id whose body (body_case) the caller sets before sending it. */
static Realm__V1__WorkerReply op_reply(uint64_t request_id, Realm__V1__WorkerReply__BodyCase body) {
  Realm__V1__WorkerReply reply;
  realm__v1__worker_reply__init(&reply);
  reply.request_id = request_id;
  reply.body_case = body;
  return reply;
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
  if (off > c->shm_data_bytes || len > c->shm_data_bytes - off) {
    snprintf(msg, msglen, "%s: range [%llu, +%llu) is outside the region's %llu data bytes",
             field, (unsigned long long)off, (unsigned long long)len,
             (unsigned long long)c->shm_data_bytes);
    return REALM_E_OUT_OF_RANGE;
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

/* A tensor a request names: a 2-D weight (host = the model's, bound = the backend's copy,
 * the same on a host backend) or a 1-D norm vector (vec, host f32, dim floats). */
struct named_tensor {
  const struct engine_weight *host, *bound;
  const float *vec;
};

/* Looks NAME up among the tensors the engine binds; false when unknown. */
static bool find_tensor(const struct worker *w, const char *name, struct named_tensor *ret) {
  const struct engine_model *m = w->model;
  memset(ret, 0, sizeof *ret);
  if (strcmp(name, "token_embd.weight") == 0) {
    ret->host = &m->token_embd;
    ret->bound = engine_bound_token_embd(w->engine);
    return true;
  }
  if (strcmp(name, "output.weight") == 0) {
    ret->host = &m->output;
    ret->bound = engine_bound_output(w->engine);
    return true;
  }
  if (strcmp(name, "output_norm.weight") == 0) {
    ret->vec = m->output_norm;
    return true;
  }
  unsigned layer;
  int used = 0;
  if (sscanf(name, "blk.%u.%n", &layer, &used) != 1 || used == 0 || layer >= m->hp.n_layer)
    return false;
  const char *rest = name + used;
  const struct engine_layer *L = &m->layers[layer], *B = engine_bound_layer(w->engine, layer);
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
    if (strcmp(rest, map[i].suffix) == 0) {
      ret->host = (const struct engine_weight *)((const char *)L + map[i].off);
      ret->bound = (const struct engine_weight *)((const char *)B + map[i].off);
      return true;
    }
  if (strcmp(rest, "attn_norm.weight") == 0) ret->vec = L->attn_norm;
  else if (strcmp(rest, "ffn_norm.weight") == 0) ret->vec = L->ffn_norm;
  return ret->vec != NULL;
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
  if (weight_access_denied(w, c, request_id, "Matmul")) return;
  const char *name = m->tensor ? m->tensor : "";
  struct named_tensor nt;
  bool found = find_tensor(w, name, &nt);
  if (!found || nt.vec) {
    snprintf(msg, sizeof msg, "tensor '%.100s' %s", name,
             found ? "is 1-D (a norm), not a matrix" : "not found");
    worker_reply_error(w, &c->peer, request_id, found ? REALM_E_INVALID_ARGUMENT : REALM_E_NOT_FOUND,
                       msg, "tensor");
    return;
  }
  const struct engine_weight *wt = nt.bound;
  if (m->n_rows == 0 || m->n_rows > w->cfg.batch_tokens) {
    snprintf(msg, sizeof msg, "n_rows %u outside [1, %u]", m->n_rows, w->cfg.batch_tokens);
    worker_reply_error(w, &c->peer, request_id, REALM_E_INVALID_ARGUMENT, msg, "n_rows");
    return;
  }
  size_t n_in = wt->n_in, n_out = wt->n_out, rows = m->n_rows;
  size_t out_bytes = sizeof(float) * rows * n_out, in_bytes = sizeof(float) * rows * n_in;
  if (inline_output_too_large(w, c, request_id, out_bytes, "n_rows")) return;
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
  int rc = REALM_E_NOMEM;
  const char *bad = NULL;
  snprintf(msg, sizeof msg, "no memory for the matmul");
  if (x && y) {
    rc = read_input(c, "input", m->input_offset, &m->input_inline, rows * n_in, x, msg, sizeof msg);
    if (rc < 0) bad = "input";
  }
  if (rc == 0) {
    float *dx = dev_buf(w, DEV_A, x, in_bytes, true), *dy = dev_buf(w, DEV_B, y, out_bytes, false);
    if (!dx || !dy) {
      rc = REALM_E_NOMEM;
      snprintf(msg, sizeof msg, "no device memory for the matmul");
    } else {
      w->be->ops->matmul(w->be->ctx, wt, dx, (uint32_t)rows, dy);
      rc = dev_finish(w, y, dy, out_bytes, msg, sizeof msg);
    }
  }
  if (rc < 0) {
    worker_reply_error(w, &c->peer, request_id, rc, msg, bad);
  } else {
    Realm__V1__MatmulReply mr;
    realm__v1__matmul_reply__init(&mr);
    mr.n_rows = (uint32_t)rows;
    mr.n_in = (uint32_t)n_in;
    mr.n_out = (uint32_t)n_out;
    place_output(c, out_shm, y, out_bytes, &mr.output_inline);
    Realm__V1__WorkerReply reply = op_reply(request_id, REALM__V1__WORKER_REPLY__BODY_MATMUL);
    reply.matmul = &mr;
    worker_send_reply(w, &c->peer, &reply);
  }
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
  uint32_t *pos = malloc(sizeof(uint32_t) * n), *seq_index = malloc(sizeof(uint32_t) * n);
  struct kv_seq **tok_seq = malloc(sizeof(*tok_seq) * n);
  int rc = REALM_E_NOMEM;
  snprintf(msg, sizeof msg, "no memory for the attention request");
  const char *bad = NULL;
  if (q && k && v && out && pos && seq_index && tok_seq) {
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
               t->quota.used_blocks, t->quota_blocks);
      bad = "n_tokens";
    } else {
      const struct engine_backend_ops *ops = w->be->ops;
      void *ctx = w->be->ctx;
      for (uint32_t i = 0; i < n; i++) {
        pos[i] = m->pos + i;
        tok_seq[i] = s->seq;
        seq_index[i] = 0;
      }
      /* A device backend follows the session's blocks through a one-row block table in its
       * own memory (backend.h); a host backend follows tok_seq. */
      uint32_t nb = 0;
      const uint32_t *blocks = kv_seq_blocks(s->seq, &nb);
      float *dq = dev_buf(w, DEV_A, q, q_bytes, true), *dk = dev_buf(w, DEV_B, k, kv_bytes, true),
            *dv = dev_buf(w, DEV_C, v, kv_bytes, true), *dout = dev_buf(w, DEV_D, out, q_bytes, false);
      uint32_t *dpos = dev_buf(w, DEV_POS, pos, sizeof(uint32_t) * n, true),
               *dsi = dev_buf(w, DEV_SEQ, seq_index, sizeof(uint32_t) * n, true),
               *dtab = w->device ? dev_buf(w, DEV_TABLE, (void *)blocks, sizeof(uint32_t) * nb, true)
                                 : NULL;
      if (!dq || !dk || !dv || !dout || !dpos || !dsi || (w->device && !dtab)) {
        rc = REALM_E_NOMEM;
        snprintf(msg, sizeof msg, "no device memory for the attention request");
        kv_seq_set_len(kv, s->seq, old_len);
      } else {
        if (m->rope) {
          ops->rope(ctx, dq, n, hp->n_head, hp->head_dim, hp->rope_dim, hp->rope_base, dpos);
          ops->rope(ctx, dk, n, hp->n_head_kv, hp->head_dim, hp->rope_dim, hp->rope_base, dpos);
        }
        struct engine_attn_args aa = {.kv = kv, .layer = m->layer, .n_tok = n,
                                      .n_head = hp->n_head, .n_head_kv = hp->n_head_kv,
                                      .head_dim = hp->head_dim, .tok_seq = tok_seq,
                                      .tok_pos = dpos, .tok_seq_index = dsi, .block_table = dtab,
                                      .n_seqs = 1, .block_table_stride = nb,
                                      .max_ctx_len = m->pos + n, .q = dq, .k = dk, .v = dv,
                                      .out = dout};
        ops->store_kv(ctx, &aa);
        ops->attention(ctx, &aa);
        rc = dev_finish(w, out, dout, q_bytes, msg, sizeof msg);
        uint32_t new_len = m->pos + n > old_len ? m->pos + n : old_len;
        kv_seq_set_len(kv, s->seq, rc == 0 ? new_len : old_len);
      }
    }
  }
  if (rc < 0) {
    worker_reply_error(w, &c->peer, request_id, rc, msg, bad);
  } else {
    Realm__V1__AttentionReply ar;
    realm__v1__attention_reply__init(&ar);
    ar.n_tokens = n;
    place_output(c, out_shm, out, q_bytes, &ar.output_inline);
    Realm__V1__WorkerReply reply = op_reply(request_id, REALM__V1__WORKER_REPLY__BODY_ATTENTION);
    reply.attention = &ar;
    worker_send_reply(w, &c->peer, &reply);
  }
  free(q);
  free(k);
  free(v);
  free(out);
  free(pos);
  free(seq_index);
  free(tok_seq);
}

void ops_handle_get_rows(struct worker *w, struct worker_conn *c, uint64_t request_id,
                         const Realm__V1__GetRows *m) {
  char msg[256];
  if (!m) {
    worker_reply_error(w, &c->peer, request_id, REALM_E_PROTOCOL, "GetRows without a body",
                       "get_rows");
    return;
  }
  if (weight_access_denied(w, c, request_id, "GetRows")) return;
  const char *name = m->tensor ? m->tensor : "";
  struct named_tensor nt;
  if (!find_tensor(w, name, &nt)) {
    snprintf(msg, sizeof msg, "tensor '%.100s' not found", name);
    worker_reply_error(w, &c->peer, request_id, REALM_E_NOT_FOUND, msg, "tensor");
    return;
  }
  const uint32_t n_cols = nt.vec ? w->model->hp.dim : nt.host->n_in;
  const uint32_t n_avail = nt.vec ? 1 : nt.host->n_out;
  if (m->n_rows == 0 || m->n_rows > w->cfg.batch_tokens) {
    snprintf(msg, sizeof msg, "%zu rows outside [1, %u]", m->n_rows, w->cfg.batch_tokens);
    worker_reply_error(w, &c->peer, request_id, REALM_E_INVALID_ARGUMENT, msg, "rows");
    return;
  }
  for (size_t i = 0; i < m->n_rows; i++)
    if (m->rows[i] < 0 || (uint32_t)m->rows[i] >= n_avail) {
      snprintf(msg, sizeof msg, "rows[%zu] = %d outside [0, %u) of '%.100s'", i, m->rows[i],
               n_avail, name);
      worker_reply_error(w, &c->peer, request_id, REALM_E_OUT_OF_RANGE, msg, "rows");
      return;
    }
  const size_t rows = m->n_rows, out_bytes = sizeof(float) * rows * n_cols;
  if (inline_output_too_large(w, c, request_id, out_bytes, "rows")) return;
  void *out_shm = NULL;
  if (c->shm) {
    int rc = ops_shm_range(c, "output_offset", m->output_offset, out_bytes, &out_shm, msg,
                           sizeof msg);
    if (rc < 0) {
      worker_reply_error(w, &c->peer, request_id, rc, msg, "output_offset");
      return;
    }
  }
  float *y = malloc(out_bytes);
  if (!y) {
    worker_reply_error(w, &c->peer, request_id, REALM_E_NOMEM, "no memory for the rows", NULL);
    return;
  }
  /* Written to private memory first: the shared region is written once, whole rows. */
  for (size_t i = 0; i < rows; i++) {
    if (nt.vec) memcpy(y + i * n_cols, nt.vec, sizeof(float) * n_cols);
    else engine_weight_get_row(nt.host, (uint32_t)m->rows[i], y + i * n_cols);
  }
  Realm__V1__GetRowsReply gr;
  realm__v1__get_rows_reply__init(&gr);
  gr.n_rows = (uint32_t)rows;
  gr.n_cols = n_cols;
  place_output(c, out_shm, y, out_bytes, &gr.output_inline);
  Realm__V1__WorkerReply reply = op_reply(request_id, REALM__V1__WORKER_REPLY__BODY_GET_ROWS);
  reply.get_rows = &gr;
  worker_send_reply(w, &c->peer, &reply);
  free(y);
}
