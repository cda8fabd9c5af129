/*
 * runner.h — realm-runner's core: one tenant replica's event loop (runner_core library).
 *
 * A runner holds the tenant's guest module, a ROUTER the gateway connects to, and one DEALER
 * to the worker with a shared-memory region. runner_new() does every piece of set-up that
 * needs the file system or new sockets (module load and compile, vocabulary, bind, connect,
 * Hello and the memfd handshake, a warm-up guest instance); after it the process can be
 * jailed (runner_jail(), policy-runner.c) and then runner_run() serves until told to stop.
 * main.c is a thin wrapper around these; the tests drive the same binary as a subprocess.
 *
 * Threading: everything here runs on the thread that called runner_new (the sandbox's trap
 * state is process-global, so all guest code runs on one thread).
 */
#ifndef REALM_RUNNER_H
#define REALM_RUNNER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Every setting of a runner; main.c fills it from realm/config.h options. */
struct runner_config {
  const char *tenant_id;       /* the only tenant this replica serves */
  const char *replica_id;      /* for logs, HealthPong and the worker's stats */
  const char *worker_endpoint; /* ZeroMQ endpoint of the worker's ROUTER */
  const char *worker_shm;      /* seqpacket socket for the memfd; "" = the path HelloReply names */
  const char *listen_endpoint; /* ZeroMQ endpoint the gateway connects to (we bind a ROUTER) */
  const char *module_path;     /* the tenant's guest .wasm */
  const char *module_cache;    /* directory for compiled guests (sandbox cache) */
  const char *vocab_path;      /* GGUF holding tokenizer.ggml.* ("" = guests get no pieces) */
  int64_t max_inflight;        /* requests served at once; more get "unavailable" */
  int64_t max_prompt_tokens;   /* tokens a guest may feed before the first logits */
  int64_t max_tokens;          /* completion tokens per request (cap and default) */
  uint64_t guest_memory;       /* linear-memory cap per guest instance */
  int64_t guest_call_ms;       /* wall-clock deadline of one guest call */
  uint64_t guest_output;       /* text one request may emit */
  int64_t weight;              /* fair-share weight asked of the worker */
  uint64_t kv_quota;           /* KV tokens asked of the worker */
  uint64_t shm_bytes;          /* shared region asked of the worker (0 = inline tensors) */
  int64_t connect_timeout_ms;  /* how long set-up waits for the worker's HelloReply */
  int64_t worker_timeout_ms;   /* a Step unanswered this long means the worker is gone */
  int64_t prefill_chunk;       /* prompt tokens of one request per Step */
  int64_t drain_timeout_ms;    /* on stop, how long requests in flight may take to finish
                                  (0 = end them at once); see runner_run */
  /* The tenant's chat template, sent to the guest as REALM_REQ_CHAT_TEMPLATE with every
   * request: a family name ("chatml", "llama3", ...) or Jinja text; "@PATH" reads the text
   * from a file at set-up (before the jail). "" = none (the guest uses the model's). */
  const char *chat_template;
};

/* Exit status of realm-runner when the worker connection was lost while jailed: a jailed
 * process cannot open the new sockets a reconnect needs, so it fails its requests and asks
 * its supervisor for a fresh start (EX_TEMPFAIL). */
#define RUNNER_EXIT_WORKER_LOST 75

/* Default --drain-timeout: as long as realm-gateway's drain (25 s), so a stream the gateway
 * would wait for is not cut by the runner under it, and 5 s below the runner pods' 30 s
 * terminationGracePeriodSeconds (deploy/k8s) for the cut-off's error events and the exit. A
 * stopper whose grace is shorter (compose's default 10 s, realmctl up's stop_grace_ms) must
 * pass a smaller value or raise its grace (docs/runner.md "Stop and drain"). */
#define RUNNER_DEFAULT_DRAIN_TIMEOUT_MS 25000

struct runner;

/* Fills cfg with the defaults (the same as main.c's option table). */
void runner_config_defaults(struct runner_config *cfg);

/*
 * Builds a runner: loads the guest module (and compiles it into module_cache), loads the
 * vocabulary, binds the gateway ROUTER, connects to the worker, says Hello, fetches the shared
 * region and instantiates the guest once (so the sandbox's per-thread timer and signal stack
 * exist before any jail). Blocks at most connect_timeout_ms for the worker. Errors name what
 * failed: INVALID_ARGUMENT (config), UNAVAILABLE/TIMEOUT (worker), the sandbox's module
 * errors, BAD_MODEL (vocabulary), SYSTEM.
 */
int runner_new(const struct runner_config *cfg, struct runner **ret_runner, char *err,
               size_t errlen);

/*
 * Serves until *stop becomes non-zero (checked at least every 100 ms) or the worker is lost
 * while jailed, then drains: *stop counts the stop signals received. At 1 the runner takes no
 * new work (HealthPong.ready false, new GenerateRequests refused with shutting_down) while the
 * requests in flight go on generating; the drain ends when none is left, when the worker goes
 * away, after cfg.drain_timeout_ms, or as soon as *stop reaches 2 (a second signal). What is
 * still in flight then is ended with shutting_down, the runner answers the gateway for 250 ms
 * more so those events leave, and logs "drain finished" with its counts.
 * Returns 0 on a requested stop (after the drain, whatever ended it), RUNNER_EXIT_WORKER_LOST
 * (positive) when the worker was lost while jailed and serving (restart me), or a negative
 * error.
 */
int runner_run(struct runner *r, volatile sig_atomic_t *stop);
/* runner_run that also returns 0 once runner_requests_done() reaches done_target (before any
 * stop: no drain then). */
int runner_run_until(struct runner *r, volatile sig_atomic_t *stop, uint64_t done_target);

/* Keeps answering the gateway for ms (no new Steps are sent), so events queued in libzmq's
 * I/O thread reach the gateway before a deliberate exit. */
void runner_linger(struct runner *r, int64_t ms);

/* Marks the runner as jailed: from now on it must not create sockets (worker loss then means
 * exit instead of reconnect). Called by runner_jail. */
void runner_set_jailed(struct runner *r);

/* Requests completed (finished or failed) since start. */
uint64_t runner_requests_done(const struct runner *r);

/* Closes sockets, frees guests, unmaps the region. Accepts NULL. */
void runner_free(struct runner *r);

/* ---- policy-runner.c ---- */

struct runner_jail_options {
  bool drop_privileges; /* when root: setgroups/setgid/setuid to uid/gid below */
  uint32_t uid, gid;    /* target ids when root (default 65534, nobody) */
  uint32_t fd_margin;   /* RLIMIT_NOFILE = open fds now + this (gateway reconnects) */
};

/*
 * Jails the calling process for the runner role: drops privileges when root, sets rlimits
 * (NOFILE to the open count plus a margin, NPROC 0, CORE 0, FSIZE 0 unless stdout/stderr is a
 * regular file), PR_SET_DUMPABLE 0, then installs the runner's seccomp allowlist on every
 * thread (TSYNC). Call after runner_new(). Irreversible.
 */
int runner_jail(struct runner *r, const struct runner_jail_options *opts, char *err,
                size_t errlen);

/* Writes the runner policy as libseccomp pseudo-code to fd (docs, debugging a SIGSYS). */
int runner_policy_export(int fd, char *err, size_t errlen);

#endif /* REALM_RUNNER_H */
