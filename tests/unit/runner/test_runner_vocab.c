/*
 * test_runner_vocab.c — what the runner copies out of a GGUF before its jail for the guest
 * ABI v1 additions (runner_vocab.c): metadata rendered as realm_model_meta serves it
 * (docs/guest-abi.md: strings as stored, booleans true/false, integers in decimal), the BPE
 * merges, and the display text of tokens used for top-logprob alternatives. Real files only:
 * stories260K (SentencePiece) and llama.cpp's GPT-2 / deepseek-llm vocabularies (byte-level BPE
 * with merges).
 */
#include <stdio.h>
#include <string.h>

#include "realm/error.h"
#include "realm_guest.h"
#include "realm_test.h"
#include "runner_vocab.h"

static struct runner_vocab *load(const char *rel) {
  char path[512], err[256] = "";
  snprintf(path, sizeof path, "%s/%s", realm_test_models_dir(), rel);
  struct runner_vocab *v = NULL;
  if (runner_vocab_load(path, &v, err, sizeof err) < 0) printf("# %s: %s\n", path, err);
  return v;
}

/* The value of key as a C string ("" and NOT_FOUND as -1 when absent). */
static int meta(const struct runner_vocab *v, const char *key, char *out, size_t cap) {
  const char *val = NULL;
  uint32_t len = 0;
  int rc = runner_vocab_meta(v, key, &val, &len);
  if (rc < 0) return rc;
  snprintf(out, cap, "%.*s", (int)len, val);
  return (int)len;
}

TEST(spm_metadata_rendering_and_token_text) {
  struct runner_vocab *v = load("gguf/stories260K.gguf");
  CHECK(v != NULL);
  char buf[256];
  CHECK(meta(v, REALM_META_TOKENIZER_MODEL, buf, sizeof buf) > 0);
  CHECK_STR_EQ(buf, "llama");
  /* An integer key, rendered in decimal: the same id the vocabulary reports. */
  CHECK(meta(v, "tokenizer.ggml.bos_token_id", buf, sizeof buf) > 0);
  char want[32];
  snprintf(want, sizeof want, "%d", v->bos);
  CHECK_STR_EQ(buf, want);
  /* Arrays are not metadata values; unknown keys are not found. */
  CHECK_EQ_INT(meta(v, "tokenizer.ggml.tokens", buf, sizeof buf), REALM_GUEST_E_NOT_FOUND);
  CHECK_EQ_INT(meta(v, "no.such.key", buf, sizeof buf), REALM_GUEST_E_NOT_FOUND);
  /* SentencePiece has no merges. */
  CHECK_EQ_INT(v->n_merges, 0);
  const char *m = NULL;
  uint32_t ml = 0;
  CHECK_EQ_INT(runner_vocab_merge(v, 0, &m, &ml), REALM_GUEST_E_NOT_FOUND);
  /* Token texts: U+2581 becomes a space, <0x0A> the byte. */
  char t[64];
  uint32_t n = runner_vocab_token_text(v, 403, t, sizeof t);
  CHECK_EQ_INT(n, 5);
  CHECK(memcmp(t, " Once", 5) == 0);
  int32_t nl = -1;
  for (uint32_t i = 0; i < v->n_tokens && nl < 0; i++)
    if (v->offsets[i + 1] - v->offsets[i] == 6 &&
        memcmp(v->pieces + v->offsets[i], "<0x0A>", 6) == 0)
      nl = (int32_t)i;
  CHECK(nl >= 0);
  CHECK_EQ_INT(runner_vocab_token_text(v, nl, t, sizeof t), 1);
  CHECK_EQ_INT(t[0], '\n');
  CHECK_EQ_INT(runner_vocab_token_text(v, -1, t, sizeof t), 0);
  CHECK_EQ_INT(runner_vocab_token_text(v, (int32_t)v->n_tokens, t, sizeof t), 0);
  /* A cap cuts the text, never overruns. */
  CHECK_EQ_INT(runner_vocab_token_text(v, 403, t, 2), 2);
  runner_vocab_free(v);
}

TEST(bpe_merges_pre_and_byte_level_text) {
  struct runner_vocab *v = load("vocab/ggml-vocab-gpt-2.gguf");
  CHECK(v != NULL);
  CHECK_EQ_INT(v->vocab_kind, REALM_GUEST_VOCAB_BPE);
  char buf[256];
  CHECK(meta(v, REALM_META_TOKENIZER_MODEL, buf, sizeof buf) > 0);
  CHECK_STR_EQ(buf, "gpt2");
  CHECK(meta(v, REALM_META_TOKENIZER_PRE, buf, sizeof buf) > 0);
  CHECK_STR_EQ(buf, "gpt-2");
  /* GPT-2's 50000 merges, rank 0 first: "Ġ t". */
  CHECK_EQ_INT(v->n_merges, 50000);
  const char *m = NULL;
  uint32_t ml = 0;
  CHECK_EQ_INT(runner_vocab_merge(v, 0, &m, &ml), REALM_GUEST_OK);
  CHECK(ml == 4 && memcmp(m, "\xc4\xa0 t", 4) == 0);
  CHECK_EQ_INT(runner_vocab_merge(v, 49999, &m, &ml), REALM_GUEST_OK);
  CHECK(ml >= 3 && memchr(m, ' ', ml) != NULL);
  CHECK_EQ_INT(runner_vocab_merge(v, 50000, &m, &ml), REALM_GUEST_E_NOT_FOUND);
  /* Byte-level pieces decode back to bytes: "Ġthe" (id 262) is " the", "Ċ" (198) is "\n". */
  char t[64];
  CHECK_EQ_INT(runner_vocab_token_text(v, 262, t, sizeof t), 4);
  CHECK(memcmp(t, " the", 4) == 0);
  CHECK_EQ_INT(runner_vocab_token_text(v, 198, t, sizeof t), 1);
  CHECK_EQ_INT(t[0], '\n');
  runner_vocab_free(v);

  v = load("vocab/ggml-vocab-deepseek-llm.gguf");
  CHECK(v != NULL);
  CHECK(meta(v, REALM_META_TOKENIZER_PRE, buf, sizeof buf) > 0);
  CHECK_STR_EQ(buf, "deepseek-llm");
  CHECK(v->n_merges > 90000);
  /* A boolean key is rendered true/false, when the file has one. */
  int rc = meta(v, REALM_META_ADD_BOS, buf, sizeof buf);
  if (rc >= 0) CHECK(strcmp(buf, "true") == 0 || strcmp(buf, "false") == 0);
  runner_vocab_free(v);
}
