/*
 * attention.cu — paged attention, one block of ATTN_WARPS warps per (query head, token).
 *
 * Each warp walks positions warp, warp + ATTN_WARPS, ... of the token's causal window; a
 * lane holds head dims lane, lane + 32, ... (DPL of them) of q and of its running output.
 * Per position the warp reads the K row (coalesced), reduces q·k with shuffles, and folds
 * the position in with an online softmax (running max m, running sum l, output rescaled
 * when m grows) — no score buffer, so any context length fits. The warps' partial (m, l,
 * out) are merged through shared memory at the end. Exact in the sense of flash attention:
 * the same math as softmax-then-weighted-sum, reassociated.
 *
 * Known limits (docs/cuda.md): one block per (head, token) under-fills the GPU for a single
 * long decode (a split over positions — flash decoding — would help); K/V are f32.
 */
#include "attention.cuh"
#include "common.cuh"

#define ATTN_WARPS 4

template <int DPL>
static __global__ void attention_kernel(struct cuda_kv_view kv, uint32_t layer, uint32_t n_head,
                                        uint32_t group, uint32_t head_dim, float scale,
                                        const float *q, float *out) {
  __shared__ float sm_m[ATTN_WARPS], sm_l[ATTN_WARPS];
  __shared__ float sm_o[ATTN_WARPS][DPL * CUDA_WARP];
  const uint32_t h = blockIdx.x, t = blockIdx.y;
  const uint32_t lane = threadIdx.x % CUDA_WARP, warp = threadIdx.x / CUDA_WARP;
  const uint32_t kvh = h / group, n = kv.tok_pos[t] + 1;
  const uint32_t *blocks = kv.block_table + (size_t)kv.tok_seq_index[t] * kv.stride;
  const float *qr = q + ((size_t)t * n_head + h) * head_dim;

  float qv[DPL], acc[DPL];
#pragma unroll
  for (int r = 0; r < DPL; r++) {
    uint32_t d = lane + r * CUDA_WARP;
    qv[r] = d < head_dim ? qr[d] : 0.0f;
    acc[r] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (uint32_t p = warp; p < n; p += ATTN_WARPS) {
    const size_t ko = cuda_layout_kv_offset(blocks, kv.block_tokens, kv.n_layer, kv.kv_dim,
                                            layer, p, 0) + (size_t)kvh * head_dim;
    const size_t vo = cuda_layout_kv_offset(blocks, kv.block_tokens, kv.n_layer, kv.kv_dim,
                                            layer, p, 1) + (size_t)kvh * head_dim;
    float dot = 0.0f;
#pragma unroll
    for (int r = 0; r < DPL; r++) {
      uint32_t d = lane + r * CUDA_WARP;
      if (d < head_dim) dot += qv[r] * kv.pool[ko + d];
    }
    const float sc = warp_sum(dot) * scale;
    const float m_new = fmaxf(m, sc);
    const float corr = __expf(m - m_new), w = __expf(sc - m_new);
    l = l * corr + w;
#pragma unroll
    for (int r = 0; r < DPL; r++) {
      uint32_t d = lane + r * CUDA_WARP;
      float vv = d < head_dim ? kv.pool[vo + d] : 0.0f;
      acc[r] = acc[r] * corr + w * vv;
    }
    m = m_new;
  }
  if (lane == 0) {
    sm_m[warp] = m;
    sm_l[warp] = l;
  }
#pragma unroll
  for (int r = 0; r < DPL; r++) sm_o[warp][lane + r * CUDA_WARP] = acc[r];
  __syncthreads();
  /* Merge: warp 0 position 0 always exists, so the global max is finite. */
  float gm = -INFINITY;
  for (int w = 0; w < ATTN_WARPS; w++) gm = fmaxf(gm, sm_m[w]);
  float gl = 0.0f, f[ATTN_WARPS];
  for (int w = 0; w < ATTN_WARPS; w++) {
    f[w] = sm_l[w] > 0.0f ? __expf(sm_m[w] - gm) : 0.0f;
    gl += sm_l[w] * f[w];
  }
  const float inv = 1.0f / gl;
  float *o = out + ((size_t)t * n_head + h) * head_dim;
  for (uint32_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float s = 0.0f;
    for (int w = 0; w < ATTN_WARPS; w++) s += sm_o[w][d] * f[w];
    o[d] = s * inv;
  }
}

template <int DPL>
static void attention_launch(cudaStream_t s, const struct cuda_kv_view *kv, uint32_t layer,
                             uint32_t n_tok, uint32_t n_head, uint32_t group, uint32_t head_dim,
                             const float *q, float *out) {
  dim3 grid(n_head, n_tok);
  const float scale = 1.0f / sqrtf((float)head_dim);
  attention_kernel<DPL><<<grid, ATTN_WARPS * CUDA_WARP, 0, s>>>(*kv, layer, n_head, group,
                                                               head_dim, scale, q, out);
}

extern "C" cudaError_t cuda_op_attention(cudaStream_t s, const struct cuda_kv_view *kv,
                                         uint32_t layer, uint32_t n_tok, uint32_t n_head,
                                         uint32_t n_head_kv, uint32_t head_dim, const float *q,
                                         float *out) {
  if (n_head_kv == 0 || n_head % n_head_kv != 0 || head_dim == 0 || head_dim > 256 ||
      (size_t)n_head_kv * head_dim != kv->kv_dim || layer >= kv->n_layer || n_tok > 65535)
    return cudaErrorInvalidValue;
  if (n_tok == 0) return cudaSuccess;
  const uint32_t group = n_head / n_head_kv;
  if (head_dim <= 32) attention_launch<1>(s, kv, layer, n_tok, n_head, group, head_dim, q, out);
  else if (head_dim <= 64) attention_launch<2>(s, kv, layer, n_tok, n_head, group, head_dim, q, out);
  else if (head_dim <= 128) attention_launch<4>(s, kv, layer, n_tok, n_head, group, head_dim, q, out);
  else attention_launch<8>(s, kv, layer, n_tok, n_head, group, head_dim, q, out);
  return cudaGetLastError();
}
