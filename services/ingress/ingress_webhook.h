/* ingress_webhook: LINE webhook body -> the messages the ingress publishes.
 *
 * A pure function of the raw body: it checks LINE's shape (../shared/line-openapi/webhook.yml:
 * CallbackRequest, Event, Source) within fixed bounds and yields, for every event, its source
 * (user | group | room, and the id), the msg-id (= webhookEventId, for JetStream
 * de-duplication) and the payload (the event's JSON, re-serialised compactly). It is the
 * entry point of the fuzz target tests/fuzz/ingress_webhook. The subject itself is the
 * caller's (ingress_subject): it carries a pseudonym of the source id, not the id.
 *
 * What is accepted:
 *   - the body is UTF-8 JSON, nested at most max_depth deep, no larger than max_body;
 *   - root object: "destination" (id string), "events" (array of at most max_events);
 *   - every event: "type" (letters), "webhookEventId" (id), "timestamp" (integer >= 0),
 *     "mode" ("active" | "standby"), "deliveryContext"."isRedelivery" (boolean);
 *   - "source" (when present): "type" user | group | room with "userId" | "groupId" | "roomId"
 *     (group and room sources need no userId: LINE omits it for some users);
 *   - an id (destination, webhookEventId, source id) is 1..INGRESS_ID_MAX characters of
 *     [A-Za-z0-9_-], so it can never split or widen a NATS subject ('.', '*', '>', spaces).
 * An event without "source" (channel-level events such as module or botSuspended) has no
 * conversation to go to: it is counted in `skipped` and not published. Standby-mode events are
 * kept: the conversation service decides what to do with them.
 *
 * Thread-safe (cJSON with its default allocator); never logs. */
#ifndef ESS_INGRESS_WEBHOOK_H
#define ESS_INGRESS_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"
#include "vault.h"

#define INGRESS_ID_MAX 64
#define INGRESS_DEFAULT_MAX_BODY ((size_t)1 << 20)
#define INGRESS_DEFAULT_MAX_EVENTS 100
#define INGRESS_DEFAULT_MAX_DEPTH 32
/* "line.in.group." + pseudonym + NUL */
#define INGRESS_SUBJECT_SIZE (sizeof("line.in.group.") + VAULT_PSEUDONYM_HEX)

typedef struct ingress_limits {
    size_t max_body;   /* bytes; 0 = INGRESS_DEFAULT_MAX_BODY */
    size_t max_events; /* events per webhook; 0 = INGRESS_DEFAULT_MAX_EVENTS */
    int max_depth;     /* JSON nesting; 0 = INGRESS_DEFAULT_MAX_DEPTH */
} ingress_limits;

typedef struct ingress_webhook_event {
    const char *source_kind;             /* "user", "group" or "room" (static; never free) */
    char source_id[INGRESS_ID_MAX + 1];  /* userId, groupId or roomId */
    char msg_id[INGRESS_ID_MAX + 1];     /* webhookEventId */
    const char *type;   /* LINE event type for metrics: one of a fixed set of static names
                           ("message", "follow", ...) or "other"; never free */
    char *payload;      /* the event's JSON, compact, NUL-terminated; owned by the webhook */
    size_t payload_len; /* strlen(payload) */
    bool redelivery;    /* deliveryContext.isRedelivery */
    bool standby;       /* mode == "standby" */
} ingress_webhook_event;

typedef struct ingress_webhook {
    ingress_webhook_event *events; /* event_count entries, in body order */
    size_t event_count;
    size_t skipped; /* well-formed events without a source: not published */
} ingress_webhook;

/* Parses one webhook body (body_len bytes, need not be NUL-terminated; body may be NULL when
 * body_len is 0). limits may be NULL (defaults). On ST_OK the caller owns *ret_webhook
 * (ingress_webhook_destroy); zero events is ST_OK. ST_INVALID: not JSON, not UTF-8, or not
 * LINE's shape; ST_LIMIT: a bound was exceeded (body size, event count, depth); ST_NOMEM.
 * err->message then says what and where (event index, field name), never a value from the
 * body. */
st_code ingress_webhook_parse(const char *body, size_t body_len, const ingress_limits *limits,
                              ingress_webhook **ret_webhook, st_error *err);

void ingress_webhook_destroy(ingress_webhook *webhook); /* accepts NULL */

/* The subject an event is published on: line.in.<kind>.<pseudonym of the source id> under
 * key (derived from the channel secret for VAULT_PURPOSE_LINE_IN_SUBJECT). Why not the id:
 * nats-server 2.9 keeps every subject of a stream in its per-subject index file unencrypted,
 * even with the store's cipher on, and a LINE user id must not be on disk in clear
 * (DESIGN.md §2). Stable per source, so one user's events still share a subject. */
void ingress_subject(const vault_pseudonym_key *key, const ingress_webhook_event *event,
                     char ret_subject[INGRESS_SUBJECT_SIZE]);

#endif
