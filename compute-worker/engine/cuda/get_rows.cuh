/* get_rows.cuh — embedding lookup (and row gather) for every device weight layout. */
#ifndef REALM_ENGINE_CUDA_GET_ROWS_CUH
#define REALM_ENGINE_CUDA_GET_ROWS_CUH
#include <cuda_runtime_api.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
/* out (n, n_in) = rows ids[0..n) of W (layout.h, n_rows rows of TYPE), dequantized.
 * ids are device memory and must be < n_rows (the engine validates them). */
cudaError_t cuda_op_get_rows(cudaStream_t s, int type, const void *w, uint32_t n_in,
                             uint32_t n_rows, const int32_t *ids, uint32_t n, float *out);
#ifdef __cplusplus
}
#endif
#endif
