/*
 * sse.h — Server-Sent Events framing as OpenAI clients parse it: each event is
 * "data: <one line of JSON>\n\n", the stream ends with "data: [DONE]\n\n", and comment lines
 * (": keep-alive\n\n") keep proxies from timing out a silent stream. Compact JSON never holds a
 * raw newline, so one data line per event is always enough; the framer checks it anyway.
 */
#ifndef GW_SSE_H
#define GW_SSE_H

#include "buf.h"

#define GW_SSE_DONE "data: [DONE]\n\n"
#define GW_SSE_KEEPALIVE ": keep-alive\n\n"

/* Appends one data event; REALM_E_INVALID_ARGUMENT if json holds a CR or LF. */
int gw_sse_data(struct gw_buf *out, const char *json);
int gw_sse_done(struct gw_buf *out);
int gw_sse_keepalive(struct gw_buf *out);

#endif
