/* The canonical record is pinned byte for byte (a golden vector computed independently), and
 * the chain check finds every kind of tampering at the right sequence number. */
#include "testkit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_record.h"

static audit_record golden(void)
{
    static const char payload[] = "{\"a\": 1}";
    audit_record r = {
        .seq = 1,
        .at = "2026-11-30T09:00:00.000000Z",
        .stream = "LINE_IN",
        .stream_seq = 7,
        .subject = "line.in.user.h:ab",
        .msg_id = "LINE_IN/e1",
        .payload = payload,
        .payload_len = sizeof(payload) - 1,
    };
    audit_sha256("{}", 2, r.digest);
    return r;
}

ESS_TEST(canonical_record_is_byte_exact)
{
    audit_record r = golden();
    char *bytes = NULL;
    size_t len = 0;
    assert_int_equal(audit_canonical(&r, &bytes, &len, NULL), ST_OK);
    static const char expected[] =
        "ess-audit-v1\n1:1\n27:2026-11-30T09:00:00.000000Z\n7:LINE_IN\n1:7\n"
        "17:line.in.user.h:ab\n10:LINE_IN/e1\n"
        "64:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\n"
        "8:{\"a\": 1}\n";
    assert_int_equal(len, sizeof(expected) - 1);
    assert_memory_equal(bytes, expected, len);
    free(bytes);
}

ESS_TEST(hash_is_sha256_of_prev_hash_and_canonical_record)
{
    audit_record r = golden();
    unsigned char hash[AUDIT_HASH_BYTES];
    assert_int_equal(audit_record_hash(&r, hash, NULL), ST_OK);
    char hex[AUDIT_HASH_HEX];
    audit_hash_hex(hash, hex);
    /* python3: sha256(bytes(32) + canonical).hexdigest() */
    assert_string_equal(hex, "e429b65899a133223f0c02ca1a13ada4e21f6c3e6f8e52acb9ed05dab4ce1431");
    /* The same bytes built whole give the same hash. */
    char *bytes = NULL;
    size_t len = 0;
    assert_int_equal(audit_canonical(&r, &bytes, &len, NULL), ST_OK);
    unsigned char *joined = malloc(AUDIT_HASH_BYTES + len);
    memcpy(joined, r.prev_hash, AUDIT_HASH_BYTES);
    memcpy(joined + AUDIT_HASH_BYTES, bytes, len);
    unsigned char again[AUDIT_HASH_BYTES];
    audit_sha256(joined, AUDIT_HASH_BYTES + len, again);
    assert_memory_equal(hash, again, AUDIT_HASH_BYTES);
    free(joined);
    free(bytes);
}

ESS_TEST(length_prefixes_keep_fields_apart)
{
    /* Moving a character from one field to the next must change the hash. */
    audit_record a = golden(), b = golden();
    a.subject = "ab";
    a.msg_id = "c";
    b.subject = "a";
    b.msg_id = "bc";
    unsigned char ha[AUDIT_HASH_BYTES], hb[AUDIT_HASH_BYTES];
    assert_int_equal(audit_record_hash(&a, ha, NULL), ST_OK);
    assert_int_equal(audit_record_hash(&b, hb, NULL), ST_OK);
    assert_memory_not_equal(ha, hb, AUDIT_HASH_BYTES);
}

ESS_TEST(incomplete_record_is_invalid)
{
    audit_record r = golden();
    r.msg_id = NULL;
    unsigned char hash[AUDIT_HASH_BYTES];
    assert_int_equal(audit_record_hash(&r, hash, NULL), ST_INVALID);
    r = golden();
    r.seq = 0;
    assert_int_equal(audit_record_hash(&r, hash, NULL), ST_INVALID);
}

ESS_TEST(hash_text_round_trips)
{
    unsigned char bytes[AUDIT_HASH_BYTES], back[AUDIT_HASH_BYTES];
    for (int i = 0; i < AUDIT_HASH_BYTES; i++)
        bytes[i] = (unsigned char)(i * 37 + 1);
    char hex[AUDIT_HASH_HEX], pg[AUDIT_HASH_HEX + 2];
    audit_hash_hex(bytes, hex);
    assert_int_equal(audit_hash_parse(hex, back), ST_OK);
    assert_memory_equal(bytes, back, AUDIT_HASH_BYTES);
    snprintf(pg, sizeof(pg), "\\x%s", hex);
    assert_int_equal(audit_hash_parse(pg, back), ST_OK);
    assert_int_equal(audit_hash_parse("abc", back), ST_INVALID);
    hex[5] = 'g';
    assert_int_equal(audit_hash_parse(hex, back), ST_INVALID);
}

ESS_TEST(time_now_has_the_canonical_shape)
{
    char at[AUDIT_TIME_TEXT];
    audit_time_now(at);
    assert_int_equal(strlen(at), 27);
    assert_true(at[4] == '-' && at[10] == 'T' && at[19] == '.' && at[26] == 'Z');
}

/* ---- an in-memory chain of 10,000 rows ---------------------------------------------------- */

#define CHAIN 10000

typedef struct chain {
    audit_record rows[CHAIN];
    char payloads[CHAIN][48];
    char msg_ids[CHAIN][32];
    size_t count;
} chain;

static chain *build_chain(void)
{
    chain *c = calloc(1, sizeof(*c));
    unsigned char prev[AUDIT_HASH_BYTES] = {0};
    for (size_t i = 0; i < CHAIN; i++) {
        audit_record *r = &c->rows[i];
        snprintf(c->payloads[i], sizeof(c->payloads[i]), "{\"n\": %zu}", i);
        snprintf(c->msg_ids[i], sizeof(c->msg_ids[i]), "ESS/m%zu", i);
        r->seq = (int64_t)i + 1;
        snprintf(r->at, sizeof(r->at), "2026-11-30T09:00:00.%06zuZ", i % 1000000);
        r->stream = "ESS";
        r->stream_seq = i + 100;
        r->subject = "ess.incident.note";
        r->msg_id = c->msg_ids[i];
        r->payload = c->payloads[i];
        r->payload_len = strlen(c->payloads[i]);
        audit_sha256(r->payload, r->payload_len, r->digest);
        memcpy(r->prev_hash, prev, AUDIT_HASH_BYTES);
        assert_int_equal(audit_record_hash(r, r->hash, NULL), ST_OK);
        memcpy(prev, r->hash, AUDIT_HASH_BYTES);
    }
    c->count = CHAIN;
    return c;
}

/* Walks rows (by index order) from the start; returns the first broken seq, 0 when intact. */
static int64_t walk(const chain *c, const size_t *order, size_t count, audit_break *ret_break)
{
    audit_verifier v;
    audit_verify_begin(&v, 1, NULL);
    for (size_t i = 0; i < count; i++) {
        int64_t broken = 0;
        audit_break b = audit_verify_next(&v, &c->rows[order != NULL ? order[i] : i], &broken);
        if (b != AUDIT_INTACT) {
            *ret_break = b;
            return broken;
        }
    }
    *ret_break = AUDIT_INTACT;
    return 0;
}

ESS_TEST(chain_of_10000_rows_verifies)
{
    chain *c = build_chain();
    audit_break b;
    assert_int_equal(walk(c, NULL, c->count, &b), 0);
    assert_int_equal(b, AUDIT_INTACT);
    free(c);
}

ESS_TEST(one_changed_byte_is_found_at_its_row)
{
    chain *c = build_chain();
    audit_break b;
    c->payloads[4320][7] ^= 1; /* row seq 4321 */
    assert_int_equal(walk(c, NULL, c->count, &b), 4321);
    assert_int_equal(b, AUDIT_BREAK_HASH);
    c->payloads[4320][7] ^= 1;
    c->rows[8999].digest[31] ^= 0x80; /* seq 9000 */
    assert_int_equal(walk(c, NULL, c->count, &b), 9000);
    c->rows[8999].digest[31] ^= 0x80;
    c->rows[99].prev_hash[0] ^= 1; /* seq 100 */
    assert_int_equal(walk(c, NULL, c->count, &b), 100);
    assert_int_equal(b, AUDIT_BREAK_LINK);
    free(c);
}

ESS_TEST(deleted_row_is_found_at_its_seq)
{
    chain *c = build_chain();
    size_t *order = malloc(CHAIN * sizeof(*order));
    size_t n = 0;
    for (size_t i = 0; i < CHAIN; i++)
        if (i != 776) /* seq 777 deleted */
            order[n++] = i;
    audit_break b;
    assert_int_equal(walk(c, order, n, &b), 777);
    assert_int_equal(b, AUDIT_BREAK_MISSING);
    free(order);
    free(c);
}

ESS_TEST(swapped_rows_are_found_at_the_first)
{
    chain *c = build_chain();
    /* Swap the contents of seq 5000 and 5001, keeping the seq column in place. */
    audit_record first = c->rows[4999], second = c->rows[5000];
    c->rows[4999] = second;
    c->rows[4999].seq = 5000;
    c->rows[5000] = first;
    c->rows[5000].seq = 5001;
    audit_break b;
    assert_int_equal(walk(c, NULL, c->count, &b), 5000);
    assert_int_equal(b, AUDIT_BREAK_LINK);
    free(c);
}

ESS_TEST(recomputed_hash_is_still_caught_by_the_next_link)
{
    chain *c = build_chain();
    /* An editor who recomputes the edited row's hash breaks the next row's link. */
    c->payloads[199][7] ^= 1;
    assert_int_equal(audit_record_hash(&c->rows[199], c->rows[199].hash, NULL), ST_OK);
    audit_break b;
    assert_int_equal(walk(c, NULL, c->count, &b), 201);
    assert_int_equal(b, AUDIT_BREAK_LINK);
    free(c);
}

ESS_TEST_MAIN(NULL, NULL)
