/* conv_reply: the send commands for the notifier (proto/schemas/line.out.reply|push).
 *
 *   line.out.reply  {"command_id": "reply.<key>", "reply_token": ..., "fallback_to": <user>,
 *                    "notification_disabled": true, "messages": [...]}
 *   line.out.push   {"command_id": "push.<key>", "to": <user>,
 *                    "notification_disabled": true, "messages": [...]}
 *
 * key is the webhookEventId of the event answered (or "expire.<...>" for the sweep), so the
 * command id, the Nats-Msg-Id and the notifier's X-Line-Retry-Key are fixed before the first
 * attempt and the same on every retry. Every push is silent (notification_disabled): a phone
 * that rings can endanger a reporter, and a reply's fallback push inherits the flag.
 *
 * Pure, thread-safe. */
#ifndef CONV_REPLY_H
#define CONV_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conv_event.h"
#include "conv_machine.h"
#include "status.h"

#define CONV_COMMAND_ID_MAX 121 /* schema: <= 120 */
#define CONV_SUBJECT_REPLY "line.out.reply"
#define CONV_SUBJECT_PUSH "line.out.push"

typedef struct conv_command {
    const char *subject;                  /* static: CONV_SUBJECT_REPLY or _PUSH */
    char command_id[CONV_COMMAND_ID_MAX];
    char *payload;                        /* heap JSON, NUL-terminated; conv_command_done */
    size_t payload_len;
} conv_command;

/* True when the event's reply token may still be used at now_ms: it has one, and the event
 * is at most max_age_ms old (LINE: tokens live about a minute). */
bool conv_reply_token_fresh(const conv_event *event, int64_t now_ms, int64_t max_age_ms);

/* Renders output->response (in language) into a command for user_id. reply_token non-empty:
 * a reply command with the user as fallback; else a push. ST_INVALID when there is nothing to
 * send or an argument breaks the schema's bounds. On ST_OK the caller owns ret_command's
 * payload (conv_command_done). */
st_code conv_reply_build(const conv_output *output, conv_lang language, const char *key,
                         const char *user_id, const char *reply_token,
                         conv_command *ret_command, st_error *err);

void conv_command_done(conv_command *command); /* frees the payload; accepts zeroed */

#endif
