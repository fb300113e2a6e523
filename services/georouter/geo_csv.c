/* geo_csv: an RFC 4180 reader that knows its line numbers, so a directory import can say
 * "line 17: ..." for every bad row. The whole text is held in memory (bounded), each record
 * is unquoted into a buffer of its own. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "geo.h"

struct geo_csv {
    char *text; /* owned copy */
    size_t len;
    size_t pos;
    size_t line;        /* line of pos (1-based) */
    size_t record_line; /* line where the current record started */
    char *record;       /* unquoted fields, NUL-separated */
    size_t offsets[GEO_CSV_FIELDS_MAX];
    size_t field_count;
};

static st_code open_owned(char *text, size_t len, geo_csv **ret_csv, st_error *err)
{
    geo_csv *csv = calloc(1, sizeof(*csv));
    char *record = malloc(GEO_CSV_RECORD_MAX + 1);
    if (csv == NULL || record == NULL) {
        free(csv);
        free(record);
        free(text);
        return st_fail(err, ST_NOMEM, "out of memory reading CSV");
    }
    csv->text = text;
    csv->len = len;
    csv->line = 1;
    csv->record = record;
    /* A UTF-8 byte-order mark is not part of the first field. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        csv->pos = 3;
    *ret_csv = csv;
    return ST_OK;
}

st_code geo_csv_open_text(const char *text, size_t len, geo_csv **ret_csv, st_error *err)
{
    if (text == NULL && len > 0)
        return st_fail(err, ST_INVALID, "CSV text is missing");
    if (len > GEO_CSV_FILE_MAX)
        return st_fail(err, ST_LIMIT, "CSV text is larger than %zu bytes", GEO_CSV_FILE_MAX);
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return st_fail(err, ST_NOMEM, "out of memory reading CSV");
    if (len > 0)
        memcpy(copy, text, len);
    copy[len] = '\0';
    return open_owned(copy, len, ret_csv, err);
}

st_code geo_csv_open_file(const char *path, geo_csv **ret_csv, st_error *err)
{
    FILE *file = fopen(path, "rb");
    char *text = NULL;
    st_code status = ST_OK;
    if (file == NULL)
        return st_fail(err, errno == ENOENT ? ST_NOT_FOUND : ST_IO, "cannot open %s: %s", path,
                       strerror(errno));
    struct stat info;
    if (fstat(fileno(file), &info) != 0 || !S_ISREG(info.st_mode)) {
        status = st_fail(err, ST_IO, "%s is not a readable file", path);
        goto cleanup;
    }
    if ((size_t)info.st_size > GEO_CSV_FILE_MAX) {
        status = st_fail(err, ST_LIMIT, "%s is larger than %zu bytes", path, GEO_CSV_FILE_MAX);
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
    status = open_owned(text, size, ret_csv, err);
    text = NULL; /* owned by the reader now, or freed by open_owned */
cleanup:
    free(text);
    fclose(file);
    return status;
}

/* Skips to the character after the next line end (used after a broken record). */
static void skip_line(geo_csv *csv)
{
    while (csv->pos < csv->len && csv->text[csv->pos] != '\n')
        csv->pos++;
    if (csv->pos < csv->len) {
        csv->pos++;
        csv->line++;
    }
}

st_code geo_csv_next(geo_csv *csv, size_t *ret_field_count, st_error *err)
{
    /* Blank lines (also "\r\n" alone) are not records. */
    for (;;) {
        if (csv->pos >= csv->len)
            return ST_NOT_FOUND;
        char c = csv->text[csv->pos];
        if (c == '\n') {
            csv->pos++;
            csv->line++;
        } else if (c == '\r' && csv->pos + 1 < csv->len && csv->text[csv->pos + 1] == '\n') {
            csv->pos += 2;
            csv->line++;
        } else {
            break;
        }
    }
    csv->record_line = csv->line;
    size_t used = 0, fields = 0;
    csv->offsets[fields++] = 0;
    bool quoted = false, after_quote = false, field_start = true;
    for (;;) {
        if (csv->pos >= csv->len) {
            if (quoted) {
                st_fail(err, ST_INVALID, "line %zu: a quoted field is not closed",
                        csv->record_line);
                return ST_INVALID;
            }
            break;
        }
        char c = csv->text[csv->pos++];
        if (quoted) {
            if (c == '"') {
                if (csv->pos < csv->len && csv->text[csv->pos] == '"') {
                    csv->pos++;
                } else {
                    quoted = false;
                    after_quote = true;
                    continue;
                }
            } else if (c == '\n') {
                csv->line++;
            }
        } else if (c == ',') {
            if (fields == GEO_CSV_FIELDS_MAX) {
                st_fail(err, ST_LIMIT, "line %zu: more than %d fields", csv->record_line,
                        GEO_CSV_FIELDS_MAX);
                skip_line(csv);
                return ST_LIMIT;
            }
            csv->record[used++] = '\0';
            csv->offsets[fields++] = used;
            field_start = true;
            after_quote = false;
            continue;
        } else if (c == '\n' || (c == '\r' && csv->pos < csv->len && csv->text[csv->pos] == '\n')) {
            if (c == '\r')
                csv->pos++;
            csv->line++;
            break;
        } else if (c == '"' && field_start) {
            quoted = true;
            field_start = false;
            continue;
        } else if (after_quote) {
            st_fail(err, ST_INVALID, "line %zu: text after the closing quote of field %zu",
                    csv->record_line, fields);
            skip_line(csv);
            return ST_INVALID;
        } else if (c == '"') {
            st_fail(err, ST_INVALID, "line %zu: a quote inside an unquoted field %zu",
                    csv->record_line, fields);
            skip_line(csv);
            return ST_INVALID;
        }
        field_start = false;
        if (c == '\0') {
            st_fail(err, ST_INVALID, "line %zu: a NUL byte in field %zu", csv->record_line, fields);
            skip_line(csv);
            return ST_INVALID;
        }
        if (used + 1 >= GEO_CSV_RECORD_MAX) {
            st_fail(err, ST_LIMIT, "line %zu: the record is longer than %d bytes", csv->record_line,
                    GEO_CSV_RECORD_MAX);
            if (quoted) {
                /* Resynchronise after the closing quote is impossible to know: stop here. */
                csv->pos = csv->len;
            } else {
                skip_line(csv);
            }
            return ST_LIMIT;
        }
        csv->record[used++] = c;
    }
    csv->record[used] = '\0';
    csv->field_count = fields;
    *ret_field_count = fields;
    return ST_OK;
}

const char *geo_csv_field(const geo_csv *csv, size_t i)
{
    if (csv == NULL || i >= csv->field_count)
        return NULL;
    return csv->record + csv->offsets[i];
}

size_t geo_csv_line(const geo_csv *csv)
{
    return csv != NULL ? csv->record_line : 0;
}

void geo_csv_destroy(geo_csv *csv)
{
    if (csv == NULL)
        return;
    free(csv->text);
    free(csv->record);
    free(csv);
}
