/*
 * test_frame.c — the wire frame: every envelope kind round trips with its fields intact, and
 * every kind of damage (truncation at each length, bad magic, another version, wrong kind,
 * length lies, oversize, garbage or amplifying payloads) is refused with the right code and a
 * message naming what was wrong.
 */
#include "realm/frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "realm/error.h"
#include "realm/limits.h"
#include "realm/proto.h"
#include "realm_test.h"

/* Encodes msg into a fresh heap buffer (caller frees); NULL on failure. */
static uint8_t *encode_alloc(unsigned kind, const ProtobufCMessage *msg, size_t *ret_len) {
  size_t cap = realm_frame_encoded_size(msg);
  uint8_t *buf = malloc(cap);
  char err[256];
  if (!buf) return NULL;
  if (realm_frame_encode(kind, msg, buf, cap, ret_len, err, sizeof err) != 0) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* A worker request with one step entry: small but with nested and repeated fields. */
static uint8_t *sample_worker_request(size_t *ret_len) {
  int32_t tokens[3] = {1, 15043, 29889};
  Realm__V1__StepEntry entry;
  realm__v1__step_entry__init(&entry);
  entry.session_id = 42;
  entry.n_tokens = 3;
  entry.n_tokens_inline = 3;
  entry.tokens_inline = tokens;
  entry.n_logits = 1;
  entry.logits_offset = 4096;
  Realm__V1__StepEntry *entries[1] = {&entry};
  Realm__V1__Step step;
  realm__v1__step__init(&step);
  step.n_entries = 1;
  step.entries = entries;
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  req.request_id = 7;
  req.body_case = REALM__V1__WORKER_REQUEST__BODY_STEP;
  req.step = &step;
  return encode_alloc(REALM_FRAME_WORKER_REQUEST, &req.base, ret_len);
}

TEST(frame_header_layout_is_fixed) {
  size_t len = 0;
  uint8_t *buf = sample_worker_request(&len);
  CHECK(buf != NULL);
  CHECK(len > REALM_FRAME_HEADER_BYTES);
  int ok = memcmp(buf, "RLM\0", 4) == 0 && buf[4] == REALM_PROTOCOL_VERSION && buf[5] == 0 &&
           buf[6] == REALM_FRAME_WORKER_REQUEST && buf[7] == 0;
  uint32_t plen = (uint32_t)buf[8] | (uint32_t)buf[9] << 8 | (uint32_t)buf[10] << 16 |
                  (uint32_t)buf[11] << 24;
  realm_frame_header h;
  int r = realm_frame_peek(buf, len, 0, &h, NULL, 0);
  free(buf);
  CHECK(ok);
  CHECK_EQ_INT(plen, len - REALM_FRAME_HEADER_BYTES);
  CHECK_EQ_INT(r, 0);
  CHECK_EQ_INT(h.kind, REALM_FRAME_WORKER_REQUEST);
  CHECK_EQ_INT(h.version, REALM_PROTOCOL_VERSION);
  CHECK_EQ_INT(h.payload_len, plen);
}

TEST(frame_round_trip_worker_request) {
  size_t len = 0;
  uint8_t *buf = sample_worker_request(&len);
  CHECK(buf != NULL);
  ProtobufCMessage *m = NULL;
  char err[256] = "";
  int r = realm_frame_decode(buf, len, REALM_FRAME_WORKER_REQUEST,
                             &realm__v1__worker_request__descriptor, 0, &m, err, sizeof err);
  free(buf);
  CHECK_EQ_INT(r, 0);
  Realm__V1__WorkerRequest *req = (Realm__V1__WorkerRequest *)m;
  int ok = req->request_id == 7 && req->body_case == REALM__V1__WORKER_REQUEST__BODY_STEP &&
           req->step && req->step->n_entries == 1 && req->step->entries[0]->session_id == 42 &&
           req->step->entries[0]->n_tokens_inline == 3 &&
           req->step->entries[0]->tokens_inline[1] == 15043 &&
           req->step->entries[0]->logits_offset == 4096;
  realm_frame_msg_free(m);
  CHECK(ok);
}

TEST(frame_round_trip_runner_request_with_all_sampling) {
  Realm__V1__ChatMessage sys, user;
  realm__v1__chat_message__init(&sys);
  realm__v1__chat_message__init(&user);
  sys.role = "system";
  sys.content = "Be brief.";
  user.role = "user";
  user.content = "Hello \xc3\xa9";
  user.name = "ann";
  user.tool_call_id = "";
  Realm__V1__ChatMessage *msgs[2] = {&sys, &user};
  Realm__V1__ChatPrompt chat;
  realm__v1__chat_prompt__init(&chat);
  chat.n_messages = 2;
  chat.messages = msgs;

  Realm__V1__SamplingParams__LogitBiasEntry b1, b2;
  realm__v1__sampling_params__logit_bias_entry__init(&b1);
  realm__v1__sampling_params__logit_bias_entry__init(&b2);
  b1.key = 50256;
  b1.value = -100.0f;
  b2.key = 13;
  b2.value = 2.5f;
  Realm__V1__SamplingParams__LogitBiasEntry *bias[2] = {&b1, &b2};
  char *stops[2] = {"\n\n", "END"};
  int32_t stop_ids[1] = {2};
  Realm__V1__SamplingParams sp;
  realm__v1__sampling_params__init(&sp);
  sp.max_tokens = 128;
  sp.has_temperature = 1;
  sp.temperature = 0.7f;
  sp.has_top_p = 1;
  sp.top_p = 0.9f;
  sp.top_k = 40;
  sp.min_p = 0.05f;
  sp.presence_penalty = 0.5f;
  sp.frequency_penalty = 0.25f;
  sp.repetition_penalty = 1.1f;
  sp.n_logit_bias = 2;
  sp.logit_bias = bias;
  sp.has_seed = 1;
  sp.seed = -5; /* OpenAI seeds are signed integers */
  sp.n_stop = 2;
  sp.stop = stops;
  sp.n_stop_token_ids = 1;
  sp.stop_token_ids = stop_ids;
  sp.logprobs = 1;
  sp.top_logprobs = 5;

  Realm__V1__GenerateRequest gen;
  realm__v1__generate_request__init(&gen);
  gen.request_id = "req-1";
  gen.tenant_id = "acme";
  gen.model = "stories260K";
  gen.input_case = REALM__V1__GENERATE_REQUEST__INPUT_CHAT;
  gen.chat = &chat;
  gen.sampling = &sp;
  gen.n = 2;
  gen.stream = 1;
  gen.include_usage = 1;
  gen.user = "u1";
  Realm__V1__RunnerRequest rr;
  realm__v1__runner_request__init(&rr);
  rr.body_case = REALM__V1__RUNNER_REQUEST__BODY_GENERATE;
  rr.generate = &gen;

  size_t len = 0;
  uint8_t *buf = encode_alloc(REALM_FRAME_RUNNER_REQUEST, &rr.base, &len);
  CHECK(buf != NULL);
  ProtobufCMessage *m = NULL;
  int r = realm_frame_decode(buf, len, REALM_FRAME_RUNNER_REQUEST,
                             &realm__v1__runner_request__descriptor, 0, &m, NULL, 0);
  free(buf);
  CHECK_EQ_INT(r, 0);
  Realm__V1__RunnerRequest *d = (Realm__V1__RunnerRequest *)m;
  const Realm__V1__GenerateRequest *g = d->generate;
  const Realm__V1__SamplingParams *s = g ? g->sampling : NULL;
  int ok = d->body_case == REALM__V1__RUNNER_REQUEST__BODY_GENERATE && g && s &&
           strcmp(g->request_id, "req-1") == 0 && strcmp(g->tenant_id, "acme") == 0 &&
           g->input_case == REALM__V1__GENERATE_REQUEST__INPUT_CHAT && g->chat->n_messages == 2 &&
           strcmp(g->chat->messages[1]->content, "Hello \xc3\xa9") == 0 &&
           strcmp(g->chat->messages[1]->name, "ann") == 0 && g->n == 2 && g->include_usage &&
           s->max_tokens == 128 && s->top_k == 40 && s->temperature == 0.7f &&
           s->top_p == 0.9f && s->min_p == 0.05f && s->presence_penalty == 0.5f &&
           s->frequency_penalty == 0.25f && s->repetition_penalty == 1.1f &&
           s->n_logit_bias == 2 && s->logit_bias[0]->key == 50256 &&
           s->logit_bias[0]->value == -100.0f && s->has_seed && s->seed == -5 &&
           s->has_temperature && s->has_top_p &&
           s->n_stop == 2 && strcmp(s->stop[1], "END") == 0 && s->n_stop_token_ids == 1 &&
           s->stop_token_ids[0] == 2 && s->logprobs && s->top_logprobs == 5;
  realm_frame_msg_free(m);
  CHECK(ok);
}

TEST(frame_round_trip_runner_event_token_and_finish) {
  Realm__V1__TopLogprob alt;
  realm__v1__top_logprob__init(&alt);
  alt.token_id = 9;
  alt.text.data = (uint8_t *)"\xe2\x82";
  alt.text.len = 2; /* partial UTF-8 is legal in bytes fields */
  alt.logprob = -2.0f;
  Realm__V1__TopLogprob *alts[1] = {&alt};
  Realm__V1__TokenLogprob lp;
  realm__v1__token_logprob__init(&lp);
  lp.token_id = 8;
  lp.logprob = -0.1f;
  lp.n_top = 1;
  lp.top = alts;
  Realm__V1__Token tok;
  realm__v1__token__init(&tok);
  tok.text.data = (uint8_t *)" hi";
  tok.text.len = 3;
  tok.token_id = 8;
  tok.logprob = &lp;
  Realm__V1__GenerateEvent ev;
  realm__v1__generate_event__init(&ev);
  ev.request_id = "req-9";
  ev.index = 1;
  ev.kind_case = REALM__V1__GENERATE_EVENT__KIND_TOKEN;
  ev.token = &tok;
  Realm__V1__RunnerEvent re;
  realm__v1__runner_event__init(&re);
  re.body_case = REALM__V1__RUNNER_EVENT__BODY_EVENT;
  re.event = &ev;

  size_t len = 0;
  uint8_t *buf = encode_alloc(REALM_FRAME_RUNNER_EVENT, &re.base, &len);
  CHECK(buf != NULL);
  ProtobufCMessage *m = NULL;
  int r = realm_frame_decode(buf, len, REALM_FRAME_RUNNER_EVENT,
                             &realm__v1__runner_event__descriptor, 0, &m, NULL, 0);
  free(buf);
  CHECK_EQ_INT(r, 0);
  Realm__V1__RunnerEvent *d = (Realm__V1__RunnerEvent *)m;
  int ok = d->body_case == REALM__V1__RUNNER_EVENT__BODY_EVENT && d->event->index == 1 &&
           d->event->kind_case == REALM__V1__GENERATE_EVENT__KIND_TOKEN &&
           d->event->token->text.len == 3 && memcmp(d->event->token->text.data, " hi", 3) == 0 &&
           d->event->token->logprob && d->event->token->logprob->n_top == 1 &&
           d->event->token->logprob->top[0]->text.len == 2;
  realm_frame_msg_free(m);
  CHECK(ok);

  /* A Finish with usage; an absent sub-message (error) decodes as NULL. */
  Realm__V1__Usage usage;
  realm__v1__usage__init(&usage);
  usage.prompt_tokens = 11;
  usage.completion_tokens = 5;
  Realm__V1__Finish fin;
  realm__v1__finish__init(&fin);
  fin.reason = REALM__V1__FINISH_REASON__FINISH_REASON_LENGTH;
  fin.usage = &usage;
  ev.kind_case = REALM__V1__GENERATE_EVENT__KIND_FINISH;
  ev.finish = &fin;
  buf = encode_alloc(REALM_FRAME_RUNNER_EVENT, &re.base, &len);
  CHECK(buf != NULL);
  m = NULL;
  r = realm_frame_decode(buf, len, REALM_FRAME_RUNNER_EVENT, &realm__v1__runner_event__descriptor,
                         0, &m, NULL, 0);
  free(buf);
  CHECK_EQ_INT(r, 0);
  d = (Realm__V1__RunnerEvent *)m;
  ok = d->event->kind_case == REALM__V1__GENERATE_EVENT__KIND_FINISH &&
       d->event->finish->reason == REALM__V1__FINISH_REASON__FINISH_REASON_LENGTH &&
       d->event->finish->usage->completion_tokens == 5 && d->event->finish->error == NULL;
  realm_frame_msg_free(m);
  CHECK(ok);
}

TEST(frame_round_trip_worker_reply_with_inline_logits) {
  float logits[4] = {0.5f, -1.25f, 3.0f, 0.0f};
  Realm__V1__StepResult res;
  realm__v1__step_result__init(&res);
  res.session_id = 42;
  res.n_past = 3;
  res.logits_inline.data = (uint8_t *)logits;
  res.logits_inline.len = sizeof logits;
  Realm__V1__Error e;
  Realm__V1__StepResult bad;
  realm__v1__step_result__init(&bad);
  bad.session_id = 43;
  realm_proto_error_set(&e, REALM_E_NOT_FOUND, "session 43 is not open on this connection",
                        NULL);
  bad.error = &e;
  Realm__V1__StepResult *results[2] = {&res, &bad};
  Realm__V1__StepReply sr;
  realm__v1__step_reply__init(&sr);
  sr.n_results = 2;
  sr.results = results;
  Realm__V1__WorkerReply rep;
  realm__v1__worker_reply__init(&rep);
  rep.request_id = 7;
  rep.body_case = REALM__V1__WORKER_REPLY__BODY_STEP;
  rep.step = &sr;

  size_t len = 0;
  uint8_t *buf = encode_alloc(REALM_FRAME_WORKER_REPLY, &rep.base, &len);
  CHECK(buf != NULL);
  ProtobufCMessage *m = NULL;
  int r = realm_frame_decode(buf, len, REALM_FRAME_WORKER_REPLY,
                             &realm__v1__worker_reply__descriptor, 0, &m, NULL, 0);
  free(buf);
  CHECK_EQ_INT(r, 0);
  Realm__V1__WorkerReply *d = (Realm__V1__WorkerReply *)m;
  float back[4] = {0};
  int ok = d->request_id == 7 && d->body_case == REALM__V1__WORKER_REPLY__BODY_STEP &&
           d->step->n_results == 2 && d->step->results[0]->error == NULL &&
           d->step->results[0]->logits_inline.len == sizeof logits;
  if (ok) memcpy(back, d->step->results[0]->logits_inline.data, sizeof back);
  int code = ok ? realm_proto_error_code(d->step->results[1]->error) : 0;
  realm_frame_msg_free(m);
  CHECK(ok);
  CHECK(memcmp(back, logits, sizeof back) == 0);
  CHECK_EQ_INT(code, REALM_E_NOT_FOUND);
}

TEST(frame_truncated_at_every_length_is_protocol_error) {
  size_t len = 0;
  uint8_t *buf = sample_worker_request(&len);
  CHECK(buf != NULL);
  int bad = -1;
  char err[256];
  for (size_t n = 0; n < len && n < 4096; n++) {
    /* Copy the prefix so an out-of-bounds read would be caught by sanitizers/valgrind. */
    uint8_t *prefix = malloc(n ? n : 1);
    memcpy(prefix, buf, n);
    ProtobufCMessage *m = NULL;
    int r = realm_frame_decode(prefix, n, REALM_FRAME_WORKER_REQUEST,
                               &realm__v1__worker_request__descriptor, 0, &m, err, sizeof err);
    free(prefix);
    if (r != REALM_E_PROTOCOL || m != NULL) {
      bad = (int)n;
      realm_frame_msg_free(m);
      break;
    }
  }
  free(buf);
  CHECK_EQ_INT(bad, -1);
}

TEST(frame_truncated_message_names_the_problem) {
  size_t len = 0;
  uint8_t *buf = sample_worker_request(&len);
  CHECK(buf != NULL);
  char err[256] = "";
  ProtobufCMessage *m = NULL;
  int r1 = realm_frame_decode(buf, 7, REALM_FRAME_WORKER_REQUEST,
                              &realm__v1__worker_request__descriptor, 0, &m, err, sizeof err);
  char err2[256] = "";
  int r2 = realm_frame_decode(buf, len - 1, REALM_FRAME_WORKER_REQUEST,
                              &realm__v1__worker_request__descriptor, 0, &m, err2, sizeof err2);
  free(buf);
  CHECK_EQ_INT(r1, REALM_E_PROTOCOL);
  CHECK_STR_CONTAINS(err, "truncated");
  CHECK_EQ_INT(r2, REALM_E_PROTOCOL);
  CHECK_STR_CONTAINS(err2, "length field");
}

TEST(frame_wrong_version_names_both_versions) {
  size_t len = 0;
  uint8_t *buf = sample_worker_request(&len);
  CHECK(buf != NULL);
  buf[4] = 7;
  buf[5] = 0;
  char err[256] = "";
  ProtobufCMessage *m = NULL;
  int r = realm_frame_decode(buf, len, REALM_FRAME_WORKER_REQUEST,
                             &realm__v1__worker_request__descriptor, 0, &m, err, sizeof err);
  /* Only the first 6 bytes are needed to name the version: a future header may differ. */
  char err2[256] = "";
  int r2 = realm_frame_decode(buf, 6, REALM_FRAME_WORKER_REQUEST,
                              &realm__v1__worker_request__descriptor, 0, &m, err2, sizeof err2);
  free(buf);
  CHECK_EQ_INT(r, REALM_E_VERSION);
  CHECK(m == NULL);
  CHECK_STR_EQ(err, "peer speaks protocol 7, this build speaks 1");
  CHECK_EQ_INT(r2, REALM_E_VERSION);
}

TEST(frame_bad_magic_is_protocol_error) {
  size_t len = 0;
  uint8_t *buf = sample_worker_request(&len);
  CHECK(buf != NULL);
  buf[0] = 'G'; /* e.g. an HTTP client on the wrong port: "GET " */
  char err[256] = "";
  ProtobufCMessage *m = NULL;
  int r = realm_frame_decode(buf, len, REALM_FRAME_WORKER_REQUEST,
                             &realm__v1__worker_request__descriptor, 0, &m, err, sizeof err);
  free(buf);
  CHECK_EQ_INT(r, REALM_E_PROTOCOL);
  CHECK_STR_CONTAINS(err, "magic");
}

TEST(frame_wrong_and_unknown_kind_are_refused) {
  size_t len = 0;
  uint8_t *buf = sample_worker_request(&len);
  CHECK(buf != NULL);
  char err[256] = "";
  ProtobufCMessage *m = NULL;
  int r1 = realm_frame_decode(buf, len, REALM_FRAME_RUNNER_REQUEST,
                              &realm__v1__runner_request__descriptor, 0, &m, err, sizeof err);
  buf[6] = 99;
  char err2[256] = "";
  int r2 = realm_frame_decode(buf, len, REALM_FRAME_WORKER_REQUEST,
                              &realm__v1__worker_request__descriptor, 0, &m, err2, sizeof err2);
  free(buf);
  CHECK_EQ_INT(r1, REALM_E_PROTOCOL);
  CHECK_STR_CONTAINS(err, "expected a runner_request frame");
  CHECK_STR_CONTAINS(err, "worker_request");
  CHECK_EQ_INT(r2, REALM_E_PROTOCOL);
  CHECK_STR_CONTAINS(err2, "unknown frame kind 99");
}

TEST(frame_oversized_length_is_too_large) {
  uint8_t hdr[REALM_FRAME_HEADER_BYTES] = {'R', 'L', 'M', 0, REALM_PROTOCOL_VERSION, 0,
                                           REALM_FRAME_WORKER_REQUEST, 0, 0xff, 0xff, 0xff,
                                           0xff};
  char err[256] = "";
  ProtobufCMessage *m = NULL;
  /* The length is checked against the limit before the bytes present: a 4 GiB claim is
   * refused as too large without reading further. */
  int r = realm_frame_decode(hdr, sizeof hdr, REALM_FRAME_WORKER_REQUEST,
                             &realm__v1__worker_request__descriptor, 0, &m, err, sizeof err);
  CHECK_EQ_INT(r, REALM_E_TOO_LARGE);
  CHECK_STR_CONTAINS(err, "4294967295");

  /* A real frame above a caller's tighter limit. */
  size_t len = 0;
  uint8_t *buf = sample_worker_request(&len);
  CHECK(buf != NULL);
  int r2 = realm_frame_decode(buf, len, REALM_FRAME_WORKER_REQUEST,
                              &realm__v1__worker_request__descriptor, 8, &m, err, sizeof err);
  int r3 = realm_frame_decode(buf, len, REALM_FRAME_WORKER_REQUEST,
                              &realm__v1__worker_request__descriptor,
                              len - REALM_FRAME_HEADER_BYTES, &m, err, sizeof err);
  realm_frame_msg_free(m);
  free(buf);
  CHECK_EQ_INT(r2, REALM_E_TOO_LARGE);
  CHECK_EQ_INT(r3, 0);
}

TEST(frame_garbage_payload_is_protocol_error) {
  uint8_t buf[REALM_FRAME_HEADER_BYTES + 6] = {'R', 'L', 'M', 0, REALM_PROTOCOL_VERSION, 0,
                                               REALM_FRAME_WORKER_REQUEST, 0, 6, 0, 0, 0,
                                               /* field 5 (step), length 100, 4 bytes given */
                                               0x2a, 100, 1, 2, 3, 4};
  char err[256] = "";
  ProtobufCMessage *m = NULL;
  int r = realm_frame_decode(buf, sizeof buf, REALM_FRAME_WORKER_REQUEST,
                             &realm__v1__worker_request__descriptor, 0, &m, err, sizeof err);
  CHECK_EQ_INT(r, REALM_E_PROTOCOL);
  CHECK(m == NULL);
  CHECK_STR_CONTAINS(err, "realm.v1.WorkerRequest");
}

TEST(frame_amplifying_payload_is_too_large) {
  /* WorkerRequest{step: Step{entries: N empty StepEntry}}: 2 wire bytes per entry unpack to a
   * pointer plus a ~90-byte struct each, far above the allowed 16x. */
  enum { N = 20000 };
  size_t step_len = 2 * N;
  size_t cap = REALM_FRAME_HEADER_BYTES + 1 + 5 + step_len;
  uint8_t *buf = calloc(1, cap);
  CHECK(buf != NULL);
  uint8_t *p = buf + REALM_FRAME_HEADER_BYTES;
  *p++ = 0x2a; /* field 5, length-delimited */
  size_t v = step_len;
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  for (size_t i = 0; i < N; i++) {
    *p++ = 0x0a; /* Step.entries, length 0 */
    *p++ = 0x00;
  }
  size_t payload = (size_t)(p - buf) - REALM_FRAME_HEADER_BYTES;
  memcpy(buf, "RLM\0", 4);
  buf[4] = REALM_PROTOCOL_VERSION;
  buf[6] = REALM_FRAME_WORKER_REQUEST;
  buf[8] = (uint8_t)payload;
  buf[9] = (uint8_t)(payload >> 8);
  buf[10] = (uint8_t)(payload >> 16);
  char err[256] = "";
  ProtobufCMessage *m = NULL;
  int r = realm_frame_decode(buf, (size_t)(p - buf), REALM_FRAME_WORKER_REQUEST,
                             &realm__v1__worker_request__descriptor, 0, &m, err, sizeof err);
  free(buf);
  realm_frame_msg_free(m);
  CHECK_EQ_INT(r, REALM_E_TOO_LARGE);
  CHECK_STR_CONTAINS(err, "unpacks to more than");
}

TEST(frame_encode_refuses_bad_input) {
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  req.request_id = 1;
  uint8_t small[8];
  size_t len = 12345;
  char err[256] = "";
  int r1 = realm_frame_encode(REALM_FRAME_WORKER_REQUEST, &req.base, small, sizeof small, &len,
                              err, sizeof err);
  CHECK_EQ_INT(r1, REALM_E_TOO_LARGE);
  CHECK_EQ_INT(len, 12345); /* untouched on failure */
  uint8_t buf[64];
  int r2 = realm_frame_encode(0, &req.base, buf, sizeof buf, &len, err, sizeof err);
  CHECK_EQ_INT(r2, REALM_E_INVALID_ARGUMENT);
  int r3 = realm_frame_encode(REALM_FRAME_KIND_MAX + 1, &req.base, buf, sizeof buf, &len, err,
                              sizeof err);
  CHECK_EQ_INT(r3, REALM_E_INVALID_ARGUMENT);
  /* A NULL element in a repeated string is a sender bug protobuf-c would crash on: refused.
   * (A NULL singular proto3 string packs as empty, which protobuf-c handles.) */
  char *stops[2] = {"x", NULL};
  Realm__V1__SamplingParams sp;
  realm__v1__sampling_params__init(&sp);
  sp.n_stop = 2;
  sp.stop = stops;
  Realm__V1__GenerateRequest gen;
  realm__v1__generate_request__init(&gen);
  gen.sampling = &sp;
  Realm__V1__RunnerRequest rr;
  realm__v1__runner_request__init(&rr);
  rr.body_case = REALM__V1__RUNNER_REQUEST__BODY_GENERATE;
  rr.generate = &gen;
  int r4 = realm_frame_encode(REALM_FRAME_RUNNER_REQUEST, &rr.base, buf, sizeof buf, &len, err,
                              sizeof err);
  CHECK_EQ_INT(r4, REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "realm.v1.RunnerRequest");
  CHECK_EQ_INT(realm_frame_encode(REALM_FRAME_WORKER_REQUEST, &req.base, buf, sizeof buf, &len,
                                  err, sizeof err),
               0);
  CHECK_EQ_INT(len, realm_frame_encoded_size(&req.base));
}

TEST(frame_kind_names_and_proto_descriptors) {
  CHECK_STR_EQ(realm_frame_kind_name(REALM_FRAME_RUNNER_REQUEST), "runner_request");
  CHECK_STR_EQ(realm_frame_kind_name(REALM_FRAME_WORKER_REPLY), "worker_reply");
  CHECK_STR_EQ(realm_frame_kind_name(0), "unknown");
  CHECK(realm_proto_descriptor(REALM_FRAME_RUNNER_EVENT) == &realm__v1__runner_event__descriptor);
  CHECK(realm_proto_descriptor(REALM_FRAME_WORKER_REQUEST) ==
        &realm__v1__worker_request__descriptor);
  CHECK(realm_proto_descriptor(77) == NULL);
  CHECK_EQ_INT(realm_proto_reply_kind(REALM_FRAME_WORKER_REQUEST), REALM_FRAME_WORKER_REPLY);
  CHECK_EQ_INT(realm_proto_reply_kind(REALM_FRAME_RUNNER_REQUEST), REALM_FRAME_RUNNER_EVENT);
  CHECK_EQ_INT(realm_proto_reply_kind(REALM_FRAME_WORKER_REPLY), 0);
}

TEST(proto_error_codes_travel_by_name) {
  Realm__V1__Error e;
  realm_proto_error_set(&e, REALM_E_QUOTA, NULL, "max_tokens");
  CHECK_STR_EQ(e.code, "quota_exceeded");
  CHECK_STR_EQ(e.message, "quota exceeded");
  CHECK_STR_EQ(e.param, "max_tokens");
  CHECK_EQ_INT(realm_proto_error_code(&e), REALM_E_QUOTA);
  e.code = "some_future_code";
  CHECK_EQ_INT(realm_proto_error_code(&e), REALM_E_INTERNAL);
  e.code = "ok"; /* an Error never means success */
  CHECK_EQ_INT(realm_proto_error_code(&e), REALM_E_INTERNAL);
  CHECK_EQ_INT(realm_proto_error_code(NULL), REALM_E_INTERNAL);
}
