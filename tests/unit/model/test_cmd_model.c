/*
 * test_cmd_model.c — smoke tests of the built `realmctl model` (path in env REALMCTL).
 *
 * inspect on the real v3 file exits 0 and shows the hyperparameters; on the v1 file exits 1
 * with the reader's version message. synth writes tiny models of every type that the reader
 * loads with llama.cpp's tensor names and shapes, deterministic for a seed, and copies the
 * 32k vocabulary when given --vocab.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fp16.h"
#include "gguf.h"
#include "realm/error.h"
#include "realm_test.h"

static char out_buf[1 << 20];

/* Runs `$REALMCTL ARGS 2>&1`, captures up to 1 MiB of output; returns the exit status or -1. */
static int run(const char *args) {
  const char *bin = getenv("REALMCTL");
  if (!bin) return -1;
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", bin, args);
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  size_t n = fread(out_buf, 1, sizeof out_buf - 1, p);
  out_buf[n] = '\0';
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char tmpdir[256];

static const char *tmp_file(const char *name) {
  static char path[512];
  if (!tmpdir[0]) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/realm-test-model-XXXXXX");
    if (!mkdtemp(tmpdir)) abort();
  }
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  return path;
}

TEST(inspect_stories260k) {
  if (!getenv("REALMCTL")) SKIP("REALMCTL not set");
  char args[4096];
  snprintf(args, sizeof args, "model inspect '%s/gguf/stories260K.gguf'", realm_test_models_dir());
  CHECK_EQ_INT(run(args), 0);
  CHECK_STR_CONTAINS(out_buf, "version:     3");
  CHECK_STR_CONTAINS(out_buf, "embedding_length                   64");
  CHECK_STR_CONTAINS(out_buf, "attention.head_count_kv            4");
  CHECK_STR_CONTAINS(out_buf, "[array of 512 string]");
  CHECK_STR_CONTAINS(out_buf, "token_embd.weight");
  CHECK_STR_CONTAINS(out_buf, "[64, 512]");
  CHECK_STR_CONTAINS(out_buf, "total tensor bytes:");
}

TEST(inspect_v1_fails_with_version_message) {
  if (!getenv("REALMCTL")) SKIP("REALMCTL not set");
  char args[4096];
  snprintf(args, sizeof args, "model inspect '%s/gguf/tinyllamas-stories-260k-f32.v1.gguf'",
           realm_test_models_dir());
  CHECK_EQ_INT(run(args), 1);
  CHECK_STR_CONTAINS(out_buf, "version 1");
}

TEST(inspect_missing_file_fails) {
  if (!getenv("REALMCTL")) SKIP("REALMCTL not set");
  CHECK_EQ_INT(run("model inspect /nonexistent/x.gguf"), 1);
  CHECK_STR_CONTAINS(out_buf, "x.gguf");
  CHECK_EQ_INT(run("model frobnicate"), 2);
}

TEST(synth_tiny_every_type_loads) {
  if (!getenv("REALMCTL")) SKIP("REALMCTL not set");
  static const char *tnames[] = {"f32", "f16", "bf16", "q8_0", "q4_0"};
  static const enum ggml_type tt[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16,
                                      GGML_TYPE_Q8_0, GGML_TYPE_Q4_0};
  for (int i = 0; i < 5; i++) {
    char args[1024], name[32];
    snprintf(name, sizeof name, "tiny-%s.gguf", tnames[i]);
    const char *path = tmp_file(name);
    snprintf(args, sizeof args, "model synth --shape tiny --type %s -o '%s' --seed 7", tnames[i],
             path);
    int rc = run(args);
    if (rc) printf("# %s\n", out_buf);
    CHECK_EQ_INT(rc, 0);
    CHECK_STR_CONTAINS(out_buf, "fallback");
    struct gguf_file *f = NULL;
    char err[256];
    CHECK_EQ_INT(gguf_open(path, &f, err, sizeof err), 0);
    CHECK_EQ_INT(gguf_tensor_count(f), 3 + 9 * 2);
    uint32_t u;
    CHECK_EQ_INT(gguf_get_u32(f, "llama.embedding_length", &u), 0);
    CHECK_EQ_INT(u, 64);
    CHECK_EQ_INT(gguf_get_u32(f, "llama.attention.head_count_kv", &u), 0);
    CHECK_EQ_INT(u, 2);
    const struct gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    CHECK(t && t->ne[0] == 64 && t->ne[1] == 512 && t->type == tt[i]);
    t = gguf_find_tensor(f, "blk.1.attn_k.weight");
    CHECK(t && t->ne[0] == 64 && t->ne[1] == 32 && t->type == tt[i]); /* 2 kv heads x 16 */
    t = gguf_find_tensor(f, "blk.1.ffn_down.weight");
    CHECK(t && t->ne[0] == 176 && t->ne[1] == 64);
    t = gguf_find_tensor(f, "output.weight");
    CHECK(t && t->type == tt[i]);
    t = gguf_find_tensor(f, "blk.0.ffn_norm.weight");
    CHECK(t && t->type == GGML_TYPE_F32 && t->n_dims == 1);
    float one;
    memcpy(&one, t->data, 4);
    CHECK(one == 1.0f);
    const struct gguf_kv *tok = NULL;
    CHECK_EQ_INT(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VALUE_STRING, &tok), 0);
    CHECK_EQ_INT(tok->v.arr.count, 512);
    struct gguf_str s = gguf_arr_str(tok, 3 + 0x41);
    CHECK(s.len == 6 && memcmp(s.data, "<0x41>", 6) == 0);
    if (tt[i] == GGML_TYPE_F32) {
      /* Noise with std ~0.02, mean ~0, bounded by 0.02 * sqrt(3). */
      t = gguf_find_tensor(f, "blk.0.attn_q.weight");
      const float *x = t->data;
      double sum = 0, sq = 0;
      size_t n = (size_t)(t->ne[0] * t->ne[1]);
      for (size_t j = 0; j < n; j++) {
        CHECK(x[j] >= -0.0347f && x[j] <= 0.0347f);
        sum += x[j];
        sq += (double)x[j] * x[j];
      }
      CHECK_NEAR(sum / (double)n, 0.0, 0.002);
      CHECK_NEAR(sqrt(sq / (double)n), 0.02, 0.002);
    }
    gguf_close(f);
  }
}

static int files_equal(const char *a, const char *b) {
  FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
  int eq = fa && fb;
  while (eq) {
    int ca = fgetc(fa), cb = fgetc(fb);
    if (ca != cb) eq = 0;
    if (ca == EOF || cb == EOF) break;
  }
  if (fa) fclose(fa);
  if (fb) fclose(fb);
  return eq;
}

TEST(synth_is_deterministic_per_seed) {
  if (!getenv("REALMCTL")) SKIP("REALMCTL not set");
  char a[512], b[512], c[512], args[2048];
  snprintf(a, sizeof a, "%s", tmp_file("seed-a.gguf"));
  snprintf(b, sizeof b, "%s", tmp_file("seed-b.gguf"));
  snprintf(c, sizeof c, "%s", tmp_file("seed-c.gguf"));
  snprintf(args, sizeof args, "model synth --shape tiny --type q4_0 --seed 5 -o '%s'", a);
  CHECK_EQ_INT(run(args), 0);
  snprintf(args, sizeof args, "model synth --shape tiny --type q4_0 --seed 5 -o '%s'", b);
  CHECK_EQ_INT(run(args), 0);
  snprintf(args, sizeof args, "model synth --shape tiny --type q4_0 --seed 6 -o '%s'", c);
  CHECK_EQ_INT(run(args), 0);
  CHECK(files_equal(a, b));
  CHECK(!files_equal(a, c));
  CHECK_EQ_INT(run("model synth --shape huge --type f32 -o /tmp/never.gguf"), 2);
  CHECK_STR_CONTAINS(out_buf, "unknown shape");
}

TEST(synth_with_llama_vocab) {
  if (!getenv("REALMCTL")) SKIP("REALMCTL not set");
  char vocab[4096], args[8192];
  snprintf(vocab, sizeof vocab, "%s/vocab/ggml-vocab-llama-spm.gguf", realm_test_models_dir());
  if (access(vocab, R_OK) != 0) SKIP("vocab file not present");
  const char *path = tmp_file("tiny-vocab.gguf");
  snprintf(args, sizeof args, "model synth --shape tiny --type q8_0 --vocab '%s' -o '%s'", vocab,
           path);
  CHECK_EQ_INT(run(args), 0);
  struct gguf_file *f = NULL, *v = NULL;
  char err[256];
  CHECK_EQ_INT(gguf_open(path, &f, err, sizeof err), 0);
  CHECK_EQ_INT(gguf_open(vocab, &v, err, sizeof err), 0);
  const struct gguf_kv *tok = NULL, *vtok = NULL;
  CHECK_EQ_INT(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VALUE_STRING, &tok), 0);
  CHECK_EQ_INT(gguf_get_arr(v, "tokenizer.ggml.tokens", GGUF_VALUE_STRING, &vtok), 0);
  CHECK_EQ_INT(tok->v.arr.count, 32000);
  for (uint64_t i = 0; i < 32000; i += 997) {
    struct gguf_str x = gguf_arr_str(tok, i), y = gguf_arr_str(vtok, i);
    CHECK(x.len == y.len && memcmp(x.data, y.data, x.len) == 0);
  }
  CHECK(gguf_find_kv(f, "tokenizer.ggml.scores") != NULL);
  const struct gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
  CHECK(t && t->ne[1] == 32000);
  uint32_t u;
  CHECK_EQ_INT(gguf_get_u32(f, "llama.vocab_size", &u), 0);
  CHECK_EQ_INT(u, 32000);
  gguf_close(v);
  gguf_close(f);
}

/* Last: removes the scratch directory. */
TEST(zz_cleanup) {
  if (!tmpdir[0]) SKIP("nothing to clean");
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  CHECK_EQ_INT(system(cmd), 0);
}
