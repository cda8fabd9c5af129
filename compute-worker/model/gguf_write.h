/*
 * gguf_write.h — a streaming GGUF v3 writer.
 *
 * Usage: create a writer, add metadata (gguf_writer_add_*), declare every tensor
 * (gguf_writer_add_tensor: name, shape, type — no data yet), then gguf_writer_begin() writes
 * the header and the padding to the file descriptor, and gguf_writer_write() streams each
 * tensor's bytes in declaration order, in as many chunks as the caller likes; the writer pads
 * between tensors. gguf_writer_finish() checks that every declared byte arrived and flushes.
 * Memory stays bounded by the header and a 1 MiB output buffer, so a 13 GB llama2-7b F16 file
 * can be produced from a generator one row at a time.
 *
 * The writer applies the reader's rules (realm/limits.h, unique keys and names, shapes whose
 * element count fills whole blocks) so whatever it writes, gguf_open() accepts. Errors are
 * negative realm codes; the message (err, errlen given at creation) names the field.
 */
#ifndef REALM_GGUF_WRITE_H
#define REALM_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

struct gguf_writer; /* opaque */

/* New writer; ERR (ERRLEN bytes, may be NULL) receives every later error message. */
int gguf_writer_new(struct gguf_writer **ret_writer, char *err, size_t errlen);
void gguf_writer_free(struct gguf_writer *w); /* accepts NULL; does not close the fd */

/* Data-section alignment (power of two, <= REALM_GGUF_MAX_ALIGNMENT; default 32). A value other
 * than 32 is also recorded as the general.alignment key. Call before gguf_writer_begin(). */
int gguf_writer_set_alignment(struct gguf_writer *w, uint32_t alignment);

/* Metadata. Keys must be unique and 1..REALM_GGUF_MAX_KEY_BYTES long. */
int gguf_writer_add_u32(struct gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_add_i32(struct gguf_writer *w, const char *key, int32_t v);
int gguf_writer_add_f32(struct gguf_writer *w, const char *key, float v);
int gguf_writer_add_bool(struct gguf_writer *w, const char *key, bool v);
int gguf_writer_add_str(struct gguf_writer *w, const char *key, const char *v);
int gguf_writer_add_str_arr(struct gguf_writer *w, const char *key, const char *const *v,
                            uint64_t n);
int gguf_writer_add_f32_arr(struct gguf_writer *w, const char *key, const float *v, uint64_t n);
int gguf_writer_add_i32_arr(struct gguf_writer *w, const char *key, const int32_t *v,
                            uint64_t n);
/* Copies one KV exactly as a reader returned it (any type, arrays included), e.g. to carry
 * tokenizer.ggml.* from a vocabulary file into a synthesized model. */
int gguf_writer_add_kv_copy(struct gguf_writer *w, const struct gguf_kv *kv);

/* Declares the next tensor: ne[0] is the row length. Data follows via gguf_writer_write(). */
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t n_dims,
                           const uint64_t *ne, enum ggml_type type);

/* Writes the header (and data-section padding) to FD; no more KVs or tensors after this. */
int gguf_writer_begin(struct gguf_writer *w, int fd);
/* Streams N bytes of tensor data, in declaration order; a chunk may span tensor boundaries. */
int gguf_writer_write(struct gguf_writer *w, const void *data, size_t n);
/* Verifies every declared tensor byte was written and flushes the buffer. */
int gguf_writer_finish(struct gguf_writer *w);

/* Size of the file the declared KVs and tensors make (header, padding and data). */
uint64_t gguf_writer_file_size(struct gguf_writer *w);

#endif /* REALM_GGUF_WRITE_H */
