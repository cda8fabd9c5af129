/*
 * realm_test.h — the project's tiny unit-test harness (header only).
 *
 * Tests register themselves with TEST(name) { ... } and run in declaration order. Each test
 * binary prints TAP ("ok N name", "not ok N name", "ok N name # SKIP reason"), which meson
 * reads with protocol: 'tap', and scripts/run-tests.sh sums into the one closing line.
 *
 *   TEST(shm_seal_refuses_write) {
 *     CHECK(fd >= 0);
 *     CHECK_EQ_INT(rc, REALM_E_PERMISSION);
 *     if (!gpu) SKIP("no CUDA device present");
 *   }
 *
 * A failed CHECK records file:line and the expression, marks the test failed and returns from
 * the test function. Run one test with REALM_TEST_ONLY=name.
 */
#ifndef REALM_TEST_H
#define REALM_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*realm_test_fn)(void);

struct realm_test_case {
  const char *name;
  realm_test_fn fn;
};

#define REALM_TEST_MAX 512

struct realm_test_state {
  struct realm_test_case cases[REALM_TEST_MAX];
  int n;
  int failed;            /* current test failed */
  const char *skip_reason; /* current test skipped */
};

static struct realm_test_state realm_test_g;

static inline void realm_test_register(const char *name, realm_test_fn fn) {
  if (realm_test_g.n < REALM_TEST_MAX) {
    realm_test_g.cases[realm_test_g.n].name = name;
    realm_test_g.cases[realm_test_g.n].fn = fn;
    realm_test_g.n++;
  }
}

#define TEST(name)                                                                   \
  static void realm_test_##name(void);                                               \
  __attribute__((constructor)) static void realm_test_reg_##name(void) {             \
    realm_test_register(#name, realm_test_##name);                                   \
  }                                                                                  \
  static void realm_test_##name(void)

#define REALM_TEST_FAIL_(...)                                                        \
  do {                                                                               \
    printf("# %s:%d: ", __FILE__, __LINE__);                                         \
    printf(__VA_ARGS__);                                                             \
    printf("\n");                                                                    \
    realm_test_g.failed = 1;                                                         \
  } while (0)

/* Runs a void helper that CHECKs (shared set-up, a shared block of assertions) and returns
 * from the test when it failed, as the helper's own CHECK could not. */
#define CHECK_HELPER(call)                                                           \
  do {                                                                               \
    call;                                                                            \
    if (realm_test_g.failed) return;                                                 \
  } while (0)

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      REALM_TEST_FAIL_("CHECK(%s) failed", #cond);                                   \
      return;                                                                        \
    }                                                                                \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                           \
  do {                                                                               \
    long long va_ = (long long)(a), vb_ = (long long)(b);                            \
    if (va_ != vb_) {                                                                \
      REALM_TEST_FAIL_("%s == %s failed: %lld != %lld", #a, #b, va_, vb_);           \
      return;                                                                        \
    }                                                                                \
  } while (0)

#define CHECK_STR_EQ(a, b)                                                           \
  do {                                                                               \
    const char *sa_ = (a), *sb_ = (b);                                               \
    if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                     \
      REALM_TEST_FAIL_("%s == %s failed: \"%s\" != \"%s\"", #a, #b,                  \
                       sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                  \
      return;                                                                        \
    }                                                                                \
  } while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                              \
  do {                                                                               \
    const char *h_ = (hay), *n_ = (needle);                                          \
    if (!h_ || !strstr(h_, n_)) {                                                    \
      REALM_TEST_FAIL_("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_);    \
      return;                                                                        \
    }                                                                                \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                        \
  do {                                                                               \
    double da_ = (double)(a), db_ = (double)(b);                                     \
    if (!(fabs(da_ - db_) <= (tol))) {                                               \
      REALM_TEST_FAIL_("|%s - %s| <= %g failed: %.9g vs %.9g", #a, #b, (double)(tol), \
                       da_, db_);                                                    \
      return;                                                                        \
    }                                                                                \
  } while (0)

#define SKIP(reason)                                                                 \
  do {                                                                               \
    realm_test_g.skip_reason = (reason);                                             \
    return;                                                                          \
  } while (0)

/* Directory holding ../shared/models, from the REALM_MODELS_DIR environment variable that
 * meson sets for every test. */
static inline const char *realm_test_models_dir(void) {
  const char *d = getenv("REALM_MODELS_DIR");
  return d ? d : "../shared/models";
}

/* Largest |a[i] - b[i]| over n floats; a NaN on either side counts as 1e30, so a CHECK_NEAR
 * against it fails instead of passing on a NaN comparison. */
static inline double realm_test_max_abs_diff(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (d > m || d != d) m = d != d ? 1e30 : d;
  }
  return m;
}

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  const char *only = getenv("REALM_TEST_ONLY");
  int failures = 0, index = 0;
  setvbuf(stdout, NULL, _IOLBF, 0);
  int count = 0;
  for (int i = 0; i < realm_test_g.n; i++)
    if (!only || strcmp(only, realm_test_g.cases[i].name) == 0) count++;
  printf("1..%d\n", count);
  for (int i = 0; i < realm_test_g.n; i++) {
    const struct realm_test_case *c = &realm_test_g.cases[i];
    if (only && strcmp(only, c->name) != 0) continue;
    realm_test_g.failed = 0;
    realm_test_g.skip_reason = NULL;
    c->fn();
    index++;
    if (realm_test_g.failed) {
      printf("not ok %d %s\n", index, c->name);
      failures++;
    } else if (realm_test_g.skip_reason) {
      printf("ok %d %s # SKIP %s\n", index, c->name, realm_test_g.skip_reason);
    } else {
      printf("ok %d %s\n", index, c->name);
    }
  }
  return failures ? 1 : 0;
}

#endif /* REALM_TEST_H */
