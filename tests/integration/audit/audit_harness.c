#include "audit_harness.h"

#include "testkit.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const audited_streams[] = {"LINE_IN", "ESS", "LINE_OUT", "DLQ"};

void env_open(audit_env *e, bool with_nats)
{
    memset(e, 0, sizeof(*e));
    testkit_unique(e->unique, sizeof(e->unique));
    testkit_fresh_database(true, e->dsn, sizeof(e->dsn));
    db_options options = {.dsn = e->dsn, .application_name = "audit-test",
                          .statement_timeout_ms = 60000};
    st_error err = {0};
    if (db_connect(&options, &e->db, &err) != ST_OK)
        fail_msg("db_connect: %s", err.message);
    if (!with_nats)
        return;
    bus_options bo = {.url = testkit_env("ESS_TEST_NATS_URL"), .client_name = "audit-test"};
    if (bus_connect(&bo, &e->bus, &err) != ST_OK)
        fail_msg("bus_connect: %s", err.message);
    bus_registry *registry = NULL;
    assert_int_equal(bus_registry_builtin(&registry, &err), ST_OK);
    for (size_t i = 0; i < sizeof(audited_streams) / sizeof(audited_streams[0]); i++) {
        const bus_stream_def *def = bus_registry_stream(registry, audited_streams[i]);
        assert_non_null(def);
        if (bus_ensure_stream(e->bus, def, &err) != ST_OK)
            fail_msg("ensure %s: %s", audited_streams[i], err.message);
    }
    bus_registry_destroy(registry);
}

void env_close(audit_env *e)
{
    bus_destroy(e->bus);
    db_destroy(e->db);
    e->bus = NULL;
    e->db = NULL;
    if (e->dsn[0] != '\0')
        testkit_drop_database(e->dsn);
}

st_code db_try(audit_env *e, const char *sql, int nparams, const char *const *params,
               st_error *err)
{
    return db_exec(e->db, sql, nparams, params, NULL, err);
}

void db_ok(audit_env *e, const char *sql)
{
    st_error err = {0};
    if (db_exec(e->db, sql, 0, NULL, NULL, &err) != ST_OK)
        fail_msg("%s: %s (%s)", sql, err.message, err.cause);
}

int64_t db_int(audit_env *e, const char *sql, const char *param)
{
    db_result *r = NULL;
    st_error err = {0};
    const char *params[1] = {param};
    if (db_exec(e->db, sql, param != NULL ? 1 : 0, params, &r, &err) != ST_OK)
        fail_msg("%s: %s (%s)", sql, err.message, err.cause);
    const char *value = db_result_rows(r) > 0 ? db_result_value(r, 0, 0) : NULL;
    int64_t n = value != NULL ? strtoll(value, NULL, 10) : 0;
    db_result_destroy(r);
    return n;
}

void publish(audit_env *e, const char *subject, const char *msg_id, const char *payload)
{
    st_error err = {0};
    bus_publish_result result = {0};
    if (bus_publish(e->bus, subject, payload, strlen(payload), msg_id, &result, &err) != ST_OK)
        fail_msg("publish: %s", err.message);
}

int run_essctl(audit_env *e, const char *dsn, const char *const *args, const char *extra_env,
               char **ret_output)
{
    char binary[512], env_dsn[1024];
    snprintf(binary, sizeof(binary), "%s/essctl", testkit_bin_dir());
    snprintf(env_dsn, sizeof(env_dsn), "ESS_PG_DSN=%s", dsn != NULL ? dsn : e->dsn);
    const char *argv[16] = {binary};
    size_t n = 1;
    for (size_t i = 0; args[i] != NULL && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    const char *env[] = {env_dsn, "ESS_DATA_KEY=" TEST_DATA_KEY, extra_env, NULL};
    char *output = NULL;
    int code = testkit_run(argv, env, 120000, &output);
    if (ret_output != NULL)
        *ret_output = output;
    else
        free(output);
    return code;
}

typedef struct ready_probe {
    const char *url;
} ready_probe;

static bool is_ready(void *closure)
{
    ready_probe *probe = closure;
    long status = 0;
    testkit_http("GET", probe->url, NULL, NULL, 0, 2000, &status, NULL);
    return status == 200;
}

void audit_start(audit_proc *p, audit_env *e, const char *prefix, const char *const *extra_env)
{
    int port = testkit_free_port();
    assert_true(port > 0);
    char unique[40];
    testkit_unique(unique, sizeof(unique));
    snprintf(p->log_path, sizeof(p->log_path), "/tmp/ess-audit-%s.log", unique);
    snprintf(p->base_url, sizeof(p->base_url), "http://127.0.0.1:%d", port);
    const char *env[12] = {NULL};
    size_t n = 0;
    snprintf(p->env_text[0], sizeof(p->env_text[0]), "ESS_PG_DSN=%s", e->dsn);
    snprintf(p->env_text[1], sizeof(p->env_text[1]), "ESS_NATS_URL=%s",
             testkit_env("ESS_TEST_NATS_URL"));
    snprintf(p->env_text[2], sizeof(p->env_text[2]), "ESS_AUDIT_LISTEN=127.0.0.1:%d", port);
    snprintf(p->env_text[3], sizeof(p->env_text[3]), "ESS_AUDIT_DURABLE_PREFIX=%s", prefix);
    for (int i = 0; i < 4; i++)
        env[n++] = p->env_text[i];
    env[n++] = "ESS_DATA_KEY=" TEST_DATA_KEY;
    env[n++] = "ESS_LOG_LEVEL=debug";
    for (size_t i = 0; extra_env != NULL && extra_env[i] != NULL && n < 11; i++)
        env[n++] = extra_env[i];
    env[n] = NULL;
    char binary[512];
    snprintf(binary, sizeof(binary), "%s/ess-audit", testkit_bin_dir());
    const char *argv[] = {binary, NULL};
    p->pid = testkit_spawn(argv, env, p->log_path);
    assert_true(p->pid > 0);
    char url[96];
    snprintf(url, sizeof(url), "%s/readyz", p->base_url);
    ready_probe probe = {url};
    if (!testkit_wait_until(is_ready, &probe, 30000)) {
        char *log = testkit_read_file(p->log_path);
        audit_kill(p);
        fail_msg("ess-audit not ready: %s", log != NULL ? log : "(no log)");
    }
}

int audit_stop(audit_proc *p)
{
    int code = testkit_stop(p->pid, SIGTERM, 30000);
    p->pid = 0;
    return code;
}

void audit_kill(audit_proc *p)
{
    if (p->pid > 0)
        testkit_stop(p->pid, SIGKILL, 10000);
    p->pid = 0;
}

typedef struct count_probe {
    audit_env *e;
    const char *sql;
    const char *param;
    int64_t want;
    int64_t last;
} count_probe;

static bool count_reached(void *closure)
{
    count_probe *probe = closure;
    probe->last = db_int(probe->e, probe->sql, probe->param);
    return probe->last >= probe->want;
}

int64_t wait_count(audit_env *e, const char *sql, const char *param, int64_t want,
                   int64_t timeout_ms)
{
    count_probe probe = {e, sql, param, want, 0};
    testkit_wait_until(count_reached, &probe, timeout_ms);
    return probe.last;
}

bool file_contains(const char *path, const char *needle)
{
    FILE *file = fopen(path, "rb");
    if (file == NULL)
        return false;
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    char *data = malloc((size_t)size + 1);
    size_t got = fread(data, 1, (size_t)size, file);
    fclose(file);
    size_t n = strlen(needle);
    bool found = false;
    for (size_t i = 0; !found && i + n <= got; i++)
        found = memcmp(data + i, needle, n) == 0;
    free(data);
    return found;
}
