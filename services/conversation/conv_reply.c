#include "conv_reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

bool conv_reply_token_fresh(const conv_event *event, int64_t now_ms, int64_t max_age_ms)
{
    return event != NULL && event->reply_token[0] != '\0' &&
           now_ms - event->timestamp_ms <= max_age_ms;
}

void conv_command_done(conv_command *command)
{
    if (command == NULL)
        return;
    free(command->payload);
    command->payload = NULL;
    command->payload_len = 0;
}

st_code conv_reply_build(const conv_output *output, conv_lang language, const char *key,
                         const char *user_id, const char *reply_token,
                         conv_command *ret_command, st_error *err)
{
    if (output == NULL || output->response_count == 0 || key == NULL || key[0] == '\0' ||
        user_id == NULL || user_id[0] == '\0' || strlen(user_id) > 64 ||
        (reply_token != NULL && strlen(reply_token) > 256))
        return st_fail(err, ST_INVALID, "nothing to send, or no recipient");
    bool reply = reply_token != NULL && reply_token[0] != '\0';
    conv_command command = {.subject = reply ? CONV_SUBJECT_REPLY : CONV_SUBJECT_PUSH};
    int written = snprintf(command.command_id, sizeof(command.command_id), "%s.%s",
                           reply ? "reply" : "push", key);
    if (written < 0 || (size_t)written >= sizeof(command.command_id))
        return st_fail(err, ST_LIMIT, "command id longer than %d", CONV_COMMAND_ID_MAX - 1);

    st_code status = ST_OK;
    cJSON *root = cJSON_CreateObject();
    if (root == NULL)
        return st_fail(err, ST_NOMEM, "out of memory building a command");
    cJSON_AddStringToObject(root, "command_id", command.command_id);
    if (reply) {
        cJSON_AddStringToObject(root, "reply_token", reply_token);
        cJSON_AddStringToObject(root, "fallback_to", user_id);
    } else {
        cJSON_AddStringToObject(root, "to", user_id);
    }
    cJSON_AddBoolToObject(root, "notification_disabled", 1);
    cJSON *messages = cJSON_AddArrayToObject(root, "messages");
    conv_msg_params params = {0};
    conv_output_params(output, &params);
    for (size_t i = 0; i < output->response_count && i < CONV_RESPONSE_MAX; i++) {
        cJSON *message = NULL;
        status = conv_catalog_render(output->response[i], language, &params, &message);
        if (status != ST_OK) {
            st_fail(err, status, "cannot render message '%s'", conv_msg_name(output->response[i]));
            goto cleanup;
        }
        cJSON_AddItemToArray(messages, message);
    }
    command.payload = cJSON_PrintUnformatted(root);
    if (command.payload == NULL) {
        status = st_fail(err, ST_NOMEM, "out of memory printing a command");
        goto cleanup;
    }
    command.payload_len = strlen(command.payload);
    *ret_command = command;
cleanup:
    cJSON_Delete(root);
    return status;
}
