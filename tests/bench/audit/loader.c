/* bench_audit_loader: publishes LINE webhook events to LINE_IN (async batches, unique
 * msg-ids, Thai texts with phone numbers, 1000 users in turn), then watches audit_log fill and
 * prints the sustained rate: rows/s between 10 % and 90 % of the rows (the middle of the
 * drain, without start-up and tail), and overall.
 *
 *   bench_audit_loader --nats URL --pg DSN --events N [--publish-only | --watch-only]
 *                      [--expect N]
 *
 * Not a test: it prints figures and exits 0 when every row arrived within the timeout. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "db.h"

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&t, NULL);
}

static int publish(const char *url, long events)
{
    bus *b = NULL;
    bus_registry *registry = NULL;
    st_error err = {0};
    bus_options options = {.url = url, .client_name = "bench-audit-loader"};
    if (bus_connect(&options, &b, &err) != ST_OK || bus_registry_builtin(&registry, &err) != ST_OK ||
        bus_ensure_stream(b, bus_registry_stream(registry, "LINE_IN"), &err) != ST_OK) {
        fprintf(stderr, "loader: %s\n", err.message);
        return 1;
    }
    char run[32];
    snprintf(run, sizeof(run), "%lx", (long)time(NULL));
    int64_t started = now_ms();
    long done = 0;
    while (done < events) {
        bus_batch *batch = NULL;
        if (bus_batch_create(b, &batch, &err) != ST_OK)
            break;
        long n = events - done < 1000 ? events - done : 1000;
        for (long i = 0; i < n; i++) {
            long k = done + i;
            char user[40], subject[64], id[64], payload[700];
            snprintf(user, sizeof(user), "U%032lx", 0xbe000000L + k % 1000);
            snprintf(subject, sizeof(subject), "line.in.user.%s", user);
            snprintf(id, sizeof(id), "bench-%s-%ld", run, k);
            snprintf(payload, sizeof(payload),
                     "{\"type\":\"message\",\"message\":{\"type\":\"text\",\"id\":\"%ld\","
                     "\"quoteToken\":\"q%ld\",\"text\":\"ช่วยด้วย มีคนข่มขู่ โทร 08%08ld ด่วน\"},"
                     "\"webhookEventId\":\"%s\",\"deliveryContext\":{\"isRedelivery\":false},"
                     "\"timestamp\":%" PRId64 ",\"source\":{\"type\":\"user\",\"userId\":\"%s\"},"
                     "\"replyToken\":\"%032lx\",\"mode\":\"active\"}",
                     480000000000L + k, k, k % 100000000, id, (int64_t)1764493200000 + k, user,
                     (long)k * 7919);
            if (bus_batch_add(batch, subject, payload, strlen(payload), id, &err) != ST_OK)
                break;
        }
        bus_batch_result result = {0};
        if (bus_batch_wait(batch, 30000, &result, &err) != ST_OK) {
            fprintf(stderr, "loader: batch: %s\n", err.message);
            bus_batch_destroy(batch);
            break;
        }
        bus_batch_destroy(batch);
        done += n;
    }
    int64_t took = now_ms() - started;
    printf("published    events=%ld in %.2fs (%.0f events/s into LINE_IN)\n", done,
           (double)took / 1000, took > 0 ? (double)done * 1000 / (double)took : 0);
    bus_registry_destroy(registry);
    bus_destroy(b);
    return done == events ? 0 : 1;
}

static long count_rows(db *d)
{
    db_result *r = NULL;
    long rows = -1;
    if (db_exec(d, "SELECT count(*) FROM audit_log", 0, NULL, &r, NULL) == ST_OK)
        rows = strtol(db_result_value(r, 0, 0), NULL, 10);
    db_result_destroy(r);
    return rows;
}

static int watch(const char *dsn, long expect, int64_t timeout_ms)
{
    db *d = NULL;
    st_error err = {0};
    db_options options = {.dsn = dsn, .application_name = "bench-audit-watch"};
    if (db_connect(&options, &d, &err) != ST_OK) {
        fprintf(stderr, "loader: %s\n", err.message);
        return 1;
    }
    long low = expect / 10, high = expect - expect / 10;
    int64_t started = now_ms(), first = 0, at_low = 0, at_high = 0, at_end = 0;
    long rows = 0;
    while (now_ms() - started < timeout_ms) {
        rows = count_rows(d);
        int64_t t = now_ms();
        if (rows > 0 && first == 0)
            first = t;
        if (rows >= low && at_low == 0)
            at_low = t;
        if (rows >= high && at_high == 0)
            at_high = t;
        if (rows >= expect) {
            at_end = t;
            break;
        }
        sleep_ms(20);
    }
    db_destroy(d);
    if (at_end == 0) {
        printf("audit        only %ld of %ld rows within %" PRId64 " s\n", rows, expect,
               timeout_ms / 1000);
        return 1;
    }
    double sustained = at_high > at_low ? (double)(high - low) * 1000 / (double)(at_high - at_low)
                                        : 0;
    double overall = at_end > first ? (double)expect * 1000 / (double)(at_end - first) : 0;
    printf("audit        rows=%ld sustained=%.0f rows/s (10%%..90%%) overall=%.0f rows/s "
           "drain=%.2fs\n",
           expect, sustained, overall, (double)(at_end - first) / 1000);
    return 0;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *dsn = NULL;
    long events = 20000, expect = 0;
    bool publish_only = false, watch_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--nats") == 0 && i + 1 < argc)
            url = argv[++i];
        else if (strcmp(argv[i], "--pg") == 0 && i + 1 < argc)
            dsn = argv[++i];
        else if (strcmp(argv[i], "--events") == 0 && i + 1 < argc)
            events = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--expect") == 0 && i + 1 < argc)
            expect = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--publish-only") == 0)
            publish_only = true;
        else if (strcmp(argv[i], "--watch-only") == 0)
            watch_only = true;
        else {
            fprintf(stderr, "usage: bench_audit_loader --nats URL --pg DSN --events N "
                            "[--publish-only | --watch-only] [--expect N]\n");
            return 2;
        }
    }
    if (events < 1 || events > 10000000 || (!watch_only && url == NULL) ||
        (!publish_only && dsn == NULL)) {
        fprintf(stderr, "loader: --nats, --pg and --events 1..10000000 are needed\n");
        return 2;
    }
    if (!watch_only && publish(url, events) != 0)
        return 1;
    if (publish_only)
        return 0;
    return watch(dsn, expect > 0 ? expect : events, 600000);
}
