/*
 * backend.h — the compute backend interface: one table of function pointers per backend
 * (CPU first; CUDA slots in later, DESIGN.md §6).
 *
 * The forward pass in llama.c is written only against this table, so a backend supplies
 * exactly the ops a llama step needs and nothing else. Tensors are plain row-major f32
 * arrays in the backend's memory ("host" for the CPU backend); a weight is an engine_weight
 * from model.h. supports_op() lets the engine refuse a model a backend cannot run (for
 * example a weight type with no kernel) at engine_create() instead of mid-step.
 *
 * Memory: every float / int array an op receives lives in the backend's memory. A backend
 * that computes on host memory (CPU) leaves the memory hooks (alloc, free, copy, sync,
 * prepare_weight, release_weight, kv_storage) NULL: the engine then allocates plain host
 * buffers, binds the model's weights in place and keeps the KV pool on the host — the CPU
 * path stays zero-copy. A device backend (CUDA) fills them: the engine allocates its
 * activations and per-step index arrays through alloc, moves the step's inputs and the
 * logits through copy, has each weight uploaded once by prepare_weight (the engine then
 * passes the returned engine_weight, whose data is opaque device memory, to the ops), and
 * gives the KV cache the backend's kv_storage so blocks live (and are zeroed) on the device.
 * Ops on such a backend are asynchronous and return nothing: a failure is recorded in the
 * backend and reported by the next sync(), which the engine calls at the end of every step.
 * A backend that returned an error from sync() is unhealthy for good (the worker exits and
 * its supervisor restarts it): every later op is a no-op and every later sync() fails.
 */
#ifndef REALM_ENGINE_BACKEND_H
#define REALM_ENGINE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "model.h"

enum engine_copy_dir { ENGINE_COPY_H2D, ENGINE_COPY_D2H, ENGINE_COPY_D2D };

enum engine_op {
  ENGINE_OP_GET_ROWS,  /* embedding lookup */
  ENGINE_OP_MATMUL,    /* weight × batch of activations */
  ENGINE_OP_RMSNORM,
  ENGINE_OP_ROPE,      /* adjacent pairs (ggml NORM mode) */
  ENGINE_OP_STORE_KV,  /* write this step's K/V rows into the paged cache */
  ENGINE_OP_ATTENTION, /* causal GQA attention over a sequence's paged KV */
  ENGINE_OP_SILU_MUL,
  ENGINE_OP_ADD,
  ENGINE_OP_COUNT
};

/* Per-token description of one step, shared by store_kv and attention. */
struct engine_attn_args {
  struct kv_cache *kv;
  uint32_t layer, n_tok, n_head, n_head_kv, head_dim;
  struct kv_seq *const *tok_seq; /* (n_tok) sequence of each token (host; CPU backend) */
  const uint32_t *tok_pos;       /* (n_tok) position of each token; attends to [0, pos] */
  /* Device backends cannot follow tok_seq's host pointers: the engine also passes, in
   * backend memory, each token's row in a block table and the table itself. Unused (NULL)
   * for host backends. */
  const uint32_t *tok_seq_index; /* (n_tok) row of each token's sequence in block_table */
  const uint32_t *block_table;   /* (n_seqs, block_table_stride) KV pool block indices */
  uint32_t n_seqs, block_table_stride;
  uint32_t max_ctx_len;          /* max over tokens of tok_pos + 1 (sizes work on the host) */
  const float *q;                /* (n_tok, n_head * head_dim), RoPE applied */
  const float *k, *v;            /* (n_tok, n_head_kv * head_dim), for store_kv */
  float *out;                    /* (n_tok, n_head * head_dim) */
};

struct engine_backend_ops {
  const char *name;
  bool (*supports_op)(void *ctx, enum engine_op op, enum engine_wtype type);
  /* out (n, w->n_in) = rows ids[0..n) of w, dequantized */
  void (*get_rows)(void *ctx, const struct engine_weight *w, const int32_t *ids, uint32_t n,
                   float *out);
  /* y (n_tok, w->n_out) = x (n_tok, w->n_in) · wᵀ — every weight row read once per call */
  void (*matmul)(void *ctx, const struct engine_weight *w, const float *x, uint32_t n_tok,
                 float *y);
  /* y (n_tok, dim) = x / rms(x) * g */
  void (*rmsnorm)(void *ctx, const float *x, const float *g, uint32_t n_tok, uint32_t dim,
                  float eps, float *y);
  /* in place on x (n_tok, n_heads * head_dim); the first rope_dim dims of each head rotate */
  void (*rope)(void *ctx, float *x, uint32_t n_tok, uint32_t n_heads, uint32_t head_dim,
               uint32_t rope_dim, float base, const uint32_t *pos);
  void (*store_kv)(void *ctx, const struct engine_attn_args *a);
  void (*attention)(void *ctx, const struct engine_attn_args *a);
  /* gate[i] = silu(gate[i]) * up[i] */
  void (*silu_mul)(void *ctx, float *gate, const float *up, size_t n);
  /* x[i] += y[i] */
  void (*add)(void *ctx, float *x, const float *y, size_t n);
  void (*destroy)(void *ctx);

  /* ---- memory hooks: all NULL for a host-memory backend (see the top of this file) ---- */
  /* BYTES of backend memory, or NULL. */
  void *(*alloc)(void *ctx, size_t bytes);
  void (*free)(void *ctx, void *p); /* accepts NULL */
  /* Copies BYTES; DIR says which side each pointer is on. Host→device copies are ordered
   * before every later op; device→host copies return when the bytes are on the host. */
  void (*copy)(void *ctx, void *dst, const void *src, size_t bytes, enum engine_copy_dir dir);
  /* Waits for all queued work. 0, or REALM_E_UNAVAILABLE with the first recorded failure
   * (statement, function, file, line) in err; from then on the backend is unhealthy. */
  int (*sync)(void *ctx, char *err, size_t errlen);
  /* Makes a backend copy of weight HOST (F32/F16/BF16 as they are, Q8_0/Q4_0 kept quantized
   * in the backend's own layout). RET_DEV gets type and shape of HOST and opaque data.
   * Errors: REALM_E_NOMEM, REALM_E_UNSUPPORTED, REALM_E_UNAVAILABLE. */
  int (*prepare_weight)(void *ctx, const struct engine_weight *host,
                        struct engine_weight *ret_dev, char *err, size_t errlen);
  void (*release_weight)(void *ctx, struct engine_weight *dev); /* accepts zeroed */
  /* Where KV blocks live (kv.h), or NULL for host memory. Valid while the backend lives. */
  const struct kv_storage *(*kv_storage)(void *ctx);
};

struct engine_backend {
  const struct engine_backend_ops *ops;
  void *ctx;
};

struct engine_cpu_options {
  int n_threads;         /* <= 0: online CPUs */
  int spin_us;           /* thread pool's wait before sleeping; <= 0: default (threadpool.h) */
  int isa;               /* -1: best available; else enum engine_isa */
  uint32_t max_tokens;   /* most tokens per step */
  uint32_t max_in;       /* longest weight row (elements) */
  uint32_t max_ctx;      /* longest sequence */
  uint32_t max_head_dim; /* for RoPE scratch */
  int f32_activations;   /* Q8_0/Q4_0 against f32 activations (exact) instead of int8 */
};

/* Creates the CPU backend. Errors: REALM_E_UNSUPPORTED (ISA not on this CPU), NOMEM, SYSTEM. */
int engine_backend_cpu_create(const struct engine_cpu_options *opt, struct engine_backend *ret,
                              char *err, size_t errlen);
/* Kernel ISA name in use ("scalar", "avx2", "avx512") and thread count of a CPU backend. */
const char *engine_backend_cpu_isa(const struct engine_backend *b);
int engine_backend_cpu_threads(const struct engine_backend *b);

struct engine_cuda_options {
  int device;            /* CUDA device ordinal */
  uint32_t max_tokens;   /* most tokens per step */
  uint32_t max_in;       /* longest weight row (elements) */
  uint32_t max_out;      /* most weight rows (for the quantized mat-mat scratch) */
  uint32_t max_ctx;      /* longest sequence */
  uint32_t max_head_dim; /* attention kernel limit check (≤ 256) */
};

/* Whether the CUDA backend was compiled in (meson -Dcuda and a toolkit). */
bool engine_backend_cuda_built(void);
/* Number of usable CUDA devices; 0 with the reason in why (e.g. "cudaGetDeviceCount
 * returned 0 (cudaErrorNoDevice)", or "built without CUDA"). */
int engine_backend_cuda_devices(char *why, size_t whylen);
/* Creates the CUDA backend on opt->device. Errors: REALM_E_UNSUPPORTED (not built, no
 * device), REALM_E_NOMEM, REALM_E_UNAVAILABLE (a CUDA/cuBLAS call failed; err names it). */
int engine_backend_cuda_create(const struct engine_cuda_options *opt, struct engine_backend *ret,
                               char *err, size_t errlen);
/* Device name and memory use of a CUDA backend (bytes it allocated; weights, KV, scratch). */
const char *engine_backend_cuda_device_name(const struct engine_backend *b);
size_t engine_backend_cuda_bytes_allocated(const struct engine_backend *b);

#endif /* REALM_ENGINE_BACKEND_H */
