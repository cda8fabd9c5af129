/*
 * runner_vocab.h — the model's vocabulary as the runner's guests see it.
 *
 * Guests tokenize and detokenize themselves (that is tenant logic), but the pieces, scores
 * and token kinds come from the model file. The runner reads them once at start-up from the
 * GGUF's tokenizer.ggml.* keys, copies them into private memory (so the file can be closed
 * before the jail) and answers the realm_token_piece / realm_token_info imports from it.
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
};

/* Loads the vocabulary of the GGUF at path. Errors: the GGUF reader's (BAD_MODEL naming the
 * field, IO), NOT_FOUND when the file has no tokenizer.ggml.tokens, NOMEM. */
int runner_vocab_load(const char *path, struct runner_vocab **ret_vocab, char *err,
                      size_t errlen);
void runner_vocab_free(struct runner_vocab *v); /* accepts NULL */

#endif /* REALM_RUNNER_VOCAB_H */
