#include "conv_harness.h"

#include "testkit.h"
#include "testkit_line.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emu_validate.h"

#define CHANNEL_TOKEN "conversation-test-token"
#define WAIT_MS 30000

stack the_stack;

/* ---- processes ---------------------------------------------------------------------------- */

static void wait_http(const proc *p, const char *path)
{
    char url[128];
    snprintf(url, sizeof(url), "%s%s", p->base_url, path);
    if (!testkit_wait_http_ok(url, WAIT_MS))
        fail_msg("%s did not answer 200 (log %s)", url, p->log_path);
}

static void spawn(proc *p, const char *binary_name, const char *const *env)
{
    char binary[512];
    snprintf(binary, sizeof(binary), "%s/%s", testkit_bin_dir(), binary_name);
    const char *argv[] = {binary, NULL};
    p->pid = testkit_spawn(argv, env, p->log_path);
    assert_true(p->pid > 0);
}

static void proc_init(stack *s, proc *p, const char *name)
{
    if (p->port == 0) {
        p->port = testkit_free_port();
        assert_true(p->port > 0);
        snprintf(p->base_url, sizeof(p->base_url), "http://127.0.0.1:%d", p->port);
        snprintf(p->log_path, sizeof(p->log_path), "/tmp/ess-conv-%s-%s.log", s->token, name);
    }
}

void conversation_start(stack *s, int index, const char *const *env)
{
    proc *p = &s->conversation[index];
    char name[32];
    snprintf(name, sizeof(name), "conversation%d", index);
    proc_init(s, p, name);
    if (env != NULL) {
        p->env_count = 0;
        for (size_t i = 0; env[i] != NULL && p->env_count < 8; i++)
            snprintf(p->env[p->env_count++], sizeof(p->env[0]), "%s", env[i]);
    }
    char nats_env[128], pg_env[600], listen_env[64];
    snprintf(nats_env, sizeof(nats_env), "ESS_NATS_URL=%s", s->nats.url);
    snprintf(pg_env, sizeof(pg_env), "ESS_PG_DSN=%s", s->dsn);
    snprintf(listen_env, sizeof(listen_env), "ESS_CONVERSATION_LISTEN=127.0.0.1:%d", p->port);
    const char *all[20] = {nats_env, pg_env, listen_env, "ESS_DATA_KEY=" HARNESS_DATA_KEY,
                           "ESS_LOG_LEVEL=debug"};
    size_t n = 5;
    for (size_t i = 0; i < p->env_count && n < 19; i++)
        all[n++] = p->env[i];
    all[n] = NULL;
    spawn(p, "ess-conversation", all);
    wait_http(p, "/readyz");
}

int conversation_kill(stack *s, int index)
{
    int code = testkit_stop(s->conversation[index].pid, SIGKILL, 10000);
    s->conversation[index].pid = 0;
    return code;
}

int conversation_stop(stack *s, int index)
{
    int code = testkit_stop(s->conversation[index].pid, SIGTERM, 20000);
    s->conversation[index].pid = 0;
    return code;
}

int conversation_wait_exit(stack *s, int index, int64_t timeout_ms)
{
    int status = testkit_wait_exit(s->conversation[index].pid, timeout_ms);
    if (status < 0)
        fail_msg("conversation %d did not die", index);
    s->conversation[index].pid = 0;
    return status;
}

long long conversation_metric(stack *s, int index, const char *series)
{
    char url[128], *text = NULL;
    long status = 0;
    snprintf(url, sizeof(url), "%s/metrics", s->conversation[index].base_url);
    testkit_http("GET", url, NULL, NULL, 0, 2000, &status, &text);
    long long value = 0;
    if (status == 200 && text != NULL) {
        char start[200];
        snprintf(start, sizeof(start), "\n%s ", series);
        const char *at = strstr(text, start);
        if (at != NULL)
            value = strtoll(at + strlen(start), NULL, 10);
    }
    free(text);
    return value;
}

void stack_start(stack *s, const char *const *conversation_env)
{
    memset(s, 0, sizeof(*s));
    testkit_unique(s->token, sizeof(s->token));
    assert_int_equal(vault_keys_from_base64(HARNESS_DATA_KEY, &s->keys, NULL), ST_OK);
    testkit_fresh_database(true, s->dsn, sizeof(s->dsn));
    db_options db_opts = {.dsn = s->dsn, .application_name = "ess-test-conversation"};
    st_error err = {0};
    if (db_connect(&db_opts, &s->d, &err) != ST_OK)
        fail_msg("db_connect: %s", err.message);
    testkit_nats_start(&s->nats, "conv");
    assert_int_equal(natsConnection_ConnectTo(&s->nc, s->nats.url), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&s->js, s->nc, NULL), NATS_OK);
    snprintf(s->secret, sizeof(s->secret), "secret-%s", s->token);

    proc_init(s, &s->ingress, "ingress");
    proc_init(s, &s->emulator, "emulator");
    char secret_env[128], nats_env[128], listen_env[64];
    snprintf(secret_env, sizeof(secret_env), "ESS_LINE_CHANNEL_SECRET=%s", s->secret);
    snprintf(nats_env, sizeof(nats_env), "ESS_NATS_URL=%s", s->nats.url);
    snprintf(listen_env, sizeof(listen_env), "ESS_INGRESS_LISTEN=127.0.0.1:%d", s->ingress.port);
    const char *ingress_env[] = {secret_env, nats_env, listen_env, "ESS_LOG_LEVEL=debug", NULL};
    spawn(&s->ingress, "ess-ingress", ingress_env);
    wait_http(&s->ingress, "/readyz");

    conversation_start(s, 0, conversation_env);

    char emu_listen[64], webhook[160];
    snprintf(emu_listen, sizeof(emu_listen), "ESS_EMULATOR_LISTEN=127.0.0.1:%d", s->emulator.port);
    snprintf(webhook, sizeof(webhook), "ESS_EMULATOR_WEBHOOK_URL=%s/line/webhook",
             s->ingress.base_url);
    const char *emulator_env[] = {emu_listen,
                                  secret_env,
                                  webhook,
                                  "ESS_LINE_CHANNEL_TOKEN=" CHANNEL_TOKEN,
                                  "ESS_EMULATOR_REDELIVERY_INTERVAL=200ms",
                                  "ESS_EMULATOR_REDELIVERY_MAX_INTERVAL=1s",
                                  NULL};
    spawn(&s->emulator, "line-emulator", emulator_env);
    wait_http(&s->emulator, "/healthz");
}

static void stop_proc(proc *p)
{
    if (p->pid > 0)
        testkit_stop(p->pid, SIGKILL, 5000);
    p->pid = 0;
    if (p->log_path[0] != '\0')
        unlink(p->log_path);
}

int stack_teardown(void **state)
{
    (void)state;
    stack *s = &the_stack;
    stop_proc(&s->emulator);
    stop_proc(&s->ingress);
    for (int i = 0; i < HARNESS_CONVERSATIONS; i++)
        stop_proc(&s->conversation[i]);
    jsCtx_Destroy(s->js);
    natsConnection_Destroy(s->nc);
    s->js = NULL;
    s->nc = NULL;
    testkit_nats_stop(&s->nats);
    db_destroy(s->d);
    s->d = NULL;
    if (s->dsn[0] != '\0')
        testkit_drop_database(s->dsn);
    vault_keys_wipe(&s->keys);
    return 0;
}

/* ---- emulator (tests/support/testkit_line.h) ----------------------------------------------- */

cJSON *emulator_call(stack *s, const char *method, const char *path, const char *body,
                     long want_status)
{
    return testkit_line_call(s->emulator.base_url, method, path, body, want_status);
}

void user_create(stack *s, const char *language, char *ret_user_id, size_t size)
{
    char unique[40], name[64];
    testkit_unique(unique, sizeof(unique));
    snprintf(name, sizeof(name), "reporter %s", unique);
    testkit_line_user(s->emulator.base_url, name, language, ret_user_id, size);
}

void user_act(stack *s, const char *user_id, const char *action, const char *body,
              char *ret_event_id, size_t size)
{
    testkit_line_act(s->emulator.base_url, user_id, action, body, ret_event_id, size, NULL);
}

/* ---- streams -------------------------------------------------------------------------------- */

uint64_t stream_total(stack *s, const char *stream)
{
    /* LINE_OUT: the send commands; profile look-ups (line.out.profile) are not played here. */
    if (strcmp(stream, "LINE_OUT") == 0)
        return stream_subject_count(s, stream, "line.out.reply") +
               stream_subject_count(s, stream, "line.out.push");
    jsStreamInfo *info = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&info, s->js, stream, NULL, &jerr) != NATS_OK)
        return 0;
    uint64_t total = info->State.Msgs;
    jsStreamInfo_Destroy(info);
    return total;
}

uint64_t stream_subject_count(stack *s, const char *stream, const char *subject)
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

char *stream_get(stack *s, const char *stream, uint64_t seq, char *ret_msg_id, size_t size,
                 char *ret_subject, size_t subject_size)
{
    natsMsg *msg = NULL;
    jsErrCode jerr = 0;
    if (js_GetMsg(&msg, s->js, stream, seq, NULL, &jerr) != NATS_OK)
        fail_msg("no message %llu in %s", (unsigned long long)seq, stream);
    const char *id = "";
    natsMsgHeader_Get(msg, "Nats-Msg-Id", &id);
    if (ret_msg_id != NULL)
        snprintf(ret_msg_id, size, "%s", id);
    if (ret_subject != NULL)
        snprintf(ret_subject, subject_size, "%s", natsMsg_GetSubject(msg));
    int len = natsMsg_GetDataLength(msg);
    char *data = malloc((size_t)len + 1);
    memcpy(data, natsMsg_GetData(msg), (size_t)len);
    data[len] = '\0';
    natsMsg_Destroy(msg);
    return data;
}

/* ---- the notifier's part -------------------------------------------------------------------- */

static long send_to_line(stack *s, const char *endpoint, const char *retry_key, cJSON *body)
{
    char url[160], auth[96], retry[96];
    snprintf(url, sizeof(url), "%s/v2/bot/message/%s", s->emulator.base_url, endpoint);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", CHANNEL_TOKEN);
    snprintf(retry, sizeof(retry), "X-Line-Retry-Key: %s", retry_key != NULL ? retry_key : "");
    const char *headers[] = {"Content-Type: application/json", auth,
                             retry_key != NULL ? retry : NULL, NULL};
    char *text = cJSON_PrintUnformatted(body);
    long status = 0;
    char *answer = NULL;
    testkit_http("POST", url, headers, text, strlen(text), 10000, &status, &answer);
    if (status != 200 && status != 409 &&
        !(status == 400 && answer != NULL && strstr(answer, "Invalid reply token") != NULL))
        fail_msg("LINE %s answered %ld: %s", endpoint, status, answer != NULL ? answer : "");
    free(answer);
    free(text);
    return status;
}

static void deliver(stack *s, const char *subject, const char *msg_id, const char *payload)
{
    assert_true(s->command_count < HARNESS_COMMANDS_MAX);
    command_record *record = &s->commands[s->command_count++];
    memset(record, 0, sizeof(*record));
    cJSON *command = cJSON_Parse(payload);
    if (command == NULL)
        fail_msg("command %s is not JSON", msg_id);
    /* The schema (proto/schemas/line.out.reply|push.schema.json). */
    const cJSON *id = cJSON_GetObjectItem(command, "command_id");
    const cJSON *messages = cJSON_GetObjectItem(command, "messages");
    assert_true(cJSON_IsString(id));
    assert_string_equal(id->valuestring, msg_id);
    assert_true(strlen(id->valuestring) >= 1 && strlen(id->valuestring) <= 120);
    assert_true(cJSON_IsArray(messages));
    assert_true(cJSON_GetArraySize(messages) >= 1 && cJSON_GetArraySize(messages) <= 5);
    emu_problems problems = {0};
    emu_validate_messages(messages, &problems);
    if (problems.count > 0)
        fail_msg("command %s: %s at %s", msg_id, problems.items[0].message,
                 problems.items[0].property);
    snprintf(record->subject, sizeof(record->subject), "%s", subject);
    snprintf(record->command_id, sizeof(record->command_id), "%s", msg_id);
    record->notification_disabled =
        cJSON_IsTrue(cJSON_GetObjectItem(command, "notification_disabled"));
    const cJSON *message;
    size_t used = 0;
    cJSON_ArrayForEach(message, messages)
    {
        const cJSON *text = cJSON_GetObjectItem(message, "text");
        if (cJSON_IsString(text) && used < sizeof(record->text))
            used += (size_t)snprintf(record->text + used, sizeof(record->text) - used, "%s%s",
                                     used > 0 ? " | " : "", text->valuestring);
    }
    const cJSON *token = cJSON_GetObjectItem(command, "reply_token");
    const cJSON *to = cJSON_GetObjectItem(command, "to");
    const cJSON *fallback = cJSON_GetObjectItem(command, "fallback_to");
    bool silent = record->notification_disabled;
    cJSON *body = cJSON_CreateObject();
    cJSON_AddItemToObject(body, "messages", cJSON_Duplicate(messages, true));
    cJSON_AddBoolToObject(body, "notificationDisabled", silent);
    char retry_key[VAULT_UUID_TEXT];
    vault_uuid_from_name("test.line.retry", msg_id, retry_key);
    if (strcmp(subject, "line.out.reply") == 0) {
        assert_true(cJSON_IsString(token));
        assert_true(cJSON_IsString(fallback));
        record->reply = true;
        snprintf(record->to, sizeof(record->to), "%s", fallback->valuestring);
        cJSON_AddStringToObject(body, "replyToken", token->valuestring);
        if (send_to_line(s, "reply", NULL, body) != 200) {
            /* The token was used or expired: the notifier falls back to a push. */
            cJSON_DeleteItemFromObject(body, "replyToken");
            cJSON_AddStringToObject(body, "to", fallback->valuestring);
            send_to_line(s, "push", retry_key, body);
        }
    } else {
        assert_string_equal(subject, "line.out.push");
        assert_true(cJSON_IsString(to));
        snprintf(record->to, sizeof(record->to), "%s", to->valuestring);
        cJSON_AddStringToObject(body, "to", to->valuestring);
        send_to_line(s, "push", retry_key, body);
    }
    cJSON_Delete(body);
    cJSON_Delete(command);
}

typedef struct total_wait {
    stack *s;
    uint64_t total;
} total_wait;

static bool line_out_reached(void *closure)
{
    total_wait *w = closure;
    return stream_total(w->s, "LINE_OUT") >= w->total;
}

void stack_pump(stack *s, size_t total)
{
    total_wait w = {s, total};
    if (!testkit_wait_until(line_out_reached, &w, WAIT_MS))
        fail_msg("LINE_OUT holds %llu commands, want %zu",
                 (unsigned long long)stream_total(s, "LINE_OUT"), total);
    jsStreamInfo *info = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&info, s->js, "LINE_OUT", NULL, &jerr) != NATS_OK)
        fail_msg("no LINE_OUT stream");
    uint64_t last = info->State.LastSeq;
    jsStreamInfo_Destroy(info);
    for (uint64_t seq = s->line_out_seen + 1; seq <= last; seq++) {
        char msg_id[128], subject[64];
        char *payload =
            stream_get(s, "LINE_OUT", seq, msg_id, sizeof(msg_id), subject, sizeof(subject));
        if (strcmp(subject, "line.out.profile") != 0)
            deliver(s, subject, msg_id, payload);
        free(payload);
    }
    s->line_out_seen = last;
}

/* ---- database and logs ---------------------------------------------------------------------- */

long long sql_number(stack *s, const char *sql)
{
    char *text = sql_text(s, sql);
    long long value = text != NULL ? strtoll(text, NULL, 10) : 0;
    free(text);
    return value;
}

char *sql_text(stack *s, const char *sql)
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

bool database_contains(stack *s, const char *needle, char *ret_table, size_t size)
{
    char hex[256];
    vault_hex((const unsigned char *)needle, strlen(needle), hex);
    db_result *tables = NULL;
    st_error err = {0};
    if (db_exec(s->d,
                "SELECT quote_ident(table_name) FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
                0, NULL, &tables, &err) != ST_OK)
        fail_msg("list tables: %s", err.message);
    bool found = false;
    for (int i = 0; !found && i < db_result_rows(tables); i++) {
        char sql[256];
        /* Table names come from the catalogue, quoted: not input. */
        snprintf(sql, sizeof(sql),
                 "SELECT coalesce(string_agg(row_to_json(t)::text, ' '), '') "
                 "FROM %s t",
                 db_result_value(tables, i, 0));
        char *rows = sql_text(s, sql);
        if (rows != NULL && (strstr(rows, needle) != NULL || strstr(rows, hex) != NULL)) {
            found = true;
            snprintf(ret_table, size, "%s", db_result_value(tables, i, 0));
        }
        free(rows);
    }
    db_result_destroy(tables);
    return found;
}

bool logs_contain(stack *s, const char *needle)
{
    const proc *procs[] = {&s->ingress, &s->conversation[0], &s->conversation[1]};
    for (size_t i = 0; i < sizeof(procs) / sizeof(procs[0]); i++) {
        if (procs[i]->log_path[0] == '\0')
            continue;
        char *log = testkit_read_file(procs[i]->log_path);
        bool found = log != NULL && strstr(log, needle) != NULL;
        free(log);
        if (found)
            return true;
    }
    return false;
}
