/*
 * bench_cuda.c — bench-cuda: the CUDA backend against its own roofline, in one run.
 *
 *   bench-cuda MODEL.gguf [--device N] [--ctx N] [--steps N] [--prefill N]
 *
 * 1. HBM bandwidth: device-to-device copies of 1 GiB (read + write bytes / time), timed
 *    with CUDA events: the ceiling every decode number below is compared with.
 * 2. The model on the CUDA backend: device memory used by the engine (weights, KV pool,
 *    activations) next to the model's weight bytes.
 * 3. Decode tokens/s at batch 1, 8, 32, 64 (each sequence first given a 32-token prompt,
 *    then --steps steps of one token per sequence): per step the weights are read once and
 *    each sequence's KV once, so the roofline step time is (weight bytes + KV bytes) / HBM
 *    bandwidth; the fraction printed is roofline time / measured time.
 * 4. Prefill tokens/s: one --prefill-token chunk (default 512).
 * Synthesize models with `realmctl model synth --shape tinyllama-1.1b --type f16 -o m.gguf`
 * (or --type q8_0). Prints ratios measured side by side; asserts nothing.
 */
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "gguf.h"
#include "llama.h"
#include "model.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define CK(stmt)                                                                           \
  do {                                                                                     \
    cudaError_t e_ = (stmt);                                                               \
    if (e_ != cudaSuccess) {                                                               \
      fprintf(stderr, "bench-cuda: %s failed: %s (%s:%d)\n", #stmt, cudaGetErrorString(e_), \
              __FILE__, __LINE__);                                                         \
      return -1.0;                                                                         \
    }                                                                                      \
  } while (0)

/* Device copy bandwidth in bytes/s (read + write), or < 0 on error. */
static double hbm_bandwidth(int device) {
  const size_t bytes = (size_t)1 << 30;
  void *a, *b;
  cudaEvent_t t0, t1;
  CK(cudaSetDevice(device));
  CK(cudaMalloc(&a, bytes));
  CK(cudaMalloc(&b, bytes));
  CK(cudaMemset(a, 1, bytes));
  CK(cudaEventCreate(&t0));
  CK(cudaEventCreate(&t1));
  CK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice)); /* warm-up */
  const int iters = 20;
  CK(cudaEventRecord(t0, 0));
  for (int i = 0; i < iters; i++) CK(cudaMemcpyAsync(i % 2 ? a : b, i % 2 ? b : a, bytes,
                                                     cudaMemcpyDeviceToDevice, 0));
  CK(cudaEventRecord(t1, 0));
  CK(cudaEventSynchronize(t1));
  float ms;
  CK(cudaEventElapsedTime(&ms, t0, t1));
  cudaFree(a);
  cudaFree(b);
  cudaEventDestroy(t0);
  cudaEventDestroy(t1);
  return 2.0 * (double)bytes * iters / (ms * 1e-3);
}

int main(int argc, char **argv) {
  const char *path = NULL;
  int device = 0, steps = 32;
  uint32_t ctx = 1024, prefill = 512;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) device = atoi(argv[++i]);
    else if (strcmp(argv[i], "--ctx") == 0 && i + 1 < argc) ctx = (uint32_t)atoi(argv[++i]);
    else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = atoi(argv[++i]);
    else if (strcmp(argv[i], "--prefill") == 0 && i + 1 < argc) prefill = (uint32_t)atoi(argv[++i]);
    else if (argv[i][0] != '-' && !path) path = argv[i];
    else {
      fprintf(stderr, "usage: bench-cuda MODEL.gguf [--device N] [--ctx N] [--steps N] [--prefill N]\n");
      return 2;
    }
  }
  if (!path || steps <= 0 || ctx < 64 || prefill == 0 || prefill > 4096) {
    fprintf(stderr, "usage: bench-cuda MODEL.gguf [--device N] [--ctx N>=64] [--steps N>0] [--prefill 1..4096]\n");
    return 2;
  }
  char why[256], err[512];
  if (engine_backend_cuda_devices(why, sizeof why) <= 0) {
    fprintf(stderr, "bench-cuda: %s\n", why);
    return 1;
  }
  double bw = hbm_bandwidth(device);
  if (bw <= 0) return 1;
  printf("hbm copy bandwidth: %.0f GB/s (read + write)\n", bw / 1e9);

  struct gguf_file *f;
  struct engine_model *m;
  if (gguf_open(path, &f, err, sizeof err) < 0 || engine_model_load(f, &m, err, sizeof err) < 0) {
    fprintf(stderr, "bench-cuda: %s\n", err);
    return 1;
  }
  const struct engine_hparams *hp = &m->hp;
  if (ctx > hp->n_ctx) ctx = hp->n_ctx;
  if (prefill > ctx) prefill = ctx;
  const uint32_t bt = 16, max_b = 64;
  size_t free0, total, free1;
  cudaMemGetInfo(&free0, &total);
  struct engine_config cfg = {.backend = "cuda", .cuda_device = device,
                              .kv_blocks = max_b * ((ctx + bt - 1) / bt) + 8,
                              .kv_block_tokens = bt, .max_step_tokens = prefill > max_b ? prefill : max_b,
                              .max_ctx = ctx};
  struct engine *e;
  if (engine_create(m, &cfg, &e, err, sizeof err) < 0) {
    fprintf(stderr, "bench-cuda: %s\n", err);
    return 1;
  }
  cudaMemGetInfo(&free1, &total);
  printf("model %s: %u layers, dim %u, vocab %u; weight bytes per step %.1f MB\n", path,
         hp->n_layer, hp->dim, hp->n_vocab, m->matmul_bytes / 1e6);
  printf("device %s: engine uses %.1f MB of %.1f GB (backend allocations %.1f MB; weights "
         "%.1f MB, so %.2fx the weights with KV for %u x %u tokens)\n",
         engine_backend_name(e), (free0 - free1) / 1e6, total / 1e9,
         engine_backend_cuda_bytes_allocated(engine_get_backend(e)) / 1e6,
         m->matmul_bytes / 1e6, (double)(free0 - free1) / (double)m->matmul_bytes, max_b, ctx);

  float *logits = malloc(sizeof(float) * hp->n_vocab * (prefill > max_b ? prefill : max_b));
  int32_t *toks = malloc(sizeof(int32_t) * (prefill > 32 ? prefill : 32));
  for (uint32_t i = 0; i < (prefill > 32 ? prefill : 32); i++) toks[i] = (int32_t)(1 + i % (hp->n_vocab - 1));
  struct kv_seq *seqs[64];
  struct engine_seq_step st[64];
  const uint32_t batches[] = {1, 8, 32, 64};
  const double kv_row_bytes = 2.0 * hp->n_layer * hp->kv_dim * sizeof(float);
  printf("%-8s %12s %12s %14s %10s\n", "batch", "tok/s", "step ms", "roofline ms", "fraction");
  for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
    uint32_t B = batches[bi];
    int ok = 1;
    for (uint32_t s = 0; s < B; s++) {
      kv_seq_open(engine_kv(e), NULL, &seqs[s]);
      st[s] = (struct engine_seq_step){.seq = seqs[s], .pos = 0, .tokens = toks, .n_tokens = 32};
    }
    for (uint32_t s = 0; s < B && ok; s++) {
      struct engine_batch b = {.seqs = &st[s], .n_seqs = 1};
      ok = engine_forward(e, &b, logits, err, sizeof err) == 0;
    }
    uint32_t p0 = 32, n_steps = (uint32_t)steps;
    if (p0 + n_steps > ctx) n_steps = ctx - p0;
    double t0 = now_s();
    for (uint32_t k = 0; k < n_steps && ok; k++) {
      for (uint32_t s = 0; s < B; s++)
        st[s] = (struct engine_seq_step){.seq = seqs[s], .pos = p0 + k, .tokens = &toks[k % 32], .n_tokens = 1};
      struct engine_batch b = {.seqs = st, .n_seqs = B};
      ok = engine_forward(e, &b, logits, err, sizeof err) == 0;
    }
    double dt = now_s() - t0;
    for (uint32_t s = 0; s < B; s++) kv_seq_close(engine_kv(e), seqs[s]);
    if (!ok) {
      fprintf(stderr, "bench-cuda: decode batch %u: %s\n", B, err);
      return 1;
    }
    double step = dt / n_steps;
    double kv_bytes = B * kv_row_bytes * (p0 + n_steps / 2.0); /* mean context */
    double roof = ((double)m->matmul_bytes + kv_bytes) / (bw / 2.0); /* reads only: half the copy rate's bytes */
    printf("%-8u %12.1f %12.3f %14.3f %10.2f\n", B, B / step, step * 1e3, roof * 1e3, roof / step);
  }
  /* Prefill: one chunk of PREFILL tokens. */
  struct kv_seq *ps;
  kv_seq_open(engine_kv(e), NULL, &ps);
  struct engine_seq_step pst = {.seq = ps, .pos = 0, .tokens = toks, .n_tokens = prefill};
  struct engine_batch pb = {.seqs = &pst, .n_seqs = 1};
  if (engine_forward(e, &pb, logits, err, sizeof err) != 0) { /* warm-up */
    fprintf(stderr, "bench-cuda: prefill: %s\n", err);
    return 1;
  }
  double t0 = now_s();
  int ok = engine_forward(e, &pb, logits, err, sizeof err) == 0;
  double dt = now_s() - t0;
  kv_seq_close(engine_kv(e), ps);
  if (!ok) {
    fprintf(stderr, "bench-cuda: prefill: %s\n", err);
    return 1;
  }
  printf("prefill %u tokens: %.1f tok/s (%.3f s)\n", prefill, prefill / dt, dt);
  free(logits);
  free(toks);
  engine_destroy(e);
  engine_model_free(m);
  gguf_close(f);
  return 0;
}
