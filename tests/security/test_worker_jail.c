/*
 * test_worker_jail.c — the worker's seccomp jail (compute-worker/worker/policy-worker.c).
 *
 * A jailed realm-worker-testhooks ($REALM_WORKER_TESTHOOKS_BIN) that attempts openat, execve or
 * socket right after the jail dies with SIGSYS; the same attempt with --no-jail is not stopped
 * (the control: the SIGSYS is the jail's doing). And the jail leaves the worker useful: a
 * jailed realm-worker ($REALM_WORKER_BIN) accepts two runner connections made after the jail —
 * one over ipc:// with the memfd handshake (accept4, memfd_create, ftruncate, F_ADD_SEALS,
 * mmap, sendmsg SCM_RIGHTS), one over tcp:// with inline tensors — serves their Steps with the
 * in-process engine's logits, and exits 0 on SIGTERM. Waits are bounded polls on pipes,
 * sockets and pidfds; nothing sleeps.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gguf.h"
#include "llama.h"
#include "model.h"
#include "proc_util.h"
#include "realm/error.h"
#include "realm_test.h"
#include "wclient.h"

#define TOL 1e-4

/* Runs the test-hooks worker with --test-escape WHAT (and --no-jail when asked); returns
 * its exit status (128 + signal when killed), with its log in c. */
static int run_escape(struct test_proc *c, const char *what, bool no_jail) {
  const char *bin = getenv("REALM_WORKER_TESTHOOKS_BIN");
  struct wsite s;
  wsite_init(&s, "realm-wj");
  char *argv[16];
  int n = 0;
  argv[n++] = (char *)bin;
  argv[n++] = "--model", argv[n++] = s.model;
  argv[n++] = "--listen", argv[n++] = s.ep;
  argv[n++] = "--threads", argv[n++] = "2";
  if (no_jail) argv[n++] = "--no-jail";
  argv[n++] = "--test-escape", argv[n++] = (char *)what;
  argv[n] = NULL;
  if (test_proc_spawn(c, argv) < 0) return -1;
  int st = test_proc_wait_exit(c, 20000);
  wsite_clean(&s);
  return st;
}

#define ESCAPE_TEST(what)                                                          \
  TEST(jailed_worker_dies_with_sigsys_on_##what) {                                 \
    if (!getenv("REALM_WORKER_TESTHOOKS_BIN")) SKIP("REALM_WORKER_TESTHOOKS_BIN not set"); \
    struct test_proc c;                                                            \
    int st = run_escape(&c, #what, false);                                         \
    if (st != 128 + SIGSYS) printf("# status %d, log:\n%s\n", st, c.out);          \
    CHECK_EQ_INT(st, 128 + SIGSYS);                                                \
    CHECK_STR_CONTAINS(c.out, "worker jailed");                                    \
    CHECK_STR_CONTAINS(c.out, "attempting a forbidden syscall");                   \
    CHECK(strstr(c.out, "was not stopped") == NULL);                               \
  }
ESCAPE_TEST(openat)
ESCAPE_TEST(execve)
ESCAPE_TEST(socket)

TEST(unjailed_control_is_not_stopped) {
  if (!getenv("REALM_WORKER_TESTHOOKS_BIN")) SKIP("REALM_WORKER_TESTHOOKS_BIN not set");
  const char *what[] = {"openat", "socket"};
  for (int i = 0; i < 2; i++) {
    struct test_proc c;
    int st = run_escape(&c, what[i], true);
    CHECK_EQ_INT(st, 3); /* the hook's own exit after the call went through */
    CHECK_STR_CONTAINS(c.out, "--no-jail");
    CHECK_STR_CONTAINS(c.out, "was not stopped");
    CHECK(strstr(c.out, "worker jailed") == NULL);
  }
}

/* ---- a jailed worker serves connections made after the jail ---- */

/* The "Seccomp:" line of /proc/PID/status: 2 = filter mode. */
static int seccomp_mode(pid_t pid) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  const char *p = strstr(buf, "\nSeccomp:");
  return p ? atoi(p + 9) : -1;
}

/* A free loopback TCP port (bound to 0, read back, released). */
static int free_tcp_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  int port = -1;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
    port = ntohs(sa.sin_port);
  if (fd >= 0) close(fd);
  return port;
}

/* One Step of toks on a fresh session of c; logits of the last token into out. */
static int step_once(struct wclient *c, const int32_t *toks, uint32_t n, float *out) {
  uint64_t sid = wc_session_open(c, 0, NULL);
  if (!sid) return -1;
  int rid = wc_send_step1(c, sid, toks, n, 1, 0, 4096);
  Realm__V1__WorkerReply *r = rid < 0 ? NULL : wc_recv_reply(c, (uint64_t)rid);
  int rc = wc_step_logits(c, r, 4096, out) == 0 ? 0 : -1;
  realm_frame_msg_free(r ? &r->base : NULL);
  return rc;
}

/* The in-process engine's logits for toks (the reference). */
static int reference_logits(const char *model, const int32_t *toks, uint32_t n, float *out) {
  char err[256];
  struct gguf_file *f = NULL;
  struct engine_model *m = NULL;
  struct engine *e = NULL;
  struct kv_seq *seq = NULL;
  struct engine_config ec = {.n_threads = 1, .kv_blocks = 64};
  int rc = gguf_open(model, &f, err, sizeof err);
  if (rc == 0) rc = engine_model_load(f, &m, err, sizeof err);
  if (rc == 0) rc = engine_create(m, &ec, &e, err, sizeof err);
  if (rc == 0) rc = kv_seq_open(engine_kv(e), NULL, &seq);
  if (rc == 0) {
    struct engine_seq_step s = {.seq = seq, .pos = 0, .tokens = toks, .n_tokens = n};
    struct engine_batch b = {.seqs = &s, .n_seqs = 1};
    rc = engine_forward(e, &b, out, err, sizeof err);
  }
  if (seq) kv_seq_close(engine_kv(e), seq);
  engine_destroy(e);
  engine_model_free(m);
  gguf_close(f);
  return rc;
}

TEST(jailed_worker_serves_connections_made_after_the_jail) {
  const char *bin = getenv("REALM_WORKER_BIN");
  if (!bin) SKIP("REALM_WORKER_BIN not set");
  struct wsite s;
  wsite_init(&s, "realm-wj");
  int port = free_tcp_port();
  CHECK(port > 0);
  char listen[256], tcp[64];
  snprintf(tcp, sizeof tcp, "tcp://127.0.0.1:%d", port);
  snprintf(listen, sizeof listen, "%s,%s", s.ep, tcp);
  char *argv[] = {(char *)bin, "--model", s.model, "--listen", listen, "--threads", "2", NULL};
  struct test_proc c;
  CHECK_EQ_INT(test_proc_spawn(&c, argv), 0);
  CHECK(test_proc_wait_log(&c, "worker ready", NULL, 20000));
  CHECK_STR_CONTAINS(c.out, "worker jailed");
  CHECK_EQ_INT(seccomp_mode(c.pid), 2); /* the filter is on before anyone connects */

  const int32_t toks_a[] = {1, 403, 407, 261}, toks_b[] = {1, 432, 383};
  void *z = zmq_ctx_new();
  struct wclient a, b;
  /* ipc:// with the memfd handshake, then tcp:// inline: both accepted after the jail. */
  CHECK_EQ_INT(wc_open(&a, z, s.ep, "tenant-a", "r0", 1, 0, 1 << 20), 0);
  CHECK(a.shm != NULL);
  CHECK_EQ_INT(wc_open(&b, z, tcp, "tenant-b", "r0", 1, 0, 0), 0);
  CHECK(b.shm == NULL);
  float *la = malloc(sizeof(float) * a.vocab), *lb = malloc(sizeof(float) * a.vocab),
        *ea = malloc(sizeof(float) * a.vocab), *eb = malloc(sizeof(float) * a.vocab);
  CHECK_EQ_INT(step_once(&a, toks_a, 4, la), 0);
  CHECK_EQ_INT(step_once(&b, toks_b, 3, lb), 0);
  CHECK_EQ_INT(reference_logits(s.model, toks_a, 4, ea), 0);
  CHECK_EQ_INT(reference_logits(s.model, toks_b, 3, eb), 0);
  CHECK_NEAR(realm_test_max_abs_diff(la, ea, a.vocab), 0, TOL);
  CHECK_NEAR(realm_test_max_abs_diff(lb, eb, a.vocab), 0, TOL);
  /* A third connection replacing the first (same replica): a second region handed over, with
   * a step lane this time: its eventfds and epoll registration are made inside the jail. */
  wc_close(&a);
  CHECK_EQ_INT(wc_open_lane(&a, z, s.ep, "tenant-a", "r0", 1, 0, 1 << 20), 0);
  CHECK(a.shm != NULL);
  CHECK(a.lane.base != NULL);
  CHECK_EQ_INT(step_once(&a, toks_a, 4, la), 0);
  CHECK_NEAR(realm_test_max_abs_diff(la, ea, a.vocab), 0, TOL);
  wc_close(&a);
  wc_close(&b);
  zmq_ctx_term(z);
  CHECK_EQ_INT(kill(c.pid, SIGTERM), 0);
  int st = test_proc_wait_exit(&c, 20000);
  if (st != 0) printf("# status %d, log:\n%s\n", st, c.out);
  CHECK_EQ_INT(st, 0); /* the drain and exit stay inside the jail too */
  CHECK_STR_CONTAINS(c.out, "worker stopped");
  CHECK_STR_CONTAINS(c.out, "lane_steps_total=1");
  free(la), free(lb), free(ea), free(eb);
  wsite_clean(&s);
}
