/*
 * test_gateway_jail.c — break-out and positive tests for realm-gateway's jail (DESIGN.md §5,
 * gateway/policy-gateway.c).
 *
 * Break-out: realm-gateway-testhooks (the same program plus --test-escape) starts a thread
 * *before* the jail; once jailed, that thread attempts execve, openat for writing, fork or
 * socket(AF_NETLINK). The whole process must die with SIGSYS — which also proves the filter
 * reached a thread that existed before it was installed (TSYNC). Controls: with --no-jail
 * the same hook really makes the call (it exits 3), and a read-only openat, which the
 * tenants reload needs, survives the jail (exit 4).
 *
 * Positive: the real realm-gateway, jailed, against an in-process fake runner
 * (tests/unit/gateway/fake_runner.c) over ipc://: /health, a streamed chat completion with
 * logprobs, a runner that dies and comes back (libzmq reconnects: socket + connect under the
 * jail), a SIGHUP reload of the tenants file (read-only openat) that swaps the API key, and a
 * graceful drain on SIGTERM under the jail: a stream in flight finishes with [DONE] while a new
 * request gets 503 shutting_down and /ready 503, then exit 0. Two more runs prove the drain's
 * other ends under the jail: a stream that outlives --drain-timeout ends with an error event
 * (the runner is told to cancel), and a second SIGTERM cuts a 10-minute drain short; both
 * exit 0, also when signalfd is refused (a hook forces the fallback). Those collect what they saw first and check it after the child is reaped, so a
 * failed check never leaves a gateway running.
 *
 * Synchronisation is on the gateway's own log lines (read from its stderr pipe with bounded
 * polls): "listening" (jailed by then), "is up", "tenants reloaded", "draining"; the drain's
 * outcome is read from its "drain finished" line.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include "auth.h"
#include "fake_runner.h"
#include "http_client.h"
#include "proc_util.h"
#include "realm_test.h"

#define KEY_OLD "sk-jail-old"
#define KEY_NEW "sk-jail-new"

static struct {
  char dir[200], tenants[260], ep[300];
} g;

static bool setup_dir(void) {
  if (g.dir[0]) return true;
  const char *base = getenv("REALM_BUILD_ROOT");
  snprintf(g.dir, sizeof g.dir, "%s/gwjail-XXXXXX", base && strlen(base) < 60 ? base : "/tmp");
  if (!mkdtemp(g.dir)) {
    g.dir[0] = '\0';
    return false;
  }
  snprintf(g.tenants, sizeof g.tenants, "%s/tenants.json", g.dir);
  snprintf(g.ep, sizeof g.ep, "ipc://%s/runner-t-0.sock", g.dir);
  return true;
}

/* Writes the tenants file atomically (temp + rename, as realmctl does) with one key. */
static bool write_tenants(const char *key) {
  char hash[65], tmp[300];
  gw_key_hash_hex(key, hash);
  snprintf(tmp, sizeof tmp, "%s.tmp", g.tenants);
  FILE *f = fopen(tmp, "w");
  if (!f) return false;
  fprintf(f, "[{\"id\":\"t\",\"key_hashes\":[\"%s\"],\"models\":[\"m1\"],\"runners\":[\"%s\"]}]",
          hash, g.ep);
  return fclose(f) == 0 && rename(tmp, g.tenants) == 0;
}

/* Starts bin with the tenants file, any free port, and extra arguments (NULL-terminated). */
static bool spawn(const char *bin, const char *const *extra, struct test_proc *p) {
  memset(p, 0, sizeof *p);
  if (!bin) return false;
  setenv("REALM_LOG_FORMAT", "text", 1); /* before fork: the child may only exec */
  const char *argv[16] = {bin, "--tenants", g.tenants, "--port", "0", "--ping-ms", "50"};
  int n = 7;
  for (size_t i = 0; extra && extra[i] && n < 15; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  return test_proc_spawn(p, (char *const *)argv) == 0;
}

/* The port from the "listening" line (logged after the jail is in force). */
static uint16_t listening_port(struct test_proc *p) {
  size_t at = 0;
  if (!test_proc_wait_log(p, "msg=\"listening\"", &at, 10000) ||
      !test_proc_wait_log(p, "\n", &at, 2000))
    return 0;
  const char *port = strstr(strstr(p->out, "msg=\"listening\""), " port=");
  return port ? (uint16_t)atoi(port + 6) : 0;
}

/* Runs the hooked gateway with --test-escape what; returns its wait status. */
static int escape_status(const char *what, bool jail) {
  if (!setup_dir() || !write_tenants(KEY_OLD)) return -2;
  const char *extra[] = {"--test-escape", what, jail ? NULL : "--no-jail", NULL};
  struct test_proc p;
  if (!spawn(getenv("REALM_GATEWAY_TESTHOOKS_BIN"), extra, &p)) return -2;
  return test_proc_wait_status(&p, 10000);
}

TEST(jailed_execve_dies_with_sigsys) {
  int st = escape_status("execve", true);
  CHECK(st >= 0);
  CHECK(WIFSIGNALED(st));
  CHECK_EQ_INT(WTERMSIG(st), SIGSYS);
}

TEST(jailed_openat_for_writing_dies_with_sigsys) {
  int st = escape_status("openat-write", true);
  CHECK(st >= 0);
  CHECK(WIFSIGNALED(st));
  CHECK_EQ_INT(WTERMSIG(st), SIGSYS);
}

TEST(jailed_fork_dies_with_sigsys) {
  int st = escape_status("fork", true);
  CHECK(st >= 0);
  CHECK(WIFSIGNALED(st));
  CHECK_EQ_INT(WTERMSIG(st), SIGSYS);
}

TEST(jailed_netlink_socket_dies_with_sigsys) {
  int st = escape_status("socket-netlink", true);
  CHECK(st >= 0);
  CHECK(WIFSIGNALED(st));
  CHECK_EQ_INT(WTERMSIG(st), SIGSYS);
}

TEST(jailed_read_only_openat_survives) {
  int st = escape_status("openat-read", true);
  CHECK(st >= 0);
  CHECK(WIFEXITED(st));
  CHECK_EQ_INT(WEXITSTATUS(st), 4);
}

TEST(unjailed_control_really_makes_the_calls) {
  int st = escape_status("openat-write", false);
  CHECK(st >= 0);
  CHECK(WIFEXITED(st));
  CHECK_EQ_INT(WEXITSTATUS(st), 3);
  st = escape_status("fork", false);
  CHECK(st >= 0);
  CHECK(WIFEXITED(st));
  CHECK_EQ_INT(WEXITSTATUS(st), 3);
}

/* Opens a streamed chat completion and leaves the answer unread; returns the socket. */
static int open_stream(uint16_t port, const char *key) {
  int fd = http_connect(port, 10000);
  if (fd < 0) return -1;
  const char *body = "{\"model\":\"m1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                     "\"stream\":true}";
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                   "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\n\r\n%s",
                   key, strlen(body), body);
  if (http_send_all(fd, req, (size_t)n) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Appends the rest of fd's bytes to the NUL-terminated buf until the peer closes (or the
 * socket timeout), then closes fd. Raw bytes: chunk sizes stay in, which no check minds. */
static void read_rest(int fd, char *buf, size_t cap) {
  size_t len = strlen(buf);
  while (len + 1 < cap) {
    ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
    if (n <= 0) break;
    len += (size_t)n;
  }
  buf[len] = '\0';
  close(fd);
}

#define STREAM_BODY                                                                       \
  "{\"model\":\"m1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true," \
  "\"logprobs\":true,\"top_logprobs\":1}"

TEST(jailed_gateway_serves_streams_reconnects_reloads_and_exits_cleanly) {
  CHECK(setup_dir());
  CHECK(write_tenants(KEY_OLD));
  void *zctx = zmq_ctx_new();
  struct fake_runner *fr = NULL;
  CHECK(zctx && fr_start(zctx, g.ep, "t", &fr) == 0);
  struct fr_script sc = {.tokens = {"Jail", "ed"}, .n_tokens = 2, .finish = "stop",
                         .prompt_tokens = 2, .completion_tokens = 2};
  fr_set_script(fr, &sc);

  struct test_proc p;
  CHECK(spawn(getenv("REALM_GATEWAY_BIN"), NULL, &p));
  uint16_t port = listening_port(&p);
  CHECK(port != 0);
  CHECK(strstr(p.out, "msg=\"jailed\"") != NULL);
  CHECK(strstr(p.out, "jailed=true") != NULL);
  size_t at = 0;
  CHECK(test_proc_wait_log(&p, "of tenant t is up", &at, 10000));

  struct http_resp r;
  CHECK_EQ_INT(http_call(port, "GET", "/health", NULL, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 200);
  http_resp_free(&r);

  /* A streamed completion end to end, logprobs included. */
  CHECK_EQ_INT(http_call(port, "POST", "/v1/chat/completions", KEY_OLD, NULL, STREAM_BODY, &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR_CONTAINS(r.body, "\"delta\":{\"content\":\"Jail\"}");
  CHECK_STR_CONTAINS(r.body, "\"logprobs\":{\"content\":[{\"token\":\"ed\",\"logprob\":-1.0");
  CHECK_STR_CONTAINS(r.body, "data: [DONE]");
  http_resp_free(&r);

  /* The runner crashes and restarts: the jailed gateway must reconnect (socket + connect). */
  fr_kill(fr);
  CHECK(test_proc_wait_log(&p, "is down", &at, 10000));
  CHECK_EQ_INT(fr_revive(fr), 0);
  CHECK(test_proc_wait_log(&p, "of tenant t is up", &at, 10000));
  CHECK_EQ_INT(http_call(port, "POST", "/v1/chat/completions", KEY_OLD, NULL, STREAM_BODY, &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR_CONTAINS(r.body, "data: [DONE]");
  http_resp_free(&r);

  /* SIGHUP reload (read-only openat under the jail): the key is rotated. */
  CHECK(write_tenants(KEY_NEW));
  CHECK_EQ_INT(kill(p.pid, SIGHUP), 0);
  CHECK(test_proc_wait_log(&p, "tenants reloaded", &at, 10000));
  CHECK_EQ_INT(http_call(port, "GET", "/v1/models", KEY_NEW, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 200);
  http_resp_free(&r);
  CHECK_EQ_INT(http_call(port, "GET", "/v1/models", KEY_OLD, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 401);
  http_resp_free(&r);

  /* Shutdown runs under the jail too, and drains: a stream in flight at SIGTERM finishes
   * normally while new work is refused. */
  struct fr_script hang = sc;
  hang.hang = true;
  fr_set_script(fr, &hang);
  int sfd = open_stream(port, KEY_NEW);
  CHECK(sfd >= 0);
  static char sbuf[1 << 16];
  CHECK(http_read_until(sfd, sbuf, sizeof sbuf, "\"content\":\"ed\"") > 0);
  CHECK_EQ_INT(kill(p.pid, SIGTERM), 0);
  CHECK(test_proc_wait_log(&p, "draining", &at, 10000));
  CHECK_EQ_INT(http_call(port, "POST", "/v1/chat/completions", KEY_NEW, NULL, STREAM_BODY, &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_CONTAINS(r.body, "\"code\":\"shutting_down\"");
  http_resp_free(&r);
  CHECK_EQ_INT(http_call(port, "GET", "/ready", NULL, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_CONTAINS(r.body, "draining");
  http_resp_free(&r);
  fr_finish_all(fr);
  read_rest(sfd, sbuf, sizeof sbuf);
  CHECK_STR_CONTAINS(sbuf, "data: [DONE]");
  CHECK(strstr(sbuf, "shutting_down") == NULL);
  int st = test_proc_wait_status(&p, 10000);
  CHECK(strstr(p.out, "end=drained") != NULL);
  if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)) printf("# status 0x%x\n%s\n", st, p.out);
  CHECK(st >= 0);
  CHECK(WIFEXITED(st));
  CHECK_EQ_INT(WEXITSTATUS(st), 0);
  fr_stop(fr);
  zmq_ctx_term(zctx);
}

/* What one drain run of a jailed gateway showed, collected before any check. */
struct drain_run {
  bool started;     /* gateway up, runner up, stream open and its first token read */
  bool saw_drain;   /* "draining" logged */
  char stream[1 << 15]; /* the stream's raw bytes after its first token */
  int status;       /* wait status; -1: did not exit in time (killed) */
  int cancels;      /* CancelRequests the fake runner received */
  char log[65536];
};

/* Runs a jailed gateway with --drain-timeout drain and one stream hanging in its runner,
 * sends SIGTERM (twice when second_signal), reads the stream to its end and reaps the
 * gateway; everything is torn down before returning. */
static void drain_run(const char *bin, const char *drain, bool second_signal, bool no_signalfd,
                      struct drain_run *out) {
  memset(out, 0, sizeof *out);
  out->status = -1;
  void *zctx = zmq_ctx_new();
  struct fake_runner *fr = NULL;
  struct test_proc p = {.pid = -1};
  if (!setup_dir() || !write_tenants(KEY_OLD) || !zctx || fr_start(zctx, g.ep, "t", &fr) != 0)
    goto out;
  struct fr_script sc = {.tokens = {"Jail"}, .n_tokens = 1, .finish = "stop", .hang = true};
  fr_set_script(fr, &sc);
  const char *extra[] = {"--drain-timeout", drain, no_signalfd ? "--test-no-signalfd" : NULL,
                         NULL};
  if (!spawn(bin, extra, &p)) goto out;
  uint16_t port = listening_port(&p);
  size_t at = 0;
  int fd = -1;
  if (port && test_proc_wait_log(&p, "of tenant t is up", &at, 10000) &&
      (fd = open_stream(port, KEY_OLD)) >= 0 &&
      http_read_until(fd, out->stream, sizeof out->stream, "\"content\":\"Jail\"") > 0) {
    out->started = true;
    out->stream[0] = '\0'; /* keep only what follows the first token */
    kill(p.pid, SIGTERM);
    out->saw_drain = test_proc_wait_log(&p, "draining", &at, 10000);
    if (second_signal) kill(p.pid, SIGTERM);
    read_rest(fd, out->stream, sizeof out->stream);
    fd = -1;
    fr_wait_cancels(fr, 1, 5000);
  }
  if (fd >= 0) close(fd);
  if (!out->started && p.pid > 0) kill(p.pid, SIGKILL);
  out->status = test_proc_wait_status(&p, 10000); /* kills and reaps past the bound */
  snprintf(out->log, sizeof out->log, "%s", p.out);
out:
  out->cancels = fr ? fr_cancels(fr) : 0;
  fr_stop(fr);
  if (zctx) zmq_ctx_term(zctx);
}

TEST(jailed_gateway_ends_a_stream_that_outlives_the_drain_timeout_and_exits_0) {
  static struct drain_run d;
  drain_run(getenv("REALM_GATEWAY_BIN"), "200ms", false, false, &d);
  if (!(d.status >= 0 && WIFEXITED(d.status) && WEXITSTATUS(d.status) == 0))
    printf("# status 0x%x\n%s\n", d.status, d.log);
  CHECK(d.started);
  CHECK(d.saw_drain);
  CHECK_STR_CONTAINS(d.stream, "data: {\"error\":{");
  CHECK_STR_CONTAINS(d.stream, "\"code\":\"shutting_down\"");
  CHECK(strstr(d.stream, "[DONE]") == NULL);
  CHECK(d.status >= 0 && WIFEXITED(d.status));
  CHECK_EQ_INT(WEXITSTATUS(d.status), 0);
  CHECK(strstr(d.log, "end=timeout") != NULL);
  CHECK(strstr(d.log, "cut_off=1") != NULL);
  CHECK(d.cancels >= 1); /* the runner was told to stop */
}

TEST(jailed_gateway_second_sigterm_cuts_the_drain_short) {
  static struct drain_run d;
  drain_run(getenv("REALM_GATEWAY_BIN"), "10m", true, false, &d); /* exit waited for 10 s */
  if (!(d.status >= 0 && WIFEXITED(d.status) && WEXITSTATUS(d.status) == 0))
    printf("# status 0x%x\n%s\n", d.status, d.log);
  CHECK(d.started);
  CHECK(d.saw_drain);
  CHECK_STR_CONTAINS(d.stream, "\"code\":\"shutting_down\"");
  CHECK(d.status >= 0 && WIFEXITED(d.status));
  CHECK_EQ_INT(WEXITSTATUS(d.status), 0);
  CHECK(strstr(d.log, "end=\"second signal\"") != NULL);
}

/* A container seccomp profile without signalfd4 (ENOSYS): the gateway still starts, warns,
 * and a second SIGTERM is still honoured (between 100 ms wait slices). */
TEST(jailed_gateway_without_signalfd_still_honours_the_second_sigterm) {
  static struct drain_run d;
  drain_run(getenv("REALM_GATEWAY_TESTHOOKS_BIN"), "10m", true, true, &d);
  if (!(d.status >= 0 && WIFEXITED(d.status) && WEXITSTATUS(d.status) == 0))
    printf("# status 0x%x\n%s\n", d.status, d.log);
  CHECK(d.started);
  CHECK(strstr(d.log, "no signalfd") != NULL);
  CHECK_STR_CONTAINS(d.stream, "\"code\":\"shutting_down\"");
  CHECK(d.status >= 0 && WIFEXITED(d.status));
  CHECK_EQ_INT(WEXITSTATUS(d.status), 0);
  CHECK(strstr(d.log, "end=\"second signal\"") != NULL);
}

TEST(zz_cleanup) {
  char path[300];
  snprintf(path, sizeof path, "%s/tenants.json", g.dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/runner-t-0.sock", g.dir);
  unlink(path);
  CHECK(g.dir[0] == '\0' || rmdir(g.dir) == 0);
}
