/*
 * realm_guest.h — the Realm guest ABI, version 1: the one public contract between a tenant's
 * WebAssembly module (the "guest") and the Realm runner (the "host").
 *
 * A guest is a wasm32 module that exports its linear memory as "memory" and the five
 * functions declared under "Guest exports" below, and imports only functions from module
 * "realm" declared under "Host imports". The runner calls the guest when a request begins,
 * each time the logits for one of its requests are ready, and when the request ends; the guest
 * tokenizes, samples, emits text and says continue or stop. docs/guest-abi.md is the prose
 * version of this file (limits, error handling, versioning rules, how to build a guest).
 *
 * The same header is included by the host (native, 64-bit) for the constants, the request
 * encoding and the struct layouts, so everything here is fixed-width and little-endian, and
 * guest pointers are plain uint32_t offsets into the guest's memory on the host side. The
 * import/export declarations are only visible when compiling for wasm (__wasm__).
 *
 * Versioning: REALM_GUEST_ABI_VERSION changes when an import or export changes its meaning or
 * signature, or is removed. Adding a new import, a new request field or a new constant does
 * not change the version (a guest that does not use it is unaffected; a guest that imports a
 * function the host does not know is refused at load time with a message naming it).
 * The imports model_meta, merge_count, merge, emit_top_logprobs and finish and the request keys
 * LOGIT_BIAS, CHAT_TEMPLATE and SKIP_LOGPROBS were added that way (still version 1).
 */
#ifndef REALM_GUEST_H
#define REALM_GUEST_H

#include <stdint.h>
#include <string.h>

#define REALM_GUEST_ABI_VERSION 1

/* ---- Return codes of host imports (and of guest exports that return a status) ----
 * Success is >= 0 (often a byte count). Faults that are the guest's bug (a pointer/length
 * outside its memory, an unknown request id, exceeding the output cap) do not return: the
 * host fails the current call, fails the request, and discards the instance. */
#define REALM_GUEST_OK 0
#define REALM_GUEST_E_INVALID (-1)      /* an argument value is not acceptable */
#define REALM_GUEST_E_NOT_FOUND (-2)    /* no such token / tensor / field */
#define REALM_GUEST_E_UNSUPPORTED (-3)  /* the host does not (yet) provide this service */
#define REALM_GUEST_E_TOO_SMALL (-4)    /* the output buffer is too small; nothing written */
#define REALM_GUEST_E_INTERNAL (-5)     /* host-side failure; the request may be retried */

/* ---- realm_on_logits results ----
 * A value >= 0 is the next token: the host feeds it to the model and calls realm_on_logits
 * again with the next logits. REALM_GUEST_STOP ends the request normally. Any other negative
 * value fails the request with that REALM_GUEST_E_* code. */
#define REALM_GUEST_STOP (-100)

/* ---- Finish reasons (realm_finish; read by the host with sandbox_instance_finish_reason) ----
 * Why a request ended, as the client sees it (OpenAI's finish_reason). A guest reports it with
 * realm_finish before returning REALM_GUEST_STOP; a guest that never calls it leaves the
 * reason to the host (REALM_GUEST_FINISH_NONE: the runner reports "stop", or "length" when its
 * own token limit ended the request). */
#define REALM_GUEST_FINISH_NONE 0           /* not given */
#define REALM_GUEST_FINISH_STOP 1           /* natural end: EOS, end-of-turn, stop string/token */
#define REALM_GUEST_FINISH_LENGTH 2         /* max_tokens reached or the context is full */
#define REALM_GUEST_FINISH_CONTENT_FILTER 3 /* the guest withheld output by its own policy */

/* ---- Sizes the host enforces on the additions to ABI v1 ---- */
#define REALM_GUEST_MAX_TOP_LOGPROBS 20            /* entries per realm_emit_top_logprobs call */
#define REALM_GUEST_MAX_META_KEY_BYTES 256         /* realm_model_meta key length */
#define REALM_GUEST_MAX_META_VALUE_BYTES (1u << 20) /* longest value a host hands out */

/* ---- realm_log levels ---- */
#define REALM_GUEST_LOG_ERROR 0
#define REALM_GUEST_LOG_WARN 1
#define REALM_GUEST_LOG_INFO 2
#define REALM_GUEST_LOG_DEBUG 3

/* ---- Token kinds (realm_token_info.kind), mirroring the GGUF tokenizer.ggml.token_type ---- */
#define REALM_GUEST_TOKEN_NORMAL 1
#define REALM_GUEST_TOKEN_UNKNOWN 2
#define REALM_GUEST_TOKEN_CONTROL 3
#define REALM_GUEST_TOKEN_USER_DEFINED 4
#define REALM_GUEST_TOKEN_UNUSED 5
#define REALM_GUEST_TOKEN_BYTE 6

/* ---- Vocabulary kinds (realm_model_info.vocab_kind) ---- */
#define REALM_GUEST_VOCAB_SPM 1 /* SentencePiece (llama) */
#define REALM_GUEST_VOCAB_BPE 2 /* byte-level BPE (gpt2) */

/* What realm_model_info() writes. Fields are appended only at the end; struct_bytes tells the
 * guest how many bytes the host filled (older hosts fill fewer). */
struct realm_model_info {
  uint32_t struct_bytes; /* sizeof as the host knows it */
  uint32_t n_vocab;      /* number of tokens; ids are 0 .. n_vocab-1 */
  int32_t bos;           /* beginning-of-sequence token, -1 when none */
  int32_t eos;           /* end-of-sequence token, -1 when none */
  uint32_t n_ctx;        /* context length the runner grants a request */
  uint32_t n_embd;       /* hidden size (for matmul/attention users) */
  uint32_t n_layer;
  uint32_t vocab_kind;   /* REALM_GUEST_VOCAB_* */
  char arch[32];         /* NUL-terminated architecture name, e.g. "llama" */
};

/* One alternative of realm_emit_top_logprobs: 8 bytes, no padding. */
struct realm_top_logprob {
  int32_t token;
  float logprob; /* natural log of the token's probability, <= 0 */
};

/* Well-known realm_model_meta keys: the GGUF metadata key names. Hosts serve at least these
 * when the model file has them (REALM_GUEST_E_NOT_FOUND otherwise) and may serve any other
 * scalar or string key of the file. Values are bytes without a NUL: strings as stored,
 * booleans "true" / "false", integers in decimal, floats as "%.9g". */
#define REALM_META_TOKENIZER_MODEL "tokenizer.ggml.model"        /* "llama" (SPM), "gpt2" (BPE) */
#define REALM_META_TOKENIZER_PRE "tokenizer.ggml.pre"            /* BPE pre-tokenizer name */
#define REALM_META_ADD_BOS "tokenizer.ggml.add_bos_token"        /* bool */
#define REALM_META_ADD_EOS "tokenizer.ggml.add_eos_token"        /* bool */
#define REALM_META_ADD_SPACE_PREFIX "tokenizer.ggml.add_space_prefix" /* bool (SPM) */
#define REALM_META_UNK_ID "tokenizer.ggml.unknown_token_id"      /* integer */
#define REALM_META_CHAT_TEMPLATE "tokenizer.chat_template"       /* Jinja text */
#define REALM_META_NAME "general.name"                           /* model name */

/* What realm_token_info() writes. */
struct realm_token_info {
  float score; /* SentencePiece score / BPE rank as float; 0 when the vocabulary has none */
  int32_t kind; /* REALM_GUEST_TOKEN_* */
};

/* ---- The request blob ----
 * realm_on_request_begin receives the request as a byte string: a 12-byte header, then
 * fields, each a 4-byte key, a 4-byte length and `length` value bytes (no padding; all integers
 * little-endian). Unknown keys must be skipped by guests (new keys do not change the ABI
 * version). A key may repeat (REALM_REQ_STOP, REALM_REQ_MESSAGE). */
#define REALM_REQ_MAGIC 0x51524c52u /* "RLRQ" */
#define REALM_REQ_HEADER_BYTES 12    /* u32 magic, u32 version (= ABI version), u32 n_fields */

enum realm_req_key {
  REALM_REQ_PROMPT = 1,            /* UTF-8 text (completions) */
  REALM_REQ_MESSAGE = 2,           /* chat turn: "role\0content" (repeats, in order) */
  REALM_REQ_MAX_TOKENS = 3,        /* u32 */
  REALM_REQ_TEMPERATURE = 4,       /* f32 */
  REALM_REQ_TOP_K = 5,             /* u32, 0 = off */
  REALM_REQ_TOP_P = 6,             /* f32 */
  REALM_REQ_MIN_P = 7,             /* f32 */
  REALM_REQ_SEED = 8,              /* u64 */
  REALM_REQ_STOP = 9,              /* UTF-8 stop string (repeats) */
  REALM_REQ_REPETITION_PENALTY = 10, /* f32 */
  REALM_REQ_FREQUENCY_PENALTY = 11,  /* f32 */
  REALM_REQ_PRESENCE_PENALTY = 12,   /* f32 */
  REALM_REQ_LOGPROBS = 13,         /* u32: number of top logprobs wanted, 0 = none */
  REALM_REQ_STOP_TOKEN = 14,       /* i32 (repeats) */
  REALM_REQ_MODEL = 15,            /* UTF-8 model name as the client sent it */
  REALM_REQ_LOGIT_BIAS = 16,       /* n x {i32 token, f32 bias} (8 bytes each); repeats add */
  REALM_REQ_CHAT_TEMPLATE = 17,    /* UTF-8 chat template: a family name or a Jinja text */
  REALM_REQ_SKIP_LOGPROBS = 18,    /* u32: nonzero = the host discards the logprob of every
                                    * emit_token (the client did not ask for logprobs), so the
                                    * guest may skip computing it and pass 0. Absent or 0: the
                                    * host may use it (hosts that predate this key never send
                                    * it). Ignored when REALM_REQ_LOGPROBS is also present. */
};

/* One decoded field: points into the blob, valid as long as the blob is. */
struct realm_req_field {
  uint32_t key;
  uint32_t len;
  const uint8_t *value;
};

static inline uint32_t realm_req_get_u32_(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void realm_req_put_u32_(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* Checks the header; returns the field count, or REALM_GUEST_E_INVALID. */
static inline int32_t realm_req_check(const uint8_t *blob, uint32_t len) {
  if (len < REALM_REQ_HEADER_BYTES || realm_req_get_u32_(blob) != REALM_REQ_MAGIC ||
      realm_req_get_u32_(blob + 4) != REALM_GUEST_ABI_VERSION)
    return REALM_GUEST_E_INVALID;
  uint32_t n = realm_req_get_u32_(blob + 8);
  return n > 0x7fffffffu ? REALM_GUEST_E_INVALID : (int32_t)n;
}

/* Iterates fields: start with *cursor = REALM_REQ_HEADER_BYTES; returns 1 with *ret_field
 * filled, 0 at the end, REALM_GUEST_E_INVALID on a truncated field. Overflow-safe. */
static inline int realm_req_next(const uint8_t *blob, uint32_t len, uint32_t *cursor,
                                 struct realm_req_field *ret_field) {
  uint32_t c = *cursor;
  if (c == len) return 0;
  if (c > len || len - c < 8) return REALM_GUEST_E_INVALID;
  uint32_t key = realm_req_get_u32_(blob + c), flen = realm_req_get_u32_(blob + c + 4);
  if (flen > len - c - 8) return REALM_GUEST_E_INVALID;
  ret_field->key = key;
  ret_field->len = flen;
  ret_field->value = blob + c + 8;
  *cursor = c + 8 + flen;
  return 1;
}

/* Builder used by the host (and by guests' tests): appends to buf (capacity cap) at *len.
 * Returns 0, or REALM_GUEST_E_TOO_SMALL when it does not fit (nothing written). Call
 * realm_req_begin first; it writes the header with n_fields = 0, and each add increments it. */
static inline int realm_req_begin(uint8_t *buf, uint32_t cap, uint32_t *len) {
  if (cap < REALM_REQ_HEADER_BYTES) return REALM_GUEST_E_TOO_SMALL;
  realm_req_put_u32_(buf, REALM_REQ_MAGIC);
  realm_req_put_u32_(buf + 4, REALM_GUEST_ABI_VERSION);
  realm_req_put_u32_(buf + 8, 0);
  *len = REALM_REQ_HEADER_BYTES;
  return 0;
}

static inline int realm_req_add(uint8_t *buf, uint32_t cap, uint32_t *len, uint32_t key,
                                const void *value, uint32_t value_len) {
  if (*len > cap || cap - *len < 8 || value_len > cap - *len - 8) return REALM_GUEST_E_TOO_SMALL;
  realm_req_put_u32_(buf + *len, key);
  realm_req_put_u32_(buf + *len + 4, value_len);
  if (value_len) memcpy(buf + *len + 8, value, value_len);
  *len += 8 + value_len;
  realm_req_put_u32_(buf + 8, realm_req_get_u32_(buf + 8) + 1);
  return 0;
}

#if defined(__wasm__)
/* ======================= Guest side: what the guest is and may call ======================= */

#define REALM_GUEST_EXPORT(name) __attribute__((export_name(#name), visibility("default")))
#define REALM_GUEST_IMPORT(name) __attribute__((import_module("realm"), import_name(#name)))

/* ---- Guest exports (all required; the host refuses a module missing one, or with a
 * different signature). Define them with REALM_GUEST_EXPORT(name) in front. ----
 *
 *   int32_t realm_abi_version(void);
 *       Returns REALM_GUEST_ABI_VERSION the guest was built against; the host refuses others.
 *   uint32_t realm_alloc(uint32_t size);
 *       Returns a guest pointer to `size` writable bytes (the host copies inputs there), or 0.
 *       Blocks given to realm_on_request_begin belong to the guest afterwards.
 *   int32_t realm_on_request_begin(uint32_t req_id, const uint8_t *req, uint32_t req_len);
 *       A request begins (blob format above). The guest usually tokenizes the prompt and calls
 *       realm_feed_tokens. Returns 0 or a REALM_GUEST_E_* code (the request then fails).
 *   int32_t realm_on_logits(uint32_t req_id, const float *logits, uint32_t n_vocab);
 *       Logits of the last fed position. The buffer is host scratch, valid during this call
 *       only. Returns the next token (>= 0), REALM_GUEST_STOP, or a REALM_GUEST_E_* code.
 *   void realm_on_request_end(uint32_t req_id, int32_t status);
 *       The request is over (status 0 = finished, < 0 = failed or cancelled); free its state.
 */

/* ---- Host imports (module "realm") ---- */

/* Model facts; copies min(cap, sizeof) bytes and returns the number copied. */
REALM_GUEST_IMPORT(model_info) int32_t realm_model_info(struct realm_model_info *out, uint32_t cap);
/* Number of tokens in the vocabulary. */
REALM_GUEST_IMPORT(vocab_size) int32_t realm_vocab_size(void);
/* Copies token `token`'s piece (raw bytes; SPM pieces use U+2581 for space, BPE pieces the
 * byte-level alphabet) into buf. Returns the piece length; if it is > cap nothing is written
 * (call again with a bigger buffer). REALM_GUEST_E_NOT_FOUND for an id out of range. */
REALM_GUEST_IMPORT(token_piece) int32_t realm_token_piece(int32_t token, char *buf, uint32_t cap);
/* Fills *out with the token's score and kind. */
REALM_GUEST_IMPORT(token_info) int32_t realm_token_info(int32_t token, struct realm_token_info *out);
/* Appends tokens to the request's pending input (prompt, or forced continuation). The host
 * feeds them to the model and then calls realm_on_logits with the logits of the last one. */
REALM_GUEST_IMPORT(feed_tokens) int32_t realm_feed_tokens(uint32_t req_id, const int32_t *tokens, uint32_t n);
/* Emits text to the client. Counted against the output cap (see docs). */
REALM_GUEST_IMPORT(emit_text) int32_t realm_emit_text(uint32_t req_id, const char *text, uint32_t len);
/* Emits one generated token with its text and log-probability (for "logprobs"; any value,
 * e.g. 0, when the request carried REALM_REQ_SKIP_LOGPROBS: the host drops it). */
REALM_GUEST_IMPORT(emit_token) int32_t realm_emit_token(uint32_t req_id, int32_t token, float logprob,
                                                        const char *text, uint32_t len);
/* Writes a line to the runner's log (truncated to 1024 bytes by the host). */
REALM_GUEST_IMPORT(log) void realm_log(int32_t level, const char *msg, uint32_t len);
/* Monotonic clock in nanoseconds. */
REALM_GUEST_IMPORT(now_ns) uint64_t realm_now_ns(void);
/* Fills buf with bytes of the instance's deterministic generator (seeded by the host, so a
 * run is reproducible); guests that want per-request seeds use REALM_REQ_SEED themselves. */
REALM_GUEST_IMPORT(random_bytes) int32_t realm_random_bytes(void *buf, uint32_t len);
/* out[n_rows][out_cols] = x[n_rows][in_cols] x W^T for the named weight tensor of the model.
 * Declared now; hosts without a worker connection return REALM_GUEST_E_UNSUPPORTED. */
REALM_GUEST_IMPORT(matmul) int32_t realm_matmul(const char *tensor, uint32_t tensor_len, const float *x,
                                                uint32_t n_rows, uint32_t in_cols, float *out,
                                                uint32_t out_cols);
/* One attention layer over the request's KV cache: q, k, v each [n_tokens][n_embd] packed in
 * `qkv` (q rows first), out [n_tokens][n_embd]. Same availability note as realm_matmul. */
REALM_GUEST_IMPORT(attention) int32_t realm_attention(uint32_t req_id, uint32_t layer, const float *qkv,
                                                      uint32_t n_tokens, float *out);

/* ---- Added to ABI v1 later (a host that predates them refuses a guest importing them at
 * load, naming the import). Each is optional on the host side: a host without the service
 * answers as documented per import. ---- */

/* Copies the model metadata value of `key` (e.g. REALM_META_CHAT_TEMPLATE; key_len 1..
 * REALM_GUEST_MAX_META_KEY_BYTES, no NUL) into out. Returns the value's length; nothing is
 * written if it is > cap (call again with a bigger buffer). REALM_GUEST_E_NOT_FOUND when the
 * model has no such key, REALM_GUEST_E_UNSUPPORTED when the host serves no metadata,
 * REALM_GUEST_E_INVALID for a bad key. */
REALM_GUEST_IMPORT(model_meta) int32_t realm_model_meta(const char *key, uint32_t key_len, char *out,
                                                        uint32_t cap);
/* Number of BPE merges (tokenizer.ggml.merges), 0 when the model has none;
 * REALM_GUEST_E_UNSUPPORTED when the host does not serve merges (reconstruct them). */
REALM_GUEST_IMPORT(merge_count) int32_t realm_merge_count(void);
/* Copies merge i ("left right", the two token texts joined by one space, rank i) into buf.
 * Returns its length; nothing written if > cap. REALM_GUEST_E_NOT_FOUND for i >= count. */
REALM_GUEST_IMPORT(merge) int32_t realm_merge(uint32_t i, char *buf, uint32_t cap);
/* The top-n alternatives (most likely first, n <= REALM_GUEST_MAX_TOP_LOGPROBS) of the token
 * the guest last emitted with realm_emit_token for this request; call it right after that
 * emit_token. 8 bytes per entry count against the output cap. REALM_GUEST_E_INVALID for
 * n > REALM_GUEST_MAX_TOP_LOGPROBS. */
REALM_GUEST_IMPORT(emit_top_logprobs) int32_t realm_emit_top_logprobs(uint32_t req_id,
                                                                      const struct realm_top_logprob *top,
                                                                      uint32_t n);
/* Records why the request ends (REALM_GUEST_FINISH_STOP / _LENGTH / _CONTENT_FILTER); call
 * it before returning REALM_GUEST_STOP. The last call wins. REALM_GUEST_E_INVALID for another
 * value. It does not stop the request by itself. */
REALM_GUEST_IMPORT(finish) int32_t realm_finish(uint32_t req_id, int32_t reason);
#endif /* __wasm__ */

#endif /* REALM_GUEST_H */
