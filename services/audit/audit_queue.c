/* audit_queue: per-stream ordering of pending audit rows (see audit_queue.h). */
#include "audit_queue.h"

#include <stdlib.h>
#include <string.h>

typedef struct stream_items {
    audit_item **items; /* sorted by (stream_seq, arrival) */
    size_t count, cap;
    uint64_t position;  /* stream_seq of the last row written; 0 = unknown */
    uint64_t selected_position;
    size_t selected;    /* how many of the head are selected */
} stream_items;

struct audit_queue {
    int stream_count;
    int64_t gap_wait_ms;
    uint64_t next_arrival;
    stream_items streams[AUDIT_QUEUE_STREAMS_MAX];
};

st_code audit_queue_create(int stream_count, int64_t gap_wait_ms, audit_queue **ret_queue,
                           st_error *err)
{
    if (stream_count < 1 || stream_count > AUDIT_QUEUE_STREAMS_MAX || gap_wait_ms < 0)
        return st_fail(err, ST_INVALID, "audit queue: 1..%d streams, gap wait >= 0",
                       AUDIT_QUEUE_STREAMS_MAX);
    audit_queue *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return st_fail(err, ST_NOMEM, "audit queue: out of memory");
    q->stream_count = stream_count;
    q->gap_wait_ms = gap_wait_ms;
    *ret_queue = q;
    return ST_OK;
}

void audit_queue_destroy(audit_queue *q)
{
    if (q == NULL)
        return;
    for (int s = 0; s < q->stream_count; s++) {
        for (size_t i = 0; i < q->streams[s].count; i++)
            audit_item_destroy(q->streams[s].items[i]);
        free(q->streams[s].items);
    }
    free(q);
}

static st_code add_hold(audit_item *item, void *hold, st_error *err)
{
    if (item->hold_count == item->hold_cap) {
        size_t cap = item->hold_cap > 0 ? item->hold_cap * 2 : 2;
        void **grown = realloc(item->holds, cap * sizeof(*grown));
        if (grown == NULL)
            return st_fail(err, ST_NOMEM, "audit queue: out of memory");
        item->holds = grown;
        item->hold_cap = cap;
    }
    item->holds[item->hold_count++] = hold;
    return ST_OK;
}

st_code audit_item_create(void *hold, audit_item **ret_item, st_error *err)
{
    audit_item *item = calloc(1, sizeof(*item));
    if (item == NULL)
        return st_fail(err, ST_NOMEM, "audit queue: out of memory");
    if (hold != NULL && add_hold(item, hold, err) != ST_OK) {
        free(item);
        return ST_NOMEM;
    }
    *ret_item = item;
    return ST_OK;
}

void audit_item_destroy(audit_item *item)
{
    if (item == NULL)
        return;
    free(item->subject);
    free(item->payload);
    free(item->holds);
    free(item);
}

static bool precedes(const audit_item *a, const audit_item *b)
{
    return a->stream_seq < b->stream_seq ||
           (a->stream_seq == b->stream_seq && a->arrival < b->arrival);
}

st_code audit_queue_add(audit_queue *q, audit_item *item, bool *ret_merged, st_error *err)
{
    if (q == NULL || item == NULL || item->stream < 0 || item->stream >= q->stream_count)
        return st_fail(err, ST_INVALID, "audit queue: item of an unknown stream");
    stream_items *st = &q->streams[item->stream];
    /* A copy of a queued message (redelivered while it waits)? */
    for (size_t j = st->count; j > 0 && st->items[j - 1]->stream_seq >= item->stream_seq; j--) {
        audit_item *queued = st->items[j - 1];
        if (queued->stream_seq == item->stream_seq && strcmp(queued->msg_id, item->msg_id) == 0) {
            for (size_t h = 0; h < item->hold_count; h++)
                if (add_hold(queued, item->holds[h], err) != ST_OK)
                    return ST_NOMEM;
            item->hold_count = 0;
            audit_item_destroy(item);
            if (ret_merged != NULL)
                *ret_merged = true;
            return ST_OK;
        }
    }
    if (st->count == st->cap) {
        size_t cap = st->cap > 0 ? st->cap * 2 : 64;
        audit_item **grown = realloc(st->items, cap * sizeof(*grown));
        if (grown == NULL)
            return st_fail(err, ST_NOMEM, "audit queue: out of memory");
        st->items = grown;
        st->cap = cap;
    }
    item->arrival = ++q->next_arrival;
    item->selected = false;
    size_t at = st->count;
    while (at > 0 && precedes(item, st->items[at - 1]))
        at--;
    memmove(st->items + at + 1, st->items + at, (st->count - at) * sizeof(*st->items));
    st->items[at] = item;
    st->count++;
    if (ret_merged != NULL)
        *ret_merged = false;
    return ST_OK;
}

void audit_queue_set_position(audit_queue *q, int stream, uint64_t stream_seq)
{
    if (q != NULL && stream >= 0 && stream < q->stream_count)
        q->streams[stream].position = stream_seq;
}

uint64_t audit_queue_position(const audit_queue *q, int stream)
{
    return q != NULL && stream >= 0 && stream < q->stream_count ? q->streams[stream].position
                                                                 : 0;
}

/* How many head items of st may go now (at most max); the position after them, and the
 * earliest time a held-back head may go. Gaps jumped over are reported when gaps != NULL. */
static size_t eligible(const stream_items *st, int stream, int64_t now_ms, int64_t gap_wait_ms,
                       size_t max, uint64_t *ret_position, audit_gap *gaps, size_t gaps_max,
                       size_t *gap_count, int64_t *blocked_until)
{
    uint64_t position = st->position;
    size_t n = 0;
    while (n < st->count && n < max) {
        const audit_item *item = st->items[n];
        uint64_t seq = item->stream_seq;
        if (position != 0 && seq > position + 1) {
            int64_t opens = item->arrived_ms + gap_wait_ms;
            if (now_ms < opens) {
                if (opens < *blocked_until)
                    *blocked_until = opens;
                break;
            }
            if (gaps != NULL && *gap_count < gaps_max)
                gaps[(*gap_count)++] = (audit_gap){
                    .stream = stream, .first_missing = position + 1, .last_missing = seq - 1};
        }
        if (position == 0 || seq > position)
            position = seq;
        n++;
    }
    *ret_position = position;
    return n;
}

void audit_queue_select(audit_queue *q, int64_t now_ms, size_t max, audit_item **ret_items,
                        size_t *ret_count, audit_gap *ret_gaps, size_t gaps_max,
                        size_t *ret_gap_count, int64_t *ret_blocked_until)
{
    size_t available[AUDIT_QUEUE_STREAMS_MAX] = {0};
    size_t taken[AUDIT_QUEUE_STREAMS_MAX] = {0};
    int64_t blocked_until = INT64_MAX;
    size_t count = 0, gap_count = 0;
    uint64_t ignored = 0;
    audit_queue_release(q);
    for (int s = 0; s < q->stream_count; s++)
        available[s] = eligible(&q->streams[s], s, now_ms, q->gap_wait_ms, max, &ignored, NULL,
                                0, NULL, &blocked_until);
    /* Merge the streams' eligible heads in arrival order. */
    while (count < max) {
        int best = -1;
        for (int s = 0; s < q->stream_count; s++) {
            if (taken[s] >= available[s])
                continue;
            if (best < 0 || q->streams[s].items[taken[s]]->arrival <
                                q->streams[best].items[taken[best]]->arrival)
                best = s;
        }
        if (best < 0)
            break;
        audit_item *item = q->streams[best].items[taken[best]++];
        item->selected = true;
        ret_items[count++] = item;
    }
    for (int s = 0; s < q->stream_count; s++) {
        stream_items *st = &q->streams[s];
        int64_t unused = INT64_MAX;
        st->selected = taken[s];
        eligible(st, s, now_ms, q->gap_wait_ms, taken[s], &st->selected_position, ret_gaps,
                 gaps_max, &gap_count, &unused);
        if (taken[s] == 0)
            st->selected_position = st->position;
    }
    *ret_count = count;
    if (ret_gap_count != NULL)
        *ret_gap_count = gap_count;
    if (ret_blocked_until != NULL)
        *ret_blocked_until = blocked_until;
}

void audit_queue_commit(audit_queue *q, audit_item **ret_items, size_t max, size_t *ret_count)
{
    size_t out = 0;
    for (int s = 0; s < q->stream_count; s++) {
        stream_items *st = &q->streams[s];
        size_t kept = 0;
        for (size_t i = 0; i < st->count; i++) {
            audit_item *item = st->items[i];
            if (item->selected && out < max) {
                item->selected = false;
                ret_items[out++] = item;
            } else {
                item->selected = false;
                st->items[kept++] = item;
            }
        }
        st->count = kept;
        if (st->selected > 0)
            st->position = st->selected_position;
        st->selected = 0;
    }
    *ret_count = out;
}

void audit_queue_release(audit_queue *q)
{
    for (int s = 0; s < q->stream_count; s++) {
        stream_items *st = &q->streams[s];
        for (size_t i = 0; i < st->count; i++)
            st->items[i]->selected = false;
        st->selected = 0;
    }
}

void audit_queue_take_all(audit_queue *q, audit_item **ret_items, size_t max, size_t *ret_count)
{
    size_t out = 0;
    for (int s = 0; s < q->stream_count; s++) {
        stream_items *st = &q->streams[s];
        size_t kept = 0;
        for (size_t i = 0; i < st->count; i++) {
            if (out < max)
                ret_items[out++] = st->items[i];
            else
                st->items[kept++] = st->items[i];
        }
        st->count = kept;
        st->selected = 0;
    }
    *ret_count = out;
}

size_t audit_queue_count(const audit_queue *q, int stream)
{
    if (stream >= 0)
        return stream < q->stream_count ? q->streams[stream].count : 0;
    size_t total = 0;
    for (int s = 0; s < q->stream_count; s++)
        total += q->streams[s].count;
    return total;
}

bool audit_queue_blocked(const audit_queue *q, int stream)
{
    if (stream < 0 || stream >= q->stream_count)
        return false;
    const stream_items *st = &q->streams[stream];
    return st->count > 0 && st->position != 0 && st->items[0]->stream_seq > st->position + 1;
}

int64_t audit_queue_oldest_stored_ns(const audit_queue *q)
{
    int64_t oldest = 0;
    for (int s = 0; s < q->stream_count; s++)
        for (size_t i = 0; i < q->streams[s].count; i++) {
            int64_t stored = q->streams[s].items[i]->stored_ns;
            if (oldest == 0 || stored < oldest)
                oldest = stored;
        }
    return oldest;
}

int64_t audit_queue_oldest_arrived_ms(const audit_queue *q)
{
    int64_t oldest = INT64_MAX;
    for (int s = 0; s < q->stream_count; s++)
        for (size_t i = 0; i < q->streams[s].count; i++)
            if (q->streams[s].items[i]->arrived_ms < oldest)
                oldest = q->streams[s].items[i]->arrived_ms;
    return oldest;
}

void audit_queue_each(audit_queue *q, void (*fn)(audit_item *item, void *closure),
                      void *closure)
{
    for (int s = 0; s < q->stream_count; s++)
        for (size_t i = 0; i < q->streams[s].count; i++)
            fn(q->streams[s].items[i], closure);
}
