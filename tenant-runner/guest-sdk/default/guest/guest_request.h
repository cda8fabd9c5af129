/*
 * guest_request.h — the default guest's view of one request blob (ABI v1 "RLRQ" fields).
 *
 * realm_on_request_begin hands the guest a blob that it must free right away (it belongs to
 * the guest and every byte of it counts against the instance's memory cap), so this module
 * decodes it into one owned struct: the prompt or the chat messages, the sampling parameters,
 * the stop strings and stop tokens, max_tokens, logprobs and logit_bias. Values are only range-checked
 * here where the blob itself is malformed (a field of the wrong size); parameter ranges are
 * checked by sampler_create / output_stream_create, whose messages name the field and value.
 * Portable C11 over libc (compiled to wasm32 inside the guest); no host imports.
 */
#ifndef REALM_GUEST_REQUEST_H
#define REALM_GUEST_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "realm/limits.h"
#include "sampler.h"

/* Guest-private request key for the chat template, from before ABI v1 had
 * REALM_REQ_CHAT_TEMPLATE (17); both are read, with the same meaning: a family name ("chatml",
 * "llama3", ...) or a Jinja tokenizer.chat_template text to detect the family from. Kept so
 * that runners which already send it keep working. See docs/default-guest.md. */
#define GUEST_REQ_CHAT_TEMPLATE 0x10001u

#define GUEST_MAX_MESSAGES 1024       /* chat turns in one request */
#define GUEST_MAX_STOP_TOKENS 32      /* user-given stop token ids (EOS and end-of-turn extra) */

struct guest_message {
  char *role;    /* NUL-terminated copies */
  char *content;
};

struct guest_request {
  char *prompt;        /* NUL-terminated copy, NULL when the request is a chat */
  size_t prompt_len;
  struct guest_message *messages; /* [n_messages] */
  size_t n_messages;
  char *chat_template; /* REALM_REQ_CHAT_TEMPLATE / GUEST_REQ_CHAT_TEMPLATE (NUL-terminated)
                          or NULL */

  bool has_max_tokens;
  uint32_t max_tokens;
  bool has_temperature, has_top_p, has_seed;
  float temperature, top_p, min_p;
  uint32_t top_k;
  uint64_t seed;
  float repetition_penalty, frequency_penalty, presence_penalty;
  uint32_t top_logprobs; /* REALM_REQ_LOGPROBS: 0 = none */
  bool has_logprobs;     /* REALM_REQ_LOGPROBS was present (the client asked for logprobs) */
  bool skip_logprobs;    /* REALM_REQ_SKIP_LOGPROBS nonzero: the host drops emit_token's
                            logprob, so it need not be computed */

  char *stop[REALM_MAX_STOP_SEQUENCES]; /* NUL-terminated copies */
  size_t n_stop;
  int32_t stop_tokens[GUEST_MAX_STOP_TOKENS];
  size_t n_stop_tokens;
  struct sampler_logit_bias *logit_bias; /* [n_logit_bias] REALM_REQ_LOGIT_BIAS entries, in
                                            order; ids and ranges checked by sampler_create */
  size_t n_logit_bias;
};

/* Decodes blob[0..len) into *ret (zeroed first; free with guest_request_free even on error).
 * Returns 0, or a negative realm error with a message naming the field: REALM_E_INVALID_ARGUMENT
 * (bad header, truncated field, a fixed-size field of the wrong length, a message without its
 * role/content separator, both a prompt and messages, a string with an embedded NUL),
 * (also a LOGIT_BIAS field whose length is not a multiple of 8),
 * REALM_E_TOO_LARGE (more stop strings/tokens/messages/logit_bias entries than the limits),
 * REALM_E_NOMEM. */
int guest_request_decode(const uint8_t *blob, uint32_t len, struct guest_request *ret,
                         char *err, size_t errlen);
void guest_request_free(struct guest_request *r); /* accepts NULL and a zeroed struct */

#endif /* REALM_GUEST_REQUEST_H */
