/*
 * test_sandbox.c — the wasm2c sandbox against hostile guests, all in ONE process.
 *
 * Each malicious test guest (tests/guests/<name>.wat) does one bad thing in
 * realm_on_request_begin; its call must fail with an error naming what happened (trap kind,
 * deadline, memory cap, bad pointer with the import's name, output cap), the instance must be
 * discarded, and then a fresh instance of the well-behaved guest must complete a request
 * correctly in the same process, which proves the host survived. Modules that do not conform
 * to the ABI must be refused at load with a message. The module cache is checked for reuse.
 *
 * Modules are compiled once into a cache under the build directory, so reruns are fast.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "realm/error.h"
#include "realm_test.h"
#include "sandbox.h"

static char g_cache[1024];

static const char *cache_dir(void) {
  if (!g_cache[0]) {
    const char *b = getenv("REALM_TEST_GUESTS_DIR");
    snprintf(g_cache, sizeof g_cache, "%s/module-cache", b ? b : ".");
    mkdir(g_cache, 0700);
  }
  return g_cache;
}

static void guest_path(const char *name, char *out, size_t cap) {
  const char *d = getenv("REALM_TEST_GUESTS_DIR");
  snprintf(out, cap, "%s/%s.wasm", d ? d : ".", name);
}

/* ---- a recording host ---- */

struct rec {
  char text[4096];
  size_t text_len;
  int32_t fed[16];
  int n_fed;
  int n_tokens;
  int n_logs;
};

static int rec_emit_text(void *user, uint32_t req_id, const char *t, uint32_t len) {
  (void)req_id;
  struct rec *r = user;
  if (r->text_len + len < sizeof r->text) {
    memcpy(r->text + r->text_len, t, len);
    r->text_len += len;
    r->text[r->text_len] = '\0';
  }
  return 0;
}

static int rec_emit_token(void *user, uint32_t req_id, int32_t tok, float lp, const char *t,
                          uint32_t len) {
  (void)tok;
  (void)lp;
  ((struct rec *)user)->n_tokens++;
  return rec_emit_text(user, req_id, t, len);
}

static int rec_feed(void *user, uint32_t req_id, const int32_t *toks, uint32_t n) {
  (void)req_id;
  struct rec *r = user;
  for (uint32_t i = 0; i < n && r->n_fed < 16; i++) r->fed[r->n_fed++] = toks[i];
  return 0;
}

static const char *const pieces[] = {"<s>", "A", "B", "C", "D"};

static int rec_piece(void *user, int32_t tok, const char **ret, uint32_t *ret_len) {
  (void)user;
  if (tok < 0 || tok >= 5) return REALM_GUEST_E_NOT_FOUND;
  *ret = pieces[tok];
  *ret_len = (uint32_t)strlen(pieces[tok]);
  return 0;
}

static void rec_log(void *user, int level, const char *msg, uint32_t len) {
  (void)level;
  (void)msg;
  (void)len;
  ((struct rec *)user)->n_logs++;
}

static int rec_model_info(void *user, struct realm_model_info *out) {
  (void)user;
  out->n_vocab = 5;
  out->bos = 0;
  out->eos = 4;
  out->n_ctx = 128;
  snprintf(out->arch, sizeof out->arch, "test");
  return 0;
}

static struct sandbox_host rec_host(struct rec *r) {
  memset(r, 0, sizeof *r);
  struct sandbox_host h = {.user = r,
                           .model_info = rec_model_info,
                           .token_piece = rec_piece,
                           .feed_tokens = rec_feed,
                           .emit_text = rec_emit_text,
                           .emit_token = rec_emit_token,
                           .log = rec_log};
  return h;
}

static uint32_t make_request(uint8_t *buf, uint32_t cap) {
  uint32_t len = 0;
  realm_req_begin(buf, cap, &len);
  realm_req_add(buf, cap, &len, REALM_REQ_PROMPT, "hi", 2);
  uint32_t max_tokens = 3;
  realm_req_add(buf, cap, &len, REALM_REQ_MAX_TOKENS, &max_tokens, 4);
  return len;
}

/* Loads a test guest (from the shared cache). */
static int load(const char *name, struct sandbox_module **ret, char *err, size_t errlen) {
  char p[1024];
  guest_path(name, p, sizeof p);
  return sandbox_module_load_file(p, cache_dir(), ret, err, errlen);
}

static struct sandbox_module *g_good;

/* Runs one full request on a fresh instance of the good guest; returns 1 when the output is
 * exactly what it must be. Called after every failure to show the process still works. */
static int good_guest_works(void) {
  char err[512] = "";
  if (!g_good && load("good", &g_good, err, sizeof err) < 0) {
    printf("# good guest load failed: %s\n", err);
    return 0;
  }
  struct rec r;
  struct sandbox_host h = rec_host(&r);
  struct sandbox_limits lim = {.memory_bytes = 1u << 20, .call_ms = 1000, .output_bytes = 4096};
  struct sandbox_instance *inst = NULL;
  if (sandbox_instance_new(g_good, &lim, &h, &inst, err, sizeof err) < 0) {
    printf("# good instance failed: %s\n", err);
    return 0;
  }
  uint8_t req[256];
  uint32_t rl = make_request(req, sizeof req);
  int32_t st = -1, act = 0;
  int ok = sandbox_call_request_begin(inst, 7, req, rl, &st, err, sizeof err) == 0 && st == 0;
  /* Logits favour C, then B, then A: the guest must pick argmax each time. */
  float logits[3][5] = {{0, 0, 0, 9, 0}, {0, 0, 5, 1, 0}, {0, 3, 0, 1, 0}};
  int32_t want[3] = {3, 2, 1};
  for (int i = 0; ok && i < 3; i++)
    ok = sandbox_call_logits(inst, 7, logits[i], 5, &act, err, sizeof err) == 0 && act == want[i];
  ok = ok && sandbox_call_logits(inst, 7, logits[0], 5, &act, err, sizeof err) == 0 &&
       act == REALM_GUEST_STOP;
  ok = ok && sandbox_call_request_end(inst, 7, 0, err, sizeof err) == 0;
  ok = ok && strcmp(r.text, "hello: CBA") == 0 && r.n_fed == 1 && r.fed[0] == 1 &&
       r.n_tokens == 3 && r.n_logs == 1;
  if (!ok) printf("# good guest run failed: err='%s' text='%s'\n", err, r.text);
  sandbox_instance_free(inst);
  return ok;
}

/*
 * Loads `name`, instantiates it with a 1 MiB memory cap, 100 ms deadline and 64 KiB output cap,
 * begins a request, and expects that call to fail with `want_code` and a message containing
 * `want_msg`; then checks that the instance is discarded and a good guest still works.
 */
static int expect_begin_fails(const char *name, int want_code, const char *want_msg,
                              double *ret_ms) {
  char err[512] = "";
  struct sandbox_module *m = NULL;
  if (load(name, &m, err, sizeof err) < 0) {
    printf("# load %s failed: %s\n", name, err);
    return 0;
  }
  struct rec r;
  struct sandbox_host h = rec_host(&r);
  struct sandbox_limits lim = {.memory_bytes = 1u << 20, .call_ms = 100, .output_bytes = 64u << 10};
  struct sandbox_instance *inst = NULL;
  if (sandbox_instance_new(m, &lim, &h, &inst, err, sizeof err) < 0) {
    printf("# instance of %s failed: %s\n", name, err);
    sandbox_module_free(m);
    return 0;
  }
  uint8_t req[256];
  uint32_t rl = make_request(req, sizeof req);
  int32_t st = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int rc = sandbox_call_request_begin(inst, 1, req, rl, &st, err, sizeof err);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (ret_ms) *ret_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
  printf("# %s -> %d: %s\n", name, rc, err);
  int ok = rc == want_code && strstr(err, want_msg) != NULL;
  /* The instance is discarded: further calls fail fast, naming the original reason. */
  char err2[512] = "";
  float lg[2] = {0, 1};
  int32_t act = 0;
  ok = ok && sandbox_instance_discarded(inst) &&
       sandbox_call_logits(inst, 1, lg, 2, &act, err2, sizeof err2) == REALM_E_UNAVAILABLE &&
       strstr(err2, want_msg) != NULL;
  sandbox_call_request_end(inst, 1, -1, err2, sizeof err2);
  sandbox_instance_free(inst);
  sandbox_module_free(m);
  return ok && good_guest_works();
}

/* Expects loading `name` to fail with `want_code` and a message containing `want_msg`. */
static int expect_load_fails(const char *name, int want_code, const char *want_msg) {
  char err[1024] = "";
  struct sandbox_module *m = NULL;
  int rc = load(name, &m, err, sizeof err);
  printf("# %s -> %d: %.300s\n", name, rc, err);
  if (rc == 0) sandbox_module_free(m);
  return rc == want_code && strstr(err, want_msg) != NULL && good_guest_works();
}

TEST(good_guest_runs_a_request) { CHECK(good_guest_works()); }

TEST(out_of_bounds_access_traps) {
  CHECK(expect_begin_fails("oob", REALM_E_GUEST_TRAP, "guest trap 'out_of_bounds'", NULL));
}

TEST(infinite_loop_hits_deadline) {
  double ms = 0;
  CHECK(expect_begin_fails("infinite_loop", REALM_E_TIMEOUT, "deadline exceeded after 100 ms", &ms));
  printf("# infinite loop stopped after %.1f ms (deadline 100 ms)\n", ms);
  CHECK(ms >= 99 && ms < 1000);
}

TEST(loop_calling_host_hits_deadline) {
  double ms = 0;
  CHECK(expect_begin_fails("host_loop", REALM_E_TIMEOUT, "deadline exceeded after 100 ms", &ms));
  CHECK(ms >= 99 && ms < 1000);
}

TEST(start_function_loop_hits_deadline_at_instantiation) {
  char err[512] = "";
  struct sandbox_module *m = NULL;
  CHECK(load("start_loop", &m, err, sizeof err) == 0);
  struct sandbox_limits lim = {.call_ms = 50};
  struct sandbox_instance *inst = NULL;
  int rc = sandbox_instance_new(m, &lim, NULL, &inst, err, sizeof err);
  printf("# start_loop -> %d: %s\n", rc, err);
  sandbox_module_free(m);
  CHECK_EQ_INT(rc, REALM_E_TIMEOUT);
  CHECK(inst == NULL);
  CHECK_STR_CONTAINS(err, "deadline exceeded after 50 ms in instantiation");
  CHECK(good_guest_works());
}

TEST(deep_recursion_exhausts_stack) {
  CHECK(expect_begin_fails("recursion", REALM_E_GUEST_TRAP, "guest trap 'stack_exhausted'", NULL));
}

TEST(native_stack_overflow_is_caught) {
  /* 3 KiB native frames x 10000 allowed calls > the 8 MiB stack: the SIGSEGV backstop must
   * catch the overflow (on a much larger stack the depth counter trips first). */
  char err[512] = "";
  struct sandbox_module *m = NULL;
  CHECK(load("fat_recursion", &m, err, sizeof err) == 0);
  struct sandbox_instance *inst = NULL;
  struct sandbox_limits lim = {.memory_bytes = 1u << 20, .call_ms = 2000};
  CHECK(sandbox_instance_new(m, &lim, NULL, &inst, err, sizeof err) == 0);
  uint8_t req[64];
  uint32_t rl = make_request(req, sizeof req);
  int32_t st = 0;
  int rc = sandbox_call_request_begin(inst, 1, req, rl, &st, err, sizeof err);
  printf("# fat_recursion -> %d: %s\n", rc, err);
  sandbox_instance_free(inst);
  sandbox_module_free(m);
  CHECK_EQ_INT(rc, REALM_E_GUEST_TRAP);
  CHECK(strstr(err, "guest trap 'native_fault'") || strstr(err, "guest trap 'stack_exhausted'"));
  CHECK(good_guest_works());
  /* And a second time: the alternate stack and handlers are reusable. */
  CHECK(expect_begin_fails("recursion", REALM_E_GUEST_TRAP, "guest trap 'stack_exhausted'", NULL));
}

TEST(memory_grow_past_cap_is_refused) {
  CHECK(expect_begin_fails("grow_past_cap", REALM_E_GUEST_TRAP,
                           "exceed the memory cap of 1048576 bytes", NULL));
}

TEST(bad_pointer_to_import_is_caught) {
  CHECK(expect_begin_fails("bad_pointer", REALM_E_GUEST_TRAP,
                           "bad pointer passed to realm_emit_text: text range [0xfffff000, "
                           "0x100001000) is outside guest memory of 65536 bytes",
                           NULL));
}

TEST(output_flood_hits_output_cap) {
  CHECK(expect_begin_fails("output_flood", REALM_E_TOO_LARGE,
                           "output cap exceeded: realm_emit_text would bring request 1 to 66560 "
                           "bytes, cap is 65536 bytes",
                           NULL));
}

TEST(divide_by_zero_traps) {
  CHECK(expect_begin_fails("div_zero", REALM_E_GUEST_TRAP, "guest trap 'integer_divide_by_zero'",
                           NULL));
}

TEST(call_indirect_mismatch_traps) {
  CHECK(expect_begin_fails("call_indirect", REALM_E_GUEST_TRAP,
                           "guest trap 'call_indirect_mismatch'", NULL));
}

TEST(foreign_import_module_is_refused) {
  CHECK(expect_load_fails("bad_import", REALM_E_INVALID_ARGUMENT, "module imports 'env'.'system'"));
}

TEST(unknown_realm_import_is_refused) {
  CHECK(expect_load_fails("unknown_import", REALM_E_INVALID_ARGUMENT,
                          "imports 'realm'.'exec', which the host does not provide"));
}

TEST(wrong_import_signature_is_refused) {
  CHECK(expect_load_fails("wrong_import_sig", REALM_E_INVALID_ARGUMENT, "Z_realmZ_emit_text"));
}

TEST(missing_export_is_refused) {
  CHECK(expect_load_fails("missing_export", REALM_E_INVALID_ARGUMENT,
                          "does not export function 'realm_on_logits'"));
}

TEST(other_abi_version_is_refused) {
  char err[512] = "";
  struct sandbox_module *m = NULL;
  CHECK(load("abi_v2", &m, err, sizeof err) == 0);
  struct sandbox_instance *inst = NULL;
  int rc = sandbox_instance_new(m, NULL, NULL, &inst, err, sizeof err);
  sandbox_module_free(m);
  CHECK_EQ_INT(rc, REALM_E_VERSION);
  CHECK(inst == NULL);
  CHECK_STR_CONTAINS(err, "realm_abi_version() = 2");
}

TEST(initial_memory_over_cap_is_refused) {
  char err[512] = "";
  struct sandbox_module *m = NULL;
  CHECK(load("big_memory", &m, err, sizeof err) == 0);
  struct sandbox_limits lim = {.memory_bytes = 1u << 20};
  struct sandbox_instance *inst = NULL;
  int rc = sandbox_instance_new(m, &lim, NULL, &inst, err, sizeof err);
  CHECK_EQ_INT(rc, REALM_E_TOO_LARGE);
  CHECK_STR_CONTAINS(err, "initial memory is 64 pages (4194304 bytes), over the memory cap of 1048576");
  /* The same module fits under a larger cap. */
  lim.memory_bytes = 8u << 20;
  rc = sandbox_instance_new(m, &lim, NULL, &inst, err, sizeof err);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(sandbox_instance_memory_bytes(inst), 4u << 20);
  sandbox_instance_free(inst);
  sandbox_module_free(m);
  CHECK(good_guest_works());
}

TEST(invalid_module_is_refused_by_validation) {
  /* Valid magic and version, then a section with an impossible length. */
  static const uint8_t bad[] = {0, 'a', 's', 'm', 1, 0, 0, 0, 1, 0x7f, 0x60, 0x00};
  char err[1024] = "";
  struct sandbox_module *m = NULL;
  int rc = sandbox_module_load(bad, sizeof bad, cache_dir(), &m, err, sizeof err);
  printf("# invalid module -> %d: %s\n", rc, err);
  CHECK_EQ_INT(rc, REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "invalid module (wasm2c)");
  static const uint8_t text[] = "(module)";
  rc = sandbox_module_load(text, sizeof text, cache_dir(), &m, err, sizeof err);
  CHECK_EQ_INT(rc, REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "not a WebAssembly binary");
  CHECK(good_guest_works());
}

TEST(module_cache_reuses_compiled_object) {
  char dir[] = "/tmp/realm-sandbox-cache-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char p[1024], err[512] = "";
  guest_path("good", p, sizeof p);
  struct sandbox_module *a = NULL, *b = NULL;
  int rc = sandbox_module_load_file(p, dir, &a, err, sizeof err);
  CHECK(rc == 0);
  CHECK_EQ_INT(sandbox_module_from_cache(a), 0);
  struct stat st1, st2;
  CHECK(stat(sandbox_module_so_path(a), &st1) == 0);
  rc = sandbox_module_load_file(p, dir, &b, err, sizeof err);
  CHECK(rc == 0);
  CHECK_EQ_INT(sandbox_module_from_cache(b), 1);
  CHECK(stat(sandbox_module_so_path(b), &st2) == 0);
  CHECK_EQ_INT(st1.st_ino, st2.st_ino);
  CHECK(st1.st_mtim.tv_sec == st2.st_mtim.tv_sec && st1.st_mtim.tv_nsec == st2.st_mtim.tv_nsec);
  CHECK_STR_EQ(sandbox_module_sha256(a), sandbox_module_sha256(b));
  CHECK_EQ_INT(strlen(sandbox_module_sha256(a)), 64);
  /* The cache file is named by the hash; nothing but the .so is left in the directory. */
  CHECK(strstr(sandbox_module_so_path(a), sandbox_module_sha256(a)) != NULL);
  char so[1024];
  snprintf(so, sizeof so, "%s", sandbox_module_so_path(a));
  sandbox_module_free(a);
  sandbox_module_free(b);
  unlink(so);
  CHECK(rmdir(dir) == 0);
}

TEST(request_blob_round_trips) {
  uint8_t buf[64];
  uint32_t len = make_request(buf, sizeof buf);
  CHECK_EQ_INT(realm_req_check(buf, len), 2);
  uint32_t cur = REALM_REQ_HEADER_BYTES;
  struct realm_req_field f;
  CHECK_EQ_INT(realm_req_next(buf, len, &cur, &f), 1);
  CHECK_EQ_INT(f.key, REALM_REQ_PROMPT);
  CHECK(f.len == 2 && memcmp(f.value, "hi", 2) == 0);
  CHECK_EQ_INT(realm_req_next(buf, len, &cur, &f), 1);
  CHECK_EQ_INT(f.key, REALM_REQ_MAX_TOKENS);
  CHECK_EQ_INT(realm_req_next(buf, len, &cur, &f), 0);
  /* A truncated field is refused, not read past the end. */
  CHECK_EQ_INT(realm_req_next(buf, len - 1, &(uint32_t){REALM_REQ_HEADER_BYTES + 10}, &f),
               REALM_GUEST_E_INVALID);
  CHECK_EQ_INT(realm_req_add(buf, sizeof buf, &len, REALM_REQ_PROMPT, buf, 64),
               REALM_GUEST_E_TOO_SMALL);
}

TEST(example_guest_echoes_and_samples_greedily) {
  const char *d = getenv("REALM_TEST_EXAMPLE_GUESTS_DIR");
  char p[1024], err[1024] = "";
  snprintf(p, sizeof p, "%s/echo_greedy.wasm", d ? d : ".");
  if (access(p, R_OK) != 0) SKIP("example guest not built (clang/wasm-ld/wasi-libc missing)");
  struct sandbox_module *m = NULL;
  int rc = sandbox_module_load_file(p, cache_dir(), &m, err, sizeof err);
  if (rc) printf("# %s\n", err);
  CHECK_EQ_INT(rc, 0);
  struct rec r;
  struct sandbox_host h = rec_host(&r);
  struct sandbox_instance *inst = NULL;
  CHECK_EQ_INT(sandbox_instance_new(m, NULL, &h, &inst, err, sizeof err), 0);
  uint8_t req[256];
  uint32_t rl = make_request(req, sizeof req);
  int32_t st = -1, act = 0;
  CHECK_EQ_INT(sandbox_call_request_begin(inst, 3, req, rl, &st, err, sizeof err), 0);
  CHECK_EQ_INT(st, 0);
  float lg[5] = {0, 0, 7, 0, 0};
  CHECK_EQ_INT(sandbox_call_logits(inst, 3, lg, 5, &act, err, sizeof err), 0);
  CHECK_EQ_INT(act, 2);
  float eos[5] = {0, 0, 0, 0, 9};
  CHECK_EQ_INT(sandbox_call_logits(inst, 3, eos, 5, &act, err, sizeof err), 0);
  CHECK_EQ_INT(act, REALM_GUEST_STOP);
  CHECK_EQ_INT(sandbox_instance_finish_reason(inst, 3), REALM_GUEST_FINISH_STOP);
  CHECK_EQ_INT(sandbox_call_request_end(inst, 3, 0, err, sizeof err), 0);
  printf("# example guest wrote '%s'\n", r.text);
  CHECK_STR_EQ(r.text, "hiB");
  CHECK_EQ_INT(r.n_fed, 1);
  CHECK_EQ_INT(r.fed[0], 0);
  sandbox_instance_free(inst);
  sandbox_module_free(m);
}

/* ---- the imports added to ABI v1 later (tests/guests/abi_additions.wat) ---- */

/* A host that also serves the new callbacks: one metadata key, two merges, and records the
 * top logprobs and the finish reason it is told. */
struct rec2 {
  struct rec base;
  struct realm_top_logprob top[REALM_GUEST_MAX_TOP_LOGPROBS];
  uint32_t n_top;
  int top_calls;
  int32_t finish_cb;
  char meta_key[64];
};

static int rec2_meta(void *user, const char *key, const char **ret, uint32_t *ret_len) {
  struct rec2 *r = user;
  snprintf(r->meta_key, sizeof r->meta_key, "%s", key);
  if (strcmp(key, REALM_META_TOKENIZER_PRE) != 0) return REALM_GUEST_E_NOT_FOUND;
  *ret = "gpt-2";
  *ret_len = 5;
  return 0;
}

static int rec2_merge_count(void *user) {
  (void)user;
  return 2;
}

static int rec2_merge(void *user, uint32_t i, const char **ret, uint32_t *ret_len) {
  (void)user;
  static const char *const merges[] = {"a b", "ab c"};
  if (i >= 2) return REALM_GUEST_E_NOT_FOUND;
  *ret = merges[i];
  *ret_len = (uint32_t)strlen(merges[i]);
  return 0;
}

static int rec2_top(void *user, uint32_t req_id, const struct realm_top_logprob *top, uint32_t n) {
  (void)req_id;
  struct rec2 *r = user;
  memcpy(r->top, top, n * sizeof *top);
  r->n_top = n;
  r->top_calls++;
  return 0;
}

static int rec2_finish(void *user, uint32_t req_id, int32_t reason) {
  (void)req_id;
  ((struct rec2 *)user)->finish_cb = reason;
  return 0;
}

/* Runs one request of abi_additions with req_id; *ret_begin_rc / *ret_logits_rc are the
 * sandbox results, *ret_reason the finish reason read before request_end. */
static void run_additions(struct sandbox_host *h, uint32_t req_id, int *ret_begin_rc,
                          int *ret_logits_rc, int32_t *ret_action, int32_t *ret_reason,
                          uint64_t *ret_out_bytes, char *err, size_t errlen) {
  struct sandbox_module *m = NULL;
  struct sandbox_instance *inst = NULL;
  *ret_begin_rc = *ret_logits_rc = -1;
  if (load("abi_additions", &m, err, errlen) < 0 ||
      sandbox_instance_new(m, NULL, h, &inst, err, errlen) < 0) {
    printf("# abi_additions: %s\n", err);
    sandbox_module_free(m);
    return;
  }
  uint8_t req[256];
  uint32_t rl = make_request(req, sizeof req);
  int32_t st = -1;
  *ret_begin_rc = sandbox_call_request_begin(inst, req_id, req, rl, &st, err, errlen);
  if (*ret_begin_rc == 0) {
    CHECK_EQ_INT(st, 0);
    CHECK_EQ_INT(sandbox_instance_finish_reason(inst, req_id), REALM_GUEST_FINISH_NONE);
    float lg[5] = {0, 1, 0, 0, 0};
    *ret_logits_rc = sandbox_call_logits(inst, req_id, lg, 5, ret_action, err, errlen);
    *ret_reason = sandbox_instance_finish_reason(inst, req_id);
    *ret_out_bytes = sandbox_instance_output_bytes(inst, req_id);
    char err2[256];
    sandbox_call_request_end(inst, req_id, 0, err2, sizeof err2);
    /* forgotten with the request */
    CHECK_EQ_INT(sandbox_instance_finish_reason(inst, req_id), REALM_GUEST_FINISH_NONE);
  }
  sandbox_instance_free(inst);
  sandbox_module_free(m);
}

TEST(abi_additions_served_by_host_callbacks) {
  struct rec2 r;
  struct sandbox_host h = rec_host(&r.base);
  memset(&r, 0, sizeof r);
  h.user = &r;
  h.model_meta = rec2_meta;
  h.merge_count = rec2_merge_count;
  h.merge = rec2_merge;
  h.emit_top_logprobs = rec2_top;
  h.finish = rec2_finish;
  char err[512] = "";
  int brc, lrc;
  int32_t action = 0, reason = -1;
  uint64_t out_bytes = 0;
  run_additions(&h, 5, &brc, &lrc, &action, &reason, &out_bytes, err, sizeof err);
  CHECK_EQ_INT(brc, 0);
  CHECK_EQ_INT(lrc, 0);
  /* begin: meta value, not found, too small (length, nothing written), merges, bad reason,
   * empty key */
  const int32_t want_begin[9] = {5, REALM_GUEST_E_NOT_FOUND, 5, 0, 2, 3, REALM_GUEST_E_NOT_FOUND,
                                 REALM_GUEST_E_INVALID, REALM_GUEST_E_INVALID};
  CHECK_EQ_INT(r.base.n_fed, 12);
  for (int i = 0; i < 9; i++) CHECK_EQ_INT(r.base.fed[i], want_begin[i]);
  CHECK_STR_EQ(r.base.text, "gpt-2a bx");
  CHECK_STR_EQ(r.meta_key, "tokenizer.ggml.pre"); /* the last key asked, NUL-terminated */
  /* logits: top logprobs accepted (unaligned source), 21 refused, finish accepted */
  CHECK_EQ_INT(r.base.fed[9], 0);
  CHECK_EQ_INT(r.base.fed[10], REALM_GUEST_E_INVALID);
  CHECK_EQ_INT(r.base.fed[11], 0);
  CHECK_EQ_INT(r.top_calls, 1);
  CHECK_EQ_INT(r.n_top, 2);
  CHECK_EQ_INT(r.top[0].token, 1);
  CHECK_NEAR(r.top[0].logprob, -0.5, 1e-6);
  CHECK_EQ_INT(r.top[1].token, 2);
  CHECK_NEAR(r.top[1].logprob, -1.5, 1e-6);
  CHECK_EQ_INT(action, REALM_GUEST_STOP);
  CHECK_EQ_INT(reason, REALM_GUEST_FINISH_LENGTH);
  CHECK_EQ_INT(r.finish_cb, REALM_GUEST_FINISH_LENGTH);
  /* output: "gpt-2" + "a b" + "x" + 2 alternatives x 8 bytes */
  CHECK_EQ_INT(out_bytes, 5 + 3 + 1 + 16);
}

TEST(abi_additions_default_without_host_callbacks) {
  /* A host table written before the additions (the new fields NULL). */
  struct rec r;
  struct sandbox_host h = rec_host(&r);
  char err[512] = "";
  int brc, lrc;
  int32_t action = 0, reason = -1;
  uint64_t out_bytes = 0;
  run_additions(&h, 5, &brc, &lrc, &action, &reason, &out_bytes, err, sizeof err);
  CHECK_EQ_INT(brc, 0);
  CHECK_EQ_INT(lrc, 0);
  const int32_t want[12] = {REALM_GUEST_E_UNSUPPORTED, REALM_GUEST_E_UNSUPPORTED,
                            REALM_GUEST_E_UNSUPPORTED, 0, REALM_GUEST_E_UNSUPPORTED,
                            REALM_GUEST_E_UNSUPPORTED, REALM_GUEST_E_UNSUPPORTED,
                            REALM_GUEST_E_INVALID, REALM_GUEST_E_INVALID,
                            0 /* top logprobs dropped */, REALM_GUEST_E_INVALID,
                            0 /* finish recorded */};
  CHECK_EQ_INT(r.n_fed, 12);
  for (int i = 0; i < 12; i++) CHECK_EQ_INT(r.fed[i], want[i]);
  CHECK_STR_EQ(r.text, "x");
  CHECK_EQ_INT(action, REALM_GUEST_STOP);
  CHECK_EQ_INT(reason, REALM_GUEST_FINISH_LENGTH); /* readable without a finish callback */
  CHECK_EQ_INT(out_bytes, 1 + 16);
  CHECK(good_guest_works());
}

TEST(abi_additions_bad_pointer_and_unknown_request_are_caught) {
  struct rec r;
  struct sandbox_host h = rec_host(&r);
  char err[512] = "";
  int brc, lrc;
  int32_t action = 0, reason = -1;
  uint64_t out_bytes = 0;
  run_additions(&h, 99, &brc, &lrc, &action, &reason, &out_bytes, err, sizeof err);
  printf("# id 99 -> %d: %s\n", lrc, err);
  CHECK_EQ_INT(brc, 0);
  CHECK_EQ_INT(lrc, REALM_E_GUEST_TRAP);
  CHECK_STR_CONTAINS(err, "bad pointer passed to realm_emit_top_logprobs: top range [0xfffffff0, "
                          "0x100000000) is outside guest memory");
  run_additions(&h, 98, &brc, &lrc, &action, &reason, &out_bytes, err, sizeof err);
  printf("# id 98 -> %d: %s\n", lrc, err);
  CHECK_EQ_INT(lrc, REALM_E_GUEST_TRAP);
  CHECK_STR_CONTAINS(err, "realm_finish: request id 12345 is not active");
  CHECK(good_guest_works());
}

TEST(zz_release_shared_module) {
  /* Last test (declaration order): frees the good module once all instances are gone. */
  CHECK(good_guest_works());
  sandbox_module_free(g_good);
  g_good = NULL;
}
