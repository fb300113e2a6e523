#include "notifier_harness.h"

#include "testkit.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What a failed case must not leave behind (cmocka jumps out of it). */
static char live_database[512];

int nh_teardown(void **state)
{
    (void)state;
    testkit_stop_all_tracked(SIGKILL, 5000);
    testkit_nats_stop_all();
    if (live_database[0] != '\0') {
        testkit_drop_database(live_database);
        live_database[0] = '\0';
    }
    return 0;
}

/* ---- HTTP ------------------------------------------------------------------------------- */

/* ---- processes -------------------------------------------------------------------------- */

static void start_emulator(nh_env *env)
{
    nh_proc *p = &env->emulator;
    p->port = testkit_free_port();
    assert_true(p->port > 0);
    snprintf(p->base_url, sizeof(p->base_url), "http://127.0.0.1:%d", p->port);
    snprintf(p->log_path, sizeof(p->log_path), "/tmp/ess-notifier-emu-%s.log", env->unique);
    char binary[512], listen[64], token[128];
    snprintf(binary, sizeof(binary), "%s/line-emulator", testkit_bin_dir());
    snprintf(listen, sizeof(listen), "ESS_EMULATOR_LISTEN=127.0.0.1:%d", p->port);
    snprintf(token, sizeof(token), "ESS_LINE_CHANNEL_TOKEN=%s", env->token);
    const char *argv[] = {binary, NULL};
    const char *envp[] = {listen,
                          token,
                          "ESS_LINE_CHANNEL_SECRET=notifier-test-secret",
                          "ESS_EMULATOR_WEBHOOK_URL=http://127.0.0.1:9/nowhere",
                          "ESS_EMULATOR_REDELIVERY=off",
                          "ESS_EMULATOR_WEBHOOK_TIMEOUT=200ms",
                          "ESS_EMULATOR_RECORD_MAX=100000",
                          "ESS_LOG_LEVEL=warn",
                          NULL};
    p->pid = testkit_spawn(argv, envp, p->log_path);
    assert_true(p->pid > 0);
    testkit_track(p->pid);
    char url[128];
    snprintf(url, sizeof(url), "%s/healthz", p->base_url);
    assert_true(testkit_wait_http_ok(url, 20000));
}

void nh_notifier_start(nh_env *env)
{
    nh_proc *p = &env->notifier;
    if (p->port == 0) {
        p->port = testkit_free_port();
        assert_true(p->port > 0);
        snprintf(p->base_url, sizeof(p->base_url), "http://127.0.0.1:%d", p->port);
        snprintf(p->log_path, sizeof(p->log_path), "/tmp/ess-notifier-%s.log", env->unique);
    }
    char binary[512], listen[64], token[128], api[96], nats[96], dsn[600];
    snprintf(binary, sizeof(binary), "%s/ess-notifier", testkit_bin_dir());
    snprintf(listen, sizeof(listen), "ESS_NOTIFIER_LISTEN=127.0.0.1:%d", p->port);
    snprintf(token, sizeof(token), "ESS_LINE_CHANNEL_TOKEN=%s", env->token);
    snprintf(api, sizeof(api), "ESS_LINE_API_BASE=%s", env->emulator.base_url);
    snprintf(nats, sizeof(nats), "ESS_NATS_URL=%s", env->nats.url);
    snprintf(dsn, sizeof(dsn), "ESS_PG_DSN=%s", env->pg_dsn);
    const char *argv[] = {binary, NULL};
    const char *envp[13 + NH_NOTIFIER_ENV_MAX] = {listen,
                                                  token,
                                                  "ESS_LINE_CHANNEL_SECRET=notifier-test-secret",
                                                  api,
                                                  nats,
                                                  dsn,
                                                  "ESS_DATA_KEY=" NH_DATA_KEY,
                                                  "ESS_LOG_LEVEL=debug",
                                                  "ESS_NOTIFIER_REQUEST_TIMEOUT=1s",
                                                  "ESS_NOTIFIER_BACKOFF_MIN=50ms",
                                                  "ESS_NOTIFIER_BACKOFF_MAX=500ms",
                                                  "ESS_DRAIN_TIMEOUT=6s"};
    size_t n = 12;
    for (size_t i = 0; env->notifier_env[i] != NULL && i < NH_NOTIFIER_ENV_MAX; i++)
        envp[n++] = env->notifier_env[i];
    envp[n] = NULL;
    p->pid = testkit_spawn(argv, envp, p->log_path);
    assert_true(p->pid > 0);
    testkit_track(p->pid);
    char url[128];
    snprintf(url, sizeof(url), "%s/readyz", p->base_url);
    if (!testkit_wait_http_ok(url, 30000)) {
        char *log = testkit_read_file(p->log_path);
        fail_msg("ess-notifier not ready; its log:\n%s", log != NULL ? log : "(none)");
    }
}

int nh_notifier_stop(nh_env *env, int sig)
{
    int code = testkit_stop_tracked(env->notifier.pid, sig, 20000);
    env->notifier.pid = 0;
    return code;
}

void nh_start(nh_env *env, bool fresh_database, bool start_notifier,
              const char *const *notifier_env)
{
    memset(env, 0, sizeof(*env));
    testkit_unique(env->unique, sizeof(env->unique));
    snprintf(env->token, sizeof(env->token), "token-%s", env->unique);
    for (size_t i = 0; notifier_env != NULL && notifier_env[i] != NULL; i++) {
        assert_true(i < NH_NOTIFIER_ENV_MAX);
        env->notifier_env[i] = notifier_env[i];
    }
    if (fresh_database) {
        testkit_fresh_database(true, env->pg_dsn, sizeof(env->pg_dsn));
        snprintf(live_database, sizeof(live_database), "%s", env->pg_dsn);
        env->own_database = true;
    } else {
        snprintf(env->pg_dsn, sizeof(env->pg_dsn), "%s", testkit_env("ESS_TEST_PG_DSN"));
    }
    testkit_nats_start(&env->nats, "notifier");
    start_emulator(env);

    bus_options options = {.url = env->nats.url, .client_name = "ess-test-notifier"};
    st_error err = {0};
    if (bus_connect(&options, &env->bus, &err) != ST_OK)
        fail_msg("bus_connect: %s", err.message);
    bus_registry *registry = NULL;
    assert_int_equal(bus_registry_builtin(&registry, &err), ST_OK);
    st_code code = bus_ensure(env->bus, registry, &err);
    bus_registry_destroy(registry);
    if (code != ST_OK)
        fail_msg("bus_ensure: %s", err.message);
    assert_int_equal(natsConnection_ConnectTo(&env->nc, env->nats.url), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&env->js, env->nc, NULL), NATS_OK);
    if (start_notifier)
        nh_notifier_start(env);
}

void nh_stop(nh_env *env)
{
    if (env->notifier.pid > 0)
        nh_notifier_stop(env, SIGTERM);
    if (env->emulator.pid > 0)
        testkit_stop_tracked(env->emulator.pid, SIGTERM, 10000);
    bus_destroy(env->bus);
    jsCtx_Destroy(env->js);
    natsConnection_Destroy(env->nc);
    testkit_nats_stop(&env->nats);
    if (env->own_database) {
        testkit_drop_database(env->pg_dsn);
        live_database[0] = '\0';
    }
    if (env->notifier.log_path[0] != '\0')
        unlink(env->notifier.log_path);
    unlink(env->emulator.log_path);
    memset(env, 0, sizeof(*env));
}

/* ---- the emulator ------------------------------------------------------------------------ */

cJSON *nh_emu(nh_env *env, const char *method, const char *path, const char *body, long want_status)
{
    char url[512];
    snprintf(url, sizeof(url), "%s/_emulator%s", env->emulator.base_url, path);
    const char *headers[] = {"Content-Type: application/json", NULL};
    long status = 0;
    char *answer = NULL;
    int rc = testkit_http(method, url, headers, body, body != NULL ? strlen(body) : 0, 10000,
                          &status, &answer);
    if (rc != 0 || status != want_status)
        fail_msg("%s %s: status %ld (want %ld): %s", method, path, status, want_status,
                 answer != NULL ? answer : "");
    cJSON *root = answer != NULL ? cJSON_Parse(answer) : NULL;
    free(answer);
    return root;
}

static void copy_member(const cJSON *root, const char *name, char *out, size_t size)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!cJSON_IsString(item))
        fail_msg("emulator answer without %s", name);
    snprintf(out, size, "%s", item->valuestring);
}

void nh_emu_user(nh_env *env, const char *display_name, char *user_id)
{
    char body[256], path[128];
    snprintf(body, sizeof(body), "{\"displayName\":\"%s\"}", display_name);
    cJSON *user = nh_emu(env, "POST", "/users", body, 201);
    copy_member(user, "userId", user_id, 40);
    cJSON_Delete(user);
    snprintf(path, sizeof(path), "/users/%s/follow", user_id);
    cJSON_Delete(nh_emu(env, "POST", path, NULL, 202));
}

void nh_emu_group(nh_env *env, const char *name, const char *member, char *group_id)
{
    char body[512], path[128];
    snprintf(body, sizeof(body), "{\"groupName\":\"%s\",\"members\":[\"%s\"]}", name, member);
    cJSON *group = nh_emu(env, "POST", "/groups", body, 201);
    copy_member(group, "groupId", group_id, 40);
    cJSON_Delete(group);
    snprintf(path, sizeof(path), "/groups/%s/join", group_id);
    cJSON_Delete(nh_emu(env, "POST", path, NULL, 202));
}

void nh_emu_reply_token(nh_env *env, const char *user_id, char *token)
{
    char path[128];
    snprintf(path, sizeof(path), "/users/%s/text", user_id);
    cJSON *acted = nh_emu(env, "POST", path, "{\"text\":\"ช่วยด้วย\"}", 202);
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(acted, "events");
    copy_member(cJSON_GetArrayItem(events, 0), "replyToken", token, 128);
    cJSON_Delete(acted);
}

void nh_emu_fault(nh_env *env, const char *fault_json)
{
    cJSON_Delete(nh_emu(env, "POST", "/faults", fault_json, 201));
}

cJSON *nh_emu_messages(nh_env *env, const char *to)
{
    char path[160];
    snprintf(path, sizeof(path), "/messages?limit=10000%s%s", to[0] != '\0' ? "&to=" : "", to);
    cJSON *root = nh_emu(env, "GET", path, NULL, 200);
    cJSON *messages = cJSON_DetachItemFromObjectCaseSensitive(root, "messages");
    cJSON_Delete(root);
    assert_non_null(messages);
    return messages;
}

size_t nh_emu_message_count(nh_env *env, const char *to)
{
    cJSON *messages = nh_emu_messages(env, to);
    size_t count = (size_t)cJSON_GetArraySize(messages);
    cJSON_Delete(messages);
    return count;
}

/* ---- NATS ------------------------------------------------------------------------------- */

void nh_publish(nh_env *env, const char *subject, const char *json, const char *msg_id)
{
    st_error err = {0};
    if (bus_publish(env->bus, subject, json, strlen(json), msg_id, NULL, &err) != ST_OK)
        fail_msg("publish on %s: %s", subject, err.message);
}

void nh_publish_many(nh_env *env, size_t count,
                     void (*make)(size_t i, char *subject, char *body, size_t body_size,
                                  char *msg_id, void *closure),
                     void *closure)
{
    st_error err = {0};
    for (size_t start = 0; start < count; start += 200) {
        bus_batch *batch = NULL;
        assert_int_equal(bus_batch_create(env->bus, &batch, &err), ST_OK);
        for (size_t i = start; i < count && i < start + 200; i++) {
            char subject[BUS_SUBJECT_MAX], body[4096], msg_id[BUS_MSG_ID_MAX];
            make(i, subject, body, sizeof(body), msg_id, closure);
            if (bus_batch_add(batch, subject, body, strlen(body), msg_id, &err) != ST_OK)
                fail_msg("batch add: %s", err.message);
        }
        bus_batch_result result = {0};
        if (bus_batch_wait(batch, 10000, &result, &err) != ST_OK)
            fail_msg("batch wait: %s", err.message);
        bus_batch_destroy(batch);
    }
}

bool nh_consumer_settled(nh_env *env, const char *durable)
{
    const bus_consumer_def *def = NULL;
    bus_registry *registry = NULL;
    assert_int_equal(bus_registry_builtin(&registry, NULL), ST_OK);
    def = bus_registry_consumer(registry, durable);
    assert_non_null(def);
    jsConsumerInfo *info = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetConsumerInfo(&info, env->js, def->stream, durable, NULL, &jerr);
    bus_registry_destroy(registry);
    if (s != NATS_OK)
        return false;
    bool settled = info->NumAckPending == 0 && info->NumPending == 0;
    jsConsumerInfo_Destroy(info);
    return settled;
}

typedef struct settle_probe {
    nh_env *env;
    const char *durable;
} settle_probe;

static bool settled(void *closure)
{
    settle_probe *probe = closure;
    return nh_consumer_settled(probe->env, probe->durable);
}

void nh_wait_settled(nh_env *env, const char *durable, int64_t timeout_ms)
{
    settle_probe probe = {env, durable};
    if (!testkit_wait_until(settled, &probe, timeout_ms))
        fail_msg("consumer %s did not settle within %lld ms", durable, (long long)timeout_ms);
}

uint64_t nh_dlq_count(nh_env *env, const char *subject)
{
    jsOptions options;
    jsOptions_Init(&options);
    options.Stream.Info.SubjectsFilter = subject;
    jsStreamInfo *info = NULL;
    jsErrCode jerr = 0;
    assert_int_equal(js_GetStreamInfo(&info, env->js, "DLQ", &options, &jerr), NATS_OK);
    uint64_t count = 0;
    if (info->State.Subjects != NULL)
        for (int i = 0; i < info->State.Subjects->Count; i++)
            if (strcmp(info->State.Subjects->List[i].Subject, subject) == 0)
                count += info->State.Subjects->List[i].Msgs;
    jsStreamInfo_Destroy(info);
    return count;
}

natsMsg *nh_dlq_last(nh_env *env, const char *subject)
{
    natsMsg *msg = NULL;
    jsErrCode jerr = 0;
    if (js_GetLastMsg(&msg, env->js, "DLQ", subject, NULL, &jerr) != NATS_OK)
        return NULL;
    return msg;
}

/* ---- the notifier ------------------------------------------------------------------------ */

double nh_metric(nh_env *env, const char *series)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/metrics", env->notifier.base_url);
    long status = 0;
    char *text = NULL;
    if (testkit_http("GET", url, NULL, NULL, 0, 5000, &status, &text) != 0 || status != 200) {
        free(text);
        return 0;
    }
    double value = 0;
    size_t len = strlen(series);
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        if (strncmp(line, series, len) == 0 && line[len] == ' ') {
            value = strtod(line + len + 1, NULL);
            break;
        }
        line = end != NULL ? end + 1 : NULL;
    }
    free(text);
    return value;
}

typedef struct metric_probe {
    nh_env *env;
    const char *series;
    double want;
} metric_probe;

static bool metric_reached(void *closure)
{
    metric_probe *probe = closure;
    return nh_metric(probe->env, probe->series) >= probe->want;
}

void nh_wait_metric(nh_env *env, const char *series, double want, int64_t timeout_ms)
{
    metric_probe probe = {env, series, want};
    if (!testkit_wait_until(metric_reached, &probe, timeout_ms))
        fail_msg("%s stayed below %g (now %g)", series, want, nh_metric(env, series));
}

char *nh_notifier_log(nh_env *env)
{
    return testkit_read_file(env->notifier.log_path);
}
