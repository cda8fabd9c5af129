/*
 * config.c — parses the option table of config.h from defaults, the environment and argv,
 * in that order of precedence, into a scratch copy; the caller's variables are written only
 * after everything parsed, so a failed parse leaves them as they were. Every message names
 * where the bad value came from: "--name", "REALM_VAR", or "default of --name" (a bug in the
 * program's table, reported as REALM_E_INTERNAL).
 */
#include "realm/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Scratch value of one option while parsing. */
union opt_value {
  const char *s;
  int64_t i;
  uint64_t u;
  bool b;
};

/* ---- value parsers ---- */

int realm_config_parse_int64(const char *s, int64_t *ret_value) {
  if (!s || !ret_value) return REALM_E_INVALID_ARGUMENT;
  /* strtoll would skip leading spaces and accept "0x": only [+-]digits here. */
  const char *d = (*s == '-' || *s == '+') ? s + 1 : s;
  if (!isdigit((unsigned char)*d)) return REALM_E_INVALID_ARGUMENT;
  for (const char *p = d; *p; p++)
    if (!isdigit((unsigned char)*p)) return REALM_E_INVALID_ARGUMENT;
  errno = 0;
  long long v = strtoll(s, NULL, 10);
  if (errno == ERANGE) return REALM_E_OUT_OF_RANGE;
  *ret_value = (int64_t)v;
  return REALM_OK;
}

int realm_config_parse_bool(const char *s, bool *ret_value) {
  if (!s || !ret_value) return REALM_E_INVALID_ARGUMENT;
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < REALM_COUNTOF(yes); i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *ret_value = true;
      return REALM_OK;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *ret_value = false;
      return REALM_OK;
    }
  }
  return REALM_E_INVALID_ARGUMENT;
}

/* Reads the unsigned decimal prefix of s; *end gets the rest. Returns INVALID when there is no
 * digit, OUT_OF_RANGE when it does not fit 64 bits. */
static int parse_u64_prefix(const char *s, uint64_t *ret_value, const char **end) {
  if (!isdigit((unsigned char)*s)) return REALM_E_INVALID_ARGUMENT;
  uint64_t v = 0;
  for (; isdigit((unsigned char)*s); s++) {
    unsigned dgt = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - dgt) / 10) return REALM_E_OUT_OF_RANGE;
    v = v * 10 + dgt;
  }
  *ret_value = v;
  *end = s;
  return REALM_OK;
}

int realm_config_parse_size(const char *s, uint64_t *ret_bytes) {
  if (!s || !ret_bytes) return REALM_E_INVALID_ARGUMENT;
  uint64_t v;
  const char *p;
  int rc = parse_u64_prefix(s, &v, &p);
  if (rc != REALM_OK) return rc;
  unsigned shift = 0;
  switch (toupper((unsigned char)*p)) {
  case 'K': shift = 10; p++; break;
  case 'M': shift = 20; p++; break;
  case 'G': shift = 30; p++; break;
  case 'T': shift = 40; p++; break;
  default: break;
  }
  /* optional unit: "B" after anything, "iB" only after a multiplier */
  if (shift && (p[0] == 'i' || p[0] == 'I') && (p[1] == 'B' || p[1] == 'b')) p += 2;
  else if (*p == 'B' || *p == 'b') p++;
  if (*p) return REALM_E_INVALID_ARGUMENT;
  if (shift && v > (UINT64_MAX >> shift)) return REALM_E_OUT_OF_RANGE;
  *ret_bytes = v << shift;
  return REALM_OK;
}

int realm_config_parse_duration_ms(const char *s, int64_t *ret_ms) {
  if (!s || !ret_ms) return REALM_E_INVALID_ARGUMENT;
  uint64_t v;
  const char *p;
  int rc = parse_u64_prefix(s, &v, &p);
  if (rc != REALM_OK) return rc;
  uint64_t mult;
  if (*p == 0 || strcmp(p, "ms") == 0) mult = 1;
  else if (strcmp(p, "s") == 0) mult = 1000;
  else if (strcmp(p, "m") == 0) mult = 60 * 1000;
  else if (strcmp(p, "h") == 0) mult = 3600 * 1000;
  else return REALM_E_INVALID_ARGUMENT;
  if (v > (uint64_t)INT64_MAX / mult) return REALM_E_OUT_OF_RANGE;
  *ret_ms = (int64_t)(v * mult);
  return REALM_OK;
}

/* ---- one value from one source ---- */

static bool has_bounds(const struct realm_option *o) { return o->min != 0 || o->max != 0; }

/* Parses text for option o into *out; src names the source for messages ("--threads",
 * "REALM_WORKER_THREADS", "default of --threads"). */
static int parse_value(const struct realm_option *o, const char *src, const char *text,
                       union opt_value *out, char *err, size_t errlen) {
  int rc;
  switch (o->type) {
  case REALM_OPT_STRING:
    out->s = text;
    return REALM_OK;
  case REALM_OPT_BOOL:
    if (realm_config_parse_bool(text, &out->b) != REALM_OK) {
      realm_set_err(err, errlen, "%s: '%s' is not a boolean (true/false, yes/no, on/off, 1/0)", src,
                    text);
      return REALM_E_INVALID_ARGUMENT;
    }
    return REALM_OK;
  case REALM_OPT_INT64:
  case REALM_OPT_DURATION_MS: {
    int64_t v;
    bool dur = o->type == REALM_OPT_DURATION_MS;
    rc = dur ? realm_config_parse_duration_ms(text, &v) : realm_config_parse_int64(text, &v);
    if (rc == REALM_E_OUT_OF_RANGE) {
      realm_set_err(err, errlen, "%s: '%s' is out of range", src, text);
      return REALM_E_INVALID_ARGUMENT;
    }
    if (rc != REALM_OK) {
      if (dur)
        realm_set_err(err, errlen,
                      "%s: '%s' is not a duration (a whole number with ms, s, m or h, "
                      "e.g. 250ms, 2s)",
                      src, text);
      else
        realm_set_err(err, errlen, "%s: '%s' is not an integer", src, text);
      return REALM_E_INVALID_ARGUMENT;
    }
    const char *unit = dur ? "ms" : "";
    if (has_bounds(o) && v < o->min) {
      realm_set_err(err, errlen, "%s: %s is below the minimum %" PRId64 "%s", src, text, o->min,
                    unit);
      return REALM_E_INVALID_ARGUMENT;
    }
    if (has_bounds(o) && v > o->max) {
      realm_set_err(err, errlen, "%s: %s is above the maximum %" PRId64 "%s", src, text, o->max,
                    unit);
      return REALM_E_INVALID_ARGUMENT;
    }
    out->i = v;
    return REALM_OK;
  }
  case REALM_OPT_SIZE: {
    uint64_t v;
    rc = realm_config_parse_size(text, &v);
    if (rc == REALM_E_OUT_OF_RANGE) {
      realm_set_err(err, errlen, "%s: '%s' is too large", src, text);
      return REALM_E_INVALID_ARGUMENT;
    }
    if (rc != REALM_OK) {
      realm_set_err(err, errlen,
                    "%s: '%s' is not a size (a whole number with an optional K, M, G or "
                    "T suffix, e.g. 64M)",
                    src, text);
      return REALM_E_INVALID_ARGUMENT;
    }
    /* Bounds are non-negative for sizes; compare unsigned so huge values stay huge. */
    if (has_bounds(o) && o->min > 0 && v < (uint64_t)o->min) {
      realm_set_err(err, errlen, "%s: %s is below the minimum %" PRId64 " bytes", src, text,
                    o->min);
      return REALM_E_INVALID_ARGUMENT;
    }
    if (has_bounds(o) && (o->max < 0 || v > (uint64_t)o->max)) {
      realm_set_err(err, errlen, "%s: %s is above the maximum %" PRId64 " bytes", src, text,
                    o->max);
      return REALM_E_INVALID_ARGUMENT;
    }
    out->u = v;
    return REALM_OK;
  }
  }
  realm_set_err(err, errlen, "option --%s has an unknown type %d", o->name, (int)o->type);
  return REALM_E_INTERNAL;
}

/* ---- the table ---- */

static int check_table(const struct realm_option *opts, size_t n, char *err, size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    const struct realm_option *o = &opts[i];
    if (!o->name || !o->name[0] || o->name[0] == '-' || strchr(o->name, '=') || !o->value ||
        (int)o->type < REALM_OPT_STRING || (int)o->type > REALM_OPT_DURATION_MS) {
      realm_set_err(err, errlen, "option table entry %zu ('%s') is invalid", i,
                    o->name ? o->name : "(null)");
      return REALM_E_INTERNAL;
    }
    if (has_bounds(o) && o->min > o->max) {
      realm_set_err(err, errlen, "option --%s: minimum %" PRId64 " is above maximum %" PRId64,
                    o->name, o->min, o->max);
      return REALM_E_INTERNAL;
    }
    if (strcmp(o->name, "help") == 0) {
      realm_set_err(err, errlen, "option --help is built in; remove it from the table");
      return REALM_E_INTERNAL;
    }
    for (size_t j = 0; j < i; j++)
      if (strcmp(opts[j].name, o->name) == 0) {
        realm_set_err(err, errlen, "option --%s appears twice in the table", o->name);
        return REALM_E_INTERNAL;
      }
  }
  return REALM_OK;
}

/* The option called name (name_len bytes, not terminated), or NULL. */
static const struct realm_option *find_opt(const struct realm_option *opts, size_t n,
                                           const char *name, size_t name_len, size_t *ret_index) {
  for (size_t i = 0; i < n; i++)
    if (strlen(opts[i].name) == name_len && strncmp(opts[i].name, name, name_len) == 0) {
      *ret_index = i;
      return &opts[i];
    }
  return NULL;
}

static void load_current(const struct realm_option *o, union opt_value *v) {
  switch (o->type) {
  case REALM_OPT_STRING: v->s = *(const char **)o->value; break;
  case REALM_OPT_BOOL: v->b = *(bool *)o->value; break;
  case REALM_OPT_SIZE: v->u = *(uint64_t *)o->value; break;
  default: v->i = *(int64_t *)o->value; break;
  }
}

static void store(const struct realm_option *o, const union opt_value *v) {
  switch (o->type) {
  case REALM_OPT_STRING: *(const char **)o->value = v->s; break;
  case REALM_OPT_BOOL: *(bool *)o->value = v->b; break;
  case REALM_OPT_SIZE: *(uint64_t *)o->value = v->u; break;
  default: *(int64_t *)o->value = v->i; break;
  }
}

/* Is --help/-h among the options (before "--" and, when positionals stop parsing, before the
 * first positional)? Then nothing else is validated: help must work with a broken env. */
static bool wants_help(int argc, char *const *argv, bool stop_at_positional) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!a || strcmp(a, "--") == 0) return false;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return true;
    if (stop_at_positional && a[0] != '-') return false;
  }
  return false;
}

/* Parses argv into vals; returns the index of the first positional via *ret_first. */
static int parse_argv(const struct realm_option *opts, size_t n, union opt_value *vals, int argc,
                      char *const *argv, bool allow_positional, int *ret_first, char *err,
                      size_t errlen) {
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (a[0] != '-' || a[1] == 0) { /* positional ("-" alone means stdin by convention) */
      if (allow_positional) break;
      realm_set_err(err, errlen, "unexpected argument '%s'", a);
      return REALM_E_INVALID_ARGUMENT;
    }
    if (a[1] != '-') {
      realm_set_err(err, errlen, "unknown option %s (options are long: --name)", a);
      return REALM_E_INVALID_ARGUMENT;
    }
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
    size_t idx = 0;
    const struct realm_option *o = find_opt(opts, n, name, name_len, &idx);
    char src[96];
    snprintf(src, sizeof src, "--%.*s", (int)name_len, name);

    if (!o && name_len > 3 && strncmp(name, "no-", 3) == 0) {
      /* --no-flag */
      o = find_opt(opts, n, name + 3, name_len - 3, &idx);
      if (o && o->type == REALM_OPT_BOOL) {
        if (eq) {
          realm_set_err(err, errlen, "%s: takes no value (got '%s')", src, eq + 1);
          return REALM_E_INVALID_ARGUMENT;
        }
        vals[idx].b = false;
        continue;
      }
      if (o) {
        realm_set_err(err, errlen, "unknown option %s (--%s is not a boolean)", src, o->name);
        return REALM_E_INVALID_ARGUMENT;
      }
    }
    if (!o) {
      realm_set_err(err, errlen, "unknown option %s", src);
      return REALM_E_INVALID_ARGUMENT;
    }
    const char *text;
    if (eq) {
      text = eq + 1;
    } else if (o->type == REALM_OPT_BOOL) {
      vals[idx].b = true; /* a bare flag never takes the next argument */
      continue;
    } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
      text = argv[++i];
    } else if (i + 1 < argc) {
      realm_set_err(err, errlen,
                    "%s: missing value (next argument '%s' is an option; write %s=%s "
                    "to use it as the value)",
                    src, argv[i + 1], src, argv[i + 1]);
      return REALM_E_INVALID_ARGUMENT;
    } else {
      realm_set_err(err, errlen, "%s: missing value", src);
      return REALM_E_INVALID_ARGUMENT;
    }
    int rc = parse_value(o, src, text, &vals[idx], err, errlen);
    if (rc != REALM_OK) return rc;
  }
  if (!allow_positional && i < argc) { /* arguments after "--" */
    realm_set_err(err, errlen, "unexpected argument '%s'", argv[i]);
    return REALM_E_INVALID_ARGUMENT;
  }
  *ret_first = i;
  return REALM_OK;
}

int realm_config_parse(const struct realm_option *opts, size_t n_opts, int argc, char *const *argv,
                       int *ret_first_arg, char *err, size_t errlen) {
  if ((!opts && n_opts) || argc < 0 || (argc > 0 && !argv)) {
    realm_set_err(err, errlen, "config: invalid arguments");
    return REALM_E_INVALID_ARGUMENT;
  }
  int rc = check_table(opts, n_opts, err, errlen);
  if (rc != REALM_OK) return rc;
  if (wants_help(argc, argv, ret_first_arg != NULL)) return REALM_CONFIG_HELP;

  union opt_value *vals = calloc(n_opts ? n_opts : 1, sizeof *vals);
  if (!vals) {
    realm_set_err(err, errlen, "config: out of memory");
    return REALM_E_NOMEM;
  }
  char src[128];
  for (size_t i = 0; i < n_opts && rc == REALM_OK; i++) {
    const struct realm_option *o = &opts[i];
    load_current(o, &vals[i]);
    if (o->default_value) {
      snprintf(src, sizeof src, "default of --%s", o->name);
      rc = parse_value(o, src, o->default_value, &vals[i], err, errlen);
      if (rc != REALM_OK) rc = REALM_E_INTERNAL;
    }
  }
  for (size_t i = 0; i < n_opts && rc == REALM_OK; i++) {
    const struct realm_option *o = &opts[i];
    const char *env = o->env ? getenv(o->env) : NULL;
    if (env) rc = parse_value(o, o->env, env, &vals[i], err, errlen);
  }
  int first = argc;
  if (rc == REALM_OK)
    rc = parse_argv(opts, n_opts, vals, argc, argv, ret_first_arg != NULL, &first, err, errlen);
  if (rc == REALM_OK) {
    for (size_t i = 0; i < n_opts; i++) store(&opts[i], &vals[i]);
    if (ret_first_arg) *ret_first_arg = first;
  }
  free(vals);
  return rc;
}

/* ---- help ---- */

static const char *metavar(realm_opt_type t) {
  switch (t) {
  case REALM_OPT_STRING: return "TEXT";
  case REALM_OPT_INT64: return "N";
  case REALM_OPT_SIZE: return "SIZE";
  case REALM_OPT_DURATION_MS: return "DURATION";
  case REALM_OPT_BOOL: return "";
  }
  return "VALUE";
}

void realm_config_print_help(FILE *out, const char *program, const char *summary,
                             const struct realm_option *opts, size_t n_opts) {
  if (!out) return;
  fprintf(out, "Usage: %s [OPTIONS]\n", program ? program : "realm");
  if (summary && summary[0]) fprintf(out, "%s\n", summary);
  fprintf(out, "\nOptions (command line overrides environment, which overrides the default):\n");
  for (size_t i = 0; opts && i < n_opts; i++) {
    const struct realm_option *o = &opts[i];
    char flag[128];
    if (o->type == REALM_OPT_BOOL) snprintf(flag, sizeof flag, "--[no-]%s", o->name);
    else snprintf(flag, sizeof flag, "--%s %s", o->name, metavar(o->type));
    fprintf(out, "  %-28s %s\n", flag, o->help ? o->help : "");
    char extra[256];
    size_t len = 0;
    extra[0] = 0;
    if (o->env) len += (size_t)snprintf(extra + len, sizeof extra - len, "env %s", o->env);
    if (o->default_value && len < sizeof extra)
      len += (size_t)snprintf(extra + len, sizeof extra - len, "%sdefault %s%s%s", len ? ", " : "",
                              o->type == REALM_OPT_STRING ? "\"" : "", o->default_value,
                              o->type == REALM_OPT_STRING ? "\"" : "");
    if (has_bounds(o) && o->type != REALM_OPT_STRING && o->type != REALM_OPT_BOOL &&
        len < sizeof extra)
      len += (size_t)snprintf(extra + len, sizeof extra - len,
                              "%srange %" PRId64 "..%" PRId64 "%s", len ? ", " : "", o->min,
                              o->max, o->type == REALM_OPT_DURATION_MS ? " ms"
                                      : o->type == REALM_OPT_SIZE      ? " bytes"
                                                                       : "");
    if (len) fprintf(out, "  %-28s (%s)\n", "", extra);
  }
  fprintf(out, "  %-28s %s\n", "--help", "show this help and exit");
}
