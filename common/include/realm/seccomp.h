/*
 * seccomp.h — building blocks for the per-role seccomp allowlists (DESIGN.md §5).
 *
 * Each process role (policy-runner.c, policy-worker.c, policy-gateway.c) builds its policy
 * from named syscall sets defined once, with a reason per syscall, in common/src/seccomp.c,
 * plus individual syscalls by name:
 *
 *   realm_seccomp_policy *p;
 *   realm_seccomp_policy_new(&p, err, sizeof err);
 *   realm_seccomp_allow_set(p, "basic-io", err, sizeof err);   ... "memory", "zmq-io", "exit"
 *   realm_seccomp_allow(p, "getrandom", err, sizeof err);
 *   realm_seccomp_install(p, err, sizeof err);                 after all set-up is done
 *   realm_seccomp_policy_free(p);
 *
 * Everything not allowed kills the whole process with SIGSYS (SCMP_ACT_KILL_PROCESS), so a
 * supervisor sees it and restarts the role. Some syscalls are only ever allowed with argument
 * constraints, whichever way they are added:
 *   mmap, mprotect, pkey_mprotect  only without PROT_EXEC (no new executable memory)
 *   clone                          only with CLONE_THREAD (threads, never new processes)
 *   clone3                         answered ENOSYS (its flags are in memory seccomp cannot
 *                                  read), so glibc falls back to clone
 *   tgkill, kill                   only aimed at our own process id
 *
 * The policy's pid-bound rules are computed when added: build the policy in the process
 * that installs it (install refuses a policy built before a fork). The libseccomp context is
 * freed by realm_seccomp_policy_free after install, which calls free(3): include the "memory"
 * set (munmap, brk, madvise) in every policy that is installed.
 */
#ifndef REALM_SECCOMP_H
#define REALM_SECCOMP_H

#include <stddef.h>

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

/* Writes the policy as libseccomp's human-readable pseudo filter code to fd (for docs and
 * for debugging a kill). */
int realm_seccomp_export_pfc(const realm_seccomp_policy *p, int fd, char *err, size_t errlen);

/* Frees the policy (an installed filter stays in force). Accepts NULL. */
void realm_seccomp_policy_free(realm_seccomp_policy *p);

#endif /* REALM_SECCOMP_H */
