/*
 * options.c — realm-worker's command line: one realm/config.h table mapping --flags and
 * REALM_WORKER_* variables onto struct worker_config (default < environment < argv).
 */
#include <stdio.h>
#include <string.h>

#include "realm/config.h"
#include "realm/error.h"
#include "realm/limits.h"
#include "worker.h"

int worker_options_parse(int argc, char *const *argv, struct worker_config *cfg, char *err,
                         size_t errlen) {
  worker_config_defaults(cfg);
  static const char *model, *listen, *shm_socket, *isa, *weights, *backend, *weight_access,
      *huge_pages;
  static int64_t cuda_device, idle_ms, idle_sessions_ms;
  static bool no_jail, print_policy;
  static int64_t threads, kv_blocks, kv_block_tokens, window_us, batch_tokens, max_step_tokens,
      max_batch_seqs, prefill_chunk, max_sessions, max_weight, default_weight, pending,
      stats_ms, drain_ms, drain_timeout_ms, open_timeout_ms, open_queue, spin_us,
      pool_spin_us;
  static uint64_t kv_quota, max_shm, default_shm;
  static bool eager, step_lane;
  static const struct realm_option opts[] = {
      {"model", "REALM_WORKER_MODEL", REALM_OPT_STRING, "", 0, 0,
       "GGUF model file to serve (required)", &model},
      {"listen", "REALM_WORKER_LISTEN", REALM_OPT_STRING, "ipc:///tmp/realm-worker.sock", 0, 0,
       "ZeroMQ endpoints to bind, comma-separated (ipc:// and/or tcp://)", &listen},
      {"shm-socket", "REALM_WORKER_SHM_SOCKET", REALM_OPT_STRING, "", 0, 0,
       "Unix socket for the memfd handshake; empty: <first ipc path>.shm; 'none': inline only",
       &shm_socket},
      {"threads", "REALM_WORKER_THREADS", REALM_OPT_INT64, "0", 0, 1024,
       "engine threads (0: online CPUs)", &threads},
      {"isa", "REALM_WORKER_ISA", REALM_OPT_STRING, "auto", 0, 0,
       "CPU kernels: auto, scalar, avx2, avx512, avx512vnni, amx", &isa},
      {"huge-pages", "REALM_WORKER_HUGE_PAGES", REALM_OPT_STRING, "auto", 0, 0,
       "weights in 2 MiB pages from the vm.nr_hugepages pool: auto (when it has room), huge "
       "(or fail), small", &huge_pages},
      {"backend", "REALM_WORKER_BACKEND", REALM_OPT_STRING, "cpu", 0, 0,
       "compute backend: cpu, cuda, auto (cuda when a device is present; a cuda worker is not "
       "jailed)", &backend},
      {"cuda-device", "REALM_WORKER_CUDA_DEVICE", REALM_OPT_INT64, "0", 0, 64,
       "CUDA device ordinal (--backend cuda/auto)", &cuda_device},
      {"kv-blocks", "REALM_WORKER_KV_BLOCKS", REALM_OPT_INT64, "0", 0, 1 << 24,
       "KV cache blocks (0: eight full contexts)", &kv_blocks},
      {"kv-block-tokens", "REALM_WORKER_KV_BLOCK_TOKENS", REALM_OPT_INT64, "16", 1, 4096,
       "positions per KV block (page)", &kv_block_tokens},
      {"batch-window-us", "REALM_WORKER_BATCH_WINDOW_US", REALM_OPT_INT64, "300", 0, 60000000,
       "how long a Step waits for other runners' Steps to share its forward pass", &window_us},
      {"batch-eager", "REALM_WORKER_BATCH_EAGER", REALM_OPT_BOOL, "true", 0, 0,
       "skip the window when every connection with sessions has a Step queued", &eager},
      {"spin-us", "REALM_WORKER_SPIN_US", REALM_OPT_INT64, "500", 0, 100000,
       "after a forward pass, how long to spin for the next Step before sleeping: a runner's "
       "next Step then costs no wake-up (0: never spin)", &spin_us},
      {"pool-spin-us", "REALM_WORKER_POOL_SPIN_US", REALM_OPT_INT64, "500", 50, 100000,
       "CPU backend: how long an engine thread waits for the next parallel loop before it "
       "sleeps (the first 50 us spin, the rest yields the CPU); it should outlast a decode "
       "step's sampling round trip", &pool_spin_us},
      {"step-lane", "REALM_WORKER_STEP_LANE", REALM_OPT_BOOL, "true", 0, 0,
       "carry Steps through each connection's shared region with eventfd doorbells instead of "
       "ZeroMQ (docs/protocol.md §6.2); false: ZeroMQ only", &step_lane},
      {"batch-tokens", "REALM_WORKER_BATCH_TOKENS", REALM_OPT_INT64, "512", 1,
       REALM_MAX_STEP_TOKENS, "tokens in one forward pass", &batch_tokens},
      {"max-step-tokens", "REALM_WORKER_MAX_STEP_TOKENS", REALM_OPT_INT64, "4096", 1,
       REALM_MAX_STEP_TOKENS, "tokens in one Step message, summed over its entries",
       &max_step_tokens},
      {"max-batch-seqs", "REALM_WORKER_MAX_BATCH_SEQS", REALM_OPT_INT64, "64", 1,
       REALM_MAX_BATCH_SEQS, "entries per Step and sequences per forward pass", &max_batch_seqs},
      {"prefill-chunk", "REALM_WORKER_PREFILL_CHUNK", REALM_OPT_INT64, "128", 1,
       REALM_MAX_STEP_TOKENS, "most tokens of one sequence in one forward pass", &prefill_chunk},
      {"max-sessions", "REALM_WORKER_MAX_SESSIONS", REALM_OPT_INT64, "256", 1,
       REALM_MAX_SESSIONS_PER_CONN, "open sessions per connection", &max_sessions},
      {"max-weight", "REALM_WORKER_MAX_WEIGHT", REALM_OPT_INT64, "100", 1, 1000000,
       "cap on the fair-share weight a runner may ask for", &max_weight},
      {"default-weight", "REALM_WORKER_DEFAULT_WEIGHT", REALM_OPT_INT64, "1", 1, 1000000,
       "weight of a runner that asks for 0", &default_weight},
      {"tenant-weight", "REALM_WORKER_TENANT_WEIGHT", REALM_OPT_STRING, "", 0, 0,
       "operator weights that override the runners' requests: TENANT=W[,TENANT=W...]", &weights},
      {"max-kv-quota-tokens", "REALM_WORKER_MAX_KV_QUOTA_TOKENS", REALM_OPT_SIZE, "0", 0, 0,
       "cap on one tenant's KV budget in tokens (0: the whole cache)", &kv_quota},
      {"max-shm-bytes", "REALM_WORKER_MAX_SHM_BYTES", REALM_OPT_SIZE, "256M", 4096,
       (int64_t)REALM_MAX_SHM_BYTES, "cap on one connection's shared region", &max_shm},
      {"default-shm-bytes", "REALM_WORKER_DEFAULT_SHM_BYTES", REALM_OPT_SIZE, "16M", 4096,
       (int64_t)REALM_MAX_SHM_BYTES, "region of a runner that asks for 0", &default_shm},
      {"max-pending-steps", "REALM_WORKER_MAX_PENDING_STEPS", REALM_OPT_INT64, "16", 1, 4096,
       "Steps queued per connection before 'unavailable'", &pending},
      {"open-queue-timeout", "REALM_WORKER_OPEN_QUEUE_TIMEOUT", REALM_OPT_DURATION_MS, "30s", 0,
       86400000, "how long a SessionOpen waits for the shared KV pool to cover its reservation "
       "before 'unavailable' (KV cache full)", &open_timeout_ms},
      {"max-open-queue", "REALM_WORKER_MAX_OPEN_QUEUE", REALM_OPT_INT64, "1024", 0,
       REALM_MAX_OPEN_QUEUE, "SessionOpens waiting for KV pages at once, all tenants; more are "
       "refused at once (0: never wait)", &open_queue},
      {"stats-interval", "REALM_WORKER_STATS_INTERVAL", REALM_OPT_DURATION_MS, "10s", 0,
       86400000, "period of the debug-level stats line (0: never)", &stats_ms},
      {"drain-timeout", "REALM_WORKER_DRAIN_TIMEOUT_MS", REALM_OPT_DURATION_MS, "25s", 0,
       3600000, "on SIGTERM/SIGINT, how long open sessions keep being served (new ones "
       "refused) before what is left is answered 'shutting_down' (0: at once); a second signal "
       "ends it", &drain_timeout_ms},
      {"drain", "REALM_WORKER_DRAIN", REALM_OPT_DURATION_MS, "200ms", 0, 60000,
       "after the drain, how long to keep answering 'shutting_down' so the last replies reach "
       "the runners (linger)", &drain_ms},
      {"allow-weight-access", "REALM_WORKER_ALLOW_WEIGHT_ACCESS", REALM_OPT_STRING, "", 0, 0,
       "tenants whose guests may use Matmul and GetRows, which can reconstruct the weights: "
       "TENANT[,TENANT...] or '*' (default: nobody)", &weight_access},
      {"idle-timeout", "REALM_WORKER_IDLE_TIMEOUT", REALM_OPT_DURATION_MS, "10m", 0,
       7 * 86400000LL, "drop a connection without sessions that sent nothing this long (0: never)",
       &idle_ms},
      {"idle-session-timeout", "REALM_WORKER_IDLE_SESSION_TIMEOUT", REALM_OPT_DURATION_MS, "1h",
       0, 7 * 86400000LL,
       "drop a connection with sessions (freeing them) that sent nothing this long (0: never)",
       &idle_sessions_ms},
      {"no-jail", "REALM_WORKER_NO_JAIL", REALM_OPT_BOOL, "false", 0, 0,
       "DEBUGGING ONLY: run without the seccomp jail", &no_jail},
      {"print-policy", NULL, REALM_OPT_BOOL, "false", 0, 0,
       "print the jail's seccomp filter (libseccomp pseudo code) and exit", &print_policy},
  };
  int rc = realm_config_parse(opts, REALM_COUNTOF(opts), argc, argv, NULL, err, errlen);
  if (rc == REALM_CONFIG_HELP) {
    realm_config_print_help(stdout, argv[0],
                            "realm-worker: the shared compute service (sessions, continuous "
                            "batching across tenants, fair scheduling). Log level and format: "
                            "REALM_LOG_LEVEL, REALM_LOG_FORMAT.",
                            opts, REALM_COUNTOF(opts));
    return 1;
  }
  if (rc < 0) return rc;
  cfg->model_path = model;
  cfg->listen = listen;
  cfg->shm_socket = shm_socket;
  cfg->threads = (int)threads;
  cfg->isa = isa;
  cfg->huge_pages = huge_pages;
  cfg->kv_blocks = (uint32_t)kv_blocks;
  cfg->kv_block_tokens = (uint32_t)kv_block_tokens;
  cfg->batch_window_us = window_us;
  cfg->batch_eager = eager;
  cfg->spin_us = spin_us;
  cfg->pool_spin_us = pool_spin_us;
  cfg->step_lane = step_lane;
  cfg->batch_tokens = (uint32_t)batch_tokens;
  cfg->max_step_tokens = (uint32_t)max_step_tokens;
  cfg->max_batch_seqs = (uint32_t)max_batch_seqs;
  cfg->prefill_chunk = (uint32_t)prefill_chunk;
  cfg->max_sessions = (uint32_t)max_sessions;
  cfg->max_weight = (uint32_t)max_weight;
  cfg->default_weight = (uint32_t)default_weight;
  cfg->tenant_weights = weights;
  cfg->max_kv_quota_tokens = kv_quota;
  cfg->max_shm_bytes = max_shm;
  cfg->default_shm_bytes = default_shm;
  cfg->max_pending_steps = (uint32_t)pending;
  cfg->open_queue_timeout_ms = open_timeout_ms;
  cfg->max_open_queue = (uint32_t)open_queue;
  cfg->stats_interval_ms = stats_ms;
  cfg->drain_ms = drain_ms;
  cfg->drain_timeout_ms = drain_timeout_ms;
  cfg->backend = backend;
  cfg->cuda_device = (int)cuda_device;
  cfg->allow_weight_access = weight_access;
  cfg->idle_timeout_ms = idle_ms;
  cfg->idle_session_timeout_ms = idle_sessions_ms;
  cfg->no_jail = no_jail;
  cfg->print_policy = print_policy;
  return 0;
}
