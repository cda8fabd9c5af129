/*
 * up.h — internals of `realmctl up`, the one-command local stack: the config file
 * (up_config.c), the gateway's tenants file derived from it (up_config.c) and the multi-child
 * supervisor that runs realm-worker, the runners and realm-gateway with their logs prefixed
 * (up_sup.c). cmd_up.c ties them together.
 *
 * Nothing here prints except the supervisor's log prefixing, whose whole point is printing
 * the children's lines; every other function returns a realm error code and fills err.
 */
#ifndef REALMCTL_UP_H
#define REALMCTL_UP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Limits of `realmctl up` (local to realmctl: no other component reads them). */
#define UP_MAX_TENANTS 64        /* tenants one local stack runs */
#define UP_MAX_REPLICAS 16       /* runner replicas of one tenant */
#define UP_MAX_CHILDREN (2 + UP_MAX_TENANTS * UP_MAX_REPLICAS)
#define UP_MAX_CONFIG_BYTES (1u << 20)
#define UP_MAX_EXTRA_ARGS 32     /* "args" entries per daemon section */
#define UP_PATH_MAX 512
/* An inline chat template travels as one argv string of realm-runner (--chat-template), and
 * Linux caps one argv string at 128 KiB; larger templates go in a file ("@FILE"). */
#define UP_MAX_CHAT_TEMPLATE_BYTES (64 * 1024)
#define UP_IPC_PATH_MAX 107      /* sun_path holds 108 bytes with the NUL */
/* The longest socket name in the run dir: "/runner-" + 64-char id + "-15" + ".sock". */
#define UP_RUNNER_SOCK_NAME_MAX (8 + 64 + 3 + 5)

/* ---- config (up_config.c) ------------------------------------------------------------------ */

struct up_tenant {
  char id[65];
  int replicas;           /* 1..UP_MAX_REPLICAS */
  json_t *models;         /* array of model names (owned); the config's model name if absent */
  json_t *limits;         /* object or NULL (owned) */
  int64_t weight;         /* 1.. (1 if absent) */
  char module[UP_PATH_MAX]; /* guest .wasm; "" = the default guest */
  char *chat_template;    /* realm-runner --chat-template: a family name, Jinja text or
                           * "@/abs/path" (owned); NULL = none (the model's own template) */
  bool from_config;       /* false: adopted from the tenants file (realmctl tenant add) */
};

struct up_config {
  char model_path[UP_PATH_MAX]; /* "" = synthesize a demo model */
  char model_name[65];          /* what clients put in "model" */
  char gw_listen[64];
  int64_t gw_port;              /* 0 = any free port */
  int64_t worker_threads;       /* 0 = the worker's default (online CPUs) */
  int64_t kv_blocks;            /* 0 = the worker's default */
  char worker_backend[8];       /* realm-worker --backend: "cpu", "cuda", "auto"; "" = its default (cpu) */
  int64_t cuda_device;          /* realm-worker --cuda-device; -1 = not given */
  json_t *worker_args, *runner_args, *gateway_args; /* extra flags (arrays of strings, owned) */
  int64_t backoff_ms, max_backoff_ms, healthy_after_ms, stop_grace_ms;
  struct up_tenant tenants[UP_MAX_TENANTS];
  size_t n_tenants;
};

/*
 * The gateway's --drain-timeout under `up`, derived from supervisor.stop_grace_ms so that a
 * drain always ends (and the gateway exits 0) before up's SIGKILL: stop_grace_ms minus
 * UP_DRAIN_MARGIN_MS for the cut-off's error events and the exit, or half the grace when it
 * is shorter than two margins. The config may not set --drain-timeout in gateway.args; a
 * longer drain is a longer stop_grace_ms (docs/operations.md, "Stopping").
 */
#define UP_DRAIN_MARGIN_MS 1000
int64_t up_gateway_drain_ms(int64_t stop_grace_ms);

/* Reads and validates the config file. Relative paths (model, modules) are resolved against
 * the file's directory. On failure err names the field and value. */
int up_config_load(const char *path, struct up_config *ret_cfg, char *err, size_t errlen);
void up_config_free(struct up_config *cfg);

/* The runner endpoint of one replica: ipc://RUN_DIR/runner-ID-N.sock. */
int up_runner_endpoint(const char *run_dir, const char *tenant, int replica, char *out,
                       size_t outlen);

/* A key printed once to the operator (and to the --ready-fd consumer). */
struct up_new_key {
  char tenant[65];
  char key[80];
};

/*
 * Brings the tenants file at path in line with cfg: config tenants get their limits, weight
 * and models from the config, their runner endpoints under run_dir, and a fresh key when the
 * file has no key hash for them; tenants found only in the file whose runners are empty or
 * up-managed endpoints (added with `realmctl tenant add`) are appended to cfg as adopted
 * tenants with one replica (or as many endpoints as they list). Other tenants are left alone.
 * The file is written (atomically, 0600, validated by the gateway's parser) only when it
 * changed. New keys are returned in ret_keys (at most max_keys), *ret_n_keys set.
 */
int up_tenants_sync(const char *path, struct up_config *cfg, const char *run_dir,
                    struct up_new_key *ret_keys, size_t max_keys, size_t *ret_n_keys,
                    char *err, size_t errlen);

/* ---- supervisor (up_sup.c) ----------------------------------------------------------------- */

enum up_role { UP_ROLE_WORKER, UP_ROLE_RUNNER, UP_ROLE_GATEWAY };

struct up_child {
  char name[96];          /* "worker", "runner acme/0", "gateway": the log prefix */
  enum up_role role;
  char tenant[65];
  int replica;
  char **argv;            /* owned, NULL-terminated; argv[0] is an absolute path */
  pid_t pid;              /* 0 when not running */
  int out_fd;             /* read end of the child's stdout+stderr pipe, -1 when closed */
  char line[4096];        /* partial line carried between reads */
  size_t line_len;
  int64_t started_ms, next_start_ms; /* next_start_ms > 0: a restart is scheduled */
  int64_t backoff_ms;
  int64_t restarts;
  int64_t stop_sent_ms;   /* when SIGTERM was sent during a stop; 0 = not sent */
  bool ready;             /* its "ready"/"listening" line was seen since the last start */
  bool retired;           /* never restart (stack stopping, or gave up) */
  int last_status;        /* wait status of the last exit */
};

struct up_sup;

/* Events the supervisor reports to its owner (cmd_up.c). */
struct up_sup_hooks {
  void *user;
  void (*on_start)(void *user, struct up_child *c);
  void (*on_exit)(void *user, struct up_child *c, int wait_status);
  /* Each complete log line of a child, after it was printed with its prefix. */
  void (*on_line)(void *user, struct up_child *c, const char *line);
};

struct up_sup_opts {
  int64_t backoff_ms, max_backoff_ms, healthy_after_ms, stop_grace_ms;
  int log_fd;             /* where prefixed lines go (stderr) */
  struct up_sup_hooks hooks;
};

/* Creates the supervisor. It blocks SIGCHLD, SIGINT, SIGTERM and SIGHUP in the calling process
 * and reads them from a signalfd (children get a clean mask). */
int up_sup_new(const struct up_sup_opts *opts, struct up_sup **ret, char *err, size_t errlen);
void up_sup_free(struct up_sup *s);

/* Adds a child (argv is copied) and starts it at once. Returns the child or NULL (err set). */
struct up_child *up_sup_add(struct up_sup *s, const char *name, enum up_role role,
                            const char *tenant, int replica, char *const *argv, char *err,
                            size_t errlen);
/* Replaces a child's argv for its next start (e.g. the gateway's learned port). */
int up_sup_set_argv(struct up_child *c, char *const *argv);

size_t up_sup_count(const struct up_sup *s);
struct up_child *up_sup_child(struct up_sup *s, size_t i);

/* Signals the supervisor saw, returned by up_sup_poll. */
#define UP_SIG_STOP 1   /* SIGINT or SIGTERM */
#define UP_SIG_HUP 2
#define UP_SIG_STOP2 4  /* a second stop signal while stopping: kill at once */

/*
 * One turn of the event loop: waits up to timeout_ms for child output, child exits or
 * signals; prints and reports lines; reaps and schedules restarts with exponential back-off;
 * starts children whose restart time came. Returns a mask of UP_SIG_* seen (0 if none).
 */
int up_sup_poll(struct up_sup *s, int timeout_ms);

/* Stops the children of one role: SIGTERM, then SIGKILL after stop_grace_ms; waits for them
 * (pumping their logs) and marks them retired. */
void up_sup_stop_role(struct up_sup *s, enum up_role role);

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t up_now_ms(void);

#endif /* REALMCTL_UP_H */
