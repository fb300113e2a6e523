/* notifier_profile: profile look-ups for ess-conversation (proto/schemas/line.out.profile).
 *
 * Only the notifier calls LINE, so the conversation asks it for a profile with a command on
 * LINE_OUT (subject line.out.profile):
 *   {"command_id", "user_id", "group_id"?, "timestamp", "context"}
 * The notifier GETs /v2/bot/profile/{user_id}, or /v2/bot/group/{group_id}/member/{user_id}
 * for a group member, and publishes the answer to LINE_IN as a synthetic event on the subject
 * a LINE event of that source would have (line.in.user.<user_id> / line.in.group.<group_id>),
 * so it reaches the conversation in the same stream, ordered with the user's (or group's)
 * other events, encrypted at rest like every LINE_IN event:
 *   {"type": "ess.profile", "webhookEventId": "<command_id>.answer", "timestamp": <command's>,
 *    "mode": "active", "deliveryContext": {"isRedelivery": false},
 *    "source": {"type": "user", "userId"} | {"type": "group", "groupId", "userId"},
 *    "context": "<command's>", "profile": {"language"?, "displayName"?}}
 * msg-id = webhookEventId, so a repeated look-up (redelivery, crash) is stored once by
 * JetStream and applied once by the conversation (processed_events). "profile" is absent when
 * LINE answered 404 (not a follower, not a member, left the group). A 1:1 profile's
 * displayName is left out on purpose: the conversation uses a citizen's language only, and a
 * reporter's name is personal data nobody downstream needs; a group member's name is the
 * officer who acted, recorded on the case's timeline.
 *
 * Pure; thread-safe. */
#ifndef NOTIFIER_PROFILE_H
#define NOTIFIER_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "vault.h"

#define NOTIFIER_PROFILE_SUBJECT "line.out.profile"
#define NOTIFIER_PROFILE_EVENT_TYPE "ess.profile"
#define NOTIFIER_PROFILE_ID_MAX 56
#define NOTIFIER_PROFILE_CONTEXT_MAX 64
#define NOTIFIER_PROFILE_PATH_MAX 192
#define NOTIFIER_PROFILE_SUBJECT_MAX 96
#define NOTIFIER_PROFILE_EVENT_ID_MAX (NOTIFIER_PROFILE_ID_MAX + 8)

typedef struct notifier_profile_command {
    char command_id[NOTIFIER_PROFILE_ID_MAX + 1];
    char user_id[65];
    char group_id[65]; /* "" = a 1:1 profile */
    int64_t timestamp_ms;
    char context[NOTIFIER_PROFILE_CONTEXT_MAX + 1];
} notifier_profile_command;

/* Parses a line.out.profile command. ST_INVALID with a reason naming the field (never a
 * value) when it breaks the schema. */
st_code notifier_profile_parse(const char *data, size_t len, notifier_profile_command *ret_command,
                               st_error *err);

/* The API path to GET ("/v2/bot/profile/U…" or "/v2/bot/group/C…/member/U…"). */
void notifier_profile_path(const notifier_profile_command *command,
                           char ret_path[NOTIFIER_PROFILE_PATH_MAX]);

/* The synthetic LINE_IN event for LINE's answer: body (len bytes, LINE's JSON) when found,
 * ignored otherwise. *ret_json is heap (caller frees; it holds personal data: wipe it);
 * ret_subject and ret_msg_id are filled. The subject is the one ess-ingress gives the same
 * source's events: line.in.<user|group>.<pseudonym of the id> under subject_key (the channel
 * secret's VAULT_PURPOSE_LINE_IN_SUBJECT key; see ingress_webhook.h). ST_INVALID when a
 * found answer is not a JSON object. */
st_code notifier_profile_event(const vault_pseudonym_key *subject_key,
                               const notifier_profile_command *command, bool found,
                               const char *body, size_t len, char **ret_json,
                               char ret_subject[NOTIFIER_PROFILE_SUBJECT_MAX],
                               char ret_msg_id[NOTIFIER_PROFILE_EVENT_ID_MAX + 1], st_error *err);

#endif
