/*
 * sandbox.h — running tenant WebAssembly modules (guests) natively through wasm2c.
 *
 * A module goes: bytes -> size check -> wasm2c (validates and translates to C) -> the system C
 * compiler (cc -O2 -shared -fPIC, same wasm2c runtime macros as the host) -> a shared object
 * cached under cache_dir by the SHA-256 of the module bytes -> dlopen. An instance is one copy
 * of the module's memory and globals with its limits (memory cap, per-call deadline, output
 * cap) and a host table (struct sandbox_host) that the guest's "realm" imports call into.
 *
 * Failure model: a trap (out-of-bounds access, unreachable, stack exhaustion, divide by zero,
 * bad call_indirect), a deadline, a bad pointer passed to an import or an exceeded output cap
 * ends the current call with an error naming what happened, and the instance is "discarded":
 * every later call on it fails fast with REALM_E_UNAVAILABLE; free it and make a new one. The
 * process and other instances are unaffected.
 *
 * Threading: the wasm2c runtime keeps its trap state in process globals, so all sandbox calls
 * of a process must come from ONE thread (the runner's event loop drives many instances, each
 * with many requests, from that thread). The per-call deadline uses a POSIX timer delivering
 * SANDBOX_DEADLINE_SIGNAL to that thread; the runner must not block or take that signal.
 * A guest call may not be made from inside a host callback (returns REALM_E_INVALID_ARGUMENT).
 */
#ifndef REALM_SANDBOX_H
#define REALM_SANDBOX_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "realm_guest.h"

/* Signal used by the per-call deadline timer (and a SIGSEGV/SIGBUS backstop handler on an
 * alternate stack, which turns a native stack overflow in guest code into an error). */
#define SANDBOX_DEADLINE_SIGNAL (SIGRTMIN + 4)

struct sandbox_module;
struct sandbox_instance;

/* Per-instance limits. Zero fields take the defaults from realm/limits.h. */
struct sandbox_limits {
  uint64_t memory_bytes; /* linear memory cap (rounded down to 64 KiB pages; <= 4 GiB - 64 KiB) */
  uint32_t call_ms;      /* wall-clock deadline of one guest call */
  uint64_t output_bytes; /* bytes one request may emit (emit_text + emit_token text, 8 per
                            emit_top_logprobs entry) */
  uint64_t seed;         /* seed of realm_random_bytes (0 is a valid seed) */
};

/*
 * What the guest's imports call. Every callback is optional (NULL answers the guest with
 * REALM_GUEST_E_UNSUPPORTED, or a neutral value for log). They run with guest code paused and
 * the deadline timer still armed (a slow callback makes the call fail when it returns). All
 * pointers handed to callbacks point into guest memory (already bounds-checked) or host
 * memory, and are valid only during the callback. Return REALM_GUEST_* codes (>= 0 success).
 */
struct sandbox_host {
  void *user; /* passed back as the first argument */
  int (*model_info)(void *user, struct realm_model_info *out);
  /* Sets *ret_piece and *ret_len to the token's bytes (host-owned), or returns NOT_FOUND. */
  int (*token_piece)(void *user, int32_t token, const char **ret_piece, uint32_t *ret_len);
  int (*token_info)(void *user, int32_t token, struct realm_token_info *out);
  int (*feed_tokens)(void *user, uint32_t req_id, const int32_t *tokens, uint32_t n);
  int (*emit_text)(void *user, uint32_t req_id, const char *text, uint32_t len);
  int (*emit_token)(void *user, uint32_t req_id, int32_t token, float logprob, const char *text,
                    uint32_t len);
  void (*log)(void *user, int level, const char *msg, uint32_t len);
  int (*matmul)(void *user, const char *tensor, uint32_t tensor_len, const float *x,
                uint32_t n_rows, uint32_t in_cols, float *out, uint32_t out_cols);
  int (*attention)(void *user, uint32_t req_id, uint32_t layer, const float *qkv,
                   uint32_t n_tokens, float *out);

  /* ---- Added later to ABI v1 (fields only ever appended). Also optional; what a NULL
   * callback means for the guest is given with each. ---- */
  /* Metadata value of `key` (NUL-terminated host copy, 1..REALM_GUEST_MAX_META_KEY_BYTES
   * bytes): sets *ret_value and *ret_len (host-owned bytes, at most
   * REALM_GUEST_MAX_META_VALUE_BYTES) or returns REALM_GUEST_E_NOT_FOUND. Encoding of
   * non-string values: see realm_guest.h (REALM_META_*). NULL: the guest gets
   * REALM_GUEST_E_UNSUPPORTED (it then uses its defaults: no pre-tokenizer name, llama.cpp's
   * add_bos/add_space_prefix defaults, no model chat template). */
  int (*model_meta)(void *user, const char *key, const char **ret_value, uint32_t *ret_len);
  /* Number of BPE merges (>= 0). NULL: the guest gets REALM_GUEST_E_UNSUPPORTED (the default
   * guest then reconstructs merges from the vocabulary). */
  int (*merge_count)(void *user);
  /* Merge i as "left right": sets *ret_merge and *ret_len (host-owned) or returns NOT_FOUND.
   * NULL: REALM_GUEST_E_UNSUPPORTED. */
  int (*merge)(void *user, uint32_t i, const char **ret_merge, uint32_t *ret_len);
  /* The top-n alternatives of the token last emitted by emit_token for req_id (n <=
   * REALM_GUEST_MAX_TOP_LOGPROBS, aligned host copy). NULL: dropped, the guest gets 0. */
  int (*emit_top_logprobs)(void *user, uint32_t req_id, const struct realm_top_logprob *top,
                           uint32_t n);
  /* The guest's finish reason (REALM_GUEST_FINISH_STOP/_LENGTH/_CONTENT_FILTER) for req_id,
   * already validated and recorded (sandbox_instance_finish_reason). NULL: only recorded,
   * the guest gets 0. */
  int (*finish)(void *user, uint32_t req_id, int32_t reason);
};

/* ---- modules ---- */

/*
 * Validates, translates, compiles and caches `len` bytes of wasm, without loading them.
 * cache_dir must exist and be writable by this process only (a cached .so is trusted).
 * On success writes the hex SHA-256 (65 bytes with NUL) to ret_sha256 and the .so path to
 * ret_so_path (so_path_cap bytes), and *ret_cached = 1 when the .so was already there.
 * Returns 0, REALM_E_TOO_LARGE (over REALM_GUEST_MAX_MODULE_BYTES), REALM_E_INVALID_ARGUMENT
 * (not a valid module, or not ABI-conforming: the message quotes wasm2c / cc), or REALM_E_IO /
 * REALM_E_SYSTEM.
 */
int sandbox_module_build(const uint8_t *wasm, size_t len, const char *cache_dir,
                         char ret_sha256[65], char *ret_so_path, size_t so_path_cap,
                         int *ret_cached, char *err, size_t errlen);

/* sandbox_module_build, then dlopen and check the ABI (exports, import set, ABI version). */
int sandbox_module_load(const uint8_t *wasm, size_t len, const char *cache_dir,
                        struct sandbox_module **ret_module, char *err, size_t errlen);
/* The same, reading the module from a file. */
int sandbox_module_load_file(const char *wasm_path, const char *cache_dir,
                             struct sandbox_module **ret_module, char *err, size_t errlen);
/* Hex SHA-256 of the module bytes; the .so path; 1 if it came from the cache. */
const char *sandbox_module_sha256(const struct sandbox_module *module);
const char *sandbox_module_so_path(const struct sandbox_module *module);
int sandbox_module_from_cache(const struct sandbox_module *module);
/* Frees a module. All its instances must be freed first. NULL is fine. */
void sandbox_module_free(struct sandbox_module *module);

/* ---- instances ---- */

/*
 * Instantiates `module` with `limits` (NULL = defaults) and the host table `host` (kept by
 * pointer: it must outlive the instance; NULL = no callbacks). Refuses a module whose initial
 * memory exceeds the cap (REALM_E_TOO_LARGE); a declared maximum above the cap is lowered to
 * the cap, so memory.grow past it returns -1 to the guest (and the failure note is added to the
 * error of the call if the guest then traps). Also calls realm_abi_version() and refuses
 * (REALM_E_VERSION) a guest built for another ABI.
 */
int sandbox_instance_new(struct sandbox_module *module, const struct sandbox_limits *limits,
                         const struct sandbox_host *host, struct sandbox_instance **ret_inst,
                         char *err, size_t errlen);
/* Frees an instance (also a discarded one). NULL is fine. */
void sandbox_instance_free(struct sandbox_instance *inst);

/*
 * Guest calls. Each copies its inputs into guest memory (via realm_alloc, or scratch the host
 * keeps per instance for logits) and runs the export under the deadline. Errors:
 *   REALM_E_GUEST_TRAP   a trap, or a guest bug at an import (bad pointer naming the import and
 *                        range, unknown request id); the message says which
 *   REALM_E_TIMEOUT      "deadline exceeded after N ms"
 *   REALM_E_TOO_LARGE    the request's output went over limits.output_bytes
 *   REALM_E_UNAVAILABLE  the instance was discarded by an earlier failure
 *   REALM_E_INVALID_ARGUMENT  bad host arguments (too many active requests, unknown id, ...)
 * Any of the first three discards the instance.
 */

/* Starts request req_id (ids are chosen by the caller, unique among the instance's active
 * requests) with the blob built by realm_req_begin/realm_req_add. *ret_status receives the
 * guest's return value (0 or a REALM_GUEST_E_* code the runner turns into a request failure). */
int sandbox_call_request_begin(struct sandbox_instance *inst, uint32_t req_id, const uint8_t *req,
                               uint32_t req_len, int32_t *ret_status, char *err, size_t errlen);
/* Hands n_vocab logits to the guest. *ret_action: next token (>= 0), REALM_GUEST_STOP, or a
 * negative REALM_GUEST_E_* code. */
int sandbox_call_logits(struct sandbox_instance *inst, uint32_t req_id, const float *logits,
                        uint32_t n_vocab, int32_t *ret_action, char *err, size_t errlen);
/* Ends request req_id (status 0 = finished, < 0 = failed/cancelled) and forgets it. */
int sandbox_call_request_end(struct sandbox_instance *inst, uint32_t req_id, int32_t status,
                             char *err, size_t errlen);

/* 1 if the instance was discarded by a failure (then every call returns UNAVAILABLE). */
int sandbox_instance_discarded(const struct sandbox_instance *inst);
/* Bytes the request has emitted so far (0 for an unknown id). */
uint64_t sandbox_instance_output_bytes(const struct sandbox_instance *inst, uint32_t req_id);
/* The finish reason the guest gave for req_id with realm_finish (REALM_GUEST_FINISH_STOP,
 * _LENGTH, _CONTENT_FILTER; the last call wins), or REALM_GUEST_FINISH_NONE when it gave none
 * or req_id is not active. Read it after sandbox_call_logits returned REALM_GUEST_STOP and
 * before sandbox_call_request_end, which forgets the request. A guest that gives none (older
 * guests) leaves the reason to the caller: "stop", or "length" when the caller's own token
 * limit ended the request. */
int32_t sandbox_instance_finish_reason(const struct sandbox_instance *inst, uint32_t req_id);
/* Current size of the guest's linear memory in bytes. */
uint64_t sandbox_instance_memory_bytes(const struct sandbox_instance *inst);

#endif /* REALM_SANDBOX_H */
