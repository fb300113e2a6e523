/* The order rules of ess-audit's queue: stream order within a stream, also when a message
 * comes back late (after a restart), arrival order across streams, redelivered copies
 * joined, gaps waited for and then jumped. */
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_queue.h"

#define GAP_WAIT 1000

static audit_queue *queue(void)
{
    audit_queue *q = NULL;
    assert_int_equal(audit_queue_create(2, GAP_WAIT, &q, NULL), ST_OK);
    return q;
}

static int hold_tokens[1000];

static void add(audit_queue *q, int stream, uint64_t seq, int64_t arrived_ms, bool *ret_merged)
{
    audit_item *item = NULL;
    assert_int_equal(audit_item_create(&hold_tokens[seq % 1000], &item, NULL), ST_OK);
    item->stream = stream;
    item->stream_seq = seq;
    item->arrived_ms = arrived_ms;
    snprintf(item->msg_id, sizeof(item->msg_id), "S%d/m%llu", stream, (unsigned long long)seq);
    bool merged = false;
    assert_int_equal(audit_queue_add(q, item, &merged, NULL), ST_OK);
    if (ret_merged != NULL)
        *ret_merged = merged;
}

/* Selects at now; writes "stream:seq" of each selected item, space-separated, into out. */
static size_t select_text(audit_queue *q, int64_t now, size_t max, char *out, size_t out_size,
                          int64_t *ret_blocked_until)
{
    audit_item *items[64];
    audit_gap gaps[4];
    size_t count = 0, gap_count = 0;
    int64_t blocked = 0;
    audit_queue_select(q, now, max, items, &count, gaps, 4, &gap_count, &blocked);
    out[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < count; i++)
        used += (size_t)snprintf(out + used, out_size - used, "%s%d:%llu", i ? " " : "",
                                 items[i]->stream, (unsigned long long)items[i]->stream_seq);
    if (ret_blocked_until != NULL)
        *ret_blocked_until = blocked;
    return gap_count;
}

static void commit(audit_queue *q)
{
    audit_item *items[64];
    size_t count = 0;
    audit_queue_commit(q, items, 64, &count);
    for (size_t i = 0; i < count; i++)
        audit_item_destroy(items[i]);
}

ESS_TEST(unknown_position_takes_what_comes_in_stream_order)
{
    audit_queue *q = queue();
    add(q, 0, 12, 0, NULL);
    add(q, 0, 10, 1, NULL);
    add(q, 0, 11, 2, NULL);
    char text[256];
    select_text(q, 3, 10, text, sizeof(text), NULL);
    assert_string_equal(text, "0:10 0:11 0:12");
    commit(q);
    assert_int_equal(audit_queue_position(q, 0), 12);
    audit_queue_destroy(q);
}

ESS_TEST(later_messages_wait_for_a_redelivery_after_restart)
{
    audit_queue *q = queue();
    audit_queue_set_position(q, 0, 100); /* the log holds up to 100 */
    /* 101..102 were held by the killed process: JetStream sends 103 first. */
    add(q, 0, 103, 0, NULL);
    add(q, 0, 104, 1, NULL);
    char text[256];
    int64_t blocked = 0;
    select_text(q, 10, 10, text, sizeof(text), &blocked);
    assert_string_equal(text, "");
    assert_int_equal(blocked, GAP_WAIT);
    assert_true(audit_queue_blocked(q, 0));
    add(q, 0, 101, 20, NULL);
    add(q, 0, 102, 21, NULL);
    select_text(q, 30, 10, text, sizeof(text), NULL);
    assert_string_equal(text, "0:101 0:102 0:103 0:104");
    commit(q);
    assert_int_equal(audit_queue_position(q, 0), 104);
    audit_queue_destroy(q);
}

ESS_TEST(a_gap_that_never_fills_is_jumped_after_the_wait)
{
    audit_queue *q = queue();
    audit_queue_set_position(q, 0, 100);
    add(q, 0, 105, 0, NULL);
    char text[256];
    assert_int_equal(select_text(q, GAP_WAIT - 1, 10, text, sizeof(text), NULL), 0);
    assert_string_equal(text, "");
    audit_item *items[4];
    audit_gap gaps[4];
    size_t count = 0, gap_count = 0;
    int64_t blocked = 0;
    audit_queue_select(q, GAP_WAIT, 10, items, &count, gaps, 4, &gap_count, &blocked);
    assert_int_equal(count, 1);
    assert_int_equal(gap_count, 1);
    assert_int_equal(gaps[0].first_missing, 101);
    assert_int_equal(gaps[0].last_missing, 104);
    commit(q);
    assert_int_equal(audit_queue_position(q, 0), 105);
    audit_queue_destroy(q);
}

ESS_TEST(redelivered_copy_joins_the_queued_item)
{
    audit_queue *q = queue();
    bool merged = false;
    add(q, 0, 7, 0, &merged);
    assert_false(merged);
    add(q, 0, 7, 5, &merged);
    assert_true(merged);
    assert_int_equal(audit_queue_count(q, 0), 1);
    audit_item *items[4];
    size_t count = 0;
    audit_queue_take_all(q, items, 4, &count);
    assert_int_equal(count, 1);
    assert_int_equal(items[0]->hold_count, 2);
    audit_item_destroy(items[0]);
    audit_queue_destroy(q);
}

ESS_TEST(messages_behind_the_position_go_at_once)
{
    audit_queue *q = queue();
    audit_queue_set_position(q, 1, 50);
    add(q, 1, 20, 0, NULL); /* a duplicate of a written row, or a recreated stream */
    char text[256];
    select_text(q, 1, 10, text, sizeof(text), NULL);
    assert_string_equal(text, "1:20");
    commit(q);
    assert_int_equal(audit_queue_position(q, 1), 50);
    audit_queue_destroy(q);
}

ESS_TEST(streams_interleave_in_arrival_order_and_one_blocked_stream_does_not_stop_others)
{
    audit_queue *q = queue();
    audit_queue_set_position(q, 0, 10);
    audit_queue_set_position(q, 1, 0);
    add(q, 0, 11, 0, NULL);
    add(q, 1, 5, 1, NULL);
    add(q, 0, 13, 2, NULL); /* 12 is missing */
    add(q, 1, 6, 3, NULL);
    char text[256];
    select_text(q, 4, 10, text, sizeof(text), NULL);
    assert_string_equal(text, "0:11 1:5 1:6");
    /* A failed write: the same items again, first. */
    audit_queue_release(q);
    select_text(q, 4, 2, text, sizeof(text), NULL);
    assert_string_equal(text, "0:11 1:5");
    commit(q);
    assert_int_equal(audit_queue_count(q, -1), 2);
    assert_int_equal(audit_queue_position(q, 0), 11);
    assert_int_equal(audit_queue_position(q, 1), 5);
    audit_queue_destroy(q);
}

ESS_TEST(item_added_during_a_write_is_not_lost)
{
    audit_queue *q = queue();
    audit_queue_set_position(q, 0, 1);
    add(q, 0, 2, 0, NULL);
    add(q, 0, 3, 0, NULL);
    char text[256];
    select_text(q, 1, 10, text, sizeof(text), NULL);
    assert_string_equal(text, "0:2 0:3");
    add(q, 0, 4, 1, NULL); /* arrives while 2 and 3 are being written */
    commit(q);
    assert_int_equal(audit_queue_count(q, 0), 1);
    select_text(q, 2, 10, text, sizeof(text), NULL);
    assert_string_equal(text, "0:4");
    commit(q);
    audit_queue_destroy(q);
}

ESS_TEST_MAIN(NULL, NULL)
