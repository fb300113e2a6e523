/* What reaches audit_log of a message: every phone format scrubbed or sealed, LINE user ids
 * replaced by their keyed hash, identifiers and the anonymous facts kept. */
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "audit_redact.h"
#include "vault.h"

static const char key_a[] = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
static const char user_id[] = "U4af4980629a0b1c2d3e4f5a6b7c8d9e0";
static const char group_id[] = "Caaaabbbbccccddddeeeeffff00001111";

static vault_keys keys(void)
{
    vault_keys k;
    assert_int_equal(vault_keys_from_base64(key_a, &k, NULL), ST_OK);
    return k;
}

static char *scrub(const char *text)
{
    vault_keys k = keys();
    char *out = NULL;
    assert_int_equal(audit_scrub_text(&k, text, strlen(text), &out, NULL, NULL), ST_OK);
    return out;
}

/* Every way a Thai phone number is written. */
static const char *const phone_formats[] = {
    "0812345678",        "081-234-5678",       "081 234 5678",     "081.234.5678",
    "(081) 234-5678",    "+66812345678",       "+66 81 234 5678",  "+66-81-234-5678",
    "66812345678",       "081-2345678",        "+66 (0) 81 234 5678",
    "๐๘๑๒๓๔๕๖๗๘",       "๐๘๑-๒๓๔-๕๖๗๘",       "０８１２３４５６７８", "＋６６８１２３４５６７８",
    "081 - 234 - 5678",  "081\xc2\xa0" "234\xc2\xa0" "5678", "081–234–5678",
    "02-123-4567",       "021234567",
};

ESS_TEST(every_phone_format_is_scrubbed)
{
    for (size_t i = 0; i < sizeof(phone_formats) / sizeof(phone_formats[0]); i++) {
        char text[200];
        snprintf(text, sizeof(text), "โทร %s ด่วน", phone_formats[i]);
        char *out = scrub(text);
        if (strstr(out, AUDIT_PHONE_MASK) == NULL || strstr(out, phone_formats[i]) != NULL ||
            strstr(out, "5678") != NULL || strstr(out, "๕๖๗๘") != NULL ||
            strstr(out, "５６７８") != NULL || strstr(out, "4567") != NULL)
            fail_msg("format %zu not scrubbed: %s", i, out);
        assert_string_equal(strstr(out, " ด่วน"), " ด่วน");
        free(out);
        /* Glued to words, at the start, at the end. */
        snprintf(text, sizeof(text), "Tel.%s", phone_formats[i]);
        out = scrub(text);
        if (strstr(out, AUDIT_PHONE_MASK) == NULL)
            fail_msg("format %zu after 'Tel.' not scrubbed: %s", i, out);
        free(out);
        snprintf(text, sizeof(text), "โทร%s", phone_formats[i]);
        out = scrub(text);
        if (strstr(out, AUDIT_PHONE_MASK) == NULL)
            fail_msg("format %zu glued to Thai not scrubbed: %s", i, out);
        free(out);
    }
}

ESS_TEST(identifiers_dates_and_numbers_are_kept)
{
    static const char *const kept[] = {
        "ESS-2569-000123",                 /* case number */
        "2026-11-30T09:00:00.123Z",        /* ISO time */
        "2026-11-30 09:00:00+07",          /* PostgreSQL's timestamptz text */
        "13.7563309, 100.5017651",         /* coordinates in text */
        "191",                             /* hotlines */
        "1300 or 1669",
        "30/11/2569 09:00",                /* Thai date */
        "12345678",                        /* 8 digits */
        "C1234567890abcdef1234567890abcdef", /* group id */
    };
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
        char *out = scrub(kept[i]);
        if (strcmp(out, kept[i]) != 0)
            fail_msg("changed %s into %s", kept[i], out);
        free(out);
    }
}

ESS_TEST(user_ids_in_text_become_their_keyed_hash)
{
    vault_keys k = keys();
    char expected[AUDIT_USER_HASH_TEXT];
    audit_user_hash(&k, user_id, expected);
    assert_int_equal(strncmp(expected, "h:", 2), 0);
    assert_int_equal(strlen(expected), 66);
    char text[200];
    snprintf(text, sizeof(text), "from %s to %s", user_id, group_id);
    char *out = scrub(text);
    assert_null(strstr(out, user_id));
    assert_non_null(strstr(out, expected));
    assert_non_null(strstr(out, group_id));
    free(out);
}

ESS_TEST(subjects_lose_user_and_room_ids)
{
    vault_keys k = keys();
    char subject[256], out[256], expected[300], hashed[AUDIT_USER_HASH_TEXT];
    audit_user_hash(&k, user_id, hashed);
    snprintf(subject, sizeof(subject), "line.in.user.%s", user_id);
    audit_redact_subject(&k, subject, out, sizeof(out));
    snprintf(expected, sizeof(expected), "line.in.user.%s", hashed);
    assert_string_equal(out, expected);
    /* Any source id of a user subject, whatever its shape. */
    audit_redact_subject(&k, "line.in.user.someone", out, sizeof(out));
    assert_null(strstr(out, "someone"));
    audit_redact_subject(&k, "line.in.room.R0123456789abcdef0123456789abcdef", out, sizeof(out));
    assert_null(strstr(out, "R0123456789abcdef"));
    snprintf(subject, sizeof(subject), "line.in.group.%s", group_id);
    audit_redact_subject(&k, subject, out, sizeof(out));
    assert_string_equal(out, subject);
    audit_redact_subject(&k, "ess.incident.reported", out, sizeof(out));
    assert_string_equal(out, "ess.incident.reported");
}

static cJSON *redact(const char *payload)
{
    vault_keys k = keys();
    char *json = NULL;
    size_t len = 0;
    assert_int_equal(audit_redact_payload(&k, payload, strlen(payload), &json, &len, NULL),
                     ST_OK);
    assert_true(audit_utf8_valid(json, len));
    cJSON *root = cJSON_Parse(json);
    assert_non_null(root);
    free(json);
    return root;
}

static char *open_sealed(const char *base64, const char *context)
{
    vault_keys k = keys();
    size_t len = strlen(base64);
    unsigned char *raw = malloc(len);
    int n = EVP_DecodeBlock(raw, (const unsigned char *)base64, (int)len);
    assert_true(n > 0);
    while (len > 0 && base64[len - 1] == '=') {
        n--;
        len--;
    }
    char *plain = NULL;
    size_t plain_len = 0;
    assert_int_equal(vault_open(&k, context, raw, (size_t)n, &plain, &plain_len, NULL), ST_OK);
    free(raw);
    return plain;
}

ESS_TEST(line_in_text_is_sealed_and_user_ids_hashed)
{
    char payload[2048];
    snprintf(payload, sizeof(payload),
             "{\"type\":\"message\",\"webhookEventId\":\"01HX0000000000000000000000\","
             "\"timestamp\":1764493200000,\"mode\":\"active\",\"replyToken\":\"b60d4328\","
             "\"deliveryContext\":{\"isRedelivery\":false},"
             "\"source\":{\"type\":\"user\",\"userId\":\"%s\"},"
             "\"message\":{\"id\":\"468789577898262530\",\"type\":\"text\","
             "\"text\":\"ช่วยด้วย โทร 081-234-5678\","
             "\"mention\":{\"mentionees\":[{\"index\":0,\"length\":4,\"userId\":\"%s\"}]}}}",
             user_id, user_id);
    cJSON *root = redact(payload);
    char *text = cJSON_PrintUnformatted(root);
    assert_null(strstr(text, user_id));
    assert_null(strstr(text, "5678"));
    /* Identifiers stay as they were. */
    assert_non_null(strstr(text, "\"id\":\"468789577898262530\""));
    assert_non_null(strstr(text, "01HX0000000000000000000000"));
    assert_non_null(strstr(text, "\"timestamp\":1764493200000"));
    const cJSON *message = cJSON_GetObjectItem(root, "message");
    assert_null(cJSON_GetObjectItem(message, "text"));
    const cJSON *sealed = cJSON_GetObjectItem(message, "text_sealed");
    assert_true(cJSON_IsString(sealed));
    char *plain = open_sealed(sealed->valuestring, AUDIT_SEAL_TEXT_CONTEXT);
    assert_string_equal(plain, "ช่วยด้วย โทร 081-234-5678");
    free(plain);
    vault_keys k = keys();
    char hashed[AUDIT_USER_HASH_TEXT];
    audit_user_hash(&k, user_id, hashed);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "source"), "userId")->valuestring,
                        hashed);
    free(text);
    cJSON_Delete(root);
}

ESS_TEST(line_out_target_hashed_group_kept_texts_scrubbed)
{
    char payload[2048];
    snprintf(payload, sizeof(payload),
             "{\"command_id\":\"push.42.1\",\"to\":\"%s\",\"fallback_to\":\"%s\","
             "\"messages\":[{\"type\":\"text\",\"text\":\"เคส ESS-2569-000042 ผู้แจ้ง 0812345678\"},"
             "{\"type\":\"flex\",\"altText\":\"โทร +66 81 234 5678\",\"contents\":{\"type\":\"bubble\","
             "\"body\":{\"contents\":[{\"type\":\"text\",\"text\":\"๐๘๑๒๓๔๕๖๗๘\"}]}}}]}",
             user_id, group_id);
    cJSON *root = redact(payload);
    char *text = cJSON_PrintUnformatted(root);
    assert_null(strstr(text, user_id));
    assert_null(strstr(text, "5678"));
    assert_null(strstr(text, "๕๖๗๘"));
    assert_non_null(strstr(text, "ESS-2569-000042"));
    assert_non_null(strstr(text, group_id));
    assert_non_null(strstr(text, "push.42.1"));
    free(text);
    cJSON_Delete(root);
}

ESS_TEST(phone_members_are_sealed_whatever_their_place)
{
    cJSON *root = redact("{\"incident_id\":7,\"case_number\":\"ESS-2569-000007\",\"has_phone\":true,"
                         "\"reporter\":{\"phone\":\"0812345678\",\"phone_number\":812345678}}");
    char *text = cJSON_PrintUnformatted(root);
    assert_null(strstr(text, "812345678"));
    assert_non_null(strstr(text, "\"has_phone\":true"));
    const cJSON *reporter = cJSON_GetObjectItem(root, "reporter");
    char *plain = open_sealed(cJSON_GetObjectItem(reporter, "phone_sealed")->valuestring,
                              AUDIT_SEAL_TEXT_CONTEXT);
    assert_string_equal(plain, "0812345678");
    free(plain);
    assert_non_null(cJSON_GetObjectItem(reporter, "phone_number_sealed"));
    free(text);
    cJSON_Delete(root);
}

ESS_TEST(postback_location_and_member_lists_are_cleaned)
{
    char payload[2048];
    snprintf(payload, sizeof(payload),
             "[{\"postback\":{\"data\":\"action=phone&v=0812345678\"}},"
             "{\"message\":{\"type\":\"location\",\"title\":\"บ้าน\",\"address\":\"99 ถนน โทร 02-123-4567\","
             "\"latitude\":13.7563,\"longitude\":100.5018}},"
             "{\"joined\":{\"members\":[{\"type\":\"user\",\"userId\":\"%s\"}]},\"userIds\":[\"%s\"]}]",
             user_id, user_id);
    cJSON *root = redact(payload);
    char *text = cJSON_PrintUnformatted(root);
    assert_null(strstr(text, user_id));
    assert_null(strstr(text, "5678"));
    assert_null(strstr(text, "4567"));
    assert_non_null(strstr(text, "13.7563"));
    assert_non_null(strstr(text, "action=phone&v=[phone]"));
    free(text);
    cJSON_Delete(root);
}

ESS_TEST(payload_that_is_not_json_is_sealed_whole)
{
    static const char *const bad[] = {"phone 0812345678 not json {", "\xff\xfe 0812345678",
                                      "{\"a\":\"\\ud800 0812345678\"}", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        vault_keys k = keys();
        char *json = NULL;
        size_t len = 0;
        assert_int_equal(audit_redact_payload(&k, bad[i], strlen(bad[i]), &json, &len, NULL),
                         ST_OK);
        assert_null(strstr(json, "812345678"));
        assert_true(audit_utf8_valid(json, len));
        cJSON *root = cJSON_Parse(json);
        assert_non_null(root);
        if (i < 2) {
            assert_true(cJSON_IsTrue(cJSON_GetObjectItem(root, "unparsed")));
            char *plain = open_sealed(cJSON_GetObjectItem(root, "sealed")->valuestring,
                                      AUDIT_SEAL_RAW_CONTEXT);
            assert_string_equal(plain, bad[i]);
            free(plain);
        }
        cJSON_Delete(root);
        free(json);
    }
}

ESS_TEST(utf8_validation)
{
    assert_true(audit_utf8_valid("ก ข 😀", strlen("ก ข 😀")));
    assert_false(audit_utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(audit_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(audit_utf8_valid("\xe0\xb9", 2));         /* cut */
    assert_false(audit_utf8_valid("a\0b", 3));
}

ESS_TEST_MAIN(NULL, NULL)
