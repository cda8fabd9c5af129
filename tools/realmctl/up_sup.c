/*
 * up_sup.c — the multi-child supervisor of `realmctl up`.
 *
 * tenant-runner/runner/supervise.c (realm_supervise) restarts ONE command and blocks in
 * waitpid() on it; `up` runs a worker, many runners and a gateway at once and must also read
 * every child's output to prefix it. So this is the same policy — fork+exec per start,
 * exponential back-off from backoff_ms to max_backoff_ms that resets once a child stayed up
 * healthy_after_ms, SIGTERM then SIGKILL after a grace on stop — in a single-threaded poll()
 * loop over one pipe per child plus a signalfd for SIGCHLD/SIGINT/SIGTERM/SIGHUP.
 *
 * Invariants:
 *   1. A child is either running (pid > 0), scheduled (next_start_ms > 0) or retired.
 *   2. Every running child has its own pipe; its stdout and stderr both go there, and each
 *      complete line is printed once as "[name] line" on log_fd.
 *   3. All fds of up are close-on-exec, so a child inherits only its pipe and /dev/null.
 *   4. Every child runs in a process group of its own. A terminal's Ctrl-C (SIGINT to the
 *      foreground group) therefore reaches only up, which stops the children in order —
 *      the gateway first, draining its streams while runners and worker still serve them —
 *      instead of every daemon at once, which would cut the streams the drain is for.
 *      PR_SET_PDEATHSIG(SIGTERM) covers a kill -9 of up (a runner started as root loses it
 *      when it drops privileges: stop such an up with SIGTERM/SIGINT, not SIGKILL).
 *   5. Stop (up_sup_stop_role): SIGTERM, then SIGKILL after stop_grace_ms. A second stop
 *      signal while the gateway is stopping is passed on to it as a second SIGTERM, which
 *      makes it end the requests still in flight at once (with a shutting_down error event)
 *      instead of waiting out its drain; a second signal at any other moment, or a third,
 *      kills what is left at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "realm/error.h"
#include "up.h"

struct up_sup {
  struct up_sup_opts o;
  int sig_fd;                 /* signalfd for the blocked signals */
  sigset_t old_mask;          /* the mask before we blocked: what children get */
  bool stopping;              /* a stop signal was seen */
  int extra_stops;            /* stop signals seen after the first one (invariant 5) */
  struct up_child *children[UP_MAX_CHILDREN];
  size_t n;
};

int64_t up_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int up_sup_new(const struct up_sup_opts *opts, struct up_sup **ret, char *err, size_t errlen) {
  struct up_sup *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return REALM_E_NOMEM;
  }
  s->o = *opts;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  if (sigprocmask(SIG_BLOCK, &set, &s->old_mask) < 0 ||
      (s->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
    snprintf(err, errlen, "signalfd: %s", strerror(errno));
    free(s);
    return REALM_E_SYSTEM;
  }
  *ret = s;
  return 0;
}

static void free_argv(char **argv) {
  if (!argv) return;
  for (char **a = argv; *a; a++) free(*a);
  free(argv);
}

static char **copy_argv(char *const *argv) {
  size_t n = 0;
  while (argv[n]) n++;
  char **out = calloc(n + 1, sizeof *out);
  if (!out) return NULL;
  for (size_t i = 0; i < n; i++) {
    if (!(out[i] = strdup(argv[i]))) {
      free_argv(out);
      return NULL;
    }
  }
  return out;
}

void up_sup_free(struct up_sup *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) {
    struct up_child *c = s->children[i];
    if (c->pid > 0) { /* callers stop children first; this is the backstop */
      kill(c->pid, SIGKILL);
      waitpid(c->pid, NULL, 0);
    }
    if (c->out_fd >= 0) close(c->out_fd);
    free_argv(c->argv);
    free(c);
  }
  close(s->sig_fd);
  sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
  free(s);
}

/* Writes all of buf to fd (log output: a short write must not cut a line). */
static void write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    buf += n;
    len -= (size_t)n;
  }
}

/* Prints one complete line of a child with its prefix, then reports it. */
static void emit_line(struct up_sup *s, struct up_child *c, char *line, size_t len) {
  char head[128];
  int hn = snprintf(head, sizeof head, "[%s] ", c->name);
  struct iovec_like {
    const char *p;
    size_t n;
  } parts[] = {{head, (size_t)hn}, {line, len}, {"\n", 1}};
  /* One buffer so concurrent writers to a terminal cannot interleave inside a line. */
  char out[sizeof c->line + 160];
  size_t o = 0;
  for (size_t i = 0; i < 3; i++) {
    size_t n = parts[i].n < sizeof out - o ? parts[i].n : sizeof out - o;
    memcpy(out + o, parts[i].p, n);
    o += n;
  }
  write_all(s->o.log_fd, out, o);
  line[len] = '\0';
  if (s->o.hooks.on_line) s->o.hooks.on_line(s->o.hooks.user, c, line);
}

/* Reads what the child's pipe has; returns false at EOF (the pipe is then closed). */
static bool pump(struct up_sup *s, struct up_child *c) {
  char buf[4096];
  ssize_t n = read(c->out_fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) {
    if (c->line_len > 0) emit_line(s, c, c->line, c->line_len);
    c->line_len = 0;
    close(c->out_fd);
    c->out_fd = -1;
    return false;
  }
  for (ssize_t i = 0; i < n; i++) {
    if (buf[i] == '\n') {
      emit_line(s, c, c->line, c->line_len);
      c->line_len = 0;
    } else if (c->line_len + 1 >= sizeof c->line) { /* an overlong line is cut, not lost */
      emit_line(s, c, c->line, c->line_len);
      c->line_len = 0;
      c->line[c->line_len++] = buf[i];
    } else {
      c->line[c->line_len++] = buf[i];
    }
  }
  return true;
}

static void sup_log(struct up_sup *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sup_log(struct up_sup *s, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof buf - 2) n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  write_all(s->o.log_fd, buf, (size_t)n);
}

/* fork + exec one child with its output on a fresh pipe. */
static int start_child(struct up_sup *s, struct up_child *c) {
  if (c->out_fd >= 0) { /* leftovers of the previous run (a grandchild may hold it open) */
    close(c->out_fd);
    c->out_fd = -1;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return -errno;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(p[0]);
    close(p[1]);
    return -e;
  }
  if (pid == 0) {
    /* Only async-signal-safe calls from here to exec. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1); /* up died between fork and prctl */
    setpgid(0, 0);                     /* invariant 4: Ctrl-C reaches up, not the child */
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(p[1], 1);
    dup2(p[1], 2);
    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
    execv(c->argv[0], c->argv);
    static const char msg[] = "exec failed\n";
    write_all(2, msg, sizeof msg - 1);
    _exit(127);
  }
  close(p[1]);
  /* Also from this side, so the child is in its own group before up returns to its loop
   * (whichever of the two calls runs first wins; the other fails harmlessly). */
  setpgid(pid, pid);
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  c->out_fd = p[0];
  c->line_len = 0;
  c->pid = pid;
  c->started_ms = up_now_ms();
  c->next_start_ms = 0;
  c->ready = false;
  if (s->o.hooks.on_start) s->o.hooks.on_start(s->o.hooks.user, c);
  return 0;
}

struct up_child *up_sup_add(struct up_sup *s, const char *name, enum up_role role,
                            const char *tenant, int replica, char *const *argv, char *err,
                            size_t errlen) {
  if (s->n >= UP_MAX_CHILDREN) {
    snprintf(err, errlen, "more than %d children", UP_MAX_CHILDREN);
    return NULL;
  }
  struct up_child *c = calloc(1, sizeof *c);
  if (!c || !(c->argv = copy_argv(argv))) {
    free(c);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  snprintf(c->name, sizeof c->name, "%s", name);
  snprintf(c->tenant, sizeof c->tenant, "%s", tenant ? tenant : "");
  c->role = role;
  c->replica = replica;
  c->out_fd = -1;
  c->backoff_ms = s->o.backoff_ms;
  int rc = start_child(s, c);
  if (rc < 0) {
    snprintf(err, errlen, "cannot start %s: %s", name, strerror(-rc));
    free_argv(c->argv);
    free(c);
    return NULL;
  }
  s->children[s->n++] = c;
  return c;
}

int up_sup_set_argv(struct up_child *c, char *const *argv) {
  char **copy = copy_argv(argv);
  if (!copy) return REALM_E_NOMEM;
  free_argv(c->argv);
  c->argv = copy;
  return 0;
}

size_t up_sup_count(const struct up_sup *s) { return s->n; }
struct up_child *up_sup_child(struct up_sup *s, size_t i) { return i < s->n ? s->children[i] : NULL; }

/* Describes a wait status for the log: "exited with status 75 (worker lost)", "killed by
 * signal 9 (KILL)". The named statuses are the daemons' documented ones: a runner exits 75
 * when it loses the worker, a worker 69 when its compute backend failed for good. */
static void describe_status(int st, char *out, size_t outlen) {
  if (WIFEXITED(st))
    snprintf(out, outlen, "exited with status %d%s", WEXITSTATUS(st),
             WEXITSTATUS(st) == 75   ? " (worker lost)"
             : WEXITSTATUS(st) == 69 ? " (compute backend failed)"
                                     : "");
  else if (WIFSIGNALED(st))
    snprintf(out, outlen, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
  else
    snprintf(out, outlen, "ended (status 0x%x)", st);
}

/* Reaps every exited child; schedules restarts. */
static void reap(struct up_sup *s) {
  for (;;) {
    int st = 0;
    pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid <= 0) return;
    struct up_child *c = NULL;
    for (size_t i = 0; i < s->n && !c; i++)
      if (s->children[i]->pid == pid) c = s->children[i];
    if (!c) continue; /* not ours (e.g. a model synth child reaped elsewhere) */
    /* Drain what the child wrote before dying, so its last words precede our verdict. */
    while (c->out_fd >= 0 && pump(s, c)) {
      struct pollfd pf = {.fd = c->out_fd, .events = POLLIN};
      if (poll(&pf, 1, 0) <= 0) break;
    }
    c->last_status = st;
    c->ready = false;
    if (s->o.hooks.on_exit) s->o.hooks.on_exit(s->o.hooks.user, c, st);
    c->pid = 0;
    char what[96];
    describe_status(st, what, sizeof what);
    if (c->retired || s->stopping) {
      if (!c->retired) c->retired = true;
      continue;
    }
    int64_t now = up_now_ms();
    if (s->o.healthy_after_ms > 0 && now - c->started_ms >= s->o.healthy_after_ms)
      c->backoff_ms = s->o.backoff_ms;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 2) {
      /* Status 2 is a bad command line for every daemon: restarting cannot fix it. */
      c->retired = true;
      sup_log(s, "[up] %s %s (bad options): not restarting it; fix the config and run up again",
              c->name, what);
      continue;
    }
    c->next_start_ms = now + c->backoff_ms;
    sup_log(s, "[up] %s %s; restarting in %lld ms (restart %lld)", c->name, what,
            (long long)c->backoff_ms, (long long)c->restarts + 1);
    c->backoff_ms *= 2;
    if (c->backoff_ms > s->o.max_backoff_ms) c->backoff_ms = s->o.max_backoff_ms;
  }
}

static int read_signals(struct up_sup *s) {
  int mask = 0;
  struct signalfd_siginfo si;
  while (read(s->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
    if (si.ssi_signo == SIGCHLD) {
      reap(s);
    } else if (si.ssi_signo == SIGHUP) {
      mask |= UP_SIG_HUP;
    } else {
      mask |= s->stopping ? UP_SIG_STOP2 : UP_SIG_STOP;
      s->stopping = true;
    }
  }
  return mask;
}

int up_sup_poll(struct up_sup *s, int timeout_ms) {
  int64_t now = up_now_ms();
  for (size_t i = 0; i < s->n; i++) { /* restarts that are due */
    struct up_child *c = s->children[i];
    if (c->pid == 0 && !c->retired && c->next_start_ms > 0 && c->next_start_ms <= now &&
        !s->stopping) {
      c->restarts++;
      int rc = start_child(s, c);
      if (rc < 0) {
        sup_log(s, "[up] cannot restart %s: %s", c->name, strerror(-rc));
        c->next_start_ms = now + c->backoff_ms;
      }
    }
    if (c->pid == 0 && !c->retired && c->next_start_ms > 0) {
      int64_t wait = c->next_start_ms - now;
      if (wait < 0) wait = 0;
      if (wait < timeout_ms) timeout_ms = (int)wait;
    }
  }
  struct pollfd pf[UP_MAX_CHILDREN + 1];
  struct up_child *who[UP_MAX_CHILDREN + 1];
  size_t n = 0;
  pf[n] = (struct pollfd){.fd = s->sig_fd, .events = POLLIN};
  who[n++] = NULL;
  for (size_t i = 0; i < s->n; i++) {
    if (s->children[i]->out_fd < 0) continue;
    pf[n] = (struct pollfd){.fd = s->children[i]->out_fd, .events = POLLIN};
    who[n++] = s->children[i];
  }
  int r = poll(pf, n, timeout_ms);
  if (r <= 0) return 0;
  for (size_t i = 1; i < n; i++)
    if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) pump(s, who[i]);
  return (pf[0].revents & POLLIN) ? read_signals(s) : 0;
}

void up_sup_stop_role(struct up_sup *s, enum up_role role) {
  int64_t now = up_now_ms();
  for (size_t i = 0; i < s->n; i++) {
    struct up_child *c = s->children[i];
    if (c->role != role) continue;
    c->retired = true;
    c->next_start_ms = 0;
    if (c->pid > 0) {
      kill(c->pid, SIGTERM);
      c->stop_sent_ms = now;
    }
  }
  bool killed = false;
  for (;;) {
    bool alive = false;
    for (size_t i = 0; i < s->n; i++)
      alive |= s->children[i]->role == role && s->children[i]->pid > 0;
    if (!alive) return;
    if (!killed && up_now_ms() - now >= s->o.stop_grace_ms) {
      for (size_t i = 0; i < s->n; i++) {
        struct up_child *c = s->children[i];
        if (c->role == role && c->pid > 0) {
          sup_log(s, "[up] %s did not stop within %lld ms: SIGKILL", c->name,
                  (long long)s->o.stop_grace_ms);
          kill(c->pid, SIGKILL);
        }
      }
      killed = true;
    }
    int sig = up_sup_poll(s, 50);
    if (!(sig & UP_SIG_STOP2)) continue;
    if (++s->extra_stops == 1 && role == UP_ROLE_GATEWAY && !killed) {
      /* Invariant 5: the gateway's own second-signal path ends its drain now, with an error
       * event on each stream still open, which SIGKILL would not send. */
      for (size_t i = 0; i < s->n; i++) {
        struct up_child *c = s->children[i];
        if (c->role == role && c->pid > 0) {
          sup_log(s, "[up] second stop signal: %s ends the requests still in flight now",
                  c->name);
          kill(c->pid, SIGTERM);
        }
      }
      continue;
    }
    sup_log(s, "[up] another stop signal: killing every child now");
    for (size_t i = 0; i < s->n; i++)
      if (s->children[i]->pid > 0) kill(s->children[i]->pid, SIGKILL);
    killed = true;
  }
}
