/*
 * supervise_main.c — realm-supervise: keeps one command running (restart on death, with
 * back-off). Used to run realm-runner replicas by hand and by the security tests; `realmctl
 * up` links the same loop (supervise.h).
 *
 *   realm-supervise [--max-restarts N] [--backoff 100ms] [--max-backoff 5s] -- CMD ARGS...
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "realm/config.h"
#include "realm/daemon.h"
#include "realm/log.h"
#include "supervise.h"

static volatile sig_atomic_t g_stop;
static void on_stop(int sig) {
  (void)sig;
  g_stop = 1;
}

static void on_start(void *user, pid_t pid, int64_t restarts) {
  (void)user;
  realm_log_info("child started", RLOG_INT("pid", pid), RLOG_INT("restarts", restarts));
}

static void on_exit_cb(void *user, pid_t pid, int st, int64_t restarts) {
  (void)user;
  if (WIFSIGNALED(st))
    realm_log_warn("child killed", RLOG_INT("pid", pid), RLOG_INT("signal", WTERMSIG(st)),
                   RLOG_STR("signame", strsignal(WTERMSIG(st))), RLOG_INT("restarts", restarts));
  else
    realm_log_warn("child exited", RLOG_INT("pid", pid), RLOG_INT("status", WEXITSTATUS(st)),
                   RLOG_INT("restarts", restarts));
}

int main(int argc, char **argv) {
  int64_t max_restarts = -1, backoff = 100, max_backoff = 5000, healthy = 10000, grace = 5000;
  const struct realm_option opts[] = {
      {"max-restarts", NULL, REALM_OPT_INT64, "-1", -1, 1000000000,
       "restarts before giving up (-1 = never)", &max_restarts},
      {"backoff", NULL, REALM_OPT_DURATION_MS, "100ms", 1, 3600000, "first restart delay",
       &backoff},
      {"max-backoff", NULL, REALM_OPT_DURATION_MS, "5s", 1, 3600000, "longest restart delay",
       &max_backoff},
      {"healthy-after", NULL, REALM_OPT_DURATION_MS, "10s", 1, 86400000,
       "a child up this long resets the delay", &healthy},
      {"stop-grace", NULL, REALM_OPT_DURATION_MS, "5s", 1, 600000,
       "SIGTERM to SIGKILL delay at shutdown", &grace},
  };
  int first = 0;
  char err[512];
  int rc = realm_config_parse(opts, REALM_COUNTOF(opts), argc, argv, &first, err, sizeof err);
  if (rc == REALM_CONFIG_HELP) {
    realm_config_print_help(stdout, argv[0], "Runs -- CMD ARGS..., restarting it when it dies.",
                            opts, REALM_COUNTOF(opts));
    return 0;
  }
  if (rc < 0 || first >= argc) {
    fprintf(stderr, "realm-supervise: %s\n", rc < 0 ? err : "no command given (-- CMD ARGS...)");
    return 2;
  }
  char init_err[256];
  realm_log_init_from_env("supervise", init_err, sizeof init_err);
  /* No SA_RESTART there: the supervisor's waits must wake up on SIGTERM/SIGINT. */
  if (realm_daemon_catch_stop_signals(on_stop) < 0) {
    realm_log_error("cannot install the SIGTERM/SIGINT handlers");
    return 1;
  }
  struct realm_supervise_opts o = {.argv = argv + first,
                                   .max_restarts = max_restarts,
                                   .backoff_ms = backoff,
                                   .max_backoff_ms = max_backoff,
                                   .healthy_after_ms = healthy,
                                   .stop_grace_ms = grace,
                                   .stop = &g_stop,
                                   .on_exit = on_exit_cb,
                                   .on_start = on_start};
  rc = realm_supervise(&o, err, sizeof err);
  if (rc < 0) {
    realm_log_error("supervisor giving up", RLOG_ERR(rc), RLOG_STR("detail", err));
    return 1;
  }
  return 0;
}
