/*
 * guest_test_host.h — a test double of the runner and the worker for the default guest.
 *
 * It loads stories260K.gguf once (GGUF reader + engine), serves the guest's vocabulary imports
 * from the file's tokenizer.ggml.* arrays, its metadata (realm_model_meta) from the file's
 * scalar and string keys and its BPE merges (realm_merge) from tokenizer.ggml.merges, and
 * drives one request at a time the way the runner will: request_begin, then "feed pending
 * tokens to the engine, hand the logits to the guest, queue the token it returns" until it
 * stops, then request_end. Everything the guest emits is recorded (text, tokens, logprobs, top
 * logprobs, each chunk's UTF-8 validity, the finish reason read through
 * sandbox_instance_finish_reason and the one the finish callback got), and a
 * forced-token mode replaces the logits with a one-hot choice so a test can make the guest
 * generate a chosen token sequence (byte tokens of a multi-byte character).
 */
#ifndef REALM_GUEST_TEST_HOST_H
#define REALM_GUEST_TEST_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "sandbox.h"

#define GTH_MAX_TOKENS 1024
#define GTH_MAX_TEXT 16384
#define GTH_MAX_TOP_TOKENS 64 /* tokens whose top logprobs are recorded */

struct gth_result {
  int32_t begin_status;        /* realm_on_request_begin's return */
  double begin_ms;             /* wall time of that call */
  int32_t last_action;         /* last realm_on_logits return (REALM_GUEST_STOP normally) */
  int32_t fed[GTH_MAX_TOKENS]; /* tokens of the first feed_tokens call (the prompt) */
  uint32_t n_fed;
  int32_t tokens[GTH_MAX_TOKENS]; /* emit_token calls */
  float logprobs[GTH_MAX_TOKENS];
  uint32_t n_tokens;
  uint32_t n_empty_token_text;  /* emit_token calls with no text (held back) */
  char text[GTH_MAX_TEXT];      /* all emitted text, NUL-terminated */
  size_t text_len;
  int bad_utf8_chunk;           /* some emit call carried invalid / split UTF-8 */
  int32_t finish_reason;        /* sandbox_instance_finish_reason after the last logits call */
  int32_t finish_cb;            /* what the host's finish callback got (0 = not called) */
  char finish[16];              /* finish_reason as OpenAI names it: "stop", "length", "" */
  /* emit_top_logprobs, per emitted token (index = the token's position in tokens[]) */
  struct realm_top_logprob top[GTH_MAX_TOP_TOKENS][REALM_GUEST_MAX_TOP_LOGPROBS];
  uint32_t n_top[GTH_MAX_TOP_TOKENS];
  uint32_t top_calls;
  int top_before_token;         /* an emit_top_logprobs call came before any emit_token */
  char log[2048];               /* every log line, '\n'-separated (truncated) */
};

struct gth;

/* Loads the model and the module (cache dir from REALM_GUEST_CACHE_DIR) and makes an
 * instance. Returns 0, 77-style skip (1) when the model or module file is absent, or < 0 with
 * a message in err. */
int gth_open(struct gth **ret, char *err, size_t errlen);
void gth_close(struct gth *g);
/* The same over a vocabulary-only GGUF (models_dir-relative path, e.g. "vocab/x.gguf") with
 * no engine: gth_run then only begins and ends the request (prompt tokenization checks), and
 * the instance runs under the given per-call deadline (0 = the production default). */
int gth_open_vocab(const char *rel, uint32_t call_ms, struct gth **ret, char *err,
                   size_t errlen);

/* What the host serves beyond ABI v1's first imports (all on by default). */
struct gth_opts {
  int no_meta;               /* model_meta callback NULL (the guest gets UNSUPPORTED) */
  int no_merges;             /* merge_count / merge callbacks NULL */
  const char *chat_template; /* served as tokenizer.chat_template instead of the file's */
};
int gth_open_vocab_opts(const char *rel, uint32_t call_ms, const struct gth_opts *opts,
                        struct gth **ret, char *err, size_t errlen);

/* Forces the next n tokens: the logits handed to the guest are -1e9 except 0 at force[i]. */
void gth_force(struct gth *g, const int32_t *force, uint32_t n);

/* Runs one request (blob from realm_req_*) to completion; *res is filled. Returns 0 or a
 * negative sandbox/engine error with a message. */
int gth_run(struct gth *g, const uint8_t *blob, uint32_t len, struct gth_result *res, char *err,
            size_t errlen);

/* Runs n (<= 4) requests in one instance at once: all begin, then round-robin one forward
 * step and one realm_on_logits call each until every one has stopped, then all end (forcing
 * applies to single runs only). */
int gth_run_many(struct gth *g, const uint8_t *const *blobs, const uint32_t *lens,
                 struct gth_result *const *res, uint32_t n, char *err, size_t errlen);

/* Facts for assertions. */
uint32_t gth_n_vocab(const struct gth *g);
uint64_t gth_token_piece_calls(const struct gth *g);
uint64_t gth_merge_calls(const struct gth *g);
int gth_file_bool(const struct gth *g, const char *key, int dflt); /* a bool key of the file */
/* The native tokenizer over the same vocabulary (tokenizer.h), built like the guest's; NULL
 * for BPE vocabularies. */
struct tok *gth_native_tok(struct gth *g);

#endif /* REALM_GUEST_TEST_HOST_H */
