/*
 * sched.c — continuous batching across tenants, chunked prefill and weighted fair scheduling.
 *
 * Every Step from every connection is admitted here (validated, inputs copied out of shared
 * memory), queued, and answered once all its entries have run. The event loop asks
 * sched_wait_ns() when the next forward pass is due and calls sched_run_pass() to build and
 * run it: ONE engine_forward over entries of many connections and tenants.
 *
 * POLICY
 *   Batching window. A pass runs when the oldest queued Step has waited batch_window_us
 *   (so Steps that runners send within the window share one pass and the weights are read
 *   once for all of them), or at once when waiting cannot add anything: every connection
 *   with open sessions already has a Step queued (batch_eager), or the queue already holds a
 *   full pass. Entries carried over from a pass (unfinished prefill) wait one window again,
 *   so decode Steps that other runners send right after their replies join the next chunk.
 *   Budget. A pass holds at most batch_tokens tokens and max_batch_seqs sequences; an entry
 *   contributes at most prefill_chunk tokens (its "chunk") to one pass.
 *   Fairness. Each tenant has a virtual token counter vtime. Building a pass repeatedly takes
 *   the tenant with the smallest vtime that still has an eligible entry, gives the pass that
 *   tenant's oldest eligible entry's next chunk, and charges the tenant
 *   chunk * WORKER_VT_SCALE / weight. Prompt and generated tokens cost the same. When a
 *   tenant with nothing queued queues something, its vtime is raised to the smallest vtime of
 *   the tenants already queued (or to vclock when none is): idle time banks no credit.
 *
 * INVARIANTS
 *   1. Every admitted Step gets exactly one reply: when its last entry finishes, or a
 *      whole-request error from sched_fail_all(). A Step whose connection is gone is dropped
 *      without a reply (nobody can read it).
 *   2. A pass holds each session at most once, at most max_batch_seqs sequences and at most
 *      batch_tokens tokens; each entry's part is at most prefill_chunk tokens.
 *   3. A session's entries run in arrival order, and an entry's chunks in order; an entry
 *      starts at the session's length when its first chunk is scheduled (start_len).
 *   4. A failed entry leaves its session at start_len (its KV blocks go back to the pool);
 *      other entries of the Step, and of the pass, are unaffected.
 *   5. vclock never decreases, and an active tenant's vtime is never below vclock; hence a
 *      newly active tenant starts at the current minimum and a flooding tenant can delay
 *      another tenant's queued chunk by at most (its own share of) one pass per chunk the
 *      other is owed: decode is never stalled behind a whole long prompt.
 *   6. Entry inputs are private copies made once at admission and validated there; the
 *      shared region is only written (logits), between admission and the reply.
 *   7. KV blocks reach a session zeroed (kv.c invariant 3): no session reads another's K/V.
 *   8. An entry within its session's max_tokens never fails for want of KV blocks: the
 *      session reserved them at SessionOpen (admit.c invariants 2-3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "realm/log.h"

int sched_init(struct worker *w, char *err, size_t errlen) {
  struct worker_sched *s = &w->sched;
  s->seqs = calloc(w->cfg.max_batch_seqs, sizeof *s->seqs);
  s->batch = calloc(w->cfg.max_batch_seqs, sizeof *s->batch);
  /* Untouched pages cost nothing: only all-logits passes (scoring) write past the first rows. */
  s->logits = malloc(sizeof(float) * w->cfg.batch_tokens * (size_t)w->n_vocab);
  if (!s->seqs || !s->batch || !s->logits) {
    snprintf(err, errlen, "no memory for the scheduler (%u tokens x %u vocab logits)",
             w->cfg.batch_tokens, w->n_vocab);
    return REALM_E_NOMEM;
  }
  return 0;
}

/* ---- queue bookkeeping ---- */

static void tenant_activate(struct worker *w, struct worker_tenant *t) {
  uint64_t floor = w->sched.vclock;
  bool any = false;
  for (uint32_t i = 0; i < w->n_tenants; i++) {
    struct worker_tenant *o = w->tenants[i];
    if (o == t || o->queued_entries == 0) continue;
    if (!any || o->vtime < floor) floor = o->vtime;
    any = true;
  }
  if (!any) floor = w->sched.vclock;
  if (t->vtime < floor) t->vtime = floor;
}

/* Marks e finished with error code (0 = success) and updates every counter once. */
static void entry_finish(struct worker *w, struct sched_entry *e, int code, const char *msg) {
  if (e->finished) return;
  e->finished = true;
  e->error = code;
  if (code && msg) snprintf(e->errmsg, sizeof e->errmsg, "%s", msg);
  e->step->n_open--;
  if (e->sess) {
    struct worker_session *s = e->sess;
    if (code && e->started) kv_seq_set_len(engine_kv(w->engine), s->seq, e->start_len);
    e->n_past = kv_seq_len(s->seq);
    s->queued--;
    s->conn->tenant->queued_entries--;
    w->sched.queued_entries--;
  }
}

static void step_unlink_free(struct worker *w, struct sched_step *st) {
  struct worker_sched *s = &w->sched;
  if (st->prev) st->prev->next = st->next;
  else s->head = st->next;
  if (st->next) st->next->prev = st->prev;
  else s->tail = st->prev;
  for (uint32_t i = 0; i < st->n_entries; i++) {
    entry_finish(w, &st->entries[i], REALM_E_CANCELLED, NULL);
    free(st->entries[i].tokens);
    if (st->entries[i].logits_private) free(st->entries[i].logits);
  }
  st->conn->pending_steps--;
  free(st->entries);
  free(st);
}

/* Sends the StepReply of a Step whose entries have all finished, and frees it. */
static void step_reply(struct worker *w, struct sched_step *st) {
  Realm__V1__StepResult *res = calloc(st->n_entries, sizeof *res);
  Realm__V1__StepResult **ptrs = calloc(st->n_entries, sizeof *ptrs);
  Realm__V1__Error *errs = calloc(st->n_entries, sizeof *errs);
  if (!res || !ptrs || !errs) {
    free(res);
    free(ptrs);
    free(errs);
    worker_reply_error(w, &st->conn->peer, st->request_id, REALM_E_NOMEM,
                       "no memory for the step reply", NULL);
    step_unlink_free(w, st);
    return;
  }
  for (uint32_t i = 0; i < st->n_entries; i++) {
    struct sched_entry *e = &st->entries[i];
    realm__v1__step_result__init(&res[i]);
    res[i].session_id = e->session_id;
    res[i].n_past = e->n_past;
    if (e->error) {
      realm_proto_error_set(&errs[i], e->error, e->errmsg, NULL);
      res[i].error = &errs[i];
    } else if (e->logits_private) {
      res[i].logits_inline.data = (uint8_t *)e->logits;
      res[i].logits_inline.len = sizeof(float) * (size_t)e->n_logits * w->n_vocab;
    }
    ptrs[i] = &res[i];
  }
  Realm__V1__StepReply sr;
  realm__v1__step_reply__init(&sr);
  sr.n_results = st->n_entries;
  sr.results = ptrs;
  Realm__V1__WorkerReply reply;
  realm__v1__worker_reply__init(&reply);
  reply.request_id = st->request_id;
  reply.body_case = REALM__V1__WORKER_REPLY__BODY_STEP;
  reply.step = &sr;
  worker_send_reply(w, &st->conn->peer, &reply);
  free(res);
  free(ptrs);
  free(errs);
  step_unlink_free(w, st);
}

static void reply_finished_steps(struct worker *w) {
  for (struct sched_step *st = w->sched.head, *next; st; st = next) {
    next = st->next;
    if (st->n_open == 0) step_reply(w, st);
  }
}

void sched_drop_conn(struct worker *w, struct worker_conn *c) {
  for (struct sched_step *st = w->sched.head, *next; st; st = next) {
    next = st->next;
    if (st->conn == c) step_unlink_free(w, st);
  }
}

void sched_fail_all(struct worker *w, int code, const char *message) {
  while (w->sched.head) {
    struct sched_step *st = w->sched.head;
    worker_reply_error(w, &st->conn->peer, st->request_id, code, message, NULL);
    step_unlink_free(w, st);
  }
}

void sched_cancel_session(struct worker *w, struct worker_session *s) {
  if (s->queued == 0) return;
  for (struct sched_step *st = w->sched.head; st; st = st->next)
    for (uint32_t i = 0; i < st->n_entries; i++) {
      struct sched_entry *e = &st->entries[i];
      if (e->sess != s || e->finished) continue;
      entry_finish(w, e, REALM_E_CANCELLED, "session closed while the step was queued");
      e->sess = NULL; /* the session is freed right after */
    }
  reply_finished_steps(w);
}

void sched_fini(struct worker *w) {
  while (w->sched.head) step_unlink_free(w, w->sched.head);
  free(w->sched.seqs);
  free(w->sched.batch);
  free(w->sched.logits);
  memset(&w->sched, 0, sizeof w->sched);
}

/* ---- admission ---- */

static int range_list_overlap(const uint64_t *off, const uint64_t *len, uint32_t n_out,
                              uint32_t n_all) {
  /* Outputs are [0, n_out); inputs follow. Each output against everything after it. */
  for (uint32_t i = 0; i < n_out; i++)
    for (uint32_t j = i + 1; j < n_all; j++)
      if (ops_ranges_overlap(off[i], len[i], off[j], len[j])) return (int)i;
  return -1;
}

void sched_handle_step(struct worker *w, struct worker_conn *c, uint64_t request_id,
                       const Realm__V1__Step *m) {
  char msg[256];
  const uint32_t V = w->n_vocab;
  if (!m) {
    worker_reply_error(w, &c->peer, request_id, REALM_E_PROTOCOL, "Step without a body", "step");
    return;
  }
  if (c->pending_steps >= w->cfg.max_pending_steps) {
    snprintf(msg, sizeof msg, "connection has %u Steps queued (max %u)", c->pending_steps,
             w->cfg.max_pending_steps);
    worker_reply_error(w, &c->peer, request_id, REALM_E_UNAVAILABLE, msg, NULL);
    return;
  }
  size_t n = m->n_entries;
  if (n == 0 || n > w->cfg.max_batch_seqs) {
    snprintf(msg, sizeof msg, "Step has %zu entries (allowed 1..%u)", n, w->cfg.max_batch_seqs);
    worker_reply_error(w, &c->peer, request_id, REALM_E_INVALID_ARGUMENT, msg, "entries");
    return;
  }
  /* Structure first: anything wrong here is a runner bug and fails the whole request. */
  uint64_t total = 0, inline_bytes = 0;
  for (size_t i = 0; i < n; i++) {
    const Realm__V1__StepEntry *se = m->entries[i];
    if (se->n_tokens == 0 || se->n_logits > se->n_tokens) {
      snprintf(msg, sizeof msg, "entries[%zu]: n_tokens %u, n_logits %u (need n_tokens >= 1 "
               "and n_logits <= n_tokens)", i, se->n_tokens, se->n_logits);
      worker_reply_error(w, &c->peer, request_id, REALM_E_INVALID_ARGUMENT, msg, "n_tokens");
      return;
    }
    if (se->n_tokens_inline && se->n_tokens_inline != se->n_tokens) {
      snprintf(msg, sizeof msg, "entries[%zu]: tokens_inline has %zu ids, n_tokens is %u", i,
               se->n_tokens_inline, se->n_tokens);
      worker_reply_error(w, &c->peer, request_id, REALM_E_INVALID_ARGUMENT, msg, "tokens_inline");
      return;
    }
    if (!c->shm && se->n_tokens_inline == 0) {
      snprintf(msg, sizeof msg, "entries[%zu]: inline connection sent no tokens_inline", i);
      worker_reply_error(w, &c->peer, request_id, REALM_E_INVALID_ARGUMENT, msg, "tokens_inline");
      return;
    }
    for (size_t j = 0; j < i; j++)
      if (m->entries[j]->session_id == se->session_id) {
        snprintf(msg, sizeof msg, "entries[%zu] and entries[%zu] name the same session", j, i);
        worker_reply_error(w, &c->peer, request_id, REALM_E_INVALID_ARGUMENT, msg, "session_id");
        return;
      }
    total += se->n_tokens;
    if (!c->shm) inline_bytes += sizeof(float) * (uint64_t)se->n_logits * V;
  }
  if (total > w->cfg.max_step_tokens) {
    snprintf(msg, sizeof msg, "Step has %llu tokens (max_step_tokens %u)",
             (unsigned long long)total, w->cfg.max_step_tokens);
    worker_reply_error(w, &c->peer, request_id, REALM_E_INVALID_ARGUMENT, msg, "entries");
    return;
  }
  if (inline_bytes > REALM_MAX_INLINE_TENSOR_BYTES) {
    snprintf(msg, sizeof msg, "inline logits of %llu bytes exceed %u",
             (unsigned long long)inline_bytes, REALM_MAX_INLINE_TENSOR_BYTES);
    worker_reply_error(w, &c->peer, request_id, REALM_E_TOO_LARGE, msg, "n_logits");
    return;
  }
  /* Shared-memory ranges: in the region, aligned, outputs disjoint from everything. */
  struct sched_step *st = calloc(1, sizeof *st);
  struct sched_entry *es = calloc(n, sizeof *es);
  uint64_t *roff = calloc(2 * n, sizeof *roff), *rlen = calloc(2 * n, sizeof *rlen);
  if (!st || !es || !roff || !rlen) goto nomem;
  st->entries = es;
  st->n_entries = (uint32_t)n;
  st->conn = c;
  st->request_id = request_id;
  uint32_t n_out = 0, n_in = 0;
  void *tok_ptr[REALM_MAX_BATCH_SEQS] = {0};
  if (c->shm) {
    for (size_t i = 0; i < n; i++) {
      const Realm__V1__StepEntry *se = m->entries[i];
      if (se->n_logits == 0) continue;
      uint64_t len = sizeof(float) * (uint64_t)se->n_logits * V;
      char field[48];
      snprintf(field, sizeof field, "entries[%zu].logits_offset", i);
      void *p;
      int rc = ops_shm_range(c, field, se->logits_offset, len, &p, msg, sizeof msg);
      if (rc < 0) {
        worker_reply_error(w, &c->peer, request_id, rc, msg, "logits_offset");
        goto fail;
      }
      es[i].logits = p;
      roff[n_out] = se->logits_offset;
      rlen[n_out++] = len;
    }
    for (size_t i = 0; i < n; i++) {
      const Realm__V1__StepEntry *se = m->entries[i];
      if (se->n_tokens_inline) continue;
      char field[48];
      snprintf(field, sizeof field, "entries[%zu].tokens_offset", i);
      int rc = ops_shm_range(c, field, se->tokens_offset, sizeof(int32_t) * (uint64_t)se->n_tokens,
                             &tok_ptr[i], msg, sizeof msg);
      if (rc < 0) {
        worker_reply_error(w, &c->peer, request_id, rc, msg, "tokens_offset");
        goto fail;
      }
      roff[n_out + n_in] = se->tokens_offset;
      rlen[n_out + n_in++] = sizeof(int32_t) * (uint64_t)se->n_tokens;
    }
    int bad = range_list_overlap(roff, rlen, n_out, n_out + n_in);
    if (bad >= 0) {
      snprintf(msg, sizeof msg, "logits range at offset %llu overlaps another range of the Step",
               (unsigned long long)roff[bad]);
      worker_reply_error(w, &c->peer, request_id, REALM_E_INVALID_ARGUMENT, msg, "logits_offset");
      goto fail;
    }
  }
  free(roff);
  free(rlen);
  roff = rlen = NULL;

  /* Copy every input once, then validate the copy (the runner may rewrite the region). */
  for (size_t i = 0; i < n; i++) {
    const Realm__V1__StepEntry *se = m->entries[i];
    struct sched_entry *e = &es[i];
    e->step = st;
    e->session_id = se->session_id;
    e->n_tokens = se->n_tokens;
    e->n_logits = se->n_logits;
    e->tokens = malloc(sizeof(int32_t) * se->n_tokens);
    if (!e->tokens) goto nomem;
    if (se->n_tokens_inline) memcpy(e->tokens, se->tokens_inline, sizeof(int32_t) * se->n_tokens);
    else memcpy(e->tokens, tok_ptr[i], sizeof(int32_t) * se->n_tokens);
    if (!c->shm && se->n_logits) {
      e->logits = malloc(sizeof(float) * (size_t)se->n_logits * V);
      if (!e->logits) goto nomem;
      e->logits_private = true;
    }
  }
  int64_t now = worker_now_ns();
  st->ready_ns = now;
  st->n_open = (uint32_t)n;
  /* Link first: entry_finish() and the counters below need the Step in the queue. */
  st->prev = w->sched.tail;
  if (w->sched.tail) w->sched.tail->next = st;
  else w->sched.head = st;
  w->sched.tail = st;
  c->pending_steps++;
  for (size_t i = 0; i < n; i++) {
    struct sched_entry *e = &es[i];
    struct worker_session *s = session_find(c, e->session_id);
    if (!s) {
      snprintf(msg, sizeof msg, "session %llu not found", (unsigned long long)e->session_id);
      entry_finish(w, e, REALM_E_NOT_FOUND, msg);
      continue;
    }
    e->sess = s;
    s->queued++;
    if (s->conn->tenant->queued_entries++ == 0) tenant_activate(w, s->conn->tenant);
    w->sched.queued_entries++;
    for (uint32_t j = 0; j < e->n_tokens; j++)
      if (e->tokens[j] < 0 || (uint32_t)e->tokens[j] >= V) {
        snprintf(msg, sizeof msg, "token %u: id %d outside [0, %u)", j, e->tokens[j], V);
        entry_finish(w, e, REALM_E_OUT_OF_RANGE, msg);
        break;
      }
  }
  if (st->n_open == 0) step_reply(w, st);
  return;
nomem:
  worker_reply_error(w, &c->peer, request_id, REALM_E_NOMEM, "no memory for the Step", NULL);
fail: /* reached only before the Step was linked */
  if (es)
    for (size_t i = 0; i < n; i++) {
      free(es[i].tokens);
      if (es[i].logits_private) free(es[i].logits);
    }
  free(es);
  free(st);
  free(roff);
  free(rlen);
}

/* ---- passes ---- */

int64_t sched_wait_ns(struct worker *w, int64_t now) {
  struct worker_sched *s = &w->sched;
  if (s->queued_entries == 0) return -1;
  uint64_t queued_tokens = 0;
  int64_t oldest = INT64_MAX;
  for (struct sched_step *st = s->head; st; st = st->next) {
    if (st->ready_ns < oldest) oldest = st->ready_ns;
    for (uint32_t i = 0; i < st->n_entries && queued_tokens < w->cfg.batch_tokens; i++)
      if (!st->entries[i].finished) queued_tokens += st->entries[i].n_tokens - st->entries[i].done;
  }
  if (queued_tokens >= w->cfg.batch_tokens) return 0;
  if (w->cfg.batch_eager) {
    bool all = true;
    for (uint32_t i = 0; i < w->n_conns && all; i++) {
      const struct worker_conn *c = w->conns[i];
      if (c->n_sessions > 0 && !c->dead && c->pending_steps == 0) all = false;
    }
    if (all) return 0;
  }
  int64_t due = oldest + w->cfg.batch_window_us * 1000;
  return due <= now ? 0 : due - now;
}

static struct worker_tenant *pick_tenant(struct worker *w) {
  struct worker_tenant *best = NULL;
  for (uint32_t i = 0; i < w->n_tenants; i++) {
    struct worker_tenant *t = w->tenants[i];
    if (t->cursor >= t->n_cand) continue;
    if (!best || t->vtime < best->vtime) best = t;
  }
  return best;
}

static int cand_push(struct worker_tenant *t, struct sched_entry *e) {
  if (t->n_cand == t->cap_cand) {
    uint32_t cap = t->cap_cand ? t->cap_cand * 2 : 32;
    void *nb = realloc(t->cand, sizeof *t->cand * cap);
    if (!nb) return REALM_E_NOMEM;
    t->cand = nb;
    t->cap_cand = cap;
  }
  t->cand[t->n_cand++] = e;
  return 0;
}

/* Logits rows entry e needs from its current chunk: [*ret_first, done + chunk), as indexes
 * into the entry's tokens. Returns the count. */
static uint32_t rows_needed(const struct sched_entry *e, uint32_t *ret_first) {
  uint32_t want_from = e->n_tokens - e->n_logits;
  uint32_t end = e->done + e->chunk;
  uint32_t first = e->done > want_from ? e->done : want_from;
  *ret_first = first;
  return end > first ? end - first : 0;
}

/* Where the engine may write the pass's logits itself: when the pass wants exactly one row
 * per sequence (no all_logits) and those rows' destinations lie back to back in order — a
 * runner's decode Step, whose logits rows are consecutive in its region — the engine writes
 * them in place and the pass copies nothing (a row is 128 KB at a 32k vocabulary). Else
 * NULL: the pass buffer, then a copy per row. */
static float *direct_logits(struct worker_sched *s, uint32_t n, uint32_t V) {
  float *base = NULL;
  for (uint32_t i = 0; i < n; i++) {
    const struct sched_entry *e = s->batch[i];
    uint32_t first;
    if (e->logits_private || rows_needed(e, &first) != 1 || first + 1 != e->n_tokens)
      return NULL;
    /* The row goes to e->logits + (first - (n_tokens - n_logits)) * V, the last one. */
    float *dst = e->logits + (size_t)(e->n_logits - 1) * V;
    if (i == 0) base = dst;
    else if (dst != base + (size_t)i * V) return NULL;
  }
  return base;
}

void sched_run_pass(struct worker *w) {
  struct worker_sched *s = &w->sched;
  struct kv_cache *kv = engine_kv(w->engine);
  const uint32_t V = w->n_vocab;
  char msg[256];
  s->pass++;
  for (uint32_t i = 0; i < w->n_tenants; i++) w->tenants[i]->n_cand = w->tenants[i]->cursor = 0;
  /* Candidates: the oldest unfinished entry of each session, grouped by tenant in order. */
  for (struct sched_step *st = s->head; st; st = st->next)
    for (uint32_t i = 0; i < st->n_entries; i++) {
      struct sched_entry *e = &st->entries[i];
      e->chunk = 0;
      if (e->finished || e->sess->mark == s->pass) continue;
      e->sess->mark = s->pass;
      if (cand_push(e->sess->conn->tenant, e) < 0) break; /* OOM: fewer candidates this pass */
    }
  uint32_t n = 0, tokens_left = w->cfg.batch_tokens;
  while (n < w->cfg.max_batch_seqs && tokens_left > 0) {
    struct worker_tenant *t = pick_tenant(w);
    if (!t) break;
    struct sched_entry *e = t->cand[t->cursor++];
    struct worker_session *ss = e->sess;
    if (!e->started) {
      e->start_len = kv_seq_len(ss->seq);
      if ((uint64_t)e->start_len + e->n_tokens > ss->max_tokens) {
        snprintf(msg, sizeof msg, "session at %u tokens + %u new exceeds its max_tokens %u",
                 e->start_len, e->n_tokens, ss->max_tokens);
        entry_finish(w, e, REALM_E_OUT_OF_RANGE, msg);
        continue;
      }
      e->started = true;
    }
    uint32_t chunk = e->n_tokens - e->done;
    if (chunk > w->cfg.prefill_chunk) chunk = w->cfg.prefill_chunk;
    if (chunk > tokens_left) chunk = tokens_left;
    int rc = kv_seq_reserve(kv, ss->seq, e->start_len + e->done + chunk);
    if (rc < 0) {
      /* Unreachable for a session within its max_tokens (admit.c invariant 3): its blocks
       * were reserved when it opened. Kept as the engine's answer should that ever break. */
      if (rc == REALM_E_QUOTA)
        snprintf(msg, sizeof msg, "tenant %s KV quota of %u pages exhausted", t->id,
                 t->quota_blocks);
      else
        snprintf(msg, sizeof msg, "no KV pages for %u positions (%s)",
                 e->start_len + e->done + chunk, realm_err_name(rc));
      entry_finish(w, e, rc, msg);
      continue;
    }
    e->chunk = chunk;
    s->batch[n] = e;
    s->seqs[n] = (struct engine_seq_step){.seq = ss->seq, .pos = e->start_len + e->done,
                                          .tokens = e->tokens + e->done, .n_tokens = chunk};
    n++;
    tokens_left -= chunk;
    uint64_t cost = (uint64_t)chunk * WORKER_VT_SCALE / t->weight;
    t->vtime += cost ? cost : 1;
  }
  int64_t now = worker_now_ns();
  if (n > 0) {
    int all_logits = 0;
    for (uint32_t i = 0; i < n; i++) {
      uint32_t first;
      if (rows_needed(s->batch[i], &first) > 1) all_logits = 1;
    }
    struct engine_batch b = {.seqs = s->seqs, .n_seqs = n, .all_logits = all_logits};
    float *direct = all_logits ? NULL : direct_logits(s, n, V);
    int rc;
    if (__atomic_exchange_n(&w->inject_failure, 0, __ATOMIC_ACQ_REL)) {
      snprintf(msg, sizeof msg, "injected backend failure (test)");
      rc = REALM_E_UNAVAILABLE;
    } else {
      rc = engine_forward(w->engine, &b, direct ? direct : s->logits, msg, sizeof msg);
    }
    if (rc == REALM_E_UNAVAILABLE) {
      /* The device is gone for good (llama.h): this pass's entries fail now, the loop fails
       * the rest and the process exits for a restart. */
      worker_backend_failed(w, msg);
      char why[320];
      snprintf(why, sizeof why, "worker compute backend failed (%s); the worker restarts", msg);
      for (uint32_t i = 0; i < n; i++) entry_finish(w, s->batch[i], rc, why);
    } else if (rc < 0) {
      realm_log_error("forward pass failed", RLOG_ERR(rc), RLOG_STR("detail", msg),
                      RLOG_UINT("seqs", n));
      for (uint32_t i = 0; i < n; i++) entry_finish(w, s->batch[i], rc, msg);
    } else {
      uint32_t row0 = 0, tokens = 0;
      for (uint32_t i = 0; i < n; i++) {
        struct sched_entry *e = s->batch[i];
        uint32_t first, cnt = rows_needed(e, &first);
        for (uint32_t k = 0; k < cnt && !direct; k++) {
          uint32_t j = first + k; /* token index within the entry */
          uint32_t src = all_logits ? row0 + (j - e->done) : i;
          memcpy(e->logits + (size_t)(j - (e->n_tokens - e->n_logits)) * V,
                 s->logits + (size_t)src * V, sizeof(float) * V);
        }
        row0 += e->chunk;
        tokens += e->chunk;
        e->done += e->chunk;
        e->sess->conn->tenant->tokens_total += e->chunk;
        if (e->done == e->n_tokens) entry_finish(w, e, 0, NULL);
        else e->step->ready_ns = now; /* carried over: may wait one window for company */
      }
      stats_record_pass(w, n, tokens);
    }
  }
  /* vclock follows the smallest active vtime upwards (invariant 5). Tenants served in this
   * pass count as active even when it emptied their queue: a decode loop empties it every
   * pass, and the clock must still move while it runs. */
  bool any = false;
  uint64_t mn = 0;
  for (uint32_t i = 0; i < w->n_tenants; i++) {
    struct worker_tenant *t = w->tenants[i];
    if (t->queued_entries == 0 && t->n_cand == 0) continue;
    if (!any || t->vtime < mn) mn = t->vtime;
    any = true;
  }
  if (any && mn > s->vclock) s->vclock = mn;
  reply_finished_steps(w);
}

uint32_t sched_queued_for_tenant(const struct worker *w, const struct worker_tenant *t) {
  (void)w;
  return t->queued_entries;
}
