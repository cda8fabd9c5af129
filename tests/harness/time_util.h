/*
 * time_util.h — the clock readings and deadlines the test helpers kept re-deriving: monotonic
 * milliseconds/nanoseconds for bounded loops, and an absolute timespec deadline for
 * pthread_cond_timedwait (whose clock is the condition variable's: CLOCK_REALTIME unless the
 * condattr says otherwise).
 *
 * Header-only, static functions; usable from test libraries (fake runner, fake worker) as well
 * as from test programs, since it does not define main() as realm_test.h does.
 */
#ifndef REALM_TEST_TIME_UTIL_H
#define REALM_TEST_TIME_UTIL_H

#include <stdint.h>
#include <time.h>

static inline uint64_t test_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline int64_t test_mono_ms(void) { return (int64_t)(test_mono_ns() / 1000000u); }

/* The moment timeout_ms from now on clock clk, as the absolute time a timed wait takes. */
static inline struct timespec test_deadline(clockid_t clk, int timeout_ms) {
  struct timespec dl;
  clock_gettime(clk, &dl);
  dl.tv_sec += timeout_ms / 1000;
  dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  return dl;
}

#endif /* REALM_TEST_TIME_UTIL_H */
