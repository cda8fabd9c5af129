/*
 * echo_greedy.c — the smallest useful Realm guest (ABI v1): echoes the prompt text, feeds the
 * BOS token, then samples greedily (argmax) and emits each token's piece, stopping at EOS or
 * after max_tokens. It shows every part of the contract a real guest needs: the five exports,
 * the request blob, per-request state keyed by request id, the vocabulary imports, and the
 * finish reason (realm_finish) given before stopping.
 *
 * Build (see ../sdk/build-guest.sh):
 *   clang --target=wasm32-wasi --sysroot=/usr -O2 -nostartfiles -Wl,--no-entry \
 *         -I../include -o echo_greedy.wasm echo_greedy.c
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "realm_guest.h"

#define MAX_REQUESTS 64

struct request {
  uint32_t id;
  int used;
  uint32_t max_tokens;
  uint32_t produced;
};

static struct request g_reqs[MAX_REQUESTS];
static struct realm_model_info g_info;
static int g_have_info;

static struct request *find(uint32_t id) {
  for (int i = 0; i < MAX_REQUESTS; i++)
    if (g_reqs[i].used && g_reqs[i].id == id) return &g_reqs[i];
  return NULL;
}

REALM_GUEST_EXPORT(realm_abi_version) int32_t realm_abi_version(void) {
  return REALM_GUEST_ABI_VERSION;
}

REALM_GUEST_EXPORT(realm_alloc) uint32_t realm_alloc(uint32_t size) {
  return (uint32_t)(uintptr_t)malloc(size ? size : 1);
}

REALM_GUEST_EXPORT(realm_on_request_begin)
int32_t realm_on_request_begin(uint32_t req_id, const uint8_t *req, uint32_t req_len) {
  if (!g_have_info) {
    if (realm_model_info(&g_info, sizeof g_info) < 0) return REALM_GUEST_E_INTERNAL;
    g_have_info = 1;
  }
  struct request *r = NULL;
  for (int i = 0; i < MAX_REQUESTS && !r; i++)
    if (!g_reqs[i].used) r = &g_reqs[i];
  if (!r || realm_req_check(req, req_len) < 0) {
    free((void *)req);
    return REALM_GUEST_E_INVALID;
  }
  *r = (struct request){.id = req_id, .used = 1, .max_tokens = 16};
  uint32_t cur = REALM_REQ_HEADER_BYTES;
  struct realm_req_field f;
  while (realm_req_next(req, req_len, &cur, &f) == 1) {
    if (f.key == REALM_REQ_PROMPT)
      realm_emit_text(req_id, (const char *)f.value, f.len);
    else if (f.key == REALM_REQ_MAX_TOKENS && f.len == 4)
      memcpy(&r->max_tokens, f.value, 4);
  }
  free((void *)req); /* the host's copy of the request is ours to free */
  int32_t bos = g_info.bos >= 0 ? g_info.bos : 0;
  realm_feed_tokens(req_id, &bos, 1);
  return REALM_GUEST_OK;
}

REALM_GUEST_EXPORT(realm_on_logits)
int32_t realm_on_logits(uint32_t req_id, const float *logits, uint32_t n_vocab) {
  struct request *r = find(req_id);
  if (!r) return REALM_GUEST_E_INVALID;
  if (r->produced >= r->max_tokens || n_vocab == 0) {
    realm_finish(req_id, REALM_GUEST_FINISH_LENGTH);
    return REALM_GUEST_STOP;
  }
  uint32_t best = 0;
  for (uint32_t i = 1; i < n_vocab; i++)
    if (logits[i] > logits[best]) best = i;
  if ((int32_t)best == g_info.eos) {
    realm_finish(req_id, REALM_GUEST_FINISH_STOP);
    return REALM_GUEST_STOP;
  }
  char piece[256];
  int32_t n = realm_token_piece((int32_t)best, piece, sizeof piece);
  if (n >= 0 && (uint32_t)n <= sizeof piece)
    realm_emit_token(req_id, (int32_t)best, 0.0f, piece, (uint32_t)n);
  r->produced++;
  return (int32_t)best;
}

REALM_GUEST_EXPORT(realm_on_request_end) void realm_on_request_end(uint32_t req_id, int32_t status) {
  (void)status;
  struct request *r = find(req_id);
  if (r) r->used = 0;
}
