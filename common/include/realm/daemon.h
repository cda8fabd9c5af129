/*
 * daemon.h — start-up pieces every Realm daemon's main() repeats: turning SIGTERM/SIGINT into
 * a stop request, and (test-hooks builds only) the jail break-out attempt that the security
 * tests use to prove a seccomp jail kills the process.
 *
 * The stop handler is the daemon's own (it knows what "stop" means: a flag for the runner,
 * worker_stop() for the worker) and must be async-signal-safe.
 */
#ifndef REALM_DAEMON_H
#define REALM_DAEMON_H

/* Installs on_stop for SIGTERM and SIGINT (no SA_RESTART: a blocking call the signal
 * interrupts returns EINTR, so loops see the stop at once). Returns 0 or REALM_E_INTERNAL
 * (sigaction refused, errno kept). */
int realm_daemon_catch_stop_signals(void (*on_stop)(int sig));

#if defined(REALM_DAEMON_TEST_HOOKS)
/* Test-hooks builds only (the installed daemons have no such code): attempts the forbidden
 * syscall named by what — "openat" (read-only, /etc/hostname), "execve" (/bin/true) or
 * "socket" (AF_UNIX) — raw, so nothing is satisfied from a libc cache. Under a working jail
 * it never returns (SIGSYS); otherwise it logs "TEST HOOK: <call> was not stopped" and exits
 * 3. Static so it only exists in the programs that define REALM_DAEMON_TEST_HOOKS. */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "realm/log.h"

static inline void realm_daemon_test_escape(const char *what) {
  realm_log_warn("TEST HOOK: attempting a forbidden syscall", RLOG_STR("syscall", what));
  if (strcmp(what, "openat") == 0) {
    int fd = openat(AT_FDCWD, "/etc/hostname", O_RDONLY | O_CLOEXEC);
    realm_log_error("TEST HOOK: openat was not stopped", RLOG_INT("fd", fd));
  } else if (strcmp(what, "execve") == 0) {
    char *const argv[] = {"/bin/true", NULL};
    execve("/bin/true", argv, NULL);
    realm_log_error("TEST HOOK: execve was not stopped");
  } else if (strcmp(what, "socket") == 0) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    realm_log_error("TEST HOOK: socket was not stopped", RLOG_INT("fd", fd));
  }
  _exit(3);
}
#endif

#endif /* REALM_DAEMON_H */
