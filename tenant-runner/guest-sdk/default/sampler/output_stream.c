/*
 * output_stream.c — token -> UTF-8 stream -> stop matcher -> emitted text (see the header).
 *
 * Two growable buffers: `clean` receives the UTF-8 stream's output, `out` the stop matcher's.
 * Their sizes follow from the bounds each stage publishes, so each push grows them at most
 * once, to a size fixed by the largest piece seen.
 */
#include "output_stream.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realm/error.h"
#include "realm/limits.h"
#include "stop.h"
#include "utf8_stream.h"

struct output_stream {
  struct utf8_stream utf8;
  struct stop_matcher stop;
  int32_t stop_tokens[OUTPUT_MAX_STOP_TOKENS];
  size_t n_stop_tokens;
  int32_t max_tokens;
  int32_t n_tokens;
  enum output_finish finish;
  int32_t stop_token; /* -1 unless a stop token ended generation */
  uint8_t *clean;     /* [cap_clean] UTF-8 stage output */
  size_t cap_clean;
  uint8_t *out;       /* [cap_out] text returned to the caller */
  size_t cap_out;
};

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int output_stream_create(const struct output_stream_params *p, struct output_stream **ret_stream,
                         char *err, size_t errlen) {
  if (!p || !ret_stream) {
    set_err(err, errlen, "output_stream_create: params and ret_stream are required");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (p->max_tokens < 1 || p->max_tokens > REALM_MAX_COMPLETION_TOKENS) {
    set_err(err, errlen, "max_tokens %d: must be between 1 and %d", (int)p->max_tokens,
            REALM_MAX_COMPLETION_TOKENS);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (p->n_stop_tokens > OUTPUT_MAX_STOP_TOKENS || (p->n_stop_tokens > 0 && !p->stop_tokens)) {
    set_err(err, errlen, "stop_tokens: %zu given, at most %d allowed", p->n_stop_tokens,
            OUTPUT_MAX_STOP_TOKENS);
    return REALM_E_INVALID_ARGUMENT;
  }
  for (size_t i = 0; i < p->n_stop_tokens; i++) {
    if (p->stop_tokens[i] < 0 || p->stop_tokens[i] >= p->n_vocab) {
      set_err(err, errlen, "stop_tokens[%zu] = %d: not a token id (vocabulary has %d)", i,
              (int)p->stop_tokens[i], (int)p->n_vocab);
      return REALM_E_INVALID_ARGUMENT;
    }
  }
  struct output_stream *o = calloc(1, sizeof *o);
  if (!o) {
    set_err(err, errlen, "output_stream_create: out of memory");
    return REALM_E_NOMEM;
  }
  int r = stop_matcher_init(&o->stop, p->stop, p->n_stop, err, errlen);
  if (r < 0) {
    free(o);
    return r;
  }
  utf8_stream_init(&o->utf8);
  if (p->n_stop_tokens) /* stop_tokens may be NULL when empty; memcpy(_, NULL, 0) is UB */
    memcpy(o->stop_tokens, p->stop_tokens, p->n_stop_tokens * sizeof *o->stop_tokens);
  o->n_stop_tokens = p->n_stop_tokens;
  o->max_tokens = p->max_tokens;
  o->stop_token = -1;
  o->finish = OUTPUT_RUNNING;
  *ret_stream = o;
  return REALM_OK;
}

void output_stream_destroy(struct output_stream *o) {
  if (!o) return;
  free(o->clean);
  free(o->out);
  free(o);
}

static int ensure(uint8_t **buf, size_t *cap, size_t need) {
  if (*cap >= need) return REALM_OK;
  uint8_t *b = realloc(*buf, need);
  if (!b) return REALM_E_NOMEM;
  *buf = b;
  *cap = need;
  return REALM_OK;
}

/* Runs clean[0..n) through the stop matcher, appending to out at *out_len. Sets finish on a
 * match. */
static int feed_stop(struct output_stream *o, size_t n, size_t *out_len) {
  size_t need = *out_len + stop_matcher_max_output(&o->stop, n) + STOP_MAX_BYTES;
  if (ensure(&o->out, &o->cap_out, need) < 0) return REALM_E_NOMEM;
  size_t len = 0;
  int r = stop_matcher_push(&o->stop, o->clean, n, o->out + *out_len, o->cap_out - *out_len, &len);
  if (r < 0) return REALM_E_INTERNAL;
  *out_len += len;
  if (r == 1) o->finish = OUTPUT_FINISH_STOP;
  return REALM_OK;
}

/* End of generation without a stop string so far: flush the UTF-8 tail (it may still complete
 * a stop string), then the matcher's held text. Sets finish to `reason` unless a stop string
 * matched. */
static int finish_with(struct output_stream *o, enum output_finish reason, size_t *out_len) {
  if (ensure(&o->clean, &o->cap_clean, 3) < 0) return REALM_E_NOMEM;
  size_t n = utf8_stream_flush(&o->utf8, o->clean, o->cap_clean);
  int r = feed_stop(o, n, out_len);
  if (r < 0) return r;
  if (o->finish == OUTPUT_RUNNING) {
    *out_len += stop_matcher_flush(&o->stop, o->out + *out_len, o->cap_out - *out_len);
    o->finish = reason;
  }
  return REALM_OK;
}

int output_stream_push(struct output_stream *o, int32_t token, const uint8_t *piece,
                       size_t n_piece, const char **ret_text, size_t *ret_len,
                       enum output_finish *ret_finish, char *err, size_t errlen) {
  if (!o || !ret_text || !ret_len || !ret_finish || (n_piece > 0 && !piece)) {
    set_err(err, errlen, "output_stream_push: stream, piece and outputs are required");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (o->finish != OUTPUT_RUNNING) {
    set_err(err, errlen, "output_stream_push: token %d after generation finished (%s)", (int)token,
            output_finish_name(o->finish));
    return REALM_E_INVALID_ARGUMENT;
  }
  if (n_piece > OUTPUT_MAX_PIECE_BYTES) {
    set_err(err, errlen, "token %d: piece of %zu bytes, at most %u allowed", (int)token, n_piece,
            OUTPUT_MAX_PIECE_BYTES);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (ensure(&o->clean, &o->cap_clean, utf8_stream_max_output(n_piece)) < 0 ||
      ensure(&o->out, &o->cap_out, STOP_MAX_BYTES + utf8_stream_max_output(n_piece) + 8) < 0) {
    set_err(err, errlen, "output_stream_push: out of memory");
    return REALM_E_NOMEM;
  }
  o->n_tokens++;
  size_t out_len = 0;
  int r = REALM_OK;

  bool is_stop_token = false;
  for (size_t i = 0; i < o->n_stop_tokens; i++)
    if (o->stop_tokens[i] == token) is_stop_token = true;

  if (is_stop_token) {
    o->stop_token = token;
    r = finish_with(o, OUTPUT_FINISH_STOP, &out_len);
  } else {
    size_t n_clean = 0;
    r = utf8_stream_push(&o->utf8, piece, n_piece, o->clean, o->cap_clean, &n_clean);
    if (r == REALM_OK) r = feed_stop(o, n_clean, &out_len);
    if (r == REALM_OK && o->finish == OUTPUT_RUNNING && o->n_tokens >= o->max_tokens)
      r = finish_with(o, OUTPUT_FINISH_LENGTH, &out_len);
  }
  if (r < 0) {
    set_err(err, errlen, "output_stream_push: token %d: %s", (int)token,
            r == REALM_E_NOMEM ? "out of memory" : "internal buffer error");
    return r;
  }
  *ret_text = (const char *)o->out;
  *ret_len = out_len;
  *ret_finish = o->finish;
  return REALM_OK;
}

int output_stream_end(struct output_stream *o, const char **ret_text, size_t *ret_len,
                      enum output_finish *ret_finish) {
  if (!o || !ret_text || !ret_len || !ret_finish) return REALM_E_INVALID_ARGUMENT;
  size_t out_len = 0;
  if (o->finish == OUTPUT_RUNNING) {
    if (ensure(&o->out, &o->cap_out, 2 * STOP_MAX_BYTES + 16) < 0) return REALM_E_NOMEM;
    int r = finish_with(o, OUTPUT_FINISH_LENGTH, &out_len);
    if (r < 0) return r;
  }
  *ret_text = o->out ? (const char *)o->out : "";
  *ret_len = out_len;
  *ret_finish = o->finish;
  return REALM_OK;
}

const char *output_finish_name(enum output_finish f) {
  switch (f) {
  case OUTPUT_FINISH_STOP: return "stop";
  case OUTPUT_FINISH_LENGTH: return "length";
  case OUTPUT_RUNNING: break;
  }
  return NULL;
}

int32_t output_stream_n_tokens(const struct output_stream *o) {
  return o->n_tokens;
}

int output_stream_matched_stop(const struct output_stream *o) {
  return o->stop.matched;
}

int32_t output_stream_stop_token(const struct output_stream *o) {
  return o->stop_token;
}
