/*
 * engine_bench.c — decode speed of the engine against this machine's memory roofline,
 * measured side by side in one run.
 *
 *   engine_bench [--steps N] [--repeat N] [--threads "1 2"] [--batches "1 8"] [--isa NAME]
 *                MODEL.gguf...
 *
 * For each model and thread count it first measures memory bandwidth with that many threads:
 * a streaming read (AVX2 loads of 4 interleaved streams with prefetch, summed so it cannot
 * be optimised away) of a 1 GiB buffer (larger than any L3 here), best of 3 passes. Right after, for each batch size B, it opens
 * B sequences, feeds BOS, and times N decode steps (each step: one token for each of the B
 * sequences), --repeat times, keeping the best. Decode at small batch is memory-bound: a
 * step must read every matmul weight once, so the best possible steps/s is bandwidth /
 * weight bytes. The table prints aggregate tokens/s, steps/s, that roofline, the fraction of
 * it reached, batch-B tokens/s over batch-1 tokens/s, and the spread between the slowest and
 * the fastest repeat (the noise of a shared machine). Measuring the bandwidth next to the
 * decode it is compared with keeps the ratio meaningful when other work comes and goes.
 * --isa pins the CPU kernel table (REALM_ENGINE_ISA: scalar, avx2, avx512, avx512vnni, amx).
 * Models are opened with GGUF_PAGES_AUTO, like the worker: each model's first line says
 * whether its weights got 2 MiB huge pages (vm.nr_hugepages had room) or ordinary pages.
 * Numbers, never assertions: the tests do not run this.
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

/* Sums N floats read as 4 interleaved streams with software prefetch 1 KiB ahead. One core
 * with a plain sequential loop is limited by its outstanding L1 misses and under-reports
 * what the machine delivers to a kernel that streams several weight rows with prefetch (the
 * decode kernels do): a roofline from that figure would let a kernel reach "120 %". */
#if defined(__x86_64__)
__attribute__((target("avx2"))) static float sum_range(const float *p, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  const int64_t q = n / 4;
  const float *s0 = p, *s1 = p + q, *s2 = p + 2 * q, *s3 = p + 3 * q;
  for (int64_t i = 0; i + 16 <= q; i += 16) {
    _mm_prefetch((const char *)(s0 + i) + 1024, _MM_HINT_T0);
    _mm_prefetch((const char *)(s1 + i) + 1024, _MM_HINT_T0);
    _mm_prefetch((const char *)(s2 + i) + 1024, _MM_HINT_T0);
    _mm_prefetch((const char *)(s3 + i) + 1024, _MM_HINT_T0);
    a0 = _mm256_add_ps(a0, _mm256_add_ps(_mm256_load_ps(s0 + i), _mm256_load_ps(s0 + i + 8)));
    a1 = _mm256_add_ps(a1, _mm256_add_ps(_mm256_load_ps(s1 + i), _mm256_load_ps(s1 + i + 8)));
    a2 = _mm256_add_ps(a2, _mm256_add_ps(_mm256_load_ps(s2 + i), _mm256_load_ps(s2 + i + 8)));
    a3 = _mm256_add_ps(a3, _mm256_add_ps(_mm256_load_ps(s3 + i), _mm256_load_ps(s3 + i + 8)));
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
  if (engine_threadpool_create(n_threads, 0, &pool) < 0) return 0;
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

/* Best steps/s of REPEAT timed runs of STEPS decode steps of B sequences; the slowest in
 * ret_worst. 0 on an engine error (printed). */
static double time_decode(const struct engine_model *m, int n_threads, int B, int steps,
                          int repeat, float *logits, double *ret_worst, char *backend,
                          size_t backend_len) {
  char err[512] = "";
  struct engine *e = NULL;
  struct engine_config cfg = {.n_threads = n_threads, .max_ctx = (uint32_t)steps + 8,
                              .kv_blocks = (uint32_t)B * ((steps + 8 + 15) / 16 + 1),
                              .max_step_tokens = 256};
  if (engine_create(m, &cfg, &e, err, sizeof err) < 0) {
    printf("engine_create: %s\n", err);
    return 0;
  }
  snprintf(backend, backend_len, "%s", engine_backend_name(e));
  double best = 0, worst = 1e30;
  for (int rep = 0; rep < repeat; rep++) {
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
    double sps = steps / (now_s() - t0);
    for (int s = 0; s < B; s++) kv_seq_close(engine_kv(e), seqs[s]);
    if (rc < 0) {
      printf("engine_forward: %s\n", err);
      best = 0;
      break;
    }
    if (sps > best) best = sps;
    if (sps < worst) worst = sps;
  }
  engine_destroy(e);
  *ret_worst = worst;
  return best;
}

int main(int argc, char **argv) {
  int steps = 16, repeat = 3, threads[8] = {1, 2}, batches[8] = {1, 8}, n_threads = 2,
      n_batches = 2;
  const char *models[32];
  int n_models = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = atoi(argv[++i]);
    else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) repeat = atoi(argv[++i]);
    else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc)
      setenv("REALM_ENGINE_ISA", argv[++i], 1);
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
      n_threads = parse_list(argv[++i], threads, 8);
    else if (strcmp(argv[i], "--batches") == 0 && i + 1 < argc)
      n_batches = parse_list(argv[++i], batches, 8);
    else if (argv[i][0] == '-') {
      fprintf(stderr, "usage: engine_bench [--steps N] [--repeat N] [--threads \"1 2\"] "
                      "[--batches \"1 8\"] [--isa NAME] MODEL...\n");
      return 2;
    } else if (n_models < 32) models[n_models++] = argv[i];
  }
  if (steps < 1 || repeat < 1 || n_threads == 0 || n_batches == 0) return 2;

  size_t bw_bytes = (size_t)1 << 30;
  float *buf = aligned_alloc(64, bw_bytes);
  if (!buf) return 1;
  for (size_t i = 0; i < bw_bytes / sizeof(float); i++) buf[i] = (float)(i & 7);
  printf("bandwidth: streaming read of 1 GiB with the row's thread count, best of 3, measured\n"
         "right before the row's model; decode: %d steps after 2 warm-up, best of %d\n\n",
         steps, repeat);
  printf("%-26s %-16s %7s %3s %5s %7s %9s %8s %9s %8s %6s %7s\n", "model", "kernels", "weights",
         "thr", "batch", "GB/s", "tokens/s", "steps/s", "roof st/s", "roofline", "b/b1",
         "spread");

  for (int mi = 0; mi < n_models; mi++) {
    char err[512] = "";
    struct gguf_file *f = NULL;
    struct engine_model *m = NULL;
    /* as the worker does: 2 MiB huge pages when the hugetlbfs pool has room, else ordinary
     * pages (fewer TLB misses on the weight stream; it shows in the decode numbers) */
    if (gguf_open_pages(models[mi], GGUF_PAGES_AUTO, &f, err, sizeof err) < 0 ||
        engine_model_load(f, &m, err, sizeof err) < 0) {
      printf("%s: %s\n", models[mi], err);
      gguf_close(f);
      continue;
    }
    const char *base = strrchr(models[mi], '/') ? strrchr(models[mi], '/') + 1 : models[mi];
    printf("%s: weights on %s\n", base,
           gguf_huge_pages(f) ? "2 MiB huge pages" : "ordinary pages (hugetlbfs pool too small)");
    float *logits = malloc(sizeof(float) * m->hp.n_vocab * 256);
    for (int ti = 0; ti < n_threads; ti++) {
      double bw = measure_bandwidth(threads[ti], buf, bw_bytes);
      double roof = bw / (double)m->matmul_bytes, b1_tps = 0;
      for (int bi = 0; bi < n_batches; bi++) {
        int B = batches[bi];
        double worst = 0;
        char backend[64] = "", ratio[16] = "";
        double sps = time_decode(m, threads[ti], B, steps, repeat, logits, &worst, backend,
                                 sizeof backend);
        if (sps <= 0) continue;
        double tps = sps * B;
        if (B == 1) b1_tps = tps;
        if (b1_tps > 0 && B > 1) snprintf(ratio, sizeof ratio, "%.2fx", tps / b1_tps);
        printf("%-26s %-16s %5.0fMB %3d %5d %7.1f %9.1f %8.2f %9.2f %7.0f%% %6s %6.0f%%\n", base,
               backend, m->matmul_bytes / 1e6, threads[ti], B, bw / 1e9, tps, sps, roof,
               100.0 * sps / roof, ratio, 100.0 * (sps - worst) / sps);
        fflush(stdout);
      }
    }
    free(logits);
    engine_model_free(m);
    gguf_close(f);
  }
  free(buf);
  return 0;
}
