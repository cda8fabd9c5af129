/*
 * cmd_generate.c — `realmctl generate`: runs the engine in-process on a GGUF model and prints
 * the generated token ids, the decoded text, and (on stderr) the decode speed.
 *
 *   realmctl generate --model FILE [--max-tokens N] [--temperature T] [--seed S]
 *                     [--prompt-ids "1 403 ..."] [--threads N] [--isa auto|scalar|avx2|avx512]
 *                     [--exact-quant] [--print-ids]
 *
 * Generation starts from BOS (tokenizer.ggml.bos_token_id, default 1) followed by the prompt
 * ids, prefilled in one chunk; then greedy decoding at temperature 0, or sampling from the
 * softmax at temperature T with a seeded xorshift generator. Stops at max-tokens or EOS.
 * Text is decoded by concatenating tokenizer.ggml.tokens pieces (U+2581 → space, <0xNN> →
 * the byte): an operator's smoke test, not the tenant tokenizer.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"
#include "llama.h"
#include "model.h"
#include "realm/error.h"
#include "realmctl.h"

#define GEN_MAX_PROMPT 4096

static void gen_usage(FILE *out) {
  fprintf(out,
          "usage: realmctl generate --model FILE [--max-tokens N] [--temperature T] [--seed S]\n"
          "                         [--prompt-ids \"1 403 ...\"] [--threads N]\n"
          "                         [--isa auto|scalar|avx2|avx512] [--exact-quant] [--print-ids]\n");
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse_long(const char *s, long lo, long hi, long *ret) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return -1;
  *ret = v;
  return 0;
}

/* Writes the text of token ID to OUT. */
static void print_piece(const struct gguf_kv *tokens, uint32_t id, FILE *out) {
  struct gguf_str p = gguf_arr_str(tokens, id);
  unsigned byte;
  if (p.len == 6 && memcmp(p.data, "<0x", 3) == 0 && p.data[5] == '>') {
    char hex[3] = {p.data[3], p.data[4], 0};
    if (sscanf(hex, "%2x", &byte) == 1) {
      fputc((int)byte, out);
      return;
    }
  }
  for (uint64_t i = 0; i < p.len; i++) {
    if (i + 2 < p.len && (unsigned char)p.data[i] == 0xe2 && (unsigned char)p.data[i + 1] == 0x96 &&
        (unsigned char)p.data[i + 2] == 0x81) {
      fputc(' ', out);
      i += 2;
    } else {
      fputc(p.data[i], out);
    }
  }
}

static uint64_t rng_next(uint64_t *s) {
  *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
  return *s;
}

static int32_t pick(const float *logits, uint32_t n, float temperature, uint64_t *rng) {
  int32_t best = 0;
  for (uint32_t i = 1; i < n; i++)
    if (logits[i] > logits[best]) best = (int32_t)i;
  if (temperature <= 0.0f) return best;
  double sum = 0.0;
  for (uint32_t i = 0; i < n; i++) sum += exp((logits[i] - logits[best]) / temperature);
  double r = (double)(rng_next(rng) >> 11) / (double)(1ull << 53) * sum;
  for (uint32_t i = 0; i < n; i++) {
    r -= exp((logits[i] - logits[best]) / temperature);
    if (r <= 0.0) return (int32_t)i;
  }
  return best;
}

int realmctl_cmd_generate(int argc, char **argv) {
  const char *model_path = NULL, *isa = NULL, *prompt = NULL;
  long max_tokens = 64, threads = 0, seed = 42;
  double temperature = 0.0;
  int print_ids = 0, exact = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      gen_usage(stdout);
      return 0;
    } else if (strcmp(a, "--print-ids") == 0) {
      print_ids = 1;
    } else if (strcmp(a, "--exact-quant") == 0) {
      exact = 1;
    } else if (!v) {
      fprintf(stderr, "realmctl generate: %s needs a value\n", a);
      return 2;
    } else if (strcmp(a, "--model") == 0) {
      model_path = v, i++;
    } else if (strcmp(a, "--isa") == 0) {
      isa = v, i++;
    } else if (strcmp(a, "--prompt-ids") == 0) {
      prompt = v, i++;
    } else if (strcmp(a, "--max-tokens") == 0) {
      if (parse_long(v, 0, 1 << 20, &max_tokens) < 0) goto bad_value;
      i++;
    } else if (strcmp(a, "--threads") == 0) {
      if (parse_long(v, 0, 256, &threads) < 0) goto bad_value;
      i++;
    } else if (strcmp(a, "--seed") == 0) {
      if (parse_long(v, 0, 0x7fffffffL, &seed) < 0) goto bad_value;
      i++;
    } else if (strcmp(a, "--temperature") == 0) {
      char *end;
      temperature = strtod(v, &end);
      if (end == v || *end || !(temperature >= 0.0 && temperature <= 100.0)) goto bad_value;
      i++;
    } else {
      fprintf(stderr, "realmctl generate: unknown option %s\n", a);
      gen_usage(stderr);
      return 2;
    }
    continue;
  bad_value:
    fprintf(stderr, "realmctl generate: bad value for %s: '%s'\n", a, v);
    return 2;
  }
  if (!model_path) {
    gen_usage(stderr);
    return 2;
  }

  char err[512] = "";
  struct gguf_file *f = NULL;
  struct engine_model *m = NULL;
  struct engine *e = NULL;
  struct kv_seq *seq = NULL;
  int32_t *toks = NULL;
  float *logits = NULL;
  int rc = gguf_open_pages(model_path, GGUF_PAGES_AUTO, &f, err, sizeof err); /* as the worker */
  if (rc == 0) rc = engine_model_load(f, &m, err, sizeof err);
  if (rc < 0) goto fail;

  const struct engine_hparams *hp = &m->hp;
  uint32_t n_prompt = 1;
  toks = malloc(sizeof(int32_t) * (GEN_MAX_PROMPT + 1));
  logits = malloc(sizeof(float) * hp->n_vocab);
  if (!toks || !logits) {
    rc = REALM_E_NOMEM;
    snprintf(err, sizeof err, "out of memory");
    goto fail;
  }
  toks[0] = (int32_t)hp->bos_id;
  for (const char *p = prompt; p && *p;) {
    char *end;
    long id = strtol(p, &end, 10);
    if (end == p) {
      if (*p == ' ' || *p == ',') {
        p++;
        continue;
      }
      rc = REALM_E_INVALID_ARGUMENT;
      snprintf(err, sizeof err, "--prompt-ids: not a number at '%s'", p);
      goto fail;
    }
    if (id < 0 || id >= (long)hp->n_vocab || n_prompt > GEN_MAX_PROMPT) {
      rc = REALM_E_INVALID_ARGUMENT;
      snprintf(err, sizeof err, "--prompt-ids: id %ld out of range [0, %u) or too many ids", id,
               hp->n_vocab);
      goto fail;
    }
    toks[n_prompt++] = (int32_t)id;
    p = end;
  }
  uint64_t need = (uint64_t)n_prompt + (uint64_t)max_tokens;
  if (need > hp->n_ctx) {
    rc = REALM_E_OUT_OF_RANGE;
    snprintf(err, sizeof err, "prompt (%u) + max-tokens (%ld) exceeds the context %u", n_prompt,
             max_tokens, hp->n_ctx);
    goto fail;
  }
  struct engine_config cfg = {.n_threads = (int)threads, .isa = isa, .exact_quant = exact,
                              .max_step_tokens = n_prompt > 512 ? n_prompt : 512,
                              .max_ctx = (uint32_t)need};
  rc = engine_create(m, &cfg, &e, err, sizeof err);
  if (rc == 0) rc = kv_seq_open(engine_kv(e), NULL, &seq);
  if (rc < 0) goto fail;

  const struct gguf_kv *vocab = gguf_find_kv(f, "tokenizer.ggml.tokens");
  if (vocab && (vocab->type != GGUF_VALUE_ARRAY || vocab->v.arr.elem_type != GGUF_VALUE_STRING))
    vocab = NULL;

  uint64_t rng = (uint64_t)seed * 0x9e3779b97f4a7c15ull + 1;
  int32_t *out = malloc(sizeof(int32_t) * (size_t)(max_tokens + 1));
  if (!out) {
    rc = REALM_E_NOMEM;
    goto fail;
  }
  long n_out = 0;
  double t_prefill = 0.0, t0 = now_s();
  struct engine_seq_step st = {.seq = seq, .pos = 0, .tokens = toks, .n_tokens = n_prompt};
  struct engine_batch b = {.seqs = &st, .n_seqs = 1};
  while (n_out < max_tokens) {
    rc = engine_forward(e, &b, logits, err, sizeof err);
    if (rc < 0) break;
    if (n_out == 0) t_prefill = now_s() - t0;
    int32_t next = pick(logits, hp->n_vocab, (float)temperature, &rng);
    if ((uint32_t)next == hp->eos_id) break;
    out[n_out++] = next;
    st.pos = kv_seq_len(seq);
    st.tokens = &out[n_out - 1];
    st.n_tokens = 1;
  }
  double elapsed = now_s() - t0;
  if (rc < 0) {
    free(out);
    goto fail;
  }
  if (print_ids) {
    for (long i = 0; i < n_out; i++) printf("%s%d", i ? " " : "", out[i]);
    printf("\n");
  }
  if (vocab) {
    for (long i = 0; i < n_out; i++) print_piece(vocab, (uint32_t)out[i], stdout);
    printf("\n");
  }
  double decode_s = elapsed - t_prefill;
  fprintf(stderr,
          "realmctl generate: %s, %d threads; prefill %u tokens in %.3f s; %ld tokens decoded "
          "at %.1f tokens/s\n",
          engine_backend_name(e), engine_threads(e), n_prompt, t_prefill, n_out,
          n_out > 1 && decode_s > 0 ? (double)(n_out - 1) / decode_s : 0.0);
  free(out);
  kv_seq_close(engine_kv(e), seq);
  engine_destroy(e);
  engine_model_free(m);
  gguf_close(f);
  free(toks);
  free(logits);
  return 0;
fail:
  fprintf(stderr, "realmctl generate: %s (%s)\n", err[0] ? err : realm_err_message(rc),
          realm_err_name(rc));
  if (e) kv_seq_close(engine_kv(e), seq);
  engine_destroy(e);
  engine_model_free(m);
  gguf_close(f);
  free(toks);
  free(logits);
  return 1;
}
