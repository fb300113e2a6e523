/* The notifier's pure parts: Thai text measures and cuts (checked against the line-emulator's
 * own grapheme and UTF-16 counters), Buddhist-era time, send commands and request bodies,
 * retry keys, the meaning of LINE's answers, backoff, the token bucket and routed events.
 * Tables hold good and bad input side by side. */
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_text.h"
#include "notifier_command.h"
#include "notifier_policy.h"
#include "notifier_routed.h"
#include "notifier_text.h"

/* ---- text ---------------------------------------------------------------------------------- */

static size_t graphemes(const char *text, size_t len)
{
    size_t count = 0;
    assert_int_equal(emu_grapheme_count(text, len, &count), ST_OK);
    return count;
}

static size_t units(const char *text)
{
    size_t count = 0;
    assert_int_equal(emu_utf16_units(text, strlen(text), &count), ST_OK);
    return count;
}

/* Every prefix the cutter picks ends on a cluster boundary: the clusters of the prefix and of
 * the rest add up to those of the whole (a split cluster would count twice). */
ESS_TEST(prefix_never_splits_a_cluster)
{
    static const char *const texts[] = {
        "น้ำท่วมขังบริเวณถนนใหญ่ หน้าโรงเรียนบ้านหนองน้ำใส",
        "กำลังมีคนคลุ้มคลั่งถือมีดอยู่หน้าบ้าน ช่วยด่วนที่สุด",
        "ผู้ใหญ่บ้านแจ้งว่ามีการมั่วสุม 👨‍👩‍👧‍👦 🇹🇭🇯🇵 👍🏽 e\xCC\x81 "
        "ຂໍ້ຄວາມ",
        "a\r\nb",
    };
    for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
        const char *text = texts[t];
        size_t len = strlen(text), whole = graphemes(text, len), total_units = 0;
        assert_int_equal(notifier_text_units(text, len, &total_units), ST_OK);
        assert_int_equal(total_units, units(text));
        for (size_t max = 0; max <= total_units + 1; max++) {
            size_t bytes = 0, got_units = 0;
            assert_int_equal(notifier_text_prefix(text, len, max, len, &bytes, &got_units), ST_OK);
            assert_true(got_units <= max);
            assert_int_equal(graphemes(text, bytes) + graphemes(text + bytes, len - bytes), whole);
            char copy[512];
            memcpy(copy, text, bytes);
            copy[bytes] = '\0';
            assert_int_equal(units(copy), got_units);
        }
    }
}

ESS_TEST(prefix_rejects_malformed_utf8)
{
    static const char *const bad[] = {"\xC0\x80", "\xE0\xB8", "\xED\xA0\x80", "a\xFF", NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        size_t bytes = 7, got = 7;
        assert_int_equal(notifier_text_prefix(bad[i], strlen(bad[i]), 100, 100, &bytes, &got),
                         ST_INVALID);
        assert_int_equal(bytes, 7); /* untouched */
    }
}

ESS_TEST(fit_keeps_short_text_and_marks_a_cut)
{
    char out[64];
    bool cut = true;
    assert_int_equal(notifier_text_fit("สวัสดี", 10, out, sizeof(out), &cut), ST_OK);
    assert_string_equal(out, "สวัสดี");
    assert_false(cut);
    /* น้ำ is three code points, one cluster: never cut between them. */
    assert_int_equal(notifier_text_fit("น้ำน้ำน้ำ", 5, out, sizeof(out), &cut), ST_OK);
    assert_true(cut);
    assert_string_equal(out, "น้ำ…");
    assert_true(units(out) <= 5);
    /* The byte bound of out is honoured too. */
    char small[12];
    assert_int_equal(notifier_text_fit("กขคงจฉชซฌญ", 100, small, sizeof(small), &cut), ST_OK);
    assert_true(cut);
    assert_true(strlen(small) < sizeof(small));
    assert_int_equal(notifier_text_fit("\xFF", 10, out, sizeof(out), &cut), ST_INVALID);
    assert_string_equal(out, "");
}

ESS_TEST(thai_time_is_bangkok_and_buddhist_era)
{
    char out[96];
    notifier_text_thai_time(1767225600, out, sizeof(out)); /* 2026-01-01T00:00:00Z */
    assert_string_equal(out, "1 ม.ค. 2569 เวลา 07:00 น.");
    notifier_text_thai_time(1772845500, out, sizeof(out)); /* 2026-03-07T01:05:00Z */
    assert_string_equal(out, "7 มี.ค. 2569 เวลา 08:05 น.");
    notifier_text_thai_time(1767200400, out, sizeof(out)); /* 2025-12-31T17:00:00Z */
    assert_string_equal(out, "1 ม.ค. 2569 เวลา 00:00 น.");
}

ESS_TEST(distances_read_as_thai_units)
{
    static const struct {
        int64_t meters;
        const char *text;
    } rows[] = {{0, "0 ม."},       {850, "850 ม."},   {999, "999 ม."},
                {1000, "1.0 กม."}, {1249, "1.2 กม."}, {1960, "2.0 กม."},
                {9960, "10 กม."},  {12400, "12 กม."}, {-5, "0 ม."}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char out[32];
        notifier_text_distance(rows[i].meters, out, sizeof(out));
        assert_string_equal(out, rows[i].text);
    }
}

/* ---- commands ------------------------------------------------------------------------------ */

#define USER "U0123456789abcdef0123456789abcdef"
#define MESSAGES "[{\"type\":\"text\",\"text\":\"สวัสดี\"}]"

ESS_TEST(commands_table)
{
    static const struct {
        const char *subject;
        const char *body;
        st_code code;
        const char *reason; /* part of the error message */
    } rows[] = {
        {"line.out.push", "{\"command_id\":\"c1\",\"to\":\"" USER "\",\"messages\":" MESSAGES "}",
         ST_OK, NULL},
        {"line.out.reply",
         "{\"command_id\":\"c2\",\"reply_token\":\"abc-DEF_123\",\"messages\":" MESSAGES "}", ST_OK,
         NULL},
        {"line.out.reply",
         "{\"command_id\":\"c3\",\"fallback_to\":\"" USER "\",\"messages\":" MESSAGES "}", ST_OK,
         NULL},
        {"line.out.other", "{\"command_id\":\"c\",\"to\":\"" USER "\",\"messages\":" MESSAGES "}",
         ST_INVALID, "subject"},
        {"line.out.push", "not json", ST_INVALID, "JSON object"},
        {"line.out.push", "{\"to\":\"" USER "\",\"messages\":" MESSAGES "}", ST_INVALID,
         "command_id"},
        {"line.out.push",
         "{\"command_id\":\"has space\",\"to\":\"" USER "\",\"messages\":" MESSAGES "}", ST_INVALID,
         "command_id"},
        {"line.out.push", "{\"command_id\":\"c\",\"messages\":" MESSAGES "}", ST_INVALID,
         "needs `to`"},
        {"line.out.push", "{\"command_id\":\"c\",\"to\":\"U1\\\"x\",\"messages\":" MESSAGES "}",
         ST_INVALID, "LINE ids"},
        {"line.out.push", "{\"command_id\":\"c\",\"to\":\"" USER "\",\"messages\":[]}", ST_INVALID,
         "messages"},
        {"line.out.push",
         "{\"command_id\":\"c\",\"to\":\"" USER "\",\"messages\":[{},{},{},{},{},{}]}", ST_INVALID,
         "messages"},
        {"line.out.push", "{\"command_id\":\"c\",\"to\":\"" USER "\",\"messages\":[1]}", ST_INVALID,
         "messages"},
        {"line.out.push",
         "{\"command_id\":\"c\",\"to\":\"" USER "\",\"notification_disabled\":1,"
         "\"messages\":" MESSAGES "}",
         ST_INVALID, "notification_disabled"},
        {"line.out.reply", "{\"command_id\":\"c\",\"messages\":" MESSAGES "}", ST_INVALID,
         "reply_token"},
        {"line.out.reply",
         "{\"command_id\":\"c\",\"reply_token\":\"a b\",\"messages\":" MESSAGES "}", ST_INVALID,
         "reply_token"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        notifier_command command;
        memset(&command, 0x5A, sizeof(command));
        st_error err = {0};
        st_code code = notifier_command_parse(rows[i].subject, rows[i].body, strlen(rows[i].body),
                                              &command, &err);
        if (code != rows[i].code)
            fail_msg("row %zu: %s (%s)", i, st_name(code), err.message);
        if (code == ST_OK) {
            assert_string_equal(command.messages, MESSAGES);
            notifier_command_done(&command);
        } else {
            assert_non_null(strstr(err.message, rows[i].reason));
            assert_int_equal((unsigned char)command.command_id[0], 0x5A); /* untouched */
        }
    }
}

ESS_TEST(request_bodies_and_fallback_target)
{
    const char *text = "{\"command_id\":\"c\",\"reply_token\":\"tok\",\"to\":\"" USER
                       "\",\"notification_disabled\":true,\"messages\":" MESSAGES "}";
    notifier_command command;
    assert_int_equal(notifier_command_parse("line.out.reply", text, strlen(text), &command, NULL),
                     ST_OK);
    assert_int_equal(command.endpoint, NOTIFIER_EP_REPLY);
    assert_true(command.notification_disabled);
    assert_string_equal(notifier_command_fallback_target(&command), USER);
    char *body = NULL;
    size_t len = 0;
    assert_int_equal(notifier_body_reply(command.reply_token, true, command.messages,
                                         command.messages_len, &body, &len, NULL),
                     ST_OK);
    assert_string_equal(body, "{\"replyToken\":\"tok\",\"messages\":" MESSAGES
                              ",\"notificationDisabled\":true}");
    assert_int_equal(len, strlen(body));
    free(body);
    assert_int_equal(
        notifier_body_push(USER, false, command.messages, command.messages_len, &body, &len, NULL),
        ST_OK);
    assert_string_equal(body, "{\"to\":\"" USER "\",\"messages\":" MESSAGES "}");
    free(body);
    assert_int_equal(notifier_body_push("bad id", false, "[]", 2, &body, &len, NULL), ST_INVALID);
    notifier_command_done(&command);
}

ESS_TEST(retry_keys_are_stable_uuids)
{
    char first[VAULT_UUID_TEXT], again[VAULT_UUID_TEXT], fallback[VAULT_UUID_TEXT];
    char expected[VAULT_UUID_TEXT];
    notifier_retry_key("cmd-42", false, first);
    notifier_retry_key("cmd-42", false, again);
    notifier_retry_key("cmd-42", true, fallback);
    assert_string_equal(first, again);
    assert_string_not_equal(first, fallback);
    vault_uuid_from_name("ess.retry-key", "cmd-42", expected);
    assert_string_equal(first, expected);
    vault_uuid_from_name("ess.retry-key", "cmd-42.fallback", expected);
    assert_string_equal(fallback, expected);
    assert_int_equal(strlen(first), 36);
    assert_int_equal(first[14], '5');
}

/* ---- answers ------------------------------------------------------------------------------- */

ESS_TEST(answers_table)
{
    static const char invalid_token[] = "{\"message\":\"Invalid reply token\"}";
    static const char validation[] =
        "{\"message\":\"The request body has 1 error(s)\",\"details\":[{\"message\":\"May not be "
        "empty\",\"property\":\"messages[0].text\"}]}";
    static const char phone_detail[] = "{\"message\":\"Bad\",\"details\":[{\"message\":\"value "
                                       "0812345678\",\"property\":\"to\"}]}";
    static const struct {
        notifier_endpoint endpoint;
        notifier_transport transport;
        long status;
        const char *body;
        bool retry_key;
        notifier_verdict verdict;
        const char *label;
        const char *reason;
    } rows[] = {
        {NOTIFIER_EP_PUSH, NOTIFIER_TRANSPORT_OK, 200, "{}", true, NOTIFIER_DELIVERED, "200",
         "LINE answered 200"},
        {NOTIFIER_EP_PUSH, NOTIFIER_TRANSPORT_OK, 409,
         "{\"message\":\"The retry key is already "
         "accepted\"}",
         true, NOTIFIER_DELIVERED, "409", "already accepted"},
        {NOTIFIER_EP_PUSH, NOTIFIER_TRANSPORT_OK, 409, NULL, false, NOTIFIER_REJECT, "409", "409"},
        {NOTIFIER_EP_PUSH, NOTIFIER_TRANSPORT_OK, 429, NULL, true, NOTIFIER_RETRY, "429", "429"},
        {NOTIFIER_EP_PUSH, NOTIFIER_TRANSPORT_OK, 500, NULL, true, NOTIFIER_RETRY, "500", "500"},
        {NOTIFIER_EP_PUSH, NOTIFIER_TRANSPORT_OK, 599, NULL, true, NOTIFIER_RETRY, "5xx", "599"},
        {NOTIFIER_EP_PUSH, NOTIFIER_TRANSPORT_OK, 401, NULL, true, NOTIFIER_RETRY, "401", "401"},
        {NOTIFIER_EP_PUSH, NOTIFIER_TRANSPORT_OK, 404, NULL, true, NOTIFIER_RETRY, "404", "404"},
        {NOTIFIER_EP_PUSH, NOTIFIER_TRANSPORT_OK, 400, validation, true, NOTIFIER_REJECT, "400",
         "LINE answered 400: The request body has 1 error(s) [messages[0].text: May not be "
         "empty]"},
        {NOTIFIER_EP_PUSH, NOTIFIER_TRANSPORT_OK, 400, phone_detail, true, NOTIFIER_REJECT, "400",
         "[redacted]"},
        {NOTIFIER_EP_PUSH, NOTIFIER_TRANSPORT_OK, 413, "{\"message\":\"Request entity too large\"}",
         true, NOTIFIER_REJECT, "413", "too large"},
        {NOTIFIER_EP_PUSH, NOTIFIER_TRANSPORT_OK, 418, NULL, true, NOTIFIER_REJECT, "4xx", "418"},
        {NOTIFIER_EP_REPLY, NOTIFIER_TRANSPORT_OK, 400, invalid_token, false,
         NOTIFIER_TOKEN_REJECTED, "400", "Invalid reply token"},
        {NOTIFIER_EP_PUSH, NOTIFIER_TRANSPORT_OK, 400, invalid_token, true, NOTIFIER_REJECT, "400",
         "Invalid reply token"},
        {NOTIFIER_EP_REPLY, NOTIFIER_TRANSPORT_OK, 400, validation, false, NOTIFIER_REJECT, "400",
         "May not be empty"},
        {NOTIFIER_EP_PUSH, NOTIFIER_TRANSPORT_TIMEOUT, 0, NULL, true, NOTIFIER_RETRY, "timeout",
         "in time"},
        {NOTIFIER_EP_PUSH, NOTIFIER_TRANSPORT_CONNECT, 0, NULL, true, NOTIFIER_RETRY,
         "connect_error", "connect"},
        {NOTIFIER_EP_PUSH, NOTIFIER_TRANSPORT_ERROR, 0, NULL, true, NOTIFIER_RETRY,
         "transport_error", "failed"},
        {NOTIFIER_EP_PUSH, NOTIFIER_TRANSPORT_CANCELLED, 0, NULL, true, NOTIFIER_RETRY, "cancelled",
         "stopped"},
        {NOTIFIER_EP_PUSH, NOTIFIER_TRANSPORT_OK, 302, NULL, true, NOTIFIER_RETRY, "other", "302"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        notifier_answer answer = {.transport = rows[i].transport,
                                  .status = rows[i].status,
                                  .body = rows[i].body,
                                  .body_len = rows[i].body != NULL ? strlen(rows[i].body) : 0,
                                  .had_retry_key = rows[i].retry_key};
        char reason[NOTIFIER_REASON_MAX];
        notifier_verdict verdict =
            notifier_classify(rows[i].endpoint, &answer, reason, sizeof(reason));
        if (verdict != rows[i].verdict || strstr(reason, rows[i].reason) == NULL)
            fail_msg("row %zu: verdict %d, reason \"%s\"", i, (int)verdict, reason);
        assert_string_equal(notifier_status_label(&answer), rows[i].label);
        assert_null(strstr(reason, "0812345678"));
    }
}

ESS_TEST(long_line_reason_is_cut_on_a_character)
{
    char body[1200];
    int n = snprintf(body, sizeof(body), "{\"message\":\"");
    for (int i = 0; i < 300; i++)
        n += snprintf(body + n, sizeof(body) - (size_t)n, "ก");
    snprintf(body + n, sizeof(body) - (size_t)n, "\"}");
    notifier_answer answer = {
        .transport = NOTIFIER_TRANSPORT_OK, .status = 400, .body = body, .body_len = strlen(body)};
    char reason[NOTIFIER_REASON_MAX];
    notifier_classify(NOTIFIER_EP_PUSH, &answer, reason, sizeof(reason));
    assert_true(strlen(reason) < sizeof(reason));
    assert_true(emu_utf8_valid(reason, strlen(reason)));
}

ESS_TEST(backoff_doubles_with_jitter_and_caps)
{
    for (uint64_t attempt = 1; attempt <= 40; attempt++) {
        int64_t ceiling = 100;
        for (uint64_t i = 1; i < attempt && ceiling < 5000; i++)
            ceiling = ceiling * 2 > 5000 ? 5000 : ceiling * 2;
        for (uint64_t r = 0; r < 50; r++) {
            int64_t delay = notifier_backoff_ms(attempt, 100, 5000, r * 7919 + attempt);
            assert_true(delay >= ceiling / 2);
            assert_true(delay <= ceiling);
        }
    }
    assert_int_equal(notifier_backoff_ms(1, 100, 5000, 0), 50);
    assert_int_equal(notifier_backoff_ms(UINT64_MAX, 100, 5000, 2500), 5000);
}

ESS_TEST(bucket_paces_requests)
{
    notifier_bucket bucket;
    int64_t now = 1000000000;
    notifier_bucket_init(&bucket, 100, 10, now);
    for (int i = 0; i < 10; i++)
        assert_int_equal(notifier_bucket_take(&bucket, now), 0);
    int64_t wait = notifier_bucket_take(&bucket, now);
    assert_true(wait > 9000000 && wait <= 10000001); /* one token per 10 ms */
    now += wait;
    assert_int_equal(notifier_bucket_take(&bucket, now), 0);
    now += 10LL * 1000000000; /* a long pause refills up to the burst only */
    int taken = 0;
    while (notifier_bucket_take(&bucket, now) == 0)
        taken++;
    assert_int_equal(taken, 10);
}

/* ---- routed events ------------------------------------------------------------------------- */

#define GROUP_A "C0123456789abcdef0123456789abcdef"
#define GROUP_B "Cabcdef0123456789abcdef0123456789"
#define GROUP_C "Cffffffffffffffffffffffffffffffff"

ESS_TEST(routed_takes_the_first_level)
{
    const char *text =
        "{\"incident_id\":42,\"case_number\":\"ESS-2569-000042\","
        "\"area\":{\"province_code\":\"TH50\",\"district_code\":\"TH5001\","
        "\"tambon_code\":\"TH500101\",\"province_name_th\":\"เชียงใหม่\"},"
        "\"stations\":[{\"station_id\":\"ST1\",\"distance_m\":1250,\"name_th\":\"สภ.เมือง\"},"
        "{\"station_id\":\"ST2\",\"distance_m\":4000}],"
        "\"targets\":[{\"team_id\":3,\"group_id\":\"" GROUP_C "\",\"level\":1},"
        "{\"team_id\":1,\"group_id\":\"" GROUP_A "\",\"level\":0},"
        "{\"team_id\":2,\"group_id\":\"" GROUP_B "\",\"level\":0},"
        "{\"team_id\":1,\"group_id\":\"" GROUP_A "\",\"level\":0}],\"reason\":\"in_polygon\"}";
    notifier_routed routed;
    assert_int_equal(notifier_routed_parse(text, strlen(text), &routed, NULL), ST_OK);
    assert_int_equal(routed.incident_id, 42);
    assert_string_equal(routed.case_number, "ESS-2569-000042");
    assert_string_equal(routed.tambon_code, "TH500101");
    assert_string_equal(routed.province_name, "เชียงใหม่");
    assert_string_equal(routed.station_id, "ST1");
    assert_string_equal(routed.station_name, "สภ.เมือง");
    assert_true(routed.has_station_distance);
    assert_int_equal(routed.station_distance_m, 1250);
    assert_int_equal(routed.first_level, 0);
    assert_int_equal(routed.group_count, 2);
    assert_string_equal(routed.groups[0], GROUP_A);
    assert_string_equal(routed.groups[1], GROUP_B);
}

ESS_TEST(routed_table_of_bad_events)
{
    static const struct {
        const char *body;
        st_code code;
        size_t groups;
    } rows[] = {
        {"{\"incident_id\":1,\"case_number\":\"C\",\"area\":{},\"targets\":[],\"reason\":\"no_"
         "team\"}",
         ST_OK, 0},
        {"{\"incident_id\":0,\"case_number\":\"C\",\"targets\":[]}", ST_INVALID, 0},
        {"{\"incident_id\":1.5,\"case_number\":\"C\",\"targets\":[]}", ST_INVALID, 0},
        {"{\"incident_id\":1,\"targets\":[]}", ST_INVALID, 0},
        {"{\"incident_id\":1,\"case_number\":\"C\"}", ST_INVALID, 0},
        {"{\"incident_id\":1,\"case_number\":\"C\",\"targets\":[{\"group_id\":\"C x\","
         "\"level\":0}]}",
         ST_INVALID, 0},
        {"{\"incident_id\":1,\"case_number\":\"C\",\"targets\":[{\"group_id\":\"Cab\","
         "\"level\":-1}]}",
         ST_INVALID, 0},
        {"[]", ST_INVALID, 0},
        {"{\"incident_id\":1,\"case_number\":\"C\",\"targets\":[{\"group_id\":\"Cab\","
         "\"level\":2}]}",
         ST_OK, 1},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        notifier_routed routed;
        routed.group_count = 99;
        st_code code = notifier_routed_parse(rows[i].body, strlen(rows[i].body), &routed, NULL);
        if (code != rows[i].code)
            fail_msg("row %zu: %s", i, st_name(code));
        assert_int_equal(routed.group_count, rows[i].code == ST_OK ? rows[i].groups : 99);
    }
}

ESS_TEST_MAIN(NULL, NULL)
