/* essctl geo: the reference data of the georouter.
 *
 *   essctl geo import [--data DIR] [--force] [--replace-stations]
 *       loads deploy/data/geo into PostgreSQL: provinces, districts and tambons with their
 *       boundaries, and the synthetic station directory with its jurisdictions; one
 *       transaction; idempotent (the same files again change nothing and keep the version).
 *       A station directory imported with `essctl stations import` is kept unless
 *       --replace-stations. Bumps geo_meta.version, so running georouters reload.
 *   essctl geo locate LAT LON [--json] [--data DIR]
 *       the georouter's decision for a point: area, stations, and (from the database) the
 *       target teams. With --data, from the files alone, without teams.
 *
 * The data directory: --data DIR, else $ESS_GEO_DATA_DIR, else the first of
 * <essctl's dir>/../share/ess/geo (installed, the Docker image) and
 * <essctl's dir>/../../deploy/data/geo (a build tree: build/bin/essctl) that holds the files. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "cfg.h"
#include "essctl.h"
#include "geo.h"
#include "geo_pg.h"

int essctl_geo_import(const essctl_command *command, int argc, char **argv);
int essctl_geo_locate(const essctl_command *command, int argc, char **argv);
/* Shared with essctl_stations.c. */
void essctl_geo_print_problems(const char *file, const geo_problems *problems);

/* An import writes a few megabytes of polygons in one transaction. */
#define IMPORT_STATEMENT_TIMEOUT_MS (10LL * 60 * 1000)
#define PATH_SIZE 4096

/* ---- the data directory ---------------------------------------------------------------------- */

static bool has_data(const char *dir)
{
    char path[2 * PATH_SIZE];
    snprintf(path, sizeof(path), "%s/%s", dir, GEO_FILE_TAMBON_BOUNDARIES);
    return access(path, R_OK) == 0;
}

/* Fills dir (PATH_SIZE) or prints why not; returns an exit code. */
static int find_data_dir(const essctl_command *command, const char *given, char *dir)
{
    const char *from_env = getenv("ESS_GEO_DATA_DIR");
    const char *chosen = given != NULL ? given : from_env != NULL && from_env[0] ? from_env : NULL;
    if (chosen != NULL) {
        if (strlen(chosen) >= PATH_SIZE - 64 || !has_data(chosen)) {
            fprintf(stderr, "essctl %s: %s has no %s (the data directory is deploy/data/geo)\n",
                    command->name, given != NULL ? "--data" : "ESS_GEO_DATA_DIR",
                    GEO_FILE_TAMBON_BOUNDARIES);
            return ESSCTL_EXIT_USAGE;
        }
        snprintf(dir, PATH_SIZE, "%s", chosen);
        return ESSCTL_EXIT_OK;
    }
    char exe[PATH_SIZE];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL)
            *slash = '\0';
        static const char *const relative[] = {"../share/ess/geo", "../../deploy/data/geo"};
        for (size_t i = 0; i < sizeof(relative) / sizeof(relative[0]); i++) {
            char candidate[PATH_SIZE + 32];
            snprintf(candidate, sizeof(candidate), "%.*s/%s", PATH_SIZE - 40, exe, relative[i]);
            if (has_data(candidate)) {
                char *real = realpath(candidate, NULL);
                snprintf(dir, PATH_SIZE, "%.4000s", real != NULL ? real : candidate);
                free(real);
                return ESSCTL_EXIT_OK;
            }
        }
    }
    fprintf(stderr,
            "essctl %s: cannot find the geo data: give --data DIR or ESS_GEO_DATA_DIR "
            "(deploy/data/geo in the repository)\n",
            command->name);
    return ESSCTL_EXIT_USAGE;
}

/* ---- import -----------------------------------------------------------------------------------
 */

static double round6(double value)
{
    return round(value * 1e6) / 1e6;
}

/* The rows of one level as the JSON array that jsonb_to_recordset reads. */
static char *areas_json(const geo_area_record *records, size_t count, geo_level level)
{
    cJSON *root = cJSON_CreateArray();
    bool ok = root != NULL;
    for (size_t i = 0; ok && i < count; i++) {
        const geo_area_record *r = &records[i];
        cJSON *item = cJSON_CreateObject();
        ok = item != NULL && cJSON_AddItemToArray(root, item);
        if (!ok) {
            cJSON_Delete(item);
            break;
        }
        ok = cJSON_AddStringToObject(item, "code", r->code) != NULL &&
             cJSON_AddStringToObject(item, "name_th", r->name_th) != NULL &&
             cJSON_AddStringToObject(item, "name_en", r->name_en) != NULL;
        if (ok && level == GEO_TAMBON && r->postal_code[0] != '\0')
            ok = cJSON_AddStringToObject(item, "postal_code", r->postal_code) != NULL;
        if (ok && r->has_centroid)
            ok = cJSON_AddNumberToObject(item, "centroid_lat", round6(r->centroid_lat)) != NULL &&
                 cJSON_AddNumberToObject(item, "centroid_lon", round6(r->centroid_lon)) != NULL;
        if (ok && r->geometry_json != NULL) {
            cJSON *geometry = cJSON_ParseWithLength(r->geometry_json, r->geometry_len);
            ok = geometry != NULL && cJSON_AddItemToObject(item, "boundary", geometry);
            if (!ok)
                cJSON_Delete(geometry);
        }
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return text;
}

typedef struct import_job {
    const geo_dataset *dataset;
    const geo_station_list *stations;
    const char *data_sha256;
    bool force, replace_stations;
    char *provinces_json, *districts_json, *tambons_json, *codes_json;
    /* results */
    bool unchanged;
    bool stations_replaced;
    geo_pg_replace_result replaced;
    int64_t version;
    size_t unassigned;
} import_job;

static st_code import_tx(db *d, void *closure, st_error *err)
{
    import_job *job = closure;
    db_result *meta = NULL, *count = NULL;
    job->unchanged = job->stations_replaced = false;
    st_code status = db_exec(d,
                             "SELECT version, coalesce(data_sha256, ''), "
                             "coalesce(stations_source, ''), "
                             "(SELECT count(*) FROM stations) FROM geo_meta FOR UPDATE",
                             0, NULL, &meta, err);
    if (status != ST_OK)
        goto cleanup;
    if (db_result_rows(meta) != 1) {
        status = st_fail(err, ST_INTERNAL, "geo_meta has no row: run essctl db migrate");
        goto cleanup;
    }
    const char *source = db_result_value(meta, 0, 2);
    bool real_directory =
        strcmp(source, "imported") == 0 && strcmp(db_result_value(meta, 0, 3), "0") != 0;
    if (!job->force && strcmp(db_result_value(meta, 0, 1), job->data_sha256) == 0 &&
        (!job->replace_stations || !real_directory)) {
        job->unchanged = true;
        job->version = strtoll(db_result_value(meta, 0, 0), NULL, 10);
        goto cleanup;
    }

    const char *provinces[] = {job->provinces_json};
    const char *districts[] = {job->districts_json};
    const char *tambons[] = {job->tambons_json};
    const char *codes[] = {job->codes_json};
    if ((status = db_exec(d,
                          "INSERT INTO provinces (code, name_th, name_en, centroid_lat, "
                          "centroid_lon, boundary) SELECT r.code, r.name_th, r.name_en, "
                          "r.centroid_lat, r.centroid_lon, r.boundary FROM "
                          "jsonb_to_recordset($1::jsonb) AS r(code text, name_th text, "
                          "name_en text, centroid_lat double precision, centroid_lon double "
                          "precision, boundary jsonb) ON CONFLICT (code) DO UPDATE SET "
                          "name_th = EXCLUDED.name_th, name_en = EXCLUDED.name_en, "
                          "centroid_lat = EXCLUDED.centroid_lat, centroid_lon = "
                          "EXCLUDED.centroid_lon, boundary = EXCLUDED.boundary, updated_at = now() "
                          "WHERE (provinces.name_th, provinces.name_en, provinces.centroid_lat, "
                          "provinces.centroid_lon, provinces.boundary) IS DISTINCT FROM "
                          "(EXCLUDED.name_th, EXCLUDED.name_en, EXCLUDED.centroid_lat, "
                          "EXCLUDED.centroid_lon, EXCLUDED.boundary)",
                          1, provinces, NULL, err)) != ST_OK ||
        (status = db_exec(d,
                          "INSERT INTO districts (code, province_code, name_th, name_en, "
                          "centroid_lat, centroid_lon, boundary) SELECT r.code, left(r.code, 4), "
                          "r.name_th, r.name_en, r.centroid_lat, r.centroid_lon, r.boundary FROM "
                          "jsonb_to_recordset($1::jsonb) AS r(code text, name_th text, "
                          "name_en text, centroid_lat double precision, centroid_lon double "
                          "precision, boundary jsonb) ON CONFLICT (code) DO UPDATE SET "
                          "name_th = EXCLUDED.name_th, name_en = EXCLUDED.name_en, "
                          "centroid_lat = EXCLUDED.centroid_lat, centroid_lon = "
                          "EXCLUDED.centroid_lon, boundary = EXCLUDED.boundary, updated_at = now() "
                          "WHERE (districts.name_th, districts.name_en, districts.centroid_lat, "
                          "districts.centroid_lon, districts.boundary) IS DISTINCT FROM "
                          "(EXCLUDED.name_th, EXCLUDED.name_en, EXCLUDED.centroid_lat, "
                          "EXCLUDED.centroid_lon, EXCLUDED.boundary)",
                          1, districts, NULL, err)) != ST_OK ||
        (status = db_exec(d,
                          "INSERT INTO tambons (code, district_code, province_code, name_th, "
                          "name_en, postal_code, centroid_lat, centroid_lon, boundary) SELECT "
                          "r.code, left(r.code, 6), left(r.code, 4), r.name_th, r.name_en, "
                          "r.postal_code, r.centroid_lat, r.centroid_lon, r.boundary FROM "
                          "jsonb_to_recordset($1::jsonb) AS r(code text, name_th text, "
                          "name_en text, postal_code text, centroid_lat double precision, "
                          "centroid_lon double precision, boundary jsonb) ON CONFLICT (code) DO "
                          "UPDATE SET name_th = EXCLUDED.name_th, name_en = EXCLUDED.name_en, "
                          "postal_code = EXCLUDED.postal_code, centroid_lat = "
                          "EXCLUDED.centroid_lat, centroid_lon = EXCLUDED.centroid_lon, "
                          "boundary = EXCLUDED.boundary, updated_at = now() "
                          "WHERE (tambons.name_th, tambons.name_en, tambons.postal_code, "
                          "tambons.centroid_lat, tambons.centroid_lon, tambons.boundary) IS "
                          "DISTINCT FROM (EXCLUDED.name_th, EXCLUDED.name_en, "
                          "EXCLUDED.postal_code, EXCLUDED.centroid_lat, EXCLUDED.centroid_lon, "
                          "EXCLUDED.boundary)",
                          1, tambons, NULL, err)) != ST_OK)
        goto cleanup;

    /* The synthetic directory follows the data; a real one stays unless told otherwise. */
    if (!real_directory || job->replace_stations) {
        status = geo_pg_replace_stations(d, job->stations, true, &job->replaced, err);
        if (status != ST_OK)
            goto cleanup;
        job->stations_replaced = true;
    }
    /* Areas no longer in the files go (their jurisdictions first). A station or team still
     * in a vanished district or province makes this fail with the constraint's name. */
    if ((status = db_exec(d,
                          "DELETE FROM station_tambons WHERE tambon_code NOT IN (SELECT "
                          "jsonb_array_elements_text($1::jsonb -> 'tambons'))",
                          1, codes, NULL, err)) != ST_OK ||
        (status = db_exec(d,
                          "DELETE FROM tambons WHERE code NOT IN (SELECT "
                          "jsonb_array_elements_text($1::jsonb -> 'tambons'))",
                          1, codes, NULL, err)) != ST_OK ||
        (status = db_exec(d,
                          "DELETE FROM districts WHERE code NOT IN (SELECT "
                          "jsonb_array_elements_text($1::jsonb -> 'districts'))",
                          1, codes, NULL, err)) != ST_OK ||
        (status = db_exec(d,
                          "DELETE FROM provinces WHERE code NOT IN (SELECT "
                          "jsonb_array_elements_text($1::jsonb -> 'provinces'))",
                          1, codes, NULL, err)) != ST_OK)
        goto cleanup;
    if ((status = db_exec(d,
                          "SELECT count(*) FROM tambons t WHERE NOT EXISTS (SELECT 1 FROM "
                          "station_tambons s WHERE s.tambon_code = t.code)",
                          0, NULL, &count, err)) != ST_OK)
        goto cleanup;
    job->unassigned = (size_t)strtoull(db_result_value(count, 0, 0), NULL, 10);
    status = geo_pg_bump_version(d, job->data_sha256, job->stations_replaced ? "synthetic" : NULL,
                                 &job->version, err);
cleanup:
    db_result_destroy(count);
    db_result_destroy(meta);
    return status;
}

static char *codes_json(const geo_dataset *dataset)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *provinces = cJSON_AddArrayToObject(root, "provinces");
    cJSON *districts = cJSON_AddArrayToObject(root, "districts");
    cJSON *tambons = cJSON_AddArrayToObject(root, "tambons");
    bool ok = provinces != NULL && districts != NULL && tambons != NULL;
    for (size_t i = 0; ok && i < dataset->province_count; i++)
        ok = cJSON_AddItemToArray(provinces, cJSON_CreateString(dataset->provinces[i].code));
    for (size_t i = 0; ok && i < dataset->district_count; i++)
        ok = cJSON_AddItemToArray(districts, cJSON_CreateString(dataset->districts[i].code));
    for (size_t i = 0; ok && i < dataset->tambon_count; i++)
        ok = cJSON_AddItemToArray(tambons, cJSON_CreateString(dataset->tambons[i].code));
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return text;
}

/* SHA-256 of the dataset's digest and the station file: "the same files". */
static bool combined_digest(const char *dataset_sha, const char *stations, size_t len, char out[65])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, dataset_sha, strlen(dataset_sha)) == 1 &&
              EVP_DigestUpdate(ctx, stations, len) == 1 &&
              EVP_DigestFinal_ex(ctx, digest, &digest_len) == 1 && digest_len == 32;
    EVP_MD_CTX_free(ctx);
    for (unsigned int i = 0; ok && i < digest_len; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
    return ok;
}

/* Prints the problems of a station directory, one per line, as FILE:LINE: message. */
void essctl_geo_print_problems(const char *file, const geo_problems *problems)
{
    for (size_t i = 0; i < problems->kept; i++) {
        if (problems->items[i].line > 0)
            fprintf(stderr, "%s:%zu: %s\n", file, problems->items[i].line,
                    problems->items[i].message);
        else
            fprintf(stderr, "%s: %s\n", file, problems->items[i].message);
    }
    if (problems->total > problems->kept)
        fprintf(stderr, "%s: ... and %zu more problems\n", file, problems->total - problems->kept);
}

int essctl_geo_import(const essctl_command *command, int argc, char **argv)
{
    const char *given_dir = NULL;
    bool force = essctl_take_flag(&argc, argv, "--force");
    bool replace_stations = essctl_take_flag(&argc, argv, "--replace-stations");
    if (!essctl_take_option(command, &argc, argv, "--data", &given_dir))
        return ESSCTL_EXIT_USAGE;
    int exit_code = essctl_no_more_args(command, argc, argv);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;
    char dir[PATH_SIZE], stations_path[PATH_SIZE + 64];
    if ((exit_code = find_data_dir(command, given_dir, dir)) != ESSCTL_EXIT_OK)
        return exit_code;

    st_error err = {0};
    geo_dataset *dataset = NULL;
    geo_code_set *districts = NULL, *tambons = NULL;
    geo_station_list *stations = NULL;
    geo_problems *problems = calloc(1, sizeof(*problems));
    char *stations_text = NULL;
    db *d = NULL;
    import_job job = {.force = force, .replace_stations = replace_stations};
    char digest[65];
    if (problems == NULL) {
        fprintf(stderr, "essctl %s: out of memory\n", command->name);
        return ESSCTL_EXIT_FAILURE;
    }
    snprintf(stations_path, sizeof(stations_path), "%s/%s", dir, GEO_FILE_STATIONS);
    if (geo_dataset_load(dir, &dataset, &err) != ST_OK ||
        geo_dataset_code_sets(dataset, &districts, &tambons, &err) != ST_OK) {
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    size_t stations_len = 0;
    if (geo_read_file(stations_path, GEO_CSV_FILE_MAX, &stations_text, &stations_len, &err) !=
        ST_OK) {
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    if (geo_stations_parse(stations_text, stations_len, districts, tambons, &stations, problems,
                           &err) != ST_OK) {
        essctl_geo_print_problems(stations_path, problems);
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    job.dataset = dataset;
    job.stations = stations;
    job.provinces_json = areas_json(dataset->provinces, dataset->province_count, GEO_PROVINCE);
    job.districts_json = areas_json(dataset->districts, dataset->district_count, GEO_DISTRICT);
    job.tambons_json = areas_json(dataset->tambons, dataset->tambon_count, GEO_TAMBON);
    job.codes_json = codes_json(dataset);
    if (job.provinces_json == NULL || job.districts_json == NULL || job.tambons_json == NULL ||
        job.codes_json == NULL ||
        !combined_digest(dataset->sha256_hex, stations_text, stations_len, digest)) {
        fprintf(stderr, "essctl %s: out of memory\n", command->name);
        exit_code = ESSCTL_EXIT_FAILURE;
        goto cleanup;
    }
    job.data_sha256 = digest;
    if ((exit_code = essctl_open_db(command, IMPORT_STATEMENT_TIMEOUT_MS, &d)) != ESSCTL_EXIT_OK)
        goto cleanup;
    if (db_tx(d, 0, import_tx, &job, &err) != ST_OK) {
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    if (job.unchanged) {
        printf("geo data already imported from these files; geo version %lld (use --force to "
               "write it again)\n",
               (long long)job.version);
        goto cleanup;
    }
    size_t with_boundary = 0;
    for (size_t i = 0; i < dataset->tambon_count; i++)
        with_boundary += dataset->tambons[i].geometry_json != NULL;
    printf("imported %zu provinces, %zu districts, %zu tambons (%zu with a boundary) from %s\n",
           dataset->province_count, dataset->district_count, dataset->tambon_count, with_boundary,
           dir);
    if (job.stations_replaced)
        printf("stations: %zu (synthetic directory, %zu removed), %zu jurisdictions\n",
               job.replaced.stations, job.replaced.removed, job.replaced.jurisdictions);
    else
        printf("stations: the imported directory is kept (--replace-stations replaces it with "
               "the synthetic one)\n");
    if (job.unassigned > 0)
        printf("warning: %zu tambons have no station; the nearest station stands in for them\n",
               job.unassigned);
    printf("geo version %lld\n", (long long)job.version);

cleanup:
    db_destroy(d);
    free(job.provinces_json);
    free(job.districts_json);
    free(job.tambons_json);
    free(job.codes_json);
    free(stations_text);
    free(problems);
    geo_station_list_destroy(stations);
    geo_code_set_destroy(districts);
    geo_code_set_destroy(tambons);
    geo_dataset_destroy(dataset);
    return exit_code;
}

/* ---- locate -----------------------------------------------------------------------------------
 */

typedef struct locate_config {
    int64_t max_offshore_km;
    int64_t nearest_stations;
} locate_config;

/* The georouter's own variables and defaults (services/georouter/main.c), so that the
 * decision printed is the service's. */
static const cfg_field locate_fields[] = {
    CFG_INT("ESS_GEO_MAX_OFFSHORE_KM", "30", 0, 1000, "nearest-polygon fallback radius, km",
            locate_config, max_offshore_km),
    CFG_INT("ESS_GEO_NEAREST_STATIONS", "3", 0, GEO_NEAREST_MAX, "next stations listed",
            locate_config, nearest_stations),
};

static bool parse_degrees(const char *text, double limit, double *ret_value)
{
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(value) || fabs(value) > limit)
        return false;
    *ret_value = value;
    return true;
}

static void print_station(const char *label, const geo_station_hit *s, const char *note)
{
    printf("%-12s %s  %s (%s)  %.1f km%s\n", label, s->id, s->name_en, s->name_th,
           s->distance_m / 1000.0, note);
}

static void print_decision(const geo_decision *d, const geo_target *targets, size_t target_count,
                           bool with_teams, geo_reason reason)
{
    printf("%-12s %.6f, %.6f\n", "point", d->lat, d->lon);
    if (d->match == GEO_MATCH_NONE) {
        printf("%-12s none: no Thai area within the offshore limit\n", "area");
    } else {
        printf("%-12s %s", "area", d->match == GEO_MATCH_IN_POLYGON ? "inside" : "nearest");
        if (d->match == GEO_MATCH_NEAREST_POLYGON)
            printf(" (%.1f km away)", d->area_distance_m / 1000.0);
        printf("\n%-12s %s %s (%s)\n", "province", d->province.code, d->province.name_en,
               d->province.name_th);
        printf("%-12s %s %s (%s)\n", "district", d->district.code, d->district.name_en,
               d->district.name_th);
        printf("%-12s %s %s (%s)\n", "tambon", d->tambon.code, d->tambon.name_en,
               d->tambon.name_th);
    }
    if (d->has_station)
        print_station("station", &d->station,
                      d->station_by_jurisdiction ? "  (jurisdiction)"
                                                 : "  (nearest: no jurisdiction)");
    for (size_t i = 0; i < d->nearest_count; i++)
        print_station(i == 0 ? "next" : "", &d->nearest[i], "");
    if (with_teams) {
        if (target_count == 0)
            printf("%-12s none (no team for the area and no national centre)\n", "targets");
        for (size_t i = 0; i < target_count; i++)
            printf("%-12s level %d  team %lld \"%s\" (%s)  group %s\n", i == 0 ? "targets" : "",
                   targets[i].level, (long long)targets[i].team_id, targets[i].team_name,
                   geo_team_kind_name(targets[i].kind), targets[i].group_id);
        printf("%-12s %s\n", "reason", geo_reason_name(reason));
    }
    printf("%-12s %lld\n", "geo version", (long long)d->version);
}

int essctl_geo_locate(const essctl_command *command, int argc, char **argv)
{
    bool json = essctl_take_flag(&argc, argv, "--json");
    const char *given_dir = NULL;
    if (!essctl_take_option(command, &argc, argv, "--data", &given_dir))
        return ESSCTL_EXIT_USAGE;
    /* "--" lets a negative latitude through: essctl geo locate -- -33.9 18.4 */
    if (argc > 0 && strcmp(argv[0], "--") == 0) {
        argv++;
        argc--;
    }
    double lat = 0, lon = 0;
    if (argc < 2)
        return essctl_usage_error(command, "give LAT and LON in decimal degrees");
    if (!parse_degrees(argv[0], 90, &lat) || !parse_degrees(argv[1], 180, &lon))
        return essctl_usage_error(command, "LAT must be -90..90 and LON -180..180");
    int exit_code = essctl_no_more_args(command, argc - 2, argv + 2);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;

    locate_config config = {0};
    char *problems = NULL;
    size_t field_count = sizeof(locate_fields) / sizeof(locate_fields[0]);
    if (cfg_load(locate_fields, field_count, NULL, NULL, &config, &problems) != ST_OK) {
        fprintf(stderr, "essctl %s: %s\n", command->name, problems != NULL ? problems : "");
        free(problems);
        return ESSCTL_EXIT_USAGE;
    }
    geo_options options = {.max_offshore_km = (double)config.max_offshore_km,
                           .nearest_stations = (int)config.nearest_stations};
    st_error err = {0};
    geo_index *index = NULL;
    geo_pg_teams *teams = NULL;
    db *d = NULL;
    char *text = NULL;
    char dir[PATH_SIZE];
    bool with_teams = given_dir == NULL;
    if (!with_teams) {
        if ((exit_code = find_data_dir(command, given_dir, dir)) != ESSCTL_EXIT_OK)
            goto cleanup;
        if (geo_index_load_dir(dir, &index, &err) != ST_OK) {
            exit_code = essctl_fail(command, &err);
            goto cleanup;
        }
    } else {
        if ((exit_code = essctl_open_db(command, 120000, &d)) != ESSCTL_EXIT_OK)
            goto cleanup;
        if (geo_pg_load(d, &index, &err) != ST_OK) {
            exit_code = essctl_fail(command, &err);
            goto cleanup;
        }
    }
    geo_decision decision;
    if (geo_locate(index, lat, lon, &options, &decision, &err) != ST_OK) {
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    geo_target targets[GEO_TARGETS_MAX];
    size_t target_count = 0;
    geo_reason reason = GEO_REASON_OUTSIDE_THAILAND;
    if (with_teams) {
        const geo_team_group *groups = NULL;
        size_t group_count = 0;
        if (geo_pg_team_groups(d, decision.match != GEO_MATCH_NONE ? decision.province.code : NULL,
                               &groups, &group_count, &teams, &err) != ST_OK) {
            exit_code = essctl_fail(command, &err);
            goto cleanup;
        }
        geo_select_targets(&decision, groups, group_count, targets, &target_count, &reason);
    }
    if (json) {
        geo_json_input input = {.decision = &decision,
                                .targets = targets,
                                .target_count = target_count,
                                .reason = reason,
                                .without_teams = !with_teams};
        if (geo_decision_json(&input, &text, &err) != ST_OK) {
            exit_code = essctl_fail(command, &err);
            goto cleanup;
        }
        printf("%s\n", text);
    } else {
        print_decision(&decision, targets, target_count, with_teams, reason);
    }
cleanup:
    free(text);
    geo_pg_teams_destroy(teams);
    geo_index_destroy(index);
    db_destroy(d);
    cfg_release(locate_fields, field_count, &config);
    return exit_code;
}
