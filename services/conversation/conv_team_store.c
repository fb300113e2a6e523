#include "conv_team_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "conv_db.h"
#include "conv_invite.h"
#include "conv_notify.h"
#include "conv_reply.h"
#include "conv_team.h"
#include "outbox.h"

#define ACTOR_UNITS 100 /* ess.incident.* "actor": maxLength 100 */

typedef struct team_run {
    db *d;
    const conv_store_config *config;
    const conv_event *event;
    int64_t now_ms;
    conv_team_result result;
    /* the group's row */
    char team_id[24]; /* "" when not bound */
    char team_name[256];
    bool team_active;
    char event_time[24]; /* the event's LINE time, ms, as text */
} team_run;

/* ---- answers ------------------------------------------------------------------------------ */

/* Answers the event in its group: a reply while the token is fresh (the group as fallback),
 * else a push; never silent (officers must notice). Takes ownership of messages. */
static st_code answer(team_run *run, cJSON *messages, st_error *err)
{
    if (messages == NULL)
        return st_fail(err, ST_NOMEM, "out of memory building an answer");
    const conv_event *event = run->event;
    bool reply = conv_reply_token_fresh(event, run->now_ms, run->config->reply_token_max_age_ms);
    char command_id[CONV_COMMAND_ID_MAX];
    snprintf(command_id, sizeof(command_id), "%s.%s", reply ? "reply" : "push",
             event->webhook_event_id);
    cJSON *command = cJSON_CreateObject();
    if (command == NULL) {
        cJSON_Delete(messages);
        return st_fail(err, ST_NOMEM, "out of memory building an answer");
    }
    cJSON_AddStringToObject(command, "command_id", command_id);
    if (reply) {
        cJSON_AddStringToObject(command, "reply_token", event->reply_token);
        cJSON_AddStringToObject(command, "fallback_to", event->group_id);
    } else {
        cJSON_AddStringToObject(command, "to", event->group_id);
    }
    cJSON_AddItemToObject(command, "messages", messages);
    bool added = false;
    st_code status = conv_db_add_command(run->d, run->config->keys,
                                         reply ? CONV_SUBJECT_REPLY : CONV_SUBJECT_PUSH, command_id,
                                         command, &added, err);
    run->result.outbox_added += added;
    cJSON_Delete(command);
    return status;
}

static st_code answer_msg(team_run *run, conv_team_msg msg, const conv_team_params *params,
                          st_error *err)
{
    cJSON *message = NULL;
    st_code status = conv_team_render(msg, params, &message);
    if (status != ST_OK)
        return st_fail(err, status, "cannot render the group message '%s'",
                       conv_team_msg_name(msg));
    return answer(run, conv_notify_one(message), err);
}

/* ---- membership and enrolment ------------------------------------------------------------ */

static st_code group_exec(team_run *run, const char *sql, st_error *err)
{
    char count[16];
    snprintf(count, sizeof(count), "%d", run->event->member_count);
    const char *params[] = {run->event->group_id, count};
    return db_exec(run->d, sql, 2, params, NULL, err);
}

static st_code on_join(team_run *run, st_error *err)
{
    st_code status = group_exec(run,
                                "UPDATE team_groups SET active = true, left_at = NULL, "
                                "joined_at = now(), updated_at = now() WHERE group_id = $1 "
                                "AND $2::int >= 0",
                                err);
    if (status != ST_OK)
        return status;
    conv_team_params params = {.team = run->team_name};
    bool bound = run->team_id[0] != '\0' && run->team_active;
    return answer_msg(run, bound ? CONV_TEAM_MSG_REJOINED : CONV_TEAM_MSG_INTRO, &params, err);
}

static st_code on_bind(team_run *run, const conv_team_intent *intent, st_error *err)
{
    conv_team_params params = {0};
    if (!intent->code_valid)
        return answer_msg(run, CONV_TEAM_MSG_BIND_FAILED, &params, err);
    unsigned char hash[CONV_INVITE_HASH_BYTES];
    conv_invite_hash(intent->code, hash);
    char *hash_param = conv_db_bytea_param(hash, sizeof(hash));
    if (hash_param == NULL)
        return st_fail(err, ST_NOMEM, "out of memory");
    db_result *invite = NULL;
    const char *lookup[] = {hash_param};
    st_code status = db_exec(run->d,
                             "SELECT i.id, i.team_id, t.name FROM team_invites i "
                             "JOIN teams t ON t.id = i.team_id "
                             "WHERE i.code_hash = $1::bytea AND i.used_at IS NULL "
                             "AND i.expires_at > now() AND t.active FOR UPDATE OF i",
                             1, lookup, &invite, err);
    if (status != ST_OK)
        goto cleanup;
    if (db_result_rows(invite) != 1) {
        status = answer_msg(run, CONV_TEAM_MSG_BIND_FAILED, &params, err);
        goto cleanup;
    }
    const char *bind[] = {db_result_value(invite, 0, 0), db_result_value(invite, 0, 1),
                          run->event->group_id};
    if ((status = db_exec(run->d,
                          "UPDATE team_invites SET used_at = now(), used_by_group = $3 "
                          "WHERE id = $1::bigint AND $2::bigint > 0",
                          3, bind, NULL, err)) != ST_OK ||
        (status = db_exec(run->d,
                          "UPDATE team_groups SET team_id = $2::bigint, bound_at = now(), "
                          "active = true, left_at = NULL, updated_at = now() "
                          "WHERE group_id = $3 AND $1::bigint > 0",
                          3, bind, NULL, err)) != ST_OK)
        goto cleanup;
    run->result.team_id = conv_db_int_value(invite, 0, 1);
    params.team = db_result_value(invite, 0, 2);
    status = answer_msg(run, CONV_TEAM_MSG_BOUND, &params, err);
cleanup:
    db_result_destroy(invite);
    free(hash_param);
    return status;
}

/* ---- cases --------------------------------------------------------------------------------- */

typedef struct case_row {
    int64_t incident_id;
    char status[16];
    char case_number[64];
    char taker_group[72];
    char taker_actor[512];
    char taker_team[256];
    char taken_time[16];
    int group_level;    /* this group's level among the targets, -1 = not a target */
    bool targets_known; /* the routed event was recorded */
} case_row;

/* Locks and reads the incident (after the reporter's conversation for an outcome). */
static st_code load_case(team_run *run, int64_t incident_id, bool lock_conversation,
                         case_row *ret_row, st_error *err)
{
    char incident[24];
    conv_db_int_text(incident, sizeof(incident), incident_id);
    const char *params[] = {incident, run->event->group_id};
    db_result *r = NULL;
    st_code status = ST_OK;
    if (lock_conversation &&
        (status = db_exec(run->d,
                          "SELECT 1 FROM conversations c JOIN incidents i "
                          "ON c.user_key = i.reporter_key_hash WHERE i.id = $1::bigint "
                          "AND $2::text IS NOT NULL FOR UPDATE OF c",
                          2, params, NULL, err)) != ST_OK)
        return status;
    /* The lock first, then the facts in a statement of their own: a statement that waited
     * for the lock re-reads the locked row but not what its subqueries saw (READ COMMITTED),
     * so targets recorded by the transaction it waited for would be missed. */
    if ((status = db_exec(run->d, "SELECT 1 FROM incidents WHERE id = $1::bigint FOR UPDATE", 1,
                          params, &r, err)) != ST_OK)
        goto cleanup;
    if (db_result_rows(r) != 1) {
        status = ST_NOT_FOUND;
        goto cleanup;
    }
    db_result_destroy(r);
    r = NULL;
    status = db_exec(
        run->d,
        "SELECT i.status, i.case_number, coalesce(i.acknowledged_group_id, ''), "
        "       coalesce(i.acknowledged_by, ''), "
        "       coalesce(to_char(i.acknowledged_at AT TIME ZONE 'Asia/Bangkok', 'HH24:MI'), ''), "
        "       coalesce((SELECT t.name FROM team_groups g JOIN teams t ON t.id = g.team_id "
        "                 WHERE g.group_id = i.acknowledged_group_id), ''), "
        "       (SELECT level FROM incident_targets WHERE incident_id = i.id "
        "          AND group_id = $2), "
        "       i.targets_recorded_at IS NOT NULL "
        "FROM incidents i WHERE i.id = $1::bigint",
        2, params, &r, err);
    if (status != ST_OK)
        goto cleanup;
    if (db_result_rows(r) != 1) {
        status = ST_NOT_FOUND;
        goto cleanup;
    }
    case_row row = {.incident_id = incident_id};
    snprintf(row.status, sizeof(row.status), "%s", db_result_value(r, 0, 0));
    snprintf(row.case_number, sizeof(row.case_number), "%s", db_result_value(r, 0, 1));
    snprintf(row.taker_group, sizeof(row.taker_group), "%s", db_result_value(r, 0, 2));
    snprintf(row.taker_actor, sizeof(row.taker_actor), "%s", db_result_value(r, 0, 3));
    snprintf(row.taken_time, sizeof(row.taken_time), "%s", db_result_value(r, 0, 4));
    snprintf(row.taker_team, sizeof(row.taker_team), "%s", db_result_value(r, 0, 5));
    row.group_level = db_result_is_null(r, 0, 6) ? -1 : (int)conv_db_int_value(r, 0, 6);
    row.targets_known = strcmp(db_result_value(r, 0, 7), "t") == 0;
    *ret_row = row;
cleanup:
    db_result_destroy(r);
    return status;
}

/* Adds the timeline entry of a responder action; *ret_seq its id (0 when it existed). */
static st_code add_timeline(team_run *run, const case_row *row, const char *kind, const char *actor,
                            const cJSON *detail, int64_t *ret_seq, char *ret_at, size_t at_size,
                            st_error *err)
{
    char incident[24], event_key[CONV_ID_MAX + 8];
    conv_db_int_text(incident, sizeof(incident), row->incident_id);
    snprintf(event_key, sizeof(event_key), "line.%s", run->event->webhook_event_id);
    char *detail_text = cJSON_PrintUnformatted(detail);
    if (detail_text == NULL)
        return st_fail(err, ST_NOMEM, "out of memory printing a timeline entry");
    const char *params[] = {incident,    event_key,      kind, actor, run->event->group_id,
                            detail_text, run->event_time};
    db_result *r = NULL;
    st_code status = db_exec(
        run->d,
        "INSERT INTO incident_events (incident_id, event_key, kind, actor_type, actor, group_id, "
        "  detail, at) VALUES ($1::bigint, $2, $3, 'responder', $4, $5, $6::jsonb, "
        "  to_timestamp($7::bigint / 1000.0)) "
        "ON CONFLICT (incident_id, event_key) DO NOTHING "
        "RETURNING id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
        7, params, &r, err);
    free(detail_text);
    if (status == ST_OK) {
        *ret_seq = db_result_rows(r) == 1 ? conv_db_int_value(r, 0, 0) : 0;
        if (db_result_rows(r) == 1)
            snprintf(ret_at, at_size, "%s", db_result_value(r, 0, 1));
    }
    db_result_destroy(r);
    return status;
}

/* The domain event of a step: {incident_id, case_number, at, group_id, actor, status, ...}. */
static st_code add_case_event(team_run *run, const case_row *row, const char *subject,
                              const char *prefix, int64_t seq, const char *at, const char *actor,
                              const char *status_name, conv_outcome outcome, st_error *err)
{
    cJSON *event = cJSON_CreateObject();
    if (event == NULL)
        return st_fail(err, ST_NOMEM, "out of memory building an event");
    cJSON_AddNumberToObject(event, "incident_id", (double)row->incident_id);
    cJSON_AddStringToObject(event, "case_number", row->case_number);
    cJSON_AddStringToObject(event, "at", at);
    cJSON_AddStringToObject(event, "group_id", run->event->group_id);
    cJSON_AddStringToObject(event, "actor", actor);
    cJSON_AddStringToObject(event, "status", status_name);
    if (row->group_level >= 0)
        cJSON_AddNumberToObject(event, "level", row->group_level);
    if (outcome != CONV_OUTCOME_NONE)
        cJSON_AddStringToObject(event, "outcome", conv_outcome_code(outcome));
    char msg_id[64];
    snprintf(msg_id, sizeof(msg_id), "%s.%" PRId64 ".%" PRId64, prefix, row->incident_id, seq);
    bool added = false;
    st_code status = conv_db_add_event(run->d, subject, msg_id, event, &added, err);
    run->result.outbox_added += added;
    cJSON_Delete(event);
    return status;
}

/* Asks for the display name of the member who pressed (when LINE named one): the answer
 * replaces the actor of timeline entry seq. */
static st_code ask_member_name(team_run *run, int64_t seq, st_error *err)
{
    const conv_event *event = run->event;
    if (event->user_id[0] == '\0' || seq <= 0 ||
        strlen(event->webhook_event_id) + 8 > CONV_PROFILE_COMMAND_ID_MAX)
        return ST_OK;
    char command_id[CONV_ID_MAX + 16], context[40];
    snprintf(command_id, sizeof(command_id), "profile.%s", event->webhook_event_id);
    snprintf(context, sizeof(context), "tl.%" PRId64, seq);
    bool added = false;
    st_code status =
        conv_notify_profile_request(run->d, run->config->keys, command_id, event->user_id,
                                    event->group_id, event->timestamp_ms, context, &added, err);
    run->result.outbox_added += added;
    return status;
}

static st_code tell_reporter(team_run *run, const case_row *row, conv_msg msg, const char *step,
                             st_error *err)
{
    char key[64];
    snprintf(key, sizeof(key), "status.%s.%" PRId64, step, row->incident_id);
    bool added = false;
    st_code status =
        conv_notify_reporter(run->d, run->config->keys, row->incident_id, msg, key, &added, err);
    run->result.outbox_added += added;
    return status;
}

static st_code take(team_run *run, const case_row *row, st_error *err)
{
    char actor[512];
    conv_team_member_of(run->team_id[0] != '\0' ? run->team_name : "", actor, sizeof(actor));
    char incident[24];
    conv_db_int_text(incident, sizeof(incident), row->incident_id);
    const char *params[] = {incident, actor, run->event->group_id, run->event_time};
    cJSON *detail = NULL, *messages = NULL;
    st_code status = db_exec(run->d,
                             "UPDATE incidents SET status = 'acknowledged', "
                             "acknowledged_at = to_timestamp($4::bigint / 1000.0), "
                             "acknowledged_by = $2, acknowledged_group_id = $3, "
                             "ack_deadline = NULL, updated_at = now() WHERE id = $1::bigint",
                             4, params, NULL, err);
    if (status != ST_OK)
        return status;
    detail = cJSON_CreateObject();
    cJSON_AddNumberToObject(detail, "level", row->group_level);
    cJSON_AddStringToObject(detail, "team", run->team_name);
    cJSON_AddBoolToObject(detail, "member_named_by_line", run->event->user_id[0] != '\0');
    int64_t seq = 0;
    char at[40] = "";
    if ((status = add_timeline(run, row, "acknowledged", actor, detail, &seq, at, sizeof(at),
                               err)) != ST_OK ||
        seq == 0)
        goto cleanup;
    run->result.changed_case = true;
    if ((status = add_case_event(run, row, "ess.incident.acknowledged", "acknowledged", seq, at,
                                 actor, "acknowledged", CONV_OUTCOME_NONE, err)) != ST_OK)
        goto cleanup;
    conv_team_params confirm = {.case_number = row->case_number, .incident_id = row->incident_id};
    if ((status = answer_msg(run, CONV_TEAM_MSG_TAKEN_CONFIRM, &confirm, err)) != ST_OK)
        goto cleanup;
    /* The other groups that have the card stand down. */
    conv_team_params elsewhere = {.case_number = row->case_number,
                                  .incident_id = row->incident_id,
                                  .team = run->team_name[0] != '\0' ? run->team_name : actor};
    cJSON *message = NULL;
    if ((status = conv_team_render(CONV_TEAM_MSG_TAKEN_ELSEWHERE, &elsewhere, &message)) != ST_OK) {
        st_fail(err, status, "cannot render the notice to the other groups");
        goto cleanup;
    }
    messages = conv_notify_one(message);
    char key[48];
    snprintf(key, sizeof(key), "taken.%" PRId64, row->incident_id);
    size_t sent = 0;
    if ((status =
             conv_notify_groups(run->d, run->config->keys, row->incident_id, CONV_NOTIFY_NOTIFIED,
                                0, run->event->group_id, messages, key, &sent, err)) != ST_OK)
        goto cleanup;
    run->result.outbox_added += sent;
    if ((status = tell_reporter(run, row, CONV_MSG_CASE_TAKEN, "taken", err)) != ST_OK)
        goto cleanup;
    status = ask_member_name(run, seq, err);
cleanup:
    cJSON_Delete(messages);
    cJSON_Delete(detail);
    return status;
}

static st_code on_scene(team_run *run, const case_row *row, st_error *err)
{
    char incident[24];
    conv_db_int_text(incident, sizeof(incident), row->incident_id);
    const char *params[] = {incident, run->event_time};
    char actor[512];
    conv_team_member_of(run->team_name, actor, sizeof(actor));
    st_code status = db_exec(run->d,
                             "UPDATE incidents SET status = 'on_scene', "
                             "on_scene_at = to_timestamp($2::bigint / 1000.0), "
                             "updated_at = now() WHERE id = $1::bigint",
                             2, params, NULL, err);
    if (status != ST_OK)
        return status;
    cJSON *detail = cJSON_CreateObject();
    int64_t seq = 0;
    char at[40] = "";
    if ((status = add_timeline(run, row, "on_scene", actor, detail, &seq, at, sizeof(at), err)) !=
            ST_OK ||
        seq == 0)
        goto cleanup;
    run->result.changed_case = true;
    conv_team_params confirm = {.case_number = row->case_number, .incident_id = row->incident_id};
    if ((status = add_case_event(run, row, "ess.incident.status", "status", seq, at, actor,
                                 "on_scene", CONV_OUTCOME_NONE, err)) != ST_OK ||
        (status = answer_msg(run, CONV_TEAM_MSG_ON_SCENE_CONFIRM, &confirm, err)) != ST_OK ||
        (status = tell_reporter(run, row, CONV_MSG_CASE_ON_SCENE, "scene", err)) != ST_OK)
        goto cleanup;
    status = ask_member_name(run, seq, err);
cleanup:
    cJSON_Delete(detail);
    return status;
}

static st_code close_case(team_run *run, const case_row *row, conv_outcome outcome, st_error *err)
{
    char incident[24];
    conv_db_int_text(incident, sizeof(incident), row->incident_id);
    const char *params[] = {incident, run->event_time, conv_outcome_code(outcome)};
    char actor[512];
    conv_team_member_of(run->team_name, actor, sizeof(actor));
    st_code status = db_exec(run->d,
                             "UPDATE incidents SET status = 'closed', "
                             "closed_at = to_timestamp($2::bigint / 1000.0), outcome = $3, "
                             "ack_deadline = NULL, updated_at = now() WHERE id = $1::bigint",
                             3, params, NULL, err);
    if (status != ST_OK)
        return status;
    cJSON *detail = cJSON_CreateObject();
    cJSON_AddStringToObject(detail, "outcome", conv_outcome_code(outcome));
    int64_t seq = 0;
    char at[40] = "";
    if ((status = add_timeline(run, row, "closed", actor, detail, &seq, at, sizeof(at), err)) !=
            ST_OK ||
        seq == 0)
        goto cleanup;
    run->result.changed_case = true;
    conv_team_params confirm = {
        .case_number = row->case_number, .incident_id = row->incident_id, .outcome = outcome};
    if ((status = add_case_event(run, row, "ess.incident.closed", "closed", seq, at, actor,
                                 "closed", outcome, err)) != ST_OK ||
        (status = answer_msg(run, CONV_TEAM_MSG_CLOSED_CONFIRM, &confirm, err)) != ST_OK ||
        (status = tell_reporter(run, row, CONV_MSG_CASE_CLOSED, "closed", err)) != ST_OK)
        goto cleanup;
    /* The reporter's conversation leaves the case: their next message starts afresh. */
    if ((status = db_exec(run->d,
                          "UPDATE conversations c SET state = 'idle', slots = '{}'::jsonb, "
                          "incident_id = NULL, expires_at = NULL, updated_at = now() "
                          "FROM incidents i WHERE i.id = $1::bigint "
                          "AND c.user_key = i.reporter_key_hash AND c.state = 'submitted' "
                          "AND c.incident_id = i.id AND $2::bigint > 0",
                          2, params, NULL, err)) != ST_OK)
        goto cleanup;
    status = ask_member_name(run, seq, err);
cleanup:
    cJSON_Delete(detail);
    return status;
}

static st_code on_case(team_run *run, const conv_team_intent *intent, st_error *err)
{
    case_row row;
    run->result.incident_id = intent->incident_id;
    st_code status =
        load_case(run, intent->incident_id, intent->action == CONV_TEAM_OUTCOME, &row, err);
    if (status == ST_NOT_FOUND)
        return ST_OK; /* not a case of ours: a button of another system, say nothing */
    if (status != ST_OK)
        return status;
    bool open = strcmp(row.status, "new") == 0 || strcmp(row.status, "routed") == 0;
    if (!row.targets_known && open)
        return st_fail(err, ST_UNAVAILABLE,
                       "the case's targets are not recorded yet: the press waits for them");
    conv_team_params params = {.case_number = row.case_number,
                               .incident_id = row.incident_id,
                               .actor = row.taker_actor,
                               .team = row.taker_team[0] != '\0' ? row.taker_team : row.taker_actor,
                               .time = row.taken_time};
    if (row.group_level < 0)
        return answer_msg(run, CONV_TEAM_MSG_NOT_FOR_GROUP, &params, err);
    bool taker = strcmp(row.taker_group, run->event->group_id) == 0;
    bool taken = strcmp(row.status, "acknowledged") == 0 || strcmp(row.status, "on_scene") == 0;
    if (strcmp(row.status, "cancelled") == 0)
        return answer_msg(run, CONV_TEAM_MSG_CANCELLED, &params, err);
    if (strcmp(row.status, "closed") == 0)
        return answer_msg(run, CONV_TEAM_MSG_ALREADY_CLOSED, &params, err);
    switch (intent->action) {
    case CONV_TEAM_TAKE:
        return open ? take(run, &row, err)
                    : answer_msg(run, CONV_TEAM_MSG_ALREADY_TAKEN, &params, err);
    case CONV_TEAM_SCENE:
        if (open)
            return answer_msg(run, CONV_TEAM_MSG_NOT_TAKEN_YET, &params, err);
        if (!taker)
            return answer_msg(run, CONV_TEAM_MSG_HANDLED_BY, &params, err);
        return strcmp(row.status, "on_scene") == 0
                   ? answer_msg(run, CONV_TEAM_MSG_ALREADY_ON_SCENE, &params, err)
                   : on_scene(run, &row, err);
    case CONV_TEAM_CLOSE:
    case CONV_TEAM_OUTCOME:
        if (open)
            return answer_msg(run, CONV_TEAM_MSG_NOT_TAKEN_YET, &params, err);
        if (!taker || !taken)
            return answer_msg(run, CONV_TEAM_MSG_HANDLED_BY, &params, err);
        return intent->action == CONV_TEAM_CLOSE
                   ? answer_msg(run, CONV_TEAM_MSG_OUTCOME_CHOICE, &params, err)
                   : close_case(run, &row, intent->outcome, err);
    default:
        return ST_OK;
    }
}

/* ---- the member's name ------------------------------------------------------------------- */

static st_code on_member_profile(team_run *run, st_error *err)
{
    const conv_event *event = run->event;
    const char *context = event->profile_context;
    if (strncmp(context, "tl.", 3) != 0 || !event->profile_found ||
        event->profile_display_name[0] == '\0')
        return ST_OK;
    char *end = NULL;
    long long seq = strtoll(context + 3, &end, 10);
    if (end == context + 3 || *end != '\0' || seq <= 0)
        return ST_OK;
    char name[ACTOR_UNITS * 4 + 4], seq_text[24];
    conv_cut_units(event->profile_display_name, ACTOR_UNITS, name, sizeof(name));
    snprintf(seq_text, sizeof(seq_text), "%lld", seq);
    const char *params[] = {seq_text, event->group_id, name};
    db_result *entry = NULL;
    cJSON *named = NULL;
    st_code status = db_exec(
        run->d,
        "UPDATE incident_events e SET actor = $3, "
        "detail = detail || '{\"actor_from\": \"line_profile\"}'::jsonb "
        "FROM incidents i WHERE e.id = $1::bigint AND e.group_id = $2 "
        "AND e.actor_type = 'responder' AND i.id = e.incident_id "
        "RETURNING e.incident_id, e.kind, i.case_number, "
        "to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
        3, params, &entry, err);
    if (status != ST_OK || db_result_rows(entry) != 1)
        goto cleanup;
    int64_t incident_id = conv_db_int_value(entry, 0, 0);
    const char *kind = db_result_value(entry, 0, 1);
    run->result.incident_id = incident_id;
    run->result.what = "member_named";
    if (strcmp(kind, "acknowledged") == 0) {
        const char *update[] = {db_result_value(entry, 0, 0), event->group_id, name};
        status = db_exec(run->d,
                         "UPDATE incidents SET acknowledged_by = $3, updated_at = now() "
                         "WHERE id = $1::bigint AND acknowledged_group_id = $2",
                         3, update, NULL, err);
        if (status != ST_OK)
            goto cleanup;
    }
    /* The name arrives after the step's own event: watchers of the case (the console) learn
     * of it from this note, which names the step it completes. */
    named = cJSON_CreateObject();
    if (named == NULL || cJSON_AddNumberToObject(named, "incident_id", (double)incident_id) == NULL ||
        cJSON_AddStringToObject(named, "case_number", db_result_value(entry, 0, 2)) == NULL ||
        cJSON_AddStringToObject(named, "at", db_result_value(entry, 0, 3)) == NULL ||
        cJSON_AddStringToObject(named, "group_id", event->group_id) == NULL ||
        cJSON_AddStringToObject(named, "actor", name) == NULL ||
        ((strcmp(kind, "acknowledged") == 0 || strcmp(kind, "on_scene") == 0 ||
          strcmp(kind, "closed") == 0) &&
         cJSON_AddStringToObject(named, "status", kind) == NULL)) {
        status = st_fail(err, ST_NOMEM, "out of memory building an event");
        goto cleanup;
    }
    char msg_id[64];
    snprintf(msg_id, sizeof(msg_id), "named.%" PRId64 ".%lld", incident_id, seq);
    bool added = false;
    status = conv_db_add_event(run->d, "ess.incident.note", msg_id, named, &added, err);
    run->result.outbox_added += added;
cleanup:
    cJSON_Delete(named);
    db_result_destroy(entry);
    return status;
}

/* ---- one event ------------------------------------------------------------------------------ */

static st_code lock_group(team_run *run, st_error *err)
{
    const char *params[] = {run->event->group_id};
    db_result *r = NULL;
    st_code status = db_exec(run->d,
                             "INSERT INTO team_groups (group_id) VALUES ($1) "
                             "ON CONFLICT (group_id) DO NOTHING",
                             1, params, NULL, err);
    if (status != ST_OK)
        return status;
    status = db_exec(run->d,
                     "SELECT coalesce(g.team_id::text, ''), coalesce(t.name, ''), "
                     "coalesce(t.active, false) FROM team_groups g "
                     "LEFT JOIN teams t ON t.id = g.team_id WHERE g.group_id = $1 "
                     "FOR UPDATE OF g",
                     1, params, &r, err);
    if (status == ST_OK && db_result_rows(r) != 1)
        status = st_fail(err, ST_INTERNAL, "the group's row vanished");
    if (status == ST_OK) {
        snprintf(run->team_id, sizeof(run->team_id), "%s", db_result_value(r, 0, 0));
        snprintf(run->team_name, sizeof(run->team_name), "%s", db_result_value(r, 0, 1));
        run->team_active = strcmp(db_result_value(r, 0, 2), "t") == 0;
        status = db_exec(run->d,
                         "UPDATE team_groups SET last_activity = now(), updated_at = now() "
                         "WHERE group_id = $1",
                         1, params, NULL, err);
    }
    db_result_destroy(r);
    return status;
}

st_code conv_team_apply(db *d, const conv_store_config *config, const conv_event *event,
                        int64_t now_ms, conv_team_result *ret_result, st_error *err)
{
    if (event == NULL || event->source != CONV_SOURCE_GROUP || event->group_id[0] == '\0')
        return st_fail(err, ST_INVALID, "a team event needs a group source");
    team_run run = {.d = d, .config = config, .event = event, .now_ms = now_ms};
    run.result.what = "ignored";
    conv_db_int_text(run.event_time, sizeof(run.event_time), event->timestamp_ms);
    bool first = false;
    st_code status =
        outbox_mark_processed(d, CONV_CONSUMER_NAME, event->webhook_event_id, &first, err);
    if (status != ST_OK)
        return status;
    if (!first) {
        run.result.duplicate = true;
        *ret_result = run.result;
        return ST_OK;
    }
    if ((status = lock_group(&run, err)) != ST_OK)
        return status;
    switch (event->kind) {
    case CONV_EV_JOIN:
        run.result.what = "join";
        status = event->standby ? group_exec(&run,
                                             "UPDATE team_groups SET active = true, left_at = NULL "
                                             "WHERE group_id = $1 AND $2::int >= 0",
                                             err)
                                : on_join(&run, err);
        break;
    case CONV_EV_LEAVE:
        run.result.what = "leave";
        status = group_exec(&run,
                            "UPDATE team_groups SET active = false, left_at = now(), "
                            "updated_at = now() WHERE group_id = $1 AND $2::int >= 0",
                            err);
        break;
    case CONV_EV_MEMBER_JOINED:
        run.result.what = "member_joined";
        status = group_exec(&run,
                            "UPDATE team_groups SET member_count = member_count + $2::int "
                            "WHERE group_id = $1",
                            err);
        break;
    case CONV_EV_MEMBER_LEFT:
        run.result.what = "member_left";
        status = group_exec(&run,
                            "UPDATE team_groups SET member_count = "
                            "greatest(0, member_count - $2::int) WHERE group_id = $1",
                            err);
        break;
    case CONV_EV_PROFILE:
        status = on_member_profile(&run, err);
        break;
    case CONV_EV_TEXT:
    case CONV_EV_POSTBACK: {
        if (event->standby)
            break;
        conv_team_intent intent;
        conv_team_classify(event, &intent);
        conv_team_params params = {0};
        switch (intent.action) {
        case CONV_TEAM_HELP:
            run.result.what = "help";
            status = answer_msg(&run, CONV_TEAM_MSG_HELP, &params, err);
            break;
        case CONV_TEAM_BIND:
            run.result.what = "bind";
            status = on_bind(&run, &intent, err);
            break;
        case CONV_TEAM_TAKE:
        case CONV_TEAM_SCENE:
        case CONV_TEAM_CLOSE:
        case CONV_TEAM_OUTCOME:
            run.result.what = intent.action == CONV_TEAM_TAKE    ? "take"
                              : intent.action == CONV_TEAM_SCENE ? "scene"
                              : intent.action == CONV_TEAM_CLOSE ? "close"
                                                                 : "outcome";
            status = on_case(&run, &intent, err);
            break;
        default:
            break;
        }
        break;
    }
    default:
        break;
    }
    if (status == ST_OK)
        *ret_result = run.result;
    return status;
}
