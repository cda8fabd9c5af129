/*
 * ipc.h — sending and receiving Realm frames over ZeroMQ ROUTER/DEALER sockets.
 *
 * Both links (gateway<->runner, runner<->worker) use the same shape: the serving side binds a
 * ROUTER, each client connects a DEALER. A DEALER message is exactly one part, the frame; a
 * ROUTER sees exactly two parts, [peer routing id][frame]. Anything else is refused and its
 * remaining parts are drained so the socket stays usable for the next message.
 *
 * This layer knows frames (realm/frame.h) and generic protobuf-c messages only; the typed
 * envelopes and the error-reply builders are in "realm/proto.h" (from proto_dep), because the
 * generated code is built after common/. ZeroMQ sockets are not thread-safe: use each socket
 * from one thread.
 */
#ifndef REALM_IPC_H
#define REALM_IPC_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "realm/limits.h"

/* The routing id ZeroMQ prepends on a ROUTER (at most 255 bytes by the ZMTP spec). */
typedef struct realm_ipc_peer {
  size_t len;
  uint8_t id[REALM_MAX_IDENTITY_BYTES];
} realm_ipc_peer;

/*
 * Creates a ZMQ_ROUTER or ZMQ_DEALER socket on zmq_ctx with Realm's options:
 *   ZMQ_LINGER 0          closing never blocks on unsent messages (a dead peer cannot hang
 *                         shutdown);
 *   ZMQ_MAXMSGSIZE        header + max_payload_bytes (0 = REALM_MAX_FRAME_BYTES): libzmq drops
 *                         a peer that sends a larger part before we ever allocate it;
 *   ZMQ_IPV6 0, ZMQ_ROUTER_MANDATORY 1 on routers (sending to a gone peer fails with
 *                         REALM_E_UNAVAILABLE instead of vanishing silently);
 *   ZMQ_IMMEDIATE 1 on dealers: nothing is queued while the peer is not connected, so a
 *                         send with ZMQ_DONTWAIT to a down server fails (REALM_E_TIMEOUT) and
 *                         requests never pile up for a restarting peer that will not know
 *                         them (a blocking send waits for the connection);
 *   ZMQ_HEARTBEAT_IVL/TIMEOUT (1 s / 5 s) so a dead tcp:// peer is noticed;
 *   ZMQ_RECONNECT_IVL_MAX 2 s so a restarting peer is retried with back-off.
 * Bind or connect it yourself. Errors: REALM_E_INVALID_ARGUMENT for another type, else the
 * failing zmq call's errno folded by realm_err_from_errno().
 */
int realm_ipc_socket_new(void *zmq_ctx, int zmq_type, size_t max_payload_bytes, void **ret_sock,
                         char *err, size_t errlen);

/*
 * A ZeroMQ context for a process on the decode path (worker, runner) whose I/O threads run
 * under SCHED_BATCH. Every Step round trip is four thread hand-offs inside libzmq (caller →
 * its I/O thread → peer's I/O thread → peer's loop), each an eventfd wake-up. Under the
 * default policy the woken I/O thread preempts the thread that woke it on the same CPU, so
 * the sender's zmq_msg_send returned only after the I/O thread's whole turn: ~80 µs per send
 * and ~0.5 ms per Step on a 2-vCPU VM. SCHED_BATCH threads do not preempt on wake-up;
 * bench-worker's batch-1 overhead per Step fell from 490–640 µs to 220–310 µs
 * (docs/worker.md). The policy is applied by libzmq when it starts the threads, i.e. at the
 * first socket: create sockets before a seccomp jail (libzmq aborts when
 * sched_setscheduler fails; deploy/seccomp profiles allow it). Returns 0 with *ret_ctx, or
 * a negative error with err naming the failing call.
 */
int realm_ipc_ctx_new(void **ret_ctx, char *err, size_t errlen);

/* zmq_close() for a socket from realm_ipc_socket_new(). Accepts NULL. */
void realm_ipc_socket_close(void *sock);

/*
 * Writes "ipc://<dir>/<name>" into buf[0..cap). Fails with REALM_E_TOO_LARGE when the path
 * would not fit a Unix socket address (107 bytes) or buf, naming the path.
 */
int realm_ipc_endpoint(char *buf, size_t cap, const char *dir, const char *name, char *err,
                       size_t errlen);

/*
 * Encodes msg as a frame of `kind` and sends it. On a ROUTER pass the destination `to`
 * (sent as the first part); on a DEALER pass NULL. zmq_flags may hold ZMQ_DONTWAIT.
 * Errors: those of realm_frame_encode(); REALM_E_UNAVAILABLE when a ROUTER has no such peer
 * (EHOSTUNREACH); REALM_E_TIMEOUT when the send would block (EAGAIN: high-water mark or
 * ZMQ_SNDTIMEO); REALM_E_SHUTTING_DOWN when the context is terminating; else system.
 */
int realm_ipc_send(void *sock, const realm_ipc_peer *to, unsigned kind,
                   const ProtobufCMessage *msg, int zmq_flags, char *err, size_t errlen);

/*
 * Receives one message and decodes its frame as desc (see realm_frame_decode()).
 * On a ROUTER pass ret_from: the message must be [routing id][frame]; on a DEALER pass NULL:
 * the message must be [frame]. max_payload_bytes 0 = REALM_MAX_FRAME_BYTES.
 *
 * Returns 0 and stores the message in *ret_msg (free with realm_frame_msg_free()).
 * Transport errors, after which nothing was consumed and *ret_from is untouched:
 *   REALM_E_TIMEOUT (EAGAIN: nothing there with ZMQ_DONTWAIT, or ZMQ_RCVTIMEO passed),
 *   REALM_E_SHUTTING_DOWN (context terminated), REALM_E_SYSTEM (EINTR, ...).
 * Message errors, after which the whole bad message has been consumed and — unlike the usual
 * ret_* rule, on purpose — *ret_from holds the sender so the caller can send it an error
 * reply: REALM_E_PROTOCOL (wrong part count, bad frame), REALM_E_VERSION, REALM_E_TOO_LARGE.
 */
int realm_ipc_recv(void *sock, realm_ipc_peer *ret_from, unsigned expected_kind,
                   const ProtobufCMessageDescriptor *desc, size_t max_payload_bytes,
                   int zmq_flags, ProtobufCMessage **ret_msg, char *err, size_t errlen);

#endif /* REALM_IPC_H */
