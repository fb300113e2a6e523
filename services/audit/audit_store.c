/* audit_store: the chain in PostgreSQL (see audit_store.h). */
#include "audit_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define VERIFY_PAGE 2000

static st_code nomem(st_error *err)
{
    return st_fail(err, ST_NOMEM, "audit: out of memory");
}

static st_code parse_head(db_result *r, audit_head *ret_head, st_error *err)
{
    audit_head head = {0};
    if (db_result_rows(r) > 0) {
        const char *seq = db_result_value(r, 0, 0);
        char *end = NULL;
        head.seq = seq != NULL ? strtoll(seq, &end, 10) : 0;
        if (seq == NULL || end == seq || *end != '\0' || head.seq < 1 ||
            audit_hash_parse(db_result_value(r, 0, 1), head.hash) != ST_OK)
            return st_fail(err, ST_INTERNAL, "audit: the log's head row is malformed");
    }
    *ret_head = head;
    return ST_OK;
}

st_code audit_store_head(db *d, audit_head *ret_head, st_error *err)
{
    db_result *r = NULL;
    st_code code = db_exec(d,
                           "SELECT seq, encode(hash, 'hex') FROM audit_log"
                           " ORDER BY seq DESC LIMIT 1",
                           0, NULL, &r, err);
    if (code == ST_OK)
        code = parse_head(r, ret_head, err);
    db_result_destroy(r);
    return code;
}

st_code audit_store_stream_position(db *d, const char *stream, uint64_t *ret_stream_seq,
                                    st_error *err)
{
    db_result *r = NULL;
    const char *params[1] = {stream};
    st_code code = db_exec(d,
                           "SELECT stream_seq FROM audit_log WHERE stream = $1 AND stream <> ''"
                           " ORDER BY seq DESC LIMIT 1",
                           1, params, &r, err);
    if (code == ST_OK) {
        const char *value = db_result_rows(r) > 0 ? db_result_value(r, 0, 0) : "0";
        *ret_stream_seq = strtoull(value != NULL ? value : "0", NULL, 10);
    }
    db_result_destroy(r);
    return code;
}

/* ---- append ------------------------------------------------------------------------------ */

typedef struct id_ref {
    const char *msg_id;
    size_t index;
} id_ref;

static int compare_ids(const void *a, const void *b)
{
    const id_ref *left = a, *right = b;
    int c = strcmp(left->msg_id, right->msg_id);
    if (c != 0)
        return c;
    return left->index < right->index ? -1 : left->index > right->index;
}

/* keep[i] = false for entries repeating an earlier entry's msg_id. */
static st_code mark_repeats(const audit_entry *entries, size_t count, bool *keep, st_error *err)
{
    id_ref *refs = calloc(count, sizeof(*refs));
    if (refs == NULL)
        return nomem(err);
    for (size_t i = 0; i < count; i++)
        refs[i] = (id_ref){.msg_id = entries[i].msg_id, .index = i};
    qsort(refs, count, sizeof(*refs), compare_ids);
    for (size_t i = 1; i < count; i++)
        if (strcmp(refs[i].msg_id, refs[i - 1].msg_id) == 0)
            keep[refs[i].index] = false;
    free(refs);
    return ST_OK;
}

static int find_id(const audit_entry *entries, size_t count, const bool *keep, const char *id)
{
    for (size_t i = 0; i < count; i++)
        if (keep[i] && strcmp(entries[i].msg_id, id) == 0)
            return (int)i;
    return -1;
}

/* Entries already in the log: keep[i] = false. */
static st_code mark_logged(db *d, const audit_entry *entries, size_t count, bool *keep,
                           st_error *err)
{
    cJSON *ids = cJSON_CreateArray();
    char *ids_text = NULL;
    db_result *r = NULL;
    st_code code = ST_OK;
    for (size_t i = 0; ids != NULL && i < count; i++) {
        if (!keep[i])
            continue;
        cJSON *id = cJSON_CreateString(entries[i].msg_id);
        if (id == NULL || !cJSON_AddItemToArray(ids, id)) {
            cJSON_Delete(id);
            code = nomem(err);
            goto cleanup;
        }
    }
    if (ids == NULL || (ids_text = cJSON_PrintUnformatted(ids)) == NULL) {
        code = nomem(err);
        goto cleanup;
    }
    const char *params[1] = {ids_text};
    code = db_exec(d,
                   "SELECT msg_id FROM audit_log"
                   " WHERE msg_id IN (SELECT jsonb_array_elements_text($1::jsonb))",
                   1, params, &r, err);
    if (code != ST_OK)
        goto cleanup;
    int rows = db_result_rows(r);
    for (int row = 0; row < rows; row++) {
        /* Sorted lookups would be faster; redelivered rows are few, so a scan will do. */
        int at = find_id(entries, count, keep, db_result_value(r, row, 0));
        if (at >= 0)
            keep[at] = false;
    }

cleanup:
    db_result_destroy(r);
    free(ids_text);
    cJSON_Delete(ids);
    return code;
}

/* The payloads of the kept entries through jsonb: the text a verifier will read back. */
static st_code normalise_payloads(db *d, const audit_entry *entries, size_t count,
                                  const bool *keep, db_result **ret_result, st_error *err)
{
    size_t total = 2;
    for (size_t i = 0; i < count; i++)
        if (keep[i])
            total += entries[i].payload_len + 1;
    char *array = malloc(total + 1);
    if (array == NULL)
        return nomem(err);
    size_t used = 0;
    array[used++] = '[';
    bool first = true;
    for (size_t i = 0; i < count; i++) {
        if (!keep[i])
            continue;
        if (!first)
            array[used++] = ',';
        first = false;
        memcpy(array + used, entries[i].payload, entries[i].payload_len);
        used += entries[i].payload_len;
    }
    array[used++] = ']';
    array[used] = '\0';
    const char *params[1] = {array};
    st_code code = db_exec(d,
                           "SELECT e.value::text FROM jsonb_array_elements($1::jsonb)"
                           " WITH ORDINALITY AS e(value, n) ORDER BY e.n",
                           1, params, ret_result, err);
    free(array);
    if (code != ST_OK)
        st_wrap(err, "audit: a payload is not JSON");
    return code;
}

static bool add_text(cJSON *object, const char *name, const char *value)
{
    return cJSON_AddStringToObject(object, name, value) != NULL;
}

st_code audit_store_append(db *d, audit_entry *entries, size_t count, size_t *ret_appended,
                           audit_head *ret_head, st_error *err)
{
    bool *keep = NULL;
    db_result *head_result = NULL, *normalised = NULL;
    cJSON *rows = NULL;
    char *rows_text = NULL;
    st_code code = ST_OK;
    size_t appended = 0;
    audit_head head = {0};

    if (d == NULL || (entries == NULL && count > 0))
        return st_fail(err, ST_INVALID, "audit: append: no database or entries");
    if (count > AUDIT_APPEND_MAX)
        return st_fail(err, ST_LIMIT, "audit: append: more than %d entries", AUDIT_APPEND_MAX);
    if (!db_in_transaction(d))
        return st_fail(err, ST_INVALID, "audit: append: needs an open transaction");
    for (size_t i = 0; i < count; i++) {
        audit_entry *e = &entries[i];
        e->seq = 0;
        if (e->stream == NULL || e->subject == NULL || e->msg_id == NULL ||
            e->msg_id[0] == '\0' || strnlen(e->msg_id, AUDIT_MSG_ID_MAX) >= AUDIT_MSG_ID_MAX ||
            e->payload == NULL || e->payload_len == 0)
            return st_fail(err, ST_INVALID, "audit: append: entry %zu lacks a field", i);
    }

    const char *lock_params[1] = {AUDIT_LOCK_KEY};
    code = db_exec(d, "SELECT pg_advisory_xact_lock($1::bigint)", 1, lock_params, NULL, err);
    if (code != ST_OK)
        goto cleanup;
    code = db_exec(d, "SELECT seq, encode(hash, 'hex') FROM audit_log ORDER BY seq DESC LIMIT 1",
                   0, NULL, &head_result, err);
    if (code != ST_OK || (code = parse_head(head_result, &head, err)) != ST_OK)
        goto cleanup;
    if (count == 0)
        goto done;

    keep = malloc(count * sizeof(*keep));
    if (keep == NULL) {
        code = nomem(err);
        goto cleanup;
    }
    for (size_t i = 0; i < count; i++)
        keep[i] = true;
    if ((code = mark_repeats(entries, count, keep, err)) != ST_OK ||
        (code = mark_logged(d, entries, count, keep, err)) != ST_OK)
        goto cleanup;
    size_t fresh = 0;
    for (size_t i = 0; i < count; i++)
        fresh += keep[i];
    if (fresh == 0)
        goto done;

    if ((code = normalise_payloads(d, entries, count, keep, &normalised, err)) != ST_OK)
        goto cleanup;
    if ((size_t)db_result_rows(normalised) != fresh) {
        code = st_fail(err, ST_INTERNAL, "audit: append: jsonb gave back %d payloads of %zu",
                       db_result_rows(normalised), fresh);
        goto cleanup;
    }

    char at[AUDIT_TIME_TEXT];
    audit_time_now(at);
    rows = cJSON_CreateArray();
    if (rows == NULL) {
        code = nomem(err);
        goto cleanup;
    }
    size_t row = 0;
    for (size_t i = 0; i < count; i++) {
        if (!keep[i])
            continue;
        audit_entry *e = &entries[i];
        const char *payload = db_result_value(normalised, (int)row, 0);
        audit_record r = {
            .seq = head.seq + 1,
            .stream = e->stream,
            .stream_seq = e->stream_seq,
            .subject = e->subject,
            .msg_id = e->msg_id,
            .payload = payload,
            .payload_len = strlen(payload),
        };
        memcpy(r.at, at, sizeof(r.at));
        memcpy(r.digest, e->digest, AUDIT_HASH_BYTES);
        memcpy(r.prev_hash, head.hash, AUDIT_HASH_BYTES);
        if ((code = audit_record_hash(&r, r.hash, err)) != ST_OK)
            goto cleanup;

        char seq_text[24], stream_seq_text[24];
        char digest_hex[AUDIT_HASH_HEX], prev_hex[AUDIT_HASH_HEX], hash_hex[AUDIT_HASH_HEX];
        snprintf(seq_text, sizeof(seq_text), "%" PRId64, r.seq);
        snprintf(stream_seq_text, sizeof(stream_seq_text), "%" PRIu64, r.stream_seq);
        audit_hash_hex(r.digest, digest_hex);
        audit_hash_hex(r.prev_hash, prev_hex);
        audit_hash_hex(r.hash, hash_hex);
        cJSON *object = cJSON_CreateObject();
        cJSON *raw = cJSON_CreateRaw(payload);
        if (object == NULL || raw == NULL || !cJSON_AddItemToArray(rows, object)) {
            cJSON_Delete(object);
            cJSON_Delete(raw);
            code = nomem(err);
            goto cleanup;
        }
        if (!add_text(object, "seq", seq_text) || !add_text(object, "at", at) ||
            !add_text(object, "stream", r.stream) ||
            !add_text(object, "stream_seq", stream_seq_text) ||
            !add_text(object, "subject", r.subject) || !add_text(object, "msg_id", r.msg_id) ||
            !add_text(object, "digest", digest_hex) || !cJSON_AddItemToObject(object, "payload", raw) ||
            !add_text(object, "prev_hash", prev_hex) || !add_text(object, "hash", hash_hex)) {
            code = nomem(err);
            goto cleanup;
        }
        e->seq = r.seq;
        head.seq = r.seq;
        memcpy(head.hash, r.hash, AUDIT_HASH_BYTES);
        row++;
        appended++;
    }
    rows_text = cJSON_PrintUnformatted(rows);
    if (rows_text == NULL) {
        code = nomem(err);
        goto cleanup;
    }
    const char *insert_params[1] = {rows_text};
    code = db_exec(d,
                   "INSERT INTO audit_log (seq, at, stream, stream_seq, subject, msg_id, digest,"
                   " payload, prev_hash, hash)"
                   " SELECT r.seq::bigint, r.at::timestamptz, r.stream, r.stream_seq::bigint,"
                   " r.subject, r.msg_id, decode(r.digest, 'hex'), r.payload,"
                   " decode(r.prev_hash, 'hex'), decode(r.hash, 'hex')"
                   " FROM jsonb_to_recordset($1::jsonb) AS r(seq text, at text, stream text,"
                   " stream_seq text, subject text, msg_id text, digest text, payload jsonb,"
                   " prev_hash text, hash text)",
                   1, insert_params, NULL, err);
    if (code != ST_OK)
        goto cleanup;

done:
    if (ret_appended != NULL)
        *ret_appended = appended;
    if (ret_head != NULL)
        *ret_head = head;

cleanup:
    if (code != ST_OK)
        for (size_t i = 0; i < count; i++)
            entries[i].seq = 0;
    free(rows_text);
    cJSON_Delete(rows);
    db_result_destroy(normalised);
    db_result_destroy(head_result);
    free(keep);
    return code;
}

typedef struct append_job {
    audit_entry *entries;
    size_t count;
    size_t appended;
    audit_head head;
} append_job;

static st_code append_in_tx(db *d, void *closure, st_error *err)
{
    append_job *job = closure;
    return audit_store_append(d, job->entries, job->count, &job->appended, &job->head, err);
}

st_code audit_store_append_tx(db *d, audit_entry *entries, size_t count, size_t *ret_appended,
                              audit_head *ret_head, st_error *err)
{
    append_job job = {.entries = entries, .count = count};
    st_code code = db_tx(d, 0, append_in_tx, &job, err);
    if (code != ST_OK)
        return code;
    if (ret_appended != NULL)
        *ret_appended = job.appended;
    if (ret_head != NULL)
        *ret_head = job.head;
    return ST_OK;
}

st_code audit_store_append_record(db *d, const char *subject, const char *msg_id,
                                  const char *payload, int64_t *ret_seq, st_error *err)
{
    if (payload == NULL)
        return st_fail(err, ST_INVALID, "audit: record without payload");
    audit_entry entry = {
        .stream = "",
        .stream_seq = 0,
        .subject = subject,
        .msg_id = msg_id,
        .payload = payload,
        .payload_len = strlen(payload),
    };
    audit_sha256(payload, entry.payload_len, entry.digest);
    st_code code = audit_store_append(d, &entry, 1, NULL, NULL, err);
    if (code == ST_OK && ret_seq != NULL)
        *ret_seq = entry.seq;
    return code;
}

/* ---- verify ------------------------------------------------------------------------------ */

static bool parse_int64(const char *text, int64_t *ret)
{
    if (text == NULL)
        return false;
    char *end = NULL;
    long long value = strtoll(text, &end, 10);
    if (end == text || *end != '\0')
        return false;
    *ret = value;
    return true;
}

/* Fills r from row `row` of a verify page (columns as selected below); strings borrowed. */
static bool row_record(db_result *page, int row, audit_record *r)
{
    memset(r, 0, sizeof(*r));
    int64_t stream_seq = 0;
    const char *at = db_result_value(page, row, 1);
    const char *payload = db_result_value(page, row, 7);
    if (!parse_int64(db_result_value(page, row, 0), &r->seq) || at == NULL ||
        strlen(at) >= AUDIT_TIME_TEXT ||
        !parse_int64(db_result_value(page, row, 3), &stream_seq) || stream_seq < 0 ||
        payload == NULL)
        return false;
    memcpy(r->at, at, strlen(at) + 1);
    r->stream = db_result_value(page, row, 2);
    r->stream_seq = (uint64_t)stream_seq;
    r->subject = db_result_value(page, row, 4);
    r->msg_id = db_result_value(page, row, 5);
    r->payload = payload;
    r->payload_len = strlen(payload);
    return r->stream != NULL && r->subject != NULL && r->msg_id != NULL &&
           audit_hash_parse(db_result_value(page, row, 6), r->digest) == ST_OK &&
           audit_hash_parse(db_result_value(page, row, 8), r->prev_hash) == ST_OK &&
           audit_hash_parse(db_result_value(page, row, 9), r->hash) == ST_OK;
}

st_code audit_store_verify(db *d, int64_t from_seq, audit_verify_result *ret_result,
                           st_error *err)
{
    audit_verify_result result = {0};
    db_result *page = NULL;
    st_code code = ST_OK;
    unsigned char start_hash[AUDIT_HASH_BYTES] = {0};
    if (from_seq < 1)
        return st_fail(err, ST_INVALID, "audit: verify: --from must be at least 1");

    if (from_seq > 1) {
        char before[24];
        snprintf(before, sizeof(before), "%" PRId64, from_seq - 1);
        const char *params[1] = {before};
        code = db_exec(d, "SELECT encode(hash, 'hex') FROM audit_log WHERE seq = $1::bigint", 1,
                       params, &page, err);
        if (code != ST_OK)
            goto cleanup;
        if (db_result_rows(page) == 0) {
            result.broken = AUDIT_BREAK_MISSING;
            result.broken_seq = from_seq - 1;
            goto done;
        }
        if (audit_hash_parse(db_result_value(page, 0, 0), start_hash) != ST_OK) {
            result.broken = AUDIT_BREAK_HASH;
            result.broken_seq = from_seq - 1;
            goto done;
        }
        db_result_destroy(page);
        page = NULL;
    }

    audit_verifier v;
    audit_verify_begin(&v, from_seq, start_hash);
    int64_t next = from_seq;
    for (;;) {
        char next_text[24], limit_text[24];
        snprintf(next_text, sizeof(next_text), "%" PRId64, next);
        snprintf(limit_text, sizeof(limit_text), "%d", VERIFY_PAGE);
        const char *params[2] = {next_text, limit_text};
        db_result_destroy(page);
        page = NULL;
        code = db_exec(d,
                       "SELECT seq,"
                       " to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
                       " stream, stream_seq, subject, msg_id, encode(digest, 'hex'),"
                       " payload::text, encode(prev_hash, 'hex'), encode(hash, 'hex')"
                       " FROM audit_log WHERE seq >= $1::bigint ORDER BY seq LIMIT $2::int",
                       2, params, &page, err);
        if (code != ST_OK)
            goto cleanup;
        int rows = db_result_rows(page);
        for (int row = 0; row < rows; row++) {
            audit_record r;
            if (!row_record(page, row, &r)) {
                int64_t seq = 0;
                parse_int64(db_result_value(page, row, 0), &seq);
                result.broken = AUDIT_BREAK_HASH;
                result.broken_seq = seq > 0 ? seq : v.expected_seq;
                goto done;
            }
            if (result.first_seq == 0)
                result.first_seq = r.seq;
            int64_t broken_seq = 0;
            audit_break b = audit_verify_next(&v, &r, &broken_seq);
            if (b != AUDIT_INTACT) {
                result.broken = b;
                result.broken_seq = broken_seq;
                goto done;
            }
            result.rows++;
            result.last_seq = r.seq;
            memcpy(result.head_hash, r.hash, AUDIT_HASH_BYTES);
            next = r.seq + 1;
        }
        if (rows < VERIFY_PAGE)
            break;
    }

done:
    *ret_result = result;

cleanup:
    db_result_destroy(page);
    return code;
}
