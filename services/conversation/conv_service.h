/* conv_service: the runtime side of ess-conversation — configuration, the LINE_IN handler
 * (citizens in 1:1 chats, teams in groups), the ess.incident.routed handler (targets and the
 * first escalation timer), the outbox relay, the draft-expiry sweep and the escalation
 * thread. main.c hands these hooks to svc_main. */
#ifndef CONV_SERVICE_H
#define CONV_SERVICE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "cfg.h"
#include "conv_store.h"
#include "metrics.h"
#include "outbox.h"
#include "svc.h"
#include "vault.h"

typedef struct conv_config {
    cfg_key data_key;               /* ESS_DATA_KEY */
    int64_t draft_ttl_ms;           /* ESS_DRAFT_TTL */
    int64_t reports_per_hour;       /* ESS_REPORTS_PER_HOUR */
    int64_t reply_token_max_age_ms; /* ESS_REPLY_TOKEN_MAX_AGE */
    int64_t sweep_interval_ms;      /* ESS_DRAFT_SWEEP_INTERVAL */
    int64_t ack_timeout_ms;         /* ESS_ACK_TIMEOUT */
    int64_t escalation_scan_ms;     /* ESS_ESCALATION_SCAN_INTERVAL */
    int64_t last_level_reminders;   /* ESS_ESCALATION_LAST_REMINDERS */
    char *failpoint;                /* ESS_CONVERSATION_FAILPOINT (tests) */
    int64_t failpoint_at;           /* ESS_CONVERSATION_FAILPOINT_AT */
} conv_config;

typedef enum conv_failpoint {
    CONV_FAILPOINT_NONE = 0,
    CONV_FAILPOINT_BEFORE_COMMIT, /* SIGKILL inside the transaction, everything written */
    CONV_FAILPOINT_AFTER_COMMIT,  /* SIGKILL after the commit, before the ack and the kick */
} conv_failpoint;

typedef struct conv_service {
    conv_config config;
    svc *runtime;
    vault_keys keys;
    conv_store_config store;
    outbox_relay *relay;
    conv_failpoint failpoint;
    _Atomic int64_t failpoint_hits;

    pthread_t sweeper;
    bool sweeper_started;
    pthread_mutex_t sweeper_lock;
    pthread_cond_t sweeper_wake;
    bool sweeper_stopping;
    pthread_t escalator;
    bool escalator_started;

    met_counter *events_applied, *events_duplicate, *events_late, *events_ignored,
        *events_rejected, *events_retried, *incidents_created, *drafts_expired;
    met_counter *acknowledged, *escalations, *reminders, *groups_bound, *routed_recorded;
} conv_service;

st_code conv_init(svc *s, void *closure, st_error *err);
void conv_stop(svc *s, void *closure);
void conv_fini(svc *s, void *closure);
void conv_handle_line_event(const bus_delivery *delivery, bus_outcome *outcome, void *closure);
void conv_handle_routed(const bus_delivery *delivery, bus_outcome *outcome, void *closure);

#endif
