/*
 * fp16.h — IEEE half (fp16) and bfloat16 <-> float32 conversions, header only.
 *
 * The GGUF reader, the quantizers, the synthetic-model writer and the CPU engine all need these
 * scalar conversions; keeping them static inline in one place means one definition of the
 * rounding rule (round to nearest, ties to even, as the hardware does) and no call overhead in
 * the dequantization loops. No dependency on F16C or <immintrin.h> so it builds anywhere;
 * compilers turn the bit twiddling into a few instructions.
 */
#ifndef REALM_FP16_H
#define REALM_FP16_H

#include <stdint.h>
#include <string.h>

static inline uint32_t realm_f32_bits_(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static inline float realm_bits_f32_(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* fp16 -> f32, exact for every input including subnormals, infinities and NaNs. */
static inline float realm_fp16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) /* inf / NaN: keep the payload, force quiet */
    return realm_bits_f32_(sign | 0x7f800000u | (man << 13) | (man ? 0x00400000u : 0));
  if (exp == 0) {
    if (man == 0) return realm_bits_f32_(sign);
    /* subnormal: value = man * 2^-24, exactly representable in f32 */
    float v = (float)man * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  return realm_bits_f32_(sign | ((exp + 112u) << 23) | (man << 13));
}

/* f32 -> fp16 with round-to-nearest-even; overflow gives infinity, NaN stays NaN. */
static inline uint16_t realm_f32_to_fp16(float f) {
  uint32_t u = realm_f32_bits_(f);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  uint32_t abs = u & 0x7fffffffu;
  if (abs >= 0x7f800000u) /* inf or NaN */
    return (uint16_t)(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0));
  if (abs >= 0x477ff000u) /* >= 65520 rounds to infinity */
    return (uint16_t)(sign | 0x7c00u);
  if (abs < 0x38800000u) { /* below the smallest normal half (2^-14): subnormal or zero */
    if (abs < 0x33000000u) return sign; /* < 2^-25 rounds to zero (2^-25 itself ties to 0) */
    uint32_t exp = abs >> 23;
    uint32_t man = (abs & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - exp; /* 14..24: f32 mantissa -> half subnormal units of 2^-24 */
    uint32_t q = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (uint16_t)(sign | q);
  }
  /* normal: rebias exponent, round the 13 dropped mantissa bits to nearest even */
  uint32_t r = abs + 0xfffu + ((abs >> 13) & 1u);
  return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

/* bf16 -> f32: bf16 is the top half of an f32. */
static inline float realm_bf16_to_f32(uint16_t b) {
  return realm_bits_f32_((uint32_t)b << 16);
}

/* f32 -> bf16 with round-to-nearest-even; NaN stays a (quiet) NaN. */
static inline uint16_t realm_f32_to_bf16(float f) {
  uint32_t u = realm_f32_bits_(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

#endif /* REALM_FP16_H */
