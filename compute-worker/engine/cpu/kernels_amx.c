/*
 * kernels_amx.c — Q8_0 / Q4_0 matmuls on Intel AMX int8 tiles, for batches of activations
 * (decode of several sequences, prefill chunks); everything else is the AVX-512 VNNI table.
 *
 * Why: at batch 8 the VNNI kernels are bound by integer compute, not memory — per weight
 * block × activation they spend a vpdpbusd, an int→float conversion, a scale multiply and an
 * FMA. One AMX tile product (TDPBSSD / TDPBUSD) computes the int32 block dots of 16 weight
 * rows × up to 16 activations at once, so what is left per block × activation is one
 * conversion, one multiply and one FMA on vectors that cover 8 or 16 activations.
 *
 * Shapes (per block k of 32 elements; the scales are per block, so every tile product has
 * K = 32 and its int32 result is scaled before the next block):
 *   tile A = 16 weight rows × 32 bytes. Q8_0: loaded straight from the GGUF rows (row stride
 *            = row_bytes, base = &block[k].qs). Q4_0: the 16 nibble bytes of each row
 *            unpacked to 32 bytes (0..15, element order) on the stack.
 *   tile B = 8 rows × NP activations × 4 bytes ("VNNI layout": row i holds elements
 *            4i..4i+3 of every activation), repacked from the q8 activation rows once per
 *            kernel call for a chunk of blocks (amx_pack below).
 *   tile C = 16 rows × NP int32. Q8_0: zeroed, then TDPBSSD (signed × signed). Q4_0: loaded
 *            with every row = the activations' −8·Σq of the block (a row stride of 0), then
 *            TDPBUSD (unsigned nibbles × signed activations): Σ (q − 8)·x = Σ q·x − 8·Σx.
 *   then   acc[row] += float(C[row]) · (d_x[0..NP) · d_w[row])   (one vector per row)
 * NP = 16 for groups of 9..16 activations. Groups of 4..8 run in "pair mode" (two blocks per
 * tile product, see its section); AMX_PAIR_MODE=0 at build time gives the one-block NP = 8
 * path instead (measured: Q4_0 batch 8 ~15 % slower, Q8_0 the same). Tiles 0/1 (A) and
 * 2/3 (B) alternate between blocks, C rotates over tiles 4..7: a tile written while a
 * product still reads or writes it makes the tile unit wait for that product's latency.
 *
 * Linux hands out the AMX tile state only on request (arch_prctl ARCH_REQ_XCOMP_PERM, once
 * per process, before any tile instruction; it must happen before a seccomp jail that does
 * not allow arch_prctl). engine_cpu_kernels_amx() probes once: CPUID (AMX-TILE, AMX-INT8),
 * the VNNI table, then the request; any failure leaves the table unavailable (NULL) and
 * engine_cpu_amx_unavailable_reason() says why. The tile configuration is per thread: every
 * kernel call loads it first and releases the tiles at the end, so a context switch of a
 * thread that is not in a kernel does not carry 8 KiB of tile data.
 *
 * What stays on VNNI: batches of fewer than ENGINE_AMX_MIN_NB activations (batch-1 decode is
 * memory-bound, a tile would be mostly empty), rows past the last full 16-row tile of the
 * call, and the float weight types. Results differ from the scalar reference only by f32
 * summation order (per row and activation the blocks are summed in order; rows of long
 * inputs are summed per chunk of ENGINE_AMX_KC blocks, then the chunks), and they depend only
 * on the row's and the activation's indices, never on the thread split.
 */
#include "kernels.h"

#if defined(__x86_64__)

#include <cpuid.h>
#include <immintrin.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define T_AMX                                                                                 \
  __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,"  \
                        "avx2,fma,f16c")))
#define ALWAYS_INLINE __attribute__((always_inline)) inline

/* Linux's arch_prctl request for a dynamically enabled xstate component (asm/prctl.h) and
 * the AMX tile data component number (XFEATURE_XTILEDATA). */
#define AMX_ARCH_REQ_XCOMP_PERM 0x1023
#define AMX_XFEATURE_XTILEDATA 18

#define AMX_ROWS 16     /* weight rows per tile (the tile maximum) */
#define ENGINE_AMX_KC 64 /* blocks per packed activation chunk: 40 KiB of stack */
#ifndef AMX_PREFETCH
#define AMX_PREFETCH 1
#endif
#ifndef AMX_PF_EVERY
#define AMX_PF_EVERY 1
#endif
#ifndef AMX_PF_HINT
#define AMX_PF_HINT _MM_HINT_T0
#endif
#ifndef AMX_UNPACK_AHEAD
#define AMX_UNPACK_AHEAD 2 /* Q4_0 blocks unpacked ahead of their tile load (≤ 3) */
#endif
#ifndef AMX_PAIR_MODE
#define AMX_PAIR_MODE 1 /* batches of ≤ 8: two blocks per tile product (see pair mode) */
#endif
#ifndef AMX_LAG
#define AMX_LAG 2 /* blocks between a tile product and the read-back of its result (≤ 3) */
#endif

/* tile configuration (palette 1): 64 bytes, loaded with ldtilecfg */
struct amx_tilecfg {
  uint8_t palette;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} __attribute__((aligned(64)));

#define AMX_CFG(NP)                                                                           \
  {.palette = 1,                                                                            \
   .colsb = {32, 32, (NP) * 4, (NP) * 4, (NP) * 4, (NP) * 4, (NP) * 4, (NP) * 4},           \
   .rows = {16, 16, 8, 8, 16, 16, 16, 16}}
static const struct amx_tilecfg amx_cfg8 = AMX_CFG(8), amx_cfg16 = AMX_CFG(16);
/* pair mode (below): A 16 × 64 bytes (two blocks), B 16 × 16 columns, C 16 × 16 */
static const struct amx_tilecfg amx_cfg_pair = {
    .palette = 1, .colsb = {64, 64, 64, 64, 64, 64, 64, 64}, .rows = {16, 16, 16, 16, 16, 16, 16, 16}};

/* One block of up to 16 activations in tile-B layout, with their scales and Q4_0 bias. */
struct amx_pack_block {
  int8_t b[8][64];  /* b[i][4n..4n+3] = elements 4i..4i+3 of activation n (zero past nb) */
  float dx[16];     /* d of activation n's block */
  int32_t c8[16];   /* −8·Σq of activation n's block (the Q4_0 bias, tile C's start) */
};

/* The compiler does not know that tileloadd reads memory (its intrinsic is an asm without a
 * memory clobber): stores into a buffer that only a tile load reads must be ordered first. */
#define AMX_MEMORY_BARRIER() __asm__ volatile("" ::: "memory")

/* Dword index, within its pair's 64 qs bytes of a q8 activation row, of the 4 elements
 * 4i..4i+3 of block J (0 = the pair's A, 1 = its B): engine_q8_act_pos / 4. */
static inline int amx_act_dword(int i, int j) {
  return ((i >> 1) & 1) * 8 + (i >> 2) * 4 + (i & 1) * 2 + j;
}

/* Repacks blocks [k0, k1) of NB (≤ 16) q8 activation rows into PK (see struct
 * amx_pack_block): each tile-B row is one masked dword gather across the activations (the
 * same 4 bytes of every row), and so are the scales and the Q4_0 bias. */
T_AMX static void amx_pack(const char *x, size_t x_stride, int nb, int n_in, int k0, int k1,
                           struct amx_pack_block *pk) {
  const __mmask16 m = (__mmask16)((1u << nb) - 1);
  const __m512i rows = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
      _mm512_set1_epi32((int)x_stride));
  const int d_off = (int)((const char *)engine_q8_act_d(x, n_in) - x);
  const int c8_off = (int)((const char *)engine_q8_act_c8(x, n_in) - x);
  const __m512i z = _mm512_setzero_si512();
  for (int k = k0; k < k1; k++) {
    struct amx_pack_block *p = &pk[k - k0];
    const int base = (k / 2) * 64;
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {
      __m512i idx = _mm512_add_epi32(rows, _mm512_set1_epi32(base + 4 * amx_act_dword(i, k & 1)));
      _mm512_store_si512((void *)p->b[i], _mm512_mask_i32gather_epi32(z, m, idx, x, 1));
    }
    __m512i di = _mm512_add_epi32(rows, _mm512_set1_epi32(d_off + 4 * k));
    __m512i ci = _mm512_add_epi32(rows, _mm512_set1_epi32(c8_off + 4 * k));
    _mm512_store_si512((void *)p->dx, _mm512_mask_i32gather_epi32(z, m, di, x, 1));
    _mm512_store_si512((void *)p->c8, _mm512_mask_i32gather_epi32(z, m, ci, x, 1));
  }
}

enum { AMX_Q8 = 0, AMX_Q4 = 1 };

/* The 16 rows' fp16 block scales (one gather: 4 bytes at each row's block, of which the low
 * 2 are d; never past the block) as floats. */
T_AMX static ALWAYS_INLINE __m512 amx_row_scales(const char *blk0, __m512i row_offsets) {
  __m512i g = _mm512_i32gather_epi32(row_offsets, blk0, 1);
  return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
}

/* Q4_0: the 16 rows' nibbles of block BLK0 (row stride ROW_BYTES) to 16 × 32 bytes 0..15,
 * two rows per 512-bit vector: each row's 16 bytes twice, the upper copy shifted by 4. */
T_AMX static ALWAYS_INLINE void amx_unpack_q4(const char *blk0, size_t row_bytes, uint8_t *out) {
  const __m512i shift = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4), mask = _mm512_set1_epi8(0x0f);
  _Pragma("GCC unroll 8") for (int r = 0; r < AMX_ROWS; r += 2) {
    const char *q = blk0 + (size_t)r * row_bytes + 2;
    __m256i a = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)q));
    __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(q + row_bytes)));
    __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
    _mm512_store_si512((void *)(out + 32 * r), _mm512_and_si512(_mm512_srlv_epi64(v, shift), mask));
  }
}

/* The tile products of block K, with tile numbers TA/TB/TC (a macro: the tile intrinsics
 * take the tile number as a literal): A (Q8_0 from the weights; Q4_0 from abuf[k & 1],
 * unpacked one block earlier), B from the pack, C zeroed (Q8_0) or the −8·Σx row (Q4_0), the
 * product, C stored to cbuf[k & 3]; then the next block's Q4_0 unpack and this block's
 * weight scales (dw[k & 3]). The int32 results are read back AMX_LAG blocks later: a load
 * right after a tile store waits until the store has retired and reached L1. */
#define AMX_BLOCK(TA, TB, TC, k)                                                               \
  do {                                                                                       \
    const char *blk0 = w + (size_t)(k) * bsz;                                                \
    const struct amx_pack_block *p = &pk[(k) - k0];                                          \
    if (type == AMX_Q8) {                                                                    \
      _tile_loadd(TA, blk0 + 2, (long)row_bytes);                                            \
      _tile_zero(TC);                                                                        \
    } else {                                                                                 \
      _tile_loadd(TA, abuf[(k) & 3], 32);                                                    \
      _tile_loadd(TC, p->c8, 0);                                                             \
    }                                                                                        \
    _tile_loadd(TB, p->b, 64);                                                               \
    if (type == AMX_Q8) _tile_dpbssd(TC, TA, TB);                                            \
    else _tile_dpbusd(TC, TA, TB);                                                           \
    _tile_stored(TC, cbuf[(k) & 3], NP * 4);                                                 \
    if (type == AMX_Q4 && (k) + AMX_UNPACK_AHEAD < k1) {                                     \
      AMX_MEMORY_BARRIER();                                                                  \
      amx_unpack_q4(blk0 + AMX_UNPACK_AHEAD * bsz, row_bytes, abuf[((k) + AMX_UNPACK_AHEAD) & 3]); \
      AMX_MEMORY_BARRIER();                                                                  \
    }                                                                                        \
    _mm512_store_ps(dw[(k) & 3], amx_row_scales(blk0, row_offsets));                         \
    if (AMX_PREFETCH && ((k) % AMX_PF_EVERY) == 0)                                           \
      _Pragma("GCC unroll 16") for (int r = 0; r < AMX_ROWS; r++)                            \
        _mm_prefetch(blk0 + (size_t)(AMX_ROWS + r) * row_bytes, AMX_PF_HINT);                \
  } while (0)

/* acc += float(C) · d_x · d_w for block KB, whose results are in cbuf[kb & 3] and
 * dw[kb & 3] (activation scales PK[kb - k0].dx). NP = 16: one vector per row, d_w[row] broadcast from
 * memory. NP = 8: one vector per pair of rows (C was stored 32 bytes per row, so 8 loads),
 * (d_w[2q] ×8, d_w[2q+1] ×8) permuted out of the register — loads are the scarce port here
 * (tile loads, the scale gather and the C read-back all use them). */
#define AMX_POST(kb)                                                                          \
  do {                                                                                       \
    const float *dxp = pk[(kb) - k0].dx;                                                     \
    const int32_t *cb = cbuf[(kb) & 3];                                                      \
    const float *dwb = dw[(kb) & 3];                                                         \
    if (NP == 16) {                                                                          \
      const __m512 dx = _mm512_load_ps(dxp);                                                 \
      _Pragma("GCC unroll 16") for (int r = 0; r < AMX_ROWS; r++) {                          \
        __m512 c = _mm512_cvtepi32_ps(_mm512_load_si512((const void *)(cb + 16 * r)));        \
        acc[r] = _mm512_fmadd_ps(c, _mm512_mul_ps(dx, _mm512_set1_ps(dwb[r])), acc[r]);      \
      }                                                                                      \
    } else {                                                                                 \
      const __m512 dxx = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_load_pd((const double *)dxp))); \
      const __m512 dwv = _mm512_load_ps(dwb);                                                \
      _Pragma("GCC unroll 8") for (int q = 0; q < AMX_ROWS / 2; q++) {                       \
        __m512 sc = _mm512_mul_ps(_mm512_permutexvar_ps(pair_idx[q], dwv), dxx);              \
        __m512 c = _mm512_cvtepi32_ps(_mm512_load_si512((const void *)(cb + 16 * q)));        \
        acc[q] = _mm512_fmadd_ps(c, sc, acc[q]);                                             \
      }                                                                                      \
    }                                                                                        \
  } while (0)

/* Rows j..j+15 (W points at row j) against the NB packed activations of blocks [k0, k1):
 * writes (ADD = 0) or adds (ADD = 1) y[n * y_stride + r] for n < NB, r < 16. Even blocks
 * use tiles 0/2/4, odd ones 1/3/5; each block's results are accumulated AMX_LAG blocks
 * later, while the tile unit works on the following blocks. */
T_AMX static ALWAYS_INLINE void amx_rows(const int type, const int NP, const char *w,
                                         size_t row_bytes, int k0, int k1,
                                         const struct amx_pack_block *pk, int nb, float *y,
                                         size_t y_stride, int add) {
  const size_t bsz = type == AMX_Q8 ? sizeof(struct realm_block_q8_0)
                                    : sizeof(struct realm_block_q4_0);
  int32_t cbuf[4][16 * 16] __attribute__((aligned(64)));
  uint8_t abuf[4][16 * 32] __attribute__((aligned(64)));
  float dw[4][16] __attribute__((aligned(64)));
  /* NP = 16: acc[r] = row r's 16 activations; NP = 8: acc[q] = rows 2q and 2q+1 */
  __m512 acc[16];
  __m512i pair_idx[8];
  for (int r = 0; r < AMX_ROWS; r++) acc[r] = _mm512_setzero_ps();
  for (int q = 0; q < AMX_ROWS / 2; q++)
    pair_idx[q] = _mm512_inserti64x4(_mm512_set1_epi32(2 * q), _mm256_set1_epi32(2 * q + 1), 1);
  const __m512i row_offsets = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
      _mm512_set1_epi32((int)row_bytes));
  if (type == AMX_Q4) {
    for (int k = k0; k < k0 + AMX_UNPACK_AHEAD && k < k1; k++)
      amx_unpack_q4(w + (size_t)k * bsz, row_bytes, abuf[k & 3]);
    AMX_MEMORY_BARRIER();
  }
  for (int k = k0; k < k1 + AMX_LAG; k++) {
    if (k < k1) {
      switch ((k - k0) & 3) {
      case 0: AMX_BLOCK(0, 2, 4, k); break;
      case 1: AMX_BLOCK(1, 3, 5, k); break;
      case 2: AMX_BLOCK(0, 2, 6, k); break;
      default: AMX_BLOCK(1, 3, 7, k); break;
      }
    }
    if (k - AMX_LAG >= k0) AMX_POST(k - AMX_LAG);
  }
  float out[16 * 16] __attribute__((aligned(64))); /* out[r * NP + n] either way */
  for (int r = 0; r < (NP == 16 ? AMX_ROWS : AMX_ROWS / 2); r++) _mm512_store_ps(out + 16 * r, acc[r]);
  for (int n = 0; n < nb; n++)
    for (int r = 0; r < AMX_ROWS; r++) {
      float *d = &y[(size_t)n * y_stride + r];
      *d = add ? *d + out[r * NP + n] : out[r * NP + n];
    }
}

/* ---- pair mode: batches of up to 8 activations, two blocks per tile product ----
 *
 * With 8 activations a 16 × 16 result tile has room for two blocks: tile A holds blocks k
 * and k+1 of 16 rows side by side (K = 64: 32 bytes of each, copied for Q8_0, unpacked for
 * Q4_0), tile B is block-diagonal — column 2n holds activation n's block k in K rows 0..7 and
 * zeros below, column 2n+1 zeros above and its block k+1 in K rows 8..15 — so C[r][2n] and
 * C[r][2n+1] are the two block dots of row r and activation n. One product and one tile
 * store per two blocks instead of two of each (the tile unit is busy ~5 ns with each), and
 * the scale (d_w[k][r], d_w[k+1][r]) is one 8-byte broadcast that lines up with the columns.
 * The accumulator lanes 2n and 2n+1 are added at the end. */
struct amx_pack_pair {
  int8_t b[16][64]; /* B tile: see above (zero for activations past nb or a missing block) */
  float dx[16];     /* column 2n + j: d of activation n's block k + j */
  int32_t c8[16];   /* column 2n + j: −8·Σq of activation n's block k + j */
};

/* Shuffle indices of amx_pack_pairs, built once (amx_probe). */
static struct {
  int32_t s1[2][16]; /* stage 1, half h */
  int64_t s2[2][8];  /* stage 2, quarter s */
  int64_t s3[2][8];  /* stage 3, v */
  int32_t s4[2][16]; /* stage 4: row r0 (0) or r0 + 1 (1) */
} amx_pp_idx __attribute__((aligned(64)));

static void amx_pp_idx_init(void) {
  for (int h = 0; h < 2; h++)
    for (int t = 0; t < 8; t++)
      for (int e = 0; e < 2; e++) {
        const int r = 8 * h + t; /* tile-B row r = 8j + i holds block j's elements 4i..4i+3 */
        amx_pp_idx.s1[h][2 * t + e] = 16 * e + amx_act_dword(r % 8, r / 8);
      }
  for (int s = 0; s < 2; s++)
    for (int u = 0; u < 4; u++)
      for (int e = 0; e < 2; e++) amx_pp_idx.s2[s][2 * u + e] = 8 * e + 4 * s + u;
  for (int v = 0; v < 2; v++)
    for (int half = 0; half < 2; half++)
      for (int e = 0; e < 2; e++)
        for (int q = 0; q < 2; q++) amx_pp_idx.s3[v][4 * half + 2 * e + q] = 8 * e + 4 * v + 2 * half + q;
  for (int c = 0; c < 16; c++) amx_pp_idx.s4[0][c] = c / 2, amx_pp_idx.s4[1][c] = 8 + c / 2;
}

/* Repacks the block pairs (k, k+1) for k = k0, k0+2, .. < k1 (k0 even) of NB (≤ 8)
 * activation rows. A pair's 64 qs bytes are exactly one pair of the q8 activation row, so
 * the B tile is a transpose: B[8j + i][2n + j] = dword amx_act_dword(i, j) of activation n,
 * 0 in the other column. As dwords: 8 activations × 16 → 16 rows × 8 in three
 * two-source permute stages (1: pairs of activations, dword rows reordered on the way;
 * 2: quads; 3: all 8, two tile rows per vector), then each row spread to its even (block k)
 * or odd (block k+1) columns with a zeroing permute: 40 shuffles per pair instead of 128
 * 4-byte copies. */
T_AMX static void amx_pack_pairs(const char *x, size_t x_stride, int nb, int n_in, int k0, int k1,
                                 struct amx_pack_pair *pk) {
  const __m512i i1[2] = {_mm512_load_si512(amx_pp_idx.s1[0]), _mm512_load_si512(amx_pp_idx.s1[1])};
  const __m512i i2[2] = {_mm512_load_si512(amx_pp_idx.s2[0]), _mm512_load_si512(amx_pp_idx.s2[1])};
  const __m512i i3[2] = {_mm512_load_si512(amx_pp_idx.s3[0]), _mm512_load_si512(amx_pp_idx.s3[1])};
  const __m512i i4[2] = {_mm512_load_si512(amx_pp_idx.s4[0]), _mm512_load_si512(amx_pp_idx.s4[1])};
  const float *d[8];
  const int32_t *c8[8];
  for (int n = 0; n < nb; n++) {
    d[n] = engine_q8_act_d(x + (size_t)n * x_stride, n_in);
    c8[n] = engine_q8_act_c8(x + (size_t)n * x_stride, n_in);
  }
  for (int k = k0; k < k1; k += 2) {
    struct amx_pack_pair *p = &pk[(k - k0) / 2];
    const int two = k + 1 < k1;
    /* a missing block k+1 reads as zero (its dwords are the odd ones) */
    const __mmask16 lm = two ? 0xffff : 0x5555;
    __m512i w[8], a[4][2], c[2][2][2];
    _Pragma("GCC unroll 8") for (int n = 0; n < 8; n++)
      w[n] = n < nb ? _mm512_maskz_loadu_epi32(lm, x + (size_t)n * x_stride + (size_t)(k / 2) * 64)
                    : _mm512_setzero_si512();
    _Pragma("GCC unroll 4") for (int m = 0; m < 4; m++) for (int h = 0; h < 2; h++)
      a[m][h] = _mm512_permutex2var_epi32(w[2 * m], i1[h], w[2 * m + 1]);
    for (int M = 0; M < 2; M++) for (int h = 0; h < 2; h++) for (int q = 0; q < 2; q++)
      c[M][h][q] = _mm512_permutex2var_epi64(a[2 * M][h], i2[q], a[2 * M + 1][h]);
    for (int h = 0; h < 2; h++) {
      const __mmask16 cm = h ? 0xaaaa : 0x5555;
      for (int q = 0; q < 2; q++) for (int v = 0; v < 2; v++) {
        const __m512i dv = _mm512_permutex2var_epi64(c[0][h][q], i3[v], c[1][h][q]);
        const int r0 = 8 * h + 4 * q + 2 * v;
        _mm512_store_si512((void *)p->b[r0], _mm512_maskz_permutexvar_epi32(cm, i4[0], dv));
        _mm512_store_si512((void *)p->b[r0 + 1], _mm512_maskz_permutexvar_epi32(cm, i4[1], dv));
      }
    }
    _mm512_store_si512((void *)p->dx, _mm512_setzero_si512());
    _mm512_store_si512((void *)p->c8, _mm512_setzero_si512());
    for (int n = 0; n < nb; n++) {
      memcpy(&p->dx[2 * n], &d[n][k], two ? 8 : 4);
      memcpy(&p->c8[2 * n], &c8[n][k], two ? 8 : 4);
    }
  }
}

/* Byte gather for a Q4_0 pair into [k low nibbles | k high | k+1 low | k+1 high] source
 * bytes: block k's nibble bytes sit at 2..17, block k+1's at 20..35. */
static const uint8_t amx_q4_pair_gather[64] __attribute__((aligned(64))) = {
    2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 2,  3,  4,  5,  6,  7,
    8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
    32, 33, 34, 35, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35};

/* Tile A of a pair: the 16 rows' blocks k (at BLK0) and, when TWO, k+1, as 16 × 64 bytes.
 * Never reads past block k+1 (or past block k alone), so never past the tensor. */
T_AMX static ALWAYS_INLINE void amx_fill_pair(const int type, const char *blk0, size_t row_bytes,
                                              int two, uint8_t *out) {
  if (type == AMX_Q8) {
    _Pragma("GCC unroll 16") for (int r = 0; r < AMX_ROWS; r++) {
      const char *b = blk0 + (size_t)r * row_bytes;
      __m256i a = _mm256_loadu_si256((const __m256i *)(b + 2));
      __m256i c = two ? _mm256_loadu_si256((const __m256i *)(b + 36)) : _mm256_setzero_si256();
      _mm512_store_si512((void *)(out + 64 * r), _mm512_inserti64x4(_mm512_castsi256_si512(a), c, 1));
    }
  } else {
    const __m512i idx = _mm512_load_si512((const void *)amx_q4_pair_gather);
    const __m512i shift = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4), mask = _mm512_set1_epi8(0x0f);
    const __mmask64 m = two ? 0xfffffffffull : 0x3ffffull;
    _Pragma("GCC unroll 16") for (int r = 0; r < AMX_ROWS; r++) {
      __m512i v = _mm512_maskz_loadu_epi8(m, blk0 + (size_t)r * row_bytes);
      v = _mm512_permutexvar_epi8(idx, v);
      _mm512_store_si512((void *)(out + 64 * r), _mm512_and_si512(_mm512_srlv_epi64(v, shift), mask));
    }
  }
}

/* (d_w[k][r], d_w[k+1][r]) for r = 0..15 as 32 floats (0 for a missing block k+1). */
T_AMX static ALWAYS_INLINE void amx_pair_scales(const char *blk0, size_t row_bytes, size_t bsz,
                                                int two, float *out) {
  const __m512i idx = _mm512_add_epi32(
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7),
                         _mm512_set1_epi32((int)row_bytes)),
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1),
                         _mm512_set1_epi32((int)bsz)));
  const __mmask16 m = two ? 0xffff : 0x5555;
  for (int h = 0; h < 2; h++) {
    __m512i g = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx,
                                            blk0 + (size_t)(8 * h) * row_bytes, 1);
    _mm512_store_ps(out + 16 * h, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g)));
  }
}

#define AMX_PAIR(TA, TB, TC, i)                                                                \
  do {                                                                                       \
    const int k = k0 + 2 * (i);                                                              \
    const char *blk0 = w + (size_t)k * bsz;                                                  \
    const struct amx_pack_pair *p = &pk[i];                                                  \
    _tile_loadd(TA, abuf[(i) & 3], 64);                                                      \
    if (type == AMX_Q8) _tile_zero(TC);                                                      \
    else _tile_loadd(TC, p->c8, 0);                                                          \
    _tile_loadd(TB, p->b, 64);                                                               \
    if (type == AMX_Q8) _tile_dpbssd(TC, TA, TB);                                            \
    else _tile_dpbusd(TC, TA, TB);                                                           \
    _tile_stored(TC, cbuf[(i) & 3], 64);                                                     \
    if ((i) + AMX_UNPACK_AHEAD < npairs) {                                                   \
      const int ka = k + 2 * AMX_UNPACK_AHEAD;                                               \
      AMX_MEMORY_BARRIER();                                                                  \
      amx_fill_pair(type, w + (size_t)ka * bsz, row_bytes, ka + 1 < k1, abuf[((i) + AMX_UNPACK_AHEAD) & 3]); \
      AMX_MEMORY_BARRIER();                                                                  \
    }                                                                                        \
    amx_pair_scales(blk0, row_bytes, bsz, k + 1 < k1, dw[(i) & 3]);                          \
    if (AMX_PREFETCH)                                                                        \
      _Pragma("GCC unroll 16") for (int r = 0; r < AMX_ROWS; r++)                            \
        _mm_prefetch(blk0 + (size_t)(AMX_ROWS + r) * row_bytes, AMX_PF_HINT);                \
  } while (0)

#define AMX_PAIR_POST(i)                                                                       \
  do {                                                                                       \
    const __m512 dx = _mm512_load_ps(pk[i].dx);                                              \
    const int32_t *cb = cbuf[(i) & 3];                                                       \
    const double *dwb = (const double *)dw[(i) & 3];                                         \
    _Pragma("GCC unroll 16") for (int r = 0; r < AMX_ROWS; r++) {                            \
      __m512 c = _mm512_cvtepi32_ps(_mm512_load_si512((const void *)(cb + 16 * r)));          \
      __m512 sc = _mm512_mul_ps(dx, _mm512_castpd_ps(_mm512_set1_pd(dwb[r])));               \
      acc[r] = _mm512_fmadd_ps(c, sc, acc[r]);                                               \
    }                                                                                        \
  } while (0)

/* Rows j..j+15 (W at row j) against NB ≤ 8 pair-packed activations of blocks [k0, k1). */
T_AMX static ALWAYS_INLINE void amx_rows_pair(const int type, const char *w, size_t row_bytes,
                                              int k0, int k1, const struct amx_pack_pair *pk,
                                              int nb, float *y, size_t y_stride, int add) {
  const size_t bsz = type == AMX_Q8 ? sizeof(struct realm_block_q8_0)
                                    : sizeof(struct realm_block_q4_0);
  const int npairs = (k1 - k0 + 1) / 2;
  int32_t cbuf[4][16 * 16] __attribute__((aligned(64)));
  uint8_t abuf[4][16 * 64] __attribute__((aligned(64)));
  float dw[4][32] __attribute__((aligned(64)));
  __m512 acc[16];
  for (int r = 0; r < AMX_ROWS; r++) acc[r] = _mm512_setzero_ps();
  for (int i = 0; i < AMX_UNPACK_AHEAD && i < npairs; i++)
    amx_fill_pair(type, w + (size_t)(k0 + 2 * i) * bsz, row_bytes, k0 + 2 * i + 1 < k1, abuf[i & 3]);
  AMX_MEMORY_BARRIER();
  for (int i = 0; i < npairs + AMX_LAG; i++) {
    if (i < npairs) {
      switch (i & 3) {
      case 0: AMX_PAIR(0, 2, 4, i); break;
      case 1: AMX_PAIR(1, 3, 5, i); break;
      case 2: AMX_PAIR(0, 2, 6, i); break;
      default: AMX_PAIR(1, 3, 7, i); break;
      }
    }
    if (i - AMX_LAG >= 0) AMX_PAIR_POST(i - AMX_LAG);
  }
  float out[16] __attribute__((aligned(64)));
  for (int r = 0; r < AMX_ROWS; r++) {
    _mm512_store_ps(out, acc[r]);
    for (int n = 0; n < nb; n++) {
      float v = out[2 * n] + out[2 * n + 1], *d = &y[(size_t)n * y_stride + r];
      *d = add ? *d + v : v;
    }
  }
}

static const struct engine_cpu_kernels *amx_vnni; /* fallback table, set by the probe */

/* Bytes of one packed group of 16 activations of N_IN elements: room for either layout. */
static size_t amx_group_bytes(int n_in) {
  const size_t nblk = (size_t)(n_in / ENGINE_QK);
  const size_t blocks = nblk * sizeof(struct amx_pack_block);
  const size_t pairs = (nblk + 1) / 2 * sizeof(struct amx_pack_pair);
  return ((blocks > pairs ? blocks : pairs) + 63) & ~(size_t)63;
}

/* Packs one group of activations the way amx_matmul reads it (nothing for a group it leaves
 * to VNNI). */
T_AMX static void amx_q8_pack(const void *xv, size_t x_stride, int n_in, int nb, int group,
                              void *out) {
  const int b0 = group * ENGINE_Q8_PACK_GROUP;
  const int g = nb - b0 < 16 ? nb - b0 : 16;
  if (g < ENGINE_AMX_MIN_NB) return;
  const char *xg = (const char *)xv + (size_t)b0 * x_stride;
  if (AMX_PAIR_MODE && g <= 8) amx_pack_pairs(xg, x_stride, g, n_in, 0, n_in / ENGINE_QK, out);
  else amx_pack(xg, x_stride, g, n_in, 0, n_in / ENGINE_QK, out);
}

/* The matmul: see the file comment. Activation groups of up to 16; a group of fewer than
 * ENGINE_AMX_MIN_NB and the rows past the last full tile go to the VNNI kernel. XPACK: the
 * groups packed by amx_q8_pack (the backend packs once per matmul), or NULL to pack here,
 * per chunk of ENGINE_AMX_KC blocks (the plain matmul entry). Either way the same bytes feed
 * the same tile products in the same order. */
T_AMX static ALWAYS_INLINE void amx_matmul(const int type, const void *wv, size_t row_bytes,
                                           int n_in, int row0, int row1, const void *xv,
                                           size_t x_stride, const void *xpack, int nb, float *y,
                                           size_t y_stride) {
  const engine_matmul_fn vnni = amx_vnni->matmul[type == AMX_Q8 ? ENGINE_W_Q8_0 : ENGINE_W_Q4_0];
  const char *w = wv, *x = xv;
  const int tiled_end = row0 + (row1 - row0) / AMX_ROWS * AMX_ROWS;
  const int nblk = n_in / ENGINE_QK;
  const size_t group_bytes = xpack ? amx_group_bytes(n_in) : 0;
  union {
    struct amx_pack_block blocks[ENGINE_AMX_KC];
    struct amx_pack_pair pairs[ENGINE_AMX_KC / 2];
  } pk __attribute__((aligned(64)));
  const struct amx_tilecfg *loaded = NULL;
  for (int b0 = 0; b0 < nb;) {
    const int g = nb - b0 < 16 ? nb - b0 : 16;
    const char *xg = x + (size_t)b0 * x_stride;
    float *yg = y + (size_t)b0 * y_stride;
    if (g < ENGINE_AMX_MIN_NB || tiled_end == row0) {
      vnni(w, row_bytes, n_in, row0, row1, xg, x_stride, g, yg, y_stride);
      b0 += g;
      continue;
    }
    const int pair = AMX_PAIR_MODE && g <= 8;
    const struct amx_tilecfg *cfg = pair ? &amx_cfg_pair : g <= 8 ? &amx_cfg8 : &amx_cfg16;
    if (cfg != loaded) _tile_loadconfig(cfg), loaded = cfg;
    const char *gpack = xpack ? (const char *)xpack + (size_t)(b0 / 16) * group_bytes : NULL;
    for (int k0 = 0; k0 < nblk; k0 += ENGINE_AMX_KC) {
      const int k1 = nblk - k0 < ENGINE_AMX_KC ? nblk : k0 + ENGINE_AMX_KC;
      const struct amx_pack_pair *pp = pk.pairs;
      const struct amx_pack_block *pb = pk.blocks;
      if (gpack) {
        pp = (const struct amx_pack_pair *)gpack + k0 / 2;
        pb = (const struct amx_pack_block *)gpack + k0;
      } else {
        if (pair) amx_pack_pairs(xg, x_stride, g, n_in, k0, k1, pk.pairs);
        else amx_pack(xg, x_stride, g, n_in, k0, k1, pk.blocks);
        AMX_MEMORY_BARRIER();
      }
      for (int j = row0; j < tiled_end; j += AMX_ROWS) {
        const char *wj = w + (size_t)j * row_bytes;
        if (pair)
          amx_rows_pair(type, wj, row_bytes, k0, k1, pp, g, yg + j, y_stride, k0 > 0);
        else if (g <= 8)
          amx_rows(type, 8, wj, row_bytes, k0, k1, pb, g, yg + j, y_stride, k0 > 0);
        else
          amx_rows(type, 16, wj, row_bytes, k0, k1, pb, g, yg + j, y_stride, k0 > 0);
      }
    }
    if (tiled_end < row1) vnni(w, row_bytes, n_in, tiled_end, row1, xg, x_stride, g, yg, y_stride);
    b0 += g;
  }
  if (loaded) _tile_release();
}

T_AMX static void matmul_q8_0_amx(const void *w, size_t row_bytes, int n_in, int row0, int row1,
                                  const void *x, size_t x_stride, int nb, float *y,
                                  size_t y_stride) {
  amx_matmul(AMX_Q8, w, row_bytes, n_in, row0, row1, x, x_stride, NULL, nb, y, y_stride);
}

T_AMX static void matmul_q4_0_amx(const void *w, size_t row_bytes, int n_in, int row0, int row1,
                                  const void *x, size_t x_stride, int nb, float *y,
                                  size_t y_stride) {
  amx_matmul(AMX_Q4, w, row_bytes, n_in, row0, row1, x, x_stride, NULL, nb, y, y_stride);
}

T_AMX static void matmul_q8_0_amx_packed(const void *w, size_t row_bytes, int n_in, int row0,
                                         int row1, const void *x, size_t x_stride,
                                         const void *xpack, int nb, float *y, size_t y_stride) {
  amx_matmul(AMX_Q8, w, row_bytes, n_in, row0, row1, x, x_stride, xpack, nb, y, y_stride);
}

T_AMX static void matmul_q4_0_amx_packed(const void *w, size_t row_bytes, int n_in, int row0,
                                         int row1, const void *x, size_t x_stride,
                                         const void *xpack, int nb, float *y, size_t y_stride) {
  amx_matmul(AMX_Q4, w, row_bytes, n_in, row0, row1, x, x_stride, xpack, nb, y, y_stride);
}

/* ---- probe: CPU, VNNI table, kernel permission ---- */

static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static struct engine_cpu_kernels amx_kernels;
static const struct engine_cpu_kernels *amx_table;
static const char *amx_reason = "not probed";

static void amx_probe(void) {
  unsigned eax, ebx, ecx, edx;
  /* CPUID.(EAX=7, ECX=0):EDX bit 24 = AMX-TILE, bit 25 = AMX-INT8 */
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || !(edx & (1u << 24)) ||
      !(edx & (1u << 25))) {
    amx_reason = "CPU has no AMX-TILE/AMX-INT8";
    return;
  }
  amx_vnni = engine_cpu_kernels_avx512_vnni();
  if (!amx_vnni) {
    amx_reason = "CPU has AMX but not the AVX-512 VNNI/VBMI table it falls back to";
    return;
  }
  /* Once per process; an old kernel (< 5.16) or one without AMX support says no. */
  if (syscall(SYS_arch_prctl, AMX_ARCH_REQ_XCOMP_PERM, AMX_XFEATURE_XTILEDATA) != 0) {
    amx_reason = "the kernel refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM)";
    return;
  }
  amx_kernels = *amx_vnni;
  amx_kernels.isa_name = "amx";
  amx_kernels.matmul[ENGINE_W_Q8_0] = matmul_q8_0_amx;
  amx_kernels.matmul[ENGINE_W_Q4_0] = matmul_q4_0_amx;
  amx_kernels.q8_pack_group_bytes = amx_group_bytes;
  amx_kernels.q8_pack = amx_q8_pack;
  amx_kernels.matmul_packed[ENGINE_W_Q8_0] = matmul_q8_0_amx_packed;
  amx_kernels.matmul_packed[ENGINE_W_Q4_0] = matmul_q4_0_amx_packed;
  amx_pp_idx_init();
  amx_table = &amx_kernels;
  amx_reason = NULL;
}

const struct engine_cpu_kernels *engine_cpu_kernels_amx(void) {
  pthread_once(&amx_once, amx_probe);
  return amx_table;
}

const char *engine_cpu_amx_unavailable_reason(void) {
  pthread_once(&amx_once, amx_probe);
  return amx_reason;
}

#else /* not x86-64 */

const struct engine_cpu_kernels *engine_cpu_kernels_amx(void) { return NULL; }
const char *engine_cpu_amx_unavailable_reason(void) { return "not an x86-64 build"; }

#endif
