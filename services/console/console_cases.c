/* console_cases: CASE objects, lists, one case, the timeline, revealing the phone. See
 * console_cases.h. */
#include "console_cases.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "console_audit.h"
#include "conv_phone.h"
#include "vault.h"

/* The context the conversation seals phone numbers under (services/conversation/conv_db.h). */
#define PHONE_CONTEXT "incident.phone"

static bool add_text(cJSON *object, const char *key, const char *value)
{
    return value != NULL ? cJSON_AddStringToObject(object, key, value) != NULL
                         : cJSON_AddNullToObject(object, key) != NULL;
}

static bool add_number(cJSON *object, const char *key, const char *value)
{
    return value != NULL ? cJSON_AddNumberToObject(object, key, strtod(value, NULL)) != NULL
                         : cJSON_AddNullToObject(object, key) != NULL;
}

/* Opens the bytea text ("\\x...") of a sealed phone into phone (CONSOLE_PHONE_MAX bytes). */
static st_code open_phone(const vault_keys *keys, const char *bytea_text, char *phone,
                          st_error *err)
{
    char *plain = NULL;
    size_t plain_len = 0;
    st_code status = vault_open_hex(keys, PHONE_CONTEXT, bytea_text, &plain, &plain_len, err);
    if (status == ST_OK) {
        if (plain_len == 0 || plain_len >= CONSOLE_PHONE_MAX)
            status = st_fail(err, ST_INVALID, "the sealed phone is not a phone number");
        else
            memcpy(phone, plain, plain_len + 1);
        OPENSSL_cleanse(plain, plain_len);
        free(plain);
    }
    return status;
}

cJSON *console_case_json(const console_app *app, const db_result *r, int row)
{
    static const struct {
        const char *key;
        int col;
        bool number;
    } fields[] = {
        {"case_number", CONSOLE_CASE_COL_NUMBER, false},
        {"category", CONSOLE_CASE_COL_CATEGORY, false},
        {"status", CONSOLE_CASE_COL_STATUS, false},
        {"province_code", CONSOLE_CASE_COL_PROVINCE, false},
        {"province_th", CONSOLE_CASE_COL_PROVINCE_TH, false},
        {"province_en", CONSOLE_CASE_COL_PROVINCE_EN, false},
        {"district_th", CONSOLE_CASE_COL_DISTRICT_TH, false},
        {"district_en", CONSOLE_CASE_COL_DISTRICT_EN, false},
        {"tambon_th", CONSOLE_CASE_COL_TAMBON_TH, false},
        {"tambon_en", CONSOLE_CASE_COL_TAMBON_EN, false},
        {"station_id", CONSOLE_CASE_COL_STATION, false},
        {"station_th", CONSOLE_CASE_COL_STATION_TH, false},
        {"station_en", CONSOLE_CASE_COL_STATION_EN, false},
        {"station_distance_m", CONSOLE_CASE_COL_STATION_DISTANCE, true},
        {"lat", CONSOLE_CASE_COL_LAT, true},
        {"lon", CONSOLE_CASE_COL_LON, true},
        {"reported_at", CONSOLE_CASE_COL_REPORTED, false},
        {"routed_at", CONSOLE_CASE_COL_ROUTED, false},
        {"acknowledged_at", CONSOLE_CASE_COL_ACKNOWLEDGED, false},
        {"on_scene_at", CONSOLE_CASE_COL_ON_SCENE, false},
        {"closed_at", CONSOLE_CASE_COL_CLOSED, false},
        {"cancelled_at", CONSOLE_CASE_COL_CANCELLED, false},
        {"acknowledged_by", CONSOLE_CASE_COL_ACKNOWLEDGED_BY, false},
        {"escalation_level", CONSOLE_CASE_COL_ESCALATION, true},
        {"outcome", CONSOLE_CASE_COL_OUTCOME, false},
    };
    cJSON *item = cJSON_CreateObject();
    if (item == NULL)
        return NULL;
    bool ok = true;
    for (size_t i = 0; ok && i < sizeof(fields) / sizeof(fields[0]); i++) {
        const char *value = db_result_value(r, row, fields[i].col);
        ok = fields[i].number ? add_number(item, fields[i].key, value)
                              : add_text(item, fields[i].key, value);
    }
    char masked[CONV_PHONE_MASKED_MAX] = "";
    const char *sealed = db_result_value(r, row, CONSOLE_CASE_COL_PHONE);
    if (sealed != NULL) {
        char phone[CONSOLE_PHONE_MAX];
        /* A phone that does not open (another key) is shown as none rather than failing the
         * whole list; the reveal says why. */
        if (open_phone(&app->keys, sealed, phone, NULL) == ST_OK) {
            conv_phone_mask(phone, masked);
            OPENSSL_cleanse(phone, sizeof(phone));
        }
    }
    ok = ok && add_text(item, "phone_masked", masked[0] != '\0' ? masked : NULL);
    if (!ok) {
        cJSON_Delete(item);
        return NULL;
    }
    return item;
}

st_code console_cases_list(db *d, const console_app *app, const console_user *user,
                           const console_case_filter *filter, cJSON **ret_cases, st_error *err)
{
    char from[11] = "", to[11] = "", limit[24];
    if (filter->has_from)
        console_date_text(&filter->from, from);
    if (filter->has_to)
        console_date_text(&filter->to, to);
    snprintf(limit, sizeof(limit), "%" PRId64, filter->limit);
    const char *params[] = {console_user_area_param(user), filter->open_only ? "open" : "all",
                            filter->has_from ? from : NULL, filter->has_to ? to : NULL, limit};
    db_result *r = NULL;
    cJSON *cases = NULL;
    st_code status = db_exec(
        d,
        CONSOLE_CASE_SELECT
        "WHERE ($1 = 'all' OR i.province_code = $1) "
        "  AND ($2 = 'all' OR i.status NOT IN ('closed', 'cancelled')) "
        "  AND ($3::date IS NULL OR i.reported_at >= ($3::date::timestamp AT TIME ZONE "
        "       'Asia/Bangkok')) "
        "  AND ($4::date IS NULL OR i.reported_at < (($4::date + 1)::timestamp AT TIME ZONE "
        "       'Asia/Bangkok')) "
        "ORDER BY i.reported_at DESC, i.id DESC LIMIT $5::int",
        5, params, &r, err);
    if (status != ST_OK)
        goto cleanup;
    cases = cJSON_CreateArray();
    for (int row = 0; cases != NULL && row < db_result_rows(r); row++) {
        cJSON *item = console_case_json(app, r, row);
        if (item == NULL || !cJSON_AddItemToArray(cases, item)) {
            cJSON_Delete(item);
            cJSON_Delete(cases);
            cases = NULL;
        }
    }
    if (cases == NULL) {
        status = st_fail(err, ST_NOMEM, "out of memory listing cases");
        goto cleanup;
    }
    *ret_cases = cases;
cleanup:
    db_result_destroy(r);
    return status;
}

/* Whether the user's area holds the case of row 0. */
static bool sees_row(const console_user *user, const db_result *r)
{
    return console_user_sees_province(user, db_result_value(r, 0, CONSOLE_CASE_COL_PROVINCE));
}

/* The row of a case by number; ST_NOT_FOUND when absent. *ret_result owned by the caller. */
static st_code case_row(db *d, const char *case_number, db_result **ret_result, st_error *err)
{
    if (!console_case_number_valid(case_number))
        return ST_NOT_FOUND;
    const char *params[] = {case_number};
    db_result *r = NULL;
    st_code status =
        db_exec(d, CONSOLE_CASE_SELECT "WHERE i.case_number = $1", 1, params, &r, err);
    if (status == ST_OK && db_result_rows(r) != 1)
        status = ST_NOT_FOUND;
    if (status == ST_OK)
        *ret_result = r;
    else
        db_result_destroy(r);
    return status;
}

st_code console_case_find(db *d, const console_app *app, const console_user *user,
                          const char *case_number, cJSON **ret_case, int64_t *ret_incident_id,
                          st_error *err)
{
    db_result *r = NULL;
    st_code status = case_row(d, case_number, &r, err);
    if (status != ST_OK)
        return status;
    if (!sees_row(user, r)) {
        status = ST_NOT_FOUND;
        goto cleanup;
    }
    if (ret_case != NULL) {
        cJSON *item = console_case_json(app, r, 0);
        if (item == NULL) {
            status = st_fail(err, ST_NOMEM, "out of memory");
            goto cleanup;
        }
        *ret_case = item;
    }
    if (ret_incident_id != NULL)
        *ret_incident_id = strtoll(db_result_value(r, 0, CONSOLE_CASE_COL_ID), NULL, 10);
cleanup:
    db_result_destroy(r);
    return status;
}

/* Facts of a timeline detail that may be shown (scalars only): the rest — typed texts
 * (sealed or not), locations, LINE ids, message ids — never leaves the database here. */
static const char *const detail_keys[] = {
    "category",   "has_phone",     "channel",       "type",         "reason",
    "match",      "geo_version",   "province_code", "district_code", "tambon_code",
    "station_id", "station_distance_m", "from_level", "to_level",   "reminded_groups",
    "new_groups", "step",          "last_reminder", "level",        "team",
    "member_named_by_line", "outcome", "by",        "status",
};

cJSON *console_timeline_detail(const char *detail_text)
{
    cJSON *shown = cJSON_CreateObject();
    cJSON *detail = detail_text != NULL ? cJSON_Parse(detail_text) : NULL;
    if (shown == NULL || !cJSON_IsObject(detail))
        goto done;
    for (size_t i = 0; i < sizeof(detail_keys) / sizeof(detail_keys[0]); i++) {
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(detail, detail_keys[i]);
        if (cJSON_IsString(value) && strlen(value->valuestring) <= 200)
            cJSON_AddStringToObject(shown, detail_keys[i], value->valuestring);
        else if (cJSON_IsNumber(value))
            cJSON_AddNumberToObject(shown, detail_keys[i], value->valuedouble);
        else if (cJSON_IsBool(value))
            cJSON_AddBoolToObject(shown, detail_keys[i], cJSON_IsTrue(value));
    }
done:
    cJSON_Delete(detail);
    return shown;
}

st_code console_case_timeline(db *d, int64_t incident_id, cJSON **ret_timeline, st_error *err)
{
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, incident_id);
    const char *params[] = {id};
    db_result *r = NULL;
    st_code status = db_exec(d,
                             "SELECT " CONSOLE_TS("at") ", kind, actor_type, actor, detail::text "
                             "FROM incident_events WHERE incident_id = $1::bigint "
                             "ORDER BY at, id LIMIT 1000",
                             1, params, &r, err);
    if (status != ST_OK)
        return status;
    cJSON *timeline = cJSON_CreateArray();
    for (int row = 0; timeline != NULL && row < db_result_rows(r); row++) {
        cJSON *entry = cJSON_CreateObject();
        if (entry == NULL || !cJSON_AddItemToArray(timeline, entry)) {
            cJSON_Delete(entry);
            cJSON_Delete(timeline);
            timeline = NULL;
            break;
        }
        const char *actor_type = db_result_value(r, row, 2);
        /* A reporter's entries name nobody: the reporter is the citizen. */
        bool named = actor_type != NULL && strcmp(actor_type, "reporter") != 0;
        cJSON *detail = console_timeline_detail(db_result_value(r, row, 4));
        bool ok = add_text(entry, "at", db_result_value(r, row, 0)) &&
                  add_text(entry, "kind", db_result_value(r, row, 1)) &&
                  add_text(entry, "actor_type", actor_type) &&
                  add_text(entry, "actor", named ? db_result_value(r, row, 3) : NULL) &&
                  detail != NULL && cJSON_AddItemToObject(entry, "detail", detail);
        if (!ok) {
            if (cJSON_GetObjectItemCaseSensitive(entry, "detail") == NULL)
                cJSON_Delete(detail);
            cJSON_Delete(timeline);
            timeline = NULL;
        }
    }
    db_result_destroy(r);
    if (timeline == NULL)
        return st_fail(err, ST_NOMEM, "out of memory building a timeline");
    *ret_timeline = timeline;
    return ST_OK;
}

st_code console_case_reveal_phone(db *d, const console_app *app, const console_user *user,
                                  const char *case_number, const char *reason, char *ret_phone,
                                  st_error *err)
{
    db_result *r = NULL;
    char phone[CONSOLE_PHONE_MAX] = "";
    st_code status = case_row(d, case_number, &r, err);
    if (status != ST_OK)
        return status;
    if (!sees_row(user, r)) {
        status = ST_NOT_FOUND;
        goto cleanup;
    }
    const char *sealed = db_result_value(r, 0, CONSOLE_CASE_COL_PHONE);
    if (sealed == NULL) {
        status = st_fail(err, ST_CONFLICT, "no phone on record (none given, or erased)");
        goto cleanup;
    }
    /* Opened first (a key problem is no read), recorded next, given last. */
    if ((status = open_phone(&app->keys, sealed, phone, err)) != ST_OK) {
        st_wrap(err, "the phone does not open with this ESS_DATA_KEY");
        status = ST_INTERNAL;
        goto cleanup;
    }
    int64_t incident_id = strtoll(db_result_value(r, 0, CONSOLE_CASE_COL_ID), NULL, 10);
    if ((status = console_audit_pii_read(d, case_number, incident_id, user->name, reason, err)) !=
        ST_OK) {
        /* Whatever the cause, the read was not recorded: the caller may not have the phone. */
        st_wrap(err, "the read could not be recorded in the audit log");
        status = ST_UNAVAILABLE;
        goto cleanup;
    }
    memcpy(ret_phone, phone, sizeof(phone));
cleanup:
    OPENSSL_cleanse(phone, sizeof(phone));
    db_result_destroy(r);
    return status;
}

st_code console_case_for_event(db *d, const console_app *app, const char *case_number,
                               char **ret_json, char *province, st_error *err)
{
    db_result *r = NULL;
    st_code status = case_row(d, case_number, &r, err);
    if (status != ST_OK)
        return status;
    cJSON *item = console_case_json(app, r, 0);
    char *text = item != NULL ? cJSON_PrintUnformatted(item) : NULL;
    cJSON_Delete(item);
    if (text == NULL) {
        status = st_fail(err, ST_NOMEM, "out of memory");
    } else {
        const char *code = db_result_value(r, 0, CONSOLE_CASE_COL_PROVINCE);
        snprintf(province, CONSOLE_AREA_MAX, "%s",
                 code != NULL && console_area_valid(code) ? code : "");
        *ret_json = text;
    }
    db_result_destroy(r);
    return status;
}
