/*
 * test_stream.c — stop strings across token boundaries, UTF-8-safe streaming, and the
 * combined output stream (stop tokens, max_tokens, exact final text).
 */
#include <stdint.h>
#include <string.h>

#include "output_stream.h"
#include "realm/error.h"
#include "realm_test.h"
#include "stop.h"
#include "utf8_stream.h"

/* ---- stop matcher ---- */

struct collected {
  char text[4096];
  size_t len;
  int stopped;
};

/* Feeds chunks through the matcher, concatenating its output; flushes if no stop matched. */
static int run_stop(const char *const *stops, size_t n_stops, const char *const *chunks,
                    size_t n_chunks, struct collected *c) {
  struct stop_matcher m;
  char err[256] = "";
  memset(c, 0, sizeof *c);
  int r = stop_matcher_init(&m, stops, n_stops, err, sizeof err);
  if (r < 0) {
    printf("# %s\n", err);
    return r;
  }
  for (size_t i = 0; i < n_chunks && !c->stopped; i++) {
    size_t len = 0;
    size_t n = strlen(chunks[i]);
    r = stop_matcher_push(&m, (const uint8_t *)chunks[i], n, (uint8_t *)c->text + c->len,
                          sizeof c->text - c->len, &len);
    if (r < 0) return r;
    c->len += len;
    if (r == 1) c->stopped = 1;
  }
  if (!c->stopped) c->len += stop_matcher_flush(&m, (uint8_t *)c->text + c->len, sizeof c->text - c->len);
  c->text[c->len] = '\0';
  return m.matched;
}

TEST(stop_string_split_across_three_tokens_is_not_emitted) {
  const char *stops[1] = {"\nUser:"};
  const char *chunks[5] = {"Hello there", "\nU", "se", "r:", " more"};
  struct collected c;
  CHECK_EQ_INT(run_stop(stops, 1, chunks, 5, &c), 0);
  CHECK(c.stopped);
  CHECK_STR_EQ(c.text, "Hello there");
}

TEST(stop_matcher_holds_back_only_possible_prefixes) {
  struct stop_matcher m;
  const char *stops[1] = {"END"};
  CHECK_EQ_INT(stop_matcher_init(&m, stops, 1, NULL, 0), REALM_OK);
  uint8_t out[64];
  size_t len = 99;
  CHECK_EQ_INT(stop_matcher_push(&m, (const uint8_t *)"abcE", 4, out, sizeof out, &len), 0);
  CHECK_EQ_INT(len, 3); /* "abc" released, "E" held */
  CHECK(memcmp(out, "abc", 3) == 0);
  CHECK_EQ_INT(stop_matcher_push(&m, (const uint8_t *)"N", 1, out, sizeof out, &len), 0);
  CHECK_EQ_INT(len, 0); /* "EN" held */
  CHECK_EQ_INT(stop_matcher_push(&m, (const uint8_t *)"x", 1, out, sizeof out, &len), 0);
  CHECK_EQ_INT(len, 3); /* "ENx" can no longer start END: released intact */
  CHECK(memcmp(out, "ENx", 3) == 0);
}

TEST(partial_prefix_that_is_not_a_stop_is_emitted_intact) {
  const char *stops[1] = {"</answer>"};
  const char *chunks[4] = {"a </", "ans", "wer is 42<", "/"};
  struct collected c;
  CHECK_EQ_INT(run_stop(stops, 1, chunks, 4, &c), -1);
  CHECK(!c.stopped);
  CHECK_STR_EQ(c.text, "a </answer is 42</"); /* the held "</" tail is flushed at the end */
}

TEST(overlapping_pattern_aab_in_aaab) {
  const char *stops[1] = {"aab"};
  const char *chunks[4] = {"x", "a", "aa", "by"};
  struct collected c;
  CHECK_EQ_INT(run_stop(stops, 1, chunks, 4, &c), 0);
  CHECK_STR_EQ(c.text, "xa");
  /* Same text in one chunk and byte by byte: chunking does not change the result. */
  const char *one[1] = {"xaaaby"};
  CHECK_EQ_INT(run_stop(stops, 1, one, 1, &c), 0);
  CHECK_STR_EQ(c.text, "xa");
  const char *bytes[6] = {"x", "a", "a", "a", "b", "y"};
  CHECK_EQ_INT(run_stop(stops, 1, bytes, 6, &c), 0);
  CHECK_STR_EQ(c.text, "xa");
}

TEST(several_stops_first_to_complete_wins) {
  const char *stops[3] = {"abcd", "bc", "zz"};
  const char *chunks[2] = {"xab", "cd"};
  struct collected c;
  CHECK_EQ_INT(run_stop(stops, 3, chunks, 2, &c), 1);
  CHECK_STR_EQ(c.text, "xa");
  /* Same end byte: the longer one (earlier start) wins. */
  const char *stops2[2] = {"c", "abc"};
  const char *chunks2[1] = {"zabc"};
  CHECK_EQ_INT(run_stop(stops2, 2, chunks2, 1, &c), 1);
  CHECK_STR_EQ(c.text, "z");
}

TEST(stop_at_very_start_and_no_stops) {
  const char *stops[1] = {"###"};
  const char *chunks[2] = {"##", "#tail"};
  struct collected c;
  CHECK_EQ_INT(run_stop(stops, 1, chunks, 2, &c), 0);
  CHECK_STR_EQ(c.text, "");
  const char *plain[2] = {"no ", "stops"};
  CHECK_EQ_INT(run_stop(NULL, 0, plain, 2, &c), -1);
  CHECK_STR_EQ(c.text, "no stops");
}

TEST(stop_strings_validated) {
  struct stop_matcher m;
  char err[256];
  char big[300];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  const char *too_long[1] = {big};
  CHECK_EQ_INT(stop_matcher_init(&m, too_long, 1, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "stop[0]");
  const char *empty[2] = {"ok", ""};
  CHECK_EQ_INT(stop_matcher_init(&m, empty, 2, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "stop[1]: empty");
  const char *five[5] = {"a", "b", "c", "d", "e"};
  CHECK_EQ_INT(stop_matcher_init(&m, five, 5, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "at most 4");
  const char *bad_utf8[1] = {"\xff\xfe"};
  CHECK_EQ_INT(stop_matcher_init(&m, bad_utf8, 1, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "UTF-8");
}

/* ---- UTF-8 stream ---- */

/* Pushes each chunk; returns the concatenated output after a final flush; counts non-empty
 * outputs in *emits. */
static size_t run_utf8(const uint8_t *const *chunks, const size_t *lens, size_t n, uint8_t *out,
                       int *emits) {
  struct utf8_stream u;
  utf8_stream_init(&u);
  size_t total = 0;
  *emits = 0;
  for (size_t i = 0; i < n; i++) {
    size_t len = 0;
    if (utf8_stream_push(&u, chunks[i], lens[i], out + total, 256, &len) < 0) return (size_t)-1;
    total += len;
    *emits += len > 0;
  }
  total += utf8_stream_flush(&u, out + total, 3);
  return total;
}

TEST(four_byte_emoji_split_over_three_tokens_emitted_whole_once) {
  /* U+1F600 = F0 9F 98 80 as tokens "a\xF0", "\x9F\x98", "\x80b" */
  const uint8_t t1[] = {'a', 0xF0}, t2[] = {0x9F, 0x98}, t3[] = {0x80, 'b'};
  struct utf8_stream u;
  utf8_stream_init(&u);
  uint8_t out[64];
  size_t len;
  CHECK_EQ_INT(utf8_stream_push(&u, t1, 2, out, sizeof out, &len), REALM_OK);
  CHECK_EQ_INT(len, 1);
  CHECK(out[0] == 'a');
  CHECK_EQ_INT(utf8_stream_push(&u, t2, 2, out, sizeof out, &len), REALM_OK);
  CHECK_EQ_INT(len, 0); /* nothing of the half character */
  CHECK_EQ_INT(utf8_stream_push(&u, t3, 2, out, sizeof out, &len), REALM_OK);
  CHECK_EQ_INT(len, 5);
  CHECK(memcmp(out, "\xF0\x9F\x98\x80"
                    "b", 5) == 0);
  CHECK_EQ_INT(utf8_stream_flush(&u, out, sizeof out), 0);
}

TEST(invalid_bytes_become_replacement_characters) {
  struct {
    const char *in;
    size_t n;
    const char *want;
  } cases[] = {
      {"a\xff" "b", 3, "a\xEF\xBF\xBD" "b"},                     /* invalid byte */
      {"\x80", 1, "\xEF\xBF\xBD"},                               /* stray continuation */
      {"\xC0\xAF", 2, "\xEF\xBF\xBD\xEF\xBF\xBD"},               /* overlong lead: 2 x FFFD */
      {"\xE2\x82" "A", 3, "\xEF\xBF\xBD" "A"},                   /* truncated, then ASCII */
      {"\xED\xA0\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate: 3 x FFFD */
      {"\xF4\x90\x80\x80", 4, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* > U+10FFFF */
      {"\xE2\x82\xAC", 3, "\xE2\x82\xAC"},                       /* valid euro sign */
      {"\xEF\xBF\xBD", 3, "\xEF\xBF\xBD"},                       /* a genuine U+FFFD */
      {"x\xF0\x9F", 3, "x\xEF\xBF\xBD"},                         /* truncated at the end */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const uint8_t *chunks[1] = {(const uint8_t *)cases[i].in};
    size_t lens[1] = {cases[i].n};
    uint8_t out[256];
    int emits;
    size_t n = run_utf8(chunks, lens, 1, out, &emits);
    out[n] = 0;
    if (strcmp((char *)out, cases[i].want) != 0) printf("# case %zu\n", i);
    CHECK_STR_EQ((char *)out, cases[i].want);
  }
  CHECK(utf8_is_valid((const uint8_t *)"\xEF\xBF\xBD ok \xF0\x9F\x98\x80", 12));
  CHECK(!utf8_is_valid((const uint8_t *)"\xC3", 1));
  CHECK(!utf8_is_valid((const uint8_t *)"\xC3(", 2));
}

TEST(utf8_push_refuses_small_output) {
  struct utf8_stream u;
  utf8_stream_init(&u);
  uint8_t out[4];
  size_t len = 7;
  CHECK_EQ_INT(utf8_stream_push(&u, (const uint8_t *)"abc", 3, out, sizeof out, &len),
               REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(len, 7);
}

/* ---- combined output stream ---- */

struct gen {
  char text[4096];
  size_t len;
  int chunks_with_text;
  enum output_finish finish;
};

/* Pushes (token, piece) pairs until finished; every chunk must be valid UTF-8 by itself. */
static int run_gen(struct output_stream *o, const int32_t *tokens, const char *const *pieces,
                   size_t n, struct gen *g) {
  memset(g, 0, sizeof *g);
  for (size_t i = 0; i < n && g->finish == OUTPUT_RUNNING; i++) {
    const char *t;
    size_t len;
    char err[256];
    int r = output_stream_push(o, tokens[i], (const uint8_t *)pieces[i], strlen(pieces[i]), &t,
                               &len, &g->finish, err, sizeof err);
    if (r < 0) {
      printf("# push: %s\n", err);
      return r;
    }
    if (!utf8_is_valid((const uint8_t *)t, len)) return -1000;
    memcpy(g->text + g->len, t, len);
    g->len += len;
    g->chunks_with_text += len > 0;
  }
  if (g->finish == OUTPUT_RUNNING) {
    const char *t;
    size_t len;
    int r = output_stream_end(o, &t, &len, &g->finish);
    if (r < 0) return r;
    memcpy(g->text + g->len, t, len);
    g->len += len;
  }
  g->text[g->len] = '\0';
  return 0;
}

static struct output_stream *make_stream(const char *const *stops, size_t n_stops,
                                         const int32_t *stop_tokens, size_t n_stop_tokens,
                                         int32_t max_tokens) {
  struct output_stream_params p = {stops, n_stops, stop_tokens, n_stop_tokens, 1000, max_tokens};
  struct output_stream *o = NULL;
  char err[256];
  if (output_stream_create(&p, &o, err, sizeof err) < 0) printf("# create: %s\n", err);
  return o;
}

TEST(stream_stop_string_after_emoji_across_tokens) {
  /* "Hi 😀" then the stop string "<END>" arriving in pieces, emoji bytes split too. */
  const char *stops[1] = {"<END>"};
  struct output_stream *o = make_stream(stops, 1, NULL, 0, 100);
  CHECK(o);
  const int32_t toks[6] = {1, 2, 3, 4, 5, 6};
  const char *pieces[6] = {"Hi \xF0\x9F", "\x98", "\x80<E", "N", "D>", "never"};
  struct gen g;
  CHECK_EQ_INT(run_gen(o, toks, pieces, 6, &g), 0);
  CHECK_STR_EQ(g.text, "Hi \xF0\x9F\x98\x80");
  CHECK_EQ_INT(g.finish, OUTPUT_FINISH_STOP);
  CHECK_STR_EQ(output_finish_name(g.finish), "stop");
  CHECK_EQ_INT(output_stream_matched_stop(o), 0);
  CHECK_EQ_INT(output_stream_n_tokens(o), 5);
  /* once finished, further pushes are refused */
  const char *t;
  size_t len;
  enum output_finish f;
  CHECK_EQ_INT(output_stream_push(o, 9, (const uint8_t *)"x", 1, &t, &len, &f, NULL, 0),
               REALM_E_INVALID_ARGUMENT);
  output_stream_destroy(o);
}

TEST(stream_stop_token_not_emitted_but_held_text_is) {
  const char *stops[1] = {"\n\n"};
  const int32_t stop_tokens[2] = {2, 999};
  struct output_stream *o = make_stream(stops, 1, stop_tokens, 2, 100);
  CHECK(o);
  /* "\n" is held (could start "\n\n"); then EOS (id 2, piece "</s>") ends generation: the
   * held "\n" is part of the answer, "</s>" is not. */
  const int32_t toks[3] = {10, 11, 2};
  const char *pieces[3] = {"Done.", "\n", "</s>"};
  struct gen g;
  CHECK_EQ_INT(run_gen(o, toks, pieces, 3, &g), 0);
  CHECK_STR_EQ(g.text, "Done.\n");
  CHECK_EQ_INT(g.finish, OUTPUT_FINISH_STOP);
  CHECK_EQ_INT(output_stream_stop_token(o), 2);
  CHECK_EQ_INT(output_stream_matched_stop(o), -1);
  output_stream_destroy(o);
}

TEST(stream_max_tokens_gives_length_and_flushes) {
  const char *stops[1] = {"abc"};
  struct output_stream *o = make_stream(stops, 1, NULL, 0, 3);
  CHECK(o);
  /* third token ends with a held "ab" and a half character: both are flushed, the half
   * character as U+FFFD. */
  const int32_t toks[4] = {1, 2, 3, 4};
  const char *pieces[4] = {"x", "y", "ab\xE2\x82", "z"};
  struct gen g;
  CHECK_EQ_INT(run_gen(o, toks, pieces, 4, &g), 0);
  CHECK_STR_EQ(g.text, "xyab\xEF\xBF\xBD");
  CHECK_EQ_INT(g.finish, OUTPUT_FINISH_LENGTH);
  CHECK_STR_EQ(output_finish_name(g.finish), "length");
  CHECK_EQ_INT(output_stream_n_tokens(o), 3);
  output_stream_destroy(o);
}

TEST(stream_end_by_caller_flushes_held_text) {
  const char *stops[1] = {"STOP"};
  struct output_stream *o = make_stream(stops, 1, NULL, 0, 100);
  CHECK(o);
  const int32_t toks[2] = {1, 2};
  const char *pieces[2] = {"go ", "ST"};
  struct gen g;
  CHECK_EQ_INT(run_gen(o, toks, pieces, 2, &g), 0); /* run_gen calls output_stream_end */
  CHECK_STR_EQ(g.text, "go ST");
  CHECK_EQ_INT(g.finish, OUTPUT_FINISH_LENGTH);
  output_stream_destroy(o);
}

TEST(stream_chunking_does_not_change_text) {
  /* The same byte string cut at every position gives the same final text. */
  const char *full = "Caf\xC3\xA9 \xF0\x9F\x98\x80 <stop> tail";
  const char *stops[1] = {"<stop>"};
  size_t n = strlen(full);
  for (size_t cut = 0; cut <= n; cut++) {
    char a[64], b[64];
    memcpy(a, full, cut);
    a[cut] = 0;
    strcpy(b, full + cut);
    struct output_stream *o = make_stream(stops, 1, NULL, 0, 100);
    CHECK(o);
    const int32_t toks[2] = {1, 2};
    const char *pieces[2] = {a, b};
    struct gen g;
    CHECK_EQ_INT(run_gen(o, toks, pieces, 2, &g), 0);
    CHECK_STR_EQ(g.text, "Caf\xC3\xA9 \xF0\x9F\x98\x80 ");
    CHECK_EQ_INT(g.finish, OUTPUT_FINISH_STOP);
    output_stream_destroy(o);
  }
}

TEST(stream_params_validated) {
  struct output_stream *o = NULL;
  char err[256];
  struct output_stream_params p = {NULL, 0, NULL, 0, 100, 0};
  CHECK_EQ_INT(output_stream_create(&p, &o, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "max_tokens 0");
  const int32_t bad[1] = {100};
  struct output_stream_params q = {NULL, 0, bad, 1, 100, 10};
  CHECK_EQ_INT(output_stream_create(&q, &o, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "stop_tokens[0] = 100");
  CHECK(o == NULL);
}

/* ---- randomized cross-checks (fixed seed, bounded) ---- */

static uint64_t lcg_next(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 33;
}

/* Reference: the first byte position at which any stop ends; the longest such stop. */
static size_t reference_stop(const char *text, const char *const *stops, size_t n_stops,
                             int *ret_matched) {
  size_t n = strlen(text);
  for (size_t e = 1; e <= n; e++) {
    size_t best = 0;
    int which = -1;
    for (size_t j = 0; j < n_stops; j++) {
      size_t L = strlen(stops[j]);
      if (L <= e && memcmp(text + e - L, stops[j], L) == 0 && L > best) {
        best = L;
        which = (int)j;
      }
    }
    if (which >= 0) {
      *ret_matched = which;
      return e - best;
    }
  }
  *ret_matched = -1;
  return n;
}

TEST(stop_matcher_matches_reference_under_random_chunking) {
  const char *stops[4] = {"aab", "abcab", "cc", "bab"};
  uint64_t seed = 12345;
  for (int iter = 0; iter < 2000; iter++) {
    char text[64];
    size_t n = 1 + lcg_next(&seed) % 40;
    for (size_t i = 0; i < n; i++) text[i] = "abc"[lcg_next(&seed) % 3];
    text[n] = '\0';
    size_t n_stops = 1 + lcg_next(&seed) % 4;
    int want_matched;
    size_t want_len = reference_stop(text, stops, n_stops, &want_matched);
    /* cut into random chunks */
    char pieces[64][64];
    const char *chunks[64];
    size_t n_chunks = 0;
    for (size_t i = 0; i < n;) {
      size_t len = 1 + lcg_next(&seed) % 5;
      if (len > n - i) len = n - i;
      memcpy(pieces[n_chunks], text + i, len);
      pieces[n_chunks][len] = '\0';
      chunks[n_chunks] = pieces[n_chunks];
      n_chunks++;
      i += len;
    }
    struct collected c;
    int matched = run_stop(stops, n_stops, chunks, n_chunks, &c);
    if (matched != want_matched || c.len != want_len) printf("# text %s stops %zu\n", text, n_stops);
    CHECK_EQ_INT(matched, want_matched);
    CHECK_EQ_INT(c.len, want_len);
    CHECK(memcmp(c.text, text, want_len) == 0);
  }
}

TEST(utf8_stream_chunking_independent_random_bytes) {
  uint64_t seed = 777;
  for (int iter = 0; iter < 2000; iter++) {
    uint8_t in[32];
    size_t n = lcg_next(&seed) % 32;
    /* bias towards bytes that make interesting sequences */
    static const uint8_t pool[] = {'a', 0x80, 0x9F, 0xA0, 0xBF, 0xC2, 0xC3, 0xE0, 0xE2, 0xED,
                                   0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0x82, 0xAC, 0x90, 0x98};
    for (size_t i = 0; i < n; i++) in[i] = pool[lcg_next(&seed) % sizeof pool];
    uint8_t whole[256], split[256];
    const uint8_t *c1[1] = {in};
    size_t l1[1] = {n};
    int emits;
    size_t a = run_utf8(c1, l1, 1, whole, &emits);
    const uint8_t *cb[32];
    size_t lb[32];
    for (size_t i = 0; i < n; i++) {
      cb[i] = in + i;
      lb[i] = 1;
    }
    size_t b = run_utf8(cb, lb, n, split, &emits);
    CHECK_EQ_INT(a, b);
    CHECK(memcmp(whole, split, a) == 0);
    CHECK(utf8_is_valid(whole, a));
  }
}
