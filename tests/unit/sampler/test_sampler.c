/*
 * test_sampler.c — the default guest's sampler: PRNG, portable exp/log, every sampling stage
 * in its documented order, logprobs, parameter validation and hostile logits.
 *
 * Statistical checks use a fixed seed and a bounded number of draws, so they are exact
 * regressions, not flaky estimates.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "realm/error.h"
#include "realm_test.h"
#include "sampler.h"
#include "sampler_math.h"
#include "sampler_rng.h"

static struct sampler *make(const struct sampler_params *p, int32_t n_vocab) {
  struct sampler *s = NULL;
  char err[256] = "";
  int r = sampler_create(p, n_vocab, &s, err, sizeof err);
  if (r != REALM_OK) printf("# sampler_create: %s\n", err);
  return s;
}

/* Samples once from a copy of logits (the sampler modifies its input). */
static int32_t draw(struct sampler *s, const float *logits, int32_t n, const int32_t *hist,
                    size_t n_hist, size_t n_prompt) {
  float row[256];
  memcpy(row, logits, (size_t)n * sizeof *row);
  int32_t tok = -1;
  char err[256];
  if (sampler_sample(s, row, hist, n_hist, n_prompt, &tok, NULL, NULL, NULL, err, sizeof err) < 0)
    printf("# sampler_sample: %s\n", err);
  return tok;
}

TEST(rng_same_seed_same_stream_different_seed_differs) {
  struct sampler_rng a, b, c;
  sampler_rng_seed(&a, 42);
  sampler_rng_seed(&b, 42);
  sampler_rng_seed(&c, 43);
  int differ = 0;
  for (int i = 0; i < 1000; i++) {
    uint64_t x = sampler_rng_next_u64(&a), y = sampler_rng_next_u64(&b), z = sampler_rng_next_u64(&c);
    CHECK(x == y);
    differ += x != z;
  }
  CHECK(differ > 990);
  for (int i = 0; i < 1000; i++) {
    double u = sampler_rng_next_unit(&a);
    CHECK(u >= 0.0 && u < 1.0);
  }
}

/* Golden values: the stream for seed 0 must never change (it would change every tenant's
 * seeded outputs), and must be the same on every platform the guest is built for. */
TEST(rng_golden_stream_seed_0) {
  struct sampler_rng r;
  sampler_rng_seed(&r, 0);
  const uint64_t want[4] = {0x99ec5f36cb75f2b4ull, 0xbf6e1f784956452aull, 0x1a5f849d4933e6e0ull,
                            0x6aa594f1262d2d2cull};
  for (int i = 0; i < 4; i++) CHECK(sampler_rng_next_u64(&r) == want[i]);
}

TEST(portable_exp_log_match_libm) {
  for (double x = -740.0; x <= 709.0; x += 0.37) {
    double want = exp(x), got = sampler_exp(x);
    CHECK(fabs(got - want) <= 4e-15 * want + 2e-323); /* subnormals: absolute */
  }
  CHECK(sampler_exp(-800.0) == 0.0);
  CHECK(isinf(sampler_exp(710.0)));
  CHECK(sampler_exp(0.0) == 1.0);
  for (double x = 1e-300; x < 1e300; x *= 3.7) {
    double want = log(x), got = sampler_log(x);
    CHECK(fabs(got - want) <= 4e-15 * fabs(want) + 1e-300);
  }
  CHECK(sampler_log(1.0) == 0.0);
  CHECK(isinf(sampler_log(0.0)) && sampler_log(0.0) < 0);
  CHECK(isnan(sampler_log(-1.0)));
  CHECK(fabs(sampler_log(5e-320) - log(5e-320)) < 1e-12); /* subnormal */
}

TEST(greedy_picks_argmax_lowest_id_on_tie) {
  struct sampler_params p;
  sampler_params_default(&p);
  p.temperature = 0.0f;
  struct sampler *s = make(&p, 8);
  CHECK(s);
  const float logits[8] = {0.1f, 2.0f, -1.0f, 3.5f, 3.4f, 0.0f, -9.0f, 1.0f};
  CHECK_EQ_INT(draw(s, logits, 8, NULL, 0, 0), 3);
  const float tie[8] = {0.1f, 5.0f, -1.0f, 3.5f, 5.0f, 0.0f, -9.0f, 5.0f};
  CHECK_EQ_INT(draw(s, tie, 8, NULL, 0, 0), 1);
  sampler_destroy(s);
}

static void fill_logits(float *l, int n, uint64_t seed) {
  struct sampler_rng r;
  sampler_rng_seed(&r, seed);
  for (int i = 0; i < n; i++) l[i] = (float)(sampler_rng_next_unit(&r) * 4.0 - 2.0);
}

TEST(same_seed_same_200_draws_different_seed_differs) {
  struct sampler_params p;
  sampler_params_default(&p);
  p.seed = 1234;
  float logits[64];
  fill_logits(logits, 64, 7);
  struct sampler *a = make(&p, 64), *b = make(&p, 64);
  p.seed = 1235;
  struct sampler *c = make(&p, 64);
  CHECK(a && b && c);
  int differ = 0;
  for (int i = 0; i < 200; i++) {
    int32_t x = draw(a, logits, 64, NULL, 0, 0), y = draw(b, logits, 64, NULL, 0, 0);
    int32_t z = draw(c, logits, 64, NULL, 0, 0);
    CHECK(x >= 0 && x == y);
    differ += x != z;
  }
  CHECK(differ > 100); /* 64 near-uniform choices: almost every draw differs */
  sampler_destroy(a);
  sampler_destroy(b);
  sampler_destroy(c);
}

/* The exact tokens of seed 99 over a fixed distribution: a change in the PRNG, exp, the
 * candidate order or the draw shows up here (and on another platform, as a difference). */
TEST(sampled_sequence_golden) {
  struct sampler_params p;
  sampler_params_default(&p);
  p.seed = 99;
  p.top_k = 20;
  p.top_p = 0.9f;
  p.temperature = 0.8f;
  float logits[64];
  fill_logits(logits, 64, 11);
  struct sampler *s = make(&p, 64);
  CHECK(s);
  const int32_t want[16] = {23, 28, 23, 15, 12, 19, 24, 7, 15, 28, 60, 19, 19, 19, 23, 37};
  for (int i = 0; i < 16; i++) CHECK_EQ_INT(draw(s, logits, 64, NULL, 0, 0), want[i]);
  sampler_destroy(s);
}

TEST(small_temperature_equals_greedy) {
  struct sampler_params p;
  sampler_params_default(&p);
  p.temperature = 0.001f;
  p.seed = 5;
  float logits[64];
  fill_logits(logits, 64, 3);
  logits[17] = 2.5f; /* unique maximum, 0.5 above the rest at most */
  struct sampler *s = make(&p, 64);
  CHECK(s);
  for (int i = 0; i < 200; i++) CHECK_EQ_INT(draw(s, logits, 64, NULL, 0, 0), 17);
  sampler_destroy(s);
}

TEST(top_k_1_equals_greedy) {
  struct sampler_params p;
  sampler_params_default(&p);
  p.top_k = 1;
  p.seed = 77;
  float logits[64];
  fill_logits(logits, 64, 4);
  int32_t argmax = 0;
  for (int i = 1; i < 64; i++)
    if (logits[i] > logits[argmax]) argmax = i;
  struct sampler *s = make(&p, 64);
  CHECK(s);
  for (int i = 0; i < 200; i++) CHECK_EQ_INT(draw(s, logits, 64, NULL, 0, 0), argmax);
  sampler_destroy(s);
}

TEST(top_k_restricts_support) {
  struct sampler_params p;
  sampler_params_default(&p);
  p.top_k = 5;
  p.seed = 2024;
  float logits[50];
  for (int i = 0; i < 50; i++) logits[i] = 0.01f * (float)((i * 37) % 50); /* near flat */
  /* the 5 largest: values 49..45 (times 0.01) */
  bool in_top[50] = {false};
  for (int i = 0; i < 50; i++) in_top[i] = (i * 37) % 50 >= 45;
  struct sampler *s = make(&p, 50);
  CHECK(s);
  int seen[50] = {0};
  for (int i = 0; i < 2000; i++) {
    int32_t t = draw(s, logits, 50, NULL, 0, 0);
    CHECK(t >= 0 && t < 50);
    CHECK(in_top[t]);
    seen[t]++;
  }
  for (int i = 0; i < 50; i++)
    if (in_top[i]) CHECK(seen[i] > 0);
  sampler_destroy(s);
}

/* Distribution with probabilities exactly 1/2, 1/4, 1/8, 1/16, 1/16, placed at scrambled ids
 * so the order of ids and of probabilities differ. */
static void crafted(float *l) {
  const int ids[5] = {3, 0, 4, 1, 2};
  const double pr[5] = {0.5, 0.25, 0.125, 0.0625, 0.0625};
  for (int i = 0; i < 5; i++) l[ids[i]] = (float)log(pr[i]);
}

static int support_mask(struct sampler *s, const float *l, int n, int draws) {
  int mask = 0;
  for (int i = 0; i < draws; i++) mask |= 1 << draw(s, l, n, NULL, 0, 0);
  return mask;
}

TEST(top_p_keeps_smallest_prefix_reaching_p) {
  float l[5];
  crafted(l);
  struct {
    float top_p;
    int mask; /* expected support as a bit set of ids */
  } cases[] = {
      {0.75f, (1 << 3) | (1 << 0)},                       /* 0.5 + 0.25 reaches 0.75 exactly */
      {0.76f, (1 << 3) | (1 << 0) | (1 << 4)},            /* needs the 0.125 token */
      {0.5f, 1 << 3},                                     /* the top token alone has 0.5 */
      {0.0f, 1 << 3},                                     /* at least one token is kept */
      {0.9f, (1 << 3) | (1 << 0) | (1 << 4) | (1 << 1)},  /* 0.9375 after the fourth */
      {1.0f, 0x1f},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    struct sampler_params p;
    sampler_params_default(&p);
    p.top_p = cases[c].top_p;
    p.seed = 8 + c;
    struct sampler *s = make(&p, 5);
    CHECK(s);
    int mask = support_mask(s, l, 5, 600);
    if (mask != cases[c].mask) printf("# top_p %g: support 0x%x, want 0x%x\n", (double)cases[c].top_p, mask, cases[c].mask);
    CHECK_EQ_INT(mask, cases[c].mask);
    sampler_destroy(s);
  }
}

TEST(top_p_large_vocab_uses_prefix_selection) {
  /* 20000 tokens: 3 dominant ones hold ~99% of the mass; top_p 0.9 must keep only them.
   * Exercises the growing-prefix path (no top_k). */
  enum { V = 20000 };
  static float l[V], row[V];
  for (int i = 0; i < V; i++) l[i] = -5.0f;
  l[12345] = 10.0f;
  l[7] = 9.5f;
  l[19999] = 9.0f;
  struct sampler_params p;
  sampler_params_default(&p);
  p.top_p = 0.9f;
  p.seed = 1;
  struct sampler *s = make(&p, V);
  CHECK(s);
  int seen[3] = {0};
  for (int i = 0; i < 300; i++) {
    memcpy(row, l, sizeof row);
    int32_t t = -1;
    CHECK(sampler_sample(s, row, NULL, 0, 0, &t, NULL, NULL, NULL, NULL, 0) == REALM_OK);
    CHECK(t == 12345 || t == 7 || t == 19999);
    seen[t == 12345 ? 0 : t == 7 ? 1 : 2]++;
  }
  CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
  /* top_p 0.999: the remaining mass is spread over 19997 tokens, so many prefix rounds. */
  sampler_destroy(s);
  p.top_p = 0.999f;
  s = make(&p, V);
  CHECK(s);
  int tail = 0;
  for (int i = 0; i < 300; i++) {
    memcpy(row, l, sizeof row);
    int32_t t = -1;
    CHECK(sampler_sample(s, row, NULL, 0, 0, &t, NULL, NULL, NULL, NULL, 0) == REALM_OK);
    CHECK(t >= 0 && t < V);
    tail += !(t == 12345 || t == 7 || t == 19999);
  }
  CHECK(tail < 10); /* the tail holds ~0.05% of the mass */
  sampler_destroy(s);
}

TEST(min_p_drops_tokens_below_fraction_of_max) {
  float l[4] = {logf(0.4f), logf(0.3f), logf(0.2f), logf(0.1f)};
  struct sampler_params p;
  sampler_params_default(&p);
  p.min_p = 0.3f; /* threshold 0.12: drops only the 0.1 token */
  p.seed = 3;
  struct sampler *s = make(&p, 4);
  CHECK(s);
  CHECK_EQ_INT(support_mask(s, l, 4, 600), 0x7);
  sampler_destroy(s);
  p.min_p = 0.6f; /* threshold 0.24: keeps 0.4 and 0.3 */
  s = make(&p, 4);
  CHECK(s);
  CHECK_EQ_INT(support_mask(s, l, 4, 600), 0x3);
  sampler_destroy(s);
  p.min_p = 1.0f; /* only the maximum */
  s = make(&p, 4);
  CHECK(s);
  CHECK_EQ_INT(support_mask(s, l, 4, 200), 0x1);
  sampler_destroy(s);
}

/* Runs one greedy sample and returns the processed logits the sampler leaves in the row. */
static int process(const struct sampler_params *p, float *row, int n, const int32_t *hist,
                   size_t n_hist, size_t n_prompt) {
  struct sampler *s = make(p, n);
  if (!s) return -1;
  int32_t t;
  int r = sampler_sample(s, row, hist, n_hist, n_prompt, &t, NULL, NULL, NULL, NULL, 0);
  sampler_destroy(s);
  return r;
}

TEST(repetition_penalty_divides_positive_multiplies_negative_in_window) {
  struct sampler_params p;
  sampler_params_default(&p);
  p.temperature = 0.0f;
  p.repetition_penalty = 2.0f;
  p.repeat_last_n = 4;
  float row[8] = {1.0f, 2.0f, -1.0f, 4.0f, 0.5f, -3.0f, 6.0f, 0.0f};
  /* Window = last 4: {3, 5, 3, 2}; token 6 is older, outside the window. 3 repeats but is
   * penalized once. */
  const int32_t hist[6] = {6, 1, 3, 5, 3, 2};
  CHECK(process(&p, row, 8, hist, 6, 2) == REALM_OK);
  CHECK(row[3] == 2.0f);   /* 4 / 2 */
  CHECK(row[5] == -6.0f);  /* -3 * 2 */
  CHECK(row[2] == -2.0f);  /* -1 * 2 */
  CHECK(row[6] == 6.0f);   /* outside the window */
  CHECK(row[1] == 2.0f);   /* outside the window */
  CHECK(row[0] == 1.0f && row[4] == 0.5f && row[7] == 0.0f);
  /* -1 = whole history */
  p.repeat_last_n = -1;
  float row2[8] = {1.0f, 2.0f, -1.0f, 4.0f, 0.5f, -3.0f, 6.0f, 0.0f};
  CHECK(process(&p, row2, 8, hist, 6, 2) == REALM_OK);
  CHECK(row2[6] == 3.0f && row2[1] == 1.0f && row2[3] == 2.0f);
}

TEST(frequency_and_presence_penalties_over_generated_tokens) {
  struct sampler_params p;
  sampler_params_default(&p);
  p.temperature = 0.0f;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  float row[8] = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  /* prompt {7, 7} is not penalized; generated: 3 three times, 5 once */
  const int32_t hist[6] = {7, 7, 3, 5, 3, 3};
  CHECK(process(&p, row, 8, hist, 6, 2) == REALM_OK);
  CHECK_NEAR(row[3], 1.0 - (3 * 0.5 + 0.25), 1e-6);
  CHECK_NEAR(row[5], 1.0 - (1 * 0.5 + 0.25), 1e-6);
  CHECK(row[7] == 1.0f);
  CHECK(row[0] == 1.0f);
  /* Negative values encourage repetition. */
  p.frequency_penalty = -1.0f;
  p.presence_penalty = 0.0f;
  float row2[8] = {0};
  CHECK(process(&p, row2, 8, hist, 6, 2) == REALM_OK);
  CHECK(row2[3] == 3.0f && row2[5] == 1.0f && row2[7] == 0.0f);
}

TEST(penalties_apply_after_bias) {
  /* Documented order: bias, then repetition penalty. 1 + 3 = 4, then / 2 = 2 (not 1/2+3). */
  struct sampler_params p;
  sampler_params_default(&p);
  p.temperature = 0.0f;
  p.repetition_penalty = 2.0f;
  struct sampler_logit_bias b[1] = {{4, 3.0f}};
  p.logit_bias = b;
  p.n_logit_bias = 1;
  float row[8] = {0};
  row[4] = 1.0f;
  const int32_t hist[1] = {4};
  CHECK(process(&p, row, 8, hist, 1, 0) == REALM_OK);
  CHECK(row[4] == 2.0f);
}

TEST(logit_bias_adds_and_minus_100_bans) {
  struct sampler_params p;
  sampler_params_default(&p);
  p.temperature = 0.0f;
  struct sampler_logit_bias b[2] = {{6, -100.0f}, {2, 1.5f}};
  p.logit_bias = b;
  p.n_logit_bias = 2;
  float row[8] = {0, 0, 1.0f, 0, 0, 0, 500.0f, 0};
  CHECK(process(&p, row, 8, NULL, 0, 0) == REALM_OK);
  CHECK(row[2] == 2.5f);
  CHECK(isinf(row[6]) && row[6] < 0);
  /* Sampling never picks the banned token even though it had by far the largest logit. */
  p.temperature = 1.0f;
  p.seed = 9;
  struct sampler *s = make(&p, 8);
  CHECK(s);
  const float l[8] = {0, 0, 1.0f, 0, 0, 0, 500.0f, 0};
  for (int i = 0; i < 200; i++) CHECK(draw(s, l, 8, NULL, 0, 0) != 6);
  sampler_destroy(s);
}

TEST(logprobs_are_log_softmax_of_scaled_logits) {
  struct sampler_params p;
  sampler_params_default(&p);
  p.logprobs = true;
  p.top_logprobs = 5;
  p.temperature = 0.5f;
  p.seed = 4;
  const float l[5] = {1.0f, 2.0f, 0.5f, -1.0f, 1.5f};
  struct sampler *s = make(&p, 5);
  CHECK(s);
  /* reference: log-softmax of l / 0.5 */
  double z[5], m = -1e300, sum = 0;
  for (int i = 0; i < 5; i++) {
    z[i] = l[i] / 0.5;
    if (z[i] > m) m = z[i];
  }
  for (int i = 0; i < 5; i++) sum += exp(z[i] - m);
  for (int k = 0; k < 20; k++) {
    float row[5];
    memcpy(row, l, sizeof row);
    int32_t tok = -1, n_top = -1;
    float lp = 1.0f;
    struct sampler_top_logprob top[5];
    CHECK(sampler_sample(s, row, NULL, 0, 0, &tok, &lp, top, &n_top, NULL, 0) == REALM_OK);
    CHECK_EQ_INT(n_top, 5);
    CHECK_NEAR(lp, z[tok] - m - log(sum), 1e-5);
    double total = 0;
    for (int i = 0; i < 5; i++) {
      total += exp(top[i].logprob);
      if (i > 0) CHECK(top[i].logprob <= top[i - 1].logprob);
      CHECK_NEAR(top[i].logprob, z[top[i].token] - m - log(sum), 1e-5);
    }
    CHECK_NEAR(total, 1.0, 1e-5);
    CHECK_EQ_INT(top[0].token, 1);
  }
  sampler_destroy(s);
}

TEST(logprobs_greedy_use_temperature_1_and_ignore_truncation) {
  struct sampler_params p;
  sampler_params_default(&p);
  p.logprobs = true;
  p.top_logprobs = 2;
  p.temperature = 0.0f;
  const float l[3] = {0.0f, 1.0f, 0.0f};
  struct sampler *s = make(&p, 3);
  CHECK(s);
  float row[3] = {0.0f, 1.0f, 0.0f};
  int32_t tok, n_top;
  float lp;
  struct sampler_top_logprob top[2];
  CHECK(sampler_sample(s, row, NULL, 0, 0, &tok, &lp, top, &n_top, NULL, 0) == REALM_OK);
  CHECK_EQ_INT(tok, 1);
  double want = 1.0 - log(exp(0.0) * 2 + exp(1.0));
  CHECK_NEAR(lp, want, 1e-6);
  CHECK_EQ_INT(n_top, 2);
  CHECK_EQ_INT(top[1].token, 0); /* tie between 0 and 2: lower id first */
  sampler_destroy(s);
  /* top_k = 1 truncates sampling but logprobs still describe the full distribution. */
  p.temperature = 1.0f;
  p.top_k = 1;
  s = make(&p, 3);
  CHECK(s);
  memcpy(row, l, sizeof row);
  CHECK(sampler_sample(s, row, NULL, 0, 0, &tok, &lp, top, &n_top, NULL, 0) == REALM_OK);
  CHECK_NEAR(lp, want, 1e-6);
  sampler_destroy(s);
}

TEST(invalid_parameters_name_the_field) {
  struct sampler_params p;
  struct sampler *s = NULL;
  char err[256];
  struct sampler_logit_bias bad_id[1] = {{100, 1.0f}};
  struct sampler_logit_bias bad_bias[1] = {{1, 150.0f}};
  struct sampler_logit_bias dup[2] = {{1, 1.0f}, {1, 2.0f}};
#define EXPECT_INVALID(stmt, needle)                                                 \
  do {                                                                               \
    sampler_params_default(&p);                                                      \
    stmt;                                                                            \
    err[0] = '\0';                                                                   \
    CHECK_EQ_INT(sampler_create(&p, 10, &s, err, sizeof err), REALM_E_INVALID_ARGUMENT); \
    CHECK(s == NULL);                                                                \
    CHECK_STR_CONTAINS(err, needle);                                                 \
  } while (0)
  EXPECT_INVALID(p.temperature = -0.5f, "temperature -0.5");
  EXPECT_INVALID(p.temperature = NAN, "temperature");
  EXPECT_INVALID(p.temperature = 3.0f, "temperature 3");
  EXPECT_INVALID(p.top_k = -1, "top_k -1");
  EXPECT_INVALID(p.top_p = 1.5f, "top_p 1.5");
  EXPECT_INVALID(p.min_p = -0.1f, "min_p");
  EXPECT_INVALID(p.repetition_penalty = 0.0f, "repetition_penalty 0");
  EXPECT_INVALID(p.repeat_last_n = -2, "repeat_last_n -2");
  EXPECT_INVALID(p.frequency_penalty = 2.5f, "frequency_penalty 2.5");
  EXPECT_INVALID(p.presence_penalty = -3.0f, "presence_penalty -3");
  EXPECT_INVALID((p.logit_bias = bad_id, p.n_logit_bias = 1), "logit_bias: token 100");
  EXPECT_INVALID((p.logit_bias = bad_bias, p.n_logit_bias = 1), "bias 150");
  EXPECT_INVALID((p.logit_bias = dup, p.n_logit_bias = 2), "more than once");
  EXPECT_INVALID(p.top_logprobs = 21, "top_logprobs 21");
  EXPECT_INVALID((p.logprobs = false, p.top_logprobs = 3), "requires logprobs");
#undef EXPECT_INVALID
  sampler_params_default(&p);
  CHECK_EQ_INT(sampler_create(&p, 0, &s, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "n_vocab 0");
}

TEST(nan_and_inf_logits) {
  struct sampler_params p;
  sampler_params_default(&p);
  p.seed = 12;
  struct sampler *s = make(&p, 4);
  CHECK(s);
  const float l[4] = {NAN, 0.0f, NAN, 0.5f};
  for (int i = 0; i < 100; i++) {
    int32_t t = draw(s, l, 4, NULL, 0, 0);
    CHECK(t == 1 || t == 3);
  }
  const float pinf[4] = {0.0f, INFINITY, NAN, 3.0f};
  for (int i = 0; i < 20; i++) CHECK_EQ_INT(draw(s, pinf, 4, NULL, 0, 0), 1);
  float all_bad[4] = {NAN, -INFINITY, NAN, -INFINITY};
  int32_t t = 77;
  char err[256] = "";
  CHECK_EQ_INT(sampler_sample(s, all_bad, NULL, 0, 0, &t, NULL, NULL, NULL, err, sizeof err),
               REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(t, 77); /* untouched on failure */
  CHECK_STR_CONTAINS(err, "-inf");
  sampler_destroy(s);
}

TEST(bad_history_is_refused) {
  struct sampler_params p;
  sampler_params_default(&p);
  struct sampler *s = make(&p, 4);
  CHECK(s);
  float row[4] = {0};
  const int32_t hist[2] = {1, 9};
  int32_t t;
  char err[256] = "";
  CHECK_EQ_INT(sampler_sample(s, row, hist, 2, 0, &t, NULL, NULL, NULL, err, sizeof err),
               REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "history[1] = 9");
  CHECK_EQ_INT(sampler_sample(s, row, hist, 1, 2, &t, NULL, NULL, NULL, err, sizeof err),
               REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "n_prompt 2");
  sampler_destroy(s);
}

TEST(draws_follow_the_distribution) {
  struct sampler_params p;
  sampler_params_default(&p);
  p.seed = 31337;
  float l[4] = {logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f)};
  struct sampler *s = make(&p, 4);
  CHECK(s);
  int count[4] = {0};
  const int N = 20000;
  for (int i = 0; i < N; i++) count[draw(s, l, 4, NULL, 0, 0)]++;
  for (int i = 0; i < 4; i++) CHECK_NEAR((double)count[i] / N, 0.1 * (i + 1), 0.015);
  sampler_destroy(s);
}

/* Not a benchmark (no timing is asserted): checks that a 152k vocabulary is handled and
 * prints the per-token cost as a TAP comment for the curious. */
TEST(large_vocab_top_k_and_top_p) {
  enum { V = 152064 };
  static float l[V], row[V];
  fill_logits(l, V, 5);
  struct sampler_params p;
  sampler_params_default(&p);
  p.top_k = 40;
  p.top_p = 0.95f;
  p.logprobs = true;
  p.top_logprobs = 5;
  struct sampler *s = make(&p, V);
  CHECK(s);
  clock_t t0 = clock();
  for (int i = 0; i < 20; i++) {
    memcpy(row, l, sizeof row);
    int32_t t;
    float lp;
    struct sampler_top_logprob top[5];
    int32_t n_top;
    CHECK(sampler_sample(s, row, NULL, 0, 0, &t, &lp, top, &n_top, NULL, 0) == REALM_OK);
    CHECK(lp <= top[0].logprob);
    CHECK(l[t] >= l[top[4].token] - 2.0f); /* from the top 40 of ~uniform(-2, 2) */
  }
  double ms = 1000.0 * (double)(clock() - t0) / CLOCKS_PER_SEC / 20;
  printf("# V=%d top_k=40 top_p=0.95 logprobs: %.2f ms/token\n", V, ms);
  sampler_destroy(s);
  sampler_params_default(&p);
  p.top_p = 0.9f;
  s = make(&p, V);
  CHECK(s);
  t0 = clock();
  for (int i = 0; i < 5; i++) {
    memcpy(row, l, sizeof row);
    int32_t t;
    CHECK(sampler_sample(s, row, NULL, 0, 0, &t, NULL, NULL, NULL, NULL, 0) == REALM_OK);
  }
  ms = 1000.0 * (double)(clock() - t0) / CLOCKS_PER_SEC / 5;
  printf("# V=%d top_p=0.9 on a flat distribution (worst case): %.2f ms/token\n", V, ms);
  sampler_destroy(s);
}

/* ---- the one-pass greedy path (argmax + running log-sum-exp over the raw row) ---- */

/* Log-softmax of the sanitized row at `tok`, in double precision, as the reference for the
 * sampler's single-precision running log-sum-exp. */
static double ref_greedy_logprob(const float *raw, int n, int tok) {
  double m = -INFINITY;
  for (int i = 0; i < n; i++) {
    double z = isnan(raw[i]) ? -INFINITY : raw[i] == INFINITY ? FLT_MAX : raw[i];
    if (z > m) m = z;
  }
  double sum = 0.0;
  for (int i = 0; i < n; i++) {
    double z = isnan(raw[i]) ? -INFINITY : raw[i] == INFINITY ? FLT_MAX : raw[i];
    if (z != -INFINITY) sum += exp(z - m);
  }
  double zt = raw[tok] == INFINITY ? FLT_MAX : raw[tok];
  return (zt - m) - log(sum); /* not zt - (m + log sum): m may be FLT_MAX */
}

/* The row as sampler.h promises it back: NaN -> -inf, +inf -> FLT_MAX, the rest unchanged. */
static int check_sanitized(const float *raw, const float *row, int n) {
  for (int i = 0; i < n; i++) {
    float want = isnan(raw[i]) ? -INFINITY : raw[i] == INFINITY ? FLT_MAX : raw[i];
    if (memcmp(&want, &row[i], sizeof want) != 0) {
      printf("# row[%d] = %g after sampling %g, want %g\n", i, row[i], raw[i], want);
      return -1;
    }
  }
  return 0;
}

/* One greedy sample (logprobs on) of a copy of raw; checks token, logprob and the row. */
static void greedy_case(const float *raw, int n, int want_tok) {
  struct sampler_params p;
  sampler_params_default(&p);
  p.temperature = 0.0f;
  p.logprobs = true;
  struct sampler *s = make(&p, n);
  CHECK(s);
  static float row[40000];
  CHECK(n <= (int)(sizeof row / sizeof row[0]));
  memcpy(row, raw, (size_t)n * sizeof *row);
  int32_t tok = -1;
  float lp = 1.0f;
  char err[256] = "";
  CHECK_EQ_INT(sampler_sample(s, row, NULL, 0, 0, &tok, &lp, NULL, NULL, err, sizeof err),
               REALM_OK);
  CHECK_EQ_INT(tok, want_tok);
  CHECK_NEAR(lp, ref_greedy_logprob(raw, n, want_tok), 1e-6);
  CHECK(lp <= 0.0f);
  CHECK_EQ_INT(check_sanitized(raw, row, n), 0);
  /* Without logprobs: the same token, logprob 0, the same sanitized row. */
  sampler_destroy(s);
  p.logprobs = false;
  s = make(&p, n);
  CHECK(s);
  memcpy(row, raw, (size_t)n * sizeof *row);
  CHECK_EQ_INT(sampler_sample(s, row, NULL, 0, 0, &tok, &lp, NULL, NULL, err, sizeof err),
               REALM_OK);
  CHECK_EQ_INT(tok, want_tok);
  CHECK(lp == 0.0f);
  CHECK_EQ_INT(check_sanitized(raw, row, n), 0);
  sampler_destroy(s);
}

TEST(greedy_one_pass_nan_and_infinities) {
  /* NaN first (it must not seed the running max), -inf entries, a tie: lowest id. */
  const float a[8] = {NAN, 1.0f, -INFINITY, 3.0f, NAN, 3.0f, 2.5f, -INFINITY};
  greedy_case(a, 8, 3);
  /* Two +inf: both FLT_MAX, the first wins, each has half the mass (logprob -log 2). */
  const float b[6] = {NAN, 0.0f, INFINITY, -INFINITY, INFINITY, 7.0f};
  greedy_case(b, 6, 2);
  /* A single finite entry among NaN and -inf: probability 1. */
  const float c[5] = {NAN, -INFINITY, -INFINITY, -2.0f, NAN};
  greedy_case(c, 5, 3);
  /* The maximum last, after a long run of smaller values (the running log-sum-exp rescales
   * every time the max grows), and a huge finite spread. */
  const float d[6] = {-80.0f, -3.0f, 0.0f, 40.0f, -INFINITY, 41.0f};
  greedy_case(d, 6, 5);
}

TEST(greedy_one_pass_logprob_matches_double_reference_at_32k) {
  enum { N = 32000 };
  static float raw[N];
  struct sampler_rng r;
  sampler_rng_seed(&r, 99);
  /* Logits in [-12, 12] like a real model's, rising so the running max is replaced often,
   * with NaN and -inf entries sprinkled in. */
  for (int i = 0; i < N; i++) raw[i] = (float)(sampler_rng_next_unit(&r) * 24.0 - 12.0);
  for (int i = 0; i < N; i += 97) raw[i] = NAN;
  for (int i = 50; i < N; i += 131) raw[i] = -INFINITY;
  raw[31000] = 12.5f;
  raw[31001] = 12.5f; /* tie: 31000 */
  greedy_case(raw, N, 31000);
  /* Flat row: every token equally likely, the first wins, logprob -log(N). */
  for (int i = 0; i < N; i++) raw[i] = 0.25f;
  greedy_case(raw, N, 0);
}
