/* audit_service: pollers, the batching writer and housekeeping of ess-audit (see
 * audit_service.h for the shape and README.md for the guarantees). */
#include "audit_service.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit_queue.h"
#include "audit_record.h"
#include "audit_redact.h"
#include "audit_retention.h"
#include "audit_store.h"
#include "vault.h"

#define STREAM_COUNT 4
#define FETCH_MAX 512
#define POLL_WAIT_MS 500
#define PROGRESS_AFTER_MS 10000 /* tell JetStream "still working" on items held this long */
#define PROGRESS_SWEEP_MS 5000
#define RETRY_MIN_MS 200
#define RETRY_MAX_MS 5000
#define GAPS_MAX 16

static const struct {
    const char *durable;
    const char *stream;
} audited[STREAM_COUNT] = {
    {"audit-line-in", "LINE_IN"},
    {"audit-ess", "ESS"},
    {"audit-line-out", "LINE_OUT"},
    {"audit-dlq", "DLQ"},
};

typedef struct poller {
    audit_service *owner;
    int index;
    bus_consumer_def def; /* the registry's, durable name prefixed when configured */
    bus_consumer *consumer; /* destroyed by the stop hook, after every hold is settled */
    pthread_t thread;
    bool started;
    atomic_bool bound;
} poller;

struct audit_service {
    svc *s;
    audit_config *config;
    vault_keys keys;
    poller pollers[STREAM_COUNT];

    pthread_mutex_t lock; /* guards queue and the wake-ups below */
    pthread_cond_t writer_wake;
    pthread_cond_t idle_wake; /* pollers waiting for room, housekeeping */
    audit_queue *queue;
    atomic_bool pollers_stop;
    atomic_bool writer_stop;
    atomic_bool housekeeping_stop;

    pthread_t writer;
    bool writer_started;
    atomic_bool writer_connected;
    atomic_bool writer_failing;
    pthread_t housekeeper;
    bool housekeeper_started;

    met_counter *rows, *duplicates, *batches_ok, *batches_failed, *gaps, *erased;
    met_gauge *pending, *lag_ms, *head_seq;
    met_histogram *batch_seconds;
};

/* ---- time -------------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int64_t wall_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Waits on cond (lock held) until deadline_ms (monotonic). */
static void wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t deadline_ms)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t wait = deadline_ms - now_ms();
    if (wait <= 0)
        return;
    if (wait > 60000)
        wait = 60000;
    int64_t ns = now.tv_nsec + (wait % 1000) * 1000000;
    struct timespec until = {.tv_sec = now.tv_sec + wait / 1000 + ns / 1000000000,
                             .tv_nsec = ns % 1000000000};
    pthread_cond_timedwait(cond, lock, &until);
}

static void pause_ms(audit_service *a, atomic_bool *stop, int64_t ms)
{
    pthread_mutex_lock(&a->lock);
    if (!atomic_load(stop))
        wait_until(&a->idle_wake, &a->lock, now_ms() + ms);
    pthread_mutex_unlock(&a->lock);
}

/* ---- receiving: hold, redact, queue ------------------------------------------------------ */

static st_code prepare_item(audit_service *a, int index, const bus_delivery *delivery,
                            audit_item *item, st_error *err)
{
    item->stream = index;
    item->stream_seq = delivery->stream_seq;
    item->stored_ns = delivery->timestamp_ns;
    item->arrived_ms = now_ms();
    item->progress_ms = item->arrived_ms;
    const char *stream = audited[index].stream;
    if (delivery->msg_id != NULL && delivery->msg_id[0] != '\0')
        snprintf(item->msg_id, sizeof(item->msg_id), "%s/%s", stream, delivery->msg_id);
    else
        snprintf(item->msg_id, sizeof(item->msg_id), "%s/#%" PRIu64 "@%" PRId64, stream,
                 delivery->stream_seq, delivery->timestamp_ns);
    audit_sha256(delivery->data, delivery->len, item->digest);
    char subject[BUS_SUBJECT_MAX + 64];
    audit_redact_subject(&a->keys, delivery->subject, subject, sizeof(subject));
    item->subject = strdup(subject);
    if (item->subject == NULL)
        return st_fail(err, ST_NOMEM, "audit: out of memory");
    return audit_redact_payload(&a->keys, delivery->data, delivery->len, &item->payload,
                                &item->payload_len, err);
}

static void on_delivery(const bus_delivery *delivery, bus_outcome *outcome, void *closure)
{
    poller *p = closure;
    audit_service *a = p->owner;
    audit_item *item = NULL;
    bus_held *held = NULL;
    st_error err = {0};
    st_code code = audit_item_create(NULL, &item, &err);
    if (code == ST_OK)
        code = prepare_item(a, p->index, delivery, item, &err);
    if (code == ST_OK)
        code = bus_hold(delivery, &held, &err);
    if (code != ST_OK) {
        audit_item_destroy(item);
        log_event(LOG_ERROR, "audit.prepare", "cannot prepare an audit record; retrying",
                  LOG_STR("stream", audited[p->index].stream),
                  LOG_INT("stream_seq", delivery->stream_seq), LOG_ERR(&err));
        outcome->verdict = BUS_RETRY;
        outcome->retry_delay_ms = 1000;
        snprintf(outcome->reason, sizeof(outcome->reason), "audit: cannot prepare the record");
        return;
    }
    item->holds = malloc(sizeof(*item->holds));
    if (item->holds != NULL) {
        item->holds[0] = held;
        item->hold_count = item->hold_cap = 1;
    }
    pthread_mutex_lock(&a->lock);
    code = item->holds != NULL ? audit_queue_add(a->queue, item, NULL, &err) : ST_NOMEM;
    size_t count = audit_queue_count(a->queue, -1);
    if (count >= (size_t)a->config->batch)
        pthread_cond_signal(&a->writer_wake);
    met_gauge_set(a->pending, (int64_t)count);
    pthread_mutex_unlock(&a->lock);
    if (code != ST_OK) {
        audit_item_destroy(item);
        bus_outcome retry = {.verdict = BUS_RETRY, .retry_delay_ms = 1000};
        snprintf(retry.reason, sizeof(retry.reason), "audit: out of memory");
        bus_settle(held, &retry);
    }
    outcome->verdict = BUS_DEFER;
}

/* How many more messages this stream may take now. */
static int room(poller *p)
{
    audit_service *a = p->owner;
    pthread_mutex_lock(&a->lock);
    int64_t queued = (int64_t)audit_queue_count(a->queue, p->index);
    bool blocked = audit_queue_blocked(a->queue, p->index);
    pthread_mutex_unlock(&a->lock);
    int64_t free_slots = a->config->max_pending - queued;
    /* A stream waiting for redeliveries must still fetch them: JetStream's max_ack_pending
     * bounds it then. */
    if (blocked && free_slots < 64)
        free_slots = 64;
    if (free_slots > FETCH_MAX)
        free_slots = FETCH_MAX;
    return free_slots > 0 ? (int)free_slots : 0;
}

static st_code bind_consumer(poller *p, st_error *err)
{
    audit_service *a = p->owner;
    bus *b = svc_bus(a->s);
    const bus_stream_def *stream = bus_registry_stream(svc_registry(a->s), p->def.stream);
    if (stream == NULL)
        return st_fail(err, ST_INVALID, "stream %s is not in the registry", p->def.stream);
    st_code code = bus_ensure_stream(b, stream, err);
    if (code == ST_OK)
        code = bus_ensure_consumer(b, &p->def, err);
    if (code == ST_OK)
        code = bus_consumer_create(b, &p->def, "audit", on_delivery, p, &p->consumer, err);
    return code;
}

static void *poller_main(void *arg)
{
    poller *p = arg;
    audit_service *a = p->owner;
    st_error err = {0};
    int64_t backoff = 200;
    int attempt = 0;
    while (!atomic_load(&a->pollers_stop)) {
        if (bind_consumer(p, &err) == ST_OK)
            break;
        p->consumer = NULL;
        if (attempt++ % 20 == 0)
            log_event(LOG_WARN, "audit.bind", "cannot bind the audit consumer yet, retrying",
                      LOG_STR("consumer", p->def.durable), LOG_ERR(&err));
        pause_ms(a, &a->pollers_stop, backoff);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
    if (p->consumer == NULL)
        return NULL;
    atomic_store(&p->bound, true);
    log_event(LOG_INFO, "audit.bound", "auditing stream", LOG_STR("stream", p->def.stream),
              LOG_STR("consumer", p->def.durable));
    int failures = 0;
    while (!atomic_load(&a->pollers_stop)) {
        int take = room(p);
        if (take == 0) {
            pause_ms(a, &a->pollers_stop, 20);
            continue;
        }
        size_t handled = 0;
        if (bus_consumer_poll(p->consumer, take, POLL_WAIT_MS, &handled, &err) == ST_OK) {
            failures = 0;
            continue;
        }
        if (failures++ % 20 == 0)
            log_event(LOG_WARN, "audit.poll", "cannot fetch messages, retrying",
                      LOG_STR("consumer", p->def.durable), LOG_ERR(&err));
        /* The durable may have been removed on the server: declare it again. */
        if (failures % 10 == 0)
            bus_ensure_consumer(svc_bus(a->s), &p->def, NULL);
        pause_ms(a, &a->pollers_stop, 250);
    }
    return NULL;
}

/* ---- writing ----------------------------------------------------------------------------- */

static void settle_items(audit_item **items, size_t count, bus_verdict verdict)
{
    bus_outcome outcome = {.verdict = verdict};
    if (verdict == BUS_RETRY)
        snprintf(outcome.reason, sizeof(outcome.reason), "audit: stopping before writing it");
    for (size_t i = 0; i < count; i++) {
        for (size_t h = 0; h < items[i]->hold_count; h++)
            bus_settle(items[i]->holds[h], &outcome);
        items[i]->hold_count = 0;
        audit_item_destroy(items[i]);
    }
}

static st_code connect_writer_db(audit_service *a, const char *dsn, const char *application,
                                 db **ret_db, atomic_bool *stop)
{
    st_error err = {0};
    int64_t backoff = 200;
    int attempt = 0;
    while (!atomic_load(stop)) {
        db_options options = {.dsn = dsn, .application_name = application,
                              .statement_timeout_ms = 60000};
        if (db_connect(&options, ret_db, &err) == ST_OK)
            return ST_OK;
        if (attempt++ % 20 == 0)
            log_event(LOG_WARN, "audit.db", "PostgreSQL not reachable yet, retrying",
                      LOG_STR("connection", application), LOG_ERR(&err));
        pause_ms(a, stop, backoff);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
    return ST_UNAVAILABLE;
}

/* Where each stream's rows stopped (the queue's positions), from the log itself. */
static st_code load_positions(audit_service *a, db *d, st_error *err)
{
    uint64_t positions[STREAM_COUNT];
    for (int i = 0; i < STREAM_COUNT; i++) {
        st_code code = audit_store_stream_position(d, audited[i].stream, &positions[i], err);
        if (code != ST_OK)
            return code;
    }
    pthread_mutex_lock(&a->lock);
    for (int i = 0; i < STREAM_COUNT; i++)
        audit_queue_set_position(a->queue, i, positions[i]);
    pthread_mutex_unlock(&a->lock);
    return ST_OK;
}

typedef struct progress_sweep {
    int64_t now;
    size_t signalled;
} progress_sweep;

static void signal_progress(audit_item *item, void *closure)
{
    progress_sweep *sweep = closure;
    if (sweep->now - item->progress_ms < PROGRESS_AFTER_MS)
        return;
    for (size_t h = 0; h < item->hold_count; h++)
        bus_held_in_progress(item->holds[h], NULL);
    item->progress_ms = sweep->now;
    sweep->signalled++;
}

static void update_gauges(audit_service *a)
{
    int64_t oldest = audit_queue_oldest_stored_ns(a->queue);
    met_gauge_set(a->lag_ms, oldest > 0 ? (wall_ns() - oldest) / 1000000 : 0);
    met_gauge_set(a->pending, (int64_t)audit_queue_count(a->queue, -1));
}

/* Writes one batch of selected items; on success settles and frees them. Lock NOT held. */
static st_code write_batch(audit_service *a, db *d, audit_item **items, size_t count,
                           const audit_gap *gaps, size_t gap_count, st_error *err)
{
    audit_entry *entries = calloc(count, sizeof(*entries));
    if (entries == NULL)
        return st_fail(err, ST_NOMEM, "audit: out of memory");
    for (size_t i = 0; i < count; i++) {
        audit_item *item = items[i];
        entries[i] = (audit_entry){.stream = audited[item->stream].stream,
                                   .stream_seq = item->stream_seq,
                                   .subject = item->subject,
                                   .msg_id = item->msg_id,
                                   .payload = item->payload,
                                   .payload_len = item->payload_len};
        memcpy(entries[i].digest, item->digest, AUDIT_HASH_BYTES);
    }
    size_t appended = 0;
    audit_head head = {0};
    int64_t started = now_ms();
    st_code code = audit_store_append_tx(d, entries, count, &appended, &head, err);
    free(entries);

    audit_item *done[AUDIT_APPEND_MAX];
    size_t done_count = 0, deliveries = 0;
    pthread_mutex_lock(&a->lock);
    if (code == ST_OK)
        audit_queue_commit(a->queue, done, AUDIT_APPEND_MAX, &done_count);
    else
        audit_queue_release(a->queue);
    update_gauges(a);
    pthread_cond_broadcast(&a->idle_wake); /* room for the pollers */
    pthread_mutex_unlock(&a->lock);
    if (code != ST_OK) {
        met_counter_add(a->batches_failed, 1);
        return code;
    }
    met_histogram_observe(a->batch_seconds, (double)(now_ms() - started) / 1000.0);
    met_counter_add(a->batches_ok, 1);
    met_counter_add(a->rows, appended);
    met_gauge_set(a->head_seq, head.seq);
    for (size_t i = 0; i < done_count; i++)
        deliveries += done[i]->hold_count;
    met_counter_add(a->duplicates, deliveries > appended ? deliveries - appended : 0);
    for (size_t g = 0; g < gap_count; g++) {
        met_counter_add(a->gaps, 1);
        log_event(LOG_WARN, "audit.gap",
                  "stream messages never arrived within ESS_AUDIT_GAP_WAIT (expired or "
                  "deleted from the stream); the log continues after them",
                  LOG_STR("stream", audited[gaps[g].stream].stream),
                  LOG_INT("first_missing", (int64_t)gaps[g].first_missing),
                  LOG_INT("last_missing", (int64_t)gaps[g].last_missing));
    }
    settle_items(done, done_count, BUS_DONE);
    return ST_OK;
}

/* Writes what may be written until nothing eligible is left or the deadline passes. */
static void final_flush(audit_service *a, db *d, int64_t deadline)
{
    st_error err = {0};
    while (d != NULL && now_ms() < deadline) {
        audit_item *items[AUDIT_APPEND_MAX];
        audit_gap gaps[GAPS_MAX];
        size_t count = 0, gap_count = 0;
        int64_t blocked_until = INT64_MAX;
        pthread_mutex_lock(&a->lock);
        audit_queue_select(a->queue, now_ms(), (size_t)a->config->batch, items, &count, gaps,
                           GAPS_MAX, &gap_count, &blocked_until);
        pthread_mutex_unlock(&a->lock);
        if (count == 0)
            break;
        if (write_batch(a, d, items, count, gaps, gap_count, &err) != ST_OK) {
            log_event(LOG_WARN, "audit.write", "cannot write the last batch before stopping",
                      LOG_ERR(&err));
            break;
        }
    }
    /* What is left goes back to JetStream, to be written by the next run. */
    size_t left = 0;
    for (;;) {
        audit_item *items[AUDIT_APPEND_MAX];
        size_t count = 0;
        pthread_mutex_lock(&a->lock);
        audit_queue_take_all(a->queue, items, AUDIT_APPEND_MAX, &count);
        pthread_mutex_unlock(&a->lock);
        if (count == 0)
            break;
        left += count;
        settle_items(items, count, BUS_RETRY);
    }
    if (left > 0)
        log_event(LOG_INFO, "audit.drain", "returned unwritten messages to JetStream",
                  LOG_INT("messages", (int64_t)left));
}

static void *writer_main(void *arg)
{
    audit_service *a = arg;
    db *d = NULL;
    st_error err = {0};
    int64_t retry_at = 0, backoff = RETRY_MIN_MS, next_sweep = now_ms() + PROGRESS_SWEEP_MS;
    int failures = 0;

    if (connect_writer_db(a, svc_common(a->s)->pg_dsn, "ess-audit-writer", &d,
                          &a->writer_stop) != ST_OK)
        goto stop;
    while (!atomic_load(&a->writer_stop) && load_positions(a, d, &err) != ST_OK) {
        log_event(LOG_WARN, "audit.db", "cannot read the log's positions, retrying",
                  LOG_ERR(&err));
        pause_ms(a, &a->writer_stop, 1000);
    }
    atomic_store(&a->writer_connected, true);

    while (!atomic_load(&a->writer_stop)) {
        audit_item *items[AUDIT_APPEND_MAX];
        audit_gap gaps[GAPS_MAX];
        size_t count = 0, gap_count = 0;
        int64_t blocked_until = INT64_MAX;

        pthread_mutex_lock(&a->lock);
        int64_t now = now_ms();
        if (now >= next_sweep) {
            progress_sweep sweep = {.now = now};
            audit_queue_each(a->queue, signal_progress, &sweep);
            next_sweep = now + PROGRESS_SWEEP_MS;
        }
        size_t queued = audit_queue_count(a->queue, -1);
        int64_t oldest = audit_queue_oldest_arrived_ms(a->queue);
        bool full = queued >= (size_t)a->config->batch;
        bool due = queued > 0 && now - oldest >= a->config->flush_ms;
        if ((full || due) && now >= retry_at)
            audit_queue_select(a->queue, now, (size_t)a->config->batch, items, &count, gaps,
                               GAPS_MAX, &gap_count, &blocked_until);
        update_gauges(a);
        if (count == 0) {
            int64_t deadline = next_sweep;
            if (queued > 0 && oldest + a->config->flush_ms > now &&
                oldest + a->config->flush_ms < deadline)
                deadline = oldest + a->config->flush_ms;
            if (retry_at > now && retry_at < deadline)
                deadline = retry_at;
            if (blocked_until < deadline)
                deadline = blocked_until;
            /* Everything queued waits behind a gap: look again at the flush pace, so that
             * other streams' new messages do not wait for it. */
            if ((full || due) && now + a->config->flush_ms < deadline)
                deadline = now + a->config->flush_ms;
            if (!atomic_load(&a->writer_stop))
                wait_until(&a->writer_wake, &a->lock, deadline);
            pthread_mutex_unlock(&a->lock);
            continue;
        }
        pthread_mutex_unlock(&a->lock);

        if (write_batch(a, d, items, count, gaps, gap_count, &err) == ST_OK) {
            if (failures > 0)
                log_event(LOG_INFO, "audit.write", "writing the audit log again",
                          LOG_INT("failed_attempts", failures));
            failures = 0;
            backoff = RETRY_MIN_MS;
            atomic_store(&a->writer_failing, false);
            continue;
        }
        /* Keep the batch (same order) and try again: never nak, so stream order holds. */
        if (failures++ % 10 == 0)
            log_event(st_is_transient(err.code) ? LOG_WARN : LOG_ERROR, "audit.write",
                      "cannot write an audit batch; retrying", LOG_INT("rows", (int64_t)count),
                      LOG_ERR(&err));
        atomic_store(&a->writer_failing, true);
        retry_at = now_ms() + backoff;
        backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2;
    }

stop:
    final_flush(a, d, now_ms() + svc_common(a->s)->drain_timeout_ms / 2);
    db_destroy(d);
    return NULL;
}

/* ---- housekeeping: chain head, retention --------------------------------------------------- */

static void write_head_file(const char *path, const audit_head *head, const char *hash_hex)
{
    char at[AUDIT_TIME_TEXT];
    audit_time_now(at);
    char line[256];
    int n = snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"seq\":%" PRId64 ",\"hash\":\"%s\"}\n",
                     at, head->seq, hash_hex);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    bool ok = fd >= 0 && write(fd, line, (size_t)n) == n && fsync(fd) == 0;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    if (!ok) {
        st_error err;
        st_fail(&err, ST_IO, "cannot append to ESS_AUDIT_HEAD_FILE: %s", strerror(saved));
        log_event(LOG_WARN, "audit.head_file", "cannot record the chain head in its file",
                  LOG_ERR(&err));
    }
}

static void log_head(audit_service *a, db *d)
{
    audit_head head = {0};
    st_error err = {0};
    if (audit_store_head(d, &head, &err) != ST_OK) {
        log_event(LOG_WARN, "audit.head", "cannot read the chain head", LOG_ERR(&err));
        return;
    }
    char hash_hex[AUDIT_HASH_HEX];
    audit_hash_hex(head.hash, hash_hex);
    met_gauge_set(a->head_seq, head.seq);
    log_event(LOG_INFO, "audit.head", "audit chain head", LOG_INT("seq", head.seq),
              LOG_STR("hash", hash_hex));
    if (a->config->head_file != NULL && a->config->head_file[0] != '\0')
        write_head_file(a->config->head_file, &head, hash_hex);
}

static void run_retention(audit_service *a)
{
    const char *dsn = a->config->retention_pg_dsn != NULL && a->config->retention_pg_dsn[0]
                          ? a->config->retention_pg_dsn
                          : svc_common(a->s)->pg_dsn;
    db_options options = {.dsn = dsn, .application_name = "ess-audit-retention",
                          .statement_timeout_ms = 600000};
    db *d = NULL;
    st_error err = {0};
    size_t erased = 0;
    st_code code = db_connect(&options, &d, &err);
    if (code == ST_OK)
        code = audit_retention_run(d, (int)a->config->retention_days, "ess-audit", &erased, &err);
    db_destroy(d);
    met_counter_add(a->erased, erased);
    if (code != ST_OK)
        log_event(LOG_ERROR, "audit.retention", "retention run failed; next try at the next "
                  "interval", LOG_INT("erased", (int64_t)erased), LOG_ERR(&err));
    else
        log_event(erased > 0 ? LOG_INFO : LOG_DEBUG, "audit.retention",
                  "erased personal data of old closed incidents", LOG_INT("erased", (int64_t)erased),
                  LOG_INT("retention_days", a->config->retention_days));
}

static void *housekeeping_main(void *arg)
{
    audit_service *a = arg;
    db *d = NULL;
    if (connect_writer_db(a, svc_common(a->s)->pg_dsn, "ess-audit-head", &d,
                          &a->housekeeping_stop) != ST_OK)
        return NULL;
    int64_t next_head = now_ms();
    int64_t next_retention = a->config->retention_interval_ms > 0 ? now_ms() : INT64_MAX;
    while (!atomic_load(&a->housekeeping_stop)) {
        int64_t now = now_ms();
        if (now >= next_head) {
            log_head(a, d);
            next_head = now + a->config->head_interval_ms;
        }
        if (now >= next_retention) {
            run_retention(a);
            next_retention = now_ms() + a->config->retention_interval_ms;
        }
        pthread_mutex_lock(&a->lock);
        if (!atomic_load(&a->housekeeping_stop))
            wait_until(&a->idle_wake, &a->lock,
                       next_head < next_retention ? next_head : next_retention);
        pthread_mutex_unlock(&a->lock);
    }
    log_head(a, d); /* the head as this process leaves it */
    db_destroy(d);
    return NULL;
}

/* ---- hooks ------------------------------------------------------------------------------- */

static void get_metrics(audit_service *a)
{
    met_registry *m = svc_metrics(a->s);
    met_counter_get(m, "ess_audit_rows_total", "rows appended to audit_log", NULL, &a->rows);
    met_counter_get(m, "ess_audit_duplicates_total",
                    "deliveries that added no row (redeliveries, repeated msg-ids)", NULL,
                    &a->duplicates);
    met_counter_get(m, "ess_audit_batches_total", "write transactions by result",
                    "result=\"ok\"", &a->batches_ok);
    met_counter_get(m, "ess_audit_batches_total", "write transactions by result",
                    "result=\"failed\"", &a->batches_failed);
    met_counter_get(m, "ess_audit_gaps_total",
                    "stream ranges skipped after ESS_AUDIT_GAP_WAIT (messages gone)", NULL,
                    &a->gaps);
    met_counter_get(m, "ess_audit_retention_erased_total",
                    "incidents whose personal data the daily retention erased", NULL,
                    &a->erased);
    met_gauge_get(m, "ess_audit_pending", "messages held, not yet written", NULL, &a->pending);
    met_gauge_get(m, "ess_audit_lag_milliseconds",
                  "age of the oldest message held and not yet written, since JetStream stored "
                  "it (0 when none)",
                  NULL, &a->lag_ms);
    met_gauge_get(m, "ess_audit_head_seq", "sequence number of the chain head", NULL,
                  &a->head_seq);
    met_histogram_get(m, "ess_audit_batch_seconds", "duration of one write transaction", NULL,
                      met_latency_bounds, met_latency_bound_count, &a->batch_seconds);
}

st_code audit_service_init(svc *s, void *closure, st_error *err)
{
    audit_main *m = closure;
    audit_service *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return st_fail(err, ST_NOMEM, "audit: out of memory");
    a->s = s;
    a->config = &m->config;
    vault_keys_derive(m->config.data_key.bytes, &a->keys);
    pthread_mutex_init(&a->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&a->writer_wake, &attr);
    pthread_cond_init(&a->idle_wake, &attr);
    pthread_condattr_destroy(&attr);
    m->service = a;
    st_code code = audit_queue_create(STREAM_COUNT, m->config.gap_wait_ms, &a->queue, err);
    if (code != ST_OK)
        return code;
    get_metrics(a);

    const bus_registry *registry = svc_registry(s);
    for (int i = 0; i < STREAM_COUNT; i++) {
        poller *p = &a->pollers[i];
        const bus_consumer_def *def = bus_registry_consumer(registry, audited[i].durable);
        if (def == NULL)
            return st_fail(err, ST_INVALID, "consumer %s is not in proto/registry.json",
                           audited[i].durable);
        p->owner = a;
        p->index = i;
        p->def = *def;
        int n = snprintf(p->def.durable, sizeof(p->def.durable), "%s%s",
                         m->config.durable_prefix != NULL ? m->config.durable_prefix : "",
                         def->durable);
        if (n < 0 || (size_t)n >= sizeof(p->def.durable))
            return st_fail(err, ST_INVALID, "ESS_AUDIT_DURABLE_PREFIX is too long");
    }
    a->writer_started = pthread_create(&a->writer, NULL, writer_main, a) == 0;
    a->housekeeper_started = pthread_create(&a->housekeeper, NULL, housekeeping_main, a) == 0;
    for (int i = 0; i < STREAM_COUNT; i++)
        a->pollers[i].started =
            pthread_create(&a->pollers[i].thread, NULL, poller_main, &a->pollers[i]) == 0;
    if (!a->writer_started || !a->housekeeper_started)
        return st_fail(err, ST_INTERNAL, "audit: cannot start threads");
    return ST_OK;
}

/* Stops pollers, writes what may be written, settles the rest, then destroys consumers. Also
 * used by fini when init failed half-way. */
static void shut_down(audit_service *a)
{
    if (a == NULL)
        return;
    atomic_store(&a->pollers_stop, true);
    pthread_mutex_lock(&a->lock);
    pthread_cond_broadcast(&a->idle_wake);
    pthread_mutex_unlock(&a->lock);
    for (int i = 0; i < STREAM_COUNT; i++)
        if (a->pollers[i].started) {
            pthread_join(a->pollers[i].thread, NULL);
            a->pollers[i].started = false;
        }
    atomic_store(&a->writer_stop, true);
    pthread_mutex_lock(&a->lock);
    pthread_cond_broadcast(&a->writer_wake);
    pthread_cond_broadcast(&a->idle_wake);
    pthread_mutex_unlock(&a->lock);
    if (a->writer_started) {
        pthread_join(a->writer, NULL);
        a->writer_started = false;
    } else if (a->queue != NULL) {
        final_flush(a, NULL, 0);
    }
    for (int i = 0; i < STREAM_COUNT; i++) {
        bus_consumer_destroy(a->pollers[i].consumer);
        a->pollers[i].consumer = NULL;
    }
    atomic_store(&a->housekeeping_stop, true);
    pthread_mutex_lock(&a->lock);
    pthread_cond_broadcast(&a->idle_wake);
    pthread_mutex_unlock(&a->lock);
    if (a->housekeeper_started) {
        pthread_join(a->housekeeper, NULL);
        a->housekeeper_started = false;
    }
}

void audit_service_stop(svc *s, void *closure)
{
    (void)s;
    audit_main *m = closure;
    shut_down(m->service);
}

void audit_service_fini(svc *s, void *closure)
{
    (void)s;
    audit_main *m = closure;
    audit_service *a = m->service;
    if (a == NULL)
        return;
    shut_down(a);
    audit_queue_destroy(a->queue);
    vault_keys_wipe(&a->keys);
    pthread_cond_destroy(&a->writer_wake);
    pthread_cond_destroy(&a->idle_wake);
    pthread_mutex_destroy(&a->lock);
    free(a);
    m->service = NULL;
}

st_code audit_service_ready(svc *s, void *closure, st_error *err)
{
    (void)s;
    audit_main *m = closure;
    audit_service *a = m->service;
    if (a == NULL)
        return st_fail(err, ST_UNAVAILABLE, "starting");
    for (int i = 0; i < STREAM_COUNT; i++)
        if (!atomic_load(&a->pollers[i].bound))
            return st_fail(err, ST_UNAVAILABLE, "consumer %s not bound",
                           a->pollers[i].def.durable);
    if (!atomic_load(&a->writer_connected))
        return st_fail(err, ST_UNAVAILABLE, "audit writer not connected");
    if (atomic_load(&a->writer_failing))
        return st_fail(err, ST_UNAVAILABLE, "audit writes failing");
    return ST_OK;
}
