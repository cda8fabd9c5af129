/*
 * admit.c — admission control of the shared KV pool: a session reserves, when it opens, every
 * KV block it can ever need, and a SessionOpen the pool cannot cover waits in a bounded,
 * fair queue instead of the session failing halfway through its generation.
 *
 * Why reservations. The paged cache (engine/kv.c) hands blocks out on demand, one step at a
 * time, from a pool every tenant shares. Without admission control an accepted request could
 * fail with out_of_memory at its 300th token because other tenants filled the pool
 * meanwhile; its tokens so far are wasted and the client sees an error for a request the
 * service accepted. So the worker keeps reservation accounting on top of the pool: a session
 * of max_tokens reserves ceil(max_tokens / block_tokens) blocks at SessionOpen, and the sum
 * of reservations never exceeds the pool. kv.c still allocates lazily (a short session costs
 * only what it fills); what reservations add is the promise that the blocks will be there.
 *
 * Why a queue. When the pool cannot cover a new reservation, the open waits (up to
 * --open-queue-timeout) for sessions to close, instead of failing at once: under a burst the
 * request starts a little later rather than not at all. The queue is bounded
 * (--max-open-queue); overflow and timeout answer `unavailable` "KV cache full" with param
 * "kv_cache", so a runner can tell this per-request refusal from a lost worker.
 *
 * Fairness. Waiting opens are admitted by a weighted virtual counter per tenant,
 * open_vtime, the scheduler's rule (sched.c POLICY) applied to reservations: admitting a
 * waiting open charges its tenant reserved_tokens * WORKER_VT_SCALE / weight, the waiting tenant
 * with the smallest counter goes next (ties: the one whose oldest open arrived first), and a
 * tenant that starts waiting is raised to the smallest counter of the tenants already
 * waiting (or to vclock): idle time banks no credit. It is a separate counter from the
 * scheduler's vtime on purpose: vtime already charges every token a session computes, and
 * charging the reservation there too would make a tenant pay twice for one request.
 *
 * INVARIANTS
 *   1. w->admit.reserved_blocks == Σ s->reserved_blocks over open sessions, and
 *      t->reserved_blocks == the same sum over tenant t's sessions.
 *   2. w->admit.reserved_blocks <= the pool's total blocks. A session is created only by
 *      session_open_now() from this file, after checking that the unreserved blocks cover
 *      its reservation.
 *   3. A session's KV blocks in use never exceed its reservation: every path that grows a
 *      sequence (sched.c's chunk reserve, ops.c's Attention) first refuses to pass the
 *      session's max_tokens (out_of_range: the runner's own limit), and
 *      reserved_blocks = ceil(max_tokens / block_tokens). With 1 and 2:
 *      Σ used <= Σ reserved <= pool, so kv_seq_reserve never fails with out_of_memory for an
 *      open session, whatever other tenants do. Likewise a tenant's reservations are
 *      admitted only within its quota_blocks, so a Step never fails with quota_exceeded
 *      either (kv.c's own per-tenant cap is set to the whole pool and is a backstop only).
 *   4. An open skips the queue only when the queue is empty and the pool covers it: no new
 *      open overtakes a waiting one except by the fairness order. When the fairest waiting
 *      open does not fit, nothing behind it is admitted (a big reservation cannot be starved
 *      by a stream of small ones).
 *   5. At most max_open_queue opens wait. Every waiting open gets exactly one reply:
 *      SessionOpened when admitted; `unavailable` "KV cache full" at its deadline;
 *      `quota_exceeded` if a later Hello shrank its tenant's quota below what it needs;
 *      `shutting_down` / `unavailable` from admit_fail_all(); none when its connection is
 *      gone or says Hello again (admit_drop_conn), like a queued Step.
 *   6. t->waiting_opens / t->waiting_blocks and c->waiting_opens count exactly the waits of
 *      that tenant / connection; t->reserved_blocks + t->waiting_blocks <= t->quota_blocks
 *      when each wait is queued (an open that could never fit the quota is refused at once).
 *   7. admit.vclock never decreases; a tenant's open_vtime is >= vclock from when it starts
 *      waiting.
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "realm/log.h"

/* Error.param of the "KV cache full" refusals: the runner's cue that this one request was
 * refused for capacity, not that the worker is gone (docs/protocol.md §5). */
#define ADMIT_FULL_PARAM "kv_cache"

uint32_t admit_blocks_for(const struct worker *w, uint32_t max_tokens) {
  uint32_t bt = kv_cache_block_tokens(engine_kv(w->engine));
  return (uint32_t)(((uint64_t)max_tokens + bt - 1) / bt);
}

uint64_t admit_unreserved_blocks(const struct worker *w) {
  uint64_t total = kv_cache_total_blocks(engine_kv(w->engine));
  return total > w->admit.reserved_blocks ? total - w->admit.reserved_blocks : 0;
}

/* ---- the wait list ---- */

static void wait_unlink_free(struct worker *w, struct admit_wait *a) {
  struct worker_admit *ad = &w->admit;
  if (a->prev) a->prev->next = a->next;
  else ad->head = a->next;
  if (a->next) a->next->prev = a->prev;
  else ad->tail = a->prev;
  ad->n_waiting--;
  struct worker_tenant *t = a->conn->tenant;
  t->waiting_opens--;
  t->waiting_blocks -= a->blocks;
  a->conn->waiting_opens--;
  free(a);
}

/* Invariant 7: a tenant that starts waiting starts at the current minimum. */
static void tenant_start_waiting(struct worker *w, struct worker_tenant *t) {
  uint64_t floor = w->admit.vclock;
  bool any = false;
  for (uint32_t i = 0; i < w->n_tenants; i++) {
    const struct worker_tenant *o = w->tenants[i];
    if (o == t || o->waiting_opens == 0) continue;
    if (!any || o->open_vtime < floor) floor = o->open_vtime;
    any = true;
  }
  if (!any) floor = w->admit.vclock;
  if (t->open_vtime < floor) t->open_vtime = floor;
}

static void reply_full(struct worker *w, const struct admit_wait *a, const char *why) {
  char msg[256];
  snprintf(msg, sizeof msg,
           "KV cache full: %s (session of %u tokens needs %u pages; %llu of %u pages reserved)",
           why, a->max_tokens, a->blocks, (unsigned long long)w->admit.reserved_blocks,
           kv_cache_total_blocks(engine_kv(w->engine)));
  worker_reply_error(w, &a->conn->peer, a->request_id, REALM_E_UNAVAILABLE, msg,
                     ADMIT_FULL_PARAM);
}

/* ---- entry points ---- */

void admit_open(struct worker *w, struct worker_conn *c, uint64_t request_id,
                uint32_t max_tokens) {
  struct worker_admit *ad = &w->admit;
  struct worker_tenant *t = c->tenant;
  uint32_t blocks = admit_blocks_for(w, max_tokens);
  char msg[256];
  /* The quota counts reservations, waiting ones included (invariant 6): over it the tenant
   * has to close its own sessions, which waiting here cannot bring about. */
  if ((uint64_t)t->reserved_blocks + t->waiting_blocks + blocks > t->quota_blocks) {
    snprintf(msg, sizeof msg,
             "tenant %s: a session of %u tokens needs %u KV pages; %u of its quota of %u are "
             "reserved by open sessions and %u by waiting opens",
             t->id, max_tokens, blocks, t->reserved_blocks, t->quota_blocks, t->waiting_blocks);
    worker_reply_error(w, &c->peer, request_id, REALM_E_QUOTA, msg, "max_tokens");
    return;
  }
  if (ad->n_waiting == 0 && admit_unreserved_blocks(w) >= blocks) {
    /* Not charged to open_vtime: without contention there is nobody to be fair to, and a
     * tenant that starts waiting later is raised to the current floor anyway. */
    session_open_now(w, c, request_id, max_tokens, blocks);
    return;
  }
  if (ad->n_waiting >= w->cfg.max_open_queue) {
    ad->refused_total++;
    struct admit_wait tmp = {.conn = c, .request_id = request_id, .max_tokens = max_tokens,
                             .blocks = blocks};
    snprintf(msg, sizeof msg, "%u session opens already waiting (--max-open-queue %u)",
             ad->n_waiting, w->cfg.max_open_queue);
    reply_full(w, &tmp, msg);
    return;
  }
  struct admit_wait *a = calloc(1, sizeof *a);
  if (!a) {
    worker_reply_error(w, &c->peer, request_id, REALM_E_NOMEM, "no memory for a waiting open",
                       NULL);
    return;
  }
  int64_t now = worker_now_ns();
  a->conn = c;
  a->request_id = request_id;
  a->max_tokens = max_tokens;
  a->blocks = blocks;
  a->enqueued_ns = now;
  a->deadline_ns = now + w->cfg.open_queue_timeout_ms * 1000000LL;
  a->prev = ad->tail;
  if (ad->tail) ad->tail->next = a;
  else ad->head = a;
  ad->tail = a;
  ad->n_waiting++;
  ad->queued_total++;
  if (t->waiting_opens++ == 0) tenant_start_waiting(w, t);
  t->waiting_blocks += blocks;
  c->waiting_opens++;
  realm_log_debug("session open waits for KV pages", RLOG_STR("tenant", t->id),
                  RLOG_UINT("conn", c->id), RLOG_UINT("pages", blocks),
                  RLOG_UINT("reserved", ad->reserved_blocks), RLOG_UINT("waiting", ad->n_waiting));
}

void admit_release(struct worker *w, struct worker_session *s) {
  w->admit.reserved_blocks -= s->reserved_blocks;
  s->conn->tenant->reserved_blocks -= s->reserved_blocks;
  s->reserved_blocks = 0;
}

/* The waiting open to consider next: the oldest wait of the tenant with the smallest
 * open_vtime. Walking in arrival order, the first wait seen of a tenant is its oldest, and a
 * tie keeps the tenant seen first (whose oldest wait is older). */
static struct admit_wait *pick_next(struct worker *w) {
  struct admit_wait *best = NULL;
  for (struct admit_wait *a = w->admit.head; a; a = a->next)
    if (!best || a->conn->tenant->open_vtime < best->conn->tenant->open_vtime) best = a;
  return best;
}

int64_t admit_pump(struct worker *w, int64_t now) {
  struct worker_admit *ad = &w->admit;
  if (!ad->head) return INT64_MAX;
  for (struct admit_wait *a = ad->head, *next; a; a = next) {
    next = a->next;
    if (a->conn->dead || now < a->deadline_ns) continue;
    char why[96];
    snprintf(why, sizeof why, "waited %lld ms (--open-queue-timeout)",
             (long long)((now - a->enqueued_ns) / 1000000));
    ad->timed_out_total++;
    realm_log_info("session open timed out waiting for KV pages",
                   RLOG_STR("tenant", a->conn->tenant->id), RLOG_UINT("pages", a->blocks),
                   RLOG_UINT("reserved", ad->reserved_blocks));
    reply_full(w, a, why);
    wait_unlink_free(w, a);
  }
  const uint32_t bt = kv_cache_block_tokens(engine_kv(w->engine));
  /* Bounded by the queue length: every round removes one wait or stops. */
  for (uint32_t round = 0; ad->head && round <= w->cfg.max_open_queue; round++) {
    struct admit_wait *a = pick_next(w);
    struct worker_conn *c = a->conn;
    struct worker_tenant *t = c->tenant;
    if (c->dead) { /* its replies go nowhere; conn_reap frees it */
      wait_unlink_free(w, a);
      continue;
    }
    /* A Hello may have shrunk the quota since the open was queued. */
    if ((uint64_t)t->reserved_blocks + a->blocks > t->quota_blocks) {
      char msg[200];
      snprintf(msg, sizeof msg, "tenant %s: %u KV pages needed, %u of its quota of %u reserved",
               t->id, a->blocks, t->reserved_blocks, t->quota_blocks);
      worker_reply_error(w, &c->peer, a->request_id, REALM_E_QUOTA, msg, "max_tokens");
      wait_unlink_free(w, a);
      continue;
    }
    if (admit_unreserved_blocks(w) < a->blocks) break; /* invariant 4: nobody overtakes it */
    uint64_t request_id = a->request_id;
    uint32_t max_tokens = a->max_tokens, blocks = a->blocks;
    int64_t waited_ms = (now - a->enqueued_ns) / 1000000;
    /* Charge first, with the tenant still counted as waiting (invariant 7). */
    if (t->open_vtime > ad->vclock) ad->vclock = t->open_vtime;
    uint64_t cost = (uint64_t)blocks * bt * WORKER_VT_SCALE / t->weight;
    t->open_vtime += cost ? cost : 1;
    wait_unlink_free(w, a);
    if (session_open_now(w, c, request_id, max_tokens, blocks) == 0)
      realm_log_debug("waiting session open admitted", RLOG_STR("tenant", t->id),
                      RLOG_UINT("pages", blocks), RLOG_INT("waited_ms", waited_ms));
  }
  int64_t next = INT64_MAX;
  for (const struct admit_wait *a = ad->head; a; a = a->next)
    if (a->deadline_ns < next) next = a->deadline_ns;
  return next;
}

void admit_drop_conn(struct worker *w, struct worker_conn *c) {
  for (struct admit_wait *a = w->admit.head, *next; a && c->waiting_opens > 0; a = next) {
    next = a->next;
    if (a->conn == c) wait_unlink_free(w, a);
  }
}

void admit_fail_all(struct worker *w, int code, const char *message) {
  while (w->admit.head) {
    struct admit_wait *a = w->admit.head;
    worker_reply_error(w, &a->conn->peer, a->request_id, code, message, NULL);
    wait_unlink_free(w, a);
  }
}
