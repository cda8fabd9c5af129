/*
 * test_default_guest.c — the default guest (default.wasm) end to end, through the sandbox.
 *
 * The test plays the runner and the worker (guest_test_host.c): stories260K's vocabulary is
 * served through the guest's imports and its logits come from the in-process engine. The
 * guest must: reproduce the model's greedy oracle from an empty prompt; tokenize a prompt
 * exactly like the native tokenizer; stop at a stop string, at max_tokens, at EOS, each with
 * its finish reason; be reproducible per seed; render a chat template; never split a UTF-8
 * character across emitted chunks; refuse bad parameters without harming the instance; build
 * the vocabulary once per instance; report the finish reason through realm_finish (read with
 * sandbox_instance_finish_reason); send top logprobs, and skip computing logprobs when the host
 * says it drops them (REALM_REQ_SKIP_LOGPROBS) without changing a token; apply logit_bias; use
 * the model's merges,
 * pre-tokenizer, add_bos flag and chat template when the host serves them, and fall back when
 * it does not. Most tests share one module and instance (the module is compiled by wasm2c + cc
 * once and cached in the build directory); vocabulary tests make their own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest_test_host.h"
#include "realm_test.h"
#include "tokenizer.h"

#define GUEST_REQ_CHAT_TEMPLATE 0x10001u /* guest-private key (guest_request.h) */

static struct gth *g_host;
static int g_open_rc = -1;
static char g_open_err[512];

static struct gth *host(void) {
  if (g_open_rc < 0 && !g_host) g_open_rc = gth_open(&g_host, g_open_err, sizeof g_open_err);
  return g_open_rc == 0 ? g_host : NULL;
}

#define NEED_HOST()                                                             \
  struct gth *g = host();                                                       \
  if (!g) {                                                                     \
    if (g_open_rc == 1) SKIP(g_open_err);                                       \
    printf("# host setup failed (%d): %s\n", g_open_rc, g_open_err);           \
    CHECK(g != NULL);                                                           \
  }

/* A request under construction. */
struct blob {
  uint8_t buf[65536];
  uint32_t len;
};

static void blob_begin(struct blob *b) {
  realm_req_begin(b->buf, sizeof b->buf, &b->len);
}

static void blob_str(struct blob *b, uint32_t key, const char *s) {
  realm_req_add(b->buf, sizeof b->buf, &b->len, key, s, (uint32_t)strlen(s));
}

static void blob_u32(struct blob *b, uint32_t key, uint32_t v) {
  uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  realm_req_add(b->buf, sizeof b->buf, &b->len, key, le, 4);
}

static void blob_f32(struct blob *b, uint32_t key, float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  blob_u32(b, key, u);
}

static void blob_u64(struct blob *b, uint32_t key, uint64_t v) {
  uint8_t le[8];
  for (int i = 0; i < 8; i++) le[i] = (uint8_t)(v >> (8 * i));
  realm_req_add(b->buf, sizeof b->buf, &b->len, key, le, 8);
}

static void blob_message(struct blob *b, const char *role, const char *content) {
  char tmp[1024];
  size_t rl = strlen(role), cl = strlen(content);
  memcpy(tmp, role, rl + 1);
  memcpy(tmp + rl + 1, content, cl);
  realm_req_add(b->buf, sizeof b->buf, &b->len, REALM_REQ_MESSAGE, tmp, (uint32_t)(rl + 1 + cl));
}

static const int32_t oracle_ids[64] = {
    403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338,
    401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385,
    328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338, 391, 266, 267,
    337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13,  438, 310};

static struct gth_result g_res; /* large; one at a time */
static struct blob g_blob;

static int run(struct gth *g, struct blob *b, struct gth_result *r) {
  char err[512] = "";
  int rc = gth_run(g, b->buf, b->len, r, err, sizeof err);
  if (rc < 0) printf("# gth_run: %d %s\n", rc, err);
  if (r->begin_status != 0) printf("# begin status %d; guest log:\n# %s\n", r->begin_status, r->log);
  return rc;
}

/* (a) greedy from an empty prompt: BOS fed, the 64 oracle ids and their text. */
TEST(greedy_empty_prompt_matches_oracle) {
  NEED_HOST();
  struct blob b;
  blob_begin(&b);
  blob_f32(&b, REALM_REQ_TEMPERATURE, 0.0f);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 64);
  struct gth_result *r = &g_res;
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->begin_status, 0);
  CHECK_EQ_INT(r->n_fed, 1);
  CHECK_EQ_INT(r->fed[0], 1);
  CHECK_EQ_INT(r->n_tokens, 64);
  for (int i = 0; i < 64; i++) CHECK_EQ_INT(r->tokens[i], oracle_ids[i]);
  CHECK(strncmp(r->text, " Once upon a time, there was a little girl named Lily.", 54) == 0);
  CHECK_STR_EQ(r->finish, "length");
  CHECK_EQ_INT(r->last_action, REALM_GUEST_STOP);
  /* greedy logprobs are real log-softmax values of the chosen token: <= 0 and not all zero */
  int nonzero = 0;
  for (int i = 0; i < 64; i++) {
    CHECK(r->logprobs[i] <= 0.0f);
    nonzero += r->logprobs[i] < -1e-6f;
  }
  CHECK(nonzero > 0);
  CHECK(!r->bad_utf8_chunk);
}

/* (b) the prompt goes to the host as the native tokenizer's ids (BOS first). */
TEST(prompt_tokenized_like_native) {
  NEED_HOST();
  const char *prompts[] = {"Once upon a time", "Lily saw a big, red ball!\n  She ran.", "héllo wörld 😀"};
  for (size_t k = 0; k < sizeof prompts / sizeof prompts[0]; k++) {
    struct blob b;
    blob_begin(&b);
    blob_str(&b, REALM_REQ_PROMPT, prompts[k]);
    blob_f32(&b, REALM_REQ_TEMPERATURE, 0.0f);
    blob_u32(&b, REALM_REQ_MAX_TOKENS, 2);
    struct gth_result *r = &g_res;
    CHECK_EQ_INT(run(g, &b, r), 0);
    CHECK_EQ_INT(r->begin_status, 0);
    int32_t ids[256];
    size_t n = 0;
    CHECK_EQ_INT(tok_encode(gth_native_tok(g), prompts[k], strlen(prompts[k]), 1, ids, 256, &n), 0);
    CHECK_EQ_INT(r->n_fed, n);
    for (size_t i = 0; i < n; i++) CHECK_EQ_INT(r->fed[i], ids[i]);
    CHECK_EQ_INT(r->n_tokens, 2);
  }
}

/* (c) stop string "Lily": the text before it, reason stop. */
TEST(stop_string_ends_with_text_before_it) {
  NEED_HOST();
  struct blob b;
  blob_begin(&b);
  blob_f32(&b, REALM_REQ_TEMPERATURE, 0.0f);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 64);
  blob_str(&b, REALM_REQ_STOP, "Lily");
  struct gth_result *r = &g_res;
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_STR_EQ(r->text, " Once upon a time, there was a little girl named ");
  CHECK_STR_EQ(r->finish, "stop");
  CHECK_EQ_INT(r->last_action, REALM_GUEST_STOP);
  CHECK(r->n_tokens < 20);
}

/* (d) max_tokens: exactly that many tokens, reason length. */
TEST(max_tokens_gives_length) {
  NEED_HOST();
  struct blob b;
  blob_begin(&b);
  blob_str(&b, REALM_REQ_PROMPT, "Once upon a time");
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 5);
  blob_u64(&b, REALM_REQ_SEED, 1);
  struct gth_result *r = &g_res;
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->n_tokens, 5);
  CHECK_STR_EQ(r->finish, "length");
  CHECK(r->text_len > 0);
}

/* EOS as a forced token ends with reason stop and is not emitted as a token. */
TEST(eos_stops_without_emitting_it) {
  NEED_HOST();
  const int32_t force[] = {403, 407, 2};
  gth_force(g, force, 3);
  struct blob b;
  blob_begin(&b);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 10);
  struct gth_result *r = &g_res;
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->n_tokens, 2);
  CHECK_STR_EQ(r->text, " Once upon");
  CHECK_STR_EQ(r->finish, "stop");
}

static void sample_text(struct gth *g, uint64_t seed, char *out, size_t cap) {
  struct blob b;
  blob_begin(&b);
  blob_str(&b, REALM_REQ_PROMPT, "Once upon a time");
  blob_f32(&b, REALM_REQ_TEMPERATURE, 0.8f);
  blob_u64(&b, REALM_REQ_SEED, seed);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 40);
  struct gth_result *r = &g_res;
  out[0] = '\0';
  if (run(g, &b, r) == 0) {
    size_t n = r->text_len < cap - 1 ? r->text_len : cap - 1;
    memcpy(out, r->text, n);
    out[n] = '\0';
  }
}

/* (e) same seed -> same text, another seed -> another text. */
TEST(seeded_sampling_is_reproducible) {
  NEED_HOST();
  char a[GTH_MAX_TEXT], b2[GTH_MAX_TEXT], c[GTH_MAX_TEXT];
  sample_text(g, 1234, a, sizeof a);
  sample_text(g, 1234, b2, sizeof b2);
  sample_text(g, 99, c, sizeof c);
  printf("# seed 1234: %s\n# seed 99: %s\n", a, c);
  CHECK(strlen(a) > 10);
  CHECK_STR_EQ(a, b2);
  CHECK(strcmp(a, c) != 0);
}

/* (f) a chat rendered with chatml (named by the guest-private key) and generated from. */
TEST(chat_template_by_name) {
  NEED_HOST();
  struct blob b;
  blob_begin(&b);
  blob_message(&b, "system", "You tell stories.");
  blob_message(&b, "user", "Tell me about Lily.");
  realm_req_add(b.buf, sizeof b.buf, &b.len, GUEST_REQ_CHAT_TEMPLATE, "chatml", 6);
  blob_f32(&b, REALM_REQ_TEMPERATURE, 0.0f);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 8);
  struct gth_result *r = &g_res;
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->begin_status, 0);
  const char *want = "<|im_start|>system\nYou tell stories.<|im_end|>\n"
                     "<|im_start|>user\nTell me about Lily.<|im_end|>\n<|im_start|>assistant\n";
  int32_t ids[512];
  size_t n = 0;
  CHECK_EQ_INT(tok_encode(gth_native_tok(g), want, strlen(want), 1, ids, 512, &n), 0);
  CHECK_EQ_INT(r->n_fed, n);
  for (size_t i = 0; i < n; i++) CHECK_EQ_INT(r->fed[i], ids[i]);
  CHECK_EQ_INT(r->n_tokens, 8);
  CHECK_STR_EQ(r->finish, "length");

  /* an unknown template name is refused with a message naming it */
  blob_begin(&b);
  blob_message(&b, "user", "hi");
  realm_req_add(b.buf, sizeof b.buf, &b.len, GUEST_REQ_CHAT_TEMPLATE, "nosuch", 6);
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->begin_status, REALM_GUEST_E_UNSUPPORTED);
  CHECK_STR_CONTAINS(r->log, "nosuch");
}

/* A chat without a template name on a vocabulary without chat markers renders raw. */
TEST(chat_without_template_is_raw) {
  NEED_HOST();
  struct blob b;
  blob_begin(&b);
  blob_message(&b, "user", "Once upon a time");
  blob_f32(&b, REALM_REQ_TEMPERATURE, 0.0f);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 3);
  struct gth_result *r = &g_res;
  CHECK_EQ_INT(run(g, &b, r), 0);
  int32_t ids[64];
  size_t n = 0;
  CHECK_EQ_INT(tok_encode(gth_native_tok(g), "Once upon a time", 16, 1, ids, 64, &n), 0);
  CHECK_EQ_INT(r->n_fed, n);
  for (size_t i = 0; i < n; i++) CHECK_EQ_INT(r->fed[i], ids[i]);
}

/* (g) a 4-byte character produced as four byte tokens is emitted whole, once. */
TEST(utf8_never_split) {
  NEED_HOST();
  /* stories260K: <0x00> is id 3, so <0xNN> is 3 + NN. U+1F600 = F0 9F 98 80; "é" = C3 A9. */
  const int32_t force[] = {3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80, 3 + 0xC3, 3 + 0xA9, 3 + 0xFF};
  gth_force(g, force, 7);
  struct blob b;
  blob_begin(&b);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 7);
  struct gth_result *r = &g_res;
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->n_tokens, 7);
  for (int i = 0; i < 7; i++) CHECK_EQ_INT(r->tokens[i], force[i]);
  CHECK(!r->bad_utf8_chunk);
  CHECK_EQ_INT(r->n_empty_token_text, 4); /* F0 9F 98 and C3 are held back */
  /* the invalid lone 0xFF becomes U+FFFD */
  CHECK_STR_EQ(r->text, "\xF0\x9F\x98\x80\xC3\xA9\xEF\xBF\xBD");
  CHECK_NEAR(r->logprobs[0], 0.0, 1e-4); /* one-hot logits: probability 1 */
}

/* Bad parameters are refused at begin with a message, and the instance keeps working. */
TEST(bad_parameters_refused_instance_survives) {
  NEED_HOST();
  struct blob b;
  blob_begin(&b);
  blob_f32(&b, REALM_REQ_TEMPERATURE, 5.0f);
  struct gth_result *r = &g_res;
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->begin_status, REALM_GUEST_E_INVALID);
  CHECK_STR_CONTAINS(r->log, "temperature");

  blob_begin(&b);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 0);
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->begin_status, REALM_GUEST_E_INVALID);
  CHECK_STR_CONTAINS(r->log, "max_tokens");

  uint8_t junk[16] = "RLRQ-not-a-blob";
  char err[256];
  CHECK_EQ_INT(gth_run(g, junk, sizeof junk, r, err, sizeof err), 0);
  CHECK_EQ_INT(r->begin_status, REALM_GUEST_E_INVALID);

  blob_begin(&b);
  blob_f32(&b, REALM_REQ_TEMPERATURE, 0.0f);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 3);
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->n_tokens, 3);
  CHECK_EQ_INT(r->tokens[0], oracle_ids[0]);
}

/* The vocabulary is read through the imports once per instance, not per request. */
TEST(vocabulary_built_once) {
  NEED_HOST();
  struct blob b;
  blob_begin(&b);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 1);
  struct gth_result *r = &g_res;
  CHECK_EQ_INT(run(g, &b, r), 0); /* builds the vocabulary if no earlier test did */
  uint64_t before = gth_token_piece_calls(g);
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(gth_token_piece_calls(g), before);
  CHECK(before >= gth_n_vocab(g));
  CHECK(before <= 2 * (uint64_t)gth_n_vocab(g)); /* at most one retry per token */
}

static char *read_file(const char *path, size_t *ret_len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(fp);
  if (buf) buf[n] = '\0';
  *ret_len = (size_t)n;
  return buf;
}

/* Per-call deadline for the vocabulary tests: generous, because they check tokenization, and
 * the first call builds a 32k-100k token vocabulary on a possibly loaded 2-core machine. */
#define VOCAB_TEST_CALL_MS 5000

/* Runs llama.cpp's test vectors for vocab/NAME through the guest under the production call
 * deadline, the host serving what opts says; returns the number of cases whose fed ids match
 * (BOS first when bos) and the number of realm_merge calls the host answered. */
static int vocab_vectors_opts(const char *name, int bos, const struct gth_opts *opts,
                              uint32_t call_ms, int *ret_cases, double *ret_first_ms,
                              double *ret_max_ms, uint64_t *ret_merge_calls) {
  char rel[256], path[1024], err[512];
  snprintf(rel, sizeof rel, "vocab/%s.gguf", name);
  struct gth *g = NULL;
  int rc = gth_open_vocab_opts(rel, call_ms, opts, &g, err, sizeof err);
  if (rc != 0) {
    printf("# %s: %s\n", name, err);
    return rc == 1 ? -77 : -1;
  }
  size_t n_inp, n_out;
  snprintf(path, sizeof path, "%s/vocab/%s.gguf.inp", realm_test_models_dir(), name);
  char *inp = read_file(path, &n_inp);
  snprintf(path, sizeof path, "%s/vocab/%s.gguf.out", realm_test_models_dir(), name);
  char *out = read_file(path, &n_out);
  int ok = 0, cases = 0;
  *ret_max_ms = 0;
  const char *sep = "\n__ggml_vocab_test__\n";
  char *ip = inp, *op = out;
  while (inp && out && ip && *ip && op && *op) {
    char *iend = strstr(ip, sep), *oend = strchr(op, '\n');
    if (!iend || !oend) break;
    *iend = '\0';
    *oend = '\0';
    int32_t want[1024];
    size_t n_want = 0;
    for (char *q = op; *q && n_want < 1024;) {
      char *e;
      long v = strtol(q, &e, 10);
      if (e == q) break;
      want[n_want++] = (int32_t)v;
      q = e;
    }
    blob_begin(&g_blob);
    blob_str(&g_blob, REALM_REQ_PROMPT, ip);
    blob_u32(&g_blob, REALM_REQ_MAX_TOKENS, 1);
    struct gth_result *r = &g_res;
    char rerr[512];
    if (gth_run(g, g_blob.buf, g_blob.len, r, rerr, sizeof rerr) == 0 && r->begin_status == 0) {
      if (cases == 0) *ret_first_ms = r->begin_ms;
      else if (r->begin_ms > *ret_max_ms) *ret_max_ms = r->begin_ms;
      /* BOS first for SPM; for BPE only when the prompt is empty (nothing else to feed) */
      size_t off = bos || n_want == 0 ? 1 : 0;
      int same = r->n_fed == n_want + off;
      for (size_t i = 0; same && i < n_want; i++) same = r->fed[i + off] == want[i];
      if (same) ok++;
      else if (cases < 60) printf("# %s case %d differs (%u fed, %zu expected)\n", name, cases, r->n_fed, n_want);
    } else {
      printf("# %s case %d: begin failed %d: %s %s\n", name, cases, r->begin_status, rerr, r->log);
    }
    cases++;
    ip = iend + strlen(sep);
    op = oend + 1;
  }
  free(inp);
  free(out);
  if (ret_merge_calls) *ret_merge_calls = gth_merge_calls(g);
  gth_close(g);
  *ret_cases = cases;
  return ok;
}

static int vocab_vectors(const char *name, int bos, int *ret_cases, double *ret_first_ms,
                         double *ret_max_ms) {
  return vocab_vectors_opts(name, bos, NULL, VOCAB_TEST_CALL_MS, ret_cases, ret_first_ms,
                            ret_max_ms, NULL);
}

/* SPM from the imports alone: the 32k llama vocabulary matches all of llama.cpp's vectors. The
 * time the first request takes (it builds the tokenizer) is printed, not asserted: whether it
 * fits the production 200 ms deadline is a benchmark question on a loaded test machine. */
TEST(llama_spm_vocab_vectors) {
  int cases = 0;
  double first_ms = 0, max_ms = 0;
  int ok = vocab_vectors("ggml-vocab-llama-spm", 1, &cases, &first_ms, &max_ms);
  if (ok == -77) SKIP("vocab/ggml-vocab-llama-spm.gguf not present");
  printf("# llama-spm: %d/%d cases match; first begin (vocab build) %.1f ms, others max %.2f ms\n",
         ok, cases, first_ms, max_ms);
  CHECK_EQ_INT(cases, 46);
  CHECK_EQ_INT(ok, cases);
}

/* BPE with merges reconstructed from the vocabulary: a host without the merge callbacks. */
TEST(gpt2_bpe_vocab_vectors_reconstructed_merges) {
  int cases = 0;
  double first_ms = 0, max_ms = 0;
  uint64_t merge_calls = 1;
  struct gth_opts opts = {.no_merges = 1};
  int ok = vocab_vectors_opts("ggml-vocab-gpt-2", 0, &opts, VOCAB_TEST_CALL_MS, &cases, &first_ms, &max_ms,
                              &merge_calls);
  CHECK_EQ_INT(merge_calls, 0);
  if (ok == -77) SKIP("vocab/ggml-vocab-gpt-2.gguf not present");
  printf("# gpt-2: %d/%d cases match; first begin (vocab build) %.1f ms, others max %.2f ms\n",
         ok, cases, first_ms, max_ms);
  CHECK_EQ_INT(cases, 46);
  CHECK_EQ_INT(ok, cases);
}

/* Three requests open in one instance at once, their calls interleaved, give exactly what each
 * gives alone: the per-request state is keyed by request id and nothing leaks between them. */
TEST(interleaved_requests_are_independent) {
  NEED_HOST();
  static struct blob b[3];
  static struct gth_result res[3];
  blob_begin(&b[0]); /* the greedy oracle */
  blob_f32(&b[0], REALM_REQ_TEMPERATURE, 0.0f);
  blob_u32(&b[0], REALM_REQ_MAX_TOKENS, 64);
  blob_begin(&b[1]); /* stop string */
  blob_f32(&b[1], REALM_REQ_TEMPERATURE, 0.0f);
  blob_u32(&b[1], REALM_REQ_MAX_TOKENS, 64);
  blob_str(&b[1], REALM_REQ_STOP, "Lily");
  blob_begin(&b[2]); /* seeded sampling, compared with a run of its own below */
  blob_str(&b[2], REALM_REQ_PROMPT, "Once upon a time");
  blob_f32(&b[2], REALM_REQ_TEMPERATURE, 0.8f);
  blob_u64(&b[2], REALM_REQ_SEED, 1234);
  blob_u32(&b[2], REALM_REQ_MAX_TOKENS, 40);
  const uint8_t *blobs[3] = {b[0].buf, b[1].buf, b[2].buf};
  uint32_t lens[3] = {b[0].len, b[1].len, b[2].len};
  struct gth_result *rp[3] = {&res[0], &res[1], &res[2]};
  char err[512] = "";
  int rc = gth_run_many(g, blobs, lens, rp, 3, err, sizeof err);
  if (rc < 0) printf("# %s\n", err);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(res[0].n_tokens, 64);
  for (int i = 0; i < 64; i++) CHECK_EQ_INT(res[0].tokens[i], oracle_ids[i]);
  CHECK_STR_EQ(res[0].finish, "length");
  CHECK_STR_EQ(res[1].text, " Once upon a time, there was a little girl named ");
  CHECK_STR_EQ(res[1].finish, "stop");
  char alone[GTH_MAX_TEXT];
  sample_text(g, 1234, alone, sizeof alone);
  CHECK_STR_EQ(res[2].text, alone);
  CHECK_STR_EQ(res[2].finish, "length");
}

/* ---- the ABI v1 additions: finish reason, merges/metadata, top logprobs, logit_bias ---- */

/* BPE with the model's own merges and pre-tokenizer name served by the host. */
TEST(gpt2_bpe_vocab_vectors_real_merges) {
  int cases = 0;
  double first_ms = 0, max_ms = 0;
  uint64_t merge_calls = 0;
  int ok = vocab_vectors_opts("ggml-vocab-gpt-2", 0, NULL, VOCAB_TEST_CALL_MS, &cases, &first_ms, &max_ms,
                              &merge_calls);
  if (ok == -77) SKIP("vocab/ggml-vocab-gpt-2.gguf not present");
  printf("# gpt-2 (real merges): %d/%d cases match; first begin %.1f ms, others max %.2f ms; "
         "%llu merge calls\n", ok, cases, first_ms, max_ms, (unsigned long long)merge_calls);
  CHECK(merge_calls >= 50000); /* every one of the file's 50000 merges was read */
  CHECK_EQ_INT(cases, 46);
  CHECK_EQ_INT(ok, cases);
}

/* deepseek-llm: its own pre-tokenizer ("deepseek-llm", not gpt-2), its merges, and its
 * add_bos_token = true (so every prompt starts with BOS, as llama.cpp does for it). Its
 * 102400 tokens and 99757 merges take 40-100 ms to read on the first request here (printed);
 * the deadline is VOCAB_TEST_CALL_MS so a loaded test machine does not fail it. */
TEST(deepseek_llm_vocab_vectors_real_pre_tokenizer) {
  int cases = 0;
  double first_ms = 0, max_ms = 0;
  uint64_t merge_calls = 0;
  int ok = vocab_vectors_opts("ggml-vocab-deepseek-llm", 1, NULL, VOCAB_TEST_CALL_MS, &cases, &first_ms,
                              &max_ms, &merge_calls);
  if (ok == -77) SKIP("vocab/ggml-vocab-deepseek-llm.gguf not present");
  printf("# deepseek-llm: %d/%d cases match; first begin %.1f ms, others max %.2f ms; %llu merge "
         "calls\n", ok, cases, first_ms, max_ms, (unsigned long long)merge_calls);
  CHECK(merge_calls >= 99757);
  CHECK_EQ_INT(cases, 46);
  CHECK_EQ_INT(ok, cases);
  /* Without the metadata (a host without model_meta) the guest assumes the gpt-2
   * pre-tokenizer and adds no BOS: even compared without BOS, some vectors no longer match,
   * which shows the served pre-tokenizer name was what made them match. */
  struct gth_opts no_meta = {.no_meta = 1};
  int ok2 = vocab_vectors_opts("ggml-vocab-deepseek-llm", 0, &no_meta, VOCAB_TEST_CALL_MS, &cases,
                               &first_ms, &max_ms, NULL);
  printf("# deepseek-llm without metadata (gpt-2 pre-tokenizer, no BOS): %d/%d cases match\n",
         ok2, cases);
  CHECK(ok2 > 0);
  CHECK(ok2 < cases);
}

/* The finish reason goes through realm_finish: "stop" for a stop string and EOS, "length" for
 * max_tokens, read with sandbox_instance_finish_reason and seen by the host callback. */
TEST(finish_reason_stop_and_length_through_sandbox_api) {
  NEED_HOST();
  struct blob b;
  blob_begin(&b);
  blob_f32(&b, REALM_REQ_TEMPERATURE, 0.0f);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 64);
  blob_str(&b, REALM_REQ_STOP, "Lily");
  struct gth_result *r = &g_res;
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->last_action, REALM_GUEST_STOP);
  CHECK_EQ_INT(r->finish_reason, REALM_GUEST_FINISH_STOP);
  CHECK_EQ_INT(r->finish_cb, REALM_GUEST_FINISH_STOP);

  blob_begin(&b);
  blob_f32(&b, REALM_REQ_TEMPERATURE, 0.0f);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 3);
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->n_tokens, 3);
  CHECK_EQ_INT(r->finish_reason, REALM_GUEST_FINISH_LENGTH);
  CHECK_EQ_INT(r->finish_cb, REALM_GUEST_FINISH_LENGTH);

  const int32_t force[] = {403, 2}; /* then EOS */
  gth_force(g, force, 2);
  blob_begin(&b);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 10);
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->n_tokens, 1);
  CHECK_EQ_INT(r->finish_reason, REALM_GUEST_FINISH_STOP);
}

/* logprobs = N: N alternatives per emitted token, most likely first, and under greedy the
 * first is the chosen token with the same logprob. Without logprobs none are sent. */
TEST(top_logprobs_sent_with_each_token) {
  NEED_HOST();
  struct blob b;
  blob_begin(&b);
  blob_f32(&b, REALM_REQ_TEMPERATURE, 0.0f);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 8);
  blob_u32(&b, REALM_REQ_LOGPROBS, 5);
  struct gth_result *r = &g_res;
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->n_tokens, 8);
  CHECK_EQ_INT(r->top_calls, 8);
  CHECK(!r->top_before_token);
  for (uint32_t t = 0; t < 8; t++) {
    CHECK_EQ_INT(r->tokens[t], oracle_ids[t]);
    CHECK_EQ_INT(r->n_top[t], 5);
    CHECK_EQ_INT(r->top[t][0].token, r->tokens[t]);
    CHECK_NEAR(r->top[t][0].logprob, r->logprobs[t], 1e-6);
    for (uint32_t k = 1; k < 5; k++) {
      CHECK(r->top[t][k].logprob <= r->top[t][k - 1].logprob);
      CHECK(r->top[t][k].token != r->top[t][0].token);
    }
    CHECK(r->top[t][4].logprob <= 0.0f);
  }
  blob_begin(&b);
  blob_f32(&b, REALM_REQ_TEMPERATURE, 0.0f);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 2);
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->top_calls, 0);
}

/* REALM_REQ_SKIP_LOGPROBS (the host drops emit_token's logprob): the guest passes 0 instead
 * of computing it, and nothing else changes — the same tokens and text as without the key,
 * greedy (the oracle) and seeded sampling alike (with and without a top-k cut, the two paths
 * where the logprob has its own partition sum). The key is ignored when REALM_REQ_LOGPROBS is
 * present, and 0 means the old behaviour. */
static struct gth_result g_res_skip;

static void blob_sampling(struct blob *b, float temperature, uint32_t top_k, uint32_t max_tokens) {
  blob_begin(b);
  blob_str(b, REALM_REQ_PROMPT, "Once upon a time");
  blob_f32(b, REALM_REQ_TEMPERATURE, temperature);
  if (top_k) blob_u32(b, REALM_REQ_TOP_K, top_k);
  blob_u64(b, REALM_REQ_SEED, 1234);
  blob_u32(b, REALM_REQ_MAX_TOKENS, max_tokens);
}

static int count_nonzero_logprobs(const struct gth_result *r) {
  int n = 0;
  for (uint32_t i = 0; i < r->n_tokens; i++) n += r->logprobs[i] != 0.0f;
  return n;
}

TEST(skip_logprobs_same_tokens_logprob_zero) {
  NEED_HOST();
  struct blob b;
  struct gth_result *with = &g_res, *skip = &g_res_skip;
  /* greedy from an empty prompt: the oracle either way */
  blob_begin(&b);
  blob_f32(&b, REALM_REQ_TEMPERATURE, 0.0f);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 64);
  blob_u32(&b, REALM_REQ_SKIP_LOGPROBS, 1);
  CHECK_EQ_INT(run(g, &b, skip), 0);
  CHECK_EQ_INT(skip->n_tokens, 64);
  for (int i = 0; i < 64; i++) CHECK_EQ_INT(skip->tokens[i], oracle_ids[i]);
  CHECK_EQ_INT(count_nonzero_logprobs(skip), 0);
  CHECK_EQ_INT(skip->top_calls, 0);
  CHECK_STR_EQ(skip->finish, "length");
  blob_begin(&b);
  blob_f32(&b, REALM_REQ_TEMPERATURE, 0.0f);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 64);
  CHECK_EQ_INT(run(g, &b, with), 0);
  CHECK(count_nonzero_logprobs(with) > 0);
  CHECK_STR_EQ(with->text, skip->text);

  /* seeded sampling, whole vocabulary and top-k: identical draws */
  const uint32_t top_ks[] = {0, 40};
  for (size_t k = 0; k < 2; k++) {
    blob_sampling(&b, 0.9f, top_ks[k], 32);
    CHECK_EQ_INT(run(g, &b, with), 0);
    blob_sampling(&b, 0.9f, top_ks[k], 32);
    blob_u32(&b, REALM_REQ_SKIP_LOGPROBS, 1);
    CHECK_EQ_INT(run(g, &b, skip), 0);
    CHECK(with->n_tokens > 0);
    CHECK_EQ_INT(skip->n_tokens, with->n_tokens);
    for (uint32_t i = 0; i < with->n_tokens && i < skip->n_tokens; i++)
      CHECK_EQ_INT(skip->tokens[i], with->tokens[i]);
    CHECK_STR_EQ(skip->text, with->text);
    CHECK_STR_EQ(skip->finish, with->finish);
    CHECK(count_nonzero_logprobs(with) > 0);
    CHECK_EQ_INT(count_nonzero_logprobs(skip), 0);
  }

  /* LOGPROBS present wins over SKIP; SKIP = 0 is the old behaviour */
  blob_sampling(&b, 0.0f, 0, 8);
  blob_u32(&b, REALM_REQ_SKIP_LOGPROBS, 1);
  blob_u32(&b, REALM_REQ_LOGPROBS, 2);
  CHECK_EQ_INT(run(g, &b, skip), 0);
  CHECK(count_nonzero_logprobs(skip) > 0);
  CHECK_EQ_INT(skip->top_calls, 8);
  blob_sampling(&b, 0.0f, 0, 8);
  blob_u32(&b, REALM_REQ_SKIP_LOGPROBS, 0);
  CHECK_EQ_INT(run(g, &b, skip), 0);
  CHECK(count_nonzero_logprobs(skip) > 0);

  /* a SKIP_LOGPROBS field of the wrong size is refused like any bad numeric field */
  blob_sampling(&b, 0.0f, 0, 8);
  realm_req_add(b.buf, sizeof b.buf, &b.len, REALM_REQ_SKIP_LOGPROBS, "\1", 1);
  CHECK_EQ_INT(run(g, &b, skip), 0);
  CHECK(skip->begin_status < 0);
  CHECK(strstr(skip->log, "skip_logprobs") != NULL);
}

static void blob_logit_bias(struct blob *b, const int32_t *tokens, const float *bias, size_t n) {
  uint8_t v[8 * 8];
  for (size_t i = 0; i < n && i < 8; i++) {
    uint32_t t = (uint32_t)tokens[i], f;
    memcpy(&f, &bias[i], 4);
    for (int k = 0; k < 4; k++) {
      v[8 * i + k] = (uint8_t)(t >> (8 * k));
      v[8 * i + 4 + k] = (uint8_t)(f >> (8 * k));
    }
  }
  realm_req_add(b->buf, sizeof b->buf, &b->len, REALM_REQ_LOGIT_BIAS, v, (uint32_t)(8 * n));
}

/* logit_bias -100 bans the oracle's first token; +100 on another token makes it first. */
TEST(logit_bias_changes_first_token) {
  NEED_HOST();
  struct blob b;
  blob_begin(&b);
  blob_f32(&b, REALM_REQ_TEMPERATURE, 0.0f);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 3);
  blob_logit_bias(&b, (const int32_t[]){oracle_ids[0]}, (const float[]){-100.0f}, 1);
  struct gth_result *r = &g_res;
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->begin_status, 0);
  CHECK_EQ_INT(r->n_tokens, 3);
  CHECK(r->tokens[0] != oracle_ids[0]);
  for (uint32_t i = 0; i < r->n_tokens; i++) CHECK(r->tokens[i] != oracle_ids[0]);

  blob_begin(&b);
  blob_f32(&b, REALM_REQ_TEMPERATURE, 0.0f);
  blob_u32(&b, REALM_REQ_MAX_TOKENS, 1);
  blob_logit_bias(&b, (const int32_t[]){300}, (const float[]){100.0f}, 1);
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->n_tokens, 1);
  CHECK_EQ_INT(r->tokens[0], 300);

  /* a token outside the vocabulary and a malformed field are refused with a message */
  blob_begin(&b);
  blob_logit_bias(&b, (const int32_t[]){100000}, (const float[]){1.0f}, 1);
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->begin_status, REALM_GUEST_E_INVALID);
  CHECK_STR_CONTAINS(r->log, "logit_bias");
  blob_begin(&b);
  realm_req_add(b.buf, sizeof b.buf, &b.len, REALM_REQ_LOGIT_BIAS, "12345", 5);
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->begin_status, REALM_GUEST_E_INVALID);
  CHECK_STR_CONTAINS(r->log, "multiple of 8");
}

/* The model's tokenizer.chat_template (served by the host) picks the family when the request
 * names none; the request's REALM_REQ_CHAT_TEMPLATE still wins; an unrecognised model
 * template is logged and the chat falls back to the vocabulary's markers (raw here). */
TEST(model_chat_template_used_when_request_names_none) {
  const char *jinja = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                      "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
  struct gth_opts opts = {.chat_template = jinja};
  struct gth *g = NULL;
  char err[512];
  int rc = gth_open_vocab_opts("gguf/stories260K.gguf", 5000, &opts, &g, err, sizeof err);
  if (rc == 1) SKIP(err);
  CHECK_EQ_INT(rc, 0);
  struct blob b;
  blob_begin(&b);
  blob_message(&b, "user", "Tell me about Lily.");
  struct gth_result *r = &g_res;
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->begin_status, 0);
  const char *want = "<|im_start|>user\nTell me about Lily.<|im_end|>\n<|im_start|>assistant\n";
  int32_t ids[256];
  size_t n = 0;
  CHECK_EQ_INT(tok_encode(gth_native_tok(g), want, strlen(want), 1, ids, 256, &n), 0);
  CHECK_EQ_INT(r->n_fed, n);
  for (size_t i = 0; i < n && i < r->n_fed; i++) CHECK_EQ_INT(r->fed[i], ids[i]);

  /* the request's template (the ABI key) wins over the model's */
  blob_begin(&b);
  blob_message(&b, "user", "Once upon a time");
  blob_str(&b, REALM_REQ_CHAT_TEMPLATE, "raw");
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(tok_encode(gth_native_tok(g), "Once upon a time", 16, 1, ids, 256, &n), 0);
  CHECK_EQ_INT(r->n_fed, n);
  for (size_t i = 0; i < n && i < r->n_fed; i++) CHECK_EQ_INT(r->fed[i], ids[i]);
  gth_close(g);

  struct gth_opts odd = {.chat_template = "{{ something nobody knows }}"};
  CHECK_EQ_INT(gth_open_vocab_opts("gguf/stories260K.gguf", 5000, &odd, &g, err, sizeof err), 0);
  blob_begin(&b);
  blob_message(&b, "user", "Once upon a time");
  CHECK_EQ_INT(run(g, &b, r), 0);
  CHECK_EQ_INT(r->begin_status, 0);
  CHECK_STR_CONTAINS(r->log, "model chat template not recognised");
  CHECK_EQ_INT(r->n_fed, n); /* raw: the content alone */
  gth_close(g);
}
