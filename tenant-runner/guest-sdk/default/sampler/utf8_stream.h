/*
 * utf8_stream.h — emit only whole UTF-8 characters from a stream of token bytes.
 *
 * A token's bytes are often part of a character (byte-fallback tokens such as <0xF0>, or BPE
 * merges that split an emoji), and a client that receives half a character in one SSE event
 * shows garbage. This buffer holds an incomplete sequence until it completes, and replaces
 * bytes that can never form a valid character with U+FFFD (EF BF BD), following the WHATWG
 * Encoding Standard / Unicode "maximal subpart" practice: each invalid byte, and each
 * truncated-but-so-far-valid sequence, becomes exactly one U+FFFD; overlong forms, surrogates
 * (ED A0..BF) and code points above U+10FFFF are invalid. Valid characters pass through as the
 * original bytes. At the end of generation, utf8_stream_flush turns a still-incomplete
 * sequence into one U+FFFD. The state is a small caller-owned struct: no allocation.
 */
#ifndef REALM_UTF8_STREAM_H
#define REALM_UTF8_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct utf8_stream {
  uint8_t pending[4];   /* bytes of the character being assembled */
  uint8_t n_pending;
  uint8_t bytes_needed; /* total continuation bytes the current lead byte asks for */
  uint8_t lower, upper; /* allowed range of the next continuation byte */
};

void utf8_stream_init(struct utf8_stream *u);

/* Output bytes utf8_stream_push may write for n input bytes (3 per byte, plus what is
 * pending). */
size_t utf8_stream_max_output(size_t n);

/* Feeds in[0..n); writes the complete characters now available to out and their length to
 * *ret_len. Returns REALM_E_INVALID_ARGUMENT, with nothing consumed, when out_cap <
 * utf8_stream_max_output(n). */
int utf8_stream_push(struct utf8_stream *u, const uint8_t *in, size_t n, uint8_t *out,
                     size_t out_cap, size_t *ret_len);

/* Ends the stream: an incomplete pending sequence becomes one U+FFFD (3 bytes; out_cap >= 3).
 * Returns the number of bytes written (0 or 3) and resets the state. */
size_t utf8_stream_flush(struct utf8_stream *u, uint8_t *out, size_t out_cap);

/* True when s[0..n) is entirely valid UTF-8 (same rules as the stream). */
bool utf8_is_valid(const uint8_t *s, size_t n);

#endif /* REALM_UTF8_STREAM_H */
