/* notifier_sender: the one place that calls the LINE Messaging API.
 *
 * One thread runs a libcurl multi handle (POST reply and push, GET profiles): several requests in flight (at most `concurrency`),
 * connections kept alive and reused between requests (HTTP/2 multiplexing with LINE's TLS
 * endpoint, HTTP/1.1 keep-alive with the emulator), connect and total timeouts, TCP
 * keep-alive. Requests start in submission order, no faster than a token bucket allows
 * (LINE: 2,000 requests/s per channel), and after a 429 no request starts for a while
 * (exponential, jittered, reset by the next success): LINE gives no Retry-After.
 *
 * The sender does not decide what an answer means (notifier_policy does) and does not retry:
 * it reports each answer once, through the request's done callback, on the sender thread.
 * The callback may submit again (a fallback push) and must not block long.
 *
 * Thread-safety: notifier_sender_submit from any thread; the rest from the owner. */
#ifndef NOTIFIER_SENDER_H
#define NOTIFIER_SENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "notifier_command.h"
#include "notifier_policy.h"
#include "status.h"
#include "vault.h"

#define NOTIFIER_ANSWER_BYTES_MAX (64 * 1024) /* more of an answer body is dropped */

typedef struct notifier_sender notifier_sender;
typedef struct notifier_request notifier_request;

/* Called once per submitted request, on the sender thread (or on the submitting thread when
 * the sender has stopped: then with NOTIFIER_TRANSPORT_CANCELLED). answer and its body are
 * borrowed for the call; seconds is the request's duration (0 when it never started). The
 * sender no longer touches request when this is called. */
typedef void (*notifier_request_done_fn)(notifier_request *request, const notifier_answer *answer,
                                         double seconds, void *closure);

struct notifier_request {
    /* Set by the caller; body and path are borrowed until done runs. */
    notifier_endpoint endpoint;
    const char *body;  /* reply, push: the JSON posted */
    size_t body_len;
    const char *path;  /* profile: the path GET from the API base ("/v2/bot/profile/U…") */
    char retry_key[VAULT_UUID_TEXT]; /* X-Line-Retry-Key; "" = none (replies) */
    notifier_request_done_fn done;
    void *closure;
    /* The sender's. */
    notifier_request *next_, *prev_;
    void *easy_;
    struct curl_slist *headers_;
    char *answer_;
    size_t answer_len_;
};

typedef struct notifier_sender_options {
    const char *api_base;      /* "https://api.line.me" (copied; a trailing '/' is ignored) */
    const char *channel_token; /* copied; wiped on destroy */
    int concurrency;           /* requests in flight, >= 1 */
    int64_t connect_timeout_ms;
    int64_t request_timeout_ms; /* whole request */
    double rate_per_second;     /* token bucket; burst = a tenth of a second's worth (>= 1) */
    int64_t throttle_min_ms;    /* pause after a 429: doubles per consecutive 429 ... */
    int64_t throttle_max_ms;    /* ... up to this */
    /* Called on the sender thread about every tick_ms (heartbeats of held deliveries). */
    void (*tick)(void *closure);
    int64_t tick_ms;
    void *tick_closure;
} notifier_sender_options;

typedef struct notifier_sender_stats {
    size_t queued;    /* submitted, not started */
    size_t in_flight; /* started, not answered */
} notifier_sender_stats;

/* Starts the sender thread (curl_global_init must have run). Caller owns *ret_sender. */
st_code notifier_sender_start(const notifier_sender_options *options, notifier_sender **ret_sender,
                              st_error *err);

/* Queues a request (never blocks, never fails: after the stop its done runs at once with
 * NOTIFIER_TRANSPORT_CANCELLED). Thread-safe. */
void notifier_sender_submit(notifier_sender *sender, notifier_request *request);

/* Thread-safe snapshot. */
void notifier_sender_get_stats(notifier_sender *sender, notifier_sender_stats *ret_stats);

/* Stops: requests (also those submitted meanwhile) keep being sent until none is left or
 * drain_ms passed; then the rest are cancelled (done with NOTIFIER_TRANSPORT_CANCELLED) and
 * the thread ends. Blocks until it has. Then frees the sender. Accepts NULL. */
void notifier_sender_stop(notifier_sender *sender, int64_t drain_ms);

#endif
