/*
 * test_cuda_layout.c — the CPU-side checks of the CUDA backend, which run on any machine
 * with the toolkit (no GPU needed): the device weight layout (repack.c + layout.h, the very
 * functions the get_rows kernel and the CPU-side reference share) reproduces every element
 * of every weight type as the CPU backend reads it; the KV addressing the store_kv and
 * attention kernels use lands on the rows kv.c hands the CPU backend; backend selection
 * reports a missing device clearly and "auto" falls back to the CPU.
 */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "cuda/layout.h"
#include "cuda/repack.h"
#include "cuda_test_util.h"
#include "gguf.h"
#include "kv.h"
#include "llama.h"
#include "realm/error.h"
#include "realm_test.h"

static void check_layout(enum engine_wtype t, uint32_t n_in, uint32_t n_out) {
  struct engine_weight w;
  synth_weight(t, n_in, n_out, &w);
  size_t bytes = cuda_layout_bytes((int)t, n_in, n_out);
  void *dev = malloc(bytes);
  CHECK_EQ_INT(cuda_repack_weight((int)t, w.data, w.row_bytes, n_in, n_out, dev), 0);
  float *row = malloc(sizeof(float) * n_in);
  int bad = 0;
  for (uint32_t r = 0; r < n_out && !bad; r++) {
    engine_weight_get_row(&w, r, row);
    for (uint32_t j = 0; j < n_in; j++)
      if (cuda_layout_get(dev, (int)t, n_in, n_out, r, j) != row[j]) {
        printf("# %s row %u elem %u: device layout %g, cpu %g\n", wtype_names[t], r, j,
               (double)cuda_layout_get(dev, (int)t, n_in, n_out, r, j), (double)row[j]);
        bad = 1;
        break;
      }
  }
  free(row);
  free(dev);
  free((void *)w.data);
  CHECK_EQ_INT(bad, 0);
}

TEST(repacked_layout_matches_cpu_dequant_all_types) {
  for (int t = 0; t < ENGINE_W_COUNT; t++) {
    check_layout((enum engine_wtype)t, 96, 7);
    check_layout((enum engine_wtype)t, 256, 3);
  }
  check_layout(ENGINE_W_F32, 172, 5); /* stories260K's dequantized ffn_down shape */
}

TEST(repack_refuses_unaligned_quant_rows) {
  struct engine_weight w;
  synth_weight(ENGINE_W_F32, 40, 2, &w);
  char dst[1024];
  CHECK_EQ_INT(cuda_repack_weight(CUDA_W_Q8_0, w.data, 34, 40, 2, dst), -1);
  CHECK_EQ_INT(cuda_repack_weight(7, w.data, 34, 64, 2, dst), -1);
  free((void *)w.data);
}

/* cuda_layout_fp16 is the device's scalar fp16 decode: check it against the engine's own
 * dequantization of an F16 weight holding every one of the 65536 bit patterns. */
TEST(fp16_decode_matches_cpu_for_all_bit_patterns) {
  uint16_t *h = malloc(sizeof(uint16_t) * 65536);
  float *f = malloc(sizeof(float) * 65536);
  for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
  struct engine_weight w = {.type = ENGINE_W_F16, .n_in = 65536, .n_out = 1,
                            .row_bytes = 2 * 65536, .data = h};
  engine_weight_get_row(&w, 0, f);
  int bad = 0;
  for (uint32_t i = 0; i < 65536 && !bad; i++) {
    float a = cuda_layout_fp16((uint16_t)i);
    int nan_a = a != a, nan_b = f[i] != f[i];
    if (nan_a != nan_b || (!nan_a && memcmp(&a, &f[i], sizeof a) != 0)) bad = (int)i + 1;
  }
  free(h);
  free(f);
  CHECK_EQ_INT(bad, 0);
}

/* The device kernels find K/V rows by (block table, position) through
 * cuda_layout_kv_offset; on a host pool that must be exactly kv_k/kv_v. */
TEST(kv_offsets_match_kv_rows) {
  char err[256];
  struct kv_cache *kv;
  struct kv_cache_config cfg = {.n_layer = 3, .kv_dim = 12, .block_tokens = 4, .n_blocks = 10};
  CHECK_EQ_INT(kv_cache_create(&cfg, &kv, err, sizeof err), 0);
  struct kv_seq *a, *b;
  CHECK_EQ_INT(kv_seq_open(kv, NULL, &a), 0);
  CHECK_EQ_INT(kv_seq_open(kv, NULL, &b), 0);
  /* Interleave so the tables are not the identity. */
  CHECK_EQ_INT(kv_seq_reserve(kv, a, 3), 0);
  CHECK_EQ_INT(kv_seq_reserve(kv, b, 9), 0);
  CHECK_EQ_INT(kv_seq_reserve(kv, a, 13), 0);
  struct kv_seq *seqs[2] = {a, b};
  int bad = 0;
  for (int s = 0; s < 2; s++) {
    uint32_t nb;
    const uint32_t *blocks = kv_seq_blocks(seqs[s], &nb);
    CHECK(nb * 4 >= kv_seq_capacity(kv, seqs[s]));
    for (uint32_t l = 0; l < 3; l++)
      for (uint32_t p = 0; p < kv_seq_capacity(kv, seqs[s]); p++) {
        float *pool = kv_cache_pool(kv);
        if (pool + cuda_layout_kv_offset(blocks, 4, 3, 12, l, p, 0) != kv_k(kv, seqs[s], l, p) ||
            pool + cuda_layout_kv_offset(blocks, 4, 3, 12, l, p, 1) != kv_v(kv, seqs[s], l, p))
          bad++;
      }
  }
  CHECK_EQ_INT(bad, 0);
  kv_seq_close(kv, a);
  kv_seq_close(kv, b);
  kv_cache_destroy(kv);
}

/* A custom kv_storage sees every pool allocation and every block zeroing. */
struct fake_storage {
  int allocs, frees, zeros;
  size_t zeroed;
};
static void *fs_alloc(void *ctx, size_t bytes) {
  ((struct fake_storage *)ctx)->allocs++;
  return malloc(bytes);
}
static void fs_free(void *ctx, void *p) {
  ((struct fake_storage *)ctx)->frees++;
  free(p);
}
static void fs_zero(void *ctx, void *p, size_t bytes) {
  struct fake_storage *f = ctx;
  f->zeros++;
  f->zeroed += bytes;
  memset(p, 0, bytes);
}

TEST(kv_storage_hooks_own_the_pool_and_zero_reused_blocks) {
  char err[256];
  struct fake_storage fs = {0};
  struct kv_storage st = {.ctx = &fs, .alloc = fs_alloc, .free = fs_free, .zero = fs_zero};
  struct kv_cache_config cfg = {.n_layer = 2, .kv_dim = 8, .block_tokens = 4, .n_blocks = 2,
                                .storage = &st};
  struct kv_cache *kv;
  CHECK_EQ_INT(kv_cache_create(&cfg, &kv, err, sizeof err), 0);
  CHECK_EQ_INT(fs.allocs, 1);
  struct kv_seq *s;
  CHECK_EQ_INT(kv_seq_open(kv, NULL, &s), 0);
  CHECK_EQ_INT(kv_seq_reserve(kv, s, 8), 0);
  CHECK_EQ_INT(fs.zeros, 2);
  CHECK_EQ_INT((int)fs.zeroed, (int)(2 * kv_cache_block_bytes(kv)));
  kv_k(kv, s, 1, 5)[3] = 42.0f; /* dirty a block, give it back, take it again */
  kv_seq_set_len(kv, s, 0);
  CHECK_EQ_INT(kv_seq_reserve(kv, s, 8), 0);
  CHECK_EQ_INT(fs.zeros, 4);
  CHECK(kv_k(kv, s, 1, 5)[3] == 0.0f);
  kv_seq_close(kv, s);
  kv_cache_destroy(kv);
  CHECK_EQ_INT(fs.frees, 1);
}

static int open_model(const char *name, struct gguf_file **f, struct engine_model **m) {
  char path[1024], err[256];
  snprintf(path, sizeof path, "%s/gguf/%s", realm_test_models_dir(), name);
  int rc = gguf_open(path, f, err, sizeof err);
  if (rc < 0) return rc;
  rc = engine_model_load(*f, m, err, sizeof err);
  if (rc < 0) gguf_close(*f);
  return rc;
}

TEST(backend_selection_without_device) {
  char why[256], err[256] = "";
  int n = engine_backend_cuda_devices(why, sizeof why);
  CHECK(engine_backend_cuda_built());
  struct gguf_file *f;
  struct engine_model *m;
  CHECK_EQ_INT(open_model("stories260K.gguf", &f, &m), 0);
  struct engine *e = NULL;
  struct engine_config bad = {.backend = "tpu", .n_threads = 1, .kv_blocks = 8};
  CHECK_EQ_INT(engine_create(m, &bad, &e, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "tpu");
  struct engine_config au = {.backend = "auto", .n_threads = 1, .kv_blocks = 8};
  CHECK_EQ_INT(engine_create(m, &au, &e, err, sizeof err), 0);
  CHECK(strncmp(engine_backend_name(e), n > 0 ? "cuda/" : "cpu/", n > 0 ? 5 : 4) == 0);
  engine_destroy(e);
  if (n == 0) {
    printf("# %s\n", why);
    CHECK_STR_CONTAINS(why, "cudaGetDeviceCount");
    struct engine_config cu = {.backend = "cuda", .n_threads = 1, .kv_blocks = 8};
    e = NULL;
    CHECK_EQ_INT(engine_create(m, &cu, &e, err, sizeof err), REALM_E_UNSUPPORTED);
    CHECK(e == NULL);
    CHECK_STR_CONTAINS(err, "no CUDA device");
  }
  engine_model_free(m);
  gguf_close(f);
}
