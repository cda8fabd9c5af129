/*
 * tok_bpe.c — GPT-2 style byte-level BPE: pre-tokenization by the vocabulary's regex, the
 * byte-to-character alphabet, and merging by rank.
 *
 * Pre-tokenizers are hand-written matchers equivalent to the regexes llama.cpp uses (no regex
 * engine: the guest must stay small and deterministic):
 *
 *   gpt-2         's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   deepseek-llm  six regexes applied in turn, each splitting the pieces the previous left:
 *                 [\r\n]  \s?[cased letters]+  \s?[ASCII/fullwidth punctuation]+  \s+$
 *                 [U+0800-U+9FA5 U+AC00-U+D7FF]+  \p{N}+
 *                 (the text between matches stays a piece of its own, as with
 *                 std::regex_iterator splitting in llama.cpp).
 *
 * Invalid UTF-8 bytes classify as "other" (neither letter, number nor space) but keep their
 * original byte, so any input round-trips; llama.cpp replaces them with U+FFFD instead.
 *
 * Each piece's bytes are mapped to the GPT-2 alphabet (one character per byte), then adjacent
 * symbols are merged lowest rank first (ties: leftmost) with a heap, like tok_spm.c but with
 * priority -rank. Final symbols map to token ids; one missing from the vocabulary falls back to
 * its single-byte characters.
 */
#include <stdlib.h>
#include <string.h>

#include "realm/error.h"
#include "tok_internal.h"
#include "tok_unicode.h"

void tok_bpe_init_byte_map(uint16_t map[256]) {
  /* Printable Latin-1 bytes stand for themselves; the others (controls, space, DEL, NBSP,
   * soft hyphen) are moved, in byte order, to U+0100 upwards so that every byte has a visible
   * character. */
  uint16_t next = 256;
  for (int b = 0; b < 256; b++) {
    int printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
    map[b] = printable ? (uint16_t)b : next++;
  }
}

/* ---- code point classes ------------------------------------------------------------------ */

enum {
  CL_VALID = 1, /* inside the fragment (a lookup past its end yields 0) */
  CL_L = 2,
  CL_N = 4,
  CL_WS = 8,
};

struct cps {
  uint32_t *cp;  /* (n) code points (invalid bytes: TOK_CP_INVALID_BASE + byte) */
  uint32_t *off; /* (n + 1) byte offset of each code point in the fragment */
  uint8_t *cl;   /* (n) CL_* bits */
  size_t n;
};

/* Piece ends (code point indices), ascending; a piece runs from the previous end. */
struct ends {
  uint32_t *v;
  size_t n, cap;
};

static int ends_push(struct ends *e, size_t end) {
  if (e->n == e->cap) {
    size_t nc = e->cap ? e->cap * 2 : 64;
    uint32_t *v = realloc(e->v, nc * sizeof *v);
    if (!v) return REALM_E_NOMEM;
    e->v = v;
    e->cap = nc;
  }
  e->v[e->n++] = (uint32_t)end;
  return 0;
}

/* ---- gpt-2 ------------------------------------------------------------------------------- */

static int gpt2_split(const struct cps *c, size_t a, size_t b, struct ends *out) {
#define CLS(i) ((i) < b ? c->cl[i] : 0)
  size_t pos = a;
  int rc = 0;
  while (pos < b) {
    uint32_t cp = c->cp[pos];
    /* 's 't 're 've 'm 'll 'd (lower case only, as the GPT-2 regex has them) */
    if (cp == '\'' && pos + 1 < b) {
      uint32_t n1 = c->cp[pos + 1];
      if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
        pos += 2;
        if ((rc = ends_push(out, pos)) < 0) return rc;
        continue;
      }
      if (pos + 2 < b) {
        uint32_t n2 = c->cp[pos + 2];
        if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) {
          pos += 3;
          if ((rc = ends_push(out, pos)) < 0) return rc;
          continue;
        }
      }
    }
    /* An optional leading ' ' joins the run of the class of the character after it. */
    uint8_t f2 = cp == ' ' ? CLS(pos + 1) : c->cl[pos];
    uint8_t run = 0;
    if (f2 & CL_L)
      run = CL_L;
    else if (f2 & CL_N)
      run = CL_N;
    else if ((f2 & CL_VALID) && !(f2 & (CL_WS | CL_L | CL_N)))
      run = CL_VALID; /* [^\s\p{L}\p{N}] */
    if (run) {
      pos += cp == ' ';
      if (run == CL_VALID)
        while ((CLS(pos) & CL_VALID) && !(CLS(pos) & (CL_WS | CL_L | CL_N))) pos++;
      else
        while (CLS(pos) & run) pos++;
      if ((rc = ends_push(out, pos)) < 0) return rc;
      continue;
    }
    size_t nws = 0;
    while (CLS(pos + nws) & CL_WS) nws++;
    if (nws > 1 && pos + nws < b) {
      /* \s+(?!\S): leave the last space to prefix the word that follows */
      pos += nws - 1;
    } else if (nws > 0) {
      pos += nws;
    } else {
      pos++; /* cannot happen: every valid character is in one class above */
    }
    if ((rc = ends_push(out, pos)) < 0) return rc;
  }
  return 0;
#undef CLS
}

/* ---- deepseek-llm ------------------------------------------------------------------------ */

struct cp_range {
  uint32_t lo, hi;
};

/* \s?[...]+ letter class of llama.cpp's deepseek-llm regex: the cased letters (Lu, Ll, Lt) of
 * these blocks, written out as code point ranges. */
static const struct cp_range ds_letters[] = {
    {0x41, 0x5A},       {0x61, 0x7A},       {0xB5, 0xB5},       {0xC0, 0xD6},
    {0xD8, 0xF6},       {0xF8, 0x1BA},      {0x1BC, 0x1BF},     {0x1C4, 0x293},
    {0x295, 0x2AF},     {0x370, 0x373},     {0x376, 0x377},     {0x37B, 0x37D},
    {0x37F, 0x37F},     {0x386, 0x386},     {0x388, 0x38A},     {0x38C, 0x38C},
    {0x38E, 0x3A1},     {0x3A3, 0x3F5},     {0x3F7, 0x481},     {0x48A, 0x52F},
    {0x531, 0x556},     {0x10A0, 0x10C5},   {0x13A0, 0x13F5},   {0x13F8, 0x13FD},
    {0x1C90, 0x1CBA},   {0x1CBD, 0x1CBF},   {0x1D00, 0x1D2B},   {0x1D6B, 0x1D77},
    {0x1D79, 0x1D9A},   {0x1E00, 0x1F15},   {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},
    {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},   {0x1F59, 0x1F59},   {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},   {0x1FB6, 0x1FBC},
    {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},   {0x1FD0, 0x1FD3},
    {0x1FD6, 0x1FDB},   {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},   {0x1FF6, 0x1FFC},
    {0x2102, 0x2102},   {0x2107, 0x2107},   {0x210A, 0x2113},   {0x2115, 0x2115},
    {0x2119, 0x211D},   {0x2124, 0x2124},   {0x2126, 0x2126},   {0x2128, 0x2128},
    {0x212A, 0x212D},   {0x212F, 0x2134},   {0x2139, 0x2139},   {0x213C, 0x213F},
    {0x2145, 0x2149},   {0x214E, 0x214E},   {0x2183, 0x2184},   {0x2C00, 0x2C7B},
    {0x2C7E, 0x2CE4},   {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF3},   {0xA640, 0xA66D},
    {0xA680, 0xA69B},   {0xA722, 0xA76F},   {0xA771, 0xA787},   {0xA78B, 0xA78E},
    {0xAB70, 0xABBF},   {0xFB00, 0xFB06},   {0xFB13, 0xFB17},   {0xFF21, 0xFF3A},
    {0xFF41, 0xFF5A},   {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};

/* [!-/:-~！-／：-～‘-‟　-。]: ASCII punctuation (and, as written, ASCII letters), fullwidth
 * forms, curly quotes, ideographic comma and full stop. */
static const struct cp_range ds_punct[] = {
    {0x21, 0x2F}, {0x3A, 0x7E}, {0x2018, 0x201F}, {0x3000, 0x3002}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E},
};

/* [一-龥ࠀ-一가-퟿]: U+0800..U+9FA5 and the Hangul syllables block. */
static const struct cp_range ds_cjk[] = {{0x0800, 0x9FA5}, {0xAC00, 0xD7FF}};

static int in_ranges(uint32_t cp, const struct cp_range *r, size_t n) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (cp < r[mid].lo)
      hi = mid;
    else if (cp > r[mid].hi)
      lo = mid + 1;
    else
      return 1;
  }
  return 0;
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* llama.cpp runs these regexes with std::wregex over text in which every non-ASCII white
 * space has been replaced by U+000B, so a white-space code point never matches an explicit
 * range (U+3000 is in the punctuation class as written, yet never matches it). */
enum ds_class { DS_CRLF, DS_LETTER, DS_PUNCT, DS_CJK, DS_NUM };

static int ds_is(const struct cps *c, size_t i, enum ds_class k) {
  uint32_t cp = c->cp[i];
  if (k == DS_CRLF) return cp == '\r' || cp == '\n';
  if (c->cl[i] & CL_WS) return 0;
  switch (k) {
  case DS_LETTER: return in_ranges(cp, ds_letters, N_OF(ds_letters));
  case DS_PUNCT: return in_ranges(cp, ds_punct, N_OF(ds_punct));
  case DS_CJK: return in_ranges(cp, ds_cjk, N_OF(ds_cjk));
  case DS_NUM: return (c->cl[i] & CL_N) != 0;
  default: return 0;
  }
}

/* Length of the match of regex K starting exactly at I (0 = none), within [I, B). */
static size_t ds_match_at(const struct cps *c, size_t i, size_t b, enum ds_class k) {
  size_t j = i;
  if (k == DS_CRLF) return ds_is(c, i, k) ? 1 : 0;
  if (k == DS_LETTER || k == DS_PUNCT) {
    /* \s? then the class: the space is taken only when a class character follows it */
    if ((c->cl[i] & CL_WS) && i + 1 < b && ds_is(c, i + 1, k))
      j = i + 1;
    else if (!ds_is(c, i, k))
      return 0;
  } else if (!ds_is(c, i, k)) {
    return 0;
  }
  while (j < b && ds_is(c, j, k)) j++;
  return j - i;
}

/* Splits every piece of IN by one regex into OUT: matches and the gaps between them. */
static int ds_pass(const struct cps *c, const struct ends *in, int kind, struct ends *out) {
  int rc;
  out->n = 0;
  size_t a = 0;
  for (size_t p = 0; p < in->n; p++) {
    size_t b = in->v[p];
    if (kind < 0) {
      /* \s+$ : the trailing white-space run of the piece */
      size_t k = b;
      while (k > a && (c->cl[k - 1] & CL_WS)) k--;
      if (k > a && k < b && (rc = ends_push(out, k)) < 0) return rc;
      if ((rc = ends_push(out, b)) < 0) return rc;
      a = b;
      continue;
    }
    size_t i = a, gap = a;
    while (i < b) {
      size_t m = ds_match_at(c, i, b, (enum ds_class)kind);
      if (m == 0) {
        i++;
        continue;
      }
      if (i > gap && (rc = ends_push(out, i)) < 0) return rc;
      i += m;
      if ((rc = ends_push(out, i)) < 0) return rc;
      gap = i;
    }
    if (gap < b && (rc = ends_push(out, b)) < 0) return rc;
    a = b;
  }
  return 0;
}

static int deepseek_split(const struct cps *c, struct ends *out) {
  static const int passes[] = {DS_CRLF, DS_LETTER, DS_PUNCT, -1 /* \s+$ */, DS_CJK, DS_NUM};
  struct ends tmp = {0};
  int rc = ends_push(out, c->n);
  for (size_t p = 0; rc == 0 && p < N_OF(passes); p++) {
    rc = ds_pass(c, out, passes[p], &tmp);
    struct ends swap = *out;
    *out = tmp;
    tmp = swap;
  }
  free(tmp.v);
  return rc;
}

/* ---- merges ------------------------------------------------------------------------------ */

struct bpe_work {
  char *buf;           /* the piece in the GPT-2 alphabet */
  size_t buf_cap;
  struct tok_sym *sym; /* one symbol per input byte */
  size_t sym_cap;
  struct tok_heap heap;
};

static int bpe_try_pair(const struct tok *t, struct bpe_work *w, int32_t left) {
  if (left < 0) return 0;
  int32_t right = w->sym[left].next;
  if (right < 0) return 0;
  const struct tok_sym *l = &w->sym[left], *r = &w->sym[right];
  int32_t rank = tok_merge_rank(t, w->buf + l->off, l->len, w->buf + r->off, r->len);
  if (rank < 0) return 0;
  /* ranks are below 2^24, so the float priority is exact */
  struct tok_bigram b = {-(float)rank, (uint32_t)left, l->len + r->len};
  return tok_heap_push(&w->heap, b);
}

static int bpe_word(const struct tok *t, const unsigned char *s, size_t n, struct bpe_work *w,
                    struct tok_ids *out) {
  int rc;
  if (n == 0) return 0;
  if (w->buf_cap < 2 * n) {
    char *nb = realloc(w->buf, 2 * n);
    if (!nb) return REALM_E_NOMEM;
    w->buf = nb;
    w->buf_cap = 2 * n;
  }
  if (w->sym_cap < n) {
    struct tok_sym *ns = realloc(w->sym, n * sizeof *ns);
    if (!ns) return REALM_E_NOMEM;
    w->sym = ns;
    w->sym_cap = n;
  }
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    size_t l = tok_utf8_encode(t->bpe_byte_cp[s[i]], w->buf + o);
    w->sym[i].off = (uint32_t)o;
    w->sym[i].len = (uint32_t)l;
    w->sym[i].prev = (int32_t)i - 1;
    w->sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    o += l;
  }
  w->heap.n = 0;
  for (size_t i = 0; i + 1 < n; i++)
    if ((rc = bpe_try_pair(t, w, (int32_t)i)) < 0) return rc;
  while (w->heap.n > 0) {
    struct tok_bigram b = tok_heap_pop(&w->heap);
    int32_t left = (int32_t)b.left;
    int32_t right = w->sym[left].next;
    if (w->sym[left].len == 0 || right < 0 || w->sym[right].len == 0 ||
        w->sym[left].len + w->sym[right].len != b.size)
      continue; /* stale */
    w->sym[left].len += w->sym[right].len;
    w->sym[right].len = 0;
    w->sym[left].next = w->sym[right].next;
    if (w->sym[left].next >= 0) w->sym[w->sym[left].next].prev = left;
    if ((rc = bpe_try_pair(t, w, w->sym[left].prev)) < 0) return rc;
    if ((rc = bpe_try_pair(t, w, left)) < 0) return rc;
  }
  for (int32_t i = 0; i >= 0; i = w->sym[i].next) {
    const struct tok_sym *y = &w->sym[i];
    int32_t id = tok_lookup(t, w->buf + y->off, y->len);
    if (id >= 0) {
      if ((rc = tok_ids_push(out, id)) < 0) return rc;
      continue;
    }
    /* A merge produced a string the vocabulary lacks: emit its bytes one by one (llama.cpp
     * drops bytes whose single character is not a token; we fall back to <unk> instead). */
    for (size_t k = 0; k < y->len;) {
      size_t cl;
      uint32_t cp = tok_utf8_decode((const unsigned char *)w->buf + y->off + k, y->len - k, &cl);
      int byte = cp < TOK_BPE_CP_LIMIT ? t->bpe_cp_byte[cp] : -1;
      int32_t bid = byte >= 0 ? t->byte_token[byte] : -1;
      if (bid < 0) bid = t->unk_id;
      if (bid >= 0 && (rc = tok_ids_push(out, bid)) < 0) return rc;
      k += cl;
    }
  }
  return 0;
}

int tok_bpe_fragment(const struct tok *t, const char *s, size_t n, struct tok_ids *out) {
  int rc = 0;
  struct cps c = {0};
  struct ends ends = {0};
  struct bpe_work w = {0};
  c.cp = malloc(n * sizeof *c.cp);
  c.off = malloc((n + 1) * sizeof *c.off);
  c.cl = malloc(n ? n : 1);
  if (!c.cp || !c.off || !c.cl) {
    rc = REALM_E_NOMEM;
    goto out;
  }
  for (size_t i = 0; i < n;) {
    size_t l;
    uint32_t cp = tok_utf8_decode((const unsigned char *)s + i, n - i, &l);
    uint8_t cl = CL_VALID;
    if (tok_is_whitespace(cp)) {
      cl |= CL_WS;
    } else {
      enum tok_ucat u = tok_ucat_of(cp);
      if (u == TOK_UCAT_L) cl |= CL_L;
      if (u == TOK_UCAT_N) cl |= CL_N;
    }
    c.cp[c.n] = cp;
    c.off[c.n] = (uint32_t)i;
    c.cl[c.n] = cl;
    c.n++;
    i += l;
  }
  c.off[c.n] = (uint32_t)n;

  if (t->pre == TOK_PRE_DEEPSEEK_LLM)
    rc = deepseek_split(&c, &ends);
  else
    rc = gpt2_split(&c, 0, c.n, &ends);
  if (rc < 0) goto out;

  size_t a = 0;
  for (size_t k = 0; k < ends.n; k++) {
    size_t b = ends.v[k];
    rc = bpe_word(t, (const unsigned char *)s + c.off[a], c.off[b] - c.off[a], &w, out);
    if (rc < 0) goto out;
    a = b;
  }
out:
  free(c.cp);
  free(c.off);
  free(c.cl);
  free(ends.v);
  free(w.buf);
  free(w.sym);
  free(w.heap.v);
  return rc;
}
