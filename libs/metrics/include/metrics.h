/* metrics: counters, gauges and histograms rendered in Prometheus text format 0.0.4.
 *
 * A registry owns its series. A series is identified by name + label set; asking twice for
 * the same one returns the same handle, so call sites can look handles up once at start and
 * update them lock-free (relaxed atomics) on hot paths. Label values must never carry
 * personal data (they are scrubbed with log_scrub as a second line of defence).
 *
 * Limits: MET_SERIES_MAX series per registry (ST_LIMIT beyond), MET_BUCKETS_MAX buckets per
 * histogram. Handles stay valid until met_registry_destroy. */
#ifndef ESS_METRICS_H
#define ESS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define MET_SERIES_MAX 1024
#define MET_BUCKETS_MAX 24

typedef struct met_registry met_registry;
typedef struct met_counter met_counter;
typedef struct met_gauge met_gauge;
typedef struct met_histogram met_histogram;

/* Creates an empty registry; caller owns it. */
st_code met_registry_create(met_registry **ret_registry);
void met_registry_destroy(met_registry *registry); /* accepts NULL */

/* labels: NULL or a Prometheus label list without braces: `status="200",type="message"`.
 * name must match [a-zA-Z_:][a-zA-Z0-9_:]*. help is borrowed static text. Thread-safe.
 * The returned handle is borrowed from the registry. */
st_code met_counter_get(met_registry *registry, const char *name, const char *help,
                        const char *labels, met_counter **ret_counter);
st_code met_gauge_get(met_registry *registry, const char *name, const char *help,
                      const char *labels, met_gauge **ret_gauge);
/* bounds: strictly increasing upper bounds (le), count <= MET_BUCKETS_MAX; +Inf is implied.
 * A second get of the same series must pass the same bounds (else ST_CONFLICT). */
st_code met_histogram_get(met_registry *registry, const char *name, const char *help,
                          const char *labels, const double *bounds, size_t bound_count,
                          met_histogram **ret_histogram);

/* Hot-path updates: lock-free, never fail; a NULL handle is ignored. */
void met_counter_add(met_counter *counter, uint64_t delta);
void met_gauge_set(met_gauge *gauge, int64_t value);
void met_gauge_add(met_gauge *gauge, int64_t delta);
void met_histogram_observe(met_histogram *histogram, double value);

/* Reads back (tests, readiness logic). */
uint64_t met_counter_value(const met_counter *counter);
int64_t met_gauge_value(const met_gauge *gauge);
uint64_t met_histogram_count(const met_histogram *histogram);

/* Renders the whole registry (series grouped by name, one # HELP/# TYPE per name).
 * *ret_text is heap (caller frees), *ret_len its length. */
st_code met_render(met_registry *registry, char **ret_text, size_t *ret_len);

/* Latency buckets in seconds shared by services: 0.5 ms .. 10 s. */
extern const double met_latency_bounds[];
extern const size_t met_latency_bound_count;

#endif
