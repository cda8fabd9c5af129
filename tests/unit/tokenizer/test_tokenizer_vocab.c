/*
 * test_tokenizer_vocab.c — the tokenizers against llama.cpp's own test vectors.
 *
 * For each of the four real vocabularies in $REALM_MODELS_DIR/vocab (llama SPM, phi-3 SPM,
 * GPT-2 BPE, deepseek-llm BPE) the GGUF's tokenizer.ggml.* keys are read with the project's
 * GGUF reader and handed to tok_create(); the 46 strings of the .inp file are encoded without
 * BOS and every one must equal the matching line of the .out file. On a mismatch the case
 * index, the escaped input and both id lists are printed. The same vocabularies then check
 * decode(encode(x)) == x, random invalid UTF-8, and a 1 MB input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "realm/error.h"
#include "realm_test.h"
#include "tokenizer.h"

struct vocab {
  struct gguf_file *f;
  struct tok_bytes *tokens;
  float *scores;
  int32_t *types;
  struct tok_bytes *merges;
  char pre[64];
  struct tok_desc desc;
  struct tok *tok;
};

static void vocab_free(struct vocab *v) {
  tok_destroy(v->tok);
  free(v->tokens);
  free(v->scores);
  free(v->types);
  free(v->merges);
  gguf_close(v->f);
  memset(v, 0, sizeof *v);
}

static int32_t kv_id(struct gguf_file *f, const char *key) {
  uint32_t id;
  return gguf_get_u32(f, key, &id) == 0 ? (int32_t)id : -1;
}

/* Loads vocab/NAME.gguf into V. Returns 1 on success, 0 when the file is absent (the caller
 * skips), -1 on any other failure (message printed). */
static int vocab_load(const char *name, struct vocab *v) {
  char path[1024], err[512];
  memset(v, 0, sizeof *v);
  /* NAME is relative to vocab/ unless it names a subdirectory itself ("gguf/x.gguf"). */
  snprintf(path, sizeof path, "%s/%s%s", realm_test_models_dir(), strchr(name, '/') ? "" : "vocab/",
           name);
  FILE *probe = fopen(path, "rb");
  if (!probe) return 0;
  fclose(probe);
  if (gguf_open(path, &v->f, err, sizeof err) < 0) {
    printf("# gguf_open %s: %s\n", path, err);
    return -1;
  }
  struct gguf_str model = {0}, pre = {0};
  if (gguf_get_str(v->f, "tokenizer.ggml.model", &model) < 0) return -1;
  if (gguf_get_str(v->f, "tokenizer.ggml.pre", &pre) == 0)
    snprintf(v->pre, sizeof v->pre, "%.*s", (int)pre.len, pre.data);
  else
    snprintf(v->pre, sizeof v->pre, "default");
  const struct gguf_kv *kt = gguf_find_kv(v->f, "tokenizer.ggml.tokens");
  if (!kt || kt->type != GGUF_VALUE_ARRAY || kt->v.arr.elem_type != GGUF_VALUE_STRING) return -1;
  uint64_t n = kt->v.arr.count;
  v->tokens = calloc(n, sizeof *v->tokens);
  if (!v->tokens) return -1;
  for (uint64_t i = 0; i < n; i++) {
    struct gguf_str s = gguf_arr_str(kt, i);
    v->tokens[i] = (struct tok_bytes){s.data, (uint32_t)s.len};
  }
  const struct gguf_kv *ks = gguf_find_kv(v->f, "tokenizer.ggml.scores");
  if (ks && ks->v.arr.elem_type == GGUF_VALUE_FLOAT32 && ks->v.arr.count == n) {
    v->scores = malloc(n * sizeof *v->scores);
    if (!v->scores) return -1;
    memcpy(v->scores, ks->v.arr.data, n * sizeof *v->scores); /* little-endian host */
  }
  const struct gguf_kv *ky = gguf_find_kv(v->f, "tokenizer.ggml.token_type");
  if (ky && ky->v.arr.elem_type == GGUF_VALUE_INT32 && ky->v.arr.count == n) {
    v->types = malloc(n * sizeof *v->types);
    if (!v->types) return -1;
    memcpy(v->types, ky->v.arr.data, n * sizeof *v->types);
  }
  const struct gguf_kv *km = gguf_find_kv(v->f, "tokenizer.ggml.merges");
  uint64_t nm = 0;
  if (km && km->type == GGUF_VALUE_ARRAY && km->v.arr.elem_type == GGUF_VALUE_STRING) {
    nm = km->v.arr.count;
    v->merges = calloc(nm ? nm : 1, sizeof *v->merges);
    if (!v->merges) return -1;
    for (uint64_t i = 0; i < nm; i++) {
      struct gguf_str s = gguf_arr_str(km, i);
      v->merges[i] = (struct tok_bytes){s.data, (uint32_t)s.len};
    }
  }
  struct tok_desc *d = &v->desc;
  if (model.len == 5 && memcmp(model.data, "llama", 5) == 0)
    d->model = TOK_MODEL_SPM;
  else if (model.len == 4 && memcmp(model.data, "gpt2", 4) == 0)
    d->model = TOK_MODEL_BPE;
  else
    return -1;
  d->pre = v->pre;
  d->n_tokens = (uint32_t)n;
  d->tokens = v->tokens;
  d->scores = v->scores;
  d->types = v->types;
  d->n_merges = (uint32_t)nm;
  d->merges = v->merges;
  d->bos_id = kv_id(v->f, "tokenizer.ggml.bos_token_id");
  d->eos_id = kv_id(v->f, "tokenizer.ggml.eos_token_id");
  d->unk_id = kv_id(v->f, "tokenizer.ggml.unknown_token_id");
  /* llama.cpp's default for llama vocabularies, unless the file says otherwise. */
  uint32_t asp = 1;
  const struct gguf_kv *ka = gguf_find_kv(v->f, "tokenizer.ggml.add_space_prefix");
  if (ka) asp = ka->v.u64 != 0;
  d->add_space_prefix = d->model == TOK_MODEL_SPM && asp;
  if (tok_create(d, &v->tok, err, sizeof err) < 0) {
    printf("# tok_create %s: %s\n", name, err);
    return -1;
  }
  return 1;
}

static char *read_all(const char *path, size_t *ret_len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap + 1);
  while (buf) {
    size_t r = fread(buf + len, 1, cap - len, fp);
    len += r;
    if (len < cap) break;
    cap *= 2;
    char *nb = realloc(buf, cap + 1);
    if (!nb) {
      free(buf);
      buf = NULL;
    }
    buf = nb;
  }
  fclose(fp);
  if (!buf) return NULL;
  buf[len] = '\0';
  *ret_len = len;
  return buf;
}

static void print_escaped(const char *label, const char *s, size_t n) {
  printf("#   %s \"", label);
  for (size_t i = 0; i < n && i < 400; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\n')
      printf("\\n");
    else if (c == '\t')
      printf("\\t");
    else if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20 || c == 0x7f)
      printf("\\x%02x", c);
    else
      putchar(c);
  }
  printf("\"\n");
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
  printf("#   %s", label);
  for (size_t i = 0; i < n; i++) printf(" %d", ids[i]);
  printf("\n");
}

#define SEP "\n__ggml_vocab_test__\n"
#define N_CASES 46

/* The cases of NAME.inp (pointers into *ret_buf). Returns the count or -1. */
static int load_cases(const char *name, char **ret_buf, const char **cases, size_t *lens,
                      int max) {
  char path[1024];
  size_t len = 0;
  snprintf(path, sizeof path, "%s/vocab/%s.inp", realm_test_models_dir(), name);
  char *buf = read_all(path, &len);
  if (!buf) return -1;
  int n = 0;
  char *p = buf, *end = buf + len;
  while (p < end && n < max) {
    char *s = strstr(p, SEP);
    if (!s) break;
    cases[n] = p;
    lens[n] = (size_t)(s - p);
    n++;
    p = s + strlen(SEP);
  }
  *ret_buf = buf;
  return n;
}

/* Encodes every case and compares with the .out line; returns the number that matched. */
static int run_vectors(const char *name, int *ret_total) {
  struct vocab v;
  int r = vocab_load(name, &v);
  if (r <= 0) {
    *ret_total = r;
    return 0;
  }
  char *inbuf = NULL, *outbuf = NULL;
  const char *cases[N_CASES + 1];
  size_t lens[N_CASES + 1];
  int n = load_cases(name, &inbuf, cases, lens, N_CASES + 1);
  char path[1024];
  size_t outlen = 0;
  snprintf(path, sizeof path, "%s/vocab/%s.out", realm_test_models_dir(), name);
  outbuf = read_all(path, &outlen);
  int matched = 0;
  char *line = outbuf;
  int32_t *got = malloc(4096 * sizeof *got), *want = malloc(4096 * sizeof *want);
  for (int i = 0; outbuf && got && want && i < n; i++) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    size_t nw = 0;
    for (char *p = line; *p && nw < 4096;) {
      char *e;
      long x = strtol(p, &e, 10);
      if (e == p) break;
      want[nw++] = (int32_t)x;
      p = e;
    }
    line = nl ? nl + 1 : line + strlen(line);
    size_t ng = 0;
    int rc = tok_encode(v.tok, cases[i], lens[i], 0, got, 4096, &ng);
    int same = rc == 0 && ng == nw && memcmp(got, want, nw * sizeof *got) == 0;
    if (same) {
      matched++;
    } else {
      printf("# %s case %d mismatch (rc %d)\n", name, i, rc);
      print_escaped("input", cases[i], lens[i]);
      print_ids("expected:", want, nw);
      print_ids("got:     ", got, rc == 0 ? ng : 0);
    }
  }
  *ret_total = n;
  free(got);
  free(want);
  free(inbuf);
  free(outbuf);
  vocab_free(&v);
  return matched;
}

#define VECTOR_TEST(fn, file)                                                        \
  TEST(fn) {                                                                         \
    int total = 0;                                                                   \
    int matched = run_vectors(file, &total);                                         \
    if (total == 0) SKIP("vocab file " file " not present");                        \
    printf("# %s: %d/%d cases match\n", file, matched, total);                       \
    CHECK_EQ_INT(total, N_CASES);                                                    \
    CHECK_EQ_INT(matched, N_CASES);                                                  \
  }

VECTOR_TEST(vectors_llama_spm, "ggml-vocab-llama-spm.gguf")
VECTOR_TEST(vectors_phi3, "ggml-vocab-phi-3.gguf")
VECTOR_TEST(vectors_gpt2, "ggml-vocab-gpt-2.gguf")
VECTOR_TEST(vectors_deepseek_llm, "ggml-vocab-deepseek-llm.gguf")

/* decode(encode(x)) == x, with SPM's added leading space stripped. Returns 0 or -1. */
static int round_trip(const struct vocab *v, const char *s, size_t n, const char *what) {
  size_t cnt = 0, olen = 0;
  if (tok_encode(v->tok, s, n, 0, NULL, 0, &cnt) < 0) return -1;
  int32_t *ids = malloc((cnt ? cnt : 1) * sizeof *ids);
  char *out = NULL;
  int ok = -1;
  if (!ids || tok_encode(v->tok, s, n, 0, ids, cnt, &cnt) < 0) goto done;
  if (tok_decode(v->tok, ids, cnt, NULL, 0, &olen) < 0) goto done;
  out = malloc(olen + 1);
  if (!out || tok_decode(v->tok, ids, cnt, out, olen, &olen) < 0) goto done;
  const char *o = out;
  if (v->desc.model == TOK_MODEL_SPM && n > 0 && olen > 0 && out[0] == ' ') {
    o++;
    olen--;
  }
  ok = (olen == n && memcmp(o, s, n) == 0) ? 0 : -1;
  if (ok < 0) {
    printf("# round trip failed (%s)\n", what);
    print_escaped("input", s, n);
    print_escaped("decoded", o, olen);
  }
done:
  free(ids);
  free(out);
  return ok;
}

static const char *const all_vocabs[] = {"ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf",
                                         "ggml-vocab-gpt-2.gguf", "ggml-vocab-deepseek-llm.gguf"};

TEST(round_trip_test_strings) {
  int loaded = 0;
  for (int f = 0; f < 4; f++) {
    struct vocab v;
    int r = vocab_load(all_vocabs[f], &v);
    if (r == 0) continue;
    CHECK(r == 1);
    loaded++;
    char *inbuf = NULL;
    const char *cases[N_CASES + 1];
    size_t lens[N_CASES + 1];
    int n = load_cases(all_vocabs[f], &inbuf, cases, lens, N_CASES + 1);
    int bad = 0;
    for (int i = 0; i < n; i++) bad += round_trip(&v, cases[i], lens[i], all_vocabs[f]) < 0;
    free(inbuf);
    vocab_free(&v);
    CHECK_EQ_INT(n, N_CASES);
    CHECK_EQ_INT(bad, 0);
  }
  if (!loaded) SKIP("no vocab files present");
}

TEST(invalid_utf8_round_trips_through_byte_tokens) {
  int loaded = 0;
  uint64_t x = 0x9e3779b97f4a7c15ull; /* fixed seed: deterministic */
  for (int f = 0; f < 4; f++) {
    struct vocab v;
    int r = vocab_load(all_vocabs[f], &v);
    if (r == 0) continue;
    CHECK(r == 1);
    loaded++;
    int bad = 0;
    for (int round = 0; round < 50; round++) {
      char buf[200];
      size_t n = 1 + round * 3;
      for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        /* mostly high bytes (broken sequences), some ASCII letters and spaces. Only bytes
         * that occur in some UTF-8 sequence (0x80..0xF4 less C0, C1): deepseek-llm has no
         * byte token for the others (see the test below). */
        unsigned r8 = (unsigned)(x >> 24) & 0xff;
        unsigned hi = 0x80 + (r8 * 0x75u) / 256u; /* 0x80..0xF4 */
        if (hi == 0xc0 || hi == 0xc1) hi = 0xc2;
        buf[i] = (char)(r8 < 40 ? 'a' + r8 % 26 : r8 < 60 ? ' ' : hi);
      }
      bad += round_trip(&v, buf, n, all_vocabs[f]) < 0;
    }
    vocab_free(&v);
    CHECK_EQ_INT(bad, 0);
  }
  if (!loaded) SKIP("no vocab files present");
}

TEST(one_megabyte_input_encodes) {
  /* Bounded work on a large prompt (no time assertion: the machine is shared). */
  static const char chunk[] = "The quick brown fox, 1234 jumps! \xe4\xbd\xa0\xe5\xa5\xbd  \n\t";
  size_t n = 1u << 20, cl = sizeof chunk - 1;
  char *big = malloc(n);
  CHECK(big != NULL);
  for (size_t i = 0; i < n; i++) big[i] = chunk[i % cl];
  static char word[256 * 1024];
  size_t word_len = sizeof word;
  for (size_t i = 0; i < word_len; i++) word[i] = "abcab"[i % 5];
  int loaded = 0;
  for (int f = 0; f < 4; f++) {
    struct vocab v;
    int r = vocab_load(all_vocabs[f], &v);
    if (r == 0) continue;
    if (r != 1) free(big);
    CHECK(r == 1);
    loaded++;
    size_t cnt = 0;
    int rc = tok_encode(v.tok, big, n, 1, NULL, 0, &cnt);
    /* One 256 KiB word (no pre-token boundary at all): the merge heap keeps it n log n. */
    size_t cnt_word = 0;
    int rc_word = tok_encode(v.tok, word, word_len, 0, NULL, 0, &cnt_word);
    int rt = rc == 0 ? round_trip(&v, big, n, all_vocabs[f]) : -1;
    printf("# %s: 1 MiB -> %zu tokens; one 256 KiB word -> %zu tokens\n", all_vocabs[f], cnt,
           cnt_word);
    vocab_free(&v);
    if (rc != 0 || rt != 0) free(big);
    CHECK_EQ_INT(rc, 0);
    CHECK(cnt > n / 16 && cnt < n);
    CHECK_EQ_INT(rc_word, 0);
    CHECK(cnt_word > 0 && cnt_word < word_len / 2);
    CHECK_EQ_INT(rt, 0);
  }
  free(big);
  if (!loaded) SKIP("no vocab files present");
}

TEST(real_vocab_rejects_out_of_range_ids) {
  struct vocab v;
  int r = vocab_load("ggml-vocab-gpt-2.gguf", &v);
  if (r == 0) SKIP("gpt-2 vocab not present");
  CHECK(r == 1);
  size_t len = 0;
  int ok = tok_piece(v.tok, 50257, &len) == NULL && tok_piece(v.tok, -1, &len) == NULL &&
           tok_piece(v.tok, 50256, &len) != NULL && len == 0 /* <|endoftext|> is control */;
  const char *p = tok_piece(v.tok, 1212, &len); /* "This" or whatever it is: non-empty */
  ok = ok && p != NULL && len > 0;
  CHECK_EQ_INT(tok_n_tokens(v.tok), 50257);
  CHECK_EQ_INT(tok_eos_id(v.tok), 50256);
  vocab_free(&v);
  CHECK(ok);
}

TEST(deepseek_bytes_without_byte_tokens_use_user_defined_tokens) {
  /* deepseek-llm's vocabulary lacks the byte-level characters of bytes that never occur in
   * UTF-8 (C0, C1, F5..FF) and instead lists those characters ("ø", "ü", ...) as user-defined
   * tokens. A lone 0xF8 therefore becomes token "ø" (as in llama.cpp), which decodes as the
   * text "ø": such input cannot round-trip with this vocabulary. Valid UTF-8 always does. */
  struct vocab v;
  int r = vocab_load("ggml-vocab-deepseek-llm.gguf", &v);
  if (r == 0) SKIP("deepseek-llm vocab not present");
  CHECK(r == 1);
  int32_t ids[4];
  size_t n = 0;
  int rc = tok_encode(v.tok, "\xf8", 1, 0, ids, 4, &n);
  int32_t literal[4];
  size_t nl = 0;
  int rc2 = tok_encode(v.tok, "\xc3\xb8", 2, 0, literal, 4, &nl);
  int type = tok_token_type(v.tok, ids[0]);
  vocab_free(&v);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(rc2, 0);
  CHECK_EQ_INT(n, 1);
  CHECK_EQ_INT(ids[0], 100002);
  CHECK_EQ_INT(type, TOK_TYPE_USER_DEFINED);
  CHECK_EQ_INT(nl, 1);
  CHECK_EQ_INT(literal[0], 100002);
}

TEST(stories260k_oracle_ids_decode_to_oracle_text) {
  /* The greedy output of the real stories260K model (shared/models/README.md): its 64 ids must
   * decode, through this vocabulary's pieces, to the published text. */
  static const int32_t ids[64] = {
      403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338,
      401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385,
      328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338, 391, 266, 267,
      337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13,  438, 310};
  static const char text[] =
      " Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park. One day, she saw a big, red ball. She wanted to play with it, but it was too "
      "high.\nLily";
  struct vocab v;
  int r = vocab_load("gguf/stories260K.gguf", &v);
  if (r == 0) SKIP("stories260K.gguf not present");
  CHECK(r == 1);
  char out[512];
  size_t len = 0;
  int rc = tok_decode(v.tok, ids, 64, out, sizeof out, &len);
  /* And encoding the text back yields a sequence that decodes to it again. */
  int rt = round_trip(&v, text + 1, sizeof text - 2, "stories260K");
  vocab_free(&v);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(len, sizeof text - 1);
  CHECK(memcmp(out, text, len) == 0);
  CHECK_EQ_INT(rt, 0);
}
