/*
 * error.h — the one error table of Realm.
 *
 * Every fallible function in the project returns a negative realm error code (or a negative
 * errno for plain system failures, which realm_err_from_errno() folds into REALM_E_SYSTEM).
 * The table below is the single source of truth: from it come the enum, the stable name that
 * travels in protocol replies, a default human message, the HTTP status the gateway answers
 * with, and the OpenAI error "type" string. Add a row here; never map codes by hand elsewhere.
 */
#ifndef REALM_ERROR_H
#define REALM_ERROR_H

#include <stddef.h>

/*  X(ENUM_SUFFIX, value, "name", http_status, "openai_type", "default message") */
#define REALM_ERROR_TABLE(X)                                                                     \
  X(OK,               0,  "ok",               200, "",                      "success")           \
  X(INVALID_ARGUMENT, 1,  "invalid_argument", 400, "invalid_request_error", "invalid argument")  \
  X(NOT_FOUND,        2,  "not_found",        404, "invalid_request_error", "not found")         \
  X(UNAUTHENTICATED,  3,  "unauthenticated",  401, "authentication_error",  "invalid API key")   \
  X(PERMISSION,       4,  "permission_denied",403, "permission_error",      "permission denied") \
  X(RATE_LIMITED,     5,  "rate_limited",     429, "rate_limit_error",      "rate limit exceeded") \
  X(QUOTA,            6,  "quota_exceeded",   429, "insufficient_quota",    "quota exceeded")    \
  X(TOO_LARGE,        7,  "too_large",        413, "invalid_request_error", "input too large")   \
  X(NOMEM,            8,  "out_of_memory",    503, "server_error",          "out of memory")     \
  X(UNAVAILABLE,      9,  "unavailable",      503, "server_error",          "service unavailable") \
  X(TIMEOUT,          10, "timeout",          504, "server_error",          "deadline exceeded") \
  X(PROTOCOL,         11, "protocol_error",   502, "server_error",          "malformed message") \
  X(VERSION,          12, "version_mismatch", 502, "server_error",          "protocol version mismatch") \
  X(BAD_MODEL,        13, "bad_model",        500, "server_error",          "model file rejected") \
  X(UNSUPPORTED,      14, "unsupported",      400, "invalid_request_error", "not supported")     \
  X(GUEST_TRAP,       15, "guest_trap",       500, "server_error",          "tenant module trapped") \
  X(CANCELLED,        16, "cancelled",        499, "server_error",          "request cancelled") \
  X(SHUTTING_DOWN,    17, "shutting_down",    503, "server_error",          "service shutting down") \
  X(OUT_OF_RANGE,     18, "out_of_range",     400, "invalid_request_error", "value out of range") \
  X(IO,               19, "io_error",         500, "server_error",          "I/O error")         \
  X(SYSTEM,           20, "system_error",     500, "server_error",          "system call failed") \
  X(INTERNAL,         21, "internal",         500, "server_error",          "internal error")

typedef enum realm_err {
#define REALM_ERR_ENUM(sfx, val, name, http, type, msg) REALM_E_##sfx = -(val),
  REALM_ERROR_TABLE(REALM_ERR_ENUM)
#undef REALM_ERR_ENUM
} realm_err;

#define REALM_OK 0

/* Stable snake_case name of an error ("not_found"); "unknown_error" for codes outside the table. */
const char *realm_err_name(int code);
/* Default human-readable message for the code. */
const char *realm_err_message(int code);
/* HTTP status the gateway answers with for this code (500 for unknown codes). */
int realm_err_http_status(int code);
/* OpenAI error "type" string ("invalid_request_error", ...); "server_error" for unknown codes. */
const char *realm_err_openai_type(int code);
/* Looks a code up by its stable name; returns REALM_E_INTERNAL when the name is unknown. */
int realm_err_from_name(const char *name);
/* Maps a positive errno to a realm code (ENOMEM -> NOMEM, ETIMEDOUT -> TIMEOUT, else SYSTEM). */
int realm_err_from_errno(int errnum);

/* The caller-provided message buffer every fallible library function takes (char *err, size_t
 * errlen): writes the printf-style message into it, truncated to errlen; nothing when err is
 * NULL or errlen is 0. realm_fail also returns code, for the one-line failure:
 *   return realm_fail(REALM_E_OUT_OF_RANGE, err, errlen, "layer %u outside [0, %u)", l, n);
 */
void realm_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int realm_fail(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* REALM_ERROR_H */
