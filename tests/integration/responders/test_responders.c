/* Issue 7 end to end, through the line-emulator and the real binaries (ess-ingress,
 * ess-conversation, ess-georouter, ess-notifier): enrolment with an invite code, a citizen's
 * report in Chiang Mai reaching the TH50 group, taking the case, on scene, closing, the
 * reporter's silent status pushes, information forwarded, escalation when nobody takes it,
 * cancellation, and exactly one acknowledgement and one message per recipient through a
 * double press, a redelivered postback and SIGKILLs. Also the LINE profile's language
 * (issue 4). */
#include "testkit.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp_harness.h"

#define CHIANG_MAI_LAT 18.7883
#define CHIANG_MAI_LON 98.9853
#define FLEX "google.com/maps" /* the responder card (its map button), nothing else */

/* ---- helpers -------------------------------------------------------------------------------- */

/* template with "{id}" replaced by id (no printf formats from variables). */
static void sqlf(char *out, size_t size, const char *template_sql, long long id)
{
    const char *at = strstr(template_sql, "{id}");
    assert_non_null(at);
    snprintf(out, size, "%.*s%lld%s", (int)(at - template_sql), template_sql, id, at + 4);
}

static long long sql_id(rs_stack *s, const char *format, long long id)
{
    char sql[1024];
    sqlf(sql, sizeof(sql), format, id);
    return rs_sql(s, sql);
}

static char *sql_id_text(rs_stack *s, const char *format, long long id)
{
    char sql[1024];
    sqlf(sql, sizeof(sql), format, id);
    return rs_sql_text(s, sql);
}

typedef struct named_probe {
    rs_stack *s;
    char msg_id[64];
    char *payload; /* heap, once found */
} named_probe;

static bool named_note_published(void *closure)
{
    named_probe *probe = closure;
    probe->payload = rs_find_msg(probe->s, "ESS", probe->msg_id);
    return probe->payload != NULL;
}

static void wait_sql_id(rs_stack *s, const char *format, long long id, long long expected)
{
    char sql[1024];
    sqlf(sql, sizeof(sql), format, id);
    rs_wait_sql(s, sql, expected);
}

/* Taps button `action` of the bot message seq in group as user. */
static void tap_button(rs_stack *s, const char *user, const char *group, int64_t seq, int action)
{
    char path[128], body[200];
    snprintf(path, sizeof(path), "/users/%s/tap", user);
    snprintf(body, sizeof(body), "{\"seq\":%lld,\"action\":%d,\"groupId\":\"%s\"}", (long long)seq,
             action, group);
    cJSON_Delete(rs_emu(s, "POST", path, body, 202));
}

static void invite_and_bind(rs_stack *s, const char *const *invite_args, const char *name,
                            const char *officer, char *ret_group, size_t size)
{
    char code[32];
    rs_invite(s, invite_args, code, sizeof(code));
    const char *members[] = {officer, NULL};
    rs_group(s, name, members, ret_group, size);
    rs_bind(s, officer, ret_group, code);
}

static char *case_number_of(rs_stack *s, long long id)
{
    return sql_id_text(s, "SELECT case_number FROM incidents WHERE id = {id}", id);
}

/* The LINE_OUT command with this id must exist and be silent. */
static void expect_silent_command(rs_stack *s, const char *command_id)
{
    char *payload = rs_find_msg(s, "LINE_OUT", command_id);
    if (payload == NULL)
        fail_msg("no command %s on LINE_OUT", command_id);
    cJSON *command = cJSON_Parse(payload);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(command, "notification_disabled")));
    cJSON_Delete(command);
    free(payload);
}

/* Nothing was dead-lettered: every message of the case was usable by every service. */
static void expect_no_dead_letters(rs_stack *s)
{
    uint64_t dead = rs_last_seq(s, "DLQ");
    for (uint64_t seq = 1; seq <= dead; seq++) {
        char subject[96];
        char *payload = rs_stream_get(s, "DLQ", seq, NULL, 0, subject, sizeof(subject));
        fprintf(stderr, "dead letter on %s: %.300s\n", subject, payload != NULL ? payload : "");
        free(payload);
    }
    assert_int_equal(dead, 0);
}

/* ---- cases ---------------------------------------------------------------------------------- */

ESS_TEST(invite_bind_report_take_on_scene_close_with_a_timeline)
{
    rs_stack *s = &rs;
    rs_start(s, NULL);
    char officer[RS_ID_MAX], colleague[RS_ID_MAX], citizen[RS_ID_MAX], group[RS_ID_MAX];
    rs_user(s, "ร.ต.อ. สมชาย ใจดี", "th", officer, sizeof(officer));
    rs_user(s, "มาลี พมจ.", "th", colleague, sizeof(colleague));
    rs_user(s, "citizen one", "th", citizen, sizeof(citizen));
    const char *invite[] = {"--province", "TH50", NULL};
    invite_and_bind(s, invite, "ทีมสหวิชาชีพ เชียงใหม่", officer, group, sizeof(group));
    long long team = rs_sql(s, "SELECT team_id FROM team_groups");
    assert_true(team > 0);
    assert_int_equal(rs_sql(s, "SELECT count(*) FROM team_invites WHERE used_at IS NOT NULL"), 1);
    assert_int_equal(rs_sql(s, "SELECT count(*) FROM team_groups WHERE active AND bound_at "
                               "IS NOT NULL AND last_activity IS NOT NULL"),
                     1);
    /* A member joins: the count follows memberJoined. */
    char body[200], path[160];
    snprintf(path, sizeof(path), "/groups/%s/members", group);
    snprintf(body, sizeof(body), "{\"userIds\":[\"%s\"]}", colleague);
    cJSON_Delete(rs_emu(s, "POST", path, body, 202));
    rs_wait_sql(s, "SELECT member_count FROM team_groups", 1);
    const char *list[] = {"team", "list", "--json", NULL};
    char *teams = rs_essctl(s, list);
    cJSON *listed = cJSON_Parse(teams);
    const cJSON *listed_group = cJSON_GetArrayItem(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(listed, "teams"), 0), "groups"),
        0);
    assert_string_equal(cJSON_GetObjectItem(listed_group, "group_id")->valuestring, group);
    assert_int_equal(cJSON_GetObjectItem(listed_group, "member_count")->valuedouble, 1);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(listed_group, "last_activity")));
    cJSON_Delete(listed);
    free(teams);

    /* The report reaches the TH50 group as a card. */
    long long id = rs_report(s, citizen, CHIANG_MAI_LAT, CHIANG_MAI_LON, "0812345678");
    char *case_number = case_number_of(s, id);
    int64_t card = rs_wait_bot(s, group, FLEX, 1);
    char *card_json = rs_last_bot_json(s, group, FLEX);
    assert_non_null(strstr(card_json, case_number));
    assert_non_null(strstr(card_json, "a=take"));
    free(card_json);
    wait_sql_id(s, "SELECT count(*) FROM incidents WHERE id = {id} AND ack_deadline IS NOT NULL",
                id, 1);

    /* Take: the card's first button. */
    tap_button(s, officer, group, card, 1);
    int64_t confirm = rs_wait_bot(s, group, "a=scene", 1);
    rs_wait_bot(s, citizen, "เจ้าหน้าที่รับเรื่อง", 1);
    char command_id[96];
    snprintf(command_id, sizeof(command_id), "push.status.taken.%lld", id);
    expect_silent_command(s, command_id);
    assert_int_equal(sql_id(s,
                            "SELECT count(*) FROM incidents WHERE id = {id} AND status = "
                            "'acknowledged' AND ack_deadline IS NULL",
                            id),
                     1);
    /* The member's LINE name replaces "a member of <team>" when the profile comes back. */
    wait_sql_id(s,
                "SELECT count(*) FROM incidents WHERE id = {id} AND "
                "acknowledged_by = 'ร.ต.อ. สมชาย ใจดี'",
                id, 1);
    wait_sql_id(s,
                "SELECT count(*) FROM incident_events WHERE incident_id = {id} AND "
                "kind = 'acknowledged' AND actor = 'ร.ต.อ. สมชาย ใจดี'",
                id, 1);
    /* ... and watchers of the case hear of the name: a note naming the step it completes. */
    named_probe named = {.s = s};
    snprintf(named.msg_id, sizeof(named.msg_id), "named.%lld.%lld", id,
             sql_id(s,
                    "SELECT id FROM incident_events WHERE incident_id = {id} AND "
                    "kind = 'acknowledged'",
                    id));
    assert_true(testkit_wait_until(named_note_published, &named, RS_WAIT_MS));
    cJSON *note = cJSON_Parse(named.payload);
    assert_non_null(note);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(note, "actor")->valuestring,
                        "ร.ต.อ. สมชาย ใจดี");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(note, "status")->valuestring,
                        "acknowledged");
    cJSON_Delete(note);
    free(named.payload);

    /* What the reporter adds goes to the group that took the case. */
    rs_act(s, citizen, "text", "{\"text\":\"ประตูสีฟ้า บ้านเลขที่ 9\"}", NULL, 0);
    rs_wait_bot(s, group, "ประตูสีฟ้า", 1);

    /* On scene, then close with an outcome. */
    tap_button(s, officer, group, confirm, 1);
    int64_t on_scene = rs_wait_bot(s, group, "บันทึกถึงที่เกิดเหตุ", 1);
    rs_wait_bot(s, citizen, "ถึงที่เกิดเหตุแล้ว", 1);
    tap_button(s, officer, group, on_scene, 1);
    int64_t outcomes = rs_wait_bot(s, group, "a=outcome", 1);
    tap_button(s, officer, group, outcomes, 1);
    rs_wait_bot(s, group, "ช่วยเหลือแล้ว", 2); /* the button, and the confirmation */
    rs_wait_bot(s, citizen, "ปิดแล้ว", 1);
    wait_sql_id(s,
                "SELECT count(*) FROM incidents WHERE id = {id} AND status = 'closed' AND "
                "outcome = 'helped' AND acknowledged_at <= on_scene_at AND "
                "on_scene_at <= closed_at AND routed_at IS NOT NULL",
                id, 1);
    /* The reporter's conversation left the case. */
    assert_int_equal(rs_sql(s, "SELECT count(*) FROM conversations WHERE state = 'submitted'"), 0);
    snprintf(command_id, sizeof(command_id), "push.status.closed.%lld", id);
    expect_silent_command(s, command_id);
    snprintf(command_id, sizeof(command_id), "push.status.scene.%lld", id);
    expect_silent_command(s, command_id);

    /* The timeline: every step, in order, each with its time. */
    char *kinds = sql_id_text(s,
                              "SELECT string_agg(kind, ',' ORDER BY at, id) FROM incident_events "
                              "WHERE incident_id = {id} AND at IS NOT NULL",
                              id);
    assert_string_equal(kinds, "reported,routed,acknowledged,info_added,on_scene,closed");
    free(kinds);
    assert_int_equal(sql_id(s,
                            "SELECT count(*) FROM incident_events WHERE incident_id = {id} AND "
                            "actor_type = 'responder' AND group_id IS NOT NULL",
                            id),
                     3);

    /* Once each. */
    assert_int_equal(rs_bot_count(s, group, FLEX), 1);
    assert_int_equal(rs_bot_count(s, group, "a=scene"), 1);
    assert_int_equal(rs_bot_count(s, citizen, "เจ้าหน้าที่รับเรื่อง"), 1);
    assert_int_equal(rs_bot_count(s, citizen, "ถึงที่เกิดเหตุแล้ว"), 1);
    assert_int_equal(rs_bot_count(s, citizen, "ปิดแล้ว"), 1);
    assert_int_equal(rs_subject_count(s, "ESS", "ess.incident.acknowledged"), 1);
    assert_int_equal(rs_subject_count(s, "ESS", "ess.incident.closed"), 1);
    /* No LINE user id and no phone number in any log. */
    assert_false(rs_logs_contain(s, citizen));
    assert_false(rs_logs_contain(s, officer));
    assert_false(rs_logs_contain(s, "0812345678"));
    free(case_number);
    expect_no_dead_letters(s);
}

/* The station the georouter names first among the next ones (`essctl geo locate --json`). */
static void next_station(rs_stack *s, char *out, size_t size)
{
    const char *args[] = {"geo", "locate", "18.7883", "98.9853", "--json", NULL};
    char *output = rs_essctl(s, args);
    cJSON *decision = cJSON_Parse(output);
    const cJSON *station;
    out[0] = '\0';
    cJSON_ArrayForEach(station, cJSON_GetObjectItem(decision, "stations"))
    {
        const cJSON *role = cJSON_GetObjectItem(station, "role");
        if (out[0] == '\0' && cJSON_IsString(role) && strcmp(role->valuestring, "next") == 0)
            snprintf(out, size, "%s", cJSON_GetObjectItem(station, "station_id")->valuestring);
    }
    cJSON_Delete(decision);
    free(output);
    assert_true(out[0] != '\0');
}

ESS_TEST(an_unacknowledged_case_climbs_the_levels_and_a_take_at_the_second_stops_it)
{
    rs_stack *s = &rs;
    /* Long enough for a take to land before the next step even on a loaded machine. */
    const char *env[] = {"ESS_ACK_TIMEOUT=4s", NULL};
    rs_start(s, env);
    char local[RS_ID_MAX], neighbour[RS_ID_MAX], command[RS_ID_MAX], national[RS_ID_MAX];
    char local_group[RS_ID_MAX], neighbour_group[RS_ID_MAX], command_group[RS_ID_MAX];
    char national_group[RS_ID_MAX], first[RS_ID_MAX], second[RS_ID_MAX], station[80];
    rs_user(s, "officer local", "th", local, sizeof(local));
    rs_user(s, "officer neighbour", "th", neighbour, sizeof(neighbour));
    rs_user(s, "officer command", "th", command, sizeof(command));
    rs_user(s, "officer national", "th", national, sizeof(national));
    rs_user(s, "citizen first", "th", first, sizeof(first));
    rs_user(s, "citizen second", "th", second, sizeof(second));
    next_station(s, station, sizeof(station));
    /* The ladder: the province's team (level 0), the next station's team (1), the provincial
     * command (2), the national centre (3). */
    const char *local_args[] = {"--province", "TH50", NULL};
    const char *neighbour_args[] = {"--province", "TH50", "--station", station, NULL};
    const char *command_args[] = {"--province", "TH50", "--kind", "provincial_command", NULL};
    const char *national_args[] = {"--national", NULL};
    invite_and_bind(s, local_args, "local", local, local_group, sizeof(local_group));
    invite_and_bind(s, neighbour_args, "neighbour", neighbour, neighbour_group,
                    sizeof(neighbour_group));
    invite_and_bind(s, command_args, "command", command, command_group, sizeof(command_group));
    invite_and_bind(s, national_args, "national", national, national_group, sizeof(national_group));

    long long id = rs_report(s, first, CHIANG_MAI_LAT, CHIANG_MAI_LON, "0812345678");
    char *case_number = case_number_of(s, id);
    rs_wait_bot(s, local_group, FLEX, 1);
    assert_int_equal(rs_bot_count(s, neighbour_group, FLEX), 0);
    /* The deadline lives in PostgreSQL: a conversation killed and restarted keeps the timer. */
    wait_sql_id(s, "SELECT count(*) FROM incidents WHERE id = {id} AND ack_deadline IS NOT NULL",
                id, 1);
    rs_wait_all_applied(s);
    assert_int_equal(rs_proc_stop(&s->conversation, SIGKILL), 128 + SIGKILL);
    rs_proc_start(s, &s->conversation, NULL);
    /* Nobody takes it: a reminder to level 0, the card to the next station's team. */
    rs_wait_bot(s, local_group, "ยังไม่มีผู้รับเรื่อง", 1);
    int64_t card = rs_wait_bot(s, neighbour_group, FLEX, 1);
    wait_sql_id(s, "SELECT escalation_level FROM incidents WHERE id = {id}", id, 1);
    /* The second level takes it from the card. */
    tap_button(s, neighbour, neighbour_group, card, 1);
    rs_wait_bot(s, neighbour_group, "a=scene", 1);
    rs_wait_bot(s, first, "เจ้าหน้าที่รับเรื่อง", 1);
    rs_wait_bot(s, local_group, "มีผู้รับแล้ว", 1); /* level 0 stands down */
    assert_int_equal(sql_id(s,
                            "SELECT count(*) FROM incidents WHERE id = {id} AND ack_deadline IS "
                            "NULL AND escalation_level = 1 AND acknowledged_group_id IS NOT NULL",
                            id),
                     1);

    /* A second case nobody takes climbs every level to the national centre: by then the first
     * one would have climbed too, had the take not stopped it. */
    long long other = rs_report(s, second, CHIANG_MAI_LAT, CHIANG_MAI_LON, "0898765432");
    char *other_number = case_number_of(s, other);
    rs_wait_bot(s, national_group, other_number, 1);
    wait_sql_id(s, "SELECT escalation_level FROM incidents WHERE id = {id}", other, 3);
    assert_int_equal(rs_bot_count(s, national_group, case_number), 0);
    assert_int_equal(rs_bot_count(s, command_group, case_number), 0);
    assert_int_equal(rs_bot_count(s, national_group, FLEX), 1);
    assert_int_equal(rs_bot_count(s, command_group, FLEX), 1);
    assert_int_equal(sql_id(s, "SELECT escalation_level FROM incidents WHERE id = {id}", id), 1);

    /* Every step on the timeline and as an event; one reminder, one card per group. */
    assert_int_equal(sql_id(s,
                            "SELECT count(*) FROM incident_events WHERE incident_id = {id} AND "
                            "kind = 'escalated' AND at IS NOT NULL",
                            id),
                     1);
    assert_int_equal(sql_id(s,
                            "SELECT count(*) FROM incident_events WHERE incident_id = {id} AND "
                            "kind = 'escalated'",
                            other),
                     3);
    char reminder[96];
    snprintf(reminder, sizeof(reminder), "ยังไม่มีผู้รับเรื่อง %s", case_number);
    assert_int_equal(rs_bot_count(s, local_group, reminder), 1);
    assert_int_equal(rs_bot_count(s, neighbour_group, reminder), 0);
    assert_int_equal(rs_bot_count(s, neighbour_group, FLEX), 2); /* one card per case */
    assert_true(rs_subject_count(s, "ESS", "ess.incident.escalated") >= 4);
    free(case_number);
    free(other_number);
    expect_no_dead_letters(s);
}

ESS_TEST(a_double_press_and_a_redelivered_postback_make_one_acknowledgement)
{
    rs_stack *s = &rs;
    rs_start(s, NULL);
    char officer[RS_ID_MAX], colleague[RS_ID_MAX], citizen[RS_ID_MAX], group[RS_ID_MAX];
    rs_user(s, "officer one", "th", officer, sizeof(officer));
    rs_user(s, "officer two", "th", colleague, sizeof(colleague));
    rs_user(s, "citizen", "th", citizen, sizeof(citizen));
    char code[32];
    const char *invite[] = {"--province", "TH50", NULL};
    rs_invite(s, invite, code, sizeof(code));
    const char *members[] = {officer, colleague, NULL};
    rs_group(s, "team", members, group, sizeof(group));
    rs_bind(s, officer, group, code);
    long long id = rs_report(s, citizen, CHIANG_MAI_LAT, CHIANG_MAI_LON, "0812345678");
    rs_wait_bot(s, group, FLEX, 1);

    /* Both officers press in the same instant: one webhook, two postbacks. */
    char batch[600];
    snprintf(batch, sizeof(batch),
             "{\"events\":[{\"type\":\"postback\",\"userId\":\"%s\",\"groupId\":\"%s\","
             "\"data\":\"v=1&a=take&i=%lld\"},{\"type\":\"postback\",\"userId\":\"%s\","
             "\"groupId\":\"%s\",\"data\":\"v=1&a=take&i=%lld\"}]}",
             officer, group, id, colleague, group, id);
    cJSON *answer = rs_emu(s, "POST", "/webhook", batch, 202);
    const cJSON *events = cJSON_GetObjectItem(answer, "events");
    char first_event[80];
    snprintf(first_event, sizeof(first_event), "%s",
             cJSON_GetObjectItem(cJSON_GetArrayItem(events, 0), "webhookEventId")->valuestring);
    cJSON_Delete(answer);
    rs_wait_bot(s, group, "a=scene", 1);
    rs_wait_bot(s, group, "มีผู้รับแล้ว", 1); /* the second press learns who took it */
    rs_wait_bot(s, citizen, "เจ้าหน้าที่รับเรื่อง", 1);

    /* The first press again, as LINE would redeliver it long after JetStream's window:
     * the same event under another msg-id. */
    char *stored = rs_find_msg(s, "LINE_IN", first_event);
    assert_non_null(stored);
    char subject[160];
    snprintf(subject, sizeof(subject), "line.in.group.%s", group);
    long long duplicates_before =
        rs_metric(&s->conversation, "ess_conversation_events_total{result=\"duplicate\"}");
    rs_publish(s, subject, stored, strlen(stored), "redelivered-take");
    free(stored);
    rs_wait_metric_above(&s->conversation, "ess_conversation_events_total{result=\"duplicate\"}",
                         duplicates_before);

    /* A third press, later, by the first officer: answered, nothing else. */
    char press[200];
    snprintf(press, sizeof(press), "{\"data\":\"v=1&a=take&i=%lld\",\"groupId\":\"%s\"}", id,
             group);
    rs_act(s, officer, "postback", press, NULL, 0);
    rs_wait_bot(s, group, "มีผู้รับแล้ว", 2);

    assert_int_equal(sql_id(s,
                            "SELECT count(*) FROM incident_events WHERE incident_id = {id} AND "
                            "kind = 'acknowledged'",
                            id),
                     1);
    assert_int_equal(rs_subject_count(s, "ESS", "ess.incident.acknowledged"), 1);
    assert_int_equal(rs_bot_count(s, group, "a=scene"), 1);
    assert_int_equal(rs_bot_count(s, group, "มีผู้รับแล้ว"), 2);
    assert_int_equal(rs_bot_count(s, citizen, "เจ้าหน้าที่รับเรื่อง"), 1);
    expect_no_dead_letters(s);
}

ESS_TEST(sigkill_of_conversation_and_notifier_during_a_take_leaves_one_of_each)
{
    rs_stack *s = &rs;
    rs_start(s, NULL);
    char officer[RS_ID_MAX], citizen[RS_ID_MAX], group[RS_ID_MAX];
    rs_user(s, "officer", "th", officer, sizeof(officer));
    rs_user(s, "citizen", "th", citizen, sizeof(citizen));
    const char *invite[] = {"--province", "TH50", NULL};
    invite_and_bind(s, invite, "team", officer, group, sizeof(group));
    long long id = rs_report(s, citizen, CHIANG_MAI_LAT, CHIANG_MAI_LON, "0812345678");
    int64_t card = rs_wait_bot(s, group, FLEX, 1);
    /* Everything so far applied (the profile answers too), then a conversation that kills
     * itself right after committing the next event: the take. */
    rs_wait_all_applied(s);
    assert_int_equal(rs_proc_stop(&s->conversation, SIGTERM), 0);
    const char *failing[] = {"ESS_DATA_KEY=" RS_DATA_KEY, "ESS_ESCALATION_SCAN_INTERVAL=200ms",
                             "ESS_CONVERSATION_FAILPOINT=after_commit",
                             "ESS_CONVERSATION_FAILPOINT_AT=1", NULL};
    rs_proc_start(s, &s->conversation, failing);
    tap_button(s, officer, group, card, 1);
    assert_int_equal(rs_proc_wait_exit(&s->conversation, RS_WAIT_MS), 128 + SIGKILL);
    /* The notifier dies too, whatever it holds at that moment. */
    assert_int_equal(rs_proc_stop(&s->notifier, SIGKILL), 128 + SIGKILL);
    const char *normal[] = {"ESS_DATA_KEY=" RS_DATA_KEY, "ESS_ESCALATION_SCAN_INTERVAL=200ms",
                            NULL};
    rs_proc_start(s, &s->conversation, normal);
    rs_proc_start(s, &s->notifier, NULL);
    rs_wait_bot(s, group, "a=scene", 1);
    rs_wait_bot(s, citizen, "เจ้าหน้าที่รับเรื่อง", 1);
    /* JetStream redelivers the take (its ack was lost with the process): a duplicate. */
    rs_wait_metric_above(&s->conversation, "ess_conversation_events_total{result=\"duplicate\"}",
                         0);
    wait_sql_id(s, "SELECT count(*) FROM incidents WHERE id = {id} AND acknowledged_by = 'officer'",
                id, 1);
    assert_int_equal(sql_id(s,
                            "SELECT count(*) FROM incident_events WHERE incident_id = {id} AND "
                            "kind = 'acknowledged'",
                            id),
                     1);
    assert_int_equal(rs_subject_count(s, "ESS", "ess.incident.acknowledged"), 1);
    assert_int_equal(rs_bot_count(s, group, "a=scene"), 1);
    assert_int_equal(rs_bot_count(s, group, FLEX), 1);
    assert_int_equal(rs_bot_count(s, citizen, "เจ้าหน้าที่รับเรื่อง"), 1);
    expect_no_dead_letters(s);
}

/* The emulator's delivery of webhook event_id: its state and attempts so far. */
typedef struct delivery_wait {
    rs_stack *s;
    const char *event_id;
    const char *state;   /* wanted state */
    int failed_attempts; /* attempts that got no 200 */
    int attempts;
    bool last_redelivered;
} delivery_wait;

static bool delivery_scan(void *closure)
{
    delivery_wait *w = closure;
    cJSON *answer = rs_emu(w->s, "GET", "/deliveries?after=0", NULL, 200);
    bool reached = false;
    const cJSON *delivery;
    cJSON_ArrayForEach(delivery, cJSON_GetObjectItem(answer, "deliveries"))
    {
        bool ours = false;
        const cJSON *id;
        cJSON_ArrayForEach(id, cJSON_GetObjectItem(delivery, "webhookEventIds"))
        {
            ours = ours || (cJSON_IsString(id) && strcmp(id->valuestring, w->event_id) == 0);
        }
        if (!ours)
            continue;
        w->attempts = 0;
        w->failed_attempts = 0;
        const cJSON *attempt;
        cJSON_ArrayForEach(attempt, cJSON_GetObjectItem(delivery, "attempts"))
        {
            w->attempts++;
            const cJSON *status = cJSON_GetObjectItem(attempt, "status");
            if (!cJSON_IsNumber(status) || status->valuedouble != 200)
                w->failed_attempts++;
            w->last_redelivered = cJSON_IsTrue(cJSON_GetObjectItem(attempt, "isRedelivery"));
        }
        const cJSON *state = cJSON_GetObjectItem(delivery, "state");
        reached = cJSON_IsString(state) && strcmp(state->valuestring, w->state) == 0 &&
                  w->failed_attempts > 0;
    }
    cJSON_Delete(answer);
    return reached;
}

/* Every message of every stream has exactly one audit_log row (what ess-audit held when it
 * died comes back after JetStream's 30 s ack_wait). */
static bool audit_complete(void *closure)
{
    rs_stack *s = closure;
    const char *streams[] = {"LINE_IN", "ESS", "LINE_OUT"};
    for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) = %llu AND count(DISTINCT stream_seq) = %llu "
                 "FROM audit_log WHERE stream = '%s'",
                 (unsigned long long)rs_last_seq(s, streams[i]),
                 (unsigned long long)rs_last_seq(s, streams[i]), streams[i]);
        char *yes = rs_sql_text(s, sql);
        bool done = yes != NULL && strcmp(yes, "t") == 0;
        free(yes);
        if (!done)
            return false;
    }
    return true;
}

/* The rest of "SIGKILL of any service during the flow": ess-georouter with the report
 * waiting for it, ess-audit holding messages it has not written, ess-ingress while the
 * emulator sends the take (refused; LINE redelivers once it is back). */
ESS_TEST(sigkill_of_ingress_georouter_and_audit_during_the_flow_leaves_one_of_each)
{
    rs_stack *s = &rs;
    rs_start(s, NULL);
    /* A long flush: what ess-audit receives stays held (unacknowledged) long enough to be
     * killed with it. */
    const char *audit_env[] = {"ESS_AUDIT_FLUSH=5s", NULL};
    rs_audit_start(s, audit_env);
    char officer[RS_ID_MAX], citizen[RS_ID_MAX], group[RS_ID_MAX];
    rs_user(s, "officer", "th", officer, sizeof(officer));
    rs_user(s, "citizen", "th", citizen, sizeof(citizen));
    const char *invite[] = {"--province", "TH50", NULL};
    invite_and_bind(s, invite, "team", officer, group, sizeof(group));

    /* ess-georouter dies before the report: ess.incident.reported waits for it. */
    assert_int_equal(rs_proc_stop(&s->georouter, SIGKILL), 128 + SIGKILL);
    long long id = rs_report(s, citizen, CHIANG_MAI_LAT, CHIANG_MAI_LON, "0812345678");
    /* ess-audit dies with a batch held, not written, not acknowledged. */
    rs_wait_metric_above(&s->audit, "ess_audit_pending", 0);
    assert_int_equal(rs_proc_stop(&s->audit, SIGKILL), 128 + SIGKILL);
    assert_int_equal(
        sql_id(s, "SELECT count(*) FROM incidents WHERE id = {id} AND routed_at IS NULL", id), 1);
    assert_int_equal(rs_bot_count(s, group, FLEX), 0);
    rs_proc_start(s, &s->georouter, NULL);
    rs_proc_start(s, &s->audit, NULL);
    int64_t card = rs_wait_bot(s, group, FLEX, 1);
    wait_sql_id(s, "SELECT count(*) FROM incidents WHERE id = {id} AND ack_deadline IS NOT NULL",
                id, 1);

    /* ess-ingress dies; the officer takes the case: the webhook is refused. */
    rs_wait_all_applied(s);
    assert_int_equal(rs_proc_stop(&s->ingress, SIGKILL), 128 + SIGKILL);
    char path[128], body[200];
    snprintf(path, sizeof(path), "/users/%s/tap", officer);
    snprintf(body, sizeof(body), "{\"seq\":%lld,\"action\":1,\"groupId\":\"%s\"}", (long long)card,
             group);
    cJSON *answer = rs_emu(s, "POST", path, body, 202);
    char take_event[80];
    snprintf(take_event, sizeof(take_event), "%s",
             cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(answer, "events"), 0),
                                 "webhookEventId")
                 ->valuestring);
    cJSON_Delete(answer);
    delivery_wait refused = {.s = s, .event_id = take_event, .state = "pending"};
    if (!testkit_wait_until(delivery_scan, &refused, RS_WAIT_MS))
        fail_msg("the take was not refused while ess-ingress was down (%d attempts)",
                 refused.attempts);
    rs_proc_start(s, &s->ingress, NULL);
    delivery_wait delivered = {.s = s, .event_id = take_event, .state = "delivered"};
    if (!testkit_wait_until(delivery_scan, &delivered, RS_WAIT_MS))
        fail_msg("the take was not redelivered (%d attempts)", delivered.attempts);
    assert_true(delivered.last_redelivered);
    rs_wait_bot(s, group, "a=scene", 1);
    rs_wait_bot(s, citizen, "เจ้าหน้าที่รับเรื่อง", 1);
    wait_sql_id(s, "SELECT count(*) FROM incidents WHERE id = {id} AND acknowledged_by = 'officer'",
                id, 1);
    rs_wait_all_applied(s);

    /* One of each. */
    assert_int_equal(sql_id(s,
                            "SELECT count(*) FROM incident_events WHERE incident_id = {id} AND "
                            "kind = 'acknowledged'",
                            id),
                     1);
    assert_int_equal(sql_id(s,
                            "SELECT count(*) FROM incident_events WHERE incident_id = {id} AND "
                            "kind = 'routed'",
                            id),
                     1);
    assert_int_equal(
        sql_id(s, "SELECT count(*) FROM incidents WHERE id = {id} AND status = 'acknowledged'", id),
        1);
    assert_int_equal(rs_subject_count(s, "ESS", "ess.incident.acknowledged"), 1);
    assert_int_equal(rs_subject_count(s, "ESS", "ess.incident.routed"), 1);
    assert_int_equal(rs_bot_count(s, group, FLEX), 1);
    assert_int_equal(rs_bot_count(s, group, "a=scene"), 1);
    assert_int_equal(rs_bot_count(s, citizen, "เจ้าหน้าที่รับเรื่อง"), 1);

    /* The audit log: every message once, and the chain verifies (essctl exits 0). */
    if (!testkit_wait_until(audit_complete, s, 90000))
        fail_msg("audit_log does not hold every stream message exactly once");
    assert_int_equal(rs_sql(s, "SELECT count(*) - count(DISTINCT msg_id) FROM audit_log"), 0);
    const char *verify[] = {"audit", "verify", NULL};
    free(rs_essctl(s, verify));
    expect_no_dead_letters(s);
}

ESS_TEST(enrolment_refuses_bad_used_and_expired_codes_and_a_left_group_gets_nothing)
{
    rs_stack *s = &rs;
    rs_start(s, NULL);
    char officer[RS_ID_MAX], a[RS_ID_MAX], b[RS_ID_MAX], citizen[RS_ID_MAX];
    char group[RS_ID_MAX], other[RS_ID_MAX];
    rs_user(s, "officer", "th", officer, sizeof(officer));
    rs_user(s, "member a", "th", a, sizeof(a));
    rs_user(s, "member b", "th", b, sizeof(b));
    rs_user(s, "citizen", "th", citizen, sizeof(citizen));
    const char *members[] = {officer, NULL};
    rs_group(s, "team", members, group, sizeof(group));
    rs_group(s, "another", members, other, sizeof(other));
    char body[200];
    snprintf(body, sizeof(body), "{\"text\":\"/ess bind 0000-1111-2222\",\"groupId\":\"%s\"}",
             group);
    rs_act(s, officer, "text", body, NULL, 0);
    rs_wait_bot(s, group, "รหัสไม่ถูกต้อง", 1);
    snprintf(body, sizeof(body), "{\"text\":\"/ess\",\"groupId\":\"%s\"}", group);
    rs_act(s, officer, "text", body, NULL, 0);
    rs_wait_bot(s, group, "/ess bind รหัสเชิญ", 1);
    /* Ordinary talk in the group is the officers' own. */
    snprintf(body, sizeof(body), "{\"text\":\"ประชุมบ่ายนี้\",\"groupId\":\"%s\"}", group);
    rs_act(s, officer, "text", body, NULL, 0);

    char code[32];
    const char *invite[] = {"--province", "TH50", NULL};
    rs_invite(s, invite, code, sizeof(code));
    /* Typed loosely: lower case, spaces for dashes. */
    char loose[40];
    snprintf(loose, sizeof(loose), "%s", code);
    for (char *c = loose; *c != '\0'; c++)
        *c = *c == '-' ? ' ' : (*c >= 'A' && *c <= 'Z' ? (char)(*c - 'A' + 'a') : *c);
    rs_bind(s, officer, group, loose);
    /* Used once: the other group cannot use it. */
    snprintf(body, sizeof(body), "{\"text\":\"/ess bind %s\",\"groupId\":\"%s\"}", code, other);
    rs_act(s, officer, "text", body, NULL, 0);
    rs_wait_bot(s, other, "รหัสไม่ถูกต้อง", 1);
    /* Expired. */
    rs_invite(s, invite, code, sizeof(code));
    rs_sql(s, "UPDATE team_invites SET expires_at = now() - interval '1 minute' "
              "WHERE used_at IS NULL RETURNING 1");
    snprintf(body, sizeof(body), "{\"text\":\"/ess bind %s\",\"groupId\":\"%s\"}", code, other);
    rs_act(s, officer, "text", body, NULL, 0);
    rs_wait_bot(s, other, "รหัสไม่ถูกต้อง", 2);
    assert_int_equal(rs_sql(s, "SELECT count(*) FROM team_groups WHERE team_id IS NOT NULL"), 1);
    /* No answer to the officers' own talk: intro, bad code, help, bound. */
    rs_wait_all_applied(s);
    assert_int_equal(rs_bot_count(s, group, NULL), 4);

    /* Members come and go. */
    char path[160];
    snprintf(path, sizeof(path), "/groups/%s/members", group);
    snprintf(body, sizeof(body), "{\"userIds\":[\"%s\",\"%s\"]}", a, b);
    cJSON_Delete(rs_emu(s, "POST", path, body, 202));
    rs_wait_sql(s, "SELECT sum(member_count) FROM team_groups", 2);
    snprintf(path, sizeof(path), "/groups/%s/members/leave", group);
    snprintf(body, sizeof(body), "{\"userIds\":[\"%s\"]}", a);
    cJSON_Delete(rs_emu(s, "POST", path, body, 202));
    rs_wait_sql(s, "SELECT sum(member_count) FROM team_groups", 1);

    /* The bot is removed: the group is inactive and routing skips it. */
    snprintf(path, sizeof(path), "/groups/%s/leave", group);
    cJSON_Delete(rs_emu(s, "POST", path, "{}", 202));
    rs_wait_sql(s, "SELECT count(*) FROM team_groups WHERE NOT active AND left_at IS NOT NULL", 1);
    long long id = rs_report(s, citizen, CHIANG_MAI_LAT, CHIANG_MAI_LON, "0812345678");
    wait_sql_id(s,
                "SELECT count(*) FROM incidents WHERE id = {id} AND targets_recorded_at IS NOT "
                "NULL AND ack_deadline IS NULL",
                id, 1);
    assert_int_equal(
        sql_id(s, "SELECT count(*) FROM incident_targets WHERE incident_id = {id}", id), 0);
    assert_int_equal(rs_bot_count(s, group, FLEX), 0);
    expect_no_dead_letters(s);
}

ESS_TEST(the_line_profile_language_sets_english_unless_the_user_chose)
{
    rs_stack *s = &rs;
    rs_start(s, NULL);
    char english[RS_ID_MAX], thai[RS_ID_MAX], chooser[RS_ID_MAX];
    rs_user(s, "Somchai EN", "en-US", english, sizeof(english));
    rs_user(s, "สมศรี", "th", thai, sizeof(thai));
    rs_user(s, "Chooser", "en", chooser, sizeof(chooser));
    rs_act(s, english, "follow", "{}", NULL, 0);
    rs_act(s, thai, "follow", "{}", NULL, 0);
    rs_act(s, chooser, "text", "{\"text\":\"แจ้งเหตุ\"}", NULL, 0);
    /* The English profile: the opening prompt again, in English, on its own. */
    rs_wait_bot(s, english, "What is happening?", 1);
    rs_wait_sql(s, "SELECT count(*) FROM processed_events WHERE event_id LIKE 'profile.%.answer'",
                3);
    assert_int_equal(rs_sql(s, "SELECT count(*) FROM conversations WHERE language = 'en' AND "
                               "language_source = 'profile'"),
                     1);
    assert_int_equal(rs_sql(s, "SELECT count(*) FROM conversations WHERE language = 'th' AND "
                               "language_source = 'profile'"),
                     1);
    assert_int_equal(rs_sql(s, "SELECT count(*) FROM conversations WHERE language = 'th' AND "
                               "language_source = 'user'"),
                     1);
    assert_int_equal(rs_bot_count(s, chooser, "What is happening?"), 0);
    assert_int_equal(rs_bot_count(s, thai, "What is happening?"), 0);
    assert_int_equal(rs_bot_count(s, english, "What is happening?"), 1);
    /* The English user's next answer is in English. */
    char path[128];
    snprintf(path, sizeof(path), "/users/%s/tap", english);
    cJSON_Delete(rs_emu(s, "POST", path, "{\"index\":1}", 202));
    rs_wait_bot(s, english, "Share location", 1);
    /* The profile answers are on LINE_IN once each; a reporter's name is not in them. */
    assert_int_equal(rs_sql(s, "SELECT count(*) FROM processed_events WHERE event_id LIKE "
                               "'profile.%.answer'"),
                     3);
    uint64_t last = rs_last_seq(s, "LINE_IN");
    for (uint64_t seq = 1; seq <= last; seq++) {
        char *event = rs_stream_get(s, "LINE_IN", seq, NULL, 0, NULL, 0);
        if (event != NULL && strstr(event, "ess.profile") != NULL)
            assert_null(strstr(event, "Somchai EN"));
        free(event);
    }
    expect_no_dead_letters(s);
}

ESS_TEST(a_cancel_tells_the_groups_and_stops_escalation)
{
    rs_stack *s = &rs;
    const char *env[] = {"ESS_ACK_TIMEOUT=5s", NULL};
    rs_start(s, env);
    char local[RS_ID_MAX], command[RS_ID_MAX], first[RS_ID_MAX], second[RS_ID_MAX];
    char local_group[RS_ID_MAX], command_group[RS_ID_MAX];
    rs_user(s, "officer local", "th", local, sizeof(local));
    rs_user(s, "officer command", "th", command, sizeof(command));
    rs_user(s, "citizen first", "th", first, sizeof(first));
    rs_user(s, "citizen second", "th", second, sizeof(second));
    const char *local_args[] = {"--province", "TH50", NULL};
    const char *command_args[] = {"--province", "TH50", "--kind", "provincial_command", NULL};
    invite_and_bind(s, local_args, "local", local, local_group, sizeof(local_group));
    invite_and_bind(s, command_args, "command", command, command_group, sizeof(command_group));
    long long id = rs_report(s, first, CHIANG_MAI_LAT, CHIANG_MAI_LON, "0812345678");
    char *case_number = case_number_of(s, id);
    rs_wait_bot(s, local_group, FLEX, 1);
    wait_sql_id(s, "SELECT count(*) FROM incidents WHERE id = {id} AND ack_deadline IS NOT NULL",
                id, 1);
    /* The reporter cancels from the quick reply of the answer (the first item). */
    char path[128];
    snprintf(path, sizeof(path), "/users/%s/tap", first);
    cJSON_Delete(rs_emu(s, "POST", path, "{\"index\":1}", 202));
    rs_wait_bot(s, local_group, "ผู้แจ้งยกเลิก", 1);
    assert_int_equal(sql_id(s,
                            "SELECT count(*) FROM incidents WHERE id = {id} AND status = "
                            "'cancelled' AND ack_deadline IS NULL",
                            id),
                     1);
    assert_int_equal(rs_sql(s, "SELECT count(*) FROM conversations WHERE state = 'submitted'"), 0);
    /* A second case escalates to level 1 meanwhile; the cancelled one never does. */
    long long other = rs_report(s, second, CHIANG_MAI_LAT, CHIANG_MAI_LON, "0898765432");
    char *other_number = case_number_of(s, other);
    rs_wait_bot(s, command_group, other_number, 1);
    assert_int_equal(rs_bot_count(s, command_group, case_number), 0);
    char reminder[96];
    snprintf(reminder, sizeof(reminder), "ยังไม่มีผู้รับเรื่อง %s", case_number);
    assert_int_equal(rs_bot_count(s, local_group, reminder), 0);
    assert_int_equal(sql_id(s, "SELECT escalation_level FROM incidents WHERE id = {id}", id), 0);
    free(case_number);
    free(other_number);
    expect_no_dead_letters(s);
}

ESS_TEST_MAIN(NULL, rs_teardown)
