/*
 * test_cuda_ops.c — every op of the CUDA backend against the CPU backend (exact f32
 * activations) on the same random inputs, compared by normalized mean squared error with a
 * tolerance per op and weight type (ggml's test-backend-ops method). Covers each matmul
 * path (mat-vec n ≤ 8, cuBLAS for float types, the tiled quantized kernel, rows of 172 that
 * only cuBLAS takes), get_rows, rmsnorm, rope at large positions, silu_mul, add, store_kv +
 * paged attention over two sequences (prefill chunk, then decode and a second chunk), and
 * the unhealthy path (a refused launch is reported by sync with its location).
 * Every test SKIPs, with the reason, when no CUDA device is present.
 */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "cuda_test_util.h"
#include "kv.h"
#include "realm/error.h"
#include "realm_test.h"

static char skip_why[256];

#define REQUIRE_DEVICE()                                                \
  do {                                                                  \
    if (engine_backend_cuda_devices(skip_why, sizeof skip_why) <= 0) SKIP(skip_why); \
  } while (0)

#define MAX_TOK 64
#define MAX_IN 512

struct pair {
  struct engine_backend cpu, gpu;
};

static int pair_open(struct pair *p) {
  char err[256];
  memset(p, 0, sizeof *p);
  struct engine_cpu_options co = {.n_threads = 1, .isa = -1, .max_tokens = MAX_TOK,
                                  .max_in = MAX_IN, .max_ctx = 256, .max_head_dim = 128,
                                  .f32_activations = 1};
  int rc = engine_backend_cpu_create(&co, &p->cpu, err, sizeof err);
  if (rc < 0) {
    printf("# %s\n", err);
    return rc;
  }
  struct engine_cuda_options go = {.device = 0, .max_tokens = MAX_TOK, .max_in = MAX_IN,
                                   .max_out = MAX_IN, .max_ctx = 256, .max_head_dim = 128};
  rc = engine_backend_cuda_create(&go, &p->gpu, err, sizeof err);
  if (rc < 0) {
    printf("# %s\n", err);
    p->cpu.ops->destroy(p->cpu.ctx);
  }
  return rc;
}

static void pair_close(struct pair *p) {
  p->gpu.ops->destroy(p->gpu.ctx);
  p->cpu.ops->destroy(p->cpu.ctx);
}

/* Device copy of N bytes at HOST. */
static void *up(struct pair *p, const void *host, size_t n) {
  void *d = p->gpu.ops->alloc(p->gpu.ctx, n);
  if (d) p->gpu.ops->copy(p->gpu.ctx, d, host, n, ENGINE_COPY_H2D);
  return d;
}

static void down(struct pair *p, void *host, const void *dev, size_t n) {
  p->gpu.ops->copy(p->gpu.ctx, host, dev, n, ENGINE_COPY_D2H);
}

static int gsync(struct pair *p) {
  char err[512];
  int rc = p->gpu.ops->sync(p->gpu.ctx, err, sizeof err);
  if (rc < 0) printf("# %s\n", err);
  return rc;
}

#define CHECK_NMSE(got, want, n, tol, what)                                       \
  do {                                                                            \
    double e_ = nmse((got), (want), (n));                                         \
    if (!(e_ <= (tol))) printf("# %s: nmse %.3g > %.3g\n", (what), e_, (double)(tol)); \
    CHECK(e_ <= (tol));                                                           \
  } while (0)

/* NMSE bounds: f32 paths differ only in summation order; F16/BF16 through cuBLAS round
 * the activations to the weight type (2^-11 / 2^-8 relative). */
static const double matmul_tol[ENGINE_W_COUNT] = {1e-9, 1e-6, 5e-5, 1e-9, 1e-9};

static void check_matmul(struct pair *p, enum engine_wtype t, uint32_t n_in, uint32_t n_out,
                         uint32_t n_tok) {
  char err[256], what[96];
  struct engine_weight w, dw;
  synth_weight(t, n_in, n_out, &w);
  float *x = malloc(sizeof(float) * n_tok * n_in);
  float *yc = malloc(sizeof(float) * n_tok * n_out), *yg = malloc(sizeof(float) * n_tok * n_out);
  rnd_fill(x, (size_t)n_tok * n_in, 1.0f);
  p->cpu.ops->matmul(p->cpu.ctx, &w, x, n_tok, yc);
  CHECK_EQ_INT(p->gpu.ops->prepare_weight(p->gpu.ctx, &w, &dw, err, sizeof err), 0);
  float *dx = up(p, x, sizeof(float) * n_tok * n_in);
  float *dy = p->gpu.ops->alloc(p->gpu.ctx, sizeof(float) * n_tok * n_out);
  CHECK(dx && dy);
  p->gpu.ops->matmul(p->gpu.ctx, &dw, dx, n_tok, dy);
  down(p, yg, dy, sizeof(float) * n_tok * n_out);
  CHECK_EQ_INT(gsync(p), 0);
  snprintf(what, sizeof what, "matmul %s %ux%u n_tok %u", wtype_names[t], n_out, n_in, n_tok);
  CHECK_NMSE(yg, yc, (size_t)n_tok * n_out, matmul_tol[t], what);
  p->gpu.ops->free(p->gpu.ctx, dx);
  p->gpu.ops->free(p->gpu.ctx, dy);
  p->gpu.ops->release_weight(p->gpu.ctx, &dw);
  free(x);
  free(yc);
  free(yg);
  free((void *)w.data);
}

TEST(matmul_all_types_all_paths) {
  REQUIRE_DEVICE();
  struct pair p;
  CHECK_EQ_INT(pair_open(&p), 0);
  static const uint32_t toks[] = {1, 3, 8, 9, 64};
  for (int t = 0; t < ENGINE_W_COUNT; t++)
    for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++)
      check_matmul(&p, (enum engine_wtype)t, 256, 200, toks[i]);
  /* Rows of 172 (not a multiple of 8): the float types go to cuBLAS at every batch size. */
  check_matmul(&p, ENGINE_W_F32, 172, 64, 1);
  check_matmul(&p, ENGINE_W_F32, 172, 64, 20);
  check_matmul(&p, ENGINE_W_F16, 172, 64, 2);
  pair_close(&p);
}

TEST(get_rows_all_types) {
  REQUIRE_DEVICE();
  struct pair p;
  CHECK_EQ_INT(pair_open(&p), 0);
  char err[256];
  for (int t = 0; t < ENGINE_W_COUNT; t++) {
    struct engine_weight w, dw;
    synth_weight((enum engine_wtype)t, 128, 50, &w);
    int32_t ids[5] = {0, 49, 7, 7, 23};
    float yc[5 * 128], yg[5 * 128];
    p.cpu.ops->get_rows(p.cpu.ctx, &w, ids, 5, yc);
    CHECK_EQ_INT(p.gpu.ops->prepare_weight(p.gpu.ctx, &w, &dw, err, sizeof err), 0);
    int32_t *dids = up(&p, ids, sizeof ids);
    float *dy = p.gpu.ops->alloc(p.gpu.ctx, sizeof yg);
    p.gpu.ops->get_rows(p.gpu.ctx, &dw, dids, 5, dy);
    down(&p, yg, dy, sizeof yg);
    CHECK_EQ_INT(gsync(&p), 0);
    CHECK_NMSE(yg, yc, 5 * 128, 1e-14, wtype_names[t]);
    p.gpu.ops->free(p.gpu.ctx, dids);
    p.gpu.ops->free(p.gpu.ctx, dy);
    p.gpu.ops->release_weight(p.gpu.ctx, &dw);
    free((void *)w.data);
  }
  pair_close(&p);
}

TEST(rmsnorm_rope_silu_add) {
  REQUIRE_DEVICE();
  struct pair p;
  CHECK_EQ_INT(pair_open(&p), 0);
  enum { T = 6, H = 4, HD = 64, N = T * H * HD };
  static float x[N], g[N], yc[N], yg[N], u[N];
  rnd_fill(x, N, 3.0f);
  rnd_fill(g, N, 1.0f);
  rnd_fill(u, N, 2.0f);
  float *dx = up(&p, x, sizeof x), *dg = up(&p, g, sizeof g), *du = up(&p, u, sizeof u);
  float *dy = p.gpu.ops->alloc(p.gpu.ctx, sizeof yg);
  /* rmsnorm over rows of 256 (T rows... of H*HD) */
  p.cpu.ops->rmsnorm(p.cpu.ctx, x, g, T, H * HD, 1e-5f, yc);
  p.gpu.ops->rmsnorm(p.gpu.ctx, dx, dg, T, H * HD, 1e-5f, dy);
  down(&p, yg, dy, sizeof yg);
  CHECK_EQ_INT(gsync(&p), 0);
  CHECK_NMSE(yg, yc, N, 1e-10, "rmsnorm");
  /* rope, in place, at positions up to the thousands, rotating 48 of 64 dims */
  uint32_t pos[T] = {0, 1, 17, 511, 2047, 4000};
  uint32_t *dpos = up(&p, pos, sizeof pos);
  memcpy(yc, x, sizeof x);
  p.cpu.ops->rope(p.cpu.ctx, yc, T, H, HD, 48, 10000.0f, pos);
  p.gpu.ops->copy(p.gpu.ctx, dy, dx, sizeof x, ENGINE_COPY_D2D);
  p.gpu.ops->rope(p.gpu.ctx, dy, T, H, HD, 48, 10000.0f, dpos);
  down(&p, yg, dy, sizeof yg);
  CHECK_EQ_INT(gsync(&p), 0);
  CHECK_NMSE(yg, yc, N, 1e-10, "rope");
  /* silu_mul then add */
  memcpy(yc, x, sizeof x);
  p.cpu.ops->silu_mul(p.cpu.ctx, yc, u, N);
  p.cpu.ops->add(p.cpu.ctx, yc, g, N);
  p.gpu.ops->copy(p.gpu.ctx, dy, dx, sizeof x, ENGINE_COPY_D2D);
  p.gpu.ops->silu_mul(p.gpu.ctx, dy, du, N);
  p.gpu.ops->add(p.gpu.ctx, dy, dg, N);
  down(&p, yg, dy, sizeof yg);
  CHECK_EQ_INT(gsync(&p), 0);
  CHECK_NMSE(yg, yc, N, 1e-10, "silu_mul+add");
  void *bufs[] = {dx, dg, du, dy, dpos};
  for (int i = 0; i < 5; i++) p.gpu.ops->free(p.gpu.ctx, bufs[i]);
  pair_close(&p);
}

/* One step on both backends: store this step's K/V for LAYER, then attention. */
struct attn_case {
  uint32_t n_tok;
  uint32_t seq_of[MAX_TOK]; /* 0 or 1 */
  uint32_t pos[MAX_TOK];
};

enum { NL = 2, NH = 8, NKV = 2, HD = 64, KVD = NKV * HD, BT = 16, STRIDE = 8 };

static void attn_step(struct pair *p, struct kv_cache *kc, struct kv_cache *kg,
                      struct kv_seq *const sc[2], struct kv_seq *const sg[2],
                      const struct attn_case *ac, uint32_t layer, double *ret_nmse) {
  uint32_t n = ac->n_tok;
  float *q = malloc(sizeof(float) * n * NH * HD), *k = malloc(sizeof(float) * n * KVD);
  float *v = malloc(sizeof(float) * n * KVD);
  float *oc = malloc(sizeof(float) * n * NH * HD), *og = malloc(sizeof(float) * n * NH * HD);
  rnd_fill(q, (size_t)n * NH * HD, 1.0f);
  rnd_fill(k, (size_t)n * KVD, 1.0f);
  rnd_fill(v, (size_t)n * KVD, 1.0f);
  struct kv_seq *tok_seq[MAX_TOK];
  uint32_t maxlen = 0, table[2 * STRIDE] = {0};
  for (uint32_t t = 0; t < n; t++) {
    tok_seq[t] = sc[ac->seq_of[t]];
    if (ac->pos[t] + 1 > maxlen) maxlen = ac->pos[t] + 1;
  }
  for (int s = 0; s < 2; s++) {
    uint32_t nb;
    const uint32_t *b = kv_seq_blocks(sg[s], &nb);
    memcpy(table + s * STRIDE, b, sizeof(uint32_t) * nb);
  }
  struct engine_attn_args a = {.kv = kc, .layer = layer, .n_tok = n, .n_head = NH,
                               .n_head_kv = NKV, .head_dim = HD, .tok_seq = tok_seq,
                               .tok_pos = ac->pos, .q = q, .k = k, .v = v, .out = oc,
                               .max_ctx_len = maxlen};
  p->cpu.ops->store_kv(p->cpu.ctx, &a);
  p->cpu.ops->attention(p->cpu.ctx, &a);
  struct engine_attn_args b = a;
  b.kv = kg;
  b.tok_seq = NULL;
  b.tok_pos = up(p, ac->pos, sizeof(uint32_t) * n);
  b.tok_seq_index = up(p, ac->seq_of, sizeof(uint32_t) * n);
  b.block_table = up(p, table, sizeof table);
  b.n_seqs = 2;
  b.block_table_stride = STRIDE;
  b.q = up(p, q, sizeof(float) * n * NH * HD);
  b.k = up(p, k, sizeof(float) * n * KVD);
  b.v = up(p, v, sizeof(float) * n * KVD);
  b.out = p->gpu.ops->alloc(p->gpu.ctx, sizeof(float) * n * NH * HD);
  p->gpu.ops->store_kv(p->gpu.ctx, &b);
  p->gpu.ops->attention(p->gpu.ctx, &b);
  down(p, og, b.out, sizeof(float) * n * NH * HD);
  *ret_nmse = gsync(p) == 0 ? nmse(og, oc, (size_t)n * NH * HD) : 1e30;
  void *bufs[] = {(void *)b.tok_pos, (void *)b.tok_seq_index, (void *)b.block_table,
                  (void *)b.q, (void *)b.k, (void *)b.v, b.out};
  for (int i = 0; i < 7; i++) p->gpu.ops->free(p->gpu.ctx, bufs[i]);
  free(q);
  free(k);
  free(v);
  free(oc);
  free(og);
}

TEST(store_kv_and_paged_attention_prefill_then_decode) {
  REQUIRE_DEVICE();
  struct pair p;
  CHECK_EQ_INT(pair_open(&p), 0);
  char err[256];
  struct kv_cache_config cfg = {.n_layer = NL, .kv_dim = KVD, .block_tokens = BT,
                                .n_blocks = 16, .max_seq_tokens = STRIDE * BT};
  struct kv_cache *kc, *kg;
  CHECK_EQ_INT(kv_cache_create(&cfg, &kc, err, sizeof err), 0);
  cfg.storage = p.gpu.ops->kv_storage(p.gpu.ctx);
  CHECK_EQ_INT(kv_cache_create(&cfg, &kg, err, sizeof err), 0);
  struct kv_seq *sc[2], *sg[2];
  for (int s = 0; s < 2; s++) {
    CHECK_EQ_INT(kv_seq_open(kc, NULL, &sc[s]), 0);
    CHECK_EQ_INT(kv_seq_open(kg, NULL, &sg[s]), 0);
  }
  /* Step 1: a 40-token prefill chunk of sequence 0 and 5 tokens of sequence 1 (so block
   * tables interleave); step 2: a 7-token chunk of sequence 0 and one decode token of
   * sequence 1. Both layers. */
  struct attn_case s1 = {.n_tok = 45}, s2 = {.n_tok = 8};
  for (uint32_t t = 0; t < 40; t++) s1.pos[t] = t;
  for (uint32_t t = 40; t < 45; t++) {
    s1.seq_of[t] = 1;
    s1.pos[t] = t - 40;
  }
  for (uint32_t t = 0; t < 7; t++) s2.pos[t] = 40 + t;
  s2.seq_of[7] = 1;
  s2.pos[7] = 5;
  struct kv_cache *caches[2] = {kc, kg};
  for (int c = 0; c < 2; c++) {
    struct kv_seq **ss = c ? sg : sc;
    CHECK_EQ_INT(kv_seq_reserve(caches[c], ss[1], 5), 0);
    CHECK_EQ_INT(kv_seq_reserve(caches[c], ss[0], 40), 0);
  }
  for (uint32_t l = 0; l < NL; l++) {
    double e;
    attn_step(&p, kc, kg, sc, sg, &s1, l, &e);
    if (!(e <= 1e-9)) printf("# step 1 layer %u: nmse %.3g\n", l, e);
    CHECK(e <= 1e-9);
  }
  for (int c = 0; c < 2; c++) {
    struct kv_seq **ss = c ? sg : sc;
    CHECK_EQ_INT(kv_seq_reserve(caches[c], ss[0], 47), 0);
    CHECK_EQ_INT(kv_seq_reserve(caches[c], ss[1], 6), 0);
  }
  for (uint32_t l = 0; l < NL; l++) {
    double e;
    attn_step(&p, kc, kg, sc, sg, &s2, l, &e);
    if (!(e <= 1e-9)) printf("# step 2 layer %u: nmse %.3g\n", l, e);
    CHECK(e <= 1e-9);
  }
  for (int s = 0; s < 2; s++) {
    kv_seq_close(kc, sc[s]);
    kv_seq_close(kg, sg[s]);
  }
  kv_cache_destroy(kc);
  kv_cache_destroy(kg);
  pair_close(&p);
}

TEST(failed_launch_marks_backend_unhealthy) {
  REQUIRE_DEVICE();
  struct pair p;
  CHECK_EQ_INT(pair_open(&p), 0);
  char err[512] = "";
  struct engine_weight w, dw;
  synth_weight(ENGINE_W_Q8_0, 64, 8, &w);
  CHECK_EQ_INT(p.gpu.ops->prepare_weight(p.gpu.ctx, &w, &dw, err, sizeof err), 0);
  float *dx = p.gpu.ops->alloc(p.gpu.ctx, 4096), *dy = p.gpu.ops->alloc(p.gpu.ctx, 4096);
  CHECK_EQ_INT(p.gpu.ops->sync(p.gpu.ctx, err, sizeof err), 0);
  /* x not 16-byte aligned: the mat-vec entry refuses the launch */
  p.gpu.ops->matmul(p.gpu.ctx, &dw, dx + 1, 1, dy);
  CHECK_EQ_INT(p.gpu.ops->sync(p.gpu.ctx, err, sizeof err), REALM_E_UNAVAILABLE);
  printf("# %s\n", err);
  CHECK_STR_CONTAINS(err, "cudaErrorInvalidValue");
  CHECK_STR_CONTAINS(err, "cuda_op_matmul_vec");
  CHECK_STR_CONTAINS(err, "backend_cuda.c");
  /* and it stays unhealthy */
  p.gpu.ops->add(p.gpu.ctx, dy, dy, 4);
  CHECK_EQ_INT(p.gpu.ops->sync(p.gpu.ctx, err, sizeof err), REALM_E_UNAVAILABLE);
  p.gpu.ops->release_weight(p.gpu.ctx, &dw);
  p.gpu.ops->free(p.gpu.ctx, dx);
  p.gpu.ops->free(p.gpu.ctx, dy);
  free((void *)w.data);
  pair_close(&p);
}
