/* clock.c — the real clocks behind clock.h. */
#include "clock.h"

#include <time.h>

uint64_t gw_clock_monotonic_ns(void *ctx) {
  (void)ctx;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int64_t gw_clock_wall_s(void *ctx) {
  (void)ctx;
  return (int64_t)time(NULL);
}
