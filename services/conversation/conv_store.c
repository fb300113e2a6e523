#include "conv_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "conv_db.h"
#include "conv_notify.h"
#include "conv_reply.h"
#include "conv_team.h"
#include "outbox.h"

/* ---- encodings ----------------------------------------------------------------------------- */

static void format_double(char *out, size_t size, double value)
{
    snprintf(out, size, "%.17g", value);
}

static void format_int(char *out, size_t size, int64_t value)
{
    snprintf(out, size, "%" PRId64, value);
}

/* ---- conversation row <-> state ---------------------------------------------------------- */

static cJSON *location_json(const conv_location *location)
{
    cJSON *json = cJSON_CreateObject();
    cJSON_AddNumberToObject(json, "lat", location->lat);
    cJSON_AddNumberToObject(json, "lon", location->lon);
    if (location->title[0] != '\0')
        cJSON_AddStringToObject(json, "title", location->title);
    if (location->address[0] != '\0')
        cJSON_AddStringToObject(json, "address", location->address);
    return json;
}

static void location_from_json(const cJSON *json, conv_location *ret_location)
{
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(json, "lat");
    const cJSON *lon = cJSON_GetObjectItemCaseSensitive(json, "lon");
    if (!cJSON_IsNumber(lat) || !cJSON_IsNumber(lon))
        return;
    ret_location->present = true;
    ret_location->lat = lat->valuedouble;
    ret_location->lon = lon->valuedouble;
    const cJSON *title = cJSON_GetObjectItemCaseSensitive(json, "title");
    const cJSON *address = cJSON_GetObjectItemCaseSensitive(json, "address");
    conv_copy_utf8(ret_location->title, sizeof(ret_location->title),
                   cJSON_IsString(title) ? title->valuestring : "");
    conv_copy_utf8(ret_location->address, sizeof(ret_location->address),
                   cJSON_IsString(address) ? address->valuestring : "");
}

static int64_t int_item(const cJSON *object, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    return cJSON_IsNumber(item) ? (int64_t)item->valuedouble : 0;
}

/* The draft slots as stored: the phone sealed. Heap JSON text. */
static st_code slots_encode(const conv_store_config *config, const conv_state *state,
                            char **ret_json, st_error *err)
{
    st_code status = ST_OK;
    char *sealed_phone = NULL;
    cJSON *slots = cJSON_CreateObject();
    if (slots == NULL)
        return st_fail(err, ST_NOMEM, "out of memory encoding a conversation");
    if (state->category != CONV_CAT_NONE)
        cJSON_AddStringToObject(slots, "category", conv_category_code(state->category));
    if (state->location.present)
        cJSON_AddItemToObject(slots, "location", location_json(&state->location));
    /* Once submitted, the phone lives in the incident only. */
    if (state->phone[0] != '\0' && state->kind == CONV_STATE_DRAFT) {
        if ((status = conv_db_seal_base64(config->keys, CONV_CONTEXT_DRAFT_PHONE, state->phone,
                                          &sealed_phone, err)) != ST_OK)
            goto cleanup;
        cJSON_AddStringToObject(slots, "phone_sealed", sealed_phone);
    }
    if (state->phone_failures > 0)
        cJSON_AddNumberToObject(slots, "phone_failures", state->phone_failures);
    if (state->phone_declined)
        cJSON_AddBoolToObject(slots, "phone_declined", 1);
    if (state->draft_touched_ts > 0)
        cJSON_AddNumberToObject(slots, "touched", (double)state->draft_touched_ts);
    if (state->submitted_ts > 0)
        cJSON_AddNumberToObject(slots, "submitted_ts", (double)state->submitted_ts);
    *ret_json = cJSON_PrintUnformatted(slots);
    if (*ret_json == NULL)
        status = st_fail(err, ST_NOMEM, "out of memory encoding a conversation");
cleanup:
    free(sealed_phone);
    cJSON_Delete(slots);
    return status;
}

static st_code slots_decode(const conv_store_config *config, const char *json, conv_state *state,
                            st_error *err)
{
    st_code status = ST_OK;
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    char *phone = NULL;
    size_t phone_len = 0;
    cJSON *slots = cJSON_Parse(json != NULL ? json : "{}");
    if (!cJSON_IsObject(slots)) {
        status = st_fail(err, ST_INTERNAL, "conversation slots are not a JSON object");
        goto cleanup;
    }
    const cJSON *category = cJSON_GetObjectItemCaseSensitive(slots, "category");
    state->category =
        conv_category_from_code(cJSON_IsString(category) ? category->valuestring : NULL);
    location_from_json(cJSON_GetObjectItemCaseSensitive(slots, "location"), &state->location);
    const cJSON *phone_sealed = cJSON_GetObjectItemCaseSensitive(slots, "phone_sealed");
    if (cJSON_IsString(phone_sealed)) {
        if (conv_db_base64_decode(phone_sealed->valuestring, &sealed, &sealed_len) != ST_OK ||
            vault_open(config->keys, CONV_CONTEXT_DRAFT_PHONE, sealed, sealed_len, &phone,
                       &phone_len, err) != ST_OK ||
            phone_len >= sizeof(state->phone)) {
            status =
                st_fail(err, ST_INTERNAL, "a draft's phone does not open (another ESS_DATA_KEY?)");
            goto cleanup;
        }
        memcpy(state->phone, phone, phone_len + 1);
    }
    state->phone_failures = (int)int_item(slots, "phone_failures");
    state->phone_declined = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(slots, "phone_declined"));
    state->draft_touched_ts = int_item(slots, "touched");
    state->submitted_ts = int_item(slots, "submitted_ts");
cleanup:
    if (phone != NULL) {
        OPENSSL_cleanse(phone, phone_len);
        free(phone);
    }
    free(sealed);
    cJSON_Delete(slots);
    return status;
}

/* Columns: state, slots, language, last_event_ts, incident_id, case_number; the language's
 * source in column source_col. */
static st_code state_from_row(const conv_store_config *config, const db_result *row, int at,
                              int source_col, conv_state *ret_state, st_error *err)
{
    conv_state state;
    conv_state_init(&state);
    state.kind = conv_state_kind_from_name(db_result_value(row, at, 0));
    state.language = conv_lang_from_code(db_result_value(row, at, 2));
    state.language_source = conv_lang_source_from_name(db_result_value(row, at, source_col));
    const char *last = db_result_value(row, at, 3);
    state.last_event_ts = last != NULL ? strtoll(last, NULL, 10) : 0;
    const char *incident = db_result_value(row, at, 4);
    state.incident_id = incident != NULL ? strtoll(incident, NULL, 10) : 0;
    conv_copy_utf8(state.case_number, sizeof(state.case_number), db_result_value(row, at, 5));
    st_code status = slots_decode(config, db_result_value(row, at, 1), &state, err);
    if (status == ST_OK)
        *ret_state = state;
    OPENSSL_cleanse(&state, sizeof(state));
    return status;
}

static st_code save_state(db *d, const conv_store_config *config, const char *user_key_param,
                          const conv_state *state, const char *user_id_param, st_error *err)
{
    char *slots = NULL;
    st_code status = slots_encode(config, state, &slots, err);
    if (status != ST_OK)
        return status;
    char last[24], incident[24], touched[24], ttl[24];
    format_int(last, sizeof(last), state->last_event_ts);
    format_int(incident, sizeof(incident), state->incident_id);
    format_int(touched, sizeof(touched), state->draft_touched_ts);
    format_int(ttl, sizeof(ttl), config->draft_ttl_ms);
    const char *params[] = {user_key_param,
                            conv_state_kind_name(state->kind),
                            slots,
                            conv_lang_code(state->language),
                            state->last_event_ts > 0 ? last : NULL,
                            state->incident_id > 0 ? incident : NULL,
                            touched,
                            ttl,
                            user_id_param,
                            conv_lang_source_name(state->language_source)};
    status = db_exec(d,
                     "UPDATE conversations SET state = $2, slots = $3::jsonb, language = $4, "
                     "last_event_ts = $5::bigint, incident_id = $6::bigint, updated_at = now(), "
                     "expires_at = CASE WHEN $2 = 'draft' "
                     "  THEN to_timestamp(($7::bigint + $8::bigint) / 1000.0) END, "
                     "user_id_encrypted = COALESCE($9::bytea, user_id_encrypted), "
                     "language_source = $10 "
                     "WHERE user_key = $1::bytea",
                     10, params, NULL, err);
    free(slots);
    return status;
}

/* ---- incident and timeline --------------------------------------------------------------- */

typedef struct apply_run {
    db *d;
    const conv_store_config *config;
    const conv_event *event; /* NULL for the sweep */
    const char *user_id;
    unsigned char user_key[VAULT_HASH_BYTES];
    char *user_key_param;
    conv_output output;
    size_t outbox_added;
} apply_run;

static st_code add_outbox(apply_run *run, const char *subject, const char *msg_id, cJSON *json,
                          st_error *err)
{
    char *payload = cJSON_PrintUnformatted(json);
    if (payload == NULL)
        return st_fail(err, ST_NOMEM, "out of memory printing an event");
    bool added = false;
    st_code status = outbox_add(run->d, subject, msg_id, payload, strlen(payload), &added, err);
    if (status == ST_OK && added)
        run->outbox_added++;
    free(payload);
    return status;
}

/* Adds a timeline entry; *ret_seq = its id (0 when it already existed: a repeat). */
static st_code add_timeline(apply_run *run, int64_t incident_id, const char *kind,
                            const cJSON *detail, int64_t *ret_seq, char *ret_at, size_t at_size,
                            st_error *err)
{
    char incident[24], event_key[CONV_ID_MAX + 8], at_ms[24];
    format_int(incident, sizeof(incident), incident_id);
    snprintf(event_key, sizeof(event_key), "line.%s", run->event->webhook_event_id);
    format_int(at_ms, sizeof(at_ms), run->event->timestamp_ms);
    char *detail_text = cJSON_PrintUnformatted(detail);
    if (detail_text == NULL)
        return st_fail(err, ST_NOMEM, "out of memory printing a timeline entry");
    const char *params[] = {incident, event_key, kind, detail_text, at_ms};
    db_result *result = NULL;
    st_code status = db_exec(
        run->d,
        "INSERT INTO incident_events (incident_id, event_key, kind, actor_type, detail, at) "
        "VALUES ($1::bigint, $2, $3, 'reporter', $4::jsonb, "
        "        to_timestamp($5::bigint / 1000.0)) "
        "ON CONFLICT (incident_id, event_key) DO NOTHING "
        "RETURNING id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
        5, params, &result, err);
    free(detail_text);
    if (status == ST_OK) {
        *ret_seq =
            db_result_rows(result) == 1 ? strtoll(db_result_value(result, 0, 0), NULL, 10) : 0;
        if (ret_at != NULL && db_result_rows(result) == 1)
            snprintf(ret_at, at_size, "%s", db_result_value(result, 0, 1));
    }
    db_result_destroy(result);
    return status;
}

static st_code submit_incident(apply_run *run, st_error *err)
{
    conv_state *next = &run->output.next;
    const conv_store_config *config = run->config;
    char *phone_param = NULL, *reporter_param = NULL, *hash_param = NULL;
    db_result *result = NULL;
    cJSON *event = NULL, *detail = NULL;
    st_code status = ST_OK;
    if (next->phone[0] != '\0' &&
        (status = conv_db_seal_param(config->keys, CONV_CONTEXT_INCIDENT_PHONE, next->phone,
                                     &phone_param, err)) != ST_OK)
        goto cleanup;
    if ((status = conv_db_seal_param(config->keys, CONV_CONTEXT_REPORTER_ID, run->user_id,
                                     &reporter_param, err)) != ST_OK)
        goto cleanup;
    hash_param = conv_db_bytea_param(run->user_key, sizeof(run->user_key));
    if (hash_param == NULL) {
        status = st_fail(err, ST_NOMEM, "out of memory creating an incident");
        goto cleanup;
    }
    char lat[40], lon[40];
    format_double(lat, sizeof(lat), next->location.lat);
    format_double(lon, sizeof(lon), next->location.lon);
    const char *params[] = {conv_category_code(next->category),
                            lat,
                            lon,
                            next->location.title,
                            next->location.address,
                            phone_param,
                            hash_param,
                            reporter_param,
                            conv_lang_code(next->language)};
    status =
        db_exec(run->d,
                "WITH counter AS ("
                "  INSERT INTO case_counters (be_year, last_number) "
                "  VALUES (extract(year FROM now() AT TIME ZONE 'Asia/Bangkok')::int + 543, 1) "
                "  ON CONFLICT (be_year) DO UPDATE SET last_number = case_counters.last_number + 1 "
                "  RETURNING be_year, last_number) "
                "INSERT INTO incidents (case_number, category, lat, lon, location_title, "
                "  location_address, phone_encrypted, reporter_key_hash, reporter_id_encrypted, "
                "  language) "
                "SELECT 'ESS-' || be_year || '-' || CASE WHEN last_number < 1000000 "
                "         THEN lpad(last_number::text, 6, '0') ELSE last_number::text END, "
                "       $1, $2::float8, $3::float8, NULLIF($4, ''), NULLIF($5, ''), $6::bytea, "
                "       $7::bytea, $8::bytea, $9 FROM counter "
                "RETURNING id, case_number, "
                "  to_char(reported_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
                9, params, &result, err);
    if (status != ST_OK)
        goto cleanup;
    next->incident_id = strtoll(db_result_value(result, 0, 0), NULL, 10);
    conv_copy_utf8(next->case_number, sizeof(next->case_number), db_result_value(result, 0, 1));

    detail = cJSON_CreateObject();
    cJSON_AddStringToObject(detail, "category", conv_category_code(next->category));
    cJSON_AddBoolToObject(detail, "has_phone", next->phone[0] != '\0');
    cJSON_AddStringToObject(detail, "channel", "line");
    int64_t seq = 0;
    if ((status = add_timeline(run, next->incident_id, "reported", detail, &seq, NULL, 0, err)) !=
        ST_OK)
        goto cleanup;

    event = cJSON_CreateObject();
    cJSON_AddNumberToObject(event, "incident_id", (double)next->incident_id);
    cJSON_AddStringToObject(event, "case_number", next->case_number);
    cJSON_AddStringToObject(event, "category", conv_category_code(next->category));
    cJSON_AddItemToObject(event, "location", location_json(&next->location));
    cJSON_AddBoolToObject(event, "has_phone", next->phone[0] != '\0');
    cJSON_AddStringToObject(event, "language", conv_lang_code(next->language));
    cJSON_AddStringToObject(event, "reported_at", db_result_value(result, 0, 2));
    char msg_id[48];
    snprintf(msg_id, sizeof(msg_id), "reported.%" PRId64, next->incident_id);
    status = add_outbox(run, "ess.incident.reported", msg_id, event, err);
cleanup:
    cJSON_Delete(event);
    cJSON_Delete(detail);
    db_result_destroy(result);
    free(phone_param);
    free(reporter_param);
    free(hash_param);
    return status;
}

/* The case's number (for events about a case the state no longer holds). */
static st_code case_number_of(apply_run *run, int64_t incident_id, char *out, size_t size,
                              st_error *err)
{
    char incident[24];
    format_int(incident, sizeof(incident), incident_id);
    const char *params[] = {incident};
    db_result *result = NULL;
    st_code status = db_exec(run->d, "SELECT case_number FROM incidents WHERE id = $1::bigint", 1,
                             params, &result, err);
    if (status == ST_OK && db_result_rows(result) != 1)
        status = st_fail(err, ST_NOT_FOUND, "incident %" PRId64 " does not exist", incident_id);
    if (status == ST_OK)
        conv_copy_utf8(out, size, db_result_value(result, 0, 0));
    db_result_destroy(result);
    return status;
}

static const char *info_kind(const conv_event *event)
{
    switch (event->kind) {
    case CONV_EV_TEXT:
        return "text";
    case CONV_EV_LOCATION:
        return "location";
    case CONV_EV_STICKER:
        return "sticker";
    case CONV_EV_MEDIA:
        return strcmp(event->media_type, "image") == 0 ? "image" : NULL;
    default:
        return NULL;
    }
}

/* What the reporter added goes to the case's groups: the group that took it, or every group
 * notified so far while nobody has. Texts are the reporter's own words (the team needs them);
 * an image or a sticker is announced (its content stays with LINE and the console). */
static st_code forward_info(apply_run *run, int64_t incident_id, const char *case_number,
                            int64_t seq, st_error *err)
{
    const conv_event *source = run->event;
    conv_team_msg msg;
    switch (source->kind) {
    case CONV_EV_TEXT:
        msg = CONV_TEAM_MSG_INFO_TEXT;
        break;
    case CONV_EV_LOCATION:
        msg = CONV_TEAM_MSG_INFO_LOCATION;
        break;
    case CONV_EV_STICKER:
        msg = CONV_TEAM_MSG_INFO_STICKER;
        break;
    default:
        msg = CONV_TEAM_MSG_INFO_IMAGE;
        break;
    }
    size_t sent = 0;
    st_code status = conv_notify_info(run->d, run->config->keys, incident_id, case_number, seq,
                                      msg, source->text, &source->location, &sent, err);
    run->outbox_added += sent;
    return status;
}

static st_code append_info(apply_run *run, int64_t incident_id, st_error *err)
{
    const conv_event *source = run->event;
    cJSON *detail = cJSON_CreateObject(), *note = NULL;
    char *sealed = NULL;
    st_code status = ST_OK;
    switch (source->kind) {
    case CONV_EV_TEXT:
        cJSON_AddStringToObject(detail, "type", "text");
        /* What a reporter writes may name people or numbers: kept sealed. */
        if ((status = conv_db_seal_base64(run->config->keys, CONV_CONTEXT_INFO_TEXT, source->text,
                                          &sealed, err)) != ST_OK)
            goto cleanup;
        cJSON_AddStringToObject(detail, "text_sealed", sealed);
        break;
    case CONV_EV_LOCATION:
        cJSON_AddStringToObject(detail, "type", "location");
        cJSON_AddItemToObject(detail, "location", location_json(&source->location));
        break;
    case CONV_EV_STICKER:
        cJSON_AddStringToObject(detail, "type", "sticker");
        cJSON_AddStringToObject(detail, "package_id", source->sticker_package);
        cJSON_AddStringToObject(detail, "sticker_id", source->sticker_id);
        break;
    default:
        cJSON_AddStringToObject(detail, "type",
                                source->media_type[0] ? source->media_type : "media");
        cJSON_AddStringToObject(detail, "message_id", source->message_id);
        break;
    }
    int64_t seq = 0;
    char at[40] = "";
    if ((status = add_timeline(run, incident_id, "info_added", detail, &seq, at, sizeof(at),
                               err)) != ST_OK ||
        seq == 0)
        goto cleanup;
    char case_number[CONV_CASE_NUMBER_MAX];
    if ((status = case_number_of(run, incident_id, case_number, sizeof(case_number), err)) != ST_OK)
        goto cleanup;
    note = cJSON_CreateObject();
    cJSON_AddNumberToObject(note, "incident_id", (double)incident_id);
    cJSON_AddStringToObject(note, "case_number", case_number);
    cJSON_AddStringToObject(note, "at", at);
    cJSON_AddStringToObject(note, "actor", "reporter");
    if (info_kind(source) != NULL)
        cJSON_AddStringToObject(note, "kind", info_kind(source));
    char msg_id[64];
    snprintf(msg_id, sizeof(msg_id), "note.%" PRId64 ".%" PRId64, incident_id, seq);
    if ((status = add_outbox(run, "ess.incident.note", msg_id, note, err)) != ST_OK)
        goto cleanup;
    status = forward_info(run, incident_id, case_number, seq, err);
cleanup:
    free(sealed);
    cJSON_Delete(detail);
    cJSON_Delete(note);
    return status;
}

static st_code cancel_incident(apply_run *run, int64_t incident_id, st_error *err)
{
    char incident[24];
    format_int(incident, sizeof(incident), incident_id);
    const char *params[] = {incident};
    db_result *result = NULL;
    cJSON *detail = NULL, *status_event = NULL, *messages = NULL;
    st_code status = db_exec(run->d,
                             "UPDATE incidents SET status = 'cancelled', cancelled_at = now(), "
                             "ack_deadline = NULL, updated_at = now() "
                             "WHERE id = $1::bigint AND status NOT IN ('closed', 'cancelled') "
                             "RETURNING case_number",
                             1, params, &result, err);
    if (status != ST_OK || db_result_rows(result) != 1)
        goto cleanup; /* closed or cancelled already: nothing to record */
    detail = cJSON_CreateObject();
    cJSON_AddStringToObject(detail, "by", "reporter");
    int64_t seq = 0;
    char at[40] = "";
    if ((status = add_timeline(run, incident_id, "cancelled", detail, &seq, at, sizeof(at), err)) !=
            ST_OK ||
        seq == 0)
        goto cleanup;
    status_event = cJSON_CreateObject();
    cJSON_AddNumberToObject(status_event, "incident_id", (double)incident_id);
    cJSON_AddStringToObject(status_event, "case_number", db_result_value(result, 0, 0));
    cJSON_AddStringToObject(status_event, "at", at);
    cJSON_AddStringToObject(status_event, "actor", "reporter");
    cJSON_AddStringToObject(status_event, "status", "cancelled");
    char msg_id[64];
    snprintf(msg_id, sizeof(msg_id), "status.%" PRId64 ".%" PRId64, incident_id, seq);
    if ((status = add_outbox(run, "ess.incident.status", msg_id, status_event, err)) != ST_OK)
        goto cleanup;
    /* The groups that have the card stop; escalation stopped with ack_deadline. */
    conv_team_params notice = {.case_number = db_result_value(result, 0, 0),
                               .incident_id = incident_id};
    cJSON *message = NULL;
    if ((status = conv_team_render(CONV_TEAM_MSG_CANCELLED, &notice, &message)) != ST_OK) {
        st_fail(err, status, "cannot render the cancellation for the groups");
        goto cleanup;
    }
    messages = conv_notify_one(message);
    char key[48];
    snprintf(key, sizeof(key), "cancelled.%" PRId64, incident_id);
    size_t sent = 0;
    status = messages != NULL
                 ? conv_notify_groups(run->d, run->config->keys, incident_id, CONV_NOTIFY_NOTIFIED,
                                      0, NULL, messages, key, &sent, err)
                 : st_fail(err, ST_NOMEM, "out of memory");
    run->outbox_added += sent;
cleanup:
    cJSON_Delete(messages);
    cJSON_Delete(detail);
    cJSON_Delete(status_event);
    db_result_destroy(result);
    return status;
}

static st_code note_unfollow(apply_run *run, int64_t incident_id, st_error *err)
{
    cJSON *detail = cJSON_CreateObject();
    cJSON_AddStringToObject(detail, "reason", "the reporter blocked the LINE account");
    int64_t seq = 0;
    st_code status =
        add_timeline(run, incident_id, "reporter_unfollowed", detail, &seq, NULL, 0, err);
    cJSON_Delete(detail);
    return status;
}

static st_code run_actions(apply_run *run, st_error *err)
{
    st_code status = ST_OK;
    for (size_t i = 0; i < run->output.action_count && status == ST_OK; i++) {
        const conv_action *action = &run->output.actions[i];
        switch (action->kind) {
        case CONV_ACT_SUBMIT:
            status = submit_incident(run, err);
            break;
        case CONV_ACT_APPEND_INFO:
            status = append_info(run, action->incident_id, err);
            break;
        case CONV_ACT_CANCEL_INCIDENT:
            status = cancel_incident(run, action->incident_id, err);
            break;
        case CONV_ACT_REPORTER_UNFOLLOWED:
            status = note_unfollow(run, action->incident_id, err);
            break;
        }
    }
    return status;
}

/* The answer, as a command on the outbox. */
static st_code send_response(apply_run *run, const char *key, const char *reply_token,
                             st_error *err)
{
    if (run->output.response_count == 0)
        return ST_OK;
    conv_command command = {0};
    st_code status = conv_reply_build(&run->output, run->output.next.language, key, run->user_id,
                                      reply_token, &command, err);
    if (status != ST_OK)
        return status;
    bool added = false;
    /* The command names the user: sealed at rest, opened by the relay. */
    status = outbox_add_sealed(run->d, run->config->keys, command.subject, command.command_id,
                               command.payload, command.payload_len, &added, err);
    if (status == ST_OK && added)
        run->outbox_added++;
    conv_command_done(&command);
    return status;
}

/* ---- one event ------------------------------------------------------------------------- */

static st_code reports_last_hour(apply_run *run, int *ret_count, st_error *err)
{
    const char *params[] = {run->user_key_param};
    db_result *result = NULL;
    st_code status = db_exec(run->d,
                             "SELECT count(*) FROM incidents WHERE reporter_key_hash = $1::bytea "
                             "AND reported_at > now() - interval '1 hour'",
                             1, params, &result, err);
    if (status == ST_OK)
        *ret_count = (int)strtol(db_result_value(result, 0, 0), NULL, 10);
    db_result_destroy(result);
    return status;
}

st_code conv_store_apply(db *d, const conv_store_config *config, const conv_event *event,
                         int64_t now_ms, conv_apply_result *ret_result, st_error *err)
{
    if (event == NULL || event->user_id[0] == '\0' || event->source != CONV_SOURCE_USER)
        return st_fail(err, ST_INVALID, "a conversation event needs a user source");
    apply_run run = {.d = d, .config = config, .event = event, .user_id = event->user_id};
    conv_apply_result result = {0};
    conv_state current;
    db_result *row = NULL;
    char *user_id_param = NULL;
    st_code status;
    bool first = false;

    if ((status = outbox_mark_processed(d, CONV_CONSUMER_NAME, event->webhook_event_id, &first,
                                        err)) != ST_OK)
        goto cleanup;
    if (!first) {
        result.duplicate = true;
        goto done;
    }
    vault_lookup_hash(config->keys, CONV_USER_HASH_PURPOSE, event->user_id, run.user_key);
    run.user_key_param = conv_db_bytea_param(run.user_key, sizeof(run.user_key));
    if (run.user_key_param == NULL) {
        status = st_fail(err, ST_NOMEM, "out of memory");
        goto cleanup;
    }
    const char *key_params[] = {run.user_key_param};
    if ((status = db_exec(d,
                          "INSERT INTO conversations (user_key, state) VALUES ($1::bytea, 'idle') "
                          "ON CONFLICT (user_key) DO NOTHING",
                          1, key_params, NULL, err)) != ST_OK)
        goto cleanup;
    if ((status = db_exec(d,
                          "SELECT c.state, c.slots::text, c.language, c.last_event_ts, "
                          "       c.incident_id, i.case_number, c.user_id_encrypted IS NULL, "
                          "       c.language_source "
                          "FROM conversations c LEFT JOIN incidents i ON i.id = c.incident_id "
                          "WHERE c.user_key = $1::bytea FOR UPDATE OF c",
                          1, key_params, &row, err)) != ST_OK)
        goto cleanup;
    if (db_result_rows(row) != 1) {
        status = st_fail(err, ST_INTERNAL, "conversation row vanished");
        goto cleanup;
    }
    if ((status = state_from_row(config, row, 0, 7, &current, err)) != ST_OK)
        goto cleanup;
    bool needs_user_id = strcmp(db_result_value(row, 0, 6), "t") == 0;

    conv_context context = {.now_ms = now_ms,
                            .draft_ttl_ms = config->draft_ttl_ms,
                            .reports_per_hour = config->reports_per_hour};
    if ((status = reports_last_hour(&run, &context.reports_last_hour, err)) != ST_OK)
        goto cleanup;
    conv_machine_apply(&current, event, &context, &run.output);
    result.late = run.output.late;
    result.changed = run.output.changed;
    if (!run.output.changed)
        goto done;

    if ((status = run_actions(&run, err)) != ST_OK)
        goto cleanup;
    for (size_t i = 0; i < run.output.action_count; i++)
        if (run.output.actions[i].kind == CONV_ACT_SUBMIT)
            result.incident_id = run.output.next.incident_id;
    const char *token = conv_reply_token_fresh(event, now_ms, config->reply_token_max_age_ms)
                            ? event->reply_token
                            : NULL;
    if ((status = send_response(&run, event->webhook_event_id, token, err)) != ST_OK)
        goto cleanup;
    /* Follow or first contact: ask LINE (through ess-notifier) for the profile's language.
     * The answer comes back as an ess.profile event carrying this event's time. */
    if ((event->kind == CONV_EV_FOLLOW || needs_user_id) && !event->standby && !run.output.late &&
        event->kind != CONV_EV_PROFILE) {
        char command_id[CONV_ID_MAX + 16];
        snprintf(command_id, sizeof(command_id), "profile.%s", event->webhook_event_id);
        bool added = false;
        if (strlen(event->webhook_event_id) + 8 <= CONV_PROFILE_COMMAND_ID_MAX &&
            (status = conv_notify_profile_request(d, config->keys, command_id, event->user_id, NULL,
                                                  event->timestamp_ms, "language", &added, err)) !=
                ST_OK)
            goto cleanup;
        run.outbox_added += added;
    }
    if (needs_user_id &&
        (status = conv_db_seal_param(config->keys, CONV_CONTEXT_REPORTER_ID, event->user_id,
                                     &user_id_param, err)) != ST_OK)
        goto cleanup;
    if ((status = save_state(d, config, run.user_key_param, &run.output.next, user_id_param,
                             err)) != ST_OK)
        goto cleanup;
done:
    result.state = run.output.next.kind;
    result.outbox_added = run.outbox_added;
    *ret_result = result;
    status = ST_OK;
cleanup:
    OPENSSL_cleanse(&current, sizeof(current));
    OPENSSL_cleanse(&run.output, sizeof(run.output));
    db_result_destroy(row);
    free(run.user_key_param);
    free(user_id_param);
    return status;
}

/* ---- the expiry sweep -------------------------------------------------------------------- */

st_code conv_store_expire_due(db *d, const conv_store_config *config, int limit,
                              size_t *ret_expired, st_error *err)
{
    char limit_text[16];
    snprintf(limit_text, sizeof(limit_text), "%d", limit > 0 ? limit : 50);
    const char *params[] = {limit_text};
    db_result *rows = NULL;
    size_t expired = 0;
    st_code status =
        db_exec(d,
                "SELECT c.state, c.slots::text, c.language, c.last_event_ts, c.incident_id, NULL, "
                "       c.user_key, c.user_id_encrypted, "
                "       (extract(epoch FROM now()) * 1000)::bigint, c.language_source "
                "FROM conversations c WHERE c.state = 'draft' AND c.expires_at <= now() "
                "ORDER BY c.expires_at LIMIT $1::int FOR UPDATE SKIP LOCKED",
                1, params, &rows, err);
    for (int i = 0; status == ST_OK && i < db_result_rows(rows); i++) {
        apply_run run = {.d = d, .config = config};
        conv_state current;
        unsigned char *key_bytes = NULL, *sealed = NULL;
        size_t key_len = 0, sealed_len = 0, user_len = 0;
        char *user_id = NULL;
        if ((status = state_from_row(config, rows, i, 9, &current, err)) != ST_OK)
            break;
        conv_context context = {.now_ms = strtoll(db_result_value(rows, i, 8), NULL, 10),
                                .draft_ttl_ms = config->draft_ttl_ms,
                                .reports_per_hour = config->reports_per_hour};
        conv_event expire = {.kind = CONV_EV_EXPIRE, .timestamp_ms = context.now_ms};
        conv_machine_apply(&current, &expire, &context, &run.output);
        if (!run.output.changed) {
            /* Touched after the row's expires_at was written (clock skew): put it right. */
            run.output.next.draft_touched_ts = current.draft_touched_ts;
        }
        run.user_key_param = (char *)db_result_value(rows, i, 6);
        if (conv_db_bytea_decode(db_result_value(rows, i, 6), &key_bytes, &key_len) != ST_OK ||
            key_len != VAULT_HASH_BYTES) {
            status = st_fail(err, ST_INTERNAL, "conversation key is not 32 bytes");
        } else if (run.output.changed && !db_result_is_null(rows, i, 7) &&
                   conv_db_bytea_decode(db_result_value(rows, i, 7), &sealed, &sealed_len) ==
                       ST_OK &&
                   vault_open(config->keys, CONV_CONTEXT_REPORTER_ID, sealed, sealed_len, &user_id,
                              &user_len, err) == ST_OK) {
            char key_hex[2 * VAULT_HASH_BYTES + 1], key[96];
            vault_hex(key_bytes, 12, key_hex);
            snprintf(key, sizeof(key), "expire.%s.%" PRId64, key_hex, current.draft_touched_ts);
            run.user_id = user_id;
            status = send_response(&run, key, NULL, err);
        }
        if (status == ST_OK)
            status = save_state(d, config, run.user_key_param, &run.output.next, NULL, err);
        if (status == ST_OK && run.output.changed)
            expired++;
        OPENSSL_cleanse(&current, sizeof(current));
        OPENSSL_cleanse(&run.output, sizeof(run.output));
        conv_db_wipe_free(user_id);
        free(sealed);
        free(key_bytes);
    }
    db_result_destroy(rows);
    if (status == ST_OK && ret_expired != NULL)
        *ret_expired = expired;
    return status;
}
