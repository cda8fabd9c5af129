/*
 * bench_worker.c — decode tokens/s through the worker socket vs the in-process engine, side by
 * side in one run (DESIGN.md §9: benchmarks print ratios, tests never time anything).
 *
 *   bench-worker MODEL.gguf [--threads N] [--steps N] [--prompt N]
 *
 * For batch 1 and batch 8: the engine alone (engine_forward on B sequences, one token each,
 * after a short prompt) and then the same through a realm-worker core running in this
 * process on its own thread, reached by a DEALER over ipc:// with the shm handshake, exactly
 * as a runner does (tokens and logits in the shared region, one Step per iteration). Prints
 * tokens/s for both and the ratio socket/engine. Numbers on a shared machine are noisy:
 * run it a few times.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../tests/unit/worker/wclient.h"
#include "gguf.h"
#include "realm/log.h"
#include "llama.h"
#include "model.h"
#include "worker.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int argmax(const float *v, uint32_t n) {
  int b = 0;
  for (uint32_t i = 1; i < n; i++)
    if (v[i] > v[b]) b = (int)i;
  return b;
}

/* Engine alone: B sequences, prompt of P tokens, then S decode steps. Returns tokens/s. */
static double bench_engine(const char *path, int threads, uint32_t B, uint32_t P, uint32_t S) {
  char err[512];
  struct gguf_file *f;
  struct engine_model *m;
  struct engine *e;
  if (gguf_open(path, &f, err, sizeof err) < 0 || engine_model_load(f, &m, err, sizeof err) < 0) {
    fprintf(stderr, "bench: %s\n", err);
    exit(1);
  }
  uint32_t bt = 16, ctx = P + S + 1;
  struct engine_config ec = {.n_threads = threads, .kv_blocks = B * ((ctx + bt - 1) / bt) + 8,
                             .max_step_tokens = 512};
  if (engine_create(m, &ec, &e, err, sizeof err) < 0) {
    fprintf(stderr, "bench: %s\n", err);
    exit(1);
  }
  uint32_t V = m->hp.n_vocab;
  float *logits = malloc(sizeof(float) * V * B);
  struct kv_seq *seq[8];
  struct engine_seq_step st[8];
  int32_t prompt[64], tok[8];
  for (uint32_t i = 0; i < P; i++) prompt[i] = 1 + (int32_t)((i * 37) % (V - 1));
  for (uint32_t b = 0; b < B; b++) {
    kv_seq_open(engine_kv(e), NULL, &seq[b]);
    st[b] = (struct engine_seq_step){.seq = seq[b], .pos = 0, .tokens = prompt, .n_tokens = P};
  }
  struct engine_batch batch = {.seqs = st, .n_seqs = B};
  if (engine_forward(e, &batch, logits, err, sizeof err) < 0) {
    fprintf(stderr, "bench: %s\n", err);
    exit(1);
  }
  for (uint32_t b = 0; b < B; b++) tok[b] = argmax(logits + (size_t)b * V, V);
  double t0 = now_s();
  for (uint32_t s = 0; s < S; s++) {
    for (uint32_t b = 0; b < B; b++)
      st[b] = (struct engine_seq_step){.seq = seq[b], .pos = P + s, .tokens = &tok[b], .n_tokens = 1};
    engine_forward(e, &batch, logits, err, sizeof err);
    for (uint32_t b = 0; b < B; b++) tok[b] = argmax(logits + (size_t)b * V, V);
  }
  double dt = now_s() - t0;
  for (uint32_t b = 0; b < B; b++) kv_seq_close(engine_kv(e), seq[b]);
  engine_destroy(e);
  engine_model_free(m);
  gguf_close(f);
  free(logits);
  return (double)B * S / dt;
}

static void *run_worker(void *arg) {
  worker_run(arg);
  return NULL;
}

/* The same through the worker's socket and shared memory. Returns tokens/s. */
static double bench_socket(struct wclient *c, uint32_t B, uint32_t P, uint32_t S) {
  uint32_t V = c->vocab;
  uint64_t sid[8];
  for (uint32_t b = 0; b < B; b++) sid[b] = wc_session_open(c, P + S + 1, NULL);
  /* Layout: tokens of entry b at 64*b... (prompt area 4 KiB per entry), logits after. */
  const uint64_t tok_area = 4096, log0 = tok_area * 8;
  const uint64_t row = ((uint64_t)V * 4 + 63) & ~(uint64_t)63;
  Realm__V1__StepEntry e[8], *ep[8];
  Realm__V1__Step st;
  realm__v1__step__init(&st);
  st.n_entries = B;
  st.entries = ep;
  Realm__V1__WorkerRequest req;
  realm__v1__worker_request__init(&req);
  req.body_case = REALM__V1__WORKER_REQUEST__BODY_STEP;
  req.step = &st;
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
  for (uint32_t b = 0; b < B; b++) {
    Realm__V1__SessionClose sc;
    realm__v1__session_close__init(&sc);
    sc.session_id = sid[b];
    Realm__V1__WorkerRequest cr;
    realm__v1__worker_request__init(&cr);
    cr.body_case = REALM__V1__WORKER_REQUEST__BODY_SESSION_CLOSE;
    cr.session_close = &sc;
    Realm__V1__WorkerReply *r = wc_call(c, &cr);
    realm_frame_msg_free(r ? &r->base : NULL);
  }
  return (double)B * S / dt;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL.gguf [--threads N] [--steps N] [--prompt N]\n", argv[0]);
    return 2;
  }
  const char *path = argv[1];
  int threads = 0;
  uint32_t S = 32, P = 8;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--threads") == 0) threads = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--steps") == 0) S = (uint32_t)atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--prompt") == 0) P = (uint32_t)atoi(argv[i + 1]);
  }
  if (P < 1 || P > 64 || S < 1) {
    fprintf(stderr, "bench: --prompt must be 1..64 and --steps >= 1\n");
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
  cfg.stats_interval_ms = 0;
  cfg.drain_ms = 0;

  printf("model %s, threads %d, prompt %u, decode steps %u\n", path, threads, P, S);
  printf("%-6s %14s %14s %8s\n", "batch", "engine tok/s", "socket tok/s", "ratio");
  uint32_t batches[] = {1, 8};
  for (int k = 0; k < 2; k++) {
    uint32_t B = batches[k];
    /* Engine first, then the worker, one at a time, so they never share the cores. */
    double te = bench_engine(path, threads, B, P, S);
    struct worker *w;
    if (worker_create(&cfg, &w, err, sizeof err) < 0) {
      fprintf(stderr, "bench: %s\n", err);
      return 1;
    }
    pthread_t th;
    pthread_create(&th, NULL, run_worker, w);
    void *z = zmq_ctx_new();
    struct wclient c;
    if (wc_open(&c, z, ep, "bench", "r0", 1, 0, 8u << 20) < 0) {
      fprintf(stderr, "bench: connect: %s\n", c.err);
      return 1;
    }
    double ts = bench_socket(&c, B, P, S);
    wc_close(&c);
    zmq_ctx_term(z);
    worker_stop(w);
    pthread_join(th, NULL);
    worker_destroy(w);
    printf("%-6u %14.1f %14.1f %7.1f%%\n", B, te, ts, 100.0 * ts / te);
    fflush(stdout);
  }
  rmdir(dir);
  return 0;
}
