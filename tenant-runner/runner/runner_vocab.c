/*
 * runner_vocab.c — loads tokenizer.ggml.* from a GGUF into private tables (runner_vocab.h).
 *
 * The GGUF reader validates the file; we only copy what guests need. The whole file is
 * copied into a memfd by gguf_open, briefly: for a multi-GiB model pass a vocabulary-only
 * GGUF instead (realmctl can write one), the pieces are what matter here.
 *
 * Besides the pieces: the BPE merges and the scalar/string metadata rendered as text for
 * realm_model_meta (runner_vocab.h), and the token display text used for top-logprob
 * alternatives.
 */
#include "runner_vocab.h"

#include <stdbool.h>
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
  free(v->merge_offsets);
  free(v->merges);
  for (uint32_t i = 0; v->meta && i < v->n_meta; i++) {
    free(v->meta[i].key);
    free(v->meta[i].value);
  }
  free(v->meta);
  free(v);
}

/* Renders one scalar or string value the way docs/guest-abi.md fixes it. Returns 1 and fills
 * *ret_value (malloc'ed, NUL after len bytes) and *ret_len; 0 for arrays and unknown types;
 * REALM_E_NOMEM. */
static int render_meta(const struct gguf_kv *kv, char **ret_value, uint32_t *ret_len) {
  char num[64];
  const char *src = num;
  size_t len;
  switch (kv->type) {
  case GGUF_VALUE_STRING:
    src = kv->v.str.data;
    len = kv->v.str.len;
    break;
  case GGUF_VALUE_BOOL:
    len = (size_t)snprintf(num, sizeof num, "%s", kv->v.u64 ? "true" : "false");
    break;
  case GGUF_VALUE_UINT8: case GGUF_VALUE_UINT16: case GGUF_VALUE_UINT32: case GGUF_VALUE_UINT64:
    len = (size_t)snprintf(num, sizeof num, "%llu", (unsigned long long)kv->v.u64);
    break;
  case GGUF_VALUE_INT8: case GGUF_VALUE_INT16: case GGUF_VALUE_INT32: case GGUF_VALUE_INT64:
    len = (size_t)snprintf(num, sizeof num, "%lld", (long long)kv->v.i64);
    break;
  case GGUF_VALUE_FLOAT32: case GGUF_VALUE_FLOAT64:
    len = (size_t)snprintf(num, sizeof num, "%.9g", kv->v.f64);
    break;
  default:
    return 0;
  }
  /* The GGUF reader caps strings at REALM_GGUF_MAX_STRING_BYTES; the ABI caps values too. */
  if (len > REALM_GUEST_MAX_META_VALUE_BYTES) return 0;
  char *copy = malloc(len + 1);
  if (!copy) return REALM_E_NOMEM;
  if (len) memcpy(copy, src, len);
  copy[len] = 0;
  *ret_value = copy;
  *ret_len = (uint32_t)len;
  return 1;
}

/* Copies every scalar and string key of f into v->meta. */
static int load_meta(struct gguf_file *f, struct runner_vocab *v, const char *path, char *err,
                     size_t errlen) {
  uint64_t n = gguf_kv_count(f);
  v->meta = calloc(n ? n : 1, sizeof *v->meta);
  if (!v->meta) goto nomem;
  for (uint64_t i = 0; i < n; i++) {
    const struct gguf_kv *kv = gguf_kv_at(f, i);
    if (!kv || kv->key.len == 0 || kv->key.len > REALM_GUEST_MAX_META_KEY_BYTES ||
        memchr(kv->key.data, 0, kv->key.len))
      continue; /* a guest could not name it anyway */
    struct runner_meta *m = &v->meta[v->n_meta];
    int rc = render_meta(kv, &m->value, &m->len);
    if (rc < 0) goto nomem;
    if (rc == 0) continue;
    m->key = strndup(kv->key.data, kv->key.len);
    if (!m->key) {
      free(m->value);
      goto nomem;
    }
    v->n_meta++;
  }
  return REALM_OK;
nomem:
  snprintf(err, errlen, "vocabulary %s: out of memory copying metadata", path);
  return REALM_E_NOMEM;
}

/* Copies tokenizer.ggml.merges (when present and a string array) into v. */
static int load_merges(struct gguf_file *f, struct runner_vocab *v, const char *path, char *err,
                       size_t errlen) {
  const struct gguf_kv *kv = NULL;
  if (gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_VALUE_STRING, &kv) < 0) return REALM_OK;
  if (kv->v.arr.count > INT32_MAX) { /* merge_count answers an i32 */
    snprintf(err, errlen, "vocabulary %s: tokenizer.ggml.merges has %llu entries", path,
             (unsigned long long)kv->v.arr.count);
    return REALM_E_BAD_MODEL;
  }
  uint32_t n = (uint32_t)kv->v.arr.count;
  uint64_t total = 0;
  for (uint32_t i = 0; i < n; i++) total += gguf_arr_str(kv, i).len;
  if (total > (1u << 30)) {
    snprintf(err, errlen, "vocabulary %s: merges total %llu bytes", path,
             (unsigned long long)total);
    return REALM_E_BAD_MODEL;
  }
  v->merge_offsets = malloc(((size_t)n + 1) * sizeof *v->merge_offsets);
  v->merges = malloc(total ? total : 1);
  if (!v->merge_offsets || !v->merges) {
    snprintf(err, errlen, "vocabulary %s: out of memory copying merges", path);
    return REALM_E_NOMEM;
  }
  uint32_t off = 0;
  for (uint32_t i = 0; i < n; i++) {
    struct gguf_str s = gguf_arr_str(kv, i);
    v->merge_offsets[i] = off;
    if (s.len) memcpy(v->merges + off, s.data, s.len);
    off += (uint32_t)s.len;
  }
  v->merge_offsets[n] = off;
  v->n_merges = n;
  return REALM_OK;
}

int runner_vocab_meta(const struct runner_vocab *v, const char *key, const char **ret_value,
                      uint32_t *ret_len) {
  for (uint32_t i = 0; v && i < v->n_meta; i++)
    if (strcmp(v->meta[i].key, key) == 0) {
      *ret_value = v->meta[i].value;
      *ret_len = v->meta[i].len;
      return REALM_GUEST_OK;
    }
  return REALM_GUEST_E_NOT_FOUND;
}

int runner_vocab_merge(const struct runner_vocab *v, uint32_t i, const char **ret_merge,
                       uint32_t *ret_len) {
  if (!v || i >= v->n_merges) return REALM_GUEST_E_NOT_FOUND;
  *ret_merge = v->merges + v->merge_offsets[i];
  *ret_len = v->merge_offsets[i + 1] - v->merge_offsets[i];
  return REALM_GUEST_OK;
}

/* GPT-2's byte-level BPE writes byte b as itself when it is printable Latin-1 (33..126,
 * 161..172, 174..255) and as U+0100 + k otherwise, k counting the other bytes in order. */
static bool gpt2_printable(unsigned b) {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

static int gpt2_unicode_to_byte(uint32_t cp) {
  if (cp < 256) return gpt2_printable(cp) ? (int)cp : -1;
  uint32_t k = cp - 256;
  for (unsigned b = 0; b < 256; b++)
    if (!gpt2_printable(b) && k-- == 0) return (int)b;
  return -1;
}

/* Decodes one UTF-8 sequence at p (n bytes left): code point and its length; an invalid
 * sequence reads as one byte with code point -1. */
static uint32_t utf8_next(const unsigned char *p, uint32_t n, int64_t *ret_cp) {
  unsigned c = p[0];
  uint32_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || len > n) {
    *ret_cp = -1;
    return 1;
  }
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
  for (uint32_t i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80) {
      *ret_cp = -1;
      return 1;
    }
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  *ret_cp = cp;
  return len;
}

static int hex_digit(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

uint32_t runner_vocab_token_text(const struct runner_vocab *v, int32_t token, char *out,
                                 uint32_t cap) {
  if (!v || token < 0 || (uint32_t)token >= v->n_tokens) return 0;
  const unsigned char *p = (const unsigned char *)v->pieces + v->offsets[token];
  uint32_t n = v->offsets[token + 1] - v->offsets[token], o = 0;
  if (v->kinds[token] == REALM_GUEST_TOKEN_CONTROL) {
    o = n < cap ? n : cap;
    memcpy(out, p, o);
    return o;
  }
  if (v->vocab_kind == REALM_GUEST_VOCAB_SPM) {
    int hi, lo;
    if (v->kinds[token] == REALM_GUEST_TOKEN_BYTE && n == 6 && cap > 0 && p[0] == '<' &&
        p[1] == '0' && p[2] == 'x' && (hi = hex_digit(p[3])) >= 0 &&
        (lo = hex_digit(p[4])) >= 0 && p[5] == '>') {
      out[0] = (char)(hi << 4 | lo);
      return 1;
    }
    for (uint32_t i = 0; i < n && o < cap;) {
      if (i + 2 < n && p[i] == 0xe2 && p[i + 1] == 0x96 && p[i + 2] == 0x81) {
        out[o++] = ' ';
        i += 3;
      } else {
        out[o++] = (char)p[i++];
      }
    }
    return o;
  }
  for (uint32_t i = 0; i < n && o < cap;) {
    int64_t cp;
    uint32_t len = utf8_next(p + i, n - i, &cp);
    int b = cp >= 0 ? gpt2_unicode_to_byte((uint32_t)cp) : -1;
    if (b >= 0) {
      out[o++] = (char)b;
    } else {
      if (o + len > cap) break; /* a character is never cut in half */
      memcpy(out + o, p + i, len);
      o += len;
    }
    i += len;
  }
  return o;
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
  rc = load_merges(f, v, path, err, errlen);
  if (rc == 0) rc = load_meta(f, v, path, err, errlen);
  if (rc < 0) goto fail;
  gguf_close(f);
  *ret_vocab = v;
  return REALM_OK;
fail:
  runner_vocab_free(v);
  gguf_close(f);
  return rc;
}
