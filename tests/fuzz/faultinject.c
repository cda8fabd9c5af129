/*
 * faultinject.c — allocation-failure tests, SQLite style, for the GGUF reader and writer and
 * the frame decoder.
 *
 * run.sh links this program with -Wl,--wrap=malloc,calloc,realloc,strdup,strndup, so every
 * allocation made by the code under test (gguf.c, gguf_write.c, frame.c and the generated
 * protobuf-c descriptors; libc's and libprotobuf-c's own internals are not wrapped) goes
 * through the countdown below. Each case is rerun with the 1st, 2nd, 3rd ... allocation
 * failing until a run completes without reaching the failure point. Every run must end in
 * success or in a clean REALM_E_NOMEM with a message — never a crash, a wrong error code, a
 * half-filled output, or a leak (LeakSanitizer checks after every case).
 *
 * Usage: faultinject [REAL.gguf]   (a real model file adds a case over its whole header)
 * Prints one "faultinject: CASE: N allocation points, all clean" line per case; exits 1 on the
 * first violation with a message naming the case and the allocation index.
 */
#include <errno.h>
#include <fcntl.h>
#include <sanitizer/lsan_interface.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_write.h"
#include "realm/error.h"
#include "realm/frame.h"
#include "realm/proto.h"

/* ---- the countdown allocator ---------------------------------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static long g_fail_at;  /* 0: never fail; else fail the g_fail_at-th counted allocation */
static long g_count;    /* allocations counted since arm() */
static bool g_injected; /* the failure point was reached in this run */

static void arm(long fail_at) {
  g_fail_at = fail_at;
  g_count = 0;
  g_injected = false;
}

static void disarm(void) { g_fail_at = 0; }

/* True when this allocation is the one to fail. Only the chosen one fails (not every later
 * one), so the code's cleanup path itself runs with a working allocator, as in SQLite's
 * "transient" fault mode. */
static bool should_fail(void) {
  if (g_fail_at == 0) return false;
  if (++g_count == g_fail_at) {
    g_injected = true;
    return true;
  }
  return false;
}

void *__wrap_malloc(size_t n) { return should_fail() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { return should_fail() ? NULL : __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { return should_fail() ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return should_fail() ? NULL : __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n) {
  return should_fail() ? NULL : __real_strndup(s, n);
}

/* ---- harness ------------------------------------------------------------------------------ */

#define MAX_POINTS 100000

static void fail_case(const char *name, long n, const char *what, const char *detail) {
  fprintf(stderr, "faultinject: %s: allocation %ld failing: %s%s%s\n", name, n, what,
          detail && *detail ? ": " : "", detail ? detail : "");
  exit(1);
}

static void leak_check(const char *name) {
  if (__lsan_do_recoverable_leak_check() != 0) {
    fprintf(stderr, "faultinject: %s: leaks (report above)\n", name);
    exit(1);
  }
}

/* Runs ONE(ctx) with allocation 1, 2, ... failing until a run reaches no failure point. ONE
 * returns the realm code and must leave no allocation behind; on success it frees its result
 * itself. Returns the number of allocation points seen. */
typedef int (*case_fn)(void *ctx, char *err, size_t errlen);

static long run_case(const char *name, case_fn one, void *ctx) {
  long n;
  for (n = 1; n <= MAX_POINTS; n++) {
    char err[256] = "";
    arm(n);
    int rc = one(ctx, err, sizeof err);
    bool injected = g_injected;
    disarm();
    if (!injected) {
      if (rc != 0) fail_case(name, n, "fails without an injected failure", err);
      break;
    }
    if (rc != 0 && rc != REALM_E_NOMEM) {
      char what[96];
      snprintf(what, sizeof what, "error %s instead of out_of_memory", realm_err_name(rc));
      fail_case(name, n, what, err);
    }
    if (rc == REALM_E_NOMEM && err[0] == '\0') fail_case(name, n, "NOMEM without a message", "");
  }
  if (n > MAX_POINTS) fail_case(name, n, "did not finish", "");
  leak_check(name);
  printf("faultinject: %s: %ld allocation points, all clean\n", name, n - 1);
  return n - 1;
}

/* ---- cases -------------------------------------------------------------------------------- */

struct buf {
  uint8_t *p;
  size_t len;
};

static int case_gguf_open(void *ctx, char *err, size_t errlen) {
  const struct buf *b = ctx;
  struct gguf_file *f = NULL;
  int rc = gguf_open_buffer(b->p, b->len, &f, err, errlen);
  if (rc < 0 && f != NULL) fail_case("gguf_open_buffer", g_count, "ret_file written on failure", "");
  if (rc == 0) {
    /* A usable result: lookups work on whatever was built. */
    if (gguf_kv_count(f) > 0 && !gguf_kv_at(f, 0)) return REALM_E_INTERNAL;
    gguf_close(f);
  }
  return rc;
}

/* Writes a small model through the writer into a memfd and returns its bytes (allocation
 * failures disarmed) — also a case of its own below. */
static int write_model(int fd, char *err, size_t errlen) {
  struct gguf_writer *w = NULL;
  int rc = gguf_writer_new(&w, err, errlen);
  if (rc < 0) return rc;
  static const char *const toks[] = {"<unk>", "<s>", "</s>", "a", "b"};
  static const float scores[] = {0, 0, 0, -1, -2};
  const uint64_t ne[2] = {32, 2};
  if ((rc = gguf_writer_add_str(w, "general.architecture", "llama")) < 0 ||
      (rc = gguf_writer_add_u32(w, "llama.block_count", 1)) < 0 ||
      (rc = gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", toks, 5)) < 0 ||
      (rc = gguf_writer_add_f32_arr(w, "tokenizer.ggml.scores", scores, 5)) < 0 ||
      (rc = gguf_writer_add_tensor(w, "token_embd.weight", 2, ne, GGML_TYPE_F32)) < 0 ||
      (rc = gguf_writer_add_tensor(w, "output.weight", 2, ne, GGML_TYPE_Q8_0)) < 0 ||
      (rc = gguf_writer_begin(w, fd)) < 0)
    goto out;
  static uint8_t data[32 * 2 * 4];
  size_t q8 = 2 * ggml_type_block_bytes(GGML_TYPE_Q8_0);
  if ((rc = gguf_writer_write(w, data, sizeof data)) < 0 || (rc = gguf_writer_write(w, data, q8)) < 0)
    goto out;
  rc = gguf_writer_finish(w);
out:
  gguf_writer_free(w);
  return rc;
}

static int case_gguf_write(void *ctx, char *err, size_t errlen) {
  (void)ctx;
  int fd = memfd_create("faultinject", MFD_CLOEXEC);
  if (fd < 0) return REALM_E_SYSTEM;
  int rc = write_model(fd, err, errlen);
  close(fd);
  return rc;
}

struct frame_ctx {
  uint8_t buf[4096];
  size_t len;
  unsigned kind;
};

static int case_frame_decode(void *ctx, char *err, size_t errlen) {
  const struct frame_ctx *c = ctx;
  ProtobufCMessage *m = NULL;
  int rc = realm_frame_decode(c->buf, c->len, c->kind, realm_proto_descriptor(c->kind), 0, &m,
                              err, errlen);
  if (rc < 0 && m != NULL) fail_case("frame", g_count, "ret_msg written on failure", "");
  realm_frame_msg_free(m);
  return rc;
}

static void encode_frame(struct frame_ctx *c, unsigned kind, const ProtobufCMessage *m) {
  char err[256];
  c->kind = kind;
  if (realm_frame_encode(kind, m, c->buf, sizeof c->buf, &c->len, err, sizeof err) < 0) {
    fprintf(stderr, "faultinject: encode: %s\n", err);
    exit(1);
  }
}

static void frame_cases(void) {
  struct frame_ctx c;
  /* A chat generate request: nested messages, repeated strings, a map. */
  Realm__V1__ChatMessage m1 = REALM__V1__CHAT_MESSAGE__INIT, m2 = REALM__V1__CHAT_MESSAGE__INIT;
  m1.role = "system";
  m1.content = "Be brief.";
  m2.role = "user";
  m2.content = "Hello";
  Realm__V1__ChatMessage *msgs[2] = {&m1, &m2};
  Realm__V1__ChatPrompt chat = REALM__V1__CHAT_PROMPT__INIT;
  chat.n_messages = 2;
  chat.messages = msgs;
  Realm__V1__SamplingParams sp = REALM__V1__SAMPLING_PARAMS__INIT;
  char *stops[2] = {"\nUser:", "###"};
  sp.n_stop = 2;
  sp.stop = stops;
  Realm__V1__SamplingParams__LogitBiasEntry lb = REALM__V1__SAMPLING_PARAMS__LOGIT_BIAS_ENTRY__INIT;
  lb.key = 7;
  lb.value = 1.5f;
  Realm__V1__SamplingParams__LogitBiasEntry *lbs[1] = {&lb};
  sp.n_logit_bias = 1;
  sp.logit_bias = lbs;
  Realm__V1__GenerateRequest gen = REALM__V1__GENERATE_REQUEST__INIT;
  gen.request_id = "req-1";
  gen.tenant_id = "acme";
  gen.model = "m";
  gen.input_case = REALM__V1__GENERATE_REQUEST__INPUT_CHAT;
  gen.chat = &chat;
  gen.sampling = &sp;
  Realm__V1__RunnerRequest rr = REALM__V1__RUNNER_REQUEST__INIT;
  rr.body_case = REALM__V1__RUNNER_REQUEST__BODY_GENERATE;
  rr.generate = &gen;
  encode_frame(&c, REALM_FRAME_RUNNER_REQUEST, &rr.base);
  run_case("realm_frame_decode(RunnerRequest chat)", case_frame_decode, &c);

  /* A step reply with two results, one carrying an error. */
  Realm__V1__Error e = REALM__V1__ERROR__INIT;
  realm_proto_error_set(&e, REALM_E_OUT_OF_RANGE, "session 9 is closed", "session_id");
  Realm__V1__StepResult r1 = REALM__V1__STEP_RESULT__INIT, r2 = REALM__V1__STEP_RESULT__INIT;
  static uint8_t logits[64];
  r1.session_id = 1;
  r1.logits_inline.data = logits;
  r1.logits_inline.len = sizeof logits;
  r2.session_id = 9;
  r2.error = &e;
  Realm__V1__StepResult *rs[2] = {&r1, &r2};
  Realm__V1__StepReply srep = REALM__V1__STEP_REPLY__INIT;
  srep.n_results = 2;
  srep.results = rs;
  Realm__V1__WorkerReply wp = REALM__V1__WORKER_REPLY__INIT;
  wp.request_id = 2;
  wp.body_case = REALM__V1__WORKER_REPLY__BODY_STEP;
  wp.step = &srep;
  encode_frame(&c, REALM_FRAME_WORKER_REPLY, &wp.base);
  run_case("realm_frame_decode(WorkerReply step)", case_frame_decode, &c);
}

static struct buf read_file(const char *path) {
  struct buf b = {0};
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    fprintf(stderr, "faultinject: %s: %s\n", path, strerror(errno));
    exit(1);
  }
  b.len = (size_t)st.st_size;
  b.p = malloc(b.len ? b.len : 1);
  size_t got = 0;
  while (b.p && got < b.len) {
    ssize_t r = read(fd, b.p + got, b.len - got);
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  if (!b.p || got != b.len) {
    fprintf(stderr, "faultinject: %s: short read\n", path);
    exit(1);
  }
  return b;
}

int main(int argc, char **argv) {
  /* A synthesized model: written once with a working allocator, then read under faults. */
  char err[256] = "";
  int fd = memfd_create("faultinject-model", MFD_CLOEXEC);
  if (fd < 0 || write_model(fd, err, sizeof err) < 0) {
    fprintf(stderr, "faultinject: writing the model: %s\n", err);
    return 1;
  }
  struct buf synth = {0};
  synth.len = (size_t)lseek(fd, 0, SEEK_END);
  synth.p = malloc(synth.len);
  if (!synth.p || pread(fd, synth.p, synth.len, 0) != (ssize_t)synth.len) {
    fprintf(stderr, "faultinject: reading back the model failed\n");
    return 1;
  }
  close(fd);

  run_case("gguf_writer (synthesized model)", case_gguf_write, NULL);
  run_case("gguf_open_buffer (synthesized model)", case_gguf_open, &synth);
  free(synth.p);
  if (argc > 1) {
    struct buf real = read_file(argv[1]);
    char name[512];
    snprintf(name, sizeof name, "gguf_open_buffer (%s)", argv[1]);
    run_case(name, case_gguf_open, &real);
    free(real.p);
  }
  frame_cases();
  return 0;
}
