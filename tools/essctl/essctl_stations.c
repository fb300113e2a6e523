/* essctl stations: the police station directory.
 *
 *   essctl stations import FILE.csv [--dry-run]
 *       replaces the station directory (stations and their tambons of jurisdiction) with the
 *       rows of FILE.csv, in one transaction, after validating every row against the
 *       districts and tambons on record (run `essctl geo import` first). Bad rows are listed
 *       as FILE:LINE: problem, and nothing changes. --dry-run validates only. Bumps
 *       geo_meta.version, so running georouters reload. The columns are documented in
 *       services/georouter/geo.h and services/georouter/README.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "essctl.h"
#include "geo.h"
#include "geo_pg.h"

int essctl_stations_import(const essctl_command *command, int argc, char **argv);
void essctl_geo_print_problems(const char *file, const geo_problems *problems);

typedef struct replace_job {
    const geo_station_list *list;
    geo_pg_replace_result result;
    int64_t version;
} replace_job;

static st_code replace_tx(db *d, void *closure, st_error *err)
{
    replace_job *job = closure;
    st_code status = geo_pg_replace_stations(d, job->list, false, &job->result, err);
    if (status == ST_OK)
        status = geo_pg_bump_version(d, NULL, "imported", &job->version, err);
    return status;
}

int essctl_stations_import(const essctl_command *command, int argc, char **argv)
{
    bool dry_run = essctl_take_flag(&argc, argv, "--dry-run");
    if (argc < 1)
        return essctl_usage_error(command, "give the directory's CSV file");
    const char *path = argv[0];
    int exit_code = essctl_no_more_args(command, argc - 1, argv + 1);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;

    st_error err = {0};
    char *text = NULL;
    size_t len = 0;
    db *d = NULL;
    geo_code_set *districts = NULL, *tambons = NULL;
    geo_station_list *list = NULL;
    geo_problems *problems = calloc(1, sizeof(*problems));
    if (problems == NULL) {
        fprintf(stderr, "essctl %s: out of memory\n", command->name);
        return ESSCTL_EXIT_FAILURE;
    }
    if (geo_read_file(path, GEO_CSV_FILE_MAX, &text, &len, &err) != ST_OK) {
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    if ((exit_code = essctl_open_db(command, 5LL * 60 * 1000, &d)) != ESSCTL_EXIT_OK)
        goto cleanup;
    if (geo_pg_code_sets(d, &districts, &tambons, &err) != ST_OK) {
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    if (geo_code_set_count(tambons) == 0) {
        fprintf(stderr, "essctl %s: no tambon on record: run essctl geo import first\n",
                command->name);
        exit_code = ESSCTL_EXIT_FAILURE;
        goto cleanup;
    }
    if (geo_stations_parse(text, len, districts, tambons, &list, problems, &err) != ST_OK) {
        essctl_geo_print_problems(path, problems);
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    size_t jurisdictions = 0;
    for (size_t i = 0; i < list->count; i++)
        jurisdictions += list->items[i].tambon_count;
    if (dry_run) {
        printf("%s is valid: %zu stations, %zu tambons of jurisdiction (nothing changed)\n", path,
               list->count, jurisdictions);
        goto cleanup;
    }
    replace_job job = {.list = list};
    if (db_tx(d, 0, replace_tx, &job, &err) != ST_OK) {
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    printf("station directory replaced: %zu stations (%zu removed), %zu jurisdictions; "
           "geo version %lld\n",
           job.result.stations, job.result.removed, job.result.jurisdictions,
           (long long)job.version);

cleanup:
    geo_station_list_destroy(list);
    geo_code_set_destroy(districts);
    geo_code_set_destroy(tambons);
    free(problems);
    free(text);
    db_destroy(d);
    return exit_code;
}
