/* bench_geo: the georouter's decision per second, in memory (ess_geo, one thread) and as a
 * PostgreSQL query over the same data (tests/bench/georouter/run prepares the tables).
 *
 *   bench_geo --data DIR [--points N] [--seed S] [--dsn DSN --sql-points M [--postgis]
 *             [--plain-sql]]
 *
 * Points are uniform over Thailand's bounding box (lat 5.6..20.5, lon 97.3..105.7), from a
 * fixed-seed generator, so every run measures the same points; about a third of them fall on
 * Thai land, the rest at sea or abroad (the nearest-polygon path). "land" repeats the run
 * with points that fall inside a tambon only. The SQL runs go over one connection, one query
 * per point, and compare their area with the in-memory one. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "geo.h"

#define LAT_MIN 5.6
#define LAT_MAX 20.5
#define LON_MIN 97.3
#define LON_MAX 105.7
#define POINTS_MAX 10000000L

typedef struct point {
    double lat, lon;
} point;

static uint64_t rng_state;

static double uniform(void)
{
    /* xorshift64*: fixed sequence for a seed, no libc randomness. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static double now_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool parse_long(const char *text, long min, long max, long *ret_value)
{
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max)
        return false;
    *ret_value = value;
    return true;
}

typedef struct run_result {
    double wall_s, cpu_s;
    long in_polygon, nearest, none;
} run_result;

static run_result run_memory_k(const geo_index *index, const point *points, long count,
                               geo_decision *decisions, int nearest_stations)
{
    geo_options options = GEO_OPTIONS_DEFAULT;
    options.nearest_stations = nearest_stations;
    run_result r = {0};
    double wall = now_s(CLOCK_MONOTONIC), cpu = now_s(CLOCK_PROCESS_CPUTIME_ID);
    for (long i = 0; i < count; i++) {
        geo_decision d;
        geo_locate(index, points[i].lat, points[i].lon, &options, &d, NULL);
        r.in_polygon += d.match == GEO_MATCH_IN_POLYGON;
        r.nearest += d.match == GEO_MATCH_NEAREST_POLYGON;
        r.none += d.match == GEO_MATCH_NONE;
        if (decisions != NULL)
            decisions[i] = d;
    }
    r.wall_s = now_s(CLOCK_MONOTONIC) - wall;
    r.cpu_s = now_s(CLOCK_PROCESS_CPUTIME_ID) - cpu;
    return r;
}

static run_result run_memory(const geo_index *index, const point *points, long count,
                             geo_decision *decisions)
{
    return run_memory_k(index, points, count, decisions, GEO_OPTIONS_DEFAULT.nearest_stations);
}

static void print_memory(const char *label, long count, const run_result *r)
{
    printf("in-memory %-8s points=%-8ld lookups/s=%-10.0f us/lookup=%-7.2f cpu-us/lookup=%-7.2f "
           "(in polygon %ld, nearest polygon %ld, none %ld)\n",
           label, count, (double)count / r->wall_s, 1e6 * r->wall_s / (double)count,
           1e6 * r->cpu_s / (double)count, r->in_polygon, r->nearest, r->none);
}

/* The same decision in SQL: PostGIS (tambon by ST_Intersects, else the nearest within 30 km
 * on the sphere; k nearest stations by KNN on geography), or plain PostgreSQL (a GiST box
 * index and a PL/pgSQL ray cast; stations by KNN on point; no offshore fallback). */
static const char postgis_sql[] =
    "WITH p AS (SELECT ST_SetSRID(ST_MakePoint($2::float8, $1::float8), 4326) AS g), "
    "hit AS (SELECT t.code FROM bench_tambon_geom t, p WHERE ST_Intersects(t.geom, p.g) "
    "ORDER BY t.code LIMIT 1), "
    "near AS (SELECT t.code FROM bench_tambon_geom t, p WHERE NOT EXISTS (SELECT 1 FROM hit) "
    "AND ST_DWithin(t.geog, p.g::geography, 30000, false) "
    "ORDER BY ST_Distance(t.geog, p.g::geography, false), t.code LIMIT 1), "
    "area AS (SELECT code FROM hit UNION ALL SELECT code FROM near LIMIT 1) "
    "SELECT a.code, st.station_id, (SELECT string_agg(s.id, ',') FROM (SELECT s.id FROM "
    "bench_station_geom s, p ORDER BY s.geog <-> p.g::geography LIMIT 4) s) "
    "FROM area a LEFT JOIN station_tambons st ON st.tambon_code = a.code";

static const char plain_sql[] =
    "SELECT b.code, st.station_id, (SELECT string_agg(s.id, ',') FROM (SELECT s.id FROM "
    "bench_station_point s ORDER BY s.pt <-> point($2::float8, $1::float8) LIMIT 4) s) "
    "FROM bench_tambon_box b LEFT JOIN station_tambons st ON st.tambon_code = b.code "
    "WHERE b.bbox @> point($2::float8, $1::float8) AND bench_pip(b.code, $2::float8, "
    "$1::float8) ORDER BY b.code LIMIT 1";

static int run_sql(db *d, const char *label, const char *sql, const point *points, long count,
                   const geo_decision *memory)
{
    long agree = 0, compared = 0, found = 0;
    double wall = now_s(CLOCK_MONOTONIC);
    for (long i = 0; i < count; i++) {
        char lat[32], lon[32];
        snprintf(lat, sizeof(lat), "%.7f", points[i].lat);
        snprintf(lon, sizeof(lon), "%.7f", points[i].lon);
        const char *params[] = {lat, lon};
        db_result *r = NULL;
        st_error err = {0};
        if (db_exec(d, sql, 2, params, &r, &err) != ST_OK) {
            fprintf(stderr, "bench_geo: %s query failed: %s (%s)\n", label, err.message, err.cause);
            return 1;
        }
        const char *code = db_result_rows(r) > 0 ? db_result_value(r, 0, 0) : NULL;
        found += code != NULL;
        /* Plain SQL has no offshore fallback: compare it where the point is inside. */
        bool comparable = strcmp(label, "plain") != 0 || memory[i].match == GEO_MATCH_IN_POLYGON;
        if (comparable) {
            compared++;
            const char *mine = memory[i].tambon.code;
            agree += (code == NULL && mine == NULL) ||
                     (code != NULL && mine != NULL && strcmp(code, mine) == 0);
        }
        db_result_destroy(r);
    }
    double elapsed = now_s(CLOCK_MONOTONIC) - wall;
    printf("postgresql %-7s points=%-8ld queries/s=%-10.0f us/query=%-9.1f (area found %ld; "
           "same tambon as in memory: %.2f %% of %ld)\n",
           label, count, (double)count / elapsed, 1e6 * elapsed / (double)count, found,
           compared > 0 ? 100.0 * (double)agree / (double)compared : 0.0, compared);
    return 0;
}

int main(int argc, char **argv)
{
    const char *data_dir = NULL, *dsn = NULL;
    long points_count = 200000, sql_points = 2000, seed = 20261130;
    bool postgis = false, plain = false;
    for (int i = 1; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (strcmp(argv[i], "--data") == 0 && has_value) {
            data_dir = argv[++i];
        } else if (strcmp(argv[i], "--dsn") == 0 && has_value) {
            dsn = argv[++i];
        } else if (strcmp(argv[i], "--points") == 0 && has_value) {
            if (!parse_long(argv[++i], 1, POINTS_MAX, &points_count))
                return 2;
        } else if (strcmp(argv[i], "--sql-points") == 0 && has_value) {
            if (!parse_long(argv[++i], 1, POINTS_MAX, &sql_points))
                return 2;
        } else if (strcmp(argv[i], "--seed") == 0 && has_value) {
            if (!parse_long(argv[++i], 1, 1L << 40, &seed))
                return 2;
        } else if (strcmp(argv[i], "--postgis") == 0) {
            postgis = true;
        } else if (strcmp(argv[i], "--plain-sql") == 0) {
            plain = true;
        } else {
            fprintf(stderr, "usage: bench_geo --data DIR [--points N] [--seed S] [--dsn DSN "
                            "--sql-points M [--postgis] [--plain-sql]]\n");
            return 2;
        }
    }
    if (data_dir == NULL) {
        fprintf(stderr, "bench_geo: --data DIR is required\n");
        return 2;
    }
    if (sql_points > points_count)
        sql_points = points_count;

    st_error err = {0};
    geo_index *index = NULL;
    double started = now_s(CLOCK_MONOTONIC);
    if (geo_index_load_dir(data_dir, &index, &err) != ST_OK) {
        fprintf(stderr, "bench_geo: %s\n", err.message);
        return 1;
    }
    geo_index_stats stats;
    geo_index_get_stats(index, &stats);
    printf("# index: %zu tambons with boundaries, %zu points, %zu grid cells, %zu stations; "
           "built from files in %.2f s\n",
           stats.tambons_with_boundary, stats.points, stats.grid_cells, stats.stations,
           now_s(CLOCK_MONOTONIC) - started);

    point *mixed = malloc((size_t)points_count * sizeof(*mixed));
    point *land = malloc((size_t)points_count * sizeof(*land));
    geo_decision *decisions = malloc((size_t)sql_points * sizeof(*decisions));
    int exit_code = 1;
    db *d = NULL;
    if (mixed == NULL || land == NULL || decisions == NULL) {
        fprintf(stderr, "bench_geo: out of memory\n");
        goto cleanup;
    }
    rng_state = (uint64_t)seed * 0x9E3779B97F4A7C15ULL + 1;
    for (long i = 0; i < points_count; i++) {
        mixed[i].lat = LAT_MIN + (LAT_MAX - LAT_MIN) * uniform();
        mixed[i].lon = LON_MIN + (LON_MAX - LON_MIN) * uniform();
    }
    geo_options options = GEO_OPTIONS_DEFAULT;
    for (long i = 0; i < points_count;) {
        point p = {LAT_MIN + (LAT_MAX - LAT_MIN) * uniform(),
                   LON_MIN + (LON_MAX - LON_MIN) * uniform()};
        geo_decision dec;
        if (geo_locate(index, p.lat, p.lon, &options, &dec, NULL) == ST_OK &&
            dec.match == GEO_MATCH_IN_POLYGON)
            land[i++] = p;
    }
    run_memory(index, mixed, points_count < 10000 ? points_count : 10000, NULL); /* warm up */
    run_result all = run_memory(index, mixed, points_count, NULL);
    print_memory("mixed", points_count, &all);
    run_result inside = run_memory(index, land, points_count, NULL);
    print_memory("land", points_count, &inside);
    /* Where the time goes: the same without the next-stations search (k = 0). */
    run_result area_only = run_memory_k(index, land, points_count, NULL, 0);
    print_memory("land,k=0", points_count, &area_only);

    if (dsn != NULL && (postgis || plain)) {
        run_memory(index, mixed, sql_points, decisions);
        db_options db_opts = {
            .dsn = dsn, .application_name = "bench_geo", .statement_timeout_ms = 60000};
        if (db_connect(&db_opts, &d, &err) != ST_OK) {
            fprintf(stderr, "bench_geo: %s\n", err.message);
            goto cleanup;
        }
        double wall = now_s(CLOCK_MONOTONIC);
        run_memory(index, mixed, sql_points, NULL);
        printf("in-memory %-8s points=%-8ld (the SQL points) took %.1f ms\n", "mixed", sql_points,
               1e3 * (now_s(CLOCK_MONOTONIC) - wall));
        if (postgis && run_sql(d, "postgis", postgis_sql, mixed, sql_points, decisions) != 0)
            goto cleanup;
        if (plain && run_sql(d, "plain", plain_sql, mixed, sql_points, decisions) != 0)
            goto cleanup;
    }
    exit_code = 0;
cleanup:
    db_destroy(d);
    free(decisions);
    free(land);
    free(mixed);
    geo_index_destroy(index);
    return exit_code;
}
