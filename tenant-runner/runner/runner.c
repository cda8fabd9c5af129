/*
 * runner.c — realm-runner's set-up and event loop: gateway requests in, one guest instance
 * per request, one batched Step per iteration to the worker, logits back to the guests,
 * token events out.
 *
 * One iteration of runner_run():
 *   1. zmq_poll on the gateway ROUTER, the worker DEALER and the worker monitor;
 *   2. gateway: GenerateRequest -> validate, new guest instance, request_begin (the guest
 *      feeds its prompt tokens through realm_feed_tokens), SessionOpen to the worker;
 *      CancelRequest -> Finish{CANCELLED}; HealthPing -> HealthPong;
 *   3. worker: SessionOpened -> the request becomes ACTIVE; StepReply -> for every entry
 *      with logits call the guest's on_logits, which emits text/tokens (sent at once as
 *      GenerateEvent.token) and returns the next token or STOP;
 *   4. deadlines (per request, and a Step the worker does not answer);
 *   5. if no Step is in flight: gather the pending input of EVERY active request (prompt
 *      chunks and single decode tokens mixed) into ONE Step, tokens written into the shared
 *      region at 64-byte aligned offsets, one logits row per entry.
 * Only one Step is in flight at a time: a request's next input depends on its logits, and the
 * worker merges our Step with other runners' Steps anyway. The invariants are listed in
 * runner_internal.h.
 *
 * Failures are per request: a guest trap, deadline or output cap, a worker error on one
 * entry, a bad request — each ends only that request with an Error event naming the cause.
 * Losing the worker fails every in-flight request with "unavailable".
 *
 * Stopping drains (drain_and_stop): the first SIGTERM/SIGINT stops new work while the requests
 * in flight run to their end, for at most --drain-timeout; a second signal ends the wait.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "realm/limits.h"
#include "realm/log.h"
#include "runner_internal.h"

#define DRAIN_BATCH 256       /* messages taken from one socket per iteration */
#define POLL_IDLE_MS 100      /* longest sleep in zmq_poll (stop flag, timers) */
#define RECONNECT_EVERY_MS 500
#define RUNNER_LINGER_MS 250  /* terminal events drain before exit */

/* ---- small helpers ---- */

static int64_t unix_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void runner_config_defaults(struct runner_config *c) {
  memset(c, 0, sizeof *c);
  c->tenant_id = "";
  c->replica_id = "0";
  c->worker_endpoint = "";
  c->worker_shm = "";
  c->listen_endpoint = "";
  c->module_path = "";
  c->module_cache = "";
  c->vocab_path = "";
  c->chat_template = "";
  c->max_inflight = 64;
  c->max_prompt_tokens = 8192;
  c->max_tokens = 4096;
  c->guest_memory = REALM_GUEST_DEFAULT_MEMORY_BYTES;
  c->guest_call_ms = REALM_GUEST_DEFAULT_CALL_MS;
  c->guest_output = REALM_GUEST_MAX_OUTPUT_BYTES;
  c->weight = 1;
  c->kv_quota = 0;
  c->shm_bytes = 64u << 20;
  c->connect_timeout_ms = 30000;
  c->worker_timeout_ms = 30000;
  c->prefill_chunk = 512;
  c->drain_timeout_ms = RUNNER_DEFAULT_DRAIN_TIMEOUT_MS;
}

void runner_set_jailed(struct runner *r) { r->jailed = true; }
uint64_t runner_requests_done(const struct runner *r) { return r ? r->requests_done : 0; }

/* True when sock has a whole message waiting. The drain loops take the first message
 * zmq_poll announced, then ask this before each further receive instead of receiving until
 * EAGAIN: a receive that fails also processes libzmq's commands (the same syscalls as this
 * query) and then formats an error message (strerror, vsnprintf) in realm_ipc_recv, once per
 * socket per token. */
static bool socket_readable(void *sock) {
  int events = 0;
  size_t len = sizeof events;
  return zmq_getsockopt(sock, ZMQ_EVENTS, &events, &len) == 0 && (events & ZMQ_POLLIN);
}

static uint32_t req_index(const struct runner *r, const struct rreq *q) {
  return (uint32_t)(q - r->reqs);
}

/* ---- events to the gateway ---- */

/* Sends a RunnerEvent; a failure means the gateway connection is gone (ROUTER_MANDATORY) or
 * stuck, and the request is then finished silently. */
static void send_event(struct rreq *q, Realm__V1__GenerateEvent *ge) {
  if (q->gateway_gone) return;
  Realm__V1__RunnerEvent ev;
  realm__v1__runner_event__init(&ev);
  ev.body_case = REALM__V1__RUNNER_EVENT__BODY_EVENT;
  ev.event = ge;
  char err[256];
  int rc = realm_ipc_send(q->runner->gw, &q->peer, REALM_FRAME_RUNNER_EVENT, &ev.base,
                          ZMQ_DONTWAIT, err, sizeof err);
  if (rc < 0) {
    realm_log_warn("gateway unreachable; request will be cancelled", RLOG_STR("request", q->id),
                   RLOG_ERR(rc), RLOG_STR("detail", err));
    q->gateway_gone = true;
  }
}

/* Sends the held emit_text bytes as a Token event without a token (token_id -1). */
static void send_held_text(struct rreq *q) {
  if (!q->n_hold) return;
  Realm__V1__GenerateEvent ge;
  realm__v1__generate_event__init(&ge);
  ge.request_id = q->id;
  Realm__V1__Token tok;
  realm__v1__token__init(&tok);
  tok.text.data = (uint8_t *)q->hold;
  tok.text.len = q->n_hold;
  tok.token_id = -1;
  ge.kind_case = REALM__V1__GENERATE_EVENT__KIND_TOKEN;
  ge.token = &tok;
  send_event(q, &ge);
  q->n_hold = 0;
}

/* Longest display text kept for one logprob entry (a token's own bytes; pieces are short). */
#define LOGPROB_TEXT_BYTES 256

/* Sends the held Token event (invariant 5), with its TokenLogprob and alternatives when the
 * request asked for logprobs. The chosen token's logprob text is the token's own bytes (what
 * OpenAI reports per token), not the text the guest released with it, which can be empty
 * (held back for a stop string) or carry earlier tokens' bytes. */
static void flush_token(struct rreq *q) {
  if (!q->tok_pending) return;
  q->tok_pending = false;
  const struct runner_vocab *v = q->runner->vocab;
  Realm__V1__GenerateEvent ge;
  realm__v1__generate_event__init(&ge);
  ge.request_id = q->id;
  Realm__V1__Token tok;
  realm__v1__token__init(&tok);
  tok.text.data = (uint8_t *)q->tok_text;
  tok.text.len = q->tok_len;
  tok.token_id = q->tok_id;
  Realm__V1__TokenLogprob lp;
  realm__v1__token_logprob__init(&lp);
  Realm__V1__TopLogprob top[REALM_GUEST_MAX_TOP_LOGPROBS];
  Realm__V1__TopLogprob *top_ptrs[REALM_GUEST_MAX_TOP_LOGPROBS];
  char texts[REALM_GUEST_MAX_TOP_LOGPROBS + 1][LOGPROB_TEXT_BYTES];
  if (q->want_logprobs) {
    lp.token_id = q->tok_id;
    lp.logprob = q->tok_logprob;
    if (v) {
      lp.text.len = runner_vocab_token_text(v, q->tok_id, texts[0], LOGPROB_TEXT_BYTES);
      lp.text.data = (uint8_t *)texts[0];
    } else {
      lp.text.data = (uint8_t *)q->tok_text;
      lp.text.len = q->tok_len;
    }
    for (uint32_t i = 0; i < q->tok_n_top; i++) {
      realm__v1__top_logprob__init(&top[i]);
      top[i].token_id = q->tok_top[i].token;
      top[i].logprob = q->tok_top[i].logprob;
      top[i].text.len =
          runner_vocab_token_text(v, q->tok_top[i].token, texts[i + 1], LOGPROB_TEXT_BYTES);
      top[i].text.data = (uint8_t *)texts[i + 1];
      top_ptrs[i] = &top[i];
    }
    lp.top = top_ptrs;
    lp.n_top = q->tok_n_top;
    tok.logprob = &lp;
  }
  ge.kind_case = REALM__V1__GENERATE_EVENT__KIND_TOKEN;
  ge.token = &tok;
  send_event(q, &ge);
  q->tok_len = 0;
  q->tok_n_top = 0;
}

/* A request-level Error event (no Finish follows). */
static void send_error_event(struct runner *r, const realm_ipc_peer *peer, const char *id,
                             int code, const char *msg, const char *param) {
  char err[256];
  int rc = realm_proto_send_runner_error(r->gw, peer, id, code, msg, param, err, sizeof err);
  if (rc < 0)
    realm_log_warn("cannot send error event", RLOG_STR("request", id), RLOG_ERR(rc),
                   RLOG_STR("detail", err));
}

/* ---- request lifetime ---- */

static void instance_release(struct runner *r, struct sandbox_instance *inst, bool clean);

enum end_kind { END_FINISH, END_ERROR };

/* Ends a request: terminal event, guest request_end, instance freed, session closed, slot
 * freed. Never called on a request that is in the Step in flight (invariant 2). */
static void req_end(struct rreq *q, enum end_kind kind, Realm__V1__FinishReason reason, int code,
                    const char *msg, const char *param) {
  struct runner *r = q->runner;
  /* What the guest produced before the end goes out first (invariant 5); held text is only
   * worth sending when the request finishes. */
  flush_token(q);
  if (kind == END_FINISH) {
    send_held_text(q);
    Realm__V1__GenerateEvent ge;
    realm__v1__generate_event__init(&ge);
    ge.request_id = q->id;
    Realm__V1__Finish fin;
    realm__v1__finish__init(&fin);
    Realm__V1__Usage usage;
    realm__v1__usage__init(&usage);
    usage.prompt_tokens = q->prompt_tokens;
    usage.completion_tokens = q->completion_tokens;
    fin.reason = reason;
    fin.usage = &usage;
    Realm__V1__Error e;
    if (code < 0) {
      realm_proto_error_set(&e, code, msg, param);
      fin.error = &e;
    }
    ge.kind_case = REALM__V1__GENERATE_EVENT__KIND_FINISH;
    ge.finish = &fin;
    send_event(q, &ge);
  } else if (!q->gateway_gone) {
    send_error_event(r, &q->peer, q->id, code, msg, param);
  }
  char err[256];
  bool clean = false;
  if (q->inst && q->begun && !sandbox_instance_discarded(q->inst)) {
    int32_t status = (kind == END_FINISH && code == 0) ? 0 : -1;
    r->calling = q;
    int rc = sandbox_call_request_end(q->inst, RUNNER_GUEST_REQ_ID, status, err, sizeof err);
    r->calling = NULL;
    clean = rc == 0;
    if (rc < 0)
      realm_log_warn("guest failed in request_end", RLOG_STR("request", q->id), RLOG_ERR(rc),
                     RLOG_STR("detail", err));
  }
  instance_release(r, q->inst, clean);
  q->inst = NULL;
  if (q->state == RREQ_ACTIVE && r->worker_up) {
    Realm__V1__SessionClose sc;
    realm__v1__session_close__init(&sc);
    sc.session_id = q->session_id;
    Realm__V1__WorkerRequest wr;
    realm__v1__worker_request__init(&wr);
    wr.request_id = r->next_wid++;
    wr.body_case = REALM__V1__WORKER_REQUEST__BODY_SESSION_CLOSE;
    wr.session_close = &sc;
    /* Fire and forget: the reply is ignored; a lost close is reclaimed when the connection
     * ends. */
    runner_worker_send(r, &wr, err, sizeof err);
  }
  realm_log_info("request done", RLOG_STR("request", q->id),
                 RLOG_STR("outcome", kind == END_ERROR ? realm_err_name(code)
                                     : reason == REALM__V1__FINISH_REASON__FINISH_REASON_STOP ? "stop"
                                     : reason == REALM__V1__FINISH_REASON__FINISH_REASON_LENGTH ? "length"
                                     : reason == REALM__V1__FINISH_REASON__FINISH_REASON_CANCELLED ? "cancelled"
                                                                                   : "error"),
                 RLOG_UINT("prompt_tokens", q->prompt_tokens),
                 RLOG_UINT("completion_tokens", q->completion_tokens));
  if (r->drain_counting) {
    if (kind == END_FINISH) r->drain_finished++;
    else r->drain_failed++;
  }
  free(q->id);
  free(q->pending);
  free(q->hold);
  free(q->tok_text);
  struct runner *keep = r;
  memset(q, 0, sizeof *q);
  q->runner = keep;
  r->n_active--;
  r->requests_done++;
}

/* Fails a request with an Error event. Callers clear in_step first (invariant 2). */
static void req_fail(struct rreq *q, int code, const char *msg) {
  req_end(q, END_ERROR, REALM__V1__FINISH_REASON__FINISH_REASON_ERROR, code, msg, NULL);
}

/* Reallocates buf (capacity *cap elements of elem bytes, need > *cap) to the first power-of-two
 * multiple of first (or of *cap) that holds need elements. Returns the new buffer with *cap
 * updated, or NULL (buf and *cap untouched) when out of memory. Callers bound need first. */
static void *grow_buffer(void *buf, uint32_t *cap, uint64_t need, uint32_t first, size_t elem) {
  uint32_t c = *cap ? *cap : first;
  while (c < need) c *= 2;
  void *p = realloc(buf, (size_t)c * elem);
  if (p) *cap = c;
  return p;
}

static int pending_push(struct rreq *q, const int32_t *tokens, uint32_t n, uint32_t at) {
  uint64_t need = (uint64_t)q->n_pending + n;
  if (need > q->session_max && q->session_max) return REALM_E_OUT_OF_RANGE;
  if (need > (uint64_t)REALM_MAX_CONTEXT) return REALM_E_OUT_OF_RANGE;
  if (need > q->cap_pending) {
    int32_t *p = grow_buffer(q->pending, &q->cap_pending, need, 64, sizeof *p);
    if (!p) return REALM_E_NOMEM;
    q->pending = p;
  }
  memmove(q->pending + at + n, q->pending + at, (size_t)(q->n_pending - at) * sizeof(int32_t));
  memcpy(q->pending + at, tokens, (size_t)n * sizeof(int32_t));
  q->n_pending += n;
  return REALM_OK;
}

/* ---- host callbacks (run with guest code paused; see sandbox.h) ----
 *
 * Every instance shares r->host, whose user is the runner: instances move between requests
 * (the idle pool), so the request a callback serves is the one whose guest call is running,
 * r->calling (invariant 4). Callbacks about the model need no request. */

static struct rreq *host_req(void *user) {
  return ((struct runner *)user)->calling;
}

static int host_model_info(void *user, struct realm_model_info *out) {
  struct runner *r = user;
  memset(out, 0, sizeof *out);
  out->struct_bytes = sizeof *out;
  out->n_vocab = r->vocab_size;
  out->bos = r->bos;
  out->eos = r->eos;
  out->n_ctx = r->n_ctx;
  out->n_embd = r->n_embd;
  out->n_layer = r->n_layer;
  out->vocab_kind = r->vocab ? r->vocab->vocab_kind : REALM_GUEST_VOCAB_SPM;
  snprintf(out->arch, sizeof out->arch, "%s", r->arch);
  return REALM_GUEST_OK;
}

static int host_token_piece(void *user, int32_t token, const char **ret_piece,
                            uint32_t *ret_len) {
  const struct runner_vocab *v = ((struct runner *)user)->vocab;
  if (!v || token < 0 || (uint32_t)token >= v->n_tokens) return REALM_GUEST_E_NOT_FOUND;
  *ret_piece = v->pieces + v->offsets[token];
  *ret_len = v->offsets[token + 1] - v->offsets[token];
  return REALM_GUEST_OK;
}

static int host_token_info(void *user, int32_t token, struct realm_token_info *out) {
  const struct runner_vocab *v = ((struct runner *)user)->vocab;
  if (!v || token < 0 || (uint32_t)token >= v->n_tokens) return REALM_GUEST_E_NOT_FOUND;
  out->score = v->scores[token];
  out->kind = v->kinds[token];
  return REALM_GUEST_OK;
}

static int host_feed_tokens(void *user, uint32_t req_id, const int32_t *tokens, uint32_t n) {
  struct rreq *q = host_req(user);
  (void)req_id;
  if (!q) return REALM_GUEST_E_INVALID; /* outside a request's call (a start function) */
  for (uint32_t i = 0; i < n; i++)
    if (tokens[i] < 0 || (uint32_t)tokens[i] >= q->runner->vocab_size)
      return REALM_GUEST_E_INVALID;
  if (!q->generating && (uint64_t)q->n_pending + n > (uint64_t)q->runner->cfg.max_prompt_tokens) {
    q->prompt_overflow = true; /* reported after request_begin as too_large */
    return REALM_GUEST_E_INVALID;
  }
  return pending_push(q, tokens, n, q->n_pending) == 0 ? REALM_GUEST_OK : REALM_GUEST_E_INVALID;
}

static int host_emit_text(void *user, uint32_t req_id, const char *text, uint32_t len) {
  struct rreq *q = host_req(user);
  (void)req_id;
  if (!q) return REALM_GUEST_E_INVALID;
  if (!len) return REALM_GUEST_OK;
  uint64_t need = (uint64_t)q->n_hold + len;
  if (need > q->runner->cfg.guest_output) return REALM_GUEST_E_INVALID;
  if (need > q->cap_hold) {
    char *p = grow_buffer(q->hold, &q->cap_hold, need, 256, 1);
    if (!p) return REALM_GUEST_E_INTERNAL;
    q->hold = p;
  }
  memcpy(q->hold + q->n_hold, text, len);
  q->n_hold += len;
  return REALM_GUEST_OK;
}

/* Holds the token's event (invariant 5): its top logprobs may follow. Held emit_text bytes
 * lead its text. */
static int host_emit_token(void *user, uint32_t req_id, int32_t token, float logprob,
                           const char *text, uint32_t len) {
  struct rreq *q = host_req(user);
  (void)req_id;
  if (!q) return REALM_GUEST_E_INVALID;
  flush_token(q);
  uint64_t need = (uint64_t)q->n_hold + len;
  if (need > q->runner->cfg.guest_output) return REALM_GUEST_E_INVALID;
  if (need > q->cap_tok_text) {
    char *p = grow_buffer(q->tok_text, &q->cap_tok_text, need, 64, 1);
    if (!p) return REALM_GUEST_E_INTERNAL;
    q->tok_text = p;
  }
  if (q->n_hold) memcpy(q->tok_text, q->hold, q->n_hold);
  if (len) memcpy(q->tok_text + q->n_hold, text, len);
  q->tok_len = (uint32_t)need;
  q->n_hold = 0;
  q->tok_id = token;
  q->tok_logprob = logprob;
  q->tok_n_top = 0;
  q->tok_pending = true;
  q->emitted_in_call = true;
  q->runner->tokens_total++;
  return REALM_GUEST_OK;
}

/* Alternatives of the token just emitted; kept up to what the request asked for (the Token
 * event carries at most top_logprobs entries), dropped when it asked for none. */
static int host_emit_top_logprobs(void *user, uint32_t req_id,
                                  const struct realm_top_logprob *top, uint32_t n) {
  struct rreq *q = host_req(user);
  (void)req_id;
  if (!q || n > REALM_GUEST_MAX_TOP_LOGPROBS) return REALM_GUEST_E_INVALID;
  if (!q->tok_pending) return REALM_GUEST_E_INVALID; /* no emit_token in this call to attach to */
  if (!q->want_logprobs) return REALM_GUEST_OK;
  uint32_t keep = n < q->top_logprobs ? n : q->top_logprobs;
  memcpy(q->tok_top, top, (size_t)keep * sizeof *top);
  q->tok_n_top = keep;
  return REALM_GUEST_OK;
}

static int host_model_meta(void *user, const char *key, const char **ret_value,
                           uint32_t *ret_len) {
  return runner_vocab_meta(((struct runner *)user)->vocab, key, ret_value, ret_len);
}

static int host_merge_count(void *user) {
  const struct runner_vocab *v = ((struct runner *)user)->vocab;
  return v ? (int)v->n_merges : 0;
}

static int host_merge(void *user, uint32_t i, const char **ret_merge, uint32_t *ret_len) {
  return runner_vocab_merge(((struct runner *)user)->vocab, i, ret_merge, ret_len);
}

static void host_log(void *user, int level, const char *msg, uint32_t len) {
  const struct rreq *q = host_req(user);
  char line[1025];
  uint32_t n = len < 1024 ? len : 1024;
  memcpy(line, msg, n);
  line[n] = 0;
  realm_log_level lv = level == REALM_GUEST_LOG_ERROR  ? REALM_LOG_WARN
                       : level == REALM_GUEST_LOG_DEBUG ? REALM_LOG_DEBUG
                                                        : REALM_LOG_INFO;
  realm_log(lv, "guest log", RLOG_STR("request", q ? q->id : "-"), RLOG_STR("guest", line));
}

/* The host table every instance gets (see above). finish stays NULL: the sandbox records the
 * reason and deliver_logits reads it with sandbox_instance_finish_reason. */
static void host_init(struct runner *r) {
  r->host = (struct sandbox_host){
      .user = r,
      .model_info = host_model_info,
      .token_piece = host_token_piece,
      .token_info = host_token_info,
      .feed_tokens = host_feed_tokens,
      .emit_text = host_emit_text,
      .emit_token = host_emit_token,
      .log = host_log,
      .model_meta = host_model_meta,
      .merge_count = host_merge_count,
      .merge = host_merge,
      .emit_top_logprobs = host_emit_top_logprobs,
  };
}

/* ---- guest instances: the idle pool ---- */

/* Gives q an instance: the one idled last (its caches are the warmest), else a new one. */
static int instance_acquire(struct runner *r, struct rreq *q, char *msg, size_t msglen) {
  if (r->n_idle) {
    q->inst = r->idle[--r->n_idle];
    r->instances_reused++;
    return REALM_OK;
  }
  struct sandbox_limits lim = {.memory_bytes = r->cfg.guest_memory,
                               .call_ms = (uint32_t)r->cfg.guest_call_ms,
                               .output_bytes = r->cfg.guest_output,
                               .seed = r->requests_total};
  r->calling = q;
  int rc = sandbox_instance_new(r->module, &lim, &r->host, &q->inst, msg, msglen);
  r->calling = NULL;
  if (rc == 0) r->instances_created++;
  return rc;
}

/* Takes back an instance whose request is over. Kept only when `clean` (its request_end
 * returned normally, so the guest has dropped the request's state), it is not discarded, the
 * pool has room, and its memory stayed under half the cap (a guest that grows or leaks per
 * request starts again from a fresh instance instead of reaching the cap in a later request). */
static void instance_release(struct runner *r, struct sandbox_instance *inst, bool clean) {
  if (!inst) return;
  if (clean && !sandbox_instance_discarded(inst) && r->n_idle < RUNNER_IDLE_INSTANCES &&
      sandbox_instance_memory_bytes(inst) <= r->cfg.guest_memory / 2) {
    r->idle[r->n_idle++] = inst;
    return;
  }
  sandbox_instance_free(inst);
}

/* ---- gateway requests ---- */

static struct rreq *find_req(struct runner *r, const char *id) {
  for (int64_t i = 0; i < r->cfg.max_inflight; i++)
    if (r->reqs[i].state != RREQ_FREE && strcmp(r->reqs[i].id, id) == 0) return &r->reqs[i];
  return NULL;
}

/* Builds the guest's request blob (realm_guest.h) from the GenerateRequest. */
static int build_blob(const Realm__V1__GenerateRequest *g, uint32_t max_tokens,
                      const char *chat_template, uint32_t chat_template_len, uint8_t **ret,
                      uint32_t *ret_len) {
  const Realm__V1__SamplingParams *s = g->sampling;
  uint64_t cap = REALM_REQ_HEADER_BYTES + 16 * 16;
  if (g->input_case == REALM__V1__GENERATE_REQUEST__INPUT_PROMPT) cap += 8 + strlen(g->prompt);
  if (g->input_case == REALM__V1__GENERATE_REQUEST__INPUT_CHAT)
    for (size_t i = 0; i < g->chat->n_messages; i++)
      cap += 8 + strlen(g->chat->messages[i]->role) + 1 + strlen(g->chat->messages[i]->content);
  for (size_t i = 0; i < s->n_stop; i++) cap += 8 + strlen(s->stop[i]);
  cap += (uint64_t)s->n_stop_token_ids * 12 + (g->model ? strlen(g->model) + 8 : 0);
  cap += (uint64_t)s->n_logit_bias * 8 + 8 + chat_template_len + 8;
  if (cap > REALM_MAX_FRAME_BYTES) return REALM_E_TOO_LARGE;
  uint8_t *b = malloc(cap);
  if (!b) return REALM_E_NOMEM;
  uint32_t len = 0, c = (uint32_t)cap;
  realm_req_begin(b, c, &len);
  if (g->input_case == REALM__V1__GENERATE_REQUEST__INPUT_PROMPT)
    realm_req_add(b, c, &len, REALM_REQ_PROMPT, g->prompt, (uint32_t)strlen(g->prompt));
  if (g->input_case == REALM__V1__GENERATE_REQUEST__INPUT_CHAT) {
    for (size_t i = 0; i < g->chat->n_messages; i++) {
      const Realm__V1__ChatMessage *m = g->chat->messages[i];
      size_t rl = strlen(m->role), cl = strlen(m->content);
      char *turn = malloc(rl + 1 + cl); /* "role\0content" */
      if (!turn) {
        free(b);
        return REALM_E_NOMEM;
      }
      memcpy(turn, m->role, rl);
      turn[rl] = 0;
      memcpy(turn + rl + 1, m->content, cl);
      realm_req_add(b, c, &len, REALM_REQ_MESSAGE, turn, (uint32_t)(rl + 1 + cl));
      free(turn);
    }
  }
  realm_req_add(b, c, &len, REALM_REQ_MAX_TOKENS, &max_tokens, 4);
  if (s->has_temperature) realm_req_add(b, c, &len, REALM_REQ_TEMPERATURE, &s->temperature, 4);
  if (s->top_k > 0) {
    uint32_t k = (uint32_t)s->top_k;
    realm_req_add(b, c, &len, REALM_REQ_TOP_K, &k, 4);
  }
  if (s->has_top_p) realm_req_add(b, c, &len, REALM_REQ_TOP_P, &s->top_p, 4);
  if (s->min_p != 0) realm_req_add(b, c, &len, REALM_REQ_MIN_P, &s->min_p, 4);
  if (s->has_seed) {
    uint64_t seed = (uint64_t)s->seed;
    realm_req_add(b, c, &len, REALM_REQ_SEED, &seed, 8);
  }
  for (size_t i = 0; i < s->n_stop; i++)
    realm_req_add(b, c, &len, REALM_REQ_STOP, s->stop[i], (uint32_t)strlen(s->stop[i]));
  if (s->repetition_penalty != 0)
    realm_req_add(b, c, &len, REALM_REQ_REPETITION_PENALTY, &s->repetition_penalty, 4);
  if (s->frequency_penalty != 0)
    realm_req_add(b, c, &len, REALM_REQ_FREQUENCY_PENALTY, &s->frequency_penalty, 4);
  if (s->presence_penalty != 0)
    realm_req_add(b, c, &len, REALM_REQ_PRESENCE_PENALTY, &s->presence_penalty, 4);
  if (s->logprobs) {
    uint32_t top = s->top_logprobs;
    realm_req_add(b, c, &len, REALM_REQ_LOGPROBS, &top, 4);
  } else {
    /* flush_token drops the logprob of a request that did not ask for them: tell the guest,
     * which may then skip computing it (for the default guest under greedy decoding, most of
     * its per-token work). */
    uint32_t skip = 1;
    realm_req_add(b, c, &len, REALM_REQ_SKIP_LOGPROBS, &skip, 4);
  }
  for (size_t i = 0; i < s->n_stop_token_ids; i++)
    realm_req_add(b, c, &len, REALM_REQ_STOP_TOKEN, &s->stop_token_ids[i], 4);
  if (g->model && g->model[0])
    realm_req_add(b, c, &len, REALM_REQ_MODEL, g->model, (uint32_t)strlen(g->model));
  if (s->n_logit_bias) {
    /* One LOGIT_BIAS field with every entry: {i32 token, f32 bias} little-endian (the blob
     * is little-endian; so is every host we build for). validate_generate checked them. */
    uint32_t n = (uint32_t)s->n_logit_bias;
    uint8_t *ent = malloc((size_t)n * 8);
    if (!ent) {
      free(b);
      return REALM_E_NOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
      memcpy(ent + 8 * i, &s->logit_bias[i]->key, 4);
      memcpy(ent + 8 * i + 4, &s->logit_bias[i]->value, 4);
    }
    realm_req_add(b, c, &len, REALM_REQ_LOGIT_BIAS, ent, n * 8);
    free(ent);
  }
  if (chat_template_len)
    realm_req_add(b, c, &len, REALM_REQ_CHAT_TEMPLATE, chat_template, chat_template_len);
  *ret = b;
  *ret_len = len;
  return REALM_OK;
}

/* Checks a GenerateRequest; on refusal fills code, message and param. */
static int validate_generate(struct runner *r, const Realm__V1__GenerateRequest *g, char *msg,
                             size_t msglen, const char **param) {
  *param = NULL;
  if (!g->request_id || !g->request_id[0] || strlen(g->request_id) > 256) {
    realm_set_err(msg, msglen, "request_id must be 1..256 bytes");
    *param = "request_id";
    return REALM_E_INVALID_ARGUMENT;
  }
  if (!g->tenant_id || strcmp(g->tenant_id, r->cfg.tenant_id) != 0) {
    realm_set_err(msg, msglen, "tenant '%s' is not served by this runner",
                  g->tenant_id ? g->tenant_id : "");
    return REALM_E_PERMISSION;
  }
  if (g->input_case == REALM__V1__GENERATE_REQUEST__INPUT__NOT_SET ||
      (g->input_case == REALM__V1__GENERATE_REQUEST__INPUT_PROMPT && !g->prompt) ||
      (g->input_case == REALM__V1__GENERATE_REQUEST__INPUT_CHAT &&
       (!g->chat || g->chat->n_messages == 0))) {
    realm_set_err(msg, msglen, "the request has no prompt (prompt, chat messages or tokens)");
    *param = g->input_case == REALM__V1__GENERATE_REQUEST__INPUT_CHAT ? "messages" : "prompt";
    return REALM_E_INVALID_ARGUMENT;
  }
  if (g->input_case == REALM__V1__GENERATE_REQUEST__INPUT_TOKENS) {
    realm_set_err(msg, msglen,
                  "token-id prompts are not supported by the guest ABI v1 request blob");
    *param = "prompt";
    return REALM_E_UNSUPPORTED;
  }
  if (g->input_case == REALM__V1__GENERATE_REQUEST__INPUT_CHAT) {
    if (g->chat->n_messages > REALM_MAX_MESSAGES) {
      realm_set_err(msg, msglen, "%zu messages, at most %d", g->chat->n_messages,
                    REALM_MAX_MESSAGES);
      *param = "messages";
      return REALM_E_TOO_LARGE;
    }
    for (size_t i = 0; i < g->chat->n_messages; i++)
      if (!g->chat->messages[i] || !g->chat->messages[i]->role ||
          !g->chat->messages[i]->content) {
        realm_set_err(msg, msglen, "message %zu has no role or content", i);
        *param = "messages";
        return REALM_E_INVALID_ARGUMENT;
      }
  }
  if (!g->sampling) {
    realm_set_err(msg, msglen, "sampling parameters are missing");
    *param = "sampling";
    return REALM_E_INVALID_ARGUMENT;
  }
  if (g->sampling->max_tokens > (uint64_t)r->cfg.max_tokens) {
    realm_set_err(msg, msglen, "max_tokens %u is above this runner's limit %lld",
                  g->sampling->max_tokens, (long long)r->cfg.max_tokens);
    *param = "max_tokens";
    return REALM_E_OUT_OF_RANGE;
  }
  if (g->sampling->top_logprobs > REALM_GUEST_MAX_TOP_LOGPROBS) {
    realm_set_err(msg, msglen, "top_logprobs %u is above %d", g->sampling->top_logprobs,
                  REALM_GUEST_MAX_TOP_LOGPROBS);
    *param = "top_logprobs";
    return REALM_E_OUT_OF_RANGE;
  }
  if (g->sampling->n_logit_bias > r->vocab_size) {
    realm_set_err(msg, msglen, "logit_bias has %zu entries, the vocabulary %u tokens",
                  g->sampling->n_logit_bias, r->vocab_size);
    *param = "logit_bias";
    return REALM_E_TOO_LARGE;
  }
  for (size_t i = 0; i < g->sampling->n_logit_bias; i++) {
    const Realm__V1__SamplingParams__LogitBiasEntry *e = g->sampling->logit_bias[i];
    if (!e || e->key < 0 || (uint32_t)e->key >= r->vocab_size || !(e->value >= -100.0f) ||
        !(e->value <= 100.0f)) {
      realm_set_err(msg, msglen, "logit_bias entry %d: %g (token ids 0..%u, biases -100..100)",
                    e ? e->key : -1, e ? (double)e->value : 0.0, r->vocab_size - 1);
      *param = "logit_bias";
      return REALM_E_INVALID_ARGUMENT;
    }
  }
  if (g->n > 1) {
    realm_set_err(msg, msglen, "n = %u: this runner serves one choice per request", g->n);
    *param = "n";
    return REALM_E_UNSUPPORTED;
  }
  if (find_req(r, g->request_id)) {
    realm_set_err(msg, msglen, "request_id '%s' is already in flight", g->request_id);
    *param = "request_id";
    return REALM_E_INVALID_ARGUMENT;
  }
  if (r->draining) {
    realm_set_err(msg, msglen, "the runner is stopping and takes no new requests; retry on "
                               "another replica");
    r->drain_refused++;
    return r->drain_code;
  }
  if (!r->worker_up) {
    realm_set_err(msg, msglen, "the worker is not connected");
    return REALM_E_UNAVAILABLE;
  }
  if (r->n_active >= (uint64_t)r->cfg.max_inflight ||
      (r->max_sessions && r->n_active >= r->max_sessions)) {
    realm_set_err(msg, msglen, "runner is at its limit of %u requests in flight", r->n_active);
    return REALM_E_UNAVAILABLE;
  }
  return REALM_OK;
}

static void handle_generate(struct runner *r, const realm_ipc_peer *peer,
                            const Realm__V1__GenerateRequest *g) {
  char msg[512];
  const char *param = NULL;
  int rc = validate_generate(r, g, msg, sizeof msg, &param);
  if (rc < 0) {
    realm_log_info("request refused", RLOG_STR("request", g->request_id), RLOG_ERR(rc),
                   RLOG_STR("detail", msg));
    send_error_event(r, peer, g->request_id ? g->request_id : "", rc, msg, param);
    return;
  }
  struct rreq *q = NULL;
  for (int64_t i = 0; i < r->cfg.max_inflight && !q; i++)
    if (r->reqs[i].state == RREQ_FREE) q = &r->reqs[i];
  /* validate_generate checked n_active < max_inflight, so a slot exists. */
  memset(q, 0, sizeof *q);
  q->runner = r;
  q->id = strdup(g->request_id);
  q->peer = *peer;
  q->state = RREQ_OPENING;
  q->want_logprobs = g->sampling->logprobs;
  q->top_logprobs = g->sampling->logprobs ? g->sampling->top_logprobs : 0;
  q->deadline_unix_ms = g->deadline_unix_ms;
  q->max_tokens = g->sampling->max_tokens ? g->sampling->max_tokens : (uint32_t)r->cfg.max_tokens;
  r->n_active++;
  r->requests_total++;
  if (!q->id) {
    req_fail(q, REALM_E_NOMEM, "out of memory");
    return;
  }
  rc = instance_acquire(r, q, msg, sizeof msg);
  if (rc < 0) {
    req_fail(q, rc, msg);
    return;
  }
  uint8_t *blob = NULL;
  uint32_t blob_len = 0;
  rc = build_blob(g, q->max_tokens, r->chat_template, r->chat_template_len, &blob, &blob_len);
  if (rc < 0) {
    req_fail(q, rc, "the request does not fit the guest request blob");
    return;
  }
  int32_t status = 0;
  r->calling = q;
  rc = sandbox_call_request_begin(q->inst, RUNNER_GUEST_REQ_ID, blob, blob_len, &status, msg,
                                  sizeof msg);
  r->calling = NULL;
  free(blob);
  flush_token(q);
  if (rc < 0) {
    realm_log_warn("guest failed in request_begin", RLOG_STR("request", q->id), RLOG_ERR(rc),
                   RLOG_STR("detail", msg));
    req_fail(q, rc, msg);
    return;
  }
  q->begun = true;
  if (q->gateway_gone) {
    req_end(q, END_FINISH, REALM__V1__FINISH_REASON__FINISH_REASON_CANCELLED, 0, NULL, NULL);
    return;
  }
  if (status != 0) {
    realm_set_err(msg, sizeof msg, "the tenant's guest refused the request (code %d)", status);
    req_fail(q, REALM_E_INVALID_ARGUMENT, msg);
    return;
  }
  if (q->prompt_overflow || q->n_pending > (uint64_t)r->cfg.max_prompt_tokens ||
      q->n_pending >= r->n_ctx) {
    realm_set_err(
        msg, sizeof msg, "prompt is more than %lld tokens (this runner's limit; context %u)",
        (long long)(q->prompt_overflow ? r->cfg.max_prompt_tokens : q->n_pending - 1), r->n_ctx);
    req_end(q, END_ERROR, 0, REALM_E_TOO_LARGE, msg, "prompt");
    return;
  }
  if (q->n_pending == 0) {
    req_fail(q, REALM_E_INVALID_ARGUMENT, "the guest fed no input tokens for this request");
    return;
  }
  q->prompt_tokens = q->n_pending;
  uint64_t want = (uint64_t)q->n_pending + q->max_tokens;
  q->session_max = want > r->n_ctx ? r->n_ctx : (uint32_t)want;
  Realm__V1__SessionOpen so;
  realm__v1__session_open__init(&so);
  so.max_tokens = q->session_max;
  Realm__V1__WorkerRequest wr;
  realm__v1__worker_request__init(&wr);
  q->open_wid = wr.request_id = r->next_wid++;
  wr.body_case = REALM__V1__WORKER_REQUEST__BODY_SESSION_OPEN;
  wr.session_open = &so;
  rc = runner_worker_send(r, &wr, msg, sizeof msg);
  if (rc < 0) {
    req_fail(q, REALM_E_UNAVAILABLE, "cannot reach the worker to open a session");
    return;
  }
}

static void handle_cancel(struct runner *r, const Realm__V1__CancelRequest *c) {
  struct rreq *q = c->request_id ? find_req(r, c->request_id) : NULL;
  if (!q) return; /* may have just finished */
  if (q->in_step) {
    q->cancel_requested = true;
    return;
  }
  req_end(q, END_FINISH, REALM__V1__FINISH_REASON__FINISH_REASON_CANCELLED, 0, NULL, NULL);
}

static void handle_ping(struct runner *r, const realm_ipc_peer *peer, const Realm__V1__HealthPing *p) {
  Realm__V1__HealthPong pong;
  realm__v1__health_pong__init(&pong);
  pong.nonce = p->nonce;
  pong.tenant_id = (char *)r->cfg.tenant_id;
  pong.replica_id = (char *)r->cfg.replica_id;
  pong.in_flight = r->n_active;
  pong.max_in_flight = (uint32_t)r->cfg.max_inflight;
  pong.worker_connected = r->worker_up;
  /* Not ready while stopping: the gateway routes no new request here (its replica state
   * NOT_READY) and leaves the ones in flight alone, which is all a drain needs. */
  pong.ready = r->worker_up && r->module && !r->draining;
  pong.requests_total = r->requests_total;
  pong.tokens_total = r->tokens_total;
  Realm__V1__RunnerEvent ev;
  realm__v1__runner_event__init(&ev);
  ev.body_case = REALM__V1__RUNNER_EVENT__BODY_PONG;
  ev.pong = &pong;
  char err[256];
  realm_ipc_send(r->gw, peer, REALM_FRAME_RUNNER_EVENT, &ev.base, ZMQ_DONTWAIT, err, sizeof err);
}

static void drain_gateway(struct runner *r) {
  for (int i = 0; i < DRAIN_BATCH && (i == 0 || socket_readable(r->gw)); i++) {
    realm_ipc_peer from;
    ProtobufCMessage *m = NULL;
    char err[256];
    int rc = realm_ipc_recv(r->gw, &from, REALM_FRAME_RUNNER_REQUEST,
                            &realm__v1__runner_request__descriptor, 0, ZMQ_DONTWAIT, &m, err,
                            sizeof err);
    if (rc == REALM_E_TIMEOUT) return;
    if (rc == REALM_E_PROTOCOL || rc == REALM_E_VERSION || rc == REALM_E_TOO_LARGE) {
      realm_log_warn("bad frame from the gateway", RLOG_ERR(rc), RLOG_STR("detail", err));
      realm_proto_send_frame_error(r->gw, &from, REALM_FRAME_RUNNER_REQUEST, rc, err, NULL, 0);
      continue;
    }
    if (rc < 0) return;
    Realm__V1__RunnerRequest *req = (Realm__V1__RunnerRequest *)m;
    switch (req->body_case) {
    case REALM__V1__RUNNER_REQUEST__BODY_GENERATE:
      if (req->generate) handle_generate(r, &from, req->generate);
      break;
    case REALM__V1__RUNNER_REQUEST__BODY_CANCEL:
      if (req->cancel) handle_cancel(r, req->cancel);
      break;
    case REALM__V1__RUNNER_REQUEST__BODY_PING:
      if (req->ping) handle_ping(r, &from, req->ping);
      break;
    default:
      realm_proto_send_runner_error(r->gw, &from, NULL, REALM_E_PROTOCOL,
                                    "RunnerRequest has no body", NULL, NULL, 0);
      break;
    }
    realm_frame_msg_free(m);
  }
}

/* ---- the worker side ---- */

/* Fails everything in flight and forgets the connection. */
static void worker_lost(struct runner *r, const char *why) {
  realm_log_error("worker connection lost", RLOG_STR("detail", why),
                  RLOG_UINT("in_flight", r->n_active), RLOG_BOOL("jailed", r->jailed));
  r->step_in_flight = false;
  r->n_step = 0;
  r->worker_up = false; /* no SessionClose: the worker drops the connection's sessions */
  char msg[256];
  realm_set_err(msg, sizeof msg, "the compute worker is unavailable: %s", why);
  for (int64_t i = 0; i < r->cfg.max_inflight; i++) {
    struct rreq *q = &r->reqs[i];
    if (q->state == RREQ_FREE) continue;
    q->in_step = false;
    req_fail(q, REALM_E_UNAVAILABLE, msg);
  }
  runner_worker_close(r);
  r->next_reconnect_ms = runner_now_ms();
}

/* Runs the guest on one logits row and acts on its answer. */
static void deliver_logits(struct runner *r, struct rreq *q, const float *logits) {
  char msg[512];
  int32_t action = 0;
  uint32_t at = q->n_pending; /* the chosen token goes before anything fed during the call */
  q->generating = true;
  q->emitted_in_call = false;
  r->calling = q;
  int rc = sandbox_call_logits(q->inst, RUNNER_GUEST_REQ_ID, logits, r->vocab_size, &action, msg,
                               sizeof msg);
  r->calling = NULL;
  /* A token the guest emitted stays held: every way out below that ends the request sends it
   * first (req_end), and on the way that continues, handle_step_reply sends it after the next
   * Step (invariant 5). */
  if (rc < 0) {
    realm_log_warn("guest failed in on_logits", RLOG_STR("request", q->id), RLOG_ERR(rc),
                   RLOG_STR("detail", msg));
    req_fail(q, rc, msg);
    return;
  }
  if (q->gateway_gone) {
    req_end(q, END_FINISH, REALM__V1__FINISH_REASON__FINISH_REASON_CANCELLED, 0, NULL, NULL);
    return;
  }
  if (action == REALM_GUEST_STOP) {
    /* A token emitted in this call is part of the completion (the default guest emits the
     * last token before stopping for a stop string or max_tokens); a stop token it does not
     * emit (EOS) is not. */
    if (q->emitted_in_call) q->completion_tokens++;
    /* The guest's own reason (realm_finish); NONE (an older guest) reads as stop. The
     * protocol has no content-filter reason yet, so CONTENT_FILTER is reported as stop. */
    int32_t why = sandbox_instance_finish_reason(q->inst, RUNNER_GUEST_REQ_ID);
    if (why == REALM_GUEST_FINISH_CONTENT_FILTER)
      realm_log_info("guest finished for content_filter; reported as stop",
                     RLOG_STR("request", q->id));
    req_end(q, END_FINISH,
            why == REALM_GUEST_FINISH_LENGTH ? REALM__V1__FINISH_REASON__FINISH_REASON_LENGTH
                                             : REALM__V1__FINISH_REASON__FINISH_REASON_STOP,
            0, NULL, NULL);
    return;
  }
  if (action < 0 || (uint32_t)action >= r->vocab_size) {
    realm_set_err(msg, sizeof msg, "the tenant's guest returned %d from on_logits (vocabulary %u)",
                  action, r->vocab_size);
    req_fail(q, REALM_E_GUEST_TRAP, msg);
    return;
  }
  q->completion_tokens++;
  if (q->completion_tokens >= q->max_tokens) {
    req_end(q, END_FINISH, REALM__V1__FINISH_REASON__FINISH_REASON_LENGTH, 0, NULL, NULL);
    return;
  }
  if (q->n_fed + q->n_pending + 1 > q->session_max ||
      pending_push(q, &action, 1, at) < 0) {
    req_end(q, END_FINISH, REALM__V1__FINISH_REASON__FINISH_REASON_LENGTH, 0, NULL, NULL);
    return;
  }
}

static void send_step(struct runner *r);

/* Sends every held Token event (invariant 5). */
static void flush_held_tokens(struct runner *r) {
  for (int64_t i = 0; i < r->cfg.max_inflight; i++)
    if (r->reqs[i].tok_pending) flush_token(&r->reqs[i]);
}

/* Hands each entry's logits to its guest, then sends the next Step, and only then the Token
 * events the guests emitted: the worker cannot start the next forward pass before the Step
 * arrives, while the gateway's events are off that critical path. Sending the two messages
 * back to back also lets libzmq's I/O thread take both in one wake-up. */
static void handle_step_reply(struct runner *r, const Realm__V1__WorkerReply *rep) {
  r->step_in_flight = false;
  r->steps_total++;
  const Realm__V1__StepReply *sr =
      rep->body_case == REALM__V1__WORKER_REPLY__BODY_STEP ? rep->step : NULL;
  int whole_err = 0;
  char msg[512] = "";
  if (!sr) {
    whole_err = rep->body_case == REALM__V1__WORKER_REPLY__BODY_ERROR
                    ? realm_proto_error_code(rep->error) : REALM_E_PROTOCOL;
    realm_set_err(
        msg, sizeof msg, "worker failed the step: %s",
        rep->error && rep->error->message ? rep->error->message : "unexpected reply body");
  } else if (sr->n_results != r->n_step) {
    whole_err = REALM_E_PROTOCOL;
    realm_set_err(msg, sizeof msg, "StepReply has %zu results for %u entries", sr->n_results,
                  r->n_step);
  }
  if (whole_err == REALM_E_UNAVAILABLE) {
    worker_lost(r, msg);
    return;
  }
  uint32_t n = r->n_step;
  r->n_step = 0;
  for (uint32_t i = 0; i < n; i++) {
    struct step_slot *s = &r->step[i];
    struct rreq *q = &r->reqs[s->req];
    q->in_step = false;
    if (q->state != RREQ_ACTIVE) continue;
    if (whole_err) {
      req_fail(q, whole_err, msg);
      continue;
    }
    const Realm__V1__StepResult *res = sr->results[i];
    if (q->cancel_requested || q->gateway_gone) {
      req_end(q, END_FINISH, REALM__V1__FINISH_REASON__FINISH_REASON_CANCELLED, 0, NULL, NULL);
      continue;
    }
    if (!res || res->error) {
      int code = res ? realm_proto_error_code(res->error) : REALM_E_PROTOCOL;
      realm_set_err(msg, sizeof msg, "worker failed this request's step: %s",
                    res && res->error->message ? res->error->message : "missing result");
      req_fail(q, code, msg);
      continue;
    }
    /* The worker appended the entry's tokens: drop them from the pending queue. */
    memmove(q->pending, q->pending + s->n_tokens,
            (size_t)(q->n_pending - s->n_tokens) * sizeof(int32_t));
    q->n_pending -= s->n_tokens;
    q->n_fed += s->n_tokens;
    if (!s->n_logits) continue;
    const float *row = NULL;
    if (r->shm) {
      void *p = NULL;
      if (realm_shm_slice(r->shm, s->logits_offset, r->row_bytes, &p, msg, sizeof msg) == 0)
        row = p;
    } else if (res->logits_inline.len == (size_t)r->vocab_size * sizeof(float)) {
      row = (const float *)res->logits_inline.data;
    }
    if (!row) {
      req_fail(q, REALM_E_PROTOCOL, "worker returned no logits row for this request");
      continue;
    }
    deliver_logits(r, q, row);
  }
  send_step(r);
  flush_held_tokens(r);
}

/* True when rep is the worker's "KV cache full" refusal of one SessionOpen: `unavailable` with
 * Error.param "kv_cache" (the shared KV pool could not cover the reservation within
 * --open-queue-timeout, or its wait queue was full; docs/protocol.md §5). It concerns that
 * request only: the connection and its other sessions are fine, so it must not read as a lost
 * worker. */
static bool is_kv_cache_full(const Realm__V1__WorkerReply *rep) {
  return rep->body_case == REALM__V1__WORKER_REPLY__BODY_ERROR && rep->error &&
         realm_proto_error_code(rep->error) == REALM_E_UNAVAILABLE && rep->error->param &&
         strcmp(rep->error->param, "kv_cache") == 0;
}

static void handle_session_opened(struct runner *r, const Realm__V1__WorkerReply *rep) {
  struct rreq *q = NULL;
  for (int64_t i = 0; i < r->cfg.max_inflight && !q; i++)
    if (r->reqs[i].state == RREQ_OPENING && r->reqs[i].open_wid == rep->request_id)
      q = &r->reqs[i];
  if (!q) {
    /* Its request ended meanwhile: give the session back. */
    if (rep->body_case == REALM__V1__WORKER_REPLY__BODY_SESSION_OPENED && rep->session_opened) {
      Realm__V1__SessionClose sc;
      realm__v1__session_close__init(&sc);
      sc.session_id = rep->session_opened->session_id;
      Realm__V1__WorkerRequest wr;
      realm__v1__worker_request__init(&wr);
      wr.request_id = r->next_wid++;
      wr.body_case = REALM__V1__WORKER_REQUEST__BODY_SESSION_CLOSE;
      wr.session_close = &sc;
      char err[128];
      runner_worker_send(r, &wr, err, sizeof err);
    }
    return;
  }
  if (rep->body_case != REALM__V1__WORKER_REPLY__BODY_SESSION_OPENED || !rep->session_opened) {
    int code = rep->body_case == REALM__V1__WORKER_REPLY__BODY_ERROR
                   ? realm_proto_error_code(rep->error) : REALM_E_PROTOCOL;
    char msg[512];
    realm_set_err(msg, sizeof msg, "worker refused a KV session: %s",
                  rep->error && rep->error->message ? rep->error->message : "unexpected reply");
    if (is_kv_cache_full(rep)) {
      /* This request only; the param goes on so the gateway can tell a full KV pool (retry
       * later) from a lost worker. */
      req_end(q, END_ERROR, REALM__V1__FINISH_REASON__FINISH_REASON_ERROR, REALM_E_UNAVAILABLE,
              msg, "kv_cache");
      return;
    }
    if (code == REALM_E_UNAVAILABLE) {
      worker_lost(r, msg);
      return;
    }
    req_fail(q, code, msg);
    return;
  }
  q->state = RREQ_ACTIVE;
  q->session_id = rep->session_opened->session_id;
  if (rep->session_opened->max_tokens && rep->session_opened->max_tokens < q->session_max)
    q->session_max = rep->session_opened->max_tokens;
  if (q->cancel_requested || q->gateway_gone)
    req_end(q, END_FINISH, REALM__V1__FINISH_REASON__FINISH_REASON_CANCELLED, 0, NULL, NULL);
}

/* Acts on one reply of the worker, from the socket or the step lane. */
static void handle_worker_reply(struct runner *r, Realm__V1__WorkerReply *rep) {
  if (rep->request_id == 0) {
    int code = realm_proto_error_code(rep->error);
    const char *why = rep->error && rep->error->message ? rep->error->message : "";
    if (code == REALM_E_SHUTTING_DOWN || code == REALM_E_UNAVAILABLE ||
        code == REALM_E_VERSION) {
      char msg[512];
      realm_set_err(msg, sizeof msg, "%s: %s", realm_err_name(code), why);
      worker_lost(r, msg);
    } else {
      realm_log_warn("worker notice", RLOG_ERR(code), RLOG_STR("detail", why));
    }
  } else if (r->step_in_flight && rep->request_id == r->step_wid) {
    handle_step_reply(r, rep);
  } else if (rep->body_case == REALM__V1__WORKER_REPLY__BODY_SESSION_CLOSED) {
    /* nothing to do */
  } else if (rep->body_case == REALM__V1__WORKER_REPLY__BODY_ERROR &&
             realm_proto_error_code(rep->error) == REALM_E_UNAVAILABLE &&
             !is_kv_cache_full(rep)) {
    worker_lost(r, rep->error && rep->error->message ? rep->error->message : "unavailable");
  } else {
    /* A SessionOpened, or a refused SessionOpen — "KV cache full" included, which fails
     * only its own request. */
    handle_session_opened(r, rep);
  }
}

static void drain_worker(struct runner *r) {
  for (int i = 0; i < DRAIN_BATCH && r->wk && (i == 0 || socket_readable(r->wk)); i++) {
    ProtobufCMessage *m = NULL;
    char err[256];
    int rc = realm_ipc_recv(r->wk, NULL, REALM_FRAME_WORKER_REPLY,
                            &realm__v1__worker_reply__descriptor,
                            REALM_MAX_FRAME_BYTES + REALM_MAX_INLINE_TENSOR_BYTES, ZMQ_DONTWAIT,
                            &m, err, sizeof err);
    if (rc == REALM_E_TIMEOUT) return;
    if (rc < 0) {
      if (rc == REALM_E_VERSION || rc == REALM_E_PROTOCOL || rc == REALM_E_TOO_LARGE) {
        worker_lost(r, err);
      }
      return;
    }
    Realm__V1__WorkerReply *rep = (Realm__V1__WorkerReply *)m;
    /* A Step posted in the lane whose reply did not fit there comes this way. */
    if (r->lane.busy && r->step_in_flight && rep->request_id == r->step_wid)
      realm_lane_reply_elsewhere(&r->lane);
    handle_worker_reply(r, rep);
    realm_frame_msg_free(m);
  }
}

/* Takes the Step reply waiting in the step lane, if any. */
static void drain_lane(struct runner *r) {
  if (!realm_lane_reply_ready(&r->lane)) return;
  ProtobufCMessage *m = NULL;
  char err[256];
  int rc = realm_lane_take_reply(&r->lane, &realm__v1__worker_reply__descriptor, &m, err,
                                 sizeof err);
  if (rc < 0) {
    worker_lost(r, err);
    return;
  }
  Realm__V1__WorkerReply *rep = (Realm__V1__WorkerReply *)m;
  /* The lane answers the Step it carried, whatever request_id a refusal names. */
  if (r->step_in_flight) rep->request_id = r->step_wid;
  handle_worker_reply(r, rep);
  realm_frame_msg_free(m);
}

/* Builds and sends one Step naming every active request that has input. */
static void send_step(struct runner *r) {
  if (r->step_in_flight || !r->worker_up || r->n_active == 0) return;
  uint32_t max_entries = r->n_rows < r->max_batch_seqs ? r->n_rows : r->max_batch_seqs;
  Realm__V1__StepEntry *entries = r->step_entries, **eptrs = r->step_eptrs;
  uint32_t budget = r->max_step_tokens, n = 0;
  uint64_t tok_cursor = r->tokens_off;
  /* Round-robin start so the same requests do not always take the token budget first. */
  uint32_t cap = (uint32_t)r->cfg.max_inflight;
  uint32_t start = r->rr_start = (r->rr_start + 1) % cap;
  for (uint32_t k = 0; k < cap && n < max_entries && budget > 0; k++) {
    struct rreq *q = &r->reqs[(start + k) % cap];
    if (q->state != RREQ_ACTIVE || q->in_step || q->n_pending == 0) continue;
    uint32_t take = q->n_pending;
    if (take > (uint32_t)r->cfg.prefill_chunk) take = (uint32_t)r->cfg.prefill_chunk;
    if (take > budget) take = budget;
    if (q->n_fed + take > q->session_max) {
      req_end(q, END_FINISH, REALM__V1__FINISH_REASON__FINISH_REASON_LENGTH, 0, NULL, NULL);
      continue;
    }
    Realm__V1__StepEntry *e = &entries[n];
    realm__v1__step_entry__init(e);
    e->session_id = q->session_id;
    e->n_tokens = take;
    e->n_logits = take == q->n_pending ? 1 : 0;
    if (r->shm) {
      void *dst = NULL;
      char err[128];
      if (realm_shm_slice(r->shm, tok_cursor, (uint64_t)take * 4, &dst, err, sizeof err) < 0)
        break;
      memcpy(dst, q->pending, (size_t)take * 4);
      e->tokens_offset = tok_cursor;
      tok_cursor += ((uint64_t)take * 4 + REALM_PROTOCOL_SHM_ALIGN - 1) /
                    REALM_PROTOCOL_SHM_ALIGN * REALM_PROTOCOL_SHM_ALIGN;
    } else {
      e->tokens_inline = q->pending;
      e->n_tokens_inline = take;
    }
    e->logits_offset = r->logits_off + (uint64_t)n * r->row_bytes;
    eptrs[n] = e;
    r->step[n] = (struct step_slot){.req = req_index(r, q), .n_tokens = take,
                                    .n_logits = e->n_logits, .logits_offset = e->logits_offset};
    q->in_step = true;
    budget -= take;
    n++;
  }
  if (n == 0) return;
  Realm__V1__Step step;
  realm__v1__step__init(&step);
  step.entries = eptrs;
  step.n_entries = n;
  Realm__V1__WorkerRequest wr;
  realm__v1__worker_request__init(&wr);
  wr.request_id = r->next_wid++;
  wr.body_case = REALM__V1__WORKER_REQUEST__BODY_STEP;
  wr.step = &step;
  char err[256];
  r->n_step = n;
  int rc = runner_worker_send(r, &wr, err, sizeof err);
  if (rc < 0) {
    worker_lost(r, err);
    return;
  }
  r->step_in_flight = true;
  r->step_wid = wr.request_id;
  r->step_sent_ms = runner_now_ms();
}

static void check_deadlines(struct runner *r) {
  int64_t now = unix_now_ms();
  for (int64_t i = 0; i < r->cfg.max_inflight; i++) {
    struct rreq *q = &r->reqs[i];
    if (q->state == RREQ_FREE || !q->deadline_unix_ms || now < (int64_t)q->deadline_unix_ms)
      continue;
    if (q->in_step) {
      q->cancel_requested = true;
      continue;
    }
    req_end(q, END_FINISH, REALM__V1__FINISH_REASON__FINISH_REASON_CANCELLED, REALM_E_TIMEOUT,
            "the request's deadline passed", NULL);
  }
  if (r->step_in_flight && runner_now_ms() - r->step_sent_ms > r->cfg.worker_timeout_ms)
    worker_lost(r, "a step was not answered within --worker-timeout");
}

int runner_run(struct runner *r, volatile sig_atomic_t *stop) {
  return runner_run_until(r, stop, UINT64_MAX);
}

void runner_linger(struct runner *r, int64_t ms) {
  int64_t until = runner_now_ms() + ms;
  for (int64_t left; (left = until - runner_now_ms()) > 0;) {
    zmq_pollitem_t item = {.socket = r->gw, .events = ZMQ_POLLIN};
    if (zmq_poll(&item, 1, (long)left) > 0) drain_gateway(r);
  }
}

/* Ends every request still in flight with `code` and keeps answering the gateway for
 * RUNNER_LINGER_MS, so those terminal events (queued in libzmq's I/O thread) reach it before
 * the process exits; new requests meanwhile get `code` too. Returns ret. */
static int finish_and_linger(struct runner *r, int code, const char *why, int ret) {
  r->draining = true;
  r->drain_code = code;
  r->step_in_flight = false;
  r->n_step = 0;
  for (int64_t i = 0; i < r->cfg.max_inflight; i++) {
    struct rreq *q = &r->reqs[i];
    if (q->state == RREQ_FREE) continue;
    q->in_step = false;
    req_fail(q, code, why);
  }
  runner_linger(r, RUNNER_LINGER_MS);
  return ret;
}

/* Runs one throw-away request (empty prompt, max_tokens 1, ended before any logits) through
 * an idle instance, so that what a guest builds on its first request and keeps for the
 * instance — the default guest's tokenizer over the whole vocabulary, 5 ms for 32k tokens,
 * up to ~100 ms for 150k — is built before the first client's request rather than inside its
 * TTFT. Called once by runner_run_until, i.e. after the jail: like every request, it is the
 * tenant's code. Nothing reaches the gateway or the worker (the request has no peer and no
 * session) and no counter moves. Returns true when the instance ended the request cleanly
 * and may serve clients; a guest that refuses an empty prompt still counts as clean. */
static bool warm_up(struct runner *r, struct sandbox_instance *inst) {
  struct rreq warm = {.runner = r, .id = "warm-up", .inst = inst, .gateway_gone = true};
  uint8_t blob[64];
  uint32_t len = 0, one = 1;
  realm_req_begin(blob, sizeof blob, &len);
  realm_req_add(blob, sizeof blob, &len, REALM_REQ_PROMPT, "", 0);
  realm_req_add(blob, sizeof blob, &len, REALM_REQ_MAX_TOKENS, &one, 4);
  uint64_t tokens_before = r->tokens_total;
  int32_t status = 0;
  char err[256];
  r->calling = &warm;
  int rc = sandbox_call_request_begin(inst, RUNNER_GUEST_REQ_ID, blob, len, &status, err,
                                      sizeof err);
  if (rc == 0)
    rc = sandbox_call_request_end(inst, RUNNER_GUEST_REQ_ID, -1, err, sizeof err);
  r->calling = NULL;
  r->tokens_total = tokens_before;
  free(warm.pending);
  free(warm.hold);
  free(warm.tok_text);
  if (rc < 0)
    realm_log_warn("guest warm-up request failed; the first request builds its caches",
                   RLOG_ERR(rc), RLOG_STR("detail", err));
  return rc == 0;
}

/* Warms the idle instance runner_new left (see warm_up); once per runner. */
static void warm_idle(struct runner *r) {
  if (r->warmed || r->n_idle == 0) return;
  r->warmed = true;
  struct sandbox_instance *inst = r->idle[--r->n_idle];
  instance_release(r, inst, warm_up(r, inst));
}

/* One turn of the loop: waits up to poll_ms for the gateway, the worker and its monitor,
 * handles what arrived, checks deadlines and sends the next Step. Returns 0, or
 * REALM_E_SHUTTING_DOWN / REALM_E_SYSTEM when zmq_poll itself failed (a signal is not a
 * failure: EINTR returns 0 so the caller looks at its stop flag at once). */
static int serve_once(struct runner *r, long poll_ms) {
  zmq_pollitem_t items[4] = {
      {.socket = r->gw, .events = ZMQ_POLLIN},
      {.socket = r->wk, .events = ZMQ_POLLIN},
      {.socket = r->mon, .events = ZMQ_POLLIN},
      {.fd = r->lane.to_runner, .events = ZMQ_POLLIN},
  };
  int n_items = r->wk ? (realm_lane_on(&r->lane) ? 4 : 3) : 1;
  int rc = realm_lane_reply_ready(&r->lane) ? 0 : zmq_poll(items, n_items, poll_ms);
  if (rc < 0) {
    if (zmq_errno() == EINTR) return REALM_OK;
    if (zmq_errno() == ETERM) return REALM_E_SHUTTING_DOWN;
    return REALM_E_SYSTEM;
  }
  if (r->wk && (items[2].revents & ZMQ_POLLIN) && runner_worker_disconnected(r)) {
    drain_worker(r); /* replies that arrived before the drop still count */
    if (r->wk) worker_lost(r, "the worker closed the connection");
  }
  if (r->wk && (items[1].revents & ZMQ_POLLIN)) drain_worker(r);
  if (n_items == 4 && (items[3].revents & ZMQ_POLLIN)) realm_lane_clear(r->lane.to_runner);
  drain_lane(r); /* after the clear: a reply put later rings again */
  if (items[0].revents & ZMQ_POLLIN) drain_gateway(r);
  check_deadlines(r);
  send_step(r);
  return REALM_OK;
}

/*
 * The stop drain (runner.h, runner_run). State diagram:
 *
 *   SERVING --signal 1--> DRAINING --(nothing in flight | worker lost | timeout |
 *                                     signal 2 | poll error)--> CUT-OFF --250 ms--> return
 *
 * DRAINING is the ordinary loop (serve_once) with r->draining set: validate_generate refuses
 * new requests with shutting_down and handle_ping reports ready=false, while Steps, logits,
 * cancels, deadlines and the worker's loss are handled as always. No reconnect is tried (a
 * stopping runner has no use for a new worker). Every wait inside is a zmq_poll of at most
 * POLL_IDLE_MS and the whole drain at most drain_timeout_ms plus the linger, so a stuck worker
 * cannot hold the stop (its Step times out at --worker-timeout anyway, or the drain does).
 * CUT-OFF is finish_and_linger: what is left ends with shutting_down, as before the drain
 * existed. Returns REALM_OK, or the poll error.
 */
static int drain_and_stop(struct runner *r, volatile sig_atomic_t *stop) {
  const int64_t t0 = runner_now_ms(), timeout = r->cfg.drain_timeout_ms;
  const uint64_t at_start = r->n_active;
  const bool worker_was_up = r->worker_up;
  r->draining = true;
  r->drain_code = REALM_E_SHUTTING_DOWN;
  r->drain_counting = true;
  r->drain_finished = r->drain_failed = r->drain_refused = 0;
  realm_log_info("draining: no new requests, waiting for those in flight",
                 RLOG_UINT("in_flight", at_start), RLOG_INT("drain_timeout_ms", timeout));
  const char *end = NULL;
  int rc = REALM_OK;
  while (!end) {
    int64_t left = t0 + timeout - runner_now_ms();
    if (worker_was_up && !r->worker_up)
      end = "worker lost"; /* worker_lost failed what was in flight with unavailable */
    else if (r->n_active == 0)
      end = "drained";
    else if (*stop >= 2)
      end = "second signal";
    else if (left <= 0)
      end = "timeout";
    else if ((rc = serve_once(r, left < POLL_IDLE_MS ? (long)left : POLL_IDLE_MS)) < 0)
      end = "error";
  }
  const uint64_t cut = r->n_active;
  r->drain_counting = false;
  if (cut && strcmp(end, "second signal") == 0)
    realm_log_info("second stop signal: ending the requests still in flight now",
                   RLOG_UINT("in_flight", cut));
  char why[160];
  realm_set_err(why, sizeof why,
                "the runner is shutting down and ended this request before it finished (%s); "
                "retry it",
                strcmp(end, "timeout") == 0 ? "its drain time ran out" : end);
  finish_and_linger(r, REALM_E_SHUTTING_DOWN, why, REALM_OK);
  realm_log_info("drain finished", RLOG_STR("end", end), RLOG_UINT("in_flight_at_start", at_start),
                 RLOG_UINT("finished", r->drain_finished), RLOG_UINT("failed", r->drain_failed),
                 RLOG_UINT("cut_off", cut), RLOG_UINT("refused", r->drain_refused),
                 RLOG_INT("elapsed_ms", runner_now_ms() - t0));
  return rc < 0 ? rc : REALM_OK;
}

int runner_run_until(struct runner *r, volatile sig_atomic_t *stop, uint64_t done_target) {
  warm_idle(r);
  while (!*stop) {
    if (r->requests_done >= done_target) return REALM_OK;
    if (!r->worker_up) {
      if (r->jailed)
        return finish_and_linger(r, REALM_E_UNAVAILABLE, "the compute worker is unavailable",
                                 RUNNER_EXIT_WORKER_LOST);
      if (runner_now_ms() >= r->next_reconnect_ms) {
        char err[512];
        int rc = runner_worker_connect(r, 200, err, sizeof err);
        if (rc == 0)
          realm_log_info("worker reconnected", RLOG_UINT("connection", r->connection_id));
        r->next_reconnect_ms = runner_now_ms() + RECONNECT_EVERY_MS;
      }
    }
    int rc = serve_once(r, POLL_IDLE_MS);
    if (rc < 0) return rc;
  }
  return drain_and_stop(r, stop);
}

/* ---- set-up ---- */


/* Keeps the tenant's chat template: the text itself, or "@PATH" read now (the jail forbids
 * opening files later). At most REALM_GUEST_MAX_META_VALUE_BYTES, like a model's template. */
static int load_chat_template(struct runner *r, const char *spec, char *err, size_t errlen) {
  size_t len;
  char *text = NULL;
  if (spec[0] == '@') {
    FILE *fp = fopen(spec + 1, "rb");
    if (!fp) {
      realm_set_err(err, errlen, "--chat-template %s: %s", spec, strerror(errno));
      return REALM_E_INVALID_ARGUMENT;
    }
    text = malloc(REALM_GUEST_MAX_META_VALUE_BYTES + 1);
    len = text ? fread(text, 1, REALM_GUEST_MAX_META_VALUE_BYTES + 1, fp) : 0;
    bool bad = text && ferror(fp);
    fclose(fp);
    if (!text) return REALM_E_NOMEM;
    if (bad || len == 0 || len > REALM_GUEST_MAX_META_VALUE_BYTES) {
      realm_set_err(err, errlen, "--chat-template %s: %s", spec,
                    bad        ? "read error"
                    : len == 0 ? "empty file"
                               : "larger than 1 MiB");
      free(text);
      return REALM_E_INVALID_ARGUMENT;
    }
  } else {
    len = strlen(spec);
    if (len > REALM_GUEST_MAX_META_VALUE_BYTES) {
      realm_set_err(err, errlen, "--chat-template is %zu bytes, at most %u", len,
                    REALM_GUEST_MAX_META_VALUE_BYTES);
      return REALM_E_INVALID_ARGUMENT;
    }
    text = strdup(spec);
    if (!text) return REALM_E_NOMEM;
  }
  r->chat_template = text;
  r->chat_template_len = (uint32_t)len;
  return REALM_OK;
}

int runner_new(const struct runner_config *cfg, struct runner **ret_runner, char *err,
               size_t errlen) {
  if (!cfg->tenant_id[0] || !cfg->worker_endpoint[0] || !cfg->listen_endpoint[0] ||
      !cfg->module_path[0] || !cfg->module_cache[0]) {
    realm_set_err(err, errlen,
                  "--tenant, --worker, --listen, --module and --module-cache are required");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (cfg->max_inflight < 1 || cfg->max_inflight > REALM_GUEST_MAX_ACTIVE_REQUESTS) {
    realm_set_err(err, errlen, "--max-inflight %lld is outside 1..%d", (long long)cfg->max_inflight,
                  REALM_GUEST_MAX_ACTIVE_REQUESTS);
    return REALM_E_INVALID_ARGUMENT;
  }
  struct runner *r = calloc(1, sizeof *r);
  if (!r) return REALM_E_NOMEM;
  r->cfg = *cfg;
  r->next_wid = 1;
  int rc = REALM_E_NOMEM;
  r->reqs = calloc((size_t)cfg->max_inflight, sizeof *r->reqs);
  r->step = calloc(REALM_MAX_BATCH_SEQS, sizeof *r->step);
  r->step_entries = calloc(REALM_MAX_BATCH_SEQS, sizeof *r->step_entries);
  r->step_eptrs = calloc(REALM_MAX_BATCH_SEQS, sizeof *r->step_eptrs);
  if (!r->reqs || !r->step || !r->step_entries || !r->step_eptrs) {
    realm_set_err(err, errlen, "out of memory");
    goto fail;
  }
  for (int64_t i = 0; i < cfg->max_inflight; i++) r->reqs[i].runner = r;
  host_init(r);
  if (cfg->vocab_path[0]) {
    rc = runner_vocab_load(cfg->vocab_path, &r->vocab, err, errlen);
    if (rc < 0) goto fail;
  }
  if (cfg->chat_template && cfg->chat_template[0]) {
    rc = load_chat_template(r, cfg->chat_template, err, errlen);
    if (rc < 0) goto fail;
  }
  rc = sandbox_module_load_file(cfg->module_path, cfg->module_cache, &r->module, err, errlen);
  if (rc < 0) goto fail;
  rc = realm_ipc_ctx_new(&r->zctx, err, errlen);
  if (rc < 0) goto fail;
  rc = realm_ipc_socket_new(r->zctx, ZMQ_ROUTER, 0, &r->gw, err, errlen);
  if (rc < 0) goto fail;
  if (zmq_bind(r->gw, cfg->listen_endpoint) != 0) {
    realm_set_err(err, errlen, "--listen %s: %s", cfg->listen_endpoint, zmq_strerror(zmq_errno()));
    rc = REALM_E_INVALID_ARGUMENT;
    goto fail;
  }
  rc = runner_worker_connect(r, cfg->connect_timeout_ms, err, errlen);
  if (rc < 0) goto fail;
  /* A first instance: proves the module instantiates with our limits and makes the sandbox
   * create this thread's deadline timer and signal stack before any jail; it then waits in
   * the idle pool (warmed up by runner_run_until, after the jail) for the first request. */
  {
    struct rreq probe = {.runner = r, .id = "probe"};
    rc = instance_acquire(r, &probe, err, errlen);
    if (rc < 0) goto fail;
    instance_release(r, probe.inst, true);
  }
  *ret_runner = r;
  return REALM_OK;
fail:
  runner_free(r);
  return rc;
}

void runner_free(struct runner *r) {
  if (!r) return;
  if (r->reqs)
    for (int64_t i = 0; i < r->cfg.max_inflight; i++) {
      struct rreq *q = &r->reqs[i];
      if (q->state == RREQ_FREE) continue;
      sandbox_instance_free(q->inst);
      free(q->id);
      free(q->pending);
      free(q->hold);
      free(q->tok_text);
    }
  for (uint32_t i = 0; i < r->n_idle; i++) sandbox_instance_free(r->idle[i]);
  runner_worker_close(r);
  realm_ipc_socket_close(r->gw);
  if (r->zctx) zmq_ctx_term(r->zctx);
  sandbox_module_free(r->module);
  runner_vocab_free(r->vocab);
  free(r->chat_template);
  free(r->reqs);
  free(r->step);
  free(r->step_entries);
  free(r->step_eptrs);
  free(r);
}
