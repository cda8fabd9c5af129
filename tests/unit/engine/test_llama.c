/*
 * test_llama.c — the forward pass against the shared stories260K oracle (README in
 * $REALM_MODELS_DIR): greedy ids and first logits for the F32 and Q8_0 files, batch
 * equivalence, chunked prefill equivalence, thread-count independence, model binding errors.
 */
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "llama.h"
#include "model.h"
#include "realm/error.h"
#include "realm_test.h"

static const int32_t oracle_ids[64] = {
    403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338,
    401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385,
    328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338, 391, 266, 267,
    337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13,  438, 310};
static const float oracle_f32_logits[8] = {-6.22291f, 8.40434f, -6.22374f, -6.22254f,
                                           -6.22195f, -6.22288f, -6.22188f, -6.22342f};

struct fixture {
  struct gguf_file *f;
  struct engine_model *m;
  struct engine *e;
};

static void fixture_close(struct fixture *fx) {
  engine_destroy(fx->e);
  engine_model_free(fx->m);
  gguf_close(fx->f);
  memset(fx, 0, sizeof *fx);
}

/* Opens $REALM_MODELS_DIR/gguf/NAME; returns 0 or a realm error (err filled). */
static int exact_quant_g; /* engine_config.exact_quant for the next fixture_open */

static int fixture_open(struct fixture *fx, const char *name, int threads, const char *isa,
                        char *err, size_t errlen) {
  char path[1024];
  memset(fx, 0, sizeof *fx);
  snprintf(path, sizeof path, "%s/gguf/%s", realm_test_models_dir(), name);
  int rc = gguf_open(path, &fx->f, err, errlen);
  if (rc < 0) return rc;
  rc = engine_model_load(fx->f, &fx->m, err, errlen);
  if (rc < 0) {
    fixture_close(fx);
    return rc;
  }
  struct engine_config cfg = {.n_threads = threads, .isa = isa, .kv_blocks = 64,
                             .exact_quant = exact_quant_g};
  rc = engine_create(fx->m, &cfg, &fx->e, err, errlen);
  if (rc < 0) fixture_close(fx);
  return rc;
}

static int argmax(const float *v, uint32_t n) {
  int best = 0;
  for (uint32_t i = 1; i < n; i++)
    if (v[i] > v[best]) best = (int)i;
  return best;
}

/* Greedy decode of N tokens from BOS; returns 0 and fills ids (and the first logits). */
static int greedy(struct fixture *fx, int n, int32_t *ids, float *first_logits) {
  char err[256];
  uint32_t V = fx->m->hp.n_vocab;
  float *logits = malloc(sizeof(float) * V);
  struct kv_seq *seq;
  int rc = kv_seq_open(engine_kv(fx->e), NULL, &seq);
  if (rc < 0) return rc;
  int32_t tok = (int32_t)fx->m->hp.bos_id;
  for (int i = 0; i < n && rc == 0; i++) {
    struct engine_seq_step s = {.seq = seq, .pos = (uint32_t)i, .tokens = &tok, .n_tokens = 1};
    struct engine_batch b = {.seqs = &s, .n_seqs = 1};
    rc = engine_forward(fx->e, &b, logits, err, sizeof err);
    if (rc < 0) break;
    if (i == 0 && first_logits) memcpy(first_logits, logits, sizeof(float) * 8);
    tok = argmax(logits, V);
    ids[i] = tok;
  }
  kv_seq_close(engine_kv(fx->e), seq);
  free(logits);
  return rc;
}

static void check_oracle(const char *file, const char *isa, double tol, const float *want8) {
  char err[256] = "";
  struct fixture fx;
  int rc = fixture_open(&fx, file, 2, isa, err, sizeof err);
  if (rc == REALM_E_UNSUPPORTED && isa) SKIP("ISA not on this CPU");
  if (rc < 0) printf("# %s\n", err);
  CHECK_EQ_INT(rc, 0);
  int32_t ids[64];
  float first[8];
  rc = greedy(&fx, 64, ids, first);
  fixture_close(&fx);
  CHECK_EQ_INT(rc, 0);
  for (int i = 0; i < 64; i++) {
    if (ids[i] != oracle_ids[i]) printf("# token %d: got %d want %d\n", i, ids[i], oracle_ids[i]);
    CHECK_EQ_INT(ids[i], oracle_ids[i]);
  }
  for (int i = 0; i < 8; i++) CHECK_NEAR(first[i], want8[i], tol);
}

TEST(f32_greedy_matches_oracle) { check_oracle("stories260K.gguf", NULL, 1e-3, oracle_f32_logits); }
TEST(f32_greedy_matches_oracle_scalar) {
  check_oracle("stories260K.gguf", "scalar", 1e-3, oracle_f32_logits);
}
TEST(f32_greedy_matches_oracle_avx2) {
  check_oracle("stories260K.gguf", "avx2", 1e-3, oracle_f32_logits);
}

TEST(q8_0_greedy_matches_oracle) {
  /* Q8_0 README logits (weights dequantized, f32 activations): -6.2211, 8.42358; the other
   * six are those of the F32 model to within 2e-3. The fast path quantizes activations to
   * int8 per 32-block (like ggml), which moves these logits by up to ~0.2 (measured 0.18 on
   * logit 1) while every greedy id still matches: hence the loose tolerance here. */
  const float want[8] = {-6.2211f, 8.42358f, -6.22374f, -6.22254f,
                         -6.22195f, -6.22288f, -6.22188f, -6.22342f};
  char err[256] = "";
  struct fixture fx;
  int rc = fixture_open(&fx, "tinyllamas-stories-260k-q8_0.gguf", 2, NULL, err, sizeof err);
  if (rc < 0) printf("# %s\n", err);
  CHECK_EQ_INT(rc, 0);
  /* The ffn_down tensors (rows of 172) were dequantized at load, on purpose. */
  CHECK_EQ_INT(fx.m->n_dequantized_at_load, 5);
  CHECK(fx.m->output_tied == 0 || fx.m->output_tied == 1);
  fixture_close(&fx);
  check_oracle("tinyllamas-stories-260k-q8_0.gguf", NULL, 0.25, want);
}

/* With f32 activations the Q8_0 model reproduces the README's logits closely. */
TEST(q8_0_exact_matches_oracle) {
  const float want[8] = {-6.2211f, 8.42358f, -6.22374f, -6.22254f,
                         -6.22195f, -6.22288f, -6.22188f, -6.22342f};
  exact_quant_g = 1;
  check_oracle("tinyllamas-stories-260k-q8_0.gguf", NULL, 2e-2, want);
  exact_quant_g = 0;
}

TEST(q8_0_exact_matches_oracle_scalar) {
  const float want[8] = {-6.2211f, 8.42358f, -6.22374f, -6.22254f,
                         -6.22195f, -6.22288f, -6.22188f, -6.22342f};
  exact_quant_g = 1;
  check_oracle("tinyllamas-stories-260k-q8_0.gguf", "scalar", 2e-2, want);
  exact_quant_g = 0;
}

/* Runs SEQS sequences each through PREFIX tokens alone, then all together in one step with
 * different numbers of new tokens; compares against one-by-one runs. */
TEST(batch_equals_one_by_one) {
  char err[256] = "";
  struct fixture fx;
  int rc = fixture_open(&fx, "stories260K.gguf", 2, NULL, err, sizeof err);
  if (rc < 0) printf("# %s\n", err);
  CHECK_EQ_INT(rc, 0);
  uint32_t V = fx.m->hp.n_vocab;
  struct kv_cache *kv = engine_kv(fx.e);
  /* Three sequences with different histories (3, 7 and 12 tokens) then new chunks of 1, 1
   * and 4 tokens (two decodes and a prefill chunk in one step). */
  static const int32_t hist[3][16] = {
      {1, 403, 407},
      {1, 261, 378, 432, 383, 286, 261},
      {1, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267},
  };
  static const uint32_t hist_n[3] = {3, 7, 12};
  static const int32_t next[3][4] = {{261, 0, 0, 0}, {376, 0, 0, 0}, {337, 410, 408, 419}};
  static const uint32_t next_n[3] = {1, 1, 4};
  float *alone = malloc(sizeof(float) * V * 3), *together = malloc(sizeof(float) * V * 3);
  float *scratch = malloc(sizeof(float) * V);
  struct kv_seq *seqs[3];
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < 3; i++) {
      CHECK_EQ_INT(kv_seq_open(kv, NULL, &seqs[i]), 0);
      struct engine_seq_step s = {.seq = seqs[i], .pos = 0, .tokens = hist[i], .n_tokens = hist_n[i]};
      struct engine_batch b = {.seqs = &s, .n_seqs = 1};
      CHECK_EQ_INT(engine_forward(fx.e, &b, scratch, err, sizeof err), 0);
    }
    struct engine_seq_step steps[3];
    for (int i = 0; i < 3; i++)
      steps[i] = (struct engine_seq_step){.seq = seqs[i], .pos = hist_n[i], .tokens = next[i],
                                          .n_tokens = next_n[i]};
    if (pass == 0) {
      for (int i = 0; i < 3; i++) {
        struct engine_batch b = {.seqs = &steps[i], .n_seqs = 1};
        CHECK_EQ_INT(engine_forward(fx.e, &b, alone + (size_t)i * V, err, sizeof err), 0);
      }
    } else {
      struct engine_batch b = {.seqs = steps, .n_seqs = 3};
      CHECK_EQ_INT(engine_forward(fx.e, &b, together, err, sizeof err), 0);
      for (int i = 0; i < 3; i++) CHECK_EQ_INT(kv_seq_len(seqs[i]), hist_n[i] + next_n[i]);
    }
    for (int i = 0; i < 3; i++) kv_seq_close(kv, seqs[i]);
  }
  double maxdiff = 0;
  for (size_t i = 0; i < (size_t)V * 3; i++) {
    double d = fabs((double)alone[i] - together[i]);
    if (d > maxdiff) maxdiff = d;
  }
  free(alone);
  free(together);
  free(scratch);
  CHECK_EQ_INT(kv_cache_free_blocks(kv), kv_cache_total_blocks(kv));
  fixture_close(&fx);
  CHECK_NEAR(maxdiff, 0.0, 1e-4);
}

TEST(prefill_chunk_equals_token_by_token) {
  char err[256] = "";
  struct fixture fx;
  int rc = fixture_open(&fx, "stories260K.gguf", 2, NULL, err, sizeof err);
  CHECK_EQ_INT(rc, 0);
  uint32_t V = fx.m->hp.n_vocab;
  struct kv_cache *kv = engine_kv(fx.e);
  const int32_t prompt[20] = {1,   403, 407, 261, 378, 432, 383, 286, 261, 376,
                              298, 315, 421, 395, 317, 426, 338, 401, 396, 267};
  float *a = malloc(sizeof(float) * V), *b = malloc(sizeof(float) * V);
  float *all = malloc(sizeof(float) * V * 20);
  struct kv_seq *s1, *s2;
  CHECK_EQ_INT(kv_seq_open(kv, NULL, &s1), 0);
  CHECK_EQ_INT(kv_seq_open(kv, NULL, &s2), 0);
  struct engine_seq_step st = {.seq = s1, .pos = 0, .tokens = prompt, .n_tokens = 20};
  struct engine_batch bt = {.seqs = &st, .n_seqs = 1};
  CHECK_EQ_INT(engine_forward(fx.e, &bt, a, err, sizeof err), 0);
  /* Same chunk again via rollback to pos 0, asking for every token's logits. */
  bt.all_logits = 1;
  CHECK_EQ_INT(engine_forward(fx.e, &bt, all, err, sizeof err), 0);
  for (uint32_t i = 0; i < 20; i++) {
    struct engine_seq_step s = {.seq = s2, .pos = i, .tokens = &prompt[i], .n_tokens = 1};
    struct engine_batch one = {.seqs = &s, .n_seqs = 1};
    CHECK_EQ_INT(engine_forward(fx.e, &one, b, err, sizeof err), 0);
    /* every-token logits of the chunk equal the token-by-token ones at each position */
    for (uint32_t j = 0; j < V; j++) CHECK_NEAR(all[(size_t)i * V + j], b[j], 1e-4);
  }
  for (uint32_t j = 0; j < V; j++) CHECK_NEAR(a[j], b[j], 1e-4);
  CHECK_EQ_INT(argmax(a, V), 337); /* the oracle continuation after these 20 tokens */
  kv_seq_close(kv, s1);
  kv_seq_close(kv, s2);
  free(a);
  free(b);
  free(all);
  fixture_close(&fx);
}

/* Logits after a fixed prompt with a given thread count and ISA. */
static int run_prompt(int threads, const char *isa, const char *file, float *out) {
  char err[256];
  struct fixture fx;
  int rc = fixture_open(&fx, file, threads, isa, err, sizeof err);
  if (rc < 0) return rc;
  const int32_t prompt[6] = {1, 403, 407, 261, 378, 432};
  struct kv_seq *s;
  kv_seq_open(engine_kv(fx.e), NULL, &s);
  struct engine_seq_step st = {.seq = s, .pos = 0, .tokens = prompt, .n_tokens = 6};
  struct engine_batch b = {.seqs = &st, .n_seqs = 1};
  rc = engine_forward(fx.e, &b, out, err, sizeof err);
  kv_seq_close(engine_kv(fx.e), s);
  fixture_close(&fx);
  return rc;
}

TEST(threads_1_and_2_identical) {
  const char *files[2] = {"stories260K.gguf", "tinyllamas-stories-260k-q8_0.gguf"};
  for (int f = 0; f < 2; f++) {
    float *a = malloc(sizeof(float) * 512), *b = malloc(sizeof(float) * 512);
    CHECK_EQ_INT(run_prompt(1, NULL, files[f], a), 0);
    CHECK_EQ_INT(run_prompt(2, NULL, files[f], b), 0);
    int same = memcmp(a, b, sizeof(float) * 512) == 0;
    free(a);
    free(b);
    CHECK(same);
  }
}

TEST(forward_rejects_bad_batches) {
  char err[256] = "";
  struct fixture fx;
  CHECK_EQ_INT(fixture_open(&fx, "stories260K.gguf", 1, NULL, err, sizeof err), 0);
  struct kv_cache *kv = engine_kv(fx.e);
  struct kv_seq *s;
  CHECK_EQ_INT(kv_seq_open(kv, NULL, &s), 0);
  float logits[512];
  logits[0] = 42.0f;
  int32_t bad = 512, ok = 1;
  struct engine_seq_step st = {.seq = s, .pos = 0, .tokens = &bad, .n_tokens = 1};
  struct engine_batch b = {.seqs = &st, .n_seqs = 1};
  CHECK_EQ_INT(engine_forward(fx.e, &b, logits, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "id 512");
  CHECK(logits[0] == 42.0f); /* untouched on failure */
  st.tokens = &ok;
  st.pos = 3; /* past the (empty) sequence */
  CHECK_EQ_INT(engine_forward(fx.e, &b, logits, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  struct engine_seq_step twice[2] = {{s, 0, &ok, 1}, {s, 0, &ok, 1}};
  struct engine_batch b2 = {.seqs = twice, .n_seqs = 2};
  CHECK_EQ_INT(engine_forward(fx.e, &b2, logits, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  b.n_seqs = 0;
  CHECK_EQ_INT(engine_forward(fx.e, &b, logits, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(kv_seq_len(s), 0);
  CHECK_EQ_INT(kv_cache_free_blocks(kv), kv_cache_total_blocks(kv));
  kv_seq_close(kv, s);
  fixture_close(&fx);
}

TEST(forward_kv_exhaustion_is_clean) {
  char err[256] = "";
  char path[1024];
  snprintf(path, sizeof path, "%s/gguf/stories260K.gguf", realm_test_models_dir());
  struct gguf_file *f;
  struct engine_model *m;
  struct engine *e;
  CHECK_EQ_INT(gguf_open(path, &f, err, sizeof err), 0);
  CHECK_EQ_INT(engine_model_load(f, &m, err, sizeof err), 0);
  struct engine_config cfg = {.n_threads = 1, .kv_blocks = 2, .kv_block_tokens = 4};
  CHECK_EQ_INT(engine_create(m, &cfg, &e, err, sizeof err), 0);
  struct kv_seq *a, *b;
  kv_seq_open(engine_kv(e), NULL, &a);
  kv_seq_open(engine_kv(e), NULL, &b);
  int32_t toks[6] = {1, 403, 407, 261, 378, 432};
  float logits[2 * 512];
  struct engine_seq_step st[2] = {{a, 0, toks, 4}, {b, 0, toks, 6}}; /* needs 1 + 2 blocks */
  struct engine_batch bt = {.seqs = st, .n_seqs = 2};
  CHECK_EQ_INT(engine_forward(e, &bt, logits, err, sizeof err), REALM_E_NOMEM);
  CHECK_STR_CONTAINS(err, "KV");
  CHECK_EQ_INT(kv_cache_free_blocks(engine_kv(e)), 2); /* a's block was given back */
  CHECK_EQ_INT(kv_seq_len(a), 0);
  bt.n_seqs = 1;
  CHECK_EQ_INT(engine_forward(e, &bt, logits, err, sizeof err), 0);
  CHECK_EQ_INT(kv_seq_len(a), 4);
  kv_seq_close(engine_kv(e), a);
  kv_seq_close(engine_kv(e), b);
  engine_destroy(e);
  engine_model_free(m);
  gguf_close(f);
}

TEST(model_binding_errors_name_the_culprit) {
  /* The v1 file is refused by the reader; build a broken model by hand instead: a GGUF with
   * the right keys but no tensors must fail naming token_embd.weight. Use the vocab-only
   * llama-spm file, which has llama.* keys and no tensors. */
  char err[256] = "", path[1024];
  snprintf(path, sizeof path, "%s/vocab/ggml-vocab-llama-spm.gguf", realm_test_models_dir());
  struct gguf_file *f;
  int rc = gguf_open(path, &f, err, sizeof err);
  if (rc < 0) SKIP("vocab file not readable");
  struct engine_model *m = NULL;
  rc = engine_model_load(f, &m, err, sizeof err);
  gguf_close(f);
  CHECK(rc == REALM_E_BAD_MODEL);
  CHECK(m == NULL);
  CHECK(strstr(err, "token_embd.weight") != NULL || strstr(err, "llama.") != NULL);
}

/* engine_config.isa (the worker's --isa) takes every kernel table's name, and refuses an
 * unknown one naming it. */
TEST(config_isa_names_every_table_and_refuses_unknown) {
  struct fixture fx;
  char err[256] = "";
  int rc = fixture_open(&fx, "stories260K.gguf", 1, "sse9", err, sizeof err);
  CHECK_EQ_INT(rc, REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "\"sse9\"");
  static const char *const names[] = {"auto", "scalar", "avx2", "avx512", "avx512vnni", "amx"};
  for (int i = 0; i < 6; i++) {
    err[0] = '\0';
    rc = fixture_open(&fx, "stories260K.gguf", 1, names[i], err, sizeof err);
    /* a table this CPU lacks is "unsupported", never "unknown" */
    CHECK(rc == 0 || rc == REALM_E_UNSUPPORTED);
    if (rc != 0) printf("# isa %s: %s\n", names[i], err);
    if (rc == 0) {
      if (i > 0) CHECK_STR_CONTAINS(engine_backend_name(fx.e), names[i]);
      fixture_close(&fx);
    }
  }
}
