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
 * NP = 8 (batches of 4..8 activations) or 16 (9..16). Tiles 0/1 (A), 2/3 (B), 4/5 (C)
 * alternate between even and odd blocks so the tile unit never waits on a tile that the
 * previous block still reads.
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
  __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,"  \
                        "f16c")))
#define ALWAYS_INLINE __attribute__((always_inline)) inline

/* Linux's arch_prctl request for a dynamically enabled xstate component (asm/prctl.h) and
 * the AMX tile data component number (XFEATURE_XTILEDATA). */
#define AMX_ARCH_REQ_XCOMP_PERM 0x1023
#define AMX_XFEATURE_XTILEDATA 18

#define AMX_ROWS 16     /* weight rows per tile (the tile maximum) */
#define ENGINE_AMX_KC 64 /* blocks per packed activation chunk: 40 KiB of stack */
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
   .colsb = {32, 32, (NP) * 4, (NP) * 4, (NP) * 4, (NP) * 4},                               \
   .rows = {16, 16, 8, 8, 16, 16}}
static const struct amx_tilecfg amx_cfg8 = AMX_CFG(8), amx_cfg16 = AMX_CFG(16);

/* One block of up to 16 activations in tile-B layout, with their scales and Q4_0 bias. */
struct amx_pack_block {
  int8_t b[8][64];  /* b[i][4n..4n+3] = elements 4i..4i+3 of activation n (zero past nb) */
  float dx[16];     /* d of activation n's block */
  int32_t c8[16];   /* −8·Σq of activation n's block (the Q4_0 bias, tile C's start) */
};

/* The compiler does not know that tileloadd reads memory (its intrinsic is an asm without a
 * memory clobber): stores into a buffer that only a tile load reads must be ordered first. */
#define AMX_MEMORY_BARRIER() __asm__ volatile("" ::: "memory")

/* Repacks blocks [k0, k1) of NB q8 activation rows into PK (see struct amx_pack_block). */
T_AMX static void amx_pack(const char *x, size_t x_stride, int nb, int n_in, int k0, int k1,
                           struct amx_pack_block *pk) {
  for (int k = k0; k < k1; k++) {
    struct amx_pack_block *p = &pk[k - k0];
    for (int n = 0; n < 16; n++) {
      if (n >= nb) {
        for (int i = 0; i < 8; i++) memset(&p->b[i][4 * n], 0, 4);
        p->dx[n] = 0.0f;
        p->c8[n] = 0;
        continue;
      }
      const char *xr = x + (size_t)n * x_stride;
      const int8_t *qs = engine_q8_act_qs(xr);
      /* the 4 elements of a group are contiguous in the activation row (engine_q8_act_pos) */
      for (int i = 0; i < 8; i++) memcpy(&p->b[i][4 * n], qs + engine_q8_act_pos(k * 32 + 4 * i), 4);
      p->dx[n] = engine_q8_act_d(xr, n_in)[k];
      p->c8[n] = engine_q8_act_c8(xr, n_in)[k];
    }
  }
}

enum { AMX_Q8 = 0, AMX_Q4 = 1 };

/* The 16 rows' fp16 block scales (one gather: 4 bytes at each row's block, of which the low
 * 2 are d; never past the block) as floats. */
T_AMX static ALWAYS_INLINE __m512 amx_row_scales(const char *blk0, __m512i row_offsets) {
  __m512i g = _mm512_i32gather_epi32(row_offsets, blk0, 1);
  return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
}

/* Q4_0: the 16 rows' nibbles of block BLK0 (row stride ROW_BYTES) to 16 × 32 bytes 0..15. */
T_AMX static ALWAYS_INLINE void amx_unpack_q4(const char *blk0, size_t row_bytes, uint8_t *out) {
  const __m256i shift = _mm256_setr_epi64x(0, 0, 4, 4), mask = _mm256_set1_epi8(0x0f);
  _Pragma("GCC unroll 16") for (int r = 0; r < AMX_ROWS; r++) {
    __m256i v = _mm256_broadcastsi128_si256(
        _mm_loadu_si128((const __m128i *)(blk0 + (size_t)r * row_bytes + 2)));
    v = _mm256_and_si256(_mm256_srlv_epi64(v, shift), mask);
    _mm256_store_si256((__m256i *)(out + 32 * r), v);
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
      _tile_loadd(TA, abuf[(k) & 1], 32);                                                    \
      _tile_loadd(TC, p->c8, 0);                                                             \
    }                                                                                        \
    _tile_loadd(TB, p->b, 64);                                                               \
    if (type == AMX_Q8) _tile_dpbssd(TC, TA, TB);                                            \
    else _tile_dpbusd(TC, TA, TB);                                                           \
    _tile_stored(TC, cbuf[(k) & 3], NP * 4);                                                 \
    if (type == AMX_Q4 && (k) + 1 < k1) {                                                    \
      AMX_MEMORY_BARRIER();                                                                  \
      amx_unpack_q4(blk0 + bsz, row_bytes, abuf[((k) + 1) & 1]);                             \
      AMX_MEMORY_BARRIER();                                                                  \
    }                                                                                        \
    _mm512_store_ps(dw[(k) & 3], amx_row_scales(blk0, row_offsets));                         \
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
  uint8_t abuf[2][16 * 32] __attribute__((aligned(64)));
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
    amx_unpack_q4(w + (size_t)k0 * bsz, row_bytes, abuf[0]);
    AMX_MEMORY_BARRIER();
  }
  for (int k = k0; k < k1 + AMX_LAG; k++) {
    if (k < k1) {
      if ((k - k0) & 1) AMX_BLOCK(1, 3, 5, k);
      else AMX_BLOCK(0, 2, 4, k);
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

static const struct engine_cpu_kernels *amx_vnni; /* fallback table, set by the probe */

/* The matmul: see the file comment. Activation groups of up to 16; a group of fewer than
 * ENGINE_AMX_MIN_NB and the rows past the last full tile go to the VNNI kernel. */
T_AMX static ALWAYS_INLINE void amx_matmul(const int type, const void *wv, size_t row_bytes,
                                           int n_in, int row0, int row1, const void *xv,
                                           size_t x_stride, int nb, float *y,
                                           size_t y_stride) {
  const engine_matmul_fn vnni = amx_vnni->matmul[type == AMX_Q8 ? ENGINE_W_Q8_0 : ENGINE_W_Q4_0];
  const char *w = wv, *x = xv;
  const int tiled_end = row0 + (row1 - row0) / AMX_ROWS * AMX_ROWS;
  const int nblk = n_in / ENGINE_QK;
  struct amx_pack_block pk[ENGINE_AMX_KC] __attribute__((aligned(64)));
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
    const struct amx_tilecfg *cfg = g <= 8 ? &amx_cfg8 : &amx_cfg16;
    if (cfg != loaded) _tile_loadconfig(cfg), loaded = cfg;
    for (int k0 = 0; k0 < nblk; k0 += ENGINE_AMX_KC) {
      const int k1 = nblk - k0 < ENGINE_AMX_KC ? nblk : k0 + ENGINE_AMX_KC;
      amx_pack(xg, x_stride, g, n_in, k0, k1, pk);
      AMX_MEMORY_BARRIER();
      for (int j = row0; j < tiled_end; j += AMX_ROWS) {
        const char *wj = w + (size_t)j * row_bytes;
        if (g <= 8) amx_rows(type, 8, wj, row_bytes, k0, k1, pk, g, yg + j, y_stride, k0 > 0);
        else amx_rows(type, 16, wj, row_bytes, k0, k1, pk, g, yg + j, y_stride, k0 > 0);
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
  amx_matmul(AMX_Q8, w, row_bytes, n_in, row0, row1, x, x_stride, nb, y, y_stride);
}

T_AMX static void matmul_q4_0_amx(const void *w, size_t row_bytes, int n_in, int row0, int row1,
                                  const void *x, size_t x_stride, int nb, float *y,
                                  size_t y_stride) {
  amx_matmul(AMX_Q4, w, row_bytes, n_in, row0, row1, x, x_stride, nb, y, y_stride);
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
