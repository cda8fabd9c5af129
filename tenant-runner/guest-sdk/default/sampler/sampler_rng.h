/*
 * sampler_rng.h — the default guest's seeded pseudo-random generator.
 *
 * Sampling must give the same tokens for the same seed on every platform the guest runs on
 * (x86-64 natively in tests, wasm32 inside the sandbox), so we do not use rand() or any libc
 * generator whose algorithm differs between libcs. The generator is xoshiro256** (Blackman &
 * Vigna), its 256-bit state filled from the 64-bit seed by splitmix64 as its authors
 * recommend. Only 64-bit integer arithmetic is used, which is exact everywhere. The state lives
 * in the caller's struct: no global state.
 */
#ifndef REALM_SAMPLER_RNG_H
#define REALM_SAMPLER_RNG_H

#include <stdint.h>

struct sampler_rng {
  uint64_t s[4]; /* xoshiro256** state; never all zero (splitmix64 guarantees it) */
};

/* Fills the state from a 64-bit seed. Every seed, including 0, gives a valid state. */
void sampler_rng_seed(struct sampler_rng *rng, uint64_t seed);

/* Next 64 uniformly distributed bits. */
uint64_t sampler_rng_next_u64(struct sampler_rng *rng);

/* Uniform double in [0, 1) with 53 random bits: exact, so identical across platforms. */
double sampler_rng_next_unit(struct sampler_rng *rng);

#endif /* REALM_SAMPLER_RNG_H */
