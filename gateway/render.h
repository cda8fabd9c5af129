/*
 * render.h — the OpenAI response bodies: non-streaming completions and the streaming chunks,
 * byte-compatible with what OpenAI's API returns (compact JSON, keys in OpenAI's order).
 */
#ifndef GW_RENDER_H
#define GW_RENDER_H

#include <stddef.h>
#include <stdint.h>

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

/* Non-streaming body. Returns a malloc'd string or NULL on allocation failure. */
char *gw_render_response(const struct gw_render_ctx *c, const char *text, size_t len,
                         const char *finish_reason, const struct gw_usage *usage);
/* One streaming chunk: role (chat, first chunk) or content text, or finish_reason (last). */
char *gw_render_chunk(const struct gw_render_ctx *c, const char *role, const char *text,
                      size_t len, const char *finish_reason);
/* The usage-only chunk sent before [DONE] when include_usage is set. */
char *gw_render_usage_chunk(const struct gw_render_ctx *c, const struct gw_usage *usage);

#endif
