/*
 * backend_runners.h — the gateway's real backend: a ZeroMQ client of the tenants' runner
 * replicas (docs/protocol.md §4), implementing backend.h.
 *
 * Per tenant, the replicas are the `runners` endpoints of the tenants file (backend.h rule 6
 * hands every snapshot in). One DEALER per replica; submit() picks, among the tenant's
 * routable replicas, the least loaded one (outstanding requests, adjusted by the in_flight /
 * max_in_flight its health pongs report; a full replica never while another has room; see
 * backend_runners.c note 6) and sends it a GenerateRequest; the replica's GenerateEvents are routed back to the request's gw_sink by
 * request id. Replicas are pinged every ping_ms; one that misses ping_misses pongs in a row,
 * or whose connection drops, is taken out and its in-flight requests fail at once with
 * REALM_E_UNAVAILABLE; it is put back when it answers a ping again. With no routable replica
 * submit() fails with REALM_E_UNAVAILABLE "no runner available for tenant X" (a 503).
 *
 * Threads: one I/O thread owns every ZeroMQ socket (they are not thread-safe). HTTP threads
 * never touch a socket: submit() encodes the frame itself (so nothing borrowed from the
 * request outlives the call), records the request in a table under one mutex, queues a
 * command and wakes the I/O thread through an eventfd it polls next to the sockets.
 * See docs/gateway.md "Runner backend" for the state machine of a replica.
 */
#ifndef GW_BACKEND_RUNNERS_H
#define GW_BACKEND_RUNNERS_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "gateway.h"

struct gw_runners_config {
  uint32_t ping_ms;         /* health ping period; 0 = 1000 */
  uint32_t ping_misses;     /* consecutive unanswered pings that take a replica out; 0 = 3 */
  uint32_t cancel_grace_ms; /* a cancelled request the runner does not finish within this is
                               failed locally; 0 = 5000 */
  void *zmq_ctx;            /* NULL = the backend creates and owns its own context */
  gw_log_fn log;            /* replica up/down and protocol trouble; NULL = silent */
  void *log_ctx;
};

/* Health of one replica as the router sees it (for tests and diagnostics). */
enum gw_replica_state {
  GW_REPLICA_UNKNOWN = 0, /* no pong yet since it was added */
  GW_REPLICA_UP = 1,      /* answering pings and ready: receives traffic */
  GW_REPLICA_NOT_READY = 2, /* answering pings but says ready=false: no new traffic */
  GW_REPLICA_DOWN = 3,    /* missed pings or lost its connection */
};

struct gw_runner_stats {
  enum gw_replica_state state;
  uint32_t outstanding;      /* requests routed to it and not finished */
  uint64_t routed_total;     /* requests ever routed to it */
  uint64_t failed_down_total; /* requests failed because it went down */
  uint64_t down_total;        /* times taken out after answering pings */
  uint64_t failovers_total;   /* ... while another replica of the tenant was up */
  uint32_t runner_in_flight;     /* its last HealthPong: requests it was running (all gateways) */
  uint32_t runner_max_in_flight; /* its last HealthPong: its capacity (0 = not reported) */
};

struct gw_runners;

/* Starts the I/O thread. Returns 0 or a negative code with err filled. */
int gw_runners_create(const struct gw_runners_config *cfg, struct gw_runners **ret, char *err,
                      size_t errlen);
/* The backend.h view (valid until destroy). */
const struct gw_backend *gw_runners_backend(struct gw_runners *rn);
/* Stats of the replica (tenant, endpoint); REALM_E_NOT_FOUND when it is not configured. */
int gw_runners_replica_stats(struct gw_runners *rn, const char *tenant, const char *endpoint,
                             struct gw_runner_stats *ret);
/* Stops the I/O thread and fails every request still in flight with REALM_E_SHUTTING_DOWN.
 * Call after gw_server_stop(). Accepts NULL. */
void gw_runners_destroy(struct gw_runners *rn);

#endif
