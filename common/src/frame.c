/*
 * frame.c — encoding and checked decoding of Realm wire frames (see realm/frame.h).
 *
 * Decoding distrusts every byte: the header is checked field by field in a fixed order (magic,
 * version, kind, size limit, exact length) so that each failure has one precise message, and
 * protobuf-c unpacks through a counting allocator that refuses to grow past a budget
 * proportional to the payload. The counting allocator hands out plain malloc() blocks, so the
 * result is freed with protobuf-c's default allocator like any other unpacked message.
 */
#include "realm/frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realm/error.h"
#include "realm/limits.h"

static void put_le16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static uint16_t get_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t get_le32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

const char *realm_frame_kind_name(unsigned kind) {
  switch (kind) {
  case REALM_FRAME_RUNNER_REQUEST: return "runner_request";
  case REALM_FRAME_RUNNER_EVENT: return "runner_event";
  case REALM_FRAME_WORKER_REQUEST: return "worker_request";
  case REALM_FRAME_WORKER_REPLY: return "worker_reply";
  default: return "unknown";
  }
}

size_t realm_frame_encoded_size(const ProtobufCMessage *msg) {
  return REALM_FRAME_HEADER_BYTES + protobuf_c_message_get_packed_size(msg);
}

int realm_frame_encode(unsigned kind, const ProtobufCMessage *msg, uint8_t *buf, size_t cap,
                       size_t *ret_len, char *err, size_t errlen) {
  if (kind < REALM_FRAME_KIND_MIN || kind > REALM_FRAME_KIND_MAX)
    return realm_fail(REALM_E_INVALID_ARGUMENT, err, errlen, "frame kind %u is not a known kind",
                      kind);
  if (!msg || !buf)
    return realm_fail(REALM_E_INVALID_ARGUMENT, err, errlen, "frame encode: NULL %s",
                      msg ? "buffer" : "message");
  /* A message with NULL strings or sub-messages would crash or mis-pack; refuse it here so
   * the bug is reported at the sender, not as garbage at the receiver. */
  if (!protobuf_c_message_check(msg))
    return realm_fail(REALM_E_INVALID_ARGUMENT, err, errlen,
                      "message %s fails protobuf_c_message_check (NULL string or field?)",
                      msg->descriptor->name);
  size_t payload = protobuf_c_message_get_packed_size(msg);
  if (payload > UINT32_MAX)
    return realm_fail(REALM_E_TOO_LARGE, err, errlen,
                      "%s payload of %zu bytes does not fit the 32-bit length field",
                      msg->descriptor->name, payload);
  if (cap < REALM_FRAME_HEADER_BYTES || cap - REALM_FRAME_HEADER_BYTES < payload)
    return realm_fail(REALM_E_TOO_LARGE, err, errlen, "%s frame needs %zu bytes, buffer holds %zu",
                      msg->descriptor->name, payload + REALM_FRAME_HEADER_BYTES, cap);
  memcpy(buf, REALM_FRAME_MAGIC, REALM_FRAME_MAGIC_BYTES);
  put_le16(buf + 4, REALM_PROTOCOL_VERSION);
  put_le16(buf + 6, (uint16_t)kind);
  put_le32(buf + 8, (uint32_t)payload);
  size_t packed = protobuf_c_message_pack(msg, buf + REALM_FRAME_HEADER_BYTES);
  if (packed != payload)
    return realm_fail(REALM_E_INTERNAL, err, errlen, "%s packed to %zu bytes, expected %zu",
                      msg->descriptor->name, packed, payload);
  *ret_len = REALM_FRAME_HEADER_BYTES + payload;
  return 0;
}

int realm_frame_peek(const uint8_t *buf, size_t len, size_t max_bytes,
                     realm_frame_header *ret_header, char *err, size_t errlen) {
  if (max_bytes == 0) max_bytes = REALM_MAX_FRAME_BYTES;
  if (!buf && len > 0)
    return realm_fail(REALM_E_INVALID_ARGUMENT, err, errlen, "frame decode: NULL buffer");
  if (len < REALM_FRAME_MAGIC_BYTES)
    return realm_fail(REALM_E_PROTOCOL, err, errlen, "truncated frame: %zu bytes, header needs %d",
                      len, REALM_FRAME_HEADER_BYTES);
  if (memcmp(buf, REALM_FRAME_MAGIC, REALM_FRAME_MAGIC_BYTES) != 0)
    return realm_fail(REALM_E_PROTOCOL, err, errlen,
                      "bad frame magic %02x %02x %02x %02x (expected \"RLM\\0\"): not a Realm "
                      "peer",
                      buf[0], buf[1], buf[2], buf[3]);
  if (len < 6)
    return realm_fail(REALM_E_PROTOCOL, err, errlen, "truncated frame: %zu bytes, header needs %d",
                      len, REALM_FRAME_HEADER_BYTES);
  /* The version is checked before anything whose layout a future version might change. */
  uint16_t version = get_le16(buf + 4);
  if (version != REALM_PROTOCOL_VERSION)
    return realm_fail(REALM_E_VERSION, err, errlen, "peer speaks protocol %u, this build speaks %u",
                      (unsigned)version, (unsigned)REALM_PROTOCOL_VERSION);
  if (len < REALM_FRAME_HEADER_BYTES)
    return realm_fail(REALM_E_PROTOCOL, err, errlen, "truncated frame: %zu bytes, header needs %d",
                      len, REALM_FRAME_HEADER_BYTES);
  uint16_t kind = get_le16(buf + 6);
  if (kind < REALM_FRAME_KIND_MIN || kind > REALM_FRAME_KIND_MAX)
    return realm_fail(REALM_E_PROTOCOL, err, errlen, "unknown frame kind %u", (unsigned)kind);
  uint32_t payload_len = get_le32(buf + 8);
  if (payload_len > max_bytes)
    return realm_fail(REALM_E_TOO_LARGE, err, errlen,
                      "frame payload length %u exceeds the limit of %zu bytes",
                      (unsigned)payload_len, max_bytes);
  if ((size_t)payload_len != len - REALM_FRAME_HEADER_BYTES)
    return realm_fail(REALM_E_PROTOCOL, err, errlen,
                      "frame length field says %u payload bytes, %zu present",
                      (unsigned)payload_len, len - REALM_FRAME_HEADER_BYTES);
  ret_header->version = version;
  ret_header->kind = kind;
  ret_header->payload_len = payload_len;
  return 0;
}

/* Allocation budget for one unpack. Only allocations are counted: protobuf-c frees during
 * unpack only on its failure path, after which the budget no longer matters. */
struct frame_budget {
  size_t left;
  int refused;
  int nomem; /* malloc itself failed: report NOMEM (retryable), not a malformed peer */
};

static void *frame_budget_alloc(void *data, size_t size) {
  struct frame_budget *b = data;
  if (size > b->left) {
    b->refused = 1;
    return NULL;
  }
  b->left -= size;
  void *p = malloc(size);
  if (!p) b->nomem = 1;
  return p;
}

static void frame_budget_free(void *data, void *p) {
  (void)data;
  free(p);
}

int realm_frame_decode(const uint8_t *buf, size_t len, unsigned expected_kind,
                       const ProtobufCMessageDescriptor *desc, size_t max_bytes,
                       ProtobufCMessage **ret_msg, char *err, size_t errlen) {
  realm_frame_header h;
  int r = realm_frame_peek(buf, len, max_bytes, &h, err, errlen);
  if (r < 0) return r;
  if (h.kind != expected_kind)
    return realm_fail(REALM_E_PROTOCOL, err, errlen, "expected a %s frame (kind %u), got %s (%u)",
                      realm_frame_kind_name(expected_kind), expected_kind,
                      realm_frame_kind_name(h.kind), (unsigned)h.kind);
  if (!desc)
    return realm_fail(REALM_E_INVALID_ARGUMENT, err, errlen, "frame decode: NULL descriptor");
  struct frame_budget budget = {
      .left = (size_t)h.payload_len * REALM_FRAME_DECODE_AMPLIFICATION +
              REALM_FRAME_DECODE_SLACK_BYTES,
      .refused = 0,
      .nomem = 0,
  };
  ProtobufCAllocator alloc = {
      .alloc = frame_budget_alloc, .free = frame_budget_free, .allocator_data = &budget};
  ProtobufCMessage *msg =
      protobuf_c_message_unpack(desc, &alloc, h.payload_len, buf + REALM_FRAME_HEADER_BYTES);
  if (!msg) {
    if (budget.nomem)
      return realm_fail(REALM_E_NOMEM, err, errlen, "out of memory unpacking a %u-byte %s payload",
                        (unsigned)h.payload_len, desc->name);
    if (budget.refused)
      return realm_fail(REALM_E_TOO_LARGE, err, errlen,
                        "%s payload of %u bytes unpacks to more than %dx its size", desc->name,
                        (unsigned)h.payload_len, REALM_FRAME_DECODE_AMPLIFICATION);
    return realm_fail(REALM_E_PROTOCOL, err, errlen,
                      "%s payload of %u bytes does not parse as protobuf", desc->name,
                      (unsigned)h.payload_len);
  }
  *ret_msg = msg;
  return 0;
}

void realm_frame_msg_free(ProtobufCMessage *msg) {
  if (msg) protobuf_c_message_free_unpacked(msg, NULL);
}
