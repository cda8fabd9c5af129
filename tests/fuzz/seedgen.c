/*
 * seedgen.c — writes the seed corpora of the fuzz targets into a directory (run.sh calls it
 * with $FUZZ_DIR/seeds), so that no binary seed is ever committed.
 *
 * Seeds are small valid inputs that reach deep into each parser at once: GGUF files written by
 * the real writer (every metadata type, every tensor type, a non-default alignment), one
 * encoded frame per envelope and body variant, typical chat and completion bodies, request
 * blobs built with the SDK's builder, and stream scripts with stop strings. The fuzzer mutates
 * from there. run.sh adds the heads of the shared model files and the vocabularies' test texts.
 * Usage: seedgen DIR (creates DIR/<target>/).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf_write.h"
#include "guest_request.h"
#include "realm/frame.h"
#include "realm/proto.h"
#include "realm_guest.h"

static const char *g_dir;

static void die(const char *what, const char *detail) {
  fprintf(stderr, "seedgen: %s: %s\n", what, detail);
  exit(1);
}

static void mkdir_target(const char *target) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", g_dir, target);
  if (mkdir(path, 0755) < 0 && errno != EEXIST) die(path, strerror(errno));
}

static void write_seed(const char *target, const char *name, const void *data, size_t len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s/%s", g_dir, target, name);
  FILE *fp = fopen(path, "wb");
  if (!fp) die(path, strerror(errno));
  if (len && fwrite(data, 1, len, fp) != len) die(path, "short write");
  if (fclose(fp) != 0) die(path, strerror(errno));
}

/* ---- GGUF ---------------------------------------------------------------------------------- */

#define CHECK_W(expr)                              \
  do {                                             \
    if ((expr) < 0) die("gguf writer", err);       \
  } while (0)

static void gguf_seed(const char *name, uint32_t alignment, int with_tensors, int with_vocab) {
  char err[256] = "";
  struct gguf_writer *w = NULL;
  CHECK_W(gguf_writer_new(&w, err, sizeof err));
  if (alignment != 32) CHECK_W(gguf_writer_set_alignment(w, alignment));
  CHECK_W(gguf_writer_add_str(w, "general.architecture", "llama"));
  CHECK_W(gguf_writer_add_u32(w, "llama.block_count", 1));
  CHECK_W(gguf_writer_add_i32(w, "llama.signed", -7));
  CHECK_W(gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f));
  CHECK_W(gguf_writer_add_bool(w, "tokenizer.ggml.add_space_prefix", true));
  if (with_vocab) {
    static const char *const toks[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b", "ab"};
    static const float scores[] = {0, 0, 0, -1, -2, -3, -1.5f};
    static const int32_t types[] = {2, 3, 3, 1, 1, 1, 1};
    static const char *const merges[] = {"a b"};
    CHECK_W(gguf_writer_add_str(w, "tokenizer.ggml.model", "llama"));
    CHECK_W(gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", toks, 7));
    CHECK_W(gguf_writer_add_f32_arr(w, "tokenizer.ggml.scores", scores, 7));
    CHECK_W(gguf_writer_add_i32_arr(w, "tokenizer.ggml.token_type", types, 7));
    CHECK_W(gguf_writer_add_str_arr(w, "tokenizer.ggml.merges", merges, 1));
  }
  size_t data_bytes = 0;
  if (with_tensors) {
    const uint64_t ne_f32[2] = {4, 2}, ne_f16[1] = {8}, ne_q[2] = {32, 1}, ne_bf[1] = {4};
    CHECK_W(gguf_writer_add_tensor(w, "token_embd.weight", 2, ne_f32, GGML_TYPE_F32));
    CHECK_W(gguf_writer_add_tensor(w, "output_norm.weight", 1, ne_f16, GGML_TYPE_F16));
    CHECK_W(gguf_writer_add_tensor(w, "blk.0.attn_q.weight", 2, ne_q, GGML_TYPE_Q8_0));
    CHECK_W(gguf_writer_add_tensor(w, "blk.0.attn_k.weight", 2, ne_q, GGML_TYPE_Q4_0));
    CHECK_W(gguf_writer_add_tensor(w, "blk.0.ffn_norm.weight", 1, ne_bf, GGML_TYPE_BF16));
    data_bytes = 4 * 2 * 4 + 8 * 2 + ggml_type_block_bytes(GGML_TYPE_Q8_0) +
                 ggml_type_block_bytes(GGML_TYPE_Q4_0) + 4 * 2;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/gguf/%s", g_dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die(path, strerror(errno));
  CHECK_W(gguf_writer_begin(w, fd));
  if (data_bytes) {
    uint8_t *zeros = calloc(1, data_bytes);
    if (!zeros) die("calloc", "out of memory");
    /* Non-zero bytes so the fuzzer sees real-looking scales, one tensor at a time. */
    for (size_t i = 0; i < data_bytes; i++) zeros[i] = (uint8_t)(i * 37u + 11u);
    CHECK_W(gguf_writer_write(w, zeros, data_bytes));
    free(zeros);
  }
  CHECK_W(gguf_writer_finish(w));
  gguf_writer_free(w);
  close(fd);
}

/* ---- frames -------------------------------------------------------------------------------- */

static void frame_seed(const char *name, unsigned kind, const ProtobufCMessage *m) {
  uint8_t buf[4096];
  size_t len = 0;
  char err[256];
  if (realm_frame_encode(kind, m, buf + 1, sizeof buf - 1, &len, err, sizeof err) < 0)
    die("frame encode", err);
  char n[256];
  /* Mode 0 (whole frame) ... */
  buf[0] = 0;
  snprintf(n, sizeof n, "raw-%s", name);
  write_seed("frame", n, buf, len + 1);
  /* ... and mode 1 (payload only; kind in bits 1..2): see fuzz_frame.c. */
  uint8_t mode = (uint8_t)(1u | ((kind - REALM_FRAME_KIND_MIN) << 1));
  buf[REALM_FRAME_HEADER_BYTES] = mode;
  snprintf(n, sizeof n, "payload-%s", name);
  write_seed("frame", n, buf + REALM_FRAME_HEADER_BYTES, len + 1 - REALM_FRAME_HEADER_BYTES);
}

static void frame_seeds(void) {
  /* RunnerRequest: a chat generate with every sampling field set. */
  Realm__V1__ChatMessage m1 = REALM__V1__CHAT_MESSAGE__INIT, m2 = REALM__V1__CHAT_MESSAGE__INIT;
  m1.role = "system";
  m1.content = "You are terse.";
  m2.role = "user";
  m2.content = "Hello \xf0\x9f\x98\x80";
  Realm__V1__ChatMessage *msgs[2] = {&m1, &m2};
  Realm__V1__ChatPrompt chat = REALM__V1__CHAT_PROMPT__INIT;
  chat.n_messages = 2;
  chat.messages = msgs;
  Realm__V1__SamplingParams sp = REALM__V1__SAMPLING_PARAMS__INIT;
  sp.max_tokens = 16;
  sp.has_temperature = 1;
  sp.temperature = 0.7f;
  sp.has_top_p = 1;
  sp.top_p = 0.9f;
  sp.top_k = 40;
  sp.has_seed = 1;
  sp.seed = -3;
  char *stops[2] = {"\nUser:", "###"};
  sp.n_stop = 2;
  sp.stop = stops;
  int32_t stop_ids[2] = {2, 32000};
  sp.n_stop_token_ids = 2;
  sp.stop_token_ids = stop_ids;
  sp.logprobs = 1;
  sp.top_logprobs = 3;
  Realm__V1__SamplingParams__LogitBiasEntry lb = REALM__V1__SAMPLING_PARAMS__LOGIT_BIAS_ENTRY__INIT;
  lb.key = 50256;
  lb.value = -100.0f;
  Realm__V1__SamplingParams__LogitBiasEntry *lbs[1] = {&lb};
  sp.n_logit_bias = 1;
  sp.logit_bias = lbs;
  Realm__V1__GenerateRequest gen = REALM__V1__GENERATE_REQUEST__INIT;
  gen.request_id = "req-1";
  gen.tenant_id = "acme";
  gen.model = "stories260K";
  gen.input_case = REALM__V1__GENERATE_REQUEST__INPUT_CHAT;
  gen.chat = &chat;
  gen.sampling = &sp;
  gen.n = 1;
  gen.stream = 1;
  gen.include_usage = 1;
  Realm__V1__RunnerRequest rr = REALM__V1__RUNNER_REQUEST__INIT;
  rr.body_case = REALM__V1__RUNNER_REQUEST__BODY_GENERATE;
  rr.generate = &gen;
  frame_seed("runner-request-chat", REALM_FRAME_RUNNER_REQUEST, &rr.base);

  Realm__V1__TokenPrompt tp = REALM__V1__TOKEN_PROMPT__INIT;
  int32_t toks[4] = {1, 450, 4996, 17354};
  tp.n_tokens = 4;
  tp.tokens = toks;
  gen.input_case = REALM__V1__GENERATE_REQUEST__INPUT_TOKENS;
  gen.tokens = &tp;
  frame_seed("runner-request-tokens", REALM_FRAME_RUNNER_REQUEST, &rr.base);
  gen.input_case = REALM__V1__GENERATE_REQUEST__INPUT_PROMPT;
  gen.prompt = "Once upon a time";
  frame_seed("runner-request-prompt", REALM_FRAME_RUNNER_REQUEST, &rr.base);

  Realm__V1__CancelRequest cancel = REALM__V1__CANCEL_REQUEST__INIT;
  cancel.request_id = "req-1";
  Realm__V1__RunnerRequest rc = REALM__V1__RUNNER_REQUEST__INIT;
  rc.body_case = REALM__V1__RUNNER_REQUEST__BODY_CANCEL;
  rc.cancel = &cancel;
  frame_seed("runner-request-cancel", REALM_FRAME_RUNNER_REQUEST, &rc.base);

  /* RunnerEvent: a token, a finish with usage, an error. */
  Realm__V1__Token tok = REALM__V1__TOKEN__INIT;
  tok.text.data = (uint8_t *)"Once";
  tok.text.len = 4;
  tok.token_id = 9038;
  Realm__V1__GenerateEvent ev = REALM__V1__GENERATE_EVENT__INIT;
  ev.request_id = "req-1";
  ev.kind_case = REALM__V1__GENERATE_EVENT__KIND_TOKEN;
  ev.token = &tok;
  Realm__V1__RunnerEvent re = REALM__V1__RUNNER_EVENT__INIT;
  re.body_case = REALM__V1__RUNNER_EVENT__BODY_EVENT;
  re.event = &ev;
  frame_seed("runner-event-token", REALM_FRAME_RUNNER_EVENT, &re.base);
  Realm__V1__Usage usage = REALM__V1__USAGE__INIT;
  usage.prompt_tokens = 5;
  usage.completion_tokens = 16;
  Realm__V1__Finish fin = REALM__V1__FINISH__INIT;
  fin.reason = REALM__V1__FINISH_REASON__FINISH_REASON_LENGTH;
  fin.usage = &usage;
  ev.kind_case = REALM__V1__GENERATE_EVENT__KIND_FINISH;
  ev.finish = &fin;
  frame_seed("runner-event-finish", REALM_FRAME_RUNNER_EVENT, &re.base);
  Realm__V1__Error e = REALM__V1__ERROR__INIT;
  realm_proto_error_set(&e, REALM_E_GUEST_TRAP, "guest trapped: out of bounds", "model");
  Realm__V1__RunnerEvent rerr = REALM__V1__RUNNER_EVENT__INIT;
  rerr.body_case = REALM__V1__RUNNER_EVENT__BODY_ERROR;
  rerr.error = &e;
  frame_seed("runner-event-error", REALM_FRAME_RUNNER_EVENT, &rerr.base);

  /* WorkerRequest: hello, a step with two entries, a matmul. */
  Realm__V1__Hello hello = REALM__V1__HELLO__INIT;
  hello.tenant_id = "acme";
  hello.replica_id = "acme-0";
  hello.weight = 1;
  hello.kv_quota_tokens = 4096;
  hello.wants_shm = 1;
  hello.shm_bytes = 1 << 20;
  Realm__V1__WorkerRequest wr = REALM__V1__WORKER_REQUEST__INIT;
  wr.request_id = 1;
  wr.body_case = REALM__V1__WORKER_REQUEST__BODY_HELLO;
  wr.hello = &hello;
  frame_seed("worker-request-hello", REALM_FRAME_WORKER_REQUEST, &wr.base);
  Realm__V1__StepEntry se1 = REALM__V1__STEP_ENTRY__INIT, se2 = REALM__V1__STEP_ENTRY__INIT;
  se1.session_id = 1;
  se1.n_tokens = 4;
  se1.n_tokens_inline = 4;
  se1.tokens_inline = toks;
  se1.n_logits = 1;
  se2.session_id = 2;
  se2.n_tokens = 1;
  se2.tokens_offset = 64;
  se2.n_logits = 1;
  se2.logits_offset = 128;
  Realm__V1__StepEntry *ses[2] = {&se1, &se2};
  Realm__V1__Step step = REALM__V1__STEP__INIT;
  step.n_entries = 2;
  step.entries = ses;
  wr.request_id = 2;
  wr.body_case = REALM__V1__WORKER_REQUEST__BODY_STEP;
  wr.step = &step;
  frame_seed("worker-request-step", REALM_FRAME_WORKER_REQUEST, &wr.base);
  Realm__V1__Matmul mm = REALM__V1__MATMUL__INIT;
  mm.tensor = "output.weight";
  mm.n_rows = 1;
  static uint8_t act[16];
  mm.input_inline.data = act;
  mm.input_inline.len = sizeof act;
  wr.request_id = 3;
  wr.body_case = REALM__V1__WORKER_REQUEST__BODY_MATMUL;
  wr.matmul = &mm;
  frame_seed("worker-request-matmul", REALM_FRAME_WORKER_REQUEST, &wr.base);

  /* WorkerReply: hello reply with model info, a step reply. */
  Realm__V1__ModelInfo mi = REALM__V1__MODEL_INFO__INIT;
  mi.name = "stories260K";
  mi.architecture = "llama";
  mi.vocab_size = 512;
  mi.n_ctx = 512;
  mi.n_embd = 64;
  mi.n_layer = 5;
  mi.n_head = 8;
  mi.n_head_kv = 4;
  mi.bos_token_id = 1;
  mi.eos_token_id = 2;
  Realm__V1__HelloReply hr = REALM__V1__HELLO_REPLY__INIT;
  hr.connection_id = 9;
  hr.model = &mi;
  hr.shm_bytes = 1 << 20;
  hr.shm_socket_path = "/tmp/realm-worker.shm";
  static uint8_t token[32];
  hr.shm_token.data = token;
  hr.shm_token.len = sizeof token;
  Realm__V1__WorkerReply wp = REALM__V1__WORKER_REPLY__INIT;
  wp.request_id = 1;
  wp.body_case = REALM__V1__WORKER_REPLY__BODY_HELLO;
  wp.hello = &hr;
  frame_seed("worker-reply-hello", REALM_FRAME_WORKER_REPLY, &wp.base);
  Realm__V1__StepResult res = REALM__V1__STEP_RESULT__INIT;
  res.session_id = 1;
  res.n_past = 5;
  static uint8_t logits[64];
  res.logits_inline.data = logits;
  res.logits_inline.len = sizeof logits;
  Realm__V1__StepResult *resv[1] = {&res};
  Realm__V1__StepReply srep = REALM__V1__STEP_REPLY__INIT;
  srep.n_results = 1;
  srep.results = resv;
  wp.request_id = 2;
  wp.body_case = REALM__V1__WORKER_REPLY__BODY_STEP;
  wp.step = &srep;
  frame_seed("worker-reply-step", REALM_FRAME_WORKER_REPLY, &wp.base);
}

/* ---- gateway bodies, tokenizer texts, stream scripts, request blobs ---------------------- */

static void text_seed(const char *target, const char *name, const char *s) {
  write_seed(target, name, s, strlen(s));
}

static void gateway_seeds(void) {
  text_seed("gateway_request", "chat-min", "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
  text_seed("gateway_request", "chat-full",
            "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
            "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hello \"},{\"type\":\"text\","
            "\"text\":\"there\"}],\"name\":\"bob\"},{\"role\":\"assistant\",\"content\":null},"
            "{\"role\":\"tool\",\"content\":\"42\",\"tool_call_id\":\"call_1\"}],"
            "\"max_tokens\":32,\"max_completion_tokens\":16,\"temperature\":0.7,\"top_p\":0.9,"
            "\"stop\":[\"\\nUser:\",\"###\"],\"seed\":-5,\"presence_penalty\":0.5,"
            "\"frequency_penalty\":-0.5,\"logit_bias\":{\"50256\":-100,\"13\":2.5},\"logprobs\":true,"
            "\"top_logprobs\":3,\"user\":\"u-1\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
            "\"n\":1}");
  text_seed("gateway_request", "completion-min", "{\"model\":\"m\",\"prompt\":\"Once upon a time\"}");
  text_seed("gateway_request", "completion-full",
            "{\"model\":\"m\",\"prompt\":[\"Once upon a time\"],\"max_tokens\":8,\"temperature\":0,"
            "\"stop\":\"\\n\",\"seed\":42,\"logprobs\":2,\"echo\":false,\"stream\":false,\"suffix\":null}");
  text_seed("gateway_request", "unicode",
            "{\"model\":\"m\",\"prompt\":\"\\u00e9\\ud83d\\ude00 \xe2\x82\xac\",\"messages\":[{\"role\":\"user\","
            "\"content\":\"\\u2581x\"}]}");
}

static void tokenizer_seeds(void) {
  text_seed("tokenizer", "ascii", "Hello world, this is a test. 12345 don't");
  text_seed("tokenizer", "spaces", "  leading\tand\n\ntrailing   ");
  text_seed("tokenizer", "unicode", "\xc3\xa9t\xc3\xa9 \xe2\x96\x81 \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87");
  write_seed("tokenizer", "invalid", "a\xc3 \xff\xfe\xed\xa0\x80z", 10);
}

static void stream_seeds(void) {
  /* Format: see fuzz_output_stream.c. Byte 0 = 2 stops; stops "\nU" and "ab"; chunks. */
  static const uint8_t s1[] = {2, 1, '\n', 'U', 1, 'a', 'b', 3, 'x', 'y', 'a', 2, 'b', 'c',
                               4, '\n', 0xE2, 0x82, 0xAC, 1, 'U'};
  write_seed("output_stream", "two-stops", s1, sizeof s1);
  /* One stop "\xE2\x82\xAC" (euro sign), text with the sign split over tokens and a bad byte. */
  static const uint8_t s2[] = {1, 2, 0xE2, 0x82, 0xAC, 2, 'a', 0xE2, 1, 0x82, 3, 0xFF, 0xAC, 'z',
                               2, 0xE2, 0x82, 1, 0xAC};
  write_seed("output_stream", "utf8-split", s2, sizeof s2);
  /* No stop strings, a stop token at the end (bit 3), a dangling lead byte. */
  static const uint8_t s3[] = {8, 5, 'h', 'e', 'l', 'l', 'o', 1, 0xF0, 2, 0x9F, 0x98};
  write_seed("output_stream", "stop-token", s3, sizeof s3);
  /* Four overlapping stops. */
  static const uint8_t s4[] = {4, 3, 'a', 'a', 'a', 'b', 0, 'a', 1, 'b', 'c', 0, 'z',
                               7, 'a', 'a', 'a', 'a', 'b', 'c', 'z'};
  write_seed("output_stream", "overlap", s4, sizeof s4);
}

static void blob_seed(const char *name, const uint8_t *buf, uint32_t len) {
  write_seed("guest_request", name, buf, len);
}

static void guest_request_seeds(void) {
  uint8_t buf[1024];
  uint32_t len = 0, cap = sizeof buf;
  uint8_t v[8];
  realm_req_begin(buf, cap, &len);
  realm_req_add(buf, cap, &len, REALM_REQ_PROMPT, "Once upon a time", 16);
  realm_req_put_u32_(v, 32);
  realm_req_add(buf, cap, &len, REALM_REQ_MAX_TOKENS, v, 4);
  float t = 0.7f;
  memcpy(v, &t, 4);
  realm_req_add(buf, cap, &len, REALM_REQ_TEMPERATURE, v, 4);
  realm_req_put_u32_(v, 40);
  realm_req_add(buf, cap, &len, REALM_REQ_TOP_K, v, 4);
  realm_req_put_u32_(v, 7);
  realm_req_put_u32_(v + 4, 0);
  realm_req_add(buf, cap, &len, REALM_REQ_SEED, v, 8);
  realm_req_add(buf, cap, &len, REALM_REQ_STOP, "\nUser:", 6);
  realm_req_put_u32_(v, 2);
  realm_req_add(buf, cap, &len, REALM_REQ_STOP_TOKEN, v, 4);
  realm_req_add(buf, cap, &len, REALM_REQ_MODEL, "stories260K", 11);
  realm_req_add(buf, cap, &len, 999, "unknown key", 11);
  blob_seed("prompt", buf, len);

  realm_req_begin(buf, cap, &len);
  realm_req_add(buf, cap, &len, REALM_REQ_MESSAGE, "system\0Be brief.", 16);
  realm_req_add(buf, cap, &len, REALM_REQ_MESSAGE, "user\0Hello", 10);
  realm_req_add(buf, cap, &len, GUEST_REQ_CHAT_TEMPLATE, "chatml", 6);
  realm_req_put_u32_(v, 3);
  realm_req_add(buf, cap, &len, REALM_REQ_LOGPROBS, v, 4);
  float p = 0.9f;
  memcpy(v, &p, 4);
  realm_req_add(buf, cap, &len, REALM_REQ_TOP_P, v, 4);
  blob_seed("chat", buf, len);

  realm_req_begin(buf, cap, &len);
  blob_seed("empty", buf, len);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: seedgen DIR\n");
    return 2;
  }
  g_dir = argv[1];
  const char *targets[] = {"gguf", "frame", "gateway_request", "tokenizer", "output_stream",
                           "guest_request"};
  for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) mkdir_target(targets[i]);
  gguf_seed("synth-full.gguf", 32, 1, 1);
  gguf_seed("synth-align64.gguf", 64, 1, 0);
  gguf_seed("synth-meta-only.gguf", 32, 0, 1);
  gguf_seed("synth-minimal.gguf", 32, 0, 0);
  frame_seeds();
  gateway_seeds();
  tokenizer_seeds();
  stream_seeds();
  guest_request_seeds();
  return 0;
}
