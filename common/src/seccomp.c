/*
 * seccomp.c — the named syscall sets every role's allowlist is built from, and the small
 * wrapper over libseccomp that applies them: default action kill-process, argument
 * constraints for the syscalls that could create executable memory, new processes or signal
 * other processes, NO_NEW_PRIVS and TSYNC at install.
 *
 * Sets are written for x86-64 first; a name that does not exist on the build architecture is
 * skipped when a set is applied (e.g. poll and epoll_wait do not exist on aarch64, whose libc
 * uses ppoll and epoll_pwait, which are listed too). Every entry says why a role needs it: a
 * syscall nobody can justify in one line does not belong in a set.
 */
#include "realm/seccomp.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#define A REALM_SECCOMP_ALLOW
#define NOEXEC REALM_SECCOMP_ALLOW_NO_EXEC
#define THREAD REALM_SECCOMP_ALLOW_THREAD
#define SELF REALM_SECCOMP_ALLOW_SELF
#define ENOSYS_ REALM_SECCOMP_ENOSYS

/* ---- the sets ---- */

static const struct realm_seccomp_rule set_basic_io[] = {
    {"read", A, "read from sockets, pipes and eventfds opened before the jail"},
    {"write", A, "log lines to stderr, wake pipes and eventfds"},
    {"readv", A, "scatter reads by stdio and libzmq"},
    {"writev", A, "gather writes by stdio and libzmq"},
    {"pread64", A, "positioned reads of already-open memfds"},
    {"pwrite64", A, "positioned writes of already-open memfds"},
    {"close", A, "release fds (a closed fd cannot be reopened: open is not allowed)"},
    {"lseek", A, "stdio repositioning on already-open files"},
    {"fstat", A, "stdio asks a stream's block size on first use"},
    {"newfstatat", A, "glibc >= 2.33 implements fstat(fd) as fstatat(fd, \"\", AT_EMPTY_PATH)"},
    {"fcntl", A, "read/set O_NONBLOCK and FD_CLOEXEC on existing fds; F_GET_SEALS on memfds"},
};

static const struct realm_seccomp_rule set_memory[] = {
    {"mmap", NOEXEC, "malloc arenas, large allocations, thread stacks; never executable"},
    {"munmap", A, "free(3) of large blocks and arenas"},
    {"mremap", A, "realloc(3) of large blocks (keeps the original protection)"},
    {"mprotect", NOEXEC, "malloc arena growth and stack guard pages; never executable"},
    {"brk", A, "main-arena heap growth in malloc"},
    {"madvise", A, "free(3) and thread exit return pages with MADV_DONTNEED"},
};

static const struct realm_seccomp_rule set_time[] = {
    {"clock_gettime", A, "deadlines and log timestamps (when the vDSO falls back to the kernel)"},
    {"clock_getres", A, "timer resolution queries by libc and libzmq"},
    {"gettimeofday", A, "legacy time source some libraries use"},
    {"time", A, "legacy time source some libraries use"},
    {"nanosleep", A, "short back-off sleeps"},
    {"clock_nanosleep", A, "glibc implements nanosleep/usleep with it"},
    {"timer_settime", A, "arm the per-call guest deadline timer created before the jail"},
    {"timer_gettime", A, "read the guest deadline timer"},
    {"timer_getoverrun", A, "deadline timer bookkeeping"},
    {"timerfd_settime", A, "arm timerfds created before the jail (event loops)"},
    {"timerfd_gettime", A, "read timerfds"},
};

static const struct realm_seccomp_rule set_signals[] = {
    {"rt_sigaction", A, "install handlers (deadline timer, SIGTERM for shutdown)"},
    {"rt_sigprocmask", A, "block signals around critical sections; libc does it in fork-free paths"},
    {"rt_sigreturn", A, "return from every signal handler"},
    {"sigaltstack", A, "handlers run on an alternate stack after a guest stack overflow"},
    {"getpid", A, "raise()/abort() need their own process id"},
    {"gettid", A, "raise()/abort() and logging need the thread id"},
    {"tgkill", SELF, "raise()/abort() and the deadline timer signal our own threads only"},
};

static const struct realm_seccomp_rule set_process[] = {
    {"getpid", A, "own process id (logs, self-signalling)"},
    {"gettid", A, "own thread id"},
    {"getrandom", A, "seeds for samplers and libsodium; no file access needed"},
    {"sched_yield", A, "spin-wait back-off in libzmq and thread pools"},
    {"sched_getaffinity", A, "libc sysconf(_SC_NPROCESSORS_ONLN) sizes thread pools"},
    {"restart_syscall", A, "kernel restarts an interrupted sleep after a signal"},
};

static const struct realm_seccomp_rule set_threads[] = {
    {"futex", A, "mutexes, condition variables, pthread_join"},
    {"clone", THREAD, "pthread_create; only with CLONE_THREAD, so never a new process"},
    {"clone3", ENOSYS_, "its flags live in memory seccomp cannot inspect: ENOSYS makes glibc "
                        "fall back to clone, which is checked"},
    {"set_robust_list", A, "every new thread registers its robust-futex list"},
    {"rseq", A, "every new thread registers restartable sequences (glibc >= 2.35)"},
    {"exit", A, "a thread ends"},
    {"madvise", A, "glibc frees a finished thread's stack with MADV_DONTNEED"},
    {"mprotect", NOEXEC, "guard page of a new thread stack; never executable"},
    {"mmap", NOEXEC, "new thread stacks; never executable"},
    {"munmap", A, "thread stacks freed"},
    {"sched_yield", A, "spin back-off in thread pools"},
};

static const struct realm_seccomp_rule set_zmq_io[] = {
    {"epoll_wait", A, "libzmq's I/O thread waits for socket readiness"},
    {"epoll_pwait", A, "same, on architectures/libcs that only have epoll_pwait"},
    {"epoll_ctl", A, "libzmq adds and removes existing fds from its poller"},
    {"poll", A, "zmq_poll and libzmq's signaler wait"},
    {"ppoll", A, "poll on architectures/libcs that only have ppoll"},
    {"eventfd2", A, "libzmq creates mailbox signalers lazily (e.g. zmq_poll's first call)"},
    {"recvfrom", A, "libzmq reads frames from connected sockets"},
    {"sendto", A, "libzmq writes frames to connected sockets"},
    {"recvmsg", A, "libzmq/our fd passing reads messages from connected sockets"},
    {"sendmsg", A, "libzmq/our fd passing writes messages to connected sockets"},
    {"getsockopt", A, "libzmq reads SO_ERROR after a poll reports an error"},
    {"shutdown", A, "libzmq closes a connection cleanly on peer error"},
};

static const struct realm_seccomp_rule set_exit[] = {
    {"exit_group", A, "_exit(2) and normal process exit"},
    {"exit", A, "a thread (or a libc without exit_group) ends"},
};

#define SET(name, purpose, rules) {name, purpose, rules, sizeof rules / sizeof rules[0]}
static const struct realm_seccomp_set all_sets[] = {
    SET("basic-io", "reads and writes on fds opened before the jail", set_basic_io),
    SET("memory", "heap and mappings, never executable", set_memory),
    SET("time", "clocks, sleeps and already-created timers", set_time),
    SET("signals", "handlers, masks, self-signalling", set_signals),
    SET("process", "own ids, randomness, scheduling hints", set_process),
    SET("threads", "creating and ending threads (not processes)", set_threads),
    SET("zmq-io", "what libzmq's I/O thread keeps calling on existing sockets", set_zmq_io),
    SET("exit", "ending the process and its threads", set_exit),
};
#undef SET
#undef A
#undef NOEXEC
#undef THREAD
#undef SELF
#undef ENOSYS_

size_t realm_seccomp_set_count(void) { return sizeof all_sets / sizeof all_sets[0]; }

const struct realm_seccomp_set *realm_seccomp_set_at(size_t index) {
  return index < realm_seccomp_set_count() ? &all_sets[index] : NULL;
}

const struct realm_seccomp_set *realm_seccomp_find_set(const char *name) {
  for (size_t i = 0; name && i < realm_seccomp_set_count(); i++)
    if (strcmp(all_sets[i].name, name) == 0) return &all_sets[i];
  return NULL;
}

const char *realm_seccomp_kind_name(realm_seccomp_rule_kind kind) {
  switch (kind) {
  case REALM_SECCOMP_ALLOW: return "allow";
  case REALM_SECCOMP_ALLOW_NO_EXEC: return "allow without PROT_EXEC";
  case REALM_SECCOMP_ALLOW_THREAD: return "allow with CLONE_THREAD only";
  case REALM_SECCOMP_ALLOW_SELF: return "allow on own pid only";
  case REALM_SECCOMP_ENOSYS: return "fail with ENOSYS";
  }
  return "unknown";
}

/* Syscalls that are never allowed bare, whichever way they are added (set or by name). Every
 * set entry for one of these must carry the same kind (checked by test_seccomp). */
static const struct realm_seccomp_rule constrained[] = {
    {"mmap", REALM_SECCOMP_ALLOW_NO_EXEC, "no new executable memory"},
    {"mprotect", REALM_SECCOMP_ALLOW_NO_EXEC, "no turning data into code"},
    {"pkey_mprotect", REALM_SECCOMP_ALLOW_NO_EXEC, "same as mprotect, with a protection key"},
    {"clone", REALM_SECCOMP_ALLOW_THREAD, "threads only; a new process would escape the role"},
    {"clone3", REALM_SECCOMP_ENOSYS, "flags unreadable by seccomp; libc falls back to clone"},
    {"tgkill", REALM_SECCOMP_ALLOW_SELF, "signal only our own threads"},
    {"kill", REALM_SECCOMP_ALLOW_SELF, "signal only our own process"},
};

realm_seccomp_rule_kind realm_seccomp_kind_for(const char *syscall) {
  for (size_t i = 0; syscall && i < sizeof constrained / sizeof constrained[0]; i++)
    if (strcmp(constrained[i].syscall, syscall) == 0) return constrained[i].kind;
  return REALM_SECCOMP_ALLOW;
}

/* ---- policy ---- */

#define POLICY_MAX_SYSCALLS 512

struct realm_seccomp_policy {
  scmp_filter_ctx ctx;              /* libseccomp filter being built */
  pid_t pid;                        /* process that built it: SELF rules compare with this */
  bool installed;                   /* loaded into the kernel; no more rules */
  size_t n_added;                   /* entries of added[] in use */
  int added[POLICY_MAX_SYSCALLS];   /* syscall numbers already ruled, to skip duplicates */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int realm_seccomp_policy_new(realm_seccomp_policy **ret_policy, char *err, size_t errlen) {
  if (!ret_policy) return REALM_E_INVALID_ARGUMENT;
  realm_seccomp_policy *p = calloc(1, sizeof *p);
  if (!p) {
    set_err(err, errlen, "seccomp: out of memory");
    return REALM_E_NOMEM;
  }
  p->ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
  if (!p->ctx) {
    free(p);
    set_err(err, errlen, "seccomp: seccomp_init failed");
    return REALM_E_NOMEM;
  }
  /* A syscall made through another ABI (int 0x80 on x86-64) must not slip past the table. */
  int rc = seccomp_attr_set(p->ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  if (rc != 0) {
    seccomp_release(p->ctx);
    free(p);
    set_err(err, errlen, "seccomp: setting the bad-architecture action: %s", strerror(-rc));
    return REALM_E_SYSTEM;
  }
  p->pid = getpid();
  *ret_policy = p;
  return REALM_OK;
}

static bool policy_has(const realm_seccomp_policy *p, int nr) {
  for (size_t i = 0; i < p->n_added; i++)
    if (p->added[i] == nr) return true;
  return false;
}

/* Adds the rule for syscall nr with the constraint its kind requires. */
static int policy_add(realm_seccomp_policy *p, const char *name, int nr, realm_seccomp_rule_kind kind,
                      char *err, size_t errlen) {
  if (policy_has(p, nr)) return REALM_OK;
  if (p->n_added == POLICY_MAX_SYSCALLS) {
    set_err(err, errlen, "seccomp: more than %d syscalls in one policy", POLICY_MAX_SYSCALLS);
    return REALM_E_TOO_LARGE;
  }
  int rc;
  switch (kind) {
  case REALM_SECCOMP_ALLOW_NO_EXEC:
    /* prot is argument 2 of mmap, mprotect and pkey_mprotect; only the PROT_EXEC bit is
     * compared, so garbage in a 32-bit int's upper register half does not matter. */
    rc = seccomp_rule_add(p->ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    break;
  case REALM_SECCOMP_ALLOW_THREAD:
    /* clone's flags are argument 0 on x86-64 and aarch64 (s390 swaps them; not supported). */
    rc = seccomp_rule_add(p->ctx, SCMP_ACT_ALLOW, nr, 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    break;
  case REALM_SECCOMP_ALLOW_SELF:
    /* datum_b is unused by SCMP_CMP_EQ; given explicitly so every field is initialised. */
    rc = seccomp_rule_add(p->ctx, SCMP_ACT_ALLOW, nr, 1,
                          SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)p->pid, 0));
    break;
  case REALM_SECCOMP_ENOSYS:
    rc = seccomp_rule_add(p->ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
    break;
  case REALM_SECCOMP_ALLOW:
  default:
    rc = seccomp_rule_add(p->ctx, SCMP_ACT_ALLOW, nr, 0);
    break;
  }
  if (rc != 0) {
    set_err(err, errlen, "seccomp: adding rule for '%s': %s", name, strerror(-rc));
    return REALM_E_SYSTEM;
  }
  p->added[p->n_added++] = nr;
  return REALM_OK;
}

static int policy_check_open(const realm_seccomp_policy *p, char *err, size_t errlen) {
  if (!p) {
    set_err(err, errlen, "seccomp: policy is NULL");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (p->installed) {
    set_err(err, errlen, "seccomp: policy already installed; it accepts no more rules");
    return REALM_E_INVALID_ARGUMENT;
  }
  return REALM_OK;
}

int realm_seccomp_allow_set(realm_seccomp_policy *p, const char *set, char *err, size_t errlen) {
  int rc = policy_check_open(p, err, errlen);
  if (rc != REALM_OK) return rc;
  const struct realm_seccomp_set *s = realm_seccomp_find_set(set);
  if (!s) {
    set_err(err, errlen, "seccomp: unknown syscall set '%s'", set ? set : "(null)");
    return REALM_E_NOT_FOUND;
  }
  for (size_t i = 0; i < s->n_rules; i++) {
    int nr = seccomp_syscall_resolve_name(s->rules[i].syscall);
    if (nr < 0) continue; /* not on this architecture */
    rc = policy_add(p, s->rules[i].syscall, nr, s->rules[i].kind, err, errlen);
    if (rc != REALM_OK) return rc;
  }
  return REALM_OK;
}

int realm_seccomp_allow(realm_seccomp_policy *p, const char *syscall, char *err, size_t errlen) {
  int rc = policy_check_open(p, err, errlen);
  if (rc != REALM_OK) return rc;
  int nr = syscall ? seccomp_syscall_resolve_name(syscall) : __NR_SCMP_ERROR;
  if (nr < 0) {
    set_err(err, errlen, "seccomp: unknown syscall '%s' (not a syscall on this architecture)",
            syscall ? syscall : "(null)");
    return REALM_E_NOT_FOUND;
  }
  return policy_add(p, syscall, nr, realm_seccomp_kind_for(syscall), err, errlen);
}

int realm_seccomp_install(realm_seccomp_policy *p, char *err, size_t errlen) {
  int rc = policy_check_open(p, err, errlen);
  if (rc != REALM_OK) return rc;
  if (getpid() != p->pid) {
    set_err(err, errlen, "seccomp: policy was built in process %d, not in this one (%d); its "
                         "own-pid rules would be wrong", (int)p->pid, (int)getpid());
    return REALM_E_INVALID_ARGUMENT;
  }
  /* Without NO_NEW_PRIVS an unprivileged process may not install a filter, and a setuid exec
   * could otherwise escape it. Done here explicitly so a failure has a clear message. */
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    set_err(err, errlen, "seccomp: prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
    return REALM_E_SYSTEM;
  }
  /* TSYNC: libzmq's I/O threads and any pool threads get the same filter at once. */
  int src = seccomp_attr_set(p->ctx, SCMP_FLTATR_CTL_TSYNC, 1);
  if (src != 0) {
    set_err(err, errlen, "seccomp: enabling TSYNC: %s", strerror(-src));
    return REALM_E_SYSTEM;
  }
  src = seccomp_load(p->ctx);
  if (src != 0) {
    set_err(err, errlen, "seccomp: loading the filter: %s%s", strerror(src < 0 ? -src : src),
            src == -ESRCH ? " (a thread could not be synchronised)" : "");
    return REALM_E_SYSTEM;
  }
  p->installed = true;
  return REALM_OK;
}

int realm_seccomp_export_pfc(const realm_seccomp_policy *p, int fd, char *err, size_t errlen) {
  if (!p || fd < 0) {
    set_err(err, errlen, "seccomp: export: invalid arguments");
    return REALM_E_INVALID_ARGUMENT;
  }
  int rc = seccomp_export_pfc(p->ctx, fd);
  if (rc != 0) {
    set_err(err, errlen, "seccomp: export: %s", strerror(-rc));
    return REALM_E_SYSTEM;
  }
  return REALM_OK;
}

void realm_seccomp_policy_free(realm_seccomp_policy *p) {
  if (!p) return;
  seccomp_release(p->ctx);
  free(p);
}
