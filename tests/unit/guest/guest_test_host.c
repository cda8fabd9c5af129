/*
 * guest_test_host.c — the runner + worker test double behind test_default_guest.c.
 *
 * One struct gth per test program: stories260K.gguf read with the GGUF reader, bound by the
 * engine (CPU, one thread, a small KV pool), the vocabulary arrays served to the guest, and one
 * sandbox instance of default.wasm. gth_run drives a request exactly as the ABI describes
 * (feed_tokens queues input; the host forwards the queue and calls realm_on_logits with the
 * logits of its last token; a returned token is queued next) with a hard bound on steps so a
 * misbehaving guest cannot hang the test. The metadata and merge callbacks serve the GGUF file
 * the way a runner is expected to (realm_guest.h, REALM_META_*: strings as stored, booleans
 * "true"/"false", integers in decimal); struct gth_opts switches them off to test the guest's
 * fallbacks.
 */
#include "guest_test_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "gguf.h"
#include "llama.h"
#include "realm/error.h"
#include "tokenizer.h"

#define GTH_MAX_STEPS 2100 /* above the guest's default limit for this model's context */
#define GTH_MAX_ACTIVE 4

struct gth {
  struct gguf_file *f;
  struct engine_model *m;
  struct engine *e;
  uint32_t n_vocab, n_ctx;
  int32_t bos, eos;
  uint32_t vocab_kind; /* REALM_GUEST_VOCAB_* */
  const struct gguf_kv *kv_tokens;
  float *scores;   /* [n_vocab] */
  int32_t *types;  /* [n_vocab] */
  struct tok_bytes *tok_texts;
  struct tok *native;
  struct gth_opts opts;
  const struct gguf_kv *kv_merges; /* tokenizer.ggml.merges or NULL */
  uint64_t merge_calls;
  char meta_buf[64];               /* a non-string value rendered as text */
  struct sandbox_module *module;
  struct sandbox_instance *inst;
  struct sandbox_host host;
  uint64_t piece_calls;
  /* the requests being run (interleaved when several) */
  uint32_t next_id;
  struct gth_act {
    uint32_t id;
    struct gth_result *res;
    int32_t pending[GTH_MAX_TOKENS];
    uint32_t n_pending;
    int feeds;
    int done;
    struct kv_seq *seq;
  } act[GTH_MAX_ACTIVE];
  uint32_t n_act;
  int32_t force[64];
  uint32_t n_force, i_force;
};

static int utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i], need, min;
    if (c < 0x80) { i++; continue; }
    if (c >= 0xc2 && c <= 0xdf) { need = 1; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { need = 2; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { need = 3; min = 0x10000; }
    else return 0;
    if (n - i <= need) return 0;
    unsigned cp = c & (0x3f >> need);
    for (unsigned k = 1; k <= need; k++) {
      if ((p[i + k] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (p[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    i += need + 1;
  }
  return 1;
}

static struct gth_act *act_of(struct gth *g, uint32_t req_id) {
  for (uint32_t i = 0; i < g->n_act; i++)
    if (g->act[i].id == req_id) return &g->act[i];
  return NULL;
}

static void append_text(struct gth_result *r, const char *text, uint32_t len) {
  if (!utf8_valid(text, len)) r->bad_utf8_chunk = 1;
  size_t room = sizeof r->text - 1 - r->text_len;
  size_t n = len < room ? len : room;
  memcpy(r->text + r->text_len, text, n);
  r->text_len += n;
  r->text[r->text_len] = '\0';
}

/* ---- host callbacks ---- */

static int cb_model_info(void *user, struct realm_model_info *out) {
  struct gth *g = user;
  memset(out, 0, sizeof *out);
  out->struct_bytes = sizeof *out;
  out->n_vocab = g->n_vocab;
  out->bos = g->bos;
  out->eos = g->eos;
  out->n_ctx = g->n_ctx;
  out->n_embd = g->m ? g->m->hp.dim : 0;
  out->n_layer = g->m ? g->m->hp.n_layer : 0;
  out->vocab_kind = g->vocab_kind;
  snprintf(out->arch, sizeof out->arch, "llama");
  return 0;
}

static int cb_token_piece(void *user, int32_t token, const char **ret_piece, uint32_t *ret_len) {
  struct gth *g = user;
  g->piece_calls++;
  if (token < 0 || (uint32_t)token >= g->n_vocab) return REALM_GUEST_E_NOT_FOUND;
  *ret_piece = g->tok_texts[token].data;
  *ret_len = g->tok_texts[token].len;
  return 0;
}

static int cb_token_info(void *user, int32_t token, struct realm_token_info *out) {
  struct gth *g = user;
  if (token < 0 || (uint32_t)token >= g->n_vocab) return REALM_GUEST_E_NOT_FOUND;
  out->score = g->scores[token];
  out->kind = g->types[token];
  return 0;
}

static int cb_feed_tokens(void *user, uint32_t req_id, const int32_t *tokens, uint32_t n) {
  struct gth *g = user;
  struct gth_act *a = act_of(g, req_id);
  if (!a || n > GTH_MAX_TOKENS - a->n_pending) return REALM_GUEST_E_INVALID;
  for (uint32_t i = 0; i < n; i++)
    if (tokens[i] < 0 || (uint32_t)tokens[i] >= g->n_vocab) return REALM_GUEST_E_INVALID;
  memcpy(a->pending + a->n_pending, tokens, n * sizeof *tokens);
  a->n_pending += n;
  if (a->feeds++ == 0) {
    memcpy(a->res->fed, tokens, n * sizeof *tokens);
    a->res->n_fed = n;
  }
  return 0;
}

static int cb_emit_text(void *user, uint32_t req_id, const char *text, uint32_t len) {
  struct gth_act *a = act_of(user, req_id);
  if (!a) return REALM_GUEST_E_INVALID;
  append_text(a->res, text, len);
  return 0;
}

static int cb_emit_token(void *user, uint32_t req_id, int32_t token, float logprob,
                         const char *text, uint32_t len) {
  struct gth_act *a = act_of(user, req_id);
  if (!a) return REALM_GUEST_E_INVALID;
  struct gth_result *r = a->res;
  if (r->n_tokens < GTH_MAX_TOKENS) {
    r->tokens[r->n_tokens] = token;
    r->logprobs[r->n_tokens] = logprob;
  }
  r->n_tokens++;
  if (len == 0) r->n_empty_token_text++;
  append_text(r, text, len);
  return 0;
}

static void cb_log(void *user, int level, const char *msg, uint32_t len) {
  struct gth *g = user;
  (void)level;
  /* A line goes to every active request's log. */
  for (uint32_t i = 0; i < g->n_act; i++) {
    struct gth_result *r = g->act[i].res;
    size_t used = strlen(r->log), room = sizeof r->log - 1 - used;
    snprintf(r->log + used, room + 1, "%.*s\n", (int)len, msg);
  }
}

/* Serves any scalar or string key of the file (arrays are not metadata values). */
static int cb_model_meta(void *user, const char *key, const char **ret_value, uint32_t *ret_len) {
  struct gth *g = user;
  if (g->opts.chat_template && strcmp(key, REALM_META_CHAT_TEMPLATE) == 0) {
    *ret_value = g->opts.chat_template;
    *ret_len = (uint32_t)strlen(g->opts.chat_template);
    return 0;
  }
  const struct gguf_kv *kv = gguf_find_kv(g->f, key);
  if (!kv) return REALM_GUEST_E_NOT_FOUND;
  int n;
  switch (kv->type) {
  case GGUF_VALUE_STRING:
    *ret_value = kv->v.str.data;
    *ret_len = (uint32_t)kv->v.str.len;
    return 0;
  case GGUF_VALUE_BOOL:
    n = snprintf(g->meta_buf, sizeof g->meta_buf, "%s", kv->v.u64 ? "true" : "false");
    break;
  case GGUF_VALUE_UINT8: case GGUF_VALUE_UINT16: case GGUF_VALUE_UINT32: case GGUF_VALUE_UINT64:
    n = snprintf(g->meta_buf, sizeof g->meta_buf, "%llu", (unsigned long long)kv->v.u64);
    break;
  case GGUF_VALUE_INT8: case GGUF_VALUE_INT16: case GGUF_VALUE_INT32: case GGUF_VALUE_INT64:
    n = snprintf(g->meta_buf, sizeof g->meta_buf, "%lld", (long long)kv->v.i64);
    break;
  case GGUF_VALUE_FLOAT32: case GGUF_VALUE_FLOAT64:
    n = snprintf(g->meta_buf, sizeof g->meta_buf, "%.9g", kv->v.f64);
    break;
  default:
    return REALM_GUEST_E_NOT_FOUND;
  }
  *ret_value = g->meta_buf;
  *ret_len = (uint32_t)n;
  return 0;
}

static int cb_merge_count(void *user) {
  struct gth *g = user;
  return g->kv_merges ? (int)g->kv_merges->v.arr.count : 0;
}

static int cb_merge(void *user, uint32_t i, const char **ret_merge, uint32_t *ret_len) {
  struct gth *g = user;
  g->merge_calls++;
  if (!g->kv_merges || i >= g->kv_merges->v.arr.count) return REALM_GUEST_E_NOT_FOUND;
  struct gguf_str m = gguf_arr_str(g->kv_merges, i);
  *ret_merge = m.data;
  *ret_len = (uint32_t)m.len;
  return 0;
}

static int cb_emit_top_logprobs(void *user, uint32_t req_id, const struct realm_top_logprob *top,
                                uint32_t n) {
  struct gth_act *a = act_of(user, req_id);
  if (!a || n > REALM_GUEST_MAX_TOP_LOGPROBS) return REALM_GUEST_E_INVALID;
  struct gth_result *r = a->res;
  r->top_calls++;
  if (r->n_tokens == 0) {
    r->top_before_token = 1;
    return 0;
  }
  uint32_t at = r->n_tokens - 1; /* belongs to the token emitted last */
  if (at < GTH_MAX_TOP_TOKENS) {
    memcpy(r->top[at], top, n * sizeof *top);
    r->n_top[at] = n;
  }
  return 0;
}

static int cb_finish(void *user, uint32_t req_id, int32_t reason) {
  struct gth_act *a = act_of(user, req_id);
  if (!a) return REALM_GUEST_E_INVALID;
  a->res->finish_cb = reason;
  return 0;
}

/* ---- setup ---- */

static int32_t kv_id(const struct gguf_file *f, const char *key, int32_t dflt) {
  uint32_t id;
  return gguf_get_u32(f, key, &id) == 0 ? (int32_t)id : dflt;
}

/* Opens models_dir/REL; with_engine binds the model too. */
static int open_common(const char *rel, int with_engine, uint32_t call_ms,
                       const struct gth_opts *opts, struct gth **ret, char *err, size_t errlen) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s",
           getenv("REALM_MODELS_DIR") ? getenv("REALM_MODELS_DIR") : "../shared/models", rel);
  const char *wasm = getenv("REALM_DEFAULT_GUEST_WASM");
  const char *cache = getenv("REALM_GUEST_CACHE_DIR");
  FILE *probe = fopen(path, "rb");
  if (!probe || !wasm || !cache) {
    if (probe) fclose(probe);
    snprintf(err, errlen, "%s or REALM_DEFAULT_GUEST_WASM/REALM_GUEST_CACHE_DIR missing", rel);
    return 1;
  }
  fclose(probe);
  mkdir(cache, 0700); /* the sandbox wants a private cache dir; EEXIST is fine */
  struct gth *g = calloc(1, sizeof *g);
  if (!g) return REALM_E_NOMEM;
  if (opts) g->opts = *opts;
  int rc = gguf_open(path, &g->f, err, errlen);
  if (rc == 0 && with_engine) rc = engine_model_load(g->f, &g->m, err, errlen);
  if (rc == 0 && with_engine) {
    struct engine_config cfg = {.n_threads = 1, .kv_blocks = 160};
    rc = engine_create(g->m, &cfg, &g->e, err, errlen);
  }
  if (rc < 0) goto fail;
  struct gguf_str model = {0};
  gguf_get_str(g->f, "tokenizer.ggml.model", &model);
  int bpe = model.len == 4 && memcmp(model.data, "gpt2", 4) == 0;
  g->vocab_kind = bpe ? REALM_GUEST_VOCAB_BPE : REALM_GUEST_VOCAB_SPM;
  g->kv_tokens = gguf_find_kv(g->f, "tokenizer.ggml.tokens");
  g->n_vocab = g->kv_tokens ? (uint32_t)g->kv_tokens->v.arr.count : 0;
  g->n_ctx = g->m ? g->m->hp.n_ctx : 4096;
  g->bos = kv_id(g->f, "tokenizer.ggml.bos_token_id", -1);
  g->eos = kv_id(g->f, "tokenizer.ggml.eos_token_id", -1);
  g->kv_merges = gguf_find_kv(g->f, "tokenizer.ggml.merges");
  if (g->kv_merges && (g->kv_merges->type != GGUF_VALUE_ARRAY ||
                       g->kv_merges->v.arr.elem_type != GGUF_VALUE_STRING))
    g->kv_merges = NULL;
  const struct gguf_kv *ks = gguf_find_kv(g->f, "tokenizer.ggml.scores");
  const struct gguf_kv *ky = gguf_find_kv(g->f, "tokenizer.ggml.token_type");
  if (!g->n_vocab || (g->m && g->m->hp.n_vocab != g->n_vocab)) {
    snprintf(err, errlen, "%s: tokenizer arrays missing or sized wrong", rel);
    rc = REALM_E_BAD_MODEL;
    goto fail;
  }
  g->scores = calloc(g->n_vocab, sizeof *g->scores);
  g->types = calloc(g->n_vocab, sizeof *g->types);
  g->tok_texts = calloc(g->n_vocab, sizeof *g->tok_texts);
  if (!g->scores || !g->types || !g->tok_texts) {
    rc = REALM_E_NOMEM;
    goto fail;
  }
  for (uint32_t i = 0; i < g->n_vocab; i++) {
    struct gguf_str str = gguf_arr_str(g->kv_tokens, i);
    g->tok_texts[i] = (struct tok_bytes){str.data, (uint32_t)str.len};
    int64_t t = 1;
    if (ks) gguf_arr_f32(ks, i, &g->scores[i]);
    if (ky) gguf_arr_i64(ky, i, &t);
    g->types[i] = (int32_t)t;
  }
  if (!bpe) { /* the native tokenizer, built like the guest's (SPM only) */
    struct tok_desc d = {
        .model = TOK_MODEL_SPM, .n_tokens = g->n_vocab, .tokens = g->tok_texts,
        .scores = g->scores, .types = g->types, .bos_id = g->bos, .eos_id = g->eos,
        .unk_id = kv_id(g->f, "tokenizer.ggml.unknown_token_id", -1), .add_space_prefix = 1,
    };
    if ((rc = tok_create(&d, &g->native, err, errlen)) < 0) goto fail;
  }
  g->host = (struct sandbox_host){
      .user = g,
      .model_info = cb_model_info,
      .token_piece = cb_token_piece,
      .token_info = cb_token_info,
      .feed_tokens = cb_feed_tokens,
      .emit_text = cb_emit_text,
      .emit_token = cb_emit_token,
      .log = cb_log,
      .model_meta = g->opts.no_meta ? NULL : cb_model_meta,
      .merge_count = g->opts.no_merges ? NULL : cb_merge_count,
      .merge = g->opts.no_merges ? NULL : cb_merge,
      .emit_top_logprobs = cb_emit_top_logprobs,
      .finish = cb_finish,
  };
  if ((rc = sandbox_module_load_file(wasm, cache, &g->module, err, errlen)) < 0) goto fail;
  struct sandbox_limits lim = {.call_ms = call_ms, .seed = 7};
  if ((rc = sandbox_instance_new(g->module, &lim, &g->host, &g->inst, err, errlen)) < 0) goto fail;
  *ret = g;
  return 0;
fail:
  gth_close(g);
  return rc < 0 ? rc : REALM_E_INTERNAL;
}

int gth_open(struct gth **ret, char *err, size_t errlen) {
  /* A generous per-call deadline: these tests are about behaviour, and the machine may be
   * loaded; gth_open_vocab runs with the production default. */
  return open_common("gguf/stories260K.gguf", 1, 5000, NULL, ret, err, errlen);
}

int gth_open_vocab(const char *rel, uint32_t call_ms, struct gth **ret, char *err,
                   size_t errlen) {
  return open_common(rel, 0, call_ms, NULL, ret, err, errlen);
}

int gth_open_vocab_opts(const char *rel, uint32_t call_ms, const struct gth_opts *opts,
                        struct gth **ret, char *err, size_t errlen) {
  return open_common(rel, 0, call_ms, opts, ret, err, errlen);
}

void gth_close(struct gth *g) {
  if (!g) return;
  sandbox_instance_free(g->inst);
  sandbox_module_free(g->module);
  tok_destroy(g->native);
  free(g->scores);
  free(g->types);
  free(g->tok_texts);
  engine_destroy(g->e);
  engine_model_free(g->m);
  gguf_close(g->f);
  free(g);
}

void gth_force(struct gth *g, const int32_t *force, uint32_t n) {
  g->n_force = n < 64 ? n : 64;
  memcpy(g->force, force, g->n_force * sizeof *force);
  g->i_force = 0;
}

uint32_t gth_n_vocab(const struct gth *g) {
  return g->n_vocab;
}

uint64_t gth_token_piece_calls(const struct gth *g) {
  return g->piece_calls;
}

uint64_t gth_merge_calls(const struct gth *g) {
  return g->merge_calls;
}

int gth_file_bool(const struct gth *g, const char *key, int dflt) {
  const struct gguf_kv *kv = gguf_find_kv(g->f, key);
  return kv && kv->type == GGUF_VALUE_BOOL ? kv->v.u64 != 0 : dflt;
}

struct tok *gth_native_tok(struct gth *g) {
  return g->native;
}

int gth_run_many(struct gth *g, const uint8_t *const *blobs, const uint32_t *lens,
                 struct gth_result *const *res, uint32_t n, char *err, size_t errlen) {
  if (n == 0 || n > GTH_MAX_ACTIVE) return REALM_E_INVALID_ARGUMENT;
  float *logits = malloc(g->n_vocab * sizeof *logits);
  if (!logits) return REALM_E_NOMEM;
  int rc = 0;
  g->n_act = n;
  for (uint32_t i = 0; i < n; i++) {
    struct gth_act *a = &g->act[i];
    memset(res[i], 0, sizeof *res[i]);
    a->id = ++g->next_id;
    a->res = res[i];
    a->n_pending = 0;
    a->feeds = 0;
    a->done = 0;
    a->seq = NULL;
  }
  for (uint32_t i = 0; i < n && rc == 0; i++) {
    struct gth_act *a = &g->act[i];
    if (g->e && (rc = kv_seq_open(engine_kv(g->e), NULL, &a->seq)) < 0) {
      snprintf(err, errlen, "kv_seq_open: %d", rc);
      break;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = sandbox_call_request_begin(g->inst, a->id, blobs[i], lens[i], &a->res->begin_status,
                                    err, errlen);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    a->res->begin_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (a->res->begin_status != 0 || !g->e) a->done = 1;
  }
  /* Round-robin: each live request gets one forward + one logits call per round. */
  for (int step = 0; rc == 0 && step < GTH_MAX_STEPS; step++) {
    int live = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
      struct gth_act *a = &g->act[i];
      if (a->done || a->n_pending == 0) {
        a->done = 1;
        continue;
      }
      live = 1;
      struct engine_seq_step s = {.seq = a->seq, .pos = kv_seq_len(a->seq), .tokens = a->pending,
                                  .n_tokens = a->n_pending};
      struct engine_batch b = {.seqs = &s, .n_seqs = 1};
      if ((rc = engine_forward(g->e, &b, logits, err, errlen)) < 0) break;
      a->n_pending = 0;
      if (n == 1 && g->i_force < g->n_force) {
        for (uint32_t k = 0; k < g->n_vocab; k++) logits[k] = -1e9f;
        logits[g->force[g->i_force++]] = 0.0f;
      }
      int32_t action;
      rc = sandbox_call_logits(g->inst, a->id, logits, g->n_vocab, &action, err, errlen);
      if (rc < 0) break;
      a->res->last_action = action;
      if (action < 0) {
        /* The reason is readable until request_end forgets the request. */
        a->done = 1;
        a->res->finish_reason = sandbox_instance_finish_reason(g->inst, a->id);
        snprintf(a->res->finish, sizeof a->res->finish, "%s",
                 a->res->finish_reason == REALM_GUEST_FINISH_STOP     ? "stop"
                 : a->res->finish_reason == REALM_GUEST_FINISH_LENGTH ? "length"
                                                                      : "");
      } else {
        a->pending[a->n_pending++] = action;
      }
    }
    if (!live) break;
  }
  for (uint32_t i = 0; i < n; i++) {
    struct gth_act *a = &g->act[i];
    char err2[256];
    int rc2 = sandbox_call_request_end(g->inst, a->id, rc < 0 ? -1 : 0, err2, sizeof err2);
    if (rc == 0 && rc2 < 0) {
      rc = rc2;
      snprintf(err, errlen, "request_end: %s", err2);
    }
    if (a->seq) kv_seq_close(engine_kv(g->e), a->seq);
    a->seq = NULL;
  }
  free(logits);
  g->n_force = g->i_force = 0;
  g->n_act = 0;
  return rc;
}

int gth_run(struct gth *g, const uint8_t *blob, uint32_t len, struct gth_result *res, char *err,
            size_t errlen) {
  return gth_run_many(g, &blob, &len, &res, 1, err, errlen);
}
