/*
 * fuzz_guest_request.c — libFuzzer target for the request blob ("RLRQ") decoding of the guest
 * ABI: the iterator in realm_guest.h (realm_req_check / realm_req_next, which every guest
 * compiles in) and the default guest's decoder guest_request_decode()
 * (tenant-runner/guest-sdk/default/guest/guest_request.c).
 *
 * The runner builds the blob from a request the gateway already validated, but the decoder is
 * the guest's first contact with request data and the iterator is public SDK code that tenants
 * copy into their own guests, so both must be safe on any bytes. Oracles beyond the sanitizers:
 *   - the iterator ends (0) or fails (E_INVALID), never loops: the cursor strictly advances
 *     and stays within the blob; every field value lies inside the blob;
 *   - guest_request_decode returns 0 or a documented error with a message; on success every
 *     copied string is NUL-terminated and within the blob's length, counts within the limits;
 *   - re-encoding the decoded request with the SDK's builder and decoding it again gives the
 *     same request (the builder and the decoder agree on the format).
 * The full wasm path (a guest instance behind the sandbox's bounds-checked imports) costs
 * milliseconds per call and is not fuzzed here; see docs/fuzzing.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest_request.h"
#include "realm/error.h"
#include "realm_guest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond, what)                                                       \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      fprintf(stderr, "fuzz_guest_request: invariant broken: %s (%s:%d)\n", what,     \
              __FILE__, __LINE__);                                                    \
      abort();                                                                        \
    }                                                                                 \
  } while (0)

static void check_iterator(const uint8_t *blob, uint32_t len) {
  int32_t n = realm_req_check(blob, len);
  if (n < 0) return;
  uint32_t cursor = REALM_REQ_HEADER_BYTES;
  struct realm_req_field f;
  for (;;) {
    uint32_t before = cursor;
    int r = realm_req_next(blob, len, &cursor, &f);
    if (r <= 0) {
      FUZZ_ASSERT(r == 0 || r == REALM_GUEST_E_INVALID, "iterator returned an unknown code");
      FUZZ_ASSERT(r != 0 || cursor == len, "iterator ended before the end of the blob");
      return;
    }
    FUZZ_ASSERT(cursor > before && cursor <= len, "iterator cursor did not advance within bounds");
    FUZZ_ASSERT(f.value >= blob + before + 8 && f.value + f.len <= blob + len,
                "field value outside the blob");
    volatile uint8_t sink = 0;
    for (uint32_t i = 0; i < f.len; i++) sink ^= f.value[i];
    (void)sink;
  }
}

static void check_str(const char *s, uint32_t len, const char *what) {
  FUZZ_ASSERT(s != NULL, what);
  FUZZ_ASSERT(strnlen(s, (size_t)len + 1) <= len, what);
}

/* Builds the blob that carries R (the fields guest_request_decode understands). */
static uint8_t *encode(const struct guest_request *r, uint32_t cap, uint32_t *ret_len) {
  uint8_t *buf = malloc(cap);
  FUZZ_ASSERT(buf != NULL, "malloc");
  uint32_t len = 0;
  FUZZ_ASSERT(realm_req_begin(buf, cap, &len) == 0, "begin");
#define ADD(key, ptr, n) FUZZ_ASSERT(realm_req_add(buf, cap, &len, key, ptr, n) == 0, "add")
  if (r->prompt) ADD(REALM_REQ_PROMPT, r->prompt, (uint32_t)r->prompt_len);
  for (size_t i = 0; i < r->n_messages; i++) {
    size_t rl = strlen(r->messages[i].role), cl = strlen(r->messages[i].content);
    char *m = malloc(rl + 1 + cl + 1);
    FUZZ_ASSERT(m != NULL, "malloc");
    memcpy(m, r->messages[i].role, rl + 1);
    memcpy(m + rl + 1, r->messages[i].content, cl);
    ADD(REALM_REQ_MESSAGE, m, (uint32_t)(rl + 1 + cl));
    free(m);
  }
  if (r->chat_template)
    ADD(GUEST_REQ_CHAT_TEMPLATE, r->chat_template, (uint32_t)strlen(r->chat_template));
  for (size_t i = 0; i < r->n_stop; i++) ADD(REALM_REQ_STOP, r->stop[i], (uint32_t)strlen(r->stop[i]));
  for (size_t i = 0; i < r->n_stop_tokens; i++) {
    uint8_t v[4];
    realm_req_put_u32_(v, (uint32_t)r->stop_tokens[i]);
    ADD(REALM_REQ_STOP_TOKEN, v, 4);
  }
  uint8_t v[8];
  if (r->has_max_tokens) {
    realm_req_put_u32_(v, r->max_tokens);
    ADD(REALM_REQ_MAX_TOKENS, v, 4);
  }
  if (r->has_seed) {
    realm_req_put_u32_(v, (uint32_t)r->seed);
    realm_req_put_u32_(v + 4, (uint32_t)(r->seed >> 32));
    ADD(REALM_REQ_SEED, v, 8);
  }
#undef ADD
  *ret_len = len;
  return buf;
}

static int same_request(const struct guest_request *a, const struct guest_request *b) {
  if ((a->prompt == NULL) != (b->prompt == NULL)) return 0;
  if (a->prompt && (a->prompt_len != b->prompt_len || memcmp(a->prompt, b->prompt, a->prompt_len)))
    return 0;
  if (a->n_messages != b->n_messages || a->n_stop != b->n_stop ||
      a->n_stop_tokens != b->n_stop_tokens)
    return 0;
  for (size_t i = 0; i < a->n_messages; i++)
    if (strcmp(a->messages[i].role, b->messages[i].role) ||
        strcmp(a->messages[i].content, b->messages[i].content))
      return 0;
  for (size_t i = 0; i < a->n_stop; i++)
    if (strcmp(a->stop[i], b->stop[i])) return 0;
  for (size_t i = 0; i < a->n_stop_tokens; i++)
    if (a->stop_tokens[i] != b->stop_tokens[i]) return 0;
  if ((a->chat_template == NULL) != (b->chat_template == NULL)) return 0;
  if (a->chat_template && strcmp(a->chat_template, b->chat_template)) return 0;
  return a->has_max_tokens == b->has_max_tokens && (!a->has_max_tokens || a->max_tokens == b->max_tokens) &&
         a->has_seed == b->has_seed && (!a->has_seed || a->seed == b->seed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > UINT32_MAX) return 0;
  uint32_t len = (uint32_t)size;
  /* Exact-size copy so that ASan sees a read one byte past the blob. */
  uint8_t *blob = malloc(size ? size : 1);
  FUZZ_ASSERT(blob != NULL, "malloc");
  if (size) memcpy(blob, data, size);
  check_iterator(blob, len);

  struct guest_request r;
  char err[256];
  err[0] = '\0';
  int rc = guest_request_decode(blob, len, &r, err, sizeof err);
  if (rc < 0) {
    FUZZ_ASSERT(rc == REALM_E_INVALID_ARGUMENT || rc == REALM_E_TOO_LARGE,
                "unexpected error code (NOMEM cannot be genuine for inputs of a few KiB)");
    FUZZ_ASSERT(err[0] != '\0', "failure without a message");
    guest_request_free(&r);
    free(blob);
    return 0;
  }
  FUZZ_ASSERT(!(r.prompt && r.n_messages), "both a prompt and messages accepted");
  if (r.prompt) {
    /* guest_request.h says a string with an embedded NUL is refused, but the decoder checks
     * only stop strings and message content: a prompt (and a chat template) may carry NULs
     * (reported; the prompt is used with prompt_len, so nothing is lost). Only what holds
     * either way is asserted here: the copy is prompt_len bytes plus a terminator. */
    FUZZ_ASSERT(r.prompt_len <= len && r.prompt[r.prompt_len] == '\0', "prompt copy");
  }
  FUZZ_ASSERT(r.n_messages <= GUEST_MAX_MESSAGES, "too many messages accepted");
  for (size_t i = 0; i < r.n_messages; i++) {
    check_str(r.messages[i].role, len, "message role");
    check_str(r.messages[i].content, len, "message content");
  }
  FUZZ_ASSERT(r.n_stop <= REALM_MAX_STOP_SEQUENCES, "too many stop strings accepted");
  for (size_t i = 0; i < r.n_stop; i++) check_str(r.stop[i], len, "stop string");
  FUZZ_ASSERT(r.n_stop_tokens <= GUEST_MAX_STOP_TOKENS, "too many stop tokens accepted");
  if (r.chat_template) check_str(r.chat_template, len, "chat template");

  /* Re-encode what was understood and decode it again: the builder and the decoder agree. */
  uint32_t cap = len + 64 + 16 * (uint32_t)(r.n_messages + r.n_stop + r.n_stop_tokens);
  uint32_t elen = 0;
  uint8_t *again = encode(&r, cap, &elen);
  struct guest_request r2;
  rc = guest_request_decode(again, elen, &r2, err, sizeof err);
  if (rc < 0) fprintf(stderr, "fuzz_guest_request: re-decode: %s\n", err);
  FUZZ_ASSERT(rc == 0, "a re-encoded request does not decode");
  FUZZ_ASSERT(same_request(&r, &r2), "decode(encode(decode(x))) != decode(x)");
  guest_request_free(&r2);
  free(again);
  guest_request_free(&r);
  free(blob);
  return 0;
}
