/*
 * gw_internal.h — state shared by the gateway's HTTP files (http.c, router.c, reply.c,
 * generate.c, info.c). Not a public header: backends and tools use gateway.h and backend.h.
 */
#ifndef GW_INTERNAL_H
#define GW_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "buf.h"
#include "gateway.h"
#include "metrics.h"
#include "sink.h"
#include "tenants.h"

#define GW_REQUEST_ID_MAX 128
/* Retry-After of a 503 shutting_down (reply.c): the refusal says "Connection: close", so the
 * retry opens a new connection, which a load balancer sends to another instance once it has
 * taken this one out (the preStop sleep in deploy/k8s covers that). Waiting longer buys
 * nothing there, and 1 s is the shortest wait the OpenAI SDKs take as given (0 is ignored). */
#define GW_DRAIN_RETRY_AFTER_S 1
/* The Error.param of the worker's "KV cache full" refusal, passed on by the runner. */
#define GW_PARAM_KV_CACHE "kv_cache"

/* The server: one per gw_server_start(). */
struct gw_server {
  struct gw_config cfg;        /* copy; string members point at the dup'd fields below */
  char *tenants_path;          /* owned */
  char *listen_addr;           /* owned */
  struct MHD_Daemon *mhd;
  uint16_t port;
  struct gw_tenant_store *tenants;
  struct gw_metrics *metrics;
  const struct gw_backend *backend;

  /* Drain (http.c "Drain"). A request is live from its headers to MHD's completion callback
   * (its response fully sent or the connection gone). */
  pthread_mutex_t live_mu;
  struct gw_req *live;        /* under live_mu: doubly linked through live_prev/live_next */
  unsigned n_live;            /* under live_mu */
  atomic_bool draining;       /* set once by gw_server_begin_drain, never cleared */
  bool cut_off;               /* under live_mu: gw_server_drain_cut_off ran */
  int drain_fd;               /* eventfd: written when n_live reaches 0 while draining */
  unsigned drain_start_live;  /* under live_mu: n_live when the drain began */
  atomic_uint drain_refused;  /* /v1 requests refused because of the drain */
  unsigned drain_cut;         /* under live_mu: generations ended by the cut-off */
};

/* One HTTP request, from its headers to the end of its response (MHD's con_cls). */
struct gw_req {
  struct gw_server *srv;
  struct MHD_Connection *conn;
  char rid[GW_REQUEST_ID_MAX + 1]; /* x-request-id */
  char method[16];
  char path[128];           /* truncated copy, for messages */
  bool is_api;              /* a /v1 route: counted in metrics */
  struct gw_buf body;       /* limited to max_body_bytes */
  bool replied;             /* a response is queued */
  int status;               /* status of the queued response */
  uint64_t start_ns;

  struct gw_tenants *snap;  /* reference held while the request lives */
  const struct gw_tenant *tenant; /* in snap; NULL until authenticated */

  bool admitted;            /* holds a rate-limiter slot */
  uint64_t reserved_tokens;
  uint32_t retry_after_s;   /* > 0: send Retry-After */
  uint32_t prompt_estimate;
  struct gw_sink *sink;     /* HTTP side's reference; NULL when not a generation */
  bool timeout_disabled;    /* the connection timeout is off while we wait on the backend */
  struct gw_req *live_prev, *live_next; /* srv->live, under srv->live_mu */
};

/* http.c: sets r->sink (under the server's live_mu, so the drain cut-off can reach it).
 * Returns false when the drain has already been cut off: the caller must refuse the request
 * (the sink is attached anyway, so it is released with the request). */
bool gw_req_attach_sink(struct gw_req *r, struct gw_sink *sink);

/* router.c */
enum MHD_Result gw_route(struct gw_req *r);
/* Authenticates r (reply 401 on failure). Returns true when r->tenant is set. */
bool gw_authenticate(struct gw_req *r, enum MHD_Result *ret);

/* reply.c: every response goes through gw_queue(), every error through gw_reply_error(). */
enum MHD_Result gw_queue(struct gw_req *r, struct MHD_Response *resp, int status);
enum MHD_Result gw_reply_body(struct gw_req *r, int status, const char *content_type,
                              char *body, size_t len); /* takes body (malloc'd) */
enum MHD_Result gw_reply_error(struct gw_req *r, int code, const char *param, const char *fmt,
                               ...) __attribute__((format(printf, 4, 5)));
/* A backend failure (a refused submit or the sink's terminal error): the error body with
 * info's param, and Retry-After from info's hint or the rule below. info may be NULL. */
enum MHD_Result gw_reply_failure(struct gw_req *r, int code, const char *message,
                                 const struct gw_error_info *info);
/* Retry-After the gateway itself gives a 503 of code with param (NULL = none): kv_cache →
 * cfg.kv_cache_retry_after_s, shutting_down → GW_DRAIN_RETRY_AFTER_S; 0 for anything else.
 * gw_reply_error applies it to /v1 503s that have no hint yet. */
uint32_t gw_retry_after_rule(const struct gw_server *srv, int code, const char *param);
/* The OpenAI error object {"error":{...}}; malloc'd compact JSON or NULL. */
char *gw_error_json(int code, const char *message, const char *param);
uint64_t gw_now_ns(const struct gw_server *srv);
void gw_log(const struct gw_server *srv, enum gw_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* generate.c */
enum MHD_Result gw_handle_generate(struct gw_req *r, enum gw_api_kind kind);
/* Called when the request ends: cancel, settle the limiter, record metrics. */
void gw_generate_finish(struct gw_req *r, bool completed_ok);

/* info.c */
enum MHD_Result gw_handle_health(struct gw_req *r);
enum MHD_Result gw_handle_ready(struct gw_req *r);
enum MHD_Result gw_handle_metrics(struct gw_req *r);
enum MHD_Result gw_handle_models(struct gw_req *r);

#endif
