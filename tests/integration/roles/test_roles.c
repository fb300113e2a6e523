/* The services' database role in a real PostgreSQL (a fresh migrated database per case):
 *
 * - `essctl db login-role` makes a login that is a member of exactly one group, with the
 *   SCRAM-SHA-256 verifier libpq itself would compute, converges when run again, and refuses
 *   roles that would give the services more than their group;
 * - a login member of ess_service (what deploy/local/ess and docker-compose give the
 *   services) can do what each service does: the georouter's reads and routing, the
 *   conversation's dialogue, incidents, timeline, teams and escalation, the notifier's card,
 *   the outbox and its relay (libs/outbox), the audit log's append (services/audit);
 * - it cannot rewrite or cut the audit log, erase or change an incident's personal fields,
 *   delete history, write reference data, migrations or schema;
 * - the grants are exactly migration 0007's table, for every table in the schema. */
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "audit_store.h"
#include "db.h"
#include "essctl_roles.h"
#include "outbox.h"
#include "vault.h"

#define DSN_MAX 640
#define PASSWORD_VAR "ROLES_TEST_PASSWORD"

static const char test_password[] = "roles-Test-password-0123456789";
static const char other_password[] = "roles-Other-password-9876543210";

typedef struct roles_env {
    char dsn[DSN_MAX];       /* the fresh database, as the tests' superuser */
    char login[64];          /* app_<unique>: the services' login */
    char login_dsn[DSN_MAX]; /* the same database as that login */
    db *admin;
    db *app;
} roles_env;

/* ------------------------------------------------------------------------------------- */
/* Helpers */

static db *connect_as(const char *dsn)
{
    db_options options = {.dsn = dsn, .application_name = "ess-roles-test"};
    db *d = NULL;
    st_error err = {0};
    if (db_connect(&options, &d, &err) != ST_OK)
        fail_msg("connect: %s (%s)", err.message, err.cause);
    return d;
}

/* postgresql://user@host:port/db -> postgresql://<login>:<password>@host:port/db */
static void dsn_as(const char *dsn, const char *login, const char *password, char *out,
                   size_t out_size)
{
    const char *at = strchr(dsn + strlen("postgresql://"), '@');
    assert_non_null(at);
    int n = snprintf(out, out_size, "postgresql://%s:%s%s", login, password, at);
    assert_true(n > 0 && (size_t)n < out_size);
}

static void sql_ok_params(db *d, const char *sql, int n, const char *const *params)
{
    st_error err = {0};
    if (db_exec(d, sql, n, params, NULL, &err) != ST_OK)
        fail_msg("%s: %s (%s)", sql, err.message, err.cause);
}

static void sql_ok(db *d, const char *sql)
{
    sql_ok_params(d, sql, 0, NULL);
}

/* The first column of the first row as an integer (the statement must return one). */
static long long sql_int(db *d, const char *sql)
{
    db_result *r = NULL;
    st_error err = {0};
    if (db_exec(d, sql, 0, NULL, &r, &err) != ST_OK)
        fail_msg("%s: %s (%s)", sql, err.message, err.cause);
    if (db_result_rows(r) < 1 || db_result_is_null(r, 0, 0))
        fail_msg("%s returned no value", sql);
    long long value = strtoll(db_result_value(r, 0, 0), NULL, 10);
    db_result_destroy(r);
    return value;
}

/* Like sql_int for a text value; *ret_text heap (caller frees). */
static char *sql_text(db *d, const char *sql, int n, const char *const *params)
{
    db_result *r = NULL;
    st_error err = {0};
    if (db_exec(d, sql, n, params, &r, &err) != ST_OK)
        fail_msg("%s: %s (%s)", sql, err.message, err.cause);
    if (db_result_rows(r) < 1 || db_result_is_null(r, 0, 0))
        fail_msg("%s returned no value", sql);
    char *text = strdup(db_result_value(r, 0, 0));
    assert_non_null(text);
    db_result_destroy(r);
    return text;
}

/* Rows a statement returned or touched. */
static long long sql_count(db *d, const char *sql)
{
    db_result *r = NULL;
    st_error err = {0};
    if (db_exec(d, sql, 0, NULL, &r, &err) != ST_OK)
        fail_msg("%s: %s (%s)", sql, err.message, err.cause);
    long long n = db_result_rows(r) > 0 ? db_result_rows(r) : db_result_affected(r);
    db_result_destroy(r);
    return n;
}

/* sql must be refused for lack of privilege (SQLSTATE 42501) — not for any other reason. */
static void expect_denied(db *d, const char *sql)
{
    st_error err = {0};
    st_code code = db_exec(d, sql, 0, NULL, NULL, &err);
    if (code == ST_OK)
        fail_msg("the services' login could run: %s", sql);
    if (strcmp(err.cause, "sqlstate 42501") != 0)
        fail_msg("%s failed for another reason than privilege: %s (%s)", sql, err.message,
                 err.cause);
}

/* essctl db login-role LOGIN --member-of GROUP --password-env ROLES_TEST_PASSWORD, with
 * ESS_PG_DSN = dsn and the password in the environment; returns the exit code. */
static int login_role(const char *dsn, const char *login, const char *group, const char *password,
                      char **ret_output)
{
    char essctl[512], env_dsn[DSN_MAX + 16], env_password[128];
    snprintf(essctl, sizeof(essctl), "%s/essctl", testkit_bin_dir());
    snprintf(env_dsn, sizeof(env_dsn), "ESS_PG_DSN=%s", dsn);
    snprintf(env_password, sizeof(env_password), "%s=%s", PASSWORD_VAR, password);
    const char *argv[] = {essctl,           "db",         "login-role", login, "--member-of", group,
                          "--password-env", PASSWORD_VAR, NULL};
    const char *env[] = {env_dsn, env_password, NULL};
    char *output = NULL;
    int code = testkit_run(argv, env, 60000, &output);
    if (ret_output != NULL)
        *ret_output = output;
    else
        free(output);
    return code;
}

static void drop_role(const char *login)
{
    db *d = connect_as(testkit_env("ESS_TEST_PG_DSN"));
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP ROLE IF EXISTS %s", login);
    sql_ok(d, sql);
    db_destroy(d);
}

static void env_open(roles_env *e)
{
    memset(e, 0, sizeof(*e));
    testkit_fresh_database(true, e->dsn, sizeof(e->dsn));
    char unique[32];
    testkit_unique(unique, sizeof(unique));
    snprintf(e->login, sizeof(e->login), "app_%s", unique);
    char *output = NULL;
    int code = login_role(e->dsn, e->login, "ess_service", test_password, &output);
    if (code != 0)
        fail_msg("essctl db login-role exited %d: %s", code, output);
    free(output);
    dsn_as(e->dsn, e->login, test_password, e->login_dsn, sizeof(e->login_dsn));
    e->admin = connect_as(e->dsn);
    e->app = connect_as(e->login_dsn);
}

static void env_close(roles_env *e)
{
    db_destroy(e->app);
    db_destroy(e->admin);
    testkit_drop_database(e->dsn);
    drop_role(e->login);
}

/* ------------------------------------------------------------------------------------- */
/* SCRAM verifiers */

/* Splits "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>": the iteration count and
 * the decoded salt. */
static void parse_verifier(const char *verifier, int *ret_iterations, unsigned char *ret_salt,
                           size_t *ret_salt_len)
{
    const char prefix[] = "SCRAM-SHA-256$";
    if (strncmp(verifier, prefix, sizeof(prefix) - 1) != 0)
        fail_msg("not a SCRAM-SHA-256 verifier: %.20s", verifier);
    const char *iterations = verifier + sizeof(prefix) - 1;
    char *end = NULL;
    long value = strtol(iterations, &end, 10);
    assert_true(end != iterations && *end == ':' && value > 0 && value <= 1000000);
    const char *salt = end + 1;
    const char *dollar = strchr(salt, '$');
    assert_non_null(dollar);
    size_t salt_text_len = (size_t)(dollar - salt);
    assert_true(salt_text_len % 4 == 0 && salt_text_len / 4 * 3 <= ESSCTL_SCRAM_SALT_MAX + 2);
    unsigned char decoded[ESSCTL_SCRAM_SALT_MAX + 3];
    int n = EVP_DecodeBlock(decoded, (const unsigned char *)salt, (int)salt_text_len);
    assert_true(n > 0);
    /* EVP_DecodeBlock counts the padding as bytes. */
    if (salt_text_len >= 1 && salt[salt_text_len - 1] == '=')
        n--;
    if (salt_text_len >= 2 && salt[salt_text_len - 2] == '=')
        n--;
    assert_true(n >= 1 && n <= ESSCTL_SCRAM_SALT_MAX);
    memcpy(ret_salt, decoded, (size_t)n);
    *ret_salt_len = (size_t)n;
    *ret_iterations = (int)value;
}

/* Our verifier for password, with the salt and iteration count of reference. */
static void recompute(const char *reference, const char *password, char *out, size_t out_size)
{
    int iterations = 0;
    unsigned char salt[ESSCTL_SCRAM_SALT_MAX];
    size_t salt_len = 0;
    parse_verifier(reference, &iterations, salt, &salt_len);
    st_error err = {0};
    if (essctl_scram_verifier(password, salt, salt_len, iterations, out, out_size, &err) != ST_OK)
        fail_msg("essctl_scram_verifier: %s", err.message);
}

static char *stored_verifier(db *admin, const char *login)
{
    const char *params[] = {login};
    return sql_text(admin, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", 1, params);
}

static long long memberships(db *admin, const char *login)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
             "WHERE r.rolname = '%s'",
             login);
    return sql_int(admin, sql);
}

ESS_TEST(login_role_gets_the_verifier_libpq_computes)
{
    roles_env e;
    env_open(&e);
    /* What libpq (PQencryptPasswordConn, psql's \password) makes of the same password: with
     * its salt, ours must be byte for byte the same. */
    PGconn *conn = PQconnectdb(e.dsn);
    assert_int_equal(PQstatus(conn), CONNECTION_OK);
    char *by_libpq = PQencryptPasswordConn(conn, test_password, e.login, "scram-sha-256");
    assert_non_null(by_libpq);
    char ours[ESSCTL_SCRAM_VERIFIER_MAX];
    recompute(by_libpq, test_password, ours, sizeof(ours));
    assert_string_equal(ours, by_libpq);
    PQfreemem(by_libpq);
    PQfinish(conn);

    /* What the server stored is that verifier (random salt of its own) for this password. */
    char *stored = stored_verifier(e.admin, e.login);
    recompute(stored, test_password, ours, sizeof(ours));
    assert_string_equal(ours, stored);
    char wrong[ESSCTL_SCRAM_VERIFIER_MAX];
    recompute(stored, other_password, wrong, sizeof(wrong));
    assert_string_not_equal(wrong, stored);

    /* A login with no other power, in exactly one group, that the services can use. */
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_roles WHERE rolname = '%s' AND rolcanlogin AND rolinherit "
             "AND NOT (rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR "
             "rolbypassrls) AND pg_has_role(rolname, 'ess_service', 'USAGE') AND NOT "
             "pg_has_role(rolname, 'ess_retention', 'MEMBER')",
             e.login);
    assert_int_equal(sql_int(e.admin, sql), 1);
    assert_int_equal(memberships(e.admin, e.login), 1);
    assert_int_equal(sql_int(e.app, "SELECT count(*) FROM geo_meta"), 1);

    /* Again, with another password: the same role, the new password, one membership. */
    char *output = NULL;
    assert_int_equal(login_role(e.dsn, e.login, "ess_service", other_password, &output), 0);
    assert_non_null(strstr(output, "logs in as a member of ess_service"));
    free(output);
    char *rotated = stored_verifier(e.admin, e.login);
    assert_string_not_equal(rotated, stored);
    recompute(rotated, other_password, ours, sizeof(ours));
    assert_string_equal(ours, rotated);
    assert_int_equal(memberships(e.admin, e.login), 1);
    free(rotated);
    free(stored);
    env_close(&e);
}

ESS_TEST(login_role_refuses_what_would_give_more_than_the_group)
{
    roles_env e;
    env_open(&e);
    char *output = NULL;
    /* The same login in the other group: one login per group. */
    assert_int_equal(login_role(e.dsn, e.login, "ess_retention", test_password, &output), 1);
    assert_non_null(strstr(output, "also a member of ess_service"));
    free(output);
    assert_int_equal(memberships(e.admin, e.login), 1);
    /* The superuser the tests connect as (administrative attributes). */
    const char *user_start = e.dsn + strlen("postgresql://");
    char admin_user[64];
    snprintf(admin_user, sizeof(admin_user), "%.*s", (int)strcspn(user_start, ":@"), user_start);
    char *before = sql_text(e.admin,
                            "SELECT coalesce(rolpassword, '') FROM pg_authid WHERE "
                            "rolname = current_user",
                            0, NULL);
    assert_int_equal(login_role(e.dsn, admin_user, "ess_service", test_password, &output), 1);
    assert_non_null(strstr(output, "administrative attributes"));
    free(output);
    char *after = sql_text(e.admin,
                           "SELECT coalesce(rolpassword, '') FROM pg_authid WHERE "
                           "rolname = current_user",
                           0, NULL);
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* Usage problems: a group role as the login, another group, a short password. */
    assert_int_equal(login_role(e.dsn, "ess_service", "ess_service", test_password, NULL), 2);
    assert_int_equal(login_role(e.dsn, e.login, "ess", test_password, NULL), 2);
    assert_int_equal(login_role(e.dsn, e.login, "ess_service", "short", &output), 2);
    assert_null(strstr(output, "short")); /* the value is never echoed */
    free(output);
    /* Run by the services' own login: it may not create or change roles. */
    char unique[32], other[64];
    testkit_unique(unique, sizeof(unique));
    snprintf(other, sizeof(other), "app_%s", unique);
    assert_int_equal(login_role(e.login_dsn, other, "ess_service", test_password, &output), 1);
    assert_non_null(strstr(output, "needs CREATEROLE"));
    free(output);
    env_close(&e);
}

/* ------------------------------------------------------------------------------------- */
/* What the services do */

#define REPORTER_KEY "decode(repeat('11', 32), 'hex')"

static void load_reference_data(db *admin)
{
    /* What `essctl geo import` and `essctl team add` / `team invite` write, as the owner. */
    sql_ok(admin, "INSERT INTO provinces (code, name_th, name_en) VALUES ('TH10', 'กรุงเทพมหานคร', "
                  "'Bangkok')");
    sql_ok(admin, "INSERT INTO districts (code, province_code, name_th, name_en) "
                  "VALUES ('TH1001', 'TH10', 'พระนคร', 'Phra Nakhon')");
    sql_ok(admin, "INSERT INTO tambons (code, district_code, province_code, name_th, name_en, "
                  "boundary) VALUES ('TH100101', 'TH1001', 'TH10', 'พระบรมมหาราชวัง', 'Phra "
                  "Borom Maha Ratchawang', '{\"type\": \"Polygon\", \"coordinates\": []}')");
    sql_ok(admin, "INSERT INTO stations (id, name_th, lat, lon, district_code, province_code, "
                  "synthetic) VALUES ('S1', 'สน.ชนะสงคราม', 13.76, 100.49, 'TH1001', 'TH10', "
                  "true)");
    sql_ok(admin, "INSERT INTO station_tambons (tambon_code, station_id) VALUES ('TH100101', "
                  "'S1')");
    sql_ok(admin, "INSERT INTO teams (name, province_code, station_id) VALUES ('Bangkok team', "
                  "'TH10', 'S1')");
    sql_ok(admin, "INSERT INTO team_invites (code_hash, team_id, expires_at) "
                  "VALUES (decode(repeat('ab', 32), 'hex'), 1, now() + interval '1 day')");
}

static void begin(db *d)
{
    st_error err = {0};
    if (db_begin(d, &err) != ST_OK)
        fail_msg("begin: %s", err.message);
}

static void commit(db *d)
{
    st_error err = {0};
    if (db_commit(d, &err) != ST_OK)
        fail_msg("commit: %s (%s)", err.message, err.cause);
}

static void add_event(db *d, const char *subject, const char *msg_id)
{
    const char payload[] = "{\"incident_id\": 1}";
    bool added = false;
    st_error err = {0};
    if (outbox_add(d, subject, msg_id, payload, strlen(payload), &added, &err) != ST_OK)
        fail_msg("outbox_add: %s (%s)", err.message, err.cause);
    assert_true(added);
}

static void mark_processed(db *d, const char *consumer, const char *event_id, bool first)
{
    bool was_first = !first;
    st_error err = {0};
    if (outbox_mark_processed(d, consumer, event_id, &was_first, &err) != ST_OK)
        fail_msg("outbox_mark_processed: %s (%s)", err.message, err.cause);
    assert_int_equal(was_first, first);
}

/* ess-georouter: its reference data in memory, then a teams look-up. */
static void georouter_loads(db *app)
{
    assert_int_equal(sql_int(app, "SELECT version FROM geo_meta"), 0);
    begin(app);
    sql_ok(app, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    assert_int_equal(sql_count(app, "SELECT code, name_th, name_en FROM provinces"), 1);
    assert_int_equal(sql_count(app, "SELECT code, name_th, name_en FROM districts"), 1);
    assert_int_equal(sql_count(app, "SELECT code, name_th, name_en, boundary::text FROM tambons"),
                     1);
    assert_int_equal(sql_count(app, "SELECT id, name_th, coalesce(name_en, ''), "
                                    "coalesce(phone, ''), lat, lon, coalesce(district_code, '') "
                                    "FROM stations"),
                     1);
    assert_int_equal(sql_count(app, "SELECT tambon_code, station_id FROM station_tambons"), 1);
    commit(app);
}

/* ess-conversation: a LINE group joins, is bound with an invite code, shows activity. */
static void conversation_binds_a_group(db *app)
{
    sql_ok(app, "INSERT INTO team_groups (group_id) VALUES ('Croles') "
                "ON CONFLICT (group_id) DO NOTHING");
    begin(app);
    assert_int_equal(sql_count(app, "SELECT coalesce(g.team_id::text, ''), coalesce(t.name, '') "
                                    "FROM team_groups g LEFT JOIN teams t ON t.id = g.team_id "
                                    "WHERE g.group_id = 'Croles' FOR UPDATE OF g"),
                     1);
    assert_int_equal(sql_count(app, "SELECT i.id, i.team_id, t.name FROM team_invites i "
                                    "JOIN teams t ON t.id = i.team_id "
                                    "WHERE i.code_hash = decode(repeat('ab', 32), 'hex') "
                                    "AND i.used_at IS NULL AND i.expires_at > now() AND t.active "
                                    "FOR UPDATE OF i"),
                     1);
    sql_ok(app, "UPDATE team_invites SET used_at = now(), used_by_group = 'Croles' WHERE id = 1");
    sql_ok(app, "UPDATE team_groups SET team_id = 1, bound_at = now(), active = true, "
                "left_at = NULL, updated_at = now() WHERE group_id = 'Croles'");
    sql_ok(app, "UPDATE team_groups SET member_count = member_count + 3, last_activity = now() "
                "WHERE group_id = 'Croles'");
    mark_processed(app, "conversation", "join-event-1", true);
    commit(app);
    /* The georouter's routing look-up now finds the group. */
    assert_int_equal(sql_count(app, "SELECT t.id, t.name, t.kind, t.province_code, t.station_id, "
                                    "g.group_id FROM teams t JOIN team_groups g "
                                    "ON g.team_id = t.id AND g.active WHERE t.active AND "
                                    "(t.kind = 'national_centre' OR t.province_code = 'TH10') "
                                    "ORDER BY t.id, g.group_id"),
                     1);
}

/* ess-conversation: a citizen's draft becomes incident 1 with its personal fields. */
static void conversation_records_a_report(db *app, const vault_keys *keys)
{
    begin(app);
    mark_processed(app, "conversation", "webhook-event-1", true);
    sql_ok(app, "INSERT INTO conversations (user_key, state) VALUES (" REPORTER_KEY ", 'idle') "
                "ON CONFLICT (user_key) DO NOTHING");
    assert_int_equal(sql_count(app, "SELECT c.state, c.slots::text, c.language, i.status "
                                    "FROM conversations c LEFT JOIN incidents i "
                                    "ON i.id = c.incident_id WHERE c.user_key = " REPORTER_KEY
                                    " FOR UPDATE OF c"),
                     1);
    sql_ok(app, "UPDATE conversations SET state = 'draft', slots = '{\"category\": \"threat\"}', "
                "language = 'th', language_source = 'user', last_event_ts = 1, "
                "user_id_encrypted = COALESCE('\\x0506'::bytea, user_id_encrypted), "
                "expires_at = now() + interval '30 minutes', updated_at = now() "
                "WHERE user_key = " REPORTER_KEY);
    assert_int_equal(
        sql_int(app, "SELECT count(*) FROM incidents WHERE reporter_key_hash = " REPORTER_KEY
                     " AND reported_at > now() - interval '1 hour'"),
        0);
    assert_int_equal(
        sql_int(app,
                "WITH counter AS ("
                "  INSERT INTO case_counters (be_year, last_number) "
                "  VALUES (extract(year FROM now() AT TIME ZONE 'Asia/Bangkok')::int + 543, 1) "
                "  ON CONFLICT (be_year) DO UPDATE SET last_number = case_counters.last_number + 1 "
                "  RETURNING be_year, last_number) "
                "INSERT INTO incidents (case_number, category, lat, lon, location_title, "
                "  location_address, phone_encrypted, reporter_key_hash, reporter_id_encrypted, "
                "  language) "
                "SELECT 'ESS-' || be_year || '-' || lpad(last_number::text, 6, '0'), 'threat', "
                "  13.75, 100.49, 'home', 'Bangkok', '\\x0102'::bytea, " REPORTER_KEY
                ", '\\x0304'::bytea, 'th' FROM counter RETURNING id"),
        1);
    sql_ok(app, "UPDATE conversations SET state = 'submitted', slots = '{}'::jsonb, "
                "incident_id = 1, expires_at = NULL, updated_at = now() "
                "WHERE user_key = " REPORTER_KEY);
    assert_int_equal(sql_count(app, "INSERT INTO incident_events (incident_id, event_key, kind, "
                                    "actor_type, detail) VALUES (1, 'reported/1', 'reported', "
                                    "'reporter', '{}') ON CONFLICT (incident_id, event_key) "
                                    "DO NOTHING RETURNING id"),
                     1);
    add_event(app, "ess.incident.reported", "reported.1");
    const char reply[] = "{\"to\": \"U0123456789abcdef0123456789abcdef\"}";
    bool added = false;
    st_error err = {0};
    if (outbox_add_sealed(app, keys, "line.out.push", "push.1", reply, strlen(reply), &added,
                          &err) != ST_OK)
        fail_msg("outbox_add_sealed: %s (%s)", err.message, err.cause);
    assert_true(added);
    commit(app);
    /* A redelivery of the same webhook event is recognised. */
    begin(app);
    mark_processed(app, "conversation", "webhook-event-1", false);
    commit(app);
}

/* ess-georouter: routes incident 1. */
static void georouter_routes(db *app)
{
    begin(app);
    mark_processed(app, "georouter", "reported.1", true);
    assert_int_equal(sql_count(app, "SELECT status, to_char(coalesce(routed_at, now()) AT TIME "
                                    "ZONE 'UTC', 'YYYY-MM-DD') FROM incidents WHERE id = 1 "
                                    "FOR UPDATE"),
                     1);
    sql_ok(app, "UPDATE incidents SET tambon_code = 'TH100101', district_code = 'TH1001', "
                "province_code = 'TH10', station_id = 'S1', station_distance_m = 120, "
                "status = CASE WHEN status = 'new' THEN 'routed' ELSE status END, "
                "routed_at = coalesce(routed_at, now()), updated_at = now() WHERE id = 1");
    sql_ok(app, "INSERT INTO incident_events (incident_id, event_key, kind, actor_type, actor, "
                "detail) VALUES (1, 'routed/1', 'routed', 'system', 'georouter', '{}'::jsonb) "
                "ON CONFLICT (incident_id, event_key) DO NOTHING");
    add_event(app, "ess.incident.routed", "routed.1");
    commit(app);
}

/* ess-conversation: targets, escalation, a responder takes the case, closes it. */
static void conversation_follows_the_case(db *app)
{
    begin(app);
    mark_processed(app, "conversation-routed", "routed.1", true);
    sql_ok(app, "INSERT INTO incident_targets (incident_id, group_id, team_id, level) "
                "VALUES (1, 'Croles', 1, 0) ON CONFLICT (incident_id, group_id) DO NOTHING");
    sql_ok(app, "UPDATE incidents SET targets_recorded_at = now(), escalation_level = 0, "
                "ack_deadline = now() - interval '1 second', updated_at = now() WHERE id = 1");
    commit(app);
    begin(app);
    assert_int_equal(sql_count(app, "SELECT id, case_number, escalation_level, escalation_step "
                                    "FROM incidents WHERE ack_deadline <= now() AND status IN "
                                    "('new', 'routed') ORDER BY ack_deadline LIMIT 1 "
                                    "FOR UPDATE SKIP LOCKED"),
                     1);
    assert_int_equal(sql_count(app, "SELECT min(t.level) FROM incident_targets t JOIN "
                                    "team_groups g ON g.group_id = t.group_id AND g.active "
                                    "WHERE t.incident_id = 1"),
                     1);
    sql_ok(app, "UPDATE incidents SET escalation_level = 1, escalation_step = 1, "
                "reminders_at_level = 1, ack_deadline = now() + interval '5 minutes', "
                "updated_at = now() WHERE id = 1");
    commit(app);
    begin(app);
    assert_int_equal(sql_count(app, "SELECT i.status, i.case_number, "
                                    "coalesce(i.acknowledged_group_id, '') FROM incidents i "
                                    "WHERE i.id = 1 FOR UPDATE OF i"),
                     1);
    sql_ok(app, "UPDATE incidents SET status = 'acknowledged', acknowledged_at = now(), "
                "acknowledged_by = 'a member of the group', acknowledged_group_id = 'Croles', "
                "ack_deadline = NULL, updated_at = now() WHERE id = 1");
    sql_ok(app, "INSERT INTO incident_events (incident_id, event_key, kind, actor_type, actor, "
                "group_id) VALUES (1, 'take/1', 'acknowledged', 'responder', "
                "'a member of the group', 'Croles')");
    sql_ok(app, "UPDATE incident_events SET actor = 'Somchai', detail = detail || "
                "'{\"actor_from\": \"line_profile\"}'::jsonb WHERE incident_id = 1 AND "
                "event_key = 'take/1' AND actor_type = 'responder'");
    sql_ok(app, "UPDATE incidents SET acknowledged_by = 'Somchai', updated_at = now() "
                "WHERE id = 1 AND acknowledged_group_id = 'Croles'");
    commit(app);
    sql_ok(app, "UPDATE incidents SET status = 'on_scene', on_scene_at = now(), "
                "updated_at = now() WHERE id = 1");
    sql_ok(app, "UPDATE incidents SET status = 'closed', closed_at = now(), outcome = 'helped', "
                "updated_at = now() WHERE id = 1");
    sql_ok(app, "UPDATE conversations c SET state = 'idle', slots = '{}'::jsonb, "
                "incident_id = NULL, expires_at = NULL, updated_at = now() FROM incidents i "
                "WHERE i.id = 1 AND c.user_key = i.reporter_key_hash AND c.state = 'submitted' "
                "AND c.incident_id = i.id");
    /* Drafts that expired: the sweep. */
    assert_int_equal(sql_count(app, "SELECT c.state FROM conversations c WHERE c.state = "
                                    "'draft' AND c.expires_at <= now() ORDER BY c.expires_at "
                                    "LIMIT 10 FOR UPDATE SKIP LOCKED"),
                     0);
}

/* ess-notifier: the responder card, with the sealed phone number and the place's names. */
static void notifier_reads_the_card(db *app)
{
    char *card = sql_text(app,
                          "SELECT i.case_number || ' ' || encode(i.phone_encrypted, 'hex') || "
                          "' ' || t.name_th || ' ' || d.name_th || ' ' || p.name_th || ' ' || "
                          "s.name_th FROM incidents i "
                          "LEFT JOIN tambons t ON t.code = i.tambon_code "
                          "LEFT JOIN districts d ON d.code = i.district_code "
                          "LEFT JOIN provinces p ON p.code = i.province_code "
                          "LEFT JOIN stations s ON s.id = i.station_id WHERE i.id = 1",
                          0, NULL);
    assert_non_null(strstr(card, " 0102 พระบรมมหาราชวัง พระนคร กรุงเทพมหานคร สน.ชนะสงคราม"));
    free(card);
}

/* libs/outbox's relay: the statements of outbox.c's relay_round and prune, in their order
 * (its advisory lock key aside: this test must not stall a relay of another test). */
static void relay_publishes_and_prunes(db *app)
{
    begin(app);
    assert_int_equal(sql_count(app, "SELECT pg_try_advisory_xact_lock(7310313258898252850)"), 1);
    assert_int_equal(sql_count(app, "SELECT id, subject, msg_id, "
                                    "CASE WHEN sealed THEN NULL ELSE convert_from(payload, "
                                    "'UTF8') END, CASE WHEN sealed THEN payload END "
                                    "FROM outbox WHERE published_at IS NULL ORDER BY id "
                                    "LIMIT 256"),
                     3);
    sql_ok(app, "UPDATE outbox SET published_at = now() WHERE id = ANY('{1,2,3}'::bigint[])");
    commit(app);
    assert_int_equal(sql_count(app, "DELETE FROM outbox WHERE published_at IS NOT NULL "
                                    "AND published_at < now() - '0 milliseconds'::interval"),
                     3);
}

/* ess-audit: appends to the chain (the same code as essctl and the retention job). */
static void audit_appends(db *app)
{
    audit_entry entries[2] = {
        {.stream = "ESS",
         .stream_seq = 1,
         .subject = "ess.incident.reported",
         .msg_id = "ESS/reported.1",
         .payload = "{}",
         .payload_len = 2},
        {.stream = "ESS",
         .stream_seq = 2,
         .subject = "ess.incident.routed",
         .msg_id = "ESS/routed.1",
         .payload = "{}",
         .payload_len = 2},
    };
    size_t appended = 0;
    audit_head head = {0};
    st_error err = {0};
    if (audit_store_append_tx(app, entries, 2, &appended, &head, &err) != ST_OK)
        fail_msg("audit_store_append_tx: %s (%s)", err.message, err.cause);
    assert_int_equal(appended, 2);
    assert_int_equal(head.seq, 2);
    uint64_t position = 0;
    if (audit_store_stream_position(app, "ESS", &position, &err) != ST_OK)
        fail_msg("audit_store_stream_position: %s (%s)", err.message, err.cause);
    assert_int_equal(position, 2);
}

ESS_TEST(service_login_runs_what_the_services_run)
{
    roles_env e;
    env_open(&e);
    load_reference_data(e.admin);
    vault_keys keys;
    st_error err = {0};
    assert_int_equal(
        vault_keys_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", &keys, &err), ST_OK);
    georouter_loads(e.app);
    conversation_binds_a_group(e.app);
    conversation_records_a_report(e.app, &keys);
    georouter_routes(e.app);
    conversation_follows_the_case(e.app);
    notifier_reads_the_card(e.app);
    relay_publishes_and_prunes(e.app);
    audit_appends(e.app);
    /* All of it landed, as the owner sees it. */
    assert_int_equal(sql_int(e.admin, "SELECT count(*) FROM incidents WHERE status = 'closed' "
                                      "AND station_id = 'S1' AND escalation_step = 1 AND "
                                      "phone_encrypted = '\\x0102'::bytea"),
                     1);
    assert_int_equal(sql_int(e.admin, "SELECT count(*) FROM incident_events"), 3);
    assert_int_equal(sql_int(e.admin, "SELECT count(*) FROM processed_events"), 4);
    assert_int_equal(sql_int(e.admin, "SELECT count(*) FROM audit_log"), 2);
    assert_int_equal(sql_int(e.admin, "SELECT count(*) FROM team_groups WHERE team_id = 1"), 1);
    vault_keys_wipe(&keys);
    env_close(&e);
}

ESS_TEST(service_login_cannot_rewrite_history_nor_erase_personal_data)
{
    roles_env e;
    env_open(&e);
    load_reference_data(e.admin);
    sql_ok(e.admin, "INSERT INTO incidents (case_number, category, phone_encrypted, "
                    "reporter_key_hash, reporter_id_encrypted) VALUES ('ESS-2569-000001', "
                    "'threat', '\\x01'::bytea, " REPORTER_KEY ", '\\x02'::bytea)");
    sql_ok(e.app, "INSERT INTO audit_log (seq, subject, msg_id, digest, payload, prev_hash, hash) "
                  "VALUES (1, 's', 'm', decode(repeat('00', 32), 'hex'), '{}', "
                  "decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'))");
    static const char *const denied[] = {
        /* the audit log is append-only */
        "UPDATE audit_log SET subject = 'x' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 1",
        "TRUNCATE audit_log",
        /* personal fields: written once by the report, erased by ess_retention only */
        "UPDATE incidents SET phone_encrypted = NULL WHERE id = 1",
        "UPDATE incidents SET reporter_id_encrypted = NULL WHERE id = 1",
        "UPDATE incidents SET reporter_key_hash = NULL WHERE id = 1",
        "UPDATE incidents SET pii_erased_at = now() WHERE id = 1",
        /* a case's identity */
        "UPDATE incidents SET case_number = 'ESS-2569-999999' WHERE id = 1",
        "UPDATE incidents SET reported_at = now() WHERE id = 1",
        /* history is not deleted */
        "DELETE FROM incidents",
        "DELETE FROM incident_events",
        "DELETE FROM incident_targets",
        "DELETE FROM conversations",
        "DELETE FROM processed_events",
        "DELETE FROM case_counters",
        "DELETE FROM team_groups",
        "TRUNCATE outbox",
        "TRUNCATE processed_events",
        /* reference data, teams and invites are the operator's (essctl) */
        "INSERT INTO provinces (code, name_th, name_en) VALUES ('TH11', 'x', 'x')",
        "UPDATE tambons SET name_en = 'x'",
        "DELETE FROM stations",
        "DELETE FROM station_tambons",
        "UPDATE geo_meta SET version = version + 1",
        "INSERT INTO teams (name, province_code) VALUES ('x', 'TH10')",
        "UPDATE teams SET active = false",
        "INSERT INTO team_invites (code_hash, team_id, expires_at) VALUES ('\\x00', 1, now())",
        "DELETE FROM team_invites",
        /* migrations and schema */
        "INSERT INTO schema_migrations (version, name, checksum) VALUES ('9999', 'x', 'x')",
        "DELETE FROM schema_migrations",
        "CREATE TABLE public.roles_intruder (id int)",
        "SELECT setval('outbox_id_seq', 1)",
    };
    for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
        expect_denied(e.app, denied[i]);
    /* Nothing changed. */
    assert_int_equal(sql_int(e.admin, "SELECT count(*) FROM incidents WHERE phone_encrypted IS "
                                      "NOT NULL AND reporter_key_hash IS NOT NULL AND "
                                      "pii_erased_at IS NULL"),
                     1);
    assert_int_equal(sql_int(e.admin, "SELECT count(*) FROM audit_log WHERE subject = 's'"), 1);
    env_close(&e);
}

/* ------------------------------------------------------------------------------------- */
/* The grants, exactly */

typedef struct table_grant {
    const char *table;
    const char *privileges; /* what ess_service holds on the whole table, in this order */
} table_grant;

/* Migration 0007's table, and 0008's for the console. A table missing here fails the test:
 * decide in a migration what the services may do with it, then add it. */
static const table_grant expected_grants[] = {
    {"provinces", "SELECT"},
    {"districts", "SELECT"},
    {"tambons", "SELECT"},
    {"stations", "SELECT"},
    {"station_tambons", "SELECT"},
    {"geo_meta", "SELECT"},
    {"teams", "SELECT"},
    {"team_groups", "SELECT INSERT UPDATE"},
    {"team_invites", "SELECT UPDATE"},
    {"conversations", "SELECT INSERT UPDATE"},
    {"incidents", "SELECT INSERT"}, /* + UPDATE of columns: below */
    {"case_counters", "SELECT INSERT UPDATE"},
    {"incident_events", "SELECT INSERT UPDATE"},
    {"incident_targets", "SELECT INSERT"},
    {"outbox", "SELECT INSERT UPDATE DELETE"},
    {"processed_events", "SELECT INSERT"},
    {"audit_log", "SELECT INSERT"},
    {"schema_migrations", "SELECT"},
    /* 0008: ess-console's accounts (UPDATE of last_login_at only: checked below), sessions
     * and login throttling (DELETE: logout, expiry and the sweep of old failures). */
    {"console_users", "SELECT"},
    {"console_sessions", "SELECT INSERT UPDATE DELETE"},
    {"console_login_failures", "SELECT INSERT UPDATE DELETE"},
};

/* What ess_service holds on each table of schema public, one "table: PRIVILEGES" line each. */
static const char privileges_sql[] =
    "SELECT c.relname || ': ' || coalesce(("
    "  SELECT string_agg(p, ' ' ORDER BY o) FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', "
    "    'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) WITH ORDINALITY AS u(p, o) "
    "  WHERE has_table_privilege('ess_service', c.oid, p)), '') "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY c.relname";

ESS_TEST(grants_are_exactly_the_documented_table)
{
    roles_env e;
    env_open(&e);
    db_result *r = NULL;
    st_error err = {0};
    if (db_exec(e.admin, privileges_sql, 0, NULL, &r, &err) != ST_OK)
        fail_msg("privileges: %s (%s)", err.message, err.cause);
    size_t count = sizeof(expected_grants) / sizeof(expected_grants[0]);
    assert_true(db_result_rows(r) > 0);
    for (int row = 0; row < db_result_rows(r); row++) {
        const char *line = db_result_value(r, row, 0);
        bool known = false;
        for (size_t i = 0; i < count; i++) {
            size_t name_len = strlen(expected_grants[i].table);
            if (strncmp(line, expected_grants[i].table, name_len) != 0 || line[name_len] != ':')
                continue;
            known = true;
            char want[160];
            snprintf(want, sizeof(want), "%s: %s", expected_grants[i].table,
                     expected_grants[i].privileges);
            if (strcmp(line, want) != 0)
                fail_msg("ess_service holds \"%s\", migration 0007 says \"%s\"", line, want);
        }
        if (!known)
            fail_msg("table \"%s\" is not in migration 0007's table: decide in a migration what "
                     "ess_service may do with it, then add it to expected_grants",
                     line);
    }
    assert_int_equal(db_result_rows(r), (int)count);
    db_result_destroy(r);

    /* incidents: UPDATE of every column but its identity and its personal fields. */
    assert_int_equal(sql_int(e.admin, "SELECT count(*) FROM pg_attribute WHERE attrelid = "
                                      "'incidents'::regclass AND attnum > 0 AND NOT attisdropped "
                                      "AND has_column_privilege('ess_service', attrelid, attnum, "
                                      "'UPDATE') = (attname IN ('id', 'case_number', "
                                      "'reported_at', 'phone_encrypted', "
                                      "'reporter_id_encrypted', 'reporter_key_hash', "
                                      "'pii_erased_at'))"),
                     0);
    assert_true(sql_int(e.admin, "SELECT count(*) FROM pg_attribute WHERE attrelid = "
                                 "'incidents'::regclass AND attnum > 0 AND NOT attisdropped "
                                 "AND has_column_privilege('ess_service', attrelid, attnum, "
                                 "'UPDATE')") >= 20);
    /* console_users: the console notes the last login, nothing else (0008). */
    assert_int_equal(sql_int(e.admin, "SELECT count(*) FROM pg_attribute WHERE attrelid = "
                                      "'console_users'::regclass AND attnum > 0 AND NOT "
                                      "attisdropped AND has_column_privilege('ess_service', "
                                      "attrelid, attnum, 'UPDATE') <> (attname = "
                                      "'last_login_at')"),
                     0);
    /* The retention role keeps its own (0005): erasing is its job, not the services'. */
    assert_int_equal(sql_int(e.admin, "SELECT count(*) FROM unnest(ARRAY['phone_encrypted', "
                                      "'reporter_id_encrypted', 'reporter_key_hash', "
                                      "'pii_erased_at']) AS c WHERE has_column_privilege("
                                      "'ess_retention', 'incidents', c, 'UPDATE')"),
                     4);

    /* Sequences: nextval only. */
    assert_int_equal(sql_int(e.admin, "SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                                      "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND "
                                      "c.relkind = 'S' AND (NOT has_sequence_privilege("
                                      "'ess_service', c.oid, 'USAGE') OR has_sequence_privilege("
                                      "'ess_service', c.oid, 'UPDATE') OR "
                                      "has_sequence_privilege('ess_service', c.oid, 'SELECT'))"),
                     0);
    assert_true(sql_int(e.admin, "SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                                 "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND "
                                 "c.relkind = 'S'") >= 4);
    /* No creating objects. */
    assert_int_equal(sql_int(e.admin, "SELECT count(*) WHERE has_schema_privilege('ess_service', "
                                      "'public', 'CREATE') OR NOT has_schema_privilege("
                                      "'ess_service', 'public', 'USAGE')"),
                     0);

    /* A table a later migration creates (as the migrating role): SELECT, INSERT, UPDATE by
     * default, never DELETE; its sequence USAGE. */
    sql_ok(e.admin, "CREATE TABLE roles_later (id bigserial PRIMARY KEY)");
    char *later = sql_text(e.admin,
                           "SELECT string_agg(p, ' ' ORDER BY o) FROM unnest(ARRAY['SELECT', "
                           "'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) "
                           "WITH ORDINALITY AS u(p, o) WHERE has_table_privilege('ess_service', "
                           "'roles_later', p)",
                           0, NULL);
    assert_string_equal(later, "SELECT INSERT UPDATE");
    free(later);
    assert_int_equal(sql_int(e.admin, "SELECT count(*) WHERE has_sequence_privilege('ess_service', "
                                      "'roles_later_id_seq', 'USAGE') AND NOT "
                                      "has_sequence_privilege('ess_service', "
                                      "'roles_later_id_seq', 'UPDATE')"),
                     1);
    env_close(&e);
}

ESS_TEST_MAIN(NULL, NULL)
