/*
 * prom_check.h — a strict checker of the Prometheus text exposition format 0.0.4 for the
 * gateway tests, standing in for `promtool check metrics` (Debian's prometheus package is a
 * ~96 MB install with a server and web assets; too much for one check).
 *
 * Checked: every line is a `# HELP name text`, `# TYPE name counter|gauge|histogram|summary|
 * untyped`, another comment, or a sample `name{l="v",...} value`; names and label names are
 * well-formed, label values use only the escapes \\ \" \n, no label repeats; values parse as
 * floats (or +Inf/-Inf/NaN); TYPE and HELP appear at most once per family and TYPE before the
 * family's first sample; a family's samples are contiguous; no series repeats; counters are
 * named *_total and non-negative; histograms have _bucket (with le), _sum and _count, buckets
 * non-decreasing within a series, a le="+Inf" bucket equal to _count; the text ends with a
 * newline.
 */
#ifndef GW_PROM_CHECK_H
#define GW_PROM_CHECK_H

#include <stdbool.h>
#include <stddef.h>

/* True when text is valid; otherwise false with err naming the line and the problem. */
bool prom_check(const char *text, char *err, size_t errlen);

/* The value of the sample whose name and label set (as written, e.g. `{a="b",c="d"}` or "")
 * match exactly; false when absent. */
bool prom_value(const char *text, const char *name, const char *labels, double *ret);

#endif
