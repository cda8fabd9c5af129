/*
 * engine_bench.c — decode speed of the engine against this machine's memory roofline,
 * measured side by side in one run.
 *
 *   engine_bench [--steps N] [--threads "1 2"] [--batches "1 8"] MODEL.gguf...
 *
 * First it measures memory bandwidth: a streaming read (AVX2 loads, summed so it cannot be
 * optimised away) of a 1 GiB buffer, best of 3 passes, with 1 and with the largest thread
 * count asked for. Then for each model, thread count and batch size it opens B sequences,
 * feeds BOS, and times N decode steps (each step: one token for each of the B sequences).
 * Decode at small batch is memory-bound: a step must read every matmul weight once, so the
 * best possible steps/s is bandwidth / weight bytes. The table prints aggregate tokens/s,
 * steps/s, and the fraction of that roofline reached. Numbers, never assertions: the tests
 * do not run this.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"
#include "llama.h"
#include "model.h"
#include "threadpool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct bw_job {
  const float *buf;
  double sums[256];
};

#if defined(__x86_64__)
__attribute__((target("avx2"))) static float sum_range(const float *p, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i + 32 <= n; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
  }
  float out[8];
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}
#else
static float sum_range(const float *p, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; i++) s += p[i];
  return s;
}
#endif

#define BW_CHUNK_FLOATS (1 << 18) /* 1 MiB per task */

static void bw_task(void *arg, int64_t b, int64_t e, int thread) {
  struct bw_job *j = arg;
  for (int64_t c = b; c < e; c++)
    j->sums[thread] += sum_range(j->buf + c * BW_CHUNK_FLOATS, BW_CHUNK_FLOATS);
}

/* Bytes per second of a streaming read with N_THREADS threads, best of 3. */
static double measure_bandwidth(int n_threads, const float *buf, size_t bytes) {
  struct engine_threadpool *pool;
  if (engine_threadpool_create(n_threads, &pool) < 0) return 0;
  struct bw_job j = {.buf = buf};
  int64_t chunks = (int64_t)(bytes / (BW_CHUNK_FLOATS * sizeof(float)));
  double best = 0;
  for (int pass = 0; pass < 3; pass++) {
    double t0 = now_s();
    engine_threadpool_run(pool, chunks, 4, bw_task, &j);
    double dt = now_s() - t0;
    if (bytes / dt > best) best = bytes / dt;
  }
  double s = 0;
  for (int i = 0; i < 256; i++) s += j.sums[i];
  if (s == 12345.678) printf("#"); /* keep the sums alive */
  engine_threadpool_destroy(pool);
  return best;
}

static int parse_list(const char *s, int *out, int max) {
  int n = 0;
  while (*s && n < max) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s) {
      s++;
      continue;
    }
    if (v > 0 && v <= 256) out[n++] = (int)v;
    s = end;
  }
  return n;
}

int main(int argc, char **argv) {
  int steps = 16, threads[8] = {1, 2}, batches[8] = {1, 8}, n_threads = 2, n_batches = 2;
  const char *models[32];
  int n_models = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = atoi(argv[++i]);
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
      n_threads = parse_list(argv[++i], threads, 8);
    else if (strcmp(argv[i], "--batches") == 0 && i + 1 < argc)
      n_batches = parse_list(argv[++i], batches, 8);
    else if (argv[i][0] == '-') {
      fprintf(stderr, "usage: engine_bench [--steps N] [--threads \"1 2\"] [--batches \"1 8\"] MODEL...\n");
      return 2;
    } else if (n_models < 32) models[n_models++] = argv[i];
  }
  if (steps < 1 || n_threads == 0 || n_batches == 0) return 2;

  size_t bw_bytes = (size_t)1 << 30;
  float *buf = aligned_alloc(64, bw_bytes);
  if (!buf) return 1;
  for (size_t i = 0; i < bw_bytes / sizeof(float); i++) buf[i] = (float)(i & 7);
  double bw[8];
  for (int t = 0; t < n_threads; t++) bw[t] = measure_bandwidth(threads[t], buf, bw_bytes);
  free(buf);
  printf("memory bandwidth (streaming read, 1 GiB, best of 3):");
  for (int t = 0; t < n_threads; t++) printf("  %d thread%s %.1f GB/s", threads[t],
                                            threads[t] > 1 ? "s" : "", bw[t] / 1e9);
  printf("\n\n");
  printf("%-34s %8s %7s %5s %10s %9s %9s %9s %8s\n", "model", "weights", "threads", "batch",
         "tokens/s", "steps/s", "roof st/s", "roofline", "b/b1");

  for (int mi = 0; mi < n_models; mi++) {
    char err[512] = "";
    struct gguf_file *f = NULL;
    struct engine_model *m = NULL;
    if (gguf_open(models[mi], &f, err, sizeof err) < 0 ||
        engine_model_load(f, &m, err, sizeof err) < 0) {
      printf("%s: %s\n", models[mi], err);
      gguf_close(f);
      continue;
    }
    const char *base = strrchr(models[mi], '/') ? strrchr(models[mi], '/') + 1 : models[mi];
    float *logits = malloc(sizeof(float) * m->hp.n_vocab * 256);
    for (int ti = 0; ti < n_threads; ti++) {
      double b1_tps = 0;
      for (int bi = 0; bi < n_batches; bi++) {
        int B = batches[bi];
        struct engine *e = NULL;
        struct engine_config cfg = {.n_threads = threads[ti], .max_ctx = (uint32_t)steps + 8,
                                    .kv_blocks = (uint32_t)B * ((steps + 8 + 15) / 16 + 1),
                                    .max_step_tokens = 256};
        if (engine_create(m, &cfg, &e, err, sizeof err) < 0) {
          printf("%s: %s\n", base, err);
          continue;
        }
        struct kv_seq *seqs[256];
        struct engine_seq_step st[256];
        int32_t tok[256];
        for (int s = 0; s < B; s++) {
          kv_seq_open(engine_kv(e), NULL, &seqs[s]);
          tok[s] = (int32_t)m->hp.bos_id;
          st[s] = (struct engine_seq_step){.seq = seqs[s], .pos = 0, .tokens = &tok[s], .n_tokens = 1};
        }
        struct engine_batch b = {.seqs = st, .n_seqs = (uint32_t)B};
        int rc = 0;
        double t0 = 0;
        for (int step = 0; step < steps + 2 && rc == 0; step++) {
          if (step == 2) t0 = now_s(); /* two warm-up steps */
          rc = engine_forward(e, &b, logits, err, sizeof err);
          for (int s = 0; s < B; s++) {
            /* a different token per sequence so they do not stay identical */
            tok[s] = (int32_t)((uint32_t)(tok[s] * 31 + s + 7) % m->hp.n_vocab);
            st[s].pos = kv_seq_len(seqs[s]);
          }
        }
        double dt = now_s() - t0;
        if (rc < 0) printf("%s: %s\n", base, err);
        double sps = steps / dt, tps = sps * B;
        double roof = bw[ti] / (double)m->matmul_bytes;
        if (B == 1) b1_tps = tps;
        printf("%-34s %6.0fMB %7d %5d %10.1f %9.2f %9.2f %8.0f%% %8s\n", base,
               m->matmul_bytes / 1e6, engine_threads(e), B, tps, sps, roof, 100.0 * sps / roof,
               b1_tps > 0 && B > 1 ? (snprintf(err, sizeof err, "%.2fx", tps / b1_tps), err) : "");
        for (int s = 0; s < B; s++) kv_seq_close(engine_kv(e), seqs[s]);
        engine_destroy(e);
      }
    }
    free(logits);
    engine_model_free(m);
    gguf_close(f);
  }
  return 0;
}
