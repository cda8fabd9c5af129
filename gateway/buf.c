/*
 * buf.c — growable, limit-checked byte buffer (see buf.h). Doubling growth; the buffer is kept
 * NUL-terminated so it can be handed to string functions without a copy.
 */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realm/error.h"

static int buf_reserve(struct gw_buf *b, size_t extra) {
  if (b->limit && (extra > b->limit || b->len > b->limit - extra)) return REALM_E_TOO_LARGE;
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) return REALM_E_NOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int gw_buf_append(struct gw_buf *b, const void *p, size_t len) {
  int r = buf_reserve(b, len);
  if (r < 0) return r;
  if (len) memcpy(b->data + b->len, p, len);
  b->len += len;
  b->data[b->len] = '\0';
  return 0;
}

int gw_buf_appends(struct gw_buf *b, const char *s) { return gw_buf_append(b, s, strlen(s)); }

int gw_buf_appendf(struct gw_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return REALM_E_INTERNAL;
  int r = buf_reserve(b, (size_t)n);
  if (r < 0) return r;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

void gw_buf_consume(struct gw_buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
  b->data[b->len] = '\0';
}

char *gw_buf_steal(struct gw_buf *b, size_t *ret_len) {
  char *p = b->data;
  if (!p) p = calloc(1, 1);
  if (ret_len) *ret_len = b->len;
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}

void gw_buf_free(struct gw_buf *b) {
  if (!b) return;
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
