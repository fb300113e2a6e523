#include "e2e_line.h"

#include "testkit.h"
#include "testkit_line.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the bot says at each step of a report (services/conversation/conv_catalog.c). */
#define ASK_CATEGORY "เกิดเหตุอะไร"
#define ASK_LOCATION "ส่งตำแหน่งที่เกิดเหตุ"
#define ASK_PHONE "พิมพ์เบอร์โทร"
#define SUBMITTED "เลขที่เคส ESS-"
/* The group's answer to a bind (services/conversation/conv_team.c). */
#define BOUND "ผูกกลุ่มนี้กับ"
#define INTRODUCTION "/ess bind"
#define CARD_PREFIX "แจ้งเหตุใหม่ "

/* ---- the control API (tests/support/testkit_line.h) ----------------------------------------- */

static const char *emulator_url(const e2e_stack *s)
{
    return s->services[E2E_EMULATOR].url;
}

void e2e_line_try(e2e_stack *s, const char *method, const char *path, const char *body,
                  long *ret_status, cJSON **ret_json)
{
    testkit_line_try(emulator_url(s), method, path, body, ret_status, ret_json);
}

cJSON *e2e_line(e2e_stack *s, const char *method, const char *path, const char *body,
                long want_status)
{
    return testkit_line_call(emulator_url(s), method, path, body, want_status);
}

/* ---- people and groups ---------------------------------------------------------------------- */

void e2e_line_user(e2e_stack *s, const char *display_name, char ret_id[E2E_ID_MAX])
{
    testkit_line_user(emulator_url(s), display_name, "th", ret_id, E2E_ID_MAX);
}

void e2e_line_group(e2e_stack *s, const char *name, const char *const *members,
                    char ret_id[E2E_ID_MAX])
{
    testkit_line_group(emulator_url(s), name, members, ret_id, E2E_ID_MAX);
    e2e_line_wait_bot(s, ret_id, INTRODUCTION, 1);
}

void e2e_line_act(e2e_stack *s, const char *user, const char *action, const char *body,
                  char ret_event_id[E2E_ID_MAX], int64_t *ret_delivery)
{
    testkit_line_act(emulator_url(s), user, action, body, ret_event_id, E2E_ID_MAX,
                     ret_delivery);
}

void e2e_line_tap_quick_reply(e2e_stack *s, const char *user, int index, bool with_place,
                              double lat, double lon)
{
    char body[200];
    if (with_place)
        snprintf(body, sizeof(body), "{\"index\":%d,\"latitude\":%.6f,\"longitude\":%.6f}", index,
                 lat, lon);
    else
        snprintf(body, sizeof(body), "{\"index\":%d}", index);
    testkit_line_act(emulator_url(s), user, "tap", body, NULL, 0, NULL);
}

void e2e_line_tap_button(e2e_stack *s, const char *user, const char *group, int64_t seq, int action)
{
    char body[200];
    snprintf(body, sizeof(body), "{\"seq\":%lld,\"action\":%d,\"groupId\":\"%s\"}", (long long)seq,
             action, group);
    testkit_line_act(emulator_url(s), user, "tap", body, NULL, 0, NULL);
}

/* ---- what the bot said ---------------------------------------------------------------------- */

size_t e2e_line_bot_count(e2e_stack *s, const char *chat, const char *needle)
{
    return testkit_line_bot_count(emulator_url(s), chat, needle);
}

int64_t e2e_line_wait_bot(e2e_stack *s, const char *chat, const char *needle, size_t count)
{
    return testkit_line_wait_bot(emulator_url(s), chat, needle, count, E2E_WAIT_MS);
}

char *e2e_line_last_bot(e2e_stack *s, const char *chat, const char *needle)
{
    return testkit_line_last_bot(emulator_url(s), chat, needle);
}

bool e2e_line_case_number_in(const char *text, char ret_case[E2E_CASE_MAX])
{
    /* ESS-dddd-dddddd */
    for (const char *at = text != NULL ? strstr(text, "ESS-") : NULL; at != NULL;
         at = strstr(at + 1, "ESS-")) {
        bool shaped = true;
        for (int i = 4; i < 15 && shaped; i++)
            shaped = i == 8 ? at[i] == '-' : (at[i] >= '0' && at[i] <= '9');
        if (shaped) {
            snprintf(ret_case, E2E_CASE_MAX, "%.15s", at);
            return true;
        }
    }
    return false;
}

bool e2e_line_is_card(const cJSON *message, char ret_case[E2E_CASE_MAX])
{
    const cJSON *type = cJSON_GetObjectItem(message, "type");
    const cJSON *alt = cJSON_GetObjectItem(message, "altText");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "flex") != 0 || !cJSON_IsString(alt))
        return false;
    size_t prefix = strlen(CARD_PREFIX);
    if (strncmp(alt->valuestring, CARD_PREFIX, prefix) != 0)
        return false;
    return e2e_line_case_number_in(alt->valuestring + prefix, ret_case) &&
           alt->valuestring[prefix + 15] == ':';
}

size_t e2e_line_card_count(e2e_stack *s, const char *group, const char *case_number)
{
    char path[200];
    snprintf(path, sizeof(path), "/messages?to=%s&limit=10000", group);
    cJSON *answer = e2e_line(s, "GET", path, NULL, 200);
    size_t count = 0;
    const cJSON *record;
    cJSON_ArrayForEach(record, cJSON_GetObjectItem(answer, "messages"))
    {
        char found[E2E_CASE_MAX];
        if (e2e_line_is_card(cJSON_GetObjectItem(record, "message"), found) &&
            strcmp(found, case_number) == 0)
            count++;
    }
    cJSON_Delete(answer);
    return count;
}

/* ---- a citizen's report --------------------------------------------------------------------- */

void e2e_line_report_until_phone(e2e_stack *s, const char *citizen, int category_index, double lat,
                                 double lon)
{
    size_t asked_category = e2e_line_bot_count(s, citizen, ASK_CATEGORY);
    size_t asked_location = e2e_line_bot_count(s, citizen, ASK_LOCATION);
    size_t asked_phone = e2e_line_bot_count(s, citizen, ASK_PHONE);
    e2e_line_act(s, citizen, "follow", NULL, NULL, NULL);
    e2e_line_wait_bot(s, citizen, ASK_CATEGORY, asked_category + 1);
    e2e_line_tap_quick_reply(s, citizen, category_index, false, 0, 0);
    e2e_line_wait_bot(s, citizen, ASK_LOCATION, asked_location + 1);
    e2e_line_tap_quick_reply(s, citizen, 1, true, lat, lon);
    e2e_line_wait_bot(s, citizen, ASK_PHONE, asked_phone + 1);
}

void e2e_line_wait_case(e2e_stack *s, const char *citizen, char ret_case[E2E_CASE_MAX])
{
    e2e_line_wait_bot(s, citizen, SUBMITTED, 1);
    char *last = e2e_line_last_bot(s, citizen, SUBMITTED);
    bool found = e2e_line_case_number_in(last, ret_case);
    free(last);
    if (!found)
        fail_msg("the reporter's answer has no case number");
}

void e2e_line_report(e2e_stack *s, const char *citizen, int category_index, double lat, double lon,
                     const char *phone, char ret_case[E2E_CASE_MAX])
{
    e2e_line_report_until_phone(s, citizen, category_index, lat, lon);
    char body[120];
    snprintf(body, sizeof(body), "{\"text\":\"%s\"}", phone);
    e2e_line_act(s, citizen, "text", body, NULL, NULL);
    e2e_line_wait_case(s, citizen, ret_case);
}

/* ---- teams ---------------------------------------------------------------------------------- */

void e2e_team_by_invite(e2e_stack *s, const char *const *invite_args, const char *group_name,
                        const char *officer, char ret_group[E2E_ID_MAX])
{
    const char *args[24] = {"team", "invite", "--json"};
    size_t n = 3;
    for (size_t i = 0; invite_args[i] != NULL && n < 23; i++)
        args[n++] = invite_args[i];
    args[n] = NULL;
    char *output = e2e_essctl(s, args);
    cJSON *invite = cJSON_Parse(output);
    const cJSON *code_item = cJSON_GetObjectItem(invite, "code");
    if (!cJSON_IsString(code_item) || strlen(code_item->valuestring) >= 40)
        fail_msg("essctl team invite --json printed no code");
    char code[40];
    snprintf(code, sizeof(code), "%s", code_item->valuestring);
    cJSON_Delete(invite);
    free(output);

    const char *members[] = {officer, NULL};
    e2e_line_group(s, group_name, members, ret_group);
    char body[240];
    snprintf(body, sizeof(body), "{\"text\":\"/ess bind %s\",\"groupId\":\"%s\"}", code, ret_group);
    e2e_line_act(s, officer, "text", body, NULL, NULL);
    e2e_line_wait_bot(s, ret_group, BOUND, 1);
}

void e2e_team_by_add(e2e_stack *s, const char *name, const char *const *add_args,
                     const char *officer, char ret_group[E2E_ID_MAX])
{
    const char *members[] = {officer, NULL};
    e2e_line_group(s, name, members, ret_group);
    const char *args[24] = {"team", "add", "--name", name, "--group", ret_group};
    size_t n = 6;
    for (size_t i = 0; add_args[i] != NULL && n < 23; i++)
        args[n++] = add_args[i];
    args[n] = NULL;
    free(e2e_essctl(s, args));
}
