/*
 * test_runner_drain.c — realm-runner's stop drain (docs/runner.md "Stop and drain"): on the
 * first SIGTERM/SIGINT a jailed runner takes no new work and lets the requests in flight
 * finish, for at most --drain-timeout; a second signal, the timeout or the worker's loss ends
 * the wait, and what is left ends with `shutting_down`.
 *
 * The runner runs as a subprocess (jailed, as in production, stderr captured at info level)
 * against the fake worker of runner_test_util.c, with this test as its gateway. To keep a
 * request in flight across the signal without any timing assumption, the fake worker is told
 * to hold Steps unanswered (fake_worker_hold_steps): the request is then provably mid-stream
 * (tokens out, a Step outstanding) when the signal lands, and continues the moment the hold is
 * lifted. Every wait is bounded and keyed to an event: a held Step, a log line on the runner's
 * stderr ("draining", "drain finished"), a pong, a GenerateEvent, the process's exit.
 *
 * Guest: moody.wasm's well-behaved mode (feeds token 1, samples greedily, never stops on its
 * own), so a request runs to exactly max_tokens and its ids are fake_worker_next's chain.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc_util.h"
#include "realm_test.h"
#include "runner_test_util.h"
#include "time_util.h"

#define LONG_TOKENS 40 /* the request that is in flight when the signal comes */
#define HOLD_AFTER 3   /* tokens streamed before the worker is held */
#define WAIT_MS 10000  /* bound of every single wait (a healthy run takes milliseconds) */

struct drain_run {
  struct fake_worker *w;
  struct test_proc proc;
  struct gw_client gw;
  const char *dir;
  bool spawned;
};

/* Starts the fake worker and a jailed runner serving moody.wasm with --drain-timeout
 * `drain`, logging at info; connects the gateway client and waits for the first pong.
 * Returns 0, or -1 (call drain_down anyway). */
static int drain_up(struct drain_run *d, const char *drain) {
  memset(d, 0, sizeof *d);
  d->dir = test_tmpdir();
  if (!d->dir || fake_worker_start(d->dir, &d->w) != 0) return -1;
  static char listen[256], vocab[512], cache[512];
  snprintf(listen, sizeof listen, "ipc://%s/runner-t1-0.sock", d->dir);
  snprintf(vocab, sizeof vocab, "%s/gguf/stories260K.gguf", realm_test_models_dir());
  const char *mc = getenv("REALM_TEST_MODULE_CACHE");
  snprintf(cache, sizeof cache, "%s", mc ? mc : d->dir);
  mkdir(cache, 0700);
  char *argv[] = {(char *)getenv("REALM_RUNNER_BIN"),
                  "--tenant", "t1",
                  "--worker", (char *)fake_worker_endpoint(d->w),
                  "--listen", listen,
                  "--module", (char *)runner_test_guest("moody"),
                  "--module-cache", cache,
                  "--vocab", vocab,
                  "--connect-timeout", "10s",
                  "--log-level", "info",
                  "--drain-timeout", (char *)drain,
                  NULL};
  if (test_proc_spawn(&d->proc, argv) != 0) return -1;
  d->spawned = true;
  if (gw_connect(&d->gw, listen) != 0) return -1;
  if (!test_proc_wait_log(&d->proc, "runner ready", NULL, 30000)) return -1;
  bool up = false;
  for (int i = 0; i < 20; i++)
    if (gw_ping(&d->gw, 100 + (uint64_t)i, &up, 500) == 0) return up ? 0 : -1;
  return -1;
}

/* Reaps the runner (SIGKILL past WAIT_MS; returns its exit code as test_proc_status_code, or
 * -1), stops the worker, removes the directory. */
static int drain_down(struct drain_run *d) {
  int code = -1;
  gw_close(&d->gw);
  if (d->spawned) code = test_proc_wait_exit(&d->proc, WAIT_MS);
  d->spawned = false;
  fake_worker_stop(d->w);
  d->w = NULL;
  if (d->dir) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
    if (system(cmd) != 0) fprintf(stderr, "# cannot remove %s\n", d->dir);
  }
  return code;
}

/* Receives events until res[idx] is done or WAIT_MS passes. */
static void wait_done(struct drain_run *d, const char *const *ids, struct gw_result *res, int n,
                      int idx) {
  int64_t end = test_mono_ms() + WAIT_MS;
  while (!res[idx].done && test_mono_ms() < end)
    gw_collect_one(&d->gw, ids, res, n, (int)(end - test_mono_ms()), NULL);
}

/* Sends the long request, lets HOLD_AFTER tokens stream, then holds the worker and waits
 * until the runner's next Step is held: the request is mid-stream and stays so. 0 or -1. */
static int start_long_and_hold(struct drain_run *d, const char *const *ids, struct gw_result *res,
                               int n) {
  if (gw_generate(&d->gw, ids[0], NULL, "good", LONG_TOKENS) != 0) return -1;
  int64_t end = test_mono_ms() + WAIT_MS;
  while (res[0].n_tokens < HOLD_AFTER && !res[0].done && test_mono_ms() < end)
    gw_collect_one(&d->gw, ids, res, n, (int)(end - test_mono_ms()), NULL);
  if (res[0].n_tokens < HOLD_AFTER || res[0].done) return -1;
  fake_worker_hold_steps(d->w, true);
  return fake_worker_wait_held(d->w, 1, WAIT_MS);
}

/* Pings and reads up to the pong (applying any events to res). 0 or -1. */
static int ping_pong(struct drain_run *d, uint64_t nonce, const char *const *ids,
                     struct gw_result *res, int n, struct gw_pong *ret) {
  if (gw_send_ping(&d->gw, nonce) != 0) return -1;
  int64_t end = test_mono_ms() + WAIT_MS;
  while (test_mono_ms() < end) {
    struct gw_pong p;
    if (gw_collect_one(&d->gw, ids, res, n, (int)(end - test_mono_ms()), &p) == GW_GOT_PONG &&
        p.nonce == nonce) {
      *ret = p;
      return 0;
    }
  }
  return -1;
}

static const char *const LONG_ID[] = {"long"};

/* The set-up of the tests with one request in flight: drain_up(drain), then request "long"
 * started and held mid-stream (start_long_and_hold), its events in res[0]. 0, or -1 at the
 * first step that failed (call drain_down anyway). */
static int up_with_long_held(struct drain_run *d, const char *drain, struct gw_result *res) {
  memset(res, 0, sizeof *res);
  if (drain_up(d, drain) != 0) return -1;
  return start_long_and_hold(d, LONG_ID, res, 1);
}

/* R ended with an error CODE whose message holds WHY; use under CHECK_HELPER. */
static void check_ended_with(const struct gw_result *r, const char *code, const char *why) {
  CHECK(r->done && r->error);
  CHECK_STR_EQ(r->error_code, code);
  CHECK_STR_CONTAINS(r->error_msg, why);
}

/* The "drain finished" line of the runner's log (from its start to the end of the line). */
static const char *drain_line(struct drain_run *d, char *buf, size_t len) {
  size_t from = 0;
  buf[0] = 0;
  if (!test_proc_wait_log(&d->proc, "drain finished", &from, WAIT_MS)) return buf;
  test_proc_wait_log(&d->proc, "\n", &from, WAIT_MS);
  const char *line = strstr(d->proc.out, "drain finished");
  const char *nl = line ? strchr(line, '\n') : NULL;
  snprintf(buf, len, "%.*s", line ? (int)(nl ? nl - line : (long)strlen(line)) : 0,
           line ? line : "");
  return buf;
}

TEST(sigterm_lets_the_streaming_request_finish_and_refuses_new_ones) {
  struct drain_run d;
  int up = drain_up(&d, "20s");
  const char *ids[] = {"long", "late"};
  struct gw_result res[2];
  memset(res, 0, sizeof res);
  struct gw_pong pong = {0};
  int held = -1, pinged = -1, late_sent = -1;
  bool draining = false;
  char line[512] = "";
  if (up == 0 && (held = start_long_and_hold(&d, ids, res, 2)) == 0) {
    kill(d.proc.pid, SIGTERM);
    draining = test_proc_wait_log(&d.proc, "draining", NULL, WAIT_MS);
    /* The gateway learns from the pong that this replica takes no new work... */
    pinged = ping_pong(&d, 900, ids, res, 2, &pong);
    /* ...and a request that reaches it anyway is refused, retryably. */
    late_sent = gw_generate(&d.gw, "late", NULL, "good", 4);
    wait_done(&d, ids, res, 2, 1);
    /* The worker answers again: the long request carries on to its end. */
    fake_worker_hold_steps(d.w, false);
    wait_done(&d, ids, res, 2, 0);
    drain_line(&d, line, sizeof line);
  }
  int code = drain_down(&d);
  CHECK_EQ_INT(up, 0);
  CHECK_EQ_INT(held, 0);
  CHECK(draining);
  CHECK_EQ_INT(pinged, 0);
  CHECK(!pong.ready);
  CHECK(pong.worker_connected);
  CHECK_EQ_INT(pong.in_flight, 1);
  CHECK_EQ_INT(late_sent, 0);
  CHECK_HELPER(check_ended_with(&res[1], "shutting_down", "stopping"));
  /* Every token, the normal finish reason and usage: the signal changed nothing for it. */
  CHECK(res[0].done);
  CHECK(!res[0].error);
  CHECK_EQ_INT(res[0].finish_reason, REALM__V1__FINISH_REASON__FINISH_REASON_LENGTH);
  CHECK_EQ_INT(res[0].completion_tokens, LONG_TOKENS);
  CHECK_EQ_INT(res[0].n_tokens, LONG_TOKENS);
  int32_t t = 1;
  for (int i = 0; i < LONG_TOKENS; i++) {
    t = fake_worker_next(t);
    CHECK_EQ_INT(res[0].tokens[i], t);
  }
  CHECK_STR_CONTAINS(line, "end=drained");
  CHECK_STR_CONTAINS(line, "in_flight_at_start=1");
  CHECK_STR_CONTAINS(line, "finished=1");
  CHECK_STR_CONTAINS(line, "failed=0");
  CHECK_STR_CONTAINS(line, "cut_off=0");
  CHECK_STR_CONTAINS(line, "refused=1");
  CHECK_EQ_INT(code, 0);
}

TEST(drain_timeout_ends_the_request_with_shutting_down) {
  struct drain_run d;
  struct gw_result res[1];
  int up = up_with_long_held(&d, "300ms", res);
  int64_t t_signal = 0, t_end = 0;
  char line[512] = "";
  if (up == 0) {
    t_signal = test_mono_ms();
    kill(d.proc.pid, SIGTERM);
    /* The worker stays held: the request cannot finish, the timeout must end it. */
    wait_done(&d, LONG_ID, res, 1, 0);
    t_end = test_mono_ms();
    drain_line(&d, line, sizeof line);
  }
  int code = drain_down(&d);
  CHECK_EQ_INT(up, 0);
  CHECK_HELPER(check_ended_with(&res[0], "shutting_down", "drain time ran out"));
  CHECK(res[0].n_tokens >= HOLD_AFTER && res[0].n_tokens < LONG_TOKENS);
  /* Not before the drain timeout, and not long after it. */
  CHECK(t_end - t_signal >= 300);
  CHECK(t_end - t_signal < 5000);
  CHECK_STR_CONTAINS(line, "end=timeout");
  CHECK_STR_CONTAINS(line, "in_flight_at_start=1");
  CHECK_STR_CONTAINS(line, "finished=0");
  CHECK_STR_CONTAINS(line, "cut_off=1");
  CHECK_EQ_INT(code, 0);
}

TEST(second_signal_cuts_the_drain_short) {
  struct drain_run d;
  struct gw_result res[1];
  int up = up_with_long_held(&d, "60s", res);
  bool draining = false, second = false;
  int64_t t_second = 0, t_end = 0;
  char line[512] = "";
  if (up == 0) {
    kill(d.proc.pid, SIGTERM);
    draining = test_proc_wait_log(&d.proc, "draining", NULL, WAIT_MS);
    t_second = test_mono_ms();
    kill(d.proc.pid, SIGINT); /* either stop signal counts */
    wait_done(&d, LONG_ID, res, 1, 0);
    t_end = test_mono_ms();
    second = test_proc_wait_log(&d.proc, "second stop signal", NULL, WAIT_MS);
    drain_line(&d, line, sizeof line);
  }
  int code = drain_down(&d);
  CHECK_EQ_INT(up, 0);
  CHECK(draining);
  CHECK(second);
  CHECK_HELPER(check_ended_with(&res[0], "shutting_down", "second signal"));
  /* Far below the 60 s drain timeout. */
  CHECK(t_end - t_second < 5000);
  CHECK_STR_CONTAINS(line, "end=\"second signal\"");
  CHECK_STR_CONTAINS(line, "cut_off=1");
  CHECK_EQ_INT(code, 0);
}

TEST(worker_lost_during_the_drain_ends_it_at_once) {
  struct drain_run d;
  struct gw_result res[1];
  int up = up_with_long_held(&d, "60s", res);
  bool draining = false;
  int64_t t_lost = 0, t_end = 0;
  char line[512] = "";
  if (up == 0) {
    kill(d.proc.pid, SIGTERM);
    draining = test_proc_wait_log(&d.proc, "draining", NULL, WAIT_MS);
    t_lost = test_mono_ms();
    fake_worker_stop(d.w); /* its sockets close, as when the worker process dies */
    d.w = NULL;
    wait_done(&d, LONG_ID, res, 1, 0);
    t_end = test_mono_ms();
    drain_line(&d, line, sizeof line);
  }
  int code = drain_down(&d);
  CHECK_EQ_INT(up, 0);
  CHECK(draining);
  /* The existing worker-loss path ends it (unavailable), and the drain does not wait on. */
  CHECK(res[0].done && res[0].error);
  CHECK_STR_EQ(res[0].error_code, "unavailable");
  CHECK(t_end - t_lost < 5000);
  CHECK_STR_CONTAINS(line, "end=\"worker lost\"");
  CHECK_STR_CONTAINS(line, "failed=1");
  CHECK_STR_CONTAINS(line, "cut_off=0");
  /* The stop was asked for: 0, not the "restart me" 75 of a worker lost while serving. */
  CHECK_EQ_INT(code, 0);
}

TEST(idle_runner_stops_at_once) {
  struct drain_run d;
  int up = drain_up(&d, "60s");
  int64_t t0 = 0, t1 = 0;
  char line[512] = "";
  if (up == 0) {
    t0 = test_mono_ms();
    kill(d.proc.pid, SIGTERM);
    drain_line(&d, line, sizeof line);
    t1 = test_mono_ms();
  }
  int code = drain_down(&d);
  CHECK_EQ_INT(up, 0);
  CHECK_STR_CONTAINS(line, "end=drained");
  CHECK_STR_CONTAINS(line, "in_flight_at_start=0");
  CHECK(t1 - t0 < 5000);
  CHECK_EQ_INT(code, 0);
}
