/* The routing core on small made-up shapes: CSV reading, station directory validation with
 * line numbers, point-in-polygon with holes and several parts, the nearest-polygon fallback,
 * station distances and order, the builder's reference checks, target selection, and the
 * JSON of a decision against proto/schemas/ess.incident.routed.schema.json. */
#include "testkit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "geo.h"

/* ---- CSV ------------------------------------------------------------------------------------ */

ESS_TEST(csv_reads_quotes_line_ends_and_line_numbers)
{
    const char text[] = "\xEF\xBB\xBF"
                        "a,b,c\r\n"
                        "\"x, y\",\"say \"\"hi\"\"\",\r\n"
                        "\n"
                        "\"two\nlines\",2,3\n"
                        "last,row,here";
    geo_csv *csv = NULL;
    size_t fields = 0;
    assert_int_equal(geo_csv_open_text(text, sizeof(text) - 1, &csv, NULL), ST_OK);
    assert_int_equal(geo_csv_next(csv, &fields, NULL), ST_OK);
    assert_int_equal(fields, 3);
    assert_string_equal(geo_csv_field(csv, 0), "a");
    assert_int_equal(geo_csv_line(csv), 1);
    assert_int_equal(geo_csv_next(csv, &fields, NULL), ST_OK);
    assert_int_equal(fields, 3);
    assert_string_equal(geo_csv_field(csv, 0), "x, y");
    assert_string_equal(geo_csv_field(csv, 1), "say \"hi\"");
    assert_string_equal(geo_csv_field(csv, 2), "");
    assert_null(geo_csv_field(csv, 3));
    assert_int_equal(geo_csv_next(csv, &fields, NULL), ST_OK);
    assert_int_equal(geo_csv_line(csv), 4);
    assert_string_equal(geo_csv_field(csv, 0), "two\nlines");
    assert_int_equal(geo_csv_next(csv, &fields, NULL), ST_OK);
    assert_int_equal(geo_csv_line(csv), 6);
    assert_string_equal(geo_csv_field(csv, 2), "here");
    assert_int_equal(geo_csv_next(csv, &fields, NULL), ST_NOT_FOUND);
    geo_csv_destroy(csv);
}

ESS_TEST(csv_reports_broken_records_and_goes_on)
{
    const char text[] = "ok,1\n"
                        "\"closed\"x,2\n"
                        "un\"quoted,3\n"
                        "fine,4\n"
                        "\"never closed,5\n";
    geo_csv *csv = NULL;
    size_t fields = 0;
    st_error err = {0};
    assert_int_equal(geo_csv_open_text(text, sizeof(text) - 1, &csv, NULL), ST_OK);
    assert_int_equal(geo_csv_next(csv, &fields, &err), ST_OK);
    assert_int_equal(geo_csv_next(csv, &fields, &err), ST_INVALID);
    assert_non_null(strstr(err.message, "line 2"));
    assert_int_equal(geo_csv_next(csv, &fields, &err), ST_INVALID);
    assert_non_null(strstr(err.message, "line 3"));
    assert_int_equal(geo_csv_next(csv, &fields, &err), ST_OK);
    assert_string_equal(geo_csv_field(csv, 0), "fine");
    assert_int_equal(geo_csv_line(csv), 4);
    assert_int_equal(geo_csv_next(csv, &fields, &err), ST_INVALID);
    assert_non_null(strstr(err.message, "line 5"));
    assert_int_equal(geo_csv_next(csv, &fields, &err), ST_NOT_FOUND);
    geo_csv_destroy(csv);

    /* More fields than the limit. */
    char wide[4 * GEO_CSV_FIELDS_MAX + 8];
    size_t used = 0;
    for (int i = 0; i <= GEO_CSV_FIELDS_MAX; i++) {
        memcpy(wide + used, "x,", 2);
        used += 2;
    }
    wide[used] = '\0';
    assert_int_equal(geo_csv_open_text(wide, strlen(wide), &csv, NULL), ST_OK);
    assert_int_equal(geo_csv_next(csv, &fields, &err), ST_LIMIT);
    geo_csv_destroy(csv);
}

ESS_TEST(codes_map_digits_to_th_codes)
{
    char code[GEO_CODE_MAX];
    assert_int_equal(geo_code_from_digits(GEO_DISTRICT, "9011", code, sizeof(code), NULL), ST_OK);
    assert_string_equal(code, "TH9011");
    assert_int_equal(geo_code_from_digits(GEO_PROVINCE, "50", code, sizeof(code), NULL), ST_OK);
    assert_string_equal(code, "TH50");
    assert_int_equal(geo_code_from_digits(GEO_TAMBON, "901104", code, sizeof(code), NULL), ST_OK);
    assert_string_equal(code, "TH901104");
    assert_int_equal(geo_code_from_digits(GEO_DISTRICT, "901", code, sizeof(code), NULL),
                     ST_INVALID);
    assert_int_equal(geo_code_from_digits(GEO_DISTRICT, "90a1", code, sizeof(code), NULL),
                     ST_INVALID);
    assert_true(geo_code_valid(GEO_TAMBON, "TH100101"));
    assert_false(geo_code_valid(GEO_TAMBON, "TH1001"));
    assert_false(geo_code_valid(GEO_PROVINCE, "th10"));
}

/* ---- a small world ----------------------------------------------------------------------------
 */

/* TH100101: a 0.1° square with a square hole in its middle. TH100102: two squares. TH100103:
 * no boundary. Stations S1 in the first, S2 in the second's first part, S3 in its second
 * part, S4 far away; TH100101 -> S1, TH100102 -> S2; TH100103 has no station. */
static const char square_with_hole[] =
    "{\"type\":\"Polygon\",\"coordinates\":["
    "[[100.0,13.0],[100.1,13.0],[100.1,13.1],[100.0,13.1],[100.0,13.0]],"
    "[[100.04,13.04],[100.06,13.04],[100.06,13.06],[100.04,13.06],[100.04,13.04]]]}";
static const char two_parts[] =
    "{\"type\":\"MultiPolygon\",\"coordinates\":["
    "[[[100.1,13.0],[100.2,13.0],[100.2,13.1],[100.1,13.1],[100.1,13.0]]],"
    "[[[100.3,13.0],[100.35,13.0],[100.35,13.05],[100.3,13.05]]]]}";

static geo_index *small_world(void)
{
    geo_builder *b = NULL;
    st_error err = {0};
    assert_int_equal(geo_builder_create(&b, &err), ST_OK);
    assert_int_equal(
        geo_builder_add_tambon(b, "TH100102", "สอง", "Two", two_parts, strlen(two_parts), &err),
        ST_OK);
    assert_int_equal(geo_builder_add_tambon(b, "TH100101", "หนึ่ง", "One", square_with_hole,
                                            strlen(square_with_hole), &err),
                     ST_OK);
    assert_int_equal(geo_builder_add_tambon(b, "TH100103", "สาม", "Three", NULL, 0, &err), ST_OK);
    assert_int_equal(geo_builder_add_district(b, "TH1001", "เขต", "District", &err), ST_OK);
    assert_int_equal(geo_builder_add_province(b, "TH10", "จังหวัด", "Province", &err), ST_OK);
    assert_int_equal(
        geo_builder_add_station(b, "S1", "สถานี 1", "Station 1", "", 13.05, 100.02, "TH1001", &err),
        ST_OK);
    assert_int_equal(geo_builder_add_station(b, "S2", "สถานี 2", "Station 2", "02 000 0000", 13.05,
                                             100.15, "TH1001", &err),
                     ST_OK);
    assert_int_equal(
        geo_builder_add_station(b, "S3", "สถานี 3", NULL, NULL, 13.02, 100.32, "TH1001", &err),
        ST_OK);
    assert_int_equal(
        geo_builder_add_station(b, "S4", "สถานี 4", "Station 4", NULL, 14.0, 100.0, "", &err),
        ST_OK);
    assert_int_equal(geo_builder_assign(b, "TH100101", "S1", &err), ST_OK);
    assert_int_equal(geo_builder_assign(b, "TH100102", "S2", &err), ST_OK);
    geo_index *index = NULL;
    if (geo_builder_finish(b, 7, &index, &err) != ST_OK)
        fail_msg("finish: %s", err.message);
    return index;
}

static geo_decision at(const geo_index *index, double lat, double lon, double max_km, int k)
{
    geo_options options = {.max_offshore_km = max_km, .nearest_stations = k};
    geo_decision d;
    st_error err = {0};
    if (geo_locate(index, lat, lon, &options, &d, &err) != ST_OK)
        fail_msg("geo_locate: %s", err.message);
    return d;
}

ESS_TEST(point_in_polygon_handles_holes_and_parts)
{
    geo_index *index = small_world();
    geo_decision d = at(index, 13.05, 100.02, 30, 3);
    assert_int_equal(d.match, GEO_MATCH_IN_POLYGON);
    assert_string_equal(d.tambon.code, "TH100101");
    assert_string_equal(d.district.code, "TH1001");
    assert_string_equal(d.province.code, "TH10");
    assert_string_equal(d.province.name_en, "Province");
    assert_int_equal(d.version, 7);

    /* Second part of a multipolygon (its ring is not closed in the input: still a ring). */
    d = at(index, 13.02, 100.32, 0, 0);
    assert_int_equal(d.match, GEO_MATCH_IN_POLYGON);
    assert_string_equal(d.tambon.code, "TH100102");

    /* In the hole: not inside; the hole's edge is 0.01° of longitude away. */
    d = at(index, 13.05, 100.05, 0, 0);
    assert_int_equal(d.match, GEO_MATCH_NONE);
    d = at(index, 13.05, 100.05, 30, 0);
    assert_int_equal(d.match, GEO_MATCH_NEAREST_POLYGON);
    assert_string_equal(d.tambon.code, "TH100101");
    double expected = 0.01 * cos(13.05 * M_PI / 180.0) * GEO_EARTH_RADIUS_M * M_PI / 180.0;
    assert_true(fabs(d.area_distance_m - expected) < 1.0);

    /* Between the two parts of TH100102, and beyond any limit. */
    d = at(index, 13.05, 100.25, 30, 0);
    assert_int_equal(d.match, GEO_MATCH_NEAREST_POLYGON);
    assert_string_equal(d.tambon.code, "TH100102");
    d = at(index, 15.0, 100.0, 30, 3);
    assert_int_equal(d.match, GEO_MATCH_NONE);
    assert_null(d.province.code);
    assert_false(d.has_station);
    assert_int_equal(d.nearest_count, 0);

    /* A boundary vertex and a point just outside the box. */
    d = at(index, 13.0, 100.0, 0, 0);
    (void)d; /* either answer is fine on the boundary; it must not crash */
    d = at(index, 13.1000001, 100.05, 0, 0);
    assert_int_equal(d.match, GEO_MATCH_NONE);
    geo_index_destroy(index);
}

ESS_TEST(stations_by_jurisdiction_then_by_distance)
{
    geo_index *index = small_world();
    /* In TH100102's second part: S2 answers for it, although S3 stands there. */
    geo_decision d = at(index, 13.02, 100.32, 30, 3);
    assert_true(d.has_station);
    assert_true(d.station_by_jurisdiction);
    assert_string_equal(d.station.id, "S2");
    assert_string_equal(d.station.phone, "02 000 0000");
    assert_true(fabs(d.station.distance_m - geo_distance_m(13.02, 100.32, 13.05, 100.15)) < 1e-6);
    assert_int_equal(d.nearest_count, 3);
    assert_string_equal(d.nearest[0].id, "S3");
    assert_true(d.nearest[0].distance_m < 1.0);
    assert_string_equal(d.nearest[0].name_en, "");
    assert_string_equal(d.nearest[1].id, "S1");
    assert_string_equal(d.nearest[2].id, "S4");
    assert_true(d.nearest[1].distance_m < d.nearest[2].distance_m);

    /* k larger than what is left: all the others, once. */
    d = at(index, 13.05, 100.02, 30, GEO_NEAREST_MAX);
    assert_string_equal(d.station.id, "S1");
    assert_int_equal(d.nearest_count, 3);

    /* One degree of latitude on the sphere. */
    assert_true(fabs(geo_distance_m(13.0, 100.0, 14.0, 100.0) - 111194.93) < 0.5);
    geo_index_destroy(index);
}

ESS_TEST(tambon_without_station_gets_the_nearest_one)
{
    geo_builder *b = NULL;
    assert_int_equal(geo_builder_create(&b, NULL), ST_OK);
    assert_int_equal(geo_builder_add_province(b, "TH10", "p", "P", NULL), ST_OK);
    assert_int_equal(geo_builder_add_district(b, "TH1001", "d", "D", NULL), ST_OK);
    assert_int_equal(geo_builder_add_tambon(b, "TH100101", "t", "T", square_with_hole,
                                            strlen(square_with_hole), NULL),
                     ST_OK);
    assert_int_equal(geo_builder_add_station(b, "FAR", "f", "F", NULL, 14.0, 100.0, "TH1001", NULL),
                     ST_OK);
    assert_int_equal(
        geo_builder_add_station(b, "NEAR", "n", "N", NULL, 13.2, 100.0, "TH1001", NULL), ST_OK);
    geo_index *index = NULL;
    assert_int_equal(geo_builder_finish(b, 0, &index, NULL), ST_OK);
    geo_decision d = at(index, 13.02, 100.02, 30, 3);
    assert_true(d.has_station);
    assert_false(d.station_by_jurisdiction);
    assert_string_equal(d.station.id, "NEAR");
    assert_int_equal(d.nearest_count, 1);
    assert_string_equal(d.nearest[0].id, "FAR");
    geo_index_destroy(index);
}

ESS_TEST(interior_point_is_inside_even_around_a_hole)
{
    geo_index *index = small_world();
    double lat = 0, lon = 0;
    /* The square's centroid lies in its hole: the scan line must find another point. */
    assert_int_equal(geo_index_interior_point(index, "TH100101", &lat, &lon, NULL), ST_OK);
    geo_decision d = at(index, lat, lon, 0, 0);
    assert_int_equal(d.match, GEO_MATCH_IN_POLYGON);
    assert_string_equal(d.tambon.code, "TH100101");
    assert_int_equal(geo_index_interior_point(index, "TH100102", &lat, &lon, NULL), ST_OK);
    d = at(index, lat, lon, 0, 0);
    assert_string_equal(d.tambon.code, "TH100102");
    assert_int_equal(geo_index_interior_point(index, "TH100103", &lat, &lon, NULL), ST_NOT_FOUND);
    assert_int_equal(geo_index_interior_point(index, "TH999999", &lat, &lon, NULL), ST_NOT_FOUND);
    geo_index_destroy(index);
}

ESS_TEST(locate_rejects_bad_input)
{
    geo_index *index = small_world();
    geo_decision d;
    geo_options options = GEO_OPTIONS_DEFAULT;
    assert_int_equal(geo_locate(index, 91, 100, &options, &d, NULL), ST_INVALID);
    assert_int_equal(geo_locate(index, 13, 181, &options, &d, NULL), ST_INVALID);
    assert_int_equal(geo_locate(index, NAN, 100, &options, &d, NULL), ST_INVALID);
    assert_int_equal(geo_locate(index, 13, INFINITY, &options, &d, NULL), ST_INVALID);
    options.nearest_stations = GEO_NEAREST_MAX + 1;
    assert_int_equal(geo_locate(index, 13, 100, &options, &d, NULL), ST_INVALID);
    options = (geo_options){.max_offshore_km = -1, .nearest_stations = 0};
    assert_int_equal(geo_locate(index, 13, 100, &options, &d, NULL), ST_INVALID);
    assert_int_equal(geo_locate(index, 13.05, 100.02, NULL, &d, NULL), ST_OK); /* defaults */
    assert_int_equal(d.nearest_count, 3);
    geo_index_destroy(index);
}

typedef st_code (*builder_step)(geo_builder *b, st_error *err);

static st_code orphan_district(geo_builder *b, st_error *err)
{
    return geo_builder_add_district(b, "TH5001", "d", "D", err);
}
static st_code repeated_tambon(geo_builder *b, st_error *err)
{
    return geo_builder_add_tambon(b, "TH100101", "t", "T", NULL, 0, err);
}
static st_code unknown_station(geo_builder *b, st_error *err)
{
    return geo_builder_assign(b, "TH100101", "NOPE", err);
}
static st_code given_twice(geo_builder *b, st_error *err)
{
    return geo_builder_assign(b, "TH100101", "S1", err);
}
static st_code station_in_unknown_district(geo_builder *b, st_error *err)
{
    return geo_builder_add_station(b, "S9", "s", "S", NULL, 13, 100, "TH5001", err);
}

ESS_TEST(builder_checks_every_reference)
{
    /* Each step is fine on its own, but breaks the world at finish. */
    static const struct {
        builder_step step;
        const char *message_part;
    } cases[] = {
        {orphan_district, "no province"},
        {repeated_tambon, "twice"},
        {unknown_station, "unknown station"},
        {given_twice, "two stations"},
        {station_in_unknown_district, "unknown district"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        geo_builder *b = NULL;
        st_error err = {0};
        assert_int_equal(geo_builder_create(&b, NULL), ST_OK);
        assert_int_equal(geo_builder_add_province(b, "TH10", "p", "P", NULL), ST_OK);
        assert_int_equal(geo_builder_add_district(b, "TH1001", "d", "D", NULL), ST_OK);
        assert_int_equal(geo_builder_add_tambon(b, "TH100101", "t", "T", NULL, 0, NULL), ST_OK);
        assert_int_equal(geo_builder_add_station(b, "S1", "s", "S", NULL, 13, 100, "TH1001", NULL),
                         ST_OK);
        assert_int_equal(geo_builder_assign(b, "TH100101", "S1", NULL), ST_OK);
        assert_int_equal(cases[i].step(b, &err), ST_OK);
        geo_index *index = NULL;
        assert_int_equal(geo_builder_finish(b, 0, &index, &err), ST_INVALID);
        if (strstr(err.message, cases[i].message_part) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.message, cases[i].message_part);
        assert_null(index);
    }
}

ESS_TEST(builder_rejects_bad_geometry_and_codes)
{
    static const char *const geometries[] = {
        "{\"type\":\"Point\",\"coordinates\":[100,13]}",
        "{\"type\":\"Polygon\",\"coordinates\":[[[100,13],[101,13]]]}",
        "{\"type\":\"Polygon\",\"coordinates\":[[[100,13],[181,13],[100,14]]]}",
        "{\"type\":\"Polygon\",\"coordinates\":[[[100,13],[\"a\",13],[100,14]]]}",
        "{\"type\":\"Polygon\",\"coordinates\":[]}",
        "not json",
    };
    geo_builder *b = NULL;
    st_error err = {0};
    assert_int_equal(geo_builder_create(&b, NULL), ST_OK);
    for (size_t i = 0; i < sizeof(geometries) / sizeof(geometries[0]); i++)
        if (geo_builder_add_tambon(b, "TH100101", "t", "T", geometries[i], strlen(geometries[i]),
                                   &err) != ST_INVALID)
            fail_msg("geometry %zu accepted", i);
    assert_int_equal(geo_builder_add_tambon(b, "TH1001", "t", "T", NULL, 0, &err), ST_INVALID);
    assert_int_equal(geo_builder_add_province(b, "10", "p", "P", &err), ST_INVALID);
    assert_int_equal(geo_builder_add_station(b, "bad id", "s", "S", NULL, 13, 100, "TH1001", &err),
                     ST_INVALID);
    assert_int_equal(geo_builder_add_station(b, "S", "s", "S", NULL, NAN, 100, "TH1001", &err),
                     ST_INVALID);
    /* The failed adds left nothing behind: an empty world builds. */
    geo_index *index = NULL;
    assert_int_equal(geo_builder_finish(b, 0, &index, &err), ST_OK);
    geo_index_stats stats;
    geo_index_get_stats(index, &stats);
    assert_int_equal(stats.tambons, 0);
    assert_int_equal(stats.points, 0);
    geo_decision d = at(index, 13, 100, 30, 3);
    assert_int_equal(d.match, GEO_MATCH_NONE);
    geo_index_destroy(index);
}

/* ---- station directories -------------------------------------------------------------------- */

typedef struct code_sets {
    geo_code_set *districts, *tambons;
} code_sets;

static code_sets known_codes(void)
{
    code_sets sets = {0};
    assert_int_equal(geo_code_set_create(&sets.districts, NULL), ST_OK);
    assert_int_equal(geo_code_set_create(&sets.tambons, NULL), ST_OK);
    geo_code_set_add(sets.districts, "TH1001", NULL);
    geo_code_set_add(sets.districts, "TH5001", NULL);
    geo_code_set_add(sets.tambons, "TH100101", NULL);
    geo_code_set_add(sets.tambons, "TH100102", NULL);
    geo_code_set_add(sets.tambons, "TH500101", NULL);
    geo_code_set_add(sets.tambons, "TH100101", NULL); /* repeats are folded */
    geo_code_set_seal(sets.districts);
    geo_code_set_seal(sets.tambons);
    assert_int_equal(geo_code_set_count(sets.tambons), 3);
    return sets;
}

static void free_codes(code_sets *sets)
{
    geo_code_set_destroy(sets->districts);
    geo_code_set_destroy(sets->tambons);
}

ESS_TEST(station_directory_is_read)
{
    const char text[] = "phone,id,name_th,name_en,lat,lon,district_code,tambons,extra\n"
                        "02 123 4567,BKK-1,\"สถานีตำรวจนครบาล, พระนคร\",Phra Nakhon,13.75,100.49,"
                        "1001,\"100101; TH100102\",ignored\n"
                        ",CM-1,สถานีตำรวจภูธรเมืองเชียงใหม่,,18.79,98.99,TH5001,TH500101,\n";
    code_sets sets = known_codes();
    geo_station_list *list = NULL;
    geo_problems *problems = calloc(1, sizeof(*problems));
    st_error err = {0};
    assert_int_equal(geo_stations_parse(text, sizeof(text) - 1, sets.districts, sets.tambons, &list,
                                        problems, &err),
                     ST_OK);
    assert_int_equal(problems->total, 0);
    assert_int_equal(list->count, 2);
    const geo_station_record *s = &list->items[0];
    assert_string_equal(s->id, "BKK-1");
    assert_string_equal(s->name_th, "สถานีตำรวจนครบาล, พระนคร");
    assert_string_equal(s->district_code, "TH1001");
    assert_string_equal(s->province_code, "TH10");
    assert_string_equal(s->phone, "02 123 4567");
    assert_int_equal(s->tambon_count, 2);
    assert_string_equal(s->tambons[0], "TH100101");
    assert_string_equal(s->tambons[1], "TH100102");
    assert_int_equal(s->line, 2);
    assert_string_equal(list->items[1].name_en, "");
    assert_int_equal(list->items[1].line, 3);
    geo_station_list_destroy(list);
    free(problems);
    free_codes(&sets);
}

static bool has_problem(const geo_problems *problems, size_t line, const char *part)
{
    for (size_t i = 0; i < problems->kept; i++)
        if (problems->items[i].line == line && strstr(problems->items[i].message, part) != NULL)
            return true;
    return false;
}

ESS_TEST(station_directory_problems_name_their_lines)
{
    const char text[] = "id,name_th,name_en,lat,lon,district_code,province_code,phone,tambons\n"
                        "A,ก,A,13.7,100.5,TH1001,TH10,,TH100101\n"             /* 2: fine */
                        "bad id,ก,B,13.7,100.5,TH1001,,,TH100102\n"            /* 3 */
                        "C,,C,45,100.5,TH1001,,,\n"                            /* 4 */
                        "D,ก,D,13.7,100.5,TH9999,TH50,x@y,TH100101 TH777777\n" /* 5 */
                        "A,ก,A again,13.7,nope,TH5001,TH10,,500101\n"          /* 6 */
                        "\"E,ก,E,13.7,100.5,TH1001,,,\n";                      /* 7 */
    code_sets sets = known_codes();
    geo_station_list *list = NULL;
    geo_problems *problems = calloc(1, sizeof(*problems));
    st_error err = {0};
    assert_int_equal(geo_stations_parse(text, sizeof(text) - 1, sets.districts, sets.tambons, &list,
                                        problems, &err),
                     ST_INVALID);
    assert_null(list);
    for (size_t i = 0; i < problems->kept; i++)
        printf("line %zu: %s\n", problems->items[i].line, problems->items[i].message);
    assert_true(has_problem(problems, 3, "id must be"));
    assert_true(has_problem(problems, 4, "name_th"));
    assert_true(has_problem(problems, 4, "lat must be"));
    assert_true(has_problem(problems, 4, "tambons is empty"));
    assert_true(has_problem(problems, 5, "TH9999 is not a known district"));
    assert_true(has_problem(problems, 5, "phone"));
    assert_true(has_problem(problems, 5, "TH100101 already belongs to the station of line 2"));
    assert_true(has_problem(problems, 5, "TH777777 is not a known tambon"));
    assert_true(has_problem(problems, 6, "lon must be"));
    assert_true(has_problem(problems, 6, "province_code TH10 is not the province"));
    assert_true(has_problem(problems, 6, "id A is already used on line 2"));
    assert_true(has_problem(problems, 7, "quoted field is not closed"));
    assert_false(has_problem(problems, 2, ""));
    assert_non_null(strstr(err.message, "problems"));
    free(problems);
    free_codes(&sets);
}

ESS_TEST(station_directory_must_cover_every_tambon)
{
    const char missing_column[] = "id,name_th,lat,lon,district_code,tambons\nA,ก,13,100,TH1001,\n";
    const char uncovered[] = "id,name_th,name_en,lat,lon,district_code,tambons\n"
                             "A,ก,A,13.7,100.5,TH1001,TH100101\n";
    code_sets sets = known_codes();
    geo_station_list *list = NULL;
    geo_problems *problems = calloc(1, sizeof(*problems));
    assert_int_equal(geo_stations_parse(missing_column, strlen(missing_column), sets.districts,
                                        sets.tambons, &list, problems, NULL),
                     ST_INVALID);
    assert_true(has_problem(problems, 1, "no column name_en"));
    assert_int_equal(geo_stations_parse(uncovered, strlen(uncovered), sets.districts, sets.tambons,
                                        &list, problems, NULL),
                     ST_INVALID);
    assert_true(has_problem(problems, 0, "2 tambons belong to no station (TH100102 TH500101)"));
    assert_int_equal(geo_stations_parse("", 0, sets.districts, sets.tambons, &list, problems, NULL),
                     ST_INVALID);
    assert_true(has_problem(problems, 0, "empty"));
    free(problems);
    free_codes(&sets);
}

/* ---- targets -------------------------------------------------------------------------------- */

static geo_decision songkhla_decision(geo_match match)
{
    geo_decision d = {.match = match, .has_station = match != GEO_MATCH_NONE};
    if (match != GEO_MATCH_NONE) {
        d.province = (geo_area_ref){"TH90", "สงขลา", "Songkhla"};
        d.district = (geo_area_ref){"TH9011", "หาดใหญ่", "Hat Yai"};
        d.tambon = (geo_area_ref){"TH901104", "คอหงส์", "Kho Hong"};
        d.station = (geo_station_hit){
            .id = "ST1", .name_th = "ส", .name_en = "S", .phone = "", .distance_m = 1234.4};
        d.station_by_jurisdiction = true;
    }
    return d;
}

/* clang-format off */
static const geo_team_group every_team[] = {
    {1, "National",       GEO_TEAM_NATIONAL_CENTRE,    NULL,   NULL,  "Cnat"},
    {2, "Songkhla MDT",   GEO_TEAM_MULTIDISCIPLINARY,  "TH90", NULL,  "Cmdt-a"},
    {2, "Songkhla MDT",   GEO_TEAM_MULTIDISCIPLINARY,  "TH90", NULL,  "Cmdt-b"},
    {3, "Command",        GEO_TEAM_PROVINCIAL_COMMAND, "TH90", NULL,  "Ccmd"},
    {4, "ST1 team",       GEO_TEAM_MULTIDISCIPLINARY,  "TH90", "ST1", "Cst1"},
    {5, "ST2 team",       GEO_TEAM_MULTIDISCIPLINARY,  "TH90", "ST2", "Cst2"},
    {6, "Chiang Mai MDT", GEO_TEAM_MULTIDISCIPLINARY,  "TH50", NULL,  "Ccm"},
    {7, "Echo",           GEO_TEAM_MULTIDISCIPLINARY,  "TH90", NULL,  "Cmdt-a"},
};
/* clang-format on */

static void expect_targets(const geo_target *targets, size_t count, const char *const *groups,
                           const int *levels, size_t expected)
{
    assert_int_equal(count, expected);
    for (size_t i = 0; i < expected; i++) {
        if (strcmp(targets[i].group_id, groups[i]) != 0 || targets[i].level != levels[i])
            fail_msg("target %zu: %s at %d, expected %s at %d", i, targets[i].group_id,
                     targets[i].level, groups[i], levels[i]);
    }
}

ESS_TEST(targets_follow_escalation_order)
{
    geo_target targets[GEO_TARGETS_MAX];
    size_t count = 0;
    geo_reason reason;
    geo_decision d = songkhla_decision(GEO_MATCH_IN_POLYGON);
    geo_select_targets(&d, every_team, sizeof(every_team) / sizeof(every_team[0]), targets, &count,
                       &reason);
    static const char *const all_groups[] = {"Cst1", "Cmdt-a", "Cmdt-b", "Ccmd", "Cnat"};
    static const int all_levels[] = {0, 0, 0, 1, 2};
    expect_targets(targets, count, all_groups, all_levels, 5);
    assert_int_equal(reason, GEO_REASON_IN_POLYGON);
    assert_int_equal(targets[0].team_id, 4);
    assert_int_equal(targets[3].kind, GEO_TEAM_PROVINCIAL_COMMAND);

    /* The next nearest station's own team is the first escalation step (issue 7); a team
     * of a station that is not among the nearest is not a target. */
    d.nearest[0] = (geo_station_hit){.id = "ST9", .name_th = "", .name_en = "", .phone = ""};
    d.nearest[1] = (geo_station_hit){.id = "ST2", .name_th = "", .name_en = "", .phone = ""};
    d.nearest_count = 2;
    geo_select_targets(&d, every_team, sizeof(every_team) / sizeof(every_team[0]), targets, &count,
                       &reason);
    static const char *const next_groups[] = {"Cst1", "Cmdt-a", "Cmdt-b", "Cst2", "Ccmd", "Cnat"};
    static const int next_levels[] = {0, 0, 0, 1, 2, 3};
    expect_targets(targets, count, next_groups, next_levels, 6);
    const geo_team_group next_only[] = {every_team[0], every_team[4], every_team[5]};
    geo_select_targets(&d, next_only, 3, targets, &count, &reason);
    static const char *const next_national[] = {"Cst1", "Cst2", "Cnat"};
    static const int next_national_levels[] = {0, 1, 2};
    expect_targets(targets, count, next_national, next_national_levels, 3);

    /* Without a command team the national centre is the next level. */
    const geo_team_group province_only[] = {every_team[0], every_team[1]};
    d = songkhla_decision(GEO_MATCH_NEAREST_POLYGON);
    geo_select_targets(&d, province_only, 2, targets, &count, &reason);
    static const char *const two_groups[] = {"Cmdt-a", "Cnat"};
    static const int two_levels[] = {0, 1};
    expect_targets(targets, count, two_groups, two_levels, 2);
    assert_int_equal(reason, GEO_REASON_NEAREST_POLYGON);

    /* Nobody local: command and national centre at once. */
    const geo_team_group no_local[] = {every_team[0], every_team[3], every_team[5], every_team[6]};
    d = songkhla_decision(GEO_MATCH_IN_POLYGON);
    geo_select_targets(&d, no_local, 4, targets, &count, &reason);
    static const char *const fallback_groups[] = {"Ccmd", "Cnat"};
    static const int fallback_levels[] = {0, 0};
    expect_targets(targets, count, fallback_groups, fallback_levels, 2);
    assert_int_equal(reason, GEO_REASON_NO_TEAM);

    /* No area: the national centre only, whatever else is on record. */
    d = songkhla_decision(GEO_MATCH_NONE);
    geo_select_targets(&d, every_team, sizeof(every_team) / sizeof(every_team[0]), targets, &count,
                       &reason);
    static const char *const national[] = {"Cnat"};
    static const int national_level[] = {0};
    expect_targets(targets, count, national, national_level, 1);
    assert_int_equal(reason, GEO_REASON_OUTSIDE_THAILAND);

    /* No national centre either: nobody, and the reason says why. */
    d = songkhla_decision(GEO_MATCH_IN_POLYGON);
    geo_select_targets(&d, &every_team[6], 1, targets, &count, &reason);
    assert_int_equal(count, 0);
    assert_int_equal(reason, GEO_REASON_NO_TEAM);
}

ESS_TEST(names_match_the_schema)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/proto/schemas/ess.incident.routed.schema.json",
             getenv("ESS_SOURCE_DIR") != NULL ? getenv("ESS_SOURCE_DIR") : ".");
    char *text = testkit_read_file(path);
    assert_non_null(text);
    cJSON *schema = cJSON_Parse(text);
    assert_non_null(schema);
    cJSON *properties = cJSON_GetObjectItem(schema, "properties");
    cJSON *reasons = cJSON_GetObjectItem(cJSON_GetObjectItem(properties, "reason"), "enum");
    for (int r = GEO_REASON_IN_POLYGON; r <= GEO_REASON_NO_TEAM; r++) {
        bool found = false;
        cJSON *item;
        cJSON_ArrayForEach(item, reasons) found =
            found || strcmp(item->valuestring, geo_reason_name((geo_reason)r)) == 0;
        if (!found)
            fail_msg("reason %s is not in the schema", geo_reason_name((geo_reason)r));
    }
    cJSON *area = cJSON_GetObjectItem(cJSON_GetObjectItem(properties, "area"), "properties");
    cJSON *matches = cJSON_GetObjectItem(cJSON_GetObjectItem(area, "match"), "enum");
    for (int m = GEO_MATCH_NONE; m <= GEO_MATCH_NEAREST_POLYGON; m++) {
        bool found = false;
        cJSON *item;
        cJSON_ArrayForEach(item, matches) found =
            found || strcmp(item->valuestring, geo_match_name((geo_match)m)) == 0;
        assert_true(found);
    }
    cJSON *kinds = cJSON_GetObjectItem(
        cJSON_GetObjectItem(
            cJSON_GetObjectItem(
                cJSON_GetObjectItem(cJSON_GetObjectItem(properties, "targets"), "items"),
                "properties"),
            "kind"),
        "enum");
    for (int k = GEO_TEAM_MULTIDISCIPLINARY; k <= GEO_TEAM_NATIONAL_CENTRE; k++) {
        geo_team_kind parsed;
        assert_true(geo_team_kind_parse(geo_team_kind_name((geo_team_kind)k), &parsed));
        assert_int_equal(parsed, k);
        bool found = false;
        cJSON *item;
        cJSON_ArrayForEach(item, kinds) found =
            found || strcmp(item->valuestring, geo_team_kind_name((geo_team_kind)k)) == 0;
        assert_true(found);
    }
    geo_team_kind parsed;
    assert_false(geo_team_kind_parse("police", &parsed));
    cJSON_Delete(schema);
    free(text);
}

/* Every key of the routed JSON is declared in the schema, and every required key is there. */
static void check_against_schema(const cJSON *value, const cJSON *schema, const char *where)
{
    const cJSON *properties = cJSON_GetObjectItem(schema, "properties");
    const cJSON *required = cJSON_GetObjectItem(schema, "required");
    const cJSON *item;
    cJSON_ArrayForEach(item, required)
    {
        if (cJSON_GetObjectItem(value, item->valuestring) == NULL)
            fail_msg("%s lacks required \"%s\"", where, item->valuestring);
    }
    if (properties == NULL)
        return;
    cJSON_ArrayForEach(item, value)
    {
        const cJSON *declared = cJSON_GetObjectItem(properties, item->string);
        if (declared == NULL)
            fail_msg("%s has \"%s\", which the schema does not declare", where, item->string);
        if (cJSON_IsObject(item))
            check_against_schema(item, declared, item->string);
        if (cJSON_IsArray(item)) {
            const cJSON *element;
            cJSON_ArrayForEach(element, item)
                check_against_schema(element, cJSON_GetObjectItem(declared, "items"), item->string);
        }
    }
}

ESS_TEST(decision_json_is_the_routed_event)
{
    geo_decision d = songkhla_decision(GEO_MATCH_IN_POLYGON);
    d.lat = 7.0084;
    d.lon = 100.4767;
    d.version = 3;
    d.nearest[0] = (geo_station_hit){.id = "ST2",
                                     .name_th = "ส2",
                                     .name_en = "S2",
                                     .phone = "1",
                                     .lat = 7.1,
                                     .lon = 100.5,
                                     .distance_m = 5000.6};
    d.nearest_count = 1;
    geo_target targets[GEO_TARGETS_MAX];
    size_t count = 0;
    geo_reason reason;
    geo_select_targets(&d, every_team, sizeof(every_team) / sizeof(every_team[0]), targets, &count,
                       &reason);
    geo_json_input input = {.incident_id = 42,
                            .case_number = "ESS-2569-000042",
                            .category = "threat",
                            .routed_at = "2026-11-30T09:00:00.000Z",
                            .decision = &d,
                            .targets = targets,
                            .target_count = count,
                            .reason = reason};
    char *json = NULL;
    assert_int_equal(geo_decision_json(&input, &json, NULL), ST_OK);
    cJSON *doc = cJSON_Parse(json);
    assert_non_null(doc);
    assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(doc, "incident_id")), 42);
    cJSON *stations = cJSON_GetObjectItem(doc, "stations");
    assert_int_equal(cJSON_GetArraySize(stations), 2);
    cJSON *first = cJSON_GetArrayItem(stations, 0);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(first, "role")), "jurisdiction");
    assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(first, "distance_m")), 1234);
    assert_int_equal(
        cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(stations, 1), "distance_m")),
        5001);
    /* ST2, the next station, has a team: the first escalation step. */
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "targets")), 6);

    char path[4096];
    snprintf(path, sizeof(path), "%s/proto/schemas/ess.incident.routed.schema.json",
             getenv("ESS_SOURCE_DIR") != NULL ? getenv("ESS_SOURCE_DIR") : ".");
    char *text = testkit_read_file(path);
    cJSON *schema = cJSON_Parse(text);
    check_against_schema(doc, schema, "routed");
    cJSON_Delete(doc);
    free(json);

    /* The locate form: no incident, no teams. */
    input = (geo_json_input){.decision = &d, .without_teams = true};
    assert_int_equal(geo_decision_json(&input, &json, NULL), ST_OK);
    doc = cJSON_Parse(json);
    assert_null(cJSON_GetObjectItem(doc, "incident_id"));
    assert_null(cJSON_GetObjectItem(doc, "targets"));
    assert_null(cJSON_GetObjectItem(doc, "reason"));
    cJSON_Delete(doc);
    free(json);

    /* Nowhere: no area names, no stations. */
    geo_decision nowhere = songkhla_decision(GEO_MATCH_NONE);
    input = (geo_json_input){.incident_id = 1,
                             .case_number = "ESS-2569-000001",
                             .decision = &nowhere,
                             .reason = GEO_REASON_OUTSIDE_THAILAND};
    assert_int_equal(geo_decision_json(&input, &json, NULL), ST_OK);
    doc = cJSON_Parse(json);
    check_against_schema(doc, schema, "routed");
    cJSON *area = cJSON_GetObjectItem(doc, "area");
    assert_null(cJSON_GetObjectItem(area, "province_code"));
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(area, "match")), "none");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "stations")), 0);
    cJSON_Delete(doc);
    cJSON_Delete(schema);
    free(text);
    free(json);
}

ESS_TEST_MAIN(NULL, NULL)
