#include "notifier_service.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "log.h"
#include "notifier_card.h"
#include "notifier_command.h"
#include "notifier_incident.h"
#include "notifier_policy.h"
#include "notifier_profile.h"
#include "notifier_routed.h"

#define AUTH_LOG_INTERVAL_MS 10000
#define PROFILE_PUBLISH_TIMEOUT_MS 5000
#define JOB_ID_MAX (NOTIFIER_COMMAND_ID_MAX + 16)

/* One LINE call of a held delivery. request.closure points back here. */
typedef struct notifier_job {
    notifier_request request;
    notifier_work *work;
    char command_id[JOB_ID_MAX]; /* retry keys derive from it; also names it in logs */
    char *body;                  /* the current request body (heap) */
    size_t body_len;
    char fallback_target[NOTIFIER_TARGET_MAX + 1]; /* replies: who gets the push instead */
    bool notification_disabled;
    notifier_profile_command *profile; /* profile look-ups (heap) */
    char path[NOTIFIER_PROFILE_PATH_MAX];
} notifier_job;

/* A held delivery and its jobs. */
struct notifier_work {
    notifier_service *service;
    bus_held *held;
    uint64_t delivered;
    int max_deliver;
    const char *kind; /* "command" | "card" */
    bool sensitive;   /* messages hold personal data (a card's phone): wiped when freed */
    char *messages;   /* JSON array text shared by the jobs (heap) */
    size_t messages_len;
    /* Guarded by service->works_lock. */
    int64_t last_progress_ms;
    size_t pending;
    bus_verdict verdict;
    int64_t retry_delay_ms;
    char reason[NOTIFIER_REASON_MAX];
    notifier_work *prev, *next;
    size_t job_count;
    notifier_job jobs[];
};

static int64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static int64_t wall_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

static uint64_t jitter_random(notifier_service *service)
{
    /* splitmix64 over a shared counter: jitter only, not security */
    uint64_t z = atomic_fetch_add(&service->random_seed, 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int64_t retry_delay(notifier_service *service, uint64_t delivered)
{
    return notifier_backoff_ms(delivered, service->config.backoff_min_ms,
                               service->config.backoff_max_ms, jitter_random(service));
}

/* prefix + text into out, cut at a UTF-8 boundary when too long (reasons are bounded). */
static void reason_copy(char *out, size_t size, const char *prefix, const char *text)
{
    size_t prefix_len = strnlen(prefix, size - 1);
    memcpy(out, prefix, prefix_len);
    size_t text_len = strnlen(text, size - 1 - prefix_len);
    while (text_len > 0 && text[text_len] != '\0' && ((unsigned char)text[text_len] & 0xC0) == 0x80)
        text_len--;
    memcpy(out + prefix_len, text, text_len);
    out[prefix_len + text_len] = '\0';
}

/* ---- works ---------------------------------------------------------------------------- */

static notifier_work *work_create(notifier_service *service, const bus_delivery *delivery,
                                  size_t job_count, const char *kind)
{
    notifier_work *work = calloc(1, sizeof(*work) + job_count * sizeof(notifier_job));
    if (work == NULL)
        return NULL;
    work->service = service;
    work->delivered = delivery->delivered;
    work->max_deliver = delivery->max_deliver;
    work->kind = kind;
    work->job_count = job_count;
    work->verdict = BUS_DONE;
    for (size_t i = 0; i < job_count; i++)
        work->jobs[i].work = work;
    return work;
}

static void work_free(notifier_work *work)
{
    if (work == NULL)
        return;
    for (size_t i = 0; i < work->job_count; i++) {
        if (work->sensitive && work->jobs[i].body != NULL)
            explicit_bzero(work->jobs[i].body, work->jobs[i].body_len);
        free(work->jobs[i].body);
        free(work->jobs[i].profile);
    }
    if (work->sensitive && work->messages != NULL)
        explicit_bzero(work->messages, work->messages_len);
    free(work->messages);
    free(work);
}

static void set_held_gauge(notifier_service *service)
{
    met_gauge_set(service->metrics.held, atomic_load(&service->held));
}

/* Links a work that holds its delivery; from here the sender thread may settle it. */
static void work_register(notifier_service *service, notifier_work *work)
{
    pthread_mutex_lock(&service->works_lock);
    work->pending = work->job_count;
    work->last_progress_ms = monotonic_ms();
    work->prev = NULL;
    work->next = service->works;
    if (service->works != NULL)
        service->works->prev = work;
    service->works = work;
    pthread_mutex_unlock(&service->works_lock);
    atomic_fetch_add(&service->held, 1);
    set_held_gauge(service);
}

/* Applies the work's verdict to its delivery, exactly once, then frees it. */
static void work_settle(notifier_work *work)
{
    notifier_service *service = work->service;
    bus_outcome outcome;
    memset(&outcome, 0, sizeof(outcome));
    outcome.verdict = work->verdict;
    outcome.retry_delay_ms = work->retry_delay_ms;
    reason_copy(outcome.reason, sizeof(outcome.reason), "", work->reason);
    const char *first_id = work->job_count > 0 ? work->jobs[0].command_id : "";
    if (work->verdict == BUS_RETRY) {
        bool last = work->max_deliver > 0 && work->delivered >= (uint64_t)work->max_deliver;
        met_counter_add(last ? service->metrics.dead_lettered : service->metrics.retried, 1);
        log_event(last ? LOG_WARN : LOG_INFO, last ? "notifier.gave_up" : "notifier.retry",
                  last ? "last delivery failed: dead-lettered"
                       : "not delivered yet: JetStream redelivers after the delay",
                  LOG_STR("kind", work->kind), LOG_STR("command_id", first_id),
                  LOG_INT("delivered", (int64_t)work->delivered),
                  LOG_INT("delay_ms", work->retry_delay_ms), LOG_STR("reason", work->reason));
    } else if (work->verdict == BUS_REJECT) {
        met_counter_add(service->metrics.dead_lettered, 1);
        log_event(LOG_WARN, "notifier.dead_letter", "LINE refused the message: dead-lettered",
                  LOG_STR("kind", work->kind), LOG_STR("command_id", first_id),
                  LOG_STR("reason", work->reason));
    }
    bus_settle(work->held, &outcome);
    work->held = NULL;
    work_free(work);
    atomic_fetch_sub(&service->held, 1);
    set_held_gauge(service);
}

static int verdict_rank(bus_verdict verdict)
{
    return verdict == BUS_RETRY ? 2 : verdict == BUS_REJECT ? 1 : 0;
}

/* A job has its final answer; the last one settles the work. Any thread. */
static void job_finish(notifier_job *job, bus_verdict verdict, const char *reason, int64_t delay_ms)
{
    notifier_work *work = job->work;
    notifier_service *service = work->service;
    pthread_mutex_lock(&service->works_lock);
    if (verdict_rank(verdict) > verdict_rank(work->verdict)) {
        work->verdict = verdict;
        reason_copy(work->reason, sizeof(work->reason), "", reason != NULL ? reason : "");
    }
    if (verdict == BUS_RETRY && delay_ms > work->retry_delay_ms)
        work->retry_delay_ms = delay_ms;
    bool done = --work->pending == 0;
    if (done) {
        if (work->prev != NULL)
            work->prev->next = work->next;
        else
            service->works = work->next;
        if (work->next != NULL)
            work->next->prev = work->prev;
    }
    pthread_mutex_unlock(&service->works_lock);
    if (done)
        work_settle(work);
}

/* ---- answers ------------------------------------------------------------------------------ */

static void count_request(notifier_service *service, notifier_endpoint endpoint,
                          const notifier_answer *answer, double seconds)
{
    char labels[96];
    snprintf(labels, sizeof(labels), "endpoint=\"%s\",status=\"%s\"",
             notifier_endpoint_name(endpoint), notifier_status_label(answer));
    met_counter *counter = NULL;
    if (met_counter_get(svc_metrics(service->runtime), "ess_notifier_requests_total",
                        "LINE API requests by endpoint and answer", labels, &counter) == ST_OK)
        met_counter_add(counter, 1);
    if (seconds > 0 && answer->transport != NOTIFIER_TRANSPORT_CANCELLED)
        met_histogram_observe(service->metrics.latency[endpoint], seconds);
}

static void log_misconfiguration(notifier_service *service, const char *reason)
{
    int64_t now = monotonic_ms();
    long long last = atomic_load(&service->last_auth_log_ms);
    if (now - last < AUTH_LOG_INTERVAL_MS ||
        !atomic_compare_exchange_strong(&service->last_auth_log_ms, &last, now))
        return;
    log_event(LOG_ERROR, "notifier.line_refused",
              "LINE refuses the channel or the API address is wrong: check "
              "ESS_LINE_CHANNEL_TOKEN and ESS_LINE_API_BASE (messages are retried)",
              LOG_STR("reason", reason));
}

static void job_done(notifier_request *request, const notifier_answer *answer, double seconds,
                     void *closure);

static void submit_job(notifier_service *service, notifier_job *job, notifier_endpoint endpoint,
                       bool with_retry_key, bool fallback)
{
    job->request.endpoint = endpoint;
    job->request.body = job->body;
    job->request.body_len = job->body_len;
    job->request.path = job->path;
    job->request.retry_key[0] = '\0';
    if (with_retry_key)
        notifier_retry_key(job->command_id, fallback, job->request.retry_key);
    job->request.done = job_done;
    job->request.closure = job;
    notifier_sender_submit(service->sender, &job->request);
}

/* The reply did not go out: push the same messages to the same user instead. */
static void fall_back_to_push(notifier_service *service, notifier_job *job, const char *why)
{
    notifier_work *work = job->work;
    free(job->body);
    job->body = NULL;
    st_error err = {0};
    if (notifier_body_push(job->fallback_target, job->notification_disabled, work->messages,
                           work->messages_len, &job->body, &job->body_len, &err) != ST_OK) {
        job_finish(job, BUS_RETRY, err.message, retry_delay(service, work->delivered));
        return;
    }
    met_counter_add(service->metrics.fallbacks, 1);
    log_event(LOG_DEBUG, "notifier.fallback", "reply not delivered: pushing instead",
              LOG_STR("command_id", job->command_id), LOG_STR("why", why));
    submit_job(service, job, NOTIFIER_EP_PUSH, true, true);
}

/* The answer of a profile look-up is on LINE_IN: the delivery may go. nats.c thread. */
static void profile_published(bus_batch *batch, st_code status, const bus_batch_result *result,
                              void *closure)
{
    (void)result;
    notifier_job *job = closure;
    notifier_service *service = job->work->service;
    bus_batch_destroy(batch);
    if (status == ST_OK) {
        met_counter_add(service->metrics.sent[NOTIFIER_EP_PROFILE], 1);
        job_finish(job, BUS_DONE, NULL, 0);
    } else {
        job_finish(job, BUS_RETRY, "cannot publish the profile answer to LINE_IN",
                   retry_delay(service, job->work->delivered));
    }
}

/* LINE answered a look-up (200 with the profile, or 404: none): publish it as an ess.profile
 * event on LINE_IN, then settle. */
static void profile_answered(notifier_service *service, notifier_job *job,
                             const notifier_answer *answer)
{
    bool found = answer->status >= 200 && answer->status <= 299;
    char *json = NULL, subject[NOTIFIER_PROFILE_SUBJECT_MAX];
    char msg_id[NOTIFIER_PROFILE_EVENT_ID_MAX + 1];
    bus_batch *batch = NULL;
    st_error err = {0};
    if (!found)
        met_counter_add(service->metrics.profiles_missing, 1);
    if (notifier_profile_event(&service->subject_key, job->profile, found, answer->body,
                               answer->body_len, &json, subject, msg_id, &err) != ST_OK) {
        job_finish(job, BUS_REJECT, err.message, 0);
        return;
    }
    if (bus_batch_create(svc_bus(service->runtime), &batch, &err) != ST_OK ||
        bus_batch_add(batch, subject, json, strlen(json), msg_id, &err) != ST_OK ||
        bus_batch_on_done(batch, PROFILE_PUBLISH_TIMEOUT_MS, profile_published, job, &err) !=
            ST_OK) {
        bus_batch_destroy(batch);
        job_finish(job, BUS_RETRY, "cannot publish the profile answer to LINE_IN",
                   retry_delay(service, job->work->delivered));
    }
    explicit_bzero(json, strlen(json));
    free(json);
}

static void job_done(notifier_request *request, const notifier_answer *answer, double seconds,
                     void *closure)
{
    notifier_job *job = closure;
    notifier_work *work = job->work;
    notifier_service *service = work->service;
    notifier_endpoint endpoint = request->endpoint;
    count_request(service, endpoint, answer, seconds);
    if (endpoint == NOTIFIER_EP_PROFILE && answer->transport == NOTIFIER_TRANSPORT_OK &&
        ((answer->status >= 200 && answer->status <= 299) || answer->status == 404)) {
        profile_answered(service, job, answer);
        return;
    }
    char reason[NOTIFIER_REASON_MAX];
    notifier_verdict verdict = notifier_classify(endpoint, answer, reason, sizeof(reason));
    if (notifier_misconfigured(answer))
        log_misconfiguration(service, reason);
    log_event(LOG_DEBUG, "notifier.answer", "LINE answered",
              LOG_STR("endpoint", notifier_endpoint_name(endpoint)),
              LOG_STR("status", notifier_status_label(answer)),
              LOG_STR("command_id", job->command_id));

    if (verdict == NOTIFIER_DELIVERED) {
        met_counter_add(service->metrics.sent[endpoint], 1);
        job_finish(job, BUS_DONE, NULL, 0);
        return;
    }
    if (endpoint == NOTIFIER_EP_REPLY) {
        /* One attempt only: the token is single-use, a second try could only fail or repeat. */
        if (verdict != NOTIFIER_REJECT && job->fallback_target[0] != '\0') {
            fall_back_to_push(service, job, reason);
            return;
        }
        if (verdict != NOTIFIER_REJECT) {
            char why[NOTIFIER_REASON_MAX];
            reason_copy(why, sizeof(why), "reply not delivered and no one to push to: ", reason);
            job_finish(job, BUS_REJECT, why, 0);
            return;
        }
        job_finish(job, BUS_REJECT, reason, 0);
        return;
    }
    if (verdict == NOTIFIER_RETRY) {
        int64_t delay = answer->transport == NOTIFIER_TRANSPORT_CANCELLED
                            ? 0 /* stopping: let another replica take it now */
                            : retry_delay(service, work->delivered);
        job_finish(job, BUS_RETRY, reason, delay);
        return;
    }
    job_finish(job, BUS_REJECT, reason, 0);
}

/* ---- handlers ------------------------------------------------------------------------------ */

static void reject(bus_outcome *outcome, const char *code, const char *message, const st_error *err)
{
    outcome->verdict = BUS_REJECT;
    reason_copy(outcome->reason, sizeof(outcome->reason), "", err->message);
    log_event(LOG_WARN, code, message, LOG_ERR(err));
}

static void retry_later(notifier_service *service, const bus_delivery *delivery,
                        bus_outcome *outcome, const char *reason)
{
    outcome->verdict = BUS_RETRY;
    outcome->retry_delay_ms = retry_delay(service, delivery->delivered);
    bool last = delivery->max_deliver > 0 && delivery->delivered >= (uint64_t)delivery->max_deliver;
    met_counter_add(last ? service->metrics.dead_lettered : service->metrics.retried, 1);
    reason_copy(outcome->reason, sizeof(outcome->reason), "", reason);
}

/* Holds the delivery for work and hands its jobs to the sender. On failure the work is
 * freed and the delivery comes back later. */
static void hold_and_submit(notifier_service *service, const bus_delivery *delivery,
                            notifier_work *work, notifier_endpoint first_endpoint,
                            bool with_retry_key, bool fallback, bus_outcome *outcome)
{
    st_error err = {0};
    if (bus_hold(delivery, &work->held, &err) != ST_OK) {
        work_free(work);
        retry_later(service, delivery, outcome, "cannot hold the delivery");
        return;
    }
    size_t count = work->job_count; /* work may be settled and freed by the last submit */
    work_register(service, work);
    outcome->verdict = BUS_DEFER;
    for (size_t i = 0; i < count; i++)
        submit_job(service, &work->jobs[i], first_endpoint, with_retry_key, fallback);
}

/* line.out.profile: one GET, answered on LINE_IN (profile_answered). */
static void handle_profile(notifier_service *service, const bus_delivery *delivery,
                           bus_outcome *outcome)
{
    st_error err = {0};
    notifier_profile_command *command = malloc(sizeof(*command));
    if (command == NULL) {
        retry_later(service, delivery, outcome, "out of memory");
        return;
    }
    if (notifier_profile_parse(delivery->data, delivery->len, command, &err) != ST_OK) {
        free(command);
        met_counter_add(service->metrics.dead_lettered, 1);
        reject(outcome, "notifier.invalid_command", "profile command breaks its schema", &err);
        return;
    }
    notifier_work *work = work_create(service, delivery, 1, "profile");
    if (work == NULL) {
        free(command);
        retry_later(service, delivery, outcome, "out of memory");
        return;
    }
    notifier_job *job = &work->jobs[0];
    snprintf(job->command_id, sizeof(job->command_id), "%s", command->command_id);
    notifier_profile_path(command, job->path);
    job->profile = command;
    work->sensitive = true; /* the answer names a person */
    hold_and_submit(service, delivery, work, NOTIFIER_EP_PROFILE, false, false, outcome);
}

void notifier_handle_out(const bus_delivery *delivery, bus_outcome *outcome, void *closure)
{
    notifier_service *service = closure;
    notifier_command command;
    st_error err = {0};
    if (delivery->subject != NULL && strcmp(delivery->subject, NOTIFIER_PROFILE_SUBJECT) == 0) {
        handle_profile(service, delivery, outcome);
        return;
    }
    if (notifier_command_parse(delivery->subject, delivery->data, delivery->len, &command, &err) !=
        ST_OK) {
        met_counter_add(service->metrics.dead_lettered, 1);
        reject(outcome, "notifier.invalid_command", "send command breaks its schema", &err);
        return;
    }
    notifier_work *work = work_create(service, delivery, 1, "command");
    if (work == NULL) {
        notifier_command_done(&command);
        retry_later(service, delivery, outcome, "out of memory");
        return;
    }
    notifier_job *job = &work->jobs[0];
    snprintf(job->command_id, sizeof(job->command_id), "%s", command.command_id);
    job->notification_disabled = command.notification_disabled;
    work->messages = command.messages;
    work->messages_len = command.messages_len;
    command.messages = NULL;

    notifier_endpoint endpoint = command.endpoint;
    bool fallback = false;
    st_code code;
    if (endpoint == NOTIFIER_EP_REPLY) {
        snprintf(job->fallback_target, sizeof(job->fallback_target), "%s",
                 notifier_command_fallback_target(&command));
        /* A reply token lives about a minute and works once: skip it when the command is
         * older than that, or when an earlier delivery of the command already spent it. */
        int64_t age_ms = (wall_ns() - delivery->timestamp_ns) / 1000000;
        bool usable = command.reply_token[0] != '\0' && delivery->delivered == 1 &&
                      age_ms < service->config.reply_max_age_ms;
        if (!usable) {
            if (job->fallback_target[0] == '\0') {
                work_free(work);
                st_fail(&err, ST_INVALID,
                        "reply token too old or already spent, and the "
                        "command names no one to push to");
                met_counter_add(service->metrics.dead_lettered, 1);
                reject(outcome, "notifier.reply_unusable", "reply cannot be sent", &err);
                return;
            }
            endpoint = NOTIFIER_EP_PUSH;
            fallback = true;
            met_counter_add(service->metrics.fallbacks, 1);
        }
    }
    if (endpoint == NOTIFIER_EP_REPLY)
        code = notifier_body_reply(command.reply_token, job->notification_disabled, work->messages,
                                   work->messages_len, &job->body, &job->body_len, &err);
    else
        code = notifier_body_push(fallback ? job->fallback_target : command.to,
                                  job->notification_disabled, work->messages, work->messages_len,
                                  &job->body, &job->body_len, &err);
    if (code != ST_OK) {
        work_free(work);
        retry_later(service, delivery, outcome, err.message);
        return;
    }
    hold_and_submit(service, delivery, work, endpoint, endpoint == NOTIFIER_EP_PUSH, fallback,
                    outcome);
}

/* The responder card to routed's groups (the first level of a routed incident, or the level an
 * escalated one reached). parse reads the event. */
static void send_cards(notifier_service *service, const bus_delivery *delivery,
                       bus_outcome *outcome,
                       st_code (*parse)(const char *, size_t, notifier_routed *, st_error *),
                       const char *kind)
{
    st_error err = {0};
    notifier_routed *routed = malloc(sizeof(*routed));
    notifier_incident *incident = calloc(1, sizeof(*incident));
    notifier_work *work = NULL;
    char *messages = NULL;
    size_t messages_len = 0;
    if (routed == NULL || incident == NULL) {
        retry_later(service, delivery, outcome, "out of memory");
        goto cleanup;
    }
    if (parse(delivery->data, delivery->len, routed, &err) != ST_OK) {
        met_counter_add(service->metrics.dead_lettered, 1);
        reject(outcome, "notifier.invalid_routed", "incident event breaks its schema", &err);
        goto cleanup;
    }
    if (routed->group_count == 0) {
        log_event(LOG_INFO, "notifier.no_targets", "no group to send the card to",
                  LOG_STR("kind", kind), LOG_INT("incident_id", routed->incident_id));
        outcome->verdict = BUS_DONE;
        goto cleanup;
    }
    if (routed->groups_dropped > 0)
        log_event(LOG_WARN, "notifier.too_many_targets", "more groups of the level than sent to",
                  LOG_INT("incident_id", routed->incident_id),
                  LOG_INT("dropped", (int64_t)routed->groups_dropped));
    db *d = svc_db(service->runtime);
    bool phone_unreadable = false;
    st_code code = d != NULL ? notifier_incident_load(d, &service->keys, routed, incident,
                                                      &phone_unreadable, &err)
                             : st_fail(&err, ST_UNAVAILABLE, "no database handle");
    if (code != ST_OK) {
        log_event(LOG_WARN, "notifier.incident", "cannot read the incident: retrying later",
                  LOG_INT("incident_id", routed->incident_id), LOG_ERR(&err));
        retry_later(service, delivery, outcome, err.message);
        goto cleanup;
    }
    if (phone_unreadable)
        log_event(LOG_ERROR, "notifier.phone_sealed",
                  "the phone number does not open with ESS_DATA_KEY: card sent without it",
                  LOG_INT("incident_id", routed->incident_id));
    code = notifier_card_render(incident, &messages, &messages_len, &err);
    if (code != ST_OK) {
        if (code == ST_INVALID) {
            met_counter_add(service->metrics.dead_lettered, 1);
            reject(outcome, "notifier.card", "cannot render the card", &err);
        } else {
            retry_later(service, delivery, outcome, err.message);
        }
        goto cleanup;
    }
    work = work_create(service, delivery, routed->group_count, "card");
    if (work == NULL) {
        retry_later(service, delivery, outcome, "out of memory");
        goto cleanup;
    }
    work->sensitive = true;
    work->messages = messages;
    work->messages_len = messages_len;
    messages = NULL;
    for (size_t i = 0; i < routed->group_count; i++) {
        notifier_job *job = &work->jobs[i];
        /* One card per incident and group, whatever redelivers it. */
        snprintf(job->command_id, sizeof(job->command_id), "card.%" PRId64 ".%s",
                 routed->incident_id, routed->groups[i]);
        if (notifier_body_push(routed->groups[i], false, work->messages, work->messages_len,
                               &job->body, &job->body_len, &err) != ST_OK) {
            retry_later(service, delivery, outcome, err.message);
            goto cleanup;
        }
    }
    met_counter_add(service->metrics.cards, 1);
    log_event(LOG_INFO, "notifier.card", "sending the responder card", LOG_STR("kind", kind),
              LOG_INT("incident_id", routed->incident_id),
              LOG_INT("groups", (int64_t)routed->group_count),
              LOG_INT("level", routed->first_level));
    hold_and_submit(service, delivery, work, NOTIFIER_EP_PUSH, true, false, outcome);
    work = NULL;
cleanup:
    work_free(work);
    if (messages != NULL) {
        explicit_bzero(messages, messages_len);
        free(messages);
    }
    if (incident != NULL) {
        explicit_bzero(incident, sizeof(*incident));
        free(incident);
    }
    free(routed);
}

void notifier_handle_routed(const bus_delivery *delivery, bus_outcome *outcome, void *closure)
{
    send_cards(closure, delivery, outcome, notifier_routed_parse, "routed");
}

void notifier_handle_escalated(const bus_delivery *delivery, bus_outcome *outcome, void *closure)
{
    send_cards(closure, delivery, outcome, notifier_escalated_parse, "escalated");
}

int notifier_capacity(void *closure)
{
    notifier_service *service = closure;
    long room = (long)service->config.queue_max - atomic_load(&service->held);
    /* Fetch in batches: when LINE (or the rate limit) is the bottleneck, room frees one slot
     * at a time, and fetching one message per JetStream round trip would cost more than the
     * message itself. Wait for a quarter of the queue (at most 64) to be free. */
    long low_water = (long)service->config.queue_max / 4;
    low_water = low_water < 1 ? 1 : low_water > 64 ? 64 : low_water;
    if (room < low_water)
        return 0;
    return (int)(room > 100000 ? 100000 : room);
}

/* ---- heartbeats and gauges (sender thread) ------------------------------------------------ */

static void tick(void *closure)
{
    notifier_service *service = closure;
    int64_t now = monotonic_ms();
    pthread_mutex_lock(&service->works_lock);
    for (notifier_work *work = service->works; work != NULL; work = work->next) {
        if (now - work->last_progress_ms < service->heartbeat_ms)
            continue;
        bus_held_in_progress(work->held, NULL); /* a miss means one redelivery: 409 then */
        work->last_progress_ms = now;
    }
    pthread_mutex_unlock(&service->works_lock);
    if (service->sender != NULL) {
        notifier_sender_stats stats;
        notifier_sender_get_stats(service->sender, &stats);
        met_gauge_set(service->metrics.in_flight, (int64_t)stats.in_flight);
        met_gauge_set(service->metrics.queued, (int64_t)stats.queued);
    }
}

/* ---- svc hooks ------------------------------------------------------------------------------ */

static void register_metrics(notifier_service *service, met_registry *registry)
{
    notifier_metrics *m = &service->metrics;
    static const char sent_help[] = "LINE requests delivered (2xx, or 409: accepted earlier)";
    met_counter_get(registry, "ess_notifier_sent_total", sent_help, "endpoint=\"reply\"",
                    &m->sent[NOTIFIER_EP_REPLY]);
    met_counter_get(registry, "ess_notifier_sent_total", sent_help, "endpoint=\"push\"",
                    &m->sent[NOTIFIER_EP_PUSH]);
    met_counter_get(registry, "ess_notifier_sent_total", sent_help, "endpoint=\"profile\"",
                    &m->sent[NOTIFIER_EP_PROFILE]);
    met_counter_get(registry, "ess_notifier_profiles_missing_total",
                    "profile look-ups LINE answered 404 (not a follower or member)", NULL,
                    &m->profiles_missing);
    met_counter_get(registry, "ess_notifier_fallbacks_total",
                    "replies sent as a push instead (token refused, too old, or failed)", NULL,
                    &m->fallbacks);
    met_counter_get(registry, "ess_notifier_retried_total",
                    "deliveries nak'ed for a later attempt (5xx, 429, timeout, connection)", NULL,
                    &m->retried);
    met_counter_get(registry, "ess_notifier_dead_lettered_total",
                    "deliveries dead-lettered (refused by LINE, invalid, or out of attempts)", NULL,
                    &m->dead_lettered);
    met_counter_get(registry, "ess_notifier_cards_total", "responder cards rendered", NULL,
                    &m->cards);
    static const char latency_help[] = "LINE API answer time in seconds by endpoint";
    met_histogram_get(registry, "ess_notifier_line_latency_seconds", latency_help,
                      "endpoint=\"reply\"", met_latency_bounds, met_latency_bound_count,
                      &m->latency[NOTIFIER_EP_REPLY]);
    met_histogram_get(registry, "ess_notifier_line_latency_seconds", latency_help,
                      "endpoint=\"push\"", met_latency_bounds, met_latency_bound_count,
                      &m->latency[NOTIFIER_EP_PUSH]);
    met_histogram_get(registry, "ess_notifier_line_latency_seconds", latency_help,
                      "endpoint=\"profile\"", met_latency_bounds, met_latency_bound_count,
                      &m->latency[NOTIFIER_EP_PROFILE]);
    met_gauge_get(registry, "ess_notifier_held", "deliveries held until LINE answers", NULL,
                  &m->held);
    met_gauge_get(registry, "ess_notifier_in_flight", "LINE requests in flight", NULL,
                  &m->in_flight);
    met_gauge_get(registry, "ess_notifier_queued",
                  "LINE requests waiting for a connection slot or the rate limit", NULL,
                  &m->queued);
}

st_code notifier_init(svc *s, void *closure, st_error *err)
{
    notifier_service *service = closure;
    const notifier_config *config = &service->config;
    service->runtime = s;
    pthread_mutex_init(&service->works_lock, NULL);
    atomic_store(&service->random_seed, (unsigned long long)wall_ns());
    if (config->backoff_min_ms > config->backoff_max_ms)
        return st_fail(err, ST_INVALID,
                       "ESS_NOTIFIER_BACKOFF_MIN must not exceed ESS_NOTIFIER_BACKOFF_MAX");
    vault_keys_derive(config->data_key.bytes, &service->keys);
    vault_pseudonym_key_derive(config->channel_secret, strlen(config->channel_secret),
                               VAULT_PURPOSE_LINE_IN_SUBJECT, &service->subject_key);
    const bus_consumer_def *out = bus_registry_consumer(svc_registry(s), "notifier-out");
    int64_t ack_wait = out != NULL ? out->ack_wait_ms : 30000;
    service->heartbeat_ms = ack_wait / 3 > 1000 ? ack_wait / 3 : 1000;
    register_metrics(service, svc_metrics(s));
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return st_fail(err, ST_INTERNAL, "curl_global_init failed");
    service->curl_ready = true;
    notifier_sender_options options = {
        .api_base = config->api_base,
        .channel_token = config->channel_token,
        .concurrency = (int)config->concurrency,
        .connect_timeout_ms = config->connect_timeout_ms,
        .request_timeout_ms = config->request_timeout_ms,
        .rate_per_second = (double)config->rate_limit,
        .throttle_min_ms = config->backoff_min_ms,
        .throttle_max_ms = config->backoff_max_ms,
        .tick = tick,
        .tick_ms = 250,
        .tick_closure = service,
    };
    st_code code = notifier_sender_start(&options, &service->sender, err);
    if (code != ST_OK)
        return code;
    log_event(LOG_INFO, "notifier.ready", "LINE sender started",
              LOG_STR("api_base", config->api_base), LOG_INT("concurrency", config->concurrency),
              LOG_INT("rate_limit", config->rate_limit), LOG_INT("queue", config->queue_max),
              LOG_INT("heartbeat_ms", service->heartbeat_ms));
    return ST_OK;
}

void notifier_stop(svc *s, void *closure)
{
    notifier_service *service = closure;
    /* Consumers have stopped fetching: finish what is held within half the drain budget;
     * what is left is nak'ed (delay 0) by the cancellation path for another replica. */
    int64_t drain_ms = svc_common(s)->drain_timeout_ms / 2;
    log_event(LOG_INFO, "notifier.drain", "finishing held deliveries",
              LOG_INT("held", atomic_load(&service->held)), LOG_INT("budget_ms", drain_ms));
    notifier_sender_stop(service->sender, drain_ms);
    service->sender = NULL;
}

void notifier_fini(svc *s, void *closure)
{
    (void)s;
    notifier_service *service = closure;
    notifier_sender_stop(service->sender, 0); /* only when stop did not run (start-up failure) */
    service->sender = NULL;
    if (service->curl_ready) {
        curl_global_cleanup();
        service->curl_ready = false;
    }
    vault_keys_wipe(&service->keys);
    OPENSSL_cleanse(&service->subject_key, sizeof(service->subject_key));
    explicit_bzero(service->config.data_key.bytes, sizeof(service->config.data_key.bytes));
    if (service->runtime != NULL)
        pthread_mutex_destroy(&service->works_lock);
}
