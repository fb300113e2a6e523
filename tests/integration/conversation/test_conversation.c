/* ess-conversation end to end: line-emulator -> ess-ingress -> LINE_IN -> ess-conversation
 * -> PostgreSQL + outbox -> ESS / LINE_OUT, with the test delivering LINE_OUT's commands to
 * the emulator as the notifier will (conv_harness.h). Each case has its own nats-server and
 * database. */
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_harness.h"

#define PHONE_TYPED "081-234-5678"
#define PHONE "0812345678"

static stack *s = &the_stack;

static void tap(const char *user, int index)
{
    char body[64];
    snprintf(body, sizeof(body), "{\"index\":%d}", index);
    user_act(s, user, "tap", body, NULL, 0);
}

static void tap_location(const char *user, int index)
{
    char body[128];
    snprintf(body, sizeof(body),
             "{\"index\":%d,\"latitude\":18.7883,\"longitude\":98.9853,\"title\":\"บ้าน\","
             "\"address\":\"เชียงใหม่\"}",
             index);
    user_act(s, user, "tap", body, NULL, 0);
}

static void text(const char *user, const char *what)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "text", what);
    char *json = cJSON_PrintUnformatted(body);
    user_act(s, user, "text", json, NULL, 0);
    free(json);
    cJSON_Delete(body);
}

static const command_record *last_command(void)
{
    assert_true(s->command_count > 0);
    return &s->commands[s->command_count - 1];
}

static void expect_last_text(const char *fragment)
{
    const command_record *c = last_command();
    if (strstr(c->text, fragment) == NULL)
        fail_msg("command %s says \"%s\", expected \"%s\"", c->command_id, c->text, fragment);
}

/* A whole report by taps, as a person does it; *n counts LINE_OUT commands. */
static void report(const char *user, size_t *n, bool follow)
{
    if (follow) {
        user_act(s, user, "follow", NULL, NULL, 0);
        stack_pump(s, ++*n);
        expect_last_text("เกิดเหตุอะไร");
    }
    tap(user, 1); /* ถูกข่มขู่/ทำร้าย */
    stack_pump(s, ++*n);
    expect_last_text("ส่งตำแหน่ง");
    tap_location(user, 1);
    stack_pump(s, ++*n);
    expect_last_text("เบอร์โทร");
    text(user, PHONE_TYPED);
    stack_pump(s, ++*n);
    expect_last_text("เลขที่เคส ESS-");
}

typedef struct count_wait {
    const char *stream;
    const char *subject;
    uint64_t want;
} count_wait;

static bool subject_reached(void *closure)
{
    count_wait *w = closure;
    return stream_subject_count(s, w->stream, w->subject) >= w->want;
}

static void wait_subject(const char *stream, const char *subject, uint64_t want)
{
    count_wait w = {stream, subject, want};
    if (!testkit_wait_until(subject_reached, &w, 30000))
        fail_msg("%s holds %llu %s, want %llu", stream,
                 (unsigned long long)stream_subject_count(s, stream, subject), subject,
                 (unsigned long long)want);
}

static void expect_phone_opens_to(const char *want)
{
    char *hex = sql_text(s, "SELECT encode(phone_encrypted, 'hex') FROM incidents");
    assert_non_null(hex);
    size_t len = strlen(hex) / 2;
    unsigned char *sealed = malloc(len);
    for (size_t i = 0; i < len; i++) {
        unsigned int byte = 0;
        sscanf(hex + 2 * i, "%2x", &byte);
        sealed[i] = (unsigned char)byte;
    }
    char *plain = NULL;
    size_t plain_len = 0;
    assert_int_equal(vault_open(&s->keys, "incident.phone", sealed, len, &plain, &plain_len, NULL),
                     ST_OK);
    assert_string_equal(plain, want);
    free(plain);
    free(sealed);
    free(hex);
}

static void expect_nowhere_in_clear(const char *value)
{
    char table[128] = "";
    if (database_contains(s, value, table, sizeof(table)))
        fail_msg("'%s' is in table %s in clear", value, table);
    if (logs_contain(s, value))
        fail_msg("'%s' is in a log", value);
}

static void run_essctl(const char *const *args, const char *key, int want_code, char **ret_output)
{
    char binary[512], dsn_env[600], key_env[128];
    snprintf(binary, sizeof(binary), "%s/essctl", testkit_bin_dir());
    snprintf(dsn_env, sizeof(dsn_env), "ESS_PG_DSN=%s", s->dsn);
    snprintf(key_env, sizeof(key_env), "ESS_DATA_KEY=%s", key != NULL ? key : "");
    const char *argv[8] = {binary};
    for (size_t i = 0; args[i] != NULL && i < 6; i++)
        argv[i + 1] = args[i];
    const char *env[] = {dsn_env, key_env, "ESS_OPERATOR=integration-test", NULL};
    char *output = NULL;
    int code = testkit_run(argv, env, 30000, &output);
    if (code != want_code)
        fail_msg("essctl %s %s: exit %d (want %d): %s", args[0], args[1], code, want_code,
                 output != NULL ? output : "");
    if (ret_output != NULL)
        *ret_output = output;
    else
        free(output);
}

/* ---- a report ----------------------------------------------------------------------------- */

ESS_TEST(a_report_is_recorded_once_with_the_phone_sealed)
{
    stack_start(s, NULL);
    char user[64];
    user_create(s, "th", user, sizeof(user));
    size_t n = 0;
    report(user, &n, true);

    /* The incident, once, with a case number of this Buddhist-era year. */
    assert_int_equal(sql_number(s, "SELECT count(*) FROM incidents"), 1);
    assert_int_equal(sql_number(s, "SELECT count(*) FROM incidents WHERE case_number = "
                                   "'ESS-' || (extract(year FROM now() AT TIME ZONE "
                                   "'Asia/Bangkok')::int + 543) || '-000001' AND status = 'new' "
                                   "AND category = 'threat' AND abs(lat - 18.7883) < 1e-9 "
                                   "AND location_title = 'บ้าน' AND language = 'th' "
                                   "AND reporter_key_hash IS NOT NULL "
                                   "AND reporter_id_encrypted IS NOT NULL"),
                     1);
    expect_phone_opens_to(PHONE);
    assert_int_equal(sql_number(s, "SELECT count(*) FROM incident_events WHERE kind = 'reported'"),
                     1);
    assert_int_equal(sql_number(s, "SELECT count(*) FROM conversations WHERE state = 'submitted' "
                                   "AND incident_id IS NOT NULL"),
                     1);
    char *case_number = sql_text(s, "SELECT case_number FROM incidents");
    expect_last_text(case_number);
    expect_last_text("191");

    /* ess.incident.reported, once, without the phone or the user. */
    wait_subject("ESS", "ess.incident.reported", 1);
    assert_int_equal(stream_total(s, "ESS"), 1);
    char msg_id[64];
    char *event = stream_get(s, "ESS", 1, msg_id, sizeof(msg_id), NULL, 0);
    char *incident_id = sql_text(s, "SELECT id FROM incidents");
    char want_id[64];
    snprintf(want_id, sizeof(want_id), "reported.%s", incident_id);
    assert_string_equal(msg_id, want_id);
    assert_non_null(strstr(event, case_number));
    assert_non_null(strstr(event, "\"has_phone\":true"));
    assert_null(strstr(event, "812345678"));
    assert_null(strstr(event, user));
    free(event);

    /* Every answer was a fresh reply, silent, to this user; one per event. */
    assert_int_equal(s->command_count, 4);
    for (size_t i = 0; i < s->command_count; i++) {
        assert_true(s->commands[i].reply);
        assert_true(s->commands[i].notification_disabled);
        assert_string_equal(s->commands[i].to, user);
    }

    /* The plain number in no table and no log, in any of the shapes it can take; the user id
     * in no table and no log either (the outbox holds commands sealed). */
    const char *shapes[] = {PHONE, PHONE_TYPED, "081 234 5678", "+66812345678", "66812345678",
                            "812345678", user};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        expect_nowhere_in_clear(shapes[i]);
    /* The searches can find things: the case number is in a table, the start in the log. */
    char table[128] = "";
    assert_true(database_contains(s, case_number, table, sizeof(table)));
    assert_true(logs_contain(s, "svc.started"));

    /* essctl incident list / show: masked, revealed with the key, never the user id. */
    char *output = NULL;
    run_essctl((const char *[]){"incident", "list", "--json", NULL}, NULL, 0, &output);
    assert_non_null(strstr(output, case_number));
    assert_non_null(strstr(output, "\"has_phone\":true"));
    free(output);
    run_essctl((const char *[]){"incident", "show", case_number, "--json", NULL},
               HARNESS_DATA_KEY, 0, &output);
    assert_non_null(strstr(output, "\"phone\":\"08x-xxx-x678\""));
    assert_non_null(strstr(output, "\"kind\":\"reported\""));
    assert_null(strstr(output, PHONE));
    assert_null(strstr(output, user));
    free(output);
    run_essctl((const char *[]){"incident", "show", case_number, NULL}, NULL, 0, &output);
    assert_non_null(strstr(output, "encrypted"));
    assert_null(strstr(output, PHONE));
    free(output);
    run_essctl((const char *[]){"incident", "show", case_number, "--reveal-phone", NULL}, NULL, 2,
               NULL);
    run_essctl((const char *[]){"incident", "show", case_number, "--reveal-phone", "--json", NULL},
               HARNESS_DATA_KEY, 0, &output);
    assert_non_null(strstr(output, "\"phone\":\"" PHONE "\""));
    free(output);
    run_essctl((const char *[]){"incident", "show", "ESS-2400-999999", NULL}, NULL, 1, NULL);
    free(case_number);
    free(incident_id);
}

ESS_TEST(after_submission_information_is_added_and_cancel_closes_the_case)
{
    stack_start(s, NULL);
    char user[64];
    user_create(s, "th", user, sizeof(user));
    size_t n = 0;
    report(user, &n, true);
    tap(user, 2); /* เพิ่มข้อมูล */
    stack_pump(s, ++n);
    expect_last_text("ส่งข้อความ");
    text(user, "เขามีมีด โทร 0899999999");
    stack_pump(s, ++n);
    expect_last_text("เพิ่มข้อมูลในเคส");
    /* Standby: nothing is said; the next event's answer is the next command. */
    user_act(s, user, "text", "{\"text\":\"standby\",\"mode\":\"standby\"}", NULL, 0);
    user_act(s, user, "sticker", "{\"packageId\":\"11537\",\"stickerId\":\"52002734\"}", NULL, 0);
    stack_pump(s, ++n);
    expect_last_text("เพิ่มข้อมูลในเคส");
    user_act(s, user, "image", NULL, NULL, 0);
    stack_pump(s, ++n);
    assert_int_equal(stream_total(s, "LINE_OUT"), n);
    assert_int_equal(sql_number(s, "SELECT count(*) FROM incident_events WHERE kind = 'info_added'"),
                     3);
    assert_int_equal(sql_number(s, "SELECT count(*) FROM incident_events "
                                   "WHERE detail ? 'text_sealed'"),
                     1);
    wait_subject("ESS", "ess.incident.note", 3);
    expect_nowhere_in_clear("0899999999");
    expect_nowhere_in_clear("เขามีมีด");

    tap(user, 1); /* ยกเลิก (แจ้งผิด) */
    stack_pump(s, ++n);
    expect_last_text("ยกเลิกเคส");
    assert_int_equal(sql_number(s, "SELECT count(*) FROM incidents WHERE status = 'cancelled' "
                                   "AND cancelled_at IS NOT NULL"),
                     1);
    assert_int_equal(sql_number(s, "SELECT count(*) FROM conversations WHERE state = 'idle'"), 1);
    wait_subject("ESS", "ess.incident.status", 1);
}

ESS_TEST(a_redelivered_event_changes_nothing)
{
    stack_start(s, NULL);
    char user[64];
    user_create(s, "th", user, sizeof(user));
    size_t n = 0;
    report(user, &n, true);
    wait_subject("ESS", "ess.incident.reported", 1);
    char *before = sql_text(s, "SELECT row_to_json(c)::text FROM conversations c");
    long long outbox_before = sql_number(s, "SELECT count(*) FROM outbox");
    /* LINE redelivering hours later: past JetStream's duplicate window, so the stream takes
     * it again (a new msg-id here) and only PostgreSQL's processed_events can tell. */
    uint64_t events = stream_total(s, "LINE_IN");
    assert_int_equal(events, 4);
    for (uint64_t seq = 1; seq <= events; seq++) {
        char msg_id[64], subject[128], again[80];
        char *payload = stream_get(s, "LINE_IN", seq, msg_id, sizeof(msg_id), subject,
                                   sizeof(subject));
        snprintf(again, sizeof(again), "%s.again", msg_id);
        natsMsg *msg = NULL;
        assert_int_equal(natsMsg_Create(&msg, subject, NULL, payload, (int)strlen(payload)),
                         NATS_OK);
        natsMsgHeader_Set(msg, "Nats-Msg-Id", again);
        jsPubAck *ack = NULL;
        jsErrCode jerr = 0;
        assert_int_equal(js_PublishMsg(&ack, s->js, msg, NULL, &jerr), NATS_OK);
        jsPubAck_Destroy(ack);
        natsMsg_Destroy(msg);
        free(payload);
    }
    /* Wait for the conversation to have seen all four again. */
    const char *series = "ess_conversation_events_total{result=\"duplicate\"}";
    int64_t deadline = testkit_now_ms() + 30000;
    while (conversation_metric(s, 0, series) < 4 && testkit_now_ms() < deadline)
        stack_pump(s, n); /* (re)checks LINE_OUT: nothing new may appear */
    assert_int_equal(conversation_metric(s, 0, series), 4);
    char *after = sql_text(s, "SELECT row_to_json(c)::text FROM conversations c");
    assert_string_equal(before, after);
    assert_int_equal(sql_number(s, "SELECT count(*) FROM outbox"), outbox_before);
    assert_int_equal(sql_number(s, "SELECT count(*) FROM incidents"), 1);
    assert_int_equal(stream_total(s, "LINE_OUT"), n);
    assert_int_equal(stream_total(s, "ESS"), 1);
    free(before);
    free(after);
}

/* ---- crashes ------------------------------------------------------------------------------ */

static void expect_one_report_and_one_answer_per_event(size_t events)
{
    assert_int_equal(sql_number(s, "SELECT count(*) FROM incidents"), 1);
    expect_phone_opens_to(PHONE);
    wait_subject("ESS", "ess.incident.reported", 1);
    assert_int_equal(stream_total(s, "ESS"), 1);
    assert_int_equal(stream_total(s, "LINE_OUT"), events);
    for (size_t i = 0; i < s->command_count; i++)
        for (size_t j = i + 1; j < s->command_count; j++)
            assert_string_not_equal(s->commands[i].command_id, s->commands[j].command_id);
}

ESS_TEST(sigkill_between_dialogue_steps_loses_nothing)
{
    stack_start(s, NULL);
    char user[64];
    user_create(s, "th", user, sizeof(user));
    size_t n = 0;
    user_act(s, user, "follow", NULL, NULL, 0);
    stack_pump(s, ++n);
    conversation_kill(s, 0);
    conversation_start(s, 0, NULL);
    tap(user, 1);
    stack_pump(s, ++n);
    conversation_kill(s, 0);
    conversation_start(s, 0, NULL);
    tap_location(user, 1);
    stack_pump(s, ++n);
    conversation_kill(s, 0);
    conversation_start(s, 0, NULL);
    text(user, PHONE_TYPED);
    stack_pump(s, ++n);
    expect_last_text("เลขที่เคส ESS-");
    conversation_kill(s, 0);
    conversation_start(s, 0, NULL);
    expect_one_report_and_one_answer_per_event(n);
}

/* The conversation kills itself inside the submitting transaction: nothing was committed,
 * JetStream redelivers the event after ack_wait (30 s) to the restarted process. */
ESS_TEST(sigkill_before_commit_then_restart_loses_nothing)
{
    const char *env[] = {"ESS_CONVERSATION_FAILPOINT=before_commit",
                         "ESS_CONVERSATION_FAILPOINT_AT=4", NULL};
    stack_start(s, env);
    char user[64];
    user_create(s, "th", user, sizeof(user));
    size_t n = 0;
    user_act(s, user, "follow", NULL, NULL, 0);
    stack_pump(s, ++n);
    tap(user, 1);
    stack_pump(s, ++n);
    tap_location(user, 1);
    stack_pump(s, ++n);
    text(user, PHONE_TYPED);
    assert_int_equal(conversation_wait_exit(s, 0, 30000), 128 + 9);
    assert_int_equal(sql_number(s, "SELECT count(*) FROM incidents"), 0);
    assert_int_equal(sql_number(s, "SELECT count(*) FROM case_counters"), 0);
    const char *clean[] = {"ESS_CONVERSATION_FAILPOINT=none", NULL};
    conversation_start(s, 0, clean);
    stack_pump(s, ++n); /* after the redelivery */
    expect_last_text("ESS-");
    expect_one_report_and_one_answer_per_event(n);
    assert_int_equal(sql_number(s, "SELECT last_number FROM case_counters"), 1);
}

/* Killed after the commit, before the ack and before the relay was woken: the restarted
 * relay publishes what waits, and the redelivered event finds itself processed. */
ESS_TEST(sigkill_after_commit_then_restart_duplicates_nothing)
{
    const char *env[] = {"ESS_CONVERSATION_FAILPOINT=after_commit",
                         "ESS_CONVERSATION_FAILPOINT_AT=4", NULL};
    stack_start(s, env);
    char user[64];
    user_create(s, "th", user, sizeof(user));
    size_t n = 0;
    user_act(s, user, "follow", NULL, NULL, 0);
    stack_pump(s, ++n);
    tap(user, 1);
    stack_pump(s, ++n);
    tap_location(user, 1);
    stack_pump(s, ++n);
    text(user, PHONE_TYPED);
    assert_int_equal(conversation_wait_exit(s, 0, 30000), 128 + 9);
    assert_int_equal(sql_number(s, "SELECT count(*) FROM incidents"), 1);
    const char *clean[] = {"ESS_CONVERSATION_FAILPOINT=none", NULL};
    conversation_start(s, 0, clean);
    stack_pump(s, ++n);
    const char *series = "ess_conversation_events_total{result=\"duplicate\"}";
    int64_t deadline = testkit_now_ms() + 60000;
    while (conversation_metric(s, 0, series) < 1 && testkit_now_ms() < deadline)
        stack_pump(s, n);
    assert_int_equal(conversation_metric(s, 0, series), 1);
    expect_one_report_and_one_answer_per_event(n);
}

/* ---- order ---------------------------------------------------------------------------------- */

static void publish_raw(const char *user, const char *event_id, int64_t ts, const char *body)
{
    char subject[128], json[1024];
    snprintf(subject, sizeof(subject), "line.in.user.%s", user);
    snprintf(json, sizeof(json),
             "{\"webhookEventId\":\"%s\",\"timestamp\":%lld,\"mode\":\"active\","
             "\"deliveryContext\":{\"isRedelivery\":false},"
             "\"source\":{\"type\":\"user\",\"userId\":\"%s\"},%s}",
             event_id, (long long)ts, user, body);
    natsMsg *msg = NULL;
    assert_int_equal(natsMsg_Create(&msg, subject, NULL, json, (int)strlen(json)), NATS_OK);
    natsMsgHeader_Set(msg, "Nats-Msg-Id", event_id);
    jsPubAck *ack = NULL;
    jsErrCode jerr = 0;
    assert_int_equal(js_PublishMsg(&ack, s->js, msg, NULL, &jerr), NATS_OK);
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(msg);
}

static long long incidents_of(const char *user, const char *extra_condition)
{
    unsigned char hash[VAULT_HASH_BYTES];
    char hex[2 * VAULT_HASH_BYTES + 1], sql[512];
    vault_lookup_hash(&s->keys, "line.user", user, hash);
    vault_hex(hash, sizeof(hash), hex);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM incidents WHERE reporter_key_hash = '\\x%s'::bytea %s", hex,
             extra_condition);
    return sql_number(s, sql);
}

#define APPLIED "ess_conversation_events_total{result=\"applied\"}"

typedef struct applied_wait {
    long long want;
} applied_wait;

static bool applied_reached(void *closure)
{
    return conversation_metric(s, 0, APPLIED) + conversation_metric(s, 1, APPLIED) >=
           ((applied_wait *)closure)->want;
}

ESS_TEST(two_processes_apply_one_users_events_in_order)
{
    stack_start(s, NULL);
    conversation_start(s, 1, NULL);
    enum { USERS = 6 };
    char users[USERS][64];
    for (int u = 0; u < USERS; u++)
        user_create(s, "th", users[u], sizeof(users[u]));
    /* Each user's whole report in one webhook, the users' webhooks back to back: the two
     * processes take batches from LINE_IN as they come. */
    for (int u = 0; u < USERS; u++) {
        char body[1024];
        snprintf(body, sizeof(body),
                 "{\"events\":[{\"type\":\"follow\",\"userId\":\"%s\"},"
                 "{\"type\":\"postback\",\"userId\":\"%s\",\"data\":\"v=1&a=cat&c=gathering\"},"
                 "{\"type\":\"location\",\"userId\":\"%s\",\"latitude\":13.7563,"
                 "\"longitude\":100.5018},"
                 "{\"type\":\"text\",\"userId\":\"%s\",\"text\":\"0912345678\"}]}",
                 users[u], users[u], users[u], users[u]);
        cJSON_Delete(emulator_call(s, "POST", "/webhook", body, 202));
    }
    /* Every event applied by one process or the other. An event older than one already
     * applied for its user (the two processes took them in another order) only fills what is
     * still empty and answers only when it changed something (a late follow says nothing),
     * so the number of answers may be lower than the number of events. */
    applied_wait all = {4 * USERS};
    assert_true(testkit_wait_until(applied_reached, &all, 30000));
    wait_subject("ESS", "ess.incident.reported", USERS);
    size_t n = (size_t)stream_total(s, "LINE_OUT");
    stack_pump(s, n);
    assert_true(n >= 3 * USERS && n <= 4 * USERS);
    assert_int_equal(sql_number(s, "SELECT count(*) FROM incidents"), USERS);
    for (int u = 0; u < USERS; u++)
        assert_int_equal(incidents_of(users[u], "AND category = 'gathering' AND lat > 13 "
                                                "AND phone_encrypted IS NOT NULL"),
                         1);
    /* Each user heard "report received" exactly once. */
    for (int u = 0; u < USERS; u++) {
        int received = 0;
        for (size_t i = 0; i < s->command_count; i++)
            received += strcmp(s->commands[i].to, users[u]) == 0 &&
                        strstr(s->commands[i].text, "เลขที่เคส") != NULL;
        assert_int_equal(received, 1);
    }
    print_message("events applied: process 0: %lld, process 1: %lld\n",
                  conversation_metric(s, 0, APPLIED), conversation_metric(s, 1, APPLIED));

    /* Delivered out of order (phone, location, category, newest first): the late events fill
     * what is still empty and the report is the same. */
    char late_user[64];
    user_create(s, "th", late_user, sizeof(late_user));
    user_act(s, late_user, "follow", NULL, NULL, 0);
    stack_pump(s, ++n);
    char *now_text = sql_text(s, "SELECT (extract(epoch FROM now()) * 1000)::bigint");
    int64_t base = strtoll(now_text, NULL, 10);
    free(now_text);
    publish_raw(late_user, "late-3", base + 3, "\"type\":\"message\",\"message\":{\"type\":"
                                                "\"text\",\"id\":\"3\",\"text\":\"0912345678\"}");
    publish_raw(late_user, "late-2", base + 2,
                "\"type\":\"message\",\"message\":{\"type\":\"location\",\"id\":\"2\","
                "\"latitude\":13.7563,\"longitude\":100.5018}");
    publish_raw(late_user, "late-1", base + 1,
                "\"type\":\"postback\",\"postback\":{\"data\":\"v=1&a=cat&c=sexual\"}");
    n += 3;
    stack_pump(s, n);
    assert_int_equal(incidents_of(late_user, "AND category = 'sexual'"), 1);
    char sql[200];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM conversations WHERE state = 'submitted' "
             "AND last_event_ts = %lld",
             (long long)(base + 3));
    assert_int_equal(sql_number(s, sql), 1);
    expect_last_text("ESS-");
    /* At least the category came late (the processes may take the other two in any order). */
    assert_true(conversation_metric(s, 0, "ess_conversation_events_total{result=\"late\"}") +
                    conversation_metric(s, 1, "ess_conversation_events_total{result=\"late\"}") >=
                1);
}

/* ---- expiry, limits, language -------------------------------------------------------------- */

ESS_TEST(an_untouched_draft_expires_with_one_silent_note)
{
    const char *env[] = {"ESS_DRAFT_TTL=3s", "ESS_DRAFT_SWEEP_INTERVAL=200ms", NULL};
    stack_start(s, env);
    char user[64];
    user_create(s, "th", user, sizeof(user));
    size_t n = 0;
    user_act(s, user, "follow", NULL, NULL, 0);
    stack_pump(s, ++n);
    tap(user, 3);
    stack_pump(s, ++n);
    stack_pump(s, ++n); /* the sweep's note */
    const command_record *note = last_command();
    assert_string_equal(note->subject, "line.out.push");
    assert_true(note->notification_disabled);
    assert_string_equal(note->to, user);
    expect_last_text("หมดเวลา");
    assert_int_equal(sql_number(s, "SELECT count(*) FROM conversations WHERE state = 'idle' "
                                   "AND expires_at IS NULL AND slots = '{}'::jsonb"),
                     1);
    /* Idle now: the next message is welcomed, not expired again. */
    text(user, "สวัสดี");
    stack_pump(s, ++n);
    expect_last_text("เกิดเหตุอะไร");
    assert_null(strstr(last_command()->text, "หมดเวลา"));
    assert_int_equal(stream_total(s, "LINE_OUT"), n);
    assert_true(conversation_metric(s, 0, "ess_conversation_drafts_expired_total") == 1);
}

ESS_TEST(reports_beyond_the_hourly_limit_get_the_hotlines)
{
    const char *env[] = {"ESS_REPORTS_PER_HOUR=1", NULL};
    stack_start(s, env);
    char user[64];
    user_create(s, "th", user, sizeof(user));
    size_t n = 0;
    report(user, &n, true);
    text(user, "แจ้งเหตุ");
    stack_pump(s, ++n);
    tap(user, 1);
    stack_pump(s, ++n);
    tap_location(user, 1);
    stack_pump(s, ++n);
    text(user, PHONE_TYPED);
    stack_pump(s, ++n);
    expect_last_text("1300");
    expect_last_text("1669");
    assert_int_equal(sql_number(s, "SELECT count(*) FROM incidents"), 1);
    assert_int_equal(sql_number(s, "SELECT count(*) FROM conversations WHERE state = 'idle'"), 1);
}

ESS_TEST(english_keyword_answers_in_english)
{
    stack_start(s, NULL);
    char user[64];
    user_create(s, "en", user, sizeof(user));
    size_t n = 0;
    user_act(s, user, "follow", NULL, NULL, 0);
    stack_pump(s, ++n);
    text(user, "help");
    stack_pump(s, ++n);
    expect_last_text("call 191");
    tap(user, 1); /* Threat or harm */
    stack_pump(s, ++n);
    expect_last_text("Share where");
    tap_location(user, 1);
    stack_pump(s, ++n);
    text(user, "+66 81 234 5678");
    stack_pump(s, ++n);
    expect_last_text("Case number ESS-");
    assert_int_equal(sql_number(s, "SELECT count(*) FROM incidents WHERE language = 'en'"), 1);
    expect_phone_opens_to(PHONE);
}

ESS_TEST_MAIN(NULL, stack_teardown)
