/*
 * test_kv.c — the paged KV cache invariants (kv.c header): exhaustion errors, quotas,
 * blocks returned on close and reused, reused blocks zeroed, rollback via set_len.
 */
#include <stdlib.h>

#include "kv.h"
#include "realm/error.h"
#include "realm_test.h"

static struct kv_cache *make(uint32_t blocks) {
  char err[128];
  struct kv_cache_config c = {.n_layer = 2, .kv_dim = 8, .block_tokens = 4, .n_blocks = blocks,
                              .max_seq_tokens = 64};
  struct kv_cache *kv = NULL;
  kv_cache_create(&c, &kv, err, sizeof err);
  return kv;
}

TEST(exhaustion_then_free_then_reuse) {
  struct kv_cache *kv = make(3);
  CHECK(kv);
  struct kv_seq *a, *b;
  CHECK_EQ_INT(kv_seq_open(kv, NULL, &a), 0);
  CHECK_EQ_INT(kv_seq_open(kv, NULL, &b), 0);
  CHECK_EQ_INT(kv_seq_reserve(kv, a, 9), 0); /* 3 blocks */
  CHECK_EQ_INT(kv_cache_free_blocks(kv), 0);
  CHECK_EQ_INT(kv_seq_reserve(kv, b, 1), REALM_E_NOMEM);
  CHECK_EQ_INT(kv_seq_capacity(kv, b), 0); /* failed call changed nothing */
  CHECK_EQ_INT(kv_seq_reserve(kv, a, 12), 0); /* still fits in 3 blocks */
  CHECK_EQ_INT(kv_seq_reserve(kv, a, 13), REALM_E_NOMEM);
  CHECK_EQ_INT(kv_seq_reserve(kv, a, 65), REALM_E_OUT_OF_RANGE);
  kv_seq_close(kv, a);
  CHECK_EQ_INT(kv_cache_free_blocks(kv), 3);
  CHECK_EQ_INT(kv_seq_reserve(kv, b, 12), 0);
  CHECK_EQ_INT(kv_cache_free_blocks(kv), 0);
  kv_seq_close(kv, b);
  kv_seq_close(kv, NULL);
  kv_cache_destroy(kv);
}

TEST(reused_blocks_carry_no_old_data) {
  struct kv_cache *kv = make(2);
  struct kv_seq *a, *b;
  kv_seq_open(kv, NULL, &a);
  CHECK_EQ_INT(kv_seq_reserve(kv, a, 8), 0);
  for (uint32_t l = 0; l < 2; l++)
    for (uint32_t p = 0; p < 8; p++)
      for (int i = 0; i < 8; i++) {
        kv_k(kv, a, l, p)[i] = 1.0f + (float)p;
        kv_v(kv, a, l, p)[i] = -1.0f - (float)p;
      }
  kv_seq_set_len(kv, a, 8);
  CHECK_NEAR(kv_k(kv, a, 1, 7)[3], 8.0, 0);
  kv_seq_close(kv, a);
  kv_seq_open(kv, NULL, &b);
  CHECK_EQ_INT(kv_seq_reserve(kv, b, 8), 0); /* gets the same two blocks back */
  for (uint32_t l = 0; l < 2; l++)
    for (uint32_t p = 0; p < 8; p++)
      for (int i = 0; i < 8; i++) {
        CHECK(kv_k(kv, b, l, p)[i] == 0.0f);
        CHECK(kv_v(kv, b, l, p)[i] == 0.0f);
      }
  kv_seq_close(kv, b);
  kv_cache_destroy(kv);
}

TEST(k_and_v_rows_do_not_alias) {
  struct kv_cache *kv = make(4);
  struct kv_seq *a, *b;
  kv_seq_open(kv, NULL, &a);
  kv_seq_open(kv, NULL, &b);
  CHECK_EQ_INT(kv_seq_reserve(kv, a, 8), 0);
  CHECK_EQ_INT(kv_seq_reserve(kv, b, 8), 0);
  /* every row of every (seq, layer, pos, K/V) is distinct memory */
  float *rows[2 * 2 * 8 * 2];
  int n = 0;
  struct kv_seq *s[2] = {a, b};
  for (int q = 0; q < 2; q++)
    for (uint32_t l = 0; l < 2; l++)
      for (uint32_t p = 0; p < 8; p++) {
        rows[n++] = kv_k(kv, s[q], l, p);
        rows[n++] = kv_v(kv, s[q], l, p);
      }
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++) {
      long d = (long)(rows[i] - rows[j]);
      CHECK(d >= 8 || d <= -8);
    }
  kv_seq_close(kv, a);
  kv_seq_close(kv, b);
  kv_cache_destroy(kv);
}

TEST(quota_limits_a_group_of_sequences) {
  struct kv_cache *kv = make(8);
  struct kv_quota q = {.max_blocks = 3};
  struct kv_seq *a, *b, *c;
  kv_seq_open(kv, &q, &a);
  kv_seq_open(kv, &q, &b);
  kv_seq_open(kv, NULL, &c);
  CHECK_EQ_INT(kv_seq_reserve(kv, a, 8), 0);
  CHECK_EQ_INT(kv_seq_reserve(kv, b, 5), REALM_E_QUOTA);
  CHECK_EQ_INT(kv_seq_reserve(kv, b, 4), 0);
  CHECK_EQ_INT(q.used_blocks, 3);
  CHECK_EQ_INT(kv_seq_reserve(kv, c, 16), 0); /* not charged to q */
  kv_seq_set_len(kv, a, 3); /* rollback: the second block goes back */
  CHECK_EQ_INT(q.used_blocks, 2);
  CHECK_EQ_INT(kv_seq_len(a), 3);
  CHECK_EQ_INT(kv_seq_reserve(kv, b, 8), 0);
  kv_seq_close(kv, a);
  kv_seq_close(kv, b);
  CHECK_EQ_INT(q.used_blocks, 0);
  kv_seq_close(kv, c);
  CHECK_EQ_INT(kv_cache_free_blocks(kv), 8);
  kv_cache_destroy(kv);
}

TEST(bad_config_is_refused) {
  char err[128] = "";
  struct kv_cache_config c = {.n_layer = 0, .kv_dim = 8, .n_blocks = 4};
  struct kv_cache *kv = NULL;
  CHECK_EQ_INT(kv_cache_create(&c, &kv, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK(kv == NULL);
  CHECK_STR_CONTAINS(err, "n_layer 0");
}
