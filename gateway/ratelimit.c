/*
 * ratelimit.c — token buckets and concurrency counting per tenant (see ratelimit.h).
 *
 * Levels are doubles in "units" (requests or tokens): exact enough for per-minute limits up to
 * 2^52 and free of rounding drift from integer refill steps. Refill happens lazily whenever a
 * bucket is looked at, from the injected monotonic time.
 */
#include "ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "realm/error.h"

#define NS_PER_MIN 60000000000.0

struct bucket {
  double capacity; /* = the per-minute limit; 0 = unlimited */
  double level;    /* may go negative after a settlement charges more than was reserved */
  uint64_t last_ns;
};

struct gw_ratelimiter {
  pthread_mutex_t mu;
  int refs; /* under mu */
  struct gw_limits limits;
  struct bucket requests;
  struct bucket tokens;
  uint32_t in_flight;
};

static void bucket_refill(struct bucket *b, uint64_t now_ns) {
  if (now_ns > b->last_ns && b->capacity > 0) {
    double add = (double)(now_ns - b->last_ns) * b->capacity / NS_PER_MIN;
    b->level = fmin(b->capacity, b->level + add);
  }
  if (now_ns > b->last_ns) b->last_ns = now_ns;
}

/* Nanoseconds until the bucket holds `need` units (0 if it already does). */
static double bucket_wait_ns(const struct bucket *b, double need) {
  if (b->level >= need) return 0;
  return (need - b->level) * NS_PER_MIN / b->capacity;
}

static uint32_t ns_to_retry_s(double ns) {
  double s = ceil(ns / 1e9);
  if (s < 1) s = 1;
  if (s > 86400) s = 86400;
  return (uint32_t)s;
}

int gw_rl_create(const struct gw_limits *limits, uint64_t now_ns, struct gw_ratelimiter **ret_rl) {
  struct gw_ratelimiter *rl = calloc(1, sizeof *rl);
  if (!rl) return REALM_E_NOMEM;
  pthread_mutex_init(&rl->mu, NULL);
  rl->refs = 1;
  rl->limits = *limits;
  rl->requests = (struct bucket){(double)limits->requests_per_minute,
                                 (double)limits->requests_per_minute, now_ns};
  rl->tokens = (struct bucket){(double)limits->tokens_per_minute,
                               (double)limits->tokens_per_minute, now_ns};
  *ret_rl = rl;
  return 0;
}

struct gw_ratelimiter *gw_rl_ref(struct gw_ratelimiter *rl) {
  pthread_mutex_lock(&rl->mu);
  rl->refs++;
  pthread_mutex_unlock(&rl->mu);
  return rl;
}

void gw_rl_unref(struct gw_ratelimiter *rl) {
  if (!rl) return;
  pthread_mutex_lock(&rl->mu);
  int left = --rl->refs;
  pthread_mutex_unlock(&rl->mu);
  if (left == 0) {
    pthread_mutex_destroy(&rl->mu);
    free(rl);
  }
}

static void bucket_set_capacity(struct bucket *b, uint64_t cap, uint64_t now_ns) {
  bucket_refill(b, now_ns);
  if (b->capacity == 0) b->level = (double)cap; /* was unlimited: start full */
  b->capacity = (double)cap;
  if (b->level > b->capacity) b->level = b->capacity;
}

void gw_rl_set_limits(struct gw_ratelimiter *rl, const struct gw_limits *limits, uint64_t now_ns) {
  pthread_mutex_lock(&rl->mu);
  rl->limits = *limits;
  bucket_set_capacity(&rl->requests, limits->requests_per_minute, now_ns);
  bucket_set_capacity(&rl->tokens, limits->tokens_per_minute, now_ns);
  pthread_mutex_unlock(&rl->mu);
}

bool gw_rl_admit(struct gw_ratelimiter *rl, uint64_t now_ns, uint64_t tokens,
                 struct gw_rl_decision *ret) {
  struct gw_rl_decision d = {.reason = GW_RL_OK, .retry_after_s = 0, .tokens = tokens};
  pthread_mutex_lock(&rl->mu);
  bucket_refill(&rl->requests, now_ns);
  bucket_refill(&rl->tokens, now_ns);
  if (rl->limits.max_concurrent && rl->in_flight >= rl->limits.max_concurrent) {
    /* No clock tells when a slot frees; one second is the honest "try again soon". */
    d.reason = GW_RL_CONCURRENCY;
    d.retry_after_s = 1;
  } else if (rl->requests.capacity > 0 && rl->requests.level < 1.0) {
    d.reason = GW_RL_REQUESTS;
    d.retry_after_s = ns_to_retry_s(bucket_wait_ns(&rl->requests, 1.0));
  } else if (rl->tokens.capacity > 0 && (double)tokens > rl->tokens.capacity) {
    d.reason = GW_RL_TOKENS_TOO_LARGE;
    d.retry_after_s = 60;
  } else if (rl->tokens.capacity > 0 && rl->tokens.level < (double)tokens) {
    d.reason = GW_RL_TOKENS;
    d.retry_after_s = ns_to_retry_s(bucket_wait_ns(&rl->tokens, (double)tokens));
  } else {
    if (rl->requests.capacity > 0) rl->requests.level -= 1.0;
    if (rl->tokens.capacity > 0) rl->tokens.level -= (double)tokens;
    rl->in_flight++;
  }
  pthread_mutex_unlock(&rl->mu);
  *ret = d;
  return d.reason == GW_RL_OK;
}

void gw_rl_finish(struct gw_ratelimiter *rl, uint64_t now_ns, uint64_t reserved, uint64_t actual) {
  pthread_mutex_lock(&rl->mu);
  bucket_refill(&rl->tokens, now_ns);
  if (rl->tokens.capacity > 0) {
    rl->tokens.level += (double)reserved - (double)actual;
    if (rl->tokens.level > rl->tokens.capacity) rl->tokens.level = rl->tokens.capacity;
  }
  if (rl->in_flight > 0) rl->in_flight--;
  pthread_mutex_unlock(&rl->mu);
}

static uint64_t bucket_remaining(const struct bucket *b) {
  return b->level > 0 ? (uint64_t)floor(b->level) : 0;
}

void gw_rl_view(struct gw_ratelimiter *rl, uint64_t now_ns, struct gw_rl_view *ret_view) {
  struct gw_rl_view v;
  pthread_mutex_lock(&rl->mu);
  bucket_refill(&rl->requests, now_ns);
  bucket_refill(&rl->tokens, now_ns);
  v.limits = rl->limits;
  v.remaining_requests = bucket_remaining(&rl->requests);
  v.remaining_tokens = bucket_remaining(&rl->tokens);
  v.reset_requests_ms = rl->requests.capacity > 0
                            ? (uint64_t)ceil(bucket_wait_ns(&rl->requests, rl->requests.capacity) / 1e6)
                            : 0;
  v.reset_tokens_ms = rl->tokens.capacity > 0
                          ? (uint64_t)ceil(bucket_wait_ns(&rl->tokens, rl->tokens.capacity) / 1e6)
                          : 0;
  pthread_mutex_unlock(&rl->mu);
  *ret_view = v;
}

const char *gw_rl_reason_name(enum gw_rl_reason r) {
  switch (r) {
  case GW_RL_CONCURRENCY: return "concurrency";
  case GW_RL_REQUESTS: return "requests";
  case GW_RL_TOKENS:
  case GW_RL_TOKENS_TOO_LARGE: return "tokens";
  default: return "none";
  }
}
