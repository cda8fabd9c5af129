/*
 * steplane.c — the worker's end of the step lanes (realm/lane.h, docs/protocol.md §6.2).
 *
 * A connection that asked for a lane at Hello gets REALM_LANE_BYTES after the data part of
 * its region and two eventfd doorbells. Its runner may put a Step there instead of on the
 * ROUTER; the worker takes it, dispatches it exactly like a ROUTER message (worker_dispatch),
 * and the one reply it gets goes back through the lane (worker_send_reply asks
 * lane_owns_reply). What the lane buys is wake-ups: a ZeroMQ message crosses libzmq's I/O
 * threads on both sides, the lane crosses nothing, and after a pass the loop spins up to
 * --spin-us watching the lanes (lane_spin), so a decoding runner's next Step is picked up
 * from memory without anyone sleeping.
 *
 * Invariants:
 *  1. A lane carries Steps only; anything else taken from it is answered through it with
 *     protocol_error, as is a frame that fails to decode.
 *  2. One request per lane at a time (lane.busy from take to reply); the runner posts the
 *     next only after it took the reply, and a Step of the ROUTER never shares the lane.
 *  3. Every doorbell is in lane_epoll under its own fd and leaves it (EPOLL_CTL_DEL) before
 *     it is closed: the runner holds the same file, so closing alone would not remove it.
 *  4. The lane is read only through realm_lane_take_request, which copies it out first.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <zmq.h>

#include "internal.h"
#include "realm/log.h"

int lane_init(struct worker *w, char *err, size_t errlen) {
  w->lane_epoll = epoll_create1(EPOLL_CLOEXEC);
  if (w->lane_epoll < 0) {
    snprintf(err, errlen, "step lanes: epoll_create1: %s", strerror(errno));
    return REALM_E_SYSTEM;
  }
  return 0;
}

void lane_fini(struct worker *w) {
  if (w->lane_epoll >= 0) close(w->lane_epoll);
  w->lane_epoll = -1;
}

int lane_open(struct worker *w, struct worker_conn *c, uint64_t data_bytes, char *err,
              size_t errlen) {
  int fds[2];
  int rc = realm_lane_doorbells_new(fds, err, errlen);
  if (rc < 0) return rc;
  rc = realm_lane_attach(&c->lane, (uint8_t *)realm_shm_data(c->shm) + data_bytes, fds[0],
                         fds[1], err, errlen);
  if (rc < 0) return rc;
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = c->lane.to_worker};
  if (epoll_ctl(w->lane_epoll, EPOLL_CTL_ADD, c->lane.to_worker, &ev) != 0) {
    snprintf(err, errlen, "step lane: epoll_ctl: %s", strerror(errno));
    realm_lane_detach(&c->lane);
    return REALM_E_SYSTEM;
  }
  return 0;
}

void lane_close(struct worker *w, struct worker_conn *c) {
  if (!realm_lane_on(&c->lane)) return;
  epoll_ctl(w->lane_epoll, EPOLL_CTL_DEL, c->lane.to_worker, NULL);
  realm_lane_detach(&c->lane);
  c->lane_rid = 0;
}

void lane_clear_doorbells(struct worker *w) {
  struct epoll_event evs[64];
  for (int round = 0; round < 64; round++) {
    int n = epoll_wait(w->lane_epoll, evs, 64, 0);
    for (int i = 0; i < n; i++) realm_lane_clear(evs[i].data.fd);
    if (n < 64) return;
  }
}

/* Answers the lane's taken request with an error (invariant 1), through the one error path:
 * worker_send_reply sees lane_rid and puts it in the lane. */
static void lane_refuse(struct worker *w, struct worker_conn *c, uint64_t request_id, int code,
                        const char *message) {
  c->lane_rid = request_id;
  worker_reply_error(w, &c->peer, request_id, code, message, "step_lane");
}

uint32_t lane_poll(struct worker *w) {
  uint32_t taken = 0;
  for (uint32_t i = 0; i < w->n_conns; i++) {
    struct worker_conn *c = w->conns[i];
    if (c->dead || !realm_lane_request_ready(&c->lane)) continue;
    ProtobufCMessage *m = NULL;
    char err[256];
    int rc = realm_lane_take_request(&c->lane, &realm__v1__worker_request__descriptor, &m, err,
                                     sizeof err);
    if (rc == REALM_E_TIMEOUT) continue;
    taken++;
    c->last_seen_ns = worker_now_ns();
    if (rc < 0) {
      realm_log_info("step lane frame refused", RLOG_ERR(rc), RLOG_STR("detail", err),
                     RLOG_UINT("conn", c->id));
      lane_refuse(w, c, 0, rc, err);
      continue;
    }
    Realm__V1__WorkerRequest *req = (Realm__V1__WorkerRequest *)m;
    if (req->body_case != REALM__V1__WORKER_REQUEST__BODY_STEP) {
      lane_refuse(w, c, req->request_id, REALM_E_PROTOCOL,
                  "the step lane carries Step requests only; send the rest on the socket");
    } else {
      c->lane_rid = req->request_id;
      w->stats.lane_steps++;
      /* The connection cannot go away inside: a failed reply only marks it dead. */
      worker_dispatch(w, &c->peer, req);
    }
    realm_frame_msg_free(m);
  }
  return taken;
}

bool lane_owns_reply(const struct worker_conn *c, const Realm__V1__WorkerReply *reply) {
  return realm_lane_on(&c->lane) && c->lane.busy && reply->request_id == c->lane_rid;
}

bool lane_reply(struct worker_conn *c, Realm__V1__WorkerReply *reply) {
  char err[256];
  int rc = realm_lane_put_reply(&c->lane, &reply->base, err, sizeof err);
  c->lane_rid = 0;
  if (rc == 0) return true;
  /* Too large for the slot (many entries failing with long messages): the lane is free
   * again and the runner also takes its Step's reply from the socket. */
  realm_log_debug("step reply sent on the socket", RLOG_ERR(rc), RLOG_STR("detail", err),
                  RLOG_UINT("conn", c->id));
  return false;
}

/* Yields between checks rather than pausing: the runner this pass just answered was most
 * likely woken onto this very CPU (the engine's helpers keep the others busy for a while,
 * threadpool.c), and a spinner that does not yield keeps it off the CPU until the spinner's
 * time slice ends, which on Linux's EEVDF can be the whole spin. */
bool lane_spin(struct worker *w, void *router, int64_t until) {
  zmq_pollitem_t it = {.socket = router, .events = ZMQ_POLLIN};
  for (;;) {
    if (lane_poll(w) > 0) return true;
    if (zmq_poll(&it, 1, 0) > 0) return true;
    if (worker_now_ns() >= until) return false;
    sched_yield();
  }
}
