/* conv_escalation: no report waits unseen (issue 7).
 *
 * conv_escalation_record (consumer "conversation-routed" of ess.incident.routed), in the
 * caller's open transaction: processed_events ("conversation-routed", "routed.<incident>"),
 * the incident locked, its ordered targets copied into incident_targets, and, while nobody
 * took it, the first level's timer started: escalation_level = the lowest level,
 * ack_deadline = now() + ESS_ACK_TIMEOUT. A case the reporter cancelled before the routing
 * reached us gets the cancellation told to the groups that receive the card.
 *
 * conv_escalation_step (the escalation thread, every ESS_ESCALATION_SCAN_INTERVAL), one due
 * case per transaction: SELECT ... WHERE ack_deadline <= now() AND status IN ('new',
 * 'routed') ... FOR UPDATE SKIP LOCKED, then
 *   - a reminder (with a "รับเรื่อง" button) to the current level's groups;
 *   - when a higher level has a group the bot is in: escalation_level = that level, its own
 *     timer, and ess.incident.escalated naming the level's groups, for which ess-notifier
 *     renders and pushes the card (the card lives in one place, notifier_card.c);
 *   - at the last level: reminders every ESS_ACK_TIMEOUT, at most
 *     ESS_ESCALATION_LAST_REMINDERS, then no deadline (the console shows it unacknowledged);
 *   - every step on the timeline (kind escalated or reminder) and as ess.incident.escalated.
 * Deadlines live in PostgreSQL: a restart loses nothing; a take (which clears ack_deadline
 * under the same row lock) and a step never both happen; two processes never take the same
 * step (SKIP LOCKED, then the deadline moved). Command ids derive from escalation_step, so a
 * step repeated after a crash before commit sends nothing twice.
 *
 * Blocking; the caller's db handle. */
#ifndef CONV_ESCALATION_H
#define CONV_ESCALATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conv_store.h"
#include "db.h"
#include "status.h"

#define CONV_ROUTED_CONSUMER_NAME "conversation-routed"
#define CONV_ROUTED_TARGETS_MAX 64

typedef struct conv_routed_result {
    bool duplicate;
    int64_t incident_id;
    size_t targets; /* targets recorded */
    bool timer_started;
    size_t outbox_added;
} conv_routed_result;

/* ST_INVALID (dead letter) when data is not a routed event this service can use. */
st_code conv_escalation_record(db *d, const conv_store_config *config, const char *data, size_t len,
                               conv_routed_result *ret_result, st_error *err);

typedef struct conv_step_result {
    bool found; /* a due case was stepped */
    int64_t incident_id;
    int from_level, to_level; /* equal for a reminder only */
    bool exhausted;           /* the last level's reminders are used up: no more deadline */
    size_t outbox_added;
} conv_step_result;

st_code conv_escalation_step(db *d, const conv_store_config *config, conv_step_result *ret_result,
                             st_error *err);

#endif
