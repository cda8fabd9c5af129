/*
 * sampler.c — logits to next token: bias, penalties, temperature, top-k/top-p/min-p, draw.
 *
 * The contract (order of operations, logprob definition) is in sampler.h and
 * docs/sampling.md. This file is about doing it in O(V) or O(V log k) per token for
 * vocabularies of 32k-150k entries:
 *   - every pass over the vocabulary is linear; the only sorting is of small selections;
 *   - top-k uses a bounded heap (O(V log k));
 *   - top-p over a set that is not already sorted (no top-k) uses a weighted quickselect:
 *     partition around a pivot, keep the side that must contain the cut, expected O(V), no
 *     sort at all; after top-k the k survivors are sorted and a cumulative walk suffices;
 *   - min-p and the final draw run over the survivors in whatever order they are in;
 *   - the vocabulary is read once: sanitizing is folded into the pass that finds the maximum
 *     (the few entries bias and penalties touch are sanitized before them), and greedy
 *     sampling with logprobs is that single pass over the floats, with no candidate array;
 *   - the log-partition function behind a reported logprob uses lse_exp (below), an exp
 *     about four times cheaper than sampler_exp and exact to float precision; sampler_exp
 *     stays where a probability feeds the random draw, so draws are unchanged. Per-entry
 *     weights over the whole vocabulary are computed only when the draw needs them (no
 *     top-k).
 * Candidates are compared by (value descending, token id ascending): a strict total order, so
 * selections and ties are the same on every platform. Probabilities are computed in double
 * with sampler_exp, so the draw is bit-reproducible (see sampler_math.h).
 */
#include "sampler.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realm/error.h"
#include "sampler_math.h"
#include "sampler_rng.h"

/* One candidate token: v is its temperature-scaled logit, w = exp(v - vmax) its unnormalized
 * probability (filled only when a stage needs it, so top-k over a large vocabulary does not
 * pay one exp per token). */
struct cand {
  double v;
  double w;
  int32_t id;
};

struct sampler {
  struct sampler_params p;          /* validated copy; p.logit_bias points at bias below */
  struct sampler_logit_bias *bias;  /* [n_bias] own copy of the request's logit_bias */
  size_t n_bias;
  int32_t n_vocab;
  struct sampler_rng rng;
  struct cand *cands;               /* [n_vocab] finite candidates of the current step */
  struct cand *work;                /* [n_vocab] selection output (heap, sorted prefixes) */
  int32_t *counts;                  /* [n_vocab] occurrence counts; all zero between calls */
};

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

void sampler_params_default(struct sampler_params *p) {
  memset(p, 0, sizeof *p);
  p->temperature = 1.0f;
  p->top_k = 0;
  p->top_p = 1.0f;
  p->min_p = 0.0f;
  p->repetition_penalty = 1.0f;
  p->repeat_last_n = 64;
  p->frequency_penalty = 0.0f;
  p->presence_penalty = 0.0f;
  p->seed = 0;
}

/* True when x is a finite float inside [lo, hi]. NaN fails every comparison, so it is
 * rejected here too. */
static bool in_range(float x, float lo, float hi) {
  return x >= lo && x <= hi;
}

static int cmp_bias_token(const void *a, const void *b) {
  const struct sampler_logit_bias *x = a, *y = b;
  return (x->token > y->token) - (x->token < y->token);
}

static int validate_params(const struct sampler_params *p, int32_t n_vocab, char *err,
                           size_t errlen) {
  if (n_vocab <= 0) {
    set_err(err, errlen, "n_vocab %d: must be positive", (int)n_vocab);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (!in_range(p->temperature, 0.0f, SAMPLER_MAX_TEMPERATURE)) {
    set_err(err, errlen, "temperature %g: must be between 0 and %g", (double)p->temperature,
            (double)SAMPLER_MAX_TEMPERATURE);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (p->top_k < 0) {
    set_err(err, errlen, "top_k %d: must be 0 (off) or positive", (int)p->top_k);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (!in_range(p->top_p, 0.0f, 1.0f)) {
    set_err(err, errlen, "top_p %g: must be between 0 and 1", (double)p->top_p);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (!in_range(p->min_p, 0.0f, 1.0f)) {
    set_err(err, errlen, "min_p %g: must be between 0 and 1", (double)p->min_p);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (!(p->repetition_penalty > 0.0f && p->repetition_penalty <= SAMPLER_MAX_REPETITION_PENALTY)) {
    set_err(err, errlen, "repetition_penalty %g: must be above 0 and at most %g (1 = off)",
            (double)p->repetition_penalty, (double)SAMPLER_MAX_REPETITION_PENALTY);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (p->repeat_last_n < -1 || p->repeat_last_n > SAMPLER_MAX_REPEAT_LAST_N) {
    set_err(err, errlen, "repeat_last_n %d: must be -1 (whole history), 0 (off) or up to %d",
            (int)p->repeat_last_n, SAMPLER_MAX_REPEAT_LAST_N);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (!in_range(p->frequency_penalty, -SAMPLER_MAX_ABS_FREQ_PRESENCE, SAMPLER_MAX_ABS_FREQ_PRESENCE)) {
    set_err(err, errlen, "frequency_penalty %g: must be between -%g and %g",
            (double)p->frequency_penalty, (double)SAMPLER_MAX_ABS_FREQ_PRESENCE,
            (double)SAMPLER_MAX_ABS_FREQ_PRESENCE);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (!in_range(p->presence_penalty, -SAMPLER_MAX_ABS_FREQ_PRESENCE, SAMPLER_MAX_ABS_FREQ_PRESENCE)) {
    set_err(err, errlen, "presence_penalty %g: must be between -%g and %g",
            (double)p->presence_penalty, (double)SAMPLER_MAX_ABS_FREQ_PRESENCE,
            (double)SAMPLER_MAX_ABS_FREQ_PRESENCE);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (p->n_logit_bias > SAMPLER_MAX_LOGIT_BIAS_ENTRIES) {
    set_err(err, errlen, "logit_bias: %zu entries, at most %d allowed", p->n_logit_bias,
            SAMPLER_MAX_LOGIT_BIAS_ENTRIES);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (p->n_logit_bias > 0 && !p->logit_bias) {
    set_err(err, errlen, "logit_bias: %zu entries but no array", p->n_logit_bias);
    return REALM_E_INVALID_ARGUMENT;
  }
  for (size_t i = 0; i < p->n_logit_bias; i++) {
    const struct sampler_logit_bias *b = &p->logit_bias[i];
    if (b->token < 0 || b->token >= n_vocab) {
      set_err(err, errlen, "logit_bias: token %d is not a token id (vocabulary has %d)",
              (int)b->token, (int)n_vocab);
      return REALM_E_INVALID_ARGUMENT;
    }
    if (!in_range(b->bias, -SAMPLER_MAX_ABS_LOGIT_BIAS, SAMPLER_MAX_ABS_LOGIT_BIAS)) {
      set_err(err, errlen, "logit_bias: token %d has bias %g, must be between -100 and 100",
              (int)b->token, (double)b->bias);
      return REALM_E_INVALID_ARGUMENT;
    }
  }
  if (p->top_logprobs < 0 || p->top_logprobs > SAMPLER_MAX_TOP_LOGPROBS) {
    set_err(err, errlen, "top_logprobs %d: must be between 0 and %d", (int)p->top_logprobs,
            SAMPLER_MAX_TOP_LOGPROBS);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (p->top_logprobs > 0 && !p->logprobs) {
    set_err(err, errlen, "top_logprobs %d: requires logprobs to be true", (int)p->top_logprobs);
    return REALM_E_INVALID_ARGUMENT;
  }
  return REALM_OK;
}

int sampler_create(const struct sampler_params *p, int32_t n_vocab, struct sampler **ret_sampler,
                   char *err, size_t errlen) {
  if (!p || !ret_sampler) {
    set_err(err, errlen, "sampler_create: params and ret_sampler are required");
    return REALM_E_INVALID_ARGUMENT;
  }
  int r = validate_params(p, n_vocab, err, errlen);
  if (r < 0) return r;

  struct sampler *s = calloc(1, sizeof *s);
  if (!s) goto nomem;
  s->p = *p;
  s->n_vocab = n_vocab;
  s->n_bias = p->n_logit_bias;
  if (s->n_bias > 0) {
    s->bias = malloc(s->n_bias * sizeof *s->bias);
    if (!s->bias) goto nomem;
    memcpy(s->bias, p->logit_bias, s->n_bias * sizeof *s->bias);
    /* Sorted so a duplicate is two neighbours; a JSON object cannot repeat a key, so a
     * duplicate means a caller bug and is refused rather than silently summed. */
    qsort(s->bias, s->n_bias, sizeof *s->bias, cmp_bias_token);
    for (size_t i = 1; i < s->n_bias; i++) {
      if (s->bias[i].token == s->bias[i - 1].token) {
        set_err(err, errlen, "logit_bias: token %d is listed more than once", (int)s->bias[i].token);
        sampler_destroy(s);
        return REALM_E_INVALID_ARGUMENT;
      }
    }
  }
  s->p.logit_bias = s->bias;
  s->cands = malloc((size_t)n_vocab * sizeof *s->cands);
  s->work = malloc((size_t)n_vocab * sizeof *s->work);
  s->counts = calloc((size_t)n_vocab, sizeof *s->counts);
  if (!s->cands || !s->work || !s->counts) goto nomem;
  sampler_rng_seed(&s->rng, p->seed);
  *ret_sampler = s;
  return REALM_OK;

nomem:
  sampler_destroy(s);
  set_err(err, errlen, "sampler_create: out of memory for a vocabulary of %d", (int)n_vocab);
  return REALM_E_NOMEM;
}

void sampler_destroy(struct sampler *s) {
  if (!s) return;
  free(s->bias);
  free(s->cands);
  free(s->work);
  free(s->counts);
  free(s);
}

/* ---- candidate ordering and selection ------------------------------------------------- */

/* a ranks before b: larger value, then smaller token id. */
static bool cand_better(const struct cand *a, const struct cand *b) {
  return a->v > b->v || (a->v == b->v && a->id < b->id);
}

/* Heap whose root is the WORST kept candidate, so a better newcomer replaces the root. */
static void heap_sift_down(struct cand *h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, worst = i;
    if (l < n && cand_better(&h[worst], &h[l])) worst = l;
    if (r < n && cand_better(&h[worst], &h[r])) worst = r;
    if (worst == i) return;
    struct cand t = h[i];
    h[i] = h[worst];
    h[worst] = t;
    i = worst;
  }
}

/* Writes the k best of in[0..n) to out[0..k), best first. O(n log k). 1 <= k <= n. */
static void select_top(const struct cand *in, size_t n, size_t k, struct cand *out) {
  for (size_t i = 0; i < k; i++) out[i] = in[i];
  for (size_t i = k / 2; i-- > 0;) heap_sift_down(out, k, i);
  for (size_t i = k; i < n; i++) {
    if (cand_better(&in[i], &out[0])) {
      out[0] = in[i];
      heap_sift_down(out, k, 0);
    }
  }
  /* Heapsort: moving the worst to the end each time leaves the array best first. */
  for (size_t end = k; end > 1; end--) {
    struct cand t = out[0];
    out[0] = out[end - 1];
    out[end - 1] = t;
    heap_sift_down(out, end - 1, 0);
  }
}

/* ---- logit processing ------------------------------------------------------------------ */

static float clamp_logit(float x) {
  if (x != x) return -INFINITY; /* NaN: the token cannot be chosen */
  if (x == INFINITY) return FLT_MAX; /* keep arithmetic finite; still the most likely */
  return x;
}

static void apply_bias(const struct sampler *s, float *logits) {
  for (size_t i = 0; i < s->n_bias; i++) {
    const struct sampler_logit_bias *b = &s->bias[i];
    /* OpenAI: "-100 should result in a ban". Adding -100 only makes it unlikely when the
     * logit is large, so make it exact. */
    if (b->bias <= -SAMPLER_MAX_ABS_LOGIT_BIAS)
      logits[b->token] = -INFINITY;
    else
      logits[b->token] = clamp_logit(logits[b->token] + b->bias);
  }
}

static void apply_repetition_penalty(struct sampler *s, float *logits, const int32_t *history,
                                     size_t n_history) {
  float penalty = s->p.repetition_penalty;
  if (penalty == 1.0f || s->p.repeat_last_n == 0 || n_history == 0) return;
  size_t window = s->p.repeat_last_n < 0 ? n_history : (size_t)s->p.repeat_last_n;
  size_t start = n_history > window ? n_history - window : 0;
  /* counts[] marks tokens already penalized so each distinct token is penalized once, as in
   * llama.cpp; the second loop restores the all-zero invariant. */
  for (size_t i = start; i < n_history; i++) {
    int32_t t = history[i];
    if (s->counts[t]) continue;
    s->counts[t] = 1;
    float z = logits[t];
    logits[t] = clamp_logit(z > 0.0f ? z / penalty : z * penalty);
  }
  for (size_t i = start; i < n_history; i++) s->counts[history[i]] = 0;
}

static void apply_frequency_presence(struct sampler *s, float *logits, const int32_t *generated,
                                     size_t n_generated) {
  float fp = s->p.frequency_penalty, pp = s->p.presence_penalty;
  if ((fp == 0.0f && pp == 0.0f) || n_generated == 0) return;
  for (size_t i = 0; i < n_generated; i++) s->counts[generated[i]]++;
  for (size_t i = 0; i < n_generated; i++) {
    int32_t t = generated[i];
    int32_t c = s->counts[t];
    if (c == 0) continue; /* already applied for this token */
    logits[t] = clamp_logit(logits[t] - ((float)c * fp + pp));
    s->counts[t] = 0;
  }
}

/* Sanitizes (step 0) the entries that steps 1-3 read, so they see exactly what they would
 * after sanitizing the whole row; the rest is sanitized by the single pass over the row that
 * follows them (clamp_logit is idempotent). */
static void sanitize_touched(const struct sampler *s, float *logits, const int32_t *history,
                             size_t n_history, size_t n_prompt) {
  for (size_t i = 0; i < s->n_bias; i++)
    logits[s->bias[i].token] = clamp_logit(logits[s->bias[i].token]);
  if (s->p.repetition_penalty != 1.0f && s->p.repeat_last_n != 0) {
    size_t window = s->p.repeat_last_n < 0 ? n_history : (size_t)s->p.repeat_last_n;
    for (size_t i = n_history > window ? n_history - window : 0; i < n_history; i++)
      logits[history[i]] = clamp_logit(logits[history[i]]);
  }
  if (s->p.frequency_penalty != 0.0f || s->p.presence_penalty != 0.0f)
    for (size_t i = n_prompt; i < n_history; i++)
      logits[history[i]] = clamp_logit(logits[history[i]]);
}

/* ---- the log-partition function for reported logprobs ----------------------------------- */

/* Terms exp(d) with d below -LSE_DROP are left out of the sum: each is < 1e-13 of the largest
 * term, so even 150k of them move the sum by < 2e-8 relative, below a float logprob's
 * resolution. */
#define LSE_DROP 30.0

/* e^d for -LSE_DROP <= d <= 0, relative error < 1e-8: d·log2(e) = k + f with k an integer
 * and |f| <= 1/2 (rounded by the 1.5·2^52 trick, no float-to-int conversion), 2^f by its
 * Taylor series to degree 7, 2^k put straight into the exponent bits. Only IEEE +, -, * and
 * bit moves, so like sampler_exp it gives the same bits on every platform; it is used only
 * for the reported logprob, never for a probability the draw uses. */
static double lse_exp(double d) {
  const double round_magic = 6755399441055744.0; /* 1.5 * 2^52 */
  double t = d * 1.4426950408889634;             /* log2(e) */
  double r = t + round_magic;
  double k = r - round_magic;
  double f = t - k;
  uint64_t bits;
  memcpy(&bits, &r, sizeof bits);
  int32_t ki = (int32_t)(uint32_t)bits; /* low bits of r hold k (two's complement) */
  /* Σ (ln 2)^n / n! · f^n, n = 0..7; the first term left out is < 5.2e-9 at |f| = 1/2. */
  double p = 1.5252733804059838e-05;
  p = p * f + 1.5403530393381606e-04;
  p = p * f + 1.3333558146428441e-03;
  p = p * f + 9.6181291076284770e-03;
  p = p * f + 5.5504108664821576e-02;
  p = p * f + 2.4022650695910071e-01;
  p = p * f + 6.9314718055994531e-01;
  p = p * f + 1.0;
  uint64_t scale_bits = (uint64_t)(int64_t)(ki + 1023) << 52;
  double scale;
  memcpy(&scale, &scale_bits, sizeof scale);
  return p * scale;
}

/* log Σ exp(c[i].v) over c[0..n), given vmax = max c[i].v. */
static double log_partition(const struct cand *c, size_t n, double vmax) {
  double sum = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = c[i].v - vmax;
    if (d >= -LSE_DROP) sum += lse_exp(d);
  }
  return vmax + sampler_log(sum);
}

/* Greedy with no alternatives, the common case, in one pass over the row: the argmax (lowest
 * id on ties) and, when want_logprob, the partition sum relative to the running maximum
 * (rescaled on the rare new maximum). The pass reads the raw row: NaN never compares greater
 * and -inf adds nothing, so only NaN and +inf would be sanitized differently; one seen
 * (!(x <= FLT_MAX) is true for exactly those) sends the row through clamp_logit and the pass
 * runs again. Returns false when every entry is -inf. */
static bool greedy_pass(float *logits, int32_t V, bool want_logprob, int32_t *ret_token,
                        float *ret_logprob) {
  int32_t best = -1;
  float zmax = -INFINITY;
  double sum = 0.0; /* Σ exp(z - zmax) over the entries seen so far */
  bool unsanitized = false;
  /* Two copies of the loop so the common one tests nothing per entry it does not need. */
  if (want_logprob) {
    double dmax = -INFINITY;
    for (int32_t i = 0; i < V; i++) {
      float x = logits[i];
      unsanitized |= !(x <= FLT_MAX);
      if (x > zmax) {
        /* earlier terms were relative to the old maximum */
        sum = (best < 0 ? 0.0 : sum * sampler_exp(dmax - (double)x)) + 1.0;
        zmax = x;
        dmax = (double)x;
        best = i;
      } else {
        double d = (double)x - dmax;
        if (d >= -LSE_DROP) sum += lse_exp(d); /* -inf and NaN fail the test */
      }
    }
  } else {
    for (int32_t i = 0; i < V; i++) {
      float x = logits[i];
      unsanitized |= !(x <= FLT_MAX);
      if (x > zmax) {
        zmax = x;
        best = i;
      }
    }
  }
  if (unsanitized) {
    for (int32_t i = 0; i < V; i++) logits[i] = clamp_logit(logits[i]);
    return greedy_pass(logits, V, want_logprob, ret_token, ret_logprob); /* now sanitized */
  }
  if (best < 0) return false;
  *ret_token = best;
  *ret_logprob = want_logprob ? (float)-sampler_log(sum) : 0.0f;
  return true;
}

/* ---- sampling ---------------------------------------------------------------------------- */

static void fill_weights(struct cand *c, size_t n, double vmax) {
  for (size_t i = 0; i < n; i++) c[i].w = sampler_exp(c[i].v - vmax);
}

static double sum_weights(const struct cand *c, size_t n) {
  double total = 0.0;
  for (size_t i = 0; i < n; i++) total += c[i].w;
  return total;
}

/* Relative slack when comparing a cumulative mass with top_p, so that a prefix whose mass is
 * p up to rounding counts as reaching p (otherwise p = 0.75 over {0.5, 0.25, ...} could keep
 * a third token because 0.5 + 0.25 rounded to 0.7499999999). */
#define TOP_P_SLACK 1e-9

static void swap_cand(struct cand *a, struct cand *b) {
  struct cand t = *a;
  *a = *b;
  *b = t;
}

/* Index of the median of c[a], c[b], c[d] under cand_better: a deterministic pivot. */
static size_t median3(const struct cand *c, size_t a, size_t b, size_t d) {
  if (cand_better(&c[a], &c[b])) {
    if (cand_better(&c[b], &c[d])) return b;
    return cand_better(&c[a], &c[d]) ? d : a;
  }
  if (cand_better(&c[a], &c[d])) return a;
  return cand_better(&c[b], &c[d]) ? d : b;
}

/* Smallest k such that the k best of c[0..n) carry at least `target` weight. Rearranges c so
 * those k come first (in no particular, but deterministic, order). Expected O(n).
 * Invariant: c[0..lo) are all in the answer and better than c[lo..n); c[hi..n) are not
 * needed; need = target - weight(c[0..lo)) > 0. */
static size_t weighted_select(struct cand *c, size_t n, double target, struct cand *work) {
  size_t lo = 0, hi = n;
  double need = target;
  int rounds = 0;
  while (hi - lo > 1) {
    if (++rounds > 200) {
      /* Degenerate pivots (not expected from median-of-three on real logits): finish with a
       * sort of what is left, so the worst case stays O(n log n). */
      select_top(c + lo, hi - lo, hi - lo, work);
      memcpy(c + lo, work, (hi - lo) * sizeof *c);
      for (size_t i = lo; i < hi; i++) {
        need -= c[i].w;
        if (need <= 0) return i + 1;
      }
      return hi;
    }
    size_t m = median3(c, lo, lo + (hi - lo) / 2, hi - 1);
    swap_cand(&c[m], &c[hi - 1]);
    const struct cand pivot = c[hi - 1];
    size_t store = lo;
    double better_mass = 0.0;
    for (size_t i = lo; i < hi - 1; i++) {
      if (cand_better(&c[i], &pivot)) {
        better_mass += c[i].w;
        swap_cand(&c[i], &c[store++]);
      }
    }
    swap_cand(&c[store], &c[hi - 1]); /* pivot now at `store` */
    if (better_mass >= need) {
      hi = store; /* the cut is among the strictly better ones */
      continue;
    }
    need -= better_mass;
    if (pivot.w >= need) return store + 1;
    need -= pivot.w;
    lo = store + 1;
  }
  return hi > lo ? lo + 1 : (lo > 0 ? lo : 1);
}

/* Applies top-p to c[0..*n) (weights filled). A sorted set is cut by a cumulative walk; an
 * unsorted one by weighted_select. Always keeps at least one candidate. */
static void apply_top_p(struct sampler *s, struct cand *c, size_t *n, bool sorted) {
  double target = (double)s->p.top_p * sum_weights(c, *n) * (1.0 - TOP_P_SLACK);
  if (!sorted) {
    *n = weighted_select(c, *n, target, s->work);
    return;
  }
  double cum = 0.0;
  for (size_t j = 0; j < *n; j++) {
    cum += c[j].w;
    if (cum >= target) {
      *n = j + 1;
      return;
    }
  }
  /* rounding left the whole set short of p: keep everything */
}

/* Keeps candidates with probability >= min_p * max probability, preserving order. Weights are
 * relative to the maximum (w_max = 1), so the test is w >= min_p. */
static void apply_min_p(const struct sampler *s, struct cand *c, size_t *n) {
  double min_p = s->p.min_p;
  size_t kept = 0;
  for (size_t i = 0; i < *n; i++)
    if (c[i].w >= min_p) c[kept++] = c[i];
  *n = kept; /* the maximum itself has w = 1 >= min_p, so kept >= 1 */
}

int sampler_sample(struct sampler *s, float *logits, const int32_t *history, size_t n_history,
                   size_t n_prompt, int32_t *ret_token, float *ret_logprob,
                   struct sampler_top_logprob *ret_top, int32_t *ret_n_top, char *err,
                   size_t errlen) {
  if (!s || !logits || !ret_token || (n_history > 0 && !history)) {
    set_err(err, errlen, "sampler_sample: sampler, logits, ret_token and history are required");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (n_prompt > n_history) {
    set_err(err, errlen, "n_prompt %zu: larger than the history (%zu tokens)", n_prompt, n_history);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (s->p.top_logprobs > 0 && (!ret_top || !ret_n_top)) {
    set_err(err, errlen, "top_logprobs %d: ret_top and ret_n_top are required",
            (int)s->p.top_logprobs);
    return REALM_E_INVALID_ARGUMENT;
  }
  const int32_t V = s->n_vocab;
  for (size_t i = 0; i < n_history; i++) {
    if (history[i] < 0 || history[i] >= V) {
      set_err(err, errlen, "history[%zu] = %d: not a token id (vocabulary has %d)", i,
              (int)history[i], (int)V);
      return REALM_E_INVALID_ARGUMENT;
    }
  }

  /* Steps 1-3: bias, penalties, in place on the caller's row; step 0 for the entries they
   * read now, for the rest in the pass over the row below. */
  sanitize_touched(s, logits, history, n_history, n_prompt);
  apply_bias(s, logits);
  apply_repetition_penalty(s, logits, history, n_history);
  apply_frequency_presence(s, logits, history + n_prompt, n_history - n_prompt);

  const bool greedy = s->p.temperature == 0.0f;
  if (greedy && s->p.top_logprobs == 0) {
    int32_t token = 0;
    float lp = 0.0f;
    if (!greedy_pass(logits, V, s->p.logprobs, &token, &lp)) {
      set_err(err, errlen,
              "no token can be sampled: all %d logits are -inf, NaN or banned by logit_bias",
              (int)V);
      return REALM_E_INVALID_ARGUMENT;
    }
    *ret_token = token;
    if (ret_logprob) *ret_logprob = lp;
    if (ret_n_top) *ret_n_top = 0;
    return REALM_OK;
  }

  /* Step 0 for the rest, and step 4: temperature-scaled candidates (T = 1 for greedy: that
   * scale defines logprobs). */
  const double T = greedy ? 1.0 : (double)s->p.temperature;
  size_t n = 0;
  size_t best = 0;
  for (int32_t i = 0; i < V; i++) {
    float z = clamp_logit(logits[i]);
    logits[i] = z;
    if (z == -INFINITY) continue;
    s->cands[n].v = (double)z / T;
    s->cands[n].id = i;
    if (n == 0 || cand_better(&s->cands[n], &s->cands[best])) best = n;
    n++;
  }
  if (n == 0) {
    set_err(err, errlen, "no token can be sampled: all %d logits are -inf, NaN or banned by logit_bias",
            (int)V);
    return REALM_E_INVALID_ARGUMENT;
  }
  const double vmax = s->cands[best].v;

  /* Logprobs over the whole distribution, before truncation. When the draw needs every
   * weight anyway (no top-k), the logprob reuses them; otherwise only the survivors of top-k
   * get a weight and the partition function comes from log_partition. */
  double log_norm = 0.0;
  bool have_w = false;
  struct sampler_top_logprob top[SAMPLER_MAX_TOP_LOGPROBS];
  int32_t n_top = 0;
  const bool top_k_cuts = s->p.top_k > 0 && (size_t)s->p.top_k < n;
  if (s->p.logprobs) {
    if (!greedy && !top_k_cuts) {
      fill_weights(s->cands, n, vmax);
      have_w = true;
      log_norm = vmax + sampler_log(sum_weights(s->cands, n));
    } else {
      log_norm = log_partition(s->cands, n, vmax);
    }
    if (s->p.top_logprobs > 0) {
      size_t k = (size_t)s->p.top_logprobs < n ? (size_t)s->p.top_logprobs : n;
      select_top(s->cands, n, k, s->work);
      for (size_t j = 0; j < k; j++) {
        top[j].token = s->work[j].id;
        top[j].logprob = (float)(s->work[j].v - log_norm);
      }
      n_top = (int32_t)k;
    }
  }

  int32_t token;
  double token_v;
  if (greedy) {
    token = s->cands[best].id;
    token_v = vmax;
  } else {
    struct cand *c = s->cands;
    bool sorted = false;
    if (top_k_cuts) {
      select_top(c, n, (size_t)s->p.top_k, s->work);
      c = s->work;
      n = (size_t)s->p.top_k;
      sorted = true;
    }
    if (!have_w) fill_weights(c, n, vmax);
    if (s->p.top_p < 1.0f) apply_top_p(s, c, &n, sorted);
    if (s->p.min_p > 0.0f) apply_min_p(s, c, &n);

    /* Step 8: one uniform draw against the cumulative mass of the survivors, in their
     * current order (deterministic: the order itself is). */
    double r = sampler_rng_next_unit(&s->rng) * sum_weights(c, n);
    double cum = 0.0;
    size_t pick = 0;
    for (size_t i = 0; i < n; i++) {
      if (c[i].w <= 0.0) continue; /* underflowed to 0: probability below 1e-323 */
      pick = i; /* if rounding made r == total, the last positive weight is the answer */
      cum += c[i].w;
      if (r < cum) break;
    }
    token = c[pick].id;
    token_v = c[pick].v;
  }

  *ret_token = token;
  if (ret_logprob) *ret_logprob = s->p.logprobs ? (float)(token_v - log_norm) : 0.0f;
  if (s->p.top_logprobs > 0) {
    memcpy(ret_top, top, (size_t)n_top * sizeof *top);
    *ret_n_top = n_top;
  } else if (ret_n_top) {
    *ret_n_top = 0;
  }
  return REALM_OK;
}
