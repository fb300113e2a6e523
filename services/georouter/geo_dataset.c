/* geo_dataset: deploy/data/geo read into records, and station directories read and checked.
 *
 * The code lists (the codes folder upstream) name every province, district and tambon with its
 * TIS-1099 digits; the boundary files (mapthai) carry "TH"-prefixed codes of the same
 * numbers. Records are keyed by the prefixed code, as in the database. A tambon found in only
 * one of the two sources is kept: the code list's newer tambons without a boundary, the
 * boundary file's older ones with the names it carries. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "geo.h"

#define GEOJSON_FILE_MAX ((size_t)64 * 1024 * 1024)

/* ---- code sets ---------------------------------------------------------------------------- */

struct geo_code_set {
    char (*codes)[GEO_CODE_MAX];
    size_t count, capacity;
    bool sealed;
};

st_code geo_code_set_create(geo_code_set **ret_set, st_error *err)
{
    geo_code_set *set = calloc(1, sizeof(*set));
    if (set == NULL)
        return st_fail(err, ST_NOMEM, "out of memory");
    *ret_set = set;
    return ST_OK;
}

st_code geo_code_set_add(geo_code_set *set, const char *code, st_error *err)
{
    if (code == NULL || strlen(code) >= GEO_CODE_MAX)
        return st_fail(err, ST_INVALID, "a code is longer than %d characters", GEO_CODE_MAX - 1);
    if (set->count == set->capacity) {
        size_t capacity = set->capacity == 0 ? 256 : set->capacity * 2;
        void *grown = realloc(set->codes, capacity * sizeof(*set->codes));
        if (grown == NULL)
            return st_fail(err, ST_NOMEM, "out of memory");
        set->codes = grown;
        set->capacity = capacity;
    }
    snprintf(set->codes[set->count++], GEO_CODE_MAX, "%s", code);
    set->sealed = false;
    return ST_OK;
}

static int compare_codes(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

void geo_code_set_seal(geo_code_set *set)
{
    if (set->count > 1)
        qsort(set->codes, set->count, sizeof(*set->codes), compare_codes);
    size_t kept = 0;
    for (size_t i = 0; i < set->count; i++)
        if (kept == 0 || strcmp(set->codes[kept - 1], set->codes[i]) != 0)
            memmove(set->codes[kept++], set->codes[i], GEO_CODE_MAX);
    set->count = kept;
    set->sealed = true;
}

static long code_set_position(const geo_code_set *set, const char *code)
{
    size_t lo = 0, hi = set->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int order = strcmp(set->codes[mid], code);
        if (order == 0)
            return (long)mid;
        if (order < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

bool geo_code_set_has(const geo_code_set *set, const char *code)
{
    return set != NULL && code != NULL && code_set_position(set, code) >= 0;
}

size_t geo_code_set_count(const geo_code_set *set)
{
    return set != NULL ? set->count : 0;
}

const char *geo_code_set_at(const geo_code_set *set, size_t i)
{
    return set != NULL && i < set->count ? set->codes[i] : NULL;
}

void geo_code_set_destroy(geo_code_set *set)
{
    if (set == NULL)
        return;
    free(set->codes);
    free(set);
}

/* ---- records ------------------------------------------------------------------------------ */

typedef struct record_list {
    geo_area_record *items;
    size_t count, capacity;
} record_list;

static geo_area_record *record_push(record_list *list)
{
    if (list->count == list->capacity) {
        size_t capacity = list->capacity == 0 ? 128 : list->capacity * 2;
        void *grown = realloc(list->items, capacity * sizeof(*list->items));
        if (grown == NULL)
            return NULL;
        list->items = grown;
        list->capacity = capacity;
    }
    geo_area_record *r = &list->items[list->count++];
    memset(r, 0, sizeof(*r));
    return r;
}

static void records_free(geo_area_record *items, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(items[i].name_th);
        free(items[i].name_en);
        free(items[i].geometry_json);
    }
    free(items);
}

void geo_dataset_destroy(geo_dataset *dataset)
{
    if (dataset == NULL)
        return;
    records_free(dataset->provinces, dataset->province_count);
    records_free(dataset->districts, dataset->district_count);
    records_free(dataset->tambons, dataset->tambon_count);
    free(dataset);
}

static int compare_records(const void *a, const void *b)
{
    return strcmp(((const geo_area_record *)a)->code, ((const geo_area_record *)b)->code);
}

static geo_area_record *find_record(geo_area_record *items, size_t count, const char *code)
{
    geo_area_record key;
    snprintf(key.code, sizeof(key.code), "%s", code);
    return bsearch(&key, items, count, sizeof(*items), compare_records);
}

const geo_area_record *geo_dataset_find(const geo_dataset *dataset, geo_level level,
                                        const char *code)
{
    if (dataset == NULL || code == NULL || strlen(code) >= GEO_CODE_MAX)
        return NULL;
    switch (level) {
    case GEO_PROVINCE:
        return find_record(dataset->provinces, dataset->province_count, code);
    case GEO_DISTRICT:
        return find_record(dataset->districts, dataset->district_count, code);
    case GEO_TAMBON:
    default:
        return find_record(dataset->tambons, dataset->tambon_count, code);
    }
}

static char *copy_trimmed(const char *text)
{
    while (*text == ' ' || *text == '\t')
        text++;
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\r'))
        len--;
    if (len > GEO_NAME_MAX)
        len = GEO_NAME_MAX;
    char *copy = malloc(len + 1);
    if (copy != NULL) {
        memcpy(copy, text, len);
        copy[len] = '\0';
    }
    return copy;
}

/* Parses a decimal coordinate; false for "", "None" and anything that is not a number. */
static bool parse_number(const char *text, double *ret_value)
{
    if (text == NULL || text[0] == '\0')
        return false;
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    while (end != NULL && (*end == ' ' || *end == '\t'))
        end++;
    if (errno != 0 || end == text || end == NULL || *end != '\0' || !isfinite(value))
        return false;
    *ret_value = value;
    return true;
}

/* ---- files -------------------------------------------------------------------------------- */

st_code geo_read_file(const char *path, size_t max, char **ret_text, size_t *ret_len, st_error *err)
{
    FILE *file = fopen(path, "rb");
    if (file == NULL)
        return st_fail(err, errno == ENOENT ? ST_NOT_FOUND : ST_IO, "cannot open %s: %s", path,
                       strerror(errno));
    st_code status = ST_OK;
    char *text = NULL;
    struct stat info;
    if (fstat(fileno(file), &info) != 0 || !S_ISREG(info.st_mode)) {
        status = st_fail(err, ST_IO, "%s is not a readable file", path);
        goto cleanup;
    }
    if ((size_t)info.st_size > max) {
        status = st_fail(err, ST_LIMIT, "%s is larger than %zu bytes", path, max);
        goto cleanup;
    }
    size_t size = (size_t)info.st_size;
    text = malloc(size + 1);
    if (text == NULL) {
        status = st_fail(err, ST_NOMEM, "out of memory reading %s", path);
        goto cleanup;
    }
    if (size > 0 && fread(text, 1, size, file) != size) {
        status = st_fail(err, ST_IO, "cannot read %s", path);
        goto cleanup;
    }
    text[size] = '\0';
    *ret_text = text;
    *ret_len = size;
    text = NULL;
cleanup:
    free(text);
    fclose(file);
    return status;
}

typedef struct column_map {
    const char *name;
    long index; /* -1 until the header names it */
} column_map;

/* Maps header names to positions; ST_INVALID naming the first missing column. */
static st_code map_header(geo_csv *csv, const char *file, column_map *columns, size_t count,
                          st_error *err)
{
    size_t fields = 0;
    st_code status = geo_csv_next(csv, &fields, err);
    if (status == ST_NOT_FOUND)
        return st_fail(err, ST_INVALID, "%s is empty", file);
    if (status != ST_OK)
        return status;
    for (size_t c = 0; c < count; c++) {
        columns[c].index = -1;
        for (size_t f = 0; f < fields; f++)
            if (strcmp(geo_csv_field(csv, f), columns[c].name) == 0)
                columns[c].index = (long)f;
        if (columns[c].index < 0)
            return st_fail(err, ST_INVALID, "%s has no column %s", file, columns[c].name);
    }
    return ST_OK;
}

static const char *column(const geo_csv *csv, const column_map *c)
{
    const char *value = geo_csv_field(csv, (size_t)c->index);
    return value != NULL ? value : "";
}

/* Reads one code list into records: code column, Thai and English names, and for tambons the
 * point and postal code. */
static st_code read_code_list(const char *dir, const char *file, geo_level level, record_list *out,
                              st_error *err)
{
    static const char *const code_columns[] = {"CODE", "DISTRICT_CODE", "SUB_DISTRICT_CODE"};
    static const char *const thai_columns[] = {"PROVINCE_THAI", "DISTRICT_THAI",
                                               "SUB_DISTRICT_THAI"};
    static const char *const english_columns[] = {"PROVINCE_ENGLISH", "DISTRICT_ENGLISH",
                                                  "SUB_DISTRICT_ENGLISH"};
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    geo_csv *csv = NULL;
    st_code status = geo_csv_open_file(path, &csv, err);
    if (status != ST_OK)
        return status;
    column_map columns[] = {
        {code_columns[level], -1}, {thai_columns[level], -1}, {english_columns[level], -1},
        {"LATITUDE", -1},          {"LONGITUDE", -1},         {"POSTAL_CODE", -1}};
    size_t column_count = level == GEO_TAMBON ? 6 : 3;
    if ((status = map_header(csv, file, columns, column_count, err)) != ST_OK)
        goto cleanup;
    for (;;) {
        size_t fields = 0;
        status = geo_csv_next(csv, &fields, err);
        if (status == ST_NOT_FOUND) {
            status = ST_OK;
            break;
        }
        if (status != ST_OK) {
            st_wrap(err, file);
            goto cleanup;
        }
        geo_area_record *r = record_push(out);
        if (r == NULL) {
            status = st_fail(err, ST_NOMEM, "out of memory");
            goto cleanup;
        }
        if (geo_code_from_digits(level, column(csv, &columns[0]), r->code, sizeof(r->code), err) !=
            ST_OK) {
            out->count--;
            status = st_fail(err, ST_INVALID, "%s line %zu: the code is not %d digits", file,
                             geo_csv_line(csv), 2 + 2 * (int)level);
            goto cleanup;
        }
        if (level != GEO_PROVINCE)
            snprintf(r->parent_code, sizeof(r->parent_code), "%.*s", level == GEO_DISTRICT ? 4 : 6,
                     r->code);
        r->name_th = copy_trimmed(column(csv, &columns[1]));
        r->name_en = copy_trimmed(column(csv, &columns[2]));
        if (r->name_th == NULL || r->name_en == NULL) {
            status = st_fail(err, ST_NOMEM, "out of memory");
            goto cleanup;
        }
        if (level == GEO_TAMBON) {
            double lat = 0, lon = 0;
            if (parse_number(column(csv, &columns[3]), &lat) &&
                parse_number(column(csv, &columns[4]), &lon)) {
                if (fabs(lat) > 90 || fabs(lon) > 180) {
                    status = st_fail(err, ST_INVALID, "%s line %zu: the point is out of range",
                                     file, geo_csv_line(csv));
                    goto cleanup;
                }
                r->has_centroid = true;
                r->listed_point = true;
                r->centroid_lat = lat;
                r->centroid_lon = lon;
            }
            const char *postal = column(csv, &columns[5]);
            bool digits = strlen(postal) == 5;
            for (size_t i = 0; digits && i < 5; i++)
                digits = postal[i] >= '0' && postal[i] <= '9';
            if (digits)
                snprintf(r->postal_code, sizeof(r->postal_code), "%s", postal);
        }
    }
cleanup:
    geo_csv_destroy(csv);
    return status;
}

/* Area centroid of a Polygon/MultiPolygon: each polygon's outer ring counts positively and
 * its holes negatively, whatever their orientation. False when the area is zero. */
static bool geometry_centroid(const cJSON *geometry, double *ret_lat, double *ret_lon)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(geometry, "type");
    const cJSON *coordinates = cJSON_GetObjectItemCaseSensitive(geometry, "coordinates");
    if (!cJSON_IsString(type) || !cJSON_IsArray(coordinates))
        return false;
    bool multi = strcmp(type->valuestring, "MultiPolygon") == 0;
    double area_sum = 0, x_sum = 0, y_sum = 0;
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetArrayItem(coordinates, 0), 0);
    double ox =
        cJSON_GetNumberValue(cJSON_GetArrayItem(multi ? cJSON_GetArrayItem(first, 0) : first, 0));
    double oy =
        cJSON_GetNumberValue(cJSON_GetArrayItem(multi ? cJSON_GetArrayItem(first, 0) : first, 1));
    if (!isfinite(ox) || !isfinite(oy))
        return false;
    int polygon_count = multi ? cJSON_GetArraySize(coordinates) : 1;
    for (int p = 0; p < polygon_count; p++) {
        const cJSON *polygon = multi ? cJSON_GetArrayItem(coordinates, p) : coordinates;
        int ring_count = cJSON_GetArraySize(polygon);
        for (int r = 0; r < ring_count; r++) {
            const cJSON *ring = cJSON_GetArrayItem(polygon, r);
            int n = cJSON_GetArraySize(ring);
            double a2 = 0, sx = 0, sy = 0;
            for (int i = 0; i < n; i++) {
                const cJSON *p0 = cJSON_GetArrayItem(ring, i == 0 ? n - 1 : i - 1);
                const cJSON *p1 = cJSON_GetArrayItem(ring, i);
                double x0 = cJSON_GetNumberValue(cJSON_GetArrayItem(p0, 0)) - ox;
                double y0 = cJSON_GetNumberValue(cJSON_GetArrayItem(p0, 1)) - oy;
                double x1 = cJSON_GetNumberValue(cJSON_GetArrayItem(p1, 0)) - ox;
                double y1 = cJSON_GetNumberValue(cJSON_GetArrayItem(p1, 1)) - oy;
                double cross = x0 * y1 - x1 * y0;
                a2 += cross;
                sx += (x0 + x1) * cross;
                sy += (y0 + y1) * cross;
            }
            if (a2 == 0 || !isfinite(a2))
                continue;
            double sign = r == 0 ? 1.0 : -1.0;
            double weight = fabs(a2) / 2.0 * sign;
            area_sum += weight;
            x_sum += weight * (sx / (3.0 * a2));
            y_sum += weight * (sy / (3.0 * a2));
        }
    }
    if (area_sum <= 0)
        return false;
    *ret_lon = ox + x_sum / area_sum;
    *ret_lat = oy + y_sum / area_sum;
    return true;
}

/* Reads one boundary file: attaches each feature's geometry to the record of its code, and
 * adds records (with the file's names) for codes the code list lacks. */
static st_code read_boundaries(const char *dir, const char *file, geo_level level, record_list *out,
                               st_error *err)
{
    static const char *const code_keys[] = {"adm1_pcode", "adm2_pcode", "adm3_pcode"};
    static const char *const thai_keys[] = {"adm1_th", "adm2_th", "adm3_th"};
    static const char *const english_keys[] = {"adm1_en", "adm2_en", "adm3_en"};
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    char *text = NULL;
    size_t len = 0;
    cJSON *doc = NULL;
    st_code status = geo_read_file(path, GEOJSON_FILE_MAX, &text, &len, err);
    if (status != ST_OK)
        return status;
    doc = cJSON_ParseWithLength(text, len);
    const cJSON *features = cJSON_GetObjectItemCaseSensitive(doc, "features");
    if (!cJSON_IsArray(features)) {
        status = st_fail(err, ST_INVALID, "%s is not a GeoJSON FeatureCollection", file);
        goto cleanup;
    }
    /* The code list's records are sorted now; new ones are appended and sorted later. */
    size_t listed = out->count;
    int feature_number = 0;
    const cJSON *feature;
    cJSON_ArrayForEach(feature, features)
    {
        feature_number++;
        const cJSON *properties = cJSON_GetObjectItemCaseSensitive(feature, "properties");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(properties, code_keys[level]);
        const cJSON *geometry = cJSON_GetObjectItemCaseSensitive(feature, "geometry");
        if (!cJSON_IsString(code) || !geo_code_valid(level, code->valuestring) ||
            !cJSON_IsObject(geometry)) {
            status = st_fail(err, ST_INVALID, "%s feature %d: no valid %s or geometry", file,
                             feature_number, code_keys[level]);
            goto cleanup;
        }
        geo_area_record *r = find_record(out->items, listed, code->valuestring);
        if (r == NULL) {
            const cJSON *thai = cJSON_GetObjectItemCaseSensitive(properties, thai_keys[level]);
            const cJSON *english =
                cJSON_GetObjectItemCaseSensitive(properties, english_keys[level]);
            if ((r = record_push(out)) == NULL) {
                status = st_fail(err, ST_NOMEM, "out of memory");
                goto cleanup;
            }
            snprintf(r->code, sizeof(r->code), "%s", code->valuestring);
            if (level != GEO_PROVINCE)
                snprintf(r->parent_code, sizeof(r->parent_code), "%.*s",
                         level == GEO_DISTRICT ? 4 : 6, r->code);
            r->name_th = copy_trimmed(cJSON_IsString(thai) ? thai->valuestring : "");
            r->name_en = copy_trimmed(cJSON_IsString(english) ? english->valuestring : "");
            if (r->name_th == NULL || r->name_en == NULL) {
                status = st_fail(err, ST_NOMEM, "out of memory");
                goto cleanup;
            }
        }
        if (r->geometry_json != NULL) {
            status = st_fail(err, ST_INVALID, "%s: %s has two features", file, r->code);
            goto cleanup;
        }
        r->geometry_json = cJSON_PrintUnformatted(geometry);
        if (r->geometry_json == NULL) {
            status = st_fail(err, ST_NOMEM, "out of memory");
            goto cleanup;
        }
        r->geometry_len = strlen(r->geometry_json);
        double lat = 0, lon = 0;
        if (!r->has_centroid && geometry_centroid(geometry, &lat, &lon)) {
            r->has_centroid = true;
            r->centroid_lat = lat;
            r->centroid_lon = lon;
        }
    }
cleanup:
    cJSON_Delete(doc);
    free(text);
    return status;
}

static st_code hash_files(const char *dir, char out[65], st_error *err)
{
    static const char *const files[] = {
        GEO_FILE_PROVINCES,           GEO_FILE_DISTRICTS,           GEO_FILE_TAMBONS,
        GEO_FILE_PROVINCE_BOUNDARIES, GEO_FILE_DISTRICT_BOUNDARIES, GEO_FILE_TAMBON_BOUNDARIES,
    };
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    st_code status = ST_OK;
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        status = st_fail(err, ST_INTERNAL, "SHA-256 is unavailable");
        goto cleanup;
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[4096], *text = NULL;
        size_t len = 0;
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        if ((status = geo_read_file(path, GEOJSON_FILE_MAX, &text, &len, err)) != ST_OK)
            goto cleanup;
        /* name, length, bytes: moving bytes between files changes the digest too */
        char head[128];
        int head_len = snprintf(head, sizeof(head), "%s\n%zu\n", files[i], len);
        int ok = EVP_DigestUpdate(ctx, head, (size_t)head_len) == 1 &&
                 EVP_DigestUpdate(ctx, text, len) == 1;
        free(text);
        if (!ok) {
            status = st_fail(err, ST_INTERNAL, "SHA-256 failed");
            goto cleanup;
        }
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (EVP_DigestFinal_ex(ctx, digest, &digest_len) != 1 || digest_len != 32) {
        status = st_fail(err, ST_INTERNAL, "SHA-256 failed");
        goto cleanup;
    }
    for (unsigned int i = 0; i < digest_len; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
cleanup:
    EVP_MD_CTX_free(ctx);
    return status;
}

static st_code check_parents(const record_list *children, const record_list *parents,
                             const char *what, st_error *err)
{
    for (size_t i = 0; i < children->count; i++) {
        const geo_area_record *r = &children->items[i];
        if (find_record(parents->items, parents->count, r->parent_code) == NULL)
            return st_fail(err, ST_INVALID, "%s %s has no parent %s", what, r->code,
                           r->parent_code);
    }
    return ST_OK;
}

static st_code sort_records(record_list *list, const char *what, st_error *err)
{
    if (list->count > 1)
        qsort(list->items, list->count, sizeof(*list->items), compare_records);
    for (size_t i = 1; i < list->count; i++)
        if (strcmp(list->items[i - 1].code, list->items[i].code) == 0)
            return st_fail(err, ST_INVALID, "%s %s is listed twice", what, list->items[i].code);
    return ST_OK;
}

st_code geo_dataset_load(const char *dir, geo_dataset **ret_dataset, st_error *err)
{
    record_list provinces = {0}, districts = {0}, tambons = {0};
    geo_dataset *dataset = calloc(1, sizeof(*dataset));
    st_code status = ST_OK;
    if (dataset == NULL)
        return st_fail(err, ST_NOMEM, "out of memory");
    if ((status = hash_files(dir, dataset->sha256_hex, err)) != ST_OK ||
        (status = read_code_list(dir, GEO_FILE_PROVINCES, GEO_PROVINCE, &provinces, err)) !=
            ST_OK ||
        (status = read_code_list(dir, GEO_FILE_DISTRICTS, GEO_DISTRICT, &districts, err)) !=
            ST_OK ||
        (status = read_code_list(dir, GEO_FILE_TAMBONS, GEO_TAMBON, &tambons, err)) != ST_OK ||
        (status = sort_records(&provinces, "province", err)) != ST_OK ||
        (status = sort_records(&districts, "district", err)) != ST_OK ||
        (status = sort_records(&tambons, "tambon", err)) != ST_OK)
        goto cleanup;
    if ((status = read_boundaries(dir, GEO_FILE_PROVINCE_BOUNDARIES, GEO_PROVINCE, &provinces,
                                  err)) != ST_OK ||
        (status = read_boundaries(dir, GEO_FILE_DISTRICT_BOUNDARIES, GEO_DISTRICT, &districts,
                                  err)) != ST_OK ||
        (status = read_boundaries(dir, GEO_FILE_TAMBON_BOUNDARIES, GEO_TAMBON, &tambons, err)) !=
            ST_OK ||
        (status = sort_records(&provinces, "province", err)) != ST_OK ||
        (status = sort_records(&districts, "district", err)) != ST_OK ||
        (status = sort_records(&tambons, "tambon", err)) != ST_OK ||
        (status = check_parents(&districts, &provinces, "district", err)) != ST_OK ||
        (status = check_parents(&tambons, &districts, "tambon", err)) != ST_OK)
        goto cleanup;
    dataset->provinces = provinces.items;
    dataset->province_count = provinces.count;
    dataset->districts = districts.items;
    dataset->district_count = districts.count;
    dataset->tambons = tambons.items;
    dataset->tambon_count = tambons.count;
    *ret_dataset = dataset;
    return ST_OK;
cleanup:
    records_free(provinces.items, provinces.count);
    records_free(districts.items, districts.count);
    records_free(tambons.items, tambons.count);
    free(dataset);
    return status;
}

/* ---- station directories ------------------------------------------------------------------ */

void geo_station_list_destroy(geo_station_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].name_th);
        free(list->items[i].name_en);
        free(list->items[i].tambons);
    }
    free(list->items);
    free(list);
}

static void problem(geo_problems *problems, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(geo_problems *problems, size_t line, const char *fmt, ...)
{
    problems->total++;
    if (problems->kept == GEO_PROBLEMS_KEPT)
        return;
    geo_problem *p = &problems->items[problems->kept++];
    p->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->message, sizeof(p->message), fmt, ap);
    va_end(ap);
}

/* Well-formed UTF-8 without control characters (names go to PostgreSQL and to LINE). */
static bool utf8_text(const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    while (*s != '\0') {
        unsigned char c = *s;
        size_t extra = 0;
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c < 0x80)
            extra = 0;
        else if ((c & 0xe0) == 0xc0 && c >= 0xc2)
            extra = 1;
        else if ((c & 0xf0) == 0xe0)
            extra = 2;
        else if ((c & 0xf8) == 0xf0 && c <= 0xf4)
            extra = 3;
        else
            return false;
        for (size_t i = 1; i <= extra; i++)
            if ((s[i] & 0xc0) != 0x80)
                return false;
        s += extra + 1;
    }
    return true;
}

/* Accepts "TH" + digits or the digits alone; writes the prefixed code. */
static bool normalise_code(geo_level level, const char *text, char out[GEO_CODE_MAX])
{
    if (strncmp(text, "TH", 2) == 0) {
        if (!geo_code_valid(level, text))
            return false;
        snprintf(out, GEO_CODE_MAX, "%s", text);
        return true;
    }
    return geo_code_from_digits(level, text, out, GEO_CODE_MAX, NULL) == ST_OK;
}

enum {
    COL_ID,
    COL_NAME_TH,
    COL_NAME_EN,
    COL_LAT,
    COL_LON,
    COL_DISTRICT,
    COL_TAMBONS,
    COL_PROVINCE,
    COL_PHONE,
    COL_COUNT
};

/* Validates one row into r (its strings allocated); problems recorded, false when any. */
static bool station_row(const geo_csv *csv, const long *columns, const geo_code_set *districts,
                        const geo_code_set *tambons, size_t *claimed_by, size_t row_number,
                        const geo_station_list *list, geo_station_record *r, geo_problems *problems)
{
    size_t line = geo_csv_line(csv);
    size_t before = problems->total;
    const char *values[COL_COUNT];
    for (int c = 0; c < COL_COUNT; c++) {
        const char *v = columns[c] >= 0 ? geo_csv_field(csv, (size_t)columns[c]) : "";
        values[c] = v != NULL ? v : "";
    }
    r->line = line;
    const char *id = values[COL_ID];
    size_t id_len = strlen(id);
    bool id_ok = id_len >= 1 && id_len <= GEO_STATION_ID_MAX;
    for (size_t i = 0; id_ok && i < id_len; i++)
        id_ok = (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
                (id[i] >= '0' && id[i] <= '9') || id[i] == '-' || id[i] == '_' || id[i] == '.';
    if (!id_ok)
        problem(problems, line, "id must be 1..%d characters of A-Z a-z 0-9 . _ -",
                GEO_STATION_ID_MAX);
    else
        snprintf(r->id, sizeof(r->id), "%s", id);

    size_t th_len = strlen(values[COL_NAME_TH]), en_len = strlen(values[COL_NAME_EN]);
    if (th_len == 0 || th_len > GEO_NAME_MAX || !utf8_text(values[COL_NAME_TH]))
        problem(problems, line, "name_th must be 1..%d bytes of UTF-8 text", GEO_NAME_MAX);
    if (en_len > GEO_NAME_MAX || !utf8_text(values[COL_NAME_EN]))
        problem(problems, line, "name_en must be at most %d bytes of UTF-8 text", GEO_NAME_MAX);

    double lat = 0, lon = 0;
    if (!parse_number(values[COL_LAT], &lat) || lat < 5.0 || lat > 21.0)
        problem(problems, line, "lat must be a number between 5 and 21 (Thailand)");
    if (!parse_number(values[COL_LON], &lon) || lon < 97.0 || lon > 106.0)
        problem(problems, line, "lon must be a number between 97 and 106 (Thailand)");
    r->lat = lat;
    r->lon = lon;

    if (!normalise_code(GEO_DISTRICT, values[COL_DISTRICT], r->district_code))
        problem(problems, line, "district_code must be TH + 4 digits");
    else if (!geo_code_set_has(districts, r->district_code))
        problem(problems, line, "district_code %s is not a known district", r->district_code);
    snprintf(r->province_code, sizeof(r->province_code), "%.4s", r->district_code);
    if (values[COL_PROVINCE][0] != '\0') {
        char province[GEO_CODE_MAX];
        if (!normalise_code(GEO_PROVINCE, values[COL_PROVINCE], province))
            problem(problems, line, "province_code must be TH + 2 digits");
        else if (r->district_code[0] != '\0' && strcmp(province, r->province_code) != 0)
            problem(problems, line, "province_code %s is not the province of district %s", province,
                    r->district_code);
    }

    const char *phone = values[COL_PHONE];
    bool phone_ok = strlen(phone) < GEO_PHONE_MAX;
    for (const char *p = phone; phone_ok && *p != '\0'; p++)
        phone_ok = (*p >= '0' && *p <= '9') || *p == ' ' || *p == '+' || *p == '-' || *p == '(' ||
                   *p == ')';
    if (!phone_ok)
        problem(problems, line, "phone must be at most %d characters of 0-9 + - ( ) and space",
                GEO_PHONE_MAX - 1);
    else
        snprintf(r->phone, sizeof(r->phone), "%s", phone);

    /* Tambons: ';', ',' or blanks between codes. */
    const char *cursor = values[COL_TAMBONS];
    size_t capacity = 0;
    while (*cursor != '\0') {
        size_t skip = strspn(cursor, "; ,\t");
        cursor += skip;
        size_t len = strcspn(cursor, "; ,\t");
        if (len == 0)
            break;
        char token[GEO_CODE_MAX + 1] = "", code[GEO_CODE_MAX] = "";
        if (len < sizeof(token))
            memcpy(token, cursor, len);
        cursor += len;
        if (len >= sizeof(token) || !normalise_code(GEO_TAMBON, token, code)) {
            problem(problems, line, "\"%.*s\" in tambons is not a tambon code",
                    (int)(len < 16 ? len : 16), cursor - len);
            continue;
        }
        long position = code_set_position(tambons, code);
        if (position < 0) {
            problem(problems, line, "tambon %s is not a known tambon", code);
            continue;
        }
        if (claimed_by[position] != 0) {
            const geo_station_record *other =
                row_number + 1 == claimed_by[position] ? r : &list->items[claimed_by[position] - 1];
            problem(problems, line, "tambon %s already belongs to the station of line %zu", code,
                    other->line);
            continue;
        }
        if (r->tambon_count == capacity) {
            capacity = capacity == 0 ? 8 : capacity * 2;
            void *grown = realloc(r->tambons, capacity * sizeof(*r->tambons));
            if (grown == NULL) {
                problem(problems, line, "out of memory");
                break;
            }
            r->tambons = grown;
        }
        snprintf(r->tambons[r->tambon_count++], GEO_CODE_MAX, "%s", code);
        claimed_by[position] = row_number + 1;
    }
    if (r->tambon_count == 0 && values[COL_TAMBONS][0] == '\0')
        problem(problems, line, "tambons is empty: a station answers for at least one tambon");

    r->name_th = malloc(th_len + 1);
    r->name_en = malloc(en_len + 1);
    if (r->name_th == NULL || r->name_en == NULL) {
        problem(problems, line, "out of memory");
    } else {
        memcpy(r->name_th, values[COL_NAME_TH], th_len + 1);
        memcpy(r->name_en, values[COL_NAME_EN], en_len + 1);
    }
    return problems->total == before;
}

static int compare_ids(const void *a, const void *b)
{
    const geo_station_record *const *x = a, *const *y = b;
    int order = strcmp((*x)->id, (*y)->id);
    return order != 0 ? order : ((*x)->line > (*y)->line) - ((*x)->line < (*y)->line);
}

st_code geo_stations_parse(const char *text, size_t len, const geo_code_set *districts,
                           const geo_code_set *tambons, geo_station_list **ret_list,
                           geo_problems *problems, st_error *err)
{
    static const char *const names[COL_COUNT] = {"id",      "name_th",       "name_en",
                                                 "lat",     "lon",           "district_code",
                                                 "tambons", "province_code", "phone"};
    static const bool required[COL_COUNT] = {true, true, true,  true, true,
                                             true, true, false, false};
    memset(problems, 0, sizeof(*problems));
    geo_csv *csv = NULL;
    geo_station_list *list = calloc(1, sizeof(*list));
    size_t *claimed_by = calloc(geo_code_set_count(tambons) + 1, sizeof(size_t));
    const geo_station_record **by_id = NULL;
    size_t capacity = 0;
    st_code status = ST_OK;
    if (list == NULL || claimed_by == NULL) {
        status = st_fail(err, ST_NOMEM, "out of memory");
        goto cleanup;
    }
    if ((status = geo_csv_open_text(text, len, &csv, err)) != ST_OK)
        goto cleanup;

    size_t fields = 0;
    long columns[COL_COUNT];
    status = geo_csv_next(csv, &fields, err);
    if (status == ST_NOT_FOUND) {
        problem(problems, 0, "the file is empty: a header row is needed");
    } else if (status != ST_OK) {
        problem(problems, geo_csv_line(csv), "%s", err != NULL ? err->message : "bad header");
    } else {
        for (int c = 0; c < COL_COUNT; c++) {
            columns[c] = -1;
            for (size_t f = 0; f < fields; f++)
                if (strcmp(geo_csv_field(csv, f), names[c]) == 0)
                    columns[c] = (long)f;
            if (columns[c] < 0 && required[c])
                problem(problems, geo_csv_line(csv), "the header has no column %s", names[c]);
        }
    }
    if (problems->total > 0)
        goto finish;

    for (;;) {
        st_error row_err = {0};
        status = geo_csv_next(csv, &fields, &row_err);
        if (status == ST_NOT_FOUND)
            break;
        if (status == ST_NOMEM) {
            st_fail(err, ST_NOMEM, "out of memory");
            goto cleanup;
        }
        if (status != ST_OK) {
            /* The reader's message begins "line N: "; the problem carries the line itself. */
            const char *message = row_err.message;
            const char *after = strstr(message, ": ");
            if (strncmp(message, "line ", 5) == 0 && after != NULL)
                message = after + 2;
            problem(problems, geo_csv_line(csv), "%s", message);
            continue;
        }
        if (list->count == capacity) {
            capacity = capacity == 0 ? 256 : capacity * 2;
            void *grown = realloc(list->items, capacity * sizeof(*list->items));
            if (grown == NULL) {
                status = st_fail(err, ST_NOMEM, "out of memory");
                goto cleanup;
            }
            list->items = grown;
        }
        geo_station_record *r = &list->items[list->count];
        memset(r, 0, sizeof(*r));
        list->count++;
        station_row(csv, columns, districts, tambons, claimed_by, list->count - 1, list, r,
                    problems);
    }
    if (list->count == 0)
        problem(problems, 0, "the file has no station");

    /* Repeated ids, reported on the later line. */
    by_id = malloc((list->count + 1) * sizeof(*by_id));
    if (by_id == NULL) {
        status = st_fail(err, ST_NOMEM, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < list->count; i++)
        by_id[i] = &list->items[i];
    if (list->count > 1)
        qsort(by_id, list->count, sizeof(*by_id), compare_ids);
    for (size_t i = 1; i < list->count; i++)
        if (by_id[i]->id[0] != '\0' && strcmp(by_id[i - 1]->id, by_id[i]->id) == 0)
            problem(problems, by_id[i]->line, "id %s is already used on line %zu", by_id[i]->id,
                    by_id[i - 1]->line);

    /* Every known tambon answers to some station. */
    size_t missing = 0;
    char examples[120] = "";
    for (size_t i = 0; i < geo_code_set_count(tambons); i++) {
        if (claimed_by[i] != 0)
            continue;
        if (missing++ < 5) {
            size_t used = strlen(examples);
            snprintf(examples + used, sizeof(examples) - used, "%s%s", used > 0 ? " " : "",
                     geo_code_set_at(tambons, i));
        }
    }
    if (missing > 0 && list->count > 0)
        problem(problems, 0, "%zu tambon%s belong to no station (%s%s)", missing,
                missing == 1 ? "" : "s", examples, missing > 5 ? " ..." : "");

finish:
    if (problems->total > 0) {
        status = st_fail(err, ST_INVALID, "the station directory has %zu problem%s",
                         problems->total, problems->total == 1 ? "" : "s");
        goto cleanup;
    }
    status = ST_OK;
    *ret_list = list;
    list = NULL;
cleanup:
    free(by_id);
    free(claimed_by);
    geo_csv_destroy(csv);
    geo_station_list_destroy(list);
    return status;
}

/* ---- indexes from files ------------------------------------------------------------------ */

st_code geo_index_from_dataset(const geo_dataset *dataset, const geo_station_list *stations,
                               int64_t version, geo_index **ret_index, st_error *err)
{
    geo_builder *b = NULL;
    st_code status = geo_builder_create(&b, err);
    for (size_t i = 0; status == ST_OK && i < dataset->province_count; i++)
        status =
            geo_builder_add_province(b, dataset->provinces[i].code, dataset->provinces[i].name_th,
                                     dataset->provinces[i].name_en, err);
    for (size_t i = 0; status == ST_OK && i < dataset->district_count; i++)
        status =
            geo_builder_add_district(b, dataset->districts[i].code, dataset->districts[i].name_th,
                                     dataset->districts[i].name_en, err);
    for (size_t i = 0; status == ST_OK && i < dataset->tambon_count; i++) {
        const geo_area_record *t = &dataset->tambons[i];
        status = geo_builder_add_tambon(b, t->code, t->name_th, t->name_en, t->geometry_json,
                                        t->geometry_len, err);
    }
    for (size_t i = 0; stations != NULL && status == ST_OK && i < stations->count; i++) {
        const geo_station_record *s = &stations->items[i];
        status = geo_builder_add_station(b, s->id, s->name_th, s->name_en, s->phone, s->lat, s->lon,
                                         s->district_code, err);
        for (size_t k = 0; status == ST_OK && k < s->tambon_count; k++)
            status = geo_builder_assign(b, s->tambons[k], s->id, err);
    }
    if (status != ST_OK) {
        geo_builder_destroy(b);
        return status;
    }
    return geo_builder_finish(b, version, ret_index, err);
}

st_code geo_dataset_code_sets(const geo_dataset *dataset, geo_code_set **ret_districts,
                              geo_code_set **ret_tambons, st_error *err)
{
    geo_code_set *districts = NULL, *tambons = NULL;
    st_code status = geo_code_set_create(&districts, err);
    if (status == ST_OK)
        status = geo_code_set_create(&tambons, err);
    for (size_t i = 0; status == ST_OK && i < dataset->district_count; i++)
        status = geo_code_set_add(districts, dataset->districts[i].code, err);
    for (size_t i = 0; status == ST_OK && i < dataset->tambon_count; i++)
        status = geo_code_set_add(tambons, dataset->tambons[i].code, err);
    if (status != ST_OK) {
        geo_code_set_destroy(districts);
        geo_code_set_destroy(tambons);
        return status;
    }
    geo_code_set_seal(districts);
    geo_code_set_seal(tambons);
    *ret_districts = districts;
    *ret_tambons = tambons;
    return ST_OK;
}

st_code geo_index_load_dir(const char *dir, geo_index **ret_index, st_error *err)
{
    geo_dataset *dataset = NULL;
    geo_code_set *districts = NULL, *tambons = NULL;
    geo_station_list *stations = NULL;
    char *text = NULL;
    size_t len = 0;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, GEO_FILE_STATIONS);
    st_code status = geo_dataset_load(dir, &dataset, err);
    if (status == ST_OK)
        status = geo_dataset_code_sets(dataset, &districts, &tambons, err);
    if (status == ST_OK)
        status = geo_read_file(path, GEO_CSV_FILE_MAX, &text, &len, err);
    if (status == ST_OK) {
        geo_problems *problems = malloc(sizeof(*problems));
        if (problems == NULL) {
            status = st_fail(err, ST_NOMEM, "out of memory");
        } else {
            status = geo_stations_parse(text, len, districts, tambons, &stations, problems, err);
            if (status == ST_INVALID && problems->kept > 0)
                st_fail(err, ST_INVALID, "%s line %zu: %s", GEO_FILE_STATIONS,
                        problems->items[0].line, problems->items[0].message);
            free(problems);
        }
    }
    if (status == ST_OK)
        status = geo_index_from_dataset(dataset, stations, 0, ret_index, err);
    free(text);
    geo_station_list_destroy(stations);
    geo_code_set_destroy(districts);
    geo_code_set_destroy(tambons);
    geo_dataset_destroy(dataset);
    return status;
}
