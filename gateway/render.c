/*
 * render.c — OpenAI response JSON (see render.h). jansson keeps object keys in insertion
 * order, so the order below is the order on the wire. logprobs are null unless the request
 * asked for them; then they come from the token events' entries (gw_logprobs_*).
 */
#include "render.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "utf8.h"

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

/* ---- logprobs ---- */

/* The token as a JSON string: valid UTF-8 as is, other bytes as the text \xNN. */
static json_t *token_string(const char *p, size_t len) {
  if (gw_utf8_valid(p, len, NULL)) return json_stringn(p, len);
  struct gw_buf b = {0};
  int r = 0;
  for (size_t i = 0; r == 0 && i < len;) {
    unsigned char c = (unsigned char)p[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n && i + n <= len && gw_utf8_valid(p + i, n, NULL)) {
      r = gw_buf_append(&b, p + i, n);
      i += n;
    } else {
      r = gw_buf_appendf(&b, "\\x%02x", c);
      i++;
    }
  }
  json_t *s = r == 0 ? json_stringn(b.data ? b.data : "", b.len) : NULL;
  gw_buf_free(&b);
  return s;
}

static json_t *byte_array(const char *p, size_t len) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < len; i++)
    if (json_array_append_new(a, json_integer((unsigned char)p[i])) < 0) {
      json_decref(a);
      return NULL;
    }
  return a;
}

/* {"token","logprob","bytes"} — the chat entry without its alternatives. */
static json_t *chat_entry(const char *text, size_t len, float logprob) {
  json_t *tok = token_string(text, len), *bytes = byte_array(text, len);
  if (!tok || !bytes) {
    json_decref(tok);
    json_decref(bytes);
    return NULL;
  }
  return json_pack("{s:o,s:f,s:o}", "token", tok, "logprob", (double)logprob, "bytes", bytes);
}

static json_t *empty_logprobs(enum gw_api_kind kind) {
  if (kind == GW_API_CHAT) return json_pack("{s:[],s:n}", "content", "refusal");
  return json_pack("{s:[],s:[],s:[],s:[]}", "tokens", "token_logprobs", "top_logprobs",
                   "text_offset");
}

static uint64_t char_count(const char *p, size_t len) {
  uint64_t n = 0;
  for (size_t i = 0; i < len; i++) n += ((unsigned char)p[i] & 0xc0) != 0x80;
  return n;
}

void gw_logprobs_init(struct gw_logprobs_acc *a, enum gw_api_kind kind) {
  *a = (struct gw_logprobs_acc){.kind = kind};
}

void gw_logprobs_add(struct gw_logprobs_acc *a, const struct gw_token_logprob *lp) {
  if (a->oom) return;
  if (!a->obj && !(a->obj = empty_logprobs(a->kind))) {
    a->oom = true;
    return;
  }
  int r = 0;
  if (a->kind == GW_API_CHAT) {
    json_t *e = chat_entry(lp->text, lp->len, lp->logprob), *top = json_array();
    for (size_t i = 0; e && top && i < lp->n_top; i++) {
      json_t *t = chat_entry(lp->top[i].text, lp->top[i].len, lp->top[i].logprob);
      if (!t || json_array_append_new(top, t) < 0) r = -1;
    }
    if (!e || !top || r < 0 || json_object_set_new(e, "top_logprobs", top) < 0 ||
        json_array_append_new(json_object_get(a->obj, "content"), e) < 0) {
      a->oom = true;
      return;
    }
    return;
  }
  json_t *top = json_object();
  for (size_t i = 0; top && r == 0 && i < lp->n_top; i++) {
    json_t *k = token_string(lp->top[i].text, lp->top[i].len);
    /* An object key: the first (best) entry of a repeated text wins, as a dict would keep. */
    if (!k || (!json_object_get(top, json_string_value(k)) &&
               json_object_set_new(top, json_string_value(k), json_real(lp->top[i].logprob)) < 0))
      r = -1;
    json_decref(k);
  }
  if (!top || r < 0 ||
      json_array_append_new(json_object_get(a->obj, "tokens"), token_string(lp->text, lp->len)) < 0 ||
      json_array_append_new(json_object_get(a->obj, "token_logprobs"), json_real(lp->logprob)) < 0 ||
      json_array_append_new(json_object_get(a->obj, "top_logprobs"), top) < 0 ||
      json_array_append_new(json_object_get(a->obj, "text_offset"), json_integer((json_int_t)a->offset)) < 0) {
    a->oom = true;
    return;
  }
  a->offset += char_count(lp->text, lp->len);
}

json_t *gw_logprobs_take(struct gw_logprobs_acc *a, bool want_empty) {
  json_t *o = a->obj;
  a->obj = NULL;
  if (!o && want_empty && !(o = empty_logprobs(a->kind))) a->oom = true;
  return o;
}

void gw_logprobs_free(struct gw_logprobs_acc *a) {
  json_decref(a->obj);
  a->obj = NULL;
}

/* ---- bodies ---- */

char *gw_render_response(const struct gw_render_ctx *c, const char *text, size_t len,
                         const char *finish_reason, const struct gw_usage *usage,
                         json_t *logprobs) {
  json_t *o = head(c, c->kind == GW_API_CHAT ? "chat.completion" : "text_completion");
  json_t *lp = logprobs ? logprobs : json_null();
  json_t *choice;
  if (c->kind == GW_API_CHAT)
    choice = json_pack("{s:i,s:{s:s,s:s%},s:o,s:s}", "index", 0, "message", "role", "assistant",
                       "content", text, len, "logprobs", lp, "finish_reason", finish_reason);
  else
    choice = json_pack("{s:s%,s:i,s:o,s:s}", "text", text, len, "index", 0, "logprobs", lp,
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
                      size_t len, const char *finish_reason, json_t *logprobs) {
  json_t *o = head(c, c->kind == GW_API_CHAT ? "chat.completion.chunk" : "text_completion");
  json_t *choice = json_object();
  if (!o || !choice) {
    json_decref(o);
    json_decref(choice);
    json_decref(logprobs);
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
  json_object_set_new(choice, "logprobs", logprobs ? logprobs : json_null());
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
