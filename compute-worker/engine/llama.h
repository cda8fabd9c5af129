/*
 * llama.h — the batched llama forward pass: the engine's public entry point.
 *
 * One engine = one bound model + one backend + one paged KV cache. A step (engine_forward)
 * takes several sequences at once, each with its own KV sequence, start position and 1..N new
 * tokens, so decode steps and prefill chunks of different requests share one pass: all
 * tokens of all sequences go through every weight matmul together (each weight byte read
 * once per step), and attention runs per sequence over its own KV blocks.
 *
 * Typical use (the worker's scheduler):
 *   engine_create(model, &cfg, &e, err, sizeof err);
 *   kv_seq_open(engine_kv(e), &tenant_quota, &seq);
 *   struct engine_seq_step s = {.seq = seq, .pos = 0, .tokens = prompt, .n_tokens = n};
 *   struct engine_batch b = {.seqs = &s, .n_seqs = 1};
 *   engine_forward(e, &b, logits, err, sizeof err);   // logits: n_seqs × n_vocab
 *   ... next step: .pos = kv_seq_len(seq), one token ...
 *   kv_seq_close(engine_kv(e), seq);
 * Not thread-safe: one thread drives an engine (it has its own worker threads inside).
 */
#ifndef REALM_ENGINE_LLAMA_H
#define REALM_ENGINE_LLAMA_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "model.h"

struct engine;

struct engine_config {
  const char *backend;      /* NULL or "cpu": CPU; "cuda": CUDA device (error when not built
                               or no device); "auto": CUDA when a device is present, else CPU */
  int cuda_device;          /* CUDA device ordinal (backend "cuda"/"auto") */
  int n_threads;            /* <= 0: online CPUs */
  int pool_spin_us;         /* CPU threads' wait for the next parallel loop before they sleep
                               (threadpool.h); <= 0: 500 µs */
  const char *isa;          /* NULL/"auto" or a kernel table: "scalar", "avx2", "avx512",
                               "avx512vnni", "amx" (refused when this CPU lacks it) */
  uint32_t kv_blocks;       /* KV pool size in blocks; 0: one full context (n_ctx tokens) */
  uint32_t kv_block_tokens; /* positions per block; 0: 16 */
  uint32_t max_step_tokens; /* most tokens in one step; 0: 512 (≤ REALM_MAX_STEP_TOKENS) */
  uint32_t max_ctx;         /* longest sequence; 0: the model's context length */
  int exact_quant;          /* 1: Q8_0/Q4_0 weights against f32 activations (no int8
                               rounding of activations; slower for large batches) */
};

/* One sequence's part of a step. POS must be ≤ kv_seq_len(seq): positions [0, pos) are
 * taken from the cache, tokens land at [pos, pos + n_tokens); anything the sequence held at
 * or past pos is overwritten/dropped (rollback). */
struct engine_seq_step {
  struct kv_seq *seq;
  uint32_t pos;
  const int32_t *tokens;
  uint32_t n_tokens;
};

struct engine_batch {
  const struct engine_seq_step *seqs;
  uint32_t n_seqs;
  int all_logits; /* 0: logits of each sequence's last token; 1: of every token */
};

int engine_create(const struct engine_model *m, const struct engine_config *cfg,
                  struct engine **ret_engine, char *err, size_t errlen);
void engine_destroy(struct engine *e); /* accepts NULL; close sequences first */

struct kv_cache *engine_kv(struct engine *e);
const struct engine_model *engine_model(const struct engine *e);
const char *engine_backend_name(const struct engine *e); /* e.g. "cpu/avx512", "cuda/NVIDIA H200" */
int engine_threads(const struct engine *e); /* CPU threads; 1 for a device backend */
/* The backend the engine runs on, for callers that run single ops over the engine's KV cache
 * (the worker's Attention requests must use this one when the KV lives on a device). */
const struct engine_backend *engine_get_backend(const struct engine *e);
/* Weights as the backend sees them (device copies on CUDA; the model's own on CPU). */
const struct engine_layer *engine_bound_layer(const struct engine *e, uint32_t layer);
/* The token embedding and output projection the same way (the worker's Matmul requests name
 * them; output == token_embd when the model ties them). */
const struct engine_weight *engine_bound_token_embd(const struct engine *e);
const struct engine_weight *engine_bound_output(const struct engine *e);
uint32_t engine_max_step_tokens(const struct engine *e);

/* Runs one step. RET_LOGITS receives n_seqs × n_vocab floats (sequence order), or
 * Σ n_tokens × n_vocab with all_logits. On success each sequence's length becomes
 * pos + n_tokens. Errors (nothing changed, ret_logits untouched): REALM_E_INVALID_ARGUMENT
 * (empty batch, token id out of range, pos past the sequence, a sequence twice),
 * REALM_E_TOO_LARGE (more than max_step_tokens or REALM_MAX_BATCH_SEQS),
 * REALM_E_OUT_OF_RANGE (past max_ctx), REALM_E_QUOTA / REALM_E_NOMEM (KV blocks),
 * REALM_E_UNAVAILABLE (the device backend failed: err names the CUDA call; the engine is
 * unusable from then on — destroy it and restart the process). */
int engine_forward(struct engine *e, const struct engine_batch *batch, float *ret_logits,
                   char *err, size_t errlen);

#endif /* REALM_ENGINE_LLAMA_H */
