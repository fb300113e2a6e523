#include "ingress_http.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <h2o.h>
#include <h2o/multithread.h>

#include "ingress_signature.h"
#include "ingress_webhook.h"

#define WEBHOOK_PATH "/line/webhook"
#define LINE_IN_STREAM "LINE_IN"
/* The loop-side deadline lies a little past the batch's own timeout: it only answers when the
 * bus fails to report at all, which would otherwise leave LINE hanging. */
#define DEADLINE_GRACE_MS 250
/* Rejections come from outside and can come in floods: one log line per kind per second. */
#define LOG_INTERVAL_NS 1000000000LL
#define EVENT_TYPES_MAX 32
/* Events whose acks are awaited, across requests. Kept below the bus's pending-ack bound
 * (4096 per connection) so that bus_batch_add never has to block the event loop: beyond it a
 * webhook is answered 503 at once and LINE retries later. */
#define PENDING_EVENTS_MAX 2048

/* Statuses with their own series in ess_ingress_requests_total. */
static const int counted_statuses[] = {200, 400, 401, 404, 405, 413, 500, 503};
#define COUNTED_STATUSES (sizeof(counted_statuses) / sizeof(counted_statuses[0]))

enum log_kind { LOG_KIND_SIGNATURE, LOG_KIND_SHAPE, LOG_KIND_UNAVAILABLE, LOG_KIND_COUNT };

typedef struct type_counter {
    const char *type; /* static name from ingress_webhook: compared by pointer */
    met_counter *counter;
} type_counter;

typedef struct ingress_runtime {
    svc *owner;
    ingress_service *service;
    ingress_limits limits;
    size_t secret_len;
    vault_pseudonym_key subject_key; /* line.in subjects: from the channel secret */

    h2o_loop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    bool receiver_registered;
    h2o_timeout_t deadline;
    bool deadline_ready;
    size_t in_flight;        /* pending webhooks; loop thread only */
    size_t in_flight_events; /* their events; loop thread only */

    met_registry *metrics;
    met_counter *requests[COUNTED_STATUSES];
    met_counter *requests_other;
    type_counter types[EVENT_TYPES_MAX];
    size_t type_count;
    met_counter *events_stored, *events_duplicate, *events_failed, *events_skipped;
    met_counter *signature_failures;
    met_histogram *publish_seconds;
    met_gauge *pending_gauge;

    int64_t last_log_ns[LOG_KIND_COUNT];
} ingress_runtime;

/* One webhook whose batch is in flight. Heap; freed on the loop thread once the batch has
 * reported (finish), whether or not the request was still there to be answered. */
typedef struct pending_webhook {
    h2o_multithread_message_t message; /* linked into the queue by the nats.c thread */
    ingress_runtime *runtime;
    h2o_req_t *req;                 /* NULL once answered or disposed by h2o */
    struct pending_webhook **guard; /* lives in req->pool; points here while req lives */
    h2o_timeout_entry_t deadline;
    bus_batch *batch;
    size_t event_count;
    int64_t started_ns;
    /* Written by the nats.c thread before it sends the message; the queue's mutex orders
     * these writes before the loop thread's reads. */
    st_code status;
    bus_batch_result result;
} pending_webhook;

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static bool log_allowed(ingress_runtime *rt, enum log_kind kind)
{
    int64_t now = monotonic_ns();
    if (rt->last_log_ns[kind] != 0 && now - rt->last_log_ns[kind] < LOG_INTERVAL_NS)
        return false;
    rt->last_log_ns[kind] = now;
    return true;
}

static void count_status(ingress_runtime *rt, int status)
{
    for (size_t i = 0; i < COUNTED_STATUSES; i++)
        if (counted_statuses[i] == status) {
            met_counter_add(rt->requests[i], 1);
            return;
        }
    met_counter_add(rt->requests_other, 1);
}

static met_counter *type_counter_for(ingress_runtime *rt, const char *type)
{
    for (size_t i = 0; i < rt->type_count; i++)
        if (rt->types[i].type == type)
            return rt->types[i].counter;
    if (rt->type_count == EVENT_TYPES_MAX)
        return NULL;
    char labels[64];
    snprintf(labels, sizeof(labels), "type=\"%s\"", type);
    met_counter *counter = NULL;
    if (met_counter_get(rt->metrics, "ess_ingress_events_total", "webhook events received, by type",
                        labels, &counter) != ST_OK)
        return NULL;
    rt->types[rt->type_count++] = (type_counter){.type = type, .counter = counter};
    return counter;
}

/* Answers with a small JSON body; the reason is our own text, never request content. */
static int respond(ingress_runtime *rt, h2o_req_t *req, int status, const char *reason,
                   const char *detail)
{
    char body[320];
    int len;
    if (detail != NULL) {
        char scrubbed[ST_MESSAGE_MAX];
        log_scrub(detail, scrubbed, sizeof(scrubbed));
        /* Detail texts are ours; still, nothing in them may break the JSON string. */
        for (char *c = scrubbed; *c != '\0'; c++)
            if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
                *c = '_';
        len = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", scrubbed);
    } else {
        len = snprintf(body, sizeof(body), "{}\n");
    }
    if (len < 0)
        len = 0;
    if ((size_t)len >= sizeof(body))
        len = (int)sizeof(body) - 1;
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = (size_t)len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_send_inline(req, body, (size_t)len);
    count_status(rt, status);
    return 0;
}

static int respond_unavailable(ingress_runtime *rt, h2o_req_t *req, const char *why,
                               const st_error *err)
{
    if (log_allowed(rt, LOG_KIND_UNAVAILABLE))
        log_event(LOG_WARN, "ingress.unavailable",
                  "webhook answered 503: events not stored, LINE will redeliver",
                  LOG_STR("why", why), LOG_ERR(err));
    return respond(rt, req, 503, "Service Unavailable", "events not stored, retry later");
}

/* ---- completion --------------------------------------------------------------------------- */

static void on_request_disposed(void *slot)
{
    pending_webhook **guard = slot;
    if (*guard != NULL) {
        (*guard)->req = NULL;
        (*guard)->guard = NULL; /* this slot is being freed with the pool */
    }
}

/* Detaches the request from the pending state (it has been answered). */
static void forget_request(pending_webhook *pending)
{
    if (pending->guard != NULL)
        *pending->guard = NULL;
    pending->guard = NULL;
    pending->req = NULL;
}

/* Loop thread: the batch has reported. Answers if nobody has yet, then frees everything. */
static void finish(ingress_runtime *rt, pending_webhook *pending)
{
    double seconds = (double)(monotonic_ns() - pending->started_ns) / 1e9;
    met_histogram_observe(rt->publish_seconds, seconds);
    met_counter_add(rt->events_stored, pending->result.stored);
    met_counter_add(rt->events_duplicate, pending->result.duplicates);
    met_counter_add(rt->events_failed, pending->result.failed);
    if (h2o_timeout_is_linked(&pending->deadline))
        h2o_timeout_unlink(&pending->deadline);

    if (pending->req != NULL) {
        bool stored = pending->status == ST_OK && pending->result.failed == 0;
        if (stored) {
            respond(rt, pending->req, 200, "OK", NULL);
            log_event(LOG_DEBUG, "ingress.stored", "webhook events stored",
                      LOG_INT("events", pending->event_count),
                      LOG_INT("duplicates", pending->result.duplicates),
                      LOG_INT("micros", (int64_t)(seconds * 1e6)));
        } else {
            st_error err = {0};
            st_fail(&err, pending->status == ST_OK ? ST_UNAVAILABLE : pending->status,
                    "%zu of %zu publishes not acknowledged", pending->result.failed,
                    pending->event_count);
            respond_unavailable(rt, pending->req, "publish", &err);
        }
        forget_request(pending);
    }
    bus_batch_destroy(pending->batch);
    rt->in_flight_events -= pending->event_count;
    free(pending);
    rt->in_flight--;
    met_gauge_set(rt->pending_gauge, (int64_t)rt->in_flight);
}

/* Loop thread: the bus has not reported within the publish timeout plus grace. */
static void on_deadline(h2o_timeout_entry_t *entry)
{
    pending_webhook *pending = H2O_STRUCT_FROM_MEMBER(pending_webhook, deadline, entry);
    if (pending->req != NULL) {
        st_error err = {0};
        st_fail(&err, ST_TIMEOUT, "the bus did not report the batch in time");
        respond_unavailable(pending->runtime, pending->req, "deadline", &err);
        forget_request(pending);
    }
    /* the batch report will still come and free the pending state */
}

/* nats.c thread: hand the outcome to the loop. */
static void on_batch_done(bus_batch *batch, st_code status, const bus_batch_result *result,
                          void *closure)
{
    (void)batch;
    pending_webhook *pending = closure;
    pending->status = status;
    if (result != NULL)
        pending->result = *result;
    h2o_multithread_send_message(&pending->runtime->receiver, &pending->message);
}

static void on_completions(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    ingress_runtime *rt = H2O_STRUCT_FROM_MEMBER(ingress_runtime, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        pending_webhook *pending =
            H2O_STRUCT_FROM_MEMBER(pending_webhook, message.link, messages->next);
        h2o_linklist_unlink(&pending->message.link);
        finish(rt, pending);
    }
}

/* ---- the handler -------------------------------------------------------------------------- */

static h2o_iovec_t find_signature(h2o_req_t *req, bool *ret_found)
{
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *header = &req->headers.entries[i];
        if (ingress_signature_header_matches(header->name->base, header->name->len)) {
            *ret_found = true;
            return header->value;
        }
    }
    *ret_found = false;
    return h2o_iovec_init(NULL, 0);
}

/* Queues every event of the webhook and arms the report; answers itself on failure. */
static int publish_events(ingress_runtime *rt, h2o_req_t *req, const ingress_webhook *webhook)
{
    st_error err = {0};
    bus *b = svc_bus(rt->owner);
    if (b == NULL || !bus_connected(b)) {
        st_fail(&err, ST_UNAVAILABLE, "NATS not connected");
        return respond_unavailable(rt, req, "disconnected", &err);
    }
    if (rt->in_flight_events + webhook->event_count > PENDING_EVENTS_MAX) {
        st_fail(&err, ST_LIMIT, "more than %d events awaiting acks", PENDING_EVENTS_MAX);
        return respond_unavailable(rt, req, "backlog", &err);
    }
    pending_webhook *pending = calloc(1, sizeof(*pending));
    if (pending == NULL) {
        st_fail(&err, ST_NOMEM, "no memory for a pending webhook");
        return respond_unavailable(rt, req, "memory", &err);
    }
    pending->runtime = rt;
    pending->event_count = webhook->event_count;
    pending->started_ns = monotonic_ns();
    if (bus_batch_create(b, &pending->batch, &err) != ST_OK) {
        free(pending);
        return respond_unavailable(rt, req, "batch", &err);
    }
    for (size_t i = 0; i < webhook->event_count; i++) {
        const ingress_webhook_event *event = &webhook->events[i];
        char subject[INGRESS_SUBJECT_SIZE];
        ingress_subject(&rt->subject_key, event, subject);
        if (bus_batch_add(pending->batch, subject, event->payload, event->payload_len,
                          event->msg_id, &err) != ST_OK) {
            /* Acks of what was queued arrive after destroy and are ignored (bus.h). */
            bus_batch_destroy(pending->batch);
            free(pending);
            return respond_unavailable(rt, req, "queue", &err);
        }
    }

    pending->req = req;
    pending->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*pending->guard), on_request_disposed);
    *pending->guard = pending;
    pending->deadline.cb = on_deadline;
    rt->in_flight++;
    rt->in_flight_events += pending->event_count;
    met_gauge_set(rt->pending_gauge, (int64_t)rt->in_flight);
    h2o_timeout_link(rt->loop, &rt->deadline, &pending->deadline);

    if (bus_batch_on_done(pending->batch, rt->service->config.publish_timeout_ms, on_batch_done,
                          pending, &err) != ST_OK) {
        pending->status = err.code != ST_OK ? err.code : ST_UNAVAILABLE;
        pending->result.failed = webhook->event_count;
        finish(rt, pending); /* answers 503 and frees */
    }
    return 0;
}

int ingress_handle_webhook(svc *s, h2o_req_t *req, void *closure)
{
    (void)s;
    ingress_service *service = closure;
    ingress_runtime *rt = service->runtime;
    st_error err = {0};

    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT(WEBHOOK_PATH)))
        return -1;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("POST"));
        return respond(rt, req, 405, "Method Not Allowed", "only POST");
    }
    /* h2o refuses larger bodies itself (svc_http_set_max_body); this is the second fence. */
    if (req->entity.len > rt->limits.max_body)
        return respond(rt, req, 413, "Payload Too Large", "body too large");

    bool has_signature = false;
    h2o_iovec_t signature = find_signature(req, &has_signature);
    if (ingress_signature_verify(service->config.channel_secret, rt->secret_len, req->entity.base,
                                 req->entity.len, signature.base, signature.len, &err) != ST_OK) {
        met_counter_add(rt->signature_failures, 1);
        if (log_allowed(rt, LOG_KIND_SIGNATURE))
            log_event(LOG_WARN, "ingress.signature", "webhook refused: bad signature",
                      LOG_STR("why", has_signature ? "mismatch" : "missing"));
        return respond(rt, req, 401, "Unauthorized", "signature mismatch");
    }

    ingress_webhook *webhook = NULL;
    if (ingress_webhook_parse(req->entity.base, req->entity.len, &rt->limits, &webhook, &err) !=
        ST_OK) {
        if (log_allowed(rt, LOG_KIND_SHAPE))
            log_event(LOG_WARN, "ingress.invalid", "signed webhook refused: not LINE's shape",
                      LOG_ERR(&err));
        return respond(rt, req, 400, "Bad Request", err.message);
    }
    for (size_t i = 0; i < webhook->event_count; i++)
        met_counter_add(type_counter_for(rt, webhook->events[i].type), 1);
    met_counter_add(rt->events_skipped, webhook->skipped);

    int answered;
    if (webhook->event_count == 0)
        answered = respond(rt, req, 200, "OK", NULL); /* LINE's "Verify" sends no events */
    else
        answered = publish_events(rt, req, webhook);
    ingress_webhook_destroy(webhook); /* the batch copied the payloads */
    return answered;
}

/* ---- hooks -------------------------------------------------------------------------------- */

static st_code create_metrics(ingress_runtime *rt, st_error *err)
{
    met_registry *m = rt->metrics;
    char labels[32];
    st_code code = ST_OK;
    for (size_t i = 0; i < COUNTED_STATUSES && code == ST_OK; i++) {
        snprintf(labels, sizeof(labels), "status=\"%d\"", counted_statuses[i]);
        code = met_counter_get(m, "ess_ingress_requests_total", "webhook requests by answer",
                               labels, &rt->requests[i]);
    }
    if (code == ST_OK)
        code = met_counter_get(m, "ess_ingress_requests_total", "webhook requests by answer",
                               "status=\"other\"", &rt->requests_other);
    if (code == ST_OK)
        code = met_counter_get(m, "ess_ingress_publish_results_total", "events by publish outcome",
                               "result=\"stored\"", &rt->events_stored);
    if (code == ST_OK)
        code = met_counter_get(m, "ess_ingress_publish_results_total", "events by publish outcome",
                               "result=\"duplicate\"", &rt->events_duplicate);
    if (code == ST_OK)
        code = met_counter_get(m, "ess_ingress_publish_results_total", "events by publish outcome",
                               "result=\"failed\"", &rt->events_failed);
    if (code == ST_OK)
        code = met_counter_get(m, "ess_ingress_events_skipped_total",
                               "well-formed events without a source (not published)", NULL,
                               &rt->events_skipped);
    if (code == ST_OK)
        code = met_counter_get(m, "ess_ingress_signature_failures_total",
                               "webhooks refused for a missing or wrong x-line-signature", NULL,
                               &rt->signature_failures);
    if (code == ST_OK)
        code = met_histogram_get(m, "ess_ingress_publish_seconds",
                                 "time from the first publish to the last ack of a webhook", NULL,
                                 met_latency_bounds, met_latency_bound_count, &rt->publish_seconds);
    if (code == ST_OK)
        code = met_gauge_get(m, "ess_ingress_pending_webhooks",
                             "webhooks waiting for their publishes to be acknowledged", NULL,
                             &rt->pending_gauge);
    if (code != ST_OK)
        return st_fail(err, code, "cannot create the ingress metrics");
    return ST_OK;
}

st_code ingress_init(svc *s, void *closure, st_error *err)
{
    ingress_service *service = closure;
    ingress_runtime *rt = calloc(1, sizeof(*rt));
    if (rt == NULL)
        return st_fail(err, ST_NOMEM, "no memory for the ingress state");
    rt->owner = s;
    rt->service = service;
    rt->metrics = svc_metrics(s);
    rt->secret_len = strlen(service->config.channel_secret);
    vault_pseudonym_key_derive(service->config.channel_secret, rt->secret_len,
                               VAULT_PURPOSE_LINE_IN_SUBJECT, &rt->subject_key);
    rt->limits = (ingress_limits){.max_body = (size_t)service->config.max_body,
                                  .max_events = (size_t)service->config.max_events};
    rt->loop = svc_loop(s);
    service->runtime = rt; /* from here on ingress_fini frees it */

    st_code code = create_metrics(rt, err);
    if (code != ST_OK)
        return code;
    svc_http_set_max_body(s, (size_t)service->config.max_body);
    rt->queue = h2o_multithread_create_queue(rt->loop);
    if (rt->queue == NULL)
        return st_fail(err, ST_INTERNAL, "cannot create the completion queue");
    h2o_multithread_register_receiver(rt->queue, &rt->receiver, on_completions);
    rt->receiver_registered = true;
    h2o_timeout_init(rt->loop, &rt->deadline,
                     (uint64_t)(service->config.publish_timeout_ms + DEADLINE_GRACE_MS));
    rt->deadline_ready = true;
    return ST_OK;
}

void ingress_fini(svc *s, void *closure)
{
    (void)s;
    ingress_service *service = closure;
    ingress_runtime *rt = service->runtime;
    if (rt == NULL)
        return;
    /* Batches still in flight will report on a nats.c thread into the queue: keep running the
     * loop until they have, bounded by the publish timeout. */
    int64_t deadline =
        monotonic_ns() + (service->config.publish_timeout_ms + 2 * DEADLINE_GRACE_MS) * 1000000LL;
    while (rt->in_flight > 0 && monotonic_ns() < deadline)
        h2o_evloop_run(rt->loop, 50);
    if (rt->in_flight > 0) {
        /* Freeing the queue now could let a late report write into freed memory: keep it. */
        log_event(LOG_WARN, "ingress.fini_pending", "batches still unreported at exit",
                  LOG_INT("pending", rt->in_flight));
        service->runtime = NULL;
        return;
    }
    if (rt->deadline_ready)
        h2o_timeout_dispose(rt->loop, &rt->deadline);
    if (rt->receiver_registered)
        h2o_multithread_unregister_receiver(rt->queue, &rt->receiver);
    if (rt->queue != NULL) {
        h2o_multithread_destroy_queue(rt->queue);
#if H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR <= 2
        free(rt->queue); /* libh2o 2.2 closes the evloop queue's sockets but not the queue */
#endif
    }
    free(rt);
    service->runtime = NULL;
}

st_code ingress_ready(svc *s, void *closure, st_error *err)
{
    (void)closure;
    bus *b = svc_bus(s);
    if (b == NULL)
        return st_fail(err, ST_UNAVAILABLE, "NATS not connected");
    st_code code = bus_stream_exists(b, LINE_IN_STREAM, err);
    if (code == ST_NOT_FOUND)
        return st_fail(err, code, "stream LINE_IN missing");
    if (code != ST_OK)
        return st_fail(err, code, "cannot check stream LINE_IN");
    return ST_OK;
}
