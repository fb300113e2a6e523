#include "notifier_command.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

const char *notifier_endpoint_name(notifier_endpoint endpoint)
{
    return endpoint == NOTIFIER_EP_REPLY     ? "reply"
           : endpoint == NOTIFIER_EP_PROFILE ? "profile"
                                             : "push";
}

static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool notifier_target_valid(const char *target)
{
    size_t len = strnlen(target, NOTIFIER_TARGET_MAX + 1);
    if (len == 0 || len > NOTIFIER_TARGET_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!alnum(target[i]))
            return false;
    return true;
}

static bool reply_token_valid(const char *token)
{
    size_t len = strnlen(token, NOTIFIER_REPLY_TOKEN_MAX + 1);
    if (len == 0 || len > NOTIFIER_REPLY_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!alnum(token[i]) && token[i] != '-' && token[i] != '_')
            return false;
    return true;
}

/* Printable ASCII without spaces or quotes: it becomes a msg-id, a log field, a UUID name. */
static bool command_id_valid(const char *id)
{
    size_t len = strnlen(id, NOTIFIER_COMMAND_ID_MAX + 1);
    if (len == 0 || len > NOTIFIER_COMMAND_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (id[i] <= ' ' || id[i] > '~' || id[i] == '"' || id[i] == '\\')
            return false;
    return true;
}

/* Copies an optional string member; false when present but not a string or too long. */
static bool optional_string(const cJSON *root, const char *name, char *out, size_t out_size)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
    out[0] = '\0';
    if (item == NULL || cJSON_IsNull(item))
        return true;
    if (!cJSON_IsString(item) || strlen(item->valuestring) >= out_size)
        return false;
    memcpy(out, item->valuestring, strlen(item->valuestring) + 1);
    return true;
}

st_code notifier_command_parse(const char *subject, const char *data, size_t len,
                               notifier_command *ret_command, st_error *err)
{
    notifier_command command;
    memset(&command, 0, sizeof(command));
    cJSON *root = NULL;
    st_code code = ST_INVALID;
    if (subject != NULL && strcmp(subject, "line.out.reply") == 0) {
        command.endpoint = NOTIFIER_EP_REPLY;
    } else if (subject != NULL && strcmp(subject, "line.out.push") == 0) {
        command.endpoint = NOTIFIER_EP_PUSH;
    } else {
        st_fail(err, ST_INVALID, "command: subject is not line.out.reply or line.out.push");
        goto cleanup;
    }
    if (data == NULL || len == 0 || len > NOTIFIER_COMMAND_BYTES_MAX) {
        st_fail(err, ST_INVALID, "command: body empty or larger than %d bytes",
                NOTIFIER_COMMAND_BYTES_MAX);
        goto cleanup;
    }
    root = cJSON_ParseWithLength(data, len);
    if (root == NULL || !cJSON_IsObject(root)) {
        st_fail(err, ST_INVALID, "command: body is not a JSON object");
        goto cleanup;
    }
    if (!optional_string(root, "command_id", command.command_id, sizeof(command.command_id)) ||
        !command_id_valid(command.command_id)) {
        st_fail(err, ST_INVALID,
                "command: command_id must be 1..%d printable characters without spaces",
                NOTIFIER_COMMAND_ID_MAX);
        goto cleanup;
    }
    if (!optional_string(root, "reply_token", command.reply_token, sizeof(command.reply_token)) ||
        (command.reply_token[0] != '\0' && !reply_token_valid(command.reply_token))) {
        st_fail(err, ST_INVALID, "command: reply_token must be 1..%d of [A-Za-z0-9_-]",
                NOTIFIER_REPLY_TOKEN_MAX);
        goto cleanup;
    }
    if (!optional_string(root, "to", command.to, sizeof(command.to)) ||
        (command.to[0] != '\0' && !notifier_target_valid(command.to)) ||
        !optional_string(root, "fallback_to", command.fallback_to, sizeof(command.fallback_to)) ||
        (command.fallback_to[0] != '\0' && !notifier_target_valid(command.fallback_to))) {
        st_fail(err, ST_INVALID,
                "command: to / fallback_to must be LINE ids (1..%d letters "
                "and digits)",
                NOTIFIER_TARGET_MAX);
        goto cleanup;
    }
    const cJSON *disabled = cJSON_GetObjectItemCaseSensitive(root, "notification_disabled");
    if (disabled != NULL && !cJSON_IsNull(disabled) && !cJSON_IsBool(disabled)) {
        st_fail(err, ST_INVALID, "command: notification_disabled must be a boolean");
        goto cleanup;
    }
    command.notification_disabled = cJSON_IsTrue(disabled);
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(root, "messages");
    int count = cJSON_IsArray(messages) ? cJSON_GetArraySize(messages) : 0;
    if (count < 1 || count > NOTIFIER_MESSAGES_MAX) {
        st_fail(err, ST_INVALID, "command: messages must be an array of 1..%d objects",
                NOTIFIER_MESSAGES_MAX);
        goto cleanup;
    }
    const cJSON *message;
    cJSON_ArrayForEach(message, messages)
    {
        if (!cJSON_IsObject(message)) {
            st_fail(err, ST_INVALID, "command: messages must be an array of 1..%d objects",
                    NOTIFIER_MESSAGES_MAX);
            goto cleanup;
        }
    }
    if (command.endpoint == NOTIFIER_EP_PUSH && command.to[0] == '\0') {
        st_fail(err, ST_INVALID, "command: a push needs `to`");
        goto cleanup;
    }
    if (command.endpoint == NOTIFIER_EP_REPLY && command.reply_token[0] == '\0' &&
        notifier_command_fallback_target(&command)[0] == '\0') {
        st_fail(err, ST_INVALID, "command: a reply needs reply_token or a target to push to");
        goto cleanup;
    }
    command.messages = cJSON_PrintUnformatted(messages);
    if (command.messages == NULL) {
        code = st_fail(err, ST_NOMEM, "command: out of memory");
        goto cleanup;
    }
    command.messages_len = strlen(command.messages);
    *ret_command = command;
    memset(&command, 0, sizeof(command));
    code = ST_OK;

cleanup:
    notifier_command_done(&command);
    cJSON_Delete(root);
    return code;
}

void notifier_command_done(notifier_command *command)
{
    if (command == NULL)
        return;
    cJSON_free(command->messages);
    command->messages = NULL;
    command->messages_len = 0;
}

const char *notifier_command_fallback_target(const notifier_command *command)
{
    if (command->fallback_to[0] != '\0')
        return command->fallback_to;
    return command->to;
}

/* {"<key>":"<value>","messages":<messages>[,"notificationDisabled":true]}; value is from the
 * checked alphabets, so it needs no escaping. */
static st_code body(const char *key, const char *value, bool notification_disabled,
                    const char *messages, size_t messages_len, char **ret_body, size_t *ret_len,
                    st_error *err)
{
    static const char disabled[] = ",\"notificationDisabled\":true";
    size_t size = strlen(key) + strlen(value) + messages_len + sizeof(disabled) + 32;
    char *text = malloc(size);
    if (text == NULL)
        return st_fail(err, ST_NOMEM, "request body: out of memory");
    int n = snprintf(text, size, "{\"%s\":\"%s\",\"messages\":%.*s%s}", key, value,
                     (int)messages_len, messages, notification_disabled ? disabled : "");
    if (n < 0 || (size_t)n >= size) {
        free(text);
        return st_fail(err, ST_INTERNAL, "request body: does not fit");
    }
    *ret_body = text;
    *ret_len = (size_t)n;
    return ST_OK;
}

st_code notifier_body_push(const char *to, bool notification_disabled, const char *messages,
                           size_t messages_len, char **ret_body, size_t *ret_len, st_error *err)
{
    if (!notifier_target_valid(to))
        return st_fail(err, ST_INVALID, "push: target is not a LINE id");
    return body("to", to, notification_disabled, messages, messages_len, ret_body, ret_len, err);
}

st_code notifier_body_reply(const char *reply_token, bool notification_disabled,
                            const char *messages, size_t messages_len, char **ret_body,
                            size_t *ret_len, st_error *err)
{
    if (!reply_token_valid(reply_token))
        return st_fail(err, ST_INVALID, "reply: token has characters LINE does not use");
    return body("replyToken", reply_token, notification_disabled, messages, messages_len, ret_body,
                ret_len, err);
}

void notifier_retry_key(const char *command_id, bool fallback, char ret_key[VAULT_UUID_TEXT])
{
    char name[NOTIFIER_COMMAND_ID_MAX + 16];
    snprintf(name, sizeof(name), "%s%s", command_id, fallback ? ".fallback" : "");
    vault_uuid_from_name(NOTIFIER_RETRY_KEY_NAMESPACE, name, ret_key);
}
