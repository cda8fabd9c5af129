/*
 * supervise.c — the restart loop of supervise.h.
 *
 * fork + execvp per start; the wait for the child ends when it exits or a signal sets *stop
 * (the caller's handler must not use SA_RESTART). Back-off doubles from backoff_ms to
 * max_backoff_ms and resets once a child stayed up healthy_after_ms, so a crash loop cannot
 * spin the CPU while an occasional crash is repaired fast.
 *
 * The wait is a ppoll on the child's pidfd with every signal blocked except inside ppoll,
 * which unblocks them atomically: a stop signal that lands just before the wait begins is
 * still seen. (A plain blocking waitpid missed it: the handler ran before waitpid, waitpid
 * then slept until the child died on its own — forever for a healthy runner.)
 *
 * fork runs with every signal blocked, and the child resets the signals we handle to their
 * defaults before unblocking: otherwise a SIGTERM sent to a child that has not reached execvp
 * yet would run our stop handler in the child (setting its copy of *stop) and be lost, and
 * stop_child would wait the whole grace period for a child that never heard it.
 */
#include "supervise.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "realm/error.h"

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps ms unless *stop gets set (a signal interrupts nanosleep). */
static void pause_ms(int64_t ms, volatile sig_atomic_t *stop) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (!*stop && nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* SIGTERM, wait up to grace_ms, then SIGKILL; reaps the child. */
static int stop_child(pid_t pid, int64_t grace_ms) {
  int status = 0;
  kill(pid, SIGTERM);
  int64_t until = mono_ms() + grace_ms;
  while (mono_ms() < until) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) return status;
    if (w < 0 && errno != EINTR) return status;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
  kill(pid, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

/* fork + execvp without the window described at the top of the file. Returns the child's
 * pid (it exits 127 when execvp fails), or -1 with errno from fork. */
static pid_t start_child(char *const argv[]) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  pid_t pid = fork();
  if (pid == 0) {
    /* Only async-signal-safe calls here: the parent may have had other threads. */
    for (int sig = 1; sig < NSIG; sig++) {
      struct sigaction sa;
      if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL &&
          sa.sa_handler != SIG_IGN)
        signal(sig, SIG_DFL);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    execvp(argv[0], argv);
    _exit(127);
  }
  int saved = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = saved;
  return pid;
}

/* Waits until child pid ends (1, *ret_status set) or *stop is set (0), or fails (-errno).
 * With a pidfd (>= 0) no stop signal is lost (see the top of the file); without one (a
 * kernel or container profile without pidfd_open) it falls back to a blocking waitpid,
 * which a stop signal interrupts unless it lands just before the call. */
static int wait_child_or_stop(pid_t pid, int pidfd, volatile sig_atomic_t *stop,
                              int *ret_status) {
  int status = 0, rc;
  if (pidfd < 0) {
    for (;;) {
      if (*stop) return 0;
      pid_t w = waitpid(pid, &status, 0);
      if (w == pid) {
        *ret_status = status;
        return 1;
      }
      if (w < 0 && errno != EINTR) return -errno;
    }
  }
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      *ret_status = status;
      rc = 1;
      break;
    }
    if (w < 0 && errno != EINTR) {
      rc = -errno;
      break;
    }
    if (*stop) {
      rc = 0;
      break;
    }
    /* Signals are deliverable only while ppoll waits: a handler that sets *stop ends the
     * wait with EINTR, and the next round sees the flag. */
    struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
    if (ppoll(&pfd, 1, NULL, &old) < 0 && errno != EINTR) {
      rc = -errno;
      break;
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

int realm_supervise(const struct realm_supervise_opts *o, char *err, size_t errlen) {
  int64_t restarts = 0, delay = o->backoff_ms > 0 ? o->backoff_ms : 100;
  for (;;) {
    if (*o->stop) return REALM_OK;
    int64_t started = mono_ms();
    pid_t pid = start_child(o->argv);
    if (pid < 0) {
      snprintf(err, errlen, "fork: %s", strerror(errno));
      return REALM_E_SYSTEM;
    }
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (o->on_start) o->on_start(o->user, pid, restarts);
    int status = 0;
    int rc = wait_child_or_stop(pid, pidfd, o->stop, &status);
    if (pidfd >= 0) close(pidfd);
    if (rc == 0) {
      status = stop_child(pid, o->stop_grace_ms > 0 ? o->stop_grace_ms : 5000);
      if (o->on_exit) o->on_exit(o->user, pid, status, restarts);
      return REALM_OK;
    }
    if (rc < 0) {
      snprintf(err, errlen, "waitpid: %s", strerror(-rc));
      return REALM_E_SYSTEM;
    }
    if (o->on_exit) o->on_exit(o->user, pid, status, restarts);
    if (*o->stop) return REALM_OK;
    if (o->max_restarts >= 0 && restarts >= o->max_restarts) {
      snprintf(err, errlen, "gave up after %lld restarts; last child %s %d",
               (long long)restarts, WIFSIGNALED(status) ? "killed by signal" : "exited with",
               WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
      return REALM_E_UNAVAILABLE;
    }
    if (o->healthy_after_ms > 0 && mono_ms() - started >= o->healthy_after_ms)
      delay = o->backoff_ms > 0 ? o->backoff_ms : 100;
    pause_ms(delay, o->stop);
    delay *= 2;
    if (o->max_backoff_ms > 0 && delay > o->max_backoff_ms) delay = o->max_backoff_ms;
    restarts++;
  }
}
