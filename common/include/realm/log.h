/*
 * log.h — structured logging for the Realm daemons.
 *
 * One line per event, either logfmt-style text
 *
 *   ts=2024-05-01T12:00:00.123Z level=info comp=worker msg="model loaded" tensors=201
 *
 * or JSON lines ({"ts":"...","level":"info","comp":"worker","msg":"model loaded",...}).
 * The component name ("worker", "runner:tenantA") is set once per process by realm_log_init.
 * Key/value fields are typed at the call site, so the compiler checks every value:
 *
 *   realm_log_info("model loaded", RLOG_STR("path", path), RLOG_INT("tensors", n));
 *   realm_log_error("handshake failed", RLOG_ERR(rc), RLOG_STR("peer", id));
 *   realm_logf(REALM_LOG_WARN, "queue %d%% full", pct);   (message only, printf-checked)
 *
 * Each line is formatted into one bounded buffer and written with one fwrite, so lines from
 * threads never interleave. Values too long for a line are cut and the line gets
 * truncated=true. Only programs call these; library code returns errors instead (STYLE.md).
 * Writing never allocates and uses no syscall besides write(2), so it is safe after the
 * seccomp jail is installed (the clock is read through the vDSO).
 */
#ifndef REALM_LOG_H
#define REALM_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "realm/error.h"

typedef enum realm_log_level {
  REALM_LOG_DEBUG = 0,
  REALM_LOG_INFO = 1,
  REALM_LOG_WARN = 2,
  REALM_LOG_ERROR = 3,
} realm_log_level;

typedef enum realm_log_format {
  REALM_LOG_TEXT = 0, /* logfmt: key=value, values quoted and escaped when needed */
  REALM_LOG_JSON = 1, /* one JSON object per line */
} realm_log_format;

/* Sets the component name (copied, cut at 63 bytes), the minimum level and the format.
 * Returns REALM_E_INVALID_ARGUMENT for an out-of-range level or format. Call once at start-up,
 * before other threads log. */
int realm_log_init(const char *component, realm_log_level level, realm_log_format format);

/* realm_log_init with level and format read from REALM_LOG_LEVEL (debug|info|warn|error,
 * default info) and REALM_LOG_FORMAT (text|json, default text). A bad value is refused with a
 * message naming the variable and value in err; logging is then still set up with the
 * defaults, so the caller can log the error and exit. */
int realm_log_init_from_env(const char *component, char *err, size_t errlen);

/* Where lines go; NULL means stderr (the default). For tests and for daemons that log to a
 * file they opened themselves. */
void realm_log_set_output(FILE *out);

/* Parses "debug"/"info"/"warn"/"warning"/"error" and "text"/"json" (case-insensitive). */
int realm_log_parse_level(const char *s, realm_log_level *ret_level);
int realm_log_parse_format(const char *s, realm_log_format *ret_format);
/* "debug", "info", "warn", "error"; "unknown" outside the enum. */
const char *realm_log_level_name(realm_log_level level);

/* True when a line at this level would be written (to skip costly field preparation). */
bool realm_log_enabled(realm_log_level level);

/* ---- fields ---- */

typedef enum realm_log_field_type {
  REALM_LOG_FIELD_NONE = 0, /* the leading placeholder every field array starts with */
  REALM_LOG_FIELD_STR,
  REALM_LOG_FIELD_INT,
  REALM_LOG_FIELD_UINT,
  REALM_LOG_FIELD_F64,
  REALM_LOG_FIELD_BOOL,
} realm_log_field_type;

struct realm_log_field {
  const char *key; /* [A-Za-z0-9_.:-]; other bytes are written as '_' */
  realm_log_field_type type;
  union {
    const char *s; /* NULL is written as an empty string */
    long long i;
    unsigned long long u;
    double f;
    bool b;
  } v;
};

#define RLOG_STR(k, val) \
  ((struct realm_log_field){.key = (k), .type = REALM_LOG_FIELD_STR, .v.s = (val)})
#define RLOG_INT(k, val) \
  ((struct realm_log_field){.key = (k), .type = REALM_LOG_FIELD_INT, .v.i = (long long)(val)})
#define RLOG_UINT(k, val)                                               \
  ((struct realm_log_field){.key = (k), .type = REALM_LOG_FIELD_UINT,   \
                            .v.u = (unsigned long long)(val)})
#define RLOG_F64(k, val) \
  ((struct realm_log_field){.key = (k), .type = REALM_LOG_FIELD_F64, .v.f = (double)(val)})
#define RLOG_BOOL(k, val) \
  ((struct realm_log_field){.key = (k), .type = REALM_LOG_FIELD_BOOL, .v.b = (val) ? true : false})
/* err=<stable error name> for a realm error code (see error.h). */
#define RLOG_ERR(code) RLOG_STR("err", realm_err_name(code))

/* Writes one line: msg plus n fields. fields[0] is a placeholder that is skipped (it lets the
 * macros below build the array even when a call has no fields); use the macros. */
void realm_log_emit(realm_log_level level, const char *msg, const struct realm_log_field *fields,
                    size_t n);

#define REALM_LOG_(level, msg, ...)                                                        \
  realm_log_emit((level), (msg),                                                           \
                 (const struct realm_log_field[]){{.key = NULL}, __VA_ARGS__},             \
                 sizeof((const struct realm_log_field[]){{.key = NULL}, __VA_ARGS__}) /    \
                     sizeof(struct realm_log_field))

/* realm_log_info("msg") or realm_log_info("msg", RLOG_INT("k", v), ...). The trailing empty
 * argument keeps a call without fields valid C11. */
#define realm_log(level, ...) REALM_LOG_((level), __VA_ARGS__, )
#define realm_log_debug(...) REALM_LOG_(REALM_LOG_DEBUG, __VA_ARGS__, )
#define realm_log_info(...) REALM_LOG_(REALM_LOG_INFO, __VA_ARGS__, )
#define realm_log_warn(...) REALM_LOG_(REALM_LOG_WARN, __VA_ARGS__, )
#define realm_log_error(...) REALM_LOG_(REALM_LOG_ERROR, __VA_ARGS__, )

/* A line whose message is formatted printf-style (checked by the compiler); no fields. */
void realm_logf(realm_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* REALM_LOG_H */
