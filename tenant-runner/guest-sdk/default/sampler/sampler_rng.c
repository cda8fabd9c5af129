/*
 * sampler_rng.c — xoshiro256** seeded by splitmix64 (see sampler_rng.h for why our own).
 *
 * Written from the published algorithm descriptions; constants are the authors' published
 * ones. All arithmetic is on uint64_t, whose wrap-around is defined by C, so the sequence is
 * bit-identical on every platform and compiler.
 */
#include "sampler_rng.h"

static uint64_t rotl64(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

/* splitmix64: a good 64-bit mixer; each call advances *state by the golden-ratio increment. */
static uint64_t splitmix64_next(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void sampler_rng_seed(struct sampler_rng *rng, uint64_t seed) {
  uint64_t sm = seed;
  for (int i = 0; i < 4; i++) rng->s[i] = splitmix64_next(&sm);
  /* splitmix64 is a bijection of distinct counters, so four zero outputs cannot happen; keep
   * a guard anyway because an all-zero state would make xoshiro return zeros forever. */
  if ((rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]) == 0) rng->s[0] = 1;
}

uint64_t sampler_rng_next_u64(struct sampler_rng *rng) {
  uint64_t *s = rng->s;
  const uint64_t result = rotl64(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl64(s[3], 45);
  return result;
}

double sampler_rng_next_unit(struct sampler_rng *rng) {
  /* Top 53 bits scaled by 2^-53: every value is exactly representable in a double. */
  return (double)(sampler_rng_next_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
}
