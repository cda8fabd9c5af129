/*
 * policy-runner.c — the runner role's jail (DESIGN.md §5): privileges, rlimits, dumpability
 * and the seccomp allowlist, applied once set-up is complete.
 *
 * By the time runner_jail() runs, runner_new() has loaded and dlopen'ed the guest module,
 * read the vocabulary, bound the gateway ROUTER, connected the worker DEALER, completed one
 * ZeroMQ round trip (Hello) and mapped the shared region, and instantiated the guest once
 * (so the sandbox's deadline timer and alternate signal stack exist). What remains is reading
 * and writing existing fds, polling, allocating non-executable memory, arming the existing
 * timer and handling its signal. Everything else kills the process (SIGSYS), which its
 * supervisor sees and restarts; only that replica's requests fail. The guest ABI v1 additions
 * need nothing more: model metadata, merges and the tenant's chat template (--chat-template
 * @FILE included) are copied into private memory by runner_new(), and top logprobs and finish
 * reasons only travel on the existing gateway socket (tests/security checks a jailed runner
 * serving them).
 *
 * Consequences, by design: the runner opens no file and no socket once jailed (openat,
 * socket, connect are absent), so a new guest module needs a runner restart, and a lost
 * worker connection makes the runner exit with RUNNER_EXIT_WORKER_LOST for a fresh start.
 * The gateway side keeps working because accept4 on the already-bound listener is allowed.
 */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "realm/seccomp.h"
#include "runner_internal.h"

/* The runner's allowlist, in the order it is built: named sets first (each rule's reason
 * is in common/src/seccomp.c), then single syscalls. */
static const struct realm_seccomp_entry runner_rules[] = {
    REALM_SECCOMP_SET("basic-io", "read/write/close on fds opened before the jail; stderr logging"),
    REALM_SECCOMP_SET("memory", "malloc and guest linear memory; mmap/mprotect never with "
                                "PROT_EXEC"),
    REALM_SECCOMP_SET("time", "clocks; timer_settime arms the guest deadline timer made before the "
                              "jail"),
    REALM_SECCOMP_SET("signals", "the deadline/fault handlers: rt_sigaction, rt_sigreturn, "
                                 "sigaltstack, tgkill on our own pid (abort)"),
    REALM_SECCOMP_SET("process", "own ids, getrandom, sched_yield"),
    REALM_SECCOMP_SET("zmq-io", "libzmq's I/O thread on existing sockets: epoll, poll, send/recv"),
    REALM_SECCOMP_SET("exit", "exit and exit_group"),
    REALM_SECCOMP_SYSCALL("futex", "mutexes and condition variables inside libzmq and malloc "
                                   "(no thread creation: the \"threads\" set is deliberately "
                                   "not allowed)"),
    REALM_SECCOMP_SYSCALL("accept4", "a gateway (re)connecting to the ROUTER bound before the "
                                     "jail"),
    REALM_SECCOMP_SYSCALL("getsockname", "libzmq names an accepted connection's local address for "
                                         "its events"),
    REALM_SECCOMP_SYSCALL("getpeername", "libzmq names an accepted connection's peer for its "
                                         "events"),
    REALM_SECCOMP_SYSCALL("setsockopt", "libzmq tunes an accepted connection (buffer sizes, "
                                        "keep-alive)"),
    /* The worker handshake before the jail normally proves libzmq's threads have started,
     * but a runner jailed without a worker must not die of a slow thread start. */
    REALM_SECCOMP_ZMQ_THREAD_START,
};

static const struct realm_seccomp_role runner_role = REALM_SECCOMP_ROLE("runner", runner_rules);

int runner_policy_export(int fd, char *err, size_t errlen) {
  return realm_seccomp_role_export(&runner_role, fd, err, errlen);
}

/* Highest open fd number, from /proc/self/fd (read before the jail); -1 when unreadable. */
static int highest_fd(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int hi = -1, self = dirfd(d);
  struct dirent *e;
  while ((e = readdir(d))) {
    char *end;
    long fd = strtol(e->d_name, &end, 10);
    if (*end || end == e->d_name || fd == self) continue;
    if (fd > hi) hi = (int)fd;
  }
  closedir(d);
  return hi;
}

static bool is_regular_file(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

static int set_limit(int resource, rlim_t value, const char *name, char *err, size_t errlen) {
  struct rlimit rl = {.rlim_cur = value, .rlim_max = value};
  if (setrlimit(resource, &rl) != 0) {
    snprintf(err, errlen, "setrlimit(%s, %llu): %s", name, (unsigned long long)value,
             strerror(errno));
    return REALM_E_SYSTEM;
  }
  return REALM_OK;
}

int runner_jail(struct runner *r, const struct runner_jail_options *opts, char *err,
                size_t errlen) {
  /* 1. Privileges: a root runner becomes an unprivileged user; supplementary groups go first
   * (they cannot be dropped after setuid). */
  if (geteuid() == 0 && opts->drop_privileges) {
    if (setgroups(0, NULL) != 0 || setgid(opts->gid) != 0 || setuid(opts->uid) != 0) {
      snprintf(err, errlen, "dropping privileges to uid %u gid %u: %s", opts->uid, opts->gid,
               strerror(errno));
      return REALM_E_SYSTEM;
    }
    if (setuid(0) == 0) {
      snprintf(err, errlen, "privileges were not dropped: setuid(0) still succeeds");
      return REALM_E_SYSTEM;
    }
  }
  /* Sanitized builds only: LeakSanitizer checks set-up now, while it may still start its
   * tracer process (RLIMIT_NPROC 0 below forbids that); a no-op in production builds. */
  realm_seccomp_leak_check_before_jail();
  /* 2. Limits. NOFILE: fd numbers above today's highest plus room for gateway reconnects.
   * NPROC 0: no new processes or threads (the runner creates none once jailed; libzmq's
   * threads exist already). CORE 0: no core file holding tenant data. FSIZE 0: no file
   * growth — skipped when our own stdout/stderr is a regular file, whose log lines would
   * otherwise raise SIGXFSZ. */
  int hi = highest_fd();
  int rc = set_limit(RLIMIT_NOFILE, (rlim_t)(hi < 0 ? 1024 : hi + 1) + opts->fd_margin,
                     "RLIMIT_NOFILE", err, errlen);
  if (rc == 0) rc = set_limit(RLIMIT_NPROC, 0, "RLIMIT_NPROC", err, errlen);
  if (rc == 0) rc = set_limit(RLIMIT_CORE, 0, "RLIMIT_CORE", err, errlen);
  if (rc == 0 && !is_regular_file(STDOUT_FILENO) && !is_regular_file(STDERR_FILENO))
    rc = set_limit(RLIMIT_FSIZE, 0, "RLIMIT_FSIZE", err, errlen);
  if (rc < 0) return rc;
  /* 3. No ptrace attach by same-uid processes, no core dumps, /proc/PID files root-owned. */
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    snprintf(err, errlen, "prctl(PR_SET_DUMPABLE, 0): %s", strerror(errno));
    return REALM_E_SYSTEM;
  }
  /* 4. strftime (log timestamps) calls tzset, which opens /etc/localtime the first time:
   * a POSIX TZ string is parsed without touching the file system. */
  setenv("TZ", "UTC0", 1);
  tzset();
  /* 5. The syscall allowlist, on every thread (libzmq's I/O and reaper threads too). */
  rc = realm_seccomp_role_install(&runner_role, err, errlen);
  if (rc < 0) return rc;
  runner_set_jailed(r);
  return REALM_OK;
}
