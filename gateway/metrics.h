/*
 * metrics.h — the gateway's Prometheus metrics: per-tenant request counts by HTTP status,
 * prompt/completion tokens, time-to-first-token and request latency histograms, rate-limit
 * rejections by limit, and in-flight requests. Rendered in the text exposition format 0.0.4.
 * Thread-safe (one mutex; updates are a few additions).
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct gw_metrics;

int gw_metrics_create(struct gw_metrics **ret);
void gw_metrics_destroy(struct gw_metrics *m);

/* One finished request. ttft_s / latency_s < 0 mean "not applicable" (not observed). */
void gw_metrics_request(struct gw_metrics *m, const char *tenant, int status,
                        uint64_t prompt_tokens, uint64_t completion_tokens, double ttft_s,
                        double latency_s);
void gw_metrics_rate_limited(struct gw_metrics *m, const char *tenant, const char *limit);
void gw_metrics_in_flight(struct gw_metrics *m, const char *tenant, int delta);

struct gw_buf;
/* Appends v as a label value, escaped per the exposition format (\\, \", \n). */
int gw_metrics_label(struct gw_buf *b, const char *v);

/* Renders the exposition text; the caller frees it. NULL on allocation failure. */
char *gw_metrics_render(struct gw_metrics *m, size_t *ret_len);

#endif
