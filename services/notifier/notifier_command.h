/* notifier_command: the send commands of stream LINE_OUT and the request bodies made of them.
 *
 * A command (proto/schemas/line.out.reply|push.schema.json) is
 *   {"command_id": "...", "reply_token"?: "...", "to"?: "U…|C…", "fallback_to"?: "U…",
 *    "notification_disabled"?: bool, "messages": [1..5 LINE message objects]}
 * on subject line.out.reply or line.out.push. The messages go to LINE as they are (LINE
 * validates them; what it refuses is dead-lettered with its reason). Ids and tokens end up in
 * JSON and HTTP headers, so their alphabet is checked here: LINE ids are letters and digits,
 * reply tokens letters, digits, '-' and '_'.
 *
 * Retry keys: X-Line-Retry-Key is a UUID derived from the command id (vault_uuid_from_name,
 * namespace "ess.retry-key"), so every attempt of every replica sends the same key; the push
 * that replaces a failed reply derives its own from command_id + ".fallback".
 *
 * Pure functions; thread-safe. */
#ifndef NOTIFIER_COMMAND_H
#define NOTIFIER_COMMAND_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"
#include "vault.h"

#define NOTIFIER_COMMAND_ID_MAX 120
#define NOTIFIER_TARGET_MAX 64
#define NOTIFIER_REPLY_TOKEN_MAX 256
#define NOTIFIER_MESSAGES_MAX 5
#define NOTIFIER_COMMAND_BYTES_MAX (1024 * 1024)
#define NOTIFIER_RETRY_KEY_NAMESPACE "ess.retry-key"

typedef enum notifier_endpoint {
    NOTIFIER_EP_REPLY,
    NOTIFIER_EP_PUSH,
    NOTIFIER_EP_PROFILE, /* GET a profile (notifier_profile.h); the request names the path */
} notifier_endpoint;
#define NOTIFIER_ENDPOINT_COUNT 3

typedef struct notifier_command {
    notifier_endpoint endpoint; /* from the subject */
    char command_id[NOTIFIER_COMMAND_ID_MAX + 1];
    char reply_token[NOTIFIER_REPLY_TOKEN_MAX + 1]; /* "" = none */
    char to[NOTIFIER_TARGET_MAX + 1];               /* "" = none */
    char fallback_to[NOTIFIER_TARGET_MAX + 1];      /* "" = none */
    bool notification_disabled;
    char *messages; /* compact JSON array text, heap (notifier_command_done frees) */
    size_t messages_len;
} notifier_command;

/* "reply" / "push" / "profile". Static storage. */
const char *notifier_endpoint_name(notifier_endpoint endpoint);

/* Parses one LINE_OUT message. ST_INVALID (with a reason naming the field, never a value)
 * when the subject is not line.out.reply|push or the body breaks the schema: a push needs
 * `to`; a reply needs `reply_token` or a target to fall back to. On ST_OK the caller owns
 * ret_command's heap parts (notifier_command_done). */
st_code notifier_command_parse(const char *subject, const char *data, size_t len,
                               notifier_command *ret_command, st_error *err);
void notifier_command_done(notifier_command *command); /* accepts a zeroed command */

/* Who a failed reply goes to instead: fallback_to, else to, else "" (no fallback). Borrowed. */
const char *notifier_command_fallback_target(const notifier_command *command);

/* Request bodies. messages: a JSON array text (len bytes). *ret_body is heap, NUL-terminated
 * (caller frees). The target / token must have passed notifier_command_parse's checks. */
st_code notifier_body_push(const char *to, bool notification_disabled, const char *messages,
                           size_t messages_len, char **ret_body, size_t *ret_len, st_error *err);
st_code notifier_body_reply(const char *reply_token, bool notification_disabled,
                            const char *messages, size_t messages_len, char **ret_body,
                            size_t *ret_len, st_error *err);

/* The X-Line-Retry-Key of a command's push (fallback false) or of the push replacing its
 * reply (fallback true). */
void notifier_retry_key(const char *command_id, bool fallback, char ret_key[VAULT_UUID_TEXT]);

/* True for a LINE user/group/room id as the notifier accepts it: 1..64 letters and digits. */
bool notifier_target_valid(const char *target);

#endif
