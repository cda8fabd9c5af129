/*
 * lane.c — the step lane (see realm/lane.h): a one-slot mailbox each way in the shared
 * region, with eventfd doorbells.
 */
#include "realm/lane.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "realm/error.h"
#include "realm/frame.h"
#include "realm/limits.h"
#include "realm/shm.h"

/* The two header lines, each written by one side only. */
struct lane_line {
  uint32_t seq;
  uint32_t len;
};
#define REQ_LINE(l) ((struct lane_line *)(void *)((l)->base))
#define REP_LINE(l) ((struct lane_line *)(void *)((l)->base + 64))

static const char TAG_TO_WORKER[] = "lane-to-worker";
static const char TAG_TO_RUNNER[] = "lane-to-runner";

int realm_lane_doorbells_new(int ret_fds[2], char *err, size_t errlen) {
  for (int i = 0; i < 2; i++) {
    ret_fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ret_fds[i] < 0) {
      int e = errno;
      if (i == 1) close(ret_fds[0]);
      ret_fds[0] = ret_fds[1] = -1;
      return realm_fail(REALM_E_SYSTEM, err, errlen, "step lane doorbell: eventfd: %s",
                        strerror(e));
    }
  }
  return 0;
}

int realm_lane_attach(realm_lane *l, void *base, int to_worker, int to_runner, char *err,
                      size_t errlen) {
  memset(l, 0, sizeof *l);
  l->to_worker = l->to_runner = -1;
  if (!base || ((uintptr_t)base % 64) != 0 || to_worker < 0 || to_runner < 0) {
    if (to_worker >= 0) close(to_worker);
    if (to_runner >= 0) close(to_runner);
    return realm_fail(REALM_E_INVALID_ARGUMENT, err, errlen,
                      "step lane: %s", !base || ((uintptr_t)base % 64) ? "base not 64-byte aligned"
                                                                       : "a doorbell fd is missing");
  }
  l->scratch = malloc(REALM_LANE_REP_CAP);
  if (!l->scratch) {
    close(to_worker);
    close(to_runner);
    return realm_fail(REALM_E_NOMEM, err, errlen, "step lane: no memory for its scratch copy");
  }
  l->base = base;
  l->to_worker = to_worker;
  l->to_runner = to_runner;
  /* Both sides start from what the region holds: 0 in a fresh one. */
  l->seq = __atomic_load_n(&REQ_LINE(l)->seq, __ATOMIC_ACQUIRE);
  return 0;
}

void realm_lane_detach(realm_lane *l) {
  if (!l) return;
  if (l->to_worker >= 0 && l->base) close(l->to_worker);
  if (l->to_runner >= 0 && l->base) close(l->to_runner);
  free(l->scratch);
  memset(l, 0, sizeof *l);
  l->to_worker = l->to_runner = -1;
}

static void ring(int efd) {
  uint64_t one = 1;
  ssize_t n = write(efd, &one, sizeof one); /* EAGAIN: the counter is saturated, still rung */
  (void)n;
}

void realm_lane_clear(int efd) {
  uint64_t v;
  ssize_t n = read(efd, &v, sizeof v); /* non-blocking: resets the counter or EAGAIN */
  (void)n;
}

/* Frames msg into a slot and publishes it under seq. */
static int put(struct lane_line *line, uint8_t *slot, size_t cap, unsigned kind,
               const ProtobufCMessage *msg, uint32_t seq, char *err, size_t errlen) {
  size_t len = 0;
  int rc = realm_frame_encode(kind, msg, slot, cap, &len, err, errlen);
  if (rc < 0) return rc;
  __atomic_store_n(&line->len, (uint32_t)len, __ATOMIC_RELAXED);
  __atomic_store_n(&line->seq, seq, __ATOMIC_RELEASE);
  return 0;
}

/* Copies the published frame of a slot out (length bounded by cap) and decodes it. */
static int get(realm_lane *l, const struct lane_line *line, const uint8_t *slot, size_t cap,
               unsigned kind, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret_msg,
               char *err, size_t errlen) {
  uint32_t len = __atomic_load_n(&line->len, __ATOMIC_RELAXED);
  if (len > cap)
    return realm_fail(REALM_E_TOO_LARGE, err, errlen,
                      "step lane: frame length %u above the slot's %zu bytes", len, cap);
  memcpy(l->scratch, slot, len);
  return realm_frame_decode(l->scratch, len, kind, desc, cap, ret_msg, err, errlen);
}

int realm_lane_post(realm_lane *l, const ProtobufCMessage *msg, char *err, size_t errlen) {
  if (!realm_lane_on(l)) return realm_fail(REALM_E_UNAVAILABLE, err, errlen, "no step lane");
  if (l->busy)
    return realm_fail(REALM_E_UNAVAILABLE, err, errlen, "step lane: a request is outstanding");
  int rc = put(REQ_LINE(l), l->base + REALM_LANE_REQ_OFF, REALM_LANE_REQ_CAP,
               REALM_FRAME_WORKER_REQUEST, msg, l->seq + 1, err, errlen);
  if (rc < 0) return rc;
  l->seq++;
  l->busy = true;
  ring(l->to_worker);
  return 0;
}

bool realm_lane_reply_ready(const realm_lane *l) {
  return realm_lane_on(l) && l->busy &&
         __atomic_load_n(&REP_LINE(l)->seq, __ATOMIC_ACQUIRE) == l->seq;
}

int realm_lane_take_reply(realm_lane *l, const ProtobufCMessageDescriptor *desc,
                          ProtobufCMessage **ret_msg, char *err, size_t errlen) {
  if (!realm_lane_reply_ready(l)) return REALM_E_TIMEOUT;
  l->busy = false;
  return get(l, REP_LINE(l), l->base + REALM_LANE_REP_OFF, REALM_LANE_REP_CAP,
             REALM_FRAME_WORKER_REPLY, desc, ret_msg, err, errlen);
}

bool realm_lane_request_ready(const realm_lane *l) {
  return realm_lane_on(l) && !l->busy &&
         __atomic_load_n(&REQ_LINE(l)->seq, __ATOMIC_ACQUIRE) != l->seq;
}

int realm_lane_take_request(realm_lane *l, const ProtobufCMessageDescriptor *desc,
                            ProtobufCMessage **ret_msg, char *err, size_t errlen) {
  if (!realm_lane_request_ready(l)) return REALM_E_TIMEOUT;
  l->seq = __atomic_load_n(&REQ_LINE(l)->seq, __ATOMIC_ACQUIRE);
  l->busy = true; /* answered even when the frame is bad: the runner waits for this seq */
  return get(l, REQ_LINE(l), l->base + REALM_LANE_REQ_OFF, REALM_LANE_REQ_CAP,
             REALM_FRAME_WORKER_REQUEST, desc, ret_msg, err, errlen);
}

int realm_lane_put_reply(realm_lane *l, const ProtobufCMessage *msg, char *err, size_t errlen) {
  if (!realm_lane_on(l) || !l->busy)
    return realm_fail(REALM_E_INVALID_ARGUMENT, err, errlen, "step lane: no request to answer");
  l->busy = false;
  int rc = put(REP_LINE(l), l->base + REALM_LANE_REP_OFF, REALM_LANE_REP_CAP,
               REALM_FRAME_WORKER_REPLY, msg, l->seq, err, errlen);
  if (rc < 0) return rc;
  ring(l->to_runner);
  return 0;
}

int realm_lane_send_doorbells(int sock, const int fds[2], char *err, size_t errlen) {
  int rc = realm_fd_send(sock, fds[0], TAG_TO_WORKER, sizeof TAG_TO_WORKER - 1, err, errlen);
  if (rc == 0) rc = realm_fd_send(sock, fds[1], TAG_TO_RUNNER, sizeof TAG_TO_RUNNER - 1, err, errlen);
  return rc;
}

int realm_lane_recv_doorbells(int sock, int ret_fds[2], char *err, size_t errlen) {
  const char *tags[2] = {TAG_TO_WORKER, TAG_TO_RUNNER};
  ret_fds[0] = ret_fds[1] = -1;
  for (int i = 0; i < 2; i++) {
    char buf[32];
    size_t n = 0;
    int fd = -1;
    int rc = realm_fd_recv(sock, &fd, buf, sizeof buf, &n, err, errlen);
    if (rc == 0 && (fd < 0 || n != strlen(tags[i]) || memcmp(buf, tags[i], n) != 0)) {
      rc = realm_fail(REALM_E_PROTOCOL, err, errlen,
                      "step lane handshake: expected '%s' with an fd", tags[i]);
      if (fd >= 0) close(fd);
    }
    if (rc < 0) {
      if (i == 1) close(ret_fds[0]);
      ret_fds[0] = -1;
      return rc;
    }
    ret_fds[i] = fd;
  }
  return 0;
}

int realm_lane_adopt(realm_lane *l, const struct realm_shm *region, uint64_t offset, int sock,
                     char *err, size_t errlen) {
  size_t size = realm_shm_size(region);
  if (offset == 0 || offset % 64 != 0 || offset > size || size - offset < REALM_LANE_BYTES)
    return realm_fail(REALM_E_PROTOCOL, err, errlen,
                      "step lane offset %llu does not leave %u aligned bytes in a %zu-byte region",
                      (unsigned long long)offset, REALM_LANE_BYTES, size);
  int fds[2];
  int rc = realm_lane_recv_doorbells(sock, fds, err, errlen);
  if (rc < 0) return rc;
  return realm_lane_attach(l, (uint8_t *)realm_shm_data(region) + offset, fds[0], fds[1], err,
                           errlen);
}
