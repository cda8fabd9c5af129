/*
 * test_cuda_oracle.c — the whole forward pass on the CUDA backend (engine_config.backend =
 * "cuda") against the shared stories260K oracle: the 64 greedy ids from BOS and the first
 * logits for the F32 and Q8_0 files (the CUDA backend always uses f32 activations, so the
 * Q8_0 tolerance is the CPU exact path's), a batch of two sequences equal to each alone,
 * and a prefill chunk equal to token-by-token decoding. SKIPs without a CUDA device.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
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
static const float f32_logits[8] = {-6.22291f, 8.40434f, -6.22374f, -6.22254f,
                                    -6.22195f, -6.22288f, -6.22188f, -6.22342f};
static const float q8_logits[8] = {-6.2211f, 8.42358f, -6.22374f, -6.22254f,
                                   -6.22195f, -6.22288f, -6.22188f, -6.22342f};

static char skip_why[256];

#define REQUIRE_DEVICE()                                                             \
  do {                                                                               \
    if (engine_backend_cuda_devices(skip_why, sizeof skip_why) <= 0) SKIP(skip_why); \
  } while (0)

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

static int fixture_open(struct fixture *fx, const char *name) {
  char path[1024], err[512];
  memset(fx, 0, sizeof *fx);
  snprintf(path, sizeof path, "%s/gguf/%s", realm_test_models_dir(), name);
  int rc = gguf_open(path, &fx->f, err, sizeof err);
  if (rc == 0) rc = engine_model_load(fx->f, &fx->m, err, sizeof err);
  struct engine_config cfg = {.backend = "cuda", .kv_blocks = 64};
  if (rc == 0) rc = engine_create(fx->m, &cfg, &fx->e, err, sizeof err);
  if (rc < 0) {
    printf("# %s\n", err);
    fixture_close(fx);
  }
  return rc;
}

static int argmax(const float *v, uint32_t n) {
  int best = 0;
  for (uint32_t i = 1; i < n; i++)
    if (v[i] > v[best]) best = (int)i;
  return best;
}

static void check_oracle(const char *file, const float *want8, double tol) {
  struct fixture fx;
  CHECK_EQ_INT(fixture_open(&fx, file), 0);
  CHECK(strncmp(engine_backend_name(fx.e), "cuda/", 5) == 0);
  char err[512] = "";
  uint32_t V = fx.m->hp.n_vocab;
  float *logits = malloc(sizeof(float) * V);
  struct kv_seq *seq;
  CHECK_EQ_INT(kv_seq_open(engine_kv(fx.e), NULL, &seq), 0);
  int32_t tok = (int32_t)fx.m->hp.bos_id, ids[64];
  int rc = 0;
  for (int i = 0; i < 64 && rc == 0; i++) {
    struct engine_seq_step s = {.seq = seq, .pos = (uint32_t)i, .tokens = &tok, .n_tokens = 1};
    struct engine_batch b = {.seqs = &s, .n_seqs = 1};
    rc = engine_forward(fx.e, &b, logits, err, sizeof err);
    if (rc < 0) printf("# step %d: %s\n", i, err);
    if (i == 0)
      for (int j = 0; j < 8; j++) CHECK_NEAR(logits[j], want8[j], tol);
    tok = argmax(logits, V);
    ids[i] = tok;
  }
  kv_seq_close(engine_kv(fx.e), seq);
  free(logits);
  fixture_close(&fx);
  CHECK_EQ_INT(rc, 0);
  for (int i = 0; i < 64; i++) {
    if (ids[i] != oracle_ids[i]) printf("# token %d: got %d want %d\n", i, ids[i], oracle_ids[i]);
    CHECK_EQ_INT(ids[i], oracle_ids[i]);
  }
}

TEST(cuda_f32_greedy_matches_oracle) {
  REQUIRE_DEVICE();
  check_oracle("stories260K.gguf", f32_logits, 1e-3);
}

TEST(cuda_q8_0_greedy_matches_oracle) {
  REQUIRE_DEVICE();
  check_oracle("tinyllamas-stories-260k-q8_0.gguf", q8_logits, 2e-2);
}

/* A 20-token chunk (all logits) equals token-by-token decoding, and two sequences in one
 * step equal each alone: the block tables, chunked attention and gather on the device. */
TEST(cuda_chunk_and_batch_equal_token_by_token) {
  REQUIRE_DEVICE();
  struct fixture fx;
  CHECK_EQ_INT(fixture_open(&fx, "stories260K.gguf"), 0);
  char err[512] = "";
  uint32_t V = fx.m->hp.n_vocab;
  struct kv_cache *kv = engine_kv(fx.e);
  const int32_t prompt[20] = {1,   403, 407, 261, 378, 432, 383, 286, 261, 376,
                              298, 315, 421, 395, 317, 426, 338, 401, 396, 267};
  float *all = malloc(sizeof(float) * V * 20), *one = malloc(sizeof(float) * V);
  float *pair = malloc(sizeof(float) * V * 2);
  struct kv_seq *s1, *s2, *s3;
  CHECK_EQ_INT(kv_seq_open(kv, NULL, &s1), 0);
  CHECK_EQ_INT(kv_seq_open(kv, NULL, &s2), 0);
  CHECK_EQ_INT(kv_seq_open(kv, NULL, &s3), 0);
  struct engine_seq_step st = {.seq = s1, .pos = 0, .tokens = prompt, .n_tokens = 20};
  struct engine_batch bt = {.seqs = &st, .n_seqs = 1, .all_logits = 1};
  CHECK_EQ_INT(engine_forward(fx.e, &bt, all, err, sizeof err), 0);
  double maxdiff = 0.0;
  for (uint32_t i = 0; i < 20; i++) {
    struct engine_seq_step s = {.seq = s2, .pos = i, .tokens = &prompt[i], .n_tokens = 1};
    struct engine_batch b1 = {.seqs = &s, .n_seqs = 1};
    CHECK_EQ_INT(engine_forward(fx.e, &b1, one, err, sizeof err), 0);
    for (uint32_t j = 0; j < V; j++) {
      double d = all[(size_t)i * V + j] - one[j];
      if (d < 0) d = -d;
      if (d > maxdiff) maxdiff = d;
    }
  }
  CHECK_EQ_INT(argmax(one, V), 337); /* the oracle continuation after these 20 tokens */
  /* s1 (20 tokens) and s3 (new) in one step vs the token-by-token logits */
  int32_t next = 337;
  struct engine_seq_step two[2] = {{.seq = s1, .pos = 20, .tokens = &next, .n_tokens = 1},
                                   {.seq = s3, .pos = 0, .tokens = prompt, .n_tokens = 1}};
  struct engine_batch b2 = {.seqs = two, .n_seqs = 2};
  CHECK_EQ_INT(engine_forward(fx.e, &b2, pair, err, sizeof err), 0);
  for (uint32_t j = 0; j < V; j++) {
    double d = pair[V + j] - all[j]; /* s3 at pos 0 == chunk row 0 */
    if (d < 0) d = -d;
    if (d > maxdiff) maxdiff = d;
  }
  CHECK(maxdiff < 1e-4);
  kv_seq_close(kv, s1);
  kv_seq_close(kv, s2);
  kv_seq_close(kv, s3);
  free(all);
  free(one);
  free(pair);
  fixture_close(&fx);
}
