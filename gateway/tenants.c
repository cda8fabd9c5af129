/*
 * tenants.c — parsing and validating the tenants file, and the reloadable snapshot store
 * (see tenants.h). Validation refuses the whole file on the first bad entry: a half-applied
 * tenants file could silently lock out or over-grant a tenant.
 */
#include "tenants.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "realm/error.h"
#include "realm/limits.h"

#define MAX_MODELS_PER_TENANT 256
#define MAX_RUNNERS_PER_TENANT 256
#define MAX_NAME_BYTES 256

bool gw_tenant_id_valid(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > GW_TENANT_ID_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)id[i];
    if (!isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

static void tenant_free(struct gw_tenant *t) {
  free(t->id);
  free(t->key_hashes);
  for (size_t i = 0; i < t->n_models; i++) free(t->models[i]);
  free(t->models);
  for (size_t i = 0; i < t->n_runners; i++) free(t->runners[i]);
  free(t->runners);
  gw_rl_unref(t->limiter);
}

static void tenants_free(struct gw_tenants *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n; i++) tenant_free(&t->v[i]);
  free(t->v);
  free(t->keys);
  free(t);
}

struct gw_tenants *gw_tenants_ref(struct gw_tenants *t) {
  __atomic_add_fetch(&t->refs, 1, __ATOMIC_ACQ_REL);
  return t;
}

void gw_tenants_unref(struct gw_tenants *t) {
  if (t && __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0) tenants_free(t);
}

/* Formats "tenants file: entry N (id 'X'): <msg>" into err and returns INVALID_ARGUMENT. */
static int entry_fail(char *err, size_t errlen, size_t index, const char *id, const char *fmt,
                      ...) __attribute__((format(printf, 5, 6)));
static int entry_fail(char *err, size_t errlen, size_t index, const char *id, const char *fmt,
                      ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (id) snprintf(err, errlen, "tenants file: entry %zu (id '%s'): %s", index, id, msg);
  else snprintf(err, errlen, "tenants file: entry %zu: %s", index, msg);
  return REALM_E_INVALID_ARGUMENT;
}

static int get_count(const json_t *obj, const char *key, uint64_t max, uint64_t dflt,
                     uint64_t *ret) {
  const json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) {
    *ret = dflt;
    return 0;
  }
  if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
    return -1;
  *ret = (uint64_t)json_integer_value(v);
  return 0;
}

/* Copies an array of non-empty strings (each <= MAX_NAME_BYTES) into *ret_v. */
static int get_strings(const json_t *arr, size_t max, char ***ret_v, size_t *ret_n,
                       size_t *ret_bad_index) {
  size_t n = json_array_size(arr);
  if (n > max) {
    *ret_bad_index = max;
    return REALM_E_TOO_LARGE;
  }
  char **v = calloc(n ? n : 1, sizeof *v);
  if (!v) return REALM_E_NOMEM;
  for (size_t i = 0; i < n; i++) {
    const json_t *s = json_array_get(arr, i);
    if (!json_is_string(s) || json_string_length(s) == 0 ||
        json_string_length(s) > MAX_NAME_BYTES || !(v[i] = strdup(json_string_value(s)))) {
      for (size_t j = 0; j < i; j++) free(v[j]);
      free(v);
      *ret_bad_index = i;
      return REALM_E_INVALID_ARGUMENT;
    }
  }
  *ret_v = v;
  *ret_n = n;
  return 0;
}

static int parse_tenant(const json_t *e, size_t index, struct gw_tenant *t, char *err,
                        size_t errlen) {
  if (!json_is_object(e)) return entry_fail(err, errlen, index, NULL, "must be an object");
  const json_t *id = json_object_get(e, "id");
  if (!json_is_string(id))
    return entry_fail(err, errlen, index, NULL, "'id' must be a string");
  const char *ids = json_string_value(id);
  if (!gw_tenant_id_valid(ids))
    return entry_fail(err, errlen, index, NULL,
                      "'id' must be 1-%d characters of A-Z a-z 0-9 . _ -", GW_TENANT_ID_MAX);
  if (!(t->id = strdup(ids))) return REALM_E_NOMEM;

  const json_t *kh = json_object_get(e, "key_hashes");
  if (kh && !json_is_array(kh))
    return entry_fail(err, errlen, index, ids, "'key_hashes' must be an array of strings");
  t->n_keys = json_array_size(kh);
  if (t->n_keys > REALM_MAX_KEYS_PER_TENANT)
    return entry_fail(err, errlen, index, ids, "'key_hashes' has %zu entries, more than %d",
                      t->n_keys, REALM_MAX_KEYS_PER_TENANT);
  t->key_hashes = calloc(t->n_keys ? t->n_keys : 1, GW_KEY_HASH_BYTES);
  if (!t->key_hashes) return REALM_E_NOMEM;
  for (size_t k = 0; k < t->n_keys; k++) {
    const json_t *h = json_array_get(kh, k);
    if (!json_is_string(h) || gw_hash_from_hex(json_string_value(h), t->key_hashes[k]) < 0)
      return entry_fail(err, errlen, index, ids,
                        "'key_hashes[%zu]' must be 64 hex digits (SHA-256 of the key)", k);
  }

  const json_t *models = json_object_get(e, "models");
  if (!json_is_array(models) || json_array_size(models) == 0)
    return entry_fail(err, errlen, index, ids, "'models' must be a non-empty array of strings");
  size_t bad = 0;
  int r = get_strings(models, MAX_MODELS_PER_TENANT, &t->models, &t->n_models, &bad);
  if (r == REALM_E_NOMEM) return r;
  if (r < 0)
    return entry_fail(err, errlen, index, ids, "'models[%zu]' must be a non-empty string", bad);

  const json_t *runners = json_object_get(e, "runners");
  if (runners && !json_is_null(runners)) {
    if (!json_is_array(runners))
      return entry_fail(err, errlen, index, ids, "'runners' must be an array of strings");
    r = get_strings(runners, MAX_RUNNERS_PER_TENANT, &t->runners, &t->n_runners, &bad);
    if (r == REALM_E_NOMEM) return r;
    if (r < 0)
      return entry_fail(err, errlen, index, ids, "'runners[%zu]' must be a non-empty string",
                        bad);
  }

  const json_t *limits = json_object_get(e, "limits");
  if (limits && !json_is_null(limits)) {
    if (!json_is_object(limits))
      return entry_fail(err, errlen, index, ids, "'limits' must be an object");
    uint64_t v;
    if (get_count(limits, "requests_per_minute", 1ull << 40, 0, &v) < 0)
      return entry_fail(err, errlen, index, ids,
                        "'limits.requests_per_minute' must be a non-negative integer");
    t->limits.requests_per_minute = v;
    if (get_count(limits, "tokens_per_minute", 1ull << 50, 0, &v) < 0)
      return entry_fail(err, errlen, index, ids,
                        "'limits.tokens_per_minute' must be a non-negative integer");
    t->limits.tokens_per_minute = v;
    if (get_count(limits, "max_concurrent", REALM_HTTP_MAX_CONNECTIONS, 0, &v) < 0)
      return entry_fail(err, errlen, index, ids,
                        "'limits.max_concurrent' must be an integer 0..%d",
                        REALM_HTTP_MAX_CONNECTIONS);
    t->limits.max_concurrent = (uint32_t)v;
  }
  uint64_t w;
  if (get_count(e, "weight", 1000000, 1, &w) < 0 || w == 0)
    return entry_fail(err, errlen, index, ids, "'weight' must be an integer 1..1000000");
  t->weight = (uint32_t)w;
  return 0;
}

static int key_entry_cmp(const void *a, const void *b) {
  return memcmp(((const struct gw_key_index_entry *)a)->hash,
                ((const struct gw_key_index_entry *)b)->hash, GW_KEY_HASH_BYTES);
}

int gw_tenants_from_json(const json_t *root, struct gw_tenants **ret, char *err, size_t errlen) {
  if (!json_is_array(root)) {
    snprintf(err, errlen, "tenants file: top level must be an array of tenants");
    return REALM_E_INVALID_ARGUMENT;
  }
  size_t n = json_array_size(root);
  if (n > REALM_MAX_TENANTS) {
    snprintf(err, errlen, "tenants file: %zu tenants, more than the limit %d", n,
             REALM_MAX_TENANTS);
    return REALM_E_TOO_LARGE;
  }
  struct gw_tenants *t = calloc(1, sizeof *t);
  if (!t) return REALM_E_NOMEM;
  t->refs = 1;
  t->v = calloc(n ? n : 1, sizeof *t->v);
  if (!t->v) {
    free(t);
    return REALM_E_NOMEM;
  }
  int r = 0;
  size_t total_keys = 0;
  for (size_t i = 0; i < n && r == 0; i++) {
    t->n = i + 1;
    r = parse_tenant(json_array_get(root, i), i, &t->v[i], err, errlen);
    if (r == 0) {
      for (size_t j = 0; j < i; j++)
        if (strcmp(t->v[j].id, t->v[i].id) == 0) {
          r = entry_fail(err, errlen, i, t->v[i].id, "duplicate id (also entry %zu)", j);
          break;
        }
    }
    if (r == 0) total_keys += t->v[i].n_keys;
  }
  if (r == 0) {
    t->keys = calloc(total_keys ? total_keys : 1, sizeof *t->keys);
    if (!t->keys) r = REALM_E_NOMEM;
  }
  if (r == 0) {
    for (size_t i = 0; i < n; i++)
      for (size_t k = 0; k < t->v[i].n_keys; k++) {
        memcpy(t->keys[t->n_keys].hash, t->v[i].key_hashes[k], GW_KEY_HASH_BYTES);
        t->keys[t->n_keys].tenant = (uint32_t)i;
        t->n_keys++;
      }
    qsort(t->keys, t->n_keys, sizeof *t->keys, key_entry_cmp);
    for (size_t k = 1; k < t->n_keys; k++)
      if (memcmp(t->keys[k - 1].hash, t->keys[k].hash, GW_KEY_HASH_BYTES) == 0) {
        uint32_t a = t->keys[k - 1].tenant, b = t->keys[k].tenant;
        r = entry_fail(err, errlen, b, t->v[b].id,
                       "a key hash appears twice (also in entry %u, id '%s')", a, t->v[a].id);
        break;
      }
  }
  if (r < 0) {
    if (r == REALM_E_NOMEM) snprintf(err, errlen, "tenants file: out of memory");
    tenants_free(t);
    return r;
  }
  *ret = t;
  return 0;
}

int gw_tenants_parse(const char *text, size_t len, struct gw_tenants **ret, char *err,
                     size_t errlen) {
  json_error_t je;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    snprintf(err, errlen, "tenants file: invalid JSON at line %d column %d: %s", je.line,
             je.column, je.text);
    return REALM_E_INVALID_ARGUMENT;
  }
  int r = gw_tenants_from_json(root, ret, err, errlen);
  json_decref(root);
  return r;
}

int gw_tenants_load_file(const char *path, struct gw_tenants **ret, char *err, size_t errlen) {
  json_error_t je;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    snprintf(err, errlen, "tenants file %s: %s (line %d column %d)", path, je.text, je.line,
             je.column);
    return REALM_E_INVALID_ARGUMENT;
  }
  int r = gw_tenants_from_json(root, ret, err, errlen);
  json_decref(root);
  return r;
}

const struct gw_tenant *gw_tenants_find(const struct gw_tenants *t, const char *id) {
  for (size_t i = 0; t && i < t->n; i++)
    if (strcmp(t->v[i].id, id) == 0) return &t->v[i];
  return NULL;
}

bool gw_tenant_allows_model(const struct gw_tenant *t, const char *model) {
  for (size_t i = 0; i < t->n_models; i++)
    if (strcmp(t->models[i], model) == 0) return true;
  return false;
}

/* ---- store ---- */

struct gw_tenant_store {
  pthread_mutex_t mu;
  struct gw_tenants *current; /* under mu */
};

int gw_tenant_store_create(struct gw_tenant_store **ret) {
  struct gw_tenant_store *s = calloc(1, sizeof *s);
  if (!s) return REALM_E_NOMEM;
  pthread_mutex_init(&s->mu, NULL);
  *ret = s;
  return 0;
}

void gw_tenant_store_destroy(struct gw_tenant_store *s) {
  if (!s) return;
  gw_tenants_unref(s->current);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

int gw_tenant_store_install(struct gw_tenant_store *s, struct gw_tenants *snap, uint64_t now_ns) {
  pthread_mutex_lock(&s->mu);
  struct gw_tenants *old = s->current;
  for (size_t i = 0; i < snap->n; i++) {
    struct gw_tenant *t = &snap->v[i];
    const struct gw_tenant *prev = gw_tenants_find(old, t->id);
    if (prev && prev->limiter) {
      t->limiter = gw_rl_ref(prev->limiter);
      gw_rl_set_limits(t->limiter, &t->limits, now_ns);
    } else if (gw_rl_create(&t->limits, now_ns, &t->limiter) < 0) {
      pthread_mutex_unlock(&s->mu);
      return REALM_E_NOMEM; /* snap still belongs to the caller */
    }
  }
  s->current = snap;
  pthread_mutex_unlock(&s->mu);
  gw_tenants_unref(old);
  return 0;
}

struct gw_tenants *gw_tenant_store_get(struct gw_tenant_store *s) {
  pthread_mutex_lock(&s->mu);
  struct gw_tenants *t = s->current ? gw_tenants_ref(s->current) : NULL;
  pthread_mutex_unlock(&s->mu);
  return t;
}
