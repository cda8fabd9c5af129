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
 * clean exit 0 on SIGTERM.
 *
 * Synchronisation is on the gateway's own log lines (read from its stderr pipe with bounded
 * polls): "listening" (jailed by then), "is up", "tenants reloaded".
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

  /* Shutdown runs under the jail too. */
  CHECK_EQ_INT(kill(p.pid, SIGTERM), 0);
  int st = test_proc_wait_status(&p, 10000);
  if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)) printf("# status 0x%x\n%s\n", st, p.out);
  CHECK(st >= 0);
  CHECK(WIFEXITED(st));
  CHECK_EQ_INT(WEXITSTATUS(st), 0);
  fr_stop(fr);
  zmq_ctx_term(zctx);
}

TEST(zz_cleanup) {
  char path[300];
  snprintf(path, sizeof path, "%s/tenants.json", g.dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/runner-t-0.sock", g.dir);
  unlink(path);
  CHECK(g.dir[0] == '\0' || rmdir(g.dir) == 0);
}
