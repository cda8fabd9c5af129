/*
 * tok_unicode.c — UTF-8 decoding, general-category lookup and White_Space for the tokenizers.
 *
 * The category table (tok_unicode_table.inc) is generated at build time by gen_unicode_table.py
 * from python3's unicodedata; it is a sorted list of (range start << 8 | class) entries, so a
 * lookup is one binary search over a few thousand words. Nothing here allocates or keeps state.
 */
#include "tok_unicode.h"

#include "tok_unicode_table.inc"

uint32_t tok_utf8_decode(const unsigned char *s, size_t n, size_t *ret_len) {
  unsigned char b = s[0];
  size_t need;
  uint32_t cp;
  /* Same acceptance rule as llama.cpp's unicode_cpt_from_utf8 (lead byte gives the length,
   * each following byte must be a continuation byte; overlong forms are not rejected), so that
   * pre-tokenizer boundaries agree with the reference on any input. */
  if (b < 0x80) {
    *ret_len = 1;
    return b;
  } else if ((b & 0x40) == 0) {
    goto invalid; /* stray continuation byte */
  } else if ((b & 0x20) == 0) {
    need = 2;
    cp = b & 0x1fu;
  } else if ((b & 0x10) == 0) {
    need = 3;
    cp = b & 0x0fu;
  } else if ((b & 0x08) == 0) {
    need = 4;
    cp = b & 0x07u;
  } else {
    goto invalid;
  }
  if (need > n) goto invalid;
  for (size_t i = 1; i < need; i++) {
    if ((s[i] & 0xc0) != 0x80) goto invalid;
    cp = (cp << 6) | (s[i] & 0x3fu);
  }
  if (cp >= 0x110000u) goto invalid; /* F4 90.. and above: not a code point */
  *ret_len = need;
  return cp;
invalid:
  *ret_len = 1;
  return TOK_CP_INVALID_BASE + b;
}

size_t tok_utf8_encode(uint32_t cp, char *out) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xe0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
  }
  out[0] = (char)(0xf0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
  out[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

enum tok_ucat tok_ucat_of(uint32_t cp) {
  if (cp >= 0x110000u) return TOK_UCAT_OTHER;
  /* Largest entry whose start <= cp; entry 0 starts at U+0000. */
  size_t lo = 0, hi = sizeof tok_ucat_table / sizeof tok_ucat_table[0];
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if ((tok_ucat_table[mid] >> 8) <= cp)
      lo = mid;
    else
      hi = mid;
  }
  return (enum tok_ucat)(tok_ucat_table[lo] & 0xffu);
}

int tok_is_whitespace(uint32_t cp) {
  /* The Unicode White_Space property (PropList.txt); llama.cpp uses this exact set for \s. */
  if (cp >= 0x09 && cp <= 0x0d) return 1;
  if (cp < 0x80) return cp == 0x20;
  switch (cp) {
  case 0x85: case 0xa0: case 0x1680: case 0x2028: case 0x2029: case 0x202f: case 0x205f:
  case 0x3000:
    return 1;
  default:
    return cp >= 0x2000 && cp <= 0x200a;
  }
}

const char *tok_unicode_version(void) { return TOK_UNICODE_VERSION; }
