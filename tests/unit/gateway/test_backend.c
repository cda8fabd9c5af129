/*
 * test_backend.c — the scripted backend of test_backend.h. Threads stand in for the runner
 * so that events arrive from a foreign thread, as they will from the ZeroMQ client.
 */
#include "test_backend.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "realm/error.h"

/* The scripted failure details as backend.h carries them. */
static struct gw_error_info script_info(const struct tb_script *s) {
  struct gw_error_info info = {.param = "", .retry_after_s = s->error_retry_after_s};
  if (s->error_param) snprintf(info.param, sizeof info.param, "%s", s->error_param);
  return info;
}

static void *call_main(void *arg) {
  struct tb_call *c = arg;
  struct test_backend *tb = c->tb;
  for (size_t i = 0; i < c->script.n_tokens; i++)
    gw_sink_token(c->sink, c->script.tokens[i], strlen(c->script.tokens[i]), NULL);
  pthread_mutex_lock(&tb->mu);
  if (c->script.hang) {
    /* Bounded: a test that forgets to cancel still ends. */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    while (!c->cancelled && pthread_cond_timedwait(&tb->cv, &tb->mu, &dl) != ETIMEDOUT) {
    }
  }
  c->done = true; /* from here on a cancel is a no-op (contract 3) */
  bool cancelled = c->cancelled;
  pthread_mutex_unlock(&tb->mu);
  struct gw_error_info info = script_info(&c->script);
  if (cancelled || c->script.hang) gw_sink_error(c->sink, REALM_E_CANCELLED, "cancelled by client");
  else if (c->script.async_error < 0)
    gw_sink_error_info(c->sink, c->script.async_error, "scripted failure", &info);
  else gw_sink_finish(c->sink, c->script.finish_reason, &c->script.usage);
  return NULL;
}

static int tb_submit(void *self, const struct gw_gen_request *req, struct gw_sink *sink, char *err,
                     size_t errlen, struct gw_error_info *info) {
  struct test_backend *tb = self;
  pthread_mutex_lock(&tb->mu);
  tb->n_submits++;
  snprintf(tb->last_model, sizeof tb->last_model, "%s", req->model);
  snprintf(tb->last_tenant, sizeof tb->last_tenant, "%s", req->tenant_id);
  tb->last_max_tokens = req->max_tokens;
  tb->last_stream = req->stream;
  if (tb->script.submit_error < 0 || tb->n_calls >= TB_MAX_CALLS) {
    int code = tb->script.submit_error < 0 ? tb->script.submit_error : REALM_E_UNAVAILABLE;
    if (tb->script.submit_error < 0) *info = script_info(&tb->script);
    pthread_mutex_unlock(&tb->mu);
    snprintf(err, errlen, "scripted submit failure for tenant %s", req->tenant_id);
    return code;
  }
  struct tb_call *c = &tb->calls[tb->n_calls++];
  c->sink = sink;
  c->tb = tb;
  c->script = tb->script;
  pthread_create(&c->thread, NULL, call_main, c);
  pthread_mutex_unlock(&tb->mu);
  return 0;
}

static void tb_cancel(void *self, struct gw_sink *sink) {
  struct test_backend *tb = self;
  pthread_mutex_lock(&tb->mu);
  for (int i = 0; i < tb->n_calls; i++)
    if (tb->calls[i].sink == sink && !tb->calls[i].done && !tb->calls[i].cancelled) {
      tb->calls[i].cancelled = true;
      tb->n_cancels++;
    }
  pthread_cond_broadcast(&tb->cv);
  pthread_mutex_unlock(&tb->mu);
}

static bool tb_ready(void *self, char *why, size_t whylen) {
  struct test_backend *tb = self;
  pthread_mutex_lock(&tb->mu);
  bool r = tb->ready;
  pthread_mutex_unlock(&tb->mu);
  if (!r) snprintf(why, whylen, "test backend not ready");
  return r;
}

static const struct gw_backend_ops tb_ops = {.submit = tb_submit, .cancel = tb_cancel, .ready = tb_ready};

void tb_init(struct test_backend *tb) {
  memset(tb, 0, sizeof *tb);
  pthread_mutex_init(&tb->mu, NULL);
  pthread_cond_init(&tb->cv, NULL);
  tb->base.ops = &tb_ops;
  tb->base.self = tb;
}

void tb_set_script(struct test_backend *tb, const struct tb_script *s) {
  pthread_mutex_lock(&tb->mu);
  tb->script = *s;
  pthread_mutex_unlock(&tb->mu);
}

void tb_set_ready(struct test_backend *tb, bool ready) {
  pthread_mutex_lock(&tb->mu);
  tb->ready = ready;
  pthread_mutex_unlock(&tb->mu);
}

int tb_cancels(struct test_backend *tb) {
  pthread_mutex_lock(&tb->mu);
  int n = tb->n_cancels;
  pthread_mutex_unlock(&tb->mu);
  return n;
}

bool tb_wait_cancels(struct test_backend *tb, int n, int timeout_ms) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += timeout_ms / 1000;
  dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&tb->mu);
  while (tb->n_cancels < n)
    if (pthread_cond_timedwait(&tb->cv, &tb->mu, &dl) == ETIMEDOUT) break;
  bool ok = tb->n_cancels >= n;
  pthread_mutex_unlock(&tb->mu);
  return ok;
}

void tb_destroy(struct test_backend *tb) {
  pthread_mutex_lock(&tb->mu);
  for (int i = 0; i < tb->n_calls; i++) tb->calls[i].cancelled = true;
  pthread_cond_broadcast(&tb->cv);
  int n = tb->n_calls;
  pthread_mutex_unlock(&tb->mu);
  for (int i = 0; i < n; i++) pthread_join(tb->calls[i].thread, NULL);
}
