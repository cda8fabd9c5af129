/*
 * guest_request.c — decodes the ABI v1 request blob into struct guest_request.
 *
 * The blob comes from the host, which built it from a client's request, so it is checked like
 * any outside input: the header through realm_req_check, each field through realm_req_next
 * (overflow-safe), fixed-size fields by their length, and strings for embedded NULs (the
 * libraries downstream take NUL-terminated text). Unknown keys are skipped, as the ABI asks.
 * Everything kept is copied, because the caller frees the blob as soon as this returns.
 */
#include "guest_request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realm/error.h"
#include "realm_guest.h"

__attribute__((format(printf, 4, 5)))
static int fail(int code, char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* A NUL-terminated copy of v[0..n), or NULL when out of memory. */
static char *dup_bytes(const uint8_t *v, size_t n) {
  char *s = malloc(n + 1);
  if (!s) return NULL;
  if (n) memcpy(s, v, n);
  s[n] = '\0';
  return s;
}

static uint32_t get_u32(const uint8_t *p) {
  return realm_req_get_u32_(p);
}

static float get_f32(const uint8_t *p) {
  uint32_t u = get_u32(p);
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* Names of the keys, for messages. */
static const char *key_name(uint32_t key) {
  switch (key) {
  case REALM_REQ_MAX_TOKENS: return "max_tokens";
  case REALM_REQ_TEMPERATURE: return "temperature";
  case REALM_REQ_TOP_K: return "top_k";
  case REALM_REQ_TOP_P: return "top_p";
  case REALM_REQ_MIN_P: return "min_p";
  case REALM_REQ_SEED: return "seed";
  case REALM_REQ_REPETITION_PENALTY: return "repetition_penalty";
  case REALM_REQ_FREQUENCY_PENALTY: return "frequency_penalty";
  case REALM_REQ_PRESENCE_PENALTY: return "presence_penalty";
  case REALM_REQ_LOGPROBS: return "logprobs";
  case REALM_REQ_STOP_TOKEN: return "stop_token";
  case REALM_REQ_SKIP_LOGPROBS: return "skip_logprobs";
  default: return "field";
  }
}

/* Appends a LOGIT_BIAS field's {i32 token, f32 bias} pairs. */
static int add_logit_bias(struct guest_request *r, const struct realm_req_field *f, char *err,
                          size_t errlen) {
  if (f->len % 8 != 0)
    return fail(REALM_E_INVALID_ARGUMENT, err, errlen,
                "request field logit_bias (key %u): %u bytes, expected a multiple of 8 "
                "({i32 token, f32 bias} pairs)",
                (unsigned)REALM_REQ_LOGIT_BIAS, f->len);
  size_t n = f->len / 8;
  if (n > SAMPLER_MAX_LOGIT_BIAS_ENTRIES - r->n_logit_bias)
    return fail(REALM_E_TOO_LARGE, err, errlen, "logit_bias: more than %d entries",
                SAMPLER_MAX_LOGIT_BIAS_ENTRIES);
  if (n == 0) return 0;
  struct sampler_logit_bias *v = realloc(r->logit_bias, (r->n_logit_bias + n) * sizeof *v);
  if (!v) return fail(REALM_E_NOMEM, err, errlen, "logit_bias: out of memory");
  r->logit_bias = v;
  for (size_t i = 0; i < n; i++)
    v[r->n_logit_bias++] = (struct sampler_logit_bias){(int32_t)get_u32(f->value + 8 * i),
                                                       get_f32(f->value + 8 * i + 4)};
  return 0;
}

static int add_message(struct guest_request *r, const struct realm_req_field *f, char *err,
                       size_t errlen) {
  const uint8_t *sep = memchr(f->value, '\0', f->len);
  if (!sep)
    return fail(REALM_E_INVALID_ARGUMENT, err, errlen,
                "messages[%zu]: expected \"role\\0content\", found no NUL separator",
                r->n_messages);
  size_t role_len = (size_t)(sep - f->value), content_len = f->len - role_len - 1;
  if (memchr(sep + 1, '\0', content_len))
    return fail(REALM_E_INVALID_ARGUMENT, err, errlen,
                "messages[%zu].content: contains a NUL byte", r->n_messages);
  if (r->n_messages >= GUEST_MAX_MESSAGES)
    return fail(REALM_E_TOO_LARGE, err, errlen, "messages: more than %d", GUEST_MAX_MESSAGES);
  struct guest_message *v = realloc(r->messages, (r->n_messages + 1) * sizeof *v);
  if (!v) return fail(REALM_E_NOMEM, err, errlen, "messages: out of memory");
  r->messages = v;
  struct guest_message *m = &v[r->n_messages];
  m->role = dup_bytes(f->value, role_len);
  m->content = dup_bytes(sep + 1, content_len);
  r->n_messages++; /* counted before the check, so guest_request_free frees a half copy */
  if (!m->role || !m->content) return fail(REALM_E_NOMEM, err, errlen, "messages: out of memory");
  return 0;
}

int guest_request_decode(const uint8_t *blob, uint32_t len, struct guest_request *ret,
                         char *err, size_t errlen) {
  memset(ret, 0, sizeof *ret);
  if (!blob || realm_req_check(blob, len) < 0)
    return fail(REALM_E_INVALID_ARGUMENT, err, errlen,
                "request blob: bad header (length %u; expected magic RLRQ, version %d)", len,
                REALM_GUEST_ABI_VERSION);
  uint32_t cursor = REALM_REQ_HEADER_BYTES;
  struct realm_req_field f;
  int more;
  size_t index = 0;
  while ((more = realm_req_next(blob, len, &cursor, &f)) == 1) {
    uint32_t want = 0; /* fixed size of a numeric field, 0 for strings */
    switch (f.key) {
    case REALM_REQ_MAX_TOKENS: case REALM_REQ_TEMPERATURE: case REALM_REQ_TOP_K:
    case REALM_REQ_TOP_P: case REALM_REQ_MIN_P: case REALM_REQ_REPETITION_PENALTY:
    case REALM_REQ_FREQUENCY_PENALTY: case REALM_REQ_PRESENCE_PENALTY: case REALM_REQ_LOGPROBS:
    case REALM_REQ_STOP_TOKEN: case REALM_REQ_SKIP_LOGPROBS:
      want = 4;
      break;
    case REALM_REQ_SEED:
      want = 8;
      break;
    default:
      break;
    }
    if (want && f.len != want)
      return fail(REALM_E_INVALID_ARGUMENT, err, errlen, "request field %s (key %u): %u bytes, expected %u",
                  key_name(f.key), f.key, f.len, want);
    switch (f.key) {
    case REALM_REQ_PROMPT:
      if (ret->prompt)
        return fail(REALM_E_INVALID_ARGUMENT, err, errlen, "prompt: given more than once");
      ret->prompt = dup_bytes(f.value, f.len);
      if (!ret->prompt) return fail(REALM_E_NOMEM, err, errlen, "prompt: out of memory");
      ret->prompt_len = f.len;
      break;
    case REALM_REQ_MESSAGE: {
      int rc = add_message(ret, &f, err, errlen);
      if (rc < 0) return rc;
      break;
    }
    case REALM_REQ_LOGIT_BIAS: {
      int rc = add_logit_bias(ret, &f, err, errlen);
      if (rc < 0) return rc;
      break;
    }
    case REALM_REQ_CHAT_TEMPLATE:
    case GUEST_REQ_CHAT_TEMPLATE:
      free(ret->chat_template);
      ret->chat_template = dup_bytes(f.value, f.len);
      if (!ret->chat_template) return fail(REALM_E_NOMEM, err, errlen, "chat_template: out of memory");
      break;
    case REALM_REQ_MAX_TOKENS:
      ret->has_max_tokens = true;
      ret->max_tokens = get_u32(f.value);
      break;
    case REALM_REQ_TEMPERATURE:
      ret->has_temperature = true;
      ret->temperature = get_f32(f.value);
      break;
    case REALM_REQ_TOP_K:
      ret->top_k = get_u32(f.value);
      break;
    case REALM_REQ_TOP_P:
      ret->has_top_p = true;
      ret->top_p = get_f32(f.value);
      break;
    case REALM_REQ_MIN_P:
      ret->min_p = get_f32(f.value);
      break;
    case REALM_REQ_SEED:
      ret->has_seed = true;
      ret->seed = (uint64_t)get_u32(f.value) | (uint64_t)get_u32(f.value + 4) << 32;
      break;
    case REALM_REQ_REPETITION_PENALTY:
      ret->repetition_penalty = get_f32(f.value);
      break;
    case REALM_REQ_FREQUENCY_PENALTY:
      ret->frequency_penalty = get_f32(f.value);
      break;
    case REALM_REQ_PRESENCE_PENALTY:
      ret->presence_penalty = get_f32(f.value);
      break;
    case REALM_REQ_LOGPROBS:
      ret->has_logprobs = true;
      ret->top_logprobs = get_u32(f.value);
      break;
    case REALM_REQ_SKIP_LOGPROBS:
      ret->skip_logprobs = get_u32(f.value) != 0;
      break;
    case REALM_REQ_STOP:
      if (ret->n_stop >= REALM_MAX_STOP_SEQUENCES)
        return fail(REALM_E_TOO_LARGE, err, errlen, "stop: more than %d strings",
                    REALM_MAX_STOP_SEQUENCES);
      if (memchr(f.value, '\0', f.len))
        return fail(REALM_E_INVALID_ARGUMENT, err, errlen, "stop[%zu]: contains a NUL byte",
                    ret->n_stop);
      ret->stop[ret->n_stop] = dup_bytes(f.value, f.len);
      if (!ret->stop[ret->n_stop]) return fail(REALM_E_NOMEM, err, errlen, "stop: out of memory");
      ret->n_stop++;
      break;
    case REALM_REQ_STOP_TOKEN:
      if (ret->n_stop_tokens >= GUEST_MAX_STOP_TOKENS)
        return fail(REALM_E_TOO_LARGE, err, errlen, "stop_token: more than %d ids",
                    GUEST_MAX_STOP_TOKENS);
      ret->stop_tokens[ret->n_stop_tokens++] = (int32_t)get_u32(f.value);
      break;
    default:
      break; /* unknown keys (and MODEL, which the host already routed by) are skipped */
    }
    index++;
  }
  if (more < 0)
    return fail(REALM_E_INVALID_ARGUMENT, err, errlen,
                "request blob: field %zu is truncated (at byte %u of %u)", index, cursor, len);
  if (ret->prompt && ret->n_messages)
    return fail(REALM_E_INVALID_ARGUMENT, err, errlen,
                "request has both a prompt and %zu chat messages; send one or the other",
                ret->n_messages);
  return 0;
}

void guest_request_free(struct guest_request *r) {
  if (!r) return;
  free(r->prompt);
  for (size_t i = 0; i < r->n_messages; i++) {
    free(r->messages[i].role);
    free(r->messages[i].content);
  }
  free(r->messages);
  free(r->chat_template);
  free(r->logit_bias);
  for (size_t i = 0; i < r->n_stop; i++) free(r->stop[i]);
  memset(r, 0, sizeof *r);
}
