/*
 * auth.h — API keys: generation, hashing and lookup.
 *
 * Keys are 32 random bytes from libsodium, shown to the operator once as "sk-realm-" plus
 * base64url. Only SHA-256(key) is stored. A fast hash is enough because the key has 256 bits
 * of entropy: there is no dictionary to attack, and a slow password hash would only cost CPU
 * on every request. Lookup hashes the presented key, finds the candidate by binary search over
 * the sorted hashes (the search order leaks nothing about the key: an attacker cannot choose a
 * hash without knowing a preimage) and confirms with sodium_memcmp in constant time.
 */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "tenants.h"

#define GW_KEY_PREFIX "sk-realm-"
#define GW_KEY_TEXT_MAX 64 /* prefix + 43 base64url chars + NUL fits */

int gw_auth_init(void); /* sodium_init(); safe to call repeatedly */

void gw_key_hash(const char *key, size_t len, uint8_t out[GW_KEY_HASH_BYTES]);
/* Writes a fresh key (NUL-terminated) into out. */
int gw_key_generate(char *out, size_t outlen);
/* Lowercase hex of the key's hash (65 bytes with NUL). */
void gw_key_hash_hex(const char *key, char out[2 * GW_KEY_HASH_BYTES + 1]);
/* Parses 64 hex digits; returns 0 or REALM_E_INVALID_ARGUMENT. */
int gw_hash_from_hex(const char *hex, uint8_t out[GW_KEY_HASH_BYTES]);

/* Looks up the tenant for an Authorization header value ("Bearer KEY"). Returns 0 and the
 * tenant, or REALM_E_UNAUTHENTICATED with a message for the client (missing header, wrong
 * scheme, unknown key) — never echoing the key. */
int gw_auth_lookup(const struct gw_tenants *t, const char *authorization,
                   const struct gw_tenant **ret_tenant, char *err, size_t errlen);

#endif
