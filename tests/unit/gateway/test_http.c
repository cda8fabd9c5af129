/*
 * test_http.c — the gateway core in-process on 127.0.0.1 (a free port), driven over plain
 * sockets with the scripted test backend and a fake monotonic clock: auth, errors with their
 * statuses and bodies, body limits, rate limiting headers, non-streaming bodies, SSE bytes,
 * cancellation on disconnect, health/ready/metrics, request ids, tenants reload, slow clients.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "gateway.h"
#include "http_client.h"
#include "prom_check.h"
#include "realm/error.h"
#include "realm_test.h"
#include "sink.h"
#include "test_backend.h"

#define KEY_ALPHA "sk-test-alpha"
#define KEY_LIMITED "sk-test-limited"
#define KEY_BETA "sk-test-beta"

static _Atomic uint64_t fake_now = 1000000000ull;
static uint64_t fake_clock(void *ctx) {
  (void)ctx;
  return atomic_load(&fake_now);
}
static int64_t fake_wall(void *ctx) {
  (void)ctx;
  return 1700000000;
}

static struct {
  bool started;
  struct gw_server *srv;
  struct test_backend tb;
  uint16_t port;
  char dir[256];
  char tenants[300];
} g;

static int write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fputs(text, f);
  return fclose(f);
}

static void tenants_json(char *out, size_t outlen, const char *alpha_key) {
  char ha[65], hl[65], hb[65];
  gw_key_hash_hex(alpha_key, ha);
  gw_key_hash_hex(KEY_LIMITED, hl);
  gw_key_hash_hex(KEY_BETA, hb);
  snprintf(out, outlen,
           "[{\"id\":\"alpha\",\"key_hashes\":[\"%s\"],\"models\":[\"m1\",\"m2\"],"
           "  \"limits\":{\"requests_per_minute\":100000,\"tokens_per_minute\":100000000}},"
           " {\"id\":\"limited\",\"key_hashes\":[\"%s\"],\"models\":[\"m1\"],"
           "  \"limits\":{\"requests_per_minute\":2,\"tokens_per_minute\":100000}},"
           " {\"id\":\"beta\",\"key_hashes\":[\"%s\"],\"models\":[\"m3\"]}]",
           ha, hl, hb);
}

/* Starts the shared server once (tests run in order within this program). */
static bool server(void) {
  if (g.started) return g.srv != NULL;
  g.started = true;
  const char *base = getenv("REALM_BUILD_ROOT");
  snprintf(g.dir, sizeof g.dir, "%s/gw-test-XXXXXX", base ? base : "/tmp");
  if (!mkdtemp(g.dir)) return false;
  snprintf(g.tenants, sizeof g.tenants, "%s/tenants.json", g.dir);
  char json[2048];
  tenants_json(json, sizeof json, KEY_ALPHA);
  if (write_file(g.tenants, json) < 0) return false;
  tb_init(&g.tb);
  struct gw_config cfg = {
      .listen_addr = "127.0.0.1",
      .port = 0,
      .tenants_path = g.tenants,
      .backend = &g.tb.base,
      .monotonic_ns = fake_clock,
      .wall_s = fake_wall,
      .keepalive_ms = 10000,
      .connection_timeout_s = 1,
      .max_body_bytes = 1 << 16,
  };
  char err[256];
  if (gw_server_start(&cfg, &g.srv, err, sizeof err) < 0) {
    printf("# gw_server_start: %s\n", err);
    return false;
  }
  g.port = gw_server_port(g.srv);
  return g.port != 0;
}

static void script_tokens(const char *a, const char *b, const char *c, uint32_t ptok) {
  struct tb_script s = {.tokens = {a, b, c}, .n_tokens = 3, .finish_reason = "stop",
                        .usage = {ptok, 3}};
  tb_set_script(&g.tb, &s);
}

static int post(const char *path, const char *key, const char *body, struct http_resp *r) {
  return http_call(g.port, "POST", path, key, NULL, body, r);
}

#define CHAT_BODY(extra) \
  "{\"model\":\"m1\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]" extra "}"

/* Extracts "id":"..." from a JSON text into out. */
static bool json_id(const char *text, char *out, size_t outlen) {
  const char *p = strstr(text, "\"id\":\"");
  if (!p) return false;
  p += 6;
  const char *e = strchr(p, '"');
  if (!e || (size_t)(e - p) >= outlen) return false;
  memcpy(out, p, (size_t)(e - p));
  out[e - p] = '\0';
  return true;
}

TEST(health_ok_with_generated_request_id) {
  CHECK(server());
  struct http_resp r;
  CHECK_EQ_INT(http_call(g.port, "GET", "/health", NULL, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 200);
  char v[160];
  CHECK(http_header(&r, "x-request-id", v, sizeof v) != NULL);
  CHECK(strncmp(v, "req_", 4) == 0);
  CHECK(http_header(&r, "Content-Type", v, sizeof v) != NULL);
  CHECK_STR_EQ(v, "application/json");
  http_resp_free(&r);
}

TEST(request_id_echoed_only_when_sane) {
  CHECK(server());
  struct http_resp r;
  char v[160];
  CHECK_EQ_INT(http_call(g.port, "GET", "/health", NULL, "x-request-id: abc-123_x.y:z\r\n", NULL, &r), 0);
  CHECK_STR_EQ(http_header(&r, "x-request-id", v, sizeof v), "abc-123_x.y:z");
  http_resp_free(&r);
  CHECK_EQ_INT(http_call(g.port, "GET", "/health", NULL, "x-request-id: bad id<script>\r\n", NULL, &r), 0);
  CHECK(http_header(&r, "x-request-id", v, sizeof v) != NULL);
  CHECK(strncmp(v, "req_", 4) == 0);
  http_resp_free(&r);
}

TEST(unauthenticated_is_401) {
  CHECK(server());
  struct http_resp r;
  CHECK_EQ_INT(post("/v1/chat/completions", NULL, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 401);
  CHECK_STR_CONTAINS(r.body, "\"type\":\"authentication_error\"");
  CHECK_STR_CONTAINS(r.body, "\"code\":\"unauthenticated\"");
  char v[160];
  CHECK(http_header(&r, "x-request-id", v, sizeof v) != NULL);
  CHECK(http_header(&r, "x-ratelimit-limit-requests", v, sizeof v) == NULL);
  http_resp_free(&r);
  CHECK_EQ_INT(post("/v1/chat/completions", "sk-wrong", CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 401);
  CHECK_STR_CONTAINS(r.body, "Incorrect API key");
  http_resp_free(&r);
  CHECK_EQ_INT(http_call(g.port, "GET", "/v1/models", "sk-wrong", NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 401);
  http_resp_free(&r);
}

TEST(model_not_allowed_is_404) {
  CHECK(server());
  struct http_resp r;
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_BETA, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 404);
  CHECK_STR_EQ(r.body, "{\"error\":{\"message\":\"The model 'm1' does not exist or you do not have "
                       "access to it.\",\"type\":\"invalid_request_error\",\"param\":\"model\","
                       "\"code\":\"not_found\"}}");
  http_resp_free(&r);
}

TEST(bad_bodies_are_400_naming_the_param) {
  CHECK(server());
  struct http_resp r;
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, "{\"model\":", &r), 0);
  CHECK_EQ_INT(r.status, 400);
  CHECK_STR_CONTAINS(r.body, "not valid JSON");
  CHECK_STR_CONTAINS(r.body, "\"param\":null");
  http_resp_free(&r);
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, "{\"model\":\"m1\xc3\x28\"}", &r), 0);
  CHECK_EQ_INT(r.status, 400);
  CHECK_STR_CONTAINS(r.body, "not valid UTF-8");
  http_resp_free(&r);
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(",\"temperature\":\"warm\""), &r), 0);
  CHECK_EQ_INT(r.status, 400);
  CHECK_STR_EQ(r.body, "{\"error\":{\"message\":\"'temperature' must be a number\",\"type\":"
                       "\"invalid_request_error\",\"param\":\"temperature\",\"code\":"
                       "\"invalid_argument\"}}");
  char v[64];
  CHECK(http_header(&r, "x-ratelimit-limit-requests", v, sizeof v) != NULL); /* authenticated */
  http_resp_free(&r);
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(",\"n\":3"), &r), 0);
  CHECK_EQ_INT(r.status, 400);
  CHECK_STR_CONTAINS(r.body, "n > 1 is not supported");
  CHECK_STR_CONTAINS(r.body, "\"param\":\"n\"");
  http_resp_free(&r);
}

TEST(huge_body_is_413) {
  CHECK(server());
  const char *req = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    "Authorization: Bearer " KEY_ALPHA "\r\nContent-Type: application/json\r\n"
                    "Content-Length: 5000000\r\n\r\n{\"model\":";
  struct http_resp r;
  CHECK_EQ_INT(http_exchange(g.port, req, strlen(req), &r), 0);
  CHECK_EQ_INT(r.status, 413);
  CHECK_STR_CONTAINS(r.body, "exceeds the limit");
  char v[160];
  CHECK(http_header(&r, "x-request-id", v, sizeof v) != NULL);
  http_resp_free(&r);
}

TEST(unknown_route_and_method_are_404) {
  CHECK(server());
  struct http_resp r;
  CHECK_EQ_INT(http_call(g.port, "GET", "/v1/nothing", NULL, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 404);
  CHECK_STR_CONTAINS(r.body, "Unknown request URL: GET /v1/nothing");
  http_resp_free(&r);
  CHECK_EQ_INT(http_call(g.port, "GET", "/v1/chat/completions", NULL, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 404);
  CHECK_STR_CONTAINS(r.body, "Method GET is not allowed");
  http_resp_free(&r);
}

TEST(models_lists_the_tenants_models) {
  CHECK(server());
  struct http_resp r;
  CHECK_EQ_INT(http_call(g.port, "GET", "/v1/models", KEY_ALPHA, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR_EQ(r.body, "{\"object\":\"list\",\"data\":[{\"id\":\"m1\",\"object\":\"model\",\"created\":0,"
                       "\"owned_by\":\"realm\"},{\"id\":\"m2\",\"object\":\"model\",\"created\":0,"
                       "\"owned_by\":\"realm\"}]}");
  http_resp_free(&r);
}

TEST(rate_limited_after_rpm_with_headers) {
  CHECK(server());
  script_tokens("a", "b", "c", 2);
  struct http_resp r;
  char v[64];
  for (int i = 0; i < 2; i++) {
    CHECK_EQ_INT(post("/v1/chat/completions", KEY_LIMITED, CHAT_BODY(",\"max_tokens\":10"), &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_STR_EQ(http_header(&r, "x-ratelimit-limit-requests", v, sizeof v), "2");
    CHECK_STR_EQ(http_header(&r, "x-ratelimit-remaining-requests", v, sizeof v), i == 0 ? "1" : "0");
    CHECK_STR_EQ(http_header(&r, "x-ratelimit-limit-tokens", v, sizeof v), "100000");
    CHECK(http_header(&r, "x-ratelimit-remaining-tokens", v, sizeof v) != NULL);
    CHECK(http_header(&r, "x-ratelimit-reset-tokens", v, sizeof v) != NULL);
    http_resp_free(&r);
  }
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_LIMITED, CHAT_BODY(",\"max_tokens\":10"), &r), 0);
  CHECK_EQ_INT(r.status, 429);
  CHECK_STR_CONTAINS(r.body, "\"type\":\"rate_limit_error\"");
  CHECK_STR_CONTAINS(r.body, "requests per minute (limit 2)");
  CHECK_STR_EQ(http_header(&r, "Retry-After", v, sizeof v), "30");
  CHECK_STR_EQ(http_header(&r, "x-ratelimit-remaining-requests", v, sizeof v), "0");
  CHECK_STR_EQ(http_header(&r, "x-ratelimit-reset-requests", v, sizeof v), "1m0s");
  http_resp_free(&r);
  atomic_fetch_add(&fake_now, 30ull * 1000000000ull); /* half a minute: one request back */
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_LIMITED, CHAT_BODY(",\"max_tokens\":10"), &r), 0);
  CHECK_EQ_INT(r.status, 200);
  http_resp_free(&r);
}

/* All six x-ratelimit-* headers of tenant alpha (both limits set), with the configured limits,
 * numeric remainders and duration-shaped resets. Returns NULL or what is wrong. */
static const char *alpha_ratelimit_headers(const struct http_resp *r) {
  static const char *const names[] = {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                                      "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens",
                                      "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"};
  char v[64];
  for (size_t i = 0; i < 6; i++) {
    if (!http_header(r, names[i], v, sizeof v)) return names[i];
    if (!v[0] || !strchr("0123456789", v[0])) return names[i];
  }
  if (strcmp(http_header(r, names[0], v, sizeof v), "100000")) return "limit-requests value";
  if (strcmp(http_header(r, names[3], v, sizeof v), "100000000")) return "limit-tokens value";
  return NULL;
}

#define CHECK_RL_HEADERS(resp)                                                   \
  do {                                                                           \
    const char *missing_ = alpha_ratelimit_headers(resp);                        \
    if (missing_) printf("# status %d: bad or missing %s\n", (resp)->status, missing_); \
    CHECK(missing_ == NULL);                                                     \
  } while (0)

TEST(ratelimit_headers_on_every_authenticated_response) {
  CHECK(server());
  struct http_resp r;
  char v[64];
  script_tokens("a", "b", "c", 2);
  /* success: models, whole answers, streams (headers go out before the first event) */
  CHECK_EQ_INT(http_call(g.port, "GET", "/v1/models", KEY_ALPHA, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_RL_HEADERS(&r);
  http_resp_free(&r);
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_RL_HEADERS(&r);
  http_resp_free(&r);
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(",\"stream\":true"), &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR_EQ(http_header(&r, "Content-Type", v, sizeof v), "text/event-stream");
  CHECK_RL_HEADERS(&r);
  http_resp_free(&r);
  CHECK_EQ_INT(post("/v1/completions", KEY_ALPHA, "{\"model\":\"m1\",\"prompt\":\"p\",\"stream\":true}", &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_RL_HEADERS(&r);
  http_resp_free(&r);
  /* 4xx: invalid parameter, model not allowed */
  CHECK_EQ_INT(post("/v1/completions", KEY_ALPHA, "{\"model\":\"m1\",\"prompt\":\"p\",\"top_p\":7}", &r), 0);
  CHECK_EQ_INT(r.status, 400);
  CHECK_RL_HEADERS(&r);
  http_resp_free(&r);
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA,
                    "{\"model\":\"m3\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r), 0);
  CHECK_EQ_INT(r.status, 404);
  CHECK_RL_HEADERS(&r);
  http_resp_free(&r);
  /* backend failures: refused at submit (503), failed before any token while streaming (500
   * status), failed after a token (in-stream error event on a 200) */
  struct tb_script s = {.submit_error = REALM_E_UNAVAILABLE};
  tb_set_script(&g.tb, &s);
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(",\"stream\":true"), &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_RL_HEADERS(&r);
  http_resp_free(&r);
  struct tb_script s2 = {.async_error = REALM_E_GUEST_TRAP};
  tb_set_script(&g.tb, &s2);
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(",\"stream\":true"), &r), 0);
  CHECK_EQ_INT(r.status, 500);
  CHECK_RL_HEADERS(&r);
  http_resp_free(&r);
  struct tb_script s3 = {.tokens = {"x"}, .n_tokens = 1, .async_error = REALM_E_GUEST_TRAP};
  tb_set_script(&g.tb, &s3);
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(",\"stream\":true"), &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR_CONTAINS(r.body, "\"code\":\"guest_trap\"");
  CHECK_RL_HEADERS(&r);
  http_resp_free(&r);
  /* A tenant without limits gets none (0 = unlimited: nothing to report). */
  CHECK_EQ_INT(http_call(g.port, "GET", "/v1/models", KEY_BETA, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK(http_header(&r, "x-ratelimit-limit-requests", v, sizeof v) == NULL);
  CHECK(http_header(&r, "x-ratelimit-limit-tokens", v, sizeof v) == NULL);
  http_resp_free(&r);
}

TEST(non_streaming_chat_body_shape) {
  CHECK(server());
  script_tokens("Hel", "lo", "!", 5);
  struct http_resp r;
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(",\"max_tokens\":7"), &r), 0);
  CHECK_EQ_INT(r.status, 200);
  char id[64], expect[1024];
  CHECK(json_id(r.body, id, sizeof id));
  CHECK(strncmp(id, "chatcmpl-", 9) == 0);
  snprintf(expect, sizeof expect,
           "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":1700000000,\"model\":\"m1\","
           "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello!\"},"
           "\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,"
           "\"completion_tokens\":3,\"total_tokens\":8}}",
           id);
  CHECK_STR_EQ(r.body, expect);
  CHECK_STR_EQ(g.tb.last_tenant, "alpha");
  CHECK_EQ_INT(g.tb.last_max_tokens, 7);
  http_resp_free(&r);
}

TEST(non_streaming_completion_body_shape) {
  CHECK(server());
  script_tokens("x", "y", "z", 1);
  struct http_resp r;
  CHECK_EQ_INT(post("/v1/completions", KEY_ALPHA, "{\"model\":\"m2\",\"prompt\":\"Once\"}", &r), 0);
  CHECK_EQ_INT(r.status, 200);
  char id[64], expect[1024];
  CHECK(json_id(r.body, id, sizeof id));
  CHECK(strncmp(id, "cmpl-", 5) == 0);
  snprintf(expect, sizeof expect,
           "{\"id\":\"%s\",\"object\":\"text_completion\",\"created\":1700000000,\"model\":\"m2\","
           "\"choices\":[{\"text\":\"xyz\",\"index\":0,\"logprobs\":null,\"finish_reason\":"
           "\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":3,\"total_tokens\":4}}",
           id);
  CHECK_STR_EQ(r.body, expect);
  http_resp_free(&r);
}

static void expect_chat_stream(const char *body, bool usage, char *out, size_t outlen) {
  char id[64] = "";
  json_id(body, id, sizeof id);
  const char *u = usage ? ",\"usage\":null" : "";
  char head[256];
  snprintf(head, sizeof head,
           "{\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
           "\"model\":\"m1\",\"choices\":[{\"index\":0,",
           id);
  int n = snprintf(out, outlen,
                   "data: %s\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
                   "\"finish_reason\":null}]%s}\n\n"
                   "data: %s\"delta\":{\"content\":\"One\"},\"logprobs\":null,\"finish_reason\":null}]%s}\n\n"
                   "data: %s\"delta\":{\"content\":\" two\"},\"logprobs\":null,\"finish_reason\":null}]%s}\n\n"
                   "data: %s\"delta\":{\"content\":\" \\\"3\\\"\"},\"logprobs\":null,\"finish_reason\":null}]%s}\n\n"
                   "data: %s\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]%s}\n\n",
                   head, u, head, u, head, u, head, u, head, u);
  if (usage)
    n += snprintf(out + n, outlen - (size_t)n,
                  "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
                  "\"model\":\"m1\",\"choices\":[],\"usage\":{\"prompt_tokens\":4,"
                  "\"completion_tokens\":3,\"total_tokens\":7}}\n\n",
                  id);
  snprintf(out + n, outlen - (size_t)n, "data: [DONE]\n\n");
}

TEST(sse_stream_bytes_exact) {
  CHECK(server());
  script_tokens("One", " two", " \"3\"", 4);
  struct http_resp r;
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(",\"stream\":true"), &r), 0);
  CHECK_EQ_INT(r.status, 200);
  char v[64];
  CHECK_STR_EQ(http_header(&r, "Content-Type", v, sizeof v), "text/event-stream");
  CHECK(http_header(&r, "x-request-id", v, sizeof v) != NULL);
  char expect[4096];
  expect_chat_stream(r.body, false, expect, sizeof expect);
  CHECK_STR_EQ(r.body, expect);
  http_resp_free(&r);
}

TEST(sse_stream_with_usage_bytes_exact) {
  CHECK(server());
  script_tokens("One", " two", " \"3\"", 4);
  struct http_resp r;
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA,
                    CHAT_BODY(",\"stream\":true,\"stream_options\":{\"include_usage\":true}"), &r), 0);
  CHECK_EQ_INT(r.status, 200);
  char expect[4096];
  expect_chat_stream(r.body, true, expect, sizeof expect);
  CHECK_STR_EQ(r.body, expect);
  http_resp_free(&r);
}

TEST(sse_completions_stream) {
  CHECK(server());
  script_tokens("a", "b", "c", 1);
  struct http_resp r;
  CHECK_EQ_INT(post("/v1/completions", KEY_ALPHA, "{\"model\":\"m1\",\"prompt\":\"p\",\"stream\":true}", &r), 0);
  CHECK_EQ_INT(r.status, 200);
  char id[64], expect[2048];
  CHECK(json_id(r.body, id, sizeof id));
  const char *h = "data: {\"id\":\"%s\",\"object\":\"text_completion\",\"created\":1700000000,\"model\":\"m1\",\"choices\":[{\"text\":\"%s\",\"index\":0,\"logprobs\":null,\"finish_reason\":%s}]}\n\n";
  int n = 0;
  const char *texts[] = {"a", "b", "c", ""};
  for (int i = 0; i < 4; i++)
    n += snprintf(expect + n, sizeof expect - (size_t)n, h, id, texts[i], i < 3 ? "null" : "\"stop\"");
  snprintf(expect + n, sizeof expect - (size_t)n, "data: [DONE]\n\n");
  CHECK_STR_EQ(r.body, expect);
  http_resp_free(&r);
}

TEST(client_disconnect_cancels_backend) {
  CHECK(server());
  struct tb_script s = {.tokens = {"first"}, .n_tokens = 1, .hang = true};
  tb_set_script(&g.tb, &s);
  int before = tb_cancels(&g.tb);
  int fd = http_connect(g.port, 5000);
  CHECK(fd >= 0);
  const char *body = CHAT_BODY(",\"stream\":true");
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " KEY_ALPHA
                   "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                   strlen(body), body);
  CHECK_EQ_INT(http_send_all(fd, req, (size_t)n), 0);
  char buf[8192];
  long got = http_read_until(fd, buf, sizeof buf, "\"content\":\"first\"");
  close(fd);
  CHECK(got > 0);
  CHECK(tb_wait_cancels(&g.tb, before + 1, 5000));
}

TEST(backend_errors_reach_the_client) {
  CHECK(server());
  struct tb_script s = {.submit_error = REALM_E_UNAVAILABLE};
  tb_set_script(&g.tb, &s);
  struct http_resp r;
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_CONTAINS(r.body, "scripted submit failure for tenant alpha");
  CHECK_STR_CONTAINS(r.body, "\"type\":\"server_error\"");
  char v[64];
  /* An unexplained 503: no hint from the backend, no rule for it, so no Retry-After. */
  CHECK(http_header(&r, "Retry-After", v, sizeof v) == NULL);
  http_resp_free(&r);
  struct tb_script s2 = {.tokens = {"x"}, .n_tokens = 1, .async_error = REALM_E_GUEST_TRAP};
  tb_set_script(&g.tb, &s2);
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 500);
  CHECK_STR_CONTAINS(r.body, "\"code\":\"guest_trap\"");
  CHECK(http_header(&r, "Retry-After", v, sizeof v) == NULL);
  http_resp_free(&r);
}

TEST(ready_follows_backend) {
  CHECK(server());
  struct http_resp r;
  tb_set_ready(&g.tb, false);
  CHECK_EQ_INT(http_call(g.port, "GET", "/ready", NULL, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_CONTAINS(r.body, "test backend not ready");
  http_resp_free(&r);
  tb_set_ready(&g.tb, true);
  CHECK_EQ_INT(http_call(g.port, "GET", "/ready", NULL, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 200);
  http_resp_free(&r);
}

TEST(metrics_count_requests) {
  CHECK(server());
  struct http_resp r;
  CHECK_EQ_INT(http_call(g.port, "GET", "/metrics", NULL, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 200);
  char v[128];
  CHECK_STR_CONTAINS(http_header(&r, "Content-Type", v, sizeof v), "text/plain; version=0.0.4");
  CHECK_STR_CONTAINS(r.body, "# TYPE realm_gateway_requests_total counter\n");
  CHECK_STR_CONTAINS(r.body, "realm_gateway_requests_total{tenant=\"alpha\",code=\"200\"}");
  CHECK_STR_CONTAINS(r.body, "realm_gateway_requests_total{tenant=\"_unauthenticated\",code=\"401\"} 3\n");
  CHECK_STR_CONTAINS(r.body, "realm_gateway_requests_total{tenant=\"beta\",code=\"404\"} 1\n");
  CHECK_STR_CONTAINS(r.body, "realm_gateway_rate_limited_total{tenant=\"limited\",limit=\"requests\"} 1\n");
  CHECK_STR_CONTAINS(r.body, "realm_gateway_completion_tokens_total{tenant=\"limited\"} 9\n");
  CHECK_STR_CONTAINS(r.body, "# TYPE realm_gateway_time_to_first_token_seconds histogram\n");
  CHECK_STR_CONTAINS(r.body, "realm_gateway_request_duration_seconds_bucket{tenant=\"limited\",le=\"+Inf\"} 3\n");
  CHECK_STR_CONTAINS(r.body, "realm_gateway_request_duration_seconds_count{tenant=\"limited\"} 3\n");
  CHECK_STR_CONTAINS(r.body, "realm_gateway_in_flight_requests{tenant=\"limited\"} 0\n");
  char err[256] = "";
  bool valid = prom_check(r.body, err, sizeof err);
  if (!valid) printf("# %s\n", err);
  CHECK(valid);
  http_resp_free(&r);
}

/* ---- error param and Retry-After (docs/gateway.md "Errors") ---- */

#define KV_FULL_BODY                                                                            \
  "{\"error\":{\"message\":\"scripted failure\",\"type\":\"server_error\",\"param\":\"kv_cache\"," \
  "\"code\":\"unavailable\"}}"

TEST(kv_cache_full_is_503_with_retry_after_and_param) {
  CHECK(server());
  struct tb_script s = {.async_error = REALM_E_UNAVAILABLE, .error_param = "kv_cache"};
  tb_set_script(&g.tb, &s);
  struct http_resp r;
  char v[64];
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_EQ(r.body, KV_FULL_BODY);
  CHECK_STR_EQ(http_header(&r, "Retry-After", v, sizeof v), "1"); /* the default option */
  CHECK_STR_EQ(http_header(&r, "Content-Type", v, sizeof v), "application/json");
  http_resp_free(&r);
  /* The same from a refused submit (contract 1: err and info, no event). */
  struct tb_script s2 = {.submit_error = REALM_E_UNAVAILABLE, .error_param = "kv_cache"};
  tb_set_script(&g.tb, &s2);
  CHECK_EQ_INT(post("/v1/completions", KEY_ALPHA, "{\"model\":\"m1\",\"prompt\":\"p\"}", &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_CONTAINS(r.body, "\"param\":\"kv_cache\",\"code\":\"unavailable\"");
  CHECK_STR_EQ(http_header(&r, "Retry-After", v, sizeof v), "1");
  http_resp_free(&r);
}

TEST(kv_cache_full_before_the_first_token_of_a_stream_is_a_503_not_an_event) {
  CHECK(server());
  struct tb_script s = {.async_error = REALM_E_UNAVAILABLE, .error_param = "kv_cache"};
  tb_set_script(&g.tb, &s);
  struct http_resp r;
  char v[64];
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(",\"stream\":true"), &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_EQ(http_header(&r, "Content-Type", v, sizeof v), "application/json");
  CHECK_STR_EQ(r.body, KV_FULL_BODY);
  CHECK_STR_EQ(http_header(&r, "Retry-After", v, sizeof v), "1");
  CHECK(http_header(&r, "x-ratelimit-limit-requests", v, sizeof v) != NULL);
  http_resp_free(&r);
}

TEST(kv_cache_full_mid_stream_ends_with_an_error_event_carrying_the_param) {
  CHECK(server());
  struct tb_script s = {.tokens = {"One"}, .n_tokens = 1, .async_error = REALM_E_UNAVAILABLE,
                        .error_param = "kv_cache", .error_retry_after_s = 9};
  tb_set_script(&g.tb, &s);
  struct http_resp r;
  char v[64];
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(",\"stream\":true"), &r), 0);
  CHECK_EQ_INT(r.status, 200); /* the token came first: the status was already decided */
  CHECK_STR_EQ(http_header(&r, "Content-Type", v, sizeof v), "text/event-stream");
  CHECK(http_header(&r, "Retry-After", v, sizeof v) == NULL);
  CHECK_STR_CONTAINS(r.body, "\"delta\":{\"content\":\"One\"}");
  /* The last event is the error object, exactly, and there is no [DONE]. */
  const char *last = "data: " KV_FULL_BODY "\n\n";
  CHECK(r.body_len >= strlen(last));
  CHECK_STR_EQ(r.body + r.body_len - strlen(last), last);
  CHECK(strstr(r.body, "[DONE]") == NULL);
  http_resp_free(&r);
}

TEST(backend_retry_hint_becomes_retry_after_on_503_only) {
  CHECK(server());
  struct http_resp r;
  char v[64];
  struct tb_script s = {.submit_error = REALM_E_UNAVAILABLE, .error_retry_after_s = 7};
  tb_set_script(&g.tb, &s);
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_EQ(http_header(&r, "Retry-After", v, sizeof v), "7");
  CHECK_STR_CONTAINS(r.body, "\"param\":null");
  http_resp_free(&r);
  /* The backend's hint wins over the kv_cache rule: it knows more. */
  struct tb_script k = {.async_error = REALM_E_UNAVAILABLE, .error_param = "kv_cache",
                        .error_retry_after_s = 4};
  tb_set_script(&g.tb, &k);
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_EQ(http_header(&r, "Retry-After", v, sizeof v), "4");
  http_resp_free(&r);
  /* A 4xx or a 500 is not worth retrying as it stands: a hint there is dropped, the param
   * still names the field. */
  struct tb_script b = {.submit_error = REALM_E_INVALID_ARGUMENT, .error_param = "max_tokens",
                        .error_retry_after_s = 7};
  tb_set_script(&g.tb, &b);
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 400);
  CHECK_STR_CONTAINS(r.body, "\"param\":\"max_tokens\",\"code\":\"invalid_argument\"");
  CHECK(http_header(&r, "Retry-After", v, sizeof v) == NULL);
  http_resp_free(&r);
  struct tb_script t = {.async_error = REALM_E_GUEST_TRAP, .error_param = "kv_cache",
                        .error_retry_after_s = 7};
  tb_set_script(&g.tb, &t);
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 500);
  CHECK(http_header(&r, "Retry-After", v, sizeof v) == NULL);
  http_resp_free(&r);
}

TEST(client_errors_have_no_retry_after) {
  CHECK(server());
  struct http_resp r;
  char v[64];
  CHECK_EQ_INT(post("/v1/chat/completions", "sk-wrong", CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 401);
  CHECK(http_header(&r, "Retry-After", v, sizeof v) == NULL);
  http_resp_free(&r);
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA,
                    "{\"model\":\"m1\",\"messages\":[],\"temperature\":9}", &r), 0);
  CHECK_EQ_INT(r.status, 400);
  CHECK(http_header(&r, "Retry-After", v, sizeof v) == NULL);
  http_resp_free(&r);
  CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA,
                    "{\"model\":\"nope\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                    &r), 0);
  CHECK_EQ_INT(r.status, 404);
  CHECK(http_header(&r, "Retry-After", v, sizeof v) == NULL);
  http_resp_free(&r);
  CHECK_EQ_INT(http_call(g.port, "GET", "/v1/nothing", KEY_ALPHA, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 404);
  CHECK(http_header(&r, "Retry-After", v, sizeof v) == NULL);
  http_resp_free(&r);
}

TEST(params_a_client_should_not_see_become_null) {
  CHECK(server());
  struct http_resp r;
  /* Not printable ASCII (here UTF-8 "é" and a control byte): each renders "param":null and
   * the body stays valid JSON. */
  const char *bad[] = {"kv_cach\xc3\xa9", "kv\ncache"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct tb_script s = {.async_error = REALM_E_UNAVAILABLE, .error_param = bad[i]};
    tb_set_script(&g.tb, &s);
    CHECK_EQ_INT(post("/v1/chat/completions", KEY_ALPHA, CHAT_BODY(""), &r), 0);
    CHECK_EQ_INT(r.status, 503);
    CHECK_STR_CONTAINS(r.body, "\"param\":null,\"code\":\"unavailable\"");
    char v[64];
    CHECK(http_header(&r, "Retry-After", v, sizeof v) == NULL); /* not the kv_cache rule */
    http_resp_free(&r);
  }
  char out[GW_ERROR_PARAM_MAX];
  gw_error_param_copy(out, "messages[2].content");
  CHECK_STR_EQ(out, "messages[2].content");
  gw_error_param_copy(out, NULL);
  CHECK_STR_EQ(out, "");
  /* 63 bytes fit; 64 would have to be cut, which would name something else: dropped. */
  char p63[64], p64[65];
  memset(p63, 'a', 63);
  p63[63] = '\0';
  memset(p64, 'a', 64);
  p64[64] = '\0';
  gw_error_param_copy(out, p63);
  CHECK_STR_EQ(out, p63);
  gw_error_param_copy(out, p64);
  CHECK_STR_EQ(out, "");
}

TEST(prom_checker_refuses_what_promtool_would) {
  char err[256];
  const char *good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n"
                     "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
                     "h_sum 3.5\nh_count 2\n";
  CHECK(prom_check(good, err, sizeof err));
  static const char *const bad[] = {
      "a_total 1",                                           /* no final newline */
      "# TYPE a counter\na 1\n",                             /* counter without _total */
      "# TYPE a_total counter\na_total -1\n",                 /* negative counter */
      "a{x=\"1\",x=\"2\"} 1\n",                               /* repeated label */
      "a{x=\"\\q\"} 1\n",                                   /* bad escape */
      "a 1\na 2\n",                                          /* repeated series */
      "a 1\nb 1\na{x=\"y\"} 1\n",                             /* family not contiguous */
      "a 1\n# TYPE a gauge\n",                               /* TYPE after samples */
      "a one\n",                                             /* value */
      "1a 1\n",                                              /* name */
      "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
      "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
      "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", /* no +Inf */
      "a 1\n\n",                                             /* empty line */
      "a{x=\"1\",} 1\n",                                      /* trailing comma */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    bool ok = prom_check(bad[i], err, sizeof err);
    if (ok) printf("# accepted bad case %zu\n", i);
    CHECK(!ok);
  }
}

TEST(reload_rotates_keys_and_refuses_bad_files) {
  CHECK(server());
  char json[2048], err[512];
  tenants_json(json, sizeof json, "sk-test-alpha-2");
  CHECK_EQ_INT(write_file(g.tenants, json), 0);
  CHECK_EQ_INT(gw_server_reload_tenants(g.srv, err, sizeof err), 0);
  struct http_resp r;
  CHECK_EQ_INT(http_call(g.port, "GET", "/v1/models", KEY_ALPHA, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 401);
  http_resp_free(&r);
  CHECK_EQ_INT(http_call(g.port, "GET", "/v1/models", "sk-test-alpha-2", NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 200);
  http_resp_free(&r);
  CHECK_EQ_INT(write_file(g.tenants, "[{\"id\":\"ok\",\"models\":[\"m\"]},{\"id\":\"x\",\"models\":[\"m\"],"
                                      "\"limits\":{\"max_concurrent\":\"many\"}}]"), 0);
  CHECK(gw_server_reload_tenants(g.srv, err, sizeof err) < 0);
  CHECK_STR_CONTAINS(err, "entry 1 (id 'x'): 'limits.max_concurrent'");
  CHECK_EQ_INT(http_call(g.port, "GET", "/v1/models", "sk-test-alpha-2", NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 200); /* old config kept */
  http_resp_free(&r);
}

TEST(slow_client_is_disconnected) {
  CHECK(server());
  int fd = http_connect(g.port, 5000);
  CHECK(fd >= 0);
  const char *partial = "GET /health HTTP/1.1\r\nHost: x\r\n"; /* never finishes its headers */
  CHECK_EQ_INT(http_send_all(fd, partial, strlen(partial)), 0);
  char buf[256];
  ssize_t n = recv(fd, buf, sizeof buf, 0); /* server closes after its 1 s idle timeout */
  close(fd);
  CHECK(n == 0);
}

TEST(oversized_headers_are_refused) {
  CHECK(server());
  size_t big = 40000;
  char *req = malloc(big + 256);
  int n = snprintf(req, 256, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: ");
  memset(req + n, 'a', big);
  memcpy(req + n + big, "\r\n\r\n", 4);
  struct http_resp r;
  http_exchange(g.port, req, (size_t)n + big + 4, &r);
  free(req);
  CHECK(r.status == 431 || r.status == 0 || r.status == 413);
  CHECK(r.status != 200);
  http_resp_free(&r);
}

TEST(product_backend_refuses_honestly) {
  char err[256];
  struct gw_config cfg = {.port = 0, .tenants_path = g.tenants, .backend = gw_backend_no_runner()};
  char json[2048];
  tenants_json(json, sizeof json, KEY_ALPHA);
  CHECK_EQ_INT(write_file(g.tenants, json), 0);
  struct gw_server *srv = NULL;
  CHECK_EQ_INT(gw_server_start(&cfg, &srv, err, sizeof err), 0);
  uint16_t port = gw_server_port(srv);
  struct http_resp r;
  CHECK_EQ_INT(http_call(port, "POST", "/v1/chat/completions", KEY_ALPHA, NULL, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_CONTAINS(r.body, "no runner available for tenant alpha");
  CHECK_STR_CONTAINS(r.body, "\"type\":\"server_error\"");
  http_resp_free(&r);
  CHECK_EQ_INT(http_call(port, "GET", "/ready", NULL, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 503);
  http_resp_free(&r);
  gw_server_stop(srv);
}

TEST(zz_shutdown) {
  CHECK(server());
  gw_server_stop(g.srv);
  g.srv = NULL;
  tb_destroy(&g.tb);
  char path[400];
  snprintf(path, sizeof path, "%s/tenants.json", g.dir);
  unlink(path);
  rmdir(g.dir);
  CHECK(1);
}
