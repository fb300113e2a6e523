/* emu_delivery: posting webhooks to the bot, as LINE does, on worker threads.
 *
 * A submitted delivery is one POST carrying one or more events. Worker threads (libcurl) sign
 * each attempt's body with the channel secret (x-line-signature, the header name's letter case
 * varying from attempt to attempt), escape non-ASCII as \uXXXX on some attempts (or always /
 * never), and wait up to the configured timeout (LINE: 2 s). With redelivery on, a non-2xx
 * answer, a refused connection or no answer in time is retried later with the same events and
 * webhookEventIds and deliveryContext.isRedelivery true, backing off from retry_interval_ms up
 * to retry_max_interval_ms, at most max_attempts attempts in all.
 *
 * The HTTP event loop only ever calls emu_delivery_submit (a queue insert), so it never waits
 * on the bot. Every delivery and attempt is kept (the last log_max deliveries) for read-back.
 *
 * Thread-safe: every function may be called from any thread. */
#ifndef EMU_DELIVERY_H
#define EMU_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "status.h"

typedef enum emu_escape_mode {
    EMU_ESCAPE_NEVER,
    EMU_ESCAPE_SOMETIMES, /* every other attempt */
    EMU_ESCAPE_ALWAYS,
} emu_escape_mode;

/* "never" | "sometimes" | "always" and back. */
const char *emu_escape_mode_name(emu_escape_mode mode);
st_code emu_escape_mode_parse(const char *name, emu_escape_mode *ret_mode);

typedef struct emu_delivery_config {
    const char *webhook_url;    /* copied */
    const char *channel_secret; /* copied */
    const char *destination;    /* the bot's user id, copied */
    int64_t timeout_ms;
    bool redelivery;
    int64_t retry_interval_ms;
    int64_t retry_max_interval_ms;
    int64_t max_attempts;
    emu_escape_mode escape;
    int workers;      /* 1..16 */
    size_t log_max;   /* deliveries kept for read-back */
    size_t queue_max; /* deliveries waiting (new or to redeliver); ST_LIMIT beyond */
} emu_delivery_config;

/* What happened to one attempt, for the service's log and metrics. Borrowed for the call. */
typedef struct emu_delivery_outcome {
    uint64_t delivery_id;
    int attempt;       /* 1-based */
    long status;       /* HTTP status, 0 when there was no answer */
    const char *error; /* curl's text when there was no answer, else NULL */
    bool delivered;    /* 2xx */
    bool will_retry;
    int64_t duration_ms;
} emu_delivery_outcome;

typedef void (*emu_delivery_observer)(const emu_delivery_outcome *outcome, void *closure);

typedef struct emu_delivery emu_delivery;

/* Creates the queue and starts the workers. observer (may be NULL) is called on a worker thread
 * after every attempt. Caller owns the result (emu_delivery_destroy). Requires
 * curl_global_init to have run. */
st_code emu_delivery_create(const emu_delivery_config *config, emu_delivery_observer observer,
                            void *observer_closure, emu_delivery **ret_delivery);
/* Stops the workers (an attempt in flight is aborted), drops what is queued, frees. Blocks
 * until the workers have exited. Accepts NULL. */
void emu_delivery_destroy(emu_delivery *delivery);

/* Queues one POST with these events (a cJSON array; ownership is taken in every case).
 * *ret_id (may be NULL) gets the delivery id. ST_LIMIT when the queue is full. */
st_code emu_delivery_submit(emu_delivery *delivery, cJSON *events, uint64_t *ret_id);

/* Runtime settings. */
void emu_delivery_set_redelivery(emu_delivery *delivery, bool enabled);
st_code emu_delivery_set_url(emu_delivery *delivery, const char *url);
void emu_delivery_set_escape(emu_delivery *delivery, emu_escape_mode mode);
/* The next `attempts` attempts carry a wrong signature (to test the receiver's check). */
void emu_delivery_corrupt_signatures(emu_delivery *delivery, int attempts);
/* {"webhookUrl","redelivery","escapeNonAscii","timeoutMs",...}; caller cJSON_Deletes. */
cJSON *emu_delivery_settings_json(emu_delivery *delivery);

/* Forgets the log and drops queued deliveries (an attempt in flight completes). */
void emu_delivery_clear(emu_delivery *delivery);

/* {"deliveries":[{"id","state","events":[ids],"attempts":[...]}]} for ids > after, at most
 * limit, oldest first. state: "pending" | "delivered" | "failed". Caller cJSON_Deletes. */
cJSON *emu_delivery_log_json(emu_delivery *delivery, uint64_t after, size_t limit);

/* Deliveries not yet finished (queued or in flight). */
size_t emu_delivery_pending(emu_delivery *delivery);

#endif
