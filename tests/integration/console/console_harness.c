/* console_harness: the world of an ess-console integration case. See console_harness.h. */
#include "console_harness.h"

#include "testkit.h"

#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

/* What a failed case must not leave behind (cmocka jumps out of it). */
static char live_database[512];
static char live_role[64];

static void drop_role(const char *role)
{
    db_options options = {.dsn = testkit_env("ESS_TEST_PG_DSN"),
                          .application_name = "ess-console-test"};
    db *d = NULL;
    st_error err = {0};
    if (db_connect(&options, &d, &err) != ST_OK)
        return;
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP ROLE IF EXISTS %s", role);
    db_exec(d, sql, 0, NULL, NULL, &err);
    db_destroy(d);
}

int ch_teardown(void **state)
{
    (void)state;
    testkit_stop_all_tracked(SIGKILL, 5000);
    testkit_nats_stop_all();
    if (live_database[0] != '\0') {
        testkit_drop_database(live_database);
        live_database[0] = '\0';
    }
    if (live_role[0] != '\0') {
        drop_role(live_role);
        live_role[0] = '\0';
    }
    return 0;
}

/* ---- processes -------------------------------------------------------------------------- */

void ch_console_start(ch_env *env, const char *const *console_env)
{
    if (env->console_port == 0) {
        env->console_port = testkit_free_port();
        assert_true(env->console_port > 0);
        snprintf(env->base_url, sizeof(env->base_url), "http://127.0.0.1:%d", env->console_port);
        snprintf(env->log_path, sizeof(env->log_path), "/tmp/ess-console-%s.log", env->unique);
    }
    char binary[512], listen[64], nats[96], dsn[700];
    snprintf(binary, sizeof(binary), "%s/ess-console", testkit_bin_dir());
    snprintf(listen, sizeof(listen), "ESS_CONSOLE_LISTEN=127.0.0.1:%d", env->console_port);
    snprintf(nats, sizeof(nats), "ESS_NATS_URL=%s", env->nats.url);
    snprintf(dsn, sizeof(dsn), "ESS_PG_DSN=%s", env->app_dsn);
    const char *argv[] = {binary, NULL};
    const char *envp[16 + CH_ENV_MAX] = {listen,
                                         nats,
                                         dsn,
                                         "ESS_DATA_KEY=" CH_DATA_KEY,
                                         "ESS_LOG_LEVEL=debug",
                                         "ESS_CONSOLE_LOGIN_DELAY_BASE=10ms",
                                         "ESS_CONSOLE_LOGIN_DELAY_MAX=80ms",
                                         "ESS_CONSOLE_SSE_HEARTBEAT=200ms",
                                         "ESS_DRAIN_TIMEOUT=5s"};
    size_t n = 9;
    for (size_t i = 0; console_env != NULL && console_env[i] != NULL; i++) {
        assert_true(i < CH_ENV_MAX);
        envp[n++] = console_env[i];
    }
    envp[n] = NULL;
    env->console_pid = testkit_spawn(argv, envp, env->log_path);
    assert_true(env->console_pid > 0);
    testkit_track(env->console_pid);
    char url[160];
    snprintf(url, sizeof(url), "%s/readyz", env->base_url);
    if (!testkit_wait_http_ok(url, 30000)) {
        char *log = testkit_read_file(env->log_path);
        fail_msg("ess-console not ready; its log:\n%s", log != NULL ? log : "(none)");
    }
}

int ch_console_stop(ch_env *env)
{
    int code = testkit_stop_tracked(env->console_pid, SIGTERM, 20000);
    env->console_pid = 0;
    return code;
}

/* ---- database --------------------------------------------------------------------------- */

void ch_sql(ch_env *env, const char *sql)
{
    st_error err = {0};
    if (db_exec(env->admin, sql, 0, NULL, NULL, &err) != ST_OK)
        fail_msg("%s: %s (%s)", sql, err.message, err.cause);
}

char *ch_sql_text(ch_env *env, const char *sql)
{
    db_result *r = NULL;
    st_error err = {0};
    if (db_exec(env->admin, sql, 0, NULL, &r, &err) != ST_OK)
        fail_msg("%s: %s (%s)", sql, err.message, err.cause);
    if (db_result_rows(r) < 1 || db_result_is_null(r, 0, 0))
        fail_msg("%s returned no value", sql);
    char *text = strdup(db_result_value(r, 0, 0));
    db_result_destroy(r);
    return text;
}

long long ch_sql_int(ch_env *env, const char *sql)
{
    char *text = ch_sql_text(env, sql);
    long long value = strtoll(text, NULL, 10);
    free(text);
    return value;
}

static void load_reference_data(ch_env *env)
{
    ch_sql(env, "INSERT INTO provinces (code, name_th, name_en, boundary) VALUES "
                "('TH10', 'กรุงเทพมหานคร', 'Bangkok', '{\"type\": \"Polygon\", \"coordinates\": "
                "[[[100.51234567, 13.71234567], [100.51234999, 13.71234999], [100.61, 13.71], "
                "[100.61, 13.81], [100.51234567, 13.71234567]]]}'), "
                "('TH50', 'เชียงใหม่', 'Chiang Mai', '{\"type\": \"MultiPolygon\", "
                "\"coordinates\": [[[[98.9, 18.7], [99.0, 18.7], [99.0, 18.8], [98.9, 18.7]]]]}')");
    ch_sql(env, "INSERT INTO districts (code, province_code, name_th, name_en) VALUES "
                "('TH1001', 'TH10', 'พระนคร', 'Phra Nakhon'), "
                "('TH5001', 'TH50', 'เมืองเชียงใหม่', 'Mueang Chiang Mai')");
    ch_sql(env, "INSERT INTO tambons (code, district_code, province_code, name_th, name_en) "
                "VALUES ('TH100101', 'TH1001', 'TH10', 'พระบรมมหาราชวัง', "
                "'Phra Borom Maha Ratchawang'), ('TH500101', 'TH5001', 'TH50', 'ศรีภูมิ', "
                "'Si Phum')");
    ch_sql(env, "INSERT INTO stations (id, name_th, name_en, lat, lon, district_code, "
                "province_code, synthetic) VALUES ('S10', 'สน.ชนะสงคราม', 'Chana Songkhram', "
                "13.76, 100.49, 'TH1001', 'TH10', true), ('S50', 'สภ.เมืองเชียงใหม่', "
                "'Mueang Chiang Mai', 18.79, 98.98, 'TH5001', 'TH50', true)");
    ch_sql(env, "UPDATE geo_meta SET version = 1");
}

/* "\x<hex>" of bytes (heap). */
static char *bytea_text(const unsigned char *bytes, size_t len)
{
    char *text = malloc(2 * len + 3);
    assert_non_null(text);
    text[0] = '\\';
    text[1] = 'x';
    vault_hex(bytes, len, text + 2);
    return text;
}

static char *sealed_param(ch_env *env, const char *context, const char *value)
{
    unsigned char *sealed = NULL;
    size_t len = 0;
    st_error err = {0};
    assert_int_equal(vault_seal(&env->keys, context, value, strlen(value), &sealed, &len, &err),
                     ST_OK);
    char *text = bytea_text(sealed, len);
    free(sealed);
    return text;
}

int64_t ch_incident(ch_env *env, const char *case_number, const char *category,
                    const char *province, const char *status, const char *phone)
{
    bool bangkok = strcmp(province, "TH10") == 0;
    char *phone_param = phone != NULL ? sealed_param(env, "incident.phone", phone) : NULL;
    char *reporter_param = sealed_param(env, "reporter.id", CH_REPORTER);
    unsigned char hash[32];
    vault_lookup_hash(&env->keys, "line.user", CH_REPORTER, hash);
    char *hash_param = bytea_text(hash, sizeof(hash));
    const char *params[] = {case_number,
                            category,
                            status,
                            bangkok ? "13.75" : "18.79",
                            bangkok ? "100.50" : "98.98",
                            bangkok ? "TH100101" : "TH500101",
                            bangkok ? "TH1001" : "TH5001",
                            province,
                            bangkok ? "S10" : "S50",
                            phone_param,
                            hash_param,
                            reporter_param};
    db_result *r = NULL;
    st_error err = {0};
    if (db_exec(env->admin,
                "INSERT INTO incidents (case_number, category, status, lat, lon, tambon_code, "
                "district_code, province_code, station_id, station_distance_m, phone_encrypted, "
                "reporter_key_hash, reporter_id_encrypted, reported_at, routed_at, "
                "acknowledged_at, acknowledged_by) VALUES ($1, $2, $3, $4::float8, $5::float8, "
                "$6, $7, $8, $9, 1234, $10::bytea, $11::bytea, $12::bytea, "
                "now() - interval '10 minutes', now() - interval '9 minutes', "
                "CASE WHEN $3 IN ('acknowledged', 'on_scene', 'closed') "
                "  THEN now() - interval '5 minutes' END, "
                "CASE WHEN $3 IN ('acknowledged', 'on_scene', 'closed') "
                "  THEN 'ร.ต.อ. สมชาย' END) RETURNING id",
                12, params, &r, &err) != ST_OK)
        fail_msg("insert incident: %s (%s)", err.message, err.cause);
    int64_t id = strtoll(db_result_value(r, 0, 0), NULL, 10);
    db_result_destroy(r);
    free(phone_param);
    free(reporter_param);
    free(hash_param);

    /* The timeline, with what must never leave the database: a typed text, an exact
     * location, a LINE group id. */
    char id_text[24];
    snprintf(id_text, sizeof(id_text), "%" PRId64, id);
    const char *timeline[] = {id_text, CH_GROUP};
    if (db_exec(env->admin,
                "INSERT INTO incident_events (incident_id, event_key, kind, actor_type, actor, "
                "group_id, detail, at) VALUES "
                "($1::bigint, 'r', 'reported', 'reporter', NULL, NULL, "
                "  '{\"category\": \"threat\", \"has_phone\": true, \"channel\": \"line\"}', "
                "  now() - interval '10 minutes'), "
                "($1::bigint, 't', 'info_added', 'reporter', 'someone " CH_PHONE "', NULL, "
                "  '{\"type\": \"text\", \"text_sealed\": \"AAAA\", \"text\": \"call "
                CH_PHONE "\"}', now() - interval '8 minutes'), "
                "($1::bigint, 'l', 'info_added', 'reporter', NULL, NULL, "
                "  '{\"type\": \"location\", \"location\": {\"lat\": 18.123456, "
                "\"lon\": 98.654321}}', now() - interval '7 minutes'), "
                "($1::bigint, 'a', 'acknowledged', 'responder', 'ร.ต.อ. สมชาย', $2, "
                "  '{\"level\": 0, \"team\": \"ทีมสหวิชาชีพ\", \"member_named_by_line\": true, "
                "\"group_id\": \"" CH_GROUP "\"}', now() - interval '5 minutes')",
                2, timeline, NULL, &err) != ST_OK)
        fail_msg("insert timeline: %s (%s)", err.message, err.cause);
    return id;
}

/* Runs argv with extra environment, stdin_text on its standard input; output captured. */
static int run_with_stdin(const char *const *argv, const char *const *envp,
                          const char *stdin_text, char **ret_output)
{
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        for (size_t i = 0; envp != NULL && envp[i] != NULL; i++)
            putenv((char *)envp[i]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (stdin_text != NULL) {
        ssize_t ignored = write(in[1], stdin_text, strlen(stdin_text));
        (void)ignored;
    }
    close(in[1]);
    size_t cap = 4096, len = 0;
    char *output = malloc(cap);
    assert_non_null(output);
    for (;;) {
        if (len + 1024 > cap) {
            cap *= 2;
            output = realloc(output, cap);
            assert_non_null(output);
        }
        ssize_t n = read(out[0], output + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    output[len] = '\0';
    close(out[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (ret_output != NULL)
        *ret_output = output;
    else
        free(output);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int ch_essctl(ch_env *env, const char *const *args, const char *stdin_text, char **ret_output)
{
    char essctl[512], dsn[600];
    snprintf(essctl, sizeof(essctl), "%s/essctl", testkit_bin_dir());
    snprintf(dsn, sizeof(dsn), "ESS_PG_DSN=%s", env->admin_dsn);
    const char *argv[16] = {essctl};
    size_t n = 1;
    for (size_t i = 0; args[i] != NULL; i++) {
        assert_true(n < 15);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    const char *envp[] = {dsn, "ESS_DATA_KEY=" CH_DATA_KEY, NULL};
    return run_with_stdin(argv, envp, stdin_text, ret_output);
}

void ch_user(ch_env *env, const char *name, const char *role, const char *area)
{
    const char *args[] = {"user", "add", "--name", name, "--role", role, "--area", area,
                          "--password-stdin", NULL};
    char *output = NULL;
    int code = ch_essctl(env, args, CH_PASSWORD "\n", &output);
    if (code != 0)
        fail_msg("essctl user add %s exited %d: %s", name, code, output);
    free(output);
}

void ch_publish(ch_env *env, const char *kind, int64_t incident_id, const char *case_number)
{
    char subject[64], body[256], msg_id[96];
    snprintf(subject, sizeof(subject), "ess.incident.%s", kind);
    snprintf(body, sizeof(body),
             "{\"incident_id\":%" PRId64 ",\"case_number\":\"%s\",\"at\":\"2026-11-30T00:00:00Z\"}",
             incident_id, case_number);
    snprintf(msg_id, sizeof(msg_id), "test.%s.%" PRId64 ".%" PRId64, kind, incident_id,
             testkit_now_ms());
    st_error err = {0};
    if (bus_publish(env->bus, subject, body, strlen(body), msg_id, NULL, &err) != ST_OK)
        fail_msg("publish %s: %s", subject, err.message);
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

void ch_start(ch_env *env, const char *const *console_env)
{
    memset(env, 0, sizeof(*env));
    testkit_unique(env->unique, sizeof(env->unique));
    st_error err = {0};
    assert_int_equal(vault_keys_from_base64(CH_DATA_KEY, &env->keys, &err), ST_OK);
    testkit_fresh_database(true, env->admin_dsn, sizeof(env->admin_dsn));
    snprintf(live_database, sizeof(live_database), "%s", env->admin_dsn);
    db_options options = {.dsn = env->admin_dsn, .application_name = "ess-console-test"};
    if (db_connect(&options, &env->admin, &err) != ST_OK)
        fail_msg("connect: %s", err.message);
    load_reference_data(env);

    /* The services' login, as deploy/local/ess makes ess_app. */
    snprintf(env->app_login, sizeof(env->app_login), "app_%s", env->unique);
    snprintf(live_role, sizeof(live_role), "%s", env->app_login);
    static const char app_password[] = "console-app-Password-1234";
    char password_env[96];
    snprintf(password_env, sizeof(password_env), "CH_APP_PASSWORD=%s", app_password);
    char essctl[512], dsn[600];
    snprintf(essctl, sizeof(essctl), "%s/essctl", testkit_bin_dir());
    snprintf(dsn, sizeof(dsn), "ESS_PG_DSN=%s", env->admin_dsn);
    const char *argv[] = {essctl,        "db",          "login-role",    env->app_login,
                          "--member-of", "ess_service", "--password-env", "CH_APP_PASSWORD",
                          NULL};
    const char *envp[] = {dsn, password_env, NULL};
    char *output = NULL;
    int code = run_with_stdin(argv, envp, NULL, &output);
    if (code != 0)
        fail_msg("essctl db login-role exited %d: %s", code, output);
    free(output);
    dsn_as(env->admin_dsn, env->app_login, app_password, env->app_dsn, sizeof(env->app_dsn));

    testkit_nats_start(&env->nats, "console");
    bus_options bus_opts = {.url = env->nats.url, .client_name = "ess-test-console"};
    if (bus_connect(&bus_opts, &env->bus, &err) != ST_OK)
        fail_msg("bus_connect: %s", err.message);
    bus_registry *registry = NULL;
    assert_int_equal(bus_registry_builtin(&registry, &err), ST_OK);
    const bus_stream_def *ess = bus_registry_stream(registry, "ESS");
    assert_non_null(ess);
    st_code status = bus_ensure_stream(env->bus, ess, &err);
    bus_registry_destroy(registry);
    if (status != ST_OK)
        fail_msg("ensure ESS: %s", err.message);
    ch_console_start(env, console_env);
}

void ch_stop(ch_env *env)
{
    if (env->console_pid > 0) {
        /* A clean stop, with no sanitizer report (LeakSanitizer exits non-zero). */
        int code = ch_console_stop(env);
        if (code != 0) {
            char *log = testkit_read_file(env->log_path);
            fail_msg("ess-console exited %d; its log:\n%s", code, log != NULL ? log : "");
        }
    }
    bus_destroy(env->bus);
    testkit_nats_stop(&env->nats);
    db_destroy(env->admin);
    testkit_drop_database(env->admin_dsn);
    live_database[0] = '\0';
    drop_role(env->app_login);
    live_role[0] = '\0';
    if (env->log_path[0] != '\0')
        unlink(env->log_path);
    vault_keys_wipe(&env->keys);
    memset(env, 0, sizeof(*env));
}

/* ---- HTTP ------------------------------------------------------------------------------- */

typedef struct buffer {
    char *text;
    size_t len, cap;
} buffer;

static size_t collect(char *data, size_t size, size_t count, void *closure)
{
    buffer *b = closure;
    size_t n = size * count;
    if (b->len + n + 1 > b->cap) {
        /* Doubling: a 20 MB export arrives in thousands of pieces. */
        size_t cap = b->cap > 0 ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *bigger = realloc(b->text, cap);
        if (bigger == NULL)
            return 0;
        b->text = bigger;
        b->cap = cap;
    }
    memcpy(b->text + b->len, data, n);
    b->len += n;
    b->text[b->len] = '\0';
    return n;
}

void ch_response_free(ch_response *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof(*r));
}

bool ch_header(const ch_response *r, const char *name, char *out, size_t out_size)
{
    size_t name_len = strlen(name);
    for (const char *line = r->headers; line != NULL && *line != '\0';) {
        const char *end = strstr(line, "\r\n");
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        if (len > name_len && line[name_len] == ':' && strncasecmp(line, name, name_len) == 0) {
            const char *value = line + name_len + 1;
            while (*value == ' ')
                value++;
            size_t value_len = len - (size_t)(value - line);
            snprintf(out, out_size, "%.*s", (int)value_len, value);
            return true;
        }
        line = end != NULL ? end + 2 : line + len;
    }
    return false;
}

ch_response ch_request(ch_env *env, const char *method, const char *path,
                       const ch_session *session, const char *const *headers, const char *body)
{
    char url[2600];
    snprintf(url, sizeof(url), "%s%s", env->base_url, path);
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    struct curl_slist *list = NULL;
    char cookie[128];
    if (session != NULL) {
        snprintf(cookie, sizeof(cookie), "Cookie: ess_session=%s", session->token);
        list = curl_slist_append(list, cookie);
    }
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        list = curl_slist_append(list, headers[i]);
    buffer received = {.text = calloc(1, 1), .cap = 1}, head = {.text = calloc(1, 1), .cap = 1};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &received);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &head);
    if (body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    CURLcode code = curl_easy_perform(curl);
    ch_response r = {.body = received.text, .len = received.len, .headers = head.text};
    if (code == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    if (code != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(code));
    return r;
}

/* Copies a JSON string member "name":"value" (no escapes: tokens) out of text. */
static bool json_string(const char *text, const char *name, char *out, size_t out_size)
{
    char key[64];
    snprintf(key, sizeof(key), "\"%s\":\"", name);
    const char *start = text != NULL ? strstr(text, key) : NULL;
    if (start == NULL)
        return false;
    start += strlen(key);
    const char *end = strchr(start, '"');
    if (end == NULL || (size_t)(end - start) >= out_size)
        return false;
    memcpy(out, start, (size_t)(end - start));
    out[end - start] = '\0';
    return true;
}

ch_response ch_login_response(ch_env *env, const char *name, const char *password,
                              const char *const *headers, ch_session *ret_session)
{
    char body[512];
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"password\":\"%s\"}", name, password);
    const char *all[8] = {"Content-Type: application/json"};
    size_t n = 1;
    for (size_t i = 0; headers != NULL && headers[i] != NULL && n < 7; i++)
        all[n++] = headers[i];
    all[n] = NULL;
    ch_response r = ch_request(env, "POST", "/api/login", NULL, all, body);
    if (r.status == 200 && ret_session != NULL) {
        memset(ret_session, 0, sizeof(*ret_session));
        char cookie[256];
        assert_true(ch_header(&r, "set-cookie", cookie, sizeof(cookie)));
        assert_true(strncmp(cookie, "ess_session=", 12) == 0);
        size_t len = strcspn(cookie + 12, ";");
        assert_true(len < sizeof(ret_session->token));
        memcpy(ret_session->token, cookie + 12, len);
        assert_true(json_string(r.body, "csrf", ret_session->csrf, sizeof(ret_session->csrf)));
    }
    return r;
}

void ch_login(ch_env *env, const char *name, ch_session *ret_session)
{
    ch_response r = ch_login_response(env, name, CH_PASSWORD, NULL, ret_session);
    if (r.status != 200)
        fail_msg("login %s: %ld %s", name, r.status, r.body);
    ch_response_free(&r);
}

double ch_metric(ch_env *env, const char *series)
{
    ch_response r = ch_request(env, "GET", "/metrics", NULL, NULL, NULL);
    double value = -1;
    size_t len = strlen(series);
    for (const char *line = r.body; line != NULL && *line != '\0';) {
        if (strncmp(line, series, len) == 0 && line[len] == ' ') {
            value = strtod(line + len + 1, NULL);
            break;
        }
        const char *next = strchr(line, '\n');
        line = next != NULL ? next + 1 : NULL;
    }
    ch_response_free(&r);
    return value;
}

long ch_console_rss_kib(ch_env *env)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", env->console_pid);
    char *status = testkit_read_file(path);
    assert_non_null(status);
    const char *line = strstr(status, "VmRSS:");
    assert_non_null(line);
    long kib = strtol(line + 6, NULL, 10);
    free(status);
    return kib;
}

/* ---- event streams ---------------------------------------------------------------------- */

struct ch_stream {
    pthread_t thread;
    pthread_mutex_t lock;
    char url[256];
    char cookie[128];
    buffer received;
    long status;
    atomic_bool stop;
    atomic_bool ended;
};

static size_t stream_collect(char *data, size_t size, size_t count, void *closure)
{
    ch_stream *stream = closure;
    pthread_mutex_lock(&stream->lock);
    size_t n = collect(data, size, count, &stream->received);
    pthread_mutex_unlock(&stream->lock);
    return n;
}

static int stream_progress(void *closure, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a;
    (void)b;
    (void)c;
    (void)d;
    ch_stream *stream = closure;
    return atomic_load(&stream->stop) ? 1 : 0;
}

static void *stream_main(void *arg)
{
    ch_stream *stream = arg;
    CURL *curl = curl_easy_init();
    struct curl_slist *list = curl_slist_append(NULL, stream->cookie);
    curl_easy_setopt(curl, CURLOPT_URL, stream->url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, stream_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, stream);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, stream_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, stream);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 120000L);
    curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    pthread_mutex_lock(&stream->lock);
    stream->status = status;
    pthread_mutex_unlock(&stream->lock);
    atomic_store(&stream->ended, true);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return NULL;
}

ch_stream *ch_stream_open(ch_env *env, const ch_session *session, const char *query)
{
    ch_stream *stream = calloc(1, sizeof(*stream));
    assert_non_null(stream);
    pthread_mutex_init(&stream->lock, NULL);
    stream->received.text = calloc(1, 1);
    stream->received.cap = 1;
    snprintf(stream->url, sizeof(stream->url), "%s/api/events%s", env->base_url,
             query != NULL ? query : "");
    snprintf(stream->cookie, sizeof(stream->cookie), "Cookie: ess_session=%s", session->token);
    assert_int_equal(pthread_create(&stream->thread, NULL, stream_main, stream), 0);
    return stream;
}

typedef struct stream_probe {
    ch_stream *stream;
    const char *needle;
} stream_probe;

static bool stream_has(void *closure)
{
    stream_probe *probe = closure;
    pthread_mutex_lock(&probe->stream->lock);
    bool found = strstr(probe->stream->received.text, probe->needle) != NULL;
    pthread_mutex_unlock(&probe->stream->lock);
    return found;
}

bool ch_stream_wait(ch_stream *stream, const char *needle, int64_t timeout_ms)
{
    stream_probe probe = {.stream = stream, .needle = needle};
    return testkit_wait_until(stream_has, &probe, timeout_ms);
}

char *ch_stream_text(ch_stream *stream)
{
    pthread_mutex_lock(&stream->lock);
    char *copy = strdup(stream->received.text);
    pthread_mutex_unlock(&stream->lock);
    return copy;
}

bool ch_stream_ended(ch_stream *stream)
{
    return atomic_load(&stream->ended);
}

long ch_stream_status(ch_stream *stream)
{
    pthread_mutex_lock(&stream->lock);
    long status = stream->status;
    pthread_mutex_unlock(&stream->lock);
    return status;
}

void ch_stream_close(ch_stream *stream)
{
    if (stream == NULL)
        return;
    atomic_store(&stream->stop, true);
    pthread_join(stream->thread, NULL);
    pthread_mutex_destroy(&stream->lock);
    free(stream->received.text);
    free(stream);
}
