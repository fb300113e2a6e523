/* geo: the routing core of ess-georouter (library ess_geo), shared with essctl (geo import,
 * geo locate, stations import) and tools/stations-gen, so that every one of them makes the
 * same decision from the same data. No database and no bus here: geo_pg.h loads an index
 * from PostgreSQL, this file builds one from anything and answers questions about points.
 *
 * Codes are those of DESIGN.md and deploy/migrations/0001: "TH" followed by the TIS-1099
 * (DOPA) digits, "TH50" province, "TH5001" district, "TH500101" tambon. The code lists in
 * deploy/data/geo (the CSV files) carry the digits alone ("50", "5001", "500101");
 * geo_code_from_digits adds the prefix. Each code begins with its parent's code.
 *
 * Pieces:
 *   - geo_csv: an RFC 4180 reader with line numbers (code lists, station directories);
 *   - geo_dataset: deploy/data/geo read into records (essctl geo import, the generator, tests);
 *   - geo_stations: a station directory CSV parsed and validated row by row;
 *   - geo_builder / geo_index: polygons in memory with a grid index; geo_locate turns a point
 *     into tambon, district, province, the responsible station and the nearest stations;
 *   - geo_select_targets / geo_decision_json: the teams to notify and the JSON of a decision
 *     (the body of ess.incident.routed and of `essctl geo locate --json`).
 *
 * Thread-safety: a finished geo_index is read-only, so any number of threads may call
 * geo_locate on it at once. Builders, datasets and CSV readers are used by one thread. */
#ifndef ESS_GEO_H
#define ESS_GEO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define GEO_CODE_MAX 16       /* "TH500101" and its NUL, with room */
#define GEO_NAME_MAX 200      /* bytes of one name (UTF-8) */
#define GEO_STATION_ID_MAX 64 /* stations.id is 1..64 characters */
#define GEO_PHONE_MAX 32
#define GEO_NEAREST_MAX 20           /* most "next stations" a decision carries */
#define GEO_TARGETS_MAX 64           /* most target groups a decision carries */
#define GEO_EARTH_RADIUS_M 6371008.8 /* mean Earth radius (IUGG) */

/* ---- codes --------------------------------------------------------------------------- */

typedef enum geo_level { GEO_PROVINCE = 0, GEO_DISTRICT = 1, GEO_TAMBON = 2 } geo_level;

/* "50" → "TH50", "5001" → "TH5001", "500101" → "TH500101" (digits of the level's length,
 * surrounding spaces and quotes already removed by the CSV reader). ST_INVALID otherwise.
 * out receives a NUL-terminated code (out_size >= GEO_CODE_MAX). */
st_code geo_code_from_digits(geo_level level, const char *digits, char *out, size_t out_size,
                             st_error *err);
/* True when code is "TH" + 2/4/6 digits for the level. */
bool geo_code_valid(geo_level level, const char *code);

/* Great-circle distance in metres between two WGS84 points (spherical, mean radius). */
double geo_distance_m(double lat1, double lon1, double lat2, double lon2);

/* ---- CSV ------------------------------------------------------------------------------ */

#define GEO_CSV_FIELDS_MAX 64
#define GEO_CSV_RECORD_MAX (64 * 1024)
#define GEO_CSV_FILE_MAX ((size_t)64 * 1024 * 1024)

typedef struct geo_csv geo_csv;

/* Reads a whole file (at most GEO_CSV_FILE_MAX bytes) and prepares to read its records.
 * A UTF-8 byte-order mark is skipped; LF and CRLF line ends are accepted. Caller owns *ret. */
st_code geo_csv_open_file(const char *path, geo_csv **ret_csv, st_error *err);
/* Same over text in memory (copied). */
st_code geo_csv_open_text(const char *text, size_t len, geo_csv **ret_csv, st_error *err);
/* Reads the next record. ST_OK with *ret_field_count fields; ST_NOT_FOUND at the end;
 * ST_INVALID (quote errors) or ST_LIMIT (too many fields, record too long) naming the line.
 * After an error the reader continues at the next line, so a caller may report every bad
 * row. Blank lines are skipped. */
st_code geo_csv_next(geo_csv *csv, size_t *ret_field_count, st_error *err);
/* Field i of the current record (NUL-terminated, borrowed until the next geo_csv_next), or
 * NULL beyond the record. */
const char *geo_csv_field(const geo_csv *csv, size_t i);
/* 1-based line where the current record starts. */
size_t geo_csv_line(const geo_csv *csv);
void geo_csv_destroy(geo_csv *csv); /* accepts NULL */

/* ---- code sets (which districts and tambons exist) -------------------------------------- */

typedef struct geo_code_set geo_code_set;

st_code geo_code_set_create(geo_code_set **ret_set, st_error *err);
st_code geo_code_set_add(geo_code_set *set, const char *code, st_error *err); /* copied */
/* Sorts and removes repeats; call once after the last add, before has/at. */
void geo_code_set_seal(geo_code_set *set);
bool geo_code_set_has(const geo_code_set *set, const char *code);
size_t geo_code_set_count(const geo_code_set *set);
const char *geo_code_set_at(const geo_code_set *set, size_t i); /* borrowed */
void geo_code_set_destroy(geo_code_set *set);                   /* accepts NULL */

/* ---- the reference data of deploy/data/geo --------------------------------------------- */

typedef struct geo_area_record {
    char code[GEO_CODE_MAX];        /* "TH50", "TH5001", "TH500101" */
    char parent_code[GEO_CODE_MAX]; /* the district of a tambon, the province of a district;
                                       "" for a province */
    char *name_th;                  /* owned by the dataset; never NULL (may be "") */
    char *name_en;
    char postal_code[8]; /* tambons: 5 digits, or "" when unknown */
    bool has_centroid;
    double centroid_lat, centroid_lon; /* tambons: the code list's point when it has one,
                                          else the polygon's centroid; others: the polygon's */
    bool listed_point;                 /* the centroid is the code list's point */
    char *geometry_json;               /* GeoJSON Polygon/MultiPolygon (lon, lat) or NULL */
    size_t geometry_len;
} geo_area_record;

typedef struct geo_dataset {
    geo_area_record *provinces; /* sorted by code */
    size_t province_count;
    geo_area_record *districts;
    size_t district_count;
    geo_area_record *tambons; /* the code list's tambons plus those only the boundary file
                                 has; geometry NULL for the few the boundary file lacks */
    size_t tambon_count;
    char sha256_hex[65]; /* of the files read, in a fixed order: "same data" check */
} geo_dataset;

/* File names inside a data directory (deploy/data/geo). */
#define GEO_FILE_PROVINCES "provinces.csv"
#define GEO_FILE_DISTRICTS "districts.csv"
#define GEO_FILE_TAMBONS "sub_districts.csv"
#define GEO_FILE_PROVINCE_BOUNDARIES "th_province_77.geojson"
#define GEO_FILE_DISTRICT_BOUNDARIES "th_amphoe_928.geojson"
#define GEO_FILE_TAMBON_BOUNDARIES "th_tambon_7425.geojson"
#define GEO_FILE_STATIONS "stations_synthetic.csv"

/* Reads the code lists and boundary files of dir (not the stations). Every record is checked
 * (code shape, parent present, coordinates in range); the first problem is an ST_INVALID
 * naming the file and line or feature. Caller owns *ret (geo_dataset_destroy). Blocks. */
st_code geo_dataset_load(const char *dir, geo_dataset **ret_dataset, st_error *err);
void geo_dataset_destroy(geo_dataset *dataset); /* accepts NULL */
/* Sealed sets of the dataset's district and tambon codes (for geo_stations_parse). Caller
 * owns both. */
st_code geo_dataset_code_sets(const geo_dataset *dataset, geo_code_set **ret_districts,
                              geo_code_set **ret_tambons, st_error *err);
/* Reads a whole regular file of at most max bytes into a NUL-terminated heap string (caller
 * frees). ST_NOT_FOUND, ST_IO, ST_LIMIT (larger than max), ST_NOMEM. */
st_code geo_read_file(const char *path, size_t max, char **ret_text, size_t *ret_len,
                      st_error *err);
/* Borrowed record of a code, or NULL. */
const geo_area_record *geo_dataset_find(const geo_dataset *dataset, geo_level level,
                                        const char *code);

/* ---- station directories --------------------------------------------------------------- */

/* A station directory is a CSV file with a header row naming these columns (any order;
 * others are ignored), one station per row:
 *   id             1..64 characters of [A-Za-z0-9._-]; unique
 *   name_th        Thai name, 1..200 bytes
 *   name_en        English name, 0..200 bytes
 *   lat, lon       WGS84 decimal degrees, inside Thailand's box (lat 5..21, lon 97..106)
 *   district_code  the district it stands in: TH + 4 digits (or the 4 digits), known
 *   province_code  optional; when given, must be the district's province
 *   phone          optional public number, at most 31 characters of [0-9 +()-]
 *   tambons        the tambons of its jurisdiction: codes (TH + 6 digits, or the 6 digits)
 *                  separated by ';' or spaces; each known tambon belongs to exactly one row
 * Every known tambon must belong to some station (a tambon without one is a problem). */

typedef struct geo_station_record {
    char id[GEO_STATION_ID_MAX + 1];
    char *name_th; /* owned by the list */
    char *name_en;
    double lat, lon;
    char district_code[GEO_CODE_MAX];
    char province_code[GEO_CODE_MAX];
    char phone[GEO_PHONE_MAX];
    char (*tambons)[GEO_CODE_MAX]; /* owned; tambon_count codes with the TH prefix */
    size_t tambon_count;
    size_t line; /* line of the row in its file */
} geo_station_record;

typedef struct geo_station_list {
    geo_station_record *items; /* in file order */
    size_t count;
} geo_station_list;

/* Problems found while reading a directory, each with its line (0 = the file as a whole).
 * Keeps the first GEO_PROBLEMS_KEPT; total counts all of them. */
#define GEO_PROBLEMS_KEPT 100
typedef struct geo_problem {
    size_t line;
    char message[200];
} geo_problem;
typedef struct geo_problems {
    geo_problem items[GEO_PROBLEMS_KEPT];
    size_t kept;
    size_t total;
} geo_problems;

/* Parses and validates a station directory against the known districts and tambons (sealed
 * sets). Every row is checked, every problem recorded in *problems (zeroed first). ST_OK
 * with *ret_list (caller owns, geo_station_list_destroy) only when there was no problem;
 * ST_INVALID when problems->total > 0 (then nothing is returned); ST_LIMIT for a file beyond
 * the CSV limits; ST_NOMEM. */
st_code geo_stations_parse(const char *text, size_t len, const geo_code_set *districts,
                           const geo_code_set *tambons, geo_station_list **ret_list,
                           geo_problems *problems, st_error *err);
void geo_station_list_destroy(geo_station_list *list); /* accepts NULL */

/* ---- the index ------------------------------------------------------------------------ */

typedef struct geo_builder geo_builder;
typedef struct geo_index geo_index;

/* Collects areas, stations and jurisdictions in any order; geo_builder_finish checks the
 * references and builds the index. Strings are copied. */
st_code geo_builder_create(geo_builder **ret_builder, st_error *err);
st_code geo_builder_add_province(geo_builder *b, const char *code, const char *name_th,
                                 const char *name_en, st_error *err);
st_code geo_builder_add_district(geo_builder *b, const char *code, const char *name_th,
                                 const char *name_en, st_error *err);
/* geometry_json: a GeoJSON Polygon or MultiPolygon (lon, lat), or NULL for a tambon without
 * a boundary (it then never matches a point). Holes and several parts are fine: a point is
 * inside when it crosses the tambon's rings an odd number of times. */
st_code geo_builder_add_tambon(geo_builder *b, const char *code, const char *name_th,
                               const char *name_en, const char *geometry_json, size_t geometry_len,
                               st_error *err);
/* district_code may be NULL or "" (unknown); phone and name_en may be NULL. */
st_code geo_builder_add_station(geo_builder *b, const char *id, const char *name_th,
                                const char *name_en, const char *phone, double lat, double lon,
                                const char *district_code, st_error *err);
/* The station that answers for a tambon. */
st_code geo_builder_assign(geo_builder *b, const char *tambon_code, const char *station_id,
                           st_error *err);
/* Builds the index; version is the data's version (geo_meta.version, or 0 for files).
 * Always consumes b. ST_INVALID names the first broken reference (a district whose province
 * is missing, a repeated code, an assignment to an unknown station). Caller owns *ret. */
st_code geo_builder_finish(geo_builder *b, int64_t version, geo_index **ret_index, st_error *err);
void geo_builder_destroy(geo_builder *b); /* accepts NULL */
void geo_index_destroy(geo_index *index); /* accepts NULL */

/* The index of a dataset plus a station list (NULL: no stations). */
st_code geo_index_from_dataset(const geo_dataset *dataset, const geo_station_list *stations,
                               int64_t version, geo_index **ret_index, st_error *err);
/* geo_dataset_load(dir) + the directory's stations_synthetic.csv, for tests and
 * `essctl geo locate --data DIR`. */
st_code geo_index_load_dir(const char *dir, geo_index **ret_index, st_error *err);

typedef struct geo_index_stats {
    size_t provinces, districts, tambons, tambons_with_boundary, rings, points, stations,
        assigned_tambons, grid_cells;
    int64_t version;
} geo_index_stats;
void geo_index_get_stats(const geo_index *index, geo_index_stats *ret_stats);

/* A point strictly inside a tambon's boundary, found deterministically (the area centroid
 * when it is inside, else the middle of the widest inside stretch of a scan line).
 * ST_NOT_FOUND when the tambon is unknown or has no boundary. */
st_code geo_index_interior_point(const geo_index *index, const char *tambon_code, double *ret_lat,
                                 double *ret_lon, st_error *err);

/* ---- decisions ------------------------------------------------------------------------ */

typedef enum geo_match {
    GEO_MATCH_NONE = 0,        /* no area within max_offshore_km */
    GEO_MATCH_IN_POLYGON,      /* inside a tambon */
    GEO_MATCH_NEAREST_POLYGON, /* outside every tambon, the nearest within max_offshore_km */
} geo_match;

typedef struct geo_options {
    double max_offshore_km; /* ESS_GEO_MAX_OFFSHORE_KM, default 30 */
    int nearest_stations;   /* ESS_GEO_NEAREST_STATIONS, 0..GEO_NEAREST_MAX, default 3 */
} geo_options;
#define GEO_OPTIONS_DEFAULT ((geo_options){.max_offshore_km = 30.0, .nearest_stations = 3})

/* Borrowed from the index: valid while it lives. */
typedef struct geo_area_ref {
    const char *code; /* NULL when there is no area */
    const char *name_th;
    const char *name_en;
} geo_area_ref;

typedef struct geo_station_hit {
    const char *id; /* borrowed from the index */
    const char *name_th;
    const char *name_en;
    const char *phone; /* "" when none */
    double lat, lon;
    double distance_m; /* great-circle, from the point */
} geo_station_hit;

typedef struct geo_decision {
    double lat, lon;
    geo_match match;
    double area_distance_m; /* 0 inside; else metres to the nearest boundary */
    geo_area_ref province, district, tambon;
    bool has_station;             /* the responsible station below is set */
    bool station_by_jurisdiction; /* true: the tambon's station; false: none was assigned,
                                     so the nearest station stands in */
    geo_station_hit station;
    geo_station_hit nearest[GEO_NEAREST_MAX]; /* the next stations, nearest first, without
                                                 the responsible one */
    size_t nearest_count;
    int64_t version; /* the index's data version */
} geo_decision;

/* Decides for one point. ST_INVALID for coordinates that are not finite or out of range, or
 * options out of range; otherwise ST_OK (a point nowhere in Thailand is a decision too:
 * match NONE). Never allocates; thread-safe on a finished index. */
st_code geo_locate(const geo_index *index, double lat, double lon, const geo_options *options,
                   geo_decision *ret_decision, st_error *err);
const char *geo_match_name(geo_match match); /* "in_polygon", "nearest_polygon", "none" */

/* ---- targets --------------------------------------------------------------------------- */

typedef enum geo_team_kind {
    GEO_TEAM_MULTIDISCIPLINARY = 0,
    GEO_TEAM_PROVINCIAL_COMMAND,
    GEO_TEAM_NATIONAL_CENTRE,
} geo_team_kind;
/* "multidisciplinary", "provincial_command", "national_centre"; parse returns false for
 * anything else. */
const char *geo_team_kind_name(geo_team_kind kind);
bool geo_team_kind_parse(const char *text, geo_team_kind *ret_kind);

/* One active LINE group of an active team (a row of teams JOIN team_groups). Borrowed. */
typedef struct geo_team_group {
    int64_t team_id;
    const char *team_name;
    geo_team_kind kind;
    const char *province_code; /* NULL for the national centre */
    const char *station_id;    /* NULL unless the team's area is one station */
    const char *group_id;
} geo_team_group;

typedef struct geo_target {
    int64_t team_id;
    const char *team_name; /* borrowed from the rows */
    geo_team_kind kind;
    const char *group_id;
    int level; /* 0 = notified at once; 1, 2 = escalation steps, in order */
} geo_target;

typedef enum geo_reason {
    GEO_REASON_IN_POLYGON = 0,   /* area found inside a polygon, and a team for it */
    GEO_REASON_NEAREST_POLYGON,  /* area found by the nearest-polygon fallback, and a team */
    GEO_REASON_OUTSIDE_THAILAND, /* no area within max_offshore_km: national centre */
    GEO_REASON_NO_TEAM,          /* an area, but no team of it has a group: national centre */
} geo_reason;
/* The names of proto/schemas/ess.incident.routed.schema.json's "reason". */
const char *geo_reason_name(geo_reason reason);

/* The groups to notify, in escalation order:
 *   level 0: the responsible station's own team(s), then the province's teams whose area is
 *            the whole province (multidisciplinary);
 *   level 1: the own teams of the next nearest stations of the province (decision->nearest,
 *            nearest first), when there are any;
 *   next level: the province's provincial command team(s);
 *   next level: the national centre.
 * Levels stay consecutive (a level without a group is left out). With no level-0 group (no
 * area, or no team for it), the command and the national centre move to level 0 and the
 * reason says why. A group is listed once.
 * At most GEO_TARGETS_MAX targets (the rest are dropped, in order). Never fails. */
void geo_select_targets(const geo_decision *decision, const geo_team_group *groups,
                        size_t group_count, geo_target *ret_targets, size_t *ret_count,
                        geo_reason *ret_reason);

/* The JSON of a decision (heap, caller frees): the body of ess.incident.routed when
 * incident_id > 0 (with case_number and category; both may be NULL otherwise), and the
 * output of `essctl geo locate --json`. targets may be NULL with target_count 0. Fields:
 * see proto/schemas/ess.incident.routed.schema.json. */
typedef struct geo_json_input {
    int64_t incident_id;     /* 0: not an incident (locate) */
    const char *case_number; /* may be NULL */
    const char *category;    /* may be NULL */
    const char *routed_at;   /* RFC 3339 text, may be NULL */
    const geo_decision *decision;
    const geo_target *targets;
    size_t target_count;
    geo_reason reason;
    bool without_teams; /* true: the teams are unknown (files only): no targets, no reason */
} geo_json_input;
st_code geo_decision_json(const geo_json_input *input, char **ret_json, st_error *err);

#endif
