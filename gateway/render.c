/*
 * render.c — OpenAI response JSON (see render.h). jansson keeps object keys in insertion
 * order, so the order below is the order on the wire. logprobs are rendered null: the
 * backend interface does not carry per-token log probabilities yet.
 */
#include "render.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

void gw_completion_id(enum gw_api_kind kind, char *out, size_t outlen) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  char rnd[25];
  for (int i = 0; i < 24; i++) rnd[i] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
  rnd[24] = '\0';
  snprintf(out, outlen, "%s%s", kind == GW_API_CHAT ? "chatcmpl-" : "cmpl-", rnd);
}

static json_t *usage_json(const struct gw_usage *u) {
  return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)u->prompt_tokens,
                   "completion_tokens", (json_int_t)u->completion_tokens, "total_tokens",
                   (json_int_t)u->prompt_tokens + (json_int_t)u->completion_tokens);
}

static json_t *head(const struct gw_render_ctx *c, const char *object) {
  return json_pack("{s:s,s:s,s:I,s:s}", "id", c->id, "object", object, "created",
                   (json_int_t)c->created, "model", c->model);
}

static char *dump_and_free(json_t *o) {
  if (!o) return NULL;
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return s;
}

char *gw_render_response(const struct gw_render_ctx *c, const char *text, size_t len,
                         const char *finish_reason, const struct gw_usage *usage) {
  json_t *o = head(c, c->kind == GW_API_CHAT ? "chat.completion" : "text_completion");
  json_t *choice;
  if (c->kind == GW_API_CHAT)
    choice = json_pack("{s:i,s:{s:s,s:s%},s:n,s:s}", "index", 0, "message", "role", "assistant",
                       "content", text, len, "logprobs", "finish_reason", finish_reason);
  else
    choice = json_pack("{s:s%,s:i,s:n,s:s}", "text", text, len, "index", 0, "logprobs",
                       "finish_reason", finish_reason);
  if (!o || !choice) {
    json_decref(o);
    json_decref(choice);
    return NULL;
  }
  json_object_set_new(o, "choices", json_pack("[o]", choice));
  json_object_set_new(o, "usage", usage_json(usage));
  return dump_and_free(o);
}

char *gw_render_chunk(const struct gw_render_ctx *c, const char *role, const char *text,
                      size_t len, const char *finish_reason) {
  json_t *o = head(c, c->kind == GW_API_CHAT ? "chat.completion.chunk" : "text_completion");
  json_t *choice = json_object();
  if (!o || !choice) {
    json_decref(o);
    json_decref(choice);
    return NULL;
  }
  if (c->kind == GW_API_CHAT) {
    json_t *delta = json_object();
    if (role) json_object_set_new(delta, "role", json_string(role));
    if (text) json_object_set_new(delta, "content", json_stringn(text, len));
    json_object_set_new(choice, "index", json_integer(0));
    json_object_set_new(choice, "delta", delta);
  } else {
    json_object_set_new(choice, "text", json_stringn(text ? text : "", text ? len : 0));
    json_object_set_new(choice, "index", json_integer(0));
  }
  json_object_set_new(choice, "logprobs", json_null());
  json_object_set_new(choice, "finish_reason", finish_reason ? json_string(finish_reason)
                                                             : json_null());
  json_object_set_new(o, "choices", json_pack("[o]", choice));
  if (c->include_usage) json_object_set_new(o, "usage", json_null());
  return dump_and_free(o);
}

char *gw_render_usage_chunk(const struct gw_render_ctx *c, const struct gw_usage *usage) {
  json_t *o = head(c, c->kind == GW_API_CHAT ? "chat.completion.chunk" : "text_completion");
  if (!o) return NULL;
  json_object_set_new(o, "choices", json_array());
  json_object_set_new(o, "usage", usage_json(usage));
  return dump_and_free(o);
}
