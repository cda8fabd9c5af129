/*
 * tenants.h — the tenants file and the live, reloadable snapshot of it.
 *
 * The file is a JSON array of tenants:
 *   [{"id": "acme", "key_hashes": ["<64 hex: SHA-256 of the key>"], "models": ["stories260k"],
 *     "limits": {"requests_per_minute": 600, "tokens_per_minute": 200000, "max_concurrent": 8},
 *     "weight": 1, "runners": ["ipc:///run/realm/acme-0"]}]
 * Every entry is checked (id syntax, hash format, limits, duplicates); a bad file is refused
 * as a whole with a message naming the entry and the field.
 *
 * A parsed file becomes an immutable, refcounted snapshot. The store swaps snapshots under a
 * mutex (SIGHUP reload): requests hold a reference to the snapshot they were authenticated
 * against, so a reload never changes a tenant under a running request, and the rate limiter of
 * a tenant id carries over from the old snapshot to the new one.
 */
#ifndef GW_TENANTS_H
#define GW_TENANTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ratelimit.h"

#define GW_KEY_HASH_BYTES 32 /* SHA-256 */
#define GW_TENANT_ID_MAX 64

struct gw_tenant {
  char *id;                                 /* [A-Za-z0-9._-]{1,64} */
  uint8_t (*key_hashes)[GW_KEY_HASH_BYTES]; /* n_keys entries */
  size_t n_keys;
  char **models;
  size_t n_models;
  struct gw_limits limits;
  uint32_t weight; /* >= 1; scheduling share, used by the worker's fair scheduler */
  char **runners;  /* ZeroMQ endpoints of the tenant's runner replicas */
  size_t n_runners;
  struct gw_ratelimiter *limiter; /* NULL until the store installs the snapshot */
};

struct gw_key_index_entry {
  uint8_t hash[GW_KEY_HASH_BYTES];
  uint32_t tenant;
};

struct gw_tenants {
  int refs; /* atomic */
  struct gw_tenant *v;
  size_t n;
  struct gw_key_index_entry *keys; /* sorted by hash for binary search */
  size_t n_keys;
};

/* Parses a tenants document (the JSON tree) into a snapshot without limiters, refcount 1. */
int gw_tenants_from_json(const json_t *root, struct gw_tenants **ret, char *err, size_t errlen);
int gw_tenants_parse(const char *text, size_t len, struct gw_tenants **ret, char *err,
                     size_t errlen);
int gw_tenants_load_file(const char *path, struct gw_tenants **ret, char *err, size_t errlen);

struct gw_tenants *gw_tenants_ref(struct gw_tenants *t);
void gw_tenants_unref(struct gw_tenants *t);

const struct gw_tenant *gw_tenants_find(const struct gw_tenants *t, const char *id);
bool gw_tenant_allows_model(const struct gw_tenant *t, const char *model);

/* Checks the id syntax used by the file and by realmctl. */
bool gw_tenant_id_valid(const char *id);

/* The live snapshot. */
struct gw_tenant_store;
int gw_tenant_store_create(struct gw_tenant_store **ret);
void gw_tenant_store_destroy(struct gw_tenant_store *s);
/* Installs snap (takes the caller's reference): attaches limiters, reusing the previous
 * snapshot's limiter for the same id with its levels, and releases the previous snapshot. */
int gw_tenant_store_install(struct gw_tenant_store *s, struct gw_tenants *snap, uint64_t now_ns);
/* New reference to the current snapshot, or NULL if none was installed. */
struct gw_tenants *gw_tenant_store_get(struct gw_tenant_store *s);

#endif
