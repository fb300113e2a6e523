/* audit_retention: erase old incidents' personal fields, audit each erasure. */
#include "audit_retention.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit_store.h"

typedef struct retention_batch {
    int days;
    const char *actor;
    size_t erased;
} retention_batch;

static st_code nomem(st_error *err)
{
    return st_fail(err, ST_NOMEM, "retention: out of memory");
}

/* The audit payload of one erased incident (row of the UPDATE's RETURNING). */
static char *erasure_payload(db_result *r, int row, int days, const char *actor)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *erased = cJSON_AddArrayToObject(root, "erased");
    char *text = NULL;
    if (root == NULL || erased == NULL)
        goto cleanup;
    static const char *const fields[3] = {"phone", "reporter_id", "reporter_key"};
    for (int f = 0; f < 3; f++) {
        const char *had = db_result_value(r, row, 5 + f);
        if (had != NULL && strcmp(had, "t") == 0)
            cJSON_AddItemToArray(erased, cJSON_CreateString(fields[f]));
    }
    const char *ended = db_result_value(r, row, 4);
    if (cJSON_AddNumberToObject(root, "incident_id",
                                strtod(db_result_value(r, row, 0), NULL)) == NULL ||
        cJSON_AddStringToObject(root, "case_number", db_result_value(r, row, 1)) == NULL ||
        cJSON_AddStringToObject(root, "status", db_result_value(r, row, 2)) == NULL ||
        cJSON_AddStringToObject(root, "ended_at", ended != NULL ? ended : "") == NULL ||
        cJSON_AddStringToObject(root, "erased_at", db_result_value(r, row, 3)) == NULL ||
        cJSON_AddNumberToObject(root, "retention_days", days) == NULL ||
        cJSON_AddStringToObject(root, "actor", actor) == NULL)
        goto cleanup;
    text = cJSON_PrintUnformatted(root);

cleanup:
    cJSON_Delete(root);
    return text;
}

static st_code erase_batch(db *d, void *closure, st_error *err)
{
    retention_batch *batch = closure;
    db_result *r = NULL;
    char **payloads = NULL, (*ids)[64] = NULL;
    audit_entry *entries = NULL;
    int rows = 0;
    char days_text[16], limit_text[16];
    snprintf(days_text, sizeof(days_text), "%d", batch->days);
    snprintf(limit_text, sizeof(limit_text), "%d", AUDIT_RETENTION_BATCH);
    const char *params[2] = {days_text, limit_text};
    batch->erased = 0;
    st_code code = db_exec(
        d,
        "WITH due AS ("
        " SELECT id, phone_encrypted IS NOT NULL AS had_phone,"
        " reporter_id_encrypted IS NOT NULL AS had_reporter_id,"
        " reporter_key_hash IS NOT NULL AS had_reporter_key"
        " FROM incidents"
        " WHERE pii_erased_at IS NULL AND status IN ('closed', 'cancelled')"
        " AND COALESCE(closed_at, cancelled_at) < now() - make_interval(days => $1::int)"
        " ORDER BY id LIMIT $2::int FOR UPDATE SKIP LOCKED)"
        " UPDATE incidents i SET phone_encrypted = NULL, reporter_id_encrypted = NULL,"
        " reporter_key_hash = NULL, pii_erased_at = now(), updated_at = now()"
        " FROM due WHERE i.id = due.id"
        " RETURNING i.id, i.case_number, i.status,"
        " to_char(i.pii_erased_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
        " to_char(COALESCE(i.closed_at, i.cancelled_at) AT TIME ZONE 'UTC',"
        " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
        " due.had_phone, due.had_reporter_id, due.had_reporter_key",
        2, params, &r, err);
    if (code != ST_OK)
        goto cleanup;
    rows = db_result_rows(r);
    if (rows == 0)
        goto cleanup;
    payloads = calloc((size_t)rows, sizeof(*payloads));
    ids = calloc((size_t)rows, sizeof(*ids));
    entries = calloc((size_t)rows, sizeof(*entries));
    if (payloads == NULL || ids == NULL || entries == NULL) {
        code = nomem(err);
        goto cleanup;
    }
    for (int row = 0; row < rows; row++) {
        payloads[row] = erasure_payload(r, row, batch->days, batch->actor);
        if (payloads[row] == NULL) {
            code = nomem(err);
            goto cleanup;
        }
        snprintf(ids[row], sizeof(ids[row]), "retention.erased/%s", db_result_value(r, row, 0));
        entries[row] = (audit_entry){.stream = "",
                                     .subject = "audit.retention.erased",
                                     .msg_id = ids[row],
                                     .payload = payloads[row],
                                     .payload_len = strlen(payloads[row])};
        audit_sha256(payloads[row], entries[row].payload_len, entries[row].digest);
    }
    code = audit_store_append(d, entries, (size_t)rows, NULL, NULL, err);
    if (code == ST_OK)
        batch->erased = (size_t)rows;

cleanup:
    for (int row = 0; payloads != NULL && row < rows; row++)
        free(payloads[row]);
    free(payloads);
    free(ids);
    free(entries);
    db_result_destroy(r);
    return code;
}

st_code audit_retention_run(db *d, int days, const char *actor, size_t *ret_erased,
                            st_error *err)
{
    size_t total = 0;
    st_code code = ST_OK;
    if (d == NULL || days < 1 || days > AUDIT_RETENTION_DAYS_MAX || actor == NULL)
        code = st_fail(err, ST_INVALID, "retention: days must be 1..%d",
                       AUDIT_RETENTION_DAYS_MAX);
    while (code == ST_OK) {
        retention_batch batch = {.days = days, .actor = actor};
        code = db_tx(d, 0, erase_batch, &batch, err);
        if (code != ST_OK)
            break;
        total += batch.erased;
        if (batch.erased < AUDIT_RETENTION_BATCH)
            break;
    }
    if (ret_erased != NULL)
        *ret_erased = total;
    return code;
}
