/*
 * test_fault_worker.c — faults at the worker's process boundaries (GitHub issue "Hardening"):
 * what a hostile or dying runner can do to the shared-memory region and to the ZeroMQ
 * conversation, against the real, jailed realm-worker ($REALM_WORKER_BIN, stories260K).
 *
 *  - The region a runner receives is sealed against shrinking and growing, so the runner
 *    cannot truncate it under the worker (whose next access to a vanished page would SIGBUS):
 *    ftruncate/fallocate by the peer fail with EPERM and the worker keeps serving.
 *  - A fake runner that attaches its own unsealed memfd to the handshake does not get it
 *    adopted: the worker closes it (no such fd left in /proc/WORKER/fd) and hands over its own
 *    sealed region.
 *  - A runner killed (SIGKILL) between sending a Step and receiving the reply: the worker
 *    drops that connection, frees its sessions' KV pages (Stats from another connection:
 *    connections back to 1, global KV pages equal to the observer's own), answers the other
 *    connection's Step, and serves a replacement connection of the killed tenant.
 *  - Every test ends with SIGTERM after its clients are gone, sessions left open: the worker's
 *    drain finds the peers gone (first probe round, or the next a second later) and ends
 *    `end=drained`, then exits 0 in its jail.
 *
 * Every wait is bounded (a pipe between the test and its forked "runner", pidfds, the
 * worker's log, zmq_poll on replies); the batch window is made long so that the killed
 * runner's Step is certainly still queued when it dies, and the pass that answers it is
 * triggered by the observer's own Step, not by a timer.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc_util.h"
#include "realm/error.h"
#include "realm_test.h"
#include "wclient.h"

/* Starts the jailed worker with extra arguments; 0 once it logged "worker ready". */
static int worker_up(struct test_proc *c, struct wsite *s, const char *const *extra) {
  const char *bin = getenv("REALM_WORKER_BIN");
  char *argv[24];
  int n = 0;
  argv[n++] = (char *)bin;
  argv[n++] = "--model", argv[n++] = s->model;
  argv[n++] = "--listen", argv[n++] = s->ep;
  argv[n++] = "--threads", argv[n++] = "1";
  for (int i = 0; extra && extra[i] && n < 23; i++) argv[n++] = (char *)extra[i];
  argv[n] = NULL;
  if (test_proc_spawn(c, argv) < 0) return -1;
  return test_proc_wait_log(c, "worker ready", NULL, 30000) ? 0 : -1;
}

/* SIGTERM; the worker's exit status (0 = drained and exited inside its jail), or -2 when its
 * drain did not end with end=drained. Every test closes its clients first, some with sessions
 * still open (and one runner was killed): the drain must not wait for those (its liveness
 * probe reaps them, docs/worker.md "Stop and drain"), so it ends long before --drain-timeout. */
static int worker_down(struct test_proc *c) {
  kill(c->pid, SIGTERM);
  int st = test_proc_wait_exit(c, 20000);
  const char *line = strstr(c->out, "drain finished");
  if (st == 0 && (!line || !strstr(line, "end=drained"))) st = -2;
  if (st != 0) printf("# worker status %d, log:\n%s\n", st, c->out);
  return st;
}

/* Stats as seen by c: connections, global KV pages, and c's own tenant's KV pages. */
static int stats(struct wclient *c, uint32_t *ret_conns, uint64_t *ret_pages,
                 uint64_t *ret_own_pages) {
  Realm__V1__WorkerReply *r = wc_stats(c);
  if (!r || r->body_case != REALM__V1__WORKER_REPLY__BODY_STATS) {
    realm_frame_msg_free(r ? &r->base : NULL);
    return -1;
  }
  *ret_conns = r->stats->connections;
  *ret_pages = r->stats->kv_pages_used;
  *ret_own_pages = r->stats->n_tenants > 0 ? r->stats->tenants[0]->kv_pages_used : 0;
  realm_frame_msg_free(&r->base);
  return 0;
}

/* How many of pid's open fds are memfds called name (/proc/PID/fd links read
 * "/memfd:NAME (deleted)"); -1 when the directory cannot be read. */
static int count_memfds(pid_t pid, const char *name) {
  char dir[64], link[320], target[256], want[128];
  snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
  snprintf(want, sizeof want, "/memfd:%s ", name);
  int n = 0, seen = 0;
  for (int fd = 0; fd < 4096; fd++) {
    snprintf(link, sizeof link, "%s/%d", dir, fd);
    ssize_t k = readlink(link, target, sizeof target - 1);
    if (k < 0) continue;
    seen++;
    target[k] = 0;
    if (strncmp(target, want, strlen(want)) == 0) n++;
  }
  return seen ? n : -1;
}

TEST(peer_cannot_resize_the_sealed_region_and_the_worker_keeps_serving) {
  if (!getenv("REALM_WORKER_BIN")) SKIP("REALM_WORKER_BIN not set");
  struct wsite s;
  wsite_init(&s, "realm-fault");
  struct test_proc w;
  CHECK_EQ_INT(worker_up(&w, &s, NULL), 0);
  void *z = zmq_ctx_new();
  struct wclient a;
  CHECK_EQ_INT(wc_open(&a, z, s.ep, "tenant-a", "r0", 1, 0, 1 << 20), 0);
  CHECK(a.shm != NULL);
  int fd = realm_shm_fd(a.shm);
  off_t size = (off_t)realm_shm_size(a.shm);
  int seals = fcntl(fd, F_GET_SEALS);
  CHECK((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW));
  CHECK(seals & F_SEAL_SEAL); /* and the seal set cannot be changed by the peer */
  uint64_t sid = wc_session_open(&a, 0, NULL);
  CHECK(sid != 0);
  const int32_t toks[] = {1, 403, 407, 261};
  CHECK_EQ_INT(wc_step_one(&a, sid, toks, 4), 0);
  /* Every way the peer could change the size is refused by the kernel. */
  errno = 0;
  CHECK(ftruncate(fd, 0) != 0 && errno == EPERM);
  errno = 0;
  CHECK(ftruncate(fd, size / 2) != 0 && errno == EPERM);
  errno = 0;
  CHECK(ftruncate(fd, size * 2) != 0 && errno == EPERM);
  errno = 0;
  CHECK(fallocate(fd, 0, size, 4096) != 0 && errno == EPERM);
  errno = 0;
  CHECK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) == 0 ||
        errno == EPERM); /* a hole only zeroes bytes (size unchanged): harmless either way */
  errno = 0;
  CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) != 0 && errno == EPERM);
  CHECK_EQ_INT(lseek(fd, 0, SEEK_END), size);
  /* The worker, which reads tokens and writes logits in this region, is unharmed. */
  uint64_t sid2 = wc_session_open(&a, 0, NULL);
  CHECK(sid2 != 0);
  CHECK_EQ_INT(wc_step_one(&a, sid2, toks, 4), 0);
  wc_close(&a);
  zmq_ctx_term(z);
  CHECK_EQ_INT(worker_down(&w), 0);
  wsite_clean(&s);
}

TEST(fd_attached_by_a_fake_runner_is_closed_and_the_real_region_is_sealed) {
  if (!getenv("REALM_WORKER_BIN")) SKIP("REALM_WORKER_BIN not set");
  struct wsite s;
  wsite_init(&s, "realm-fault");
  struct test_proc w;
  CHECK_EQ_INT(worker_up(&w, &s, NULL), 0);
  void *z = zmq_ctx_new();
  /* Hello over ZeroMQ as a runner would, then the side-socket handshake by hand with an
   * unsealed, resizable memfd attached to the token. */
  struct wclient a;
  CHECK_EQ_INT(wc_open(&a, z, s.ep, "tenant-a", "r0", 1, 0, 0), 0); /* inline: no region yet */
  Realm__V1__Hello h;
  realm__v1__hello__init(&h);
  h.tenant_id = "tenant-f";
  h.replica_id = "fake";
  h.weight = 1;
  h.wants_shm = true;
  h.shm_bytes = 1 << 20;
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  req.body_case = REALM__V1__WORKER_REQUEST__BODY_HELLO;
  req.hello = &h;
  struct wclient f;
  memset(&f, 0, sizeof f);
  CHECK_EQ_INT(realm_ipc_socket_new(z, ZMQ_DEALER, WC_MAX_PAYLOAD, &f.sock, f.err,
                                    sizeof f.err), 0);
  CHECK_EQ_INT(zmq_connect(f.sock, s.ep), 0);
  Realm__V1__WorkerReply *r = wc_call(&f, &req);
  CHECK(r && r->body_case == REALM__V1__WORKER_REPLY__BODY_HELLO && r->hello->shm_bytes > 0);
  int evil = memfd_create("fault-unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  CHECK(evil >= 0);
  CHECK_EQ_INT(ftruncate(evil, 1 << 20), 0);
  int side = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", r->hello->shm_socket_path);
  CHECK(side >= 0 && connect(side, (struct sockaddr *)&sa, sizeof sa) == 0);
  char err[256];
  CHECK_EQ_INT(realm_fd_send(side, evil, r->hello->shm_token.data, r->hello->shm_token.len, err,
                             sizeof err), 0);
  struct pollfd p = {.fd = side, .events = POLLIN};
  CHECK_EQ_INT(poll(&p, 1, 10000), 1);
  int got = -1;
  uint8_t idb[8];
  size_t n = 0;
  CHECK_EQ_INT(realm_fd_recv(side, &got, idb, sizeof idb, &n, err, sizeof err), 0);
  close(side);
  realm_frame_msg_free(&r->base);
  /* What came back is the worker's own region, sealed; adopting it works. */
  CHECK(got >= 0 && n == 8);
  int seals = fcntl(got, F_GET_SEALS);
  CHECK((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW));
  realm_shm *region = NULL;
  CHECK_EQ_INT(realm_shm_from_fd(got, 1 << 20, true, &region, err, sizeof err), 0);
  /* The same unsealed memfd offered to the adopting side is refused (what a runner does
   * with a region from a fake worker: runner_worker.c uses realm_shm_from_fd). */
  realm_shm *bad = NULL;
  CHECK_EQ_INT(realm_shm_from_fd(evil, 1 << 20, true, &bad, err, sizeof err), REALM_E_PERMISSION);
  CHECK_STR_CONTAINS(err, "F_SEAL_SHRINK|F_SEAL_GROW");
  /* The worker did not keep the fake runner's fd (it closes fds runners attach before it
   * replies, so this holds now), while the control, its own region for this connection, is
   * seen the same way. */
  uint64_t id = 0;
  for (int i = 0; i < 8; i++) id |= (uint64_t)idb[i] << (8 * i);
  char own[64];
  snprintf(own, sizeof own, "realm-conn-%llu", (unsigned long long)id);
  CHECK_EQ_INT(count_memfds(w.pid, own), 1);
  CHECK_EQ_INT(count_memfds(w.pid, "fault-unsealed"), 0);
  close(evil);
  realm_shm_destroy(region);
  realm_ipc_socket_close(f.sock);
  wc_close(&a);
  zmq_ctx_term(z);
  CHECK_EQ_INT(worker_down(&w), 0);
  wsite_clean(&s);
}

/* The killed "runner": a forked child with its own ZeroMQ context. It opens a session, runs a
 * first Step (KV pages now held), tells the parent ('A'), waits for 'B' (the observer has a
 * session, so the next Step waits for the batch window), sends a second Step and a Stats
 * request, and once the Stats reply proves the worker has read the Step, says 'C' and
 * SIGKILLs itself with the Step unanswered. Exit codes name the step that failed. */
static void victim_main(const char *ep, int to_parent, int from_parent) {
  void *z = zmq_ctx_new();
  struct wclient v;
  if (wc_open(&v, z, ep, "victim", "r0", 1, 0, 1 << 20) != 0) _exit(10);
  uint64_t sid = wc_session_open(&v, 0, NULL);
  if (!sid) _exit(11);
  const int32_t toks[] = {1, 403, 407, 261, 400, 300, 280, 270};
  if (wc_step_one(&v, sid, toks, 8) != 0) _exit(12);
  char ch = 'A';
  if (write(to_parent, &ch, 1) != 1) _exit(13);
  if (read(from_parent, &ch, 1) != 1 || ch != 'B') _exit(14);
  int rid = wc_send_step1(&v, sid, toks + 4, 4, 1, 0, 4096);
  if (rid < 0) _exit(15);
  Realm__V1__StatsRequest sr;
  realm__v1__stats_request__init(&sr);
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  req.body_case = REALM__V1__WORKER_REQUEST__BODY_STATS;
  req.stats = &sr;
  if (wc_send(&v, &req) < 0) _exit(16);
  for (int i = 0; i < 8; i++) {
    Realm__V1__WorkerReply *r = wc_recv(&v, 10000);
    if (!r) _exit(17);
    if (r->request_id == (uint64_t)rid) _exit(18); /* the Step was answered: nothing in flight */
    if (r->request_id == req.request_id) break;
    realm_frame_msg_free(&r->base);
  }
  ch = 'C';
  if (write(to_parent, &ch, 1) != 1) _exit(19);
  raise(SIGKILL);
  _exit(20);
}

TEST(runner_killed_mid_step_is_dropped_its_sessions_freed_and_others_served) {
  if (!getenv("REALM_WORKER_BIN")) SKIP("REALM_WORKER_BIN not set");
  struct wsite s;
  wsite_init(&s, "realm-fault");
  struct test_proc w;
  /* A 2 s batch window: the victim's second Step waits in the queue (the observer has a
   * session without a queued Step) until the observer's Step makes the pass run at once.
   * The idle timeouts are the worker's backstop for a silent dead peer; 20 s keeps them out
   * of this test, which must see the reply-path drop. */
  const char *extra[] = {"--batch-window-us", "2000000", "--idle-session-timeout", "20s", NULL};
  CHECK_EQ_INT(worker_up(&w, &s, extra), 0);
  int up[2], down[2];
  CHECK(pipe2(up, O_CLOEXEC) == 0 && pipe2(down, O_CLOEXEC) == 0);
  pid_t child = fork(); /* before this process makes a ZeroMQ context */
  CHECK(child >= 0);
  if (child == 0) {
    close(up[0]);
    close(down[1]);
    victim_main(s.ep, up[1], down[0]);
  }
  close(up[1]);
  close(down[0]);
  void *z = zmq_ctx_new();
  struct wclient o;
  CHECK_EQ_INT(wc_open(&o, z, s.ep, "observer", "r0", 1, 0, 1 << 20), 0);
  struct pollfd pu = {.fd = up[0], .events = POLLIN};
  char ch = 0;
  CHECK(poll(&pu, 1, 20000) == 1 && read(up[0], &ch, 1) == 1 && ch == 'A');
  uint32_t conns = 0;
  uint64_t pages = 0, own = 0;
  CHECK_EQ_INT(stats(&o, &conns, &pages, &own), 0);
  CHECK_EQ_INT(conns, 2);
  CHECK(pages > own); /* the victim's session holds KV pages */
  uint64_t sid = wc_session_open(&o, 0, NULL);
  CHECK(sid != 0);
  ch = 'B';
  CHECK(write(down[1], &ch, 1) == 1);
  CHECK(poll(&pu, 1, 20000) == 1 && read(up[0], &ch, 1) == 1 && ch == 'C');
  int st = test_proc_reap(child, 10000);
  CHECK(st != -1);
  if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) printf("# victim status 0x%x\n", st);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  /* The observer's Step runs the pass that also holds the dead runner's Step. */
  const int32_t toks[] = {1, 432, 383};
  CHECK_EQ_INT(wc_step_one(&o, sid, toks, 3), 0);
  /* The drop happens when the dead runner's reply cannot be delivered, in that same pass;
   * Stats is answered after it. A few more round trips are allowed for libzmq to report the
   * pipe gone, never a timer. */
  bool freed = false;
  for (int i = 0; i < 200 && !freed; i++) {
    CHECK_EQ_INT(stats(&o, &conns, &pages, &own), 0);
    freed = conns == 1 && pages == own;
  }
  if (!freed) printf("# connections %u, kv pages %llu, observer's %llu\n", conns,
                     (unsigned long long)pages, (unsigned long long)own);
  CHECK(freed);
  /* A restarted runner of the killed tenant is served. */
  struct wclient v2;
  CHECK_EQ_INT(wc_open(&v2, z, s.ep, "victim", "r0", 1, 0, 1 << 20), 0);
  uint64_t sid2 = wc_session_open(&v2, 0, NULL);
  CHECK(sid2 != 0);
  CHECK_EQ_INT(wc_step_one(&v2, sid2, toks, 3), 0);
  CHECK_EQ_INT(wc_step_one(&o, sid, toks + 2, 1), 0);
  wc_close(&v2);
  wc_close(&o);
  zmq_ctx_term(z);
  close(up[0]);
  close(down[1]);
  CHECK_EQ_INT(worker_down(&w), 0);
  wsite_clean(&s);
}
