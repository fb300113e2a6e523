/* The routing core on the real data shipped in deploy/data/geo: the acceptance points of
 * issue 5, the cross-check of every tambon point of the code lists, the synthetic station
 * directory, and its generator's determinism. No database: the index is built from files. */
#include "testkit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "geo.h"

static char data_dir[4096];

static void data_path(void)
{
    const char *source = getenv("ESS_SOURCE_DIR");
    snprintf(data_dir, sizeof(data_dir), "%s/deploy/data/geo", source != NULL ? source : ".");
}

static geo_index *load_index(void)
{
    data_path();
    geo_index *index = NULL;
    st_error err = {0};
    if (geo_index_load_dir(data_dir, &index, &err) != ST_OK)
        fail_msg("cannot load %s: %s", data_dir, err.message);
    return index;
}

static geo_decision locate(const geo_index *index, double lat, double lon)
{
    geo_decision d;
    st_error err = {0};
    geo_options options = GEO_OPTIONS_DEFAULT;
    if (geo_locate(index, lat, lon, &options, &d, &err) != ST_OK)
        fail_msg("geo_locate(%f, %f): %s", lat, lon, err.message);
    return d;
}

typedef struct acceptance_point {
    const char *what;
    double lat, lon;
    geo_match match;
    const char *province; /* NULL: no area */
    const char *district; /* NULL: not checked */
} acceptance_point;

/* clang-format off */
static const acceptance_point points[] = {
    {"Grand Palace, Bangkok",            13.7500, 100.4913, GEO_MATCH_IN_POLYGON, "TH10", "TH1001"},
    {"Chiang Mai old city",              18.7877,  98.9931, GEO_MATCH_IN_POLYGON, "TH50", "TH5001"},
    {"Phuket town",                       7.8847,  98.3923, GEO_MATCH_IN_POLYGON, "TH83", "TH8301"},
    {"Hat Yai",                           7.0084, 100.4767, GEO_MATCH_IN_POLYGON, "TH90", "TH9011"},
    {"10 km at sea off Pattaya",         12.9300, 100.7900, GEO_MATCH_NEAREST_POLYGON, "TH20", NULL},
    {"Luang Prabang, Laos",              19.8856, 102.1347, GEO_MATCH_NONE, NULL, NULL},
    {"Mawlamyine, Myanmar",              16.4905,  97.6283, GEO_MATCH_NONE, NULL, NULL},
    {"middle of the Gulf of Thailand",    9.5000, 101.5000, GEO_MATCH_NONE, NULL, NULL},
};
/* clang-format on */

ESS_TEST(acceptance_points_route_to_their_province)
{
    geo_index *index = load_index();
    for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
        const acceptance_point *p = &points[i];
        geo_decision d = locate(index, p->lat, p->lon);
        printf("%-32s -> %-15s %-5s %-7s %-9s %.0f m; station %s at %.0f m\n", p->what,
               geo_match_name(d.match), d.province.code ? d.province.code : "-",
               d.district.code ? d.district.code : "-", d.tambon.code ? d.tambon.code : "-",
               d.area_distance_m, d.has_station ? d.station.id : "-",
               d.has_station ? d.station.distance_m : 0.0);
        if (d.match != p->match)
            fail_msg("%s: match %s, expected %s", p->what, geo_match_name(d.match),
                     geo_match_name(p->match));
        if (p->province == NULL) {
            assert_null(d.province.code);
            assert_false(d.has_station);
            continue;
        }
        if (strcmp(d.province.code, p->province) != 0)
            fail_msg("%s: province %s, expected %s", p->what, d.province.code, p->province);
        if (p->district != NULL && strcmp(d.district.code, p->district) != 0)
            fail_msg("%s: district %s, expected %s", p->what, d.district.code, p->district);
        assert_true(d.has_station);
        assert_true(d.station_by_jurisdiction);
        assert_int_equal(d.nearest_count, 3);
        /* The next stations are ordered and never repeat the responsible one. */
        for (size_t k = 0; k < d.nearest_count; k++) {
            assert_string_not_equal(d.nearest[k].id, d.station.id);
            if (k > 0)
                assert_true(d.nearest[k - 1].distance_m <= d.nearest[k].distance_m);
        }
    }
    geo_index_destroy(index);
}

ESS_TEST(hat_yai_has_its_names)
{
    geo_index *index = load_index();
    geo_decision d = locate(index, 7.0084, 100.4767);
    assert_string_equal(d.province.code, "TH90");
    assert_string_equal(d.province.name_en, "Songkhla");
    assert_string_equal(d.province.name_th, "สงขลา");
    assert_string_equal(d.district.code, "TH9011");
    assert_string_equal(d.district.name_en, "Hat Yai");
    assert_string_equal(d.district.name_th, "หาดใหญ่");
    assert_memory_equal(d.station.id, "SYN-TH9011-", 11);
    geo_index_destroy(index);
}

ESS_TEST(offshore_limit_is_honoured)
{
    geo_index *index = load_index();
    geo_decision d;
    geo_options near = {.max_offshore_km = 5, .nearest_stations = 0};
    assert_int_equal(geo_locate(index, 12.93, 100.79, &near, &d, NULL), ST_OK);
    assert_int_equal(d.match, GEO_MATCH_NONE); /* the coast is farther than 5 km */
    geo_options none = {.max_offshore_km = 0, .nearest_stations = 0};
    assert_int_equal(geo_locate(index, 12.93, 100.79, &none, &d, NULL), ST_OK);
    assert_int_equal(d.match, GEO_MATCH_NONE);
    geo_options far = {.max_offshore_km = 30, .nearest_stations = 0};
    assert_int_equal(geo_locate(index, 12.93, 100.79, &far, &d, NULL), ST_OK);
    assert_int_equal(d.match, GEO_MATCH_NEAREST_POLYGON);
    assert_true(d.area_distance_m > 5000 && d.area_distance_m < 30000);
    assert_int_equal(d.nearest_count, 0);
    geo_index_destroy(index);
}

/* Every tambon point of the code lists, through the whole decision (nearest polygon
 * included): at least 99.5 % must land in their own province. */
ESS_TEST(code_list_points_land_in_their_province)
{
    geo_index *index = load_index();
    geo_dataset *dataset = NULL;
    st_error err = {0};
    assert_int_equal(geo_dataset_load(data_dir, &dataset, &err), ST_OK);
    size_t tested = 0, right = 0, outside = 0, right_district = 0;
    for (size_t i = 0; i < dataset->tambon_count; i++) {
        const geo_area_record *t = &dataset->tambons[i];
        /* Only the code list's points: the others are centroids of the polygons themselves. */
        if (!t->listed_point)
            continue;
        tested++;
        geo_decision d = locate(index, t->centroid_lat, t->centroid_lon);
        if (d.match != GEO_MATCH_IN_POLYGON)
            outside++;
        if (d.province.code != NULL && strncmp(d.province.code, t->code, 4) == 0) {
            right++;
            right_district += strncmp(d.district.code, t->code, 6) == 0;
        } else {
            printf("miss: %s %s (%.3f, %.3f) -> %s %s\n", t->code, t->name_en, t->centroid_lat,
                   t->centroid_lon, geo_match_name(d.match),
                   d.province.code != NULL ? d.province.code : "none");
        }
    }
    double share = tested > 0 ? 100.0 * (double)right / (double)tested : 0;
    printf("tambon points: %zu tested, %zu in their province (%.2f %%), %zu in their district, "
           "%zu outside every polygon (nearest-polygon fallback)\n",
           tested, right, share, right_district, outside);
    assert_true(tested > 7300);
    assert_true(share >= 99.5);
    geo_dataset_destroy(dataset);
    geo_index_destroy(index);
}

ESS_TEST(dataset_maps_codes_and_keeps_every_level)
{
    data_path();
    geo_dataset *dataset = NULL;
    st_error err = {0};
    assert_int_equal(geo_dataset_load(data_dir, &dataset, &err), ST_OK);
    assert_int_equal(dataset->province_count, 77);
    assert_int_equal(dataset->district_count, 928);
    assert_true(dataset->tambon_count >= 7425 && dataset->tambon_count <= 7450);
    const geo_area_record *hat_yai = geo_dataset_find(dataset, GEO_DISTRICT, "TH9011");
    assert_non_null(hat_yai);
    assert_string_equal(hat_yai->name_en, "Hat Yai");
    assert_string_equal(hat_yai->parent_code, "TH90");
    assert_non_null(hat_yai->geometry_json);
    const geo_area_record *palace = geo_dataset_find(dataset, GEO_TAMBON, "TH100101");
    assert_non_null(palace);
    assert_string_equal(palace->postal_code, "10200");
    assert_string_equal(palace->parent_code, "TH1001");
    size_t with_boundary = 0;
    for (size_t i = 0; i < dataset->tambon_count; i++)
        with_boundary += dataset->tambons[i].geometry_json != NULL;
    assert_int_equal(with_boundary, 7425);
    for (size_t i = 0; i < dataset->province_count; i++) {
        assert_non_null(dataset->provinces[i].geometry_json);
        assert_true(dataset->provinces[i].has_centroid);
    }
    assert_int_equal(strlen(dataset->sha256_hex), 64);
    geo_dataset_destroy(dataset);
}

ESS_TEST(synthetic_stations_stand_in_their_district)
{
    geo_index *index = load_index();
    geo_index_stats stats;
    geo_index_get_stats(index, &stats);
    printf("index: %zu provinces, %zu districts, %zu tambons (%zu with a boundary), %zu rings, "
           "%zu points, %zu grid cells, %zu stations, %zu tambons assigned\n",
           stats.provinces, stats.districts, stats.tambons, stats.tambons_with_boundary,
           stats.rings, stats.points, stats.grid_cells, stats.stations, stats.assigned_tambons);
    assert_int_equal(stats.stations, 1482);
    assert_int_equal(stats.assigned_tambons, stats.tambons);

    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", data_dir, GEO_FILE_STATIONS);
    char *text = testkit_read_file(path);
    assert_non_null(text);
    geo_dataset *dataset = NULL;
    geo_code_set *districts = NULL, *tambons = NULL;
    geo_station_list *list = NULL;
    geo_problems *problems = calloc(1, sizeof(*problems));
    assert_int_equal(geo_dataset_load(data_dir, &dataset, NULL), ST_OK);
    assert_int_equal(geo_dataset_code_sets(dataset, &districts, &tambons, NULL), ST_OK);
    assert_int_equal(
        geo_stations_parse(text, strlen(text), districts, tambons, &list, problems, NULL), ST_OK);
    size_t *per_district = calloc(dataset->district_count, sizeof(size_t));
    for (size_t i = 0; i < list->count; i++) {
        const geo_station_record *s = &list->items[i];
        geo_decision d = locate(index, s->lat, s->lon);
        if (d.match != GEO_MATCH_IN_POLYGON || strcmp(d.district.code, s->district_code) != 0)
            fail_msg("station %s stands in %s, not in its district %s", s->id,
                     d.district.code != NULL ? d.district.code : "no district", s->district_code);
        /* Its own tambons are of its own district. */
        for (size_t k = 0; k < s->tambon_count; k++)
            assert_memory_equal(s->tambons[k], s->district_code, 6);
        const geo_area_record *district = geo_dataset_find(dataset, GEO_DISTRICT, s->district_code);
        per_district[district - dataset->districts]++;
        assert_non_null(strstr(s->name_en, "Police Station"));
        assert_non_null(strstr(s->name_th, "สถานีตำรวจ"));
    }
    for (size_t i = 0; i < dataset->district_count; i++)
        if (per_district[i] == 0)
            fail_msg("district %s has no station", dataset->districts[i].code);
    free(per_district);
    free(problems);
    free(text);
    geo_station_list_destroy(list);
    geo_code_set_destroy(districts);
    geo_code_set_destroy(tambons);
    geo_dataset_destroy(dataset);
    geo_index_destroy(index);
}

/* The station grid finds exactly what a scan of every station finds. */
typedef struct ranked {
    const geo_station_record *station;
    double distance;
} ranked;

static int compare_ranked(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->distance != y->distance)
        return x->distance < y->distance ? -1 : 1;
    return strcmp(x->station->id, y->station->id);
}

ESS_TEST(nearest_stations_match_a_full_scan)
{
    geo_index *index = load_index();
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", data_dir, GEO_FILE_STATIONS);
    char *text = testkit_read_file(path);
    geo_dataset *dataset = NULL;
    geo_code_set *districts = NULL, *tambons = NULL;
    geo_station_list *list = NULL;
    geo_problems *problems = calloc(1, sizeof(*problems));
    assert_int_equal(geo_dataset_load(data_dir, &dataset, NULL), ST_OK);
    assert_int_equal(geo_dataset_code_sets(dataset, &districts, &tambons, NULL), ST_OK);
    assert_int_equal(
        geo_stations_parse(text, strlen(text), districts, tambons, &list, problems, NULL), ST_OK);
    ranked *all = calloc(list->count, sizeof(*all));
    uint64_t seed = 12345;
    size_t checked = 0;
    geo_options options = {.max_offshore_km = 30, .nearest_stations = 5};
    for (int i = 0; i < 3000; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        double lat = 5.6 + 14.9 * (double)(seed >> 11) / 9007199254740992.0;
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        double lon = 97.3 + 8.4 * (double)(seed >> 11) / 9007199254740992.0;
        geo_decision d;
        assert_int_equal(geo_locate(index, lat, lon, &options, &d, NULL), ST_OK);
        if (!d.has_station)
            continue;
        checked++;
        for (size_t s = 0; s < list->count; s++)
            all[s] = (ranked){&list->items[s],
                              geo_distance_m(lat, lon, list->items[s].lat, list->items[s].lon)};
        qsort(all, list->count, sizeof(*all), compare_ranked);
        size_t k = 0;
        for (size_t s = 0; s < list->count && k < d.nearest_count; s++) {
            if (strcmp(all[s].station->id, d.station.id) == 0)
                continue;
            if (strcmp(all[s].station->id, d.nearest[k].id) != 0)
                fail_msg("(%f, %f): next station %zu is %s, a full scan says %s", lat, lon, k,
                         d.nearest[k].id, all[s].station->id);
            assert_true(fabs(all[s].distance - d.nearest[k].distance_m) < 1e-6);
            k++;
        }
        assert_int_equal(k, 5);
    }
    printf("%zu decisions with stations checked against a full scan\n", checked);
    assert_true(checked > 1000);
    free(all);
    free(problems);
    free(text);
    geo_station_list_destroy(list);
    geo_code_set_destroy(districts);
    geo_code_set_destroy(tambons);
    geo_dataset_destroy(dataset);
    geo_index_destroy(index);
}

/* The generator, run again on the shipped data, writes the shipped file byte for byte. */
ESS_TEST(generator_is_deterministic)
{
    data_path();
    char generator[4096], out[256], shipped[4200];
    snprintf(generator, sizeof(generator), "%s/stations-gen", testkit_bin_dir());
    char unique[64];
    testkit_unique(unique, sizeof(unique));
    snprintf(out, sizeof(out), "/tmp/ess-stations-%s.csv", unique);
    snprintf(shipped, sizeof(shipped), "%s/%s", data_dir, GEO_FILE_STATIONS);
    for (int run = 0; run < 2; run++) {
        const char *argv[] = {generator, "--data", data_dir, "--out", out, NULL};
        char *output = NULL;
        int code = testkit_run(argv, NULL, 120000, &output);
        if (code != 0)
            fail_msg("stations-gen exited %d: %s", code, output);
        free(output);
        char *fresh = testkit_read_file(out);
        char *expected = testkit_read_file(shipped);
        assert_non_null(fresh);
        assert_non_null(expected);
        if (strcmp(fresh, expected) != 0)
            fail_msg("stations-gen output differs from %s: regenerate it with "
                     "build/bin/stations-gen --data deploy/data/geo --out %s",
                     shipped, shipped);
        free(fresh);
        free(expected);
    }
    remove(out);
}

ESS_TEST_MAIN(NULL, NULL)
