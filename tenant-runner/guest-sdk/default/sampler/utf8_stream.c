/*
 * utf8_stream.c — incremental UTF-8 validation with U+FFFD substitution (see utf8_stream.h).
 *
 * This is the decoder state machine of the WHATWG Encoding Standard: a lead byte fixes how
 * many continuation bytes follow and narrows the range of the first one (E0 -> A0..BF rules
 * out overlongs, ED -> 80..9F rules out surrogates, F0 -> 90..BF overlongs, F4 -> 80..8F
 * caps at U+10FFFF). A byte outside the expected range ends the pending sequence with one
 * U+FFFD and is then examined again as a possible lead byte.
 */
#include "utf8_stream.h"

#include <string.h>

#include "realm/error.h"

static const uint8_t REPLACEMENT[3] = {0xEF, 0xBF, 0xBD};

static void reset(struct utf8_stream *u) {
  u->n_pending = 0;
  u->bytes_needed = 0;
  u->lower = 0x80;
  u->upper = 0xBF;
}

void utf8_stream_init(struct utf8_stream *u) {
  memset(u, 0, sizeof *u);
  reset(u);
}

size_t utf8_stream_max_output(size_t n) {
  return 3 * n + 9;
}

/* Processes one byte. Writes to out[*len..]; the caller guaranteed the room. Returns true
 * when it had to write a U+FFFD (so utf8_is_valid can tell a substituted byte from a genuine
 * U+FFFD in the input). */
static bool step(struct utf8_stream *u, uint8_t b, uint8_t *out, size_t *len) {
  bool replaced = false;
  for (;;) {
    if (u->bytes_needed == 0) {
      if (b <= 0x7F) {
        out[(*len)++] = b;
      } else if (b >= 0xC2 && b <= 0xDF) {
        u->bytes_needed = 1;
        u->pending[u->n_pending++] = b;
      } else if (b >= 0xE0 && b <= 0xEF) {
        if (b == 0xE0) u->lower = 0xA0;
        if (b == 0xED) u->upper = 0x9F;
        u->bytes_needed = 2;
        u->pending[u->n_pending++] = b;
      } else if (b >= 0xF0 && b <= 0xF4) {
        if (b == 0xF0) u->lower = 0x90;
        if (b == 0xF4) u->upper = 0x8F;
        u->bytes_needed = 3;
        u->pending[u->n_pending++] = b;
      } else { /* 80..C1 (stray continuation, overlong lead) and F5..FF */
        memcpy(out + *len, REPLACEMENT, 3);
        *len += 3;
        replaced = true;
      }
      return replaced;
    }
    if (b < u->lower || b > u->upper) {
      /* The pending prefix can never complete: one U+FFFD for it, then look at b afresh. */
      reset(u);
      memcpy(out + *len, REPLACEMENT, 3);
      *len += 3;
      replaced = true;
      continue;
    }
    u->lower = 0x80;
    u->upper = 0xBF;
    u->pending[u->n_pending++] = b;
    if (u->n_pending == u->bytes_needed + 1) {
      memcpy(out + *len, u->pending, u->n_pending);
      *len += u->n_pending;
      reset(u);
    }
    return replaced;
  }
}

int utf8_stream_push(struct utf8_stream *u, const uint8_t *in, size_t n, uint8_t *out,
                     size_t out_cap, size_t *ret_len) {
  if (out_cap < utf8_stream_max_output(n) || (n > 0 && !in) || !out) return REALM_E_INVALID_ARGUMENT;
  size_t len = 0;
  for (size_t i = 0; i < n; i++) step(u, in[i], out, &len);
  *ret_len = len;
  return REALM_OK;
}

size_t utf8_stream_flush(struct utf8_stream *u, uint8_t *out, size_t out_cap) {
  size_t len = 0;
  if (u->bytes_needed != 0 && out_cap >= 3) {
    memcpy(out, REPLACEMENT, 3);
    len = 3;
  }
  reset(u);
  return len;
}

bool utf8_is_valid(const uint8_t *s, size_t n) {
  struct utf8_stream u;
  utf8_stream_init(&u);
  uint8_t out[16]; /* one byte yields at most two U+FFFD or one 4-byte character */
  for (size_t i = 0; i < n; i++) {
    size_t len = 0;
    if (step(&u, s[i], out, &len)) return false;
  }
  return u.bytes_needed == 0;
}
