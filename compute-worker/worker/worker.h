/*
 * worker.h — the realm-worker core as a library: everything the daemon does except main().
 *
 * The daemon (main.c), the tests and the benchmark all drive the same core:
 *
 *   struct worker_config cfg;  worker_config_defaults(&cfg);  cfg.model_path = ...;
 *   struct worker *w;
 *   worker_create(&cfg, &w, err, sizeof err);   // loads the model, binds the sockets
 *   worker_run(w);                              // event loop; returns after worker_stop()
 *   worker_destroy(w);
 *
 * worker_stop() is async-signal-safe and thread-safe (it counts the call and writes one byte
 * to a pipe the loop polls), so main.c calls it from its SIGTERM handler and tests from their
 * own thread: the first call starts the drain, a second one cuts it short. The
 * option table (worker_options_parse) maps --flags and REALM_WORKER_* variables onto a
 * worker_config with realm/config.h. The wire protocol is docs/protocol.md; the scheduling
 * policy is in the comment block atop sched.c; docs/worker.md is the operator's page.
 */
#ifndef REALM_WORKER_H
#define REALM_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct worker;

struct worker_config {
  const char *model_path;      /* GGUF file (required) */
  const char *listen;          /* comma-separated ZeroMQ endpoints (ipc:// and/or tcp://) */
  const char *shm_socket;      /* SOCK_SEQPACKET path for the memfd handshake; "" = derived
                                  from the first ipc:// endpoint ("<path>.shm"); "none" = off */
  int threads;                 /* engine threads; <= 0 = online CPUs */
  const char *isa;             /* NULL/"auto", "scalar", "avx2", "avx512" */
  const char *huge_pages;      /* weights' pages: NULL/"auto", "huge", "small" (gguf.h) */
  const char *backend;         /* "cpu", "cuda" or "auto" (CUDA when a device is present) */
  int cuda_device;             /* CUDA device ordinal for "cuda"/"auto" */
  uint32_t kv_blocks;          /* KV pool blocks; 0 = 8 full contexts */
  uint32_t kv_block_tokens;    /* positions per KV block (advertised as kv_page_tokens) */
  int64_t batch_window_us;     /* how long a step waits for others to join its forward pass */
  bool batch_eager;            /* run at once when every connection with sessions has a step */
  int64_t pool_spin_us;        /* CPU engine threads' wait for the next parallel loop before
                                  they sleep (50 µs spin, then yielding; threadpool.c) */
  int64_t spin_us;             /* after a pass, how long the loop spins for the next Step
                                  (step lanes and the ROUTER) before it sleeps; 0 = never */
  bool step_lane;              /* grant step lanes to runners that ask (docs/protocol.md §6.2) */
  uint32_t batch_tokens;       /* tokens in one forward pass (the engine's step budget) */
  uint32_t max_step_tokens;    /* tokens in one Step message, summed (HelloReply) */
  uint32_t max_batch_seqs;     /* entries in one Step and sequences in one forward pass */
  uint32_t prefill_chunk;      /* most tokens of one entry in one forward pass */
  uint32_t max_sessions;       /* open sessions per connection */
  uint32_t max_weight;         /* cap on a runner's requested weight */
  uint32_t default_weight;     /* weight of a runner that asks 0 */
  const char *tenant_weights;  /* "tenantA=4,tenantB=1": operator overrides (still capped) */
  uint64_t max_kv_quota_tokens; /* cap on a tenant's KV quota; 0 = the whole pool */
  uint64_t max_shm_bytes;      /* cap on a connection's region */
  uint64_t default_shm_bytes;  /* region of a runner that asks 0 */
  uint32_t max_pending_steps;  /* Steps queued per connection before "unavailable" */
  int64_t open_queue_timeout_ms; /* how long a SessionOpen waits for KV pages before
                                  "unavailable" "KV cache full" (admit.c) */
  uint32_t max_open_queue;     /* SessionOpens waiting at once, all tenants; past it an open
                                  the pool cannot cover is refused at once (0: never wait) */
  int64_t stats_interval_ms;   /* debug stats line period; 0 = never */
  int64_t drain_timeout_ms;    /* on the first stop: how long open sessions may keep being
                                  served (new SessionOpens refused) before the cut-off;
                                  0 = cut off at once (docs/worker.md "Stop and drain") */
  int64_t drain_ms;            /* at the cut-off: how long to keep answering "shutting_down"
                                  so the last replies reach the runners (the linger) */
  const char *allow_weight_access; /* "tenantA,tenantB" (or "*"): tenants whose guests may
                                  Matmul and GetRows; everyone else gets permission_denied */
  int64_t idle_timeout_ms;     /* drop a connection without sessions silent this long; 0 never */
  int64_t idle_session_timeout_ms; /* same for a connection with sessions (frees them) */
  bool no_jail;                /* main.c: skip the seccomp jail (debugging only) */
  bool print_policy;           /* main.c: print the jail's filter and exit */
};

/* Exit status of realm-worker when the compute backend failed for good (a CUDA error): the
 * supervisor restarts the process. 0 = clean stop, 1 = start-up or loop failure, 2 = bad
 * command line. */
#define WORKER_EXIT_BACKEND_FAILED 69

/* Fills the defaults documented in docs/worker.md (model_path stays NULL). */
void worker_config_defaults(struct worker_config *cfg);

/*
 * Parses argv and REALM_WORKER_* variables (realm/config.h precedence) into *cfg (defaults
 * first). Returns 0, 1 when --help was printed to stdout, or REALM_E_INVALID_ARGUMENT with a
 * message naming the option and value in err.
 */
int worker_options_parse(int argc, char *const *argv, struct worker_config *cfg, char *err,
                         size_t errlen);

/*
 * Loads the model, builds the engine and binds every socket. Errors (err names the path,
 * endpoint or field): REALM_E_INVALID_ARGUMENT (bad configuration), REALM_E_IO /
 * REALM_E_NOT_FOUND (model missing or unreadable), REALM_E_BAD_MODEL / REALM_E_UNSUPPORTED
 * (the loader's message), REALM_E_UNAVAILABLE (a socket path is in use by a live process),
 * REALM_E_SYSTEM, REALM_E_NOMEM.
 */
int worker_create(const struct worker_config *cfg, struct worker **ret_worker, char *err,
                  size_t errlen);

/* Runs the event loop until worker_stop() and the drain that follows: new SessionOpens and
 * Hellos are refused with shutting_down while the open sessions keep being served, until none
 * is open, drain_timeout_ms passed, or worker_stop() is called again; then what is still
 * queued is answered shutting_down, every connection is told, and the loop lingers drain_ms.
 * Returns 0 after a clean drain, or a negative error
 * when the loop hit something it cannot recover from (logged before returning):
 * REALM_E_UNAVAILABLE means the compute backend failed (every in-flight request was answered
 * "unavailable" naming the cause); main.c exits WORKER_EXIT_BACKEND_FAILED. */
int worker_run(struct worker *w);

/* Asks the loop to drain and return (first call), or to end the drain now (second call).
 * Async-signal-safe; callable from any thread. */
void worker_stop(struct worker *w);

/* Closes sockets, sessions, the engine and the model. Accepts NULL. */
void worker_destroy(struct worker *w);

/* The shm side-socket path in use ("" when shared memory is off); for tests. */
const char *worker_shm_socket_path(const struct worker *w);

/* The engine's backend, e.g. "cpu/avx512" or "cuda/NVIDIA H200". */
const char *worker_backend_name(const struct worker *w);
/* True when the backend is a device (CUDA): the jail is not installed for it. */
bool worker_backend_is_device(const struct worker *w);

/*
 * The worker role's jail (policy-worker.c): no core dumps, not dumpable, TZ fixed, then the
 * seccomp allowlist on every thread (TSYNC). Call after worker_create() and before
 * worker_run(); irreversible. After it the process can still accept runner connections and
 * hand out memfd regions, but opens no file, creates no socket and runs no program. Errors:
 * REALM_E_UNSUPPORTED for a device backend (its driver needs open/ioctl), REALM_E_SYSTEM.
 */
int worker_jail(struct worker *w, char *err, size_t errlen);
/* Writes the jail's filter as libseccomp pseudo code to fd (--print-policy). */
int worker_policy_export(int fd, char *err, size_t errlen);

/* Fault injection for tests: the next forward pass fails as a dead device would
 * (REALM_E_UNAVAILABLE). Thread-safe. */
void worker_inject_backend_failure(struct worker *w);

#endif /* REALM_WORKER_H */
