/* The message catalogue and the send commands, checked with the line-emulator's own
 * validator (tools/line-emulator/emu_validate.c): every message in both languages, alone and
 * as the bot combines them, passes LINE's rules (quick-reply labels <= 20 graphemes, texts,
 * postback data). */
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "conv_catalog.h"
#include "conv_postback.h"
#include "conv_reply.h"
#include "emu_validate.h"

static const conv_msg_params params = {.case_number = "ESS-2569-000123", .incident_id = 123};

static void expect_valid(cJSON *messages, const char *what)
{
    emu_problems problems = {0};
    emu_validate_messages(messages, &problems);
    if (problems.count > 0)
        fail_msg("%s: %s at %s", what, problems.items[0].message, problems.items[0].property);
}

ESS_TEST(every_message_passes_line_validation_in_both_languages)
{
    for (int lang = CONV_LANG_TH; lang <= CONV_LANG_EN; lang++) {
        for (int id = 0; id < CONV_MSG_COUNT; id++) {
            cJSON *message = NULL;
            if (conv_catalog_render((conv_msg)id, (conv_lang)lang, &params, &message) != ST_OK)
                fail_msg("%s/%s does not render", conv_msg_name((conv_msg)id),
                         conv_lang_code((conv_lang)lang));
            const char *text = cJSON_GetObjectItem(message, "text")->valuestring;
            assert_true(strlen(text) > 0);
            assert_null(strchr(text, '{')); /* every placeholder filled */
            cJSON *messages = cJSON_CreateArray();
            cJSON_AddItemToArray(messages, message);
            char what[64];
            snprintf(what, sizeof(what), "%s/%s", conv_msg_name((conv_msg)id),
                     conv_lang_code((conv_lang)lang));
            expect_valid(messages, what);
            /* Every postback button carries data our own parser accepts. */
            const cJSON *item;
            cJSON_ArrayForEach(item, cJSON_GetObjectItem(cJSON_GetObjectItem(message, "quickReply"),
                                                         "items"))
            {
                const cJSON *action = cJSON_GetObjectItem(item, "action");
                const cJSON *data = cJSON_GetObjectItem(action, "data");
                if (cJSON_IsString(data)) {
                    conv_postback postback;
                    assert_int_equal(conv_postback_parse(data->valuestring,
                                                         strlen(data->valuestring), &postback),
                                     ST_OK);
                }
            }
            cJSON_Delete(messages);
        }
    }
}

ESS_TEST(thai_and_english_differ_and_name_the_hotlines)
{
    for (int id = 0; id < CONV_MSG_COUNT; id++) {
        cJSON *th = NULL, *en = NULL;
        assert_int_equal(conv_catalog_render((conv_msg)id, CONV_LANG_TH, &params, &th), ST_OK);
        assert_int_equal(conv_catalog_render((conv_msg)id, CONV_LANG_EN, &params, &en), ST_OK);
        assert_string_not_equal(cJSON_GetObjectItem(th, "text")->valuestring,
                                cJSON_GetObjectItem(en, "text")->valuestring);
        cJSON_Delete(th);
        cJSON_Delete(en);
    }
    static const conv_msg with_191[] = {CONV_MSG_WELCOME, CONV_MSG_SUBMITTED,
                                        CONV_MSG_RATE_LIMITED};
    for (size_t i = 0; i < sizeof(with_191) / sizeof(with_191[0]); i++)
        for (int lang = CONV_LANG_TH; lang <= CONV_LANG_EN; lang++) {
            cJSON *message = NULL;
            assert_int_equal(conv_catalog_render(with_191[i], (conv_lang)lang, &params, &message),
                             ST_OK);
            assert_non_null(strstr(cJSON_GetObjectItem(message, "text")->valuestring, "191"));
            cJSON_Delete(message);
        }
    cJSON *limited = NULL;
    assert_int_equal(conv_catalog_render(CONV_MSG_RATE_LIMITED, CONV_LANG_TH, &params, &limited),
                     ST_OK);
    const char *text = cJSON_GetObjectItem(limited, "text")->valuestring;
    assert_non_null(strstr(text, "1300"));
    assert_non_null(strstr(text, "1669"));
    cJSON_Delete(limited);
    /* A case message without a case number is refused, not sent half-filled. */
    cJSON *message = NULL;
    assert_int_equal(conv_catalog_render(CONV_MSG_SUBMITTED, CONV_LANG_TH, NULL, &message),
                     ST_INVALID);
    assert_int_equal(conv_catalog_render(CONV_MSG_COUNT, CONV_LANG_TH, NULL, &message), ST_INVALID);
}

ESS_TEST(categories_have_codes_and_design_labels)
{
    static const char *const thai_labels[] = {"ถูกข่มขู่/ทำร้าย", "กักขังหน่วงเหนี่ยว", "ล่วงละเมิดทางเพศ",
                                              "คนคลุ้มคลั่งก่อเหตุ", "มั่วสุมก่อเหตุ"};
    static const char *const codes[] = {"threat", "confinement", "sexual", "frenzy", "gathering"};
    for (int i = 1; i <= CONV_CATEGORY_COUNT; i++) {
        assert_string_equal(conv_category_code((conv_category)i), codes[i - 1]);
        assert_string_equal(conv_category_label((conv_category)i, CONV_LANG_TH), thai_labels[i - 1]);
        assert_int_equal(conv_category_from_code(codes[i - 1]), i);
        assert_int_equal(conv_category_from_label(thai_labels[i - 1]), i);
        assert_int_equal(conv_category_from_label(conv_category_label((conv_category)i, CONV_LANG_EN)), i);
    }
    assert_int_equal(conv_category_from_code("arson"), CONV_CAT_NONE);
    assert_null(conv_category_code(CONV_CAT_NONE));
}

/* The longest answers the dialogue builds, as commands: valid for LINE and for the schema. */
ESS_TEST(commands_follow_the_schema_and_pass_validation)
{
    conv_output output;
    memset(&output, 0, sizeof(output));
    output.next.incident_id = 123;
    snprintf(output.next.case_number, sizeof(output.next.case_number), "ESS-2569-000123");
    const conv_msg longest[] = {CONV_MSG_EXPIRED, CONV_MSG_WELCOME, CONV_MSG_ASK_CATEGORY};
    memcpy(output.response, longest, sizeof(longest));
    output.response_count = 3;
    for (int reply = 0; reply < 2; reply++)
        for (int lang = CONV_LANG_TH; lang <= CONV_LANG_EN; lang++) {
            conv_command command = {0};
            assert_int_equal(conv_reply_build(&output, (conv_lang)lang,
                                              "01HXYZ0123456789ABCDEFGHJK",
                                              "U1c4a41b37c7cab8438196e83d65e1f8e",
                                              reply ? "replytoken" : NULL, &command, NULL),
                             ST_OK);
            cJSON *root = cJSON_Parse(command.payload);
            assert_non_null(root);
            const char *id = cJSON_GetObjectItem(root, "command_id")->valuestring;
            assert_string_equal(id, command.command_id);
            assert_true(strlen(id) <= 120);
            assert_true(cJSON_IsTrue(cJSON_GetObjectItem(root, "notification_disabled")));
            if (reply) {
                assert_string_equal(command.subject, "line.out.reply");
                assert_string_equal(id, "reply.01HXYZ0123456789ABCDEFGHJK");
                assert_string_equal(cJSON_GetObjectItem(root, "reply_token")->valuestring,
                                    "replytoken");
                assert_non_null(cJSON_GetObjectItem(root, "fallback_to"));
                assert_null(cJSON_GetObjectItem(root, "to"));
            } else {
                assert_string_equal(command.subject, "line.out.push");
                assert_string_equal(id, "push.01HXYZ0123456789ABCDEFGHJK");
                assert_non_null(cJSON_GetObjectItem(root, "to"));
                assert_null(cJSON_GetObjectItem(root, "reply_token"));
            }
            cJSON *messages = cJSON_GetObjectItem(root, "messages");
            assert_int_equal(cJSON_GetArraySize(messages), 3);
            expect_valid(messages, command.command_id);
            cJSON_Delete(root);
            conv_command_done(&command);
        }
    /* Nothing to say: no command. */
    output.response_count = 0;
    conv_command command = {0};
    assert_int_equal(conv_reply_build(&output, CONV_LANG_TH, "k", "U1", NULL, &command, NULL),
                     ST_INVALID);
}

ESS_TEST(reply_tokens_are_used_while_fresh)
{
    conv_event event;
    memset(&event, 0, sizeof(event));
    event.timestamp_ms = 1000000;
    snprintf(event.reply_token, sizeof(event.reply_token), "tok");
    assert_true(conv_reply_token_fresh(&event, 1000000 + 50000, 50000));
    assert_false(conv_reply_token_fresh(&event, 1000000 + 50001, 50000));
    event.reply_token[0] = '\0';
    assert_false(conv_reply_token_fresh(&event, 1000000, 50000));
}

ESS_TEST_MAIN(NULL, NULL)
