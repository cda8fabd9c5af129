/*
 * test_ratelimit.c — the per-tenant limiter driven by a fake clock: bucket refill, the
 * Retry-After value, token reservation and settlement, concurrency release, reload.
 */
#include "ratelimit.h"
#include "realm_test.h"

#define SEC 1000000000ull

TEST(requests_bucket_refuses_then_refills) {
  struct gw_limits l = {.requests_per_minute = 60};
  struct gw_ratelimiter *rl = NULL;
  CHECK_EQ_INT(gw_rl_create(&l, 0, &rl), 0);
  struct gw_rl_decision d;
  for (int i = 0; i < 60; i++) {
    CHECK(gw_rl_admit(rl, 0, 0, &d));
    gw_rl_finish(rl, 0, 0, 0);
  }
  CHECK(!gw_rl_admit(rl, 0, 0, &d));
  CHECK_EQ_INT(d.reason, GW_RL_REQUESTS);
  CHECK_EQ_INT(d.retry_after_s, 1); /* 60/min = one per second */
  CHECK(!gw_rl_admit(rl, SEC / 2, 0, &d));
  CHECK_EQ_INT(d.retry_after_s, 1);
  CHECK(gw_rl_admit(rl, SEC, 0, &d)); /* one request refilled after a second */
  CHECK(!gw_rl_admit(rl, SEC, 0, &d));
  gw_rl_unref(rl);
}

TEST(retry_after_is_ceiling_of_wait) {
  struct gw_limits l = {.requests_per_minute = 2}; /* one per 30 s */
  struct gw_ratelimiter *rl = NULL;
  CHECK_EQ_INT(gw_rl_create(&l, 0, &rl), 0);
  struct gw_rl_decision d;
  CHECK(gw_rl_admit(rl, 0, 0, &d));
  CHECK(gw_rl_admit(rl, 0, 0, &d));
  CHECK(!gw_rl_admit(rl, 0, 0, &d));
  CHECK_EQ_INT(d.retry_after_s, 30);
  CHECK(!gw_rl_admit(rl, 10 * SEC + 1, 0, &d));
  CHECK_EQ_INT(d.retry_after_s, 20);
  struct gw_rl_view v;
  gw_rl_view(rl, 10 * SEC, &v);
  CHECK_EQ_INT(v.remaining_requests, 0);
  CHECK_EQ_INT(v.limits.requests_per_minute, 2);
  CHECK_NEAR(v.reset_requests_ms, 50000, 1); /* 1/3 of a request refilled; 5/3 missing */
  gw_rl_unref(rl);
}

TEST(tokens_reserved_then_settled_to_actual) {
  struct gw_limits l = {.tokens_per_minute = 1000};
  struct gw_ratelimiter *rl = NULL;
  CHECK_EQ_INT(gw_rl_create(&l, 0, &rl), 0);
  struct gw_rl_decision d;
  CHECK(gw_rl_admit(rl, 0, 800, &d));
  CHECK(!gw_rl_admit(rl, 0, 300, &d)); /* 200 left */
  CHECK_EQ_INT(d.reason, GW_RL_TOKENS);
  CHECK_EQ_INT(d.retry_after_s, 6); /* 100 missing at 1000/min = 6 s */
  gw_rl_finish(rl, 0, 800, 100);    /* used only 100: 700 refunded */
  struct gw_rl_view v;
  gw_rl_view(rl, 0, &v);
  CHECK_EQ_INT(v.remaining_tokens, 900);
  CHECK(gw_rl_admit(rl, 0, 300, &d));
  gw_rl_finish(rl, 0, 300, 900); /* used more than reserved: charged, bucket goes negative */
  gw_rl_view(rl, 0, &v);
  CHECK_EQ_INT(v.remaining_tokens, 0);
  CHECK(!gw_rl_admit(rl, 0, 1, &d));
  CHECK_EQ_INT(d.retry_after_s, 1); /* one token at 1000/min: 60 ms, rounded up */
  gw_rl_unref(rl);
}

TEST(request_larger_than_minute_allowance_is_too_large) {
  struct gw_limits l = {.tokens_per_minute = 100};
  struct gw_ratelimiter *rl = NULL;
  CHECK_EQ_INT(gw_rl_create(&l, 0, &rl), 0);
  struct gw_rl_decision d;
  CHECK(!gw_rl_admit(rl, 0, 101, &d));
  CHECK_EQ_INT(d.reason, GW_RL_TOKENS_TOO_LARGE);
  gw_rl_unref(rl);
}

TEST(concurrency_slot_released_on_finish) {
  struct gw_limits l = {.max_concurrent = 2};
  struct gw_ratelimiter *rl = NULL;
  CHECK_EQ_INT(gw_rl_create(&l, 0, &rl), 0);
  struct gw_rl_decision d;
  CHECK(gw_rl_admit(rl, 0, 5, &d));
  CHECK(gw_rl_admit(rl, 0, 5, &d));
  CHECK(!gw_rl_admit(rl, 0, 5, &d));
  CHECK_EQ_INT(d.reason, GW_RL_CONCURRENCY);
  CHECK_EQ_INT(d.retry_after_s, 1);
  gw_rl_finish(rl, 0, 5, 5);
  CHECK(gw_rl_admit(rl, 0, 5, &d));
  gw_rl_unref(rl);
}

TEST(refused_admission_takes_nothing) {
  struct gw_limits l = {.requests_per_minute = 10, .tokens_per_minute = 100};
  struct gw_ratelimiter *rl = NULL;
  CHECK_EQ_INT(gw_rl_create(&l, 0, &rl), 0);
  struct gw_rl_decision d;
  CHECK(gw_rl_admit(rl, 0, 90, &d));
  CHECK(!gw_rl_admit(rl, 0, 50, &d)); /* tokens refuse: the request must not be charged */
  struct gw_rl_view v;
  gw_rl_view(rl, 0, &v);
  CHECK_EQ_INT(v.remaining_requests, 9);
  CHECK_EQ_INT(v.remaining_tokens, 10);
  gw_rl_unref(rl);
}

TEST(unlimited_when_zero_and_reload_clips) {
  struct gw_limits l = {0};
  struct gw_ratelimiter *rl = NULL;
  CHECK_EQ_INT(gw_rl_create(&l, 0, &rl), 0);
  struct gw_rl_decision d;
  for (int i = 0; i < 1000; i++) CHECK(gw_rl_admit(rl, 0, 1000000, &d));
  struct gw_limits l2 = {.requests_per_minute = 5};
  gw_rl_set_limits(rl, &l2, 0);
  struct gw_rl_view v;
  gw_rl_view(rl, 0, &v);
  CHECK_EQ_INT(v.remaining_requests, 5);
  struct gw_limits l3 = {.requests_per_minute = 3};
  gw_rl_set_limits(rl, &l3, 0);
  gw_rl_view(rl, 0, &v);
  CHECK_EQ_INT(v.remaining_requests, 3);
  gw_rl_unref(rl);
}
