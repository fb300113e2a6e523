/* libFuzzer target: a station directory (CSV) and a tambon boundary (GeoJSON) from arbitrary
 * bytes. The first byte chooses the reader. Besides "no crash, no leak, no undefined
 * behaviour" it checks what essctl relies on for an accepted directory: every row has a valid
 * id, a known district, coordinates inside Thailand's box, and known tambons, each tambon in
 * exactly one row and every known tambon in some row. A violation aborts (a finding). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "geo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static geo_code_set *districts, *tambons;

static void known_codes(void)
{
    if (districts != NULL)
        return;
    geo_code_set_create(&districts, NULL);
    geo_code_set_create(&tambons, NULL);
    geo_code_set_add(districts, "TH1001", NULL);
    geo_code_set_add(districts, "TH9011", NULL);
    geo_code_set_add(tambons, "TH100101", NULL);
    geo_code_set_add(tambons, "TH100102", NULL);
    geo_code_set_add(tambons, "TH901104", NULL);
    geo_code_set_seal(districts);
    geo_code_set_seal(tambons);
}

static void check_directory(const geo_station_list *list)
{
    size_t claimed[3] = {0};
    for (size_t i = 0; i < list->count; i++) {
        const geo_station_record *s = &list->items[i];
        size_t id_len = strlen(s->id);
        if (id_len == 0 || id_len > GEO_STATION_ID_MAX ||
            !geo_code_set_has(districts, s->district_code) || s->lat < 5 || s->lat > 21 ||
            s->lon < 97 || s->lon > 106 || strlen(s->name_th) == 0 || s->tambon_count == 0)
            abort();
        for (size_t k = 0; k < s->tambon_count; k++) {
            bool known = false;
            for (size_t t = 0; t < geo_code_set_count(tambons); t++) {
                if (strcmp(s->tambons[k], geo_code_set_at(tambons, t)) == 0) {
                    claimed[t]++;
                    known = true;
                }
            }
            if (!known)
                abort();
        }
    }
    for (size_t t = 0; t < 3; t++)
        if (claimed[t] != 1)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    known_codes();
    if (size == 0)
        return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] % 2 == 0) {
        geo_station_list *list = NULL;
        geo_problems *problems = malloc(sizeof(*problems));
        if (problems == NULL)
            return 0;
        st_code status = geo_stations_parse(text, len, districts, tambons, &list, problems, NULL);
        if ((status == ST_OK) != (list != NULL) || (status == ST_OK && problems->total != 0) ||
            (status == ST_INVALID && problems->total == 0) || problems->kept > GEO_PROBLEMS_KEPT)
            abort();
        if (list != NULL)
            check_directory(list);
        geo_station_list_destroy(list);
        free(problems);
    } else {
        geo_builder *b = NULL;
        if (geo_builder_create(&b, NULL) != ST_OK)
            return 0;
        geo_builder_add_province(b, "TH10", "p", "P", NULL);
        geo_builder_add_district(b, "TH1001", "d", "D", NULL);
        geo_builder_add_tambon(b, "TH100101", "t", "T", text, len, NULL);
        geo_index *index = NULL;
        if (geo_builder_finish(b, 0, &index, NULL) == ST_OK) {
            geo_decision d;
            geo_locate(index, 13.05, 100.05, NULL, &d, NULL);
            double lat = 0, lon = 0;
            if (geo_index_interior_point(index, "TH100101", &lat, &lon, NULL) == ST_OK &&
                (geo_locate(index, lat, lon, NULL, &d, NULL) != ST_OK ||
                 d.match != GEO_MATCH_IN_POLYGON))
                abort();
        }
        geo_index_destroy(index);
    }
    return 0;
}
