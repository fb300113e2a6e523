/* The pure parts of the responder side (issue 7) and the profile language (issue 4):
 * invite codes, what a group says to the bot, every group message through the line-emulator's
 * validator, cutting texts to LINE's units, the new event kinds, and the profile's language
 * in the dialogue. */
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "conv_event.h"
#include "conv_invite.h"
#include "conv_machine.h"
#include "conv_postback.h"
#include "conv_team.h"
#include "emu_text.h"
#include "emu_validate.h"

/* ---- invite codes ---------------------------------------------------------------------------- */

ESS_TEST(invite_codes_are_twelve_unambiguous_characters_from_sixty_bits)
{
    const unsigned char zeros[8] = {0}, ones[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const unsigned char mixed[8] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0};
    char code[CONV_INVITE_TEXT_MAX];
    conv_invite_format(zeros, code);
    assert_string_equal(code, "0000-0000-0000");
    conv_invite_format(ones, code);
    assert_string_equal(code, "ZZZZ-ZZZZ-ZZZZ");
    conv_invite_format(mixed, code);
    assert_int_equal(strlen(code), 14);
    for (const char *c = code; *c != '\0'; c++)
        assert_true(*c == '-' || strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", *c) != NULL);
    /* The low 4 bits are not used: codes differing only there are equal. */
    unsigned char low[8];
    memcpy(low, mixed, sizeof(low));
    low[7] ^= 0x0f;
    char other[CONV_INVITE_TEXT_MAX];
    conv_invite_format(low, other);
    assert_string_equal(code, other);
    low[7] ^= 0x10;
    conv_invite_format(low, other);
    assert_string_not_equal(code, other);
}

ESS_TEST(invite_codes_are_read_as_people_type_them)
{
    static const struct {
        const char *typed;
        const char *canonical; /* NULL: not a code */
    } cases[] = {
        {"ABCD-EFGH-JKMN", "ABCDEFGHJKMN"},
        {"abcd efgh jkmn", "ABCDEFGHJKMN"},
        {"  abcdefghjkmn ", "ABCDEFGHJKMN"},
        {"O1IL-0000-0000", "011100000000"}, /* O is 0, I and L are 1 */
        {"ABCD-EFGH-JKM", NULL},            /* 11 */
        {"ABCD-EFGH-JKMNP", NULL},          /* 13 */
        {"ABCD-EFGH-JKMU", NULL},           /* U is not in the alphabet */
        {"ABCD_EFGH_JKMN", NULL},
        {"", NULL},
        {"รหัสABCDEFGHJKMN", NULL},
        {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char canonical[CONV_INVITE_CHARS + 1];
        bool ok = conv_invite_normalise(cases[i].typed, canonical);
        if (cases[i].canonical == NULL) {
            if (ok)
                fail_msg("\"%s\" read as a code", cases[i].typed);
            continue;
        }
        assert_true(ok);
        assert_string_equal(canonical, cases[i].canonical);
    }
    assert_false(conv_invite_normalise(NULL, (char[CONV_INVITE_CHARS + 1]){0}));
}

ESS_TEST(an_invite_hash_is_the_sha256_of_the_canonical_code)
{
    unsigned char hash[CONV_INVITE_HASH_BYTES];
    conv_invite_hash("ABCDEFGHJKMN", hash);
    char hex[2 * CONV_INVITE_HASH_BYTES + 1];
    for (size_t i = 0; i < sizeof(hash); i++)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    /* printf 'ABCDEFGHJKMN' | sha256sum */
    assert_string_equal(hex, "f798776cb4d1e5975b47ed94fcc91314bc8d5c6935ff56b33c03b08c52356818");
}

/* ---- what a group says ------------------------------------------------------------------------
 */

static conv_event group_event(conv_event_kind kind, const char *text)
{
    conv_event event;
    memset(&event, 0, sizeof(event));
    event.kind = kind;
    event.source = CONV_SOURCE_GROUP;
    snprintf(event.group_id, sizeof(event.group_id), "C0123456789abcdef0123456789abcdef");
    if (kind == CONV_EV_TEXT)
        snprintf(event.text, sizeof(event.text), "%s", text);
    else
        snprintf(event.postback_data, sizeof(event.postback_data), "%s", text);
    return event;
}

ESS_TEST(group_texts_and_postbacks_are_classified)
{
    static const struct {
        conv_event_kind kind;
        const char *text;
        conv_team_action action;
        int64_t incident;
        conv_outcome outcome;
        bool code_valid;
    } cases[] = {
        {CONV_EV_TEXT, "/ess bind ABCD-EFGH-JKMN", CONV_TEAM_BIND, 0, 0, true},
        {CONV_EV_TEXT, "  /ESS BIND abcd efgh jkmn\nขอบคุณ", CONV_TEAM_BIND, 0, 0, true},
        {CONV_EV_TEXT, "/ess bind", CONV_TEAM_BIND, 0, 0, false},
        {CONV_EV_TEXT, "/ess bind 1234", CONV_TEAM_BIND, 0, 0, false},
        {CONV_EV_TEXT, "/ess", CONV_TEAM_HELP, 0, 0, false},
        {CONV_EV_TEXT, "/ess help", CONV_TEAM_HELP, 0, 0, false},
        {CONV_EV_TEXT, "/essbind ABCD-EFGH-JKMN", CONV_TEAM_NONE, 0, 0, false},
        {CONV_EV_TEXT, "ประชุมบ่ายนี้", CONV_TEAM_NONE, 0, 0, false},
        {CONV_EV_TEXT, "bind /ess", CONV_TEAM_NONE, 0, 0, false},
        {CONV_EV_POSTBACK, "v=1&a=take&i=42", CONV_TEAM_TAKE, 42, 0, false},
        {CONV_EV_POSTBACK, "i=42&a=scene&v=1", CONV_TEAM_SCENE, 42, 0, false},
        {CONV_EV_POSTBACK, "v=1&a=close&i=7", CONV_TEAM_CLOSE, 7, 0, false},
        {CONV_EV_POSTBACK, "v=1&a=outcome&i=7&o=false_alarm", CONV_TEAM_OUTCOME, 7,
         CONV_OUTCOME_FALSE_ALARM, false},
        {CONV_EV_POSTBACK, "v=1&a=outcome&i=7&o=maybe", CONV_TEAM_UNKNOWN, 0, 0, false},
        {CONV_EV_POSTBACK, "v=1&a=outcome&i=7", CONV_TEAM_UNKNOWN, 0, 0, false},
        {CONV_EV_POSTBACK, "v=1&a=take&i=0", CONV_TEAM_UNKNOWN, 0, 0, false},
        {CONV_EV_POSTBACK, "v=1&a=take&i=-1", CONV_TEAM_UNKNOWN, 0, 0, false},
        {CONV_EV_POSTBACK, "v=1&a=take&i=99999999999999999999", CONV_TEAM_UNKNOWN, 0, 0, false},
        {CONV_EV_POSTBACK, "v=1&a=take", CONV_TEAM_UNKNOWN, 0, 0, false},
        {CONV_EV_POSTBACK, "v=2&a=take&i=42", CONV_TEAM_UNKNOWN, 0, 0, false},
        {CONV_EV_POSTBACK, "action=take&case=TH50-0042", CONV_TEAM_UNKNOWN, 0, 0, false},
        {CONV_EV_POSTBACK, "v=1&a=cat&c=threat", CONV_TEAM_UNKNOWN, 0, 0, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        conv_event event = group_event(cases[i].kind, cases[i].text);
        conv_team_intent intent;
        conv_team_classify(&event, &intent);
        if (intent.action != cases[i].action)
            fail_msg("\"%s\": action %d, want %d", cases[i].text, intent.action, cases[i].action);
        assert_int_equal(intent.incident_id, cases[i].incident);
        assert_int_equal(intent.outcome, cases[i].outcome);
        assert_int_equal(intent.code_valid, cases[i].code_valid);
    }
    conv_event sticker = group_event(CONV_EV_STICKER, "");
    conv_team_intent intent;
    conv_team_classify(&sticker, &intent);
    assert_int_equal(intent.action, CONV_TEAM_NONE);
}

/* ---- every group message ------------------------------------------------------------------- */

static void expect_valid(cJSON *message, const char *what)
{
    cJSON *messages = cJSON_CreateArray();
    cJSON_AddItemToArray(messages, message);
    emu_problems problems = {0};
    emu_validate_messages(messages, &problems);
    if (problems.count > 0)
        fail_msg("%s: %s at %s", what, problems.items[0].message, problems.items[0].property);
    cJSON_DetachItemFromArray(messages, 0);
    cJSON_Delete(messages);
}

/* Every postback button of message classifies back to an action on the same incident. */
static size_t check_buttons(const cJSON *node, int64_t incident, int depth)
{
    size_t found = 0;
    const cJSON *child;
    cJSON_ArrayForEach(child, node)
    {
        if (child->string != NULL && strcmp(child->string, "action") == 0) {
            const cJSON *data = cJSON_GetObjectItem(child, "data");
            const cJSON *label = cJSON_GetObjectItem(child, "label");
            assert_true(cJSON_IsString(data) && cJSON_IsString(label));
            size_t graphemes = 0;
            assert_int_equal(
                emu_grapheme_count(label->valuestring, strlen(label->valuestring), &graphemes),
                ST_OK);
            assert_true(graphemes <= 20);
            conv_event event = group_event(CONV_EV_POSTBACK, data->valuestring);
            conv_team_intent intent;
            conv_team_classify(&event, &intent);
            assert_true(intent.action >= CONV_TEAM_TAKE && intent.action <= CONV_TEAM_OUTCOME);
            assert_int_equal(intent.incident_id, incident);
            found++;
        } else if (depth < 20 && (cJSON_IsArray(child) || cJSON_IsObject(child))) {
            found += check_buttons(child, incident, depth + 1);
        }
    }
    return found;
}

/* times copies of piece into out (bounded). */
static void repeat(char *out, size_t size, const char *piece, int times)
{
    size_t used = 0, len = strlen(piece);
    for (int i = 0; i < times && used + len < size; i++) {
        memcpy(out + used, piece, len);
        used += len;
    }
    out[used] = '\0';
}

ESS_TEST(every_group_message_passes_line_validation_even_with_the_longest_inputs)
{
    static char long_team[2400], long_text[40000];
    repeat(long_team, sizeof(long_team), "ทีมสหวิชาชีพ", 60);
    repeat(long_text, sizeof(long_text), "ช่วยด้วย😀", 1600); /* emoji: 2 UTF-16 units */
    const conv_team_params ordinary = {.case_number = "ESS-2569-000123",
                                       .incident_id = 123,
                                       .team = "ทีมสหวิชาชีพ จ.เชียงใหม่",
                                       .actor = "ร.ต.อ. สมชาย",
                                       .time = "08:05",
                                       .outcome = CONV_OUTCOME_REFERRED,
                                       .text = "ประตูสีฟ้า",
                                       .minutes = 3};
    const conv_team_params longest = {.case_number = "ESS-2569-1234567",
                                      .incident_id = 9007199254740991LL,
                                      .team = long_team,
                                      .actor = long_team,
                                      .time = "23:59",
                                      .outcome = CONV_OUTCOME_FALSE_ALARM,
                                      .text = long_text,
                                      .minutes = 100000};
    const conv_team_params *sets[] = {&ordinary, &longest};
    for (size_t p = 0; p < 2; p++) {
        for (int id = 0; id < CONV_TEAM_MSG_COUNT; id++) {
            cJSON *message = NULL;
            if (conv_team_render((conv_team_msg)id, sets[p], &message) != ST_OK)
                fail_msg("%s does not render", conv_team_msg_name((conv_team_msg)id));
            char *text = cJSON_PrintUnformatted(message);
            assert_null(strstr(text, "{case}"));
            assert_null(strstr(text, "{team}"));
            free(text);
            size_t buttons = check_buttons(message, sets[p]->incident_id, 0);
            if (id == CONV_TEAM_MSG_OUTCOME_CHOICE)
                assert_int_equal(buttons, 4);
            if (id == CONV_TEAM_MSG_TAKEN_CONFIRM)
                assert_int_equal(buttons, 2);
            if (id == CONV_TEAM_MSG_REMINDER)
                assert_int_equal(buttons, 1);
            expect_valid(message, conv_team_msg_name((conv_team_msg)id));
            cJSON_Delete(message);
        }
    }
    /* A message that needs a value it was not given is refused, not rendered half. */
    const conv_team_params empty = {0};
    cJSON *message = NULL;
    assert_int_equal(conv_team_render(CONV_TEAM_MSG_BOUND, &empty, &message), ST_INVALID);
    assert_int_equal(conv_team_render(CONV_TEAM_MSG_REMINDER, &empty, &message), ST_INVALID);
    assert_int_equal(conv_team_render(CONV_TEAM_MSG_COUNT, &ordinary, &message), ST_INVALID);
    assert_int_equal(conv_team_render(CONV_TEAM_MSG_INTRO, &empty, &message), ST_OK);
    expect_valid(message, "intro");
    cJSON_Delete(message);
    conv_location location = {.present = true, .lat = 18.7883, .lon = 98.9853};
    conv_copy_utf8(location.address, sizeof(location.address), long_team);
    message = conv_team_location_message("ESS-2569-000123", &location);
    expect_valid(message, "location");
    cJSON_Delete(message);
}

ESS_TEST(texts_are_cut_to_utf16_units_on_character_boundaries)
{
    char out[64];
    conv_cut_units("abc", 5, out, sizeof(out));
    assert_string_equal(out, "abc");
    conv_cut_units("abcdef", 5, out, sizeof(out));
    assert_string_equal(out, "abcd…");
    conv_cut_units("😀😀😀", 4, out, sizeof(out)); /* 2 units each */
    assert_string_equal(out, "😀…");
    conv_cut_units("กขคง", 3, out, sizeof(out));
    assert_string_equal(out, "กข…");
    conv_cut_units("abcdef", 100, out, 5); /* the byte size binds too */
    assert_string_equal(out, "a…");
    conv_cut_units(NULL, 10, out, sizeof(out));
    assert_string_equal(out, "");
    char member[128];
    conv_team_member_of("ทีม ก", member, sizeof(member));
    assert_string_equal(member, "สมาชิกกลุ่ม ทีม ก");
    conv_team_member_of("", member, sizeof(member));
    assert_string_equal(member, "สมาชิกกลุ่ม ทีม");
}

/* ---- events ---------------------------------------------------------------------------------- */

static void parse(const char *json, conv_event *event)
{
    st_error err = {0};
    if (conv_event_parse(json, strlen(json), event, &err) != ST_OK)
        fail_msg("%s: %s", json, err.message);
}

ESS_TEST(group_membership_and_profile_events_parse)
{
    conv_event *event = malloc(sizeof(*event));
    parse("{\"type\":\"join\",\"webhookEventId\":\"01J\",\"timestamp\":1,\"mode\":\"active\","
          "\"source\":{\"type\":\"group\",\"groupId\":\"Cabc\"},\"replyToken\":\"t\"}",
          event);
    assert_int_equal(event->kind, CONV_EV_JOIN);
    assert_int_equal(event->source, CONV_SOURCE_GROUP);
    assert_string_equal(event->group_id, "Cabc");
    assert_string_equal(event->user_id, "");
    parse("{\"type\":\"memberJoined\",\"webhookEventId\":\"01K\",\"timestamp\":2,"
          "\"source\":{\"type\":\"group\",\"groupId\":\"Cabc\"},\"joined\":{\"members\":["
          "{\"type\":\"user\",\"userId\":\"U1\"},{\"type\":\"user\",\"userId\":\"U2\"}]}}",
          event);
    assert_int_equal(event->kind, CONV_EV_MEMBER_JOINED);
    assert_int_equal(event->member_count, 2);
    parse("{\"type\":\"memberLeft\",\"webhookEventId\":\"01L\",\"timestamp\":3,"
          "\"source\":{\"type\":\"group\",\"groupId\":\"Cabc\"},\"left\":{\"members\":["
          "{\"type\":\"user\",\"userId\":\"U1\"}]}}",
          event);
    assert_int_equal(event->kind, CONV_EV_MEMBER_LEFT);
    assert_int_equal(event->member_count, 1);
    parse("{\"type\":\"leave\",\"webhookEventId\":\"01M\",\"timestamp\":4,"
          "\"source\":{\"type\":\"group\",\"groupId\":\"Cabc\"}}",
          event);
    assert_int_equal(event->kind, CONV_EV_LEAVE);
    parse("{\"type\":\"ess.profile\",\"webhookEventId\":\"profile.01J.answer\",\"timestamp\":5,"
          "\"mode\":\"active\",\"source\":{\"type\":\"group\",\"groupId\":\"Cabc\",\"userId\":"
          "\"U1\"},\"context\":\"tl.77\",\"profile\":{\"displayName\":\"สมชาย\","
          "\"language\":\"th\"}}",
          event);
    assert_int_equal(event->kind, CONV_EV_PROFILE);
    assert_true(event->profile_found);
    assert_string_equal(event->profile_display_name, "สมชาย");
    assert_string_equal(event->profile_context, "tl.77");
    assert_int_equal(event->timestamp_ms, 5);
    parse("{\"type\":\"ess.profile\",\"webhookEventId\":\"p.answer\",\"timestamp\":6,"
          "\"source\":{\"type\":\"user\",\"userId\":\"U1\"},\"context\":\"language\"}",
          event);
    assert_int_equal(event->kind, CONV_EV_PROFILE);
    assert_false(event->profile_found);
    st_error err = {0};
    const char no_context[] = "{\"type\":\"ess.profile\",\"webhookEventId\":\"p\",\"timestamp\":6,"
                              "\"source\":{\"type\":\"user\",\"userId\":\"U1\"}}";
    assert_int_equal(conv_event_parse(no_context, strlen(no_context), event, &err), ST_INVALID);
    free(event);
}

/* ---- the profile's language ---------------------------------------------------------------- */

static conv_event profile_event(int64_t ts, const char *language, bool found)
{
    conv_event event;
    memset(&event, 0, sizeof(event));
    event.kind = CONV_EV_PROFILE;
    event.source = CONV_SOURCE_USER;
    event.timestamp_ms = ts;
    event.profile_found = found;
    snprintf(event.profile_language, sizeof(event.profile_language), "%s", language);
    snprintf(event.profile_context, sizeof(event.profile_context), "language");
    return event;
}

ESS_TEST(the_profile_language_switches_to_english_unless_the_user_chose)
{
    const conv_context context = {.now_ms = 2000, .draft_ttl_ms = 1800000, .reports_per_hour = 5};
    static const struct {
        conv_state_kind kind;
        conv_lang language;
        conv_lang_source source;
        int64_t last_event_ts;
        bool slot_filled;
        const char *profile;
        bool found;
        conv_lang want_language;
        conv_lang_source want_source;
        size_t want_messages; /* the opening prompt again, in English */
    } cases[] = {
        /* fresh draft right after follow: English, prompt again */
        {CONV_STATE_DRAFT, CONV_LANG_TH, CONV_LANG_SOURCE_DEFAULT, 1000, false, "en", true,
         CONV_LANG_EN, CONV_LANG_SOURCE_PROFILE, 2},
        {CONV_STATE_DRAFT, CONV_LANG_TH, CONV_LANG_SOURCE_DEFAULT, 1000, false, "en-GB", true,
         CONV_LANG_EN, CONV_LANG_SOURCE_PROFILE, 2},
        {CONV_STATE_DRAFT, CONV_LANG_TH, CONV_LANG_SOURCE_DEFAULT, 1000, false, "EN", true,
         CONV_LANG_EN, CONV_LANG_SOURCE_PROFILE, 2},
        /* something happened since the look-up was asked: switch, say nothing */
        {CONV_STATE_DRAFT, CONV_LANG_TH, CONV_LANG_SOURCE_DEFAULT, 1500, false, "en", true,
         CONV_LANG_EN, CONV_LANG_SOURCE_PROFILE, 0},
        {CONV_STATE_DRAFT, CONV_LANG_TH, CONV_LANG_SOURCE_DEFAULT, 1000, true, "en", true,
         CONV_LANG_EN, CONV_LANG_SOURCE_PROFILE, 0},
        {CONV_STATE_SUBMITTED, CONV_LANG_TH, CONV_LANG_SOURCE_DEFAULT, 1000, false, "en", true,
         CONV_LANG_EN, CONV_LANG_SOURCE_PROFILE, 0},
        {CONV_STATE_IDLE, CONV_LANG_TH, CONV_LANG_SOURCE_DEFAULT, 1000, false, "en", true,
         CONV_LANG_EN, CONV_LANG_SOURCE_PROFILE, 0},
        /* the user's own choice wins */
        {CONV_STATE_DRAFT, CONV_LANG_TH, CONV_LANG_SOURCE_USER, 1000, false, "en", true,
         CONV_LANG_TH, CONV_LANG_SOURCE_USER, 0},
        {CONV_STATE_DRAFT, CONV_LANG_EN, CONV_LANG_SOURCE_USER, 1000, false, "th", true,
         CONV_LANG_EN, CONV_LANG_SOURCE_USER, 0},
        /* other languages: Thai (the catalogue has two) */
        {CONV_STATE_DRAFT, CONV_LANG_TH, CONV_LANG_SOURCE_DEFAULT, 1000, false, "ja", true,
         CONV_LANG_TH, CONV_LANG_SOURCE_PROFILE, 0},
        {CONV_STATE_DRAFT, CONV_LANG_EN, CONV_LANG_SOURCE_PROFILE, 1000, false, "th", true,
         CONV_LANG_TH, CONV_LANG_SOURCE_PROFILE, 0},
        /* no profile, or none with a language: nothing */
        {CONV_STATE_DRAFT, CONV_LANG_TH, CONV_LANG_SOURCE_DEFAULT, 1000, false, "en", false,
         CONV_LANG_TH, CONV_LANG_SOURCE_DEFAULT, 0},
        {CONV_STATE_DRAFT, CONV_LANG_TH, CONV_LANG_SOURCE_DEFAULT, 1000, false, "", true,
         CONV_LANG_TH, CONV_LANG_SOURCE_DEFAULT, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        conv_state conversation;
        conv_state_init(&conversation);
        conversation.kind = cases[i].kind;
        conversation.language = cases[i].language;
        conversation.language_source = cases[i].source;
        conversation.last_event_ts = cases[i].last_event_ts;
        conversation.draft_touched_ts = cases[i].last_event_ts;
        if (cases[i].slot_filled)
            conversation.category = CONV_CAT_THREAT;
        conv_event event = profile_event(1000, cases[i].profile, cases[i].found);
        conv_output output;
        conv_machine_apply(&conversation, &event, &context, &output);
        if (output.next.language != cases[i].want_language ||
            output.next.language_source != cases[i].want_source ||
            output.response_count != cases[i].want_messages)
            fail_msg("case %zu: language %d source %d messages %zu", i, output.next.language,
                     output.next.language_source, output.response_count);
        /* Outside the order of the user's events: the time of the newest one stays. */
        assert_int_equal(output.next.last_event_ts, cases[i].last_event_ts);
        assert_int_equal(output.next.kind, cases[i].kind);
        if (cases[i].want_messages == 2) {
            assert_int_equal(output.response[0], CONV_MSG_WELCOME);
            assert_int_equal(output.response[1], CONV_MSG_ASK_CATEGORY);
        }
    }
    /* Standby: nothing. */
    conv_state conversation;
    conv_state_init(&conversation);
    conversation.kind = CONV_STATE_DRAFT;
    conversation.last_event_ts = 1000;
    conv_event event = profile_event(1000, "en", true);
    event.standby = true;
    conv_output output;
    conv_machine_apply(&conversation, &event, &context, &output);
    assert_false(output.changed);
}

ESS_TEST(keywords_and_the_language_button_are_the_users_choice)
{
    const conv_context context = {.now_ms = 2000, .draft_ttl_ms = 1800000, .reports_per_hour = 5};
    conv_state conversation;
    conv_state_init(&conversation);
    conv_event event;
    memset(&event, 0, sizeof(event));
    event.kind = CONV_EV_TEXT;
    event.source = CONV_SOURCE_USER;
    event.timestamp_ms = 1000;
    snprintf(event.text, sizeof(event.text), "help");
    conv_output output;
    conv_machine_apply(&conversation, &event, &context, &output);
    assert_int_equal(output.next.language, CONV_LANG_EN);
    assert_int_equal(output.next.language_source, CONV_LANG_SOURCE_USER);
    event.kind = CONV_EV_POSTBACK;
    event.timestamp_ms = 1100;
    snprintf(event.postback_data, sizeof(event.postback_data), "v=1&a=lang&l=th");
    conv_state next = output.next;
    conv_machine_apply(&next, &event, &context, &output);
    assert_int_equal(output.next.language, CONV_LANG_TH);
    assert_int_equal(output.next.language_source, CONV_LANG_SOURCE_USER);
    assert_string_equal(conv_lang_source_name(CONV_LANG_SOURCE_PROFILE), "profile");
    assert_int_equal(conv_lang_source_from_name("user"), CONV_LANG_SOURCE_USER);
    assert_int_equal(conv_lang_source_from_name("bogus"), CONV_LANG_SOURCE_DEFAULT);
}

ESS_TEST_MAIN(NULL, NULL)
