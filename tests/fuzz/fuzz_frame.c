/*
 * fuzz_frame.c — libFuzzer target for the wire frame decoder (common/src/frame.c) over all
 * four envelope kinds (RunnerRequest, RunnerEvent, WorkerRequest, WorkerReply).
 *
 * Every process decodes frames from a peer it does not fully trust (a runner is tenant code's
 * host; a gateway faces the internet), so realm_frame_decode must map any bytes to a message
 * or to PROTOCOL / VERSION / TOO_LARGE with a message. Two input modes, chosen by bit 0 of
 * the first byte, so that the fuzzer spends its time where the bugs would be:
 *   0: the rest of the input is a whole frame, header included (header checks, length field);
 *   1: bits 1..2 pick the kind, and the rest is the protobuf payload, wrapped in a valid
 *      header here (protobuf-c parsing under the allocation budget).
 * After a successful decode the message is re-encoded, decoded and re-encoded again: the two
 * encodings must be identical (a decoded message always encodes; encoding is deterministic),
 * which catches half-initialised messages that would crash a sender or confuse a receiver.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realm/error.h"
#include "realm/frame.h"
#include "realm/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond, what)                                                               \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      fprintf(stderr, "fuzz_frame: invariant broken: %s (%s:%d)\n", what, __FILE__, __LINE__); \
      abort();                                                                                \
    }                                                                                         \
  } while (0)

/* Frames are capped well below REALM_MAX_FRAME_BYTES so that libFuzzer's inputs (a few KiB)
 * can also exercise the TOO_LARGE path of the size check. */
#define FUZZ_MAX_FRAME 2048

static uint8_t *encode(unsigned kind, const ProtobufCMessage *m, size_t *ret_len) {
  size_t cap = realm_frame_encoded_size(m);
  uint8_t *buf = malloc(cap ? cap : 1);
  FUZZ_ASSERT(buf != NULL, "malloc");
  char err[256];
  int rc = realm_frame_encode(kind, m, buf, cap, ret_len, err, sizeof err);
  if (rc < 0) fprintf(stderr, "fuzz_frame: re-encode failed: %s\n", err);
  FUZZ_ASSERT(rc == 0, "a decoded message does not encode");
  FUZZ_ASSERT(*ret_len == cap, "encoded size differs from realm_frame_encoded_size");
  return buf;
}

/* True when M or a sub-message kept unknown fields. libprotobuf-c (1.4) accepts field number
 * 0 when its tag is a non-canonical multi-byte varint, keeps it as an unknown field, and then
 * re-encodes it canonically as a tag it refuses: such a message does not survive a round trip.
 * That is a library quirk with no effect on us (no process relays unknown fields), so the
 * round-trip oracle is not applied to messages with unknown fields. */
static int has_unknown(const ProtobufCMessage *m) {
  if (m->n_unknown_fields) return 1;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    const char *base = (const char *)m;
    /* A oneof member's slot is shared: only the member named by the case is valid. */
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        *(const uint32_t *)(base + f->quantifier_offset) != f->id)
      continue;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(base + f->quantifier_offset);
      ProtobufCMessage *const *arr = *(ProtobufCMessage *const *const *)(base + f->offset);
      for (size_t k = 0; k < n; k++)
        if (arr[k] && has_unknown(arr[k])) return 1;
    } else {
      const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)(base + f->offset);
      if (sub && has_unknown(sub)) return 1;
    }
  }
  return 0;
}

static void round_trip(unsigned kind, const ProtobufCMessageDescriptor *desc,
                       const ProtobufCMessage *m) {
  size_t n1 = 0, n2 = 0;
  uint8_t *e1 = encode(kind, m, &n1);
  ProtobufCMessage *m2 = NULL;
  char err[256];
  /* A re-encoding may legitimately be refused by the size budget when it is shorter than the
   * original (repeated fields merged), so only a successful second decode is compared. */
  int rc = realm_frame_decode(e1, n1, kind, desc, 0, &m2, err, sizeof err);
  if (rc == 0) {
    uint8_t *e2 = encode(kind, m2, &n2);
    FUZZ_ASSERT(n1 == n2 && memcmp(e1, e2, n1) == 0, "encode(decode(encode(m))) != encode(m)");
    free(e2);
    realm_frame_msg_free(m2);
  } else if (rc != REALM_E_TOO_LARGE && !has_unknown(m)) {
    fprintf(stderr, "fuzz_frame: re-decode: %s\n", err);
    FUZZ_ASSERT(0, "re-encoded frame does not decode");
  }
  free(e1);
}

static void decode_one(const uint8_t *frame, size_t len, unsigned kind) {
  const ProtobufCMessageDescriptor *desc = realm_proto_descriptor(kind);
  FUZZ_ASSERT(desc != NULL, "no descriptor for a valid kind");
  ProtobufCMessage *m = NULL;
  char err[256];
  err[0] = '\0';
  int rc = realm_frame_decode(frame, len, kind, desc, FUZZ_MAX_FRAME, &m, err, sizeof err);
  if (rc < 0) {
    FUZZ_ASSERT(m == NULL, "ret_msg written on failure");
    FUZZ_ASSERT(rc == REALM_E_PROTOCOL || rc == REALM_E_VERSION || rc == REALM_E_TOO_LARGE ||
                    rc == REALM_E_NOMEM,
                "unexpected error code");
    FUZZ_ASSERT(err[0] != '\0', "failure without a message");
    return;
  }
  FUZZ_ASSERT(m != NULL && m->descriptor == desc, "decoded message of the wrong type");
  round_trip(kind, desc, m);
  realm_frame_msg_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t mode = data[0];
  data++;
  size--;
  if ((mode & 1) == 0) {
    /* Raw frame: try each kind as the expected one; all but one fail on the kind check. */
    for (unsigned k = REALM_FRAME_KIND_MIN; k <= REALM_FRAME_KIND_MAX; k++)
      decode_one(data, size, k);
    return 0;
  }
  unsigned kind = REALM_FRAME_KIND_MIN + ((mode >> 1) & 3u);
  uint8_t *frame = malloc(REALM_FRAME_HEADER_BYTES + size);
  FUZZ_ASSERT(frame != NULL, "malloc");
  memcpy(frame, REALM_FRAME_MAGIC, REALM_FRAME_MAGIC_BYTES);
  frame[4] = REALM_PROTOCOL_VERSION & 0xff;
  frame[5] = REALM_PROTOCOL_VERSION >> 8;
  frame[6] = (uint8_t)kind;
  frame[7] = 0;
  frame[8] = (uint8_t)size;
  frame[9] = (uint8_t)(size >> 8);
  frame[10] = (uint8_t)(size >> 16);
  frame[11] = (uint8_t)(size >> 24);
  if (size) memcpy(frame + REALM_FRAME_HEADER_BYTES, data, size);
  decode_one(frame, REALM_FRAME_HEADER_BYTES + size, kind);
  free(frame);
  return 0;
}
