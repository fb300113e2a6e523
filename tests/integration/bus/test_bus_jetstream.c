/* Integration tests of libs/bus against the real nats-server at ESS_TEST_NATS_URL.
 *
 * Each case names its own streams and subjects after testkit_unique() and deletes them at the
 * end, so cases run in any order and in parallel. A second, raw nats.c connection inspects
 * what the server really stored (headers, configs, pending counts). */
#include "testkit.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "bus.h"

/* ---- fixture ----------------------------------------------------------------------------- */

typedef struct fixture {
    const char *url;
    bus *b;
    char token[48];
    char stream[BUS_NAME_MAX];     /* S_<token>, subjects <token>.in.> */
    char dlq_stream[BUS_NAME_MAX]; /* D_<token>, subjects <token>.dlq.> */
    char in_subject[BUS_SUBJECT_MAX];
    char in_filter[BUS_SUBJECT_MAX];
    char dlq_subject[BUS_SUBJECT_MAX];
    natsConnection *raw_conn;
    jsCtx *raw_js;
} fixture;

static void fixture_open(fixture *fx)
{
    memset(fx, 0, sizeof(*fx));
    fx->url = testkit_env("ESS_TEST_NATS_URL");
    testkit_unique(fx->token, sizeof(fx->token));
    snprintf(fx->stream, sizeof(fx->stream), "S_%s", fx->token);
    snprintf(fx->dlq_stream, sizeof(fx->dlq_stream), "D_%s", fx->token);
    snprintf(fx->in_subject, sizeof(fx->in_subject), "%s.in.user.U1", fx->token);
    snprintf(fx->in_filter, sizeof(fx->in_filter), "%s.in.>", fx->token);
    snprintf(fx->dlq_subject, sizeof(fx->dlq_subject), "%s.dlq.tester", fx->token);

    bus_options options = {
        .url = fx->url, .client_name = "ess-test-bus", .request_timeout_ms = 3000};
    st_error err = {0};
    st_code code = bus_connect(&options, &fx->b, &err);
    if (code != ST_OK)
        fail_msg("bus_connect: %s: %s", st_name(code), err.message);
    assert_true(bus_connected(fx->b));

    assert_int_equal(natsConnection_ConnectTo(&fx->raw_conn, fx->url), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&fx->raw_js, fx->raw_conn, NULL), NATS_OK);
}

static void fixture_close(fixture *fx)
{
    if (fx->b != NULL) {
        bus_stream_delete(fx->b, fx->stream, NULL);
        bus_stream_delete(fx->b, fx->dlq_stream, NULL);
    }
    bus_destroy(fx->b);
    jsCtx_Destroy(fx->raw_js);
    natsConnection_Destroy(fx->raw_conn);
    fx->b = NULL;
}

static bus_stream_def make_stream(const char *name, const char *subject)
{
    bus_stream_def def;
    memset(&def, 0, sizeof(def));
    snprintf(def.name, sizeof(def.name), "%s", name);
    snprintf(def.subjects[0], sizeof(def.subjects[0]), "%s", subject);
    def.subject_count = 1;
    def.max_age_ms = 60 * 60 * 1000;
    def.duplicate_window_ms = 2 * 60 * 1000;
    def.max_bytes = -1;
    def.max_msg_size = -1;
    def.replicas = 1;
    return def;
}

static void ensure_ok(st_code code, const st_error *err, const char *what)
{
    if (code != ST_OK)
        fail_msg("%s: %s: %s", what, st_name(code), err->message);
}

/* Main stream <token>.in.> and dead-letter stream <token>.dlq.>. */
static void ensure_streams(fixture *fx)
{
    st_error err = {0};
    char dlq_pattern[BUS_SUBJECT_MAX];
    snprintf(dlq_pattern, sizeof(dlq_pattern), "%s.dlq.>", fx->token);
    bus_stream_def in = make_stream(fx->stream, fx->in_filter);
    bus_stream_def dlq = make_stream(fx->dlq_stream, dlq_pattern);
    ensure_ok(bus_ensure_stream(fx->b, &in, &err), &err, "ensure stream");
    ensure_ok(bus_ensure_stream(fx->b, &dlq, &err), &err, "ensure dlq stream");
}

static bus_consumer_def make_consumer(const fixture *fx, const char *durable, int max_deliver)
{
    bus_consumer_def def;
    memset(&def, 0, sizeof(def));
    snprintf(def.stream, sizeof(def.stream), "%s", fx->stream);
    snprintf(def.durable, sizeof(def.durable), "%s", durable);
    snprintf(def.filter_subject, sizeof(def.filter_subject), "%s", fx->in_filter);
    snprintf(def.dead_letter_subject, sizeof(def.dead_letter_subject), "%s", fx->dlq_subject);
    def.ack_wait_ms = 10000;
    def.max_deliver = max_deliver;
    def.max_ack_pending = 100;
    return def;
}

static void publish_ok(fixture *fx, const char *subject, const char *body, const char *msg_id)
{
    st_error err = {0};
    bus_publish_result result = {0};
    ensure_ok(bus_publish(fx->b, subject, body, strlen(body), msg_id, &result, &err), &err,
              "publish");
    assert_false(result.duplicate);
}

/* ---- a scripted handler that records every delivery --------------------------------------- */

#define RECORD_MAX 16

typedef struct recorder {
    int calls;
    bus_delivery seen[RECORD_MAX]; /* pointers in it are dead after the call: use copies */
    char msg_id[RECORD_MAX][BUS_MSG_ID_MAX];
    char body[RECORD_MAX][64];
    int64_t at_ms[RECORD_MAX];
    /* the script: verdict i is used for call i (last one repeats) */
    bus_verdict verdicts[RECORD_MAX];
    int64_t delays_ms[RECORD_MAX];
    int script_len;
    const char *reason;
} recorder;

static void record_and_answer(const bus_delivery *delivery, bus_outcome *outcome, void *closure)
{
    recorder *rec = closure;
    int i = rec->calls < RECORD_MAX ? rec->calls : RECORD_MAX - 1;
    rec->seen[i] = *delivery;
    snprintf(rec->msg_id[i], sizeof(rec->msg_id[i]), "%s", delivery->msg_id);
    snprintf(rec->body[i], sizeof(rec->body[i]), "%.*s", (int)delivery->len, delivery->data);
    rec->at_ms[i] = testkit_now_ms();
    rec->calls++;
    assert_int_equal(outcome->verdict, BUS_DONE); /* preset by the bus */
    int step = i < rec->script_len ? i : rec->script_len - 1;
    if (rec->script_len > 0) {
        outcome->verdict = rec->verdicts[step];
        outcome->retry_delay_ms = rec->delays_ms[step];
    }
    if (rec->reason != NULL)
        snprintf(outcome->reason, sizeof(outcome->reason), "%s", rec->reason);
}

typedef struct poller {
    bus_consumer *consumer;
    recorder *rec;
    int want_calls;
    uint64_t want_dead_lettered;
    size_t handled;
} poller;

static bool poll_until(void *closure)
{
    poller *p = closure;
    size_t handled = 0;
    st_error err = {0};
    /* One message per fetch, with a wait longer than any redelivery delay in these tests:
     * a fetch that times out leaves a pull request behind on the server, and nats-server 2.9
     * may count a message it hands to such a stale request as not delivered (the next
     * delivery then repeats the count), which would make exact delivery counts flaky. */
    st_code code = bus_consumer_poll(p->consumer, 1, 3000, &handled, &err);
    if (code != ST_OK)
        fail_msg("poll: %s: %s", st_name(code), err.message);
    p->handled += handled;
    bus_consumer_stats stats;
    bus_consumer_get_stats(p->consumer, &stats);
    return p->rec->calls >= p->want_calls && stats.dead_lettered >= p->want_dead_lettered;
}

/* Reads the last dead letter stored on fx->dlq_subject (raw nats.c, headers included). */
static natsMsg *last_dead_letter(fixture *fx)
{
    natsMsg *msg = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetLastMsg(&msg, fx->raw_js, fx->dlq_stream, fx->dlq_subject, NULL, &jerr);
    if (s != NATS_OK)
        fail_msg("no dead letter stored (nats %d js %d)", (int)s, (int)jerr);
    return msg;
}

static void assert_header(natsMsg *msg, const char *key, const char *expected)
{
    const char *value = NULL;
    if (natsMsgHeader_Get(msg, key, &value) != NATS_OK || value == NULL)
        fail_msg("header %s is missing", key);
    if (strcmp(value, expected) != 0)
        fail_msg("header %s is \"%s\", expected \"%s\"", key, value, expected);
}

static int64_t raw_ack_pending(fixture *fx, const char *durable)
{
    jsConsumerInfo *info = NULL;
    assert_int_equal(js_GetConsumerInfo(&info, fx->raw_js, fx->stream, durable, NULL, NULL),
                     NATS_OK);
    int64_t pending = info->NumAckPending;
    jsConsumerInfo_Destroy(info);
    return pending;
}

typedef struct pending_probe {
    fixture *fx;
    const char *durable;
} pending_probe;

static bool nothing_pending(void *closure)
{
    pending_probe *probe = closure;
    return raw_ack_pending(probe->fx, probe->durable) == 0;
}

/* Acks and terms are applied by the server asynchronously: wait for the consumer to settle. */
static void assert_settles(fixture *fx, const char *durable)
{
    pending_probe probe = {.fx = fx, .durable = durable};
    if (!testkit_wait_until(nothing_pending, &probe, 5000))
        fail_msg("consumer %s still has unacknowledged messages", durable);
}

/* ---- (1) publish de-duplication ---------------------------------------------------------- */

ESS_TEST(publish_dedupes_by_msg_id)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    ensure_streams(&fx);
    st_error err = {0};
    bus_publish_result first = {0}, again = {0}, other = {0};

    ensure_ok(bus_publish(fx.b, fx.in_subject, "one", 3, "evt-1", &first, &err), &err, "first");
    assert_false(first.duplicate);
    assert_int_equal(first.stream_seq, 1);
    ensure_ok(bus_publish(fx.b, fx.in_subject, "one", 3, "evt-1", &again, &err), &err, "again");
    assert_true(again.duplicate);
    assert_int_equal(again.stream_seq, 1);
    ensure_ok(bus_publish(fx.b, fx.in_subject, "two", 3, "evt-2", &other, &err), &err, "other");
    assert_false(other.duplicate);
    assert_int_equal(other.stream_seq, 2);
    /* Without a msg-id there is no de-duplication. */
    ensure_ok(bus_publish(fx.b, fx.in_subject, "x", 1, NULL, NULL, &err), &err, "no id 1");
    ensure_ok(bus_publish(fx.b, fx.in_subject, "x", 1, NULL, NULL, &err), &err, "no id 2");

    jsStreamInfo *info = NULL;
    assert_int_equal(js_GetStreamInfo(&info, fx.raw_js, fx.stream, NULL, NULL), NATS_OK);
    assert_int_equal(info->State.Msgs, 4);
    jsStreamInfo_Destroy(info);

    /* No stream stores the subject: unavailable, not a crash or a hang. */
    char stray[BUS_SUBJECT_MAX];
    snprintf(stray, sizeof(stray), "%s.nowhere", fx.token);
    bus_publish_result untouched = {.stream_seq = 77};
    assert_int_equal(bus_publish(fx.b, stray, "x", 1, "id", &untouched, &err), ST_UNAVAILABLE);
    assert_int_equal(untouched.stream_seq, 77);
    assert_null(strstr(err.message, stray)); /* subjects may carry user ids: never in errors */

    char long_id[BUS_MSG_ID_MAX + 1];
    memset(long_id, 'i', BUS_MSG_ID_MAX);
    long_id[BUS_MSG_ID_MAX] = '\0';
    assert_int_equal(bus_publish(fx.b, fx.in_subject, "x", 1, long_id, NULL, &err), ST_INVALID);
    assert_int_equal(bus_publish(fx.b, fx.in_subject, "x", 1, "a\r\nb", NULL, &err), ST_INVALID);
    assert_int_equal(bus_publish(fx.b, "bad..subject", "x", 1, NULL, NULL, &err), ST_INVALID);
    assert_int_equal(bus_publish(fx.b, "wild.*", "x", 1, NULL, NULL, &err), ST_INVALID);
    fixture_close(&fx);
}

/* ---- (2) ensure is idempotent and updates ------------------------------------------------ */

ESS_TEST(ensure_is_idempotent_and_updates_changes)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    st_error err = {0};
    assert_int_equal(bus_stream_exists(fx.b, fx.stream, &err), ST_NOT_FOUND);

    bus_stream_def def = make_stream(fx.stream, fx.in_filter);
    ensure_ok(bus_ensure_stream(fx.b, &def, &err), &err, "create");
    assert_int_equal(bus_stream_exists(fx.b, fx.stream, &err), ST_OK);
    ensure_ok(bus_ensure_stream(fx.b, &def, &err), &err, "again");
    publish_ok(&fx, fx.in_subject, "kept", "keep-1");

    jsStreamInfo *info = NULL;
    assert_int_equal(js_GetStreamInfo(&info, fx.raw_js, fx.stream, NULL, NULL), NATS_OK);
    assert_int_equal(info->Config->Storage, js_FileStorage);
    assert_int_equal(info->Config->Retention, js_LimitsPolicy);
    assert_int_equal(info->Config->MaxAge, 3600LL * 1000000000);
    assert_int_equal(info->Config->Duplicates, 120LL * 1000000000);
    jsStreamInfo_Destroy(info);

    /* Change limits and add a subject: ensure updates in place, messages stay. */
    def.max_age_ms = 2 * 60 * 60 * 1000;
    def.duplicate_window_ms = 30 * 60 * 1000;
    def.max_msg_size = 4096;
    snprintf(def.subjects[1], sizeof(def.subjects[1]), "%s.extra", fx.token);
    def.subject_count = 2;
    ensure_ok(bus_ensure_stream(fx.b, &def, &err), &err, "update");
    info = NULL;
    assert_int_equal(js_GetStreamInfo(&info, fx.raw_js, fx.stream, NULL, NULL), NATS_OK);
    assert_int_equal(info->Config->MaxAge, 7200LL * 1000000000);
    assert_int_equal(info->Config->Duplicates, 1800LL * 1000000000);
    assert_int_equal(info->Config->MaxMsgSize, 4096);
    assert_int_equal(info->Config->SubjectsLen, 2);
    assert_int_equal(info->State.Msgs, 1);
    jsStreamInfo_Destroy(info);
    ensure_ok(bus_ensure_stream(fx.b, &def, &err), &err, "update again");

    /* Consumers: create, idempotent, update. */
    bus_consumer_def consumer = make_consumer(&fx, "tester", 5);
    ensure_ok(bus_ensure_consumer(fx.b, &consumer, &err), &err, "consumer");
    ensure_ok(bus_ensure_consumer(fx.b, &consumer, &err), &err, "consumer again");
    consumer.ack_wait_ms = 20000;
    consumer.max_ack_pending = 7;
    ensure_ok(bus_ensure_consumer(fx.b, &consumer, &err), &err, "consumer update");
    jsConsumerInfo *ci = NULL;
    assert_int_equal(js_GetConsumerInfo(&ci, fx.raw_js, fx.stream, "tester", NULL, NULL), NATS_OK);
    assert_int_equal(ci->Config->AckWait, 20LL * 1000000000);
    assert_int_equal(ci->Config->MaxAckPending, 7);
    assert_int_equal(ci->Config->AckPolicy, js_AckExplicit);
    assert_int_equal(ci->Config->DeliverPolicy, js_DeliverAll);
    assert_string_equal(ci->Config->FilterSubject, fx.in_filter);
    assert_true(ci->Config->DeliverSubject == NULL || ci->Config->DeliverSubject[0] == '\0');
    jsConsumerInfo_Destroy(ci);

    /* The server refuses: a second stream over the same subjects. The error says so. */
    char rival_name[BUS_NAME_MAX];
    snprintf(rival_name, sizeof(rival_name), "R_%s", fx.token);
    bus_stream_def rival = make_stream(rival_name, fx.in_filter);
    assert_int_equal(bus_ensure_stream(fx.b, &rival, &err), ST_CONFLICT);
    assert_non_null(strstr(err.message, "server refused"));
    assert_non_null(strstr(err.message, rival_name));
    assert_int_equal(bus_stream_exists(fx.b, rival_name, &err), ST_NOT_FOUND);

    /* A push consumer under one of our durable names cannot be updated into a pull one. */
    jsConsumerConfig push;
    jsConsumerConfig_Init(&push);
    push.Durable = "pushed";
    push.DeliverSubject = "push.here";
    push.AckPolicy = js_AckExplicit;
    assert_int_equal(js_AddConsumer(NULL, fx.raw_js, fx.stream, &push, NULL, NULL), NATS_OK);
    bus_consumer_def pushed = consumer;
    snprintf(pushed.durable, sizeof(pushed.durable), "pushed");
    assert_int_equal(bus_ensure_consumer(fx.b, &pushed, &err), ST_CONFLICT);

    /* A consumer of a stream that does not exist. */
    bus_consumer_def orphan = consumer;
    snprintf(orphan.stream, sizeof(orphan.stream), "NO_%s", fx.token);
    assert_int_equal(bus_ensure_consumer(fx.b, &orphan, &err), ST_NOT_FOUND);

    /* bus_ensure over a whole registry document. */
    char document[2048];
    snprintf(document, sizeof(document),
             "{\"version\":1,\"streams\":[{\"name\":\"%s\",\"subjects\":[\"%s.in.>\"],"
             "\"max_age\":\"1h\",\"duplicate_window\":\"2m\"},"
             "{\"name\":\"%s\",\"subjects\":[\"%s.dlq.>\"],\"max_age\":\"1h\","
             "\"duplicate_window\":\"2m\"}],"
             "\"consumers\":[{\"durable\":\"reg\",\"stream\":\"%s\",\"filter_subject\":\"%s.in.>\","
             "\"dead_letter_subject\":\"%s\",\"ack_wait\":\"10s\",\"max_deliver\":3,"
             "\"max_ack_pending\":10}]}",
             fx.stream, fx.token, fx.dlq_stream, fx.token, fx.stream, fx.token, fx.dlq_subject);
    bus_registry *registry = NULL;
    ensure_ok(bus_registry_parse(document, strlen(document), &registry, &err), &err, "parse");
    ensure_ok(bus_ensure(fx.b, registry, &err), &err, "bus_ensure");
    ensure_ok(bus_ensure(fx.b, registry, &err), &err, "bus_ensure again");
    assert_int_equal(bus_stream_exists(fx.b, fx.dlq_stream, &err), ST_OK);
    assert_int_equal(raw_ack_pending(&fx, "reg"), 0);
    bus_registry_destroy(registry);

    assert_int_equal(bus_stream_delete(fx.b, fx.dlq_stream, &err), ST_OK);
    assert_int_equal(bus_stream_delete(fx.b, fx.dlq_stream, &err), ST_NOT_FOUND);
    fixture_close(&fx);
}

/* ---- (3) nak with delay ------------------------------------------------------------------- */

ESS_TEST(retry_naks_with_delay_and_redelivers)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    ensure_streams(&fx);
    st_error err = {0};
    bus_consumer_def def = make_consumer(&fx, "tester", 5);
    ensure_ok(bus_ensure_consumer(fx.b, &def, &err), &err, "consumer");

    recorder rec = {.verdicts = {BUS_RETRY, BUS_DONE},
                    .delays_ms = {700, 0},
                    .script_len = 2,
                    .reason = "database busy"};
    bus_consumer *consumer = NULL;
    ensure_ok(bus_consumer_create(fx.b, &def, "tester", record_and_answer, &rec, &consumer, &err),
              &err, "consumer create");

    publish_ok(&fx, fx.in_subject, "{\"n\":1}", "retry-1");
    poller p = {.consumer = consumer, .rec = &rec, .want_calls = 2};
    assert_true(testkit_wait_until(poll_until, &p, 15000));

    assert_int_equal(rec.seen[0].delivered, 1);
    assert_int_equal(rec.seen[1].delivered, 2);
    assert_int_equal(rec.seen[0].stream_seq, 1);
    assert_int_equal(rec.seen[1].stream_seq, 1);
    assert_int_equal(rec.seen[0].max_deliver, 5);
    assert_string_equal(rec.msg_id[0], "retry-1");
    assert_string_equal(rec.body[1], "{\"n\":1}");
    int64_t gap = rec.at_ms[1] - rec.at_ms[0];
    if (gap < 699)
        fail_msg("redelivered after %lld ms, before the 700 ms delay", (long long)gap);
    /* The stream's timestamp is wall-clock nanoseconds of the store. */
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t wall_ns = (int64_t)wall.tv_sec * 1000000000 + wall.tv_nsec;
    assert_true(rec.seen[0].timestamp_ns > wall_ns - 60LL * 1000000000);
    assert_true(rec.seen[0].timestamp_ns <= wall_ns + 1000000000);

    bus_consumer_stats stats;
    bus_consumer_get_stats(consumer, &stats);
    assert_int_equal(stats.naked, 1);
    assert_int_equal(stats.acked, 1);
    assert_int_equal(stats.dead_lettered, 0);

    /* A quiet stream: ST_OK with nothing handled. */
    size_t handled = 99;
    ensure_ok(bus_consumer_poll(consumer, 5, 200, &handled, &err), &err, "quiet poll");
    assert_int_equal(handled, 0);
    bus_consumer_destroy(consumer);
    /* Destroy keeps the durable. */
    assert_settles(&fx, "tester");
    fixture_close(&fx);
}

/* ---- (4) dead-lettering after max_deliver ------------------------------------------------ */

ESS_TEST(retry_on_last_delivery_dead_letters_and_terminates)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    ensure_streams(&fx);
    st_error err = {0};
    bus_consumer_def def = make_consumer(&fx, "tester", 3);
    ensure_ok(bus_ensure_consumer(fx.b, &def, &err), &err, "consumer");
    recorder rec = {.verdicts = {BUS_RETRY},
                    .delays_ms = {0},
                    .script_len = 1,
                    .reason = "database unavailable"};
    bus_consumer *consumer = NULL;
    ensure_ok(bus_consumer_create(fx.b, &def, "tester", record_and_answer, &rec, &consumer, &err),
              &err, "consumer create");

    const char body[] = "{\"event\":\"original body\"}";
    publish_ok(&fx, fx.in_subject, body, "poison-1");
    poller p = {.consumer = consumer, .rec = &rec, .want_calls = 3, .want_dead_lettered = 1};
    assert_true(testkit_wait_until(poll_until, &p, 15000));
    assert_int_equal(rec.calls, 3);
    assert_int_equal(rec.seen[2].delivered, 3);

    natsMsg *letter = last_dead_letter(&fx);
    assert_int_equal(natsMsg_GetDataLength(letter), (int)strlen(body));
    assert_memory_equal(natsMsg_GetData(letter), body, strlen(body));
    assert_header(letter, BUS_DLQ_HDR_REASON, "database unavailable");
    assert_header(letter, "Ess-Dlq-Service", "tester");
    assert_header(letter, "Ess-Dlq-Stream", fx.stream);
    assert_header(letter, "Ess-Dlq-Consumer", "tester");
    assert_header(letter, "Ess-Dlq-Subject", fx.in_subject);
    assert_header(letter, "Ess-Dlq-Seq", "1");
    assert_header(letter, "Ess-Dlq-Delivered", "3");
    char letter_id[128];
    snprintf(letter_id, sizeof(letter_id), "dlq.%s.tester.1", fx.stream);
    assert_header(letter, "Nats-Msg-Id", letter_id);
    natsMsg_Destroy(letter);

    /* Terminated: nothing pending, nothing comes back. */
    assert_settles(&fx, "tester");
    size_t handled = 9;
    ensure_ok(bus_consumer_poll(consumer, 5, 500, &handled, &err), &err, "poll after");
    assert_int_equal(handled, 0);
    assert_int_equal(rec.calls, 3);
    bus_consumer_stats stats;
    bus_consumer_get_stats(consumer, &stats);
    assert_int_equal(stats.naked, 2);
    assert_int_equal(stats.dead_lettered, 1);
    assert_int_equal(stats.terminated, 1);
    assert_int_equal(stats.acked, 0);
    bus_consumer_destroy(consumer);
    fixture_close(&fx);
}

/* ---- (5) reject dead-letters at once ----------------------------------------------------- */

ESS_TEST(reject_dead_letters_immediately)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    ensure_streams(&fx);
    st_error err = {0};
    bus_consumer_def def = make_consumer(&fx, "tester", 8);
    ensure_ok(bus_ensure_consumer(fx.b, &def, &err), &err, "consumer");
    /* A reason with a line break must not break the header block. */
    recorder rec = {
        .verdicts = {BUS_REJECT}, .script_len = 1, .reason = "not JSON\r\nInjected: yes"};
    bus_consumer *consumer = NULL;
    ensure_ok(bus_consumer_create(fx.b, &def, "tester", record_and_answer, &rec, &consumer, &err),
              &err, "consumer create");
    publish_ok(&fx, fx.in_subject, "<<<garbage", "garbage-1");
    poller p = {.consumer = consumer, .rec = &rec, .want_calls = 1, .want_dead_lettered = 1};
    assert_true(testkit_wait_until(poll_until, &p, 10000));
    assert_int_equal(rec.calls, 1);

    natsMsg *letter = last_dead_letter(&fx);
    assert_header(letter, BUS_DLQ_HDR_REASON, "not JSON  Injected: yes");
    assert_header(letter, "Ess-Dlq-Delivered", "1");
    const char *injected = NULL;
    assert_int_not_equal(natsMsgHeader_Get(letter, "Injected", &injected), NATS_OK);
    assert_memory_equal(natsMsg_GetData(letter), "<<<garbage", 10);
    natsMsg_Destroy(letter);
    assert_settles(&fx, "tester");
    bus_consumer_destroy(consumer);
    fixture_close(&fx);
}

/* A message whose handler never settled it (the service died) is dead-lettered on its next
 * delivery past max_deliver, without running the handler again. */
ESS_TEST(delivery_past_max_deliver_is_dead_lettered_without_handler)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    ensure_streams(&fx);
    st_error err = {0};
    bus_consumer_def def = make_consumer(&fx, "tester", 1);
    def.ack_wait_ms = 1000;
    ensure_ok(bus_ensure_consumer(fx.b, &def, &err), &err, "consumer");
    publish_ok(&fx, fx.in_subject, "crashes the handler", "crash-1");

    /* A "crashed" instance takes delivery 1 and never answers. */
    natsSubscription *crashed = NULL;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = fx.stream;
    so.Consumer = "tester";
    assert_int_equal(js_PullSubscribe(&crashed, fx.raw_js, fx.in_filter, "tester", NULL, &so, NULL),
                     NATS_OK);
    natsMsgList list = {0};
    assert_int_equal(natsSubscription_Fetch(&list, crashed, 1, 5000, NULL), NATS_OK);
    assert_int_equal(list.Count, 1);
    natsMsgList_Destroy(&list);
    natsSubscription_Destroy(crashed);

    recorder rec = {.verdicts = {BUS_DONE}, .script_len = 1};
    bus_consumer *consumer = NULL;
    ensure_ok(bus_consumer_create(fx.b, &def, "tester", record_and_answer, &rec, &consumer, &err),
              &err, "consumer create");
    poller p = {.consumer = consumer, .rec = &rec, .want_calls = 0, .want_dead_lettered = 1};
    assert_true(testkit_wait_until(poll_until, &p, 10000));
    assert_int_equal(rec.calls, 0);
    natsMsg *letter = last_dead_letter(&fx);
    assert_header(letter, "Ess-Dlq-Delivered", "2");
    const char *reason = NULL;
    assert_int_equal(natsMsgHeader_Get(letter, BUS_DLQ_HDR_REASON, &reason), NATS_OK);
    assert_non_null(strstr(reason, "more than max_deliver 1"));
    natsMsg_Destroy(letter);
    assert_settles(&fx, "tester");
    bus_consumer_destroy(consumer);
    fixture_close(&fx);
}

/* When the dead letter cannot be stored the message is not lost: it is nak'ed, comes back,
 * and is dead-lettered once the dead-letter stream exists. */
ESS_TEST(failed_dead_letter_is_retried_not_lost)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    st_error err = {0};
    bus_stream_def in = make_stream(fx.stream, fx.in_filter);
    ensure_ok(bus_ensure_stream(fx.b, &in, &err), &err, "stream");
    bus_consumer_def def = make_consumer(&fx, "tester", 1);
    ensure_ok(bus_ensure_consumer(fx.b, &def, &err), &err, "consumer");
    recorder rec = {.verdicts = {BUS_REJECT}, .script_len = 1, .reason = "poison"};
    bus_consumer *consumer = NULL;
    ensure_ok(bus_consumer_create(fx.b, &def, "tester", record_and_answer, &rec, &consumer, &err),
              &err, "consumer create");
    publish_ok(&fx, fx.in_subject, "keep me", "keep-1");

    size_t handled = 0;
    ensure_ok(bus_consumer_poll(consumer, 1, 3000, &handled, &err), &err, "poll");
    assert_int_equal(handled, 1);
    bus_consumer_stats stats;
    bus_consumer_get_stats(consumer, &stats);
    assert_int_equal(stats.dead_lettered, 0); /* no stream stores the dead letter yet */
    assert_int_equal(stats.terminated, 0);
    assert_int_equal(stats.naked, 1);

    char dlq_pattern[BUS_SUBJECT_MAX];
    snprintf(dlq_pattern, sizeof(dlq_pattern), "%s.dlq.>", fx.token);
    bus_stream_def dlq = make_stream(fx.dlq_stream, dlq_pattern);
    ensure_ok(bus_ensure_stream(fx.b, &dlq, &err), &err, "dlq stream");
    poller p = {.consumer = consumer, .rec = &rec, .want_calls = 1, .want_dead_lettered = 1};
    assert_true(testkit_wait_until(poll_until, &p, 15000));
    assert_int_equal(rec.calls, 1); /* redelivery 2 > max_deliver 1: no second handler run */
    natsMsg *letter = last_dead_letter(&fx);
    assert_memory_equal(natsMsg_GetData(letter), "keep me", 7);
    natsMsg_Destroy(letter);
    bus_consumer_destroy(consumer);
    fixture_close(&fx);
}

/* ---- (6) batches ------------------------------------------------------------------------- */

ESS_TEST(batch_of_async_publishes_counts_stored_and_duplicates)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    ensure_streams(&fx);
    st_error err = {0};
    enum { UNIQUE = 60, REPEATED = 5 };

    bus_batch *batch = NULL;
    ensure_ok(bus_batch_create(fx.b, &batch, &err), &err, "batch");
    char id[32], body[32];
    for (int i = 0; i < UNIQUE + REPEATED; i++) {
        int n = i < UNIQUE ? i : i - UNIQUE; /* the last ones repeat ids 0..4 */
        snprintf(id, sizeof(id), "evt-%d", n);
        snprintf(body, sizeof(body), "{\"n\":%d}", n);
        ensure_ok(bus_batch_add(batch, fx.in_subject, body, strlen(body), id, &err), &err, "add");
    }
    bus_batch_result result = {0};
    ensure_ok(bus_batch_wait(batch, 10000, &result, &err), &err, "wait");
    assert_int_equal(result.stored, UNIQUE);
    assert_int_equal(result.duplicates, REPEATED);
    assert_int_equal(result.failed, 0);
    bus_batch_destroy(batch);

    /* A second batch of old ids: all duplicates, all acknowledged. */
    ensure_ok(bus_batch_create(fx.b, &batch, &err), &err, "batch 2");
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "evt-%d", i);
        ensure_ok(bus_batch_add(batch, fx.in_subject, "again", 5, id, &err), &err, "add 2");
    }
    ensure_ok(bus_batch_wait(batch, 10000, &result, &err), &err, "wait 2");
    assert_int_equal(result.stored, 0);
    assert_int_equal(result.duplicates, 10);
    bus_batch_destroy(batch);

    /* An empty batch is settled. */
    ensure_ok(bus_batch_create(fx.b, &batch, &err), &err, "batch 3");
    ensure_ok(bus_batch_wait(batch, 0, &result, &err), &err, "wait 3");
    assert_int_equal(result.stored + result.duplicates + result.failed, 0);
    bus_batch_destroy(batch);

    jsStreamInfo *info = NULL;
    assert_int_equal(js_GetStreamInfo(&info, fx.raw_js, fx.stream, NULL, NULL), NATS_OK);
    assert_int_equal(info->State.Msgs, UNIQUE);
    jsStreamInfo_Destroy(info);
    fixture_close(&fx);
}

/* Acks of a destroyed batch arrive later and must be ignored without touching freed memory
 * (ASan would report it). */
ESS_TEST(batch_destroyed_before_its_acks_is_safe)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    ensure_streams(&fx);
    st_error err = {0};
    for (int round = 0; round < 5; round++) {
        bus_batch *batch = NULL;
        ensure_ok(bus_batch_create(fx.b, &batch, &err), &err, "batch");
        for (int i = 0; i < 100; i++)
            ensure_ok(bus_batch_add(batch, fx.in_subject, "x", 1, NULL, &err), &err, "add");
        bus_batch_destroy(batch); /* acks still in flight */
    }
    bus_batch *batch = NULL;
    ensure_ok(bus_batch_create(fx.b, &batch, &err), &err, "last batch");
    ensure_ok(bus_batch_add(batch, fx.in_subject, "y", 1, "last", &err), &err, "add last");
    bus_batch_result result = {0};
    ensure_ok(bus_batch_wait(batch, 10000, &result, &err), &err, "wait last");
    assert_int_equal(result.stored, 1);
    bus_batch_destroy(batch);
    fixture_close(&fx);
}

/* ---- (7) on_done fires once -------------------------------------------------------------- */

typedef struct done_probe {
    atomic_int calls;
    st_code status;
    bus_batch_result result;
    bool destroy_in_callback;
} done_probe;

static void on_done(bus_batch *batch, st_code status, const bus_batch_result *result, void *closure)
{
    done_probe *probe = closure;
    probe->status = status;
    probe->result = *result;
    if (probe->destroy_in_callback)
        bus_batch_destroy(batch);
    atomic_fetch_add(&probe->calls, 1);
}

static bool called_once(void *closure)
{
    return atomic_load(&((done_probe *)closure)->calls) >= 1;
}

static bool called_twice(void *closure)
{
    return atomic_load(&((done_probe *)closure)->calls) >= 2;
}

ESS_TEST(batch_on_done_fires_exactly_once)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    ensure_streams(&fx);
    st_error err = {0};

    done_probe probe = {0};
    bus_batch *batch = NULL;
    ensure_ok(bus_batch_create(fx.b, &batch, &err), &err, "batch");
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof(id), "d-%d", i % 15); /* 5 duplicates */
        ensure_ok(bus_batch_add(batch, fx.in_subject, "x", 1, id, &err), &err, "add");
    }
    ensure_ok(bus_batch_on_done(batch, 10000, on_done, &probe, &err), &err, "on_done");
    assert_int_equal(bus_batch_on_done(batch, 10000, on_done, &probe, &err), ST_INVALID);
    assert_true(testkit_wait_until(called_once, &probe, 10000));
    assert_false(testkit_wait_until(called_twice, &probe, 300));
    assert_int_equal(probe.status, ST_OK);
    assert_int_equal(probe.result.stored, 15);
    assert_int_equal(probe.result.duplicates, 5);
    assert_int_equal(probe.result.failed, 0);
    bus_batch_destroy(batch);

    /* Already settled when armed: still called once, from the bus's thread. */
    done_probe empty = {.destroy_in_callback = true};
    ensure_ok(bus_batch_create(fx.b, &batch, &err), &err, "empty batch");
    ensure_ok(bus_batch_on_done(batch, 10000, on_done, &empty, &err), &err, "on_done empty");
    assert_true(testkit_wait_until(called_once, &empty, 5000));
    assert_false(testkit_wait_until(called_twice, &empty, 200));
    assert_int_equal(empty.status, ST_OK);

    /* Timeout: a plain subscriber takes the publish and never answers. */
    char silent[BUS_SUBJECT_MAX];
    snprintf(silent, sizeof(silent), "%s.silent", fx.token);
    natsSubscription *sink = NULL;
    assert_int_equal(natsConnection_SubscribeSync(&sink, fx.raw_conn, silent), NATS_OK);
    assert_int_equal(natsConnection_Flush(fx.raw_conn), NATS_OK);
    done_probe late = {.destroy_in_callback = true};
    ensure_ok(bus_batch_create(fx.b, &batch, &err), &err, "silent batch");
    ensure_ok(bus_batch_add(batch, silent, "x", 1, NULL, &err), &err, "silent add");
    int64_t armed_at = testkit_now_ms();
    ensure_ok(bus_batch_on_done(batch, 300, on_done, &late, &err), &err, "on_done silent");
    assert_true(testkit_wait_until(called_once, &late, 5000));
    assert_true(testkit_now_ms() - armed_at >= 299);
    assert_int_equal(late.status, ST_TIMEOUT);
    assert_int_equal(late.result.failed, 1);
    assert_false(testkit_wait_until(called_twice, &late, 200));
    natsSubscription_Destroy(sink);
    fixture_close(&fx); /* the late ack (library timeout) finds no batch */
}

/* ---- (8) a dead server ------------------------------------------------------------------- */

ESS_TEST(connect_to_dead_port_fails_fast)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", testkit_free_port());
    bus_options options = {.url = url, .connect_timeout_ms = 1000};
    bus *b = NULL;
    st_error err = {0};
    int64_t started = testkit_now_ms();
    assert_int_equal(bus_connect(&options, &b, &err), ST_UNAVAILABLE);
    assert_true(testkit_now_ms() - started < 3000);
    assert_null(b);
    assert_null(strstr(err.message, url));

    /* Services: connect succeeds, not connected, operations are unavailable. */
    options.retry_on_failed_connect = true;
    options.reconnect_wait_ms = 100;
    ensure_ok(bus_connect(&options, &b, &err), &err, "retrying connect");
    assert_false(bus_connected(b));
    assert_int_equal(bus_publish(b, "a.b", "x", 1, NULL, NULL, &err), ST_UNAVAILABLE);
    bus_batch *batch = NULL;
    ensure_ok(bus_batch_create(b, &batch, &err), &err, "batch while down");
    assert_int_equal(bus_batch_add(batch, "a.b", "x", 1, NULL, &err), ST_UNAVAILABLE);
    bus_batch_destroy(batch);
    bus_destroy(b);

    assert_int_equal(bus_connect(NULL, &b, &err), ST_INVALID);
    bus_options no_url = {0};
    assert_int_equal(bus_connect(&no_url, &b, &err), ST_INVALID);
    bus_destroy(NULL);
    assert_false(bus_connected(NULL));
}

/* ---- (9) a batch with no stream ---------------------------------------------------------- */

ESS_TEST(batch_to_subject_without_stream_fails)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    st_error err = {0};
    char stray[BUS_SUBJECT_MAX];
    snprintf(stray, sizeof(stray), "%s.nowhere", fx.token);
    bus_batch *batch = NULL;
    ensure_ok(bus_batch_create(fx.b, &batch, &err), &err, "batch");
    ensure_ok(bus_batch_add(batch, stray, "x", 1, "n-1", &err), &err, "add");
    ensure_ok(bus_batch_add(batch, stray, "y", 1, "n-2", &err), &err, "add");
    bus_batch_result result = {0};
    int64_t started = testkit_now_ms();
    st_code code = bus_batch_wait(batch, 2000, &result, &err);
    assert_true(code == ST_TIMEOUT || code == ST_UNAVAILABLE);
    assert_true(testkit_now_ms() - started < 2500);
    assert_int_equal(result.failed, 2);
    assert_int_equal(result.stored, 0);
    assert_null(strstr(err.message, stray));
    bus_batch_destroy(batch);
    fixture_close(&fx);
}

/* The library times out an unanswered async publish after request_timeout_ms: a batch wait
 * longer than that ends early with the publish counted as failed. */
ESS_TEST(batch_publish_fails_after_request_timeout)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    bus_options options = {.url = fx.url, .request_timeout_ms = 400};
    bus *quick = NULL;
    st_error err = {0};
    ensure_ok(bus_connect(&options, &quick, &err), &err, "connect");
    char silent[BUS_SUBJECT_MAX];
    snprintf(silent, sizeof(silent), "%s.silent", fx.token);
    natsSubscription *sink = NULL;
    assert_int_equal(natsConnection_SubscribeSync(&sink, fx.raw_conn, silent), NATS_OK);
    assert_int_equal(natsConnection_Flush(fx.raw_conn), NATS_OK);

    bus_batch *batch = NULL;
    ensure_ok(bus_batch_create(quick, &batch, &err), &err, "batch");
    ensure_ok(bus_batch_add(batch, silent, "x", 1, NULL, &err), &err, "add");
    bus_batch_result result = {0};
    int64_t started = testkit_now_ms();
    assert_int_equal(bus_batch_wait(batch, 10000, &result, &err), ST_UNAVAILABLE);
    int64_t took = testkit_now_ms() - started;
    assert_true(took >= 350 && took < 5000);
    assert_int_equal(result.failed, 1);
    assert_non_null(strstr(err.message, "1 of 1 publishes failed"));
    bus_batch_destroy(batch);

    /* The sync publish has the same bound and says so. */
    started = testkit_now_ms();
    assert_int_equal(bus_publish(quick, silent, "x", 1, NULL, NULL, &err), ST_TIMEOUT);
    assert_true(testkit_now_ms() - started < 5000);
    natsSubscription_Destroy(sink);
    bus_destroy(quick);
    fixture_close(&fx);
}

/* ---- reconnecting ------------------------------------------------------------------------ */

static bool find_nats_server(char *out, size_t out_size)
{
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/usr/local/bin", path != NULL ? path : "");
    for (char *dir = dirs, *next; dir != NULL; dir = next) {
        next = strchr(dir, ':');
        if (next != NULL)
            *next++ = '\0';
        if (snprintf(out, out_size, "%s/nats-server", dir) >= (int)out_size)
            continue;
        if (access(out, X_OK) == 0)
            return true;
    }
    return false;
}

typedef struct own_server {
    char binary[512];
    char port[16];
    char store[128];
    int pid;
} own_server;

static void own_server_start(own_server *server)
{
    const char *argv[] = {server->binary, "-js", "-a",          "127.0.0.1", "-p",
                          server->port,   "-sd", server->store, NULL};
    server->pid = testkit_spawn(argv, NULL, NULL);
    assert_true(server->pid > 0);
}

static bool is_connected(void *closure)
{
    return bus_connected(closure);
}

static bool is_down(void *closure)
{
    return !bus_connected(closure);
}

typedef struct republish {
    bus *b;
    bus_publish_result result;
    st_error err;
} republish;

static bool republish_ok(void *closure)
{
    republish *r = closure;
    return bus_publish(r->b, "reconnect.a", "1", 1, "r-1", &r->result, &r->err) == ST_OK;
}

ESS_TEST(reconnects_forever_and_reports_the_link)
{
    (void)state;
    own_server server = {0};
    if (!find_nats_server(server.binary, sizeof(server.binary)))
        skip();
    snprintf(server.port, sizeof(server.port), "%d", testkit_free_port());
    char token[48];
    testkit_unique(token, sizeof(token));
    snprintf(server.store, sizeof(server.store), "/tmp/ess-bus-test-%s", token);
    char url[64];
    snprintf(url, sizeof(url), "nats://127.0.0.1:%s", server.port);

    /* A service starts before NATS: connect succeeds, reports not connected. */
    bus_options options = {.url = url,
                           .reconnect_wait_ms = 100,
                           .connect_timeout_ms = 500,
                           .request_timeout_ms = 2000,
                           .retry_on_failed_connect = true};
    bus *b = NULL;
    st_error err = {0};
    ensure_ok(bus_connect(&options, &b, &err), &err, "connect before the server");
    assert_false(bus_connected(b));

    own_server_start(&server);
    assert_true(testkit_wait_until(is_connected, b, 15000));
    bus_stream_def def = make_stream("RECONNECT", "reconnect.>");
    ensure_ok(bus_ensure_stream(b, &def, &err), &err, "ensure");
    ensure_ok(bus_publish(b, "reconnect.a", "1", 1, "r-1", NULL, &err), &err, "publish");

    testkit_stop(server.pid, SIGKILL, 5000);
    assert_true(testkit_wait_until(is_down, b, 15000));
    assert_int_equal(bus_publish(b, "reconnect.a", "2", 1, "r-2", NULL, &err), ST_UNAVAILABLE);
    assert_int_equal(bus_stream_exists(b, "RECONNECT", &err), ST_UNAVAILABLE);

    own_server_start(&server);
    assert_true(testkit_wait_until(is_connected, b, 15000));
    /* The first publish after a restart may race JetStream's own recovery: poll. */
    republish republished = {.b = b};
    if (!testkit_wait_until(republish_ok, &republished, 10000))
        fail_msg("publish after restart: %s", republished.err.message);
    assert_true(republished.result.duplicate); /* the file store kept r-1 across the kill */

    bus_destroy(b);
    testkit_stop(server.pid, SIGTERM, 5000);
    char *rm_argv[] = {"/bin/rm", "-rf", server.store, NULL};
    testkit_run((const char *const *)rm_argv, NULL, 10000, NULL);
}

/* ---- deferred settlement ------------------------------------------------------------------ */

typedef struct holder {
    bus_held *held[8];
    int count;
    char body[8][64];
} holder;

static void hold_everything(const bus_delivery *delivery, bus_outcome *outcome, void *closure)
{
    holder *h = closure;
    st_error err = {0};
    if (h->count >= 8 || bus_hold(delivery, &h->held[h->count], &err) != ST_OK) {
        outcome->verdict = BUS_RETRY;
        return;
    }
    snprintf(h->body[h->count], sizeof(h->body[h->count]), "%.*s", (int)delivery->len,
             delivery->data);
    h->count++;
    outcome->verdict = BUS_DEFER;
}

typedef struct settle_args {
    bus_held *held;
    bus_outcome outcome;
} settle_args;

static void *settle_elsewhere(void *arg)
{
    settle_args *a = arg;
    bus_settle(a->held, &a->outcome);
    return NULL;
}

typedef struct hold_poller {
    bus_consumer *consumer;
    holder *h;
    int want;
} hold_poller;

static bool poll_until_held(void *closure)
{
    hold_poller *p = closure;
    size_t handled = 0;
    st_error err = {0};
    if (bus_consumer_poll(p->consumer, 4, 1000, &handled, &err) != ST_OK)
        fail_msg("poll: %s", err.message);
    return p->h->count >= p->want;
}

ESS_TEST(held_deliveries_settle_later_from_another_thread)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    ensure_streams(&fx);
    st_error err = {0};
    bus_consumer_def def = make_consumer(&fx, "holder", 5);
    ensure_ok(bus_ensure_consumer(fx.b, &def, &err), &err, "consumer");
    holder h = {0};
    bus_consumer *consumer = NULL;
    ensure_ok(bus_consumer_create(fx.b, &def, "tester", hold_everything, &h, &consumer, &err),
              &err, "consumer create");
    publish_ok(&fx, fx.in_subject, "{\"n\":1}", "hold-1");
    publish_ok(&fx, fx.in_subject, "{\"n\":2}", "hold-2");
    hold_poller p = {.consumer = consumer, .h = &h, .want = 2};
    assert_true(testkit_wait_until(poll_until_held, &p, 10000));
    assert_int_equal(h.count, 2);
    /* Held, not settled: the server still waits for both. */
    assert_int_equal(raw_ack_pending(&fx, "holder"), 2);
    /* The held data outlives the poll that fetched it. */
    const bus_delivery *second = bus_held_delivery(h.held[1]);
    assert_int_equal(second->len, strlen("{\"n\":2}"));
    assert_memory_equal(second->data, "{\"n\":2}", second->len);
    assert_string_equal(second->msg_id, "hold-2");
    assert_int_equal(bus_held_in_progress(h.held[0], &err), ST_OK);

    /* Settle the first as done and the second as a retry, from another thread. */
    settle_args first = {.held = h.held[0], .outcome = {.verdict = BUS_DONE}};
    settle_args retry = {.held = h.held[1], .outcome = {.verdict = BUS_RETRY, .retry_delay_ms = 0}};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, settle_elsewhere, &first);
    pthread_create(&t2, NULL, settle_elsewhere, &retry);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);

    /* Only the retried one comes back. */
    p.want = 3;
    assert_true(testkit_wait_until(poll_until_held, &p, 10000));
    assert_string_equal(h.body[2], "{\"n\":2}");
    assert_int_equal(bus_held_delivery(h.held[2])->delivered, 2);
    bus_outcome done = {.verdict = BUS_DONE};
    bus_settle(h.held[2], &done);
    assert_settles(&fx, "holder");
    bus_consumer_stats stats;
    bus_consumer_get_stats(consumer, &stats);
    assert_int_equal(stats.acked, 2);
    assert_int_equal(stats.naked, 1);
    /* Holding outside a handler call is refused. */
    bus_held *stray = NULL;
    bus_delivery fake = {0};
    assert_int_equal(bus_hold(&fake, &stray, &err), ST_INVALID);
    bus_consumer_destroy(consumer);
    fixture_close(&fx);
}

/* A service stops its consumer threads before its senders finish: a delivery held when the
 * consumer is destroyed still settles (the consumer is freed by the last settle). */
ESS_TEST(held_delivery_settles_after_its_consumer_is_destroyed)
{
    fixture fx;
    fixture_open(&fx);
    ensure_streams(&fx);
    st_error err = {0};
    bus_consumer_def def = make_consumer(&fx, "outlived", 5);
    ensure_ok(bus_ensure_consumer(fx.b, &def, &err), &err, "consumer");
    holder h = {0};
    bus_consumer *consumer = NULL;
    ensure_ok(bus_consumer_create(fx.b, &def, "tester", hold_everything, &h, &consumer, &err),
              &err, "consumer create");
    publish_ok(&fx, fx.in_subject, "{\"n\":1}", "outlived-1");
    hold_poller p = {.consumer = consumer, .h = &h, .want = 1};
    assert_true(testkit_wait_until(poll_until_held, &p, 10000));
    bus_consumer_destroy(consumer);
    assert_int_equal(bus_held_in_progress(h.held[0], &err), ST_OK);
    bus_outcome done = {.verdict = BUS_DONE};
    bus_settle(h.held[0], &done);
    assert_settles(&fx, "outlived");
    fixture_close(&fx);
}

ESS_TEST_MAIN(NULL, NULL)
