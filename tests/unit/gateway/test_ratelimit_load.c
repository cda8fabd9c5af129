/*
 * test_ratelimit_load.c — the rate limiter under load, end to end, on the real clock: the
 * gateway core in-process on 127.0.0.1 with the REAL monotonic clock (gw_config.monotonic_ns
 * left NULL), a backend that answers inside submit() (so the gateway, not the backend, is
 * what is measured), and plain HTTP/1.1 clients over loopback sending at twice the configured
 * rate on a fixed schedule for a bounded window. The acceptance: the admitted count
 * equals what the limit allows within 5%, and every other response is a well-formed 429
 * (OpenAI error object of type rate_limit_error, Retry-After, x-ratelimit-* headers).
 *
 * The model the counts are checked against (ratelimit.h): a bucket of capacity C (the
 * per-minute limit) that starts full and refills at r = C/60 per second; an admission takes 1
 * request (or R tokens). Over any interval, by conservation,
 *     admitted = level_at_start + r × elapsed − level_at_end,
 * and while clients offer more than r the level at the end is below one request's cost
 * (plus at most half a cost accrued between two sends at 2r). So:
 *   - whole run:   admitted ≈ C + r × (t_last − t_created)       (the burst, then the rate)
 *   - paced window after draining the burst: admitted ≈ L0 + r × (t_last − t_drained), with L0
 *     read from the x-ratelimit-remaining-* header of the response that ended the drain.
 * Both are asserted within 5%. The requests bucket (requests_per_minute 1200 → r = 20/s, burst
 * 1200) is drained by sending as fast as the client can until the first 429; the tokens bucket
 * (tokens_per_minute 30000 → 500/s) by a few requests whose max_tokens take nearly all that
 * is left (the backend reports usage = the reservation, so each admitted request costs exactly
 * what it reserved). The two tenants run in parallel threads to keep the test near 4 s.
 *
 * Pacing uses clock_nanosleep(TIMER_ABSTIME) to hit a send schedule: it decides when to send,
 * never waits for an event; a client that falls behind sends at once (the schedule is bounded
 * by request count and by a deadline).
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "gateway.h"
#include "http_client.h"
#include "realm/error.h"
#include "realm_test.h"

#define KEY_RPM "sk-test-load-rpm"
#define KEY_TPM "sk-test-load-tpm"
#define RPM_LIMIT 1200u   /* 20 requests/s, burst 1200 */
#define TPM_LIMIT 30000u  /* 500 tokens/s, burst 30000 */
#define WINDOW_NS 3000000000ull
#define MAX_DRAIN_REQUESTS 2000 /* the requests burst is 1200 (+ refill while draining) */
#define MAX_PACED_REQUESTS 400  /* 2 × ~23/s × 3 s is ~140 */
#define TPM_MAX_TOKENS 20       /* per paced request of the tokens tenant */
#define TOLERANCE 0.05

/* ---- a backend that answers inside submit() ---- */

/* One token, then finish with usage = (prompt estimate, max_tokens): the settlement in
 * gw_rl_finish then charges exactly the reservation, which keeps the token model exact. */
static _Atomic uint32_t last_estimate;
static _Atomic int submits;

static int fast_submit(void *self, const struct gw_gen_request *req, struct gw_sink *sink,
                       char *err, size_t errlen, struct gw_error_info *info) {
  (void)self, (void)err, (void)errlen, (void)info;
  atomic_store(&last_estimate, req->prompt_tokens_estimate);
  atomic_fetch_add(&submits, 1);
  gw_sink_token(sink, "ok", 2, NULL);
  struct gw_usage u = {req->prompt_tokens_estimate, req->max_tokens};
  gw_sink_finish(sink, "stop", &u);
  return 0;
}
/* Every request has finished before submit returns: a cancel is always a no-op (rule 3). */
static void fast_cancel(void *self, struct gw_sink *sink) { (void)self, (void)sink; }
static bool fast_ready(void *self, char *why, size_t whylen) {
  (void)self, (void)why, (void)whylen;
  return true;
}
static const struct gw_backend_ops fast_ops = {
    .submit = fast_submit, .cancel = fast_cancel, .ready = fast_ready};
static const struct gw_backend fast_backend = {.ops = &fast_ops, .self = NULL};

/* ---- clock and HTTP helpers ---- */

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until_ns(uint64_t t) {
  struct timespec ts = {(time_t)(t / 1000000000ull), (long)(t % 1000000000ull)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

static uint16_t port;

static int chat(const char *key, uint32_t max_tokens, struct http_resp *r) {
  char body[256];
  snprintf(body, sizeof body,
           "{\"model\":\"m1\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],"
           "\"max_tokens\":%u}",
           max_tokens);
  return http_call(port, "POST", "/v1/chat/completions", key, NULL, body, r);
}

static bool header_u64(const struct http_resp *r, const char *name, uint64_t *ret) {
  char v[64], *end;
  if (!http_header(r, name, v, sizeof v) || !v[0]) return false;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || *end) return false;
  *ret = x;
  return true;
}

/* ---- what a refusal must look like ---- */

enum bucket_kind { BK_REQUESTS, BK_TOKENS };

/* Returns NULL when r is a well-formed rate-limit refusal for that bucket, else what is wrong.
 * Well-formed: 429; JSON body {"error":{"message":string,"type":"rate_limit_error",
 * "param":null|string,"code":"rate_limited"}} and nothing else at the top; Retry-After an
 * integer >= 1; x-request-id; the limited bucket's x-ratelimit-{limit,remaining,reset}-* with
 * the configured limit and remaining at most one request's cost; no headers for a limit the
 * tenant does not have. */
static const char *check_refusal(const struct http_resp *r, enum bucket_kind kind,
                                 uint64_t cost) {
  if (r->status != 429) return "status is not 429";
  json_error_t je;
  json_t *root = json_loads(r->body, 0, &je);
  const char *bad = NULL;
  json_t *e = root ? json_object_get(root, "error") : NULL;
  json_t *param = e ? json_object_get(e, "param") : NULL;
  if (!root || !json_is_object(root) || json_object_size(root) != 1) bad = "body is not {\"error\":{...}}";
  else if (!json_is_object(e) || json_object_size(e) != 4) bad = "error object has not 4 fields";
  else if (!json_is_string(json_object_get(e, "message")) ||
           !json_string_length(json_object_get(e, "message")))
    bad = "error.message is not a non-empty string";
  else if (!json_is_string(json_object_get(e, "type")) ||
           strcmp(json_string_value(json_object_get(e, "type")), "rate_limit_error"))
    bad = "error.type is not rate_limit_error";
  else if (!param || !(json_is_null(param) || json_is_string(param)))
    bad = "error.param is not null or a string";
  else if (!json_is_string(json_object_get(e, "code")) ||
           strcmp(json_string_value(json_object_get(e, "code")), "rate_limited"))
    bad = "error.code is not rate_limited";
  json_decref(root);
  if (bad) return bad;
  char v[160];
  uint64_t x;
  if (!http_header(r, "Content-Type", v, sizeof v) || strcmp(v, "application/json"))
    return "Content-Type is not application/json";
  if (!http_header(r, "x-request-id", v, sizeof v)) return "no x-request-id";
  if (!header_u64(r, "Retry-After", &x) || x < 1) return "Retry-After is not an integer >= 1";
  const char *limit = kind == BK_REQUESTS ? "x-ratelimit-limit-requests" : "x-ratelimit-limit-tokens";
  const char *remaining =
      kind == BK_REQUESTS ? "x-ratelimit-remaining-requests" : "x-ratelimit-remaining-tokens";
  const char *reset = kind == BK_REQUESTS ? "x-ratelimit-reset-requests" : "x-ratelimit-reset-tokens";
  const char *absent = kind == BK_REQUESTS ? "x-ratelimit-limit-tokens" : "x-ratelimit-limit-requests";
  if (!header_u64(r, limit, &x) || x != (kind == BK_REQUESTS ? RPM_LIMIT : TPM_LIMIT))
    return "x-ratelimit-limit-* missing or not the configured limit";
  /* The header is computed a few microseconds after the refusal, so the bucket may just have
   * refilled to the cost: "at most the cost", not "below". */
  if (!header_u64(r, remaining, &x) || x > cost)
    return "x-ratelimit-remaining-* missing or above one request's cost";
  if (!http_header(r, reset, v, sizeof v) || !v[0] || !strchr("0123456789", v[0]))
    return "x-ratelimit-reset-* missing or not a duration";
  if (http_header(r, absent, v, sizeof v)) return "headers for a limit the tenant does not have";
  return NULL;
}

/* ---- one tenant's run ---- */

struct load_run {
  enum bucket_kind kind;
  const char *key;
  double rate;     /* bucket units per second: C / 60 */
  double capacity; /* C */
  /* results */
  const char *failure; /* set when something other than counts went wrong */
  int drain_sent, drain_admitted;
  uint64_t drain_units; /* tokens tenant: what its admitted drain requests were charged */
  uint64_t cost;             /* units one paced request takes (1, or estimate + max_tokens) */
  uint64_t level_after_drain; /* x-ratelimit-remaining-* of the response that ended the drain */
  double t_drained_ns;        /* midpoint of that response's send and receive */
  int paced_sent, paced_admitted, paced_refused, paced_other;
  double t_last_ns; /* midpoint of the last paced request */
  const char *refusal_problem; /* the first malformed 429, if any */
  int first_other_status;
};

static uint64_t t_created_lo, t_created_hi; /* around gw_server_start (buckets start full) */

/* Requests bucket: send back to back until the first 429. */
static void drain_requests(struct load_run *lr) {
  for (int i = 0; i < MAX_DRAIN_REQUESTS; i++) {
    struct http_resp r;
    uint64_t t0 = mono_ns();
    int rc = chat(lr->key, 1, &r);
    uint64_t t1 = mono_ns();
    lr->drain_sent++;
    if (rc < 0) {
      lr->failure = "HTTP exchange failed while draining";
      http_resp_free(&r);
      return;
    }
    if (r.status == 200) {
      lr->drain_admitted++;
    } else {
      const char *bad = check_refusal(&r, lr->kind, 1);
      if (bad && !lr->refusal_problem) lr->refusal_problem = bad;
      if (r.status != 429 && !lr->first_other_status) lr->first_other_status = r.status;
      header_u64(&r, "x-ratelimit-remaining-requests", &lr->level_after_drain);
      lr->t_drained_ns = (double)t0 / 2 + (double)t1 / 2;
      http_resp_free(&r);
      return;
    }
    http_resp_free(&r);
  }
  lr->failure = "the requests bucket never refused while draining";
}

/* Tokens bucket: each request reserves (and is charged) estimate + max_tokens; take what the
 * last response says remains, leaving less than one paced request's cost. */
static void drain_tokens(struct load_run *lr) {
  uint32_t max_tokens = 20000; /* the first: est + 20000 < 30000 */
  for (int i = 0; i < 8; i++) {
    struct http_resp r;
    uint64_t t0 = mono_ns();
    int rc = chat(lr->key, max_tokens, &r);
    uint64_t t1 = mono_ns();
    lr->drain_sent++;
    uint64_t left = 0;
    if (rc < 0 || r.status != 200 || !header_u64(&r, "x-ratelimit-remaining-tokens", &left)) {
      lr->failure = "a draining request of the tokens tenant was not admitted with headers";
      http_resp_free(&r);
      return;
    }
    http_resp_free(&r);
    lr->drain_admitted++;
    uint64_t est = atomic_load(&last_estimate);
    lr->drain_units += est + max_tokens;
    lr->cost = est + TPM_MAX_TOKENS;
    if (left < lr->cost) {
      lr->level_after_drain = left;
      lr->t_drained_ns = (double)t0 / 2 + (double)t1 / 2;
      return;
    }
    /* Reserve all but half of one cost (the bucket refills while we talk). */
    int64_t take = (int64_t)left - (int64_t)est - (int64_t)(lr->cost / 2);
    max_tokens = take > 32768 ? 32768 : take < 1 ? 1 : (uint32_t)take;
  }
  lr->failure = "the tokens bucket could not be drained in 8 requests";
}

/* Sends at twice the rate (in paced requests per second) for WINDOW_NS. */
static void paced(struct load_run *lr) {
  double per_s = lr->rate / (double)lr->cost;
  uint64_t interval = (uint64_t)(1e9 / (2.0 * per_s));
  uint64_t start = mono_ns();
  for (int k = 0; k < MAX_PACED_REQUESTS; k++) {
    uint64_t due = start + (uint64_t)k * interval;
    if (due - start > WINDOW_NS) break;
    sleep_until_ns(due);
    struct http_resp r;
    uint64_t t0 = mono_ns();
    int rc = chat(lr->key, lr->kind == BK_TOKENS ? TPM_MAX_TOKENS : 1, &r);
    uint64_t t1 = mono_ns();
    lr->paced_sent++;
    lr->t_last_ns = (double)t0 / 2 + (double)t1 / 2;
    if (rc < 0) {
      lr->failure = "HTTP exchange failed while pacing";
    } else if (r.status == 200) {
      lr->paced_admitted++;
    } else if (r.status == 429) {
      lr->paced_refused++;
      const char *bad = check_refusal(&r, lr->kind, lr->cost);
      if (bad && !lr->refusal_problem) lr->refusal_problem = bad;
    } else {
      lr->paced_other++;
      if (!lr->first_other_status) lr->first_other_status = r.status;
    }
    http_resp_free(&r);
    if (mono_ns() - start > WINDOW_NS + 1500000000ull) break; /* hard stop on a stalled box */
  }
}

static void *run_main(void *arg) {
  struct load_run *lr = arg;
  lr->cost = 1;
  if (lr->kind == BK_REQUESTS) drain_requests(lr);
  else drain_tokens(lr);
  if (!lr->failure) paced(lr);
  return NULL;
}

/* ---- the test ---- */

static int write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fputs(text, f);
  return fclose(f);
}

static bool within(double got, double want, const char *what) {
  double dev = want > 0 ? (got - want) / want : 1;
  printf("# %s: admitted %.0f, expected %.2f (%+.2f%%)\n", what, got, want, 100 * dev);
  return dev <= TOLERANCE && dev >= -TOLERANCE;
}

TEST(admitted_at_twice_the_rate_matches_the_limit_and_the_rest_are_429) {
  char dir[256], tenants[300];
  const char *base = getenv("REALM_BUILD_ROOT");
  snprintf(dir, sizeof dir, "%s/gw-load-XXXXXX", base ? base : "/tmp");
  CHECK(mkdtemp(dir) != NULL);
  snprintf(tenants, sizeof tenants, "%s/tenants.json", dir);
  char hr[65], ht[65], json[1024];
  gw_key_hash_hex(KEY_RPM, hr);
  gw_key_hash_hex(KEY_TPM, ht);
  snprintf(json, sizeof json,
           "[{\"id\":\"rpm\",\"key_hashes\":[\"%s\"],\"models\":[\"m1\"],"
           "  \"limits\":{\"requests_per_minute\":%u}},"
           " {\"id\":\"tpm\",\"key_hashes\":[\"%s\"],\"models\":[\"m1\"],"
           "  \"limits\":{\"tokens_per_minute\":%u}}]",
           hr, RPM_LIMIT, ht, TPM_LIMIT);
  CHECK_EQ_INT(write_file(tenants, json), 0);

  struct gw_config cfg = {.listen_addr = "127.0.0.1", .tenants_path = tenants,
                          .backend = &fast_backend}; /* monotonic_ns NULL: the real clock */
  struct gw_server *srv = NULL;
  char err[256];
  t_created_lo = mono_ns();
  int rc = gw_server_start(&cfg, &srv, err, sizeof err);
  t_created_hi = mono_ns();
  if (rc < 0) printf("# gw_server_start: %s\n", err);
  CHECK_EQ_INT(rc, 0);
  port = gw_server_port(srv);

  struct load_run runs[2] = {
      {.kind = BK_REQUESTS, .key = KEY_RPM, .rate = RPM_LIMIT / 60.0, .capacity = RPM_LIMIT},
      {.kind = BK_TOKENS, .key = KEY_TPM, .rate = TPM_LIMIT / 60.0, .capacity = TPM_LIMIT},
  };
  pthread_t th[2];
  for (int i = 0; i < 2; i++) CHECK_EQ_INT(pthread_create(&th[i], NULL, run_main, &runs[i]), 0);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  gw_server_stop(srv);
  unlink(tenants);
  rmdir(dir);

  for (int i = 0; i < 2; i++) {
    struct load_run *lr = &runs[i];
    const char *name = lr->kind == BK_REQUESTS ? "requests/min" : "tokens/min";
    if (lr->failure) printf("# %s: %s\n", name, lr->failure);
    CHECK(lr->failure == NULL);
    if (lr->refusal_problem) printf("# %s: malformed refusal: %s\n", name, lr->refusal_problem);
    CHECK(lr->refusal_problem == NULL);
    if (lr->first_other_status) printf("# %s: unexpected status %d\n", name, lr->first_other_status);
    CHECK_EQ_INT(lr->paced_other, 0);
    CHECK_EQ_INT(lr->paced_admitted + lr->paced_refused, lr->paced_sent);
    double window_s = (lr->t_last_ns - lr->t_drained_ns) / 1e9;
    printf("# %s: drain %d sent / %d admitted; paced window %.3f s: %d sent, %d admitted, "
           "%d refused (429), cost %llu units/request, level after drain %llu\n",
           name, lr->drain_sent, lr->drain_admitted, window_s, lr->paced_sent,
           lr->paced_admitted, lr->paced_refused, (unsigned long long)lr->cost,
           (unsigned long long)lr->level_after_drain);
    /* The offered rate really was about twice the limit (a stalled client would not test). */
    double offered = lr->paced_sent / window_s, allowed = lr->rate / (double)lr->cost;
    printf("# %s: offered %.1f/s against %.1f/s allowed\n", name, offered, allowed);
    CHECK(offered > 1.6 * allowed);
    CHECK(lr->paced_refused > 0);

    /* Paced window, after the burst: L0 + r × elapsed. */
    double want_window = ((double)lr->level_after_drain + lr->rate * window_s) / (double)lr->cost;
    CHECK(within(lr->paced_admitted, want_window, "paced window"));

    /* Whole run: C + r × (t_last − t_created), every admitted request counted at its cost.
     * The tokens drain requests had different costs: count units, not requests. */
    double t_created = (double)t_created_lo / 2 + (double)t_created_hi / 2;
    double units_allowed = lr->capacity + lr->rate * (lr->t_last_ns - t_created) / 1e9;
    double units_taken = lr->kind == BK_REQUESTS
                             ? (double)(lr->drain_admitted + lr->paced_admitted)
                             : (double)(lr->drain_units + lr->paced_admitted * lr->cost);
    CHECK(within(units_taken / (double)lr->cost, units_allowed / (double)lr->cost,
                 "whole run (in paced-request units)"));
  }
}
