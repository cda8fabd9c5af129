/*
 * runner_internal.h — the runner's state struct, shared by runner.c (set-up and the event
 * loop), runner_worker.c (the worker link) and policy-runner.c (the jail).
 *
 * Invariants (checked by the code that changes them):
 *  1. A request slot is in exactly one state: FREE, OPENING (SessionOpen sent, no session
 *     yet) or ACTIVE (has a session; may have pending input).
 *  2. At most one Step is in flight; every request it names has in_step set, and a request
 *     with in_step set is never freed — a cancel or a failure meanwhile is recorded and
 *     carried out when the Step's reply (or the worker's loss) releases it.
 *  3. Each request ends with exactly one terminal event to the gateway (Finish or Error),
 *     unless the gateway connection is gone, and its guest instance leaves with it: back to
 *     the idle pool only after a clean request_end, freed otherwise (trap, deadline, any
 *     failed guest call, memory grown past half the cap, pool full).
 *  4. Guest code runs only on the loop thread, never from inside a host callback. An
 *     instance serves one request at a time; `calling` names that request during a guest
 *     call and is NULL otherwise.
 *  5. Events of one request leave in the order the guest produced them: a held Token event
 *     (tok_pending) goes out before any later token, held text or terminal event. One made in
 *     request_begin goes out when that call returns; one made in on_logits right after the
 *     Step that follows the StepReply being handled (the Step first: it is on the critical
 *     path), always before that request's guest runs again.
 */
#ifndef REALM_RUNNER_INTERNAL_H
#define REALM_RUNNER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "realm/ipc.h"
#include "realm/lane.h"
#include "realm/proto.h"
#include "realm/shm.h"
#include "runner.h"
#include "runner_vocab.h"
#include "sandbox.h"

enum rreq_state { RREQ_FREE = 0, RREQ_OPENING, RREQ_ACTIVE };

/* The guest's request id inside its own instance: one request per instance at a time. */
#define RUNNER_GUEST_REQ_ID 1u

/* Guest instances kept for reuse after a clean request end. Creating one costs the module's
 * instantiation and, for the default guest, rebuilding its tokenizer from the 32k-150k
 * vocabulary entries on the first request (~45M instructions, ~10 ms); a reused one has it
 * cached. Each idle instance keeps its linear memory (~5 MB for the default guest with a 32k
 * vocabulary), hence the small bound. */
#define RUNNER_IDLE_INSTANCES 4

/* One in-flight generation. */
struct rreq {
  enum rreq_state state;
  struct runner *runner;          /* back pointer for the host callbacks */
  char *id;                       /* the gateway's request id (owned) */
  realm_ipc_peer peer;            /* gateway connection that sent it */
  struct sandbox_instance *inst;  /* this request's guest instance (own or from the pool) */
  bool begun;                     /* request_begin returned: request_end is owed */
  uint64_t open_wid;              /* worker request id of our SessionOpen (OPENING) */
  uint64_t session_id;            /* valid when ACTIVE */
  uint32_t session_max;           /* tokens the session may hold */
  int32_t *pending;               /* (cap_pending) tokens not yet sent to the worker */
  uint32_t n_pending, cap_pending;
  uint32_t n_fed;                 /* tokens the worker has appended (session length) */
  uint32_t prompt_tokens;         /* tokens fed before the first logits */
  uint32_t completion_tokens;     /* tokens the guest chose */
  uint32_t max_tokens;            /* completion cap of this request */
  bool generating;                /* first logits delivered */
  bool prompt_overflow;           /* the guest fed more than max_prompt_tokens */
  bool want_logprobs;
  uint64_t deadline_unix_ms;      /* 0 = none */
  bool in_step;                   /* named by the Step in flight (invariant 2) */
  bool cancel_requested;          /* gateway sent CancelRequest (or deadline) while in_step */
  bool gateway_gone;              /* sending an event failed: finish silently */
  char *hold;                     /* emit_text bytes waiting for the next token event */
  uint32_t n_hold, cap_hold;
  uint32_t top_logprobs;          /* alternatives per token the request asked for (0..20) */
  bool emitted_in_call;           /* the guest emitted a token during the current on_logits */

  /* The Token event of the guest's last emit_token, held until its top logprobs may have
   * arrived (emit_top_logprobs follows emit_token): sent at the next emit_token, when the
   * guest call returns, or before the request's terminal event (invariant 5). */
  bool tok_pending;
  int32_t tok_id;
  float tok_logprob;
  char *tok_text;                 /* held emit_text bytes + the token's text */
  uint32_t tok_len, cap_tok_text;
  struct realm_top_logprob tok_top[REALM_GUEST_MAX_TOP_LOGPROBS];
  uint32_t tok_n_top;
};

struct step_slot {
  uint32_t req;       /* index into runner.reqs */
  uint32_t n_tokens;  /* tokens this entry appends */
  uint32_t n_logits;  /* 0 or 1 */
  uint64_t logits_offset;
};

struct runner {
  struct runner_config cfg;
  void *zctx;
  void *gw;                      /* ROUTER the gateway connects to */
  void *wk;                      /* DEALER to the worker (NULL while down) */
  void *mon;                     /* PAIR receiving wk's disconnect events */
  unsigned mon_seq;              /* makes each monitor endpoint unique */
  realm_shm *shm;                /* NULL in inline mode */
  realm_lane lane;               /* step lane in shm (docs/protocol.md §6.2); base NULL: none,
                                    Steps go on wk */
  struct sandbox_module *module;
  struct runner_vocab *vocab;    /* NULL when no vocabulary was given */
  struct sandbox_host host;      /* callbacks of every instance; host.user = this runner */
  struct rreq *calling;          /* the request whose guest call runs now (invariant 4) */
  struct sandbox_instance *idle[RUNNER_IDLE_INSTANCES]; /* clean instances, last in first out */
  uint32_t n_idle;
  bool warmed;                   /* the first idle instance ran its warm-up request */
  uint64_t instances_created, instances_reused;
  char *chat_template;           /* the tenant's CHAT_TEMPLATE (read before the jail), or NULL */
  uint32_t chat_template_len;

  /* From HelloReply. */
  bool worker_up;
  uint64_t connection_id;
  uint32_t vocab_size, n_ctx, n_embd, n_layer;
  int32_t bos, eos;
  char arch[32];
  uint32_t max_batch_seqs, max_step_tokens, max_sessions;

  /* Shared-region layout chosen by us (docs/protocol.md §6.3). */
  uint64_t tokens_off, tokens_bytes; /* token inputs, each entry 64-byte aligned */
  uint64_t logits_off, row_bytes;    /* logits rows, one per Step entry */
  uint32_t n_rows;                   /* rows that fit: entries per Step */

  bool jailed;
  bool draining;                     /* stopping: new requests get drain_code */
  int drain_code;
  /* The stop drain (runner_run): what the "drain finished" line reports. Requests that end
   * while drain_counting is set count as finished (a Finish event) or failed (an Error event);
   * the cut-off at its end clears it first, so what it ends is counted apart. */
  bool drain_counting;
  uint64_t drain_finished, drain_failed, drain_refused;
  uint64_t next_wid;                 /* worker request ids, never 0 */
  int64_t next_reconnect_ms;         /* unjailed: when to try the worker again */

  struct rreq *reqs;                 /* (cfg.max_inflight) slots */
  uint32_t n_active;

  bool step_in_flight;
  uint64_t step_wid;
  int64_t step_sent_ms;
  struct step_slot *step;            /* (max entries) what the Step in flight names */
  Realm__V1__StepEntry *step_entries; /* (REALM_MAX_BATCH_SEQS) scratch of send_step, kept */
  Realm__V1__StepEntry **step_eptrs;  /* to spare two allocations per token */
  uint32_t n_step;
  uint32_t rr_start;                 /* slot where the next Step starts gathering */

  uint64_t requests_total, requests_done, tokens_total, steps_total;
};

/* ---- runner_worker.c ---- */

/* Connects to the worker, says Hello, fetches the shared region (when asked for and we may
 * still open sockets), and fills the HelloReply fields. Blocks at most timeout_ms. */
int runner_worker_connect(struct runner *r, int64_t timeout_ms, char *err, size_t errlen);
/* Closes the worker socket and monitor and unmaps the region. */
void runner_worker_close(struct runner *r);
/* Sends a WorkerRequest (DONTWAIT). Returns realm_ipc_send's code. */
int runner_worker_send(struct runner *r, Realm__V1__WorkerRequest *req, char *err,
                       size_t errlen);
/* True when the monitor reported the worker connection gone (drains the monitor). */
bool runner_worker_disconnected(struct runner *r);

/* Monotonic milliseconds. */
int64_t runner_now_ms(void);

#endif /* REALM_RUNNER_INTERNAL_H */
