/* geo_pg: reference data in and out of PostgreSQL for the georouter and essctl. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "geo_pg.h"

static bool parse_int64(const char *text, int64_t *ret_value)
{
    if (text == NULL || text[0] == '\0')
        return false;
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *ret_value = (int64_t)value;
    return true;
}

static bool parse_double(const char *text, double *ret_value)
{
    if (text == NULL || text[0] == '\0')
        return false;
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || *end != '\0')
        return false;
    *ret_value = value;
    return true;
}

st_code geo_pg_version(db *d, int64_t *ret_version, st_error *err)
{
    db_result *r = NULL;
    st_code status = db_exec(d, "SELECT version FROM geo_meta", 0, NULL, &r, err);
    if (status != ST_OK)
        return status;
    int64_t version = 0;
    if (db_result_rows(r) != 1 || !parse_int64(db_result_value(r, 0, 0), &version))
        status = st_fail(err, ST_INTERNAL, "geo_meta has no version row");
    else
        *ret_version = version;
    db_result_destroy(r);
    return status;
}

static st_code load_rows(db *d, geo_builder *b, int64_t *ret_version, st_error *err)
{
    db_result *r = NULL;
    st_code status = ST_OK;
    int64_t version = 0;
    if ((status = geo_pg_version(d, &version, err)) != ST_OK)
        return status;

    if ((status = db_exec(d, "SELECT code, name_th, name_en FROM provinces", 0, NULL, &r, err)) !=
        ST_OK)
        goto cleanup;
    for (int i = 0; status == ST_OK && i < db_result_rows(r); i++)
        status = geo_builder_add_province(b, db_result_value(r, i, 0), db_result_value(r, i, 1),
                                          db_result_value(r, i, 2), err);
    db_result_destroy(r);
    r = NULL;
    if (status != ST_OK || (status = db_exec(d, "SELECT code, name_th, name_en FROM districts", 0,
                                             NULL, &r, err)) != ST_OK)
        goto cleanup;
    for (int i = 0; status == ST_OK && i < db_result_rows(r); i++)
        status = geo_builder_add_district(b, db_result_value(r, i, 0), db_result_value(r, i, 1),
                                          db_result_value(r, i, 2), err);
    db_result_destroy(r);
    r = NULL;
    if (status != ST_OK ||
        (status = db_exec(d, "SELECT code, name_th, name_en, boundary::text FROM tambons", 0, NULL,
                          &r, err)) != ST_OK)
        goto cleanup;
    if (db_result_rows(r) == 0) {
        status = st_fail(err, ST_NOT_FOUND, "no tambon on record: run essctl geo import");
        goto cleanup;
    }
    for (int i = 0; status == ST_OK && i < db_result_rows(r); i++) {
        const char *boundary = db_result_value(r, i, 3);
        status = geo_builder_add_tambon(b, db_result_value(r, i, 0), db_result_value(r, i, 1),
                                        db_result_value(r, i, 2), boundary,
                                        boundary != NULL ? strlen(boundary) : 0, err);
    }
    db_result_destroy(r);
    r = NULL;
    if (status != ST_OK ||
        (status = db_exec(d,
                          "SELECT id, name_th, coalesce(name_en, ''), coalesce(phone, ''), lat, "
                          "lon, coalesce(district_code, '') FROM stations",
                          0, NULL, &r, err)) != ST_OK)
        goto cleanup;
    for (int i = 0; status == ST_OK && i < db_result_rows(r); i++) {
        double lat = 0, lon = 0;
        if (!parse_double(db_result_value(r, i, 4), &lat) ||
            !parse_double(db_result_value(r, i, 5), &lon)) {
            status = st_fail(err, ST_INTERNAL, "a station's location is not a number");
            break;
        }
        status = geo_builder_add_station(b, db_result_value(r, i, 0), db_result_value(r, i, 1),
                                         db_result_value(r, i, 2), db_result_value(r, i, 3), lat,
                                         lon, db_result_value(r, i, 6), err);
    }
    db_result_destroy(r);
    r = NULL;
    if (status != ST_OK ||
        (status = db_exec(d, "SELECT tambon_code, station_id FROM station_tambons", 0, NULL, &r,
                          err)) != ST_OK)
        goto cleanup;
    for (int i = 0; status == ST_OK && i < db_result_rows(r); i++)
        status = geo_builder_assign(b, db_result_value(r, i, 0), db_result_value(r, i, 1), err);
    if (status == ST_OK)
        *ret_version = version;
cleanup:
    db_result_destroy(r);
    return status;
}

st_code geo_pg_load(db *d, geo_index **ret_index, st_error *err)
{
    if (db_in_transaction(d))
        return st_fail(err, ST_INVALID, "geo_pg_load runs its own transaction");
    geo_builder *b = NULL;
    st_code status = geo_builder_create(&b, err);
    if (status != ST_OK)
        return status;
    int64_t version = 0;
    if ((status = db_begin(d, err)) == ST_OK) {
        /* One snapshot for all six reads: an import committing meanwhile is not half seen. */
        status = db_exec(d, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, NULL,
                         NULL, err);
        if (status == ST_OK)
            status = load_rows(d, b, &version, err);
        if (status == ST_OK)
            status = db_commit(d, err);
        else
            db_rollback(d, NULL);
    }
    if (status != ST_OK) {
        geo_builder_destroy(b);
        return status;
    }
    return geo_builder_finish(b, version, ret_index, err);
}

struct geo_pg_teams {
    db_result *rows;
    geo_team_group *groups;
};

void geo_pg_teams_destroy(geo_pg_teams *holder)
{
    if (holder == NULL)
        return;
    db_result_destroy(holder->rows);
    free(holder->groups);
    free(holder);
}

st_code geo_pg_team_groups(db *d, const char *province_code, const geo_team_group **ret_groups,
                           size_t *ret_count, geo_pg_teams **ret_holder, st_error *err)
{
    geo_pg_teams *holder = calloc(1, sizeof(*holder));
    if (holder == NULL)
        return st_fail(err, ST_NOMEM, "out of memory");
    const char *params[] = {province_code};
    st_code status = db_exec(d,
                             "SELECT t.id, t.name, t.kind, t.province_code, t.station_id, "
                             "g.group_id FROM teams t "
                             "JOIN team_groups g ON g.team_id = t.id AND g.active "
                             "WHERE t.active AND (t.kind = 'national_centre' "
                             "OR t.province_code = $1::text) ORDER BY t.id, g.group_id",
                             1, params, &holder->rows, err);
    if (status != ST_OK)
        goto cleanup;
    int rows = db_result_rows(holder->rows);
    holder->groups = calloc((size_t)rows + 1, sizeof(*holder->groups));
    if (holder->groups == NULL) {
        status = st_fail(err, ST_NOMEM, "out of memory");
        goto cleanup;
    }
    for (int i = 0; i < rows; i++) {
        geo_team_group *g = &holder->groups[i];
        if (!parse_int64(db_result_value(holder->rows, i, 0), &g->team_id) ||
            !geo_team_kind_parse(db_result_value(holder->rows, i, 2), &g->kind)) {
            status = st_fail(err, ST_INTERNAL, "a team row has an unknown id or kind");
            goto cleanup;
        }
        g->team_name = db_result_value(holder->rows, i, 1);
        g->province_code = db_result_value(holder->rows, i, 3);
        g->station_id = db_result_value(holder->rows, i, 4);
        g->group_id = db_result_value(holder->rows, i, 5);
    }
    *ret_groups = holder->groups;
    *ret_count = (size_t)rows;
    *ret_holder = holder;
    return ST_OK;
cleanup:
    geo_pg_teams_destroy(holder);
    return status;
}

static st_code add_codes(db *d, const char *sql, geo_code_set *set, st_error *err)
{
    db_result *r = NULL;
    st_code status = db_exec(d, sql, 0, NULL, &r, err);
    for (int i = 0; status == ST_OK && i < db_result_rows(r); i++)
        status = geo_code_set_add(set, db_result_value(r, i, 0), err);
    db_result_destroy(r);
    geo_code_set_seal(set);
    return status;
}

st_code geo_pg_code_sets(db *d, geo_code_set **ret_districts, geo_code_set **ret_tambons,
                         st_error *err)
{
    geo_code_set *districts = NULL, *tambons = NULL;
    st_code status = geo_code_set_create(&districts, err);
    if (status == ST_OK)
        status = geo_code_set_create(&tambons, err);
    if (status == ST_OK)
        status = add_codes(d, "SELECT code FROM districts", districts, err);
    if (status == ST_OK)
        status = add_codes(d, "SELECT code FROM tambons", tambons, err);
    if (status != ST_OK) {
        geo_code_set_destroy(districts);
        geo_code_set_destroy(tambons);
        return status;
    }
    *ret_districts = districts;
    *ret_tambons = tambons;
    return ST_OK;
}

/* The directory as one JSON array, the parameter of the set-based statements below. */
static char *directory_json(const geo_station_list *list)
{
    cJSON *root = cJSON_CreateArray();
    bool ok = root != NULL;
    for (size_t i = 0; ok && i < list->count; i++) {
        const geo_station_record *s = &list->items[i];
        cJSON *item = cJSON_CreateObject();
        ok = item != NULL && cJSON_AddItemToArray(root, item);
        if (!ok) {
            cJSON_Delete(item);
            break;
        }
        cJSON *tambons = NULL;
        ok = cJSON_AddStringToObject(item, "id", s->id) != NULL &&
             cJSON_AddStringToObject(item, "name_th", s->name_th) != NULL &&
             (s->name_en[0] == '\0'
                  ? cJSON_AddNullToObject(item, "name_en") != NULL
                  : cJSON_AddStringToObject(item, "name_en", s->name_en) != NULL) &&
             cJSON_AddNumberToObject(item, "lat", s->lat) != NULL &&
             cJSON_AddNumberToObject(item, "lon", s->lon) != NULL &&
             cJSON_AddStringToObject(item, "district_code", s->district_code) != NULL &&
             cJSON_AddStringToObject(item, "province_code", s->province_code) != NULL &&
             (s->phone[0] == '\0' ? cJSON_AddNullToObject(item, "phone") != NULL
                                  : cJSON_AddStringToObject(item, "phone", s->phone) != NULL) &&
             (tambons = cJSON_AddArrayToObject(item, "tambons")) != NULL;
        for (size_t k = 0; ok && k < s->tambon_count; k++) {
            cJSON *code = cJSON_CreateString(s->tambons[k]);
            ok = code != NULL && cJSON_AddItemToArray(tambons, code);
            if (!ok)
                cJSON_Delete(code);
        }
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return text;
}

st_code geo_pg_replace_stations(db *d, const geo_station_list *list, bool synthetic,
                                geo_pg_replace_result *ret_result, st_error *err)
{
    if (!db_in_transaction(d))
        return st_fail(err, ST_INVALID, "geo_pg_replace_stations runs in the caller's transaction");
    db_result *r = NULL;
    st_code status = ST_OK;
    char *json = directory_json(list);
    if (json == NULL)
        return st_fail(err, ST_NOMEM, "out of memory");
    const char *params[] = {json, synthetic ? "true" : "false"};

    /* Teams whose area is a station that would vanish: refuse, naming the first. */
    status = db_exec(d,
                     "SELECT t.name, t.station_id FROM teams t WHERE t.active AND "
                     "t.station_id IS NOT NULL AND t.station_id NOT IN (SELECT r.id FROM "
                     "jsonb_to_recordset($1::jsonb) AS r(id text)) ORDER BY t.id LIMIT 1",
                     1, params, &r, err);
    if (status != ST_OK)
        goto cleanup;
    if (db_result_rows(r) > 0) {
        status = st_fail(err, ST_CONFLICT,
                         "team \"%.60s\" is the team of station %.64s, which the new directory "
                         "lacks: remove that team first (essctl team remove)",
                         db_result_value(r, 0, 0), db_result_value(r, 0, 1));
        goto cleanup;
    }
    db_result_destroy(r);
    r = NULL;
    /* A removed team keeps its province; its link to a station that goes is cleared. */
    if ((status = db_exec(d,
                          "UPDATE teams SET station_id = NULL, updated_at = now() WHERE NOT "
                          "active AND station_id IS NOT NULL AND station_id NOT IN (SELECT r.id "
                          "FROM jsonb_to_recordset($1::jsonb) AS r(id text))",
                          1, params, NULL, err)) != ST_OK ||
        (status = db_exec(d, "DELETE FROM station_tambons", 0, NULL, NULL, err)) != ST_OK ||
        (status = db_exec(d,
                          "INSERT INTO stations (id, name_th, name_en, lat, lon, district_code, "
                          "province_code, phone, synthetic, updated_at) "
                          "SELECT r.id, r.name_th, r.name_en, r.lat, r.lon, r.district_code, "
                          "r.province_code, r.phone, $2::boolean, now() "
                          "FROM jsonb_to_recordset($1::jsonb) AS r(id text, name_th text, "
                          "name_en text, lat double precision, lon double precision, "
                          "district_code text, province_code text, phone text) "
                          "ON CONFLICT (id) DO UPDATE SET name_th = EXCLUDED.name_th, "
                          "name_en = EXCLUDED.name_en, lat = EXCLUDED.lat, lon = EXCLUDED.lon, "
                          "district_code = EXCLUDED.district_code, "
                          "province_code = EXCLUDED.province_code, phone = EXCLUDED.phone, "
                          "synthetic = EXCLUDED.synthetic, updated_at = now() "
                          "WHERE (stations.name_th, stations.name_en, stations.lat, stations.lon, "
                          "stations.district_code, stations.province_code, stations.phone, "
                          "stations.synthetic) IS DISTINCT FROM (EXCLUDED.name_th, "
                          "EXCLUDED.name_en, EXCLUDED.lat, EXCLUDED.lon, EXCLUDED.district_code, "
                          "EXCLUDED.province_code, EXCLUDED.phone, EXCLUDED.synthetic)",
                          2, params, NULL, err)) != ST_OK ||
        (status = db_exec(d,
                          "DELETE FROM stations WHERE id NOT IN (SELECT r.id FROM "
                          "jsonb_to_recordset($1::jsonb) AS r(id text))",
                          1, params, &r, err)) != ST_OK)
        goto cleanup;
    size_t removed = (size_t)db_result_affected(r);
    db_result_destroy(r);
    r = NULL;
    if ((status = db_exec(d,
                          "INSERT INTO station_tambons (tambon_code, station_id) "
                          "SELECT t.code, r.id FROM jsonb_to_recordset($1::jsonb) "
                          "AS r(id text, tambons jsonb), "
                          "jsonb_array_elements_text(r.tambons) AS t(code)",
                          1, params, &r, err)) != ST_OK)
        goto cleanup;
    if (ret_result != NULL)
        *ret_result = (geo_pg_replace_result){.stations = list->count,
                                              .removed = removed,
                                              .jurisdictions = (size_t)db_result_affected(r)};
cleanup:
    db_result_destroy(r);
    free(json);
    return status;
}

st_code geo_pg_bump_version(db *d, const char *data_sha256, const char *stations_source,
                            int64_t *ret_version, st_error *err)
{
    const char *params[] = {data_sha256, stations_source};
    db_result *r = NULL;
    st_code status = db_exec(d,
                             "UPDATE geo_meta SET version = version + 1, "
                             "data_sha256 = coalesce($1::text, data_sha256), "
                             "stations_source = coalesce($2::text, stations_source), "
                             "imported_at = CASE WHEN $1::text IS NULL THEN imported_at "
                             "ELSE now() END, updated_at = now() RETURNING version",
                             2, params, &r, err);
    int64_t version = 0;
    if (status == ST_OK &&
        (db_result_rows(r) != 1 || !parse_int64(db_result_value(r, 0, 0), &version)))
        status = st_fail(err, ST_INTERNAL, "geo_meta has no version row");
    if (status == ST_OK && ret_version != NULL)
        *ret_version = version;
    db_result_destroy(r);
    return status;
}
