/*
 * supervise.h — a minimal process supervisor: run a command, restart it when it dies, with
 * exponential back-off; stop it cleanly when asked.
 *
 * The runner is built to die rather than limp: a seccomp kill (SIGSYS), a lost worker while
 * jailed (exit 75) or a crash all end the process, and only its own in-flight requests fail.
 * Something must bring it back; realm-supervise (supervise_main.c) and `realmctl up` use this
 * loop. It does not print: it reports each child's end through a callback.
 */
#ifndef REALM_SUPERVISE_H
#define REALM_SUPERVISE_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

struct realm_supervise_opts {
  char *const *argv;             /* command and arguments; argv[0] is looked up in PATH */
  int64_t max_restarts;          /* restarts before giving up; -1 = never give up */
  int64_t backoff_ms;            /* first delay before a restart (doubles each time) */
  int64_t max_backoff_ms;        /* ceiling of the delay */
  int64_t healthy_after_ms;      /* a child that lived this long resets the delay */
  int64_t stop_grace_ms;         /* SIGTERM, then SIGKILL after this long */
  volatile sig_atomic_t *stop;   /* set (from a signal handler) to stop child and loop */
  /* Called after each child ends: its pid, wait status, and restarts so far. Optional. */
  void (*on_exit)(void *user, pid_t pid, int wait_status, int64_t restarts);
  /* Called after each child starts. Optional. */
  void (*on_start)(void *user, pid_t pid, int64_t restarts);
  void *user;
};

/*
 * Runs the command until *stop is set or max_restarts is exceeded. Install a handler for
 * SIGTERM/SIGINT that sets *stop WITHOUT SA_RESTART, so waits are interrupted at once.
 * Returns 0 after a requested stop, REALM_E_UNAVAILABLE when it gave up (err names the last
 * status), REALM_E_SYSTEM when fork fails.
 */
int realm_supervise(const struct realm_supervise_opts *opts, char *err, size_t errlen);

#endif /* REALM_SUPERVISE_H */
