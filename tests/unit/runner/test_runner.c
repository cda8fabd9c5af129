/*
 * test_runner.c — realm-runner end to end, as a jailed subprocess: this test plays the
 * gateway (DEALER) and a fake worker (runner_test_util.c) whose logits make the greedy token
 * sequence known in advance.
 *
 * Covers: generation with the SDK's echo_greedy guest (exact ids, usage, finish reason);
 * two concurrent requests sharing Step messages; a trapping and a looping guest request
 * failing alone while a concurrent good one completes; cancel; refused requests (no prompt,
 * max_tokens over the cap, wrong tenant, prompt over the token limit, n > 1); and the worker
 * going away (in-flight request fails "unavailable", the jailed runner exits 75);
 * --print-policy; and realm-supervise's clean stop on SIGTERM. The six hostile guest
 * behaviours beside a good request are in test_runner_hostile.c.
 */
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include "proc_util.h"
#include "realm/ipc.h"
#include "realm_test.h"
#include "runner_test_util.h"

TEST(generate_echo_greedy_exact_tokens) {
  const char *mod = runner_test_guest("echo_greedy");
  if (access(mod, R_OK) != 0) SKIP("echo_greedy.wasm not built (guests option disabled)");
  struct runner_fixture f;
  CHECK(runner_fixture_up(&f, mod, NULL) == 0);
  CHECK(gw_generate(&f.gw, "r1", NULL, "Hi", 8) == 0);
  const char *ids[] = {"r1"};
  struct gw_result res[1] = {0};
  gw_collect(&f.gw, ids, res, 1, 20000, NULL, NULL);
  int closed = fake_worker_wait_closed(f.w, 1, 5000);
  struct fake_worker_stats st;
  fake_worker_get_stats(f.w, &st);
  runner_fixture_down(&f);
  CHECK(res[0].done);
  CHECK(!res[0].error);
  CHECK_EQ_INT(res[0].finish_reason, REALM__V1__FINISH_REASON__FINISH_REASON_LENGTH);
  CHECK_EQ_INT(res[0].prompt_tokens, 1); /* echo_greedy feeds BOS only */
  CHECK_EQ_INT(res[0].completion_tokens, 8);
  CHECK_EQ_INT(res[0].n_tokens, 8);
  int32_t t = 1;
  for (int i = 0; i < 8; i++) {
    t = fake_worker_next(t);
    CHECK_EQ_INT(res[0].tokens[i], t);
  }
  /* The guest echoes the prompt with emit_text; it leads the first token event's text. */
  CHECK(res[0].text_len > 2 && memcmp(res[0].text, "Hi", 2) == 0);
  CHECK(st.steps >= 8);
  CHECK_EQ_INT(st.sessions_opened, 1);
  CHECK_EQ_INT(closed, 0);
  CHECK_EQ_INT(st.sessions_closed, 1);
}

TEST(two_requests_share_steps) {
  struct runner_fixture f;
  CHECK(runner_fixture_up(&f, runner_test_guest("moody"), NULL) == 0);
  CHECK(gw_generate(&f.gw, "a", NULL, "a", 10) == 0);
  CHECK(gw_generate(&f.gw, "b", NULL, "b", 10) == 0);
  const char *ids[] = {"a", "b"};
  struct gw_result res[2] = {0};
  gw_collect(&f.gw, ids, res, 2, 20000, NULL, NULL);
  struct fake_worker_stats st;
  fake_worker_get_stats(f.w, &st);
  runner_fixture_down(&f);
  for (int i = 0; i < 2; i++) {
    CHECK(res[i].done && !res[i].error);
    CHECK_EQ_INT(res[i].completion_tokens, 10);
    CHECK_EQ_INT(res[i].tokens[0], fake_worker_next(1));
  }
  /* Both requests rode in the same Step messages: 20 logits rows in clearly fewer than 20
   * steps, and at least one Step carried both. */
  CHECK_EQ_INT(st.max_entries, 2);
  CHECK(st.steps < 15);
}

TEST(guest_trap_and_deadline_fail_only_their_request) {
  struct runner_fixture f;
  const char *extra[] = {"--guest-call-ms", "100", NULL};
  CHECK(runner_fixture_up(&f, runner_test_guest("moody"), extra) == 0);
  CHECK(gw_generate(&f.gw, "good", NULL, "good", 12) == 0);
  CHECK(gw_generate(&f.gw, "oob", NULL, "Oops", 12) == 0);
  CHECK(gw_generate(&f.gw, "loop", NULL, "Loop", 12) == 0);
  const char *ids[] = {"good", "oob", "loop"};
  struct gw_result res[3] = {0};
  gw_collect(&f.gw, ids, res, 3, 20000, NULL, NULL);
  /* The runner is still healthy afterwards. */
  bool up = false;
  int ping = gw_ping(&f.gw, 7, &up, 5000);
  runner_fixture_down(&f);
  CHECK(res[0].done && !res[0].error);
  CHECK_EQ_INT(res[0].completion_tokens, 12);
  CHECK(res[1].done && res[1].error);
  CHECK_STR_EQ(res[1].error_code, "guest_trap");
  CHECK_STR_CONTAINS(res[1].error_msg, "out_of_bounds");
  CHECK(res[2].done && res[2].error);
  CHECK_STR_EQ(res[2].error_code, "timeout");
  CHECK_STR_CONTAINS(res[2].error_msg, "deadline");
  CHECK_EQ_INT(ping, 0);
  CHECK(up);
}

struct cancel_ctx {
  struct gw_client *gw;
  bool sent;
};

static void cancel_on_first_token(void *user, int idx, uint32_t n_tokens) {
  struct cancel_ctx *c = user;
  (void)idx;
  if (!c->sent && n_tokens >= 2) {
    gw_cancel(c->gw, "long");
    c->sent = true;
  }
}

TEST(cancel_stops_a_request) {
  struct runner_fixture f;
  CHECK(runner_fixture_up(&f, runner_test_guest("moody"), NULL) == 0);
  CHECK(gw_generate(&f.gw, "long", NULL, "x", 4000) == 0);
  const char *ids[] = {"long"};
  struct gw_result res[1] = {0};
  struct cancel_ctx cc = {.gw = &f.gw};
  gw_collect(&f.gw, ids, res, 1, 20000, cancel_on_first_token, &cc);
  int closed = fake_worker_wait_closed(f.w, 1, 5000);
  struct fake_worker_stats st;
  fake_worker_get_stats(f.w, &st);
  runner_fixture_down(&f);
  CHECK(cc.sent);
  CHECK(res[0].done && !res[0].error);
  CHECK_EQ_INT(res[0].finish_reason, REALM__V1__FINISH_REASON__FINISH_REASON_CANCELLED);
  CHECK(res[0].completion_tokens >= 2 && res[0].completion_tokens < 100);
  CHECK_EQ_INT(closed, 0);
  CHECK_EQ_INT(st.sessions_closed, 1);
}

TEST(bad_requests_get_error_events) {
  struct runner_fixture f;
  const char *extra[] = {"--max-prompt-tokens", "32", "--max-tokens", "100", NULL};
  CHECK(runner_fixture_up(&f, runner_test_guest("moody"), extra) == 0);
  CHECK(gw_generate(&f.gw, "noprompt", NULL, NULL, 4) == 0);
  CHECK(gw_generate(&f.gw, "toolong", NULL, "x", 101) == 0);
  CHECK(gw_generate(&f.gw, "tenant", "someone-else", "x", 4) == 0);
  CHECK(gw_generate(&f.gw, "bigprompt", NULL, "Feed many", 4) == 0);
  Realm__V1__GenerateRequest g;
  realm__v1__generate_request__init(&g);
  g.request_id = "nosampling";
  g.tenant_id = "t1";
  g.input_case = REALM__V1__GENERATE_REQUEST__INPUT_PROMPT;
  g.prompt = "x";
  CHECK(gw_send_generate(&f.gw, &g) == 0);
  CHECK(gw_generate(&f.gw, "fine", NULL, "x", 3) == 0);
  const char *ids[] = {"noprompt", "toolong", "tenant", "bigprompt", "nosampling", "fine"};
  struct gw_result res[6] = {0};
  gw_collect(&f.gw, ids, res, 6, 20000, NULL, NULL);
  runner_fixture_down(&f);
  CHECK(res[0].done && res[0].error);
  CHECK_STR_EQ(res[0].error_code, "invalid_argument");
  CHECK_STR_EQ(res[0].error_param, "prompt");
  CHECK(res[1].done && res[1].error);
  CHECK_STR_EQ(res[1].error_code, "out_of_range");
  CHECK_STR_EQ(res[1].error_param, "max_tokens");
  CHECK(res[2].done && res[2].error);
  CHECK_STR_EQ(res[2].error_code, "permission_denied");
  CHECK(res[3].done && res[3].error);
  CHECK_STR_EQ(res[3].error_code, "too_large");
  CHECK_STR_EQ(res[3].error_param, "prompt");
  CHECK(res[4].done && res[4].error);
  CHECK_STR_EQ(res[4].error_param, "sampling");
  CHECK(res[5].done && !res[5].error);
  CHECK_EQ_INT(res[5].completion_tokens, 3);
}

static void stop_worker_on_token(void *user, int idx, uint32_t n_tokens) {
  struct runner_fixture *f = user;
  (void)idx;
  if (f->w && n_tokens >= 2) {
    fake_worker_stop(f->w);
    f->w = NULL;
  }
}

TEST(worker_loss_fails_inflight_and_jailed_runner_exits) {
  struct runner_fixture f;
  CHECK(runner_fixture_up(&f, runner_test_guest("moody"), NULL) == 0);
  CHECK(gw_generate(&f.gw, "victim", NULL, "x", 4000) == 0);
  const char *ids[] = {"victim"};
  struct gw_result res[1] = {0};
  gw_collect(&f.gw, ids, res, 1, 20000, stop_worker_on_token, &f);
  int status = runner_wait(f.p.pid, 10000);
  if (status != -1) f.p.pid = 0;
  runner_fixture_down(&f);
  CHECK(res[0].done && res[0].error);
  CHECK_STR_EQ(res[0].error_code, "unavailable");
  CHECK(status != -1);
  CHECK(WIFEXITED(status));
  CHECK_EQ_INT(WEXITSTATUS(status), 75);
}

/* --print-policy needs no tenant, worker or module: it writes the jail's filter (libseccomp
 * pseudo code) and exits 0, for the deploy check that compares it with the container profile.
 * The filter must allow accept4 (gateway reconnects) and not openat (no files once jailed). */
TEST(print_policy_writes_the_filter) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "'%s' --print-policy", getenv("REALM_RUNNER_BIN"));
  FILE *p = popen(cmd, "r");
  CHECK(p != NULL);
  static char out[1 << 16];
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = 0;
  int status = pclose(p);
  CHECK(WIFEXITED(status));
  CHECK_EQ_INT(WEXITSTATUS(status), 0);
  CHECK(n > 0 && n < sizeof out - 1);
  CHECK_STR_CONTAINS(out, "pseudo filter code");
  CHECK_STR_CONTAINS(out, "\"accept4\"");
  CHECK_STR_CONTAINS(out, "\"futex\"");
  CHECK(strstr(out, "\"openat\"") == NULL);
  CHECK(strstr(out, "\"execve\"") == NULL);
}

/* realm-supervise turns SIGTERM into a stop (realm_daemon_catch_stop_signals): it stops its
 * child and exits 0. Without the handler the signal's default action would kill it (143) and
 * leave the child running. "child started" is logged after the handlers are installed. */
TEST(supervise_exits_cleanly_on_sigterm) {
  const char *bin = getenv("REALM_SUPERVISE_BIN");
  if (!bin || access(bin, X_OK) != 0) SKIP("realm-supervise not built");
  char *const argv[] = {(char *)bin, "--stop-grace", "5s", "--", "/bin/sleep", "60", NULL};
  struct test_proc sp;
  CHECK_EQ_INT(test_proc_spawn(&sp, argv), 0);
  size_t at = 0;
  bool started = test_proc_wait_log(&sp, "child started", &at, 10000);
  kill(sp.pid, SIGTERM);
  /* Its stderr reaches EOF only once the child (holding a copy) is gone too. */
  int code = test_proc_wait_exit(&sp, 10000);
  CHECK(started);
  CHECK_EQ_INT(code, 0);
  CHECK(sp.eof);
}

/* ---- against the real realm-worker (stories260K), when it is built ---- */

struct real_setup {
  const char *dir;
  pid_t worker;
  struct runner_proc p;
  struct gw_client gw;
  char worker_ep[256];
};

static int real_up(struct real_setup *s) {
  memset(s, 0, sizeof *s);
  const char *bin = getenv("REALM_WORKER_BIN");
  if (!bin || access(bin, X_OK) != 0) return 1;
  const char *mod = runner_test_guest("echo_greedy");
  if (access(mod, R_OK) != 0) return 1;
  const char *cache = getenv("REALM_TEST_MODULE_CACHE");
  if (cache) mkdir(cache, 0700);
  s->dir = test_tmpdir();
  char model[512], shm[256];
  snprintf(model, sizeof model, "%s/gguf/stories260K.gguf", realm_test_models_dir());
  snprintf(s->worker_ep, sizeof s->worker_ep, "ipc://%s/worker.sock", s->dir);
  snprintf(shm, sizeof shm, "%s/worker-shm.sock", s->dir);
  const char *wargv[] = {bin, "--model", model, "--listen", s->worker_ep, "--shm-socket", shm,
                         "--threads", "1", NULL};
  extern char **environ;
  if (posix_spawn(&s->worker, bin, NULL, NULL, (char *const *)wargv, environ) != 0) return -1;
  if (runner_spawn(getenv("REALM_RUNNER_BIN"), s->dir, s->worker_ep, mod, NULL, &s->p) != 0)
    return -1;
  if (gw_connect(&s->gw, s->p.listen) != 0) return -1;
  for (int i = 0; i < 60; i++) {
    bool up = false;
    if (gw_ping(&s->gw, 500 + (uint64_t)i, &up, 500) == 0) return up ? 0 : -1;
  }
  return -1;
}

static void real_down(struct real_setup *s) {
  gw_close(&s->gw);
  runner_stop(&s->p);
  if (s->worker > 0) {
    struct runner_proc w = {.pid = s->worker};
    runner_stop(&w);
  }
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
  if (s->dir && system(cmd) != 0) {
  }
}

/* SentencePiece pieces use U+2581 for a space: undo that for comparison. */
static void spm_to_text(const char *in, size_t len, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < len && o + 1 < cap;) {
    if (i + 2 < len && (unsigned char)in[i] == 0xe2 && (unsigned char)in[i + 1] == 0x96 &&
        (unsigned char)in[i + 2] == 0x81) {
      out[o++] = ' ';
      i += 3;
    } else {
      out[o++] = in[i++];
    }
  }
  out[o] = 0;
}

TEST(real_worker_greedy_stories260k) {
  struct real_setup s;
  int up = real_up(&s);
  if (up == 1) SKIP("realm-worker or echo_greedy.wasm not built");
  CHECK_EQ_INT(up, 0);
  CHECK(gw_generate(&s.gw, "story", NULL, "", 16) == 0);
  const char *ids[] = {"story"};
  struct gw_result res[1] = {0};
  gw_collect(&s.gw, ids, res, 1, 30000, NULL, NULL);
  real_down(&s);
  CHECK(res[0].done && !res[0].error);
  static const int32_t want[] = {403, 407, 261, 378, 432, 383, 286, 261,
                                 376, 298, 315, 421, 395, 317, 426, 338};
  CHECK_EQ_INT(res[0].n_tokens, 16);
  for (int i = 0; i < 16; i++) CHECK_EQ_INT(res[0].tokens[i], want[i]);
  char text[4096];
  spm_to_text(res[0].text, res[0].text_len, text, sizeof text);
  CHECK_STR_CONTAINS(text, " Once upon a time, there was a little girl named Lily.");
}

/* Asks the worker for its global stats over a fresh connection (Hello first). */
static int worker_steps_total(const char *ep, uint64_t *ret_steps) {
  void *ctx = zmq_ctx_new(), *sock = NULL;
  char err[256];
  int rc = -1;
  if (realm_ipc_socket_new(ctx, ZMQ_DEALER, 0, &sock, err, sizeof err) < 0) goto out;
  int t = 5000;
  zmq_setsockopt(sock, ZMQ_SNDTIMEO, &t, sizeof t);
  zmq_setsockopt(sock, ZMQ_RCVTIMEO, &t, sizeof t);
  if (zmq_connect(sock, ep) != 0) goto out;
  Realm__V1__Hello h;
  realm__v1__hello__init(&h);
  h.tenant_id = "stats-probe";
  Realm__V1__StatsRequest sr;
  realm__v1__stats_request__init(&sr);
  for (int k = 0; k < 2; k++) {
    Realm__V1__WorkerRequest req;
    realm__v1__worker_request__init(&req);
    req.request_id = (uint64_t)k + 1;
    if (k == 0) {
      req.body_case = REALM__V1__WORKER_REQUEST__BODY_HELLO;
      req.hello = &h;
    } else {
      req.body_case = REALM__V1__WORKER_REQUEST__BODY_STATS;
      req.stats = &sr;
    }
    if (realm_ipc_send(sock, NULL, REALM_FRAME_WORKER_REQUEST, &req.base, 0, err, sizeof err) < 0)
      goto out;
    ProtobufCMessage *m = NULL;
    if (realm_ipc_recv(sock, NULL, REALM_FRAME_WORKER_REPLY, &realm__v1__worker_reply__descriptor,
                       0, 0, &m, err, sizeof err) < 0)
      goto out;
    Realm__V1__WorkerReply *rep = (Realm__V1__WorkerReply *)m;
    if (k == 1 && rep->body_case == REALM__V1__WORKER_REPLY__BODY_STATS) {
      *ret_steps = rep->stats->steps_total;
      rc = 0;
    }
    realm_frame_msg_free(m);
  }
out:
  realm_ipc_socket_close(sock);
  zmq_ctx_term(ctx);
  return rc;
}

TEST(real_worker_two_requests_batched) {
  struct real_setup s;
  int up = real_up(&s);
  if (up == 1) SKIP("realm-worker or echo_greedy.wasm not built");
  CHECK_EQ_INT(up, 0);
  CHECK(gw_generate(&s.gw, "a", NULL, "", 12) == 0);
  CHECK(gw_generate(&s.gw, "b", NULL, "", 12) == 0);
  const char *ids[] = {"a", "b"};
  struct gw_result res[2] = {0};
  gw_collect(&s.gw, ids, res, 2, 30000, NULL, NULL);
  uint64_t steps = 0;
  int st = worker_steps_total(s.worker_ep, &steps);
  real_down(&s);
  for (int i = 0; i < 2; i++) {
    CHECK(res[i].done && !res[i].error);
    CHECK_EQ_INT(res[i].completion_tokens, 12);
    CHECK_EQ_INT(res[i].tokens[0], 403);
  }
  CHECK_EQ_INT(st, 0);
  /* 24 logits rows (plus 2 one-token prefills) in at most 12 + a few forward passes: the two
   * requests shared them. Unbatched it would take at least 24. */
  CHECK(steps > 0);
  CHECK(steps <= 16);
}

/* ---- the idle pool of guest instances (counter.wat counts its instance's requests) ---- */

/* One request on f's runner; its result (text "w<count>" from counter.wat) in *res. */
static void one_request(struct runner_fixture *f, const char *id, const char *prompt,
                        struct gw_result *res) {
  memset(res, 0, sizeof *res);
  if (gw_generate(&f->gw, id, NULL, prompt, 4) != 0) return;
  const char *ids[] = {id};
  gw_collect(&f->gw, ids, res, 1, 20000, NULL, NULL);
}

TEST(idle_instance_is_reused_after_a_silent_warm_up) {
  struct runner_fixture f;
  CHECK(runner_fixture_up(&f, runner_test_guest("counter"), NULL) == 0);
  /* The warm-up ran before the runner answered its first ping (runner_fixture_up), and
   * counter.wat emits text in every request_begin: nothing of it reached the gateway. */
  uint32_t stray = f.gw.stray_events;
  static struct gw_result a, b;
  one_request(&f, "a", "hello", &a);
  one_request(&f, "b", "hello", &b);
  runner_fixture_down(&f);
  CHECK_EQ_INT(stray, 0);
  /* The first client request is the warmed instance's second, the next one its third. */
  CHECK(a.done && !a.error);
  CHECK_STR_EQ(a.text, "w2");
  CHECK(b.done && !b.error);
  CHECK_STR_EQ(b.text, "w3");
}

TEST(trapped_instance_is_not_reused) {
  struct runner_fixture f;
  CHECK(runner_fixture_up(&f, runner_test_guest("counter"), NULL) == 0);
  static struct gw_result a, t, c;
  one_request(&f, "a", "hello", &a);
  one_request(&f, "trap", "Trap", &t);
  one_request(&f, "c", "hello", &c);
  runner_fixture_down(&f);
  CHECK(a.done && !a.error);
  CHECK_STR_EQ(a.text, "w2");
  CHECK(t.done && t.error);
  CHECK_STR_EQ(t.error_code, "guest_trap");
  /* The trapped instance (the pool's only one) was freed: a fresh instance, first request. */
  CHECK(c.done && !c.error);
  CHECK_STR_EQ(c.text, "w1");
}
