/*
 * test_runner_hostile.c — the isolation acceptance item at the runner level. For each of six
 * hostile guest behaviours (out-of-bounds access, infinite loop, deep recursion, memory growth
 * past the cap, a bad pointer passed to the host, a flood of emitted output) a real, jailed
 * realm-runner serves a well-behaved request and, while that one is generating, a request
 * whose guest misbehaves. The bad request must end with an Error event naming the cause; the
 * good one must complete with exactly the tokens the fake worker's logits dictate; and the
 * same runner process must then serve a new request.
 *
 * The guest is moody.wat: the first prompt byte picks the behaviour, because a runner holds
 * one module. The bad request is sent from the token callback once the good request has
 * streamed tokens, so the good one demonstrably started first; its terminal event arriving
 * after the bad one's Error proves it was still in flight when the bad one failed. The runner
 * limits are small so each behaviour hits its limit quickly: a 250 ms call deadline, 1 MiB
 * of guest memory, 16 KiB of output per request.
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "realm_test.h"
#include "runner_test_util.h"

#define GOOD_TOKENS 200u /* long enough to be mid-stream whatever the bad request does */
#define SEND_BAD_AFTER 2u /* good tokens seen before the bad request goes out */

static const char *const hostile_opts[] = {"--guest-call-ms", "250", "--guest-memory", "1M",
                                           "--guest-output", "16K", NULL};

struct send_bad_ctx {
  struct gw_client *gw;
  const char *prompt;
  bool sent;
  int send_rc;
  uint32_t good_tokens_at_send;
};

/* Token callback: once the good request (index 0) has streamed SEND_BAD_AFTER tokens, the
 * bad request goes out. */
static void send_bad_midstream(void *user, int idx, uint32_t n_tokens) {
  struct send_bad_ctx *c = user;
  if (c->sent || idx != 0 || n_tokens < SEND_BAD_AFTER) return;
  c->send_rc = gw_generate(c->gw, "bad", NULL, c->prompt, 50);
  c->good_tokens_at_send = n_tokens;
  c->sent = true;
}

/* What one run observed; checked after the runner is down (a failed CHECK returns). */
struct hostile_run {
  int up_rc;
  struct send_bad_ctx sc;
  struct gw_result res[2]; /* [0] good, [1] bad */
  struct gw_result after;  /* the request sent once both ended */
  int after_send_rc, ping_rc, wait_rc, closed_rc;
  bool worker_up;
  uint64_t requests_total;
  struct fake_worker_stats st;
};

/* One behaviour: a good request in flight, the bad one (its prompt's first byte picks the
 * behaviour) beside it, then a fresh request, a ping and the worker sessions' fate on the
 * same runner. */
static void run_hostile(const char *bad_prompt, struct hostile_run *o) {
  struct runner_fixture f;
  memset(o, 0, sizeof *o);
  o->up_rc = runner_fixture_up(&f, runner_test_guest("moody"), hostile_opts);
  if (o->up_rc != 0) {
    runner_fixture_down(&f);
    return;
  }
  o->sc = (struct send_bad_ctx){.gw = &f.gw, .prompt = bad_prompt, .send_rc = -1};
  if (gw_generate(&f.gw, "good", NULL, "good", GOOD_TOKENS) == 0) {
    const char *ids[] = {"good", "bad"};
    gw_collect(&f.gw, ids, o->res, 2, 10000, send_bad_midstream, &o->sc);
  }
  printf("# %s: bad -> %s: %s (sent when good had %u tokens; terminal order good %u, bad %u)\n",
         bad_prompt, o->res[1].error_code, o->res[1].error_msg, o->sc.good_tokens_at_send,
         o->res[0].done_seq, o->res[1].done_seq);
  o->after_send_rc = gw_generate(&f.gw, "after", NULL, "after", 5);
  const char *ids2[] = {"after"};
  gw_collect(&f.gw, ids2, &o->after, 1, 10000, NULL, NULL);
  o->ping_rc = gw_ping_ex(&f.gw, 9, &o->worker_up, &o->requests_total, 5000);
  int status = 0;
  o->wait_rc = waitpid(f.p.pid, &status, WNOHANG); /* 0: the same process still runs */
  fake_worker_get_stats(f.w, &o->st);
  o->closed_rc = fake_worker_wait_closed(f.w, o->st.sessions_opened, 5000);
  runner_fixture_down(&f);
}

/* True when res holds exactly n greedy tokens of the fake worker after moody's token 1. */
static bool greedy_chain(const struct gw_result *res, uint32_t n) {
  if (res->n_tokens != n) return false;
  int32_t t = 1;
  for (uint32_t i = 0; i < n; i++) {
    t = fake_worker_next(t);
    if (res->tokens[i] != t) return false;
  }
  return true;
}

/* The acceptance checks for one behaviour: the bad request fails with want_code and a message
 * containing want_msg while the good one, in flight, completes exactly; the runner serves on.
 * in_logits: the behaviour strikes in on_logits, so the bad request first got a worker session
 * and a logits row from a Step it shared with the good request. */
static void check_hostile(const char *bad_prompt, bool in_logits, const char *want_code,
                          const char *want_msg) {
  static struct hostile_run o;
  run_hostile(bad_prompt, &o);
  const struct gw_result *good = &o.res[0], *bad = &o.res[1];
  CHECK_EQ_INT(o.up_rc, 0);
  /* The bad request went out while the good one was streaming... */
  CHECK(o.sc.sent);
  CHECK_EQ_INT(o.sc.send_rc, 0);
  CHECK(o.sc.good_tokens_at_send >= SEND_BAD_AFTER);
  /* ...and ended with an Error event naming the cause, without tokens. */
  CHECK(bad->done);
  CHECK(bad->error);
  CHECK_STR_EQ(bad->error_code, want_code);
  CHECK_STR_CONTAINS(bad->error_msg, want_msg);
  CHECK_EQ_INT(bad->n_tokens, 0);
  /* The good request was still in flight when the bad one failed, then completed exactly. */
  CHECK(good->done);
  CHECK(!good->error);
  CHECK(bad->done_seq > 0);
  CHECK(good->done_seq > bad->done_seq);
  CHECK_EQ_INT(good->finish_reason, REALM__V1__FINISH_REASON__FINISH_REASON_LENGTH);
  CHECK_EQ_INT(good->completion_tokens, GOOD_TOKENS);
  CHECK(greedy_chain(good, GOOD_TOKENS));
  /* The same runner process serves a new request afterwards. */
  CHECK_EQ_INT(o.after_send_rc, 0);
  CHECK(o.after.done);
  CHECK(!o.after.error);
  CHECK(greedy_chain(&o.after, 5));
  CHECK_EQ_INT(o.ping_rc, 0);
  CHECK(o.worker_up);
  CHECK_EQ_INT(o.requests_total, 3); /* a restarted runner would count from 0 */
  CHECK_EQ_INT(o.wait_rc, 0);
  /* Sessions: one each for good and after, one for a bad request that got as far as logits
   * (sharing a Step with the good one); every one of them was closed. */
  CHECK_EQ_INT(o.st.sessions_opened, in_logits ? 3 : 2);
  CHECK_EQ_INT(o.st.max_entries, in_logits ? 2 : 1);
  CHECK_EQ_INT(o.closed_rc, 0);
}

TEST(out_of_bounds_fails_alone) {
  check_hostile("Oob", false, "guest_trap", "guest trap 'out_of_bounds'");
}

TEST(infinite_loop_fails_alone) {
  check_hostile("Loop", true, "timeout", "deadline exceeded after 250 ms");
}

TEST(deep_recursion_fails_alone) {
  check_hostile("Recurse", true, "guest_trap", "guest trap 'stack_exhausted'");
}

TEST(memory_growth_past_cap_fails_alone) {
  check_hostile("Grow", true, "guest_trap", "would exceed the memory cap of 1048576 bytes");
}

TEST(bad_pointer_to_host_fails_alone) {
  check_hostile("Pointer", true, "guest_trap",
                "bad pointer passed to realm_emit_text: text range [0xfffff000, 0x100001000) is "
                "outside guest memory");
}

TEST(output_flood_fails_alone) {
  check_hostile("Emit", true, "too_large",
                "output cap exceeded: realm_emit_text would bring request");
}
