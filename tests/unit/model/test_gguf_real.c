/*
 * test_gguf_real.c — the GGUF reader against the real files in shared/models: the v3 F32 and
 * v2 Q8_0 stories260K models must load with the documented shapes and types, the v1 file must
 * be refused with a message naming the version, and the four vocabulary-only files must parse
 * with their documented vocabulary sizes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "fp16.h"
#include "gguf.h"
#include "realm/error.h"
#include "realm_test.h"

static const char *model_path(const char *rel) {
  static char buf[4096];
  snprintf(buf, sizeof buf, "%s/%s", realm_test_models_dir(), rel);
  return buf;
}

#define OPEN_OR_SKIP(rel, fp)                                                     \
  do {                                                                            \
    char err_[256] = "";                                                          \
    const char *p_ = model_path(rel);                                             \
    if (access(p_, R_OK) != 0) SKIP("model file not present");           \
    int rc_ = gguf_open(p_, &(fp), err_, sizeof err_);                            \
    if (rc_ != 0) printf("# %s\n", err_);                                         \
    CHECK_EQ_INT(rc_, 0);                                                         \
  } while (0)

TEST(stories260k_v3_f32_loads) {
  struct gguf_file *f = NULL;
  OPEN_OR_SKIP("gguf/stories260K.gguf", f);
  CHECK_EQ_INT(gguf_version(f), 3);
  CHECK_EQ_INT(gguf_tensor_count(f), 48);
  CHECK_EQ_INT(gguf_alignment(f), 32);
  CHECK_EQ_INT(gguf_mapped_size(f), 1185376);
  for (uint64_t i = 0; i < gguf_tensor_count(f); i++)
    CHECK_EQ_INT(gguf_tensor_at(f, i)->type, GGML_TYPE_F32);
  const struct gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
  CHECK(t != NULL);
  CHECK_EQ_INT(t->n_dims, 2);
  CHECK_EQ_INT(t->ne[0], 64);
  CHECK_EQ_INT(t->ne[1], 512);
  CHECK_EQ_INT(t->nbytes, 64 * 512 * 4);
  t = gguf_find_tensor(f, "blk.4.ffn_down.weight");
  CHECK(t != NULL);
  CHECK_EQ_INT(t->ne[0], 172);
  CHECK_EQ_INT(t->ne[1], 64);
  t = gguf_find_tensor(f, "blk.0.attn_k.weight");
  CHECK(t != NULL);
  CHECK_EQ_INT(t->ne[0], 64);
  CHECK_EQ_INT(t->ne[1], 32); /* 4 kv heads x head_dim 8 */
  CHECK(gguf_find_tensor(f, "blk.5.attn_q.weight") == NULL);
  /* output.weight equals token_embd.weight bit for bit (README). */
  const struct gguf_tensor *out = gguf_find_tensor(f, "output.weight");
  const struct gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
  CHECK(out && emb && out->nbytes == emb->nbytes);
  CHECK(memcmp(out->data, emb->data, out->nbytes) == 0);
  uint32_t u;
  CHECK_EQ_INT(gguf_get_u32(f, "llama.embedding_length", &u), 0);
  CHECK_EQ_INT(u, 64);
  CHECK_EQ_INT(gguf_get_u32(f, "llama.block_count", &u), 0);
  CHECK_EQ_INT(u, 5);
  CHECK_EQ_INT(gguf_get_u32(f, "llama.attention.head_count_kv", &u), 0);
  CHECK_EQ_INT(u, 4);
  CHECK_EQ_INT(gguf_get_u32(f, "no.such.key", &u), REALM_E_NOT_FOUND);
  struct gguf_str s;
  CHECK_EQ_INT(gguf_get_str(f, "general.architecture", &s), 0);
  CHECK(s.len == 5 && memcmp(s.data, "llama", 5) == 0);
  CHECK_EQ_INT(gguf_get_u32(f, "general.architecture", &u), REALM_E_BAD_MODEL);
  const struct gguf_kv *tok = NULL;
  CHECK_EQ_INT(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VALUE_STRING, &tok), 0);
  CHECK_EQ_INT(tok->v.arr.count, 512);
  s = gguf_arr_str(tok, 1);
  CHECK(s.len == 3 && memcmp(s.data, "<s>", 3) == 0);
  s = gguf_arr_str(tok, 3);
  CHECK(s.len == 6 && memcmp(s.data, "<0x00>", 6) == 0);
  CHECK_EQ_INT(gguf_arr_str(tok, 512).len, 0);
  /* Tensor data lies inside the mapping (I1). */
  const uint8_t *base = gguf_mapped_base(f);
  for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
    const struct gguf_tensor *x = gguf_tensor_at(f, i);
    CHECK((const uint8_t *)x->data >= base);
    CHECK((const uint8_t *)x->data + x->nbytes <= base + gguf_mapped_size(f));
  }
  /* Norm weights of a trained model are finite and mostly positive. */
  const struct gguf_tensor *norm = gguf_find_tensor(f, "output_norm.weight");
  CHECK(norm && norm->ne[0] == 64);
  float w0;
  memcpy(&w0, norm->data, 4);
  CHECK(w0 > 0.0f && w0 < 100.0f);
  gguf_close(f);
}

TEST(stories260k_memfd_is_sealed) {
  struct gguf_file *f = NULL;
  OPEN_OR_SKIP("gguf/stories260K.gguf", f);
  int fd = gguf_memfd(f);
  CHECK(fd >= 0);
  int seals = fcntl(fd, F_GET_SEALS);
  CHECK(seals & F_SEAL_WRITE);
  CHECK(seals & F_SEAL_SHRINK);
  CHECK(seals & F_SEAL_GROW);
  CHECK(seals & F_SEAL_SEAL);
  CHECK(pwrite(fd, "x", 1, 0) < 0);
  CHECK(ftruncate(fd, 10) < 0);
  gguf_close(f);
}

TEST(stories260k_v2_q8_0_loads) {
  struct gguf_file *f = NULL;
  OPEN_OR_SKIP("gguf/tinyllamas-stories-260k-q8_0.gguf", f);
  CHECK_EQ_INT(gguf_version(f), 2);
  CHECK_EQ_INT(gguf_tensor_count(f), 48);
  int n_q8 = 0, n_f32 = 0;
  for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
    const struct gguf_tensor *t = gguf_tensor_at(f, i);
    if (t->type == GGML_TYPE_Q8_0) n_q8++;
    if (t->type == GGML_TYPE_F32) {
      n_f32++;
      CHECK_EQ_INT(t->n_dims, 1);
    }
  }
  CHECK_EQ_INT(n_q8, 37);
  CHECK_EQ_INT(n_f32, 11);
  /* Accepted on purpose: rows of 172 are not a multiple of 32, the flattened tensor is. */
  const struct gguf_tensor *t = gguf_find_tensor(f, "blk.0.ffn_down.weight");
  CHECK(t != NULL);
  CHECK_EQ_INT(t->type, GGML_TYPE_Q8_0);
  CHECK_EQ_INT(t->ne[0], 172);
  CHECK_EQ_INT(t->nbytes, 172 * 64 / 32 * 34);
  /* The first block's fp16 scale is a sane positive number. */
  uint16_t h;
  memcpy(&h, t->data, 2);
  float d = realm_fp16_to_f32(h);
  CHECK(d > 0.0f && d < 1.0f);
  gguf_close(f);
}

TEST(v1_file_refused_with_version_message) {
  const char *p = model_path("gguf/tinyllamas-stories-260k-f32.v1.gguf");
  if (access(p, R_OK) != 0) SKIP("v1 model file not present");
  struct gguf_file *f = (struct gguf_file *)0x1; /* must stay untouched on failure */
  char err[256] = "";
  CHECK_EQ_INT(gguf_open(p, &f, err, sizeof err), REALM_E_BAD_MODEL);
  CHECK(f == (struct gguf_file *)0x1);
  CHECK_STR_CONTAINS(err, "version 1");
  CHECK_STR_CONTAINS(err, "not supported");
}

TEST(missing_file_is_not_found) {
  struct gguf_file *f = NULL;
  char err[256] = "";
  CHECK_EQ_INT(gguf_open("/nonexistent/realm/model.gguf", &f, err, sizeof err),
               REALM_E_NOT_FOUND);
  CHECK(f == NULL);
  CHECK_STR_CONTAINS(err, "model.gguf");
}

static void check_vocab(const char *rel, uint64_t n_vocab, const char *model) {
  struct gguf_file *f = NULL;
  OPEN_OR_SKIP(rel, f);
  CHECK_EQ_INT(gguf_version(f), 3);
  CHECK_EQ_INT(gguf_tensor_count(f), 0);
  const struct gguf_kv *tok = NULL;
  CHECK_EQ_INT(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VALUE_STRING, &tok), 0);
  CHECK_EQ_INT(tok->v.arr.count, n_vocab);
  struct gguf_str s;
  CHECK_EQ_INT(gguf_get_str(f, "tokenizer.ggml.model", &s), 0);
  CHECK(s.len == strlen(model) && memcmp(s.data, model, s.len) == 0);
  /* Every token string lies inside the mapping. */
  const char *base = gguf_mapped_base(f);
  for (uint64_t i = 0; i < tok->v.arr.count; i++) {
    struct gguf_str t = gguf_arr_str(tok, i);
    CHECK(t.data >= base && t.data + t.len <= base + gguf_mapped_size(f));
  }
  gguf_close(f);
}

TEST(vocab_llama_spm_parses) { check_vocab("vocab/ggml-vocab-llama-spm.gguf", 32000, "llama"); }
TEST(vocab_phi3_parses) { check_vocab("vocab/ggml-vocab-phi-3.gguf", 32064, "llama"); }
TEST(vocab_gpt2_parses) { check_vocab("vocab/ggml-vocab-gpt-2.gguf", 50257, "gpt2"); }
TEST(vocab_deepseek_parses) {
  check_vocab("vocab/ggml-vocab-deepseek-llm.gguf", 102400, "gpt2");
}

TEST(type_table) {
  CHECK_STR_EQ(ggml_type_name(GGML_TYPE_Q8_0), "q8_0");
  CHECK_STR_EQ(ggml_type_name(GGML_TYPE_BF16), "bf16");
  CHECK_STR_EQ(ggml_type_name((enum ggml_type)99), "unknown");
  CHECK_EQ_INT(ggml_type_block_elems(GGML_TYPE_Q4_0), 32);
  CHECK_EQ_INT(ggml_type_block_bytes(GGML_TYPE_Q4_0), 18);
  CHECK_EQ_INT(ggml_type_block_bytes(GGML_TYPE_Q8_0), 34);
  CHECK_EQ_INT(ggml_type_block_bytes(GGML_TYPE_F16), 2);
  CHECK_EQ_INT(ggml_type_block_elems((enum ggml_type)99), 0);
}

TEST(fp16_round_trip_exhaustive) {
  for (uint32_t h = 0; h < 65536; h++) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaNs: payload may be quieted */
    CHECK_EQ_INT(realm_f32_to_fp16(realm_fp16_to_f32((uint16_t)h)), h);
  }
  CHECK_EQ_INT(realm_f32_to_fp16(65520.0f), 0x7c00);  /* rounds to infinity */
  CHECK_EQ_INT(realm_f32_to_fp16(1.0f + 1.0f / 2048), 0x3c00); /* tie to even (down) */
  CHECK_EQ_INT(realm_f32_to_fp16(1.0f + 3.0f / 2048), 0x3c02); /* tie to even (up) */
  CHECK_EQ_INT(realm_f32_to_bf16(1.0f), 0x3f80);
  CHECK_EQ_INT(realm_f32_to_bf16(1.0f + 1.0f / 256), 0x3f80);  /* tie to even (down) */
  CHECK_EQ_INT(realm_f32_to_bf16(1.0f + 3.0f / 256), 0x3f82);  /* tie to even (up) */
  CHECK_NEAR(realm_bf16_to_f32(realm_f32_to_bf16(3.14159f)), 3.140625, 0);
  CHECK(realm_fp16_to_f32(realm_f32_to_fp16(__builtin_nanf(""))) !=
        realm_fp16_to_f32(realm_f32_to_fp16(__builtin_nanf(""))));
}

/* Truncations of the real v3 file through its whole header and into the data: all refused. */
TEST(stories260k_truncated_prefixes_refused) {
  struct gguf_file *f = NULL;
  OPEN_OR_SKIP("gguf/stories260K.gguf", f);
  size_t size = gguf_mapped_size(f), hdr = (size_t)gguf_data_offset(f);
  unsigned char *copy = malloc(size);
  CHECK(copy != NULL);
  memcpy(copy, gguf_mapped_base(f), size);
  gguf_close(f);
  int refused = 0;
  /* Stride 3 keeps this at ~5k opens; the last lengths probe the end of the last tensor. */
  for (size_t len = 0; len < hdr + 64; len += 3) {
    struct gguf_file *g = NULL;
    char err[256] = "";
    int rc = gguf_open_buffer(copy, len, &g, err, sizeof err);
    if (rc != REALM_E_BAD_MODEL) {
      printf("# prefix %zu: rc %d\n", len, rc);
      free(copy);
      CHECK_EQ_INT(rc, REALM_E_BAD_MODEL);
    }
    refused++;
  }
  struct gguf_file *g = NULL;
  char err[256] = "";
  CHECK_EQ_INT(gguf_open_buffer(copy, size - 1, &g, err, sizeof err), REALM_E_BAD_MODEL);
  CHECK_STR_CONTAINS(err, "runs past the end");
  CHECK_EQ_INT(gguf_open_buffer(copy, size, &g, err, sizeof err), 0);
  gguf_close(g);
  free(copy);
  CHECK(refused > 4000);
}

/* ---- page size of the weights memfd (gguf_open_pages) ---- */

/* HugePages_Free of /proc/meminfo (2 MiB pages), or -1 when it cannot be read. */
static long huge_pages_free(void) {
  FILE *fp = fopen("/proc/meminfo", "r");
  if (!fp) return -1;
  char line[256];
  long n = -1;
  while (fgets(line, sizeof line, fp))
    if (sscanf(line, "HugePages_Free: %ld", &n) == 1) break;
  fclose(fp);
  return n;
}

/* Whatever page size AUTO gets, the bytes and the parse are the same as with small pages. */
TEST(auto_pages_give_the_same_bytes_as_small_pages) {
  const char *p = model_path("gguf/stories260K.gguf");
  if (access(p, R_OK) != 0) SKIP("model file not present");
  struct gguf_file *a = NULL, *s = NULL;
  char err[512] = "";
  CHECK_EQ_INT(gguf_open_pages(p, GGUF_PAGES_SMALL, &s, err, sizeof err), 0);
  CHECK_EQ_INT(gguf_open_pages(p, GGUF_PAGES_AUTO, &a, err, sizeof err), 0);
  CHECK(!gguf_huge_pages(s));
  printf("# auto got %s pages\n", gguf_huge_pages(a) ? "2 MiB" : "4 KiB");
  CHECK_EQ_INT(gguf_mapped_size(a), gguf_mapped_size(s));
  CHECK(memcmp(gguf_mapped_base(a), gguf_mapped_base(s), gguf_mapped_size(s)) == 0);
  CHECK_EQ_INT(gguf_tensor_count(a), gguf_tensor_count(s));
  int seals = fcntl(gguf_memfd(a), F_GET_SEALS);
  CHECK((seals & (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) ==
        (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
  gguf_close(a);
  gguf_close(s);
}

/* HUGE either gets sealed 2 MiB pages or, with an empty pool (the default on most machines,
 * and on CI), fails with a message that tells the operator which knob to turn. */
TEST(huge_pages_are_sealed_or_refused_naming_the_pool) {
  const char *p = model_path("gguf/stories260K.gguf");
  if (access(p, R_OK) != 0) SKIP("model file not present");
  long free_before = huge_pages_free();
  struct gguf_file *f = NULL;
  char err[512] = "";
  int rc = gguf_open_pages(p, GGUF_PAGES_HUGE, &f, err, sizeof err);
  if (free_before == 0) {
    CHECK(rc < 0);
    CHECK(f == NULL);
    CHECK_STR_CONTAINS(err, "vm.nr_hugepages");
    CHECK_STR_CONTAINS(err, "stories260K.gguf");
  } else if (rc == 0) {
    CHECK(gguf_huge_pages(f));
    int fd = gguf_memfd(f);
    int seals = fcntl(fd, F_GET_SEALS);
    CHECK(seals & F_SEAL_WRITE);
    CHECK(seals & F_SEAL_SEAL);
    CHECK(pwrite(fd, "x", 1, 0) < 0);
    CHECK(ftruncate(fd, 10) < 0);
    CHECK_EQ_INT(gguf_tensor_count(f), 48);
    gguf_close(f);
  } else {
    /* A pool with pages, but not enough of them free right now (other tests hold them). */
    CHECK_STR_CONTAINS(err, "vm.nr_hugepages");
  }
}

TEST(page_names_round_trip) {
  for (int i = GGUF_PAGES_AUTO; i <= GGUF_PAGES_SMALL; i++)
    CHECK_EQ_INT(gguf_pages_from_name(gguf_pages_name((enum gguf_pages)i)), i);
  CHECK_EQ_INT(gguf_pages_from_name("large"), -1);
  CHECK_EQ_INT(gguf_pages_from_name(NULL), -1);
}
