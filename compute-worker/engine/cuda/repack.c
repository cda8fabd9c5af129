/*
 * repack.c — GGUF weight → CUDA device layout (see layout.h and repack.h). The quant
 * blocks of ggml keep their scale in front of their quants; the device layout moves all
 * scales of a weight after all its quants so quant rows stay 16-byte aligned.
 */
#include "repack.h"

#include <string.h>

#include "layout.h"

int cuda_repack_weight(int type, const void *src, size_t src_row_bytes, uint32_t n_in,
                       uint32_t n_out, void *dst) {
  if (type < CUDA_W_F32 || type > CUDA_W_Q4_0) return -1;
  size_t row = cuda_layout_row_bytes(type, n_in);
  if (type == CUDA_W_F32 || type == CUDA_W_F16 || type == CUDA_W_BF16) {
    for (uint32_t r = 0; r < n_out; r++)
      memcpy((char *)dst + row * r, (const char *)src + src_row_bytes * r, row);
    return 0;
  }
  if (n_in % CUDA_QK != 0) return -1;
  const uint32_t nb = n_in / CUDA_QK;
  const size_t block = type == CUDA_W_Q8_0 ? 2 + CUDA_QK : 2 + CUDA_QK / 2;
  const size_t qbytes = block - 2;
  uint16_t *scales = (uint16_t *)((char *)dst + row * n_out);
  for (uint32_t r = 0; r < n_out; r++) {
    const unsigned char *s = (const unsigned char *)src + src_row_bytes * r;
    unsigned char *q = (unsigned char *)dst + row * r;
    for (uint32_t b = 0; b < nb; b++, s += block) {
      uint16_t d;
      memcpy(&d, s, 2); /* GGUF is little-endian, like every host we build for */
      scales[(size_t)r * nb + b] = d;
      memcpy(q + b * qbytes, s + 2, qbytes);
    }
  }
  return 0;
}
