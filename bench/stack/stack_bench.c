/*
 * stack_bench.c — the measuring half of the whole-stack benchmarks (bench/stack/run_stack.py
 * is the orchestrating half: it starts the stack with `realmctl up`, grows tenants, reads
 * memory, runs wrk and draws the plots). Two sub-commands, each writing one JSON file:
 *
 *   stack_bench isolation --model M.gguf --worker ipc://RUN/worker.sock --port N --key K
 *                         [--threads T] [--rounds R] [--max-tokens N] [--prompt TEXT]
 *                         [--model-name NAME] [--ban-token ID] --out FILE.json
 *     The same greedy request three ways, interleaved round by round so machine noise hits
 *     all three alike: (engine) engine_forward in this process; (socket) a DEALER to the
 *     running realm-worker with the shm handshake, one Step per token, exactly as a runner
 *     talks to it; (stack) HTTP POST /v1/completions with stream:true over loopback to the
 *     gateway, through a runner and its default WASM guest, to the same worker. For each:
 *     time to first token (request start → first token in hand) and decode tokens/s (the
 *     tokens after the first over the time between the first and the last). Medians, and
 *     the overhead of socket and stack against the engine.
 *
 *   stack_bench streams --port N --keys FILE [--max-tokens N] [--prompt TEXT] --out FILE.json
 *     One streaming request per key (one key per line, one tenant each), all released at the
 *     same instant by a barrier; per-stream tokens/s, inter-token gaps (p50/p99 over all
 *     streams), aggregate tokens/s and fairness (max/min per-stream rate).
 *
 *   stack_bench engine-batch --model M.gguf --out FILE.json [--threads N] [--batches 1,2,4,8,16]
 *                            [--prompt-tokens N] [--steps N]
 *     The baseline for tenant scaling: the engine alone decoding B sequences in one pass.
 *
 * The HTTP client is raw sockets (HTTP/1.1, chunked transfer decoding, SSE framing): one
 * connect and one write per request, a timestamp per received SSE event, nothing else, so
 * the client adds as little as possible to what it measures. Token counts come from the
 * usage chunk (stream_options.include_usage), so a token held back by the gateway (an
 * incomplete UTF-8 character) does not skew the rate. The prompt's token count is taken from
 * the stack's usage too, and the engine and socket runs use that many (synthetic) prompt
 * tokens: with random weights only the counts matter for timing.
 *
 * Benchmarks print ratios measured side by side in one run (DESIGN.md §9); nothing here is
 * run by the test suite.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../tests/unit/worker/wclient.h"
#include "gguf.h"
#include "llama.h"
#include "model.h"
#include "realm/log.h"

#define SB_MAX_STREAMS 64      /* streams sub-command: most keys */
#define SB_MAX_TOKENS 4096     /* --max-tokens cap (also bounds the per-chunk time arrays) */
#define SB_MAX_ROUNDS 100      /* --rounds cap */
#define SB_PROMPT_MAX 2048     /* bytes of --prompt */
#define SB_RECV_TIMEOUT_S 60   /* a stream silent this long is a failure, not a hang */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int argmax(const float *v, uint32_t n, int ban) {
  int b = ban == 0 ? 1 : 0;
  for (uint32_t i = 0; i < n; i++)
    if ((int)i != ban && v[i] > v[b]) b = (int)i;
  return b;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Percentile (0..100) of v[0..n) by nearest rank; sorts v. NAN for n == 0. */
static double percentile(double *v, size_t n, double p) {
  if (n == 0) return NAN;
  qsort(v, n, sizeof *v, cmp_double);
  size_t k = (size_t)ceil(p / 100.0 * (double)n);
  if (k < 1) k = 1;
  return v[k - 1];
}

/* ---- CPU accounting -------------------------------------------------------------------- */

/* CPU time (ms) of every thread of process pid: the first field of each task's schedstat
 * (nanoseconds on a CPU). 0 when the process is gone. */
static double proc_cpu_ms(int pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", pid);
  DIR *d = opendir(path);
  if (!d) return 0;
  double ms = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue;
    char p2[96];
    snprintf(p2, sizeof p2, "/proc/%d/task/%.20s/schedstat", pid, de->d_name);
    FILE *f = fopen(p2, "r");
    unsigned long long ns = 0;
    if (f && fscanf(f, "%llu", &ns) == 1) ms += (double)ns * 1e-6;
    if (f) fclose(f);
  }
  closedir(d);
  return ms;
}

#define SB_MAX_PIDS 8
/* --pids NAME=PID,...: the stack's processes (worker, runner, gateway); slot 0 is this one. */
static int g_pids[SB_MAX_PIDS + 1], g_npids = 1;
static char g_pid_names[SB_MAX_PIDS + 1][32] = {"client"};

/* CPU time used so far by this process (slot 0) and each stack process, in ms; returns the sum. */
static double stack_cpu_ms(double ret_each[SB_MAX_PIDS + 1]) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  ret_each[0] = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
  double ms = ret_each[0];
  for (int i = 1; i < g_npids; i++) ms += ret_each[i] = proc_cpu_ms(g_pids[i]);
  return ms;
}

/* ---- HTTP/SSE streaming client --------------------------------------------------------- */

struct stream_result {
  int status;                /* HTTP status; 0 when the connection failed */
  double t_start;            /* before connect() */
  double t_first, t_last;    /* first / last token chunk */
  double *chunk_t;           /* arrival time of every token chunk */
  int n_chunks, max_chunks;
  int prompt_tokens, completion_tokens; /* from the usage chunk; -1 when absent */
  bool done;                 /* data: [DONE] seen */
  char err[256];
};

/* Integer after "key": in s, or -1. */
static int json_int_after(const char *s, const char *key) {
  const char *p = strstr(s, key);
  if (!p) return -1;
  p += strlen(key);
  while (*p == ' ' || *p == ':' || *p == '"') p++;
  return (*p >= '0' && *p <= '9') ? atoi(p) : -1;
}

/* One SSE event (without the blank line). A token chunk is one with choices whose
 * finish_reason is still null; the usage chunk carries the counts. */
static void sse_event(struct stream_result *r, char *ev, double t) {
  if (strncmp(ev, "data:", 5) != 0) return; /* comments (keep-alive) */
  char *d = ev + 5;
  while (*d == ' ') d++;
  if (strncmp(d, "[DONE]", 6) == 0) {
    r->done = true;
    return;
  }
  if (strncmp(d, "{\"error\"", 8) == 0) {
    snprintf(r->err, sizeof r->err, "in-stream error: %.200s", d);
    return;
  }
  char *fr = strstr(d, "\"finish_reason\"");
  if (fr) {
    fr += strlen("\"finish_reason\"");
    while (*fr == ' ' || *fr == ':') fr++;
    if (strncmp(fr, "null", 4) == 0) {
      if (r->n_chunks == 0) r->t_first = t;
      r->t_last = t;
      if (r->n_chunks < r->max_chunks) r->chunk_t[r->n_chunks] = t;
      r->n_chunks++;
    }
  }
  char *u = strstr(d, "\"usage\"");
  if (u && strncmp(u + 7, ":null", 5) != 0 && strncmp(u + 7, ": null", 6) != 0) {
    int pt = json_int_after(u, "\"prompt_tokens\""), ct = json_int_after(u, "\"completion_tokens\"");
    if (pt >= 0) r->prompt_tokens = pt;
    if (ct >= 0) r->completion_tokens = ct;
  }
}

/*
 * POSTs body to 127.0.0.1:port PATH with the key and reads the SSE stream to its end.
 * Returns 0 when the stream ended with [DONE] after status 200, else -1 with r->err set.
 */
static int http_stream(int port, const char *path, const char *key, const char *body,
                       struct stream_result *r) {
  r->status = 0;
  r->n_chunks = 0;
  r->prompt_tokens = r->completion_tokens = -1;
  r->done = false;
  r->err[0] = 0;
  char req[SB_PROMPT_MAX + 1024];
  int n = snprintf(req, sizeof req,
                   "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n%s",
                   path, port, key, strlen(body), body);
  if (n < 0 || (size_t)n >= sizeof req) {
    snprintf(r->err, sizeof r->err, "request too long");
    return -1;
  }
  r->t_start = now_s();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    snprintf(r->err, sizeof r->err, "connect 127.0.0.1:%d: %s", port, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = {.tv_sec = SB_RECV_TIMEOUT_S};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (int off = 0; off < n;) {
    ssize_t w = send(fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
    if (w <= 0) {
      snprintf(r->err, sizeof r->err, "send: %s", strerror(errno));
      close(fd);
      return -1;
    }
    off += (int)w;
  }

  /* Decoder state: headers, then chunked framing (size line, data, CRLF) or plain. */
  enum { HDR, CSIZE, CDATA, CCRLF, PLAIN, END } st = HDR;
  static __thread char hdr[8192];
  static __thread char sse[65536];
  size_t hlen = 0, slen = 0, chunk_left = 0;
  char sizeline[32];
  size_t szlen = 0;
  bool chunked = false;
  char buf[16384];
  while (st != END) {
    ssize_t got = recv(fd, buf, sizeof buf, 0);
    double t = now_s();
    if (got == 0) break;
    if (got < 0) {
      if (errno == EINTR) continue;
      snprintf(r->err, sizeof r->err, "recv: %s", strerror(errno));
      break;
    }
    for (ssize_t i = 0; i < got && st != END;) {
      char c = buf[i];
      switch (st) {
      case HDR:
        if (hlen + 1 < sizeof hdr) hdr[hlen++] = c;
        i++;
        if (hlen >= 4 && memcmp(hdr + hlen - 4, "\r\n\r\n", 4) == 0) {
          hdr[hlen] = 0;
          if (sscanf(hdr, "HTTP/%*s %d", &r->status) != 1) r->status = -1;
          for (char *p = hdr; *p; p++) *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
          chunked = strstr(hdr, "transfer-encoding: chunked") != NULL;
          st = chunked ? CSIZE : PLAIN;
        }
        continue;
      case CSIZE:
        i++;
        if (c == '\n') {
          sizeline[szlen] = 0;
          chunk_left = strtoul(sizeline, NULL, 16);
          szlen = 0;
          st = chunk_left ? CDATA : END;
        } else if (szlen + 1 < sizeof sizeline) {
          sizeline[szlen++] = c;
        }
        continue;
      case CCRLF:
        i++;
        if (c == '\n') st = CSIZE;
        continue;
      case CDATA:
      case PLAIN: {
        size_t take = (size_t)(got - i);
        if (st == CDATA && take > chunk_left) take = chunk_left;
        if (slen + take >= sizeof sse) {
          snprintf(r->err, sizeof r->err, "SSE event larger than %zu bytes", sizeof sse);
          st = END;
          break;
        }
        memcpy(sse + slen, buf + i, take);
        slen += take;
        i += (ssize_t)take;
        if (st == CDATA && (chunk_left -= take) == 0) st = CCRLF;
        /* Complete events end with a blank line. */
        sse[slen] = 0;
        char *start = sse, *e;
        while ((e = strstr(start, "\n\n")) != NULL) {
          *e = 0;
          if (r->status == 200) sse_event(r, start, t);
          start = e + 2;
        }
        slen -= (size_t)(start - sse);
        memmove(sse, start, slen);
        continue;
      }
      case END:
        break;
      }
    }
  }
  close(fd);
  if (!r->done && !r->err[0] && r->status == 200) {
    /* Say where the stream stopped: how many token chunks, the decoder state and what was
     * left unparsed, so a truncated stream can be told from a framing problem. */
    sse[slen < sizeof sse ? slen : sizeof sse - 1] = 0;
    snprintf(r->err, sizeof r->err,
             "stream ended without [DONE] after %d token chunks (%s framing, state %d, %zu bytes "
             "pending: '%.80s')", r->n_chunks, chunked ? "chunked" : "plain", (int)st, slen, sse);
  }
  if (r->status != 200) {
    sse[slen < sizeof sse ? slen : sizeof sse - 1] = 0;
    if (!r->err[0]) snprintf(r->err, sizeof r->err, "HTTP %d: %.200s", r->status, sse);
    return -1;
  }
  if (!r->done && !r->err[0]) snprintf(r->err, sizeof r->err, "stream ended without [DONE]");
  return r->done && !r->err[0] && r->n_chunks > 0 ? 0 : -1;
}

static void completion_body(char *out, size_t outlen, const char *model, const char *prompt,
                            int max_tokens, int ban) {
  char bias[64] = "";
  if (ban >= 0) snprintf(bias, sizeof bias, ",\"logit_bias\":{\"%d\":-100}", ban);
  snprintf(out, outlen,
           "{\"model\":\"%s\",\"prompt\":\"%s\",\"max_tokens\":%d,\"temperature\":0,"
           "\"stream\":true,\"stream_options\":{\"include_usage\":true}%s}",
           model, prompt, max_tokens, bias);
}

/* ---- isolation: engine, worker socket, whole stack ------------------------------------- */

struct sample {
  double *gaps;    /* inter-token gaps in ms, tokens - 1 of them */
  double ttft_ms, decode_tps;
  double total_ms; /* request start to last token: immune to how tokens are grouped in chunks */
  double cpu_ms;   /* CPU time of this process + the stack's processes during the request */
  double cpu_each[SB_MAX_PIDS + 1]; /* the same per process (slot 0: this one) */
  int tokens;
};

struct iso {
  /* in-process engine */
  struct gguf_file *gf;
  struct engine_model *m;
  struct engine *e;
  float *logits;
  uint32_t vocab;
  /* worker socket */
  void *zctx;
  struct wclient wc;
  /* request */
  int P, N, ban, port;
  int32_t prompt[SB_MAX_TOKENS];
  const char *key, *model_name, *prompt_text;
};

static int run_engine(struct iso *s, struct sample *ret) {
  char err[512];
  struct kv_seq *seq;
  if (kv_seq_open(engine_kv(s->e), NULL, &seq) < 0) {
    fprintf(stderr, "stack_bench: engine: no KV sequence\n");
    return -1;
  }
  double t0 = now_s(), t_first = 0, t_prev = 0;
  int tok = 0, rc = 0;
  for (int i = 0; i < s->N && rc == 0; i++) {
    struct engine_seq_step st = {.seq = seq,
                                 .pos = i == 0 ? 0 : (uint32_t)(s->P + i - 1),
                                 .tokens = i == 0 ? s->prompt : &tok,
                                 .n_tokens = i == 0 ? (uint32_t)s->P : 1};
    struct engine_batch b = {.seqs = &st, .n_seqs = 1};
    rc = engine_forward(s->e, &b, s->logits, err, sizeof err);
    tok = argmax(s->logits, s->vocab, s->ban);
    double t = now_s();
    if (i == 0) t_first = t;
    else ret->gaps[i - 1] = (t - t_prev) * 1e3;
    t_prev = t;
  }
  double t_last = now_s();
  kv_seq_close(engine_kv(s->e), seq);
  if (rc < 0) {
    fprintf(stderr, "stack_bench: engine: %s\n", err);
    return -1;
  }
  ret->ttft_ms = (t_first - t0) * 1e3;
  ret->decode_tps = s->N > 1 ? (s->N - 1) / (t_last - t_first) : NAN;
  ret->total_ms = (t_last - t0) * 1e3;
  ret->tokens = s->N;
  return 0;
}

static int run_socket(struct iso *s, struct sample *ret) {
  struct wclient *c = &s->wc;
  const uint64_t log_off = ((uint64_t)SB_MAX_TOKENS * 4 + 63) & ~(uint64_t)63;
  double t0 = now_s(), t_first = 0, t_prev = 0;
  int code = 0;
  uint64_t sid = wc_session_open(c, (uint32_t)(s->P + s->N + 1), &code);
  if (!sid) {
    fprintf(stderr, "stack_bench: socket: session open failed (%s): %s\n", realm_err_name(code), c->err);
    return -1;
  }
  int32_t *t = (int32_t *)c->base;
  Realm__V1__StepEntry e, *ep = &e;
  Realm__V1__Step st;
  realm__v1__step__init(&st);
  st.n_entries = 1;
  st.entries = &ep;
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  req.body_case = REALM__V1__WORKER_REQUEST__BODY_STEP;
  req.step = &st;
  int tok = 0, rc = 0;
  for (int i = 0; i < s->N; i++) {
    int n = 1;
    if (i == 0) {
      memcpy(t, s->prompt, sizeof(int32_t) * (size_t)s->P);
      n = s->P;
    } else {
      t[0] = tok;
    }
    realm__v1__step_entry__init(&e);
    e.session_id = sid;
    e.n_tokens = (uint32_t)n;
    e.tokens_offset = 0;
    e.n_logits = 1;
    e.logits_offset = log_off;
    Realm__V1__WorkerReply *r = wc_call(c, &req);
    if (!r || r->body_case != REALM__V1__WORKER_REPLY__BODY_STEP) {
      fprintf(stderr, "stack_bench: socket: step failed: %s\n",
              r && r->error ? r->error->message : c->err);
      realm_frame_msg_free(r ? &r->base : NULL);
      rc = -1;
      break;
    }
    realm_frame_msg_free(&r->base);
    tok = argmax((const float *)(c->base + log_off), c->vocab, s->ban);
    double tn = now_s();
    if (i == 0) t_first = tn;
    else ret->gaps[i - 1] = (tn - t_prev) * 1e3;
    t_prev = tn;
  }
  double t_last = now_s();
  wc_session_close(c, sid);
  if (rc < 0) return -1;
  ret->ttft_ms = (t_first - t0) * 1e3;
  ret->decode_tps = s->N > 1 ? (s->N - 1) / (t_last - t_first) : NAN;
  ret->total_ms = (t_last - t0) * 1e3;
  ret->tokens = s->N;
  return 0;
}

static int run_stack(struct iso *s, struct sample *ret, int *ret_prompt_tokens) {
  static double times[SB_MAX_TOKENS + 8];
  struct stream_result r = {.chunk_t = times, .max_chunks = SB_MAX_TOKENS + 8};
  char body[SB_PROMPT_MAX + 512];
  completion_body(body, sizeof body, s->model_name, s->prompt_text, s->N, s->ban);
  if (http_stream(s->port, "/v1/completions", s->key, body, &r) < 0) {
    fprintf(stderr, "stack_bench: stack: %s\n", r.err);
    return -1;
  }
  int ntok = r.completion_tokens > 0 ? r.completion_tokens : r.n_chunks;
  ret->ttft_ms = (r.t_first - r.t_start) * 1e3;
  ret->decode_tps = ntok > 1 && r.t_last > r.t_first ? (ntok - 1) / (r.t_last - r.t_first) : NAN;
  ret->total_ms = (r.t_last - r.t_start) * 1e3;
  ret->tokens = ntok;
  /* Chunk gaps; a chunk that carried two tokens (held-back UTF-8) counts as one gap. */
  for (int k = 1; k < s->N; k++)
    ret->gaps[k - 1] = k < r.n_chunks && k < r.max_chunks ? (times[k] - times[k - 1]) * 1e3 : NAN;
  if (ret_prompt_tokens) *ret_prompt_tokens = r.prompt_tokens;
  return 0;
}

enum { MED_TTFT, MED_DECODE, MED_TOTAL, MED_CPU };

static double median_of(const struct sample *v, int n, int what) {
  double tmp[SB_MAX_ROUNDS];
  for (int i = 0; i < n; i++)
    tmp[i] = what == MED_TTFT     ? v[i].ttft_ms
             : what == MED_DECODE ? v[i].decode_tps
             : what == MED_TOTAL  ? v[i].total_ms
                                  : v[i].cpu_ms;
  if (n == 0) return NAN;
  qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
  return n % 2 ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
}

static int cmd_isolation(int argc, char **argv) {
  const char *model = NULL, *worker = NULL, *out = NULL;
  static struct iso s;
  s.N = 64;
  s.ban = 2; /* the llama SentencePiece EOS: greedy random weights must not stop early */
  s.model_name = "default";
  s.prompt_text = "Once upon a time, there was a little girl named Lily. She loved to play "
                  "outside in the park with her friends.";
  int threads = 1, rounds = 5;
  for (int i = 2; i + 1 < argc; i += 2) {
    const char *a = argv[i], *v = argv[i + 1];
    if (!strcmp(a, "--model")) model = v;
    else if (!strcmp(a, "--worker")) worker = v;
    else if (!strcmp(a, "--port")) s.port = atoi(v);
    else if (!strcmp(a, "--key")) s.key = v;
    else if (!strcmp(a, "--threads")) threads = atoi(v);
    else if (!strcmp(a, "--rounds")) rounds = atoi(v);
    else if (!strcmp(a, "--max-tokens")) s.N = atoi(v);
    else if (!strcmp(a, "--prompt")) s.prompt_text = v;
    else if (!strcmp(a, "--model-name")) s.model_name = v;
    else if (!strcmp(a, "--ban-token")) s.ban = atoi(v);
    else if (!strcmp(a, "--out")) out = v;
    else if (!strcmp(a, "--pids")) {
      /* NAME=PID,NAME=PID: names are [A-Za-z0-9_] (JSON keys as they are). */
      for (const char *q = v; *q && g_npids <= SB_MAX_PIDS;) {
        size_t n = strcspn(q, "=,");
        if (q[n] != '=' || n == 0 || n >= sizeof g_pid_names[0]) break;
        memcpy(g_pid_names[g_npids], q, n);
        g_pid_names[g_npids][n] = 0;
        char *end;
        g_pids[g_npids++] = (int)strtol(q + n + 1, &end, 10);
        q = end;
        while (*q == ',') q++;
      }
    } else {
      fprintf(stderr, "stack_bench isolation: unknown option '%s'\n", a);
      return 2;
    }
  }
  if (!model || !worker || !s.key || s.port <= 0 || !out) {
    fprintf(stderr, "stack_bench isolation: --model, --worker, --port, --key and --out are required\n");
    return 2;
  }
  if (s.N < 2 || s.N > SB_MAX_TOKENS || rounds < 1 || rounds > SB_MAX_ROUNDS ||
      strlen(s.prompt_text) > SB_PROMPT_MAX || strpbrk(s.prompt_text, "\"\\")) {
    fprintf(stderr, "stack_bench isolation: --max-tokens 2..%d, --rounds 1..%d, --prompt at most "
            "%d bytes without quotes or backslashes\n", SB_MAX_TOKENS, SB_MAX_ROUNDS, SB_PROMPT_MAX);
    return 2;
  }

  /* The stack first, once: it warms the runner and tells the prompt's token count. */
  static double warm_gaps[SB_MAX_TOKENS];
  struct sample warm = {.gaps = warm_gaps};
  int P = -1;
  if (run_stack(&s, &warm, &P) < 0) return 1;
  if (P < 1 || P + s.N > SB_MAX_TOKENS) {
    fprintf(stderr, "stack_bench: the usage chunk gave no usable prompt_tokens (%d)\n", P);
    return 1;
  }
  s.P = P;

  char err[512];
  /* Huge pages when the pool has room, as the worker does (docs/operations.md#huge-pages). */
  if (gguf_open_pages(model, GGUF_PAGES_AUTO, &s.gf, err, sizeof err) < 0 ||
      engine_model_load(s.gf, &s.m, err, sizeof err) < 0) {
    fprintf(stderr, "stack_bench: %s: %s\n", model, err);
    return 1;
  }
  s.vocab = s.m->hp.n_vocab;
  uint32_t ctx = (uint32_t)(P + s.N + 1);
  struct engine_config ec = {.n_threads = threads, .kv_blocks = (ctx + 15) / 16 + 2,
                             .max_step_tokens = 512};
  if (engine_create(s.m, &ec, &s.e, err, sizeof err) < 0) {
    fprintf(stderr, "stack_bench: engine: %s\n", err);
    return 1;
  }
  s.logits = malloc(sizeof(float) * s.vocab);
  for (int i = 0; i < P; i++) s.prompt[i] = 1 + (int32_t)(((uint32_t)i * 37u) % (s.vocab - 1));
  s.prompt[0] = 1; /* BOS, as the guest sends */

  /* The runner's kind of context (SCHED_BATCH I/O threads, realm/ipc.h) and its step lane
   * (docs/protocol.md §6.2), so the socket mode is the runner's path without the guest. */
  if (realm_ipc_ctx_new(&s.zctx, err, sizeof err) < 0) {
    fprintf(stderr, "stack_bench: %s\n", err);
    return 1;
  }
  size_t shm = (size_t)SB_MAX_TOKENS * 4 + 64 + (size_t)s.vocab * 4 + 4096;
  if (wc_open_lane(&s.wc, s.zctx, worker, "bench-socket", "0", 1, 0, shm) < 0) {
    fprintf(stderr, "stack_bench: worker %s: %s\n", worker, s.wc.err);
    return 1;
  }

  /* One warm-up of engine and socket too (page faults, first-touch of the KV pages). */
  struct sample w2 = {.gaps = warm_gaps};
  if (run_engine(&s, &w2) < 0 || run_socket(&s, &w2) < 0) return 1;

  static struct sample res[3][SB_MAX_ROUNDS];
  const char *names[3] = {"engine", "socket", "stack"};
  for (int k = 0; k < 3; k++)
    for (int r = 0; r < rounds; r++) res[k][r].gaps = calloc((size_t)s.N, sizeof(double));
  FILE *f = fopen(out, "w");
  if (!f) {
    fprintf(stderr, "stack_bench: cannot write %s: %s\n", out, strerror(errno));
    return 1;
  }
  fprintf(f, "{\"bench\":\"isolation\",\"model\":\"%s\",\"backend\":\"%s\",\"threads\":%d,"
          "\"prompt_tokens\":%d,\"max_tokens\":%d,\"rounds\":%d,\"samples\":[", model,
          engine_backend_name(s.e), threads, P, s.N, rounds);
  printf("isolation: prompt %d tokens, %d generated (greedy), %d rounds, %d engine thread(s), %s\n",
         P, s.N, rounds, threads, engine_backend_name(s.e));
  printf("%-6s %-7s %10s %12s %10s %10s\n", "round", "mode", "ttft ms", "decode tok/s", "total ms",
         "cpu ms");
  for (int r = 0; r < rounds; r++) {
    for (int k = 0; k < 3; k++) {
      int mode = (r + k) % 3; /* rotate the order: no mode always runs first or last */
      struct sample *x = &res[mode][r];
      double e0[SB_MAX_PIDS + 1], e1[SB_MAX_PIDS + 1];
      double c0 = stack_cpu_ms(e0);
      int rc = mode == 0 ? run_engine(&s, x) : mode == 1 ? run_socket(&s, x) : run_stack(&s, x, NULL);
      x->cpu_ms = stack_cpu_ms(e1) - c0;
      for (int i = 0; i < g_npids; i++) x->cpu_each[i] = e1[i] - e0[i];
      if (rc < 0) return 1;
      printf("%-6d %-7s %10.2f %12.1f %10.1f %10.1f\n", r, names[mode], x->ttft_ms, x->decode_tps,
             x->total_ms, x->cpu_ms);
      fprintf(f, "%s{\"round\":%d,\"mode\":\"%s\",\"ttft_ms\":%.4f,\"decode_tps\":%.4f,"
              "\"total_ms\":%.4f,\"cpu_ms\":%.4f,\"tokens\":%d,", r || k ? "," : "",
              r, names[mode], x->ttft_ms, x->decode_tps, x->total_ms, x->cpu_ms, x->tokens);
      fprintf(f, "\"cpu_each_ms\":{");
      for (int i = 0; i < g_npids; i++)
        fprintf(f, "%s\"%s\":%.3f", i ? "," : "", g_pid_names[i], x->cpu_each[i]);
      fprintf(f, "},\"gaps_ms\":[");
      for (int i = 0; i < x->tokens - 1 && i < s.N - 1; i++)
        fprintf(f, isnan(x->gaps[i]) ? "%snull" : "%s%.3f", i ? "," : "", x->gaps[i]);
      fprintf(f, "]}");
    }
  }
  double md[3], mt[3], mT[3], mc[3];
  for (int k = 0; k < 3; k++) {
    mc[k] = median_of(res[k], rounds, MED_CPU);
    md[k] = median_of(res[k], rounds, MED_DECODE);
    mt[k] = median_of(res[k], rounds, MED_TTFT);
    mT[k] = median_of(res[k], rounds, MED_TOTAL);
  }
  fprintf(f, "],\"median\":{");
  for (int k = 0; k < 3; k++)
    fprintf(f, "%s\"%s\":{\"ttft_ms\":%.4f,\"decode_tps\":%.4f,\"total_ms\":%.4f,\"cpu_ms\":%.4f}",
            k ? "," : "", names[k], mt[k], md[k], mT[k], mc[k]);
  double ov_s = 100.0 * (md[0] - md[1]) / md[0], ov_c = 100.0 * (md[0] - md[2]) / md[0];
  double ot_s = 100.0 * (mT[1] - mT[0]) / mT[0], ot_c = 100.0 * (mT[2] - mT[0]) / mT[0];
  fprintf(f, "},\"overhead\":{\"socket_decode_pct\":%.3f,\"socket_ttft_added_ms\":%.4f,"
          "\"socket_total_pct\":%.3f,\"stack_decode_pct\":%.3f,\"stack_ttft_added_ms\":%.4f,"
          "\"stack_total_pct\":%.3f,\"socket_cpu_pct\":%.3f,\"stack_cpu_pct\":%.3f}", ov_s,
          mt[1] - mt[0], ot_s, ov_c, mt[2] - mt[0], ot_c, 100.0 * (mc[1] - mc[0]) / mc[0],
          100.0 * (mc[2] - mc[0]) / mc[0]);

  /* Noise-robust view. On a shared machine a thread that never sleeps (the in-process engine)
   * is a CPU hog to the scheduler and loses to other hogs, while one that sleeps a little per
   * token (waiting on a socket) is woken ahead of them; medians then compare scheduling
   * luck, not code. The fast end of the distribution is what each path costs when it has a
   * core: the 10th percentile of all inter-token gaps of all rounds, and the best TTFT. */
  double g10[3], g50[3], tmin[3];
  for (int k = 0; k < 3; k++) {
    double *all = malloc(sizeof(double) * (size_t)rounds * (size_t)s.N);
    size_t n = 0;
    tmin[k] = INFINITY;
    for (int r = 0; r < rounds; r++) {
      for (int i = 0; i < res[k][r].tokens - 1 && i < s.N - 1; i++)
        if (!isnan(res[k][r].gaps[i])) all[n++] = res[k][r].gaps[i];
      if (res[k][r].ttft_ms < tmin[k]) tmin[k] = res[k][r].ttft_ms;
    }
    g50[k] = percentile(all, n, 50);
    g10[k] = percentile(all, n, 10);
    free(all);
  }
  fprintf(f, ",\"robust\":{");
  for (int k = 0; k < 3; k++)
    fprintf(f, "\"%s\":{\"gap_p10_ms\":%.4f,\"gap_p50_ms\":%.4f,\"ttft_min_ms\":%.4f},", names[k],
            g10[k], g50[k], tmin[k]);
  double rb_s = 100.0 * (g10[1] - g10[0]) / g10[0], rb_c = 100.0 * (g10[2] - g10[0]) / g10[0];
  fprintf(f, "\"socket_decode_pct\":%.3f,\"socket_ttft_added_ms\":%.4f,\"stack_decode_pct\":%.3f,"
          "\"stack_ttft_added_ms\":%.4f}}\n", rb_s, tmin[1] - tmin[0], rb_c, tmin[2] - tmin[0]);
  fclose(f);
  printf("\nmedians      ttft ms  decode tok/s  total ms  cpu ms (all processes)\n");
  for (int k = 0; k < 3; k++)
    printf("%-10s %9.2f %13.1f %9.1f %9.1f\n", names[k], mt[k], md[k], mT[k], mc[k]);
  printf("CPU per request: socket %+.2f%%, stack %+.2f%% vs engine\n", 100.0 * (mc[1] - mc[0]) / mc[0],
         100.0 * (mc[2] - mc[0]) / mc[0]);
  printf("socket vs engine: decode %+.2f%%  ttft %+.2f ms  request time %+.2f%%\n", -ov_s,
         mt[1] - mt[0], ot_s);
  printf("stack  vs engine: decode %+.2f%%  ttft %+.2f ms  request time %+.2f%%  (targets: "
         "decode >= -3%%, ttft <= +5 ms)\n", -ov_c, mt[2] - mt[0], ot_c);
  printf("\nfast end      gap p10 ms  gap p50 ms  best ttft ms\n");
  for (int k = 0; k < 3; k++) printf("%-10s %12.2f %11.2f %13.2f\n", names[k], g10[k], g50[k], tmin[k]);
  printf("socket vs engine (p10 gap, best ttft): per-token time %+.2f%%  ttft %+.2f ms\n", rb_s,
         tmin[1] - tmin[0]);
  printf("stack  vs engine (p10 gap, best ttft): per-token time %+.2f%%  ttft %+.2f ms\n", rb_c,
         tmin[2] - tmin[0]);
  for (int k = 0; k < 3; k++)
    for (int r = 0; r < rounds; r++) free(res[k][r].gaps);

  wc_close(&s.wc);
  zmq_ctx_term(s.zctx);
  engine_destroy(s.e);
  engine_model_free(s.m);
  gguf_close(s.gf);
  free(s.logits);
  return 0;
}

/* ---- engine-batch: the engine's own batch scaling, the baseline for tenant scaling ------ */

/* B sequences of P prompt tokens, prefilled together, then S greedy decode steps of all B at
 * once: what the worker could do at best with B tenants' streams merged into one pass. */
static int cmd_engine_batch(int argc, char **argv) {
  const char *model = NULL, *out = NULL, *batches = "1,2,4,8,16";
  int threads = 1, P = 20, S = 64;
  for (int i = 2; i + 1 < argc; i += 2) {
    const char *a = argv[i], *v = argv[i + 1];
    if (!strcmp(a, "--model")) model = v;
    else if (!strcmp(a, "--threads")) threads = atoi(v);
    else if (!strcmp(a, "--batches")) batches = v;
    else if (!strcmp(a, "--prompt-tokens")) P = atoi(v);
    else if (!strcmp(a, "--steps")) S = atoi(v);
    else if (!strcmp(a, "--out")) out = v;
    else {
      fprintf(stderr, "stack_bench engine-batch: unknown option '%s'\n", a);
      return 2;
    }
  }
  if (!model || !out || P < 1 || P > 512 || S < 2 || S > SB_MAX_TOKENS) {
    fprintf(stderr, "stack_bench engine-batch: --model and --out required; --prompt-tokens 1..512, "
            "--steps 2..%d\n", SB_MAX_TOKENS);
    return 2;
  }
  char err[512];
  struct gguf_file *gf;
  struct engine_model *m;
  /* Huge pages when the pool has room, as the worker does, so both sides read the weights
   * through the same page size (docs/operations.md#huge-pages). */
  if (gguf_open_pages(model, GGUF_PAGES_AUTO, &gf, err, sizeof err) < 0 ||
      engine_model_load(gf, &m, err, sizeof err) < 0) {
    fprintf(stderr, "stack_bench: %s: %s\n", model, err);
    return 1;
  }
  FILE *f = fopen(out, "w");
  if (!f) return 1;
  fprintf(f, "{\"bench\":\"engine-batch\",\"threads\":%d,\"prompt_tokens\":%d,\"steps\":%d,"
          "\"levels\":[", threads, P, S);
  uint32_t V = m->hp.n_vocab;
  int first = 1;
  for (const char *q = batches; *q;) {
    int B = (int)strtol(q, (char **)&q, 10);
    while (*q == ',') q++;
    if (B < 1 || B > SB_MAX_STREAMS) continue;
    uint32_t per_seq = (uint32_t)(P + S + 1);
    struct engine_config ec = {.n_threads = threads,
                               .kv_blocks = (uint32_t)B * ((per_seq + 15) / 16 + 1) + 4,
                               .max_step_tokens = 512};
    struct engine *e;
    if (engine_create(m, &ec, &e, err, sizeof err) < 0) {
      fprintf(stderr, "stack_bench: engine: %s\n", err);
      return 1;
    }
    float *logits = malloc(sizeof(float) * V * (size_t)B);
    struct kv_seq *seq[SB_MAX_STREAMS];
    struct engine_seq_step st[SB_MAX_STREAMS];
    int32_t prompt[512], tok[SB_MAX_STREAMS];
    for (int i = 0; i < P; i++) prompt[i] = 1 + (int32_t)(((uint32_t)i * 37u) % (V - 1));
    for (int b = 0; b < B; b++) {
      kv_seq_open(engine_kv(e), NULL, &seq[b]);
      st[b] = (struct engine_seq_step){.seq = seq[b], .pos = 0, .tokens = prompt, .n_tokens = (uint32_t)P};
    }
    struct engine_batch batch = {.seqs = st, .n_seqs = (uint32_t)B};
    int rc = engine_forward(e, &batch, logits, err, sizeof err);
    for (int b = 0; b < B; b++) tok[b] = argmax(logits + (size_t)b * V, V, -1);
    double t0 = now_s();
    for (int k = 0; k < S && rc == 0; k++) {
      for (int b = 0; b < B; b++)
        st[b] = (struct engine_seq_step){.seq = seq[b], .pos = (uint32_t)(P + k), .tokens = &tok[b],
                                         .n_tokens = 1};
      rc = engine_forward(e, &batch, logits, err, sizeof err);
      for (int b = 0; b < B; b++) tok[b] = argmax(logits + (size_t)b * V, V, -1);
    }
    double dt = now_s() - t0;
    for (int b = 0; b < B; b++) kv_seq_close(engine_kv(e), seq[b]);
    engine_destroy(e);
    free(logits);
    if (rc < 0) {
      fprintf(stderr, "stack_bench: engine batch %d: %s\n", B, err);
      return 1;
    }
    double tps = (double)B * S / dt;
    printf("engine batch %2d: %7.1f tok/s aggregate, %6.1f per sequence\n", B, tps, tps / B);
    fprintf(f, "%s{\"batch\":%d,\"aggregate_tps\":%.3f}", first ? "" : ",", B, tps);
    first = 0;
  }
  fprintf(f, "]}\n");
  fclose(f);
  engine_model_free(m);
  gguf_close(gf);
  return 0;
}

/* ---- streams: N tenants at once ------------------------------------------------------- */

struct stream_job {
  pthread_barrier_t *go;
  int port;
  const char *key, *body;
  struct stream_result r;
  int rc;
};

static void *stream_thread(void *arg) {
  struct stream_job *j = arg;
  pthread_barrier_wait(j->go);
  j->rc = http_stream(j->port, "/v1/completions", j->key, j->body, &j->r);
  return NULL;
}

static int cmd_streams(int argc, char **argv) {
  const char *keys_file = NULL, *out = NULL, *model_name = "default";
  const char *prompt = "Once upon a time, there was a little girl named Lily.";
  int port = 0, N = 64, ban = 2;
  for (int i = 2; i + 1 < argc; i += 2) {
    const char *a = argv[i], *v = argv[i + 1];
    if (!strcmp(a, "--port")) port = atoi(v);
    else if (!strcmp(a, "--keys")) keys_file = v;
    else if (!strcmp(a, "--max-tokens")) N = atoi(v);
    else if (!strcmp(a, "--prompt")) prompt = v;
    else if (!strcmp(a, "--model-name")) model_name = v;
    else if (!strcmp(a, "--ban-token")) ban = atoi(v);
    else if (!strcmp(a, "--out")) out = v;
    else {
      fprintf(stderr, "stack_bench streams: unknown option '%s'\n", a);
      return 2;
    }
  }
  if (port <= 0 || !keys_file || !out || N < 2 || N > SB_MAX_TOKENS ||
      strlen(prompt) > SB_PROMPT_MAX || strpbrk(prompt, "\"\\")) {
    fprintf(stderr, "stack_bench streams: --port, --keys, --out required; --max-tokens 2..%d\n",
            SB_MAX_TOKENS);
    return 2;
  }
  FILE *kf = fopen(keys_file, "r");
  if (!kf) {
    fprintf(stderr, "stack_bench: cannot read %s\n", keys_file);
    return 1;
  }
  static char keys[SB_MAX_STREAMS][128];
  int n = 0;
  while (n < SB_MAX_STREAMS && fgets(keys[n], sizeof keys[n], kf)) {
    keys[n][strcspn(keys[n], "\r\n")] = 0;
    if (keys[n][0]) n++;
  }
  fclose(kf);
  if (n == 0) {
    fprintf(stderr, "stack_bench: no keys in %s\n", keys_file);
    return 1;
  }
  char body[SB_PROMPT_MAX + 512];
  completion_body(body, sizeof body, model_name, prompt, N, ban);
  static struct stream_job jobs[SB_MAX_STREAMS];
  pthread_t th[SB_MAX_STREAMS];
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, (unsigned)n);
  for (int i = 0; i < n; i++) {
    jobs[i] = (struct stream_job){.go = &go, .port = port, .key = keys[i], .body = body};
    jobs[i].r.max_chunks = N + 8;
    jobs[i].r.chunk_t = calloc((size_t)N + 8, sizeof(double));
    pthread_create(&th[i], NULL, stream_thread, &jobs[i]);
  }
  for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
  pthread_barrier_destroy(&go);

  double *gaps = calloc((size_t)n * (size_t)(N + 8), sizeof(double));
  size_t ng = 0;
  double t0 = 1e300, t1 = 0, tmin_rate = 1e300, tmax_rate = 0, total = 0;
  int failed = 0;
  for (int i = 0; i < n; i++) {
    struct stream_result *r = &jobs[i].r;
    if (jobs[i].rc < 0) {
      fprintf(stderr, "stack_bench: stream %d: %s\n", i, r->err);
      failed++;
      continue;
    }
    int m = r->n_chunks < r->max_chunks ? r->n_chunks : r->max_chunks;
    for (int k = 1; k < m; k++) gaps[ng++] = (r->chunk_t[k] - r->chunk_t[k - 1]) * 1e3;
    if (r->t_first < t0) t0 = r->t_first;
    if (r->t_last > t1) t1 = r->t_last;
  }
  FILE *f = fopen(out, "w");
  if (!f) return 1;
  fprintf(f, "{\"bench\":\"streams\",\"streams\":%d,\"failed\":%d,\"max_tokens\":%d,\"per_stream\":[",
          n, failed, N);
  for (int i = 0, first = 1; i < n; i++) {
    struct stream_result *r = &jobs[i].r;
    if (jobs[i].rc < 0) continue;
    int ntok = r->completion_tokens > 0 ? r->completion_tokens : r->n_chunks;
    double rate = (ntok - 1) / (r->t_last - r->t_first);
    total += ntok - 1;
    if (rate < tmin_rate) tmin_rate = rate;
    if (rate > tmax_rate) tmax_rate = rate;
    fprintf(f, "%s{\"tokens\":%d,\"ttft_ms\":%.3f,\"decode_tps\":%.3f}", first ? "" : ",", ntok,
            (r->t_first - r->t_start) * 1e3, rate);
    first = 0;
  }
  double agg = t1 > t0 ? total / (t1 - t0) : NAN;
  double p50 = percentile(gaps, ng, 50), p99 = percentile(gaps, ng, 99);
  double fair = failed == n ? NAN : tmax_rate / tmin_rate;
  fprintf(f, "],\"aggregate_tps\":%.3f,\"per_stream_min_tps\":%.3f,\"per_stream_max_tps\":%.3f,"
          "\"mean_per_stream_tps\":%.3f,\"itl_p50_ms\":%.3f,\"itl_p99_ms\":%.3f,\"fairness\":%.4f}\n",
          agg, tmin_rate, tmax_rate, n > failed ? agg / (n - failed) : NAN, p50, p99, fair);
  fclose(f);
  printf("streams %2d: aggregate %7.1f tok/s, per stream %6.1f..%6.1f, itl p50 %.2f ms p99 %.2f ms, "
         "fairness %.3f%s\n", n, agg, tmin_rate, tmax_rate, p50, p99, fair,
         failed ? " (SOME STREAMS FAILED)" : "");
  for (int i = 0; i < n; i++) free(jobs[i].r.chunk_t);
  free(gaps);
  return failed ? 1 : 0;
}

int main(int argc, char **argv) {
  realm_log_init("stack_bench", REALM_LOG_WARN, REALM_LOG_TEXT);
  if (argc >= 2 && !strcmp(argv[1], "isolation")) return cmd_isolation(argc, argv);
  if (argc >= 2 && !strcmp(argv[1], "streams")) return cmd_streams(argc, argv);
  if (argc >= 2 && !strcmp(argv[1], "engine-batch")) return cmd_engine_batch(argc, argv);
  fprintf(stderr,
          "usage: stack_bench isolation --model M.gguf --worker EP --port N --key K --out F [...]\n"
          "       stack_bench streams --port N --keys FILE --out F [--max-tokens N]\n"
          "       stack_bench engine-batch --model M.gguf --out F [--threads N] [--batches 1,2,4]\n"
          "(bench/stack/run_stack.py starts the stack and runs both; see docs/benchmarks-stack.md)\n");
  return 2;
}
