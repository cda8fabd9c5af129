/*
 * info.c — the small endpoints: /health (the process is alive), /ready (it can serve: tenants
 * loaded, the backend ready, and not draining), /metrics (Prometheus text) and /v1/models (the models the
 * calling tenant may use, in OpenAI's list shape).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gw_internal.h"
#include "realm/error.h"

static enum MHD_Result reply_json_text(struct gw_req *r, int status, const char *text) {
  char *body = strdup(text);
  return gw_reply_body(r, status, "application/json", body, body ? strlen(body) : 0);
}

enum MHD_Result gw_handle_health(struct gw_req *r) {
  return reply_json_text(r, 200, "{\"status\":\"ok\"}");
}

enum MHD_Result gw_handle_ready(struct gw_req *r) {
  char why[256] = "";
  const struct gw_backend *b = r->srv->backend;
  /* Draining: fail readiness first, so the load balancer stops sending traffic here. */
  if (atomic_load(&r->srv->draining))
    return gw_reply_error(r, REALM_E_SHUTTING_DOWN, "", "not ready: draining");
  if (!b->ops->ready(b->self, why, sizeof why))
    return gw_reply_error(r, REALM_E_UNAVAILABLE, "", "not ready: %s", why[0] ? why : "backend");
  return reply_json_text(r, 200, "{\"status\":\"ready\"}");
}

enum MHD_Result gw_handle_metrics(struct gw_req *r) {
  size_t len = 0;
  char *text = gw_metrics_render(r->srv->metrics, &len);
  if (!text) return gw_reply_error(r, REALM_E_NOMEM, "", "cannot render metrics");
  /* backend.h rule 7: the backend's series (runner replicas) follow the gateway's own. */
  const struct gw_backend *be = r->srv->backend;
  if (be->ops->metrics) {
    struct gw_buf b = {.data = text, .len = len, .cap = len + 1};
    int rc = be->ops->metrics(be->self, &b);
    text = gw_buf_steal(&b, &len);
    if (rc < 0) {
      free(text);
      return gw_reply_error(r, REALM_E_NOMEM, "", "cannot render the backend's metrics");
    }
  }
  return gw_reply_body(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

enum MHD_Result gw_handle_models(struct gw_req *r) {
  json_t *data = json_array();
  for (size_t i = 0; data && i < r->tenant->n_models; i++)
    json_array_append_new(data, json_pack("{s:s,s:s,s:i,s:s}", "id", r->tenant->models[i],
                                          "object", "model", "created", 0, "owned_by", "realm"));
  json_t *o = json_pack("{s:s,s:o}", "object", "list", "data", data);
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (!s) return gw_reply_error(r, REALM_E_NOMEM, "", "out of memory");
  return gw_reply_body(r, 200, "application/json", s, strlen(s));
}
