/*
 * http.c — libmicrohttpd glue: server start/stop, per-request state, body collection with
 * its limit, x-request-id, and request completion.
 *
 * Threading: MHD_USE_THREAD_PER_CONNECTION. A generation waits on its backend for seconds;
 * with one thread per connection the handler and the streaming content callback can simply
 * block in poll() on the request's eventfd *and* the client socket, which gives immediate
 * disconnect detection (POLLRDHUP → cancel upstream) and no busy loop: MHD's internal-polling
 * mode forbids a content callback that returns "no data yet". The cost is one thread (small
 * stack) per connection, bounded by the connection limit; suspend/resume would save threads
 * but cannot notice a client hang-up while a connection is suspended.
 *
 * Limits: body size (Content-Length checked before reading: 413; a chunked body that overruns
 * is cut off by closing the connection, since MHD cannot answer in the middle of an upload),
 * header size (the per-connection memory pool; MHD answers 431 when headers do not fit),
 * connection count, and an idle timeout that closes slow clients (slowloris).
 *
 * Drain (gateway.h; docs/gateway.md "Shutdown and drain"). Invariants:
 *  1. Every gw_req is on srv->live from its creation (headers in) to MHD's completion
 *     callback (response fully written, or the connection gone); n_live counts them, so
 *     "drained" means every client got its last byte, not merely that the backend finished.
 *  2. Once draining, router.c refuses /v1 routes with 503 shutting_down and reply.c adds
 *     "Connection: close" to every response: keep-alive clients leave after the answer they
 *     are waiting for, and nothing new is admitted. The listener stays open on purpose: a
 *     load balancer that still sends traffic gets a fast, retryable 503 (and /ready 503)
 *     instead of a refused connection.
 *  3. A generation's sink is attached under live_mu (gw_req_attach_sink) and detached only
 *     when the request leaves the list, so the cut-off reaches every admitted generation and
 *     never a freed sink. After the cut-off, attaching fails: a generation racing past the
 *     router's check is refused instead of starting.
 *  4. The cut-off ends a generation through its sink (gw_sink_abort), so the connection
 *     thread renders it with the usual machinery: the in-stream error event, or a 503.
 *  5. drain_fd (an eventfd) is written when n_live reaches 0 while draining; waiters poll it
 *     (with the caller's interrupt fd) and recount, so a stale wake-up costs one recount.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "auth.h"
#include "gw_internal.h"
#include "realm/error.h"
#include "realm/limits.h"

#define GW_THREAD_STACK_BYTES (512u << 10)

static bool request_id_sane(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > GW_REQUEST_ID_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '_' || c == '.' || c == ':'))
      return false;
  }
  return true;
}

static struct gw_req *req_new(struct gw_server *srv, struct MHD_Connection *conn,
                              const char *url, const char *method) {
  struct gw_req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->srv = srv;
  r->conn = conn;
  r->start_ns = gw_now_ns(srv);
  r->body.limit = srv->cfg.max_body_bytes;
  snprintf(r->method, sizeof r->method, "%s", method);
  snprintf(r->path, sizeof r->path, "%s", url);
  const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-request-id");
  if (rid && request_id_sane(rid)) {
    snprintf(r->rid, sizeof r->rid, "%s", rid);
  } else {
    unsigned char raw[12];
    char hex[25];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    snprintf(r->rid, sizeof r->rid, "req_%s", hex);
  }
  return r;
}

/* Invariant 1: the request enters the live list. */
static void live_add(struct gw_server *srv, struct gw_req *r) {
  pthread_mutex_lock(&srv->live_mu);
  r->live_prev = NULL;
  r->live_next = srv->live;
  if (srv->live) srv->live->live_prev = r;
  srv->live = r;
  srv->n_live++;
  pthread_mutex_unlock(&srv->live_mu);
}

/* Invariant 1 and 5: the request leaves; the last one out during a drain wakes the waiters. */
static void live_remove(struct gw_server *srv, struct gw_req *r) {
  pthread_mutex_lock(&srv->live_mu);
  if (r->live_prev) r->live_prev->live_next = r->live_next;
  else srv->live = r->live_next;
  if (r->live_next) r->live_next->live_prev = r->live_prev;
  r->live_prev = r->live_next = NULL;
  bool wake = --srv->n_live == 0 && atomic_load(&srv->draining);
  pthread_mutex_unlock(&srv->live_mu);
  if (wake) {
    uint64_t one = 1;
    ssize_t w = write(srv->drain_fd, &one, sizeof one);
    (void)w; /* EAGAIN: the counter is already non-zero, a waiter wakes anyway */
  }
}

bool gw_req_attach_sink(struct gw_req *r, struct gw_sink *sink) {
  struct gw_server *srv = r->srv;
  pthread_mutex_lock(&srv->live_mu);
  r->sink = sink;
  bool ok = !srv->cut_off;
  pthread_mutex_unlock(&srv->live_mu);
  return ok;
}

static void req_free(struct gw_req *r) {
  if (!r) return;
  gw_buf_free(&r->body);
  gw_sink_unref(r->sink);
  gw_tenants_unref(r->snap);
  free(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  (void)version;
  struct gw_server *srv = cls;
  struct gw_req *r = *con_cls;
  if (!r) {
    r = req_new(srv, conn, url, method);
    if (!r) return MHD_NO;
    *con_cls = r;
    live_add(srv, r);
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
      char *end = NULL;
      unsigned long long n = strtoull(cl, &end, 10);
      if (end == cl || *end != '\0' || n > srv->cfg.max_body_bytes)
        return gw_reply_error(r, REALM_E_TOO_LARGE, "",
                              "the request body (Content-Length %.32s) exceeds the limit of %zu "
                              "bytes",
                              cl, srv->cfg.max_body_bytes);
    }
    return MHD_YES;
  }
  if (*upload_data_size) {
    if (r->replied) {
      *upload_data_size = 0;
      return MHD_YES;
    }
    if (gw_buf_append(&r->body, upload_data, *upload_data_size) < 0) {
      gw_log(srv, GW_LOG_WARN, "request %s: chunked body over %zu bytes, closing", r->rid,
             srv->cfg.max_body_bytes);
      return MHD_NO;
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (r->replied) return MHD_YES;
  return gw_route(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)cls;
  struct gw_req *r = *con_cls;
  if (!r) return;
  *con_cls = NULL;
  if (r->timeout_disabled)
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
                              r->srv->cfg.connection_timeout_s);
  gw_generate_finish(r, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
  live_remove(r->srv, r); /* after the metrics and limiter settle: "drained" means settled */
  req_free(r);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  struct gw_server *srv = cls;
  if (!srv->cfg.log) return;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
  srv->cfg.log(srv->cfg.log_ctx, GW_LOG_WARN, msg);
}

static int install_tenants(struct gw_server *srv, char *err, size_t errlen) {
  struct gw_tenants *snap = NULL;
  int r = gw_tenants_load_file(srv->tenants_path, &snap, err, errlen);
  if (r < 0) return r;
  /* backend.h rule 6: the backend learns the runners before any request can name a new
   * tenant; if it cannot take them, the old configuration stays everywhere. */
  const struct gw_backend *b = srv->backend;
  if (b->ops->set_tenants && (r = b->ops->set_tenants(b->self, snap, err, errlen)) < 0) {
    gw_tenants_unref(snap);
    return r;
  }
  r = gw_tenant_store_install(srv->tenants, snap, gw_now_ns(srv));
  if (r < 0) {
    gw_tenants_unref(snap);
    snprintf(err, errlen, "installing tenants: %s", realm_err_message(r));
  }
  return r;
}

int gw_server_reload_tenants(struct gw_server *srv, char *err, size_t errlen) {
  return install_tenants(srv, err, errlen);
}

static void server_free(struct gw_server *srv) {
  if (srv->drain_fd >= 0) close(srv->drain_fd);
  pthread_mutex_destroy(&srv->live_mu);
  gw_tenant_store_destroy(srv->tenants);
  gw_metrics_destroy(srv->metrics);
  free(srv->tenants_path);
  free(srv->listen_addr);
  free(srv);
}

int gw_server_start(const struct gw_config *cfg, struct gw_server **ret_srv, char *err,
                    size_t errlen) {
  if (!cfg->tenants_path || !cfg->backend || !cfg->backend->ops) {
    snprintf(err, errlen, "gateway config: tenants_path and backend are required");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (gw_auth_init() < 0) {
    snprintf(err, errlen, "libsodium failed to initialise");
    return REALM_E_INTERNAL;
  }
  struct gw_server *srv = calloc(1, sizeof *srv);
  if (!srv) return REALM_E_NOMEM;
  srv->cfg = *cfg;
  srv->tenants_path = strdup(cfg->tenants_path);
  srv->listen_addr = strdup(cfg->listen_addr ? cfg->listen_addr : "127.0.0.1");
  srv->cfg.tenants_path = srv->tenants_path;
  srv->cfg.listen_addr = srv->listen_addr;
  if (!srv->cfg.monotonic_ns) srv->cfg.monotonic_ns = gw_clock_monotonic_ns;
  if (!srv->cfg.wall_s) srv->cfg.wall_s = gw_clock_wall_s;
  if (!srv->cfg.keepalive_ms) srv->cfg.keepalive_ms = 15000;
  if (!srv->cfg.connection_timeout_s) srv->cfg.connection_timeout_s = REALM_HTTP_CONNECTION_TIMEOUT_S;
  if (!srv->cfg.max_connections) srv->cfg.max_connections = REALM_HTTP_MAX_CONNECTIONS;
  if (!srv->cfg.max_body_bytes) srv->cfg.max_body_bytes = REALM_HTTP_MAX_BODY_BYTES;
  if (!srv->cfg.default_max_tokens_reserve) srv->cfg.default_max_tokens_reserve = 1024;
  if (!srv->cfg.kv_cache_retry_after_s) srv->cfg.kv_cache_retry_after_s = 1;
  srv->backend = cfg->backend;
  pthread_mutex_init(&srv->live_mu, NULL);
  atomic_init(&srv->draining, false);
  atomic_init(&srv->drain_refused, 0);
  srv->drain_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  int r = 0;
  if (srv->drain_fd < 0) {
    r = realm_err_from_errno(errno);
    snprintf(err, errlen, "gateway: eventfd for the drain: %s", realm_err_message(r));
    server_free(srv);
    return r;
  }
  if (!srv->tenants_path || !srv->listen_addr) r = REALM_E_NOMEM;
  if (r == 0) r = gw_tenant_store_create(&srv->tenants);
  if (r == 0) r = gw_metrics_create(&srv->metrics);
  if (r < 0) {
    snprintf(err, errlen, "gateway: out of memory");
    server_free(srv);
    return r;
  }
  if ((r = install_tenants(srv, err, errlen)) < 0) {
    server_free(srv);
    return r;
  }

  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                   MHD_USE_POLL | MHD_USE_ERROR_LOG;
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, srv->listen_addr, &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(cfg->port);
  } else if (inet_pton(AF_INET6, srv->listen_addr, &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(cfg->port);
    flags |= MHD_USE_IPv6;
  } else {
    snprintf(err, errlen, "listen address '%s' is not an IPv4 or IPv6 literal", srv->listen_addr);
    server_free(srv);
    return REALM_E_INVALID_ARGUMENT;
  }
  srv->mhd = MHD_start_daemon(
      flags, cfg->port, NULL, NULL, on_request, srv,
      MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv->cfg.max_connections,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv->cfg.connection_timeout_s,
      /* Headers must fit in the connection's pool: twice the header limit leaves room for
       * MHD's own bookkeeping, so oversized headers get 431. */
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(2 * REALM_HTTP_MAX_HEADER_BYTES),
      MHD_OPTION_THREAD_STACK_SIZE, (size_t)GW_THREAD_STACK_BYTES,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
      MHD_OPTION_END);
  if (!srv->mhd) {
    snprintf(err, errlen, "cannot listen on %s port %u (address in use or not permitted)",
             srv->listen_addr, (unsigned)cfg->port);
    server_free(srv);
    return REALM_E_SYSTEM;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
  srv->port = info ? info->port : cfg->port;
  *ret_srv = srv;
  return 0;
}

uint16_t gw_server_port(const struct gw_server *srv) { return srv->port; }

void gw_server_stop(struct gw_server *srv) {
  if (!srv) return;
  MHD_stop_daemon(srv->mhd);
  server_free(srv);
}

/* ---- drain (see the top comment) ---- */

void gw_server_begin_drain(struct gw_server *srv) {
  pthread_mutex_lock(&srv->live_mu);
  if (!atomic_load(&srv->draining)) {
    srv->drain_start_live = srv->n_live;
    atomic_store(&srv->draining, true);
  }
  pthread_mutex_unlock(&srv->live_mu);
}

bool gw_server_draining(const struct gw_server *srv) { return atomic_load(&srv->draining); }

unsigned gw_server_in_flight(struct gw_server *srv) {
  pthread_mutex_lock(&srv->live_mu);
  unsigned n = srv->n_live;
  pthread_mutex_unlock(&srv->live_mu);
  return n;
}

int gw_server_drain_wait(struct gw_server *srv, int timeout_ms, int interrupt_fd) {
  uint64_t end = gw_clock_monotonic_ns(NULL) + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
  for (;;) {
    unsigned n = gw_server_in_flight(srv);
    uint64_t now = gw_clock_monotonic_ns(NULL);
    if (n == 0 || now >= end) return (int)n;
    /* Round up so a sub-millisecond remainder is not a busy spin of zero-timeout polls. */
    int left_ms = (int)((end - now + 999999u) / 1000000u);
    struct pollfd pfd[2] = {{.fd = srv->drain_fd, .events = POLLIN},
                            {.fd = interrupt_fd, .events = POLLIN}};
    int pr = poll(pfd, interrupt_fd >= 0 ? 2 : 1, left_ms);
    if (pr < 0 && errno != EINTR) return realm_err_from_errno(errno);
    if (pr > 0 && (pfd[0].revents & POLLIN)) {
      uint64_t v;
      ssize_t rd = read(srv->drain_fd, &v, sizeof v);
      (void)rd; /* reset; the recount above decides */
    }
    if (pr > 0 && interrupt_fd >= 0 && pfd[1].revents) return (int)gw_server_in_flight(srv);
  }
}

unsigned gw_server_drain_cut_off(struct gw_server *srv) {
  const char *msg = "the gateway is shutting down and its drain time ran out before this "
                    "request finished; retry it";
  gw_server_begin_drain(srv);
  /* Under live_mu (invariant 3). Lock order live_mu → sink: the abort takes only the sink's
   * own lock and signals its eventfd; nothing holding a sink's lock takes live_mu. */
  unsigned ended = 0;
  pthread_mutex_lock(&srv->live_mu);
  srv->cut_off = true;
  for (struct gw_req *r = srv->live; r; r = r->live_next)
    if (r->sink && gw_sink_abort(r->sink, REALM_E_SHUTTING_DOWN, msg)) ended++;
  srv->drain_cut += ended;
  pthread_mutex_unlock(&srv->live_mu);
  return ended;
}

void gw_server_drain_stats(struct gw_server *srv, struct gw_drain_stats *ret) {
  pthread_mutex_lock(&srv->live_mu);
  ret->draining = atomic_load(&srv->draining);
  ret->in_flight_at_start = srv->drain_start_live;
  ret->in_flight = srv->n_live;
  ret->cut_off = srv->drain_cut;
  pthread_mutex_unlock(&srv->live_mu);
  ret->refused = atomic_load(&srv->drain_refused);
}
