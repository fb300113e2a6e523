/* console_cases: the cases a user may see — the CASE object of the API, lists, one case with
 * its timeline, revealing the phone, and the row the live stream pushes.
 *
 * Authorization per object: a case outside the user's area is ST_NOT_FOUND, exactly as a
 * case that does not exist (the API answers 404 for both). Analysts are turned away before
 * any of this runs (console_http.c).
 *
 * Nothing personal leaves here but what the contract allows: the phone masked
 * ("08x-xxx-x678"), or whole from console_case_reveal_phone only after its audit record is
 * stored; never the reporter's LINE id, the LINE group ids of the timeline, or texts the
 * reporter typed. All functions block on the database (one handle per thread). */
#ifndef CONSOLE_CASES_H
#define CONSOLE_CASES_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "console.h"
#include "console_parse.h"
#include "db.h"
#include "status.h"

#define CONSOLE_CASES_LIMIT_DEFAULT 500
#define CONSOLE_CASES_LIMIT_MAX 5000
#define CONSOLE_PHONE_MAX 16 /* a whole phone number, digits, with the NUL */

/* The columns of a CASE, in this order, for the SQL below. */
#define CONSOLE_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
#define CONSOLE_CASE_COLUMNS                                                                     \
    "i.id, i.case_number, i.category, i.status, i.province_code, p.name_th, p.name_en, "        \
    "d.name_th, d.name_en, t.name_th, t.name_en, i.station_id, s.name_th, s.name_en, "          \
    "i.station_distance_m, i.lat, i.lon, " CONSOLE_TS("i.reported_at") ", "                      \
    CONSOLE_TS("i.routed_at") ", " CONSOLE_TS("i.acknowledged_at") ", "                          \
    CONSOLE_TS("i.on_scene_at") ", " CONSOLE_TS("i.closed_at") ", "                              \
    CONSOLE_TS("i.cancelled_at") ", i.acknowledged_by, i.escalation_level, i.outcome, "          \
    "i.phone_encrypted, i.district_code, i.tambon_code, " CONSOLE_TS("i.updated_at") " "
#define CONSOLE_CASE_FROM                                                                        \
    "FROM incidents i LEFT JOIN provinces p ON p.code = i.province_code "                        \
    "LEFT JOIN districts d ON d.code = i.district_code "                                         \
    "LEFT JOIN tambons t ON t.code = i.tambon_code LEFT JOIN stations s ON s.id = i.station_id "
#define CONSOLE_CASE_SELECT "SELECT " CONSOLE_CASE_COLUMNS CONSOLE_CASE_FROM

enum {
    CONSOLE_CASE_COL_ID,
    CONSOLE_CASE_COL_NUMBER,
    CONSOLE_CASE_COL_CATEGORY,
    CONSOLE_CASE_COL_STATUS,
    CONSOLE_CASE_COL_PROVINCE,
    CONSOLE_CASE_COL_PROVINCE_TH,
    CONSOLE_CASE_COL_PROVINCE_EN,
    CONSOLE_CASE_COL_DISTRICT_TH,
    CONSOLE_CASE_COL_DISTRICT_EN,
    CONSOLE_CASE_COL_TAMBON_TH,
    CONSOLE_CASE_COL_TAMBON_EN,
    CONSOLE_CASE_COL_STATION,
    CONSOLE_CASE_COL_STATION_TH,
    CONSOLE_CASE_COL_STATION_EN,
    CONSOLE_CASE_COL_STATION_DISTANCE,
    CONSOLE_CASE_COL_LAT,
    CONSOLE_CASE_COL_LON,
    CONSOLE_CASE_COL_REPORTED,
    CONSOLE_CASE_COL_ROUTED,
    CONSOLE_CASE_COL_ACKNOWLEDGED,
    CONSOLE_CASE_COL_ON_SCENE,
    CONSOLE_CASE_COL_CLOSED,
    CONSOLE_CASE_COL_CANCELLED,
    CONSOLE_CASE_COL_ACKNOWLEDGED_BY,
    CONSOLE_CASE_COL_ESCALATION,
    CONSOLE_CASE_COL_OUTCOME,
    CONSOLE_CASE_COL_PHONE,
    CONSOLE_CASE_COL_DISTRICT,
    CONSOLE_CASE_COL_TAMBON,
    CONSOLE_CASE_COL_UPDATED,
    CONSOLE_CASE_COL_COUNT
};

/* The CASE object of row `row` of a result of CONSOLE_CASE_SELECT. Caller cJSON_Deletes;
 * NULL when out of memory. The phone is opened with the app's keys and masked. */
cJSON *console_case_json(const console_app *app, const db_result *r, int row);

typedef struct console_case_filter {
    bool open_only;       /* state=open (default) */
    bool has_from, has_to;
    console_date from, to; /* reported on these days (Asia/Bangkok), inclusive */
    int64_t limit;
} console_case_filter;

/* The user's cases, newest first, as a JSON array into *ret_cases (caller deletes). */
st_code console_cases_list(db *d, const console_app *app, const console_user *user,
                           const console_case_filter *filter, cJSON **ret_cases, st_error *err);

/* One case the user may see: *ret_case (caller deletes) and its incident id. ST_NOT_FOUND
 * when it does not exist or lies outside the user's area. */
st_code console_case_find(db *d, const console_app *app, const console_user *user,
                          const char *case_number, cJSON **ret_case, int64_t *ret_incident_id,
                          st_error *err);

/* The timeline of an incident as a JSON array (at, kind, actor_type, actor, detail), with
 * the detail reduced to the facts listed in console_cases.c (no group ids, no texts, no
 * locations). Caller deletes. */
st_code console_case_timeline(db *d, int64_t incident_id, cJSON **ret_timeline, st_error *err);

/* Reduces a timeline detail (JSON text) to the allowed facts. Caller deletes. */
cJSON *console_timeline_detail(const char *detail_text);

/* The whole phone number of a case the user may see, for `reason`: the read is appended to
 * the audit chain first (audit.pii.read) and the number is given only when that record is
 * stored. ST_NOT_FOUND outside the area; ST_CONFLICT when no phone was given or retention
 * erased it; ST_INTERNAL when it does not open (another key); ST_UNAVAILABLE when the read
 * could not be recorded (then nothing is revealed). ret_phone: CONSOLE_PHONE_MAX bytes (the
 * caller wipes it). */
st_code console_case_reveal_phone(db *d, const console_app *app, const console_user *user,
                                  const char *case_number, const char *reason, char *ret_phone,
                                  st_error *err);

/* The live stream's read of a case by number: *ret_json (heap, caller frees) and its
 * province into province (CONSOLE_AREA_MAX bytes; "" when unknown). ST_NOT_FOUND when the
 * incident is not (or not yet) in this database. */
st_code console_case_for_event(db *d, const console_app *app, const char *case_number,
                               char **ret_json, char *province, st_error *err);

#endif
