/*
 * utf8.h — UTF-8 checks at the gateway's edges: request bodies must be valid UTF-8 (checked
 * before JSON parsing so the error says so plainly), and token text from a backend may split a
 * multi-byte character across tokens, so outgoing text is released only in whole characters.
 */
#ifndef GW_UTF8_H
#define GW_UTF8_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* True when s[0..len) is well-formed UTF-8 (no overlongs, surrogates or values > U+10FFFF).
 * On false, *ret_offset (if given) is the byte offset of the first bad sequence. */
bool gw_utf8_valid(const char *s, size_t len, size_t *ret_offset);

/* Moves the longest run of whole characters from the front of pending (a carry buffer) into
 * out, replacing malformed sequences with U+FFFD. A trailing sequence that is merely
 * incomplete stays in pending unless final is true (then it becomes U+FFFD too).
 * Returns 0 or a buffer error. */
int gw_utf8_drain(struct gw_buf *pending, bool final, struct gw_buf *out);

#endif
