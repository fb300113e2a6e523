/* geo_pg: the georouter's reference data in PostgreSQL (library ess_geo_pg).
 *
 * Tables of deploy/migrations/0001 (provinces, districts, tambons with GeoJSON boundaries in
 * jsonb, stations, station_tambons, teams, team_groups) and geo_meta of 0003 (the data's
 * version, which ess-georouter polls to know when to reload). Plain SQL, no extension: the
 * service never needs PostGIS.
 *
 * Every function runs on the caller's db handle and blocks for its statements; none logs.
 * Functions that say "in the caller's transaction" must run between db_begin and db_commit
 * (or inside db_tx). */
#ifndef ESS_GEO_PG_H
#define ESS_GEO_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "geo.h"
#include "status.h"

/* geo_meta.version: 0 until the first import. */
st_code geo_pg_version(db *d, int64_t *ret_version, st_error *err);

/* Loads everything into a new index, from one consistent snapshot (a repeatable-read,
 * read-only transaction of its own: d must not be inside a transaction). ST_NOT_FOUND when
 * nothing was imported yet (no tambon). Caller owns *ret_index. Takes about a second for the
 * shipped data (mostly parsing 7,425 boundaries). */
st_code geo_pg_load(db *d, geo_index **ret_index, st_error *err);

/* The active groups of the active teams that routing may target in a province: the
 * province's teams and the national centre (province_code NULL: the national centre only).
 * *ret_groups is an array of *ret_count rows, borrowed from *ret_holder (destroy it with
 * geo_pg_teams_destroy when done with the rows). */
typedef struct geo_pg_teams geo_pg_teams;
st_code geo_pg_team_groups(db *d, const char *province_code, const geo_team_group **ret_groups,
                           size_t *ret_count, geo_pg_teams **ret_holder, st_error *err);
void geo_pg_teams_destroy(geo_pg_teams *holder); /* accepts NULL */

/* Sealed sets of the districts and tambons on record (to validate a station directory).
 * Caller owns both. */
st_code geo_pg_code_sets(db *d, geo_code_set **ret_districts, geo_code_set **ret_tambons,
                         st_error *err);

typedef struct geo_pg_replace_result {
    size_t stations;      /* rows of the new directory */
    size_t removed;       /* stations of the old directory that are gone */
    size_t jurisdictions; /* station_tambons rows */
} geo_pg_replace_result;

/* In the caller's transaction: makes the station directory exactly `list` (upsert, delete the
 * stations it lacks, replace every jurisdiction). synthetic marks the rows as the generated
 * directory. ST_CONFLICT when an active team's area is a station the new directory lacks (the
 * message names the team and the station: remove the team first); a removed team's link to
 * such a station is cleared. */
st_code geo_pg_replace_stations(db *d, const geo_station_list *list, bool synthetic,
                                geo_pg_replace_result *ret_result, st_error *err);

/* In the caller's transaction: increments geo_meta.version (and records what changed:
 * data_sha256 may be NULL to keep the last one; stations_source "synthetic"/"imported" or
 * NULL to keep it). *ret_version = the new version. */
st_code geo_pg_bump_version(db *d, const char *data_sha256, const char *stations_source,
                            int64_t *ret_version, st_error *err);

#endif
