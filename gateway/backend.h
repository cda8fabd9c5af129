/*
 * backend.h — the seam between the gateway's HTTP side and whatever generates text.
 *
 * The gateway validates a request, authenticates and admits it, then hands one
 * struct gw_gen_request to backend->ops->submit() together with a struct gw_sink, the
 * gateway-owned receiver of that request's events. The backend reports through three calls
 * on the sink, from any thread:
 *
 *   gw_sink_token(sink, text, len, lp)       zero or more times: generated text, in order,
 *                                            with the token's log probability when the
 *                                            request asked for logprobs (lp NULL otherwise)
 *   gw_sink_finish(sink, reason, &usage)     terminal: "stop" | "length" | "content_filter"...
 *   gw_sink_error(sink, realm_code, message) terminal: the request failed
 *   gw_sink_error_info(sink, realm_code, message, &info)
 *                                            the same, with a gw_error_info (OpenAI `param`,
 *                                            a retry hint); gw_sink_error passes none
 *
 * Contract (numbered so implementations can cite it):
 *  1. submit() returning < 0 means no event will ever arrive for that sink; the gateway
 *     answers the client with that code, the message written to err and what the backend
 *     wrote to info (zeroed by the gateway before the call; see struct gw_error_info).
 *  2. submit() returning 0 means exactly one terminal event (finish or error) will follow,
 *     also after cancel(). The sink stays valid until the terminal call returns; after it the
 *     backend must not touch the sink again.
 *  3. cancel() is called at most once, when the client went away; the backend should stop
 *     work and then deliver its terminal event (an error with REALM_E_CANCELLED is fine).
 *     cancel() can race with the terminal event from another thread: the sink pointer is
 *     valid for the duration of the call, but a backend that has already finished the sink
 *     must treat it as a no-op (look the sink up in its own table, never dereference blindly).
 *  4. The request and every string it points to are valid only during submit(): copy what
 *     you keep.
 *  5. ready() answers /ready: true when this backend can serve (runners connected, model
 *     loaded); when false it writes a short reason into why.
 *  6. set_tenants() (optional, may be NULL) is called with every tenants snapshot before the
 *     gateway starts authenticating against it (start-up and each reload), so a backend that
 *     routes per tenant learns new tenants and runner endpoints first. The snapshot is valid
 *     only during the call: copy what you keep. Returning < 0 refuses the reload (the running
 *     configuration stays) with err saying why. Requests already submitted must not be
 *     dropped by it.
 *  7. metrics() (optional, may be NULL) appends the backend's own series to the /metrics page
 *     in the Prometheus text format (HELP and TYPE lines included, names not used by the
 *     gateway's metrics.c); returns 0 or a buffer error.
 *
 * The product's implementation is backend_runners.h (ZeroMQ DEALER per runner replica, least
 * outstanding requests, health pings, fail-fast on a dead replica). gw_backend_no_runner()
 * remains for tools that need the HTTP core without generation: it refuses every request
 * with 503 rather than pretend.
 */
#ifndef GW_BACKEND_H
#define GW_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "realm/limits.h"

enum gw_api_kind {
  GW_API_CHAT = 1,       /* POST /v1/chat/completions */
  GW_API_COMPLETION = 2, /* POST /v1/completions */
};

struct gw_chat_message {
  const char *role;         /* "system" | "developer" | "user" | "assistant" | "tool" */
  const char *content;      /* text; array-of-text-parts content is concatenated */
  const char *name;         /* optional participant name, NULL if absent */
  const char *tool_call_id; /* role "tool" only, NULL if absent */
};

struct gw_logit_bias {
  int32_t token_id;
  float bias; /* -100..100 */
};

/* One validated generation request. Optional fields carry a has_ flag; defaults are the
 * backend's (the guest's sampler), not the gateway's. */
struct gw_gen_request {
  enum gw_api_kind kind;
  const char *request_id; /* the x-request-id of the HTTP request */
  const char *tenant_id;
  const char *model;

  const struct gw_chat_message *messages; /* GW_API_CHAT */
  size_t n_messages;
  const char *prompt; /* GW_API_COMPLETION */

  uint32_t max_tokens; /* 0 = unset: generate until a stop condition or the context ends */
  bool has_temperature;
  double temperature; /* 0..2 */
  bool has_top_p;
  double top_p; /* (0, 1] */
  const char *stop[REALM_MAX_STOP_SEQUENCES];
  size_t n_stop;
  bool has_seed;
  int64_t seed;
  double presence_penalty;  /* -2..2, 0 when unset */
  double frequency_penalty; /* -2..2, 0 when unset */
  const struct gw_logit_bias *logit_bias;
  size_t n_logit_bias;
  bool logprobs;
  uint32_t top_logprobs; /* 0..20 */
  const char *user;      /* end-user id for abuse tracking, NULL if absent */
  bool stream;
  bool include_usage;

  uint32_t prompt_tokens_estimate; /* bytes/4 heuristic used for token-rate admission */
};

struct gw_usage {
  uint32_t prompt_tokens;
  uint32_t completion_tokens;
};

/* Log probabilities of one sampled token (OpenAI `logprobs`). Texts are the token's own bytes
 * (they may be part of a multi-byte character); the sink copies them. A backend passes at
 * most GW_MAX_TOP_LOGPROBS alternatives and tokens of at most GW_MAX_LOGPROB_TOKEN_BYTES:
 * the sink drops alternatives past the first GW_MAX_TOP_LOGPROBS and cuts longer texts. */
#define GW_MAX_TOP_LOGPROBS 20
#define GW_MAX_LOGPROB_TOKEN_BYTES 256

struct gw_top_logprob {
  const char *text;
  size_t len;
  float logprob;
};

struct gw_token_logprob {
  const char *text; /* the sampled token */
  size_t len;
  float logprob;
  const struct gw_top_logprob *top; /* the most likely alternatives, best first */
  size_t n_top;
};

/* What a failure carries besides its realm code and message (both optional). The gateway
 * turns it into the OpenAI error body's `param` and, on a 503, the `Retry-After` header
 * (docs/gateway.md "Errors": which 503s carry one and why). */
#define GW_ERROR_PARAM_MAX 64
struct gw_error_info {
  /* The OpenAI `param`: the request field at fault, or the exhausted resource ("kv_cache": the
   * worker's shared KV cache is full, docs/protocol.md §5). "" = none (JSON null). Printable
   * ASCII only; the sink drops anything else rather than send bytes it cannot vouch for. */
  char param[GW_ERROR_PARAM_MAX];
  /* > 0: the backend knows when a retry can succeed (e.g. its next health check), in whole
   * seconds; 0 = no hint: the gateway applies its own rule for the code and param. */
  uint32_t retry_after_s;
};

struct gw_sink;    /* gateway-owned, opaque to backends */
struct gw_tenants; /* tenants.h: a parsed tenants file (rule 6) */
struct gw_buf;     /* buf.h: a bounded growable buffer (rule 7) */

/* text may be empty (len 0) when the backend holds text back but the token still has a
 * logprob entry; lp is NULL when there is none. */
void gw_sink_token(struct gw_sink *sink, const char *text, size_t len,
                   const struct gw_token_logprob *lp);
void gw_sink_finish(struct gw_sink *sink, const char *finish_reason, const struct gw_usage *usage);
void gw_sink_error(struct gw_sink *sink, int realm_code, const char *message);
/* gw_sink_error with details; info may be NULL (= gw_sink_error). The sink copies it. */
void gw_sink_error_info(struct gw_sink *sink, int realm_code, const char *message,
                        const struct gw_error_info *info);

struct gw_backend_ops {
  /* info: zeroed by the gateway; a backend returning < 0 may fill it (rule 1). */
  int (*submit)(void *self, const struct gw_gen_request *req, struct gw_sink *sink, char *err,
                size_t errlen, struct gw_error_info *info);
  void (*cancel)(void *self, struct gw_sink *sink);
  bool (*ready)(void *self, char *why, size_t whylen);
  int (*set_tenants)(void *self, const struct gw_tenants *snap, char *err, size_t errlen);
  int (*metrics)(void *self, struct gw_buf *out);
};

struct gw_backend {
  const struct gw_backend_ops *ops;
  void *self;
};

/* A backend without runners: never ready, and every submit fails with REALM_E_UNAVAILABLE
 * "no runner available for tenant X". */
const struct gw_backend *gw_backend_no_runner(void);

#endif
