/* sse.c — Server-Sent Events framing (see sse.h). */
#include "sse.h"

#include <string.h>

#include "realm/error.h"

int gw_sse_data(struct gw_buf *out, const char *json) {
  if (strpbrk(json, "\r\n")) return REALM_E_INVALID_ARGUMENT;
  size_t before = out->len;
  int r = gw_buf_appends(out, "data: ");
  if (r == 0) r = gw_buf_appends(out, json);
  if (r == 0) r = gw_buf_appends(out, "\n\n");
  if (r < 0) out->len = before; /* never leave half an event */
  if (out->data) out->data[out->len] = '\0';
  return r;
}

int gw_sse_done(struct gw_buf *out) { return gw_buf_appends(out, GW_SSE_DONE); }

int gw_sse_keepalive(struct gw_buf *out) { return gw_buf_appends(out, GW_SSE_KEEPALIVE); }
