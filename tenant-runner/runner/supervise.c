/*
 * supervise.c — the restart loop of supervise.h.
 *
 * fork + execvp per start; waitpid blocks until the child ends or a signal sets *stop (the
 * caller's handler must not use SA_RESTART). Back-off doubles from backoff_ms to
 * max_backoff_ms and resets once a child stayed up healthy_after_ms, so a crash loop cannot
 * spin the CPU while an occasional crash is repaired fast.
 */
#include "supervise.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
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

int realm_supervise(const struct realm_supervise_opts *o, char *err, size_t errlen) {
  int64_t restarts = 0, delay = o->backoff_ms > 0 ? o->backoff_ms : 100;
  for (;;) {
    if (*o->stop) return REALM_OK;
    int64_t started = mono_ms();
    pid_t pid = fork();
    if (pid < 0) {
      snprintf(err, errlen, "fork: %s", strerror(errno));
      return REALM_E_SYSTEM;
    }
    if (pid == 0) {
      execvp(o->argv[0], o->argv);
      _exit(127);
    }
    if (o->on_start) o->on_start(o->user, pid, restarts);
    int status = 0;
    for (;;) {
      pid_t w = waitpid(pid, &status, 0);
      if (w == pid) break;
      if (w < 0 && errno == EINTR && *o->stop) {
        status = stop_child(pid, o->stop_grace_ms > 0 ? o->stop_grace_ms : 5000);
        if (o->on_exit) o->on_exit(o->user, pid, status, restarts);
        return REALM_OK;
      }
      if (w < 0 && errno != EINTR) {
        snprintf(err, errlen, "waitpid: %s", strerror(errno));
        return REALM_E_SYSTEM;
      }
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
