/*
 * main.c — the realm-worker program: options, logging, signals, the jail, then the core's
 * event loop.
 *
 * Exit status: 0 after SIGTERM/SIGINT and the drain (however it ended); 2 for a bad command line; 1 when
 * start-up fails (model missing or rejected, socket in use, jail refused, ...) or the loop
 * hits an unrecoverable error; WORKER_EXIT_BACKEND_FAILED (69) when the compute backend
 * failed for good (a CUDA error): every in-flight request was answered "unavailable" naming
 * the cause, and the supervisor restarts the worker. Every failure is one log line naming
 * what was wrong.
 *
 * The jail (policy-worker.c) goes on after worker_create(): the model is mapped, the engine
 * threads run, the sockets are bound. --no-jail skips it for debugging, loudly; a CUDA
 * backend runs unjailed (its driver opens device files at run time), also loudly.
 *
 * When built with REALM_WORKER_TEST_HOOKS (the realm-worker-testhooks executable used by
 * tests/security only; the installed realm-worker has no such code), `--test-escape WHAT`
 * makes the process attempt a forbidden syscall (openat, execve, socket) right after the jail,
 * to prove the jail kills it with SIGSYS.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef REALM_WORKER_TEST_HOOKS
#define REALM_DAEMON_TEST_HOOKS /* realm_daemon_test_escape() */
#endif
#include "realm/daemon.h"
#include "realm/error.h"
#include "realm/log.h"
#include "worker.h"

static struct worker *g_worker; /* for the signal handler only */

/* Every SIGTERM/SIGINT is one worker_stop(), which counts them: the first starts the drain
 * (open sessions are served, new ones refused, for up to --drain-timeout), the second cuts it
 * short (docs/worker.md "Stop and drain"). */
static void on_stop_signal(int sig) {
  (void)sig;
  if (g_worker) worker_stop(g_worker); /* async-signal-safe: an atomic add and one write(2) */
}

#ifdef REALM_WORKER_TEST_HOOKS
/* Removes "--test-escape WHAT" from argv (the option table does not know it); returns WHAT
 * or "". */
static const char *take_test_escape(int *argc, char **argv) {
  for (int i = 1; i + 1 < *argc; i++)
    if (strcmp(argv[i], "--test-escape") == 0) {
      const char *what = argv[i + 1];
      for (int j = i; j + 2 <= *argc; j++) argv[j] = argv[j + 2];
      *argc -= 2;
      return what;
    }
  return "";
}
#endif

int main(int argc, char **argv) {
  char err[1024];
#ifdef REALM_WORKER_TEST_HOOKS
  const char *escape = take_test_escape(&argc, argv);
#endif
  if (realm_log_init_from_env("worker", err, sizeof err) < 0) {
    realm_log_error("bad logging environment", RLOG_STR("detail", err));
    return 2;
  }
  struct worker_config cfg;
  int rc = worker_options_parse(argc, argv, &cfg, err, sizeof err);
  if (rc == 1) return 0;
  if (rc < 0) {
    realm_log_error("bad command line", RLOG_STR("detail", err));
    fprintf(stderr, "realm-worker: %s (see --help)\n", err);
    return 2;
  }
  if (cfg.print_policy) {
    rc = worker_policy_export(STDOUT_FILENO, err, sizeof err);
    if (rc < 0) fprintf(stderr, "realm-worker: %s\n", err);
    return rc < 0 ? 1 : 0;
  }
  /* A runner that vanishes must not kill us on a write to a dead socket. */
  signal(SIGPIPE, SIG_IGN);
  struct worker *w;
  rc = worker_create(&cfg, &w, err, sizeof err);
  if (rc < 0) {
    realm_log_error("start-up failed", RLOG_ERR(rc), RLOG_STR("detail", err));
    fprintf(stderr, "realm-worker: %s\n", err);
    return 1;
  }
  g_worker = w;
  realm_daemon_catch_stop_signals(on_stop_signal);
  bool jailed = false;
  if (cfg.no_jail) {
    realm_log_warn("!!! --no-jail: running WITHOUT the seccomp jail; for debugging only, never "
                   "in production !!!");
  } else if (worker_backend_is_device(w)) {
    realm_log_warn("!!! backend is a device: running WITHOUT the seccomp jail (the CUDA driver "
                   "opens and ioctls /dev/nvidia* at run time); isolate this process by other "
                   "means (container, device cgroup) !!!",
                   RLOG_STR("backend", worker_backend_name(w)));
  } else {
    rc = worker_jail(w, err, sizeof err);
    if (rc < 0) {
      realm_log_error("cannot jail the worker", RLOG_ERR(rc), RLOG_STR("detail", err));
      worker_destroy(w);
      return 1;
    }
    jailed = true;
    realm_log_info("worker jailed", RLOG_STR("policy", "policy-worker.c"));
  }
#ifdef REALM_WORKER_TEST_HOOKS
  if (escape[0]) realm_daemon_test_escape(escape);
#endif
  rc = worker_run(w);
  g_worker = NULL;
  int status = rc == REALM_E_UNAVAILABLE ? WORKER_EXIT_BACKEND_FAILED : rc < 0 ? 1 : 0;
  /* A jailed process cannot tear libzmq down (closing an ipc:// listener unlinks its file):
   * the kernel cleans up; the next worker replaces the stale socket files. */
  if (jailed) _exit(status);
  worker_destroy(w);
  return status;
}
