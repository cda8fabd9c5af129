/*
 * test_runners.c — the gateway with its real runner backend (backend_runners.c) against fake
 * runner replicas (fake_runner.c) over real ZeroMQ ipc:// sockets: parameter mapping and SSE
 * end to end, least-outstanding routing across two replicas, a replica that stops answering
 * pings taken out and put back, a replica killed mid-stream failing its stream promptly, all
 * replicas down giving 503 with the OpenAI error body, cancel on client disconnect reaching
 * the runner, runner errors mapped to HTTP statuses, and a tenants reload that adds and
 * removes replicas without dropping an unchanged replica's stream; per-token logprobs in the
 * chat and completions shapes, streamed and not.
 *
 * Waits are bounded condition waits (fake runner counters, replica state polled from the
 * backend); the fake runner's token delays simulate decode time, they never synchronise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zmq.h>

#include "auth.h"
#include "backend_runners.h"
#include "fake_runner.h"
#include "gateway.h"
#include "http_client.h"
#include "prom_check.h"
#include "realm/error.h"
#include "realm_test.h"
#include "sink.h"

#define KEY_ALPHA "sk-test-alpha"
#define KEY_SOLO "sk-test-solo"
#define PING_MS 40
#define PING_MISSES 3
#define KV_RETRY_S 2

static struct {
  bool started, ok;
  void *zctx;
  struct gw_runners *rn;
  struct gw_server *srv;
  uint16_t port;
  char dir[200];
  char tenants[260];
  char ep_a0[256], ep_a1[256], ep_s0[256], ep_s1[256];
  struct fake_runner *a0, *a1, *s0, *s1;
} g;

static uint64_t ms_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void nap_ms(int ms) {
  struct timespec ts = {0, (long)ms * 1000000L};
  nanosleep(&ts, NULL);
}

/* Waits (bounded) until the backend reports the replica in `state`. Polls the state: the
 * change happens on the backend's own thread, which offers no callback. */
static bool wait_state(const char *tenant, const char *ep, enum gw_replica_state state,
                       int timeout_ms) {
  uint64_t end = ms_now() + (uint64_t)timeout_ms;
  do {
    struct gw_runner_stats st;
    if (gw_runners_replica_stats(g.rn, tenant, ep, &st) == 0 && st.state == state) return true;
    nap_ms(2);
  } while (ms_now() < end);
  return false;
}

static bool wait_outstanding(const char *tenant, const char *ep, uint32_t n, int timeout_ms) {
  uint64_t end = ms_now() + (uint64_t)timeout_ms;
  do {
    struct gw_runner_stats st;
    if (gw_runners_replica_stats(g.rn, tenant, ep, &st) == 0 && st.outstanding == n) return true;
    nap_ms(2);
  } while (ms_now() < end);
  return false;
}

static bool wait_gone(const char *tenant, const char *ep, int timeout_ms) {
  uint64_t end = ms_now() + (uint64_t)timeout_ms;
  do {
    struct gw_runner_stats st;
    if (gw_runners_replica_stats(g.rn, tenant, ep, &st) == REALM_E_NOT_FOUND) return true;
    nap_ms(2);
  } while (ms_now() < end);
  return false;
}

static uint64_t routed(const char *tenant, const char *ep) {
  struct gw_runner_stats st = {0};
  gw_runners_replica_stats(g.rn, tenant, ep, &st);
  return st.routed_total;
}

static int write_tenants(bool reloaded) {
  char ha[65], hs[65];
  gw_key_hash_hex(KEY_ALPHA, ha);
  gw_key_hash_hex(KEY_SOLO, hs);
  FILE *f = fopen(g.tenants, "w");
  if (!f) return -1;
  if (!reloaded)
    fprintf(f,
            "[{\"id\":\"alpha\",\"key_hashes\":[\"%s\"],\"models\":[\"m1\"],"
            "  \"runners\":[\"%s\",\"%s\"]},"
            " {\"id\":\"solo\",\"key_hashes\":[\"%s\"],\"models\":[\"m1\"],"
            "  \"runners\":[\"%s\"]}]",
            ha, g.ep_a0, g.ep_a1, hs, g.ep_s0);
  else /* alpha loses a1; solo gains s1 */
    fprintf(f,
            "[{\"id\":\"alpha\",\"key_hashes\":[\"%s\"],\"models\":[\"m1\"],"
            "  \"runners\":[\"%s\"]},"
            " {\"id\":\"solo\",\"key_hashes\":[\"%s\"],\"models\":[\"m1\"],"
            "  \"runners\":[\"%s\",\"%s\"]}]",
            ha, g.ep_a0, hs, g.ep_s0, g.ep_s1);
  return fclose(f);
}

static bool stack(void) {
  if (g.started) return g.ok;
  g.started = true;
  const char *base = getenv("REALM_BUILD_ROOT");
  snprintf(g.dir, sizeof g.dir, "%s/gwr-XXXXXX", base && strlen(base) < 60 ? base : "/tmp");
  if (!mkdtemp(g.dir)) return false;
  snprintf(g.tenants, sizeof g.tenants, "%s/tenants.json", g.dir);
  snprintf(g.ep_a0, sizeof g.ep_a0, "ipc://%s/runner-alpha-0.sock", g.dir);
  snprintf(g.ep_a1, sizeof g.ep_a1, "ipc://%s/runner-alpha-1.sock", g.dir);
  snprintf(g.ep_s0, sizeof g.ep_s0, "ipc://%s/runner-solo-0.sock", g.dir);
  snprintf(g.ep_s1, sizeof g.ep_s1, "ipc://%s/runner-solo-1.sock", g.dir);
  g.zctx = zmq_ctx_new();
  if (!g.zctx || fr_start(g.zctx, g.ep_a0, "alpha", &g.a0) < 0 ||
      fr_start(g.zctx, g.ep_a1, "alpha", &g.a1) < 0 ||
      fr_start(g.zctx, g.ep_s0, "solo", &g.s0) < 0 ||
      fr_start(g.zctx, g.ep_s1, "solo", &g.s1) < 0 || write_tenants(false) < 0)
    return false;
  char err[256];
  struct gw_runners_config rc = {.ping_ms = PING_MS, .ping_misses = PING_MISSES,
                                 .cancel_grace_ms = 1000};
  if (gw_runners_create(&rc, &g.rn, err, sizeof err) < 0) {
    printf("# gw_runners_create: %s\n", err);
    return false;
  }
  /* kv_cache_retry_after_s differs from the no-replica hint (PING_MS rounded up: 1 s), so
   * the tests can tell which rule gave a Retry-After. */
  struct gw_config cfg = {.listen_addr = "127.0.0.1", .tenants_path = g.tenants,
                          .backend = gw_runners_backend(g.rn), .keepalive_ms = 10000,
                          .kv_cache_retry_after_s = KV_RETRY_S};
  if (gw_server_start(&cfg, &g.srv, err, sizeof err) < 0) {
    printf("# gw_server_start: %s\n", err);
    return false;
  }
  g.port = gw_server_port(g.srv);
  g.ok = wait_state("alpha", g.ep_a0, GW_REPLICA_UP, 5000) &&
         wait_state("alpha", g.ep_a1, GW_REPLICA_UP, 5000) &&
         wait_state("solo", g.ep_s0, GW_REPLICA_UP, 5000);
  return g.ok;
}

static void script(struct fake_runner *fr, const char *a, const char *b, const char *c, bool hang) {
  struct fr_script s = {.tokens = {a, b, c}, .n_tokens = c ? 3 : b ? 2 : a ? 1 : 0,
                        .finish = "stop", .prompt_tokens = 7, .completion_tokens = 3,
                        .hang = hang};
  fr_set_script(fr, &s);
}

#define CHAT_BODY(extra) \
  "{\"model\":\"m1\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]" extra "}"

/* Opens a streaming chat request and leaves the response unread. Returns the socket. */
static int open_stream(const char *key) {
  int fd = http_connect(g.port, 5000);
  if (fd < 0) return -1;
  const char *body = CHAT_BODY(",\"stream\":true");
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                   "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\n\r\n%s",
                   key, strlen(body), body);
  if (http_send_all(fd, req, (size_t)n) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Reads until the server closes; returns the raw bytes (static buffer per call site). */
static long read_all(int fd, char *buf, size_t cap) {
  size_t len = 0;
  while (len + 1 < cap) {
    ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
    if (n <= 0) break;
    len += (size_t)n;
  }
  buf[len] = '\0';
  return (long)len;
}

TEST(request_routed_and_streamed_with_every_parameter) {
  CHECK(stack());
  script(g.s0, "Hel", "lo", " world", false);
  struct http_resp r;
  const char *body =
      "{\"model\":\"m1\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief\"},"
      "{\"role\":\"user\",\"content\":\"Hi there\"}],\"stream\":true,"
      "\"stream_options\":{\"include_usage\":true},\"max_tokens\":16,\"temperature\":0.5,"
      "\"top_p\":0.9,\"seed\":42,\"stop\":[\"END\"],\"presence_penalty\":0.5,"
      "\"frequency_penalty\":-0.5,\"logit_bias\":{\"50\":2},\"user\":\"u1\",\"logprobs\":true,"
      "\"top_logprobs\":2}";
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_SOLO,
                         "x-request-id: trace-42\r\n", body, &r), 0);
  CHECK_EQ_INT(r.status, 200);
  /* SSE framing: role chunk, one chunk per runner token, finish, usage, [DONE]. */
  const char *p = strstr(r.body, "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}");
  CHECK(p != NULL);
  CHECK((p = strstr(p, "\"delta\":{\"content\":\"Hel\"}")) != NULL);
  CHECK((p = strstr(p, "\"delta\":{\"content\":\"lo\"}")) != NULL);
  CHECK((p = strstr(p, "\"delta\":{\"content\":\" world\"}")) != NULL);
  CHECK((p = strstr(p, "\"finish_reason\":\"stop\"")) != NULL);
  CHECK((p = strstr(p, "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}")) != NULL);
  CHECK((p = strstr(p, "\n\ndata: [DONE]\n\n")) != NULL);
  CHECK(strncmp(r.body, "data: {", 7) == 0);
  http_resp_free(&r);

  struct fr_seen s;
  fr_last_seen(g.s0, &s);
  CHECK(strncmp(s.request_id, "trace-42#", 9) == 0);
  CHECK_STR_EQ(s.tenant, "solo");
  CHECK_STR_EQ(s.model, "m1");
  CHECK(s.is_chat);
  CHECK_EQ_INT((int)s.n_messages, 2);
  CHECK_STR_EQ(s.first_role, "system");
  CHECK_STR_EQ(s.last_content, "Hi there");
  CHECK_EQ_INT((int)s.n, 1);
  CHECK_EQ_INT((int)s.max_tokens, 16);
  CHECK(s.has_temperature);
  CHECK_NEAR(s.temperature, 0.5, 1e-6);
  CHECK(s.has_top_p);
  CHECK_NEAR(s.top_p, 0.9, 1e-6);
  CHECK(s.has_seed);
  CHECK_EQ_INT((int)s.seed, 42);
  CHECK_EQ_INT((int)s.n_stop, 1);
  CHECK_STR_EQ(s.stop0, "END");
  CHECK_NEAR(s.presence_penalty, 0.5, 1e-6);
  CHECK_NEAR(s.frequency_penalty, -0.5, 1e-6);
  CHECK_EQ_INT((int)s.n_logit_bias, 1);
  CHECK_EQ_INT(s.bias_key0, 50);
  CHECK_NEAR(s.bias_value0, 2.0, 1e-6);
  CHECK(s.logprobs);
  CHECK_EQ_INT((int)s.top_logprobs, 2);
  CHECK_STR_EQ(s.user, "u1");
  CHECK(s.stream);
  CHECK(s.include_usage);
}

/* ---- logprobs: the runner's TokenLogprob entries reach the client in OpenAI's shapes ---- */

TEST(chat_logprobs_non_streaming) {
  CHECK(stack());
  script(g.s0, "Hel", "lo", NULL, false);
  struct http_resp r;
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_SOLO, NULL,
                         CHAT_BODY(",\"logprobs\":true,\"top_logprobs\":2"), &r), 0);
  CHECK_EQ_INT(r.status, 200);
  json_error_t je;
  json_t *root = json_loads(r.body ? r.body : "", 0, &je);
  CHECK(root != NULL);
  json_t *content = json_object_get(
      json_object_get(json_array_get(json_object_get(root, "choices"), 0), "logprobs"), "content");
  CHECK_EQ_INT((int)json_array_size(content), 2);
  json_t *e1 = json_array_get(content, 1);
  CHECK_STR_EQ(json_string_value(json_object_get(e1, "token")), "lo");
  CHECK_NEAR(json_number_value(json_object_get(e1, "logprob")), -1.0, 1e-6);
  CHECK_EQ_INT((int)json_array_size(json_object_get(e1, "bytes")), 2);
  CHECK_EQ_INT((int)json_integer_value(json_array_get(json_object_get(e1, "bytes"), 0)), 'l');
  json_t *top = json_object_get(e1, "top_logprobs");
  CHECK_EQ_INT((int)json_array_size(top), 2);
  CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(top, 1), "token")), "alt1");
  CHECK_NEAR(json_number_value(json_object_get(json_array_get(top, 1), "logprob")), -2.0, 1e-6);
  json_decref(root);
  http_resp_free(&r);

  /* Not asked for: null, even though a runner might send entries. */
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_SOLO, NULL, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR_CONTAINS(r.body, "\"logprobs\":null");
  http_resp_free(&r);
}

TEST(chat_logprobs_streamed_follow_split_characters) {
  CHECK(stack());
  /* U+20AC in two tokens: the chunk that releases the character carries both entries. */
  script(g.s0, "a", "\xE2\x82", "\xAC", false);
  struct http_resp r;
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_SOLO, NULL,
                         CHAT_BODY(",\"stream\":true,\"logprobs\":true"), &r), 0);
  CHECK_EQ_INT(r.status, 200);
  const char *p = strstr(r.body, "\"delta\":{\"content\":\"a\"},\"logprobs\":{\"content\":[{\"token\":"
                                 "\"a\",\"logprob\":-0.5,\"bytes\":[97],\"top_logprobs\":[]}]");
  CHECK(p != NULL);
  CHECK((p = strstr(p ? p : "", "\"delta\":{\"content\":\"\xE2\x82\xAC\"},\"logprobs\":{\"content\":"
                                "[{\"token\":\"\\\\xe2\\\\x82\",\"logprob\":-1.0,\"bytes\":[226,130],"
                                "\"top_logprobs\":[]},{\"token\":\"\\\\xac\",\"logprob\":-1.5,"
                                "\"bytes\":[172],\"top_logprobs\":[]}]")) != NULL);
  CHECK((p = strstr(p ? p : "", "\"finish_reason\":\"stop\"")) != NULL);
  if (!p) printf("# body: %s\n", r.body);
  http_resp_free(&r);
}

TEST(completion_logprobs_streamed_and_not) {
  CHECK(stack());
  script(g.s0, "Once", " up", NULL, false);
  struct http_resp r;
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/completions", KEY_SOLO, NULL,
                         "{\"model\":\"m1\",\"prompt\":\"Tell\",\"logprobs\":2}", &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR_CONTAINS(r.body, "\"logprobs\":{\"tokens\":[\"Once\",\" up\"],\"token_logprobs\":"
                             "[-0.5,-1.0],\"top_logprobs\":[{\"Once\":-0.5,\"alt1\":-1.5},"
                             "{\" up\":-1.0,\"alt1\":-2.0}],\"text_offset\":[0,4]}");
  http_resp_free(&r);
  /* Streamed: one entry per chunk, text_offset running across chunks. */
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/completions", KEY_SOLO, NULL,
                         "{\"model\":\"m1\",\"prompt\":\"Tell\",\"logprobs\":0,\"stream\":true}", &r), 0);
  CHECK_EQ_INT(r.status, 200);
  const char *p = strstr(r.body, "\"text\":\"Once\",\"index\":0,\"logprobs\":{\"tokens\":[\"Once\"],"
                                 "\"token_logprobs\":[-0.5],\"top_logprobs\":[{}],\"text_offset\":[0]}");
  CHECK(p != NULL);
  CHECK((p = strstr(p ? p : "", "\"text\":\" up\",\"index\":0,\"logprobs\":{\"tokens\":[\" up\"],"
                                "\"token_logprobs\":[-1.0],\"top_logprobs\":[{}],\"text_offset\":[4]}")) != NULL);
  if (!p) printf("# body: %s\n", r.body);
  http_resp_free(&r);
}

TEST(completion_non_streaming_and_unset_parameters) {
  CHECK(stack());
  script(g.s0, "Once", " upon", NULL, false);
  struct http_resp r;
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/completions", KEY_SOLO, NULL,
                         "{\"model\":\"m1\",\"prompt\":\"Tell me\"}", &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR_CONTAINS(r.body, "\"text\":\"Once upon\"");
  CHECK_STR_CONTAINS(r.body, "\"finish_reason\":\"stop\"");
  CHECK_STR_CONTAINS(r.body, "\"prompt_tokens\":7");
  http_resp_free(&r);
  struct fr_seen s;
  fr_last_seen(g.s0, &s);
  CHECK(!s.is_chat);
  CHECK_STR_EQ(s.prompt, "Tell me");
  CHECK(!s.has_temperature);
  CHECK(!s.has_top_p);
  CHECK(!s.has_seed);
  CHECK_EQ_INT((int)s.max_tokens, 0);
  CHECK(!s.stream);
}

TEST(least_outstanding_spreads_concurrent_requests) {
  CHECK(stack());
  script(g.a0, "x", NULL, NULL, true);
  script(g.a1, "y", NULL, NULL, true);
  int g0 = fr_generates(g.a0), g1 = fr_generates(g.a1);
  int fds[4];
  for (int i = 0; i < 4; i++) CHECK((fds[i] = open_stream(KEY_ALPHA)) >= 0);
  /* All four held by the runners at once: least outstanding must split them 2/2. */
  CHECK(wait_outstanding("alpha", g.ep_a0, 2, 5000));
  CHECK(wait_outstanding("alpha", g.ep_a1, 2, 5000));
  CHECK(fr_wait_generates(g.a0, g0 + 2, 5000)); /* frames leave on the I/O thread */
  CHECK(fr_wait_generates(g.a1, g1 + 2, 5000));
  CHECK(wait_outstanding("alpha", g.ep_a0, 2, 5000));
  CHECK(wait_outstanding("alpha", g.ep_a1, 2, 5000));
  CHECK_EQ_INT(fr_generates(g.a0) - g0, 2);
  CHECK_EQ_INT(fr_generates(g.a1) - g1, 2);
  fr_finish_all(g.a0);
  fr_finish_all(g.a1);
  static char buf[16384];
  for (int i = 0; i < 4; i++) {
    CHECK(read_all(fds[i], buf, sizeof buf) > 0);
    close(fds[i]);
    CHECK_STR_CONTAINS(buf, "data: [DONE]");
  }
}

/* Waits (bounded) until the replica's last pong, as the backend recorded it, says
 * in_flight / max_in_flight. Polled like wait_state. */
static bool wait_reported(const char *tenant, const char *ep, uint32_t in_flight, uint32_t max,
                          int timeout_ms) {
  uint64_t end = ms_now() + (uint64_t)timeout_ms;
  do {
    struct gw_runner_stats st;
    if (gw_runners_replica_stats(g.rn, tenant, ep, &st) == 0 && st.runner_in_flight == in_flight &&
        st.runner_max_in_flight == max)
      return true;
    nap_ms(2);
  } while (ms_now() < end);
  return false;
}

/* Opens a held stream and waits until `fr` received it; false if it went elsewhere. */
static bool stream_lands_on(struct fake_runner *fr, int *ret_fd) {
  int before = fr_generates(fr);
  *ret_fd = open_stream(KEY_ALPHA);
  return *ret_fd >= 0 && fr_wait_generates(fr, before + 1, 5000);
}

static bool read_done(int fd) {
  static char buf[16384];
  bool ok = read_all(fd, buf, sizeof buf) > 0 && strstr(buf, "data: [DONE]") != NULL;
  close(fd);
  return ok;
}

TEST(full_replica_gets_nothing_while_another_has_room) {
  CHECK(stack());
  script(g.a0, "x", NULL, NULL, true);
  script(g.a1, "y", NULL, NULL, true);
  CHECK(wait_outstanding("alpha", g.ep_a0, 0, 5000));
  CHECK(wait_outstanding("alpha", g.ep_a1, 0, 5000));
  /* a0 runs 4 requests of "other gateways" and takes at most 4: full, although the plain
   * least-outstanding rule (0 of ours there) would pick it first. */
  fr_set_load(g.a0, 4, 4);
  CHECK(wait_reported("alpha", g.ep_a0, 4, 4, 5000));
  int g0 = fr_generates(g.a0);
  uint64_t r0 = routed("alpha", g.ep_a0);
  int fds[4];
  for (int i = 0; i < 3; i++) CHECK(stream_lands_on(g.a1, &fds[i]));
  CHECK(wait_outstanding("alpha", g.ep_a1, 3, 5000));
  CHECK_EQ_INT(fr_generates(g.a0) - g0, 0);
  CHECK(routed("alpha", g.ep_a0) == r0);
  /* Its foreign load ends: it has room, and the lowest load (0 against a1's 3). */
  fr_set_load(g.a0, 0, 4);
  CHECK(wait_reported("alpha", g.ep_a0, 0, 4, 5000));
  CHECK(stream_lands_on(g.a0, &fds[3]));
  fr_finish_all(g.a0);
  fr_finish_all(g.a1);
  for (int i = 0; i < 4; i++) CHECK(read_done(fds[i]));
  fr_set_load(g.a0, 0, 0);
  CHECK(wait_reported("alpha", g.ep_a0, 0, 64, 5000));
}

TEST(runner_reported_load_penalises_and_free_slots_break_ties) {
  CHECK(stack());
  script(g.a0, "x", NULL, NULL, true);
  script(g.a1, "y", NULL, NULL, true);
  CHECK(wait_outstanding("alpha", g.ep_a0, 0, 5000));
  CHECK(wait_outstanding("alpha", g.ep_a1, 0, 5000));
  /* a0 says it runs 2 requests we did not send: its load is 2, a1's 0. */
  fr_set_load(g.a0, 2, 0);
  CHECK(wait_reported("alpha", g.ep_a0, 2, 64, 5000));
  CHECK(wait_reported("alpha", g.ep_a1, 0, 64, 5000));
  int fds[3];
  CHECK(stream_lands_on(g.a1, &fds[0])); /* 2 vs 0 */
  CHECK(stream_lands_on(g.a1, &fds[1])); /* 2 vs 1 */
  CHECK(stream_lands_on(g.a0, &fds[2])); /* 2 vs 2, same free slots: listed first */
  fr_finish_all(g.a0);
  fr_finish_all(g.a1);
  for (int i = 0; i < 3; i++) CHECK(read_done(fds[i]));
  CHECK(wait_outstanding("alpha", g.ep_a0, 0, 5000));
  CHECK(wait_outstanding("alpha", g.ep_a1, 0, 5000));

  /* Equal load, a0 takes 8 and a1 64: the roomier a1 gets it, not the first listed. */
  fr_set_load(g.a0, 0, 8);
  CHECK(wait_reported("alpha", g.ep_a0, 0, 8, 5000));
  CHECK(wait_reported("alpha", g.ep_a1, 0, 64, 5000));
  int fd;
  CHECK(stream_lands_on(g.a1, &fd));
  fr_finish_all(g.a1);
  CHECK(read_done(fd));

  /* Every replica full: the request still goes out (the pong may be stale; the runner is the
   * authority) and the runner's refusal reaches the client as a 503. */
  fr_set_load(g.a0, 4, 4);
  fr_set_load(g.a1, 4, 4);
  CHECK(wait_reported("alpha", g.ep_a0, 4, 4, 5000));
  CHECK(wait_reported("alpha", g.ep_a1, 4, 4, 5000));
  script(g.a0, "z", NULL, NULL, false);
  script(g.a1, "z", NULL, NULL, false);
  int before = fr_generates(g.a0) + fr_generates(g.a1);
  struct http_resp r;
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_ALPHA, NULL, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_CONTAINS(r.body, "fake runner full");
  CHECK_STR_CONTAINS(r.body, "\"type\":\"server_error\"");
  http_resp_free(&r);
  CHECK_EQ_INT(fr_generates(g.a0) + fr_generates(g.a1) - before, 1);
  fr_set_load(g.a0, 0, 0);
  fr_set_load(g.a1, 0, 0);
  CHECK(wait_reported("alpha", g.ep_a0, 0, 64, 5000));
  CHECK(wait_reported("alpha", g.ep_a1, 0, 64, 5000));
}

TEST(replica_that_stops_answering_pings_is_taken_out_and_put_back) {
  CHECK(stack());
  script(g.a0, "p", NULL, NULL, true);
  script(g.a1, "q", NULL, NULL, true);
  CHECK(wait_outstanding("alpha", g.ep_a0, 0, 5000));
  CHECK(wait_outstanding("alpha", g.ep_a1, 0, 5000));
  /* One held stream on each replica, then a1 goes silent. */
  int g0 = fr_generates(g.a0), g1 = fr_generates(g.a1);
  int fa = open_stream(KEY_ALPHA), fb = open_stream(KEY_ALPHA);
  CHECK(fa >= 0 && fb >= 0);
  CHECK(fr_wait_generates(g.a0, g0 + 1, 5000));
  CHECK(fr_wait_generates(g.a1, g1 + 1, 5000));
  fr_set_deaf(g.a1, true);
  CHECK(wait_state("alpha", g.ep_a1, GW_REPLICA_DOWN, 5000));
  CHECK(wait_outstanding("alpha", g.ep_a1, 0, 1000)); /* its stream was failed, not left */
  fr_finish_all(g.a0);
  static char ba[16384], bb[16384];
  CHECK(read_all(fa, ba, sizeof ba) > 0);
  CHECK(read_all(fb, bb, sizeof bb) > 0);
  close(fa);
  close(fb);
  const char *failed = strstr(ba, "\"error\"") ? ba : bb;
  const char *fine = failed == ba ? bb : ba;
  CHECK_STR_CONTAINS(failed, "health pings");
  CHECK(strstr(failed, "[DONE]") == NULL);
  CHECK_STR_CONTAINS(fine, "data: [DONE]");

  /* While a1 is down every request goes to a0. */
  script(g.a0, "ok", NULL, NULL, false);
  uint64_t r1 = routed("alpha", g.ep_a1);
  for (int i = 0; i < 3; i++) {
    struct http_resp r;
    CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_ALPHA, NULL, CHAT_BODY(""), &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_STR_CONTAINS(r.body, "\"content\":\"ok\"");
    http_resp_free(&r);
  }
  CHECK(routed("alpha", g.ep_a1) == r1);

  /* It answers again: back in rotation, and takes the next request when a0 is busier. */
  fr_set_deaf(g.a1, false);
  CHECK(wait_state("alpha", g.ep_a1, GW_REPLICA_UP, 5000));
  script(g.a0, "h", NULL, NULL, true);
  script(g.a1, "ok1", NULL, NULL, false);
  g0 = fr_generates(g.a0);
  int fh = open_stream(KEY_ALPHA); /* a0 and a1 both idle: goes to a0 (listed first) */
  CHECK(fh >= 0);
  CHECK(fr_wait_generates(g.a0, g0 + 1, 5000));
  struct http_resp r;
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_ALPHA, NULL, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR_CONTAINS(r.body, "\"content\":\"ok1\"");
  http_resp_free(&r);
  CHECK(routed("alpha", g.ep_a1) == r1 + 1);
  fr_finish_all(g.a0);
  CHECK(read_all(fh, ba, sizeof ba) > 0);
  close(fh);
}

TEST(cancel_on_client_disconnect_reaches_the_runner) {
  CHECK(stack());
  script(g.s0, "tick", NULL, NULL, true);
  int c0 = fr_cancels(g.s0);
  int fd = open_stream(KEY_SOLO);
  CHECK(fd >= 0);
  static char buf[8192];
  CHECK(http_read_until(fd, buf, sizeof buf, "\"content\":\"tick\"") > 0);
  CHECK_EQ_INT(fr_active(g.s0), 1);
  close(fd);
  CHECK(fr_wait_cancels(g.s0, c0 + 1, 5000));
  CHECK(wait_outstanding("solo", g.ep_s0, 0, 5000));
  CHECK_EQ_INT(fr_active(g.s0), 0);
}

TEST(runner_errors_map_to_statuses) {
  CHECK(stack());
  struct fr_script s = {.error_code = "invalid_argument"};
  fr_set_script(g.s0, &s);
  struct http_resp r;
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_SOLO, NULL, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 400);
  CHECK_STR_CONTAINS(r.body, "\"message\":\"scripted failure\"");
  CHECK_STR_CONTAINS(r.body, "\"code\":\"invalid_argument\"");
  char v[64];
  CHECK(http_header(&r, "Retry-After", v, sizeof v) == NULL);
  http_resp_free(&r);
  struct fr_script q = {.error_code = "quota_exceeded"};
  fr_set_script(g.s0, &q);
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_SOLO, NULL,
                         CHAT_BODY(",\"stream\":true"), &r), 0);
  CHECK_EQ_INT(r.status, 429);
  CHECK_STR_CONTAINS(r.body, "\"type\":\"insufficient_quota\"");
  CHECK(http_header(&r, "Retry-After", v, sizeof v) == NULL); /* a quota does not refill soon */
  http_resp_free(&r);
  /* The runner's param reaches the body ("max_tokens" names the field at fault). */
  struct fr_script p = {.error_code = "invalid_argument", .error_param = "max_tokens"};
  fr_set_script(g.s0, &p);
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_SOLO, NULL, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 400);
  CHECK_STR_CONTAINS(r.body, "\"param\":\"max_tokens\",\"code\":\"invalid_argument\"");
  http_resp_free(&r);
  /* A runner "unavailable" without a param (e.g. at capacity) gets no rule and no hint. */
  struct fr_script u = {.error_code = "unavailable"};
  fr_set_script(g.s0, &u);
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_SOLO, NULL, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_CONTAINS(r.body, "\"param\":null,\"code\":\"unavailable\"");
  CHECK(http_header(&r, "Retry-After", v, sizeof v) == NULL);
  http_resp_free(&r);
  /* A param longer than the gateway takes is dropped, not cut to something else. */
  struct fr_script l = {.error_code = "unavailable",
                        .error_param = "kv_cache_but_with_a_name_far_too_long_for_any_real_param_"
                                       "field_of_a_request"};
  fr_set_script(g.s0, &l);
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_SOLO, NULL, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_CONTAINS(r.body, "\"param\":null,\"code\":\"unavailable\"");
  http_resp_free(&r);
}

/* The worker's "KV cache full" as the runner passes it on (Error{unavailable, param
 * "kv_cache"}), through the real runner backend: a retryable 503 saying when. */
TEST(runner_kv_cache_full_is_503_with_retry_after_and_param) {
  CHECK(stack());
  struct fr_script s = {.error_code = "unavailable", .error_param = "kv_cache"};
  fr_set_script(g.s0, &s);
  const char *want = "{\"error\":{\"message\":\"scripted failure\",\"type\":\"server_error\","
                     "\"param\":\"kv_cache\",\"code\":\"unavailable\"}}";
  struct http_resp r;
  char v[64];
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_SOLO, NULL, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_EQ(r.body, want);
  CHECK(http_header(&r, "Retry-After", v, sizeof v) != NULL);
  CHECK_EQ_INT(atoi(v), KV_RETRY_S);
  http_resp_free(&r);
  /* Streaming, refused before any token: still a status with headers, not an event. */
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_SOLO, NULL,
                         CHAT_BODY(",\"stream\":true"), &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_EQ(r.body, want);
  CHECK(http_header(&r, "Retry-After", v, sizeof v) != NULL);
  CHECK_EQ_INT(atoi(v), KV_RETRY_S);
  http_resp_free(&r);
  /* After a token, ended by Finish{ERROR} (the runner's other way to fail a request): the
   * SSE error event carries the param. */
  struct fr_script m = {.tokens = {"Once"}, .n_tokens = 1, .error_code = "unavailable",
                        .error_param = "kv_cache", .error_after_tokens = true};
  fr_set_script(g.s0, &m);
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_SOLO, NULL,
                         CHAT_BODY(",\"stream\":true"), &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR_CONTAINS(r.body, "\"content\":\"Once\"");
  char last[512];
  snprintf(last, sizeof last, "data: %s\n\n", want);
  CHECK(r.body_len >= strlen(last));
  CHECK_STR_EQ(r.body + r.body_len - strlen(last), last);
  http_resp_free(&r);
  /* The same Finish{ERROR} on a whole answer: 503 with the param and Retry-After. */
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_SOLO, NULL, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_EQ(r.body, want);
  CHECK(http_header(&r, "Retry-After", v, sizeof v) != NULL);
  CHECK_EQ_INT(atoi(v), KV_RETRY_S);
  http_resp_free(&r);
  script(g.s0, "ok", NULL, NULL, false);
}

TEST(replica_killed_mid_stream_fails_the_stream_promptly) {
  CHECK(stack());
  CHECK(wait_state("solo", g.ep_s0, GW_REPLICA_UP, 5000));
  script(g.s0, "A", NULL, NULL, true);
  int fd = open_stream(KEY_SOLO);
  CHECK(fd >= 0);
  static char buf[16384];
  CHECK(http_read_until(fd, buf, sizeof buf, "\"content\":\"A\"") > 0);
  uint64_t t0 = ms_now();
  fr_kill(g.s0);
  /* The socket's receive timeout (5 s) bounds this read; the backend must end the stream
   * long before: at once on the dropped connection, at worst after PING_MISSES pings. */
  long n = read_all(fd, buf, sizeof buf);
  uint64_t took = ms_now() - t0;
  close(fd);
  CHECK(n > 0);
  CHECK_STR_CONTAINS(buf, "\"error\":{\"message\":\"runner replica ");
  CHECK_STR_CONTAINS(buf, "\"code\":\"unavailable\"");
  CHECK(strstr(buf, "[DONE]") == NULL);
  printf("# stream failed %llu ms after the replica died\n", (unsigned long long)took);
  CHECK(took < 3000);
  CHECK(wait_state("solo", g.ep_s0, GW_REPLICA_DOWN, 5000));
}

TEST(all_replicas_down_is_503_and_recovers) {
  CHECK(stack());
  CHECK(wait_state("solo", g.ep_s0, GW_REPLICA_DOWN, 5000)); /* killed by the previous test */
  struct http_resp r;
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_SOLO, NULL, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_CONTAINS(r.body, "{\"error\":{\"message\":\"no runner available for tenant solo");
  CHECK_STR_CONTAINS(r.body, "\"type\":\"server_error\"");
  CHECK_STR_CONTAINS(r.body, "\"code\":\"unavailable\"");
  /* A replica comes back on the pong to its next ping: PING_MS (40 ms) rounded up to 1 s. */
  char v[64];
  CHECK(http_header(&r, "Retry-After", v, sizeof v) != NULL);
  CHECK_STR_EQ(v, "1");
  http_resp_free(&r);
  /* The backend's own view (backend.h rule 1): the hint is there because solo has a replica
   * that can come back; a tenant with none configured gets none (only a reload helps). */
  const struct gw_backend *be = gw_runners_backend(g.rn);
  struct gw_gen_request gr = {.kind = GW_API_COMPLETION, .request_id = "direct", .model = "m1",
                              .prompt = "x"};
  const char *tenants[] = {"solo", "ghost"};
  for (int i = 0; i < 2; i++) {
    struct gw_sink *sink = NULL;
    CHECK_EQ_INT(gw_sink_create(gw_clock_monotonic_ns, NULL, &sink), 0);
    struct gw_error_info info = {.param = "", .retry_after_s = 0};
    char err[256] = "";
    gr.tenant_id = tenants[i];
    CHECK_EQ_INT(be->ops->submit(be->self, &gr, sink, err, sizeof err, &info),
                 REALM_E_UNAVAILABLE);
    CHECK_EQ_INT((int)info.retry_after_s, i == 0 ? 1 : 0);
    CHECK_STR_EQ(info.param, "");
    gw_sink_unref(sink); /* refused: no terminal event, so both references are ours */
    gw_sink_unref(sink);
  }
  /* Streaming: refused in submit, so a status with the header too. */
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_SOLO, NULL,
                         CHAT_BODY(",\"stream\":true"), &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK(http_header(&r, "Retry-After", v, sizeof v) != NULL);
  CHECK_STR_EQ(v, "1");
  http_resp_free(&r);
  CHECK_EQ_INT(http_call(g.port, "GET", "/ready", NULL, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR_CONTAINS(r.body, "tenant solo has no healthy runner replica");
  CHECK(http_header(&r, "Retry-After", v, sizeof v) == NULL); /* a probe, not an API call */
  http_resp_free(&r);
  /* Other tenants are unaffected. */
  script(g.a0, "fine", NULL, NULL, false);
  script(g.a1, "fine", NULL, NULL, false);
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_ALPHA, NULL, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 200);
  http_resp_free(&r);

  CHECK_EQ_INT(fr_revive(g.s0), 0);
  CHECK(wait_state("solo", g.ep_s0, GW_REPLICA_UP, 5000));
  script(g.s0, "back", NULL, NULL, false);
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_SOLO, NULL, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR_CONTAINS(r.body, "\"content\":\"back\"");
  http_resp_free(&r);
  CHECK_EQ_INT(http_call(g.port, "GET", "/ready", NULL, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.status, 200);
  http_resp_free(&r);
}

TEST(not_ready_replica_gets_no_new_requests) {
  CHECK(stack());
  fr_set_ready(g.s0, false);
  CHECK(wait_state("solo", g.ep_s0, GW_REPLICA_NOT_READY, 5000));
  struct http_resp r;
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/completions", KEY_SOLO, NULL,
                         "{\"model\":\"m1\",\"prompt\":\"x\"}", &r), 0);
  CHECK_EQ_INT(r.status, 503);
  char v[64];
  CHECK(http_header(&r, "Retry-After", v, sizeof v) != NULL); /* its next pong may say ready */
  CHECK_STR_EQ(v, "1");
  http_resp_free(&r);
  fr_set_ready(g.s0, true);
  CHECK(wait_state("solo", g.ep_s0, GW_REPLICA_UP, 5000));
}

TEST(replica_of_another_tenant_is_never_used) {
  CHECK(stack());
  /* s1 answers as tenant "solo"; listing it under alpha is a misconfiguration. */
  char ha[65], hs[65];
  gw_key_hash_hex(KEY_ALPHA, ha);
  gw_key_hash_hex(KEY_SOLO, hs);
  FILE *f = fopen(g.tenants, "w");
  CHECK(f != NULL);
  fprintf(f,
          "[{\"id\":\"alpha\",\"key_hashes\":[\"%s\"],\"models\":[\"m1\"],"
          "  \"runners\":[\"%s\",\"%s\",\"%s\"]},"
          " {\"id\":\"solo\",\"key_hashes\":[\"%s\"],\"models\":[\"m1\"],"
          "  \"runners\":[\"%s\"]}]",
          ha, g.ep_a0, g.ep_a1, g.ep_s1, hs, g.ep_s0);
  CHECK_EQ_INT(fclose(f), 0);
  char err[256];
  CHECK_EQ_INT(gw_server_reload_tenants(g.srv, err, sizeof err), 0);
  CHECK(wait_state("alpha", g.ep_s1, GW_REPLICA_NOT_READY, 5000));
  int before = fr_generates(g.s1);
  script(g.a0, "x", NULL, NULL, false);
  script(g.a1, "x", NULL, NULL, false);
  for (int i = 0; i < 4; i++) {
    struct http_resp r;
    CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_ALPHA, NULL, CHAT_BODY(""), &r), 0);
    CHECK_EQ_INT(r.status, 200);
    http_resp_free(&r);
  }
  CHECK_EQ_INT(fr_generates(g.s1), before);
  CHECK_EQ_INT(write_tenants(false), 0);
  CHECK_EQ_INT(gw_server_reload_tenants(g.srv, err, sizeof err), 0);
  CHECK(wait_gone("alpha", g.ep_s1, 5000));
}

/* Per-replica series on /metrics, in a page the strict exposition checker accepts. */
static bool scrape(char **ret) {
  struct http_resp r;
  if (http_call(g.port, "GET", "/metrics", NULL, NULL, NULL, &r) != 0 || r.status != 200) return false;
  *ret = r.body;
  r.body = NULL;
  http_resp_free(&r);
  return true;
}

static double series(const char *page, const char *name, const char *ep) {
  char labels[400];
  snprintf(labels, sizeof labels, "{tenant=\"alpha\",replica=\"%s\"}", ep);
  double v = -1;
  if (!prom_value(page, name, labels, &v)) printf("# no %s%s\n", name, labels);
  return v;
}

TEST(runner_metrics_up_in_flight_failures_failovers) {
  CHECK(stack());
  CHECK(wait_state("alpha", g.ep_a0, GW_REPLICA_UP, 5000));
  CHECK(wait_state("alpha", g.ep_a1, GW_REPLICA_UP, 5000));
  script(g.a0, "x", NULL, NULL, true);
  script(g.a1, "x", NULL, NULL, true);
  int fd = open_stream(KEY_ALPHA); /* one hanging request: in flight on one replica */
  CHECK(fd >= 0);
  static char buf[8192];
  CHECK(http_read_until(fd, buf, sizeof buf, "\"content\":\"x\"") > 0);
  char *page = NULL, err[256] = "";
  CHECK(scrape(&page));
  bool valid = prom_check(page ? page : "", err, sizeof err);
  if (!valid) printf("# %s\n", err);
  CHECK(valid);
  CHECK_STR_CONTAINS(page, "# TYPE realm_runner_up gauge\n");
  CHECK_STR_CONTAINS(page, "# TYPE realm_runner_failovers_total counter\n");
  CHECK_NEAR(series(page, "realm_runner_up", g.ep_a0), 1, 0);
  CHECK_NEAR(series(page, "realm_runner_up", g.ep_a1), 1, 0);
  CHECK_NEAR(series(page, "realm_runner_reported_max_in_flight_requests", g.ep_a0), 64, 0);
  CHECK(series(page, "realm_runner_reported_in_flight_requests", g.ep_a0) >= 0);
  CHECK_NEAR(series(page, "realm_runner_in_flight_requests", g.ep_a0) +
                 series(page, "realm_runner_in_flight_requests", g.ep_a1), 1, 0);
  CHECK(series(page, "realm_runner_requests_total", g.ep_a0) >= 1);
  double fail0 = series(page, "realm_runner_failures_total", g.ep_a1);
  double over0 = series(page, "realm_runner_failovers_total", g.ep_a1);
  free(page);
  /* The replica holding the stream dies while the other is up: a failure, a failover and a
   * failed request on the dead one. */
  struct gw_runner_stats st;
  CHECK(gw_runners_replica_stats(g.rn, "alpha", g.ep_a1, &st) == 0);
  bool on_a1 = st.outstanding == 1;
  const char *dead_ep = on_a1 ? g.ep_a1 : g.ep_a0;
  struct fake_runner *dead = on_a1 ? g.a1 : g.a0;
  if (!on_a1) {
    CHECK(scrape(&page));
    fail0 = series(page, "realm_runner_failures_total", g.ep_a0);
    over0 = series(page, "realm_runner_failovers_total", g.ep_a0);
    free(page);
  }
  double failed_req0 = -1;
  CHECK(scrape(&page));
  failed_req0 = series(page, "realm_runner_failed_requests_total", dead_ep);
  free(page);
  fr_kill(dead);
  CHECK(wait_state("alpha", dead_ep, GW_REPLICA_DOWN, 5000));
  read_all(fd, buf, sizeof buf);
  close(fd);
  CHECK(scrape(&page));
  CHECK(prom_check(page ? page : "", err, sizeof err));
  CHECK_NEAR(series(page, "realm_runner_up", dead_ep), 0, 0);
  CHECK_NEAR(series(page, "realm_runner_failures_total", dead_ep), fail0 + 1, 0);
  CHECK_NEAR(series(page, "realm_runner_failovers_total", dead_ep), over0 + 1, 0);
  CHECK_NEAR(series(page, "realm_runner_failed_requests_total", dead_ep), failed_req0 + 1, 0);
  CHECK_NEAR(series(page, "realm_runner_in_flight_requests", dead_ep), 0, 0);
  free(page);
  CHECK_EQ_INT(fr_revive(dead), 0);
  CHECK(wait_state("alpha", dead_ep, GW_REPLICA_UP, 5000));
  script(g.a0, "ok", NULL, NULL, false);
  script(g.a1, "ok", NULL, NULL, false);
}

TEST(reload_adds_and_removes_replicas_keeping_streams) {
  CHECK(stack());
  CHECK(wait_state("alpha", g.ep_a1, GW_REPLICA_UP, 5000));
  script(g.a0, "k", NULL, NULL, true);
  script(g.a1, "k", NULL, NULL, true);
  CHECK(wait_outstanding("alpha", g.ep_a0, 0, 5000));
  CHECK(wait_outstanding("alpha", g.ep_a1, 0, 5000));
  int g0 = fr_generates(g.a0), g1 = fr_generates(g.a1);
  int fa = open_stream(KEY_ALPHA), fb = open_stream(KEY_ALPHA);
  CHECK(fa >= 0 && fb >= 0);
  CHECK(fr_wait_generates(g.a0, g0 + 1, 5000));
  CHECK(fr_wait_generates(g.a1, g1 + 1, 5000));

  CHECK_EQ_INT(write_tenants(true), 0);
  char err[256];
  CHECK_EQ_INT(gw_server_reload_tenants(g.srv, err, sizeof err), 0);
  /* s1 is new for solo and comes up; a1 is removed but drains its stream first. */
  CHECK(wait_state("solo", g.ep_s1, GW_REPLICA_UP, 5000));
  struct gw_runner_stats st;
  CHECK_EQ_INT(gw_runners_replica_stats(g.rn, "alpha", g.ep_a1, &st), 0);
  CHECK_EQ_INT((int)st.outstanding, 1);
  /* New alpha traffic goes only to a0 now. */
  script(g.a0, "only", NULL, NULL, false);
  uint64_t r1 = routed("alpha", g.ep_a1);
  struct http_resp r;
  CHECK_EQ_INT(http_call(g.port, "POST", "/v1/chat/completions", KEY_ALPHA, NULL, CHAT_BODY(""), &r), 0);
  CHECK_EQ_INT(r.status, 200);
  http_resp_free(&r);
  CHECK(routed("alpha", g.ep_a1) == r1);

  fr_finish_all(g.a0);
  fr_finish_all(g.a1);
  static char ba[16384], bb[16384];
  CHECK(read_all(fa, ba, sizeof ba) > 0);
  CHECK(read_all(fb, bb, sizeof bb) > 0);
  close(fa);
  close(fb);
  CHECK_STR_CONTAINS(ba, "data: [DONE]");
  CHECK_STR_CONTAINS(bb, "data: [DONE]");
  CHECK(wait_gone("alpha", g.ep_a1, 5000)); /* drained, then closed */
}

TEST(zz_teardown) {
  CHECK(stack());
  gw_server_stop(g.srv);
  gw_runners_destroy(g.rn);
  fr_stop(g.a0);
  fr_stop(g.a1);
  fr_stop(g.s0);
  fr_stop(g.s1);
  zmq_ctx_term(g.zctx);
  char path[300];
  snprintf(path, sizeof path, "%s/tenants.json", g.dir);
  unlink(path);
  const char *socks[] = {"alpha-0", "alpha-1", "solo-0", "solo-1"};
  for (size_t i = 0; i < 4; i++) { /* libzmq normally removes them; be sure */
    snprintf(path, sizeof path, "%s/runner-%s.sock", g.dir, socks[i]);
    unlink(path);
  }
  CHECK_EQ_INT(rmdir(g.dir), 0);
}
