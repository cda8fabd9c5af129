/*
 * up_config.c — the `realmctl up` config file and the gateway tenants file derived from it.
 *
 * The config (deploy/config/local.example.json documents every field) says which tenants to
 * run, how many runner replicas each, their models, limits, weight and guest module, plus a
 * few global options. It holds no secrets: keys live only in the gateway's tenants file, as
 * SHA-256 hashes. up_tenants_sync() merges the two: the config decides limits, weight, models
 * and runner endpoints of its tenants; the tenants file keeps their key hashes (so a restart
 * of `up` keeps every key valid) and any tenant an operator added with `realmctl tenant add`.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth.h"
#include "realm/error.h"
#include "tenants.h"
#include "tenants_file.h"
#include "up.h"

#define FAIL(code, ...)                        \
  do {                                         \
    snprintf(err, errlen, __VA_ARGS__);        \
    return (code);                             \
  } while (0)

/* Copies a path from the config, resolved against base_dir when relative. */
static int resolve_path(const char *base_dir, const char *p, char *out, size_t outlen) {
  int n = p[0] == '/' ? snprintf(out, outlen, "%s", p) : snprintf(out, outlen, "%s/%s", base_dir, p);
  return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* Reads an optional integer field in [lo, hi]; absent leaves *ret as is. */
static int get_int(json_t *obj, const char *where, const char *key, int64_t lo, int64_t hi,
                   int64_t *ret, char *err, size_t errlen) {
  json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
    FAIL(REALM_E_INVALID_ARGUMENT, "config: '%s%s' must be an integer %lld..%lld", where, key,
         (long long)lo, (long long)hi);
  *ret = json_integer_value(v);
  return 0;
}

/* Reads an optional string field into out; absent leaves out as is. */
static int get_str(json_t *obj, const char *where, const char *key, char *out, size_t outlen,
                   char *err, size_t errlen) {
  json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= outlen)
    FAIL(REALM_E_INVALID_ARGUMENT, "config: '%s%s' must be a non-empty string of at most %zu bytes",
         where, key, outlen - 1);
  memcpy(out, json_string_value(v), json_string_length(v) + 1);
  return 0;
}

/* Reads a daemon section's optional "args": extra command-line flags, passed verbatim. */
static int get_args(json_t *section, const char *where, json_t **ret, char *err, size_t errlen) {
  json_t *v = json_object_get(section, "args");
  if (!v || json_is_null(v)) return 0;
  size_t i;
  json_t *a;
  if (!json_is_array(v) || json_array_size(v) > UP_MAX_EXTRA_ARGS)
    FAIL(REALM_E_INVALID_ARGUMENT, "config: '%sargs' must be an array of at most %d strings", where,
         UP_MAX_EXTRA_ARGS);
  json_array_foreach(v, i, a) {
    if (!json_is_string(a))
      FAIL(REALM_E_INVALID_ARGUMENT, "config: '%sargs[%zu]' must be a string", where, i);
  }
  *ret = json_incref(v);
  return 0;
}

/* Reads a tenant's optional "chat_template" (what realm-runner --chat-template takes: a family
 * name such as "chatml", Jinja text, or "@FILE"). A relative @FILE is resolved against the
 * config's directory, since the runner's working directory is not the config's. The runner
 * validates the value itself (an unknown family fails its requests, a missing file its
 * set-up); here only its shape and size are checked. */
static int get_chat_template(json_t *t, const char *where, const char *base_dir, char **ret,
                             char *err, size_t errlen) {
  json_t *v = json_object_get(t, "chat_template");
  if (!v || json_is_null(v)) return 0;
  if (!json_is_string(v) || json_string_length(v) == 0 ||
      json_string_length(v) > UP_MAX_CHAT_TEMPLATE_BYTES ||
      strlen(json_string_value(v)) != json_string_length(v))
    FAIL(REALM_E_INVALID_ARGUMENT,
         "config: '%schat_template' must be a non-empty string of at most %d bytes without NUL "
         "(a family name, Jinja text, or @FILE for a longer template)",
         where, UP_MAX_CHAT_TEMPLATE_BYTES);
  const char *s = json_string_value(v);
  char *out;
  if (s[0] == '@') {
    char path[UP_PATH_MAX];
    if (!s[1] || resolve_path(base_dir, s + 1, path, sizeof path) < 0)
      FAIL(REALM_E_INVALID_ARGUMENT, "config: '%schat_template' @FILE path is empty or too long",
           where);
    size_t n = strlen(path) + 2;
    out = malloc(n);
    if (out) snprintf(out, n, "@%s", path);
  } else {
    out = strdup(s);
  }
  if (!out) FAIL(REALM_E_NOMEM, "out of memory");
  *ret = out;
  return 0;
}

static int parse_tenant(json_t *t, size_t idx, const char *base_dir, struct up_config *cfg,
                        char *err, size_t errlen) {
  struct up_tenant *ut = &cfg->tenants[cfg->n_tenants];
  memset(ut, 0, sizeof *ut);
  char where[96];
  snprintf(where, sizeof where, "tenants[%zu].", idx);
  if (!json_is_object(t)) FAIL(REALM_E_INVALID_ARGUMENT, "config: 'tenants[%zu]' must be an object", idx);
  json_t *id = json_object_get(t, "id");
  if (!json_is_string(id) || !gw_tenant_id_valid(json_string_value(id)))
    FAIL(REALM_E_INVALID_ARGUMENT, "config: '%sid' must be 1-%d characters of A-Z a-z 0-9 . _ -",
         where, GW_TENANT_ID_MAX);
  snprintf(ut->id, sizeof ut->id, "%s", json_string_value(id));
  for (size_t k = 0; k < cfg->n_tenants; k++)
    if (strcmp(cfg->tenants[k].id, ut->id) == 0)
      FAIL(REALM_E_INVALID_ARGUMENT, "config: tenant id '%s' appears twice", ut->id);
  int64_t replicas = 1, weight = 1;
  int rc = get_int(t, where, "replicas", 1, UP_MAX_REPLICAS, &replicas, err, errlen);
  if (rc == 0) rc = get_int(t, where, "weight", 1, 1000000, &weight, err, errlen);
  if (rc < 0) return rc;
  ut->replicas = (int)replicas;
  ut->weight = weight;
  json_t *models = json_object_get(t, "models");
  if (models && !json_is_null(models)) {
    size_t i;
    json_t *m;
    if (!json_is_array(models) || json_array_size(models) == 0)
      FAIL(REALM_E_INVALID_ARGUMENT, "config: '%smodels' must be a non-empty array of strings", where);
    json_array_foreach(models, i, m) {
      if (!json_is_string(m) || json_string_length(m) == 0)
        FAIL(REALM_E_INVALID_ARGUMENT, "config: '%smodels[%zu]' must be a non-empty string", where, i);
    }
    ut->models = json_incref(models);
  } else {
    ut->models = json_pack("[s]", cfg->model_name);
    if (!ut->models) FAIL(REALM_E_NOMEM, "out of memory");
  }
  json_t *limits = json_object_get(t, "limits");
  if (limits && !json_is_null(limits)) {
    if (!json_is_object(limits)) {
      json_decref(ut->models);
      FAIL(REALM_E_INVALID_ARGUMENT, "config: '%slimits' must be an object", where);
    }
    ut->limits = json_deep_copy(limits); /* the gateway's parser checks its fields */
  }
  char module[UP_PATH_MAX] = "";
  rc = get_str(t, where, "module", module, sizeof module, err, errlen);
  if (rc == 0 && module[0] && resolve_path(base_dir, module, ut->module, sizeof ut->module) < 0)
    rc = REALM_E_INVALID_ARGUMENT, snprintf(err, errlen, "config: '%smodule' path too long", where);
  if (rc == 0) rc = get_chat_template(t, where, base_dir, &ut->chat_template, err, errlen);
  if (rc < 0) {
    json_decref(ut->models);
    json_decref(ut->limits);
    return rc;
  }
  ut->from_config = true;
  cfg->n_tenants++;
  return 0;
}

int64_t up_gateway_drain_ms(int64_t stop_grace_ms) {
  if (stop_grace_ms >= 2 * UP_DRAIN_MARGIN_MS) return stop_grace_ms - UP_DRAIN_MARGIN_MS;
  return stop_grace_ms / 2;
}

/* up passes the gateway --drain-timeout itself (up_gateway_drain_ms); a second one in
 * gateway.args would win (the last flag counts) and could outlast the stop grace, so the
 * gateway would be SIGKILLed mid-drain with its streams cut without an error event. */
static int check_gateway_args(json_t *args, char *err, size_t errlen) {
  size_t i;
  json_t *a;
  json_array_foreach(args, i, a) {
    const char *v = json_string_value(a);
    if (strcmp(v, "--drain-timeout") == 0 || strncmp(v, "--drain-timeout=", 16) == 0)
      FAIL(REALM_E_INVALID_ARGUMENT,
           "config: 'gateway.args[%zu]' is '%s': up sets the gateway's --drain-timeout from "
           "supervisor.stop_grace_ms (minus %d ms); raise stop_grace_ms for a longer drain",
           i, v, UP_DRAIN_MARGIN_MS);
  }
  return 0;
}

int up_config_load(const char *path, struct up_config *ret_cfg, char *err, size_t errlen) {
  struct stat st;
  if (stat(path, &st) != 0)
    FAIL(realm_err_from_errno(errno), "config %s: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode) || st.st_size > (off_t)UP_MAX_CONFIG_BYTES)
    FAIL(REALM_E_TOO_LARGE, "config %s: not a regular file of at most %u bytes", path,
         UP_MAX_CONFIG_BYTES);
  json_error_t je;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
  if (!root)
    FAIL(REALM_E_INVALID_ARGUMENT, "config %s: %s (line %d column %d)", path, je.text, je.line,
         je.column);
  char real[PATH_MAX], base_dir[PATH_MAX];
  if (!realpath(path, real)) snprintf(real, sizeof real, "%s", path);
  snprintf(base_dir, sizeof base_dir, "%s", real);
  char *slash = strrchr(base_dir, '/');
  if (slash) *slash = '\0';
  if (!base_dir[0]) snprintf(base_dir, sizeof base_dir, "/");

  struct up_config *cfg = calloc(1, sizeof *cfg);
  if (!cfg) {
    json_decref(root);
    FAIL(REALM_E_NOMEM, "out of memory");
  }
  snprintf(cfg->model_name, sizeof cfg->model_name, "default");
  snprintf(cfg->gw_listen, sizeof cfg->gw_listen, "127.0.0.1");
  cfg->gw_port = 8080;
  cfg->cuda_device = -1;
  cfg->backoff_ms = 100;
  cfg->max_backoff_ms = 5000;
  cfg->healthy_after_ms = 10000;
  cfg->stop_grace_ms = 5000;

  int rc = 0;
  if (!json_is_object(root)) {
    rc = REALM_E_INVALID_ARGUMENT;
    snprintf(err, errlen, "config %s: top level must be an object", path);
    goto out;
  }
  json_t *model = json_object_get(root, "model"), *gw = json_object_get(root, "gateway"),
         *wk = json_object_get(root, "worker"), *rn = json_object_get(root, "runner"),
         *sup = json_object_get(root, "supervisor"), *tenants = json_object_get(root, "tenants");
  const struct {
    json_t *v;
    const char *name;
  } sections[] = {{model, "model"}, {gw, "gateway"}, {wk, "worker"}, {rn, "runner"}, {sup, "supervisor"}};
  for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
    if (sections[i].v && !json_is_object(sections[i].v)) {
      rc = REALM_E_INVALID_ARGUMENT;
      snprintf(err, errlen, "config: '%s' must be an object", sections[i].name);
      goto out;
    }
  }
  char model_path[UP_PATH_MAX] = "";
  if ((rc = get_str(model, "model.", "name", cfg->model_name, sizeof cfg->model_name, err, errlen)) < 0 ||
      (rc = get_str(model, "model.", "path", model_path, sizeof model_path, err, errlen)) < 0 ||
      (rc = get_str(gw, "gateway.", "listen", cfg->gw_listen, sizeof cfg->gw_listen, err, errlen)) < 0 ||
      (rc = get_int(gw, "gateway.", "port", 0, 65535, &cfg->gw_port, err, errlen)) < 0 ||
      (rc = get_args(gw, "gateway.", &cfg->gateway_args, err, errlen)) < 0 ||
      (rc = check_gateway_args(cfg->gateway_args, err, errlen)) < 0 ||
      (rc = get_int(wk, "worker.", "threads", 0, 1024, &cfg->worker_threads, err, errlen)) < 0 ||
      (rc = get_int(wk, "worker.", "kv_blocks", 0, 1 << 24, &cfg->kv_blocks, err, errlen)) < 0 ||
      (rc = get_str(wk, "worker.", "backend", cfg->worker_backend, sizeof cfg->worker_backend, err, errlen)) < 0 ||
      (rc = get_int(wk, "worker.", "cuda_device", 0, 64, &cfg->cuda_device, err, errlen)) < 0 ||
      (rc = get_args(wk, "worker.", &cfg->worker_args, err, errlen)) < 0 ||
      (rc = get_args(rn, "runner.", &cfg->runner_args, err, errlen)) < 0 ||
      (rc = get_int(sup, "supervisor.", "backoff_ms", 1, 60000, &cfg->backoff_ms, err, errlen)) < 0 ||
      (rc = get_int(sup, "supervisor.", "max_backoff_ms", 1, 600000, &cfg->max_backoff_ms, err, errlen)) < 0 ||
      (rc = get_int(sup, "supervisor.", "healthy_after_ms", 0, 3600000, &cfg->healthy_after_ms, err, errlen)) < 0 ||
      (rc = get_int(sup, "supervisor.", "stop_grace_ms", 1, 600000, &cfg->stop_grace_ms, err, errlen)) < 0)
    goto out;
  if (cfg->worker_backend[0] && strcmp(cfg->worker_backend, "cpu") != 0 &&
      strcmp(cfg->worker_backend, "cuda") != 0 && strcmp(cfg->worker_backend, "auto") != 0) {
    rc = REALM_E_INVALID_ARGUMENT;
    snprintf(err, errlen, "config: 'worker.backend' is '%s'; must be cpu, cuda or auto",
             cfg->worker_backend);
    goto out;
  }
  if (model_path[0] && resolve_path(base_dir, model_path, cfg->model_path, sizeof cfg->model_path) < 0) {
    rc = REALM_E_INVALID_ARGUMENT;
    snprintf(err, errlen, "config: 'model.path' is too long");
    goto out;
  }
  if (!json_is_array(tenants) || json_array_size(tenants) == 0 ||
      json_array_size(tenants) > UP_MAX_TENANTS) {
    rc = REALM_E_INVALID_ARGUMENT;
    snprintf(err, errlen, "config: 'tenants' must be an array of 1..%d tenants", UP_MAX_TENANTS);
    goto out;
  }
  size_t i;
  json_t *t;
  json_array_foreach(tenants, i, t) {
    if ((rc = parse_tenant(t, i, base_dir, cfg, err, errlen)) < 0) goto out;
  }
out:
  json_decref(root);
  if (rc < 0) {
    up_config_free(cfg);
    free(cfg);
    return rc;
  }
  *ret_cfg = *cfg;
  free(cfg);
  return 0;
}

void up_config_free(struct up_config *cfg) {
  if (!cfg) return;
  for (size_t i = 0; i < cfg->n_tenants; i++) {
    json_decref(cfg->tenants[i].models);
    json_decref(cfg->tenants[i].limits);
    cfg->tenants[i].models = cfg->tenants[i].limits = NULL;
    free(cfg->tenants[i].chat_template);
    cfg->tenants[i].chat_template = NULL;
  }
  cfg->n_tenants = 0;
  json_decref(cfg->worker_args);
  json_decref(cfg->runner_args);
  json_decref(cfg->gateway_args);
  cfg->worker_args = cfg->runner_args = cfg->gateway_args = NULL;
}

int up_runner_endpoint(const char *run_dir, const char *tenant, int replica, char *out,
                       size_t outlen) {
  int n = snprintf(out, outlen, "ipc://%s/runner-%s-%d.sock", run_dir, tenant, replica);
  return n < 0 || (size_t)n >= outlen ? REALM_E_INVALID_ARGUMENT : 0;
}

/* True when every runner endpoint of a file tenant is one `up` would give it (any run
 * directory): such a tenant is ours to run. An empty list also qualifies. Returns the count. */
static bool runners_are_ours(json_t *runners, const char *id, size_t *ret_n) {
  *ret_n = 0;
  if (!runners || json_is_null(runners)) return true;
  if (!json_is_array(runners)) return false;
  char want[96];
  snprintf(want, sizeof want, "/runner-%s-", id);
  size_t i;
  json_t *r;
  json_array_foreach(runners, i, r) {
    const char *s = json_string_value(r);
    if (!s || strncmp(s, "ipc://", 6) != 0 || !strstr(s, want)) return false;
  }
  *ret_n = json_array_size(runners);
  return true;
}

static json_t *find_entry(json_t *root, const char *id) {
  size_t i;
  json_t *t;
  json_array_foreach(root, i, t) {
    if (json_is_string(json_object_get(t, "id")) &&
        strcmp(json_string_value(json_object_get(t, "id")), id) == 0)
      return t;
  }
  return NULL;
}

int up_tenants_sync(const char *path, struct up_config *cfg, const char *run_dir,
                    struct up_new_key *ret_keys, size_t max_keys, size_t *ret_n_keys,
                    char *err, size_t errlen) {
  json_t *root = NULL;
  int rc = gw_tenants_file_read(path, true, &root, err, errlen);
  if (rc < 0) return rc;
  if (gw_auth_init() < 0) {
    json_decref(root);
    FAIL(REALM_E_SYSTEM, "libsodium failed to initialize");
  }
  json_t *before = json_deep_copy(root);
  size_t n_keys = 0;
  char ep[UP_PATH_MAX];

  /* Adopt file tenants that are ours to run but not in the config. */
  size_t i;
  json_t *t;
  json_array_foreach(root, i, t) {
    const char *id = json_string_value(json_object_get(t, "id"));
    if (!id || !gw_tenant_id_valid(id)) continue; /* the gateway's parser will name it below */
    bool known = false;
    for (size_t k = 0; k < cfg->n_tenants; k++) known |= strcmp(cfg->tenants[k].id, id) == 0;
    size_t n_runners = 0;
    if (known || !runners_are_ours(json_object_get(t, "runners"), id, &n_runners)) continue;
    if (cfg->n_tenants >= UP_MAX_TENANTS) {
      rc = REALM_E_TOO_LARGE;
      snprintf(err, errlen, "more than %d tenants to run", UP_MAX_TENANTS);
      goto out;
    }
    struct up_tenant *ut = &cfg->tenants[cfg->n_tenants++];
    memset(ut, 0, sizeof *ut);
    snprintf(ut->id, sizeof ut->id, "%s", id);
    ut->replicas = n_runners == 0 ? 1 : (int)(n_runners > UP_MAX_REPLICAS ? UP_MAX_REPLICAS : n_runners);
    ut->weight = 1;
    ut->from_config = false;
  }

  for (size_t k = 0; k < cfg->n_tenants; k++) {
    struct up_tenant *ut = &cfg->tenants[k];
    json_t *e = find_entry(root, ut->id);
    if (!e) {
      e = json_pack("{s:s,s:[]}", "id", ut->id, "key_hashes");
      if (!e || json_array_append_new(root, e) < 0) {
        rc = REALM_E_NOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
      }
    }
    json_t *hashes = json_object_get(e, "key_hashes");
    if (!json_is_array(hashes) || json_array_size(hashes) == 0) {
      if (n_keys >= max_keys) {
        rc = REALM_E_TOO_LARGE;
        snprintf(err, errlen, "more than %zu new keys", max_keys);
        goto out;
      }
      struct up_new_key *nk = &ret_keys[n_keys];
      char hash[65];
      if (gw_key_generate(nk->key, sizeof nk->key) < 0) {
        rc = REALM_E_SYSTEM;
        snprintf(err, errlen, "cannot generate a key for tenant '%s'", ut->id);
        goto out;
      }
      gw_key_hash_hex(nk->key, hash);
      snprintf(nk->tenant, sizeof nk->tenant, "%s", ut->id);
      n_keys++;
      json_object_set_new(e, "key_hashes", json_pack("[s]", hash));
    }
    if (ut->from_config) {
      json_object_set(e, "models", ut->models);
      if (ut->limits) json_object_set(e, "limits", ut->limits);
      json_object_set_new(e, "weight", json_integer(ut->weight));
    } else if (!json_object_get(e, "models")) {
      json_object_set_new(e, "models", json_pack("[s]", cfg->model_name));
    }
    json_t *runners = json_array();
    for (int r = 0; r < ut->replicas; r++) {
      if (up_runner_endpoint(run_dir, ut->id, r, ep, sizeof ep) < 0) {
        json_decref(runners);
        rc = REALM_E_INVALID_ARGUMENT;
        snprintf(err, errlen, "runner endpoint path too long (run dir '%s')", run_dir);
        goto out;
      }
      json_array_append_new(runners, json_string(ep));
    }
    json_object_set_new(e, "runners", runners);
  }
  if (!json_equal(before, root)) rc = gw_tenants_file_write(path, root, err, errlen);
  if (rc == 0) *ret_n_keys = n_keys;
out:
  if (rc < 0) {
    for (size_t k = 0; k < n_keys; k++) memset(ret_keys[k].key, 0, sizeof ret_keys[k].key);
  }
  json_decref(before);
  json_decref(root);
  return rc;
}
