/* ess-audit, the real binary, against the shared nats-server and a fresh database per case:
 * every stream audited once and in stream order; duplicate deliveries add no rows; SIGKILL
 * in the middle of a batch loses nothing and duplicates nothing; no phone number (in any
 * format) and no LINE user id in clear in a full dump of the database or in the log; the
 * chain head in the log and the head file.
 *
 * The streams are the registry's, shared with other tests: each case publishes under its own
 * subjects and msg-ids, counts only its own rows, and runs ess-audit with its own durable
 * names (ESS_AUDIT_DURABLE_PREFIX), which start from the beginning of each stream. */
#include "testkit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "audit_harness.h"
#include "audit_redact.h"
#include "vault.h"

/* Rows of this case: msg ids carry the case's unique token. */
#define MINE "SELECT count(*) FROM audit_log WHERE msg_id LIKE '%' || $1 || '%'"

/* Each stream's rows of this case in stream order: 0 when no row of a stream follows one
 * with a higher stream sequence. */
#define OUT_OF_ORDER                                                                          \
    "SELECT count(*) FROM (SELECT stream_seq, lag(stream_seq) OVER (PARTITION BY stream"      \
    " ORDER BY seq) AS before FROM audit_log WHERE msg_id LIKE '%' || $1 || '%') x"            \
    " WHERE before >= stream_seq"

static void user_id_for(const audit_env *e, char out[34])
{
    unsigned char digest[32];
    unsigned int len = 0;
    EVP_Digest(e->unique, strlen(e->unique), digest, &len, EVP_sha256(), NULL);
    out[0] = 'U';
    vault_hex(digest, 16, out + 1);
}

static void line_in_event(const audit_env *e, const char *user, int i, const char *text,
                          char *out, size_t out_size)
{
    snprintf(out, out_size,
             "{\"type\":\"message\",\"webhookEventId\":\"%s-in-%d\",\"timestamp\":%d,"
             "\"mode\":\"active\",\"replyToken\":\"r%d\",\"deliveryContext\":{\"isRedelivery\":false},"
             "\"source\":{\"type\":\"user\",\"userId\":\"%s\"},"
             "\"message\":{\"id\":\"%d\",\"type\":\"text\",\"text\":\"%s\"}}",
             e->unique, i, 1000 + i, i, user, 5000 + i, text);
}

/* Publishes n messages to each of the four streams (msg ids "<unique>-<kind>-<i>"), plus
 * `no_id` ESS messages without a msg-id. Returns how many messages it published. */
static int publish_all(audit_env *e, int first, int n, int no_id)
{
    char user[34], subject[128], id[96], payload[1024];
    user_id_for(e, user);
    snprintf(subject, sizeof(subject), "line.in.user.%s", user);
    for (int i = first; i < first + n; i++) {
        line_in_event(e, user, i, "hello", payload, sizeof(payload));
        snprintf(id, sizeof(id), "%s-in-%d", e->unique, i);
        publish(e, subject, id, payload);
        snprintf(payload, sizeof(payload),
                 "{\"incident_id\":%d,\"case_number\":\"ESS-2569-%06d\",\"at\":\"2026-11-30T09:00:00Z\","
                 "\"status\":\"routed\",\"marker\":\"%s\"}",
                 i + 1, i + 1, e->unique);
        snprintf(id, sizeof(id), "status.%s-ess-%d", e->unique, i);
        publish(e, "ess.incident.status", id, payload);
        snprintf(payload, sizeof(payload),
                 "{\"command_id\":\"%s-out-%d\",\"to\":\"%s\",\"messages\":[{\"type\":\"text\","
                 "\"text\":\"ok\"}]}",
                 e->unique, i, user);
        snprintf(id, sizeof(id), "%s-out-%d", e->unique, i);
        publish(e, "line.out.push", id, payload);
        snprintf(subject, sizeof(subject), "ess.dlq.%s", e->unique);
        snprintf(id, sizeof(id), "dlq.%s.%d", e->unique, i);
        publish(e, subject, id, "{\"original\":true}");
        snprintf(subject, sizeof(subject), "line.in.user.%s", user);
    }
    for (int i = 0; i < no_id; i++) {
        snprintf(payload, sizeof(payload), "{\"no_msg_id\":\"%s-noid-%d\"}", e->unique, i);
        publish(e, "ess.incident.note", NULL, payload);
    }
    return 4 * n + no_id;
}

static int verify_chain(audit_env *e)
{
    const char *args[] = {"audit", "verify", NULL};
    char *output = NULL;
    int code = run_essctl(e, NULL, args, NULL, &output);
    if (code != 0)
        fprintf(stderr, "essctl audit verify: %s\n", output);
    free(output);
    return code;
}

static void prefix_for(const audit_env *e, const char *tag, char *out, size_t size)
{
    /* Durable names: [A-Za-z0-9_-]; the unique token is "t<pid>x<n>". */
    snprintf(out, size, "%s%s-", tag, e->unique);
}

ESS_TEST(every_stream_is_audited_once_in_stream_order)
{
    audit_env e;
    env_open(&e, true);
    int published = publish_all(&e, 0, 20, 3);
    char prefix[64];
    prefix_for(&e, "a", prefix, sizeof(prefix));
    audit_proc p;
    audit_start(&p, &e, prefix, NULL);
    int64_t mine = wait_count(&e, MINE, e.unique, published - 3, 60000);
    int64_t no_id = wait_count(&e,
                               "SELECT count(*) FROM audit_log WHERE stream = 'ESS' AND"
                               " msg_id LIKE 'ESS/#%' AND payload ->> 'no_msg_id' LIKE $1 || '-noid-%'",
                               e.unique, 3, 30000);
    assert_int_equal(audit_stop(&p), 0);
    assert_int_equal(mine, published - 3);
    assert_int_equal(no_id, 3);
    assert_int_equal(db_int(&e, OUT_OF_ORDER, e.unique), 0);
    assert_int_equal(db_int(&e, "SELECT count(DISTINCT stream) FROM audit_log"
                                " WHERE msg_id LIKE '%' || $1 || '%'", e.unique), 4);
    /* Each row has its identity and origin. */
    assert_int_equal(db_int(&e, "SELECT count(*) FROM audit_log WHERE msg_id LIKE"
                                " 'LINE_IN/' || $1 || '-in-%' AND stream = 'LINE_IN'"
                                " AND stream_seq > 0 AND subject LIKE 'line.in.user.h:%'",
                            e.unique),
                     20);
    assert_int_equal(verify_chain(&e), 0);
    unlink(p.log_path);
    env_close(&e);
}

static int64_t metric(const audit_proc *p, const char *name)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/metrics", p->base_url);
    long status = 0;
    char *body = NULL;
    testkit_http("GET", url, NULL, NULL, 0, 2000, &status, &body);
    int64_t value = -1;
    if (body != NULL) {
        char needle[128];
        snprintf(needle, sizeof(needle), "\n%s ", name);
        const char *at = strstr(body, needle);
        if (at != NULL)
            value = strtoll(at + strlen(needle), NULL, 10);
    }
    free(body);
    return value;
}

ESS_TEST(duplicate_deliveries_add_no_rows)
{
    audit_env e;
    env_open(&e, true);
    int published = publish_all(&e, 0, 30, 0);
    char prefix[64];
    prefix_for(&e, "a", prefix, sizeof(prefix));
    audit_proc p;
    audit_start(&p, &e, prefix, NULL);
    assert_int_equal(wait_count(&e, MINE, e.unique, published, 60000), published);
    assert_int_equal(audit_stop(&p), 0);

    /* A second set of durables delivers every message of every stream again; a marker after
     * them in each stream tells when the second run has gone past them. */
    prefix_for(&e, "b", prefix, sizeof(prefix));
    audit_start(&p, &e, prefix, NULL);
    int markers = publish_all(&e, 1000, 1, 0);
    assert_int_equal(wait_count(&e, MINE, e.unique, published + markers, 60000),
                     published + markers);
    assert_true(metric(&p, "ess_audit_duplicates_total") >= published);
    assert_int_equal(audit_stop(&p), 0);
    assert_int_equal(db_int(&e, MINE, e.unique), published + markers);
    assert_int_equal(db_int(&e, OUT_OF_ORDER, e.unique), 0);
    assert_int_equal(verify_chain(&e), 0);
    unlink(p.log_path);
    env_close(&e);
}

typedef struct pending_probe {
    audit_proc *p;
} pending_probe;

static bool holding_messages(void *closure)
{
    pending_probe *probe = closure;
    return metric(probe->p, "ess_audit_pending") > 0;
}

ESS_TEST(sigkill_during_a_batch_loses_nothing_and_duplicates_nothing)
{
    audit_env e;
    env_open(&e, true);
    char prefix[64];
    prefix_for(&e, "k", prefix, sizeof(prefix));
    /* Batches every 2 s: between two, what arrived is held and not written. */
    const char *env[] = {"ESS_AUDIT_BATCH=5000", "ESS_AUDIT_FLUSH=2s", NULL};
    int first = publish_all(&e, 0, 250, 0);
    audit_proc p;
    audit_start(&p, &e, prefix, env);
    assert_int_equal(wait_count(&e, MINE, e.unique, first, 60000), first);
    int second = publish_all(&e, 250, 250, 0);
    pending_probe probe = {&p};
    assert_true(testkit_wait_until(holding_messages, &probe, 10000));
    audit_kill(&p);
    unlink(p.log_path);
    int64_t at_kill = db_int(&e, MINE, e.unique);

    audit_start(&p, &e, prefix, env);
    /* Held messages come back after ack_wait (30 s); the ones after them wait for them. */
    int64_t after = wait_count(&e, MINE, e.unique, first + second, 100000);
    assert_int_equal(audit_stop(&p), 0);
    fprintf(stderr, "rows of this case: %" PRId64 " at the kill, %" PRId64 " in the end\n",
            at_kill, after);
    assert_true(at_kill < first + second);
    assert_int_equal(after, first + second);
    assert_int_equal(db_int(&e, OUT_OF_ORDER, e.unique), 0);
    assert_int_equal(verify_chain(&e), 0);
    unlink(p.log_path);
    env_close(&e);
}

/* The test reporter's phone number, in every way people write it, and its bare digits. */
static const char *const phone_forms[] = {
    "0867453921",      "086-745-3921",   "086 745 3921",     "086.745.3921",
    "(086) 745-3921",  "+66867453921",   "+66 86 745 3921",  "+66-86-745-3921",
    "66867453921",     "086-7453921",    "๐๘๖๗๔๕๓๙๒๑",       "๐๘๖-๗๔๕-๓๙๒๑",
    "０８６７４５３９２１", "867453921",
};

static bool dump_contains_any(const char *path, const char *user, char *found, size_t size)
{
    for (size_t i = 0; i < sizeof(phone_forms) / sizeof(phone_forms[0]); i++)
        if (file_contains(path, phone_forms[i])) {
            snprintf(found, size, "%s", phone_forms[i]);
            return true;
        }
    if (file_contains(path, user) || file_contains(path, user + 1)) {
        snprintf(found, size, "the user id");
        return true;
    }
    return false;
}

ESS_TEST(no_phone_number_or_user_id_in_clear_in_a_database_dump_or_the_log)
{
    audit_env e;
    env_open(&e, true);
    char user[34], subject[128], id[96], payload[2048], text[512];
    user_id_for(&e, user);
    snprintf(subject, sizeof(subject), "line.in.user.%s", user);
    int published = 0;
    /* Typed texts with the phone in every format. */
    for (size_t i = 0; i < sizeof(phone_forms) / sizeof(phone_forms[0]) - 1; i++) {
        snprintf(text, sizeof(text), "เบอร์ %s ช่วยด้วย", phone_forms[i]);
        line_in_event(&e, user, (int)i, text, payload, sizeof(payload));
        snprintf(id, sizeof(id), "%s-in-%zu", e.unique, i);
        publish(&e, subject, id, payload);
        published++;
    }
    /* A location whose address has the phone, a postback carrying it. */
    snprintf(payload, sizeof(payload),
             "{\"type\":\"message\",\"webhookEventId\":\"%s-loc\",\"timestamp\":1,\"mode\":\"active\","
             "\"deliveryContext\":{\"isRedelivery\":false},\"source\":{\"type\":\"user\",\"userId\":\"%s\"},"
             "\"message\":{\"id\":\"9\",\"type\":\"location\",\"title\":\"บ้าน\",\"address\":\"99/1 โทร 086-745-3921\","
             "\"latitude\":13.75,\"longitude\":100.5}}",
             e.unique, user);
    snprintf(id, sizeof(id), "%s-loc", e.unique);
    publish(&e, subject, id, payload);
    snprintf(payload, sizeof(payload),
             "{\"type\":\"postback\",\"webhookEventId\":\"%s-pb\",\"timestamp\":2,\"mode\":\"active\","
             "\"deliveryContext\":{\"isRedelivery\":false},\"source\":{\"type\":\"group\","
             "\"groupId\":\"Caaaabbbbccccddddeeeeffff00001111\",\"userId\":\"%s\"},"
             "\"postback\":{\"data\":\"phone=+66867453921\"}}",
             e.unique, user);
    snprintf(id, sizeof(id), "%s-pb", e.unique);
    publish(&e, "line.in.group.Caaaabbbbccccddddeeeeffff00001111", id, payload);
    /* A push to the reporter, a group message with the phone for responders. */
    snprintf(payload, sizeof(payload),
             "{\"command_id\":\"%s-out\",\"to\":\"%s\",\"messages\":[{\"type\":\"text\","
             "\"text\":\"เราได้รับเรื่องแล้ว ผู้แจ้ง %s\"},{\"type\":\"flex\",\"altText\":\"โทร ๐๘๖-๗๔๕-๓๙๒๑\","
             "\"contents\":{\"type\":\"bubble\",\"body\":{\"type\":\"box\",\"contents\":[{\"type\":\"button\","
             "\"action\":{\"type\":\"uri\",\"uri\":\"tel:0867453921\"}}]}}}]}",
             e.unique, user, user);
    snprintf(id, sizeof(id), "%s-out", e.unique);
    publish(&e, "line.out.push", id, payload);
    /* An event that should never carry a phone, carrying one anyway. */
    snprintf(payload, sizeof(payload),
             "{\"incident_id\":1,\"case_number\":\"ESS-2569-000001\",\"phone\":\"0867453921\","
             "\"reporter_id\":\"%s\"}",
             user);
    snprintf(id, sizeof(id), "%s-ess", e.unique);
    publish(&e, "ess.incident.reported", id, payload);
    /* A dead letter of a LINE event, and a body that is not JSON. */
    line_in_event(&e, user, 99, "โทร 0867453921", payload, sizeof(payload));
    snprintf(id, sizeof(id), "dlq.%s.1", e.unique);
    char dlq_subject[96];
    snprintf(dlq_subject, sizeof(dlq_subject), "ess.dlq.%s", e.unique);
    publish(&e, dlq_subject, id, payload);
    snprintf(id, sizeof(id), "dlq.%s.2", e.unique);
    snprintf(payload, sizeof(payload), "not json %s 0867453921", user);
    publish(&e, dlq_subject, id, payload);
    published += 6;

    char prefix[64];
    prefix_for(&e, "p", prefix, sizeof(prefix));
    audit_proc p;
    audit_start(&p, &e, prefix, NULL);
    assert_int_equal(wait_count(&e, MINE, e.unique, published, 60000), published);
    assert_int_equal(audit_stop(&p), 0);

    /* Nothing lost: the sealed text opens with the key; the user joins by its hash. */
    vault_keys keys;
    assert_int_equal(vault_keys_from_base64(TEST_DATA_KEY, &keys, NULL), ST_OK);
    char hashed[AUDIT_USER_HASH_TEXT];
    audit_user_hash(&keys, user, hashed);
    assert_int_equal(db_int(&e, "SELECT count(*) FROM audit_log WHERE payload -> 'source' ->> 'userId' = $1",
                            hashed),
                     published - 3 /* all but the push, the reported event, the non-JSON body */);

    char dump[128];
    snprintf(dump, sizeof(dump), "/tmp/ess-audit-dump-%s.sql", e.unique);
    char pg_dump[256];
    snprintf(pg_dump, sizeof(pg_dump), "%s", "/usr/lib/postgresql/15/bin/pg_dump");
    if (access(pg_dump, X_OK) != 0)
        snprintf(pg_dump, sizeof(pg_dump), "pg_dump");
    const char *argv[] = {pg_dump, "--dbname", e.dsn, "--file", dump, NULL};
    char *output = NULL;
    int code = testkit_run(argv, NULL, 60000, &output);
    if (code != 0)
        fail_msg("pg_dump exited %d: %s", code, output);
    free(output);
    /* The dump holds the rows (a search that finds nothing must have had something to search). */
    assert_true(file_contains(dump, e.unique));
    assert_true(file_contains(dump, hashed));
    char found[64];
    if (dump_contains_any(dump, user, found, sizeof(found)))
        fail_msg("the database dump holds %s in clear", found);
    if (dump_contains_any(p.log_path, user, found, sizeof(found)))
        fail_msg("the ess-audit log holds %s in clear", found);
    assert_true(file_contains(p.log_path, "audit.bound"));
    unlink(dump);
    unlink(p.log_path);
    env_close(&e);
}

typedef struct head_probe {
    const char *path;
    int64_t seq;
} head_probe;

static bool head_recorded(void *closure)
{
    head_probe *probe = closure;
    char needle[64];
    snprintf(needle, sizeof(needle), "\"seq\":%" PRId64 ",", probe->seq);
    return file_contains(probe->path, needle);
}

ESS_TEST(chain_head_is_logged_and_recorded_in_the_head_file)
{
    audit_env e;
    env_open(&e, true);
    char head_file[128], head_env[160], prefix[64];
    snprintf(head_file, sizeof(head_file), "/tmp/ess-audit-head-%s.jsonl", e.unique);
    snprintf(head_env, sizeof(head_env), "ESS_AUDIT_HEAD_FILE=%s", head_file);
    const char *env[] = {head_env, "ESS_AUDIT_HEAD_INTERVAL=200ms", NULL};
    int published = publish_all(&e, 0, 2, 0);
    prefix_for(&e, "h", prefix, sizeof(prefix));
    audit_proc p;
    audit_start(&p, &e, prefix, env);
    assert_int_equal(wait_count(&e, MINE, e.unique, published, 60000), published);
    head_probe probe = {head_file, db_int(&e, "SELECT max(seq) FROM audit_log", NULL)};
    assert_true(testkit_wait_until(head_recorded, &probe, 10000));
    assert_int_equal(audit_stop(&p), 0);
    assert_true(file_contains(p.log_path, "\"code\":\"audit.head\""));
    const char *args[] = {"audit", "verify", "--head-file", head_file, NULL};
    assert_int_equal(run_essctl(&e, NULL, args, NULL, NULL), 0);
    unlink(head_file);
    unlink(p.log_path);
    env_close(&e);
}

ESS_TEST_MAIN(NULL, NULL)
