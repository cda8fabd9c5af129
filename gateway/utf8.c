/*
 * utf8.c — UTF-8 validation and whole-character draining (see utf8.h). A small hand-written
 * decoder following RFC 3629's table of well-formed byte sequences.
 */
#include "utf8.h"

#include <stdint.h>

/* Length of the well-formed sequence at s (1..4), 0 if malformed, -1 if it is a valid prefix
 * that runs past the end of the input. */
static int utf8_seq(const unsigned char *s, size_t avail) {
  unsigned c = s[0];
  int n;
  unsigned lo = 0x80, hi = 0xBF;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F; /* no UTF-16 surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
  } else
    return 0;
  for (int i = 1; i < n; i++) {
    if ((size_t)i >= avail) return -1;
    unsigned b = s[i];
    if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
  }
  return n;
}

bool gw_utf8_valid(const char *s, size_t len, size_t *ret_offset) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    int n = utf8_seq(p + i, len - i);
    if (n <= 0) {
      if (ret_offset) *ret_offset = i;
      return false;
    }
    i += (size_t)n;
  }
  return true;
}

int gw_utf8_drain(struct gw_buf *pending, bool final, struct gw_buf *out) {
  const unsigned char *p = (const unsigned char *)pending->data;
  size_t i = 0, len = pending->len;
  int r = 0;
  while (i < len) {
    int n = utf8_seq(p + i, len - i);
    if (n > 0) {
      r = gw_buf_append(out, p + i, (size_t)n);
      i += (size_t)n;
    } else if (n < 0 && !final) {
      break; /* incomplete character: wait for the next token */
    } else {
      r = gw_buf_append(out, "\xEF\xBF\xBD", 3);
      i += 1;
    }
    if (r < 0) break;
  }
  gw_buf_consume(pending, i);
  return r;
}
