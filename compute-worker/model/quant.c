/*
 * quant.c — reference Q8_0 / Q4_0 quantizers and dequantizers (formats in quant.h).
 *
 * Scalar code on purpose: these run when writing a model and when the CPU engine unpacks
 * weights, both memory-bound; compilers vectorize the inner loops at -O2. The rounding
 * follows ggml's reference implementation (quantize with the unrounded scale, store it as
 * fp16) so files we write quantize exactly as llama.cpp's would.
 */
#include "quant.h"

#include <math.h>

#include "fp16.h"

void quantize_row_q8_0(const float *x, void *y, int64_t n) {
  struct realm_block_q8_0 *b = y;
  for (int64_t i = 0; i < n / REALM_QK8_0; i++, x += REALM_QK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < REALM_QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = realm_f32_to_fp16(d);
    for (int j = 0; j < REALM_QK8_0; j++) b[i].qs[j] = (int8_t)roundf(x[j] * id);
  }
}

void dequantize_row_q8_0(const void *x, float *y, int64_t n) {
  const struct realm_block_q8_0 *b = x;
  for (int64_t i = 0; i < n / REALM_QK8_0; i++) {
    const float d = realm_fp16_to_f32(b[i].d);
    for (int j = 0; j < REALM_QK8_0; j++) y[i * REALM_QK8_0 + j] = (float)b[i].qs[j] * d;
  }
}

void quantize_row_q4_0(const float *x, void *y, int64_t n) {
  struct realm_block_q4_0 *b = y;
  for (int64_t i = 0; i < n / REALM_QK4_0; i++, x += REALM_QK4_0) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < REALM_QK4_0; j++) {
      if (fabsf(x[j]) > amax) {
        amax = fabsf(x[j]);
        max = x[j];
      }
    }
    /* Dividing by -8 maps the extreme value to quant 0 (value -8 * d), using the asymmetric
     * end of the 4-bit range for the largest magnitude, as ggml does. */
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = realm_f32_to_fp16(d);
    for (int j = 0; j < REALM_QK4_0 / 2; j++) {
      /* x * id lies in [-8, 8]; + 8.5 then truncation rounds half up, as ggml does. */
      int q0 = (int)(x[j] * id + 8.5f);
      int q1 = (int)(x[j + REALM_QK4_0 / 2] * id + 8.5f);
      q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
      q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
      b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
  }
}

void dequantize_row_q4_0(const void *x, float *y, int64_t n) {
  const struct realm_block_q4_0 *b = x;
  for (int64_t i = 0; i < n / REALM_QK4_0; i++) {
    const float d = realm_fp16_to_f32(b[i].d);
    for (int j = 0; j < REALM_QK4_0 / 2; j++) {
      y[i * REALM_QK4_0 + j] = (float)((b[i].qs[j] & 0x0f) - 8) * d;
      y[i * REALM_QK4_0 + j + REALM_QK4_0 / 2] = (float)((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}
