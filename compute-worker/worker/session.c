/*
 * session.c — KV sessions: open, close, and the per-connection lookup that is the isolation
 * boundary between tenants.
 *
 * A session lives in a slot of the connection that opened it; its id is
 * (slot generation << 32) | (slot + 1), so ids are per connection and a closed session's id
 * never comes back. session_find() only ever looks in the asking connection's own table:
 * another connection's id, a closed id and a made-up id are the same not_found, so a tenant
 * cannot even learn whether someone else's id exists (docs/protocol.md §5).
 *
 * Quota and pool (decision, docs/worker.md): a session reserves the KV blocks of its whole
 * granted length when it opens (admit.c: reservations are charged to the tenant's quota and
 * to the shared pool, and a SessionOpen the pool cannot cover waits in the admission queue).
 * This file validates the request — max_tokens within the context and the quota, the
 * per-connection session limit — and creates the session once admit.c has decided; a Step
 * that would grow past max_tokens fails that entry with out_of_range and leaves the session
 * as it was, and one within it can no longer fail for want of KV blocks.
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "realm/log.h"

struct worker_session *session_find(struct worker_conn *c, uint64_t id) {
  uint64_t slot = (id & 0xffffffffu);
  if (slot == 0 || slot > UINT32_MAX) return NULL;
  slot--;
  struct worker_session *s = slot < c->n_slots ? c->slots[slot] : NULL;
  return s && s->id == id ? s : NULL;
}

void session_destroy(struct worker *w, struct worker_session *s) {
  if (!s) return;
  struct worker_conn *c = s->conn;
  sched_cancel_session(w, s);
  kv_seq_close(engine_kv(w->engine), s->seq);
  admit_release(w, s);
  uint32_t slot = (uint32_t)(s->id & 0xffffffffu) - 1;
  c->slots[slot] = NULL;
  c->n_sessions--;
  c->tenant->sessions--;
  free(s);
}

void session_handle_open(struct worker *w, struct worker_conn *c, uint64_t request_id,
                         const Realm__V1__SessionOpen *m) {
  char msg[256];
  if (!m) {
    worker_reply_error(w, &c->peer, request_id, REALM_E_PROTOCOL, "SessionOpen without a body",
                       "session_open");
    return;
  }
  const struct engine_hparams *hp = &w->model->hp;
  struct worker_tenant *t = c->tenant;
  uint32_t max_tokens = m->max_tokens;
  if (max_tokens > hp->n_ctx) {
    snprintf(msg, sizeof msg, "max_tokens %u exceeds the model context %u", max_tokens, hp->n_ctx);
    worker_reply_error(w, &c->peer, request_id, REALM_E_OUT_OF_RANGE, msg, "max_tokens");
    return;
  }
  if (max_tokens == 0) /* as long as the model and the tenant's quota allow */
    max_tokens = (uint64_t)hp->n_ctx < t->quota_tokens ? hp->n_ctx : (uint32_t)t->quota_tokens;
  if (max_tokens > t->quota_tokens) {
    snprintf(msg, sizeof msg, "max_tokens %u exceeds the tenant's KV quota of %llu tokens",
             max_tokens, (unsigned long long)t->quota_tokens);
    worker_reply_error(w, &c->peer, request_id, REALM_E_QUOTA, msg, "max_tokens");
    return;
  }
  /* Waiting opens hold a slot-to-be: admission must always find a free slot. */
  if (c->n_sessions + c->waiting_opens >= w->cfg.max_sessions) {
    snprintf(msg, sizeof msg, "connection has %u sessions open and %u waiting (max %u)",
             c->n_sessions, c->waiting_opens, w->cfg.max_sessions);
    worker_reply_error(w, &c->peer, request_id, REALM_E_QUOTA, msg, NULL);
    return;
  }
  admit_open(w, c, request_id, max_tokens);
}

int session_open_now(struct worker *w, struct worker_conn *c, uint64_t request_id,
                     uint32_t max_tokens, uint32_t blocks) {
  struct worker_tenant *t = c->tenant;
  struct kv_cache *kv = engine_kv(w->engine);
  uint32_t slot = 0;
  while (slot < c->n_slots && c->slots[slot]) slot++;
  if (slot == c->n_slots) { /* cannot happen: session_handle_open counted the waiting opens */
    worker_reply_error(w, &c->peer, request_id, REALM_E_INTERNAL, "no free session slot", NULL);
    return REALM_E_INTERNAL;
  }
  struct worker_session *s = calloc(1, sizeof *s);
  if (!s || kv_seq_open(kv, &t->quota, &s->seq) < 0) {
    free(s);
    worker_reply_error(w, &c->peer, request_id, REALM_E_NOMEM, "no memory for a session", NULL);
    return REALM_E_NOMEM;
  }
  c->slot_gen[slot]++;
  s->id = ((uint64_t)c->slot_gen[slot] << 32) | (slot + 1);
  s->conn = c;
  s->max_tokens = max_tokens;
  s->reserved_blocks = blocks;
  w->admit.reserved_blocks += blocks;
  t->reserved_blocks += blocks;
  c->slots[slot] = s;
  c->n_sessions++;
  t->sessions++;

  Realm__V1__SessionOpened so;
  realm__v1__session_opened__init(&so);
  so.session_id = s->id;
  so.max_tokens = max_tokens;
  Realm__V1__WorkerReply reply;
  realm__v1__worker_reply__init(&reply);
  reply.request_id = request_id;
  reply.body_case = REALM__V1__WORKER_REPLY__BODY_SESSION_OPENED;
  reply.session_opened = &so;
  worker_send_reply(w, &c->peer, &reply);
  return 0;
}

void session_handle_close(struct worker *w, struct worker_conn *c, uint64_t request_id,
                          const Realm__V1__SessionClose *m) {
  if (!m) {
    worker_reply_error(w, &c->peer, request_id, REALM_E_PROTOCOL, "SessionClose without a body",
                       "session_close");
    return;
  }
  struct worker_session *s = session_find(c, m->session_id);
  if (!s) {
    char msg[96];
    snprintf(msg, sizeof msg, "session %llu not found", (unsigned long long)m->session_id);
    worker_reply_error(w, &c->peer, request_id, REALM_E_NOT_FOUND, msg, "session_id");
    return;
  }
  uint64_t id = s->id;
  /* Queued entries of this session are answered "cancelled" before the close reply. */
  session_destroy(w, s);
  Realm__V1__SessionClosed sc;
  realm__v1__session_closed__init(&sc);
  sc.session_id = id;
  Realm__V1__WorkerReply reply;
  realm__v1__worker_reply__init(&reply);
  reply.request_id = request_id;
  reply.body_case = REALM__V1__WORKER_REPLY__BODY_SESSION_CLOSED;
  reply.session_closed = &sc;
  worker_send_reply(w, &c->peer, &reply);
}
