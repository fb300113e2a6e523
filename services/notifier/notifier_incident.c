#include "notifier_incident.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parameters: $1 id, $2 tambon, $3 district, $4 province, $5 station (NULL = the row's). */
static const char incident_sql[] =
    "SELECT i.case_number, i.category, i.lat, i.lon, i.location_title, i.location_address,"
    "       floor(extract(epoch FROM i.reported_at))::bigint,"
    "       encode(i.phone_encrypted, 'hex'),"
    "       t.name_th, d.name_th, p.name_th, p.code, s.name_th, i.station_distance_m"
    "  FROM incidents i"
    "  LEFT JOIN tambons t ON t.code = COALESCE($2, i.tambon_code)"
    "  LEFT JOIN districts d ON d.code = COALESCE($3, i.district_code)"
    "  LEFT JOIN provinces p ON p.code = COALESCE($4, i.province_code)"
    "  LEFT JOIN stations s ON s.id = COALESCE($5, i.station_id)"
    " WHERE i.id = $1";

enum {
    COL_CASE,
    COL_CATEGORY,
    COL_LAT,
    COL_LON,
    COL_TITLE,
    COL_ADDRESS,
    COL_REPORTED,
    COL_PHONE,
    COL_TAMBON,
    COL_DISTRICT,
    COL_PROVINCE,
    COL_PROVINCE_CODE,
    COL_STATION,
    COL_DISTANCE,
};

static void copy_column(const db_result *r, int col, char *out, size_t out_size)
{
    const char *value = db_result_value(r, 0, col);
    snprintf(out, out_size, "%s", value != NULL ? value : "");
}

static bool parse_double(const char *text, double *ret_value)
{
    if (text == NULL)
        return false;
    char *end = NULL;
    double value = strtod(text, &end);
    if (end == text || *end != '\0')
        return false;
    *ret_value = value;
    return true;
}

static bool parse_int(const char *text, int64_t *ret_value)
{
    if (text == NULL)
        return false;
    char *end = NULL;
    long long value = strtoll(text, &end, 10);
    if (end == text || *end != '\0')
        return false;
    *ret_value = value;
    return true;
}

/* Opens the sealed phone (hex text) into out; false when it does not open or fit. */
static bool open_phone(const vault_keys *keys, const char *hex, char *out, size_t out_size)
{
    char *plain = NULL;
    size_t plain_len = 0;
    bool ok = vault_open_hex(keys, NOTIFIER_PHONE_CONTEXT, hex, &plain, &plain_len, NULL) ==
                  ST_OK &&
              plain_len < out_size;
    if (ok)
        memcpy(out, plain, plain_len + 1);
    if (plain != NULL) {
        explicit_bzero(plain, plain_len);
        free(plain);
    }
    return ok;
}

st_code notifier_incident_load(db *d, const vault_keys *keys, const notifier_routed *routed,
                               notifier_incident *ret_incident, bool *ret_phone_unreadable,
                               st_error *err)
{
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, routed->incident_id);
    const char *params[5] = {
        id,
        routed->tambon_code[0] != '\0' ? routed->tambon_code : NULL,
        routed->district_code[0] != '\0' ? routed->district_code : NULL,
        routed->province_code[0] != '\0' ? routed->province_code : NULL,
        routed->station_id[0] != '\0' ? routed->station_id : NULL,
    };
    db_result *r = NULL;
    notifier_incident *incident = NULL;
    st_code code = db_exec(d, incident_sql, 5, params, &r, err);
    if (code != ST_OK) {
        st_wrap(err, "loading the incident");
        goto cleanup;
    }
    if (db_result_rows(r) != 1) {
        code = st_fail(err, ST_NOT_FOUND, "incident %s not found", id);
        goto cleanup;
    }
    incident = calloc(1, sizeof(*incident));
    if (incident == NULL) {
        code = st_fail(err, ST_NOMEM, "loading the incident: out of memory");
        goto cleanup;
    }
    incident->incident_id = routed->incident_id;
    copy_column(r, COL_CASE, incident->case_number, sizeof(incident->case_number));
    copy_column(r, COL_CATEGORY, incident->category, sizeof(incident->category));
    incident->has_location = parse_double(db_result_value(r, 0, COL_LAT), &incident->lat) &&
                             parse_double(db_result_value(r, 0, COL_LON), &incident->lon);
    copy_column(r, COL_TITLE, incident->location_title, sizeof(incident->location_title));
    copy_column(r, COL_ADDRESS, incident->location_address, sizeof(incident->location_address));
    if (!parse_int(db_result_value(r, 0, COL_REPORTED), &incident->reported_at))
        incident->reported_at = 0;
    copy_column(r, COL_TAMBON, incident->tambon_name, sizeof(incident->tambon_name));
    copy_column(r, COL_DISTRICT, incident->district_name, sizeof(incident->district_name));
    copy_column(r, COL_PROVINCE, incident->province_name, sizeof(incident->province_name));
    copy_column(r, COL_PROVINCE_CODE, incident->province_code, sizeof(incident->province_code));
    copy_column(r, COL_STATION, incident->station_name, sizeof(incident->station_name));
    /* The event's own names and distance win (see the header). */
    if (routed->tambon_name[0] != '\0')
        snprintf(incident->tambon_name, sizeof(incident->tambon_name), "%s", routed->tambon_name);
    if (routed->district_name[0] != '\0')
        snprintf(incident->district_name, sizeof(incident->district_name), "%s",
                 routed->district_name);
    if (routed->province_name[0] != '\0')
        snprintf(incident->province_name, sizeof(incident->province_name), "%s",
                 routed->province_name);
    if (routed->province_code[0] != '\0')
        snprintf(incident->province_code, sizeof(incident->province_code), "%s",
                 routed->province_code);
    if (routed->station_name[0] != '\0')
        snprintf(incident->station_name, sizeof(incident->station_name), "%s",
                 routed->station_name);
    if (routed->has_station_distance) {
        incident->has_station_distance = true;
        incident->station_distance_m = routed->station_distance_m;
    } else if (parse_int(db_result_value(r, 0, COL_DISTANCE), &incident->station_distance_m)) {
        incident->has_station_distance = true;
    }
    if (routed->case_number[0] != '\0' && incident->case_number[0] == '\0')
        snprintf(incident->case_number, sizeof(incident->case_number), "%s", routed->case_number);
    bool unreadable = false;
    const char *phone_hex = db_result_value(r, 0, COL_PHONE);
    if (phone_hex != NULL && phone_hex[0] != '\0')
        unreadable = !open_phone(keys, phone_hex, incident->phone, sizeof(incident->phone));
    *ret_incident = *incident;
    if (ret_phone_unreadable != NULL)
        *ret_phone_unreadable = unreadable;
    code = ST_OK;
cleanup:
    if (incident != NULL) {
        explicit_bzero(incident, sizeof(*incident));
        free(incident);
    }
    db_result_destroy(r);
    return code;
}
