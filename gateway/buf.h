/*
 * buf.h — a growable byte buffer used by the gateway to build bodies, SSE frames and the
 * metrics page. Growth is bounded by the caller-given limit so no remote input can make the
 * gateway allocate without bound; every append reports failure instead of truncating quietly.
 */
#ifndef GW_BUF_H
#define GW_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct gw_buf {
  char *data;   /* NUL-terminated whenever len > 0 or after any append */
  size_t len;
  size_t cap;
  size_t limit; /* 0 = no limit beyond memory */
};

/* Appends len bytes; returns 0 or REALM_E_NOMEM / REALM_E_TOO_LARGE (buffer unchanged). */
int gw_buf_append(struct gw_buf *b, const void *p, size_t len);
int gw_buf_appends(struct gw_buf *b, const char *s);
int gw_buf_appendf(struct gw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (n <= len). */
void gw_buf_consume(struct gw_buf *b, size_t n);
/* Hands the bytes to the caller (who frees them) and resets the buffer. */
char *gw_buf_steal(struct gw_buf *b, size_t *ret_len);
void gw_buf_free(struct gw_buf *b);

#endif
