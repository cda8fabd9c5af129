/*
 * backend_cuda.c — the CUDA backend: backend.h's table on one device, one stream, one
 * cuBLAS handle. Host C; the kernels live in the per-op .cu files (their .cuh headers are
 * plain C declarations), so this file builds with the project's C flags and -Werror.
 *
 * Memory: weights are uploaded once by prepare_weight (float types as they are, Q8_0/Q4_0
 * repacked to layout.h's split quants/scales layout and kept quantized); activations, the
 * step's index arrays and the KV block pool are cudaMalloc'ed through alloc / kv_storage.
 * Every op is queued on the stream and returns at once; the engine's sync() at the end of a
 * step waits and reports the first failure.
 *
 * Matmul dispatch (y = x · Wᵀ, n_tok activation rows):
 *   n_tok ≤ 8 and n_in % 8 == 0 → matmul_vec.cu (own mat-vec, f32 activations, any type);
 *   float types otherwise      → cuBLAS GemmEx, f32 compute (F16/BF16: activations
 *                                  rounded to the weight's type first, as ggml does);
 *   quantized types otherwise  → matmul_tiled.cu (dequantizing tiled mat-mat).
 *
 * Errors: every CUDA/cuBLAS call goes through CUDA_CHECK/CUBLAS_CHECK (cuda_check.h); the
 * first failure is kept with its statement and location, the backend turns unhealthy,
 * later ops do nothing, and sync() returns REALM_E_UNAVAILABLE with that message.
 * Threading: cudaSetDevice is per host thread; the engine is driven by one thread, which
 * must be the one that created it (the worker's engine thread).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../backend.h"
#include "add.cuh"
#include "attention.cuh"
#include "convert.cuh"
#include "cuda_check.h"
#include "get_rows.cuh"
#include "layout.h"
#include "matmul_tiled.cuh"
#include "matmul_vec.cuh"
#include "realm/error.h"
#include "repack.h"
#include "rmsnorm.cuh"
#include "rope.cuh"
#include "silu_mul.cuh"
#include "store_kv.cuh"

_Static_assert(CUDA_W_F32 == (int)ENGINE_W_F32 && CUDA_W_F16 == (int)ENGINE_W_F16 &&
                   CUDA_W_BF16 == (int)ENGINE_W_BF16 && CUDA_W_Q8_0 == (int)ENGINE_W_Q8_0 &&
                   CUDA_W_Q4_0 == (int)ENGINE_W_Q4_0,
               "layout.h's cuda_wtype must number types like engine_wtype");

struct cuda_alloc_rec {
  void *p;
  size_t bytes;
};

struct cuda_ctx {
  int device;
  char device_name[256];
  cudaStream_t stream;      /* every op and copy of this backend, in order */
  cublasHandle_t blas;      /* bound to stream */
  struct cuda_error err;    /* first failure; err.failed = unhealthy */
  struct kv_storage kvs;    /* KV pool in device memory, zeroed on the stream */
  void *act16;              /* (max_tokens, max_in) activations as f16/bf16 for cuBLAS */
  size_t act16_bytes;
  struct cuda_alloc_rec *recs; /* live allocations (a few hundred: weights, buffers) */
  size_t n_recs, cap_recs;
  size_t bytes;             /* Σ recs[].bytes */
};

bool cuda_check_record(struct cuda_error *st, cudaError_t e, const char *stmt, const char *func,
                       const char *file, int line) {
  if (e == cudaSuccess) return true;
  if (!st->failed) {
    st->failed = true;
    snprintf(st->msg, sizeof st->msg, "CUDA error %s (%s) in %s() at %s:%d: %s",
             cudaGetErrorName(e), cudaGetErrorString(e), func, file, line, stmt);
  }
  return false;
}

bool cublas_check_record(struct cuda_error *st, cublasStatus_t e, const char *stmt,
                         const char *func, const char *file, int line) {
  if (e == CUBLAS_STATUS_SUCCESS) return true;
  if (!st->failed) {
    st->failed = true;
    snprintf(st->msg, sizeof st->msg, "cuBLAS error %s (%s) in %s() at %s:%d: %s",
             cublasGetStatusName(e), cublasGetStatusString(e), func, file, line, stmt);
  }
  return false;
}

/* ---- memory ---- */

static void *cuda_alloc(void *ctx, size_t bytes) {
  struct cuda_ctx *c = ctx;
  if (c->err.failed) return NULL;
  if (c->n_recs == c->cap_recs) {
    size_t cap = c->cap_recs ? 2 * c->cap_recs : 256;
    struct cuda_alloc_rec *r = realloc(c->recs, cap * sizeof *r);
    if (!r) return NULL;
    c->recs = r;
    c->cap_recs = cap;
  }
  void *p = NULL;
  /* Out of device memory is an allocation failure (NOMEM to the caller), not a sick
   * device: clear it instead of recording it. */
  cudaError_t e = cudaMalloc(&p, bytes);
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    return NULL;
  }
  if (!CUDA_CHECK(&c->err, e)) return NULL;
  c->recs[c->n_recs++] = (struct cuda_alloc_rec){p, bytes};
  c->bytes += bytes;
  return p;
}

static void cuda_free(void *ctx, void *p) {
  struct cuda_ctx *c = ctx;
  if (!p) return;
  for (size_t i = 0; i < c->n_recs; i++)
    if (c->recs[i].p == p) {
      c->bytes -= c->recs[i].bytes;
      c->recs[i] = c->recs[--c->n_recs];
      break;
    }
  CUDA_CHECK(&c->err, cudaFree(p));
}

static void cuda_copy(void *ctx, void *dst, const void *src, size_t bytes,
                      enum engine_copy_dir dir) {
  struct cuda_ctx *c = ctx;
  if (c->err.failed || bytes == 0) return;
  enum cudaMemcpyKind kind = dir == ENGINE_COPY_H2D   ? cudaMemcpyHostToDevice
                             : dir == ENGINE_COPY_D2H ? cudaMemcpyDeviceToHost
                                                      : cudaMemcpyDeviceToDevice;
  if (!CUDA_CHECK(&c->err, cudaMemcpyAsync(dst, src, bytes, kind, c->stream))) return;
  if (dir == ENGINE_COPY_D2H) CUDA_CHECK(&c->err, cudaStreamSynchronize(c->stream));
}

static int cuda_sync(void *ctx, char *err, size_t errlen) {
  struct cuda_ctx *c = ctx;
  if (!c->err.failed) CUDA_CHECK(&c->err, cudaStreamSynchronize(c->stream));
  if (c->err.failed) {
    snprintf(err, errlen, "cuda backend unhealthy: %s", c->err.msg);
    return REALM_E_UNAVAILABLE;
  }
  return 0;
}

static void kv_zero(void *ctx, void *p, size_t bytes) {
  struct cuda_ctx *c = ctx;
  if (!c->err.failed) CUDA_CHECK(&c->err, cudaMemsetAsync(p, 0, bytes, c->stream));
}

static const struct kv_storage *cuda_kv_storage(void *ctx) {
  return &((struct cuda_ctx *)ctx)->kvs;
}

/* ---- weights ---- */

static int cuda_prepare_weight(void *ctx, const struct engine_weight *host,
                               struct engine_weight *ret_dev, char *err, size_t errlen) {
  struct cuda_ctx *c = ctx;
  const int t = (int)host->type;
  const bool quant = t == CUDA_W_Q8_0 || t == CUDA_W_Q4_0;
  if (t < CUDA_W_F32 || t > CUDA_W_Q4_0 || (quant && host->n_in % CUDA_QK != 0)) {
    snprintf(err, errlen, "cuda backend: weight type %d with rows of %u elements unsupported",
             t, host->n_in);
    return REALM_E_UNSUPPORTED;
  }
  const size_t bytes = cuda_layout_bytes(t, host->n_in, host->n_out);
  const size_t row = cuda_layout_row_bytes(t, host->n_in);
  void *d = cuda_alloc(c, bytes);
  if (!d) {
    snprintf(err, errlen, "cuda backend: no device memory for a %u x %u weight (%zu bytes)%s%s",
             host->n_out, host->n_in, bytes, c->err.failed ? ": " : "", c->err.msg);
    return c->err.failed ? REALM_E_UNAVAILABLE : REALM_E_NOMEM;
  }
  bool ok;
  if (!quant && host->row_bytes == row) {
    /* Straight from the sealed memfd mapping: one pageable copy, no host staging. */
    ok = CUDA_CHECK(&c->err, cudaMemcpy(d, host->data, bytes, cudaMemcpyHostToDevice));
  } else {
    void *staging = malloc(bytes);
    if (!staging) {
      cuda_free(c, d);
      snprintf(err, errlen, "cuda backend: no host memory to repack a %zu-byte weight", bytes);
      return REALM_E_NOMEM;
    }
    cuda_repack_weight(t, host->data, host->row_bytes, host->n_in, host->n_out, staging);
    ok = CUDA_CHECK(&c->err, cudaMemcpy(d, staging, bytes, cudaMemcpyHostToDevice));
    free(staging);
  }
  if (!ok) {
    cuda_free(c, d);
    snprintf(err, errlen, "cuda backend: weight upload failed: %s", c->err.msg);
    return REALM_E_UNAVAILABLE;
  }
  *ret_dev = (struct engine_weight){.type = host->type, .n_in = host->n_in,
                                    .n_out = host->n_out, .row_bytes = row, .data = d};
  return 0;
}

static void cuda_release_weight(void *ctx, struct engine_weight *dev) {
  if (!dev || !dev->data) return;
  cuda_free(ctx, (void *)dev->data);
  memset(dev, 0, sizeof *dev);
}

/* ---- ops ---- */

static bool cuda_supports_op(void *ctx, enum engine_op op, enum engine_wtype type) {
  (void)ctx;
  if (op == ENGINE_OP_MATMUL || op == ENGINE_OP_GET_ROWS) return (int)type <= CUDA_W_Q4_0;
  return op < ENGINE_OP_COUNT;
}

static void cuda_get_rows(void *ctx, const struct engine_weight *w, const int32_t *ids,
                          uint32_t n, float *out) {
  struct cuda_ctx *c = ctx;
  if (c->err.failed) return;
  CUDA_CHECK(&c->err, cuda_op_get_rows(c->stream, (int)w->type, w->data, w->n_in, w->n_out, ids,
                                       n, out));
}

static void cuda_matmul_blas(struct cuda_ctx *c, const struct engine_weight *w, const float *x,
                             uint32_t n_tok, float *y) {
  const float one = 1.0f, zero = 0.0f;
  const void *b = x;
  cudaDataType_t ab = CUDA_R_32F;
  if (w->type == ENGINE_W_F16 || w->type == ENGINE_W_BF16) {
    size_t n = (size_t)n_tok * w->n_in;
    if (n * 2 > c->act16_bytes) {
      CUDA_CHECK(&c->err, cudaErrorInvalidValue); /* sized at create for max_tokens × max_in */
      return;
    }
    if (!CUDA_CHECK(&c->err, cuda_op_convert_f32(c->stream, x, n, (int)w->type, c->act16)))
      return;
    b = c->act16;
    ab = w->type == ENGINE_W_F16 ? CUDA_R_16F : CUDA_R_16BF;
  }
  /* Row-major y (n_tok, n_out) is column-major (n_out, n_tok) = Wᵀ(n_out, n_in) · x(n_in,
   * n_tok), with W row-major (n_out, n_in) read as column-major (n_in, n_out) and transposed. */
  CUBLAS_CHECK(&c->err, cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)w->n_out,
                                     (int)n_tok, (int)w->n_in, &one, w->data, ab, (int)w->n_in,
                                     b, ab, (int)w->n_in, &zero, y, CUDA_R_32F, (int)w->n_out,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

static void cuda_matmul(void *ctx, const struct engine_weight *w, const float *x, uint32_t n_tok,
                        float *y) {
  struct cuda_ctx *c = ctx;
  if (c->err.failed || n_tok == 0) return;
  const int t = (int)w->type;
  const bool quant = t == CUDA_W_Q8_0 || t == CUDA_W_Q4_0;
  if (n_tok <= CUDA_MMV_MAX_TOKENS && w->n_in % 8 == 0)
    CUDA_CHECK(&c->err, cuda_op_matmul_vec(c->stream, t, w->data, w->n_in, w->n_out, x, n_tok, y));
  else if (!quant)
    cuda_matmul_blas(c, w, x, n_tok, y);
  else
    CUDA_CHECK(&c->err,
               cuda_op_matmul_tiled(c->stream, t, w->data, w->n_in, w->n_out, x, n_tok, y));
}

static void cuda_rmsnorm(void *ctx, const float *x, const float *g, uint32_t n_tok, uint32_t dim,
                         float eps, float *y) {
  struct cuda_ctx *c = ctx;
  if (!c->err.failed) CUDA_CHECK(&c->err, cuda_op_rmsnorm(c->stream, x, g, n_tok, dim, eps, y));
}

static void cuda_rope(void *ctx, float *x, uint32_t n_tok, uint32_t n_heads, uint32_t head_dim,
                      uint32_t rope_dim, float base, const uint32_t *pos) {
  struct cuda_ctx *c = ctx;
  if (!c->err.failed)
    CUDA_CHECK(&c->err, cuda_op_rope(c->stream, x, n_tok, n_heads, head_dim, rope_dim, base, pos));
}

/* The device view of the KV pool for one op (see kv_view.h). */
static struct cuda_kv_view kv_view(const struct engine_attn_args *a) {
  uint32_t bt = kv_cache_block_tokens(a->kv), kv_dim = a->n_head_kv * a->head_dim;
  return (struct cuda_kv_view){
      .pool = kv_cache_pool(a->kv), .block_tokens = bt,
      .n_layer = (uint32_t)(kv_cache_block_bytes(a->kv) / (2 * sizeof(float) * bt * kv_dim)),
      .kv_dim = kv_dim, .block_table = a->block_table, .stride = a->block_table_stride,
      .tok_seq_index = a->tok_seq_index, .tok_pos = a->tok_pos};
}

static void cuda_store_kv(void *ctx, const struct engine_attn_args *a) {
  struct cuda_ctx *c = ctx;
  if (c->err.failed) return;
  if (!a->block_table) { /* a caller that filled only the host-backend fields */
    CUDA_CHECK(&c->err, cudaErrorInvalidValue);
    return;
  }
  struct cuda_kv_view v = kv_view(a);
  CUDA_CHECK(&c->err, cuda_op_store_kv(c->stream, &v, a->layer, a->n_tok, a->k, a->v));
}

static void cuda_attention(void *ctx, const struct engine_attn_args *a) {
  struct cuda_ctx *c = ctx;
  if (c->err.failed) return;
  if (!a->block_table) {
    CUDA_CHECK(&c->err, cudaErrorInvalidValue);
    return;
  }
  struct cuda_kv_view v = kv_view(a);
  CUDA_CHECK(&c->err, cuda_op_attention(c->stream, &v, a->layer, a->n_tok, a->n_head,
                                        a->n_head_kv, a->head_dim, a->q, a->out));
}

static void cuda_silu_mul(void *ctx, float *gate, const float *up, size_t n) {
  struct cuda_ctx *c = ctx;
  if (!c->err.failed) CUDA_CHECK(&c->err, cuda_op_silu_mul(c->stream, gate, up, n));
}

static void cuda_add(void *ctx, float *x, const float *y, size_t n) {
  struct cuda_ctx *c = ctx;
  if (!c->err.failed) CUDA_CHECK(&c->err, cuda_op_add(c->stream, x, y, n));
}

static void cuda_destroy(void *ctx) {
  struct cuda_ctx *c = ctx;
  if (!c) return;
  if (c->stream) (void)cudaStreamSynchronize(c->stream);
  /* Whatever the engine did not free (it frees everything on a clean path). */
  while (c->n_recs) cuda_free(c, c->recs[c->n_recs - 1].p);
  if (c->blas) (void)cublasDestroy(c->blas);
  if (c->stream) (void)cudaStreamDestroy(c->stream);
  free(c->recs);
  free(c);
}

static const struct engine_backend_ops cuda_ops = {
    .name = "cuda",
    .supports_op = cuda_supports_op,
    .get_rows = cuda_get_rows,
    .matmul = cuda_matmul,
    .rmsnorm = cuda_rmsnorm,
    .rope = cuda_rope,
    .store_kv = cuda_store_kv,
    .attention = cuda_attention,
    .silu_mul = cuda_silu_mul,
    .add = cuda_add,
    .destroy = cuda_destroy,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .copy = cuda_copy,
    .sync = cuda_sync,
    .prepare_weight = cuda_prepare_weight,
    .release_weight = cuda_release_weight,
    .kv_storage = cuda_kv_storage,
};

/* ---- public ---- */

bool engine_backend_cuda_built(void) { return true; }

int engine_backend_cuda_devices(char *why, size_t whylen) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    snprintf(why, whylen, "no CUDA device: cudaGetDeviceCount returned %d (%s: %s)", (int)e,
             cudaGetErrorName(e), cudaGetErrorString(e));
    return 0;
  }
  if (n <= 0) {
    snprintf(why, whylen, "no CUDA device: cudaGetDeviceCount returned 0");
    return 0;
  }
  snprintf(why, whylen, "%d CUDA device(s)", n);
  return n;
}

int engine_backend_cuda_create(const struct engine_cuda_options *opt, struct engine_backend *ret,
                               char *err, size_t errlen) {
  char why[256];
  int n = engine_backend_cuda_devices(why, sizeof why);
  if (n == 0 || opt->device < 0 || opt->device >= n) {
    if (n == 0) snprintf(err, errlen, "cuda backend: %s", why);
    else snprintf(err, errlen, "cuda backend: device %d out of range (%d devices)", opt->device, n);
    return REALM_E_UNSUPPORTED;
  }
  if (opt->max_head_dim > 256) {
    snprintf(err, errlen, "cuda backend: head_dim %u > 256 (attention kernel limit)",
             opt->max_head_dim);
    return REALM_E_UNSUPPORTED;
  }
  struct cuda_ctx *c = calloc(1, sizeof *c);
  if (!c) return REALM_E_NOMEM;
  c->device = opt->device;
  c->kvs = (struct kv_storage){.ctx = c, .alloc = cuda_alloc, .free = cuda_free, .zero = kv_zero};
  struct cudaDeviceProp prop;
  bool ok = CUDA_CHECK(&c->err, cudaSetDevice(opt->device)) &&
            CUDA_CHECK(&c->err, cudaGetDeviceProperties(&prop, opt->device)) &&
            CUDA_CHECK(&c->err, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) &&
            CUBLAS_CHECK(&c->err, cublasCreate(&c->blas)) &&
            CUBLAS_CHECK(&c->err, cublasSetStream(c->blas, c->stream));
  if (ok) {
    snprintf(c->device_name, sizeof c->device_name, "%s", prop.name);
    c->act16_bytes = 2 * (size_t)(opt->max_tokens ? opt->max_tokens : 1) * opt->max_in;
    c->act16 = cuda_alloc(c, c->act16_bytes);
    ok = c->act16 != NULL;
  }
  if (!ok) {
    snprintf(err, errlen, "cuda backend: %s",
             c->err.failed ? c->err.msg : "no device memory for scratch buffers");
    int rc = c->err.failed ? REALM_E_UNAVAILABLE : REALM_E_NOMEM;
    cuda_destroy(c);
    return rc;
  }
  ret->ops = &cuda_ops;
  ret->ctx = c;
  return 0;
}

const char *engine_backend_cuda_device_name(const struct engine_backend *b) {
  return ((const struct cuda_ctx *)b->ctx)->device_name;
}

size_t engine_backend_cuda_bytes_allocated(const struct engine_backend *b) {
  return ((const struct cuda_ctx *)b->ctx)->bytes;
}
