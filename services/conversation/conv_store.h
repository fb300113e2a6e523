/* conv_store: the dialogue's PostgreSQL side — one transaction per LINE event.
 *
 * conv_store_apply, inside the caller's open transaction (db_tx):
 *   1. outbox_mark_processed("conversation", webhookEventId): a repeat does nothing more;
 *   2. the conversation row, keyed by vault_lookup_hash("line.user", userId), created if new
 *      and locked (SELECT ... FOR UPDATE): two processes serialise on one user;
 *   3. conv_machine_apply with the user's reports of the past hour;
 *   4. the actions: the incident (case number from case_counters, Asia/Bangkok year + 543),
 *      its timeline (incident_events), and the events on the outbox (ess.incident.reported /
 *      .note / .status);
 *   5. the answer as a line.out.reply or line.out.push command on the outbox;
 *   6. the conversation row.
 * The caller commits and then kicks the outbox relay.
 *
 * Personal data: the phone is sealed (vault, context "incident.phone" in incidents,
 * "conversation.phone" in a draft), the reporter's user id is sealed ("reporter.id") and
 * hashed; text a reporter adds to a case is sealed ("incident.info"). No value is ever put in
 * an error message.
 *
 * Functions block on PostgreSQL; one db handle per thread (db.h). */
#ifndef CONV_STORE_H
#define CONV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conv_event.h"
#include "conv_machine.h"
#include "db.h"
#include "status.h"
#include "vault.h"

#define CONV_CONSUMER_NAME "conversation"
#define CONV_USER_HASH_PURPOSE "line.user"

typedef struct conv_store_config {
    const vault_keys *keys;         /* borrowed; outlives every call */
    int64_t draft_ttl_ms;           /* ESS_DRAFT_TTL */
    int reports_per_hour;           /* ESS_REPORTS_PER_HOUR */
    int64_t reply_token_max_age_ms; /* ESS_REPLY_TOKEN_MAX_AGE */
    int64_t ack_timeout_ms;         /* ESS_ACK_TIMEOUT: each escalation level's wait */
    int last_level_reminders;       /* ESS_ESCALATION_LAST_REMINDERS */
} conv_store_config;

typedef struct conv_apply_result {
    bool duplicate;          /* the event was applied before: nothing was done */
    bool late;               /* older than the newest event applied for the user */
    bool changed;            /* the conversation changed */
    int64_t incident_id;     /* an incident created now, else 0 */
    size_t outbox_added;     /* rows added to the outbox */
    conv_state_kind state;   /* the state after the event */
} conv_apply_result;

/* Applies one 1:1 (user source) event in d's open transaction (an "ess.profile" answer too:
 * it may set the language); now_ms is the wall clock
 * (reply-token freshness). ST_INVALID for an event without a user id. Other failures are the
 * database's (retry the whole transaction). */
st_code conv_store_apply(db *d, const conv_store_config *config, const conv_event *event,
                         int64_t now_ms, conv_apply_result *ret_result, st_error *err);

/* Expires at most limit drafts untouched past ESS_DRAFT_TTL, in d's open transaction: each
 * gets a silent push (command id "push.expire.<user>.<touched>", so a repeat adds nothing) and
 * becomes idle. Rows locked by a running event are skipped (the next sweep takes them).
 * *ret_expired = drafts expired. */
st_code conv_store_expire_due(db *d, const conv_store_config *config, int limit,
                              size_t *ret_expired, st_error *err);

#endif
