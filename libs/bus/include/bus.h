/* bus: the JetStream layer every service uses (nats.c underneath).
 *
 * - connect with endless reconnect (the service stays up and reports not-ready meanwhile);
 * - ensure the streams and consumers declared in proto/registry.json, idempotently (create,
 *   or update when the declaration changed);
 * - publish with a msg-id (JetStream de-duplicates within the stream's window);
 * - batches of async publishes with one wait per batch and a bound on pending acks;
 * - pull consumers with explicit ack / nak with delay / term, and dead-lettering: a message
 *   whose handler fails on its last allowed delivery (MaxDeliver), or that the handler
 *   rejects as poison, is published to the consumer's dead-letter subject
 *   (ess.dlq.<service>) with the reason, then terminated.
 *
 * Thread-safety: a bus may be shared by threads (nats.c connections are thread-safe).
 * A bus_consumer is used by one thread at a time. A bus_batch by one thread at a time. */
#ifndef ESS_BUS_H
#define ESS_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* ---- registry (proto/registry.json) ---------------------------------------------------- */

#define BUS_NAME_MAX 64
#define BUS_SUBJECT_MAX 256
#define BUS_SUBJECTS_MAX 8
#define BUS_MSG_ID_MAX 128

typedef struct bus_stream_def {
    char name[BUS_NAME_MAX];                          /* "LINE_IN" */
    char subjects[BUS_SUBJECTS_MAX][BUS_SUBJECT_MAX]; /* "line.in.>" */
    size_t subject_count;
    int64_t max_age_ms;          /* 0 = unlimited */
    int64_t duplicate_window_ms; /* JetStream de-duplication window */
    int64_t max_bytes;           /* -1 = unlimited */
    int64_t max_msg_size;        /* -1 = unlimited */
    int replicas;                /* 1 locally; 3 in a cluster */
} bus_stream_def;

typedef struct bus_consumer_def {
    char stream[BUS_NAME_MAX];          /* stream it reads */
    char durable[BUS_NAME_MAX];         /* durable name, "conversation" */
    char filter_subject[BUS_SUBJECT_MAX]; /* "" = whole stream */
    char dead_letter_subject[BUS_SUBJECT_MAX]; /* "ess.dlq.conversation" */
    int64_t ack_wait_ms;
    int max_deliver;                    /* >= 1, or -1 = unlimited (then no dead letters) */
    int max_ack_pending;
} bus_consumer_def;

typedef struct bus_registry {
    bus_stream_def *streams; /* owned */
    size_t stream_count;
    bus_consumer_def *consumers; /* owned */
    size_t consumer_count;
} bus_registry;

/* Parses a registry document (see proto/registry.json for the shape and proto/README.md for
 * the meaning). Every problem found is an ST_INVALID naming the entry. *ret is heap;
 * free with bus_registry_destroy. */
st_code bus_registry_parse(const char *json, size_t len, bus_registry **ret_registry,
                           st_error *err);
/* The registry compiled into the binary from proto/registry.json. Caller owns the result. */
st_code bus_registry_builtin(bus_registry **ret_registry, st_error *err);
void bus_registry_destroy(bus_registry *registry); /* accepts NULL */
/* Sets every stream's replica count to replicas (1..5; 3 in a three-node NATS cluster), so
 * one deployment setting turns the declared single-server streams into replicated ones. Every
 * process that ensures the registry must use the same value, or they undo each other's
 * stream updates. ST_INVALID outside 1..5, registry unchanged. */
st_code bus_registry_set_replicas(bus_registry *registry, int replicas, st_error *err);
/* Borrowed pointer into registry, or NULL. */
const bus_consumer_def *bus_registry_consumer(const bus_registry *registry, const char *durable);
const bus_stream_def *bus_registry_stream(const bus_registry *registry, const char *name);

/* ---- connection -------------------------------------------------------------------------- */

typedef struct bus bus;

typedef struct bus_options {
    const char *url;            /* "nats://127.0.0.1:4222"; comma-separated list allowed */
    const char *client_name;    /* shown in the server's connz, e.g. "ess-ingress" */
    int64_t connect_timeout_ms; /* per attempt; default 2000 when 0 */
    int64_t reconnect_wait_ms;  /* default 500 when 0; reconnects forever */
    int64_t request_timeout_ms; /* JetStream API and sync publish; default 5000 when 0 */
    int max_pending_acks;       /* async publishes in flight per connection; default 4096 */
    bool retry_on_failed_connect; /* true: bus_connect succeeds while the server is down and
                                     the connection comes up later (services); false: fail
                                     fast (CLI tools, tests) */
} bus_options;

/* Connects. On ST_OK the caller owns *ret_bus (bus_destroy). Blocks up to connect timeout. */
st_code bus_connect(const bus_options *options, bus **ret_bus, st_error *err);
/* Flushes pending async publishes (bounded by request timeout), then closes. Accepts NULL. */
void bus_destroy(bus *b);
/* True while the connection is up (not reconnecting, not closed). Thread-safe, non-blocking. */
bool bus_connected(bus *b);

/* Creates or updates every stream and consumer of the registry. Idempotent. Blocks. */
st_code bus_ensure(bus *b, const bus_registry *registry, st_error *err);
st_code bus_ensure_stream(bus *b, const bus_stream_def *stream, st_error *err);
st_code bus_ensure_consumer(bus *b, const bus_consumer_def *consumer, st_error *err);
/* ST_OK when the stream exists on the server, ST_NOT_FOUND when not. Blocks. */
st_code bus_stream_exists(bus *b, const char *stream, st_error *err);
/* Deletes a stream (tests, essctl). ST_NOT_FOUND when absent. */
st_code bus_stream_delete(bus *b, const char *stream, st_error *err);

/* ---- publishing -------------------------------------------------------------------------- */

typedef struct bus_publish_result {
    uint64_t stream_seq;
    bool duplicate; /* the server already had this msg-id within the window */
} bus_publish_result;

/* Publishes one message and waits for the stream's ack. msg_id may be NULL (no dedupe) and
 * is at most BUS_MSG_ID_MAX-1 bytes. data is copied. ret_result may be NULL.
 * ST_UNAVAILABLE when disconnected or no stream answers, ST_TIMEOUT when the ack is late. */
st_code bus_publish(bus *b, const char *subject, const void *data, size_t len,
                    const char *msg_id, bus_publish_result *ret_result, st_error *err);

/* A batch: several async publishes awaited together (the ingress publishes every event of
 * one webhook request, then waits once). */
typedef struct bus_batch bus_batch;

typedef struct bus_batch_result {
    size_t stored;     /* acknowledged as new */
    size_t duplicates; /* acknowledged as duplicates (already stored earlier) */
    size_t failed;     /* not acknowledged (error or timeout) */
} bus_batch_result;

/* Caller owns *ret_batch; destroy with bus_batch_destroy (after it completed or timed out;
 * acks arriving after destroy are ignored safely). */
st_code bus_batch_create(bus *b, bus_batch **ret_batch, st_error *err);
/* Queues one async publish; data is copied. May block while the connection's pending-ack
 * bound is reached (at most the request timeout), then ST_LIMIT. */
st_code bus_batch_add(bus_batch *batch, const char *subject, const void *data, size_t len,
                      const char *msg_id, st_error *err);
/* Waits until every publish of the batch is acknowledged or failed, at most timeout_ms.
 * ST_OK only when all were acknowledged (stored or duplicate); ST_TIMEOUT or ST_UNAVAILABLE
 * otherwise. ret_result may be NULL. */
st_code bus_batch_wait(bus_batch *batch, int64_t timeout_ms, bus_batch_result *ret_result,
                       st_error *err);
/* Non-blocking alternative for event loops: fn is called once, on a nats.c thread, when every
 * publish of the batch is settled or the timeout passed; the batch must stay alive until
 * then (destroy it in fn or after). Returns ST_OK when the callback was armed. */
typedef void (*bus_batch_done_fn)(bus_batch *batch, st_code status,
                                  const bus_batch_result *result, void *closure);
st_code bus_batch_on_done(bus_batch *batch, int64_t timeout_ms, bus_batch_done_fn fn,
                          void *closure, st_error *err);
void bus_batch_destroy(bus_batch *batch); /* accepts NULL */

/* ---- consuming --------------------------------------------------------------------------- */

typedef struct bus_delivery {
    const char *subject;   /* borrowed for the handler call (or until settled when held) */
    const char *data;      /* borrowed; NUL-terminated copy is NOT guaranteed: use len */
    size_t len;
    const char *msg_id;    /* Nats-Msg-Id header or "" */
    uint64_t stream_seq;
    uint64_t delivered;    /* 1 on first delivery */
    int64_t timestamp_ns;  /* when the stream stored it */
    int max_deliver;       /* from the consumer's definition */
    void *internal_;       /* the library's; do not touch */
} bus_delivery;

typedef enum bus_verdict {
    BUS_DONE,   /* processed (or nothing to do): ack */
    BUS_RETRY,  /* transient failure: nak with retry_delay_ms; dead-letter on last delivery */
    BUS_REJECT, /* poison (will never succeed): dead-letter now with reason, then term */
    BUS_DEFER,  /* the handler took the delivery with bus_hold and settles it later */
} bus_verdict;

typedef struct bus_outcome {
    bus_verdict verdict;
    int64_t retry_delay_ms; /* BUS_RETRY: 0 = immediate */
    char reason[200];       /* BUS_RETRY/BUS_REJECT: why (no personal data) */
} bus_outcome;

/* The handler runs on the thread that calls bus_consumer_poll. It fills *outcome (zeroed,
 * verdict BUS_DONE, before the call). */
typedef void (*bus_handler_fn)(const bus_delivery *delivery, bus_outcome *outcome,
                               void *closure);

typedef struct bus_consumer bus_consumer;

/* Binds a pull subscription to the durable consumer def (which must exist: bus_ensure).
 * service_name labels dead letters. Caller owns *ret_consumer. */
st_code bus_consumer_create(bus *b, const bus_consumer_def *def, const char *service_name,
                            bus_handler_fn handler, void *closure, bus_consumer **ret_consumer,
                            st_error *err);
/* Fetches up to batch messages (waiting at most wait_ms for the first) and runs the handler
 * on each, then acks / naks / dead-letters. *ret_handled = messages handled (may be 0 on a
 * quiet stream: ST_OK). ST_UNAVAILABLE while disconnected. */
st_code bus_consumer_poll(bus_consumer *consumer, int batch, int64_t wait_ms,
                          size_t *ret_handled, st_error *err);
void bus_consumer_destroy(bus_consumer *consumer); /* accepts NULL; unsubscribes, keeps durable */

/* Deferred settlement, for services whose answer comes later (the notifier waits for LINE,
 * the audit writes a batch in one transaction). During the handler call, bus_hold takes the
 * delivery (its data stays valid until settled) and the handler returns BUS_DEFER; later,
 * from any thread, bus_settle applies an outcome exactly as a returned verdict would (ack,
 * nak with delay, dead-letter) and frees the held delivery. Until settled, JetStream
 * redelivers the message after ack_wait: settle (or BUS_RETRY) well before it. The bus must
 * outlive held deliveries; the consumer need not: bus_consumer_destroy with deliveries still
 * held stops the consumer's use and frees it when the last of them is settled. */
typedef struct bus_held bus_held;
/* Only inside a handler call, on the delivery it was given. Caller owns *ret_held. */
st_code bus_hold(const bus_delivery *delivery, bus_held **ret_held, st_error *err);
/* The held delivery (borrowed until bus_settle). */
const bus_delivery *bus_held_delivery(const bus_held *held);
/* Applies outcome (BUS_DONE / BUS_RETRY / BUS_REJECT) and frees held. Thread-safe. */
void bus_settle(bus_held *held, const bus_outcome *outcome);
/* Tells JetStream the message is still being worked on (resets its ack_wait). */
st_code bus_held_in_progress(bus_held *held, st_error *err);

/* Counts since creation (metrics, tests). */
typedef struct bus_consumer_stats {
    uint64_t acked, naked, dead_lettered, terminated;
} bus_consumer_stats;
void bus_consumer_get_stats(const bus_consumer *consumer, bus_consumer_stats *ret_stats);

/* Dead-letter message layout (also documented in proto/README.md):
 *   subject  = def->dead_letter_subject
 *   headers  Ess-Dlq-Reason, Ess-Dlq-Service, Ess-Dlq-Stream, Ess-Dlq-Consumer,
 *            Ess-Dlq-Subject (original), Ess-Dlq-Seq (original stream seq),
 *            Ess-Dlq-Delivered, Nats-Msg-Id = "dlq.<stream>.<durable>.<seq>"
 *   body     the original payload, unchanged */
#define BUS_DLQ_HDR_REASON "Ess-Dlq-Reason"

#endif
