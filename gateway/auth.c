/*
 * auth.c — API key generation, hashing and constant-time lookup (see auth.h for why SHA-256).
 */
#include "auth.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "realm/error.h"

int gw_auth_init(void) { return sodium_init() < 0 ? REALM_E_INTERNAL : 0; }

void gw_key_hash(const char *key, size_t len, uint8_t out[GW_KEY_HASH_BYTES]) {
  crypto_hash_sha256(out, (const unsigned char *)key, len);
}

int gw_key_generate(char *out, size_t outlen) {
  unsigned char raw[32];
  char b64[64];
  if (gw_auth_init() < 0) return REALM_E_INTERNAL;
  randombytes_buf(raw, sizeof raw);
  sodium_bin2base64(b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero(raw, sizeof raw);
  int n = snprintf(out, outlen, GW_KEY_PREFIX "%s", b64);
  sodium_memzero(b64, sizeof b64);
  return (n < 0 || (size_t)n >= outlen) ? REALM_E_TOO_LARGE : 0;
}

void gw_key_hash_hex(const char *key, char out[2 * GW_KEY_HASH_BYTES + 1]) {
  uint8_t h[GW_KEY_HASH_BYTES];
  gw_key_hash(key, strlen(key), h);
  sodium_bin2hex(out, 2 * GW_KEY_HASH_BYTES + 1, h, sizeof h);
}

int gw_hash_from_hex(const char *hex, uint8_t out[GW_KEY_HASH_BYTES]) {
  uint8_t tmp[GW_KEY_HASH_BYTES];
  size_t bin_len = 0;
  const char *end = NULL;
  if (strlen(hex) != 2 * GW_KEY_HASH_BYTES) return REALM_E_INVALID_ARGUMENT;
  if (sodium_hex2bin(tmp, sizeof tmp, hex, strlen(hex), NULL, &bin_len, &end) != 0 ||
      bin_len != GW_KEY_HASH_BYTES || *end != '\0')
    return REALM_E_INVALID_ARGUMENT;
  memcpy(out, tmp, sizeof tmp);
  return 0;
}

int gw_auth_lookup(const struct gw_tenants *t, const char *authorization,
                   const struct gw_tenant **ret_tenant, char *err, size_t errlen) {
  if (!authorization || !*authorization) {
    snprintf(err, errlen,
             "You didn't provide an API key. Send it in the Authorization header as "
             "'Authorization: Bearer YOUR_KEY'.");
    return REALM_E_UNAUTHENTICATED;
  }
  if (strncasecmp(authorization, "Bearer ", 7) != 0) {
    snprintf(err, errlen, "The Authorization header must use the Bearer scheme.");
    return REALM_E_UNAUTHENTICATED;
  }
  const char *key = authorization + 7;
  while (*key == ' ') key++;
  size_t len = strlen(key);
  while (len && key[len - 1] == ' ') len--;
  if (!t || len == 0) {
    snprintf(err, errlen, "Incorrect API key provided.");
    return REALM_E_UNAUTHENTICATED;
  }
  uint8_t h[GW_KEY_HASH_BYTES];
  gw_key_hash(key, len, h);
  size_t lo = 0, hi = t->n_keys;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (memcmp(t->keys[mid].hash, h, GW_KEY_HASH_BYTES) < 0) lo = mid + 1;
    else hi = mid;
  }
  if (lo < t->n_keys && sodium_memcmp(t->keys[lo].hash, h, GW_KEY_HASH_BYTES) == 0) {
    *ret_tenant = &t->v[t->keys[lo].tenant];
    return 0;
  }
  snprintf(err, errlen, "Incorrect API key provided.");
  return REALM_E_UNAUTHENTICATED;
}
