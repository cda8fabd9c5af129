/*
 * tenants_file.h — editing the tenants file for `realmctl tenant`: read the JSON document,
 * change one tenant, validate the result with the same parser the gateway uses (so realmctl
 * can never write a file the gateway would refuse), and replace the file atomically
 * (temporary file + fsync + rename) with mode 0600. Unknown fields in the file are preserved.
 */
#ifndef GW_TENANTS_FILE_H
#define GW_TENANTS_FILE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gw_tenant_spec {
  const char *id;
  const char *models;  /* comma-separated, required for add */
  const char *runners; /* comma-separated, optional */
  int64_t rpm, tpm, concurrency, weight; /* < 0 = not given */
};

/* Reads the document; a missing file gives an empty array when missing_ok. */
int gw_tenants_file_read(const char *path, bool missing_ok, json_t **ret_root, char *err,
                         size_t errlen);
/* Validates and writes atomically with mode 0600. */
int gw_tenants_file_write(const char *path, json_t *root, char *err, size_t errlen);

/* Adds a tenant with one key hash (hex). Refuses an existing id. */
int gw_tenants_doc_add(json_t *root, const struct gw_tenant_spec *spec, const char *key_hash_hex,
                       char *err, size_t errlen);
/* Replaces the tenant's key hashes with new_hash_hex (or appends it when keep_old). */
int gw_tenants_doc_rotate(json_t *root, const char *id, const char *new_hash_hex, bool keep_old,
                          char *err, size_t errlen);
int gw_tenants_doc_remove(json_t *root, const char *id, char *err, size_t errlen);

#endif
