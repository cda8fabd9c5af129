/*
 * error.c — lookups over the error table in error.h. Everything is derived from the
 * REALM_ERROR_TABLE X-macro so that a new error needs exactly one new line. Also the one
 * writer of the (err, errlen) message buffers library functions fill on failure.
 */
#include "realm/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct err_row {
  int code;
  const char *name;
  int http;
  const char *type;
  const char *message;
};

static const struct err_row err_rows[] = {
#define REALM_ERR_ROW(sfx, val, name, http, type, msg) {-(val), name, http, type, msg},
    REALM_ERROR_TABLE(REALM_ERR_ROW)
#undef REALM_ERR_ROW
};

static const struct err_row *err_find(int code) {
  for (size_t i = 0; i < sizeof err_rows / sizeof err_rows[0]; i++)
    if (err_rows[i].code == code) return &err_rows[i];
  return NULL;
}

const char *realm_err_name(int code) {
  const struct err_row *r = err_find(code);
  return r ? r->name : "unknown_error";
}

const char *realm_err_message(int code) {
  const struct err_row *r = err_find(code);
  return r ? r->message : "unknown error";
}

int realm_err_http_status(int code) {
  const struct err_row *r = err_find(code);
  return r ? r->http : 500;
}

const char *realm_err_openai_type(int code) {
  const struct err_row *r = err_find(code);
  return r && r->type[0] ? r->type : "server_error";
}

int realm_err_from_name(const char *name) {
  if (!name) return REALM_E_INTERNAL;
  for (size_t i = 0; i < sizeof err_rows / sizeof err_rows[0]; i++)
    if (strcmp(err_rows[i].name, name) == 0) return err_rows[i].code;
  return REALM_E_INTERNAL;
}

int realm_err_from_errno(int errnum) {
  switch (errnum) {
  case 0: return REALM_OK;
  case ENOMEM: return REALM_E_NOMEM;
  case ETIMEDOUT: return REALM_E_TIMEOUT;
  case EINVAL: return REALM_E_INVALID_ARGUMENT;
  case ENOENT: return REALM_E_NOT_FOUND;
  case EACCES:
  case EPERM: return REALM_E_PERMISSION;
  case EIO: return REALM_E_IO;
  default: return REALM_E_SYSTEM;
  }
}

static void vset_err(char *err, size_t errlen, const char *fmt, va_list ap) {
  if (err && errlen > 0) vsnprintf(err, errlen, fmt, ap);
}

void realm_set_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vset_err(err, errlen, fmt, ap);
  va_end(ap);
}

int realm_fail(int code, char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vset_err(err, errlen, fmt, ap);
  va_end(ap);
  return code;
}
