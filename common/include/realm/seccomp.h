/*
 * seccomp.h — building blocks for the per-role seccomp allowlists (DESIGN.md §5).
 *
 * Each process role (policy-runner.c, policy-worker.c, policy-gateway.c) describes its
 * allowlist as one declarative table — named syscall sets defined once, with a reason per
 * syscall, in common/src/seccomp.c; single syscalls; and syscalls allowed only with given
 * argument values — each entry with the reason the role needs it:
 *
 *   static const struct realm_seccomp_entry worker_rules[] = {
 *       REALM_SECCOMP_SET("basic-io", "read/write/close on existing fds"),
 *       REALM_SECCOMP_SYSCALL("accept4", "new runner connections"),
 *       REALM_SECCOMP_ARG_EQ("socket", 0, "ipc:// and tcp:// only", AF_UNIX, AF_INET),
 *   };
 *   static const struct realm_seccomp_role worker_role =
 *       REALM_SECCOMP_ROLE("worker", worker_rules);
 *   realm_seccomp_role_install(&worker_role, err, sizeof err);   after all set-up is done
 *   realm_seccomp_role_export(&worker_role, fd, err, sizeof err); --print-policy
 *
 * The lower-level calls the table is applied with stay public (tests build minimal policies):
 * realm_seccomp_policy_new, _allow_set, _allow, _allow_arg, _install, _policy_free.
 *
 * Everything not allowed kills the whole process with SIGSYS (SCMP_ACT_KILL_PROCESS), so a
 * supervisor sees it and restarts the role. Some syscalls are only ever allowed with argument
 * constraints, whichever way they are added (and never through realm_seccomp_allow_arg):
 *   mmap, mprotect, pkey_mprotect  only without PROT_EXEC (no new executable memory)
 *   clone                          only with CLONE_THREAD (threads, never new processes)
 *   clone3                         answered ENOSYS (its flags are in memory seccomp cannot
 *                                  read), so glibc falls back to clone
 *   tgkill, kill                   only aimed at our own process id
 *
 * Sanitizer builds (ASan, compiled with -fsanitize=address): every policy also gets the
 * "sanitizer" set (the few syscalls the sanitizer runtime itself makes in a jailed process,
 * each commented in seccomp.c), and install runs LeakSanitizer's end-of-process check right
 * before loading the filter, because at exit LSan would clone a tracer process and ptrace
 * the threads, which no jail allows. Production builds contain neither.
 *
 * The policy's pid-bound rules are computed when added: build the policy in the process
 * that installs it (install refuses a policy built before a fork). The libseccomp context is
 * freed by realm_seccomp_policy_free after install, which calls free(3): include the "memory"
 * set (munmap, brk, madvise) in every policy that is installed.
 */
#ifndef REALM_SECCOMP_H
#define REALM_SECCOMP_H

#include <stddef.h>
#include <stdint.h>

#include "realm/error.h"

typedef struct realm_seccomp_policy realm_seccomp_policy;

typedef enum realm_seccomp_rule_kind {
  REALM_SECCOMP_ALLOW = 0,     /* allowed with any arguments */
  REALM_SECCOMP_ALLOW_NO_EXEC, /* allowed when the prot argument (arg 2) lacks PROT_EXEC */
  REALM_SECCOMP_ALLOW_THREAD,  /* clone: allowed when flags (arg 0) include CLONE_THREAD */
  REALM_SECCOMP_ALLOW_SELF,    /* allowed when arg 0 (the target pid/tgid) is our own pid */
  REALM_SECCOMP_ENOSYS,        /* fails with ENOSYS instead of killing (libc falls back) */
} realm_seccomp_rule_kind;

/* One entry of a named set: the syscall, how it is allowed, and why a role needs it. */
struct realm_seccomp_rule {
  const char *syscall;
  realm_seccomp_rule_kind kind;
  const char *why;
};

struct realm_seccomp_set {
  const char *name;    /* "basic-io", "memory", "time", "signals", "threads", ... */
  const char *purpose; /* one line for docs */
  const struct realm_seccomp_rule *rules;
  size_t n_rules;
};

/* The sets, for docs and tests: index 0..count-1; NULL past the end. */
size_t realm_seccomp_set_count(void);
const struct realm_seccomp_set *realm_seccomp_set_at(size_t index);
/* The set called name, or NULL. */
const struct realm_seccomp_set *realm_seccomp_find_set(const char *name);
/* The constraint a syscall always gets (REALM_SECCOMP_ALLOW for unconstrained ones). */
realm_seccomp_rule_kind realm_seccomp_kind_for(const char *syscall);
/* Human name of a rule kind ("allow", "allow without PROT_EXEC", ...). */
const char *realm_seccomp_kind_name(realm_seccomp_rule_kind kind);

/* A new, empty policy with default action kill-process (also for foreign architectures).
 * Errors: NOMEM. */
int realm_seccomp_policy_new(realm_seccomp_policy **ret_policy, char *err, size_t errlen);

/* Adds every syscall of the named set. Syscalls that do not exist on this architecture are
 * skipped (sets are written for all of them). Unknown set: REALM_E_NOT_FOUND naming it. */
int realm_seccomp_allow_set(realm_seccomp_policy *p, const char *set, char *err, size_t errlen);

/* Adds one syscall by name, with the constraint listed above when it has one. A name that is
 * not a syscall on this architecture: REALM_E_NOT_FOUND naming it. Adding twice is a no-op. */
int realm_seccomp_allow(realm_seccomp_policy *p, const char *syscall, char *err, size_t errlen);

/* Sets PR_SET_NO_NEW_PRIVS and loads the filter into every thread of the process
 * (SECCOMP_FILTER_FLAG_TSYNC). Irreversible. After it the policy accepts no more rules; free
 * it. Errors: INVALID_ARGUMENT (built in another process, or already installed), SYSTEM
 * (prctl or the kernel refused; TSYNC fails when a thread runs an incompatible filter). */
int realm_seccomp_install(realm_seccomp_policy *p, char *err, size_t errlen);

/* ASan builds: runs LeakSanitizer's end-of-process check now (once; it then no longer runs at
 * exit, where the jail would kill its tracer). realm_seccomp_install calls it; a role that
 * sets RLIMIT_NPROC to 0 or otherwise forbids the tracer process before installing must call
 * it earlier. A no-op in other builds. */
void realm_seccomp_leak_check_before_jail(void);

/* Writes the policy as libseccomp's human-readable pseudo filter code to fd (for docs and
 * for debugging a kill). */
int realm_seccomp_export_pfc(const realm_seccomp_policy *p, int fd, char *err, size_t errlen);

/* ---- argument-constrained rules ---- */

typedef enum realm_seccomp_arg_op {
  REALM_SECCOMP_ARG_EQ = 0,    /* the argument equals the value */
  REALM_SECCOMP_ARG_MASKED_EQ, /* (argument & mask) equals the value */
} realm_seccomp_arg_op;

/* Most alternative values one argument rule takes (socket families, ioctl requests, ...). */
#define REALM_SECCOMP_MAX_ARG_VALUES 8

/* Allows syscall when its argument number arg (0..5) compares op to any one of
 * values[0..n_values-1] (one kernel rule per value; the call passes when any matches).
 * Calling it again for the same syscall adds alternatives. Refused with INVALID_ARGUMENT:
 * arg > 5, n_values 0 or above REALM_SECCOMP_MAX_ARG_VALUES, a syscall that always carries
 * its own constraint (mmap, clone, kill, ... above: an argument rule could only widen it),
 * and a syscall the policy already allows without arguments (the rule would be dead).
 * NOT_FOUND: not a syscall on this architecture. */
int realm_seccomp_allow_arg(realm_seccomp_policy *p, const char *syscall, unsigned arg,
                            realm_seccomp_arg_op op, uint64_t mask, const uint64_t *values,
                            size_t n_values, char *err, size_t errlen);

/* ---- declarative role tables ---- */

typedef enum realm_seccomp_entry_kind {
  REALM_SECCOMP_ENTRY_SET = 0, /* name is a named set: realm_seccomp_allow_set */
  REALM_SECCOMP_ENTRY_SYSCALL, /* name is a syscall: realm_seccomp_allow */
  REALM_SECCOMP_ENTRY_ARG,     /* name is a syscall with an argument rule: _allow_arg */
} realm_seccomp_entry_kind;

/* One line of a role's table. Write it with the macros below. */
struct realm_seccomp_entry {
  realm_seccomp_entry_kind what;
  const char *name; /* set or syscall */
  const char *why;  /* why this role needs it (docs; never empty) */
  /* REALM_SECCOMP_ENTRY_ARG only: */
  unsigned arg;
  realm_seccomp_arg_op op;
  uint64_t mask;
  size_t n_values;
  uint64_t values[REALM_SECCOMP_MAX_ARG_VALUES];
};

#define REALM_SECCOMP_SET(set_, why_) \
  {.what = REALM_SECCOMP_ENTRY_SET, .name = (set_), .why = (why_)}
#define REALM_SECCOMP_SYSCALL(syscall_, why_) \
  {.what = REALM_SECCOMP_ENTRY_SYSCALL, .name = (syscall_), .why = (why_)}
/* Allowed when argument arg_ equals one of the values listed after why_. */
#define REALM_SECCOMP_ARG_EQ(syscall_, arg_, why_, ...)                                   \
  {.what = REALM_SECCOMP_ENTRY_ARG, .name = (syscall_), .why = (why_), .arg = (arg_),   \
   .op = REALM_SECCOMP_ARG_EQ, .values = {__VA_ARGS__},                                  \
   .n_values = sizeof((uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t)}
/* Allowed when (argument arg_ & mask_) equals one of the values listed after why_. */
#define REALM_SECCOMP_ARG_MASKED_EQ(syscall_, arg_, mask_, why_, ...)                      \
  {.what = REALM_SECCOMP_ENTRY_ARG, .name = (syscall_), .why = (why_), .arg = (arg_),   \
   .op = REALM_SECCOMP_ARG_MASKED_EQ, .mask = (mask_), .values = {__VA_ARGS__},          \
   .n_values = sizeof((uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t)}

/*
 * libzmq's I/O and reaper threads start when a context makes its first socket and, as they
 * start, name themselves and apply the context's scheduling policy (realm_ipc_ctx_new asks
 * for SCHED_BATCH): pthread_getschedparam, then pthread_setschedparam. A slow thread start
 * can run these after a jail that went on right after the sockets were made (the worker's
 * jail met it: audit showed sched_getparam; then the policy change killed it at random). A
 * role that jails itself soon after creating sockets lists these entries: only naming the
 * calling thread (PR_SET_NAME) and SCHED_OTHER/SCHED_BATCH — no real-time policy, no other
 * prctl option. Needs <sched.h> and <sys/prctl.h>.
 */
#define REALM_SECCOMP_ZMQ_THREAD_START                                                        \
  REALM_SECCOMP_ARG_EQ("prctl", 0, "a just-created libzmq thread names itself (PR_SET_NAME); " \
                                   "only that option", PR_SET_NAME),                          \
  REALM_SECCOMP_SYSCALL("sched_getparam", "a just-created libzmq thread reads its priority"),  \
  REALM_SECCOMP_SYSCALL("sched_getscheduler", "a just-created libzmq thread reads its policy"), \
  REALM_SECCOMP_ARG_EQ("sched_setscheduler", 1, "a just-created libzmq thread applies "       \
                                                "SCHED_BATCH (or SCHED_OTHER); no real-time "  \
                                                "policy", SCHED_OTHER, SCHED_BATCH)

/* A process role's whole allowlist: its name (in error messages) and its table, applied
 * in order. */
struct realm_seccomp_role {
  const char *name;
  const struct realm_seccomp_entry *entries;
  size_t n_entries;
};
#define REALM_SECCOMP_ROLE(name_, entries_) \
  {.name = (name_), .entries = (entries_), .n_entries = sizeof(entries_) / sizeof((entries_)[0])}

/* Builds the role's policy in this process (entries in order). Errors: those of the calls
 * above, with err naming the role and the entry; INVALID_ARGUMENT for an entry without a
 * name or a reason. */
int realm_seccomp_role_build(const struct realm_seccomp_role *role,
                             realm_seccomp_policy **ret_policy, char *err, size_t errlen);

/* Builds the role's policy and installs it (realm_seccomp_install). Irreversible. */
int realm_seccomp_role_install(const struct realm_seccomp_role *role, char *err, size_t errlen);

/* Builds the role's policy and writes it as pseudo filter code to fd; installs nothing. */
int realm_seccomp_role_export(const struct realm_seccomp_role *role, int fd, char *err,
                              size_t errlen);

/* Frees the policy (an installed filter stays in force). Accepts NULL. */
void realm_seccomp_policy_free(realm_seccomp_policy *p);

#endif /* REALM_SECCOMP_H */
