/* The webhook parser: LINE body -> (source, msg-id, payload) per event, table-driven; the
 * subject each event is published on (ingress_subject). */
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ingress_webhook.h"

#define BOT "U0123456789abcdef0123456789abcdef"
#define USER_A "U4af4980629a0b6a8b3d4b4e1e0a7c2f1"
#define USER_B "U9bf4980629a0b6a8b3d4b4e1e0a7c2f2"
#define GROUP "Ca56f94637cc4347f90a25382909b24b9"
#define ROOM "Ra8dbf4ccc91d2e6b0e4ed8e5e5ef2a3b"

/* The tables read better aligned by hand. */
/* clang-format off */
/* A LINE event with everything required; SOURCE and REST are JSON fragments. */
#define EVENT_MODE(type, id, mode, redelivery, source, rest)                                   \
    "{\"type\":\"" type "\",\"webhookEventId\":\"" id "\",\"timestamp\":1700000000123,"        \
    "\"mode\":\"" mode "\",\"deliveryContext\":{\"isRedelivery\":" redelivery "}"              \
    ",\"source\":" source rest "}"
#define EVENT(type, id, source, rest) EVENT_MODE(type, id, "active", "false", source, rest)
#define USER_SOURCE(id) "{\"type\":\"user\",\"userId\":\"" id "\"}"
#define BODY(events) "{\"destination\":\"" BOT "\",\"events\":[" events "]}"
#define TEXT(text) ",\"replyToken\":\"r1\",\"message\":{\"type\":\"text\",\"id\":\"4681\"," \
                   "\"quoteToken\":\"q\",\"text\":\"" text "\"}"

#define ID1 "01HF0000000000000000000001"
#define ID2 "01HF0000000000000000000002"
#define ID3 "01HF0000000000000000000003"

#define MAX_EXPECTED 4

typedef struct expected_event {
    const char *source; /* "<kind>.<id>" */
    const char *msg_id;
    const char *type;
    bool standby;
    bool redelivery;
} expected_event;

typedef struct parse_case {
    const char *name;
    const char *body;
    ingress_limits limits;
    st_code code;
    size_t count;
    size_t skipped;
    expected_event events[MAX_EXPECTED];
} parse_case;

static const parse_case good_cases[] = {
    {"one text message", BODY(EVENT("message", ID1, USER_SOURCE(USER_A), TEXT("help"))),
     {0}, ST_OK, 1, 0, {{"user." USER_A, ID1, "message", false, false}}},
    {"empty events (console verify)", BODY(""), {0}, ST_OK, 0, 0, {{0}}},
    {"several events from different users",
     BODY(EVENT("message", ID1, USER_SOURCE(USER_A), TEXT("a")) ","
          EVENT("follow", ID2, USER_SOURCE(USER_B),
                ",\"replyToken\":\"r2\",\"follow\":{\"isUnblocked\":false}") ","
          EVENT("postback", ID3, USER_SOURCE(USER_A),
                ",\"replyToken\":\"r3\",\"postback\":{\"data\":\"cat=threat\"}")),
     {0}, ST_OK, 3, 0,
     {{"user." USER_A, ID1, "message", false, false},
      {"user." USER_B, ID2, "follow", false, false},
      {"user." USER_A, ID3, "postback", false, false}}},
    {"group source without userId",
     BODY(EVENT("join", ID1, "{\"type\":\"group\",\"groupId\":\"" GROUP "\"}",
                ",\"replyToken\":\"r\"")),
     {0}, ST_OK, 1, 0, {{"group." GROUP, ID1, "join", false, false}}},
    {"group source with userId goes by group",
     BODY(EVENT("message", ID1,
                "{\"type\":\"group\",\"groupId\":\"" GROUP "\",\"userId\":\"" USER_A "\"}",
                TEXT("x"))),
     {0}, ST_OK, 1, 0, {{"group." GROUP, ID1, "message", false, false}}},
    {"room source", BODY(EVENT("leave", ID1, "{\"type\":\"room\",\"roomId\":\"" ROOM "\"}", "")),
     {0}, ST_OK, 1, 0, {{"room." ROOM, ID1, "leave", false, false}}},
    {"standby mode is kept",
     BODY(EVENT_MODE("message", ID1, "standby", "false", USER_SOURCE(USER_A), TEXT("x"))),
     {0}, ST_OK, 1, 0, {{"user." USER_A, ID1, "message", true, false}}},
    {"redelivery flag",
     BODY(EVENT_MODE("message", ID1, "active", "true", USER_SOURCE(USER_A), TEXT("x"))),
     {0}, ST_OK, 1, 0, {{"user." USER_A, ID1, "message", false, true}}},
    {"unknown event type counts as other",
     BODY(EVENT("somethingNew", ID1, USER_SOURCE(USER_A), "")), {0}, ST_OK, 1, 0,
     {{"user." USER_A, ID1, "other", false, false}}},
    {"event without source is skipped",
     BODY("{\"type\":\"botSuspended\",\"webhookEventId\":\"" ID1 "\",\"timestamp\":1,"
          "\"mode\":\"active\",\"deliveryContext\":{\"isRedelivery\":false}}," EVENT(
              "unfollow", ID2, USER_SOURCE(USER_A), "")),
     {0}, ST_OK, 1, 1, {{"user." USER_A, ID2, "unfollow", false, false}}},
    {"memberJoined in a group",
     BODY(EVENT("memberJoined", ID1, "{\"type\":\"group\",\"groupId\":\"" GROUP "\"}",
                ",\"replyToken\":\"r\",\"joined\":{\"members\":[{\"type\":\"user\","
                "\"userId\":\"" USER_A "\"}]}")),
     {0}, ST_OK, 1, 0, {{"group." GROUP, ID1, "memberJoined", false, false}}},
    {"escaped Thai text and white space around",
     " \n" BODY(EVENT("message", ID1, USER_SOURCE(USER_A),
                      TEXT("\\u0e0a\\u0e48\\u0e27\\u0e22 \\ud83d\\ude00"))) "\r\n\t",
     {0}, ST_OK, 1, 0, {{"user." USER_A, ID1, "message", false, false}}},
    {"raw UTF-8 Thai text",
     BODY(EVENT("message", ID1, USER_SOURCE(USER_A), TEXT("ช่วยด้วย"))), {0}, ST_OK, 1, 0,
     {{"user." USER_A, ID1, "message", false, false}}},
    {"exactly max events", BODY(EVENT("unfollow", ID1, USER_SOURCE(USER_A), "") ","
                                EVENT("unfollow", ID2, USER_SOURCE(USER_B), "")),
     {.max_events = 2}, ST_OK, 2, 0,
     {{"user." USER_A, ID1, "unfollow", false, false},
      {"user." USER_B, ID2, "unfollow", false, false}}},
};

static const parse_case bad_cases[] = {
    /* malformed JSON */
    {"empty body", "", {0}, ST_INVALID, 0, 0, {{0}}},
    {"truncated JSON", "{\"destination\":\"" BOT "\",\"events\":[", {0}, ST_INVALID, 0, 0, {{0}}},
    {"not JSON", "hello", {0}, ST_INVALID, 0, 0, {{0}}},
    {"content after the value", BODY("") "x", {0}, ST_INVALID, 0, 0, {{0}}},
    {"two values", BODY("") BODY(""), {0}, ST_INVALID, 0, 0, {{0}}},
    {"control character in a string",
     BODY(EVENT("message", ID1, USER_SOURCE(USER_A), TEXT("a\tb"))), {0}, ST_INVALID, 0, 0,
     {{0}}},
    {"lone surrogate escape",
     BODY(EVENT("message", ID1, USER_SOURCE(USER_A), TEXT("\\ud83d"))), {0}, ST_INVALID, 0, 0,
     {{0}}},
    {"invalid UTF-8", BODY(EVENT("message", ID1, USER_SOURCE(USER_A), TEXT("\xc3\x28"))), {0},
     ST_INVALID, 0, 0, {{0}}},
    {"overlong UTF-8", BODY(EVENT("message", ID1, USER_SOURCE(USER_A), TEXT("\xc0\xaf"))), {0},
     ST_INVALID, 0, 0, {{0}}},
    /* not LINE's shape */
    {"array root", "[" BODY("") "]", {0}, ST_INVALID, 0, 0, {{0}}},
    {"destination missing", "{\"events\":[]}", {0}, ST_INVALID, 0, 0, {{0}}},
    {"destination not a string", "{\"destination\":1,\"events\":[]}", {0}, ST_INVALID, 0, 0,
     {{0}}},
    {"events missing", "{\"destination\":\"" BOT "\"}", {0}, ST_INVALID, 0, 0, {{0}}},
    {"events an object", "{\"destination\":\"" BOT "\",\"events\":{}}", {0}, ST_INVALID, 0, 0,
     {{0}}},
    {"event not an object", BODY("1"), {0}, ST_INVALID, 0, 0, {{0}}},
    {"type missing",
     BODY("{\"webhookEventId\":\"" ID1 "\",\"timestamp\":1,\"mode\":\"active\","
          "\"deliveryContext\":{\"isRedelivery\":false},\"source\":" USER_SOURCE(USER_A) "}"),
     {0}, ST_INVALID, 0, 0, {{0}}},
    {"webhookEventId missing",
     BODY("{\"type\":\"follow\",\"timestamp\":1,\"mode\":\"active\","
          "\"deliveryContext\":{\"isRedelivery\":false},\"source\":" USER_SOURCE(USER_A) "}"),
     {0}, ST_INVALID, 0, 0, {{0}}},
    {"timestamp a string",
     BODY("{\"type\":\"follow\",\"webhookEventId\":\"" ID1 "\",\"timestamp\":\"1\","
          "\"mode\":\"active\",\"deliveryContext\":{\"isRedelivery\":false},"
          "\"source\":" USER_SOURCE(USER_A) "}"),
     {0}, ST_INVALID, 0, 0, {{0}}},
    {"timestamp fractional",
     BODY("{\"type\":\"follow\",\"webhookEventId\":\"" ID1 "\",\"timestamp\":1.5,"
          "\"mode\":\"active\",\"deliveryContext\":{\"isRedelivery\":false},"
          "\"source\":" USER_SOURCE(USER_A) "}"),
     {0}, ST_INVALID, 0, 0, {{0}}},
    {"mode unknown",
     BODY(EVENT_MODE("follow", ID1, "passive", "false", USER_SOURCE(USER_A), "")), {0},
     ST_INVALID, 0, 0, {{0}}},
    {"deliveryContext missing",
     BODY("{\"type\":\"follow\",\"webhookEventId\":\"" ID1 "\",\"timestamp\":1,"
          "\"mode\":\"active\",\"source\":" USER_SOURCE(USER_A) "}"),
     {0}, ST_INVALID, 0, 0, {{0}}},
    {"isRedelivery not a boolean",
     BODY(EVENT_MODE("follow", ID1, "active", "\"no\"", USER_SOURCE(USER_A), "")), {0},
     ST_INVALID, 0, 0, {{0}}},
    {"source type unknown", BODY(EVENT("follow", ID1, "{\"type\":\"bot\",\"userId\":\"U1\"}", "")),
     {0}, ST_INVALID, 0, 0, {{0}}},
    {"source not an object", BODY(EVENT("follow", ID1, "\"" USER_A "\"", "")), {0}, ST_INVALID,
     0, 0, {{0}}},
    {"user source without userId", BODY(EVENT("follow", ID1, "{\"type\":\"user\"}", "")), {0},
     ST_INVALID, 0, 0, {{0}}},
    {"group source without groupId",
     BODY(EVENT("join", ID1, "{\"type\":\"group\",\"userId\":\"" USER_A "\"}", "")), {0},
     ST_INVALID, 0, 0, {{0}}},
    /* ids that would break a subject */
    {"source id with a dot", BODY(EVENT("follow", ID1, USER_SOURCE("U1.x"), "")), {0},
     ST_INVALID, 0, 0, {{0}}},
    {"source id with a star", BODY(EVENT("follow", ID1, USER_SOURCE("U1*"), "")), {0},
     ST_INVALID, 0, 0, {{0}}},
    {"source id with a chevron", BODY(EVENT("follow", ID1, USER_SOURCE("U1>"), "")), {0},
     ST_INVALID, 0, 0, {{0}}},
    {"source id with a space", BODY(EVENT("follow", ID1, USER_SOURCE("U1 x"), "")), {0},
     ST_INVALID, 0, 0, {{0}}},
    {"source id empty", BODY(EVENT("follow", ID1, USER_SOURCE(""), "")), {0}, ST_INVALID, 0, 0,
     {{0}}},
    {"source id too long",
     BODY(EVENT("follow", ID1,
                USER_SOURCE("U0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
                "")),
     {0}, ST_INVALID, 0, 0, {{0}}},
    {"source id with an escaped NUL", BODY(EVENT("follow", ID1, USER_SOURCE("U1\\u0000x"), "")),
     {0}, ST_INVALID, 0, 0, {{0}}},
    {"group userId with a dot",
     BODY(EVENT("message", ID1,
                "{\"type\":\"group\",\"groupId\":\"" GROUP "\",\"userId\":\"U.1\"}", "")),
     {0}, ST_INVALID, 0, 0, {{0}}},
    {"event id with a newline", BODY(EVENT("follow", "01HF\\r\\nX", USER_SOURCE(USER_A), "")),
     {0}, ST_INVALID, 0, 0, {{0}}},
    {"destination with a dot", "{\"destination\":\"U.1\",\"events\":[]}", {0}, ST_INVALID, 0, 0,
     {{0}}},
    /* bounds */
    {"too many events",
     BODY(EVENT("unfollow", ID1, USER_SOURCE(USER_A), "") ","
          EVENT("unfollow", ID2, USER_SOURCE(USER_B), "") ","
          EVENT("unfollow", ID3, USER_SOURCE(USER_A), "")),
     {.max_events = 2}, ST_LIMIT, 0, 0, {{0}}},
    {"too deep", BODY(EVENT("message", ID1, USER_SOURCE(USER_A), ",\"x\":[[[[[[]]]]]]")),
     {.max_depth = 6}, ST_LIMIT, 0, 0, {{0}}},
    {"body too large", BODY(""), {.max_body = 16}, ST_LIMIT, 0, 0, {{0}}},
};

/* clang-format on */

static void check_payload_is_event(const char *body, size_t index, const char *payload)
{
    cJSON *root = cJSON_Parse(body);
    assert_non_null(root);
    cJSON *event = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "events"), (int)index);
    cJSON *stored = cJSON_Parse(payload);
    assert_non_null(event);
    assert_non_null(stored);
    assert_true(cJSON_Compare(event, stored, true));
    assert_null(strchr(payload, '\n')); /* compact */
    cJSON_Delete(stored);
    cJSON_Delete(root);
}

/* index of the nth non-skipped event in the body, for payload comparison */
static size_t body_index(const char *body, size_t nth)
{
    cJSON *root = cJSON_Parse(body);
    cJSON *events = cJSON_GetObjectItem(root, "events");
    size_t index = 0, seen = 0;
    for (cJSON *item = events->child; item != NULL; item = item->next, index++) {
        if (cJSON_GetObjectItem(item, "source") == NULL)
            continue;
        if (seen++ == nth)
            break;
    }
    cJSON_Delete(root);
    return index;
}

static void run_case(const parse_case *c)
{
    ingress_webhook *webhook = NULL;
    st_error err = {0};
    st_code code = ingress_webhook_parse(c->body, strlen(c->body), &c->limits, &webhook, &err);
    if (code != c->code)
        fail_msg("case '%s': expected %s, got %s (%s)", c->name, st_name(c->code), st_name(code),
                 err.message);
    if (code != ST_OK) {
        assert_null(webhook);
        assert_true(err.message[0] != '\0');
        /* error text never quotes the body's ids */
        assert_null(strstr(err.message, USER_A));
        return;
    }
    if (webhook->event_count != c->count || webhook->skipped != c->skipped)
        fail_msg("case '%s': expected %zu events (%zu skipped), got %zu (%zu)", c->name, c->count,
                 c->skipped, webhook->event_count, webhook->skipped);
    for (size_t i = 0; i < c->count; i++) {
        const ingress_webhook_event *got = &webhook->events[i];
        const expected_event *want = &c->events[i];
        char source[96];
        snprintf(source, sizeof(source), "%s.%s", got->source_kind, got->source_id);
        assert_string_equal(source, want->source);
        assert_string_equal(got->msg_id, want->msg_id);
        assert_string_equal(got->type, want->type);
        assert_int_equal(got->standby, want->standby);
        assert_int_equal(got->redelivery, want->redelivery);
        assert_int_equal(got->payload_len, strlen(got->payload));
        check_payload_is_event(c->body, body_index(c->body, i), got->payload);
    }
    ingress_webhook_destroy(webhook);
}

ESS_TEST(good_bodies)
{
    (void)state;
    for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++)
        run_case(&good_cases[i]);
}

ESS_TEST(bad_bodies)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
        run_case(&bad_cases[i]);
}

ESS_TEST(body_is_not_read_past_its_length)
{
    (void)state;
    /* The body is a slice of a larger buffer: the bytes after it must not be parsed. */
    static const char buffer[] = BODY("") "garbage that is not JSON";
    size_t len = strlen(BODY(""));
    ingress_webhook *webhook = NULL;
    assert_int_equal(ingress_webhook_parse(buffer, len, NULL, &webhook, NULL), ST_OK);
    assert_int_equal(webhook->event_count, 0);
    ingress_webhook_destroy(webhook);
}

ESS_TEST(nul_byte_in_body_is_invalid)
{
    (void)state;
    static const char body[] = "{\"destination\":\"" BOT "\",\0\"events\":[]}";
    ingress_webhook *webhook = NULL;
    assert_int_equal(ingress_webhook_parse(body, sizeof(body) - 1, NULL, &webhook, NULL),
                     ST_INVALID);
    assert_null(webhook);
}

ESS_TEST(payload_keeps_thai_text_as_utf8)
{
    (void)state;
    static const char body[] =
        BODY(EVENT("message", ID1, USER_SOURCE(USER_A), TEXT("\\u0e0a\\u0e48\\u0e27\\u0e22")));
    ingress_webhook *webhook = NULL;
    assert_int_equal(ingress_webhook_parse(body, strlen(body), NULL, &webhook, NULL), ST_OK);
    assert_non_null(strstr(webhook->events[0].payload, "\"text\":\"ช่วย\""));
    assert_non_null(strstr(webhook->events[0].payload, "\"timestamp\":1700000000123"));
    ingress_webhook_destroy(webhook);
}

/* A body of count unfollow events from distinct users, into body (heap, caller frees). */
static char *many_events_body(int count)
{
    size_t size = 256 + (size_t)count * 256;
    char *body = malloc(size);
    assert_non_null(body);
    size_t used = (size_t)snprintf(body, size, "{\"destination\":\"%s\",\"events\":[", BOT);
    for (int i = 0; i < count; i++)
        used += (size_t)snprintf(body + used, size - used,
                                 "%s{\"type\":\"unfollow\",\"webhookEventId\":\"E%d\","
                                 "\"timestamp\":1,\"mode\":\"active\",\"deliveryContext\":"
                                 "{\"isRedelivery\":false},\"source\":{\"type\":\"user\","
                                 "\"userId\":\"U%d\"}}",
                                 i == 0 ? "" : ",", i, i);
    assert_true(used + 3 <= size);
    memcpy(body + used, "]}", 3);
    return body;
}

ESS_TEST(default_event_limit_is_one_hundred)
{
    (void)state;
    ingress_webhook *webhook = NULL;
    char *body = many_events_body(101);
    assert_int_equal(ingress_webhook_parse(body, strlen(body), NULL, &webhook, NULL), ST_LIMIT);
    free(body);
    body = many_events_body(100);
    assert_int_equal(ingress_webhook_parse(body, strlen(body), NULL, &webhook, NULL), ST_OK);
    assert_int_equal(webhook->event_count, 100);
    assert_string_equal(webhook->events[99].source_kind, "user");
    assert_string_equal(webhook->events[99].source_id, "U99");
    ingress_webhook_destroy(webhook);
    free(body);
}

/* The published subject carries a keyed pseudonym of the source id, never the id: nats-server
 * 2.9 writes subjects to disk unencrypted. Stable per source and key. */
ESS_TEST(subject_is_kind_and_keyed_pseudonym_of_the_source)
{
    (void)state;
    static const char body[] =
        BODY(EVENT("message", ID1, USER_SOURCE(USER_A), TEXT("a")) ","
             EVENT("message", ID2, USER_SOURCE(USER_B), TEXT("b")) ","
             EVENT("message", ID3, USER_SOURCE(USER_A), TEXT("c")) ","
             EVENT("join", "01HF0000000000000000000004", "{\"type\":\"group\",\"groupId\":\"" GROUP "\"}", ""));
    ingress_webhook *webhook = NULL;
    assert_int_equal(ingress_webhook_parse(body, strlen(body), NULL, &webhook, NULL), ST_OK);
    assert_int_equal(webhook->event_count, 4);
    vault_pseudonym_key key, other;
    vault_pseudonym_key_derive("channel-secret", 14, VAULT_PURPOSE_LINE_IN_SUBJECT, &key);
    vault_pseudonym_key_derive("other-secret", 12, VAULT_PURPOSE_LINE_IN_SUBJECT, &other);
    char subjects[4][INGRESS_SUBJECT_SIZE], expected[INGRESS_SUBJECT_SIZE];
    char pseudonym[VAULT_PSEUDONYM_HEX + 1];
    for (size_t i = 0; i < 4; i++) {
        ingress_subject(&key, &webhook->events[i], subjects[i]);
        vault_pseudonym(&key, webhook->events[i].source_id, pseudonym);
        snprintf(expected, sizeof(expected), "line.in.%s.%s", i == 3 ? "group" : "user",
                 pseudonym);
        assert_string_equal(subjects[i], expected);
        assert_null(strstr(subjects[i], webhook->events[i].source_id));
    }
    assert_string_equal(subjects[0], subjects[2]);     /* one user, one subject */
    assert_string_not_equal(subjects[0], subjects[1]); /* two users, two */
    char with_other[INGRESS_SUBJECT_SIZE];
    ingress_subject(&other, &webhook->events[0], with_other);
    assert_string_not_equal(with_other, subjects[0]); /* keyed */
    ingress_webhook_destroy(webhook);
}

ESS_TEST_MAIN(NULL, NULL)
