/*
 * router.c — maps method + path to a handler, and authenticates the /v1 routes. Paths are
 * matched exactly (MHD has already split off the query string). A known path with the wrong
 * method gets a 404 naming the method, like OpenAI's API. While the server drains (http.c
 * "Drain"), every /v1 route is refused with 503 shutting_down before authentication: nothing
 * new is admitted, and a client learns nothing about keys from a gateway on its way out.
 */
#include <string.h>

#include "auth.h"
#include "gw_internal.h"
#include "realm/error.h"

enum route_auth { ROUTE_PUBLIC, ROUTE_TENANT };

struct route {
  const char *method;
  const char *path;
  enum route_auth auth;
  enum MHD_Result (*fn)(struct gw_req *r);
};

static enum MHD_Result handle_chat(struct gw_req *r) { return gw_handle_generate(r, GW_API_CHAT); }
static enum MHD_Result handle_completions(struct gw_req *r) {
  return gw_handle_generate(r, GW_API_COMPLETION);
}

static const struct route routes[] = {
    {"POST", "/v1/chat/completions", ROUTE_TENANT, handle_chat},
    {"POST", "/v1/completions", ROUTE_TENANT, handle_completions},
    {"GET", "/v1/models", ROUTE_TENANT, gw_handle_models},
    {"GET", "/health", ROUTE_PUBLIC, gw_handle_health},
    {"GET", "/ready", ROUTE_PUBLIC, gw_handle_ready},
    {"GET", "/metrics", ROUTE_PUBLIC, gw_handle_metrics},
};

bool gw_authenticate(struct gw_req *r, enum MHD_Result *ret) {
  char msg[256];
  r->snap = gw_tenant_store_get(r->srv->tenants);
  const char *authz = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
  const struct gw_tenant *t = NULL;
  if (gw_auth_lookup(r->snap, authz, &t, msg, sizeof msg) < 0) {
    *ret = gw_reply_error(r, REALM_E_UNAUTHENTICATED, "", "%s", msg);
    return false;
  }
  r->tenant = t;
  return true;
}

enum MHD_Result gw_route(struct gw_req *r) {
  bool path_known = false;
  r->is_api = strncmp(r->path, "/v1/", 4) == 0;
  if (r->is_api && atomic_load(&r->srv->draining)) {
    atomic_fetch_add(&r->srv->drain_refused, 1);
    return gw_reply_error(r, REALM_E_SHUTTING_DOWN, "",
                          "The gateway is shutting down and takes no new requests; retry on "
                          "another instance.");
  }
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    if (strcmp(routes[i].path, r->path) != 0) continue;
    path_known = true;
    if (strcmp(routes[i].method, r->method) != 0) continue;
    if (routes[i].auth == ROUTE_TENANT) {
      enum MHD_Result res;
      if (!gw_authenticate(r, &res)) return res;
    }
    return routes[i].fn(r);
  }
  if (path_known)
    return gw_reply_error(r, REALM_E_NOT_FOUND, "", "Method %s is not allowed for %s", r->method,
                          r->path);
  return gw_reply_error(r, REALM_E_NOT_FOUND, "", "Unknown request URL: %s %s", r->method,
                        r->path);
}
