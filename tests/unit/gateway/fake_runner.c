/*
 * fake_runner.c — the scripted runner replica of fake_runner.h: a thread owning one ROUTER
 * that speaks the gateway<->runner protocol for real, so the gateway's runner backend is
 * tested over genuine ZeroMQ frames without the real runner daemon.
 */
#include "fake_runner.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "realm/error.h"
#include "realm/ipc.h"
#include "realm/proto.h"

#define FR_MAX_STREAMS 64

struct fr_stream {
  bool used;
  realm_ipc_peer peer;
  char id[192];
  char *texts[FR_MAX_TOKENS + 1]; /* owned copies */
  size_t n_texts, next;
  uint64_t due_ns;
  bool hang;       /* all tokens sent: wait for cancel / finish_all */
  bool finish_now; /* fr_finish_all() asked */
  const char *error_code;
  const char *error_param; /* NULL = none */
  bool error_after_tokens;
  uint32_t prompt_tokens, completion_tokens;
  const char *finish;
  bool logprobs;         /* the request asked for logprobs: attach TokenLogprob entries */
  uint32_t top_logprobs; /* alternatives per entry */
};

struct fake_runner {
  void *zctx;
  char endpoint[256];
  char tenant[80];
  pthread_t thread;
  int efd;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  /* under mu */
  struct fr_script script;
  char script_texts[FR_MAX_TOKENS][128];
  char script_error[64];
  char script_param[128]; /* larger than the gateway takes: tests send over-long params */
  bool ready, deaf, stop, want_kill, want_revive, finish_all;
  int kill_acks, revive_acks, revive_rc;
  int n_generate, n_cancel, n_ping, n_active;
  uint32_t extra_in_flight; /* fr_set_load: requests "of other gateways" it pretends to run */
  uint32_t max_in_flight;   /* fr_set_load: capacity in pongs and refusals; 0 = FR_MAX_STREAMS */
  struct fr_seen seen;
  /* thread only */
  void *sock;
  struct fr_stream streams[FR_MAX_STREAMS];
};

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fr_wake(struct fake_runner *fr) {
  uint64_t one = 1;
  ssize_t w = write(fr->efd, &one, sizeof one);
  (void)w;
}

static int fr_bind(struct fake_runner *fr) {
  char err[256];
  if (realm_ipc_socket_new(fr->zctx, ZMQ_ROUTER, 0, &fr->sock, err, sizeof err) < 0) return -1;
  if (zmq_bind(fr->sock, fr->endpoint) != 0) {
    realm_ipc_socket_close(fr->sock);
    fr->sock = NULL;
    return -1;
  }
  return 0;
}

static void stream_free(struct fr_stream *s) {
  for (size_t i = 0; i < s->n_texts; i++) free(s->texts[i]);
  memset(s, 0, sizeof *s);
}

static void send_event(struct fake_runner *fr, struct fr_stream *s, Realm__V1__GenerateEvent *g) {
  Realm__V1__RunnerEvent ev;
  realm__v1__runner_event__init(&ev);
  ev.body_case = REALM__V1__RUNNER_EVENT__BODY_EVENT;
  ev.event = g;
  char err[128];
  realm_ipc_send(fr->sock, &s->peer, REALM_FRAME_RUNNER_EVENT, &ev.base, 0, err, sizeof err);
}

/* The GenerateEvent that carries f, the stream's last. */
static void send_finish_event(struct fake_runner *fr, struct fr_stream *s, Realm__V1__Finish *f) {
  Realm__V1__GenerateEvent g;
  realm__v1__generate_event__init(&g);
  g.request_id = s->id;
  g.kind_case = REALM__V1__GENERATE_EVENT__KIND_FINISH;
  g.finish = f;
  send_event(fr, s, &g);
}

static void send_finish(struct fake_runner *fr, struct fr_stream *s, Realm__V1__FinishReason why) {
  Realm__V1__Usage u;
  realm__v1__usage__init(&u);
  u.prompt_tokens = s->prompt_tokens;
  u.completion_tokens = s->completion_tokens;
  Realm__V1__Finish f;
  realm__v1__finish__init(&f);
  f.reason = why;
  f.usage = &u;
  send_finish_event(fr, s, &f);
}

/* Finish{reason ERROR, error{code, "scripted failure", param}}. */
static void send_error_finish(struct fake_runner *fr, struct fr_stream *s) {
  Realm__V1__Error e;
  realm_proto_error_set(&e, realm_err_from_name(s->error_code), "scripted failure", s->error_param);
  Realm__V1__Finish f;
  realm__v1__finish__init(&f);
  f.reason = REALM__V1__FINISH_REASON__FINISH_REASON_ERROR;
  f.error = &e;
  send_finish_event(fr, s, &f);
}

/* Under mu. */
static void end_stream(struct fake_runner *fr, struct fr_stream *s) {
  stream_free(s);
  fr->n_active--;
  pthread_cond_broadcast(&fr->cv);
}

static void copy_str(char *dst, size_t cap, const char *s) { snprintf(dst, cap, "%s", s ? s : ""); }

/* Under mu. */
static void start_stream(struct fake_runner *fr, const realm_ipc_peer *peer,
                         const Realm__V1__GenerateRequest *g) {
  struct fr_seen *sn = &fr->seen;
  memset(sn, 0, sizeof *sn);
  copy_str(sn->request_id, sizeof sn->request_id, g->request_id);
  copy_str(sn->tenant, sizeof sn->tenant, g->tenant_id);
  copy_str(sn->model, sizeof sn->model, g->model);
  copy_str(sn->user, sizeof sn->user, g->user);
  sn->n = g->n;
  sn->stream = g->stream;
  sn->include_usage = g->include_usage;
  const char *input = "";
  if (g->input_case == REALM__V1__GENERATE_REQUEST__INPUT_CHAT && g->chat) {
    sn->is_chat = true;
    sn->n_messages = g->chat->n_messages;
    if (g->chat->n_messages) {
      copy_str(sn->first_role, sizeof sn->first_role, g->chat->messages[0]->role);
      input = g->chat->messages[g->chat->n_messages - 1]->content;
      copy_str(sn->last_content, sizeof sn->last_content, input);
    }
  } else if (g->input_case == REALM__V1__GENERATE_REQUEST__INPUT_PROMPT) {
    input = g->prompt;
    copy_str(sn->prompt, sizeof sn->prompt, g->prompt);
  }
  const Realm__V1__SamplingParams *sp = g->sampling;
  if (sp) {
    sn->max_tokens = sp->max_tokens;
    sn->has_temperature = sp->has_temperature;
    sn->temperature = sp->temperature;
    sn->has_top_p = sp->has_top_p;
    sn->top_p = sp->top_p;
    sn->has_seed = sp->has_seed;
    sn->seed = sp->seed;
    sn->presence_penalty = sp->presence_penalty;
    sn->frequency_penalty = sp->frequency_penalty;
    sn->n_stop = sp->n_stop;
    if (sp->n_stop) copy_str(sn->stop0, sizeof sn->stop0, sp->stop[0]);
    sn->n_logit_bias = sp->n_logit_bias;
    if (sp->n_logit_bias) {
      sn->bias_key0 = sp->logit_bias[0]->key;
      sn->bias_value0 = sp->logit_bias[0]->value;
    }
    sn->logprobs = sp->logprobs;
    sn->top_logprobs = sp->top_logprobs;
  }
  fr->n_generate++;
  pthread_cond_broadcast(&fr->cv);

  struct fr_stream *s = NULL;
  for (int i = 0; i < FR_MAX_STREAMS && !s; i++)
    if (!fr->streams[i].used) s = &fr->streams[i];
  /* Like the real runner: at capacity (counting the pretended foreign load) it refuses. */
  uint32_t cap = fr->max_in_flight ? fr->max_in_flight : FR_MAX_STREAMS;
  if ((uint32_t)fr->n_active + fr->extra_in_flight >= cap) s = NULL;
  if (!s) {
    char err[128];
    realm_proto_send_runner_error(fr->sock, peer, g->request_id, REALM_E_UNAVAILABLE,
                                  "fake runner full", NULL, err, sizeof err);
    return;
  }
  s->used = true;
  s->peer = *peer;
  copy_str(s->id, sizeof s->id, g->request_id);
  const struct fr_script *sc = &fr->script;
  if (sc->echo) {
    s->texts[s->n_texts++] = strdup("You said: ");
    s->texts[s->n_texts++] = strdup(input ? input : "");
    s->prompt_tokens = (uint32_t)(strlen(input ? input : "") / 4 + 1);
    s->completion_tokens = 2;
  } else {
    for (size_t i = 0; i < sc->n_tokens; i++) s->texts[s->n_texts++] = strdup(fr->script_texts[i]);
    s->prompt_tokens = sc->prompt_tokens;
    s->completion_tokens = sc->completion_tokens;
  }
  s->hang = sc->hang;
  s->logprobs = sp && sp->logprobs;
  s->top_logprobs = sp ? sp->top_logprobs : 0;
  s->error_code = sc->error_code ? fr->script_error : NULL;
  s->error_param = sc->error_code && sc->error_param ? fr->script_param : NULL;
  s->error_after_tokens = sc->error_after_tokens;
  s->finish = sc->finish;
  s->due_ns = mono_ns();
  fr->n_active++;
}

/* Under mu. */
static void handle_request(struct fake_runner *fr, const realm_ipc_peer *from,
                           const Realm__V1__RunnerRequest *rq) {
  char err[128];
  switch (rq->body_case) {
  case REALM__V1__RUNNER_REQUEST__BODY_PING: {
    fr->n_ping++;
    pthread_cond_broadcast(&fr->cv);
    Realm__V1__HealthPong pong;
    realm__v1__health_pong__init(&pong);
    pong.nonce = rq->ping ? rq->ping->nonce : 0;
    pong.tenant_id = fr->tenant;
    pong.replica_id = "fake";
    pong.in_flight = (uint32_t)fr->n_active + fr->extra_in_flight;
    pong.max_in_flight = fr->max_in_flight ? fr->max_in_flight : FR_MAX_STREAMS;
    pong.worker_connected = true;
    pong.ready = fr->ready;
    Realm__V1__RunnerEvent ev;
    realm__v1__runner_event__init(&ev);
    ev.body_case = REALM__V1__RUNNER_EVENT__BODY_PONG;
    ev.pong = &pong;
    realm_ipc_send(fr->sock, from, REALM_FRAME_RUNNER_EVENT, &ev.base, 0, err, sizeof err);
    break;
  }
  case REALM__V1__RUNNER_REQUEST__BODY_GENERATE:
    if (rq->generate) start_stream(fr, from, rq->generate);
    break;
  case REALM__V1__RUNNER_REQUEST__BODY_CANCEL:
    fr->n_cancel++;
    pthread_cond_broadcast(&fr->cv);
    for (int i = 0; rq->cancel && i < FR_MAX_STREAMS; i++) {
      struct fr_stream *s = &fr->streams[i];
      if (s->used && !strcmp(s->id, rq->cancel->request_id)) {
        send_finish(fr, s, REALM__V1__FINISH_REASON__FINISH_REASON_CANCELLED);
        end_stream(fr, s);
      }
    }
    break;
  default:
    realm_proto_send_runner_error(fr->sock, from, NULL, REALM_E_PROTOCOL, "empty request", NULL,
                                  err, sizeof err);
  }
}

/* Emits whatever is due; returns ms until the next due event (-1 none). Under mu. */
static long pump_streams(struct fake_runner *fr) {
  uint64_t now = mono_ns();
  long next = -1;
  for (int i = 0; i < FR_MAX_STREAMS; i++) {
    struct fr_stream *s = &fr->streams[i];
    if (!s->used) continue;
    if (fr->finish_all) s->finish_now = true;
    if (s->error_code && !s->error_after_tokens) {
      char err[128];
      realm_proto_send_runner_error(fr->sock, &s->peer, s->id, realm_err_from_name(s->error_code),
                                    "scripted failure", s->error_param, err, sizeof err);
      end_stream(fr, s);
      continue;
    }
    while (s->used && s->due_ns <= now) {
      if (s->next < s->n_texts) {
        Realm__V1__Token t;
        realm__v1__token__init(&t);
        t.text.data = (uint8_t *)s->texts[s->next];
        t.text.len = strlen(s->texts[s->next]);
        t.token_id = (int32_t)s->next;
        /* Logprobs as the real runner sends them: the token's own bytes and a made-up but
         * predictable logprob -0.5 × (position + 1); alternatives: the token itself first,
         * then "alt1", "alt2", ... each one nat less likely. */
        Realm__V1__TokenLogprob lp;
        Realm__V1__TopLogprob tops[20], *top_p[20];
        char alt_names[20][8];
        if (s->logprobs) {
          realm__v1__token_logprob__init(&lp);
          lp.token_id = t.token_id;
          lp.text = t.text;
          lp.logprob = -0.5f * (float)(s->next + 1);
          size_t n_top = s->top_logprobs < 20 ? s->top_logprobs : 20;
          for (size_t k = 0; k < n_top; k++) {
            realm__v1__top_logprob__init(&tops[k]);
            tops[k].token_id = (int32_t)(1000 + k);
            if (k == 0) {
              tops[k].text = t.text;
            } else {
              snprintf(alt_names[k], sizeof alt_names[k], "alt%zu", k);
              tops[k].text.data = (uint8_t *)alt_names[k];
              tops[k].text.len = strlen(alt_names[k]);
            }
            tops[k].logprob = lp.logprob - (float)k;
            top_p[k] = &tops[k];
          }
          lp.n_top = n_top;
          lp.top = top_p;
          t.logprob = &lp;
        }
        Realm__V1__GenerateEvent g;
        realm__v1__generate_event__init(&g);
        g.request_id = s->id;
        g.kind_case = REALM__V1__GENERATE_EVENT__KIND_TOKEN;
        g.token = &t;
        send_event(fr, s, &g);
        s->next++;
        s->due_ns = now + (uint64_t)fr->script.token_delay_ms * 1000000ull;
      } else if (s->error_code) { /* error_after_tokens */
        send_error_finish(fr, s);
        end_stream(fr, s);
      } else if (!s->hang || s->finish_now) {
        send_finish(fr, s,
                    s->finish && !strcmp(s->finish, "length")
                        ? REALM__V1__FINISH_REASON__FINISH_REASON_LENGTH
                        : REALM__V1__FINISH_REASON__FINISH_REASON_STOP);
        end_stream(fr, s);
      } else {
        break; /* hanging: nothing due until a cancel or finish_all */
      }
    }
    if (s->used && (s->next < s->n_texts || !s->hang)) {
      long ms = s->due_ns > now ? (long)((s->due_ns - now) / 1000000ull) + 1 : 0;
      if (next < 0 || ms < next) next = ms;
    }
  }
  fr->finish_all = false;
  return next;
}

static void *fr_main(void *arg) {
  struct fake_runner *fr = arg;
  for (;;) {
    pthread_mutex_lock(&fr->mu);
    if (fr->stop) {
      pthread_mutex_unlock(&fr->mu);
      break;
    }
    if (fr->want_kill) {
      fr->want_kill = false;
      for (int i = 0; i < FR_MAX_STREAMS; i++)
        if (fr->streams[i].used) end_stream(fr, &fr->streams[i]);
      realm_ipc_socket_close(fr->sock);
      fr->sock = NULL;
      fr->kill_acks++;
      pthread_cond_broadcast(&fr->cv);
    }
    if (fr->want_revive) {
      fr->want_revive = false;
      fr->revive_rc = fr->sock ? 0 : fr_bind(fr);
      fr->revive_acks++;
      pthread_cond_broadcast(&fr->cv);
    }
    bool deaf = fr->deaf;
    long timeout = deaf || !fr->sock ? -1 : pump_streams(fr);
    pthread_mutex_unlock(&fr->mu);

    zmq_pollitem_t items[2] = {{.socket = NULL, .fd = fr->efd, .events = ZMQ_POLLIN},
                               {.socket = fr->sock, .events = ZMQ_POLLIN}};
    int n = (!deaf && fr->sock) ? 2 : 1;
    if (zmq_poll(items, n, timeout) < 0 && zmq_errno() == ETERM) break;
    if (items[0].revents & ZMQ_POLLIN) {
      uint64_t v;
      ssize_t rd = read(fr->efd, &v, sizeof v);
      (void)rd;
    }
    if (n == 2 && (items[1].revents & ZMQ_POLLIN)) {
      for (int k = 0; k < 256; k++) {
        realm_ipc_peer from;
        ProtobufCMessage *m = NULL;
        char err[256];
        int r = realm_ipc_recv(fr->sock, &from, REALM_FRAME_RUNNER_REQUEST,
                               &realm__v1__runner_request__descriptor, 0, ZMQ_DONTWAIT, &m, err,
                               sizeof err);
        if (r == REALM_E_TIMEOUT || r == REALM_E_SHUTTING_DOWN || r == REALM_E_SYSTEM) break;
        if (r < 0) {
          realm_proto_send_frame_error(fr->sock, &from, REALM_FRAME_RUNNER_REQUEST, r, err, NULL, 0);
          continue;
        }
        pthread_mutex_lock(&fr->mu);
        handle_request(fr, &from, (const Realm__V1__RunnerRequest *)m);
        pthread_mutex_unlock(&fr->mu);
        realm_frame_msg_free(m);
      }
    }
  }
  for (int i = 0; i < FR_MAX_STREAMS; i++) stream_free(&fr->streams[i]);
  realm_ipc_socket_close(fr->sock);
  fr->sock = NULL;
  return NULL;
}

int fr_start(void *zctx, const char *endpoint, const char *tenant, struct fake_runner **ret) {
  struct fake_runner *fr = calloc(1, sizeof *fr);
  if (!fr) return REALM_E_NOMEM;
  fr->zctx = zctx;
  copy_str(fr->endpoint, sizeof fr->endpoint, endpoint);
  copy_str(fr->tenant, sizeof fr->tenant, tenant);
  fr->ready = true;
  fr->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  pthread_mutex_init(&fr->mu, NULL);
  pthread_cond_init(&fr->cv, NULL);
  if (fr->efd < 0 || fr_bind(fr) < 0 || pthread_create(&fr->thread, NULL, fr_main, fr) != 0) {
    if (fr->efd >= 0) close(fr->efd);
    realm_ipc_socket_close(fr->sock);
    free(fr);
    return REALM_E_SYSTEM;
  }
  *ret = fr;
  return 0;
}

void fr_stop(struct fake_runner *fr) {
  if (!fr) return;
  pthread_mutex_lock(&fr->mu);
  fr->stop = true;
  pthread_mutex_unlock(&fr->mu);
  fr_wake(fr);
  pthread_join(fr->thread, NULL);
  close(fr->efd);
  pthread_mutex_destroy(&fr->mu);
  pthread_cond_destroy(&fr->cv);
  free(fr);
}

void fr_set_script(struct fake_runner *fr, const struct fr_script *s) {
  pthread_mutex_lock(&fr->mu);
  fr->script = *s;
  for (size_t i = 0; i < s->n_tokens && i < FR_MAX_TOKENS; i++)
    copy_str(fr->script_texts[i], sizeof fr->script_texts[i], s->tokens[i]);
  for (size_t i = 0; i < FR_MAX_TOKENS; i++) fr->script.tokens[i] = NULL; /* copies live above */
  if (s->error_code) copy_str(fr->script_error, sizeof fr->script_error, s->error_code);
  if (s->error_param) copy_str(fr->script_param, sizeof fr->script_param, s->error_param);
  pthread_mutex_unlock(&fr->mu);
}

void fr_set_ready(struct fake_runner *fr, bool ready) {
  pthread_mutex_lock(&fr->mu);
  fr->ready = ready;
  pthread_mutex_unlock(&fr->mu);
}

void fr_set_load(struct fake_runner *fr, uint32_t extra_in_flight, uint32_t max_in_flight) {
  pthread_mutex_lock(&fr->mu);
  fr->extra_in_flight = extra_in_flight;
  fr->max_in_flight = max_in_flight;
  pthread_mutex_unlock(&fr->mu);
}

void fr_set_deaf(struct fake_runner *fr, bool deaf) {
  pthread_mutex_lock(&fr->mu);
  fr->deaf = deaf;
  pthread_mutex_unlock(&fr->mu);
  fr_wake(fr);
}

static bool wait_until(struct fake_runner *fr, const int *counter, int n, int timeout_ms) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += timeout_ms / 1000;
  dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&fr->mu);
  int rc = 0;
  while (*counter < n && rc == 0) rc = pthread_cond_timedwait(&fr->cv, &fr->mu, &dl);
  bool ok = *counter >= n;
  pthread_mutex_unlock(&fr->mu);
  return ok;
}

void fr_kill(struct fake_runner *fr) {
  pthread_mutex_lock(&fr->mu);
  int want = fr->kill_acks + 1;
  fr->want_kill = true;
  pthread_mutex_unlock(&fr->mu);
  fr_wake(fr);
  wait_until(fr, &fr->kill_acks, want, 5000);
}

int fr_revive(struct fake_runner *fr) {
  pthread_mutex_lock(&fr->mu);
  int want = fr->revive_acks + 1;
  fr->want_revive = true;
  pthread_mutex_unlock(&fr->mu);
  fr_wake(fr);
  if (!wait_until(fr, &fr->revive_acks, want, 5000)) return REALM_E_TIMEOUT;
  pthread_mutex_lock(&fr->mu);
  int rc = fr->revive_rc;
  pthread_mutex_unlock(&fr->mu);
  return rc < 0 ? REALM_E_SYSTEM : 0;
}

void fr_finish_all(struct fake_runner *fr) {
  pthread_mutex_lock(&fr->mu);
  fr->finish_all = true;
  pthread_mutex_unlock(&fr->mu);
  fr_wake(fr);
}

static int read_counter(struct fake_runner *fr, const int *c) {
  pthread_mutex_lock(&fr->mu);
  int v = *c;
  pthread_mutex_unlock(&fr->mu);
  return v;
}

int fr_generates(struct fake_runner *fr) { return read_counter(fr, &fr->n_generate); }
int fr_cancels(struct fake_runner *fr) { return read_counter(fr, &fr->n_cancel); }
int fr_pings(struct fake_runner *fr) { return read_counter(fr, &fr->n_ping); }
int fr_active(struct fake_runner *fr) { return read_counter(fr, &fr->n_active); }
bool fr_wait_generates(struct fake_runner *fr, int n, int timeout_ms) {
  return wait_until(fr, &fr->n_generate, n, timeout_ms);
}
bool fr_wait_cancels(struct fake_runner *fr, int n, int timeout_ms) {
  return wait_until(fr, &fr->n_cancel, n, timeout_ms);
}
bool fr_wait_pings(struct fake_runner *fr, int n, int timeout_ms) {
  return wait_until(fr, &fr->n_ping, n, timeout_ms);
}

void fr_last_seen(struct fake_runner *fr, struct fr_seen *ret) {
  pthread_mutex_lock(&fr->mu);
  *ret = fr->seen;
  pthread_mutex_unlock(&fr->mu);
}
