/* console_audit: login and personal-data-read records. See console_audit.h. */
#include "console_audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit_redact.h"
#include "audit_store.h"
#include "vault.h"

typedef struct record {
    const char *subject;
    const char *msg_id;
    const char *payload;
} record;

static st_code append_tx(db *d, void *closure, st_error *err)
{
    const record *rec = closure;
    return audit_store_append_record(d, rec->subject, rec->msg_id, rec->payload, NULL, err);
}

/* Appends payload under subject with a fresh msg_id "<prefix>/<random hex>". */
static st_code append(db *d, const char *subject, const char *prefix, cJSON *payload_json,
                      st_error *err)
{
    unsigned char nonce[16];
    char nonce_hex[33], msg_id[64];
    st_code status = vault_random(nonce, sizeof(nonce), err);
    if (status != ST_OK)
        return status;
    vault_hex(nonce, sizeof(nonce), nonce_hex);
    snprintf(msg_id, sizeof(msg_id), "%s/%s", prefix, nonce_hex);
    char *payload = cJSON_PrintUnformatted(payload_json);
    if (payload == NULL)
        return st_fail(err, ST_NOMEM, "audit: out of memory");
    record rec = {.subject = subject, .msg_id = msg_id, .payload = payload};
    status = db_tx(d, 0, append_tx, &rec, err);
    free(payload);
    return status;
}

st_code console_audit_login(db *d, const char *user_name, bool ok,
                            const unsigned char peer_hash[32], st_error *err)
{
    char *name_clean = NULL;
    char peer_hex[65];
    cJSON *root = cJSON_CreateObject();
    const char *name = user_name != NULL ? user_name : "";
    st_code status = audit_scrub_text(NULL, name, strnlen(name, 128), &name_clean, NULL, err);
    if (status != ST_OK)
        goto cleanup;
    vault_hex(peer_hash, 32, peer_hex);
    if (root == NULL || cJSON_AddStringToObject(root, "user", name_clean) == NULL ||
        cJSON_AddBoolToObject(root, "ok", ok) == NULL ||
        cJSON_AddStringToObject(root, "peer_hash", peer_hex) == NULL ||
        cJSON_AddStringToObject(root, "tool", "ess-console") == NULL) {
        status = st_fail(err, ST_NOMEM, "audit: out of memory");
        goto cleanup;
    }
    status = append(d, "audit.console.login", "console.login", root, err);
cleanup:
    cJSON_Delete(root);
    free(name_clean);
    return status;
}

st_code console_audit_pii_read(db *d, const char *case_number, int64_t incident_id,
                               const char *reader, const char *reason, st_error *err)
{
    if (case_number == NULL || case_number[0] == '\0' || reason == NULL || reason[0] == '\0')
        return st_fail(err, ST_INVALID, "audit: a personal-data read needs a case and a reason");
    char *reader_clean = NULL, *reason_clean = NULL;
    cJSON *root = cJSON_CreateObject();
    const char *who = reader != NULL && reader[0] != '\0' ? reader : "unknown";
    st_code status = audit_scrub_text(NULL, who, strnlen(who, 128), &reader_clean, NULL, err);
    if (status == ST_OK)
        status = audit_scrub_text(NULL, reason, strnlen(reason, 1024), &reason_clean, NULL, err);
    if (status != ST_OK)
        goto cleanup;
    if (root == NULL || cJSON_AddStringToObject(root, "case_number", case_number) == NULL ||
        (incident_id > 0 &&
         cJSON_AddNumberToObject(root, "incident_id", (double)incident_id) == NULL) ||
        cJSON_AddStringToObject(root, "field", "phone") == NULL ||
        cJSON_AddStringToObject(root, "reader", reader_clean) == NULL ||
        cJSON_AddStringToObject(root, "reason", reason_clean) == NULL ||
        cJSON_AddStringToObject(root, "tool", "ess-console") == NULL) {
        status = st_fail(err, ST_NOMEM, "audit: out of memory");
        goto cleanup;
    }
    status = append(d, "audit.pii.read", "pii.read", root, err);
cleanup:
    cJSON_Delete(root);
    free(reader_clean);
    free(reason_clean);
    return status;
}
