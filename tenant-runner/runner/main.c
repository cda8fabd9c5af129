/*
 * main.c — realm-runner: one tenant replica. Parses options, builds the runner (module,
 * vocabulary, sockets, worker handshake), jails itself, then serves until SIGTERM/SIGINT.
 * The first stop signal starts the drain (runner.h, runner_run: no new requests, those in
 * flight finish for up to --drain-timeout); a second one ends it at once.
 *
 * Exit status: 0 after a requested stop, 2 for bad options, 1 for a failed set-up,
 * RUNNER_EXIT_WORKER_LOST (75) when the worker went away while jailed (restart me).
 * --print-policy writes the jail's seccomp filter (libseccomp pseudo code) to stdout and
 * exits 0, like realm-gateway and realm-worker, for the deploy check that compares it with
 * the container profile.
 *
 * When built with REALM_RUNNER_TEST_HOOKS (the realm-runner-testhooks executable used by
 * tests/security only; the installed realm-runner has no such code) --test-escape makes the
 * jailed process attempt a forbidden syscall, to prove the jail kills it with SIGSYS.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "realm/config.h"
#ifdef REALM_RUNNER_TEST_HOOKS
#define REALM_DAEMON_TEST_HOOKS /* realm_daemon_test_escape() */
#endif
#include "realm/daemon.h"
#include "realm/log.h"
#include "runner.h"

/* Stop signals received, capped at 2: 1 starts the drain, 2 cuts it short (runner_run). */
static volatile sig_atomic_t g_stop;

static void on_stop(int sig) {
  (void)sig;
  if (g_stop < 2) g_stop++;
}

int main(int argc, char **argv) {
  struct runner_config cfg;
  runner_config_defaults(&cfg);
  const char *log_level = "info", *log_format = "text";
  bool no_jail = false, print_policy = false;
  int64_t run_as_uid = 65534, run_as_gid = 65534, fd_margin = 64;
#ifdef REALM_RUNNER_TEST_HOOKS
  const char *test_escape_what = "";
  int64_t test_escape_after = 0;
#endif
  const struct realm_option opts[] = {
      {"tenant", "REALM_TENANT", REALM_OPT_STRING, "", 0, 0, "tenant id this replica serves",
       &cfg.tenant_id},
      {"replica", "REALM_REPLICA", REALM_OPT_STRING, "0", 0, 0, "replica id (logs, health)",
       &cfg.replica_id},
      {"worker", "REALM_WORKER", REALM_OPT_STRING, "", 0, 0,
       "ZeroMQ endpoint of realm-worker (ipc://... or tcp://...)", &cfg.worker_endpoint},
      {"worker-shm", "REALM_WORKER_SHM", REALM_OPT_STRING, "", 0, 0,
       "worker's seqpacket socket for the shared region (default: the path its HelloReply names)",
       &cfg.worker_shm},
      {"listen", "REALM_RUNNER_LISTEN", REALM_OPT_STRING, "", 0, 0,
       "ZeroMQ endpoint to bind for the gateway (ipc://<run dir>/runner-<tenant>-<replica>.sock)",
       &cfg.listen_endpoint},
      {"module", "REALM_MODULE", REALM_OPT_STRING, "", 0, 0, "the tenant's guest module (.wasm)",
       &cfg.module_path},
      {"module-cache", "REALM_MODULE_CACHE", REALM_OPT_STRING, "", 0, 0,
       "directory for compiled guests (writable by this user only)", &cfg.module_cache},
      {"vocab", "REALM_VOCAB", REALM_OPT_STRING, "", 0, 0,
       "GGUF file with the model's tokenizer.ggml.* vocabulary (pieces for guests)",
       &cfg.vocab_path},
      {"chat-template", "REALM_CHAT_TEMPLATE", REALM_OPT_STRING, "", 0, 0,
       "tenant chat template for chat requests: a family name (chatml, llama2, llama3, mistral, "
       "zephyr, raw), Jinja text, or @FILE; empty = the model's",
       &cfg.chat_template},
      {"max-inflight", "REALM_MAX_INFLIGHT", REALM_OPT_INT64, "64", 1,
       1024, "requests served at once; more are refused with unavailable", &cfg.max_inflight},
      {"max-prompt-tokens", NULL, REALM_OPT_INT64, "8192", 1, 131072,
       "prompt tokens a guest may feed for one request", &cfg.max_prompt_tokens},
      {"max-tokens", NULL, REALM_OPT_INT64, "4096", 1, 32768,
       "completion tokens per request (cap and default)", &cfg.max_tokens},
      {"guest-memory", NULL, REALM_OPT_SIZE, "256M", 65536, 4294901760LL,
       "linear memory cap per guest instance", &cfg.guest_memory},
      {"guest-call-ms", NULL, REALM_OPT_DURATION_MS, "200ms", 1, 60000,
       "wall-clock deadline of one guest call", &cfg.guest_call_ms},
      {"guest-output", NULL, REALM_OPT_SIZE, "4M", 1, 4194304, "text one request may emit",
       &cfg.guest_output},
      {"weight", NULL, REALM_OPT_INT64, "1", 1, 1000000, "fair-share weight asked of the worker",
       &cfg.weight},
      {"kv-quota", NULL, REALM_OPT_SIZE, "0", 0, 0,
       "KV tokens asked of the worker (0 = the worker's default)", &cfg.kv_quota},
      {"shm-size", NULL, REALM_OPT_SIZE, "64M", 0, 4294967296LL,
       "shared region asked of the worker (0 = tensors inline)", &cfg.shm_bytes},
      {"connect-timeout", NULL, REALM_OPT_DURATION_MS, "30s", 1, 3600000,
       "how long start-up waits for the worker", &cfg.connect_timeout_ms},
      {"worker-timeout", NULL, REALM_OPT_DURATION_MS, "30s", 1, 3600000,
       "a step unanswered this long means the worker is gone", &cfg.worker_timeout_ms},
      {"prefill-chunk", NULL, REALM_OPT_INT64, "512", 1, 8192,
       "prompt tokens of one request per step", &cfg.prefill_chunk},
      /* The default is RUNNER_DEFAULT_DRAIN_TIMEOUT_MS (runner.h says why 25 s). */
      {"drain-timeout", "REALM_RUNNER_DRAIN_TIMEOUT_MS", REALM_OPT_DURATION_MS, "25s", 0,
       3600000,
       "on SIGTERM/SIGINT, how long requests in flight may take to finish (0 = end them at "
       "once); a second signal ends the wait; keep it below the stopper's kill grace",
       &cfg.drain_timeout_ms},
      {"no-jail", NULL, REALM_OPT_BOOL, "false", 0, 0,
       "DEBUGGING ONLY: skip privileges, rlimits and seccomp", &no_jail},
      {"print-policy", NULL, REALM_OPT_BOOL, "false", 0, 0,
       "print the jail's seccomp filter (libseccomp pseudo code) and exit", &print_policy},
      {"run-as-uid", NULL, REALM_OPT_INT64, "65534", 0, 4294967294LL,
       "uid to become when started as root", &run_as_uid},
      {"run-as-gid", NULL, REALM_OPT_INT64, "65534", 0, 4294967294LL,
       "gid to become when started as root", &run_as_gid},
      {"fd-margin", NULL, REALM_OPT_INT64, "64", 8, 65536,
       "RLIMIT_NOFILE headroom above the fds open at jail time (gateway connections)",
       &fd_margin},
      {"log-level", "REALM_LOG_LEVEL", REALM_OPT_STRING, "info", 0, 0,
       "debug, info, warn or error", &log_level},
      {"log-format", "REALM_LOG_FORMAT", REALM_OPT_STRING, "text", 0, 0, "text or json",
       &log_format},
#ifdef REALM_RUNNER_TEST_HOOKS
      {"test-escape", NULL, REALM_OPT_STRING, "", 0, 0,
       "TEST BUILD: after the jail, attempt openat|execve|socket", &test_escape_what},
      {"test-escape-after", NULL, REALM_OPT_INT64, "0", 0, 1000000,
       "TEST BUILD: ... once this many requests have completed", &test_escape_after},
#endif
  };
  char err[1024];
  int rc = realm_config_parse(opts, REALM_COUNTOF(opts), argc, argv, NULL, err, sizeof err);
  if (rc == REALM_CONFIG_HELP) {
    realm_config_print_help(stdout, argv[0],
                            "Serves one tenant's requests: guest modules per request, batched "
                            "steps to realm-worker, jailed by seccomp.",
                            opts, REALM_COUNTOF(opts));
    return 0;
  }
  if (rc < 0) {
    fprintf(stderr, "realm-runner: %s\n", err);
    return 2;
  }
  /* Before any set-up: the filter is static, so deploy checks can print it without a
   * tenant, a worker or a module. */
  if (print_policy) {
    rc = runner_policy_export(STDOUT_FILENO, err, sizeof err);
    if (rc < 0) fprintf(stderr, "realm-runner: cannot build the seccomp policy: %s\n", err);
    return rc < 0 ? 1 : 0;
  }
  realm_log_level lv;
  realm_log_format fmt;
  if (realm_log_parse_level(log_level, &lv) < 0 || realm_log_parse_format(log_format, &fmt) < 0) {
    fprintf(stderr, "realm-runner: bad --log-level '%s' or --log-format '%s'\n", log_level,
            log_format);
    return 2;
  }
  char component[96];
  snprintf(component, sizeof component, "runner:%s", cfg.tenant_id);
  realm_log_init(component, lv, fmt);

  realm_daemon_catch_stop_signals(on_stop);
  signal(SIGPIPE, SIG_IGN);

  struct runner *r = NULL;
  rc = runner_new(&cfg, &r, err, sizeof err);
  if (rc < 0) {
    realm_log_error("runner set-up failed", RLOG_ERR(rc), RLOG_STR("detail", err));
    return 1;
  }
  if (no_jail) {
    realm_log_warn("!!! --no-jail: running WITHOUT seccomp, rlimits or privilege drop; for "
                   "debugging only, never in production !!!");
  } else {
    struct runner_jail_options jo = {.drop_privileges = true,
                                     .uid = (uint32_t)run_as_uid,
                                     .gid = (uint32_t)run_as_gid,
                                     .fd_margin = (uint32_t)fd_margin};
    rc = runner_jail(r, &jo, err, sizeof err);
    if (rc < 0) {
      realm_log_error("cannot jail the runner", RLOG_ERR(rc), RLOG_STR("detail", err));
      return 1;
    }
  }
  realm_log_info("runner ready", RLOG_STR("listen", cfg.listen_endpoint),
                 RLOG_STR("worker", cfg.worker_endpoint), RLOG_STR("module", cfg.module_path),
                 RLOG_BOOL("jailed", !no_jail));

  bool served = false; /* runner_run_until has drained and returned already */
#ifdef REALM_RUNNER_TEST_HOOKS
  if (test_escape_what[0]) {
    /* Serve until the given number of requests completed, then try to escape. */
    rc = runner_run_until(r, &g_stop, (uint64_t)test_escape_after);
    served = rc != 0 || g_stop;
    if (!served) {
      runner_linger(r, 200); /* let the finished requests' events leave first */
      realm_daemon_test_escape(test_escape_what);
    }
  }
#endif
  if (!served) rc = runner_run(r, &g_stop);
  if (rc == RUNNER_EXIT_WORKER_LOST) {
    realm_log_error("worker lost while jailed: exiting for a restart");
    _exit(RUNNER_EXIT_WORKER_LOST);
  }
  realm_log_info("runner stopping", RLOG_INT("status", rc));
  /* A jailed process cannot tear libzmq down (closing the ipc listener unlinks its path):
   * leave the cleanup to the kernel. */
  if (!no_jail) _exit(rc < 0 ? 1 : 0);
  runner_free(r);
  return rc < 0 ? 1 : 0;
}
