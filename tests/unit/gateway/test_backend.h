/*
 * test_backend.h — a deterministic backend for the gateway tests (never part of the product).
 * Each submit starts a thread that emits the scripted tokens in order and then either finishes
 * with the scripted reason and usage, or (hang mode) waits until the gateway cancels and
 * answers with REALM_E_CANCELLED, so tests can observe cancellation on client disconnect.
 */
#ifndef GW_TEST_BACKEND_H
#define GW_TEST_BACKEND_H

#include <pthread.h>
#include <stdbool.h>

#include "backend.h"

#define TB_MAX_TOKENS 8
#define TB_MAX_CALLS 256

struct tb_script {
  const char *tokens[TB_MAX_TOKENS];
  size_t n_tokens;
  const char *finish_reason;
  struct gw_usage usage;
  bool hang;          /* after the tokens, wait for cancel */
  int submit_error;   /* < 0: submit fails synchronously with this code */
  int async_error;    /* < 0: after the tokens, deliver this error */
  /* Details of either failure (backend.h struct gw_error_info): param (NULL = none) and a
   * retry hint in seconds (0 = none). */
  const char *error_param;
  uint32_t error_retry_after_s;
};

struct tb_call {
  struct gw_sink *sink;
  pthread_t thread;
  bool cancelled, done;
  struct test_backend *tb;
  struct tb_script script;
};

struct test_backend {
  struct gw_backend base;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool ready;
  struct tb_script script; /* used by the next submits */
  int n_submits, n_cancels;
  /* copy of the last request's interesting fields */
  char last_model[64];
  char last_tenant[64];
  uint32_t last_max_tokens;
  bool last_stream;
  struct tb_call calls[TB_MAX_CALLS];
  int n_calls;
};

void tb_init(struct test_backend *tb);
void tb_set_script(struct test_backend *tb, const struct tb_script *s);
void tb_set_ready(struct test_backend *tb, bool ready);
/* Waits (bounded) until at least n cancels were seen; returns true if so. */
bool tb_wait_cancels(struct test_backend *tb, int n, int timeout_ms);
int tb_cancels(struct test_backend *tb);
/* Joins every call thread (each must finish: hang calls need a cancel or tb_release_all). */
void tb_destroy(struct test_backend *tb);

#endif
