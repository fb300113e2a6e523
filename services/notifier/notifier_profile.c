#include "notifier_profile.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "notifier_command.h"

#define COMMAND_BYTES_MAX 4096
#define DISPLAY_NAME_BYTES_MAX 1024
#define LANGUAGE_BYTES_MAX 16

static bool token_valid(const char *text, size_t max)
{
    size_t len = strnlen(text, max + 1);
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Copies a string member into out; false when absent (and required), not a string, or too
 * long. */
static bool copy_member(const cJSON *root, const char *name, bool required, char *out, size_t size)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
    out[0] = '\0';
    if (item == NULL || cJSON_IsNull(item))
        return !required;
    if (!cJSON_IsString(item) || strlen(item->valuestring) >= size)
        return false;
    memcpy(out, item->valuestring, strlen(item->valuestring) + 1);
    return true;
}

st_code notifier_profile_parse(const char *data, size_t len, notifier_profile_command *ret_command,
                               st_error *err)
{
    if (data == NULL || len == 0 || len > COMMAND_BYTES_MAX)
        return st_fail(err, ST_INVALID, "profile: body empty or larger than %d bytes",
                       COMMAND_BYTES_MAX);
    notifier_profile_command command;
    memset(&command, 0, sizeof(command));
    st_code code = ST_INVALID;
    cJSON *root = cJSON_ParseWithLength(data, len);
    if (!cJSON_IsObject(root)) {
        st_fail(err, ST_INVALID, "profile: body is not a JSON object");
        goto cleanup;
    }
    if (!copy_member(root, "command_id", true, command.command_id, sizeof(command.command_id)) ||
        !token_valid(command.command_id, NOTIFIER_PROFILE_ID_MAX)) {
        st_fail(err, ST_INVALID, "profile: command_id must be 1..%d of [A-Za-z0-9._-]",
                NOTIFIER_PROFILE_ID_MAX);
        goto cleanup;
    }
    if (!copy_member(root, "user_id", true, command.user_id, sizeof(command.user_id)) ||
        !notifier_target_valid(command.user_id) ||
        !copy_member(root, "group_id", false, command.group_id, sizeof(command.group_id)) ||
        (command.group_id[0] != '\0' && !notifier_target_valid(command.group_id))) {
        st_fail(err, ST_INVALID, "profile: user_id / group_id must be LINE ids");
        goto cleanup;
    }
    const cJSON *timestamp = cJSON_GetObjectItemCaseSensitive(root, "timestamp");
    if (!cJSON_IsNumber(timestamp) || !isfinite(timestamp->valuedouble) ||
        timestamp->valuedouble < 0 || timestamp->valuedouble > 9.0e15 ||
        floor(timestamp->valuedouble) != timestamp->valuedouble) {
        st_fail(err, ST_INVALID, "profile: timestamp must be an integer >= 0");
        goto cleanup;
    }
    command.timestamp_ms = (int64_t)timestamp->valuedouble;
    if (!copy_member(root, "context", true, command.context, sizeof(command.context)) ||
        !token_valid(command.context, NOTIFIER_PROFILE_CONTEXT_MAX)) {
        st_fail(err, ST_INVALID, "profile: context must be 1..%d of [A-Za-z0-9._-]",
                NOTIFIER_PROFILE_CONTEXT_MAX);
        goto cleanup;
    }
    *ret_command = command;
    code = ST_OK;
cleanup:
    cJSON_Delete(root);
    return code;
}

void notifier_profile_path(const notifier_profile_command *command,
                           char ret_path[NOTIFIER_PROFILE_PATH_MAX])
{
    /* The ids passed notifier_target_valid: letters and digits, nothing to escape. */
    if (command->group_id[0] != '\0')
        snprintf(ret_path, NOTIFIER_PROFILE_PATH_MAX, "/v2/bot/group/%s/member/%s",
                 command->group_id, command->user_id);
    else
        snprintf(ret_path, NOTIFIER_PROFILE_PATH_MAX, "/v2/bot/profile/%s", command->user_id);
}

/* Copies a string member of LINE's answer into to as name, when it is a string of at most
 * max bytes. */
static void copy_answer(const cJSON *answer, const char *name, size_t max, cJSON *to)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(answer, name);
    if (cJSON_IsString(item) && strlen(item->valuestring) <= max)
        cJSON_AddStringToObject(to, name, item->valuestring);
}

st_code notifier_profile_event(const vault_pseudonym_key *subject_key,
                               const notifier_profile_command *command, bool found,
                               const char *body, size_t len, char **ret_json,
                               char ret_subject[NOTIFIER_PROFILE_SUBJECT_MAX],
                               char ret_msg_id[NOTIFIER_PROFILE_EVENT_ID_MAX + 1], st_error *err)
{
    cJSON *answer = NULL, *event = NULL;
    st_code code = ST_OK;
    if (found) {
        answer = body != NULL && len > 0 ? cJSON_ParseWithLength(body, len) : NULL;
        if (!cJSON_IsObject(answer)) {
            code = st_fail(err, ST_INVALID, "profile: LINE's answer is not a JSON object");
            goto cleanup;
        }
    }
    event = cJSON_CreateObject();
    if (event == NULL) {
        code = st_fail(err, ST_NOMEM, "profile: out of memory");
        goto cleanup;
    }
    bool group = command->group_id[0] != '\0';
    snprintf(ret_msg_id, NOTIFIER_PROFILE_EVENT_ID_MAX + 1, "%s.answer", command->command_id);
    char pseudonym[VAULT_PSEUDONYM_HEX + 1];
    vault_pseudonym(subject_key, group ? command->group_id : command->user_id, pseudonym);
    snprintf(ret_subject, NOTIFIER_PROFILE_SUBJECT_MAX, "line.in.%s.%s", group ? "group" : "user",
             pseudonym);
    cJSON_AddStringToObject(event, "type", NOTIFIER_PROFILE_EVENT_TYPE);
    cJSON_AddStringToObject(event, "webhookEventId", ret_msg_id);
    cJSON_AddNumberToObject(event, "timestamp", (double)command->timestamp_ms);
    cJSON_AddStringToObject(event, "mode", "active");
    cJSON *delivery = cJSON_AddObjectToObject(event, "deliveryContext");
    cJSON_AddBoolToObject(delivery, "isRedelivery", 0);
    cJSON *source = cJSON_AddObjectToObject(event, "source");
    cJSON_AddStringToObject(source, "type", group ? "group" : "user");
    if (group)
        cJSON_AddStringToObject(source, "groupId", command->group_id);
    cJSON_AddStringToObject(source, "userId", command->user_id);
    cJSON_AddStringToObject(event, "context", command->context);
    if (found) {
        cJSON *profile = cJSON_AddObjectToObject(event, "profile");
        copy_answer(answer, "language", LANGUAGE_BYTES_MAX, profile);
        if (group)
            copy_answer(answer, "displayName", DISPLAY_NAME_BYTES_MAX, profile);
    }
    *ret_json = cJSON_PrintUnformatted(event);
    if (*ret_json == NULL)
        code = st_fail(err, ST_NOMEM, "profile: out of memory");
cleanup:
    cJSON_Delete(answer);
    cJSON_Delete(event);
    return code;
}
