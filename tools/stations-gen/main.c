/* stations-gen: writes the SYNTHETIC police station directory deploy/data/geo/
 * stations_synthetic.csv from the boundaries and code lists beside it.
 *
 *   stations-gen [--data DIR] [--out FILE] [--total N]
 *
 * No open data set of Thai police station locations exists (DESIGN.md §5), so the project
 * ships a made-up one with the real one's shape: N stations (default 1,482, the real count),
 * at least one per district, each standing inside its district, every tambon answering to
 * exactly one station of its own district. The same input gives byte-identical output: every
 * choice below is a pure function of the data, ties are broken by code, and coordinates are
 * printed with a fixed number of decimals. tests/unit/georouter re-runs this and compares.
 *
 * How:
 *   1. a seat point for every tambon with a boundary: a point inside its polygon
 *      (geo_index_interior_point), kept only when geo_locate puts it in the same district;
 *   2. one station per district, then the other N - 928 one at a time to the district with
 *      the most tambons per station (ties: lower code), never more stations than seats. No
 *      population figures ship with the data; the tambon count stands in for population,
 *      because DOPA forms tambons by population, so a district with many tambons has many
 *      people;
 *   3. the first station of a district sits at the seat nearest the district's centroid; each
 *      further one at the seat farthest from those already placed (spreads them out);
 *   4. every tambon of the district answers to the nearest of its stations, measured from its
 *      seat point (or the code list's point for the few tambons without a boundary; a tambon
 *      with neither goes to the district's first station).
 * Names: "สถานีตำรวจภูธร<district>" / "<District> Police Station" ("สถานีตำรวจนครบาล<khet>" /
 * "<Khet> Metropolitan Police Station" in Bangkok), numbered " 2", " 3" ... when a district has
 * several. Ids: SYN-<district code>-<nn>. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "geo.h"

#define TOTAL_DEFAULT 1482
#define TOTAL_MAX 20000
#define STATIONS_PER_DISTRICT_MAX 99

typedef struct seat {
    bool usable;
    double lat, lon;
} seat;

typedef struct district_plan {
    size_t first_tambon, tambon_count; /* range in dataset->tambons */
    size_t seat_count;                 /* tambons with a usable seat point */
    size_t stations;
    size_t chosen[STATIONS_PER_DISTRICT_MAX]; /* tambon index of each station's seat */
} district_plan;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: stations-gen [--data DIR] [--out FILE] [--total N]\n"
            "  --data DIR   deploy/data/geo (default: ./deploy/data/geo)\n"
            "  --out FILE   where to write the CSV (default: standard output)\n"
            "  --total N    how many stations (default %d)\n",
            TOTAL_DEFAULT);
}

/* Writes one CSV field, quoted when it holds a comma, quote or line end. */
static void csv_field(FILE *out, const char *text, bool last)
{
    if (strpbrk(text, ",\"\r\n") != NULL) {
        fputc('"', out);
        for (const char *p = text; *p != '\0'; p++) {
            if (*p == '"')
                fputc('"', out);
            fputc(*p, out);
        }
        fputc('"', out);
    } else {
        fputs(text, out);
    }
    fputc(last ? '\n' : ',', out);
}

/* Tambon count per station of a, compared with b's: a·s_b vs b·s_a, exact in integers. */
static int compare_load(const district_plan *a, const district_plan *b)
{
    unsigned long long left = (unsigned long long)a->tambon_count * b->stations;
    unsigned long long right = (unsigned long long)b->tambon_count * a->stations;
    return (left > right) - (left < right);
}

static bool parse_total(const char *text, long *ret_total)
{
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < 1 || value > TOTAL_MAX)
        return false;
    *ret_total = value;
    return true;
}

static int fail(const char *what, const st_error *err)
{
    fprintf(stderr, "stations-gen: %s: %s\n", what, err->message);
    return 1;
}

int main(int argc, char **argv)
{
    const char *data_dir = "deploy/data/geo", *out_path = NULL;
    long total = TOTAL_DEFAULT;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        bool has_value = i + 1 < argc;
        if (strcmp(argv[i], "--data") == 0 && has_value) {
            data_dir = argv[++i];
        } else if (strcmp(argv[i], "--out") == 0 && has_value) {
            out_path = argv[++i];
        } else if (strcmp(argv[i], "--total") == 0 && has_value) {
            if (!parse_total(argv[++i], &total)) {
                fprintf(stderr, "stations-gen: --total must be 1..%d\n", TOTAL_MAX);
                return 2;
            }
        } else {
            usage(stderr);
            return 2;
        }
    }

    int exit_code = 1;
    st_error err = {0};
    geo_dataset *dataset = NULL;
    geo_index *index = NULL;
    seat *seats = NULL;
    district_plan *plans = NULL;
    size_t *owner = NULL;
    FILE *out = NULL;
    char tmp_path[4096] = "";

    if (geo_dataset_load(data_dir, &dataset, &err) != ST_OK) {
        exit_code = fail("cannot read the data", &err);
        goto cleanup;
    }
    if (geo_index_from_dataset(dataset, NULL, 0, &index, &err) != ST_OK) {
        exit_code = fail("cannot index the boundaries", &err);
        goto cleanup;
    }
    size_t tambon_count = dataset->tambon_count, district_count = dataset->district_count;
    if ((size_t)total < district_count) {
        fprintf(stderr, "stations-gen: --total %ld is less than the %zu districts\n", total,
                district_count);
        exit_code = 2;
        goto cleanup;
    }
    seats = calloc(tambon_count, sizeof(*seats));
    plans = calloc(district_count, sizeof(*plans));
    owner = calloc(tambon_count, sizeof(*owner));
    if (seats == NULL || plans == NULL || owner == NULL) {
        fprintf(stderr, "stations-gen: out of memory\n");
        goto cleanup;
    }

    /* 1. Seat points, and each district's range of tambons (both lists are sorted by code,
     *    and a tambon's code begins with its district's). */
    size_t t = 0;
    for (size_t d = 0; d < district_count; d++) {
        district_plan *plan = &plans[d];
        const geo_area_record *district = &dataset->districts[d];
        while (t < tambon_count && strcmp(dataset->tambons[t].parent_code, district->code) < 0)
            t++;
        plan->first_tambon = t;
        while (t < tambon_count && strcmp(dataset->tambons[t].parent_code, district->code) == 0) {
            const geo_area_record *tambon = &dataset->tambons[t];
            seat *s = &seats[t];
            geo_decision decision;
            if (tambon->geometry_json != NULL &&
                geo_index_interior_point(index, tambon->code, &s->lat, &s->lon, NULL) == ST_OK) {
                /* Printed with 6 decimals: decide on the printed value. */
                s->lat = round(s->lat * 1e6) / 1e6;
                s->lon = round(s->lon * 1e6) / 1e6;
                s->usable = geo_locate(index, s->lat, s->lon, NULL, &decision, NULL) == ST_OK &&
                            decision.match == GEO_MATCH_IN_POLYGON &&
                            strcmp(decision.district.code, district->code) == 0;
            }
            plan->seat_count += s->usable ? 1 : 0;
            t++;
        }
        plan->tambon_count = t - plan->first_tambon;
        if (plan->seat_count == 0) {
            fprintf(stderr, "stations-gen: district %s has no tambon to place a station in\n",
                    district->code);
            goto cleanup;
        }
        plan->stations = 1;
    }

    /* 2. The remaining stations, one at a time, to the busiest district. */
    for (size_t extra = district_count; extra < (size_t)total; extra++) {
        size_t best = district_count;
        for (size_t d = 0; d < district_count; d++) {
            const district_plan *plan = &plans[d];
            if (plan->stations >= plan->seat_count || plan->stations >= STATIONS_PER_DISTRICT_MAX)
                continue;
            if (best == district_count || compare_load(plan, &plans[best]) > 0)
                best = d;
        }
        if (best == district_count) {
            fprintf(stderr, "stations-gen: no district can take station %zu\n", extra + 1);
            goto cleanup;
        }
        plans[best].stations++;
    }

    /* 3. Seats: nearest the centroid first, then farthest from the ones placed. */
    for (size_t d = 0; d < district_count; d++) {
        district_plan *plan = &plans[d];
        const geo_area_record *district = &dataset->districts[d];
        double centre_lat = district->centroid_lat, centre_lon = district->centroid_lon;
        if (!district->has_centroid) {
            /* No boundary for the district: the first usable seat stands in. */
            for (size_t k = plan->first_tambon; k < plan->first_tambon + plan->tambon_count; k++)
                if (seats[k].usable) {
                    centre_lat = seats[k].lat;
                    centre_lon = seats[k].lon;
                    break;
                }
        }
        for (size_t n = 0; n < plan->stations; n++) {
            size_t pick = SIZE_MAX;
            double pick_score = 0;
            for (size_t k = plan->first_tambon; k < plan->first_tambon + plan->tambon_count; k++) {
                if (!seats[k].usable)
                    continue;
                bool taken = false;
                double score = INFINITY;
                for (size_t c = 0; c < n; c++) {
                    taken = taken || plan->chosen[c] == k;
                    double dist =
                        geo_distance_m(seats[k].lat, seats[k].lon, seats[plan->chosen[c]].lat,
                                       seats[plan->chosen[c]].lon);
                    score = fmin(score, dist);
                }
                if (taken)
                    continue;
                if (n == 0)
                    score = -geo_distance_m(seats[k].lat, seats[k].lon, centre_lat, centre_lon);
                if (pick == SIZE_MAX || score > pick_score) {
                    pick = k;
                    pick_score = score;
                }
            }
            plan->chosen[n] = pick;
        }
        /* 4. Jurisdiction: the nearest station of the district. */
        for (size_t k = plan->first_tambon; k < plan->first_tambon + plan->tambon_count; k++) {
            const geo_area_record *tambon = &dataset->tambons[k];
            double lat = 0, lon = 0;
            bool located = true;
            if (tambon->geometry_json != NULL && seats[k].usable) {
                lat = seats[k].lat;
                lon = seats[k].lon;
            } else if (tambon->has_centroid) {
                lat = tambon->centroid_lat;
                lon = tambon->centroid_lon;
            } else {
                located = false;
            }
            size_t nearest = 0;
            double nearest_distance = INFINITY;
            for (size_t c = 0; located && c < plan->stations; c++) {
                const seat *s = &seats[plan->chosen[c]];
                double dist = geo_distance_m(lat, lon, s->lat, s->lon);
                if (dist < nearest_distance) {
                    nearest = c;
                    nearest_distance = dist;
                }
            }
            owner[k] = nearest;
        }
    }

    /* Output: to a temporary file renamed at the end, so a failure leaves the old one. */
    if (out_path != NULL) {
        snprintf(tmp_path, sizeof(tmp_path), "%s.tmp", out_path);
        out = fopen(tmp_path, "w");
        if (out == NULL) {
            fprintf(stderr, "stations-gen: cannot write %s: %s\n", tmp_path, strerror(errno));
            tmp_path[0] = '\0';
            goto cleanup;
        }
    } else {
        out = stdout;
    }
    fputs("id,name_th,name_en,lat,lon,district_code,province_code,phone,tambons\n", out);
    for (size_t d = 0; d < district_count; d++) {
        const district_plan *plan = &plans[d];
        const geo_area_record *district = &dataset->districts[d];
        bool bangkok = strcmp(district->parent_code, "TH10") == 0;
        for (size_t n = 0; n < plan->stations; n++) {
            char id[GEO_STATION_ID_MAX + 1], number[24] = "", name_th[512], name_en[512];
            char lat[32], lon[32];
            if (plan->stations > 1 && n > 0)
                snprintf(number, sizeof(number), " %zu", n + 1);
            snprintf(id, sizeof(id), "SYN-%s-%02zu", district->code, n + 1);
            snprintf(name_th, sizeof(name_th), "%s%s%s",
                     bangkok ? "สถานีตำรวจนครบาล" : "สถานีตำรวจภูธร", district->name_th, number);
            snprintf(name_en, sizeof(name_en), "%s%s Police Station%s", district->name_en,
                     bangkok ? " Metropolitan" : "", number);
            const seat *s = &seats[plan->chosen[n]];
            snprintf(lat, sizeof(lat), "%.6f", s->lat);
            snprintf(lon, sizeof(lon), "%.6f", s->lon);
            csv_field(out, id, false);
            csv_field(out, name_th, false);
            csv_field(out, name_en, false);
            csv_field(out, lat, false);
            csv_field(out, lon, false);
            csv_field(out, district->code, false);
            csv_field(out, district->parent_code, false);
            csv_field(out, "", false);
            bool first = true;
            for (size_t k = plan->first_tambon; k < plan->first_tambon + plan->tambon_count; k++) {
                if (owner[k] != n)
                    continue;
                fprintf(out, "%s%s", first ? "" : ";", dataset->tambons[k].code);
                first = false;
            }
            fputc('\n', out);
        }
    }
    if (out != stdout) {
        bool written = fflush(out) == 0 && ferror(out) == 0;
        bool closed = fclose(out) == 0;
        out = NULL;
        if (!written || !closed || rename(tmp_path, out_path) != 0) {
            fprintf(stderr, "stations-gen: cannot write %s: %s\n", out_path, strerror(errno));
            goto cleanup;
        }
        tmp_path[0] = '\0';
    } else if (fflush(stdout) != 0) {
        goto cleanup;
    }
    exit_code = 0;

cleanup:
    if (out != NULL && out != stdout)
        fclose(out);
    if (tmp_path[0] != '\0')
        remove(tmp_path);
    free(owner);
    free(plans);
    free(seats);
    geo_index_destroy(index);
    geo_dataset_destroy(dataset);
    return exit_code;
}
