/*
 * sampler.h — the default guest's token sampler.
 *
 * Turns one row of model logits into the next token, the way an OpenAI-compatible server is
 * expected to: logit_bias, llama.cpp-style repetition penalty, OpenAI frequency/presence
 * penalties, temperature (0 = greedy), top-k, top-p, min-p, a seeded draw, and logprobs.
 * Portable C11 with only libc, because it is compiled both natively (tests) and to wasm32
 * inside each tenant's sandbox; no global state; the same seed and inputs give the same
 * tokens on every platform (own PRNG in sampler_rng.h, own exp/log in sampler_math.h).
 *
 * Order of operations in sampler_sample (docs/sampling.md has the full contract):
 *   0. sanitize: NaN -> -inf, +inf -> FLT_MAX, -inf stays (a banned token)
 *   1. logit_bias: z += bias; a bias of -100 bans the token (z = -inf)
 *   2. repetition_penalty over the last repeat_last_n tokens of the history (prompt + output),
 *      each distinct token once: z > 0 ? z / penalty : z * penalty
 *   3. frequency/presence penalties over the generated tokens (history[n_prompt..]):
 *      z -= count * frequency_penalty + (count > 0) * presence_penalty
 *   4. temperature: v = z / T (T = 0 selects greedy: argmax of z, lowest id on ties)
 *   5. top-k (keep the k largest), 6. top-p (smallest prefix of the descending order whose
 *      renormalized mass reaches p), 7. min-p (keep p_i >= min_p * p_max)
 *   8. softmax over the survivors and one uniform draw from the seeded generator
 * Logprobs (and top_logprobs) are log-softmax over the WHOLE vocabulary of v = z / T after
 * steps 0-4 (T taken as 1 when temperature is 0), i.e. before truncation by 5-7.
 */
#ifndef REALM_SAMPLER_H
#define REALM_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parameter ranges. OpenAI's where it defines one; the rest generous but finite. */
#define SAMPLER_MAX_TEMPERATURE 2.0f
#define SAMPLER_MAX_REPETITION_PENALTY 10.0f
#define SAMPLER_MAX_REPEAT_LAST_N 65536
#define SAMPLER_MAX_ABS_FREQ_PRESENCE 2.0f /* OpenAI: -2.0 .. 2.0 */
#define SAMPLER_MAX_ABS_LOGIT_BIAS 100.0f  /* OpenAI: -100 .. 100; -100 bans */
#define SAMPLER_MAX_LOGIT_BIAS_ENTRIES 1024
#define SAMPLER_MAX_TOP_LOGPROBS 20 /* OpenAI: 0 .. 20 */

struct sampler_logit_bias {
  int32_t token; /* 0 <= token < n_vocab, each at most once */
  float bias;    /* -100 .. 100; -100 bans the token */
};

struct sampler_params {
  float temperature;          /* 0 = greedy; 0 .. SAMPLER_MAX_TEMPERATURE */
  int32_t top_k;              /* 0 = off; else keep the k most likely */
  float top_p;                /* 1 = off; [0, 1] (0 keeps only the most likely token) */
  float min_p;                /* 0 = off; [0, 1] */
  float repetition_penalty;   /* 1 = off; (0, SAMPLER_MAX_REPETITION_PENALTY] */
  int32_t repeat_last_n;      /* window of the repetition penalty; 0 = off, -1 = whole history */
  float frequency_penalty;    /* 0 = off; -2 .. 2 */
  float presence_penalty;     /* 0 = off; -2 .. 2 */
  const struct sampler_logit_bias *logit_bias; /* copied by sampler_create */
  size_t n_logit_bias;
  uint64_t seed;              /* the caller picks a random one when the request has none */
  bool logprobs;              /* report the chosen token's logprob */
  int32_t top_logprobs;       /* 0 .. 20 alternatives; needs logprobs */
};

struct sampler_top_logprob {
  int32_t token;
  float logprob;
};

struct sampler;

/* Defaults equal to an OpenAI request that sets nothing: temperature 1, all filters and
 * penalties off, repeat_last_n 64 (used only if repetition_penalty is changed), seed 0. */
void sampler_params_default(struct sampler_params *p);

/* Validates every parameter against n_vocab and the ranges above and allocates the scratch
 * the sampler needs (about 36 bytes per vocabulary entry). On error returns
 * REALM_E_INVALID_ARGUMENT (or REALM_E_NOMEM) and writes a message naming the field and the
 * value to err; *ret_sampler is untouched. */
int sampler_create(const struct sampler_params *p, int32_t n_vocab, struct sampler **ret_sampler,
                   char *err, size_t errlen);

void sampler_destroy(struct sampler *s);

/* Picks the next token from logits[n_vocab] (used as scratch: on return it holds the logits
 * after steps 0-3 above). history[0..n_history) is the prompt followed by the tokens generated
 * so far; the first n_prompt of them are the prompt. On success writes *ret_token, and if
 * non-NULL: *ret_logprob (the token's logprob when params.logprobs, else 0), and
 * ret_top[0..*ret_n_top) (at most top_logprobs entries, most likely first; ret_top must hold
 * top_logprobs entries). Errors: REALM_E_INVALID_ARGUMENT for a bad history token or when no
 * token is left (every logit -inf/NaN or banned), with a message in err. Outputs are untouched
 * on error. */
int sampler_sample(struct sampler *s, float *logits, const int32_t *history, size_t n_history,
                   size_t n_prompt, int32_t *ret_token, float *ret_logprob,
                   struct sampler_top_logprob *ret_top, int32_t *ret_n_top, char *err,
                   size_t errlen);

#endif /* REALM_SAMPLER_H */
