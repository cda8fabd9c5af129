/*
 * repack.h — host-side conversion of a GGUF weight into the CUDA backend's device layout
 * (layout.h): float types copied as they are, Q8_0/Q4_0 blocks split into quants and
 * scales. Plain C with no CUDA dependency, so the CPU-side tests check it on any machine.
 */
#ifndef REALM_ENGINE_CUDA_REPACK_H
#define REALM_ENGINE_CUDA_REPACK_H

#include <stddef.h>
#include <stdint.h>

/* Writes the device layout of a weight of TYPE (enum cuda_wtype), N_OUT rows of N_IN
 * elements whose GGUF rows start every SRC_ROW_BYTES bytes at SRC, into DST
 * (cuda_layout_bytes(type, n_in, n_out) bytes). Returns 0, or -1 when the shape does not
 * fit the type (quantized with n_in % 32 != 0, unknown type). */
int cuda_repack_weight(int type, const void *src, size_t src_row_bytes, uint32_t n_in,
                       uint32_t n_out, void *dst);

#endif /* REALM_ENGINE_CUDA_REPACK_H */
