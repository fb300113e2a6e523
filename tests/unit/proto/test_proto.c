/* proto/ is the contract between services: these tests keep it coherent. */
#include "testkit.h"

#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ess_embedded.h"

extern const ess_embedded_file ess_proto_files[];
extern const size_t ess_proto_files_count;

static const ess_embedded_file *find_file(const char *path)
{
    for (size_t i = 0; i < ess_proto_files_count; i++)
        if (strcmp(ess_proto_files[i].path, path) == 0)
            return &ess_proto_files[i];
    return NULL;
}

/* NATS subject match: '*' one token, '>' the rest. */
static bool subject_matches(const char *pattern, const char *subject)
{
    while (*pattern != '\0' && *subject != '\0') {
        if (pattern[0] == '>')
            return true;
        if (pattern[0] == '*') {
            while (*subject != '\0' && *subject != '.')
                subject++;
            pattern++;
        } else {
            const char *p_end = strchr(pattern, '.');
            const char *s_end = strchr(subject, '.');
            size_t p_len = p_end != NULL ? (size_t)(p_end - pattern) : strlen(pattern);
            size_t s_len = s_end != NULL ? (size_t)(s_end - subject) : strlen(subject);
            if (p_len != s_len || memcmp(pattern, subject, p_len) != 0)
                return false;
            pattern += p_len;
            subject += s_len;
        }
        if (*pattern == '.' && *subject == '.') {
            pattern++;
            subject++;
        } else if (*pattern != *subject) {
            return false;
        }
    }
    return *pattern == '\0' && *subject == '\0';
}

/* Which stream a subject lands in: exactly one, else NULL. */
static const char *stream_of(cJSON *registry, const char *subject)
{
    const char *found = NULL;
    int hits = 0;
    cJSON *stream;
    cJSON_ArrayForEach(stream, cJSON_GetObjectItem(registry, "streams"))
    {
        cJSON *pattern;
        cJSON_ArrayForEach(pattern, cJSON_GetObjectItem(stream, "subjects"))
        {
            if (subject_matches(pattern->valuestring, subject)) {
                found = cJSON_GetObjectItem(stream, "name")->valuestring;
                hits++;
            }
        }
    }
    return hits == 1 ? found : NULL;
}

ESS_TEST(matcher_follows_nats_rules)
{
    (void)state;
    assert_true(subject_matches("line.in.>", "line.in.user.U1"));
    assert_true(subject_matches("ess.incident.*", "ess.incident.reported"));
    assert_false(subject_matches("ess.incident.*", "ess.incident.reported.x"));
    assert_false(subject_matches("ess.dlq.>", "ess.incident.reported"));
    assert_false(subject_matches("line.out.push", "line.out.pushy"));
}

ESS_TEST(every_schema_is_json_with_matching_id)
{
    (void)state;
    size_t schemas = 0;
    for (size_t i = 0; i < ess_proto_files_count; i++) {
        const ess_embedded_file *f = &ess_proto_files[i];
        cJSON *doc = cJSON_ParseWithLength(f->data, f->len);
        if (doc == NULL)
            fail_msg("%s is not valid JSON", f->path);
        const char *suffix = ".schema.json";
        size_t len = strlen(f->path);
        if (len > strlen(suffix) && strcmp(f->path + len - strlen(suffix), suffix) == 0) {
            schemas++;
            char expected[160];
            snprintf(expected, sizeof(expected), "ess/%.*s",
                     (int)(len - strlen(suffix) - strlen("schemas/")),
                     f->path + strlen("schemas/"));
            cJSON *id = cJSON_GetObjectItem(doc, "$id");
            assert_non_null(id);
            if (strcmp(id->valuestring, expected) != 0)
                fail_msg("%s has $id %s, expected %s", f->path, id->valuestring, expected);
            assert_non_null(cJSON_GetObjectItem(doc, "title"));
        }
        cJSON_Delete(doc);
    }
    assert_true(schemas >= 10);
}

ESS_TEST(every_event_subject_lands_in_exactly_one_stream)
{
    (void)state;
    const ess_embedded_file *reg = find_file("registry.json");
    assert_non_null(reg);
    cJSON *registry = cJSON_ParseWithLength(reg->data, reg->len);
    assert_non_null(registry);
    /* DESIGN.md §2's subjects, each with the stream it must land in. */
    static const char *const subjects[][2] = {
        {"line.in.user.Uabc", "LINE_IN"},      {"line.in.group.Cabc", "LINE_IN"},
        {"line.in.room.Rabc", "LINE_IN"},      {"ess.incident.reported", "ESS"},
        {"ess.incident.routed", "ESS"},        {"ess.incident.acknowledged", "ESS"},
        {"ess.incident.status", "ESS"},        {"ess.incident.escalated", "ESS"},
        {"ess.incident.closed", "ESS"},        {"ess.incident.note", "ESS"},
        {"line.out.reply", "LINE_OUT"},        {"line.out.push", "LINE_OUT"},
        {"ess.dlq.conversation", "DLQ"},
    };
    for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++) {
        const char *stream = stream_of(registry, subjects[i][0]);
        if (stream == NULL || strcmp(stream, subjects[i][1]) != 0)
            fail_msg("%s lands in %s, expected %s", subjects[i][0],
                     stream != NULL ? stream : "no single stream", subjects[i][1]);
    }
    /* Every consumer's dead-letter subject lands in DLQ. */
    cJSON *consumer;
    cJSON_ArrayForEach(consumer, cJSON_GetObjectItem(registry, "consumers"))
    {
        const char *dlq = cJSON_GetObjectItem(consumer, "dead_letter_subject")->valuestring;
        if (dlq[0] == '\0')
            continue;
        const char *stream = stream_of(registry, dlq);
        assert_non_null(stream);
        assert_string_equal(stream, "DLQ");
    }
    cJSON_Delete(registry);
}

ESS_TEST(every_ess_subject_has_a_schema)
{
    (void)state;
    static const char *const events[] = {
        "schemas/line.in.event.schema.json",       "schemas/ess.incident.reported.schema.json",
        "schemas/ess.incident.routed.schema.json", "schemas/ess.incident.acknowledged.schema.json",
        "schemas/ess.incident.status.schema.json", "schemas/ess.incident.escalated.schema.json",
        "schemas/ess.incident.closed.schema.json", "schemas/ess.incident.note.schema.json",
        "schemas/line.out.reply.schema.json",      "schemas/line.out.push.schema.json",
        "schemas/ess.dlq.schema.json",
    };
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++)
        if (find_file(events[i]) == NULL)
            fail_msg("missing %s", events[i]);
}

ESS_TEST_MAIN(NULL, NULL)
