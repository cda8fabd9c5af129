/*
 * test_worker_proc.c — the realm-worker program itself ($REALM_WORKER_BIN): start-up errors
 * name what is wrong and exit non-zero (missing model, rejected model, address in use), and
 * SIGTERM with a Step in flight answers it "shutting_down" and exits 0. Waits are bounded
 * polls on pipes, sockets and a pidfd; nothing sleeps.
 */
#include <fcntl.h>
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

TEST(sigterm_answers_inflight_step_then_exits_zero) {
  if (!bin()) SKIP("REALM_WORKER_BIN not set");
  struct wsite site;
  wsite_init(&site, "realm-wp");
  CHECK(site.dir[0]);
  /* A 10 s batch window without eager batching: the Step stays queued until SIGTERM. */
  char *argv[] = {(char *)bin(), "--model", site.model, "--listen", site.ep, "--threads", "1",
                  "--batch-window-us", "10000000", "--no-batch-eager", NULL};
  struct test_proc c;
  CHECK_EQ_INT(test_proc_spawn(&c, argv), 0);
  CHECK(test_proc_wait_log(&c, "worker ready", NULL, 10000));
  void *z = zmq_ctx_new();
  struct wclient a;
  CHECK_EQ_INT(wc_open(&a, z, site.ep, "tenant-t", "r0", 1, 0, 1 << 20), 0);
  uint64_t s = wc_session_open(&a, 0, NULL);
  CHECK(s);
  const int32_t bos = 1;
  int step_id = wc_send_step1(&a, s, &bos, 1, 1, 0, 4096);
  CHECK(step_id > 0);
  /* A Stats round trip proves the worker has the Step (same connection, in order). */
  Realm__V1__WorkerReply *r = wc_stats(&a);
  CHECK(r && r->body_case == REALM__V1__WORKER_REPLY__BODY_STATS);
  CHECK_EQ_INT(r->stats->queue_depth, 1);
  realm_frame_msg_free(&r->base);
  CHECK_EQ_INT(kill(c.pid, SIGTERM), 0);
  bool got_step = false, got_notice = false;
  for (int i = 0; i < 4 && !(got_step && got_notice); i++) {
    r = wc_recv(&a, 10000);
    if (!r) break;
    if (r->request_id == (uint64_t)step_id && wc_reply_code(r) == REALM_E_SHUTTING_DOWN)
      got_step = true;
    if (r->request_id == 0 && wc_reply_code(r) == REALM_E_SHUTTING_DOWN) got_notice = true;
    realm_frame_msg_free(&r->base);
  }
  CHECK(got_step);
  CHECK(got_notice);
  wc_close(&a);
  zmq_ctx_term(z);
  test_proc_drain(&c, 10000);
  CHECK_EQ_INT(test_proc_wait_exit(&c, 10000), 0);
  CHECK_STR_CONTAINS(c.out, "worker stopped");
  wsite_clean(&site);
}
