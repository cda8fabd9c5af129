/*
 * backend_runners.c — the ZeroMQ client of the tenants' runner replicas (backend_runners.h).
 *
 * Design notes (numbered so comments can cite them):
 *  1. Threads. One I/O thread owns every ZeroMQ socket: one DEALER per replica and one PAIR
 *     per replica reading that DEALER's socket monitor. HTTP threads call submit/cancel/ready
 *     and the server calls set_tenants; they touch only the shared state below, under `mu`,
 *     then wake the I/O thread by writing the eventfd `wake_fd`, which zmq_poll() watches next
 *     to the sockets. No socket is ever used from two threads.
 *  2. Shared state (under mu): the replica list, the in-flight table (hash by wire id), the
 *     command queue (frames to send, cancels) and the tenant ids of the current snapshot.
 *     Fields marked "I/O" in struct replica are touched by the I/O thread only.
 *  3. Wire ids. The runner needs an id unique among its in-flight requests, and a client may
 *     reuse an x-request-id; so the id on the wire is "<x-request-id>#<seq>" with a
 *     process-wide sequence. An event for an id that is not in the table, or that names a
 *     request routed to another replica, is dropped: a late event for a request that was
 *     already failed locally can never reach a new request.
 *  4. Sink lifetime (backend.h rules 2-3): an entry owns the backend's reference to its sink
 *     until the terminal call, which is made under mu at the moment the entry leaves the
 *     table. cancel() looks the sink up in the table under mu, so a finished request is a
 *     no-op and a sink is never touched after its terminal event.
 *  5. Replica state: UNKNOWN (added, no pong yet) → UP (pong with ready=true) or NOT_READY
 *     (pong with ready=false, or naming another tenant than the one it is configured for). Any of them → DOWN when ping_misses consecutive pings go
 *     unanswered, when the connection drops (monitor DISCONNECTED), when a send to it fails,
 *     or when it sends a frame we cannot parse. Entering DOWN fails every in-flight request
 *     of that replica at once (REALM_E_UNAVAILABLE) and sends it a best-effort CancelRequest
 *     for each. DOWN → UP/NOT_READY on the next pong. Only UP replicas receive new requests.
 *  6. Routing: among the tenant's UP replicas, by load. A replica's load is the requests we
 *     have outstanding on it plus `foreign`: what its last HealthPong's in_flight counted
 *     beyond our outstanding at that moment (requests of other gateways, or ones we already
 *     ended locally that it still runs; never negative: ours in transit are not counted
 *     twice). Its capacity is the pong's max_in_flight (0 = not reported: unbounded). Order:
 *     (a) a replica with room (load < capacity) before a full one, so a replica reporting
 *     in_flight >= max_in_flight never gets traffic while another has room; (b) the lower
 *     load (least outstanding, with the runner's own view as the penalty); (c) the more free
 *     slots (capacity − load); (d) the replica listed first. When every replica is full the
 *     least loaded still gets the request: the pong is up to ping_ms old, and the runner is
 *     the authority (it refuses with "unavailable", a 503, when it really is full).
 *  7. Reload: set_tenants() keeps a replica whose (tenant, endpoint) stays, with its socket
 *     and in-flight requests; adds new ones; marks the others removed: they get no new
 *     requests, keep serving what they have, and are closed by the I/O thread once their
 *     outstanding count reaches zero.
 *  8. Liveness bound: every accepted request ends by its runner's terminal event, by its
 *     replica going down (within ping_ms × ping_misses of the runner going silent, at once
 *     if the connection drops), or — once cancelled — within cancel_grace_ms.
 *  9. Retry hints (backend.h struct gw_error_info): a refusal because the tenant has
 *     replicas but none is up, and a request failed because its replica went down, carry
 *     retry_after_s = ping_ms rounded up to whole seconds: a replica comes back (UNKNOWN or
 *     DOWN → UP) on the pong to its next ping, so by then either it or another replica can
 *     take the retry. A tenant with no replica configured gets no hint (only a reload can add
 *     one). A runner's own errors carry its Error.param and no hint.
 */
#include "backend_runners.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "buf.h"
#include "metrics.h"
#include "realm/error.h"
#include "realm/ipc.h"
#include "realm/proto.h"
#include "tenants.h"

#define RN_BUCKETS 1024
#define RN_WIRE_ID_MAX 160

struct replica {
  struct replica *next; /* rn->replicas */
  char *tenant;
  char *endpoint;
  unsigned num; /* unique per backend: names the monitor endpoint */
  /* under mu */
  enum gw_replica_state state;
  bool removed;
  uint32_t outstanding;
  uint64_t routed_total;
  uint64_t failed_down_total;
  uint64_t down_total;      /* times taken out after answering pings (up or not ready) */
  uint64_t failovers_total; /* ... of which another replica of the tenant was up to take over */
  uint32_t reported_in_flight;     /* last pong: requests the runner was running */
  uint32_t reported_max_in_flight; /* last pong: the most it accepts (0 = not reported) */
  uint32_t foreign;                /* note 6: reported_in_flight beyond our outstanding then */
  /* I/O thread only */
  void *sock;
  void *mon;
  uint32_t missed;
  bool awaiting_pong;
  uint64_t nonce;
};

struct inflight {
  struct inflight *next; /* hash chain */
  char *wire_id;
  struct gw_sink *sink; /* the backend's reference (note 4) */
  struct replica *rep;
  bool cancelled;
  uint64_t cancel_ns;
};

enum cmd_kind { CMD_GENERATE = 1, CMD_CANCEL = 2 };

struct cmd {
  struct cmd *next;
  enum cmd_kind kind;
  char *wire_id;
  uint8_t *frame; /* CMD_GENERATE: the encoded RunnerRequest */
  size_t len;
};

struct gw_runners {
  struct gw_backend backend;
  struct gw_runners_config cfg;
  void *zctx;
  bool own_ctx;
  int wake_fd;
  pthread_t thread;
  bool thread_started;
  uint64_t seq; /* atomic: wire id sequence */

  pthread_mutex_t mu;
  struct replica *replicas;
  unsigned next_num;
  char **tenant_ids;
  size_t n_tenant_ids;
  struct inflight *buckets[RN_BUCKETS];
  size_t n_inflight;
  struct cmd *cmd_head, *cmd_tail;
  bool stopping;
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void rn_log(struct gw_runners *rn, enum gw_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void rn_log(struct gw_runners *rn, enum gw_log_level level, const char *fmt, ...) {
  if (!rn->cfg.log) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  rn->cfg.log(rn->cfg.log_ctx, level, msg);
}

static void wake(struct gw_runners *rn) {
  uint64_t one = 1;
  ssize_t w = write(rn->wake_fd, &one, sizeof one);
  (void)w; /* EAGAIN: the counter is already non-zero, the thread wakes anyway */
}

static const char *state_name(enum gw_replica_state s) {
  switch (s) {
  case GW_REPLICA_UP: return "up";
  case GW_REPLICA_NOT_READY: return "not ready";
  case GW_REPLICA_DOWN: return "down";
  default: return "unknown";
  }
}

/* ---- the in-flight table (under mu) ---- */

static size_t bucket_of(const char *id) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)id; *p; p++) h = (h ^ *p) * 1099511628211ull;
  return (size_t)(h % RN_BUCKETS);
}

static struct inflight *table_find(struct gw_runners *rn, const char *id) {
  for (struct inflight *e = rn->buckets[bucket_of(id)]; e; e = e->next)
    if (!strcmp(e->wire_id, id)) return e;
  return NULL;
}

static void table_unlink(struct gw_runners *rn, struct inflight *e) {
  struct inflight **pp = &rn->buckets[bucket_of(e->wire_id)];
  while (*pp && *pp != e) pp = &(*pp)->next;
  if (*pp) *pp = e->next;
  rn->n_inflight--;
  e->rep->outstanding--;
}

/* Delivers the terminal event of e and frees it (note 4). reason NULL = error, with info
 * (NULL = none). */
static void entry_end_info(struct gw_runners *rn, struct inflight *e, const char *finish_reason,
                           const struct gw_usage *usage, int code, const char *message,
                           const struct gw_error_info *info) {
  table_unlink(rn, e);
  if (finish_reason) gw_sink_finish(e->sink, finish_reason, usage);
  else gw_sink_error_info(e->sink, code, message, info);
  free(e->wire_id);
  free(e);
}

static void entry_end(struct gw_runners *rn, struct inflight *e, const char *finish_reason,
                      const struct gw_usage *usage, int code, const char *message) {
  entry_end_info(rn, e, finish_reason, usage, code, message, NULL);
}

/* Note 9: the retry hint of a failure caused by replica health. */
static struct gw_error_info health_retry_info(const struct gw_runners *rn) {
  return (struct gw_error_info){.param = "", .retry_after_s = (rn->cfg.ping_ms + 999) / 1000};
}

/* A runner's Error as the sink takes it: its param (the sink checks it) and no retry hint (the
 * runner gives none; the gateway's rule for the code and param applies). */
static struct gw_error_info runner_error_info(const Realm__V1__Error *err) {
  struct gw_error_info info = {.param = "", .retry_after_s = 0};
  /* One that does not fit is dropped, not cut: a shortened param would name something else. */
  if (err && err->param && strlen(err->param) < sizeof info.param)
    memcpy(info.param, err->param, strlen(err->param) + 1);
  return info;
}

/* ---- commands (under mu) ---- */

static int push_cmd(struct gw_runners *rn, enum cmd_kind kind, const char *wire_id,
                    uint8_t *frame, size_t len) {
  struct cmd *c = calloc(1, sizeof *c);
  if (!c || !(c->wire_id = strdup(wire_id))) {
    free(c);
    return REALM_E_NOMEM;
  }
  c->kind = kind;
  c->frame = frame;
  c->len = len;
  if (rn->cmd_tail) rn->cmd_tail->next = c;
  else rn->cmd_head = c;
  rn->cmd_tail = c;
  return 0;
}

static void cmd_free(struct cmd *c) {
  if (!c) return;
  free(c->wire_id);
  free(c->frame);
  free(c);
}

/* ---- encoding (any thread) ---- */

static char *nz(const char *s) { return (char *)(s ? s : ""); }

/* Encodes the GenerateRequest of req as a RunnerRequest frame in a new buffer. */
static int encode_generate(const struct gw_gen_request *req, const char *wire_id,
                           uint8_t **ret_frame, size_t *ret_len, char *err, size_t errlen) {
  Realm__V1__SamplingParams sp;
  realm__v1__sampling_params__init(&sp);
  sp.max_tokens = req->max_tokens;
  sp.has_temperature = req->has_temperature;
  sp.temperature = (float)req->temperature;
  sp.has_top_p = req->has_top_p;
  sp.top_p = (float)req->top_p;
  sp.presence_penalty = (float)req->presence_penalty;
  sp.frequency_penalty = (float)req->frequency_penalty;
  sp.has_seed = req->has_seed;
  sp.seed = req->seed;
  sp.logprobs = req->logprobs;
  sp.top_logprobs = req->top_logprobs;
  char *stops[REALM_MAX_STOP_SEQUENCES];
  for (size_t i = 0; i < req->n_stop && i < REALM_MAX_STOP_SEQUENCES; i++) stops[i] = nz(req->stop[i]);
  sp.n_stop = req->n_stop < REALM_MAX_STOP_SEQUENCES ? req->n_stop : REALM_MAX_STOP_SEQUENCES;
  sp.stop = stops;

  Realm__V1__SamplingParams__LogitBiasEntry *bias = NULL, **bias_p = NULL;
  Realm__V1__ChatMessage *msgs = NULL, **msgs_p = NULL;
  int r = REALM_E_NOMEM;
  if (req->n_logit_bias) {
    bias = calloc(req->n_logit_bias, sizeof *bias);
    bias_p = calloc(req->n_logit_bias, sizeof *bias_p);
    if (!bias || !bias_p) goto out;
    for (size_t i = 0; i < req->n_logit_bias; i++) {
      realm__v1__sampling_params__logit_bias_entry__init(&bias[i]);
      bias[i].key = req->logit_bias[i].token_id;
      bias[i].value = req->logit_bias[i].bias;
      bias_p[i] = &bias[i];
    }
    sp.n_logit_bias = req->n_logit_bias;
    sp.logit_bias = bias_p;
  }

  Realm__V1__GenerateRequest g;
  realm__v1__generate_request__init(&g);
  g.request_id = (char *)wire_id;
  g.tenant_id = nz(req->tenant_id);
  g.model = nz(req->model);
  g.sampling = &sp;
  g.n = 1;
  g.stream = req->stream;
  g.include_usage = req->include_usage;
  g.user = nz(req->user);
  Realm__V1__ChatPrompt chat;
  if (req->kind == GW_API_CHAT) {
    realm__v1__chat_prompt__init(&chat);
    if (req->n_messages) {
      msgs = calloc(req->n_messages, sizeof *msgs);
      msgs_p = calloc(req->n_messages, sizeof *msgs_p);
      if (!msgs || !msgs_p) goto out;
    }
    for (size_t i = 0; i < req->n_messages; i++) {
      realm__v1__chat_message__init(&msgs[i]);
      msgs[i].role = nz(req->messages[i].role);
      msgs[i].content = nz(req->messages[i].content);
      msgs[i].name = nz(req->messages[i].name);
      msgs[i].tool_call_id = nz(req->messages[i].tool_call_id);
      msgs_p[i] = &msgs[i];
    }
    chat.n_messages = req->n_messages;
    chat.messages = msgs_p;
    g.input_case = REALM__V1__GENERATE_REQUEST__INPUT_CHAT;
    g.chat = &chat;
  } else {
    g.input_case = REALM__V1__GENERATE_REQUEST__INPUT_PROMPT;
    g.prompt = nz(req->prompt);
  }
  Realm__V1__RunnerRequest env;
  realm__v1__runner_request__init(&env);
  env.body_case = REALM__V1__RUNNER_REQUEST__BODY_GENERATE;
  env.generate = &g;

  size_t cap = realm_frame_encoded_size(&env.base);
  uint8_t *buf = malloc(cap ? cap : 1);
  if (!buf) goto out;
  size_t len = 0;
  r = realm_frame_encode(REALM_FRAME_RUNNER_REQUEST, &env.base, buf, cap, &len, err, errlen);
  if (r < 0) {
    free(buf);
    goto out;
  }
  *ret_frame = buf;
  *ret_len = len;
out:
  if (r == REALM_E_NOMEM) snprintf(err, errlen, "out of memory encoding the runner request");
  free(bias);
  free(bias_p);
  free(msgs);
  free(msgs_p);
  return r;
}

/* ---- routing (note 6), under mu ---- */

static uint64_t replica_load(const struct replica *p) {
  return (uint64_t)p->outstanding + p->foreign;
}

static bool replica_has_room(const struct replica *p) {
  return p->reported_max_in_flight == 0 || replica_load(p) < p->reported_max_in_flight;
}

static uint64_t replica_free_slots(const struct replica *p) {
  if (p->reported_max_in_flight == 0) return UINT64_MAX;
  uint64_t load = replica_load(p);
  return load < p->reported_max_in_flight ? p->reported_max_in_flight - load : 0;
}

/* True when a should get the next request rather than b (strict: ties keep b, listed first). */
static bool replica_better(const struct replica *a, const struct replica *b) {
  bool room_a = replica_has_room(a), room_b = replica_has_room(b);
  if (room_a != room_b) return room_a;
  uint64_t load_a = replica_load(a), load_b = replica_load(b);
  if (load_a != load_b) return load_a < load_b;
  return replica_free_slots(a) > replica_free_slots(b);
}

/* ---- backend ops (HTTP threads) ---- */

static int rn_submit(void *self, const struct gw_gen_request *req, struct gw_sink *sink,
                     char *err, size_t errlen, struct gw_error_info *info) {
  struct gw_runners *rn = self;
  char wire_id[RN_WIRE_ID_MAX];
  unsigned long long seq = __atomic_add_fetch(&rn->seq, 1, __ATOMIC_RELAXED);
  snprintf(wire_id, sizeof wire_id, "%.128s#%llu", req->request_id ? req->request_id : "req", seq);

  /* Look for a replica first: a tenant without one is refused without encoding anything. */
  pthread_mutex_lock(&rn->mu);
  size_t configured = 0;
  bool any = false;
  for (struct replica *p = rn->replicas; p; p = p->next)
    if (!p->removed && !strcmp(p->tenant, req->tenant_id)) {
      configured++;
      any = any || p->state == GW_REPLICA_UP;
    }
  pthread_mutex_unlock(&rn->mu);
  if (!any) goto unavailable;

  uint8_t *frame = NULL;
  size_t len = 0;
  int r = encode_generate(req, wire_id, &frame, &len, err, errlen);
  if (r < 0) return r;

  struct inflight *e = calloc(1, sizeof *e);
  if (!e || !(e->wire_id = strdup(wire_id))) {
    free(e);
    free(frame);
    snprintf(err, errlen, "out of memory");
    return REALM_E_NOMEM;
  }
  pthread_mutex_lock(&rn->mu);
  struct replica *best = NULL;
  configured = 0;
  for (struct replica *p = rn->replicas; p; p = p->next) {
    if (p->removed || strcmp(p->tenant, req->tenant_id)) continue;
    configured++;
    if (p->state == GW_REPLICA_UP && (!best || replica_better(p, best))) best = p;
  }
  if (rn->stopping) {
    pthread_mutex_unlock(&rn->mu);
    free(e->wire_id);
    free(e);
    free(frame);
    snprintf(err, errlen, "the gateway is shutting down");
    return REALM_E_SHUTTING_DOWN;
  }
  if (!best || push_cmd(rn, CMD_GENERATE, wire_id, frame, len) < 0) {
    pthread_mutex_unlock(&rn->mu);
    free(e->wire_id);
    free(e);
    free(frame);
    if (best) {
      snprintf(err, errlen, "out of memory");
      return REALM_E_NOMEM;
    }
    goto unavailable;
  }
  e->sink = sink;
  e->rep = best;
  size_t b = bucket_of(wire_id);
  e->next = rn->buckets[b];
  rn->buckets[b] = e;
  rn->n_inflight++;
  best->outstanding++;
  best->routed_total++;
  pthread_mutex_unlock(&rn->mu);
  wake(rn);
  return 0;

unavailable:
  if (configured) {
    snprintf(err, errlen,
             "no runner available for tenant %s (%zu replica%s configured, none healthy)",
             req->tenant_id, configured, configured == 1 ? "" : "s");
    *info = health_retry_info(rn); /* note 9 */
  } else /* nothing to wait for: only a reload can add one (no hint) */
    snprintf(err, errlen, "no runner available for tenant %s (no runner replicas configured)",
             req->tenant_id);
  return REALM_E_UNAVAILABLE;
}

static void rn_cancel(void *self, struct gw_sink *sink) {
  struct gw_runners *rn = self;
  pthread_mutex_lock(&rn->mu);
  struct inflight *found = NULL;
  for (size_t b = 0; b < RN_BUCKETS && !found; b++)
    for (struct inflight *e = rn->buckets[b]; e; e = e->next)
      if (e->sink == sink) {
        found = e;
        break;
      }
  bool queued = false;
  if (found && !found->cancelled) {
    found->cancelled = true;
    found->cancel_ns = now_ns();
    /* Without memory for the command the grace timer still ends the request (note 8). */
    queued = push_cmd(rn, CMD_CANCEL, found->wire_id, NULL, 0) == 0;
  }
  pthread_mutex_unlock(&rn->mu);
  if (queued) wake(rn);
}

static bool rn_ready(void *self, char *why, size_t whylen) {
  struct gw_runners *rn = self;
  bool ok = true;
  pthread_mutex_lock(&rn->mu);
  if (rn->n_tenant_ids == 0) {
    snprintf(why, whylen, "no tenants configured");
    ok = false;
  }
  for (size_t i = 0; ok && i < rn->n_tenant_ids; i++) {
    size_t configured = 0;
    bool up = false;
    for (struct replica *p = rn->replicas; p; p = p->next)
      if (!p->removed && !strcmp(p->tenant, rn->tenant_ids[i])) {
        configured++;
        up = up || p->state == GW_REPLICA_UP;
      }
    if (!up) {
      snprintf(why, whylen, "tenant %s has no healthy runner replica (%zu configured)",
               rn->tenant_ids[i], configured);
      ok = false;
    }
  }
  pthread_mutex_unlock(&rn->mu);
  return ok;
}

static void free_strv(char **v, size_t n) {
  for (size_t i = 0; v && i < n; i++) free(v[i]);
  free(v);
}

static void replica_free(struct replica *p) {
  if (!p) return;
  free(p->tenant);
  free(p->endpoint);
  free(p);
}

static int rn_set_tenants(void *self, const struct gw_tenants *snap, char *err, size_t errlen) {
  struct gw_runners *rn = self;
  char **ids = calloc(snap->n ? snap->n : 1, sizeof *ids);
  struct replica *added = NULL, **added_tail = &added;
  int r = ids ? 0 : REALM_E_NOMEM;
  for (size_t i = 0; r == 0 && i < snap->n; i++)
    if (!(ids[i] = strdup(snap->v[i].id))) r = REALM_E_NOMEM;

  pthread_mutex_lock(&rn->mu);
  /* Phase 1: allocate what is new; nothing shared changes, so a failure leaves all as it was. */
  for (size_t i = 0; r == 0 && i < snap->n; i++) {
    const struct gw_tenant *t = &snap->v[i];
    for (size_t k = 0; r == 0 && k < t->n_runners; k++) {
      bool known = false;
      for (struct replica *p = rn->replicas; p && !known; p = p->next)
        known = !strcmp(p->tenant, t->id) && !strcmp(p->endpoint, t->runners[k]);
      for (struct replica *p = added; p && !known; p = p->next)
        known = !strcmp(p->tenant, t->id) && !strcmp(p->endpoint, t->runners[k]);
      if (known) continue;
      struct replica *p = calloc(1, sizeof *p);
      if (!p || !(p->tenant = strdup(t->id)) || !(p->endpoint = strdup(t->runners[k]))) {
        replica_free(p);
        r = REALM_E_NOMEM;
        break;
      }
      p->num = rn->next_num++;
      p->state = GW_REPLICA_UNKNOWN;
      *added_tail = p;
      added_tail = &p->next;
    }
  }
  if (r < 0) {
    pthread_mutex_unlock(&rn->mu);
    while (added) {
      struct replica *n = added->next;
      replica_free(added);
      added = n;
    }
    free_strv(ids, snap->n);
    snprintf(err, errlen, "runner backend: out of memory taking the new tenants");
    return r;
  }
  /* Phase 2: mark keep/remove (note 7), append the new replicas, swap the tenant list. */
  for (struct replica *p = rn->replicas; p; p = p->next) {
    bool keep = false;
    const struct gw_tenant *t = gw_tenants_find(snap, p->tenant);
    for (size_t k = 0; t && k < t->n_runners && !keep; k++) keep = !strcmp(p->endpoint, t->runners[k]);
    if (p->removed && keep) rn_log(rn, GW_LOG_INFO, "runner %s of tenant %s re-added", p->endpoint, p->tenant);
    if (!p->removed && !keep)
      rn_log(rn, GW_LOG_INFO, "runner %s of tenant %s removed (draining %u in-flight)",
             p->endpoint, p->tenant, p->outstanding);
    p->removed = !keep;
  }
  for (struct replica *p = added; p; p = p->next)
    rn_log(rn, GW_LOG_INFO, "runner %s of tenant %s added", p->endpoint, p->tenant);
  struct replica **tail = &rn->replicas;
  while (*tail) tail = &(*tail)->next;
  *tail = added;
  free_strv(rn->tenant_ids, rn->n_tenant_ids);
  rn->tenant_ids = ids;
  rn->n_tenant_ids = snap->n;
  pthread_mutex_unlock(&rn->mu);
  wake(rn);
  return 0;
}

/* Backend rule 7: one series per configured replica (label replica = its endpoint). */
static int rn_metrics(void *self, struct gw_buf *out) {
  struct gw_runners *rn = self;
  static const struct {
    const char *name, *type, *help;
  } fams[] = {
      {"realm_runner_up", "gauge",
       "1 when the runner replica answers health pings and is ready (receives traffic)."},
      {"realm_runner_in_flight_requests", "gauge",
       "Requests routed to the replica and not finished."},
      {"realm_runner_requests_total", "counter", "Requests routed to the replica."},
      {"realm_runner_failures_total", "counter",
       "Times the replica was taken out after answering pings (missed pings, lost connection, "
       "unreadable frame)."},
      {"realm_runner_failovers_total", "counter",
       "Failures of the replica while another replica of its tenant was up to take the traffic."},
      {"realm_runner_failed_requests_total", "counter",
       "In-flight requests failed because their replica was taken out."},
      {"realm_runner_reported_in_flight_requests", "gauge",
       "Requests the replica said it was running in its last health pong (from all gateways)."},
      {"realm_runner_reported_max_in_flight_requests", "gauge",
       "The replica's capacity from its last health pong (0 = not reported)."},
  };
  int r = 0;
  pthread_mutex_lock(&rn->mu);
  for (size_t f = 0; f < sizeof fams / sizeof fams[0] && r == 0; f++) {
    r = gw_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", fams[f].name, fams[f].help,
                       fams[f].name, fams[f].type);
    /* Removed replicas that still drain are listed too: (tenant, endpoint) is unique. */
    for (struct replica *p = rn->replicas; p && r == 0; p = p->next) {
      uint64_t v = f == 0   ? (uint64_t)(p->state == GW_REPLICA_UP)
                   : f == 1 ? p->outstanding
                   : f == 2 ? p->routed_total
                   : f == 3 ? p->down_total
                   : f == 4 ? p->failovers_total
                   : f == 5 ? p->failed_down_total
                   : f == 6 ? p->reported_in_flight
                            : p->reported_max_in_flight;
      r = gw_buf_appendf(out, "%s{tenant=\"", fams[f].name);
      if (r == 0) r = gw_metrics_label(out, p->tenant);
      if (r == 0) r = gw_buf_appends(out, "\",replica=\"");
      if (r == 0) r = gw_metrics_label(out, p->endpoint);
      if (r == 0) r = gw_buf_appendf(out, "\"} %llu\n", (unsigned long long)v);
    }
  }
  pthread_mutex_unlock(&rn->mu);
  return r;
}

static const struct gw_backend_ops runners_ops = {
    .submit = rn_submit,
    .cancel = rn_cancel,
    .ready = rn_ready,
    .set_tenants = rn_set_tenants,
    .metrics = rn_metrics,
};

/* ---- the I/O thread ---- */

/* Sends a CancelRequest for wire_id to p (best effort: a dead link just drops it). */
static void send_cancel(struct gw_runners *rn, struct replica *p, const char *wire_id) {
  if (!p->sock) return;
  Realm__V1__CancelRequest c;
  realm__v1__cancel_request__init(&c);
  c.request_id = (char *)wire_id;
  Realm__V1__RunnerRequest env;
  realm__v1__runner_request__init(&env);
  env.body_case = REALM__V1__RUNNER_REQUEST__BODY_CANCEL;
  env.cancel = &c;
  char err[128];
  int r = realm_ipc_send(p->sock, NULL, REALM_FRAME_RUNNER_REQUEST, &env.base, ZMQ_DONTWAIT, err,
                         sizeof err);
  if (r < 0 && r != REALM_E_TIMEOUT)
    rn_log(rn, GW_LOG_WARN, "cancel %s to runner %s: %s", wire_id, p->endpoint, err);
}

/* Note 5: takes p out and fails its in-flight requests now. Under mu. */
static void mark_down_locked(struct gw_runners *rn, struct replica *p, const char *reason) {
  if (p->state == GW_REPLICA_UP || p->state == GW_REPLICA_NOT_READY) {
    p->down_total++;
    bool other_up = false;
    for (struct replica *o = rn->replicas; o && !other_up; o = o->next)
      other_up = o != p && !o->removed && o->state == GW_REPLICA_UP && !strcmp(o->tenant, p->tenant);
    if (other_up) p->failovers_total++;
  }
  if (p->state != GW_REPLICA_DOWN)
    rn_log(rn, GW_LOG_WARN, "runner %s of tenant %s is down: %s (%u in-flight failed)",
           p->endpoint, p->tenant, reason, p->outstanding);
  p->state = GW_REPLICA_DOWN;
  if (!p->outstanding) return;
  char msg[256];
  snprintf(msg, sizeof msg, "runner replica %s of tenant %s failed: %s", p->endpoint, p->tenant,
           reason);
  struct gw_error_info info = health_retry_info(rn); /* note 9 */
  for (size_t b = 0; b < RN_BUCKETS && p->outstanding; b++) {
    struct inflight *e = rn->buckets[b];
    while (e) {
      struct inflight *next = e->next;
      if (e->rep == p) {
        send_cancel(rn, p, e->wire_id);
        p->failed_down_total++;
        entry_end_info(rn, e, NULL, NULL, REALM_E_UNAVAILABLE, msg, &info);
      }
      e = next;
    }
  }
}

static int open_replica(struct gw_runners *rn, struct replica *p) {
  char err[256];
  int r = realm_ipc_socket_new(rn->zctx, ZMQ_DEALER, 0, &p->sock, err, sizeof err);
  if (r < 0) {
    rn_log(rn, GW_LOG_ERROR, "runner %s: %s", p->endpoint, err);
    return r;
  }
  char mon_ep[64];
  snprintf(mon_ep, sizeof mon_ep, "inproc://gw-runner-mon-%p-%u", (void *)rn, p->num);
  int linger = 0;
  if (zmq_socket_monitor(p->sock, mon_ep,
                         ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED) == 0 &&
      (p->mon = zmq_socket(rn->zctx, ZMQ_PAIR)) != NULL) {
    zmq_setsockopt(p->mon, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(p->mon, mon_ep) != 0) {
      zmq_close(p->mon);
      p->mon = NULL;
    }
  }
  if (!p->mon)
    rn_log(rn, GW_LOG_WARN, "runner %s: no socket monitor (%s); relying on pings only",
           p->endpoint, zmq_strerror(zmq_errno()));
  if (zmq_connect(p->sock, p->endpoint) != 0) {
    /* A malformed endpoint: the replica stays down and says why in the log. */
    rn_log(rn, GW_LOG_ERROR, "runner %s of tenant %s: cannot connect: %s", p->endpoint,
           p->tenant, zmq_strerror(zmq_errno()));
  }
  return 0;
}

static void close_replica(struct replica *p) {
  if (p->sock) zmq_socket_monitor(p->sock, NULL, 0);
  if (p->mon) zmq_close(p->mon);
  realm_ipc_socket_close(p->sock);
  p->mon = p->sock = NULL;
}

static void send_ping(struct gw_runners *rn, struct replica *p) {
  (void)rn;
  if (!p->sock) return;
  Realm__V1__HealthPing ping;
  realm__v1__health_ping__init(&ping);
  ping.nonce = ++p->nonce;
  Realm__V1__RunnerRequest env;
  realm__v1__runner_request__init(&env);
  env.body_case = REALM__V1__RUNNER_REQUEST__BODY_PING;
  env.ping = &ping;
  char err[128];
  /* Not connected (ZMQ_IMMEDIATE) fails with TIMEOUT: counted as a miss at the next tick. */
  realm_ipc_send(p->sock, NULL, REALM_FRAME_RUNNER_REQUEST, &env.base, ZMQ_DONTWAIT, err, sizeof err);
  p->awaiting_pong = true;
}

/* One tick: count misses, ping everybody, end cancelled requests past their grace. Under mu. */
static void tick_locked(struct gw_runners *rn, uint64_t now) {
  for (struct replica *p = rn->replicas; p; p = p->next) {
    if (!p->sock) continue;
    if (p->awaiting_pong) {
      p->missed++;
      if (p->missed >= rn->cfg.ping_misses && p->state != GW_REPLICA_DOWN) {
        char why[128];
        snprintf(why, sizeof why, "no answer to %u health pings in a row (every %u ms)", p->missed,
                 rn->cfg.ping_ms);
        mark_down_locked(rn, p, why);
      }
    }
    send_ping(rn, p);
  }
  uint64_t grace = (uint64_t)rn->cfg.cancel_grace_ms * 1000000ull;
  for (size_t b = 0; b < RN_BUCKETS && rn->n_inflight; b++) {
    struct inflight *e = rn->buckets[b];
    while (e) {
      struct inflight *next = e->next;
      if (e->cancelled && now - e->cancel_ns > grace)
        entry_end(rn, e, NULL, NULL, REALM_E_CANCELLED,
                  "request cancelled (the runner did not confirm in time)");
      e = next;
    }
  }
}

static const char *finish_reason_name(Realm__V1__FinishReason r) {
  switch (r) {
  case REALM__V1__FINISH_REASON__FINISH_REASON_LENGTH: return "length";
  default: return "stop";
  }
}

/* Hands one Token event to the sink, with its logprob entry when the runner attached one
 * (the request asked for logprobs). The sink bounds counts and lengths (backend.h). */
static void sink_token_event(struct gw_sink *sink, const Realm__V1__Token *t) {
  const Realm__V1__TokenLogprob *l = t->logprob;
  if (!l) {
    if (t->text.len) gw_sink_token(sink, (const char *)t->text.data, t->text.len, NULL);
    return;
  }
  struct gw_top_logprob top[GW_MAX_TOP_LOGPROBS];
  size_t n_top = 0;
  for (size_t i = 0; i < l->n_top && n_top < GW_MAX_TOP_LOGPROBS; i++) {
    if (!l->top[i]) continue;
    top[n_top++] = (struct gw_top_logprob){(const char *)l->top[i]->text.data,
                                           l->top[i]->text.len, l->top[i]->logprob};
  }
  struct gw_token_logprob lp = {(const char *)l->text.data, l->text.len, l->logprob, top, n_top};
  gw_sink_token(sink, (const char *)t->text.data, t->text.len, &lp);
}

/* Routes one GenerateEvent from p (note 3). Under mu. */
static void handle_event_locked(struct gw_runners *rn, struct replica *p,
                                const Realm__V1__GenerateEvent *ev) {
  struct inflight *e = ev->request_id ? table_find(rn, ev->request_id) : NULL;
  if (!e || e->rep != p) return; /* finished or failed here already, or not this replica's */
  switch (ev->kind_case) {
  case REALM__V1__GENERATE_EVENT__KIND_TOKEN:
    if (ev->token) sink_token_event(e->sink, ev->token);
    break;
  case REALM__V1__GENERATE_EVENT__KIND_FINISH: {
    const Realm__V1__Finish *f = ev->finish;
    if (!f) {
      entry_end(rn, e, NULL, NULL, REALM_E_PROTOCOL, "runner sent a finish event without a body");
      break;
    }
    if (f->reason == REALM__V1__FINISH_REASON__FINISH_REASON_CANCELLED) {
      entry_end(rn, e, NULL, NULL, REALM_E_CANCELLED, "request cancelled");
    } else if (f->reason == REALM__V1__FINISH_REASON__FINISH_REASON_ERROR) {
      struct gw_error_info info = runner_error_info(f->error);
      entry_end_info(rn, e, NULL, NULL, realm_proto_error_code(f->error),
                     f->error && f->error->message ? f->error->message : "generation failed",
                     &info);
    } else {
      struct gw_usage u = {0, 0};
      if (f->usage) u = (struct gw_usage){f->usage->prompt_tokens, f->usage->completion_tokens};
      entry_end(rn, e, finish_reason_name(f->reason), f->usage ? &u : NULL, 0, NULL);
    }
    break;
  }
  case REALM__V1__GENERATE_EVENT__KIND_ERROR: {
    /* The runner's param goes on: "kv_cache" (the worker's KV cache is full) is what tells
     * the client, and reply.c's Retry-After rule, that this request may simply be retried. */
    struct gw_error_info info = runner_error_info(ev->error);
    entry_end_info(rn, e, NULL, NULL, realm_proto_error_code(ev->error),
                   ev->error && ev->error->message && ev->error->message[0] ? ev->error->message
                                                                          : "generation failed",
                   &info);
    break;
  }
  default:
    entry_end(rn, e, NULL, NULL, REALM_E_PROTOCOL, "runner sent an event without a kind");
  }
}

static void handle_pong_locked(struct gw_runners *rn, struct replica *p, const Realm__V1__HealthPong *pong) {
  p->missed = 0;
  p->awaiting_pong = false;
  /* Note 6. Events travel before the pong on the same connection, so every request the runner
   * finished before answering has already left p->outstanding here. */
  p->reported_in_flight = pong->in_flight;
  p->reported_max_in_flight = pong->max_in_flight;
  p->foreign = pong->in_flight > p->outstanding ? pong->in_flight - p->outstanding : 0;
  enum gw_replica_state s = pong->ready ? GW_REPLICA_UP : GW_REPLICA_NOT_READY;
  /* A runner that serves another tenant must never see this tenant's prompts (its guest is
   * that tenant's code): a misconfigured endpoint is kept out of rotation, loudly. */
  bool foreign = pong->tenant_id && pong->tenant_id[0] && strcmp(pong->tenant_id, p->tenant);
  if (foreign) s = GW_REPLICA_NOT_READY;
  if (s != p->state && foreign)
    rn_log(rn, GW_LOG_ERROR, "runner %s is configured for tenant %s but serves tenant %.80s: not used",
           p->endpoint, p->tenant, pong->tenant_id);
  else if (s != p->state)
    rn_log(rn, GW_LOG_INFO, "runner %s of tenant %s is %s (was %s)", p->endpoint, p->tenant,
           state_name(s), state_name(p->state));
  p->state = s;
}

/* Reads everything pending on p's DEALER. */
static void drain_replica(struct gw_runners *rn, struct replica *p) {
  for (int budget = 0; budget < 1024; budget++) {
    ProtobufCMessage *m = NULL;
    char err[256];
    int r = realm_ipc_recv(p->sock, NULL, REALM_FRAME_RUNNER_EVENT,
                           &realm__v1__runner_event__descriptor, 0, ZMQ_DONTWAIT, &m, err,
                           sizeof err);
    if (r == REALM_E_TIMEOUT || r == REALM_E_SHUTTING_DOWN || r == REALM_E_SYSTEM) return;
    pthread_mutex_lock(&rn->mu);
    if (r < 0) {
      /* A frame we cannot read: whatever waits on this link cannot be trusted to finish. */
      char why[300];
      snprintf(why, sizeof why, "unreadable frame: %s", err);
      mark_down_locked(rn, p, why);
    } else {
      const Realm__V1__RunnerEvent *ev = (const Realm__V1__RunnerEvent *)m;
      if (ev->body_case == REALM__V1__RUNNER_EVENT__BODY_EVENT && ev->event)
        handle_event_locked(rn, p, ev->event);
      else if (ev->body_case == REALM__V1__RUNNER_EVENT__BODY_PONG && ev->pong)
        handle_pong_locked(rn, p, ev->pong);
      else {
        char why[300];
        snprintf(why, sizeof why, "runner reported an error on the link: %s: %s",
                 ev->error && ev->error->code ? ev->error->code : "?",
                 ev->error && ev->error->message ? ev->error->message : "(no message)");
        mark_down_locked(rn, p, why);
      }
    }
    pthread_mutex_unlock(&rn->mu);
    realm_frame_msg_free(m);
  }
}

/* Reads the monitor events of p: a dropped connection takes it out at once (note 5); a
 * completed handshake is answered with a ping so it comes back without waiting a tick. */
static void drain_monitor(struct gw_runners *rn, struct replica *p) {
  for (int budget = 0; budget < 64; budget++) {
    zmq_msg_t m1, m2;
    zmq_msg_init(&m1);
    if (zmq_msg_recv(&m1, p->mon, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&m1);
      return;
    }
    uint16_t event = 0;
    if (zmq_msg_size(&m1) >= 2) memcpy(&event, zmq_msg_data(&m1), sizeof event);
    bool more = zmq_msg_more(&m1);
    zmq_msg_close(&m1);
    if (more) {
      zmq_msg_init(&m2);
      zmq_msg_recv(&m2, p->mon, 0); /* the endpoint part follows at once */
      zmq_msg_close(&m2);
    }
    if (event == ZMQ_EVENT_DISCONNECTED) {
      pthread_mutex_lock(&rn->mu);
      mark_down_locked(rn, p, "connection lost");
      pthread_mutex_unlock(&rn->mu);
    } else if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      send_ping(rn, p);
    }
  }
}

/* Sends queued commands (note 1). */
static void run_commands(struct gw_runners *rn) {
  pthread_mutex_lock(&rn->mu);
  struct cmd *c = rn->cmd_head;
  rn->cmd_head = rn->cmd_tail = NULL;
  while (c) {
    struct cmd *next = c->next;
    struct inflight *e = table_find(rn, c->wire_id);
    if (e && c->kind == CMD_CANCEL) {
      send_cancel(rn, e->rep, e->wire_id);
    } else if (e && c->kind == CMD_GENERATE) {
      if (e->cancelled) {
        entry_end(rn, e, NULL, NULL, REALM_E_CANCELLED, "request cancelled");
      } else if (!e->rep->sock || zmq_send(e->rep->sock, c->frame, c->len, ZMQ_DONTWAIT) < 0) {
        struct replica *p = e->rep;
        char msg[256];
        snprintf(msg, sizeof msg, "cannot send to runner replica %s of tenant %s: %s",
                 p->endpoint, p->tenant, p->sock ? zmq_strerror(zmq_errno()) : "no socket");
        struct gw_error_info info = health_retry_info(rn); /* note 9 */
        entry_end_info(rn, e, NULL, NULL, REALM_E_UNAVAILABLE, msg, &info);
        mark_down_locked(rn, p, "a request could not be sent (not connected)");
      }
    }
    cmd_free(c);
    c = next;
  }
  pthread_mutex_unlock(&rn->mu);
}

/* Opens sockets for new replicas, closes removed ones that drained (note 7). */
static void sync_replicas(struct gw_runners *rn) {
  pthread_mutex_lock(&rn->mu);
  struct replica **pp = &rn->replicas;
  while (*pp) {
    struct replica *p = *pp;
    if (p->removed && p->outstanding == 0) {
      *pp = p->next;
      close_replica(p);
      replica_free(p);
      continue;
    }
    if (!p->sock && !p->removed && open_replica(rn, p) == 0) send_ping(rn, p);
    pp = &p->next;
  }
  pthread_mutex_unlock(&rn->mu);
}

static void *io_main(void *arg) {
  struct gw_runners *rn = arg;
  uint64_t period = (uint64_t)rn->cfg.ping_ms * 1000000ull;
  uint64_t next_tick = now_ns() + period;
  zmq_pollitem_t *items = NULL;
  struct replica **owners = NULL;
  size_t cap = 0;
  for (;;) {
    pthread_mutex_lock(&rn->mu);
    bool stop = rn->stopping;
    pthread_mutex_unlock(&rn->mu);
    if (stop) break;
    sync_replicas(rn);
    run_commands(rn);

    /* The replica list only changes on this thread (removal) or by appending (set_tenants),
     * so the pointers gathered here stay valid until the next loop. */
    pthread_mutex_lock(&rn->mu);
    size_t n = 1;
    for (struct replica *p = rn->replicas; p; p = p->next) n += 2;
    if (n > cap) {
      zmq_pollitem_t *ni = realloc(items, n * sizeof *ni);
      if (ni) items = ni;
      struct replica **no = realloc(owners, n * sizeof *no);
      if (no) owners = no;
      if (ni && no) cap = n;
    }
    size_t k = 0;
    if (cap) {
      items[k] = (zmq_pollitem_t){.socket = NULL, .fd = rn->wake_fd, .events = ZMQ_POLLIN};
      owners[k++] = NULL;
      for (struct replica *p = rn->replicas; p && k + 2 <= cap; p = p->next) {
        if (p->sock) {
          items[k] = (zmq_pollitem_t){.socket = p->sock, .events = ZMQ_POLLIN};
          owners[k++] = p;
        }
        if (p->mon) {
          items[k] = (zmq_pollitem_t){.socket = p->mon, .events = ZMQ_POLLIN};
          owners[k++] = p;
        }
      }
    }
    pthread_mutex_unlock(&rn->mu);

    uint64_t now = now_ns();
    long timeout_ms = now >= next_tick ? 0 : (long)((next_tick - now) / 1000000ull) + 1;
    int rc = k ? zmq_poll(items, (int)k, timeout_ms) : 0;
    if (!k) {
      struct timespec ts = {0, 10 * 1000000L}; /* out of memory for poll items: back off */
      nanosleep(&ts, NULL);
    }
    if (rc < 0 && zmq_errno() == ETERM) break;
    for (size_t i = 0; rc > 0 && i < k; i++) {
      if (!(items[i].revents & ZMQ_POLLIN)) continue;
      if (!owners[i]) {
        uint64_t v;
        ssize_t rd = read(rn->wake_fd, &v, sizeof v);
        (void)rd;
      } else if (items[i].socket == owners[i]->sock) {
        drain_replica(rn, owners[i]);
      } else {
        drain_monitor(rn, owners[i]);
      }
    }
    now = now_ns();
    if (now >= next_tick) {
      pthread_mutex_lock(&rn->mu);
      tick_locked(rn, now);
      pthread_mutex_unlock(&rn->mu);
      next_tick = now + period;
    }
  }
  free(items);
  free(owners);

  /* Shutdown: every request still here gets its terminal event (backend.h rule 2). */
  pthread_mutex_lock(&rn->mu);
  for (size_t b = 0; b < RN_BUCKETS; b++)
    while (rn->buckets[b]) {
      struct inflight *e = rn->buckets[b];
      send_cancel(rn, e->rep, e->wire_id);
      entry_end(rn, e, NULL, NULL, REALM_E_SHUTTING_DOWN, "the gateway is shutting down");
    }
  for (struct replica *p = rn->replicas; p; p = p->next) close_replica(p);
  while (rn->cmd_head) {
    struct cmd *c = rn->cmd_head;
    rn->cmd_head = c->next;
    cmd_free(c);
  }
  rn->cmd_tail = NULL;
  pthread_mutex_unlock(&rn->mu);
  return NULL;
}

/* ---- lifecycle ---- */

int gw_runners_create(const struct gw_runners_config *cfg, struct gw_runners **ret, char *err,
                      size_t errlen) {
  struct gw_runners *rn = calloc(1, sizeof *rn);
  if (!rn) {
    snprintf(err, errlen, "runner backend: out of memory");
    return REALM_E_NOMEM;
  }
  rn->cfg = *cfg;
  if (!rn->cfg.ping_ms) rn->cfg.ping_ms = 1000;
  if (!rn->cfg.ping_misses) rn->cfg.ping_misses = 3;
  if (!rn->cfg.cancel_grace_ms) rn->cfg.cancel_grace_ms = 5000;
  rn->backend = (struct gw_backend){.ops = &runners_ops, .self = rn};
  pthread_mutex_init(&rn->mu, NULL);
  rn->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (rn->wake_fd < 0) {
    int e = errno;
    snprintf(err, errlen, "runner backend: eventfd: %s", strerror(e));
    pthread_mutex_destroy(&rn->mu);
    free(rn);
    return realm_err_from_errno(e);
  }
  rn->zctx = cfg->zmq_ctx;
  if (!rn->zctx) {
    rn->own_ctx = true;
    if (!(rn->zctx = zmq_ctx_new())) {
      snprintf(err, errlen, "runner backend: zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
      gw_runners_destroy(rn);
      return REALM_E_SYSTEM;
    }
  }
  int r = pthread_create(&rn->thread, NULL, io_main, rn);
  if (r != 0) {
    snprintf(err, errlen, "runner backend: cannot start the I/O thread: %s", strerror(r));
    gw_runners_destroy(rn);
    return realm_err_from_errno(r);
  }
  rn->thread_started = true;
  *ret = rn;
  return 0;
}

const struct gw_backend *gw_runners_backend(struct gw_runners *rn) { return &rn->backend; }

int gw_runners_replica_stats(struct gw_runners *rn, const char *tenant, const char *endpoint,
                             struct gw_runner_stats *ret) {
  int r = REALM_E_NOT_FOUND;
  pthread_mutex_lock(&rn->mu);
  for (struct replica *p = rn->replicas; p; p = p->next)
    if (!strcmp(p->tenant, tenant) && !strcmp(p->endpoint, endpoint)) {
      *ret = (struct gw_runner_stats){p->state,
                                      p->outstanding,
                                      p->routed_total,
                                      p->failed_down_total,
                                      p->down_total,
                                      p->failovers_total,
                                      p->reported_in_flight,
                                      p->reported_max_in_flight};
      r = 0;
      break;
    }
  pthread_mutex_unlock(&rn->mu);
  return r;
}

void gw_runners_destroy(struct gw_runners *rn) {
  if (!rn) return;
  if (rn->thread_started) {
    pthread_mutex_lock(&rn->mu);
    rn->stopping = true;
    pthread_mutex_unlock(&rn->mu);
    wake(rn);
    pthread_join(rn->thread, NULL);
  }
  while (rn->replicas) {
    struct replica *p = rn->replicas;
    rn->replicas = p->next;
    close_replica(p);
    replica_free(p);
  }
  free_strv(rn->tenant_ids, rn->n_tenant_ids);
  if (rn->own_ctx && rn->zctx) zmq_ctx_term(rn->zctx);
  close(rn->wake_fd);
  pthread_mutex_destroy(&rn->mu);
  free(rn);
}
