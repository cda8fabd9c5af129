/*
 * test_tenants_file.c — the editing behind `realmctl tenant`: add, rotate (with and without
 * keeping the old key), remove; the written file is 0600, parses with the gateway's own
 * parser, and a change that would make the file invalid is refused without touching it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "realm/error.h"
#include "realm_test.h"
#include "tenants.h"
#include "tenants_file.h"

static char dir[256], path[320];

static bool setup(void) {
  if (dir[0]) return true;
  const char *base = getenv("REALM_BUILD_ROOT");
  snprintf(dir, sizeof dir, "%s/gw-tf-XXXXXX", base ? base : "/tmp");
  if (!mkdtemp(dir)) return false;
  snprintf(path, sizeof path, "%s/tenants.json", dir);
  return true;
}

static int lookup(const char *key, char *ret_id, size_t idlen) {
  char err[256];
  struct gw_tenants *t = NULL;
  int r = gw_tenants_load_file(path, &t, err, sizeof err);
  if (r < 0) return r;
  char authz[128];
  snprintf(authz, sizeof authz, "Bearer %s", key);
  const struct gw_tenant *found = NULL;
  r = gw_auth_lookup(t, authz, &found, err, sizeof err);
  if (r == 0) snprintf(ret_id, idlen, "%s", found->id);
  gw_tenants_unref(t);
  return r;
}

TEST(add_writes_hash_only_with_mode_0600) {
  CHECK(setup());
  char err[256], key[GW_KEY_TEXT_MAX], hash[65], id[64];
  json_t *root = NULL;
  CHECK_EQ_INT(gw_tenants_file_read(path, true, &root, err, sizeof err), 0);
  CHECK_EQ_INT(gw_key_generate(key, sizeof key), 0);
  gw_key_hash_hex(key, hash);
  struct gw_tenant_spec spec = {.id = "acme", .models = "m1,m2", .rpm = 60, .tpm = -1,
                                .concurrency = 4, .weight = 2};
  CHECK_EQ_INT(gw_tenants_doc_add(root, &spec, hash, err, sizeof err), 0);
  CHECK_EQ_INT(gw_tenants_doc_add(root, &spec, hash, err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "already exists");
  CHECK_EQ_INT(gw_tenants_file_write(path, root, err, sizeof err), 0);
  json_decref(root);
  struct stat st;
  CHECK_EQ_INT(stat(path, &st), 0);
  CHECK_EQ_INT(st.st_mode & 0777, 0600);
  FILE *f = fopen(path, "r");
  CHECK(f != NULL);
  char text[4096];
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  CHECK(strstr(text, key) == NULL);
  CHECK_STR_CONTAINS(text, hash);
  CHECK_EQ_INT(lookup(key, id, sizeof id), 0);
  CHECK_STR_EQ(id, "acme");
}

TEST(rotate_replaces_or_keeps_old_key) {
  CHECK(setup());
  char err[256], k1[GW_KEY_TEXT_MAX], k2[GW_KEY_TEXT_MAX], k3[GW_KEY_TEXT_MAX], h[65], id[64];
  json_t *root = NULL;
  CHECK_EQ_INT(gw_tenants_file_read(path, true, &root, err, sizeof err), 0);
  gw_key_generate(k1, sizeof k1);
  gw_key_hash_hex(k1, h);
  struct gw_tenant_spec spec = {.id = "rot", .models = "m", .rpm = -1, .tpm = -1,
                                .concurrency = -1, .weight = -1};
  CHECK_EQ_INT(gw_tenants_doc_add(root, &spec, h, err, sizeof err), 0);
  gw_key_generate(k2, sizeof k2);
  gw_key_hash_hex(k2, h);
  CHECK_EQ_INT(gw_tenants_doc_rotate(root, "rot", h, true, err, sizeof err), 0);
  CHECK_EQ_INT(gw_tenants_file_write(path, root, err, sizeof err), 0);
  CHECK_EQ_INT(lookup(k1, id, sizeof id), 0); /* overlap: both keys work */
  CHECK_EQ_INT(lookup(k2, id, sizeof id), 0);
  gw_key_generate(k3, sizeof k3);
  gw_key_hash_hex(k3, h);
  CHECK_EQ_INT(gw_tenants_doc_rotate(root, "rot", h, false, err, sizeof err), 0);
  CHECK_EQ_INT(gw_tenants_file_write(path, root, err, sizeof err), 0);
  CHECK_EQ_INT(lookup(k1, id, sizeof id), REALM_E_UNAUTHENTICATED);
  CHECK_EQ_INT(lookup(k2, id, sizeof id), REALM_E_UNAUTHENTICATED);
  CHECK_EQ_INT(lookup(k3, id, sizeof id), 0);
  CHECK_STR_EQ(id, "rot");
  CHECK_EQ_INT(gw_tenants_doc_rotate(root, "nobody", h, false, err, sizeof err), REALM_E_NOT_FOUND);
  json_decref(root);
}

TEST(remove_and_invalid_changes_are_refused) {
  CHECK(setup());
  char err[256];
  json_t *root = NULL;
  CHECK_EQ_INT(gw_tenants_file_read(path, false, &root, err, sizeof err), 0);
  CHECK_EQ_INT(gw_tenants_doc_remove(root, "acme", err, sizeof err), 0);
  CHECK_EQ_INT(gw_tenants_doc_remove(root, "acme", err, sizeof err), REALM_E_NOT_FOUND);
  struct gw_tenant_spec bad = {.id = "bad id", .models = "m", .rpm = -1, .tpm = -1,
                               .concurrency = -1, .weight = -1};
  CHECK_EQ_INT(gw_tenants_doc_add(root, &bad, "00", err, sizeof err), REALM_E_INVALID_ARGUMENT);
  struct gw_tenant_spec badhash = {.id = "x", .models = "m", .rpm = -1, .tpm = -1,
                                   .concurrency = -1, .weight = -1};
  CHECK_EQ_INT(gw_tenants_doc_add(root, &badhash, "not-hex", err, sizeof err), 0);
  CHECK(gw_tenants_file_write(path, root, err, sizeof err) < 0); /* validation refuses */
  CHECK_STR_CONTAINS(err, "id 'x'");
  json_decref(root);
  char id[64];
  CHECK_EQ_INT(lookup("anything", id, sizeof id), REALM_E_UNAUTHENTICATED);
  struct gw_tenants *t = NULL;
  CHECK_EQ_INT(gw_tenants_load_file(path, &t, err, sizeof err), 0);
  CHECK(gw_tenants_find(t, "acme") != NULL); /* the refused write left the file as it was */
  CHECK(gw_tenants_find(t, "x") == NULL);
  gw_tenants_unref(t);
  CHECK_EQ_INT(gw_tenants_file_read("/nonexistent/t.json", false, &root, err, sizeof err),
               REALM_E_NOT_FOUND);
  unlink(path);
  rmdir(dir);
}
