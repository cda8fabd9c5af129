/*
 * test_isa_oracle.c — the stories260K oracle (README in $REALM_MODELS_DIR) with every CPU
 * kernel table forced in turn through REALM_ENGINE_ISA: greedy ids and first logits of the
 * F32 file and of the Q8_0 file on the int8-activation fast path (the integer kernels:
 * maddubs on AVX2/AVX-512, vpdpbusd on AVX-512 VNNI), and the Q8_0 logits of every table
 * against the scalar table's (same integer sums, only the f32 summation order differs).
 * Decode is batch 1, which the AMX table leaves to its VNNI kernels; a 20-token prefill
 * chunk (every token's logits) runs the AMX tiles, and is compared with the scalar table's.
 * Tables the CPU lacks are skipped; an unknown REALM_ENGINE_ISA is refused with its name.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels.h"
#include "gguf.h"
#include "llama.h"
#include "model.h"
#include "realm/error.h"
#include "realm_test.h"

static const int32_t oracle_ids[32] = {
    403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338,
    401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385};
/* F32 logits 0..7 after BOS; the Q8_0 file differs by < 2e-2 with exact activations and by
 * up to ~0.2 with int8 activations (see test_llama.c). */
static const float oracle_logits[8] = {-6.22291f, 8.40434f, -6.22374f, -6.22254f,
                                       -6.22195f, -6.22288f, -6.22188f, -6.22342f};
/* Opens gguf/FILE and an engine pinned to the kernel table ISA (engine_config.isa).
 * Returns 0, 1 when this CPU lacks the table, or a realm error (printed). */
static int open_with_isa(const char *file, const char *isa, struct gguf_file **f,
                         struct engine_model **m, struct engine **e) {
  char path[1024], err[256] = "";
  snprintf(path, sizeof path, "%s/gguf/%s", realm_test_models_dir(), file);
  int rc = gguf_open(path, f, err, sizeof err);
  if (rc == 0) rc = engine_model_load(*f, m, err, sizeof err);
  struct engine_config cfg = {.n_threads = 2, .kv_blocks = 64, .isa = isa};
  if (rc == 0) rc = engine_create(*m, &cfg, e, err, sizeof err);
  if (rc == REALM_E_UNSUPPORTED) return 1;
  if (rc < 0) printf("# %s %s: %s\n", file, isa, err);
  return rc;
}

/* Greedy 32 tokens from BOS with the table named ISA; fills ids and the first 8 logits.
 * BACKEND gets the engine's backend name. Returns 0, a realm error, or 1 when the CPU lacks
 * the table. */
static int run_greedy(const char *file, const char *isa, int32_t *ids, float *first,
                      char backend[64]) {
  char err[256] = "";
  struct gguf_file *f = NULL;
  struct engine_model *m = NULL;
  struct engine *e = NULL;
  int rc = open_with_isa(file, isa, &f, &m, &e);
  if (rc == 0) snprintf(backend, 64, "%s", engine_backend_name(e));
  float *logits = m ? malloc(sizeof(float) * m->hp.n_vocab) : NULL;
  struct kv_seq *seq = NULL;
  if (rc == 0) rc = kv_seq_open(engine_kv(e), NULL, &seq);
  int32_t tok = m ? (int32_t)m->hp.bos_id : 0;
  for (int i = 0; i < 32 && rc == 0; i++) {
    struct engine_seq_step s = {.seq = seq, .pos = (uint32_t)i, .tokens = &tok, .n_tokens = 1};
    struct engine_batch b = {.seqs = &s, .n_seqs = 1};
    rc = engine_forward(e, &b, logits, err, sizeof err);
    if (rc < 0) break;
    if (i == 0) memcpy(first, logits, sizeof(float) * 8);
    int best = 0;
    for (uint32_t v = 1; v < m->hp.n_vocab; v++)
      if (logits[v] > logits[best]) best = (int)v;
    tok = ids[i] = best;
  }
  if (seq) kv_seq_close(engine_kv(e), seq);
  free(logits);
  engine_destroy(e);
  engine_model_free(m);
  gguf_close(f);
  return rc;
}

static void check_all_isas(const char *file, double tol) {
  float ref[8] = {0};
  int have_ref = 0, ran = 0;
  for (int isa = 0; isa < ENGINE_ISA_COUNT; isa++) {
    int32_t ids[32];
    float first[8];
    char backend[64] = "", want[64];
    int rc = run_greedy(file, engine_cpu_isa_name((enum engine_isa)isa), ids, first, backend);
    if (rc == 1) continue; /* not on this CPU */
    CHECK_EQ_INT(rc, 0);
    snprintf(want, sizeof want, "cpu/%s", engine_cpu_isa_name((enum engine_isa)isa)); /* the table asked for is used */
    CHECK_STR_EQ(backend, want);
    ran++;
    for (int i = 0; i < 32; i++) {
      if (ids[i] != oracle_ids[i])
        printf("# %s %s token %d: got %d want %d\n", file, engine_cpu_isa_name((enum engine_isa)isa), i, ids[i],
               oracle_ids[i]);
      CHECK_EQ_INT(ids[i], oracle_ids[i]);
    }
    for (int i = 0; i < 8; i++) CHECK_NEAR(first[i], oracle_logits[i], tol);
    if (!have_ref) memcpy(ref, first, sizeof ref), have_ref = 1;
    else
      for (int i = 0; i < 8; i++) CHECK_NEAR(first[i], ref[i], 1e-3);
  }
  CHECK(ran >= 1);
}

TEST(f32_oracle_with_every_isa) { check_all_isas("stories260K.gguf", 1e-3); }
TEST(q8_0_int8_oracle_with_every_isa) {
  check_all_isas("tinyllamas-stories-260k-q8_0.gguf", 0.25);
}

static int argmax_of(const float *v, uint32_t n) {
  int best = 0;
  for (uint32_t i = 1; i < n; i++)
    if (v[i] > v[best]) best = (int)i;
  return best;
}

/* Every token's logits of a 20-token prefill chunk of the Q8_0 file with table ISA into OUT
 * (20 × n_vocab). Returns 0, a realm error, or 1 when the CPU lacks the table. */
static int run_prefill(const char *isa, float *out, uint32_t *ret_vocab) {
  static const int32_t prompt[20] = {1,   403, 407, 261, 378, 432, 383, 286, 261, 376,
                                     298, 315, 421, 395, 317, 426, 338, 401, 396, 267};
  char err[256] = "";
  struct gguf_file *f = NULL;
  struct engine_model *m = NULL;
  struct engine *e = NULL;
  struct kv_seq *seq = NULL;
  int rc = open_with_isa("tinyllamas-stories-260k-q8_0.gguf", isa, &f, &m, &e);
  if (rc == 0) rc = kv_seq_open(engine_kv(e), NULL, &seq);
  if (rc == 0 && m->hp.n_vocab > 512) rc = REALM_E_INVALID_ARGUMENT; /* OUT is 20 × 512 */
  if (rc == 0) {
    struct engine_seq_step st = {.seq = seq, .pos = 0, .tokens = prompt, .n_tokens = 20};
    struct engine_batch b = {.seqs = &st, .n_seqs = 1, .all_logits = 1};
    rc = engine_forward(e, &b, out, err, sizeof err);
    *ret_vocab = m->hp.n_vocab;
  }
  if (rc < 0) printf("# prefill %s: %s\n", isa, err);
  if (seq) kv_seq_close(engine_kv(e), seq);
  engine_destroy(e);
  engine_model_free(m);
  gguf_close(f);
  return rc;
}

/* The scalar table's logits against every other table's: the integer block sums are the
 * same, the f32 summation order is not, and an activation that lands on the other side of
 * an int8 rounding step in a later layer moves the logits by up to ~0.2 (the int8 tolerance
 * of the oracle test above). The SIMD tables, whose activation quantizers are bit-identical,
 * are also compared with the first SIMD table (AMX tiles vs vpdpbusd/maddubs) more tightly,
 * and every position's top token must match the scalar table's. */
TEST(q8_0_prefill_chunk_with_every_isa) {
  static float ref[20 * 512], first_simd[20 * 512], got[20 * 512];
  uint32_t V = 0;
  int have_simd = 0, ran = 0;
  CHECK_EQ_INT(run_prefill("scalar", ref, &V), 0);
  CHECK_EQ_INT(argmax_of(ref + 19 * V, V), 337); /* the oracle continuation of the prompt */
  for (int isa = 1; isa < ENGINE_ISA_COUNT; isa++) {
    uint32_t V2 = 0;
    int rc = run_prefill(engine_cpu_isa_name((enum engine_isa)isa), got, &V2);
    if (rc == 1) continue; /* not on this CPU */
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT((int)V2, (int)V);
    ran++;
    double d_ref = 0, d_simd = 0;
    for (size_t i = 0; i < (size_t)20 * V; i++) {
      d_ref = fmax(d_ref, fabs((double)ref[i] - got[i]));
      if (have_simd) d_simd = fmax(d_simd, fabs((double)first_simd[i] - got[i]));
    }
    printf("# %s: max |logit diff| over 20 tokens: vs scalar %.2g, vs first SIMD table %.2g\n",
           engine_cpu_isa_name((enum engine_isa)isa), d_ref, d_simd);
    CHECK_NEAR(d_ref, 0.0, 0.25);
    CHECK_NEAR(d_simd, 0.0, 1e-3);
    for (int t = 0; t < 20; t++) CHECK_EQ_INT(argmax_of(got + t * V, V), argmax_of(ref + t * V, V));
    if (!have_simd) memcpy(first_simd, got, sizeof got), have_simd = 1;
  }
  CHECK(ran >= 1);
}

/* REALM_ENGINE_ISA is read when the config says "auto": an unknown name there is refused,
 * naming it, and a known one is used. */
TEST(unknown_isa_in_environment_is_refused) {
  setenv("REALM_ENGINE_ISA", "sse9", 1);
  int32_t ids[32];
  float first[8];
  char backend[64] = "";
  int rc = run_greedy("stories260K.gguf", "auto", ids, first, backend);
  setenv("REALM_ENGINE_ISA", "scalar", 1);
  int rc2 = run_greedy("stories260K.gguf", "auto", ids, first, backend);
  unsetenv("REALM_ENGINE_ISA");
  CHECK_EQ_INT(rc, REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(rc2, 0);
  CHECK_STR_EQ(backend, "cpu/scalar");
}
