/*
 * sink.c — the event queue of one generation request (see sink.h and backend.h's contract).
 * A backend that keeps emitting after the output limit gets its request failed rather than
 * letting it grow gateway memory.
 */
#include "sink.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "realm/error.h"
#include "realm/limits.h"

struct gw_sink {
  pthread_mutex_t mu;
  int refs; /* under mu */
  int efd;
  gw_clock_fn clock;
  void *clock_ctx;
  struct gw_buf pieces; /* under mu: queued token texts */
  uint64_t total_bytes; /* under mu */
  bool cancelled;       /* under mu */
  bool backend_done;    /* under mu: the backend delivered its terminal event */
  struct gw_sink_state st; /* under mu */
};

int gw_sink_create(gw_clock_fn clock, void *clock_ctx, struct gw_sink **ret) {
  struct gw_sink *s = calloc(1, sizeof *s);
  if (!s) return REALM_E_NOMEM;
  s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->efd < 0) {
    int e = errno;
    free(s);
    return realm_err_from_errno(e);
  }
  pthread_mutex_init(&s->mu, NULL);
  s->refs = 2;
  s->clock = clock;
  s->clock_ctx = clock_ctx;
  s->pieces.limit = REALM_GUEST_MAX_OUTPUT_BYTES + 4096;
  *ret = s;
  return 0;
}

struct gw_sink *gw_sink_ref(struct gw_sink *s) {
  pthread_mutex_lock(&s->mu);
  s->refs++;
  pthread_mutex_unlock(&s->mu);
  return s;
}

void gw_sink_unref(struct gw_sink *s) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  int left = --s->refs;
  pthread_mutex_unlock(&s->mu);
  if (left) return;
  close(s->efd);
  gw_buf_free(&s->pieces);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static void sink_signal(struct gw_sink *s) {
  uint64_t one = 1;
  ssize_t w = write(s->efd, &one, sizeof one);
  (void)w; /* EAGAIN means the counter is already non-zero: the reader will wake anyway */
}

/* Terminal state under mu; returns true if this call made it terminal. */
static bool sink_finish_locked(struct gw_sink *s) {
  if (s->st.done) return false;
  s->st.done = true;
  s->st.done_ns = s->clock(s->clock_ctx);
  return true;
}

void gw_sink_token(struct gw_sink *s, const char *text, size_t len) {
  pthread_mutex_lock(&s->mu);
  if (!s->st.done) {
    uint32_t l = (uint32_t)len;
    if (len > REALM_GUEST_MAX_OUTPUT_BYTES || s->total_bytes + len > REALM_GUEST_MAX_OUTPUT_BYTES ||
        gw_buf_append(&s->pieces, &l, sizeof l) < 0 ||
        gw_buf_append(&s->pieces, text, len) < 0) {
      /* Not terminal for the backend: it still owes its own terminal event (contract 2), which
       * will then be ignored. The client sees the failure now. */
      s->st.failed = true;
      s->st.err_code = REALM_E_TOO_LARGE;
      snprintf(s->st.err_msg, sizeof s->st.err_msg, "the output exceeded %u bytes",
               (unsigned)REALM_GUEST_MAX_OUTPUT_BYTES);
      s->st.done = true;
      s->st.done_ns = s->clock(s->clock_ctx);
    } else {
      s->total_bytes += len;
      if (s->st.n_tokens++ == 0) s->st.first_token_ns = s->clock(s->clock_ctx);
    }
  }
  pthread_mutex_unlock(&s->mu);
  sink_signal(s);
}

void gw_sink_finish(struct gw_sink *s, const char *finish_reason, const struct gw_usage *usage) {
  pthread_mutex_lock(&s->mu);
  s->backend_done = true;
  if (sink_finish_locked(s)) {
    snprintf(s->st.finish_reason, sizeof s->st.finish_reason, "%s",
             finish_reason && *finish_reason ? finish_reason : "stop");
    if (usage) {
      s->st.has_usage = true;
      s->st.usage = *usage;
    }
  }
  pthread_mutex_unlock(&s->mu);
  sink_signal(s);
  gw_sink_unref(s); /* the backend's reference */
}

void gw_sink_error(struct gw_sink *s, int realm_code, const char *message) {
  pthread_mutex_lock(&s->mu);
  s->backend_done = true;
  if (sink_finish_locked(s)) {
    s->st.failed = true;
    s->st.err_code = realm_code < 0 ? realm_code : REALM_E_INTERNAL;
    snprintf(s->st.err_msg, sizeof s->st.err_msg, "%s",
             message && *message ? message : realm_err_message(s->st.err_code));
  }
  pthread_mutex_unlock(&s->mu);
  sink_signal(s);
  gw_sink_unref(s);
}

int gw_sink_wait(struct gw_sink *s, int client_fd, int timeout_ms) {
  struct pollfd pfd[2] = {{.fd = s->efd, .events = POLLIN},
                          {.fd = client_fd, .events = POLLRDHUP}};
  int n = client_fd >= 0 ? 2 : 1;
  int r;
  do r = poll(pfd, (nfds_t)n, timeout_ms);
  while (r < 0 && errno == EINTR);
  if (r < 0) return realm_err_from_errno(errno);
  if (pfd[0].revents & POLLIN) {
    uint64_t v;
    ssize_t rd = read(s->efd, &v, sizeof v);
    (void)rd;
    return 1;
  }
  if (n == 2 && (pfd[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
    return REALM_E_CANCELLED;
  return 0;
}

int gw_sink_take(struct gw_sink *s, struct gw_buf *pieces, struct gw_sink_state *ret_state) {
  int r = 0;
  pthread_mutex_lock(&s->mu);
  if (s->pieces.len) {
    r = gw_buf_append(pieces, s->pieces.data, s->pieces.len);
    if (r == 0) gw_buf_consume(&s->pieces, s->pieces.len);
  }
  *ret_state = s->st;
  pthread_mutex_unlock(&s->mu);
  return r;
}

bool gw_sink_next_piece(const struct gw_buf *pieces, size_t *off, const char **ret_text,
                        size_t *ret_len) {
  uint32_t l;
  if (*off + sizeof l > pieces->len) return false;
  memcpy(&l, pieces->data + *off, sizeof l);
  if (*off + sizeof l + l > pieces->len) return false;
  *ret_text = pieces->data + *off + sizeof l;
  *ret_len = l;
  *off += sizeof l + l;
  return true;
}

bool gw_sink_begin_cancel(struct gw_sink *s) {
  pthread_mutex_lock(&s->mu);
  bool call = !s->cancelled && !s->backend_done;
  s->cancelled = true;
  pthread_mutex_unlock(&s->mu);
  return call;
}
