/*
 * test_config.c — the option table parser: every type, every precedence rule
 * (default < environment < command line), every error path with its exact message, help
 * output, and that a failed parse leaves the variables untouched.
 */
#include "realm/config.h"
#include "realm_test.h"

#include <stdlib.h>

static const char *socket_path;
static int64_t threads;
static bool verbose;
static uint64_t shm_bytes;
static int64_t timeout_ms;

static const struct realm_option opts[] = {
    {"socket", "REALM_TEST_SOCKET", REALM_OPT_STRING, "ipc:///tmp/w", 0, 0, "endpoint", &socket_path},
    {"threads", "REALM_TEST_THREADS", REALM_OPT_INT64, "4", 1, 4096, "CPU threads", &threads},
    {"verbose", "REALM_TEST_VERBOSE", REALM_OPT_BOOL, "false", 0, 0, "debug logs", &verbose},
    {"shm-size", "REALM_TEST_SHM", REALM_OPT_SIZE, "64M", 4096, 1LL << 32, "region", &shm_bytes},
    {"timeout", "REALM_TEST_TIMEOUT", REALM_OPT_DURATION_MS, "2s", 1, 600000, "step", &timeout_ms},
};

static char err[256];

static void clear_env(void) {
  unsetenv("REALM_TEST_SOCKET");
  unsetenv("REALM_TEST_THREADS");
  unsetenv("REALM_TEST_VERBOSE");
  unsetenv("REALM_TEST_SHM");
  unsetenv("REALM_TEST_TIMEOUT");
  err[0] = 0;
}

/* Parses a NULL-terminated argument list (program name added). */
#define PARSE(...)                                                                      \
  ({                                                                                    \
    char *argv_[] = {"prog", __VA_ARGS__};                                              \
    int argc_ = (int)(sizeof argv_ / sizeof argv_[0]) - 1;                              \
    realm_config_parse(opts, REALM_COUNTOF(opts), argc_, argv_, NULL, err, sizeof err); \
  })

TEST(config_defaults) {
  clear_env();
  CHECK_EQ_INT(PARSE(NULL), REALM_OK);
  CHECK_STR_EQ(socket_path, "ipc:///tmp/w");
  CHECK_EQ_INT(threads, 4);
  CHECK(!verbose);
  CHECK_EQ_INT(shm_bytes, 64ull << 20);
  CHECK_EQ_INT(timeout_ms, 2000);
}

TEST(config_environment_overrides_default) {
  clear_env();
  setenv("REALM_TEST_SOCKET", "ipc:///run/x", 1);
  setenv("REALM_TEST_THREADS", "16", 1);
  setenv("REALM_TEST_VERBOSE", "yes", 1);
  setenv("REALM_TEST_SHM", "1G", 1);
  setenv("REALM_TEST_TIMEOUT", "250ms", 1);
  CHECK_EQ_INT(PARSE(NULL), REALM_OK);
  CHECK_STR_EQ(socket_path, "ipc:///run/x");
  CHECK_EQ_INT(threads, 16);
  CHECK(verbose);
  CHECK_EQ_INT(shm_bytes, 1ull << 30);
  CHECK_EQ_INT(timeout_ms, 250);
  clear_env();
}

TEST(config_command_line_overrides_environment) {
  clear_env();
  setenv("REALM_TEST_THREADS", "16", 1);
  setenv("REALM_TEST_VERBOSE", "on", 1);
  setenv("REALM_TEST_SOCKET", "ipc:///env", 1);
  CHECK_EQ_INT(PARSE("--threads", "8", "--no-verbose", "--socket=tcp://127.0.0.1:5555",
                     "--shm-size=512KiB", "--timeout", "3s", NULL),
               REALM_OK);
  CHECK_EQ_INT(threads, 8);
  CHECK(!verbose);
  CHECK_STR_EQ(socket_path, "tcp://127.0.0.1:5555");
  CHECK_EQ_INT(shm_bytes, 512 * 1024);
  CHECK_EQ_INT(timeout_ms, 3000);
  /* the last occurrence wins, bare flag and explicit value forms */
  CHECK_EQ_INT(PARSE("--threads=2", "--threads=3", "--verbose", NULL), REALM_OK);
  CHECK_EQ_INT(threads, 3);
  CHECK(verbose);
  CHECK_EQ_INT(PARSE("--verbose=false", NULL), REALM_OK);
  CHECK(!verbose);
  clear_env();
}

TEST(config_int64_errors) {
  clear_env();
  threads = 77;
  CHECK_EQ_INT(PARSE("--threads", "abc", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "--threads: 'abc' is not an integer");
  CHECK_EQ_INT(threads, 77); /* untouched on failure */
  CHECK_EQ_INT(PARSE("--threads= 5", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "--threads: ' 5' is not an integer");
  CHECK_EQ_INT(PARSE("--threads=0x10", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(PARSE("--threads=0", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "--threads: 0 is below the minimum 1");
  CHECK_EQ_INT(PARSE("--threads=99999999999999999999", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "--threads: '99999999999999999999' is out of range");
  setenv("REALM_TEST_THREADS", "99999", 1);
  CHECK_EQ_INT(PARSE(NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "REALM_TEST_THREADS: 99999 is above the maximum 4096");
  /* a bad environment value is an error even when the command line would override it:
   * silently ignoring a misconfigured deployment is worse */
  CHECK_EQ_INT(PARSE("--threads=4", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(threads, 77);
  clear_env();
  int64_t v = 0;
  CHECK_EQ_INT(realm_config_parse_int64("-42", &v), REALM_OK);
  CHECK_EQ_INT(v, -42);
  CHECK_EQ_INT(realm_config_parse_int64("", &v), REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(realm_config_parse_int64("-", &v), REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(realm_config_parse_int64("9223372036854775807", &v), REALM_OK);
  CHECK_EQ_INT(realm_config_parse_int64("9223372036854775808", &v), REALM_E_OUT_OF_RANGE);
}

TEST(config_bool_errors) {
  clear_env();
  CHECK_EQ_INT(PARSE("--verbose=maybe", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "--verbose: 'maybe' is not a boolean (true/false, yes/no, on/off, 1/0)");
  CHECK_EQ_INT(PARSE("--no-verbose=1", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "--no-verbose: takes no value (got '1')");
  CHECK_EQ_INT(PARSE("--no-threads", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "unknown option --no-threads (--threads is not a boolean)");
  setenv("REALM_TEST_VERBOSE", "2", 1);
  CHECK_EQ_INT(PARSE(NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "REALM_TEST_VERBOSE: '2' is not a boolean");
  clear_env();
  /* a bare flag does not swallow the next argument */
  CHECK_EQ_INT(PARSE("--verbose", "true", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "unexpected argument 'true'");
}

TEST(config_size_values_and_errors) {
  clear_env();
  uint64_t b = 0;
  CHECK_EQ_INT(realm_config_parse_size("4096", &b), REALM_OK);
  CHECK_EQ_INT(b, 4096);
  CHECK_EQ_INT(realm_config_parse_size("8k", &b), REALM_OK);
  CHECK_EQ_INT(b, 8192);
  CHECK_EQ_INT(realm_config_parse_size("3MB", &b), REALM_OK);
  CHECK_EQ_INT(b, 3ull << 20);
  CHECK_EQ_INT(realm_config_parse_size("2GiB", &b), REALM_OK);
  CHECK_EQ_INT(b, 2ull << 30);
  CHECK_EQ_INT(realm_config_parse_size("1T", &b), REALM_OK);
  CHECK_EQ_INT(b, 1ull << 40);
  CHECK_EQ_INT(realm_config_parse_size("100B", &b), REALM_OK);
  CHECK_EQ_INT(b, 100);
  CHECK_EQ_INT(realm_config_parse_size("1.5G", &b), REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(realm_config_parse_size("12Q", &b), REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(realm_config_parse_size("iB", &b), REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(realm_config_parse_size("5iB", &b), REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(realm_config_parse_size("-1", &b), REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(realm_config_parse_size("16777216T", &b), REALM_E_OUT_OF_RANGE);
  CHECK_EQ_INT(b, 100);
  CHECK_EQ_INT(PARSE("--shm-size", "12Q", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "--shm-size: '12Q' is not a size (a whole number with an optional K, M, G or T "
                    "suffix, e.g. 64M)");
  CHECK_EQ_INT(PARSE("--shm-size=1K", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "--shm-size: 1K is below the minimum 4096 bytes");
  CHECK_EQ_INT(PARSE("--shm-size=5G", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "--shm-size: 5G is above the maximum 4294967296 bytes");
  CHECK_EQ_INT(PARSE("--shm-size=99999999999T", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "--shm-size: '99999999999T' is too large");
  CHECK_EQ_INT(PARSE("--shm-size=4G", NULL), REALM_OK);
  CHECK_EQ_INT(shm_bytes, 4ull << 30);
}

TEST(config_duration_values_and_errors) {
  clear_env();
  int64_t ms = 0;
  CHECK_EQ_INT(realm_config_parse_duration_ms("150", &ms), REALM_OK);
  CHECK_EQ_INT(ms, 150);
  CHECK_EQ_INT(realm_config_parse_duration_ms("150ms", &ms), REALM_OK);
  CHECK_EQ_INT(ms, 150);
  CHECK_EQ_INT(realm_config_parse_duration_ms("7s", &ms), REALM_OK);
  CHECK_EQ_INT(ms, 7000);
  CHECK_EQ_INT(realm_config_parse_duration_ms("2m", &ms), REALM_OK);
  CHECK_EQ_INT(ms, 120000);
  CHECK_EQ_INT(realm_config_parse_duration_ms("1h", &ms), REALM_OK);
  CHECK_EQ_INT(ms, 3600000);
  CHECK_EQ_INT(realm_config_parse_duration_ms("5x", &ms), REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(realm_config_parse_duration_ms("1.5s", &ms), REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(realm_config_parse_duration_ms("-1s", &ms), REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(realm_config_parse_duration_ms("9999999999999999h", &ms), REALM_E_OUT_OF_RANGE);
  CHECK_EQ_INT(ms, 3600000);
  CHECK_EQ_INT(PARSE("--timeout=5x", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "--timeout: '5x' is not a duration (a whole number with ms, s, m or h, e.g. "
                    "250ms, 2s)");
  CHECK_EQ_INT(PARSE("--timeout=11m", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "--timeout: 11m is above the maximum 600000ms");
  CHECK_EQ_INT(PARSE("--timeout=0s", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "--timeout: 0s is below the minimum 1ms");
}

TEST(config_unknown_and_malformed_arguments) {
  clear_env();
  CHECK_EQ_INT(PARSE("--thread=4", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "unknown option --thread");
  CHECK_EQ_INT(PARSE("-t", "4", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "unknown option -t (options are long: --name)");
  CHECK_EQ_INT(PARSE("--threads", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "--threads: missing value");
  CHECK_EQ_INT(PARSE("--socket", "--threads", "4", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "--socket: missing value (next argument '--threads' is an option");
  CHECK_EQ_INT(PARSE("extra", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "unexpected argument 'extra'");
  CHECK_EQ_INT(PARSE("--", "extra", NULL), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "unexpected argument 'extra'");
  CHECK_EQ_INT(PARSE("--", NULL), REALM_OK);
  /* empty string values are valid strings, and "--x=" gives the empty string */
  CHECK_EQ_INT(PARSE("--socket=", NULL), REALM_OK);
  CHECK_STR_EQ(socket_path, "");
}

TEST(config_positional_arguments_when_asked) {
  clear_env();
  char *argv[] = {"realmctl", "--threads=2", "model", "--threads=3", NULL};
  int first = -1;
  CHECK_EQ_INT(realm_config_parse(opts, REALM_COUNTOF(opts), 4, argv, &first, err, sizeof err),
               REALM_OK);
  CHECK_EQ_INT(first, 2);
  CHECK_EQ_INT(threads, 2);
  char *argv2[] = {"realmctl", "--verbose", "--", "--threads=3", NULL};
  CHECK_EQ_INT(realm_config_parse(opts, REALM_COUNTOF(opts), 4, argv2, &first, err, sizeof err),
               REALM_OK);
  CHECK_EQ_INT(first, 3);
  CHECK_EQ_INT(threads, 4);
  char *argv3[] = {"realmctl", "--verbose", NULL};
  CHECK_EQ_INT(realm_config_parse(opts, REALM_COUNTOF(opts), 2, argv3, &first, err, sizeof err),
               REALM_OK);
  CHECK_EQ_INT(first, 2);
}

TEST(config_help_is_reported_and_generated) {
  clear_env();
  setenv("REALM_TEST_THREADS", "broken", 1); /* help must work even with a broken environment */
  threads = 55;
  CHECK_EQ_INT(PARSE("--threads=9", "--help", NULL), REALM_CONFIG_HELP);
  CHECK_EQ_INT(PARSE("-h", NULL), REALM_CONFIG_HELP);
  CHECK_EQ_INT(threads, 55);
  CHECK_EQ_INT(PARSE("--", "--help", NULL), REALM_E_INVALID_ARGUMENT); /* env still broken */
  clear_env();
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  realm_config_print_help(f, "realm-worker", "Runs the compute worker.", opts, REALM_COUNTOF(opts));
  fclose(f);
  CHECK_STR_CONTAINS(buf, "Usage: realm-worker [OPTIONS]\nRuns the compute worker.\n");
  CHECK_STR_CONTAINS(buf, "--threads N");
  CHECK_STR_CONTAINS(buf, "(env REALM_TEST_THREADS, default 4, range 1..4096)");
  CHECK_STR_CONTAINS(buf, "--[no-]verbose");
  CHECK_STR_CONTAINS(buf, "default \"ipc:///tmp/w\"");
  CHECK_STR_CONTAINS(buf, "range 1..600000 ms");
  CHECK_STR_CONTAINS(buf, "--help");
  free(buf);
}

TEST(config_bad_tables_are_internal_errors) {
  clear_env();
  int64_t v = 0;
  struct realm_option bad_default[] = {
      {"n", NULL, REALM_OPT_INT64, "lots", 0, 0, "", &v},
  };
  char *argv[] = {"p", NULL};
  CHECK_EQ_INT(realm_config_parse(bad_default, 1, 1, argv, NULL, err, sizeof err), REALM_E_INTERNAL);
  CHECK_STR_EQ(err, "default of --n: 'lots' is not an integer");
  struct realm_option dup[] = {
      {"n", NULL, REALM_OPT_INT64, NULL, 0, 0, "", &v},
      {"n", NULL, REALM_OPT_INT64, NULL, 0, 0, "", &v},
  };
  CHECK_EQ_INT(realm_config_parse(dup, 2, 1, argv, NULL, err, sizeof err), REALM_E_INTERNAL);
  CHECK_STR_CONTAINS(err, "appears twice");
  struct realm_option no_ptr[] = {{"n", NULL, REALM_OPT_INT64, NULL, 0, 0, "", NULL}};
  CHECK_EQ_INT(realm_config_parse(no_ptr, 1, 1, argv, NULL, err, sizeof err), REALM_E_INTERNAL);
  struct realm_option bounds[] = {{"n", NULL, REALM_OPT_INT64, NULL, 10, 1, "", &v}};
  CHECK_EQ_INT(realm_config_parse(bounds, 1, 1, argv, NULL, err, sizeof err), REALM_E_INTERNAL);
  /* NULL default keeps the variable's prior value */
  v = 123;
  struct realm_option keep[] = {{"n", NULL, REALM_OPT_INT64, NULL, 0, 0, "", &v}};
  CHECK_EQ_INT(realm_config_parse(keep, 1, 1, argv, NULL, err, sizeof err), REALM_OK);
  CHECK_EQ_INT(v, 123);
}
