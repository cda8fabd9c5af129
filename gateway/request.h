/*
 * request.h — parsing and validating the bodies of the generation endpoints into a
 * struct gw_gen_request (backend.h).
 *
 * params.c holds what both endpoints share (sampling parameters, stop, stream options ...),
 * parse_chat.c the messages of /v1/chat/completions and parse_completions.c the prompt of
 * /v1/completions. Rules: JSON null means "absent"; unknown fields are ignored; a field of the
 * wrong type or out of range fails with a 400 whose `param` names the field (with its path,
 * e.g. "messages[2].role") and whose message says what was expected.
 */
#ifndef GW_REQUEST_H
#define GW_REQUEST_H

#include <jansson.h>
#include <stddef.h>

#include "backend.h"

#define GW_PARAM_MAX 96
#define GW_MESSAGE_MAX 320
#define GW_MAX_LOGIT_BIAS 1024
#define GW_MAX_MODEL_NAME_BYTES 256
#define GW_MAX_USER_BYTES 256

struct gw_param_error {
  int code; /* REALM_E_INVALID_ARGUMENT, _OUT_OF_RANGE, _UNSUPPORTED, _TOO_LARGE */
  char param[GW_PARAM_MAX]; /* "" when the error is about the whole body */
  char message[GW_MESSAGE_MAX];
};

/* A parsed request and everything its pointers point into. */
struct gw_parsed {
  struct gw_gen_request req;
  json_t *root;                  /* strings in req point into this tree */
  struct gw_chat_message *msgs;  /* req.messages */
  char **owned;                  /* concatenated content parts */
  size_t n_owned;
  struct gw_logit_bias *bias;    /* req.logit_bias */
};

/* Parses a /v1/chat/completions or /v1/completions body. On failure fills *perr and returns
 * its code; *ret is then left empty (safe to pass to gw_parsed_free). */
int gw_parse_request(enum gw_api_kind kind, const char *body, size_t len, struct gw_parsed *ret,
                     struct gw_param_error *perr);
void gw_parsed_free(struct gw_parsed *p);

/* ---- internal to the parse_*.c files ---- */
int gw_param_fail(struct gw_param_error *perr, int code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int gw_parse_common(const json_t *root, struct gw_parsed *p, struct gw_param_error *perr);
int gw_parse_chat_messages(const json_t *root, struct gw_parsed *p, struct gw_param_error *perr);
int gw_parse_completion_prompt(const json_t *root, struct gw_parsed *p,
                               struct gw_param_error *perr);
/* Keeps a heap string alive as long as the parsed request. */
int gw_parsed_own(struct gw_parsed *p, char *s);

#endif
