/*
 * bench_worker.c — decode tokens/s through the worker socket vs the in-process engine, side by
 * side in one run (DESIGN.md §9: benchmarks print ratios, tests never time anything).
 *
 *   bench-worker MODEL.gguf [--threads N] [--steps N] [--prompt N] [--rounds N] [--spin-us N]
 *                           [--batch 1|8]
 *
 * For batch 1 and batch 8: the engine alone (engine_forward on B sequences, one token each,
 * after a short prompt) and the same through a realm-worker core running in this process on
 * its own thread, reached by a DEALER over ipc:// with the shm handshake, exactly as a runner
 * does (tokens and logits in the shared region, one Step per iteration), twice: Steps in the
 * step lane (the runner's default, docs/protocol.md §6.2) and Steps on the ZeroMQ socket.
 *
 * The "engine" side calls the worker's own engine (same weights in memory, same KV pool)
 * directly, so the difference is exactly what the socket, the scheduler and the shared
 * region add. The three are measured in rotating order round by round, each round a fresh set
 * of sequences with the same prompt and step count. On a shared machine the speed drifts by
 * several percent within seconds and single rounds swing by ±15 %; measuring the two one
 * after the other once (as the first version did) turned that drift into the "overhead".
 * Hence the defaults: many short rounds (31 of 8 decode steps, every step counted), so a
 * round's three sides run within ~0.2 s of each other and the median has 31 pairs to stand
 * on. Printed per batch size: every round's three and ratios, then the medians and the
 * per-step time each transport adds (median of the rounds' differences), then the "fast
 * end": each side's 90th-percentile round and their ratio.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../tests/unit/worker/wclient.h"
#include "internal.h"
#include "realm/log.h"
#include "worker.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Greedy sampling, the same on all sides. Two passes, the maximum in eight independent lanes,
 * then its first index: the obvious one-pass loop (if v[i] > v[best]) chains every iteration
 * through a load of v[best] and took 0.8 ms for 8 rows of 32000, a tenth of a batch-8 step,
 * which made the benchmark measure that loop as much as the worker. */
static int argmax(const float *v, uint32_t n) {
  float m[8];
  for (int k = 0; k < 8; k++) m[k] = -INFINITY;
  uint32_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) m[k] = v[i + k] > m[k] ? v[i + k] : m[k];
  float best = m[0];
  for (int k = 1; k < 8; k++) best = m[k] > best ? m[k] : best;
  for (; i < n; i++) best = v[i] > best ? v[i] : best;
  for (i = 0; i < n; i++)
    if (v[i] == best) return (int)i;
  return 0; /* every value NaN */
}

static void die(const char *what, const char *err) {
  fprintf(stderr, "bench: %s: %s\n", what, err);
  exit(1);
}

/* The in-process engine is the worker's own engine object, called directly from this thread
 * while the worker thread sleeps in zmq_poll (no Step is in flight between rounds: every
 * socket round waits for its replies and closes its sessions, and those replies order the
 * two threads' memory). Using the same object, not a second copy of the model, matters: the
 * first version's separate engine ran 5-15 % faster or slower than the worker's engine, in
 * either direction from run to run (where each copy of the weights lands in 4 KiB pages,
 * never huge pages for shmem here), which drowned the socket's cost. */
struct eng {
  struct engine *e;
  float *logits;
  uint32_t V;
};

/* One round: B sequences, prompt of P tokens, then S timed decode steps. Returns tokens/s. */
static double eng_round(struct eng *g, uint32_t B, uint32_t P, uint32_t S) {
  char err[512];
  const uint32_t V = g->V;
  struct kv_seq *seq[8];
  struct engine_seq_step st[8];
  int32_t prompt[64], tok[8];
  for (uint32_t i = 0; i < P; i++) prompt[i] = 1 + (int32_t)((i * 37) % (V - 1));
  for (uint32_t b = 0; b < B; b++) {
    if (kv_seq_open(engine_kv(g->e), NULL, &seq[b]) < 0) die("engine", "kv_seq_open failed");
    st[b] = (struct engine_seq_step){.seq = seq[b], .pos = 0, .tokens = prompt, .n_tokens = P};
  }
  struct engine_batch batch = {.seqs = st, .n_seqs = B};
  if (engine_forward(g->e, &batch, g->logits, err, sizeof err) < 0) die("engine", err);
  for (uint32_t b = 0; b < B; b++) tok[b] = argmax(g->logits + (size_t)b * V, V);
  double t0 = now_s();
  for (uint32_t s = 0; s < S; s++) {
    for (uint32_t b = 0; b < B; b++)
      st[b] = (struct engine_seq_step){.seq = seq[b], .pos = P + s, .tokens = &tok[b], .n_tokens = 1};
    if (engine_forward(g->e, &batch, g->logits, err, sizeof err) < 0) die("engine", err);
    for (uint32_t b = 0; b < B; b++) tok[b] = argmax(g->logits + (size_t)b * V, V);
  }
  double dt = now_s() - t0;
  for (uint32_t b = 0; b < B; b++) kv_seq_close(engine_kv(g->e), seq[b]);
  return (double)B * S / dt;
}

static void *run_worker(void *arg) {
  worker_run(arg);
  return NULL;
}

/* The same through the worker's socket and shared memory. Returns tokens/s. */
static double sock_round(struct wclient *c, uint32_t B, uint32_t P, uint32_t S) {
  uint32_t V = c->vocab;
  uint64_t sid[8];
  for (uint32_t b = 0; b < B; b++) sid[b] = wc_session_open(c, P + S + 1, NULL);
  /* Layout: tokens of entry b at 64*b... (prompt area 4 KiB per entry), logits after. */
  const uint64_t tok_area = 4096, log0 = tok_area * 8;
  const uint64_t row = ((uint64_t)V * 4 + 63) & ~(uint64_t)63;
  Realm__V1__StepEntry e[8], *ep[8];
  Realm__V1__Step st;
  Realm__V1__WorkerRequest req;
  wc_step_request(&req, &st, ep, B);
  int32_t tok[8];
  double t0 = 0;
  for (uint32_t s = 0; s <= S; s++) {
    for (uint32_t b = 0; b < B; b++) {
      int32_t *t = (int32_t *)(c->base + tok_area * b);
      uint32_t n = 1;
      if (s == 0) {
        for (uint32_t i = 0; i < P; i++) t[i] = 1 + (int32_t)((i * 37) % (V - 1));
        n = P;
      } else {
        t[0] = tok[b];
      }
      realm__v1__step_entry__init(&e[b]);
      e[b].session_id = sid[b];
      e[b].n_tokens = n;
      e[b].tokens_offset = tok_area * b;
      e[b].n_logits = 1;
      e[b].logits_offset = log0 + row * b;
      ep[b] = &e[b];
    }
    Realm__V1__WorkerReply *r = wc_call(c, &req);
    if (!r || r->body_case != REALM__V1__WORKER_REPLY__BODY_STEP) {
      fprintf(stderr, "bench: step failed: %s\n", r && r->error ? r->error->message : c->err);
      exit(1);
    }
    realm_frame_msg_free(&r->base);
    for (uint32_t b = 0; b < B; b++) tok[b] = argmax((float *)(c->base + log0 + row * b), V);
    if (s == 0) t0 = now_s(); /* time decode only, like the engine run */
  }
  double dt = now_s() - t0;
  for (uint32_t b = 0; b < B; b++) wc_session_close(c, sid[b]);
  return (double)B * S / dt;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* v[0..n) (n <= 64) sorted into t. */
static void sorted_copy(const double *v, int n, double *t) {
  memcpy(t, v, sizeof(double) * (size_t)n);
  qsort(t, (size_t)n, sizeof(double), cmp_double);
}

static double median(const double *v, int n) {
  double t[64];
  sorted_copy(v, n, t);
  return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* The value a share q of v lies below (nearest rank). */
static double quantile(const double *v, int n, double q) {
  double t[64];
  sorted_copy(v, n, t);
  return t[(int)(q * (n - 1) + 0.5)];
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL.gguf [--threads N] [--steps N] [--prompt N] [--rounds N] "
            "[--spin-us N] [--batch 1|8]\n",
            argv[0]);
    return 2;
  }
  const char *path = argv[1];
  int threads = 0, rounds = 31, spin_us = -1, only_batch = 0;
  uint32_t S = 8, P = 8;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--threads") == 0) threads = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--steps") == 0) S = (uint32_t)atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--prompt") == 0) P = (uint32_t)atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--rounds") == 0) rounds = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--spin-us") == 0) spin_us = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--batch") == 0) only_batch = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "bench: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (P < 1 || P > 64 || S < 1 || S > 100000 || rounds < 1 || rounds > 64 ||
      (only_batch != 0 && only_batch != 1 && only_batch != 8)) {
    fprintf(stderr, "bench: --prompt must be 1..64, --steps 1..100000, --rounds 1..64, "
            "--batch 1 or 8\n");
    return 2;
  }
  realm_log_init("bench-worker", REALM_LOG_WARN, REALM_LOG_TEXT);

  char dir[] = "/tmp/realm-bench-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char ep[128], err[512];
  snprintf(ep, sizeof ep, "ipc://%s/w.sock", dir);
  struct worker_config cfg;
  worker_config_defaults(&cfg);
  cfg.model_path = path;
  cfg.listen = ep;
  cfg.threads = threads;
  if (spin_us >= 0) cfg.spin_us = spin_us; /* else the worker's default */
  cfg.stats_interval_ms = 0;
  cfg.drain_ms = 0;
  cfg.drain_timeout_ms = 0; /* stop at once when the measurement is done */

  /* One model, one engine: only one side computes at any moment, so they never share the
   * cores or the caches' contents differ. */
  struct worker *w;
  if (worker_create(&cfg, &w, err, sizeof err) < 0) die("worker", err);
  struct eng g = {.e = w->engine, .V = w->n_vocab};
  g.logits = malloc(sizeof(float) * g.V * 8); /* one row per sequence */
  if (!g.logits) die("bench", "out of memory");
  pthread_t th;
  pthread_create(&th, NULL, run_worker, w);
  void *z; /* the runner's kind of context (realm/ipc.h) */
  if (realm_ipc_ctx_new(&z, err, sizeof err) < 0) die("zmq", err);
  /* Two connections: one whose Steps take the step lane, one whose Steps take the socket. */
  struct wclient cl, cz;
  if (wc_open_lane(&cl, z, ep, "bench", "lane", 1, 0, 8u << 20) < 0) die("connect", cl.err);
  if (!cl.lane.base) die("connect", "the worker granted no step lane");
  if (wc_open(&cz, z, ep, "bench", "zmq", 1, 0, 8u << 20) < 0) die("connect", cz.err);

  printf("model %s, threads %d, prompt %u, decode steps %u per round, %d rounds, engine, "
         "step lane and ZeroMQ socket in rotating order\n", path, threads, P, S, rounds);
  uint32_t batches[] = {1, 8};
  double summary[2][7], fast[2][3];
  for (int k = 0; k < 2; k++) {
    uint32_t B = batches[k];
    if (only_batch && (uint32_t)only_batch != B) continue;
    double te[64], tl[64], tz[64], rl[64], rz[64], xl[64], xz[64];
    printf("batch %u\n%-6s %12s %12s %12s %8s %8s %10s %10s\n", B, "round", "engine tok/s",
           "lane tok/s", "zmq tok/s", "lane", "zmq", "lane +us", "zmq +us");
    for (int r = 0; r < rounds; r++) {
      for (int j = 0; j < 3; j++) {
        int which = (r + j) % 3;
        if (which == 0) te[r] = eng_round(&g, B, P, S);
        else if (which == 1) tl[r] = sock_round(&cl, B, P, S);
        else tz[r] = sock_round(&cz, B, P, S);
      }
      rl[r] = tl[r] / te[r];
      rz[r] = tz[r] / te[r];
      xl[r] = 1e6 * B * (1.0 / tl[r] - 1.0 / te[r]);
      xz[r] = 1e6 * B * (1.0 / tz[r] - 1.0 / te[r]);
      printf("%-6d %12.1f %12.1f %12.1f %7.1f%% %7.1f%% %10.0f %10.0f\n", r + 1, te[r], tl[r],
             tz[r], 100.0 * rl[r], 100.0 * rz[r], xl[r], xz[r]);
      fflush(stdout);
    }
    const double *cols[7] = {te, tl, tz, rl, rz, xl, xz};
    for (int j = 0; j < 7; j++) summary[k][j] = median(cols[j], rounds);
    for (int j = 0; j < 3; j++) fast[k][j] = quantile(cols[j], rounds, 0.9);
  }
  printf("medians (lane/zmq: socket tok/s as a share of the engine's; +us: time added per step)\n"
         "%-6s %12s %12s %12s %8s %8s %10s %10s\n", "batch", "engine tok/s", "lane tok/s",
         "zmq tok/s", "lane", "zmq", "lane +us", "zmq +us");
  for (int k = 0; k < 2; k++) {
    if (only_batch && (uint32_t)only_batch != batches[k]) continue;
    printf("%-6u %12.1f %12.1f %12.1f %7.1f%% %7.1f%% %10.0f %10.0f\n", batches[k],
           summary[k][0], summary[k][1], summary[k][2], 100.0 * summary[k][3],
           100.0 * summary[k][4], summary[k][5], summary[k][6]);
  }
  /* Interference from other tenants of the machine only ever slows a round down, so each
   * side's fast rounds show its own cost with the least of it: a second estimate beside the
   * medians of pairs, not a replacement (a cost that hits every step shows in both). */
  printf("fast end (each side's 90th-percentile round)\n%-6s %12s %12s %12s %8s %8s\n", "batch",
         "engine tok/s", "lane tok/s", "zmq tok/s", "lane", "zmq");
  for (int k = 0; k < 2; k++) {
    if (only_batch && (uint32_t)only_batch != batches[k]) continue;
    printf("%-6u %12.1f %12.1f %12.1f %7.1f%% %7.1f%%\n", batches[k], fast[k][0], fast[k][1],
           fast[k][2], 100.0 * fast[k][1] / fast[k][0], 100.0 * fast[k][2] / fast[k][0]);
  }
  wc_close(&cl);
  wc_close(&cz);
  zmq_ctx_term(z);
  worker_stop(w);
  pthread_join(th, NULL);
  worker_destroy(w);
  free(g.logits);
  rmdir(dir);
  return 0;
}
