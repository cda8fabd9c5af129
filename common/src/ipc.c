/*
 * ipc.c — Realm frames over ZeroMQ ROUTER/DEALER sockets (see realm/ipc.h).
 *
 * The receive path is where a misbehaving peer meets our process, so it enforces the shape of
 * every message before decoding: the expected number of parts (1 on a DEALER, 2 on a ROUTER),
 * a routing id no longer than ZMTP allows, and the frame limits of frame.c. A refused message
 * is consumed to its last part, so the next receive starts on a message boundary; a ROUTER
 * still reports who sent it, so the caller can answer with an error instead of leaving the
 * peer waiting.
 *
 * Sends encode straight into a zmq_msg_t of the exact size, so a frame is built once and never
 * copied again on our side.
 */
#include "realm/ipc.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include <zmq.h>

#include "realm/error.h"
#include "realm/frame.h"

/* Heartbeats let a DEALER notice a peer that vanished without closing its connection (a
 * killed process over tcp://, a cable); ipc:// peers close cleanly but it costs nothing. */
#define IPC_HEARTBEAT_IVL_MS 1000
#define IPC_HEARTBEAT_TIMEOUT_MS 5000
#define IPC_RECONNECT_IVL_MAX_MS 2000

/* Maps a libzmq errno to a realm code with a message naming the operation. */
static int ipc_zmq_fail(int errnum, const char *what, char *err, size_t errlen) {
  int code;
  switch (errnum) {
  case EAGAIN: code = REALM_E_TIMEOUT; break;
  case ETERM: code = REALM_E_SHUTTING_DOWN; break;
  case EHOSTUNREACH: code = REALM_E_UNAVAILABLE; break;
  case EINVAL: code = REALM_E_INVALID_ARGUMENT; break;
  default: code = realm_err_from_errno(errnum); break;
  }
  return realm_fail(code, err, errlen, "%s: %s", what, zmq_strerror(errnum));
}

int realm_ipc_ctx_new(void **ret_ctx, char *err, size_t errlen) {
  void *ctx = zmq_ctx_new();
  if (!ctx) return ipc_zmq_fail(zmq_errno(), "zmq_ctx_new", err, errlen);
  /* Policy only: the priority stays what SCHED_OTHER had (0), which SCHED_BATCH requires. */
  if (zmq_ctx_set(ctx, ZMQ_THREAD_SCHED_POLICY, SCHED_BATCH) != 0) {
    int e = zmq_errno();
    zmq_ctx_term(ctx);
    return ipc_zmq_fail(e, "zmq_ctx_set(ZMQ_THREAD_SCHED_POLICY, SCHED_BATCH)", err, errlen);
  }
  *ret_ctx = ctx;
  return 0;
}

int realm_ipc_socket_new(void *zmq_ctx, int zmq_type, size_t max_payload_bytes, void **ret_sock,
                         char *err, size_t errlen) {
  if (zmq_type != ZMQ_ROUTER && zmq_type != ZMQ_DEALER)
    return realm_fail(REALM_E_INVALID_ARGUMENT, err, errlen,
                      "socket type %d: only ZMQ_ROUTER and ZMQ_DEALER are used", zmq_type);
  if (max_payload_bytes == 0) max_payload_bytes = REALM_MAX_FRAME_BYTES;
  void *sock = zmq_socket(zmq_ctx, zmq_type);
  if (!sock) return ipc_zmq_fail(zmq_errno(), "zmq_socket", err, errlen);

  int zero = 0, one = 1;
  int64_t max_msg = (int64_t)max_payload_bytes + REALM_FRAME_HEADER_BYTES;
  int hb_ivl = IPC_HEARTBEAT_IVL_MS, hb_timeout = IPC_HEARTBEAT_TIMEOUT_MS;
  int reconnect_max = IPC_RECONNECT_IVL_MAX_MS;
  struct {
    int option;
    const void *value;
    size_t size;
    const char *name;
  } opts[] = {
      {ZMQ_LINGER, &zero, sizeof zero, "ZMQ_LINGER"},
      {ZMQ_IPV6, &zero, sizeof zero, "ZMQ_IPV6"},
      {ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg, "ZMQ_MAXMSGSIZE"},
      {ZMQ_HEARTBEAT_IVL, &hb_ivl, sizeof hb_ivl, "ZMQ_HEARTBEAT_IVL"},
      {ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout, "ZMQ_HEARTBEAT_TIMEOUT"},
      {ZMQ_RECONNECT_IVL_MAX, &reconnect_max, sizeof reconnect_max, "ZMQ_RECONNECT_IVL_MAX"},
      {zmq_type == ZMQ_ROUTER ? ZMQ_ROUTER_MANDATORY : -1, &one, sizeof one,
       "ZMQ_ROUTER_MANDATORY"},
      {zmq_type == ZMQ_DEALER ? ZMQ_IMMEDIATE : -1, &one, sizeof one, "ZMQ_IMMEDIATE"},
  };
  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
    if (opts[i].option < 0) continue;
    if (zmq_setsockopt(sock, opts[i].option, opts[i].value, opts[i].size) != 0) {
      int e = zmq_errno();
      zmq_close(sock);
      return ipc_zmq_fail(e, opts[i].name, err, errlen);
    }
  }
  *ret_sock = sock;
  return 0;
}

void realm_ipc_socket_close(void *sock) {
  if (sock) zmq_close(sock);
}

int realm_ipc_endpoint(char *buf, size_t cap, const char *dir, const char *name, char *err,
                       size_t errlen) {
  size_t max_path = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
  if (!buf || !dir || !name)
    return realm_fail(REALM_E_INVALID_ARGUMENT, err, errlen, "ipc endpoint: NULL argument");
  size_t path_len = strlen(dir) + 1 + strlen(name);
  if (path_len > max_path)
    return realm_fail(REALM_E_TOO_LARGE, err, errlen,
                      "socket path of %zu bytes, a Unix socket allows %zu: %s/%s", path_len,
                      max_path, dir, name);
  int n = snprintf(buf, cap, "ipc://%s/%s", dir, name);
  if (n < 0 || (size_t)n >= cap)
    return realm_fail(REALM_E_TOO_LARGE, err, errlen, "endpoint ipc://%s/%s does not fit %zu bytes",
                      dir, name, cap);
  return 0;
}

int realm_ipc_send(void *sock, const realm_ipc_peer *to, unsigned kind,
                   const ProtobufCMessage *msg, int zmq_flags, char *err, size_t errlen) {
  if (!sock || !msg)
    return realm_fail(REALM_E_INVALID_ARGUMENT, err, errlen, "ipc send: NULL %s",
                      sock ? "message" : "socket");
  /* realm_frame_encoded_size() walks the message; refuse NULL fields before it does. */
  if (!protobuf_c_message_check(msg))
    return realm_fail(REALM_E_INVALID_ARGUMENT, err, errlen,
                      "message %s fails protobuf_c_message_check (NULL string or field?)",
                      msg->descriptor->name);
  if (to && to->len > sizeof to->id)
    return realm_fail(REALM_E_INVALID_ARGUMENT, err, errlen, "routing id of %zu bytes", to->len);

  size_t need = realm_frame_encoded_size(msg);
  zmq_msg_t frame;
  if (zmq_msg_init_size(&frame, need) != 0)
    return realm_fail(REALM_E_NOMEM, err, errlen, "no memory for a %zu-byte frame", need);
  size_t len = 0;
  int r = realm_frame_encode(kind, msg, zmq_msg_data(&frame), need, &len, err, errlen);
  if (r < 0) {
    zmq_msg_close(&frame);
    return r;
  }
  if (to && zmq_send(sock, to->id, to->len, zmq_flags | ZMQ_SNDMORE) < 0) {
    int e = zmq_errno();
    zmq_msg_close(&frame);
    return ipc_zmq_fail(e, e == EHOSTUNREACH ? "send: peer is gone" : "send routing id", err,
                        errlen);
  }
  if (zmq_msg_send(&frame, sock, zmq_flags) < 0) {
    int e = zmq_errno();
    zmq_msg_close(&frame);
    return ipc_zmq_fail(e, "send frame", err, errlen);
  }
  return 0; /* zmq_msg_send took ownership of the frame */
}

/* Consumes the remaining parts of a multipart message. Parts of one message arrive together,
 * so every receive here finds its part without waiting and the loop ends with the message.
 * Returns the number of parts consumed. */
static size_t ipc_drain(void *sock) {
  size_t parts = 0;
  int more = 1;
  while (more) {
    zmq_msg_t part;
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, sock, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&part);
      break;
    }
    parts++;
    more = zmq_msg_more(&part);
    zmq_msg_close(&part);
  }
  return parts;
}

int realm_ipc_recv(void *sock, realm_ipc_peer *ret_from, unsigned expected_kind,
                   const ProtobufCMessageDescriptor *desc, size_t max_payload_bytes,
                   int zmq_flags, ProtobufCMessage **ret_msg, char *err, size_t errlen) {
  if (!sock || !desc || !ret_msg)
    return realm_fail(REALM_E_INVALID_ARGUMENT, err, errlen, "ipc recv: NULL argument");
  size_t expected_parts = ret_from ? 2 : 1;
  zmq_msg_t part;
  zmq_msg_init(&part);
  if (zmq_msg_recv(&part, sock, zmq_flags) < 0) {
    int e = zmq_errno();
    zmq_msg_close(&part);
    return ipc_zmq_fail(e, "receive", err, errlen);
  }

  if (ret_from) {
    /* On a ROUTER the first part is the routing id libzmq attached: always present, at most
     * 255 bytes by ZMTP; checked anyway because the struct is sized for that. */
    size_t id_len = zmq_msg_size(&part);
    int more = zmq_msg_more(&part);
    if (id_len > sizeof ret_from->id) {
      zmq_msg_close(&part);
      if (more) ipc_drain(sock);
      return realm_fail(REALM_E_PROTOCOL, err, errlen, "routing id of %zu bytes (max %zu)", id_len,
                        sizeof ret_from->id);
    }
    memcpy(ret_from->id, zmq_msg_data(&part), id_len);
    ret_from->len = id_len;
    zmq_msg_close(&part);
    if (!more)
      return realm_fail(REALM_E_PROTOCOL, err, errlen,
                        "message has 1 part, expected 2 ([routing id][frame])");
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, sock, ZMQ_DONTWAIT) < 0) {
      int e = zmq_errno();
      zmq_msg_close(&part);
      return ipc_zmq_fail(e, "receive frame part", err, errlen);
    }
  }

  if (zmq_msg_more(&part)) {
    zmq_msg_close(&part);
    size_t extra = ipc_drain(sock);
    return realm_fail(REALM_E_PROTOCOL, err, errlen, "message has %zu parts, expected %zu%s",
                      expected_parts + extra, expected_parts,
                      ret_from ? " ([routing id][frame])" : " ([frame])");
  }

  ProtobufCMessage *msg = NULL;
  int r = realm_frame_decode(zmq_msg_data(&part), zmq_msg_size(&part), expected_kind, desc,
                             max_payload_bytes, &msg, err, errlen);
  zmq_msg_close(&part);
  if (r < 0) return r;
  *ret_msg = msg;
  return 0;
}
