/*
 * daemon.c — the signal set-up that realm-worker and realm-runner share (see realm/daemon.h).
 */
#include "realm/daemon.h"

#include <signal.h>
#include <string.h>

#include "realm/error.h"

int realm_daemon_catch_stop_signals(void (*on_stop)(int sig)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
    return REALM_E_INTERNAL;
  return 0;
}
