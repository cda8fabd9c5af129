/*
 * conn.c — runner connections: Hello (tenant, weight, quota, shared memory), the tenant
 * table, and the SOCK_SEQPACKET side socket that hands each connection its memfd.
 *
 * A connection is a ZeroMQ routing id that said Hello; nothing is allocated for a peer
 * before that. The worker decides what a runner asks for: weight and KV quota are capped by
 * the configuration (an operator override per tenant wins over the request, still capped),
 * and the shm region is created here, by the more trusted side, at a size we chose. The
 * handshake (docs/protocol.md §6.1): HelloReply carries a 32-byte random token; the runner
 * connects to the side socket and sends it; we compare it in constant time against the
 * connections' outstanding tokens (one use, WORKER_SHM_TOKEN_TTL_NS) and answer the 8-byte
 * LE connection id with the memfd attached. Anything else closes the side socket silently.
 *
 * Decisions not fixed by the protocol (docs/worker.md):
 *  - Tenants are shared by every connection with the same tenant_id: fairness and KV quota
 *    are per tenant, so ten replicas do not get ten shares. The latest Hello's granted weight
 *    and quota apply to the whole tenant.
 *  - A Hello on a connection that already said Hello resets it (sessions closed, new region):
 *    that is what a runner does after "unavailable".
 *  - A Hello with the (tenant_id, replica_id) of another live connection replaces that
 *    connection: the replica restarted, its old sessions are unreachable anyway. Only a
 *    tenant's own connections can be replaced this way.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "realm/config.h"
#include "realm/log.h"

/* ---- tenants ---- */

static bool valid_id(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '-' || ch == '_' || ch == '.' || ch == ':'))
      return false;
  }
  return true;
}

int conn_parse_overrides(struct worker *w, char *err, size_t errlen) {
  const char *s = w->cfg.tenant_weights ? w->cfg.tenant_weights : "";
  if (!*s) return 0;
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf) {
    snprintf(err, errlen, "--tenant-weight: value too long");
    return REALM_E_INVALID_ARGUMENT;
  }
  char *save = NULL;
  for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(item, '=');
    if (!eq) {
      snprintf(err, errlen, "--tenant-weight: '%s' is not TENANT=WEIGHT", item);
      return REALM_E_INVALID_ARGUMENT;
    }
    *eq = 0;
    int64_t wt;
    if (!valid_id(item, WORKER_MAX_ID_BYTES) || realm_config_parse_int64(eq + 1, &wt) < 0 ||
        wt < 1 || wt > (int64_t)w->cfg.max_weight) {
      snprintf(err, errlen, "--tenant-weight: '%s=%s' needs a tenant id and a weight in [1, %u]",
               item, eq + 1, w->cfg.max_weight);
      return REALM_E_INVALID_ARGUMENT;
    }
    void *nb = realloc(w->overrides, sizeof *w->overrides * (w->n_overrides + 1));
    if (!nb) return REALM_E_NOMEM;
    w->overrides = nb;
    snprintf(w->overrides[w->n_overrides].id, sizeof w->overrides[0].id, "%s", item);
    w->overrides[w->n_overrides].weight = (uint32_t)wt;
    w->n_overrides++;
  }
  return 0;
}

/* True when id is one of the comma-separated tenant ids of list, or list is "*". */
static bool tenant_in_list(const char *list, const char *id) {
  if (!list || !*list) return false;
  if (strcmp(list, "*") == 0) return true;
  size_t n = strlen(id);
  for (const char *p = list; *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && memcmp(p, id, n) == 0) return true;
    if (!end) break;
    p = end + 1;
  }
  return false;
}

static struct worker_tenant *tenant_get(struct worker *w, const char *id) {
  for (uint32_t i = 0; i < w->n_tenants; i++)
    if (strcmp(w->tenants[i]->id, id) == 0) return w->tenants[i];
  if (w->n_tenants >= REALM_MAX_TENANTS) return NULL;
  if (w->n_tenants == w->cap_tenants) {
    uint32_t cap = w->cap_tenants ? w->cap_tenants * 2 : 16;
    void *nb = realloc(w->tenants, sizeof *w->tenants * cap);
    if (!nb) return NULL;
    w->tenants = nb;
    w->cap_tenants = cap;
  }
  struct worker_tenant *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  snprintf(t->id, sizeof t->id, "%s", id);
  t->vtime = w->sched.vclock; /* a new tenant banks nothing */
  t->weight_access = tenant_in_list(w->cfg.allow_weight_access, id);
  w->tenants[w->n_tenants++] = t;
  return t;
}

/* Frees a tenant nobody uses any more (its quota struct is no longer referenced: every
 * session charged to it belonged to one of its connections). */
static void tenant_release(struct worker *w, struct worker_tenant *t) {
  if (!t || t->n_conns > 0 || t->sessions > 0) return;
  for (uint32_t i = 0; i < w->n_tenants; i++)
    if (w->tenants[i] == t) {
      w->tenants[i] = w->tenants[--w->n_tenants];
      break;
    }
  free(t->cand);
  free(t);
}

/* ---- connections ---- */

struct worker_conn *conn_find(struct worker *w, const realm_ipc_peer *peer) {
  for (uint32_t i = 0; i < w->n_conns; i++) {
    struct worker_conn *c = w->conns[i];
    if (c->peer.len == peer->len && memcmp(c->peer.id, peer->id, peer->len) == 0) return c;
  }
  return NULL;
}

/* Closes every session and queued Step of c (no replies: the peer is gone or starting over)
 * and its region. */
static void conn_reset(struct worker *w, struct worker_conn *c) {
  /* Waiting opens first: freeing the sessions below must not admit one of c's own. */
  admit_drop_conn(w, c);
  sched_drop_conn(w, c);
  for (uint32_t i = 0; i < c->n_slots; i++)
    if (c->slots[i]) session_destroy(w, c->slots[i]);
  lane_close(w, c);
  realm_shm_destroy(c->shm);
  c->shm = NULL;
  c->shm_data_bytes = 0;
  c->shm_token_expiry_ns = 0;
}

void conn_destroy(struct worker *w, struct worker_conn *c) {
  if (!c) return;
  conn_reset(w, c);
  for (uint32_t i = 0; i < w->n_conns; i++)
    if (w->conns[i] == c) {
      w->conns[i] = w->conns[--w->n_conns];
      break;
    }
  realm_log_info("connection closed", RLOG_UINT("conn", c->id),
                 RLOG_STR("tenant", c->tenant ? c->tenant->id : ""));
  struct worker_tenant *t = c->tenant;
  if (t) t->n_conns--;
  free(c->slots);
  free(c->slot_gen);
  free(c);
  tenant_release(w, t);
}

void conn_reap(struct worker *w) {
  for (uint32_t i = w->n_conns; i-- > 0;)
    if (i < w->n_conns && w->conns[i]->dead) conn_destroy(w, w->conns[i]);
}

int64_t conn_idle_sweep(struct worker *w, int64_t now) {
  const int64_t idle = w->cfg.idle_timeout_ms * 1000000LL;
  const int64_t idle_sess = w->cfg.idle_session_timeout_ms * 1000000LL;
  int64_t next = INT64_MAX;
  for (uint32_t i = w->n_conns; i-- > 0;) {
    struct worker_conn *c = w->conns[i];
    /* A connection waiting for a Step's reply or a queued SessionOpen is waiting on us,
     * not idle. */
    if (c->pending_steps > 0 || c->waiting_opens > 0 || c->dead) continue;
    int64_t limit = c->n_sessions > 0 ? idle_sess : idle;
    if (limit <= 0) continue;
    int64_t deadline = c->last_seen_ns + limit;
    if (now < deadline) {
      if (deadline < next) next = deadline;
      continue;
    }
    /* Gone without a word (a runner killed before it could say anything, a network split):
     * its sessions would pin KV pages of its tenant's quota for ever. A runner that is just
     * quiet says Hello again and gets "unavailable" for the old sessions, as after a worker
     * restart. */
    realm_log_info(c->n_sessions ? "idle connection dropped; its sessions are freed"
                                 : "idle connection dropped",
                   RLOG_UINT("conn", c->id), RLOG_STR("tenant", c->tenant->id),
                   RLOG_STR("replica", c->replica), RLOG_UINT("sessions", c->n_sessions),
                   RLOG_INT("idle_ms", (now - c->last_seen_ns) / 1000000));
    conn_destroy(w, c);
  }
  return next;
}

void conn_close_all(struct worker *w) {
  while (w->n_conns > 0) conn_destroy(w, w->conns[w->n_conns - 1]);
}

static uint32_t granted_weight(const struct worker *w, const char *tenant, uint32_t asked) {
  for (uint32_t i = 0; i < w->n_overrides; i++)
    if (strcmp(w->overrides[i].id, tenant) == 0) return w->overrides[i].weight;
  if (asked == 0) return w->cfg.default_weight;
  return asked > w->cfg.max_weight ? w->cfg.max_weight : asked;
}

static void fill_model_info(const struct worker *w, Realm__V1__ModelInfo *mi) {
  const struct engine_hparams *hp = &w->model->hp;
  realm__v1__model_info__init(mi);
  mi->name = (char *)w->model_name;
  mi->architecture = (char *)"llama";
  mi->vocab_size = hp->n_vocab;
  mi->n_ctx = hp->n_ctx;
  mi->n_embd = hp->dim;
  mi->n_layer = hp->n_layer;
  mi->n_head = hp->n_head;
  mi->n_head_kv = hp->n_head_kv;
  mi->n_ff = hp->ff_dim;
  mi->bos_token_id = hp->bos_id < hp->n_vocab ? (int32_t)hp->bos_id : -1;
  mi->eos_token_id = hp->eos_id < hp->n_vocab ? (int32_t)hp->eos_id : -1;
  mi->rope_freq_base = hp->rope_base;
  mi->rms_norm_eps = hp->rms_eps;
}

void conn_handle_hello(struct worker *w, const realm_ipc_peer *from, uint64_t request_id,
                       const Realm__V1__Hello *h) {
  const char *tenant_id = h->tenant_id ? h->tenant_id : "";
  const char *replica = h->replica_id ? h->replica_id : "";
  char msg[256];
  if (!valid_id(tenant_id, WORKER_MAX_ID_BYTES)) {
    snprintf(msg, sizeof msg, "tenant_id must be 1..%d characters of [A-Za-z0-9._:-]",
             WORKER_MAX_ID_BYTES);
    worker_reply_error(w, from, request_id, REALM_E_INVALID_ARGUMENT, msg, "tenant_id");
    return;
  }
  if (replica[0] && !valid_id(replica, WORKER_MAX_ID_BYTES)) {
    snprintf(msg, sizeof msg, "replica_id must be 0..%d characters of [A-Za-z0-9._:-]",
             WORKER_MAX_ID_BYTES);
    worker_reply_error(w, from, request_id, REALM_E_INVALID_ARGUMENT, msg, "replica_id");
    return;
  }
  if (h->wants_shm && h->shm_bytes > REALM_MAX_SHM_BYTES) {
    snprintf(msg, sizeof msg, "shm_bytes %llu above the limit %llu",
             (unsigned long long)h->shm_bytes, (unsigned long long)REALM_MAX_SHM_BYTES);
    worker_reply_error(w, from, request_id, REALM_E_INVALID_ARGUMENT, msg, "shm_bytes");
    return;
  }
  struct worker_conn *c = conn_find(w, from);
  if (c && strcmp(c->tenant->id, tenant_id) != 0) {
    /* A connection cannot change tenant: that would carry sessions across tenants. */
    snprintf(msg, sizeof msg, "this connection belongs to tenant %s", c->tenant->id);
    worker_reply_error(w, from, request_id, REALM_E_PERMISSION, msg, "tenant_id");
    return;
  }
  if (c) {
    conn_reset(w, c);
  } else {
    /* The replica restarted: its previous connection is gone for good. */
    if (replica[0])
      for (uint32_t i = 0; i < w->n_conns; i++) {
        struct worker_conn *o = w->conns[i];
        if (strcmp(o->tenant->id, tenant_id) == 0 && strcmp(o->replica, replica) == 0) {
          realm_log_info("replica reconnected; dropping its old connection",
                         RLOG_STR("tenant", tenant_id), RLOG_STR("replica", replica),
                         RLOG_UINT("old_conn", o->id));
          conn_destroy(w, o);
          break;
        }
      }
    if (w->n_conns >= WORKER_MAX_CONNS) {
      worker_reply_error(w, from, request_id, REALM_E_UNAVAILABLE, "too many connections", NULL);
      return;
    }
    struct worker_tenant *t = tenant_get(w, tenant_id);
    c = calloc(1, sizeof *c);
    if (c) {
      c->slots = calloc(w->cfg.max_sessions, sizeof *c->slots);
      c->slot_gen = calloc(w->cfg.max_sessions, sizeof *c->slot_gen);
    }
    if (!t || !c || !c->slots || !c->slot_gen) {
      if (c) {
        free(c->slots);
        free(c->slot_gen);
      }
      free(c);
      if (t) tenant_release(w, t);
      worker_reply_error(w, from, request_id, t ? REALM_E_NOMEM : REALM_E_UNAVAILABLE,
                         t ? "no memory for a connection" : "too many tenants", NULL);
      return;
    }
    c->peer = *from;
    c->n_slots = w->cfg.max_sessions;
    c->id = w->next_conn_id++;
    c->tenant = t;
    t->n_conns++;
    w->conns[w->n_conns++] = c;
  }
  snprintf(c->replica, sizeof c->replica, "%s", replica);
  c->last_seen_ns = worker_now_ns();
  struct worker_tenant *t = c->tenant;

  /* Grants: weight, quota (tokens, rounded down to whole blocks, at least one block). */
  struct kv_cache *kv = engine_kv(w->engine);
  uint32_t bt = kv_cache_block_tokens(kv);
  uint64_t pool_tokens = (uint64_t)kv_cache_total_blocks(kv) * bt;
  uint64_t cap = w->cfg.max_kv_quota_tokens ? w->cfg.max_kv_quota_tokens : pool_tokens;
  if (cap > pool_tokens) cap = pool_tokens;
  uint64_t quota = h->kv_quota_tokens == 0 || h->kv_quota_tokens > cap ? cap : h->kv_quota_tokens;
  uint64_t blocks = quota / bt;
  if (blocks == 0) blocks = 1;
  t->weight = granted_weight(w, tenant_id, h->weight);
  t->quota_blocks = (uint32_t)blocks;
  t->quota_tokens = blocks * bt;
  /* The budget is enforced on reservations (admit.c invariant 3); kv.c's per-tenant cap
   * only backstops it, so a Hello that shrinks the quota cannot fail an open session's
   * Step halfway: sessions keep what they reserved, new opens wait for the tenant to get
   * under the new quota. */
  t->quota.max_blocks = kv_cache_total_blocks(kv);

  /* Shared memory: created here at a size the worker chose. */
  uint64_t shm_bytes = 0;
  if (h->wants_shm && w->shm_path[0]) {
    shm_bytes = h->shm_bytes ? h->shm_bytes : w->cfg.default_shm_bytes;
    if (shm_bytes > w->cfg.max_shm_bytes) shm_bytes = w->cfg.max_shm_bytes;
    shm_bytes = (shm_bytes + 4095) & ~(uint64_t)4095;
    /* The step lane follows the data (docs/protocol.md §6.2). */
    uint64_t lane_bytes = h->wants_step_lane && w->cfg.step_lane ? REALM_LANE_BYTES : 0;
    if (shm_bytes > REALM_MAX_SHM_BYTES - lane_bytes) shm_bytes = REALM_MAX_SHM_BYTES - lane_bytes;
    char name[64], e[256];
    snprintf(name, sizeof name, "realm-conn-%llu", (unsigned long long)c->id);
    int rc = realm_shm_create(name, (size_t)(shm_bytes + lane_bytes), 0, &c->shm, e, sizeof e);
    c->shm_data_bytes = shm_bytes;
    if (rc == 0 && lane_bytes) rc = lane_open(w, c, shm_bytes, e, sizeof e);
    if (rc == 0 && getrandom(c->shm_token, sizeof c->shm_token, 0) != (ssize_t)sizeof c->shm_token) {
      realm_shm_destroy(c->shm);
      c->shm = NULL;
      rc = REALM_E_SYSTEM;
      snprintf(e, sizeof e, "getrandom failed");
    }
    if (rc < 0) {
      realm_log_warn("shm region not created", RLOG_ERR(rc), RLOG_STR("detail", e),
                     RLOG_UINT("conn", c->id));
      worker_reply_error(w, from, request_id, rc, e, "shm_bytes");
      conn_destroy(w, c);
      return;
    }
    c->shm_token_expiry_ns = worker_now_ns() + WORKER_SHM_TOKEN_TTL_NS;
  }

  Realm__V1__ModelInfo mi;
  fill_model_info(w, &mi);
  Realm__V1__HelloReply hr;
  realm__v1__hello_reply__init(&hr);
  hr.connection_id = c->id;
  hr.model = &mi;
  hr.shm_bytes = c->shm ? shm_bytes : 0;
  hr.step_lane_offset = realm_lane_on(&c->lane) ? shm_bytes : 0;
  if (c->shm) {
    hr.shm_socket_path = w->shm_path;
    hr.shm_token.data = c->shm_token;
    hr.shm_token.len = sizeof c->shm_token;
  }
  hr.max_batch_seqs = w->cfg.max_batch_seqs;
  hr.max_step_tokens = w->cfg.max_step_tokens;
  hr.max_sessions = w->cfg.max_sessions;
  hr.weight = t->weight;
  hr.kv_quota_tokens = t->quota_tokens;
  hr.kv_page_tokens = bt;
  hr.weight_access = t->weight_access;
  Realm__V1__WorkerReply reply;
  realm__v1__worker_reply__init(&reply);
  reply.request_id = request_id;
  reply.body_case = REALM__V1__WORKER_REPLY__BODY_HELLO;
  reply.hello = &hr;
  realm_log_info("hello", RLOG_UINT("conn", c->id), RLOG_STR("tenant", t->id),
                 RLOG_STR("replica", c->replica), RLOG_UINT("weight", t->weight),
                 RLOG_UINT("kv_quota_tokens", t->quota_tokens), RLOG_UINT("shm_bytes", hr.shm_bytes),
                 RLOG_STR("step_lane", hr.step_lane_offset ? "yes" : "no"));
  worker_send_reply(w, from, &reply);
}

/* ---- the shm handshake side socket ---- */

int conn_shm_listen(struct worker *w, char *err, size_t errlen) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(w->shm_path) >= sizeof sa.sun_path) {
    snprintf(err, errlen, "--shm-socket: path '%s' too long", w->shm_path);
    return REALM_E_INVALID_ARGUMENT;
  }
  strcpy(sa.sun_path, w->shm_path);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, errlen, "--shm-socket: socket: %s", strerror(errno));
    return REALM_E_SYSTEM;
  }
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    if (errno != EADDRINUSE) goto bind_fail;
    /* A stale file from a dead worker is replaced; a live listener is refused. */
    struct stat st;
    bool live = false;
    int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (probe >= 0) {
      live = connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
      close(probe);
    }
    if (live || lstat(w->shm_path, &st) != 0 || !S_ISSOCK(st.st_mode)) {
      snprintf(err, errlen, "--shm-socket: %s is %s", w->shm_path,
               live ? "in use by another process" : "not a socket");
      close(fd);
      return REALM_E_UNAVAILABLE;
    }
    unlink(w->shm_path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) goto bind_fail;
  }
  /* Only processes of our user (the runners) may fetch regions; tokens guard the rest. */
  chmod(w->shm_path, 0600);
  if (listen(fd, 64) != 0) goto bind_fail;
  w->shm_listen_fd = fd;
  return 0;
bind_fail:;
  int e = errno;
  snprintf(err, errlen, "--shm-socket: cannot bind %s: %s", w->shm_path, strerror(e));
  close(fd);
  return e == EADDRINUSE ? REALM_E_UNAVAILABLE : REALM_E_SYSTEM;
}

static void side_remove(struct worker *w, uint32_t i) {
  close(w->sides[i].fd);
  w->sides[i] = w->sides[--w->n_sides];
}

void conn_side_accept(struct worker *w) {
  for (int n = 0; n < 64; n++) {
    int fd = accept4(w->shm_listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (w->n_sides >= WORKER_MAX_SIDE_CONNS) {
      close(fd); /* the runner retries; a flood of idle sockets cannot pin our fds */
      realm_log_warn("shm handshake refused: too many in progress");
      continue;
    }
    w->sides[w->n_sides++] = (struct worker_side){
        .fd = fd, .deadline_ns = worker_now_ns() + WORKER_SIDE_CONN_TTL_NS};
  }
}

void conn_side_expire(struct worker *w, int64_t now) {
  for (uint32_t i = w->n_sides; i-- > 0;)
    if (now > w->sides[i].deadline_ns) side_remove(w, i);
}

/* Constant time over the token bytes: how long a compare takes says nothing about how many
 * leading bytes of a guess were right. */
static bool token_equal(const uint8_t *a, const uint8_t *b) {
  uint8_t d = 0;
  for (size_t i = 0; i < REALM_SHM_TOKEN_BYTES; i++) d |= (uint8_t)(a[i] ^ b[i]);
  return d == 0;
}

void conn_side_readable(struct worker *w, uint32_t index) {
  if (index >= w->n_sides) return;
  int fd = w->sides[index].fd;
  uint8_t token[REALM_SHM_TOKEN_BYTES + 1];
  size_t len = 0;
  int passed = -1;
  char err[256];
  int rc = realm_fd_recv(fd, &passed, token, sizeof token, &len, err, sizeof err);
  if (rc == REALM_E_TIMEOUT) return; /* spurious wake-up */
  if (passed >= 0) close(passed);    /* runners send no fds to us */
  struct worker_conn *match = NULL;
  int64_t now = worker_now_ns();
  if (rc == 0 && len == REALM_SHM_TOKEN_BYTES) {
    for (uint32_t i = 0; i < w->n_conns; i++) {
      struct worker_conn *c = w->conns[i];
      /* Compare against every live token so timing does not depend on where a match is. */
      if (c->shm && c->shm_token_expiry_ns > now && token_equal(c->shm_token, token) && !match)
        match = c;
    }
  }
  if (!match) {
    realm_log_warn("shm handshake refused", RLOG_STR("reason", rc < 0 ? err : "unknown token"));
    side_remove(w, index);
    return;
  }
  match->shm_token_expiry_ns = 0; /* one use */
  uint8_t idbuf[8];
  for (int i = 0; i < 8; i++) idbuf[i] = (uint8_t)(match->id >> (8 * i));
  rc = realm_fd_send(fd, realm_shm_fd(match->shm), idbuf, sizeof idbuf, err, sizeof err);
  if (rc == 0 && realm_lane_on(&match->lane))
    rc = realm_lane_send_doorbells(fd, (int[2]){match->lane.to_worker, match->lane.to_runner},
                                   err, sizeof err);
  if (rc < 0)
    realm_log_warn("shm handshake: sending the region failed", RLOG_ERR(rc),
                   RLOG_STR("detail", err), RLOG_UINT("conn", match->id));
  else
    realm_log_debug("shm region handed over", RLOG_UINT("conn", match->id));
  side_remove(w, index);
}
