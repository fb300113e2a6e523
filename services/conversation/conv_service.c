#include "conv_service.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "conv_escalation.h"
#include "conv_event.h"
#include "conv_team_store.h"
#include "log.h"

#define SWEEP_BATCH 100
#define RETRY_DELAY_MS 1000
#define ESCALATION_ROUND_MAX 200 /* cases stepped per round before sleeping again */

static int64_t wall_clock_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Test hook: the process kills itself at the configured point of the Nth event reaching it,
 * exactly as an operator's SIGKILL would (no cleanup, no ack). */
static void maybe_fail(conv_service *service, conv_failpoint point)
{
    if (service->failpoint != point)
        return;
    if (atomic_fetch_add(&service->failpoint_hits, 1) + 1 == service->config.failpoint_at) {
        log_event(LOG_WARN, "conversation.failpoint", "failpoint reached: killing myself",
                  LOG_STR("failpoint", service->config.failpoint));
        raise(SIGKILL);
    }
}

/* ---- the LINE_IN handler ------------------------------------------------------------------- */

typedef struct apply_call {
    conv_service *service;
    const conv_event *event;
    int64_t now_ms;
    conv_apply_result result;     /* a citizen's event */
    conv_team_result team_result; /* a group's event */
} apply_call;

static st_code apply_in_transaction(db *d, void *closure, st_error *err)
{
    apply_call *call = closure;
    memset(&call->result, 0, sizeof(call->result));
    memset(&call->team_result, 0, sizeof(call->team_result));
    st_code status = call->event->source == CONV_SOURCE_GROUP
                         ? conv_team_apply(d, &call->service->store, call->event, call->now_ms,
                                           &call->team_result, err)
                         : conv_store_apply(d, &call->service->store, call->event, call->now_ms,
                                            &call->result, err);
    if (status == ST_OK)
        maybe_fail(call->service, CONV_FAILPOINT_BEFORE_COMMIT);
    return status;
}

static void reject(bus_outcome *outcome, const char *reason)
{
    outcome->verdict = BUS_REJECT;
    snprintf(outcome->reason, sizeof(outcome->reason), "%.*s", (int)sizeof(outcome->reason) - 1,
             reason);
}

/* After a group event committed: the relay, metrics, one log line for what matters. */
static void note_team_event(conv_service *service, const conv_event *event,
                            const conv_team_result *result)
{
    if (result->outbox_added > 0)
        outbox_relay_kick(service->relay);
    met_counter_add(result->duplicate ? service->events_duplicate : service->events_applied, 1);
    if (result->duplicate)
        return;
    if (strcmp(result->what, "take") == 0 && result->changed_case)
        met_counter_add(service->acknowledged, 1);
    if (strcmp(result->what, "bind") == 0 && result->team_id > 0)
        met_counter_add(service->groups_bound, 1);
    bool notable = result->changed_case || result->team_id > 0 ||
                   strcmp(result->what, "join") == 0 || strcmp(result->what, "leave") == 0;
    log_event(notable ? LOG_INFO : LOG_DEBUG, "conversation.team", "group event applied",
              LOG_STR("what", result->what), LOG_STR("event_id", event->webhook_event_id),
              LOG_INT("incident_id", result->incident_id), LOG_INT("team_id", result->team_id),
              LOG_INT("changed_case", result->changed_case),
              LOG_INT("outbox", (int64_t)result->outbox_added));
}

void conv_handle_line_event(const bus_delivery *delivery, bus_outcome *outcome, void *closure)
{
    conv_service *service = closure;
    conv_event *event = malloc(sizeof(*event));
    st_error err = {0};
    if (event == NULL) {
        outcome->verdict = BUS_RETRY;
        outcome->retry_delay_ms = RETRY_DELAY_MS;
        snprintf(outcome->reason, sizeof(outcome->reason), "out of memory");
        return;
    }
    if (conv_event_parse(delivery->data, delivery->len, event, &err) != ST_OK) {
        met_counter_add(service->events_rejected, 1);
        log_event(LOG_WARN, "conversation.invalid", "LINE event refused", LOG_ERR(&err),
                  LOG_INT("stream_seq", (int64_t)delivery->stream_seq));
        reject(outcome, err.message);
        goto cleanup;
    }
    /* Citizens talk in 1:1 chats, teams in groups (conv_team_store.c); rooms, channel-level
     * kinds and message kinds we do not handle have no dialogue. */
    bool group = event->source == CONV_SOURCE_GROUP && event->group_id[0] != '\0';
    bool user = event->source == CONV_SOURCE_USER && event->user_id[0] != '\0';
    if (event->kind == CONV_EV_IGNORED || (!group && !user)) {
        met_counter_add(service->events_ignored, 1);
        goto cleanup;
    }
    apply_call call = {.service = service, .event = event, .now_ms = wall_clock_ms()};
    st_code status = db_tx(svc_db(service->runtime), 3, apply_in_transaction, &call, &err);
    if (status != ST_OK) {
        if (status == ST_INVALID || status == ST_LIMIT) {
            met_counter_add(service->events_rejected, 1);
            log_event(LOG_ERROR, "conversation.apply", "event cannot be applied: dead-lettered",
                      LOG_ERR(&err), LOG_STR("event_id", event->webhook_event_id));
            reject(outcome, err.message);
        } else {
            met_counter_add(service->events_retried, 1);
            log_event(LOG_WARN, "conversation.apply", "event not applied yet, will retry",
                      LOG_ERR(&err), LOG_STR("event_id", event->webhook_event_id),
                      LOG_INT("delivered", (int64_t)delivery->delivered));
            outcome->verdict = BUS_RETRY;
            outcome->retry_delay_ms = RETRY_DELAY_MS;
            snprintf(outcome->reason, sizeof(outcome->reason), "%.*s",
                     (int)sizeof(outcome->reason) - 1, err.message);
        }
        goto cleanup;
    }
    maybe_fail(service, CONV_FAILPOINT_AFTER_COMMIT);
    if (group) {
        note_team_event(service, event, &call.team_result);
        goto cleanup;
    }
    if (call.result.outbox_added > 0)
        outbox_relay_kick(service->relay);
    if (call.result.duplicate) {
        met_counter_add(service->events_duplicate, 1);
    } else {
        met_counter_add(service->events_applied, 1);
        if (call.result.late)
            met_counter_add(service->events_late, 1);
    }
    if (call.result.incident_id > 0) {
        met_counter_add(service->incidents_created, 1);
        log_event(LOG_INFO, "conversation.reported", "incident reported",
                  LOG_INT("incident_id", call.result.incident_id));
    }
    log_event(LOG_DEBUG, "conversation.applied", "event applied",
              LOG_STR("event_id", event->webhook_event_id),
              LOG_STR("state", conv_state_kind_name(call.result.state)),
              LOG_INT("duplicate", call.result.duplicate), LOG_INT("late", call.result.late),
              LOG_INT("outbox", (int64_t)call.result.outbox_added));
cleanup:
    OPENSSL_cleanse(event, sizeof(*event)); /* typed phone numbers and texts */
    free(event);
}

/* ---- the draft-expiry sweep ---------------------------------------------------------------- */

typedef struct sweep_call {
    conv_service *service;
    size_t expired;
} sweep_call;

static st_code sweep_in_transaction(db *d, void *closure, st_error *err)
{
    sweep_call *call = closure;
    call->expired = 0;
    return conv_store_expire_due(d, &call->service->store, SWEEP_BATCH, &call->expired, err);
}

/* Waits up to ms or until stopping; true when stopping. */
static bool sweeper_wait(conv_service *service, int64_t ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&service->sweeper_lock);
    while (!service->sweeper_stopping)
        if (pthread_cond_timedwait(&service->sweeper_wake, &service->sweeper_lock, &deadline) != 0)
            break;
    bool stopping = service->sweeper_stopping;
    pthread_mutex_unlock(&service->sweeper_lock);
    return stopping;
}

static void *sweeper_main(void *arg)
{
    conv_service *service = arg;
    db *d = NULL;
    db_options options = {.dsn = svc_common(service->runtime)->pg_dsn,
                          .application_name = "ess-conversation-sweep"};
    int failures = 0;
    while (!sweeper_wait(service, service->config.sweep_interval_ms)) {
        st_error err = {0};
        if (d == NULL && db_connect(&options, &d, &err) != ST_OK) {
            d = NULL;
            if (failures++ % 20 == 0)
                log_event(LOG_WARN, "conversation.sweep", "cannot reach PostgreSQL for the sweep",
                          LOG_ERR(&err));
            continue;
        }
        sweep_call call = {.service = service};
        /* A full batch: more may be due, go again at once. */
        do {
            if (db_tx(d, 3, sweep_in_transaction, &call, &err) != ST_OK) {
                if (failures++ % 20 == 0)
                    log_event(LOG_WARN, "conversation.sweep", "draft sweep failed, will retry",
                              LOG_ERR(&err));
                break;
            }
            failures = 0;
            if (call.expired > 0) {
                met_counter_add(service->drafts_expired, call.expired);
                outbox_relay_kick(service->relay);
                log_event(LOG_INFO, "conversation.expired", "unfinished reports expired",
                          LOG_INT("count", (int64_t)call.expired));
            }
        } while (call.expired == SWEEP_BATCH);
    }
    db_destroy(d);
    return NULL;
}

/* ---- ess.incident.routed: targets and the first timer -------------------------------------- */

typedef struct routed_call {
    conv_service *service;
    const bus_delivery *delivery;
    conv_routed_result result;
} routed_call;

static st_code record_in_transaction(db *d, void *closure, st_error *err)
{
    routed_call *call = closure;
    memset(&call->result, 0, sizeof(call->result));
    return conv_escalation_record(d, &call->service->store, call->delivery->data,
                                  call->delivery->len, &call->result, err);
}

void conv_handle_routed(const bus_delivery *delivery, bus_outcome *outcome, void *closure)
{
    conv_service *service = closure;
    routed_call call = {.service = service, .delivery = delivery};
    st_error err = {0};
    st_code status = db_tx(svc_db(service->runtime), 3, record_in_transaction, &call, &err);
    if (status == ST_INVALID) {
        log_event(LOG_ERROR, "conversation.routed", "routed event refused: dead-lettered",
                  LOG_ERR(&err), LOG_INT("stream_seq", (int64_t)delivery->stream_seq));
        reject(outcome, err.message);
        return;
    }
    if (status != ST_OK) {
        log_event(LOG_WARN, "conversation.routed", "routed event not recorded yet, will retry",
                  LOG_ERR(&err), LOG_INT("delivered", (int64_t)delivery->delivered));
        outcome->verdict = BUS_RETRY;
        outcome->retry_delay_ms = RETRY_DELAY_MS;
        snprintf(outcome->reason, sizeof(outcome->reason), "%.*s", (int)sizeof(outcome->reason) - 1,
                 err.message);
        return;
    }
    if (call.result.outbox_added > 0)
        outbox_relay_kick(service->relay);
    if (!call.result.duplicate)
        met_counter_add(service->routed_recorded, 1);
    log_event(LOG_DEBUG, "conversation.routed", "targets recorded",
              LOG_INT("incident_id", call.result.incident_id),
              LOG_INT("targets", (int64_t)call.result.targets),
              LOG_INT("timer", call.result.timer_started),
              LOG_INT("duplicate", call.result.duplicate));
}

/* ---- the escalation thread ------------------------------------------------------------------ */

typedef struct step_call {
    conv_service *service;
    conv_step_result result;
} step_call;

static st_code step_in_transaction(db *d, void *closure, st_error *err)
{
    step_call *call = closure;
    memset(&call->result, 0, sizeof(call->result));
    return conv_escalation_step(d, &call->service->store, &call->result, err);
}

static void *escalator_main(void *arg)
{
    conv_service *service = arg;
    db *d = NULL;
    db_options options = {.dsn = svc_common(service->runtime)->pg_dsn,
                          .application_name = "ess-conversation-escalation"};
    int failures = 0;
    while (!sweeper_wait(service, service->config.escalation_scan_ms)) {
        st_error err = {0};
        if (d == NULL && db_connect(&options, &d, &err) != ST_OK) {
            d = NULL;
            if (failures++ % 20 == 0)
                log_event(LOG_WARN, "conversation.escalation",
                          "cannot reach PostgreSQL for escalation", LOG_ERR(&err));
            continue;
        }
        /* One case per transaction, until none is due (bounded per round). */
        for (int round = 0; round < ESCALATION_ROUND_MAX; round++) {
            step_call call = {.service = service};
            if (db_tx(d, 3, step_in_transaction, &call, &err) != ST_OK) {
                if (failures++ % 20 == 0)
                    log_event(LOG_WARN, "conversation.escalation",
                              "escalation step failed, will retry", LOG_ERR(&err));
                break;
            }
            failures = 0;
            if (!call.result.found)
                break;
            outbox_relay_kick(service->relay);
            bool escalated = call.result.to_level != call.result.from_level;
            met_counter_add(escalated ? service->escalations : service->reminders, 1);
            log_event(LOG_INFO, "conversation.escalation",
                      escalated ? "not acknowledged in time: escalated to the next level"
                                : "not acknowledged in time: reminded",
                      LOG_INT("incident_id", call.result.incident_id),
                      LOG_INT("from_level", call.result.from_level),
                      LOG_INT("to_level", call.result.to_level),
                      LOG_INT("exhausted", call.result.exhausted));
        }
    }
    db_destroy(d);
    return NULL;
}

/* ---- hooks --------------------------------------------------------------------------------- */

static void relay_error(const st_error *err, void *closure)
{
    (void)closure;
    log_event(LOG_WARN, "outbox.relay", "outbox relay round failed, will retry", LOG_ERR(err));
}

static void counter(conv_service *service, const char *name, const char *help, const char *labels,
                    met_counter **ret)
{
    met_counter_get(svc_metrics(service->runtime), name, help, labels, ret);
}

st_code conv_init(svc *s, void *closure, st_error *err)
{
    conv_service *service = closure;
    service->runtime = s;
    vault_keys_derive(service->config.data_key.bytes, &service->keys);
    service->store = (conv_store_config){
        .keys = &service->keys,
        .draft_ttl_ms = service->config.draft_ttl_ms,
        .reports_per_hour = (int)service->config.reports_per_hour,
        .reply_token_max_age_ms = service->config.reply_token_max_age_ms,
        .ack_timeout_ms = service->config.ack_timeout_ms,
        .last_level_reminders = (int)service->config.last_level_reminders,
    };
    /* Without ESS_FAILPOINTS the variables are not in the table and the string stays NULL. */
    const char *failpoint = service->config.failpoint ? service->config.failpoint : "none";
    service->failpoint = strcmp(failpoint, "before_commit") == 0  ? CONV_FAILPOINT_BEFORE_COMMIT
                         : strcmp(failpoint, "after_commit") == 0 ? CONV_FAILPOINT_AFTER_COMMIT
                                                                  : CONV_FAILPOINT_NONE;
    static const char events_help[] = "LINE events handled by the conversation, by result";
    counter(service, "ess_conversation_events_total", events_help, "result=\"applied\"",
            &service->events_applied);
    counter(service, "ess_conversation_events_total", events_help, "result=\"duplicate\"",
            &service->events_duplicate);
    counter(service, "ess_conversation_events_total", events_help, "result=\"late\"",
            &service->events_late);
    counter(service, "ess_conversation_events_total", events_help, "result=\"ignored\"",
            &service->events_ignored);
    counter(service, "ess_conversation_events_total", events_help, "result=\"rejected\"",
            &service->events_rejected);
    counter(service, "ess_conversation_events_total", events_help, "result=\"retried\"",
            &service->events_retried);
    counter(service, "ess_conversation_incidents_total", "incidents reported", NULL,
            &service->incidents_created);
    counter(service, "ess_conversation_drafts_expired_total",
            "unfinished reports expired after ESS_DRAFT_TTL", NULL, &service->drafts_expired);
    counter(service, "ess_conversation_acknowledged_total", "cases taken by a team's group", NULL,
            &service->acknowledged);
    static const char steps_help[] = "escalation steps of cases not acknowledged in time";
    counter(service, "ess_conversation_escalation_steps_total", steps_help, "kind=\"escalated\"",
            &service->escalations);
    counter(service, "ess_conversation_escalation_steps_total", steps_help, "kind=\"reminder\"",
            &service->reminders);
    counter(service, "ess_conversation_groups_bound_total", "LINE groups bound to a team", NULL,
            &service->groups_bound);
    counter(service, "ess_conversation_routed_total",
            "routed incidents whose targets were recorded", NULL, &service->routed_recorded);

    outbox_options relay_options = {.pg_dsn = svc_common(s)->pg_dsn,
                                    .application_name = "ess-conversation-outbox",
                                    .bus = svc_bus(s),
                                    .keys = &service->keys,
                                    .on_error = relay_error};
    st_code status = outbox_relay_start(&relay_options, &service->relay, err);
    if (status != ST_OK)
        return status;
    pthread_mutex_init(&service->sweeper_lock, NULL);
    pthread_cond_init(&service->sweeper_wake, NULL);
    if (pthread_create(&service->sweeper, NULL, sweeper_main, service) != 0)
        return st_fail(err, ST_INTERNAL, "cannot start the draft sweep thread");
    service->sweeper_started = true;
    if (pthread_create(&service->escalator, NULL, escalator_main, service) != 0)
        return st_fail(err, ST_INTERNAL, "cannot start the escalation thread");
    service->escalator_started = true;
    if (service->failpoint != CONV_FAILPOINT_NONE)
        log_event(LOG_WARN, "conversation.failpoint", "test failpoint armed",
                  LOG_STR("failpoint", failpoint), LOG_INT("at", service->config.failpoint_at));
    return ST_OK;
}

void conv_stop(svc *s, void *closure)
{
    (void)s;
    conv_service *service = closure;
    if (service->sweeper_started) {
        pthread_mutex_lock(&service->sweeper_lock);
        service->sweeper_stopping = true;
        pthread_cond_broadcast(&service->sweeper_wake);
        pthread_mutex_unlock(&service->sweeper_lock);
        pthread_join(service->sweeper, NULL);
        service->sweeper_started = false;
    }
    if (service->escalator_started) {
        pthread_join(service->escalator, NULL);
        service->escalator_started = false;
    }
    /* After the consumers and the sweep: its last round publishes what they committed. */
    outbox_relay_stop(service->relay);
    service->relay = NULL;
}

void conv_fini(svc *s, void *closure)
{
    conv_stop(s, closure);
    conv_service *service = closure;
    vault_keys_wipe(&service->keys);
}
