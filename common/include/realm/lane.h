/*
 * lane.h — the step lane: Step requests and their replies carried through a connection's
 * shared region, with an eventfd doorbell each way, instead of through libzmq's I/O threads.
 *
 * Why (docs/protocol.md §6.2). A ZeroMQ message crosses four threads: the sender, its I/O
 * thread, the receiver's I/O thread, the receiver. On a virtual machine each hand-off to a
 * halted vCPU costs an inter-processor interrupt through the hypervisor, 50–100 µs measured
 * here, so one Step round trip costs 200–300 µs: 3–5 % of a 7 ms decode step, the whole of
 * the worker's socket overhead. The lane moves the same framed protobuf bytes through memory
 * both processes already map, and wakes the peer directly: one hand-off per direction, none
 * when the peer is spinning for it. Everything else (Hello, sessions, Matmul, Stats, notices,
 * tcp:// peers) stays on ZeroMQ, and either side may fall back to ZeroMQ for any one Step.
 *
 * The lane is a one-slot mailbox each way at the end of the region (REALM_LANE_BYTES):
 *
 *   +0      req_seq, req_len      written by the runner
 *   +64     rep_seq, rep_len      written by the worker
 *   +4096   request frame         (REALM_LANE_REQ_CAP bytes)
 *   +16384  reply frame           (REALM_LANE_REP_CAP bytes)
 *
 * The client (runner) posts a frame with seq = previous + 1 and rings the worker's eventfd;
 * the server (worker) takes a request when req_seq differs from the last one it took, and
 * answers with rep_seq = that seq and rings the runner's eventfd. At most one request is
 * outstanding: the client posts again only after it took the reply. The data is written
 * before its seq (release) and read after it (acquire).
 *
 * Trust: the worker never reads the lane in place. A request is copied out, its length
 * bounded by the capacity, and decoded by realm_frame_decode like a ZeroMQ frame; a runner
 * that scribbles on its lane only garbles its own requests. The doorbells are per connection,
 * so one tenant cannot swallow another's wake-ups.
 */
#ifndef REALM_LANE_H
#define REALM_LANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

struct realm_shm;

#define REALM_LANE_BYTES (64u << 10)
#define REALM_LANE_REQ_OFF 4096u
#define REALM_LANE_REQ_CAP (12u << 10)
#define REALM_LANE_REP_OFF (16u << 10)
#define REALM_LANE_REP_CAP (48u << 10)

/* One side's view of a lane. Zero-initialised = no lane. */
typedef struct realm_lane {
  uint8_t *base;       /* REALM_LANE_BYTES of the shared region; NULL: no lane */
  int to_worker;       /* eventfd: the runner rings it, the worker polls it */
  int to_runner;       /* eventfd: the worker rings it, the runner polls it */
  uint32_t seq;        /* client: last posted; server: last taken */
  bool busy;           /* client: posted, reply not taken; server: taken, not answered */
  uint8_t *scratch;    /* private copy of a frame being decoded */
} realm_lane;

/* Makes the two non-blocking close-on-exec eventfds (the worker, at Hello). */
int realm_lane_doorbells_new(int ret_fds[2], char *err, size_t errlen);

/* Points l at base (REALM_LANE_BYTES, 64-byte aligned) and takes ownership of the two
 * eventfds (closed by realm_lane_detach, and on failure). */
int realm_lane_attach(realm_lane *l, void *base, int to_worker, int to_runner, char *err,
                      size_t errlen);
/* Closes the eventfds and forgets the lane (the region itself belongs to its owner). */
void realm_lane_detach(realm_lane *l);
static inline bool realm_lane_on(const realm_lane *l) { return l && l->base; }

/* Client: frames msg (kind REALM_FRAME_WORKER_REQUEST) into the request slot and rings the
 * worker. REALM_E_TOO_LARGE when it does not fit (send it on ZeroMQ instead), REALM_E_UNAVAILABLE
 * when a request is outstanding. */
int realm_lane_post(realm_lane *l, const ProtobufCMessage *msg, char *err, size_t errlen);
/* Client: the reply to the outstanding request, decoded with desc (realm.v1.WorkerReply; free
 * with realm_frame_msg_free). REALM_E_TIMEOUT when it has not arrived; a decode error when
 * the frame is bad. */
int realm_lane_take_reply(realm_lane *l, const ProtobufCMessageDescriptor *desc,
                          ProtobufCMessage **ret_msg, char *err, size_t errlen);
/* Client: the worker answered the outstanding request on ZeroMQ instead (its reply did not
 * fit the slot): the lane is free for the next one. */
static inline void realm_lane_reply_elsewhere(realm_lane *l) { l->busy = false; }
/* Client: true once the reply to the outstanding request is in the slot (no copy, no decode:
 * what a spin loop checks). */
bool realm_lane_reply_ready(const realm_lane *l);

/* Server: the next request, copied out and decoded with desc (realm.v1.WorkerRequest).
 * REALM_E_TIMEOUT when there is none or one is still being answered; a decode error when the
 * frame is bad: the request is consumed all the same and must be answered (an error reply). */
int realm_lane_take_request(realm_lane *l, const ProtobufCMessageDescriptor *desc,
                            ProtobufCMessage **ret_msg, char *err, size_t errlen);
/* Server: true when a request the server has not taken is in the slot. */
bool realm_lane_request_ready(const realm_lane *l);
/* Server: frames msg (REALM_FRAME_WORKER_REPLY) as the answer to the taken request and rings
 * the runner. REALM_E_TOO_LARGE when it does not fit: the lane is freed all the same and the
 * caller sends the reply on ZeroMQ. */
int realm_lane_put_reply(realm_lane *l, const ProtobufCMessage *msg, char *err, size_t errlen);

/* Resets a doorbell after poll said it is readable. */
void realm_lane_clear(int efd);

/* The side-socket handshake (docs/protocol.md §6.1): after the region, the worker sends the
 * two doorbells as two messages, "lane-to-worker" and "lane-to-runner", one fd each. */
int realm_lane_send_doorbells(int sock, const int fds[2], char *err, size_t errlen);
int realm_lane_recv_doorbells(int sock, int ret_fds[2], char *err, size_t errlen);

/* Runner: after the region arrived on the side socket sock, receives the doorbells and
 * attaches l at offset (HelloReply.step_lane_offset) of region, which must hold the whole
 * lane at a 64-byte aligned offset. */
int realm_lane_adopt(realm_lane *l, const struct realm_shm *region, uint64_t offset, int sock,
                     char *err, size_t errlen);

#endif /* REALM_LANE_H */
