/* ess-notifier's pure parts for issue 7: profile look-ups (line.out.profile → GET → an
 * ess.profile event on LINE_IN) and the escalated event that names the groups of a level. */
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "notifier_command.h"
#include "notifier_profile.h"
#include "notifier_routed.h"

#define USER "U0123456789abcdef0123456789abcdef"
#define GROUP "C0123456789abcdef0123456789abcdef"

static st_code parse_text(const char *text, notifier_profile_command *ret)
{
    st_error err = {0};
    return notifier_profile_parse(text, strlen(text), ret, &err);
}

ESS_TEST(profile_commands_are_checked_field_by_field)
{
    static const struct {
        const char *json;
        st_code want;
    } cases[] = {
        {"{\"command_id\":\"profile.01J\",\"user_id\":\"" USER "\",\"timestamp\":5,"
         "\"context\":\"language\"}",
         ST_OK},
        {"{\"command_id\":\"profile.01J\",\"user_id\":\"" USER "\",\"group_id\":\"" GROUP
         "\",\"timestamp\":5,\"context\":\"tl.42\"}",
         ST_OK},
        {"{\"user_id\":\"" USER "\",\"timestamp\":5,\"context\":\"x\"}", ST_INVALID},
        {"{\"command_id\":\"has space\",\"user_id\":\"" USER "\",\"timestamp\":5,"
         "\"context\":\"x\"}",
         ST_INVALID},
        {"{\"command_id\":\"p\",\"user_id\":\"U../etc\",\"timestamp\":5,\"context\":\"x\"}",
         ST_INVALID},
        {"{\"command_id\":\"p\",\"user_id\":\"" USER "\",\"group_id\":\"C/x\",\"timestamp\":5,"
         "\"context\":\"x\"}",
         ST_INVALID},
        {"{\"command_id\":\"p\",\"user_id\":\"" USER "\",\"timestamp\":-1,\"context\":\"x\"}",
         ST_INVALID},
        {"{\"command_id\":\"p\",\"user_id\":\"" USER "\",\"timestamp\":1.5,\"context\":\"x\"}",
         ST_INVALID},
        {"{\"command_id\":\"p\",\"user_id\":\"" USER "\",\"timestamp\":5}", ST_INVALID},
        {"{\"command_id\":\"p\",\"user_id\":\"" USER "\",\"timestamp\":5,\"context\":\"a b\"}",
         ST_INVALID},
        {"{\"command_id\":\"0123456789012345678901234567890123456789012345678901234567\","
         "\"user_id\":\"" USER "\",\"timestamp\":5,\"context\":\"x\"}",
         ST_INVALID}, /* 58 > 56 */
        {"[]", ST_INVALID},
        {"not json", ST_INVALID},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        notifier_profile_command command;
        if (parse_text(cases[i].json, &command) != cases[i].want)
            fail_msg("case %zu: %s", i, cases[i].json);
    }
    st_error err = {0};
    notifier_profile_command command;
    assert_int_equal(notifier_profile_parse(NULL, 0, &command, &err), ST_INVALID);
}

ESS_TEST(a_profile_look_up_gets_the_right_path)
{
    notifier_profile_command command;
    char path[NOTIFIER_PROFILE_PATH_MAX];
    assert_int_equal(parse_text("{\"command_id\":\"p.1\",\"user_id\":\"" USER "\",\"timestamp\":5,"
                                "\"context\":\"language\"}",
                                &command),
                     ST_OK);
    notifier_profile_path(&command, path);
    assert_string_equal(path, "/v2/bot/profile/" USER);
    assert_int_equal(parse_text("{\"command_id\":\"p.2\",\"user_id\":\"" USER
                                "\",\"group_id\":\"" GROUP
                                "\",\"timestamp\":5,\"context\":\"tl.9\"}",
                                &command),
                     ST_OK);
    notifier_profile_path(&command, path);
    assert_string_equal(path, "/v2/bot/group/" GROUP "/member/" USER);
    assert_int_equal(strcmp(notifier_endpoint_name(NOTIFIER_EP_PROFILE), "profile"), 0);
}

static const char channel_secret[] = "test-channel-secret";

/* The subject ess-ingress gives a source's events: line.in.<kind>.<keyed pseudonym>. */
static void ingress_subject_of(const char *kind, const char *id, char *out, size_t size)
{
    vault_pseudonym_key key;
    vault_pseudonym_key_derive(channel_secret, strlen(channel_secret),
                               VAULT_PURPOSE_LINE_IN_SUBJECT, &key);
    char pseudonym[VAULT_PSEUDONYM_HEX + 1];
    vault_pseudonym(&key, id, pseudonym);
    snprintf(out, size, "line.in.%s.%s", kind, pseudonym);
}

static cJSON *event_for(const char *command_text, bool found, const char *answer, char *ret_subject,
                        char *ret_msg_id)
{
    notifier_profile_command command;
    assert_int_equal(parse_text(command_text, &command), ST_OK);
    char *json = NULL;
    st_error err = {0};
    vault_pseudonym_key key;
    vault_pseudonym_key_derive(channel_secret, strlen(channel_secret),
                               VAULT_PURPOSE_LINE_IN_SUBJECT, &key);
    if (notifier_profile_event(&key, &command, found, answer, answer != NULL ? strlen(answer) : 0,
                               &json, ret_subject, ret_msg_id, &err) != ST_OK)
        fail_msg("profile event: %s", err.message);
    cJSON *event = cJSON_Parse(json);
    free(json);
    assert_non_null(event);
    return event;
}

ESS_TEST(the_answer_becomes_a_line_in_event_without_a_reporters_name)
{
    char subject[NOTIFIER_PROFILE_SUBJECT_MAX], msg_id[NOTIFIER_PROFILE_EVENT_ID_MAX + 1];
    const char answer[] = "{\"displayName\":\"Somchai\",\"userId\":\"" USER "\",\"language\":"
                          "\"en\",\"pictureUrl\":\"https://x/y\",\"statusMessage\":\"hi\"}";
    cJSON *event = event_for("{\"command_id\":\"profile.01J\",\"user_id\":\"" USER
                             "\",\"timestamp\":1796029982025,\"context\":\"language\"}",
                             true, answer, subject, msg_id);
    char expected[NOTIFIER_PROFILE_SUBJECT_MAX];
    ingress_subject_of("user", USER, expected, sizeof(expected));
    assert_string_equal(subject, expected);
    assert_null(strstr(subject, USER)); /* nats-server writes subjects to disk in clear */
    assert_string_equal(msg_id, "profile.01J.answer");
    assert_string_equal(cJSON_GetObjectItem(event, "type")->valuestring, "ess.profile");
    assert_string_equal(cJSON_GetObjectItem(event, "webhookEventId")->valuestring, msg_id);
    assert_true(cJSON_GetObjectItem(event, "timestamp")->valuedouble == 1796029982025.0);
    assert_string_equal(cJSON_GetObjectItem(event, "context")->valuestring, "language");
    const cJSON *source = cJSON_GetObjectItem(event, "source");
    assert_string_equal(cJSON_GetObjectItem(source, "type")->valuestring, "user");
    assert_string_equal(cJSON_GetObjectItem(source, "userId")->valuestring, USER);
    const cJSON *profile = cJSON_GetObjectItem(event, "profile");
    assert_string_equal(cJSON_GetObjectItem(profile, "language")->valuestring, "en");
    assert_null(cJSON_GetObjectItem(profile, "displayName")); /* a reporter's name: never */
    assert_null(cJSON_GetObjectItem(profile, "pictureUrl"));
    assert_null(cJSON_GetObjectItem(profile, "statusMessage"));
    assert_false(cJSON_IsTrue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(event, "deliveryContext"), "isRedelivery")));
    cJSON_Delete(event);

    /* A group member: the name is what the timeline needs. */
    event = event_for("{\"command_id\":\"profile.01K\",\"user_id\":\"" USER
                      "\",\"group_id\":\"" GROUP "\",\"timestamp\":7,\"context\":\"tl.42\"}",
                      true, "{\"displayName\":\"ร.ต.อ. สมชาย\",\"userId\":\"" USER "\"}", subject,
                      msg_id);
    ingress_subject_of("group", GROUP, expected, sizeof(expected));
    assert_string_equal(subject, expected);
    source = cJSON_GetObjectItem(event, "source");
    assert_string_equal(cJSON_GetObjectItem(source, "groupId")->valuestring, GROUP);
    assert_string_equal(cJSON_GetObjectItem(source, "userId")->valuestring, USER);
    profile = cJSON_GetObjectItem(event, "profile");
    assert_string_equal(cJSON_GetObjectItem(profile, "displayName")->valuestring, "ร.ต.อ. สมชาย");
    cJSON_Delete(event);

    /* LINE's 404: the event says there is no profile. */
    event = event_for("{\"command_id\":\"profile.01L\",\"user_id\":\"" USER "\",\"timestamp\":7,"
                      "\"context\":\"language\"}",
                      false, "{\"message\":\"Not found\"}", subject, msg_id);
    assert_null(cJSON_GetObjectItem(event, "profile"));
    cJSON_Delete(event);

    /* A 200 that is not JSON is refused. */
    notifier_profile_command command;
    assert_int_equal(parse_text("{\"command_id\":\"p\",\"user_id\":\"" USER "\",\"timestamp\":7,"
                                "\"context\":\"language\"}",
                                &command),
                     ST_OK);
    char *json = NULL;
    st_error err = {0};
    vault_pseudonym_key key;
    vault_pseudonym_key_derive(channel_secret, strlen(channel_secret),
                               VAULT_PURPOSE_LINE_IN_SUBJECT, &key);
    assert_int_equal(
        notifier_profile_event(&key, &command, true, "<html>", 6, &json, subject, msg_id, &err),
        ST_INVALID);
}

ESS_TEST(an_escalated_event_names_the_groups_of_the_new_level)
{
    notifier_routed routed;
    st_error err = {0};
    const char event[] = "{\"incident_id\":42,\"case_number\":\"ESS-2569-000042\",\"at\":"
                         "\"2026-11-30T10:00:00.000Z\",\"level\":1,\"from_level\":0,\"step\":1,"
                         "\"reason\":\"ack_timeout\",\"groups\":[\"Cabc\",\"Cdef\",\"Cabc\"],"
                         "\"reminded_groups\":[\"C000\"]}";
    assert_int_equal(notifier_escalated_parse(event, strlen(event), &routed, &err), ST_OK);
    assert_int_equal(routed.incident_id, 42);
    assert_string_equal(routed.case_number, "ESS-2569-000042");
    assert_int_equal(routed.first_level, 1);
    assert_int_equal(routed.group_count, 2);
    assert_string_equal(routed.groups[0], "Cabc");
    assert_string_equal(routed.groups[1], "Cdef");
    assert_string_equal(routed.province_code, ""); /* from the incident row */
    const char reminder[] = "{\"incident_id\":42,\"case_number\":\"ESS-2569-000042\",\"level\":2,"
                            "\"groups\":[]}";
    assert_int_equal(notifier_escalated_parse(reminder, strlen(reminder), &routed, &err), ST_OK);
    assert_int_equal(routed.group_count, 0);
    static const char *const bad[] = {
        "{\"case_number\":\"E\",\"level\":1,\"groups\":[]}",
        "{\"incident_id\":1,\"level\":1,\"groups\":[]}",
        "{\"incident_id\":1,\"case_number\":\"E\",\"groups\":[]}",
        "{\"incident_id\":1,\"case_number\":\"E\",\"level\":1,\"groups\":\"Cabc\"}",
        "{\"incident_id\":1,\"case_number\":\"E\",\"level\":1,\"groups\":[\"C/../x\"]}",
        "{\"incident_id\":1,\"case_number\":\"E\",\"level\":-1,\"groups\":[]}",
        "[]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (notifier_escalated_parse(bad[i], strlen(bad[i]), &routed, &err) != ST_INVALID)
            fail_msg("accepted: %s", bad[i]);
}

ESS_TEST_MAIN(NULL, NULL)
