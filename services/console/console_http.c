/* console_http: the routes of the JSON API. See console_http.h and the README. */
#include "console_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "console_audit.h"
#include "console_cases.h"
#include "console_stats.h"
#include "log.h"

#define JSON_TYPE "application/json; charset=utf-8"

/* ---- responses --------------------------------------------------------------------------- */

void console_response_error(console_response *resp, int status, const char *code,
                            const char *message)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "error", code);
    cJSON_AddStringToObject(root, "message", message);
    console_response_json(resp, status, root);
}

void console_response_json(console_response *resp, int status, cJSON *root)
{
    char *text = root != NULL ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    console_response_done(resp);
    resp->content_type = JSON_TYPE;
    if (text == NULL) {
        static const char fallback[] = "{\"error\":\"internal\",\"message\":\"out of memory\"}";
        resp->status = 500;
        resp->body = strdup(fallback);
        resp->body_len = resp->body != NULL ? sizeof(fallback) - 1 : 0;
        return;
    }
    resp->status = status;
    resp->body = text;
    resp->body_len = strlen(text);
}

void console_response_done(console_response *resp)
{
    if (resp->body != NULL) {
        OPENSSL_cleanse(resp->body, resp->body_len);
        free(resp->body);
    }
    resp->body = NULL;
    resp->body_len = 0;
}

static void database_failed(console_response *resp, const char *what, const st_error *err)
{
    log_event(LOG_WARN, "console.db", what, LOG_ERR(err));
    if (err->code == ST_TIMEOUT)
        console_response_error(resp, 503, "timeout", "the database took too long; try again");
    else
        console_response_error(resp, 503, "unavailable", "the database is not reachable now");
}

void console_session_cookie(const console_app *app, const console_request *req,
                            const char *token, char *out, size_t out_size)
{
    bool secure = app->config.secure_cookie || req->https;
    snprintf(out, out_size, "%s=%s; Path=/; HttpOnly; SameSite=Strict%s%s",
             CONSOLE_SESSION_COOKIE, token, token[0] == '\0' ? "; Max-Age=0" : "",
             secure ? "; Secure" : "");
}

static cJSON *user_json(const console_user *user)
{
    cJSON *object = cJSON_CreateObject();
    cJSON_AddStringToObject(object, "name", user->name);
    cJSON_AddStringToObject(object, "role", console_role_name(user->role));
    cJSON_AddStringToObject(object, "area", console_user_area_param(user));
    return object;
}

/* {"user":{...},"csrf":"…"} */
static cJSON *session_json(const console_session *session)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "user", user_json(&session->user));
    cJSON_AddStringToObject(root, "csrf", session->csrf);
    return root;
}

/* ---- request helpers --------------------------------------------------------------------- */

/* Reads query parameter name into out; false (resp = 400) when malformed. *ret_present says
 * whether it was given. */
static bool query_param(const console_request *req, const char *name, char *out,
                        size_t out_size, bool *ret_present, console_response *resp)
{
    st_code status = console_query_param(req->query, req->query_len, name, out, out_size);
    *ret_present = status == ST_OK;
    if (status == ST_OK || status == ST_NOT_FOUND)
        return true;
    char message[96];
    snprintf(message, sizeof(message), "the query parameter %s is malformed", name);
    console_response_error(resp, 400, "bad_request", message);
    return false;
}

static bool date_param(const console_request *req, const char *name, console_date *ret_date,
                       bool *ret_present, console_response *resp)
{
    char text[CONSOLE_PARAM_MAX];
    if (!query_param(req, name, text, sizeof(text), ret_present, resp))
        return false;
    if (*ret_present && console_parse_date(text, ret_date) != ST_OK) {
        char message[96];
        snprintf(message, sizeof(message), "%s must be a date YYYY-MM-DD", name);
        console_response_error(resp, 400, "bad_request", message);
        return false;
    }
    return true;
}

bool console_http_authenticate(console_app *app, db *d, const console_request *req,
                               console_session *ret_session, console_response *resp)
{
    if (req->session_token[0] == '\0') {
        console_response_error(resp, 401, "unauthenticated", "log in first");
        return false;
    }
    st_error err = {0};
    st_code status =
        console_session_find(d, req->session_token, app->config.session_idle_ms, ret_session, &err);
    if (status == ST_NOT_FOUND) {
        console_response_error(resp, 401, "unauthenticated", "the session ended; log in again");
        return false;
    }
    if (status != ST_OK) {
        database_failed(resp, "cannot read the session", &err);
        return false;
    }
    return true;
}

/* ---- auth routes ------------------------------------------------------------------------- */

console_login_throttle console_app_throttle(const console_app *app)
{
    console_login_throttle throttle = {.window_ms = app->config.login_window_ms,
                                       .base_ms = app->config.login_delay_base_ms,
                                       .max_ms = app->config.login_delay_max_ms};
    return throttle;
}

/* Phase 0: take the attempt's turn; phase 1 (or 0 without a wait): check and answer. */
static void login(console_app *app, db *d, const console_request *req, int phase,
                  console_response *resp)
{
    char name[CONSOLE_NAME_MAX], password[CONSOLE_PASSWORD_MAX + 1];
    st_error err = {0};
    console_login_throttle throttle = console_app_throttle(app);
    console_login_keys keys;
    if (!req->json_body) {
        console_response_error(resp, 400, "bad_request",
                               "a login is a JSON body (Content-Type: application/json)");
        return;
    }
    if (console_parse_login(req->body, req->body_len, name, password) != ST_OK) {
        console_response_error(resp, 400, "bad_request",
                               "the body must be {\"name\":\"…\",\"password\":\"…\"}");
        return;
    }
    console_login_keys_for(&app->keys, name, req->peer, &keys);
    if (phase == 0) {
        int64_t wait_ms = 0;
        bool refused = false;
        if (console_login_reserve(d, &keys, &throttle, &wait_ms, &refused, &err) != ST_OK) {
            database_failed(resp, "cannot read login failures", &err);
            goto cleanup;
        }
        if (refused) {
            met_counter_add(app->metrics.logins_refused, 1);
            console_response_error(resp, 429, "too_many_attempts",
                                   "too many login attempts; wait a minute and try again");
            goto cleanup;
        }
        if (wait_ms > 0) {
            resp->kind = CONSOLE_REPLY_AGAIN;
            resp->delay_ms = wait_ms;
            resp->next_phase = 1;
            goto cleanup;
        }
    }
    console_user user;
    bool ok = false;
    if (console_login_check(d, name, password, app->dummy_hash, &user, &ok, &err) != ST_OK) {
        database_failed(resp, "cannot check a login", &err);
        goto cleanup;
    }
    if (!ok) {
        int64_t failures = 0, delay_ms = 0;
        if (console_login_failed(d, &keys, &throttle, &failures, &delay_ms, &err) != ST_OK ||
            console_audit_login(d, name, false, keys.peer, &err) != ST_OK) {
            database_failed(resp, "cannot record a failed login", &err);
            goto cleanup;
        }
        met_counter_add(app->metrics.logins_failed, 1);
        met_gauge_set(app->metrics.login_last_delay_ms, delay_ms);
        log_event(LOG_INFO, "console.login_failed", "login failed",
                  LOG_INT("failures", failures), LOG_INT("delay_ms", delay_ms));
        console_response_error(resp, 401, "login_failed", "wrong name or password");
        resp->kind = CONSOLE_REPLY_LATER;
        resp->delay_ms = delay_ms;
        goto cleanup;
    }
    /* Audited before the session exists: no record, no login. */
    console_session session;
    char token[CONSOLE_TOKEN_TEXT];
    if (console_audit_login(d, user.name, true, keys.peer, &err) != ST_OK ||
        console_login_succeeded(d, &keys, &err) != ST_OK ||
        console_session_create(d, &user, app->config.session_lifetime_ms, token, &session,
                               &err) != ST_OK) {
        database_failed(resp, "cannot open a session", &err);
        goto cleanup;
    }
    met_counter_add(app->metrics.logins_ok, 1);
    log_event(LOG_INFO, "console.login", "logged in", LOG_STR("user", user.name),
              LOG_STR("role", console_role_name(user.role)));
    console_response_json(resp, 200, session_json(&session));
    console_session_cookie(app, req, token, resp->set_cookie, sizeof(resp->set_cookie));
    OPENSSL_cleanse(token, sizeof(token));
cleanup:
    OPENSSL_cleanse(password, sizeof(password));
}

static void logout(console_app *app, db *d, const console_request *req,
                   const console_session *session, console_response *resp)
{
    st_error err = {0};
    if (console_session_delete(d, session->token_hash, &err) != ST_OK) {
        database_failed(resp, "cannot end a session", &err);
        return;
    }
    resp->status = 204;
    resp->session_ended = true;
    memcpy(resp->ended_token_hash, session->token_hash, sizeof(resp->ended_token_hash));
    console_session_cookie(app, req, "", resp->set_cookie, sizeof(resp->set_cookie));
}

/* ---- cases ------------------------------------------------------------------------------- */

static void iso_now(char out[32])
{
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &utc);
}

static void cases_list(console_app *app, db *d, const console_request *req,
                       const console_session *session, console_response *resp)
{
    console_case_filter filter = {.open_only = true, .limit = CONSOLE_CASES_LIMIT_DEFAULT};
    char state[CONSOLE_PARAM_MAX], limit[CONSOLE_PARAM_MAX];
    bool has_state = false, has_limit = false;
    if (!query_param(req, "state", state, sizeof(state), &has_state, resp) ||
        !query_param(req, "limit", limit, sizeof(limit), &has_limit, resp) ||
        !date_param(req, "from", &filter.from, &filter.has_from, resp) ||
        !date_param(req, "to", &filter.to, &filter.has_to, resp))
        return;
    if (has_state && strcmp(state, "open") != 0 && strcmp(state, "all") != 0) {
        console_response_error(resp, 400, "bad_request", "state must be open or all");
        return;
    }
    filter.open_only = !has_state || strcmp(state, "open") == 0;
    if (has_limit &&
        console_parse_int(limit, 1, CONSOLE_CASES_LIMIT_MAX, &filter.limit) != ST_OK) {
        console_response_error(resp, 400, "bad_request", "limit must be 1..5000");
        return;
    }
    if (filter.has_from && filter.has_to &&
        console_date_days_between(&filter.from, &filter.to) < 0) {
        console_response_error(resp, 400, "bad_request", "from must not be after to");
        return;
    }
    cJSON *cases = NULL;
    st_error err = {0};
    if (console_cases_list(d, app, &session->user, &filter, &cases, &err) != ST_OK) {
        database_failed(resp, "cannot list cases", &err);
        return;
    }
    cJSON *root = cJSON_CreateObject();
    char now[32];
    iso_now(now);
    cJSON_AddItemToObject(root, "cases", cases);
    cJSON_AddNumberToObject(root, "ack_timeout_s", (double)(app->config.ack_timeout_ms / 1000));
    cJSON_AddStringToObject(root, "now", now);
    console_response_json(resp, 200, root);
}

/* "/api/cases/<case>" or "/api/cases/<case>/<action>": the case number into out, the action
 * (or "") into action. False when the path has another shape. */
static bool split_case_path(const char *path, char *out, char *action, size_t action_size)
{
    const char *rest = path + strlen("/api/cases/");
    size_t len = strcspn(rest, "/");
    if (len == 0 || len >= CONSOLE_CASE_MAX)
        return false;
    memcpy(out, rest, len);
    out[len] = '\0';
    const char *tail = rest + len;
    if (*tail == '\0') {
        action[0] = '\0';
        return true;
    }
    tail++;
    if (strlen(tail) >= action_size || strchr(tail, '/') != NULL)
        return false;
    memcpy(action, tail, strlen(tail) + 1);
    return true;
}

static void not_found(console_response *resp)
{
    console_response_error(resp, 404, "not_found", "no such case");
}

static void case_detail(console_app *app, db *d, const char *case_number,
                        const console_session *session, console_response *resp)
{
    cJSON *item = NULL, *timeline = NULL;
    int64_t incident_id = 0;
    st_error err = {0};
    st_code status = console_case_find(d, app, &session->user, case_number, &item, &incident_id,
                                       &err);
    if (status == ST_NOT_FOUND) {
        not_found(resp);
        return;
    }
    if (status != ST_OK || console_case_timeline(d, incident_id, &timeline, &err) != ST_OK) {
        cJSON_Delete(item);
        database_failed(resp, "cannot read a case", &err);
        return;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "case", item);
    cJSON_AddItemToObject(root, "timeline", timeline);
    console_response_json(resp, 200, root);
}

static void reveal_phone(console_app *app, db *d, const console_request *req,
                         const char *case_number, const console_session *session,
                         console_response *resp)
{
    char reason[CONSOLE_REASON_MAX];
    if (!req->json_body || console_parse_reason(req->body, req->body_len, reason) != ST_OK) {
        console_response_error(resp, 400, "bad_request",
                               "the body must be {\"reason\":\"…\"} with 1..200 characters");
        return;
    }
    char phone[CONSOLE_PHONE_MAX];
    st_error err = {0};
    st_code status =
        console_case_reveal_phone(d, app, &session->user, case_number, reason, phone, &err);
    if (status == ST_NOT_FOUND) {
        not_found(resp);
        return;
    }
    if (status == ST_CONFLICT) {
        console_response_error(resp, 409, "phone_erased",
                               "no phone number on record for this case");
        return;
    }
    if (status != ST_OK) {
        if (status == ST_INTERNAL) {
            log_event(LOG_ERROR, "console.reveal", "cannot open a phone number", LOG_ERR(&err));
            console_response_error(resp, 500, "internal", "the phone number cannot be opened");
        } else {
            database_failed(resp, "cannot record a phone reveal", &err);
        }
        return;
    }
    met_counter_add(app->metrics.phone_reveals, 1);
    log_event(LOG_INFO, "console.reveal", "phone number revealed (audited)",
              LOG_STR("user", session->user.name), LOG_STR("case", case_number));
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "phone", phone);
    OPENSSL_cleanse(phone, sizeof(phone));
    console_response_json(resp, 200, root); /* the body is wiped when freed */
}

/* ---- live -------------------------------------------------------------------------------- */

static void events(console_app *app, db *d, const console_request *req,
                   const console_session *session, console_response *resp)
{
    if (!console_user_sees_cases(&session->user)) {
        console_response_error(resp, 403, "forbidden", "the live stream is for commanders");
        return;
    }
    char case_number[CONSOLE_PARAM_MAX];
    bool has_case = false;
    if (!query_param(req, "case", case_number, sizeof(case_number), &has_case, resp))
        return;
    if (has_case) {
        st_error err = {0};
        st_code status = console_case_find(d, app, &session->user, case_number, NULL, NULL, &err);
        if (status == ST_NOT_FOUND) {
            not_found(resp);
            return;
        }
        if (status != ST_OK) {
            database_failed(resp, "cannot read a case", &err);
            return;
        }
        /* console_case_find found it: a valid case number, shorter than CONSOLE_CASE_MAX. */
        memcpy(resp->case_filter, case_number, strlen(case_number) + 1);
    }
    resp->kind = CONSOLE_REPLY_EVENTS;
    resp->status = 200;
    resp->session = *session;
}

/* ---- statistics and map ------------------------------------------------------------------ */

static void stats(console_app *app, db *d, const console_request *req,
                  const console_session *session, console_response *resp)
{
    (void)app;
    console_stats_filter filter = {0};
    bool has_from = false, has_to = false, has_province = false;
    char province[CONSOLE_PARAM_MAX];
    if (!date_param(req, "from", &filter.from, &has_from, resp) ||
        !date_param(req, "to", &filter.to, &has_to, resp) ||
        !query_param(req, "province", province, sizeof(province), &has_province, resp))
        return;
    if (has_province) {
        if (!console_area_valid(province) || strcmp(province, "all") == 0) {
            console_response_error(resp, 400, "bad_request", "province must be a code like TH50");
            return;
        }
        memcpy(filter.province, province, strlen(province) + 1); /* "THnn": validated */
    }
    if (!has_to)
        console_today_bangkok(&filter.to);
    if (!has_from)
        console_date_add_days(&filter.to, -(CONSOLE_STATS_DAYS_DEFAULT - 1), &filter.from);
    int64_t days = console_date_days_between(&filter.from, &filter.to);
    if (days < 0 || days >= CONSOLE_STATS_DAYS_MAX) {
        console_response_error(resp, 400, "bad_request",
                               "from must not be after to, and the range at most 366 days");
        return;
    }
    cJSON *root = NULL;
    st_error err = {0};
    if (console_stats_query(d, &session->user, &filter, &root, &err) != ST_OK) {
        database_failed(resp, "cannot compute statistics", &err);
        return;
    }
    console_response_json(resp, 200, root);
}

static void map_provinces(console_app *app, db *d, const console_request *req,
                          console_response *resp)
{
    char *body = NULL;
    size_t len = 0;
    char etag[CONSOLE_ETAG_MAX];
    st_error err = {0};
    if (console_map_provinces(d, app, &body, &len, etag, &err) != ST_OK) {
        database_failed(resp, "cannot build the province map", &err);
        return;
    }
    snprintf(resp->etag, sizeof(resp->etag), "%s", etag);
    if (req->if_none_match[0] != '\0' && strcmp(req->if_none_match, etag) == 0) {
        free(body);
        resp->status = 304;
        return;
    }
    console_response_done(resp);
    resp->status = 200;
    resp->content_type = "application/geo+json";
    resp->body = body;
    resp->body_len = len;
}

/* ---- routing ----------------------------------------------------------------------------- */

bool console_http_is_export(const char *path)
{
    return strcmp(path, "/api/export.csv") == 0 || strcmp(path, "/api/export.eido") == 0;
}

static bool is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static bool method_is(const console_request *req, const char *method)
{
    return strcmp(req->method, method) == 0;
}

static void method_not_allowed(console_response *resp, const char *allow)
{
    console_response_error(resp, 405, "method_not_allowed", "method not allowed here");
    resp->allow = allow;
}

/* CSRF: state-changing requests carry the session's token in X-CSRF-Token. */
static bool csrf_ok(const console_request *req, const console_session *session,
                    console_response *resp)
{
    if (!console_token_equal(req->csrf_token, session->csrf)) {
        console_response_error(resp, 403, "csrf", "missing or wrong X-CSRF-Token");
        return false;
    }
    return true;
}

void console_http_handle(console_app *app, db *d, const console_request *req, int phase,
                         console_response *resp)
{
    const char *path = req->path;
    resp->kind = CONSOLE_REPLY_NOW;
    if (is(path, "/api/login")) {
        if (!method_is(req, "POST"))
            method_not_allowed(resp, "POST");
        else
            login(app, d, req, phase, resp);
        return;
    }

    enum { R_NONE, R_LOGOUT, R_ME, R_CASES, R_CASE, R_EVENTS, R_STATS, R_MAP } route = R_NONE;
    const char *allow = "GET";
    char case_number[CONSOLE_CASE_MAX] = "", action[32] = "";
    if (is(path, "/api/logout")) {
        route = R_LOGOUT;
        allow = "POST";
    } else if (is(path, "/api/me")) {
        route = R_ME;
    } else if (is(path, "/api/cases")) {
        route = R_CASES;
    } else if (strncmp(path, "/api/cases/", 11) == 0 &&
               split_case_path(path, case_number, action, sizeof(action)) &&
               (action[0] == '\0' || is(action, "reveal-phone"))) {
        route = R_CASE;
        allow = action[0] == '\0' ? "GET" : "POST";
    } else if (is(path, "/api/events")) {
        route = R_EVENTS;
    } else if (is(path, "/api/stats")) {
        route = R_STATS;
    } else if (is(path, "/api/map/provinces")) {
        route = R_MAP;
    }
    if (route == R_NONE) {
        console_response_error(resp, 404, "not_found", "no such resource");
        return;
    }
    if (!method_is(req, allow)) {
        method_not_allowed(resp, allow);
        return;
    }

    console_session session;
    if (!console_http_authenticate(app, d, req, &session, resp))
        return;
    if (method_is(req, "POST") && !csrf_ok(req, &session, resp))
        return;
    /* Case routes do not exist for analysts: 404, as for a case outside one's area. */
    if (route == R_CASES || route == R_CASE) {
        if (!console_user_sees_cases(&session.user)) {
            console_response_error(resp, 404, "not_found", "no such resource");
            return;
        }
    }
    switch (route) {
    case R_LOGOUT:
        logout(app, d, req, &session, resp);
        break;
    case R_ME:
        console_response_json(resp, 200, session_json(&session));
        break;
    case R_CASES:
        cases_list(app, d, req, &session, resp);
        break;
    case R_CASE:
        if (action[0] == '\0')
            case_detail(app, d, case_number, &session, resp);
        else
            reveal_phone(app, d, req, case_number, &session, resp);
        break;
    case R_EVENTS:
        events(app, d, req, &session, resp);
        break;
    case R_STATS:
        stats(app, d, req, &session, resp);
        break;
    case R_MAP:
        map_provinces(app, d, req, resp);
        break;
    case R_NONE: break;
    }
}
