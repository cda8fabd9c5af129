/*
 * cmd_up.c — `realmctl up`: the whole Realm stack on one machine, in one command.
 *
 * Steps, each visible on the terminal:
 *   1. read the config (up_config.c) and make the state directory: tenants.json, models/,
 *      module-cache/, run/ (ipc sockets), up.pid;
 *   2. model: --model, the config's model.path, or a random-weight demo model synthesized
 *      once into models/ (said plainly: its output is random text);
 *   3. tenants file: config tenants get limits/models/runner endpoints; a tenant without a
 *      key gets a fresh one, printed once (only its hash is stored);
 *   4. each distinct guest module is compiled once into the cache (wasm2c + cc take seconds;
 *      the runners then only load the cached .so, and N replicas never race to compile it);
 *   5. realm-worker, every runner replica and realm-gateway start as supervised children
 *      (up_sup.c): output prefixed "[worker]", "[runner acme/0]", "[gateway]"; restarted with
 *      exponential back-off when they die (a runner exits 75 when the worker goes away);
 *   6. when GET /ready answers 200: the URL, the tenants and a curl line with a real key;
 *   7. SIGHUP: re-read the tenants file, start runners for tenants added with
 *      `realmctl tenant add` (no runners yet), wait for them, then SIGHUP the gateway;
 *   8. SIGINT/SIGTERM: gateway, then runners, then worker — SIGTERM, bounded wait, SIGKILL.
 *      The gateway drains on SIGTERM (docs/gateway.md "Shutdown and drain") with a
 *      --drain-timeout up derives from stop_grace_ms (up_gateway_drain_ms), so its streams
 *      finish, or end with an error event, before that SIGKILL; runners and worker are still
 *      serving them meanwhile. Runners and the worker get the same --drain-timeout: one
 *      stopped on its own finishes its requests within the grace too. A second Ctrl-C cuts the drain short
 *      (up_sup.c, invariant 5).
 *
 * --ready-fd N writes JSON lines for programs (the end-to-end tests): {"event":"ready",...}
 * with the port, the new keys and the children's pids; "start"/"exit" per child; "reloaded".
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "realm/error.h"
#include "realmctl.h"
#include "up.h"

#define UP_DEMO_SHAPE "tiny"
#define UP_DEMO_TYPE "f32"
#define UP_PROGRESS_MS 3000 /* how often a long wait says it is still waiting */

enum reload_phase { RELOAD_IDLE, RELOAD_RUNNERS, RELOAD_GATEWAY, RELOAD_READY };

/* Everything one `up` run knows; one instance, owned by realmctl_cmd_up. */
struct up {
  struct up_config cfg;
  char state_dir[PATH_MAX], run_dir[PATH_MAX], cache_dir[PATH_MAX], tenants_path[PATH_MAX];
  char model_path[PATH_MAX], pid_path[PATH_MAX];
  char self_exe[PATH_MAX], self_dir[PATH_MAX];
  char bin_worker[PATH_MAX], bin_runner[PATH_MAX], bin_gateway[PATH_MAX];
  char default_module[PATH_MAX];
  char check_host[64];       /* where up itself reaches the gateway */
  bool run_dir_is_temp;      /* run_dir was made under /tmp: remove it at exit */
  int ready_fd;              /* -1: no machine-readable events */
  int64_t ready_timeout_ms;
  bool synthesized;          /* the model is the random demo one */
  struct up_sup *sup;
  struct up_child *worker, *gateway;
  int port;                  /* the gateway's port, learned from its "listening" line */
  bool announced;            /* the ready banner was printed */
  int64_t started_ms, next_check_ms, next_progress_ms;
  struct up_new_key keys[UP_MAX_TENANTS];
  size_t n_keys;
  /* reload (SIGHUP) state machine */
  enum reload_phase reload;
  bool reload_pending;
  bool reload_gateway_ok;
  char reload_err[512];
  int64_t reload_deadline_ms;
  json_t *reload_started;    /* names of runners started by this reload */
};

/* snprintf that may truncate on purpose (messages, paths under a realpath'd state dir checked
 * against PATH_MAX up front); a function of our own, so -Wformat-truncation does not apply. */
static void sfmt(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sfmt(char *out, size_t outlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out, outlen, fmt, ap);
  va_end(ap);
}

/* ---- small helpers ------------------------------------------------------------------------- */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("[up] ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static bool is_file(const char *p, int mode) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, mode) == 0;
}

static int mkdir_mode(const char *p, mode_t mode, char *err, size_t errlen) {
  if (mkdir(p, mode) != 0 && errno != EEXIST) {
    sfmt(err, errlen, "cannot create directory %s: %s", p, strerror(errno));
    return realm_err_from_errno(errno);
  }
  return 0;
}

/* Writes one JSON event line to --ready-fd (if any); takes ownership of ev. */
static void emit_event(struct up *u, json_t *ev) {
  if (u->ready_fd < 0 || !ev) {
    json_decref(ev);
    return;
  }
  char *text = json_dumps(ev, JSON_COMPACT);
  json_decref(ev);
  if (!text) return;
  size_t len = strlen(text);
  text[len] = '\n'; /* json_dumps' NUL becomes the newline; we write len + 1 bytes */
  size_t off = 0;
  while (off < len + 1) {
    ssize_t n = write(u->ready_fd, text + off, len + 1 - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) { /* the reader went away: stop writing events, keep serving */
      u->ready_fd = -1;
      break;
    }
    off += (size_t)n;
  }
  free(text);
}

/*
 * Finds a daemon: next to realmctl (installed layout), then in the build tree (realmctl lives
 * in BUILD/tools/realmctl, the daemon in BUILD/<build_rel>), then in PATH.
 */
static int find_bin(struct up *u, const char *bin_dir, const char *name, const char *build_rel,
                    char *out, size_t outlen, char *err, size_t errlen) {
  char cand[PATH_MAX];
  if (bin_dir) {
    sfmt(cand, sizeof cand, "%s/%s", bin_dir, name);
    if (is_file(cand, X_OK)) return sfmt(out, outlen, "%s", cand), 0;
    sfmt(err, errlen, "--bin-dir %s has no executable %s", bin_dir, name);
    return REALM_E_NOT_FOUND;
  }
  sfmt(cand, sizeof cand, "%s/%s", u->self_dir, name);
  if (is_file(cand, X_OK)) return sfmt(out, outlen, "%s", cand), 0;
  sfmt(cand, sizeof cand, "%s/../../%s", u->self_dir, build_rel);
  if (is_file(cand, X_OK) && realpath(cand, out)) return 0;
  const char *path = getenv("PATH");
  while (path && *path) {
    const char *colon = strchr(path, ':');
    size_t len = colon ? (size_t)(colon - path) : strlen(path);
    sfmt(cand, sizeof cand, "%.*s/%s", (int)len, path, name);
    if (len > 0 && is_file(cand, X_OK)) return sfmt(out, outlen, "%s", cand), 0;
    path = colon ? colon + 1 : NULL;
  }
  sfmt(err, errlen, "cannot find %s (looked next to %s, in the build tree and in PATH); build "
           "it with ninja or pass --bin-dir", name, u->self_exe);
  return REALM_E_NOT_FOUND;
}

/* Runs `realmctl ARGS...` (this same binary) as a child; stdout into out (may be NULL), stderr
 * passes through. While it runs, prints a progress dot every second when stderr is a
 * terminal. Returns its exit status, or -1 when it could not run. */
static int run_self(struct up *u, char *const *args, char *out, size_t outlen, double *ret_secs) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return -1;
  int64_t t0 = up_now_ms();
  pid_t pid = fork();
  if (pid < 0) {
    close(p[0]);
    close(p[1]);
    return -1;
  }
  if (pid == 0) {
    dup2(p[1], 1);
    char *argv[16];
    size_t n = 0;
    argv[n++] = u->self_exe;
    for (size_t i = 0; args[i] && n < 15; i++) argv[n++] = args[i];
    argv[n] = NULL;
    execv(u->self_exe, argv);
    _exit(127);
  }
  close(p[1]);
  size_t used = 0;
  bool tty = isatty(2);
  for (;;) {
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    int r = poll(&pf, 1, 1000);
    if (r == 0) {
      if (tty) fputc('.', stderr);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    char buf[512];
    ssize_t n = read(p[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (out && used + 1 < outlen) {
      size_t k = (size_t)n < outlen - 1 - used ? (size_t)n : outlen - 1 - used;
      memcpy(out + used, buf, k);
      used += k;
    }
  }
  if (out && outlen) out[used] = '\0';
  close(p[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (ret_secs) *ret_secs = (double)(up_now_ms() - t0) / 1000.0;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- set-up steps -------------------------------------------------------------------------- */

/* Step 2: the model. */
static int prepare_model(struct up *u, const char *model_flag, char *err, size_t errlen) {
  const char *given = model_flag ? model_flag : (u->cfg.model_path[0] ? u->cfg.model_path : NULL);
  if (given) {
    if (!is_file(given, R_OK) || !realpath(given, u->model_path)) {
      sfmt(err, errlen, "model %s is not a readable file", given);
      return REALM_E_NOT_FOUND;
    }
    say("model: %s (served as \"%s\")", u->model_path, u->cfg.model_name);
    return 0;
  }
  char dir[PATH_MAX];
  sfmt(dir, sizeof dir, "%s/models", u->state_dir);
  int rc = mkdir_mode(dir, 0755, err, errlen);
  if (rc < 0) return rc;
  sfmt(u->model_path, sizeof u->model_path, "%s/demo-%s.gguf", dir, UP_DEMO_SHAPE);
  u->synthesized = true;
  if (is_file(u->model_path, R_OK)) {
    say("no --model given: using the random-weight demo model synthesized earlier at %s; output "
        "will be random text", u->model_path);
    return 0;
  }
  /* The real llama vocabulary makes the random text at least look like words; without it a
   * byte-level fallback vocabulary is generated. */
  char vocab[PATH_MAX] = "";
  const char *models_dir = getenv("REALM_MODELS_DIR");
  char cand[PATH_MAX];
  if (models_dir) {
    sfmt(cand, sizeof cand, "%s/vocab/ggml-vocab-llama-spm.gguf", models_dir);
    if (is_file(cand, R_OK)) sfmt(vocab, sizeof vocab, "%s", cand);
  }
  if (!vocab[0] && is_file("../shared/models/vocab/ggml-vocab-llama-spm.gguf", R_OK))
    sfmt(vocab, sizeof vocab, "../shared/models/vocab/ggml-vocab-llama-spm.gguf");
  say("no --model given: synthesizing a random-weight demo model at %s; output will be random "
      "text (shape %s, %s, %s). Pass --model FILE.gguf to serve a real model.",
      u->model_path, UP_DEMO_SHAPE, UP_DEMO_TYPE,
      vocab[0] ? "llama 32k vocabulary" : "byte-level fallback vocabulary");
  char tmp[PATH_MAX];
  sfmt(tmp, sizeof tmp, "%s.tmp", u->model_path);
  char *args[] = {"model", "synth", "--shape", UP_DEMO_SHAPE, "--type", UP_DEMO_TYPE, "-o", tmp,
                  vocab[0] ? "--vocab" : NULL, vocab, NULL};
  double secs = 0;
  int st = run_self(u, args, NULL, 0, &secs);
  if (st != 0 || rename(tmp, u->model_path) != 0) {
    unlink(tmp);
    sfmt(err, errlen, "realmctl model synth failed (status %d)", st);
    return REALM_E_INTERNAL;
  }
  say("demo model written in %.1f s", secs);
  return 0;
}

/* Step 4: compile each distinct guest module once into the shared cache. */
static int compile_modules(struct up *u, char *err, size_t errlen) {
  for (size_t i = 0; i < u->cfg.n_tenants; i++) {
    const char *m = u->cfg.tenants[i].module[0] ? u->cfg.tenants[i].module : u->default_module;
    bool seen = false;
    for (size_t k = 0; k < i; k++) {
      const char *mk = u->cfg.tenants[k].module[0] ? u->cfg.tenants[k].module : u->default_module;
      seen |= strcmp(mk, m) == 0;
    }
    if (seen) continue;
    if (!is_file(m, R_OK)) {
      sfmt(err, errlen, "tenant '%s': module %s is not a readable file%s", u->cfg.tenants[i].id,
               m, m == u->default_module ? " (is the default guest built? it needs clang and "
                                           "wasi-libc at configure time)" : "");
      return REALM_E_NOT_FOUND;
    }
    fprintf(stderr, "[up] compiling tenant module %s ... ", m);
    fflush(stderr);
    char out[1024];
    double secs = 0;
    char *args[] = {"module", "build", (char *)m, "--cache", u->cache_dir, NULL};
    int st = run_self(u, args, out, sizeof out, &secs);
    if (st != 0) {
      fprintf(stderr, "failed\n");
      sfmt(err, errlen, "cannot compile module %s (realmctl module build said why above)", m);
      return REALM_E_INVALID_ARGUMENT;
    }
    if (strstr(out, "cached yes")) fprintf(stderr, "already compiled (cache hit, %.1f s)\n", secs);
    else fprintf(stderr, "done in %.1f s\n", secs);
  }
  return 0;
}

/* ---- children ------------------------------------------------------------------------------ */

/* Builds an argv: fixed arguments, then the config's extra "args" for that daemon. */
static char **build_argv(const char *const *fixed, json_t *extra) {
  size_t nf = 0;
  while (fixed[nf]) nf++;
  size_t ne = extra ? json_array_size(extra) : 0;
  char **argv = calloc(nf + ne + 1, sizeof *argv);
  if (!argv) return NULL;
  for (size_t i = 0; i < nf; i++) argv[i] = (char *)fixed[i];
  for (size_t i = 0; i < ne; i++) argv[nf + i] = (char *)json_string_value(json_array_get(extra, i));
  return argv;
}

/* The gateway's argv. --drain-timeout comes from stop_grace_ms (up_gateway_drain_ms): the
 * gateway's drain on SIGTERM must end before up_sup_stop_role's SIGKILL, or the streams it
 * waits for would be cut without their error event. */
static void gateway_argv_fixed(struct up *u, char *port, size_t portlen, char *drain,
                               size_t drainlen, const char **fixed) {
  sfmt(port, portlen, "%d", u->port > 0 ? u->port : (int)u->cfg.gw_port);
  sfmt(drain, drainlen, "%lldms", (long long)up_gateway_drain_ms(u->cfg.stop_grace_ms));
  const char *f[] = {u->bin_gateway, "--tenants", u->tenants_path, "--listen", u->cfg.gw_listen,
                     "--port", port, "--drain-timeout", drain, NULL};
  memcpy(fixed, f, sizeof f);
}

static int start_gateway(struct up *u, char *err, size_t errlen) {
  char port[16], drain[32];
  const char *fixed[10];
  gateway_argv_fixed(u, port, sizeof port, drain, sizeof drain, fixed);
  char **argv = build_argv(fixed, u->cfg.gateway_args);
  if (!argv) return sfmt(err, errlen, "out of memory"), REALM_E_NOMEM;
  u->gateway = up_sup_add(u->sup, "gateway", UP_ROLE_GATEWAY, NULL, 0, argv, err, errlen);
  free(argv);
  return u->gateway ? 0 : REALM_E_SYSTEM;
}

static int start_worker(struct up *u, char *err, size_t errlen) {
  char listen[PATH_MAX + 8], shm[PATH_MAX], threads[24], kv[24];
  sfmt(listen, sizeof listen, "ipc://%s/worker.sock", u->run_dir);
  sfmt(shm, sizeof shm, "%s/worker.shm.sock", u->run_dir);
  sfmt(threads, sizeof threads, "%lld", (long long)u->cfg.worker_threads);
  sfmt(kv, sizeof kv, "%lld", (long long)u->cfg.kv_blocks);
  char cuda_device[24];
  sfmt(cuda_device, sizeof cuda_device, "%lld", (long long)u->cfg.cuda_device);
  /* The worker drains on SIGTERM too (open sessions served until they close); the same
   * bound as the gateway's keeps it inside up_sup_stop_role's SIGKILL grace. */
  char drain[32];
  sfmt(drain, sizeof drain, "%lldms", (long long)up_gateway_drain_ms(u->cfg.stop_grace_ms));
  const char *fixed[16] = {u->bin_worker, "--model", u->model_path, "--listen", listen,
                           "--shm-socket", shm, "--threads", threads, "--kv-blocks", kv,
                           "--drain-timeout", drain};
  size_t nf = 13;
  /* Only when the config says so: the worker's own default (cpu) otherwise. */
  if (u->cfg.worker_backend[0]) {
    fixed[nf++] = "--backend";
    fixed[nf++] = u->cfg.worker_backend;
  }
  if (u->cfg.cuda_device >= 0) {
    fixed[nf++] = "--cuda-device";
    fixed[nf++] = cuda_device;
  }
  fixed[nf] = NULL;
  char **argv = build_argv(fixed, u->cfg.worker_args);
  if (!argv) return sfmt(err, errlen, "out of memory"), REALM_E_NOMEM;
  u->worker = up_sup_add(u->sup, "worker", UP_ROLE_WORKER, NULL, 0, argv, err, errlen);
  free(argv);
  return u->worker ? 0 : REALM_E_SYSTEM;
}

static struct up_child *find_runner(struct up *u, const char *tenant, int replica) {
  for (size_t i = 0; i < up_sup_count(u->sup); i++) {
    struct up_child *c = up_sup_child(u->sup, i);
    if (c->role == UP_ROLE_RUNNER && c->replica == replica && strcmp(c->tenant, tenant) == 0)
      return c;
  }
  return NULL;
}

/* Starts the runner replicas of every tenant that has none running yet; with started (may be
 * NULL) collecting their names. */
static int start_missing_runners(struct up *u, json_t *started, char *err, size_t errlen) {
  char worker_ep[PATH_MAX + 8];
  sfmt(worker_ep, sizeof worker_ep, "ipc://%s/worker.sock", u->run_dir);
  for (size_t t = 0; t < u->cfg.n_tenants; t++) {
    const struct up_tenant *ut = &u->cfg.tenants[t];
    for (int r = 0; r < ut->replicas; r++) {
      if (find_runner(u, ut->id, r)) continue;
      char ep[UP_PATH_MAX], replica[16], weight[24], name[96];
      int rc = up_runner_endpoint(u->run_dir, ut->id, r, ep, sizeof ep);
      if (rc < 0) return sfmt(err, errlen, "runner endpoint too long"), rc;
      sfmt(replica, sizeof replica, "%d", r);
      sfmt(weight, sizeof weight, "%lld", (long long)ut->weight);
      sfmt(name, sizeof name, "runner %s/%d", ut->id, r);
      const char *module = ut->module[0] ? ut->module : u->default_module;
      /* The runner drains on SIGTERM like the gateway; the same bound keeps it inside
       * up_sup_stop_role's SIGKILL grace. */
      char drain[32];
      sfmt(drain, sizeof drain, "%lldms", (long long)up_gateway_drain_ms(u->cfg.stop_grace_ms));
      const char *fixed[] = {u->bin_runner, "--tenant", ut->id, "--replica", replica,
                             "--worker", worker_ep, "--listen", ep, "--module", module,
                             "--module-cache", u->cache_dir, "--vocab", u->model_path,
                             "--weight", weight, "--drain-timeout", drain,
                             ut->chat_template ? "--chat-template" : NULL, ut->chat_template,
                             NULL};
      char **argv = build_argv(fixed, u->cfg.runner_args);
      if (!argv) return sfmt(err, errlen, "out of memory"), REALM_E_NOMEM;
      struct up_child *c = up_sup_add(u->sup, name, UP_ROLE_RUNNER, ut->id, r, argv, err, errlen);
      free(argv);
      if (!c) return REALM_E_SYSTEM;
      if (started) json_array_append_new(started, json_string(name));
    }
  }
  return 0;
}

/* ---- supervisor hooks ---------------------------------------------------------------------- */

/* True when a log line (text: msg="X" ..., json: "msg":"X") carries message msg. */
static bool line_has_msg(const char *line, const char *msg) {
  char a[128], b[128];
  sfmt(a, sizeof a, "msg=\"%s\"", msg);
  sfmt(b, sizeof b, "\"msg\":\"%s\"", msg);
  return strstr(line, a) || strstr(line, b);
}

static void on_start(void *user, struct up_child *c) {
  struct up *u = user;
  emit_event(u, json_pack("{s:s,s:s,s:i,s:I}", "event", "start", "name", c->name, "pid",
                          (int)c->pid, "restarts", (json_int_t)c->restarts));
}

static void on_exit_hook(void *user, struct up_child *c, int st) {
  struct up *u = user;
  emit_event(u, json_pack("{s:s,s:s,s:i,s:i,s:i}", "event", "exit", "name", c->name, "pid",
                          (int)c->pid, "exit_status", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                          "signal", WIFSIGNALED(st) ? WTERMSIG(st) : 0));
}

static void on_line(void *user, struct up_child *c, const char *line) {
  struct up *u = user;
  switch (c->role) {
  case UP_ROLE_WORKER:
    if (!c->ready && line_has_msg(line, "worker ready")) {
      c->ready = true;
      say("worker ready: model loaded in %.1f s", (double)(up_now_ms() - c->started_ms) / 1000.0);
    }
    break;
  case UP_ROLE_RUNNER:
    if (line_has_msg(line, "runner ready")) c->ready = true;
    break;
  case UP_ROLE_GATEWAY:
    if (line_has_msg(line, "listening")) {
      const char *p = strstr(line, " port=");
      const char *q = strstr(line, "\"port\":");
      int port = p ? atoi(p + 6) : q ? atoi(q + 7) : 0;
      if (port > 0 && port != u->port) {
        u->port = port;
        /* A restarted gateway must come back on the same port clients were told about. */
        char ps[16], drain[32];
        const char *fixed[10];
        gateway_argv_fixed(u, ps, sizeof ps, drain, sizeof drain, fixed);
        char **argv = build_argv(fixed, u->cfg.gateway_args);
        if (argv) up_sup_set_argv(c, argv);
        free(argv);
      }
      c->ready = true;
    } else if (u->reload == RELOAD_GATEWAY && line_has_msg(line, "tenants reloaded")) {
      u->reload_gateway_ok = true;
    } else if (u->reload == RELOAD_GATEWAY &&
               line_has_msg(line, "reload refused, keeping the running tenants")) {
      sfmt(u->reload_err, sizeof u->reload_err, "the gateway refused the tenants file: %s",
               line);
    }
    break;
  }
}

/* ---- readiness ----------------------------------------------------------------------------- */

/*
 * GET path from the gateway; returns the HTTP status (0 when unreachable) and the body's start
 * in body. Bounded: connect and answer within timeout_ms in all.
 */
static int http_get(const char *host, int port, const char *path, char *body, size_t bodylen,
                    int timeout_ms) {
  if (body && bodylen) body[0] = '\0';
  struct sockaddr_storage ss;
  socklen_t sl;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    sl = sizeof *a4;
  } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    sl = sizeof *a6;
  } else {
    return 0;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return 0;
  int64_t until = up_now_ms() + timeout_ms;
  int status = 0;
  if (connect(fd, (struct sockaddr *)&ss, sl) != 0 && errno != EINPROGRESS) goto out;
  struct pollfd pf = {.fd = fd, .events = POLLOUT};
  if (poll(&pf, 1, timeout_ms) != 1) goto out;
  int soerr = 0;
  socklen_t el = sizeof soerr;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el) != 0 || soerr != 0) goto out;
  char req[256];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
  if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) goto out;
  char buf[2048];
  size_t used = 0;
  while (used + 1 < sizeof buf) {
    int64_t left = until - up_now_ms();
    if (left <= 0) break;
    pf = (struct pollfd){.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, (int)left) != 1) break;
    ssize_t r = recv(fd, buf + used, sizeof buf - 1 - used, 0);
    if (r <= 0) break;
    used += (size_t)r;
  }
  buf[used] = '\0';
  if (strncmp(buf, "HTTP/1.", 7) == 0 && strlen(buf) >= 12) status = atoi(buf + 9);
  const char *b = strstr(buf, "\r\n\r\n");
  if (b && body) sfmt(body, bodylen, "%s", b + 4);
out:
  close(fd);
  return status;
}

static void print_banner(struct up *u) {
  char url[128];
  sfmt(url, sizeof url, strchr(u->check_host, ':') ? "http://[%s]:%d" : "http://%s:%d",
           u->check_host, u->port);
  printf("\nRealm is up (%.1f s): %s   (OpenAI base URL: %s/v1)\n",
         (double)(up_now_ms() - u->started_ms) / 1000.0, url, url);
  printf("  model   \"%s\": %s%s\n", u->cfg.model_name, u->model_path,
         u->synthesized ? " (random weights: output is random text)" : "");
  for (size_t i = 0; i < u->cfg.n_tenants; i++) {
    const struct up_tenant *t = &u->cfg.tenants[i];
    const char *key = NULL;
    for (size_t k = 0; k < u->n_keys; k++)
      if (strcmp(u->keys[k].tenant, t->id) == 0) key = u->keys[k].key;
    printf("  tenant  %-12s %d runner%s  key: %s\n", t->id, t->replicas, t->replicas == 1 ? " " : "s",
           key ? key : "(created earlier; printed only then: `realmctl tenant rotate-key` makes a new one)");
  }
  printf("  tenants file: %s\n", u->tenants_path);
  const char *key = u->n_keys > 0 ? u->keys[0].key : "$REALM_API_KEY";
  const char *model = u->cfg.model_name;
  if (u->n_keys > 0) {
    for (size_t i = 0; i < u->cfg.n_tenants; i++)
      if (strcmp(u->cfg.tenants[i].id, u->keys[0].tenant) == 0 && u->cfg.tenants[i].models)
        model = json_string_value(json_array_get(u->cfg.tenants[i].models, 0));
  }
  printf("\nTry it:\n  curl -sN %s/v1/chat/completions -H \"Authorization: Bearer %s\" \\\n"
         "    -H 'Content-Type: application/json' \\\n"
         "    -d '{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a "
         "time\"}],\"max_tokens\":48,\"stream\":true}'\n",
         url, key, model);
  printf("\nAdd a tenant:  realmctl tenant add ID --models %s --file %s && kill -HUP %d\n",
         u->cfg.model_name, u->tenants_path, (int)getpid());
  printf("Stop:          Ctrl-C (or kill %d)\n\n", (int)getpid());
  fflush(stdout);
}

static void announce_ready(struct up *u) {
  u->announced = true;
  print_banner(u);
  json_t *keys = json_object(), *children = json_array();
  for (size_t k = 0; k < u->n_keys; k++)
    json_object_set_new(keys, u->keys[k].tenant, json_string(u->keys[k].key));
  for (size_t i = 0; i < up_sup_count(u->sup); i++) {
    struct up_child *c = up_sup_child(u->sup, i);
    json_array_append_new(children, json_pack("{s:s,s:i}", "name", c->name, "pid", (int)c->pid));
  }
  emit_event(u, json_pack("{s:s,s:i,s:s,s:i,s:s,s:s,s:o,s:o}", "event", "ready", "port", u->port,
                          "host", u->check_host, "pid", (int)getpid(), "tenants_file",
                          u->tenants_path, "model", u->model_path, "keys", keys, "children",
                          children));
  /* Keys are shown once: forget them now. */
  for (size_t k = 0; k < u->n_keys; k++) memset(u->keys[k].key, 0, sizeof u->keys[k].key);
  u->n_keys = 0;
}

/* Says what is still missing, every UP_PROGRESS_MS while waiting for readiness. */
static void report_progress(struct up *u, const char *ready_body) {
  char what[1024] = "";
  size_t used = 0;
  for (size_t i = 0; i < up_sup_count(u->sup) && used + 100 < sizeof what; i++) {
    struct up_child *c = up_sup_child(u->sup, i);
    if (c->ready) continue;
    used += (size_t)snprintf(what + used, sizeof what - used, "%s%s%s", used ? ", " : "", c->name,
                             c->role == UP_ROLE_WORKER ? " (loading the model)" : "");
  }
  say("waiting %.0f s so far: %s%s%s", (double)(up_now_ms() - u->started_ms) / 1000.0,
      used ? "not ready yet: " : "", what,
      !used && ready_body && ready_body[0] ? ready_body : (!used ? "gateway /ready" : ""));
}

/* ---- reload (SIGHUP) ----------------------------------------------------------------------- */

static void reload_finish(struct up *u, bool ok) {
  if (ok) say("reload done: tenants file applied");
  else say("reload failed: %s", u->reload_err);
  emit_event(u, json_pack("{s:s,s:b,s:s,s:O}", "event", "reloaded", "ok", ok, "error",
                          ok ? "" : u->reload_err, "started", u->reload_started));
  json_decref(u->reload_started);
  u->reload_started = NULL;
  u->reload = RELOAD_IDLE;
}

static void reload_begin(struct up *u) {
  if (u->reload != RELOAD_IDLE) {
    u->reload_pending = true;
    return;
  }
  u->reload_err[0] = '\0';
  u->reload_gateway_ok = false;
  u->reload_started = json_array();
  u->reload_deadline_ms = up_now_ms() + 60000;
  say("SIGHUP: re-reading %s", u->tenants_path);
  struct up_new_key keys[UP_MAX_TENANTS];
  size_t n_keys = 0;
  size_t before = u->cfg.n_tenants;
  int rc = up_tenants_sync(u->tenants_path, &u->cfg, u->run_dir, keys, UP_MAX_TENANTS, &n_keys,
                           u->reload_err, sizeof u->reload_err);
  if (rc == 0) {
    for (size_t k = 0; k < n_keys; k++) {
      say("new API key for tenant '%s' (shown once; only its hash is stored): %s", keys[k].tenant,
          keys[k].key);
      memset(keys[k].key, 0, sizeof keys[k].key);
    }
    for (size_t i = before; i < u->cfg.n_tenants; i++)
      say("tenant '%s' added: starting %d runner%s", u->cfg.tenants[i].id,
          u->cfg.tenants[i].replicas, u->cfg.tenants[i].replicas == 1 ? "" : "s");
    rc = start_missing_runners(u, u->reload_started, u->reload_err, sizeof u->reload_err);
  }
  if (rc < 0) {
    reload_finish(u, false);
    return;
  }
  u->reload = RELOAD_RUNNERS;
}

/* Advances the reload state machine; called on every loop turn. */
static void reload_tick(struct up *u) {
  int64_t now = up_now_ms();
  if (u->reload != RELOAD_IDLE && now > u->reload_deadline_ms) {
    sfmt(u->reload_err, sizeof u->reload_err, "not done within 60 s (phase %d)", u->reload);
    reload_finish(u, false);
  }
  if (u->reload == RELOAD_RUNNERS) {
    for (size_t i = 0; i < json_array_size(u->reload_started); i++) {
      const char *name = json_string_value(json_array_get(u->reload_started, i));
      for (size_t k = 0; k < up_sup_count(u->sup); k++) {
        struct up_child *c = up_sup_child(u->sup, k);
        if (strcmp(c->name, name) == 0 && !c->ready) return; /* not yet */
      }
    }
    if (u->gateway && u->gateway->pid > 0 && u->gateway->ready) {
      kill(u->gateway->pid, SIGHUP);
      u->reload = RELOAD_GATEWAY;
    } else {
      u->reload = RELOAD_READY; /* a (re)starting gateway reads the new file anyway */
    }
  }
  if (u->reload == RELOAD_GATEWAY) {
    if (u->reload_err[0]) reload_finish(u, false);
    else if (u->reload_gateway_ok) u->reload = RELOAD_READY;
  }
  if (u->reload == RELOAD_READY && u->port > 0 &&
      http_get(u->check_host, u->port, "/ready", NULL, 0, 500) == 200)
    reload_finish(u, true);
  if (u->reload == RELOAD_IDLE && u->reload_pending) {
    u->reload_pending = false;
    reload_begin(u);
  }
}

/* ---- command ------------------------------------------------------------------------------- */

static void up_usage(FILE *out) {
  fprintf(out,
          "usage: realmctl up --config FILE [--model FILE.gguf] [--state-dir DIR] [--port N]\n"
          "                   [--module-cache DIR] [--bin-dir DIR] [--ready-timeout SECONDS]\n"
          "                   [--ready-fd N]\n"
          "Starts realm-worker, the runner replicas of every tenant and realm-gateway on this\n"
          "machine, supervised (restarted with back-off when they die), logs prefixed per child.\n"
          "  --config FILE     tenants and options (see deploy/config/local.example.json)\n"
          "  --model FILE      GGUF model to serve; default: the config's model.path, else a\n"
          "                    random-weight demo model synthesized once into the state dir\n"
          "  --state-dir DIR   tenants.json, models/, module-cache/, run/ (default ./.realm)\n"
          "  --port N          gateway port, overrides the config (0: any free port)\n"
          "  --module-cache DIR  compiled guest modules (default STATE/module-cache)\n"
          "  --bin-dir DIR     where realm-worker, realm-runner, realm-gateway are\n"
          "  --ready-timeout S give up when not ready after S seconds (default 300)\n"
          "  --ready-fd N      write JSON events (ready with port and new keys, start, exit,\n"
          "                    reloaded) to file descriptor N\n"
          "SIGHUP re-reads the tenants file (starts runners for tenants added with `realmctl\n"
          "tenant add`, then reloads the gateway); SIGINT/SIGTERM stop everything: the gateway\n"
          "first, letting its requests in flight finish for up to supervisor.stop_grace_ms\n"
          "minus 1 s; a second one ends them at once, a third kills every child.\n");
}

static int parse_int_arg(const char *flag, const char *v, long lo, long hi, long *ret) {
  char *end = NULL;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (!*v || *end || errno || n < lo || n > hi) {
    fprintf(stderr, "realmctl up: %s '%s' must be an integer %ld..%ld\n", flag, v, lo, hi);
    return -1;
  }
  *ret = n;
  return 0;
}

/* Makes the run directory for ipc sockets: STATE/run, or a private one under /tmp when that
 * path would not fit a Unix socket address. */
static int make_run_dir(struct up *u, char *err, size_t errlen) {
  sfmt(u->run_dir, sizeof u->run_dir, "%s/run", u->state_dir);
  if (strlen(u->run_dir) + UP_RUNNER_SOCK_NAME_MAX > UP_IPC_PATH_MAX) {
    char tmpl[] = "/tmp/realm-up-XXXXXX";
    if (!mkdtemp(tmpl)) {
      sfmt(err, errlen, "mkdtemp: %s", strerror(errno));
      return REALM_E_SYSTEM;
    }
    sfmt(u->run_dir, sizeof u->run_dir, "%s", tmpl);
    u->run_dir_is_temp = true;
    say("state dir path is too long for socket names: sockets go to %s", u->run_dir);
    return 0;
  }
  return mkdir_mode(u->run_dir, 0700, err, errlen);
}

/* Removes the sockets left in the run directory once every child is gone (a jailed runner
 * cannot unlink its own), and the directory itself when it was a temporary one. */
static void clean_run_dir(struct up *u) {
  DIR *d = opendir(u->run_dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (n > 5 && strcmp(e->d_name + n - 5, ".sock") == 0) unlinkat(dirfd(d), e->d_name, 0);
  }
  closedir(d);
  if (u->run_dir_is_temp) rmdir(u->run_dir);
}

/* Takes STATE/up.lock for the life of this process (the fd is close-on-exec, so children do
 * not hold it): two stacks on one state dir would fight over the sockets and the tenants file.
 * Returns the fd, or -1 with the holder's pid (from up.pid, 0 if unknown) in *ret_other. */
static int lock_state_dir(const struct up *u, int *ret_other) {
  char lock_path[PATH_MAX];
  sfmt(lock_path, sizeof lock_path, "%s/up.lock", u->state_dir);
  int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return *ret_other = 0, -1;
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) return fd;
  close(fd);
  *ret_other = 0;
  FILE *f = fopen(u->pid_path, "re");
  if (f) {
    if (fscanf(f, "%d", ret_other) != 1) *ret_other = 0;
    fclose(f);
  }
  return -1;
}

static int run_stack(struct up *u);

int realmctl_cmd_up(int argc, char **argv) {
  const char *config = NULL, *model = NULL, *state = ".realm", *bin_dir = NULL, *cache = NULL;
  long port = -1, ready_fd = -1, ready_timeout = 300;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      up_usage(stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "realmctl up: unknown option or missing value: '%s'\n", a);
      up_usage(stderr);
      return 2;
    }
    const char *v = argv[++i];
    if (!strcmp(a, "--config")) config = v;
    else if (!strcmp(a, "--model")) model = v;
    else if (!strcmp(a, "--state-dir")) state = v;
    else if (!strcmp(a, "--bin-dir")) bin_dir = v;
    else if (!strcmp(a, "--module-cache")) cache = v;
    else if (!strcmp(a, "--port")) {
      if (parse_int_arg(a, v, 0, 65535, &port) < 0) return 2;
    } else if (!strcmp(a, "--ready-fd")) {
      if (parse_int_arg(a, v, 3, 1 << 20, &ready_fd) < 0) return 2;
    } else if (!strcmp(a, "--ready-timeout")) {
      if (parse_int_arg(a, v, 1, 86400, &ready_timeout) < 0) return 2;
    } else {
      fprintf(stderr, "realmctl up: unknown option '%s'\n", a);
      up_usage(stderr);
      return 2;
    }
  }
  if (!config) {
    fprintf(stderr, "realmctl up: --config FILE is required (e.g. deploy/config/local.example.json)\n");
    return 2;
  }
  struct up *u = calloc(1, sizeof *u);
  if (!u) return 1;
  u->started_ms = up_now_ms();
  u->ready_fd = (int)ready_fd;
  u->ready_timeout_ms = ready_timeout * 1000;
  if (u->ready_fd >= 0 && fcntl(u->ready_fd, F_SETFD, FD_CLOEXEC) < 0) {
    fprintf(stderr, "realmctl up: --ready-fd %d is not an open file descriptor\n", u->ready_fd);
    free(u);
    return 2;
  }
  char err[1024] = "";
  int rc = up_config_load(config, &u->cfg, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "realmctl up: %s\n", err);
    free(u);
    return 1;
  }
  if (port >= 0) u->cfg.gw_port = port;
  int status = 1, lock_fd = -1;
  ssize_t n = readlink("/proc/self/exe", u->self_exe, sizeof u->self_exe - 1);
  if (n <= 0) {
    fprintf(stderr, "realmctl up: cannot find my own executable: %s\n", strerror(errno));
    goto out;
  }
  u->self_exe[n] = '\0';
  sfmt(u->self_dir, sizeof u->self_dir, "%s", u->self_exe);
  *strrchr(u->self_dir, '/') = '\0';

  /* Step 1: state directory. */
  if (mkdir_mode(state, 0700, err, sizeof err) < 0 || !realpath(state, u->state_dir)) {
    fprintf(stderr, "realmctl up: state dir %s: %s\n", state, err[0] ? err : strerror(errno));
    goto out;
  }
  if (strlen(u->state_dir) > PATH_MAX - 128) {
    fprintf(stderr, "realmctl up: state dir path %s is too long\n", u->state_dir);
    goto out;
  }
  sfmt(u->tenants_path, sizeof u->tenants_path, "%s/tenants.json", u->state_dir);
  sfmt(u->pid_path, sizeof u->pid_path, "%s/up.pid", u->state_dir);
  int other = 0;
  lock_fd = lock_state_dir(u, &other);
  if (lock_fd < 0) {
    fprintf(stderr, "realmctl up: another realmctl up (pid %d) is using %s; stop it first\n",
            other, u->state_dir);
    goto out;
  }
  FILE *pf = fopen(u->pid_path, "we");
  if (pf) {
    fprintf(pf, "%d\n", (int)getpid());
    fclose(pf);
  }
  if (cache) {
    if (mkdir_mode(cache, 0700, err, sizeof err) < 0 || !realpath(cache, u->cache_dir)) {
      fprintf(stderr, "realmctl up: module cache %s: %s\n", cache, err[0] ? err : strerror(errno));
      goto out;
    }
  } else {
    sfmt(u->cache_dir, sizeof u->cache_dir, "%s/module-cache", u->state_dir);
    if (mkdir_mode(u->cache_dir, 0700, err, sizeof err) < 0) {
      fprintf(stderr, "realmctl up: %s\n", err);
      goto out;
    }
  }
  if (make_run_dir(u, err, sizeof err) < 0) {
    fprintf(stderr, "realmctl up: %s\n", err);
    goto out;
  }
  if (find_bin(u, bin_dir, "realm-worker", "compute-worker/worker/realm-worker", u->bin_worker,
               sizeof u->bin_worker, err, sizeof err) < 0 ||
      find_bin(u, bin_dir, "realm-runner", "tenant-runner/runner/realm-runner", u->bin_runner,
               sizeof u->bin_runner, err, sizeof err) < 0 ||
      find_bin(u, bin_dir, "realm-gateway", "gateway/realm-gateway", u->bin_gateway,
               sizeof u->bin_gateway, err, sizeof err) < 0) {
    fprintf(stderr, "realmctl up: %s\n", err);
    goto out;
  }
  /* The default guest: REALM_DEFAULT_MODULE, the build tree, or the installed share dir. */
  const char *env_mod = getenv("REALM_DEFAULT_MODULE");
  char cand[PATH_MAX];
  sfmt(cand, sizeof cand, "%s/../../tenant-runner/guest-sdk/default/guest/default.wasm",
           u->self_dir);
  if (env_mod && env_mod[0]) sfmt(u->default_module, sizeof u->default_module, "%s", env_mod);
  else if (is_file(cand, R_OK) && realpath(cand, u->default_module)) {
  } else sfmt(u->default_module, sizeof u->default_module, "%s/../share/realm/modules/default.wasm",
                  u->self_dir);

  sfmt(u->check_host, sizeof u->check_host, "%s",
           !strcmp(u->cfg.gw_listen, "0.0.0.0") ? "127.0.0.1"
           : !strcmp(u->cfg.gw_listen, "::")    ? "::1"
                                                : u->cfg.gw_listen);

  /* Steps 2-4. */
  if (prepare_model(u, model, err, sizeof err) < 0) {
    fprintf(stderr, "realmctl up: %s\n", err);
    goto out;
  }
  rc = up_tenants_sync(u->tenants_path, &u->cfg, u->run_dir, u->keys, UP_MAX_TENANTS, &u->n_keys,
                       err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "realmctl up: %s\n", err);
    goto out;
  }
  for (size_t k = 0; k < u->n_keys; k++)
    say("new API key for tenant '%s' (shown once; only its hash is stored in %s): %s",
        u->keys[k].tenant, u->tenants_path, u->keys[k].key);
  if (compile_modules(u, err, sizeof err) < 0) {
    fprintf(stderr, "realmctl up: %s\n", err);
    goto out;
  }
  status = run_stack(u);
out:
  if (status != 0 && u->run_dir_is_temp) rmdir(u->run_dir);
  if (lock_fd >= 0) {
    unlink(u->pid_path);
    close(lock_fd);
  }
  up_config_free(&u->cfg);
  free(u);
  return status;
}

/* Steps 5-8: start, supervise, announce, reload, stop. */
static int run_stack(struct up *u) {
  char err[1024] = "";
  struct up_sup_opts so = {.backoff_ms = u->cfg.backoff_ms,
                           .max_backoff_ms = u->cfg.max_backoff_ms,
                           .healthy_after_ms = u->cfg.healthy_after_ms,
                           .stop_grace_ms = u->cfg.stop_grace_ms,
                           .log_fd = 2,
                           .hooks = {.user = u, .on_start = on_start, .on_exit = on_exit_hook,
                                     .on_line = on_line}};
  if (up_sup_new(&so, &u->sup, err, sizeof err) < 0) {
    fprintf(stderr, "realmctl up: %s\n", err);
    return 1;
  }
  int status = 0;
  say("starting realm-worker, %zu tenant%s' runners and realm-gateway", u->cfg.n_tenants,
      u->cfg.n_tenants == 1 ? "" : "s");
  if (start_worker(u, err, sizeof err) < 0 || start_missing_runners(u, NULL, err, sizeof err) < 0 ||
      start_gateway(u, err, sizeof err) < 0) {
    fprintf(stderr, "realmctl up: %s\n", err);
    status = 1;
    goto stop;
  }
  u->next_progress_ms = up_now_ms() + UP_PROGRESS_MS;
  for (;;) {
    int sig = up_sup_poll(u->sup, 100);
    if (sig & (UP_SIG_STOP | UP_SIG_STOP2)) {
      say("stop signal: stopping gateway (requests in flight get up to %lld ms; Ctrl-C again "
          "to end them now), runners, worker",
          (long long)up_gateway_drain_ms(u->cfg.stop_grace_ms));
      break;
    }
    if (sig & UP_SIG_HUP) reload_begin(u);
    int64_t now = up_now_ms();
    if (!u->announced) {
      char body[512] = "";
      if (u->gateway->ready && u->port > 0 && now >= u->next_check_ms) {
        u->next_check_ms = now + 100;
        if (http_get(u->check_host, u->port, "/ready", body, sizeof body, 500) == 200) {
          announce_ready(u);
          continue;
        }
      }
      if (now >= u->next_progress_ms) {
        u->next_progress_ms = now + UP_PROGRESS_MS;
        report_progress(u, body);
      }
      if (now - u->started_ms > u->ready_timeout_ms) {
        say("not ready after %lld s: giving up (the children's lines above say why)",
            (long long)(u->ready_timeout_ms / 1000));
        status = 1;
        break;
      }
      bool all_retired = u->worker->retired || u->gateway->retired;
      if (all_retired) {
        say("a required daemon was not restarted: giving up");
        status = 1;
        break;
      }
    } else {
      reload_tick(u);
    }
  }
stop:
  up_sup_stop_role(u->sup, UP_ROLE_GATEWAY);
  up_sup_stop_role(u->sup, UP_ROLE_RUNNER);
  up_sup_stop_role(u->sup, UP_ROLE_WORKER);
  say("stopped");
  unlink(u->pid_path);
  clean_run_dir(u);
  json_decref(u->reload_started);
  up_sup_free(u->sup);
  return status;
}
