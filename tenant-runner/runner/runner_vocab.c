/*
 * runner_vocab.c — loads tokenizer.ggml.* from a GGUF into private tables (runner_vocab.h).
 *
 * The GGUF reader validates the file; we only copy what guests need. The whole file is
 * copied into a memfd by gguf_open, briefly: for a multi-GiB model pass a vocabulary-only
 * GGUF instead (realmctl can write one), the pieces are what matter here.
 */
#include "runner_vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "realm/error.h"
#include "realm/limits.h"
#include "realm_guest.h"

void runner_vocab_free(struct runner_vocab *v) {
  if (!v) return;
  free(v->offsets);
  free(v->pieces);
  free(v->scores);
  free(v->kinds);
  free(v);
}

int runner_vocab_load(const char *path, struct runner_vocab **ret_vocab, char *err,
                      size_t errlen) {
  struct gguf_file *f = NULL;
  int rc = gguf_open(path, &f, err, errlen);
  if (rc < 0) return rc;
  struct runner_vocab *v = calloc(1, sizeof *v);
  const struct gguf_kv *tokens = NULL, *scores = NULL, *types = NULL;
  if (!v) {
    rc = REALM_E_NOMEM;
    goto fail;
  }
  rc = gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VALUE_STRING, &tokens);
  if (rc < 0) {
    snprintf(err, errlen, "vocabulary %s: no tokenizer.ggml.tokens string array", path);
    goto fail;
  }
  if (tokens->v.arr.count == 0 || tokens->v.arr.count > REALM_MAX_VOCAB) {
    snprintf(err, errlen, "vocabulary %s: tokenizer.ggml.tokens has %llu entries (1..%u)", path,
             (unsigned long long)tokens->v.arr.count, REALM_MAX_VOCAB);
    rc = REALM_E_BAD_MODEL;
    goto fail;
  }
  v->n_tokens = (uint32_t)tokens->v.arr.count;
  /* Scores and types are optional; a wrong type is ignored rather than fatal. */
  if (gguf_get_arr(f, "tokenizer.ggml.scores", GGUF_VALUE_FLOAT32, &scores) < 0) scores = NULL;
  if (gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_VALUE_INT32, &types) < 0) types = NULL;
  uint64_t total = 0;
  for (uint32_t i = 0; i < v->n_tokens; i++) total += gguf_arr_str(tokens, i).len;
  if (total > (1u << 30)) {
    snprintf(err, errlen, "vocabulary %s: pieces total %llu bytes", path,
             (unsigned long long)total);
    rc = REALM_E_BAD_MODEL;
    goto fail;
  }
  v->offsets = malloc((v->n_tokens + 1) * sizeof *v->offsets);
  v->pieces = malloc(total ? total : 1);
  v->scores = calloc(v->n_tokens, sizeof *v->scores);
  v->kinds = malloc(v->n_tokens * sizeof *v->kinds);
  if (!v->offsets || !v->pieces || !v->scores || !v->kinds) {
    rc = REALM_E_NOMEM;
    snprintf(err, errlen, "vocabulary %s: out of memory", path);
    goto fail;
  }
  uint32_t off = 0;
  for (uint32_t i = 0; i < v->n_tokens; i++) {
    struct gguf_str s = gguf_arr_str(tokens, i);
    v->offsets[i] = off;
    if (s.len) memcpy(v->pieces + off, s.data, s.len);
    off += (uint32_t)s.len;
    float sc = 0;
    if (scores && i < scores->v.arr.count && gguf_arr_f32(scores, i, &sc) == 0) v->scores[i] = sc;
    int64_t k = REALM_GUEST_TOKEN_NORMAL;
    if (types && i < types->v.arr.count && gguf_arr_i64(types, i, &k) == 0 &&
        k >= REALM_GUEST_TOKEN_NORMAL && k <= REALM_GUEST_TOKEN_BYTE)
      v->kinds[i] = (int32_t)k;
    else
      v->kinds[i] = REALM_GUEST_TOKEN_NORMAL;
  }
  v->offsets[v->n_tokens] = off;
  struct gguf_str model = {0, NULL};
  v->vocab_kind = REALM_GUEST_VOCAB_SPM;
  if (gguf_get_str(f, "tokenizer.ggml.model", &model) == 0 && model.len == 4 &&
      memcmp(model.data, "gpt2", 4) == 0)
    v->vocab_kind = REALM_GUEST_VOCAB_BPE;
  v->bos = v->eos = -1;
  uint32_t id;
  if (gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &id) == 0 && id < v->n_tokens)
    v->bos = (int32_t)id;
  if (gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &id) == 0 && id < v->n_tokens)
    v->eos = (int32_t)id;
  gguf_close(f);
  *ret_vocab = v;
  return REALM_OK;
fail:
  runner_vocab_free(v);
  gguf_close(f);
  return rc;
}
