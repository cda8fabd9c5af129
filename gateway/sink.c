/*
 * sink.c — the event queue of one generation request (see sink.h and backend.h's contract).
 * A backend that keeps emitting after the output limit gets its request failed rather than
 * letting it grow gateway memory; logprob entries have their own, larger, limit.
 *
 * Record layout of one queued token event (host byte order; only this file reads it):
 *   u32 text_len, text bytes,
 *   u32 n_top or GW_NO_LOGPROB,
 *   [logprob present:] f32 logprob, u32 token_len, token bytes,
 *                      n_top × (f32 logprob, u32 len, bytes)
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

#define GW_NO_LOGPROB 0xffffffffu
/* Logprob entries of one request: at most ~5.5 KiB per token with 20 alternatives; this
 * allows thousands of tokens at full width while bounding gateway memory. */
#define GW_SINK_MAX_LOGPROB_BYTES (16u << 20)

struct gw_sink {
  pthread_mutex_t mu;
  int refs; /* under mu */
  int efd;
  gw_clock_fn clock;
  void *clock_ctx;
  struct gw_buf pieces; /* under mu: queued token texts */
  uint64_t total_bytes; /* under mu: text bytes so far */
  uint64_t lp_bytes;    /* under mu: logprob record bytes so far */
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
  s->pieces.limit = REALM_GUEST_MAX_OUTPUT_BYTES + GW_SINK_MAX_LOGPROB_BYTES + 4096;
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

static size_t lp_record_bytes(const struct gw_token_logprob *lp, size_t n_top) {
  size_t n = 4 + 4 + (lp->len < GW_MAX_LOGPROB_TOKEN_BYTES ? lp->len : GW_MAX_LOGPROB_TOKEN_BYTES);
  for (size_t i = 0; i < n_top; i++)
    n += 4 + 4 + (lp->top[i].len < GW_MAX_LOGPROB_TOKEN_BYTES ? lp->top[i].len
                                                              : GW_MAX_LOGPROB_TOKEN_BYTES);
  return n;
}

static int append_u32(struct gw_buf *b, uint32_t v) { return gw_buf_append(b, &v, sizeof v); }
static int append_f32(struct gw_buf *b, float v) { return gw_buf_append(b, &v, sizeof v); }

/* Token text cut to the per-token limit (see backend.h). */
static int append_token_text(struct gw_buf *b, const char *text, size_t len) {
  uint32_t l = (uint32_t)(len < GW_MAX_LOGPROB_TOKEN_BYTES ? len : GW_MAX_LOGPROB_TOKEN_BYTES);
  int r = append_u32(b, l);
  return r == 0 ? gw_buf_append(b, l ? text : "", l) : r;
}

/* Appends one record; on failure the buffer is rolled back to where it was. */
static int append_record(struct gw_buf *b, const char *text, size_t len,
                         const struct gw_token_logprob *lp, size_t n_top) {
  size_t mark = b->len;
  int r = append_u32(b, (uint32_t)len);
  if (r == 0) r = gw_buf_append(b, len ? text : "", len);
  if (r == 0) r = append_u32(b, lp ? (uint32_t)n_top : GW_NO_LOGPROB);
  if (r == 0 && lp) {
    r = append_f32(b, lp->logprob);
    if (r == 0) r = append_token_text(b, lp->text, lp->len);
    for (size_t i = 0; r == 0 && i < n_top; i++) {
      r = append_f32(b, lp->top[i].logprob);
      if (r == 0) r = append_token_text(b, lp->top[i].text, lp->top[i].len);
    }
  }
  if (r < 0) b->len = mark;
  return r;
}

void gw_sink_token(struct gw_sink *s, const char *text, size_t len,
                   const struct gw_token_logprob *lp) {
  size_t n_top = lp ? (lp->top ? lp->n_top : 0) : 0;
  if (n_top > GW_MAX_TOP_LOGPROBS) n_top = GW_MAX_TOP_LOGPROBS;
  size_t lp_bytes = lp ? lp_record_bytes(lp, n_top) : 0;
  pthread_mutex_lock(&s->mu);
  if (!s->st.done) {
    bool text_over = len > REALM_GUEST_MAX_OUTPUT_BYTES ||
                     s->total_bytes + len > REALM_GUEST_MAX_OUTPUT_BYTES;
    bool lp_over = s->lp_bytes + lp_bytes > GW_SINK_MAX_LOGPROB_BYTES;
    if (text_over || lp_over || append_record(&s->pieces, text, len, lp, n_top) < 0) {
      /* Not terminal for the backend: it still owes its own terminal event (contract 2), which
       * will then be ignored. The client sees the failure now. */
      s->st.failed = true;
      s->st.err_code = REALM_E_TOO_LARGE;
      if (lp_over)
        snprintf(s->st.err_msg, sizeof s->st.err_msg, "the logprobs exceeded %u bytes",
                 (unsigned)GW_SINK_MAX_LOGPROB_BYTES);
      else
        snprintf(s->st.err_msg, sizeof s->st.err_msg, "the output exceeded %u bytes",
                 (unsigned)REALM_GUEST_MAX_OUTPUT_BYTES);
      s->st.done = true;
      s->st.done_ns = s->clock(s->clock_ctx);
    } else {
      s->total_bytes += len;
      s->lp_bytes += lp_bytes;
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

/* The param as the client may see it: printable ASCII that fits, or none. It reaches a JSON
 * string, and a runner's param is only as trustworthy as the runner; a param cut short would
 * name the wrong thing, so one that does not fit is dropped too. */
void gw_error_param_copy(char *dst, const char *src) {
  size_t n = 0;
  dst[0] = '\0';
  if (!src) return;
  for (; src[n]; n++)
    if (n + 1 >= GW_ERROR_PARAM_MAX || (unsigned char)src[n] < 0x20 ||
        (unsigned char)src[n] > 0x7e)
      return;
  memcpy(dst, src, n + 1);
}

void gw_sink_error_info(struct gw_sink *s, int realm_code, const char *message,
                        const struct gw_error_info *info) {
  pthread_mutex_lock(&s->mu);
  s->backend_done = true;
  if (sink_finish_locked(s)) {
    s->st.failed = true;
    s->st.err_code = realm_code < 0 ? realm_code : REALM_E_INTERNAL;
    snprintf(s->st.err_msg, sizeof s->st.err_msg, "%s",
             message && *message ? message : realm_err_message(s->st.err_code));
    if (info) {
      gw_error_param_copy(s->st.err_info.param, info->param);
      s->st.err_info.retry_after_s = info->retry_after_s;
    }
  }
  pthread_mutex_unlock(&s->mu);
  sink_signal(s);
  gw_sink_unref(s);
}

void gw_sink_error(struct gw_sink *s, int realm_code, const char *message) {
  gw_sink_error_info(s, realm_code, message, NULL);
}

bool gw_sink_abort(struct gw_sink *s, int realm_code, const char *message) {
  pthread_mutex_lock(&s->mu);
  bool ended = sink_finish_locked(s);
  if (ended) {
    s->st.failed = true;
    s->st.err_code = realm_code < 0 ? realm_code : REALM_E_INTERNAL;
    snprintf(s->st.err_msg, sizeof s->st.err_msg, "%s",
             message && *message ? message : realm_err_message(s->st.err_code));
  }
  pthread_mutex_unlock(&s->mu);
  if (ended) sink_signal(s);
  return ended;
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

/* Bounded readers over the record stream: each fails (false) instead of reading past len. */
static bool read_u32(const struct gw_buf *b, size_t *off, uint32_t *v) {
  if (b->len - *off < sizeof *v) return false;
  memcpy(v, b->data + *off, sizeof *v);
  *off += sizeof *v;
  return true;
}

static bool read_f32(const struct gw_buf *b, size_t *off, float *v) {
  if (b->len - *off < sizeof *v) return false;
  memcpy(v, b->data + *off, sizeof *v);
  *off += sizeof *v;
  return true;
}

static bool read_bytes(const struct gw_buf *b, size_t *off, const char **p, size_t *len) {
  uint32_t l;
  if (!read_u32(b, off, &l) || b->len - *off < l) return false;
  *p = b->data + *off;
  *len = l;
  *off += l;
  return true;
}

bool gw_sink_next_piece(const struct gw_buf *pieces, size_t *off, struct gw_sink_piece *ret) {
  size_t o = *off;
  uint32_t n_top;
  if (o > pieces->len || !read_bytes(pieces, &o, &ret->text, &ret->len) ||
      !read_u32(pieces, &o, &n_top))
    return false;
  ret->has_logprob = n_top != GW_NO_LOGPROB;
  ret->lp = (struct gw_token_logprob){0};
  if (ret->has_logprob) {
    if (n_top > GW_MAX_TOP_LOGPROBS) return false;
    if (!read_f32(pieces, &o, &ret->lp.logprob) ||
        !read_bytes(pieces, &o, &ret->lp.text, &ret->lp.len))
      return false;
    for (uint32_t i = 0; i < n_top; i++)
      if (!read_f32(pieces, &o, &ret->top[i].logprob) ||
          !read_bytes(pieces, &o, &ret->top[i].text, &ret->top[i].len))
        return false;
    ret->lp.top = ret->top;
    ret->lp.n_top = n_top;
  }
  *off = o;
  return true;
}

bool gw_sink_begin_cancel(struct gw_sink *s) {
  pthread_mutex_lock(&s->mu);
  bool call = !s->cancelled && !s->backend_done;
  s->cancelled = true;
  pthread_mutex_unlock(&s->mu);
  return call;
}
