/* console_export: streamed CSV and NENA EIDO exports. See console_export.h. */
#include "console_export.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "console_cases.h"
#include "console_stats.h"
#include "log.h"
#include "vault.h"

#define CHUNK_INITIAL (64 * 1024)

/* ---- a growable chunk -------------------------------------------------------------------- */

static bool reserve(char **buf, size_t *len, size_t *cap, size_t more)
{
    if (*len + more + 1 <= *cap)
        return true;
    size_t want = *cap > 0 ? *cap : CHUNK_INITIAL;
    while (want < *len + more + 1)
        want *= 2;
    char *grown = realloc(*buf, want);
    if (grown == NULL)
        return false;
    *buf = grown;
    *cap = want;
    return true;
}

static bool append(char **buf, size_t *len, size_t *cap, const char *text, size_t text_len)
{
    if (!reserve(buf, len, cap, text_len))
        return false;
    memcpy(*buf + *len, text, text_len);
    *len += text_len;
    (*buf)[*len] = '\0';
    return true;
}

bool console_csv_field(char **buf, size_t *len, size_t *cap, const char *value, bool last)
{
    const char *text = value != NULL ? value : "";
    size_t text_len = strlen(text);
    bool quote = strpbrk(text, ",\"\r\n") != NULL;
    if (!reserve(buf, len, cap, 2 * text_len + 4))
        return false;
    char *out = *buf + *len;
    if (quote)
        *out++ = '"';
    for (size_t i = 0; i < text_len; i++) {
        if (text[i] == '"')
            *out++ = '"';
        *out++ = text[i];
    }
    if (quote)
        *out++ = '"';
    if (last) {
        *out++ = '\r';
        *out++ = '\n';
    } else {
        *out++ = ',';
    }
    *len = (size_t)(out - *buf);
    (*buf)[*len] = '\0';
    return true;
}

/* ---- what to export ---------------------------------------------------------------------- */

typedef struct export_scope {
    console_session session;
    bool eido;
    bool has_case;
    char case_number[CONSOLE_CASE_MAX];
    char from[11], to[11];
    char filename[96];
} export_scope;

static bool query_value(const console_request *req, const char *name, char *out, size_t size,
                        bool *ret_present, console_response *resp)
{
    st_code status = console_query_param(req->query, req->query_len, name, out, size);
    *ret_present = status == ST_OK;
    if (status == ST_OK || status == ST_NOT_FOUND)
        return true;
    console_response_error(resp, 400, "bad_request", "a query parameter is malformed");
    return false;
}

/* Checks the request; false with resp filled. */
static bool prepare(console_app *app, db *d, const console_request *req, export_scope *scope,
                    console_response *resp)
{
    scope->eido = strcmp(req->path, "/api/export.eido") == 0;
    if (strcmp(req->method, "GET") != 0) {
        console_response_error(resp, 405, "method_not_allowed", "method not allowed here");
        resp->allow = "GET";
        return false;
    }
    if (!console_http_authenticate(app, d, req, &scope->session, resp))
        return false;
    const console_user *user = &scope->session.user;
    if (scope->eido && !console_user_sees_cases(user)) {
        console_response_error(resp, 404, "not_found", "no such resource");
        return false;
    }
    char from_text[CONSOLE_PARAM_MAX], to_text[CONSOLE_PARAM_MAX];
    bool has_from = false, has_to = false;
    if (!query_value(req, "case", scope->case_number, sizeof(scope->case_number),
                     &scope->has_case, resp) ||
        !query_value(req, "from", from_text, sizeof(from_text), &has_from, resp) ||
        !query_value(req, "to", to_text, sizeof(to_text), &has_to, resp))
        return false;
    if (scope->has_case) {
        st_error err = {0};
        st_code status =
            console_case_find(d, app, user, scope->case_number, NULL, NULL, &err);
        if (status == ST_NOT_FOUND) {
            console_response_error(resp, 404, "not_found", "no such case");
            return false;
        }
        if (status != ST_OK) {
            log_event(LOG_WARN, "console.db", "cannot read a case", LOG_ERR(&err));
            console_response_error(resp, 503, "unavailable", "the database is not reachable now");
            return false;
        }
        snprintf(scope->filename, sizeof(scope->filename), "ess-%s.%s", scope->case_number,
                 scope->eido ? "json" : "csv");
        return true;
    }
    console_date from, to;
    if ((has_from && console_parse_date(from_text, &from) != ST_OK) ||
        (has_to && console_parse_date(to_text, &to) != ST_OK)) {
        console_response_error(resp, 400, "bad_request", "from and to are dates YYYY-MM-DD");
        return false;
    }
    if (!has_to)
        console_today_bangkok(&to);
    if (!has_from)
        console_date_add_days(&to, -(CONSOLE_STATS_DAYS_DEFAULT - 1), &from);
    int64_t days = console_date_days_between(&from, &to);
    if (days < 0 || days >= CONSOLE_EXPORT_DAYS_MAX) {
        console_response_error(resp, 400, "bad_request",
                               "from must not be after to, and the range at most 3660 days");
        return false;
    }
    console_date_text(&from, scope->from);
    console_date_text(&to, scope->to);
    snprintf(scope->filename, sizeof(scope->filename), "ess-%s_%s.%s", scope->from, scope->to,
             scope->eido ? "json" : "csv");
    return true;
}

/* The WHERE of both exports; $1 area, $2 case, $3 from, $4 to, $5/$6 the keyset, $7 limit. */
#define EXPORT_WHERE                                                                             \
    "WHERE ($1 = 'all' OR i.province_code = $1) AND ($2::text IS NULL OR i.case_number = $2) "  \
    "  AND ($3::date IS NULL OR i.reported_at >= ($3::date::timestamp AT TIME ZONE "             \
    "       'Asia/Bangkok')) "                                                                   \
    "  AND ($4::date IS NULL OR i.reported_at < (($4::date + 1)::timestamp AT TIME ZONE "        \
    "       'Asia/Bangkok')) "                                                                   \
    "  AND ($5::timestamptz IS NULL OR (i.reported_at, i.id) > ($5::timestamptz, $6::bigint)) "  \
    "ORDER BY i.reported_at, i.id LIMIT $7::int"

typedef struct keyset {
    char reported_at[48]; /* reported_at::text of the last row, "" before the first page */
    char id[24];
} keyset;

static st_code fetch_page(db *d, const export_scope *scope, const char *sql, const keyset *after,
                          int64_t limit, db_result **ret_result, st_error *err)
{
    char limit_text[24];
    snprintf(limit_text, sizeof(limit_text), "%" PRId64, limit);
    const char *params[] = {console_user_area_param(&scope->session.user),
                            scope->has_case ? scope->case_number : NULL,
                            scope->has_case ? NULL : scope->from,
                            scope->has_case ? NULL : scope->to,
                            after->reported_at[0] != '\0' ? after->reported_at : NULL,
                            after->reported_at[0] != '\0' ? after->id : NULL,
                            limit_text};
    return db_exec(d, sql, 7, params, ret_result, err);
}

static void remember(keyset *after, const db_result *r, int row, int id_col, int at_col)
{
    snprintf(after->id, sizeof(after->id), "%s", db_result_value(r, row, id_col));
    snprintf(after->reported_at, sizeof(after->reported_at), "%s",
             db_result_value(r, row, at_col));
}

/* ---- CSV --------------------------------------------------------------------------------- */

static const char csv_header[] =
    "case_number,category,status,province_code,district_code,tambon_code,station_id,"
    "reported_at,routed_at,acknowledged_at,on_scene_at,closed_at,cancelled_at,"
    "escalation_level,outcome\r\n";

#define CSV_COLUMNS 15

static const char csv_sql[] =
    "SELECT i.case_number, i.category, i.status, i.province_code, i.district_code, "
    "i.tambon_code, i.station_id, " CONSOLE_TS("i.reported_at") ", " CONSOLE_TS("i.routed_at")
    ", " CONSOLE_TS("i.acknowledged_at") ", " CONSOLE_TS("i.on_scene_at") ", "
    CONSOLE_TS("i.closed_at") ", " CONSOLE_TS("i.cancelled_at") ", i.escalation_level, "
    "i.outcome, i.id, i.reported_at::text FROM incidents i " EXPORT_WHERE;

/* ---- EIDO -------------------------------------------------------------------------------- */

static const char eido_sql[] = "SELECT " CONSOLE_CASE_COLUMNS ", i.reported_at::text "
                               CONSOLE_CASE_FROM EXPORT_WHERE;

/* EIDO objects are written straight into the chunk (no tree per case): an export of many
 * thousands of cases then costs a few appends per field, not an allocation per field. */
typedef struct writer {
    char **buf;
    size_t *len, *cap;
    bool ok;
    bool first; /* no comma before the next member */
} writer;

static void raw(writer *w, const char *text)
{
    if (w->ok)
        w->ok = append(w->buf, w->len, w->cap, text, strlen(text));
}

/* A JSON string (value NULL = null). Values come from PostgreSQL (valid UTF-8): quotes,
 * backslashes and control characters are escaped. */
static void string(writer *w, const char *value)
{
    if (value == NULL) {
        raw(w, "null");
        return;
    }
    size_t len = strlen(value);
    if (!w->ok || !reserve(w->buf, w->len, w->cap, 6 * len + 2)) {
        w->ok = false;
        return;
    }
    char *out = *w->buf + *w->len;
    *out++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c == '"' || c == '\\') {
            *out++ = '\\';
            *out++ = (char)c;
        } else if (c < 0x20) {
            static const char hex[] = "0123456789abcdef";
            memcpy(out, "\\u00", 4);
            out[4] = hex[c >> 4];
            out[5] = hex[c & 15];
            out += 6;
        } else {
            *out++ = (char)c;
        }
    }
    *out++ = '"';
    *w->len = (size_t)(out - *w->buf);
    (*w->buf)[*w->len] = '\0';
}

static void key(writer *w, const char *name)
{
    raw(w, w->first ? "\"" : ",\"");
    raw(w, name);
    raw(w, "\":");
    w->first = false;
}

static void member_string(writer *w, const char *name, const char *value)
{
    key(w, name);
    string(w, value);
}

/* A number as PostgreSQL printed it (integer or float8 text), or null. */
static void member_number(writer *w, const char *name, const char *value)
{
    key(w, name);
    raw(w, value != NULL ? value : "null");
}

static void open_object(writer *w, const char *name)
{
    if (name != NULL)
        key(w, name);
    raw(w, "{");
    w->first = true;
}

static void close_object(writer *w)
{
    raw(w, "}");
    w->first = false;
}

static void component_id(writer *w, const char *case_number, const char *kind, int index)
{
    char id[CONSOLE_CASE_MAX + 48];
    if (index >= 0)
        snprintf(id, sizeof(id), "urn:ess:%s:%s:%d", case_number, kind, index);
    else
        snprintf(id, sizeof(id), "urn:ess:%s:%s", case_number, kind);
    member_string(w, "componentIdentifier", id);
}

/* Appends one EIDO object for case row `row` of r and its timeline rows [first, end) of t. */
static bool eido_append(char **buf, size_t *len, size_t *cap, const db_result *r, int row,
                        const db_result *t, int first, int end)
{
#define V(col) db_result_value(r, row, (col))
    writer w = {.buf = buf, .len = len, .cap = cap, .ok = true};
    const char *case_number = V(CONSOLE_CASE_COL_NUMBER);
    char name[160], uuid[VAULT_UUID_TEXT], message_id[VAULT_UUID_TEXT + 16];
    snprintf(name, sizeof(name), "%s@%s", case_number, V(CONSOLE_CASE_COL_UPDATED));
    vault_uuid_from_name("ess.eido", name, uuid);
    snprintf(message_id, sizeof(message_id), "urn:uuid:%s", uuid);
    open_object(&w, NULL);
    member_string(&w, "eidoMessageIdentifier", message_id);
    member_string(&w, "lastUpdateTimeStamp", V(CONSOLE_CASE_COL_UPDATED));

    open_object(&w, "incidentComponent");
    component_id(&w, case_number, "incident", -1);
    member_string(&w, "incidentTrackingIdentifier", case_number);
    member_string(&w, "lastUpdateTimeStamp", V(CONSOLE_CASE_COL_UPDATED));
    member_string(&w, "incidentCreationTimeStamp", V(CONSOLE_CASE_COL_REPORTED));
    member_string(&w, "incidentTypeCommonRegistryText", V(CONSOLE_CASE_COL_CATEGORY));
    member_string(&w, "incidentStatusCommonRegistryText", V(CONSOLE_CASE_COL_STATUS));
    member_string(&w, "incidentDispositionText", V(CONSOLE_CASE_COL_OUTCOME));
    member_number(&w, "escalationLevel", V(CONSOLE_CASE_COL_ESCALATION));
    close_object(&w);

    open_object(&w, "locationComponent");
    component_id(&w, case_number, "location", -1);
    member_number(&w, "lat", V(CONSOLE_CASE_COL_LAT));
    member_number(&w, "lon", V(CONSOLE_CASE_COL_LON));
    open_object(&w, "civicAddress");
    member_string(&w, "country", "TH");
    member_string(&w, "A1", V(CONSOLE_CASE_COL_PROVINCE_EN));
    member_string(&w, "A1_th", V(CONSOLE_CASE_COL_PROVINCE_TH));
    member_string(&w, "A1_code", V(CONSOLE_CASE_COL_PROVINCE));
    member_string(&w, "A2", V(CONSOLE_CASE_COL_DISTRICT_EN));
    member_string(&w, "A2_th", V(CONSOLE_CASE_COL_DISTRICT_TH));
    member_string(&w, "A2_code", V(CONSOLE_CASE_COL_DISTRICT));
    member_string(&w, "A3", V(CONSOLE_CASE_COL_TAMBON_EN));
    member_string(&w, "A3_th", V(CONSOLE_CASE_COL_TAMBON_TH));
    member_string(&w, "A3_code", V(CONSOLE_CASE_COL_TAMBON));
    close_object(&w);
    close_object(&w);

    /* Agencies: the responsible station, and every team that acted on the case. */
    key(&w, "agencyComponent");
    raw(&w, "[");
    int agencies = 0;
    if (V(CONSOLE_CASE_COL_STATION) != NULL) {
        open_object(&w, NULL);
        component_id(&w, case_number, "agency", agencies++);
        member_string(&w, "agencyIdentifier", V(CONSOLE_CASE_COL_STATION));
        member_string(&w, "agencyName", V(CONSOLE_CASE_COL_STATION_EN) != NULL
                                            ? V(CONSOLE_CASE_COL_STATION_EN)
                                            : V(CONSOLE_CASE_COL_STATION_TH));
        member_string(&w, "agencyName_th", V(CONSOLE_CASE_COL_STATION_TH));
        member_string(&w, "agencyRoleText", "responsible police station");
        close_object(&w);
    }
    for (int i = first; i < end; i++) {
        cJSON *detail = console_timeline_detail(db_result_value(t, i, 5));
        const cJSON *team = cJSON_GetObjectItemCaseSensitive(detail, "team");
        if (cJSON_IsString(team)) {
            if (agencies > 0)
                raw(&w, ",");
            open_object(&w, NULL);
            component_id(&w, case_number, "agency", agencies++);
            member_string(&w, "agencyIdentifier", team->valuestring);
            member_string(&w, "agencyName", team->valuestring);
            member_string(&w, "agencyRoleText", "multidisciplinary team");
            close_object(&w);
        }
        cJSON_Delete(detail);
    }
    raw(&w, "]");
    w.first = false;

    /* Notes: the timeline, one note per entry, with the facts its detail may show. */
    key(&w, "noteComponent");
    raw(&w, "[");
    for (int i = first; i < end; i++) {
        const char *kind = db_result_value(t, i, 2), *actor_type = db_result_value(t, i, 3);
        const char *actor = db_result_value(t, i, 4);
        bool named = actor_type != NULL && strcmp(actor_type, "reporter") != 0 && actor != NULL;
        char text[200];
        snprintf(text, sizeof(text), "%s by %s%s%s", kind != NULL ? kind : "event",
                 actor_type != NULL ? actor_type : "system", named ? " " : "",
                 named ? actor : "");
        if (i > first)
            raw(&w, ",");
        open_object(&w, NULL);
        component_id(&w, case_number, "note", i - first);
        member_string(&w, "noteDateTimeStamp", db_result_value(t, i, 1));
        member_string(&w, "noteActionType", kind);
        member_string(&w, "noteText", text);
        member_string(&w, "authorRole", actor_type);
        cJSON *detail = console_timeline_detail(db_result_value(t, i, 5));
        char *detail_text = detail != NULL ? cJSON_PrintUnformatted(detail) : NULL;
        cJSON_Delete(detail);
        key(&w, "detail");
        raw(&w, detail_text != NULL ? detail_text : "{}");
        free(detail_text);
        close_object(&w);
    }
    raw(&w, "]");
    close_object(&w);
#undef V
    return w.ok;
}

/* The timeline rows of the page's incidents (ids as a PostgreSQL array literal). */
static st_code page_timelines(db *d, const db_result *r, db_result **ret_timelines, st_error *err)
{
    size_t cap = (size_t)db_result_rows(r) * 24 + 4;
    char *ids = malloc(cap);
    if (ids == NULL)
        return st_fail(err, ST_NOMEM, "out of memory");
    size_t used = 0;
    ids[used++] = '{';
    for (int row = 0; row < db_result_rows(r); row++)
        used += (size_t)snprintf(ids + used, cap - used, "%s%s", row > 0 ? "," : "",
                                 db_result_value(r, row, CONSOLE_CASE_COL_ID));
    snprintf(ids + used, cap - used, "}");
    const char *params[] = {ids};
    st_code status = db_exec(d,
                             "SELECT incident_id, " CONSOLE_TS("at") ", kind, actor_type, actor, "
                             "detail::text FROM incident_events "
                             "WHERE incident_id = ANY($1::bigint[]) ORDER BY incident_id, at, id",
                             1, params, ret_timelines, err);
    free(ids);
    return status;
}

/* ---- the run ----------------------------------------------------------------------------- */

void console_export_run(console_app *app, db *d, const console_request *req, console_sink *sink)
{
    console_response resp = {.kind = CONSOLE_REPLY_NOW};
    export_scope scope = {0};
    if (!prepare(app, d, req, &scope, &resp)) {
        sink->answer(sink->closure, &resp);
        console_response_done(&resp);
        return;
    }
    const char *type = scope.eido ? "application/json; charset=utf-8" : "text/csv; charset=utf-8";
    char disposition[160];
    snprintf(disposition, sizeof(disposition), "attachment; filename=\"%s\"", scope.filename);
    char *chunk = NULL;
    size_t len = 0, cap = 0;
    keyset after = {0};
    int64_t exported = 0, limit = app->config.export_max_rows;
    bool ok = scope.eido ? append(&chunk, &len, &cap, "[", 1)
                         : append(&chunk, &len, &cap, csv_header, sizeof(csv_header) - 1);
    bool more = true;
    st_error err = {0};
    while (ok && more) {
        int64_t page = scope.eido ? CONSOLE_EXPORT_EIDO_PAGE : CONSOLE_EXPORT_PAGE;
        if (page > limit - exported)
            page = limit - exported;
        db_result *r = NULL, *t = NULL;
        if (page <= 0) {
            more = false;
        } else if (fetch_page(d, &scope, scope.eido ? eido_sql : csv_sql, &after, page, &r,
                              &err) != ST_OK ||
                   (scope.eido && db_result_rows(r) > 0 &&
                    page_timelines(d, r, &t, &err) != ST_OK)) {
            log_event(LOG_WARN, "console.export", "export cut: the database failed",
                      LOG_ERR(&err), LOG_INT("rows", exported));
            ok = false;
        } else {
            int rows = db_result_rows(r);
            more = rows == page;
            int t_row = 0;
            for (int row = 0; ok && row < rows; row++) {
                if (scope.eido) {
                    const char *id = db_result_value(r, row, CONSOLE_CASE_COL_ID);
                    int first = t_row;
                    while (t_row < db_result_rows(t) &&
                           strcmp(db_result_value(t, t_row, 0), id) == 0)
                        t_row++;
                    ok = (exported == 0 || append(&chunk, &len, &cap, ",", 1)) &&
                         eido_append(&chunk, &len, &cap, r, row, t, first, t_row);
                    if (ok && row == rows - 1)
                        remember(&after, r, row, CONSOLE_CASE_COL_ID, CONSOLE_CASE_COL_COUNT);
                } else {
                    for (int col = 0; ok && col < CSV_COLUMNS; col++)
                        ok = console_csv_field(&chunk, &len, &cap, db_result_value(r, row, col),
                                               col == CSV_COLUMNS - 1);
                    if (ok && row == rows - 1)
                        remember(&after, r, row, CSV_COLUMNS, CSV_COLUMNS + 1);
                }
                exported++;
            }
            met_counter_add(app->metrics.export_rows, (uint64_t)rows);
        }
        db_result_destroy(r);
        db_result_destroy(t);
        if (ok && !more && scope.eido)
            ok = append(&chunk, &len, &cap, "]", 1);
        /* One page per chunk: the next page is read only once the client took this one. */
        if (ok && len > 0) {
            ok = sink->write(sink->closure, type, disposition, chunk, len);
            len = 0;
        }
        if (ok && exported >= limit && more) {
            log_event(LOG_WARN, "console.export_limit",
                      "export cut at ESS_CONSOLE_EXPORT_MAX_ROWS", LOG_INT("rows", exported));
            if (scope.eido) /* keep the array well-formed */
                ok = sink->write(sink->closure, type, disposition, "]", 1);
            more = false;
        }
    }
    free(chunk);
    sink->finish(sink->closure, ok);
}
