/*
 * config.h — table-driven option parsing for the Realm daemons and realmctl.
 *
 * A program describes each option once — long name, environment variable, type, default,
 * bounds, help, and where the value goes — and gets parsing, precedence, validation and
 * --help from that one table:
 *
 *   static int64_t threads; static const char *socket_path; static bool verbose;
 *   static uint64_t shm_bytes; static int64_t step_timeout_ms;
 *   static const struct realm_option opts[] = {
 *     {"socket", "REALM_WORKER_SOCKET", REALM_OPT_STRING, "ipc:///run/realm/worker",
 *      0, 0, "ZeroMQ endpoint to bind", &socket_path},
 *     {"threads", "REALM_WORKER_THREADS", REALM_OPT_INT64, "4", 1, 4096,
 *      "CPU threads", &threads},
 *     {"verbose", NULL, REALM_OPT_BOOL, "false", 0, 0, "log at debug level", &verbose},
 *     {"shm-size", "REALM_SHM_SIZE", REALM_OPT_SIZE, "64M", 4096, 1LL << 32,
 *      "shared region per connection", &shm_bytes},
 *     {"step-timeout", NULL, REALM_OPT_DURATION_MS, "2s", 1, 600000, "...", &step_timeout_ms},
 *   };
 *   int rc = realm_config_parse(opts, REALM_COUNTOF(opts), argc, argv, NULL, err, sizeof err);
 *   if (rc == REALM_CONFIG_HELP) { realm_config_print_help(stdout, argv[0], "...", opts, n); exit(0); }
 *   if (rc < 0) { fprintf(stderr, "%s\n", err); exit(2); }
 *
 * Precedence: default < environment < command line. Command line forms: --name value,
 * --name=value, and for booleans --name, --no-name, --name=true|false. Every error names the
 * option or variable and the offending value ("--threads: 'abc' is not an integer",
 * "REALM_X: 99999 is above the maximum 4096"); unknown options are refused by name. Values are
 * written only when the whole parse succeeds.
 */
#ifndef REALM_CONFIG_H
#define REALM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "realm/error.h"

#define REALM_COUNTOF(a) (sizeof(a) / sizeof((a)[0]))

/* realm_config_parse's positive return when --help or -h was given (nothing was parsed). */
#define REALM_CONFIG_HELP 1

typedef enum realm_opt_type {
  REALM_OPT_STRING,      /* value: const char ** (points into argv, environ or the default) */
  REALM_OPT_INT64,       /* value: int64_t *; decimal, optional sign */
  REALM_OPT_BOOL,        /* value: bool *; true/false, yes/no, on/off, 1/0 */
  REALM_OPT_SIZE,        /* value: uint64_t *; bytes, optional K/M/G/T suffix (powers of 1024),
                            optionally followed by B or iB: 64M, 512KiB, 4096 */
  REALM_OPT_DURATION_MS, /* value: int64_t * in milliseconds; suffix ms, s, m or h; no suffix = ms */
} realm_opt_type;

struct realm_option {
  const char *name;          /* long name without dashes, e.g. "threads" */
  const char *env;           /* environment variable, e.g. "REALM_WORKER_THREADS"; NULL: none */
  realm_opt_type type;
  const char *default_value; /* as text, checked like any other source; NULL: the variable
                                keeps the value it held before parsing */
  int64_t min, max;          /* inclusive bounds for INT64, SIZE and DURATION_MS (ms);
                                min == max == 0 means unbounded */
  const char *help;          /* one line */
  void *value;               /* where the parsed value goes; type given above */
};

/* Parses defaults, then the environment, then argv[1..argc-1] into the options' variables.
 * With ret_first_arg NULL any positional argument is an error; otherwise parsing stops at the
 * first argument that is not an option (or just after "--") and its index is stored there
 * (argc when none). Returns REALM_OK, REALM_CONFIG_HELP (when --help/-h appears among the
 * options; nothing else is checked or written), REALM_E_INVALID_ARGUMENT with a message naming
 * the option/variable and value, or REALM_E_INTERNAL for a bad table or default. */
int realm_config_parse(const struct realm_option *opts, size_t n_opts, int argc, char *const *argv,
                       int *ret_first_arg, char *err, size_t errlen);

/* Writes the generated help: usage line, summary, then per option its flag, help, environment
 * variable, default and bounds. */
void realm_config_print_help(FILE *out, const char *program, const char *summary,
                             const struct realm_option *opts, size_t n_opts);

/* The value parsers, for programs that read settings from other places (a tenant file).
 * Each returns REALM_E_INVALID_ARGUMENT when s is not a valid value, REALM_E_OUT_OF_RANGE when
 * it does not fit the type; *ret_* untouched on failure. */
int realm_config_parse_int64(const char *s, int64_t *ret_value);
int realm_config_parse_bool(const char *s, bool *ret_value);
int realm_config_parse_size(const char *s, uint64_t *ret_bytes);
int realm_config_parse_duration_ms(const char *s, int64_t *ret_ms);

#endif /* REALM_CONFIG_H */
