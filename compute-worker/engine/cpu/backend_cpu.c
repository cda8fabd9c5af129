/*
 * backend_cpu.c — the CPU backend: the ops of backend.h on host memory, parallel over the
 * engine thread pool, matmuls through the kernel table picked at run time.
 *
 * Matmul work split: rows of the weight go to threads in chunks; inside a chunk the kernel
 * runs each row against all tokens of a tile (ENGINE_TOKEN_TILE tokens), so for decode
 * batches (a handful of tokens) every weight byte is read from memory exactly once per step.
 * For long prefill chunks the token tiles keep the activations in L2 while the chunk's rows
 * are revisited from cache.
 * Everything a thread computes depends only on its indices, never on the split, so results
 * are bit-identical for any number of threads (a test checks 1 vs 2).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../backend.h"
#include "../threadpool.h"
#include "kernels.h"
#include "realm/error.h"

#define ENGINE_TOKEN_TILE 32
#define ENGINE_MIN_CHUNK_MACS 65536

struct cpu_ctx {
  struct engine_threadpool *pool;
  const struct engine_cpu_kernels *k;
  int n_threads;
  int f32_activations; /* use k->matmul_f32act for every type */
  uint32_t max_tokens, max_in;
  uint8_t *xq;              /* (max_tokens) q8 activation rows of up to max_in elements */
  uint8_t *xpack;           /* the table's q8_pack of xq (NULL when the table has none) */
  float *scratch;           /* (n_threads, scratch_floats): RoPE's per-thread cos/sin */
  float *attn_scores;       /* (n_threads, ATTN_GROUP_MAX, attn_ctx): one item's scores */
  size_t attn_ctx;          /* positions a sequence can attend to (max_ctx) */
  size_t scratch_floats;
};

static bool cpu_supports_op(void *ctx, enum engine_op op, enum engine_wtype type) {
  (void)ctx;
  if (op == ENGINE_OP_MATMUL || op == ENGINE_OP_GET_ROWS) return type < ENGINE_W_COUNT;
  return op < ENGINE_OP_COUNT;
}

/* ---- get_rows ---- */

static void cpu_get_rows(void *ctx, const struct engine_weight *w, const int32_t *ids,
                         uint32_t n, float *out) {
  (void)ctx;
  for (uint32_t i = 0; i < n; i++) engine_weight_get_row(w, (uint32_t)ids[i], out + (size_t)i * w->n_in);
}

/* ---- matmul ---- */

struct matmul_job {
  const struct cpu_ctx *c;
  const struct engine_weight *w;
  const void *x;
  size_t x_stride;
  const uint8_t *xpack; /* packed groups of x, or NULL */
  size_t group_bytes;   /* bytes per packed group */
  uint32_t n_tok;
  float *y;
};

static void matmul_task(void *arg, int64_t begin, int64_t end, int thread) {
  (void)thread;
  const struct matmul_job *j = arg;
  engine_matmul_fn fn = j->c->f32_activations ? j->c->k->matmul_f32act[j->w->type]
                                               : j->c->k->matmul[j->w->type];
  _Static_assert(ENGINE_TOKEN_TILE % ENGINE_Q8_PACK_GROUP == 0, "tiles start on a packed group");
  for (uint32_t t0 = 0; t0 < j->n_tok; t0 += ENGINE_TOKEN_TILE) {
    uint32_t nt = j->n_tok - t0 < ENGINE_TOKEN_TILE ? j->n_tok - t0 : ENGINE_TOKEN_TILE;
    if (j->xpack) {
      j->c->k->matmul_packed[j->w->type](
          j->w->data, j->w->row_bytes, (int)j->w->n_in, (int)begin, (int)end,
          (const char *)j->x + (size_t)t0 * j->x_stride, j->x_stride,
          j->xpack + (size_t)(t0 / ENGINE_Q8_PACK_GROUP) * j->group_bytes, (int)nt,
          j->y + (size_t)t0 * j->w->n_out, j->w->n_out);
      continue;
    }
    fn(j->w->data, j->w->row_bytes, (int)j->w->n_in, (int)begin, (int)end,
       (const char *)j->x + (size_t)t0 * j->x_stride, j->x_stride, (int)nt,
       j->y + (size_t)t0 * j->w->n_out, j->w->n_out);
  }
}

struct quant_job {
  const struct engine_cpu_kernels *k;
  const float *x;
  uint8_t *xq;
  uint32_t n_in;
};

static void quant_task(void *arg, int64_t begin, int64_t end, int thread) {
  (void)thread;
  const struct quant_job *q = arg;
  for (int64_t t = begin; t < end; t++)
    q->k->quantize_q8_act(q->x + (size_t)t * q->n_in, (int)q->n_in,
                          q->xq + (size_t)t * engine_q8_act_row_bytes((int)q->n_in));
}

struct pack_job {
  const struct engine_cpu_kernels *k;
  const uint8_t *xq;
  size_t x_stride, group_bytes;
  uint8_t *xpack;
  uint32_t n_in, n_tok;
};

static void pack_task(void *arg, int64_t begin, int64_t end, int thread) {
  (void)thread;
  const struct pack_job *p = arg;
  for (int64_t g = begin; g < end; g++)
    p->k->q8_pack(p->xq, p->x_stride, (int)p->n_in, (int)p->n_tok, (int)g,
                  p->xpack + (size_t)g * p->group_bytes);
}

static void cpu_matmul(void *ctx, const struct engine_weight *w, const float *x, uint32_t n_tok,
                       float *y) {
  struct cpu_ctx *c = ctx;
  struct matmul_job j = {.c = c, .w = w, .x = x, .x_stride = sizeof(float) * w->n_in,
                         .n_tok = n_tok, .y = y};
  if (engine_wtype_wants_q8(w->type) && !c->f32_activations) {
    /* Activations quantized once per matmul, used by every row: the integer dot products
     * drift from f32 activations by the int8 rounding of x (see kernels.h). */
    struct quant_job q = {.k = c->k, .x = x, .xq = c->xq, .n_in = w->n_in};
    engine_threadpool_run(c->pool, n_tok, n_tok >= 64 ? 16 : n_tok, quant_task, &q);
    j.x = c->xq;
    j.x_stride = engine_q8_act_row_bytes((int)w->n_in);
    if (c->xpack && c->k->matmul_packed[w->type]) {
      /* The kernel's own activation layout (AMX: tile B), once per matmul rather than once
       * per row chunk; one group of 16 per item (a decode batch: one item, on this thread). */
      struct pack_job p = {.k = c->k, .xq = c->xq, .x_stride = j.x_stride,
                           .group_bytes = c->k->q8_pack_group_bytes((int)w->n_in),
                           .xpack = c->xpack, .n_in = w->n_in, .n_tok = n_tok};
      int64_t groups = (n_tok + ENGINE_Q8_PACK_GROUP - 1) / ENGINE_Q8_PACK_GROUP;
      engine_threadpool_run(c->pool, groups, 1, pack_task, &p);
      j.xpack = c->xpack;
      j.group_bytes = p.group_bytes;
    }
  }
  /* About 4 chunks per thread so a slow (shared) core does not hold the step back, but at
   * least 16 rows so per-chunk overhead stays small. */
  int64_t chunk = (int64_t)w->n_out / (4 * c->n_threads);
  if (chunk < 16) chunk = 16;
  /* Waking a worker costs microseconds (far more on a busy machine): a chunk must carry at
   * least ENGINE_MIN_CHUNK_MACS multiply-adds, so tiny matmuls run on the caller alone. */
  int64_t min_rows = ENGINE_MIN_CHUNK_MACS / ((int64_t)w->n_in * n_tok) + 1;
  if (chunk < min_rows) chunk = min_rows;
  /* Whole 16-row tiles: the AMX kernels run 16 rows per tile and leave a call's last
   * partial tile to VNNI, so with chunks on 16-row boundaries every row takes the same path
   * (same rounding) whatever the number of threads. */
  chunk = (chunk + 15) & ~(int64_t)15;
  engine_threadpool_run(c->pool, w->n_out, chunk, matmul_task, &j);
}

/* ---- rmsnorm ---- */

struct norm_job {
  const float *x, *g;
  float *y;
  uint32_t dim;
  float eps;
};

static void norm_task(void *arg, int64_t begin, int64_t end, int thread) {
  (void)thread;
  const struct norm_job *n = arg;
  for (int64_t t = begin; t < end; t++) {
    const float *x = n->x + (size_t)t * n->dim;
    float *y = n->y + (size_t)t * n->dim;
    double ss = 0.0;
    for (uint32_t i = 0; i < n->dim; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n->dim + n->eps));
    for (uint32_t i = 0; i < n->dim; i++) y[i] = x[i] * scale * n->g[i];
  }
}

static void cpu_rmsnorm(void *ctx, const float *x, const float *g, uint32_t n_tok, uint32_t dim,
                        float eps, float *y) {
  struct cpu_ctx *c = ctx;
  struct norm_job n = {.x = x, .g = g, .y = y, .dim = dim, .eps = eps};
  engine_threadpool_run(c->pool, n_tok, 8, norm_task, &n);
}

/* ---- rope ---- */

struct rope_job {
  const struct cpu_ctx *c;
  float *x;
  uint32_t n_heads, head_dim, rope_dim;
  float base;
  const uint32_t *pos;
};

static void rope_task(void *arg, int64_t begin, int64_t end, int thread) {
  const struct rope_job *r = arg;
  float *cs = r->c->scratch + (size_t)thread * r->c->scratch_floats; /* cos, sin pairs */
  for (int64_t t = begin; t < end; t++) {
    double p = r->pos[t];
    for (uint32_t i = 0; i < r->rope_dim / 2; i++) {
      double theta = p * pow((double)r->base, -2.0 * i / (double)r->rope_dim);
      cs[2 * i] = (float)cos(theta);
      cs[2 * i + 1] = (float)sin(theta);
    }
    for (uint32_t h = 0; h < r->n_heads; h++) {
      float *v = r->x + ((size_t)t * r->n_heads + h) * r->head_dim;
      for (uint32_t i = 0; i < r->rope_dim / 2; i++) {
        float x0 = v[2 * i], x1 = v[2 * i + 1], co = cs[2 * i], si = cs[2 * i + 1];
        v[2 * i] = x0 * co - x1 * si;
        v[2 * i + 1] = x0 * si + x1 * co;
      }
    }
  }
}

static void cpu_rope(void *ctx, float *x, uint32_t n_tok, uint32_t n_heads, uint32_t head_dim,
                     uint32_t rope_dim, float base, const uint32_t *pos) {
  struct cpu_ctx *c = ctx;
  struct rope_job r = {.c = c, .x = x, .n_heads = n_heads, .head_dim = head_dim,
                       .rope_dim = rope_dim, .base = base, .pos = pos};
  engine_threadpool_run(c->pool, n_tok, 4, rope_task, &r);
}

/* CHUNK, shrunk so that the number of chunks of N items is a multiple of N_THREADS when
 * there is more than one: 3 chunks on 2 threads take as long as 4 (a batch-8 decode step of
 * a small model has ~100 attention items, ~37 per chunk by the cost rule alone). */
static int64_t balanced_chunk(int64_t n, int64_t chunk, int n_threads) {
  int64_t chunks = (n + chunk - 1) / chunk;
  if (chunks <= 1 || n_threads <= 1) return chunk;
  chunks = (chunks + n_threads - 1) / n_threads * n_threads;
  return (n + chunks - 1) / chunks;
}

/* ---- KV store and attention ---- */

static void cpu_store_kv(void *ctx, const struct engine_attn_args *a) {
  (void)ctx;
  size_t kv_dim = (size_t)a->n_head_kv * a->head_dim;
  for (uint32_t t = 0; t < a->n_tok; t++) {
    memcpy(kv_k(a->kv, a->tok_seq[t], a->layer, a->tok_pos[t]), a->k + t * kv_dim,
           kv_dim * sizeof(float));
    memcpy(kv_v(a->kv, a->tok_seq[t], a->layer, a->tok_pos[t]), a->v + t * kv_dim,
           kv_dim * sizeof(float));
  }
}

struct attn_job {
  const struct cpu_ctx *c;
  const struct engine_attn_args *a;
  uint32_t heads_per_item; /* consecutive query heads per work item, <= ATTN_GROUP_MAX */
};

/* q·k for one attention score. One running sum would be a chain of dependent adds (the
 * compiler may not reorder float additions), 4 cycles each: at head_dim 64 that made
 * attention a fifth of a batch-1 decode step at a 40-token context. ATTN_LANES independent
 * partial sums, combined in a fixed order, vectorize at the baseline ISA and give the same
 * result whatever the thread count or CPU. */
#define ATTN_LANES 16
static inline float dot_f32(const float *restrict a, const float *restrict b, uint32_t n) {
  float acc[ATTN_LANES] = {0};
  uint32_t i = 0;
  for (; i + ATTN_LANES <= n; i += ATTN_LANES)
    for (uint32_t j = 0; j < ATTN_LANES; j++) acc[j] += a[i + j] * b[i + j];
  for (; i < n; i++) acc[i % ATTN_LANES] += a[i] * b[i];
  for (uint32_t w = ATTN_LANES / 2; w > 0; w /= 2)
    for (uint32_t j = 0; j < w; j++) acc[j] += acc[j + w];
  return acc[0];
}

/*
 * One item = one token and a group of up to ATTN_GROUP_MAX consecutive query heads: scores
 * over positions [0, pos], softmax, weighted V, for every head of the group.
 *
 * Why groups, position-major: a KV row holds every KV head of one position, kv_dim floats
 * (3 KiB for stories110m). Walking the positions once per head read a 256-byte slice of each
 * row, a row apart, head after head: misses the hardware prefetcher does not follow, on data
 * the weight stream evicted since the last step — attention was a fifth of a decode step at a
 * 40-token context. Walking positions once per group reads the group's whole span of each
 * row at once (the K row, then later the V row), which the prefetcher streams. Each head's
 * arithmetic is the same in any grouping, so results do not depend on the thread count.
 */
#define ATTN_GROUP_MAX 8
/* Rows fetched ahead of use: the hardware prefetcher alone left attention waiting on its
 * rows (perf: the stalls sat on the K and V loads). */
#define ATTN_PREFETCH 2
static inline void prefetch_floats(const float *x, size_t n) {
  for (size_t i = 0; i < n; i += 16) __builtin_prefetch(x + i, 0, 3);
}

static void attn_task(void *arg, int64_t begin, int64_t end, int thread) {
  const struct attn_job *j = arg;
  const struct engine_attn_args *a = j->a;
  float *scores = j->c->attn_scores + (size_t)thread * ATTN_GROUP_MAX * j->c->attn_ctx;
  const uint32_t hd = a->head_dim, group = a->n_head / a->n_head_kv, G = j->heads_per_item;
  const uint32_t n_groups = (a->n_head + G - 1) / G;
  const float scale = 1.0f / sqrtf((float)hd);
  for (int64_t it = begin; it < end; it++) {
    uint32_t t = (uint32_t)(it / n_groups), h0 = (uint32_t)(it % n_groups) * G;
    uint32_t nh = a->n_head - h0 < G ? a->n_head - h0 : G, n = a->tok_pos[t] + 1;
    const struct kv_seq *s = a->tok_seq[t];
    const float *q = a->q + ((size_t)t * a->n_head + h0) * hd;
    float *out = a->out + ((size_t)t * a->n_head + h0) * hd;
    float mx[ATTN_GROUP_MAX];
    for (uint32_t g = 0; g < nh; g++) mx[g] = -INFINITY;
    /* The KV heads the group reads: floats [span0, span0 + span) of each row. */
    const size_t span0 = (size_t)(h0 / group) * hd;
    const size_t span = (size_t)((h0 + nh - 1) / group + 1) * hd - span0;
    for (uint32_t p = 0; p < n; p++) {
      const float *k = kv_k(a->kv, s, a->layer, p);
      if (p + ATTN_PREFETCH < n)
        prefetch_floats(kv_k(a->kv, s, a->layer, p + ATTN_PREFETCH) + span0, span);
      for (uint32_t g = 0; g < nh; g++) {
        float d = dot_f32(q + (size_t)g * hd, k + (size_t)((h0 + g) / group) * hd, hd) * scale;
        scores[(size_t)g * n + p] = d;
        if (d > mx[g]) mx[g] = d;
      }
    }
    for (uint32_t g = 0; g < nh; g++) {
      float *sc = scores + (size_t)g * n, sum = 0.0f;
      for (uint32_t p = 0; p < n; p++) {
        sc[p] = expf(sc[p] - mx[g]);
        sum += sc[p];
      }
      float inv = 1.0f / sum;
      for (uint32_t p = 0; p < n; p++) sc[p] *= inv;
    }
    memset(out, 0, sizeof(float) * hd * nh);
    for (uint32_t p = 0; p < n; p++) {
      const float *v = kv_v(a->kv, s, a->layer, p);
      if (p + ATTN_PREFETCH < n)
        prefetch_floats(kv_v(a->kv, s, a->layer, p + ATTN_PREFETCH) + span0, span);
      for (uint32_t g = 0; g < nh; g++) {
        const float *vh = v + (size_t)((h0 + g) / group) * hd;
        float wgt = scores[(size_t)g * n + p], *o = out + (size_t)g * hd;
        for (uint32_t i = 0; i < hd; i++) o[i] += wgt * vh[i];
      }
    }
  }
}

static void cpu_attention(void *ctx, const struct engine_attn_args *a) {
  struct cpu_ctx *c = ctx;
  uint64_t ctx_len = 1;
  for (uint32_t t = 0; t < a->n_tok; t++)
    if (a->tok_pos[t] + 1 > ctx_len) ctx_len = a->tok_pos[t] + 1;
  /* Heads per item: as many as the scratch holds, but split so a small batch still gives
   * every thread work (two items per thread when the tokens alone do not). */
  uint32_t groups = 1;
  while (groups < a->n_head && ((a->n_head + groups - 1) / groups > ATTN_GROUP_MAX ||
                                (uint64_t)a->n_tok * groups < 2 * (uint64_t)c->n_threads))
    groups++;
  struct attn_job j = {.c = c, .a = a, .heads_per_item = (a->n_head + groups - 1) / groups};
  uint32_t n_groups = (a->n_head + j.heads_per_item - 1) / j.heads_per_item;
  /* Same reasoning as for matmul: enough work per chunk to pay a wake-up. */
  int64_t chunk =
      (int64_t)(ENGINE_MIN_CHUNK_MACS / (2 * ctx_len * a->head_dim * j.heads_per_item)) + 1;
  int64_t items = (int64_t)a->n_tok * n_groups;
  engine_threadpool_run(c->pool, items, balanced_chunk(items, chunk, c->n_threads), attn_task, &j);
}

/* ---- elementwise ---- */

struct ew_job {
  float *x;
  const float *y;
};

static void silu_mul_task(void *arg, int64_t begin, int64_t end, int thread) {
  (void)thread;
  const struct ew_job *e = arg;
  for (int64_t i = begin; i < end; i++) {
    float g = e->x[i];
    e->x[i] = g / (1.0f + expf(-g)) * e->y[i];
  }
}

static void add_task(void *arg, int64_t begin, int64_t end, int thread) {
  (void)thread;
  const struct ew_job *e = arg;
  for (int64_t i = begin; i < end; i++) e->x[i] += e->y[i];
}

static void cpu_silu_mul(void *ctx, float *gate, const float *up, size_t n) {
  struct cpu_ctx *c = ctx;
  struct ew_job e = {.x = gate, .y = up};
  /* one expf per element (~5 ns): a batch-8 decode step of a small model has 8 × 2048 per
   * layer, worth splitting over the threads rather than running on the caller alone */
  engine_threadpool_run(c->pool, (int64_t)n, balanced_chunk((int64_t)n, 4096, c->n_threads),
                        silu_mul_task, &e);
}

static void cpu_add(void *ctx, float *x, const float *y, size_t n) {
  struct cpu_ctx *c = ctx;
  struct ew_job e = {.x = x, .y = y};
  engine_threadpool_run(c->pool, (int64_t)n, 65536, add_task, &e);
}

static void cpu_destroy(void *ctx) {
  struct cpu_ctx *c = ctx;
  if (!c) return;
  engine_threadpool_destroy(c->pool);
  free(c->xq);
  free(c->xpack);
  free(c->scratch);
  free(c->attn_scores);
  free(c);
}

static const struct engine_backend_ops cpu_ops = {
    .name = "cpu",
    .supports_op = cpu_supports_op,
    .get_rows = cpu_get_rows,
    .matmul = cpu_matmul,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .store_kv = cpu_store_kv,
    .attention = cpu_attention,
    .silu_mul = cpu_silu_mul,
    .add = cpu_add,
    .destroy = cpu_destroy,
};

int engine_backend_cpu_create(const struct engine_cpu_options *opt, struct engine_backend *ret,
                              char *err, size_t errlen) {
  /* "auto" can be pinned by the operator with REALM_ENGINE_ISA (scalar, avx2, avx512,
   * avx512vnni, amx): for comparing kernels on one machine, or working around a kernel.
   * Either way the kernel tables are probed here, before any seccomp jail: the AMX probe
   * asks Linux for the tile state with arch_prctl (kernels_amx.c). */
  int isa = opt->isa;
  const char *env = isa < 0 ? getenv("REALM_ENGINE_ISA") : NULL;
  if (env && *env) {
    isa = engine_cpu_isa_from_name(env);
    if (isa == -2) {
      snprintf(err, errlen,
               "cpu backend: REALM_ENGINE_ISA=\"%.32s\" unknown (auto, scalar, avx2, avx512, "
               "avx512vnni, amx)", env);
      return REALM_E_INVALID_ARGUMENT;
    }
  }
  const struct engine_cpu_kernels *k =
      isa < 0 ? engine_cpu_kernels_best() : engine_cpu_kernels_get((enum engine_isa)isa);
  if (!k) {
    if (isa == ENGINE_ISA_AMX)
      snprintf(err, errlen, "cpu backend: instruction set amx unavailable: %s",
               engine_cpu_amx_unavailable_reason());
    else
      snprintf(err, errlen, "cpu backend: instruction set %s is not supported by this CPU",
               engine_cpu_isa_name((enum engine_isa)isa));
    return REALM_E_UNSUPPORTED;
  }
  struct cpu_ctx *c = calloc(1, sizeof *c);
  if (!c) return REALM_E_NOMEM;
  c->k = k;
  c->f32_activations = opt->f32_activations;
  int rc = engine_threadpool_create(opt->n_threads, opt->spin_us, &c->pool);
  if (rc < 0) {
    free(c);
    snprintf(err, errlen, "cpu backend: cannot start %d threads spinning up to %d us (%s)",
             opt->n_threads, opt->spin_us, realm_err_name(rc));
    return rc;
  }
  c->n_threads = engine_threadpool_size(c->pool);
  c->max_tokens = opt->max_tokens;
  c->max_in = opt->max_in;
  uint32_t max_in_blocks = (opt->max_in + ENGINE_QK - 1) / ENGINE_QK * ENGINE_QK;
  c->xq = aligned_alloc(64, (engine_q8_act_row_bytes((int)max_in_blocks) *
                                 (opt->max_tokens ? opt->max_tokens : 1) + 63) & ~(size_t)63);
  if (k->q8_pack && !c->f32_activations) {
    size_t groups = ((opt->max_tokens ? opt->max_tokens : 1) + ENGINE_Q8_PACK_GROUP - 1) /
                    ENGINE_Q8_PACK_GROUP;
    c->xpack = aligned_alloc(64, k->q8_pack_group_bytes((int)max_in_blocks) * groups);
    if (!c->xpack) {
      cpu_destroy(c);
      snprintf(err, errlen, "cpu backend: no memory for packed activations");
      return REALM_E_NOMEM;
    }
  }
  /* RoPE's cos/sin pairs; attention has its own buffer (attn_scores). */
  c->scratch_floats = ((size_t)opt->max_head_dim + 15) & ~(size_t)15;
  c->scratch = malloc(sizeof(float) * c->scratch_floats * (size_t)c->n_threads);
  c->attn_ctx = opt->max_ctx ? opt->max_ctx : 1;
  c->attn_scores = malloc(sizeof(float) * ATTN_GROUP_MAX * c->attn_ctx * (size_t)c->n_threads);
  if (!c->xq || !c->scratch || !c->attn_scores) {
    cpu_destroy(c);
    snprintf(err, errlen, "cpu backend: no memory for scratch buffers");
    return REALM_E_NOMEM;
  }
  ret->ops = &cpu_ops;
  ret->ctx = c;
  return 0;
}

const char *engine_backend_cpu_isa(const struct engine_backend *b) {
  return ((const struct cpu_ctx *)b->ctx)->k->isa_name;
}

int engine_backend_cpu_threads(const struct engine_backend *b) {
  return ((const struct cpu_ctx *)b->ctx)->n_threads;
}
