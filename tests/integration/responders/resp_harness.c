#include "resp_harness.h"

#include "testkit.h"
#include "testkit_line.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHANNEL_TOKEN "responders-test-token"

rs_stack rs;

/* ---- processes ---------------------------------------------------------------------------- */

static void proc_init(rs_stack *s, rs_proc *p, const char *binary, const char *listen_var)
{
    p->binary = binary;
    p->listen_var = listen_var;
    p->port = testkit_free_port();
    assert_true(p->port > 0);
    snprintf(p->base_url, sizeof(p->base_url), "http://127.0.0.1:%d", p->port);
    snprintf(p->log_path, sizeof(p->log_path), "/tmp/ess-resp-%s-%s.log", s->token, binary);
}

void rs_proc_start(rs_stack *s, rs_proc *p, const char *const *env)
{
    if (env != NULL) {
        p->env_count = 0;
        for (size_t i = 0; env[i] != NULL && p->env_count < 12; i++)
            snprintf(p->env[p->env_count++], sizeof(p->env[0]), "%s", env[i]);
    }
    char nats_env[128], pg_env[600], listen_env[96];
    snprintf(nats_env, sizeof(nats_env), "ESS_NATS_URL=%s", s->nats.url);
    snprintf(pg_env, sizeof(pg_env), "ESS_PG_DSN=%s", s->dsn);
    snprintf(listen_env, sizeof(listen_env), "%s=127.0.0.1:%d", p->listen_var, p->port);
    const char *all[24] = {nats_env, pg_env, listen_env, "ESS_LOG_LEVEL=debug"};
    size_t n = 4;
    for (size_t i = 0; i < p->env_count && n < 23; i++)
        all[n++] = p->env[i];
    all[n] = NULL;
    char binary[512];
    snprintf(binary, sizeof(binary), "%s/%s", testkit_bin_dir(), p->binary);
    const char *argv[] = {binary, NULL};
    p->pid = testkit_spawn(argv, all, p->log_path);
    assert_true(p->pid > 0);
    char url[128];
    snprintf(url, sizeof(url), "%s%s", p->base_url,
             strcmp(p->binary, "line-emulator") == 0 ? "/healthz" : "/readyz");
    if (!testkit_wait_http_ok(url, 60000)) {
        char *log = testkit_read_file(p->log_path);
        fail_msg("%s not ready: %.2000s", p->binary, log != NULL ? log : "(no log)");
    }
}

int rs_proc_stop(rs_proc *p, int sig)
{
    int code = p->pid > 0 ? testkit_stop(p->pid, sig, 20000) : -1;
    p->pid = 0;
    return code;
}

int rs_proc_wait_exit(rs_proc *p, int64_t timeout_ms)
{
    int status = testkit_wait_exit(p->pid, timeout_ms);
    if (status < 0)
        fail_msg("%s did not die", p->binary);
    p->pid = 0;
    return status;
}

char *rs_essctl(rs_stack *s, const char *const *args)
{
    char binary[512], dsn_env[600];
    snprintf(binary, sizeof(binary), "%s/essctl", testkit_bin_dir());
    snprintf(dsn_env, sizeof(dsn_env), "ESS_PG_DSN=%s", s->dsn);
    const char *argv[24] = {binary};
    size_t n = 1;
    for (size_t i = 0; args[i] != NULL && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    const char *env[] = {dsn_env, "ESS_DATA_KEY=" RS_DATA_KEY, NULL};
    char *output = NULL;
    int code = testkit_run(argv, env, 120000, &output);
    if (code != 0)
        fail_msg("essctl %s %s exited %d: %s", args[0], args[1] != NULL ? args[1] : "", code,
                 output != NULL ? output : "");
    return output;
}

void rs_invite(rs_stack *s, const char *const *args, char *ret_code, size_t size)
{
    const char *all[20] = {"team", "invite", "--json"};
    size_t n = 3;
    for (size_t i = 0; args[i] != NULL && n < 19; i++)
        all[n++] = args[i];
    all[n] = NULL;
    char *output = rs_essctl(s, all);
    cJSON *json = cJSON_Parse(output);
    const cJSON *code = cJSON_GetObjectItem(json, "code");
    if (!cJSON_IsString(code))
        fail_msg("team invite printed no code: %s", output);
    snprintf(ret_code, size, "%s", code->valuestring);
    cJSON_Delete(json);
    free(output);
}

void rs_start(rs_stack *s, const char *const *conversation_env)
{
    memset(s, 0, sizeof(*s));
    testkit_unique(s->token, sizeof(s->token));
    testkit_fresh_database(true, s->dsn, sizeof(s->dsn));
    db_options db_opts = {.dsn = s->dsn, .application_name = "ess-test-responders"};
    st_error err = {0};
    if (db_connect(&db_opts, &s->d, &err) != ST_OK)
        fail_msg("db_connect: %s", err.message);
    const char *import[] = {"geo", "import", NULL};
    free(rs_essctl(s, import));
    testkit_nats_start(&s->nats, "resp");
    assert_int_equal(natsConnection_ConnectTo(&s->nc, s->nats.url), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&s->js, s->nc, NULL), NATS_OK);
    snprintf(s->secret, sizeof(s->secret), "secret-%s", s->token);

    proc_init(s, &s->emulator, "line-emulator", "ESS_EMULATOR_LISTEN");
    proc_init(s, &s->ingress, "ess-ingress", "ESS_INGRESS_LISTEN");
    proc_init(s, &s->conversation, "ess-conversation", "ESS_CONVERSATION_LISTEN");
    proc_init(s, &s->notifier, "ess-notifier", "ESS_NOTIFIER_LISTEN");
    proc_init(s, &s->georouter, "ess-georouter", "ESS_GEOROUTER_LISTEN");
    proc_init(s, &s->audit, "ess-audit", "ESS_AUDIT_LISTEN");
    char secret_env[128], webhook_env[160], api_env[128];
    snprintf(secret_env, sizeof(secret_env), "ESS_LINE_CHANNEL_SECRET=%s", s->secret);
    snprintf(webhook_env, sizeof(webhook_env), "ESS_EMULATOR_WEBHOOK_URL=%s/line/webhook",
             s->ingress.base_url);
    snprintf(api_env, sizeof(api_env), "ESS_LINE_API_BASE=%s", s->emulator.base_url);

    const char *ingress_env[] = {secret_env, NULL};
    rs_proc_start(s, &s->ingress, ingress_env);
    const char *georouter_env[] = {"ESS_GEO_RELOAD_PERIOD=1s", "ESS_DATA_KEY=" RS_DATA_KEY, NULL};
    rs_proc_start(s, &s->georouter, georouter_env);
    const char *notifier_env[] = {api_env,
                                  secret_env,
                                  "ESS_LINE_CHANNEL_TOKEN=" CHANNEL_TOKEN,
                                  "ESS_DATA_KEY=" RS_DATA_KEY,
                                  "ESS_NOTIFIER_BACKOFF_MIN=100ms",
                                  "ESS_NOTIFIER_BACKOFF_MAX=1s",
                                  NULL};
    rs_proc_start(s, &s->notifier, notifier_env);
    const char *conversation_base[12] = {"ESS_DATA_KEY=" RS_DATA_KEY,
                                         "ESS_ESCALATION_SCAN_INTERVAL=200ms"};
    size_t n = 2;
    for (size_t i = 0; conversation_env != NULL && conversation_env[i] != NULL && n < 11; i++)
        conversation_base[n++] = conversation_env[i];
    conversation_base[n] = NULL;
    rs_proc_start(s, &s->conversation, conversation_base);
    const char *emulator_env[] = {secret_env,
                                  webhook_env,
                                  "ESS_LINE_CHANNEL_TOKEN=" CHANNEL_TOKEN,
                                  "ESS_EMULATOR_REDELIVERY_INTERVAL=200ms",
                                  "ESS_EMULATOR_REDELIVERY_MAX_INTERVAL=1s",
                                  NULL};
    rs_proc_start(s, &s->emulator, emulator_env);
}

void rs_audit_start(rs_stack *s, const char *const *extra_env)
{
    /* The case's own nats-server: the registry's durable names. No retention run: the
     * test's DSN is the superuser's, and retention is not what a responders case checks. */
    const char *env[12] = {"ESS_DATA_KEY=" RS_DATA_KEY, "ESS_RETENTION_INTERVAL=0"};
    size_t n = 2;
    for (size_t i = 0; extra_env != NULL && extra_env[i] != NULL && n < 11; i++)
        env[n++] = extra_env[i];
    env[n] = NULL;
    rs_proc_start(s, &s->audit, env);
}

static void stop_and_forget(rs_proc *p)
{
    if (p->pid > 0)
        testkit_stop(p->pid, SIGKILL, 5000);
    p->pid = 0;
    /* ESS_TEST_KEEP_LOGS=1 keeps them for a look after a failure. */
    const char *keep = getenv("ESS_TEST_KEEP_LOGS");
    if (p->log_path[0] != '\0' && (keep == NULL || strcmp(keep, "1") != 0))
        unlink(p->log_path);
}

int rs_teardown(void **state)
{
    (void)state;
    rs_stack *s = &rs;
    rs_proc *procs[] = {&s->emulator, &s->ingress,   &s->conversation,
                        &s->notifier, &s->georouter, &s->audit};
    for (size_t i = 0; i < sizeof(procs) / sizeof(procs[0]); i++)
        stop_and_forget(procs[i]);
    jsCtx_Destroy(s->js);
    natsConnection_Destroy(s->nc);
    s->js = NULL;
    s->nc = NULL;
    testkit_nats_stop(&s->nats);
    db_destroy(s->d);
    s->d = NULL;
    if (s->dsn[0] != '\0')
        testkit_drop_database(s->dsn);
    s->dsn[0] = '\0';
    return 0;
}

/* ---- emulator (tests/support/testkit_line.h) ----------------------------------------------- */

cJSON *rs_emu(rs_stack *s, const char *method, const char *path, const char *body, long want_status)
{
    return testkit_line_call(s->emulator.base_url, method, path, body, want_status);
}

void rs_user(rs_stack *s, const char *display_name, const char *language, char *ret_id, size_t size)
{
    testkit_line_user(s->emulator.base_url, display_name, language, ret_id, size);
}

void rs_group(rs_stack *s, const char *name, const char *const *members, char *ret_id, size_t size)
{
    testkit_line_group(s->emulator.base_url, name, members, ret_id, size);
    rs_wait_bot(s, ret_id, "/ess bind", 1);
}

void rs_act(rs_stack *s, const char *user, const char *action, const char *body, char *ret_event_id,
            size_t size)
{
    testkit_line_act(s->emulator.base_url, user, action, body, ret_event_id, size, NULL);
}

void rs_bind(rs_stack *s, const char *officer, const char *group, const char *code)
{
    size_t before = rs_bot_count(s, group, "ผูกกลุ่มนี้กับ");
    char body[200];
    snprintf(body, sizeof(body), "{\"text\":\"/ess bind %s\",\"groupId\":\"%s\"}", code, group);
    rs_act(s, officer, "text", body, NULL, 0);
    rs_wait_bot(s, group, "ผูกกลุ่มนี้กับ", before + 1);
}

/* ---- reading chats -------------------------------------------------------------------------- */

size_t rs_bot_count(rs_stack *s, const char *chat, const char *needle)
{
    return testkit_line_bot_count(s->emulator.base_url, chat, needle);
}

int64_t rs_wait_bot(rs_stack *s, const char *chat, const char *needle, size_t count)
{
    return testkit_line_wait_bot(s->emulator.base_url, chat, needle, count, RS_WAIT_MS);
}

char *rs_last_bot_json(rs_stack *s, const char *chat, const char *needle)
{
    return testkit_line_last_bot(s->emulator.base_url, chat, needle);
}

int64_t rs_report(rs_stack *s, const char *citizen, double lat, double lon, const char *phone)
{
    size_t before = rs_bot_count(s, citizen, NULL);
    size_t cases_before = rs_bot_count(s, citizen, "ESS-");
    rs_act(s, citizen, "follow", "{}", NULL, 0);
    rs_wait_bot(s, citizen, NULL, before + 2); /* welcome, the categories */
    char path[128], body[200];
    snprintf(path, sizeof(path), "/users/%s/tap", citizen);
    cJSON_Delete(rs_emu(s, "POST", path, "{\"index\":1}", 202));
    rs_wait_bot(s, citizen, NULL, before + 3); /* where */
    snprintf(body, sizeof(body), "{\"index\":1,\"latitude\":%.6f,\"longitude\":%.6f}", lat, lon);
    cJSON_Delete(rs_emu(s, "POST", path, body, 202));
    rs_wait_bot(s, citizen, NULL, before + 4); /* the phone */
    snprintf(body, sizeof(body), "{\"text\":\"%s\"}", phone);
    rs_act(s, citizen, "text", body, NULL, 0);
    rs_wait_bot(s, citizen, "ESS-", cases_before + 1);
    return rs_sql(s, "SELECT max(id) FROM incidents");
}

/* ---- database ------------------------------------------------------------------------------- */

char *rs_sql_text(rs_stack *s, const char *sql)
{
    db_result *result = NULL;
    st_error err = {0};
    if (db_exec(s->d, sql, 0, NULL, &result, &err) != ST_OK)
        fail_msg("%s: %s", sql, err.message);
    const char *value = db_result_rows(result) > 0 ? db_result_value(result, 0, 0) : NULL;
    char *copy = value != NULL ? strdup(value) : NULL;
    db_result_destroy(result);
    return copy;
}

long long rs_sql(rs_stack *s, const char *sql)
{
    char *text = rs_sql_text(s, sql);
    long long value = text != NULL ? strtoll(text, NULL, 10) : 0;
    free(text);
    return value;
}

typedef struct sql_wait {
    rs_stack *s;
    const char *sql;
    long long expected, seen;
} sql_wait;

static bool sql_reached(void *closure)
{
    sql_wait *w = closure;
    w->seen = rs_sql(w->s, w->sql);
    return w->seen == w->expected;
}

void rs_wait_sql(rs_stack *s, const char *sql, long long expected)
{
    sql_wait w = {s, sql, expected, 0};
    if (!testkit_wait_until(sql_reached, &w, RS_WAIT_MS))
        fail_msg("%s: %lld (want %lld)", sql, w.seen, expected);
}

/* ---- streams -------------------------------------------------------------------------------- */

uint64_t rs_subject_count(rs_stack *s, const char *stream, const char *subject)
{
    jsOptions options;
    jsOptions_Init(&options);
    options.Stream.Info.SubjectsFilter = subject;
    jsStreamInfo *info = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&info, s->js, stream, &options, &jerr) != NATS_OK)
        return 0;
    uint64_t count = 0;
    if (info->State.Subjects != NULL)
        for (int i = 0; i < info->State.Subjects->Count; i++)
            if (strcmp(info->State.Subjects->List[i].Subject, subject) == 0)
                count += info->State.Subjects->List[i].Msgs;
    jsStreamInfo_Destroy(info);
    return count;
}

uint64_t rs_last_seq(rs_stack *s, const char *stream)
{
    jsStreamInfo *info = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&info, s->js, stream, NULL, &jerr) != NATS_OK)
        return 0;
    uint64_t last = info->State.LastSeq;
    jsStreamInfo_Destroy(info);
    return last;
}

char *rs_stream_get(rs_stack *s, const char *stream, uint64_t seq, char *ret_msg_id, size_t id_size,
                    char *ret_subject, size_t subject_size)
{
    natsMsg *msg = NULL;
    jsErrCode jerr = 0;
    if (js_GetMsg(&msg, s->js, stream, seq, NULL, &jerr) != NATS_OK)
        return NULL;
    const char *id = "";
    natsMsgHeader_Get(msg, "Nats-Msg-Id", &id);
    if (ret_msg_id != NULL)
        snprintf(ret_msg_id, id_size, "%s", id);
    if (ret_subject != NULL)
        snprintf(ret_subject, subject_size, "%s", natsMsg_GetSubject(msg));
    int len = natsMsg_GetDataLength(msg);
    char *data = malloc((size_t)len + 1);
    memcpy(data, natsMsg_GetData(msg), (size_t)len);
    data[len] = '\0';
    natsMsg_Destroy(msg);
    return data;
}

char *rs_find_msg(rs_stack *s, const char *stream, const char *msg_id)
{
    uint64_t last = rs_last_seq(s, stream);
    for (uint64_t seq = 1; seq <= last; seq++) {
        char id[256];
        char *data = rs_stream_get(s, stream, seq, id, sizeof(id), NULL, 0);
        if (data != NULL && strcmp(id, msg_id) == 0)
            return data;
        free(data);
    }
    return NULL;
}

void rs_publish(rs_stack *s, const char *subject, const char *data, size_t len, const char *msg_id)
{
    jsPubOptions options;
    jsPubOptions_Init(&options);
    options.MsgId = msg_id;
    jsPubAck *ack = NULL;
    jsErrCode jerr = 0;
    assert_int_equal(js_Publish(&ack, s->js, subject, data, (int)len, &options, &jerr), NATS_OK);
    jsPubAck_Destroy(ack);
}

bool rs_logs_contain(rs_stack *s, const char *needle)
{
    const rs_proc *procs[] = {&s->ingress, &s->conversation, &s->notifier, &s->georouter};
    for (size_t i = 0; i < sizeof(procs) / sizeof(procs[0]); i++) {
        char *log = testkit_read_file(procs[i]->log_path);
        bool found = log != NULL && strstr(log, needle) != NULL;
        free(log);
        if (found)
            return true;
    }
    return false;
}

long long rs_metric(rs_proc *p, const char *series)
{
    char url[128], *text = NULL;
    long status = 0;
    snprintf(url, sizeof(url), "%s/metrics", p->base_url);
    testkit_http("GET", url, NULL, NULL, 0, 2000, &status, &text);
    long long value = 0;
    if (status == 200 && text != NULL) {
        char start[256];
        snprintf(start, sizeof(start), "\n%s ", series);
        const char *at = strstr(text, start);
        if (at != NULL)
            value = strtoll(at + strlen(start), NULL, 10);
    }
    free(text);
    return value;
}

typedef struct metric_wait {
    rs_proc *p;
    const char *series;
    long long above, seen;
} metric_wait;

static bool metric_reached(void *closure)
{
    metric_wait *w = closure;
    w->seen = rs_metric(w->p, w->series);
    return w->seen > w->above;
}

void rs_wait_metric_above(rs_proc *p, const char *series, long long above)
{
    metric_wait w = {p, series, above, 0};
    if (!testkit_wait_until(metric_reached, &w, 60000))
        fail_msg("%s of %s: %lld (want > %lld)", series, p->binary, w.seen, above);
}

static bool all_applied(void *closure)
{
    rs_stack *s = closure;
    char sql[160];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) >= %llu FROM processed_events WHERE consumer = 'conversation'",
             (unsigned long long)rs_last_seq(s, "LINE_IN"));
    char *yes = rs_sql_text(s, sql);
    bool done = yes != NULL && strcmp(yes, "t") == 0;
    free(yes);
    return done;
}

void rs_wait_all_applied(rs_stack *s)
{
    if (!testkit_wait_until(all_applied, s, RS_WAIT_MS))
        fail_msg("ess-conversation did not apply every LINE_IN event");
}
