/* libs/outbox against a real PostgreSQL (a fresh migrated database per case) and the shared
 * nats-server (a stream of the case's own, subjects <token>.>): adding rows commits or
 * vanishes with the transaction, adding is idempotent, the relay publishes committed rows in
 * id order with their msg-ids and marks exactly what it published, a republish after a crash
 * duplicates nothing, a row committed late is not lost, two relays publish each row once, and
 * outbox_mark_processed tells first from repeat. */
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "bus.h"
#include "db.h"
#include "outbox.h"
#include "vault.h"

typedef struct fixture {
    char dsn[512];
    char token[48];
    char stream[BUS_NAME_MAX];
    char subject[BUS_SUBJECT_MAX];
    bus *b;
    db *d;
    natsConnection *raw_conn;
    jsCtx *raw_js;
} fixture;

static fixture fx;

static db *connect_db(void)
{
    db_options options = {.dsn = fx.dsn, .application_name = "ess-test-outbox"};
    db *d = NULL;
    st_error err = {0};
    if (db_connect(&options, &d, &err) != ST_OK)
        fail_msg("db_connect: %s", err.message);
    return d;
}

static int setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    testkit_fresh_database(true, fx.dsn, sizeof(fx.dsn));
    testkit_unique(fx.token, sizeof(fx.token));
    snprintf(fx.stream, sizeof(fx.stream), "OBX_%s", fx.token);
    snprintf(fx.subject, sizeof(fx.subject), "%s.event", fx.token);
    const char *url = testkit_env("ESS_TEST_NATS_URL");
    bus_options options = {.url = url, .client_name = "ess-test-outbox"};
    st_error err = {0};
    if (bus_connect(&options, &fx.b, &err) != ST_OK)
        fail_msg("bus_connect: %s", err.message);
    bus_stream_def def;
    memset(&def, 0, sizeof(def));
    snprintf(def.name, sizeof(def.name), "%s", fx.stream);
    snprintf(def.subjects[0], sizeof(def.subjects[0]), "%s.>", fx.token);
    def.subject_count = 1;
    def.max_age_ms = 60 * 60 * 1000;
    def.duplicate_window_ms = 10 * 60 * 1000;
    def.max_bytes = -1;
    def.max_msg_size = -1;
    def.replicas = 1;
    if (bus_ensure_stream(fx.b, &def, &err) != ST_OK)
        fail_msg("bus_ensure_stream: %s", err.message);
    assert_int_equal(natsConnection_ConnectTo(&fx.raw_conn, url), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&fx.raw_js, fx.raw_conn, NULL), NATS_OK);
    fx.d = connect_db();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    db_destroy(fx.d);
    if (fx.b != NULL)
        bus_stream_delete(fx.b, fx.stream, NULL);
    bus_destroy(fx.b);
    jsCtx_Destroy(fx.raw_js);
    natsConnection_Destroy(fx.raw_conn);
    if (fx.dsn[0] != '\0')
        testkit_drop_database(fx.dsn);
    memset(&fx, 0, sizeof(fx));
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void add_one(db *d, const char *msg_id, const char *payload, bool want_added)
{
    st_error err = {0};
    bool added = !want_added;
    assert_int_equal(db_begin(d, &err), ST_OK);
    if (outbox_add(d, fx.subject, msg_id, payload, strlen(payload), &added, &err) != ST_OK)
        fail_msg("outbox_add: %s", err.message);
    assert_int_equal(db_commit(d, &err), ST_OK);
    assert_int_equal(added, want_added);
}

static long long scalar(const char *sql)
{
    db_result *result = NULL;
    st_error err = {0};
    if (db_exec(fx.d, sql, 0, NULL, &result, &err) != ST_OK)
        fail_msg("%s: %s", sql, err.message);
    long long value = strtoll(db_result_value(result, 0, 0), NULL, 10);
    db_result_destroy(result);
    return value;
}

static uint64_t stream_count(void)
{
    jsStreamInfo *info = NULL;
    jsErrCode jerr = 0;
    assert_int_equal(js_GetStreamInfo(&info, fx.raw_js, fx.stream, NULL, &jerr), NATS_OK);
    uint64_t count = info->State.Msgs;
    jsStreamInfo_Destroy(info);
    return count;
}

/* Msg-ids and payloads of the stream, in stream order. */
static size_t stream_messages(char (*ids)[64], char (*payloads)[64], size_t max)
{
    uint64_t count = stream_count();
    size_t got = 0;
    for (uint64_t seq = 1; seq <= count && got < max; seq++) {
        natsMsg *msg = NULL;
        jsErrCode jerr = 0;
        assert_int_equal(js_GetMsg(&msg, fx.raw_js, fx.stream, seq, NULL, &jerr), NATS_OK);
        const char *id = NULL;
        assert_int_equal(natsMsgHeader_Get(msg, "Nats-Msg-Id", &id), NATS_OK);
        snprintf(ids[got], 64, "%s", id);
        snprintf(payloads[got], 64, "%.*s", natsMsg_GetDataLength(msg), natsMsg_GetData(msg));
        assert_string_equal(natsMsg_GetSubject(msg), fx.subject);
        natsMsg_Destroy(msg);
        got++;
    }
    return got;
}

static size_t relay_once(db *d)
{
    size_t published = 99;
    st_error err = {0};
    if (outbox_relay_once(d, fx.b, 0, 0, &published, &err) != ST_OK)
        fail_msg("outbox_relay_once: %s", err.message);
    return published;
}

/* ---- adding --------------------------------------------------------------------------------- */

ESS_TEST(add_commits_with_the_transaction)
{
    add_one(fx.d, "m1", "{\"n\":1}", true);
    assert_int_equal(scalar("SELECT count(*) FROM outbox WHERE msg_id = 'm1' "
                            "AND published_at IS NULL "
                            "AND convert_from(payload, 'UTF8') = '{\"n\":1}'"),
                     1);
}

ESS_TEST(add_rolls_back_with_the_transaction)
{
    st_error err = {0};
    bool added = false;
    assert_int_equal(db_begin(fx.d, &err), ST_OK);
    assert_int_equal(outbox_add(fx.d, fx.subject, "gone", "{}", 2, &added, &err), ST_OK);
    assert_true(added);
    assert_int_equal(db_rollback(fx.d, &err), ST_OK);
    assert_int_equal(scalar("SELECT count(*) FROM outbox"), 0);
    assert_int_equal(relay_once(fx.d), 0);
    assert_int_equal(stream_count(), 0);
}

ESS_TEST(add_is_idempotent_by_msg_id)
{
    add_one(fx.d, "same", "{\"first\":true}", true);
    add_one(fx.d, "same", "{\"second\":true}", false);
    assert_int_equal(scalar("SELECT count(*) FROM outbox"), 1);
    assert_int_equal(scalar("SELECT count(*) FROM outbox "
                            "WHERE convert_from(payload, 'UTF8') = '{\"first\":true}'"),
                     1);
    /* Also after it was published. */
    assert_int_equal(relay_once(fx.d), 1);
    add_one(fx.d, "same", "{\"third\":true}", false);
    assert_int_equal(relay_once(fx.d), 0);
    assert_int_equal(stream_count(), 1);
}

ESS_TEST(add_refuses_bad_input_and_outside_a_transaction)
{
    st_error err = {0};
    assert_int_equal(outbox_add(fx.d, fx.subject, "x", "{}", 2, NULL, &err), ST_INVALID);
    assert_int_equal(db_begin(fx.d, &err), ST_OK);
    assert_int_equal(outbox_add(fx.d, "", "x", "{}", 2, NULL, &err), ST_INVALID);
    assert_int_equal(outbox_add(fx.d, fx.subject, "", "{}", 2, NULL, &err), ST_INVALID);
    assert_int_equal(outbox_add(fx.d, fx.subject, "x", NULL, 0, NULL, &err), ST_INVALID);
    assert_int_equal(outbox_add(fx.d, fx.subject, "x", "a\0b", 3, NULL, &err), ST_INVALID);
    char *big = calloc(1, OUTBOX_PAYLOAD_MAX + 2);
    memset(big, 'a', OUTBOX_PAYLOAD_MAX + 1);
    assert_int_equal(outbox_add(fx.d, fx.subject, "x", big, OUTBOX_PAYLOAD_MAX + 1, NULL, &err),
                     ST_LIMIT);
    free(big);
    /* Only len bytes count: a buffer without a NUL at len is fine. */
    const char buffer[] = {'{', '}', 'X', 'Y'};
    bool added = false;
    assert_int_equal(outbox_add(fx.d, fx.subject, "cut", buffer, 2, &added, &err), ST_OK);
    assert_true(added);
    assert_int_equal(db_commit(fx.d, &err), ST_OK);
    assert_int_equal(scalar("SELECT count(*) FROM outbox WHERE msg_id = 'cut' "
                            "AND convert_from(payload, 'UTF8') = '{}'"),
                     1);
}

/* ---- processed events ------------------------------------------------------------------------ */

ESS_TEST(mark_processed_tells_first_from_repeat)
{
    st_error err = {0};
    bool first = false;
    assert_int_equal(outbox_mark_processed(fx.d, "tester", "e1", &first, &err), ST_INVALID);
    assert_int_equal(db_begin(fx.d, &err), ST_OK);
    assert_int_equal(outbox_mark_processed(fx.d, "tester", "e1", &first, &err), ST_OK);
    assert_true(first);
    assert_int_equal(db_rollback(fx.d, &err), ST_OK); /* not applied after all */

    assert_int_equal(db_begin(fx.d, &err), ST_OK);
    assert_int_equal(outbox_mark_processed(fx.d, "tester", "e1", &first, &err), ST_OK);
    assert_true(first);
    assert_int_equal(db_commit(fx.d, &err), ST_OK);

    assert_int_equal(db_begin(fx.d, &err), ST_OK);
    assert_int_equal(outbox_mark_processed(fx.d, "tester", "e1", &first, &err), ST_OK);
    assert_false(first);
    /* Another consumer applies the same event on its own. */
    assert_int_equal(outbox_mark_processed(fx.d, "other", "e1", &first, &err), ST_OK);
    assert_true(first);
    assert_int_equal(outbox_mark_processed(fx.d, "", "e1", &first, &err), ST_INVALID);
    assert_int_equal(db_rollback(fx.d, &err), ST_OK);
}

/* ---- the relay ------------------------------------------------------------------------------- */

ESS_TEST(relay_publishes_in_id_order_with_msg_ids_once)
{
    for (int i = 0; i < 5; i++) {
        char id[16], payload[32];
        snprintf(id, sizeof(id), "r%d", i);
        snprintf(payload, sizeof(payload), "{\"n\":%d}", i);
        add_one(fx.d, id, payload, true);
    }
    assert_int_equal(relay_once(fx.d), 5);
    assert_int_equal(relay_once(fx.d), 0);
    char ids[8][64], payloads[8][64];
    assert_int_equal(stream_messages(ids, payloads, 8), 5);
    for (int i = 0; i < 5; i++) {
        char id[16], payload[32];
        snprintf(id, sizeof(id), "r%d", i);
        snprintf(payload, sizeof(payload), "{\"n\":%d}", i);
        assert_string_equal(ids[i], id);
        assert_string_equal(payloads[i], payload);
    }
    assert_int_equal(scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL"), 0);
}

ESS_TEST(a_republish_after_a_crash_duplicates_nothing)
{
    add_one(fx.d, "c1", "{}", true);
    add_one(fx.d, "c2", "{}", true);
    assert_int_equal(relay_once(fx.d), 2);
    /* The relay died between publishing and marking: the rows look unpublished again. */
    st_error err = {0};
    assert_int_equal(db_exec(fx.d, "UPDATE outbox SET published_at = NULL", 0, NULL, NULL, &err),
                     ST_OK);
    assert_int_equal(relay_once(fx.d), 2);
    assert_int_equal(stream_count(), 2);
}

ESS_TEST(a_row_committed_late_with_a_lower_id_is_not_lost)
{
    db *slow = connect_db();
    st_error err = {0};
    assert_int_equal(db_begin(slow, &err), ST_OK);
    assert_int_equal(outbox_add(slow, fx.subject, "slow", "{\"slow\":1}", 10, NULL, &err), ST_OK);
    add_one(fx.d, "fast", "{\"fast\":1}", true); /* higher id, committed first */
    assert_int_equal(relay_once(fx.d), 1);
    assert_int_equal(db_commit(slow, &err), ST_OK);
    assert_int_equal(scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL"), 1);
    assert_int_equal(relay_once(fx.d), 1);
    char ids[4][64], payloads[4][64];
    assert_int_equal(stream_messages(ids, payloads, 4), 2);
    assert_string_equal(ids[0], "fast");
    assert_string_equal(ids[1], "slow");
    assert_int_equal(scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL"), 0);
    db_destroy(slow);
}

typedef struct count_wait {
    uint64_t want;
} count_wait;

static bool stream_has(void *closure)
{
    return stream_count() >= ((count_wait *)closure)->want;
}

ESS_TEST(relay_thread_publishes_on_a_kick_and_on_stop)
{
    outbox_options options = {.pg_dsn = fx.dsn, .bus = fx.b, .poll_ms = 60000};
    outbox_relay *relay = NULL;
    st_error err = {0};
    assert_int_equal(outbox_relay_start(&options, &relay, &err), ST_OK);
    add_one(fx.d, "k1", "{}", true);
    outbox_relay_kick(relay);
    count_wait one = {1};
    assert_true(testkit_wait_until(stream_has, &one, 10000));
    /* Committed but never kicked: the stop's last round publishes it. */
    add_one(fx.d, "k2", "{}", true);
    outbox_relay_stop(relay);
    assert_int_equal(stream_count(), 2);
    assert_int_equal(scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL"), 0);
}

ESS_TEST(two_relays_publish_each_row_once_in_order)
{
    outbox_options options = {.pg_dsn = fx.dsn, .bus = fx.b, .poll_ms = 20, .batch = 7};
    outbox_relay *first = NULL, *second = NULL;
    st_error err = {0};
    assert_int_equal(outbox_relay_start(&options, &first, &err), ST_OK);
    assert_int_equal(outbox_relay_start(&options, &second, &err), ST_OK);
    enum { ROWS = 60 };
    for (int i = 0; i < ROWS; i++) {
        char id[16];
        snprintf(id, sizeof(id), "t%03d", i);
        add_one(fx.d, id, "{}", true);
        outbox_relay_kick(i % 2 ? first : second);
    }
    count_wait all = {ROWS};
    assert_true(testkit_wait_until(stream_has, &all, 20000));
    outbox_relay_stop(first);
    outbox_relay_stop(second);
    static char ids[ROWS + 2][64], payloads[ROWS + 2][64];
    assert_int_equal(stream_messages(ids, payloads, ROWS + 2), ROWS);
    for (int i = 0; i < ROWS; i++) {
        char id[16];
        snprintf(id, sizeof(id), "t%03d", i);
        assert_string_equal(ids[i], id);
    }
}

/* ---- sealed rows ------------------------------------------------------------------------------ */

static const char data_key[] = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

static void add_sealed(const vault_keys *keys, const char *msg_id, const char *payload)
{
    st_error err = {0};
    bool added = false;
    assert_int_equal(db_begin(fx.d, &err), ST_OK);
    if (outbox_add_sealed(fx.d, keys, fx.subject, msg_id, payload, strlen(payload), &added,
                          &err) != ST_OK)
        fail_msg("outbox_add_sealed: %s", err.message);
    assert_int_equal(db_commit(fx.d, &err), ST_OK);
    assert_true(added);
}

ESS_TEST(sealed_rows_are_unreadable_at_rest_and_published_in_clear)
{
    vault_keys keys;
    assert_int_equal(vault_keys_from_base64(data_key, &keys, NULL), ST_OK);
    add_one(fx.d, "p1", "{\"plain\":1}", true);
    add_sealed(&keys, "s1", "{\"to\":\"U0123456789abcdef0123456789abcdef\"}");
    add_one(fx.d, "p2", "{\"plain\":2}", true);
    /* At rest: no trace of the user id, neither as text nor as bytes. */
    assert_int_equal(scalar("SELECT count(*) FROM outbox WHERE sealed"), 1);
    assert_int_equal(scalar("SELECT count(*) FROM outbox WHERE position("
                            "convert_to('U0123456789abcdef', 'UTF8') IN payload) > 0"),
                     0);
    /* A relay without the keys publishes what comes before the sealed row and stops there:
     * nothing after it goes out of order. */
    size_t published = 0;
    st_error err = {0};
    assert_int_equal(outbox_relay_once(fx.d, fx.b, 0, 0, &published, &err), ST_OK);
    assert_int_equal(published, 1);
    assert_int_equal(scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL"), 2);
    assert_int_equal(outbox_relay_once(fx.d, fx.b, 0, 0, &published, &err), ST_OK);
    assert_int_equal(published, 0);
    /* Another key does not open it either. */
    vault_keys other;
    assert_int_equal(vault_keys_from_base64("ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=",
                                            &other, NULL),
                     ST_OK);
    assert_int_equal(outbox_relay_once_sealed(fx.d, fx.b, &other, 0, 0, &published, &err),
                     ST_INVALID);
    assert_int_equal(outbox_relay_once_sealed(fx.d, fx.b, &keys, 0, 0, &published, &err), ST_OK);
    assert_int_equal(published, 2); /* s1 and p2; p1 went out before */
    char ids[4][64], payloads[4][64];
    assert_int_equal(stream_messages(ids, payloads, 4), 3);
    assert_string_equal(ids[1], "s1");
    assert_string_equal(payloads[1], "{\"to\":\"U0123456789abcdef0123456789abcdef\"}");
    assert_string_equal(ids[2], "p2");
}

ESS_TEST(a_sealed_row_moved_to_another_msg_id_does_not_open)
{
    vault_keys keys;
    assert_int_equal(vault_keys_from_base64(data_key, &keys, NULL), ST_OK);
    add_sealed(&keys, "a", "{\"n\":1}");
    add_sealed(&keys, "b", "{\"n\":2}");
    st_error err = {0};
    assert_int_equal(db_exec(fx.d,
                             "UPDATE outbox SET payload = (SELECT payload FROM outbox "
                             "WHERE msg_id = 'a') WHERE msg_id = 'b'",
                             0, NULL, NULL, &err),
                     ST_OK);
    size_t published = 0;
    assert_int_equal(outbox_relay_once_sealed(fx.d, fx.b, &keys, 0, 0, &published, &err),
                     ST_INVALID);
}

ESS_TEST(relay_thread_opens_sealed_rows_with_its_copy_of_the_keys)
{
    vault_keys *keys = malloc(sizeof(*keys));
    assert_int_equal(vault_keys_from_base64(data_key, keys, NULL), ST_OK);
    outbox_options options = {.pg_dsn = fx.dsn, .bus = fx.b, .poll_ms = 50, .keys = keys};
    outbox_relay *relay = NULL;
    st_error err = {0};
    assert_int_equal(outbox_relay_start(&options, &relay, &err), ST_OK);
    add_sealed(keys, "t1", "{}");
    vault_keys_wipe(keys); /* the relay keeps its own copy */
    free(keys);
    outbox_relay_kick(relay);
    count_wait one = {1};
    assert_true(testkit_wait_until(stream_has, &one, 10000));
    outbox_relay_stop(relay);
}

ESS_TEST_MAIN(setup, teardown)
