/*
 * wfixture.h — the worker core on a thread of the test process, listening on an ipc://
 * endpoint in a private temp dir, serving the real stories260K model: fx_config() fills a
 * worker_config the test may change, fx_start() creates and runs it, fx_stop() stops, joins
 * and cleans up. Shared by the worker suite's in-process tests.
 *
 * Header-only, static functions; include it in one .c per program, after realm_test.h.
 */
#ifndef REALM_TEST_WFIXTURE_H
#define REALM_TEST_WFIXTURE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "worker.h"

struct fx {
  char dir[64], endpoint[128], model[512];
  struct worker *w;
  pthread_t th;
  void *zctx;
  int run_rc;
  bool joined; /* fx_join() done: the loop has returned, the sockets are still open */
};

static inline void *run_thread(void *arg) {
  struct fx *f = arg;
  f->run_rc = worker_run(f->w);
  return NULL;
}

static inline void fx_config(struct fx *f, struct worker_config *cfg) {
  memset(f, 0, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/realm-wt-XXXXXX");
  if (!mkdtemp(f->dir)) f->dir[0] = 0;
  snprintf(f->endpoint, sizeof f->endpoint, "ipc://%s/w.sock", f->dir);
  snprintf(f->model, sizeof f->model, "%s/gguf/stories260K.gguf", realm_test_models_dir());
  worker_config_defaults(cfg);
  cfg->model_path = f->model;
  cfg->listen = f->endpoint;
  cfg->threads = 1;
  cfg->stats_interval_ms = 0;
  cfg->drain_ms = 0;
  cfg->drain_timeout_ms = 0; /* fx_stop() ends at once, open sessions or not */
}

static inline int fx_start(struct fx *f, const struct worker_config *cfg) {
  char err[512];
  int rc = worker_create(cfg, &f->w, err, sizeof err);
  if (rc < 0) {
    printf("# worker_create: %s\n", err);
    return rc;
  }
  f->zctx = zmq_ctx_new();
  return pthread_create(&f->th, NULL, run_thread, f) == 0 ? 0 : -1;
}

/* Stops the loop and waits for it to return (after its drain); the worker still exists, so
 * the replies of the drain are still being delivered. */
static inline void fx_join(struct fx *f) {
  if (!f->w || f->joined) return;
  worker_stop(f->w);
  pthread_join(f->th, NULL);
  f->joined = true;
}

static inline void fx_stop(struct fx *f) {
  if (!f->w) return;
  fx_join(f);
  worker_destroy(f->w);
  f->w = NULL;
  f->joined = false;
  if (f->zctx) zmq_ctx_term(f->zctx);
  char p[128];
  snprintf(p, sizeof p, "%s/w.sock.shm", f->dir);
  unlink(p);
  snprintf(p, sizeof p, "%s/w.sock", f->dir);
  unlink(p);
  rmdir(f->dir);
}

#endif /* REALM_TEST_WFIXTURE_H */
