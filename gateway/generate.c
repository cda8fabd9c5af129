/*
 * generate.c — POST /v1/chat/completions and /v1/completions after routing: validate the body,
 * check the model against the tenant, admit through the rate limiter, submit to the backend,
 * then either wait for the whole answer or stream it as SSE; and, when the HTTP request ends,
 * cancel what the client abandoned, settle the token reservation and record metrics.
 *
 * Streaming (one connection thread, see http.c): the status is decided only after the first
 * backend event or one keep-alive period, so a request the backend refuses at once still gets
 * a proper error status (with Retry-After where reply.c gives one); after that, errors travel
 * in-stream as an OpenAI error object, param included, and a retry hint has no header to go in.
 *
 * Logprobs (when the request asked for them): each token event's entry is collected and
 * rendered with the chunk that carries its text. Text held back (a character split across
 * tokens) carries its entries along to the chunk that releases it; entries whose text never
 * appears (held back for a stop string) ride on the finish chunk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_internal.h"
#include "realm/error.h"
#include "render.h"
#include "request.h"
#include "sse.h"
#include "utf8.h"

#define GW_STREAM_BLOCK_BYTES (16u << 10)

struct gw_stream {
  struct gw_server *srv;
  struct gw_sink *sink; /* own reference */
  int client_fd;
  uint32_t prompt_estimate;
  char id[48];
  char model[GW_MAX_MODEL_NAME_BYTES + 1];
  struct gw_render_ctx rc;
  bool started, ended;
  struct gw_buf out;    /* bytes rendered, not yet handed to MHD */
  struct gw_buf pieces; /* token pieces taken from the sink, not yet rendered */
  struct gw_buf carry;  /* an incomplete UTF-8 character split across tokens */
  bool want_logprobs;   /* the request asked for logprobs */
  struct gw_logprobs_acc lp; /* entries not yet rendered */
};

static void cancel_backend(struct gw_server *srv, struct gw_sink *sink) {
  if (sink && gw_sink_begin_cancel(sink)) srv->backend->ops->cancel(srv->backend->self, sink);
}

static struct gw_usage usage_of(const struct gw_sink_state *st, uint32_t prompt_estimate) {
  if (st->has_usage) return st->usage;
  return (struct gw_usage){st->n_tokens ? prompt_estimate : 0, st->n_tokens};
}

/* ---- streaming ---- */

static int emit(struct gw_stream *st, char *json) {
  if (!json) return REALM_E_NOMEM;
  int r = gw_sse_data(&st->out, json);
  free(json);
  return r;
}

/* The logprob entries pending for the next chunk (NULL: render null). */
static json_t *take_logprobs(struct gw_stream *st, bool want_empty) {
  return st->want_logprobs ? gw_logprobs_take(&st->lp, want_empty) : NULL;
}

/* Renders whatever the sink has produced into st->out. */
static int stream_render(struct gw_stream *st) {
  struct gw_sink_state s;
  int r = 0;
  if (!st->started) {
    st->started = true;
    if (st->rc.kind == GW_API_CHAT &&
        (r = emit(st, gw_render_chunk(&st->rc, "assistant", "", 0, NULL, NULL))) < 0)
      return r;
  }
  if ((r = gw_sink_take(st->sink, &st->pieces, &s)) < 0) return r;
  size_t off = 0;
  struct gw_sink_piece pc;
  struct gw_buf clean = {0};
  while (r == 0 && gw_sink_next_piece(&st->pieces, &off, &pc)) {
    clean.len = 0;
    if (st->want_logprobs && pc.has_logprob) gw_logprobs_add(&st->lp, &pc.lp);
    if (st->lp.oom) r = REALM_E_NOMEM;
    if (r == 0) r = gw_buf_append(&st->carry, pc.text, pc.len);
    if (r == 0) r = gw_utf8_drain(&st->carry, false, &clean);
    if (r == 0 && clean.len)
      r = emit(st, gw_render_chunk(&st->rc, NULL, clean.data, clean.len, NULL,
                                   take_logprobs(st, false)));
  }
  gw_buf_consume(&st->pieces, off);
  if (r == 0 && s.done) {
    clean.len = 0;
    r = gw_utf8_drain(&st->carry, true, &clean);
    if (r == 0 && clean.len)
      r = emit(st, gw_render_chunk(&st->rc, NULL, clean.data, clean.len, NULL,
                                   take_logprobs(st, false)));
    if (r == 0 && s.failed) {
      r = emit(st, gw_error_json(s.err_code, s.err_msg, s.err_info.param));
    } else if (r == 0) {
      r = emit(st, gw_render_chunk(&st->rc, NULL, st->rc.kind == GW_API_CHAT ? NULL : "", 0,
                                   s.finish_reason, take_logprobs(st, false)));
      struct gw_usage u = usage_of(&s, st->prompt_estimate);
      if (r == 0 && st->rc.include_usage) r = emit(st, gw_render_usage_chunk(&st->rc, &u));
      if (r == 0) r = gw_sse_done(&st->out);
    }
    st->ended = true;
  }
  gw_buf_free(&clean);
  return r;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  struct gw_stream *st = cls;
  for (int spins = 0;; spins++) {
    if (st->out.len) {
      size_t n = st->out.len < max ? st->out.len : max;
      memcpy(buf, st->out.data, n);
      gw_buf_consume(&st->out, n);
      return (ssize_t)n;
    }
    if (st->ended) return MHD_CONTENT_READER_END_OF_STREAM;
    if (stream_render(st) < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
    if (st->out.len || st->ended) continue;
    int w = gw_sink_wait(st->sink, st->client_fd, (int)st->srv->cfg.keepalive_ms);
    if (w < 0) return MHD_CONTENT_READER_END_WITH_ERROR; /* client gone: free callback cancels */
    if (w == 0 && gw_sse_keepalive(&st->out) < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
  }
}

static void stream_free(void *cls) {
  struct gw_stream *st = cls;
  cancel_backend(st->srv, st->sink);
  gw_sink_unref(st->sink);
  gw_buf_free(&st->out);
  gw_buf_free(&st->pieces);
  gw_buf_free(&st->carry);
  gw_logprobs_free(&st->lp);
  free(st);
}

static enum MHD_Result start_stream(struct gw_req *r, const struct gw_gen_request *req,
                                    int client_fd) {
  struct gw_stream *st = calloc(1, sizeof *st);
  if (!st) return gw_reply_error(r, REALM_E_NOMEM, "", "out of memory");
  st->srv = r->srv;
  st->sink = gw_sink_ref(r->sink);
  st->client_fd = client_fd;
  st->prompt_estimate = req->prompt_tokens_estimate;
  gw_completion_id(req->kind, st->id, sizeof st->id);
  snprintf(st->model, sizeof st->model, "%s", req->model);
  st->rc = (struct gw_render_ctx){req->kind, st->id, r->srv->cfg.wall_s(r->srv->cfg.clock_ctx),
                                  st->model, req->include_usage};
  st->out.limit = 2 * (size_t)REALM_GUEST_MAX_OUTPUT_BYTES;
  st->want_logprobs = req->logprobs;
  gw_logprobs_init(&st->lp, req->kind);

  /* Decide the status: wait for the first event or one keep-alive period. */
  struct gw_sink_state s;
  int w = gw_sink_wait(st->sink, client_fd, (int)r->srv->cfg.keepalive_ms);
  if (w < 0 || gw_sink_take(st->sink, &st->pieces, &s) < 0) {
    stream_free(st);
    return MHD_NO;
  }
  if (s.done && s.failed && st->pieces.len == 0) {
    stream_free(st);
    return gw_reply_failure(r, s.err_code, s.err_msg, &s.err_info);
  }
  struct MHD_Response *resp = MHD_create_response_from_callback(
      MHD_SIZE_UNKNOWN, GW_STREAM_BLOCK_BYTES, stream_reader, st, stream_free);
  if (!resp) {
    stream_free(st);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", "text/event-stream");
  MHD_add_response_header(resp, "Cache-Control", "no-cache");
  MHD_add_response_header(resp, "X-Accel-Buffering", "no");
  return gw_queue(r, resp, 200);
}

/* ---- non-streaming ---- */

static enum MHD_Result answer_whole(struct gw_req *r, const struct gw_gen_request *req,
                                    int client_fd) {
  struct gw_buf pieces = {0}, text = {0}, carry = {0};
  struct gw_sink_state s;
  enum MHD_Result res;
  for (;;) {
    if (gw_sink_take(r->sink, &pieces, &s) < 0) {
      res = gw_reply_error(r, REALM_E_NOMEM, "", "out of memory collecting the answer");
      goto out;
    }
    if (s.done) break;
    /* Long silences are fine here (the client waits for one body), but a hang-up is not. */
    if (gw_sink_wait(r->sink, client_fd, (int)r->srv->cfg.keepalive_ms) < 0) {
      cancel_backend(r->srv, r->sink);
      res = MHD_NO;
      goto out;
    }
  }
  if (s.failed) {
    res = gw_reply_failure(r, s.err_code, s.err_msg, &s.err_info);
    goto out;
  }
  size_t off = 0;
  struct gw_sink_piece pc;
  struct gw_logprobs_acc lp;
  gw_logprobs_init(&lp, req->kind);
  while (gw_sink_next_piece(&pieces, &off, &pc)) {
    gw_buf_append(&carry, pc.text, pc.len);
    if (req->logprobs && pc.has_logprob) gw_logprobs_add(&lp, &pc.lp);
  }
  gw_utf8_drain(&carry, true, &text);
  gw_buf_appends(&text, ""); /* non-NULL data even when empty */
  char id[48];
  gw_completion_id(req->kind, id, sizeof id);
  struct gw_render_ctx rc = {req->kind, id, r->srv->cfg.wall_s(r->srv->cfg.clock_ctx), req->model,
                             false};
  struct gw_usage u = usage_of(&s, req->prompt_tokens_estimate);
  json_t *lpj = req->logprobs ? gw_logprobs_take(&lp, true) : NULL;
  char *body = lp.oom ? NULL : gw_render_response(&rc, text.data, text.len, s.finish_reason, &u, lpj);
  if (lp.oom) json_decref(lpj);
  gw_logprobs_free(&lp);
  if (!body) res = gw_reply_error(r, REALM_E_NOMEM, "", "out of memory rendering the answer");
  else res = gw_reply_body(r, 200, "application/json", body, strlen(body));
out:
  gw_buf_free(&pieces);
  gw_buf_free(&text);
  gw_buf_free(&carry);
  return res;
}

/* ---- admission ---- */

static enum MHD_Result refuse_rate(struct gw_req *r, const struct gw_rl_decision *d,
                                   uint64_t reserve) {
  const struct gw_limits *l = &r->tenant->limits;
  r->retry_after_s = d->retry_after_s;
  gw_metrics_rate_limited(r->srv->metrics, r->tenant->id, gw_rl_reason_name(d->reason));
  switch (d->reason) {
  case GW_RL_CONCURRENCY:
    return gw_reply_error(r, REALM_E_RATE_LIMITED, "",
                          "Too many concurrent requests for tenant %s (limit %u). Retry after "
                          "%u s.",
                          r->tenant->id, l->max_concurrent, d->retry_after_s);
  case GW_RL_REQUESTS:
    return gw_reply_error(r, REALM_E_RATE_LIMITED, "",
                          "Rate limit reached for requests per minute (limit %llu) for tenant %s. "
                          "Retry after %u s.",
                          (unsigned long long)l->requests_per_minute, r->tenant->id,
                          d->retry_after_s);
  case GW_RL_TOKENS_TOO_LARGE:
    return gw_reply_error(r, REALM_E_RATE_LIMITED, "max_tokens",
                          "Request too large: it reserves %llu tokens (prompt estimate + "
                          "max_tokens) but tenant %s may use %llu tokens per minute. Lower "
                          "max_tokens or shorten the prompt.",
                          (unsigned long long)reserve, r->tenant->id,
                          (unsigned long long)l->tokens_per_minute);
  default:
    return gw_reply_error(r, REALM_E_RATE_LIMITED, "",
                          "Rate limit reached for tokens per minute (limit %llu, this request "
                          "reserves %llu) for tenant %s. Retry after %u s.",
                          (unsigned long long)l->tokens_per_minute, (unsigned long long)reserve,
                          r->tenant->id, d->retry_after_s);
  }
}

enum MHD_Result gw_handle_generate(struct gw_req *r, enum gw_api_kind kind) {
  struct gw_server *srv = r->srv;
  struct gw_parsed p;
  struct gw_param_error pe;
  enum MHD_Result res;
  if (gw_parse_request(kind, r->body.data ? r->body.data : "", r->body.len, &p, &pe) < 0)
    return gw_reply_error(r, pe.code, pe.param, "%s", pe.message);
  struct gw_gen_request *req = &p.req;
  req->tenant_id = r->tenant->id;
  req->request_id = r->rid;
  if (!gw_tenant_allows_model(r->tenant, req->model)) {
    res = gw_reply_error(r, REALM_E_NOT_FOUND, "model",
                         "The model '%s' does not exist or you do not have access to it.",
                         req->model);
    goto out;
  }

  uint64_t reserve = req->prompt_tokens_estimate;
  if (req->max_tokens) {
    reserve += req->max_tokens;
  } else {
    reserve += srv->cfg.default_max_tokens_reserve;
    /* Without max_tokens the request must not be refused as "too large" for its guess. */
    uint64_t cap = r->tenant->limits.tokens_per_minute;
    if (cap && reserve > cap && req->prompt_tokens_estimate <= cap) reserve = cap;
  }
  struct gw_rl_decision d;
  if (!gw_rl_admit(r->tenant->limiter, gw_now_ns(srv), reserve, &d)) {
    res = refuse_rate(r, &d, reserve);
    goto out;
  }
  r->admitted = true;
  r->reserved_tokens = reserve;
  r->prompt_estimate = req->prompt_tokens_estimate;
  gw_metrics_in_flight(srv->metrics, r->tenant->id, +1);

  struct gw_sink *sink = NULL;
  if (gw_sink_create(srv->cfg.monotonic_ns, srv->cfg.clock_ctx, &sink) < 0) {
    res = gw_reply_error(r, REALM_E_NOMEM, "", "out of memory");
    goto out;
  }
  if (!gw_req_attach_sink(r, sink)) {
    /* The drain was cut off while this request was being admitted: never submitted, so
     * stand in for the backend's terminal event (contract 1) and refuse. */
    gw_sink_error(sink, REALM_E_SHUTTING_DOWN, "the gateway is shutting down");
    res = gw_reply_error(r, REALM_E_SHUTTING_DOWN, "",
                         "The gateway is shutting down and takes no new requests; retry on "
                         "another instance.");
    goto out;
  }
  char err[256] = "";
  struct gw_error_info info = {.param = "", .retry_after_s = 0};
  int rc = srv->backend->ops->submit(srv->backend->self, req, r->sink, err, sizeof err, &info);
  if (rc < 0) {
    /* Contract 1: no events will come; stand in for the terminal event ourselves. */
    gw_sink_error_info(r->sink, rc, err, &info);
    res = gw_reply_failure(r, rc, err, &info);
    goto out;
  }
  /* The body is in; waiting on the backend must not trip the idle timeout meant for slow
   * clients. http.c restores it when the request ends. */
  MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0);
  r->timeout_disabled = true;
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  int fd = ci ? ci->connect_fd : -1;
  res = req->stream ? start_stream(r, req, fd) : answer_whole(r, req, fd);
out:
  gw_parsed_free(&p);
  return res;
}

void gw_generate_finish(struct gw_req *r, bool completed_ok) {
  struct gw_server *srv = r->srv;
  if (!r->is_api) return;
  uint64_t now = gw_now_ns(srv);
  int status = r->replied ? r->status : 499;
  struct gw_sink_state s;
  memset(&s, 0, sizeof s);
  if (r->sink) {
    struct gw_buf scratch = {0};
    gw_sink_take(r->sink, &scratch, &s);
    gw_buf_free(&scratch);
    cancel_backend(srv, r->sink);
    if (!completed_ok && status == 200) status = 499; /* client left mid-stream */
  }
  struct gw_usage u = usage_of(&s, r->prompt_estimate);
  if (r->admitted) {
    gw_rl_finish(r->tenant->limiter, now, r->reserved_tokens,
                 (uint64_t)u.prompt_tokens + u.completion_tokens);
    gw_metrics_in_flight(srv->metrics, r->tenant->id, -1);
  }
  double ttft = s.first_token_ns && s.first_token_ns >= r->start_ns
                    ? (double)(s.first_token_ns - r->start_ns) / 1e9
                    : -1;
  double latency = -1;
  if (r->admitted) {
    uint64_t end = s.done_ns ? s.done_ns : now;
    latency = end >= r->start_ns ? (double)(end - r->start_ns) / 1e9 : 0;
  }
  gw_metrics_request(srv->metrics, r->tenant ? r->tenant->id : NULL, status, u.prompt_tokens,
                     u.completion_tokens, ttft, latency);
}
