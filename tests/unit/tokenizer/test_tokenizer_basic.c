/*
 * test_tokenizer_basic.c — the tokenizer algorithms on tiny hand-built vocabularies, where the
 * expected ids can be worked out by hand: SPM merge order by score and its byte fallback, BPE
 * merge order by rank and the GPT-2 pre-tokenizer boundaries, literal user-defined tokens,
 * piece decoding, the size-query protocol, and the validation of the description.
 */
#include <string.h>

#include "realm/error.h"
#include "realm_test.h"
#include "tok_unicode.h"
#include "tokenizer.h"

/* ---- an SPM vocabulary: <unk> <s> </s>, 256 byte tokens, then a few pieces ---- */

#define SPM_FIRST 259
static const char *const spm_pieces[] = {
    "\xe2\x96\x81",          /* 259 ▁ */
    "a",                     /* 260 */
    "b",                     /* 261 */
    "ab",                    /* 262 */
    "\xe2\x96\x81" "a",      /* 263 ▁a */
    "\xe2\x96\x81" "ab",     /* 264 ▁ab */
    "aa",                    /* 265 */
    "<|x|>",                 /* 266 user-defined */
    "c",                     /* 267 */
};
static const float spm_piece_scores[] = {-1, -2, -2, -3, -4, -5, -1.5f, 0, -2};

struct spm_vocab {
  struct tok_bytes tok[300];
  float scores[300];
  int32_t types[300];
  char bytes[256][7];
  uint32_t n;
};

static void spm_vocab_build(struct spm_vocab *v, struct tok_desc *d) {
  memset(v, 0, sizeof *v);
  v->tok[0] = (struct tok_bytes){"<unk>", 5};
  v->types[0] = TOK_TYPE_UNKNOWN;
  v->tok[1] = (struct tok_bytes){"<s>", 3};
  v->types[1] = TOK_TYPE_CONTROL;
  v->tok[2] = (struct tok_bytes){"</s>", 4};
  v->types[2] = TOK_TYPE_CONTROL;
  for (int b = 0; b < 256; b++) {
    snprintf(v->bytes[b], sizeof v->bytes[b], "<0x%02X>", b);
    v->tok[3 + b] = (struct tok_bytes){v->bytes[b], 6};
    v->types[3 + b] = TOK_TYPE_BYTE;
  }
  uint32_t n = SPM_FIRST;
  for (size_t i = 0; i < sizeof spm_pieces / sizeof spm_pieces[0]; i++, n++) {
    v->tok[n] = (struct tok_bytes){spm_pieces[i], (uint32_t)strlen(spm_pieces[i])};
    v->scores[n] = spm_piece_scores[i];
    v->types[n] = strcmp(spm_pieces[i], "<|x|>") == 0 ? TOK_TYPE_USER_DEFINED : TOK_TYPE_NORMAL;
  }
  v->n = n;
  memset(d, 0, sizeof *d);
  d->model = TOK_MODEL_SPM;
  d->pre = "default";
  d->n_tokens = v->n;
  d->tokens = v->tok;
  d->scores = v->scores;
  d->types = v->types;
  d->bos_id = 1;
  d->eos_id = 2;
  d->unk_id = 0;
  d->add_space_prefix = 1;
}

static int encode(const struct tok *t, const char *s, int add_bos, int32_t *ids, size_t cap,
                  size_t *n) {
  return tok_encode(t, s, strlen(s), add_bos, ids, cap, n);
}

#define CHECK_IDS(ids, n, ...)                                                       \
  do {                                                                               \
    const int32_t want_[] = {__VA_ARGS__};                                           \
    size_t nw_ = sizeof want_ / sizeof want_[0];                                     \
    CHECK_EQ_INT((n), nw_);                                                          \
    for (size_t k_ = 0; k_ < nw_; k_++) CHECK_EQ_INT((ids)[k_], want_[k_]);          \
  } while (0)

TEST(spm_merges_highest_score_first) {
  struct spm_vocab v;
  struct tok_desc d;
  struct tok *t = NULL;
  char err[256];
  spm_vocab_build(&v, &d);
  CHECK_EQ_INT(tok_create(&d, &t, err, sizeof err), 0);
  int32_t ids[32];
  size_t n = 0;
  /* "▁ab": ▁+a (▁a, -4) vs a+b (ab, -3): ab wins, then ▁+ab = ▁ab (-5). */
  CHECK_EQ_INT(encode(t, "ab", 0, ids, 32, &n), 0);
  CHECK_IDS(ids, n, 264);
  /* "▁aaa": a+a pairs tie at -1.5, the leftmost merges first: ▁ aa a; then ▁+aa is no token. */
  CHECK_EQ_INT(encode(t, "aaa", 0, ids, 32, &n), 0);
  CHECK_IDS(ids, n, 259, 265, 260);
  /* BOS first when asked; spaces become ▁ and merge with what follows. */
  CHECK_EQ_INT(encode(t, "a ab", 1, ids, 32, &n), 0);
  CHECK_IDS(ids, n, 1, 263, 264);
  tok_destroy(t);
}

TEST(spm_unknown_characters_fall_back_to_bytes) {
  struct spm_vocab v;
  struct tok_desc d;
  struct tok *t = NULL;
  spm_vocab_build(&v, &d);
  CHECK_EQ_INT(tok_create(&d, &t, NULL, 0), 0);
  int32_t ids[32];
  size_t n = 0;
  /* "é" is not a piece: its two UTF-8 bytes become <0xC3> <0xA9> (ids 3 + byte). */
  CHECK_EQ_INT(encode(t, "\xc3\xa9", 0, ids, 32, &n), 0);
  CHECK_IDS(ids, n, 259, 3 + 0xc3, 3 + 0xa9);
  char out[64];
  size_t len = 0;
  CHECK_EQ_INT(tok_decode(t, ids, n, out, sizeof out, &len), 0);
  CHECK_EQ_INT(len, 3);
  CHECK(memcmp(out, " \xc3\xa9", 3) == 0);
  tok_destroy(t);
}

TEST(spm_user_defined_token_is_literal_and_restarts_space_prefix) {
  struct spm_vocab v;
  struct tok_desc d;
  struct tok *t = NULL;
  spm_vocab_build(&v, &d);
  CHECK_EQ_INT(tok_create(&d, &t, NULL, 0), 0);
  int32_t ids[32];
  size_t n = 0;
  /* llama.cpp matches user-defined tokens even with special parsing off, and the raw text
   * after one gets the space prefix again. Control tokens ("<s>") stay plain text. */
  CHECK_EQ_INT(encode(t, "a<|x|>c", 0, ids, 32, &n), 0);
  CHECK_IDS(ids, n, 263, 266, 259, 267);
  CHECK_EQ_INT(encode(t, "<s>", 0, ids, 32, &n), 0);
  CHECK_IDS(ids, n, 259, 3 + '<', 3 + 's', 3 + '>');
  tok_destroy(t);
}

TEST(spm_pieces_decode_to_raw_bytes) {
  struct spm_vocab v;
  struct tok_desc d;
  struct tok *t = NULL;
  spm_vocab_build(&v, &d);
  CHECK_EQ_INT(tok_create(&d, &t, NULL, 0), 0);
  size_t len = 99;
  const char *p = tok_piece(t, 264, &len); /* ▁ab */
  CHECK(p != NULL);
  CHECK_EQ_INT(len, 3);
  CHECK(memcmp(p, " ab", 3) == 0);
  p = tok_piece(t, 3 + 0x41, &len); /* <0x41> */
  CHECK_EQ_INT(len, 1);
  CHECK_EQ_INT(p[0], 'A');
  p = tok_piece(t, 1, &len); /* <s> is control: no text */
  CHECK(p != NULL);
  CHECK_EQ_INT(len, 0);
  p = tok_piece(t, 266, &len); /* user-defined: its text */
  CHECK_EQ_INT(len, 5);
  CHECK(memcmp(p, "<|x|>", 5) == 0);
  CHECK(tok_piece(t, -1, &len) == NULL);
  CHECK(tok_piece(t, (int32_t)v.n, &len) == NULL);
  CHECK(tok_piece(t, INT32_MAX, &len) == NULL);
  int32_t bad[2] = {260, (int32_t)v.n};
  char out[8];
  CHECK_EQ_INT(tok_decode(t, bad, 2, out, sizeof out, &len), REALM_E_OUT_OF_RANGE);
  CHECK_EQ_INT(tok_token_type(t, 1), TOK_TYPE_CONTROL);
  CHECK_EQ_INT(tok_token_type(t, -5), -1);
  CHECK_EQ_INT(tok_find_token(t, "ab", 2), 262);
  CHECK_EQ_INT(tok_find_token(t, "zz", 2), -1);
  tok_destroy(t);
}

TEST(encode_size_query_and_small_buffer) {
  struct spm_vocab v;
  struct tok_desc d;
  struct tok *t = NULL;
  spm_vocab_build(&v, &d);
  CHECK_EQ_INT(tok_create(&d, &t, NULL, 0), 0);
  size_t n = 0;
  CHECK_EQ_INT(encode(t, "a ab", 1, NULL, 0, &n), 0);
  CHECK_EQ_INT(n, 3);
  int32_t ids[2] = {-7, -7};
  size_t untouched = 12345;
  CHECK_EQ_INT(encode(t, "a ab", 1, ids, 2, &untouched), REALM_E_TOO_LARGE);
  CHECK_EQ_INT(untouched, 12345);
  /* Empty input: nothing, not even the space prefix; BOS alone when asked. */
  CHECK_EQ_INT(tok_encode(t, "", 0, 0, ids, 2, &n), 0);
  CHECK_EQ_INT(n, 0);
  CHECK_EQ_INT(tok_encode(t, NULL, 0, 1, ids, 2, &n), 0);
  CHECK_IDS(ids, n, 1);
  CHECK_EQ_INT(tok_encode(t, NULL, 5, 0, ids, 2, &n), REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(tok_encode(t, "x", (size_t)TOK_MAX_TEXT_BYTES + 1, 0, ids, 2, &n),
               REALM_E_TOO_LARGE);
  tok_destroy(t);
}

/* ---- a byte-level BPE vocabulary: the 256 GPT-2 byte characters, then merge results ---- */

struct bpe_vocab {
  struct tok_bytes tok[300];
  char chars[256][4];
  uint32_t n;
  struct tok_bytes merges[8];
  uint32_t n_merges;
};

static uint32_t gpt2_cp(int b) {
  int printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
  if (printable) return (uint32_t)b;
  int k = 0;
  for (int x = 0; x < b; x++)
    if (!((x >= 0x21 && x <= 0x7e) || (x >= 0xa1 && x <= 0xac) || x >= 0xae)) k++;
  return 256u + (uint32_t)k;
}

static void bpe_vocab_build(struct bpe_vocab *v, struct tok_desc *d, const char *pre) {
  memset(v, 0, sizeof *v);
  for (int b = 0; b < 256; b++) {
    uint32_t cp = gpt2_cp(b);
    uint32_t l;
    if (cp < 0x80) {
      v->chars[b][0] = (char)cp;
      l = 1;
    } else {
      v->chars[b][0] = (char)(0xc0 | (cp >> 6));
      v->chars[b][1] = (char)(0x80 | (cp & 0x3f));
      l = 2;
    }
    v->tok[b] = (struct tok_bytes){v->chars[b], l};
  }
  static const char *const extra[] = {"bc", "ab", "abc", "\xc4\xa0" "a", "'s"};
  static const char *const merges[] = {"b c", "a b", "ab c", "\xc4\xa0 a", "' s"};
  uint32_t n = 256;
  for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++, n++)
    v->tok[n] = (struct tok_bytes){extra[i], (uint32_t)strlen(extra[i])};
  for (size_t i = 0; i < sizeof merges / sizeof merges[0]; i++)
    v->merges[i] = (struct tok_bytes){merges[i], (uint32_t)strlen(merges[i])};
  v->n = n;
  v->n_merges = sizeof merges / sizeof merges[0];
  memset(d, 0, sizeof *d);
  d->model = TOK_MODEL_BPE;
  d->pre = pre;
  d->n_tokens = v->n;
  d->tokens = v->tok;
  d->n_merges = v->n_merges;
  d->merges = v->merges;
  d->bos_id = -1;
  d->eos_id = -1;
  d->unk_id = -1;
}

TEST(bpe_merges_lowest_rank_first) {
  struct bpe_vocab v;
  struct tok_desc d;
  struct tok *t = NULL;
  char err[256];
  bpe_vocab_build(&v, &d, "gpt-2");
  CHECK_EQ_INT(tok_create(&d, &t, err, sizeof err), 0);
  int32_t ids[16];
  size_t n = 0;
  /* "abc": b+c has rank 0 and wins over a+b (rank 1); "a bc" has no merge: a, bc. */
  CHECK_EQ_INT(encode(t, "abc", 0, ids, 16, &n), 0);
  CHECK_IDS(ids, n, 'a', 256);
  /* "ab": only a+b applies. */
  CHECK_EQ_INT(encode(t, "ab", 0, ids, 16, &n), 0);
  CHECK_IDS(ids, n, 257);
  /* " a" is one pre-token (space joins the letters after it): Ġa. */
  CHECK_EQ_INT(encode(t, " a", 0, ids, 16, &n), 0);
  CHECK_IDS(ids, n, 259);
  tok_destroy(t);
}

TEST(gpt2_pretokenizer_boundaries) {
  struct bpe_vocab v;
  struct tok_desc d;
  struct tok *t = NULL;
  bpe_vocab_build(&v, &d, "gpt-2");
  CHECK_EQ_INT(tok_create(&d, &t, NULL, 0), 0);
  int32_t ids[16];
  size_t n = 0;
  /* "'s" is a contraction pre-token and merges; "a'b" keeps ' apart from the letters. */
  CHECK_EQ_INT(encode(t, "it's", 0, ids, 16, &n), 0);
  CHECK_IDS(ids, n, 'i', 't', 260);
  /* Two spaces before a word: the first stays alone (\s+(?!\S)), the second prefixes "a". */
  CHECK_EQ_INT(encode(t, "  a", 0, ids, 16, &n), 0);
  CHECK_IDS(ids, n, ' ' /* token of byte 0x20 ("Ġ") */, 259);
  /* A digit breaks the letter run, so "a1bc" cannot merge across it. */
  CHECK_EQ_INT(encode(t, "a1bc", 0, ids, 16, &n), 0);
  CHECK_IDS(ids, n, 'a', '1', 256);
  tok_destroy(t);
}

TEST(bpe_invalid_utf8_round_trips) {
  struct bpe_vocab v;
  struct tok_desc d;
  struct tok *t = NULL;
  bpe_vocab_build(&v, &d, "deepseek-llm");
  CHECK_EQ_INT(tok_create(&d, &t, NULL, 0), 0);
  const char in[] = "\xff\xfe a\xc3(\x80\xe2\x82 \xf4\x90\x80\x80z";
  size_t len = sizeof in - 1, n = 0;
  int32_t ids[64];
  CHECK_EQ_INT(tok_encode(t, in, len, 0, ids, 64, &n), 0);
  char out[64];
  size_t olen = 0;
  CHECK_EQ_INT(tok_decode(t, ids, n, out, sizeof out, &olen), 0);
  CHECK_EQ_INT(olen, len);
  CHECK(memcmp(out, in, len) == 0);
  tok_destroy(t);
}

TEST(create_rejects_bad_descriptions) {
  struct spm_vocab v;
  struct tok_desc d;
  struct tok *t = (struct tok *)&v; /* must stay untouched on failure */
  char err[256];
  spm_vocab_build(&v, &d);
  d.bos_id = (int32_t)v.n;
  CHECK_EQ_INT(tok_create(&d, &t, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "bos_id");
  CHECK(t == (struct tok *)&v);
  spm_vocab_build(&v, &d);
  v.types[5] = 9;
  CHECK_EQ_INT(tok_create(&d, &t, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "token 5");
  spm_vocab_build(&v, &d);
  v.scores[7] = NAN;
  CHECK_EQ_INT(tok_create(&d, &t, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "NaN");
  spm_vocab_build(&v, &d);
  d.n_tokens = 0;
  CHECK_EQ_INT(tok_create(&d, &t, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "n_tokens");
  spm_vocab_build(&v, &d);
  d.model = (enum tok_model)7;
  CHECK_EQ_INT(tok_create(&d, &t, err, sizeof err), REALM_E_UNSUPPORTED);

  struct bpe_vocab b;
  bpe_vocab_build(&b, &d, "llama-bpe");
  CHECK_EQ_INT(tok_create(&d, &t, err, sizeof err), REALM_E_UNSUPPORTED);
  CHECK_STR_CONTAINS(err, "llama-bpe");
  bpe_vocab_build(&b, &d, "gpt-2");
  b.merges[2] = (struct tok_bytes){"abc", 3};
  CHECK_EQ_INT(tok_create(&d, &t, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "merge 2");
  bpe_vocab_build(&b, &d, "gpt-2");
  b.tok[3].len = TOK_MAX_TOKEN_BYTES + 1;
  CHECK_EQ_INT(tok_create(&d, &t, err, sizeof err), REALM_E_TOO_LARGE);
  CHECK_STR_CONTAINS(err, "token 3");
  CHECK(t == (struct tok *)&v);
  CHECK_EQ_INT(tok_create(NULL, &t, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  tok_destroy(NULL);
}

TEST(unicode_categories_from_generated_table) {
  CHECK_EQ_INT(tok_ucat_of('A'), TOK_UCAT_L);
  CHECK_EQ_INT(tok_ucat_of('z'), TOK_UCAT_L);
  CHECK_EQ_INT(tok_ucat_of('7'), TOK_UCAT_N);
  CHECK_EQ_INT(tok_ucat_of(0xbd), TOK_UCAT_N);    /* ½ is No */
  CHECK_EQ_INT(tok_ucat_of(0x4e00), TOK_UCAT_L);  /* CJK ideograph */
  CHECK_EQ_INT(tok_ucat_of(0x0301), TOK_UCAT_M);  /* combining acute */
  CHECK_EQ_INT(tok_ucat_of('!'), TOK_UCAT_P);
  CHECK_EQ_INT(tok_ucat_of('+'), TOK_UCAT_S);
  CHECK_EQ_INT(tok_ucat_of(0x1f680), TOK_UCAT_S); /* rocket emoji is So */
  CHECK_EQ_INT(tok_ucat_of(0x10ffff), TOK_UCAT_OTHER);
  CHECK_EQ_INT(tok_ucat_of(TOK_CP_INVALID_BASE + 0xff), TOK_UCAT_OTHER);
  CHECK(tok_is_whitespace(' ') && tok_is_whitespace('\n') && tok_is_whitespace(0x3000));
  CHECK(tok_is_whitespace(0x85) && tok_is_whitespace(0x200a) && !tok_is_whitespace(0x200b));
  CHECK(!tok_is_whitespace('a') && !tok_is_whitespace(0x1c));
}

TEST(utf8_decoder_never_fails) {
  size_t l = 0;
  const unsigned char ok4[] = {0xf0, 0x9f, 0x9a, 0x80};
  CHECK_EQ_INT(tok_utf8_decode(ok4, 4, &l), 0x1f680);
  CHECK_EQ_INT(l, 4);
  const unsigned char trunc[] = {0xe4, 0xbd};
  CHECK_EQ_INT(tok_utf8_decode(trunc, 2, &l), TOK_CP_INVALID_BASE + 0xe4);
  CHECK_EQ_INT(l, 1);
  const unsigned char stray[] = {0x80};
  CHECK_EQ_INT(tok_utf8_decode(stray, 1, &l), TOK_CP_INVALID_BASE + 0x80);
  CHECK_EQ_INT(l, 1);
  const unsigned char broken[] = {0xc3, 0x28};
  CHECK_EQ_INT(tok_utf8_decode(broken, 2, &l), TOK_CP_INVALID_BASE + 0xc3);
  CHECK_EQ_INT(l, 1);
  const unsigned char too_big[] = {0xf4, 0x90, 0x80, 0x80};
  CHECK_EQ_INT(tok_utf8_decode(too_big, 4, &l), TOK_CP_INVALID_BASE + 0xf4);
  char buf[4];
  CHECK_EQ_INT(tok_utf8_encode(0x2581, buf), 3);
  CHECK(memcmp(buf, "\xe2\x96\x81", 3) == 0);
  CHECK(strlen(tok_unicode_version()) > 0);
}
