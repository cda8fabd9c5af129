/*
 * output_stream.h — from sampled tokens to the exact text a client receives.
 *
 * Puts the per-token rules of an OpenAI completion in one place, in this order:
 *   1. the token is counted;
 *   2. a stop token (EOS or a user-given id) ends generation with finish reason "stop"; its
 *      text is not emitted, but text held back earlier is (it was not part of a stop string);
 *   3. otherwise its bytes go through the UTF-8 stream (only whole characters, U+FFFD for
 *      invalid bytes) and then the stop-string matcher (text that might start a stop string is
 *      held back); a completed stop string ends generation with "stop" and is not emitted;
 *   4. after max_tokens tokens generation ends with "length" and everything held is flushed.
 * Concatenating every chunk returned by output_stream_push (and output_stream_end) gives the
 * final completion text exactly, and every chunk is valid UTF-8, so each can go into its own
 * SSE event.
 */
#ifndef REALM_OUTPUT_STREAM_H
#define REALM_OUTPUT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OUTPUT_MAX_STOP_TOKENS 64        /* EOS, end-of-turn and user-given ids together */
#define OUTPUT_MAX_PIECE_BYTES (64u << 10) /* one push; real token pieces are tens of bytes */

enum output_finish {
  OUTPUT_RUNNING = 0,
  OUTPUT_FINISH_STOP,   /* stop token or stop string */
  OUTPUT_FINISH_LENGTH, /* max_tokens reached, or ended by the caller (context full) */
};

struct output_stream_params {
  const char *const *stop;    /* stop strings (<= 4, 1..256 bytes of UTF-8 each) */
  size_t n_stop;
  const int32_t *stop_tokens; /* token ids that end generation, e.g. EOS and <|eot_id|> */
  size_t n_stop_tokens;
  int32_t n_vocab;            /* to validate stop_tokens */
  int32_t max_tokens;         /* 1 .. REALM_MAX_COMPLETION_TOKENS */
};

struct output_stream;

/* Validates the parameters (errors name the field and value) and allocates the stream. */
int output_stream_create(const struct output_stream_params *p, struct output_stream **ret_stream,
                         char *err, size_t errlen);

void output_stream_destroy(struct output_stream *o);

/* Pushes one sampled token and its piece bytes (as the tokenizer decodes it). On success
 * *ret_text and *ret_len hold the text to emit now (possibly empty; valid until the next call)
 * and *ret_finish says whether generation is over. Refused with REALM_E_INVALID_ARGUMENT once
 * finished or for a piece over OUTPUT_MAX_PIECE_BYTES. */
int output_stream_push(struct output_stream *o, int32_t token, const uint8_t *piece,
                       size_t n_piece, const char **ret_text, size_t *ret_len,
                       enum output_finish *ret_finish, char *err, size_t errlen);

/* Ends a still-running stream for a reason outside the stream (the context window is full,
 * reported as "length"): flushes held text. A no-op returning empty text when already
 * finished. */
int output_stream_end(struct output_stream *o, const char **ret_text, size_t *ret_len,
                      enum output_finish *ret_finish);

/* "stop", "length", or NULL while running: the OpenAI finish_reason string. */
const char *output_finish_name(enum output_finish f);

/* Tokens pushed so far (completion_tokens for usage; a stop token counts). */
int32_t output_stream_n_tokens(const struct output_stream *o);
/* Index of the stop string that ended generation, or -1. */
int output_stream_matched_stop(const struct output_stream *o);
/* The stop token that ended generation, or -1. */
int32_t output_stream_stop_token(const struct output_stream *o);

#endif /* REALM_OUTPUT_STREAM_H */
