/*
 * test_log.c — structured logging: both formats produce one parseable line per event, hostile
 * values (quotes, newlines, control bytes, invalid UTF-8) are escaped so they cannot forge
 * lines or fields, level filtering and environment set-up work. Each test parses what was
 * written with a small independent parser (logfmt or JSON) and compares the decoded values.
 */
#include "realm/log.h"
#include "realm_test.h"

#include <pthread.h>
#include <stdlib.h>

/* ---- capture ---- */

static char *cap_buf;
static size_t cap_len;
static FILE *cap_file;

static void cap_begin(const char *comp, realm_log_level lvl, realm_log_format fmt) {
  free(cap_buf);
  cap_buf = NULL;
  cap_len = 0;
  cap_file = open_memstream(&cap_buf, &cap_len);
  realm_log_set_output(cap_file);
  realm_log_init(comp, lvl, fmt);
}

static const char *cap_end(void) {
  fclose(cap_file);
  cap_file = NULL;
  realm_log_set_output(NULL);
  return cap_buf;
}

static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++)
    if (*s == '\n') n++;
  return n;
}

/* ---- a tiny decoder for both formats: finds key, returns decoded value ---- */

struct kv {
  char key[32];
  char val[512];
};

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes a quoted string starting at *pp (on the opening quote); returns 0 on success. */
static int decode_quoted(const char **pp, char *out, size_t cap, int json) {
  const char *p = *pp;
  size_t n = 0;
  if (*p++ != '"') return -1;
  while (*p && *p != '"') {
    if ((unsigned char)*p < 0x20) return -1; /* raw control byte: not allowed in either */
    char c = *p++;
    if (c == '\\') {
      char e = *p++;
      if (e == 'n') c = '\n';
      else if (e == 'r') c = '\r';
      else if (e == 't') c = '\t';
      else if (e == '"' || e == '\\' || e == '/') c = e;
      else if (!json && e == 'x') {
        int h = hexval(p[0]), l = hexval(p[1]);
        if (h < 0 || l < 0) return -1;
        c = (char)(h * 16 + l);
        p += 2;
      } else if (json && e == 'u') {
        int v = 0;
        for (int i = 0; i < 4; i++) {
          int h = hexval(p[i]);
          if (h < 0) return -1;
          v = v * 16 + h;
        }
        p += 4;
        if (v == 0xfffd) { /* replacement char, keep it as a marker '?' */
          c = '?';
        } else if (v < 0x80) {
          c = (char)v;
        } else {
          return -1;
        }
      } else {
        return -1;
      }
    }
    if (n + 1 >= cap) return -1;
    out[n++] = c;
  }
  if (*p != '"') return -1;
  out[n] = 0;
  *pp = p + 1;
  return 0;
}

/* Parses one logfmt line into kvs; returns the pair count or -1 when malformed. */
static int parse_logfmt(const char *line, struct kv *kvs, int max) {
  const char *p = line;
  int n = 0;
  while (*p && *p != '\n') {
    if (n == max) return -1;
    size_t k = 0;
    while (*p && *p != '=' && *p != ' ' && *p != '\n' && k < sizeof kvs[n].key - 1)
      kvs[n].key[k++] = *p++;
    kvs[n].key[k] = 0;
    if (*p++ != '=' || k == 0) return -1;
    if (*p == '"') {
      if (decode_quoted(&p, kvs[n].val, sizeof kvs[n].val, 0) != 0) return -1;
    } else {
      size_t v = 0;
      while (*p && *p != ' ' && *p != '\n') {
        if (*p == '"' || *p == '=' || v + 1 >= sizeof kvs[n].val) return -1;
        kvs[n].val[v++] = *p++;
      }
      kvs[n].val[v] = 0;
      if (v == 0) return -1;
    }
    n++;
    if (*p == ' ') p++;
    else if (*p && *p != '\n') return -1;
  }
  return n;
}

/* Parses one flat JSON object (string/number/bool/null values) into kvs. */
static int parse_json(const char *line, struct kv *kvs, int max) {
  const char *p = line;
  int n = 0;
  if (*p++ != '{') return -1;
  while (*p != '}') {
    if (n == max) return -1;
    if (n > 0 && *p++ != ',') return -1;
    if (decode_quoted(&p, kvs[n].key, sizeof kvs[n].key, 1) != 0) return -1;
    if (*p++ != ':') return -1;
    if (*p == '"') {
      if (decode_quoted(&p, kvs[n].val, sizeof kvs[n].val, 1) != 0) return -1;
    } else {
      size_t v = 0;
      while (*p && strchr("0123456789+-.eEtruefalsn", *p) && v + 1 < sizeof kvs[n].val)
        kvs[n].val[v++] = *p++;
      kvs[n].val[v] = 0;
      if (v == 0) return -1;
    }
    n++;
  }
  p++;
  return *p == '\n' ? n : -1;
}

static const char *kv_get(const struct kv *kvs, int n, const char *key) {
  for (int i = 0; i < n; i++)
    if (strcmp(kvs[i].key, key) == 0) return kvs[i].val;
  return NULL;
}

static const char *hostile = "say \"hi\"\nts=forged level=error\\ \x01\x1f end";

TEST(log_text_fields_and_escaping) {
  cap_begin("runner:tenantA", REALM_LOG_DEBUG, REALM_LOG_TEXT);
  realm_log_info("model loaded", RLOG_STR("path", "/models/a b.gguf"), RLOG_INT("tensors", -201),
                 RLOG_UINT("bytes", 18446744073709551615ull), RLOG_BOOL("mmap", 1),
                 RLOG_F64("ratio", 0.5), RLOG_STR("evil", hostile), RLOG_ERR(REALM_E_NOT_FOUND),
                 RLOG_STR("empty", ""), RLOG_STR("nul", NULL));
  const char *out = cap_end();
  CHECK_EQ_INT(count_lines(out), 1);
  struct kv kvs[20];
  int n = parse_logfmt(out, kvs, 20);
  CHECK_EQ_INT(n, 13);
  CHECK_STR_EQ(kvs[0].key, "ts");
  CHECK_EQ_INT(strlen(kvs[0].val), strlen("2024-01-01T00:00:00.000Z"));
  CHECK_STR_EQ(kv_get(kvs, n, "level"), "info");
  CHECK_STR_EQ(kv_get(kvs, n, "comp"), "runner:tenantA");
  CHECK_STR_EQ(kv_get(kvs, n, "msg"), "model loaded");
  CHECK_STR_EQ(kv_get(kvs, n, "path"), "/models/a b.gguf");
  CHECK_STR_EQ(kv_get(kvs, n, "tensors"), "-201");
  CHECK_STR_EQ(kv_get(kvs, n, "bytes"), "18446744073709551615");
  CHECK_STR_EQ(kv_get(kvs, n, "mmap"), "true");
  CHECK_STR_EQ(kv_get(kvs, n, "ratio"), "0.5");
  CHECK_STR_EQ(kv_get(kvs, n, "evil"), hostile);
  CHECK_STR_EQ(kv_get(kvs, n, "err"), "not_found");
  CHECK_STR_EQ(kv_get(kvs, n, "empty"), "");
  CHECK_STR_EQ(kv_get(kvs, n, "nul"), "");
  /* the forged "level=error" stays inside the quoted value */
  CHECK_STR_CONTAINS(out, "\\nts=forged");
}

TEST(log_json_fields_and_escaping) {
  cap_begin("worker", REALM_LOG_INFO, REALM_LOG_JSON);
  realm_log_warn("bad \"peer\"\n", RLOG_STR("evil", hostile), RLOG_INT("n", 42),
                 RLOG_BOOL("ok", 0), RLOG_F64("nan", 0.0 / 0.0), RLOG_STR("k\"ey\n", "v"),
                 RLOG_STR("bad_utf8", "a\xff\xc0z"), RLOG_STR("utf8", "caf\xc3\xa9"));
  const char *out = cap_end();
  CHECK_EQ_INT(count_lines(out), 1);
  CHECK_STR_CONTAINS(out, "caf\xc3\xa9"); /* valid UTF-8 passes through unescaped */
  struct kv kvs[20];
  int n = parse_json(out, kvs, 20);
  CHECK_EQ_INT(n, 11);
  CHECK_STR_EQ(kv_get(kvs, n, "level"), "warn");
  CHECK_STR_EQ(kv_get(kvs, n, "comp"), "worker");
  CHECK_STR_EQ(kv_get(kvs, n, "msg"), "bad \"peer\"\n");
  CHECK_STR_EQ(kv_get(kvs, n, "evil"), hostile);
  CHECK_STR_EQ(kv_get(kvs, n, "n"), "42");
  CHECK_STR_EQ(kv_get(kvs, n, "ok"), "false");
  CHECK_STR_EQ(kv_get(kvs, n, "nan"), "NaN");
  CHECK_STR_EQ(kv_get(kvs, n, "k_ey_"), "v"); /* keys are sanitised, never escaped */
  CHECK_STR_EQ(kv_get(kvs, n, "bad_utf8"), "a??z");
}

TEST(log_level_filtering) {
  cap_begin("worker", REALM_LOG_WARN, REALM_LOG_TEXT);
  realm_log_debug("dropped");
  realm_log_info("dropped too", RLOG_INT("x", 1));
  realm_log_warn("kept");
  realm_log_error("kept too");
  realm_logf(REALM_LOG_INFO, "dropped %d", 3);
  realm_logf(REALM_LOG_ERROR, "kept %d%%", 3);
  CHECK(!realm_log_enabled(REALM_LOG_INFO));
  CHECK(realm_log_enabled(REALM_LOG_ERROR));
  const char *out = cap_end();
  CHECK_EQ_INT(count_lines(out), 3);
  CHECK(strstr(out, "dropped") == NULL);
  CHECK_STR_CONTAINS(out, "msg=\"kept 3%\"");
  CHECK_STR_CONTAINS(out, "level=error");
}

TEST(log_long_value_is_truncated_on_one_line) {
  static char big[20000];
  memset(big, '"', sizeof big - 1); /* every byte doubles when escaped */
  cap_begin("worker", REALM_LOG_INFO, REALM_LOG_JSON);
  realm_log_info("big", RLOG_STR("v", big), RLOG_INT("after", 1));
  const char *out = cap_end();
  CHECK_EQ_INT(count_lines(out), 1);
  CHECK(strlen(out) <= 8192);
  /* the decoder's value buffer is small; check the structure by hand instead */
  CHECK_STR_CONTAINS(out, ",\"truncated\":true}\n");
  CHECK(strstr(out, "\"after\"") == NULL);
  cap_begin("worker", REALM_LOG_INFO, REALM_LOG_TEXT);
  realm_log_info("big", RLOG_STR("v", big));
  out = cap_end();
  CHECK_EQ_INT(count_lines(out), 1);
  CHECK_STR_CONTAINS(out, "\" truncated=true\n");
}

TEST(log_init_from_env) {
  char err[128] = "";
  setenv("REALM_LOG_LEVEL", "debug", 1);
  setenv("REALM_LOG_FORMAT", "JSON", 1);
  CHECK_EQ_INT(realm_log_init_from_env("gateway", err, sizeof err), REALM_OK);
  cap_begin("gateway", REALM_LOG_DEBUG, REALM_LOG_JSON); /* re-init only to attach capture */
  CHECK_EQ_INT(realm_log_init_from_env("gateway", err, sizeof err), REALM_OK);
  realm_log_debug("hello");
  const char *out = cap_end();
  CHECK_STR_CONTAINS(out, "\"level\":\"debug\",\"comp\":\"gateway\",\"msg\":\"hello\"}");

  setenv("REALM_LOG_LEVEL", "loud", 1);
  CHECK_EQ_INT(realm_log_init_from_env("gateway", err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "REALM_LOG_LEVEL: 'loud' is not one of debug, info, warn, error");
  CHECK(!realm_log_enabled(REALM_LOG_DEBUG)); /* fell back to info */
  setenv("REALM_LOG_LEVEL", "warning", 1);
  setenv("REALM_LOG_FORMAT", "xml", 1);
  CHECK_EQ_INT(realm_log_init_from_env("gateway", err, sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "REALM_LOG_FORMAT: 'xml' is not one of text, json");
  unsetenv("REALM_LOG_LEVEL");
  unsetenv("REALM_LOG_FORMAT");
  CHECK_EQ_INT(realm_log_init("x", (realm_log_level)7, REALM_LOG_TEXT), REALM_E_INVALID_ARGUMENT);
  realm_log_init("test", REALM_LOG_INFO, REALM_LOG_TEXT);
}

static void *log_thread(void *arg) {
  long id = (long)arg;
  for (int i = 0; i < 200; i++)
    realm_log_info("from a thread", RLOG_INT("thread", id), RLOG_INT("i", i),
                   RLOG_STR("pad", "some text with spaces to make the line longer"));
  return NULL;
}

TEST(log_lines_from_threads_never_interleave) {
  cap_begin("worker", REALM_LOG_INFO, REALM_LOG_TEXT);
  pthread_t t[4];
  for (long k = 0; k < 4; k++) CHECK_EQ_INT(pthread_create(&t[k], NULL, log_thread, (void *)k), 0);
  for (int k = 0; k < 4; k++) pthread_join(t[k], NULL);
  const char *out = cap_end();
  CHECK_EQ_INT(count_lines(out), 800);
  int per_thread[4] = {0};
  struct kv kvs[12];
  for (const char *line = out; *line; line = strchr(line, '\n') + 1) {
    int n = parse_logfmt(line, kvs, 12);
    CHECK_EQ_INT(n, 7);
    long id = strtol(kv_get(kvs, n, "thread"), NULL, 10);
    CHECK(id >= 0 && id < 4);
    per_thread[id]++;
  }
  for (int k = 0; k < 4; k++) CHECK_EQ_INT(per_thread[k], 200);
}
