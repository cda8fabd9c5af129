/*
 * main.c — realm-gateway: parses flags, starts the gateway core (gateway.h) and turns signals
 * into actions: SIGHUP reloads the tenants file (a bad file keeps the running one, logged),
 * SIGINT/SIGTERM stop. Signals are blocked in every thread before the server starts and taken
 * synchronously with sigwait(), so no handler runs inside a connection thread.
 *
 * Until the ZeroMQ runner client exists the backend is gw_backend_no_runner(): every
 * generation request gets an honest 503 and /ready stays 503.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway.h"

static void log_stderr(void *ctx, enum gw_log_level level, const char *msg) {
  (void)ctx;
  static const char *names[] = {"error", "warn", "info"};
  char ts[32];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  fprintf(stderr, "%s realm-gateway %s: %s\n", ts, names[level <= GW_LOG_INFO ? level : 0], msg);
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: realm-gateway --tenants FILE [--listen ADDR] [--port N]\n"
          "  --tenants FILE   tenants JSON (or env REALM_TENANTS); SIGHUP reloads it\n"
          "  --listen ADDR    IPv4/IPv6 address to bind (default 127.0.0.1; env REALM_LISTEN)\n"
          "  --port N         TCP port (default 8080; env REALM_PORT)\n");
}

static int parse_port(const char *s, uint16_t *ret) {
  char *end = NULL;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < 0 || v > 65535) return -1;
  *ret = (uint16_t)v;
  return 0;
}

int main(int argc, char **argv) {
  struct gw_config cfg = {0};
  cfg.tenants_path = getenv("REALM_TENANTS");
  cfg.listen_addr = getenv("REALM_LISTEN");
  cfg.port = 8080;
  cfg.log = log_stderr;
  cfg.backend = gw_backend_no_runner();
  if (getenv("REALM_PORT") && parse_port(getenv("REALM_PORT"), &cfg.port) < 0) {
    fprintf(stderr, "realm-gateway: REALM_PORT '%s' is not a port number\n", getenv("REALM_PORT"));
    return 2;
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--tenants") && v) {
      cfg.tenants_path = v;
      i++;
    } else if (!strcmp(a, "--listen") && v) {
      cfg.listen_addr = v;
      i++;
    } else if (!strcmp(a, "--port") && v) {
      if (parse_port(v, &cfg.port) < 0) {
        fprintf(stderr, "realm-gateway: --port '%s' is not a port number\n", v);
        return 2;
      }
      i++;
    } else {
      fprintf(stderr, "realm-gateway: unknown or incomplete option '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (!cfg.tenants_path) {
    fprintf(stderr, "realm-gateway: no tenants file (--tenants FILE or REALM_TENANTS)\n");
    return 2;
  }

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  char err[512];
  struct gw_server *srv = NULL;
  if (gw_server_start(&cfg, &srv, err, sizeof err) < 0) {
    fprintf(stderr, "realm-gateway: %s\n", err);
    return 1;
  }
  char msg[256];
  snprintf(msg, sizeof msg, "listening on %s port %u (tenants %s; backend: no runner client yet)",
           cfg.listen_addr ? cfg.listen_addr : "127.0.0.1", (unsigned)gw_server_port(srv),
           cfg.tenants_path);
  log_stderr(NULL, GW_LOG_INFO, msg);
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      if (gw_server_reload_tenants(srv, err, sizeof err) < 0) {
        snprintf(msg, sizeof msg, "reload refused, keeping the running tenants: %.200s", err);
        log_stderr(NULL, GW_LOG_ERROR, msg);
      } else {
        log_stderr(NULL, GW_LOG_INFO, "tenants reloaded");
      }
      continue;
    }
    log_stderr(NULL, GW_LOG_INFO, "stopping");
    break;
  }
  gw_server_stop(srv);
  return 0;
}
