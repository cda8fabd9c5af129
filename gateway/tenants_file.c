/*
 * tenants_file.c — read, edit, validate and atomically rewrite the tenants file (see
 * tenants_file.h). The write path is: mkstemp next to the target (same filesystem, so rename is
 * atomic), fchmod 0600 (the file holds key hashes and runner addresses), write, fsync, rename,
 * fsync the directory so the rename survives a crash.
 */
#include "tenants_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "realm/error.h"
#include "tenants.h"

int gw_tenants_file_read(const char *path, bool missing_ok, json_t **ret_root, char *err,
                         size_t errlen) {
  if (access(path, F_OK) != 0 && errno == ENOENT) {
    if (!missing_ok) {
      snprintf(err, errlen, "tenants file %s does not exist", path);
      return REALM_E_NOT_FOUND;
    }
    *ret_root = json_array();
    return *ret_root ? 0 : REALM_E_NOMEM;
  }
  json_error_t je;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    snprintf(err, errlen, "tenants file %s: %s (line %d column %d)", path, je.text, je.line,
             je.column);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (!json_is_array(root)) {
    json_decref(root);
    snprintf(err, errlen, "tenants file %s: top level must be an array of tenants", path);
    return REALM_E_INVALID_ARGUMENT;
  }
  *ret_root = root;
  return 0;
}

int gw_tenants_file_write(const char *path, json_t *root, char *err, size_t errlen) {
  struct gw_tenants *check = NULL;
  int r = gw_tenants_from_json(root, &check, err, errlen);
  if (r < 0) return r;
  gw_tenants_unref(check);
  char *text = json_dumps(root, JSON_INDENT(2));
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 16);
  char *dcopy = strdup(path);
  if (!text || !tmp || !dcopy) {
    free(text);
    free(tmp);
    free(dcopy);
    snprintf(err, errlen, "out of memory");
    return REALM_E_NOMEM;
  }
  snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
  int fd = mkostemp(tmp, O_CLOEXEC);
  r = 0;
  if (fd < 0) {
    r = realm_err_from_errno(errno);
    snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
  } else {
    size_t len = strlen(text), off = 0;
    if (fchmod(fd, 0600) < 0) r = realm_err_from_errno(errno);
    while (r == 0 && off < len) {
      ssize_t n = write(fd, text + off, len - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) r = REALM_E_IO;
      else off += (size_t)n;
    }
    if (r == 0 && (write(fd, "\n", 1) != 1 || fsync(fd) < 0)) r = REALM_E_IO;
    if (close(fd) < 0 && r == 0) r = REALM_E_IO;
    if (r == 0 && rename(tmp, path) < 0) r = realm_err_from_errno(errno);
    if (r < 0) {
      snprintf(err, errlen, "writing %s failed: %s", path, strerror(errno));
      unlink(tmp);
    } else {
      int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
      }
    }
  }
  free(text);
  free(tmp);
  free(dcopy);
  return r;
}

static json_t *find_tenant(json_t *root, const char *id, size_t *ret_index) {
  size_t i;
  json_t *e;
  json_array_foreach(root, i, e) {
    const json_t *tid = json_object_get(e, "id");
    if (json_is_string(tid) && strcmp(json_string_value(tid), id) == 0) {
      if (ret_index) *ret_index = i;
      return e;
    }
  }
  return NULL;
}

static json_t *split_list(const char *csv) {
  json_t *a = json_array();
  const char *p = csv;
  while (a && p && *p) {
    const char *c = strchr(p, ',');
    size_t n = c ? (size_t)(c - p) : strlen(p);
    if (n) json_array_append_new(a, json_stringn(p, n));
    p = c ? c + 1 : NULL;
  }
  return a;
}

int gw_tenants_doc_add(json_t *root, const struct gw_tenant_spec *spec, const char *key_hash_hex,
                       char *err, size_t errlen) {
  if (!spec->id || !gw_tenant_id_valid(spec->id)) {
    snprintf(err, errlen, "tenant id '%s' must be 1-%d characters of A-Z a-z 0-9 . _ -",
             spec->id ? spec->id : "", GW_TENANT_ID_MAX);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (find_tenant(root, spec->id, NULL)) {
    snprintf(err, errlen, "tenant '%s' already exists (use rotate-key to change its key)",
             spec->id);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (!spec->models || !*spec->models) {
    snprintf(err, errlen, "tenant '%s' needs at least one model (--models m1,m2)", spec->id);
    return REALM_E_INVALID_ARGUMENT;
  }
  json_t *limits = json_object();
  if (spec->rpm >= 0) json_object_set_new(limits, "requests_per_minute", json_integer(spec->rpm));
  if (spec->tpm >= 0) json_object_set_new(limits, "tokens_per_minute", json_integer(spec->tpm));
  if (spec->concurrency >= 0)
    json_object_set_new(limits, "max_concurrent", json_integer(spec->concurrency));
  json_t *t = json_pack("{s:s,s:[s],s:o,s:o,s:I,s:o}", "id", spec->id, "key_hashes", key_hash_hex,
                        "models", split_list(spec->models), "limits", limits, "weight",
                        (json_int_t)(spec->weight >= 0 ? spec->weight : 1), "runners",
                        split_list(spec->runners ? spec->runners : ""));
  if (!t || json_array_append_new(root, t) < 0) {
    snprintf(err, errlen, "out of memory");
    return REALM_E_NOMEM;
  }
  return 0;
}

int gw_tenants_doc_rotate(json_t *root, const char *id, const char *new_hash_hex, bool keep_old,
                          char *err, size_t errlen) {
  json_t *t = find_tenant(root, id, NULL);
  if (!t) {
    snprintf(err, errlen, "no tenant '%s'", id);
    return REALM_E_NOT_FOUND;
  }
  json_t *keys = json_object_get(t, "key_hashes");
  if (!keep_old || !json_is_array(keys)) {
    keys = json_array();
    json_object_set_new(t, "key_hashes", keys);
  }
  if (!keys || json_array_append_new(keys, json_string(new_hash_hex)) < 0) {
    snprintf(err, errlen, "out of memory");
    return REALM_E_NOMEM;
  }
  return 0;
}

int gw_tenants_doc_remove(json_t *root, const char *id, char *err, size_t errlen) {
  size_t i = 0;
  if (!find_tenant(root, id, &i)) {
    snprintf(err, errlen, "no tenant '%s'", id);
    return REALM_E_NOT_FOUND;
  }
  json_array_remove(root, i);
  return 0;
}
