/*
 * log.c — formats structured log lines (logfmt text or JSON lines) into one bounded stack
 * buffer and writes each with a single fwrite, so concurrent threads never interleave and
 * nothing is allocated (the jailed runner logs after seccomp is installed).
 *
 * Escaping is the part that matters: every value is either emitted bare (text format, when it
 * holds only safe printable bytes) or quoted with quotes, backslashes, control characters and
 * invalid UTF-8 escaped, so a hostile string (a tenant's prompt, a peer's routing id) can
 * never forge a second line or a field.
 */
#include "realm/log.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The longest line written; longer values are cut and the line marked truncated=true. */
#define LOG_LINE_BYTES 8192
/* Room kept back at the end of the buffer for the truncation marker and the newline. */
#define LOG_TRAILER_BYTES 40
#define LOG_COMPONENT_BYTES 64

/* Process-wide logger settings. Set once by realm_log_init at start-up (before threads start)
 * and only read afterwards; that is why plain (non-atomic) fields are enough. */
static struct {
  char component[LOG_COMPONENT_BYTES]; /* "worker", "runner:tenantA" */
  realm_log_level min_level;           /* lines below this are dropped */
  realm_log_format format;             /* text or JSON */
  FILE *out;                           /* NULL: stderr */
} log_state = {.component = "realm", .min_level = REALM_LOG_INFO, .format = REALM_LOG_TEXT};

/* ---- settings ---- */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

const char *realm_log_level_name(realm_log_level level) {
  if ((int)level < 0 || (int)level > REALM_LOG_ERROR) return "unknown";
  return level_names[level];
}

int realm_log_parse_level(const char *s, realm_log_level *ret_level) {
  if (!s || !ret_level) return REALM_E_INVALID_ARGUMENT;
  for (int i = 0; i <= REALM_LOG_ERROR; i++) {
    if (strcasecmp(s, level_names[i]) == 0) {
      *ret_level = (realm_log_level)i;
      return REALM_OK;
    }
  }
  if (strcasecmp(s, "warning") == 0) {
    *ret_level = REALM_LOG_WARN;
    return REALM_OK;
  }
  return REALM_E_INVALID_ARGUMENT;
}

int realm_log_parse_format(const char *s, realm_log_format *ret_format) {
  if (!s || !ret_format) return REALM_E_INVALID_ARGUMENT;
  if (strcasecmp(s, "text") == 0) {
    *ret_format = REALM_LOG_TEXT;
    return REALM_OK;
  }
  if (strcasecmp(s, "json") == 0) {
    *ret_format = REALM_LOG_JSON;
    return REALM_OK;
  }
  return REALM_E_INVALID_ARGUMENT;
}

int realm_log_init(const char *component, realm_log_level level, realm_log_format format) {
  if ((int)level < REALM_LOG_DEBUG || (int)level > REALM_LOG_ERROR) return REALM_E_INVALID_ARGUMENT;
  if (format != REALM_LOG_TEXT && format != REALM_LOG_JSON) return REALM_E_INVALID_ARGUMENT;
  snprintf(log_state.component, sizeof log_state.component, "%s",
           component && component[0] ? component : "realm");
  log_state.min_level = level;
  log_state.format = format;
  return REALM_OK;
}

int realm_log_init_from_env(const char *component, char *err, size_t errlen) {
  realm_log_level level = REALM_LOG_INFO;
  realm_log_format format = REALM_LOG_TEXT;
  int rc = REALM_OK;
  const char *lv = getenv("REALM_LOG_LEVEL");
  const char *fm = getenv("REALM_LOG_FORMAT");
  if (lv && lv[0] && realm_log_parse_level(lv, &level) != REALM_OK) {
    if (err && errlen)
      snprintf(err, errlen, "REALM_LOG_LEVEL: '%s' is not one of debug, info, warn, error", lv);
    level = REALM_LOG_INFO;
    rc = REALM_E_INVALID_ARGUMENT;
  }
  if (fm && fm[0] && realm_log_parse_format(fm, &format) != REALM_OK) {
    if (rc == REALM_OK && err && errlen)
      snprintf(err, errlen, "REALM_LOG_FORMAT: '%s' is not one of text, json", fm);
    format = REALM_LOG_TEXT;
    rc = REALM_E_INVALID_ARGUMENT;
  }
  realm_log_init(component, level, format);
  return rc;
}

void realm_log_set_output(FILE *out) { log_state.out = out; }

bool realm_log_enabled(realm_log_level level) { return level >= log_state.min_level; }

/* ---- line buffer ---- */

struct line {
  char buf[LOG_LINE_BYTES];
  size_t len;
  size_t limit;   /* len never passes this: the trailer always fits after it */
  bool truncated; /* something was cut */
};

/* Appends n bytes whole or not at all (so an escape sequence is never split). */
static bool line_put(struct line *l, const char *s, size_t n) {
  if (l->truncated || n > l->limit - l->len) {
    l->truncated = true;
    return false;
  }
  memcpy(l->buf + l->len, s, n);
  l->len += n;
  return true;
}

static void line_puts(struct line *l, const char *s) { line_put(l, s, strlen(s)); }

static void line_printf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line_printf(struct line *l, const char *fmt, ...) {
  char tmp[64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  line_put(l, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Length of the valid UTF-8 sequence starting at s (at most avail bytes), or 0 if invalid.
 * Rejects overlongs, surrogates and code points above U+10FFFF, as JSON parsers do. */
static size_t utf8_seq_len(const unsigned char *s, size_t avail) {
  unsigned c = s[0];
  size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) { n = 2; cp = c & 0x1f; }
  else if (c >= 0xe0 && c <= 0xef) { n = 3; cp = c & 0x0f; }
  else if (c >= 0xf0 && c <= 0xf4) { n = 4; cp = c & 0x07; }
  else return 0;
  if (n > avail) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

/* A text value can go bare when it is non-empty and holds only printable ASCII other than
 * space, quote, backslash and '=' (UTF-8 beyond ASCII is quoted too, for simple parsers). */
static bool text_is_bare(const char *s) {
  if (!s[0]) return false;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '\\' || *p == '=') return false;
  return true;
}

/* Writes s as a quoted string: JSON rules when json, else logfmt/Go-style escapes. */
static void line_put_quoted(struct line *l, const char *s, bool json) {
  if (!line_put(l, "\"", 1)) return;
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  size_t left = strlen((const char *)p);
  char esc[8];
  while (left > 0 && !l->truncated) {
    unsigned c = *p;
    size_t adv = 1;
    const char *out = esc;
    size_t outlen;
    if (c == '"') out = "\\\"";
    else if (c == '\\') out = "\\\\";
    else if (c == '\n') out = "\\n";
    else if (c == '\r') out = "\\r";
    else if (c == '\t') out = "\\t";
    else if (c < 0x20 || c == 0x7f) snprintf(esc, sizeof esc, json ? "\\u%04x" : "\\x%02x", c);
    else if (c < 0x80) { esc[0] = (char)c; esc[1] = 0; }
    else {
      adv = utf8_seq_len(p, left);
      if (adv == 0) { /* invalid byte: never pass it through */
        adv = 1;
        if (json) out = "\\ufffd";
        else snprintf(esc, sizeof esc, "\\x%02x", c);
      } else {
        if (!line_put(l, (const char *)p, adv)) break;
        p += adv;
        left -= adv;
        continue;
      }
    }
    outlen = strlen(out);
    if (!line_put(l, out, outlen)) break;
    p += adv;
    left -= adv;
  }
  /* The closing quote goes in even after a cut: the trailer space guarantees room. */
  l->buf[l->len++] = '"';
}

static void line_put_key(struct line *l, const char *key, bool json) {
  char k[64];
  size_t n = 0;
  for (const char *p = key ? key : ""; *p && n < sizeof k - 1; p++) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-';
    k[n++] = ok ? c : '_';
  }
  if (n == 0) k[n++] = '_';
  k[n] = 0;
  if (json) {
    line_put(l, ",\"", 2);
    line_put(l, k, n);
    line_put(l, "\":", 2);
  } else {
    line_put(l, " ", 1);
    line_put(l, k, n);
    line_put(l, "=", 1);
  }
}

static void line_put_string_value(struct line *l, const char *s, bool json) {
  if (!s) s = "";
  if (!json && text_is_bare(s) && strlen(s) <= l->limit - l->len) line_puts(l, s);
  else line_put_quoted(l, s, json);
}

static void line_put_field(struct line *l, const struct realm_log_field *f, bool json) {
  line_put_key(l, f->key, json);
  switch (f->type) {
  case REALM_LOG_FIELD_STR: line_put_string_value(l, f->v.s, json); break;
  case REALM_LOG_FIELD_INT: line_printf(l, "%lld", f->v.i); break;
  case REALM_LOG_FIELD_UINT: line_printf(l, "%llu", f->v.u); break;
  case REALM_LOG_FIELD_BOOL: line_puts(l, f->v.b ? "true" : "false"); break;
  case REALM_LOG_FIELD_F64:
    if (isfinite(f->v.f)) line_printf(l, "%.9g", f->v.f);
    else if (isnan(f->v.f)) line_puts(l, json ? "\"NaN\"" : "NaN");
    else line_puts(l, f->v.f > 0 ? (json ? "\"+Inf\"" : "+Inf") : (json ? "\"-Inf\"" : "-Inf"));
    break;
  default: line_puts(l, json ? "null" : "\"\""); break;
  }
}

static void line_put_header(struct line *l, realm_log_level level, const char *msg, bool json) {
  struct timespec ts;
  struct tm tm;
  char when[40];
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm); /* gmtime_r, not localtime_r: no tzfile read under seccomp */
  size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000L);
  if (json) {
    line_puts(l, "{\"ts\":\"");
    line_puts(l, when);
    line_puts(l, "\",\"level\":\"");
    line_puts(l, realm_log_level_name(level));
    line_puts(l, "\",\"comp\":");
    line_put_quoted(l, log_state.component, true);
    line_puts(l, ",\"msg\":");
    line_put_quoted(l, msg, true);
  } else {
    line_puts(l, "ts=");
    line_puts(l, when);
    line_puts(l, " level=");
    line_puts(l, realm_log_level_name(level));
    line_puts(l, " comp=");
    line_put_string_value(l, log_state.component, false);
    line_puts(l, " msg=");
    line_put_quoted(l, msg, false); /* always quoted: messages are prose */
  }
}

static void line_finish_and_write(struct line *l, bool json) {
  /* Past this point the reserved trailer space is used: lift the limit. */
  l->limit = sizeof l->buf;
  if (l->truncated) {
    l->truncated = false;
    line_puts(l, json ? ",\"truncated\":true" : " truncated=true");
  }
  if (json) line_put(l, "}", 1);
  line_put(l, "\n", 1);
  FILE *out = log_state.out ? log_state.out : stderr;
  fwrite(l->buf, 1, l->len, out);
  fflush(out);
}

static void line_init(struct line *l) {
  l->len = 0;
  l->limit = sizeof l->buf - LOG_TRAILER_BYTES;
  l->truncated = false;
}

void realm_log_emit(realm_log_level level, const char *msg, const struct realm_log_field *fields,
                    size_t n) {
  if (!realm_log_enabled(level)) return;
  bool json = log_state.format == REALM_LOG_JSON;
  struct line l;
  line_init(&l);
  line_put_header(&l, level, msg ? msg : "", json);
  /* fields[0] is the placeholder the macros put first. */
  for (size_t i = 1; fields && i < n; i++) line_put_field(&l, &fields[i], json);
  line_finish_and_write(&l, json);
}

void realm_logf(realm_log_level level, const char *fmt, ...) {
  if (!realm_log_enabled(level)) return;
  char msg[LOG_LINE_BYTES / 2];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  bool json = log_state.format == REALM_LOG_JSON;
  struct line l;
  line_init(&l);
  line_put_header(&l, level, msg, json);
  line_finish_and_write(&l, json);
}
