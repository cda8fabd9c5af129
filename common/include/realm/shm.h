/*
 * shm.h — sealed shared-memory regions for tensors, and passing their fds between processes.
 *
 * On one host tensors never travel inside ZeroMQ messages (DESIGN.md §2): a runner connection
 * gets a memfd region, sent once over a Unix socket with SCM_RIGHTS, and messages carry only
 * offsets into it. Two threats shape this API:
 *
 *  1. A peer that can shrink the file makes our next access to a mapped page SIGBUS. So every
 *     region is sealed with F_SEAL_SHRINK|F_SEAL_GROW at creation, and realm_shm_from_fd
 *     refuses any fd that lacks those seals or whose size is outside the limits.
 *  2. Offsets come from the peer. Every access goes through realm_shm_slice, which checks
 *     offset and length against the mapped size without integer wraparound.
 *
 * Typical use:
 *   creator:  realm_shm_create("conn-7", bytes, 0, &r, err, sizeof err);
 *             realm_fd_send(sock, realm_shm_fd(r), &hello, sizeof hello, err, sizeof err);
 *   peer:     realm_fd_recv(sock, &fd, &hello, sizeof hello, &n, err, sizeof err);
 *             realm_shm_from_fd(fd, min_bytes, true, &r, err, sizeof err);
 *   both:     realm_shm_slice(r, msg->offset, msg->len, &p, err, sizeof err);
 *
 * Model weights use REALM_SHM_SEALABLE: write them, then realm_shm_seal_readonly makes the
 * region immutable for every process that ever receives it.
 */
#ifndef REALM_SHM_H
#define REALM_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "realm/error.h"
#include "realm/limits.h"

typedef struct realm_shm realm_shm;

/* realm_shm_create flags. */
enum {
  /* Leave the seal set open (no F_SEAL_SEAL) so realm_shm_seal_readonly can add F_SEAL_WRITE
   * later. Without this flag the seals are final at creation. A peer holding such an fd can
   * only add seals too (e.g. F_SEAL_WRITE), which fails while we hold a writable mapping. */
  REALM_SHM_SEALABLE = 1u << 0,
};

/* Creates an anonymous memfd of size bytes (1..REALM_MAX_SHM_BYTES; name is for
 * /proc/PID/fd and debugging), sealed against shrinking and growing, mapped read-write and
 * zero-filled. The fd is close-on-exec. Errors: INVALID_ARGUMENT (size 0, bad flags),
 * TOO_LARGE, SYSTEM (memfd_create/ftruncate/fcntl/mmap failed, errno text in err). */
int realm_shm_create(const char *name, size_t size, unsigned flags, realm_shm **ret_region,
                     char *err, size_t errlen);

/* Makes a REALM_SHM_SEALABLE region immutable: drops our writable mapping, adds
 * F_SEAL_WRITE|F_SEAL_SEAL, and maps it again read-only. The kernel refuses F_SEAL_WRITE while
 * ANY writable shared mapping of the file exists, in this process (e.g. one inherited by a
 * fork, or made with mmap on realm_shm_fd) or in any other: unmap those first. On that refusal
 * the region is left writable as before and REALM_E_PERMISSION is returned. A region created
 * without REALM_SHM_SEALABLE gets REALM_E_PERMISSION too. Already read-only: no-op. */
int realm_shm_seal_readonly(realm_shm *region, char *err, size_t errlen);

/* Adopts an fd received from a peer. Refuses (REALM_E_PERMISSION) an fd that is not a
 * sealable memfd or lacks F_SEAL_SHRINK|F_SEAL_GROW, and one that is write-sealed when
 * writable is requested; refuses (REALM_E_OUT_OF_RANGE) a size of 0, below expected_min_size
 * or above REALM_MAX_SHM_BYTES. Maps the whole file, read-only unless writable. On success the
 * region owns fd (realm_shm_destroy closes it); on failure the caller still owns it. */
int realm_shm_from_fd(int fd, size_t expected_min_size, bool writable, realm_shm **ret_region,
                      char *err, size_t errlen);

/* Points *ret_ptr at bytes [offset, offset+len) of the region. Overflow-safe: refuses with
 * REALM_E_OUT_OF_RANGE, naming offset, len and size in err, any range not wholly inside the
 * region (len 0 at offset == size is allowed). Writing through the pointer of a read-only
 * region faults: check realm_shm_writable first when the peer chose the mode. */
int realm_shm_slice(const realm_shm *region, uint64_t offset, uint64_t len, void **ret_ptr,
                    char *err, size_t errlen);

/* Accessors; NULL region gives NULL / 0 / -1 / false. */
void *realm_shm_data(const realm_shm *region);
size_t realm_shm_size(const realm_shm *region);
int realm_shm_fd(const realm_shm *region); /* still owned by the region: do not close */
bool realm_shm_writable(const realm_shm *region);

/* Unmaps and closes. Accepts NULL. */
void realm_shm_destroy(realm_shm *region);

/* ---- passing fds over Unix sockets ---- */

/* Sends payload (1..len bytes, one message) with fd attached as SCM_RIGHTS, or with no fd when
 * fd < 0. The socket must keep message boundaries (SOCK_SEQPACKET or SOCK_DGRAM; a stream
 * socket is refused with REALM_E_INVALID_ARGUMENT) so a payload can never merge with the next.
 * Never raises SIGPIPE. Errors: UNAVAILABLE (peer gone), TIMEOUT (EAGAIN: non-blocking socket or
 * SO_SNDTIMEO), SYSTEM. */
int realm_fd_send(int sock, int fd, const void *payload, size_t len, char *err, size_t errlen);

/* Receives one message into payload (cap bytes) and the fd it carried. *ret_fd is the fd
 * (close-on-exec, now owned by the caller) or -1 when the message carried none; *ret_len the
 * payload length. Refuses, closing every fd that arrived: more than one fd (PROTOCOL),
 * truncated control data (MSG_CTRUNC, PROTOCOL), a payload longer than cap (TOO_LARGE).
 * A closed peer is UNAVAILABLE; EAGAIN (SO_RCVTIMEO or non-blocking) is TIMEOUT. *ret_fd and
 * *ret_len are untouched on failure (the payload buffer may have been written). */
int realm_fd_recv(int sock, int *ret_fd, void *payload, size_t cap, size_t *ret_len, char *err,
                  size_t errlen);

#endif /* REALM_SHM_H */
