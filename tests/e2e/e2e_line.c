#include "e2e_line.h"

#include "testkit.h"

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

/* ---- the control API ------------------------------------------------------------------------ */

void e2e_line_try(e2e_stack *s, const char *method, const char *path, const char *body,
                  long *ret_status, cJSON **ret_json)
{
    char url[600];
    int written = snprintf(url, sizeof(url), "%s/_emulator%s", s->services[E2E_EMULATOR].url, path);
    *ret_status = 0;
    if (ret_json != NULL)
        *ret_json = NULL;
    if (written < 0 || (size_t)written >= sizeof(url))
        return;
    const char *headers[] = {"Content-Type: application/json", NULL};
    char *answer = NULL;
    testkit_http(method, url, headers, body, body != NULL ? strlen(body) : 0, 20000, ret_status,
                 &answer);
    if (ret_json != NULL && answer != NULL)
        *ret_json = cJSON_Parse(answer);
    free(answer);
}

cJSON *e2e_line(e2e_stack *s, const char *method, const char *path, const char *body,
                long want_status)
{
    long status = 0;
    cJSON *json = NULL;
    e2e_line_try(s, method, path, body, &status, &json);
    if (status != want_status || json == NULL) {
        char *text = json != NULL ? cJSON_PrintUnformatted(json) : NULL;
        fail_msg("emulator %s %s: %ld (want %ld): %.500s", method, path, status, want_status,
                 text != NULL ? text : "(no JSON)");
    }
    return json;
}

/* ---- people and groups ---------------------------------------------------------------------- */

static void copy_string_member(const cJSON *object, const char *member, char *out, size_t size)
{
    const cJSON *value = cJSON_GetObjectItem(object, member);
    if (!cJSON_IsString(value) || strlen(value->valuestring) >= size)
        fail_msg("emulator answer without \"%s\"", member);
    snprintf(out, size, "%s", value->valuestring);
}

void e2e_line_user(e2e_stack *s, const char *display_name, char ret_id[E2E_ID_MAX])
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "displayName", display_name);
    cJSON_AddStringToObject(body, "language", "th");
    char *text = cJSON_PrintUnformatted(body);
    cJSON *user = e2e_line(s, "POST", "/users", text, 201);
    copy_string_member(user, "userId", ret_id, E2E_ID_MAX);
    cJSON_Delete(user);
    cJSON_Delete(body);
    free(text);
}

void e2e_line_group(e2e_stack *s, const char *name, const char *const *members,
                    char ret_id[E2E_ID_MAX])
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "groupName", name);
    cJSON *list = cJSON_AddArrayToObject(body, "members");
    for (size_t i = 0; members[i] != NULL; i++)
        cJSON_AddItemToArray(list, cJSON_CreateString(members[i]));
    char *text = cJSON_PrintUnformatted(body);
    cJSON *group = e2e_line(s, "POST", "/groups", text, 201);
    copy_string_member(group, "groupId", ret_id, E2E_ID_MAX);
    cJSON_Delete(group);
    cJSON_Delete(body);
    free(text);
    char path[128];
    snprintf(path, sizeof(path), "/groups/%s/join", ret_id);
    cJSON_Delete(e2e_line(s, "POST", path, "{}", 202));
    e2e_line_wait_bot(s, ret_id, INTRODUCTION, 1);
}

void e2e_line_act(e2e_stack *s, const char *user, const char *action, const char *body,
                  char ret_event_id[E2E_ID_MAX], int64_t *ret_delivery)
{
    char path[200];
    snprintf(path, sizeof(path), "/users/%s/%s", user, action);
    cJSON *answer = e2e_line(s, "POST", path, body != NULL ? body : "{}", 202);
    if (ret_event_id != NULL) {
        const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(answer, "events"), 0);
        copy_string_member(first, "webhookEventId", ret_event_id, E2E_ID_MAX);
    }
    if (ret_delivery != NULL) {
        const cJSON *id = cJSON_GetObjectItem(answer, "deliveryId");
        assert_true(cJSON_IsNumber(id));
        *ret_delivery = (int64_t)id->valuedouble;
    }
    cJSON_Delete(answer);
}

void e2e_line_tap_quick_reply(e2e_stack *s, const char *user, int index, bool with_place,
                              double lat, double lon)
{
    char path[160], body[200];
    snprintf(path, sizeof(path), "/users/%s/tap", user);
    if (with_place)
        snprintf(body, sizeof(body), "{\"index\":%d,\"latitude\":%.6f,\"longitude\":%.6f}", index,
                 lat, lon);
    else
        snprintf(body, sizeof(body), "{\"index\":%d}", index);
    cJSON_Delete(e2e_line(s, "POST", path, body, 202));
}

void e2e_line_tap_button(e2e_stack *s, const char *user, const char *group, int64_t seq, int action)
{
    char path[160], body[200];
    snprintf(path, sizeof(path), "/users/%s/tap", user);
    snprintf(body, sizeof(body), "{\"seq\":%lld,\"action\":%d,\"groupId\":\"%s\"}", (long long)seq,
             action, group);
    cJSON_Delete(e2e_line(s, "POST", path, body, 202));
}

/* ---- what the bot said ---------------------------------------------------------------------- */

typedef struct bot_scan {
    size_t count;
    int64_t last_seq;
    char *last_json;
} bot_scan;

static void scan_chat(e2e_stack *s, const char *chat, const char *needle, bot_scan *ret)
{
    char path[200];
    snprintf(path, sizeof(path), "/conversations/%s?after=0&limit=10000", chat);
    cJSON *answer = e2e_line(s, "GET", path, NULL, 200);
    memset(ret, 0, sizeof(*ret));
    const cJSON *entry;
    cJSON_ArrayForEach(entry, cJSON_GetObjectItem(answer, "entries"))
    {
        const cJSON *direction = cJSON_GetObjectItem(entry, "direction");
        if (!cJSON_IsString(direction) || strcmp(direction->valuestring, "out") != 0)
            continue;
        char *text = cJSON_PrintUnformatted(cJSON_GetObjectItem(entry, "message"));
        if (text != NULL && (needle == NULL || strstr(text, needle) != NULL)) {
            ret->count++;
            ret->last_seq = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(entry, "seq"));
            free(ret->last_json);
            ret->last_json = text;
        } else {
            free(text);
        }
    }
    cJSON_Delete(answer);
}

size_t e2e_line_bot_count(e2e_stack *s, const char *chat, const char *needle)
{
    bot_scan scan;
    scan_chat(s, chat, needle, &scan);
    free(scan.last_json);
    return scan.count;
}

typedef struct bot_wait {
    e2e_stack *s;
    const char *chat, *needle;
    size_t count, seen;
    int64_t seq;
} bot_wait;

static bool bot_reached(void *closure)
{
    bot_wait *w = closure;
    bot_scan scan;
    scan_chat(w->s, w->chat, w->needle, &scan);
    free(scan.last_json);
    w->seq = scan.last_seq;
    w->seen = scan.count;
    return scan.count >= w->count;
}

int64_t e2e_line_wait_bot(e2e_stack *s, const char *chat, const char *needle, size_t count)
{
    bot_wait w = {s, chat, needle, count, 0, 0};
    if (!testkit_wait_until(bot_reached, &w, E2E_WAIT_MS))
        fail_msg("chat %.10s…: %zu bot messages with \"%s\" (want %zu)", chat, w.seen,
                 needle != NULL ? needle : "(any)", count);
    return w.seq;
}

char *e2e_line_last_bot(e2e_stack *s, const char *chat, const char *needle)
{
    bot_scan scan;
    scan_chat(s, chat, needle, &scan);
    return scan.last_json;
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
    char code[40];
    copy_string_member(invite, "code", code, sizeof(code));
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
