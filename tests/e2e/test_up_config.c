/*
 * test_up_config.c — `realmctl up`'s config file and tenants-file sync (tools/realmctl/
 * up_config.c), without starting any daemon: the shipped example parses; bad fields are named
 * in the error; a first sync creates one key per tenant and stores only its hash; a second
 * sync keeps every hash and creates no key; a tenant added with `realmctl tenant add` (no
 * runners) is adopted with one replica; a tenant whose runners live elsewhere is left alone;
 * worker.backend and per-tenant chat_template are parsed (and refused, named, when bad); the
 * gateway's drain timeout under up stays below the stop grace, and gateway.args may not set
 * another one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "auth.h"
#include "realm/error.h"
#include "realm_test.h"
#include "up.h"

static char g_dir[256];

static const char *tmpdir(void) {
  if (!g_dir[0]) {
    snprintf(g_dir, sizeof g_dir, "/tmp/realm-up-config-XXXXXX");
    if (!mkdtemp(g_dir)) g_dir[0] = '\0';
  }
  return g_dir;
}

static const char *write_file(const char *name, const char *text) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", tmpdir(), name);
  FILE *f = fopen(path, "w");
  if (!f) return NULL;
  fputs(text, f);
  fclose(f);
  return path;
}

TEST(example_config_parses) {
  char path[512], err[512] = "";
  snprintf(path, sizeof path, "%s/deploy/config/local.example.json", getenv("REALM_SOURCE_ROOT"));
  struct up_config cfg;
  CHECK_EQ_INT(up_config_load(path, &cfg, err, sizeof err), 0);
  CHECK_EQ_INT((int)cfg.n_tenants, 2);
  CHECK_STR_EQ(cfg.tenants[0].id, "acme");
  CHECK_EQ_INT(cfg.tenants[0].replicas, 2);
  CHECK_EQ_INT((int)cfg.tenants[0].weight, 2);
  CHECK_STR_EQ(cfg.model_name, "default");
  CHECK_EQ_INT((int)cfg.gw_port, 8080);
  CHECK_STR_EQ(cfg.model_path, "");
  CHECK_STR_EQ(cfg.worker_backend, "cpu");
  CHECK(cfg.tenants[0].chat_template == NULL);
  CHECK(cfg.tenants[1].chat_template != NULL);
  if (cfg.tenants[1].chat_template) CHECK_STR_EQ(cfg.tenants[1].chat_template, "llama2");
  up_config_free(&cfg);
}

/* Each bad config is refused, and the message names the field. */
TEST(bad_fields_are_named) {
  const struct {
    const char *json, *want;
  } cases[] = {
      {"{\"tenants\":[{\"id\":\"a\",\"replicas\":0}]}", "'tenants[0].replicas'"},
      {"{\"tenants\":[{\"id\":\"a\",\"replicas\":99}]}", "'tenants[0].replicas'"},
      {"{\"tenants\":[{\"id\":\"a b\"}]}", "'tenants[0].id'"},
      {"{\"tenants\":[{\"id\":\"a\"},{\"id\":\"a\"}]}", "appears twice"},
      {"{\"tenants\":[]}", "'tenants'"},
      {"{\"gateway\":{\"port\":70000},\"tenants\":[{\"id\":\"a\"}]}", "'gateway.port'"},
      {"{\"worker\":{\"args\":[1]},\"tenants\":[{\"id\":\"a\"}]}", "'worker.args[0]'"},
      {"{\"tenants\":[{\"id\":\"a\",\"models\":[]}]}", "'tenants[0].models'"},
      {"{\"tenants\":[{\"id\":\"a\"}],\"tenants\":[]}", "duplicate"},
      {"{\"worker\":{\"backend\":\"gpu\"},\"tenants\":[{\"id\":\"a\"}]}", "'worker.backend'"},
      {"{\"worker\":{\"cuda_device\":-1},\"tenants\":[{\"id\":\"a\"}]}", "'worker.cuda_device'"},
      {"{\"tenants\":[{\"id\":\"a\",\"chat_template\":7}]}", "'tenants[0].chat_template'"},
      {"{\"tenants\":[{\"id\":\"a\",\"chat_template\":\"\"}]}", "'tenants[0].chat_template'"},
      {"{\"tenants\":[{\"id\":\"a\",\"chat_template\":\"@\"}]}", "'tenants[0].chat_template'"},
      {"{\"gateway\":{\"args\":[\"--ping-ms\",\"200\",\"--drain-timeout\",\"30s\"]},"
       "\"tenants\":[{\"id\":\"a\"}]}", "'gateway.args[2]' is '--drain-timeout'"},
      {"{\"gateway\":{\"args\":[\"--drain-timeout=1h\"]},\"tenants\":[{\"id\":\"a\"}]}",
       "raise stop_grace_ms"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *p = write_file("bad.json", cases[i].json);
    CHECK(p != NULL);
    struct up_config cfg;
    char err[512] = "";
    CHECK(up_config_load(p, &cfg, err, sizeof err) < 0);
    if (!strstr(err, cases[i].want)) fprintf(stderr, "# case %zu: %s\n", i, err);
    CHECK(strstr(err, cases[i].want) != NULL);
  }
}

/* The drain up gives the gateway ends before up's SIGKILL for every allowed stop grace:
 * grace minus 1 s from 2 s up, half the grace below; the example config's 5 s gives 4 s. */
TEST(gateway_drain_below_stop_grace) {
  CHECK_EQ_INT((int)up_gateway_drain_ms(5000), 4000);
  CHECK_EQ_INT((int)up_gateway_drain_ms(3000), 2000);
  CHECK_EQ_INT((int)up_gateway_drain_ms(2000), 1000);
  CHECK_EQ_INT((int)up_gateway_drain_ms(1999), 999);
  CHECK_EQ_INT((int)up_gateway_drain_ms(1), 0);
  for (int64_t g = 1; g <= 600000; g += g < 5000 ? 1 : 997) {
    int64_t d = up_gateway_drain_ms(g);
    if (d < 0 || d >= g || (g >= 2000 && g - d != UP_DRAIN_MARGIN_MS)) {
      fprintf(stderr, "# stop_grace_ms %lld -> drain %lld\n", (long long)g, (long long)d);
      CHECK(false);
      break;
    }
  }
  /* Other gateway flags still pass through. */
  const char *p = write_file("gwargs.json", "{\"gateway\":{\"args\":[\"--ping-ms\",\"200\"]},"
                                            "\"supervisor\":{\"stop_grace_ms\":3000},"
                                            "\"tenants\":[{\"id\":\"a\"}]}");
  struct up_config cfg;
  char err[512] = "";
  CHECK_EQ_INT(up_config_load(p, &cfg, err, sizeof err), 0);
  CHECK_EQ_INT((int)json_array_size(cfg.gateway_args), 2);
  CHECK_EQ_INT((int)cfg.stop_grace_ms, 3000);
  up_config_free(&cfg);
}

/* Relative module paths are resolved against the config's directory. */
TEST(relative_module_path) {
  const char *p = write_file("rel.json", "{\"tenants\":[{\"id\":\"a\",\"module\":\"m/x.wasm\"}]}");
  struct up_config cfg;
  char err[512] = "", want[600];
  CHECK_EQ_INT(up_config_load(p, &cfg, err, sizeof err), 0);
  char real[512];
  CHECK(realpath(tmpdir(), real) != NULL);
  snprintf(want, sizeof want, "%s/m/x.wasm", real);
  CHECK_STR_EQ(cfg.tenants[0].module, want);
  /* absent models default to the model name */
  CHECK_STR_EQ(json_string_value(json_array_get(cfg.tenants[0].models, 0)), "default");
  up_config_free(&cfg);
}

/* worker.backend / cuda_device and per-tenant chat_template: absent means "not passed" (the
 * daemons' defaults); a relative @FILE template is resolved against the config's directory,
 * inline text is kept as is; a template longer than one argv string may carry is refused. */
TEST(backend_and_chat_template) {
  const char *p = write_file("ct.json",
                             "{\"worker\":{\"backend\":\"cuda\",\"cuda_device\":1},"
                             "\"tenants\":[{\"id\":\"a\",\"chat_template\":\"@t/chat.jinja\"},"
                             "{\"id\":\"b\",\"chat_template\":\"chatml\"},{\"id\":\"c\"}]}");
  struct up_config cfg;
  char err[512] = "", want[600], real[512];
  CHECK_EQ_INT(up_config_load(p, &cfg, err, sizeof err), 0);
  CHECK_STR_EQ(cfg.worker_backend, "cuda");
  CHECK_EQ_INT((int)cfg.cuda_device, 1);
  CHECK(realpath(tmpdir(), real) != NULL);
  snprintf(want, sizeof want, "@%s/t/chat.jinja", real);
  CHECK(cfg.tenants[0].chat_template != NULL);
  if (cfg.tenants[0].chat_template) CHECK_STR_EQ(cfg.tenants[0].chat_template, want);
  CHECK(cfg.tenants[1].chat_template != NULL);
  if (cfg.tenants[1].chat_template) CHECK_STR_EQ(cfg.tenants[1].chat_template, "chatml");
  CHECK(cfg.tenants[2].chat_template == NULL);
  up_config_free(&cfg);

  p = write_file("none.json", "{\"tenants\":[{\"id\":\"a\"}]}");
  CHECK_EQ_INT(up_config_load(p, &cfg, err, sizeof err), 0);
  CHECK_STR_EQ(cfg.worker_backend, "");
  CHECK_EQ_INT((int)cfg.cuda_device, -1);
  up_config_free(&cfg);

  /* An inline template one byte over the argv-safe cap. */
  size_t n = UP_MAX_CHAT_TEMPLATE_BYTES + 1;
  char *big = malloc(n + 64);
  CHECK(big != NULL);
  if (!big) return;
  int off = snprintf(big, 64, "{\"tenants\":[{\"id\":\"a\",\"chat_template\":\"");
  memset(big + off, 'x', n);
  snprintf(big + off + n, 64, "\"}]}");
  p = write_file("big.json", big);
  free(big);
  err[0] = '\0';
  CHECK(up_config_load(p, &cfg, err, sizeof err) < 0);
  CHECK(strstr(err, "'tenants[0].chat_template'") != NULL);
}

static json_t *entry(json_t *root, const char *id) {
  size_t i;
  json_t *t;
  json_array_foreach(root, i, t) {
    if (strcmp(json_string_value(json_object_get(t, "id")), id) == 0) return t;
  }
  return NULL;
}

TEST(sync_keys_adoption_and_foreign_tenants) {
  const char *cp = write_file("up.json",
                              "{\"model\":{\"name\":\"m\"},\"tenants\":[{\"id\":\"acme\",\"replicas\":2,"
                              "\"limits\":{\"max_concurrent\":3},\"weight\":5},{\"id\":\"globex\"}]}");
  char cfg_path[512];
  snprintf(cfg_path, sizeof cfg_path, "%s", cp);
  char tenants[512];
  snprintf(tenants, sizeof tenants, "%s/tenants.json", tmpdir());
  unlink(tenants);
  struct up_config cfg;
  char err[512] = "";
  CHECK_EQ_INT(up_config_load(cfg_path, &cfg, err, sizeof err), 0);
  struct up_new_key keys[8];
  size_t n = 0;
  CHECK_EQ_INT(up_tenants_sync(tenants, &cfg, "/r", keys, 8, &n, err, sizeof err), 0);
  CHECK_EQ_INT((int)n, 2);
  CHECK_STR_EQ(keys[0].tenant, "acme");
  CHECK(strncmp(keys[0].key, GW_KEY_PREFIX, strlen(GW_KEY_PREFIX)) == 0);

  json_error_t je;
  json_t *root = json_load_file(tenants, 0, &je);
  CHECK(root != NULL);
  json_t *acme = entry(root, "acme");
  CHECK(acme != NULL);
  char hash[65];
  gw_key_hash_hex(keys[0].key, hash);
  CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(acme, "key_hashes"), 0)), hash);
  CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(acme, "runners"), 1)),
               "ipc:///r/runner-acme-1.sock");
  CHECK_EQ_INT((int)json_integer_value(json_object_get(acme, "weight")), 5);
  CHECK_EQ_INT((int)json_integer_value(json_object_get(json_object_get(acme, "limits"), "max_concurrent")), 3);
  /* the key itself is nowhere in the file */
  char *text = json_dumps(root, 0);
  CHECK(strstr(text, keys[0].key) == NULL);
  free(text);

  /* an operator adds two tenants by hand: one for up to run, one served elsewhere */
  json_array_append_new(root, json_pack("{s:s,s:[s],s:[s],s:[]}", "id", "newco", "key_hashes",
                                        "aa00000000000000000000000000000000000000000000000000000000000000",
                                        "models", "m", "runners"));
  json_array_append_new(root, json_pack("{s:s,s:[s],s:[s],s:[s]}", "id", "remote", "key_hashes",
                                        "bb00000000000000000000000000000000000000000000000000000000000000",
                                        "models", "m", "runners", "tcp://elsewhere:7100"));
  CHECK_EQ_INT(json_dump_file(root, tenants, 0), 0);
  json_decref(root);

  /* second sync: same hashes, no new key; newco adopted with one replica; remote untouched */
  n = 99;
  CHECK_EQ_INT(up_tenants_sync(tenants, &cfg, "/r2", keys + 2, 6, &n, err, sizeof err), 0);
  CHECK_EQ_INT((int)n, 0);
  CHECK_EQ_INT((int)cfg.n_tenants, 3);
  CHECK_STR_EQ(cfg.tenants[2].id, "newco");
  CHECK_EQ_INT(cfg.tenants[2].replicas, 1);
  CHECK(!cfg.tenants[2].from_config);
  root = json_load_file(tenants, 0, &je);
  CHECK(root != NULL);
  CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(entry(root, "acme"), "key_hashes"), 0)), hash);
  CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(entry(root, "acme"), "runners"), 0)),
               "ipc:///r2/runner-acme-0.sock");
  CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(entry(root, "newco"), "runners"), 0)),
               "ipc:///r2/runner-newco-0.sock");
  CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(entry(root, "remote"), "runners"), 0)),
               "tcp://elsewhere:7100");
  json_decref(root);
  up_config_free(&cfg);
}

/* A tenants file the gateway would refuse is reported, not overwritten. */
TEST(sync_refuses_bad_tenants_file) {
  const char *cp = write_file("up2.json", "{\"tenants\":[{\"id\":\"acme\"}]}");
  char cfg_path[512];
  snprintf(cfg_path, sizeof cfg_path, "%s", cp);
  const char *tp = write_file("bad-tenants.json", "{\"not\":\"an array\"}");
  char tenants[512];
  snprintf(tenants, sizeof tenants, "%s", tp);
  struct up_config cfg;
  char err[512] = "";
  CHECK_EQ_INT(up_config_load(cfg_path, &cfg, err, sizeof err), 0);
  struct up_new_key keys[4];
  size_t n = 0;
  CHECK(up_tenants_sync(tenants, &cfg, "/r", keys, 4, &n, err, sizeof err) < 0);
  CHECK(strstr(err, "array") != NULL);
  up_config_free(&cfg);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir());
  CHECK_EQ_INT(system(cmd), 0);
}
