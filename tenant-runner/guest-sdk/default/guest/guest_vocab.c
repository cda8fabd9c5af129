/*
 * guest_vocab.c — builds the default guest's tokenizer from the host's vocabulary imports.
 *
 * Steps: realm_model_info (vocab kind, bos/eos), then for every id realm_token_piece (the
 * token's text as stored in the GGUF vocabulary, growing one arena when a piece does not fit)
 * and realm_token_info (score, kind); then tok_create.
 *
 * What ABI v1 cannot give, and what we do instead:
 *   - tokenizer.ggml.add_space_prefix / add_bos_token: llama.cpp's defaults are used (SPM:
 *     space prefix on and BOS added; BPE: no BOS).
 *   - tokenizer.ggml.unknown_token_id: the first token whose kind is UNKNOWN.
 *   - tokenizer.ggml.pre: BPE vocabularies are tokenized with the GPT-2 pre-tokenizer.
 *   - tokenizer.ggml.merges: reconstructed the way tiktoken defines byte-level BPE, where the
 *     rank of a pair is the id of the token it forms. For each token in id order, every split
 *     of its text (at character boundaries) into two tokens becomes a merge. GPT-2-style
 *     vocabularies number merged tokens in merge order, so this reproduces the merge order;
 *     it can differ from the real merge list where a token has several splits and the file's
 *     list holds only one of them (docs/default-guest.md).
 */
#include "guest_vocab.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realm/error.h"

__attribute__((format(printf, 4, 5)))
static int fail(int code, char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* Everything read from the host before tok_create copies it. */
struct raw_vocab {
  char *arena;        /* all token texts back to back */
  size_t arena_len, arena_cap;
  uint32_t *off;      /* [n] offset of token i's text in arena */
  uint32_t *len;      /* [n] its length */
  float *scores;      /* [n] */
  int32_t *types;     /* [n] */
  struct tok_bytes *tokens; /* [n] filled once the arena stops moving */
};

static void raw_vocab_free(struct raw_vocab *r) {
  free(r->arena);
  free(r->off);
  free(r->len);
  free(r->scores);
  free(r->types);
  free(r->tokens);
}

/* Reads token id's piece into the arena, growing it when the host says the piece is larger
 * than the space left. */
static int read_piece(struct raw_vocab *r, int32_t id, char *err, size_t errlen) {
  for (int attempt = 0; attempt < 2; attempt++) {
    size_t room = r->arena_cap - r->arena_len;
    int32_t n = realm_token_piece(id, r->arena + r->arena_len, (uint32_t)room);
    if (n < 0)
      return fail(REALM_E_BAD_MODEL, err, errlen, "token_piece(%d) failed with %d", (int)id, (int)n);
    if ((size_t)n > TOK_MAX_TOKEN_BYTES)
      return fail(REALM_E_BAD_MODEL, err, errlen, "token_piece(%d): %d bytes, limit %u", (int)id,
                  (int)n, TOK_MAX_TOKEN_BYTES);
    if ((size_t)n <= room) {
      r->off[id] = (uint32_t)r->arena_len;
      r->len[id] = (uint32_t)n;
      r->arena_len += (size_t)n;
      return 0;
    }
    size_t cap = r->arena_cap * 2;
    while (cap - r->arena_len < (size_t)n) cap *= 2;
    char *a = realloc(r->arena, cap);
    if (!a) return fail(REALM_E_NOMEM, err, errlen, "vocabulary text: out of memory (%zu bytes)", cap);
    r->arena = a;
    r->arena_cap = cap;
  }
  return fail(REALM_E_BAD_MODEL, err, errlen, "token_piece(%d): length changed between calls", (int)id);
}

static int is_utf8_start(unsigned char c) {
  return (c & 0xc0) != 0x80;
}

/* Reconstructs BPE merges (see the file comment) into *ret_merges / *ret_n and the arena
 * *ret_text that their strings point into. `plain` is a tokenizer over the same vocabulary
 * without merges, used only to look texts up. */
static int reconstruct_merges(const struct tok *plain, const struct raw_vocab *r, uint32_t n,
                              struct tok_bytes **ret_merges, uint32_t *ret_n, char **ret_text,
                              char *err, size_t errlen) {
  /* Pass 1 counts merges and their bytes; pass 2 writes them. */
  size_t count = 0, bytes = 0;
  struct tok_bytes *merges = NULL;
  char *text = NULL;
  for (int pass = 0; pass < 2; pass++) {
    size_t k = 0, at = 0;
    for (uint32_t id = 0; id < n; id++) {
      int32_t type = r->types[id];
      if (type == TOK_TYPE_CONTROL || type == TOK_TYPE_USER_DEFINED || type == TOK_TYPE_UNUSED)
        continue;
      const char *s = r->arena + r->off[id];
      uint32_t len = r->len[id];
      for (uint32_t cut = 1; cut < len; cut++) {
        if (!is_utf8_start((unsigned char)s[cut])) continue;
        int32_t left = tok_find_token(plain, s, cut);
        if (left < 0 || left >= (int32_t)id) continue;
        int32_t right = tok_find_token(plain, s + cut, len - cut);
        if (right < 0 || right >= (int32_t)id) continue;
        if (pass == 1) {
          memcpy(text + at, s, cut);
          text[at + cut] = ' ';
          memcpy(text + at + cut + 1, s + cut, len - cut);
          merges[k] = (struct tok_bytes){text + at, len + 1};
        }
        k++;
        at += len + 1;
      }
    }
    if (pass == 0) {
      count = k;
      bytes = at;
      if (count > TOK_MAX_MERGES)
        return fail(REALM_E_TOO_LARGE, err, errlen, "reconstructed merges: %zu, limit %u", count,
                    TOK_MAX_MERGES);
      merges = malloc((count ? count : 1) * sizeof *merges);
      text = malloc(bytes ? bytes : 1);
      if (!merges || !text) {
        free(merges);
        free(text);
        return fail(REALM_E_NOMEM, err, errlen, "reconstructed merges: out of memory");
      }
    }
  }
  *ret_merges = merges;
  *ret_n = (uint32_t)count;
  *ret_text = text;
  return 0;
}

/* Sorting control ids by text length needs the tokenizer; qsort has no context argument, so
 * the sort is a small insertion sort (control tokens are few). */
static void sort_control_longest_first(const struct tok *t, int32_t *ids, size_t n) {
  for (size_t i = 1; i < n; i++) {
    int32_t id = ids[i];
    size_t len;
    tok_token_text(t, id, &len);
    size_t j = i;
    while (j > 0) {
      size_t lj;
      tok_token_text(t, ids[j - 1], &lj);
      if (lj >= len) break;
      ids[j] = ids[j - 1];
      j--;
    }
    ids[j] = id;
  }
}

int guest_vocab_load(struct guest_vocab **ret_vocab, char *err, size_t errlen) {
  struct guest_vocab *v = calloc(1, sizeof *v);
  if (!v) return fail(REALM_E_NOMEM, err, errlen, "vocabulary: out of memory");
  struct raw_vocab r = {0};
  struct tok *plain = NULL;
  struct tok_bytes *merges = NULL;
  char *merge_text = NULL;
  int rc;

  int32_t got = realm_model_info(&v->info, sizeof v->info);
  if (got < (int32_t)(offsetof(struct realm_model_info, vocab_kind) + sizeof(uint32_t))) {
    rc = fail(REALM_E_BAD_MODEL, err, errlen, "model_info returned %d bytes; need at least %zu",
              (int)got, offsetof(struct realm_model_info, vocab_kind) + sizeof(uint32_t));
    goto out;
  }
  int32_t n = realm_vocab_size();
  if (n <= 0 || (uint32_t)n > TOK_MAX_VOCAB || (uint32_t)n != v->info.n_vocab) {
    rc = fail(REALM_E_BAD_MODEL, err, errlen, "vocab_size %d (model_info.n_vocab %u): must agree and be 1..%u",
              (int)n, v->info.n_vocab, TOK_MAX_VOCAB);
    goto out;
  }
  if (v->info.vocab_kind != REALM_GUEST_VOCAB_SPM && v->info.vocab_kind != REALM_GUEST_VOCAB_BPE) {
    rc = fail(REALM_E_UNSUPPORTED, err, errlen, "model_info.vocab_kind %u: only SPM (1) and BPE (2)",
              v->info.vocab_kind);
    goto out;
  }
  v->n_vocab = n;
  r.arena_cap = (size_t)n * 8 + 64;
  r.arena = malloc(r.arena_cap);
  r.off = malloc((size_t)n * sizeof *r.off);
  r.len = malloc((size_t)n * sizeof *r.len);
  r.scores = malloc((size_t)n * sizeof *r.scores);
  r.types = malloc((size_t)n * sizeof *r.types);
  r.tokens = malloc((size_t)n * sizeof *r.tokens);
  if (!r.arena || !r.off || !r.len || !r.scores || !r.types || !r.tokens) {
    rc = fail(REALM_E_NOMEM, err, errlen, "vocabulary of %d tokens: out of memory", (int)n);
    goto out;
  }
  int32_t unk = -1;
  size_t n_control = 0;
  for (int32_t id = 0; id < n; id++) {
    rc = read_piece(&r, id, err, errlen);
    if (rc < 0) goto out;
    struct realm_token_info ti = {0};
    int32_t q = realm_token_info(id, &ti);
    if (q < 0) {
      rc = fail(REALM_E_BAD_MODEL, err, errlen, "token_info(%d) failed with %d", (int)id, (int)q);
      goto out;
    }
    r.scores[id] = ti.score;
    r.types[id] = ti.kind;
    if (ti.kind == REALM_GUEST_TOKEN_UNKNOWN && unk < 0) unk = id;
    if (ti.kind == REALM_GUEST_TOKEN_CONTROL && r.len[id] > 0) n_control++;
  }
  for (int32_t id = 0; id < n; id++) r.tokens[id] = (struct tok_bytes){r.arena + r.off[id], r.len[id]};

  int32_t bos = v->info.bos, eos = v->info.eos;
  if (bos >= n || eos >= n || bos < -1 || eos < -1) {
    rc = fail(REALM_E_BAD_MODEL, err, errlen, "model_info bos %d / eos %d: outside the vocabulary of %d",
              (int)bos, (int)eos, (int)n);
    goto out;
  }
  struct tok_desc d = {
      .model = v->info.vocab_kind == REALM_GUEST_VOCAB_SPM ? TOK_MODEL_SPM : TOK_MODEL_BPE,
      .pre = v->info.vocab_kind == REALM_GUEST_VOCAB_SPM ? NULL : "gpt-2",
      .n_tokens = (uint32_t)n,
      .tokens = r.tokens,
      .scores = r.scores,
      .types = r.types,
      .bos_id = bos,
      .eos_id = eos,
      .unk_id = unk,
      .add_space_prefix = v->info.vocab_kind == REALM_GUEST_VOCAB_SPM,
  };
  if (d.model == TOK_MODEL_BPE) {
    rc = tok_create(&d, &plain, err, errlen);
    if (rc < 0) goto out;
    rc = reconstruct_merges(plain, &r, (uint32_t)n, &merges, &d.n_merges, &merge_text, err, errlen);
    if (rc < 0) goto out;
    d.merges = merges;
    v->n_merges = d.n_merges;
  }
  rc = tok_create(&d, &v->tok, err, errlen);
  if (rc < 0) goto out;
  v->add_bos = d.model == TOK_MODEL_SPM && bos >= 0;

  v->control = malloc((n_control ? n_control : 1) * sizeof *v->control);
  if (!v->control) {
    rc = fail(REALM_E_NOMEM, err, errlen, "control token list: out of memory");
    goto out;
  }
  for (int32_t id = 0; id < n; id++)
    if (r.types[id] == REALM_GUEST_TOKEN_CONTROL && r.len[id] > 0) v->control[v->n_control++] = id;
  sort_control_longest_first(v->tok, v->control, v->n_control);
  rc = 0;

out:
  tok_destroy(plain);
  free(merges);
  free(merge_text);
  raw_vocab_free(&r);
  if (rc < 0) {
    guest_vocab_free(v);
    return rc;
  }
  *ret_vocab = v;
  return 0;
}

void guest_vocab_free(struct guest_vocab *v) {
  if (!v) return;
  tok_destroy(v->tok);
  free(v->control);
  free(v);
}

/* Growable id list. */
struct ids {
  int32_t *v;
  size_t n, cap;
};

static int ids_reserve(struct ids *a, size_t more) {
  if (a->cap - a->n >= more) return 0;
  size_t cap = a->cap ? a->cap : 64;
  while (cap - a->n < more) cap *= 2;
  int32_t *p = realloc(a->v, cap * sizeof *p);
  if (!p) return REALM_E_NOMEM;
  a->v = p;
  a->cap = cap;
  return 0;
}

/* Appends the tokens of text[0..len) (no BOS). */
static int encode_plain(const struct guest_vocab *v, const char *text, size_t len, struct ids *a,
                        char *err, size_t errlen) {
  if (len == 0) return 0;
  size_t n = 0;
  int rc = tok_encode(v->tok, text, len, 0, NULL, 0, &n);
  if (rc == 0) rc = ids_reserve(a, n);
  if (rc == 0) rc = tok_encode(v->tok, text, len, 0, a->v + a->n, a->cap - a->n, &n);
  if (rc < 0) return fail(rc, err, errlen, "tokenizing %zu bytes of prompt failed (%d)", len, rc);
  a->n += n;
  return 0;
}

int guest_vocab_encode(const struct guest_vocab *v, const char *text, size_t len, int add_bos,
                       int parse_special, int32_t **ret_ids, size_t *ret_n, char *err,
                       size_t errlen) {
  struct ids a = {0};
  int rc = 0;
  int32_t bos = tok_bos_id(v->tok);
  if (add_bos && bos >= 0) {
    if ((rc = ids_reserve(&a, 1)) < 0) goto nomem;
    a.v[a.n++] = bos;
  }
  size_t start = 0; /* first byte not yet tokenized */
  if (parse_special && v->n_control > 0) {
    for (size_t i = 0; i < len;) {
      int32_t hit = -1;
      size_t hit_len = 0;
      for (size_t k = 0; k < v->n_control; k++) { /* longest first: the first hit wins */
        size_t cl;
        const char *ct = tok_token_text(v->tok, v->control[k], &cl);
        if (cl <= len - i && memcmp(text + i, ct, cl) == 0) {
          hit = v->control[k];
          hit_len = cl;
          break;
        }
      }
      if (hit < 0) {
        i++;
        continue;
      }
      rc = encode_plain(v, text + start, i - start, &a, err, errlen);
      if (rc < 0) goto fail_out;
      if ((rc = ids_reserve(&a, 1)) < 0) goto nomem;
      a.v[a.n++] = hit;
      i += hit_len;
      start = i;
    }
  }
  rc = encode_plain(v, text + start, len - start, &a, err, errlen);
  if (rc < 0) goto fail_out;
  *ret_ids = a.v;
  *ret_n = a.n;
  return 0;
nomem:
  rc = fail(REALM_E_NOMEM, err, errlen, "prompt tokens: out of memory");
fail_out:
  free(a.v);
  return rc;
}
