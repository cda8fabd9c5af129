/*
 * guest.c — the default Realm guest (ABI v1): what every tenant runs unless it uploads its own.
 *
 * The runner calls three exports per request, all on one thread, interleaved across requests:
 *   realm_on_request_begin  decode the request blob (guest_request.c); build the tokenizer from
 *                           the host's vocabulary on the instance's first request and keep it
 *                           (guest_vocab.c); render chat messages with a chat template; tokenize
 *                           the prompt (BOS per the vocabulary); set up the sampler and the
 *                           output stream (stop tokens, stop strings, UTF-8, max_tokens); feed
 *                           the prompt to the host.
 *   realm_on_logits         sample the next token, turn its piece into client text through the
 *                           output stream, emit it with its logprob (0 when the host said with
 *                           REALM_REQ_SKIP_LOGPROBS that it drops them; its top alternatives
 *                           when the request asks for logprobs), and return it (the host feeds
 *                           it) or, after realm_finish with the reason, REALM_GUEST_STOP when
 *                           generation is over.
 *   realm_on_request_end    free the request's state.
 *
 * Per-request state lives in a table of REALM_GUEST_MAX_ACTIVE_REQUESTS slots (the host never
 * has more requests open in one instance), looked up by request id. The only other state is
 * the cached vocabulary, identical for every request of the instance.
 *
 * What the client sees: the concatenation, in call order, of the text of every emit_token and
 * emit_text call; every piece is whole UTF-8 (output_stream.h). A generated token is reported
 * by emit_token with the text it released (possibly empty while a multi-byte character or a
 * possible stop string is held back); a stop token (EOS, a chat template's end-of-turn token, a
 * request's stop_token) is not emitted as a token, and text released when generation ends goes
 * out with emit_text. The finish reason goes to the host with realm_finish (stop or length)
 * just before REALM_GUEST_STOP, and to the log at DEBUG as "finish req=<id> reason=<stop|length>
 * tokens=<n>" (docs/default-guest.md). Failures of a request are logged at WARN with the
 * reason, and the export returns a REALM_GUEST_E_* code.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "guest_request.h"
#include "guest_vocab.h"
#include "output_stream.h"
#include "realm/error.h"
#include "realm/limits.h"
#include "realm_guest.h"
#include "sampler.h"

#define GUEST_MAX_REQUESTS REALM_GUEST_MAX_ACTIVE_REQUESTS
#define GUEST_ERR_BYTES 512

struct guest_req_state {
  uint32_t id;
  struct sampler *sampler;
  struct output_stream *out;
  int32_t *history;     /* [cap_history] prompt tokens, then generated tokens */
  size_t n_history, cap_history, n_prompt;
  uint32_t n_ctx;       /* context the host grants (0 = unknown: no check) */
  int32_t n_top;        /* top logprobs wanted per token (REALM_REQ_LOGPROBS), 0 = none */
  int finished;         /* REALM_GUEST_STOP was returned */
};

static struct guest_req_state *g_reqs[GUEST_MAX_REQUESTS];
static struct guest_vocab *g_vocab; /* built on the first request, kept for the instance */

__attribute__((format(printf, 2, 3)))
static void log_line(int level, const char *fmt, ...) {
  char msg[GUEST_ERR_BYTES + 128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  realm_log(level, msg, (uint32_t)((size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1));
}

/* Maps a realm error from the libraries to the guest return code the host understands. */
static int32_t guest_code(int rc) {
  switch (rc) {
  case REALM_E_NOMEM: case REALM_E_INTERNAL: case REALM_E_BAD_MODEL:
    return REALM_GUEST_E_INTERNAL;
  case REALM_E_UNSUPPORTED:
    return REALM_GUEST_E_UNSUPPORTED;
  default:
    return REALM_GUEST_E_INVALID;
  }
}

static struct guest_req_state **slot_of(uint32_t id) {
  for (size_t i = 0; i < GUEST_MAX_REQUESTS; i++)
    if (g_reqs[i] && g_reqs[i]->id == id) return &g_reqs[i];
  return NULL;
}

static void req_state_free(struct guest_req_state *s) {
  if (!s) return;
  sampler_destroy(s->sampler);
  output_stream_destroy(s->out);
  free(s->history);
  free(s);
}

/* Static constructors (wasi-libc's, if any) run once, on the first call into the guest.
 * Exporting _initialize marks the module as a "reactor" for wasm-ld; without it the linker
 * wraps every export in a "command" shim that runs the constructors AND the destructors on
 * each call, and the destructors pull in libc's stdio exit path with its WASI imports. The
 * host never calls _initialize (ABI v1 does not know it), so every export calls init_once. */
extern void __wasm_call_ctors(void);
static int g_initialized;

static void init_once(void) {
  if (g_initialized) return;
  g_initialized = 1;
  __wasm_call_ctors();
}

__attribute__((export_name("_initialize"))) void guest_initialize(void) {
  init_once();
}

REALM_GUEST_EXPORT(realm_abi_version) int32_t realm_abi_version(void) {
  init_once();
  return REALM_GUEST_ABI_VERSION;
}

REALM_GUEST_EXPORT(realm_alloc) uint32_t realm_alloc(uint32_t size) {
  init_once();
  return (uint32_t)(uintptr_t)malloc(size ? size : 1);
}

/* Picks the chat template: the request's (a family name, else a Jinja text to detect), else
 * the model's tokenizer.chat_template when it was recognised, else the family whose markers
 * the vocabulary has as tokens, else raw. */
static int choose_template(const struct guest_request *q, enum chat_template_kind *ret_kind,
                           char *err, size_t errlen) {
  if (q->chat_template) {
    if (chat_template_from_name(q->chat_template, ret_kind, err, errlen) == 0) return 0;
    return chat_template_detect(q->chat_template, ret_kind, err, errlen);
  }
  if (g_vocab->has_model_template) {
    *ret_kind = g_vocab->model_template;
    return 0;
  }
  const struct tok *t = g_vocab->tok;
  static const struct {
    const char *marker;
    enum chat_template_kind kind;
  } by_marker[] = {
      {"<|start_header_id|>", CHAT_TEMPLATE_LLAMA3},
      {"<|im_start|>", CHAT_TEMPLATE_CHATML},
      {"<|assistant|>", CHAT_TEMPLATE_ZEPHYR},
      {"[INST]", CHAT_TEMPLATE_MISTRAL},
  };
  for (size_t i = 0; i < sizeof by_marker / sizeof by_marker[0]; i++)
    if (tok_find_token(t, by_marker[i].marker, strlen(by_marker[i].marker)) >= 0) {
      *ret_kind = by_marker[i].kind;
      return 0;
    }
  *ret_kind = CHAT_TEMPLATE_RAW;
  return 0;
}

/* Renders the chat into a malloc'ed prompt (*ret_text, *ret_len). */
static int render_chat(const struct guest_request *q, enum chat_template_kind kind,
                       char **ret_text, size_t *ret_len, char *err, size_t errlen) {
  struct chat_message *msgs = malloc(q->n_messages * sizeof *msgs);
  if (!msgs) {
    snprintf(err, errlen, "chat messages: out of memory");
    return REALM_E_NOMEM;
  }
  size_t cap = 4096;
  for (size_t i = 0; i < q->n_messages; i++) {
    msgs[i] = (struct chat_message){q->messages[i].role, q->messages[i].content};
    cap += strlen(msgs[i].role) + strlen(msgs[i].content) + 64; /* markers per turn */
  }
  int rc = REALM_E_NOMEM;
  char *text = NULL;
  for (int attempt = 0; attempt < 3; attempt++, cap *= 2) { /* the estimate covers every family */
    free(text);
    text = malloc(cap);
    if (!text) {
      snprintf(err, errlen, "chat prompt of %zu bytes: out of memory", cap);
      rc = REALM_E_NOMEM;
      break;
    }
    size_t len;
    rc = chat_template_render(kind, msgs, q->n_messages, true, text, cap, &len, err, errlen);
    if (rc == 0) {
      *ret_text = text;
      *ret_len = len;
      free(msgs);
      return 0;
    }
    if (rc != REALM_E_TOO_LARGE) break;
  }
  free(text);
  free(msgs);
  return rc;
}

/* Everything realm_on_request_begin does after the blob is decoded; fills *s. */
static int begin(uint32_t req_id, const struct guest_request *q, struct guest_req_state *s,
                 char *err, size_t errlen) {
  int rc;
  if (!g_vocab && (rc = guest_vocab_load(&g_vocab, err, errlen)) < 0) return rc;
  const struct guest_vocab *v = g_vocab;

  /* The prompt text and how to tokenize it. */
  char *chat_text = NULL;
  const char *text = q->prompt ? q->prompt : "";
  size_t text_len = q->prompt ? q->prompt_len : 0;
  int add_bos = v->add_bos, parse_special = 0;
  int32_t end_of_turn = -1;
  if (q->n_messages) {
    enum chat_template_kind kind;
    if ((rc = choose_template(q, &kind, err, errlen)) < 0) return rc;
    if ((rc = render_chat(q, kind, &chat_text, &text_len, err, errlen)) < 0) return rc;
    text = chat_text;
    parse_special = 1; /* the template's markers are control tokens */
    if (chat_template_has_bos(kind)) add_bos = 0;
    const char *eot = chat_template_end_of_turn(kind);
    if (eot) end_of_turn = tok_find_token(v->tok, eot, strlen(eot));
  }
  int32_t *ids = NULL;
  size_t n_ids = 0;
  rc = guest_vocab_encode(v, text, text_len, add_bos, parse_special, &ids, &n_ids, err, errlen);
  free(chat_text);
  if (rc < 0) return rc;
  if (n_ids == 0 && v->info.bos >= 0) {
    /* An empty prompt on a vocabulary that adds no BOS (BPE): generation still needs one
     * input token, and BOS (GPT-2's <|endoftext|>) is what such models start from. */
    free(ids);
    ids = malloc(sizeof *ids);
    if (!ids) {
      snprintf(err, errlen, "prompt tokens: out of memory");
      return REALM_E_NOMEM;
    }
    ids[0] = v->info.bos;
    n_ids = 1;
  }
  s->history = ids;
  s->n_history = s->n_prompt = s->cap_history = n_ids;
  s->n_ctx = v->info.n_ctx;
  if (n_ids == 0) {
    snprintf(err, errlen, "prompt is empty and the vocabulary has no BOS token to start from");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (s->n_ctx && n_ids >= s->n_ctx) {
    snprintf(err, errlen, "prompt of %zu tokens does not fit the context of %u tokens", n_ids,
             s->n_ctx);
    return REALM_E_INVALID_ARGUMENT;
  }

  /* Sampling. Absent fields keep the OpenAI defaults of sampler_params_default. */
  struct sampler_params sp;
  sampler_params_default(&sp);
  if (q->has_temperature) sp.temperature = q->temperature;
  if (q->has_top_p) sp.top_p = q->top_p;
  sp.top_k = (int32_t)(q->top_k > (uint32_t)v->n_vocab ? (uint32_t)v->n_vocab : q->top_k);
  sp.min_p = q->min_p;
  if (q->repetition_penalty != 0.0f) sp.repetition_penalty = q->repetition_penalty;
  sp.frequency_penalty = q->frequency_penalty;
  sp.presence_penalty = q->presence_penalty;
  if (q->has_seed) {
    sp.seed = q->seed;
  } else if (realm_random_bytes(&sp.seed, sizeof sp.seed) != (int32_t)sizeof sp.seed) {
    snprintf(err, errlen, "random_bytes failed: no seed for sampling");
    return REALM_E_INTERNAL;
  }
  /* Every emitted token carries its logprob (ABI v1), unless the host said it drops them
   * (REALM_REQ_SKIP_LOGPROBS without REALM_REQ_LOGPROBS): then emit_token gets 0 and greedy
   * decoding saves the log-partition sum over the whole vocabulary on every token. The
   * token chosen does not depend on it. */
  sp.logprobs = !(q->skip_logprobs && !q->has_logprobs);
  /* Alternatives go out with realm_emit_top_logprobs after each emit_token. */
  if (q->top_logprobs > SAMPLER_MAX_TOP_LOGPROBS || q->top_logprobs > REALM_GUEST_MAX_TOP_LOGPROBS) {
    snprintf(err, errlen, "logprobs %u: must be between 0 and %d", q->top_logprobs,
             SAMPLER_MAX_TOP_LOGPROBS);
    return REALM_E_INVALID_ARGUMENT;
  }
  sp.top_logprobs = (int32_t)q->top_logprobs;
  s->n_top = sp.top_logprobs;
  sp.logit_bias = q->logit_bias; /* copied and checked (ids, range, duplicates) by the sampler */
  sp.n_logit_bias = q->n_logit_bias;
  if ((rc = sampler_create(&sp, v->n_vocab, &s->sampler, err, errlen)) < 0) return rc;

  /* Stop rules and the length limit. */
  int32_t stop_tokens[GUEST_MAX_STOP_TOKENS + 2];
  size_t n_stop_tokens = 0;
  if (v->info.eos >= 0) stop_tokens[n_stop_tokens++] = v->info.eos;
  if (end_of_turn >= 0 && end_of_turn != v->info.eos) stop_tokens[n_stop_tokens++] = end_of_turn;
  for (size_t i = 0; i < q->n_stop_tokens; i++) stop_tokens[n_stop_tokens++] = q->stop_tokens[i];
  int64_t max_tokens = REALM_MAX_COMPLETION_TOKENS;
  if (s->n_ctx && (int64_t)(s->n_ctx - n_ids) < max_tokens) max_tokens = s->n_ctx - n_ids;
  if (q->has_max_tokens) max_tokens = q->max_tokens > (uint32_t)INT32_MAX ? INT32_MAX : q->max_tokens;
  struct output_stream_params op = {
      .stop = (const char *const *)q->stop,
      .n_stop = q->n_stop,
      .stop_tokens = stop_tokens,
      .n_stop_tokens = n_stop_tokens,
      .n_vocab = v->n_vocab,
      .max_tokens = (int32_t)max_tokens,
  };
  if ((rc = output_stream_create(&op, &s->out, err, errlen)) < 0) return rc;

  int32_t fed = realm_feed_tokens(req_id, ids, (uint32_t)n_ids);
  if (fed < 0) {
    snprintf(err, errlen, "feed_tokens of %zu prompt tokens failed with %d", n_ids, (int)fed);
    return fed == REALM_GUEST_E_INVALID ? REALM_E_INVALID_ARGUMENT : REALM_E_INTERNAL;
  }
  return 0;
}

REALM_GUEST_EXPORT(realm_on_request_begin)
int32_t realm_on_request_begin(uint32_t req_id, const uint8_t *req, uint32_t req_len) {
  init_once();
  char err[GUEST_ERR_BYTES] = "";
  struct guest_request q;
  int rc = guest_request_decode(req, req_len, &q, err, sizeof err);
  free((void *)req); /* the blob is ours; everything kept was copied */
  struct guest_req_state **free_slot = NULL;
  if (rc == 0) {
    if (slot_of(req_id)) {
      snprintf(err, sizeof err, "request id %u is already active", req_id);
      rc = REALM_E_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < GUEST_MAX_REQUESTS && !free_slot; i++)
      if (!g_reqs[i]) free_slot = &g_reqs[i];
    if (rc == 0 && !free_slot) {
      snprintf(err, sizeof err, "more than %d active requests", GUEST_MAX_REQUESTS);
      rc = REALM_E_RATE_LIMITED;
    }
  }
  struct guest_req_state *s = NULL;
  if (rc == 0) {
    s = calloc(1, sizeof *s);
    if (!s) {
      snprintf(err, sizeof err, "request state: out of memory");
      rc = REALM_E_NOMEM;
    }
  }
  if (rc == 0) {
    s->id = req_id;
    rc = begin(req_id, &q, s, err, sizeof err);
  }
  guest_request_free(&q);
  if (rc < 0) {
    req_state_free(s);
    log_line(REALM_GUEST_LOG_WARN, "request %u refused: %s", req_id, err);
    return guest_code(rc);
  }
  *free_slot = s;
  return REALM_GUEST_OK;
}

/* Ends generation: emits text released by the end, tells the host the finish reason, returns
 * STOP. */
static int32_t finish(struct guest_req_state *s, const char *text, size_t len,
                      enum output_finish why) {
  if (len) realm_emit_text(s->id, text, (uint32_t)len);
  s->finished = 1;
  realm_finish(s->id, why == OUTPUT_FINISH_LENGTH ? REALM_GUEST_FINISH_LENGTH : REALM_GUEST_FINISH_STOP);
  log_line(REALM_GUEST_LOG_DEBUG, "finish req=%u reason=%s tokens=%d", s->id,
           output_finish_name(why), (int)output_stream_n_tokens(s->out));
  return REALM_GUEST_STOP;
}

REALM_GUEST_EXPORT(realm_on_logits)
int32_t realm_on_logits(uint32_t req_id, const float *logits, uint32_t n_vocab) {
  struct guest_req_state **slot = slot_of(req_id);
  if (!slot) {
    log_line(REALM_GUEST_LOG_WARN, "logits for unknown request %u", req_id);
    return REALM_GUEST_E_INVALID;
  }
  struct guest_req_state *s = *slot;
  if (s->finished) return REALM_GUEST_STOP;
  if (n_vocab != (uint32_t)g_vocab->n_vocab) {
    log_line(REALM_GUEST_LOG_WARN, "request %u: %u logits for a vocabulary of %d", req_id,
             n_vocab, (int)g_vocab->n_vocab);
    return REALM_GUEST_E_INVALID;
  }
  const char *text;
  size_t len;
  enum output_finish why;
  if (s->n_ctx && s->n_history >= s->n_ctx) { /* no room for another token: "length" */
    output_stream_end(s->out, &text, &len, &why);
    return finish(s, text, len, OUTPUT_FINISH_LENGTH);
  }
  if (s->n_history == s->cap_history) {
    size_t cap = s->cap_history * 2 + 16;
    int32_t *h = realloc(s->history, cap * sizeof *h);
    if (!h) {
      log_line(REALM_GUEST_LOG_WARN, "request %u: token history out of memory", req_id);
      return REALM_GUEST_E_INTERNAL;
    }
    s->history = h;
    s->cap_history = cap;
  }
  char err[GUEST_ERR_BYTES];
  int32_t token;
  float logprob = 0.0f;
  struct sampler_top_logprob top[SAMPLER_MAX_TOP_LOGPROBS];
  int32_t n_top = 0;
  /* The logits buffer is host scratch in our memory, rewritten before every call: the sampler
   * may use it as its own scratch instead of a copy of n_vocab floats. */
  int rc = sampler_sample(s->sampler, (float *)logits, s->history, s->n_history, s->n_prompt,
                          &token, &logprob, s->n_top ? top : NULL, s->n_top ? &n_top : NULL, err,
                          sizeof err);
  if (rc < 0) {
    log_line(REALM_GUEST_LOG_WARN, "request %u: sampling failed: %s", req_id, err);
    return guest_code(rc);
  }
  size_t piece_len = 0;
  const char *piece = tok_piece(g_vocab->tok, token, &piece_len);
  rc = output_stream_push(s->out, token, (const uint8_t *)(piece ? piece : ""), piece ? piece_len : 0,
                          &text, &len, &why, err, sizeof err);
  if (rc < 0) {
    log_line(REALM_GUEST_LOG_WARN, "request %u: output failed: %s", req_id, err);
    return guest_code(rc);
  }
  if (why != OUTPUT_RUNNING && output_stream_stop_token(s->out) == token)
    return finish(s, text, len, why); /* a stop token: not emitted as a token */
  realm_emit_token(req_id, token, logprob, text, (uint32_t)len);
  if (n_top > 0) {
    struct realm_top_logprob alt[REALM_GUEST_MAX_TOP_LOGPROBS];
    for (int32_t i = 0; i < n_top && i < REALM_GUEST_MAX_TOP_LOGPROBS; i++)
      alt[i] = (struct realm_top_logprob){top[i].token, top[i].logprob};
    realm_emit_top_logprobs(req_id, alt, (uint32_t)(n_top < REALM_GUEST_MAX_TOP_LOGPROBS ? n_top : REALM_GUEST_MAX_TOP_LOGPROBS));
  }
  s->history[s->n_history++] = token;
  if (why != OUTPUT_RUNNING) return finish(s, NULL, 0, why);
  return token;
}

REALM_GUEST_EXPORT(realm_on_request_end) void realm_on_request_end(uint32_t req_id, int32_t status) {
  (void)status; /* finished or failed, the state goes the same way */
  struct guest_req_state **slot = slot_of(req_id);
  if (!slot) return;
  req_state_free(*slot);
  *slot = NULL;
}
