/*
 * fuzz_gateway_request.c — libFuzzer target for the gateway's request-body parsers
 * (gateway/params.c, parse_chat.c, parse_completions.c) through gw_parse_request().
 *
 * The body of POST /v1/chat/completions and /v1/completions is the first thing an
 * authenticated client controls in full. Each input is parsed as both endpoints. On failure the
 * error must be one of the documented 4xx codes with a message; on success the target checks
 * what the rest of the gateway relies on: the limits (stop count, logit-bias entries, top
 * logprobs), every string present and NUL-terminated within the body's budget, roles from the
 * allowed set, and the parsed request freed without leaks (LeakSanitizer).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realm/error.h"
#include "realm/limits.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond, what)                                                          \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "fuzz_gateway_request: invariant broken: %s (%s:%d)\n", what,      \
              __FILE__, __LINE__);                                                       \
      abort();                                                                           \
    }                                                                                    \
  } while (0)

static void check_str(const char *s, size_t budget, const char *what) {
  if (!s) return;
  /* A parsed string never exceeds what the body could hold (concatenated parts included). */
  FUZZ_ASSERT(strnlen(s, budget + 1) <= budget, what);
}

static void parse_as(enum gw_api_kind kind, const char *body, size_t len) {
  struct gw_parsed p;
  struct gw_param_error pe;
  memset(&pe, 0, sizeof pe);
  int rc = gw_parse_request(kind, body, len, &p, &pe);
  if (rc < 0) {
    FUZZ_ASSERT(rc == REALM_E_INVALID_ARGUMENT || rc == REALM_E_OUT_OF_RANGE ||
                    rc == REALM_E_UNSUPPORTED || rc == REALM_E_TOO_LARGE,
                "unexpected error code (NOMEM cannot be genuine for inputs of a few KiB)");
    FUZZ_ASSERT(pe.code == rc, "perr->code differs from the return value");
    FUZZ_ASSERT(pe.message[0] != '\0', "failure without a message");
    FUZZ_ASSERT(memchr(pe.message, '\0', sizeof pe.message) != NULL, "message not terminated");
    FUZZ_ASSERT(memchr(pe.param, '\0', sizeof pe.param) != NULL, "param not terminated");
    FUZZ_ASSERT(p.root == NULL && p.msgs == NULL && p.owned == NULL && p.bias == NULL,
                "failed parse left state behind");
    gw_parsed_free(&p); /* documented as safe after a failure */
    return;
  }
  const struct gw_gen_request *r = &p.req;
  FUZZ_ASSERT(r->kind == kind, "kind not kept");
  FUZZ_ASSERT(r->n_stop <= REALM_MAX_STOP_SEQUENCES, "too many stop strings accepted");
  for (size_t i = 0; i < r->n_stop; i++) {
    FUZZ_ASSERT(r->stop[i] != NULL, "NULL stop string");
    check_str(r->stop[i], len, "stop string longer than the body");
  }
  FUZZ_ASSERT(r->n_logit_bias <= GW_MAX_LOGIT_BIAS, "too many logit_bias entries accepted");
  for (size_t i = 0; i < r->n_logit_bias; i++)
    FUZZ_ASSERT(r->logit_bias[i].bias >= -100 && r->logit_bias[i].bias <= 100,
                "logit_bias value out of range");
  FUZZ_ASSERT(r->top_logprobs <= 20, "top_logprobs above 20 accepted");
  FUZZ_ASSERT(!r->has_temperature || (r->temperature >= 0 && r->temperature <= 2),
              "temperature out of range");
  FUZZ_ASSERT(!r->has_top_p || (r->top_p > 0 && r->top_p <= 1), "top_p out of range");
  FUZZ_ASSERT(r->max_tokens <= REALM_MAX_COMPLETION_TOKENS, "max_tokens above the limit");
  check_str(r->model, len, "model longer than the body");
  check_str(r->user, len, "user longer than the body");
  if (kind == GW_API_CHAT) {
    FUZZ_ASSERT(r->n_messages >= 1 && r->messages != NULL, "chat without messages accepted");
    FUZZ_ASSERT(r->n_messages <= REALM_MAX_MESSAGES, "too many messages accepted");
    for (size_t i = 0; i < r->n_messages; i++) {
      const struct gw_chat_message *m = &r->messages[i];
      FUZZ_ASSERT(m->role != NULL && m->content != NULL, "message without role or content");
      FUZZ_ASSERT(!strcmp(m->role, "system") || !strcmp(m->role, "developer") ||
                      !strcmp(m->role, "user") || !strcmp(m->role, "assistant") ||
                      !strcmp(m->role, "tool"),
                  "unknown role accepted");
      check_str(m->content, len, "content longer than the body");
      check_str(m->name, len, "name longer than the body");
      check_str(m->tool_call_id, len, "tool_call_id longer than the body");
    }
  } else {
    FUZZ_ASSERT(r->prompt != NULL, "completion without a prompt accepted");
    check_str(r->prompt, len, "prompt longer than the body");
  }
  gw_parsed_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* The HTTP layer hands the body over as bytes with a length, not NUL-terminated: copy it to
   * an exact-size heap block so ASan catches a parser that reads one byte past the end. */
  char *body = malloc(size ? size : 1);
  FUZZ_ASSERT(body != NULL, "malloc");
  if (size) memcpy(body, data, size);
  parse_as(GW_API_CHAT, body, size);
  parse_as(GW_API_COMPLETION, body, size);
  free(body);
  return 0;
}
