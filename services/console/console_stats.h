/* console_stats: aggregates for every role — statistics per day, province and category, and
 * the province map (GeoJSON).
 *
 * Statistics count reports by the day they were made (Asia/Bangkok): reports, the median and
 * 90th percentile of the seconds from report to take (acknowledged_at) and to the scene
 * (on_scene_at), escalations (escalation_level > 0), cancellations and false alarms
 * (outcome false_alarm). Commanders and analysts of one province see that province only.
 *
 * The map is built once per geo version (geo_meta.version) and kept in app->map: the
 * boundaries of provinces with coordinates rounded to 3 decimals (about 100 m) and repeated
 * points dropped. Both block on the database. */
#ifndef CONSOLE_STATS_H
#define CONSOLE_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "console.h"
#include "console_parse.h"
#include "db.h"
#include "status.h"

#define CONSOLE_STATS_DAYS_DEFAULT 30
#define CONSOLE_STATS_DAYS_MAX 366

typedef struct console_stats_filter {
    console_date from, to;           /* inclusive, Asia/Bangkok */
    char province[CONSOLE_AREA_MAX]; /* "" for every province the user sees */
} console_stats_filter;

/* {"rows":[...],"totals":{...},"from":"…","to":"…"} into *ret_root (caller deletes). */
st_code console_stats_query(db *d, const console_user *user, const console_stats_filter *filter,
                            cJSON **ret_root, st_error *err);

/* Today in Asia/Bangkok (UTC+7, no daylight saving). */
void console_today_bangkok(console_date *ret_date);
/* date + days (days may be negative). */
void console_date_add_days(const console_date *date, int64_t days, console_date *ret_date);

/* The province map: a copy of the GeoJSON text (*ret_body heap, caller frees) and its ETag
 * (CONSOLE_ETAG_MAX bytes). Rebuilt when geo_meta.version moved. */
st_code console_map_provinces(db *d, console_app *app, char **ret_body, size_t *ret_len,
                              char *ret_etag, st_error *err);

/* Rounds every coordinate of a GeoJSON Polygon/MultiPolygon geometry to 3 decimals and drops
 * points equal to the one before (rings keep at least 4 points). In place. */
void console_geometry_round(cJSON *geometry);

#endif
