/*
 * test_runner_kv.c — a "KV cache full" refusal from the real realm-worker fails only the one
 * request it names: the runner keeps serving (a jailed runner used to read every `unavailable`
 * as a lost worker, fail all its requests and exit 75).
 *
 * Set-up: one realm-worker (stories260K) with a small shared KV pool (32 pages of 16 positions
 * = 512) that never queues an open (--max-open-queue 0, so a refusal is immediate rather than
 * timed; --open-queue-timeout 200ms bounds it anyway), and two jailed runners of different
 * tenants (the per-tenant quota is the whole pool, so a second session of the SAME tenant
 * would be `quota_exceeded`, not `kv_cache`). Tenant t1's request reserves 19 pages and
 * generates 300 tokens (EOS banned by logit bias, so it cannot end early); once its first
 * token arrives (its session is open) tenant t2 asks for 19 pages too: refused with
 * `unavailable`, param `kv_cache`, while t1's request completes normally. t2's runner is still
 * alive and, once t1's session closed, serves the same request.
 *
 * Skips itself without realm-worker or default.wasm.
 */
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

#define KV_LONG_TOKENS 300 /* 1 + 300 positions: 19 of the pool's 32 pages */

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

/* A greedy request with an empty prompt for `tenant`, EOS banned so that it runs to
 * max_tokens (the session then holds its pages for the whole generation). */
static int send_long(struct gw_client *gw, const char *id, const char *tenant,
                     uint32_t max_tokens) {
  Realm__V1__GenerateRequest g;
  Realm__V1__SamplingParams s;
  realm__v1__generate_request__init(&g);
  realm__v1__sampling_params__init(&s);
  g.request_id = (char *)id;
  g.tenant_id = (char *)tenant;
  g.input_case = REALM__V1__GENERATE_REQUEST__INPUT_PROMPT;
  g.prompt = "";
  s.max_tokens = max_tokens;
  s.has_temperature = true;
  s.temperature = 0.0f;
  Realm__V1__SamplingParams__LogitBiasEntry e;
  realm__v1__sampling_params__logit_bias_entry__init(&e);
  e.key = 2; /* stories260K's EOS */
  e.value = -100.0f;
  Realm__V1__SamplingParams__LogitBiasEntry *ep[] = {&e};
  s.logit_bias = ep;
  s.n_logit_bias = 1;
  g.sampling = &s;
  return gw_send_generate(gw, &g);
}

struct second {
  struct gw_client *gw;
  bool sent;
  int send_rc;
};

/* At t1's first token (its session is open and holds its pages) t2's request goes out. */
static void on_first_token(void *user, int idx, uint32_t n_tokens) {
  struct second *s = user;
  (void)idx;
  if (s->sent || n_tokens < 1) return;
  s->sent = true;
  s->send_rc = send_long(s->gw, "t2-first", "t2", KV_LONG_TOKENS);
}

TEST(kv_cache_full_fails_only_that_request_and_the_runner_keeps_serving) {
  const char *bin = getenv("REALM_WORKER_BIN");
  if (!bin || access(bin, X_OK) != 0 || !default_guest())
    SKIP("realm-worker or default.wasm not built");
  const char *cache = getenv("REALM_TEST_MODULE_CACHE");
  if (cache) mkdir(cache, 0700);
  const char *dir = test_tmpdir(), *dir2 = test_tmpdir();
  CHECK(dir != NULL && dir2 != NULL);
  char model[512], ep[256], shm[256];
  snprintf(model, sizeof model, "%s/gguf/stories260K.gguf", realm_test_models_dir());
  snprintf(ep, sizeof ep, "ipc://%s/worker.sock", dir);
  snprintf(shm, sizeof shm, "%s/worker-shm.sock", dir);
  const char *wargv[] = {bin, "--model", model, "--listen", ep, "--shm-socket", shm,
                         "--threads", "1", "--kv-blocks", "32", "--kv-block-tokens", "16",
                         "--open-queue-timeout", "200ms", "--max-open-queue", "0", NULL};
  struct runner_proc worker = {0}, r1 = {0}, r2 = {0};
  CHECK(posix_spawn(&worker.pid, bin, NULL, NULL, (char *const *)wargv, environ) == 0);
  const char *extra2[] = {"--tenant", "t2", NULL};
  struct gw_client c1 = {0}, c2 = {0};
  int up1 = -1, up2 = -1;
  if (runner_spawn(getenv("REALM_RUNNER_BIN"), dir, ep, default_guest(), NULL, &r1) == 0 &&
      gw_connect(&c1, r1.listen) == 0)
    up1 = wait_ready(&c1, 100);
  if (runner_spawn(getenv("REALM_RUNNER_BIN"), dir2, ep, default_guest(), extra2, &r2) == 0 &&
      gw_connect(&c2, r2.listen) == 0)
    up2 = wait_ready(&c2, 300);

  static struct gw_result a[1], b[1], later[1];
  memset(a, 0, sizeof a);
  memset(b, 0, sizeof b);
  memset(later, 0, sizeof later);
  struct second sec = {.gw = &c2};
  int r2_status = 0;
  bool r2_alive = false;
  if (up1 == 0 && up2 == 0) {
    const char *ida[] = {"t1-long"}, *idb[] = {"t2-first"}, *idl[] = {"t2-later"};
    if (send_long(&c1, "t1-long", "t1", KV_LONG_TOKENS) == 0) {
      gw_collect(&c1, ida, a, 1, 60000, on_first_token, &sec);
      if (sec.sent && sec.send_rc == 0) gw_collect(&c2, idb, b, 1, 30000, NULL, NULL);
    }
    r2_alive = runner_wait(r2.pid, 0) == -1;
    if (!r2_alive) r2.pid = 0; /* reaped */
    /* t1's runner sends its SessionClose just after the Finish event, on another connection:
     * the worker may still see t2's next open first and refuse it the same way. Retrying on
     * that refusal only (a bounded number of times) waits for the close without a sleep. */
    for (int i = 0; i < 50; i++) {
      memset(later, 0, sizeof later);
      if (send_long(&c2, "t2-later", "t2", 8) != 0) break;
      gw_collect(&c2, idl, later, 1, 30000, NULL, NULL);
      if (!(later[0].done && later[0].error && strcmp(later[0].error_param, "kv_cache") == 0))
        break;
    }
    r2_status = r2.pid ? runner_wait(r2.pid, 0) : 0;
    if (r2_status != -1) r2.pid = 0;
  }
  gw_close(&c1);
  gw_close(&c2);
  runner_stop(&r1);
  runner_stop(&r2);
  runner_stop(&worker);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, dir2);
  if (system(cmd) != 0) fprintf(stderr, "# cannot remove %s\n", dir);

  CHECK_EQ_INT(up1, 0);
  CHECK_EQ_INT(up2, 0);
  /* t1: not touched by t2's refusal, runs to max_tokens. */
  CHECK(a[0].done);
  CHECK(!a[0].error);
  CHECK_EQ_INT(a[0].finish_reason, REALM__V1__FINISH_REASON__FINISH_REASON_LENGTH);
  CHECK_EQ_INT(a[0].completion_tokens, KV_LONG_TOKENS);
  /* t2's first request: refused for the full pool, naming it. */
  CHECK(sec.sent && sec.send_rc == 0);
  CHECK(b[0].done && b[0].error);
  CHECK_STR_EQ(b[0].error_code, "unavailable");
  CHECK_STR_EQ(b[0].error_param, "kv_cache");
  CHECK_STR_CONTAINS(b[0].error_msg, "KV cache full");
  /* t2's runner did not take it for a lost worker: still running, and serves a later
   * request. */
  CHECK(r2_alive);
  CHECK_EQ_INT(r2_status, -1);
  CHECK(later[0].done && !later[0].error);
  CHECK_EQ_INT(later[0].completion_tokens, 8);
}
