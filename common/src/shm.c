/*
 * shm.c — memfd regions sealed against resizing, adoption of peers' fds with the seal and
 * size checks that keep a hostile peer from making us SIGBUS, bounds-checked slices, and
 * SCM_RIGHTS fd passing that never leaks or accepts surplus descriptors.
 *
 * Invariants of a realm_shm:
 *   1. fd is a memfd carrying at least F_SEAL_SHRINK|F_SEAL_GROW, so size never changes.
 *   2. base maps exactly size bytes of fd, MAP_SHARED; writable says whether PROT_WRITE.
 *   3. 0 < size <= REALM_MAX_SHM_BYTES.
 */
#include "realm/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Most fds we make room for in one received message: enough to see (and close) surplus ones a
 * misbehaving peer attached, instead of letting the kernel drop them with MSG_CTRUNC only. */
#define FD_RECV_MAX_FDS 8

struct realm_shm {
  int fd;        /* memfd, sealed SHRINK|GROW; owned */
  void *base;    /* mapping of the whole file; NULL only after a failed re-map */
  size_t size;   /* file size in bytes, fixed by the seals */
  bool writable; /* mapped PROT_READ|PROT_WRITE */
};

static void close_keep_errno(int fd) {
  int saved = errno;
  if (fd >= 0) close(fd);
  errno = saved;
}

/* ---- regions ---- */

int realm_shm_create(const char *name, size_t size, unsigned flags, realm_shm **ret_region,
                     char *err, size_t errlen) {
  if (!ret_region || (flags & ~(unsigned)REALM_SHM_SEALABLE)) {
    realm_set_err(err, errlen, "shm create: invalid arguments (flags 0x%x)", flags);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (size == 0) {
    realm_set_err(err, errlen, "shm create: size 0 is not allowed");
    return REALM_E_INVALID_ARGUMENT;
  }
  if ((unsigned long long)size > REALM_MAX_SHM_BYTES) {
    realm_set_err(err, errlen, "shm create: size %zu is above the maximum %llu", size,
                  (unsigned long long)REALM_MAX_SHM_BYTES);
    return REALM_E_TOO_LARGE;
  }
  /* memfd names are limited to 249 bytes; the name is only a label, so cut it. */
  char label[64];
  snprintf(label, sizeof label, "%s", name && name[0] ? name : "realm-shm");

  int fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) {
    realm_set_err(err, errlen, "shm create '%s': memfd_create: %s", label, strerror(errno));
    return realm_err_from_errno(errno) == REALM_E_NOMEM ? REALM_E_NOMEM : REALM_E_SYSTEM;
  }
  if (ftruncate(fd, (off_t)size) != 0) {
    realm_set_err(err, errlen, "shm create '%s': ftruncate to %zu bytes: %s", label, size,
                  strerror(errno));
    close_keep_errno(fd);
    return REALM_E_SYSTEM;
  }
  int seals = F_SEAL_SHRINK | F_SEAL_GROW;
  if (!(flags & REALM_SHM_SEALABLE)) seals |= F_SEAL_SEAL;
  if (fcntl(fd, F_ADD_SEALS, seals) != 0) {
    realm_set_err(err, errlen, "shm create '%s': F_ADD_SEALS: %s", label, strerror(errno));
    close_keep_errno(fd);
    return REALM_E_SYSTEM;
  }
  void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    realm_set_err(err, errlen, "shm create '%s': mmap %zu bytes: %s", label, size, strerror(errno));
    close_keep_errno(fd);
    return REALM_E_NOMEM;
  }
  realm_shm *r = calloc(1, sizeof *r);
  if (!r) {
    munmap(base, size);
    close(fd);
    realm_set_err(err, errlen, "shm create '%s': out of memory", label);
    return REALM_E_NOMEM;
  }
  r->fd = fd;
  r->base = base;
  r->size = size;
  r->writable = true;
  *ret_region = r;
  return REALM_OK;
}

int realm_shm_seal_readonly(realm_shm *r, char *err, size_t errlen) {
  if (!r) {
    realm_set_err(err, errlen, "shm seal: region is NULL");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (!r->writable && r->base) {
    int seals = fcntl(r->fd, F_GET_SEALS);
    if (seals >= 0 && (seals & F_SEAL_WRITE)) return REALM_OK;
  }
  /* Our own writable mapping would make the kernel refuse F_SEAL_WRITE (EBUSY). */
  if (r->base) munmap(r->base, r->size);
  r->base = NULL;
  int rc = REALM_OK;
  if (fcntl(r->fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    int e = errno;
    if (e == EBUSY)
      realm_set_err(err, errlen,
                    "shm seal: a writable shared mapping of the region still exists (EBUSY); unmap "
                    "it (also in forked children and peers) before sealing");
    else if (e == EPERM)
      realm_set_err(err, errlen,
                    "shm seal: the seal set is final (region created without "
                    "REALM_SHM_SEALABLE)");
    else
      realm_set_err(err, errlen, "shm seal: F_ADD_SEALS: %s", strerror(e));
    rc = e == EBUSY || e == EPERM ? REALM_E_PERMISSION : REALM_E_SYSTEM;
  }
  /* Map again: read-only once sealed, or writable as before when sealing failed. */
  bool writable = rc != REALM_OK && r->writable;
  void *base = mmap(NULL, r->size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, r->fd, 0);
  if (base == MAP_FAILED) {
    if (rc == REALM_OK) realm_set_err(err, errlen, "shm seal: re-map: %s", strerror(errno));
    r->writable = false;
    return rc == REALM_OK ? REALM_E_NOMEM : rc;
  }
  r->base = base;
  r->writable = writable;
  return rc;
}

int realm_shm_from_fd(int fd, size_t expected_min_size, bool writable, realm_shm **ret_region,
                      char *err, size_t errlen) {
  if (fd < 0 || !ret_region) {
    realm_set_err(err, errlen, "shm from fd: invalid arguments (fd %d)", fd);
    return REALM_E_INVALID_ARGUMENT;
  }
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) {
    realm_set_err(err, errlen, "shm from fd %d: not a sealable memfd (F_GET_SEALS: %s)", fd,
                  strerror(errno));
    return REALM_E_PERMISSION;
  }
  const int need = F_SEAL_SHRINK | F_SEAL_GROW;
  if ((seals & need) != need) {
    realm_set_err(
        err, errlen,
        "shm from fd %d: seals 0x%x lack F_SEAL_SHRINK|F_SEAL_GROW; the peer could resize it", fd,
        (unsigned)seals);
    return REALM_E_PERMISSION;
  }
  if (writable && (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE))) {
    realm_set_err(err, errlen,
                  "shm from fd %d: writable mapping requested but the region is "
                  "write-sealed (seals 0x%x)",
                  fd, (unsigned)seals);
    return REALM_E_PERMISSION;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    realm_set_err(err, errlen, "shm from fd %d: fstat: %s", fd, strerror(errno));
    return REALM_E_SYSTEM;
  }
  /* Seals are final for size, so the size checked here is the size forever. */
  unsigned long long size = (unsigned long long)st.st_size;
  if (st.st_size <= 0 || size < expected_min_size || size > REALM_MAX_SHM_BYTES) {
    realm_set_err(err, errlen,
                  "shm from fd %d: size %lld is outside the accepted range %zu..%llu bytes", fd,
                  (long long)st.st_size, expected_min_size ? expected_min_size : 1,
                  (unsigned long long)REALM_MAX_SHM_BYTES);
    return REALM_E_OUT_OF_RANGE;
  }
  void *base = mmap(NULL, (size_t)size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    realm_set_err(err, errlen, "shm from fd %d: mmap %llu bytes %s: %s", fd, size,
                  writable ? "read-write" : "read-only", strerror(errno));
    return errno == EACCES || errno == EPERM ? REALM_E_PERMISSION : REALM_E_NOMEM;
  }
  realm_shm *r = calloc(1, sizeof *r);
  if (!r) {
    munmap(base, (size_t)size);
    realm_set_err(err, errlen, "shm from fd %d: out of memory", fd);
    return REALM_E_NOMEM;
  }
  r->fd = fd;
  r->base = base;
  r->size = (size_t)size;
  r->writable = writable;
  *ret_region = r;
  return REALM_OK;
}

int realm_shm_slice(const realm_shm *r, uint64_t offset, uint64_t len, void **ret_ptr, char *err,
                    size_t errlen) {
  if (!r || !r->base || !ret_ptr) {
    realm_set_err(err, errlen, "shm slice: region is not mapped");
    return REALM_E_INVALID_ARGUMENT;
  }
  /* Written as two comparisons so offset + len can never wrap around. */
  if (offset > r->size || len > (uint64_t)r->size - offset) {
    realm_set_err(err, errlen, "shm slice: offset %llu + len %llu exceeds region size %zu",
                  (unsigned long long)offset, (unsigned long long)len, r->size);
    return REALM_E_OUT_OF_RANGE;
  }
  *ret_ptr = (char *)r->base + offset;
  return REALM_OK;
}

void *realm_shm_data(const realm_shm *r) { return r ? r->base : NULL; }
size_t realm_shm_size(const realm_shm *r) { return r ? r->size : 0; }
int realm_shm_fd(const realm_shm *r) { return r ? r->fd : -1; }
bool realm_shm_writable(const realm_shm *r) { return r ? r->writable : false; }

void realm_shm_destroy(realm_shm *r) {
  if (!r) return;
  if (r->base) munmap(r->base, r->size);
  if (r->fd >= 0) close(r->fd);
  free(r);
}

/* ---- fd passing ---- */

/* Only message-preserving sockets: with SOCK_STREAM a payload could merge with the next one
 * and an fd could arrive attached to the wrong bytes. */
static int check_socket_type(int sock, const char *what, char *err, size_t errlen) {
  int type = 0;
  socklen_t tl = sizeof type;
  if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &tl) != 0) {
    realm_set_err(err, errlen, "%s: socket %d: %s", what, sock, strerror(errno));
    return REALM_E_INVALID_ARGUMENT;
  }
  if (type != SOCK_SEQPACKET && type != SOCK_DGRAM) {
    realm_set_err(err, errlen, "%s: socket %d is not SOCK_SEQPACKET or SOCK_DGRAM (type %d)", what,
                  sock, type);
    return REALM_E_INVALID_ARGUMENT;
  }
  return REALM_OK;
}

static int io_errno_to_code(int e) {
  if (e == EAGAIN || e == EWOULDBLOCK) return REALM_E_TIMEOUT;
  if (e == EPIPE || e == ECONNRESET || e == ENOTCONN || e == ECONNREFUSED) return REALM_E_UNAVAILABLE;
  return REALM_E_SYSTEM;
}

int realm_fd_send(int sock, int fd, const void *payload, size_t len, char *err, size_t errlen) {
  if (!payload || len == 0) {
    realm_set_err(err, errlen, "fd send: payload must be at least one byte");
    return REALM_E_INVALID_ARGUMENT;
  }
  int rc = check_socket_type(sock, "fd send", err, errlen);
  if (rc != REALM_OK) return rc;

  struct iovec iov = {.iov_base = (void *)payload, .iov_len = len};
  union {
    struct cmsghdr align; /* CMSG buffers must be aligned like cmsghdr */
    char buf[CMSG_SPACE(sizeof(int))];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (fd >= 0) {
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof ctl.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ssize_t n;
  do {
    n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    realm_set_err(err, errlen, "fd send on socket %d: %s", sock, strerror(errno));
    return io_errno_to_code(errno);
  }
  if ((size_t)n != len) { /* cannot happen on message sockets; refuse rather than assume */
    realm_set_err(err, errlen, "fd send on socket %d: sent %zd of %zu bytes", sock, n, len);
    return REALM_E_IO;
  }
  return REALM_OK;
}

int realm_fd_recv(int sock, int *ret_fd, void *payload, size_t cap, size_t *ret_len, char *err,
                  size_t errlen) {
  if (!ret_fd || !payload || cap == 0 || !ret_len) {
    realm_set_err(err, errlen, "fd recv: invalid arguments");
    return REALM_E_INVALID_ARGUMENT;
  }
  int rc = check_socket_type(sock, "fd recv", err, errlen);
  if (rc != REALM_OK) return rc;

  struct iovec iov = {.iov_base = payload, .iov_len = cap};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * FD_RECV_MAX_FDS)];
  } ctl;
  struct msghdr msg;
  ssize_t n;
  do {
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof ctl.buf;
    /* MSG_CMSG_CLOEXEC: the fd must not leak into anything we exec (realmctl up). */
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    realm_set_err(err, errlen, "fd recv on socket %d: %s", sock, strerror(errno));
    return io_errno_to_code(errno);
  }

  /* Collect every fd that arrived, whatever happens next, so none can leak. */
  int fds[FD_RECV_MAX_FDS];
  size_t nfds = 0, extra = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < cnt; i++) {
      int f;
      memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
      if (nfds < FD_RECV_MAX_FDS) fds[nfds++] = f;
      else { close(f); extra++; } /* unreachable with our buffer size, kept for safety */
    }
  }
  size_t total = nfds + extra;
  if (msg.msg_flags & MSG_CTRUNC) {
    rc = REALM_E_PROTOCOL;
    realm_set_err(err, errlen,
                  "fd recv on socket %d: control data truncated (peer sent more than %d "
                  "fds); message refused",
                  sock, FD_RECV_MAX_FDS);
  } else if (total > 1) {
    rc = REALM_E_PROTOCOL;
    realm_set_err(err, errlen, "fd recv on socket %d: message carried %zu fds, at most one allowed",
                  sock, total);
  } else if (msg.msg_flags & MSG_TRUNC) {
    rc = REALM_E_TOO_LARGE;
    realm_set_err(err, errlen, "fd recv on socket %d: payload longer than the %zu-byte buffer",
                  sock, cap);
  } else if (n == 0 && total == 0) {
    rc = REALM_E_UNAVAILABLE;
    realm_set_err(err, errlen, "fd recv on socket %d: peer closed the connection", sock);
  }
  if (rc != REALM_OK) {
    for (size_t i = 0; i < nfds; i++) close(fds[i]);
    return rc;
  }
  *ret_fd = nfds == 1 ? fds[0] : -1;
  *ret_len = (size_t)n;
  return REALM_OK;
}
