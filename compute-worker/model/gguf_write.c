/*
 * gguf_write.c — the streaming GGUF v3 writer (see gguf_write.h for the call sequence).
 *
 * The metadata section is serialized into a growable byte buffer as KVs are added (so adding a
 * 100k-token vocabulary costs one pass), tensor infos are kept as a small array, and the data
 * offsets are assigned when the header is written: each tensor starts at the next multiple of
 * the alignment. Tensor bytes then pass through a 1 MiB output buffer in declaration order;
 * the writer tracks which tensor the stream is in and inserts the padding itself.
 */
#include "gguf_write.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "realm/error.h"
#include "realm/limits.h"

#define WRITER_BUF_BYTES (1u << 20)

struct tensor_decl {
  char *name;
  uint32_t n_dims;
  uint64_t ne[GGUF_MAX_DIMS];
  enum ggml_type type;
  uint64_t nbytes;
  uint64_t offset; /* relative to the data section */
};

struct bytes {
  uint8_t *p;
  size_t len, cap;
};

enum writer_state { WS_DECLARING, WS_STREAMING, WS_DONE, WS_FAILED };

struct gguf_writer {
  char *err;
  size_t errlen;
  enum writer_state state;
  uint32_t alignment;
  struct bytes kv_blob;        /* serialized KVs */
  uint64_t n_kv;
  char **keys;                 /* [n_kv] for the duplicate check */
  struct tensor_decl *tensors; /* [n_tensors] */
  uint64_t n_tensors, cap_tensors;
  uint64_t header_bytes;       /* header incl. padding to the data section */
  uint64_t data_bytes;         /* data section incl. padding between tensors */
  /* streaming position */
  int fd;
  uint64_t cur_tensor;         /* tensor being streamed */
  uint64_t cur_written;        /* bytes of it written so far */
  struct bytes out;            /* output buffer */
  uint64_t file_written;       /* bytes handed to write() */
};

__attribute__((format(printf, 3, 4))) static int wfail(struct gguf_writer *w, int code,
                                                       const char *fmt, ...) {
  if (w->err && w->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, w->errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

static int bytes_reserve(struct bytes *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap - b->len < extra) {
    if (cap > SIZE_MAX / 2) return REALM_E_NOMEM;
    cap *= 2;
  }
  uint8_t *p = realloc(b->p, cap);
  if (!p) return REALM_E_NOMEM;
  b->p = p;
  b->cap = cap;
  return 0;
}

static int bytes_put(struct bytes *b, const void *src, size_t n) {
  int rc = bytes_reserve(b, n);
  if (rc < 0) return rc;
  if (n) memcpy(b->p + b->len, src, n);
  b->len += n;
  return 0;
}

static int put_u32(struct bytes *b, uint32_t v) { return bytes_put(b, &v, 4); }
static int put_u64(struct bytes *b, uint64_t v) { return bytes_put(b, &v, 8); }

static int put_str(struct bytes *b, const char *s, uint64_t len) {
  int rc = put_u64(b, len);
  return rc < 0 ? rc : bytes_put(b, s, (size_t)len);
}

int gguf_writer_new(struct gguf_writer **ret_writer, char *err, size_t errlen) {
  struct gguf_writer *w = calloc(1, sizeof *w);
  if (!w) {
    if (err && errlen) snprintf(err, errlen, "out of memory");
    return REALM_E_NOMEM;
  }
  w->err = err;
  w->errlen = errlen;
  w->alignment = 32;
  w->fd = -1;
  *ret_writer = w;
  return 0;
}

void gguf_writer_free(struct gguf_writer *w) {
  if (!w) return;
  for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
  free(w->keys);
  for (uint64_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
  free(w->tensors);
  free(w->kv_blob.p);
  free(w->out.p);
  free(w);
}

/* Validates KEY and reserves it; writes the key and TYPE into the blob. */
static int begin_kv(struct gguf_writer *w, const char *key, size_t keylen, uint32_t type) {
  if (w->state != WS_DECLARING)
    return wfail(w, REALM_E_INVALID_ARGUMENT, "key '%.*s' added after gguf_writer_begin",
                 (int)(keylen > 64 ? 64 : keylen), key);
  if (keylen == 0 || keylen > REALM_GGUF_MAX_KEY_BYTES)
    return wfail(w, REALM_E_INVALID_ARGUMENT, "key length %zu is not in 1..%d", keylen,
                 REALM_GGUF_MAX_KEY_BYTES);
  if (w->n_kv >= REALM_GGUF_MAX_KV)
    return wfail(w, REALM_E_TOO_LARGE, "more than %d keys", REALM_GGUF_MAX_KV);
  for (uint64_t i = 0; i < w->n_kv; i++)
    if (strlen(w->keys[i]) == keylen && memcmp(w->keys[i], key, keylen) == 0)
      return wfail(w, REALM_E_INVALID_ARGUMENT, "duplicate key '%.*s'", (int)keylen, key);
  char **keys = realloc(w->keys, (size_t)(w->n_kv + 1) * sizeof *keys);
  if (!keys) return wfail(w, REALM_E_NOMEM, "out of memory");
  w->keys = keys;
  char *copy = strndup(key, keylen);
  if (!copy) return wfail(w, REALM_E_NOMEM, "out of memory");
  if (put_str(&w->kv_blob, key, keylen) < 0 || put_u32(&w->kv_blob, type) < 0) {
    free(copy);
    return wfail(w, REALM_E_NOMEM, "out of memory");
  }
  w->keys[w->n_kv++] = copy;
  return 0;
}

static int finish_put(struct gguf_writer *w, int rc) {
  return rc < 0 ? wfail(w, REALM_E_NOMEM, "out of memory serializing metadata") : 0;
}

static int add_scalar(struct gguf_writer *w, const char *key, uint32_t type, const void *v,
                      size_t size) {
  int rc = begin_kv(w, key, strlen(key), type);
  if (rc < 0) return rc;
  return finish_put(w, bytes_put(&w->kv_blob, v, size));
}

int gguf_writer_add_u32(struct gguf_writer *w, const char *key, uint32_t v) {
  return add_scalar(w, key, GGUF_VALUE_UINT32, &v, 4);
}

int gguf_writer_add_i32(struct gguf_writer *w, const char *key, int32_t v) {
  return add_scalar(w, key, GGUF_VALUE_INT32, &v, 4);
}

int gguf_writer_add_f32(struct gguf_writer *w, const char *key, float v) {
  return add_scalar(w, key, GGUF_VALUE_FLOAT32, &v, 4);
}

int gguf_writer_add_bool(struct gguf_writer *w, const char *key, bool v) {
  uint8_t b = v ? 1 : 0;
  return add_scalar(w, key, GGUF_VALUE_BOOL, &b, 1);
}

int gguf_writer_add_str(struct gguf_writer *w, const char *key, const char *v) {
  size_t len = strlen(v);
  if (len > REALM_GGUF_MAX_STRING_BYTES)
    return wfail(w, REALM_E_TOO_LARGE, "value of '%s': %zu bytes exceeds the string limit", key,
                 len);
  int rc = begin_kv(w, key, strlen(key), GGUF_VALUE_STRING);
  if (rc < 0) return rc;
  return finish_put(w, put_str(&w->kv_blob, v, len));
}

static int begin_arr(struct gguf_writer *w, const char *key, uint32_t elem_type, uint64_t n) {
  if (n > REALM_GGUF_MAX_ARRAY_ELEMS)
    return wfail(w, REALM_E_TOO_LARGE, "array '%s': %llu elements exceeds the limit", key,
                 (unsigned long long)n);
  int rc = begin_kv(w, key, strlen(key), GGUF_VALUE_ARRAY);
  if (rc < 0) return rc;
  rc = put_u32(&w->kv_blob, elem_type);
  if (rc == 0) rc = put_u64(&w->kv_blob, n);
  return finish_put(w, rc);
}

int gguf_writer_add_str_arr(struct gguf_writer *w, const char *key, const char *const *v,
                            uint64_t n) {
  for (uint64_t i = 0; i < n; i++)
    if (strlen(v[i]) > REALM_GGUF_MAX_STRING_BYTES)
      return wfail(w, REALM_E_TOO_LARGE, "array '%s' element %llu exceeds the string limit",
                   key, (unsigned long long)i);
  int rc = begin_arr(w, key, GGUF_VALUE_STRING, n);
  for (uint64_t i = 0; rc == 0 && i < n; i++) rc = put_str(&w->kv_blob, v[i], strlen(v[i]));
  return finish_put(w, rc);
}

int gguf_writer_add_f32_arr(struct gguf_writer *w, const char *key, const float *v, uint64_t n) {
  int rc = begin_arr(w, key, GGUF_VALUE_FLOAT32, n);
  if (rc < 0) return rc;
  return finish_put(w, bytes_put(&w->kv_blob, v, (size_t)n * 4));
}

int gguf_writer_add_i32_arr(struct gguf_writer *w, const char *key, const int32_t *v,
                            uint64_t n) {
  int rc = begin_arr(w, key, GGUF_VALUE_INT32, n);
  if (rc < 0) return rc;
  return finish_put(w, bytes_put(&w->kv_blob, v, (size_t)n * 4));
}

/* Size of one scalar of a gguf value type (0 for string/array). */
static size_t scalar_size(enum gguf_value_type t) {
  switch (t) {
  case GGUF_VALUE_UINT8: case GGUF_VALUE_INT8: case GGUF_VALUE_BOOL: return 1;
  case GGUF_VALUE_UINT16: case GGUF_VALUE_INT16: return 2;
  case GGUF_VALUE_UINT32: case GGUF_VALUE_INT32: case GGUF_VALUE_FLOAT32: return 4;
  case GGUF_VALUE_UINT64: case GGUF_VALUE_INT64: case GGUF_VALUE_FLOAT64: return 8;
  default: return 0;
  }
}

/* Narrows the reader's widened scalar back to its stored width. */
static int put_scalar(struct bytes *b, enum gguf_value_type t, const struct gguf_kv *kv) {
  uint8_t buf[8];
  switch (t) {
  case GGUF_VALUE_UINT8: case GGUF_VALUE_BOOL: buf[0] = (uint8_t)kv->v.u64; break;
  case GGUF_VALUE_INT8: buf[0] = (uint8_t)(int8_t)kv->v.i64; break;
  case GGUF_VALUE_UINT16: { uint16_t x = (uint16_t)kv->v.u64; memcpy(buf, &x, 2); break; }
  case GGUF_VALUE_INT16: { int16_t x = (int16_t)kv->v.i64; memcpy(buf, &x, 2); break; }
  case GGUF_VALUE_UINT32: { uint32_t x = (uint32_t)kv->v.u64; memcpy(buf, &x, 4); break; }
  case GGUF_VALUE_INT32: { int32_t x = (int32_t)kv->v.i64; memcpy(buf, &x, 4); break; }
  case GGUF_VALUE_FLOAT32: { float x = (float)kv->v.f64; memcpy(buf, &x, 4); break; }
  case GGUF_VALUE_UINT64: memcpy(buf, &kv->v.u64, 8); break;
  case GGUF_VALUE_INT64: memcpy(buf, &kv->v.i64, 8); break;
  case GGUF_VALUE_FLOAT64: memcpy(buf, &kv->v.f64, 8); break;
  default: return REALM_E_INVALID_ARGUMENT;
  }
  return bytes_put(b, buf, scalar_size(t));
}

int gguf_writer_add_kv_copy(struct gguf_writer *w, const struct gguf_kv *kv) {
  if (!kv) return wfail(w, REALM_E_INVALID_ARGUMENT, "gguf_writer_add_kv_copy: NULL kv");
  if (kv->key.len == 0 || kv->key.len > REALM_GGUF_MAX_KEY_BYTES)
    return wfail(w, REALM_E_INVALID_ARGUMENT, "key length %llu is not in 1..%d",
                 (unsigned long long)kv->key.len, REALM_GGUF_MAX_KEY_BYTES);
  int rc = begin_kv(w, kv->key.data, (size_t)kv->key.len, kv->type);
  if (rc < 0) return rc;
  struct bytes *b = &w->kv_blob;
  if (kv->type == GGUF_VALUE_STRING) return finish_put(w, put_str(b, kv->v.str.data, kv->v.str.len));
  if (kv->type != GGUF_VALUE_ARRAY) return finish_put(w, put_scalar(b, kv->type, kv));
  enum gguf_value_type et = kv->v.arr.elem_type;
  rc = put_u32(b, et);
  if (rc == 0) rc = put_u64(b, kv->v.arr.count);
  if (et == GGUF_VALUE_STRING) {
    for (uint64_t i = 0; rc == 0 && i < kv->v.arr.count; i++) {
      struct gguf_str s = gguf_arr_str(kv, i);
      rc = put_str(b, s.data, s.len);
    }
  } else if (rc == 0) {
    size_t sz = scalar_size(et);
    if (sz == 0) return wfail(w, REALM_E_INVALID_ARGUMENT, "key '%.*s': unsupported array type",
                              (int)kv->key.len, kv->key.data);
    rc = bytes_put(b, kv->v.arr.data, (size_t)kv->v.arr.count * sz);
  }
  return finish_put(w, rc);
}

int gguf_writer_set_alignment(struct gguf_writer *w, uint32_t alignment) {
  if (w->state != WS_DECLARING)
    return wfail(w, REALM_E_INVALID_ARGUMENT, "alignment set after gguf_writer_begin");
  if (alignment == 0 || (alignment & (alignment - 1)) || alignment > REALM_GGUF_MAX_ALIGNMENT)
    return wfail(w, REALM_E_INVALID_ARGUMENT,
                 "general.alignment %u is not a power of two in 1..%d", alignment,
                 REALM_GGUF_MAX_ALIGNMENT);
  if (alignment != 32) {
    int rc = gguf_writer_add_u32(w, "general.alignment", alignment);
    if (rc < 0) return rc;
  }
  w->alignment = alignment;
  return 0;
}

int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t n_dims,
                           const uint64_t *ne, enum ggml_type type) {
  if (w->state != WS_DECLARING)
    return wfail(w, REALM_E_INVALID_ARGUMENT, "tensor '%s' declared after gguf_writer_begin",
                 name);
  size_t len = strlen(name);
  if (len == 0 || len > REALM_GGUF_MAX_TENSOR_NAME_BYTES)
    return wfail(w, REALM_E_INVALID_ARGUMENT, "tensor name length %zu is not in 1..%d", len,
                 REALM_GGUF_MAX_TENSOR_NAME_BYTES);
  if (w->n_tensors >= REALM_GGUF_MAX_TENSORS)
    return wfail(w, REALM_E_TOO_LARGE, "more than %d tensors", REALM_GGUF_MAX_TENSORS);
  if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
    return wfail(w, REALM_E_INVALID_ARGUMENT, "tensor '%s': n_dims %u is not in 1..%d", name,
                 n_dims, GGUF_MAX_DIMS);
  uint32_t block = ggml_type_block_elems(type);
  if (block == 0)
    return wfail(w, REALM_E_INVALID_ARGUMENT, "tensor '%s': unknown type %u", name,
                 (unsigned)type);
  uint64_t nelem = 1;
  for (uint32_t d = 0; d < n_dims; d++) {
    if (ne[d] < 1 || ne[d] > REALM_GGUF_MAX_DIM || __builtin_mul_overflow(nelem, ne[d], &nelem))
      return wfail(w, REALM_E_INVALID_ARGUMENT, "tensor '%s': ne[%u] %llu out of range", name, d,
                   (unsigned long long)ne[d]);
  }
  if (nelem % block)
    return wfail(w, REALM_E_INVALID_ARGUMENT,
                 "tensor '%s': element count %llu is not a multiple of the %s block size %u",
                 name, (unsigned long long)nelem, ggml_type_name(type), block);
  for (uint64_t i = 0; i < w->n_tensors; i++)
    if (strcmp(w->tensors[i].name, name) == 0)
      return wfail(w, REALM_E_INVALID_ARGUMENT, "duplicate tensor name '%s'", name);
  if (w->n_tensors == w->cap_tensors) {
    uint64_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
    struct tensor_decl *t = realloc(w->tensors, (size_t)cap * sizeof *t);
    if (!t) return wfail(w, REALM_E_NOMEM, "out of memory");
    w->tensors = t;
    w->cap_tensors = cap;
  }
  struct tensor_decl *t = &w->tensors[w->n_tensors];
  memset(t, 0, sizeof *t);
  t->name = strdup(name);
  if (!t->name) return wfail(w, REALM_E_NOMEM, "out of memory");
  t->n_dims = n_dims;
  for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
  t->type = type;
  t->nbytes = nelem / block * ggml_type_block_bytes(type);
  w->n_tensors++;
  return 0;
}

static uint64_t align_up(uint64_t x, uint32_t a) { return (x + a - 1) / a * a; }

/* Computes the layout: header size (with padding), tensor offsets, data section size. */
static void layout(struct gguf_writer *w) {
  uint64_t h = 4 + 4 + 8 + 8 + w->kv_blob.len;
  for (uint64_t i = 0; i < w->n_tensors; i++)
    h += 8 + strlen(w->tensors[i].name) + 4 + 8ull * w->tensors[i].n_dims + 4 + 8;
  w->header_bytes = align_up(h, w->alignment);
  uint64_t off = 0;
  for (uint64_t i = 0; i < w->n_tensors; i++) {
    off = align_up(off, w->alignment);
    w->tensors[i].offset = off;
    off += w->tensors[i].nbytes;
  }
  w->data_bytes = off;
}

uint64_t gguf_writer_file_size(struct gguf_writer *w) {
  if (w->state == WS_DECLARING) layout(w);
  return w->header_bytes + w->data_bytes;
}

static int flush_out(struct gguf_writer *w) {
  size_t done = 0;
  while (done < w->out.len) {
    ssize_t n = write(w->fd, w->out.p + done, w->out.len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      w->state = WS_FAILED;
      return wfail(w, e == ENOSPC ? REALM_E_IO : realm_err_from_errno(e),
                   "write at file byte %llu: %s",
                   (unsigned long long)(w->file_written + done), strerror(e));
    }
    done += (size_t)n;
  }
  w->file_written += done;
  w->out.len = 0;
  return 0;
}

/* Appends to the output buffer, flushing when full. */
static int emit(struct gguf_writer *w, const void *src, size_t n) {
  const uint8_t *p = src;
  while (n) {
    size_t room = w->out.cap - w->out.len;
    if (room == 0) {
      int rc = flush_out(w);
      if (rc < 0) return rc;
      room = w->out.cap;
    }
    size_t k = n < room ? n : room;
    memcpy(w->out.p + w->out.len, p, k);
    w->out.len += k;
    p += k;
    n -= k;
  }
  return 0;
}

static int emit_zeros(struct gguf_writer *w, uint64_t n) {
  static const uint8_t zeros[256];
  while (n) {
    size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
    int rc = emit(w, zeros, k);
    if (rc < 0) return rc;
    n -= k;
  }
  return 0;
}

int gguf_writer_begin(struct gguf_writer *w, int fd) {
  if (w->state != WS_DECLARING)
    return wfail(w, REALM_E_INVALID_ARGUMENT, "gguf_writer_begin called twice");
  w->out.p = malloc(WRITER_BUF_BYTES);
  if (!w->out.p) return wfail(w, REALM_E_NOMEM, "out of memory");
  w->out.cap = WRITER_BUF_BYTES;
  w->fd = fd;
  w->state = WS_STREAMING;
  layout(w);
  uint32_t version = 3;
  uint64_t counts[2] = {w->n_tensors, w->n_kv};
  int rc = emit(w, "GGUF", 4);
  if (rc == 0) rc = emit(w, &version, 4);
  if (rc == 0) rc = emit(w, counts, sizeof counts);
  if (rc == 0) rc = emit(w, w->kv_blob.p, w->kv_blob.len);
  for (uint64_t i = 0; rc == 0 && i < w->n_tensors; i++) {
    const struct tensor_decl *t = &w->tensors[i];
    uint64_t len = strlen(t->name);
    uint32_t type = (uint32_t)t->type;
    rc = emit(w, &len, 8);
    if (rc == 0) rc = emit(w, t->name, (size_t)len);
    if (rc == 0) rc = emit(w, &t->n_dims, 4);
    if (rc == 0) rc = emit(w, t->ne, 8ull * t->n_dims);
    if (rc == 0) rc = emit(w, &type, 4);
    if (rc == 0) rc = emit(w, &t->offset, 8);
  }
  uint64_t written = w->file_written + w->out.len;
  if (rc == 0) rc = emit_zeros(w, w->header_bytes - written);
  w->cur_tensor = 0;
  w->cur_written = 0;
  if (rc < 0) w->state = WS_FAILED;
  return rc;
}

int gguf_writer_write(struct gguf_writer *w, const void *data, size_t n) {
  if (w->state != WS_STREAMING)
    return wfail(w, REALM_E_INVALID_ARGUMENT, "tensor data written outside streaming state");
  const uint8_t *p = data;
  while (n) {
    if (w->cur_tensor >= w->n_tensors)
      return wfail(w, REALM_E_INVALID_ARGUMENT, "%zu bytes of tensor data beyond the last "
                   "declared tensor", n);
    const struct tensor_decl *t = &w->tensors[w->cur_tensor];
    uint64_t left = t->nbytes - w->cur_written;
    size_t k = n < left ? n : (size_t)left;
    int rc = emit(w, p, k);
    if (rc < 0) return rc;
    p += k;
    n -= k;
    w->cur_written += k;
    if (w->cur_written == t->nbytes) {
      /* Pad up to the next tensor's offset (none after the last one). */
      if (w->cur_tensor + 1 < w->n_tensors) {
        rc = emit_zeros(w, w->tensors[w->cur_tensor + 1].offset - (t->offset + t->nbytes));
        if (rc < 0) return rc;
      }
      w->cur_tensor++;
      w->cur_written = 0;
    }
  }
  return 0;
}

int gguf_writer_finish(struct gguf_writer *w) {
  if (w->state != WS_STREAMING)
    return wfail(w, REALM_E_INVALID_ARGUMENT, "gguf_writer_finish outside streaming state");
  if (w->cur_tensor < w->n_tensors)
    return wfail(w, REALM_E_INVALID_ARGUMENT,
                 "tensor '%s': only %llu of %llu bytes written before finish",
                 w->tensors[w->cur_tensor].name, (unsigned long long)w->cur_written,
                 (unsigned long long)w->tensors[w->cur_tensor].nbytes);
  int rc = flush_out(w);
  if (rc < 0) return rc;
  w->state = WS_DONE;
  return 0;
}
