/*
 * guest_vocab.h — the default guest's tokenizer, built from the vocabulary the host exposes.
 *
 * ABI v1 gives a guest the vocabulary one token at a time (realm_vocab_size, realm_token_piece,
 * realm_token_info: text, score, kind), a few model facts (realm_model_info: n_vocab, bos, eos,
 * n_ctx, vocab_kind), the model's tokenizer metadata (realm_model_meta: pre-tokenizer name,
 * add_bos / add_space_prefix, unknown token, chat template) and the BPE merge list
 * (realm_merge_count, realm_merge). The last two are optional on the host side: what the host
 * does not give is replaced by llama.cpp's defaults, merges reconstructed from the vocabulary
 * and the GPT-2 pre-tokenizer (see guest_vocab.c and docs/default-guest.md).
 *
 * Building reads every token through the imports, so it is done once per instance and the
 * result is kept for all of the instance's requests (the vocabulary of an instance's model
 * never changes). Guest-only code: it calls host imports, so it compiles only for wasm32.
 */
#ifndef REALM_GUEST_VOCAB_H
#define REALM_GUEST_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "chat_template.h"
#include "realm_guest.h"
#include "tokenizer.h"

struct guest_vocab {
  struct tok *tok;
  struct realm_model_info info; /* as the host filled it (fields past struct_bytes are 0) */
  int32_t n_vocab;
  int add_bos;        /* prepend BOS to a plain prompt (SPM vocabularies with a BOS) */
  int32_t *control;   /* [n_control] CONTROL tokens with non-empty text, longest text first:
                         the tokens a chat template may spell ("<|im_start|>", "<s>") */
  size_t n_control;
  uint32_t n_merges;  /* BPE: merges in use */
  int merges_from_host; /* 1: the model's merges (realm_merge); 0: reconstructed */
  char pre[64];         /* BPE: pre-tokenizer in use ("gpt-2", "deepseek-llm") */
  int32_t unk;          /* unknown token, -1 when none */
  int has_model_template; /* the model's tokenizer.chat_template was recognised ... */
  enum chat_template_kind model_template; /* ... as this family */
};

/* Reads the vocabulary through the host imports and builds the tokenizer. Returns 0 and
 * *ret_vocab, or a negative realm error with a message (REALM_E_UNSUPPORTED for a vocabulary
 * kind the host does not declare, REALM_E_BAD_MODEL for inconsistent host answers,
 * REALM_E_NOMEM, or what tok_create returns). */
int guest_vocab_load(struct guest_vocab **ret_vocab, char *err, size_t errlen);
void guest_vocab_free(struct guest_vocab *v); /* accepts NULL */

/* Tokenizes text[0..len) into a malloc'ed array (*ret_ids, *ret_n; free it). BOS first when
 * add_bos and the vocabulary has one. With parse_special, occurrences of CONTROL token texts
 * become those tokens (for prompts rendered by a chat template, whose markers are control
 * tokens); without it they are tokenized as text, so a client cannot inject them. */
int guest_vocab_encode(const struct guest_vocab *v, const char *text, size_t len, int add_bos,
                       int parse_special, int32_t **ret_ids, size_t *ret_n, char *err,
                       size_t errlen);

#endif /* REALM_GUEST_VOCAB_H */
