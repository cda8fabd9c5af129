/*
 * tok_spm.c — SentencePiece-style BPE driven by token scores ("llama" vocabularies).
 *
 * The fragment's spaces become U+2581 ("▁"), optionally with one prepended, and the text is
 * cut into characters. Then, repeatedly, the adjacent pair whose concatenation is a token with
 * the highest score is merged (ties: the leftmost pair), until no adjacent pair forms a token.
 * Each final symbol is its token, or, when it is not in the vocabulary, one <0xNN> byte token
 * per byte. A max-heap of candidate pairs keeps this O(n log n); stale entries (a half has
 * since been merged elsewhere) are recognised by their recorded byte size and skipped.
 *
 * Characters are cut as well-formed UTF-8; a byte that does not start a well-formed sequence is
 * a symbol of its own and falls back to its <0xNN> token. (llama.cpp lets the lead byte alone
 * decide the length, so a stray 0xC3 before a space swallows half of the U+2581 escape and the
 * text decodes with a literal "▁"; cutting properly keeps invalid input lossless and is
 * identical on valid UTF-8.)
 */
#include <stdlib.h>
#include <string.h>

#include "realm/error.h"
#include "tok_internal.h"
#include "tok_unicode.h"

/* Queues the pair (LEFT, its next symbol) when their concatenation is a token. */
static int spm_try_pair(const struct tok *t, const char *buf, const struct tok_sym *sym,
                        int32_t left, struct tok_heap *heap) {
  if (left < 0) return 0;
  int32_t right = sym[left].next;
  if (right < 0) return 0;
  uint32_t size = sym[left].len + sym[right].len;
  int32_t id = tok_lookup(t, buf + sym[left].off, size);
  if (id < 0) return 0;
  struct tok_bigram b = {t->scores[id], (uint32_t)left, size};
  return tok_heap_push(heap, b);
}

int tok_spm_fragment(const struct tok *t, const char *s, size_t n, int space_prefix,
                     struct tok_ids *out) {
  int rc = 0;
  struct tok_heap heap = {0};
  struct tok_sym *sym = NULL;
  size_t n_spaces = 0;
  for (size_t i = 0; i < n; i++) n_spaces += s[i] == ' ';
  size_t blen = n + 2 * n_spaces + (space_prefix ? 3 : 0);
  char *buf = malloc(blen ? blen : 1);
  if (!buf) return REALM_E_NOMEM;
  size_t o = 0;
  if (space_prefix) {
    memcpy(buf, "\xe2\x96\x81", 3);
    o = 3;
  }
  for (size_t i = 0; i < n; i++) {
    if (s[i] == ' ') {
      memcpy(buf + o, "\xe2\x96\x81", 3);
      o += 3;
    } else {
      buf[o++] = s[i];
    }
  }

  sym = malloc(blen * sizeof *sym);
  if (!sym) {
    rc = REALM_E_NOMEM;
    goto out;
  }
  int32_t n_sym = 0;
  for (size_t i = 0; i < blen;) {
    size_t l;
    (void)tok_utf8_decode((const unsigned char *)buf + i, blen - i, &l);
    sym[n_sym].off = (uint32_t)i;
    sym[n_sym].len = (uint32_t)l;
    sym[n_sym].prev = n_sym - 1;
    sym[n_sym].next = (size_t)(i + l) < blen ? n_sym + 1 : -1;
    n_sym++;
    i += l;
  }

  for (int32_t i = 0; i + 1 < n_sym; i++)
    if ((rc = spm_try_pair(t, buf, sym, i, &heap)) < 0) goto out;

  while (heap.n > 0) {
    struct tok_bigram b = tok_heap_pop(&heap);
    int32_t left = (int32_t)b.left;
    int32_t right = sym[left].next;
    if (sym[left].len == 0 || right < 0 || sym[right].len == 0 ||
        sym[left].len + sym[right].len != b.size)
      continue; /* stale: one half changed since this pair was queued */
    sym[left].len += sym[right].len;
    sym[right].len = 0;
    sym[left].next = sym[right].next;
    if (sym[left].next >= 0) sym[sym[left].next].prev = left;
    if ((rc = spm_try_pair(t, buf, sym, sym[left].prev, &heap)) < 0) goto out;
    if ((rc = spm_try_pair(t, buf, sym, left, &heap)) < 0) goto out;
  }

  for (int32_t i = n_sym > 0 ? 0 : -1; i >= 0; i = sym[i].next) {
    int32_t id = tok_lookup(t, buf + sym[i].off, sym[i].len);
    if (id >= 0) {
      if ((rc = tok_ids_push(out, id)) < 0) goto out;
      continue;
    }
    /* Not a token: one <0xNN> per byte (llama.cpp's byte fallback); <unk> if the vocabulary
     * has no byte tokens. */
    for (uint32_t j = 0; j < sym[i].len; j++) {
      int32_t bid = t->byte_token[(unsigned char)buf[sym[i].off + j]];
      if (bid < 0) bid = t->unk_id;
      if (bid >= 0 && (rc = tok_ids_push(out, bid)) < 0) goto out;
    }
  }
out:
  free(buf);
  free(sym);
  free(heap.v);
  return rc;
}
