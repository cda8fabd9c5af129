/*
 * stop.c — stop strings over a chunked byte stream (contract in stop.h).
 *
 * Invariant: held[0..n_held) is exactly the tail of the text seen so far whose length is the
 * largest automaton state max_j state[j]. Because a state grows by at most one per byte, the
 * release point (bytes seen - max state) never moves backwards, and a completed match of
 * length L starts at or after the release point, so matched text is never released.
 */
#include "stop.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "realm/error.h"
#include "utf8_stream.h"

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* strlen bounded by max (strnlen is POSIX, not C11, and wasi builds may not declare it). */
static size_t bounded_len(const char *s, size_t max) {
  size_t n = 0;
  while (n < max && s[n]) n++;
  return n;
}

int stop_matcher_init(struct stop_matcher *m, const char *const *stops, size_t n_stops,
                      char *err, size_t errlen) {
  if (!m || (n_stops > 0 && !stops)) {
    set_err(err, errlen, "stop: matcher and strings are required");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (n_stops > STOP_MAX_STRINGS) {
    set_err(err, errlen, "stop: %zu strings given, at most %d allowed", n_stops, STOP_MAX_STRINGS);
    return REALM_E_INVALID_ARGUMENT;
  }
  for (size_t j = 0; j < n_stops; j++) {
    if (!stops[j]) {
      set_err(err, errlen, "stop[%zu]: missing", j);
      return REALM_E_INVALID_ARGUMENT;
    }
    size_t len = bounded_len(stops[j], STOP_MAX_BYTES + 1);
    if (len == 0 || len > STOP_MAX_BYTES) {
      set_err(err, errlen, "stop[%zu]: %s, must be 1 to %d bytes", j,
              len == 0 ? "empty" : "too long", STOP_MAX_BYTES);
      return REALM_E_INVALID_ARGUMENT;
    }
    /* The matcher runs after UTF-8 cleanup, where text is always valid; an invalid stop
     * string could never match, which would silently ignore the caller's request. */
    if (!utf8_is_valid((const uint8_t *)stops[j], len)) {
      set_err(err, errlen, "stop[%zu]: not valid UTF-8", j);
      return REALM_E_INVALID_ARGUMENT;
    }
  }
  memset(m, 0, sizeof *m);
  m->matched = -1;
  m->n_stops = n_stops;
  for (size_t j = 0; j < n_stops; j++) {
    size_t len = strlen(stops[j]);
    memcpy(m->pattern[j], stops[j], len);
    m->len[j] = (uint16_t)len;
    /* Standard KMP failure function. */
    const uint8_t *p = m->pattern[j];
    m->fail[j][0] = 0;
    size_t k = 0;
    for (size_t i = 1; i < len; i++) {
      while (k > 0 && p[i] != p[k]) k = m->fail[j][k - 1];
      if (p[i] == p[k]) k++;
      m->fail[j][i] = (uint16_t)k;
    }
  }
  return REALM_OK;
}

size_t stop_matcher_max_output(const struct stop_matcher *m, size_t n) {
  return m->n_held + n;
}

/* Byte i of the virtual concatenation held ++ text. */
static uint8_t virt_at(const struct stop_matcher *m, const uint8_t *text, size_t i) {
  return i < m->n_held ? m->held[i] : text[i - m->n_held];
}

int stop_matcher_push(struct stop_matcher *m, const uint8_t *text, size_t n, uint8_t *out,
                      size_t out_cap, size_t *ret_len) {
  if (m->matched >= 0 || out_cap < stop_matcher_max_output(m, n) || (n > 0 && !text) ||
      !ret_len)
    return REALM_E_INVALID_ARGUMENT;
  const size_t total = m->n_held + n;
  size_t keep = m->n_held; /* current max state; equals n_held by the invariant */
  for (size_t i = 0; i < n; i++) {
    const uint8_t c = text[i];
    size_t best_len = 0;
    int best = -1;
    keep = 0;
    for (size_t j = 0; j < m->n_stops; j++) {
      const uint8_t *p = m->pattern[j];
      size_t q = m->state[j];
      while (q > 0 && p[q] != c) q = m->fail[j][q - 1];
      if (p[q] == c) q++;
      if (q == m->len[j]) {
        if (q > best_len) {
          best_len = q;
          best = (int)j;
        }
      }
      m->state[j] = (uint16_t)q;
      if (q > keep) keep = q;
    }
    if (best >= 0) {
      /* Text up to the start of the match is final; the match and the rest are dropped. */
      size_t end = m->n_held + i + 1 - best_len;
      for (size_t k = 0; k < end; k++) out[k] = virt_at(m, text, k);
      *ret_len = end;
      m->matched = best;
      m->n_held = 0;
      return 1;
    }
  }
  /* No match: release everything except the longest tail that may still start a stop. */
  size_t release = total - keep;
  for (size_t k = 0; k < release; k++) out[k] = virt_at(m, text, k);
  uint8_t tail[STOP_MAX_BYTES];
  for (size_t k = 0; k < keep; k++) tail[k] = virt_at(m, text, release + k);
  memcpy(m->held, tail, keep);
  m->n_held = keep;
  *ret_len = release;
  return 0;
}

size_t stop_matcher_flush(struct stop_matcher *m, uint8_t *out, size_t out_cap) {
  size_t n = m->n_held <= out_cap ? m->n_held : 0;
  memcpy(out, m->held, n);
  m->n_held = 0;
  for (size_t j = 0; j < m->n_stops; j++) m->state[j] = 0;
  return n;
}
