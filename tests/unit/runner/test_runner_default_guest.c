/*
 * test_runner_default_guest.c — the DEFAULT guest (default.wasm) served end to end by a jailed
 * realm-runner against the real realm-worker with stories260K: this test plays the gateway.
 *
 * It checks what the guest ABI v1 additions carry through the runner: the guest's finish
 * reason (length at max_tokens, stop for a stop string), logprobs and top logprobs attached
 * to the Token events, LOGIT_BIAS from the sampling parameters, chat requests, and the
 * tenant's --chat-template reaching the guest (CHAT_TEMPLATE). Greedy decoding from an empty
 * prompt must give the oracle text of stories260K.
 *
 * One worker and one runner are shared by all tests (started by the first that needs them,
 * stopped at exit): compiling default.wasm is paid once (then cached), and each test's
 * requests take well under a second.
 */
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "realm_test.h"
#include "runner_test_util.h"

extern char **environ;

struct shared {
  int state;            /* 0 not tried, 1 up, -1 failed, 2 not built (skip) */
  const char *dir;
  pid_t worker;
  char worker_ep[256];
  struct runner_proc runner;
  struct gw_client gw;
  const char *extra_dirs[4]; /* of the extra runners, removed at exit */
  int n_extra_dirs;
};
static struct shared g_sh;

static const char *default_guest(void) {
  const char *p = getenv("REALM_DEFAULT_GUEST_WASM");
  return p && access(p, R_OK) == 0 ? p : NULL;
}

/* Waits until the runner behind gw answers a ping with the worker connected. */
static int wait_ready(struct gw_client *gw, uint64_t nonce) {
  for (int i = 0; i < 120; i++) {
    bool up = false;
    if (gw_ping(gw, nonce + (uint64_t)i, &up, 500) == 0) return up ? 0 : -1;
  }
  return -1;
}

/* Starts another runner with the default guest against the shared worker. */
static int spawn_runner(const char *const *extra, struct runner_proc *ret_p,
                        struct gw_client *ret_gw) {
  const char *dir = test_tmpdir();
  if (!dir) return -1;
  if (g_sh.n_extra_dirs < 4) g_sh.extra_dirs[g_sh.n_extra_dirs++] = dir;
  if (runner_spawn(getenv("REALM_RUNNER_BIN"), dir, g_sh.worker_ep, default_guest(), extra,
                   ret_p) != 0)
    return -1;
  if (gw_connect(ret_gw, ret_p->listen) != 0) return -1;
  return wait_ready(ret_gw, 900);
}

static void shared_down(void) {
  gw_close(&g_sh.gw);
  runner_stop(&g_sh.runner);
  if (g_sh.worker > 0) {
    struct runner_proc w = {.pid = g_sh.worker};
    runner_stop(&w);
  }
  for (int i = -1; i < g_sh.n_extra_dirs; i++) {
    const char *d = i < 0 ? g_sh.dir : g_sh.extra_dirs[i];
    if (!d) continue;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0) {
    }
  }
}

/* 1 = up, 0 = not built (skip), -1 = failed. */
static int shared_up(void) {
  if (g_sh.state) return g_sh.state == 2 ? 0 : g_sh.state;
  g_sh.state = -1;
  const char *bin = getenv("REALM_WORKER_BIN");
  if (!bin || access(bin, X_OK) != 0 || !default_guest()) {
    g_sh.state = 2;
    return 0;
  }
  const char *cache = getenv("REALM_TEST_MODULE_CACHE");
  if (cache) mkdir(cache, 0700);
  g_sh.dir = test_tmpdir();
  if (!g_sh.dir) return -1;
  atexit(shared_down);
  char model[512], shm[256];
  snprintf(model, sizeof model, "%s/gguf/stories260K.gguf", realm_test_models_dir());
  snprintf(g_sh.worker_ep, sizeof g_sh.worker_ep, "ipc://%s/worker.sock", g_sh.dir);
  snprintf(shm, sizeof shm, "%s/worker-shm.sock", g_sh.dir);
  const char *wargv[] = {bin, "--model", model, "--listen", g_sh.worker_ep, "--shm-socket", shm,
                         "--threads", "1", NULL};
  if (posix_spawn(&g_sh.worker, bin, NULL, NULL, (char *const *)wargv, environ) != 0) return -1;
  /* The first start compiles default.wasm into the shared cache: allow it time. */
  if (runner_spawn(getenv("REALM_RUNNER_BIN"), g_sh.dir, g_sh.worker_ep, default_guest(), NULL,
                   &g_sh.runner) != 0 ||
      gw_connect(&g_sh.gw, g_sh.runner.listen) != 0 || wait_ready(&g_sh.gw, 700) != 0)
    return -1;
  g_sh.state = 1;
  return 1;
}

#define NEED_SHARED()                                                                    \
  do {                                                                                   \
    int up_ = shared_up();                                                               \
    if (up_ == 0) SKIP("realm-worker or default.wasm not built");                        \
    CHECK_EQ_INT(up_, 1);                                                                \
  } while (0)

/* A greedy request (temperature 0) for tenant t1 with a text prompt. */
static void greedy_request(Realm__V1__GenerateRequest *g, Realm__V1__SamplingParams *s,
                           const char *id, const char *prompt, uint32_t max_tokens) {
  realm__v1__generate_request__init(g);
  realm__v1__sampling_params__init(s);
  g->request_id = (char *)id;
  g->tenant_id = "t1";
  g->input_case = REALM__V1__GENERATE_REQUEST__INPUT_PROMPT;
  g->prompt = (char *)prompt;
  s->max_tokens = max_tokens;
  s->has_temperature = true;
  s->temperature = 0.0f;
  g->sampling = s;
}

static const char ORACLE[] = " Once upon a time, there was a little girl named Lily.";
static const int32_t ORACLE_IDS[] = {403, 407, 261, 378, 432, 383, 286, 261,
                                     376, 298, 315, 421, 395, 317, 426, 338};

TEST(default_guest_greedy_oracle_text_finishes_length) {
  NEED_SHARED();
  Realm__V1__GenerateRequest g;
  Realm__V1__SamplingParams s;
  greedy_request(&g, &s, "oracle", "", 15);
  CHECK(gw_send_generate(&g_sh.gw, &g) == 0);
  const char *ids[] = {"oracle"};
  static struct gw_result res[1];
  memset(res, 0, sizeof res);
  gw_collect(&g_sh.gw, ids, res, 1, 30000, NULL, NULL);
  CHECK(res[0].done);
  CHECK(!res[0].error);
  CHECK_EQ_INT(res[0].finish_reason, REALM__V1__FINISH_REASON__FINISH_REASON_LENGTH);
  CHECK_EQ_INT(res[0].prompt_tokens, 1); /* empty prompt: BOS alone */
  CHECK_EQ_INT(res[0].completion_tokens, 15);
  CHECK_EQ_INT(res[0].n_tokens, 15);
  for (int i = 0; i < 15; i++) CHECK_EQ_INT(res[0].tokens[i], ORACLE_IDS[i]);
  /* The default guest detokenizes: real spaces, exactly the oracle text (15 tokens; the
   * 16th is " She"). */
  CHECK_STR_EQ(res[0].text, ORACLE);
  /* No logprobs asked for: none attached. */
  CHECK(!res[0].has_logprob[0]);
}

TEST(default_guest_stop_string_finishes_stop) {
  NEED_SHARED();
  Realm__V1__GenerateRequest g;
  Realm__V1__SamplingParams s;
  greedy_request(&g, &s, "stopper", "", 40);
  char *stop[] = {"girl"};
  s.stop = stop;
  s.n_stop = 1;
  CHECK(gw_send_generate(&g_sh.gw, &g) == 0);
  const char *ids[] = {"stopper"};
  static struct gw_result res[1];
  memset(res, 0, sizeof res);
  gw_collect(&g_sh.gw, ids, res, 1, 30000, NULL, NULL);
  CHECK(res[0].done);
  CHECK(!res[0].error);
  CHECK_EQ_INT(res[0].finish_reason, REALM__V1__FINISH_REASON__FINISH_REASON_STOP);
  /* The text stops before the stop string, which is not included. */
  CHECK_STR_EQ(res[0].text, " Once upon a time, there was a little ");
  CHECK(res[0].completion_tokens >= 10 && res[0].completion_tokens < 40);
}

TEST(default_guest_logprobs_and_top_logprobs_on_token_events) {
  NEED_SHARED();
  Realm__V1__GenerateRequest g;
  Realm__V1__SamplingParams s;
  greedy_request(&g, &s, "lp", "", 6);
  s.logprobs = true;
  s.top_logprobs = 3;
  CHECK(gw_send_generate(&g_sh.gw, &g) == 0);
  const char *ids[] = {"lp"};
  static struct gw_result res[1];
  memset(res, 0, sizeof res);
  gw_collect(&g_sh.gw, ids, res, 1, 30000, NULL, NULL);
  CHECK(res[0].done && !res[0].error);
  CHECK_EQ_INT(res[0].n_tokens, 6);
  for (uint32_t k = 0; k < res[0].n_tokens; k++) {
    CHECK_EQ_INT(res[0].tokens[k], ORACLE_IDS[k]);
    CHECK(res[0].has_logprob[k]);
    CHECK(res[0].logprob[k] <= 0.0f && res[0].logprob[k] > -50.0f);
    CHECK_EQ_INT(res[0].n_top[k], 3);
    /* Greedy: the best alternative is the chosen token, with the same log-probability. */
    CHECK_EQ_INT(res[0].top_id[k][0], res[0].tokens[k]);
    CHECK_NEAR(res[0].top_logprob[k][0], res[0].logprob[k], 1e-4);
    CHECK(res[0].top_logprob[k][1] <= res[0].top_logprob[k][0]);
    CHECK(res[0].top_logprob[k][2] <= res[0].top_logprob[k][1]);
    CHECK(res[0].top_id[k][1] != res[0].top_id[k][0]);
  }
  /* Texts are the tokens' own bytes, decoded from the SentencePiece pieces. */
  CHECK_STR_EQ(res[0].lp_text[0], " Once");
  CHECK_STR_EQ(res[0].top_text[0], " Once");
  CHECK_STR_EQ(res[0].lp_text[1], " upon");
}

/* logprobs without alternatives: the runner must not tell the guest to skip them
 * (REALM_REQ_SKIP_LOGPROBS goes only with requests that did not ask), so each token carries a
 * real log-probability, and the tokens are the oracle's, as without logprobs. */
TEST(default_guest_logprobs_without_top_are_computed) {
  NEED_SHARED();
  Realm__V1__GenerateRequest g;
  Realm__V1__SamplingParams s;
  greedy_request(&g, &s, "lp0", "", 8);
  s.logprobs = true;
  s.top_logprobs = 0;
  CHECK(gw_send_generate(&g_sh.gw, &g) == 0);
  const char *ids[] = {"lp0"};
  static struct gw_result res[1];
  memset(res, 0, sizeof res);
  gw_collect(&g_sh.gw, ids, res, 1, 30000, NULL, NULL);
  CHECK(res[0].done && !res[0].error);
  CHECK_EQ_INT(res[0].n_tokens, 8);
  int nonzero = 0;
  for (uint32_t k = 0; k < res[0].n_tokens; k++) {
    CHECK_EQ_INT(res[0].tokens[k], ORACLE_IDS[k]);
    CHECK(res[0].has_logprob[k]);
    CHECK_EQ_INT(res[0].n_top[k], 0);
    CHECK(res[0].logprob[k] <= 0.0f && res[0].logprob[k] > -50.0f);
    nonzero += res[0].logprob[k] < -1e-6f;
  }
  CHECK(nonzero > 0); /* a skipped logprob would read 0 for every token */
}

TEST(default_guest_logit_bias_bans_the_first_token) {
  NEED_SHARED();
  Realm__V1__GenerateRequest g;
  Realm__V1__SamplingParams s;
  greedy_request(&g, &s, "biased", "", 4);
  Realm__V1__SamplingParams__LogitBiasEntry e;
  realm__v1__sampling_params__logit_bias_entry__init(&e);
  e.key = 403;
  e.value = -100.0f;
  Realm__V1__SamplingParams__LogitBiasEntry *ep[] = {&e};
  s.logit_bias = ep;
  s.n_logit_bias = 1;
  CHECK(gw_send_generate(&g_sh.gw, &g) == 0);
  /* Out-of-vocabulary bias: refused by the runner at the edge, naming the parameter. */
  Realm__V1__GenerateRequest g2;
  Realm__V1__SamplingParams s2;
  greedy_request(&g2, &s2, "badbias", "", 4);
  Realm__V1__SamplingParams__LogitBiasEntry e2;
  realm__v1__sampling_params__logit_bias_entry__init(&e2);
  e2.key = 1000000;
  e2.value = 5.0f;
  Realm__V1__SamplingParams__LogitBiasEntry *ep2[] = {&e2};
  s2.logit_bias = ep2;
  s2.n_logit_bias = 1;
  CHECK(gw_send_generate(&g_sh.gw, &g2) == 0);
  const char *ids[] = {"biased", "badbias"};
  static struct gw_result res[2];
  memset(res, 0, sizeof res);
  gw_collect(&g_sh.gw, ids, res, 2, 30000, NULL, NULL);
  CHECK(res[0].done && !res[0].error);
  CHECK(res[0].n_tokens >= 1);
  CHECK(res[0].tokens[0] != 403);
  CHECK(res[1].done && res[1].error);
  CHECK_STR_EQ(res[1].error_code, "invalid_argument");
  CHECK_STR_EQ(res[1].error_param, "logit_bias");
}

/* A chat request with the given messages (role, content pairs) on gw. */
static void send_chat(struct gw_client *gw, const char *id, uint32_t max_tokens) {
  Realm__V1__GenerateRequest g;
  Realm__V1__SamplingParams s;
  greedy_request(&g, &s, id, NULL, max_tokens);
  Realm__V1__ChatMessage m[2];
  Realm__V1__ChatMessage *mp[2] = {&m[0], &m[1]};
  for (int i = 0; i < 2; i++) realm__v1__chat_message__init(&m[i]);
  m[0].role = "system";
  m[0].content = "You tell short stories.";
  m[1].role = "user";
  m[1].content = "Tell me about Lily.";
  Realm__V1__ChatPrompt chat;
  realm__v1__chat_prompt__init(&chat);
  chat.messages = mp;
  chat.n_messages = 2;
  g.input_case = REALM__V1__GENERATE_REQUEST__INPUT_CHAT;
  g.prompt = NULL;
  g.chat = &chat;
  if (gw_send_generate(gw, &g) != 0) fprintf(stderr, "# send %s failed\n", id);
}

TEST(default_guest_chat_request_generates) {
  NEED_SHARED();
  send_chat(&g_sh.gw, "chat", 8);
  const char *ids[] = {"chat"};
  static struct gw_result res[1];
  memset(res, 0, sizeof res);
  gw_collect(&g_sh.gw, ids, res, 1, 30000, NULL, NULL);
  CHECK(res[0].done);
  CHECK(!res[0].error);
  CHECK_EQ_INT(res[0].finish_reason, REALM__V1__FINISH_REASON__FINISH_REASON_LENGTH);
  CHECK(res[0].prompt_tokens > 5); /* both messages were rendered into the prompt */
  CHECK_EQ_INT(res[0].completion_tokens, 8);
  CHECK(res[0].text_len > 0);
}

/* --chat-template reaches the guest as CHAT_TEMPLATE (given as @FILE here): chatml's markers make the same chat
 * longer than the raw rendering of the shared runner (no template: stories260K has no chat
 * template and no chat markers, so the guest uses "raw"), and an unknown family is refused by
 * the guest. */
TEST(default_guest_tenant_chat_template_option) {
  NEED_SHARED();
  send_chat(&g_sh.gw, "raw", 1);
  const char *ids0[] = {"raw"};
  static struct gw_result raw[1];
  memset(raw, 0, sizeof raw);
  gw_collect(&g_sh.gw, ids0, raw, 1, 30000, NULL, NULL);
  CHECK(raw[0].done && !raw[0].error);

  struct runner_proc p1 = {0}, p2 = {0};
  struct gw_client c1 = {0}, c2 = {0};
  /* Own replica ids: the worker takes a second Hello from the same tenant and replica for a
   * restart and drops the first connection. */
  char tpl_path[512], tpl_arg[520];
  snprintf(tpl_path, sizeof tpl_path, "%s/tenant-template.txt", g_sh.dir);
  snprintf(tpl_arg, sizeof tpl_arg, "@%s", tpl_path);
  FILE *fp = fopen(tpl_path, "w");
  CHECK(fp != NULL);
  fputs("chatml", fp);
  fclose(fp);
  /* The chatml runner reads its template from a file (@FILE, read before the jail). */
  const char *chatml[] = {"--chat-template", tpl_arg, "--replica", "1", NULL};
  const char *bogus[] = {"--chat-template", "no-such-template-family", "--replica", "2", NULL};
  int up1 = spawn_runner(chatml, &p1, &c1);
  int up2 = spawn_runner(bogus, &p2, &c2);
  static struct gw_result res[2];
  memset(res, 0, sizeof res);
  if (up1 == 0) send_chat(&c1, "chatml", 1);
  if (up2 == 0) send_chat(&c2, "bogus", 1);
  const char *ids1[] = {"chatml"}, *ids2[] = {"bogus"};
  if (up1 == 0) gw_collect(&c1, ids1, &res[0], 1, 30000, NULL, NULL);
  if (up2 == 0) gw_collect(&c2, ids2, &res[1], 1, 30000, NULL, NULL);
  gw_close(&c1);
  gw_close(&c2);
  runner_stop(&p1);
  runner_stop(&p2);
  CHECK_EQ_INT(up1, 0);
  CHECK_EQ_INT(up2, 0);
  CHECK(res[0].done && !res[0].error);
  CHECK(res[0].prompt_tokens > raw[0].prompt_tokens + 4);
  CHECK(res[1].done && res[1].error);
  CHECK_STR_CONTAINS(res[1].error_msg, "refused");
}

TEST(default_guest_missing_chat_template_file_fails_setup) {
  NEED_SHARED();
  const char *dir = test_tmpdir();
  CHECK(dir != NULL);
  if (g_sh.n_extra_dirs < 4) g_sh.extra_dirs[g_sh.n_extra_dirs++] = dir;
  const char *extra[] = {"--chat-template", "@/nonexistent/realm-template", "--replica", "3",
                         NULL};
  struct runner_proc p = {0};
  CHECK(runner_spawn(getenv("REALM_RUNNER_BIN"), dir, g_sh.worker_ep, default_guest(), extra,
                     &p) == 0);
  int st = runner_wait(p.pid, 20000);
  if (st == -1) runner_stop(&p);
  CHECK(st >= 0);
  CHECK(WIFEXITED(st));
  CHECK_EQ_INT(WEXITSTATUS(st), 1); /* set-up failure, named in its log */
}
