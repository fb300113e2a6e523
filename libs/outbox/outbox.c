#include "outbox.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

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
    bool has_keys;
    vault_keys keys; /* a copy: the caller's may go first */
};

static const vault_keys *relay_keys(const outbox_relay *relay)
{
    return relay->has_keys ? &relay->keys : NULL;
}

static st_code check_event(db *d, const char *subject, const char *msg_id, const char *payload,
                           size_t len, st_error *err)
{
    if (subject == NULL || msg_id == NULL || payload == NULL || subject[0] == '\0' ||
        msg_id[0] == '\0')
        return st_fail(err, ST_INVALID, "outbox event needs a subject, a msg-id and a payload");
    if (strlen(msg_id) >= OUTBOX_MSG_ID_MAX)
        return st_fail(err, ST_LIMIT, "outbox msg-id longer than %d", OUTBOX_MSG_ID_MAX - 1);
    if (len > OUTBOX_PAYLOAD_MAX)
        return st_fail(err, ST_LIMIT, "outbox payload is larger than %d bytes",
                       OUTBOX_PAYLOAD_MAX);
    if (memchr(payload, '\0', len) != NULL)
        return st_fail(err, ST_INVALID, "outbox payload must be text without NUL bytes");
    if (!db_in_transaction(d))
        return st_fail(err, ST_INVALID, "outbox_add must run inside the change's transaction");
    return ST_OK;
}

/* payload_param: text (sealed false) or "\x..." bytea text (sealed true). */
static st_code insert_event(db *d, const char *subject, const char *msg_id,
                            const char *payload_param, bool sealed, bool *ret_added,
                            st_error *err)
{
    const char *params[] = {subject, msg_id, payload_param};
    db_result *result = NULL;
    st_code status = db_exec(d,
                             sealed ? "INSERT INTO outbox (subject, msg_id, payload, sealed) "
                                      "VALUES ($1, $2, $3::bytea, true) "
                                      "ON CONFLICT (msg_id) DO NOTHING"
                                    : "INSERT INTO outbox (subject, msg_id, payload) "
                                      "VALUES ($1, $2, convert_to($3, 'UTF8')) "
                                      "ON CONFLICT (msg_id) DO NOTHING",
                             3, params, &result, err);
    if (status == ST_OK && ret_added != NULL)
        *ret_added = db_result_affected(result) == 1;
    db_result_destroy(result);
    return status;
}

st_code outbox_add(db *d, const char *subject, const char *msg_id, const char *payload,
                   size_t len, bool *ret_added, st_error *err)
{
    st_code status = check_event(d, subject, msg_id, payload, len, err);
    if (status != ST_OK)
        return status;
    /* Only len bytes are the payload: the caller's buffer need not end with a NUL. */
    char *text = malloc(len + 1);
    if (text == NULL)
        return st_fail(err, ST_NOMEM, "out of memory adding to the outbox");
    memcpy(text, payload, len);
    text[len] = '\0';
    status = insert_event(d, subject, msg_id, text, false, ret_added, err);
    free(text);
    return status;
}

/* The vault context of a sealed row: binds the ciphertext to its msg-id. */
static void sealed_context(const char *msg_id, char out[OUTBOX_MSG_ID_MAX + 16])
{
    snprintf(out, OUTBOX_MSG_ID_MAX + 16, "outbox:%s", msg_id);
}

st_code outbox_add_sealed(db *d, const vault_keys *keys, const char *subject,
                          const char *msg_id, const char *payload, size_t len, bool *ret_added,
                          st_error *err)
{
    if (keys == NULL)
        return st_fail(err, ST_INVALID, "outbox_add_sealed needs the vault keys");
    st_code status = check_event(d, subject, msg_id, payload, len, err);
    if (status != ST_OK)
        return status;
    char context[OUTBOX_MSG_ID_MAX + 16];
    sealed_context(msg_id, context);
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    if ((status = vault_seal(keys, context, payload, len, &sealed, &sealed_len, err)) != ST_OK)
        return status;
    char *param = malloc(2 * sealed_len + 3);
    if (param == NULL) {
        free(sealed);
        return st_fail(err, ST_NOMEM, "out of memory adding to the outbox");
    }
    memcpy(param, "\\x", 2);
    vault_hex(sealed, sealed_len, param + 2);
    status = insert_event(d, subject, msg_id, param, true, ret_added, err);
    free(param);
    free(sealed);
    return status;
}

st_code outbox_mark_processed(db *d, const char *consumer, const char *event_id,
                              bool *ret_first, st_error *err)
{
    if (consumer == NULL || event_id == NULL || consumer[0] == '\0' || event_id[0] == '\0' ||
        ret_first == NULL)
        return st_fail(err, ST_INVALID, "outbox_mark_processed needs a consumer and an event id");
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
    const vault_keys *keys;
    int batch;
    int64_t publish_timeout_ms;
    size_t published;
} round_state;

/* "{1,2,3}" of the first column of rows (ids): heap, caller frees. */
static st_code id_array(const db_result *rows, int count, char **ret_ids, st_error *err)
{
    size_t size = (size_t)count * 21 + 3, used = 0;
    char *ids = malloc(size);
    if (ids == NULL)
        return st_fail(err, ST_NOMEM, "out of memory marking outbox rows");
    ids[used++] = '{';
    for (int i = 0; i < count; i++)
        used += (size_t)snprintf(ids + used, size - used, "%s%s", i > 0 ? "," : "",
                                 db_result_value(rows, i, 0));
    snprintf(ids + used, size - used, "}");
    *ret_ids = ids;
    return ST_OK;
}

/* Opens a sealed row (bytea text "\\x...") and queues its publish. */
static st_code add_opened(round_state *round, bus_batch *batch, const char *subject,
                          const char *msg_id, const char *sealed_text, st_error *err)
{
    if (round->keys == NULL)
        return st_fail(err, ST_INVALID,
                       "a sealed outbox row waits, but this relay has no vault keys");
    char context[OUTBOX_MSG_ID_MAX + 16];
    sealed_context(msg_id, context);
    char *plain = NULL;
    size_t plain_len = 0;
    st_code status = vault_open_hex(round->keys, context, sealed_text, &plain, &plain_len, err);
    if (status != ST_OK) {
        st_wrap(err, "sealed outbox row (another ESS_DATA_KEY?)");
        goto cleanup;
    }
    status = bus_batch_add(batch, subject, plain, plain_len, msg_id, err);
cleanup:
    if (plain != NULL) {
        OPENSSL_cleanse(plain, plain_len);
        free(plain);
    }
    return status;
}

static st_code relay_round(db *d, void *closure, st_error *err)
{
    round_state *round = closure;
    round->published = 0;
    db_result *rows = NULL;
    bus_batch *batch = NULL;
    char *ids = NULL;
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
                     "SELECT id, subject, msg_id, "
                     "       CASE WHEN sealed THEN NULL ELSE convert_from(payload, 'UTF8') END, "
                     "       CASE WHEN sealed THEN payload END "
                     "FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1::int",
                     1, params, &rows, err);
    if (status != ST_OK || db_result_rows(rows) == 0)
        goto cleanup;
    if ((status = bus_batch_create(round->bus, &batch, err)) != ST_OK)
        goto cleanup;
    int count = db_result_rows(rows);
    for (int i = 0; i < count; i++) {
        if (db_result_is_null(rows, i, 3) && round->keys == NULL) {
            /* A sealed row and no key to open it: publish what comes before it and leave
             * the rest, in order, to a relay that holds the key (the service that sealed). */
            count = i;
            break;
        }
        if (!db_result_is_null(rows, i, 3)) {
            const char *payload = db_result_value(rows, i, 3);
            status = bus_batch_add(batch, db_result_value(rows, i, 1), payload, strlen(payload),
                                   db_result_value(rows, i, 2), err);
        } else {
            status = add_opened(round, batch, db_result_value(rows, i, 1),
                                db_result_value(rows, i, 2), db_result_value(rows, i, 4), err);
        }
        if (status != ST_OK)
            goto cleanup;
    }
    if (count == 0)
        goto cleanup;
    bus_batch_result result = {0};
    if ((status = bus_batch_wait(batch, round->publish_timeout_ms, &result, err)) != ST_OK)
        goto cleanup;
    /* Mark exactly the rows published. Not "id <= last": a transaction that took a lower id
     * may have committed after the SELECT, and its row, never published, would be marked. */
    if ((status = id_array(rows, count, &ids, err)) != ST_OK)
        goto cleanup;
    const char *id_params[] = {ids};
    status = db_exec(d, "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", 1,
                     id_params, NULL, err);
    if (status == ST_OK)
        round->published = (size_t)count;
cleanup:
    free(ids);
    bus_batch_destroy(batch);
    db_result_destroy(rows);
    return status;
}

st_code outbox_relay_once(db *d, bus *b, int batch, int64_t publish_timeout_ms,
                          size_t *ret_published, st_error *err)
{
    return outbox_relay_once_sealed(d, b, NULL, batch, publish_timeout_ms, ret_published, err);
}

st_code outbox_relay_once_sealed(db *d, bus *b, const vault_keys *keys, int batch,
                                 int64_t publish_timeout_ms, size_t *ret_published,
                                 st_error *err)
{
    round_state round = {.bus = b,
                         .keys = keys,
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
        st_code status = outbox_relay_once_sealed(d, relay->options.bus, relay_keys(relay),
                                                  relay->options.batch,
                                                  relay->options.publish_timeout_ms, &published,
                                                  &err);
        if (status != ST_OK) {
            report(relay, &err);
            stopping = wait_for_work(relay, relay->options.poll_ms);
            continue;
        }
        atomic_fetch_add(&relay->published, published);
        if (++rounds % 1000 == 0)
            prune(relay, d);
        pthread_mutex_lock(&relay->lock);
        stopping = relay->stopping;
        pthread_mutex_unlock(&relay->lock);
        /* A full batch means more may wait: go again at once (unless stopping: the last
         * round below still runs). */
        if (!stopping && published < (size_t)relay->options.batch)
            stopping = wait_for_work(relay, relay->options.poll_ms);
    }
    /* One last round so that what was committed before the stop goes out now. */
    if (d != NULL) {
        st_error err = {0};
        size_t published = 0;
        if (outbox_relay_once_sealed(d, relay->options.bus, relay_keys(relay),
                                     relay->options.batch, relay->options.publish_timeout_ms,
                                     &published, &err) == ST_OK)
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
    if (options->keys != NULL) {
        relay->keys = *options->keys;
        relay->has_keys = true;
    }
    relay->options.keys = NULL;
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
    vault_keys_wipe(&relay->keys);
    free(relay);
}

uint64_t outbox_relay_published(const outbox_relay *relay)
{
    return relay != NULL ? atomic_load(&((outbox_relay *)relay)->published) : 0;
}
