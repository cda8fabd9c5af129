/*
 * reply.c — the one path every gateway response takes. gw_queue() stamps the headers every
 * response carries (x-request-id; the x-ratelimit-* set once the caller is authenticated;
 * Retry-After on refusals) and gw_reply_error() is the only producer of error bodies: it
 * maps a realm error code to the HTTP status and OpenAI error type of the table in
 * realm/error.h, so no handler ever picks a status by hand. While the server drains, every
 * response also says "Connection: close".
 *
 * Retry-After (docs/gateway.md "Retry-After on 503"): a 429 carries the rate limiter's wait;
 * a 503 of a /v1 request carries one only when the gateway knows a retry can succeed soon:
 * the backend's own hint (no healthy runner replica: its next health ping), or the rule below
 * for the code and param (a full KV cache; the gateway draining). Every other error has none:
 * a client must not be told to come back for a 400, and for an unexplained 503 the client's
 * own backoff is as good a guess as ours. The official OpenAI SDKs retry every 5xx and 429
 * and honour a Retry-After of 1..59 s (0, or 60 and more, falls back to their own backoff),
 * so the values are whole seconds >= 1.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gw_internal.h"
#include "realm/error.h"
#include "utf8.h"

uint64_t gw_now_ns(const struct gw_server *srv) {
  return srv->cfg.monotonic_ns(srv->cfg.clock_ctx);
}

void gw_log(const struct gw_server *srv, enum gw_log_level level, const char *fmt, ...) {
  if (!srv->cfg.log) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  srv->cfg.log(srv->cfg.log_ctx, level, msg);
}

/* OpenAI-style durations: "0s", "250ms", "6s", "1m30s". */
static void format_reset(uint64_t ms, char *out, size_t outlen) {
  if (ms == 0) snprintf(out, outlen, "0s");
  else if (ms < 1000) snprintf(out, outlen, "%llums", (unsigned long long)ms);
  else if (ms < 60000) snprintf(out, outlen, "%llus", (unsigned long long)((ms + 999) / 1000));
  else {
    uint64_t s = (ms + 999) / 1000;
    snprintf(out, outlen, "%llum%llus", (unsigned long long)(s / 60), (unsigned long long)(s % 60));
  }
}

static void add_u64(struct MHD_Response *resp, const char *name, uint64_t v) {
  char s[32];
  snprintf(s, sizeof s, "%llu", (unsigned long long)v);
  MHD_add_response_header(resp, name, s);
}

static void add_ratelimit_headers(struct gw_req *r, struct MHD_Response *resp) {
  if (!r->tenant || !r->tenant->limiter) return;
  struct gw_rl_view v;
  char reset[32];
  gw_rl_view(r->tenant->limiter, gw_now_ns(r->srv), &v);
  if (v.limits.requests_per_minute) {
    add_u64(resp, "x-ratelimit-limit-requests", v.limits.requests_per_minute);
    add_u64(resp, "x-ratelimit-remaining-requests", v.remaining_requests);
    format_reset(v.reset_requests_ms, reset, sizeof reset);
    MHD_add_response_header(resp, "x-ratelimit-reset-requests", reset);
  }
  if (v.limits.tokens_per_minute) {
    add_u64(resp, "x-ratelimit-limit-tokens", v.limits.tokens_per_minute);
    add_u64(resp, "x-ratelimit-remaining-tokens", v.remaining_tokens);
    format_reset(v.reset_tokens_ms, reset, sizeof reset);
    MHD_add_response_header(resp, "x-ratelimit-reset-tokens", reset);
  }
}

enum MHD_Result gw_queue(struct gw_req *r, struct MHD_Response *resp, int status) {
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, "x-request-id", r->rid);
  add_ratelimit_headers(r, resp);
  if (r->retry_after_s) add_u64(resp, "Retry-After", r->retry_after_s);
  /* Draining (http.c): a keep-alive client must not send its next request here. */
  if (atomic_load(&r->srv->draining)) MHD_add_response_header(resp, "Connection", "close");
  enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
  MHD_destroy_response(resp);
  if (ok == MHD_YES) {
    r->replied = true;
    r->status = status;
  }
  return ok;
}

enum MHD_Result gw_reply_body(struct gw_req *r, int status, const char *content_type,
                              char *body, size_t len) {
  if (!body) return MHD_NO;
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
  if (!resp) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", content_type);
  return gw_queue(r, resp, status);
}

char *gw_error_json(int code, const char *message, const char *param) {
  /* Messages may quote client input cut at a byte limit: make them valid UTF-8 first. */
  struct gw_buf in = {0}, clean = {0};
  if (gw_buf_appends(&in, message) < 0 || gw_utf8_drain(&in, true, &clean) < 0 ||
      gw_buf_appends(&clean, "") < 0) {
    gw_buf_free(&in);
    gw_buf_free(&clean);
    return NULL;
  }
  gw_buf_free(&in);
  message = clean.data;
  /* json_string refuses invalid UTF-8: a param that is not text renders as null rather than
   * losing the whole error body. */
  json_t *pj = param && *param ? json_string(param) : NULL;
  json_t *o = json_pack("{s:{s:s,s:s,s:o,s:s}}", "error", "message", message, "type",
                        realm_err_openai_type(code), "param", pj ? pj : json_null(), "code",
                        realm_err_name(code));
  gw_buf_free(&clean);
  if (!o) return NULL;
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return s;
}

uint32_t gw_retry_after_rule(const struct gw_server *srv, int code, const char *param) {
  if (realm_err_http_status(code) != 503) return 0;
  if (code == REALM_E_SHUTTING_DOWN) return GW_DRAIN_RETRY_AFTER_S;
  if (code == REALM_E_UNAVAILABLE && param && strcmp(param, GW_PARAM_KV_CACHE) == 0)
    return srv->cfg.kv_cache_retry_after_s;
  return 0;
}

enum MHD_Result gw_reply_error(struct gw_req *r, int code, const char *param, const char *fmt,
                               ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  int status = realm_err_http_status(code);
  if (status == 503 && r->is_api && !r->retry_after_s)
    r->retry_after_s = gw_retry_after_rule(r->srv, code, param);
  if (status >= 500)
    gw_log(r->srv, GW_LOG_WARN, "request %s %s %s: %d %s", r->rid, r->method, r->path, status,
           msg);
  char *body = gw_error_json(code, msg, param);
  if (!body) return MHD_NO;
  return gw_reply_body(r, status, "application/json", body, strlen(body));
}

enum MHD_Result gw_reply_failure(struct gw_req *r, int code, const char *message,
                                 const struct gw_error_info *info) {
  /* A backend's hint speaks for its 503s only: a 4xx is never worth retrying as it stands. */
  if (info && info->retry_after_s && realm_err_http_status(code) == 503 && r->is_api)
    r->retry_after_s = info->retry_after_s;
  char param[GW_ERROR_PARAM_MAX];
  gw_error_param_copy(param, info ? info->param : NULL);
  return gw_reply_error(r, code, param, "%s",
                        message && *message ? message : realm_err_message(code));
}
