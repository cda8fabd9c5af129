/*
 * test_auth.c — API key hashing and lookup, rotation through a reloaded snapshot, and the
 * tenants file validator (a bad entry is refused with a message naming it).
 */
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "realm/error.h"
#include "realm_test.h"
#include "tenants.h"

static struct gw_tenants *parse_or_null(const char *json, char *err, size_t errlen) {
  struct gw_tenants *t = NULL;
  if (gw_tenants_parse(json, strlen(json), &t, err, errlen) < 0) return NULL;
  return t;
}

static void two_tenants(char *out, size_t outlen, const char *key_a, const char *key_b) {
  char ha[65], hb[65];
  gw_key_hash_hex(key_a, ha);
  gw_key_hash_hex(key_b, hb);
  snprintf(out, outlen,
           "[{\"id\":\"alpha\",\"key_hashes\":[\"%s\"],\"models\":[\"m1\"]},"
           " {\"id\":\"beta\",\"key_hashes\":[\"%s\"],\"models\":[\"m2\"],"
           "  \"limits\":{\"requests_per_minute\":5},\"weight\":3,\"runners\":[\"ipc:///x\"]}]",
           ha, hb);
}

TEST(key_hash_is_sha256) {
  char hex[65];
  gw_key_hash_hex("abc", hex); /* FIPS 180-2 test vector */
  CHECK_STR_EQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(generated_keys_are_distinct_and_prefixed) {
  CHECK_EQ_INT(gw_auth_init(), 0);
  char a[GW_KEY_TEXT_MAX], b[GW_KEY_TEXT_MAX];
  CHECK_EQ_INT(gw_key_generate(a, sizeof a), 0);
  CHECK_EQ_INT(gw_key_generate(b, sizeof b), 0);
  CHECK(strncmp(a, GW_KEY_PREFIX, strlen(GW_KEY_PREFIX)) == 0);
  CHECK_EQ_INT(strlen(a), strlen(GW_KEY_PREFIX) + 43);
  CHECK(strcmp(a, b) != 0);
}

TEST(lookup_finds_tenant_by_key) {
  char json[1024], err[256];
  two_tenants(json, sizeof json, "key-alpha", "key-beta");
  struct gw_tenants *t = parse_or_null(json, err, sizeof err);
  CHECK(t != NULL);
  const struct gw_tenant *found = NULL;
  CHECK_EQ_INT(gw_auth_lookup(t, "Bearer key-beta", &found, err, sizeof err), 0);
  CHECK_STR_EQ(found->id, "beta");
  CHECK_EQ_INT(found->limits.requests_per_minute, 5);
  CHECK_EQ_INT(found->weight, 3);
  CHECK_EQ_INT(found->n_runners, 1);
  CHECK_EQ_INT(gw_auth_lookup(t, "bearer key-alpha", &found, err, sizeof err), 0);
  CHECK_STR_EQ(found->id, "alpha");
  CHECK(gw_tenant_allows_model(found, "m1"));
  CHECK(!gw_tenant_allows_model(found, "m2"));
  gw_tenants_unref(t);
}

TEST(lookup_refuses_wrong_missing_and_non_bearer) {
  char json[1024], err[256];
  two_tenants(json, sizeof json, "key-alpha", "key-beta");
  struct gw_tenants *t = parse_or_null(json, err, sizeof err);
  CHECK(t != NULL);
  const struct gw_tenant *found = NULL;
  CHECK_EQ_INT(gw_auth_lookup(t, "Bearer key-alphb", &found, err, sizeof err),
               REALM_E_UNAUTHENTICATED);
  CHECK(found == NULL);
  CHECK_STR_CONTAINS(err, "Incorrect API key");
  CHECK(strstr(err, "key-alphb") == NULL); /* never echo the key */
  CHECK_EQ_INT(gw_auth_lookup(t, NULL, &found, err, sizeof err), REALM_E_UNAUTHENTICATED);
  CHECK_STR_CONTAINS(err, "didn't provide an API key");
  CHECK_EQ_INT(gw_auth_lookup(t, "Basic a2V5", &found, err, sizeof err), REALM_E_UNAUTHENTICATED);
  CHECK_EQ_INT(gw_auth_lookup(t, "Bearer ", &found, err, sizeof err), REALM_E_UNAUTHENTICATED);
  gw_tenants_unref(t);
}

TEST(rotation_through_store_reload_keeps_limiter) {
  char json[1024], err[256];
  struct gw_tenant_store *st = NULL;
  CHECK_EQ_INT(gw_tenant_store_create(&st), 0);
  two_tenants(json, sizeof json, "old-key", "key-beta");
  struct gw_tenants *t1 = parse_or_null(json, err, sizeof err);
  CHECK(t1 != NULL);
  CHECK_EQ_INT(gw_tenant_store_install(st, t1, 0), 0);
  struct gw_tenants *cur = gw_tenant_store_get(st);
  const struct gw_tenant *beta = gw_tenants_find(cur, "beta");
  struct gw_rl_decision d;
  CHECK(gw_rl_admit(beta->limiter, 0, 0, &d)); /* beta spends one of its 5 requests */
  struct gw_ratelimiter *lim = beta->limiter;

  two_tenants(json, sizeof json, "new-key", "key-beta");
  struct gw_tenants *t2 = parse_or_null(json, err, sizeof err);
  CHECK(t2 != NULL);
  CHECK_EQ_INT(gw_tenant_store_install(st, t2, 0), 0);
  struct gw_tenants *now = gw_tenant_store_get(st);
  const struct gw_tenant *found = NULL;
  CHECK_EQ_INT(gw_auth_lookup(now, "Bearer old-key", &found, err, sizeof err),
               REALM_E_UNAUTHENTICATED);
  CHECK_EQ_INT(gw_auth_lookup(now, "Bearer new-key", &found, err, sizeof err), 0);
  CHECK_STR_EQ(found->id, "alpha");
  /* the old snapshot still works for requests that hold it */
  CHECK_EQ_INT(gw_auth_lookup(cur, "Bearer old-key", &found, err, sizeof err), 0);
  const struct gw_tenant *beta2 = gw_tenants_find(now, "beta");
  CHECK(beta2->limiter == lim); /* same limiter object carries the spent request */
  struct gw_rl_view v;
  gw_rl_view(beta2->limiter, 0, &v);
  CHECK_EQ_INT(v.remaining_requests, 4);
  gw_tenants_unref(cur);
  gw_tenants_unref(now);
  gw_tenant_store_destroy(st);
}

TEST(bad_entries_are_named) {
  char err[512];
  CHECK(parse_or_null("{}", err, sizeof err) == NULL);
  CHECK_STR_CONTAINS(err, "top level must be an array");
  CHECK(parse_or_null("[{\"id\":\"ok\",\"models\":[\"m\"]},{\"id\":\"bad id\",\"models\":[\"m\"]}]",
                      err, sizeof err) == NULL);
  CHECK_STR_CONTAINS(err, "entry 1");
  CHECK_STR_CONTAINS(err, "'id'");
  CHECK(parse_or_null("[{\"id\":\"acme\",\"key_hashes\":[\"zz\"],\"models\":[\"m\"]}]", err,
                      sizeof err) == NULL);
  CHECK_STR_CONTAINS(err, "entry 0 (id 'acme'): 'key_hashes[0]'");
  CHECK(parse_or_null("[{\"id\":\"acme\",\"models\":[]}]", err, sizeof err) == NULL);
  CHECK_STR_CONTAINS(err, "'models'");
  CHECK(parse_or_null("[{\"id\":\"acme\",\"models\":[\"m\"],\"limits\":{\"requests_per_minute\":-1}}]",
                      err, sizeof err) == NULL);
  CHECK_STR_CONTAINS(err, "limits.requests_per_minute");
  CHECK(parse_or_null("[{\"id\":\"a\",\"models\":[\"m\"]},{\"id\":\"a\",\"models\":[\"m\"]}]", err,
                      sizeof err) == NULL);
  CHECK_STR_CONTAINS(err, "duplicate id");
  CHECK(parse_or_null("[{\"id\":\"a\",\"models\":[\"m\"],\"weight\":0}]", err, sizeof err) == NULL);
  CHECK_STR_CONTAINS(err, "'weight'");
  char json[1024];
  two_tenants(json, sizeof json, "same", "same");
  CHECK(parse_or_null(json, err, sizeof err) == NULL);
  CHECK_STR_CONTAINS(err, "key hash appears twice");
  CHECK(parse_or_null("[{\"id\":", err, sizeof err) == NULL);
  CHECK_STR_CONTAINS(err, "invalid JSON");
}
