/*
 * kernel_bench.c — single-thread speed of each matmul kernel table on a weight matrix much
 * larger than the caches, in GB/s of weights streamed and in (block × activation) integer
 * dots per second, so a kernel's compute limit can be read next to the memory roofline.
 *
 *   kernel_bench [--rows N] [--cols N] [--reps N]
 *
 * For every table this CPU has (the AMX table included: its Q8_0/Q4_0 batches of 4 or more
 * run on int8 tiles) and every weight type, times RxC · x for batches 1, 4, 8 and 16 (best
 * of --reps passes) and prints weights GB/s (weight bytes / time) and the time of batch 8
 * relative to batch 1 — which is what batched decode pays for its extra tokens.
 * Numbers only; the tests check correctness.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/kernels.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* robust to time slicing on a shared machine */
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t row_bytes_of(enum engine_wtype t, int n) {
  switch (t) {
  case ENGINE_W_F32: return 4 * (size_t)n;
  case ENGINE_W_F16:
  case ENGINE_W_BF16: return 2 * (size_t)n;
  case ENGINE_W_Q8_0: return (size_t)n / 32 * sizeof(struct realm_block_q8_0);
  default: return (size_t)n / 32 * sizeof(struct realm_block_q4_0);
  }
}

int main(int argc, char **argv) {
  int rows = 16384, cols = 2048, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--rows") == 0) rows = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--cols") == 0) cols = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--reps") == 0) reps = atoi(argv[i + 1]);
  }
  if (rows < 1 || cols < 32 || cols % 32 || reps < 1) {
    fprintf(stderr, "usage: kernel_bench [--rows N] [--cols N (multiple of 32)] [--reps N]\n");
    return 2;
  }
  static const char *tnames[ENGINE_W_COUNT] = {"f32", "f16", "bf16", "q8_0", "q4_0"};
  static const int batches[] = {1, 4, 8, 16};
  const int max_b = 16;
  size_t wbytes_max = row_bytes_of(ENGINE_W_F32, cols) * (size_t)rows;
  unsigned char *w = malloc(wbytes_max);
  float *x = malloc(sizeof(float) * cols * max_b), *y = malloc(sizeof(float) * rows * max_b);
  unsigned char *xq = malloc(engine_q8_act_row_bytes(cols) * max_b);
  if (!w || !x || !y || !xq) return 1;
  /* Valid blocks for every type: small random bytes, fp16 scales of 2^-8. */
  for (size_t i = 0; i < wbytes_max; i++) w[i] = (unsigned char)((i * 2654435761u) >> 13) & 0x3f;
  for (int i = 0; i < cols * max_b; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
  for (int b = 0; b < max_b; b++)
    engine_quantize_q8_act(x + (size_t)b * cols, cols, xq + engine_q8_act_row_bytes(cols) * b);

  printf("kernel_bench: %d x %d weights, 1 thread, best of %d\n", rows, cols, reps);
  printf("%-11s %-5s %8s %9s %9s %9s %9s %9s\n", "isa", "type", "MB", "b1 GB/s", "b4 GB/s",
         "b8 GB/s", "b16 GB/s", "b8/b1 t");
  for (int isa = 0; isa < ENGINE_ISA_COUNT; isa++) {
    const struct engine_cpu_kernels *k = engine_cpu_kernels_get((enum engine_isa)isa);
    if (!k) continue;
    for (int t = 0; t < ENGINE_W_COUNT; t++) {
      size_t rb = row_bytes_of((enum engine_wtype)t, cols);
      if (t == ENGINE_W_F32) /* normal floats only: subnormals would time the slow path */
        for (size_t i = 0; i < rb * rows / 4; i++) ((float *)w)[i] = (float)(i % 61) / 30.0f - 1.0f;
      if (t == ENGINE_W_F16 || t == ENGINE_W_BF16)
        for (size_t i = 0; i < rb * rows / 2; i++) {
          float v = (float)(i % 61) / 30.0f - 1.0f;
          ((uint16_t *)w)[i] = t == ENGINE_W_F16 ? realm_f32_to_fp16(v) : realm_f32_to_bf16(v);
        }
      if (t == ENGINE_W_Q8_0 || t == ENGINE_W_Q4_0) /* scales: 2^-8 as fp16 (0x1c00) */
        for (int r = 0; r < rows; r++)
          for (size_t o = 0; o < rb; o += rb / (size_t)(cols / 32)) {
            w[(size_t)r * rb + o] = 0x00;
            w[(size_t)r * rb + o + 1] = 0x1c;
          }
      int quant = engine_wtype_wants_q8((enum engine_wtype)t);
      const void *xin = quant ? (const void *)xq : (const void *)x;
      size_t xs = quant ? engine_q8_act_row_bytes(cols) : sizeof(float) * cols;
      double secs[4];
      for (int bi = 0; bi < 4; bi++) {
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
          double t0 = now_s();
          k->matmul[t](w, rb, cols, 0, rows, xin, xs, batches[bi], y, rows);
          double dt = now_s() - t0;
          if (dt < best) best = dt;
        }
        secs[bi] = best;
      }
      double mb = (double)rb * rows;
      printf("%-11s %-5s %8.1f %9.2f %9.2f %9.2f %9.2f %8.2fx\n", k->isa_name, tnames[t],
             mb / 1e6, mb / secs[0] / 1e9, mb / secs[1] / 1e9, mb / secs[2] / 1e9,
             mb / secs[3] / 1e9, secs[2] / secs[0]);
    }
  }
  if (y[0] == 12345.678f) printf("#"); /* keep the results alive */
  free(w), free(x), free(y), free(xq);
  return 0;
}
