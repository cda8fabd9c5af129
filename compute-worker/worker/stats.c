/*
 * stats.c — the worker's figures: per-pass accounting, the StatsRequest reply, and the
 * periodic debug line.
 *
 * A StatsReply carries the global figures and exactly one tenant row: the requesting
 * connection's own tenant (docs/protocol.md §5). Other tenants' sessions, tokens and queue
 * lengths never reach a runner — they would tell one tenant how busy another is.
 */
#include <stdio.h>

#include "internal.h"
#include "realm/log.h"

/* Rate window: tokens/s is measured over windows of at least this long. */
#define STATS_RATE_WINDOW_NS 1000000000LL

void stats_record_pass(struct worker *w, uint32_t seqs, uint32_t tokens) {
  struct worker_stats *s = &w->stats;
  s->steps_total++;
  s->tokens_total += tokens;
  s->seqs_total += seqs;
  s->last_batch_seqs = seqs;
  s->last_batch_tokens = tokens;
}

uint64_t stats_kv_pages_used(const struct worker *w) {
  struct kv_cache *kv = engine_kv(w->engine);
  return (uint64_t)kv_cache_total_blocks(kv) - kv_cache_free_blocks(kv);
}

static void update_rate(struct worker *w, int64_t now) {
  struct worker_stats *s = &w->stats;
  int64_t dt = now - s->rate_t0_ns;
  if (dt < STATS_RATE_WINDOW_NS) return;
  s->tokens_per_second = (float)((double)(s->tokens_total - s->rate_tokens0) * 1e9 / (double)dt);
  s->rate_t0_ns = now;
  s->rate_tokens0 = s->tokens_total;
}

void stats_tick(struct worker *w, int64_t now) {
  update_rate(w, now);
  if (now < w->stats.next_log_ns) return;
  w->stats.next_log_ns = now + w->cfg.stats_interval_ms * 1000000LL;
  const struct worker_stats *s = &w->stats;
  realm_log_debug("stats", RLOG_UINT("steps_total", s->steps_total),
                  RLOG_UINT("lane_steps_total", s->lane_steps),
                  RLOG_UINT("tokens_total", s->tokens_total),
                  RLOG_F64("tokens_per_second", s->tokens_per_second),
                  RLOG_UINT("queue_depth", w->sched.queued_entries),
                  RLOG_UINT("last_batch_seqs", s->last_batch_seqs),
                  RLOG_F64("mean_batch_seqs",
                           s->steps_total ? (double)s->seqs_total / s->steps_total : 0.0),
                  RLOG_UINT("kv_pages_used", stats_kv_pages_used(w)),
                  RLOG_UINT("kv_pages_reserved", w->admit.reserved_blocks),
                  RLOG_UINT("kv_pages_total", kv_cache_total_blocks(engine_kv(w->engine))),
                  RLOG_UINT("opens_waiting", w->admit.n_waiting),
                  RLOG_UINT("opens_timed_out_total", w->admit.timed_out_total),
                  RLOG_UINT("opens_refused_total", w->admit.refused_total),
                  RLOG_UINT("connections", w->n_conns), RLOG_UINT("tenants", w->n_tenants));
  for (uint32_t i = 0; i < w->n_tenants; i++) {
    const struct worker_tenant *t = w->tenants[i];
    realm_log_debug("tenant stats", RLOG_STR("tenant", t->id), RLOG_UINT("weight", t->weight),
                    RLOG_UINT("sessions", t->sessions),
                    RLOG_UINT("kv_pages_used", t->quota.used_blocks),
                    RLOG_UINT("kv_pages_reserved", t->reserved_blocks),
                    RLOG_UINT("kv_pages_quota", t->quota_blocks),
                    RLOG_UINT("opens_waiting", t->waiting_opens),
                    RLOG_UINT("tokens_total", t->tokens_total),
                    RLOG_UINT("queued_entries", t->queued_entries));
  }
}

void stats_handle_request(struct worker *w, struct worker_conn *c, uint64_t request_id) {
  update_rate(w, worker_now_ns());
  const struct worker_stats *s = &w->stats;
  const struct worker_tenant *t = c->tenant;
  Realm__V1__TenantStats ts;
  realm__v1__tenant_stats__init(&ts);
  ts.tenant_id = (char *)t->id;
  ts.weight = t->weight;
  ts.sessions = t->sessions;
  ts.kv_pages_used = t->quota.used_blocks;
  ts.kv_pages_quota = t->quota_blocks;
  ts.kv_pages_reserved = t->reserved_blocks;
  ts.opens_waiting = t->waiting_opens;
  ts.tokens_total = t->tokens_total;
  ts.queued_entries = t->queued_entries;
  Realm__V1__TenantStats *rows[1] = {&ts};
  Realm__V1__StatsReply sr;
  realm__v1__stats_reply__init(&sr);
  sr.steps_total = s->steps_total;
  sr.tokens_total = s->tokens_total;
  sr.tokens_per_second = s->tokens_per_second;
  sr.queue_depth = w->sched.queued_entries;
  sr.last_batch_seqs = s->last_batch_seqs;
  sr.last_batch_tokens = s->last_batch_tokens;
  sr.mean_batch_seqs = s->steps_total ? (float)((double)s->seqs_total / s->steps_total) : 0.0f;
  sr.kv_pages_used = stats_kv_pages_used(w);
  sr.kv_pages_total = kv_cache_total_blocks(engine_kv(w->engine));
  sr.kv_pages_reserved = w->admit.reserved_blocks;
  sr.opens_waiting = w->admit.n_waiting;
  sr.opens_queued_total = w->admit.queued_total;
  sr.opens_timed_out_total = w->admit.timed_out_total;
  sr.opens_refused_total = w->admit.refused_total;
  sr.lane_steps_total = s->lane_steps;
  sr.n_tenants = 1;
  sr.tenants = rows;
  sr.backend = (char *)engine_backend_name(w->engine);
  sr.connections = w->n_conns;
  Realm__V1__WorkerReply reply;
  realm__v1__worker_reply__init(&reply);
  reply.request_id = request_id;
  reply.body_case = REALM__V1__WORKER_REPLY__BODY_STATS;
  reply.stats = &sr;
  worker_send_reply(w, &c->peer, &reply);
}
