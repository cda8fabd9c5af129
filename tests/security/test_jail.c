/*
 * test_jail.c — break-out tests for the runner's jail (DESIGN.md §5).
 *
 * A realm-runner built with test hooks is started against a fake worker; once its filter is
 * installed (after the worker round trip) it attempts a forbidden syscall from host code —
 * the only place one can come from, since guests have no syscalls at all. It must die with
 * SIGSYS. A control run with --no-jail proves the hook really makes the call (it exits 3
 * instead). Then realm-supervise restarts a runner that died that way after serving a
 * request, and the new runner serves the next one.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "realm_test.h"
#include "runner_test_util.h"

static const char *moody(void) {
  static char p[512];
  snprintf(p, sizeof p, "%s/moody.wasm", getenv("REALM_TEST_RUNNER_GUESTS"));
  return p;
}

static void rm_rf(const char *dir) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) {
  }
}

/* Runs the hooked runner with --test-escape what; returns its wait status (-1: timeout). */
static int escape_status(const char *what, bool jail) {
  const char *cache = getenv("REALM_TEST_MODULE_CACHE");
  if (cache) mkdir(cache, 0700);
  const char *dir = test_tmpdir();
  struct fake_worker *w = NULL;
  if (!dir || fake_worker_start(dir, &w) != 0) return -2;
  const char *extra[] = {"--test-escape", what, jail ? NULL : "--no-jail", NULL};
  struct runner_proc p;
  int status = -2;
  if (runner_spawn(getenv("REALM_RUNNER_TESTHOOKS_BIN"), dir, fake_worker_endpoint(w), moody(),
                   extra, &p) == 0) {
    status = runner_wait(p.pid, 30000);
    if (status == -1) runner_stop(&p);
  }
  fake_worker_stop(w);
  rm_rf(dir);
  return status;
}

TEST(jailed_openat_dies_with_sigsys) {
  int st = escape_status("openat", true);
  CHECK(st >= 0);
  CHECK(WIFSIGNALED(st));
  CHECK_EQ_INT(WTERMSIG(st), SIGSYS);
}

TEST(jailed_execve_dies_with_sigsys) {
  int st = escape_status("execve", true);
  CHECK(st >= 0);
  CHECK(WIFSIGNALED(st));
  CHECK_EQ_INT(WTERMSIG(st), SIGSYS);
}

TEST(jailed_socket_dies_with_sigsys) {
  int st = escape_status("socket", true);
  CHECK(st >= 0);
  CHECK(WIFSIGNALED(st));
  CHECK_EQ_INT(WTERMSIG(st), SIGSYS);
}

TEST(unjailed_control_really_makes_the_call) {
  int st = escape_status("openat", false);
  CHECK(st >= 0);
  CHECK(WIFEXITED(st));
  CHECK_EQ_INT(WEXITSTATUS(st), 3);
}

/* Pings until a runner that has served no request yet answers: the restarted one. While no
 * runner is bound a send fails at once, so failed attempts are paced (bounded by time). */
static int wait_fresh_runner(struct gw_client *gw, int timeout_ms) {
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (uint64_t i = 0;; i++) {
    bool up = false;
    uint64_t total = 99;
    if (gw_ping_ex(gw, 1000 + i, &up, &total, 500) == 0) {
      if (up && total == 0) return 0;
    } else {
      poll(NULL, 0, 20);
    }
    clock_gettime(CLOCK_MONOTONIC, &t);
    if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms)
      return -1;
  }
}

TEST(supervisor_restarts_a_killed_runner_which_then_serves) {
  const char *cache = getenv("REALM_TEST_MODULE_CACHE");
  if (cache) mkdir(cache, 0700);
  const char *dir = test_tmpdir();
  struct fake_worker *w = NULL;
  CHECK(dir && fake_worker_start(dir, &w) == 0);
  const char *prefix[] = {getenv("REALM_SUPERVISE_BIN"), "--backoff", "20ms", "--", NULL};
  const char *extra[] = {"--test-escape", "socket", "--test-escape-after", "1", NULL};
  struct runner_proc sup;
  int spawned = runner_spawn_prefixed(prefix, getenv("REALM_RUNNER_TESTHOOKS_BIN"), dir,
                                      fake_worker_endpoint(w), moody(), extra, &sup);
  struct gw_client gw;
  int conn = spawned == 0 ? gw_connect(&gw, sup.listen) : -1;
  int first_up = conn == 0 ? wait_fresh_runner(&gw, 30000) : -1;
  /* Request 1: served, then that runner attempts socket() and is killed. */
  struct gw_result r1[1] = {0}, r2[1] = {0};
  const char *id1[] = {"one"}, *id2[] = {"two"};
  if (first_up == 0 && gw_generate(&gw, "one", NULL, "x", 3) == 0)
    gw_collect(&gw, id1, r1, 1, 20000, NULL, NULL);
  /* A fresh runner (requests_total 0) comes up under the same endpoint and serves request 2. */
  int second_up = r1[0].done ? wait_fresh_runner(&gw, 30000) : -1;
  if (second_up == 0 && gw_generate(&gw, "two", NULL, "x", 3) == 0)
    gw_collect(&gw, id2, r2, 1, 20000, NULL, NULL);
  int sup_alive = spawned == 0 && waitpid(sup.pid, NULL, WNOHANG) == 0;
  if (conn == 0) gw_close(&gw);
  if (spawned == 0) runner_stop(&sup);
  fake_worker_stop(w);
  rm_rf(dir);
  CHECK_EQ_INT(spawned, 0);
  CHECK_EQ_INT(first_up, 0);
  CHECK(r1[0].done && !r1[0].error);
  CHECK_EQ_INT(r1[0].completion_tokens, 3);
  CHECK_EQ_INT(second_up, 0);
  CHECK(r2[0].done && !r2[0].error);
  CHECK_EQ_INT(r2[0].completion_tokens, 3);
  CHECK(sup_alive);
}
