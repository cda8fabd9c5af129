/*
 * test_admit.c — KV admission control (compute-worker/worker/admit.c) end to end: the worker
 * core in-process with a deliberately tiny KV pool (a few 16-token pages), driven by real
 * DEALER clients. A SessionOpen the pool cannot cover waits instead of failing and is
 * admitted as soon as a session closes; the Steps of open sessions never fail for want of
 * pages, even with the pool physically full; a waiting open times out with `unavailable`
 * "KV cache full" (param kv_cache); the wait queue is bounded; the quota still refuses at
 * once; waiting tenants are admitted by weight; and a churn of three tenants over a pool that
 * fits two sessions never fails a Step.
 *
 * No sleeps: "the open is waiting" is proved by ordering — the worker answers one
 * connection's requests in order, so when a Stats request sent after the open is answered
 * first, the open was queued, not answered. Every wait is a bounded zmq_poll.
 */
#include <stdlib.h>
#include <string.h>

#include "realm/error.h"
#include "realm_test.h"
#include "time_util.h"
#include "wclient.h"
#include "wfixture.h"

#define PAGE 16 /* the default --kv-block-tokens */

/* ---- protocol helpers ---- */

/* The figures the admission tests look at: global, and the asking tenant's row. */
struct astats {
  uint64_t pages_used, pages_reserved, pages_total;
  uint32_t waiting;
  uint64_t queued_total, timed_out_total, refused_total;
  uint64_t t_used, t_reserved, t_quota;
  uint32_t t_waiting;
};

static int stats_of(const Realm__V1__WorkerReply *r, struct astats *s) {
  if (!r || r->body_case != REALM__V1__WORKER_REPLY__BODY_STATS || r->stats->n_tenants != 1)
    return -1;
  const Realm__V1__StatsReply *g = r->stats;
  const Realm__V1__TenantStats *t = g->tenants[0];
  *s = (struct astats){.pages_used = g->kv_pages_used, .pages_reserved = g->kv_pages_reserved,
                       .pages_total = g->kv_pages_total, .waiting = g->opens_waiting,
                       .queued_total = g->opens_queued_total,
                       .timed_out_total = g->opens_timed_out_total,
                       .refused_total = g->opens_refused_total, .t_used = t->kv_pages_used,
                       .t_reserved = t->kv_pages_reserved, .t_quota = t->kv_pages_quota,
                       .t_waiting = t->opens_waiting};
  return 0;
}

/* Stats round trip; returns 0 or -1. */
static int get_stats(struct wclient *c, struct astats *s) {
  uint64_t rid = wc_send_stats(c);
  Realm__V1__WorkerReply *r = rid ? wc_recv_reply(c, rid) : NULL;
  int rc = stats_of(r, s);
  realm_frame_msg_free(r ? &r->base : NULL);
  return rc;
}

/* Sends Stats and requires it to be the very next reply on c (so every open sent before it
 * is still waiting). Returns 0 with the figures, -1 when something else came first. */
static int stats_next(struct wclient *c, struct astats *s) {
  uint64_t rid = wc_send_stats(c);
  Realm__V1__WorkerReply *r = rid ? wc_recv(c, 10000) : NULL;
  int rc = r && r->request_id == rid ? stats_of(r, s) : -1;
  if (r && r->request_id != rid)
    printf("# unexpected reply to request %llu before the Stats\n",
           (unsigned long long)r->request_id);
  realm_frame_msg_free(r ? &r->base : NULL);
  return rc;
}

/* Waits for the reply to an open; returns the session id (0 on error, *ret_code set). */
static uint64_t open_result(struct wclient *c, uint64_t rid, int *ret_code, char *msg,
                            size_t msglen, char *param, size_t paramlen) {
  Realm__V1__WorkerReply *r = wc_recv_reply(c, rid);
  uint64_t sid = 0;
  int code = wc_reply_code(r);
  if (code == 0 && r->body_case == REALM__V1__WORKER_REPLY__BODY_SESSION_OPENED)
    sid = r->session_opened->session_id;
  else if (code == 0)
    code = REALM_E_INTERNAL;
  /* error shares a union with the other bodies: only read it from an error reply. */
  const Realm__V1__Error *e = r && r->body_case == REALM__V1__WORKER_REPLY__BODY_ERROR ? r->error : NULL;
  if (msg) snprintf(msg, msglen, "%s", e && e->message ? e->message : "");
  if (param) snprintf(param, paramlen, "%s", e && e->param ? e->param : "");
  *ret_code = code;
  realm_frame_msg_free(r ? &r->base : NULL);
  return sid;
}

static int close_session(struct wclient *c, uint64_t sid) {
  uint64_t rid = wc_send_session_close(c, sid);
  Realm__V1__WorkerReply *r = rid ? wc_recv_reply(c, rid) : NULL;
  int code = wc_reply_code(r);
  realm_frame_msg_free(r ? &r->base : NULL);
  return code;
}

/* One Step of n tokens on sid (inline client); returns the entry's code and its n_past. */
static int step(struct wclient *c, uint64_t sid, uint32_t n, uint32_t *ret_past) {
  int32_t toks[64];
  for (uint32_t i = 0; i < n && i < 64; i++) toks[i] = 1 + (int32_t)((i * 13) % 500);
  int id = wc_send_step1(c, sid, toks, n, 1, 0, 0);
  Realm__V1__WorkerReply *r = id < 0 ? NULL : wc_recv_reply(c, (uint64_t)id);
  int code;
  if (!r || r->body_case != REALM__V1__WORKER_REPLY__BODY_STEP || r->step->n_results != 1) {
    code = r ? wc_reply_code(r) : REALM_E_TIMEOUT;
    if (code == 0) code = REALM_E_INTERNAL;
  } else {
    const Realm__V1__StepResult *res = r->step->results[0];
    code = res->error ? realm_proto_error_code(res->error) : 0;
    if (ret_past) *ret_past = res->n_past;
  }
  realm_frame_msg_free(r ? &r->base : NULL);
  return code;
}

/* ---- tests ---- */

/* fx_start(cfg), then clients a and b of tenant-a and tenant-b (weight 1, no quota);
 * use under CHECK_HELPER. */
static void start_ab(struct fx *f, const struct worker_config *cfg, struct wclient *a,
                     struct wclient *b) {
  CHECK_EQ_INT(fx_start(f, cfg), 0);
  CHECK_EQ_INT(wc_open(a, f->zctx, f->endpoint, "tenant-a", "r0", 1, 0, 0), 0);
  CHECK_EQ_INT(wc_open(b, f->zctx, f->endpoint, "tenant-b", "r0", 1, 0, 0), 0);
}

/* Pool of 4 pages. Tenant A's two sessions reserve all four; B's open waits (is not failed);
 * A fills the pool to the last page and every one of its Steps succeeds; A closes one
 * session and B's open is answered at once, and B's session computes. */
TEST(full_pool_queues_an_open_until_a_session_closes) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  cfg.kv_blocks = 4;
  struct wclient a, b;
  CHECK_HELPER(start_ab(&f, &cfg, &a, &b));
  int code;
  uint64_t s1 = open_result(&a, wc_send_session_open(&a, 2 * PAGE), &code, NULL, 0, NULL, 0);
  uint64_t s2 = open_result(&a, wc_send_session_open(&a, 2 * PAGE), &code, NULL, 0, NULL, 0);
  CHECK(s1 && s2);
  struct astats st;
  CHECK_EQ_INT(get_stats(&a, &st), 0);
  CHECK_EQ_INT(st.pages_total, 4);
  CHECK_EQ_INT(st.pages_reserved, 4); /* reserved at open ... */
  CHECK_EQ_INT(st.pages_used, 0);     /* ... though nothing is written yet */
  CHECK_EQ_INT(st.t_reserved, 4);

  /* B's open cannot be covered: it waits (the Stats sent after it is answered first). */
  uint64_t rid_b = wc_send_session_open(&b, PAGE);
  CHECK_EQ_INT(stats_next(&b, &st), 0);
  CHECK_EQ_INT(st.waiting, 1);
  CHECK_EQ_INT(st.t_waiting, 1);
  CHECK_EQ_INT(st.t_reserved, 0);
  CHECK_EQ_INT(st.queued_total, 1);

  /* A fills every page of the pool; no Step fails (the old behaviour: B's session took a
   * page and A's last Step failed with out_of_memory). */
  uint32_t past = 0;
  CHECK_EQ_INT(step(&a, s1, PAGE, &past), 0);
  CHECK_EQ_INT(step(&a, s2, PAGE, &past), 0);
  CHECK_EQ_INT(step(&a, s1, PAGE, &past), 0);
  CHECK_EQ_INT(past, 2 * PAGE);
  CHECK_EQ_INT(step(&a, s2, PAGE, &past), 0);
  CHECK_EQ_INT(past, 2 * PAGE);
  CHECK_EQ_INT(get_stats(&a, &st), 0);
  CHECK_EQ_INT(st.pages_used, 4);
  CHECK_EQ_INT(st.t_used, 4);
  /* Past its own max_tokens a session gets its own limit, never out_of_memory. */
  CHECK_EQ_INT(step(&a, s1, 1, &past), REALM_E_OUT_OF_RANGE);
  CHECK_EQ_INT(past, 2 * PAGE);
  /* Still waiting: the Stats is again the next reply B sees. */
  CHECK_EQ_INT(stats_next(&b, &st), 0);
  CHECK_EQ_INT(st.t_waiting, 1);

  /* A closes one session: B's open is admitted. */
  CHECK_EQ_INT(close_session(&a, s1), 0);
  uint64_t sb = open_result(&b, rid_b, &code, NULL, 0, NULL, 0);
  CHECK_EQ_INT(code, 0);
  CHECK(sb != 0);
  CHECK_EQ_INT(step(&b, sb, PAGE, &past), 0);
  CHECK_EQ_INT(past, PAGE);
  CHECK_EQ_INT(get_stats(&b, &st), 0);
  CHECK_EQ_INT(st.waiting, 0);
  CHECK_EQ_INT(st.pages_reserved, 3); /* A's s2 (2) + B's (1) */
  CHECK_EQ_INT(st.t_reserved, 1);
  CHECK_EQ_INT(st.timed_out_total, 0);
  wc_close(&a);
  wc_close(&b);
  fx_stop(&f);
}

/* A waiting open is answered `unavailable` "KV cache full" (param kv_cache) after
 * --open-queue-timeout, never before; the holder's session is unaffected. */
TEST(waiting_open_times_out_as_kv_cache_full) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  cfg.kv_blocks = 4;
  cfg.open_queue_timeout_ms = 150;
  struct wclient a, b;
  CHECK_HELPER(start_ab(&f, &cfg, &a, &b));
  int code;
  uint64_t sa = open_result(&a, wc_send_session_open(&a, 0), &code, NULL, 0, NULL, 0); /* whole pool */
  CHECK(sa != 0);
  int64_t t0 = test_mono_ms();
  uint64_t rid = wc_send_session_open(&b, PAGE);
  char msg[256], param[32];
  uint64_t sb = open_result(&b, rid, &code, msg, sizeof msg, param, sizeof param);
  int64_t waited = test_mono_ms() - t0;
  printf("# refused after %lld ms: %s\n", (long long)waited, msg);
  CHECK_EQ_INT(sb, 0);
  CHECK_EQ_INT(code, REALM_E_UNAVAILABLE);
  CHECK(strstr(msg, "KV cache full") != NULL);
  CHECK_STR_EQ(param, "kv_cache");
  CHECK(waited >= 150); /* the deadline is counted from after the send */
  struct astats st;
  CHECK_EQ_INT(get_stats(&b, &st), 0);
  CHECK_EQ_INT(st.timed_out_total, 1);
  CHECK_EQ_INT(st.waiting, 0);
  CHECK_EQ_INT(st.t_waiting, 0);
  uint32_t past;
  CHECK_EQ_INT(step(&a, sa, 3, &past), 0);
  CHECK_EQ_INT(past, 3);
  wc_close(&a);
  wc_close(&b);
  fx_stop(&f);
}

/* The wait queue holds --max-open-queue opens; one more is refused at once with
 * `unavailable` kv_cache. The quota still refuses at once, and counts waiting opens: a tenant
 * cannot queue more than its quota. */
TEST(open_queue_overflow_and_quota_are_refused_at_once) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  cfg.kv_blocks = 4;
  cfg.max_open_queue = 3;
  struct wclient a, b, d;
  CHECK_HELPER(start_ab(&f, &cfg, &a, &b));
  CHECK_EQ_INT(wc_open(&d, f.zctx, f.endpoint, "tenant-d", "r0", 1, 2 * PAGE, 0), 0);
  CHECK_EQ_INT(d.kv_quota_tokens, 2 * PAGE);
  int code;
  uint64_t sa = open_result(&a, wc_send_session_open(&a, 0), &code, NULL, 0, NULL, 0);
  CHECK(sa != 0);
  struct astats st;
  uint64_t b1 = wc_send_session_open(&b, PAGE), b2 = wc_send_session_open(&b, PAGE);
  CHECK_EQ_INT(stats_next(&b, &st), 0);
  CHECK_EQ_INT(st.t_waiting, 2);
  /* D: one page waits; two more would pass its quota of two (one waiting + two). */
  uint64_t d1 = wc_send_session_open(&d, PAGE);
  CHECK_EQ_INT(stats_next(&d, &st), 0);
  CHECK_EQ_INT(st.waiting, 3);
  char msg[256], param[32];
  CHECK_EQ_INT(open_result(&d, wc_send_session_open(&d, 2 * PAGE), &code, msg, sizeof msg, NULL, 0), 0);
  CHECK_EQ_INT(code, REALM_E_QUOTA);
  printf("# quota: %s\n", msg);
  /* Larger than the quota outright: refused, not queued. */
  CHECK_EQ_INT(open_result(&d, wc_send_session_open(&d, 3 * PAGE), &code, NULL, 0, NULL, 0), 0);
  CHECK_EQ_INT(code, REALM_E_QUOTA);
  /* The queue is full: B's third open is refused at once (answered before a later Stats). */
  uint64_t b3 = wc_send_session_open(&b, PAGE);
  Realm__V1__WorkerReply *r = wc_recv(&b, 10000);
  CHECK(r && r->request_id == b3);
  CHECK_EQ_INT(wc_reply_code(r), REALM_E_UNAVAILABLE);
  if (r && r->body_case == REALM__V1__WORKER_REPLY__BODY_ERROR) {
    CHECK(strstr(r->error->message, "KV cache full") != NULL);
    CHECK_STR_EQ(r->error->param, "kv_cache");
    snprintf(msg, sizeof msg, "%s", r->error->message);
  }
  printf("# overflow: %s\n", msg);
  realm_frame_msg_free(r ? &r->base : NULL);
  CHECK_EQ_INT(get_stats(&b, &st), 0);
  CHECK_EQ_INT(st.refused_total, 1);
  CHECK_EQ_INT(st.waiting, 3);
  /* Closing the pool's holder admits all three waiting opens (1 + 1 + 1 of 4 pages). */
  CHECK_EQ_INT(close_session(&a, sa), 0);
  CHECK(open_result(&b, b1, &code, NULL, 0, param, sizeof param) != 0);
  CHECK_STR_EQ(param, "");
  CHECK(open_result(&b, b2, &code, NULL, 0, NULL, 0) != 0);
  CHECK(open_result(&d, d1, &code, NULL, 0, NULL, 0) != 0);
  CHECK_EQ_INT(get_stats(&d, &st), 0);
  CHECK_EQ_INT(st.waiting, 0);
  CHECK_EQ_INT(st.pages_reserved, 3);
  CHECK_EQ_INT(st.t_reserved, 1);
  wc_close(&a);
  wc_close(&b);
  wc_close(&d);
  fx_stop(&f);
}

/* Two tenants wait, B at weight 3 and C at weight 1, six one-page opens each (all of B's
 * sent first). The holder frees one page at a time; each free admits exactly one open, and
 * the first eight admissions go 6:2 to B and C — not 6:2 with C last (arrival order: B's six
 * first) nor 4:4 (plain round robin). Stopping the worker answers the rest. */
TEST(waiting_opens_are_admitted_by_weight) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  cfg.kv_blocks = 8;
  CHECK_EQ_INT(fx_start(&f, &cfg), 0);
  struct wclient a, b, c;
  CHECK_EQ_INT(wc_open(&a, f.zctx, f.endpoint, "holder", "r0", 1, 0, 0), 0);
  CHECK_EQ_INT(wc_open(&b, f.zctx, f.endpoint, "heavy", "r0", 3, 0, 0), 0);
  CHECK_EQ_INT(wc_open(&c, f.zctx, f.endpoint, "light", "r0", 1, 0, 0), 0);
  CHECK_EQ_INT(b.weight, 3);
  enum { HELD = 8, EACH = 6 };
  uint64_t held[HELD];
  int code;
  for (int i = 0; i < HELD; i++)
    CHECK((held[i] = open_result(&a, wc_send_session_open(&a, PAGE), &code, NULL, 0, NULL, 0)) != 0);
  struct astats st;
  for (int i = 0; i < EACH; i++) CHECK(wc_send_session_open(&b, PAGE) != 0);
  CHECK_EQ_INT(stats_next(&b, &st), 0);
  CHECK_EQ_INT(st.t_waiting, EACH);
  for (int i = 0; i < EACH; i++) CHECK(wc_send_session_open(&c, PAGE) != 0);
  CHECK_EQ_INT(stats_next(&c, &st), 0);
  CHECK_EQ_INT(st.t_waiting, EACH);
  CHECK_EQ_INT(st.waiting, 2 * EACH);
  char order[HELD + 1] = {0};
  int got_b = 0, got_c = 0;
  for (int i = 0; i < HELD; i++) {
    CHECK_EQ_INT(close_session(&a, held[i]), 0);
    zmq_pollitem_t it[2] = {{.socket = b.sock, .events = ZMQ_POLLIN},
                            {.socket = c.sock, .events = ZMQ_POLLIN}};
    if (zmq_poll(it, 2, 10000) <= 0) break;
    struct wclient *who = (it[0].revents & ZMQ_POLLIN) ? &b : &c;
    Realm__V1__WorkerReply *r = wc_recv(who, 1000);
    CHECK(r && r->body_case == REALM__V1__WORKER_REPLY__BODY_SESSION_OPENED);
    realm_frame_msg_free(r ? &r->base : NULL);
    order[i] = who == &b ? 'B' : 'C';
    if (who == &b) got_b++;
    else got_c++;
  }
  printf("# admission order: %s\n", order);
  CHECK_EQ_INT(got_b, 6);
  CHECK_EQ_INT(got_c, 2);
  CHECK(order[1] == 'C'); /* C is not kept behind all of B's earlier opens */
  /* Exactly one admission per freed page: nothing else arrived meanwhile. */
  CHECK_EQ_INT(stats_next(&b, &st), 0);
  CHECK_EQ_INT(st.waiting, 2 * EACH - HELD);
  CHECK_EQ_INT(stats_next(&c, &st), 0);
  CHECK_EQ_INT(st.pages_reserved, 8);
  /* A stopping worker answers the four opens still waiting `shutting_down` (plus its
   * request_id 0 notice). */
  fx_join(&f);
  int answered = 0;
  for (int i = 0; i < 8 && answered < 2 * EACH - HELD; i++) {
    Realm__V1__WorkerReply *r = wc_recv(&c, 10000);
    if (!r) break;
    if (r->request_id != 0 && wc_reply_code(r) == REALM_E_SHUTTING_DOWN) answered++;
    realm_frame_msg_free(&r->base);
  }
  CHECK_EQ_INT(answered, 2 * EACH - HELD);
  wc_close(&a);
  wc_close(&b);
  wc_close(&c);
  fx_stop(&f);
}

/* ---- churn ---- */

enum churn_state { CH_OPENING, CH_STEPPING, CH_CLOSING, CH_DONE };

struct churn {
  struct wclient c;
  enum churn_state state;
  uint64_t rid, sid;
  uint32_t max, len, cycles_left;
  int step_errors, open_errors;
};

static void churn_open(struct churn *k, uint32_t cycle) {
  static const uint32_t sizes[] = {3 * PAGE, PAGE, 2 * PAGE, 3 * PAGE};
  k->max = sizes[cycle % 4];
  k->len = 0;
  k->rid = wc_send_session_open(&k->c, k->max);
  k->state = CH_OPENING;
}

static void churn_step(struct churn *k) {
  uint32_t n = k->len == 0 ? 8 : 4; /* a prefill chunk, then 4-token steps */
  if (n > k->max - k->len) n = k->max - k->len;
  int32_t toks[8];
  for (uint32_t i = 0; i < n; i++) toks[i] = 1 + (int32_t)((k->len + i) * 7 % 400);
  int id = wc_send_step1(&k->c, k->sid, toks, n, 1, 0, 0);
  k->rid = id < 0 ? 0 : (uint64_t)id;
  k->state = CH_STEPPING;
}

/* Handles one reply of k; returns 0 or -1 for a reply that makes no sense. */
static int churn_reply(struct churn *k, Realm__V1__WorkerReply *r) {
  if (r->request_id != k->rid) return -1;
  switch (k->state) {
  case CH_OPENING:
    if (r->body_case != REALM__V1__WORKER_REPLY__BODY_SESSION_OPENED) {
      k->open_errors++;
      printf("# open refused: %s\n", r->error && r->error->message ? r->error->message : "?");
      k->state = CH_DONE;
      return 0;
    }
    k->sid = r->session_opened->session_id;
    churn_step(k);
    return 0;
  case CH_STEPPING:
    if (r->body_case != REALM__V1__WORKER_REPLY__BODY_STEP || r->step->n_results != 1 ||
        r->step->results[0]->error) {
      k->step_errors++;
      printf("# step failed: %s\n", r->body_case == REALM__V1__WORKER_REPLY__BODY_STEP &&
                                            r->step->n_results == 1 && r->step->results[0]->error
                                        ? r->step->results[0]->error->message
                                        : "whole-request error");
      k->state = CH_DONE;
      return 0;
    }
    k->len = r->step->results[0]->n_past;
    if (k->len < k->max) churn_step(k);
    else {
      k->rid = wc_send_session_close(&k->c, k->sid);
      k->state = CH_CLOSING;
    }
    return 0;
  case CH_CLOSING:
    if (--k->cycles_left == 0) k->state = CH_DONE;
    else churn_open(k, k->cycles_left);
    return 0;
  default:
    return -1;
  }
}

/* Three tenants, each opening sessions of 1-3 pages, filling them with Steps, closing and
 * opening again, over a pool of 5 pages that two or three of them fill: opens wait, and no
 * Step ever fails. */
TEST(three_tenants_churn_a_small_pool_without_a_failed_step) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  cfg.kv_blocks = 5;
  cfg.batch_window_us = 0;
  CHECK_EQ_INT(fx_start(&f, &cfg), 0);
  enum { N = 3, CYCLES = 6 };
  static const char *names[N] = {"churn-a", "churn-b", "churn-c"};
  struct churn k[N];
  memset(k, 0, sizeof k);
  for (int i = 0; i < N; i++) {
    CHECK_EQ_INT(wc_open(&k[i].c, f.zctx, f.endpoint, names[i], "r0", (uint32_t)(1 + i), 0, 0),
                 0);
    k[i].cycles_left = CYCLES;
  }
  for (int i = 0; i < N; i++) churn_open(&k[i], (uint32_t)i);
  int bad = 0;
  /* Bounded: every round handles at least one reply; the work is about 30 Steps per cycle. */
  for (int round = 0; round < 20000; round++) {
    bool all_done = true;
    for (int i = 0; i < N; i++) all_done &= k[i].state == CH_DONE;
    if (all_done) break;
    zmq_pollitem_t it[N];
    for (int i = 0; i < N; i++) it[i] = (zmq_pollitem_t){.socket = k[i].c.sock, .events = ZMQ_POLLIN};
    if (zmq_poll(it, N, 10000) <= 0) {
      printf("# no reply within 10 s\n");
      bad++;
      break;
    }
    for (int i = 0; i < N; i++) {
      if (!(it[i].revents & ZMQ_POLLIN)) continue;
      Realm__V1__WorkerReply *r = wc_recv(&k[i].c, 1000);
      if (!r || churn_reply(&k[i], r) < 0) bad++;
      realm_frame_msg_free(r ? &r->base : NULL);
    }
  }
  CHECK_EQ_INT(bad, 0);
  for (int i = 0; i < N; i++) {
    CHECK_EQ_INT(k[i].state, CH_DONE);
    CHECK_EQ_INT(k[i].cycles_left, 0);
    CHECK_EQ_INT(k[i].step_errors, 0);
    CHECK_EQ_INT(k[i].open_errors, 0);
  }
  struct astats st;
  CHECK_EQ_INT(get_stats(&k[0].c, &st), 0);
  printf("# opens that had to wait: %llu\n", (unsigned long long)st.queued_total);
  CHECK(st.queued_total > 0); /* the pool really was contended */
  CHECK_EQ_INT(st.pages_reserved, 0);
  CHECK_EQ_INT(st.pages_used, 0);
  CHECK_EQ_INT(st.waiting, 0);
  for (int i = 0; i < N; i++) wc_close(&k[i].c);
  fx_stop(&f);
}

/* ---- options ---- */

/* --open-queue-timeout and --max-open-queue reach worker_config (durations with units, 0 is
 * allowed: never wait); out-of-range values are refused naming the option. */
TEST(admission_options_parse) {
  struct worker_config cfg;
  char err[256] = "";
  char *def[] = {"realm-worker", "--model", "m.gguf"};
  CHECK_EQ_INT(worker_options_parse(3, def, &cfg, err, sizeof err), 0);
  CHECK_EQ_INT(cfg.open_queue_timeout_ms, 30000);
  CHECK_EQ_INT(cfg.max_open_queue, 1024);
  char *set[] = {"realm-worker", "--model", "m.gguf", "--open-queue-timeout", "2500ms",
                 "--max-open-queue", "0"};
  CHECK_EQ_INT(worker_options_parse(7, set, &cfg, err, sizeof err), 0);
  CHECK_EQ_INT(cfg.open_queue_timeout_ms, 2500);
  CHECK_EQ_INT(cfg.max_open_queue, 0);
  char *bad[] = {"realm-worker", "--model", "m.gguf", "--max-open-queue", "-1"};
  CHECK_EQ_INT(worker_options_parse(5, bad, &cfg, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  printf("# %s\n", err);
  CHECK(strstr(err, "max-open-queue") != NULL);
}

/* --max-open-queue 0: an open the pool cannot cover is refused at once, never queued. */
TEST(max_open_queue_zero_never_waits) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  cfg.kv_blocks = 2;
  cfg.max_open_queue = 0;
  struct wclient a, b;
  CHECK_HELPER(start_ab(&f, &cfg, &a, &b));
  int code;
  char param[32];
  uint64_t s1 = open_result(&a, wc_send_session_open(&a, PAGE), &code, NULL, 0, NULL, 0);
  CHECK(s1 != 0);
  /* Within B's quota (the whole pool), but one page is A's. */
  CHECK_EQ_INT(open_result(&b, wc_send_session_open(&b, 2 * PAGE), &code, NULL, 0, param, sizeof param), 0);
  CHECK_EQ_INT(code, REALM_E_UNAVAILABLE);
  CHECK_STR_EQ(param, "kv_cache");
  /* What still fits is admitted. */
  CHECK(open_result(&b, wc_send_session_open(&b, PAGE), &code, NULL, 0, NULL, 0) != 0);
  wc_close(&a);
  wc_close(&b);
  fx_stop(&f);
}
