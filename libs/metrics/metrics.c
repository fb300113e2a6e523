#include "metrics.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define MET_NAME_MAX 128
#define MET_LABELS_MAX 256

typedef enum met_kind { MET_COUNTER, MET_GAUGE, MET_HISTOGRAM } met_kind;

struct met_counter {
    _Atomic uint64_t value;
};
struct met_gauge {
    _Atomic int64_t value;
};
struct met_histogram {
    double bounds[MET_BUCKETS_MAX];
    size_t bound_count;
    _Atomic uint64_t buckets[MET_BUCKETS_MAX + 1]; /* last = +Inf */
    _Atomic uint64_t count;
    /* Sum kept in micro-units as an integer so it can be updated atomically. */
    _Atomic int64_t sum_micros;
};

typedef struct series {
    met_kind kind;
    char name[MET_NAME_MAX];
    char labels[MET_LABELS_MAX];
    const char *help;
    union {
        struct met_counter counter;
        struct met_gauge gauge;
        struct met_histogram histogram;
    } u;
} series;

struct met_registry {
    pthread_mutex_t lock;
    series *items[MET_SERIES_MAX];
    _Atomic size_t count;
};

const double met_latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                     0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
const size_t met_latency_bound_count = sizeof(met_latency_bounds) / sizeof(double);

st_code met_registry_create(met_registry **ret_registry)
{
    met_registry *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return ST_NOMEM;
    pthread_mutex_init(&r->lock, NULL);
    *ret_registry = r;
    return ST_OK;
}

void met_registry_destroy(met_registry *registry)
{
    if (registry == NULL)
        return;
    size_t count = atomic_load(&registry->count);
    for (size_t i = 0; i < count; i++)
        free(registry->items[i]);
    pthread_mutex_destroy(&registry->lock);
    free(registry);
}

static bool valid_name(const char *name)
{
    if (name == NULL || name[0] == '\0' || strlen(name) >= MET_NAME_MAX)
        return false;
    if (!(isalpha((unsigned char)name[0]) || name[0] == '_' || name[0] == ':'))
        return false;
    for (const char *p = name; *p != '\0'; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == ':'))
            return false;
    return true;
}

static st_code find_or_add(met_registry *r, met_kind kind, const char *name, const char *help,
                           const char *labels, const double *bounds, size_t bound_count,
                           series **ret)
{
    if (r == NULL || !valid_name(name))
        return ST_INVALID;
    char clean_labels[MET_LABELS_MAX];
    if (labels != NULL && strlen(labels) >= MET_LABELS_MAX)
        return ST_LIMIT;
    log_scrub(labels != NULL ? labels : "", clean_labels, sizeof(clean_labels));
    if (kind == MET_HISTOGRAM) {
        if (bound_count == 0 || bound_count > MET_BUCKETS_MAX)
            return ST_LIMIT;
        for (size_t i = 1; i < bound_count; i++)
            if (!(bounds[i] > bounds[i - 1]))
                return ST_INVALID;
    }

    st_code status = ST_OK;
    pthread_mutex_lock(&r->lock);
    size_t count = atomic_load(&r->count);
    for (size_t i = 0; i < count; i++) {
        series *s = r->items[i];
        if (strcmp(s->name, name) != 0)
            continue;
        if (s->kind != kind) {
            status = ST_CONFLICT; /* one name, one type */
            goto done;
        }
        if (strcmp(s->labels, clean_labels) != 0)
            continue;
        if (kind == MET_HISTOGRAM &&
            (s->u.histogram.bound_count != bound_count ||
             memcmp(s->u.histogram.bounds, bounds, bound_count * sizeof(double)) != 0)) {
            status = ST_CONFLICT;
            goto done;
        }
        *ret = s;
        goto done;
    }
    if (count >= MET_SERIES_MAX) {
        status = ST_LIMIT;
        goto done;
    }
    series *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        status = ST_NOMEM;
        goto done;
    }
    s->kind = kind;
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->labels, sizeof(s->labels), "%s", clean_labels);
    s->help = help != NULL ? help : "";
    if (kind == MET_HISTOGRAM) {
        memcpy(s->u.histogram.bounds, bounds, bound_count * sizeof(double));
        s->u.histogram.bound_count = bound_count;
    }
    r->items[count] = s;
    atomic_store(&r->count, count + 1);
    *ret = s;
done:
    pthread_mutex_unlock(&r->lock);
    return status;
}

st_code met_counter_get(met_registry *registry, const char *name, const char *help,
                        const char *labels, met_counter **ret_counter)
{
    series *s = NULL;
    st_code status = find_or_add(registry, MET_COUNTER, name, help, labels, NULL, 0, &s);
    if (status == ST_OK)
        *ret_counter = &s->u.counter;
    return status;
}

st_code met_gauge_get(met_registry *registry, const char *name, const char *help,
                      const char *labels, met_gauge **ret_gauge)
{
    series *s = NULL;
    st_code status = find_or_add(registry, MET_GAUGE, name, help, labels, NULL, 0, &s);
    if (status == ST_OK)
        *ret_gauge = &s->u.gauge;
    return status;
}

st_code met_histogram_get(met_registry *registry, const char *name, const char *help,
                          const char *labels, const double *bounds, size_t bound_count,
                          met_histogram **ret_histogram)
{
    series *s = NULL;
    st_code status =
        find_or_add(registry, MET_HISTOGRAM, name, help, labels, bounds, bound_count, &s);
    if (status == ST_OK)
        *ret_histogram = &s->u.histogram;
    return status;
}

void met_counter_add(met_counter *counter, uint64_t delta)
{
    if (counter != NULL)
        atomic_fetch_add_explicit(&counter->value, delta, memory_order_relaxed);
}

void met_gauge_set(met_gauge *gauge, int64_t value)
{
    if (gauge != NULL)
        atomic_store_explicit(&gauge->value, value, memory_order_relaxed);
}

void met_gauge_add(met_gauge *gauge, int64_t delta)
{
    if (gauge != NULL)
        atomic_fetch_add_explicit(&gauge->value, delta, memory_order_relaxed);
}

void met_histogram_observe(met_histogram *h, double value)
{
    if (h == NULL || value != value) /* NaN is dropped */
        return;
    size_t i = 0;
    while (i < h->bound_count && value > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    double micros = value * 1e6;
    if (micros > 9e15)
        micros = 9e15;
    if (micros < -9e15)
        micros = -9e15;
    atomic_fetch_add_explicit(&h->sum_micros, (int64_t)micros, memory_order_relaxed);
}

uint64_t met_counter_value(const met_counter *counter)
{
    return counter != NULL ? atomic_load(&((met_counter *)counter)->value) : 0;
}

int64_t met_gauge_value(const met_gauge *gauge)
{
    return gauge != NULL ? atomic_load(&((met_gauge *)gauge)->value) : 0;
}

uint64_t met_histogram_count(const met_histogram *h)
{
    return h != NULL ? atomic_load(&((met_histogram *)h)->count) : 0;
}

/* ---- rendering ---------------------------------------------------------------------------- */

typedef struct out_buf {
    char *text;
    size_t len, cap;
    bool failed;
} out_buf;

static void out_printf(out_buf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(out_buf *o, const char *fmt, ...)
{
    if (o->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->text + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *bigger = realloc(o->text, cap);
        if (bigger == NULL) {
            o->failed = true;
            return;
        }
        o->text = bigger;
        o->cap = cap;
    }
}

static void render_labels(out_buf *o, const char *labels, const char *extra)
{
    bool has = labels[0] != '\0';
    if (!has && extra == NULL)
        return;
    out_printf(o, "{%s%s%s}", labels, has && extra != NULL ? "," : "",
               extra != NULL ? extra : "");
}

static void render_series(out_buf *o, const series *s)
{
    switch (s->kind) {
    case MET_COUNTER:
        out_printf(o, "%s", s->name);
        render_labels(o, s->labels, NULL);
        out_printf(o, " %llu\n", (unsigned long long)met_counter_value(&s->u.counter));
        break;
    case MET_GAUGE:
        out_printf(o, "%s", s->name);
        render_labels(o, s->labels, NULL);
        out_printf(o, " %lld\n", (long long)met_gauge_value(&s->u.gauge));
        break;
    case MET_HISTOGRAM: {
        const struct met_histogram *h = &s->u.histogram;
        uint64_t cumulative = 0;
        char le[64];
        for (size_t i = 0; i <= h->bound_count; i++) {
            cumulative += atomic_load(&((struct met_histogram *)h)->buckets[i]);
            if (i < h->bound_count)
                snprintf(le, sizeof(le), "le=\"%g\"", h->bounds[i]);
            else
                snprintf(le, sizeof(le), "le=\"+Inf\"");
            out_printf(o, "%s_bucket", s->name);
            render_labels(o, s->labels, le);
            out_printf(o, " %llu\n", (unsigned long long)cumulative);
        }
        out_printf(o, "%s_sum", s->name);
        render_labels(o, s->labels, NULL);
        out_printf(o, " %.6f\n",
                   (double)atomic_load(&((struct met_histogram *)h)->sum_micros) / 1e6);
        out_printf(o, "%s_count", s->name);
        render_labels(o, s->labels, NULL);
        out_printf(o, " %llu\n", (unsigned long long)met_histogram_count(h));
        break;
    }
    }
}

st_code met_render(met_registry *registry, char **ret_text, size_t *ret_len)
{
    if (registry == NULL)
        return ST_INVALID;
    out_buf o = {.text = malloc(4096), .cap = 4096};
    if (o.text == NULL)
        return ST_NOMEM;
    o.text[0] = '\0';
    static const char *const type_names[] = {"counter", "gauge", "histogram"};

    pthread_mutex_lock(&registry->lock);
    size_t count = atomic_load(&registry->count);
    bool *done = calloc(count + 1, sizeof(bool));
    if (done == NULL) {
        pthread_mutex_unlock(&registry->lock);
        free(o.text);
        return ST_NOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        if (done[i])
            continue;
        const series *first = registry->items[i];
        out_printf(&o, "# HELP %s %s\n# TYPE %s %s\n", first->name, first->help, first->name,
                   type_names[first->kind]);
        for (size_t j = i; j < count; j++) {
            if (!done[j] && strcmp(registry->items[j]->name, first->name) == 0) {
                render_series(&o, registry->items[j]);
                done[j] = true;
            }
        }
    }
    pthread_mutex_unlock(&registry->lock);
    free(done);
    if (o.failed) {
        free(o.text);
        return ST_NOMEM;
    }
    *ret_text = o.text;
    *ret_len = o.len;
    return ST_OK;
}
