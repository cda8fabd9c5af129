/*
 * fuzz_tokenizer.c — libFuzzer target for the default guest's tokenizers
 * (tenant-runner/guest-sdk/default/tokenizer) on arbitrary bytes.
 *
 * A client's prompt reaches the tokenizer as raw bytes (the guest also sees text the gateway
 * did not validate, e.g. through future token-level endpoints), so encode must accept any byte
 * string and decode any id list it produced. Initialisation builds two real tokenizers from
 * the shared vocabularies through the GGUF reader — llama-spm (SentencePiece with byte
 * fallback) and gpt-2 (byte-level BPE) — as a guest would. Each input is encoded by both, with
 * the size-query protocol, and decoded back. Oracles beyond the sanitizers:
 *   - every id is inside the vocabulary, and the size query agrees with the real encode;
 *   - gpt-2: decode(encode(x)) == x exactly (byte-level BPE is lossless by construction);
 *   - llama-spm: decode(encode(x)) == " " + x, with each U+2581 of x read as a space (SPM's
 *     space marker; docs/tokenizers.md: invalid UTF-8 stays lossless through byte tokens).
 * Inputs are capped by -max_len (run.sh) so one execution stays in milliseconds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "realm/error.h"
#include "tokenizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond, what)                                                                  \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      fprintf(stderr, "fuzz_tokenizer: invariant broken: %s (%s:%d)\n", what, __FILE__, __LINE__); \
      abort();                                                                                   \
    }                                                                                            \
  } while (0)

/* One tokenizer and what it was built from (the GGUF mapping must outlive nothing here:
 * tok_create copies, but we keep the file open for the process lifetime anyway). */
struct vocab {
  const char *name;
  struct gguf_file *f;
  struct tok *tok;
  enum tok_model model;
};

static struct vocab g_vocabs[2] = {{.name = "ggml-vocab-llama-spm.gguf"},
                                   {.name = "ggml-vocab-gpt-2.gguf"}};

static int32_t kv_id(const struct gguf_file *f, const char *key) {
  uint32_t id;
  return gguf_get_u32(f, key, &id) == 0 ? (int32_t)id : -1;
}

/* Builds the tokenizer exactly as a guest would from the tokenizer.ggml.* keys. */
static void load(struct vocab *v, const char *dir) {
  char path[1024], err[512];
  snprintf(path, sizeof path, "%s/vocab/%s", dir, v->name);
  if (gguf_open(path, &v->f, err, sizeof err) < 0) {
    fprintf(stderr, "fuzz_tokenizer: %s: %s\n", path, err);
    exit(2);
  }
  struct gguf_str model = {0}, pre = {0};
  char pre_s[64] = "default";
  FUZZ_ASSERT(gguf_get_str(v->f, "tokenizer.ggml.model", &model) == 0, "tokenizer.ggml.model");
  if (gguf_get_str(v->f, "tokenizer.ggml.pre", &pre) == 0)
    snprintf(pre_s, sizeof pre_s, "%.*s", (int)pre.len, pre.data);
  const struct gguf_kv *kt = NULL, *ks = NULL, *ky = NULL, *km = NULL;
  FUZZ_ASSERT(gguf_get_arr(v->f, "tokenizer.ggml.tokens", GGUF_VALUE_STRING, &kt) == 0, "tokens");
  uint64_t n = kt->v.arr.count;
  struct tok_bytes *tokens = calloc(n, sizeof *tokens);
  float *scores = NULL;
  int32_t *types = NULL;
  struct tok_bytes *merges = NULL;
  FUZZ_ASSERT(tokens != NULL, "calloc");
  for (uint64_t i = 0; i < n; i++) {
    struct gguf_str s = gguf_arr_str(kt, i);
    tokens[i] = (struct tok_bytes){s.data, (uint32_t)s.len};
  }
  if (gguf_get_arr(v->f, "tokenizer.ggml.scores", GGUF_VALUE_FLOAT32, &ks) == 0 &&
      ks->v.arr.count == n) {
    scores = calloc(n, sizeof *scores);
    FUZZ_ASSERT(scores != NULL, "calloc");
    for (uint64_t i = 0; i < n; i++) FUZZ_ASSERT(gguf_arr_f32(ks, i, &scores[i]) == 0, "score");
  }
  if (gguf_get_arr(v->f, "tokenizer.ggml.token_type", GGUF_VALUE_INT32, &ky) == 0 &&
      ky->v.arr.count == n) {
    types = calloc(n, sizeof *types);
    FUZZ_ASSERT(types != NULL, "calloc");
    for (uint64_t i = 0; i < n; i++) {
      int64_t t;
      FUZZ_ASSERT(gguf_arr_i64(ky, i, &t) == 0, "token_type");
      types[i] = (int32_t)t;
    }
  }
  uint64_t nm = 0;
  if (gguf_get_arr(v->f, "tokenizer.ggml.merges", GGUF_VALUE_STRING, &km) == 0) {
    nm = km->v.arr.count;
    merges = calloc(nm ? nm : 1, sizeof *merges);
    FUZZ_ASSERT(merges != NULL, "calloc");
    for (uint64_t i = 0; i < nm; i++) {
      struct gguf_str s = gguf_arr_str(km, i);
      merges[i] = (struct tok_bytes){s.data, (uint32_t)s.len};
    }
  }
  struct tok_desc d;
  memset(&d, 0, sizeof d);
  if (model.len == 5 && memcmp(model.data, "llama", 5) == 0)
    d.model = TOK_MODEL_SPM;
  else if (model.len == 4 && memcmp(model.data, "gpt2", 4) == 0)
    d.model = TOK_MODEL_BPE;
  else
    FUZZ_ASSERT(0, "unknown tokenizer model");
  d.pre = pre_s;
  d.n_tokens = (uint32_t)n;
  d.tokens = tokens;
  d.scores = scores;
  d.types = types;
  d.n_merges = (uint32_t)nm;
  d.merges = merges;
  d.bos_id = kv_id(v->f, "tokenizer.ggml.bos_token_id");
  d.eos_id = kv_id(v->f, "tokenizer.ggml.eos_token_id");
  d.unk_id = kv_id(v->f, "tokenizer.ggml.unknown_token_id");
  int asp = 1;
  (void)gguf_get_bool(v->f, "tokenizer.ggml.add_space_prefix", &asp);
  d.add_space_prefix = d.model == TOK_MODEL_SPM && asp;
  if (tok_create(&d, &v->tok, err, sizeof err) < 0) {
    fprintf(stderr, "fuzz_tokenizer: tok_create %s: %s\n", v->name, err);
    exit(2);
  }
  v->model = d.model;
  free(tokens); /* tok_create copied everything */
  free(scores);
  free(types);
  free(merges);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *dir = getenv("REALM_MODELS_DIR");
  if (!dir || !*dir) dir = "/work/shared/models";
  for (size_t i = 0; i < sizeof g_vocabs / sizeof g_vocabs[0]; i++) load(&g_vocabs[i], dir);
  return 0;
}

/* The text an SPM decode of X must give: a leading space, then X with U+2581 as a space. */
static size_t spm_expected(const uint8_t *x, size_t n, char *out) {
  size_t o = 0;
  out[o++] = ' ';
  for (size_t i = 0; i < n; i++) {
    if (i + 2 < n && x[i] == 0xE2 && x[i + 1] == 0x96 && x[i + 2] == 0x81) {
      out[o++] = ' ';
      i += 2;
    } else {
      out[o++] = (char)x[i];
    }
  }
  return o;
}

static void run_one(const struct vocab *v, const uint8_t *data, size_t size, int add_bos) {
  size_t n = 0;
  int rc = tok_encode(v->tok, (const char *)data, size, add_bos, NULL, 0, &n);
  FUZZ_ASSERT(rc == 0, "size query failed");
  int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
  FUZZ_ASSERT(ids != NULL, "malloc");
  size_t n2 = 0;
  if (n > 0) {
    /* One slot short must be refused without writing past it. */
    size_t keep = 12345;
    FUZZ_ASSERT(tok_encode(v->tok, (const char *)data, size, add_bos, ids, n - 1, &keep) ==
                    REALM_E_TOO_LARGE,
                "a too-small id buffer was not refused");
    FUZZ_ASSERT(keep == 12345, "*ret_n written on failure");
  }
  rc = tok_encode(v->tok, (const char *)data, size, add_bos, ids, n, &n2);
  FUZZ_ASSERT(rc == 0 && n2 == n, "encode disagrees with its size query");
  uint32_t nv = tok_n_tokens(v->tok);
  for (size_t i = 0; i < n; i++)
    FUZZ_ASSERT(ids[i] >= 0 && (uint32_t)ids[i] < nv, "token id outside the vocabulary");
  size_t skip = (add_bos && tok_bos_id(v->tok) >= 0) ? 1 : 0;
  FUZZ_ASSERT(n >= skip, "BOS missing");
  size_t olen = 0;
  FUZZ_ASSERT(tok_decode(v->tok, ids + skip, n - skip, NULL, 0, &olen) == 0, "decode size query");
  char *out = malloc(olen ? olen : 1);
  FUZZ_ASSERT(out != NULL, "malloc");
  size_t olen2 = 0;
  FUZZ_ASSERT(tok_decode(v->tok, ids + skip, n - skip, out, olen, &olen2) == 0 && olen2 == olen,
              "decode disagrees with its size query");
  if (v->model == TOK_MODEL_BPE) {
    FUZZ_ASSERT(olen == size && (size == 0 || memcmp(out, data, size) == 0),
                "gpt-2: decode(encode(x)) != x");
  } else if (size > 0) {
    char *want = malloc(size + 1);
    FUZZ_ASSERT(want != NULL, "malloc");
    size_t wlen = spm_expected(data, size, want);
    FUZZ_ASSERT(olen == wlen && memcmp(out, want, wlen) == 0,
                "llama-spm: decode(encode(x)) != \" \" + x");
    free(want);
  }
  free(out);
  free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  for (size_t i = 0; i < sizeof g_vocabs / sizeof g_vocabs[0]; i++)
    run_one(&g_vocabs[i], data, size, (int)(size & 1));
  return 0;
}
