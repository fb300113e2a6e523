/* notifier_policy: what LINE's answer means, how long to wait before trying again, and how
 * fast to call LINE at all.
 *
 * LINE's answer to one request (DESIGN.md §4, ../shared/line-openapi):
 *   2xx                             delivered
 *   409 to a push with a retry key  delivered earlier ("the retry key is already accepted")
 *   429                             throttled: try again later (LINE sends no Retry-After)
 *   5xx, no answer in time, connection refused or broken
 *                                   transient: try again later with the same retry key
 *   400 "Invalid reply token" to a reply
 *                                   the token is used or expired: push instead
 *   401, 403, 404, 405              the channel or the configuration is wrong, not the message:
 *                                   try again later (an operator must act; the service logs it)
 *   any other 4xx                   the message itself is refused (validation, unknown target):
 *                                   dead-letter it with LINE's error message, never retry
 *
 * Pure functions (the bucket is a value owned by one thread). */
#ifndef NOTIFIER_POLICY_H
#define NOTIFIER_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "notifier_command.h"

#define NOTIFIER_REASON_MAX 200 /* = sizeof(bus_outcome.reason) */
#define NOTIFIER_INVALID_REPLY_TOKEN "Invalid reply token"

typedef enum notifier_transport {
    NOTIFIER_TRANSPORT_OK,        /* an HTTP answer arrived */
    NOTIFIER_TRANSPORT_TIMEOUT,   /* connect or total timeout */
    NOTIFIER_TRANSPORT_CONNECT,   /* refused, unreachable, name not resolved */
    NOTIFIER_TRANSPORT_ERROR,     /* connection broken, TLS, anything else */
    NOTIFIER_TRANSPORT_CANCELLED, /* the service stopped before the answer */
} notifier_transport;

typedef struct notifier_answer {
    notifier_transport transport;
    long status;      /* HTTP status when transport is OK */
    const char *body; /* LINE's answer body (may be NULL), body_len bytes */
    size_t body_len;
    bool had_retry_key;
} notifier_answer;

typedef enum notifier_verdict {
    NOTIFIER_DELIVERED,
    NOTIFIER_RETRY,          /* transient; also throttled (see notifier_throttled) */
    NOTIFIER_TOKEN_REJECTED, /* a reply whose token LINE refused */
    NOTIFIER_REJECT,         /* will never succeed: dead letter */
} notifier_verdict;

/* Classifies an answer and writes why into reason (reason_size >= 64): LINE's own error
 * message and first detail for 4xx, scrubbed of anything that looks like personal data. */
notifier_verdict notifier_classify(notifier_endpoint endpoint, const notifier_answer *answer,
                                   char *reason, size_t reason_size);

/* True for 429. */
bool notifier_throttled(const notifier_answer *answer);
/* True for 401/403/404/405: configuration, not the message. */
bool notifier_misconfigured(const notifier_answer *answer);

/* A bounded label for metrics: "200", "409", "429", "500", ... for the usual codes, "2xx",
 * "4xx", "5xx", "other" for the rest, "timeout", "connect_error", "transport_error",
 * "cancelled" without an answer. Static storage. */
const char *notifier_status_label(const notifier_answer *answer);

/* Exponential backoff with jitter for attempt (1 = after the first failure):
 * d = min(max_ms, min_ms * 2^(attempt-1)), then uniform in [d/2, d] from random. */
int64_t notifier_backoff_ms(uint64_t attempt, int64_t min_ms, int64_t max_ms, uint64_t random);

/* A token bucket: rate tokens a second, at most burst stored; starts full. */
typedef struct notifier_bucket {
    double rate;
    double burst;
    double tokens;
    int64_t refilled_ns;
} notifier_bucket;

void notifier_bucket_init(notifier_bucket *bucket, double rate, double burst, int64_t now_ns);
/* Takes one token: returns 0 when taken, otherwise how many ns until one is there. */
int64_t notifier_bucket_take(notifier_bucket *bucket, int64_t now_ns);

#endif
