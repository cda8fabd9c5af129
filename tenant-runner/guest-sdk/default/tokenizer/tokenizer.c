/*
 * tokenizer.c — construction of a tokenizer from a GGUF-style vocabulary description, the
 * lookups the algorithms share (token text -> id, merge pair -> rank), the partition of the
 * input around user-defined tokens, and decoding (id -> bytes).
 *
 * Everything the tokenizer needs is copied into one arena at tok_create() time and never
 * changes afterwards: encode calls allocate their own scratch memory, so a struct tok may be
 * shared freely and there is no global mutable state (a requirement of the wasm guest).
 *
 * The algorithms themselves live in tok_spm.c (SentencePiece merges by score) and tok_bpe.c
 * (pre-tokenizer regexes and merges by rank). Behaviour follows llama.cpp's tokenizer with
 * special-token parsing off; docs/tokenizers.md lists the deliberate differences.
 */
#include "tok_internal.h"
#include "tok_unicode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realm/error.h"

#define TOK_ERR(code, ...)                               \
  do {                                                   \
    if (err && errlen) snprintf(err, errlen, __VA_ARGS__); \
    rc = (code);                                         \
    goto fail;                                           \
  } while (0)

/* ---- hashing and lookups ---------------------------------------------------------------- */

uint32_t tok_hash_bytes(const char *s, size_t n, uint32_t h) {
  /* FNV-1a: deterministic across platforms (the guest and the tests must agree on nothing but
   * results, yet a fixed hash keeps probe sequences reproducible when debugging). */
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 16777619u;
  }
  return h;
}

static uint32_t merge_hash(const char *l, size_t ln, const char *r, size_t rn) {
  uint32_t h = tok_hash_bytes(l, ln, TOK_HASH_SEED);
  h = (h ^ 0x100u) * 16777619u; /* a value no byte can take marks the split point */
  return tok_hash_bytes(r, rn, h);
}

int32_t tok_lookup(const struct tok *t, const char *s, size_t n) {
  if (n == 0 || n > TOK_MAX_TOKEN_BYTES) return -1;
  uint32_t i = tok_hash_bytes(s, n, TOK_HASH_SEED) & t->tok_mask;
  for (;;) {
    uint32_t slot = t->tok_slots[i];
    if (slot == 0) return -1;
    uint32_t id = slot - 1;
    if (t->text_len[id] == n && memcmp(t->arena + t->text_off[id], s, n) == 0) return (int32_t)id;
    i = (i + 1) & t->tok_mask;
  }
}

int32_t tok_merge_rank(const struct tok *t, const char *l, size_t ln, const char *r, size_t rn) {
  if (t->n_merges == 0) return -1;
  uint32_t i = merge_hash(l, ln, r, rn) & t->merge_mask;
  for (;;) {
    uint32_t slot = t->merge_slots[i];
    if (slot == 0) return -1;
    uint32_t m = slot - 1;
    const char *txt = t->arena + t->merge_off[m];
    uint32_t split = t->merge_split[m];
    if (split == ln && t->merge_len[m] - split - 1 == rn && memcmp(txt, l, ln) == 0 &&
        memcmp(txt + split + 1, r, rn) == 0)
      return (int32_t)m;
    i = (i + 1) & t->merge_mask;
  }
}

static uint32_t pow2_at_least(uint64_t n) {
  uint32_t c = 16;
  while (c < n) c <<= 1;
  return c;
}

/* ---- small containers ------------------------------------------------------------------- */

int tok_ids_push(struct tok_ids *a, int32_t id) {
  if (a->n == a->cap) {
    size_t nc = a->cap ? a->cap * 2 : 64;
    int32_t *v = realloc(a->v, nc * sizeof *v);
    if (!v) return REALM_E_NOMEM;
    a->v = v;
    a->cap = nc;
  }
  a->v[a->n++] = id;
  return 0;
}

static int bigram_before(const struct tok_bigram *a, const struct tok_bigram *b) {
  /* a pops before b: higher priority, then the leftmost pair. */
  return a->prio > b->prio || (a->prio == b->prio && a->left < b->left);
}

int tok_heap_push(struct tok_heap *h, struct tok_bigram b) {
  if (h->n == h->cap) {
    size_t nc = h->cap ? h->cap * 2 : 64;
    struct tok_bigram *v = realloc(h->v, nc * sizeof *v);
    if (!v) return REALM_E_NOMEM;
    h->v = v;
    h->cap = nc;
  }
  size_t i = h->n++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!bigram_before(&b, &h->v[p])) break;
    h->v[i] = h->v[p];
    i = p;
  }
  h->v[i] = b;
  return 0;
}

struct tok_bigram tok_heap_pop(struct tok_heap *h) {
  struct tok_bigram top = h->v[0];
  struct tok_bigram last = h->v[--h->n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->n) break;
    if (c + 1 < h->n && bigram_before(&h->v[c + 1], &h->v[c])) c++;
    if (!bigram_before(&h->v[c], &last)) break;
    h->v[i] = h->v[c];
    i = c;
  }
  if (h->n > 0) h->v[i] = last;
  return top;
}

/* ---- construction ----------------------------------------------------------------------- */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* "<0xNN>" -> NN, else -1. */
static int parse_byte_token(const char *s, uint32_t n) {
  if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
  int hi = hexval(s[3]), lo = hexval(s[4]);
  if (hi < 0 || lo < 0) return -1;
  return hi * 16 + lo;
}

/* Writes the bytes token ID decodes to at OUT (room for max(text_len, 3) bytes); returns the
 * count. Mirrors llama.cpp's token_to_piece with special = false. */
static uint32_t build_piece(const struct tok *t, uint32_t id, char *out) {
  const char *s = t->arena + t->text_off[id];
  uint32_t n = t->text_len[id];
  uint32_t o = 0;
  switch (t->types[id]) {
  case TOK_TYPE_USER_DEFINED:
    memcpy(out, s, n);
    return n;
  case TOK_TYPE_NORMAL:
    break;
  case TOK_TYPE_BYTE:
    if (t->model == TOK_MODEL_SPM) {
      int b = parse_byte_token(s, n);
      if (b >= 0) {
        out[0] = (char)b;
        return 1;
      }
      break; /* malformed byte token: decode its text like a normal one */
    }
    return 0;
  case TOK_TYPE_UNKNOWN:
    if (t->model == TOK_MODEL_SPM) {
      memcpy(out, "\xe2\x96\x85", 3); /* U+2585, what llama.cpp shows for <unk> */
      return 3;
    }
    return 0;
  default: /* control, unused, undefined: not text */
    return 0;
  }
  if (t->model == TOK_MODEL_SPM) {
    for (uint32_t i = 0; i < n;) {
      if (i + 3 <= n && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
        out[o++] = ' ';
        i += 3;
      } else {
        out[o++] = s[i++];
      }
    }
    return o;
  }
  /* BPE: each character of the text stands for one byte (the GPT-2 byte alphabet). A
   * character outside that alphabet is kept as its UTF-8 bytes rather than dropped. */
  for (uint32_t i = 0; i < n;) {
    size_t cl;
    uint32_t cp = tok_utf8_decode((const unsigned char *)s + i, n - i, &cl);
    int byte = cp < TOK_BPE_CP_LIMIT ? t->bpe_cp_byte[cp] : -1;
    if (byte >= 0) {
      out[o++] = (char)byte;
    } else {
      memcpy(out + o, s + i, cl);
      o += (uint32_t)cl;
    }
    i += (uint32_t)cl;
  }
  return o;
}

struct ud_sort {
  uint32_t len;
  uint32_t id;
};

static int ud_cmp(const void *a, const void *b) {
  const struct ud_sort *x = a, *y = b;
  /* llama.cpp tries special tokens longest first; equal lengths by id for determinism. */
  if (x->len != y->len) return x->len > y->len ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

static int u32_cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

int tok_create(const struct tok_desc *d, struct tok **ret_tok, char *err, size_t errlen) {
  int rc = 0;
  struct tok *t = NULL;
  struct ud_sort *uds = NULL;
  if (err && errlen) err[0] = '\0';
  if (!d || !ret_tok) {
    if (err && errlen) snprintf(err, errlen, "tok_create: desc and ret_tok must not be NULL");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (d->model != TOK_MODEL_SPM && d->model != TOK_MODEL_BPE) {
    if (err && errlen) snprintf(err, errlen, "model %d: expected SPM (1) or BPE (2)", (int)d->model);
    return REALM_E_UNSUPPORTED;
  }
  if (d->n_tokens == 0 || d->n_tokens > TOK_MAX_VOCAB || !d->tokens) {
    if (err && errlen)
      snprintf(err, errlen, "n_tokens %u: must be 1..%u with a token array", d->n_tokens,
               TOK_MAX_VOCAB);
    return REALM_E_INVALID_ARGUMENT;
  }
  t = calloc(1, sizeof *t);
  if (!t) return REALM_E_NOMEM;
  t->model = d->model;
  t->n_tokens = d->n_tokens;
  t->add_space_prefix = d->add_space_prefix ? 1 : 0;

  const char *pre = d->pre ? d->pre : "default";
  if (d->model == TOK_MODEL_SPM) {
    t->pre = TOK_PRE_NONE;
  } else if (strcmp(pre, "gpt-2") == 0) {
    t->pre = TOK_PRE_GPT2;
  } else if (strcmp(pre, "deepseek-llm") == 0) {
    t->pre = TOK_PRE_DEEPSEEK_LLM;
  } else {
    TOK_ERR(REALM_E_UNSUPPORTED,
            "pre-tokenizer \"%.64s\": only \"gpt-2\" and \"deepseek-llm\" are implemented", pre);
  }

  int32_t special[3] = {d->bos_id, d->eos_id, d->unk_id};
  static const char *const special_names[3] = {"bos_id", "eos_id", "unk_id"};
  for (int i = 0; i < 3; i++)
    if (special[i] < -1 || special[i] >= (int64_t)d->n_tokens)
      TOK_ERR(REALM_E_INVALID_ARGUMENT, "%s %d: must be -1 or below n_tokens %u", special_names[i],
              special[i], d->n_tokens);
  t->bos_id = d->bos_id;
  t->eos_id = d->eos_id;
  t->unk_id = d->unk_id;

  uint32_t n = d->n_tokens;
  uint32_t n_merges = d->model == TOK_MODEL_BPE ? d->n_merges : 0;
  if (d->model == TOK_MODEL_BPE && n_merges > 0 && !d->merges)
    TOK_ERR(REALM_E_INVALID_ARGUMENT, "n_merges %u with a NULL merge array", n_merges);
  if (n_merges > TOK_MAX_MERGES)
    TOK_ERR(REALM_E_TOO_LARGE, "n_merges %u: limit is %u", n_merges, TOK_MAX_MERGES);

  /* Validate every string and size the arena (texts, pieces, merges). */
  uint64_t arena = 0;
  for (uint32_t i = 0; i < n; i++) {
    const struct tok_bytes *b = &d->tokens[i];
    if (b->len > TOK_MAX_TOKEN_BYTES)
      TOK_ERR(REALM_E_TOO_LARGE, "token %u: %u bytes, limit is %u", i, b->len, TOK_MAX_TOKEN_BYTES);
    if (b->len > 0 && !b->data) TOK_ERR(REALM_E_INVALID_ARGUMENT, "token %u: NULL text", i);
    if (d->types && (d->types[i] < 0 || d->types[i] > TOK_TYPE_BYTE))
      TOK_ERR(REALM_E_INVALID_ARGUMENT, "token %u: type %d is not 0..6", i, d->types[i]);
    if (d->scores && d->scores[i] != d->scores[i])
      TOK_ERR(REALM_E_INVALID_ARGUMENT, "token %u: score is NaN", i);
    arena += (uint64_t)b->len + (b->len > 3 ? b->len : 3);
  }
  for (uint32_t i = 0; i < n_merges; i++) {
    const struct tok_bytes *b = &d->merges[i];
    if (b->len > TOK_MAX_TOKEN_BYTES)
      TOK_ERR(REALM_E_TOO_LARGE, "merge %u: %u bytes, limit is %u", i, b->len, TOK_MAX_TOKEN_BYTES);
    if (b->len > 0 && !b->data) TOK_ERR(REALM_E_INVALID_ARGUMENT, "merge %u: NULL text", i);
    arena += b->len;
  }
  if (arena >= UINT32_MAX) TOK_ERR(REALM_E_TOO_LARGE, "vocabulary text totals %llu bytes, limit 4 GiB",
                                   (unsigned long long)arena);

  t->arena = malloc(arena ? (size_t)arena : 1);
  t->text_off = malloc(n * sizeof *t->text_off);
  t->text_len = malloc(n * sizeof *t->text_len);
  t->piece_off = malloc(n * sizeof *t->piece_off);
  t->piece_len = malloc(n * sizeof *t->piece_len);
  t->scores = malloc(n * sizeof *t->scores);
  t->types = malloc(n);
  t->ud_rank = calloc(n, sizeof *t->ud_rank);
  t->tok_mask = pow2_at_least(2ull * n) - 1;
  t->tok_slots = calloc((size_t)t->tok_mask + 1, sizeof *t->tok_slots);
  if (!t->arena || !t->text_off || !t->text_len || !t->piece_off || !t->piece_len || !t->scores ||
      !t->types || !t->ud_rank || !t->tok_slots)
    TOK_ERR(REALM_E_NOMEM, "out of memory for a %u-token vocabulary", n);

  uint32_t pos = 0;
  for (uint32_t i = 0; i < n; i++) {
    const struct tok_bytes *b = &d->tokens[i];
    t->text_off[i] = pos;
    t->text_len[i] = b->len;
    if (b->len) memcpy(t->arena + pos, b->data, b->len);
    pos += b->len;
    t->scores[i] = d->scores ? d->scores[i] : 0.0f;
    if (d->types) {
      t->types[i] = (uint8_t)d->types[i];
    } else {
      /* Without types, SPM byte tokens are recognised by their "<0xNN>" spelling. */
      t->types[i] = (d->model == TOK_MODEL_SPM && parse_byte_token(b->data, b->len) >= 0)
                        ? TOK_TYPE_BYTE
                        : TOK_TYPE_NORMAL;
    }
    if (b->len == 0) continue;
    /* Later duplicates win, as in llama.cpp's token_to_id map. */
    uint32_t h = tok_hash_bytes(b->data, b->len, TOK_HASH_SEED) & t->tok_mask;
    for (;;) {
      uint32_t slot = t->tok_slots[h];
      if (slot == 0) {
        t->tok_slots[h] = i + 1;
        break;
      }
      uint32_t o = slot - 1;
      if (t->text_len[o] == b->len && memcmp(t->arena + t->text_off[o], b->data, b->len) == 0) {
        t->tok_slots[h] = i + 1;
        break;
      }
      h = (h + 1) & t->tok_mask;
    }
  }

  /* Byte tokens: SPM "<0xNN>", BPE the GPT-2 character standing for the byte. */
  if (t->model == TOK_MODEL_BPE) {
    tok_bpe_init_byte_map(t->bpe_byte_cp);
    for (uint32_t c = 0; c < TOK_BPE_CP_LIMIT; c++) t->bpe_cp_byte[c] = -1;
    for (int b = 0; b < 256; b++) t->bpe_cp_byte[t->bpe_byte_cp[b]] = (int16_t)b;
  }
  for (int b = 0; b < 256; b++) {
    char buf[8];
    size_t bl;
    if (t->model == TOK_MODEL_SPM) {
      snprintf(buf, sizeof buf, "<0x%02X>", b);
      bl = 6;
    } else {
      bl = tok_utf8_encode(t->bpe_byte_cp[b], buf);
    }
    t->byte_token[b] = tok_lookup(t, buf, bl);
  }

  /* Pieces (needs types, byte map). */
  for (uint32_t i = 0; i < n; i++) {
    t->piece_off[i] = pos;
    t->piece_len[i] = build_piece(t, i, t->arena + pos);
    pos += t->piece_len[i];
  }

  /* Merges: "left right", split at the first space after the first byte (a left part may
   * itself be a space in non-byte-level vocabularies). First occurrence keeps its rank. */
  if (n_merges > 0) {
    t->n_merges = n_merges;
    t->merge_off = malloc(n_merges * sizeof *t->merge_off);
    t->merge_len = malloc(n_merges * sizeof *t->merge_len);
    t->merge_split = malloc(n_merges * sizeof *t->merge_split);
    t->merge_mask = pow2_at_least(2ull * n_merges) - 1;
    t->merge_slots = calloc((size_t)t->merge_mask + 1, sizeof *t->merge_slots);
    if (!t->merge_off || !t->merge_len || !t->merge_split || !t->merge_slots)
      TOK_ERR(REALM_E_NOMEM, "out of memory for %u merges", n_merges);
    for (uint32_t i = 0; i < n_merges; i++) {
      const struct tok_bytes *b = &d->merges[i];
      const char *sp = b->len > 1 ? memchr(b->data + 1, ' ', b->len - 1) : NULL;
      if (!sp || sp == b->data + b->len - 1)
        TOK_ERR(REALM_E_INVALID_ARGUMENT, "merge %u \"%.*s\": expected \"left right\"", i,
                (int)(b->len > 40 ? 40 : b->len), b->len ? b->data : "");
      uint32_t split = (uint32_t)(sp - b->data);
      t->merge_off[i] = pos;
      t->merge_len[i] = b->len;
      t->merge_split[i] = split;
      memcpy(t->arena + pos, b->data, b->len);
      pos += b->len;
      if (tok_merge_rank(t, b->data, split, sp + 1, b->len - split - 1) >= 0) continue;
      uint32_t h = merge_hash(b->data, split, sp + 1, b->len - split - 1) & t->merge_mask;
      while (t->merge_slots[h] != 0) h = (h + 1) & t->merge_mask;
      t->merge_slots[h] = i + 1;
    }
  }

  /* User-defined tokens, in the order llama.cpp tries them. */
  for (uint32_t i = 0; i < n; i++)
    if (t->types[i] == TOK_TYPE_USER_DEFINED && t->text_len[i] > 0) t->n_user++;
  if (t->n_user > 0) {
    uds = malloc(t->n_user * sizeof *uds);
    t->ud_lens = malloc(t->n_user * sizeof *t->ud_lens);
    if (!uds || !t->ud_lens) TOK_ERR(REALM_E_NOMEM, "out of memory for user-defined tokens");
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
      if (t->types[i] == TOK_TYPE_USER_DEFINED && t->text_len[i] > 0) {
        uds[k].len = t->text_len[i];
        uds[k].id = i;
        k++;
        unsigned char fb = (unsigned char)t->arena[t->text_off[i]];
        t->ud_first[fb >> 3] |= (uint8_t)(1u << (fb & 7));
      }
    qsort(uds, k, sizeof *uds, ud_cmp);
    for (uint32_t r = 0; r < k; r++) {
      t->ud_rank[uds[r].id] = r + 1;
      t->ud_lens[r] = uds[r].len;
    }
    qsort(t->ud_lens, k, sizeof *t->ud_lens, u32_cmp);
    uint32_t m = 0;
    for (uint32_t r = 0; r < k; r++)
      if (m == 0 || t->ud_lens[m - 1] != t->ud_lens[r]) t->ud_lens[m++] = t->ud_lens[r];
    t->n_ud_lens = m;
  }
  free(uds);
  *ret_tok = t;
  return 0;
fail:
  free(uds);
  tok_destroy(t);
  return rc;
}

void tok_destroy(struct tok *t) {
  if (!t) return;
  free(t->arena);
  free(t->text_off);
  free(t->text_len);
  free(t->piece_off);
  free(t->piece_len);
  free(t->scores);
  free(t->types);
  free(t->tok_slots);
  free(t->merge_off);
  free(t->merge_len);
  free(t->merge_split);
  free(t->merge_slots);
  free(t->ud_lens);
  free(t->ud_rank);
  free(t);
}

/* ---- encode ----------------------------------------------------------------------------- */

struct ud_occ {
  uint32_t rank; /* ud_rank of the token: processing order */
  uint32_t pos;  /* byte offset in the input */
  int32_t id;
};

static int occ_cmp(const void *a, const void *b) {
  const struct ud_occ *x = a, *y = b;
  if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
  return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int emit_fragment(const struct tok *t, const char *s, size_t n, int *prev_special,
                         struct tok_ids *out) {
  if (n == 0) return 0;
  int rc;
  if (t->model == TOK_MODEL_SPM)
    rc = tok_spm_fragment(t, s, n, t->add_space_prefix && *prev_special, out);
  else
    rc = tok_bpe_fragment(t, s, n, out);
  *prev_special = 0;
  return rc;
}

/* Splits TEXT around user-defined tokens the way llama.cpp's tokenizer_st_partition does:
 * tokens are tried longest first; each takes the leftmost non-overlapping occurrences that lie
 * wholly inside text no earlier token has claimed. Then tokenizes the raw pieces in order. */
static int encode_partitioned(const struct tok *t, const char *text, size_t len,
                              struct tok_ids *out) {
  int rc = 0;
  int prev_special = 1; /* SPM: the first raw fragment gets the space prefix */
  struct ud_occ *occ = NULL;
  size_t n_occ = 0, cap_occ = 0;
  uint8_t *claimed = NULL;
  int32_t *token_at = NULL;

  if (t->n_user > 0) {
    for (size_t i = 0; i < len; i++) {
      unsigned char fb = (unsigned char)text[i];
      if (!(t->ud_first[fb >> 3] & (1u << (fb & 7)))) continue;
      for (uint32_t k = 0; k < t->n_ud_lens && t->ud_lens[k] <= len - i; k++) {
        int32_t id = tok_lookup(t, text + i, t->ud_lens[k]);
        if (id < 0 || t->ud_rank[id] == 0) continue;
        if (n_occ == cap_occ) {
          size_t nc = cap_occ ? cap_occ * 2 : 16;
          struct ud_occ *v = realloc(occ, nc * sizeof *v);
          if (!v) {
            rc = REALM_E_NOMEM;
            goto out;
          }
          occ = v;
          cap_occ = nc;
        }
        occ[n_occ].rank = t->ud_rank[id];
        occ[n_occ].pos = (uint32_t)i;
        occ[n_occ].id = id;
        n_occ++;
      }
    }
  }
  if (n_occ == 0) {
    rc = emit_fragment(t, text, len, &prev_special, out);
    goto out;
  }

  qsort(occ, n_occ, sizeof *occ, occ_cmp);
  claimed = calloc(len, 1);
  token_at = malloc(len * sizeof *token_at);
  if (!claimed || !token_at) {
    rc = REALM_E_NOMEM;
    goto out;
  }
  uint32_t cur_rank = 0;
  size_t last_end = 0;
  for (size_t k = 0; k < n_occ; k++) {
    if (occ[k].rank != cur_rank) {
      cur_rank = occ[k].rank;
      last_end = 0;
    }
    size_t p = occ[k].pos;
    if (p < last_end) continue; /* overlaps this token's previous match */
    int32_t id = occ[k].id;
    size_t l = t->text_len[id], j;
    for (j = 0; j < l && !claimed[p + j]; j++) {
    }
    if (j < l) continue; /* crosses text an earlier (longer) token took */
    memset(claimed + p, 1, l);
    token_at[p] = id;
    last_end = p + l;
  }

  size_t raw_start = 0, i = 0;
  while (i < len) {
    if (!claimed[i]) {
      i++;
      continue;
    }
    rc = emit_fragment(t, text + raw_start, i - raw_start, &prev_special, out);
    if (rc < 0) goto out;
    int32_t id = token_at[i];
    rc = tok_ids_push(out, id);
    if (rc < 0) goto out;
    prev_special = 1;
    i += t->text_len[id];
    raw_start = i;
  }
  rc = emit_fragment(t, text + raw_start, len - raw_start, &prev_special, out);
out:
  free(occ);
  free(claimed);
  free(token_at);
  return rc;
}

int tok_encode(const struct tok *t, const char *text, size_t len, int add_bos, int32_t *ids,
               size_t cap, size_t *ret_n) {
  if (!t || !ret_n || (len > 0 && !text) || (cap > 0 && !ids)) return REALM_E_INVALID_ARGUMENT;
  if (len > TOK_MAX_TEXT_BYTES) return REALM_E_TOO_LARGE;
  struct tok_ids out = {0};
  int rc = 0;
  if (add_bos && t->bos_id >= 0) rc = tok_ids_push(&out, t->bos_id);
  /* Empty text yields no tokens (no space prefix either), as in llama.cpp. */
  if (rc == 0 && len > 0) rc = encode_partitioned(t, text, len, &out);
  if (rc == 0) {
    if (ids == NULL && cap == 0) {
      *ret_n = out.n;
    } else if (out.n > cap) {
      rc = REALM_E_TOO_LARGE;
    } else {
      if (out.n) memcpy(ids, out.v, out.n * sizeof *ids);
      *ret_n = out.n;
    }
  }
  free(out.v);
  return rc;
}

/* ---- decode and accessors --------------------------------------------------------------- */

const char *tok_piece(const struct tok *t, int32_t id, size_t *ret_len) {
  if (!t || id < 0 || (uint32_t)id >= t->n_tokens) return NULL;
  if (ret_len) *ret_len = t->piece_len[id];
  return t->arena + t->piece_off[id];
}

int tok_decode(const struct tok *t, const int32_t *ids, size_t n, char *out, size_t cap,
               size_t *ret_len) {
  if (!t || !ret_len || (n > 0 && !ids) || (cap > 0 && !out)) return REALM_E_INVALID_ARGUMENT;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if (ids[i] < 0 || (uint32_t)ids[i] >= t->n_tokens) return REALM_E_OUT_OF_RANGE;
    total += t->piece_len[ids[i]];
  }
  if (out == NULL && cap == 0) {
    *ret_len = total;
    return 0;
  }
  if (total > cap) return REALM_E_TOO_LARGE;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    memcpy(out + o, t->arena + t->piece_off[ids[i]], t->piece_len[ids[i]]);
    o += t->piece_len[ids[i]];
  }
  *ret_len = total;
  return 0;
}

uint32_t tok_n_tokens(const struct tok *t) { return t ? t->n_tokens : 0; }
int32_t tok_bos_id(const struct tok *t) { return t ? t->bos_id : -1; }
int32_t tok_eos_id(const struct tok *t) { return t ? t->eos_id : -1; }

int tok_token_type(const struct tok *t, int32_t id) {
  if (!t || id < 0 || (uint32_t)id >= t->n_tokens) return -1;
  return t->types[id];
}

const char *tok_token_text(const struct tok *t, int32_t id, size_t *ret_len) {
  if (!t || id < 0 || (uint32_t)id >= t->n_tokens) return NULL;
  if (ret_len) *ret_len = t->text_len[id];
  return t->arena + t->text_off[id];
}

int32_t tok_find_token(const struct tok *t, const char *text, size_t len) {
  if (!t || (len > 0 && !text)) return -1;
  return tok_lookup(t, text, len);
}
