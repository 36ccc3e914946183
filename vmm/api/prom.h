/*
 * prom.h - GET /metrics in the Prometheus text exposition format (version
 * 0.0.4), and the choice between it and JSON (docs/api.md#prometheus).
 *
 * The writer emits a family's "# HELP" and "# TYPE" lines before its first
 * sample (a family without samples is left out), escapes label values and
 * help texts as the format asks and replaces bytes that are not UTF-8 by
 * U+FFFD, so any path or name a user gave comes out as a valid exposition.
 */
#ifndef MICROVM_PROM_H
#define MICROVM_PROM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vmm/api/control.h"

/* The media type of the answer in this format. */
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum metrics_format { METRICS_JSON, METRICS_PROMETHEUS };

/*
 * Which format a GET /metrics asks for. query (the URL's, without '?', ""
 * when none) may hold format=json or format=prometheus, which decides; any
 * other parameter or value is -EINVAL with the reason in why[]. Otherwise
 * accept (the Accept header's value, "" when none) decides by its q-values:
 * text/plain and application/openmetrics-text (both answered as text
 * 0.0.4, which Prometheus reads) against application/json, a specific media
 * range before a wildcard one; JSON when they tie (as with no Accept or
 * "*" "/" "*"). Returns 0 with *out.
 */
int metrics_format(const char *query, const char *accept, enum metrics_format *out, char *why, size_t why_len);

/* A writer of one exposition: a growing buffer behind a FILE. */
struct prom {
	FILE *f;
	char *buf;
	size_t len;
	const char *name, *type, *help; /* the family being written */
	bool head_done;                 /* its HELP and TYPE lines are out */
};

/* Start an exposition. Returns 0 or -ENOMEM. */
int prom_open(struct prom *p);

/* Start a family: name (the full metric name), type ("counter", "gauge"), help text (static strings). */
void prom_family(struct prom *p, const char *name, const char *type, const char *help);

/*
 * One sample of the current family: labels is NULL or a list of name, value
 * pairs ended by NULL (names are [a-z_]+, values any bytes); an integer or
 * a floating-point value.
 */
void prom_u64(struct prom *p, const char *const *labels, uint64_t v);
void prom_double(struct prom *p, const char *const *labels, double v);

/* End the exposition: the malloc'd text (NUL-terminated), or NULL when out of memory. */
char *prom_close(struct prom *p);

/* Write s escaped as a label value (escape_quote) or as a help text into f; invalid UTF-8 becomes U+FFFD. */
void prom_escape(FILE *f, const char *s, bool escape_quote);

/* The exposition of the VM's metrics (what GET /metrics says in JSON), malloc'd; NULL when out of memory. */
char *prom_metrics_body(struct control *ctl);

#endif
