#include "testkit.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct probe {
    char path[512];
    char log_path[512];
    char listen_env[64];
    char base_url[64];
    int pid;
} probe;

static void probe_paths(probe *p)
{
    snprintf(p->path, sizeof(p->path), "%s/../tests/ess-probe", testkit_bin_dir());
    char unique[64];
    testkit_unique(unique, sizeof(unique));
    snprintf(p->log_path, sizeof(p->log_path), "/tmp/ess-probe-%s.log", unique);
    int port = testkit_free_port();
    assert_true(port > 0);
    snprintf(p->listen_env, sizeof(p->listen_env), "ESS_PROBE_LISTEN=127.0.0.1:%d", port);
    snprintf(p->base_url, sizeof(p->base_url), "http://127.0.0.1:%d", port);
}

static long get_status(const probe *p, const char *path, char **ret_body)
{
    char url[128];
    snprintf(url, sizeof(url), "%s%s", p->base_url, path);
    long status = 0;
    testkit_http("GET", url, NULL, NULL, 0, 2000, &status, ret_body);
    return status;
}

typedef struct wait_status {
    const probe *p;
    const char *path;
    long want;
} wait_status;

static bool status_is(void *closure)
{
    wait_status *w = closure;
    return get_status(w->p, w->path, NULL) == w->want;
}

ESS_TEST(config_problems_are_reported_at_once)
{
    (void)state;
    probe p;
    probe_paths(&p);
    const char *argv[] = {p.path, NULL};
    const char *env[] = {"PROBE_COUNT=99", "ESS_LOG_LEVEL=loud", "ESS_PROBE_LISTEN=nowhere",
                         "PROBE_SECRET=", "ESS_DRAIN_TIMEOUT=forever", "PROBE_REQUIRED=",
                         NULL};
    char *output = NULL;
    int code = testkit_run(argv, env, 10000, &output);
    assert_int_equal(code, 2);
    /* One message naming every problem. */
    size_t lines = 0;
    for (const char *c = output; *c != '\0'; c++)
        lines += *c == '\n';
    assert_int_equal(lines, 1);
    const char *names[] = {"PROBE_COUNT", "ESS_LOG_LEVEL", "ESS_PROBE_LISTEN", "PROBE_SECRET",
                           "ESS_DRAIN_TIMEOUT", "PROBE_REQUIRED", "6 problems", "cfg.invalid"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strstr(output, names[i]) == NULL)
            fail_msg("'%s' missing from: %s", names[i], output);
    }
    free(output);
}

ESS_TEST(secret_is_never_printed)
{
    (void)state;
    probe p;
    probe_paths(&p);
    const char *help_argv[] = {p.path, "--help", NULL};
    const char *env[] = {"PROBE_SECRET=hunter2-SECRET", "PROBE_COUNT=0", NULL};
    char *output = NULL;
    assert_int_equal(testkit_run(help_argv, env, 10000, &output), 0);
    assert_non_null(strstr(output, "PROBE_SECRET"));
    assert_non_null(strstr(output, "(secret)"));
    assert_non_null(strstr(output, "ESS_PROBE_LISTEN"));
    assert_null(strstr(output, "hunter2"));
    free(output);
    const char *argv[] = {p.path, NULL};
    assert_int_equal(testkit_run(argv, env, 10000, &output), 2);
    assert_non_null(strstr(output, "PROBE_COUNT"));
    assert_null(strstr(output, "hunter2"));
    free(output);
}

ESS_TEST(serves_health_and_drains_on_sigterm)
{
    (void)state;
    probe p;
    probe_paths(&p);
    const char *argv[] = {p.path, NULL};
    const char *env[] = {p.listen_env, "PROBE_REQUIRED=x", "PROBE_SECRET=s", NULL};
    p.pid = testkit_spawn(argv, env, p.log_path);
    assert_true(p.pid > 0);
    wait_status alive = {&p, "/healthz", 200};
    assert_true(testkit_wait_until(status_is, &alive, 10000));
    wait_status ready = {&p, "/readyz", 200};
    assert_true(testkit_wait_until(status_is, &ready, 10000));
    char *body = NULL;
    assert_int_equal(get_status(&p, "/metrics", &body), 200);
    assert_non_null(strstr(body, "# TYPE ess_up gauge\ness_up 1\n"));
    assert_non_null(strstr(body, "ess_ready 1\n"));
    free(body);
    assert_int_equal(get_status(&p, "/probe", NULL), 200);
    assert_int_equal(get_status(&p, "/healthz/extra", NULL), 404);
    assert_int_equal(get_status(&p, "/nothing", NULL), 404);
    long status = 0;
    char url[128];
    snprintf(url, sizeof(url), "%s/healthz", p.base_url);
    testkit_http("POST", url, NULL, "x", 1, 2000, &status, NULL);
    assert_int_equal(status, 405);

    assert_int_equal(testkit_stop(p.pid, SIGTERM, 15000), 0);
    char *log = testkit_read_file(p.log_path);
    assert_non_null(log);
    assert_non_null(strstr(log, "\"code\":\"probe.stop_hook\""));
    assert_non_null(strstr(log, "\"code\":\"svc.stopped\""));
    free(log);
    unlink(p.log_path);
}

ESS_TEST(readiness_follows_nats)
{
    (void)state;
    probe p;
    probe_paths(&p);
    testkit_nats nats;
    testkit_nats_prepare(&nats, "probe"); /* its port and store; started below */
    char nats_env[96];
    snprintf(nats_env, sizeof(nats_env), "ESS_NATS_URL=%s", nats.url);
    const char *argv[] = {p.path, NULL};
    const char *env[] = {p.listen_env, nats_env, "PROBE_NEEDS_NATS=1", "PROBE_REQUIRED=x",
                         "PROBE_SECRET=s", NULL};
    p.pid = testkit_spawn(argv, env, p.log_path);
    assert_true(p.pid > 0);
    /* Alive but not ready while NATS is down. */
    wait_status alive = {&p, "/healthz", 200};
    assert_true(testkit_wait_until(status_is, &alive, 10000));
    char *body = NULL;
    assert_int_equal(get_status(&p, "/readyz", &body), 503);
    assert_non_null(strstr(body, "NATS"));
    free(body);

    testkit_nats_restart(&nats);
    wait_status ready = {&p, "/readyz", 200};
    bool became_ready = testkit_wait_until(status_is, &ready, 20000);

    /* And not ready again when NATS goes away. */
    testkit_nats_halt(&nats);
    wait_status unready = {&p, "/readyz", 503};
    bool became_unready = testkit_wait_until(status_is, &unready, 20000);
    int code = testkit_stop(p.pid, SIGTERM, 15000);
    assert_int_equal(testkit_nats_stop(&nats), 0);
    assert_true(became_ready);
    assert_true(became_unready);
    assert_int_equal(code, 0);
    unlink(p.log_path);
}

ESS_TEST(readiness_follows_postgres)
{
    (void)state;
    probe p;
    probe_paths(&p);
    char pg_env[512];
    snprintf(pg_env, sizeof(pg_env), "ESS_PG_DSN=%s", testkit_env("ESS_TEST_PG_DSN"));
    const char *argv[] = {p.path, NULL};
    const char *env[] = {p.listen_env, pg_env, "PROBE_NEEDS_PG=1", "PROBE_REQUIRED=x",
                         "PROBE_SECRET=s", NULL};
    p.pid = testkit_spawn(argv, env, p.log_path);
    assert_true(p.pid > 0);
    wait_status ready = {&p, "/readyz", 200};
    bool became_ready = testkit_wait_until(status_is, &ready, 20000);
    int code = testkit_stop(p.pid, SIGTERM, 15000);
    assert_true(became_ready);
    assert_int_equal(code, 0);
    unlink(p.log_path);
}

ESS_TEST_MAIN(NULL, NULL)
