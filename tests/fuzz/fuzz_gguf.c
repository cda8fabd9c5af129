/*
 * fuzz_gguf.c — libFuzzer target for the GGUF reader (compute-worker/model/gguf.c).
 *
 * A model file is the one input the worker takes from disk, and an operator may point it at a
 * downloaded file, so the reader must turn any byte string into either a file that satisfies
 * the invariants listed atop gguf.c or REALM_E_BAD_MODEL with a message. The input goes through
 * gguf_open_buffer(); after a successful open the target walks everything the API hands out
 * and checks those invariants itself (every pointer inside the mapping, keys and tensors
 * findable by name, tensors inside the file), so a reader bug that hands out a wild pointer is
 * caught even when reading it would happen to land in mapped memory. ASan/UBSan catch the rest.
 * Any other return code than 0, BAD_MODEL or NOMEM is also treated as a bug.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "realm/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Fails the run (libFuzzer saves the input) with a message naming the broken invariant. */
#define FUZZ_ASSERT(cond, what)                                                             \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      fprintf(stderr, "fuzz_gguf: invariant broken: %s (%s:%d)\n", what, __FILE__, __LINE__); \
      abort();                                                                              \
    }                                                                                       \
  } while (0)

static int inside(const struct gguf_file *f, const void *p, uint64_t len) {
  const uint8_t *base = gguf_mapped_base(f);
  size_t size = gguf_mapped_size(f);
  if (len == 0) return 1;
  if (!base || !p) return 0;
  const uint8_t *q = p;
  return q >= base && (size_t)(q - base) <= size && len <= size - (size_t)(q - base);
}

/* Touches every byte of a range so ASan sees any read outside the mapping. */
static unsigned touch(const void *p, uint64_t len) {
  const volatile uint8_t *q = p;
  unsigned acc = 0;
  for (uint64_t i = 0; i < len; i++) acc += q[i];
  return acc;
}

static void check_kv(const struct gguf_file *f, const struct gguf_kv *kv) {
  FUZZ_ASSERT(kv->key.len > 0, "empty key");
  FUZZ_ASSERT(inside(f, kv->key.data, kv->key.len), "key outside mapping");
  touch(kv->key.data, kv->key.len);
  if (kv->type == GGUF_VALUE_STRING) {
    FUZZ_ASSERT(inside(f, kv->v.str.data, kv->v.str.len), "string value outside mapping");
    touch(kv->v.str.data, kv->v.str.len);
  } else if (kv->type == GGUF_VALUE_ARRAY) {
    if (kv->v.arr.elem_type == GGUF_VALUE_STRING) {
      for (uint64_t i = 0; i < kv->v.arr.count; i++) {
        struct gguf_str s = gguf_arr_str(kv, i);
        FUZZ_ASSERT(inside(f, s.data, s.len), "string array element outside mapping");
        touch(s.data, s.len);
      }
      struct gguf_str past = gguf_arr_str(kv, kv->v.arr.count);
      FUZZ_ASSERT(past.len == 0, "gguf_arr_str past the end is not empty");
    } else {
      /* Widening accessors must bounds-check and accept or refuse, never read past. */
      float fv;
      int64_t iv;
      for (uint64_t i = 0; i < kv->v.arr.count && i < 64; i++) {
        (void)gguf_arr_f32(kv, i, &fv);
        (void)gguf_arr_i64(kv, i, &iv);
      }
      FUZZ_ASSERT(gguf_arr_i64(kv, kv->v.arr.count, &iv) < 0, "gguf_arr_i64 past the end");
      FUZZ_ASSERT(gguf_arr_f32(kv, kv->v.arr.count, &fv) < 0, "gguf_arr_f32 past the end");
    }
  }
  /* Lookup by key must find this very entry (keys are unique: invariant I2). */
  char key[300];
  if (kv->key.len < sizeof key) {
    memcpy(key, kv->key.data, kv->key.len);
    key[kv->key.len] = '\0';
    if (strlen(key) == kv->key.len) FUZZ_ASSERT(gguf_find_kv(f, key) == kv, "key not findable");
    uint32_t u;
    int32_t i;
    float fl;
    int b;
    struct gguf_str s;
    (void)gguf_get_u32(f, key, &u);
    (void)gguf_get_i32(f, key, &i);
    (void)gguf_get_f32(f, key, &fl);
    (void)gguf_get_bool(f, key, &b);
    (void)gguf_get_str(f, key, &s);
  }
}

static void check_tensor(const struct gguf_file *f, const struct gguf_tensor *t) {
  FUZZ_ASSERT(t->name.len > 0, "empty tensor name");
  FUZZ_ASSERT(inside(f, t->name.data, t->name.len), "tensor name outside mapping");
  FUZZ_ASSERT(t->n_dims >= 1 && t->n_dims <= GGUF_MAX_DIMS, "tensor n_dims out of range");
  FUZZ_ASSERT(inside(f, t->data, t->nbytes), "tensor data outside mapping");
  FUZZ_ASSERT(ggml_type_block_elems(t->type) > 0, "tensor of unknown type accepted");
  uint64_t align = gguf_alignment(f);
  FUZZ_ASSERT(align > 0 && t->offset % align == 0, "tensor offset not aligned");
  /* Reading the first and last byte is enough for ASan; the bounds are asserted above. */
  if (t->nbytes) {
    touch(t->data, 1);
    touch((const uint8_t *)t->data + t->nbytes - 1, 1);
  }
  char name[300];
  if (t->name.len < sizeof name) {
    memcpy(name, t->name.data, t->name.len);
    name[t->name.len] = '\0';
    if (strlen(name) == t->name.len)
      FUZZ_ASSERT(gguf_find_tensor(f, name) == t, "tensor not findable by name");
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct gguf_file *f = NULL;
  char err[256];
  err[0] = '\0';
  int rc = gguf_open_buffer(data, size, &f, err, sizeof err);
  if (rc < 0) {
    FUZZ_ASSERT(f == NULL, "ret_file written on failure");
    FUZZ_ASSERT(rc == REALM_E_BAD_MODEL || rc == REALM_E_NOMEM, "unexpected error code");
    FUZZ_ASSERT(err[0] != '\0', "failure without a message");
    return 0;
  }
  FUZZ_ASSERT(f != NULL, "success without a file");
  FUZZ_ASSERT(gguf_version(f) == 2 || gguf_version(f) == 3, "version other than 2 or 3");
  FUZZ_ASSERT(gguf_data_offset(f) <= gguf_mapped_size(f), "data section past the end");
  for (uint64_t i = 0; i < gguf_kv_count(f); i++) check_kv(f, gguf_kv_at(f, i));
  FUZZ_ASSERT(gguf_kv_at(f, gguf_kv_count(f)) == NULL, "gguf_kv_at past the end");
  for (uint64_t i = 0; i < gguf_tensor_count(f); i++) check_tensor(f, gguf_tensor_at(f, i));
  FUZZ_ASSERT(gguf_tensor_at(f, gguf_tensor_count(f)) == NULL, "gguf_tensor_at past the end");
  gguf_close(f);
  return 0;
}
