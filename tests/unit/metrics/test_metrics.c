#include "testkit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

ESS_TEST(renders_prometheus_text)
{
    (void)state;
    met_registry *r = NULL;
    assert_int_equal(met_registry_create(&r), ST_OK);
    met_counter *ok = NULL, *bad = NULL, *again = NULL;
    assert_int_equal(met_counter_get(r, "ess_requests_total", "requests", "status=\"200\"", &ok), ST_OK);
    assert_int_equal(met_counter_get(r, "ess_requests_total", "requests", "status=\"401\"", &bad), ST_OK);
    assert_int_equal(met_counter_get(r, "ess_requests_total", "requests", "status=\"200\"", &again), ST_OK);
    assert_ptr_equal(ok, again);
    met_counter_add(ok, 3);
    met_counter_add(bad, 1);
    met_gauge *pending = NULL;
    assert_int_equal(met_gauge_get(r, "ess_pending", "pending acks", NULL, &pending), ST_OK);
    met_gauge_set(pending, 7);
    met_gauge_add(pending, -2);
    static const double bounds[] = {0.01, 0.1, 1};
    met_histogram *latency = NULL;
    assert_int_equal(met_histogram_get(r, "ess_latency_seconds", "latency", NULL, bounds, 3, &latency), ST_OK);
    met_histogram_observe(latency, 0.005);
    met_histogram_observe(latency, 0.05);
    met_histogram_observe(latency, 5);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(met_render(r, &text, &len), ST_OK);
    assert_int_equal(strlen(text), len);
    assert_non_null(strstr(text, "# TYPE ess_requests_total counter\n"));
    assert_non_null(strstr(text, "ess_requests_total{status=\"200\"} 3\n"));
    assert_non_null(strstr(text, "ess_requests_total{status=\"401\"} 1\n"));
    assert_non_null(strstr(text, "ess_pending 5\n"));
    assert_non_null(strstr(text, "ess_latency_seconds_bucket{le=\"0.01\"} 1\n"));
    assert_non_null(strstr(text, "ess_latency_seconds_bucket{le=\"0.1\"} 2\n"));
    assert_non_null(strstr(text, "ess_latency_seconds_bucket{le=\"1\"} 2\n"));
    assert_non_null(strstr(text, "ess_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(text, "ess_latency_seconds_count 3\n"));
    assert_non_null(strstr(text, "ess_latency_seconds_sum 5.055000\n"));
    /* One HELP/TYPE per name even with several series. */
    const char *first = strstr(text, "# HELP ess_requests_total");
    assert_null(strstr(first + 1, "# HELP ess_requests_total"));
    free(text);
    met_registry_destroy(r);
}

ESS_TEST(rejects_bad_names_and_conflicts)
{
    (void)state;
    met_registry *r = NULL;
    assert_int_equal(met_registry_create(&r), ST_OK);
    met_counter *c = NULL;
    met_gauge *g = NULL;
    assert_int_equal(met_counter_get(r, "9lives", "x", NULL, &c), ST_INVALID);
    assert_int_equal(met_counter_get(r, "has-dash", "x", NULL, &c), ST_INVALID);
    assert_int_equal(met_counter_get(r, "same_name", "x", NULL, &c), ST_OK);
    assert_int_equal(met_gauge_get(r, "same_name", "x", NULL, &g), ST_CONFLICT);
    static const double up[] = {1, 2}, down[] = {2, 1};
    met_histogram *h = NULL;
    assert_int_equal(met_histogram_get(r, "h", "x", NULL, down, 2, &h), ST_INVALID);
    assert_int_equal(met_histogram_get(r, "h", "x", NULL, up, 2, &h), ST_OK);
    assert_int_equal(met_histogram_get(r, "h", "x", NULL, up, 1, &h), ST_CONFLICT);
    met_registry_destroy(r);
}

ESS_TEST(series_limit_is_enforced)
{
    (void)state;
    met_registry *r = NULL;
    assert_int_equal(met_registry_create(&r), ST_OK);
    met_counter *c = NULL;
    char labels[64];
    for (int i = 0; i < MET_SERIES_MAX; i++) {
        snprintf(labels, sizeof(labels), "n=\"%d\"", i);
        assert_int_equal(met_counter_get(r, "many", "x", labels, &c), ST_OK);
    }
    assert_int_equal(met_counter_get(r, "many", "x", "n=\"overflow\"", &c), ST_LIMIT);
    met_registry_destroy(r);
}

typedef struct hammer_args {
    met_counter *counter;
    met_histogram *histogram;
} hammer_args;

static void *hammer(void *arg)
{
    hammer_args *a = arg;
    for (int i = 0; i < 100000; i++) {
        met_counter_add(a->counter, 1);
        met_histogram_observe(a->histogram, 0.001);
    }
    return NULL;
}

ESS_TEST(updates_are_thread_safe)
{
    (void)state;
    met_registry *r = NULL;
    assert_int_equal(met_registry_create(&r), ST_OK);
    hammer_args a = {0};
    assert_int_equal(met_counter_get(r, "hits_total", "x", NULL, &a.counter), ST_OK);
    assert_int_equal(met_histogram_get(r, "lat", "x", NULL, met_latency_bounds,
                                       met_latency_bound_count, &a.histogram), ST_OK);
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&threads[i], NULL, hammer, &a);
    for (int i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    assert_int_equal(met_counter_value(a.counter), 400000);
    assert_int_equal(met_histogram_count(a.histogram), 400000);
    met_registry_destroy(r);
}

ESS_TEST_MAIN(NULL, NULL)
