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
 *
 * Roles describe their allowlist as a table (struct realm_seccomp_role, seccomp.h), applied
 * here in order by realm_seccomp_role_build: sets, single syscalls, and syscalls allowed only
 * with given argument values (the gateway's socket-by-family, read-only openat, ...).
 *
 * Sanitizer builds (REALM_SECCOMP_SANITIZED below) add the "sanitizer" set to every policy
 * and run LeakSanitizer's check before the filter is loaded; see the set's comment.
 */
#include "realm/seccomp.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

/* Compiled with -fsanitize=address (gcc defines __SANITIZE_ADDRESS__, clang answers
 * __has_feature). UBSan alone needs nothing: its runtime makes syscalls only to print a
 * report, and the sanitizer build makes every report fatal anyway. */
#if defined(__SANITIZE_ADDRESS__)
#define REALM_SECCOMP_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REALM_SECCOMP_SANITIZED 1
#endif
#endif

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

/* What the AddressSanitizer runtime itself calls inside a jailed process, beyond what every
 * role allows anyway (its allocator's mmap/munmap/madvise are in "memory"; sigaltstack for
 * its per-thread alternate signal stack is in "signals"). Applied by realm_seccomp_policy_new
 * only when this file is compiled with ASan (REALM_SECCOMP_SANITIZED), never in production.
 * LeakSanitizer's end-of-process check (clone of a tracer process, ptrace, reading
 * /proc/self/maps) is deliberately NOT here: realm_seccomp_install runs that check once
 * before the filter is loaded instead, so the jail tests' openat/fork/ptrace kills still
 * hold in sanitized builds. */
static const struct realm_seccomp_rule set_sanitizer[] = {
    {"sigaltstack", A, "ASan gives every new thread an alternate signal stack and removes it "
                       "at thread exit (its SEGV handler reports stack overflows)"},
    {"sched_getaffinity", A, "ASan's thread start reads the new thread's stack bounds with "
                             "pthread_getattr_np, which asks for the thread's CPU affinity"},
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
    SET("sanitizer", "the ASan runtime inside a jail (sanitizer builds only)", set_sanitizer),
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

/* How a syscall already in the policy was ruled: bare rules (any kind from the tables) and
 * argument rules must not be mixed on one syscall (a bare allow makes argument rules dead). */
struct policy_syscall {
  int nr;
  bool by_arg;
};

struct realm_seccomp_policy {
  scmp_filter_ctx ctx;                 /* libseccomp filter being built */
  pid_t pid;                           /* process that built it: SELF rules use it */
  bool installed;                      /* loaded into the kernel; no more rules */
  size_t n_added;                      /* entries of added[] in use */
  struct policy_syscall added[POLICY_MAX_SYSCALLS]; /* syscalls ruled so far, and how */
};

int realm_seccomp_policy_new(realm_seccomp_policy **ret_policy, char *err, size_t errlen) {
  if (!ret_policy) return REALM_E_INVALID_ARGUMENT;
  realm_seccomp_policy *p = calloc(1, sizeof *p);
  if (!p) {
    realm_set_err(err, errlen, "seccomp: out of memory");
    return REALM_E_NOMEM;
  }
  p->ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
  if (!p->ctx) {
    free(p);
    realm_set_err(err, errlen, "seccomp: seccomp_init failed");
    return REALM_E_NOMEM;
  }
  /* A syscall made through another ABI (int 0x80 on x86-64) must not slip past the table. */
  int rc = seccomp_attr_set(p->ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  if (rc != 0) {
    seccomp_release(p->ctx);
    free(p);
    realm_set_err(err, errlen, "seccomp: setting the bad-architecture action: %s", strerror(-rc));
    return REALM_E_SYSTEM;
  }
  p->pid = getpid();
#ifdef REALM_SECCOMP_SANITIZED
  /* The sanitizer runtime runs inside every jailed process of a sanitized build. */
  rc = realm_seccomp_allow_set(p, "sanitizer", err, errlen);
  if (rc != REALM_OK) {
    realm_seccomp_policy_free(p);
    return rc;
  }
#endif
  *ret_policy = p;
  return REALM_OK;
}

static const struct policy_syscall *policy_find(const realm_seccomp_policy *p, int nr) {
  for (size_t i = 0; i < p->n_added; i++)
    if (p->added[i].nr == nr) return &p->added[i];
  return NULL;
}

static int policy_note(realm_seccomp_policy *p, int nr, bool by_arg, char *err, size_t errlen) {
  if (p->n_added == POLICY_MAX_SYSCALLS) {
    realm_set_err(err, errlen, "seccomp: more than %d syscalls in one policy", POLICY_MAX_SYSCALLS);
    return REALM_E_TOO_LARGE;
  }
  p->added[p->n_added++] = (struct policy_syscall){nr, by_arg};
  return REALM_OK;
}

/* Adds the rule for syscall nr with the constraint its kind requires. */
static int policy_add(realm_seccomp_policy *p, const char *name, int nr, realm_seccomp_rule_kind kind,
                      char *err, size_t errlen) {
  const struct policy_syscall *had = policy_find(p, nr);
  if (had && had->by_arg) {
    realm_set_err(err, errlen,
                  "seccomp: '%s' is already allowed only with argument values; "
                  "allowing it bare as well would make those rules pointless",
                  name);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (had) return REALM_OK;
  if (p->n_added == POLICY_MAX_SYSCALLS) {
    realm_set_err(err, errlen, "seccomp: more than %d syscalls in one policy", POLICY_MAX_SYSCALLS);
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
    realm_set_err(err, errlen, "seccomp: adding rule for '%s': %s", name, strerror(-rc));
    return REALM_E_SYSTEM;
  }
  return policy_note(p, nr, false, err, errlen);
}

static int policy_check_open(const realm_seccomp_policy *p, char *err, size_t errlen) {
  if (!p) {
    realm_set_err(err, errlen, "seccomp: policy is NULL");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (p->installed) {
    realm_set_err(err, errlen, "seccomp: policy already installed; it accepts no more rules");
    return REALM_E_INVALID_ARGUMENT;
  }
  return REALM_OK;
}

int realm_seccomp_allow_set(realm_seccomp_policy *p, const char *set, char *err, size_t errlen) {
  int rc = policy_check_open(p, err, errlen);
  if (rc != REALM_OK) return rc;
  const struct realm_seccomp_set *s = realm_seccomp_find_set(set);
  if (!s) {
    realm_set_err(err, errlen, "seccomp: unknown syscall set '%s'", set ? set : "(null)");
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
    realm_set_err(err, errlen, "seccomp: unknown syscall '%s' (not a syscall on this architecture)",
                  syscall ? syscall : "(null)");
    return REALM_E_NOT_FOUND;
  }
  return policy_add(p, syscall, nr, realm_seccomp_kind_for(syscall), err, errlen);
}

#ifdef REALM_SECCOMP_SANITIZED
/* LeakSanitizer's interface (declared weak: an ASan runtime built without LSan lacks it). */
extern void __lsan_do_leak_check(void) __attribute__((weak));
#endif

void realm_seccomp_leak_check_before_jail(void) {
#ifdef REALM_SECCOMP_SANITIZED
  /* LSan's end-of-process check stops the world with a tracer *process* (clone without
   * CLONE_THREAD, ptrace, /proc/self/maps): under the jail it would die with SIGSYS at exit
   * and hide the real exit status. Checking now covers everything the set-up allocated and
   * disables the exit-time check (LSan runs it once; later calls are no-ops); leaks made
   * after the jail are left to the unjailed runs of the same code (unit tests, --no-jail). */
  if (__lsan_do_leak_check) __lsan_do_leak_check();
#endif
}

int realm_seccomp_install(realm_seccomp_policy *p, char *err, size_t errlen) {
  int rc = policy_check_open(p, err, errlen);
  if (rc != REALM_OK) return rc;
  if (getpid() != p->pid) {
    realm_set_err(err, errlen,
                  "seccomp: policy was built in process %d, not in this one (%d); its "
                  "own-pid rules would be wrong",
                  (int)p->pid, (int)getpid());
    return REALM_E_INVALID_ARGUMENT;
  }
  realm_seccomp_leak_check_before_jail(); /* no-op unless sanitized, or when already run */
  /* Without NO_NEW_PRIVS an unprivileged process may not install a filter, and a setuid exec
   * could otherwise escape it. Done here explicitly so a failure has a clear message. */
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    realm_set_err(err, errlen, "seccomp: prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
    return REALM_E_SYSTEM;
  }
  /* TSYNC: libzmq's I/O threads and any pool threads get the same filter at once. */
  int src = seccomp_attr_set(p->ctx, SCMP_FLTATR_CTL_TSYNC, 1);
  if (src != 0) {
    realm_set_err(err, errlen, "seccomp: enabling TSYNC: %s", strerror(-src));
    return REALM_E_SYSTEM;
  }
  src = seccomp_load(p->ctx);
  if (src != 0) {
    realm_set_err(err, errlen, "seccomp: loading the filter: %s%s", strerror(src < 0 ? -src : src),
                  src == -ESRCH ? " (a thread could not be synchronised)" : "");
    return REALM_E_SYSTEM;
  }
  p->installed = true;
  return REALM_OK;
}

int realm_seccomp_allow_arg(realm_seccomp_policy *p, const char *syscall, unsigned arg,
                            realm_seccomp_arg_op op, uint64_t mask, const uint64_t *values,
                            size_t n_values, char *err, size_t errlen) {
  int rc = policy_check_open(p, err, errlen);
  if (rc != REALM_OK) return rc;
  int nr = syscall ? seccomp_syscall_resolve_name(syscall) : __NR_SCMP_ERROR;
  if (nr < 0) {
    realm_set_err(err, errlen, "seccomp: unknown syscall '%s' (not a syscall on this architecture)",
                  syscall ? syscall : "(null)");
    return REALM_E_NOT_FOUND;
  }
  if (arg > 5 || !values || n_values == 0 || n_values > REALM_SECCOMP_MAX_ARG_VALUES ||
      (op != REALM_SECCOMP_ARG_EQ && op != REALM_SECCOMP_ARG_MASKED_EQ)) {
    realm_set_err(err, errlen,
                  "seccomp: argument rule for '%s': argument %u, %zu values, op %d "
                  "(want argument 0..5, 1..%d values, EQ or MASKED_EQ)",
                  syscall, arg, n_values, (int)op, REALM_SECCOMP_MAX_ARG_VALUES);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (realm_seccomp_kind_for(syscall) != REALM_SECCOMP_ALLOW) {
    realm_set_err(err, errlen,
                  "seccomp: '%s' always carries its own constraint (%s); an argument "
                  "rule could only widen it",
                  syscall, realm_seccomp_kind_name(realm_seccomp_kind_for(syscall)));
    return REALM_E_INVALID_ARGUMENT;
  }
  const struct policy_syscall *had = policy_find(p, nr);
  if (had && !had->by_arg) {
    realm_set_err(err, errlen,
                  "seccomp: '%s' is already allowed with any arguments; an argument "
                  "rule for it would be dead",
                  syscall);
    return REALM_E_INVALID_ARGUMENT;
  }
  for (size_t i = 0; i < n_values; i++) {
    /* libseccomp's MASKED_EQ takes the mask in datum_a and the value in datum_b. */
    bool masked = op == REALM_SECCOMP_ARG_MASKED_EQ;
    struct scmp_arg_cmp c = {.arg = arg,
                             .op = masked ? SCMP_CMP_MASKED_EQ : SCMP_CMP_EQ,
                             .datum_a = masked ? mask : values[i],
                             .datum_b = masked ? values[i] : 0};
    int src = seccomp_rule_add_array(p->ctx, SCMP_ACT_ALLOW, nr, 1, &c);
    if (src != 0) {
      realm_set_err(err, errlen, "seccomp: adding argument rule for '%s': %s", syscall,
                    strerror(-src));
      return REALM_E_SYSTEM;
    }
  }
  return had ? REALM_OK : policy_note(p, nr, true, err, errlen);
}

static int role_apply(const struct realm_seccomp_role *role, const struct realm_seccomp_entry *e,
                      realm_seccomp_policy *p, char *err, size_t errlen) {
  if (!e->name || !e->why || !e->why[0]) {
    realm_set_err(err, errlen, "entry %zu has no %s", (size_t)(e - role->entries),
                  e->name ? "reason" : "name");
    return REALM_E_INVALID_ARGUMENT;
  }
  switch (e->what) {
  case REALM_SECCOMP_ENTRY_SET: return realm_seccomp_allow_set(p, e->name, err, errlen);
  case REALM_SECCOMP_ENTRY_SYSCALL: return realm_seccomp_allow(p, e->name, err, errlen);
  case REALM_SECCOMP_ENTRY_ARG:
    return realm_seccomp_allow_arg(p, e->name, e->arg, e->op, e->mask, e->values, e->n_values,
                                   err, errlen);
  }
  realm_set_err(err, errlen, "entry '%s' has unknown kind %d", e->name, (int)e->what);
  return REALM_E_INVALID_ARGUMENT;
}

int realm_seccomp_role_build(const struct realm_seccomp_role *role,
                             realm_seccomp_policy **ret_policy, char *err, size_t errlen) {
  if (!role || !ret_policy || (!role->entries && role->n_entries)) {
    realm_set_err(err, errlen, "seccomp: role build: invalid arguments");
    return REALM_E_INVALID_ARGUMENT;
  }
  const char *name = role->name ? role->name : "(unnamed)";
  realm_seccomp_policy *p = NULL;
  int rc = realm_seccomp_policy_new(&p, err, errlen);
  for (size_t i = 0; rc == REALM_OK && i < role->n_entries; i++) {
    char why[256] = "";
    rc = role_apply(role, &role->entries[i], p, why, sizeof why);
    if (rc != REALM_OK)
      realm_set_err(err, errlen, "%s policy, entry %zu ('%s'): %s", name, i,
                    role->entries[i].name ? role->entries[i].name : "(null)", why);
  }
  if (rc != REALM_OK) {
    realm_seccomp_policy_free(p);
    return rc;
  }
  *ret_policy = p;
  return REALM_OK;
}

int realm_seccomp_role_install(const struct realm_seccomp_role *role, char *err, size_t errlen) {
  realm_seccomp_policy *p = NULL;
  int rc = realm_seccomp_role_build(role, &p, err, errlen);
  if (rc != REALM_OK) return rc;
  rc = realm_seccomp_install(p, err, errlen);
  realm_seccomp_policy_free(p); /* free(3) only: "memory" must be in the role's table */
  return rc;
}

int realm_seccomp_role_export(const struct realm_seccomp_role *role, int fd, char *err,
                              size_t errlen) {
  realm_seccomp_policy *p = NULL;
  int rc = realm_seccomp_role_build(role, &p, err, errlen);
  if (rc != REALM_OK) return rc;
  rc = realm_seccomp_export_pfc(p, fd, err, errlen);
  realm_seccomp_policy_free(p);
  return rc;
}

int realm_seccomp_export_pfc(const realm_seccomp_policy *p, int fd, char *err, size_t errlen) {
  if (!p || fd < 0) {
    realm_set_err(err, errlen, "seccomp: export: invalid arguments");
    return REALM_E_INVALID_ARGUMENT;
  }
  int rc = seccomp_export_pfc(p->ctx, fd);
  if (rc != 0) {
    realm_set_err(err, errlen, "seccomp: export: %s", strerror(-rc));
    return REALM_E_SYSTEM;
  }
  return REALM_OK;
}

void realm_seccomp_policy_free(realm_seccomp_policy *p) {
  if (!p) return;
  seccomp_release(p->ctx);
  free(p);
}
