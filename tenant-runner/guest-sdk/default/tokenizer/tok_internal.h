/*
 * tok_internal.h — the tokenizer's state struct and the helpers its files share
 * (tokenizer.c: construction, lookups, special-token partition, decode; tok_spm.c: the
 * SentencePiece merge; tok_bpe.c: pre-tokenizers and rank merges). Not part of the API.
 */
#ifndef REALM_TOK_INTERNAL_H
#define REALM_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* BPE pre-tokenizers implemented by hand (see tok_bpe.c). */
enum tok_pre {
  TOK_PRE_NONE = 0,  /* SPM: no pre-tokenization */
  TOK_PRE_GPT2,      /* "gpt-2" */
  TOK_PRE_DEEPSEEK_LLM, /* "deepseek-llm" */
};

/* The GPT-2 byte alphabet uses code points below this (printable Latin-1 kept, the other 68
 * bytes moved to U+0100..U+0143). */
#define TOK_BPE_CP_LIMIT 0x144

/* A growable int32 array; the encode output buffer. */
struct tok_ids {
  int32_t *v;
  size_t n, cap;
};

struct tok {
  enum tok_model model;
  enum tok_pre pre;
  uint32_t n_tokens;
  int32_t bos_id, eos_id, unk_id; /* -1 when none */
  int add_space_prefix;           /* SPM only */

  char *arena;          /* token texts, then pieces, then merge texts, back to back */
  uint32_t *text_off;   /* (n_tokens) offset of the token's text in arena */
  uint32_t *text_len;   /* (n_tokens) */
  uint32_t *piece_off;  /* (n_tokens) offset of the decoded bytes in arena */
  uint32_t *piece_len;  /* (n_tokens) */
  float *scores;        /* (n_tokens) */
  uint8_t *types;       /* (n_tokens) enum tok_token_type */

  /* Token text -> id: open addressing, linear probing; slot holds id+1, 0 = empty. */
  uint32_t *tok_slots;
  uint32_t tok_mask;    /* capacity - 1 (capacity a power of two >= 2 * n_tokens) */

  /* BPE merge ranks: merge i splits its text at merge_split[i]; (left, right) -> rank i.
   * Same open-addressing scheme, slot holds rank+1. */
  uint32_t n_merges;
  uint32_t *merge_off;   /* (n_merges) offset of "left right" in arena */
  uint32_t *merge_len;   /* (n_merges) */
  uint32_t *merge_split; /* (n_merges) index of the separating space */
  uint32_t *merge_slots;
  uint32_t merge_mask;

  /* SPM: the <0xNN> token of each byte; BPE: the token of each byte's GPT-2 character.
   * -1 when the vocabulary lacks it. */
  int32_t byte_token[256];
  uint16_t bpe_byte_cp[256]; /* GPT-2 byte -> code point map (BPE) */
  int16_t bpe_cp_byte[TOK_BPE_CP_LIMIT]; /* and back; -1 for code points outside the alphabet */

  /* User-defined tokens are matched literally in the input before tokenization (llama.cpp
   * does this even with special-token parsing off). ud_first marks their first bytes;
   * ud_lens lists their distinct lengths so a scan can probe the hash table per length. */
  uint32_t n_user;
  uint8_t ud_first[32];  /* bitmap over the first byte */
  uint32_t *ud_lens;     /* distinct lengths, ascending */
  uint32_t n_ud_lens;
  uint32_t *ud_rank;     /* (n_tokens) order in which llama.cpp tries the token; 0 if not UD */
};

uint32_t tok_hash_bytes(const char *s, size_t n, uint32_t h);
#define TOK_HASH_SEED 2166136261u

/* Token id whose text is exactly S[0..N), or -1. */
int32_t tok_lookup(const struct tok *t, const char *s, size_t n);
/* Rank of merge (L, R), or -1. */
int32_t tok_merge_rank(const struct tok *t, const char *l, size_t ln, const char *r, size_t rn);

int tok_ids_push(struct tok_ids *a, int32_t id);

/* Tokenizes one raw fragment (no special tokens inside) and appends ids. Return 0 or
 * REALM_E_NOMEM. */
int tok_spm_fragment(const struct tok *t, const char *s, size_t n, int space_prefix,
                     struct tok_ids *out);
int tok_bpe_fragment(const struct tok *t, const char *s, size_t n, struct tok_ids *out);

/* BPE set-up: fills bpe_byte_cp; the token for each byte is looked up by tokenizer.c. */
void tok_bpe_init_byte_map(uint16_t map[256]);

/* A max-heap of candidate merges shared by SPM (priority = score) and BPE (priority =
 * -rank): the highest priority pops first, ties go to the leftmost pair, as llama.cpp does. */
struct tok_bigram {
  float prio;
  uint32_t left;  /* symbol index of the left half */
  uint32_t size;  /* bytes of left + right when queued; a mismatch marks it stale */
};
struct tok_heap {
  struct tok_bigram *v;
  size_t n, cap;
};
int tok_heap_push(struct tok_heap *h, struct tok_bigram b);
struct tok_bigram tok_heap_pop(struct tok_heap *h); /* h->n must be > 0 */

/* One symbol of the merge algorithms: a byte span of the working text in a linked list. */
struct tok_sym {
  uint32_t off, len; /* len 0 = merged into its left neighbour */
  int32_t prev, next; /* -1 at the ends */
};

#endif /* REALM_TOK_INTERNAL_H */
