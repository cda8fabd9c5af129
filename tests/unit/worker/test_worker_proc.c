/*
 * test_worker_proc.c — the realm-worker program itself ($REALM_WORKER_BIN): start-up errors
 * name what is wrong and exit non-zero (missing model, rejected model, address in use), and
 * the drain on SIGTERM (docs/worker.md "Stop and drain"): open sessions keep being served
 * while new SessionOpens and Hellos get shutting_down; the worker exits 0 once the last
 * session closes, at --drain-timeout (a queued Step then gets shutting_down), at a second
 * signal, and does not wait for a runner that vanished with its sessions open; in process
 * (wfixture.h), a SessionOpen waiting in the admission queue is refused when the drain
 * begins, and the drain options parse. Waits are bounded polls on pipes, sockets, log lines
 * and a pidfd; nothing sleeps.
 */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc_util.h"
#include "realm/error.h"
#include "realm_test.h"
#include "wclient.h"
#include "wfixture.h"

static const char *bin(void) { return getenv("REALM_WORKER_BIN"); }

TEST(missing_model_exits_nonzero_naming_the_path) {
  if (!bin()) SKIP("REALM_WORKER_BIN not set");
  char dir[] = "/tmp/realm-wp-XXXXXX";
  CHECK(mkdtemp(dir));
  char ep[128], model[160];
  snprintf(ep, sizeof ep, "ipc://%s/w.sock", dir);
  snprintf(model, sizeof model, "%s/no-such-model.gguf", dir);
  char *argv[] = {(char *)bin(), "--model", model, "--listen", ep, NULL};
  struct test_proc c;
  CHECK_EQ_INT(test_proc_spawn(&c, argv), 0);
  test_proc_drain(&c, 10000);
  int st = test_proc_wait_exit(&c, 10000);
  CHECK(st != 0 && st != -1);
  CHECK_STR_CONTAINS(c.out, model);
  rmdir(dir);
}

TEST(bad_model_exits_nonzero_with_the_loader_message) {
  if (!bin()) SKIP("REALM_WORKER_BIN not set");
  char dir[] = "/tmp/realm-wp-XXXXXX";
  CHECK(mkdtemp(dir));
  char ep[128], model[160];
  snprintf(ep, sizeof ep, "ipc://%s/w.sock", dir);
  snprintf(model, sizeof model, "%s/garbage.gguf", dir);
  FILE *fp = fopen(model, "wb");
  CHECK(fp);
  fputs("GGUF this is not really a model file at all", fp);
  fclose(fp);
  char *argv[] = {(char *)bin(), "--model", model, "--listen", ep, NULL};
  struct test_proc c;
  CHECK_EQ_INT(test_proc_spawn(&c, argv), 0);
  test_proc_drain(&c, 10000);
  int st = test_proc_wait_exit(&c, 10000);
  unlink(model);
  rmdir(dir);
  CHECK(st != 0 && st != -1);
  CHECK_STR_CONTAINS(c.out, "garbage.gguf");
  CHECK_STR_CONTAINS(c.out, "bad_model");
}

TEST(unknown_huge_pages_value_exits_nonzero_naming_it) {
  if (!bin()) SKIP("REALM_WORKER_BIN not set");
  struct wsite s;
  wsite_init(&s, "realm-wp");
  CHECK(s.dir[0]);
  char *argv[] = {(char *)bin(), "--model", s.model, "--listen", s.ep, "--huge-pages", "large",
                  NULL};
  struct test_proc c;
  CHECK_EQ_INT(test_proc_spawn(&c, argv), 0);
  test_proc_drain(&c, 10000);
  int st = test_proc_wait_exit(&c, 10000);
  wsite_clean(&s);
  CHECK(st != 0 && st != -1);
  CHECK_STR_CONTAINS(c.out, "--huge-pages large");
  CHECK_STR_CONTAINS(c.out, "auto, huge or small");
}

TEST(address_in_use_exits_nonzero) {
  if (!bin()) SKIP("REALM_WORKER_BIN not set");
  struct wsite s;
  wsite_init(&s, "realm-wp");
  CHECK(s.dir[0]);
  /* Someone else listens there already. */
  int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  CHECK(strlen(s.path) < sizeof sa.sun_path);
  memcpy(sa.sun_path, s.path, strlen(s.path) + 1);
  CHECK(ls >= 0);
  CHECK_EQ_INT(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
  CHECK_EQ_INT(listen(ls, 4), 0);
  char *argv[] = {(char *)bin(), "--model", s.model, "--listen", s.ep, NULL};
  struct test_proc c;
  CHECK_EQ_INT(test_proc_spawn(&c, argv), 0);
  test_proc_drain(&c, 10000);
  int st = test_proc_wait_exit(&c, 10000);
  close(ls);
  wsite_clean(&s);
  CHECK(st != 0 && st != -1);
  CHECK_STR_CONTAINS(c.out, "in use");
}

/* Starts realm-worker on site with --threads 1 and extra arguments (NULL-terminated); true
 * once it logged "worker ready". */
static bool start_worker(struct test_proc *c, const struct wsite *site, const char *const *extra) {
  char *argv[24];
  int n = 0;
  argv[n++] = (char *)bin();
  argv[n++] = "--model", argv[n++] = (char *)site->model;
  argv[n++] = "--listen", argv[n++] = (char *)site->ep;
  argv[n++] = "--threads", argv[n++] = "1";
  for (int i = 0; extra && extra[i] && n < 23; i++) argv[n++] = (char *)extra[i];
  argv[n] = NULL;
  return test_proc_spawn(c, argv) == 0 && test_proc_wait_log(c, "worker ready", NULL, 10000);
}

/* The "drain finished" line of the child's log (up to its end of line) into line. */
static bool drain_line(const struct test_proc *c, char *line, size_t len) {
  const char *p = strstr(c->out, "drain finished");
  if (!p) return false;
  size_t n = strcspn(p, "\n");
  snprintf(line, len, "%.*s", (int)(n < len ? n : len - 1), p);
  return true;
}

/* The drain tests' set-up: realm-worker on a fresh site and client a (tenant-t, 1 MiB
 * region) connected to it. */
struct wp {
  struct wsite site;
  struct test_proc c;
  void *z;
  struct wclient a;
};

/* Starts it with EXTRA arguments (NULL-terminated, or NULL); use under CHECK_HELPER. */
static void wp_start(struct wp *t, const char *const *extra) {
  wsite_init(&t->site, "realm-wp");
  CHECK(t->site.dir[0]);
  CHECK(start_worker(&t->c, &t->site, extra));
  t->z = zmq_ctx_new();
  CHECK_EQ_INT(wc_open(&t->a, t->z, t->site.ep, "tenant-t", "r0", 1, 0, 1 << 20), 0);
}

TEST(sigterm_drain_serves_open_session_refuses_new_ones_and_exits_when_it_closes) {
  if (!bin()) SKIP("REALM_WORKER_BIN not set");
  struct wp t;
  CHECK_HELPER(wp_start(&t, NULL));
  uint64_t s = wc_session_open(&t.a, 0, NULL);
  CHECK(s);
  CHECK_EQ_INT(wc_step_one(&t.a, s, (int32_t[]){1}, 1), 0);
  size_t at = 0;
  CHECK_EQ_INT(kill(t.c.pid, SIGTERM), 0);
  CHECK(test_proc_wait_log(&t.c, "draining: new sessions refused", &at, 10000));
  /* The silent connection with a session is sent the drain notice: request_id 0, not
   * shutting_down (which would make a runner drop the worker and fail everything). */
  Realm__V1__WorkerReply *r = wc_recv(&t.a, 10000);
  CHECK(r != NULL);
  CHECK_EQ_INT((int)r->request_id, 0);
  CHECK_EQ_INT(wc_reply_code(r), REALM_E_CANCELLED);
  CHECK_STR_CONTAINS(r->error->message, "draining");
  realm_frame_msg_free(&r->base);
  /* The open session goes on generating, batched as usual. */
  CHECK_EQ_INT(wc_step_one(&t.a, s, (int32_t[]){403}, 1), 0);
  CHECK_EQ_INT(wc_step_one(&t.a, s, (int32_t[]){407}, 1), 0);
  /* New work is refused, per request. */
  int code = 0;
  CHECK_EQ_INT((int)wc_session_open(&t.a, 0, &code), 0);
  CHECK_EQ_INT(code, REALM_E_SHUTTING_DOWN);
  struct wclient b;
  CHECK(wc_open(&b, t.z, t.site.ep, "tenant-u", "r0", 1, 0, 0) != 0);
  CHECK_STR_CONTAINS(b.err, "draining");
  wc_close(&b);
  r = wc_stats(&t.a);
  CHECK(r && r->body_case == REALM__V1__WORKER_REPLY__BODY_STATS);
  realm_frame_msg_free(r ? &r->base : NULL);
  /* Closing the last session ends the drain. */
  CHECK_EQ_INT(wc_session_close(&t.a, s), 0);
  CHECK_EQ_INT(test_proc_wait_exit(&t.c, 10000), 0);
  char line[512];
  CHECK(drain_line(&t.c, line, sizeof line));
  CHECK_STR_CONTAINS(line, "end=drained");
  CHECK_STR_CONTAINS(line, "sessions_at_start=1");
  CHECK_STR_CONTAINS(line, "sessions_closed=1");
  CHECK_STR_CONTAINS(line, "sessions_cut=0");
  CHECK_STR_CONTAINS(line, "refused_opens=1");
  CHECK_STR_CONTAINS(line, "refused_hellos=1");
  CHECK_STR_CONTAINS(t.c.out, "worker stopped");
  wc_close(&t.a);
  zmq_ctx_term(t.z);
  wsite_clean(&t.site);
}

TEST(sigterm_drain_timeout_answers_queued_step_shutting_down_and_exits_zero) {
  if (!bin()) SKIP("REALM_WORKER_BIN not set");
  /* A 10 s batch window without eager batching: the Step stays queued through the 300 ms
   * drain, which then times out with the session still open. */
  const char *extra[] = {"--batch-window-us", "10000000", "--no-batch-eager",
                         "--drain-timeout", "300ms", NULL};
  struct wp t;
  CHECK_HELPER(wp_start(&t, extra));
  uint64_t s = wc_session_open(&t.a, 0, NULL);
  CHECK(s);
  const int32_t bos = 1;
  int step_id = wc_send_step1(&t.a, s, &bos, 1, 1, 0, 4096);
  CHECK(step_id > 0);
  /* A Stats round trip proves the worker has the Step (same connection, in order). */
  Realm__V1__WorkerReply *r = wc_stats(&t.a);
  CHECK(r && r->body_case == REALM__V1__WORKER_REPLY__BODY_STATS);
  CHECK_EQ_INT(r->stats->queue_depth, 1);
  realm_frame_msg_free(&r->base);
  CHECK_EQ_INT(kill(t.c.pid, SIGTERM), 0);
  bool got_step = false, got_notice = false;
  for (int i = 0; i < 4 && !(got_step && got_notice); i++) {
    r = wc_recv(&t.a, 10000);
    if (!r) break;
    if (r->request_id == (uint64_t)step_id && wc_reply_code(r) == REALM_E_SHUTTING_DOWN)
      got_step = true;
    if (r->request_id == 0 && wc_reply_code(r) == REALM_E_SHUTTING_DOWN) got_notice = true;
    realm_frame_msg_free(&r->base);
  }
  CHECK(got_step);
  CHECK(got_notice);
  wc_close(&t.a);
  zmq_ctx_term(t.z);
  CHECK_EQ_INT(test_proc_wait_exit(&t.c, 10000), 0);
  char line[512];
  CHECK(drain_line(&t.c, line, sizeof line));
  CHECK_STR_CONTAINS(line, "end=timeout");
  CHECK_STR_CONTAINS(line, "sessions_at_start=1");
  CHECK_STR_CONTAINS(line, "sessions_cut=1");
  CHECK_STR_CONTAINS(line, "queued_steps=1");
  CHECK_STR_CONTAINS(t.c.out, "worker stopped");
  wsite_clean(&t.site);
}

TEST(second_signal_cuts_the_drain_short) {
  if (!bin()) SKIP("REALM_WORKER_BIN not set");
  struct wp t;
  CHECK_HELPER(wp_start(&t, NULL)); /* default --drain-timeout: 25 s */
  uint64_t s = wc_session_open(&t.a, 0, NULL);
  CHECK(s);
  CHECK_EQ_INT(kill(t.c.pid, SIGTERM), 0);
  CHECK(test_proc_wait_log(&t.c, "draining: new sessions refused", NULL, 10000));
  CHECK_EQ_INT(kill(t.c.pid, SIGINT), 0);
  bool got_notice = false;
  for (int i = 0; i < 4 && !got_notice; i++) {
    Realm__V1__WorkerReply *r = wc_recv(&t.a, 10000);
    if (!r) break;
    got_notice = r->request_id == 0 && wc_reply_code(r) == REALM_E_SHUTTING_DOWN;
    realm_frame_msg_free(&r->base);
  }
  /* Read while the worker lingers (--drain): once it has exited, libzmq may drop what its
   * DEALER had not read yet. Then well inside the 25 s drain: the session never closed, only
   * the signal can have ended it. */
  CHECK(got_notice);
  CHECK_EQ_INT(test_proc_wait_exit(&t.c, 10000), 0);
  char line[512];
  CHECK(drain_line(&t.c, line, sizeof line));
  CHECK_STR_CONTAINS(line, "end=\"second signal\"");
  CHECK_STR_CONTAINS(line, "sessions_cut=1");
  wc_close(&t.a);
  zmq_ctx_term(t.z);
  wsite_clean(&t.site);
}

TEST(drain_does_not_wait_for_a_runner_that_vanished_with_sessions_open) {
  if (!bin()) SKIP("REALM_WORKER_BIN not set");
  struct wp t;
  CHECK_HELPER(wp_start(&t, NULL)); /* default --drain-timeout: 25 s */
  CHECK(wc_session_open(&t.a, 0, NULL) != 0);
  CHECK(wc_session_open(&t.a, 0, NULL) != 0);
  /* Gone without closing its sessions, as a killed runner. */
  wc_close(&t.a);
  zmq_ctx_term(t.z);
  CHECK_EQ_INT(kill(t.c.pid, SIGTERM), 0);
  /* The probe finds the peer gone (the first round, or the next one a second later). */
  CHECK_EQ_INT(test_proc_wait_exit(&t.c, 10000), 0);
  char line[512];
  CHECK(drain_line(&t.c, line, sizeof line));
  CHECK_STR_CONTAINS(line, "end=drained");
  CHECK_STR_CONTAINS(line, "sessions_at_start=2");
  CHECK_STR_CONTAINS(line, "sessions_cut=0");
  wsite_clean(&t.site);
}

TEST(drain_refuses_the_opens_waiting_in_the_admission_queue) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  cfg.kv_blocks = 2; /* 32 positions: A's session takes the whole pool, B's open waits */
  cfg.drain_timeout_ms = 10000;
  CHECK_EQ_INT(fx_start(&f, &cfg), 0);
  struct wclient a, b;
  CHECK_EQ_INT(wc_open(&a, f.zctx, f.endpoint, "tenant-a", "r0", 1, 0, 0), 0);
  CHECK_EQ_INT(wc_open(&b, f.zctx, f.endpoint, "tenant-b", "r0", 1, 0, 0), 0);
  uint64_t s = wc_session_open(&a, 32, NULL);
  CHECK(s != 0);
  uint64_t open_rid = wc_send_session_open(&b, 16);
  uint64_t stats_rid = wc_send_stats(&b);
  CHECK(open_rid && stats_rid);
  /* Same connection, in order: Stats answered first means the open is waiting. */
  Realm__V1__WorkerReply *r = wc_recv(&b, 10000);
  CHECK(r != NULL);
  CHECK_EQ_INT((int)r->request_id, (int)stats_rid);
  realm_frame_msg_free(r ? &r->base : NULL);
  worker_stop(f.w); /* the first stop: the drain */
  r = wc_recv(&b, 10000);
  CHECK(r != NULL);
  CHECK_EQ_INT((int)r->request_id, (int)open_rid);
  CHECK_EQ_INT(wc_reply_code(r), REALM_E_SHUTTING_DOWN);
  realm_frame_msg_free(r ? &r->base : NULL);
  /* A's session is served on; a new open of A's is refused like B's. */
  CHECK_EQ_INT(wc_step_one(&a, s, (int32_t[]){1}, 1), 0);
  int code = 0;
  CHECK_EQ_INT((int)wc_session_open(&a, 16, &code), 0);
  CHECK_EQ_INT(code, REALM_E_SHUTTING_DOWN);
  /* Closing the last session ends the drain: the loop returns 0 on its own. */
  CHECK_EQ_INT(wc_session_close(&a, s), 0);
  pthread_join(f.th, NULL);
  f.joined = true;
  CHECK_EQ_INT(f.run_rc, 0);
  wc_close(&a);
  wc_close(&b);
  fx_stop(&f);
}

TEST(drain_options_parse) {
  struct worker_config cfg;
  char err[256] = "";
  unsetenv("REALM_WORKER_DRAIN_TIMEOUT_MS");
  char *def[] = {"realm-worker", "--model", "m.gguf", NULL};
  CHECK_EQ_INT(worker_options_parse(3, def, &cfg, err, sizeof err), 0);
  CHECK_EQ_INT((int)cfg.drain_timeout_ms, 25000);
  CHECK_EQ_INT((int)cfg.drain_ms, 200);
  setenv("REALM_WORKER_DRAIN_TIMEOUT_MS", "5s", 1);
  CHECK_EQ_INT(worker_options_parse(3, def, &cfg, err, sizeof err), 0);
  CHECK_EQ_INT((int)cfg.drain_timeout_ms, 5000);
  char *set[] = {"realm-worker", "--model", "m.gguf", "--drain-timeout", "0", "--drain", "50ms",
                 NULL};
  CHECK_EQ_INT(worker_options_parse(7, set, &cfg, err, sizeof err), 0);
  CHECK_EQ_INT((int)cfg.drain_timeout_ms, 0);
  CHECK_EQ_INT((int)cfg.drain_ms, 50);
  unsetenv("REALM_WORKER_DRAIN_TIMEOUT_MS");
  char *bad[] = {"realm-worker", "--model", "m.gguf", "--drain-timeout", "2h", NULL};
  CHECK_EQ_INT(worker_options_parse(5, bad, &cfg, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "drain-timeout");
}
