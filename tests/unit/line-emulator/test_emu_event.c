/* Webhook events as LINE builds them (webhook.yml shapes), the body, its signature
 * (DESIGN.md §4 vectors) and the varying signature header name. */
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "emu_event.h"

#define USER "U0123456789abcdef0123456789abcdef"
#define OTHER "Ufedcba9876543210fedcba9876543210"
#define GROUP "C0123456789abcdef0123456789abcdef"

ESS_TEST(signature_vectors_from_design)
{
    (void)state;
    static const struct {
        const char *secret, *body, *signature;
    } vectors[] = {
        {"test_secret", "{\"hello\":\"world\"}", "t7Hn4ZDHqs6e+wdvI5TyQIvzie0DmMUmuXEBqyyE/tM="},
        {"channel_secret", "bodybodybodybody", "/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k="},
    };
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        char signature[EMU_SIGNATURE_LEN + 1];
        assert_int_equal(emu_signature(vectors[i].secret, strlen(vectors[i].secret),
                                       vectors[i].body, strlen(vectors[i].body), signature),
                         ST_OK);
        assert_string_equal(signature, vectors[i].signature);
    }
}

ESS_TEST(signature_header_name_varies_in_case_only)
{
    (void)state;
    bool saw_other_case = false;
    for (uint64_t n = 0; n < 8; n++) {
        const char *name = emu_signature_header_name(n);
        assert_int_equal(strcasecmp(name, "x-line-signature"), 0);
        if (strcmp(name, emu_signature_header_name(0)) != 0)
            saw_other_case = true;
    }
    assert_true(saw_other_case);
}

static emu_event_ids some_ids(bool with_token)
{
    emu_event_ids ids = {0};
    snprintf(ids.webhook_event_id, sizeof(ids.webhook_event_id), "01M8NVN99DD7NNGE18ZXSMZNHQ");
    if (with_token)
        snprintf(ids.reply_token, sizeof(ids.reply_token), "0123456789abcdef0123456789abcdef");
    snprintf(ids.message_id, sizeof(ids.message_id), "179602998202500000");
    snprintf(ids.quote_token, sizeof(ids.quote_token), "q");
    return ids;
}

static const char *string_at(const cJSON *root, const char *a, const char *b)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, a);
    if (b != NULL)
        item = cJSON_GetObjectItemCaseSensitive(item, b);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static void assert_common_fields(const cJSON *event, const char *type, const char *mode)
{
    assert_string_equal(string_at(event, "type", NULL), type);
    assert_string_equal(string_at(event, "mode", NULL), mode);
    assert_string_equal(string_at(event, "webhookEventId", NULL), "01M8NVN99DD7NNGE18ZXSMZNHQ");
    const cJSON *context = cJSON_GetObjectItemCaseSensitive(event, "deliveryContext");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(context, "isRedelivery")));
    const cJSON *timestamp = cJSON_GetObjectItemCaseSensitive(event, "timestamp");
    assert_true(cJSON_IsNumber(timestamp));
    assert_true(timestamp->valuedouble == 1796029981997.0);
}

ESS_TEST(text_event_in_a_one_to_one_chat)
{
    (void)state;
    emu_event_spec spec = {.kind = EMU_EV_TEXT, .user_id = USER, .text = "ช่วยด้วย"};
    emu_event_ids ids = some_ids(true);
    cJSON *event = NULL;
    assert_int_equal(emu_event_build(&spec, &ids, 1796029981997, &event), ST_OK);
    assert_common_fields(event, "message", "active");
    assert_string_equal(string_at(event, "replyToken", NULL), ids.reply_token);
    assert_string_equal(string_at(event, "source", "type"), "user");
    assert_string_equal(string_at(event, "source", "userId"), USER);
    assert_string_equal(string_at(event, "message", "type"), "text");
    assert_string_equal(string_at(event, "message", "text"), "ช่วยด้วย");
    assert_string_equal(string_at(event, "message", "id"), ids.message_id);
    assert_non_null(string_at(event, "message", "quoteToken"));
    cJSON_Delete(event);
}

ESS_TEST(standby_events_carry_no_reply_token)
{
    (void)state;
    emu_event_spec spec = {.kind = EMU_EV_TEXT, .user_id = USER, .text = "x", .standby = true};
    emu_event_ids ids = some_ids(true);
    cJSON *event = NULL;
    assert_int_equal(emu_event_build(&spec, &ids, 1796029981997, &event), ST_OK);
    assert_common_fields(event, "message", "standby");
    assert_null(cJSON_GetObjectItemCaseSensitive(event, "replyToken"));
    cJSON_Delete(event);
}

ESS_TEST(shapes_of_every_kind)
{
    (void)state;
    static const char *const members[] = {USER, OTHER};
    cJSON *params = cJSON_Parse("{\"date\":\"2026-11-30\"}");
    const struct {
        emu_event_spec spec;
        const char *type;
        const char *field; /* a kind-specific member that must be there */
        bool reply_token;
        const char *source_type;
        bool source_user;
    } cases[] = {
        {{.kind = EMU_EV_FOLLOW, .user_id = USER, .is_unblocked = true},
         "follow",
         "follow",
         true,
         "user",
         true},
        {{.kind = EMU_EV_UNFOLLOW, .user_id = USER}, "unfollow", NULL, false, "user", true},
        {{.kind = EMU_EV_LOCATION,
          .user_id = USER,
          .latitude = 13.7563,
          .longitude = 100.5018,
          .title = "บ้าน"},
         "message",
         "message",
         true,
         "user",
         true},
        {{.kind = EMU_EV_STICKER, .user_id = USER}, "message", "message", true, "user", true},
        {{.kind = EMU_EV_IMAGE, .user_id = USER, .group_id = GROUP},
         "message",
         "message",
         true,
         "group",
         true},
        {{.kind = EMU_EV_POSTBACK,
          .user_id = USER,
          .postback_data = "case=1&act=take",
          .postback_params = params},
         "postback",
         "postback",
         true,
         "user",
         true},
        {{.kind = EMU_EV_POSTBACK, .group_id = GROUP, .postback_data = "anonymous"},
         "postback",
         "postback",
         true,
         "group",
         false},
        {{.kind = EMU_EV_JOIN, .group_id = GROUP}, "join", NULL, true, "group", false},
        {{.kind = EMU_EV_LEAVE, .group_id = GROUP}, "leave", NULL, false, "group", false},
        {{.kind = EMU_EV_MEMBER_JOINED,
          .group_id = GROUP,
          .member_ids = members,
          .member_count = 2},
         "memberJoined",
         "joined",
         true,
         "group",
         false},
        {{.kind = EMU_EV_MEMBER_LEFT, .group_id = GROUP, .member_ids = members, .member_count = 1},
         "memberLeft",
         "left",
         false,
         "group",
         false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        emu_event_ids ids = some_ids(true);
        cJSON *event = NULL;
        assert_int_equal(emu_event_build(&cases[i].spec, &ids, 1796029981997, &event), ST_OK);
        assert_common_fields(event, cases[i].type, "active");
        if (cases[i].field != NULL &&
            cJSON_GetObjectItemCaseSensitive(event, cases[i].field) == NULL)
            fail_msg("case %zu (%s): no %s", i, cases[i].type, cases[i].field);
        bool has_token = cJSON_GetObjectItemCaseSensitive(event, "replyToken") != NULL;
        if (has_token != cases[i].reply_token)
            fail_msg("case %zu (%s): replyToken %s", i, cases[i].type,
                     has_token ? "present" : "missing");
        assert_string_equal(string_at(event, "source", "type"), cases[i].source_type);
        bool has_user = string_at(event, "source", "userId") != NULL;
        if (has_user != cases[i].source_user)
            fail_msg("case %zu (%s): source.userId %s", i, cases[i].type,
                     has_user ? "present" : "missing");
        if (strcmp(cases[i].source_type, "group") == 0)
            assert_string_equal(string_at(event, "source", "groupId"), GROUP);
        cJSON_Delete(event);
    }
    cJSON_Delete(params);
}

ESS_TEST(member_and_postback_details)
{
    (void)state;
    static const char *const members[] = {USER, OTHER};
    emu_event_spec spec = {
        .kind = EMU_EV_MEMBER_JOINED, .group_id = GROUP, .member_ids = members, .member_count = 2};
    emu_event_ids ids = some_ids(true);
    cJSON *event = NULL;
    assert_int_equal(emu_event_build(&spec, &ids, 1796029981997, &event), ST_OK);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(event, "joined"), "members");
    assert_int_equal(cJSON_GetArraySize(list), 2);
    assert_string_equal(string_at(cJSON_GetArrayItem(list, 1), "type", NULL), "user");
    assert_string_equal(string_at(cJSON_GetArrayItem(list, 1), "userId", NULL), OTHER);
    cJSON_Delete(event);

    emu_event_spec location = {
        .kind = EMU_EV_LOCATION, .user_id = USER, .latitude = 13.7563, .longitude = 100.5018};
    assert_int_equal(emu_event_build(&location, &ids, 1796029981997, &event), ST_OK);
    const cJSON *message = cJSON_GetObjectItemCaseSensitive(event, "message");
    assert_true(cJSON_GetObjectItemCaseSensitive(message, "latitude")->valuedouble == 13.7563);
    assert_null(cJSON_GetObjectItemCaseSensitive(message, "title")); /* optional, absent */
    cJSON_Delete(event);

    emu_event_spec follow = {.kind = EMU_EV_FOLLOW, .user_id = USER, .is_unblocked = true};
    assert_int_equal(emu_event_build(&follow, &ids, 1796029981997, &event), ST_OK);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(event, "follow"), "isUnblocked")));
    cJSON_Delete(event);

    emu_event_spec join_without_group = {.kind = EMU_EV_JOIN};
    assert_int_equal(emu_event_build(&join_without_group, &ids, 1, &event), ST_INVALID);
}

ESS_TEST(body_marks_redelivery_and_escapes_on_request)
{
    (void)state;
    emu_event_spec first = {.kind = EMU_EV_TEXT, .user_id = USER, .text = "ไฟไหม้ 🔥"};
    emu_event_spec second = {.kind = EMU_EV_FOLLOW, .user_id = OTHER};
    emu_event_ids ids = some_ids(true);
    cJSON *events = cJSON_CreateArray();
    cJSON *event = NULL;
    assert_int_equal(emu_event_build(&first, &ids, 1796029981997, &event), ST_OK);
    cJSON_AddItemToArray(events, event);
    assert_int_equal(emu_event_build(&second, &ids, 1796029981997, &event), ST_OK);
    cJSON_AddItemToArray(events, event);

    const char *bot = "Uaaaabbbbccccddddeeeeffff00001111";
    char *plain = NULL, *redelivered = NULL;
    size_t plain_len = 0, redelivered_len = 0;
    assert_int_equal(emu_webhook_body(bot, events, false, false, &plain, &plain_len), ST_OK);
    assert_int_equal(emu_webhook_body(bot, events, true, true, &redelivered, &redelivered_len),
                     ST_OK);

    assert_non_null(strstr(plain, "ไฟไหม้"));
    assert_null(strstr(plain, "\\u"));
    for (size_t i = 0; i < redelivered_len; i++)
        assert_true((unsigned char)redelivered[i] < 0x80);
    assert_non_null(strstr(redelivered, "\\u0e44\\u0e1f"));

    cJSON *parsed_plain = cJSON_Parse(plain);
    cJSON *parsed_again = cJSON_Parse(redelivered);
    assert_string_equal(string_at(parsed_plain, "destination", NULL), bot);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(parsed_again, "events");
    assert_int_equal(cJSON_GetArraySize(list), 2);
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        const cJSON *context = cJSON_GetObjectItemCaseSensitive(item, "deliveryContext");
        assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(context, "isRedelivery")));
    }
    /* Same text once decoded, same event ids. */
    const cJSON *first_again = cJSON_GetArrayItem(list, 0);
    assert_string_equal(string_at(first_again, "message", "text"), "ไฟไหม้ 🔥");
    assert_string_equal(string_at(first_again, "webhookEventId", NULL), ids.webhook_event_id);
    /* The source events are not modified. */
    const cJSON *original =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(events, 0), "deliveryContext");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(original, "isRedelivery")));

    cJSON_Delete(parsed_plain);
    cJSON_Delete(parsed_again);
    free(plain);
    free(redelivered);
    cJSON_Delete(events);
}

ESS_TEST(kind_names_round_trip)
{
    (void)state;
    for (int kind = 0; kind < EMU_EV_KIND_COUNT; kind++) {
        emu_event_kind parsed;
        assert_int_equal(emu_event_kind_parse(emu_event_kind_name((emu_event_kind)kind), &parsed),
                         ST_OK);
        assert_int_equal(parsed, kind);
    }
    emu_event_kind parsed;
    assert_int_equal(emu_event_kind_parse("message", &parsed), ST_NOT_FOUND);
}

ESS_TEST_MAIN(NULL, NULL)
