/*
 * params.c — validation of the parameters shared by /v1/chat/completions and /v1/completions
 * (see request.h), and the entry point that parses a body for either endpoint.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realm/error.h"
#include "realm/limits.h"
#include "request.h"
#include "utf8.h"

int gw_param_fail(struct gw_param_error *perr, int code, const char *param, const char *fmt,
                  ...) {
  va_list ap;
  perr->code = code;
  snprintf(perr->param, sizeof perr->param, "%s", param ? param : "");
  va_start(ap, fmt);
  vsnprintf(perr->message, sizeof perr->message, fmt, ap);
  va_end(ap);
  return code;
}

int gw_parsed_own(struct gw_parsed *p, char *s) {
  char **v = realloc(p->owned, (p->n_owned + 1) * sizeof *v);
  if (!v) {
    free(s);
    return REALM_E_NOMEM;
  }
  p->owned = v;
  p->owned[p->n_owned++] = s;
  return 0;
}

void gw_parsed_free(struct gw_parsed *p) {
  if (!p) return;
  json_decref(p->root);
  free(p->msgs);
  for (size_t i = 0; i < p->n_owned; i++) free(p->owned[i]);
  free(p->owned);
  free(p->bias);
  memset(p, 0, sizeof *p);
}

/* Field present and not JSON null. */
static const json_t *field(const json_t *o, const char *key) {
  const json_t *v = json_object_get(o, key);
  return (v && !json_is_null(v)) ? v : NULL;
}

static int get_number(const json_t *root, const char *key, double lo, double hi, bool lo_open,
                      bool *ret_has, double *ret, struct gw_param_error *perr) {
  const json_t *v = field(root, key);
  if (!v) return 0;
  if (!json_is_number(v))
    return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, key, "'%s' must be a number", key);
  double d = json_number_value(v);
  if ((lo_open ? d <= lo : d < lo) || d > hi)
    return gw_param_fail(perr, REALM_E_OUT_OF_RANGE, key, "'%s' must be %s %g and <= %g, got %g",
                         key, lo_open ? ">" : ">=", lo, hi, d);
  if (ret_has) *ret_has = true;
  *ret = d;
  return 0;
}

static int get_int(const json_t *root, const char *key, json_int_t lo, json_int_t hi,
                   bool *ret_has, json_int_t *ret, struct gw_param_error *perr) {
  const json_t *v = field(root, key);
  if (!v) return 0;
  if (!json_is_integer(v))
    return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, key, "'%s' must be an integer", key);
  json_int_t i = json_integer_value(v);
  if (i < lo || i > hi)
    return gw_param_fail(perr, REALM_E_OUT_OF_RANGE, key,
                         "'%s' must be between %lld and %lld, got %lld", key, (long long)lo,
                         (long long)hi, (long long)i);
  if (ret_has) *ret_has = true;
  *ret = i;
  return 0;
}

static int get_bool(const json_t *o, const char *key, const char *param, bool *ret,
                    struct gw_param_error *perr) {
  const json_t *v = field(o, key);
  if (!v) return 0;
  if (!json_is_boolean(v))
    return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, param, "'%s' must be a boolean", param);
  *ret = json_is_true(v);
  return 0;
}

static int parse_stop(const json_t *root, struct gw_gen_request *req,
                      struct gw_param_error *perr) {
  const json_t *v = field(root, "stop");
  if (!v) return 0;
  if (json_is_string(v)) {
    if (json_string_length(v) == 0 || json_string_length(v) > REALM_MAX_STOP_SEQUENCE_BYTES)
      return gw_param_fail(perr, REALM_E_OUT_OF_RANGE, "stop",
                           "'stop' must be 1 to %d bytes long", REALM_MAX_STOP_SEQUENCE_BYTES);
    req->stop[0] = json_string_value(v);
    req->n_stop = 1;
    return 0;
  }
  if (!json_is_array(v))
    return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "stop",
                         "'stop' must be a string or an array of strings");
  if (json_array_size(v) > REALM_MAX_STOP_SEQUENCES)
    return gw_param_fail(perr, REALM_E_OUT_OF_RANGE, "stop",
                         "'stop' may hold at most %d sequences, got %zu",
                         REALM_MAX_STOP_SEQUENCES, json_array_size(v));
  for (size_t i = 0; i < json_array_size(v); i++) {
    const json_t *s = json_array_get(v, i);
    char param[32];
    snprintf(param, sizeof param, "stop[%zu]", i);
    if (!json_is_string(s))
      return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, param, "'%s' must be a string", param);
    if (json_string_length(s) == 0 || json_string_length(s) > REALM_MAX_STOP_SEQUENCE_BYTES)
      return gw_param_fail(perr, REALM_E_OUT_OF_RANGE, param, "'%s' must be 1 to %d bytes long",
                           param, REALM_MAX_STOP_SEQUENCE_BYTES);
    req->stop[req->n_stop++] = json_string_value(s);
  }
  return 0;
}

static int parse_logit_bias(const json_t *root, struct gw_parsed *p,
                            struct gw_param_error *perr) {
  const json_t *v = field(root, "logit_bias");
  if (!v) return 0;
  if (!json_is_object(v))
    return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "logit_bias",
                         "'logit_bias' must be an object mapping token ids to numbers");
  size_t n = json_object_size(v);
  if (n > GW_MAX_LOGIT_BIAS)
    return gw_param_fail(perr, REALM_E_OUT_OF_RANGE, "logit_bias",
                         "'logit_bias' may hold at most %d entries, got %zu", GW_MAX_LOGIT_BIAS, n);
  if (n == 0) return 0;
  p->bias = calloc(n, sizeof *p->bias);
  if (!p->bias) return gw_param_fail(perr, REALM_E_NOMEM, "", "out of memory");
  const char *key;
  const json_t *val;
  size_t i = 0;
  json_object_foreach((json_t *)v, key, val) {
    char param[48];
    snprintf(param, sizeof param, "logit_bias.%.24s", key);
    char *end = NULL;
    errno = 0;
    long id = strtol(key, &end, 10);
    if (!*key || *end || errno || id < 0 || id > (long)REALM_MAX_VOCAB || key[0] == '+' ||
        key[0] == ' ')
      return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "logit_bias",
                           "'logit_bias' keys must be token ids (0..%u), got '%.24s'",
                           REALM_MAX_VOCAB, key);
    if (!json_is_number(val))
      return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, param, "'%s' must be a number", param);
    double b = json_number_value(val);
    if (b < -100 || b > 100)
      return gw_param_fail(perr, REALM_E_OUT_OF_RANGE, param,
                           "'%s' must be between -100 and 100, got %g", param, b);
    p->bias[i].token_id = (int32_t)id;
    p->bias[i].bias = (float)b;
    i++;
  }
  p->req.logit_bias = p->bias;
  p->req.n_logit_bias = i;
  return 0;
}

int gw_parse_common(const json_t *root, struct gw_parsed *p, struct gw_param_error *perr) {
  struct gw_gen_request *req = &p->req;
  int r;
  const json_t *model = json_object_get(root, "model");
  if (!model || json_is_null(model))
    return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "model",
                         "you must provide a model parameter");
  if (!json_is_string(model))
    return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "model", "'model' must be a string");
  if (json_string_length(model) == 0 || json_string_length(model) > GW_MAX_MODEL_NAME_BYTES)
    return gw_param_fail(perr, REALM_E_OUT_OF_RANGE, "model", "'model' must be 1 to %d bytes",
                         GW_MAX_MODEL_NAME_BYTES);
  req->model = json_string_value(model);

  json_int_t iv = 0;
  bool has = false;
  if ((r = get_int(root, "max_tokens", 1, REALM_MAX_COMPLETION_TOKENS, &has, &iv, perr)) < 0)
    return r;
  if (has) req->max_tokens = (uint32_t)iv;
  has = false;
  if ((r = get_int(root, "max_completion_tokens", 1, REALM_MAX_COMPLETION_TOKENS, &has, &iv,
                   perr)) < 0)
    return r;
  if (has) req->max_tokens = (uint32_t)iv; /* the newer name wins when both are given */

  if ((r = get_number(root, "temperature", 0, 2, false, &req->has_temperature, &req->temperature,
                      perr)) < 0)
    return r;
  if ((r = get_number(root, "top_p", 0, 1, true, &req->has_top_p, &req->top_p, perr)) < 0)
    return r;
  if ((r = get_number(root, "presence_penalty", -2, 2, false, NULL, &req->presence_penalty,
                      perr)) < 0)
    return r;
  if ((r = get_number(root, "frequency_penalty", -2, 2, false, NULL, &req->frequency_penalty,
                      perr)) < 0)
    return r;
  if ((r = get_int(root, "seed", INT64_MIN, INT64_MAX, &req->has_seed, &iv, perr)) < 0) return r;
  if (req->has_seed) req->seed = (int64_t)iv;

  const json_t *n = field(root, "n");
  if (n) {
    if (!json_is_integer(n))
      return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "n", "'n' must be an integer");
    if (json_integer_value(n) < 1)
      return gw_param_fail(perr, REALM_E_OUT_OF_RANGE, "n", "'n' must be at least 1");
    if (json_integer_value(n) > 1)
      return gw_param_fail(perr, REALM_E_UNSUPPORTED, "n", "n > 1 is not supported");
  }
  if ((r = parse_stop(root, req, perr)) < 0) return r;
  if ((r = parse_logit_bias(root, p, perr)) < 0) return r;

  if (req->kind == GW_API_CHAT) {
    if ((r = get_bool(root, "logprobs", "logprobs", &req->logprobs, perr)) < 0) return r;
    has = false;
    if ((r = get_int(root, "top_logprobs", 0, 20, &has, &iv, perr)) < 0) return r;
    if (has) {
      if (!req->logprobs)
        return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "top_logprobs",
                             "'top_logprobs' requires 'logprobs' to be true");
      req->top_logprobs = (uint32_t)iv;
    }
  } else {
    /* The legacy completions API takes logprobs as the number of alternatives (0..5). */
    has = false;
    if ((r = get_int(root, "logprobs", 0, 5, &has, &iv, perr)) < 0) return r;
    if (has) {
      req->logprobs = true;
      req->top_logprobs = (uint32_t)iv;
    }
  }

  const json_t *user = field(root, "user");
  if (user) {
    if (!json_is_string(user))
      return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "user", "'user' must be a string");
    if (json_string_length(user) > GW_MAX_USER_BYTES)
      return gw_param_fail(perr, REALM_E_OUT_OF_RANGE, "user", "'user' must be at most %d bytes",
                           GW_MAX_USER_BYTES);
    req->user = json_string_value(user);
  }

  if ((r = get_bool(root, "stream", "stream", &req->stream, perr)) < 0) return r;
  const json_t *so = field(root, "stream_options");
  if (so) {
    if (!json_is_object(so))
      return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "stream_options",
                           "'stream_options' must be an object");
    if (!req->stream)
      return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "stream_options",
                           "'stream_options' is only allowed when 'stream' is true");
    if ((r = get_bool(so, "include_usage", "stream_options.include_usage", &req->include_usage,
                      perr)) < 0)
      return r;
  }
  return 0;
}

int gw_parse_request(enum gw_api_kind kind, const char *body, size_t len, struct gw_parsed *ret,
                     struct gw_param_error *perr) {
  struct gw_parsed p;
  memset(&p, 0, sizeof p);
  memset(ret, 0, sizeof *ret);
  p.req.kind = kind;
  size_t bad = 0;
  if (len == 0)
    return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "",
                         "the request body is empty; send a JSON object");
  if (!gw_utf8_valid(body, len, &bad))
    return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "",
                         "the request body is not valid UTF-8 (bad byte at offset %zu)", bad);
  json_error_t je;
  p.root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
  if (!p.root)
    return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "",
                         "the request body is not valid JSON: %s (line %d, column %d)", je.text,
                         je.line, je.column);
  int r;
  if (!json_is_object(p.root)) {
    r = gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "", "the request body must be a JSON object");
  } else if ((r = gw_parse_common(p.root, &p, perr)) == 0) {
    r = kind == GW_API_CHAT ? gw_parse_chat_messages(p.root, &p, perr)
                            : gw_parse_completion_prompt(p.root, &p, perr);
  }
  if (r == 0 && p.req.prompt_tokens_estimate > REALM_MAX_PROMPT_TOKENS)
    r = gw_param_fail(perr, REALM_E_TOO_LARGE, kind == GW_API_CHAT ? "messages" : "prompt",
                      "the prompt is about %u tokens, more than the limit of %d",
                      p.req.prompt_tokens_estimate, REALM_MAX_PROMPT_TOKENS);
  if (r < 0) {
    gw_parsed_free(&p);
    return r;
  }
  *ret = p;
  ret->req.messages = ret->msgs;
  return 0;
}
