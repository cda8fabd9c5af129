/*
 * stop.h — streaming detection of stop strings across token boundaries.
 *
 * A stop string such as "\nUser:" usually arrives spread over several tokens. The matcher
 * sees the generated text as a stream of chunks and releases text as soon as it can no longer
 * be the start of a stop string; it holds back the longest tail that still could be. When a
 * stop string completes, everything before it is released, the stop string and anything after
 * it are dropped, and the matcher reports the stop. The result does not depend on how the
 * text was cut into chunks.
 *
 * Which match wins: the first stop string to COMPLETE in the byte stream; if several complete
 * at the same byte, the longest (it starts earliest). Example: stops {"abcd", "bc"} on "abcd"
 * stop at "bc", releasing "a".
 *
 * Each pattern runs a Knuth-Morris-Pratt automaton, so a byte costs O(number of stops)
 * amortized and overlapping prefixes ("aab" inside "aaab") are found. The state is a
 * caller-owned struct of about 4 KiB; no allocation.
 */
#ifndef REALM_STOP_H
#define REALM_STOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "realm/limits.h"

#define STOP_MAX_STRINGS REALM_MAX_STOP_SEQUENCES     /* 4, as OpenAI */
#define STOP_MAX_BYTES REALM_MAX_STOP_SEQUENCE_BYTES  /* 256 */

struct stop_matcher {
  size_t n_stops;
  uint8_t pattern[STOP_MAX_STRINGS][STOP_MAX_BYTES];
  uint16_t len[STOP_MAX_STRINGS];
  uint16_t fail[STOP_MAX_STRINGS][STOP_MAX_BYTES]; /* KMP: longest proper border of pattern[0..i] */
  uint16_t state[STOP_MAX_STRINGS];                /* bytes of pattern matched by the text's tail */
  uint8_t held[STOP_MAX_BYTES];                    /* text not yet released (< STOP_MAX_BYTES) */
  size_t n_held;
  int matched; /* index of the stop string that matched, -1 while none */
};

/* Sets up the matcher for stops[0..n_stops) (NUL-terminated UTF-8, 1..256 bytes each, at most
 * 4). Returns REALM_E_INVALID_ARGUMENT naming the offending stop[i] otherwise. */
int stop_matcher_init(struct stop_matcher *m, const char *const *stops, size_t n_stops,
                      char *err, size_t errlen);

/* Bytes stop_matcher_push may write for n input bytes. */
size_t stop_matcher_max_output(const struct stop_matcher *m, size_t n);

/* Feeds text[0..n). Writes the text that is now final to out and its length to *ret_len.
 * Returns 1 when a stop string matched (then *ret_len covers exactly the text before it and
 * later calls are refused), 0 otherwise, REALM_E_INVALID_ARGUMENT when out_cap is below
 * stop_matcher_max_output or the matcher already stopped. */
int stop_matcher_push(struct stop_matcher *m, const uint8_t *text, size_t n, uint8_t *out,
                      size_t out_cap, size_t *ret_len);

/* Releases the held-back tail at the end of generation (no stop string matched). out_cap must
 * be at least STOP_MAX_BYTES. Returns the number of bytes written. */
size_t stop_matcher_flush(struct stop_matcher *m, uint8_t *out, size_t out_cap);

#endif /* REALM_STOP_H */
