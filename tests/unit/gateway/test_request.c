/*
 * test_request.c — request validation for every field of the generation endpoints (wrong
 * type and out of range name the param), plus the pure pieces of the response path: OpenAI
 * body rendering, SSE framing, UTF-8 draining and the error body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "realm/error.h"
#include "realm_test.h"
#include "render.h"
#include "request.h"
#include "sse.h"
#include "utf8.h"

#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

/* Parses a chat body made of MSGS plus extra fields; returns the code and fills perr. */
static int chat(const char *extra, struct gw_parsed *p, struct gw_param_error *perr) {
  char body[4096];
  snprintf(body, sizeof body, "{\"model\":\"m1\"," MSGS "%s%s}", extra[0] ? "," : "", extra);
  return gw_parse_request(GW_API_CHAT, body, strlen(body), p, perr);
}

/* Expects extra to be refused with code naming param, message containing needle. */
static int refused(const char *extra, int code, const char *param, const char *needle) {
  struct gw_parsed p;
  struct gw_param_error e;
  memset(&e, 0, sizeof e);
  int r = chat(extra, &p, &e);
  gw_parsed_free(&p);
  if (r != code || strcmp(e.param, param) != 0 || !strstr(e.message, needle)) {
    printf("# for %s: got %d param '%s' message '%s'\n", extra, r, e.param, e.message);
    return 0;
  }
  return 1;
}

TEST(valid_chat_request_fills_every_field) {
  struct gw_parsed p;
  struct gw_param_error e;
  int r = chat("\"max_tokens\":5,\"temperature\":0.5,\"top_p\":1,\"stop\":[\"a\",\"bb\"],"
               "\"seed\":-7,\"n\":1,\"presence_penalty\":-2,\"frequency_penalty\":2,"
               "\"logit_bias\":{\"42\":-100,\"7\":3.5},\"logprobs\":true,\"top_logprobs\":3,"
               "\"user\":\"u1\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
               "\"some_future_field\":{\"x\":1}",
               &p, &e);
  CHECK_EQ_INT(r, 0);
  const struct gw_gen_request *q = &p.req;
  CHECK_STR_EQ(q->model, "m1");
  CHECK_EQ_INT(q->n_messages, 1);
  CHECK_STR_EQ(q->messages[0].role, "user");
  CHECK_STR_EQ(q->messages[0].content, "hi");
  CHECK_EQ_INT(q->max_tokens, 5);
  CHECK(q->has_temperature);
  CHECK_NEAR(q->temperature, 0.5, 1e-12);
  CHECK(q->has_top_p);
  CHECK_EQ_INT(q->n_stop, 2);
  CHECK_STR_EQ(q->stop[1], "bb");
  CHECK(q->has_seed);
  CHECK_EQ_INT(q->seed, -7);
  CHECK_NEAR(q->presence_penalty, -2, 0);
  CHECK_EQ_INT(q->n_logit_bias, 2);
  CHECK(q->logprobs);
  CHECK_EQ_INT(q->top_logprobs, 3);
  CHECK_STR_EQ(q->user, "u1");
  CHECK(q->stream);
  CHECK(q->include_usage);
  CHECK(q->prompt_tokens_estimate > 0);
  gw_parsed_free(&p);
}

TEST(content_parts_are_joined_and_nulls_are_absent) {
  const char *body =
      "{\"model\":\"m\",\"temperature\":null,\"stop\":null,\"messages\":["
      "{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\","
      "\"text\":\"b\"}]},{\"role\":\"assistant\",\"content\":null},{\"role\":\"tool\","
      "\"content\":\"r\",\"tool_call_id\":\"c1\"}]}";
  struct gw_parsed p;
  struct gw_param_error e;
  CHECK_EQ_INT(gw_parse_request(GW_API_CHAT, body, strlen(body), &p, &e), 0);
  CHECK_STR_EQ(p.req.messages[0].content, "ab");
  CHECK_STR_EQ(p.req.messages[1].content, "");
  CHECK_STR_EQ(p.req.messages[2].tool_call_id, "c1");
  CHECK(!p.req.has_temperature);
  CHECK_EQ_INT(p.req.n_stop, 0);
  gw_parsed_free(&p);
}

TEST(max_completion_tokens_wins) {
  struct gw_parsed p;
  struct gw_param_error e;
  CHECK_EQ_INT(chat("\"max_tokens\":5,\"max_completion_tokens\":9", &p, &e), 0);
  CHECK_EQ_INT(p.req.max_tokens, 9);
  gw_parsed_free(&p);
}

TEST(wrong_types_name_the_param) {
  CHECK(refused("\"temperature\":\"hot\"", REALM_E_INVALID_ARGUMENT, "temperature",
                "'temperature' must be a number"));
  CHECK(refused("\"top_p\":[1]", REALM_E_INVALID_ARGUMENT, "top_p", "must be a number"));
  CHECK(refused("\"max_tokens\":2.5", REALM_E_INVALID_ARGUMENT, "max_tokens",
                "'max_tokens' must be an integer"));
  CHECK(refused("\"max_completion_tokens\":\"5\"", REALM_E_INVALID_ARGUMENT,
                "max_completion_tokens", "must be an integer"));
  CHECK(refused("\"seed\":1.5", REALM_E_INVALID_ARGUMENT, "seed", "must be an integer"));
  CHECK(refused("\"n\":\"1\"", REALM_E_INVALID_ARGUMENT, "n", "must be an integer"));
  CHECK(refused("\"stop\":5", REALM_E_INVALID_ARGUMENT, "stop", "string or an array"));
  CHECK(refused("\"stop\":[\"a\",3]", REALM_E_INVALID_ARGUMENT, "stop[1]", "must be a string"));
  CHECK(refused("\"presence_penalty\":true", REALM_E_INVALID_ARGUMENT, "presence_penalty",
                "must be a number"));
  CHECK(refused("\"frequency_penalty\":{}", REALM_E_INVALID_ARGUMENT, "frequency_penalty",
                "must be a number"));
  CHECK(refused("\"logit_bias\":[1]", REALM_E_INVALID_ARGUMENT, "logit_bias", "must be an object"));
  CHECK(refused("\"logit_bias\":{\"abc\":1}", REALM_E_INVALID_ARGUMENT, "logit_bias",
                "token ids"));
  CHECK(refused("\"logit_bias\":{\"5\":\"x\"}", REALM_E_INVALID_ARGUMENT, "logit_bias.5",
                "must be a number"));
  CHECK(refused("\"logprobs\":1", REALM_E_INVALID_ARGUMENT, "logprobs", "must be a boolean"));
  CHECK(refused("\"top_logprobs\":\"2\"", REALM_E_INVALID_ARGUMENT, "top_logprobs",
                "must be an integer"));
  CHECK(refused("\"user\":5", REALM_E_INVALID_ARGUMENT, "user", "must be a string"));
  CHECK(refused("\"stream\":\"yes\"", REALM_E_INVALID_ARGUMENT, "stream", "must be a boolean"));
  CHECK(refused("\"stream\":true,\"stream_options\":5", REALM_E_INVALID_ARGUMENT,
                "stream_options", "must be an object"));
  CHECK(refused("\"stream\":true,\"stream_options\":{\"include_usage\":1}",
                REALM_E_INVALID_ARGUMENT, "stream_options.include_usage", "must be a boolean"));
}

TEST(ranges_are_enforced) {
  CHECK(refused("\"temperature\":2.5", REALM_E_OUT_OF_RANGE, "temperature", "<= 2"));
  CHECK(refused("\"temperature\":-0.1", REALM_E_OUT_OF_RANGE, "temperature", ">= 0"));
  CHECK(refused("\"top_p\":0", REALM_E_OUT_OF_RANGE, "top_p", "> 0"));
  CHECK(refused("\"top_p\":1.01", REALM_E_OUT_OF_RANGE, "top_p", "<= 1"));
  CHECK(refused("\"max_tokens\":0", REALM_E_OUT_OF_RANGE, "max_tokens", "between 1"));
  CHECK(refused("\"max_tokens\":32769", REALM_E_OUT_OF_RANGE, "max_tokens", "32768"));
  CHECK(refused("\"presence_penalty\":2.1", REALM_E_OUT_OF_RANGE, "presence_penalty", "<= 2"));
  CHECK(refused("\"frequency_penalty\":-3", REALM_E_OUT_OF_RANGE, "frequency_penalty", ">= -2"));
  CHECK(refused("\"logit_bias\":{\"5\":101}", REALM_E_OUT_OF_RANGE, "logit_bias.5", "-100 and 100"));
  CHECK(refused("\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]", REALM_E_OUT_OF_RANGE, "stop",
                "at most 4"));
  CHECK(refused("\"stop\":\"\"", REALM_E_OUT_OF_RANGE, "stop", "1 to 256 bytes"));
  CHECK(refused("\"logprobs\":true,\"top_logprobs\":21", REALM_E_OUT_OF_RANGE, "top_logprobs",
                "between 0 and 20"));
  CHECK(refused("\"top_logprobs\":2", REALM_E_INVALID_ARGUMENT, "top_logprobs",
                "requires 'logprobs'"));
  CHECK(refused("\"n\":2", REALM_E_UNSUPPORTED, "n", "n > 1 is not supported"));
  CHECK(refused("\"n\":0", REALM_E_OUT_OF_RANGE, "n", "at least 1"));
  CHECK(refused("\"stream_options\":{\"include_usage\":true}", REALM_E_INVALID_ARGUMENT,
                "stream_options", "only allowed when 'stream' is true"));
}

TEST(messages_are_checked) {
  struct gw_parsed p;
  struct gw_param_error e;
  const char *cases[][3] = {
      {"{\"model\":\"m\"}", "messages", "provide a messages"},
      {"{\"model\":\"m\",\"messages\":{}}", "messages", "must be an array"},
      {"{\"model\":\"m\",\"messages\":[]}", "messages", "at least one"},
      {"{\"model\":\"m\",\"messages\":[5]}", "messages[0]", "must be an object"},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}",
       "messages[0].role", "must be one of"},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":7}]}",
       "messages[1].role", "must be a string"},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}",
       "messages[0].content", "string or an array"},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", "messages[0].content", "required"},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
       "messages[0].content[0]", "only 'text'"},
      {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model", "provide a model"},
      {"{\"model\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model",
       "'model' must be a string"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memset(&e, 0, sizeof e);
    int r = gw_parse_request(GW_API_CHAT, cases[i][0], strlen(cases[i][0]), &p, &e);
    if (r == 0 || strcmp(e.param, cases[i][1]) != 0 || !strstr(e.message, cases[i][2]))
      printf("# case %zu: r=%d param '%s' message '%s'\n", i, r, e.param, e.message);
    CHECK(r < 0);
    CHECK_STR_EQ(e.param, cases[i][1]);
    CHECK_STR_CONTAINS(e.message, cases[i][2]);
    gw_parsed_free(&p);
  }
}

TEST(body_level_errors) {
  struct gw_parsed p;
  struct gw_param_error e;
  CHECK_EQ_INT(gw_parse_request(GW_API_CHAT, "{\"model\":", 9, &p, &e), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(e.message, "not valid JSON");
  CHECK_STR_EQ(e.param, "");
  const char bad[] = "{\"model\":\"\xff\"}";
  CHECK_EQ_INT(gw_parse_request(GW_API_CHAT, bad, sizeof bad - 1, &p, &e), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(e.message, "not valid UTF-8");
  CHECK_EQ_INT(gw_parse_request(GW_API_CHAT, "[1]", 3, &p, &e), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(e.message, "must be a JSON object");
  CHECK_EQ_INT(gw_parse_request(GW_API_CHAT, "", 0, &p, &e), REALM_E_INVALID_ARGUMENT);
}

TEST(completion_prompts) {
  struct gw_parsed p;
  struct gw_param_error e;
  const char *ok1 = "{\"model\":\"m\",\"prompt\":\"Once\",\"logprobs\":2}";
  CHECK_EQ_INT(gw_parse_request(GW_API_COMPLETION, ok1, strlen(ok1), &p, &e), 0);
  CHECK_STR_EQ(p.req.prompt, "Once");
  CHECK(p.req.logprobs);
  CHECK_EQ_INT(p.req.top_logprobs, 2);
  gw_parsed_free(&p);
  const char *ok2 = "{\"model\":\"m\",\"prompt\":[\"Twice\"]}";
  CHECK_EQ_INT(gw_parse_request(GW_API_COMPLETION, ok2, strlen(ok2), &p, &e), 0);
  CHECK_STR_EQ(p.req.prompt, "Twice");
  gw_parsed_free(&p);
  const char *cases[][3] = {
      {"{\"model\":\"m\",\"prompt\":[1,2,3]}", "prompt", "token id prompts are not supported"},
      {"{\"model\":\"m\",\"prompt\":[\"a\",\"b\"]}", "prompt", "multiple prompts"},
      {"{\"model\":\"m\",\"prompt\":5}", "prompt", "string or an array of strings"},
      {"{\"model\":\"m\"}", "prompt", "provide a prompt"},
      {"{\"model\":\"m\",\"prompt\":\"x\",\"logprobs\":true}", "logprobs", "must be an integer"},
      {"{\"model\":\"m\",\"prompt\":\"x\",\"echo\":true}", "echo", "not supported"},
      {"{\"model\":\"m\",\"prompt\":\"x\",\"best_of\":3}", "best_of", "not supported"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memset(&e, 0, sizeof e);
    int r = gw_parse_request(GW_API_COMPLETION, cases[i][0], strlen(cases[i][0]), &p, &e);
    if (r == 0 || strcmp(e.param, cases[i][1]) != 0 || !strstr(e.message, cases[i][2]))
      printf("# case %zu: r=%d param '%s' message '%s'\n", i, r, e.param, e.message);
    CHECK(r < 0);
    CHECK_STR_EQ(e.param, cases[i][1]);
    CHECK_STR_CONTAINS(e.message, cases[i][2]);
    gw_parsed_free(&p);
  }
}

TEST(render_shapes_match_openai) {
  struct gw_render_ctx c = {GW_API_CHAT, "chatcmpl-X", 1700000000, "m1", false};
  struct gw_usage u = {3, 2};
  char *s = gw_render_response(&c, "Hi!", 3, "stop", &u, NULL);
  CHECK_STR_EQ(s, "{\"id\":\"chatcmpl-X\",\"object\":\"chat.completion\",\"created\":1700000000,"
                  "\"model\":\"m1\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                  "\"content\":\"Hi!\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":"
                  "{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}");
  free(s);
  struct gw_render_ctx t = {GW_API_COMPLETION, "cmpl-Y", 5, "m1", false};
  s = gw_render_response(&t, "ab", 2, "length", &u, NULL);
  CHECK_STR_EQ(s, "{\"id\":\"cmpl-Y\",\"object\":\"text_completion\",\"created\":5,\"model\":\"m1\","
                  "\"choices\":[{\"text\":\"ab\",\"index\":0,\"logprobs\":null,\"finish_reason\":"
                  "\"length\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,"
                  "\"total_tokens\":5}}");
  free(s);
  char id[48];
  gw_completion_id(GW_API_CHAT, id, sizeof id);
  CHECK(strncmp(id, "chatcmpl-", 9) == 0 && strlen(id) == 9 + 24);
}

TEST(logprobs_render_in_openai_shapes) {
  /* Chat: one entry per token with its alternatives; a partial UTF-8 token is written with
   * \xNN escapes in `token` and its exact bytes in `bytes`. */
  struct gw_logprobs_acc a;
  gw_logprobs_init(&a, GW_API_CHAT);
  struct gw_top_logprob top[2] = {{"Hi", 2, -0.25f}, {"Ho", 2, -1.5f}};
  struct gw_token_logprob hi = {"Hi", 2, -0.25f, top, 2};
  struct gw_token_logprob half = {"\xE2\x82", 2, -2.0f, NULL, 0};
  gw_logprobs_add(&a, &hi);
  gw_logprobs_add(&a, &half);
  struct gw_render_ctx c = {GW_API_CHAT, "chatcmpl-X", 1, "m1", false};
  char *s = gw_render_chunk(&c, NULL, "Hi", 2, NULL, gw_logprobs_take(&a, false));
  CHECK_STR_CONTAINS(s, "\"logprobs\":{\"content\":[{\"token\":\"Hi\",\"logprob\":-0.25,\"bytes\":"
                        "[72,105],\"top_logprobs\":[{\"token\":\"Hi\",\"logprob\":-0.25,\"bytes\":"
                        "[72,105]},{\"token\":\"Ho\",\"logprob\":-1.5,\"bytes\":[72,111]}]},"
                        "{\"token\":\"\\\\xe2\\\\x82\",\"logprob\":-2.0,\"bytes\":[226,130],"
                        "\"top_logprobs\":[]}],\"refusal\":null}");
  free(s);
  /* Taken: the next chunk without entries renders null, or an empty shape when asked. */
  CHECK(gw_logprobs_take(&a, false) == NULL);
  json_t *empty = gw_logprobs_take(&a, true);
  s = json_dumps(empty, JSON_COMPACT);
  CHECK_STR_EQ(s, "{\"content\":[],\"refusal\":null}");
  free(s);
  json_decref(empty);
  CHECK(!a.oom);
  gw_logprobs_free(&a);

  /* Completions: parallel arrays, alternatives as a {token: logprob} object, text_offset in
   * characters carried across takes (one per streamed chunk). */
  gw_logprobs_init(&a, GW_API_COMPLETION);
  struct gw_token_logprob e1 = {"\xC3\xA9t", 3, -0.5f, top, 1};
  struct gw_token_logprob e2 = {"\xC3\xA9", 2, -1.0f, top + 1, 1};
  gw_logprobs_add(&a, &e1);
  json_t *j1 = gw_logprobs_take(&a, false);
  gw_logprobs_add(&a, &e2);
  json_t *j2 = gw_logprobs_take(&a, false);
  char *s1 = json_dumps(j1, JSON_COMPACT), *s2 = json_dumps(j2, JSON_COMPACT);
  CHECK_STR_EQ(s1, "{\"tokens\":[\"\xC3\xA9t\"],\"token_logprobs\":[-0.5],\"top_logprobs\":"
                   "[{\"Hi\":-0.25}],\"text_offset\":[0]}");
  CHECK_STR_EQ(s2, "{\"tokens\":[\"\xC3\xA9\"],\"token_logprobs\":[-1.0],\"top_logprobs\":"
                   "[{\"Ho\":-1.5}],\"text_offset\":[2]}");
  free(s1);
  free(s2);
  json_decref(j1);
  struct gw_render_ctx t = {GW_API_COMPLETION, "cmpl-Y", 5, "m1", false};
  struct gw_usage u = {1, 1};
  s = gw_render_response(&t, "x", 1, "stop", &u, j2);
  CHECK_STR_CONTAINS(s, "\"index\":0,\"logprobs\":{\"tokens\":");
  free(s);
  gw_logprobs_free(&a);
}

TEST(sse_framing_and_error_body) {
  struct gw_buf b = {0};
  CHECK_EQ_INT(gw_sse_data(&b, "{\"a\":1}"), 0);
  CHECK_EQ_INT(gw_sse_keepalive(&b), 0);
  CHECK_EQ_INT(gw_sse_done(&b), 0);
  CHECK_STR_EQ(b.data, "data: {\"a\":1}\n\n: keep-alive\n\ndata: [DONE]\n\n");
  CHECK_EQ_INT(gw_sse_data(&b, "{\"a\":\n1}"), REALM_E_INVALID_ARGUMENT);
  gw_buf_free(&b);
}

TEST(utf8_drain_holds_split_characters) {
  struct gw_buf pending = {0}, out = {0};
  const char euro[] = "\xE2\x82\xAC"; /* U+20AC split across two tokens */
  gw_buf_append(&pending, "a\xE2\x82", 3);
  CHECK_EQ_INT(gw_utf8_drain(&pending, false, &out), 0);
  CHECK_EQ_INT(out.len, 1);
  CHECK_EQ_INT(pending.len, 2);
  gw_buf_append(&pending, "\xAC", 1);
  CHECK_EQ_INT(gw_utf8_drain(&pending, false, &out), 0);
  CHECK_EQ_INT(out.len, 4);
  CHECK(memcmp(out.data + 1, euro, 3) == 0);
  gw_buf_append(&pending, "\xFF" "b\xE2", 3); /* bad byte, then a dangling lead at the end */
  CHECK_EQ_INT(gw_utf8_drain(&pending, true, &out), 0);
  CHECK_EQ_INT(pending.len, 0);
  CHECK(memcmp(out.data + 4, "\xEF\xBF\xBD" "b" "\xEF\xBF\xBD", 7) == 0);
  CHECK(!gw_utf8_valid("\xED\xA0\x80", 3, NULL)); /* surrogate */
  CHECK(!gw_utf8_valid("\xC0\xAF", 2, NULL));     /* overlong */
  CHECK(gw_utf8_valid("h\xC3\xA9llo", 6, NULL));
  gw_buf_free(&pending);
  gw_buf_free(&out);
}
