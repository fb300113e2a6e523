/* conv_team_store: a group event, in one PostgreSQL transaction (issue 7).
 *
 * conv_team_apply, inside the caller's open transaction (db_tx):
 *   1. outbox_mark_processed("conversation", webhookEventId): a repeat does nothing more;
 *   2. the group's team_groups row, created when the bot never saw the group, locked
 *      (FOR UPDATE), last_activity set;
 *   3. what the event means:
 *        join / leave            active, joined_at / left_at; the bot introduces itself
 *        memberJoined / Left     member_count
 *        "/ess bind CODE"        team_invites (hash, unused, not expired) → team_groups.team_id
 *        take / scene / close / outcome postbacks
 *                                the incident row (locked; for the outcome the reporter's
 *                                conversation first, the order every writer uses), its status
 *                                and time, the timeline, ess.incident.acknowledged | status |
 *                                closed on the outbox, the answer to the group, the other
 *                                groups told, the silent push to the reporter, the reporter's
 *                                conversation back to idle when closed;
 *        ess.profile (group)     the member's display name onto the timeline entry (and
 *                                incidents.acknowledged_by) the look-up was asked for.
 * A take is recorded at once with "a member of <team>" as the actor; the member's LINE
 * display name, when LINE gives a userId, is asked of ess-notifier in the same transaction
 * and replaces it when the answer arrives: an acknowledgement never waits on LINE's API.
 * A press on a case whose targets the conversation has not recorded yet (the card can race
 * the routed event) fails with ST_UNAVAILABLE: the event is retried.
 *
 * Blocking; the caller's db handle. */
#ifndef CONV_TEAM_STORE_H
#define CONV_TEAM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conv_event.h"
#include "conv_store.h"
#include "db.h"
#include "status.h"

typedef struct conv_team_result {
    bool duplicate;      /* applied before: nothing done */
    const char *what;    /* static: "join", "bind", "take", ... (logs, metrics) */
    int64_t incident_id; /* the case acted on, 0 = none */
    int64_t team_id;     /* bind: the team bound */
    bool changed_case;   /* the case's status changed */
    size_t outbox_added;
} conv_team_result;

st_code conv_team_apply(db *d, const conv_store_config *config, const conv_event *event,
                        int64_t now_ms, conv_team_result *ret_result, st_error *err);

#endif
