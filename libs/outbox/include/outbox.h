/* outbox: a database change and the events it implies are one unit (DESIGN.md §2).
 *
 * Inside the transaction that changes the database, a service calls outbox_add for each event
 * the change implies; the rows commit or vanish with the change. A relay (one thread per
 * service process, its own PostgreSQL connection) publishes committed rows to JetStream in id
 * order, with their msg-id, and marks them published. A crash between commit and publish
 * loses nothing (the row waits); a crash between publish and mark duplicates nothing (the
 * msg-id is the same, JetStream drops the repeat within the stream's window, and consumers
 * dedupe by id beyond it).
 *
 * Several relays (replicas) may run: a transaction-scoped advisory lock lets one publish at a
 * time, which keeps the stream in outbox order.
 *
 * Order, precisely: a round publishes the committed rows it sees in id order and marks exactly
 * those rows. Ids are taken at INSERT, commits may land in another order, so a row whose
 * transaction commits late is published in a later round, after rows with higher ids. Events
 * of one aggregate keep their order when the writer serialises that aggregate (the
 * conversation locks the user's row before it adds anything): the later transaction then
 * takes higher ids and commits later.
 *
 * outbox_mark_processed records that a consumer applied an event (processed_events), inside
 * the transaction that applies it: the guard that holds however late a redelivery comes. */
#ifndef ESS_OUTBOX_H
#define ESS_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "db.h"
#include "status.h"
#include "vault.h"

#define OUTBOX_PAYLOAD_MAX (1024 * 1024)
#define OUTBOX_MSG_ID_MAX BUS_MSG_ID_MAX

/* Adds one event in the caller's open transaction (d must be inside db_begin/db_tx).
 * payload: len bytes of UTF-8 text without NUL bytes (JSON), <= OUTBOX_PAYLOAD_MAX; borrowed
 * for the call, need not be NUL-terminated. A msg_id already in
 * the outbox is left as it is (*ret_added false): adding is idempotent. ret_added may be NULL. */
st_code outbox_add(db *d, const char *subject, const char *msg_id, const char *payload,
                   size_t len, bool *ret_added, st_error *err);

/* As outbox_add, for a payload that carries personal data (a send command's LINE user id):
 * the row holds it sealed (vault, context "outbox:" + msg_id; column sealed = true, migration
 * 0002), and the relay opens it just before publishing, so PostgreSQL never holds it in clear.
 * A relay without keys (outbox_options.keys) publishes the rows before such a row and
 * leaves it, and what follows, to a relay that has the keys (the sealing service's own). */
st_code outbox_add_sealed(db *d, const vault_keys *keys, const char *subject,
                          const char *msg_id, const char *payload, size_t len, bool *ret_added,
                          st_error *err);

/* In the caller's open transaction: records (consumer, event_id) as applied.
 * *ret_first = true when this is the first time (apply the event), false when it was already
 * applied (do nothing, commit or roll back: either is safe). */
st_code outbox_mark_processed(db *d, const char *consumer, const char *event_id,
                              bool *ret_first, st_error *err);

typedef struct outbox_relay outbox_relay;

/* Called on the relay's thread when a round fails (the relay retries by itself); the service
 * logs it. err is borrowed for the call. */
typedef void (*outbox_error_fn)(const st_error *err, void *closure);

typedef struct outbox_options {
    const char *pg_dsn;              /* the relay opens its own connection */
    const char *application_name;    /* "ess-conversation-outbox" */
    bus *bus;                        /* borrowed; must outlive the relay */
    int batch;                       /* rows per round; 0 = 256 */
    int64_t poll_ms;                 /* idle wait between rounds when not kicked; 0 = 200 */
    int64_t publish_timeout_ms;      /* wait for a round's acks; 0 = 5000 */
    int64_t keep_published_ms;       /* published rows older than this are deleted; 0 = 1 day */
    const vault_keys *keys;          /* opens sealed rows; copied; NULL = none expected */
    outbox_error_fn on_error;        /* may be NULL */
    void *closure;
} outbox_options;

/* Starts the relay thread. Strings in options are copied. Caller owns *ret_relay. */
st_code outbox_relay_start(const outbox_options *options, outbox_relay **ret_relay,
                           st_error *err);
/* Wakes the relay now (call after committing a transaction that added rows). Thread-safe. */
void outbox_relay_kick(outbox_relay *relay);
/* Stops the thread after one last round (bounded by publish_timeout_ms) and frees the relay.
 * Accepts NULL. */
void outbox_relay_stop(outbox_relay *relay);
/* Rows published since start (tests, metrics). Thread-safe. */
uint64_t outbox_relay_published(const outbox_relay *relay);

/* One relay round on the caller's connection: publish up to batch committed rows and mark
 * them. *ret_published = rows published (0 when another relay holds the lock or nothing
 * waits). Exposed for tests and essctl. */
st_code outbox_relay_once(db *d, bus *b, int batch, int64_t publish_timeout_ms,
                          size_t *ret_published, st_error *err);
/* The same, opening sealed rows with keys (NULL: the round stops before the first sealed row). */
st_code outbox_relay_once_sealed(db *d, bus *b, const vault_keys *keys, int batch,
                                 int64_t publish_timeout_ms, size_t *ret_published,
                                 st_error *err);

#endif
