/*
 * prom_check.c — the strict exposition-format checker of prom_check.h. One pass over the
 * lines with a small table of families seen; histogram series are tracked by their label set
 * without `le` so buckets can be checked for order and against _count.
 */
#include "prom_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PC_MAX_FAMILIES 128
#define PC_MAX_SERIES 4096
#define PC_NAME_MAX 128
#define PC_LABELS_MAX 512

struct family {
  char name[PC_NAME_MAX];
  char type[16]; /* "" until TYPE */
  bool help, has_samples, closed;
};

struct hist_series { /* one histogram series: family + labels without le */
  char key[PC_NAME_MAX + PC_LABELS_MAX];
  double last_bucket, inf_bucket, count;
  bool has_inf, has_count, has_sum;
};

struct checker {
  struct family fam[PC_MAX_FAMILIES];
  size_t n_fam;
  struct family *current; /* family of the previous sample */
  char (*series)[PC_NAME_MAX + PC_LABELS_MAX];
  size_t n_series;
  struct hist_series *hist;
  size_t n_hist;
  int line;
  char *err;
  size_t errlen;
};

static bool fail(struct checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(struct checker *c, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(c->err, c->errlen, "line %d: %s", c->line, msg);
  return false;
}

static bool name_start(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == ':'; }
static bool name_char(char ch) { return name_start(ch) || (ch >= '0' && ch <= '9'); }

/* Reads a metric name (colons allowed) or a label name (no colons) at *p. */
static bool read_name(const char **p, char *out, size_t cap, bool label) {
  size_t n = 0;
  const char *s = *p;
  if (!name_start(*s) || (label && *s == ':')) return false;
  while (name_char(*s) && !(label && *s == ':')) {
    if (n + 1 >= cap) return false;
    out[n++] = *s++;
  }
  out[n] = '\0';
  *p = s;
  return true;
}

static bool parse_value(const char *s, double *ret) {
  if (!strcmp(s, "+Inf") || !strcmp(s, "Inf")) return *ret = INFINITY, true;
  if (!strcmp(s, "-Inf")) return *ret = -INFINITY, true;
  if (!strcmp(s, "NaN")) return *ret = NAN, true;
  char *end;
  *ret = strtod(s, &end);
  return end != s && *end == '\0' && strchr(s, 'x') == NULL && strchr(s, 'X') == NULL;
}

static struct family *family_get(struct checker *c, const char *name, bool create) {
  for (size_t i = 0; i < c->n_fam; i++)
    if (!strcmp(c->fam[i].name, name)) return &c->fam[i];
  if (!create || c->n_fam == PC_MAX_FAMILIES) return NULL;
  struct family *f = &c->fam[c->n_fam++];
  memset(f, 0, sizeof *f);
  snprintf(f->name, sizeof f->name, "%s", name);
  return f;
}

/* The family a sample name belongs to: a histogram's _bucket/_sum/_count fold into it. */
static struct family *family_of_sample(struct checker *c, const char *name, const char **suffix) {
  static const char *const sfx[] = {"_bucket", "_sum", "_count"};
  for (size_t i = 0; i < 3; i++) {
    size_t n = strlen(name), k = strlen(sfx[i]);
    if (n > k && !strcmp(name + n - k, sfx[i])) {
      char base[PC_NAME_MAX];
      snprintf(base, sizeof base, "%.*s", (int)(n - k), name);
      struct family *f = family_get(c, base, false);
      if (f && (!strcmp(f->type, "histogram") || !strcmp(f->type, "summary"))) {
        *suffix = sfx[i];
        return f;
      }
    }
  }
  *suffix = "";
  return family_get(c, name, true);
}

static bool check_comment(struct checker *c, const char *line) {
  bool help = !strncmp(line, "# HELP ", 7), type = !strncmp(line, "# TYPE ", 7);
  if (!help && !type) return true; /* a plain comment */
  const char *p = line + 7;
  char name[PC_NAME_MAX];
  if (!read_name(&p, name, sizeof name, false)) return fail(c, "bad metric name in %.6s", line);
  struct family *f = family_get(c, name, true);
  if (!f) return fail(c, "too many families");
  if (help) {
    if (f->help) return fail(c, "second HELP for %s", name);
    if (*p != ' ' && *p != '\0') return fail(c, "HELP %s: name not followed by a space", name);
    for (const char *q = p; *q; q++)
      if (*q == '\\' && q[1] != '\\' && q[1] != 'n') return fail(c, "HELP %s: bad escape", name);
    f->help = true;
    return true;
  }
  if (f->type[0]) return fail(c, "second TYPE for %s", name);
  if (f->has_samples) return fail(c, "TYPE for %s after its samples", name);
  if (*p++ != ' ') return fail(c, "TYPE %s: no type", name);
  static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
  for (size_t i = 0; i < 5; i++)
    if (!strcmp(p, types[i])) {
      snprintf(f->type, sizeof f->type, "%s", types[i]);
      return true;
    }
  return fail(c, "TYPE %s: unknown type '%s'", name, p);
}

static bool check_sample(struct checker *c, const char *line) {
  const char *p = line;
  char name[PC_NAME_MAX];
  if (!read_name(&p, name, sizeof name, false)) return fail(c, "bad metric name");
  char labels[PC_LABELS_MAX] = "", no_le[PC_LABELS_MAX] = "", le[64] = "";
  size_t ln = 0, nl = 0;
  if (*p == '{') {
    const char *start = p++;
    char seen[16][PC_NAME_MAX];
    size_t n_seen = 0;
    while (*p != '}') {
      char lname[PC_NAME_MAX];
      if (!read_name(&p, lname, sizeof lname, true)) return fail(c, "%s: bad label name", name);
      for (size_t i = 0; i < n_seen; i++)
        if (!strcmp(seen[i], lname)) return fail(c, "%s: label %s repeated", name, lname);
      if (n_seen < 16) snprintf(seen[n_seen++], PC_NAME_MAX, "%s", lname);
      if (*p++ != '=' || *p++ != '"') return fail(c, "%s: label %s: expected =\"", name, lname);
      const char *vstart = p;
      while (*p && *p != '"') {
        if (*p == '\\') {
          if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
            return fail(c, "%s: label %s: bad escape", name, lname);
          p++;
        }
        p++;
      }
      if (*p != '"') return fail(c, "%s: label %s: unterminated value", name, lname);
      if (!strcmp(lname, "le")) {
        snprintf(le, sizeof le, "%.*s", (int)(p - vstart), vstart);
      } else {
        int w = snprintf(no_le + nl, sizeof no_le - nl, "%s%s=\"%.*s\"", nl ? "," : "", lname,
                         (int)(p - vstart), vstart);
        if (w < 0 || (size_t)w >= sizeof no_le - nl) return fail(c, "%s: labels too long", name);
        nl += (size_t)w;
      }
      p++;
      if (*p == ',') {
        p++;
        if (*p == '}') return fail(c, "%s: trailing comma in labels", name);
      } else if (*p != '}') {
        return fail(c, "%s: expected , or } after a label", name);
      }
    }
    p++;
    ln = (size_t)(p - start);
    if (ln >= sizeof labels) return fail(c, "%s: labels too long", name);
    memcpy(labels, start, ln);
    labels[ln] = '\0';
  }
  if (*p++ != ' ') return fail(c, "%s: expected a space before the value", name);
  char vbuf[64];
  const char *sp = strchr(p, ' ');
  size_t vl = sp ? (size_t)(sp - p) : strlen(p);
  if (vl == 0 || vl >= sizeof vbuf) return fail(c, "%s: bad value", name);
  memcpy(vbuf, p, vl);
  vbuf[vl] = '\0';
  double v;
  if (!parse_value(vbuf, &v)) return fail(c, "%s: value '%s' is not a number", name, vbuf);
  if (sp) { /* optional integer timestamp */
    char *end;
    strtoll(sp + 1, &end, 10);
    if (end == sp + 1 || *end) return fail(c, "%s: bad timestamp", name);
  }

  const char *suffix;
  struct family *f = family_of_sample(c, name, &suffix);
  if (!f) return fail(c, "too many families");
  if (f->closed || (c->current && c->current != f && f->has_samples))
    return fail(c, "samples of %s are not contiguous", f->name);
  if (c->current && c->current != f) c->current->closed = true;
  c->current = f;
  f->has_samples = true;

  char key[PC_NAME_MAX + PC_LABELS_MAX];
  snprintf(key, sizeof key, "%s%s", name, labels);
  for (size_t i = 0; i < c->n_series; i++)
    if (!strcmp(c->series[i], key)) return fail(c, "series %s repeated", key);
  if (c->n_series == PC_MAX_SERIES) return fail(c, "too many series");
  snprintf(c->series[c->n_series++], sizeof c->series[0], "%s", key);

  if (!strcmp(f->type, "counter")) {
    size_t n = strlen(name);
    if (n < 6 || strcmp(name + n - 6, "_total")) return fail(c, "counter %s not named *_total", name);
    if (!(v >= 0)) return fail(c, "counter %s is negative or NaN", name);
  }
  if (!strcmp(f->type, "histogram")) {
    if (!*suffix) return fail(c, "histogram %s: sample without _bucket/_sum/_count", name);
    if (!strcmp(suffix, "_bucket") && !le[0]) return fail(c, "%s without le", name);
    if (strcmp(suffix, "_bucket") && le[0]) return fail(c, "%s with le", name);
    char hk[sizeof key];
    snprintf(hk, sizeof hk, "%s{%s}", f->name, no_le);
    struct hist_series *h = NULL;
    for (size_t i = 0; i < c->n_hist && !h; i++)
      if (!strcmp(c->hist[i].key, hk)) h = &c->hist[i];
    if (!h) {
      if (c->n_hist == PC_MAX_SERIES) return fail(c, "too many histogram series");
      h = &c->hist[c->n_hist++];
      memset(h, 0, sizeof *h);
      snprintf(h->key, sizeof h->key, "%s", hk);
      h->last_bucket = -1;
    }
    if (!strcmp(suffix, "_bucket")) {
      if (h->has_inf) return fail(c, "%s: bucket after le=\"+Inf\"", hk);
      if (v < h->last_bucket) return fail(c, "%s: buckets decrease", hk);
      h->last_bucket = v;
      if (!strcmp(le, "+Inf")) {
        h->has_inf = true;
        h->inf_bucket = v;
      } else {
        double b;
        if (!parse_value(le, &b)) return fail(c, "%s: le '%s' is not a number", hk, le);
      }
    } else if (!strcmp(suffix, "_count")) {
      h->has_count = true;
      h->count = v;
    } else {
      h->has_sum = true;
    }
  }
  return true;
}

bool prom_check(const char *text, char *err, size_t errlen) {
  struct checker *c = calloc(1, sizeof *c);
  if (!c) return false;
  c->series = calloc(PC_MAX_SERIES, sizeof *c->series);
  c->hist = calloc(PC_MAX_SERIES, sizeof *c->hist);
  c->err = err;
  c->errlen = errlen;
  bool ok = c->series && c->hist;
  size_t len = strlen(text);
  if (ok && len && text[len - 1] != '\n') ok = fail(c, "the text does not end with a newline");
  for (const char *p = text; ok && *p;) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    char *line = malloc(n + 1);
    if (!line) {
      ok = false;
      break;
    }
    memcpy(line, p, n);
    line[n] = '\0';
    c->line++;
    if (n == 0) ok = fail(c, "empty line");
    else if (line[0] == '#') ok = check_comment(c, line);
    else ok = check_sample(c, line);
    free(line);
    p += n + (nl ? 1 : 0);
  }
  for (size_t i = 0; ok && i < c->n_hist; i++) {
    struct hist_series *h = &c->hist[i];
    if (!h->has_inf || !h->has_count || !h->has_sum)
      ok = fail(c, "histogram %s lacks le=\"+Inf\", _sum or _count", h->key);
    else if (h->inf_bucket != h->count)
      ok = fail(c, "histogram %s: +Inf bucket %g != _count %g", h->key, h->inf_bucket, h->count);
  }
  free(c->series);
  free(c->hist);
  free(c);
  return ok;
}

bool prom_value(const char *text, const char *name, const char *labels, double *ret) {
  char prefix[PC_NAME_MAX + PC_LABELS_MAX + 2];
  snprintf(prefix, sizeof prefix, "%s%s ", name, labels);
  size_t n = strlen(prefix);
  for (const char *p = text; p && *p;) {
    if (!strncmp(p, prefix, n)) {
      *ret = strtod(p + n, NULL);
      return true;
    }
    p = strchr(p, '\n');
    if (p) p++;
  }
  return false;
}
