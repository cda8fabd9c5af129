/*
 * proc_util.h — child daemons for the tests that run a real program (realm-worker,
 * realm-gateway and their test-hooks builds): start one with its stderr on a pipe, wait for a
 * log line with a bound, wait for its exit with a bound (killing and reaping it past that).
 *
 * Every wait is a poll on the stderr pipe or on a pidfd against one CLOCK_MONOTONIC deadline,
 * so nothing sleeps and a hung child costs at most the caller's timeout. The child's stdout
 * goes to /dev/null: it must never mix into the test's TAP stream.
 *
 *   struct test_proc p;
 *   CHECK_EQ_INT(test_proc_spawn(&p, argv), 0);
 *   CHECK(test_proc_wait_log(&p, "worker ready", NULL, 10000));
 *   kill(p.pid, SIGTERM);
 *   CHECK_EQ_INT(test_proc_wait_exit(&p, 10000), 0);
 *
 * Header-only, static functions (like realm_test.h and wclient.h), so any test program can use
 * it through test_inc without a build-file change.
 */
#ifndef REALM_TEST_PROC_UTIL_H
#define REALM_TEST_PROC_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "time_util.h"

/* A running child. out holds what it wrote to stderr so far (NUL-terminated). 64 KiB is room
 * for a daemon's whole start-up and shutdown log at info level. */
struct test_proc {
  pid_t pid;
  int pidfd;  /* readable once the child has exited */
  int err_fd; /* read end of its stderr */
  bool eof;   /* the child closed its stderr */
  size_t n;
  char out[65536];
};

/* Waits up to timeout_ms for child pid (pidfd: its pidfd) to exit, then reaps it. Returns its
 * raw wait status, or -1 when it is still running (left running) or cannot be waited for. */
static inline int test_proc_reap_fd(pid_t pid, int pidfd, int timeout_ms) {
  struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
  int64_t end = test_mono_ms() + timeout_ms;
  int r;
  for (;;) {
    int64_t left = end - test_mono_ms();
    r = poll(&pfd, 1, left > 0 ? (int)left : 0);
    if (!(r < 0 && errno == EINTR)) break;
  }
  int st;
  return r == 1 && waitpid(pid, &st, 0) == pid ? st : -1;
}

/* test_proc_reap_fd for a child started some other way (posix_spawn): opens its pidfd. */
static inline int test_proc_reap(pid_t pid, int timeout_ms) {
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) return -1;
  int st = test_proc_reap_fd(pid, pidfd, timeout_ms);
  close(pidfd);
  return st;
}

/* Starts argv[0] with argv, stderr on a pipe, stdout on /dev/null. Returns 0, or -1 when the
 * pipe, the fork or the pidfd failed (nothing is left running then). */
static inline int test_proc_spawn(struct test_proc *p, char *const argv[]) {
  int fds[2];
  memset(p, 0, sizeof *p);
  p->pidfd = p->err_fd = -1;
  if (!argv || !argv[0] || pipe2(fds, O_CLOEXEC) != 0) return -1;
  p->pid = fork();
  if (p->pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (p->pid == 0) {
    dup2(fds[1], STDERR_FILENO); /* dup2 clears O_CLOEXEC on the copy */
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
    execv(argv[0], argv);
    _exit(127);
  }
  close(fds[1]);
  p->err_fd = fds[0];
  p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
  if (p->pidfd < 0) {
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    close(p->err_fd);
    p->err_fd = -1;
    return -1;
  }
  return 0;
}

/* Reads the child's stderr until needle appears at or after *from (from NULL: anywhere; on a
 * hit *from moves past it), EOF, a full buffer, or timeout_ms. needle NULL reads until EOF
 * (or the deadline) and returns false. */
static inline bool test_proc_wait_log(struct test_proc *p, const char *needle, size_t *from,
                                      int timeout_ms) {
  int64_t end = test_mono_ms() + timeout_ms;
  for (;;) {
    p->out[p->n] = '\0';
    const char *hit = needle ? strstr(p->out + (from ? *from : 0), needle) : NULL;
    if (hit) {
      if (from) *from = (size_t)(hit - p->out) + strlen(needle);
      return true;
    }
    int64_t now = test_mono_ms();
    if (p->eof || p->err_fd < 0 || now >= end || p->n + 1 >= sizeof p->out) return false;
    struct pollfd pfd = {.fd = p->err_fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)(end - now));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    ssize_t k = read(p->err_fd, p->out + p->n, sizeof p->out - 1 - p->n);
    if (k <= 0) p->eof = true;
    else p->n += (size_t)k;
  }
}

/* Collects the rest of the child's stderr until it closes it or timeout_ms passes. */
static inline void test_proc_drain(struct test_proc *p, int timeout_ms) {
  test_proc_wait_log(p, NULL, NULL, timeout_ms);
}

/* Waits for the child to exit: drains its stderr (timeout_ms at most), then waits on its
 * pidfd (timeout_ms at most). Returns the raw wait status, or -1 when it did not exit (it is
 * then killed, reaped, and its log printed as a TAP comment). Closes the pipe and the pidfd. */
static inline int test_proc_wait_status(struct test_proc *p, int timeout_ms) {
  test_proc_drain(p, timeout_ms);
  int st = test_proc_reap_fd(p->pid, p->pidfd, timeout_ms);
  if (st == -1) {
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    printf("# child %d did not exit within %d ms; killed. log:\n# %s\n", (int)p->pid, timeout_ms,
           p->out);
  }
  close(p->pidfd);
  close(p->err_fd);
  p->pidfd = p->err_fd = -1;
  return st;
}

/* A wait status as one number: the exit status, 128 + the signal that killed it, or -1. */
static inline int test_proc_status_code(int st) {
  if (st < 0) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* test_proc_wait_status as one number (see test_proc_status_code). */
static inline int test_proc_wait_exit(struct test_proc *p, int timeout_ms) {
  return test_proc_status_code(test_proc_wait_status(p, timeout_ms));
}

#endif /* REALM_TEST_PROC_UTIL_H */
