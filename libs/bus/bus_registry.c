/* bus_registry: parses proto/registry.json into bus_stream_def / bus_consumer_def tables.
 *
 * The registry is the contract between services, so the parser is strict: unknown keys,
 * wrong types, impossible limits and dangling references are all ST_INVALID with a message
 * that names the entry, so a typo fails the build's unit tests instead of a deployment. */
#include "bus.h"
#include "bus_internal.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ess_embedded.h"

extern const ess_embedded_file ess_proto_files[];
extern const size_t ess_proto_files_count;

/* Why these bounds: the registry is a small hand-written file; anything bigger is a mistake. */
#define REGISTRY_DOC_MAX (1024 * 1024)
#define REGISTRY_STREAMS_MAX 64
#define REGISTRY_CONSUMERS_MAX 256
#define REGISTRY_VERSION 1
#define DEFAULT_DUPLICATE_WINDOW_MS (2 * 60 * 1000) /* JetStream's own default */
#define DURATION_TEXT_MAX 32

/* ---- names and subjects (shared with bus.c through bus_internal.h) ---------------------- */

bool bus_name_valid(const char *name)
{
    size_t len = strnlen(name, BUS_NAME_MAX);
    if (len == 0 || len >= BUS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool bus_subject_valid(const char *subject, bool allow_wildcards)
{
    size_t len = strnlen(subject, BUS_SUBJECT_MAX);
    if (len == 0 || len >= BUS_SUBJECT_MAX)
        return false;
    size_t token_start = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = subject[i];
        if (c == '.' || c == '\0') {
            size_t token_len = i - token_start;
            if (token_len == 0)
                return false; /* "a..b", ".a", "a." */
            const char *token = subject + token_start;
            bool wildcard = token_len == 1 && (token[0] == '*' || token[0] == '>');
            if (wildcard && !allow_wildcards)
                return false;
            if (token_len == 1 && token[0] == '>' && c != '\0')
                return false; /* '>' only as the last token */
            for (size_t k = 0; k < token_len && !wildcard; k++)
                if (token[k] == '*' || token[k] == '>')
                    return false; /* "a*" is not a wildcard and not a valid literal */
            token_start = i + 1;
            continue;
        }
        if ((unsigned char)c <= ' ' || c == 0x7f)
            return false; /* whitespace and control characters split the protocol line */
    }
    return true;
}

/* Splits the next token of *cursor (NUL- or '.'-terminated); returns its length. */
static size_t next_token(const char **cursor, const char **ret_token)
{
    const char *start = *cursor;
    const char *end = start;
    while (*end != '\0' && *end != '.')
        end++;
    *ret_token = start;
    *cursor = (*end == '.') ? end + 1 : end;
    return (size_t)(end - start);
}

static bool token_is(const char *token, size_t len, char wildcard)
{
    return len == 1 && token[0] == wildcard;
}

bool bus_subjects_overlap(const char *a, const char *b)
{
    for (;;) {
        bool a_done = *a == '\0', b_done = *b == '\0';
        if (a_done || b_done)
            return a_done && b_done;
        const char *ta, *tb;
        size_t la = next_token(&a, &ta), lb = next_token(&b, &tb);
        if (token_is(ta, la, '>') || token_is(tb, lb, '>'))
            return true;
        if (token_is(ta, la, '*') || token_is(tb, lb, '*'))
            continue;
        if (la != lb || memcmp(ta, tb, la) != 0)
            return false;
    }
}

bool bus_subject_within(const char *subject, const char *pattern)
{
    for (;;) {
        bool s_done = *subject == '\0', p_done = *pattern == '\0';
        if (s_done || p_done)
            return s_done && p_done;
        const char *ts, *tp;
        size_t ls = next_token(&subject, &ts), lp = next_token(&pattern, &tp);
        if (token_is(tp, lp, '>'))
            return true; /* both have at least one token left here */
        if (token_is(ts, ls, '>'))
            return false; /* subject reaches further than a non-'>' pattern token */
        if (token_is(tp, lp, '*'))
            continue;
        if (token_is(ts, ls, '*'))
            return false;
        if (ls != lp || memcmp(ts, tp, ls) != 0)
            return false;
    }
}

/* ---- durations and sizes ------------------------------------------------------------------ */

st_code bus_duration_parse(const char *text, int64_t *ret_ms)
{
    size_t len = strnlen(text, DURATION_TEXT_MAX);
    if (len == 0 || len >= DURATION_TEXT_MAX)
        return ST_INVALID;
    size_t digits = 0;
    int64_t value = 0;
    while (digits < len && text[digits] >= '0' && text[digits] <= '9') {
        int digit = text[digits] - '0';
        if (value > (INT64_MAX - digit) / 10)
            return ST_INVALID;
        value = value * 10 + digit;
        digits++;
    }
    if (digits == 0)
        return ST_INVALID;
    const char *unit = text + digits;
    int64_t unit_ms;
    if (strcmp(unit, "ms") == 0)
        unit_ms = 1;
    else if (strcmp(unit, "s") == 0)
        unit_ms = 1000;
    else if (strcmp(unit, "m") == 0)
        unit_ms = 60 * 1000;
    else if (strcmp(unit, "h") == 0)
        unit_ms = 60 * 60 * 1000;
    else if (strcmp(unit, "d") == 0)
        unit_ms = 24 * 60 * 60 * 1000;
    else if (unit[0] == '\0' && value == 0)
        unit_ms = 1; /* a bare "0" is unambiguous */
    else
        return ST_INVALID;
    /* Durations travel to JetStream in nanoseconds: keep value*unit*1e6 within int64. */
    if (value > INT64_MAX / 1000000 / unit_ms)
        return ST_INVALID;
    *ret_ms = value * unit_ms;
    return ST_OK;
}

/* ---- the parser --------------------------------------------------------------------------- */

typedef struct parse_ctx {
    st_error *err;
    char entry[96]; /* "stream 'LINE_IN'" / "consumer #3": prefixed to every message */
} parse_ctx;

static st_code fail_entry(parse_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static st_code fail_entry(parse_ctx *ctx, const char *fmt, ...)
{
    char detail[ST_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    return st_fail(ctx->err, ST_INVALID, "registry: %s: %s", ctx->entry, detail);
}

static st_code check_keys(parse_ctx *ctx, const cJSON *object, const char *const *known)
{
    for (const cJSON *item = object->child; item != NULL; item = item->next) {
        bool found = false;
        for (size_t i = 0; known[i] != NULL && !found; i++)
            found = item->string != NULL && strcmp(item->string, known[i]) == 0;
        if (!found)
            return fail_entry(ctx, "unknown key '%.40s'", item->string ? item->string : "");
        /* cJSON keeps both copies of a repeated key and lookups see the first: refuse. */
        for (const cJSON *other = object->child; other != item; other = other->next)
            if (strcmp(other->string, item->string) == 0)
                return fail_entry(ctx, "key '%.40s' appears twice", item->string);
    }
    return ST_OK;
}

/* Copies a string member into out (size out_size). required=false accepts a missing key
 * (leaves out empty). */
static st_code get_string(parse_ctx *ctx, const cJSON *object, const char *key, bool required,
                          char *out, size_t out_size)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    out[0] = '\0';
    if (item == NULL) {
        if (required)
            return fail_entry(ctx, "'%s' is missing", key);
        return ST_OK;
    }
    if (!cJSON_IsString(item) || item->valuestring == NULL)
        return fail_entry(ctx, "'%s' must be a string", key);
    size_t len = strlen(item->valuestring);
    if (len >= out_size)
        return fail_entry(ctx, "'%s' is longer than %zu bytes", key, out_size - 1);
    memcpy(out, item->valuestring, len + 1);
    return ST_OK;
}

static st_code get_duration(parse_ctx *ctx, const cJSON *object, const char *key, bool required,
                            int64_t default_ms, int64_t *ret_ms)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    if (item == NULL) {
        if (required)
            return fail_entry(ctx, "'%s' is missing", key);
        *ret_ms = default_ms;
        return ST_OK;
    }
    if (!cJSON_IsString(item) || item->valuestring == NULL)
        return fail_entry(ctx, "'%s' must be a duration string such as \"30s\", \"1h\", \"7d\"",
                          key);
    if (bus_duration_parse(item->valuestring, ret_ms) != ST_OK)
        return fail_entry(
            ctx, "'%s' is not a duration (digits then ms, s, m, h or d, e.g. \"30s\")", key);
    return ST_OK;
}

/* Integer member within [min, max]; JSON numbers are doubles, so reject fractions and values
 * beyond 2^53 where doubles stop being exact. */
static st_code get_integer(parse_ctx *ctx, const cJSON *object, const char *key, bool required,
                           int64_t default_value, int64_t min, int64_t max, int64_t *ret_value)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    if (item == NULL) {
        if (required)
            return fail_entry(ctx, "'%s' is missing", key);
        *ret_value = default_value;
        return ST_OK;
    }
    const double exact_limit = 9007199254740992.0; /* 2^53 */
    if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble) ||
        fabs(item->valuedouble) > exact_limit)
        return fail_entry(ctx, "'%s' must be an integer", key);
    int64_t value = (int64_t)item->valuedouble;
    if (value < min || value > max)
        return fail_entry(ctx, "'%s' must be between %lld and %lld", key, (long long)min,
                          (long long)max);
    *ret_value = value;
    return ST_OK;
}

/* A size in bytes: -1 (unlimited) or a positive number up to max. */
static st_code get_size(parse_ctx *ctx, const cJSON *object, const char *key, int64_t max,
                        int64_t *ret_value)
{
    int64_t value = -1;
    st_code code = get_integer(ctx, object, key, false, -1, -1, max, &value);
    if (code != ST_OK)
        return code;
    if (value == 0)
        return fail_entry(ctx, "'%s' must be -1 (unlimited) or a positive number of bytes", key);
    *ret_value = value;
    return ST_OK;
}

static void name_entry(parse_ctx *ctx, const char *kind, size_t index, const cJSON *object,
                       const char *name_key)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(object, name_key);
    if (cJSON_IsString(name) && name->valuestring != NULL && name->valuestring[0] != '\0')
        snprintf(ctx->entry, sizeof(ctx->entry), "%s '%.64s'", kind, name->valuestring);
    else
        snprintf(ctx->entry, sizeof(ctx->entry), "%s #%zu", kind, index + 1);
}

static st_code parse_stream(parse_ctx *ctx, const cJSON *object, bus_stream_def *def)
{
    static const char *const known[] = {"name",         "subjects",         "description",
                                        "max_age",      "duplicate_window", "max_bytes",
                                        "max_msg_size", "replicas",         NULL};
    if (!cJSON_IsObject(object))
        return fail_entry(ctx, "must be an object");
    st_code code = check_keys(ctx, object, known);
    if (code != ST_OK)
        return code;
    code = get_string(ctx, object, "name", true, def->name, sizeof(def->name));
    if (code != ST_OK)
        return code;
    if (!bus_name_valid(def->name))
        return fail_entry(ctx, "'name' must be 1-%d characters of A-Z a-z 0-9 _ -",
                          BUS_NAME_MAX - 1);

    const cJSON *subjects = cJSON_GetObjectItemCaseSensitive(object, "subjects");
    if (!cJSON_IsArray(subjects))
        return fail_entry(ctx, "'subjects' must be an array of subjects");
    int count = cJSON_GetArraySize(subjects);
    if (count == 0)
        return fail_entry(ctx, "'subjects' is empty");
    if (count > BUS_SUBJECTS_MAX)
        return fail_entry(ctx, "'subjects' has more than %d entries", BUS_SUBJECTS_MAX);
    for (int i = 0; i < count; i++) {
        const cJSON *subject = cJSON_GetArrayItem(subjects, i);
        if (!cJSON_IsString(subject) || subject->valuestring == NULL ||
            !bus_subject_valid(subject->valuestring, true))
            return fail_entry(ctx,
                              "subject #%d is not a valid subject (tokens separated by '.', "
                              "at most %d bytes)",
                              i + 1, BUS_SUBJECT_MAX - 1);
        size_t len = strlen(subject->valuestring);
        memcpy(def->subjects[i], subject->valuestring, len + 1);
        for (int k = 0; k < i; k++)
            if (bus_subjects_overlap(def->subjects[k], def->subjects[i]))
                return fail_entry(ctx, "subjects #%d and #%d overlap", k + 1, i + 1);
    }
    def->subject_count = (size_t)count;

    const cJSON *description = cJSON_GetObjectItemCaseSensitive(object, "description");
    if (description != NULL && !cJSON_IsString(description))
        return fail_entry(ctx, "'description' must be a string");

    code = get_duration(ctx, object, "max_age", false, 0, &def->max_age_ms);
    if (code == ST_OK)
        code = get_duration(ctx, object, "duplicate_window", false, DEFAULT_DUPLICATE_WINDOW_MS,
                            &def->duplicate_window_ms);
    if (code == ST_OK)
        code = get_size(ctx, object, "max_bytes", INT64_MAX, &def->max_bytes);
    if (code == ST_OK)
        code = get_size(ctx, object, "max_msg_size", INT32_MAX, &def->max_msg_size);
    int64_t replicas = 1;
    if (code == ST_OK)
        code = get_integer(ctx, object, "replicas", false, 1, 1, 5, &replicas);
    if (code != ST_OK)
        return code;
    def->replicas = (int)replicas;
    if (def->duplicate_window_ms == 0)
        return fail_entry(ctx, "'duplicate_window' must be positive");
    if (def->max_age_ms > 0 && def->duplicate_window_ms > def->max_age_ms)
        return fail_entry(ctx, "'duplicate_window' is longer than 'max_age'");
    return ST_OK;
}

static st_code parse_consumer(parse_ctx *ctx, const cJSON *object, const bus_registry *registry,
                              bus_consumer_def *def)
{
    static const char *const known[] = {
        "durable",  "stream",      "filter_subject",  "dead_letter_subject",
        "ack_wait", "max_deliver", "max_ack_pending", "description",
        NULL};
    if (!cJSON_IsObject(object))
        return fail_entry(ctx, "must be an object");
    st_code code = check_keys(ctx, object, known);
    if (code == ST_OK)
        code = get_string(ctx, object, "durable", true, def->durable, sizeof(def->durable));
    if (code != ST_OK)
        return code;
    if (!bus_name_valid(def->durable))
        return fail_entry(ctx, "'durable' must be 1-%d characters of A-Z a-z 0-9 _ -",
                          BUS_NAME_MAX - 1);
    code = get_string(ctx, object, "stream", true, def->stream, sizeof(def->stream));
    if (code != ST_OK)
        return code;
    const bus_stream_def *stream = bus_registry_stream(registry, def->stream);
    if (stream == NULL)
        return fail_entry(ctx, "unknown stream '%.64s'", def->stream);

    code = get_string(ctx, object, "filter_subject", false, def->filter_subject,
                      sizeof(def->filter_subject));
    if (code != ST_OK)
        return code;
    if (def->filter_subject[0] != '\0') {
        if (!bus_subject_valid(def->filter_subject, true))
            return fail_entry(ctx, "'filter_subject' is not a valid subject");
        bool stored = false;
        for (size_t i = 0; i < stream->subject_count && !stored; i++)
            stored = bus_subject_within(def->filter_subject, stream->subjects[i]);
        if (!stored)
            return fail_entry(ctx, "'filter_subject' is not within the subjects of stream '%s'",
                              stream->name);
    }

    const cJSON *description = cJSON_GetObjectItemCaseSensitive(object, "description");
    if (description != NULL && !cJSON_IsString(description))
        return fail_entry(ctx, "'description' must be a string");

    code = get_duration(ctx, object, "ack_wait", true, 0, &def->ack_wait_ms);
    if (code != ST_OK)
        return code;
    if (def->ack_wait_ms < 1000)
        return fail_entry(ctx, "'ack_wait' must be at least 1s");
    int64_t max_deliver = 0, max_ack_pending = 0;
    code = get_integer(ctx, object, "max_deliver", true, 0, -1, 1000000, &max_deliver);
    if (code != ST_OK)
        return code;
    if (max_deliver == 0)
        return fail_entry(ctx, "'max_deliver' must be at least 1, or -1 for unlimited");
    code = get_integer(ctx, object, "max_ack_pending", true, 0, -1, 1000000, &max_ack_pending);
    if (code != ST_OK)
        return code;
    if (max_ack_pending == 0)
        return fail_entry(ctx, "'max_ack_pending' must be at least 1, or -1 for unlimited");
    def->max_deliver = (int)max_deliver;
    def->max_ack_pending = (int)max_ack_pending;

    code = get_string(ctx, object, "dead_letter_subject", def->max_deliver != -1,
                      def->dead_letter_subject, sizeof(def->dead_letter_subject));
    if (code != ST_OK)
        return code;
    if (def->dead_letter_subject[0] == '\0') {
        if (def->max_deliver != -1)
            return fail_entry(ctx, "'dead_letter_subject' is empty but 'max_deliver' is not -1: "
                                   "the last failed delivery would be lost");
        return ST_OK;
    }
    if (!bus_subject_valid(def->dead_letter_subject, false))
        return fail_entry(ctx, "'dead_letter_subject' is not a valid subject (no wildcards)");
    const bus_stream_def *dead_letter_stream = NULL;
    for (size_t s = 0; s < registry->stream_count && dead_letter_stream == NULL; s++)
        for (size_t i = 0; i < registry->streams[s].subject_count; i++)
            if (bus_subject_within(def->dead_letter_subject, registry->streams[s].subjects[i]))
                dead_letter_stream = &registry->streams[s];
    if (dead_letter_stream == NULL)
        return fail_entry(ctx, "'dead_letter_subject' is not stored by any stream");
    if (dead_letter_stream == stream &&
        (def->filter_subject[0] == '\0' ||
         bus_subjects_overlap(def->filter_subject, def->dead_letter_subject)))
        return fail_entry(ctx, "'dead_letter_subject' would be delivered back to this consumer");
    return ST_OK;
}

static st_code parse_document(parse_ctx *ctx, const cJSON *root, bus_registry *registry)
{
    static const char *const known[] = {"version", "streams", "consumers", "description", NULL};
    snprintf(ctx->entry, sizeof(ctx->entry), "document");
    if (!cJSON_IsObject(root))
        return fail_entry(ctx, "must be a JSON object");
    st_code code = check_keys(ctx, root, known);
    int64_t version = 0;
    if (code == ST_OK)
        code = get_integer(ctx, root, "version", true, 0, 0, INT32_MAX, &version);
    if (code != ST_OK)
        return code;
    if (version != REGISTRY_VERSION)
        return fail_entry(ctx, "'version' is %lld, this build reads version %d", (long long)version,
                          REGISTRY_VERSION);

    const cJSON *streams = cJSON_GetObjectItemCaseSensitive(root, "streams");
    const cJSON *consumers = cJSON_GetObjectItemCaseSensitive(root, "consumers");
    if (!cJSON_IsArray(streams))
        return fail_entry(ctx, "'streams' must be an array");
    if (consumers != NULL && !cJSON_IsArray(consumers))
        return fail_entry(ctx, "'consumers' must be an array");
    int stream_count = cJSON_GetArraySize(streams);
    int consumer_count = consumers != NULL ? cJSON_GetArraySize(consumers) : 0;
    if (stream_count > REGISTRY_STREAMS_MAX)
        return fail_entry(ctx, "more than %d streams", REGISTRY_STREAMS_MAX);
    if (consumer_count > REGISTRY_CONSUMERS_MAX)
        return fail_entry(ctx, "more than %d consumers", REGISTRY_CONSUMERS_MAX);

    if (stream_count > 0) {
        registry->streams = calloc((size_t)stream_count, sizeof(*registry->streams));
        if (registry->streams == NULL)
            return st_fail(ctx->err, ST_NOMEM, "registry: out of memory");
    }
    for (int i = 0; i < stream_count; i++) {
        const cJSON *item = cJSON_GetArrayItem(streams, i);
        name_entry(ctx, "stream", (size_t)i, item, "name");
        bus_stream_def *def = &registry->streams[i];
        code = parse_stream(ctx, item, def);
        if (code != ST_OK)
            return code;
        for (size_t k = 0; k < registry->stream_count; k++) {
            const bus_stream_def *other = &registry->streams[k];
            if (strcmp(other->name, def->name) == 0)
                return fail_entry(ctx, "a stream with this name is declared twice");
            for (size_t a = 0; a < other->subject_count; a++)
                for (size_t b = 0; b < def->subject_count; b++)
                    if (bus_subjects_overlap(other->subjects[a], def->subjects[b]))
                        return fail_entry(ctx, "subject #%zu overlaps a subject of stream '%s'",
                                          b + 1, other->name);
        }
        registry->stream_count++;
    }

    if (consumer_count > 0) {
        registry->consumers = calloc((size_t)consumer_count, sizeof(*registry->consumers));
        if (registry->consumers == NULL)
            return st_fail(ctx->err, ST_NOMEM, "registry: out of memory");
    }
    for (int i = 0; i < consumer_count; i++) {
        const cJSON *item = cJSON_GetArrayItem(consumers, i);
        name_entry(ctx, "consumer", (size_t)i, item, "durable");
        bus_consumer_def *def = &registry->consumers[i];
        code = parse_consumer(ctx, item, registry, def);
        if (code != ST_OK)
            return code;
        /* bus_registry_consumer() looks durables up by name alone: keep them unique. */
        if (bus_registry_consumer(registry, def->durable) != NULL)
            return fail_entry(ctx, "a consumer with this durable name is declared twice");
        registry->consumer_count++;
    }
    return ST_OK;
}

st_code bus_registry_parse(const char *json, size_t len, bus_registry **ret_registry, st_error *err)
{
    cJSON *root = NULL;
    bus_registry *registry = NULL;
    st_code code = ST_OK;

    if (json == NULL || ret_registry == NULL) {
        code = st_fail(err, ST_INVALID, "registry: no document");
        goto cleanup;
    }
    if (len > REGISTRY_DOC_MAX) {
        code = st_fail(err, ST_LIMIT, "registry: document larger than %d bytes", REGISTRY_DOC_MAX);
        goto cleanup;
    }
    root = cJSON_ParseWithLength(json, len);
    if (root == NULL) {
        const char *where = cJSON_GetErrorPtr();
        long offset =
            (where != NULL && where >= json && where <= json + len) ? (long)(where - json) : -1;
        code = st_fail(err, ST_INVALID, "registry: not valid JSON (near byte %ld)", offset);
        goto cleanup;
    }
    registry = calloc(1, sizeof(*registry));
    if (registry == NULL) {
        code = st_fail(err, ST_NOMEM, "registry: out of memory");
        goto cleanup;
    }
    parse_ctx ctx = {.err = err};
    code = parse_document(&ctx, root, registry);
    if (code != ST_OK)
        goto cleanup;
    *ret_registry = registry;
    registry = NULL;

cleanup:
    cJSON_Delete(root);
    bus_registry_destroy(registry);
    return code;
}

st_code bus_registry_builtin(bus_registry **ret_registry, st_error *err)
{
    for (size_t i = 0; i < ess_proto_files_count; i++) {
        if (strcmp(ess_proto_files[i].path, "registry.json") == 0)
            return bus_registry_parse(ess_proto_files[i].data, ess_proto_files[i].len, ret_registry,
                                      err);
    }
    return st_fail(err, ST_INTERNAL, "registry: registry.json is not embedded in this binary");
}

void bus_registry_destroy(bus_registry *registry)
{
    if (registry == NULL)
        return;
    free(registry->streams);
    free(registry->consumers);
    free(registry);
}

st_code bus_registry_set_replicas(bus_registry *registry, int replicas, st_error *err)
{
    if (registry == NULL || replicas < 1 || replicas > 5)
        return st_fail(err, ST_INVALID, "registry: stream replicas must be 1..5, not %d",
                       replicas);
    for (size_t i = 0; i < registry->stream_count; i++)
        registry->streams[i].replicas = replicas;
    return ST_OK;
}

const bus_consumer_def *bus_registry_consumer(const bus_registry *registry, const char *durable)
{
    if (registry == NULL || durable == NULL)
        return NULL;
    for (size_t i = 0; i < registry->consumer_count; i++)
        if (strcmp(registry->consumers[i].durable, durable) == 0)
            return &registry->consumers[i];
    return NULL;
}

const bus_stream_def *bus_registry_stream(const bus_registry *registry, const char *name)
{
    if (registry == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < registry->stream_count; i++)
        if (strcmp(registry->streams[i].name, name) == 0)
            return &registry->streams[i];
    return NULL;
}
