/*
 * cmd_model.c — `realmctl model inspect|synth`: look inside a GGUF file, or write a synthetic
 * llama-architecture model with random weights and the exact shapes of a real one.
 *
 * inspect runs the same validating reader the worker uses, so "inspect says OK" means "the
 * worker will load it"; a bad file exits 1 with the reader's message. synth exists so that
 * benchmarks and smoke runs can use realistic 110M..7B shapes without downloading weights:
 * weights are seeded uniform noise with the standard deviation of N(0, 0.02) (activations stay
 * finite through many layers), norm weights are 1, and the tokenizer keys come from a real
 * vocabulary file (--vocab) or a byte-level fallback. Tensors are generated and streamed one
 * chunk at a time through the streaming writer, so memory stays small for a 13 GB file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fp16.h"
#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"
#include "realm/error.h"
#include "realm/limits.h"
#include "realmctl.h"

/* ========================================================================================== */
/* inspect                                                                                    */

/* Prints up to MAX bytes of S, escaping anything that is not printable ASCII. */
static void print_escaped(struct gguf_str s, size_t max) {
  size_t n = s.len < max ? (size_t)s.len : max;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s.data[i];
    if (c == '\n') fputs("\\n", stdout);
    else if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c >= 0x20 && c < 0x7f) putchar(c);
    else printf("\\x%02x", c);
  }
  if (s.len > max) printf("...(%" PRIu64 " bytes)", s.len);
}

static void print_scalar(const struct gguf_kv *kv) {
  switch (kv->type) {
  case GGUF_VALUE_UINT8: case GGUF_VALUE_UINT16: case GGUF_VALUE_UINT32: case GGUF_VALUE_UINT64:
    printf("%" PRIu64, kv->v.u64);
    break;
  case GGUF_VALUE_INT8: case GGUF_VALUE_INT16: case GGUF_VALUE_INT32: case GGUF_VALUE_INT64:
    printf("%" PRId64, kv->v.i64);
    break;
  case GGUF_VALUE_FLOAT32: case GGUF_VALUE_FLOAT64: printf("%g", kv->v.f64); break;
  case GGUF_VALUE_BOOL: fputs(kv->v.u64 ? "true" : "false", stdout); break;
  case GGUF_VALUE_STRING:
    putchar('"');
    print_escaped(kv->v.str, 120);
    putchar('"');
    break;
  default: fputs("?", stdout);
  }
}

static void print_value(const struct gguf_kv *kv) {
  if (kv->type != GGUF_VALUE_ARRAY) {
    print_scalar(kv);
    return;
  }
  enum gguf_value_type et = kv->v.arr.elem_type;
  uint64_t n = kv->v.arr.count;
  if (n > 8) { /* long arrays (vocabularies, merges, scores) are summarized */
    printf("[array of %" PRIu64 " %s]", n, gguf_value_type_name(et));
    return;
  }
  putchar('[');
  for (uint64_t i = 0; i < n; i++) {
    if (i) fputs(", ", stdout);
    if (et == GGUF_VALUE_STRING) {
      putchar('"');
      print_escaped(gguf_arr_str(kv, i), 40);
      putchar('"');
    } else if (et == GGUF_VALUE_FLOAT32 || et == GGUF_VALUE_FLOAT64) {
      float f = 0;
      gguf_arr_f32(kv, i, &f);
      printf("%g", f);
    } else {
      int64_t v = 0;
      if (gguf_arr_i64(kv, i, &v) == 0) printf("%" PRId64, v);
      else fputs("?", stdout);
    }
  }
  putchar(']');
}

static void human_bytes(uint64_t b, char *out, size_t len) {
  if (b >= (1ull << 30)) snprintf(out, len, "%.2f GiB", (double)b / (1ull << 30));
  else if (b >= (1ull << 20)) snprintf(out, len, "%.2f MiB", (double)b / (1ull << 20));
  else if (b >= (1ull << 10)) snprintf(out, len, "%.1f KiB", (double)b / (1ull << 10));
  else snprintf(out, len, "%" PRIu64 " B", b);
}

static int cmd_inspect(const char *path) {
  struct gguf_file *f = NULL;
  char err[512] = "";
  int rc = gguf_open(path, &f, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "realmctl model inspect: %s: %s (%s)\n", path, err, realm_err_name(rc));
    return 1;
  }
  char hb[32];
  human_bytes(gguf_mapped_size(f), hb, sizeof hb);
  printf("file:        %s\n", path);
  printf("size:        %zu bytes (%s)\n", gguf_mapped_size(f), hb);
  printf("version:     %u\n", gguf_version(f));
  printf("alignment:   %u\n", gguf_alignment(f));
  printf("data offset: %" PRIu64 "\n", gguf_data_offset(f));
  printf("\nmetadata (%" PRIu64 " keys):\n", gguf_kv_count(f));
  for (uint64_t i = 0; i < gguf_kv_count(f); i++) {
    const struct gguf_kv *kv = gguf_kv_at(f, i);
    fputs("  ", stdout);
    print_escaped(kv->key, 256);
    printf(" (%s) = ", gguf_value_type_name(kv->type));
    print_value(kv);
    putchar('\n');
  }

  /* Hyperparameters are namespaced by architecture ("llama.embedding_length"). */
  struct gguf_str arch_s;
  char arch[64] = "llama";
  if (gguf_get_str(f, "general.architecture", &arch_s) == 0 && arch_s.len < sizeof arch) {
    memcpy(arch, arch_s.data, (size_t)arch_s.len);
    arch[arch_s.len] = '\0';
  }
  static const char *const hparams[] = {
      "context_length", "embedding_length", "block_count", "feed_forward_length",
      "attention.head_count", "attention.head_count_kv", "rope.freq_base",
      "rope.dimension_count", "attention.layer_norm_rms_epsilon"};
  printf("\nhyperparameters (%s):\n", arch);
  for (size_t i = 0; i < sizeof hparams / sizeof hparams[0]; i++) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, hparams[i]);
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    printf("  %-34s ", hparams[i]);
    if (kv) print_value(kv);
    else fputs("(absent)", stdout);
    putchar('\n');
  }
  const struct gguf_kv *tokens = NULL;
  printf("  %-34s ", "vocab_size");
  if (gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VALUE_STRING, &tokens) == 0)
    printf("%" PRIu64 " (tokenizer.ggml.tokens)\n", tokens->v.arr.count);
  else
    printf("(no tokenizer.ggml.tokens)\n");

  printf("\ntensors (%" PRIu64 "):\n", gguf_tensor_count(f));
  printf("  %-32s %-5s %-22s %12s %12s\n", "name", "type", "shape", "offset", "bytes");
  uint64_t total = 0;
  for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
    const struct gguf_tensor *t = gguf_tensor_at(f, i);
    char shape[96];
    int n = snprintf(shape, sizeof shape, "[");
    for (uint32_t d = 0; d < t->n_dims; d++)
      n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%" PRIu64, d ? ", " : "", t->ne[d]);
    snprintf(shape + n, sizeof shape - (size_t)n, "]");
    fputs("  ", stdout);
    print_escaped(t->name, 64);
    int pad = 32 - (int)(t->name.len < 64 ? t->name.len : 64);
    printf("%*s %-5s %-22s %12" PRIu64 " %12" PRIu64 "\n", pad > 0 ? pad : 0, "",
           ggml_type_name(t->type), shape, t->offset, t->nbytes);
    total += t->nbytes;
  }
  human_bytes(total, hb, sizeof hb);
  printf("\ntotal tensor bytes: %" PRIu64 " (%s)\n", total, hb);
  gguf_close(f);
  return 0;
}

/* ========================================================================================== */
/* synth                                                                                      */

struct synth_shape {
  const char *name;
  uint32_t dim, n_layers, n_heads, n_kv_heads, ffn, ctx, vocab;
  float rope_theta, rms_eps;
};

/* Real shapes; tiny is for tests (small vocab keeps the files under a megabyte). */
static const struct synth_shape shapes[] = {
    {"tiny", 64, 2, 4, 2, 176, 256, 512, 10000.0f, 1e-5f},
    {"stories110m", 768, 12, 12, 12, 2048, 1024, 32000, 10000.0f, 1e-5f},
    {"tinyllama-1.1b", 2048, 22, 32, 4, 5632, 2048, 32000, 10000.0f, 1e-5f},
    {"llama2-7b", 4096, 32, 32, 32, 11008, 4096, 32000, 10000.0f, 1e-5f},
};

struct synth_type {
  const char *name;
  enum ggml_type type;
  uint32_t file_type; /* general.file_type as llama.cpp numbers it (LLAMA_FTYPE_*) */
};

static const struct synth_type types[] = {
    {"f32", GGML_TYPE_F32, 0},   {"f16", GGML_TYPE_F16, 1},   {"bf16", GGML_TYPE_BF16, 32},
    {"q8_0", GGML_TYPE_Q8_0, 7}, {"q4_0", GGML_TYPE_Q4_0, 2},
};

/* xoshiro256+ seeded by splitmix64: fast, good enough for weight noise, reproducible. */
struct rng {
  uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream) {
  uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ull);
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(struct rng *r) {
  uint64_t *s = r->s, result = s[0] + s[3], t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

/* Fills X with uniform noise in [-a, a], a = 0.02 * sqrt(3) (std 0.02); two values per draw. */
static void fill_noise(struct rng *r, float *x, size_t n) {
  const float a = 0.02f * 1.7320508f, scale = 2.0f * a / 4294967296.0f;
  size_t i = 0;
  for (; i + 1 < n; i += 2) {
    uint64_t v = rng_next(r);
    x[i] = (float)(uint32_t)v * scale - a;
    x[i + 1] = (float)(uint32_t)(v >> 32) * scale - a;
  }
  if (i < n) x[i] = (float)(uint32_t)rng_next(r) * scale - a;
}

/* Converts N floats (N a multiple of 32 for quantized types) into TYPE's encoding. */
static void encode(enum ggml_type type, const float *x, void *out, size_t n) {
  switch (type) {
  case GGML_TYPE_F32: memcpy(out, x, n * 4); break;
  case GGML_TYPE_F16: {
    uint16_t *h = out;
    for (size_t i = 0; i < n; i++) h[i] = realm_f32_to_fp16(x[i]);
    break;
  }
  case GGML_TYPE_BF16: {
    uint16_t *h = out;
    for (size_t i = 0; i < n; i++) h[i] = realm_f32_to_bf16(x[i]);
    break;
  }
  case GGML_TYPE_Q8_0: quantize_row_q8_0(x, out, (int64_t)n); break;
  case GGML_TYPE_Q4_0: quantize_row_q4_0(x, out, (int64_t)n); break;
  }
}

struct synth_tensor {
  char name[64];
  uint32_t n_dims;
  uint64_t ne[2];
  enum ggml_type type;
  int is_norm;
};

#define SYNTH_CHUNK_ELEMS (1u << 16) /* elements generated per step; a multiple of 32 */

struct progress {
  uint64_t total, done, next_report;
  struct timespec start;
  int enabled;
};

static double elapsed_s(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void progress_add(struct progress *p, uint64_t bytes) {
  p->done += bytes;
  if (!p->enabled || p->done < p->next_report) return;
  double s = elapsed_s(&p->start);
  fprintf(stderr, "  %3d%%  %7.1f MiB  %6.1fs  %.0f MiB/s\n",
          (int)(100.0 * (double)p->done / (double)p->total), (double)p->done / (1 << 20), s,
          s > 0 ? (double)p->done / (1 << 20) / s : 0.0);
  p->next_report += p->total / 10;
}

/* Streams one tensor's generated data through the writer. */
static int synth_stream_tensor(struct gguf_writer *w, const struct synth_tensor *t,
                               struct rng *r, float *fbuf, void *obuf, struct progress *p) {
  uint64_t n = t->ne[0] * t->ne[1];
  uint32_t be = ggml_type_block_elems(t->type), bb = ggml_type_block_bytes(t->type);
  for (uint64_t done = 0; done < n;) {
    size_t k = n - done < SYNTH_CHUNK_ELEMS ? (size_t)(n - done) : SYNTH_CHUNK_ELEMS;
    if (t->is_norm)
      for (size_t i = 0; i < k; i++) fbuf[i] = 1.0f;
    else
      fill_noise(r, fbuf, k);
    encode(t->type, fbuf, obuf, k);
    size_t bytes = k / be * bb;
    int rc = gguf_writer_write(w, obuf, bytes);
    if (rc < 0) return rc;
    progress_add(p, bytes);
    done += k;
  }
  return 0;
}

/* The byte-level fallback vocabulary: <unk>, <s>, </s>, <0x00>..<0xFF>, then unique fillers. */
static int add_fallback_vocab(struct gguf_writer *w, uint32_t n_vocab) {
  char **tokens = calloc(n_vocab, sizeof *tokens);
  float *scores = calloc(n_vocab, sizeof *scores);
  int32_t *ttype = calloc(n_vocab, sizeof *ttype);
  int rc = REALM_E_NOMEM;
  if (!tokens || !scores || !ttype) goto out;
  for (uint32_t i = 0; i < n_vocab; i++) {
    char tmp[32];
    if (i == 0) snprintf(tmp, sizeof tmp, "<unk>");
    else if (i == 1) snprintf(tmp, sizeof tmp, "<s>");
    else if (i == 2) snprintf(tmp, sizeof tmp, "</s>");
    else if (i < 3 + 256) snprintf(tmp, sizeof tmp, "<0x%02X>", i - 3);
    else snprintf(tmp, sizeof tmp, "<filler_%u>", i);
    tokens[i] = strdup(tmp);
    if (!tokens[i]) goto out;
    /* token_type as llama.cpp numbers it: 1 normal, 2 unknown, 3 control, 6 byte. */
    ttype[i] = i == 0 ? 2 : i < 3 ? 3 : i < 3 + 256 ? 6 : 1;
    scores[i] = i < 3 + 256 ? 0.0f : -(float)i;
  }
  rc = gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
  if (rc == 0) rc = gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", (const char *const *)tokens, n_vocab);
  if (rc == 0) rc = gguf_writer_add_f32_arr(w, "tokenizer.ggml.scores", scores, n_vocab);
  if (rc == 0) rc = gguf_writer_add_i32_arr(w, "tokenizer.ggml.token_type", ttype, n_vocab);
  if (rc == 0) rc = gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1);
  if (rc == 0) rc = gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2);
  if (rc == 0) rc = gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 0);
  if (rc == 0) rc = gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true);
  if (rc == 0) rc = gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", false);
out:
  if (tokens)
    for (uint32_t i = 0; i < n_vocab; i++) free(tokens[i]);
  free(tokens);
  free(scores);
  free(ttype);
  return rc;
}

static void synth_usage(FILE *out) {
  fprintf(out,
          "usage: realmctl model synth --shape NAME --type TYPE -o FILE [--vocab VOCAB.gguf] "
          "[--seed N]\n"
          "  shapes: tiny (tests), stories110m, tinyllama-1.1b, llama2-7b\n"
          "  types:  f32, f16, bf16, q8_0, q4_0 (2-D weights; norms stay f32)\n"
          "  --vocab copies tokenizer.ggml.* from a GGUF vocabulary (e.g. "
          "ggml-vocab-llama-spm.gguf);\n"
          "          without it a byte-level fallback vocabulary is generated.\n");
}

static int cmd_synth(int argc, char **argv) {
  const char *shape_name = NULL, *type_name = NULL, *out_path = NULL, *vocab_path = NULL;
  uint64_t seed = 1234;
  static const struct option opts[] = {
      {"shape", required_argument, NULL, 's'}, {"type", required_argument, NULL, 't'},
      {"output", required_argument, NULL, 'o'}, {"vocab", required_argument, NULL, 'v'},
      {"seed", required_argument, NULL, 'S'},  {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
    switch (c) {
    case 's': shape_name = optarg; break;
    case 't': type_name = optarg; break;
    case 'o': out_path = optarg; break;
    case 'v': vocab_path = optarg; break;
    case 'S': {
      char *end;
      errno = 0;
      seed = strtoull(optarg, &end, 0);
      if (errno || *end || !*optarg) {
        fprintf(stderr, "realmctl model synth: --seed '%s' is not a number\n", optarg);
        return 2;
      }
      break;
    }
    case 'h': synth_usage(stdout); return 0;
    default: synth_usage(stderr); return 2;
    }
  }
  if (!shape_name || !type_name || !out_path || optind != argc) {
    synth_usage(stderr);
    return 2;
  }
  const struct synth_shape *sh = NULL;
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    if (strcmp(shapes[i].name, shape_name) == 0) sh = &shapes[i];
  const struct synth_type *ty = NULL;
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (strcmp(types[i].name, type_name) == 0) ty = &types[i];
  if (!sh) {
    fprintf(stderr, "realmctl model synth: unknown shape '%s'\n", shape_name);
    synth_usage(stderr);
    return 2;
  }
  if (!ty) {
    fprintf(stderr, "realmctl model synth: unknown type '%s'\n", type_name);
    synth_usage(stderr);
    return 2;
  }

  char err[512] = "";
  int rc;
  struct gguf_file *vocab = NULL;
  uint32_t n_vocab = sh->vocab;
  if (vocab_path) {
    rc = gguf_open(vocab_path, &vocab, err, sizeof err);
    if (rc < 0) {
      fprintf(stderr, "realmctl model synth: --vocab %s: %s\n", vocab_path, err);
      return 1;
    }
    const struct gguf_kv *tok = NULL;
    if (gguf_get_arr(vocab, "tokenizer.ggml.tokens", GGUF_VALUE_STRING, &tok) < 0 ||
        tok->v.arr.count == 0 || tok->v.arr.count > REALM_MAX_VOCAB) {
      fprintf(stderr, "realmctl model synth: --vocab %s: no usable tokenizer.ggml.tokens "
              "array (1..%u tokens)\n", vocab_path, REALM_MAX_VOCAB);
      gguf_close(vocab);
      return 1;
    }
    n_vocab = (uint32_t)tok->v.arr.count;
  } else {
    fprintf(stderr, "realmctl model synth: no --vocab given: writing a byte-level fallback "
            "vocabulary (<unk>, <s>, </s>, 256 byte tokens, fillers to %u tokens)\n", n_vocab);
  }

  struct gguf_writer *w = NULL;
  rc = gguf_writer_new(&w, err, sizeof err);
  if (rc < 0) {
    gguf_close(vocab);
    fprintf(stderr, "realmctl model synth: %s\n", err);
    return 1;
  }
  char gname[96];
  snprintf(gname, sizeof gname, "realm-synth-%s-%s", sh->name, ty->name);
  uint32_t head_dim = sh->dim / sh->n_heads, kv_dim = head_dim * sh->n_kv_heads;
  rc = gguf_writer_add_str(w, "general.architecture", "llama");
  if (rc == 0) rc = gguf_writer_add_str(w, "general.name", gname);
  if (rc == 0) rc = gguf_writer_add_u32(w, "general.file_type", ty->file_type);
  if (rc == 0) rc = gguf_writer_add_u32(w, "general.quantization_version", 2);
  if (rc == 0) rc = gguf_writer_add_u32(w, "llama.context_length", sh->ctx);
  if (rc == 0) rc = gguf_writer_add_u32(w, "llama.embedding_length", sh->dim);
  if (rc == 0) rc = gguf_writer_add_u32(w, "llama.block_count", sh->n_layers);
  if (rc == 0) rc = gguf_writer_add_u32(w, "llama.feed_forward_length", sh->ffn);
  if (rc == 0) rc = gguf_writer_add_u32(w, "llama.attention.head_count", sh->n_heads);
  if (rc == 0) rc = gguf_writer_add_u32(w, "llama.attention.head_count_kv", sh->n_kv_heads);
  if (rc == 0) rc = gguf_writer_add_u32(w, "llama.rope.dimension_count", head_dim);
  if (rc == 0) rc = gguf_writer_add_f32(w, "llama.rope.freq_base", sh->rope_theta);
  if (rc == 0) rc = gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", sh->rms_eps);
  if (rc == 0) rc = gguf_writer_add_u32(w, "llama.vocab_size", n_vocab);
  if (rc == 0 && vocab) {
    for (uint64_t i = 0; rc == 0 && i < gguf_kv_count(vocab); i++) {
      const struct gguf_kv *kv = gguf_kv_at(vocab, i);
      if (kv->key.len > 10 && memcmp(kv->key.data, "tokenizer.", 10) == 0)
        rc = gguf_writer_add_kv_copy(w, kv);
    }
  } else if (rc == 0) {
    rc = add_fallback_vocab(w, n_vocab);
  }

  /* Tensor list in llama.cpp's order and naming for the llama architecture. */
  size_t n_tensors = 3 + 9 * (size_t)sh->n_layers, nt = 0;
  struct synth_tensor *ts = calloc(n_tensors, sizeof *ts);
  if (!ts) rc = REALM_E_NOMEM;
#define ADD_T(norm, t, a, b, ...)                                                    \
  do {                                                                               \
    struct synth_tensor *x_ = &ts[nt++];                                             \
    snprintf(x_->name, sizeof x_->name, __VA_ARGS__);                                \
    x_->n_dims = (b) ? 2 : 1;                                                        \
    x_->ne[0] = (a);                                                                 \
    x_->ne[1] = (b) ? (b) : 1;                                                       \
    x_->type = (t);                                                                  \
    x_->is_norm = (norm);                                                            \
  } while (0)
  if (rc == 0) {
    enum ggml_type wt = ty->type;
    ADD_T(0, wt, sh->dim, n_vocab, "token_embd.weight");
    for (uint32_t l = 0; l < sh->n_layers; l++) {
      ADD_T(1, GGML_TYPE_F32, sh->dim, 0, "blk.%u.attn_norm.weight", l);
      ADD_T(0, wt, sh->dim, sh->dim, "blk.%u.attn_q.weight", l);
      ADD_T(0, wt, sh->dim, kv_dim, "blk.%u.attn_k.weight", l);
      ADD_T(0, wt, sh->dim, kv_dim, "blk.%u.attn_v.weight", l);
      ADD_T(0, wt, sh->dim, sh->dim, "blk.%u.attn_output.weight", l);
      ADD_T(1, GGML_TYPE_F32, sh->dim, 0, "blk.%u.ffn_norm.weight", l);
      ADD_T(0, wt, sh->dim, sh->ffn, "blk.%u.ffn_gate.weight", l);
      ADD_T(0, wt, sh->ffn, sh->dim, "blk.%u.ffn_down.weight", l);
      ADD_T(0, wt, sh->dim, sh->ffn, "blk.%u.ffn_up.weight", l);
    }
    ADD_T(1, GGML_TYPE_F32, sh->dim, 0, "output_norm.weight");
    ADD_T(0, wt, sh->dim, n_vocab, "output.weight");
  }
#undef ADD_T
  for (size_t i = 0; rc == 0 && i < nt; i++)
    rc = gguf_writer_add_tensor(w, ts[i].name, ts[i].n_dims, ts[i].ne, ts[i].type);
  if (rc < 0) {
    fprintf(stderr, "realmctl model synth: %s\n", err[0] ? err : realm_err_message(rc));
    free(ts);
    gguf_writer_free(w);
    gguf_close(vocab);
    return 1;
  }

  /* Write to a temporary name and rename at the end, so a failed or interrupted run never
   * leaves a truncated file under the requested name. */
  uint64_t file_size = gguf_writer_file_size(w);
  char tmp_path[4096];
  snprintf(tmp_path, sizeof tmp_path, "%s.tmp.%d", out_path, (int)getpid());
  int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    fprintf(stderr, "realmctl model synth: %s: %s\n", tmp_path, strerror(errno));
    free(ts);
    gguf_writer_free(w);
    gguf_close(vocab);
    return 1;
  }
  char hb[32];
  human_bytes(file_size, hb, sizeof hb);
  fprintf(stderr, "realmctl model synth: %s %s, %zu tensors, vocab %u, %s -> %s\n", sh->name,
          ty->name, nt, n_vocab, hb, out_path);
  struct progress prog = {.total = file_size, .enabled = file_size >= (64u << 20)};
  prog.next_report = file_size / 10;
  clock_gettime(CLOCK_MONOTONIC, &prog.start);
  float *fbuf = malloc(SYNTH_CHUNK_ELEMS * sizeof *fbuf);
  void *obuf = malloc(SYNTH_CHUNK_ELEMS * sizeof(float));
  rc = (fbuf && obuf) ? gguf_writer_begin(w, fd) : REALM_E_NOMEM;
  for (size_t i = 0; rc == 0 && i < nt; i++) {
    struct rng r;
    rng_seed(&r, seed, i + 1); /* one stream per tensor: output independent of chunking */
    rc = synth_stream_tensor(w, &ts[i], &r, fbuf, obuf, &prog);
  }
  if (rc == 0) rc = gguf_writer_finish(w);
  if (rc == 0 && fsync(fd) < 0) {
    snprintf(err, sizeof err, "fsync: %s", strerror(errno));
    rc = REALM_E_IO;
  }
  if (close(fd) < 0 && rc == 0) {
    snprintf(err, sizeof err, "close: %s", strerror(errno));
    rc = REALM_E_IO;
  }
  if (rc == 0 && rename(tmp_path, out_path) < 0) {
    snprintf(err, sizeof err, "rename to %s: %s", out_path, strerror(errno));
    rc = REALM_E_IO;
  }
  if (rc < 0) {
    unlink(tmp_path);
    fprintf(stderr, "realmctl model synth: %s\n", err[0] ? err : realm_err_message(rc));
  } else {
    double s = elapsed_s(&prog.start);
    fprintf(stderr, "realmctl model synth: wrote %s (%" PRIu64 " bytes) in %.2fs (%.0f MiB/s)\n",
            out_path, file_size, s, s > 0 ? (double)file_size / (1 << 20) / s : 0.0);
  }
  free(fbuf);
  free(obuf);
  free(ts);
  gguf_writer_free(w);
  gguf_close(vocab);
  return rc < 0 ? 1 : 0;
}

/* ========================================================================================== */

static void model_usage(FILE *out) {
  fprintf(out, "usage: realmctl model inspect FILE\n"
               "       realmctl model synth --shape NAME --type TYPE -o FILE [--vocab V] "
               "[--seed N]\n");
}

int realmctl_cmd_model(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    model_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "inspect") == 0) {
    if (argc != 3 || argv[2][0] == '-') {
      fprintf(stderr, "usage: realmctl model inspect FILE\n");
      return argc == 3 && strcmp(argv[2], "--help") == 0 ? 0 : 2;
    }
    return cmd_inspect(argv[2]);
  }
  if (strcmp(argv[1], "synth") == 0) return cmd_synth(argc - 1, argv + 1);
  fprintf(stderr, "realmctl model: unknown subcommand '%s'\n", argv[1]);
  model_usage(stderr);
  return 2;
}
