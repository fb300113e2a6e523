/* essctl audit: the audit log for operators.
 *
 *   essctl audit verify [--from SEQ] [--head-file PATH] [--json]
 *       recomputes the hash chain from SEQ (default 1) to the end and names the first broken
 *       row; with --head-file (ESS_AUDIT_HEAD_FILE of ess-audit) also checks that the last
 *       recorded head is still in the log, which catches a log cut short or rewritten whole.
 *       Exit 0 intact, 1 broken (or the database failed), 2 usage.
 *   essctl audit show --incident CASE [--json]
 *       every record of the case (by case number and incident id in the payloads, and the
 *       reporter's own LINE events and messages while the case was open, joined by the keyed
 *       hash of the reporter's LINE id), in chain order.
 *
 * And essctl_audit_pii_read for other commands (essctl_audit.h). */
#include "essctl_audit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "audit_record.h"
#include "audit_redact.h"
#include "audit_store.h"
#include "essctl.h"
#include "log.h"
#include "vault.h"

int essctl_audit_verify(const essctl_command *command, int argc, char **argv);
int essctl_audit_show(const essctl_command *command, int argc, char **argv);

/* ---- personal data read ------------------------------------------------------------------ */

const char *essctl_audit_operator(const char *as_option)
{
    if (as_option != NULL && as_option[0] != '\0')
        return as_option;
    static const char *const names[] = {"ESS_OPERATOR", "LOGNAME", "USER"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *value = getenv(names[i]);
        if (value != NULL && value[0] != '\0')
            return value;
    }
    return "unknown";
}

typedef struct pii_read {
    const char *msg_id;
    const char *payload;
} pii_read;

static st_code append_pii_read(db *d, void *closure, st_error *err)
{
    pii_read *read = closure;
    return audit_store_append_record(d, "audit.pii.read", read->msg_id, read->payload, NULL,
                                     err);
}

st_code essctl_audit_pii_read(db *d, const char *case_number, int64_t incident_id,
                              const char *field, const char *reader, st_error *err)
{
    if (d == NULL || case_number == NULL || case_number[0] == '\0' || field == NULL ||
        field[0] == '\0')
        return st_fail(err, ST_INVALID, "audit: a personal-data read needs a case and a field");
    unsigned char nonce[16];
    st_code code = vault_random(nonce, sizeof(nonce), err);
    if (code != ST_OK)
        return code;
    char nonce_hex[33], msg_id[64];
    vault_hex(nonce, sizeof(nonce), nonce_hex);
    snprintf(msg_id, sizeof(msg_id), "pii.read/%s", nonce_hex);

    /* The reader's name is free text: bounded and scrubbed like any stored text. */
    char reader_bounded[ESSCTL_AUDIT_READER_MAX + 1];
    snprintf(reader_bounded, sizeof(reader_bounded), "%s",
             reader != NULL && reader[0] != '\0' ? reader : "unknown");
    char *reader_clean = NULL;
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    cJSON *root = cJSON_CreateObject();
    char *payload = NULL;
    code = audit_scrub_text(NULL, reader_bounded, strlen(reader_bounded), &reader_clean, NULL,
                            err);
    if (code != ST_OK)
        goto cleanup;
    if (root == NULL ||
        (incident_id > 0 && cJSON_AddNumberToObject(root, "incident_id", (double)incident_id) == NULL) ||
        cJSON_AddStringToObject(root, "case_number", case_number) == NULL ||
        cJSON_AddStringToObject(root, "field", field) == NULL ||
        cJSON_AddStringToObject(root, "reader", reader_clean) == NULL ||
        cJSON_AddStringToObject(root, "tool", "essctl") == NULL ||
        cJSON_AddStringToObject(root, "host", host) == NULL ||
        (payload = cJSON_PrintUnformatted(root)) == NULL) {
        code = st_fail(err, ST_NOMEM, "audit: out of memory");
        goto cleanup;
    }
    pii_read read = {.msg_id = msg_id, .payload = payload};
    code = db_tx(d, 0, append_pii_read, &read, err);

cleanup:
    free(payload);
    cJSON_Delete(root);
    free(reader_clean);
    return code;
}

/* ---- verify ------------------------------------------------------------------------------ */

typedef struct recorded_head {
    int64_t seq;
    char hash[AUDIT_HASH_HEX];
} recorded_head;

/* The last head line of an ESS_AUDIT_HEAD_FILE. */
static int read_head_file(const essctl_command *command, const char *path,
                          recorded_head *ret_head)
{
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        fprintf(stderr, "essctl %s: cannot read the head file\n", command->name);
        return ESSCTL_EXIT_FAILURE;
    }
    char line[512], last[512] = "";
    while (fgets(line, sizeof(line), file) != NULL)
        if (line[0] == '{')
            memcpy(last, line, sizeof(last));
    fclose(file);
    cJSON *root = cJSON_Parse(last);
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(root, "seq");
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(root, "hash");
    unsigned char bytes[AUDIT_HASH_BYTES];
    int exit_code = ESSCTL_EXIT_OK;
    if (!cJSON_IsNumber(seq) || seq->valuedouble < 0 || !cJSON_IsString(hash) ||
        audit_hash_parse(hash->valuestring, bytes) != ST_OK) {
        fprintf(stderr, "essctl %s: the head file holds no head line\n", command->name);
        exit_code = ESSCTL_EXIT_FAILURE;
    } else {
        ret_head->seq = (int64_t)seq->valuedouble;
        audit_hash_hex(bytes, ret_head->hash);
    }
    cJSON_Delete(root);
    return exit_code;
}

/* Whether row head->seq exists with head->hash (an empty log matches seq 0). */
static st_code head_present(db *d, const recorded_head *head, bool *ret_present, st_error *err)
{
    if (head->seq == 0) {
        *ret_present = true;
        return ST_OK;
    }
    char seq[24];
    snprintf(seq, sizeof(seq), "%" PRId64, head->seq);
    const char *params[1] = {seq};
    db_result *r = NULL;
    st_code code = db_exec(d, "SELECT encode(hash, 'hex') FROM audit_log WHERE seq = $1::bigint",
                           1, params, &r, err);
    if (code == ST_OK)
        *ret_present = db_result_rows(r) == 1 && db_result_value(r, 0, 0) != NULL &&
                       strcmp(db_result_value(r, 0, 0), head->hash) == 0;
    db_result_destroy(r);
    return code;
}

static bool parse_seq(const char *text, int64_t *ret_seq)
{
    char *end = NULL;
    long long value = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || value < 1)
        return false;
    *ret_seq = value;
    return true;
}

int essctl_audit_verify(const essctl_command *command, int argc, char **argv)
{
    const char *from_text = NULL, *head_file = NULL;
    bool json = essctl_take_flag(&argc, argv, "--json");
    if (!essctl_take_option(command, &argc, argv, "--from", &from_text) ||
        !essctl_take_option(command, &argc, argv, "--head-file", &head_file))
        return ESSCTL_EXIT_USAGE;
    int exit_code = essctl_no_more_args(command, argc, argv);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;
    int64_t from = 1;
    if (from_text != NULL && !parse_seq(from_text, &from))
        return essctl_usage_error(command, "--from must be a sequence number >= 1");
    recorded_head recorded = {0};
    if (head_file != NULL && (exit_code = read_head_file(command, head_file, &recorded)) != 0)
        return exit_code;

    db *d = NULL;
    exit_code = essctl_open_db(command, 0, &d);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;
    st_error err = {0};
    audit_verify_result result;
    bool head_ok = true;
    if (audit_store_verify(d, from, &result, &err) != ST_OK ||
        (head_file != NULL && head_present(d, &recorded, &head_ok, &err) != ST_OK)) {
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    bool intact = result.broken == AUDIT_INTACT && head_ok;
    char head_hex[AUDIT_HASH_HEX];
    audit_hash_hex(result.head_hash, head_hex);
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddBoolToObject(root, "intact", intact);
        cJSON_AddNumberToObject(root, "rows", (double)result.rows);
        cJSON_AddNumberToObject(root, "from_seq", (double)from);
        cJSON_AddNumberToObject(root, "last_seq", (double)result.last_seq);
        cJSON_AddStringToObject(root, "head_hash", result.rows > 0 ? head_hex : "");
        if (result.broken != AUDIT_INTACT) {
            cJSON_AddNumberToObject(root, "broken_seq", (double)result.broken_seq);
            cJSON_AddStringToObject(root, "reason", audit_break_text(result.broken));
        }
        if (head_file != NULL)
            cJSON_AddBoolToObject(root, "recorded_head_present", head_ok);
        char *text = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        if (text != NULL)
            printf("%s\n", text);
        free(text);
    } else if (result.broken != AUDIT_INTACT) {
        printf("audit log BROKEN at seq %" PRId64 ": %s\n", result.broken_seq,
               audit_break_text(result.broken));
        printf("%" PRId64 " rows before it verified (from seq %" PRId64 ")\n", result.rows, from);
    } else if (result.rows == 0) {
        printf("audit log intact: no rows from seq %" PRId64 "\n", from);
    } else {
        printf("audit log intact: %" PRId64 " rows verified, seq %" PRId64 "..%" PRId64
               ", head hash %s\n",
               result.rows, result.first_seq, result.last_seq, head_hex);
    }
    if (!json && !head_ok)
        printf("audit log BROKEN: the head recorded in the head file (seq %" PRId64
               ") is not in the log: rows were removed or rewritten\n",
               recorded.seq);
    exit_code = intact ? ESSCTL_EXIT_OK : ESSCTL_EXIT_FAILURE;

cleanup:
    db_destroy(d);
    return exit_code;
}

/* ---- show -------------------------------------------------------------------------------- */

typedef struct case_facts {
    char incident_id[24];   /* "" when unknown */
    char reporter_hash[AUDIT_USER_HASH_TEXT]; /* "" when unknown or erased */
    char from[40], until[40]; /* the window of the reporter's events */
} case_facts;

/* The incident's id and reporter hash from incidents, else the id from the log itself. */
static st_code find_case(db *d, const char *case_number, case_facts *facts, st_error *err)
{
    db_result *r = NULL;
    const char *params[1] = {case_number};
    memset(facts, 0, sizeof(*facts));
    st_code code = db_exec(
        d,
        "SELECT id::text, encode(reporter_key_hash, 'hex'),"
        " (reported_at - interval '1 hour')::text,"
        " (COALESCE(closed_at, cancelled_at, now()) + interval '1 hour')::text"
        " FROM incidents WHERE case_number = $1",
        1, params, &r, err);
    if (code != ST_OK)
        goto cleanup;
    if (db_result_rows(r) == 1) {
        snprintf(facts->incident_id, sizeof(facts->incident_id), "%s", db_result_value(r, 0, 0));
        const char *hash = db_result_value(r, 0, 1);
        if (hash != NULL && strlen(hash) == 64)
            snprintf(facts->reporter_hash, sizeof(facts->reporter_hash), "h:%s", hash);
        snprintf(facts->from, sizeof(facts->from), "%s", db_result_value(r, 0, 2));
        snprintf(facts->until, sizeof(facts->until), "%s", db_result_value(r, 0, 3));
        goto cleanup;
    }
    db_result_destroy(r);
    r = NULL;
    code = db_exec(d,
                   "SELECT payload ->> 'incident_id' FROM audit_log"
                   " WHERE payload ? 'case_number' AND payload ->> 'case_number' = $1"
                   " AND payload ? 'incident_id' ORDER BY seq LIMIT 1",
                   1, params, &r, err);
    if (code == ST_OK && db_result_rows(r) == 1 && db_result_value(r, 0, 0) != NULL)
        snprintf(facts->incident_id, sizeof(facts->incident_id), "%s", db_result_value(r, 0, 0));

cleanup:
    db_result_destroy(r);
    return code;
}

int essctl_audit_show(const essctl_command *command, int argc, char **argv)
{
    const char *case_number = NULL;
    bool json = essctl_take_flag(&argc, argv, "--json");
    if (!essctl_take_option(command, &argc, argv, "--incident", &case_number))
        return ESSCTL_EXIT_USAGE;
    int exit_code = essctl_no_more_args(command, argc, argv);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;
    if (case_number == NULL || case_number[0] == '\0' || strlen(case_number) > 64)
        return essctl_usage_error(command, "--incident CASE is required");

    db *d = NULL;
    db_result *r = NULL;
    cJSON *root = NULL;
    st_error err = {0};
    case_facts facts;
    exit_code = essctl_open_db(command, 0, &d);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;
    if (find_case(d, case_number, &facts, &err) != ST_OK) {
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    const char *params[5] = {case_number, facts.incident_id, facts.reporter_hash,
                             facts.from[0] ? facts.from : NULL,
                             facts.until[0] ? facts.until : NULL};
    if (db_exec(d,
                "SELECT seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
                " stream, subject, msg_id, payload::text FROM audit_log"
                " WHERE (payload ? 'case_number' AND payload ->> 'case_number' = $1)"
                " OR ($2 <> '' AND payload ? 'incident_id' AND payload ->> 'incident_id' = $2)"
                " OR ($3 <> '' AND at BETWEEN $4::timestamptz AND $5::timestamptz AND"
                "     ((payload ? 'source' AND payload -> 'source' ->> 'userId' = $3)"
                "      OR (payload ? 'to' AND payload ->> 'to' = $3)))"
                " ORDER BY seq",
                5, params, &r, &err) != ST_OK) {
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    int rows = db_result_rows(r);
    if (rows == 0) {
        char shown[80];
        log_scrub(case_number, shown, sizeof(shown));
        fprintf(stderr, "essctl %s: no audit records for case %s\n", command->name, shown);
        exit_code = ESSCTL_EXIT_FAILURE;
        goto cleanup;
    }
    if (json) {
        root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "case_number", case_number);
        if (facts.incident_id[0] != '\0')
            cJSON_AddNumberToObject(root, "incident_id", strtod(facts.incident_id, NULL));
        cJSON *records = cJSON_AddArrayToObject(root, "records");
        for (int row = 0; row < rows; row++) {
            cJSON *record = cJSON_CreateObject();
            cJSON_AddNumberToObject(record, "seq", strtod(db_result_value(r, row, 0), NULL));
            cJSON_AddStringToObject(record, "at", db_result_value(r, row, 1));
            cJSON_AddStringToObject(record, "stream", db_result_value(r, row, 2));
            cJSON_AddStringToObject(record, "subject", db_result_value(r, row, 3));
            cJSON_AddStringToObject(record, "msg_id", db_result_value(r, row, 4));
            cJSON_AddItemToObject(record, "payload", cJSON_Parse(db_result_value(r, row, 5)));
            cJSON_AddItemToArray(records, record);
        }
        char *text = cJSON_PrintUnformatted(root);
        if (text != NULL)
            printf("%s\n", text);
        free(text);
    } else {
        printf("case %s%s%s: %d audit records\n", case_number,
               facts.incident_id[0] ? ", incident " : "", facts.incident_id, rows);
        printf("%-8s %-27s %-30s %s\n", "SEQ", "AT", "SUBJECT", "MSG_ID");
        for (int row = 0; row < rows; row++) {
            printf("%-8s %-27s %-30s %s\n", db_result_value(r, row, 0),
                   db_result_value(r, row, 1), db_result_value(r, row, 3),
                   db_result_value(r, row, 4));
            printf("         %s\n", db_result_value(r, row, 5));
        }
    }

cleanup:
    cJSON_Delete(root);
    db_result_destroy(r);
    db_destroy(d);
    return exit_code;
}
