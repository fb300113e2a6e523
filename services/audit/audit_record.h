/* audit_record: one row of audit_log, its canonical bytes, its hash, and the chain check.
 *
 * The canonical record (format version 1), byte-exact, is the ASCII header line
 *   "ess-audit-v1\n"
 * followed by eight fields in this order, each written as
 *   <decimal byte length of the value> ":" <value bytes> "\n"
 * (length-prefixed, so no value can imitate a separator):
 *   1. seq          decimal, no sign, no leading zeros                    "42"
 *   2. at           UTC, microseconds, "YYYY-MM-DDTHH:MM:SS.ffffffZ"       "2026-11-30T09:00:00.123456Z"
 *   3. stream       the JetStream stream, "" for records not from a stream "LINE_IN"
 *   4. stream_seq   decimal, "0" for records not from a stream           "1234"
 *   5. subject      as stored (personal data already removed)
 *   6. msg_id       the record's identity, as stored
 *   7. digest       64 lower-case hex digits of the digest column
 *   8. payload      the payload as PostgreSQL renders the stored jsonb (payload::text)
 * and the record's hash is
 *   hash = SHA-256(prev_hash ‖ canonical record)
 * with prev_hash the 32 raw bytes of the previous row's hash (32 zero bytes for seq 1).
 *
 * Pure functions: no I/O, thread-safe, never log. */
#ifndef ESS_AUDIT_RECORD_H
#define ESS_AUDIT_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define AUDIT_HASH_BYTES 32
#define AUDIT_HASH_HEX (2 * AUDIT_HASH_BYTES + 1)
#define AUDIT_TIME_TEXT 28 /* "2026-11-30T09:00:00.123456Z" + NUL */
#define AUDIT_CANONICAL_HEADER "ess-audit-v1\n"

/* A row; every pointer is borrowed from the caller for the duration of a call. */
typedef struct audit_record {
    int64_t seq;
    char at[AUDIT_TIME_TEXT];
    const char *stream;
    uint64_t stream_seq;
    const char *subject;
    const char *msg_id;
    unsigned char digest[AUDIT_HASH_BYTES];
    const char *payload; /* payload::text; need not be NUL-terminated */
    size_t payload_len;
    unsigned char prev_hash[AUDIT_HASH_BYTES];
    unsigned char hash[AUDIT_HASH_BYTES];
} audit_record;

/* The canonical bytes of r (see above). *ret_bytes is heap (caller frees), *ret_len its length
 * (the buffer is also NUL-terminated). ST_INVALID when a string field is NULL or seq < 1. */
st_code audit_canonical(const audit_record *r, char **ret_bytes, size_t *ret_len, st_error *err);

/* SHA-256(r->prev_hash ‖ canonical(r)) into ret_hash, without building the canonical bytes in
 * one buffer. ST_INVALID as audit_canonical. */
st_code audit_record_hash(const audit_record *r, unsigned char ret_hash[AUDIT_HASH_BYTES],
                          st_error *err);

/* SHA-256 of len bytes. */
void audit_sha256(const void *data, size_t len, unsigned char ret_hash[AUDIT_HASH_BYTES]);

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ" for the current time (CLOCK_REALTIME, UTC). */
void audit_time_now(char ret_at[AUDIT_TIME_TEXT]);

/* Lower-case hex of 32 bytes; hex to bytes (ST_INVALID unless exactly 64 hex digits, or the
 * PostgreSQL bytea form "\x" + 64 hex digits). */
void audit_hash_hex(const unsigned char hash[AUDIT_HASH_BYTES], char ret_hex[AUDIT_HASH_HEX]);
st_code audit_hash_parse(const char *text, unsigned char ret_hash[AUDIT_HASH_BYTES]);

/* ---- the chain check ------------------------------------------------------------------ */

typedef enum audit_break {
    AUDIT_INTACT = 0,
    AUDIT_BREAK_MISSING, /* a sequence number has no row (deleted row, or rows cut off) */
    AUDIT_BREAK_LINK,    /* prev_hash is not the previous row's hash (row moved or edited) */
    AUDIT_BREAK_HASH,    /* hash is not SHA-256(prev_hash ‖ canonical): the row was edited */
    AUDIT_BREAK_ORDER,   /* a sequence number repeated or went backwards */
} audit_break;

/* Walks rows in seq order. Start with audit_verify_begin: expected_seq is the first seq to
 * check; prev_hash the hash the first row must link to (zeros when it is 1). */
typedef struct audit_verifier {
    int64_t expected_seq;
    unsigned char prev_hash[AUDIT_HASH_BYTES];
    int64_t checked;
} audit_verifier;

void audit_verify_begin(audit_verifier *v, int64_t first_seq,
                        const unsigned char prev_hash[AUDIT_HASH_BYTES]);

/* Checks the next row. On AUDIT_INTACT the verifier advances. Otherwise *ret_broken_seq is the
 * first broken sequence number (for MISSING: the first missing one) and the verifier must not
 * be used further. */
audit_break audit_verify_next(audit_verifier *v, const audit_record *r, int64_t *ret_broken_seq);

/* "row is missing" etc.: static text for reports. */
const char *audit_break_text(audit_break b);

#endif
