/*
 * metrics.c — per-tenant counters and histograms (see metrics.h).
 *
 * Series are kept per tenant label in a small array searched linearly: tenants are bounded by
 * REALM_MAX_TENANTS, and a request touches its series once at the end. Label sets beyond the
 * bound fold into tenant="_other" so a churning tenants file cannot grow memory forever.
 * Tenant ids are restricted to [A-Za-z0-9._-] by the tenants file, but labels are escaped
 * anyway because "_unauthenticated" style pseudo-tenants and future callers may differ.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "realm/error.h"
#include "realm/limits.h"

#define MAX_STATUS_CODES 24
#define MAX_SERIES (REALM_MAX_TENANTS + 8)

static const double latency_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                         1,     2.5,  5,     10,   30,  60,  120};
#define N_BUCKETS (sizeof latency_buckets / sizeof latency_buckets[0])

struct histogram {
  uint64_t counts[N_BUCKETS]; /* non-cumulative; cumulated when rendered */
  uint64_t count;
  double sum;
};

struct status_count {
  int status;
  uint64_t n;
};

struct series {
  char tenant[72];
  struct status_count statuses[MAX_STATUS_CODES];
  size_t n_statuses;
  uint64_t prompt_tokens, completion_tokens;
  uint64_t rl_requests, rl_tokens, rl_concurrency;
  int64_t in_flight;
  struct histogram ttft, latency;
};

struct gw_metrics {
  pthread_mutex_t mu;
  struct series *s;
  size_t n, cap;
};

int gw_metrics_create(struct gw_metrics **ret) {
  struct gw_metrics *m = calloc(1, sizeof *m);
  if (!m) return REALM_E_NOMEM;
  pthread_mutex_init(&m->mu, NULL);
  *ret = m;
  return 0;
}

void gw_metrics_destroy(struct gw_metrics *m) {
  if (!m) return;
  pthread_mutex_destroy(&m->mu);
  free(m->s);
  free(m);
}

/* Finds or adds the series of a tenant; called with mu held. NULL only on allocation failure. */
static struct series *series_get(struct gw_metrics *m, const char *tenant) {
  if (!tenant || !*tenant) tenant = "_unauthenticated";
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(m->s[i].tenant, tenant) == 0) return &m->s[i];
  if (m->n >= MAX_SERIES) {
    tenant = "_other";
    for (size_t i = 0; i < m->n; i++)
      if (strcmp(m->s[i].tenant, tenant) == 0) return &m->s[i];
  }
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct series *p = realloc(m->s, cap * sizeof *p);
    if (!p) return NULL;
    m->s = p;
    m->cap = cap;
  }
  struct series *s = &m->s[m->n++];
  memset(s, 0, sizeof *s);
  strncpy(s->tenant, tenant, sizeof s->tenant - 1);
  return s;
}

static void hist_observe(struct histogram *h, double v) {
  for (size_t i = 0; i < N_BUCKETS; i++)
    if (v <= latency_buckets[i]) {
      h->counts[i]++;
      break;
    }
  h->count++;
  h->sum += v;
}

void gw_metrics_request(struct gw_metrics *m, const char *tenant, int status,
                        uint64_t prompt_tokens, uint64_t completion_tokens, double ttft_s,
                        double latency_s) {
  pthread_mutex_lock(&m->mu);
  struct series *s = series_get(m, tenant);
  if (s) {
    size_t i = 0;
    while (i < s->n_statuses && s->statuses[i].status != status) i++;
    if (i == s->n_statuses && i < MAX_STATUS_CODES) s->statuses[s->n_statuses++].status = status;
    if (i < s->n_statuses) s->statuses[i].n++;
    s->prompt_tokens += prompt_tokens;
    s->completion_tokens += completion_tokens;
    if (ttft_s >= 0) hist_observe(&s->ttft, ttft_s);
    if (latency_s >= 0) hist_observe(&s->latency, latency_s);
  }
  pthread_mutex_unlock(&m->mu);
}

void gw_metrics_rate_limited(struct gw_metrics *m, const char *tenant, const char *limit) {
  pthread_mutex_lock(&m->mu);
  struct series *s = series_get(m, tenant);
  if (s) {
    if (strcmp(limit, "requests") == 0) s->rl_requests++;
    else if (strcmp(limit, "tokens") == 0) s->rl_tokens++;
    else s->rl_concurrency++;
  }
  pthread_mutex_unlock(&m->mu);
}

void gw_metrics_in_flight(struct gw_metrics *m, const char *tenant, int delta) {
  pthread_mutex_lock(&m->mu);
  struct series *s = series_get(m, tenant);
  if (s) s->in_flight += delta;
  pthread_mutex_unlock(&m->mu);
}

/* Label value with \ " and newline escaped as the exposition format requires. */
int gw_metrics_label(struct gw_buf *b, const char *v) {
  int r = 0;
  for (const char *p = v; *p && r == 0; p++) {
    if (*p == '\\') r = gw_buf_appends(b, "\\\\");
    else if (*p == '"') r = gw_buf_appends(b, "\\\"");
    else if (*p == '\n') r = gw_buf_appends(b, "\\n");
    else r = gw_buf_append(b, p, 1);
  }
  return r;
}

static int render_hist(struct gw_buf *b, const char *name, const struct series *s,
                       const struct histogram *h) {
  int r = 0;
  uint64_t cum = 0;
  for (size_t i = 0; i < N_BUCKETS && r == 0; i++) {
    cum += h->counts[i];
    r |= gw_buf_appendf(b, "%s_bucket{tenant=\"", name);
    r |= gw_metrics_label(b, s->tenant);
    r |= gw_buf_appendf(b, "\",le=\"%g\"} %llu\n", latency_buckets[i], (unsigned long long)cum);
  }
  r |= gw_buf_appendf(b, "%s_bucket{tenant=\"", name);
  r |= gw_metrics_label(b, s->tenant);
  r |= gw_buf_appendf(b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)h->count);
  r |= gw_buf_appendf(b, "%s_sum{tenant=\"", name);
  r |= gw_metrics_label(b, s->tenant);
  r |= gw_buf_appendf(b, "\"} %.9g\n", h->sum);
  r |= gw_buf_appendf(b, "%s_count{tenant=\"", name);
  r |= gw_metrics_label(b, s->tenant);
  r |= gw_buf_appendf(b, "\"} %llu\n", (unsigned long long)h->count);
  return r;
}

static int render_counter(struct gw_buf *b, const char *name, const struct series *s,
                          const char *extra_label, uint64_t v) {
  int r = gw_buf_appendf(b, "%s{tenant=\"", name);
  r |= gw_metrics_label(b, s->tenant);
  r |= gw_buf_appendf(b, "\"%s} %llu\n", extra_label ? extra_label : "", (unsigned long long)v);
  return r;
}

char *gw_metrics_render(struct gw_metrics *m, size_t *ret_len) {
  struct gw_buf b = {0};
  int r = 0;
  pthread_mutex_lock(&m->mu);
  r |= gw_buf_appends(&b, "# HELP realm_gateway_requests_total HTTP requests to /v1 endpoints "
                          "by tenant and status code.\n"
                          "# TYPE realm_gateway_requests_total counter\n");
  for (size_t i = 0; i < m->n; i++)
    for (size_t k = 0; k < m->s[i].n_statuses; k++) {
      char code[32];
      snprintf(code, sizeof code, ",code=\"%d\"", m->s[i].statuses[k].status);
      r |= render_counter(&b, "realm_gateway_requests_total", &m->s[i], code,
                          m->s[i].statuses[k].n);
    }
  r |= gw_buf_appends(&b, "# HELP realm_gateway_prompt_tokens_total Prompt tokens processed.\n"
                          "# TYPE realm_gateway_prompt_tokens_total counter\n");
  for (size_t i = 0; i < m->n; i++)
    r |= render_counter(&b, "realm_gateway_prompt_tokens_total", &m->s[i], NULL,
                        m->s[i].prompt_tokens);
  r |= gw_buf_appends(&b,
                      "# HELP realm_gateway_completion_tokens_total Completion tokens generated.\n"
                      "# TYPE realm_gateway_completion_tokens_total counter\n");
  for (size_t i = 0; i < m->n; i++)
    r |= render_counter(&b, "realm_gateway_completion_tokens_total", &m->s[i], NULL,
                        m->s[i].completion_tokens);
  r |= gw_buf_appends(&b, "# HELP realm_gateway_rate_limited_total Requests refused with 429, "
                          "by the limit that refused them.\n"
                          "# TYPE realm_gateway_rate_limited_total counter\n");
  for (size_t i = 0; i < m->n; i++) {
    r |= render_counter(&b, "realm_gateway_rate_limited_total", &m->s[i], ",limit=\"requests\"",
                        m->s[i].rl_requests);
    r |= render_counter(&b, "realm_gateway_rate_limited_total", &m->s[i], ",limit=\"tokens\"",
                        m->s[i].rl_tokens);
    r |= render_counter(&b, "realm_gateway_rate_limited_total", &m->s[i],
                        ",limit=\"concurrency\"", m->s[i].rl_concurrency);
  }
  r |= gw_buf_appends(&b, "# HELP realm_gateway_in_flight_requests Admitted generation "
                          "requests not yet finished.\n"
                          "# TYPE realm_gateway_in_flight_requests gauge\n");
  for (size_t i = 0; i < m->n; i++)
    r |= render_counter(&b, "realm_gateway_in_flight_requests", &m->s[i], NULL,
                        (uint64_t)(m->s[i].in_flight > 0 ? m->s[i].in_flight : 0));
  r |= gw_buf_appends(&b, "# HELP realm_gateway_time_to_first_token_seconds Time from admission "
                          "to the first generated token.\n"
                          "# TYPE realm_gateway_time_to_first_token_seconds histogram\n");
  for (size_t i = 0; i < m->n; i++)
    r |= render_hist(&b, "realm_gateway_time_to_first_token_seconds", &m->s[i], &m->s[i].ttft);
  r |= gw_buf_appends(&b, "# HELP realm_gateway_request_duration_seconds Time from admission "
                          "to the end of a generation request.\n"
                          "# TYPE realm_gateway_request_duration_seconds histogram\n");
  for (size_t i = 0; i < m->n; i++)
    r |= render_hist(&b, "realm_gateway_request_duration_seconds", &m->s[i], &m->s[i].latency);
  pthread_mutex_unlock(&m->mu);
  if (r != 0) {
    gw_buf_free(&b);
    return NULL;
  }
  return gw_buf_steal(&b, ret_len);
}
