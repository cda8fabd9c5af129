/*
 * model.h — binds a parsed GGUF file to a llama-family network: hyperparameters from the
 * llama.* keys, every tensor looked up by name with its exact shape checked.
 *
 * Weights stay inside the GGUF mapping (one host copy, shared via the sealed memfd) except:
 * norm vectors stored as F16/BF16 (converted to f32) and quantized matrices whose row length
 * is not a multiple of the block size (the stories260K Q8_0 file's ffn_down: its writer
 * quantized the flattened tensor, so blocks run across rows). Those are dequantized to F32
 * at load, on purpose, and counted in engine_model.n_dequantized_at_load.
 */
#ifndef REALM_ENGINE_MODEL_H
#define REALM_ENGINE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "cpu/kernels.h"
#include "gguf.h"

struct engine_hparams {
  uint32_t n_vocab;
  uint32_t dim;       /* llama.embedding_length */
  uint32_t n_layer;   /* llama.block_count */
  uint32_t n_head;    /* llama.attention.head_count */
  uint32_t n_head_kv; /* llama.attention.head_count_kv (default n_head) */
  uint32_t head_dim;  /* dim / n_head */
  uint32_t kv_dim;    /* n_head_kv * head_dim */
  uint32_t ff_dim;    /* llama.feed_forward_length */
  uint32_t n_ctx;     /* llama.context_length */
  uint32_t rope_dim;  /* llama.rope.dimension_count (default head_dim) */
  float rope_base;    /* llama.rope.freq_base (default 10000) */
  float rms_eps;      /* llama.attention.layer_norm_rms_epsilon (default 1e-5) */
  uint32_t bos_id;    /* tokenizer.ggml.bos_token_id (default 1) */
  uint32_t eos_id;    /* tokenizer.ggml.eos_token_id (default 2) */
};

/* A 2-D weight: n_out rows of n_in elements, y[j] = dot(row_j, x). */
struct engine_weight {
  enum engine_wtype type;
  uint32_t n_in, n_out;
  size_t row_bytes;
  const void *data;
};

struct engine_layer {
  const float *attn_norm;     /* (dim) */
  struct engine_weight wq;    /* (dim -> dim) */
  struct engine_weight wk;    /* (dim -> kv_dim) */
  struct engine_weight wv;    /* (dim -> kv_dim) */
  struct engine_weight wo;    /* (dim -> dim) */
  const float *ffn_norm;      /* (dim) */
  struct engine_weight w_gate; /* (dim -> ff_dim) */
  struct engine_weight w_up;   /* (dim -> ff_dim) */
  struct engine_weight w_down; /* (ff_dim -> dim) */
};

struct engine_model {
  struct engine_hparams hp;
  struct engine_weight token_embd; /* (vocab rows of dim) */
  const float *output_norm;        /* (dim) */
  struct engine_weight output;     /* (dim -> vocab); == token_embd when tied */
  struct engine_layer *layers;     /* (n_layer) */
  int output_tied;                 /* output.weight absent: token_embd reused */
  uint32_t n_dequantized_at_load;  /* quantized tensors with ne[0] % block != 0, now F32 */
  uint64_t matmul_bytes;           /* weight bytes one forward step reads (roofline) */
  const struct gguf_file *file;    /* not owned; must outlive the model */
  void **owned;                    /* buffers allocated at load */
  size_t n_owned;
};

/* Binds F (which must stay open while the model lives). Errors: REALM_E_BAD_MODEL with a
 * message naming the key or tensor (and expected vs actual shape), REALM_E_UNSUPPORTED for
 * another architecture or tensor type, REALM_E_NOMEM. */
int engine_model_load(const struct gguf_file *f, struct engine_model **ret_model, char *err,
                      size_t errlen);
void engine_model_free(struct engine_model *m); /* accepts NULL */

/* Dequantizes row ROW of W into DST (w->n_in floats). */
void engine_weight_get_row(const struct engine_weight *w, uint32_t row, float *dst);

#endif /* REALM_ENGINE_MODEL_H */
