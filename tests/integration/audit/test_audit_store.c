/* The audit chain in a real PostgreSQL (fresh migrated database per case), checked through
 * `essctl audit verify`: 10,000 rows verify; a changed byte, a deleted row, swapped rows are
 * each named at the right sequence; repeats add nothing; the roles of migration 0005 hold;
 * retention erases only personal fields and audits each erasure; `essctl audit show` gives a
 * case's history; a personal-data read lands in the chain. */
#include "testkit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit_harness.h"
#include "audit_redact.h"
#include "audit_store.h"
#include "essctl_audit.h"
#include "vault.h"

#define CHAIN 10000
#define BATCH 500

/* Appends count rows (stream ESS, msg ids "<unique>-<i>") in batches of BATCH; returns how
 * many were new. */
static size_t append_rows(audit_env *e, int first, int count)
{
    size_t total = 0;
    audit_entry *entries = calloc(BATCH, sizeof(*entries));
    char (*payloads)[160] = calloc(BATCH, sizeof(*payloads));
    char (*ids)[64] = calloc(BATCH, sizeof(*ids));
    for (int done = 0; done < count;) {
        int n = count - done < BATCH ? count - done : BATCH;
        for (int i = 0; i < n; i++) {
            int k = first + done + i;
            snprintf(payloads[i], sizeof(payloads[i]),
                     "{\"incident_id\": %d, \"case_number\": \"ESS-2569-%06d\", \"n\": %d, "
                     "\"status\": \"routed\"}",
                     k % 97 + 1, k % 97 + 1, k);
            snprintf(ids[i], sizeof(ids[i]), "ESS/%s-%d", e->unique, k);
            entries[i] = (audit_entry){.stream = "ESS",
                                       .stream_seq = (uint64_t)k + 1,
                                       .subject = "ess.incident.status",
                                       .msg_id = ids[i],
                                       .payload = payloads[i],
                                       .payload_len = strlen(payloads[i])};
            audit_sha256(payloads[i], entries[i].payload_len, entries[i].digest);
        }
        size_t appended = 0;
        st_error err = {0};
        if (audit_store_append_tx(e->db, entries, (size_t)n, &appended, NULL, &err) != ST_OK)
            fail_msg("append: %s (%s)", err.message, err.cause);
        total += appended;
        done += n;
    }
    free(ids);
    free(payloads);
    free(entries);
    return total;
}

/* essctl audit verify [args]: exit code; output kept in *ret_output (heap) when given. */
static int verify(audit_env *e, const char *const *extra, char **ret_output)
{
    const char *args[8] = {"audit", "verify"};
    size_t n = 2;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return run_essctl(e, NULL, args, NULL, ret_output);
}

static void expect_broken_at(audit_env *e, int64_t seq)
{
    char *output = NULL;
    int code = verify(e, NULL, &output);
    char expected[64];
    snprintf(expected, sizeof(expected), "BROKEN at seq %" PRId64 ":", seq);
    if (code != 1 || strstr(output, expected) == NULL)
        fail_msg("verify exited %d, wanted 1 naming seq %" PRId64 ": %s", code, seq, output);
    free(output);
}

static void expect_intact(audit_env *e, const char *rows_text)
{
    char *output = NULL;
    int code = verify(e, NULL, &output);
    if (code != 0 || (rows_text != NULL && strstr(output, rows_text) == NULL))
        fail_msg("verify exited %d: %s", code, output);
    free(output);
}

ESS_TEST(chain_of_10000_events_verifies)
{
    audit_env e;
    env_open(&e, false);
    assert_int_equal(append_rows(&e, 0, CHAIN), CHAIN);
    assert_int_equal(db_int(&e, "SELECT count(*) FROM audit_log", NULL), CHAIN);
    expect_intact(&e, "10000 rows verified, seq 1..10000");
    /* The library agrees, and its head is the last row. */
    audit_verify_result result;
    assert_int_equal(audit_store_verify(e.db, 1, &result, NULL), ST_OK);
    assert_int_equal(result.broken, AUDIT_INTACT);
    assert_int_equal(result.rows, CHAIN);
    audit_head head;
    assert_int_equal(audit_store_head(e.db, &head, NULL), ST_OK);
    assert_int_equal(head.seq, CHAIN);
    assert_memory_equal(head.hash, result.head_hash, AUDIT_HASH_BYTES);
    env_close(&e);
}

ESS_TEST(one_changed_byte_is_detected_at_its_seq)
{
    audit_env e;
    env_open(&e, false);
    append_rows(&e, 0, CHAIN);
    /* A byte of the subject. */
    db_ok(&e, "UPDATE audit_log SET subject = overlay(subject placing 'X' from 2 for 1)"
              " WHERE seq = 4321");
    expect_broken_at(&e, 4321);
    db_ok(&e, "UPDATE audit_log SET subject = 'ess.incident.status' WHERE seq = 4321");
    expect_intact(&e, "10000 rows verified");
    /* A bit of the digest. */
    db_ok(&e, "UPDATE audit_log SET digest = set_byte(digest, 0, get_byte(digest, 0) # 1)"
              " WHERE seq = 9999");
    expect_broken_at(&e, 9999);
    db_ok(&e, "UPDATE audit_log SET digest = set_byte(digest, 0, get_byte(digest, 0) # 1)"
              " WHERE seq = 9999");
    /* One digit of the payload. */
    db_ok(&e, "UPDATE audit_log SET payload = jsonb_set(payload, '{n}', '7')"
              " WHERE seq = 12");
    expect_broken_at(&e, 12);
    env_close(&e);
}

ESS_TEST(deleted_row_is_detected_at_its_seq)
{
    audit_env e;
    env_open(&e, false);
    append_rows(&e, 0, CHAIN);
    db_ok(&e, "DELETE FROM audit_log WHERE seq = 777");
    expect_broken_at(&e, 777);
    env_close(&e);
}

ESS_TEST(swapped_rows_are_detected_at_the_first)
{
    audit_env e;
    env_open(&e, false);
    append_rows(&e, 0, CHAIN);
    db_ok(&e, "UPDATE audit_log SET seq = 99999999 WHERE seq = 5000");
    db_ok(&e, "UPDATE audit_log SET seq = 5000 WHERE seq = 5001");
    db_ok(&e, "UPDATE audit_log SET seq = 5001 WHERE seq = 99999999");
    expect_broken_at(&e, 5000);
    env_close(&e);
}

ESS_TEST(verify_from_a_seq_and_against_a_recorded_head)
{
    audit_env e;
    env_open(&e, false);
    append_rows(&e, 0, 3000);
    db_ok(&e, "UPDATE audit_log SET subject = 'edited' WHERE seq = 100");
    const char *from_2000[] = {"--from", "2000", NULL};
    char *output = NULL;
    assert_int_equal(verify(&e, from_2000, &output), 0);
    assert_non_null(strstr(output, "1001 rows verified, seq 2000..3000"));
    free(output);
    const char *from_1[] = {"--from", "1", NULL};
    assert_int_equal(verify(&e, from_1, NULL), 1);
    db_ok(&e, "UPDATE audit_log SET subject = 'ess.incident.status' WHERE seq = 100");

    /* A head recorded by ess-audit (ESS_AUDIT_HEAD_FILE) catches a log cut short. */
    audit_head head;
    assert_int_equal(audit_store_head(e.db, &head, NULL), ST_OK);
    char hex[AUDIT_HASH_HEX], path[128];
    audit_hash_hex(head.hash, hex);
    snprintf(path, sizeof(path), "/tmp/ess-audit-head-%s.jsonl", e.unique);
    FILE *file = fopen(path, "w");
    fprintf(file, "{\"ts\":\"2026-11-30T09:00:00.000000Z\",\"seq\":1,\"hash\":\"%064d\"}\n", 0);
    fprintf(file, "{\"ts\":\"2026-11-30T09:05:00.000000Z\",\"seq\":%" PRId64 ",\"hash\":\"%s\"}\n",
            head.seq, hex);
    fclose(file);
    const char *with_head[] = {"--head-file", path, NULL};
    assert_int_equal(verify(&e, with_head, NULL), 0);
    db_ok(&e, "DELETE FROM audit_log WHERE seq > 2990");
    expect_intact(&e, "2990 rows verified"); /* the chain alone cannot tell */
    assert_int_equal(verify(&e, with_head, &output), 1);
    assert_non_null(strstr(output, "head recorded in the head file (seq 3000) is not in the log"));
    free(output);
    const char *json[] = {"--json", "--from", "2990", NULL};
    assert_int_equal(verify(&e, json, &output), 0);
    assert_non_null(strstr(output, "\"intact\":true"));
    free(output);
    unlink(path);
    env_close(&e);
}

ESS_TEST(repeated_entries_add_no_rows)
{
    audit_env e;
    env_open(&e, false);
    assert_int_equal(append_rows(&e, 0, 100), 100);
    assert_int_equal(append_rows(&e, 50, 100), 50); /* 50..99 again, 100..149 new */
    assert_int_equal(db_int(&e, "SELECT count(*) FROM audit_log", NULL), 150);
    /* Within one call. */
    audit_entry twice[2];
    for (int i = 0; i < 2; i++) {
        twice[i] = (audit_entry){.stream = "ESS", .stream_seq = 9, .subject = "s",
                                 .msg_id = "ESS/same", .payload = "{}", .payload_len = 2};
    }
    size_t appended = 9;
    assert_int_equal(audit_store_append_tx(e.db, twice, 2, &appended, NULL, NULL), ST_OK);
    assert_int_equal(appended, 1);
    assert_int_equal(twice[0].seq, 151);
    assert_int_equal(twice[1].seq, 0);
    expect_intact(&e, "151 rows verified");
    env_close(&e);
}

static void expect_denied(audit_env *e, const char *sql)
{
    st_error err = {0};
    db_ok(e, "BEGIN");
    db_ok(e, "SET LOCAL ROLE ess_service");
    st_code code = db_try(e, sql, 0, NULL, &err);
    db_ok(e, "ROLLBACK");
    if (code == ST_OK || strcmp(err.cause, "sqlstate 42501") != 0)
        fail_msg("ess_service could run %s (%s)", sql, err.cause);
}

ESS_TEST(service_role_appends_but_cannot_update_or_delete_audit_log)
{
    audit_env e;
    env_open(&e, false);
    append_rows(&e, 0, 10);
    expect_denied(&e, "UPDATE audit_log SET subject = 'x' WHERE seq = 3");
    expect_denied(&e, "DELETE FROM audit_log WHERE seq = 3");
    expect_denied(&e, "TRUNCATE audit_log");
    /* The operational tables stay writable (the personal fields only for ess_retention:
     * migration 0007, tests/integration/roles). */
    db_ok(&e, "SET ROLE ess_service");
    db_ok(&e, "UPDATE incidents SET updated_at = now()");
    db_ok(&e, "RESET ROLE");
    env_close(&e);
}

ESS_TEST(service_role_can_append_through_the_chain)
{
    audit_env e;
    env_open(&e, false);
    db_ok(&e, "SET ROLE ess_service");
    append_rows(&e, 0, 20);
    db_ok(&e, "RESET ROLE");
    expect_intact(&e, "20 rows verified");
    env_close(&e);
}

/* Inserts an incident; ended: "closed" / "cancelled" / "open"; days_ago of closing. */
static void add_incident(audit_env *e, int id, const char *ended, int days_ago)
{
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "INSERT INTO incidents (id, case_number, category, status, lat, lon, province_code,"
             " phone_encrypted, reporter_key_hash, reporter_id_encrypted, reported_at,"
             " closed_at, cancelled_at)"
             " VALUES (%d, 'ESS-2569-%06d', 'threat', '%s', 13.75, 100.5, 'TH10',"
             " '\\x0102'::bytea, decode(repeat('ab', 32), 'hex'), '\\x0304'::bytea,"
             " now() - interval '%d days' - interval '1 hour',"
             " CASE WHEN '%s' = 'closed' THEN now() - interval '%d days' END,"
             " CASE WHEN '%s' = 'cancelled' THEN now() - interval '%d days' END)",
             id, id, strcmp(ended, "open") == 0 ? "routed" : ended, days_ago, ended, days_ago,
             ended, days_ago);
    db_ok(e, sql);
}

ESS_TEST(retention_erases_only_personal_fields_and_audits_each_erasure)
{
    audit_env e;
    env_open(&e, false);
    append_rows(&e, 0, 5); /* erasures extend an existing chain */
    add_incident(&e, 1, "closed", 120);
    add_incident(&e, 2, "cancelled", 91);
    add_incident(&e, 3, "closed", 10);
    add_incident(&e, 4, "open", 200);
    /* Run as a login role that is only a member of ess_retention. */
    char role[64], sql[256], dsn[600];
    snprintf(role, sizeof(role), "ret_%s", e.unique);
    snprintf(sql, sizeof(sql), "CREATE ROLE %s LOGIN IN ROLE ess_retention", role);
    db_ok(&e, sql);
    /* postgresql://postgres@host:port/db -> postgresql://<role>@host:port/db */
    const char *at = strchr(e.dsn + strlen("postgresql://"), '@');
    assert_non_null(at);
    snprintf(dsn, sizeof(dsn), "postgresql://%s%s", role, at);
    const char *args[] = {"retention", "run", NULL};
    char *output = NULL;
    int code = run_essctl(&e, dsn, args, NULL, &output);
    if (code != 0 || strstr(output, "erased the personal data of 2 incidents") == NULL)
        fail_msg("retention run exited %d: %s", code, output);
    free(output);

    assert_int_equal(db_int(&e, "SELECT count(*) FROM incidents WHERE pii_erased_at IS NOT NULL"
                                " AND phone_encrypted IS NULL AND reporter_key_hash IS NULL"
                                " AND reporter_id_encrypted IS NULL AND category = 'threat'"
                                " AND province_code = 'TH10' AND lat IS NOT NULL",
                            NULL),
                     2);
    assert_int_equal(db_int(&e, "SELECT count(*) FROM incidents WHERE id IN (3, 4)"
                                " AND phone_encrypted IS NOT NULL AND pii_erased_at IS NULL",
                            NULL),
                     2);
    assert_int_equal(db_int(&e, "SELECT count(*) FROM audit_log WHERE msg_id IN"
                                " ('retention.erased/1', 'retention.erased/2')"
                                " AND subject = 'audit.retention.erased'"
                                " AND payload -> 'erased' = '[\"phone\", \"reporter_id\","
                                " \"reporter_key\"]'::jsonb",
                            NULL),
                     2);
    expect_intact(&e, "7 rows verified");
    /* Again: nothing left to erase, nothing appended. */
    assert_int_equal(run_essctl(&e, dsn, args, NULL, &output), 0);
    assert_non_null(strstr(output, "of 0 incidents"));
    free(output);
    assert_int_equal(db_int(&e, "SELECT count(*) FROM audit_log", NULL), 7);
    /* --days narrows the window for everything closed: incident 3 (10 days). */
    const char *five_days[] = {"retention", "run", "--days", "5", NULL};
    assert_int_equal(run_essctl(&e, dsn, five_days, NULL, NULL), 0);
    assert_int_equal(db_int(&e, "SELECT count(*) FROM incidents WHERE pii_erased_at IS NOT NULL",
                            NULL),
                     3);

    /* The retention role can touch nothing else. */
    st_error err = {0};
    snprintf(sql, sizeof(sql), "SET ROLE %s", role);
    db_ok(&e, sql);
    assert_int_not_equal(db_try(&e, "UPDATE incidents SET category = 'sexual'", 0, NULL, &err),
                         ST_OK);
    assert_string_equal(err.cause, "sqlstate 42501");
    assert_int_not_equal(db_try(&e, "DELETE FROM audit_log", 0, NULL, &err), ST_OK);
    assert_int_not_equal(db_try(&e, "UPDATE audit_log SET subject = 'x'", 0, NULL, &err), ST_OK);
    db_ok(&e, "RESET ROLE");
    env_close(&e);
    snprintf(sql, sizeof(sql), "DROP ROLE IF EXISTS %s", role);
    /* The database is gone: drop the role through a fresh one. */
    audit_env admin;
    env_open(&admin, false);
    db_ok(&admin, sql);
    env_close(&admin);
}

ESS_TEST(audit_show_prints_the_case_history)
{
    audit_env e;
    env_open(&e, false);
    vault_keys keys;
    assert_int_equal(vault_keys_from_base64(TEST_DATA_KEY, &keys, NULL), ST_OK);
    static const char reporter[] = "U0123456789abcdef0123456789abcdef";
    unsigned char reporter_key[VAULT_HASH_BYTES];
    vault_lookup_hash(&keys, AUDIT_USER_HASH_PURPOSE, reporter, reporter_key);
    char key_hex[65], hashed[AUDIT_USER_HASH_TEXT], sql[512];
    vault_hex(reporter_key, sizeof(reporter_key), key_hex);
    audit_user_hash(&keys, reporter, hashed);
    snprintf(sql, sizeof(sql),
             "INSERT INTO incidents (id, case_number, category, reporter_key_hash)"
             " VALUES (42, 'ESS-2569-000042', 'threat', decode('%s', 'hex'))",
             key_hex);
    db_ok(&e, sql);

    char payloads[5][256];
    snprintf(payloads[0], sizeof(payloads[0]),
             "{\"type\":\"message\",\"source\":{\"type\":\"user\",\"userId\":\"%s\"}}", hashed);
    snprintf(payloads[1], sizeof(payloads[1]),
             "{\"incident_id\":42,\"case_number\":\"ESS-2569-000042\",\"category\":\"threat\"}");
    snprintf(payloads[2], sizeof(payloads[2]), "{\"incident_id\":42,\"targets\":[]}");
    snprintf(payloads[3], sizeof(payloads[3]),
             "{\"incident_id\":43,\"case_number\":\"ESS-2569-000043\"}");
    snprintf(payloads[4], sizeof(payloads[4]), "{\"command_id\":\"c1\",\"to\":\"%s\"}", hashed);
    static const char *const subjects[5] = {"line.in.user.x", "ess.incident.reported",
                                            "ess.incident.routed", "ess.incident.reported",
                                            "line.out.push"};
    audit_entry entries[5];
    char ids[5][32];
    for (int i = 0; i < 5; i++) {
        snprintf(ids[i], sizeof(ids[i]), "X/%d", i);
        entries[i] = (audit_entry){.stream = "ESS", .stream_seq = (uint64_t)i + 1,
                                   .subject = subjects[i], .msg_id = ids[i],
                                   .payload = payloads[i], .payload_len = strlen(payloads[i])};
    }
    assert_int_equal(audit_store_append_tx(e.db, entries, 5, NULL, NULL, NULL), ST_OK);

    const char *args[] = {"audit", "show", "--incident", "ESS-2569-000042", "--json", NULL};
    char *output = NULL;
    assert_int_equal(run_essctl(&e, NULL, args, NULL, &output), 0);
    /* seq 1 (reporter's message), 2 (reported), 3 (routed by id), 5 (push to reporter). */
    assert_non_null(strstr(output, "\"seq\":1,"));
    assert_non_null(strstr(output, "\"seq\":2,"));
    assert_non_null(strstr(output, "\"seq\":3,"));
    assert_null(strstr(output, "\"seq\":4,"));
    assert_non_null(strstr(output, "\"seq\":5,"));
    free(output);
    const char *missing[] = {"audit", "show", "--incident", "ESS-2569-999999", NULL};
    assert_int_equal(run_essctl(&e, NULL, missing, NULL, NULL), 1);
    const char *usage[] = {"audit", "show", NULL};
    assert_int_equal(run_essctl(&e, NULL, usage, NULL, NULL), 2);
    env_close(&e);
}

ESS_TEST(personal_data_read_is_recorded_in_the_chain)
{
    audit_env e;
    env_open(&e, false);
    append_rows(&e, 0, 3);
    st_error err = {0};
    assert_int_equal(essctl_audit_pii_read(e.db, "ESS-2569-000007", 7, "phone",
                                           essctl_audit_operator("officer somchai"), &err),
                     ST_OK);
    assert_int_equal(essctl_audit_pii_read(e.db, "", 7, "phone", "x", &err), ST_INVALID);
    assert_int_equal(db_int(&e, "SELECT count(*) FROM audit_log WHERE subject = 'audit.pii.read'"
                                " AND payload ->> 'reader' = 'officer somchai'"
                                " AND payload ->> 'field' = 'phone' AND seq = 4"
                                " AND payload ->> 'case_number' = 'ESS-2569-000007'",
                            NULL),
                     1);
    assert_string_equal(essctl_audit_operator(NULL), getenv("ESS_OPERATOR") != NULL
                                                         ? getenv("ESS_OPERATOR")
                                                         : essctl_audit_operator(""));
    expect_intact(&e, "4 rows verified");
    env_close(&e);
}

ESS_TEST_MAIN(NULL, NULL)
