/*
 * fake_runner.h — a scripted stand-in for one realm-runner replica, for the gateway tests only
 * (never linked into the product). It binds a ROUTER on the given endpoint and speaks the real
 * protocol (docs/protocol.md §4) over real ZeroMQ: it answers HealthPing with HealthPong,
 * answers GenerateRequest with the scripted Token events and one Finish, honours
 * CancelRequest with Finish(CANCELLED), and can be told to hang (stop reading its socket), to
 * die (close its socket, as a crashed process would) and to come back.
 *
 * One thread per fake runner owns its socket; the test controls it through calls that take a
 * mutex and wake the thread through an eventfd, and waits for what it observed with bounded
 * condition-variable waits (no sleeps as synchronisation).
 */
#ifndef GW_FAKE_RUNNER_H
#define GW_FAKE_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FR_MAX_TOKENS 8

struct fr_script {
  const char *tokens[FR_MAX_TOKENS]; /* sent in order, one Token event each */
  size_t n_tokens;
  bool echo;             /* instead: "You said: " then the prompt / last chat message */
  const char *finish;    /* "stop" (default) or "length" */
  uint32_t prompt_tokens, completion_tokens; /* Finish usage (echo: computed) */
  uint32_t token_delay_ms; /* simulated decode time between events (not synchronisation) */
  bool hang;             /* after the tokens, wait for a cancel or fr_finish_all() */
  const char *error_code; /* non-NULL: answer with GenerateEvent.error of this code name */
  const char *error_param; /* with error_code: the Error's param ("kv_cache"), NULL = none */
  /* with error_code: send the tokens first, then end with Finish{reason ERROR, error} (how
   * the real runner ends a request that fails after it produced output) */
  bool error_after_tokens;
};

/* What the last GenerateRequest carried (copies), for parameter-mapping tests. */
struct fr_seen {
  char request_id[192], tenant[80], model[80], prompt[256], user[80];
  size_t n_messages;
  char first_role[32], last_content[256];
  uint32_t max_tokens, n;
  bool has_temperature, has_top_p, has_seed, logprobs, stream, include_usage;
  float temperature, top_p, presence_penalty, frequency_penalty;
  int64_t seed;
  size_t n_stop;
  char stop0[64];
  size_t n_logit_bias;
  int32_t bias_key0;
  float bias_value0;
  uint32_t top_logprobs;
  bool is_chat;
};

struct fake_runner;

/* Starts a fake runner bound at endpoint; zctx is a ZeroMQ context the caller keeps alive
 * until fr_stop. Answers pongs with the given tenant and ready=true. */
int fr_start(void *zctx, const char *endpoint, const char *tenant, struct fake_runner **ret);
void fr_stop(struct fake_runner *fr);

void fr_set_script(struct fake_runner *fr, const struct fr_script *s);
/* Pongs say ready=ready from now on. */
void fr_set_ready(struct fake_runner *fr, bool ready);
/* Load it reports from now on: pongs say in_flight = its own active requests + extra_in_flight
 * (as if other gateways used it too) and max_in_flight (0 = its stream table size, 64); a
 * GenerateRequest that would exceed max_in_flight is refused with "unavailable", as the real
 * runner does. */
void fr_set_load(struct fake_runner *fr, uint32_t extra_in_flight, uint32_t max_in_flight);
/* Deaf: stop reading the socket (pings go unanswered, requests wait); false resumes. */
void fr_set_deaf(struct fake_runner *fr, bool deaf);
/* Closes the socket as a crash would (waits until done); fr_revive binds again. */
void fr_kill(struct fake_runner *fr);
int fr_revive(struct fake_runner *fr);
/* Finishes every hanging request with the script's finish reason. */
void fr_finish_all(struct fake_runner *fr);

/* Counters (under the fake's mutex). */
int fr_generates(struct fake_runner *fr);
int fr_cancels(struct fake_runner *fr);
int fr_pings(struct fake_runner *fr);
int fr_active(struct fake_runner *fr); /* requests started and not finished */
/* Waits until the counter reaches at least n; false on timeout. */
bool fr_wait_generates(struct fake_runner *fr, int n, int timeout_ms);
bool fr_wait_cancels(struct fake_runner *fr, int n, int timeout_ms);
bool fr_wait_pings(struct fake_runner *fr, int n, int timeout_ms);
void fr_last_seen(struct fake_runner *fr, struct fr_seen *ret);

#endif
