/*
 * guest_vocab.c — builds the default guest's tokenizer from the host's vocabulary imports.
 *
 * Steps: realm_model_info (vocab kind, bos/eos), then for every id realm_token_piece (the
 * token's text as stored in the GGUF vocabulary, growing one arena when a piece does not fit)
 * and realm_token_info (score, kind); the tokenizer metadata through realm_model_meta; for BPE
 * the merge list through realm_merge_count / realm_merge; then tok_create.
 *
 * What the host may not give (a host without the metadata/merge callbacks answers
 * REALM_GUEST_E_UNSUPPORTED, a model without the key NOT_FOUND), and what we do instead:
 *   - tokenizer.ggml.add_space_prefix / add_bos_token: llama.cpp's defaults (SPM: space
 *     prefix on and BOS added; BPE: no BOS).
 *   - tokenizer.ggml.unknown_token_id: the first token whose kind is UNKNOWN.
 *   - tokenizer.ggml.pre: the GPT-2 pre-tokenizer. A name the tokenizer does not implement
 *     also falls back to GPT-2, with a WARN log line naming it.
 *   - tokenizer.ggml.merges: reconstructed the way tiktoken defines byte-level BPE, where the
 *     rank of a pair is the id of the token it forms. For each token in id order, every split
 *     of its text (at character boundaries) into two tokens becomes a merge. GPT-2-style
 *     vocabularies number merged tokens in merge order, so this reproduces the merge order;
 *     it can differ from the real merge list where a token has several splits and the file's
 *     list holds only one of them (docs/default-guest.md).
 *   - tokenizer.chat_template: none; guest.c then picks a family by the vocabulary's markers.
 *     A template chat_template_detect does not recognise is logged at WARN and treated so too.
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

/* The two imports that copy one indexed string out of the host (token texts, merges). */
static int32_t get_token_piece(uint32_t i, char *buf, uint32_t cap) {
  return realm_token_piece((int32_t)i, buf, cap);
}

static int32_t get_merge(uint32_t i, char *buf, uint32_t cap) {
  return realm_merge(i, buf, cap);
}

/* Reads string i through `get` (named `what` in messages) to the end of the arena
 * (*arena, *len, *cap), growing it when the host says the string is larger than the space
 * left; *ret_off / *ret_len say where it went. */
static int read_indexed(int32_t (*get)(uint32_t, char *, uint32_t), const char *what, uint32_t i,
                        char **arena, size_t *len, size_t *cap, uint32_t *ret_off,
                        uint32_t *ret_len, char *err, size_t errlen) {
  for (int attempt = 0; attempt < 2; attempt++) {
    size_t room = *cap - *len;
    int32_t n = get(i, *arena + *len, (uint32_t)room);
    if (n < 0)
      return fail(REALM_E_BAD_MODEL, err, errlen, "%s(%u) failed with %d", what, i, (int)n);
    if ((size_t)n > TOK_MAX_TOKEN_BYTES)
      return fail(REALM_E_BAD_MODEL, err, errlen, "%s(%u): %d bytes, limit %u", what, i, (int)n,
                  TOK_MAX_TOKEN_BYTES);
    if ((size_t)n <= room) {
      *ret_off = (uint32_t)*len;
      *ret_len = (uint32_t)n;
      *len += (size_t)n;
      return 0;
    }
    size_t ncap = *cap * 2;
    while (ncap - *len < (size_t)n) ncap *= 2;
    char *a = realloc(*arena, ncap);
    if (!a) return fail(REALM_E_NOMEM, err, errlen, "%s text: out of memory (%zu bytes)", what, ncap);
    *arena = a;
    *cap = ncap;
  }
  return fail(REALM_E_BAD_MODEL, err, errlen, "%s(%u): length changed between calls", what, i);
}

/* Reads token id's piece into the vocabulary arena. */
static int read_piece(struct raw_vocab *r, int32_t id, char *err, size_t errlen) {
  return read_indexed(get_token_piece, "token_piece", (uint32_t)id, &r->arena, &r->arena_len,
                      &r->arena_cap, &r->off[id], &r->len[id], err, errlen);
}

/* ---- model metadata (realm_model_meta) ---- */

/* Reads metadata `key` into a malloc'ed NUL-terminated string. Returns 0 with *ret_value, 1
 * when the host has no such key or serves no metadata, or a negative error. */
static int meta_get(const char *key, char **ret_value, char *err, size_t errlen) {
  char small[128];
  uint32_t klen = (uint32_t)strlen(key);
  int32_t n = realm_model_meta(key, klen, small, sizeof small);
  if (n == REALM_GUEST_E_NOT_FOUND || n == REALM_GUEST_E_UNSUPPORTED) return 1;
  if (n < 0) return fail(REALM_E_BAD_MODEL, err, errlen, "model_meta(%s) failed with %d", key, (int)n);
  if ((uint32_t)n > REALM_GUEST_MAX_META_VALUE_BYTES)
    return fail(REALM_E_BAD_MODEL, err, errlen, "model_meta(%s): %d bytes, limit %u", key, (int)n,
                REALM_GUEST_MAX_META_VALUE_BYTES);
  char *v = malloc((size_t)n + 1);
  if (!v) return fail(REALM_E_NOMEM, err, errlen, "model_meta(%s): out of memory", key);
  if ((size_t)n <= sizeof small) {
    memcpy(v, small, (size_t)n);
  } else if (realm_model_meta(key, klen, v, (uint32_t)n) != n) {
    free(v);
    return fail(REALM_E_BAD_MODEL, err, errlen, "model_meta(%s): length changed between calls", key);
  }
  v[n] = '\0';
  *ret_value = v;
  return 0;
}

/* A boolean key: *ret_flag = 0/1 when the host has it (left alone otherwise). */
static int meta_bool(const char *key, int *ret_flag, char *err, size_t errlen) {
  char *v = NULL;
  int rc = meta_get(key, &v, err, errlen);
  if (rc != 0) return rc < 0 ? rc : 0;
  if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0) {
    *ret_flag = 1;
  } else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0) {
    *ret_flag = 0;
  } else {
    rc = fail(REALM_E_BAD_MODEL, err, errlen, "model_meta(%s) = \"%.32s\": expected true or false",
              key, v);
  }
  free(v);
  return rc;
}

/* An integer key (decimal, optional '-'): *ret_value when the host has it. */
static int meta_int(const char *key, int64_t *ret_value, char *err, size_t errlen) {
  char *v = NULL;
  int rc = meta_get(key, &v, err, errlen);
  if (rc != 0) return rc < 0 ? rc : 0;
  const char *p = v;
  int neg = *p == '-';
  if (neg) p++;
  int64_t x = 0;
  size_t digits = 0;
  for (; *p >= '0' && *p <= '9' && digits < 18; p++, digits++) x = x * 10 + (*p - '0');
  if (digits == 0 || *p)
    rc = fail(REALM_E_BAD_MODEL, err, errlen, "model_meta(%s) = \"%.32s\": expected an integer",
              key, v);
  else
    *ret_value = neg ? -x : x;
  free(v);
  return rc;
}

/* Reads the model's merge list into *ret_merges (pointing into *ret_text). Returns 0 with
 * *ret_n = 0 when the host gives none (no merges, or no merge service). */
static int read_merges(struct tok_bytes **ret_merges, uint32_t *ret_n, char **ret_text, char *err,
                       size_t errlen) {
  int32_t count = realm_merge_count();
  if (count == REALM_GUEST_E_UNSUPPORTED || count == 0) {
    *ret_n = 0;
    return 0;
  }
  if (count < 0) return fail(REALM_E_BAD_MODEL, err, errlen, "merge_count failed with %d", (int)count);
  if ((uint32_t)count > TOK_MAX_MERGES)
    return fail(REALM_E_TOO_LARGE, err, errlen, "merge_count %d: limit %u", (int)count, TOK_MAX_MERGES);
  uint32_t n = (uint32_t)count;
  size_t len = 0, cap = (size_t)n * 8 + 64;
  char *text = malloc(cap);
  uint32_t *off = malloc((size_t)n * sizeof *off), *mlen = malloc((size_t)n * sizeof *mlen);
  struct tok_bytes *merges = malloc((size_t)n * sizeof *merges);
  int rc = 0;
  if (!text || !off || !mlen || !merges)
    rc = fail(REALM_E_NOMEM, err, errlen, "%u merges: out of memory", n);
  for (uint32_t i = 0; rc == 0 && i < n; i++)
    rc = read_indexed(get_merge, "merge", i, &text, &len, &cap, &off[i], &mlen[i], err, errlen);
  if (rc == 0) {
    for (uint32_t i = 0; i < n; i++) merges[i] = (struct tok_bytes){text + off[i], mlen[i]};
    *ret_merges = merges;
    *ret_n = n;
    *ret_text = text;
  } else {
    free(merges);
    free(text);
  }
  free(off);
  free(mlen);
  return rc;
}

/* The model's chat template, recognised once per instance (guest.c uses it when a request
 * names none). An unrecognised one is logged and ignored. */
static int load_model_template(struct guest_vocab *v, char *err, size_t errlen) {
  char *jinja = NULL;
  int rc = meta_get(REALM_META_CHAT_TEMPLATE, &jinja, err, errlen);
  if (rc != 0) return rc < 0 ? rc : 0;
  char why[256];
  if (chat_template_detect(jinja, &v->model_template, why, sizeof why) == 0) {
    v->has_model_template = 1;
  } else {
    char line[384];
    int n = snprintf(line, sizeof line, "model chat template not recognised (%s); chats use the "
                     "vocabulary's markers unless a request names a template", why);
    if (n > 0) realm_log(REALM_GUEST_LOG_WARN, line, (uint32_t)((size_t)n < sizeof line ? (size_t)n : sizeof line - 1));
  }
  free(jinja);
  return 0;
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

static void log_fallback_pre(const char *pre) {
  char line[160];
  int n = snprintf(line, sizeof line,
                   "pre-tokenizer \"%.64s\" is not implemented by the default guest; using gpt-2",
                   pre);
  if (n > 0) realm_log(REALM_GUEST_LOG_WARN, line, (uint32_t)((size_t)n < sizeof line ? (size_t)n : sizeof line - 1));
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

/* Builds the tokenizer of *d into *ret_tok. A BPE description without merges gets them
 * reconstructed first (kept in *merges / *merge_text, which the caller frees; d points at
 * them afterwards), through a merge-less tokenizer over the same vocabulary. */
static int build_tokenizer(struct tok_desc *d, const struct raw_vocab *r, struct tok_bytes **merges,
                           char **merge_text, struct tok **ret_tok, char *err, size_t errlen) {
  if (d->model == TOK_MODEL_BPE && d->n_merges == 0) {
    struct tok *plain = NULL;
    int rc = tok_create(d, &plain, err, errlen);
    if (rc < 0) return rc;
    rc = reconstruct_merges(plain, r, d->n_tokens, merges, &d->n_merges, merge_text, err, errlen);
    tok_destroy(plain);
    if (rc < 0) return rc;
    d->merges = *merges;
  }
  return tok_create(d, ret_tok, err, errlen);
}

int guest_vocab_load(struct guest_vocab **ret_vocab, char *err, size_t errlen) {
  struct guest_vocab *v = calloc(1, sizeof *v);
  if (!v) return fail(REALM_E_NOMEM, err, errlen, "vocabulary: out of memory");
  struct raw_vocab r = {0};
  struct tok_bytes *merges = NULL;
  char *pre = NULL;
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

  /* Tokenizer metadata; absent keys keep llama.cpp's defaults. */
  int is_spm = v->info.vocab_kind == REALM_GUEST_VOCAB_SPM;
  int add_bos = is_spm, add_space_prefix = is_spm;
  int64_t unk_meta = -2; /* -2: not given */
  if ((rc = meta_bool(REALM_META_ADD_BOS, &add_bos, err, errlen)) < 0 ||
      (rc = meta_bool(REALM_META_ADD_SPACE_PREFIX, &add_space_prefix, err, errlen)) < 0 ||
      (rc = meta_int(REALM_META_UNK_ID, &unk_meta, err, errlen)) < 0)
    goto out;
  /* GGUF files write "none" as u32 0xffffffff; any id outside the vocabulary means none. */
  if (unk_meta != -2) unk = unk_meta >= 0 && unk_meta < n ? (int32_t)unk_meta : -1;
  v->unk = unk;
  if (!is_spm) {
    rc = meta_get(REALM_META_TOKENIZER_PRE, &pre, err, errlen);
    if (rc < 0) goto out;
    snprintf(v->pre, sizeof v->pre, "%s", rc == 0 ? pre : "gpt-2");
    if (rc == 0 && strlen(pre) >= sizeof v->pre) snprintf(v->pre, sizeof v->pre, "(too long)");
  }
  if ((rc = load_model_template(v, err, errlen)) < 0) goto out;

  int32_t bos = v->info.bos, eos = v->info.eos;
  if (bos >= n || eos >= n || bos < -1 || eos < -1) {
    rc = fail(REALM_E_BAD_MODEL, err, errlen, "model_info bos %d / eos %d: outside the vocabulary of %d",
              (int)bos, (int)eos, (int)n);
    goto out;
  }
  struct tok_desc d = {
      .model = is_spm ? TOK_MODEL_SPM : TOK_MODEL_BPE,
      .pre = is_spm ? NULL : v->pre,
      .n_tokens = (uint32_t)n,
      .tokens = r.tokens,
      .scores = r.scores,
      .types = r.types,
      .bos_id = bos,
      .eos_id = eos,
      .unk_id = unk,
      .add_space_prefix = is_spm && add_space_prefix,
  };
  if (d.model == TOK_MODEL_BPE) {
    /* The model's merges when the host serves them; else reconstructed (file comment). */
    rc = read_merges(&merges, &d.n_merges, &merge_text, err, errlen);
    if (rc < 0) goto out;
    v->merges_from_host = d.n_merges > 0;
    d.merges = merges;
  }
  rc = build_tokenizer(&d, &r, &merges, &merge_text, &v->tok, err, errlen);
  if (rc == REALM_E_UNSUPPORTED && d.model == TOK_MODEL_BPE) {
    /* A pre-tokenizer this tokenizer does not implement: GPT-2's is the closest common one.
     * Said once per instance, so an operator sees why tokens may differ from llama.cpp. */
    log_fallback_pre(v->pre);
    snprintf(v->pre, sizeof v->pre, "gpt-2");
    d.pre = v->pre;
    rc = build_tokenizer(&d, &r, &merges, &merge_text, &v->tok, err, errlen);
  }
  if (rc < 0) goto out;
  v->n_merges = d.n_merges;
  v->add_bos = add_bos && bos >= 0;

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
  free(pre);
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
