/*
 * runner_vocab.h — the model's vocabulary as the runner's guests see it.
 *
 * Guests tokenize and detokenize themselves (that is tenant logic), but the pieces, scores
 * and token kinds come from the model file. The runner reads them once at start-up from the
 * GGUF's tokenizer.ggml.* keys, copies them into private memory (so the file can be closed
 * before the jail) and answers the realm_token_piece / realm_token_info imports from it.
 *
 * The same load keeps what the ABI v1 additions serve: every scalar or string metadata key
 * rendered as the guest sees it (realm_model_meta; docs/guest-abi.md: strings as stored,
 * booleans true/false, integers in decimal, floats %.9g) and the BPE merges
 * (tokenizer.ggml.merges, realm_merge_count / realm_merge). Arrays other than the merges are
 * not metadata values. Everything is copied: nothing refers to the file after the load.
 */
#ifndef REALM_RUNNER_VOCAB_H
#define REALM_RUNNER_VOCAB_H

#include <stddef.h>
#include <stdint.h>

struct runner_vocab {
  uint32_t n_tokens;    /* ids 0 .. n_tokens-1 */
  uint32_t *offsets;    /* (n_tokens + 1) byte offsets into pieces */
  char *pieces;         /* all pieces back to back, not NUL-terminated */
  float *scores;        /* (n_tokens) SentencePiece scores, 0 when the file has none */
  int32_t *kinds;       /* (n_tokens) REALM_GUEST_TOKEN_* */
  uint32_t vocab_kind;  /* REALM_GUEST_VOCAB_SPM or _BPE */
  int32_t bos, eos;     /* -1 when the file names none */

  /* tokenizer.ggml.merges ("left right", rank = index); n_merges 0 when the file has none. */
  uint32_t n_merges;
  uint32_t *merge_offsets; /* (n_merges + 1) byte offsets into merges */
  char *merges;            /* all merges back to back, not NUL-terminated */

  /* Scalar and string metadata, rendered (see above); looked up by exact key. */
  uint32_t n_meta;
  struct runner_meta {
    char *key;   /* NUL-terminated GGUF key */
    char *value; /* (len) bytes, no NUL counted (one is stored after them) */
    uint32_t len;
  } *meta;
};

/* Loads the vocabulary of the GGUF at path. Errors: the GGUF reader's (BAD_MODEL naming the
 * field, IO), NOT_FOUND when the file has no tokenizer.ggml.tokens, NOMEM. */
int runner_vocab_load(const char *path, struct runner_vocab **ret_vocab, char *err,
                      size_t errlen);
void runner_vocab_free(struct runner_vocab *v); /* accepts NULL */

/* The rendered metadata value of key (host-owned, valid while v lives): REALM_GUEST_OK, or
 * REALM_GUEST_E_NOT_FOUND when the file has no such scalar or string key. */
int runner_vocab_meta(const struct runner_vocab *v, const char *key, const char **ret_value,
                      uint32_t *ret_len);
/* Merge i as "left right": REALM_GUEST_OK or REALM_GUEST_E_NOT_FOUND for i >= n_merges. */
int runner_vocab_merge(const struct runner_vocab *v, uint32_t i, const char **ret_merge,
                       uint32_t *ret_len);
/*
 * The display text of a token, for top-logprob alternatives (the guest sends only their ids):
 * SentencePiece pieces with U+2581 as a space and <0xHH> byte tokens as that byte; byte-level
 * BPE pieces mapped back through GPT-2's byte-to-unicode table (code points outside it are
 * kept as UTF-8). Control tokens keep their text. Writes at most cap bytes (a piece longer is
 * cut) and returns the length written; 0 for an unknown id.
 */
uint32_t runner_vocab_token_text(const struct runner_vocab *v, int32_t token, char *out,
                                 uint32_t cap);

#endif /* REALM_RUNNER_VOCAB_H */
