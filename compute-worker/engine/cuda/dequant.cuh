/*
 * dequant.cuh — device loads of 8 consecutive weight elements, dequantized to f32, for the
 * device layouts of layout.h. K is a multiple of 8 and n_in a multiple of 8 (of 32 for the
 * quantized types), so each load is one aligned vector instruction: 2 × 16 bytes (F32),
 * 16 bytes (F16/BF16), 8 bytes plus a scale (Q8_0, Q4_0). Shared by the mat-vec and tiled
 * mat-mat kernels; their results must equal cuda_layout_get element by element (the scalar
 * definition), which is what the CUDA op tests compare against the CPU.
 */
#ifndef REALM_ENGINE_CUDA_DEQUANT_CUH
#define REALM_ENGINE_CUDA_DEQUANT_CUH

#include "common.cuh"

template <int TYPE>
static __device__ __forceinline__ void load8(const void *w, uint32_t n_in, uint32_t n_out,
                                             uint32_t row, uint32_t k, float out[8]) {
  if (TYPE == CUDA_W_F32) {
    const float4 *p = (const float4 *)((const float *)w + (size_t)row * n_in + k);
    float4 a = p[0], b = p[1];
    out[0] = a.x; out[1] = a.y; out[2] = a.z; out[3] = a.w;
    out[4] = b.x; out[5] = b.y; out[6] = b.z; out[7] = b.w;
  } else if (TYPE == CUDA_W_F16) {
    uint4 u = *(const uint4 *)((const __half *)w + (size_t)row * n_in + k);
    const __half2 *h = (const __half2 *)&u;
#pragma unroll
    for (int i = 0; i < 4; i++) {
      float2 f = __half22float2(h[i]);
      out[2 * i] = f.x;
      out[2 * i + 1] = f.y;
    }
  } else if (TYPE == CUDA_W_BF16) {
    uint4 u = *(const uint4 *)((const uint16_t *)w + (size_t)row * n_in + k);
    const uint32_t words[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
      out[2 * i] = __uint_as_float(words[i] << 16);
      out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
  } else if (TYPE == CUDA_W_Q8_0) {
    const uint16_t *sc = cuda_layout_scales(w, CUDA_W_Q8_0, n_in, n_out);
    const float d = __half2float(__ushort_as_half(sc[(size_t)row * (n_in / CUDA_QK) + k / CUDA_QK]));
    uint2 u = *(const uint2 *)((const int8_t *)w + (size_t)row * n_in + k);
    const int8_t *q = (const int8_t *)&u;
#pragma unroll
    for (int i = 0; i < 8; i++) out[i] = d * (float)q[i];
  } else { /* Q4_0: elements k..k+7 of block k/32 are the low (kk < 16) or high nibbles of
              bytes (kk & 15)..(kk & 15) + 7 of that block's 16 bytes */
    const uint16_t *sc = cuda_layout_scales(w, CUDA_W_Q4_0, n_in, n_out);
    const float d = __half2float(__ushort_as_half(sc[(size_t)row * (n_in / CUDA_QK) + k / CUDA_QK]));
    const uint32_t kk = k % CUDA_QK;
    uint2 u = *(const uint2 *)((const uint8_t *)w + (size_t)row * (n_in / 2) +
                               (k / CUDA_QK) * 16 + (kk & 15));
    const uint8_t *b = (const uint8_t *)&u;
    const int shift = kk < 16 ? 0 : 4;
#pragma unroll
    for (int i = 0; i < 8; i++) out[i] = d * (float)((int)((b[i] >> shift) & 15) - 8);
  }
}

#endif /* REALM_ENGINE_CUDA_DEQUANT_CUH */
