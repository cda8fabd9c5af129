/*
 * backend_no_runner.c — the backend realm-gateway uses until the ZeroMQ runner client exists.
 * It exists so the binary is honest: every generation request gets a clear 503 naming the
 * tenant instead of a made-up answer, and /ready stays 503.
 */
#include <stdio.h>

#include "backend.h"
#include "realm/error.h"

static int no_runner_submit(void *self, const struct gw_gen_request *req, struct gw_sink *sink,
                            char *err, size_t errlen, struct gw_error_info *info) {
  (void)self;
  (void)sink;
  (void)info; /* no retry hint: no runner will ever appear in this build */
  snprintf(err, errlen, "no runner available for tenant %s", req->tenant_id);
  return REALM_E_UNAVAILABLE;
}

static void no_runner_cancel(void *self, struct gw_sink *sink) {
  (void)self;
  (void)sink;
}

static bool no_runner_ready(void *self, char *why, size_t whylen) {
  (void)self;
  snprintf(why, whylen, "no runner client in this build");
  return false;
}

static const struct gw_backend_ops no_runner_ops = {
    .submit = no_runner_submit,
    .cancel = no_runner_cancel,
    .ready = no_runner_ready,
};

static const struct gw_backend no_runner_backend = {.ops = &no_runner_ops, .self = NULL};

const struct gw_backend *gw_backend_no_runner(void) { return &no_runner_backend; }
