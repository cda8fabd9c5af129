/*
 * runner_test_util.c — the fake worker, gateway client and subprocess helpers of
 * runner_test_util.h. Test double only: it checks what the tests need and little more.
 */
#include "runner_test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "proc_util.h"
#include "realm/ipc.h"
#include "realm/shm.h"
#include "time_util.h"

extern char **environ;


/* ================================ fake worker ================================ */

#define FAKE_MAX_CONNS 8
#define FAKE_MAX_SESSIONS 256
#define FAKE_SHM_BYTES (4u << 20)
#define FAKE_MAX_HELD 16 /* Steps kept unanswered while held (one runner has one in flight) */

struct fake_conn {
  bool used;
  realm_ipc_peer peer;
  realm_shm *shm;
  uint8_t token[REALM_SHM_TOKEN_BYTES];
  bool token_live;
  uint64_t sessions[FAKE_MAX_SESSIONS]; /* 0 = free */
  uint32_t lengths[FAKE_MAX_SESSIONS];
};

struct fake_worker {
  pthread_t thread;
  char endpoint[256];
  char shm_path[256];
  void *ctx, *router;
  int listen_fd;
  int stop_pipe[2];
  int wake_pipe[2];        /* written by fake_worker_hold_steps(false): answer the kept Steps */
  pthread_mutex_t mu;
  pthread_cond_t changed;  /* signalled whenever stats change */
  struct fake_worker_stats stats;
  /* Under mu: hold (fake_worker_hold_steps) and the Steps kept meanwhile, in arrival order. */
  bool hold;
  uint32_t n_held;
  realm_ipc_peer held_peer[FAKE_MAX_HELD];
  ProtobufCMessage *held_msg[FAKE_MAX_HELD];
  struct fake_conn conns[FAKE_MAX_CONNS];
  uint64_t next_session;
};

int32_t fake_worker_next(int32_t t) {
  int32_t n = (int32_t)(((int64_t)t * 7 + 3) % FAKE_VOCAB);
  return n == FAKE_EOS ? n + 1 : n;
}

static struct fake_conn *conn_for(struct fake_worker *w, const realm_ipc_peer *p, bool create) {
  for (int i = 0; i < FAKE_MAX_CONNS; i++)
    if (w->conns[i].used && w->conns[i].peer.len == p->len &&
        memcmp(w->conns[i].peer.id, p->id, p->len) == 0)
      return &w->conns[i];
  if (!create) return NULL;
  for (int i = 0; i < FAKE_MAX_CONNS; i++)
    if (!w->conns[i].used) {
      memset(&w->conns[i], 0, sizeof w->conns[i]);
      w->conns[i].used = true;
      w->conns[i].peer = *p;
      return &w->conns[i];
    }
  return NULL;
}

static void reply_error(struct fake_worker *w, const realm_ipc_peer *p, uint64_t id, int code,
                        const char *msg) {
  realm_proto_send_worker_error(w->router, p, id, code, msg, NULL, 0);
}

static void send_reply(struct fake_worker *w, const realm_ipc_peer *p,
                       Realm__V1__WorkerReply *rep) {
  char err[256];
  realm_ipc_send(w->router, p, REALM_FRAME_WORKER_REPLY, &rep->base, ZMQ_DONTWAIT, err,
                 sizeof err);
}

static void fake_hello(struct fake_worker *w, const realm_ipc_peer *p,
                       const Realm__V1__WorkerRequest *req) {
  struct fake_conn *c = conn_for(w, p, true);
  if (!c) {
    reply_error(w, p, req->request_id, REALM_E_QUOTA, "fake worker: too many connections");
    return;
  }
  pthread_mutex_lock(&w->mu);
  w->stats.hellos++;
  pthread_mutex_unlock(&w->mu);
  Realm__V1__ModelInfo mi;
  realm__v1__model_info__init(&mi);
  mi.name = "fake-stories";
  mi.architecture = "llama";
  mi.vocab_size = FAKE_VOCAB;
  mi.n_ctx = 2048;
  mi.n_embd = 64;
  mi.n_layer = 5;
  mi.bos_token_id = 1;
  mi.eos_token_id = FAKE_EOS;
  Realm__V1__HelloReply h;
  realm__v1__hello_reply__init(&h);
  h.connection_id = (uint64_t)(c - w->conns) + 1;
  h.model = &mi;
  h.max_batch_seqs = 16;
  h.max_step_tokens = 512;
  h.max_sessions = 64;
  h.weight = req->hello->weight;
  h.kv_page_tokens = 16;
  if (req->hello->wants_shm) {
    char err[256];
    realm_shm_destroy(c->shm);
    c->shm = NULL;
    if (realm_shm_create("fake-worker", FAKE_SHM_BYTES, 0, &c->shm, err, sizeof err) == 0) {
      for (int i = 0; i < REALM_SHM_TOKEN_BYTES; i++) c->token[i] = (uint8_t)rand();
      c->token_live = true;
      h.shm_bytes = FAKE_SHM_BYTES;
      h.shm_socket_path = w->shm_path;
      h.shm_token.data = c->token;
      h.shm_token.len = REALM_SHM_TOKEN_BYTES;
    }
  }
  Realm__V1__WorkerReply rep;
  realm__v1__worker_reply__init(&rep);
  rep.request_id = req->request_id;
  rep.body_case = REALM__V1__WORKER_REPLY__BODY_HELLO;
  rep.hello = &h;
  send_reply(w, p, &rep);
}

static int session_slot(struct fake_conn *c, uint64_t id) {
  for (int i = 0; i < FAKE_MAX_SESSIONS; i++)
    if (c->sessions[i] == id && id) return i;
  return -1;
}

static void fake_step(struct fake_worker *w, struct fake_conn *c, const realm_ipc_peer *p,
                      const Realm__V1__WorkerRequest *req) {
  const Realm__V1__Step *st = req->step;
  Realm__V1__StepResult *res = calloc(st->n_entries + 1, sizeof *res);
  Realm__V1__StepResult **rp = calloc(st->n_entries + 1, sizeof *rp);
  Realm__V1__Error *errs = calloc(st->n_entries + 1, sizeof *errs);
  uint8_t **inl = calloc(st->n_entries + 1, sizeof *inl);
  for (size_t i = 0; i < st->n_entries; i++) {
    const Realm__V1__StepEntry *e = st->entries[i];
    realm__v1__step_result__init(&res[i]);
    rp[i] = &res[i];
    res[i].session_id = e->session_id;
    int s = session_slot(c, e->session_id);
    char err[256];
    void *tp = NULL;
    const int32_t *toks = NULL;
    if (s < 0) {
      realm_proto_error_set(&errs[i], REALM_E_NOT_FOUND, "no such session", NULL);
      res[i].error = &errs[i];
      continue;
    }
    if (c->shm) {
      if (e->tokens_offset % REALM_PROTOCOL_SHM_ALIGN ||
          realm_shm_slice(c->shm, e->tokens_offset, (uint64_t)e->n_tokens * 4, &tp, err,
                          sizeof err) < 0) {
        realm_proto_error_set(&errs[i], REALM_E_OUT_OF_RANGE, "bad tokens range", NULL);
        res[i].error = &errs[i];
        continue;
      }
      toks = tp;
    } else {
      toks = e->tokens_inline;
    }
    if (e->n_tokens == 0) {
      realm_proto_error_set(&errs[i], REALM_E_INVALID_ARGUMENT, "n_tokens 0", NULL);
      res[i].error = &errs[i];
      continue;
    }
    c->lengths[s] += e->n_tokens;
    res[i].n_past = c->lengths[s];
    if (e->n_logits) {
      int32_t next = fake_worker_next(toks[e->n_tokens - 1]);
      float *row = NULL;
      if (c->shm) {
        void *lp = NULL;
        if (e->logits_offset % REALM_PROTOCOL_SHM_ALIGN ||
            realm_shm_slice(c->shm, e->logits_offset, FAKE_VOCAB * 4, &lp, err, sizeof err) <
                0) {
          realm_proto_error_set(&errs[i], REALM_E_OUT_OF_RANGE, "bad logits range", NULL);
          res[i].error = &errs[i];
          continue;
        }
        row = lp;
      } else {
        inl[i] = malloc(FAKE_VOCAB * 4);
        row = (float *)inl[i];
        res[i].logits_inline.data = inl[i];
        res[i].logits_inline.len = FAKE_VOCAB * 4;
      }
      for (int v = 0; v < FAKE_VOCAB; v++) row[v] = -1.0f - (float)v / 1024.0f;
      row[next] = 5.0f;
    }
  }
  pthread_mutex_lock(&w->mu);
  w->stats.steps++;
  w->stats.entries += st->n_entries;
  if (st->n_entries > w->stats.max_entries) w->stats.max_entries = st->n_entries;
  pthread_mutex_unlock(&w->mu);
  Realm__V1__StepReply sr;
  realm__v1__step_reply__init(&sr);
  sr.results = rp;
  sr.n_results = st->n_entries;
  Realm__V1__WorkerReply rep;
  realm__v1__worker_reply__init(&rep);
  rep.request_id = req->request_id;
  rep.body_case = REALM__V1__WORKER_REPLY__BODY_STEP;
  rep.step = &sr;
  send_reply(w, p, &rep);
  for (size_t i = 0; i < st->n_entries; i++) free(inl[i]);
  free(inl);
  free(errs);
  free(rp);
  free(res);
}

static void fake_request(struct fake_worker *w, const realm_ipc_peer *p,
                         const Realm__V1__WorkerRequest *req) {
  if (req->body_case == REALM__V1__WORKER_REQUEST__BODY_HELLO) {
    fake_hello(w, p, req);
    return;
  }
  struct fake_conn *c = conn_for(w, p, false);
  if (!c) {
    reply_error(w, p, req->request_id, REALM_E_UNAVAILABLE, "no Hello on this connection");
    return;
  }
  Realm__V1__WorkerReply rep;
  realm__v1__worker_reply__init(&rep);
  rep.request_id = req->request_id;
  switch (req->body_case) {
  case REALM__V1__WORKER_REQUEST__BODY_SESSION_OPEN: {
    int s = session_slot(c, 0);
    for (int i = 0; i < FAKE_MAX_SESSIONS && s < 0; i++)
      if (!c->sessions[i]) s = i;
    if (s < 0) {
      reply_error(w, p, req->request_id, REALM_E_QUOTA, "fake worker: sessions full");
      return;
    }
    c->sessions[s] = ++w->next_session;
    c->lengths[s] = 0;
    pthread_mutex_lock(&w->mu);
    w->stats.sessions_opened++;
    pthread_mutex_unlock(&w->mu);
    Realm__V1__SessionOpened so;
    realm__v1__session_opened__init(&so);
    so.session_id = c->sessions[s];
    so.max_tokens = req->session_open->max_tokens ? req->session_open->max_tokens : 2048;
    rep.body_case = REALM__V1__WORKER_REPLY__BODY_SESSION_OPENED;
    rep.session_opened = &so;
    send_reply(w, p, &rep);
    return;
  }
  case REALM__V1__WORKER_REQUEST__BODY_SESSION_CLOSE: {
    int s = session_slot(c, req->session_close->session_id);
    if (s < 0) {
      reply_error(w, p, req->request_id, REALM_E_NOT_FOUND, "no such session");
      return;
    }
    c->sessions[s] = 0;
    pthread_mutex_lock(&w->mu);
    w->stats.sessions_closed++;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->mu);
    Realm__V1__SessionClosed sc;
    realm__v1__session_closed__init(&sc);
    sc.session_id = req->session_close->session_id;
    rep.body_case = REALM__V1__WORKER_REPLY__BODY_SESSION_CLOSED;
    rep.session_closed = &sc;
    send_reply(w, p, &rep);
    return;
  }
  case REALM__V1__WORKER_REQUEST__BODY_STEP:
    fake_step(w, c, p, req);
    return;
  default:
    reply_error(w, p, req->request_id, REALM_E_UNSUPPORTED, "fake worker: not served");
  }
}

/* One side-socket connection: token in, fd + connection id out. */
static void fake_shm_accept(struct fake_worker *w) {
  int s = accept4(w->listen_fd, NULL, NULL, SOCK_CLOEXEC);
  if (s < 0) return;
  struct timeval tv = {.tv_sec = 2};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  uint8_t tok[64];
  size_t n = 0;
  int fd = -1;
  char err[256];
  if (realm_fd_recv(s, &fd, tok, sizeof tok, &n, err, sizeof err) == 0 &&
      n == REALM_SHM_TOKEN_BYTES) {
    for (int i = 0; i < FAKE_MAX_CONNS; i++) {
      struct fake_conn *c = &w->conns[i];
      if (c->used && c->token_live && memcmp(c->token, tok, n) == 0) {
        c->token_live = false;
        uint64_t id = (uint64_t)i + 1;
        realm_fd_send(s, realm_shm_fd(c->shm), &id, 8, err, sizeof err);
        break;
      }
    }
  }
  if (fd >= 0) close(fd);
  close(s);
}

/* Keeps a Step while held (takes ownership of m); false when it must be served now. */
static bool hold_step(struct fake_worker *w, const realm_ipc_peer *p, ProtobufCMessage *m) {
  const Realm__V1__WorkerRequest *req = (const Realm__V1__WorkerRequest *)m;
  bool kept = false;
  pthread_mutex_lock(&w->mu);
  if (w->hold && req->body_case == REALM__V1__WORKER_REQUEST__BODY_STEP &&
      w->n_held < FAKE_MAX_HELD) {
    w->held_peer[w->n_held] = *p;
    w->held_msg[w->n_held++] = m;
    pthread_cond_broadcast(&w->changed);
    kept = true;
  }
  pthread_mutex_unlock(&w->mu);
  return kept;
}

/* Answers the Steps kept while held, once the hold is off. */
static void serve_held(struct fake_worker *w) {
  realm_ipc_peer peers[FAKE_MAX_HELD];
  ProtobufCMessage *msgs[FAKE_MAX_HELD];
  uint32_t n = 0;
  pthread_mutex_lock(&w->mu);
  if (!w->hold) {
    n = w->n_held;
    memcpy(peers, w->held_peer, n * sizeof *peers);
    memcpy(msgs, w->held_msg, n * sizeof *msgs);
    w->n_held = 0;
  }
  pthread_mutex_unlock(&w->mu);
  for (uint32_t i = 0; i < n; i++) {
    fake_request(w, &peers[i], (Realm__V1__WorkerRequest *)msgs[i]);
    realm_frame_msg_free(msgs[i]);
  }
}

static void *fake_main(void *arg) {
  struct fake_worker *w = arg;
  for (;;) {
    zmq_pollitem_t items[4] = {
        {.socket = w->router, .events = ZMQ_POLLIN},
        {.fd = w->listen_fd, .events = ZMQ_POLLIN},
        {.fd = w->stop_pipe[0], .events = ZMQ_POLLIN},
        {.fd = w->wake_pipe[0], .events = ZMQ_POLLIN},
    };
    if (zmq_poll(items, 4, 1000) < 0 && zmq_errno() != EINTR) break;
    if (items[2].revents) break;
    if (items[3].revents) {
      char b[64];
      if (read(w->wake_pipe[0], b, sizeof b) < 0) {
      }
    }
    serve_held(w);
    if (items[1].revents) fake_shm_accept(w);
    if (!items[0].revents) continue;
    for (int k = 0; k < 64; k++) {
      realm_ipc_peer from;
      ProtobufCMessage *m = NULL;
      char err[256];
      int rc = realm_ipc_recv(w->router, &from, REALM_FRAME_WORKER_REQUEST,
                              &realm__v1__worker_request__descriptor, 0, ZMQ_DONTWAIT, &m, err,
                              sizeof err);
      if (rc == REALM_E_TIMEOUT) break;
      if (rc < 0) {
        realm_proto_send_frame_error(w->router, &from, REALM_FRAME_WORKER_REQUEST, rc, err,
                                     NULL, 0);
        continue;
      }
      if (hold_step(w, &from, m)) continue;
      fake_request(w, &from, (Realm__V1__WorkerRequest *)m);
      realm_frame_msg_free(m);
    }
  }
  return NULL;
}

int fake_worker_start(const char *dir, struct fake_worker **ret) {
  struct fake_worker *w = calloc(1, sizeof *w);
  if (!w) return -1;
  pthread_mutex_init(&w->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->changed, &ca);
  snprintf(w->endpoint, sizeof w->endpoint, "ipc://%s/worker.sock", dir);
  snprintf(w->shm_path, sizeof w->shm_path, "%s/worker-shm.sock", dir);
  char err[256];
  w->ctx = zmq_ctx_new();
  if (realm_ipc_socket_new(w->ctx, ZMQ_ROUTER, 0, &w->router, err, sizeof err) < 0 ||
      zmq_bind(w->router, w->endpoint) != 0) {
    fprintf(stderr, "fake worker: bind %s: %s\n", w->endpoint, err);
    return -1;
  }
  w->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(w->shm_path) >= sizeof sa.sun_path) return -1;
  memcpy(sa.sun_path, w->shm_path, strlen(w->shm_path) + 1);
  unlink(w->shm_path);
  if (w->listen_fd < 0 || bind(w->listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(w->listen_fd, 8) != 0 || pipe(w->stop_pipe) != 0 ||
      pipe2(w->wake_pipe, O_NONBLOCK) != 0) {
    fprintf(stderr, "fake worker: shm socket %s: %s\n", w->shm_path, strerror(errno));
    return -1;
  }
  if (pthread_create(&w->thread, NULL, fake_main, w) != 0) return -1;
  *ret = w;
  return 0;
}

void fake_worker_stop(struct fake_worker *w) {
  if (!w) return;
  if (write(w->stop_pipe[1], "x", 1) != 1) {
  }
  pthread_join(w->thread, NULL);
  realm_ipc_socket_close(w->router);
  zmq_ctx_term(w->ctx);
  close(w->listen_fd);
  unlink(w->shm_path);
  close(w->stop_pipe[0]);
  close(w->stop_pipe[1]);
  close(w->wake_pipe[0]);
  close(w->wake_pipe[1]);
  for (uint32_t i = 0; i < w->n_held; i++) realm_frame_msg_free(w->held_msg[i]);
  for (int i = 0; i < FAKE_MAX_CONNS; i++) realm_shm_destroy(w->conns[i].shm);
  free(w);
}

void fake_worker_get_stats(struct fake_worker *w, struct fake_worker_stats *ret) {
  pthread_mutex_lock(&w->mu);
  *ret = w->stats;
  pthread_mutex_unlock(&w->mu);
}

int fake_worker_wait_closed(struct fake_worker *w, uint64_t n, int timeout_ms) {
  struct timespec until = test_deadline(CLOCK_MONOTONIC, timeout_ms);
  pthread_mutex_lock(&w->mu);
  int rc = 0;
  while (w->stats.sessions_closed < n && rc == 0)
    rc = pthread_cond_timedwait(&w->changed, &w->mu, &until);
  int ok = w->stats.sessions_closed >= n ? 0 : -1;
  pthread_mutex_unlock(&w->mu);
  return ok;
}

void fake_worker_hold_steps(struct fake_worker *w, bool hold) {
  pthread_mutex_lock(&w->mu);
  w->hold = hold;
  pthread_mutex_unlock(&w->mu);
  if (!hold && write(w->wake_pipe[1], "x", 1) != 1) {
    /* full pipe: a wake-up is pending already */
  }
}

int fake_worker_wait_held(struct fake_worker *w, uint32_t n, int timeout_ms) {
  struct timespec until = test_deadline(CLOCK_MONOTONIC, timeout_ms);
  pthread_mutex_lock(&w->mu);
  int rc = 0;
  while (w->n_held < n && rc == 0) rc = pthread_cond_timedwait(&w->changed, &w->mu, &until);
  int ok = w->n_held >= n ? 0 : -1;
  pthread_mutex_unlock(&w->mu);
  return ok;
}

const char *fake_worker_endpoint(const struct fake_worker *w) { return w->endpoint; }

/* ================================ paths ================================ */

const char *test_tmpdir(void) {
  static char dirs[16][64];
  static int n;
  char *d = dirs[n++ % 16];
  snprintf(d, 64, "/tmp/realm-runner-test-XXXXXX");
  return mkdtemp(d) ? d : NULL;
}

const char *build_path(const char *rel) {
  static char bufs[8][512];
  static int n;
  char *b = bufs[n++ % 8];
  const char *root = getenv("REALM_BUILD_ROOT");
  snprintf(b, 512, "%s/%s", root ? root : ".", rel);
  return b;
}

/* ================================ subprocess ================================ */

int runner_spawn(const char *exe, const char *dir, const char *worker_ep, const char *module,
                 const char *const *extra, struct runner_proc *ret) {
  return runner_spawn_prefixed(NULL, exe, dir, worker_ep, module, extra, ret);
}

int runner_spawn_prefixed(const char *const *prefix, const char *exe, const char *dir,
                          const char *worker_ep, const char *module, const char *const *extra,
                          struct runner_proc *ret) {
  static char vocab[512];
  snprintf(vocab, sizeof vocab, "%s/gguf/stories260K.gguf",
           getenv("REALM_MODELS_DIR") ? getenv("REALM_MODELS_DIR") : "../shared/models");
  snprintf(ret->listen, sizeof ret->listen, "ipc://%s/runner-t1-0.sock", dir);
  const char *cache = getenv("REALM_TEST_MODULE_CACHE");
  const char *argv[80];
  int n = 0;
  for (int i = 0; prefix && prefix[i] && n < 16; i++) argv[n++] = prefix[i];
  const char *std[] = {exe,       "--tenant",    "t1",     "--worker",     worker_ep,
                       "--listen", ret->listen,  "--module", module,       "--module-cache",
                       cache ? cache : dir, "--vocab", vocab, "--connect-timeout", "10s",
                       "--log-level", "warn"};
  for (size_t i = 0; i < sizeof std / sizeof std[0]; i++) argv[n++] = std[i];
  for (int i = 0; extra && extra[i] && n < 78; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  pid_t pid;
  if (posix_spawn(&pid, argv[0], NULL, NULL, (char *const *)argv, environ) != 0) return -1;
  ret->pid = pid;
  return 0;
}

int runner_wait(pid_t pid, int timeout_ms) { return test_proc_reap(pid, timeout_ms); }

void runner_stop(struct runner_proc *p) {
  if (p->pid <= 0) return;
  kill(p->pid, SIGTERM);
  if (runner_wait(p->pid, 5000) == -1) {
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
  }
  p->pid = 0;
}

/* ================================ gateway client ================================ */

int gw_connect(struct gw_client *c, const char *endpoint) {
  char err[256];
  c->stray_events = 0;
  c->ctx = zmq_ctx_new();
  if (realm_ipc_socket_new(c->ctx, ZMQ_DEALER, 0, &c->sock, err, sizeof err) < 0) return -1;
  /* A blocking send waits for the connection (ZMQ_IMMEDIATE); bound it. */
  int t = 10000;
  zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &t, sizeof t);
  return zmq_connect(c->sock, endpoint);
}

void gw_close(struct gw_client *c) {
  realm_ipc_socket_close(c->sock);
  if (c->ctx) zmq_ctx_term(c->ctx);
  c->sock = c->ctx = NULL;
}

static int gw_send(struct gw_client *c, Realm__V1__RunnerRequest *req) {
  char err[256];
  return realm_ipc_send(c->sock, NULL, REALM_FRAME_RUNNER_REQUEST, &req->base, 0, err,
                        sizeof err);
}

int gw_send_generate(struct gw_client *c, Realm__V1__GenerateRequest *g) {
  Realm__V1__RunnerRequest req;
  realm__v1__runner_request__init(&req);
  req.body_case = REALM__V1__RUNNER_REQUEST__BODY_GENERATE;
  req.generate = g;
  return gw_send(c, &req);
}

int gw_generate(struct gw_client *c, const char *id, const char *tenant, const char *prompt,
                uint32_t max_tokens) {
  Realm__V1__GenerateRequest g;
  realm__v1__generate_request__init(&g);
  g.request_id = (char *)id;
  g.tenant_id = (char *)(tenant ? tenant : "t1");
  if (prompt) {
    g.input_case = REALM__V1__GENERATE_REQUEST__INPUT_PROMPT;
    g.prompt = (char *)prompt;
  }
  Realm__V1__SamplingParams s;
  realm__v1__sampling_params__init(&s);
  s.max_tokens = max_tokens;
  g.sampling = &s;
  return gw_send_generate(c, &g);
}

int gw_cancel(struct gw_client *c, const char *id) {
  Realm__V1__CancelRequest cr;
  realm__v1__cancel_request__init(&cr);
  cr.request_id = (char *)id;
  Realm__V1__RunnerRequest req;
  realm__v1__runner_request__init(&req);
  req.body_case = REALM__V1__RUNNER_REQUEST__BODY_CANCEL;
  req.cancel = &cr;
  return gw_send(c, &req);
}

static Realm__V1__RunnerEvent *gw_recv(struct gw_client *c, int timeout_ms) {
  zmq_pollitem_t it = {.socket = c->sock, .events = ZMQ_POLLIN};
  if (zmq_poll(&it, 1, timeout_ms) <= 0) return NULL;
  ProtobufCMessage *m = NULL;
  char err[256];
  if (realm_ipc_recv(c->sock, NULL, REALM_FRAME_RUNNER_EVENT, &realm__v1__runner_event__descriptor,
                     0, ZMQ_DONTWAIT, &m, err, sizeof err) < 0)
    return NULL;
  return (Realm__V1__RunnerEvent *)m;
}

/* Applies one GenerateEvent to the result of its id (if any); *done counts terminal events
 * of this collection (for done_seq). */
static void apply_event(const Realm__V1__GenerateEvent *ge, const char *const *ids,
                        struct gw_result *res, int n, int *done,
                        void (*on_token)(void *user, int idx, uint32_t n_tokens), void *user) {
  for (int i = 0; i < n; i++) {
    if (strcmp(ids[i], ge->request_id) != 0) continue;
    struct gw_result *r = &res[i];
    r->n_events++;
    if (ge->kind_case == REALM__V1__GENERATE_EVENT__KIND_TOKEN && ge->token) {
      if (ge->token->token_id >= 0 && r->n_tokens < 256) {
        uint32_t k = r->n_tokens++;
        r->tokens[k] = ge->token->token_id;
        const Realm__V1__TokenLogprob *lp = ge->token->logprob;
        if (lp) {
          r->has_logprob[k] = true;
          r->logprob[k] = lp->logprob;
          snprintf(r->lp_text[k], sizeof r->lp_text[k], "%.*s",
                   (int)(lp->text.len < 31 ? lp->text.len : 31), (const char *)lp->text.data);
          r->n_top[k] = (uint32_t)lp->n_top;
          for (size_t t = 0; t < lp->n_top && t < 4; t++) {
            r->top_id[k][t] = lp->top[t]->token_id;
            r->top_logprob[k][t] = lp->top[t]->logprob;
          }
          if (lp->n_top)
            snprintf(r->top_text[k], sizeof r->top_text[k], "%.*s",
                     (int)(lp->top[0]->text.len < 31 ? lp->top[0]->text.len : 31),
                     (const char *)lp->top[0]->text.data);
        }
      }
      size_t l = ge->token->text.len;
      if (l && r->text_len + l < sizeof r->text) { /* data is NULL when l is 0 */
        memcpy(r->text + r->text_len, ge->token->text.data, l);
        r->text_len += l;
        r->text[r->text_len] = 0;
      }
      if (on_token) on_token(user, i, r->n_tokens);
    } else if (ge->kind_case == REALM__V1__GENERATE_EVENT__KIND_FINISH && ge->finish) {
      r->done = true;
      r->finish_reason = ge->finish->reason;
      if (ge->finish->usage) {
        r->prompt_tokens = ge->finish->usage->prompt_tokens;
        r->completion_tokens = ge->finish->usage->completion_tokens;
      }
      r->done_seq = (uint32_t)++*done;
    } else if (ge->kind_case == REALM__V1__GENERATE_EVENT__KIND_ERROR && ge->error) {
      r->done = true;
      r->error = true;
      snprintf(r->error_code, sizeof r->error_code, "%s", ge->error->code);
      snprintf(r->error_msg, sizeof r->error_msg, "%s", ge->error->message);
      snprintf(r->error_param, sizeof r->error_param, "%s", ge->error->param);
      r->done_seq = (uint32_t)++*done;
    }
  }
}

int gw_collect(struct gw_client *c, const char *const *ids, struct gw_result *res, int n,
               int timeout_ms, void (*on_token)(void *user, int idx, uint32_t n_tokens),
               void *user) {
  int64_t until = test_mono_ms() + timeout_ms;
  int done = 0;
  for (int i = 0; i < n; i++) done += res[i].done;
  while (done < n) {
    int64_t left = until - test_mono_ms();
    if (left <= 0) break;
    Realm__V1__RunnerEvent *ev = gw_recv(c, (int)left);
    if (!ev) continue;
    if (ev->body_case == REALM__V1__RUNNER_EVENT__BODY_EVENT && ev->event)
      apply_event(ev->event, ids, res, n, &done, on_token, user);
    realm_frame_msg_free(&ev->base);
  }
  return done;
}

enum gw_got gw_collect_one(struct gw_client *c, const char *const *ids, struct gw_result *res,
                           int n, int timeout_ms, struct gw_pong *ret_pong) {
  Realm__V1__RunnerEvent *ev = gw_recv(c, timeout_ms);
  if (!ev) return GW_GOT_NOTHING;
  enum gw_got got = GW_GOT_NOTHING;
  if (ev->body_case == REALM__V1__RUNNER_EVENT__BODY_EVENT && ev->event) {
    int done = 0;
    for (int i = 0; i < n; i++) done += res[i].done;
    apply_event(ev->event, ids, res, n, &done, NULL, NULL);
    got = GW_GOT_EVENT;
  } else if (ev->body_case == REALM__V1__RUNNER_EVENT__BODY_PONG && ev->pong) {
    const Realm__V1__HealthPong *p = ev->pong;
    if (ret_pong)
      *ret_pong = (struct gw_pong){.nonce = p->nonce,
                                   .ready = p->ready,
                                   .worker_connected = p->worker_connected,
                                   .in_flight = p->in_flight,
                                   .max_in_flight = p->max_in_flight,
                                   .requests_total = p->requests_total};
    got = GW_GOT_PONG;
  }
  realm_frame_msg_free(&ev->base);
  return got;
}

int gw_send_ping(struct gw_client *c, uint64_t nonce) {
  Realm__V1__HealthPing ping;
  realm__v1__health_ping__init(&ping);
  ping.nonce = nonce;
  Realm__V1__RunnerRequest req;
  realm__v1__runner_request__init(&req);
  req.body_case = REALM__V1__RUNNER_REQUEST__BODY_PING;
  req.ping = &ping;
  return gw_send(c, &req);
}

int gw_ping(struct gw_client *c, uint64_t nonce, bool *ret_worker_connected, int timeout_ms) {
  uint64_t total;
  return gw_ping_ex(c, nonce, ret_worker_connected, &total, timeout_ms);
}

int gw_ping_ex(struct gw_client *c, uint64_t nonce, bool *ret_worker_connected,
               uint64_t *ret_requests_total, int timeout_ms) {
  if (gw_send_ping(c, nonce) < 0) return -1;
  int64_t until = test_mono_ms() + timeout_ms;
  while (test_mono_ms() < until) {
    Realm__V1__RunnerEvent *ev = gw_recv(c, (int)(until - test_mono_ms()));
    if (!ev) continue;
    bool match = ev->body_case == REALM__V1__RUNNER_EVENT__BODY_PONG && ev->pong &&
                 ev->pong->nonce == nonce;
    if (match) {
      *ret_worker_connected = ev->pong->worker_connected;
      *ret_requests_total = ev->pong->requests_total;
    } else {
      c->stray_events++;
    }
    realm_frame_msg_free(&ev->base);
    if (match) return 0;
  }
  return -1;
}

/* ================================ fixture ================================ */

const char *runner_test_guest(const char *name) {
  static char path[4][512];
  static int n;
  char *b = path[n++ % 4];
  if (strcmp(name, "echo_greedy") == 0)
    snprintf(b, 512, "%s/echo_greedy.wasm", getenv("REALM_TEST_EXAMPLE_GUESTS_DIR"));
  else
    snprintf(b, 512, "%s/%s.wasm", getenv("REALM_TEST_RUNNER_GUESTS"), name);
  return b;
}

int runner_fixture_up(struct runner_fixture *f, const char *module, const char *const *extra) {
  memset(f, 0, sizeof *f);
  const char *cache = getenv("REALM_TEST_MODULE_CACHE");
  if (cache) mkdir(cache, 0700);
  f->dir = test_tmpdir();
  if (!f->dir || fake_worker_start(f->dir, &f->w) != 0) return -1;
  if (runner_spawn(getenv("REALM_RUNNER_BIN"), f->dir, fake_worker_endpoint(f->w), module, extra,
                   &f->p) != 0)
    return -1;
  if (gw_connect(&f->gw, f->p.listen) != 0) return -1;
  /* The runner answers pings once set-up and the jail are done (module compile included);
   * a ping sent earlier is queued by ZeroMQ or lost, hence the retries. */
  for (int i = 0; i < 60; i++) {
    bool up = false;
    if (gw_ping(&f->gw, 100 + (uint64_t)i, &up, 500) == 0) return up ? 0 : -1;
  }
  return -1;
}

void runner_fixture_down(struct runner_fixture *f) {
  gw_close(&f->gw);
  runner_stop(&f->p);
  fake_worker_stop(f->w);
  f->w = NULL;
  if (f->dir) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) {
    }
  }
}
