#include "outbox.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Any fixed number: the advisory lock that makes one relay publish at a time. */
#define OUTBOX_LOCK_KEY "4242001"

struct outbox_relay {
    outbox_options options;
    char *pg_dsn;
    char *application_name;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool kicked;
    bool stopping;
    _Atomic uint64_t published;
};

st_code outbox_add(db *d, const char *subject, const char *msg_id, const char *payload,
                   size_t len, bool *ret_added, st_error *err)
{
    if (subject == NULL || msg_id == NULL || payload == NULL || subject[0] == '\0' ||
        msg_id[0] == '\0')
        return st_fail(err, ST_INVALID, "outbox event needs a subject, a msg-id and a payload");
    if (len > OUTBOX_PAYLOAD_MAX)
        return st_fail(err, ST_LIMIT, "outbox payload is larger than %d bytes",
                       OUTBOX_PAYLOAD_MAX);
    if (memchr(payload, '\0', len) != NULL || payload[len] != '\0')
        return st_fail(err, ST_INVALID, "outbox payload must be NUL-terminated text");
    if (!db_in_transaction(d))
        return st_fail(err, ST_INVALID, "outbox_add must run inside the change's transaction");
    const char *params[] = {subject, msg_id, payload};
    db_result *result = NULL;
    st_code status = db_exec(d,
                             "INSERT INTO outbox (subject, msg_id, payload) "
                             "VALUES ($1, $2, convert_to($3, 'UTF8')) "
                             "ON CONFLICT (msg_id) DO NOTHING",
                             3, params, &result, err);
    if (status == ST_OK && ret_added != NULL)
        *ret_added = db_result_affected(result) == 1;
    db_result_destroy(result);
    return status;
}

st_code outbox_mark_processed(db *d, const char *consumer, const char *event_id,
                              bool *ret_first, st_error *err)
{
    if (!db_in_transaction(d))
        return st_fail(err, ST_INVALID,
                       "outbox_mark_processed must run inside the event's transaction");
    const char *params[] = {consumer, event_id};
    db_result *result = NULL;
    st_code status = db_exec(d,
                             "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) "
                             "ON CONFLICT DO NOTHING",
                             2, params, &result, err);
    if (status == ST_OK)
        *ret_first = db_result_affected(result) == 1;
    db_result_destroy(result);
    return status;
}

typedef struct round_state {
    bus *bus;
    int batch;
    int64_t publish_timeout_ms;
    size_t published;
} round_state;

static st_code relay_round(db *d, void *closure, st_error *err)
{
    round_state *round = closure;
    round->published = 0;
    db_result *rows = NULL;
    bus_batch *batch = NULL;
    st_code status = db_exec(d, "SELECT pg_try_advisory_xact_lock(" OUTBOX_LOCK_KEY ")", 0,
                             NULL, &rows, err);
    if (status != ST_OK)
        goto cleanup;
    bool locked = strcmp(db_result_value(rows, 0, 0), "t") == 0;
    db_result_destroy(rows);
    rows = NULL;
    if (!locked)
        goto cleanup; /* another relay is publishing: its order is the stream's order */

    char limit[16];
    snprintf(limit, sizeof(limit), "%d", round->batch);
    const char *params[] = {limit};
    status = db_exec(d,
                     "SELECT id, subject, msg_id, convert_from(payload, 'UTF8') FROM outbox "
                     "WHERE published_at IS NULL ORDER BY id LIMIT $1::int",
                     1, params, &rows, err);
    if (status != ST_OK || db_result_rows(rows) == 0)
        goto cleanup;
    if ((status = bus_batch_create(round->bus, &batch, err)) != ST_OK)
        goto cleanup;
    int count = db_result_rows(rows);
    for (int i = 0; i < count; i++) {
        const char *payload = db_result_value(rows, i, 3);
        status = bus_batch_add(batch, db_result_value(rows, i, 1), payload, strlen(payload),
                               db_result_value(rows, i, 2), err);
        if (status != ST_OK)
            goto cleanup;
    }
    bus_batch_result result = {0};
    if ((status = bus_batch_wait(batch, round->publish_timeout_ms, &result, err)) != ST_OK)
        goto cleanup;
    const char *last_id[] = {db_result_value(rows, count - 1, 0)};
    status = db_exec(d,
                     "UPDATE outbox SET published_at = now() "
                     "WHERE published_at IS NULL AND id <= $1::bigint",
                     1, last_id, NULL, err);
    if (status == ST_OK)
        round->published = (size_t)count;
cleanup:
    bus_batch_destroy(batch);
    db_result_destroy(rows);
    return status;
}

st_code outbox_relay_once(db *d, bus *b, int batch, int64_t publish_timeout_ms,
                          size_t *ret_published, st_error *err)
{
    round_state round = {.bus = b,
                         .batch = batch > 0 ? batch : 256,
                         .publish_timeout_ms = publish_timeout_ms > 0 ? publish_timeout_ms : 5000};
    st_code status = db_tx(d, 1, relay_round, &round, err);
    if (status == ST_OK && ret_published != NULL)
        *ret_published = round.published;
    return status;
}

static void report(outbox_relay *relay, const st_error *err)
{
    if (relay->options.on_error != NULL)
        relay->options.on_error(err, relay->options.closure);
}

static void prune(outbox_relay *relay, db *d)
{
    char keep[32];
    snprintf(keep, sizeof(keep), "%lld milliseconds", (long long)relay->options.keep_published_ms);
    const char *params[] = {keep};
    st_error err = {0};
    if (db_exec(d,
                "DELETE FROM outbox WHERE published_at IS NOT NULL "
                "AND published_at < now() - $1::interval",
                1, params, NULL, &err) != ST_OK)
        report(relay, &err);
}

/* Waits for a kick, a stop or the poll interval; true when stopping. */
static bool wait_for_work(outbox_relay *relay, int64_t ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&relay->lock);
    while (!relay->kicked && !relay->stopping)
        if (pthread_cond_timedwait(&relay->wake, &relay->lock, &deadline) != 0)
            break;
    relay->kicked = false;
    bool stopping = relay->stopping;
    pthread_mutex_unlock(&relay->lock);
    return stopping;
}

static void *relay_main(void *arg)
{
    outbox_relay *relay = arg;
    db *d = NULL;
    db_options db_opts = {.dsn = relay->pg_dsn, .application_name = relay->application_name};
    int rounds = 0;
    bool stopping = false;
    while (!stopping) {
        st_error err = {0};
        if (d == NULL && db_connect(&db_opts, &d, &err) != ST_OK) {
            d = NULL;
            report(relay, &err);
            stopping = wait_for_work(relay, 1000);
            continue;
        }
        size_t published = 0;
        st_code status = outbox_relay_once(d, relay->options.bus, relay->options.batch,
                                           relay->options.publish_timeout_ms, &published, &err);
        if (status != ST_OK) {
            report(relay, &err);
            stopping = wait_for_work(relay, relay->options.poll_ms);
            continue;
        }
        atomic_fetch_add(&relay->published, published);
        if (++rounds % 1000 == 0)
            prune(relay, d);
        /* A full batch means more may wait: go again at once. */
        if (published == (size_t)relay->options.batch)
            continue;
        pthread_mutex_lock(&relay->lock);
        stopping = relay->stopping;
        pthread_mutex_unlock(&relay->lock);
        if (!stopping)
            stopping = wait_for_work(relay, relay->options.poll_ms);
    }
    /* One last round so that what was committed before the stop goes out now. */
    if (d != NULL) {
        st_error err = {0};
        size_t published = 0;
        if (outbox_relay_once(d, relay->options.bus, relay->options.batch,
                              relay->options.publish_timeout_ms, &published, &err) == ST_OK)
            atomic_fetch_add(&relay->published, published);
    }
    db_destroy(d);
    return NULL;
}

static char *copy_text(const char *text)
{
    if (text == NULL)
        text = "";
    size_t len = strlen(text);
    char *copy = malloc(len + 1);
    if (copy != NULL)
        memcpy(copy, text, len + 1);
    return copy;
}

st_code outbox_relay_start(const outbox_options *options, outbox_relay **ret_relay,
                           st_error *err)
{
    if (options == NULL || options->bus == NULL || options->pg_dsn == NULL)
        return st_fail(err, ST_INVALID, "outbox relay needs a bus and a database");
    outbox_relay *relay = calloc(1, sizeof(*relay));
    if (relay == NULL)
        return st_fail(err, ST_NOMEM, "out of memory starting the outbox relay");
    relay->options = *options;
    if (relay->options.batch <= 0)
        relay->options.batch = 256;
    if (relay->options.poll_ms <= 0)
        relay->options.poll_ms = 200;
    if (relay->options.publish_timeout_ms <= 0)
        relay->options.publish_timeout_ms = 5000;
    if (relay->options.keep_published_ms <= 0)
        relay->options.keep_published_ms = 24LL * 3600 * 1000;
    relay->pg_dsn = copy_text(options->pg_dsn);
    relay->application_name = copy_text(options->application_name != NULL
                                            ? options->application_name
                                            : "ess-outbox");
    relay->options.pg_dsn = relay->pg_dsn;
    relay->options.application_name = relay->application_name;
    pthread_mutex_init(&relay->lock, NULL);
    pthread_cond_init(&relay->wake, NULL);
    if (relay->pg_dsn == NULL || relay->application_name == NULL ||
        pthread_create(&relay->thread, NULL, relay_main, relay) != 0) {
        free(relay->pg_dsn);
        free(relay->application_name);
        pthread_mutex_destroy(&relay->lock);
        pthread_cond_destroy(&relay->wake);
        free(relay);
        return st_fail(err, ST_INTERNAL, "cannot start the outbox relay thread");
    }
    *ret_relay = relay;
    return ST_OK;
}

void outbox_relay_kick(outbox_relay *relay)
{
    if (relay == NULL)
        return;
    pthread_mutex_lock(&relay->lock);
    relay->kicked = true;
    pthread_cond_signal(&relay->wake);
    pthread_mutex_unlock(&relay->lock);
}

void outbox_relay_stop(outbox_relay *relay)
{
    if (relay == NULL)
        return;
    pthread_mutex_lock(&relay->lock);
    relay->stopping = true;
    pthread_cond_signal(&relay->wake);
    pthread_mutex_unlock(&relay->lock);
    pthread_join(relay->thread, NULL);
    pthread_mutex_destroy(&relay->lock);
    pthread_cond_destroy(&relay->wake);
    free(relay->pg_dsn);
    free(relay->application_name);
    free(relay);
}

uint64_t outbox_relay_published(const outbox_relay *relay)
{
    return relay != NULL ? atomic_load(&((outbox_relay *)relay)->published) : 0;
}
