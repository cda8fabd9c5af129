/*
 * test_ipc.c — frames over a real ZeroMQ ROUTER/DEALER pair: a good request round trips with
 * the sender's routing id; a bad one (garbage, another version, extra parts, too large) is
 * refused with the sender known, answered with an error reply the peer can read, and the
 * next good message still goes through. Receives use a 5 s ZMQ_RCVTIMEO only as a guard
 * against hanging on a failure; nothing waits on time to synchronise.
 */
#include "realm/ipc.h"

#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "realm/error.h"
#include "realm/frame.h"
#include "realm/proto.h"
#include "realm_test.h"

struct pair {
  void *ctx;
  void *router;
  void *dealer;
  char dir[64];
  char endpoint[128];
};

/* A worker-shaped ROUTER bound on `transport` ("inproc" or "ipc") and a runner-shaped DEALER
 * connected to it. Returns 0 on success. */
static int pair_open(struct pair *p, const char *transport, size_t max_payload) {
  char err[256];
  memset(p, 0, sizeof *p);
  if (realm_ipc_ctx_new(&p->ctx, err, sizeof err) != 0) return -1; /* the daemons' context */
  if (realm_ipc_socket_new(p->ctx, ZMQ_ROUTER, max_payload, &p->router, err, sizeof err) != 0 ||
      realm_ipc_socket_new(p->ctx, ZMQ_DEALER, max_payload, &p->dealer, err, sizeof err) != 0) {
    printf("# socket: %s\n", err);
    return -1;
  }
  int guard_ms = 5000;
  zmq_setsockopt(p->router, ZMQ_RCVTIMEO, &guard_ms, sizeof guard_ms);
  zmq_setsockopt(p->dealer, ZMQ_RCVTIMEO, &guard_ms, sizeof guard_ms);
  if (strcmp(transport, "ipc") == 0) {
    snprintf(p->dir, sizeof p->dir, "/tmp/realm-ipc-XXXXXX");
    if (!mkdtemp(p->dir)) return -1;
    if (realm_ipc_endpoint(p->endpoint, sizeof p->endpoint, p->dir, "worker.sock", err,
                           sizeof err) != 0)
      return -1;
  } else {
    snprintf(p->endpoint, sizeof p->endpoint, "inproc://realm-test-%p", (void *)p);
  }
  if (zmq_bind(p->router, p->endpoint) != 0) return -1;
  if (zmq_connect(p->dealer, p->endpoint) != 0) return -1;
  return 0;
}

static void pair_close(struct pair *p) {
  realm_ipc_socket_close(p->dealer);
  realm_ipc_socket_close(p->router);
  if (p->ctx) zmq_ctx_term(p->ctx);
  if (p->dir[0]) {
    char path[200];
    snprintf(path, sizeof path, "%s/worker.sock", p->dir);
    unlink(path);
    rmdir(p->dir);
  }
}

static int send_stats_request(void *dealer, uint64_t request_id) {
  Realm__V1__StatsRequest st;
  realm__v1__stats_request__init(&st);
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  req.request_id = request_id;
  req.body_case = REALM__V1__WORKER_REQUEST__BODY_STATS;
  req.stats = &st;
  char err[256];
  return realm_ipc_send(dealer, NULL, REALM_FRAME_WORKER_REQUEST, &req.base, 0, err, sizeof err);
}

/* Router side: receive a WorkerRequest; returns its request_id or -(realm code). */
static long long router_recv_request(void *router, realm_ipc_peer *from, char *err,
                                     size_t errlen) {
  ProtobufCMessage *m = NULL;
  int r = realm_ipc_recv(router, from, REALM_FRAME_WORKER_REQUEST,
                         &realm__v1__worker_request__descriptor, 0, 0, &m, err, errlen);
  if (r < 0) return r;
  long long id = (long long)((Realm__V1__WorkerRequest *)m)->request_id;
  realm_frame_msg_free(m);
  return id;
}

/* Dealer side: receive a WorkerReply; stores the request id and the error code (0 if none). */
static int dealer_recv_reply(void *dealer, uint64_t *ret_id, int *ret_code, char *msg,
                             size_t msglen) {
  ProtobufCMessage *m = NULL;
  char err[256];
  int r = realm_ipc_recv(dealer, NULL, REALM_FRAME_WORKER_REPLY,
                         &realm__v1__worker_reply__descriptor, 0, 0, &m, err, sizeof err);
  if (r < 0) {
    snprintf(msg, msglen, "%s", err);
    return r;
  }
  Realm__V1__WorkerReply *rep = (Realm__V1__WorkerReply *)m;
  *ret_id = rep->request_id;
  *ret_code = rep->body_case == REALM__V1__WORKER_REPLY__BODY_ERROR
                  ? realm_proto_error_code(rep->error)
                  : 0;
  snprintf(msg, msglen, "%s",
           rep->body_case == REALM__V1__WORKER_REPLY__BODY_ERROR ? rep->error->message : "");
  realm_frame_msg_free(m);
  return 0;
}

static int reply_stats(void *router, const realm_ipc_peer *to, uint64_t request_id) {
  Realm__V1__StatsReply st;
  realm__v1__stats_reply__init(&st);
  st.steps_total = 99;
  st.backend = "cpu";
  Realm__V1__WorkerReply rep;
  realm__v1__worker_reply__init(&rep);
  rep.request_id = request_id;
  rep.body_case = REALM__V1__WORKER_REPLY__BODY_STATS;
  rep.stats = &st;
  char err[256];
  return realm_ipc_send(router, to, REALM_FRAME_WORKER_REPLY, &rep.base, 0, err, sizeof err);
}

/* Checks one full good exchange on the pair; returns 0 when it worked. */
static int good_exchange(struct pair *p, uint64_t id) {
  char err[256];
  realm_ipc_peer from;
  if (send_stats_request(p->dealer, id) != 0) return -1;
  long long got = router_recv_request(p->router, &from, err, sizeof err);
  if (got != (long long)id || from.len == 0) {
    printf("# router got %lld: %s\n", got, err);
    return -2;
  }
  if (reply_stats(p->router, &from, id) != 0) return -3;
  uint64_t rid = 0;
  int code = -1;
  if (dealer_recv_reply(p->dealer, &rid, &code, err, sizeof err) != 0 || rid != id || code != 0)
    return -4;
  return 0;
}

TEST(ipc_round_trip_over_ipc_socket_in_tempdir) {
  struct pair p;
  int r = pair_open(&p, "ipc", 0);
  int ex = r == 0 ? good_exchange(&p, 1) : -100;
  int ex2 = r == 0 ? good_exchange(&p, 2) : -100;
  pair_close(&p);
  CHECK_EQ_INT(r, 0);
  CHECK_EQ_INT(ex, 0);
  CHECK_EQ_INT(ex2, 0);
}

TEST(ipc_garbage_gets_error_reply_and_next_message_works) {
  struct pair p;
  CHECK_EQ_INT(pair_open(&p, "inproc", 0), 0);
  const char junk[] = "GET / HTTP/1.1\r\n\r\n";
  int sent = zmq_send(p.dealer, junk, sizeof junk - 1, 0);
  char err[256] = "";
  realm_ipc_peer from;
  memset(&from, 0, sizeof from);
  long long got = router_recv_request(p.router, &from, err, sizeof err);
  char err2[256];
  int rs = realm_proto_send_frame_error(p.router, &from, REALM_FRAME_WORKER_REQUEST, (int)got,
                                        err, err2, sizeof err2);
  uint64_t rid = 77;
  int code = 0;
  char msg[256] = "";
  int rr = dealer_recv_reply(p.dealer, &rid, &code, msg, sizeof msg);
  int ex = good_exchange(&p, 3);
  pair_close(&p);
  CHECK(sent > 0);
  CHECK_EQ_INT(got, REALM_E_PROTOCOL);
  CHECK(from.len > 0); /* the sender is known even though its message was refused */
  CHECK_STR_CONTAINS(err, "magic");
  CHECK_EQ_INT(rs, 0);
  CHECK_EQ_INT(rr, 0);
  CHECK_EQ_INT(rid, 0);
  CHECK_EQ_INT(code, REALM_E_PROTOCOL);
  CHECK_STR_CONTAINS(msg, "magic");
  CHECK_EQ_INT(ex, 0);
}

TEST(ipc_wrong_version_is_refused_on_both_sides) {
  struct pair p;
  CHECK_EQ_INT(pair_open(&p, "inproc", 0), 0);
  /* A frame from a "version 7" peer: valid in every other way. */
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  req.request_id = 5;
  uint8_t buf[64];
  size_t len = 0;
  int re = realm_frame_encode(REALM_FRAME_WORKER_REQUEST, &req.base, buf, sizeof buf, &len, NULL,
                              0);
  buf[4] = 7;
  zmq_send(p.dealer, buf, len, 0);
  char err[256] = "";
  realm_ipc_peer from;
  long long got = router_recv_request(p.router, &from, err, sizeof err);
  int rs = realm_proto_send_frame_error(p.router, &from, REALM_FRAME_WORKER_REQUEST, (int)got,
                                        err, NULL, 0);
  /* The reply is of this build's version; a v7 peer would refuse it naming both versions.
   * Here the dealer is of this build, so it reads the version_mismatch error. */
  uint64_t rid = 1;
  int code = 0;
  char msg[256] = "";
  int rr = dealer_recv_reply(p.dealer, &rid, &code, msg, sizeof msg);
  int ex = good_exchange(&p, 4);
  pair_close(&p);
  CHECK_EQ_INT(re, 0);
  CHECK_EQ_INT(got, REALM_E_VERSION);
  CHECK_STR_EQ(err, "peer speaks protocol 7, this build speaks 1");
  CHECK_EQ_INT(rs, 0);
  CHECK_EQ_INT(rr, 0);
  CHECK_EQ_INT(code, REALM_E_VERSION);
  CHECK_STR_EQ(msg, "peer speaks protocol 7, this build speaks 1");
  CHECK_EQ_INT(ex, 0);
}

TEST(ipc_extra_parts_are_drained) {
  struct pair p;
  CHECK_EQ_INT(pair_open(&p, "inproc", 0), 0);
  /* A DEALER that sends [frame][frame][frame]: the ROUTER sees 4 parts. */
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  uint8_t buf[64];
  size_t len = 0;
  realm_frame_encode(REALM_FRAME_WORKER_REQUEST, &req.base, buf, sizeof buf, &len, NULL, 0);
  zmq_send(p.dealer, buf, len, ZMQ_SNDMORE);
  zmq_send(p.dealer, buf, len, ZMQ_SNDMORE);
  zmq_send(p.dealer, buf, len, 0);
  char err[256] = "";
  realm_ipc_peer from;
  long long got = router_recv_request(p.router, &from, err, sizeof err);
  /* The ROUTER answers with a 3-part message; the DEALER refuses it the same way. */
  Realm__V1__WorkerReply rep;
  realm__v1__worker_reply__init(&rep);
  uint8_t rbuf[64];
  size_t rlen = 0;
  realm_frame_encode(REALM_FRAME_WORKER_REPLY, &rep.base, rbuf, sizeof rbuf, &rlen, NULL, 0);
  zmq_send(p.router, from.id, from.len, ZMQ_SNDMORE);
  zmq_send(p.router, rbuf, rlen, ZMQ_SNDMORE);
  zmq_send(p.router, rbuf, rlen, 0);
  uint64_t rid = 0;
  int code = 0;
  char derr[256] = "";
  int rd = dealer_recv_reply(p.dealer, &rid, &code, derr, sizeof derr);
  int ex = good_exchange(&p, 6);
  pair_close(&p);
  CHECK_EQ_INT(got, REALM_E_PROTOCOL);
  CHECK_STR_EQ(err, "message has 4 parts, expected 2 ([routing id][frame])");
  CHECK_EQ_INT(rd, REALM_E_PROTOCOL);
  CHECK_STR_EQ(derr, "message has 2 parts, expected 1 ([frame])");
  CHECK_EQ_INT(ex, 0);
}

TEST(ipc_receive_limit_refuses_large_frame_and_recovers) {
  struct pair p;
  CHECK_EQ_INT(pair_open(&p, "inproc", 0), 0);
  /* A 4 KiB inline logits reply is fine on the socket (16 MiB cap) but above the 1 KiB the
   * receiver asks for. */
  static uint8_t logits[4096];
  Realm__V1__StepResult res;
  realm__v1__step_result__init(&res);
  res.logits_inline.data = logits;
  res.logits_inline.len = sizeof logits;
  Realm__V1__StepResult *results[1] = {&res};
  Realm__V1__StepReply sr;
  realm__v1__step_reply__init(&sr);
  sr.n_results = 1;
  sr.results = results;
  Realm__V1__WorkerReply rep;
  realm__v1__worker_reply__init(&rep);
  rep.request_id = 8;
  rep.body_case = REALM__V1__WORKER_REPLY__BODY_STEP;
  rep.step = &sr;
  char err[256] = "";
  realm_ipc_peer from;
  int s1 = send_stats_request(p.dealer, 8);
  long long got = router_recv_request(p.router, &from, err, sizeof err);
  int s2 = realm_ipc_send(p.router, &from, REALM_FRAME_WORKER_REPLY, &rep.base, 0, err,
                          sizeof err);
  ProtobufCMessage *m = NULL;
  char rerr[256] = "";
  int rr = realm_ipc_recv(p.dealer, NULL, REALM_FRAME_WORKER_REPLY,
                          &realm__v1__worker_reply__descriptor, 1024, 0, &m, rerr, sizeof rerr);
  int ex = good_exchange(&p, 9);
  pair_close(&p);
  CHECK_EQ_INT(s1, 0);
  CHECK_EQ_INT(got, 8);
  CHECK_EQ_INT(s2, 0);
  CHECK_EQ_INT(rr, REALM_E_TOO_LARGE);
  CHECK(m == NULL);
  CHECK_STR_CONTAINS(rerr, "limit of 1024");
  CHECK_EQ_INT(ex, 0);
}

TEST(ipc_router_send_to_gone_peer_is_unavailable) {
  struct pair p;
  CHECK_EQ_INT(pair_open(&p, "inproc", 0), 0);
  realm_ipc_peer nobody = {.len = 5, .id = {0, 1, 2, 3, 4}};
  Realm__V1__WorkerReply rep;
  realm__v1__worker_reply__init(&rep);
  char err[256] = "";
  int r = realm_ipc_send(p.router, &nobody, REALM_FRAME_WORKER_REPLY, &rep.base, 0, err,
                         sizeof err);
  pair_close(&p);
  CHECK_EQ_INT(r, REALM_E_UNAVAILABLE);
  CHECK_STR_CONTAINS(err, "peer is gone");
}

TEST(ipc_empty_nonblocking_receive_is_timeout) {
  struct pair p;
  CHECK_EQ_INT(pair_open(&p, "inproc", 0), 0);
  ProtobufCMessage *m = NULL;
  realm_ipc_peer from = {.len = 123};
  char err[256] = "";
  int r = realm_ipc_recv(p.router, &from, REALM_FRAME_WORKER_REQUEST,
                         &realm__v1__worker_request__descriptor, 0, ZMQ_DONTWAIT, &m, err,
                         sizeof err);
  pair_close(&p);
  CHECK_EQ_INT(r, REALM_E_TIMEOUT);
  CHECK(m == NULL);
  CHECK_EQ_INT(from.len, 123); /* untouched: nothing was received */
}

TEST(ipc_runner_error_helpers_build_readable_events) {
  struct pair p;
  CHECK_EQ_INT(pair_open(&p, "inproc", 0), 0);
  /* The pair is worker-shaped; only the envelopes matter here: the ROUTER learns the
   * DEALER's routing id from one request, then sends it the two kinds of runner error. */
  char err[256] = "";
  realm_ipc_peer from;
  int s = send_stats_request(p.dealer, 1);
  long long got = router_recv_request(p.router, &from, err, sizeof err);
  int e1 = realm_proto_send_runner_error(p.router, &from, "req-42", REALM_E_INVALID_ARGUMENT,
                                         "temperature 9 is above 2", "temperature", err,
                                         sizeof err);
  int e2 = realm_proto_send_runner_error(p.router, &from, NULL, REALM_E_UNAVAILABLE, NULL, NULL,
                                         err, sizeof err);
  ProtobufCMessage *m1 = NULL, *m2 = NULL;
  int r1 = realm_ipc_recv(p.dealer, NULL, REALM_FRAME_RUNNER_EVENT,
                          &realm__v1__runner_event__descriptor, 0, 0, &m1, err, sizeof err);
  int r2 = realm_ipc_recv(p.dealer, NULL, REALM_FRAME_RUNNER_EVENT,
                          &realm__v1__runner_event__descriptor, 0, 0, &m2, err, sizeof err);
  pair_close(&p);
  CHECK_EQ_INT(s, 0);
  CHECK_EQ_INT(got, 1);
  CHECK_EQ_INT(e1, 0);
  CHECK_EQ_INT(e2, 0);
  CHECK_EQ_INT(r1, 0);
  CHECK_EQ_INT(r2, 0);
  Realm__V1__RunnerEvent *ev1 = (Realm__V1__RunnerEvent *)m1;
  Realm__V1__RunnerEvent *ev2 = (Realm__V1__RunnerEvent *)m2;
  int ok1 = ev1->body_case == REALM__V1__RUNNER_EVENT__BODY_EVENT &&
            strcmp(ev1->event->request_id, "req-42") == 0 &&
            ev1->event->kind_case == REALM__V1__GENERATE_EVENT__KIND_ERROR &&
            realm_proto_error_code(ev1->event->error) == REALM_E_INVALID_ARGUMENT &&
            strcmp(ev1->event->error->param, "temperature") == 0;
  int ok2 = ev2->body_case == REALM__V1__RUNNER_EVENT__BODY_ERROR &&
            realm_proto_error_code(ev2->error) == REALM_E_UNAVAILABLE &&
            strcmp(ev2->error->message, "service unavailable") == 0;
  realm_frame_msg_free(m1);
  realm_frame_msg_free(m2);
  CHECK(ok1);
  CHECK(ok2);
}

TEST(ipc_endpoint_length_is_checked) {
  char buf[256];
  char err[256] = "";
  CHECK_EQ_INT(realm_ipc_endpoint(buf, sizeof buf, "/run/realm", "worker.sock", err, sizeof err),
               0);
  CHECK_STR_EQ(buf, "ipc:///run/realm/worker.sock");
  char longdir[200];
  memset(longdir, 'd', sizeof longdir - 1);
  longdir[0] = '/';
  longdir[sizeof longdir - 1] = '\0';
  CHECK_EQ_INT(realm_ipc_endpoint(buf, sizeof buf, longdir, "w.sock", err, sizeof err),
               REALM_E_TOO_LARGE);
  CHECK_STR_CONTAINS(err, "a Unix socket allows 107");
  char tiny[16];
  CHECK_EQ_INT(realm_ipc_endpoint(tiny, sizeof tiny, "/run/realm", "worker.sock", err,
                                  sizeof err),
               REALM_E_TOO_LARGE);
}

TEST(ipc_socket_options_are_set) {
  void *ctx = zmq_ctx_new();
  CHECK(ctx != NULL);
  void *router = NULL, *dealer = NULL;
  char err[256] = "";
  int r1 = realm_ipc_socket_new(ctx, ZMQ_ROUTER, 1000, &router, err, sizeof err);
  int r2 = realm_ipc_socket_new(ctx, ZMQ_PUB, 0, &dealer, err, sizeof err);
  int linger = -1;
  int64_t maxmsg = 0;
  size_t sz = sizeof linger;
  if (router) zmq_getsockopt(router, ZMQ_LINGER, &linger, &sz);
  sz = sizeof maxmsg;
  if (router) zmq_getsockopt(router, ZMQ_MAXMSGSIZE, &maxmsg, &sz);
  realm_ipc_socket_close(router);
  realm_ipc_socket_close(NULL);
  zmq_ctx_term(ctx);
  CHECK_EQ_INT(r1, 0);
  CHECK_EQ_INT(r2, REALM_E_INVALID_ARGUMENT);
  CHECK(dealer == NULL);
  CHECK_EQ_INT(linger, 0);
  CHECK_EQ_INT(maxmsg, 1000 + REALM_FRAME_HEADER_BYTES);
}

TEST(ipc_dealer_does_not_queue_for_absent_peer) {
  void *ctx = zmq_ctx_new();
  CHECK(ctx != NULL);
  void *dealer = NULL;
  char err[256] = "";
  int r1 = realm_ipc_socket_new(ctx, ZMQ_DEALER, 0, &dealer, err, sizeof err);
  /* Nobody ever binds this (ipc://, since inproc pre-creates pipes for a later bind): with
   * ZMQ_IMMEDIATE the send fails now instead of queueing. */
  char dir[] = "/tmp/realm-ipc-XXXXXX";
  char endpoint[128];
  int rc = -1;
  if (dealer && mkdtemp(dir) &&
      realm_ipc_endpoint(endpoint, sizeof endpoint, dir, "absent.sock", err, sizeof err) == 0)
    rc = zmq_connect(dealer, endpoint);
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  int r2 = dealer ? realm_ipc_send(dealer, NULL, REALM_FRAME_WORKER_REQUEST, &req.base,
                                   ZMQ_DONTWAIT, err, sizeof err)
                  : 0;
  realm_ipc_socket_close(dealer);
  zmq_ctx_term(ctx);
  rmdir(dir);
  CHECK_EQ_INT(r1, 0);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(r2, REALM_E_TIMEOUT);
}

/* Scheduling policy (field 41 of /proc/self/task/TID/stat) of each of this process's
 * threads; counts those with POLICY. The comm field may hold spaces and ')': parse after the
 * last ')'. */
static int threads_with_policy(int policy) {
  int n = 0;
  DIR *d = opendir("/proc/self/task");
  if (!d) return -1;
  for (struct dirent *de; (de = readdir(d));) {
    if (de->d_name[0] == '.') continue;
    char path[300], buf[1024];
    snprintf(path, sizeof path, "/proc/self/task/%s/stat", de->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    char *p = strrchr(buf, ')');
    if (!p) continue;
    int field = 2;
    long v = -1;
    for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " "))
      if (++field == 41) {
        v = strtol(tok, NULL, 10);
        break;
      }
    if (v == policy) n++;
  }
  closedir(d);
  return n;
}

TEST(ipc_ctx_io_threads_run_sched_batch) {
  int before = threads_with_policy(SCHED_BATCH);
  CHECK(before >= 0);
  struct pair p;
  int r = pair_open(&p, "ipc", 0);
  /* An exchange over ipc:// passed through the I/O thread, which set its policy when it
   * started, before its loop: no race with the check below. */
  int ex = r == 0 ? good_exchange(&p, 1) : -100;
  int after = threads_with_policy(SCHED_BATCH);
  pair_close(&p);
  CHECK_EQ_INT(r, 0);
  CHECK_EQ_INT(ex, 0);
  CHECK(after > before);
  /* This thread (the caller, a decode loop in the daemons) keeps the default policy. */
  CHECK_EQ_INT(sched_getscheduler(0), SCHED_OTHER);
}
