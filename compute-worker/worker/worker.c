/*
 * worker.c — realm-worker's life cycle and event loop: load the model, bind the sockets, then
 * poll the ROUTER, the shm handshake socket and the wake pipe; dispatch each request; run a
 * forward pass whenever the scheduler says one is due; drain on stop.
 *
 * Stop and drain (docs/worker.md). The first worker_stop() (SIGTERM/SIGINT) starts the
 * DRAIN: the ordinary loop goes on — Steps of open sessions are batched and served as
 * always, closes, Matmul/Attention/GetRows and Stats are answered, the idle sweep runs — but
 * new SessionOpens (and those waiting in the admission queue) and Hellos are refused with
 * shutting_down: a runner fails just that request, and a new connection has nothing to do on a
 * worker that will not open sessions. The drain ends when no session is open (runners close
 * a session when its request ends), at --drain-timeout, or at a second worker_stop(); then
 * the CUT-OFF (drain_and_stop) answers whatever is still queued with shutting_down, tells
 * every connection and lingers --drain for the replies to leave. A runner that vanished
 * without closing its sessions would hold the drain to its timeout, so connections with
 * sessions that stay silent are probed with the drain notice (WORKER_DRAIN_PROBE_NS): the
 * send to a gone peer fails and the connection is reaped with its sessions.
 *
 * Everything happens on this one thread (ZeroMQ sockets are not thread-safe and the engine
 * has one driver). Requests other than Step are answered at once, between forward passes;
 * Steps go to the scheduler (sched.c); a SessionOpen the KV pool cannot cover waits in the
 * admission queue (admit.c), which the loop pumps every iteration — after a close freed a
 * reservation, and at the waits' deadlines. Every request gets exactly one reply, and every
 * error reply goes through worker_reply_error().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "internal.h"
#include "realm/log.h"

int64_t worker_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void worker_config_defaults(struct worker_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->listen = "ipc:///tmp/realm-worker.sock";
  cfg->shm_socket = "";
  cfg->threads = 0;
  cfg->isa = "auto";
  cfg->kv_blocks = 0;
  cfg->kv_block_tokens = 16;
  cfg->batch_window_us = 300;
  cfg->batch_eager = true;
  cfg->spin_us = 500;
  cfg->pool_spin_us = 500;
  cfg->step_lane = true;
  cfg->batch_tokens = 512;
  cfg->max_step_tokens = 4096;
  cfg->max_batch_seqs = 64;
  cfg->prefill_chunk = 128;
  cfg->max_sessions = 256;
  cfg->max_weight = 100;
  cfg->default_weight = 1;
  cfg->tenant_weights = "";
  cfg->max_kv_quota_tokens = 0;
  cfg->max_shm_bytes = 256ull << 20;
  cfg->default_shm_bytes = 16ull << 20;
  cfg->max_pending_steps = 16;
  cfg->open_queue_timeout_ms = 30000;
  cfg->max_open_queue = 1024;
  cfg->stats_interval_ms = 10000;
  cfg->drain_timeout_ms = 25000;
  cfg->drain_ms = 200;
  cfg->backend = "cpu";
  cfg->cuda_device = 0;
  cfg->allow_weight_access = "";
  cfg->idle_timeout_ms = 10 * 60 * 1000;
  cfg->idle_session_timeout_ms = 60 * 60 * 1000;
}

const char *worker_shm_socket_path(const struct worker *w) { return w->shm_path; }

const char *worker_backend_name(const struct worker *w) { return engine_backend_name(w->engine); }

bool worker_backend_is_device(const struct worker *w) { return w->device; }

void worker_inject_backend_failure(struct worker *w) {
  __atomic_store_n(&w->inject_failure, 1, __ATOMIC_RELEASE);
  char b = 1;
  ssize_t n = write(w->wake_pipe[1], &b, 1);
  (void)n;
}

void worker_backend_failed(struct worker *w, const char *why) {
  if (w->backend_failed) return; /* the first failure is the cause; later ones follow from it */
  w->backend_failed = true;
  snprintf(w->backend_error, sizeof w->backend_error, "%s", why && *why ? why : "unknown");
  realm_log_error("compute backend failed; failing every request and exiting for a restart",
                  RLOG_STR("backend", engine_backend_name(w->engine)),
                  RLOG_STR("detail", w->backend_error));
}

void worker_stop(struct worker *w) {
  __atomic_add_fetch(&w->stop_calls, 1, __ATOMIC_ACQ_REL); /* lock-free: async-signal-safe */
  char b = 1;
  ssize_t n = write(w->wake_pipe[1], &b, 1); /* pipe full = a wake-up is already pending */
  (void)n;
}

/* ---- replies ---- */

void worker_send_reply(struct worker *w, const realm_ipc_peer *to, Realm__V1__WorkerReply *reply) {
  char err[256];
  /* DONTWAIT: a runner that stops reading its replies must not stall every other tenant. */
  struct worker_conn *c = conn_find(w, to);
  if (c && c->dead) return;
  if (c && lane_owns_reply(c, reply) && lane_reply(c, reply)) return;
  int rc = realm_ipc_send(w->router, to, REALM_FRAME_WORKER_REPLY, &reply->base, ZMQ_DONTWAIT,
                          err, sizeof err);
  if (rc == 0) return;
  /* Notices (request_id 0, e.g. at shutdown) to runners already gone are expected. */
  realm_log(reply->request_id ? REALM_LOG_WARN : REALM_LOG_DEBUG, "reply not delivered",
            RLOG_ERR(rc), RLOG_STR("detail", err), RLOG_UINT("request_id", reply->request_id),
            RLOG_UINT("conn", c ? c->id : 0));
  /* Gone (EHOSTUNREACH) or stuck at its high-water mark: either way the runner can no longer
   * follow this connection's replies, so its sessions are released — by the loop, once no
   * request of it is half handled (conn_reap). */
  if (c && (rc == REALM_E_UNAVAILABLE || rc == REALM_E_TIMEOUT)) c->dead = true;
}

void worker_reply_error(struct worker *w, const realm_ipc_peer *to, uint64_t request_id, int code,
                        const char *message, const char *param) {
  Realm__V1__Error e;
  realm_proto_error_set(&e, code, message, param);
  Realm__V1__WorkerReply reply;
  realm__v1__worker_reply__init(&reply);
  reply.request_id = request_id;
  reply.body_case = REALM__V1__WORKER_REPLY__BODY_ERROR;
  reply.error = &e;
  worker_send_reply(w, to, &reply);
}

/* ---- start-up ---- */

/* True when something accepts connections on the Unix socket at path (a live worker). */
static bool unix_path_in_use(const char *path, int type) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) return false;
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool used = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  close(fd);
  return used;
}

/* Binds the ROUTER to each comma-separated endpoint. libzmq silently replaces an existing
 * ipc:// socket file, which would steal a running worker's address: probe it first. */
static int bind_endpoints(struct worker *w, char *err, size_t errlen) {
  char list[1024];
  if (snprintf(list, sizeof list, "%s", w->cfg.listen) >= (int)sizeof list) {
    snprintf(err, errlen, "--listen: value too long (%zu bytes)", strlen(w->cfg.listen));
    return REALM_E_INVALID_ARGUMENT;
  }
  int n = 0;
  char *save = NULL;
  for (char *ep = strtok_r(list, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
    if (strncmp(ep, "ipc://", 6) != 0 && strncmp(ep, "tcp://", 6) != 0) {
      snprintf(err, errlen, "--listen: endpoint '%s' is neither ipc:// nor tcp://", ep);
      return REALM_E_INVALID_ARGUMENT;
    }
    if (strncmp(ep, "ipc://", 6) == 0) {
      const char *path = ep + 6;
      if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        snprintf(err, errlen, "--listen: ipc path '%s' is longer than a Unix socket address",
                 path);
        return REALM_E_INVALID_ARGUMENT;
      }
      if (unix_path_in_use(path, SOCK_STREAM)) {
        snprintf(err, errlen, "--listen: %s is in use by another process", ep);
        return REALM_E_UNAVAILABLE;
      }
      /* First ipc endpoint names the default handshake socket. */
      if (!w->shm_path[0] && w->cfg.shm_socket && !w->cfg.shm_socket[0])
        snprintf(w->shm_path, sizeof w->shm_path, "%.100s.shm", path);
    }
    if (zmq_bind(w->router, ep) != 0) {
      int e = zmq_errno();
      snprintf(err, errlen, "--listen: cannot bind %s: %s", ep, zmq_strerror(e));
      return e == EADDRINUSE ? REALM_E_UNAVAILABLE : REALM_E_SYSTEM;
    }
    n++;
  }
  if (n == 0) {
    snprintf(err, errlen, "--listen: no endpoint given");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (w->cfg.shm_socket && w->cfg.shm_socket[0] && strcmp(w->cfg.shm_socket, "none") != 0) {
    if (strlen(w->cfg.shm_socket) >= sizeof w->shm_path) {
      snprintf(err, errlen, "--shm-socket: path '%s' is longer than a Unix socket address",
               w->cfg.shm_socket);
      return REALM_E_INVALID_ARGUMENT;
    }
    snprintf(w->shm_path, sizeof w->shm_path, "%s", w->cfg.shm_socket);
  }
  return 0;
}

static int check_config(const struct worker_config *c, char *err, size_t errlen) {
  if (!c->model_path || !c->model_path[0]) {
    snprintf(err, errlen, "--model: required (a GGUF file)");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (c->batch_tokens == 0 || c->batch_tokens > REALM_MAX_STEP_TOKENS) {
    snprintf(err, errlen, "--batch-tokens: %u outside [1, %u]", c->batch_tokens,
             REALM_MAX_STEP_TOKENS);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (c->max_step_tokens == 0 || c->max_step_tokens > REALM_MAX_STEP_TOKENS) {
    snprintf(err, errlen, "--max-step-tokens: %u outside [1, %u]", c->max_step_tokens,
             REALM_MAX_STEP_TOKENS);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (c->max_batch_seqs == 0 || c->max_batch_seqs > REALM_MAX_BATCH_SEQS) {
    snprintf(err, errlen, "--max-batch-seqs: %u outside [1, %u]", c->max_batch_seqs,
             REALM_MAX_BATCH_SEQS);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (c->prefill_chunk == 0 || c->prefill_chunk > c->batch_tokens) {
    snprintf(err, errlen, "--prefill-chunk: %u outside [1, --batch-tokens %u]", c->prefill_chunk,
             c->batch_tokens);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (c->max_sessions == 0 || c->max_sessions > REALM_MAX_SESSIONS_PER_CONN) {
    snprintf(err, errlen, "--max-sessions: %u outside [1, %u]", c->max_sessions,
             REALM_MAX_SESSIONS_PER_CONN);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (c->max_weight == 0 || c->default_weight == 0 || c->default_weight > c->max_weight) {
    snprintf(err, errlen, "--default-weight %u / --max-weight %u: need 1 <= default <= max",
             c->default_weight, c->max_weight);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (c->max_shm_bytes == 0 || c->max_shm_bytes > REALM_MAX_SHM_BYTES ||
      c->default_shm_bytes == 0 || c->default_shm_bytes > c->max_shm_bytes) {
    snprintf(err, errlen, "--default-shm-bytes %llu / --max-shm-bytes %llu: need 1 <= default "
             "<= max <= %llu", (unsigned long long)c->default_shm_bytes,
             (unsigned long long)c->max_shm_bytes, (unsigned long long)REALM_MAX_SHM_BYTES);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (c->backend && strcmp(c->backend, "cpu") != 0 && strcmp(c->backend, "cuda") != 0 &&
      strcmp(c->backend, "auto") != 0) {
    snprintf(err, errlen, "--backend: '%s' is not cpu, cuda or auto", c->backend);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (c->cuda_device < 0) {
    snprintf(err, errlen, "--cuda-device: %d is negative", c->cuda_device);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (c->idle_timeout_ms < 0 || c->idle_session_timeout_ms < 0) {
    snprintf(err, errlen, "--idle-timeout %lld / --idle-session-timeout %lld: negative",
             (long long)c->idle_timeout_ms, (long long)c->idle_session_timeout_ms);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (c->open_queue_timeout_ms < 0 || c->open_queue_timeout_ms > 86400000LL ||
      c->max_open_queue > REALM_MAX_OPEN_QUEUE) {
    snprintf(err, errlen, "--open-queue-timeout %lld ms / --max-open-queue %u: need a timeout "
             "in [0, 1 day] and a queue of at most %u", (long long)c->open_queue_timeout_ms,
             c->max_open_queue, REALM_MAX_OPEN_QUEUE);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (c->drain_timeout_ms < 0 || c->drain_timeout_ms > 3600000LL || c->drain_ms < 0 ||
      c->drain_ms > 60000) {
    snprintf(err, errlen, "--drain-timeout %lld ms / --drain %lld ms: need [0, 1 h] / [0, 60 s]",
             (long long)c->drain_timeout_ms, (long long)c->drain_ms);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (c->batch_window_us < 0 || c->max_pending_steps == 0) {
    snprintf(err, errlen, "--batch-window-us %lld / --max-pending-steps %u: out of range",
             (long long)c->batch_window_us, c->max_pending_steps);
    return REALM_E_INVALID_ARGUMENT;
  }
  return 0;
}

static int load_model(struct worker *w, char *err, size_t errlen) {
  const char *path = w->cfg.model_path;
  if (access(path, R_OK) != 0) {
    int e = errno;
    snprintf(err, errlen, "--model: cannot read %s: %s", path, strerror(e));
    return e == ENOENT ? REALM_E_NOT_FOUND : REALM_E_IO;
  }
  int pages = gguf_pages_from_name(w->cfg.huge_pages ? w->cfg.huge_pages : "auto");
  if (pages < 0) {
    snprintf(err, errlen, "--huge-pages %s: expected auto, huge or small", w->cfg.huge_pages);
    return REALM_E_INVALID_ARGUMENT;
  }
  char msg[400];
  int rc = gguf_open_pages(path, (enum gguf_pages)pages, &w->gguf, msg, sizeof msg);
  if (rc < 0) {
    snprintf(err, errlen, "--model %s: %s", path, msg);
    return rc;
  }
  rc = engine_model_load(w->gguf, &w->model, msg, sizeof msg);
  if (rc < 0) {
    snprintf(err, errlen, "--model %s: %s", path, msg);
    return rc;
  }
  const struct engine_hparams *hp = &w->model->hp;
  w->n_vocab = hp->n_vocab;
  struct gguf_str name;
  if (gguf_get_str(w->gguf, "general.name", &name) == 0 && name.len > 0) {
    size_t n = name.len < sizeof w->model_name - 1 ? name.len : sizeof w->model_name - 1;
    memcpy(w->model_name, name.data, n);
    w->model_name[n] = 0;
  } else {
    const char *base = strrchr(path, '/');
    snprintf(w->model_name, sizeof w->model_name, "%s", base ? base + 1 : path);
  }
  uint32_t bt = w->cfg.kv_block_tokens ? w->cfg.kv_block_tokens : 16;
  uint32_t blocks = w->cfg.kv_blocks;
  if (blocks == 0) blocks = 8 * ((hp->n_ctx + bt - 1) / bt);
  struct engine_config ec = {.backend = w->cfg.backend, .cuda_device = w->cfg.cuda_device,
                             .n_threads = w->cfg.threads,
                             .pool_spin_us = (int)w->cfg.pool_spin_us, .isa = w->cfg.isa,
                             .kv_blocks = blocks, .kv_block_tokens = bt,
                             .max_step_tokens = w->cfg.batch_tokens};
  rc = engine_create(w->model, &ec, &w->engine, msg, sizeof msg);
  if (rc < 0) {
    snprintf(err, errlen, "engine for %s: %s", path, msg);
    return rc;
  }
  return 0;
}

int worker_create(const struct worker_config *cfg, struct worker **ret_worker, char *err,
                  size_t errlen) {
  int rc = check_config(cfg, err, errlen);
  if (rc < 0) return rc;
  struct worker *w = calloc(1, sizeof *w);
  if (!w) {
    snprintf(err, errlen, "no memory for the worker state");
    return REALM_E_NOMEM;
  }
  w->cfg = *cfg;
  w->shm_listen_fd = -1;
  w->wake_pipe[0] = w->wake_pipe[1] = -1;
  w->lane_epoll = -1;
  w->next_conn_id = 1;
  if (pipe2(w->wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    snprintf(err, errlen, "pipe2: %s", strerror(errno));
    rc = REALM_E_SYSTEM;
    goto fail;
  }
  rc = lane_init(w, err, errlen);
  if (rc < 0) goto fail;
  rc = conn_parse_overrides(w, err, errlen);
  if (rc < 0) goto fail;
  /* Sockets are probed before the (slow) model load so a busy address fails fast. */
  rc = realm_ipc_ctx_new(&w->zctx, err, errlen);
  if (rc < 0) goto fail;
  rc = realm_ipc_socket_new(w->zctx, ZMQ_ROUTER,
                            (size_t)REALM_MAX_FRAME_BYTES + REALM_MAX_INLINE_TENSOR_BYTES,
                            &w->router, err, errlen);
  if (rc < 0) goto fail;
  rc = bind_endpoints(w, err, errlen);
  if (rc < 0) goto fail;
  rc = load_model(w, err, errlen);
  if (rc < 0) goto fail;
  rc = ops_init(w, err, errlen);
  if (rc < 0) goto fail;
  rc = sched_init(w, err, errlen);
  if (rc < 0) goto fail;
  if (w->shm_path[0]) {
    rc = conn_shm_listen(w, err, errlen);
    if (rc < 0) goto fail;
  }
  int64_t now = worker_now_ns();
  w->stats.rate_t0_ns = now;
  w->stats.next_log_ns = w->cfg.stats_interval_ms > 0
                             ? now + w->cfg.stats_interval_ms * 1000000LL
                             : INT64_MAX;
  *ret_worker = w;
  return 0;
fail:
  worker_destroy(w);
  return rc;
}

void worker_destroy(struct worker *w) {
  if (!w) return;
  conn_close_all(w);
  sched_fini(w);
  for (uint32_t i = 0; i < w->n_sides; i++) close(w->sides[i].fd);
  if (w->shm_listen_fd >= 0) {
    close(w->shm_listen_fd);
    unlink(w->shm_path);
  }
  realm_ipc_socket_close(w->router);
  if (w->zctx) zmq_ctx_term(w->zctx);
  ops_fini(w);
  engine_destroy(w->engine);
  engine_model_free(w->model);
  gguf_close(w->gguf);
  for (uint32_t i = 0; i < w->n_tenants; i++) {
    free(w->tenants[i]->cand);
    free(w->tenants[i]);
  }
  free(w->tenants);
  free(w->overrides);
  if (w->wake_pipe[0] >= 0) close(w->wake_pipe[0]);
  if (w->wake_pipe[1] >= 0) close(w->wake_pipe[1]);
  lane_fini(w);
  free(w);
}

/* ---- dispatch ---- */

void worker_dispatch(struct worker *w, const realm_ipc_peer *from, Realm__V1__WorkerRequest *req) {
  uint64_t rid = req->request_id;
  if (w->draining) {
    worker_reply_error(w, from, rid, REALM_E_SHUTTING_DOWN, "worker is shutting down", NULL);
    return;
  }
  if (w->drain.active && req->body_case == REALM__V1__WORKER_REQUEST__BODY_HELLO) {
    /* Refused rather than accepted: a connection made now could open no session, and a
     * fresh runner would report ready and take requests that can only fail; refused, it
     * fails its set-up and is restarted against the replacement worker. */
    w->drain.refused_hellos++;
    worker_reply_error(w, from, rid, REALM_E_SHUTTING_DOWN,
                       "worker is draining for a stop; connect to its replacement", NULL);
    return;
  }
  if (req->body_case == REALM__V1__WORKER_REQUEST__BODY_HELLO) {
    if (!req->hello) {
      worker_reply_error(w, from, rid, REALM_E_PROTOCOL, "Hello without a body", "hello");
      return;
    }
    conn_handle_hello(w, from, rid, req->hello);
    return;
  }
  if (req->body_case == REALM__V1__WORKER_REQUEST__BODY__NOT_SET) {
    worker_reply_error(w, from, rid, REALM_E_PROTOCOL, "WorkerRequest has no body", "body");
    return;
  }
  struct worker_conn *c = conn_find(w, from);
  if (!c) {
    worker_reply_error(w, from, rid, REALM_E_UNAVAILABLE, "no Hello on this connection", NULL);
    return;
  }
  c->last_seen_ns = worker_now_ns();
  switch (req->body_case) {
  case REALM__V1__WORKER_REQUEST__BODY_SESSION_OPEN:
    if (w->drain.active) { /* the runner fails just this request (docs/worker.md) */
      w->drain.refused_opens++;
      worker_reply_error(w, from, rid, REALM_E_SHUTTING_DOWN,
                         "worker is draining for a stop; session not opened", NULL);
      break;
    }
    session_handle_open(w, c, rid, req->session_open);
    break;
  case REALM__V1__WORKER_REQUEST__BODY_SESSION_CLOSE:
    session_handle_close(w, c, rid, req->session_close);
    break;
  case REALM__V1__WORKER_REQUEST__BODY_STEP:
    sched_handle_step(w, c, rid, req->step);
    break;
  case REALM__V1__WORKER_REQUEST__BODY_MATMUL:
    ops_handle_matmul(w, c, rid, req->matmul);
    break;
  case REALM__V1__WORKER_REQUEST__BODY_ATTENTION:
    ops_handle_attention(w, c, rid, req->attention);
    break;
  case REALM__V1__WORKER_REQUEST__BODY_STATS:
    stats_handle_request(w, c, rid);
    break;
  case REALM__V1__WORKER_REQUEST__BODY_GET_ROWS:
    ops_handle_get_rows(w, c, rid, req->get_rows);
    break;
  default:
    worker_reply_error(w, from, rid, REALM_E_PROTOCOL, "unknown WorkerRequest body", "body");
    break;
  }
}

/* Receives and handles every message waiting on the ROUTER. Returns a negative error only
 * when the socket itself failed. */
static int drain_router(struct worker *w) {
  for (int budget = 0; budget < 4096; budget++) {
    realm_ipc_peer from;
    ProtobufCMessage *m = NULL;
    char err[256];
    int rc = realm_ipc_recv(w->router, &from, REALM_FRAME_WORKER_REQUEST,
                            &realm__v1__worker_request__descriptor,
                            (size_t)REALM_MAX_FRAME_BYTES + REALM_MAX_INLINE_TENSOR_BYTES,
                            ZMQ_DONTWAIT, &m, err, sizeof err);
    if (rc == REALM_E_TIMEOUT) return 0;
    if (rc == REALM_E_PROTOCOL || rc == REALM_E_VERSION || rc == REALM_E_TOO_LARGE) {
      realm_log_info("frame refused", RLOG_ERR(rc), RLOG_STR("detail", err));
      char e2[128];
      int src = realm_proto_send_frame_error(w->router, &from, REALM_FRAME_WORKER_REQUEST, rc,
                                             err, e2, sizeof e2);
      if (src < 0) realm_log_debug("frame error not delivered", RLOG_ERR(src));
      continue;
    }
    if (rc == REALM_E_SYSTEM) continue; /* EINTR: a signal; the loop checks the stop flag */
    if (rc < 0) {
      realm_log_error("router receive failed", RLOG_ERR(rc), RLOG_STR("detail", err));
      return rc;
    }
    worker_dispatch(w, &from, (Realm__V1__WorkerRequest *)m);
    realm_frame_msg_free(m);
  }
  return 0;
}

/* ---- stop and drain ---- */

static uint32_t open_sessions(const struct worker *w) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < w->n_conns; i++) n += w->conns[i]->n_sessions;
  return n;
}

/* One round of liveness probes: the drain notice (request_id 0, code `cancelled`, which a
 * runner logs and otherwise ignores; shutting_down would make it drop the worker) to every
 * connection with sessions that has no Step queued (its reply will tell) and sent nothing
 * since the previous round. A peer that is gone fails the send and is marked dead
 * (worker_send_reply); the caller reaps it. At most one message per connection per round. */
static void drain_probe(struct worker *w, int64_t now) {
  char msg[200];
  snprintf(msg, sizeof msg,
           "worker is draining for a stop: new sessions are refused with shutting_down; open "
           "sessions are served until they close, for at most %lld ms more",
           (long long)((w->drain.deadline_ns - now) / 1000000));
  for (uint32_t i = 0; i < w->n_conns; i++) {
    struct worker_conn *c = w->conns[i];
    if (c->dead || c->n_sessions == 0 || c->pending_steps > 0) continue;
    if (w->drain.last_probe_ns && c->last_seen_ns >= w->drain.last_probe_ns) continue;
    worker_reply_error(w, &c->peer, 0, REALM_E_CANCELLED, msg, NULL);
  }
  w->drain.last_probe_ns = now;
  w->drain.next_probe_ns = now + WORKER_DRAIN_PROBE_NS;
}

/* The first stop: refuse what would start new work, keep serving the rest. */
static void drain_begin(struct worker *w, int64_t now) {
  struct worker_drain *d = &w->drain;
  d->active = true;
  d->started_ns = now;
  d->deadline_ns = now + w->cfg.drain_timeout_ms * 1000000LL;
  d->sessions_at_start = open_sessions(w);
  d->refused_opens = w->admit.n_waiting;
  realm_log_info("draining: new sessions refused, open sessions served until they close",
                 RLOG_UINT("sessions", d->sessions_at_start),
                 RLOG_UINT("waiting_opens", w->admit.n_waiting),
                 RLOG_UINT("connections", w->n_conns),
                 RLOG_INT("drain_timeout_ms", w->cfg.drain_timeout_ms));
  admit_fail_all(w, REALM_E_SHUTTING_DOWN, "worker is draining for a stop; session not opened");
  if (w->cfg.drain_timeout_ms > 0) drain_probe(w, now);
  else d->next_probe_ns = INT64_MAX; /* the drain ends on this very iteration */
}

/* Why the drain is over (NULL: it goes on): "second signal", "drained" or "timeout". */
static const char *drain_end_reason(const struct worker *w, int64_t now) {
  if (__atomic_load_n(&w->stop_calls, __ATOMIC_ACQUIRE) >= 2) return "second signal";
  if (open_sessions(w) == 0) return "drained";
  if (now >= w->drain.deadline_ns) return "timeout";
  return NULL;
}

static void drain_finished(const struct worker *w, int64_t now, const char *end) {
  const struct worker_drain *d = &w->drain;
  uint32_t left = open_sessions(w);
  realm_log_info("drain finished", RLOG_STR("end", end),
                 RLOG_UINT("sessions_at_start", d->sessions_at_start),
                 RLOG_UINT("sessions_closed", d->sessions_at_start > left
                                                  ? d->sessions_at_start - left : 0),
                 RLOG_UINT("sessions_cut", left), RLOG_UINT("refused_opens", d->refused_opens),
                 RLOG_UINT("refused_hellos", d->refused_hellos),
                 RLOG_UINT("queued_steps", w->sched.queued_entries),
                 RLOG_INT("elapsed_ms", (now - d->started_ns) / 1000000));
}

/* The cut-off: fail queued Steps with shutting_down, tell every connection, answer what arrives for
 * a short while, then return. */
static void drain_and_stop(struct worker *w) {
  w->draining = true;
  realm_log_info("shutting down", RLOG_UINT("queued_entries", w->sched.queued_entries),
                 RLOG_UINT("connections", w->n_conns));
  sched_fail_all(w, REALM_E_SHUTTING_DOWN, "worker is shutting down; step not run");
  admit_fail_all(w, REALM_E_SHUTTING_DOWN, "worker is shutting down; session not opened");
  for (uint32_t i = 0; i < w->n_conns; i++)
    worker_reply_error(w, &w->conns[i]->peer, 0, REALM_E_SHUTTING_DOWN,
                       "worker is shutting down", NULL);
  int64_t end = worker_now_ns() + w->cfg.drain_ms * 1000000LL;
  for (;;) {
    drain_router(w);
    lane_poll(w);
    int64_t left = end - worker_now_ns();
    if (left <= 0) break;
    zmq_pollitem_t it = {.socket = w->router, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, (long)(left / 1000000 + 1)) <= 0) break;
  }
}

int worker_run(struct worker *w) {
  realm_log_info("worker ready", RLOG_STR("model", w->model_name),
                 RLOG_STR("listen", w->cfg.listen), RLOG_STR("shm_socket", w->shm_path),
                 RLOG_STR("backend", engine_backend_name(w->engine)),
                 RLOG_INT("threads", engine_threads(w->engine)),
                 RLOG_STR("weight_pages", gguf_huge_pages(w->gguf) ? "2M" : "4k"),
                 RLOG_UINT("kv_blocks", kv_cache_total_blocks(engine_kv(w->engine))));
  zmq_pollitem_t items[4 + WORKER_MAX_SIDE_CONNS];
  int rc = 0;
  while (!w->backend_failed) {
    int64_t now = worker_now_ns();
    if (!w->drain.active && __atomic_load_n(&w->stop_calls, __ATOMIC_ACQUIRE) > 0)
      drain_begin(w, now);
    if (w->drain.active && now >= w->drain.next_probe_ns) drain_probe(w, now);
    conn_reap(w);
    conn_side_expire(w, now);
    int64_t idle_deadline = conn_idle_sweep(w, now);
    if (w->drain.active) {
      /* After the reap and the sweep: the sessions they freed no longer hold the drain. */
      const char *end = drain_end_reason(w, now);
      if (end) {
        drain_finished(w, now, end);
        break;
      }
      if (w->drain.deadline_ns < idle_deadline) idle_deadline = w->drain.deadline_ns;
      if (w->drain.next_probe_ns < idle_deadline) idle_deadline = w->drain.next_probe_ns;
    }
    /* After the reap and the sweep: the sessions they freed are reservations to hand out. */
    int64_t open_deadline = admit_pump(w, now);
    if (open_deadline < idle_deadline) idle_deadline = open_deadline;
    stats_tick(w, now);
    int64_t wait = sched_wait_ns(w, now);
    if (wait == 0) {
      sched_run_pass(w);
      /* Pick up what arrived during the pass before deciding on the next one. */
      rc = drain_router(w);
      if (rc < 0) break;
      lane_poll(w);
      w->spin_until_ns = worker_now_ns() + w->cfg.spin_us * 1000;
      continue;
    }
    /* Right after a pass, a decoding runner's next Step is a sampling step away: watch for
     * it rather than sleep (a sleeping vCPU costs tens of µs to wake), but no longer than
     * --spin-us and never past a batch window's end. */
    if (now < w->spin_until_ns) {
      int64_t until = wait > 0 && now + wait < w->spin_until_ns ? now + wait : w->spin_until_ns;
      w->spin_until_ns = 0;
      if (lane_spin(w, w->router, until)) continue;
      now = worker_now_ns();
      wait = sched_wait_ns(w, now);
      if (wait == 0) continue;
    }
    int64_t cap = w->stats.next_log_ns - now;
    if (wait < 0 || (cap > 0 && cap < wait)) wait = cap > 0 ? cap : 1000000;
    if (wait > 1000000000LL) wait = 1000000000LL; /* side-socket expiry granularity */
    if (idle_deadline - now < wait) wait = idle_deadline > now ? idle_deadline - now : 0;
    int n = 0;
    items[n++] = (zmq_pollitem_t){.socket = w->router, .events = ZMQ_POLLIN};
    items[n++] = (zmq_pollitem_t){.fd = w->wake_pipe[0], .events = ZMQ_POLLIN};
    items[n++] = (zmq_pollitem_t){.fd = w->lane_epoll, .events = ZMQ_POLLIN};
    if (w->shm_listen_fd >= 0)
      items[n++] = (zmq_pollitem_t){.fd = w->shm_listen_fd, .events = ZMQ_POLLIN};
    int side0 = n;
    for (uint32_t i = 0; i < w->n_sides; i++)
      items[n++] = (zmq_pollitem_t){.fd = w->sides[i].fd, .events = ZMQ_POLLIN};
    /* zmq_poll counts in ms, a batch window in µs: the last sub-ms part of a window is
     * polled with timeout 0 (a short spin, at most one window long) so the window is kept
     * exactly instead of rounding every pass up to 1 ms. */
    long timeout_ms = (long)(wait / 1000000);
    int np = zmq_poll(items, n, timeout_ms);
    if (np < 0) {
      if (zmq_errno() == EINTR) continue;
      realm_log_error("zmq_poll failed", RLOG_STR("detail", zmq_strerror(zmq_errno())));
      rc = REALM_E_SYSTEM;
      break;
    }
    if (items[1].revents & ZMQ_POLLIN) {
      char buf[64];
      while (read(w->wake_pipe[0], buf, sizeof buf) > 0) {
      }
    }
    if (items[0].revents & ZMQ_POLLIN) {
      rc = drain_router(w);
      if (rc < 0) break;
    }
    /* Doorbells first, then the lanes: a Step posted after the clear is still seen. */
    if (items[2].revents & ZMQ_POLLIN) lane_clear_doorbells(w);
    lane_poll(w);
    /* Side sockets: serve readable ones (highest index first: serving removes entries). */
    for (int i = n - 1; i >= side0; i--)
      if (items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) conn_side_readable(w, (uint32_t)(i - side0));
    if (w->shm_listen_fd >= 0 && (items[3].revents & ZMQ_POLLIN)) conn_side_accept(w);
  }
  if (rc == 0 && w->backend_failed) {
    /* Nothing more can be computed: answer everything queued and tell every runner, which
     * fail their requests and wait for the restarted worker. */
    char msg[320];
    snprintf(msg, sizeof msg, "worker compute backend failed (%s); the worker restarts",
             w->backend_error);
    sched_fail_all(w, REALM_E_UNAVAILABLE, msg);
    admit_fail_all(w, REALM_E_UNAVAILABLE, msg);
    for (uint32_t i = 0; i < w->n_conns; i++)
      worker_reply_error(w, &w->conns[i]->peer, 0, REALM_E_UNAVAILABLE, msg, NULL);
    /* Give libzmq's I/O thread the drain time to put the replies on the wire. */
    w->draining = true; /* late requests get shutting_down */
    int64_t end = worker_now_ns() + w->cfg.drain_ms * 1000000LL;
    for (int64_t left; (left = end - worker_now_ns()) > 0;) {
      zmq_pollitem_t it = {.socket = w->router, .events = ZMQ_POLLIN};
      if (zmq_poll(&it, 1, (long)(left / 1000000 + 1)) <= 0) break;
      drain_router(w);
      lane_poll(w);
    }
    return REALM_E_UNAVAILABLE;
  }
  if (rc < 0) {
    sched_fail_all(w, REALM_E_INTERNAL, "worker failed");
    admit_fail_all(w, REALM_E_INTERNAL, "worker failed");
    return rc;
  }
  drain_and_stop(w);
  realm_log_info("worker stopped", RLOG_UINT("steps_total", w->stats.steps_total),
                 RLOG_UINT("tokens_total", w->stats.tokens_total),
                 RLOG_UINT("lane_steps_total", w->stats.lane_steps));
  return 0;
}
