/*
 * quant_blocks.h — engine-private block layouts and scalar fp16/bf16 conversions.
 *
 * The weight blocks are byte-for-byte ggml's (GGUF stores them that way): Q8_0 is an fp16
 * scale and 32 int8 values (34 bytes), Q4_0 an fp16 scale and 16 bytes of nibbles (18 bytes),
 * element j in the low nibble of byte j and element j+16 in its high nibble, both offset by 8.
 * The activation block (struct engine_q8_act) is our own: the fast paths quantize the f32
 * activations once per matmul into it and run integer dot products, as ggml does; its scale
 * stays f32 (not fp16 like ggml's) so the only drift versus f32 activations is the int8
 * rounding of x (relative error ≤ 1/254 per element before accumulation).
 * The conversions are written out here instead of using model/fp16.h so the engine has no
 * ordering dependency on that header; they are exact (round-to-nearest-even for f32→fp16).
 */
#ifndef REALM_ENGINE_QUANT_BLOCKS_H
#define REALM_ENGINE_QUANT_BLOCKS_H

#include <stdint.h>
#include <string.h>

#define ENGINE_QK 32 /* elements per Q8_0 / Q4_0 block */

struct engine_block_q8_0 {
  uint16_t d; /* fp16 scale */
  int8_t qs[ENGINE_QK];
} __attribute__((packed));

struct engine_block_q4_0 {
  uint16_t d; /* fp16 scale */
  uint8_t qs[ENGINE_QK / 2];
} __attribute__((packed));

_Static_assert(sizeof(struct engine_block_q8_0) == 34, "q8_0 block is 34 bytes");
_Static_assert(sizeof(struct engine_block_q4_0) == 18, "q4_0 block is 18 bytes");

/* Quantized activation block: 32 int8 values and an f32 scale (x ≈ d * qs[i]). */
struct engine_q8_act {
  float d;
  int8_t qs[ENGINE_QK];
};

static inline float engine_fp16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else { /* subnormal: normalise */
      int e = -1;
      do {
        e++;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

static inline uint16_t engine_f32_to_fp16(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) /* inf or nan */
    return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
  if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
    return (uint16_t)(sign | 0x7c00u);
  if (absx < 0x38800000u) { /* result is subnormal or zero */
    if (absx < 0x33000000u) return (uint16_t)sign;
    uint32_t e = absx >> 23, m = (absx & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14..24 */
    uint32_t q = m >> (shift), rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return (uint16_t)(sign | q);
  }
  uint32_t q = (absx - 0x38000000u) >> 13, rem = absx & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (q & 1))) q++;
  return (uint16_t)(sign | q);
}

static inline float engine_bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

#endif /* REALM_ENGINE_QUANT_BLOCKS_H */
