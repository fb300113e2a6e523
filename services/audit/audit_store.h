/* audit_store: appending to and reading audit_log in PostgreSQL.
 *
 * One chain for the whole log: every append — ess-audit's batches, essctl's records of a
 * personal-data read, the retention job's erasures — takes the same transaction-scoped
 * advisory lock (AUDIT_LOCK_KEY), reads the head (highest seq and its hash), skips records
 * whose msg_id is already in the log, and inserts the others with consecutive sequence numbers,
 * each chained to the one before (audit_record.h). The lock makes the chain linear across
 * processes; msg_id UNIQUE makes a redelivered message add nothing.
 *
 * Payloads pass through PostgreSQL's jsonb once before hashing, so the hash covers exactly
 * the text that `payload::text` gives back to a verifier.
 *
 * A db handle is used by one thread at a time (db.h); functions block on the database. */
#ifndef ESS_AUDIT_STORE_H
#define ESS_AUDIT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit_record.h"
#include "db.h"
#include "status.h"

/* pg_advisory_xact_lock key serialising appends ("ess-aud1" as a big-endian int64). */
#define AUDIT_LOCK_KEY "7310313258898252849"
#define AUDIT_APPEND_MAX 5000 /* entries per call */
#define AUDIT_MSG_ID_MAX 256

typedef struct audit_head {
    int64_t seq; /* 0 for an empty log */
    unsigned char hash[AUDIT_HASH_BYTES]; /* zeros for an empty log */
} audit_head;

/* One record to append. Strings are borrowed for the call. */
typedef struct audit_entry {
    const char *stream;   /* "" when the record does not come from a stream */
    uint64_t stream_seq;  /* 0 when not from a stream */
    const char *subject;  /* as stored: personal data already removed */
    const char *msg_id;   /* the record's identity, 1..AUDIT_MSG_ID_MAX-1 bytes */
    unsigned char digest[AUDIT_HASH_BYTES]; /* SHA-256 of the original payload */
    const char *payload;  /* JSON text as stored (redacted); need not be NUL-terminated */
    size_t payload_len;
    int64_t seq;          /* out: the seq given, or 0 when msg_id was already in the log */
} audit_entry;

/* In the caller's open transaction (db_begin / db_tx): appends entries in array order,
 * skipping those whose msg_id is in the log already or earlier in the array. count <=
 * AUDIT_APPEND_MAX. *ret_appended (may be NULL) = rows inserted; *ret_head (may be NULL) = the
 * head afterwards. The lock is held until the caller's transaction ends. ST_INVALID for an
 * entry that cannot be stored (payload not JSON, missing field): nothing is inserted then. */
st_code audit_store_append(db *d, audit_entry *entries, size_t count, size_t *ret_appended,
                           audit_head *ret_head, st_error *err);

/* The same in a transaction of its own (db_tx). */
st_code audit_store_append_tx(db *d, audit_entry *entries, size_t count, size_t *ret_appended,
                              audit_head *ret_head, st_error *err);

/* In the caller's transaction: appends one record written by an operator tool or a job
 * (stream ""), digest = SHA-256 of payload. payload: JSON text without personal data in clear.
 * *ret_seq (may be NULL) = its seq, 0 when msg_id was already in the log. */
st_code audit_store_append_record(db *d, const char *subject, const char *msg_id,
                                  const char *payload, int64_t *ret_seq, st_error *err);

/* The current head (no lock: a snapshot). */
st_code audit_store_head(db *d, audit_head *ret_head, st_error *err);

/* The stream_seq of the latest row from stream (by seq), or 0 when it has none. */
st_code audit_store_stream_position(db *d, const char *stream, uint64_t *ret_stream_seq,
                                    st_error *err);

typedef struct audit_verify_result {
    int64_t rows;           /* rows checked and found intact */
    int64_t first_seq;      /* first seq checked (0 when none) */
    int64_t last_seq;       /* last intact seq (0 when none) */
    unsigned char head_hash[AUDIT_HASH_BYTES]; /* hash of last_seq */
    audit_break broken;     /* AUDIT_INTACT when the whole range holds */
    int64_t broken_seq;     /* first broken seq when broken */
} audit_verify_result;

/* Recomputes the chain from from_seq (>= 1) to the end, in pages. A from_seq above 1 links
 * to the stored hash of from_seq - 1 (which must exist). ST_OK whether or not the chain is
 * intact (see ret->broken); an error status only when the database fails. */
st_code audit_store_verify(db *d, int64_t from_seq, audit_verify_result *ret_result,
                           st_error *err);

#endif
