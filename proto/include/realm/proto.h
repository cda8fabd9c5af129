/*
 * proto.h — typed glue between the generated realm.v1 messages and the frame/ipc layer.
 *
 * One include for a process that speaks the protocol: the generated headers, the envelope
 * descriptor for each frame kind, and the one family of functions that turns a realm error
 * code into an Error reply on the wire (the protocol's counterpart of the gateway's single
 * error-to-HTTP path). Everything here is static inline because it needs the generated code,
 * which is built after common/ (so it cannot live in realm_common); link proto_dep and
 * common_dep.
 *
 * String fields set here point at static or caller-owned strings: the messages are meant to
 * be packed and dropped, never passed to protobuf_c_message_free_unpacked().
 */
#ifndef REALM_PROTO_H
#define REALM_PROTO_H

#include <stdint.h>
#include <stdio.h>

#include "realm/error.h"
#include "realm/frame.h"
#include "realm/ipc.h"
#include "realm/v1/common.pb-c.h"
#include "realm/v1/runner.pb-c.h"
#include "realm/v1/worker.pb-c.h"

/* The envelope each frame kind carries; NULL for an unknown kind. */
static inline const ProtobufCMessageDescriptor *realm_proto_descriptor(unsigned kind) {
  switch (kind) {
  case REALM_FRAME_RUNNER_REQUEST: return &realm__v1__runner_request__descriptor;
  case REALM_FRAME_RUNNER_EVENT: return &realm__v1__runner_event__descriptor;
  case REALM_FRAME_WORKER_REQUEST: return &realm__v1__worker_request__descriptor;
  case REALM_FRAME_WORKER_REPLY: return &realm__v1__worker_reply__descriptor;
  default: return NULL;
  }
}

/* The kind a server answers a request kind with (RUNNER_REQUEST -> RUNNER_EVENT,
 * WORKER_REQUEST -> WORKER_REPLY); 0 for anything else. */
static inline unsigned realm_proto_reply_kind(unsigned request_kind) {
  switch (request_kind) {
  case REALM_FRAME_RUNNER_REQUEST: return REALM_FRAME_RUNNER_EVENT;
  case REALM_FRAME_WORKER_REQUEST: return REALM_FRAME_WORKER_REPLY;
  default: return 0;
  }
}

/* Fills an Error for a realm code: its stable name, and `message` or the table's default
 * message when NULL. `param` may be NULL. Strings are borrowed, not copied. */
static inline void realm_proto_error_set(Realm__V1__Error *e, int code, const char *message,
                                         const char *param) {
  realm__v1__error__init(e);
  e->code = (char *)realm_err_name(code);
  e->message = (char *)(message && message[0] ? message : realm_err_message(code));
  if (param) e->param = (char *)param;
}

/* The realm code an Error names; REALM_E_INTERNAL for NULL, empty or unknown names (a newer
 * peer's code this build does not know). Never returns 0: an Error always means failure. */
static inline int realm_proto_error_code(const Realm__V1__Error *e) {
  if (!e || !e->code || !e->code[0]) return REALM_E_INTERNAL;
  int code = realm_err_from_name(e->code);
  return code == 0 ? REALM_E_INTERNAL : code;
}

/*
 * Sends a WorkerReply{request_id, error} (worker -> runner). request_id 0 marks a notice not
 * tied to a request (shutting down, unparseable frame). Returns realm_ipc_send()'s result.
 */
static inline int realm_proto_send_worker_error(void *sock, const realm_ipc_peer *to,
                                                uint64_t request_id, int code,
                                                const char *message, char *err, size_t errlen) {
  Realm__V1__Error e;
  realm_proto_error_set(&e, code, message, NULL);
  Realm__V1__WorkerReply reply;
  realm__v1__worker_reply__init(&reply);
  reply.request_id = request_id;
  reply.body_case = REALM__V1__WORKER_REPLY__BODY_ERROR;
  reply.error = &e;
  return realm_ipc_send(sock, to, REALM_FRAME_WORKER_REPLY, &reply.base, 0, err, errlen);
}

/*
 * Sends an error to the gateway (runner -> gateway). With a request_id it is the terminal
 * GenerateEvent{request_id, error} of that request; with NULL it is a RunnerEvent.error for a
 * frame that could not be attributed to a request. `param` names the offending request field
 * (OpenAI "param"), or NULL.
 */
static inline int realm_proto_send_runner_error(void *sock, const realm_ipc_peer *to,
                                                const char *request_id, int code,
                                                const char *message, const char *param,
                                                char *err, size_t errlen) {
  Realm__V1__Error e;
  realm_proto_error_set(&e, code, message, param);
  Realm__V1__RunnerEvent ev;
  realm__v1__runner_event__init(&ev);
  Realm__V1__GenerateEvent gen;
  if (request_id) {
    realm__v1__generate_event__init(&gen);
    gen.request_id = (char *)request_id;
    gen.kind_case = REALM__V1__GENERATE_EVENT__KIND_ERROR;
    gen.error = &e;
    ev.body_case = REALM__V1__RUNNER_EVENT__BODY_EVENT;
    ev.event = &gen;
  } else {
    ev.body_case = REALM__V1__RUNNER_EVENT__BODY_ERROR;
    ev.error = &e;
  }
  return realm_ipc_send(sock, to, REALM_FRAME_RUNNER_EVENT, &ev.base, 0, err, errlen);
}

/*
 * Answers a request frame that realm_ipc_recv() refused (code PROTOCOL, VERSION, TOO_LARGE)
 * with the matching reply envelope's error, so the peer fails fast with a clear message
 * instead of waiting. request_kind is the kind the server expected to receive. A peer of
 * another version will in turn fail to decode this reply with REALM_E_VERSION, naming both
 * versions on its side too.
 */
static inline int realm_proto_send_frame_error(void *sock, const realm_ipc_peer *to,
                                               unsigned request_kind, int code,
                                               const char *message, char *err, size_t errlen) {
  switch (request_kind) {
  case REALM_FRAME_WORKER_REQUEST:
    return realm_proto_send_worker_error(sock, to, 0, code, message, err, errlen);
  case REALM_FRAME_RUNNER_REQUEST:
    return realm_proto_send_runner_error(sock, to, NULL, code, message, NULL, err, errlen);
  default:
    if (err && errlen) snprintf(err, errlen, "frame kind %u has no error reply", request_kind);
    return REALM_E_INVALID_ARGUMENT;
  }
}

#endif /* REALM_PROTO_H */
