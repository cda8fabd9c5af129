/*
 * main.c — realm-gateway: parses options (realm/config.h: flags, REALM_* environment,
 * defaults), starts the runner backend (backend_runners.h: ZeroMQ to every tenant's runner
 * replicas) and the HTTP core (gateway.h), and turns signals into actions: SIGHUP reloads the
 * tenants file (keys, limits, models and runner endpoints; a bad file keeps the running one,
 * logged), SIGINT/SIGTERM stop. Signals are blocked in every thread before any thread starts
 * and taken synchronously with sigwait(), so no handler runs inside a connection or I/O thread.
 * Logging goes through realm/log.h (REALM_LOG_LEVEL, REALM_LOG_FORMAT).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_runners.h"
#include "gateway.h"
#include "realm/config.h"
#include "realm/limits.h"
#include "realm/log.h"

static void log_bridge(void *ctx, enum gw_log_level level, const char *msg) {
  (void)ctx;
  realm_log_level l = level == GW_LOG_ERROR  ? REALM_LOG_ERROR
                      : level == GW_LOG_WARN ? REALM_LOG_WARN
                                             : REALM_LOG_INFO;
  realm_log(l, msg);
}

int main(int argc, char **argv) {
  const char *tenants = NULL, *listen_addr = NULL;
  int64_t port = 0, ping_ms = 0, ping_misses = 0, cancel_grace_ms = 0, keepalive_ms = 0;
  int64_t max_connections = 0;
  const struct realm_option opts[] = {
      {"tenants", "REALM_TENANTS", REALM_OPT_STRING, NULL, 0, 0,
       "tenants JSON file (keys, limits, models, runner endpoints); SIGHUP reloads it", &tenants},
      {"listen", "REALM_LISTEN", REALM_OPT_STRING, "127.0.0.1", 0, 0,
       "IPv4 or IPv6 address to bind", &listen_addr},
      {"port", "REALM_PORT", REALM_OPT_INT64, "8080", 0, 65535, "TCP port (0: any free port)",
       &port},
      {"ping-ms", "REALM_GATEWAY_PING_MS", REALM_OPT_DURATION_MS, "1s", 10, 60000,
       "health ping period per runner replica", &ping_ms},
      {"ping-misses", "REALM_GATEWAY_PING_MISSES", REALM_OPT_INT64, "3", 1, 1000,
       "unanswered pings in a row that take a replica out (its requests fail at once)",
       &ping_misses},
      {"cancel-grace", "REALM_GATEWAY_CANCEL_GRACE_MS", REALM_OPT_DURATION_MS, "5s", 1, 600000,
       "a cancelled request the runner does not end within this is ended by the gateway",
       &cancel_grace_ms},
      {"keepalive", "REALM_GATEWAY_KEEPALIVE_MS", REALM_OPT_DURATION_MS, "15s", 100, 600000,
       "SSE keep-alive comment period on a silent stream", &keepalive_ms},
      {"max-connections", "REALM_GATEWAY_MAX_CONNECTIONS", REALM_OPT_INT64, "1024", 1,
       REALM_HTTP_MAX_CONNECTIONS, "concurrent HTTP connections", &max_connections},
  };
  char err[512];
  int rc = realm_config_parse(opts, REALM_COUNTOF(opts), argc, argv, NULL, err, sizeof err);
  if (rc == REALM_CONFIG_HELP) {
    realm_config_print_help(stdout, "realm-gateway",
                            "OpenAI-compatible HTTP gateway in front of the tenants' runners",
                            opts, REALM_COUNTOF(opts));
    return 0;
  }
  char log_err[256] = "";
  realm_log_init_from_env("gateway", log_err, sizeof log_err);
  if (log_err[0]) {
    realm_log_error("bad logging settings", RLOG_STR("detail", log_err));
    return 2;
  }
  if (rc < 0) {
    realm_log_error("bad options", RLOG_STR("detail", err));
    return 2;
  }
  if (!tenants || !tenants[0]) {
    realm_log_error("no tenants file: pass --tenants FILE or set REALM_TENANTS");
    return 2;
  }

  /* Block before any thread exists so every thread (I/O, MHD) inherits the mask. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  struct gw_runners_config rcfg = {.ping_ms = (uint32_t)ping_ms,
                                   .ping_misses = (uint32_t)ping_misses,
                                   .cancel_grace_ms = (uint32_t)cancel_grace_ms,
                                   .log = log_bridge};
  struct gw_runners *runners = NULL;
  if (gw_runners_create(&rcfg, &runners, err, sizeof err) < 0) {
    realm_log_error("cannot start the runner backend", RLOG_STR("detail", err));
    return 1;
  }
  struct gw_config cfg = {.listen_addr = listen_addr,
                          .port = (uint16_t)port,
                          .tenants_path = tenants,
                          .backend = gw_runners_backend(runners),
                          .keepalive_ms = (uint32_t)keepalive_ms,
                          .max_connections = (uint32_t)max_connections,
                          .log = log_bridge};
  struct gw_server *srv = NULL;
  if (gw_server_start(&cfg, &srv, err, sizeof err) < 0) {
    realm_log_error("cannot start", RLOG_STR("detail", err));
    gw_runners_destroy(runners);
    return 1;
  }
  realm_log_info("listening", RLOG_STR("addr", listen_addr), RLOG_UINT("port", gw_server_port(srv)),
                 RLOG_STR("tenants", tenants), RLOG_INT("ping_ms", ping_ms),
                 RLOG_INT("ping_misses", ping_misses));
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      if (gw_server_reload_tenants(srv, err, sizeof err) < 0)
        realm_log_error("reload refused, keeping the running tenants", RLOG_STR("detail", err));
      else
        realm_log_info("tenants reloaded", RLOG_STR("tenants", tenants));
      continue;
    }
    realm_log_info("stopping", RLOG_STR("signal", sig == SIGINT ? "SIGINT" : "SIGTERM"));
    break;
  }
  gw_server_stop(srv);       /* connections first: their requests are cancelled ... */
  gw_runners_destroy(runners); /* ... then whatever is left gets its terminal event */
  return 0;
}
