/*
 * test_worker.c — the worker core in-process on a thread, driven by real DEALER clients over
 * an ipc:// endpoint in a private temp dir, with the real stories260K model: logits against
 * the in-process engine for two interleaved tenants (shm and inline), session isolation,
 * KV quota, Matmul+Attention reproducing a Step, malformed and hostile messages, weighted
 * fairness under a flood, and zeroed KV blocks.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "llama.h"
#include "model.h"
#include "realm/error.h"
#include "realm_test.h"
#include "wclient.h"
#include "wfixture.h"
#include "worker.h"

#define TOL 1e-4

/* ---- reference: the in-process engine ---- */

struct ref {
  struct gguf_file *f;
  struct engine_model *m;
  struct engine *e;
};

static int ref_open(struct ref *r) {
  char path[512], err[256];
  memset(r, 0, sizeof *r);
  snprintf(path, sizeof path, "%s/gguf/stories260K.gguf", realm_test_models_dir());
  if (gguf_open(path, &r->f, err, sizeof err) < 0) return -1;
  if (engine_model_load(r->f, &r->m, err, sizeof err) < 0) return -1;
  struct engine_config ec = {.n_threads = 1, .kv_blocks = 128};
  return engine_create(r->m, &ec, &r->e, err, sizeof err);
}

static void ref_close(struct ref *r) {
  engine_destroy(r->e);
  engine_model_free(r->m);
  gguf_close(r->f);
}

/* Appends tokens to seq and writes the last token's logits. */
static int ref_step(struct ref *r, struct kv_seq *seq, const int32_t *toks, uint32_t n,
                    float *logits) {
  char err[256];
  struct engine_seq_step s = {.seq = seq, .pos = kv_seq_len(seq), .tokens = toks, .n_tokens = n};
  struct engine_batch b = {.seqs = &s, .n_seqs = 1};
  return engine_forward(r->e, &b, logits, err, sizeof err);
}

/* ---- tests ---- */

/* Four rounds of one Step from each of a and b — a prompt, then one decode token each,
 * different per client — with a's logits at region offset 4096 and b's at b_log_off (0 for
 * an inline client): every row must be the engine's for that client's own sequence. */
static void interleave_two_clients(struct ref *r, struct wclient *a, struct wclient *b,
                                   uint64_t b_log_off) {
  uint32_t V = a->vocab;
  uint64_t sa = wc_session_open(a, 0, NULL), sb = wc_session_open(b, 0, NULL);
  CHECK(sa != 0 && sb != 0);
  struct kv_seq *ra, *rb;
  CHECK_EQ_INT(kv_seq_open(engine_kv(r->e), NULL, &ra), 0);
  CHECK_EQ_INT(kv_seq_open(engine_kv(r->e), NULL, &rb), 0);
  float *la = malloc(sizeof(float) * V), *lb = malloc(sizeof(float) * V),
        *ea = malloc(sizeof(float) * V), *eb = malloc(sizeof(float) * V);
  int32_t pa[] = {1, 403, 407, 261, 378}, pb[] = {1, 432, 383};
  const int32_t *ta = pa, *tb = pb;
  uint32_t na = 5, nb = 3;
  int32_t da, db;
  for (int round = 0; round < 4; round++) {
    int ida = wc_send_step1(a, sa, ta, na, 1, 0, 4096);
    int idb = wc_send_step1(b, sb, tb, nb, 1, 0, b_log_off);
    CHECK(ida > 0 && idb > 0);
    Realm__V1__WorkerReply *rpa = wc_recv_reply(a, (uint64_t)ida);
    Realm__V1__WorkerReply *rpb = wc_recv_reply(b, (uint64_t)idb);
    CHECK_EQ_INT(wc_step_logits(a, rpa, 4096, la), 0);
    CHECK_EQ_INT(wc_step_logits(b, rpb, b_log_off, lb), 0);
    CHECK_EQ_INT(rpa->step->results[0]->n_past, kv_seq_len(ra) + na);
    realm_frame_msg_free(&rpa->base);
    realm_frame_msg_free(&rpb->base);
    CHECK_EQ_INT(ref_step(r, ra, ta, na, ea), 0);
    CHECK_EQ_INT(ref_step(r, rb, tb, nb, eb), 0);
    CHECK_NEAR(realm_test_max_abs_diff(la, ea, V), 0, TOL);
    CHECK_NEAR(realm_test_max_abs_diff(lb, eb, V), 0, TOL);
    /* The two clients' logits differ: nobody got the other's row. */
    CHECK(realm_test_max_abs_diff(la, lb, V) > 1e-3);
    da = 300 + round, db = 400 + round;
    ta = &da, tb = &db, na = nb = 1;
  }
  kv_seq_close(engine_kv(r->e), ra);
  kv_seq_close(engine_kv(r->e), rb);
  free(la), free(lb), free(ea), free(eb);
}

TEST(two_tenants_interleaved_logits_match_engine) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  cfg.batch_window_us = 2000; /* both clients' steps land in one pass */
  CHECK_EQ_INT(fx_start(&f, &cfg), 0);
  struct ref r;
  CHECK_EQ_INT(ref_open(&r), 0);
  struct wclient a, b;
  CHECK_EQ_INT(wc_open(&a, f.zctx, f.endpoint, "tenant-a", "r0", 1, 0, 1 << 20), 0);
  CHECK_EQ_INT(wc_open(&b, f.zctx, f.endpoint, "tenant-b", "r0", 1, 0, 0), 0);
  CHECK(a.shm != NULL);
  CHECK(b.shm == NULL);
  interleave_two_clients(&r, &a, &b, 0);
  /* Stats: one row, our own tenant, with tokens counted. */
  Realm__V1__WorkerReply *sr = wc_stats(&b);
  CHECK(sr && sr->body_case == REALM__V1__WORKER_REPLY__BODY_STATS);
  CHECK_EQ_INT(sr->stats->n_tenants, 1);
  CHECK_STR_EQ(sr->stats->tenants[0]->tenant_id, "tenant-b");
  CHECK_EQ_INT(sr->stats->tenants[0]->tokens_total, 3 + 3);
  CHECK_EQ_INT(sr->stats->tokens_total, 5 + 3 + 3 + 3);
  CHECK(sr->stats->steps_total >= 1 && sr->stats->steps_total <= 8);
  realm_frame_msg_free(&sr->base);
  wc_close(&a);
  wc_close(&b);
  ref_close(&r);
  fx_stop(&f);
}

TEST(other_connections_session_is_not_found) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  CHECK_EQ_INT(fx_start(&f, &cfg), 0);
  struct wclient a, b;
  CHECK_EQ_INT(wc_open(&a, f.zctx, f.endpoint, "tenant-a", "r0", 1, 0, 1 << 20), 0);
  CHECK_EQ_INT(wc_open(&b, f.zctx, f.endpoint, "tenant-b", "r0", 1, 0, 0), 0);
  uint64_t sa = wc_session_open(&a, 0, NULL);
  uint64_t sb = wc_session_open(&b, 0, NULL);
  CHECK(sa != 0 && sb != 0);
  /* Per-connection ids: B's first session has the same number as A's — still not A's. */
  int32_t t[] = {1, 5, 6};
  int id = wc_send_step1(&a, sa, t, 3, 1, 0, 4096);
  Realm__V1__WorkerReply *r = wc_recv_reply(&a, (uint64_t)id);
  float *l = malloc(sizeof(float) * a.vocab);
  CHECK_EQ_INT(wc_step_logits(&a, r, 4096, l), 0);
  realm_frame_msg_free(&r->base);
  /* B names an id it never opened (A's second would-be id, and a made-up one). */
  uint64_t foreign[] = {sa + 1 + (1ull << 32), 0xdeadbeefULL, (2ull << 32) | 1};
  for (int k = 0; k < 3; k++) {
    id = wc_send_step1(&b, foreign[k], t, 3, 1, 0, 0);
    r = wc_recv_reply(&b, (uint64_t)id);
    CHECK(r && r->body_case == REALM__V1__WORKER_REPLY__BODY_STEP);
    CHECK(r->step->results[0]->error != NULL);
    CHECK_EQ_INT(realm_proto_error_code(r->step->results[0]->error), REALM_E_NOT_FOUND);
    CHECK_EQ_INT(r->step->results[0]->logits_inline.len, 0);
    realm_frame_msg_free(&r->base);
  }
  /* A closes B's session id (another generation of B's slot): not_found, and B's session
   * keeps working. */
  CHECK_EQ_INT(wc_session_close(&a, sb + (1ull << 32)), REALM_E_NOT_FOUND);
  Realm__V1__WorkerRequest req;
  /* Attention on a foreign id: not_found. */
  float q[64 * 4] = {0};
  Realm__V1__Attention at;
  realm__v1__attention__init(&at);
  at.session_id = sa;
  at.n_tokens = 1;
  at.q_inline.data = (uint8_t *)q;
  at.q_inline.len = sizeof(float) * b.n_embd;
  at.k_inline.data = at.v_inline.data = (uint8_t *)q;
  at.k_inline.len = at.v_inline.len = sizeof(float) * b.n_embd * b.n_head_kv / b.n_head;
  realm__v1__worker_request__init(&req);
  req.body_case = REALM__V1__WORKER_REQUEST__BODY_ATTENTION;
  req.attention = &at;
  at.session_id = foreign[0];
  r = wc_call(&b, &req);
  CHECK_EQ_INT(wc_reply_code(r), REALM_E_NOT_FOUND);
  realm_frame_msg_free(&r->base);
  /* B's own session still serves B. */
  id = wc_send_step1(&b, sb, t, 3, 1, 0, 0);
  r = wc_recv_reply(&b, (uint64_t)id);
  float *lb = malloc(sizeof(float) * b.vocab);
  CHECK_EQ_INT(wc_step_logits(&b, r, 0, lb), 0);
  realm_frame_msg_free(&r->base);
  /* same tokens, same logits, own sessions */
  CHECK_NEAR(realm_test_max_abs_diff(l, lb, b.vocab), 0, TOL);
  free(l);
  free(lb);
  wc_close(&a);
  wc_close(&b);
  fx_stop(&f);
}

TEST(kv_quota_refuses_sessions_and_steps) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  cfg.max_kv_quota_tokens = 32; /* two pages of 16 */
  CHECK_EQ_INT(fx_start(&f, &cfg), 0);
  struct wclient a;
  CHECK_EQ_INT(wc_open(&a, f.zctx, f.endpoint, "tenant-q", "r0", 1, 1000, 0), 0);
  CHECK_EQ_INT(a.kv_quota_tokens, 32); /* asked 1000, capped */
  int code;
  CHECK_EQ_INT(wc_session_open(&a, 64, &code), 0);
  CHECK_EQ_INT(code, REALM_E_QUOTA);
  uint64_t s1 = wc_session_open(&a, 0, &code);
  CHECK(s1 != 0);
  int32_t t[32];
  for (int i = 0; i < 32; i++) t[i] = 1 + i;
  int id = wc_send_step1(&a, s1, t, 32, 1, 0, 0);
  Realm__V1__WorkerReply *r = wc_recv_reply(&a, (uint64_t)id);
  float *l = malloc(sizeof(float) * a.vocab);
  CHECK_EQ_INT(wc_step_logits(&a, r, 0, l), 0);
  realm_frame_msg_free(&r->base);
  /* All pages held: a second session is refused. */
  CHECK_EQ_INT(wc_session_open(&a, 0, &code), 0);
  CHECK_EQ_INT(code, REALM_E_QUOTA);
  /* Growing past the granted length fails that entry and leaves the session as it was. */
  id = wc_send_step1(&a, s1, t, 1, 1, 0, 0);
  r = wc_recv_reply(&a, (uint64_t)id);
  CHECK_EQ_INT(wc_step_logits(&a, r, 0, l), REALM_E_OUT_OF_RANGE);
  CHECK_EQ_INT(r->step->results[0]->n_past, 32);
  realm_frame_msg_free(&r->base);
  /* Closing gives the pages back. */
  CHECK_EQ_INT(wc_session_close(&a, s1), 0);
  uint64_t s2 = wc_session_open(&a, 20, &code);
  CHECK(s2 != 0);
  /* A 20-token session whose step needs a third page would be out of range first; fill 20. */
  id = wc_send_step1(&a, s2, t, 20, 0, 0, 0);
  r = wc_recv_reply(&a, (uint64_t)id);
  CHECK(r && r->body_case == REALM__V1__WORKER_REPLY__BODY_STEP);
  CHECK(r->step->results[0]->error == NULL);
  CHECK_EQ_INT(r->step->results[0]->n_past, 20);
  CHECK_EQ_INT(r->step->results[0]->logits_inline.len, 0);
  realm_frame_msg_free(&r->base);
  free(l);
  wc_close(&a);
  fx_stop(&f);
}

/* ---- Matmul + Attention reproduce a Step ---- */

static int wc_matmul(struct wclient *c, const char *tensor, const float *x, uint32_t rows,
                     uint32_t n_in, float *y, uint32_t n_out) {
  Realm__V1__Matmul mm;
  realm__v1__matmul__init(&mm);
  mm.tensor = (char *)tensor;
  mm.n_rows = rows;
  size_t in_b = sizeof(float) * rows * n_in, out_b = sizeof(float) * rows * n_out;
  if (c->shm) {
    memcpy(c->base, x, in_b);
    mm.input_offset = 0;
    mm.output_offset = (in_b + 63) & ~(size_t)63;
  } else {
    mm.input_inline.data = (uint8_t *)x;
    mm.input_inline.len = in_b;
  }
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  req.body_case = REALM__V1__WORKER_REQUEST__BODY_MATMUL;
  req.matmul = &mm;
  Realm__V1__WorkerReply *r = wc_call(c, &req);
  int rc = wc_reply_code(r);
  if (rc == 0 && (r->body_case != REALM__V1__WORKER_REPLY__BODY_MATMUL || r->matmul->n_out != n_out))
    rc = REALM_E_INTERNAL;
  if (rc == 0) {
    if (c->shm) memcpy(y, c->base + mm.output_offset, out_b);
    else if (r->matmul->output_inline.len == out_b) memcpy(y, r->matmul->output_inline.data, out_b);
    else rc = REALM_E_INTERNAL;
  }
  realm_frame_msg_free(r ? &r->base : NULL);
  return rc;
}

static int wc_attention(struct wclient *c, uint64_t sid, uint32_t layer, uint32_t pos, uint32_t n,
                        const float *q, const float *k, const float *v, float *out,
                        uint32_t q_dim, uint32_t kv_dim) {
  Realm__V1__Attention at;
  realm__v1__attention__init(&at);
  at.session_id = sid;
  at.layer = layer;
  at.pos = pos;
  at.n_tokens = n;
  at.rope = 1;
  size_t qb = sizeof(float) * n * q_dim, kb = sizeof(float) * n * kv_dim;
  size_t a64 = 64;
  at.q_offset = 0;
  at.k_offset = (qb + a64 - 1) / a64 * a64;
  at.v_offset = at.k_offset + (kb + a64 - 1) / a64 * a64;
  at.output_offset = at.v_offset + (kb + a64 - 1) / a64 * a64;
  memcpy(c->base + at.q_offset, q, qb);
  memcpy(c->base + at.k_offset, k, kb);
  memcpy(c->base + at.v_offset, v, kb);
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  req.body_case = REALM__V1__WORKER_REQUEST__BODY_ATTENTION;
  req.attention = &at;
  Realm__V1__WorkerReply *r = wc_call(c, &req);
  int rc = wc_reply_code(r);
  if (rc == 0) memcpy(out, c->base + at.output_offset, qb);
  realm_frame_msg_free(r ? &r->base : NULL);
  return rc;
}

static void rmsnorm(const float *x, const float *g, uint32_t n_tok, uint32_t dim, float eps,
                    float *y) {
  for (uint32_t t = 0; t < n_tok; t++) {
    double ss = 0;
    for (uint32_t i = 0; i < dim; i++) ss += (double)x[t * dim + i] * x[t * dim + i];
    float s = (float)(1.0 / sqrt(ss / dim + eps));
    for (uint32_t i = 0; i < dim; i++) y[t * dim + i] = x[t * dim + i] * s * g[i];
  }
}

/* The whole forward pass from worker ops only: GetRows (embeddings, norm gains), Matmul and
 * Attention, with RMSNorm, SwiGLU and residuals computed here. No GGUF is read by the guest
 * side: every dimension comes from HelloReply's ModelInfo, every weight through the worker. */
TEST(matmul_and_attention_reproduce_step_logits) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  cfg.allow_weight_access = "tenant-other,tenant-g";
  CHECK_EQ_INT(fx_start(&f, &cfg), 0);
  struct wclient a;
  CHECK_EQ_INT(wc_open(&a, f.zctx, f.endpoint, "tenant-g", "r0", 1, 0, 1 << 20), 0);
  CHECK(a.weight_access);
  uint64_t s1 = wc_session_open(&a, 0, NULL), s2 = wc_session_open(&a, 0, NULL);
  CHECK(s1 && s2);
  const uint32_t V = a.vocab, D = a.n_embd, KV = a.n_embd / a.n_head * a.n_head_kv, FF = a.n_ff;
  const float eps = a.rms_eps;
  int32_t toks[3] = {1, 403, 407};
  float *step_l = malloc(sizeof(float) * V), *op_l = malloc(sizeof(float) * V);
  int id = wc_send_step1(&a, s1, toks, 3, 1, 0, 4096);
  Realm__V1__WorkerReply *rp = wc_recv_reply(&a, (uint64_t)id);
  CHECK_EQ_INT(wc_step_logits(&a, rp, 4096, step_l), 0);
  realm_frame_msg_free(&rp->base);

  /* The same three tokens through ops. */
  const uint32_t T = 3;
  float *x = calloc(T * D, 4), *xb = calloc(T * D, 4), *q = calloc(T * D, 4), *k = calloc(T * KV, 4),
        *v = calloc(T * KV, 4), *att = calloc(T * D, 4), *tmp = calloc(T * D, 4),
        *g = calloc(T * FF, 4), *u = calloc(T * FF, 4), *gain = calloc(D, 4);
  CHECK_EQ_INT(wc_get_rows(&a, "token_embd.weight", toks, T, x, D), 0);
  const int32_t row0 = 0;
  char name[64];
  for (uint32_t l = 0; l < a.n_layer; l++) {
    snprintf(name, sizeof name, "blk.%u.attn_norm.weight", l);
    CHECK_EQ_INT(wc_get_rows(&a, name, &row0, 1, gain, D), 0);
    rmsnorm(x, gain, T, D, eps, xb);
    snprintf(name, sizeof name, "blk.%u.attn_q.weight", l);
    CHECK_EQ_INT(wc_matmul(&a, name, xb, T, D, q, D), 0);
    snprintf(name, sizeof name, "blk.%u.attn_k.weight", l);
    CHECK_EQ_INT(wc_matmul(&a, name, xb, T, D, k, KV), 0);
    snprintf(name, sizeof name, "blk.%u.attn_v.weight", l);
    CHECK_EQ_INT(wc_matmul(&a, name, xb, T, D, v, KV), 0);
    CHECK_EQ_INT(wc_attention(&a, s2, l, 0, T, q, k, v, att, D, KV), 0);
    snprintf(name, sizeof name, "blk.%u.attn_output.weight", l);
    CHECK_EQ_INT(wc_matmul(&a, name, att, T, D, tmp, D), 0);
    for (uint32_t i = 0; i < T * D; i++) x[i] += tmp[i];
    snprintf(name, sizeof name, "blk.%u.ffn_norm.weight", l);
    CHECK_EQ_INT(wc_get_rows(&a, name, &row0, 1, gain, D), 0);
    rmsnorm(x, gain, T, D, eps, xb);
    snprintf(name, sizeof name, "blk.%u.ffn_gate.weight", l);
    CHECK_EQ_INT(wc_matmul(&a, name, xb, T, D, g, FF), 0);
    snprintf(name, sizeof name, "blk.%u.ffn_up.weight", l);
    CHECK_EQ_INT(wc_matmul(&a, name, xb, T, D, u, FF), 0);
    for (uint32_t i = 0; i < T * FF; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    snprintf(name, sizeof name, "blk.%u.ffn_down.weight", l);
    CHECK_EQ_INT(wc_matmul(&a, name, g, T, FF, tmp, D), 0);
    for (uint32_t i = 0; i < T * D; i++) x[i] += tmp[i];
  }
  CHECK_EQ_INT(wc_get_rows(&a, "output_norm.weight", &row0, 1, gain, D), 0);
  rmsnorm(x + (T - 1) * D, gain, 1, D, eps, xb);
  CHECK_EQ_INT(wc_matmul(&a, "output.weight", xb, 1, D, op_l, V), 0);
  CHECK_NEAR(realm_test_max_abs_diff(step_l, op_l, V), 0, TOL);

  /* And the session the ops filled continues like the Step's session: one decode step each. */
  int32_t next = 300;
  id = wc_send_step1(&a, s1, &next, 1, 1, 0, 4096);
  rp = wc_recv_reply(&a, (uint64_t)id);
  CHECK_EQ_INT(wc_step_logits(&a, rp, 4096, step_l), 0);
  realm_frame_msg_free(&rp->base);
  id = wc_send_step1(&a, s2, &next, 1, 1, 0, 4096);
  rp = wc_recv_reply(&a, (uint64_t)id);
  CHECK_EQ_INT(wc_step_logits(&a, rp, 4096, op_l), 0);
  CHECK_EQ_INT(rp->step->results[0]->n_past, 4);
  realm_frame_msg_free(&rp->base);
  CHECK_NEAR(realm_test_max_abs_diff(step_l, op_l, V), 0, TOL);

  /* Errors: unknown tensor, a norm, a bad layer; GetRows out of the tensor. */
  CHECK_EQ_INT(wc_matmul(&a, "blk.99.attn_q.weight", xb, 1, D, op_l, D), REALM_E_NOT_FOUND);
  CHECK_EQ_INT(wc_matmul(&a, "blk.0.attn_norm.weight", xb, 1, D, op_l, D), REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(wc_attention(&a, s2, a.n_layer, 0, 1, q, k, v, att, D, KV), REALM_E_OUT_OF_RANGE);
  const int32_t bad_tok = (int32_t)V, one = 1, neg = -1;
  CHECK_EQ_INT(wc_get_rows(&a, "token_embd.weight", &bad_tok, 1, xb, D), REALM_E_OUT_OF_RANGE);
  CHECK_EQ_INT(wc_get_rows(&a, "token_embd.weight", &neg, 1, xb, D), REALM_E_OUT_OF_RANGE);
  CHECK_EQ_INT(wc_get_rows(&a, "output_norm.weight", &one, 1, xb, D), REALM_E_OUT_OF_RANGE);
  CHECK_EQ_INT(wc_get_rows(&a, "blk.0.nope.weight", &row0, 1, xb, D), REALM_E_NOT_FOUND);
  CHECK_EQ_INT(wc_get_rows(&a, "token_embd.weight", &row0, 0, xb, D), REALM_E_INVALID_ARGUMENT);
  free(x), free(xb), free(q), free(k), free(v), free(att), free(tmp), free(g), free(u), free(gain);
  free(step_l);
  free(op_l);
  wc_close(&a);
  fx_stop(&f);
}

/* Matmul and GetRows can rebuild the weights (an identity matrix through Matmul returns W):
 * a tenant the operator did not list gets permission_denied, on shm and inline alike; its
 * Attention and Steps still work. */
TEST(weight_access_is_refused_unless_the_operator_allows_it) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  cfg.allow_weight_access = "tenant-trusted";
  CHECK_EQ_INT(fx_start(&f, &cfg), 0);
  struct wclient a, b, t;
  CHECK_EQ_INT(wc_open(&a, f.zctx, f.endpoint, "tenant-plain", "r0", 1, 0, 1 << 20), 0);
  CHECK_EQ_INT(wc_open(&b, f.zctx, f.endpoint, "tenant-trusted-not", "r0", 1, 0, 0), 0);
  CHECK_EQ_INT(wc_open(&t, f.zctx, f.endpoint, "tenant-trusted", "r0", 1, 0, 0), 0);
  CHECK(!a.weight_access);
  CHECK(!b.weight_access); /* a prefix of a listed id is not the id */
  CHECK(t.weight_access);
  const uint32_t D = a.n_embd;
  float *x = calloc(D, 4), *y = calloc(a.vocab > D ? a.vocab : D, 4);
  x[0] = 1.0f; /* one row of the identity: Matmul would return a column of W */
  const int32_t row0 = 0;
  struct wclient *denied[] = {&a, &b};
  for (int i = 0; i < 2; i++) {
    CHECK_EQ_INT(wc_matmul(denied[i], "blk.0.attn_q.weight", x, 1, D, y, D), REALM_E_PERMISSION);
    CHECK_EQ_INT(wc_matmul(denied[i], "output.weight", x, 1, D, y, a.vocab), REALM_E_PERMISSION);
    CHECK_EQ_INT(wc_get_rows(denied[i], "token_embd.weight", &row0, 1, y, D), REALM_E_PERMISSION);
    CHECK_EQ_INT(wc_get_rows(denied[i], "output_norm.weight", &row0, 1, y, D), REALM_E_PERMISSION);
    /* even names that do not exist: the refusal says nothing about what the model has */
    CHECK_EQ_INT(wc_get_rows(denied[i], "no.such.tensor", &row0, 1, y, D), REALM_E_PERMISSION);
  }
  CHECK_EQ_INT(wc_matmul(&t, "blk.0.attn_q.weight", x, 1, D, y, D), 0);
  CHECK_EQ_INT(wc_get_rows(&t, "output_norm.weight", &row0, 1, y, D), 0);
  CHECK(y[0] != 0.0f);
  /* The refused tenant is otherwise served: a Step and an Attention on its own session. */
  uint64_t sa = wc_session_open(&a, 0, NULL);
  CHECK(sa);
  int32_t toks[2] = {1, 403};
  int id = wc_send_step1(&a, sa, toks, 2, 1, 0, 4096);
  Realm__V1__WorkerReply *rp = wc_recv_reply(&a, (uint64_t)id);
  float *l = malloc(sizeof(float) * a.vocab);
  CHECK_EQ_INT(wc_step_logits(&a, rp, 4096, l), 0);
  realm_frame_msg_free(&rp->base);
  const uint32_t KV = D / a.n_head * a.n_head_kv;
  float *q = calloc(D, 4), *k = calloc(KV, 4), *v = calloc(KV, 4), *o = calloc(D, 4);
  CHECK_EQ_INT(wc_attention(&a, sa, 0, 2, 1, q, k, v, o, D, KV), 0);
  free(x), free(y), free(l), free(q), free(k), free(v), free(o);
  wc_close(&a);
  wc_close(&b);
  wc_close(&t);
  fx_stop(&f);
}

/* ---- malformed and hostile messages ---- */

static int raw_send(void *sock, const void *buf, size_t len) {
  return zmq_send(sock, buf, len, 0) == (int)len ? 0 : -1;
}

/* Expects a WorkerReply error with the given request id and code. */
static int expect_error(struct wclient *c, uint64_t rid, int code) {
  Realm__V1__WorkerReply *r = wc_recv(c, 10000);
  int ok = r && r->request_id == rid && wc_reply_code(r) == code;
  if (!ok)
    printf("# expected %s for request %llu, got %s (%s)\n", realm_err_name(code),
           (unsigned long long)rid, r ? realm_err_name(wc_reply_code(r)) : "nothing",
           r && r->error ? r->error->message : c->err);
  realm_frame_msg_free(r ? &r->base : NULL);
  return ok;
}

static int step_entry_error(struct wclient *c, Realm__V1__Step *st, int whole, int entry) {
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  req.body_case = REALM__V1__WORKER_REQUEST__BODY_STEP;
  req.step = st;
  Realm__V1__WorkerReply *r = wc_call(c, &req);
  int got_whole = wc_reply_code(r), got_entry = 0;
  if (r && r->body_case == REALM__V1__WORKER_REPLY__BODY_STEP && r->step->n_results > 0 &&
      r->step->results[0]->error)
    got_entry = realm_proto_error_code(r->step->results[0]->error);
  int ok = got_whole == whole && got_entry == entry;
  if (!ok)
    printf("# step: expected whole=%s entry=%s, got whole=%s entry=%s (%s)\n", realm_err_name(whole),
           realm_err_name(entry), realm_err_name(got_whole), realm_err_name(got_entry),
           r && r->error ? r->error->message : "");
  realm_frame_msg_free(r ? &r->base : NULL);
  return ok;
}

TEST(malformed_messages_get_errors_and_others_keep_being_served) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  CHECK_EQ_INT(fx_start(&f, &cfg), 0);
  struct wclient good, bad, shm;
  CHECK_EQ_INT(wc_open(&good, f.zctx, f.endpoint, "tenant-good", "r0", 1, 0, 0), 0);
  uint64_t sg = wc_session_open(&good, 0, NULL);
  CHECK(sg);
  /* "bad" is a raw DEALER that has not said Hello yet. */
  memset(&bad, 0, sizeof bad);
  CHECK_EQ_INT(realm_ipc_socket_new(f.zctx, ZMQ_DEALER, WC_MAX_PAYLOAD, &bad.sock, bad.err,
                                    sizeof bad.err), 0);
  CHECK_EQ_INT(zmq_connect(bad.sock, f.endpoint), 0);

  /* 1. garbage */
  CHECK_EQ_INT(raw_send(bad.sock, "hello world, not a frame", 24), 0);
  CHECK(expect_error(&bad, 0, REALM_E_PROTOCOL));
  /* 2. a valid StatsRequest frame, re-versioned to 7 */
  Realm__V1__StatsRequest sq;
  realm__v1__stats_request__init(&sq);
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  req.request_id = 5;
  req.body_case = REALM__V1__WORKER_REQUEST__BODY_STATS;
  req.stats = &sq;
  uint8_t buf[256];
  size_t len;
  CHECK_EQ_INT(realm_frame_encode(REALM_FRAME_WORKER_REQUEST, &req.base, buf, sizeof buf, &len,
                                  bad.err, sizeof bad.err), 0);
  uint8_t v7[256];
  memcpy(v7, buf, len);
  v7[4] = 7;
  CHECK_EQ_INT(raw_send(bad.sock, v7, len), 0);
  CHECK(expect_error(&bad, 0, REALM_E_VERSION));
  /* 3. truncated: the header claims more payload than present */
  uint8_t tr[256];
  memcpy(tr, buf, len);
  tr[8] = (uint8_t)(len + 50);
  CHECK_EQ_INT(raw_send(bad.sock, tr, len), 0);
  CHECK(expect_error(&bad, 0, REALM_E_PROTOCOL));
  /* 4. oversized: a length far beyond the limit (checked before the bytes present) */
  uint8_t big[256];
  memcpy(big, buf, len);
  big[8] = 0, big[9] = 0, big[10] = 0, big[11] = 0x7f;
  CHECK_EQ_INT(raw_send(bad.sock, big, len), 0);
  CHECK(expect_error(&bad, 0, REALM_E_TOO_LARGE));
  /* 5. a well-formed request before Hello */
  CHECK_EQ_INT(raw_send(bad.sock, buf, len), 0);
  CHECK(expect_error(&bad, 5, REALM_E_UNAVAILABLE));
  /* 6. an envelope with no body */
  Realm__V1__WorkerRequest empty;
  realm__v1__worker_request__init(&empty);
  empty.request_id = 6;
  CHECK_EQ_INT(realm_ipc_send(bad.sock, NULL, REALM_FRAME_WORKER_REQUEST, &empty.base, 0, bad.err,
                              sizeof bad.err), 0);
  CHECK(expect_error(&bad, 6, REALM_E_PROTOCOL));
  /* 7. a shm client's out-of-range, unaligned and overlapping offsets; bad token ids */
  CHECK_EQ_INT(wc_open(&shm, f.zctx, f.endpoint, "tenant-shm", "r0", 1, 0, 65536), 0);
  uint64_t ss = wc_session_open(&shm, 0, NULL);
  CHECK(ss);
  Realm__V1__StepEntry e;
  realm__v1__step_entry__init(&e);
  Realm__V1__StepEntry *ep = &e;
  Realm__V1__Step st;
  realm__v1__step__init(&st);
  st.n_entries = 1;
  st.entries = &ep;
  e.session_id = ss;
  e.n_tokens = 2;
  e.n_logits = 1;
  ((int32_t *)shm.base)[0] = 1, ((int32_t *)shm.base)[1] = 2;
  e.logits_offset = 65536 - 64; /* a whole row does not fit */
  CHECK(step_entry_error(&shm, &st, REALM_E_OUT_OF_RANGE, 0));
  e.logits_offset = 4096;
  e.tokens_offset = UINT64_MAX - 63; /* wraps */
  CHECK(step_entry_error(&shm, &st, REALM_E_OUT_OF_RANGE, 0));
  e.tokens_offset = 4; /* unaligned */
  CHECK(step_entry_error(&shm, &st, REALM_E_INVALID_ARGUMENT, 0));
  e.tokens_offset = 4096; /* inside the logits output */
  CHECK(step_entry_error(&shm, &st, REALM_E_INVALID_ARGUMENT, 0));
  e.tokens_offset = 0;
  e.n_tokens = 0;
  CHECK(step_entry_error(&shm, &st, REALM_E_INVALID_ARGUMENT, 0));
  e.n_tokens = 2;
  ((int32_t *)shm.base)[1] = (int32_t)shm.vocab; /* id == vocab_size */
  CHECK(step_entry_error(&shm, &st, 0, REALM_E_OUT_OF_RANGE));
  ((int32_t *)shm.base)[1] = -1;
  CHECK(step_entry_error(&shm, &st, 0, REALM_E_OUT_OF_RANGE));
  /* too many entries */
  Realm__V1__StepEntry *many[65];
  for (int i = 0; i < 65; i++) many[i] = &e;
  st.entries = many;
  st.n_entries = 65;
  CHECK(step_entry_error(&shm, &st, REALM_E_INVALID_ARGUMENT, 0));
  /* the failed steps left the session empty */
  st.entries = &ep;
  st.n_entries = 1;
  ((int32_t *)shm.base)[1] = 2;
  Realm__V1__WorkerRequest sr;
  realm__v1__worker_request__init(&sr);
  sr.body_case = REALM__V1__WORKER_REQUEST__BODY_STEP;
  sr.step = &st;
  Realm__V1__WorkerReply *r = wc_call(&shm, &sr);
  CHECK(r && r->body_case == REALM__V1__WORKER_REPLY__BODY_STEP);
  CHECK_EQ_INT(r->step->results[0]->n_past, 2);
  realm_frame_msg_free(&r->base);

  /* The well-behaved client is still served, with the engine's logits. */
  struct ref rf;
  CHECK_EQ_INT(ref_open(&rf), 0);
  struct kv_seq *rs;
  CHECK_EQ_INT(kv_seq_open(engine_kv(rf.e), NULL, &rs), 0);
  int32_t t[] = {1, 403, 407};
  float *l = malloc(sizeof(float) * good.vocab), *el = malloc(sizeof(float) * good.vocab);
  int id = wc_send_step1(&good, sg, t, 3, 1, 0, 0);
  r = wc_recv_reply(&good, (uint64_t)id);
  CHECK_EQ_INT(wc_step_logits(&good, r, 0, l), 0);
  realm_frame_msg_free(&r->base);
  CHECK_EQ_INT(ref_step(&rf, rs, t, 3, el), 0);
  CHECK_NEAR(realm_test_max_abs_diff(l, el, good.vocab), 0, TOL);
  kv_seq_close(engine_kv(rf.e), rs);
  ref_close(&rf);
  free(l);
  free(el);
  wc_close(&shm);
  wc_close(&good);
  realm_ipc_socket_close(bad.sock);
  fx_stop(&f);
}

/* ---- fairness ---- */

static uint64_t tenant_tokens(struct wclient *c) {
  Realm__V1__WorkerReply *r = wc_stats(c);
  uint64_t n = r && r->body_case == REALM__V1__WORKER_REPLY__BODY_STATS && r->stats->n_tenants == 1
                   ? r->stats->tenants[0]->tokens_total
                   : UINT64_MAX;
  realm_frame_msg_free(r ? &r->base : NULL);
  return n;
}

TEST(flooding_tenant_cannot_starve_another) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  cfg.batch_tokens = 64;
  cfg.prefill_chunk = 32;
  cfg.batch_window_us = 100;
  CHECK_EQ_INT(fx_start(&f, &cfg), 0);
  struct wclient a, b;
  /* Weights 2:1, so B's fair share is 1/3 of the tokens while both are backlogged. */
  CHECK_EQ_INT(wc_open(&a, f.zctx, f.endpoint, "flood", "r0", 2, 0, 0), 0);
  CHECK_EQ_INT(wc_open(&b, f.zctx, f.endpoint, "modest", "r0", 1, 0, 0), 0);
  CHECK_EQ_INT(a.weight, 2);
  enum { NA = 8, PROMPT_A = 480, PROMPT_B = 96, STEPS_B = 5 };
  uint64_t sa[NA];
  /* Sessions reserve their whole max_tokens when they open (admit.c): ask for what each
   * will hold (8 x 30 + 30 pages; the default pool is 8 contexts, 1024 pages here). */
  for (int i = 0; i < NA; i++) CHECK((sa[i] = wc_session_open(&a, PROMPT_A, NULL)) != 0);
  uint64_t sb = wc_session_open(&b, PROMPT_B * STEPS_B, NULL);
  CHECK(sb);
  static int32_t toks[PROMPT_A];
  for (int i = 0; i < PROMPT_A; i++) toks[i] = 1 + (i * 7) % 400;
  /* A floods: one Step, 8 sessions x 480 prompt tokens = 3840 tokens. */
  Realm__V1__StepEntry ea[NA], *eap[NA];
  for (int i = 0; i < NA; i++) {
    realm__v1__step_entry__init(&ea[i]);
    ea[i].session_id = sa[i];
    ea[i].n_tokens = PROMPT_A;
    ea[i].n_tokens_inline = PROMPT_A;
    ea[i].tokens_inline = toks;
    ea[i].n_logits = 1;
    eap[i] = &ea[i];
  }
  Realm__V1__Step st;
  Realm__V1__WorkerRequest req;
  wc_step_request(&req, &st, eap, NA);
  CHECK_EQ_INT(wc_send(&a, &req), 0);
  uint64_t flood_id = req.request_id;
  /* B runs STEPS_B prompts of 96 tokens, one at a time. */
  for (int s = 0; s < STEPS_B; s++) {
    int id = wc_send_step1(&b, sb, toks + s * PROMPT_B, PROMPT_B, 1, 0, 0);
    Realm__V1__WorkerReply *r = wc_recv_reply(&b, (uint64_t)id);
    CHECK(r && r->body_case == REALM__V1__WORKER_REPLY__BODY_STEP);
    CHECK(r->step->results[0]->error == NULL);
    realm_frame_msg_free(&r->base);
  }
  uint64_t tb = tenant_tokens(&b), ta = tenant_tokens(&a);
  CHECK_EQ_INT(tb, PROMPT_B * STEPS_B);
  CHECK(ta != UINT64_MAX);
  double share = (double)tb / (double)(ta + tb);
  printf("# B served %llu tokens while A was served %llu: share %.3f (fair 0.333)\n",
         (unsigned long long)tb, (unsigned long long)ta, share);
  CHECK(ta < (uint64_t)NA * PROMPT_A); /* A was still backlogged the whole time */
  CHECK(share >= (1.0 / 3) / 2 && share <= (1.0 / 3) * 2);
  /* The flood completes too, each entry with its logits. */
  Realm__V1__WorkerReply *r = wc_recv_reply(&a, flood_id);
  CHECK(r && r->body_case == REALM__V1__WORKER_REPLY__BODY_STEP);
  CHECK_EQ_INT(r->step->n_results, NA);
  for (int i = 0; i < NA; i++) CHECK_EQ_INT(r->step->results[i]->n_past, PROMPT_A);
  realm_frame_msg_free(&r->base);
  wc_close(&a);
  wc_close(&b);
  fx_stop(&f);
}

/* ---- idle connections ---- */

struct gstats {
  uint32_t connections;
  uint64_t kv_pages_used;
};

static int global_stats(struct wclient *c, struct gstats *g) {
  Realm__V1__WorkerReply *r = wc_stats(c);
  int ok = r && r->body_case == REALM__V1__WORKER_REPLY__BODY_STATS;
  if (ok) {
    g->connections = r->stats->connections;
    g->kv_pages_used = r->stats->kv_pages_used;
  }
  realm_frame_msg_free(r ? &r->base : NULL);
  return ok ? 0 : -1;
}

/* A connection without sessions is dropped after --idle-timeout, one with sessions after the
 * longer --idle-session-timeout (its KV pages return to the pool); a busy one stays. An
 * observer polls Stats (bounded: at most 10 s) and must see the states in that order. */
TEST(idle_connections_are_dropped_and_their_sessions_freed) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  /* Short enough to keep the test quick, long enough that the observer (a request every
   * 20 ms) is never idle for a whole timeout even when the test machine is loaded. */
  cfg.idle_timeout_ms = 400;
  cfg.idle_session_timeout_ms = 2500;
  CHECK_EQ_INT(fx_start(&f, &cfg), 0);
  struct wclient quiet, holder, obs;
  CHECK_EQ_INT(wc_open(&quiet, f.zctx, f.endpoint, "tenant-quiet", "r0", 1, 0, 0), 0);
  CHECK_EQ_INT(wc_open(&holder, f.zctx, f.endpoint, "tenant-holder", "r0", 1, 0, 0), 0);
  uint64_t sh = wc_session_open(&holder, 0, NULL);
  CHECK(sh);
  int32_t t[20];
  for (int i = 0; i < 20; i++) t[i] = 1 + i;
  int id = wc_send_step1(&holder, sh, t, 20, 1, 0, 0);
  Realm__V1__WorkerReply *r = wc_recv_reply(&holder, (uint64_t)id);
  float *l = malloc(sizeof(float) * holder.vocab);
  CHECK_EQ_INT(wc_step_logits(&holder, r, 0, l), 0);
  realm_frame_msg_free(&r->base);
  CHECK_EQ_INT(wc_open(&obs, f.zctx, f.endpoint, "tenant-obs", "r0", 1, 0, 0), 0);
  /* States: 3 connections → 2 (quiet gone, holder's pages still held) → 1 (pages freed). */
  bool saw_two_with_pages = false, saw_one_freed = false;
  struct gstats g = {0};
  for (int i = 0; i < 1000 && !saw_one_freed; i++) {
    CHECK_EQ_INT(global_stats(&obs, &g), 0);
    if (g.connections == 2 && g.kv_pages_used == 2) saw_two_with_pages = true;
    if (g.connections == 1 && g.kv_pages_used == 0) saw_one_freed = true;
    CHECK(g.connections >= 1); /* the observer, busy all along, is never dropped */
    if (!saw_one_freed) zmq_poll(NULL, 0, 20); /* pace the observer's requests */
  }
  CHECK(saw_two_with_pages);
  CHECK(saw_one_freed);
  /* Both dropped connections must say Hello again: their next request is "unavailable". */
  r = wc_stats(&quiet);
  CHECK_EQ_INT(wc_reply_code(r), REALM_E_UNAVAILABLE);
  realm_frame_msg_free(&r->base);
  id = wc_send_step1(&holder, sh, t, 1, 1, 0, 0);
  r = wc_recv_reply(&holder, (uint64_t)id);
  CHECK_EQ_INT(wc_reply_code(r), REALM_E_UNAVAILABLE);
  realm_frame_msg_free(&r->base);
  free(l);
  wc_close(&quiet);
  wc_close(&holder);
  wc_close(&obs);
  fx_stop(&f);
}

/* ---- a failed compute backend ---- */

/* A backend failure (injected: what engine_forward returns when the CUDA device is gone)
 * answers every in-flight request "unavailable" naming the cause, sends every connection a
 * notice, and worker_run returns REALM_E_UNAVAILABLE (realm-worker exits 69 on it). */
TEST(backend_failure_fails_everything_unavailable_and_stops) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  cfg.batch_window_us = 10000000; /* Steps wait until every connection has one queued */
  CHECK_EQ_INT(fx_start(&f, &cfg), 0);
  struct wclient a, b;
  CHECK_EQ_INT(wc_open(&a, f.zctx, f.endpoint, "tenant-a", "r0", 1, 0, 1 << 20), 0);
  CHECK_EQ_INT(wc_open(&b, f.zctx, f.endpoint, "tenant-b", "r0", 1, 0, 0), 0);
  uint64_t sa = wc_session_open(&a, 0, NULL), sb = wc_session_open(&b, 0, NULL);
  CHECK(sa && sb);
  worker_inject_backend_failure(f.w);
  int32_t t[] = {1, 403, 407};
  int ida = wc_send_step1(&a, sa, t, 3, 1, 0, 4096);
  int idb = wc_send_step1(&b, sb, t, 3, 1, 0, 0);
  CHECK(ida > 0 && idb > 0);
  struct wclient *cs[] = {&a, &b};
  int ids[] = {ida, idb};
  for (int i = 0; i < 2; i++) {
    bool got_reply = false, got_notice = false;
    for (int k = 0; k < 4 && !(got_reply && got_notice); k++) {
      Realm__V1__WorkerReply *r = wc_recv(cs[i], 10000);
      if (!r) break;
      const Realm__V1__Error *e = NULL;
      if (r->body_case == REALM__V1__WORKER_REPLY__BODY_ERROR) e = r->error;
      else if (r->body_case == REALM__V1__WORKER_REPLY__BODY_STEP && r->step->n_results == 1)
        e = r->step->results[0]->error;
      bool unavailable = e && realm_proto_error_code(e) == REALM_E_UNAVAILABLE &&
                         strstr(e->message, "injected backend failure");
      if (r->request_id == (uint64_t)ids[i] && unavailable) got_reply = true;
      if (r->request_id == 0 && unavailable) got_notice = true;
      realm_frame_msg_free(&r->base);
    }
    CHECK(got_reply);
    CHECK(got_notice);
  }
  pthread_join(f.th, NULL); /* the loop returned by itself */
  CHECK_EQ_INT(f.run_rc, REALM_E_UNAVAILABLE);
  worker_destroy(f.w);
  f.w = NULL;
  wc_close(&a);
  wc_close(&b);
  zmq_ctx_term(f.zctx);
  char p[128];
  snprintf(p, sizeof p, "%s/w.sock.shm", f.dir);
  unlink(p);
  snprintf(p, sizeof p, "%s/w.sock", f.dir);
  unlink(p);
  rmdir(f.dir);
}

/* ---- KV pages are zero when they reach a new sequence ---- */

TEST(kv_blocks_are_zeroed_before_reuse) {
  char err[256];
  struct kv_cache *kv;
  struct kv_cache_config kc = {.n_layer = 2, .kv_dim = 8, .block_tokens = 4, .n_blocks = 2,
                               .max_seq_tokens = 8};
  CHECK_EQ_INT(kv_cache_create(&kc, &kv, err, sizeof err), 0);
  struct kv_quota qa = {.max_blocks = 2}, qb = {.max_blocks = 2};
  struct kv_seq *a, *b;
  CHECK_EQ_INT(kv_seq_open(kv, &qa, &a), 0);
  CHECK_EQ_INT(kv_seq_reserve(kv, a, 8), 0);
  for (uint32_t l = 0; l < 2; l++)
    for (uint32_t p = 0; p < 8; p++)
      for (uint32_t i = 0; i < 8; i++) kv_k(kv, a, l, p)[i] = kv_v(kv, a, l, p)[i] = 42.0f;
  kv_seq_set_len(kv, a, 8);
  kv_seq_close(kv, a); /* tenant A's secrets go back to the pool */
  CHECK_EQ_INT(kv_cache_free_blocks(kv), 2);
  CHECK_EQ_INT(kv_seq_open(kv, &qb, &b), 0);
  CHECK_EQ_INT(kv_seq_reserve(kv, b, 8), 0); /* the same two blocks */
  for (uint32_t l = 0; l < 2; l++)
    for (uint32_t p = 0; p < 8; p++)
      for (uint32_t i = 0; i < 8; i++) {
        CHECK(kv_k(kv, b, l, p)[i] == 0.0f);
        CHECK(kv_v(kv, b, l, p)[i] == 0.0f);
      }
  kv_seq_close(kv, b);
  kv_cache_destroy(kv);
}

/* ---- the step lane (docs/protocol.md §6.2) ---- */

/* A client whose Steps take the lane and one whose Steps take the socket interleave; both
 * get the engine's logits, and only the lane client's Steps are counted as lane Steps. */
TEST(step_lane_and_socket_clients_match_engine) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  CHECK_EQ_INT(fx_start(&f, &cfg), 0);
  struct ref r;
  CHECK_EQ_INT(ref_open(&r), 0);
  struct wclient a, b;
  CHECK_EQ_INT(wc_open_lane(&a, f.zctx, f.endpoint, "tenant-a", "r0", 1, 0, 1 << 20), 0);
  CHECK_EQ_INT(wc_open(&b, f.zctx, f.endpoint, "tenant-b", "r0", 1, 0, 1 << 20), 0);
  CHECK(a.lane.base != NULL);
  CHECK(b.lane.base == NULL);
  /* The lane follows the data the Hello granted. */
  CHECK(a.lane.base == a.base + (1 << 20));
  CHECK_EQ_INT(realm_shm_size(a.shm), (1 << 20) + REALM_LANE_BYTES);
  interleave_two_clients(&r, &a, &b, 4096);
  CHECK(!a.lane.busy);
  Realm__V1__WorkerReply *sr = wc_stats(&b);
  CHECK(sr && sr->body_case == REALM__V1__WORKER_REPLY__BODY_STATS);
  CHECK_EQ_INT(sr->stats->lane_steps_total, 4);
  realm_frame_msg_free(&sr->base);
  wc_close(&a);
  wc_close(&b);
  ref_close(&r);
  fx_stop(&f);
}

/* Posts raw bytes into the lane as a hostile runner would: len may lie, seq bumps. */
static void lane_post_raw(struct wclient *c, const void *bytes, uint32_t n, uint32_t claimed_len) {
  uint32_t *line = (uint32_t *)(void *)c->lane.base;
  memcpy(c->lane.base + REALM_LANE_REQ_OFF, bytes, n);
  __atomic_store_n(&line[1], claimed_len, __ATOMIC_RELAXED);
  __atomic_store_n(&line[0], c->lane.seq + 1, __ATOMIC_RELEASE);
  c->lane.seq++;
  c->lane.busy = true;
  uint64_t one = 1;
  CHECK_EQ_INT(write(c->lane.to_worker, &one, sizeof one), 8);
}

/* What a hostile runner can put in its lane gets an error reply through the lane, and the
 * worker goes on serving it and everyone else; a Step cannot aim its logits at the lane. */
TEST(step_lane_refuses_garbage_and_non_steps) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  CHECK_EQ_INT(fx_start(&f, &cfg), 0);
  struct wclient a, b;
  CHECK_EQ_INT(wc_open_lane(&a, f.zctx, f.endpoint, "tenant-a", "r0", 1, 0, 1 << 20), 0);
  CHECK_EQ_INT(wc_open_lane(&b, f.zctx, f.endpoint, "tenant-b", "r0", 1, 0, 1 << 20), 0);
  CHECK(a.lane.base && b.lane.base);
  /* 1. Not a frame at all. */
  lane_post_raw(&a, "garbage!", 8, 8);
  Realm__V1__WorkerReply *r = wc_recv(&a, 10000);
  CHECK_EQ_INT(wc_reply_code(r), REALM_E_PROTOCOL);
  CHECK(r && r->error && r->error->param && strcmp(r->error->param, "step_lane") == 0);
  realm_frame_msg_free(r ? &r->base : NULL);
  /* 2. A length beyond the slot: refused without reading past it. */
  lane_post_raw(&a, "x", 1, REALM_LANE_REQ_CAP + 1);
  r = wc_recv(&a, 10000);
  CHECK_EQ_INT(wc_reply_code(r), REALM_E_TOO_LARGE);
  realm_frame_msg_free(r ? &r->base : NULL);
  /* 3. A well-formed request that is not a Step. */
  Realm__V1__StatsRequest sq;
  realm__v1__stats_request__init(&sq);
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  req.request_id = 77;
  req.body_case = REALM__V1__WORKER_REQUEST__BODY_STATS;
  req.stats = &sq;
  char err[256];
  CHECK_EQ_INT(realm_lane_post(&a.lane, &req.base, err, sizeof err), 0);
  CHECK_EQ_INT(realm_lane_post(&a.lane, &req.base, err, sizeof err), REALM_E_UNAVAILABLE);
  CHECK(expect_error(&a, 77, REALM_E_PROTOCOL));
  /* 4. A Step whose logits would land in the lane itself: out of range, lane intact. */
  uint64_t sa = wc_session_open(&a, 0, NULL);
  CHECK(sa != 0);
  int32_t t[] = {1, 5, 6};
  int id = wc_send_step1(&a, sa, t, 3, 1, 0, 1 << 20);
  r = wc_recv_reply(&a, (uint64_t)id);
  float *row = malloc(sizeof(float) * a.vocab);
  CHECK_EQ_INT(wc_step_logits(&a, r, 1 << 20, row), REALM_E_OUT_OF_RANGE);
  free(row);
  realm_frame_msg_free(r ? &r->base : NULL);
  /* 5. Another connection's session through the lane: not found, never its data. */
  uint64_t sb = wc_session_open(&b, 0, NULL);
  CHECK(sb != 0);
  id = wc_send_step1(&a, sb + (1ull << 32), t, 3, 1, 0, 4096);
  r = wc_recv_reply(&a, (uint64_t)id);
  CHECK(r && r->step && r->step->results[0]->error != NULL);
  CHECK_EQ_INT(r && r->step ? realm_proto_error_code(r->step->results[0]->error) : 0,
               REALM_E_NOT_FOUND);
  realm_frame_msg_free(r ? &r->base : NULL);
  /* Both still served, through their lanes. */
  CHECK_EQ_INT(wc_step_one(&a, sa, t, 3), 0);
  CHECK_EQ_INT(wc_step_one(&b, sb, t, 3), 0);
  wc_close(&a);
  wc_close(&b);
  fx_stop(&f);
}

/* --step-lane false: a runner asking for a lane gets none and its Steps take the socket. */
TEST(step_lane_off_falls_back_to_the_socket) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  cfg.step_lane = false;
  cfg.spin_us = 0;
  CHECK_EQ_INT(fx_start(&f, &cfg), 0);
  struct wclient a;
  CHECK_EQ_INT(wc_open_lane(&a, f.zctx, f.endpoint, "tenant-a", "r0", 1, 0, 1 << 20), 0);
  CHECK(a.lane.base == NULL);
  CHECK_EQ_INT(realm_shm_size(a.shm), 1 << 20);
  uint64_t sa = wc_session_open(&a, 0, NULL);
  int32_t t[] = {1, 5, 6};
  CHECK_EQ_INT(wc_step_one(&a, sa, t, 3), 0);
  Realm__V1__WorkerReply *sr = wc_stats(&a);
  CHECK(sr && sr->body_case == REALM__V1__WORKER_REPLY__BODY_STATS);
  CHECK_EQ_INT(sr ? sr->stats->lane_steps_total : 99, 0);
  CHECK(sr && sr->stats->steps_total >= 1);
  realm_frame_msg_free(sr ? &sr->base : NULL);
  wc_close(&a);
  fx_stop(&f);
}

/* Three sequences in one Step: with rows back to back in order the engine writes them in
 * place (sched.c direct_logits), in reverse order they are copied; either way each row is
 * its own sequence's, as the engine computes it. */
TEST(multi_entry_step_rows_land_where_asked) {
  struct fx f;
  struct worker_config cfg;
  fx_config(&f, &cfg);
  CHECK_EQ_INT(fx_start(&f, &cfg), 0);
  struct ref r;
  CHECK_EQ_INT(ref_open(&r), 0);
  struct wclient a;
  CHECK_EQ_INT(wc_open_lane(&a, f.zctx, f.endpoint, "tenant-a", "r0", 1, 0, 1 << 20), 0);
  const uint32_t V = a.vocab, N = 3;
  const uint64_t row = (uint64_t)V * sizeof(float), log0 = 4096;
  uint64_t sid[3];
  struct kv_seq *rs[3];
  for (uint32_t k = 0; k < N; k++) {
    sid[k] = wc_session_open(&a, 0, NULL);
    CHECK(sid[k] != 0);
    CHECK_EQ_INT(kv_seq_open(engine_kv(r.e), NULL, &rs[k]), 0);
  }
  float *want = malloc(sizeof(float) * V);
  for (int pass = 0; pass < 2; pass++) {
    Realm__V1__StepEntry e[3], *ep[3];
    int32_t tok[3][2];
    for (uint32_t k = 0; k < N; k++) {
      /* pass 0: a 2-token prompt each; pass 1: one token each, rows reversed */
      uint32_t n = pass == 0 ? 2 : 1;
      tok[k][0] = 1 + 40 * (int32_t)k + pass, tok[k][1] = 7 + (int32_t)k;
      memcpy(a.base + 64 * k, tok[k], sizeof(int32_t) * n);
      realm__v1__step_entry__init(&e[k]);
      e[k].session_id = sid[k];
      e[k].n_tokens = n;
      e[k].tokens_offset = 64 * k;
      e[k].n_logits = 1;
      e[k].logits_offset = log0 + row * (pass == 0 ? k : N - 1 - k);
      ep[k] = &e[k];
    }
    Realm__V1__Step st;
    Realm__V1__WorkerRequest req;
    wc_step_request(&req, &st, ep, N);
    Realm__V1__WorkerReply *rep = wc_call(&a, &req);
    CHECK(rep && rep->body_case == REALM__V1__WORKER_REPLY__BODY_STEP);
    for (uint32_t k = 0; rep && rep->step && k < N; k++) CHECK(rep->step->results[k]->error == NULL);
    realm_frame_msg_free(rep ? &rep->base : NULL);
    for (uint32_t k = 0; k < N; k++) {
      CHECK_EQ_INT(ref_step(&r, rs[k], tok[k], pass == 0 ? 2 : 1, want), 0);
      const float *got = (const float *)(a.base + e[k].logits_offset);
      CHECK_NEAR(realm_test_max_abs_diff(got, want, V), 0, TOL);
    }
  }
  for (uint32_t k = 0; k < N; k++) kv_seq_close(engine_kv(r.e), rs[k]);
  free(want);
  wc_close(&a);
  ref_close(&r);
  fx_stop(&f);
}

/* The spins' options: their defaults, both set, and a pool spin under its 50 µs floor
 * refused naming the option. */
TEST(spin_options_parse) {
  struct worker_config cfg;
  char err[256] = "";
  char *def[] = {"realm-worker", "--model", "m.gguf"};
  CHECK_EQ_INT(worker_options_parse(3, def, &cfg, err, sizeof err), 0);
  CHECK_EQ_INT(cfg.spin_us, 500);
  CHECK_EQ_INT(cfg.pool_spin_us, 500);
  char *set[] = {"realm-worker", "--model", "m.gguf", "--spin-us", "0", "--pool-spin-us", "2000"};
  CHECK_EQ_INT(worker_options_parse(7, set, &cfg, err, sizeof err), 0);
  CHECK_EQ_INT(cfg.spin_us, 0);
  CHECK_EQ_INT(cfg.pool_spin_us, 2000);
  char *bad[] = {"realm-worker", "--model", "m.gguf", "--pool-spin-us", "10"};
  CHECK_EQ_INT(worker_options_parse(5, bad, &cfg, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  printf("# %s\n", err);
  CHECK(strstr(err, "pool-spin-us") != NULL);
}
