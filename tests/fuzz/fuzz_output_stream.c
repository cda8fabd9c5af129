/*
 * fuzz_output_stream.c — libFuzzer target for the default guest's text output path
 * (tenant-runner/guest-sdk/default/sampler: output_stream.c over utf8_stream.c and stop.c).
 *
 * The bytes a model emits are arbitrary (byte-fallback tokens, BPE merges that split a
 * character), the stop strings come from the client, and tokens cut the text at arbitrary
 * places. The headers promise that the result does not depend on the chunking. The input is
 * decoded as:
 *   byte 0          bits 0..2: number of stop strings (0..4, larger values wrap);
 *                   bit 3: end the run with a stop token instead of output_stream_end
 *   per stop string one length byte L (1..32 after masking), then L bytes
 *   rest            chunks: one length byte C (0..15 after masking), then C piece bytes
 * Stop sets that output_stream_create refuses (invalid UTF-8, empty) end the run. The text is
 * then pushed three ways — the fuzzer's chunks, one byte per token, and all at once — and each
 * run must produce the same concatenated text, finish reason and matched stop string; every
 * emitted chunk must be valid UTF-8; and the result must equal a naive reference model: the
 * text made valid by the UTF-8 stream (one-shot, flushed), cut before the first stop string to
 * complete (the longest one when several complete at the same byte).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output_stream.h"
#include "realm/error.h"
#include "realm/limits.h"
#include "stop.h"
#include "utf8_stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond, what)                                                       \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      fprintf(stderr, "fuzz_output_stream: invariant broken: %s (%s:%d)\n", what,     \
              __FILE__, __LINE__);                                                    \
      abort();                                                                        \
    }                                                                                 \
  } while (0)

#define STOP_TOKEN 0
#define TEXT_TOKEN 7

struct result {
  uint8_t *text;
  size_t len, cap;
  enum output_finish finish;
  int matched_stop;
};

static void append(struct result *r, const char *p, size_t n) {
  FUZZ_ASSERT(utf8_is_valid((const uint8_t *)p, n), "an emitted chunk is not valid UTF-8");
  if (r->len + n > r->cap) {
    size_t cap = (r->len + n) * 2 + 16;
    uint8_t *t = realloc(r->text, cap);
    FUZZ_ASSERT(t != NULL, "realloc");
    r->text = t;
    r->cap = cap;
  }
  if (n) memcpy(r->text + r->len, p, n);
  r->len += n;
}

/* Pushes the chunks [cuts[i], cuts[i+1]) of text as one token each. */
static void run(const struct output_stream_params *p, const uint8_t *text, const size_t *cuts,
                size_t n_cuts, bool stop_token_at_end, struct result *res) {
  struct output_stream *o = NULL;
  char err[256];
  FUZZ_ASSERT(output_stream_create(p, &o, err, sizeof err) == 0, "create succeeded once, not now");
  memset(res, 0, sizeof *res);
  enum output_finish fin = OUTPUT_RUNNING;
  const char *t;
  size_t n;
  for (size_t i = 0; i + 1 < n_cuts && fin == OUTPUT_RUNNING; i++) {
    int rc = output_stream_push(o, TEXT_TOKEN, text + cuts[i], cuts[i + 1] - cuts[i], &t, &n,
                                &fin, err, sizeof err);
    FUZZ_ASSERT(rc == 0, "push failed");
    append(res, t, n);
  }
  if (fin == OUTPUT_RUNNING && stop_token_at_end) {
    FUZZ_ASSERT(output_stream_push(o, STOP_TOKEN, (const uint8_t *)"</s>", 4, &t, &n, &fin, err,
                                   sizeof err) == 0,
                "stop-token push failed");
    append(res, t, n);
    FUZZ_ASSERT(fin == OUTPUT_FINISH_STOP, "a stop token did not finish the stream");
  }
  if (fin == OUTPUT_RUNNING) {
    FUZZ_ASSERT(output_stream_end(o, &t, &n, &fin) == 0, "end failed");
    append(res, t, n);
    FUZZ_ASSERT(fin != OUTPUT_RUNNING, "end left the stream running");
  } else {
    /* Once finished, pushes are refused and end is a no-op. */
    FUZZ_ASSERT(output_stream_push(o, TEXT_TOKEN, (const uint8_t *)"x", 1, &t, &n, &fin, err,
                                   sizeof err) == REALM_E_INVALID_ARGUMENT,
                "push after finish accepted");
    FUZZ_ASSERT(output_stream_end(o, &t, &n, &fin) == 0 && n == 0, "end after finish emitted");
  }
  res->finish = fin;
  res->matched_stop = output_stream_matched_stop(o);
  output_stream_destroy(o);
}

static bool same(const struct result *a, const struct result *b) {
  return a->len == b->len && (a->len == 0 || memcmp(a->text, b->text, a->len) == 0) &&
         a->finish == b->finish && a->matched_stop == b->matched_stop;
}

/* The reference: sanitize in one shot, then scan for the first stop to complete. */
static void reference(const uint8_t *text, size_t len, const char *const *stops, size_t n_stops,
                      struct result *res) {
  struct utf8_stream u;
  utf8_stream_init(&u);
  size_t cap = utf8_stream_max_output(len) + 3;
  uint8_t *clean = malloc(cap);
  FUZZ_ASSERT(clean != NULL, "malloc");
  size_t n = 0;
  FUZZ_ASSERT(utf8_stream_push(&u, text, len, clean, cap, &n) == 0, "one-shot utf8 push");
  n += utf8_stream_flush(&u, clean + n, cap - n);
  FUZZ_ASSERT(utf8_is_valid(clean, n), "utf8_stream output is not valid UTF-8");
  if (utf8_is_valid(text, len))
    FUZZ_ASSERT(n == len && memcmp(clean, text, len) == 0, "valid UTF-8 was altered");
  memset(res, 0, sizeof *res);
  res->text = clean;
  res->len = n;
  res->cap = cap;
  res->matched_stop = -1;
  for (size_t end = 1; end <= n; end++) {
    size_t best_len = 0;
    int best = -1;
    for (size_t s = 0; s < n_stops; s++) {
      size_t sl = strlen(stops[s]);
      if (sl <= end && memcmp(clean + end - sl, stops[s], sl) == 0 && sl > best_len) {
        best_len = sl;
        best = (int)s;
      }
    }
    if (best >= 0) {
      res->len = end - best_len;
      res->matched_stop = best;
      res->finish = OUTPUT_FINISH_STOP;
      return;
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t pos = 1;
  size_t n_stops = data[0] & 7u;
  if (n_stops > STOP_MAX_STRINGS) n_stops -= STOP_MAX_STRINGS;
  bool stop_token_at_end = (data[0] & 8u) != 0;
  char stop_buf[STOP_MAX_STRINGS][33];
  const char *stops[STOP_MAX_STRINGS];
  for (size_t s = 0; s < n_stops; s++) {
    if (pos >= size) return 0;
    size_t l = (size_t)(data[pos++] & 31u) + 1;
    if (size - pos < l) return 0;
    memcpy(stop_buf[s], data + pos, l);
    stop_buf[s][l] = '\0';
    pos += l;
    stops[s] = stop_buf[s];
  }
  /* Chunk boundaries of the fuzzer's cut, and the concatenated text. */
  size_t text_cap = size;
  uint8_t *text = malloc(text_cap ? text_cap : 1);
  size_t *cuts = malloc((size + 2) * sizeof *cuts);
  FUZZ_ASSERT(text && cuts, "malloc");
  size_t len = 0, n_cuts = 0;
  cuts[n_cuts++] = 0;
  while (pos < size) {
    size_t c = data[pos++] & 15u;
    if (c > size - pos) c = size - pos;
    memcpy(text + len, data + pos, c);
    len += c;
    pos += c;
    cuts[n_cuts++] = len;
  }

  int32_t stop_tokens[1] = {STOP_TOKEN};
  struct output_stream_params p = {
      .stop = stops,
      .n_stop = n_stops,
      .stop_tokens = stop_tokens,
      .n_stop_tokens = 1,
      .n_vocab = 256,
      .max_tokens = REALM_MAX_COMPLETION_TOKENS,
  };
  struct output_stream *probe = NULL;
  char err[256];
  int rc = output_stream_create(&p, &probe, err, sizeof err);
  output_stream_destroy(probe);
  bool ok_stops = true;
  for (size_t s = 0; s < n_stops; s++)
    ok_stops = ok_stops && strlen(stops[s]) > 0 &&
               utf8_is_valid((const uint8_t *)stops[s], strlen(stops[s]));
  if (rc < 0) {
    FUZZ_ASSERT(rc == REALM_E_INVALID_ARGUMENT && !ok_stops, "valid stop strings refused");
    goto out;
  }
  FUZZ_ASSERT(ok_stops, "invalid stop strings accepted");

  struct result a, b, c, ref;
  run(&p, text, cuts, n_cuts, stop_token_at_end, &a);
  size_t *bytewise = malloc((len + 1) * sizeof *bytewise);
  FUZZ_ASSERT(bytewise != NULL, "malloc");
  for (size_t i = 0; i <= len; i++) bytewise[i] = i;
  run(&p, text, bytewise, len + 1, stop_token_at_end, &b);
  size_t whole[2] = {0, len};
  run(&p, text, whole, 2, stop_token_at_end, &c);
  FUZZ_ASSERT(same(&a, &b), "fuzzer chunking and one byte per token disagree");
  FUZZ_ASSERT(same(&a, &c), "fuzzer chunking and one push disagree");
  reference(text, len, stops, n_stops, &ref);
  if (ref.matched_stop < 0) ref.finish = stop_token_at_end ? OUTPUT_FINISH_STOP : OUTPUT_FINISH_LENGTH;
  FUZZ_ASSERT(same(&a, &ref), "output differs from the reference model");
  free(bytewise);
  free(a.text);
  free(b.text);
  free(c.text);
  free(ref.text);
out:
  free(text);
  free(cuts);
  return 0;
}
