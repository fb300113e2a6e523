#include "emu_delivery.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "emu_event.h"
#include "emu_ids.h"

#define WORKERS_MAX 16
#define ATTEMPTS_KEPT 32
#define EVENTS_PER_DELIVERY_MAX 100
#define ERROR_TEXT_MAX 96

typedef enum delivery_state { STATE_PENDING, STATE_DELIVERED, STATE_FAILED } delivery_state;

typedef struct attempt_log {
    int64_t at_ms;
    long status;
    char error[ERROR_TEXT_MAX];
    bool redelivery;
    bool escaped;
    bool signature_valid;
    const char *signature_header; /* static spelling */
    int64_t duration_ms;
} attempt_log;

typedef struct delivery_log {
    uint64_t id;
    delivery_state state;
    int64_t created_ms;
    size_t event_count;
    char (*event_ids)[EMU_ULID_LEN + 1];
    int attempt_count;
    attempt_log attempts[ATTEMPTS_KEPT];
} delivery_log;

typedef struct delivery_job {
    struct delivery_job *next;
    uint64_t id;
    cJSON *events;
    int attempts;
    int64_t due_ms; /* monotonic */
} delivery_job;

struct emu_delivery {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    /* settings (under lock) */
    char *url;
    char *secret;
    char *destination;
    int64_t timeout_ms;
    bool redelivery;
    int64_t retry_interval_ms;
    int64_t retry_max_interval_ms;
    int64_t max_attempts;
    emu_escape_mode escape;
    int corrupt_remaining;
    size_t queue_max;
    /* queue, sorted by due time (under lock) */
    delivery_job *queue;
    size_t queued;
    size_t in_flight;
    uint64_t next_id;
    uint64_t attempt_counter;
    /* log ring (under lock) */
    delivery_log *logs;
    size_t log_max, log_start, log_count;
    /* workers */
    atomic_bool stopping;
    pthread_t threads[WORKERS_MAX];
    int thread_count;
    emu_delivery_observer observer;
    void *observer_closure;
};

static const char *const escape_names[] = {"never", "sometimes", "always"};

const char *emu_escape_mode_name(emu_escape_mode mode)
{
    return (unsigned)mode <= EMU_ESCAPE_ALWAYS ? escape_names[mode] : "unknown";
}

st_code emu_escape_mode_parse(const char *name, emu_escape_mode *ret_mode)
{
    for (int mode = EMU_ESCAPE_NEVER; mode <= EMU_ESCAPE_ALWAYS; mode++) {
        if (strcmp(escape_names[mode], name) == 0) {
            *ret_mode = (emu_escape_mode)mode;
            return ST_OK;
        }
    }
    return ST_NOT_FOUND;
}

static int64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* ---- log ---- */

static void log_entry_free(delivery_log *entry)
{
    free(entry->event_ids);
    memset(entry, 0, sizeof(*entry));
}

static delivery_log *log_find(emu_delivery *delivery, uint64_t id)
{
    for (size_t i = 0; i < delivery->log_count; i++) {
        delivery_log *entry = &delivery->logs[(delivery->log_start + i) % delivery->log_max];
        if (entry->id == id)
            return entry;
    }
    return NULL;
}

static st_code log_add(emu_delivery *delivery, uint64_t id, const cJSON *events)
{
    size_t count = (size_t)cJSON_GetArraySize(events);
    char(*ids)[EMU_ULID_LEN + 1] = calloc(count > 0 ? count : 1, sizeof(*ids));
    if (ids == NULL)
        return ST_NOMEM;
    size_t index = 0;
    const cJSON *event;
    cJSON_ArrayForEach(event, events)
    {
        const cJSON *event_id = cJSON_GetObjectItemCaseSensitive(event, "webhookEventId");
        if (cJSON_IsString(event_id))
            snprintf(ids[index], sizeof(ids[index]), "%s", event_id->valuestring);
        index++;
    }
    if (delivery->log_count == delivery->log_max) {
        log_entry_free(&delivery->logs[delivery->log_start]);
        delivery->log_start = (delivery->log_start + 1) % delivery->log_max;
        delivery->log_count--;
    }
    delivery_log *entry =
        &delivery->logs[(delivery->log_start + delivery->log_count) % delivery->log_max];
    memset(entry, 0, sizeof(*entry));
    entry->id = id;
    entry->state = STATE_PENDING;
    entry->created_ms = emu_wall_ms();
    entry->event_count = count;
    entry->event_ids = ids;
    delivery->log_count++;
    return ST_OK;
}

/* ---- queue ---- */

static void queue_insert(emu_delivery *delivery, delivery_job *job)
{
    delivery_job **slot = &delivery->queue;
    while (*slot != NULL && (*slot)->due_ms <= job->due_ms)
        slot = &(*slot)->next;
    job->next = *slot;
    *slot = job;
    delivery->queued++;
}

static void job_free(delivery_job *job)
{
    if (job == NULL)
        return;
    cJSON_Delete(job->events);
    free(job);
}

static void queue_drop_all(emu_delivery *delivery)
{
    while (delivery->queue != NULL) {
        delivery_job *job = delivery->queue;
        delivery->queue = job->next;
        delivery_log *entry = log_find(delivery, job->id);
        if (entry != NULL && entry->state == STATE_PENDING)
            entry->state = STATE_FAILED;
        job_free(job);
    }
    delivery->queued = 0;
}

/* ---- one attempt ---- */

typedef struct attempt_plan {
    char *url;
    bool redelivery;
    bool escape;
    bool corrupt;
    const char *header_name;
    int64_t timeout_ms;
} attempt_plan;

typedef struct attempt_result {
    long status;
    char error[ERROR_TEXT_MAX];
    int64_t duration_ms;
} attempt_result;

static size_t discard_body(char *data, size_t size, size_t count, void *closure)
{
    (void)data;
    (void)closure;
    return size * count;
}

static int abort_when_stopping(void *closure, curl_off_t dltotal, curl_off_t dlnow,
                               curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    emu_delivery *delivery = closure;
    return atomic_load(&delivery->stopping) ? 1 : 0;
}

static void perform_attempt(emu_delivery *delivery, CURL *curl, const delivery_job *job,
                            const attempt_plan *plan, attempt_result *result)
{
    char *body = NULL;
    size_t body_len = 0;
    struct curl_slist *headers = NULL;
    int64_t started = monotonic_ms();
    memset(result, 0, sizeof(*result));

    st_code code = emu_webhook_body(delivery->destination, job->events, plan->redelivery,
                                    plan->escape, &body, &body_len);
    if (code != ST_OK) {
        snprintf(result->error, sizeof(result->error), "building the body: %s", st_name(code));
        goto done;
    }
    char signature[EMU_SIGNATURE_LEN + 1];
    const char *secret = plan->corrupt ? "not-the-channel-secret" : delivery->secret;
    code = emu_signature(secret, strlen(secret), body, body_len, signature);
    if (code != ST_OK) {
        snprintf(result->error, sizeof(result->error), "signing: %s", st_name(code));
        goto done;
    }
    char signature_header[128];
    snprintf(signature_header, sizeof(signature_header), "%s: %s", plan->header_name, signature);
    struct curl_slist *next =
        curl_slist_append(NULL, "Content-Type: application/json; charset=utf-8");
    if (next != NULL) {
        headers = next;
        next = curl_slist_append(headers, signature_header);
    }
    if (next != NULL)
        next = curl_slist_append(headers, "Expect:");
    if (next == NULL) {
        snprintf(result->error, sizeof(result->error), "out of memory");
        goto done;
    }

    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, plan->url);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "LineBotWebhook/2.0");
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)plan->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)plan->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, abort_when_stopping);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, delivery);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode curl_code = curl_easy_perform(curl);
    if (curl_code == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result->status);
    } else {
        snprintf(result->error, sizeof(result->error), "%s", curl_easy_strerror(curl_code));
    }
done:
    result->duration_ms = monotonic_ms() - started;
    curl_slist_free_all(headers);
    free(body);
}

static int64_t backoff_ms(const emu_delivery *delivery, int attempts_made)
{
    int64_t wait = delivery->retry_interval_ms;
    for (int i = 1; i < attempts_made && wait < delivery->retry_max_interval_ms; i++)
        wait *= 2;
    return wait < delivery->retry_max_interval_ms ? wait : delivery->retry_max_interval_ms;
}

/* Called with the lock held; returns with it held. */
static void run_one(emu_delivery *delivery, CURL *curl, delivery_job *job)
{
    attempt_plan plan = {0};
    plan.url = strdup(delivery->url);
    plan.redelivery = job->attempts > 0;
    uint64_t n = delivery->attempt_counter++;
    plan.escape = delivery->escape == EMU_ESCAPE_ALWAYS ||
                  (delivery->escape == EMU_ESCAPE_SOMETIMES && n % 2 == 1);
    plan.corrupt = delivery->corrupt_remaining > 0;
    if (plan.corrupt)
        delivery->corrupt_remaining--;
    plan.header_name = emu_signature_header_name(n);
    plan.timeout_ms = delivery->timeout_ms;
    delivery->in_flight++;
    pthread_mutex_unlock(&delivery->lock);

    attempt_result result;
    if (plan.url != NULL) {
        perform_attempt(delivery, curl, job, &plan, &result);
    } else {
        memset(&result, 0, sizeof(result));
        snprintf(result.error, sizeof(result.error), "out of memory");
    }
    free(plan.url);

    pthread_mutex_lock(&delivery->lock);
    delivery->in_flight--;
    job->attempts++;
    bool delivered = result.status >= 200 && result.status < 300;
    bool will_retry = !delivered && delivery->redelivery &&
                      job->attempts < delivery->max_attempts && !atomic_load(&delivery->stopping);
    delivery_log *entry = log_find(delivery, job->id);
    if (entry != NULL) {
        if (entry->attempt_count < ATTEMPTS_KEPT) {
            attempt_log *attempt = &entry->attempts[entry->attempt_count];
            attempt->at_ms = emu_wall_ms() - result.duration_ms;
            attempt->status = result.status;
            snprintf(attempt->error, sizeof(attempt->error), "%s", result.error);
            attempt->redelivery = plan.redelivery;
            attempt->escaped = plan.escape;
            attempt->signature_valid = !plan.corrupt;
            attempt->signature_header = plan.header_name;
            attempt->duration_ms = result.duration_ms;
        }
        entry->attempt_count++;
        if (delivered)
            entry->state = STATE_DELIVERED;
        else if (!will_retry)
            entry->state = STATE_FAILED;
    }
    emu_delivery_outcome outcome = {
        .delivery_id = job->id,
        .attempt = job->attempts,
        .status = result.status,
        .error = result.error[0] != '\0' ? result.error : NULL,
        .delivered = delivered,
        .will_retry = will_retry,
        .duration_ms = result.duration_ms,
    };
    if (will_retry) {
        job->due_ms = monotonic_ms() + backoff_ms(delivery, job->attempts);
        queue_insert(delivery, job);
    } else {
        job_free(job);
    }
    if (delivery->observer != NULL) {
        pthread_mutex_unlock(&delivery->lock);
        delivery->observer(&outcome, delivery->observer_closure);
        pthread_mutex_lock(&delivery->lock);
    }
}

static void *worker_main(void *closure)
{
    emu_delivery *delivery = closure;
    CURL *curl = curl_easy_init();
    pthread_mutex_lock(&delivery->lock);
    while (!atomic_load(&delivery->stopping)) {
        delivery_job *job = delivery->queue;
        if (job == NULL || curl == NULL) {
            pthread_cond_wait(&delivery->wake, &delivery->lock);
            continue;
        }
        int64_t now = monotonic_ms();
        if (job->due_ms > now) {
            struct timespec until;
            until.tv_sec = (time_t)(job->due_ms / 1000);
            until.tv_nsec = (long)(job->due_ms % 1000) * 1000000L;
            pthread_cond_timedwait(&delivery->wake, &delivery->lock, &until);
            continue;
        }
        delivery->queue = job->next;
        delivery->queued--;
        job->next = NULL;
        run_one(delivery, curl, job);
    }
    pthread_mutex_unlock(&delivery->lock);
    if (curl != NULL)
        curl_easy_cleanup(curl);
    return NULL;
}

/* ---- life cycle ---- */

void emu_delivery_destroy(emu_delivery *delivery)
{
    if (delivery == NULL)
        return;
    pthread_mutex_lock(&delivery->lock);
    atomic_store(&delivery->stopping, true);
    pthread_cond_broadcast(&delivery->wake);
    pthread_mutex_unlock(&delivery->lock);
    for (int i = 0; i < delivery->thread_count; i++)
        pthread_join(delivery->threads[i], NULL);
    queue_drop_all(delivery);
    for (size_t i = 0; i < delivery->log_count; i++)
        log_entry_free(&delivery->logs[(delivery->log_start + i) % delivery->log_max]);
    free(delivery->logs);
    free(delivery->url);
    if (delivery->secret != NULL) {
        memset(delivery->secret, 0, strlen(delivery->secret));
        free(delivery->secret);
    }
    free(delivery->destination);
    pthread_cond_destroy(&delivery->wake);
    pthread_mutex_destroy(&delivery->lock);
    free(delivery);
}

st_code emu_delivery_create(const emu_delivery_config *config, emu_delivery_observer observer,
                            void *observer_closure, emu_delivery **ret_delivery)
{
    if (config->webhook_url == NULL || config->channel_secret == NULL ||
        config->destination == NULL || config->workers < 1 || config->workers > WORKERS_MAX ||
        config->log_max < 1 || config->queue_max < 1 || config->timeout_ms < 1 ||
        config->retry_interval_ms < 1 || config->retry_max_interval_ms < 1 ||
        config->max_attempts < 1)
        return ST_INVALID;
    emu_delivery *delivery = calloc(1, sizeof(*delivery));
    if (delivery == NULL)
        return ST_NOMEM;
    pthread_mutex_init(&delivery->lock, NULL);
    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    pthread_cond_init(&delivery->wake, &attributes);
    pthread_condattr_destroy(&attributes);
    atomic_init(&delivery->stopping, false);
    delivery->url = strdup(config->webhook_url);
    delivery->secret = strdup(config->channel_secret);
    delivery->destination = strdup(config->destination);
    delivery->logs = calloc(config->log_max, sizeof(delivery_log));
    delivery->timeout_ms = config->timeout_ms;
    delivery->redelivery = config->redelivery;
    delivery->retry_interval_ms = config->retry_interval_ms;
    delivery->retry_max_interval_ms = config->retry_max_interval_ms;
    delivery->max_attempts = config->max_attempts;
    delivery->escape = config->escape;
    delivery->queue_max = config->queue_max;
    delivery->log_max = config->log_max;
    delivery->observer = observer;
    delivery->observer_closure = observer_closure;
    if (delivery->url == NULL || delivery->secret == NULL || delivery->destination == NULL ||
        delivery->logs == NULL) {
        emu_delivery_destroy(delivery);
        return ST_NOMEM;
    }
    for (int i = 0; i < config->workers; i++) {
        if (pthread_create(&delivery->threads[i], NULL, worker_main, delivery) != 0) {
            emu_delivery_destroy(delivery);
            return ST_IO;
        }
        delivery->thread_count++;
    }
    *ret_delivery = delivery;
    return ST_OK;
}

st_code emu_delivery_submit(emu_delivery *delivery, cJSON *events, uint64_t *ret_id)
{
    if (!cJSON_IsArray(events) || cJSON_GetArraySize(events) > EVENTS_PER_DELIVERY_MAX) {
        cJSON_Delete(events);
        return ST_INVALID;
    }
    delivery_job *job = calloc(1, sizeof(*job));
    if (job == NULL) {
        cJSON_Delete(events);
        return ST_NOMEM;
    }
    job->events = events;
    st_code code = ST_OK;
    pthread_mutex_lock(&delivery->lock);
    if (delivery->queued + delivery->in_flight >= delivery->queue_max) {
        code = ST_LIMIT;
        goto done;
    }
    job->id = ++delivery->next_id;
    code = log_add(delivery, job->id, events);
    if (code != ST_OK)
        goto done;
    job->due_ms = monotonic_ms();
    queue_insert(delivery, job);
    if (ret_id != NULL)
        *ret_id = job->id;
    job = NULL;
    pthread_cond_signal(&delivery->wake);
done:
    pthread_mutex_unlock(&delivery->lock);
    job_free(job);
    return code;
}

/* ---- settings ---- */

void emu_delivery_set_redelivery(emu_delivery *delivery, bool enabled)
{
    pthread_mutex_lock(&delivery->lock);
    delivery->redelivery = enabled;
    pthread_mutex_unlock(&delivery->lock);
}

st_code emu_delivery_set_url(emu_delivery *delivery, const char *url)
{
    char *copy = strdup(url);
    if (copy == NULL)
        return ST_NOMEM;
    pthread_mutex_lock(&delivery->lock);
    free(delivery->url);
    delivery->url = copy;
    pthread_mutex_unlock(&delivery->lock);
    return ST_OK;
}

void emu_delivery_set_escape(emu_delivery *delivery, emu_escape_mode mode)
{
    pthread_mutex_lock(&delivery->lock);
    delivery->escape = mode;
    pthread_mutex_unlock(&delivery->lock);
}

void emu_delivery_corrupt_signatures(emu_delivery *delivery, int attempts)
{
    pthread_mutex_lock(&delivery->lock);
    delivery->corrupt_remaining = attempts > 0 ? attempts : 0;
    pthread_mutex_unlock(&delivery->lock);
}

cJSON *emu_delivery_settings_json(emu_delivery *delivery)
{
    cJSON *root = cJSON_CreateObject();
    if (root == NULL)
        return NULL;
    pthread_mutex_lock(&delivery->lock);
    bool ok =
        cJSON_AddStringToObject(root, "webhookUrl", delivery->url) != NULL &&
        cJSON_AddBoolToObject(root, "redelivery", delivery->redelivery) != NULL &&
        cJSON_AddStringToObject(root, "escapeNonAscii", emu_escape_mode_name(delivery->escape)) !=
            NULL &&
        cJSON_AddNumberToObject(root, "webhookTimeoutMs", (double)delivery->timeout_ms) != NULL &&
        cJSON_AddNumberToObject(root, "redeliveryIntervalMs",
                                (double)delivery->retry_interval_ms) != NULL &&
        cJSON_AddNumberToObject(root, "redeliveryMaxIntervalMs",
                                (double)delivery->retry_max_interval_ms) != NULL &&
        cJSON_AddNumberToObject(root, "redeliveryAttempts", (double)delivery->max_attempts) !=
            NULL &&
        cJSON_AddNumberToObject(root, "corruptSignatures", delivery->corrupt_remaining) != NULL;
    pthread_mutex_unlock(&delivery->lock);
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

void emu_delivery_clear(emu_delivery *delivery)
{
    pthread_mutex_lock(&delivery->lock);
    queue_drop_all(delivery);
    for (size_t i = 0; i < delivery->log_count; i++)
        log_entry_free(&delivery->logs[(delivery->log_start + i) % delivery->log_max]);
    delivery->log_start = 0;
    delivery->log_count = 0;
    delivery->corrupt_remaining = 0;
    pthread_mutex_unlock(&delivery->lock);
}

size_t emu_delivery_pending(emu_delivery *delivery)
{
    pthread_mutex_lock(&delivery->lock);
    size_t pending = delivery->queued + delivery->in_flight;
    pthread_mutex_unlock(&delivery->lock);
    return pending;
}

static const char *state_name(delivery_state state)
{
    switch (state) {
    case STATE_PENDING:
        return "pending";
    case STATE_DELIVERED:
        return "delivered";
    default:
        return "failed";
    }
}

static bool add_attempt_json(cJSON *attempts, const attempt_log *attempt)
{
    cJSON *item = cJSON_CreateObject();
    if (item == NULL)
        return false;
    cJSON_AddItemToArray(attempts, item);
    return cJSON_AddNumberToObject(item, "at", (double)attempt->at_ms) != NULL &&
           cJSON_AddNumberToObject(item, "status", (double)attempt->status) != NULL &&
           (attempt->error[0] == '\0' ||
            cJSON_AddStringToObject(item, "error", attempt->error) != NULL) &&
           cJSON_AddBoolToObject(item, "isRedelivery", attempt->redelivery) != NULL &&
           cJSON_AddBoolToObject(item, "escapedNonAscii", attempt->escaped) != NULL &&
           cJSON_AddBoolToObject(item, "signatureValid", attempt->signature_valid) != NULL &&
           cJSON_AddStringToObject(item, "signatureHeader", attempt->signature_header) != NULL &&
           cJSON_AddNumberToObject(item, "durationMs", (double)attempt->duration_ms) != NULL;
}

cJSON *emu_delivery_log_json(emu_delivery *delivery, uint64_t after, size_t limit)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *list = root != NULL ? cJSON_AddArrayToObject(root, "deliveries") : NULL;
    if (list == NULL) {
        cJSON_Delete(root);
        return NULL;
    }
    bool ok = true;
    size_t listed = 0;
    pthread_mutex_lock(&delivery->lock);
    for (size_t i = 0; ok && i < delivery->log_count && listed < limit; i++) {
        const delivery_log *entry = &delivery->logs[(delivery->log_start + i) % delivery->log_max];
        if (entry->id <= after)
            continue;
        listed++;
        cJSON *item = cJSON_CreateObject();
        if (item == NULL) {
            ok = false;
            break;
        }
        cJSON_AddItemToArray(list, item);
        cJSON *events = NULL, *attempts = NULL;
        ok = cJSON_AddNumberToObject(item, "id", (double)entry->id) != NULL &&
             cJSON_AddStringToObject(item, "state", state_name(entry->state)) != NULL &&
             cJSON_AddNumberToObject(item, "created", (double)entry->created_ms) != NULL &&
             cJSON_AddNumberToObject(item, "attemptCount", entry->attempt_count) != NULL &&
             (events = cJSON_AddArrayToObject(item, "webhookEventIds")) != NULL &&
             (attempts = cJSON_AddArrayToObject(item, "attempts")) != NULL;
        for (size_t e = 0; ok && e < entry->event_count; e++) {
            cJSON *event_id = cJSON_CreateString(entry->event_ids[e]);
            ok = event_id != NULL;
            if (ok)
                cJSON_AddItemToArray(events, event_id);
        }
        int kept = entry->attempt_count < ATTEMPTS_KEPT ? entry->attempt_count : ATTEMPTS_KEPT;
        for (int a = 0; ok && a < kept; a++)
            ok = add_attempt_json(attempts, &entry->attempts[a]);
    }
    pthread_mutex_unlock(&delivery->lock);
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}
