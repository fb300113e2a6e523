/* notifier_service: the notifier's state, its JetStream handlers and the svc hooks.
 *
 * Flow of one delivery (LINE_OUT command, ess.incident.routed or ess.incident.escalated):
 *   consumer thread: parse (and for a routed event read the incident, render the card) →
 *     bus_hold → one "work" with one request per LINE call (a command: 1; a card: one per
 *     group of the first level) → notifier_sender_submit → BUS_DEFER;
 *   sender thread: each answer is classified (notifier_policy); a refused or failed reply
 *     turns into a push to the same user with its own retry key; when every request of the
 *     work has a final answer the delivery is settled once: ack (all delivered), dead letter
 *     with LINE's reason (some refused for good), or nak with an exponential, jittered delay
 *     (some failed for now: JetStream redelivers it, and the same retry keys make LINE answer
 *     409 for what already went out).
 * A profile look-up (line.out.profile) is one GET; its answer (or LINE's 404) is published to
 * LINE_IN as an "ess.profile" event (notifier_profile.h), and the delivery is settled when
 * JetStream stored it.
 * Back-pressure: svc asks notifier_capacity before each fetch; it answers how many more
 * deliveries may be held (ESS_NOTIFIER_QUEUE minus those held), so a slow or throttling LINE
 * stops the fetching instead of growing memory.
 * Held deliveries are kept alive: every ack_wait/3 the sender thread tells JetStream they are
 * in progress, so a long queue or a slow LINE does not cause redeliveries.
 * On SIGTERM: consumers stop fetching, the sender finishes what it holds (up to half of
 * ESS_DRAIN_TIMEOUT), the rest is nak'ed at once for another replica. */
#ifndef NOTIFIER_SERVICE_H
#define NOTIFIER_SERVICE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"
#include "notifier_sender.h"
#include "svc.h"
#include "vault.h"

typedef struct notifier_config {
    char *channel_token;
    char *channel_secret; /* ESS_LINE_CHANNEL_SECRET: line.in subject pseudonyms */
    char *api_base;
    cfg_key data_key;
    int64_t queue_max;
    int64_t concurrency;
    int64_t connect_timeout_ms;
    int64_t request_timeout_ms;
    int64_t rate_limit;
    int64_t backoff_min_ms;
    int64_t backoff_max_ms;
    int64_t reply_max_age_ms;
} notifier_config;

typedef struct notifier_work notifier_work;

typedef struct notifier_metrics {
    met_counter *sent[NOTIFIER_ENDPOINT_COUNT]; /* by endpoint: delivered (2xx, 409 = already;
                                                   profile: answered and published) */
    met_counter *fallbacks;     /* replies replaced by a push */
    met_counter *retried;       /* deliveries nak'ed for a later attempt */
    met_counter *dead_lettered; /* deliveries dead-lettered */
    met_counter *cards;         /* responder cards rendered */
    met_counter *profiles_missing; /* profile look-ups LINE answered 404 */
    met_histogram *latency[NOTIFIER_ENDPOINT_COUNT]; /* LINE's answer time by endpoint */
    met_gauge *held;            /* deliveries held */
    met_gauge *in_flight;       /* requests in flight */
    met_gauge *queued;          /* requests waiting for a slot or a token */
} notifier_metrics;

typedef struct notifier_service {
    notifier_config config; /* filled by cfg from the table in main.c */
    svc *runtime;
    vault_keys keys;
    vault_pseudonym_key subject_key; /* line.in subjects of profile answers */
    notifier_sender *sender;
    notifier_metrics metrics;
    int64_t heartbeat_ms; /* in-progress signal period for held deliveries */
    bool curl_ready;

    pthread_mutex_t works_lock; /* guards the list and every work's settlement state */
    notifier_work *works;       /* held deliveries, doubly linked */
    atomic_long held;
    atomic_llong last_auth_log_ms;
    atomic_ullong random_seed;
} notifier_service;

/* svc hooks and consumer callbacks (closure = notifier_service *). */
st_code notifier_init(svc *s, void *closure, st_error *err);
void notifier_stop(svc *s, void *closure);
void notifier_fini(svc *s, void *closure);
int notifier_capacity(void *closure);
void notifier_handle_out(const bus_delivery *delivery, bus_outcome *outcome, void *closure);
void notifier_handle_routed(const bus_delivery *delivery, bus_outcome *outcome, void *closure);
void notifier_handle_escalated(const bus_delivery *delivery, bus_outcome *outcome, void *closure);

#endif
