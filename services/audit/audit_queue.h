/* audit_queue: messages received but not yet written, and which of them may be written next.
 *
 * The order promise: rows of one stream enter the chain in stream order, also across restarts
 * and redeliveries. JetStream delivers a consumer's messages in stream order, except that a
 * message that was delivered and not acknowledged (ess-audit was killed, or it failed) comes
 * back only after ack_wait — after later messages may have been delivered. So the queue
 * keeps, per stream, the items sorted by stream sequence and the position the log has reached
 * (the stream_seq of its latest row from that stream), and lets an item out only when
 *   - its sequence is the next one (position + 1), or it is behind the position (a redelivery
 *     of a written message, which the log will skip by msg_id, or a stream that was recreated
 *     and counts from 1 again), or the position is unknown (no row from that stream yet);
 *   - or it has waited gap_wait for the missing ones (longer than ack_wait: whatever was
 *     unacknowledged has been redelivered by then, so the missing messages are gone from the
 *     stream — expired or deleted): the gap is reported and the position jumps.
 * Across streams, items leave in the order they arrived.
 *
 * Not thread-safe: the owner serialises calls. Items are heap objects owned by the queue from
 * audit_queue_add until audit_queue_commit / audit_queue_take_all hands them back. */
#ifndef ESS_AUDIT_QUEUE_H
#define ESS_AUDIT_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit_record.h"
#include "audit_store.h"
#include "status.h"

#define AUDIT_QUEUE_STREAMS_MAX 8

typedef struct audit_item {
    int stream;           /* index given by the owner, 0 .. stream_count-1 */
    uint64_t stream_seq;
    int64_t stored_ns;    /* when JetStream stored it (for the lag) */
    int64_t arrived_ms;   /* monotonic, when it was received */
    int64_t progress_ms;  /* monotonic, last "in progress" signal (owner's use) */
    char msg_id[AUDIT_MSG_ID_MAX];
    char *subject;        /* owned, as stored */
    unsigned char digest[AUDIT_HASH_BYTES];
    char *payload;        /* owned, as stored */
    size_t payload_len;
    void **holds;         /* owned array of the owner's delivery handles (redelivered copies
                             of the message add theirs) */
    size_t hold_count, hold_cap;
    /* the queue's */
    uint64_t arrival;
    bool selected;
} audit_item;

typedef struct audit_gap {
    int stream;
    uint64_t first_missing, last_missing;
} audit_gap;

typedef struct audit_queue audit_queue;

st_code audit_queue_create(int stream_count, int64_t gap_wait_ms, audit_queue **ret_queue,
                           st_error *err);
/* Frees the queue and every item still in it (their holds are NOT settled: take them first). */
void audit_queue_destroy(audit_queue *q);

/* Creates an item holding one delivery handle; fields other than holds are the caller's to
 * fill. Caller owns it until audit_queue_add. */
st_code audit_item_create(void *hold, audit_item **ret_item, st_error *err);
void audit_item_destroy(audit_item *item); /* accepts NULL; frees subject, payload, holds */

/* Adds item (ownership taken). When an item of the same stream with the same msg_id is queued
 * already, item's holds join it and item is freed: *ret_merged = true (may be NULL). */
st_code audit_queue_add(audit_queue *q, audit_item *item, bool *ret_merged, st_error *err);

/* The position of a stream: stream_seq of the last row written from it; 0 = unknown. */
void audit_queue_set_position(audit_queue *q, int stream, uint64_t stream_seq);
uint64_t audit_queue_position(const audit_queue *q, int stream);

/* Marks up to max items that may be written now (see above), in chain order, into
 * ret_items[0..*ret_count-1] (borrowed: they stay queued). Gaps that this selection jumps
 * over go to ret_gaps (at most gaps_max, *ret_gap_count). *ret_blocked_until: earliest
 * monotonic ms at which an item held back by a gap may go (INT64_MAX when none). Calling
 * again before commit or release selects the same items first. */
void audit_queue_select(audit_queue *q, int64_t now_ms, size_t max, audit_item **ret_items,
                        size_t *ret_count, audit_gap *ret_gaps, size_t gaps_max,
                        size_t *ret_gap_count, int64_t *ret_blocked_until);

/* The selected items were written: removes them (handing them to the caller in ret_items,
 * at most max; caller destroys them after settling their holds) and advances positions. */
void audit_queue_commit(audit_queue *q, audit_item **ret_items, size_t max, size_t *ret_count);

/* The write failed: the selected items stay, unselected. */
void audit_queue_release(audit_queue *q);

/* Removes every item (stop): into ret_items (at most max), *ret_count. */
void audit_queue_take_all(audit_queue *q, audit_item **ret_items, size_t max,
                          size_t *ret_count);

size_t audit_queue_count(const audit_queue *q, int stream); /* stream -1: all */
/* Items with this stream whose sequence is above the position + 1 at the head: waiting. */
bool audit_queue_blocked(const audit_queue *q, int stream);
/* Oldest stored_ns among queued items (0 when empty) and the oldest arrival (INT64_MAX). */
int64_t audit_queue_oldest_stored_ns(const audit_queue *q);
int64_t audit_queue_oldest_arrived_ms(const audit_queue *q);
/* Visits every queued item (in no particular order). */
void audit_queue_each(audit_queue *q, void (*fn)(audit_item *item, void *closure),
                      void *closure);

#endif
