/* console_stats: statistics and the province map. See console_stats.h. */
#include "console_stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

#include "console_http.h"
#include "vault.h"

/* ---- dates ------------------------------------------------------------------------------- */

static void civil_from_days(int64_t z, console_date *ret_date)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    ret_date->year = (int)(y + (m <= 2));
    ret_date->month = (int)m;
    ret_date->day = (int)d;
}

void console_date_add_days(const console_date *date, int64_t days, console_date *ret_date)
{
    static const console_date epoch = {.year = 1970, .month = 1, .day = 1};
    civil_from_days(console_date_days_between(&epoch, date) + days, ret_date);
}

void console_today_bangkok(console_date *ret_date)
{
    int64_t seconds = (int64_t)time(NULL) + 7 * 3600;
    int64_t days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400;
    civil_from_days(days, ret_date);
}

/* ---- statistics -------------------------------------------------------------------------- */

static void add_number_or_null(cJSON *object, const char *key, const char *value)
{
    if (value != NULL)
        cJSON_AddNumberToObject(object, key, round(strtod(value, NULL) * 10) / 10);
    else
        cJSON_AddNullToObject(object, key);
}

static void add_text_or_null(cJSON *object, const char *key, const char *value)
{
    if (value != NULL)
        cJSON_AddStringToObject(object, key, value);
    else
        cJSON_AddNullToObject(object, key);
}

enum {
    S_IS_TOTAL,
    S_DAY,
    S_PROVINCE,
    S_PROVINCE_TH,
    S_PROVINCE_EN,
    S_CATEGORY,
    S_REPORTS,
    S_TAKE_P50,
    S_TAKE_P90,
    S_SCENE_P50,
    S_SCENE_P90,
    S_ESCALATIONS,
    S_CANCELLATIONS,
    S_FALSE_ALARMS,
};

/* The measures of a row, shared by rows and totals. */
static void add_measures(cJSON *object, const db_result *r, int row)
{
    cJSON_AddNumberToObject(object, "reports", strtod(db_result_value(r, row, S_REPORTS), NULL));
    add_number_or_null(object, "take_p50_s", db_result_value(r, row, S_TAKE_P50));
    add_number_or_null(object, "take_p90_s", db_result_value(r, row, S_TAKE_P90));
    add_number_or_null(object, "scene_p50_s", db_result_value(r, row, S_SCENE_P50));
    add_number_or_null(object, "scene_p90_s", db_result_value(r, row, S_SCENE_P90));
    cJSON_AddNumberToObject(object, "escalations",
                            strtod(db_result_value(r, row, S_ESCALATIONS), NULL));
    cJSON_AddNumberToObject(object, "cancellations",
                            strtod(db_result_value(r, row, S_CANCELLATIONS), NULL));
    cJSON_AddNumberToObject(object, "false_alarms",
                            strtod(db_result_value(r, row, S_FALSE_ALARMS), NULL));
}

st_code console_stats_query(db *d, const console_user *user, const console_stats_filter *filter,
                            cJSON **ret_root, st_error *err)
{
    char from[11], to[11];
    console_date_text(&filter->from, from);
    console_date_text(&filter->to, to);
    const char *params[] = {from, to, console_user_area_param(user),
                            filter->province[0] != '\0' ? filter->province : NULL};
    db_result *r = NULL;
    /* One pass: the rows and the totals (the empty grouping set). */
    st_code status = db_exec(
        d,
        "WITH base AS ("
        "  SELECT (i.reported_at AT TIME ZONE 'Asia/Bangkok')::date AS day, i.province_code, "
        "    i.category, extract(epoch FROM i.acknowledged_at - i.reported_at) AS take_s, "
        "    extract(epoch FROM i.on_scene_at - i.reported_at) AS scene_s, "
        "    i.escalation_level > 0 AS escalated, i.status = 'cancelled' AS cancelled, "
        "    coalesce(i.outcome = 'false_alarm', false) AS false_alarm "
        "  FROM incidents i "
        "  WHERE i.reported_at >= ($1::date::timestamp AT TIME ZONE 'Asia/Bangkok') "
        "    AND i.reported_at < (($2::date + 1)::timestamp AT TIME ZONE 'Asia/Bangkok') "
        "    AND ($3 = 'all' OR i.province_code = $3) "
        "    AND ($4::text IS NULL OR i.province_code = $4)) "
        "SELECT GROUPING(b.day) = 1, b.day::text, b.province_code, p.name_th, p.name_en, "
        "  b.category, count(*), "
        "  percentile_cont(0.5) WITHIN GROUP (ORDER BY b.take_s), "
        "  percentile_cont(0.9) WITHIN GROUP (ORDER BY b.take_s), "
        "  percentile_cont(0.5) WITHIN GROUP (ORDER BY b.scene_s), "
        "  percentile_cont(0.9) WITHIN GROUP (ORDER BY b.scene_s), "
        "  count(*) FILTER (WHERE b.escalated), count(*) FILTER (WHERE b.cancelled), "
        "  count(*) FILTER (WHERE b.false_alarm) "
        "FROM base b LEFT JOIN provinces p ON p.code = b.province_code "
        "GROUP BY GROUPING SETS ((b.day, b.province_code, p.name_th, p.name_en, b.category), ()) "
        "ORDER BY 1, b.day, b.province_code NULLS LAST, b.category",
        4, params, &r, err);
    if (status != ST_OK)
        return status;
    cJSON *root = cJSON_CreateObject();
    cJSON *rows = cJSON_AddArrayToObject(root, "rows");
    cJSON *totals = cJSON_AddObjectToObject(root, "totals");
    bool have_totals = false;
    for (int row = 0; rows != NULL && row < db_result_rows(r); row++) {
        if (strcmp(db_result_value(r, row, S_IS_TOTAL), "t") == 0) {
            add_measures(totals, r, row);
            have_totals = true;
            continue;
        }
        cJSON *item = cJSON_CreateObject();
        add_text_or_null(item, "day", db_result_value(r, row, S_DAY));
        add_text_or_null(item, "province_code", db_result_value(r, row, S_PROVINCE));
        add_text_or_null(item, "province_th", db_result_value(r, row, S_PROVINCE_TH));
        add_text_or_null(item, "province_en", db_result_value(r, row, S_PROVINCE_EN));
        add_text_or_null(item, "category", db_result_value(r, row, S_CATEGORY));
        add_measures(item, r, row);
        cJSON_AddItemToArray(rows, item);
    }
    if (totals != NULL && !have_totals) {
        cJSON_AddNumberToObject(totals, "reports", 0);
        static const char *const none[] = {"take_p50_s", "take_p90_s", "scene_p50_s",
                                           "scene_p90_s"};
        for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
            cJSON_AddNullToObject(totals, none[i]);
        cJSON_AddNumberToObject(totals, "escalations", 0);
        cJSON_AddNumberToObject(totals, "cancellations", 0);
        cJSON_AddNumberToObject(totals, "false_alarms", 0);
    }
    cJSON_AddStringToObject(root, "from", from);
    cJSON_AddStringToObject(root, "to", to);
    db_result_destroy(r);
    if (rows == NULL || totals == NULL) {
        cJSON_Delete(root);
        return st_fail(err, ST_NOMEM, "out of memory building statistics");
    }
    *ret_root = root;
    return ST_OK;
}

/* ---- map --------------------------------------------------------------------------------- */

static double round3(double value)
{
    return round(value * 1000.0) / 1000.0;
}

/* A ring: [[lon, lat], ...]; rounds and drops repeats, keeping at least 4 points. */
static void round_ring(cJSON *ring)
{
    cJSON *point = ring != NULL ? ring->child : NULL;
    double last_lon = NAN, last_lat = NAN;
    int kept = 0, total = cJSON_GetArraySize(ring);
    int index = 0;
    while (point != NULL) {
        cJSON *next = point->next;
        cJSON *lon = cJSON_GetArrayItem(point, 0), *lat = cJSON_GetArrayItem(point, 1);
        index++;
        if (cJSON_IsNumber(lon) && cJSON_IsNumber(lat)) {
            cJSON_SetNumberValue(lon, round3(lon->valuedouble));
            cJSON_SetNumberValue(lat, round3(lat->valuedouble));
            bool repeat = lon->valuedouble == last_lon && lat->valuedouble == last_lat;
            /* Remaining points (this one included) still needed to reach 4: keep them. */
            bool needed = kept + (total - index + 1) <= 4;
            bool last = next == NULL; /* the closing point stays */
            if (repeat && !needed && !last) {
                cJSON_Delete(cJSON_DetachItemViaPointer(ring, point));
            } else {
                last_lon = lon->valuedouble;
                last_lat = lat->valuedouble;
                kept++;
            }
        }
        point = next;
    }
}

void console_geometry_round(cJSON *geometry)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(geometry, "type");
    cJSON *coordinates = cJSON_GetObjectItemCaseSensitive(geometry, "coordinates");
    if (!cJSON_IsString(type) || !cJSON_IsArray(coordinates))
        return;
    cJSON *polygon;
    if (strcmp(type->valuestring, "Polygon") == 0) {
        cJSON *ring;
        cJSON_ArrayForEach(ring, coordinates) round_ring(ring);
    } else if (strcmp(type->valuestring, "MultiPolygon") == 0) {
        cJSON_ArrayForEach(polygon, coordinates)
        {
            cJSON *ring;
            cJSON_ArrayForEach(ring, polygon) round_ring(ring);
        }
    }
}

static st_code build_map(db *d, int64_t version, console_map_cache *cache, st_error *err)
{
    db_result *r = NULL;
    st_code status = db_exec(d,
                             "SELECT code, name_th, name_en, boundary::text FROM provinces "
                             "ORDER BY code",
                             0, NULL, &r, err);
    if (status != ST_OK)
        return status;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "type", "FeatureCollection");
    cJSON *features = cJSON_AddArrayToObject(root, "features");
    for (int row = 0; features != NULL && row < db_result_rows(r); row++) {
        cJSON *feature = cJSON_CreateObject();
        cJSON_AddStringToObject(feature, "type", "Feature");
        cJSON *properties = cJSON_AddObjectToObject(feature, "properties");
        cJSON_AddStringToObject(properties, "code", db_result_value(r, row, 0));
        cJSON_AddStringToObject(properties, "name_th", db_result_value(r, row, 1));
        cJSON_AddStringToObject(properties, "name_en", db_result_value(r, row, 2));
        const char *boundary = db_result_value(r, row, 3);
        cJSON *geometry = boundary != NULL ? cJSON_Parse(boundary) : NULL;
        if (geometry != NULL) {
            console_geometry_round(geometry);
            cJSON_AddItemToObject(feature, "geometry", geometry);
        } else {
            cJSON_AddNullToObject(feature, "geometry");
        }
        cJSON_AddItemToArray(features, feature);
    }
    db_result_destroy(r);
    char *text = features != NULL ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (text == NULL)
        return st_fail(err, ST_NOMEM, "out of memory building the map");
    unsigned char digest[32];
    char hex[25];
    size_t len = strlen(text);
    SHA256((const unsigned char *)text, len, digest);
    vault_hex(digest, 12, hex);
    free(cache->body);
    cache->body = text;
    cache->len = len;
    cache->geo_version = version;
    snprintf(cache->etag, sizeof(cache->etag), "\"%s\"", hex);
    return ST_OK;
}

st_code console_map_provinces(db *d, console_app *app, char **ret_body, size_t *ret_len,
                              char *ret_etag, st_error *err)
{
    db_result *r = NULL;
    st_code status = db_exec(d, "SELECT version FROM geo_meta", 0, NULL, &r, err);
    if (status != ST_OK)
        return status;
    int64_t version = db_result_rows(r) == 1 ? strtoll(db_result_value(r, 0, 0), NULL, 10) : 0;
    db_result_destroy(r);
    console_map_cache *cache = &app->map;
    pthread_mutex_lock(&cache->lock);
    if (cache->body == NULL || cache->geo_version != version)
        status = build_map(d, version, cache, err);
    if (status == ST_OK) {
        char *copy = malloc(cache->len + 1);
        if (copy == NULL) {
            status = st_fail(err, ST_NOMEM, "out of memory");
        } else {
            memcpy(copy, cache->body, cache->len + 1);
            *ret_body = copy;
            *ret_len = cache->len;
            snprintf(ret_etag, CONSOLE_ETAG_MAX, "%s", cache->etag);
        }
    }
    pthread_mutex_unlock(&cache->lock);
    return status;
}
