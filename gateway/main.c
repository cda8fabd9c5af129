/*
 * main.c — realm-gateway: parses options (realm/config.h: flags, REALM_* environment,
 * defaults), starts the runner backend (backend_runners.h: ZeroMQ to every tenant's runner
 * replicas) and the HTTP core (gateway.h), and turns signals into actions: SIGHUP reloads the
 * tenants file (keys, limits, models and runner endpoints; a bad file keeps the running one,
 * logged), SIGINT/SIGTERM drain and stop (below). Signals are blocked in every thread before
 * any thread starts and taken synchronously with sigwait(), so no handler runs inside a
 * connection or I/O thread.
 *
 * Drain (docs/gateway.md "Shutdown and drain"): the first SIGTERM/SIGINT makes /ready answer
 * 503 and new /v1 requests 503 shutting_down, and waits up to --drain-timeout for the requests
 * in flight to finish; then whatever is left is ended (an error event in a stream, a 503
 * otherwise), given a short bound to send those last bytes, and the process exits 0. A second
 * SIGTERM/SIGINT skips the rest of the wait. The wait watches a signalfd created before the
 * jail (read and poll are allowed; creating one would not be), so a signal interrupts it at
 * once without a handler or a polling loop. Where signalfd is refused (a container seccomp
 * profile that predates the drain answers ENOSYS) the gateway still starts, logs a warning,
 * and looks for the second signal between wait slices of GW_DRAIN_SIGNAL_SLICE_MS instead.
 * Logging goes through realm/log.h (REALM_LOG_LEVEL, REALM_LOG_FORMAT).
 *
 * Jail (policy-gateway.c): once the listener is bound, the tenants file loaded and the runner
 * backend's threads run, the whole process goes under the gateway's seccomp allowlist (TSYNC,
 * every thread) before the first signal is taken; --no-jail skips it for debugging, loudly.
 *
 * When built with REALM_GATEWAY_TEST_HOOKS (realm-gateway-testhooks, used by
 * tests/security/test_gateway_jail.c only; the installed realm-gateway has no such code)
 * --test-escape makes a thread that existed before the jail attempt a forbidden syscall
 * after it, to prove the jail (and its TSYNC reach) kills the process with SIGSYS.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include "backend_runners.h"
#include "gateway.h"
#include "policy.h"
#include "realm/config.h"
#include "realm/limits.h"
#include "realm/log.h"

static void log_bridge(void *ctx, enum gw_log_level level, const char *msg) {
  (void)ctx;
  realm_log_level l = level == GW_LOG_ERROR  ? REALM_LOG_ERROR
                      : level == GW_LOG_WARN ? REALM_LOG_WARN
                                             : REALM_LOG_INFO;
  realm_log(l, msg);
}

/* After the drain's cut-off, how long the ended requests get to write their error event or
 * 503 before the connections are closed. Rendering one event takes microseconds; the bound is
 * for a client that stopped reading. */
#define GW_DRAIN_FLUSH_MS 2000
/* Without a signalfd: the longest a second signal waits to be noticed during the drain. */
#define GW_DRAIN_SIGNAL_SLICE_MS 100

static uint64_t mono_ms(void) { return gw_clock_monotonic_ns(NULL) / 1000000u; }

/* Takes one pending signal of set, without blocking: from sigfd, or (sigfd < 0) with a
 * zero-timeout sigtimedwait. Returns its number, 0 when none. */
static int take_signal(int sigfd, const sigset_t *set) {
  if (sigfd < 0) {
    struct timespec zero = {0, 0};
    int sig = sigtimedwait(set, NULL, &zero);
    return sig > 0 ? sig : 0;
  }
  struct signalfd_siginfo si;
  ssize_t n = read(sigfd, &si, sizeof si);
  return n == (ssize_t)sizeof si ? (int)si.ssi_signo : 0;
}

static const char *signal_name(int sig) {
  return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "?";
}

/* The drain of the top comment, from the first stop signal to the moment the server can be
 * stopped. SIGHUP still reloads meanwhile (a reload never drops requests). */
static void drain(struct gw_server *srv, int sigfd, const sigset_t *set, int sig,
                  int64_t timeout_ms) {
  uint64_t t0 = mono_ms();
  gw_server_begin_drain(srv);
  realm_log_info("draining: no new requests, waiting for those in flight",
                 RLOG_STR("signal", signal_name(sig)), RLOG_UINT("in_flight", gw_server_in_flight(srv)),
                 RLOG_INT("drain_timeout_ms", timeout_ms));
  const char *how = "drained";
  char err[512];
  for (;;) {
    uint64_t spent = mono_ms() - t0;
    int left_ms = spent >= (uint64_t)timeout_ms ? 0 : (int)((uint64_t)timeout_ms - spent);
    if (sigfd < 0 && left_ms > GW_DRAIN_SIGNAL_SLICE_MS) left_ms = GW_DRAIN_SIGNAL_SLICE_MS;
    int left = gw_server_drain_wait(srv, left_ms, sigfd);
    if (left == 0) break;
    if (left < 0) { /* poll failed: waiting on is impossible, so end what is left now */
      how = "error";
      realm_log_error("the drain wait failed", RLOG_ERR(left));
      break;
    }
    int again = take_signal(sigfd, set);
    if (again == SIGHUP) {
      if (gw_server_reload_tenants(srv, err, sizeof err) < 0)
        realm_log_error("reload refused, keeping the running tenants", RLOG_STR("detail", err));
      else
        realm_log_info("tenants reloaded during the drain");
      continue;
    }
    if (again == SIGTERM || again == SIGINT) {
      how = "second signal";
      realm_log_warn("second stop signal: ending the requests still in flight now",
                     RLOG_STR("signal", signal_name(again)), RLOG_INT("in_flight", left));
      break;
    }
    if (again == 0 && mono_ms() - t0 >= (uint64_t)timeout_ms) {
      how = "timeout";
      break;
    }
  }
  unsigned cut = gw_server_drain_cut_off(srv);
  int unsent = cut ? gw_server_drain_wait(srv, GW_DRAIN_FLUSH_MS, -1) : 0;
  struct gw_drain_stats ds;
  gw_server_drain_stats(srv, &ds);
  realm_log_info("drain finished", RLOG_STR("end", how),
                 RLOG_UINT("in_flight_at_start", ds.in_flight_at_start),
                 RLOG_UINT("refused", ds.refused), RLOG_UINT("cut_off", ds.cut_off),
                 RLOG_INT("still_open", unsent < 0 ? 0 : unsent),
                 RLOG_UINT("elapsed_ms", mono_ms() - t0));
}

#ifdef REALM_GATEWAY_TEST_HOOKS
/* The hook thread: started before the jail, so only TSYNC puts it under the filter. It waits
 * for the main thread's go (after the jail), attempts the syscall named by what, and exits 3
 * if it was not stopped. Raw attempts, so nothing can be satisfied from a libc cache. */
struct escape {
  const char *what;
  int go_fd;
};

static void *escape_main(void *arg) {
  struct escape *e = arg;
  uint64_t v;
  while (read(e->go_fd, &v, sizeof v) != (ssize_t)sizeof v) {
  }
  realm_log_warn("TEST HOOK: attempting a forbidden syscall", RLOG_STR("syscall", e->what));
  if (strcmp(e->what, "execve") == 0) {
    char *const args[] = {"/bin/true", NULL};
    execve("/bin/true", args, NULL);
    realm_log_error("TEST HOOK: execve was not stopped");
  } else if (strcmp(e->what, "openat-write") == 0) {
    int fd = openat(AT_FDCWD, "/dev/null", O_WRONLY | O_CLOEXEC);
    realm_log_error("TEST HOOK: openat for writing was not stopped", RLOG_INT("fd", fd));
  } else if (strcmp(e->what, "fork") == 0) {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid(pid, NULL, 0);
    realm_log_error("TEST HOOK: fork was not stopped", RLOG_INT("pid", pid));
  } else if (strcmp(e->what, "socket-netlink") == 0) {
    int fd = socket(AF_NETLINK, SOCK_RAW, 0);
    realm_log_error("TEST HOOK: socket(AF_NETLINK) was not stopped", RLOG_INT("fd", fd));
  } else if (strcmp(e->what, "openat-read") == 0) {
    /* Allowed (the tenants reload needs it): the control that read-only opens survive. */
    int fd = openat(AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC);
    realm_log_info("TEST HOOK: openat read-only", RLOG_INT("fd", fd));
    if (fd >= 0) _exit(4);
  }
  _exit(3);
}
#endif

int main(int argc, char **argv) {
  const char *tenants = NULL, *listen_addr = NULL;
  int64_t port = 0, ping_ms = 0, ping_misses = 0, cancel_grace_ms = 0, keepalive_ms = 0;
  int64_t max_connections = 0, drain_timeout_ms = 0, kv_full_retry_ms = 0;
  bool no_jail = false, print_policy = false;
#ifdef REALM_GATEWAY_TEST_HOOKS
  const char *test_escape_what = "";
  bool test_no_signalfd = false;
#endif
  const struct realm_option opts[] = {
      {"tenants", "REALM_TENANTS", REALM_OPT_STRING, NULL, 0, 0,
       "tenants JSON file (keys, limits, models, runner endpoints); SIGHUP reloads it", &tenants},
      {"listen", "REALM_LISTEN", REALM_OPT_STRING, "127.0.0.1", 0, 0,
       "IPv4 or IPv6 address to bind", &listen_addr},
      {"port", "REALM_PORT", REALM_OPT_INT64, "8080", 0, 65535, "TCP port (0: any free port)",
       &port},
      {"ping-ms", "REALM_GATEWAY_PING_MS", REALM_OPT_DURATION_MS, "1s", 10, 60000,
       "health ping period per runner replica", &ping_ms},
      {"ping-misses", "REALM_GATEWAY_PING_MISSES", REALM_OPT_INT64, "3", 1, 1000,
       "unanswered pings in a row that take a replica out (its requests fail at once)",
       &ping_misses},
      {"cancel-grace", "REALM_GATEWAY_CANCEL_GRACE_MS", REALM_OPT_DURATION_MS, "5s", 1, 600000,
       "a cancelled request the runner does not end within this is ended by the gateway",
       &cancel_grace_ms},
      {"keepalive", "REALM_GATEWAY_KEEPALIVE_MS", REALM_OPT_DURATION_MS, "15s", 100, 600000,
       "SSE keep-alive comment period on a silent stream", &keepalive_ms},
      {"max-connections", "REALM_GATEWAY_MAX_CONNECTIONS", REALM_OPT_INT64, "1024", 1,
       REALM_HTTP_MAX_CONNECTIONS, "concurrent HTTP connections", &max_connections},
      {"drain-timeout", "REALM_GATEWAY_DRAIN_TIMEOUT_MS", REALM_OPT_DURATION_MS, "25s", 0,
       3600000,
       "on SIGTERM/SIGINT, how long requests in flight may take to finish before they are "
       "ended (0: at once); keep it below the orchestrator's kill grace period",
       &drain_timeout_ms},
      /* At most 59 s: the OpenAI SDKs ignore a Retry-After of 60 s or more (docs/gateway.md). */
      {"kv-full-retry-after", "REALM_GATEWAY_KV_FULL_RETRY_AFTER_MS", REALM_OPT_DURATION_MS,
       "1s", 1000, 59000,
       "Retry-After of a 503 for a full KV cache (error param kv_cache), rounded up to whole "
       "seconds",
       &kv_full_retry_ms},
      {"no-jail", "REALM_GATEWAY_NO_JAIL", REALM_OPT_BOOL, "false", 0, 0,
       "DEBUGGING ONLY: run without the seccomp allowlist", &no_jail},
      {"print-policy", NULL, REALM_OPT_BOOL, "false", 0, 0,
       "print the seccomp filter (libseccomp pseudo code) and exit", &print_policy},
#ifdef REALM_GATEWAY_TEST_HOOKS
      {"test-escape", NULL, REALM_OPT_STRING, "", 0, 0,
       "TEST HOOK: after the jail, attempt execve|openat-write|openat-read|fork|socket-netlink",
       &test_escape_what},
      {"test-no-signalfd", NULL, REALM_OPT_BOOL, "false", 0, 0,
       "TEST HOOK: drain as if signalfd were refused (the sliced sigtimedwait fallback)",
       &test_no_signalfd},
#endif
  };
  char err[512];
  int rc = realm_config_parse(opts, REALM_COUNTOF(opts), argc, argv, NULL, err, sizeof err);
  if (rc == REALM_CONFIG_HELP) {
    realm_config_print_help(stdout, "realm-gateway",
                            "OpenAI-compatible HTTP gateway in front of the tenants' runners",
                            opts, REALM_COUNTOF(opts));
    return 0;
  }
  char log_err[256] = "";
  realm_log_init_from_env("gateway", log_err, sizeof log_err);
  if (log_err[0]) {
    realm_log_error("bad logging settings", RLOG_STR("detail", log_err));
    return 2;
  }
  if (rc < 0) {
    realm_log_error("bad options", RLOG_STR("detail", err));
    return 2;
  }
  if (print_policy) {
    int pr = gw_policy_export(STDOUT_FILENO, err, sizeof err);
    if (pr < 0) realm_log_error("cannot build the seccomp policy", RLOG_STR("detail", err));
    return pr < 0 ? 1 : 0;
  }
  if (!tenants || !tenants[0]) {
    realm_log_error("no tenants file: pass --tenants FILE or set REALM_TENANTS");
    return 2;
  }

  /* Block before any thread exists so every thread (I/O, MHD) inherits the mask. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  /* The drain's interruptible wait (top comment); made now, before the jail. */
  int sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
#ifdef REALM_GATEWAY_TEST_HOOKS
  if (test_no_signalfd && sigfd >= 0) {
    if (sigfd >= 0) close(sigfd);
    sigfd = -1;
    errno = ENOSYS;
  }
#endif
  if (sigfd < 0)
    realm_log_warn("no signalfd (the container's seccomp profile may refuse signalfd4): a "
                   "second stop signal during the drain is seen within slice_ms, not at once",
                   RLOG_STR("detail", strerror(errno)),
                   RLOG_INT("slice_ms", GW_DRAIN_SIGNAL_SLICE_MS));

#ifdef REALM_GATEWAY_TEST_HOOKS
  struct escape esc = {test_escape_what, -1};
  pthread_t esc_thread;
  if (test_escape_what[0]) {
    esc.go_fd = eventfd(0, EFD_CLOEXEC);
    if (esc.go_fd < 0 || pthread_create(&esc_thread, NULL, escape_main, &esc) != 0) return 1;
  }
#endif

  /* The ZeroMQ context is ours so its I/O and reaper threads can be started now, before the
   * jail (libzmq starts them with the first socket); a reload or reconnect later only adds
   * sockets, never threads. */
  void *zctx = zmq_ctx_new();
  void *probe = zctx ? zmq_socket(zctx, ZMQ_PAIR) : NULL;
  if (!probe) {
    realm_log_error("cannot start ZeroMQ", RLOG_STR("detail", zmq_strerror(zmq_errno())));
    if (zctx) zmq_ctx_term(zctx);
    return 1;
  }
  zmq_close(probe);
  struct gw_runners_config rcfg = {.ping_ms = (uint32_t)ping_ms,
                                   .ping_misses = (uint32_t)ping_misses,
                                   .cancel_grace_ms = (uint32_t)cancel_grace_ms,
                                   .zmq_ctx = zctx,
                                   .log = log_bridge};
  struct gw_runners *runners = NULL;
  if (gw_runners_create(&rcfg, &runners, err, sizeof err) < 0) {
    realm_log_error("cannot start the runner backend", RLOG_STR("detail", err));
    zmq_ctx_term(zctx);
    return 1;
  }
  struct gw_config cfg = {.listen_addr = listen_addr,
                          .port = (uint16_t)port,
                          .tenants_path = tenants,
                          .backend = gw_runners_backend(runners),
                          .keepalive_ms = (uint32_t)keepalive_ms,
                          .max_connections = (uint32_t)max_connections,
                          .kv_cache_retry_after_s = (uint32_t)((kv_full_retry_ms + 999) / 1000),
                          .log = log_bridge};
  struct gw_server *srv = NULL;
  if (gw_server_start(&cfg, &srv, err, sizeof err) < 0) {
    realm_log_error("cannot start", RLOG_STR("detail", err));
    gw_runners_destroy(runners);
    zmq_ctx_term(zctx);
    return 1;
  }
  if (no_jail) {
    realm_log_warn("!!! --no-jail: realm-gateway runs WITHOUT its seccomp allowlist; for "
                   "debugging only, never in production !!!");
  } else if (gw_jail(err, sizeof err) < 0) {
    realm_log_error("cannot apply the jail (use --no-jail only to debug)",
                    RLOG_STR("detail", err));
    gw_server_stop(srv);
    gw_runners_destroy(runners);
    zmq_ctx_term(zctx);
    return 1;
  } else {
    realm_log_info("jailed", RLOG_STR("policy", gw_policy_summary()));
  }
#ifdef REALM_GATEWAY_TEST_HOOKS
  if (test_escape_what[0]) {
    uint64_t one = 1;
    if (write(esc.go_fd, &one, sizeof one) != (ssize_t)sizeof one) return 1;
  }
#endif
  realm_log_info("listening", RLOG_STR("addr", listen_addr), RLOG_UINT("port", gw_server_port(srv)),
                 RLOG_STR("tenants", tenants), RLOG_INT("ping_ms", ping_ms),
                 RLOG_INT("ping_misses", ping_misses), RLOG_INT("drain_timeout_ms", drain_timeout_ms),
                 RLOG_BOOL("jailed", !no_jail));
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      if (gw_server_reload_tenants(srv, err, sizeof err) < 0)
        realm_log_error("reload refused, keeping the running tenants", RLOG_STR("detail", err));
      else
        realm_log_info("tenants reloaded", RLOG_STR("tenants", tenants));
      continue;
    }
    drain(srv, sigfd, &set, sig, drain_timeout_ms);
    break;
  }
  realm_log_info("stopping");
  gw_server_stop(srv);       /* connections first: what is left is cancelled ... */
  gw_runners_destroy(runners); /* ... then whatever is left gets its terminal event */
  zmq_ctx_term(zctx);
  close(sigfd);
  realm_log_info("stopped");
  return 0;
}
