/* console_live: JetStream → the event streams of the browsers.
 *
 * An ordered, ephemeral consumer on the ESS stream (deliver new: a console that starts does
 * not replay history; the board loads the current cases with GET /api/cases) on a NATS
 * connection of its own (the runtime's bus has no ordered consumers). nats.c keeps the order
 * and recreates the consumer from the last sequence seen after a gap or a reconnect, so no
 * event between two is skipped. For every event the delivery thread reads the incident row
 * again (its own PostgreSQL connection) — the event says that something changed, the row
 * says what the case is now — and hands the CASE to post(), which console_server.c turns into
 * `event: case` on the streams allowed to see it.
 *
 * Nothing is acknowledged (an ordered consumer has no acks) and nothing durable is created
 * on the server: each console instance has its own consumer, gone when it stops. */
#ifndef CONSOLE_LIVE_H
#define CONSOLE_LIVE_H

#include <stdbool.h>

#include "console.h"
#include "status.h"

/* Called on the delivery thread for every case read after an event: case_number, province
 * ("" when not routed / at sea), and the CASE JSON text (heap; post takes it). */
typedef void (*console_live_post_fn)(void *closure, const char *case_number,
                                     const char *province, char *case_json);

typedef struct console_live_options {
    const char *nats_url;
    const char *pg_dsn;
    int64_t statement_timeout_ms;
    console_live_post_fn post;
    void *closure;
} console_live_options;

/* Starts a thread that connects to NATS and subscribes (retrying until it works). */
st_code console_live_start(console_app *app, const console_live_options *options,
                           console_live **ret_live, st_error *err);
/* True once the subscription exists and the connection is up. Thread-safe. */
bool console_live_ready(console_live *live);
/* Unsubscribes (waiting for the event in hand), closes, joins. Accepts NULL. */
void console_live_stop(console_live *live);

/* The case number of an ESS event's JSON body into out (CONSOLE_CASE_MAX bytes). */
st_code console_live_case_of(const char *data, size_t len, char *out);

#endif
