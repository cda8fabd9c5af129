/*
 * tokenizer.h — the default guest's tokenizers: SentencePiece-style BPE with scores ("llama"
 * vocabularies) and GPT-2 byte-level BPE ("gpt2" vocabularies with a named pre-tokenizer),
 * built from a GGUF vocabulary that the caller hands in as plain arrays.
 *
 * The code is portable C11 over libc only (malloc, string.h, snprintf): it is compiled natively
 * for tests and to wasm32-wasi for the tenant's sandboxed guest. It keeps no global mutable
 * state: everything lives in the struct tok built by tok_create(), which is read-only afterwards,
 * so one tokenizer may serve any number of encode calls. The output matches llama.cpp's
 * tokenizer with special-token parsing off (see docs/tokenizers.md for every deliberate
 * difference).
 *
 *   struct tok *t;
 *   if (tok_create(&desc, &t, err, sizeof err) < 0) ...;
 *   size_t n;
 *   tok_encode(t, text, len, 1, NULL, 0, &n);     // size query
 *   tok_encode(t, text, len, 1, ids, n, &n);      // the ids
 *   const char *p = tok_piece(t, ids[0], &plen);  // bytes the token stands for
 *   tok_destroy(t);
 *
 * Errors are negative realm error codes (realm/error.h); the message buffer names the field.
 */
#ifndef REALM_TOKENIZER_H
#define REALM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

/* Bounds on what a caller may hand in; checked by tok_create() and tok_encode(). The text limit
 * (the gateway's body limit) bounds one encode call's scratch memory, at worst about 55 bytes
 * per input byte (SPM: symbol list plus candidate heap). */
#define TOK_MAX_VOCAB (1u << 20)          /* tokens (same as REALM_MAX_VOCAB) */
#define TOK_MAX_MERGES (1u << 24)         /* BPE merges (GGUF array limit) */
#define TOK_MAX_TOKEN_BYTES 65536u        /* one token's or merge's text */
#define TOK_MAX_TEXT_BYTES (4u << 20)     /* one tok_encode() input */

/* tokenizer.ggml.model: "llama" -> SPM, "gpt2" -> BPE. */
enum tok_model {
  TOK_MODEL_SPM = 1,
  TOK_MODEL_BPE = 2,
};

/* tokenizer.ggml.token_type values, as llama.cpp numbers them. */
enum tok_token_type {
  TOK_TYPE_UNDEFINED = 0,
  TOK_TYPE_NORMAL = 1,
  TOK_TYPE_UNKNOWN = 2,
  TOK_TYPE_CONTROL = 3,
  TOK_TYPE_USER_DEFINED = 4,
  TOK_TYPE_UNUSED = 5,
  TOK_TYPE_BYTE = 6,
};

/* A byte string that is not NUL-terminated. */
struct tok_bytes {
  const char *data;
  uint32_t len;
};

/* Everything tok_create() needs; all arrays are copied, so they may be freed afterwards. */
struct tok_desc {
  enum tok_model model;
  const char *pre;               /* tokenizer.ggml.pre (NUL-terminated). BPE: "gpt-2" or
                                    "deepseek-llm"; SPM: ignored. NULL means "default". */
  uint32_t n_tokens;             /* tokenizer.ggml.tokens count, 1..TOK_MAX_VOCAB */
  const struct tok_bytes *tokens;/* (n_tokens) token texts as stored in the GGUF file */
  const float *scores;           /* (n_tokens) or NULL (all 0); SPM merges by these */
  const int32_t *types;          /* (n_tokens) enum tok_token_type, or NULL (see docs) */
  uint32_t n_merges;             /* tokenizer.ggml.merges count (BPE only; 0 for SPM) */
  const struct tok_bytes *merges;/* (n_merges) "left right", in rank order */
  int32_t bos_id;                /* -1 when the vocabulary has none */
  int32_t eos_id;                /* -1 when none */
  int32_t unk_id;                /* -1 when none */
  int add_space_prefix;          /* SPM: prepend one space (U+2581) to the text; llama default 1 */
};

struct tok; /* opaque, read-only after tok_create() */

/* Validates DESC and builds the tokenizer (hash tables for token texts and merge ranks).
 * Returns 0 and stores it in *ret_tok, or a negative realm error (REALM_E_INVALID_ARGUMENT,
 * REALM_E_UNSUPPORTED, REALM_E_TOO_LARGE, REALM_E_NOMEM) with a message in err. */
int tok_create(const struct tok_desc *desc, struct tok **ret_tok, char *err, size_t errlen);
void tok_destroy(struct tok *t); /* accepts NULL */

/* Encodes LEN bytes of TEXT (any bytes; invalid UTF-8 is carried by byte tokens) into token
 * ids, BOS first when ADD_BOS and the vocabulary has one. Special/control token texts in the
 * input are NOT parsed as special tokens; user-defined tokens are matched literally (as
 * llama.cpp does).
 * Size query: IDS == NULL and CAP == 0 -> returns 0 with the count in *ret_n.
 * Otherwise returns 0 and the count in *ret_n, or REALM_E_TOO_LARGE when CAP is smaller than
 * the count (or LEN exceeds TOK_MAX_TEXT_BYTES), REALM_E_NOMEM, REALM_E_INVALID_ARGUMENT;
 * *ret_n is untouched on failure. */
int tok_encode(const struct tok *t, const char *text, size_t len, int add_bos, int32_t *ids,
               size_t cap, size_t *ret_n);

/* The raw bytes token ID decodes to (SPM: U+2581 -> ' ', <0xNN> -> byte; BPE: GPT-2 byte
 * alphabet reversed; user-defined: the text itself; control/unused: empty). The pointer lives
 * as long as T and is NOT NUL-terminated. Returns NULL for an id out of range. */
const char *tok_piece(const struct tok *t, int32_t id, size_t *ret_len);

/* Concatenates the pieces of N ids into OUT (CAP bytes, not NUL-terminated). Size query with
 * OUT == NULL and CAP == 0. Returns 0 and the byte count in *ret_len, REALM_E_OUT_OF_RANGE for
 * an id out of range, REALM_E_TOO_LARGE when CAP is too small. */
int tok_decode(const struct tok *t, const int32_t *ids, size_t n, char *out, size_t cap,
               size_t *ret_len);

/* Vocabulary facts for the guest (stop tokens, logits size). Out-of-range ids give -1 / NULL. */
uint32_t tok_n_tokens(const struct tok *t);
int32_t tok_bos_id(const struct tok *t);
int32_t tok_eos_id(const struct tok *t);
int tok_token_type(const struct tok *t, int32_t id);
/* The token's text as stored in the vocabulary (e.g. "<s>", "\xc4\xa0the"); NULL when out of
 * range. */
const char *tok_token_text(const struct tok *t, int32_t id, size_t *ret_len);
/* Looks a token up by its exact vocabulary text; -1 when absent. */
int32_t tok_find_token(const struct tok *t, const char *text, size_t len);

#endif /* REALM_TOKENIZER_H */
