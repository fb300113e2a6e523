/* libs/db against a real PostgreSQL, the baseline migrations, and `essctl db`.
 *
 * Each case works in its own schema (search_path set through the DSN's options, so it
 * survives reconnects) or its own database, and the group teardown drops whatever the case
 * created, also when the case failed half-way. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "db.h"
#include "testkit.h"

extern const ess_embedded_file ess_migration_files[];
extern const size_t ess_migration_files_count;

#define NAME_MAX_LEN 64
#define DSN_MAX_LEN 4096

/* What the running case created, for the teardown. */
static struct {
    db *admin;
    db *handles[8];
    char schema[NAME_MAX_LEN];
    char database[NAME_MAX_LEN];
    char *dsn;
} current;

#define assert_ok(expr, err)                                                                       \
    do {                                                                                           \
        st_code rc_ = (expr);                                                                      \
        if (rc_ != ST_OK)                                                                          \
            fail_msg("%s -> %s: %s (%s)", #expr, st_name(rc_), (err).message, (err).cause);        \
    } while (0)

/* ---------------------------------------------------------------------------------------- */
/* Helpers */

static void append_keyword(char *out, size_t out_size, const char *keyword, const char *value)
{
    size_t used = strlen(out);
    used += (size_t)snprintf(out + used, out_size - used, "%s%s='", used > 0 ? " " : "", keyword);
    for (const char *p = value; *p != '\0' && used + 3 < out_size; p++) {
        if (*p == '\'' || *p == '\\')
            out[used++] = '\\';
        out[used++] = *p;
    }
    snprintf(out + used, out_size - used, "'");
}

/* The test DSN as key=value, with another database and/or a search_path. Caller frees. */
static char *dsn_with(const char *dbname, const char *search_path)
{
    char *parse_error = NULL;
    PQconninfoOption *parsed = PQconninfoParse(testkit_env("ESS_TEST_PG_DSN"), &parse_error);
    if (parsed == NULL)
        fail_msg("ESS_TEST_PG_DSN does not parse");
    char *out = calloc(1, DSN_MAX_LEN);
    assert_non_null(out);
    const char *base_options = NULL;
    for (PQconninfoOption *o = parsed; o->keyword != NULL; o++) {
        if (o->val == NULL)
            continue;
        if (strcmp(o->keyword, "options") == 0) {
            base_options = o->val;
            continue;
        }
        if (strcmp(o->keyword, "dbname") == 0 && dbname != NULL)
            continue;
        append_keyword(out, DSN_MAX_LEN, o->keyword, o->val);
    }
    if (dbname != NULL)
        append_keyword(out, DSN_MAX_LEN, "dbname", dbname);
    char options[512];
    snprintf(options, sizeof(options), "%s%s%s%s", base_options != NULL ? base_options : "",
             base_options != NULL && search_path != NULL ? " " : "",
             search_path != NULL ? "-c search_path=" : "", search_path != NULL ? search_path : "");
    if (options[0] != '\0')
        append_keyword(out, DSN_MAX_LEN, "options", options);
    PQconninfoFree(parsed);
    return out;
}

static db *connect_dsn(const char *dsn, int64_t statement_timeout_ms)
{
    db_options options = {.dsn = dsn,
                          .application_name = "ess-db-test",
                          .statement_timeout_ms = statement_timeout_ms};
    st_error err = {0};
    db *d = NULL;
    assert_ok(db_connect(&options, &d, &err), err);
    for (size_t i = 0; i < sizeof(current.handles) / sizeof(current.handles[0]); i++) {
        if (current.handles[i] == NULL) {
            current.handles[i] = d;
            break;
        }
    }
    return d;
}

static void exec_ok(db *d, const char *sql)
{
    st_error err = {0};
    assert_ok(db_exec(d, sql, 0, NULL, NULL, &err), err);
}

/* First column of the first row, copied (caller frees); NULL for SQL NULL. */
static char *query_value(db *d, const char *sql, int nparams, const char *const *params)
{
    st_error err = {0};
    db_result *r = NULL;
    assert_ok(db_exec(d, sql, nparams, params, &r, &err), err);
    assert_true(db_result_rows(r) >= 1);
    const char *value = db_result_value(r, 0, 0);
    char *copy = value != NULL ? strdup(value) : NULL;
    db_result_destroy(r);
    return copy;
}

static void assert_query_equals(db *d, const char *sql, const char *expected)
{
    char *value = query_value(d, sql, 0, NULL);
    if (value == NULL || strcmp(value, expected) != 0)
        fail_msg("%s gave %s, expected %s", sql, value != NULL ? value : "NULL", expected);
    free(value);
}

static db *admin(void)
{
    if (current.admin == NULL) {
        db_options options = {.dsn = testkit_env("ESS_TEST_PG_DSN"),
                              .application_name = "ess-db-test-admin"};
        st_error err = {0};
        assert_ok(db_connect(&options, &current.admin, &err), err);
    }
    return current.admin;
}

static void start_case(void);

/* A fresh schema and a handle whose search_path is that schema. */
static db *open_in_schema(void)
{
    start_case();
    testkit_unique(current.schema, sizeof(current.schema));
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", current.schema);
    exec_ok(admin(), sql);
    current.dsn = dsn_with(NULL, current.schema);
    return connect_dsn(current.dsn, 0);
}

/* A fresh database on the test server; returns a DSN for it (owned by `current`). */
static const char *create_database(void)
{
    start_case();
    testkit_unique(current.database, sizeof(current.database));
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", current.database);
    exec_ok(admin(), sql);
    current.dsn = dsn_with(current.database, NULL);
    return current.dsn;
}

static int teardown(void **state);

/* When the binary runs every case in one process, the previous case's objects go first. */
static void start_case(void)
{
    if (current.schema[0] != '\0' || current.database[0] != '\0' || current.dsn != NULL)
        teardown(NULL);
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(current.handles) / sizeof(current.handles[0]); i++) {
        db_destroy(current.handles[i]);
        current.handles[i] = NULL;
    }
    char sql[160];
    st_error err = {0};
    if (current.schema[0] != '\0' && current.admin != NULL) {
        snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", current.schema);
        db_exec(current.admin, sql, 0, NULL, NULL, &err);
    }
    if (current.database[0] != '\0' && current.admin != NULL) {
        snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", current.database);
        db_exec(current.admin, sql, 0, NULL, NULL, &err);
    }
    db_destroy(current.admin);
    free(current.dsn);
    memset(&current, 0, sizeof(current));
    return 0;
}

/* A TCP port on 127.0.0.1 that refuses connections: bound, never listening. */
static int refusing_port(int *ret_fd)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    *ret_fd = fd;
    return ntohs(addr.sin_port);
}

/* ---------------------------------------------------------------------------------------- */
/* Statements and results */

ESS_TEST(exec_binds_params_and_null)
{
    (void)state;
    db *d = open_in_schema();
    st_error err = {0};
    exec_ok(d, "CREATE TABLE item (id int PRIMARY KEY, label text)");
    const char *params[] = {"7", NULL};
    db_result *r = NULL;
    assert_ok(db_exec(d, "INSERT INTO item (id, label) VALUES ($1, $2)", 2, params, &r, &err), err);
    assert_int_equal(db_result_affected(r), 1);
    db_result_destroy(r);

    const char *id[] = {"7"};
    assert_ok(
        db_exec(d, "SELECT id, label, label IS NULL FROM item WHERE id = $1", 1, id, &r, &err),
        err);
    assert_int_equal(db_result_rows(r), 1);
    assert_int_equal(db_result_cols(r), 3);
    assert_string_equal(db_result_value(r, 0, 0), "7");
    assert_null(db_result_value(r, 0, 1));
    assert_true(db_result_is_null(r, 0, 1));
    assert_false(db_result_is_null(r, 0, 0));
    assert_string_equal(db_result_value(r, 0, 2), "t");
    /* out of range: NULL / false / 0 */
    assert_null(db_result_value(r, 1, 0));
    assert_null(db_result_value(r, 0, 3));
    assert_null(db_result_value(r, -1, 0));
    assert_false(db_result_is_null(r, 5, 5));
    assert_int_equal(db_result_affected(r), 1); /* SELECT 1 reports its row count */
    db_result_destroy(r);

    assert_int_equal(db_result_rows(NULL), 0);
    assert_null(db_result_value(NULL, 0, 0));
    db_result_destroy(NULL);

    assert_int_equal(db_exec(d, "SELECT 1", DB_PARAMS_MAX + 1, params, NULL, &err), ST_INVALID);
    assert_int_equal(db_exec(d, "SELECT 1", 1, NULL, NULL, &err), ST_INVALID);
    assert_int_equal(db_exec(d, "", 0, NULL, NULL, &err), ST_INVALID);
}

ESS_TEST(exec_runs_one_statement_and_script_runs_many)
{
    (void)state;
    db *d = open_in_schema();
    st_error err = {0};
    /* The extended protocol takes one statement: values cannot smuggle a second one. */
    assert_int_not_equal(
        db_exec(d, "CREATE TABLE a (x int); CREATE TABLE b (x int)", 0, NULL, NULL, &err), ST_OK);
    assert_string_equal(err.cause, "sqlstate 42601");
    assert_ok(db_exec_script(d,
                             "CREATE TABLE a (x int); CREATE TABLE b (x int);"
                             "INSERT INTO a VALUES (1), (2);",
                             &err),
              err);
    assert_query_equals(d, "SELECT count(*) FROM a", "2");
    assert_query_equals(d, "SELECT to_regclass('b') IS NOT NULL", "t");
}

ESS_TEST(unique_violation_is_conflict_with_sqlstate)
{
    (void)state;
    db *d = open_in_schema();
    st_error err = {0};
    exec_ok(d, "CREATE TABLE report (case_number text PRIMARY KEY)");
    const char *params[] = {"ESS-2569-424242"};
    assert_ok(db_exec(d, "INSERT INTO report VALUES ($1)", 1, params, NULL, &err), err);
    st_code rc = db_exec(d, "INSERT INTO report VALUES ($1)", 1, params, NULL, &err);
    assert_int_equal(rc, ST_CONFLICT);
    assert_int_equal(err.code, ST_CONFLICT);
    assert_string_equal(err.cause, "sqlstate 23505");
    assert_non_null(strstr(err.message, "report_pkey"));
    assert_null(strstr(err.message, "424242"));
}

ESS_TEST(error_text_never_holds_parameter_values)
{
    (void)state;
    db *d = open_in_schema();
    st_error err = {0};
    exec_ok(d, "CREATE TABLE person (phone text NOT NULL CHECK (phone ~ '^0[0-9]{8,9}$'),"
               " age int)");
    exec_ok(d, "CREATE FUNCTION shout(v text) RETURNS int LANGUAGE plpgsql AS"
               " $$BEGIN RAISE EXCEPTION 'bad value %', v; END$$");
    static const struct {
        const char *sql;
        const char *value;
        const char *sqlstate;
        st_code code;
    } cases[] = {
        {"SELECT $1::int", "0812345678x", "sqlstate 22P02", ST_INVALID},
        {"INSERT INTO person (phone) VALUES ($1)", "+66 81 234 5678", "sqlstate 23514", ST_INVALID},
        {"INSERT INTO person (phone, age) VALUES ('0812345678', $1::int)", "99999999999",
         "sqlstate 22003", ST_INVALID},
        {"SELECT shout($1)", "Uaaaabbbbccccddddeeeeffff00001111", "sqlstate P0001", ST_INTERNAL},
        {"SELECT to_date($1, 'YYYY-MM-DD')", "secret-date-0812345678", "sqlstate 22007",
         ST_INVALID},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *params[] = {cases[i].value};
        st_code rc = db_exec(d, cases[i].sql, 1, params, NULL, &err);
        if (rc != cases[i].code || strcmp(err.cause, cases[i].sqlstate) != 0)
            fail_msg("case %zu: %s (%s): %s", i, st_name(rc), err.cause, err.message);
        if (strstr(err.message, cases[i].value) != NULL)
            fail_msg("case %zu: error text holds the value: %s", i, err.message);
        assert_true(err.message[0] != '\0');
    }
}

ESS_TEST(session_settings_are_applied)
{
    (void)state;
    db *d = open_in_schema();
    assert_query_equals(d, "SHOW synchronous_commit", "on");
    assert_query_equals(d, "SHOW statement_timeout", "10s");
    assert_query_equals(d, "SELECT current_setting('application_name')", "ess-db-test");
    /* the DSN's own options are kept next to ours */
    assert_query_equals(d, "SELECT current_schema()", current.schema);

    db *short_timeout = connect_dsn(current.dsn, 150);
    assert_query_equals(short_timeout, "SHOW statement_timeout", "150ms");
    st_error err = {0};
    assert_int_equal(db_exec(short_timeout, "SELECT pg_sleep(5)", 0, NULL, NULL, &err), ST_TIMEOUT);
    assert_string_equal(err.cause, "sqlstate 57014");
    /* still usable afterwards */
    assert_ok(db_ping(short_timeout, &err), err);
}

ESS_TEST(connect_failure_is_unavailable_and_hides_password)
{
    (void)state;
    int fd = -1;
    int port = refusing_port(&fd);
    char dsn[256];
    snprintf(dsn, sizeof(dsn), "postgresql://ess:hunter2-s3cret@127.0.0.1:%d/ess", port);
    db_options options = {.dsn = dsn, .connect_timeout_ms = 2000};
    st_error err = {0};
    db *d = NULL;
    assert_int_equal(db_connect(&options, &d, &err), ST_UNAVAILABLE);
    assert_null(d);
    assert_null(strstr(err.message, "hunter2"));
    assert_non_null(strstr(err.message, "127.0.0.1"));
    assert_string_equal(err.cause, "sqlstate 08001");

    snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%d password=hunter2-s3cret", port);
    assert_int_equal(db_connect(&options, &d, &err), ST_UNAVAILABLE);
    assert_null(strstr(err.message, "hunter2"));

    options.dsn = "host=127.0.0.1 password=hunter2-s3cret broken";
    assert_int_equal(db_connect(&options, &d, &err), ST_INVALID);
    assert_null(strstr(err.message, "hunter2"));
    close(fd);

    /* a wrong database name reaches the server: its reason is passed on */
    char *missing = dsn_with("no_such_database_ess", NULL);
    options.dsn = missing;
    assert_int_equal(db_connect(&options, &d, &err), ST_UNAVAILABLE);
    assert_non_null(strstr(err.message, "does not exist"));
    free(missing);
}

/* ---------------------------------------------------------------------------------------- */
/* Transactions */

typedef struct insert_then {
    const char *fail_with; /* NULL: succeed; "own": return ST_INVALID; else a failing SQL */
    int calls;
} insert_then;

static st_code insert_then_maybe_fail(db *d, void *closure, st_error *err)
{
    insert_then *plan = closure;
    plan->calls++;
    assert_true(db_in_transaction(d));
    const char *params[] = {"1"};
    st_code rc = db_exec(d, "INSERT INTO ledger VALUES ($1)", 1, params, NULL, err);
    if (rc != ST_OK || plan->fail_with == NULL)
        return rc;
    if (strcmp(plan->fail_with, "own") == 0)
        return st_fail(err, ST_INVALID, "the function decided to fail");
    return db_exec(d, plan->fail_with, 0, NULL, NULL, err);
}

ESS_TEST(tx_commits_on_success)
{
    (void)state;
    db *d = open_in_schema();
    st_error err = {0};
    exec_ok(d, "CREATE TABLE ledger (x int)");
    insert_then plan = {0};
    assert_ok(db_tx(d, 0, insert_then_maybe_fail, &plan, &err), err);
    assert_int_equal(plan.calls, 1);
    assert_false(db_in_transaction(d));
    assert_query_equals(admin(), "SELECT 1", "1");
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.ledger", current.schema);
    assert_query_equals(admin(), sql, "1"); /* visible to another session: committed */
}

ESS_TEST(tx_failure_rolls_back_everything)
{
    (void)state;
    db *d = open_in_schema();
    st_error err = {0};
    exec_ok(d, "CREATE TABLE ledger (x int)");

    insert_then own = {.fail_with = "own"};
    assert_int_equal(db_tx(d, 0, insert_then_maybe_fail, &own, &err), ST_INVALID);
    assert_string_equal(err.message, "the function decided to fail");
    assert_int_equal(own.calls, 1);
    assert_false(db_in_transaction(d));

    insert_then statement = {.fail_with = "SELECT 1/0"};
    assert_int_not_equal(db_tx(d, 0, insert_then_maybe_fail, &statement, &err), ST_OK);
    assert_string_equal(err.cause, "sqlstate 22012");
    assert_int_equal(statement.calls, 1); /* not a serialization failure: no rerun */

    assert_query_equals(d, "SELECT count(*) FROM ledger", "0");

    /* explicit begin / rollback, and rollback with nothing open */
    assert_ok(db_begin(d, &err), err);
    assert_int_equal(db_begin(d, &err), ST_INVALID);
    exec_ok(d, "INSERT INTO ledger VALUES (5)");
    assert_ok(db_rollback(d, &err), err);
    assert_ok(db_rollback(d, &err), err);
    assert_int_equal(db_commit(d, &err), ST_INVALID);
    assert_query_equals(d, "SELECT count(*) FROM ledger", "0");

    /* a failed statement aborts the transaction: commit reports it and keeps nothing */
    assert_ok(db_begin(d, &err), err);
    exec_ok(d, "INSERT INTO ledger VALUES (6)");
    assert_int_not_equal(db_exec(d, "SELECT 1/0", 0, NULL, NULL, &err), ST_OK);
    assert_int_not_equal(db_commit(d, &err), ST_OK);
    assert_string_equal(err.cause, "sqlstate 22012");
    assert_false(db_in_transaction(d));
    assert_query_equals(d, "SELECT count(*) FROM ledger", "0");
}

typedef struct flaky {
    int calls;
    int failures; /* how many first calls raise 40001 (or 40P01 on even calls) */
} flaky;

static st_code fail_first_calls(db *d, void *closure, st_error *err)
{
    flaky *plan = closure;
    plan->calls++;
    const char *params[] = {"1"};
    st_code rc = db_exec(d, "INSERT INTO ledger VALUES ($1)", 1, params, NULL, err);
    if (rc != ST_OK)
        return rc;
    if (plan->calls <= plan->failures)
        return db_exec(d,
                       plan->calls % 2 == 1
                           ? "DO $$BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END$$"
                           : "DO $$BEGIN RAISE EXCEPTION 'deadlock' USING ERRCODE = '40P01'; END$$",
                       0, NULL, NULL, err);
    return ST_OK;
}

ESS_TEST(tx_reruns_after_serialization_failure_and_deadlock)
{
    (void)state;
    db *d = open_in_schema();
    st_error err = {0};
    exec_ok(d, "CREATE TABLE ledger (x int)");
    flaky plan = {.failures = 2};
    assert_ok(db_tx(d, 0, fail_first_calls, &plan, &err), err);
    assert_int_equal(plan.calls, 3);
    assert_query_equals(d, "SELECT count(*) FROM ledger", "1"); /* the failed tries left none */
}

ESS_TEST(tx_gives_up_after_max_attempts)
{
    (void)state;
    db *d = open_in_schema();
    st_error err = {0};
    exec_ok(d, "CREATE TABLE ledger (x int)");
    flaky plan = {.failures = 100};
    st_code rc = db_tx(d, 2, fail_first_calls, &plan, &err);
    assert_int_not_equal(rc, ST_OK);
    assert_int_equal(plan.calls, 2);
    assert_string_equal(err.cause, "sqlstate 40P01");
    assert_false(db_in_transaction(d));
    assert_query_equals(d, "SELECT count(*) FROM ledger", "0");
    assert_int_equal(db_tx(d, -1, fail_first_calls, &plan, &err), ST_INVALID);
}

typedef struct write_skew {
    db *other;
    int calls;
} write_skew;

/* Both transactions read the table and then insert into it: under SERIALIZABLE one of them
 * must fail with 40001. The other session commits first, so ours is the one. */
static st_code read_then_insert(db *d, void *closure, st_error *err)
{
    write_skew *plan = closure;
    plan->calls++;
    st_code rc = db_exec(d, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", 0, NULL, NULL, err);
    if (rc == ST_OK)
        rc = db_exec(d, "SELECT count(*) FROM ledger", 0, NULL, NULL, err);
    if (rc != ST_OK)
        return rc;
    if (plan->calls == 1) {
        st_error other_err = {0};
        assert_ok(db_begin(plan->other, &other_err), other_err);
        exec_ok(plan->other, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE");
        exec_ok(plan->other, "SELECT count(*) FROM ledger");
        exec_ok(plan->other, "INSERT INTO ledger VALUES (2)");
        assert_ok(db_commit(plan->other, &other_err), other_err);
    }
    return db_exec(d, "INSERT INTO ledger VALUES (1)", 0, NULL, NULL, err);
}

ESS_TEST(tx_reruns_after_real_serialization_conflict)
{
    (void)state;
    db *d = open_in_schema();
    st_error err = {0};
    exec_ok(d, "CREATE TABLE ledger (x int)");
    write_skew plan = {.other = connect_dsn(current.dsn, 0)};
    assert_ok(db_tx(d, 0, read_then_insert, &plan, &err), err);
    assert_int_equal(plan.calls, 2);
    assert_query_equals(d, "SELECT count(*) FROM ledger", "2");
    assert_query_equals(d, "SELECT count(*) FROM ledger WHERE x = 1", "1");
}

/* ---------------------------------------------------------------------------------------- */
/* Reconnecting */

typedef struct backend_gone {
    const char *pid;
} backend_gone;

static bool backend_is_gone(void *closure)
{
    backend_gone *gone = closure;
    const char *params[] = {gone->pid};
    char *count = query_value(admin(), "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int",
                              1, params);
    bool result = strcmp(count, "0") == 0;
    free(count);
    return result;
}

static void terminate_backend_of(db *d)
{
    char *pid = query_value(d, "SELECT pg_backend_pid()", 0, NULL);
    const char *params[] = {pid};
    char *done = query_value(admin(), "SELECT pg_terminate_backend($1::int)", 1, params);
    assert_string_equal(done, "t");
    free(done);
    backend_gone gone = {.pid = pid};
    assert_true(testkit_wait_until(backend_is_gone, &gone, 10000));
    free(pid);
}

ESS_TEST(reconnects_after_backend_terminated)
{
    (void)state;
    db *d = open_in_schema();
    st_error err = {0};
    exec_ok(d, "CREATE TABLE ledger (x int)");
    char *before = query_value(d, "SELECT pg_backend_pid()", 0, NULL);
    terminate_backend_of(d);

    /* the next statement runs on a new connection, with the same session settings */
    const char *params[] = {"42"};
    assert_ok(db_exec(d, "INSERT INTO ledger VALUES ($1)", 1, params, NULL, &err), err);
    char *after = query_value(d, "SELECT pg_backend_pid()", 0, NULL);
    assert_string_not_equal(before, after);
    assert_query_equals(d, "SELECT count(*) FROM ledger", "1");
    assert_query_equals(d, "SHOW synchronous_commit", "on");
    assert_query_equals(d, "SELECT current_schema()", current.schema);
    free(before);
    free(after);

    terminate_backend_of(d);
    assert_ok(db_ping(d, &err), err);
}

ESS_TEST(transaction_broken_by_termination_fails_then_recovers)
{
    (void)state;
    db *d = open_in_schema();
    st_error err = {0};
    exec_ok(d, "CREATE TABLE ledger (x int)");
    assert_ok(db_begin(d, &err), err);
    exec_ok(d, "INSERT INTO ledger VALUES (1)");
    terminate_backend_of(d);
    /* inside a transaction nothing is retried: the work is lost and the caller must know */
    assert_int_equal(db_exec(d, "INSERT INTO ledger VALUES (2)", 0, NULL, NULL, &err),
                     ST_UNAVAILABLE);
    assert_true(strncmp(err.cause, "sqlstate 08", 11) == 0 ||
                strncmp(err.cause, "sqlstate 57P", 12) == 0);
    assert_ok(db_rollback(d, &err), err);
    assert_false(db_in_transaction(d));
    assert_query_equals(d, "SELECT count(*) FROM ledger", "0");
}

/* ---------------------------------------------------------------------------------------- */
/* Migrations */

#define FILE_OF(path, text)                                                                        \
    {                                                                                              \
        path, text, sizeof(text) - 1                                                               \
    }

static const ess_embedded_file two_files[] = {
    /* listed out of order: db_migrate sorts by path, and 0002 needs 0001's table */
    FILE_OF("0002_fill.sql", "INSERT INTO alpha VALUES (1), (2);\n"),
    FILE_OF("0001_create.sql", "CREATE TABLE alpha (x int PRIMARY KEY);\n"
                               "SELECT pg_sleep(0.2); -- widens the window for racing runs\n"),
};

ESS_TEST(migrate_applies_files_once_in_name_order)
{
    (void)state;
    db *d = open_in_schema();
    st_error err = {0};
    int applied = -1;
    assert_ok(db_migrate(d, two_files, 2, &applied, &err), err);
    assert_int_equal(applied, 2);
    assert_query_equals(d, "SELECT count(*) FROM alpha", "2");
    assert_query_equals(d,
                        "SELECT string_agg(version || ':' || name, ',' ORDER BY version)"
                        " FROM schema_migrations",
                        "0001:create,0002:fill");
    assert_query_equals(d,
                        "SELECT bool_and(checksum ~ '^[0-9a-f]{64}$' AND applied_at <= now())"
                        " FROM schema_migrations",
                        "t");
    /* sha256("INSERT INTO alpha VALUES (1), (2);\n") */
    char *checksum =
        query_value(d, "SELECT checksum FROM schema_migrations WHERE version = '0002'", 0, NULL);
    char *expected = query_value(d, "SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex')", 1,
                                 (const char *const[]){two_files[0].data});
    assert_string_equal(checksum, expected);
    free(checksum);
    free(expected);

    assert_ok(db_migrate(d, two_files, 2, &applied, &err), err);
    assert_int_equal(applied, 0);
    assert_query_equals(d, "SELECT count(*) FROM alpha", "2");
    /* The migration lock is released: the migrating session holds no advisory lock. (Asking
     * whether another session could take it would race with the cases beside this one: they
     * migrate other schemas of the same database, and the lock is per database.) */
    assert_query_equals(d,
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                        "pid = pg_backend_pid()",
                        "0");
}

typedef struct migrator {
    const char *dsn;
    st_code rc;
    int applied;
    st_error err;
} migrator;

static void *run_migrator(void *closure)
{
    migrator *m = closure;
    db_options options = {.dsn = m->dsn, .application_name = "ess-db-test-migrator"};
    db *d = NULL;
    m->rc = db_connect(&options, &d, &m->err);
    if (m->rc == ST_OK)
        m->rc = db_migrate(d, two_files, 2, &m->applied, &m->err);
    db_destroy(d);
    return NULL;
}

ESS_TEST(migrate_concurrent_runs_apply_each_file_once)
{
    (void)state;
    db *d = open_in_schema();
    migrator runs[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        runs[i] = (migrator){.dsn = current.dsn, .applied = -1};
        assert_int_equal(pthread_create(&threads[i], NULL, run_migrator, &runs[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        if (runs[i].rc != ST_OK)
            fail_msg("migrator %d: %s: %s (%s)", i, st_name(runs[i].rc), runs[i].err.message,
                     runs[i].err.cause);
        total += runs[i].applied;
    }
    assert_int_equal(total, 2);
    assert_query_equals(d, "SELECT count(*) FROM schema_migrations", "2");
    assert_query_equals(d, "SELECT count(*) FROM alpha", "2");
}

ESS_TEST(migrate_refuses_changed_applied_file)
{
    (void)state;
    db *d = open_in_schema();
    st_error err = {0};
    int applied = -1;
    assert_ok(db_migrate(d, two_files, 2, &applied, &err), err);
    const ess_embedded_file changed[] = {
        two_files[1],
        FILE_OF("0002_fill.sql", "INSERT INTO alpha VALUES (1), (2), (3);\n"),
        FILE_OF("0003_more.sql", "CREATE TABLE beta (x int);\n"),
    };
    applied = -1;
    assert_int_equal(db_migrate(d, changed, 3, &applied, &err), ST_CONFLICT);
    assert_int_equal(applied, -1);
    assert_non_null(strstr(err.message, "0002"));
    /* nothing after the changed file ran */
    assert_query_equals(d, "SELECT to_regclass('beta') IS NULL", "t");
    assert_query_equals(d, "SELECT count(*) FROM alpha", "2");
}

ESS_TEST(migrate_failed_file_leaves_no_trace)
{
    (void)state;
    db *d = open_in_schema();
    st_error err = {0};
    const ess_embedded_file files[] = {
        FILE_OF("0001_ok.sql", "CREATE TABLE alpha (x int);\n"),
        FILE_OF("0002_broken.sql", "CREATE TABLE beta (x int);\nSELECT no_such_function();\n"),
        FILE_OF("0003_later.sql", "CREATE TABLE gamma (x int);\n"),
    };
    int applied = -1;
    st_code rc = db_migrate(d, files, 3, &applied, &err);
    assert_int_not_equal(rc, ST_OK);
    assert_int_equal(applied, -1);
    assert_non_null(strstr(err.message, "0002"));
    assert_string_equal(err.cause, "sqlstate 42883");
    assert_query_equals(d, "SELECT string_agg(version, ',') FROM schema_migrations", "0001");
    assert_query_equals(d, "SELECT to_regclass('alpha') IS NOT NULL", "t");
    assert_query_equals(d, "SELECT to_regclass('beta') IS NULL", "t");
    assert_query_equals(d, "SELECT to_regclass('gamma') IS NULL", "t");
    assert_false(db_in_transaction(d));
}

ESS_TEST(migrate_rejects_bad_files)
{
    (void)state;
    db *d = open_in_schema();
    st_error err = {0};
    int applied = -1;
    const ess_embedded_file unnamed[] = {FILE_OF("create.sql", "SELECT 1;")};
    assert_int_equal(db_migrate(d, unnamed, 1, &applied, &err), ST_INVALID);
    const ess_embedded_file short_version[] = {FILE_OF("01_x.sql", "SELECT 1;")};
    assert_int_equal(db_migrate(d, short_version, 1, &applied, &err), ST_INVALID);
    const ess_embedded_file twice[] = {FILE_OF("0001_a.sql", "SELECT 1;"),
                                       FILE_OF("0001_b.sql", "SELECT 2;")};
    assert_int_equal(db_migrate(d, twice, 2, &applied, &err), ST_INVALID);
    assert_non_null(strstr(err.message, "0001"));
    const ess_embedded_file commits[] = {
        FILE_OF("0001_commits.sql", "CREATE TABLE alpha (x int); COMMIT;")};
    assert_int_equal(db_migrate(d, commits, 1, &applied, &err), ST_INVALID);
    assert_int_equal(applied, -1);
    assert_query_equals(d, "SELECT count(*) FROM schema_migrations", "0");
    assert_false(db_in_transaction(d));
}

/* ---------------------------------------------------------------------------------------- */
/* The real baseline, and essctl */

static const char *const baseline_tables[] = {
    "provinces",       "districts",   "tambons",          "stations",  "station_tambons",
    "teams",           "team_groups", "conversations",    "incidents", "case_counters",
    "incident_events", "outbox",      "processed_events", "audit_log", "schema_migrations",
};

ESS_TEST(baseline_applies_on_fresh_database)
{
    (void)state;
    db *d = connect_dsn(create_database(), 0);
    st_error err = {0};
    int applied = -1;
    assert_true(ess_migration_files_count >= 1);
    assert_ok(db_migrate(d, ess_migration_files, ess_migration_files_count, &applied, &err), err);
    assert_int_equal(applied, (int)ess_migration_files_count);
    assert_ok(db_migrate(d, ess_migration_files, ess_migration_files_count, &applied, &err), err);
    assert_int_equal(applied, 0);
    for (size_t i = 0; i < sizeof(baseline_tables) / sizeof(baseline_tables[0]); i++) {
        const char *params[] = {baseline_tables[i]};
        char *exists = query_value(d, "SELECT to_regclass($1) IS NOT NULL", 1, params);
        if (strcmp(exists, "t") != 0)
            fail_msg("table %s missing after the baseline", baseline_tables[i]);
        free(exists);
    }
    assert_query_equals(d, "SELECT min(version) FROM schema_migrations", "0001");

    /* The constraints do their job: the reference hierarchy and the five categories. */
    exec_ok(d, "INSERT INTO provinces (code, name_th, name_en) VALUES ('TH50', 'เชียงใหม่', "
               "'Chiang Mai')");
    exec_ok(d, "INSERT INTO districts (code, province_code, name_th, name_en) VALUES "
               "('TH5001', 'TH50', 'เมืองเชียงใหม่', 'Mueang Chiang Mai')");
    assert_int_equal(db_exec(d,
                             "INSERT INTO districts (code, province_code, name_th, name_en) "
                             "VALUES ('TH9011', 'TH50', 'x', 'x')",
                             0, NULL, NULL, &err),
                     ST_INVALID);
    exec_ok(d, "INSERT INTO teams (name, province_code, agencies) VALUES ('CM team', 'TH50', "
               "ARRAY['police', 'shelter'])");
    assert_int_equal(db_exec(d,
                             "INSERT INTO teams (name, province_code, agencies) VALUES "
                             "('CM team', 'TH50', '{}')",
                             0, NULL, NULL, &err),
                     ST_CONFLICT);
    exec_ok(d, "INSERT INTO incidents (case_number, category, lat, lon) VALUES "
               "('ESS-2569-000001', 'threat', 18.79, 98.98)");
    assert_int_equal(db_exec(d,
                             "INSERT INTO incidents (case_number, category) VALUES "
                             "('ESS-2569-000002', 'burglary')",
                             0, NULL, NULL, &err),
                     ST_INVALID);
    assert_string_equal(err.cause, "sqlstate 23514");
    const char *outbox[] = {"ess.incident.reported", "m-1", "{}"};
    assert_ok(db_exec(d,
                      "INSERT INTO outbox (subject, msg_id, payload) VALUES ($1, $2, "
                      "convert_to($3, 'UTF8')) ON CONFLICT (msg_id) DO NOTHING",
                      3, outbox, NULL, &err),
              err);
    db_result *again = NULL;
    assert_ok(db_exec(d,
                      "INSERT INTO outbox (subject, msg_id, payload) VALUES ($1, $2, "
                      "convert_to($3, 'UTF8')) ON CONFLICT (msg_id) DO NOTHING",
                      3, outbox, &again, &err),
              err);
    assert_int_equal(db_result_affected(again), 0);
    db_result_destroy(again);
}

static int run_essctl(const char *const *args, const char *dsn, char **ret_output)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/essctl", testkit_bin_dir());
    const char *argv[8] = {path};
    for (size_t i = 0; args[i] != NULL && i + 2 < sizeof(argv) / sizeof(argv[0]); i++)
        argv[i + 1] = args[i];
    char *env_dsn = NULL;
    if (dsn != NULL) {
        size_t size = strlen(dsn) + 16;
        env_dsn = malloc(size);
        assert_non_null(env_dsn);
        snprintf(env_dsn, size, "ESS_PG_DSN=%s", dsn);
    }
    const char *env[] = {env_dsn, NULL};
    int status = testkit_run(argv, dsn != NULL ? env : NULL, 60000, ret_output);
    free(env_dsn);
    return status;
}

ESS_TEST(essctl_migrates_fresh_database_idempotently)
{
    (void)state;
    const char *dsn = create_database();
    char *output = NULL;

    int status = run_essctl((const char *const[]){"db", "status", "--json", NULL}, dsn, &output);
    if (status != 0 || strstr(output, "\"state\":\"pending\"") == NULL)
        fail_msg("essctl db status before: exit %d: %s", status, output);
    free(output);

    for (int run = 0; run < 2; run++) {
        status = run_essctl((const char *const[]){"db", "migrate", NULL}, dsn, &output);
        if (status != 0)
            fail_msg("essctl db migrate, run %d: exit %d: %s", run + 1, status, output);
        if (run == 1 && strstr(output, "applied 0 migrations") == NULL)
            fail_msg("second run applied something: %s", output);
        free(output);
    }

    status = run_essctl((const char *const[]){"db", "status", "--json", NULL}, dsn, &output);
    if (status != 0 || strstr(output, "\"version\":\"0001\"") == NULL ||
        strstr(output, "\"name\":\"baseline\"") == NULL ||
        strstr(output, "\"state\":\"applied\"") == NULL || strstr(output, "\"pending\":0") == NULL)
        fail_msg("essctl db status --json: exit %d: %s", status, output);
    free(output);

    status = run_essctl((const char *const[]){"db", "status", NULL}, dsn, &output);
    if (status != 0 || strstr(output, "0001") == NULL || strstr(output, "applied") == NULL)
        fail_msg("essctl db status: exit %d: %s", status, output);
    free(output);
}

ESS_TEST(essctl_reports_failures_and_usage)
{
    (void)state;
    char *output = NULL;
    assert_int_equal(run_essctl((const char *const[]){"--help", NULL}, NULL, &output), 0);
    assert_non_null(strstr(output, "db migrate"));
    assert_non_null(strstr(output, "ESS_PG_DSN"));
    /* The longest synopsis whole, not cut at a buffer's end. */
    assert_non_null(strstr(output, "team invite (--province TH50 | --national) [--station ID] "
                                   "[--agency LIST] [--kind KIND] [--name NAME] [--json]"));
    free(output);
    assert_int_equal(
        run_essctl((const char *const[]){"db", "migrate", "--help", NULL}, NULL, &output), 0);
    free(output);
    assert_int_equal(run_essctl((const char *const[]){"no-such-command", NULL}, NULL, &output), 2);
    free(output);
    assert_int_equal(
        run_essctl((const char *const[]){"db", "status", "--bogus", NULL}, NULL, &output), 2);
    free(output);

    int fd = -1;
    char dsn[256];
    snprintf(dsn, sizeof(dsn), "postgresql://ess:hunter2-s3cret@127.0.0.1:%d/ess",
             refusing_port(&fd));
    int status = run_essctl((const char *const[]){"db", "migrate", NULL}, dsn, &output);
    close(fd);
    if (status != 1 || strstr(output, "sqlstate 08001") == NULL ||
        strstr(output, "hunter2") != NULL)
        fail_msg("unreachable server: exit %d: %s", status, output);
    int lines = 0;
    for (const char *p = output; *p != '\0'; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 1);
    free(output);
}

ESS_TEST_MAIN(NULL, teardown)
