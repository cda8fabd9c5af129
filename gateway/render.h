/*
 * render.h — the OpenAI response bodies: non-streaming completions and the streaming chunks,
 * byte-compatible with what OpenAI's API returns (compact JSON, keys in OpenAI's order).
 */
#ifndef GW_RENDER_H
#define GW_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <stdbool.h>

#include "backend.h"

struct gw_render_ctx {
  enum gw_api_kind kind;
  const char *id; /* "chatcmpl-..." / "cmpl-..." */
  int64_t created;
  const char *model;
  bool include_usage; /* streaming: every chunk carries "usage": null, then a usage chunk */
};

/* Writes a fresh completion id for kind into out ("chatcmpl-" or "cmpl-" + 24 chars). */
void gw_completion_id(enum gw_api_kind kind, char *out, size_t outlen);

/* Collects per-token logprob entries into OpenAI's shape for the API kind:
 *   chat:        {"content":[{"token","logprob","bytes","top_logprobs":[{token,logprob,bytes}]}],
 *                 "refusal":null}
 *   completions: {"tokens":[...],"token_logprobs":[...],"top_logprobs":[{token:logprob}],
 *                 "text_offset":[...]}
 * `token` is the token's text when it is valid UTF-8; bytes that are not (a token holding part
 * of a character) are written as the four characters \xNN, and `bytes` always has the exact
 * bytes. text_offset counts characters (UTF-8 lead bytes) of the token texts before each
 * token, across every chunk of a stream. */
struct gw_logprobs_acc {
  enum gw_api_kind kind;
  json_t *obj;     /* NULL until the first entry since the last take */
  uint64_t offset; /* completions: characters before the next token */
  bool oom;        /* an allocation failed: the response must fail */
};
void gw_logprobs_init(struct gw_logprobs_acc *a, enum gw_api_kind kind);
void gw_logprobs_add(struct gw_logprobs_acc *a, const struct gw_token_logprob *lp);
/* The entries collected since the last take (a new reference; the caller passes it to a render
 * function), or an empty object of the right shape when there are none and want_empty. */
json_t *gw_logprobs_take(struct gw_logprobs_acc *a, bool want_empty);
void gw_logprobs_free(struct gw_logprobs_acc *a);

/* Non-streaming body. logprobs (stolen; NULL renders null) comes from gw_logprobs_take.
 * Returns a malloc'd string or NULL on allocation failure. */
char *gw_render_response(const struct gw_render_ctx *c, const char *text, size_t len,
                         const char *finish_reason, const struct gw_usage *usage,
                         json_t *logprobs);
/* One streaming chunk: role (chat, first chunk) or content text, or finish_reason (last);
 * logprobs as above (stolen; NULL renders null). */
char *gw_render_chunk(const struct gw_render_ctx *c, const char *role, const char *text,
                      size_t len, const char *finish_reason, json_t *logprobs);
/* The usage-only chunk sent before [DONE] when include_usage is set. */
char *gw_render_usage_chunk(const struct gw_render_ctx *c, const struct gw_usage *usage);

#endif
