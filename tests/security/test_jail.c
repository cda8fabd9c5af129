/*
 * test_jail.c — break-out tests for the runner's jail (DESIGN.md §5).
 *
 * A realm-runner built with test hooks is started against a fake worker; once its filter is
 * installed (after the worker round trip) it attempts a forbidden syscall from host code —
 * the only place one can come from, since guests have no syscalls at all. It must die with
 * SIGSYS. A control run with --no-jail proves the hook really makes the call (it exits 3
 * instead). Then realm-supervise restarts a runner that died that way after serving a
 * request, and the new runner serves the next one. Finally the default guest exercises every
 * host path of the ABI v1 additions (model metadata, top logprobs, finish reason, logit bias,
 * chat) in a jailed runner, which must serve them all and still die on openat afterwards.
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
#include "time_util.h"

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
  int64_t end = test_mono_ms() + timeout_ms;
  for (uint64_t i = 0;; i++) {
    bool up = false;
    uint64_t total = 99;
    if (gw_ping_ex(gw, 1000 + i, &up, &total, 500) == 0) {
      if (up && total == 0) return 0;
    } else {
      poll(NULL, 0, 20);
    }
    if (test_mono_ms() > end) return -1;
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

/* A greedy GenerateRequest for tenant t1; the caller adds what it tests. */
static void greedy(Realm__V1__GenerateRequest *g, Realm__V1__SamplingParams *s, const char *id,
                   const char *prompt, uint32_t max_tokens) {
  realm__v1__generate_request__init(g);
  realm__v1__sampling_params__init(s);
  g->request_id = (char *)id;
  g->tenant_id = "t1";
  g->input_case = REALM__V1__GENERATE_REQUEST__INPUT_PROMPT;
  g->prompt = (char *)prompt;
  s->max_tokens = max_tokens;
  s->has_temperature = true;
  g->sampling = s;
}

TEST(jailed_runner_serves_default_guest_abi_additions_then_dies_on_openat) {
  const char *mod = build_path("tenant-runner/guest-sdk/default/guest/default.wasm");
  if (access(mod, R_OK) != 0) SKIP("default.wasm not built (guests option disabled)");
  const char *cache = getenv("REALM_TEST_MODULE_CACHE");
  if (cache) mkdir(cache, 0700);
  const char *dir = test_tmpdir();
  struct fake_worker *w = NULL;
  CHECK(dir && fake_worker_start(dir, &w) == 0);
  const char *extra[] = {"--test-escape", "openat", "--test-escape-after", "3",
                         "--chat-template", "chatml", NULL};
  struct runner_proc p;
  int spawned = runner_spawn(getenv("REALM_RUNNER_TESTHOOKS_BIN"), dir, fake_worker_endpoint(w),
                             mod, extra, &p);
  struct gw_client gw;
  int conn = spawned == 0 ? gw_connect(&gw, p.listen) : -1;
  int up = conn == 0 ? wait_fresh_runner(&gw, 30000) : -1;
  static struct gw_result res[3];
  memset(res, 0, sizeof res);
  if (up == 0) {
    /* 1: logprobs with alternatives (emit_top_logprobs, held Token events). */
    Realm__V1__GenerateRequest g;
    Realm__V1__SamplingParams s;
    greedy(&g, &s, "lp", "Once", 4);
    s.logprobs = true;
    s.top_logprobs = 3;
    gw_send_generate(&gw, &g);
    /* 2: logit bias; the guest ends it at max_tokens (its finish reason: length). */
    greedy(&g, &s, "bias", "upon", 6);
    Realm__V1__SamplingParams__LogitBiasEntry e;
    realm__v1__sampling_params__logit_bias_entry__init(&e);
    e.key = 7;
    e.value = -100.0f;
    Realm__V1__SamplingParams__LogitBiasEntry *ep[] = {&e};
    s.logit_bias = ep;
    s.n_logit_bias = 1;
    gw_send_generate(&gw, &g);
    /* 3: chat with the tenant's template (CHAT_TEMPLATE; model_meta is read at first use). */
    greedy(&g, &s, "chat", NULL, 3);
    Realm__V1__ChatMessage m;
    realm__v1__chat_message__init(&m);
    m.role = "user";
    m.content = "Hi";
    Realm__V1__ChatMessage *mp[] = {&m};
    Realm__V1__ChatPrompt chat;
    realm__v1__chat_prompt__init(&chat);
    chat.messages = mp;
    chat.n_messages = 1;
    g.input_case = REALM__V1__GENERATE_REQUEST__INPUT_CHAT;
    g.chat = &chat;
    gw_send_generate(&gw, &g);
    const char *ids[] = {"lp", "bias", "chat"};
    gw_collect(&gw, ids, res, 3, 20000, NULL, NULL);
  }
  int status = spawned == 0 ? runner_wait(p.pid, 20000) : -2;
  if (status == -1) runner_stop(&p);
  if (conn == 0) gw_close(&gw);
  fake_worker_stop(w);
  rm_rf(dir);
  CHECK_EQ_INT(spawned, 0);
  CHECK_EQ_INT(up, 0);
  for (int i = 0; i < 3; i++) {
    CHECK(res[i].done);
    CHECK(!res[i].error);
  }
  CHECK(res[0].n_tokens >= 1);
  CHECK(res[0].has_logprob[0]);
  CHECK_EQ_INT(res[0].n_top[0], 3);
  CHECK_EQ_INT(res[1].finish_reason, REALM__V1__FINISH_REASON__FINISH_REASON_LENGTH);
  CHECK_EQ_INT(res[1].completion_tokens, 6);
  for (uint32_t k = 0; k < res[1].n_tokens; k++) CHECK(res[1].tokens[k] != 7);
  CHECK(res[2].completion_tokens >= 1);
  /* Every path above ran inside the jail, which still kills the first forbidden syscall. */
  CHECK(status >= 0);
  CHECK(WIFSIGNALED(status));
  CHECK_EQ_INT(WTERMSIG(status), SIGSYS);
}
