/* testkit_line: see testkit_line.h. */
#include "testkit_line.h"

/* A library beside testkit, not a test binary: no case list to include. */
#define TESTKIT_IMPLEMENTATION
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The emulator answers at once; the bound only keeps a hung emulator from hanging a test. */
#define CALL_TIMEOUT_MS 20000
/* A chat read back whole: far more than any test writes. */
#define CHAT_LIMIT 100000

void testkit_line_try(const char *base_url, const char *method, const char *path,
                      const char *body, long *ret_status, cJSON **ret_json)
{
    char url[600];
    int written = snprintf(url, sizeof(url), "%s/_emulator%s", base_url, path);
    *ret_status = 0;
    if (ret_json != NULL)
        *ret_json = NULL;
    if (written < 0 || (size_t)written >= sizeof(url))
        return;
    const char *headers[] = {"Content-Type: application/json", NULL};
    char *answer = NULL;
    testkit_http(method, url, headers, body, body != NULL ? strlen(body) : 0, CALL_TIMEOUT_MS,
                 ret_status, &answer);
    if (ret_json != NULL && answer != NULL)
        *ret_json = cJSON_Parse(answer);
    free(answer);
}

cJSON *testkit_line_call(const char *base_url, const char *method, const char *path,
                         const char *body, long want_status)
{
    long status = 0;
    cJSON *json = NULL;
    testkit_line_try(base_url, method, path, body, &status, &json);
    if (status != want_status || json == NULL) {
        char *text = json != NULL ? cJSON_PrintUnformatted(json) : NULL;
        fail_msg("emulator %s %s: %ld (want %ld): %.500s", method, path, status, want_status,
                 text != NULL ? text : "(no JSON)");
    }
    return json;
}

static void copy_string_member(const cJSON *object, const char *member, char *out, size_t size)
{
    const cJSON *value = cJSON_GetObjectItem(object, member);
    if (!cJSON_IsString(value) || strlen(value->valuestring) >= size)
        fail_msg("emulator answer without \"%s\"", member);
    snprintf(out, size, "%s", value->valuestring);
}

/* POSTs body (deleted here) to path and copies the answer's member into out. */
static void create(const char *base_url, const char *path, cJSON *body, const char *member,
                   char *out, size_t size)
{
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    assert_non_null(text);
    cJSON *answer = testkit_line_call(base_url, "POST", path, text, 201);
    free(text);
    copy_string_member(answer, member, out, size);
    cJSON_Delete(answer);
}

void testkit_line_user(const char *base_url, const char *display_name, const char *language,
                       char *ret_id, size_t size)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "displayName", display_name);
    cJSON_AddStringToObject(body, "language", language);
    create(base_url, "/users", body, "userId", ret_id, size);
}

void testkit_line_group(const char *base_url, const char *name, const char *const *members,
                        char *ret_id, size_t size)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "groupName", name);
    cJSON *list = cJSON_AddArrayToObject(body, "members");
    for (size_t i = 0; members[i] != NULL; i++)
        cJSON_AddItemToArray(list, cJSON_CreateString(members[i]));
    create(base_url, "/groups", body, "groupId", ret_id, size);
    char path[160];
    snprintf(path, sizeof(path), "/groups/%s/join", ret_id);
    cJSON_Delete(testkit_line_call(base_url, "POST", path, "{}", 202));
}

void testkit_line_act(const char *base_url, const char *user, const char *action,
                      const char *body, char *ret_event_id, size_t id_size,
                      int64_t *ret_delivery)
{
    char path[200];
    snprintf(path, sizeof(path), "/users/%s/%s", user, action);
    cJSON *answer = testkit_line_call(base_url, "POST", path, body != NULL ? body : "{}", 202);
    if (ret_event_id != NULL) {
        const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(answer, "events"), 0);
        copy_string_member(first, "webhookEventId", ret_event_id, id_size);
    }
    if (ret_delivery != NULL) {
        const cJSON *id = cJSON_GetObjectItem(answer, "deliveryId");
        assert_true(cJSON_IsNumber(id));
        *ret_delivery = (int64_t)id->valuedouble;
    }
    cJSON_Delete(answer);
}

/* ---- what the bot said ---------------------------------------------------------------------- */

typedef struct bot_scan {
    size_t count;
    int64_t last_seq;
    char *last_json;
} bot_scan;

static void scan_chat(const char *base_url, const char *chat, const char *needle, bot_scan *ret)
{
    char path[200];
    snprintf(path, sizeof(path), "/conversations/%s?after=0&limit=%d", chat, CHAT_LIMIT);
    cJSON *answer = testkit_line_call(base_url, "GET", path, NULL, 200);
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

size_t testkit_line_bot_count(const char *base_url, const char *chat, const char *needle)
{
    bot_scan scan;
    scan_chat(base_url, chat, needle, &scan);
    free(scan.last_json);
    return scan.count;
}

typedef struct bot_wait {
    const char *base_url, *chat, *needle;
    size_t count, seen;
    int64_t seq;
} bot_wait;

static bool bot_reached(void *closure)
{
    bot_wait *w = closure;
    bot_scan scan;
    scan_chat(w->base_url, w->chat, w->needle, &scan);
    free(scan.last_json);
    w->seq = scan.last_seq;
    w->seen = scan.count;
    return scan.count >= w->count;
}

int64_t testkit_line_wait_bot(const char *base_url, const char *chat, const char *needle,
                              size_t count, int64_t timeout_ms)
{
    bot_wait w = {base_url, chat, needle, count, 0, 0};
    if (!testkit_wait_until(bot_reached, &w, timeout_ms))
        fail_msg("chat %.10s…: %zu bot messages with \"%s\" (want %zu)", chat, w.seen,
                 needle != NULL ? needle : "(any)", count);
    return w.seq;
}

char *testkit_line_last_bot(const char *base_url, const char *chat, const char *needle)
{
    bot_scan scan;
    scan_chat(base_url, chat, needle, &scan);
    return scan.last_json;
}
