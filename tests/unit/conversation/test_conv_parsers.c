/* conv_phone, conv_postback and conv_event: tables of good and bad input. */
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_event.h"
#include "conv_phone.h"
#include "conv_postback.h"

ESS_TEST(thai_phone_numbers_are_normalised)
{
    static const struct {
        const char *input;
        const char *want;
    } good[] = {
        {"0812345678", "0812345678"},       {"081-234-5678", "0812345678"},
        {"081 234 5678", "0812345678"},     {" 081.234.5678\n", "0812345678"},
        {"+66812345678", "0812345678"},     {"+66 81 234 5678", "0812345678"},
        {"66812345678", "0812345678"},      {"+66 (0)81-234-5678", "0812345678"},
        {"0612345678", "0612345678"},       {"0912345678", "0912345678"},
        {"021234567", "021234567"},         {"02-123-4567", "021234567"},
        {"(02) 123 4567", "021234567"},     {"+66 2 123 4567", "021234567"},
        {"6621234567", "021234567"},        {"053-123456", "053123456"},
        {"0 7 3 1 2 3 4 5 6", "073123456"}, {"๐๘๑๒๓๔๕๖๗๘", "0812345678"},
        {"๐๘๑-๒๓๔-๕๖๗๘", "0812345678"},    {"+๖๖ ๘๑ ๒๓๔ ๕๖๗๘", "0812345678"},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char phone[CONV_PHONE_MAX] = "";
        st_code status = conv_phone_parse(good[i].input, strlen(good[i].input), phone);
        if (status != ST_OK || strcmp(phone, good[i].want) != 0)
            fail_msg("'%s': %s '%s', want '%s'", good[i].input, st_name(status), phone,
                     good[i].want);
        /* Normalised input parses to itself. */
        char again[CONV_PHONE_MAX] = "";
        assert_int_equal(conv_phone_parse(phone, strlen(phone), again), ST_OK);
        assert_string_equal(again, phone);
    }
}

ESS_TEST(anything_else_is_not_a_phone_number)
{
    static const char *const bad[] = {
        "",          "   ",          "191",           "1300",           "081234567",
        "08123456789", "0612345",    "061234567",     "0112345678",     "012345678",
        "12345678",  "+1 415 555 0100", "+44 20 7946 0958", "66",       "+66",
        "0812345678x", "โทร 0812345678", "081/234/5678", "081_234_5678", "++66812345678",
        "0812345678 0812345678", "+0812345678", "6681234567", "0-8-1", "--",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char phone[CONV_PHONE_MAX] = "untouched";
        st_code status = conv_phone_parse(bad[i], strlen(bad[i]), phone);
        if (status == ST_OK)
            fail_msg("'%s' accepted as %s", bad[i], phone);
        assert_string_equal(phone, "untouched");
    }
    char long_text[CONV_PHONE_INPUT_MAX + 2];
    memset(long_text, ' ', sizeof(long_text));
    memcpy(long_text, "0812345678", 10);
    char phone[CONV_PHONE_MAX];
    assert_int_equal(conv_phone_parse(long_text, sizeof(long_text), phone), ST_LIMIT);
    assert_int_equal(conv_phone_parse(NULL, 0, phone), ST_INVALID);
    /* Not NUL-terminated: only len bytes are read. */
    assert_int_equal(conv_phone_parse("0812345678999", 10, phone), ST_OK);
    assert_string_equal(phone, "0812345678");
}

ESS_TEST(phone_attempts_and_masks)
{
    assert_true(conv_phone_looks_attempted("12345", 5, 3));
    assert_true(conv_phone_looks_attempted("โทร ๐๘๑", strlen("โทร ๐๘๑"), 3));
    assert_false(conv_phone_looks_attempted("ไม่มี", strlen("ไม่มี"), 3));
    assert_false(conv_phone_looks_attempted("a1b2", 4, 3));
    char masked[CONV_PHONE_MASKED_MAX];
    conv_phone_mask("0812345678", masked);
    assert_string_equal(masked, "08x-xxx-x678");
    conv_phone_mask("021234567", masked);
    assert_string_equal(masked, "02x-xxx-567");
    conv_phone_mask("12", masked);
    assert_string_equal(masked, "x");
    conv_phone_mask(NULL, masked);
    assert_string_equal(masked, "x");
}

ESS_TEST(postback_data_parses_good_and_refuses_bad)
{
    conv_postback postback;
    const char *data = "v=1&a=cat&c=threat";
    assert_int_equal(conv_postback_parse(data, strlen(data), &postback), ST_OK);
    assert_int_equal(postback.count, 3);
    assert_string_equal(conv_postback_get(&postback, "a"), "cat");
    assert_string_equal(conv_postback_get(&postback, "c"), "threat");
    assert_null(conv_postback_get(&postback, "x"));
    data = "i=42&a=cancel&v=1"; /* any order */
    assert_int_equal(conv_postback_parse(data, strlen(data), &postback), ST_OK);
    assert_string_equal(conv_postback_get(&postback, "i"), "42");

    static const char *const bad[] = {
        "",      "v=1",          "a=cat",             "v=2&a=cat",        "v=1&a=cat&",
        "&v=1&a=cat", "v=1&&a=cat", "v=1&a=",         "v=1&=x&a=cat",     "v=1&a=cat&a=loc",
        "v=1&a=cat&c=thr eat", "v=1&a=cat&C=threat", "v=1&a=cat&c=%41", "v=1&a=cat&c",
        "action=take&case=TH50-0042", "v=1&a=c&b=1&c=2&d=3&e=4&f=5&g=6&h=7",
        "v=1&a=cat&toolongkey=1", "v=1&a=cat&c=0123456789012345678901234567890123",
        "v=1&a=cat&c=a=b", "v=1\0&a=cat",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        conv_postback untouched = {.count = 99};
        if (conv_postback_parse(bad[i], strlen(bad[i]), &untouched) == ST_OK)
            fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(untouched.count, 99);
    }
    char huge[400];
    memset(huge, 'a', sizeof(huge));
    assert_int_equal(conv_postback_parse(huge, sizeof(huge), &postback), ST_LIMIT);
}

ESS_TEST(postback_format_round_trips)
{
    char out[CONV_POSTBACK_MAX + 1];
    const char *keys[] = {"c"};
    const char *values[] = {"threat"};
    assert_int_equal(conv_postback_format("cat", keys, values, 1, out, sizeof(out)), ST_OK);
    assert_string_equal(out, "v=1&a=cat&c=threat");
    conv_postback postback;
    assert_int_equal(conv_postback_parse(out, strlen(out), &postback), ST_OK);
    assert_string_equal(conv_postback_get(&postback, "c"), "threat");
    assert_int_equal(conv_postback_format("nophone", NULL, NULL, 0, out, sizeof(out)), ST_OK);
    assert_string_equal(out, "v=1&a=nophone");

    const char *bad_keys[] = {"v"};
    assert_int_equal(conv_postback_format("cat", bad_keys, values, 1, out, sizeof(out)), ST_INVALID);
    const char *bad_values[] = {"a&b"};
    assert_int_equal(conv_postback_format("cat", keys, bad_values, 1, out, sizeof(out)), ST_INVALID);
    assert_int_equal(conv_postback_format("c t", NULL, NULL, 0, out, sizeof(out)), ST_INVALID);
    char small[8];
    assert_int_equal(conv_postback_format("cat", keys, values, 1, small, sizeof(small)), ST_LIMIT);
}

static conv_event *parse(const char *json, st_code want)
{
    conv_event *event = calloc(1, sizeof(*event));
    st_error err = {0};
    st_code status = conv_event_parse(json, strlen(json), event, &err);
    if (status != want)
        fail_msg("%s: got %s (%s), want %s", json, st_name(status), err.message, st_name(want));
    return event;
}

#define EVENT_HEAD                                                                           \
    "\"webhookEventId\":\"01HX\",\"timestamp\":1796029982025,\"mode\":\"active\","          \
    "\"deliveryContext\":{\"isRedelivery\":false},\"replyToken\":\"tok\","                \
    "\"source\":{\"type\":\"user\",\"userId\":\"U1c4a41b37c7cab8438196e83d65e1f8e\"}"

ESS_TEST(line_events_are_normalised)
{
    conv_event *e = parse("{\"type\":\"message\"," EVENT_HEAD
                          ",\"message\":{\"type\":\"text\",\"id\":\"1\",\"text\":\"ช่วยด้วย\"}}",
                          ST_OK);
    assert_int_equal(e->kind, CONV_EV_TEXT);
    assert_string_equal(e->text, "ช่วยด้วย");
    assert_string_equal(e->webhook_event_id, "01HX");
    assert_string_equal(e->reply_token, "tok");
    assert_string_equal(e->user_id, "U1c4a41b37c7cab8438196e83d65e1f8e");
    assert_true(e->timestamp_ms == 1796029982025LL);
    assert_false(e->standby);
    free(e);

    e = parse("{\"type\":\"message\"," EVENT_HEAD
              ",\"message\":{\"type\":\"location\",\"id\":\"2\",\"latitude\":18.7883,"
              "\"longitude\":98.9853,\"title\":\"บ้าน\",\"address\":\"เชียงใหม่\"}}",
              ST_OK);
    assert_int_equal(e->kind, CONV_EV_LOCATION);
    assert_true(e->location.present);
    assert_string_equal(e->location.title, "บ้าน");
    free(e);

    e = parse("{\"type\":\"postback\"," EVENT_HEAD ",\"postback\":{\"data\":\"v=1&a=menu\"}}", ST_OK);
    assert_int_equal(e->kind, CONV_EV_POSTBACK);
    assert_string_equal(e->postback_data, "v=1&a=menu");
    free(e);

    e = parse("{\"type\":\"message\"," EVENT_HEAD
              ",\"message\":{\"type\":\"sticker\",\"id\":\"3\",\"packageId\":\"1\",\"stickerId\":\"2\"}}",
              ST_OK);
    assert_int_equal(e->kind, CONV_EV_STICKER);
    free(e);
    e = parse("{\"type\":\"message\"," EVENT_HEAD ",\"message\":{\"type\":\"video\",\"id\":\"4\"}}", ST_OK);
    assert_int_equal(e->kind, CONV_EV_MEDIA);
    assert_string_equal(e->media_type, "video");
    free(e);
    e = parse("{\"type\":\"follow\"," EVENT_HEAD ",\"follow\":{\"isUnblocked\":false}}", ST_OK);
    assert_int_equal(e->kind, CONV_EV_FOLLOW);
    free(e);
    e = parse("{\"type\":\"unsend\"," EVENT_HEAD "}", ST_OK);
    assert_int_equal(e->kind, CONV_EV_IGNORED);
    free(e);
    e = parse("{\"type\":\"follow\",\"webhookEventId\":\"01HY\",\"timestamp\":5,\"mode\":\"standby\","
              "\"source\":{\"type\":\"group\",\"groupId\":\"C1\"}}",
              ST_OK);
    assert_int_equal(e->source, CONV_SOURCE_GROUP);
    assert_true(e->standby);
    assert_string_equal(e->user_id, "");
    free(e);

    /* Bad input is a status, never a crash. */
    free(parse("", ST_INVALID));
    free(parse("[]", ST_INVALID));
    free(parse("{\"type\":\"follow\"}", ST_INVALID));
    free(parse("{\"type\":\"follow\",\"webhookEventId\":\"x\",\"timestamp\":\"5\","
               "\"source\":{\"type\":\"user\"}}",
               ST_INVALID));
    free(parse("{\"type\":\"message\"," EVENT_HEAD ",\"message\":{\"type\":\"location\","
               "\"latitude\":91,\"longitude\":0}}",
               ST_INVALID));
    free(parse("{\"type\":\"message\"," EVENT_HEAD ",\"message\":{\"type\":\"text\"}}", ST_INVALID));
    free(parse("{\"type\":\"follow\",\"webhookEventId\":\"x\",\"timestamp\":1,"
               "\"source\":{\"type\":\"bot\"}}",
               ST_INVALID));
}

ESS_TEST(long_texts_are_cut_on_a_character_boundary)
{
    char out[8];
    conv_copy_utf8(out, sizeof(out), "กขค"); /* 9 bytes: only two characters fit */
    assert_string_equal(out, "กข");
    conv_copy_utf8(out, sizeof(out), "abc");
    assert_string_equal(out, "abc");
    conv_copy_utf8(out, sizeof(out), NULL);
    assert_string_equal(out, "");
}

ESS_TEST_MAIN(NULL, NULL)
