/* ingress_http: POST /line/webhook on the svc runtime.
 *
 * Per request, on the event-loop thread and never blocking it:
 *   1. the raw body is already buffered by h2o, bounded by ESS_INGRESS_MAX_BODY (413);
 *   2. x-line-signature (any case) is verified before anything is parsed: 401, nothing
 *      published;
 *   3. the body is parsed (ingress_webhook): invalid JSON or not LINE's shape -> 400; no events
 *      -> 200;
 *   4. every event is queued as one async publish of a bus_batch (subject
 *      line.in.<kind>.<id>, Nats-Msg-Id = webhookEventId); bus_batch_on_done reports the
 *      outcome on a nats.c thread, which hands it back to the loop through an
 *      h2o_multithread queue; the loop answers 200 when every event was stored (or was a
 *      duplicate), 503 when NATS is down, slow past ESS_INGRESS_PUBLISH_TIMEOUT, or refused.
 * A client that goes away before the outcome only loses its answer: the pending state
 * notices the request's disposal (a pool-shared guard) and the batch is still settled.
 *
 * Logs carry codes, counts and error classes only: never the body, the signature, the secret
 * or a user id. */
#ifndef ESS_INGRESS_HTTP_H
#define ESS_INGRESS_HTTP_H

#include <stdint.h>

#include "svc.h"

struct st_h2o_req_t;
struct ingress_runtime; /* loop-thread state, private to ingress_http.c */

typedef struct ingress_config {
    char *channel_secret;       /* ESS_LINE_CHANNEL_SECRET (secret) */
    int64_t max_body;           /* ESS_INGRESS_MAX_BODY, bytes */
    int64_t max_events;         /* ESS_INGRESS_MAX_EVENTS */
    int64_t publish_timeout_ms; /* ESS_INGRESS_PUBLISH_TIMEOUT */
} ingress_config;

/* The service's state, the closure of every svc hook. Zero-initialised by main.c; filled by
 * cfg (config) and ingress_init (runtime). */
typedef struct ingress_service {
    ingress_config config;
    struct ingress_runtime *runtime; /* owned; created by ingress_init, freed by ingress_fini */
} ingress_service;

/* svc hooks (closure = ingress_service *). ingress_init sets the body limit, creates the
 * completion queue on the event loop and the metric series; ST_NOMEM/ST_INTERNAL on failure.
 * ingress_fini waits (bounded by the publish timeout) for batches still in flight, then frees
 * everything; it runs on the loop thread. */
st_code ingress_init(svc *s, void *closure, st_error *err);
void ingress_fini(svc *s, void *closure);
/* Readiness beyond "NATS connected": the LINE_IN stream exists. Blocks briefly (health
 * thread). */
st_code ingress_ready(svc *s, void *closure, st_error *err);

/* The route handler for "/line/webhook" (svc_http_fn). Always answers (returns 0), except for
 * paths below the route that are not the route itself (-1: 404 from the runtime). */
int ingress_handle_webhook(svc *s, struct st_h2o_req_t *req, void *closure);

#endif
