/*
 * sandbox_imports.c — the host side of the guest ABI: every function a guest may import from
 * module "realm" (declared for guests in realm_guest.h).
 *
 * wasm2c resolves an import 'realm'.'NAME' to the C symbol Z_realmZ_NAME taking the instance's
 * import context first; we pass our struct sandbox_instance as that context, so each import
 * knows its instance, limits and host table. The executables that load modules export these
 * symbols dynamically (meson.build adds --export-dynamic-symbol through sandbox_dep).
 *
 * Every import: (1) leaves guest mode (sandbox_host_enter) so the deadline never unwinds
 * through host code; (2) checks every pointer+length against the guest's CURRENT memory size in
 * 64-bit arithmetic (a bad range fails the call naming the import and the range: a guest bug,
 * never a host crash); (3) calls the optional host callback; (4) re-enters guest mode
 * (sandbox_host_leave), which unwinds if the deadline passed meanwhile. Guest memory is
 * re-derived from inst->memory at each use because memory.grow may move it.
 *
 * The imports at the end of the file (model_meta, merge_count, merge, emit_top_logprobs,
 * finish) were added to ABI v1 later; their host callbacks are appended to struct
 * sandbox_host, so a host written before them (fields zero) gets the documented defaults.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "realm/error.h"
#include "sandbox_internal.h"

#define LOG_MAX_BYTES 1024u
#define PIECE_MAX_BYTES 4096u

/* Returns the host address of guest range [ptr, ptr+len) or fails the call. */
static uint8_t *guest_range(struct sandbox_instance *inst, const char *import, const char *what,
                            uint32_t ptr, uint64_t len) {
  uint64_t size = inst->memory && inst->memory->data ? inst->memory->size : 0;
  if ((uint64_t)ptr > size || len > size - ptr)
    sandbox_import_fail(inst, REALM_E_GUEST_TRAP,
                        "bad pointer passed to realm_%s: %s range [0x%x, 0x%llx) is outside guest "
                        "memory of %llu bytes",
                        import, what, ptr, (unsigned long long)ptr + len,
                        (unsigned long long)size);
  /* An empty range of an empty memory: give callers a valid address to copy 0 bytes to. */
  static uint8_t empty[1];
  if (size == 0) return empty;
  return inst->memory->data + ptr;
}

static struct sandbox_request *active_request(struct sandbox_instance *inst, const char *import,
                                              uint32_t req_id) {
  for (uint32_t i = 0; i < inst->n_reqs; i++)
    if (inst->reqs[i].id == req_id) return &inst->reqs[i];
  sandbox_import_fail(inst, REALM_E_GUEST_TRAP, "realm_%s: request id %u is not active", import,
                      req_id);
}

/* Counts len output bytes against the request's cap; fails the call when over. */
static void charge_output(struct sandbox_instance *inst, const char *import,
                          struct sandbox_request *r, uint32_t len) {
  if (r->output_bytes + len > inst->limits.output_bytes)
    sandbox_import_fail(inst, REALM_E_TOO_LARGE,
                        "output cap exceeded: realm_%s would bring request %u to %llu bytes, cap "
                        "is %llu bytes",
                        import, r->id, (unsigned long long)(r->output_bytes + len),
                        (unsigned long long)inst->limits.output_bytes);
  r->output_bytes += len;
}

static int fetch_model_info(struct sandbox_instance *inst, struct realm_model_info *info) {
  memset(info, 0, sizeof *info);
  info->bos = info->eos = -1;
  if (!inst->host || !inst->host->model_info) return REALM_GUEST_E_UNSUPPORTED;
  int rc = inst->host->model_info(inst->host->user, info);
  info->struct_bytes = (uint32_t)sizeof *info;
  info->arch[sizeof info->arch - 1] = '\0';
  return rc;
}

uint32_t Z_realmZ_model_info(struct sandbox_instance *inst, uint32_t out, uint32_t cap) {
  int prev = sandbox_host_enter();
  guest_range(inst, "model_info", "out", out, cap);
  struct realm_model_info info;
  int rc = fetch_model_info(inst, &info);
  if (rc >= 0) {
    uint32_t n = cap < sizeof info ? cap : (uint32_t)sizeof info;
    memcpy(guest_range(inst, "model_info", "out", out, n), &info, n);
    rc = (int)n;
  }
  sandbox_host_leave(prev);
  return (uint32_t)rc;
}

uint32_t Z_realmZ_vocab_size(struct sandbox_instance *inst) {
  int prev = sandbox_host_enter();
  struct realm_model_info info;
  int rc = fetch_model_info(inst, &info);
  sandbox_host_leave(prev);
  return (uint32_t)(rc < 0 ? rc : (int)info.n_vocab);
}

uint32_t Z_realmZ_token_piece(struct sandbox_instance *inst, uint32_t token, uint32_t buf,
                              uint32_t cap) {
  int prev = sandbox_host_enter();
  guest_range(inst, "token_piece", "buf", buf, cap);
  int rc = REALM_GUEST_E_UNSUPPORTED;
  if (inst->host && inst->host->token_piece) {
    const char *piece = NULL;
    uint32_t len = 0;
    rc = inst->host->token_piece(inst->host->user, (int32_t)token, &piece, &len);
    if (rc >= 0) {
      if (len > PIECE_MAX_BYTES || (!piece && len)) {
        rc = REALM_GUEST_E_INTERNAL;
      } else {
        if (len <= cap && len) memcpy(guest_range(inst, "token_piece", "buf", buf, len), piece, len);
        rc = (int)len;
      }
    }
  }
  sandbox_host_leave(prev);
  return (uint32_t)rc;
}

uint32_t Z_realmZ_token_info(struct sandbox_instance *inst, uint32_t token, uint32_t out) {
  int prev = sandbox_host_enter();
  guest_range(inst, "token_info", "out", out, sizeof(struct realm_token_info));
  int rc = REALM_GUEST_E_UNSUPPORTED;
  if (inst->host && inst->host->token_info) {
    struct realm_token_info ti = {0};
    rc = inst->host->token_info(inst->host->user, (int32_t)token, &ti);
    if (rc >= 0) memcpy(guest_range(inst, "token_info", "out", out, sizeof ti), &ti, sizeof ti);
  }
  sandbox_host_leave(prev);
  return (uint32_t)rc;
}

uint32_t Z_realmZ_feed_tokens(struct sandbox_instance *inst, uint32_t req_id, uint32_t tokens,
                              uint32_t n) {
  int prev = sandbox_host_enter();
  uint64_t bytes = (uint64_t)n * sizeof(int32_t);
  const uint8_t *src = guest_range(inst, "feed_tokens", "tokens", tokens, bytes);
  active_request(inst, "feed_tokens", req_id);
  int rc = REALM_GUEST_E_UNSUPPORTED;
  if (inst->host && inst->host->feed_tokens) {
    /* Guest pointers need not be aligned; give the host an aligned copy. */
    int32_t *copy = malloc(bytes ? bytes : 1);
    if (!copy) {
      rc = REALM_GUEST_E_INTERNAL;
    } else {
      memcpy(copy, src, bytes);
      rc = inst->host->feed_tokens(inst->host->user, req_id, copy, n);
      free(copy);
    }
  }
  sandbox_host_leave(prev);
  return (uint32_t)rc;
}

uint32_t Z_realmZ_emit_text(struct sandbox_instance *inst, uint32_t req_id, uint32_t text,
                            uint32_t len) {
  int prev = sandbox_host_enter();
  const char *p = (const char *)guest_range(inst, "emit_text", "text", text, len);
  struct sandbox_request *r = active_request(inst, "emit_text", req_id);
  charge_output(inst, "emit_text", r, len);
  int rc = 0;
  if (inst->host && inst->host->emit_text)
    rc = inst->host->emit_text(inst->host->user, req_id, p, len);
  sandbox_host_leave(prev);
  return (uint32_t)rc;
}

uint32_t Z_realmZ_emit_token(struct sandbox_instance *inst, uint32_t req_id, uint32_t token,
                             float logprob, uint32_t text, uint32_t len) {
  int prev = sandbox_host_enter();
  const char *p = (const char *)guest_range(inst, "emit_token", "text", text, len);
  struct sandbox_request *r = active_request(inst, "emit_token", req_id);
  charge_output(inst, "emit_token", r, len);
  int rc = 0;
  if (inst->host && inst->host->emit_token)
    rc = inst->host->emit_token(inst->host->user, req_id, (int32_t)token, logprob, p, len);
  else if (inst->host && inst->host->emit_text)
    rc = inst->host->emit_text(inst->host->user, req_id, p, len);
  sandbox_host_leave(prev);
  return (uint32_t)rc;
}

void Z_realmZ_log(struct sandbox_instance *inst, uint32_t level, uint32_t msg, uint32_t len) {
  int prev = sandbox_host_enter();
  const char *p = (const char *)guest_range(inst, "log", "msg", msg, len);
  if (inst->host && inst->host->log)
    inst->host->log(inst->host->user, level > REALM_GUEST_LOG_DEBUG ? REALM_GUEST_LOG_DEBUG : (int)level,
                    p, len > LOG_MAX_BYTES ? LOG_MAX_BYTES : len);
  sandbox_host_leave(prev);
}

uint64_t Z_realmZ_now_ns(struct sandbox_instance *inst) {
  (void)inst;
  int prev = sandbox_host_enter();
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  sandbox_host_leave(prev);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift128+: fast and reproducible; not for secrets (guests have no secrets to keep). */
static uint64_t rng_next(uint64_t s[2]) {
  uint64_t a = s[0], b = s[1];
  s[0] = b;
  a ^= a << 23;
  s[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
  return s[1] + b;
}

uint32_t Z_realmZ_random_bytes(struct sandbox_instance *inst, uint32_t buf, uint32_t len) {
  int prev = sandbox_host_enter();
  uint8_t *p = guest_range(inst, "random_bytes", "buf", buf, len);
  for (uint32_t i = 0; i < len; i += 8) {
    uint64_t v = rng_next(inst->rng);
    uint32_t n = len - i < 8 ? len - i : 8;
    memcpy(p + i, &v, n);
  }
  sandbox_host_leave(prev);
  return len;
}

uint32_t Z_realmZ_matmul(struct sandbox_instance *inst, uint32_t tensor, uint32_t tensor_len,
                         uint32_t x, uint32_t n_rows, uint32_t in_cols, uint32_t out,
                         uint32_t out_cols) {
  int prev = sandbox_host_enter();
  const char *name = (const char *)guest_range(inst, "matmul", "tensor", tensor, tensor_len);
  uint8_t *xp = guest_range(inst, "matmul", "x", x, (uint64_t)n_rows * in_cols * sizeof(float));
  uint8_t *op = guest_range(inst, "matmul", "out", out, (uint64_t)n_rows * out_cols * sizeof(float));
  int rc = REALM_GUEST_E_UNSUPPORTED;
  /* Float pointers must be aligned for the host callback; misaligned is a guest error. */
  if (((uintptr_t)xp | (uintptr_t)op) % sizeof(float))
    rc = REALM_GUEST_E_INVALID;
  else if (inst->host && inst->host->matmul)
    rc = inst->host->matmul(inst->host->user, name, tensor_len, (const float *)xp, n_rows, in_cols,
                            (float *)op, out_cols);
  sandbox_host_leave(prev);
  return (uint32_t)rc;
}

uint32_t Z_realmZ_attention(struct sandbox_instance *inst, uint32_t req_id, uint32_t layer,
                            uint32_t qkv, uint32_t n_tokens, uint32_t out) {
  int prev = sandbox_host_enter();
  active_request(inst, "attention", req_id);
  int rc = REALM_GUEST_E_UNSUPPORTED;
  if (inst->host && inst->host->attention) {
    struct realm_model_info info;
    rc = fetch_model_info(inst, &info);
    if (rc >= 0) {
      uint64_t row = (uint64_t)info.n_embd * sizeof(float);
      uint8_t *qp = guest_range(inst, "attention", "qkv", qkv, row * 3 * n_tokens);
      uint8_t *op = guest_range(inst, "attention", "out", out, row * n_tokens);
      if (((uintptr_t)qp | (uintptr_t)op) % sizeof(float))
        rc = REALM_GUEST_E_INVALID;
      else
        rc = inst->host->attention(inst->host->user, req_id, layer, (const float *)qp, n_tokens,
                                   (float *)op);
    }
  }
  sandbox_host_leave(prev);
  return (uint32_t)rc;
}

/* ---- imports added later to ABI v1 (model metadata, merges, top logprobs, finish) ---- */

/* Copies host-owned bytes (value, len) to guest buf when they fit cap; returns the length,
 * or E_INTERNAL when the host hands out more than `max` bytes (a host bug, not the guest's). */
static int copy_out(struct sandbox_instance *inst, const char *import, uint32_t buf, uint32_t cap,
                    const char *value, uint32_t len, uint32_t max) {
  if (len > max || (!value && len)) return REALM_GUEST_E_INTERNAL;
  if (len <= cap && len) memcpy(guest_range(inst, import, "buf", buf, len), value, len);
  return (int)len;
}

uint32_t Z_realmZ_model_meta(struct sandbox_instance *inst, uint32_t key, uint32_t key_len,
                             uint32_t out, uint32_t cap) {
  int prev = sandbox_host_enter();
  const char *k = (const char *)guest_range(inst, "model_meta", "key", key, key_len);
  guest_range(inst, "model_meta", "out", out, cap);
  int rc = REALM_GUEST_E_UNSUPPORTED;
  if (key_len == 0 || key_len > REALM_GUEST_MAX_META_KEY_BYTES || memchr(k, '\0', key_len)) {
    rc = REALM_GUEST_E_INVALID;
  } else if (inst->host && inst->host->model_meta) {
    /* The host looks keys up as C strings: give it a NUL-terminated copy. */
    char name[REALM_GUEST_MAX_META_KEY_BYTES + 1];
    memcpy(name, k, key_len);
    name[key_len] = '\0';
    const char *value = NULL;
    uint32_t len = 0;
    rc = inst->host->model_meta(inst->host->user, name, &value, &len);
    if (rc >= 0)
      rc = copy_out(inst, "model_meta", out, cap, value, len, REALM_GUEST_MAX_META_VALUE_BYTES);
  }
  sandbox_host_leave(prev);
  return (uint32_t)rc;
}

uint32_t Z_realmZ_merge_count(struct sandbox_instance *inst) {
  int prev = sandbox_host_enter();
  int rc = REALM_GUEST_E_UNSUPPORTED;
  if (inst->host && inst->host->merge_count) rc = inst->host->merge_count(inst->host->user);
  sandbox_host_leave(prev);
  return (uint32_t)rc;
}

uint32_t Z_realmZ_merge(struct sandbox_instance *inst, uint32_t i, uint32_t buf, uint32_t cap) {
  int prev = sandbox_host_enter();
  guest_range(inst, "merge", "buf", buf, cap);
  int rc = REALM_GUEST_E_UNSUPPORTED;
  if (inst->host && inst->host->merge) {
    const char *m = NULL;
    uint32_t len = 0;
    rc = inst->host->merge(inst->host->user, i, &m, &len);
    if (rc >= 0) rc = copy_out(inst, "merge", buf, cap, m, len, PIECE_MAX_BYTES);
  }
  sandbox_host_leave(prev);
  return (uint32_t)rc;
}

uint32_t Z_realmZ_emit_top_logprobs(struct sandbox_instance *inst, uint32_t req_id, uint32_t top,
                                    uint32_t n) {
  int prev = sandbox_host_enter();
  struct sandbox_request *r = active_request(inst, "emit_top_logprobs", req_id);
  int rc = 0;
  if (n > REALM_GUEST_MAX_TOP_LOGPROBS) {
    rc = REALM_GUEST_E_INVALID;
  } else {
    const uint8_t *src = guest_range(inst, "emit_top_logprobs", "top", top,
                                     (uint64_t)n * sizeof(struct realm_top_logprob));
    /* Counted like text, so a guest cannot flood the client with alternatives either. */
    charge_output(inst, "emit_top_logprobs", r, n * (uint32_t)sizeof(struct realm_top_logprob));
    if (inst->host && inst->host->emit_top_logprobs) {
      /* Guest pointers need not be aligned; the host gets an aligned copy. */
      struct realm_top_logprob copy[REALM_GUEST_MAX_TOP_LOGPROBS];
      memcpy(copy, src, n * sizeof *copy);
      rc = inst->host->emit_top_logprobs(inst->host->user, req_id, copy, n);
    }
  }
  sandbox_host_leave(prev);
  return (uint32_t)rc;
}

uint32_t Z_realmZ_finish(struct sandbox_instance *inst, uint32_t req_id, uint32_t reason) {
  int prev = sandbox_host_enter();
  struct sandbox_request *r = active_request(inst, "finish", req_id);
  int rc = 0;
  int32_t why = (int32_t)reason;
  if (why < REALM_GUEST_FINISH_STOP || why > REALM_GUEST_FINISH_CONTENT_FILTER) {
    rc = REALM_GUEST_E_INVALID;
  } else {
    r->finish_reason = why;
    if (inst->host && inst->host->finish) rc = inst->host->finish(inst->host->user, req_id, why);
  }
  sandbox_host_leave(prev);
  return (uint32_t)rc;
}
