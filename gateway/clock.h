/*
 * clock.h — injected time. The gateway never reads the clock directly: a monotonic
 * nanosecond clock drives rate limiting and latency metrics, and a wall clock gives the
 * `created` field; tests substitute both to be deterministic without sleeping.
 */
#ifndef GW_CLOCK_H
#define GW_CLOCK_H

#include <stdint.h>

typedef uint64_t (*gw_clock_fn)(void *ctx);   /* monotonic nanoseconds */
typedef int64_t (*gw_wall_clock_fn)(void *ctx); /* Unix seconds */

uint64_t gw_clock_monotonic_ns(void *ctx);
int64_t gw_clock_wall_s(void *ctx);

#endif
