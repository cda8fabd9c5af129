/*
 * policy-worker.c — the worker role's jail (DESIGN.md §5): not dumpable, no core files, a
 * fixed time zone, then the seccomp allowlist on every thread (TSYNC).
 *
 * By the time worker_jail() runs, worker_create() has loaded the model into its sealed memfd,
 * created the engine (its thread pool threads exist and only ever wait on futexes), bound the
 * ROUTER (libzmq's I/O and reaper threads exist) and the shm handshake socket. What the
 * jailed worker still does, and therefore what is allowed:
 *  - serve requests on existing fds: poll, recv/send, read/write (stderr logs, wake pipe);
 *  - accept NEW runner connections: libzmq's I/O thread accepts on the bound ipc:// or tcp://
 *    listener (accept4), names and tunes the new socket (getsockname, getpeername,
 *    setsockopt for tcp://), and the loop accepts on the shm handshake socket (accept4);
 *  - give each new connection its region: memfd_create + ftruncate + fcntl(F_ADD_SEALS) +
 *    mmap (never PROT_EXEC) in realm_shm_create, sendmsg with SCM_RIGHTS to hand it over,
 *    getrandom for its token;
 *  - compute: the engine's threads wait and wake on futexes, malloc/free.
 * Never allowed: openat/open (no file can be read or written once jailed: the model is
 * already mapped), socket/connect/bind/listen (no new endpoint, no outgoing connection),
 * execve/execveat, fork/vfork and clone (the worker creates no thread once jailed, so even
 * CLONE_THREAD is refused), unlink, ptrace, prctl other than PR_SET_NAME, seccomp,
 * real-time scheduling, executable mappings.
 *
 * Consequences, by design: a jailed worker cannot tear libzmq down (closing an ipc://
 * listener unlinks its file), so main.c leaves the process with _exit after the drain; the
 * next worker replaces the stale socket files (worker.c and conn.c probe them first).
 *
 * A CUDA backend is not jailed: the driver opens /dev/nvidia*, mmaps them and issues ioctls
 * (and may start threads) during the run, none of which an allowlist can tell apart from an
 * escape. worker_jail() refuses such a backend; main.c logs it loudly and runs unjailed.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#include "internal.h"
#include "realm/seccomp.h"

/* The worker's allowlist, in the order it is built: named sets first (each rule's reason
 * is in common/src/seccomp.c), then single syscalls. "threads" is deliberately absent: no
 * thread is created after the jail. */
static const struct realm_seccomp_entry worker_rules[] = {
    REALM_SECCOMP_SET("basic-io", "read/write/close on existing fds; fcntl (F_ADD_SEALS on a new "
                                  "memfd)"),
    REALM_SECCOMP_SET("memory", "malloc, the region mmap; mmap/mprotect never with PROT_EXEC"),
    REALM_SECCOMP_SET("time", "monotonic clock for batching windows, timeouts and log timestamps"),
    REALM_SECCOMP_SET("signals", "the SIGTERM handler returns (rt_sigreturn); abort() on our own "
                                 "pid"),
    REALM_SECCOMP_SET("process", "own ids, getrandom (shm tokens), sched_yield"),
    REALM_SECCOMP_SET("zmq-io", "libzmq's I/O thread on existing sockets: epoll, poll, send/recv, "
                                "sendmsg"),
    REALM_SECCOMP_SET("exit", "exit and exit_group"),
    REALM_SECCOMP_SYSCALL("futex", "the engine thread pool waits and wakes on futexes; mutexes in "
                                   "libzmq and malloc"),
    REALM_SECCOMP_SYSCALL("accept4", "new runner connections: libzmq's listener and the shm "
                                     "handshake socket"),
    REALM_SECCOMP_SYSCALL("getsockname", "libzmq names an accepted connection's local address"),
    REALM_SECCOMP_SYSCALL("getpeername", "libzmq names an accepted connection's peer"),
    REALM_SECCOMP_SYSCALL("setsockopt", "libzmq tunes an accepted tcp:// connection (TCP_NODELAY, "
                                        "keep-alive)"),
    REALM_SECCOMP_SYSCALL("memfd_create", "each new connection's shared region (anonymous memory, "
                                          "no path)"),
    REALM_SECCOMP_SYSCALL("ftruncate", "sizes a new region before it is sealed against resizing"),
    /* No thread is created after the jail, but TSYNC also reaches threads created just
     * before it (libzmq's I/O thread starts when the first socket is made) that may still be
     * in glibc's thread start-up, which registers these two per-thread lists. Refusing them
     * killed the worker at random under `realmctl up` (audit: syscall 334, rseq). */
    REALM_SECCOMP_SYSCALL("rseq", "a just-created thread registers its restartable-sequence area "
                                  "(glibc >= 2.35)"),
    REALM_SECCOMP_SYSCALL("set_robust_list", "a just-created thread registers its robust-futex "
                                             "list"),
    /* The same race, one step later: the new threads name themselves and apply their
     * scheduling policy (realm/seccomp.h explains; seen under scripts/sanitize.sh). */
    REALM_SECCOMP_ZMQ_THREAD_START,
};

static const struct realm_seccomp_role worker_role = REALM_SECCOMP_ROLE("worker", worker_rules);

int worker_policy_export(int fd, char *err, size_t errlen) {
  return realm_seccomp_role_export(&worker_role, fd, err, errlen);
}

int worker_jail(struct worker *w, char *err, size_t errlen) {
  if (w->device) {
    snprintf(err, errlen, "backend %s: the CUDA driver opens and ioctls /dev/nvidia* at run "
             "time; the worker cannot be jailed with it", engine_backend_name(w->engine));
    return REALM_E_UNSUPPORTED;
  }
  /* No core file holding weights or tenants' activations; no ptrace attach by same-uid
   * processes (and /proc/PID files become root-owned). */
  struct rlimit rl = {0, 0};
  if (setrlimit(RLIMIT_CORE, &rl) != 0) {
    snprintf(err, errlen, "setrlimit(RLIMIT_CORE, 0): %s", strerror(errno));
    return REALM_E_SYSTEM;
  }
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    snprintf(err, errlen, "prctl(PR_SET_DUMPABLE, 0): %s", strerror(errno));
    return REALM_E_SYSTEM;
  }
  /* strftime (log timestamps) calls tzset, which opens /etc/localtime the first time: a
   * POSIX TZ string is parsed without touching the file system. */
  setenv("TZ", "UTC0", 1);
  tzset();
  return realm_seccomp_role_install(&worker_role, err, errlen);
}
