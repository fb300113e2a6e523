#include "conv_notify.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "conv_db.h"
#include "conv_reply.h"
#include "outbox.h"

cJSON *conv_notify_one(cJSON *message)
{
    if (message == NULL)
        return NULL;
    cJSON *array = cJSON_CreateArray();
    if (array == NULL) {
        cJSON_Delete(message);
        return NULL;
    }
    cJSON_AddItemToArray(array, message);
    return array;
}

st_code conv_notify_groups(db *d, const vault_keys *keys, int64_t incident_id,
                           conv_notify_scope scope, int level, const char *except_group,
                           const cJSON *messages, const char *key, size_t *ret_sent, st_error *err)
{
    char incident[24], level_text[16];
    conv_db_int_text(incident, sizeof(incident), incident_id);
    snprintf(level_text, sizeof(level_text), "%d", level);
    const char *scope_name = scope == CONV_NOTIFY_LEVEL   ? "level"
                             : scope == CONV_NOTIFY_TAKER ? "taker"
                                                          : "notified";
    const char *params[] = {incident, scope_name, level_text, except_group};
    db_result *groups = NULL;
    st_code status =
        db_exec(d,
                "SELECT t.group_id FROM incident_targets t "
                "JOIN incidents i ON i.id = t.incident_id "
                "JOIN team_groups g ON g.group_id = t.group_id AND g.active "
                "WHERE t.incident_id = $1::bigint AND t.group_id IS DISTINCT FROM $4::text AND "
                "  CASE $2 WHEN 'level' THEN t.level = $3::int "
                "          WHEN 'taker' THEN t.group_id = i.acknowledged_group_id "
                "          ELSE t.level <= i.escalation_level END "
                "ORDER BY t.level, t.group_id",
                4, params, &groups, err);
    size_t sent = 0;
    for (int i = 0; status == ST_OK && i < db_result_rows(groups); i++) {
        const char *group = db_result_value(groups, i, 0);
        char group_key[128];
        snprintf(group_key, sizeof(group_key), "%s.%s", key, group);
        status = conv_db_add_push(d, keys, group_key, group, false, messages, NULL, err);
        sent++;
    }
    db_result_destroy(groups);
    if (status == ST_OK && ret_sent != NULL)
        *ret_sent = sent;
    return status;
}

st_code conv_notify_info(db *d, const vault_keys *keys, int64_t incident_id,
                         const char *case_number, int64_t seq, conv_team_msg msg, const char *text,
                         const conv_location *location, size_t *ret_sent, st_error *err)
{
    conv_team_params params = {
        .case_number = case_number, .incident_id = incident_id, .text = text};
    cJSON *message = NULL, *messages = NULL;
    db_result *taken = NULL;
    st_code status = conv_team_render(msg, &params, &message);
    if (status != ST_OK)
        return st_fail(err, status, "cannot render information for the groups");
    messages = conv_notify_one(message);
    if (messages == NULL)
        return st_fail(err, ST_NOMEM, "out of memory");
    if (msg == CONV_TEAM_MSG_INFO_LOCATION && location != NULL) {
        cJSON *pin = conv_team_location_message(case_number, location);
        if (pin == NULL) {
            status = st_fail(err, ST_NOMEM, "out of memory");
            goto cleanup;
        }
        cJSON_AddItemToArray(messages, pin);
    }
    char incident[24];
    conv_db_int_text(incident, sizeof(incident), incident_id);
    const char *params_sql[] = {incident};
    if ((status = db_exec(d,
                          "SELECT acknowledged_group_id IS NOT NULL FROM incidents "
                          "WHERE id = $1::bigint FOR UPDATE",
                          1, params_sql, &taken, err)) != ST_OK)
        goto cleanup;
    bool has_taker = db_result_rows(taken) == 1 && strcmp(db_result_value(taken, 0, 0), "t") == 0;
    char key[64];
    snprintf(key, sizeof(key), "info.%" PRId64 ".%" PRId64, incident_id, seq);
    status = conv_notify_groups(d, keys, incident_id,
                                has_taker ? CONV_NOTIFY_TAKER : CONV_NOTIFY_NOTIFIED, 0, NULL,
                                messages, key, ret_sent, err);
cleanup:
    db_result_destroy(taken);
    cJSON_Delete(messages);
    return status;
}

st_code conv_notify_reporter(db *d, const vault_keys *keys, int64_t incident_id, conv_msg msg,
                             const char *key, bool *ret_added, st_error *err)
{
    char incident[24];
    conv_db_int_text(incident, sizeof(incident), incident_id);
    const char *params[] = {incident};
    db_result *row = NULL;
    char *user_id = NULL;
    conv_command command = {0};
    bool added = false;
    st_code status = db_exec(d,
                             "SELECT i.case_number, i.reporter_id_encrypted, "
                             "       coalesce(c.language, i.language) "
                             "FROM incidents i LEFT JOIN conversations c "
                             "  ON c.user_key = i.reporter_key_hash "
                             "WHERE i.id = $1::bigint",
                             1, params, &row, err);
    if (status != ST_OK || db_result_rows(row) != 1 || db_result_is_null(row, 0, 1))
        goto done; /* no such case, or the reporter's id was erased: nobody to tell */
    if ((status = conv_db_open_column(keys, CONV_CONTEXT_REPORTER_ID, db_result_value(row, 0, 1),
                                      &user_id, err)) != ST_OK)
        goto done;
    conv_output output;
    memset(&output, 0, sizeof(output));
    output.response[0] = msg;
    output.response_count = 1;
    output.about_incident_id = incident_id;
    snprintf(output.about_case_number, sizeof(output.about_case_number), "%s",
             db_result_value(row, 0, 0));
    if ((status = conv_reply_build(&output, conv_lang_from_code(db_result_value(row, 0, 2)), key,
                                   user_id, NULL, &command, err)) != ST_OK)
        goto done;
    status = outbox_add_sealed(d, keys, command.subject, command.command_id, command.payload,
                               command.payload_len, &added, err);
done:
    if (status == ST_OK && ret_added != NULL)
        *ret_added = added;
    conv_command_done(&command);
    conv_db_wipe_free(user_id);
    db_result_destroy(row);
    return status;
}

static bool context_valid(const char *context)
{
    size_t len = context != NULL ? strlen(context) : 0;
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = context[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

st_code conv_notify_profile_request(db *d, const vault_keys *keys, const char *command_id,
                                    const char *user_id, const char *group_id, int64_t timestamp_ms,
                                    const char *context, bool *ret_added, st_error *err)
{
    if (command_id == NULL || strlen(command_id) > CONV_PROFILE_COMMAND_ID_MAX || user_id == NULL ||
        user_id[0] == '\0' || !context_valid(context))
        return st_fail(err, ST_INVALID, "a profile request needs an id, a user and a context");
    cJSON *command = cJSON_CreateObject();
    if (command == NULL)
        return st_fail(err, ST_NOMEM, "out of memory building a profile request");
    cJSON_AddStringToObject(command, "command_id", command_id);
    cJSON_AddStringToObject(command, "user_id", user_id);
    if (group_id != NULL && group_id[0] != '\0')
        cJSON_AddStringToObject(command, "group_id", group_id);
    cJSON_AddNumberToObject(command, "timestamp", (double)timestamp_ms);
    cJSON_AddStringToObject(command, "context", context);
    st_code status =
        conv_db_add_command(d, keys, CONV_SUBJECT_PROFILE, command_id, command, ret_added, err);
    cJSON_Delete(command);
    return status;
}
