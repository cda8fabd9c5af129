/*
 * tok_unicode.h — the little Unicode the tokenizers need: a UTF-8 decoder that never fails
 * (an invalid byte becomes a one-byte pseudo code point the caller can recognise), the general
 * category class of a code point (from a table generated at build time), and the White_Space
 * property. Internal to the tokenizer library.
 */
#ifndef REALM_TOK_UNICODE_H
#define REALM_TOK_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Major general category, as \p{X} uses it. Numbering shared with gen_unicode_table.py. */
enum tok_ucat {
  TOK_UCAT_OTHER = 0, /* unassigned, and the pseudo code point of an invalid byte */
  TOK_UCAT_L = 1,
  TOK_UCAT_N = 2,
  TOK_UCAT_P = 3,
  TOK_UCAT_S = 4,
  TOK_UCAT_M = 5,
  TOK_UCAT_Z = 6,
  TOK_UCAT_C = 7,
};

/* Code points above U+10FFFF never occur in valid text; an invalid byte B decodes to
 * TOK_CP_INVALID_BASE + B so that it is "other" for every class test yet distinct. */
#define TOK_CP_INVALID_BASE 0x110000u

/* Decodes one code point from S[0..N) (N >= 1) and stores its byte length (1..4) in *ret_len.
 * Follows llama.cpp's decoder (lead byte decides the length, continuation bytes must be
 * 10xxxxxx); a byte that does not start a well-formed sequence yields TOK_CP_INVALID_BASE+byte
 * with length 1. */
uint32_t tok_utf8_decode(const unsigned char *s, size_t n, size_t *ret_len);

/* Appends the UTF-8 encoding of CP (< 0x110000) to OUT; returns the byte count (1..4). */
size_t tok_utf8_encode(uint32_t cp, char *out);

enum tok_ucat tok_ucat_of(uint32_t cp);
int tok_is_whitespace(uint32_t cp); /* Unicode White_Space, as llama.cpp lists it */

/* Unicode version of the generated table (for docs and diagnostics). */
const char *tok_unicode_version(void);

#endif /* REALM_TOK_UNICODE_H */
