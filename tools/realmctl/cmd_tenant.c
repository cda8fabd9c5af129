/*
 * cmd_tenant.c — `realmctl tenant add|list|rotate-key|remove`: manage the gateway's tenants
 * file. New keys come from libsodium's CSPRNG, are printed exactly once on stdout (so they can
 * be captured by a script) and only their SHA-256 is written. The file is validated with the
 * gateway's own parser and replaced atomically with mode 0600; send the gateway SIGHUP to
 * apply it without a restart.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "auth.h"
#include "realmctl.h"
#include "tenants_file.h"

static void tenant_usage(FILE *out) {
  fprintf(out,
          "usage: realmctl tenant add ID --models m1,m2 [--rpm N] [--tpm N] [--concurrency N]\n"
          "                           [--weight N] [--runners ep1,ep2] --file TENANTS.json\n"
          "       realmctl tenant list --file TENANTS.json\n"
          "       realmctl tenant rotate-key ID [--keep-old] --file TENANTS.json\n"
          "       realmctl tenant remove ID --file TENANTS.json\n"
          "--file defaults to $REALM_TENANTS. Keys are printed once; only their hash is stored.\n"
          "Send SIGHUP to realm-gateway to apply changes.\n");
}

static int parse_count(const char *flag, const char *v, int64_t *ret) {
  char *end = NULL;
  errno = 0;
  long long n = strtoll(v, &end, 10);
  if (!*v || *end || errno || n < 0) {
    fprintf(stderr, "realmctl tenant: %s '%s' must be a non-negative integer\n", flag, v);
    return -1;
  }
  *ret = n;
  return 0;
}

static int cmd_list(json_t *root) {
  size_t i;
  json_t *t;
  printf("%-24s %-8s %-10s %-12s %-6s %-5s %s\n", "ID", "RPM", "TPM", "CONCURRENCY", "WEIGHT",
         "KEYS", "MODELS");
  json_array_foreach(root, i, t) {
    json_t *l = json_object_get(t, "limits");
    char models[256] = "";
    size_t k;
    json_t *m;
    json_array_foreach(json_object_get(t, "models"), k, m) {
      size_t used = strlen(models);
      snprintf(models + used, sizeof models - used, "%s%s", k ? "," : "",
               json_is_string(m) ? json_string_value(m) : "?");
    }
    printf("%-24s %-8lld %-10lld %-12lld %-6lld %-5zu %s\n",
           json_string_value(json_object_get(t, "id")),
           (long long)json_integer_value(json_object_get(l, "requests_per_minute")),
           (long long)json_integer_value(json_object_get(l, "tokens_per_minute")),
           (long long)json_integer_value(json_object_get(l, "max_concurrent")),
           (long long)(json_object_get(t, "weight") ? json_integer_value(json_object_get(t, "weight")) : 1),
           json_array_size(json_object_get(t, "key_hashes")), models);
  }
  if (json_array_size(root) == 0) printf("(no tenants; 0 = unlimited in the limit columns)\n");
  return 0;
}

int realmctl_cmd_tenant(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    tenant_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const char *verb = argv[1];
  const char *id = NULL, *file = getenv("REALM_TENANTS");
  struct gw_tenant_spec spec = {.rpm = -1, .tpm = -1, .concurrency = -1, .weight = -1};
  bool keep_old = false;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int64_t *count = NULL;
    if (!strcmp(a, "--keep-old")) {
      keep_old = true;
      continue;
    }
    if (a[0] != '-') {
      if (id) {
        fprintf(stderr, "realmctl tenant: unexpected argument '%s'\n", a);
        return 2;
      }
      id = a;
      continue;
    }
    if (!v) {
      fprintf(stderr, "realmctl tenant: option %s needs a value\n", a);
      return 2;
    }
    i++;
    if (!strcmp(a, "--file")) file = v;
    else if (!strcmp(a, "--models")) spec.models = v;
    else if (!strcmp(a, "--runners")) spec.runners = v;
    else if (!strcmp(a, "--rpm")) count = &spec.rpm;
    else if (!strcmp(a, "--tpm")) count = &spec.tpm;
    else if (!strcmp(a, "--concurrency")) count = &spec.concurrency;
    else if (!strcmp(a, "--weight")) count = &spec.weight;
    else {
      fprintf(stderr, "realmctl tenant: unknown option '%s'\n", a);
      tenant_usage(stderr);
      return 2;
    }
    if (count && parse_count(a, v, count) < 0) return 2;
  }
  if (!file) {
    fprintf(stderr, "realmctl tenant: no tenants file (--file PATH or REALM_TENANTS)\n");
    return 2;
  }
  bool is_list = !strcmp(verb, "list");
  if (!is_list && !id) {
    fprintf(stderr, "realmctl tenant %s: missing tenant ID\n", verb);
    return 2;
  }
  char err[512];
  json_t *root = NULL;
  if (gw_tenants_file_read(file, !strcmp(verb, "add"), &root, err, sizeof err) < 0) {
    fprintf(stderr, "realmctl tenant: %s\n", err);
    return 1;
  }
  if (is_list) {
    int r = cmd_list(root);
    json_decref(root);
    return r;
  }
  char key[GW_KEY_TEXT_MAX] = "", hash[65];
  int r;
  if (!strcmp(verb, "add") || !strcmp(verb, "rotate-key")) {
    if (gw_key_generate(key, sizeof key) < 0) {
      fprintf(stderr, "realmctl tenant: cannot generate a key\n");
      json_decref(root);
      return 1;
    }
    gw_key_hash_hex(key, hash);
    spec.id = id;
    r = !strcmp(verb, "add") ? gw_tenants_doc_add(root, &spec, hash, err, sizeof err)
                             : gw_tenants_doc_rotate(root, id, hash, keep_old, err, sizeof err);
  } else if (!strcmp(verb, "remove")) {
    r = gw_tenants_doc_remove(root, id, err, sizeof err);
  } else {
    fprintf(stderr, "realmctl tenant: unknown command '%s'\n", verb);
    tenant_usage(stderr);
    json_decref(root);
    return 2;
  }
  if (r == 0) r = gw_tenants_file_write(file, root, err, sizeof err);
  json_decref(root);
  if (r < 0) {
    sodium_memzero(key, sizeof key);
    fprintf(stderr, "realmctl tenant %s: %s\n", verb, err);
    return 1;
  }
  if (key[0]) {
    fprintf(stderr, "API key for tenant '%s' (shown once; only its hash is stored):\n", id);
    printf("%s\n", key);
    sodium_memzero(key, sizeof key);
  } else {
    fprintf(stderr, "removed tenant '%s'\n", id);
  }
  fprintf(stderr, "wrote %s; send SIGHUP to realm-gateway to apply\n", file);
  return 0;
}
