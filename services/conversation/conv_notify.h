/* conv_notify: messages the responder side sends, as commands on the outbox (issue 7).
 *
 * - to a case's groups (from incident_targets, migration 0006): those notified so far (levels
 *   up to incidents.escalation_level), one level, or the group that took the case; only
 *   groups the bot is still in (team_groups.active); one push per group with command id
 *   "push.<key>.<group id>", so a repeated step adds nothing;
 * - to the reporter: a silent push of a catalogue message in the conversation's language
 *   (the LINE id opened from incidents.reporter_id_encrypted; nothing when it was erased);
 * - line.out.profile: asks ess-notifier to look a LINE user (or a group member) up; the
 *   answer comes back on LINE_IN as an "ess.profile" event (conv_event.h).
 * Every command is sealed on the outbox. All in the caller's open transaction; blocking. */
#ifndef CONV_NOTIFY_H
#define CONV_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "conv_catalog.h"
#include "conv_team.h"
#include "db.h"
#include "status.h"
#include "vault.h"

#define CONV_SUBJECT_PROFILE "line.out.profile"
#define CONV_PROFILE_COMMAND_ID_MAX 56 /* schema: the answer's event id adds ".answer" (<= 64) */

typedef enum conv_notify_scope {
    CONV_NOTIFY_NOTIFIED, /* levels 0..escalation_level */
    CONV_NOTIFY_LEVEL,    /* one level */
    CONV_NOTIFY_TAKER,    /* the group that acknowledged the case */
} conv_notify_scope;

/* Pushes messages (a borrowed array of 1..5 LINE messages) to the case's groups of scope
 * (level is used by CONV_NOTIFY_LEVEL), except except_group (NULL = none), not silenced:
 * officers need to hear it. *ret_sent = groups addressed (repeats included). */
st_code conv_notify_groups(db *d, const vault_keys *keys, int64_t incident_id,
                           conv_notify_scope scope, int level, const char *except_group,
                           const cJSON *messages, const char *key, size_t *ret_sent, st_error *err);

/* What a reporter added to a case (its timeline entry seq) for the case's groups: the group
 * that took it, else every group notified so far; command id "push.info.<incident>.<seq>.<group>".
 * msg is CONV_TEAM_MSG_INFO_TEXT (with text), _INFO_LOCATION (with location: the notice and a
 * pin), _INFO_STICKER or _INFO_IMAGE; text and location are borrowed. It first locks the
 * incident row (FOR UPDATE; callers hold the reporter's conversation row before, as every
 * writer does): so it and the recording of the routed targets (conv_escalation_record) run one
 * after the other, and whichever runs second forwards — the entry reaches the groups even when
 * the reporter wrote before the routing was recorded, and the same ids make a repeat send
 * nothing. *ret_sent = groups addressed. */
st_code conv_notify_info(db *d, const vault_keys *keys, int64_t incident_id,
                         const char *case_number, int64_t seq, conv_team_msg msg, const char *text,
                         const conv_location *location, size_t *ret_sent, st_error *err);

/* A silent push of msg (rendered with the case number and id) to the case's reporter, command
 * id "push.<key>". *ret_added false when there was nobody to push to or it was there. */
st_code conv_notify_reporter(db *d, const vault_keys *keys, int64_t incident_id, conv_msg msg,
                             const char *key, bool *ret_added, st_error *err);

/* line.out.profile {"command_id", "user_id", "group_id"?, "timestamp", "context"}.
 * command_id <= CONV_PROFILE_COMMAND_ID_MAX; context <= 64 of [A-Za-z0-9._-]. */
st_code conv_notify_profile_request(db *d, const vault_keys *keys, const char *command_id,
                                    const char *user_id, const char *group_id, int64_t timestamp_ms,
                                    const char *context, bool *ret_added, st_error *err);

/* One message in an array (takes ownership of message; NULL when message is NULL). */
cJSON *conv_notify_one(cJSON *message);

#endif
