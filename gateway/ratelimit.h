/*
 * ratelimit.h — per-tenant admission control: requests per minute, tokens per minute and
 * concurrent requests.
 *
 * Requests and tokens are token buckets whose capacity is the per-minute limit and which
 * refill continuously at limit/60 per second (so a burst of a full minute's allowance is
 * allowed, then the steady rate). Tokens are reserved at admission (prompt estimate +
 * max_tokens) and settled to the real usage when the request ends, so a tenant is charged
 * what it used, yet cannot start more work than its allowance covers.
 *
 * Time is injected as nanoseconds of a monotonic clock on every call so tests drive the
 * limiter with a fake clock and never sleep. A limit of 0 means unlimited.
 * Thread-safe: one mutex per limiter.
 */
#ifndef GW_RATELIMIT_H
#define GW_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct gw_limits {
  uint64_t requests_per_minute; /* 0 = unlimited */
  uint64_t tokens_per_minute;   /* 0 = unlimited */
  uint32_t max_concurrent;      /* 0 = unlimited */
};

enum gw_rl_reason {
  GW_RL_OK = 0,
  GW_RL_CONCURRENCY,
  GW_RL_REQUESTS,
  GW_RL_TOKENS,
  GW_RL_TOKENS_TOO_LARGE, /* one request needs more than a whole minute's token allowance */
};

struct gw_rl_decision {
  enum gw_rl_reason reason;
  uint32_t retry_after_s; /* whole seconds until the refused resource suffices (>= 1) */
  uint64_t tokens;        /* tokens actually reserved (may be clamped, see gw_rl_admit) */
};

/* What the x-ratelimit-* headers report. reset_*_ms: time until the bucket is full again. */
struct gw_rl_view {
  struct gw_limits limits;
  uint64_t remaining_requests;
  uint64_t remaining_tokens;
  uint64_t reset_requests_ms;
  uint64_t reset_tokens_ms;
};

struct gw_ratelimiter;

/* Creates a limiter whose buckets start full at now_ns; refcount 1. */
int gw_rl_create(const struct gw_limits *limits, uint64_t now_ns, struct gw_ratelimiter **ret_rl);
struct gw_ratelimiter *gw_rl_ref(struct gw_ratelimiter *rl);
void gw_rl_unref(struct gw_ratelimiter *rl);

/* Changes the limits (config reload); current levels are kept, clipped to the new capacity. */
void gw_rl_set_limits(struct gw_ratelimiter *rl, const struct gw_limits *limits, uint64_t now_ns);

/* Admits one request reserving `tokens` tokens, or refuses it taking nothing. All three limits
 * are checked before anything is taken. Returns true when admitted; *ret fills either way. */
bool gw_rl_admit(struct gw_ratelimiter *rl, uint64_t now_ns, uint64_t tokens,
                 struct gw_rl_decision *ret);

/* Ends an admitted request: frees its concurrency slot and settles the token reservation to the
 * actual usage (refunding the difference, or charging extra, which may take the bucket below
 * zero so the overshoot is paid back before the next admission). */
void gw_rl_finish(struct gw_ratelimiter *rl, uint64_t now_ns, uint64_t reserved, uint64_t actual);

void gw_rl_view(struct gw_ratelimiter *rl, uint64_t now_ns, struct gw_rl_view *ret_view);

const char *gw_rl_reason_name(enum gw_rl_reason r); /* "requests", "tokens", "concurrency" */

#endif
