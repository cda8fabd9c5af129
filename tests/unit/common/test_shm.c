/*
 * test_shm.c — sealed memfd regions: creation and mapping, the seals the kernel enforces
 * (no resize; after seal_readonly no write(2) and no PROT_WRITE mapping), refusal of unsealed
 * or out-of-limit fds from a peer, overflow-safe slices, and SCM_RIGHTS passing to a forked
 * child, including refusal of messages with surplus fds without leaking any.
 */
#include "realm/shm.h"
#include "realm_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int count_open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  while (readdir(d)) n++;
  closedir(d);
  return n;
}

TEST(shm_create_write_read) {
  char err[256] = "";
  realm_shm *r = NULL;
  CHECK_EQ_INT(realm_shm_create("test-a", 4096 * 3, 0, &r, err, sizeof err), REALM_OK);
  CHECK(r != NULL);
  CHECK_EQ_INT(realm_shm_size(r), 4096 * 3);
  CHECK(realm_shm_writable(r));
  unsigned char *p = realm_shm_data(r);
  CHECK(p != NULL);
  CHECK_EQ_INT(p[100], 0); /* zero-filled */
  for (int i = 0; i < 4096 * 3; i++) p[i] = (unsigned char)(i * 7);
  unsigned char back[16];
  CHECK_EQ_INT(pread(realm_shm_fd(r), back, sizeof back, 5000), (long)sizeof back);
  for (int i = 0; i < 16; i++) CHECK_EQ_INT(back[i], (unsigned char)((5000 + i) * 7));
  int fl = fcntl(realm_shm_fd(r), F_GETFD);
  CHECK(fl >= 0 && (fl & FD_CLOEXEC));
  int seals = fcntl(realm_shm_fd(r), F_GET_SEALS);
  CHECK_EQ_INT(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
               F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  realm_shm_destroy(r);
  realm_shm_destroy(NULL);
}

TEST(shm_create_refuses_bad_sizes) {
  char err[256] = "";
  realm_shm *r = (realm_shm *)0x1;
  CHECK_EQ_INT(realm_shm_create("z", 0, 0, &r, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(realm_shm_create("big", (size_t)REALM_MAX_SHM_BYTES + 1, 0, &r, err, sizeof err),
               REALM_E_TOO_LARGE);
  CHECK_STR_CONTAINS(err, "above the maximum");
  CHECK_EQ_INT(realm_shm_create("f", 16, 0x80, &r, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK(r == (realm_shm *)0x1); /* untouched on failure */
}

TEST(shm_seals_refuse_resize) {
  char err[256] = "";
  realm_shm *r = NULL;
  CHECK_EQ_INT(realm_shm_create("resize", 8192, 0, &r, err, sizeof err), REALM_OK);
  errno = 0;
  CHECK_EQ_INT(ftruncate(realm_shm_fd(r), 4096), -1);
  CHECK_EQ_INT(errno, EPERM);
  errno = 0;
  CHECK_EQ_INT(ftruncate(realm_shm_fd(r), 1 << 20), -1);
  CHECK_EQ_INT(errno, EPERM);
  /* the final seal set also refuses write-sealing and unsealing attempts */
  CHECK_EQ_INT(fcntl(realm_shm_fd(r), F_ADD_SEALS, F_SEAL_WRITE), -1);
  CHECK_EQ_INT(realm_shm_seal_readonly(r, err, sizeof err), REALM_E_PERMISSION);
  CHECK_STR_CONTAINS(err, "REALM_SHM_SEALABLE");
  CHECK(realm_shm_writable(r)); /* still usable as before */
  ((char *)realm_shm_data(r))[0] = 'x';
  realm_shm_destroy(r);
}

TEST(shm_seal_readonly_refuses_writes) {
  char err[256] = "";
  realm_shm *r = NULL;
  CHECK_EQ_INT(realm_shm_create("weights", 4096, REALM_SHM_SEALABLE, &r, err, sizeof err),
               REALM_OK);
  memcpy(realm_shm_data(r), "weights!", 8);
  int fd = realm_shm_fd(r);

  /* A second writable mapping blocks sealing; the region stays writable. */
  void *extra = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  CHECK(extra != MAP_FAILED);
  CHECK_EQ_INT(realm_shm_seal_readonly(r, err, sizeof err), REALM_E_PERMISSION);
  CHECK_STR_CONTAINS(err, "writable shared mapping");
  CHECK(realm_shm_writable(r));
  CHECK(memcmp(realm_shm_data(r), "weights!", 8) == 0);
  munmap(extra, 4096);

  CHECK_EQ_INT(realm_shm_seal_readonly(r, err, sizeof err), REALM_OK);
  CHECK(!realm_shm_writable(r));
  CHECK(memcmp(realm_shm_data(r), "weights!", 8) == 0);
  CHECK_EQ_INT(realm_shm_seal_readonly(r, err, sizeof err), REALM_OK); /* idempotent */
  errno = 0;
  CHECK_EQ_INT(pwrite(fd, "X", 1, 0), -1);
  CHECK_EQ_INT(errno, EPERM);
  errno = 0;
  CHECK(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
  CHECK_EQ_INT(errno, EPERM);
  /* a peer asking for a writable mapping of it is refused by us before the kernel */
  int dupfd = dup(fd);
  realm_shm *peer = NULL;
  CHECK_EQ_INT(realm_shm_from_fd(dupfd, 0, true, &peer, err, sizeof err), REALM_E_PERMISSION);
  CHECK_STR_CONTAINS(err, "write-sealed");
  CHECK_EQ_INT(realm_shm_from_fd(dupfd, 4096, false, &peer, err, sizeof err), REALM_OK);
  CHECK(memcmp(realm_shm_data(peer), "weights!", 8) == 0);
  realm_shm_destroy(peer);
  realm_shm_destroy(r);
}

TEST(shm_from_fd_refuses_unsealed_and_bad_sizes) {
  char err[256] = "";
  realm_shm *r = NULL;
  /* memfd without MFD_ALLOW_SEALING: the peer could shrink it under us */
  int raw = memfd_create("unsealed", MFD_CLOEXEC);
  CHECK(raw >= 0);
  CHECK_EQ_INT(ftruncate(raw, 4096), 0);
  CHECK_EQ_INT(realm_shm_from_fd(raw, 0, false, &r, err, sizeof err), REALM_E_PERMISSION);
  CHECK_STR_CONTAINS(err, "lack F_SEAL_SHRINK|F_SEAL_GROW");
  CHECK(r == NULL);
  CHECK(fcntl(raw, F_GETFD) >= 0); /* caller still owns it */
  close(raw);
  /* sealable but only grow-sealed */
  raw = memfd_create("half", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  CHECK_EQ_INT(ftruncate(raw, 4096), 0);
  CHECK_EQ_INT(fcntl(raw, F_ADD_SEALS, F_SEAL_GROW), 0);
  CHECK_EQ_INT(realm_shm_from_fd(raw, 0, false, &r, err, sizeof err), REALM_E_PERMISSION);
  close(raw);
  /* not a memfd at all */
  int pipefd[2];
  CHECK_EQ_INT(pipe(pipefd), 0);
  CHECK_EQ_INT(realm_shm_from_fd(pipefd[0], 0, false, &r, err, sizeof err), REALM_E_PERMISSION);
  CHECK_STR_CONTAINS(err, "not a sealable memfd");
  close(pipefd[0]);
  close(pipefd[1]);
  /* sealed but too small, or empty */
  raw = memfd_create("small", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  CHECK_EQ_INT(ftruncate(raw, 100), 0);
  CHECK_EQ_INT(fcntl(raw, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
  CHECK_EQ_INT(realm_shm_from_fd(raw, 4096, false, &r, err, sizeof err), REALM_E_OUT_OF_RANGE);
  CHECK_STR_CONTAINS(err, "size 100 is outside the accepted range 4096..");
  CHECK_EQ_INT(realm_shm_from_fd(raw, 100, true, &r, err, sizeof err), REALM_OK);
  realm_shm_destroy(r); /* closes raw */
  raw = memfd_create("empty", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  CHECK_EQ_INT(fcntl(raw, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
  r = NULL;
  CHECK_EQ_INT(realm_shm_from_fd(raw, 0, false, &r, err, sizeof err), REALM_E_OUT_OF_RANGE);
  close(raw);
  CHECK_EQ_INT(realm_shm_from_fd(-1, 0, false, &r, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK(r == NULL);
}

TEST(shm_slice_bounds_and_overflow) {
  char err[256] = "";
  realm_shm *r = NULL;
  CHECK_EQ_INT(realm_shm_create("slice", 1000, 0, &r, err, sizeof err), REALM_OK);
  void *p = NULL;
  CHECK_EQ_INT(realm_shm_slice(r, 0, 1000, &p, err, sizeof err), REALM_OK);
  CHECK(p == realm_shm_data(r));
  CHECK_EQ_INT(realm_shm_slice(r, 990, 10, &p, err, sizeof err), REALM_OK);
  CHECK(p == (char *)realm_shm_data(r) + 990);
  CHECK_EQ_INT(realm_shm_slice(r, 1000, 0, &p, err, sizeof err), REALM_OK);
  void *untouched = (void *)0x1234;
  p = untouched;
  CHECK_EQ_INT(realm_shm_slice(r, 990, 11, &p, err, sizeof err), REALM_E_OUT_OF_RANGE);
  CHECK_STR_EQ(err, "shm slice: offset 990 + len 11 exceeds region size 1000");
  CHECK_EQ_INT(realm_shm_slice(r, 1001, 0, &p, err, sizeof err), REALM_E_OUT_OF_RANGE);
  /* offset + len wraps to a small number: must still be refused */
  CHECK_EQ_INT(realm_shm_slice(r, 16, UINT64_MAX - 8, &p, err, sizeof err), REALM_E_OUT_OF_RANGE);
  CHECK_EQ_INT(realm_shm_slice(r, UINT64_MAX, 2, &p, err, sizeof err), REALM_E_OUT_OF_RANGE);
  CHECK_STR_CONTAINS(err, "offset 18446744073709551615 + len 2");
  CHECK(p == untouched);
  CHECK_EQ_INT(realm_shm_slice(NULL, 0, 0, &p, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  realm_shm_destroy(r);
}

TEST(shm_fd_passing_to_forked_child) {
  char err[256] = "";
  int sv[2];
  CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    /* child: receive the region, check the payload and bytes, write an answer into it */
    close(sv[0]);
    char cerr[256];
    char hello[32];
    size_t n = 0;
    int fd = -1;
    if (realm_fd_recv(sv[1], &fd, hello, sizeof hello, &n, cerr, sizeof cerr) != REALM_OK) _exit(10);
    if (n != 6 || memcmp(hello, "hello", 6) != 0 || fd < 0) _exit(11);
    if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC)) _exit(12);
    realm_shm *cr = NULL;
    if (realm_shm_from_fd(fd, 8192, true, &cr, cerr, sizeof cerr) != REALM_OK) _exit(13);
    void *p;
    if (realm_shm_slice(cr, 4096, 5, &p, cerr, sizeof cerr) != REALM_OK) _exit(14);
    if (memcmp(p, "ping!", 5) != 0) _exit(15);
    memcpy(p, "pong!", 5);
    realm_shm_destroy(cr);
    _exit(0);
  }
  close(sv[1]);
  realm_shm *r = NULL;
  CHECK_EQ_INT(realm_shm_create("conn", 8192, 0, &r, err, sizeof err), REALM_OK);
  memcpy((char *)realm_shm_data(r) + 4096, "ping!", 5);
  CHECK_EQ_INT(realm_fd_send(sv[0], realm_shm_fd(r), "hello", 6, err, sizeof err), REALM_OK);
  int status = 0;
  CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
  CHECK(WIFEXITED(status));
  CHECK_EQ_INT(WEXITSTATUS(status), 0);
  CHECK(memcmp((char *)realm_shm_data(r) + 4096, "pong!", 5) == 0);
  realm_shm_destroy(r);
  close(sv[0]);
}

/* Sends a message carrying nfds copies of fd with raw sendmsg, as a hostile peer would. */
static int send_many_fds(int sock, int fd, int nfds) {
  int fds[64];
  for (int i = 0; i < nfds; i++) fds[i] = fd;
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof fds)];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = {.iov_base = "x", .iov_len = 1};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                       .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds)};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
  return (int)sendmsg(sock, &msg, 0);
}

TEST(shm_fd_recv_refuses_surplus_fds_without_leaking) {
  char err[256] = "";
  int sv[2];
  CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  int before = count_open_fds();
  char buf[8];
  size_t n = 77;
  int fd = -77;
  /* two fds */
  CHECK_EQ_INT(send_many_fds(sv[0], sv[0], 2), 1);
  CHECK_EQ_INT(realm_fd_recv(sv[1], &fd, buf, sizeof buf, &n, err, sizeof err), REALM_E_PROTOCOL);
  CHECK_STR_CONTAINS(err, "carried 2 fds");
  CHECK_EQ_INT(count_open_fds(), before);
  /* more fds than our control buffer holds: MSG_CTRUNC */
  CHECK_EQ_INT(send_many_fds(sv[0], sv[0], 40), 1);
  CHECK_EQ_INT(realm_fd_recv(sv[1], &fd, buf, sizeof buf, &n, err, sizeof err), REALM_E_PROTOCOL);
  CHECK_STR_CONTAINS(err, "control data truncated");
  CHECK_EQ_INT(count_open_fds(), before);
  CHECK_EQ_INT(fd, -77);
  CHECK_EQ_INT(n, 77);
  /* payload larger than the buffer, with one fd: refused and the fd closed */
  CHECK_EQ_INT(realm_fd_send(sv[0], sv[0], "0123456789abcdef", 16, err, sizeof err), REALM_OK);
  CHECK_EQ_INT(realm_fd_recv(sv[1], &fd, buf, sizeof buf, &n, err, sizeof err), REALM_E_TOO_LARGE);
  CHECK_EQ_INT(count_open_fds(), before);
  /* a message with no fd is fine and says so */
  CHECK_EQ_INT(realm_fd_send(sv[0], -1, "ok", 2, err, sizeof err), REALM_OK);
  CHECK_EQ_INT(realm_fd_recv(sv[1], &fd, buf, sizeof buf, &n, err, sizeof err), REALM_OK);
  CHECK_EQ_INT(fd, -1);
  CHECK_EQ_INT(n, 2);
  /* peer gone */
  close(sv[0]);
  CHECK_EQ_INT(realm_fd_recv(sv[1], &fd, buf, sizeof buf, &n, err, sizeof err), REALM_E_UNAVAILABLE);
  CHECK_EQ_INT(realm_fd_send(sv[1], -1, "x", 1, err, sizeof err), REALM_E_UNAVAILABLE);
  close(sv[1]);
}

TEST(shm_fd_passing_refuses_stream_sockets) {
  char err[256] = "";
  int sv[2];
  CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  CHECK_EQ_INT(realm_fd_send(sv[0], -1, "x", 1, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "not SOCK_SEQPACKET or SOCK_DGRAM");
  CHECK_EQ_INT(realm_fd_send(sv[0], -1, "x", 0, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  close(sv[0]);
  close(sv[1]);
}
