/* geo_index: tambon polygons in memory behind a uniform grid, and the stations.
 *
 * Why a grid and not an R-tree: the 7,425 tambons are all about the same size (a few km
 * across) and cover one country, so a uniform grid of bounding-box lists gives a handful of
 * candidates per cell, is built in one pass, needs no balancing, and a look-up is two
 * divisions and a short loop. A cell lists the tambons whose bounding box overlaps it, in
 * code order, so the first polygon that holds the point is the same on every run.
 *
 * Point-in-polygon is the even-odd crossing rule over all rings of a tambon, which handles
 * holes and multi-part tambons alike. Distances for the nearest-polygon fallback are
 * point-to-segment distances on a local equirectangular projection centred on the point
 * (x = Δlon·cos(lat₀)·k, y = Δlat·k): within the 30 km that the fallback looks, the scale
 * error of using cos(lat₀) instead of cos(lat) is below |tan(lat)·Δlat| ≈ 0.2 % in Thailand
 * (about 55 m at 30 km), far below the simplification of the coastline itself.
 * Station distances are great-circle distances on a sphere, computed from the chord between
 * unit vectors, which ranks stations exactly as the great-circle distance does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "geo.h"

#define METRES_PER_DEGREE (GEO_EARTH_RADIUS_M * M_PI / 180.0)
#define GRID_CELL_DEG 0.05
#define STATION_CELL_DEG 0.25
#define GRID_CELLS_MAX (4 * 1024 * 1024)
#define RINGS_PER_AREA_MAX 4096
#define POINTS_PER_AREA_MAX 200000
#define POINTS_TOTAL_MAX (20 * 1000 * 1000)
#define AREAS_MAX 100000
#define STATIONS_MAX 100000
#define MAX_OFFSHORE_KM_LIMIT 1000.0

/* ---- small helpers --------------------------------------------------------------------- */

bool geo_code_valid(geo_level level, const char *code)
{
    size_t digits = level == GEO_PROVINCE ? 2 : level == GEO_DISTRICT ? 4 : 6;
    if (code == NULL || strlen(code) != digits + 2 || code[0] != 'T' || code[1] != 'H')
        return false;
    for (size_t i = 2; i < digits + 2; i++)
        if (code[i] < '0' || code[i] > '9')
            return false;
    return true;
}

st_code geo_code_from_digits(geo_level level, const char *digits, char *out, size_t out_size,
                             st_error *err)
{
    size_t want = level == GEO_PROVINCE ? 2 : level == GEO_DISTRICT ? 4 : 6;
    if (digits == NULL || strlen(digits) != want || out_size < want + 3)
        return st_fail(err, ST_INVALID, "a code of %zu digits was expected", want);
    for (size_t i = 0; i < want; i++)
        if (digits[i] < '0' || digits[i] > '9')
            return st_fail(err, ST_INVALID, "a code of %zu digits was expected", want);
    snprintf(out, out_size, "TH%s", digits);
    return ST_OK;
}

static void unit_vector(double lat, double lon, double v[3])
{
    double phi = lat * M_PI / 180.0, lambda = lon * M_PI / 180.0;
    v[0] = cos(phi) * cos(lambda);
    v[1] = cos(phi) * sin(lambda);
    v[2] = sin(phi);
}

static double chord2(const double a[3], const double b[3])
{
    double dx = a[0] - b[0], dy = a[1] - b[1], dz = a[2] - b[2];
    return dx * dx + dy * dy + dz * dz;
}

static double chord2_to_metres(double c2)
{
    double half = sqrt(c2) / 2.0;
    if (half > 1.0)
        half = 1.0;
    return 2.0 * GEO_EARTH_RADIUS_M * asin(half);
}

double geo_distance_m(double lat1, double lon1, double lat2, double lon2)
{
    double a[3], b[3];
    unit_vector(lat1, lon1, a);
    unit_vector(lat2, lon2, b);
    return chord2_to_metres(chord2(a, b));
}

/* ---- string arena: names live as long as the index ------------------------------------ */

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, size;
    char data[];
} arena_chunk;

static const char *arena_copy(arena_chunk **head, const char *text)
{
    size_t len = strlen(text) + 1;
    arena_chunk *chunk = *head;
    if (chunk == NULL || chunk->size - chunk->used < len) {
        size_t size = len > 65536 ? len : 65536;
        arena_chunk *fresh = malloc(sizeof(*fresh) + size);
        if (fresh == NULL)
            return NULL;
        fresh->next = chunk;
        fresh->used = 0;
        fresh->size = size;
        *head = fresh;
        chunk = fresh;
    }
    char *copy = chunk->data + chunk->used;
    memcpy(copy, text, len);
    chunk->used += len;
    return copy;
}

static void arena_free(arena_chunk *head)
{
    while (head != NULL) {
        arena_chunk *next = head->next;
        free(head);
        head = next;
    }
}

/* ---- data ----------------------------------------------------------------------------- */

typedef struct area {
    char code[GEO_CODE_MAX];
    const char *name_th, *name_en; /* arena */
    int parent;   /* district of a tambon, province of a district; -1 for a province */
    int province; /* the province of a tambon or district */
    /* tambons only */
    uint32_t ring_first, ring_count;
    bool has_boundary;
    double min_lon, min_lat, max_lon, max_lat;
    int cx0, cy0, cx1, cy1; /* grid cells its bounding box covers */
    int station;            /* the station that answers for it, or -1 */
} area;

typedef struct ring {
    uint32_t first, count; /* into the point arrays */
} ring;

typedef struct station {
    char id[GEO_STATION_ID_MAX + 1];
    const char *name_th, *name_en, *phone; /* arena */
    double lat, lon;
    double unit[3];
    char district_code[GEO_CODE_MAX];
    int district;
} station;

typedef struct assignment {
    char tambon[GEO_CODE_MAX];
    char station[GEO_STATION_ID_MAX + 1];
} assignment;

/* Growable array of fixed-size items. */
typedef struct vec {
    void *items;
    size_t count, capacity, item_size;
} vec;

static void *vec_push(vec *v)
{
    if (v->count == v->capacity) {
        size_t capacity = v->capacity == 0 ? 64 : v->capacity * 2;
        void *grown = realloc(v->items, capacity * v->item_size);
        if (grown == NULL)
            return NULL;
        v->items = grown;
        v->capacity = capacity;
    }
    void *slot = (char *)v->items + v->count * v->item_size;
    memset(slot, 0, v->item_size);
    v->count++;
    return slot;
}

struct geo_builder {
    vec provinces, districts, tambons, stations, assignments; /* of area / station / assignment */
    vec rings;                                                /* of ring */
    vec lons, lats;                                           /* of double */
    arena_chunk *arena;
};

struct geo_index {
    area *provinces, *districts, *tambons;
    size_t province_count, district_count, tambon_count, tambons_with_boundary;
    ring *rings;
    size_t ring_count;
    double *lons, *lats;
    size_t point_count;
    station *stations;
    size_t station_count, assigned_tambons;
    arena_chunk *arena;
    int64_t version;
    /* grid over the stations, for the nearest ones */
    double station_lat0, station_lon0, station_min_cos;
    int station_nx, station_ny;
    uint32_t *station_start; /* station_nx * station_ny + 1 */
    uint32_t *station_items; /* station indices, in index order per cell */
    /* grid over the tambons' bounding boxes */
    double grid_lon0, grid_lat0;
    int grid_nx, grid_ny;
    uint32_t *cell_start; /* grid_nx * grid_ny + 1 */
    uint32_t *cell_items; /* tambon indices */
};

/* ---- builder --------------------------------------------------------------------------- */

st_code geo_builder_create(geo_builder **ret_builder, st_error *err)
{
    geo_builder *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return st_fail(err, ST_NOMEM, "out of memory");
    b->provinces.item_size = b->districts.item_size = b->tambons.item_size = sizeof(area);
    b->stations.item_size = sizeof(station);
    b->assignments.item_size = sizeof(assignment);
    b->rings.item_size = sizeof(ring);
    b->lons.item_size = b->lats.item_size = sizeof(double);
    *ret_builder = b;
    return ST_OK;
}

void geo_builder_destroy(geo_builder *b)
{
    if (b == NULL)
        return;
    free(b->provinces.items);
    free(b->districts.items);
    free(b->tambons.items);
    free(b->stations.items);
    free(b->assignments.items);
    free(b->rings.items);
    free(b->lons.items);
    free(b->lats.items);
    arena_free(b->arena);
    free(b);
}

static bool text_ok(const char *text)
{
    return text != NULL && strlen(text) <= GEO_NAME_MAX;
}

static st_code add_area(geo_builder *b, vec *list, geo_level level, const char *code,
                        const char *name_th, const char *name_en, area **ret_area, st_error *err)
{
    static const char *const level_names[] = {"province", "district", "tambon"};
    if (!geo_code_valid(level, code))
        return st_fail(err, ST_INVALID, "%s code \"%.20s\" is not TH followed by %d digits",
                       level_names[level], code != NULL ? code : "", 2 + 2 * (int)level);
    if (!text_ok(name_th) || !text_ok(name_en))
        return st_fail(err, ST_INVALID, "%s %s: names are missing or longer than %d bytes",
                       level_names[level], code, GEO_NAME_MAX);
    if (list->count >= AREAS_MAX)
        return st_fail(err, ST_LIMIT, "more than %d areas of one level", AREAS_MAX);
    area *a = vec_push(list);
    if (a == NULL)
        return st_fail(err, ST_NOMEM, "out of memory");
    snprintf(a->code, sizeof(a->code), "%s", code);
    a->name_th = arena_copy(&b->arena, name_th);
    a->name_en = arena_copy(&b->arena, name_en);
    a->parent = a->province = a->station = -1;
    if (a->name_th == NULL || a->name_en == NULL) {
        list->count--;
        return st_fail(err, ST_NOMEM, "out of memory");
    }
    *ret_area = a;
    return ST_OK;
}

st_code geo_builder_add_province(geo_builder *b, const char *code, const char *name_th,
                                 const char *name_en, st_error *err)
{
    area *a = NULL;
    return add_area(b, &b->provinces, GEO_PROVINCE, code, name_th, name_en, &a, err);
}

st_code geo_builder_add_district(geo_builder *b, const char *code, const char *name_th,
                                 const char *name_en, st_error *err)
{
    area *a = NULL;
    return add_area(b, &b->districts, GEO_DISTRICT, code, name_th, name_en, &a, err);
}

/* Appends the rings of one GeoJSON polygon (array of rings) to the builder. */
static st_code add_polygon_rings(geo_builder *b, const cJSON *polygon, const char *code,
                                 uint32_t *ring_count, size_t *point_count, st_error *err)
{
    if (!cJSON_IsArray(polygon))
        return st_fail(err, ST_INVALID, "tambon %s: a polygon is not an array of rings", code);
    const cJSON *coordinates_ring;
    cJSON_ArrayForEach(coordinates_ring, polygon)
    {
        int positions = cJSON_GetArraySize(coordinates_ring);
        if (!cJSON_IsArray(coordinates_ring) || positions < 3)
            return st_fail(err, ST_INVALID, "tambon %s: a ring has fewer than 3 positions", code);
        if (++*ring_count > RINGS_PER_AREA_MAX)
            return st_fail(err, ST_LIMIT, "tambon %s: more than %d rings", code,
                           RINGS_PER_AREA_MAX);
        *point_count += (size_t)positions;
        if (*point_count > POINTS_PER_AREA_MAX ||
            b->lons.count + (size_t)positions > POINTS_TOTAL_MAX)
            return st_fail(err, ST_LIMIT, "tambon %s: too many boundary points", code);
        ring *r = vec_push(&b->rings);
        if (r == NULL)
            return st_fail(err, ST_NOMEM, "out of memory");
        r->first = (uint32_t)b->lons.count;
        const cJSON *position;
        cJSON_ArrayForEach(position, coordinates_ring)
        {
            const cJSON *lon = cJSON_GetArrayItem(position, 0);
            const cJSON *lat = cJSON_GetArrayItem(position, 1);
            if (!cJSON_IsNumber(lon) || !cJSON_IsNumber(lat) || !isfinite(lon->valuedouble) ||
                !isfinite(lat->valuedouble) || fabs(lon->valuedouble) > 180.0 ||
                fabs(lat->valuedouble) > 90.0)
                return st_fail(err, ST_INVALID, "tambon %s: a position is not [lon, lat]", code);
            double *x = vec_push(&b->lons), *y = vec_push(&b->lats);
            if (x == NULL || y == NULL)
                return st_fail(err, ST_NOMEM, "out of memory");
            *x = lon->valuedouble;
            *y = lat->valuedouble;
        }
        r->count = (uint32_t)b->lons.count - r->first;
    }
    return ST_OK;
}

st_code geo_builder_add_tambon(geo_builder *b, const char *code, const char *name_th,
                               const char *name_en, const char *geometry_json, size_t geometry_len,
                               st_error *err)
{
    area *a = NULL;
    cJSON *geometry = NULL;
    size_t rings_before = b->rings.count, points_before = b->lons.count;
    st_code status = add_area(b, &b->tambons, GEO_TAMBON, code, name_th, name_en, &a, err);
    if (status != ST_OK || geometry_json == NULL)
        return status;
    size_t tambon_slot = b->tambons.count - 1;
    geometry = cJSON_ParseWithLength(geometry_json, geometry_len);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(geometry, "type");
    const cJSON *coordinates = cJSON_GetObjectItemCaseSensitive(geometry, "coordinates");
    if (!cJSON_IsString(type) || !cJSON_IsArray(coordinates)) {
        status = st_fail(err, ST_INVALID, "tambon %s: the boundary is not GeoJSON geometry", code);
        goto cleanup;
    }
    uint32_t ring_count = 0;
    size_t point_count = 0;
    if (strcmp(type->valuestring, "Polygon") == 0) {
        status = add_polygon_rings(b, coordinates, code, &ring_count, &point_count, err);
    } else if (strcmp(type->valuestring, "MultiPolygon") == 0) {
        const cJSON *polygon;
        cJSON_ArrayForEach(polygon, coordinates)
        {
            status = add_polygon_rings(b, polygon, code, &ring_count, &point_count, err);
            if (status != ST_OK)
                break;
        }
    } else {
        status = st_fail(err, ST_INVALID, "tambon %s: the boundary is a %.20s, not a polygon", code,
                         type->valuestring);
    }
    if (status == ST_OK && ring_count == 0)
        status = st_fail(err, ST_INVALID, "tambon %s: the boundary has no ring", code);
    if (status != ST_OK)
        goto cleanup;
    a = (area *)b->tambons.items + tambon_slot; /* vec_push may have moved it */
    a->has_boundary = true;
    a->ring_first = (uint32_t)rings_before;
    a->ring_count = ring_count;
    a->min_lon = a->min_lat = INFINITY;
    a->max_lon = a->max_lat = -INFINITY;
    const double *lons = b->lons.items, *lats = b->lats.items;
    for (size_t i = points_before; i < b->lons.count; i++) {
        a->min_lon = fmin(a->min_lon, lons[i]);
        a->max_lon = fmax(a->max_lon, lons[i]);
        a->min_lat = fmin(a->min_lat, lats[i]);
        a->max_lat = fmax(a->max_lat, lats[i]);
    }
cleanup:
    if (status != ST_OK) {
        /* Leave the builder as it was before this call. */
        b->rings.count = rings_before;
        b->lons.count = b->lats.count = points_before;
        b->tambons.count--;
    }
    cJSON_Delete(geometry);
    return status;
}

static bool station_id_valid(const char *id)
{
    size_t len = id != NULL ? strlen(id) : 0;
    if (len == 0 || len > GEO_STATION_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

st_code geo_builder_add_station(geo_builder *b, const char *id, const char *name_th,
                                const char *name_en, const char *phone, double lat, double lon,
                                const char *district_code, st_error *err)
{
    if (!station_id_valid(id))
        return st_fail(err, ST_INVALID, "a station id is not 1..%d of [A-Za-z0-9._-]",
                       GEO_STATION_ID_MAX);
    if (!text_ok(name_th) || (name_en != NULL && !text_ok(name_en)) ||
        (phone != NULL && strlen(phone) >= GEO_PHONE_MAX))
        return st_fail(err, ST_INVALID, "station %s: a name or the phone is too long", id);
    if (!isfinite(lat) || !isfinite(lon) || fabs(lat) > 90.0 || fabs(lon) > 180.0)
        return st_fail(err, ST_INVALID, "station %s: the location is not a coordinate", id);
    bool has_district = district_code != NULL && district_code[0] != '\0';
    if (has_district && !geo_code_valid(GEO_DISTRICT, district_code))
        return st_fail(err, ST_INVALID, "station %s: the district code is not TH + 4 digits", id);
    if (b->stations.count >= STATIONS_MAX)
        return st_fail(err, ST_LIMIT, "more than %d stations", STATIONS_MAX);
    station *s = vec_push(&b->stations);
    if (s == NULL)
        return st_fail(err, ST_NOMEM, "out of memory");
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->name_th = arena_copy(&b->arena, name_th);
    s->name_en = arena_copy(&b->arena, name_en != NULL ? name_en : "");
    s->phone = arena_copy(&b->arena, phone != NULL ? phone : "");
    if (s->name_th == NULL || s->name_en == NULL || s->phone == NULL) {
        b->stations.count--;
        return st_fail(err, ST_NOMEM, "out of memory");
    }
    s->lat = lat;
    s->lon = lon;
    unit_vector(lat, lon, s->unit);
    snprintf(s->district_code, sizeof(s->district_code), "%s", has_district ? district_code : "");
    s->district = -1;
    return ST_OK;
}

st_code geo_builder_assign(geo_builder *b, const char *tambon_code, const char *station_id,
                           st_error *err)
{
    if (!geo_code_valid(GEO_TAMBON, tambon_code) || !station_id_valid(station_id))
        return st_fail(err, ST_INVALID, "a jurisdiction needs a tambon code and a station id");
    if (b->assignments.count >= AREAS_MAX)
        return st_fail(err, ST_LIMIT, "more than %d jurisdictions", AREAS_MAX);
    assignment *a = vec_push(&b->assignments);
    if (a == NULL)
        return st_fail(err, ST_NOMEM, "out of memory");
    snprintf(a->tambon, sizeof(a->tambon), "%s", tambon_code);
    snprintf(a->station, sizeof(a->station), "%s", station_id);
    return ST_OK;
}

/* ---- finish ---------------------------------------------------------------------------- */

static int compare_areas(const void *a, const void *b)
{
    return strcmp(((const area *)a)->code, ((const area *)b)->code);
}

static int compare_stations(const void *a, const void *b)
{
    return strcmp(((const station *)a)->id, ((const station *)b)->id);
}

static int find_area(const area *areas, size_t count, const char *code)
{
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int order = strcmp(areas[mid].code, code);
        if (order == 0)
            return (int)mid;
        if (order < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int find_station(const station *stations, size_t count, const char *id)
{
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int order = strcmp(stations[mid].id, id);
        if (order == 0)
            return (int)mid;
        if (order < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static st_code sort_unique(area *areas, size_t count, const char *what, st_error *err)
{
    if (count > 1)
        qsort(areas, count, sizeof(*areas), compare_areas);
    for (size_t i = 1; i < count; i++)
        if (strcmp(areas[i - 1].code, areas[i].code) == 0)
            return st_fail(err, ST_INVALID, "%s %s appears twice", what, areas[i].code);
    return ST_OK;
}

static int clamp_cell(double value, int limit)
{
    if (value < 0)
        return 0;
    if (value >= limit)
        return limit - 1;
    return (int)value;
}

static st_code build_grid(geo_index *index, st_error *err)
{
    double min_lon = INFINITY, min_lat = INFINITY, max_lon = -INFINITY, max_lat = -INFINITY;
    for (size_t i = 0; i < index->tambon_count; i++) {
        const area *t = &index->tambons[i];
        if (!t->has_boundary)
            continue;
        min_lon = fmin(min_lon, t->min_lon);
        min_lat = fmin(min_lat, t->min_lat);
        max_lon = fmax(max_lon, t->max_lon);
        max_lat = fmax(max_lat, t->max_lat);
    }
    if (index->tambons_with_boundary == 0) {
        index->grid_nx = index->grid_ny = 0;
        index->cell_start = calloc(1, sizeof(uint32_t));
        return index->cell_start != NULL ? ST_OK : st_fail(err, ST_NOMEM, "out of memory");
    }
    index->grid_lon0 = min_lon;
    index->grid_lat0 = min_lat;
    double nx = floor((max_lon - min_lon) / GRID_CELL_DEG) + 1;
    double ny = floor((max_lat - min_lat) / GRID_CELL_DEG) + 1;
    if (nx * ny > GRID_CELLS_MAX)
        return st_fail(err, ST_LIMIT, "the boundaries span more than %d grid cells",
                       GRID_CELLS_MAX);
    index->grid_nx = (int)nx;
    index->grid_ny = (int)ny;
    size_t cells = (size_t)index->grid_nx * (size_t)index->grid_ny;
    index->cell_start = calloc(cells + 1, sizeof(uint32_t));
    if (index->cell_start == NULL)
        return st_fail(err, ST_NOMEM, "out of memory");
    /* Two passes: count per cell, then fill (counting sort keeps tambon order per cell). */
    size_t total = 0;
    for (size_t i = 0; i < index->tambon_count; i++) {
        area *t = &index->tambons[i];
        if (!t->has_boundary)
            continue;
        t->cx0 = clamp_cell((t->min_lon - min_lon) / GRID_CELL_DEG, index->grid_nx);
        t->cx1 = clamp_cell((t->max_lon - min_lon) / GRID_CELL_DEG, index->grid_nx);
        t->cy0 = clamp_cell((t->min_lat - min_lat) / GRID_CELL_DEG, index->grid_ny);
        t->cy1 = clamp_cell((t->max_lat - min_lat) / GRID_CELL_DEG, index->grid_ny);
        for (int y = t->cy0; y <= t->cy1; y++)
            for (int x = t->cx0; x <= t->cx1; x++)
                index->cell_start[(size_t)y * (size_t)index->grid_nx + (size_t)x + 1]++;
        total += (size_t)(t->cx1 - t->cx0 + 1) * (size_t)(t->cy1 - t->cy0 + 1);
    }
    if (total > UINT32_MAX / 2)
        return st_fail(err, ST_LIMIT, "the grid index would be too large");
    for (size_t c = 0; c < cells; c++)
        index->cell_start[c + 1] += index->cell_start[c];
    index->cell_items = malloc((total > 0 ? total : 1) * sizeof(uint32_t));
    uint32_t *fill = malloc(cells * sizeof(uint32_t));
    if (index->cell_items == NULL || fill == NULL) {
        free(fill);
        return st_fail(err, ST_NOMEM, "out of memory");
    }
    memcpy(fill, index->cell_start, cells * sizeof(uint32_t));
    for (size_t i = 0; i < index->tambon_count; i++) {
        const area *t = &index->tambons[i];
        if (!t->has_boundary)
            continue;
        for (int y = t->cy0; y <= t->cy1; y++)
            for (int x = t->cx0; x <= t->cx1; x++)
                index->cell_items[fill[(size_t)y * (size_t)index->grid_nx + (size_t)x]++] =
                    (uint32_t)i;
    }
    free(fill);
    return ST_OK;
}

/* Stations in cells of STATION_CELL_DEG, so the nearest ones are found by looking at the
 * cells around a point, ring by ring, instead of at all 1,482. */
static st_code build_station_grid(geo_index *index, st_error *err)
{
    double min_lat = INFINITY, min_lon = INFINITY, max_lat = -INFINITY, max_lon = -INFINITY;
    for (size_t i = 0; i < index->station_count; i++) {
        min_lat = fmin(min_lat, index->stations[i].lat);
        max_lat = fmax(max_lat, index->stations[i].lat);
        min_lon = fmin(min_lon, index->stations[i].lon);
        max_lon = fmax(max_lon, index->stations[i].lon);
    }
    if (index->station_count == 0) {
        index->station_start = calloc(1, sizeof(uint32_t));
        return index->station_start != NULL ? ST_OK : st_fail(err, ST_NOMEM, "out of memory");
    }
    double nx = floor((max_lon - min_lon) / STATION_CELL_DEG) + 1;
    double ny = floor((max_lat - min_lat) / STATION_CELL_DEG) + 1;
    if (nx * ny > GRID_CELLS_MAX)
        return st_fail(err, ST_LIMIT, "the stations span more than %d grid cells", GRID_CELLS_MAX);
    index->station_lat0 = min_lat;
    index->station_lon0 = min_lon;
    index->station_nx = (int)nx;
    index->station_ny = (int)ny;
    index->station_min_cos = fmin(cos(min_lat * M_PI / 180.0), cos(max_lat * M_PI / 180.0));
    size_t cells = (size_t)index->station_nx * (size_t)index->station_ny;
    index->station_start = calloc(cells + 1, sizeof(uint32_t));
    index->station_items = malloc(index->station_count * sizeof(uint32_t));
    uint32_t *fill = malloc(cells * sizeof(uint32_t));
    if (index->station_start == NULL || index->station_items == NULL || fill == NULL) {
        free(fill);
        return st_fail(err, ST_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < index->station_count; i++) {
        int x =
            clamp_cell((index->stations[i].lon - min_lon) / STATION_CELL_DEG, index->station_nx);
        int y =
            clamp_cell((index->stations[i].lat - min_lat) / STATION_CELL_DEG, index->station_ny);
        index->station_start[(size_t)y * (size_t)index->station_nx + (size_t)x + 1]++;
    }
    for (size_t c = 0; c < cells; c++)
        index->station_start[c + 1] += index->station_start[c];
    memcpy(fill, index->station_start, cells * sizeof(uint32_t));
    for (size_t i = 0; i < index->station_count; i++) {
        int x =
            clamp_cell((index->stations[i].lon - min_lon) / STATION_CELL_DEG, index->station_nx);
        int y =
            clamp_cell((index->stations[i].lat - min_lat) / STATION_CELL_DEG, index->station_ny);
        index->station_items[fill[(size_t)y * (size_t)index->station_nx + (size_t)x]++] =
            (uint32_t)i;
    }
    free(fill);
    return ST_OK;
}

void geo_index_destroy(geo_index *index)
{
    if (index == NULL)
        return;
    free(index->provinces);
    free(index->districts);
    free(index->tambons);
    free(index->rings);
    free(index->lons);
    free(index->lats);
    free(index->stations);
    free(index->cell_start);
    free(index->cell_items);
    free(index->station_start);
    free(index->station_items);
    arena_free(index->arena);
    free(index);
}

st_code geo_builder_finish(geo_builder *b, int64_t version, geo_index **ret_index, st_error *err)
{
    st_code status = ST_OK;
    geo_index *index = calloc(1, sizeof(*index));
    if (index == NULL) {
        geo_builder_destroy(b);
        return st_fail(err, ST_NOMEM, "out of memory");
    }
    /* Move everything from the builder into the index. */
    index->provinces = b->provinces.items;
    index->province_count = b->provinces.count;
    index->districts = b->districts.items;
    index->district_count = b->districts.count;
    index->tambons = b->tambons.items;
    index->tambon_count = b->tambons.count;
    index->stations = b->stations.items;
    index->station_count = b->stations.count;
    index->rings = b->rings.items;
    index->ring_count = b->rings.count;
    index->lons = b->lons.items;
    index->lats = b->lats.items;
    index->point_count = b->lons.count;
    index->arena = b->arena;
    index->version = version;
    assignment *assignments = b->assignments.items;
    size_t assignment_count = b->assignments.count;
    memset(b, 0, sizeof(*b));
    geo_builder_destroy(b);

    if ((status = sort_unique(index->provinces, index->province_count, "province", err)) != ST_OK ||
        (status = sort_unique(index->districts, index->district_count, "district", err)) != ST_OK ||
        (status = sort_unique(index->tambons, index->tambon_count, "tambon", err)) != ST_OK)
        goto cleanup;
    for (size_t i = 0; i < index->district_count; i++) {
        area *d = &index->districts[i];
        char parent[GEO_CODE_MAX];
        snprintf(parent, sizeof(parent), "%.4s", d->code);
        d->parent = d->province = find_area(index->provinces, index->province_count, parent);
        if (d->parent < 0) {
            status = st_fail(err, ST_INVALID, "district %s has no province %s", d->code, parent);
            goto cleanup;
        }
    }
    for (size_t i = 0; i < index->tambon_count; i++) {
        area *t = &index->tambons[i];
        char parent[GEO_CODE_MAX];
        snprintf(parent, sizeof(parent), "%.6s", t->code);
        t->parent = find_area(index->districts, index->district_count, parent);
        if (t->parent < 0) {
            status = st_fail(err, ST_INVALID, "tambon %s has no district %s", t->code, parent);
            goto cleanup;
        }
        t->province = index->districts[t->parent].province;
        if (t->has_boundary)
            index->tambons_with_boundary++;
    }
    if (index->station_count > 1)
        qsort(index->stations, index->station_count, sizeof(station), compare_stations);
    for (size_t i = 0; i < index->station_count; i++) {
        station *s = &index->stations[i];
        if (i > 0 && strcmp(index->stations[i - 1].id, s->id) == 0) {
            status = st_fail(err, ST_INVALID, "station %s appears twice", s->id);
            goto cleanup;
        }
        if (s->district_code[0] == '\0')
            continue; /* a directory may leave it out; routing does not need it */
        s->district = find_area(index->districts, index->district_count, s->district_code);
        if (s->district < 0) {
            status = st_fail(err, ST_INVALID, "station %s: unknown district %s", s->id,
                             s->district_code);
            goto cleanup;
        }
    }
    for (size_t i = 0; i < assignment_count; i++) {
        int t = find_area(index->tambons, index->tambon_count, assignments[i].tambon);
        int s = find_station(index->stations, index->station_count, assignments[i].station);
        if (t < 0 || s < 0) {
            status = st_fail(err, ST_INVALID, "jurisdiction of %s: unknown %s %s",
                             assignments[i].tambon, t < 0 ? "tambon" : "station",
                             t < 0 ? assignments[i].tambon : assignments[i].station);
            goto cleanup;
        }
        if (index->tambons[t].station >= 0) {
            status = st_fail(err, ST_INVALID, "tambon %s is given to two stations",
                             assignments[i].tambon);
            goto cleanup;
        }
        index->tambons[t].station = s;
        index->assigned_tambons++;
    }
    status = build_grid(index, err);
    if (status == ST_OK)
        status = build_station_grid(index, err);

cleanup:
    free(assignments);
    if (status != ST_OK) {
        geo_index_destroy(index);
        return status;
    }
    *ret_index = index;
    return ST_OK;
}

void geo_index_get_stats(const geo_index *index, geo_index_stats *ret_stats)
{
    *ret_stats = (geo_index_stats){
        .provinces = index->province_count,
        .districts = index->district_count,
        .tambons = index->tambon_count,
        .tambons_with_boundary = index->tambons_with_boundary,
        .rings = index->ring_count,
        .points = index->point_count,
        .stations = index->station_count,
        .assigned_tambons = index->assigned_tambons,
        .grid_cells = (size_t)index->grid_nx * (size_t)index->grid_ny,
        .version = index->version,
    };
}

/* ---- geometry -------------------------------------------------------------------------- */

static bool inside_tambon(const geo_index *index, const area *t, double lon, double lat)
{
    if (lon < t->min_lon || lon > t->max_lon || lat < t->min_lat || lat > t->max_lat)
        return false;
    bool inside = false;
    for (uint32_t r = t->ring_first; r < t->ring_first + t->ring_count; r++) {
        const double *xs = index->lons + index->rings[r].first;
        const double *ys = index->lats + index->rings[r].first;
        uint32_t n = index->rings[r].count;
        for (uint32_t i = 0, j = n - 1; i < n; j = i++) {
            if ((ys[i] > lat) != (ys[j] > lat) &&
                lon < (xs[j] - xs[i]) * (lat - ys[i]) / (ys[j] - ys[i]) + xs[i])
                inside = !inside;
        }
    }
    return inside;
}

/* Distance in metres from the origin to segment (ax, ay)-(bx, by), all in metres. */
static double segment_distance(double ax, double ay, double bx, double by)
{
    double dx = bx - ax, dy = by - ay;
    double len2 = dx * dx + dy * dy;
    double t = len2 > 0 ? -(ax * dx + ay * dy) / len2 : 0.0;
    if (t < 0)
        t = 0;
    else if (t > 1)
        t = 1;
    double px = ax + t * dx, py = ay + t * dy;
    return sqrt(px * px + py * py);
}

typedef struct projection {
    double lon0, lat0, kx, ky; /* metres per degree */
} projection;

static projection projection_at(double lat, double lon)
{
    double c = cos(lat * M_PI / 180.0);
    if (c < 0.01)
        c = 0.01; /* near the poles; no boundary of ours is there */
    return (projection){
        .lon0 = lon, .lat0 = lat, .kx = c * METRES_PER_DEGREE, .ky = METRES_PER_DEGREE};
}

static double bbox_distance(const projection *p, const area *t)
{
    double dx = fmax(fmax(t->min_lon - p->lon0, p->lon0 - t->max_lon), 0.0) * p->kx;
    double dy = fmax(fmax(t->min_lat - p->lat0, p->lat0 - t->max_lat), 0.0) * p->ky;
    return sqrt(dx * dx + dy * dy);
}

static double boundary_distance(const geo_index *index, const projection *p, const area *t)
{
    double best = INFINITY;
    for (uint32_t r = t->ring_first; r < t->ring_first + t->ring_count; r++) {
        const double *xs = index->lons + index->rings[r].first;
        const double *ys = index->lats + index->rings[r].first;
        uint32_t n = index->rings[r].count;
        for (uint32_t i = 0, j = n - 1; i < n; j = i++) {
            double ax = (xs[j] - p->lon0) * p->kx, ay = (ys[j] - p->lat0) * p->ky;
            double bx = (xs[i] - p->lon0) * p->kx, by = (ys[i] - p->lat0) * p->ky;
            double d = segment_distance(ax, ay, bx, by);
            if (d < best)
                best = d;
        }
        if (best == 0.0)
            break;
    }
    return best;
}

static int grid_x(const geo_index *index, double lon)
{
    return (int)floor((lon - index->grid_lon0) / GRID_CELL_DEG);
}

static int grid_y(const geo_index *index, double lat)
{
    return (int)floor((lat - index->grid_lat0) / GRID_CELL_DEG);
}

static int find_containing(const geo_index *index, double lat, double lon)
{
    int x = grid_x(index, lon), y = grid_y(index, lat);
    if (x < 0 || y < 0 || x >= index->grid_nx || y >= index->grid_ny)
        return -1;
    size_t cell = (size_t)y * (size_t)index->grid_nx + (size_t)x;
    for (uint32_t k = index->cell_start[cell]; k < index->cell_start[cell + 1]; k++) {
        const area *t = &index->tambons[index->cell_items[k]];
        if (inside_tambon(index, t, lon, lat))
            return (int)index->cell_items[k];
    }
    return -1;
}

/* The tambon whose boundary is nearest, within radius_m; -1 when none. Each tambon is
 * measured once: in the first cell of the window that its bounding box covers. */
static int find_nearest(const geo_index *index, double lat, double lon, double radius_m,
                        double *ret_distance)
{
    projection p = projection_at(lat, lon);
    double dlon = radius_m / p.kx, dlat = radius_m / p.ky;
    int x0 = grid_x(index, lon - dlon), x1 = grid_x(index, lon + dlon);
    int y0 = grid_y(index, lat - dlat), y1 = grid_y(index, lat + dlat);
    if (x1 < 0 || y1 < 0 || x0 >= index->grid_nx || y0 >= index->grid_ny)
        return -1;
    x0 = x0 < 0 ? 0 : x0;
    y0 = y0 < 0 ? 0 : y0;
    x1 = x1 >= index->grid_nx ? index->grid_nx - 1 : x1;
    y1 = y1 >= index->grid_ny ? index->grid_ny - 1 : y1;
    int best = -1;
    double best_distance = radius_m;
    for (int y = y0; y <= y1; y++) {
        for (int x = x0; x <= x1; x++) {
            size_t cell = (size_t)y * (size_t)index->grid_nx + (size_t)x;
            for (uint32_t k = index->cell_start[cell]; k < index->cell_start[cell + 1]; k++) {
                int i = (int)index->cell_items[k];
                const area *t = &index->tambons[i];
                if ((t->cx0 > x0 ? t->cx0 : x0) != x || (t->cy0 > y0 ? t->cy0 : y0) != y)
                    continue; /* measured in an earlier cell of the window */
                if (bbox_distance(&p, t) > best_distance)
                    continue;
                double d = boundary_distance(index, &p, t);
                if (d < best_distance || (d == best_distance && best >= 0 && i < best)) {
                    best_distance = d;
                    best = i;
                }
            }
        }
    }
    if (best >= 0)
        *ret_distance = best_distance;
    return best;
}

/* ---- stations ---------------------------------------------------------------------------- */

static geo_station_hit station_hit(const station *s, double distance_m)
{
    return (geo_station_hit){.id = s->id,
                             .name_th = s->name_th,
                             .name_en = s->name_en,
                             .phone = s->phone,
                             .lat = s->lat,
                             .lon = s->lon,
                             .distance_m = distance_m};
}

/* Keeps the k best (smallest chord, then lowest index: ties go by id) in ids/c2s. */
static void offer_station(size_t k, int id, double c2, int *ids, double *c2s, size_t *found)
{
    if (*found == k && (c2 > c2s[k - 1] || (c2 == c2s[k - 1] && id > ids[k - 1])))
        return;
    size_t at = *found < k ? (*found)++ : k - 1;
    while (at > 0 && (c2s[at - 1] > c2 || (c2s[at - 1] == c2 && ids[at - 1] > id))) {
        c2s[at] = c2s[at - 1];
        ids[at] = ids[at - 1];
        at--;
    }
    c2s[at] = c2;
    ids[at] = id;
}

/* A lower bound of the distance from (lat, lon) to any station in a cell `band` cells away
 * (Chebyshev) from the point's cell: at least ring-1 whole cells lie between them along lat
 * or along lon. Along lat, the distance is at least R·Δφ; along lon, by the haversine formula,
 * at least 2R·asin(cos φ_max · sin(Δλ/2)), with φ_max the largest |lat| involved. */
static double ring_lower_bound_m(const geo_index *index, double lat, int band)
{
    if (band <= 1)
        return 0.0;
    double gap = (band - 1) * STATION_CELL_DEG * M_PI / 180.0;
    double c = fmin(index->station_min_cos, cos(lat * M_PI / 180.0));
    double along_lat = GEO_EARTH_RADIUS_M * gap;
    double along_lon = 2.0 * GEO_EARTH_RADIUS_M * asin(fmin(1.0, c * sin(gap / 2.0)));
    return fmin(along_lat, along_lon);
}

/* The k nearest stations (great-circle order, ties by id), skipping one; k <= GEO_NEAREST_MAX.
 * Visits the station grid band by band around the point and stops when no farther band can
 * hold a nearer station than the k-th found. */
static size_t nearest_stations(const geo_index *index, double lat, double lon,
                               const double point[3], int skip, size_t k, int *ret_ids,
                               double *ret_c2)
{
    size_t found = 0;
    if (k == 0 || index->station_count == 0)
        return 0;
    int cx = (int)floor((lon - index->station_lon0) / STATION_CELL_DEG);
    int cy = (int)floor((lat - index->station_lat0) / STATION_CELL_DEG);
    int nx = index->station_nx, ny = index->station_ny;
    /* Rings needed to cover the whole grid from (cx, cy). */
    int far_x = cx < 0 ? nx - 1 - cx : cx >= nx ? cx : (cx > nx - 1 - cx ? cx : nx - 1 - cx);
    int far_y = cy < 0 ? ny - 1 - cy : cy >= ny ? cy : (cy > ny - 1 - cy ? cy : ny - 1 - cy);
    int last_ring = far_x > far_y ? far_x : far_y;
    for (int band = 0; band <= last_ring; band++) {
        if (found == k && ring_lower_bound_m(index, lat, band) > chord2_to_metres(ret_c2[k - 1]))
            break;
        int y0 = cy - band, y1 = cy + band, x0 = cx - band, x1 = cx + band;
        for (int y = y0 < 0 ? 0 : y0; y <= y1 && y < ny; y++) {
            /* The band's top and bottom rows whole; the rows between, their two ends. */
            bool whole_row = y == y0 || y == y1;
            for (int x = x0 < 0 ? 0 : x0; x <= x1 && x < nx; x++) {
                if (!whole_row && x != x0 && x != x1)
                    continue;
                size_t cell = (size_t)y * (size_t)nx + (size_t)x;
                for (uint32_t s = index->station_start[cell]; s < index->station_start[cell + 1];
                     s++) {
                    int id = (int)index->station_items[s];
                    if (id != skip)
                        offer_station(k, id, chord2(point, index->stations[id].unit), ret_ids,
                                      ret_c2, &found);
                }
            }
        }
    }
    return found;
}

/* ---- decisions ------------------------------------------------------------------------- */

const char *geo_match_name(geo_match match)
{
    switch (match) {
    case GEO_MATCH_IN_POLYGON:
        return "in_polygon";
    case GEO_MATCH_NEAREST_POLYGON:
        return "nearest_polygon";
    case GEO_MATCH_NONE:
    default:
        return "none";
    }
}

static geo_area_ref area_ref(const area *a)
{
    return (geo_area_ref){.code = a->code, .name_th = a->name_th, .name_en = a->name_en};
}

st_code geo_locate(const geo_index *index, double lat, double lon, const geo_options *options,
                   geo_decision *ret_decision, st_error *err)
{
    if (!isfinite(lat) || !isfinite(lon) || fabs(lat) > 90.0 || fabs(lon) > 180.0)
        return st_fail(err, ST_INVALID, "the location is not a WGS84 coordinate");
    geo_options opts = options != NULL ? *options : GEO_OPTIONS_DEFAULT;
    if (!(opts.max_offshore_km >= 0 && opts.max_offshore_km <= MAX_OFFSHORE_KM_LIMIT) ||
        opts.nearest_stations < 0 || opts.nearest_stations > GEO_NEAREST_MAX)
        return st_fail(err, ST_INVALID, "geo options out of range");

    geo_decision d = {.lat = lat, .lon = lon, .version = index->version};
    int tambon = find_containing(index, lat, lon);
    if (tambon >= 0) {
        d.match = GEO_MATCH_IN_POLYGON;
    } else if (opts.max_offshore_km > 0) {
        double distance = 0;
        tambon = find_nearest(index, lat, lon, opts.max_offshore_km * 1000.0, &distance);
        if (tambon >= 0) {
            d.match = GEO_MATCH_NEAREST_POLYGON;
            d.area_distance_m = distance;
        }
    }
    if (tambon >= 0) {
        const area *t = &index->tambons[tambon];
        const area *district = &index->districts[t->parent];
        d.tambon = area_ref(t);
        d.district = area_ref(district);
        d.province = area_ref(&index->provinces[district->province]);

        double point[3];
        unit_vector(lat, lon, point);
        int responsible = t->station;
        d.station_by_jurisdiction = responsible >= 0;
        if (responsible < 0 && index->station_count > 0) {
            int id = -1;
            double c2 = 0;
            if (nearest_stations(index, lat, lon, point, -1, 1, &id, &c2) == 1)
                responsible = id;
        }
        if (responsible >= 0) {
            const station *s = &index->stations[responsible];
            d.has_station = true;
            d.station = station_hit(s, chord2_to_metres(chord2(point, s->unit)));
        }
        int ids[GEO_NEAREST_MAX];
        double c2s[GEO_NEAREST_MAX];
        d.nearest_count = nearest_stations(index, lat, lon, point, responsible,
                                           (size_t)opts.nearest_stations, ids, c2s);
        for (size_t i = 0; i < d.nearest_count; i++)
            d.nearest[i] = station_hit(&index->stations[ids[i]], chord2_to_metres(c2s[i]));
    }
    *ret_decision = d;
    return ST_OK;
}

/* ---- a point inside a tambon (for station seats) --------------------------------------- */

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The middle of the widest inside stretch of the horizontal line at lat; false when the line
 * crosses nothing. */
static bool scanline_point(const geo_index *index, const area *t, double lat, double *ret_lon)
{
    size_t crossings = 0;
    for (uint32_t r = t->ring_first; r < t->ring_first + t->ring_count; r++)
        crossings += index->rings[r].count;
    double *xs_at = malloc((crossings > 0 ? crossings : 1) * sizeof(double));
    if (xs_at == NULL)
        return false;
    size_t n_at = 0;
    for (uint32_t r = t->ring_first; r < t->ring_first + t->ring_count; r++) {
        const double *xs = index->lons + index->rings[r].first;
        const double *ys = index->lats + index->rings[r].first;
        uint32_t n = index->rings[r].count;
        for (uint32_t i = 0, j = n - 1; i < n; j = i++)
            if ((ys[i] > lat) != (ys[j] > lat))
                xs_at[n_at++] = (xs[j] - xs[i]) * (lat - ys[i]) / (ys[j] - ys[i]) + xs[i];
    }
    if (n_at > 1)
        qsort(xs_at, n_at, sizeof(double), compare_doubles);
    double best_width = 0;
    bool found = false;
    for (size_t i = 0; i + 1 < n_at; i += 2) {
        double width = xs_at[i + 1] - xs_at[i];
        if (width > best_width) {
            best_width = width;
            *ret_lon = (xs_at[i] + xs_at[i + 1]) / 2.0;
            found = true;
        }
    }
    free(xs_at);
    return found;
}

st_code geo_index_interior_point(const geo_index *index, const char *tambon_code, double *ret_lat,
                                 double *ret_lon, st_error *err)
{
    int i = find_area(index->tambons, index->tambon_count, tambon_code);
    if (i < 0 || !index->tambons[i].has_boundary)
        return st_fail(err, ST_NOT_FOUND, "tambon %.20s has no boundary", tambon_code);
    const area *t = &index->tambons[i];
    /* Area centroid of the largest ring (the main part's outline). */
    double best_area = -1, cx = 0, cy = 0;
    for (uint32_t r = t->ring_first; r < t->ring_first + t->ring_count; r++) {
        const double *xs = index->lons + index->rings[r].first;
        const double *ys = index->lats + index->rings[r].first;
        uint32_t n = index->rings[r].count;
        double a2 = 0, sx = 0, sy = 0;
        for (uint32_t k = 0, j = n - 1; k < n; j = k++) {
            /* Relative to the first vertex: keeps the products small and exact enough. */
            double x0 = xs[j] - xs[0], y0 = ys[j] - ys[0], x1 = xs[k] - xs[0], y1 = ys[k] - ys[0];
            double cross = x0 * y1 - x1 * y0;
            a2 += cross;
            sx += (x0 + x1) * cross;
            sy += (y0 + y1) * cross;
        }
        if (fabs(a2) > best_area && a2 != 0) {
            best_area = fabs(a2);
            cx = xs[0] + sx / (3.0 * a2);
            cy = ys[0] + sy / (3.0 * a2);
        }
    }
    if (best_area > 0 && inside_tambon(index, t, cx, cy)) {
        *ret_lat = cy;
        *ret_lon = cx;
        return ST_OK;
    }
    /* Scan lines: through the centroid, then at halves, quarters, ... of the box. */
    double lines[1 + 15];
    size_t line_count = 0;
    if (best_area > 0)
        lines[line_count++] = cy;
    for (int denominator = 2; denominator <= 16; denominator *= 2)
        for (int numerator = 1; numerator < denominator; numerator += 2)
            if (line_count < sizeof(lines) / sizeof(lines[0]))
                lines[line_count++] =
                    t->min_lat + (t->max_lat - t->min_lat) * numerator / denominator;
    for (size_t k = 0; k < line_count; k++) {
        double lon = 0;
        if (scanline_point(index, t, lines[k], &lon) && inside_tambon(index, t, lon, lines[k])) {
            *ret_lat = lines[k];
            *ret_lon = lon;
            return ST_OK;
        }
    }
    return st_fail(err, ST_NOT_FOUND, "no inside point found for tambon %s", tambon_code);
}
