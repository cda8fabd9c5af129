/*
 * frame.h — the Realm wire frame: a fixed 12-byte header followed by one protobuf envelope.
 *
 * Every ZeroMQ message part that carries Realm data is one frame:
 *
 *   offset  size  field
 *   0       4     magic "RLM\0"            (REALM_FRAME_MAGIC)
 *   4       2     protocol version, LE     (REALM_PROTOCOL_VERSION)
 *   6       2     message kind, LE         (enum realm_frame_kind: which envelope follows)
 *   8       4     payload length, LE       (bytes after the header; must equal the rest)
 *   12      n     protobuf payload         (realm.v1.RunnerRequest / ... from proto/)
 *
 * The version lives here and only here: messages carry no version field, so a peer of another
 * version is refused before a single protobuf byte is parsed. Invariant for all future
 * versions: bytes 0..5 (magic and version) keep this layout, so any build can name the
 * version a peer speaks.
 *
 * This module is pure (no I/O, no globals): encode into a caller buffer, decode from a caller
 * buffer with limits. It is the unit the fuzzers target. Decoding bounds the memory protobuf-c
 * may allocate to REALM_FRAME_DECODE_AMPLIFICATION times the payload, so a small hostile frame
 * cannot expand into gigabytes of unpacked structs.
 */
#ifndef REALM_FRAME_H
#define REALM_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* The one protocol version number of this build. Bump it whenever a .proto change is not
 * wire-compatible or the meaning of a field changes. */
#define REALM_PROTOCOL_VERSION 1

#define REALM_FRAME_MAGIC "RLM\0"
#define REALM_FRAME_MAGIC_BYTES 4
#define REALM_FRAME_HEADER_BYTES 12

/* Shared-memory contract (docs/protocol.md): every offset a message names into a connection's
 * region is a multiple of this, and the memfd handshake on the Unix side socket is a
 * REALM_SHM_TOKEN_BYTES token from the runner answered by the fd plus an 8-byte LE
 * connection id from the worker. */
#define REALM_PROTOCOL_SHM_ALIGN 64
#define REALM_SHM_TOKEN_BYTES 32

/* Unpacked structs may take at most this many times the payload size (plus a constant):
 * the worst legitimate case is a packed repeated int64 of small values (1 byte -> 8). */
#define REALM_FRAME_DECODE_AMPLIFICATION 16
#define REALM_FRAME_DECODE_SLACK_BYTES (64u << 10)

/* Which envelope a frame carries. Values are part of the wire format: never renumber. */
enum realm_frame_kind {
  REALM_FRAME_RUNNER_REQUEST = 1, /* gateway -> runner: realm.v1.RunnerRequest */
  REALM_FRAME_RUNNER_EVENT = 2,   /* runner -> gateway: realm.v1.RunnerEvent   */
  REALM_FRAME_WORKER_REQUEST = 3, /* runner -> worker:  realm.v1.WorkerRequest */
  REALM_FRAME_WORKER_REPLY = 4,   /* worker -> runner:  realm.v1.WorkerReply   */
};
#define REALM_FRAME_KIND_MIN 1
#define REALM_FRAME_KIND_MAX 4

/* A parsed header (for logging and for fuzzers). */
typedef struct realm_frame_header {
  uint16_t version;
  uint16_t kind;
  uint32_t payload_len;
} realm_frame_header;

/* "runner_request", "worker_reply", ...; "unknown" for values outside the enum. */
const char *realm_frame_kind_name(unsigned kind);

/* Bytes realm_frame_encode() needs for msg: header plus packed size. */
size_t realm_frame_encoded_size(const ProtobufCMessage *msg);

/*
 * Writes the header for `kind` and msg's packed bytes into buf[0..cap). On success stores the
 * frame length in *ret_len and returns 0. Errors: REALM_E_INVALID_ARGUMENT for an unknown kind
 * or a message protobuf_c_message_check() rejects (a NULL element in a repeated string,
 * a NULL required sub-message); REALM_E_TOO_LARGE when
 * the frame does not fit cap or the payload does not fit the u32 length field.
 */
int realm_frame_encode(unsigned kind, const ProtobufCMessage *msg, uint8_t *buf, size_t cap,
                       size_t *ret_len, char *err, size_t errlen);

/*
 * Parses and checks the header of buf[0..len) without touching the payload: magic, version,
 * kind range, and that the payload length equals the bytes present and is at most max_bytes
 * (0 = REALM_MAX_FRAME_BYTES). Returns 0 and fills *ret_header, or the error
 * realm_frame_decode() would return for the header.
 */
int realm_frame_peek(const uint8_t *buf, size_t len, size_t max_bytes,
                     realm_frame_header *ret_header, char *err, size_t errlen);

/*
 * Decodes a whole frame: the header checks of realm_frame_peek(), then that the kind is
 * expected_kind, then unpacks the payload as desc (the envelope descriptor for that kind, e.g.
 * &realm__v1__worker_request__descriptor). On success *ret_msg owns the unpacked message;
 * free it with realm_frame_msg_free(). Errors, each with a message naming what was wrong:
 *   REALM_E_PROTOCOL  truncated header, bad magic, unknown or unexpected kind, length field
 *                     not matching the bytes present, payload protobuf-c cannot parse;
 *   REALM_E_VERSION   the peer speaks another version ("peer speaks protocol 7, this build
 *                     speaks 1");
 *   REALM_E_TOO_LARGE payload above max_bytes (0 = REALM_MAX_FRAME_BYTES), or one that would
 *                     unpack to more than REALM_FRAME_DECODE_AMPLIFICATION x its size;
 *   REALM_E_NOMEM     malloc failed while unpacking (the frame itself may be fine).
 */
int realm_frame_decode(const uint8_t *buf, size_t len, unsigned expected_kind,
                       const ProtobufCMessageDescriptor *desc, size_t max_bytes,
                       ProtobufCMessage **ret_msg, char *err, size_t errlen);

/* Frees a message returned by realm_frame_decode()/realm_ipc_recv(). Accepts NULL. */
void realm_frame_msg_free(ProtobufCMessage *msg);

#endif /* REALM_FRAME_H */
