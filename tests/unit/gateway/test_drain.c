/*
 * test_drain.c — the gateway's graceful drain (gateway.h "Graceful drain", http.c "Drain")
 * with its real runner backend against an in-process fake runner over ipc://, as a rolling
 * restart drives it:
 *  - a stream and a whole (non-streamed) answer in flight when the drain begins both finish
 *    normally (the stream with `data: [DONE]`), while a new request gets 503 shutting_down
 *    with "Connection: close", /ready 503 "draining" and /health still 200;
 *  - requests that outlive the drain timeout are ended by the cut-off: a stream under way
 *    with an in-stream error event (no [DONE]), a whole answer and a stream whose first event
 *    never came with a 503 shutting_down; the runner is told to cancel each of them;
 *  - the drain wait returns at once when its interrupt fd (main.c's signalfd: a second
 *    SIGTERM) becomes readable, and when nothing is in flight.
 *
 * The drain cannot be undone, so every test starts its own server and backend; the fake
 * runner is shared. Waits are bounded: fake runner counters (condition variables), reads with
 * a socket timeout, and the drain wait itself. The one deliberate timeout is the drain
 * timeout under test (short, 100 ms); no sleep synchronises anything.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <zmq.h>

#include "auth.h"
#include "backend_runners.h"
#include "fake_runner.h"
#include "gateway.h"
#include "http_client.h"
#include "realm/error.h"
#include "realm_test.h"
#include "time_util.h"

#define KEY "sk-drain"
#define CHAT(extra) "{\"model\":\"m1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]" extra "}"

static struct {
  bool started, ok;
  void *zctx;
  struct fake_runner *fr;
  char dir[200], tenants[260], ep[300];
} g;

/* One gateway (server + runner backend) per test: a drain is for good. */
struct gw {
  struct gw_runners *rn;
  struct gw_server *srv;
  uint16_t port;
};

static bool shared_setup(void) {
  if (g.started) return g.ok;
  g.started = true;
  const char *base = getenv("REALM_BUILD_ROOT");
  snprintf(g.dir, sizeof g.dir, "%s/gwdrain-XXXXXX", base && strlen(base) < 60 ? base : "/tmp");
  if (!mkdtemp(g.dir)) return false;
  snprintf(g.tenants, sizeof g.tenants, "%s/tenants.json", g.dir);
  snprintf(g.ep, sizeof g.ep, "ipc://%s/runner-d-0.sock", g.dir);
  char hash[65];
  gw_key_hash_hex(KEY, hash);
  FILE *f = fopen(g.tenants, "w");
  if (!f) return false;
  fprintf(f, "[{\"id\":\"d\",\"key_hashes\":[\"%s\"],\"models\":[\"m1\"],\"runners\":[\"%s\"]}]",
          hash, g.ep);
  if (fclose(f) != 0) return false;
  g.zctx = zmq_ctx_new();
  g.ok = g.zctx && fr_start(g.zctx, g.ep, "d", &g.fr) == 0;
  return g.ok;
}

/* Waits (bounded) until the backend routes to the replica. The state changes on the
 * backend's I/O thread, which offers no callback, so this polls it. */
static bool wait_up(struct gw *w) {
  int64_t end = test_mono_ms() + 5000;
  do {
    struct gw_runner_stats st;
    if (gw_runners_replica_stats(w->rn, "d", g.ep, &st) == 0 && st.state == GW_REPLICA_UP)
      return true;
    fr_wait_pings(g.fr, fr_pings(g.fr) + 1, 100); /* the next pong is the next chance */
  } while (test_mono_ms() < end);
  return false;
}

static bool gw_up(struct gw *w) {
  memset(w, 0, sizeof *w);
  if (!shared_setup()) return false;
  char err[256];
  struct gw_runners_config rc = {.ping_ms = 40, .ping_misses = 3, .cancel_grace_ms = 1000};
  if (gw_runners_create(&rc, &w->rn, err, sizeof err) < 0) {
    printf("# gw_runners_create: %s\n", err);
    return false;
  }
  struct gw_config cfg = {.listen_addr = "127.0.0.1", .tenants_path = g.tenants,
                          .backend = gw_runners_backend(w->rn), .keepalive_ms = 10000};
  if (gw_server_start(&cfg, &w->srv, err, sizeof err) < 0) {
    printf("# gw_server_start: %s\n", err);
    return false;
  }
  w->port = gw_server_port(w->srv);
  return wait_up(w);
}

static void gw_down(struct gw *w) {
  gw_server_stop(w->srv);
  gw_runners_destroy(w->rn);
}

static void hang_script(size_t n_tokens) {
  struct fr_script s = {.tokens = {"Dr", "ain"}, .n_tokens = n_tokens, .finish = "stop",
                        .prompt_tokens = 2, .completion_tokens = 2, .hang = true};
  fr_set_script(g.fr, &s);
}

/* Sends a chat request on a new connection and leaves the answer unread; returns the socket.
 * keep_alive: no "Connection: close" from the client, so only the server can ask for it. */
static int send_chat(uint16_t port, const char *body, bool keep_alive) {
  int fd = http_connect(port, 10000);
  if (fd < 0) return -1;
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n%sAuthorization: Bearer %s\r\n"
                   "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                   keep_alive ? "" : "Connection: close\r\n", KEY, strlen(body), body);
  if (http_send_all(fd, req, (size_t)n) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Reads the rest of a response whose first `len` bytes are in buf, until the server closes
 * (or the socket timeout), and splits it into status, head and decoded (chunked) body. */
static void finish_response(int fd, char *buf, size_t cap, size_t len, struct http_resp *out) {
  memset(out, 0, sizeof *out);
  while (len + 1 < cap) {
    ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
    if (n <= 0) break;
    len += (size_t)n;
  }
  buf[len] = '\0';
  close(fd);
  char *sep = strstr(buf, "\r\n\r\n");
  out->head = strndup(buf, sep ? (size_t)(sep - buf) : len);
  sscanf(buf, "HTTP/1.%*d %d", &out->status);
  const char *in = sep ? sep + 4 : "";
  size_t il = strlen(in);
  out->body = calloc(1, il + 1);
  char te[32];
  if (!http_header(out, "Transfer-Encoding", te, sizeof te)) {
    memcpy(out->body, in, il);
    out->body_len = il;
    return;
  }
  size_t i = 0, o = 0;
  while (i < il) { /* chunk: hex size CRLF data CRLF; a 0 chunk ends it */
    char *end = NULL;
    unsigned long n = strtoul(in + i, &end, 16);
    const char *crlf = strstr(in + i, "\r\n");
    if (!crlf || n == 0) break;
    i = (size_t)(crlf - in) + 2;
    if (i + n > il) n = il - i;
    memcpy(out->body + o, in + i, n);
    o += n;
    i += n + 2;
  }
  out->body_len = o;
}

/* The whole response on fd. */
static void read_response(int fd, struct http_resp *out) {
  static char buf[1 << 16];
  finish_response(fd, buf, sizeof buf, 0, out);
}

static bool is_shutting_down_error(const struct http_resp *r) {
  return r->body && strstr(r->body, "\"type\":\"server_error\"") &&
         strstr(r->body, "\"code\":\"shutting_down\"");
}

TEST(in_flight_requests_finish_normally_while_new_ones_get_503) {
  struct gw w;
  CHECK(gw_up(&w));
  int gen0 = fr_generates(g.fr);
  hang_script(2);
  /* A stream, read up to its second token so its 200 and first events are out ... */
  int sfd = send_chat(w.port, CHAT(",\"stream\":true"), false);
  CHECK(sfd >= 0);
  static char sbuf[1 << 16];
  long sl = http_read_until(sfd, sbuf, sizeof sbuf, "\"content\":\"ain\"");
  CHECK(sl > 0);
  /* ... and a whole answer waiting for the runner's finish. */
  int wfd = send_chat(w.port, CHAT(""), true);
  CHECK(wfd >= 0);
  CHECK(fr_wait_generates(g.fr, gen0 + 2, 5000));

  gw_server_begin_drain(w.srv);
  CHECK(gw_server_draining(w.srv));

  /* New work is refused, fast and retryable; the connection is not kept. */
  int nfd = send_chat(w.port, CHAT(""), true);
  CHECK(nfd >= 0);
  struct http_resp r;
  read_response(nfd, &r);
  CHECK_EQ_INT(r.status, 503);
  CHECK(is_shutting_down_error(&r));
  char hv[64];
  CHECK(http_header(&r, "Connection", hv, sizeof hv) != NULL);
  CHECK_STR_EQ(hv, "close");
  /* ... and says when: a new connection in 1 s reaches another instance. */
  CHECK(http_header(&r, "Retry-After", hv, sizeof hv) != NULL);
  CHECK_STR_EQ(hv, "1");
  http_resp_free(&r);
  CHECK_EQ_INT(fr_generates(g.fr), gen0 + 2); /* never reached the runner */

  /* Readiness fails first (the load balancer's cue); liveness does not. */
  CHECK_EQ_INT(http_call(w.port, "GET", "/ready", NULL, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_CONTAINS(r.body, "draining");
  CHECK_STR_CONTAINS(r.body, "\"code\":\"shutting_down\"");
  http_resp_free(&r);
  CHECK_EQ_INT(http_call(w.port, "GET", "/health", NULL, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 200);
  http_resp_free(&r);

  /* Both requests are still in flight: the drain waits for them. */
  CHECK(gw_server_drain_wait(w.srv, 0, -1) >= 2);

  fr_finish_all(g.fr);
  CHECK_EQ_INT(gw_server_drain_wait(w.srv, 10000, -1), 0);

  finish_response(sfd, sbuf, sizeof sbuf, (size_t)sl, &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR_CONTAINS(r.body, "\"finish_reason\":\"stop\"");
  CHECK_STR_CONTAINS(r.body, "data: [DONE]");
  CHECK(strstr(r.body, "\"error\"") == NULL);
  http_resp_free(&r);
  read_response(wfd, &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR_CONTAINS(r.body, "\"content\":\"Drain\"");
  CHECK(http_header(&r, "Connection", hv, sizeof hv) != NULL); /* keep-alive client told */
  CHECK_STR_EQ(hv, "close");
  CHECK(http_header(&r, "Retry-After", hv, sizeof hv) == NULL); /* a success has none */
  http_resp_free(&r);

  struct gw_drain_stats ds;
  gw_server_drain_stats(w.srv, &ds);
  CHECK(ds.draining);
  CHECK(ds.in_flight_at_start >= 2);
  CHECK_EQ_INT((int)ds.refused, 1);
  CHECK_EQ_INT((int)ds.cut_off, 0);
  CHECK_EQ_INT((int)gw_server_drain_cut_off(w.srv), 0); /* nothing left to end */
  gw_down(&w);
}

TEST(requests_outliving_the_drain_timeout_are_ended_with_shutting_down) {
  struct gw w;
  CHECK(gw_up(&w));
  int gen0 = fr_generates(g.fr), can0 = fr_cancels(g.fr);
  hang_script(2);
  int sfd = send_chat(w.port, CHAT(",\"stream\":true,\"stream_options\":{\"include_usage\":true}"),
                      false);
  CHECK(sfd >= 0);
  static char sbuf[1 << 16];
  long sl = http_read_until(sfd, sbuf, sizeof sbuf, "\"content\":\"ain\"");
  CHECK(sl > 0);
  int wfd = send_chat(w.port, CHAT(""), false);
  CHECK(wfd >= 0);
  CHECK(fr_wait_generates(g.fr, gen0 + 2, 5000));
  /* A stream whose runner never sends a first event: its status is not decided yet. */
  hang_script(0);
  int qfd = send_chat(w.port, CHAT(",\"stream\":true"), false);
  CHECK(qfd >= 0);
  CHECK(fr_wait_generates(g.fr, gen0 + 3, 5000));

  gw_server_begin_drain(w.srv);
  int64_t t0 = test_mono_ms();
  CHECK_EQ_INT(gw_server_drain_wait(w.srv, 100, -1), 3); /* the drain timeout, under test */
  CHECK(test_mono_ms() - t0 >= 100);
  CHECK_EQ_INT((int)gw_server_drain_cut_off(w.srv), 3);
  CHECK_EQ_INT(gw_server_drain_wait(w.srv, 10000, -1), 0); /* their last bytes went out */

  struct http_resp r;
  finish_response(sfd, sbuf, sizeof sbuf, (size_t)sl, &r);
  CHECK_EQ_INT(r.status, 200); /* decided before the drain */
  const char *p = strstr(r.body, "\"content\":\"ain\"");
  CHECK(p != NULL);
  CHECK((p = strstr(p ? p : "", "data: {\"error\":{")) != NULL);
  CHECK_STR_CONTAINS(p ? p : "", "\"code\":\"shutting_down\"");
  CHECK(strstr(r.body, "[DONE]") == NULL); /* an error ends a stream without [DONE] */
  http_resp_free(&r);
  read_response(wfd, &r);
  CHECK_EQ_INT(r.status, 503);
  CHECK(is_shutting_down_error(&r));
  char hv[64];
  CHECK(http_header(&r, "Retry-After", hv, sizeof hv) != NULL); /* "retry it", and when */
  CHECK_STR_EQ(hv, "1");
  http_resp_free(&r);
  read_response(qfd, &r);
  CHECK_EQ_INT(r.status, 503);
  CHECK(is_shutting_down_error(&r));
  CHECK(http_header(&r, "Retry-After", hv, sizeof hv) != NULL);
  CHECK_STR_EQ(hv, "1");
  http_resp_free(&r);

  CHECK(fr_wait_cancels(g.fr, can0 + 3, 5000)); /* the runner stops working for nobody */
  struct gw_drain_stats ds;
  gw_server_drain_stats(w.srv, &ds);
  CHECK_EQ_INT((int)ds.cut_off, 3);
  CHECK_EQ_INT((int)ds.in_flight, 0);
  gw_down(&w);
}

TEST(drain_wait_returns_on_its_interrupt_fd_and_when_idle) {
  struct gw w;
  CHECK(gw_up(&w));
  int gen0 = fr_generates(g.fr);
  /* Nothing in flight: drained at once, whatever the timeout. */
  gw_server_begin_drain(w.srv);
  int64_t t0 = test_mono_ms();
  CHECK_EQ_INT(gw_server_drain_wait(w.srv, 60000, -1), 0);
  CHECK(test_mono_ms() - t0 < 30000);
  gw_down(&w);

  CHECK(gw_up(&w));
  hang_script(1);
  int sfd = send_chat(w.port, CHAT(",\"stream\":true"), false);
  CHECK(sfd >= 0);
  CHECK(fr_wait_generates(g.fr, gen0 + 1, 5000));
  gw_server_begin_drain(w.srv);
  /* The interrupt (a second SIGTERM on main.c's signalfd) ends a long wait at once. */
  int efd = eventfd(1, EFD_CLOEXEC);
  CHECK(efd >= 0);
  t0 = test_mono_ms();
  CHECK_EQ_INT(gw_server_drain_wait(w.srv, 60000, efd), 1);
  CHECK(test_mono_ms() - t0 < 30000);
  close(efd);
  CHECK_EQ_INT((int)gw_server_drain_cut_off(w.srv), 1);
  CHECK_EQ_INT(gw_server_drain_wait(w.srv, 10000, -1), 0);
  struct http_resp r;
  read_response(sfd, &r);
  CHECK(r.status == 200 || r.status == 503); /* 200 once the first token was out */
  CHECK_STR_CONTAINS(r.body, "shutting_down");
  http_resp_free(&r);
  gw_down(&w);
}

TEST(zz_cleanup) {
  fr_stop(g.fr);
  if (g.zctx) zmq_ctx_term(g.zctx);
  char path[300];
  snprintf(path, sizeof path, "%s/tenants.json", g.dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/runner-d-0.sock", g.dir);
  unlink(path);
  CHECK(g.dir[0] == '\0' || rmdir(g.dir) == 0);
}
