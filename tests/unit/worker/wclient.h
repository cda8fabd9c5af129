/*
 * wclient.h — a minimal runner-side client of the worker protocol for the worker tests and
 * the benchmark: a DEALER, Hello, the shm handshake (docs/protocol.md §6.1), and
 * send/receive of WorkerRequest/WorkerReply with bounded waits (no sleeps).
 *
 * Header-only, static functions; include it in one .c per program.
 */
#ifndef REALM_TEST_WCLIENT_H
#define REALM_TEST_WCLIENT_H

#include <math.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "realm/ipc.h"
#include "realm/lane.h"
#include "realm/proto.h"
#include "realm/shm.h"

struct wclient {
  void *sock;
  realm_shm *shm;       /* NULL: inline mode */
  uint8_t *base;        /* shm data */
  realm_lane lane;      /* step lane (wc_open_lane); base NULL: Steps go on the socket */
  uint64_t lane_rid;    /* request id of the Step in the lane */
  uint64_t next_rid;
  uint64_t conn_id;
  uint32_t vocab, n_embd, n_layer, n_head, n_head_kv, n_ctx, n_ff;
  float rms_eps;
  bool weight_access;   /* HelloReply: Matmul/GetRows allowed */
  uint32_t weight, max_step_tokens, max_batch_seqs;
  uint64_t kv_quota_tokens;
  char err[512];
};

/* Where a test's realm-worker process listens: a fresh directory under /tmp holding the
 * ipc socket (PATH) and, next to it, the worker's shm side socket (PATH.shm), plus the
 * stories260K model path. wsite_clean() removes both sockets and the directory. */
struct wsite {
  char dir[64], path[128], ep[160], model[512];
};

static inline void wsite_init(struct wsite *s, const char *prefix) {
  snprintf(s->dir, sizeof s->dir, "/tmp/%s-XXXXXX", prefix);
  if (!mkdtemp(s->dir)) s->dir[0] = 0;
  snprintf(s->path, sizeof s->path, "%s/w.sock", s->dir);
  snprintf(s->ep, sizeof s->ep, "ipc://%s", s->path);
  const char *models = getenv("REALM_MODELS_DIR");
  snprintf(s->model, sizeof s->model, "%s/gguf/stories260K.gguf", models ? models : "../shared/models");
}

static inline void wsite_clean(struct wsite *s) {
  char p[160];
  unlink(s->path);
  snprintf(p, sizeof p, "%s.shm", s->path);
  unlink(p);
  rmdir(s->dir);
}

#define WC_MAX_PAYLOAD ((size_t)REALM_MAX_FRAME_BYTES + REALM_MAX_INLINE_TENSOR_BYTES)

/* The reply waiting in the step lane, or NULL. */
static inline Realm__V1__WorkerReply *wc_lane_reply(struct wclient *c) {
  ProtobufCMessage *m = NULL;
  if (realm_lane_take_reply(&c->lane, &realm__v1__worker_reply__descriptor, &m, c->err,
                            sizeof c->err) < 0)
    return NULL;
  return (Realm__V1__WorkerReply *)m;
}

/* Waits up to timeout_ms for one reply, from the socket or the step lane; returns it (free
 * with realm_frame_msg_free) or NULL. */
static inline Realm__V1__WorkerReply *wc_recv(struct wclient *c, int timeout_ms) {
  zmq_pollitem_t it[2] = {{.socket = c->sock, .events = ZMQ_POLLIN},
                          {.fd = c->lane.base ? c->lane.to_runner : -1, .events = ZMQ_POLLIN}};
  for (int round = 0;; round++) {
    if (realm_lane_reply_ready(&c->lane)) return wc_lane_reply(c);
    /* Poll again after a doorbell: the socket may also have a message. A few rounds at most
     * (each rung doorbell is cleared), so the wait stays bounded near timeout_ms. */
    if (round > 4 || zmq_poll(it, c->lane.base ? 2 : 1, timeout_ms) <= 0) {
      snprintf(c->err, sizeof c->err, "no reply within %d ms", timeout_ms);
      return NULL;
    }
    if (c->lane.base && (it[1].revents & ZMQ_POLLIN)) realm_lane_clear(c->lane.to_runner);
    if (it[0].revents & ZMQ_POLLIN) break;
  }
  ProtobufCMessage *m = NULL;
  int rc = realm_ipc_recv(c->sock, NULL, REALM_FRAME_WORKER_REPLY,
                          &realm__v1__worker_reply__descriptor, WC_MAX_PAYLOAD, 0, &m, c->err,
                          sizeof c->err);
  if (rc < 0) return NULL;
  Realm__V1__WorkerReply *r = (Realm__V1__WorkerReply *)m;
  if (c->lane.busy && r->request_id == c->lane_rid) realm_lane_reply_elsewhere(&c->lane);
  return r;
}

/* Sends req with a fresh request id (stored in req->request_id); returns 0 or an error. */
static inline int wc_send(struct wclient *c, Realm__V1__WorkerRequest *req) {
  req->request_id = ++c->next_rid;
  if (req->body_case == REALM__V1__WORKER_REQUEST__BODY_STEP && c->lane.base && !c->lane.busy &&
      realm_lane_post(&c->lane, &req->base, c->err, sizeof c->err) == 0) {
    c->lane_rid = req->request_id;
    return 0;
  }
  return realm_ipc_send(c->sock, NULL, REALM_FRAME_WORKER_REQUEST, &req->base, 0, c->err,
                        sizeof c->err);
}

/* Waits (10 s at most per message) for the reply to request rid, skipping up to 64 others
 * (stray notices, replies to earlier requests); returns it or NULL. */
static inline Realm__V1__WorkerReply *wc_recv_reply(struct wclient *c, uint64_t rid) {
  for (int i = 0; i < 64; i++) {
    Realm__V1__WorkerReply *r = wc_recv(c, 10000);
    if (!r) return NULL;
    if (r->request_id == rid) return r;
    realm_frame_msg_free(&r->base);
  }
  return NULL;
}

/* Sends req and waits (10 s at most) for its reply. */
static inline Realm__V1__WorkerReply *wc_call(struct wclient *c, Realm__V1__WorkerRequest *req) {
  if (wc_send(c, req) < 0) return NULL;
  return wc_recv_reply(c, req->request_id);
}

/* Sends a StatsRequest; returns its request id, or 0 when the send failed. */
static inline uint64_t wc_send_stats(struct wclient *c) {
  Realm__V1__StatsRequest sq;
  realm__v1__stats_request__init(&sq);
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  req.body_case = REALM__V1__WORKER_REQUEST__BODY_STATS;
  req.stats = &sq;
  return wc_send(c, &req) < 0 ? 0 : req.request_id;
}

/* Stats round trip: the reply (a StatsReply, or an error reply), or NULL. */
static inline Realm__V1__WorkerReply *wc_stats(struct wclient *c) {
  uint64_t rid = wc_send_stats(c);
  return rid ? wc_recv_reply(c, rid) : NULL;
}

/* Fetches the memfd for a HelloReply over the side socket. */
static inline int wc_fetch_shm(struct wclient *c, const Realm__V1__HelloReply *hr) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", hr->shm_socket_path);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    snprintf(c->err, sizeof c->err, "connect %s failed", hr->shm_socket_path);
    if (fd >= 0) close(fd);
    return -1;
  }
  int rc = realm_fd_send(fd, -1, hr->shm_token.data, hr->shm_token.len, c->err, sizeof c->err);
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (rc == 0 && poll(&p, 1, 5000) != 1) rc = -1;
  int mfd = -1;
  uint8_t idb[8];
  size_t n = 0;
  if (rc == 0) rc = realm_fd_recv(fd, &mfd, idb, sizeof idb, &n, c->err, sizeof c->err);
  if (rc < 0 || mfd < 0 || n != 8) {
    close(fd);
    return -1;
  }
  uint64_t id = 0;
  for (int i = 0; i < 8; i++) id |= (uint64_t)idb[i] << (8 * i);
  if (id == hr->connection_id)
    rc = realm_shm_from_fd(mfd, hr->shm_bytes, true, &c->shm, c->err, sizeof c->err);
  if (id != hr->connection_id || rc < 0) {
    close(mfd);
    close(fd);
    return -1;
  }
  c->base = realm_shm_data(c->shm);
  if (hr->step_lane_offset)
    rc = realm_lane_adopt(&c->lane, c->shm, hr->step_lane_offset, fd, c->err, sizeof c->err);
  close(fd);
  return rc;
}

/* wc_open with a choice of step lane (wants_step_lane in the Hello). */
static inline int wc_open_ex(struct wclient *c, void *zctx, const char *endpoint,
                             const char *tenant, const char *replica, uint32_t weight,
                             uint64_t quota, uint64_t shm_bytes, bool lane) {
  memset(c, 0, sizeof *c);
  if (realm_ipc_socket_new(zctx, ZMQ_DEALER, WC_MAX_PAYLOAD, &c->sock, c->err, sizeof c->err) < 0)
    return -1;
  if (zmq_connect(c->sock, endpoint) != 0) return -1;
  Realm__V1__Hello h;
  realm__v1__hello__init(&h);
  h.tenant_id = (char *)tenant;
  h.replica_id = (char *)replica;
  h.weight = weight;
  h.kv_quota_tokens = quota;
  h.wants_shm = shm_bytes > 0;
  h.shm_bytes = shm_bytes;
  h.wants_step_lane = lane;
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  req.body_case = REALM__V1__WORKER_REQUEST__BODY_HELLO;
  req.hello = &h;
  Realm__V1__WorkerReply *r = wc_call(c, &req);
  if (!r || r->body_case != REALM__V1__WORKER_REPLY__BODY_HELLO) {
    if (r) snprintf(c->err, sizeof c->err, "hello refused: %s", r->error ? r->error->message : "?");
    realm_frame_msg_free(r ? &r->base : NULL);
    return -1;
  }
  Realm__V1__HelloReply *hr = r->hello;
  c->conn_id = hr->connection_id;
  c->vocab = hr->model->vocab_size;
  c->n_embd = hr->model->n_embd;
  c->n_layer = hr->model->n_layer;
  c->n_head = hr->model->n_head;
  c->n_head_kv = hr->model->n_head_kv;
  c->n_ctx = hr->model->n_ctx;
  c->n_ff = hr->model->n_ff;
  c->rms_eps = hr->model->rms_norm_eps;
  c->weight_access = hr->weight_access;
  c->weight = hr->weight;
  c->kv_quota_tokens = hr->kv_quota_tokens;
  c->max_step_tokens = hr->max_step_tokens;
  c->max_batch_seqs = hr->max_batch_seqs;
  int rc = 0;
  if (shm_bytes > 0) rc = hr->shm_bytes ? wc_fetch_shm(c, hr) : -1;
  realm_frame_msg_free(&r->base);
  return rc;
}

/* Connects, says Hello (shm_bytes 0 = inline mode) and fetches the region; Steps go on the
 * socket. */
static inline int wc_open(struct wclient *c, void *zctx, const char *endpoint, const char *tenant,
                   const char *replica, uint32_t weight, uint64_t quota, uint64_t shm_bytes) {
  return wc_open_ex(c, zctx, endpoint, tenant, replica, weight, quota, shm_bytes, false);
}

/* The same, asking for a step lane: Steps then go through the region (docs/protocol.md §6.2). */
static inline int wc_open_lane(struct wclient *c, void *zctx, const char *endpoint,
                               const char *tenant, const char *replica, uint32_t weight,
                               uint64_t quota, uint64_t shm_bytes) {
  return wc_open_ex(c, zctx, endpoint, tenant, replica, weight, quota, shm_bytes, true);
}

static inline void wc_close(struct wclient *c) {
  realm_lane_detach(&c->lane);
  realm_ipc_socket_close(c->sock);
  realm_shm_destroy(c->shm);
  memset(c, 0, sizeof *c);
}

/* Sends SessionOpen{max_tokens} without waiting; returns the request id, or 0. */
static inline uint64_t wc_send_session_open(struct wclient *c, uint32_t max_tokens) {
  Realm__V1__SessionOpen so;
  realm__v1__session_open__init(&so);
  so.max_tokens = max_tokens;
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  req.body_case = REALM__V1__WORKER_REQUEST__BODY_SESSION_OPEN;
  req.session_open = &so;
  return wc_send(c, &req) < 0 ? 0 : req.request_id;
}

/* Opens a session; returns its id or 0 (and *ret_code the error code when given). */
static inline uint64_t wc_session_open(struct wclient *c, uint32_t max_tokens, int *ret_code) {
  uint64_t rid = wc_send_session_open(c, max_tokens);
  Realm__V1__WorkerReply *r = rid ? wc_recv_reply(c, rid) : NULL;
  uint64_t id = 0;
  int code = REALM_E_TIMEOUT;
  if (r && r->body_case == REALM__V1__WORKER_REPLY__BODY_SESSION_OPENED) {
    id = r->session_opened->session_id;
    code = 0;
  } else if (r && r->body_case == REALM__V1__WORKER_REPLY__BODY_ERROR) {
    code = realm_proto_error_code(r->error);
  }
  if (ret_code) *ret_code = code;
  realm_frame_msg_free(r ? &r->base : NULL);
  return id;
}

/* Sends SessionClose{sid} without waiting; returns the request id, or 0. */
static inline uint64_t wc_send_session_close(struct wclient *c, uint64_t sid) {
  Realm__V1__SessionClose sc;
  realm__v1__session_close__init(&sc);
  sc.session_id = sid;
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  req.body_case = REALM__V1__WORKER_REQUEST__BODY_SESSION_CLOSE;
  req.session_close = &sc;
  return wc_send(c, &req) < 0 ? 0 : req.request_id;
}

/* SessionClose round trip: 0 when SessionClosed came back, else the error code. */
static inline int wc_session_close(struct wclient *c, uint64_t sid) {
  uint64_t rid = wc_send_session_close(c, sid);
  Realm__V1__WorkerReply *r = rid ? wc_recv_reply(c, rid) : NULL;
  int rc = !r ? REALM_E_TIMEOUT
           : r->body_case == REALM__V1__WORKER_REPLY__BODY_SESSION_CLOSED ? 0
           : r->body_case == REALM__V1__WORKER_REPLY__BODY_ERROR ? realm_proto_error_code(r->error)
                                                                 : REALM_E_INTERNAL;
  realm_frame_msg_free(r ? &r->base : NULL);
  return rc;
}

/* GetRows: n rows of tensor (ids) into out (n x n_cols floats, n_cols checked against the
 * reply); returns 0 or the error code. Output at shm offset 0 in shm mode. */
static inline int wc_get_rows(struct wclient *c, const char *tensor, const int32_t *ids,
                              uint32_t n, float *out, uint32_t n_cols) {
  Realm__V1__GetRows g;
  realm__v1__get_rows__init(&g);
  g.tensor = (char *)tensor;
  g.n_rows = n;
  g.rows = (int32_t *)ids;
  g.output_offset = 0;
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  req.body_case = REALM__V1__WORKER_REQUEST__BODY_GET_ROWS;
  req.get_rows = &g;
  Realm__V1__WorkerReply *r = wc_call(c, &req);
  int rc = !r ? REALM_E_TIMEOUT
       : r->body_case == REALM__V1__WORKER_REPLY__BODY_ERROR ? realm_proto_error_code(r->error)
       : r->body_case != REALM__V1__WORKER_REPLY__BODY_GET_ROWS ? REALM_E_INTERNAL : 0;
  size_t bytes = sizeof(float) * n * n_cols;
  if (rc == 0 && (r->get_rows->n_rows != n || r->get_rows->n_cols != n_cols)) rc = REALM_E_INTERNAL;
  if (rc == 0) {
    if (c->shm) memcpy(out, c->base, bytes);
    else if (r->get_rows->output_inline.len == bytes) memcpy(out, r->get_rows->output_inline.data, bytes);
    else rc = REALM_E_INTERNAL;
  }
  realm_frame_msg_free(r ? &r->base : NULL);
  return rc;
}

/* Error code of a whole reply (0 when it is not an error). */
static inline int wc_reply_code(const Realm__V1__WorkerReply *r) {
  if (!r) return REALM_E_TIMEOUT;
  return r->body_case == REALM__V1__WORKER_REPLY__BODY_ERROR ? realm_proto_error_code(r->error) : 0;
}

/* Makes *req a Step request over *st, which holds entries[0..n) (then wc_send or wc_call). */
static inline void wc_step_request(Realm__V1__WorkerRequest *req, Realm__V1__Step *st,
                                   Realm__V1__StepEntry **entries, size_t n) {
  realm__v1__step__init(st);
  st->n_entries = n;
  st->entries = entries;
  realm__v1__worker_request__init(req);
  req->body_case = REALM__V1__WORKER_REQUEST__BODY_STEP;
  req->step = st;
}

/* Sends a one-entry Step on session sid: n tokens, n_logits rows of logits wanted. In shm
 * mode the tokens are copied to shm offset tok_off and the logits land at log_off; inline
 * mode sends the tokens in the message. Returns the request id, or -1. */
static inline int wc_send_step1(struct wclient *c, uint64_t sid, const int32_t *toks, uint32_t n,
                                uint32_t n_logits, uint64_t tok_off, uint64_t log_off) {
  Realm__V1__StepEntry e;
  realm__v1__step_entry__init(&e);
  e.session_id = sid;
  e.n_tokens = n;
  e.n_logits = n_logits;
  if (c->shm) {
    memcpy(c->base + tok_off, toks, sizeof(int32_t) * n);
    e.tokens_offset = tok_off;
    e.logits_offset = log_off;
  } else {
    e.n_tokens_inline = n;
    e.tokens_inline = (int32_t *)toks;
  }
  Realm__V1__StepEntry *ep = &e;
  Realm__V1__Step st;
  Realm__V1__WorkerRequest req;
  wc_step_request(&req, &st, &ep, 1);
  return wc_send(c, &req) < 0 ? -1 : (int)req.request_id;
}

/* The logits of entry 0 of a StepReply (one row of c->vocab floats, read from shm offset
 * log_off in shm mode) into out; returns 0 or the error code (the entry's, the reply's, or
 * REALM_E_INTERNAL for a malformed reply). */
static inline int wc_step_logits(struct wclient *c, const Realm__V1__WorkerReply *r,
                                 uint64_t log_off, float *out) {
  if (!r || r->body_case != REALM__V1__WORKER_REPLY__BODY_STEP)
    return wc_reply_code(r) ? wc_reply_code(r) : REALM_E_INTERNAL;
  if (r->step->n_results < 1) return REALM_E_INTERNAL;
  const Realm__V1__StepResult *res = r->step->results[0];
  if (res->error) return realm_proto_error_code(res->error);
  size_t bytes = sizeof(float) * c->vocab;
  if (c->shm) memcpy(out, c->base + log_off, bytes);
  else if (res->logits_inline.len == bytes) memcpy(out, res->logits_inline.data, bytes);
  else return REALM_E_INTERNAL;
  return 0;
}

/* One Step of n tokens on sid with the logits at shm offset 4096: 0 when a row of finite
 * logits came back (a torn region would show garbage), else the error code. */
static inline int wc_step_one(struct wclient *c, uint64_t sid, const int32_t *toks, uint32_t n) {
  int rid = wc_send_step1(c, sid, toks, n, 1, 0, 4096);
  Realm__V1__WorkerReply *r = rid < 0 ? NULL : wc_recv_reply(c, (uint64_t)rid);
  float *out = malloc(sizeof(float) * c->vocab);
  int rc = out ? wc_step_logits(c, r, 4096, out) : REALM_E_NOMEM;
  for (uint32_t i = 0; rc == 0 && i < c->vocab; i++)
    if (!isfinite(out[i])) rc = REALM_E_INTERNAL;
  free(out);
  realm_frame_msg_free(r ? &r->base : NULL);
  return rc;
}

#endif /* REALM_TEST_WCLIENT_H */
