/*
 * quant.h — Q8_0 and Q4_0 block quantization, bit-compatible with ggml's reference formats.
 *
 * Both formats cut a row into blocks of 32 values, each with one fp16 scale d:
 *   Q8_0 (34 bytes): d = max|x| / 127, q[i] = round(x[i] / d) as int8; x ≈ d * q.
 *   Q4_0 (18 bytes): m = the value of largest magnitude (sign kept), d = m / -8,
 *                    q = clamp(round(x / d) + 8, 0, 15); element j sits in the low nibble of
 *                    byte j, element j + 16 in the high nibble; x ≈ d * (q - 8).
 * N (elements) must be a multiple of 32. Used by `realmctl model synth` to write quantized
 * models and by the CPU engine to dequantize weights.
 */
#ifndef REALM_QUANT_H
#define REALM_QUANT_H

#include <stdint.h>

#define REALM_QK8_0 32
#define REALM_QK4_0 32

struct realm_block_q8_0 {
  uint16_t d;                 /* fp16 scale */
  int8_t qs[REALM_QK8_0];     /* quants */
};

struct realm_block_q4_0 {
  uint16_t d;                 /* fp16 scale */
  uint8_t qs[REALM_QK4_0 / 2]; /* nibbles: j low, j + 16 high */
};

_Static_assert(sizeof(struct realm_block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(struct realm_block_q4_0) == 18, "Q4_0 block is 18 bytes");

void quantize_row_q8_0(const float *x, void *y, int64_t n);
void dequantize_row_q8_0(const void *x, float *y, int64_t n);
void quantize_row_q4_0(const float *x, void *y, int64_t n);
void dequantize_row_q4_0(const void *x, float *y, int64_t n);

#endif /* REALM_QUANT_H */
