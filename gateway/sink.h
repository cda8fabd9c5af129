/*
 * sink.h — the per-request event queue between a backend (any thread) and the HTTP
 * connection thread that turns events into a response (the gw_sink of backend.h).
 *
 * Token texts are queued as separate pieces so each token becomes its own SSE chunk
 * regardless of scheduling; a piece also carries the token's logprob entry when the backend
 * gave one (copied: texts, logprob, up to GW_MAX_TOP_LOGPROBS alternatives); the terminal event sets the state. An eventfd is signalled on every
 * event so the connection thread can poll it together with the client socket and notice a
 * disconnect while waiting. Refcounted: one reference for the HTTP side, one for the backend
 * (dropped by the terminal event).
 */
#ifndef GW_SINK_H
#define GW_SINK_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "buf.h"
#include "clock.h"

struct gw_sink_state {
  bool done;   /* a terminal event arrived */
  bool failed; /* ... and it was an error */
  int err_code;
  char err_msg[256];
  struct gw_error_info err_info; /* param and retry hint of the error (zero when none) */
  char finish_reason[32];
  bool has_usage;
  struct gw_usage usage;
  uint32_t n_tokens;       /* token events so far */
  uint64_t first_token_ns; /* 0 = none yet */
  uint64_t done_ns;
};

/* Creates a sink with two references (HTTP side + backend). */
int gw_sink_create(gw_clock_fn clock, void *clock_ctx, struct gw_sink **ret);
void gw_sink_unref(struct gw_sink *s);
struct gw_sink *gw_sink_ref(struct gw_sink *s);

/* Waits up to timeout_ms for an event. Returns 1 if an event may be pending, 0 on timeout,
 * REALM_E_CANCELLED if client_fd (>= 0) shows the peer hung up. */
int gw_sink_wait(struct gw_sink *s, int client_fd, int timeout_ms);

/* Moves queued token pieces into pieces (an opaque record stream read with
 * gw_sink_next_piece) and copies the state. */
int gw_sink_take(struct gw_sink *s, struct gw_buf *pieces, struct gw_sink_state *ret_state);

/* One queued token event; pointers into the pieces buffer. */
struct gw_sink_piece {
  const char *text; /* text released by this event (may be empty) */
  size_t len;
  bool has_logprob;
  struct gw_token_logprob lp; /* lp.top points at top[] below */
  struct gw_top_logprob top[GW_MAX_TOP_LOGPROBS];
};
/* Iterates pieces taken by gw_sink_take; *off starts at 0. False at the end (or at an
 * incomplete record, which gw_sink_take never produces). */
bool gw_sink_next_piece(const struct gw_buf *pieces, size_t *off, struct gw_sink_piece *ret);

/* Ends the request from the gateway's side (the drain cut-off, http.c): the HTTP side sees a
 * failure with realm_code and message, as if the backend had sent it. The backend keeps its
 * reference and still owes its own terminal event (backend.h rule 2), which is then ignored;
 * gw_sink_begin_cancel still answers true, so the backend is told to stop. True when this
 * call ended the request (it had no terminal state yet). */
bool gw_sink_abort(struct gw_sink *s, int realm_code, const char *message);

/* Copies a backend's error param into dst (GW_ERROR_PARAM_MAX bytes) when it is printable
 * ASCII that fits; otherwise dst is "" (none). Every param a client sees passes here. */
void gw_error_param_copy(char *dst, const char *src);

/* Marks the request cancelled by the client. True when the caller should call the backend's
 * cancel (no terminal event yet and not cancelled before). */
bool gw_sink_begin_cancel(struct gw_sink *s);

#endif
