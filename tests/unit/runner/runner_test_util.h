/*
 * runner_test_util.h — test doubles and helpers for driving realm-runner as a subprocess:
 * a fake realm-worker (in a thread of the test), a gateway-side client, and process spawning.
 *
 * The fake worker speaks the real protocol (Hello, the memfd handshake on a seqpacket socket,
 * sessions, Step with offsets into the region) and computes "logits" by a fixed rule, so a
 * test knows exactly which tokens a greedy guest must produce: after token t the argmax is
 * fake_worker_next(t). It records what it saw (steps, the largest batch) for assertions.
 * Used by tests/unit/runner and tests/security.
 */
#ifndef REALM_RUNNER_TEST_UTIL_H
#define REALM_RUNNER_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "realm/proto.h"

/* ---- fake worker ---- */

#define FAKE_VOCAB 512
#define FAKE_EOS 2

struct fake_worker_stats {
  uint64_t hellos, steps, entries, max_entries, sessions_opened, sessions_closed;
};

struct fake_worker;

/* The argmax the fake worker puts in the logits row after token t (never EOS). */
int32_t fake_worker_next(int32_t t);

/* Starts a fake worker binding ipc://<dir>/worker.sock and <dir>/worker-shm.sock. */
int fake_worker_start(const char *dir, struct fake_worker **ret);
/* Stops it: its sockets close, as when the worker process dies. */
void fake_worker_stop(struct fake_worker *w);
void fake_worker_get_stats(struct fake_worker *w, struct fake_worker_stats *ret);
const char *fake_worker_endpoint(const struct fake_worker *w);
/* Waits until at least n sessions were closed; 0, or -1 after timeout_ms. */
int fake_worker_wait_closed(struct fake_worker *w, uint64_t n, int timeout_ms);
/* hold true: Step requests from now on are kept unanswered (other requests are served), so a
 * test keeps a runner's request in flight for as long as it needs without relying on timing;
 * hold false answers the kept Steps in arrival order and serves the next ones at once. */
void fake_worker_hold_steps(struct fake_worker *w, bool hold);
/* Waits until at least n Steps are being kept unanswered; 0, or -1 after timeout_ms. */
int fake_worker_wait_held(struct fake_worker *w, uint32_t n, int timeout_ms);

/* ---- paths ---- */

/* Makes a fresh private directory under /tmp for one test's sockets; returns its path (static
 * storage per call index, up to 16 calls). */
const char *test_tmpdir(void);
/* "$REALM_BUILD_ROOT/<rel>" into a static buffer (one of 8 rotating). */
const char *build_path(const char *rel);

/* ---- realm-runner subprocess ---- */

struct runner_proc {
  pid_t pid;
  char listen[256];   /* ipc:// endpoint the runner binds */
};

/* Spawns `exe` with the standard arguments for tenant "t1" (worker, listen in dir, module,
 * a shared module cache, the stories260K vocabulary) plus extra (NULL-terminated). */
int runner_spawn(const char *exe, const char *dir, const char *worker_ep, const char *module,
                 const char *const *extra, struct runner_proc *ret);
/* The same, with prefix (NULL-terminated) in front: e.g. a supervisor command line. */
int runner_spawn_prefixed(const char *const *prefix, const char *exe, const char *dir,
                          const char *worker_ep, const char *module, const char *const *extra,
                          struct runner_proc *ret);
/* Waits up to timeout_ms for the child; returns its wait status, or -1 on timeout. */
int runner_wait(pid_t pid, int timeout_ms);
/* SIGTERM, then waits (SIGKILL after 5 s). */
void runner_stop(struct runner_proc *p);

/* ---- gateway side ---- */

struct gw_client {
  void *ctx, *sock;
  uint32_t stray_events; /* events a gw_ping/gw_ping_ex read past that were not its pong */
};

struct gw_result {
  bool done;                 /* a terminal event arrived */
  bool error;                /* terminal was GenerateEvent.error */
  char error_code[64];
  char error_msg[512];
  char error_param[64];
  int finish_reason;         /* Realm__V1__FinishReason when !error */
  uint32_t prompt_tokens, completion_tokens;
  int32_t tokens[256];       /* token ids of token events with id >= 0 */
  uint32_t n_tokens;
  /* Per token event with id >= 0 (index as in tokens[]): its TokenLogprob, when present. */
  bool has_logprob[256];
  float logprob[256];
  char lp_text[256][32];     /* TokenLogprob.text (the token's own bytes), cut to 31 */
  uint32_t n_top[256];       /* alternatives carried */
  int32_t top_id[256][4];    /* the first 4 alternatives' ids */
  float top_logprob[256][4];
  char top_text[256][32];    /* the best alternative's text, cut to 31 */
  char text[4096];           /* concatenated token texts */
  size_t text_len;
  uint32_t n_events;
  /* Order of this request's terminal event among all terminal events of the gw_collect call
   * (1 = first; requests done before the call count first): a test compares two requests'
   * values to prove one was still in flight when the other ended. */
  uint32_t done_seq;
};

int gw_connect(struct gw_client *c, const char *endpoint);
void gw_close(struct gw_client *c);
/* Sends a GenerateRequest with a text prompt (NULL = none) for tenant t1 (or `tenant`). */
int gw_generate(struct gw_client *c, const char *id, const char *tenant, const char *prompt,
                uint32_t max_tokens);
/* Sends any prepared GenerateRequest. */
int gw_send_generate(struct gw_client *c, Realm__V1__GenerateRequest *g);
int gw_cancel(struct gw_client *c, const char *id);
/* Receives events until every request in ids[0..n) is done or timeout_ms passes; results in
 * res[i] for ids[i]. Returns the number done. on_token (optional) is called per token event. */
int gw_collect(struct gw_client *c, const char *const *ids, struct gw_result *res, int n,
               int timeout_ms, void (*on_token)(void *user, int idx, uint32_t n_tokens),
               void *user);

/* What a HealthPong said. */
struct gw_pong {
  uint64_t nonce;
  bool ready, worker_connected;
  uint32_t in_flight, max_in_flight;
  uint64_t requests_total;
};
enum gw_got { GW_GOT_NOTHING = 0, GW_GOT_EVENT, GW_GOT_PONG };
/* Receives at most one message within timeout_ms: a GenerateEvent is applied to res as in
 * gw_collect (GW_GOT_EVENT; also for an id not in ids), a pong fills *ret_pong (GW_GOT_PONG).
 * For tests that act between events (signals, pings) without losing any. */
enum gw_got gw_collect_one(struct gw_client *c, const char *const *ids, struct gw_result *res,
                           int n, int timeout_ms, struct gw_pong *ret_pong);
/* Sends a HealthPing without waiting for the pong (read it with gw_collect_one). */
int gw_send_ping(struct gw_client *c, uint64_t nonce);
/* Ping -> pong; returns 0 and fills worker_connected, or -1 on timeout. */
int gw_ping(struct gw_client *c, uint64_t nonce, bool *ret_worker_connected, int timeout_ms);
/* The same, also returning the runner's requests_total (0 for a freshly started runner). */
int gw_ping_ex(struct gw_client *c, uint64_t nonce, bool *ret_worker_connected,
               uint64_t *ret_requests_total, int timeout_ms);

/* ---- one jailed runner against the fake worker ---- */

struct runner_fixture {
  const char *dir;         /* private socket directory (test_tmpdir) */
  struct fake_worker *w;   /* NULL once a test stopped it */
  struct runner_proc p;
  struct gw_client gw;
};

/* Path of a runner test guest: "echo_greedy" from $REALM_TEST_EXAMPLE_GUESTS_DIR, any other
 * name as $REALM_TEST_RUNNER_GUESTS/<name>.wasm (static storage, 4 rotating). */
const char *runner_test_guest(const char *name);
/* Starts the fake worker and a jailed $REALM_RUNNER_BIN serving `module` with extra options
 * (NULL-terminated, may be NULL), connects a gateway client and waits until the runner answers
 * a ping (set-up, module compile and jail done). 0, or -1 (call runner_fixture_down anyway). */
int runner_fixture_up(struct runner_fixture *f, const char *module, const char *const *extra);
/* Closes the client, stops the runner and the fake worker, removes the directory. */
void runner_fixture_down(struct runner_fixture *f);

#endif /* REALM_RUNNER_TEST_UTIL_H */
