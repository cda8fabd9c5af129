/*
 * runner_worker.c — the runner's link to realm-worker: DEALER, Hello, memfd handshake, and
 * noticing that the worker went away.
 *
 * The DEALER is created with ZMQ_RECONNECT_IVL -1: libzmq must never reconnect on its own,
 * because a reconnect calls socket() and connect() in libzmq's I/O thread, which the jail
 * forbids (the process would die with SIGSYS at a random moment). Instead a socket monitor
 * tells the loop that the connection dropped; the loop fails the in-flight requests with
 * "unavailable" and either builds a new connection (not jailed) or exits for its supervisor
 * to restart it (jailed). For the same reason set-up retries by making a fresh socket until
 * the worker answers: a connect to an ipc:// path that does not exist yet is never retried.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "realm/frame.h"
#include "realm/limits.h"
#include "runner_internal.h"

#define HELLO_ATTEMPT_MS 500
#define SHM_HANDSHAKE_MS 5000

int64_t runner_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t align64(uint64_t x) {
  return (x + REALM_PROTOCOL_SHM_ALIGN - 1) / REALM_PROTOCOL_SHM_ALIGN * REALM_PROTOCOL_SHM_ALIGN;
}

void runner_worker_close(struct runner *r) {
  if (r->mon) {
    zmq_close(r->mon);
    r->mon = NULL;
  }
  if (r->wk) {
    zmq_socket_monitor(r->wk, NULL, 0);
    realm_ipc_socket_close(r->wk);
    r->wk = NULL;
  }
  realm_lane_detach(&r->lane);
  realm_shm_destroy(r->shm);
  r->shm = NULL;
  r->worker_up = false;
}

int runner_worker_send(struct runner *r, Realm__V1__WorkerRequest *req, char *err,
                       size_t errlen) {
  if (!r->wk) {
    snprintf(err, errlen, "worker is not connected");
    return REALM_E_UNAVAILABLE;
  }
  /* A Step takes the step lane when there is one and it is free; one that does not fit its
   * slot goes on the socket like everything else. */
  if (req->body_case == REALM__V1__WORKER_REQUEST__BODY_STEP && realm_lane_on(&r->lane) &&
      !r->lane.busy && realm_lane_post(&r->lane, &req->base, err, errlen) == 0)
    return REALM_OK;
  return realm_ipc_send(r->wk, NULL, REALM_FRAME_WORKER_REQUEST, &req->base, ZMQ_DONTWAIT, err,
                        errlen);
}

bool runner_worker_disconnected(struct runner *r) {
  if (!r->mon) return r->wk == NULL;
  bool gone = false;
  for (int i = 0; i < 64; i++) {
    zmq_msg_t part;
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, r->mon, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&part);
      break;
    }
    /* Frame 1: u16 event, u32 value; frame 2: endpoint. Only DISCONNECTED is subscribed. */
    if (zmq_msg_size(&part) >= 2) {
      uint16_t ev;
      memcpy(&ev, zmq_msg_data(&part), 2);
      if (ev == ZMQ_EVENT_DISCONNECTED) gone = true;
    }
    int more = zmq_msg_more(&part);
    zmq_msg_close(&part);
    while (more) {
      zmq_msg_init(&part);
      if (zmq_msg_recv(&part, r->mon, ZMQ_DONTWAIT) < 0) more = 0;
      else more = zmq_msg_more(&part);
      zmq_msg_close(&part);
    }
  }
  return gone;
}

/* Makes a fresh DEALER (no auto-reconnect) with a monitor and connects it. */
static int open_dealer(struct runner *r, char *err, size_t errlen) {
  int rc = realm_ipc_socket_new(r->zctx, ZMQ_DEALER,
                                REALM_MAX_FRAME_BYTES + REALM_MAX_INLINE_TENSOR_BYTES, &r->wk, err,
                                errlen);
  if (rc < 0) return rc;
  int no_reconnect = -1;
  zmq_setsockopt(r->wk, ZMQ_RECONNECT_IVL, &no_reconnect, sizeof no_reconnect);
  char mon_ep[64];
  snprintf(mon_ep, sizeof mon_ep, "inproc://runner-worker-monitor-%u", r->mon_seq++);
  if (zmq_socket_monitor(r->wk, mon_ep, ZMQ_EVENT_DISCONNECTED) != 0 ||
      !(r->mon = zmq_socket(r->zctx, ZMQ_PAIR)) || zmq_connect(r->mon, mon_ep) != 0) {
    snprintf(err, errlen, "worker socket monitor: %s", zmq_strerror(zmq_errno()));
    runner_worker_close(r);
    return REALM_E_SYSTEM;
  }
  if (zmq_connect(r->wk, r->cfg.worker_endpoint) != 0) {
    snprintf(err, errlen, "--worker %s: %s", r->cfg.worker_endpoint, zmq_strerror(zmq_errno()));
    runner_worker_close(r);
    return REALM_E_INVALID_ARGUMENT;
  }
  return REALM_OK;
}

/* Fetches the memfd over the worker's seqpacket side socket (docs/protocol.md §6.1). */
static int fetch_region(struct runner *r, const char *path, const ProtobufCBinaryData *token,
                        uint64_t bytes, uint64_t lane_offset, char *err, size_t errlen) {
  if (token->len != REALM_SHM_TOKEN_BYTES) {
    snprintf(err, errlen, "HelloReply.shm_token has %zu bytes, expected %d", token->len,
             REALM_SHM_TOKEN_BYTES);
    return REALM_E_PROTOCOL;
  }
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (!path || !path[0] || strlen(path) >= sizeof sa.sun_path) {
    snprintf(err, errlen, "shared-memory socket path '%s' is empty or too long", path ? path : "");
    return REALM_E_INVALID_ARGUMENT;
  }
  strcpy(sa.sun_path, path);
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0) {
    snprintf(err, errlen, "socket(AF_UNIX, SOCK_SEQPACKET): %s", strerror(errno));
    return REALM_E_SYSTEM;
  }
  struct timeval tv = {.tv_sec = SHM_HANDSHAKE_MS / 1000, .tv_usec = 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
    snprintf(err, errlen, "connecting to the worker's shared-memory socket %s: %s", path,
             strerror(errno));
    close(s);
    return REALM_E_UNAVAILABLE;
  }
  int rc = realm_fd_send(s, -1, token->data, token->len, err, errlen);
  int fd = -1;
  uint8_t reply[16];
  size_t n = 0;
  if (rc == 0) rc = realm_fd_recv(s, &fd, reply, sizeof reply, &n, err, errlen);
  if (rc == 0 && (fd < 0 || n != 8)) {
    if (fd >= 0) close(fd);
    snprintf(err, errlen, "shared-memory handshake: expected 8 bytes and an fd, got %zu bytes%s",
             n, fd < 0 ? " and no fd" : "");
    rc = REALM_E_PROTOCOL;
  }
  if (rc == 0) {
    rc = realm_shm_from_fd(fd, bytes, true, &r->shm, err, errlen);
    if (rc < 0) close(fd);
  }
  /* The step lane's doorbells follow the region on the same socket. */
  if (rc == 0 && lane_offset) rc = realm_lane_adopt(&r->lane, r->shm, lane_offset, s, err, errlen);
  close(s);
  return rc;
}

/* Takes the HelloReply's facts and lays out the shared region. */
static int adopt_hello(struct runner *r, const Realm__V1__HelloReply *h, char *err,
                       size_t errlen) {
  const Realm__V1__ModelInfo *m = h->model;
  if (!m || m->vocab_size == 0 || m->vocab_size > REALM_MAX_VOCAB || m->n_ctx == 0) {
    snprintf(err, errlen, "HelloReply.model is missing or has vocab_size %u, n_ctx %u",
             m ? m->vocab_size : 0, m ? m->n_ctx : 0);
    return REALM_E_PROTOCOL;
  }
  if (r->vocab && r->vocab->n_tokens != m->vocab_size) {
    snprintf(err, errlen, "--vocab has %u tokens but the worker's model '%s' has %u: wrong file",
             r->vocab->n_tokens, m->name ? m->name : "", m->vocab_size);
    return REALM_E_BAD_MODEL;
  }
  r->connection_id = h->connection_id;
  r->vocab_size = m->vocab_size;
  r->n_ctx = m->n_ctx;
  r->n_embd = m->n_embd;
  r->n_layer = m->n_layer;
  r->bos = m->bos_token_id;
  r->eos = m->eos_token_id;
  snprintf(r->arch, sizeof r->arch, "%s", m->architecture ? m->architecture : "");
  r->max_batch_seqs = h->max_batch_seqs ? h->max_batch_seqs : 1;
  if (r->max_batch_seqs > REALM_MAX_BATCH_SEQS) r->max_batch_seqs = REALM_MAX_BATCH_SEQS;
  r->max_step_tokens = h->max_step_tokens ? h->max_step_tokens : 1;
  if (r->max_step_tokens > REALM_MAX_STEP_TOKENS) r->max_step_tokens = REALM_MAX_STEP_TOKENS;
  r->max_sessions = h->max_sessions;
  r->row_bytes = align64((uint64_t)r->vocab_size * sizeof(float));
  r->tokens_off = 0;
  r->tokens_bytes = align64((uint64_t)r->max_step_tokens * sizeof(int32_t) +
                            (uint64_t)r->max_batch_seqs * REALM_PROTOCOL_SHM_ALIGN);
  r->logits_off = r->tokens_bytes;
  uint32_t rows = r->max_batch_seqs;
  if (r->shm) {
    /* The step lane, when granted, follows the data: it is not ours to lay out. */
    uint64_t size = realm_lane_on(&r->lane) ? h->step_lane_offset : realm_shm_size(r->shm);
    uint64_t fit = size > r->tokens_bytes ? (size - r->tokens_bytes) / r->row_bytes : 0;
    if (fit == 0) {
      snprintf(err, errlen, "shared region of %llu bytes cannot hold one logits row of %llu bytes "
               "after %llu bytes of tokens: raise --shm-size", (unsigned long long)size,
               (unsigned long long)r->row_bytes, (unsigned long long)r->tokens_bytes);
      return REALM_E_TOO_LARGE;
    }
    if (fit < rows) rows = (uint32_t)fit;
  }
  if ((uint64_t)rows > (uint64_t)r->cfg.max_inflight) rows = (uint32_t)r->cfg.max_inflight;
  r->n_rows = rows;
  return REALM_OK;
}

/* One Hello attempt on a fresh socket; REALM_E_TIMEOUT when no answer within attempt_ms. */
static int hello_once(struct runner *r, int64_t attempt_ms, bool want_shm, char *err,
                      size_t errlen) {
  int rc = open_dealer(r, err, errlen);
  if (rc < 0) return rc;
  Realm__V1__Hello hello;
  realm__v1__hello__init(&hello);
  hello.tenant_id = (char *)r->cfg.tenant_id;
  hello.replica_id = (char *)r->cfg.replica_id;
  hello.weight = (uint32_t)r->cfg.weight;
  hello.kv_quota_tokens = r->cfg.kv_quota;
  hello.wants_shm = want_shm && r->cfg.shm_bytes > 0;
  hello.shm_bytes = hello.wants_shm ? r->cfg.shm_bytes : 0;
  hello.wants_step_lane = hello.wants_shm;
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  uint64_t wid = r->next_wid++;
  req.request_id = wid;
  req.body_case = REALM__V1__WORKER_REQUEST__BODY_HELLO;
  req.hello = &hello;
  /* ZMQ_IMMEDIATE: a blocking send waits for the connection; bound it. */
  int sndtimeo = (int)attempt_ms;
  zmq_setsockopt(r->wk, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo);
  int64_t deadline = runner_now_ms() + attempt_ms;
  rc = realm_ipc_send(r->wk, NULL, REALM_FRAME_WORKER_REQUEST, &req.base, 0, err, errlen);
  if (rc < 0) goto fail;
  for (;;) {
    int64_t left = deadline - runner_now_ms();
    if (left <= 0) {
      snprintf(err, errlen, "no HelloReply from the worker at %s", r->cfg.worker_endpoint);
      rc = REALM_E_TIMEOUT;
      goto fail;
    }
    zmq_pollitem_t item = {.socket = r->wk, .events = ZMQ_POLLIN};
    if (zmq_poll(&item, 1, (long)left) <= 0) continue;
    ProtobufCMessage *m = NULL;
    rc = realm_ipc_recv(r->wk, NULL, REALM_FRAME_WORKER_REPLY,
                        &realm__v1__worker_reply__descriptor,
                        REALM_MAX_FRAME_BYTES + REALM_MAX_INLINE_TENSOR_BYTES, ZMQ_DONTWAIT, &m,
                        err, errlen);
    if (rc == REALM_E_TIMEOUT) continue;
    if (rc < 0) goto fail;
    Realm__V1__WorkerReply *rep = (Realm__V1__WorkerReply *)m;
    if (rep->request_id != wid) { /* a stale reply; not ours */
      realm_frame_msg_free(m);
      continue;
    }
    if (rep->body_case == REALM__V1__WORKER_REPLY__BODY_ERROR) {
      rc = realm_proto_error_code(rep->error);
      snprintf(err, errlen, "worker refused Hello: %s: %s", realm_err_name(rc),
               rep->error && rep->error->message ? rep->error->message : "");
      realm_frame_msg_free(m);
      goto fail;
    }
    if (rep->body_case != REALM__V1__WORKER_REPLY__BODY_HELLO || !rep->hello) {
      snprintf(err, errlen, "worker answered Hello with body %d", (int)rep->body_case);
      realm_frame_msg_free(m);
      rc = REALM_E_PROTOCOL;
      goto fail;
    }
    const Realm__V1__HelloReply *h = rep->hello;
    rc = REALM_OK;
    if (hello.wants_shm && h->shm_bytes > 0) {
      const char *path = r->cfg.worker_shm && r->cfg.worker_shm[0] ? r->cfg.worker_shm
                                                                   : h->shm_socket_path;
      rc = fetch_region(r, path, &h->shm_token, h->shm_bytes, h->step_lane_offset, err, errlen);
    }
    if (rc == REALM_OK) rc = adopt_hello(r, h, err, errlen);
    realm_frame_msg_free(m);
    if (rc < 0) goto fail;
    int never = -1;
    zmq_setsockopt(r->wk, ZMQ_SNDTIMEO, &never, sizeof never);
    r->worker_up = true;
    return REALM_OK;
  }
fail:
  runner_worker_close(r);
  return rc;
}

int runner_worker_connect(struct runner *r, int64_t timeout_ms, char *err, size_t errlen) {
  runner_worker_close(r);
  int64_t deadline = runner_now_ms() + timeout_ms;
  int rc;
  for (;;) {
    int64_t left = deadline - runner_now_ms();
    int64_t attempt = left < HELLO_ATTEMPT_MS ? left : HELLO_ATTEMPT_MS;
    if (attempt < 1) attempt = 1;
    /* A jailed runner cannot connect the side socket: it asks for inline tensors. */
    rc = hello_once(r, attempt, !r->jailed, err, errlen);
    if (rc != REALM_E_TIMEOUT || runner_now_ms() >= deadline) return rc;
  }
}
