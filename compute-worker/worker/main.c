/*
 * main.c — the realm-worker program: options, logging, signals, then the core's event loop.
 *
 * Exit status: 0 after SIGTERM/SIGINT and a clean drain; 2 for a bad command line; 1 when
 * start-up fails (model missing or rejected, socket in use, ...) or the loop hits an
 * unrecoverable error. Every failure is one log line naming what was wrong.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "realm/log.h"
#include "worker.h"

static struct worker *g_worker; /* for the signal handler only */

static void on_stop_signal(int sig) {
  (void)sig;
  if (g_worker) worker_stop(g_worker); /* async-signal-safe: one write(2) */
}

int main(int argc, char **argv) {
  char err[1024];
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
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  rc = worker_run(w);
  g_worker = NULL;
  worker_destroy(w);
  return rc < 0 ? 1 : 0;
}
