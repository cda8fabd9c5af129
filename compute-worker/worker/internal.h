/*
 * internal.h — the realm-worker daemon's state, shared by its source files.
 *
 * One struct worker holds everything (STYLE.md: one commented state struct per daemon).
 * Ownership, top down: a worker owns tenants and connections; a connection owns its shm
 * region and its sessions; a session owns one KV sequence charged to its tenant's quota; the
 * scheduler owns queued Steps, each pointing at its connection and sessions; the admission
 * queue (admit.c) owns SessionOpens waiting for KV pages, each pointing at its connection.
 * Everything runs
 * on the one event-loop thread (worker_run); the only cross-thread entry is worker_stop(),
 * which writes to wake_pipe.
 */
#ifndef REALM_WORKER_INTERNAL_H
#define REALM_WORKER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "gguf.h"
#include "llama.h"
#include "model.h"
#include "realm/frame.h"
#include "realm/ipc.h"
#include "realm/lane.h"
#include "realm/proto.h"
#include "realm/shm.h"
#include "worker.h"

#define WORKER_MAX_CONNS 1024          /* runner connections at once */
#define WORKER_MAX_SIDE_CONNS 64       /* shm handshakes in progress at once */
#define WORKER_SHM_TOKEN_TTL_NS (10LL * 1000 * 1000 * 1000) /* a token is good this long */
#define WORKER_SIDE_CONN_TTL_NS (5LL * 1000 * 1000 * 1000)  /* a side socket may idle this long */
#define WORKER_MAX_ID_BYTES 64         /* tenant_id, replica_id */
#define WORKER_VT_SCALE (1ull << 20)   /* virtual-time units per token at weight 1 */
/* During a drain, how often a connection with sessions that sent nothing since the last round
 * is sent the drain notice: a runner that is gone (closed or killed without a word) fails the
 * send (ROUTER_MANDATORY), its connection is reaped and its sessions stop holding the drain. */
#define WORKER_DRAIN_PROBE_NS (1000LL * 1000 * 1000)

struct worker_conn;
struct sched_step;
struct admit_wait;

/* A tenant: shared by all connections (replicas) that said Hello with its id. */
struct worker_tenant {
  char id[WORKER_MAX_ID_BYTES + 1];
  uint32_t weight;          /* granted fair-share weight (>= 1) */
  uint64_t quota_tokens;    /* granted KV budget in tokens */
  uint32_t quota_blocks;    /* the same budget in blocks: caps reserved_blocks (admit.c) */
  struct kv_quota quota;    /* kv.c's view: used_blocks is what the tenant's sessions hold;
                               max_blocks is the whole pool, a backstop only — the budget is
                               enforced on reservations (admit.c invariant 3) */
  uint32_t reserved_blocks; /* KV blocks reserved by its open sessions (admit.c) */
  uint32_t waiting_opens;   /* its SessionOpens in the admission queue */
  uint32_t waiting_blocks;  /* blocks those waiting opens will reserve */
  uint64_t open_vtime;      /* admission's virtual counter: WORKER_VT_SCALE per reserved
                               token / weight (admit.c) */
  uint64_t vtime;           /* virtual token counter, WORKER_VT_SCALE per token / weight */
  uint32_t queued_entries;  /* unfinished step entries of this tenant */
  uint32_t sessions;        /* open sessions over all its connections */
  uint32_t n_conns;         /* connections bound to it; freed at 0 */
  uint64_t tokens_total;    /* tokens computed for it since start */
  bool weight_access;       /* operator allows Matmul/GetRows (--allow-weight-access) */
  /* scheduler scratch for one batch-building pass (sched.c) */
  struct sched_entry **cand;
  uint32_t n_cand, cap_cand, cursor;
};

/* One KV sequence, valid only on the connection that opened it. */
struct worker_session {
  uint64_t id;              /* (generation << 32) | (slot + 1): per connection, guessable only
                               about one's own sessions */
  struct worker_conn *conn;
  struct kv_seq *seq;
  uint32_t max_tokens;      /* granted length */
  uint32_t reserved_blocks; /* ceil(max_tokens / block_tokens): pool blocks set aside for it */
  uint32_t queued;          /* unfinished step entries naming it */
  uint64_t mark;            /* sched.c: batch-building pass that last saw it */
};

/* One runner connection, keyed by its ZeroMQ routing id; exists only after Hello. */
struct worker_conn {
  realm_ipc_peer peer;
  uint64_t id;
  struct worker_tenant *tenant;
  char replica[WORKER_MAX_ID_BYTES + 1];
  realm_shm *shm;                          /* NULL: inline mode */
  uint64_t shm_data_bytes;                 /* the part of shm messages may name: the step
                                              lane, when granted, follows it */
  realm_lane lane;                         /* step lane (steplane.c); base NULL: none */
  uint64_t lane_rid;                       /* request_id of the Step taken from the lane and
                                              not answered yet (lane.busy) */
  uint8_t shm_token[REALM_SHM_TOKEN_BYTES];
  int64_t shm_token_expiry_ns;             /* 0: no token outstanding (used or none) */
  struct worker_session **slots;           /* (n_slots = max_sessions) */
  uint32_t n_slots;
  uint32_t *slot_gen;                      /* (max_sessions) generation per slot */
  uint32_t n_sessions;
  uint32_t pending_steps;                  /* queued Steps not yet answered */
  uint32_t waiting_opens;                  /* its SessionOpens in the admission queue */
  bool has_pending_mark;                   /* sched.c scratch (eager batching check) */
  bool dead;                               /* replies undeliverable: reaped by the loop */
  int64_t last_seen_ns;                    /* last request from it (idle timeouts) */
};

/* A side connection on the shm handshake socket, waiting for its token. */
struct worker_side {
  int fd;
  int64_t deadline_ns;
};

/* One entry of a queued Step (sched.c). */
struct sched_entry {
  struct sched_step *step;
  struct worker_session *sess;  /* NULL when the entry failed at admission */
  uint64_t session_id;
  int32_t *tokens;              /* private copy (n_tokens) */
  uint32_t n_tokens, n_logits;
  float *logits;                /* destination (n_logits x n_vocab): shm or private buffer */
  bool logits_private;          /* logits is our buffer (inline mode) */
  uint32_t done;                /* tokens computed so far */
  uint32_t start_len;           /* session length before the entry's first chunk */
  bool started, finished;
  int error;                    /* 0 or a realm code: fails this entry only */
  char errmsg[160];
  uint32_t n_past;
  /* per-pass scratch */
  uint32_t chunk;               /* tokens in the current forward pass; 0 = not in it */
  uint32_t row0;                /* first logits row of this entry in the pass output */
};

/* One Step request, answered once every entry has finished. */
struct sched_step {
  struct sched_step *next, *prev;
  struct worker_conn *conn;
  uint64_t request_id;
  struct sched_entry *entries;
  uint32_t n_entries, n_open;   /* n_open: entries not finished */
  int64_t ready_ns;             /* when it may run (arrival, or end of its last pass) */
};

struct worker_sched {
  struct sched_step *head, *tail;   /* queued Steps in arrival order */
  uint32_t queued_entries;          /* unfinished entries, all tenants */
  uint64_t vclock;                  /* never-decreasing floor for a newly active tenant */
  uint64_t pass;                    /* batch-building pass counter (session marks) */
  /* pass buffers, sized at create */
  struct engine_seq_step *seqs;     /* (max_batch_seqs) */
  struct sched_entry **batch;       /* (max_batch_seqs) */
  float *logits;                    /* (batch_tokens x n_vocab), touched lazily */
};

/* A SessionOpen waiting for the pool to cover its reservation (admit.c). */
struct admit_wait {
  struct admit_wait *next, *prev; /* arrival order, all tenants */
  struct worker_conn *conn;
  uint64_t request_id;
  uint32_t max_tokens;            /* granted length once admitted */
  uint32_t blocks;                /* its reservation */
  int64_t enqueued_ns;
  int64_t deadline_ns;            /* answered "KV cache full" at this time */
};

/* Admission control of KV reservations (admit.c). */
struct worker_admit {
  struct admit_wait *head, *tail; /* waiting SessionOpens in arrival order */
  uint32_t n_waiting;
  uint64_t reserved_blocks;       /* Σ reserved_blocks over open sessions (<= pool blocks) */
  uint64_t vclock;                /* floor of a newly waiting tenant's open_vtime */
  uint64_t queued_total;          /* opens that had to wait, since start */
  uint64_t timed_out_total;       /* waits answered "KV cache full" at their deadline */
  uint64_t refused_total;         /* opens refused because the queue was full */
};

/* The drain between the first stop and the cut-off (worker.c, docs/worker.md "Stop and
 * drain"): SessionOpens and Hellos are refused, open sessions keep being served. */
struct worker_drain {
  bool active;
  int64_t started_ns;
  int64_t deadline_ns;          /* started_ns + drain_timeout_ms */
  int64_t next_probe_ns;        /* next round of liveness probes (WORKER_DRAIN_PROBE_NS) */
  int64_t last_probe_ns;        /* when the last round ran: connections silent since are probed */
  uint32_t sessions_at_start;
  uint64_t refused_opens;       /* SessionOpens answered shutting_down, queued ones included */
  uint64_t refused_hellos;
};

struct worker_stats {
  uint64_t lane_steps;        /* Steps that came through a step lane */
  uint64_t steps_total;       /* forward passes */
  uint64_t tokens_total;      /* tokens computed */
  uint64_t seqs_total;        /* sequences over all passes (mean batch size) */
  uint32_t last_batch_seqs, last_batch_tokens;
  int64_t rate_t0_ns;         /* start of the current rate window */
  uint64_t rate_tokens0;      /* tokens_total at rate_t0_ns */
  float tokens_per_second;    /* rate over the last completed window */
  int64_t next_log_ns;        /* next periodic debug line */
};

/* The daemon. */
struct worker {
  struct worker_config cfg;     /* copy; strings borrowed from the caller */
  struct gguf_file *gguf;       /* the model file in a sealed memfd */
  struct engine_model *model;   /* bound weights (point into gguf) */
  struct engine *engine;        /* batched forward pass + paged KV cache */
  const struct engine_backend *be; /* the engine's backend: Matmul/Attention run on it too */
  bool device;                  /* be keeps tensors in device memory (copies, sync) */
  struct { void *p; size_t cap; } ops_dev[8]; /* ops.c: device scratch, grown on demand */
  bool backend_failed;          /* the backend failed for good: the loop fails all, exits */
  char backend_error[256];      /* ... naming the failed call */
  volatile int inject_failure;  /* worker_inject_backend_failure() (tests) */
  uint32_t n_vocab;
  char model_name[128];
  void *zctx;                   /* ZeroMQ context */
  void *router;                 /* the ROUTER every runner connects to */
  char shm_path[108];           /* handshake socket path; "" = shared memory off */
  int shm_listen_fd;            /* -1 when off */
  struct worker_side sides[WORKER_MAX_SIDE_CONNS];
  uint32_t n_sides;
  int wake_pipe[2];             /* worker_stop() writes [1]; the loop polls [0] */
  int lane_epoll;               /* every step lane's to_worker doorbell (steplane.c) */
  int64_t spin_until_ns;        /* steplane.c: the loop spins for work until then (--spin-us) */
  int stop_calls;               /* worker_stop() calls (atomic): 1 = drain, 2 = cut it short */
  struct worker_drain drain;    /* the soft drain after the first stop (worker.c) */
  bool draining;                /* the cut-off: every request is answered shutting_down */
  struct worker_conn *conns[WORKER_MAX_CONNS];
  uint32_t n_conns;
  uint64_t next_conn_id;
  struct worker_tenant **tenants;
  uint32_t n_tenants, cap_tenants;
  struct worker_sched sched;
  struct worker_admit admit;
  struct worker_stats stats;
  /* tenant weight overrides parsed from cfg.tenant_weights */
  struct { char id[WORKER_MAX_ID_BYTES + 1]; uint32_t weight; } *overrides;
  uint32_t n_overrides;
  char err[512];                /* scratch message buffer for the loop */
};

/* ---- worker.c ---- */
int64_t worker_now_ns(void);
/* Sends reply to peer; on a gone or stuck peer drops the connection (when known). */
void worker_send_reply(struct worker *w, const realm_ipc_peer *to, Realm__V1__WorkerReply *reply);
/* The one error-reply path: WorkerReply{request_id, error{code, message, param}}. */
void worker_reply_error(struct worker *w, const realm_ipc_peer *to, uint64_t request_id, int code,
                        const char *message, const char *param);

/* Handles one decoded request of a connection (worker.c; also the step lanes'). */
void worker_dispatch(struct worker *w, const realm_ipc_peer *from, Realm__V1__WorkerRequest *req);

/* The backend failed for good (REALM_E_UNAVAILABLE from it): remember why; the loop fails
 * every in-flight request with "unavailable" and worker_run returns. */
void worker_backend_failed(struct worker *w, const char *why);

/* ---- conn.c ---- */
int conn_shm_listen(struct worker *w, char *err, size_t errlen);
struct worker_conn *conn_find(struct worker *w, const realm_ipc_peer *peer);
void conn_destroy(struct worker *w, struct worker_conn *c);
void conn_handle_hello(struct worker *w, const realm_ipc_peer *from, uint64_t request_id,
                       const Realm__V1__Hello *hello);
void conn_side_accept(struct worker *w);
void conn_side_readable(struct worker *w, uint32_t index);
void conn_side_expire(struct worker *w, int64_t now);
int conn_parse_overrides(struct worker *w, char *err, size_t errlen);
void conn_close_all(struct worker *w);
/* Destroys connections marked dead (called by the loop where no request is half handled). */
void conn_reap(struct worker *w);
/* Drops connections idle past the configured timeouts; returns the next deadline (ns) or
 * INT64_MAX. Connections with a Step queued are never idle. */
int64_t conn_idle_sweep(struct worker *w, int64_t now);

/* ---- steplane.c ---- */
/* Creates the epoll set of the lanes' doorbells (before the jail). */
int lane_init(struct worker *w, char *err, size_t errlen);
void lane_fini(struct worker *w);
/* Gives c a step lane at offset data_bytes of its region (conn.c, at Hello). */
int lane_open(struct worker *w, struct worker_conn *c, uint64_t data_bytes, char *err,
              size_t errlen);
void lane_close(struct worker *w, struct worker_conn *c);
/* Takes and dispatches the requests waiting in the lanes; returns how many. */
uint32_t lane_poll(struct worker *w);
/* Resets the doorbells that rang (the loop's poll said lane_epoll is readable). */
void lane_clear_doorbells(struct worker *w);
/* True when reply answers the Step c took from its lane: lane_reply must carry it. */
bool lane_owns_reply(const struct worker_conn *c, const Realm__V1__WorkerReply *reply);
/* Puts reply in c's lane; false when it did not fit (send it on the ROUTER instead). */
bool lane_reply(struct worker_conn *c, Realm__V1__WorkerReply *reply);
/* After a pass: spins until `until` (ns) for a lane request or a ROUTER message, so the next
 * Step of a decoding runner costs no wake-up (--spin-us). True when something arrived. */
bool lane_spin(struct worker *w, void *router, int64_t until);

/* ---- session.c ---- */
struct worker_session *session_find(struct worker_conn *c, uint64_t id);
void session_handle_open(struct worker *w, struct worker_conn *c, uint64_t request_id,
                         const Realm__V1__SessionOpen *m);
void session_handle_close(struct worker *w, struct worker_conn *c, uint64_t request_id,
                          const Realm__V1__SessionClose *m);
void session_destroy(struct worker *w, struct worker_session *s);
/* Creates a session of max_tokens reserving `blocks` (the caller checked the pool and the
 * quota: admit.c) on c and answers request_id with SessionOpened; on failure answers the
 * error. Returns 0 or the error code. */
int session_open_now(struct worker *w, struct worker_conn *c, uint64_t request_id,
                     uint32_t max_tokens, uint32_t blocks);

/* ---- admit.c ---- */
/* Blocks a session of max_tokens reserves. */
uint32_t admit_blocks_for(const struct worker *w, uint32_t max_tokens);
/* Admits (session_open_now), queues or refuses a validated SessionOpen of c. */
void admit_open(struct worker *w, struct worker_conn *c, uint64_t request_id,
                uint32_t max_tokens);
/* Gives the reservation of s back (session_destroy). Waiting opens are admitted by the
 * next admit_pump, from the loop, never from inside a teardown. */
void admit_release(struct worker *w, struct worker_session *s);
/* Answers waits whose deadline passed, then admits what the pool now covers, fairly.
 * Returns the next deadline (ns) or INT64_MAX. */
int64_t admit_pump(struct worker *w, int64_t now);
/* Forgets c's waiting opens without replying (connection gone or starting over). */
void admit_drop_conn(struct worker *w, struct worker_conn *c);
/* Answers every waiting open with code (drain, backend failure). */
void admit_fail_all(struct worker *w, int code, const char *message);
/* Blocks of the pool not reserved by any open session. */
uint64_t admit_unreserved_blocks(const struct worker *w);

/* ---- sched.c ---- */
int sched_init(struct worker *w, char *err, size_t errlen);
void sched_fini(struct worker *w);
void sched_handle_step(struct worker *w, struct worker_conn *c, uint64_t request_id,
                       const Realm__V1__Step *m);
/* ns until the next pass may run (0 = now), or -1 when nothing is queued. */
int64_t sched_wait_ns(struct worker *w, int64_t now);
/* Runs one forward pass over the queue and answers the Steps it completes. */
void sched_run_pass(struct worker *w);
/* Fails every queued Step of c without replying (connection gone), or of everyone with code
 * (c NULL, replying). A session's entries are cancelled by session_cancel. */
void sched_drop_conn(struct worker *w, struct worker_conn *c);
void sched_fail_all(struct worker *w, int code, const char *message);
void sched_cancel_session(struct worker *w, struct worker_session *s);
uint32_t sched_queued_for_tenant(const struct worker *w, const struct worker_tenant *t);

/* ---- ops.c ---- */
int ops_init(struct worker *w, char *err, size_t errlen);
void ops_fini(struct worker *w);
void ops_handle_matmul(struct worker *w, struct worker_conn *c, uint64_t request_id,
                       const Realm__V1__Matmul *m);
void ops_handle_attention(struct worker *w, struct worker_conn *c, uint64_t request_id,
                          const Realm__V1__Attention *m);
void ops_handle_get_rows(struct worker *w, struct worker_conn *c, uint64_t request_id,
                         const Realm__V1__GetRows *m);
/* Shared by sched.c and ops.c: checks [off, off+len) lies in c's region and is aligned;
 * returns 0 and the pointer, or a realm code with a message naming field, offset and size. */
int ops_shm_range(struct worker_conn *c, const char *field, uint64_t off, uint64_t len,
                  void **ret_ptr, char *msg, size_t msglen);
bool ops_ranges_overlap(uint64_t a_off, uint64_t a_len, uint64_t b_off, uint64_t b_len);

/* ---- stats.c ---- */
void stats_record_pass(struct worker *w, uint32_t seqs, uint32_t tokens);
void stats_handle_request(struct worker *w, struct worker_conn *c, uint64_t request_id);
void stats_tick(struct worker *w, int64_t now);
uint64_t stats_kv_pages_used(const struct worker *w);

#endif /* REALM_WORKER_INTERNAL_H */
