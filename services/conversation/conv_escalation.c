#include "conv_escalation.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "conv_db.h"
#include "conv_notify.h"
#include "conv_team.h"
#include "outbox.h"

/* ---- the routed event ------------------------------------------------------------------- */

typedef struct routed_target {
    char group_id[65];
    char team_id[24]; /* "" when absent */
    int level;
} routed_target;

typedef struct routed_event {
    int64_t incident_id;
    routed_target targets[CONV_ROUTED_TARGETS_MAX];
    size_t count;
    size_t dropped;
} routed_event;

static bool line_id(const char *text)
{
    size_t len = strlen(text);
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

static bool whole(const cJSON *item, double min, double max, int64_t *ret_value)
{
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) || item->valuedouble < min ||
        item->valuedouble > max || floor(item->valuedouble) != item->valuedouble)
        return false;
    *ret_value = (int64_t)item->valuedouble;
    return true;
}

static st_code parse_routed(const char *data, size_t len, routed_event *ret, st_error *err)
{
    if (data == NULL || len == 0 || len > 256 * 1024)
        return st_fail(err, ST_INVALID, "routed: empty or larger than 256 KiB");
    cJSON *root = cJSON_ParseWithLength(data, len);
    st_code status = ST_INVALID;
    memset(ret, 0, sizeof(*ret));
    if (!cJSON_IsObject(root)) {
        st_fail(err, ST_INVALID, "routed: not a JSON object");
        goto cleanup;
    }
    if (!whole(cJSON_GetObjectItemCaseSensitive(root, "incident_id"), 1, 9.0e15,
               &ret->incident_id)) {
        st_fail(err, ST_INVALID, "routed: incident_id must be an integer >= 1");
        goto cleanup;
    }
    const cJSON *targets = cJSON_GetObjectItemCaseSensitive(root, "targets");
    if (!cJSON_IsArray(targets)) {
        st_fail(err, ST_INVALID, "routed: targets must be an array");
        goto cleanup;
    }
    const cJSON *target;
    cJSON_ArrayForEach(target, targets)
    {
        const cJSON *group = cJSON_GetObjectItemCaseSensitive(target, "group_id");
        int64_t level = 0, team = 0;
        if (!cJSON_IsString(group) || !line_id(group->valuestring) ||
            !whole(cJSON_GetObjectItemCaseSensitive(target, "level"), 0, 1000, &level)) {
            st_fail(err, ST_INVALID, "routed: every target needs a group_id and a level >= 0");
            goto cleanup;
        }
        if (ret->count == CONV_ROUTED_TARGETS_MAX) {
            ret->dropped++;
            continue;
        }
        routed_target *out = &ret->targets[ret->count++];
        snprintf(out->group_id, sizeof(out->group_id), "%s", group->valuestring);
        if (whole(cJSON_GetObjectItemCaseSensitive(target, "team_id"), 1, 9.0e15, &team))
            conv_db_int_text(out->team_id, sizeof(out->team_id), team);
        out->level = (int)level;
    }
    status = ST_OK;
cleanup:
    cJSON_Delete(root);
    return status;
}

/* An info_added timeline entry's detail (conv_store.c append_info) back into what
 * conv_notify_info needs; *ret_text is heap (conv_db_wipe_free) for a text. False for an entry
 * that cannot be read back (no type, a text sealed under another key): it is left out rather
 * than holding up the routing. */
static bool info_from_detail(const vault_keys *keys, const char *detail_text,
                             conv_team_msg *ret_msg, char **ret_text, conv_location *ret_location)
{
    cJSON *detail = cJSON_Parse(detail_text);
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(detail, "type"));
    bool usable = true;
    *ret_text = NULL;
    memset(ret_location, 0, sizeof(*ret_location));
    if (type == NULL) {
        usable = false;
    } else if (strcmp(type, "text") == 0) {
        *ret_msg = CONV_TEAM_MSG_INFO_TEXT;
        const char *sealed_text =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(detail, "text_sealed"));
        unsigned char *sealed = NULL;
        size_t sealed_len = 0, plain_len = 0;
        st_error ignored = {0};
        usable = sealed_text != NULL &&
                 conv_db_base64_decode(sealed_text, &sealed, &sealed_len) == ST_OK &&
                 vault_open(keys, CONV_CONTEXT_INFO_TEXT, sealed, sealed_len, ret_text, &plain_len,
                            &ignored) == ST_OK;
        free(sealed);
    } else if (strcmp(type, "location") == 0) {
        *ret_msg = CONV_TEAM_MSG_INFO_LOCATION;
        const cJSON *location = cJSON_GetObjectItemCaseSensitive(detail, "location");
        const cJSON *lat = cJSON_GetObjectItemCaseSensitive(location, "lat");
        const cJSON *lon = cJSON_GetObjectItemCaseSensitive(location, "lon");
        const char *title =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(location, "title"));
        const char *address =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(location, "address"));
        ret_location->present = cJSON_IsNumber(lat) && cJSON_IsNumber(lon);
        ret_location->lat = cJSON_GetNumberValue(lat);
        ret_location->lon = cJSON_GetNumberValue(lon);
        snprintf(ret_location->title, sizeof(ret_location->title), "%s", title ? title : "");
        snprintf(ret_location->address, sizeof(ret_location->address), "%s",
                 address ? address : "");
    } else {
        *ret_msg =
            strcmp(type, "sticker") == 0 ? CONV_TEAM_MSG_INFO_STICKER : CONV_TEAM_MSG_INFO_IMAGE;
    }
    cJSON_Delete(detail);
    return usable;
}

/* What the reporter added before the routing reached us went to no group (none was known):
 * the groups hear it now, under the ids conv_notify_info always uses. The incident row is
 * locked by the caller, so an info event either committed before (its entry is read here) or
 * forwards after (it sees the targets): once either way. */
static st_code forward_earlier_info(db *d, const vault_keys *keys, int64_t incident_id,
                                    const char *case_number, size_t *ret_sent, st_error *err)
{
    char incident[24];
    conv_db_int_text(incident, sizeof(incident), incident_id);
    const char *params[] = {incident};
    db_result *entries = NULL;
    st_code status = db_exec(d,
                             "SELECT id, detail FROM incident_events WHERE incident_id = "
                             "$1::bigint AND kind = 'info_added' ORDER BY id",
                             1, params, &entries, err);
    for (int i = 0; status == ST_OK && i < db_result_rows(entries); i++) {
        conv_team_msg msg = CONV_TEAM_MSG_INFO_IMAGE;
        char *text = NULL;
        conv_location location;
        size_t sent = 0;
        if (info_from_detail(keys, db_result_value(entries, i, 1), &msg, &text, &location))
            status = conv_notify_info(d, keys, incident_id, case_number,
                                      conv_db_int_value(entries, i, 0), msg, text, &location, &sent,
                                      err);
        *ret_sent += sent;
        conv_db_wipe_free(text);
    }
    db_result_destroy(entries);
    return status;
}

static void interval_text(char *out, size_t size, int64_t ms)
{
    snprintf(out, size, "%" PRId64 " milliseconds", ms);
}

st_code conv_escalation_record(db *d, const conv_store_config *config, const char *data, size_t len,
                               conv_routed_result *ret_result, st_error *err)
{
    routed_event *routed = malloc(sizeof(*routed));
    conv_routed_result result = {0};
    db_result *row = NULL;
    cJSON *messages = NULL;
    if (routed == NULL)
        return st_fail(err, ST_NOMEM, "out of memory");
    st_code status = parse_routed(data, len, routed, err);
    if (status != ST_OK)
        goto cleanup;
    result.incident_id = routed->incident_id;
    char event_id[48], incident[24], timeout[48];
    snprintf(event_id, sizeof(event_id), "routed.%" PRId64, routed->incident_id);
    conv_db_int_text(incident, sizeof(incident), routed->incident_id);
    interval_text(timeout, sizeof(timeout), config->ack_timeout_ms);
    bool first = false;
    if ((status = outbox_mark_processed(d, CONV_ROUTED_CONSUMER_NAME, event_id, &first, err)) !=
        ST_OK)
        goto cleanup;
    if (!first) {
        result.duplicate = true;
        goto done;
    }
    const char *id_param[] = {incident};
    if ((status = db_exec(d,
                          "SELECT status, case_number FROM incidents WHERE id = $1::bigint "
                          "FOR UPDATE",
                          1, id_param, &row, err)) != ST_OK)
        goto cleanup;
    if (db_result_rows(row) != 1) {
        status = st_fail(err, ST_INVALID, "routed: incident %s is not on record", incident);
        goto cleanup;
    }
    int min_level = -1;
    for (size_t i = 0; i < routed->count; i++) {
        char level[16];
        snprintf(level, sizeof(level), "%d", routed->targets[i].level);
        const char *target[] = {
            incident, routed->targets[i].group_id,
            routed->targets[i].team_id[0] != '\0' ? routed->targets[i].team_id : NULL, level};
        if ((status = db_exec(d,
                              "INSERT INTO incident_targets (incident_id, group_id, team_id, "
                              "level) VALUES ($1::bigint, $2, $3::bigint, $4::int) "
                              "ON CONFLICT (incident_id, group_id) DO NOTHING",
                              4, target, NULL, err)) != ST_OK)
            goto cleanup;
        if (min_level < 0 || routed->targets[i].level < min_level)
            min_level = routed->targets[i].level;
    }
    result.targets = routed->count;
    char level_text[16];
    snprintf(level_text, sizeof(level_text), "%d", min_level < 0 ? 0 : min_level);
    const char *update[] = {incident, level_text, timeout, routed->count > 0 ? "t" : "f"};
    db_result *updated = NULL;
    status = db_exec(d,
                     "UPDATE incidents SET targets_recorded_at = now(), "
                     "escalation_level = $2::int, "
                     "ack_deadline = CASE WHEN status IN ('new', 'routed') AND $4::boolean "
                     "  THEN now() + $3::interval END, updated_at = now() "
                     "WHERE id = $1::bigint RETURNING ack_deadline IS NOT NULL",
                     4, update, &updated, err);
    if (status == ST_OK)
        result.timer_started =
            db_result_rows(updated) == 1 && strcmp(db_result_value(updated, 0, 0), "t") == 0;
    db_result_destroy(updated);
    if (status != ST_OK)
        goto cleanup;
    if (routed->count > 0 && (status = forward_earlier_info(d, config->keys, routed->incident_id,
                                                            db_result_value(row, 0, 1),
                                                            &result.outbox_added, err)) != ST_OK)
        goto cleanup;
    /* Cancelled before the routing reached us: the card's groups hear it now. */
    if (strcmp(db_result_value(row, 0, 0), "cancelled") == 0 && routed->count > 0) {
        conv_team_params params = {.case_number = db_result_value(row, 0, 1),
                                   .incident_id = routed->incident_id};
        cJSON *message = NULL;
        if ((status = conv_team_render(CONV_TEAM_MSG_CANCELLED, &params, &message)) != ST_OK) {
            st_fail(err, status, "cannot render the cancellation");
            goto cleanup;
        }
        messages = conv_notify_one(message);
        char key[48];
        snprintf(key, sizeof(key), "cancelled.%" PRId64, routed->incident_id);
        if ((status = conv_notify_groups(d, config->keys, routed->incident_id, CONV_NOTIFY_NOTIFIED,
                                         0, NULL, messages, key, &result.outbox_added, err)) !=
            ST_OK)
            goto cleanup;
    }
done:
    *ret_result = result;
    status = ST_OK;
cleanup:
    cJSON_Delete(messages);
    db_result_destroy(row);
    free(routed);
    return status;
}

/* ---- one step ------------------------------------------------------------------------------ */

/* The active groups of one level, as a JSON array of ids. */
static st_code level_groups(db *d, const char *incident, int level, cJSON **ret_groups,
                            st_error *err)
{
    char level_text[16];
    snprintf(level_text, sizeof(level_text), "%d", level);
    const char *params[] = {incident, level_text};
    db_result *r = NULL;
    st_code status = db_exec(d,
                             "SELECT t.group_id FROM incident_targets t JOIN team_groups g "
                             "ON g.group_id = t.group_id AND g.active "
                             "WHERE t.incident_id = $1::bigint AND t.level = $2::int "
                             "ORDER BY t.group_id",
                             2, params, &r, err);
    cJSON *groups = status == ST_OK ? cJSON_CreateArray() : NULL;
    for (int i = 0; groups != NULL && i < db_result_rows(r); i++)
        cJSON_AddItemToArray(groups, cJSON_CreateString(db_result_value(r, i, 0)));
    db_result_destroy(r);
    if (status != ST_OK)
        return status;
    if (groups == NULL)
        return st_fail(err, ST_NOMEM, "out of memory");
    *ret_groups = groups;
    return ST_OK;
}

st_code conv_escalation_step(db *d, const conv_store_config *config, conv_step_result *ret_result,
                             st_error *err)
{
    conv_step_result result = {0};
    db_result *due = NULL, *next = NULL, *entry = NULL;
    cJSON *reminder = NULL, *reminded = NULL, *carded = NULL, *event = NULL, *detail = NULL;
    st_code status =
        db_exec(d,
                "SELECT id, case_number, escalation_level, escalation_step, reminders_at_level, "
                "  greatest(1, round(extract(epoch FROM now() - coalesce(routed_at, reported_at)) "
                "                    / 60))::bigint "
                "FROM incidents WHERE ack_deadline <= now() AND status IN ('new', 'routed') "
                "ORDER BY ack_deadline LIMIT 1 FOR UPDATE SKIP LOCKED",
                0, NULL, &due, err);
    if (status != ST_OK || db_result_rows(due) == 0)
        goto done;
    result.found = true;
    result.incident_id = conv_db_int_value(due, 0, 0);
    const char *incident = db_result_value(due, 0, 0);
    const char *case_number = db_result_value(due, 0, 1);
    int level = (int)conv_db_int_value(due, 0, 2);
    int64_t step = conv_db_int_value(due, 0, 3) + 1;
    int64_t reminders = conv_db_int_value(due, 0, 4);
    result.from_level = result.to_level = level;

    char level_text[16];
    snprintf(level_text, sizeof(level_text), "%d", level);
    const char *next_params[] = {incident, level_text};
    if ((status = db_exec(d,
                          "SELECT min(t.level) FROM incident_targets t JOIN team_groups g "
                          "ON g.group_id = t.group_id AND g.active "
                          "WHERE t.incident_id = $1::bigint AND t.level > $2::int",
                          2, next_params, &next, err)) != ST_OK)
        goto done;
    bool escalate = !db_result_is_null(next, 0, 0);
    if (escalate)
        result.to_level = (int)conv_db_int_value(next, 0, 0);

    /* The reminder to the level that did not answer. */
    conv_team_params params = {.case_number = case_number,
                               .incident_id = result.incident_id,
                               .minutes = conv_db_int_value(due, 0, 5)};
    cJSON *message = NULL;
    if ((status = conv_team_render(CONV_TEAM_MSG_REMINDER, &params, &message)) != ST_OK) {
        st_fail(err, status, "cannot render the reminder");
        goto done;
    }
    reminder = conv_notify_one(message);
    char key[64];
    snprintf(key, sizeof(key), "remind.%" PRId64 ".%" PRId64, result.incident_id, step);
    size_t sent = 0;
    if (reminder == NULL ||
        (status = conv_notify_groups(d, config->keys, result.incident_id, CONV_NOTIFY_LEVEL, level,
                                     NULL, reminder, key, &sent, err)) != ST_OK ||
        (status = level_groups(d, incident, level, &reminded, err)) != ST_OK)
        goto done;
    result.outbox_added += sent;
    if (escalate) {
        if ((status = level_groups(d, incident, result.to_level, &carded, err)) != ST_OK)
            goto done;
    } else {
        carded = cJSON_CreateArray();
        reminders++;
        result.exhausted = reminders >= config->last_level_reminders;
    }

    char timeout[48], step_text[24], reminders_text[24], to_level_text[16];
    interval_text(timeout, sizeof(timeout), config->ack_timeout_ms);
    conv_db_int_text(step_text, sizeof(step_text), step);
    conv_db_int_text(reminders_text, sizeof(reminders_text), escalate ? 0 : reminders);
    snprintf(to_level_text, sizeof(to_level_text), "%d", result.to_level);
    const char *update[] = {incident,       to_level_text, step_text,
                            reminders_text, timeout,       result.exhausted ? "t" : "f"};
    if ((status = db_exec(d,
                          "UPDATE incidents SET escalation_level = $2::int, "
                          "escalation_step = $3::int, reminders_at_level = $4::int, "
                          "ack_deadline = CASE WHEN $6::boolean THEN NULL "
                          "  ELSE now() + $5::interval END, updated_at = now() "
                          "WHERE id = $1::bigint",
                          6, update, NULL, err)) != ST_OK)
        goto done;

    detail = cJSON_CreateObject();
    cJSON_AddNumberToObject(detail, "from_level", level);
    cJSON_AddNumberToObject(detail, "to_level", result.to_level);
    cJSON_AddNumberToObject(detail, "reminded_groups", cJSON_GetArraySize(reminded));
    cJSON_AddNumberToObject(detail, "new_groups", cJSON_GetArraySize(carded));
    cJSON_AddNumberToObject(detail, "step", (double)step);
    if (result.exhausted)
        cJSON_AddBoolToObject(detail, "last_reminder", 1);
    char *detail_text = cJSON_PrintUnformatted(detail);
    char event_key[48];
    snprintf(event_key, sizeof(event_key), "escalation.%" PRId64, step);
    const char *timeline[] = {incident, event_key, escalate ? "escalated" : "reminder",
                              detail_text};
    status = detail_text == NULL
                 ? st_fail(err, ST_NOMEM, "out of memory")
                 : db_exec(d,
                           "INSERT INTO incident_events (incident_id, event_key, kind, "
                           "actor_type, actor, detail) VALUES ($1::bigint, $2, $3, 'system', "
                           "'conversation', $4::jsonb) "
                           "ON CONFLICT (incident_id, event_key) DO NOTHING RETURNING id, "
                           "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
                           4, timeline, &entry, err);
    free(detail_text);
    if (status != ST_OK || db_result_rows(entry) != 1)
        goto done;

    event = cJSON_CreateObject();
    cJSON_AddNumberToObject(event, "incident_id", (double)result.incident_id);
    cJSON_AddStringToObject(event, "case_number", case_number);
    cJSON_AddStringToObject(event, "at", db_result_value(entry, 0, 1));
    cJSON_AddStringToObject(event, "actor", "conversation");
    cJSON_AddNumberToObject(event, "level", result.to_level);
    cJSON_AddNumberToObject(event, "from_level", level);
    cJSON_AddNumberToObject(event, "step", (double)step);
    cJSON_AddStringToObject(event, "reason", escalate ? "ack_timeout" : "ack_timeout_reminder");
    cJSON_AddItemToObject(event, "groups", carded);
    carded = NULL;
    cJSON_AddItemToObject(event, "reminded_groups", reminded);
    reminded = NULL;
    char msg_id[64];
    snprintf(msg_id, sizeof(msg_id), "escalated.%" PRId64 ".%s", result.incident_id,
             db_result_value(entry, 0, 0));
    bool added = false;
    status = conv_db_add_event(d, "ess.incident.escalated", msg_id, event, &added, err);
    result.outbox_added += added;
done:
    if (status == ST_OK)
        *ret_result = result;
    cJSON_Delete(reminder);
    cJSON_Delete(reminded);
    cJSON_Delete(carded);
    cJSON_Delete(event);
    cJSON_Delete(detail);
    db_result_destroy(entry);
    db_result_destroy(next);
    db_result_destroy(due);
    return status;
}
