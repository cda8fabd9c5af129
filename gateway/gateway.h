/*
 * gateway.h — the gateway core as a library: an HTTP server (libmicrohttpd) serving the
 * OpenAI-compatible API over a pluggable backend (backend.h). realm-gateway's main.c, realmctl
 * and the tests all use this; nothing here prints — errors come back in err buffers or through
 * the optional log callback.
 */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "clock.h"

enum gw_log_level { GW_LOG_ERROR = 0, GW_LOG_WARN = 1, GW_LOG_INFO = 2 };
typedef void (*gw_log_fn)(void *ctx, enum gw_log_level level, const char *msg);

struct gw_config {
  const char *listen_addr;  /* IPv4 or IPv6 literal; NULL = "127.0.0.1" */
  uint16_t port;            /* 0 = any free port (see gw_server_port) */
  const char *tenants_path; /* required: the tenants JSON file */
  const struct gw_backend *backend; /* required */

  gw_clock_fn monotonic_ns; /* NULL = CLOCK_MONOTONIC */
  gw_wall_clock_fn wall_s;  /* NULL = time() */
  void *clock_ctx;

  uint32_t keepalive_ms;         /* SSE keep-alive period; 0 = 15000 */
  uint32_t connection_timeout_s; /* idle/slow client cut-off; 0 = REALM_HTTP_CONNECTION_TIMEOUT_S */
  uint32_t max_connections;      /* 0 = REALM_HTTP_MAX_CONNECTIONS */
  size_t max_body_bytes;         /* 0 = REALM_HTTP_MAX_BODY_BYTES */
  uint32_t default_max_tokens_reserve; /* tokens reserved when max_tokens is unset; 0 = 1024 */
  /* Retry-After (seconds) of a 503 whose error param is "kv_cache" (the worker's shared KV
   * cache is full; sessions end every few seconds, so capacity comes back soon); 0 = 1 */
  uint32_t kv_cache_retry_after_s;

  gw_log_fn log; /* NULL = silent */
  void *log_ctx;
};

struct gw_server;

/* Loads the tenants file and starts serving. Returns 0 or a negative code with err filled. */
int gw_server_start(const struct gw_config *cfg, struct gw_server **ret_srv, char *err,
                    size_t errlen);
/* The port actually bound. */
uint16_t gw_server_port(const struct gw_server *srv);
/* Re-reads the tenants file; on any error the running configuration stays and err says why. */
int gw_server_reload_tenants(struct gw_server *srv, char *err, size_t errlen);
/* Stops accepting, closes connections (in-flight generations are cancelled), frees. For a
 * graceful stop, drain first (below). */
void gw_server_stop(struct gw_server *srv);

/* ---- Graceful drain (docs/gateway.md "Shutdown and drain") ----
 * A rolling restart calls, in order: gw_server_begin_drain; gw_server_drain_wait until it
 * returns 0 or the drain timeout passes; gw_server_drain_cut_off; gw_server_drain_wait once
 * more with a short bound so the ended requests can send their last bytes; gw_server_stop.
 * All of them may be called from any thread. */

/* Starts draining (idempotent): /ready answers 503 "draining", every new /v1 request gets 503
 * shutting_down, every response from now on carries "Connection: close"; requests already in
 * flight go on untouched. /health and /metrics keep answering. */
void gw_server_begin_drain(struct gw_server *srv);
bool gw_server_draining(const struct gw_server *srv);
/* HTTP requests in flight: headers received, response not yet fully sent. */
unsigned gw_server_in_flight(struct gw_server *srv);
/* After gw_server_begin_drain: waits until no request is in flight, timeout_ms (>= 0) passes,
 * or interrupt_fd (>= 0, e.g. a signalfd; -1 = none) becomes readable; interrupt_fd is not
 * read. Returns the requests still in flight (0: drained) or a negative error code. */
int gw_server_drain_wait(struct gw_server *srv, int timeout_ms, int interrupt_fd);
/* Ends every generation still in flight with REALM_E_SHUTTING_DOWN: a stream under way sends
 * an in-stream error event and ends, a request not yet answered gets a 503; the backend is
 * told to cancel. Generations admitted later are refused the same way. Begins the drain if
 * it has not begun. Returns how many requests it ended. */
unsigned gw_server_drain_cut_off(struct gw_server *srv);

struct gw_drain_stats {
  bool draining;
  unsigned in_flight_at_start; /* requests in flight when the drain began */
  unsigned in_flight;          /* now */
  uint64_t refused;            /* new /v1 requests answered 503 shutting_down */
  unsigned cut_off;            /* generations ended by gw_server_drain_cut_off */
};
void gw_server_drain_stats(struct gw_server *srv, struct gw_drain_stats *ret);

#endif
