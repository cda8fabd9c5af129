/*
 * test_fault_runner.c — the runner's side of the shared-memory boundary: a fake realm-worker
 * (played by this test, one step at a time, no threads) answers the real realm-runner's
 * Hello and then hands over a region on the side socket. A region without
 * F_SEAL_SHRINK|F_SEAL_GROW could be truncated by that worker under the runner, whose next
 * access to a vanished page would SIGBUS; the runner must refuse it at the handshake and
 * exit with an error naming the seals. The control hands over a properly sealed region the
 * same way and the runner gets past the handshake (it logs "runner ready"), so the
 * refusal is about the seals and nothing else in the fake.
 *
 * And the other direction of a vanishing peer, with real processes: the real realm-worker is
 * SIGKILLed while the jailed realm-runner streams a request; the request fails with
 * `unavailable` and the runner exits 75 (RUNNER_EXIT_WORKER_LOST) for its supervisor.
 * (tests/unit/runner/test_runner.c worker_loss_fails_inflight_and_jailed_runner_exits does
 * the same with the fake worker's sockets closing.)
 *
 * And the runner stopped mid-stream: SIGTERM while it streams a request from the real worker
 * starts its drain, and the request still ends exactly as an undisturbed run of it did.
 *
 * Needs realm-runner ($REALM_RUNNER_BIN), realm-worker ($REALM_WORKER_BIN) and the moody.wasm
 * test guest ($REALM_TEST_RUNNER_GUESTS). Waits are bounded polls on sockets, pidfds and the
 * daemons' stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "proc_util.h"
#include "realm/error.h"
#include "realm/frame.h"
#include "realm/ipc.h"
#include "realm/proto.h"
#include "realm/shm.h"
#include "realm_test.h"
#include "runner_test_util.h"

#define REGION_BYTES (4u << 20) /* room for the tokens area and 16 rows of 512 logits */

struct fake {
  char dir[40], ep[160], side_path[100], listen[160];
  void *zctx, *router;
  int side_fd;
};

static int fake_up(struct fake *f) {
  memset(f, 0, sizeof *f);
  f->side_fd = -1;
  snprintf(f->dir, sizeof f->dir, "/tmp/realm-faultr-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  snprintf(f->ep, sizeof f->ep, "ipc://%s/worker.sock", f->dir);
  snprintf(f->side_path, sizeof f->side_path, "%s/worker-shm.sock", f->dir);
  snprintf(f->listen, sizeof f->listen, "ipc://%s/runner.sock", f->dir);
  char err[256];
  f->zctx = zmq_ctx_new();
  if (realm_ipc_socket_new(f->zctx, ZMQ_ROUTER, REALM_MAX_FRAME_BYTES, &f->router, err,
                           sizeof err) < 0 ||
      zmq_bind(f->router, f->ep) != 0)
    return -1;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->side_path);
  f->side_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (f->side_fd < 0 || bind(f->side_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(f->side_fd, 4) != 0)
    return -1;
  return 0;
}

static void fake_down(struct fake *f) {
  if (f->router) realm_ipc_socket_close(f->router);
  if (f->zctx) zmq_ctx_term(f->zctx);
  if (f->side_fd >= 0) close(f->side_fd);
  char p[200];
  snprintf(p, sizeof p, "%s/worker.sock", f->dir);
  unlink(p);
  unlink(f->side_path);
  snprintf(p, sizeof p, "%s/runner.sock", f->dir);
  unlink(p);
  rmdir(f->dir);
}

/* Spawns realm-runner against the fake, stderr captured. */
static int runner_up(struct test_proc *c, struct fake *f) {
  static char module[512], vocab[512], cache[512];
  const char *guests = getenv("REALM_TEST_RUNNER_GUESTS");
  snprintf(module, sizeof module, "%s/moody.wasm", guests ? guests : ".");
  snprintf(vocab, sizeof vocab, "%s/gguf/stories260K.gguf", realm_test_models_dir());
  const char *mc = getenv("REALM_TEST_MODULE_CACHE");
  snprintf(cache, sizeof cache, "%s", mc ? mc : f->dir);
  mkdir(cache, 0700);
  char *argv[] = {(char *)getenv("REALM_RUNNER_BIN"), "--tenant", "t1", "--worker", f->ep,
                  "--listen", f->listen, "--module", module, "--module-cache", cache,
                  "--vocab", vocab, "--connect-timeout", "10s", NULL};
  return test_proc_spawn(c, argv);
}

/* Plays the worker for one Hello: answers it, then serves the side-socket handshake with
 * region_fd. Returns 0 once the fd was sent. */
static int serve_hello(struct fake *f, int region_fd) {
  zmq_pollitem_t it = {.socket = f->router, .events = ZMQ_POLLIN};
  if (zmq_poll(&it, 1, 20000) != 1) return -1;
  char err[256];
  realm_ipc_peer peer;
  ProtobufCMessage *m = NULL;
  if (realm_ipc_recv(f->router, &peer, REALM_FRAME_WORKER_REQUEST,
                     &realm__v1__worker_request__descriptor, REALM_MAX_FRAME_BYTES, 0, &m, err,
                     sizeof err) < 0)
    return -1;
  Realm__V1__WorkerRequest *req = (Realm__V1__WorkerRequest *)m;
  if (req->body_case != REALM__V1__WORKER_REQUEST__BODY_HELLO || !req->hello->wants_shm) {
    realm_frame_msg_free(m);
    return -1;
  }
  uint8_t token[REALM_SHM_TOKEN_BYTES];
  for (int i = 0; i < REALM_SHM_TOKEN_BYTES; i++) token[i] = (uint8_t)(i * 7 + 1);
  Realm__V1__ModelInfo mi;
  realm__v1__model_info__init(&mi);
  mi.name = "fault-fake";
  mi.architecture = "llama";
  mi.vocab_size = 512; /* stories260K's vocabulary, which the runner was given */
  mi.n_ctx = 512;
  mi.n_embd = 64;
  mi.n_layer = 5;
  mi.bos_token_id = 1;
  mi.eos_token_id = 2;
  Realm__V1__HelloReply h;
  realm__v1__hello_reply__init(&h);
  h.connection_id = 7;
  h.model = &mi;
  h.max_batch_seqs = 16;
  h.max_step_tokens = 512;
  h.max_sessions = 64;
  h.weight = 1;
  h.kv_page_tokens = 16;
  h.shm_bytes = REGION_BYTES;
  h.shm_socket_path = f->side_path;
  h.shm_token.data = token;
  h.shm_token.len = sizeof token;
  Realm__V1__WorkerReply rep;
  realm__v1__worker_reply__init(&rep);
  rep.request_id = req->request_id;
  rep.body_case = REALM__V1__WORKER_REPLY__BODY_HELLO;
  rep.hello = &h;
  int rc = realm_ipc_send(f->router, &peer, REALM_FRAME_WORKER_REPLY, &rep.base, 0, err,
                          sizeof err);
  realm_frame_msg_free(m);
  if (rc < 0) return -1;
  struct pollfd p = {.fd = f->side_fd, .events = POLLIN};
  if (poll(&p, 1, 20000) != 1) return -1;
  int s = accept4(f->side_fd, NULL, NULL, SOCK_CLOEXEC);
  if (s < 0) return -1;
  uint8_t got[REALM_SHM_TOKEN_BYTES + 1];
  size_t n = 0;
  int passed = -1;
  p.fd = s;
  rc = poll(&p, 1, 20000) == 1 ? realm_fd_recv(s, &passed, got, sizeof got, &n, err, sizeof err)
                               : -1;
  if (passed >= 0) close(passed);
  uint8_t id[8] = {7};
  if (rc == 0 && n == sizeof token && memcmp(got, token, n) == 0)
    rc = realm_fd_send(s, region_fd, id, sizeof id, err, sizeof err);
  else
    rc = -1;
  close(s);
  return rc;
}

/* A memfd of REGION_BYTES, sealed against resizing when sealed is true. */
static int make_region(bool sealed) {
  int fd = memfd_create(sealed ? "fault-sealed" : "fault-unsealed",
                        MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0 || ftruncate(fd, REGION_BYTES) != 0) return -1;
  if (sealed && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
    return -1;
  return fd;
}

static bool prerequisites(void) {
  const char *bin = getenv("REALM_RUNNER_BIN"), *guests = getenv("REALM_TEST_RUNNER_GUESTS");
  char module[512];
  snprintf(module, sizeof module, "%s/moody.wasm", guests ? guests : ".");
  return bin && access(bin, X_OK) == 0 && access(module, R_OK) == 0;
}

TEST(runner_refuses_an_unsealed_region_from_a_fake_worker) {
  if (!prerequisites()) SKIP("realm-runner or moody.wasm not built");
  struct fake f;
  CHECK_EQ_INT(fake_up(&f), 0);
  struct test_proc c;
  CHECK_EQ_INT(runner_up(&c, &f), 0);
  int region = make_region(false);
  CHECK(region >= 0);
  CHECK_EQ_INT(serve_hello(&f, region), 0);
  /* The fake could now shrink the region at will; the runner must have said no. */
  int st = test_proc_wait_exit(&c, 20000);
  if (st == 0 || st >= 128) printf("# runner status %d, log:\n%s\n", st, c.out);
  CHECK(st > 0 && st < 128); /* an error exit, not a crash and not success */
  CHECK_STR_CONTAINS(c.out, "F_SEAL_SHRINK|F_SEAL_GROW");
  close(region);
  fake_down(&f);
}

TEST(control_runner_accepts_a_sealed_region_from_the_same_fake) {
  if (!prerequisites()) SKIP("realm-runner or moody.wasm not built");
  struct fake f;
  CHECK_EQ_INT(fake_up(&f), 0);
  struct test_proc c;
  CHECK_EQ_INT(runner_up(&c, &f), 0);
  int region = make_region(true);
  CHECK(region >= 0);
  CHECK_EQ_INT(serve_hello(&f, region), 0);
  /* Past the handshake the runner finishes set-up, jails itself and says so. */
  bool ready = test_proc_wait_log(&c, "runner ready", NULL, 20000);
  if (!ready) printf("# runner log:\n%s\n", c.out);
  CHECK(ready);
  CHECK(strstr(c.out, "F_SEAL") == NULL);
  CHECK(strstr(c.out, "set-up failed") == NULL);
  kill(c.pid, SIGTERM);
  test_proc_wait_exit(&c, 20000);
  close(region);
  fake_down(&f);
}

/* ---- the worker dies mid-stream ---- */

struct kill_ctx {
  pid_t worker;
  bool killed;
};

static void kill_worker_on_token(void *user, int idx, uint32_t n_tokens) {
  struct kill_ctx *k = user;
  (void)idx;
  if (!k->killed && n_tokens >= 2) {
    kill(k->worker, SIGKILL);
    k->killed = true;
  }
}

TEST(worker_killed_mid_stream_fails_inflight_unavailable_and_runner_exits_75) {
  if (!prerequisites() || !getenv("REALM_WORKER_BIN"))
    SKIP("realm-runner, realm-worker or moody.wasm not built");
  const char *dir = test_tmpdir();
  CHECK(dir != NULL);
  char ep[256], model[512];
  snprintf(ep, sizeof ep, "ipc://%s/worker.sock", dir);
  snprintf(model, sizeof model, "%s/gguf/stories260K.gguf", realm_test_models_dir());
  char *wargv[] = {(char *)getenv("REALM_WORKER_BIN"), "--model", model, "--listen", ep,
                   "--threads", "1", NULL};
  struct test_proc w;
  CHECK_EQ_INT(test_proc_spawn(&w, wargv), 0);
  CHECK(test_proc_wait_log(&w, "worker ready", NULL, 30000));
  char module[512];
  snprintf(module, sizeof module, "%s/moody.wasm", getenv("REALM_TEST_RUNNER_GUESTS"));
  struct runner_proc p;
  CHECK_EQ_INT(runner_spawn(getenv("REALM_RUNNER_BIN"), dir, ep, module, NULL, &p), 0);
  struct gw_client gw;
  CHECK_EQ_INT(gw_connect(&gw, p.listen), 0);
  bool up = false;
  for (int i = 0; i < 60 && !up; i++)
    if (gw_ping(&gw, 100 + (uint64_t)i, &up, 500) == 0 && !up) break;
  CHECK(up); /* the runner is connected to the worker (and jailed) */
  CHECK_EQ_INT(gw_generate(&gw, "victim", NULL, "x", 4000), 0);
  const char *ids[] = {"victim"};
  struct gw_result res[1];
  memset(res, 0, sizeof res);
  struct kill_ctx k = {.worker = w.pid};
  gw_collect(&gw, ids, res, 1, 30000, kill_worker_on_token, &k);
  CHECK(k.killed);
  int wst = test_proc_wait_status(&w, 10000);
  CHECK(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL);
  /* The in-flight request ends with a clean error, not silence. */
  CHECK(res[0].done && res[0].error);
  CHECK_STR_EQ(res[0].error_code, "unavailable");
  /* The jailed runner cannot reconnect (no socket()/connect()): it exits for a restart. */
  int st = runner_wait(p.pid, 20000);
  if (st != -1) p.pid = 0;
  gw_close(&gw);
  runner_stop(&p);
  CHECK(st != -1);
  CHECK(WIFEXITED(st));
  CHECK_EQ_INT(WEXITSTATUS(st), 75);
}

/* ---- the runner is stopped mid-stream (the drain, with the real worker) ---- */

#define DRAIN_TOKENS 200 /* greedy tokens of the request in flight (gw_result keeps 256 ids) */

struct term_ctx {
  pid_t runner;
  bool sent;
};

static void term_runner_on_token(void *user, int idx, uint32_t n_tokens) {
  struct term_ctx *t = user;
  (void)idx;
  if (!t->sent && n_tokens >= 2) {
    kill(t->runner, SIGTERM);
    t->sent = true;
  }
}

/* The real counterpart of tests/unit/runner/test_runner_drain.c: SIGTERM lands while the
 * jailed runner streams a greedy request from the real worker (stories260K). The runner checks
 * its stop flag on every loop turn, and each of the remaining ~198 tokens is one turn, so the
 * drain starts with the request in flight ("in_flight_at_start=1" proves it). The request must
 * then end exactly as an undisturbed run of the same request did a moment before (same ids,
 * LENGTH, usage), and the runner exit 0. */
TEST(sigterm_mid_stream_with_the_real_worker_lets_the_request_finish) {
  if (!prerequisites() || !getenv("REALM_WORKER_BIN"))
    SKIP("realm-runner, realm-worker or moody.wasm not built");
  const char *dir = test_tmpdir();
  CHECK(dir != NULL);
  static char ep[256], model[512], listen[256], module[512], vocab[512], cache[512];
  snprintf(ep, sizeof ep, "ipc://%s/worker.sock", dir);
  snprintf(listen, sizeof listen, "ipc://%s/runner.sock", dir);
  snprintf(model, sizeof model, "%s/gguf/stories260K.gguf", realm_test_models_dir());
  snprintf(module, sizeof module, "%s/moody.wasm", getenv("REALM_TEST_RUNNER_GUESTS"));
  snprintf(vocab, sizeof vocab, "%s", model);
  const char *mc = getenv("REALM_TEST_MODULE_CACHE");
  snprintf(cache, sizeof cache, "%s", mc ? mc : dir);
  mkdir(cache, 0700);
  char *wargv[] = {(char *)getenv("REALM_WORKER_BIN"), "--model", model, "--listen", ep,
                   "--threads", "1", NULL};
  char *rargv[] = {(char *)getenv("REALM_RUNNER_BIN"), "--tenant", "t1", "--worker", ep,
                   "--listen", listen, "--module", module, "--module-cache", cache,
                   "--vocab", vocab, "--connect-timeout", "10s", "--log-level", "info",
                   "--drain-timeout", "20s", NULL};
  struct test_proc w, r;
  CHECK_EQ_INT(test_proc_spawn(&w, wargv), 0);
  bool worker_ready = test_proc_wait_log(&w, "worker ready", NULL, 30000);
  bool runner_ready = false, up = false;
  static struct gw_result ref[1], res[1];
  memset(ref, 0, sizeof ref);
  memset(res, 0, sizeof res);
  struct term_ctx t = {0};
  bool drained = false;
  int code = -1;
  if (worker_ready && test_proc_spawn(&r, rargv) == 0) {
    t.runner = r.pid;
    runner_ready = test_proc_wait_log(&r, "runner ready", NULL, 30000);
    struct gw_client gw;
    if (runner_ready && gw_connect(&gw, listen) == 0) {
      for (int i = 0; i < 20 && !up; i++)
        if (gw_ping(&gw, 100 + (uint64_t)i, &up, 500) == 0 && !up) break;
      const char *ids_ref[] = {"reference"}, *ids[] = {"stopped"};
      if (up && gw_generate(&gw, "reference", NULL, "x", DRAIN_TOKENS) == 0)
        gw_collect(&gw, ids_ref, ref, 1, 30000, NULL, NULL);
      if (up && ref[0].done && gw_generate(&gw, "stopped", NULL, "x", DRAIN_TOKENS) == 0)
        gw_collect(&gw, ids, res, 1, 30000, term_runner_on_token, &t);
      gw_close(&gw);
    }
    drained = test_proc_wait_log(&r, "drain finished", NULL, 30000);
    if (!t.sent) kill(r.pid, SIGTERM);
    code = test_proc_wait_exit(&r, 30000);
    if (!drained || code != 0) printf("# runner log:\n%s\n", r.out);
  }
  kill(w.pid, SIGTERM);
  test_proc_wait_exit(&w, 20000);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) printf("# cannot remove %s\n", dir);
  CHECK(worker_ready);
  CHECK(runner_ready);
  CHECK(up);
  CHECK(ref[0].done && !ref[0].error);
  CHECK_EQ_INT(ref[0].completion_tokens, DRAIN_TOKENS);
  CHECK(t.sent);
  CHECK(res[0].done);
  CHECK(!res[0].error);
  CHECK_EQ_INT(res[0].finish_reason, REALM__V1__FINISH_REASON__FINISH_REASON_LENGTH);
  CHECK_EQ_INT(res[0].completion_tokens, DRAIN_TOKENS);
  CHECK_EQ_INT(res[0].n_tokens, DRAIN_TOKENS);
  for (int i = 0; i < DRAIN_TOKENS; i++) CHECK_EQ_INT(res[0].tokens[i], ref[0].tokens[i]);
  CHECK(drained);
  CHECK_STR_CONTAINS(r.out, "end=drained");
  CHECK_STR_CONTAINS(r.out, "in_flight_at_start=1");
  CHECK_STR_CONTAINS(r.out, "cut_off=0");
  CHECK_EQ_INT(code, 0);
}
