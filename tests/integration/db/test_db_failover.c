/* libs/db on a replicated PostgreSQL (docs/high-availability.md): a primary whose commits
 * wait for one synchronous standby (tests/support/pg_pair), reached through a multi-host DSN
 * with target_session_attrs=read-write, as a deployment that must survive a lost machine
 * configures ESS_PG_DSN.
 *
 * What it proves: every commit the primary acknowledged is on the standby when the primary
 * crashes; the same db handle reconnects to the promoted standby by itself, and writing goes
 * on there. */
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

#define COMMITS 200
#define PAIR_MS 120000

static char pair_dir[160];

static const char *pg_pair_path(void)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/tests/support/pg_pair", testkit_env("ESS_SOURCE_DIR"));
    return path;
}

static void pg_pair(const char *const *args)
{
    const char *argv[8] = {pg_pair_path()};
    for (int i = 0; args[i] != NULL && i < 6; i++)
        argv[i + 1] = args[i];
    char *output = NULL;
    int status = testkit_run(argv, NULL, PAIR_MS, &output);
    if (status != 0) {
        fprintf(stderr, "%s", output != NULL ? output : "");
        free(output);
        fail_msg("pg_pair %s exited with %d", args[0], status);
    }
    free(output);
}

static int teardown(void **state)
{
    (void)state;
    if (pair_dir[0] != '\0') {
        const char *args[] = {"stop", pair_dir, NULL};
        pg_pair(args);
        pair_dir[0] = '\0';
    }
    return 0;
}

static void exec_ok(db *d, const char *sql, int nparams, const char *const *params,
                    db_result **ret_result)
{
    st_error err = {0};
    st_code code = db_exec(d, sql, nparams, params, ret_result, &err);
    if (code != ST_OK)
        fail_msg("%s: %s: %s", sql, st_name(code), err.message);
}

typedef struct insert_call {
    int value;
} insert_call;

static st_code insert_one(db *d, void *closure, st_error *err)
{
    const insert_call *call = closure;
    char value[16];
    snprintf(value, sizeof(value), "%d", call->value);
    const char *params[] = {value};
    return db_exec(d, "INSERT INTO acknowledged (id) VALUES ($1::int)", 1, params, NULL, err);
}

static void commit_ok(db *d, int value)
{
    insert_call call = {.value = value};
    st_error err = {0};
    st_code code = db_tx(d, 3, insert_one, &call, &err);
    if (code != ST_OK)
        fail_msg("commit %d: %s: %s", value, st_name(code), err.message);
}

static const char *single_value(db *d, const char *sql, char *out, size_t out_size)
{
    db_result *result = NULL;
    exec_ok(d, sql, 0, NULL, &result);
    const char *value = db_result_value(result, 0, 0);
    snprintf(out, out_size, "%s", value != NULL ? value : "(null)");
    db_result_destroy(result);
    return out;
}

ESS_TEST(every_acknowledged_commit_survives_the_primary_and_writing_goes_on_after_promotion)
{
    char unique[64];
    testkit_unique(unique, sizeof(unique));
    snprintf(pair_dir, sizeof(pair_dir), "/tmp/ess-pgpair-%s", unique);
    int primary_port = testkit_free_port(), standby_port = testkit_free_port();
    assert_true(primary_port > 0 && standby_port > 0);
    char primary_text[16], standby_text[16];
    snprintf(primary_text, sizeof(primary_text), "%d", primary_port);
    snprintf(standby_text, sizeof(standby_text), "%d", standby_port);
    const char *start[] = {"start", pair_dir, primary_text, standby_text, NULL};
    pg_pair(start);

    char dsn[256];
    snprintf(dsn, sizeof(dsn),
             "postgresql://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres"
             "?target_session_attrs=read-write",
             primary_port, standby_port);
    db_options options = {.dsn = dsn, .application_name = "ess-test-failover"};
    db *d = NULL;
    st_error err = {0};
    if (db_connect(&options, &d, &err) != ST_OK)
        fail_msg("db_connect: %s", err.message);
    char value[64];
    assert_string_equal(single_value(d, "SELECT current_setting('port')", value, sizeof(value)),
                        primary_text);
    assert_string_equal(
        single_value(d, "SELECT current_setting('synchronous_commit')", value, sizeof(value)),
        "on");
    exec_ok(d, "CREATE TABLE acknowledged (id int PRIMARY KEY)", 0, NULL, NULL);
    for (int i = 1; i <= COMMITS; i++)
        commit_ok(d, i);

    const char *failover[] = {"failover", pair_dir, NULL};
    pg_pair(failover);

    /* The same handle: its connection to the crashed primary is broken; the next statement
     * reconnects through the DSN's host list to the one that accepts writes. */
    assert_string_equal(single_value(d, "SELECT count(*) FROM acknowledged", value,
                                      sizeof(value)),
                        "200");
    assert_string_equal(single_value(d, "SELECT current_setting('port')", value, sizeof(value)),
                        standby_text);
    commit_ok(d, COMMITS + 1);
    assert_string_equal(single_value(d, "SELECT count(*) FROM acknowledged", value,
                                      sizeof(value)),
                        "201");
    db_destroy(d);
    printf("ok: %d commits acknowledged by the primary, all on the promoted standby\n",
           COMMITS);
}

ESS_TEST_MAIN(NULL, teardown)
