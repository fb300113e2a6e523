/* Unit tests of the registry parser (proto/registry.json) and the subject/duration helpers. */
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "bus_internal.h"

/* Documents are written with ' for " to stay readable; this swaps them back. */
static char *json_of(const char *single_quoted)
{
    size_t len = strlen(single_quoted);
    char *json = malloc(len + 1);
    assert_non_null(json);
    for (size_t i = 0; i <= len; i++)
        json[i] = single_quoted[i] == '\'' ? '"' : single_quoted[i];
    return json;
}

static st_code parse_text(const char *single_quoted, bus_registry **ret_registry, st_error *err)
{
    char *json = json_of(single_quoted);
    st_code code = bus_registry_parse(json, strlen(json), ret_registry, err);
    free(json);
    return code;
}

#define GOOD_STREAMS                                                                               \
    "'streams':[{'name':'IN','subjects':['in.>'],'max_age':'1d','duplicate_window':'1h',"          \
    "'max_msg_size':1024,'description':'inbound'},"                                                \
    "{'name':'DLQ','subjects':['dlq.>'],'max_bytes':1048576,'replicas':1}]"

ESS_TEST(builtin_registry_parses)
{
    (void)state;
    bus_registry *registry = NULL;
    st_error err = {0};
    assert_int_equal(bus_registry_builtin(&registry, &err), ST_OK);
    assert_non_null(registry);
    assert_true(registry->stream_count >= 4);
    assert_true(registry->consumer_count >= 1);

    const bus_stream_def *line_in = bus_registry_stream(registry, "LINE_IN");
    assert_non_null(line_in);
    assert_int_equal(line_in->subject_count, 1);
    assert_string_equal(line_in->subjects[0], "line.in.>");
    assert_int_equal(line_in->max_age_ms, 7LL * 24 * 60 * 60 * 1000);
    /* DESIGN.md: LINE may redeliver late, the LINE_IN window is an hour or more. */
    assert_true(line_in->duplicate_window_ms >= 60LL * 60 * 1000);
    assert_int_equal(line_in->max_msg_size, 1048576);
    assert_int_equal(line_in->max_bytes, -1);
    assert_int_equal(line_in->replicas, 1);
    assert_non_null(bus_registry_stream(registry, "ESS"));
    assert_non_null(bus_registry_stream(registry, "LINE_OUT"));
    assert_non_null(bus_registry_stream(registry, "DLQ"));
    assert_null(bus_registry_stream(registry, "NOPE"));

    const bus_consumer_def *conversation = bus_registry_consumer(registry, "conversation");
    assert_non_null(conversation);
    assert_string_equal(conversation->stream, "LINE_IN");
    assert_string_equal(conversation->filter_subject, "line.in.>");
    assert_string_equal(conversation->dead_letter_subject, "ess.dlq.conversation");
    assert_int_equal(conversation->ack_wait_ms, 30000);
    assert_int_equal(conversation->max_deliver, 8);
    assert_int_equal(conversation->max_ack_pending, 1024);
    assert_null(bus_registry_consumer(registry, "nobody"));

    /* Every consumer that can dead-letter has a subject some stream stores. */
    for (size_t i = 0; i < registry->consumer_count; i++) {
        const bus_consumer_def *consumer = &registry->consumers[i];
        assert_non_null(bus_registry_stream(registry, consumer->stream));
        if (consumer->max_deliver == -1)
            continue;
        bool stored = false;
        for (size_t s = 0; s < registry->stream_count; s++)
            for (size_t k = 0; k < registry->streams[s].subject_count; k++)
                stored = stored || bus_subject_within(consumer->dead_letter_subject,
                                                      registry->streams[s].subjects[k]);
        assert_true(stored);
    }
    bus_registry_destroy(registry);
}

ESS_TEST(good_document_parses_with_defaults)
{
    (void)state;
    bus_registry *registry = NULL;
    st_error err = {0};
    st_code code = parse_text(
        "{'version':1," GOOD_STREAMS ","
        "'consumers':[{'durable':'worker','stream':'IN','filter_subject':'in.user.>',"
        "'dead_letter_subject':'dlq.worker','ack_wait':'30s','max_deliver':5,"
        "'max_ack_pending':100},"
        "{'durable':'dlq-reader','stream':'DLQ','filter_subject':'','dead_letter_subject':'',"
        "'ack_wait':'1m','max_deliver':-1,'max_ack_pending':-1}]}",
        &registry, &err);
    assert_int_equal(code, ST_OK);
    assert_int_equal(registry->stream_count, 2);
    assert_int_equal(registry->consumer_count, 2);

    const bus_stream_def *in = bus_registry_stream(registry, "IN");
    assert_int_equal(in->max_age_ms, 86400000);
    assert_int_equal(in->duplicate_window_ms, 3600000);
    assert_int_equal(in->max_msg_size, 1024);
    assert_int_equal(in->max_bytes, -1);
    const bus_stream_def *dlq = bus_registry_stream(registry, "DLQ");
    assert_int_equal(dlq->max_age_ms, 0);                  /* unlimited */
    assert_int_equal(dlq->duplicate_window_ms, 2 * 60000); /* JetStream's default */
    assert_int_equal(dlq->max_bytes, 1048576);
    assert_int_equal(dlq->max_msg_size, -1);

    const bus_consumer_def *worker = bus_registry_consumer(registry, "worker");
    assert_string_equal(worker->filter_subject, "in.user.>");
    assert_int_equal(worker->ack_wait_ms, 30000);
    const bus_consumer_def *reader = bus_registry_consumer(registry, "dlq-reader");
    assert_int_equal(reader->max_deliver, -1);
    assert_string_equal(reader->dead_letter_subject, "");
    assert_string_equal(reader->filter_subject, "");
    assert_int_equal(reader->ack_wait_ms, 60000);
    bus_registry_destroy(registry);
}

typedef struct bad_case {
    const char *document; /* ' for " */
    const char *expect;   /* substring of the error message */
} bad_case;

#define C_HEAD "{'version':1," GOOD_STREAMS ",'consumers':[{'durable':'c','stream':'IN',"
#define C_TAIL "}]}"

static const bad_case bad_cases[] = {
    {"not json at all", "not valid JSON"},
    {"[1,2]", "document: must be a JSON object"},
    {"{'streams':[]}", "'version' is missing"},
    {"{'version':2,'streams':[]}", "'version' is 2"},
    {"{'version':1,'streams':[],'stream':[]}", "unknown key 'stream'"},
    {"{'version':1,'streams':{}}", "'streams' must be an array"},
    {"{'version':1,'streams':[],'consumers':{}}", "'consumers' must be an array"},
    {"{'version':1,'streams':[7]}", "stream #1: must be an object"},
    {"{'version':1,'streams':[{'subjects':['a']}]}", "stream #1: 'name' is missing"},
    {"{'version':1,'streams':[{'name':'A.B','subjects':['a']}]}", "stream 'A.B': 'name' must"},
    {"{'version':1,'streams':[{'name':'S','subjects':[]}]}", "stream 'S': 'subjects' is empty"},
    {"{'version':1,'streams':[{'name':'S'}]}", "stream 'S': 'subjects' must be an array"},
    {"{'version':1,'streams':[{'name':'S','subjects':['a..b']}]}",
     "stream 'S': subject #1 is not a valid subject"},
    {"{'version':1,'streams':[{'name':'S','subjects':['a b']}]}", "subject #1 is not a valid"},
    {"{'version':1,'streams':[{'name':'S','subjects':['a.>.b']}]}", "subject #1 is not a valid"},
    {"{'version':1,'streams':[{'name':'S','subjects':[3]}]}", "subject #1 is not a valid"},
    {"{'version':1,'streams':[{'name':'S','subjects':['a','b','c','d','e','f','g','h','i']}]}",
     "more than 8 entries"},
    {"{'version':1,'streams':[{'name':'S','subjects':['a.>','a.b']}]}",
     "stream 'S': subjects #1 and #2 overlap"},
    {"{'version':1,'streams':[{'name':'S','subjects':['a']},{'name':'S','subjects':['b']}]}",
     "stream 'S': a stream with this name is declared twice"},
    {"{'version':1,'streams':[{'name':'S1','subjects':['a.*']},{'name':'S2','subjects':['a.b']}]}",
     "stream 'S2': subject #1 overlaps a subject of stream 'S1'"},
    {"{'version':1,'streams':[{'name':'S','subjects':['a'],'max_age':'30 seconds'}]}",
     "stream 'S': 'max_age' is not a duration"},
    {"{'version':1,'streams':[{'name':'S','subjects':['a'],'max_age':30}]}",
     "'max_age' must be a duration string"},
    {"{'version':1,'streams':[{'name':'S','subjects':['a'],'duplicate_window':'0'}]}",
     "'duplicate_window' must be positive"},
    {"{'version':1,'streams':[{'name':'S','subjects':['a'],'max_age':'1h',"
     "'duplicate_window':'2h'}]}",
     "'duplicate_window' is longer than 'max_age'"},
    {"{'version':1,'streams':[{'name':'S','subjects':['a'],'max_bytes':0}]}",
     "'max_bytes' must be -1 (unlimited) or a positive"},
    {"{'version':1,'streams':[{'name':'S','subjects':['a'],'max_msg_size':1.5}]}",
     "'max_msg_size' must be an integer"},
    {"{'version':1,'streams':[{'name':'S','subjects':['a'],'max_msg_size':'1MB'}]}",
     "'max_msg_size' must be an integer"},
    {"{'version':1,'streams':[{'name':'S','subjects':['a'],'max_msg_size':4294967296}]}",
     "'max_msg_size' must be between"},
    {"{'version':1,'streams':[{'name':'S','subjects':['a'],'replicas':0}]}",
     "'replicas' must be between 1 and 5"},
    {"{'version':1,'streams':[{'name':'S','subjects':['a'],'max_ag':'1h'}]}",
     "stream 'S': unknown key 'max_ag'"},
    {"{'version':1,'streams':[{'name':'S','subjects':['a'],'description':5}]}",
     "'description' must be a string"},
    {"{'version':1," GOOD_STREAMS ",'consumers':[{'stream':'IN'}]}",
     "consumer #1: 'durable' is missing"},
    {C_HEAD "'durable':'x'" C_TAIL, "consumer 'c': key 'durable' appears twice"},
    {"{'version':1," GOOD_STREAMS ",'consumers':[{'durable':'c','stream':'NOPE',"
     "'dead_letter_subject':'dlq.c','ack_wait':'30s','max_deliver':5,'max_ack_pending':1}]}",
     "consumer 'c': unknown stream 'NOPE'"},
    {C_HEAD "'dead_letter_subject':'dlq.c','ack_wait':'30s','max_deliver':0,"
            "'max_ack_pending':1" C_TAIL,
     "consumer 'c': 'max_deliver' must be at least 1, or -1"},
    {C_HEAD "'dead_letter_subject':'dlq.c','ack_wait':'30s','max_deliver':-2,"
            "'max_ack_pending':1" C_TAIL,
     "'max_deliver' must be between"},
    {C_HEAD "'dead_letter_subject':'dlq.c','ack_wait':'30s','max_deliver':5,"
            "'max_ack_pending':0" C_TAIL,
     "'max_ack_pending' must be at least 1"},
    {C_HEAD "'dead_letter_subject':'','ack_wait':'30s','max_deliver':5,'max_ack_pending':1" C_TAIL,
     "consumer 'c': 'dead_letter_subject' is empty but 'max_deliver' is not -1"},
    {C_HEAD "'ack_wait':'30s','max_deliver':5,'max_ack_pending':1" C_TAIL,
     "consumer 'c': 'dead_letter_subject' is missing"},
    {C_HEAD "'dead_letter_subject':'dlq.*','ack_wait':'30s','max_deliver':5,"
            "'max_ack_pending':1" C_TAIL,
     "'dead_letter_subject' is not a valid subject (no wildcards)"},
    {C_HEAD "'dead_letter_subject':'nowhere.c','ack_wait':'30s','max_deliver':5,"
            "'max_ack_pending':1" C_TAIL,
     "consumer 'c': 'dead_letter_subject' is not stored by any stream"},
    {C_HEAD "'dead_letter_subject':'in.dead','ack_wait':'30s','max_deliver':5,"
            "'max_ack_pending':1" C_TAIL,
     "would be delivered back to this consumer"},
    {C_HEAD "'filter_subject':'other.>','dead_letter_subject':'dlq.c','ack_wait':'30s',"
            "'max_deliver':5,'max_ack_pending':1" C_TAIL,
     "consumer 'c': 'filter_subject' is not within the subjects of stream 'IN'"},
    {C_HEAD "'filter_subject':'in..x','dead_letter_subject':'dlq.c','ack_wait':'30s',"
            "'max_deliver':5,'max_ack_pending':1" C_TAIL,
     "'filter_subject' is not a valid subject"},
    {C_HEAD "'dead_letter_subject':'dlq.c','max_deliver':5,'max_ack_pending':1" C_TAIL,
     "consumer 'c': 'ack_wait' is missing"},
    {C_HEAD "'dead_letter_subject':'dlq.c','ack_wait':'500ms','max_deliver':5,"
            "'max_ack_pending':1" C_TAIL,
     "'ack_wait' must be at least 1s"},
    {C_HEAD "'dead_letter_subject':'dlq.c','ack_wait':'30s','max_deliver':5,"
            "'max_ack_pending':1,'maxdeliver':3" C_TAIL,
     "consumer 'c': unknown key 'maxdeliver'"},
    {"{'version':1," GOOD_STREAMS ",'consumers':["
     "{'durable':'c','stream':'IN','dead_letter_subject':'dlq.c','ack_wait':'30s',"
     "'max_deliver':5,'max_ack_pending':1},"
     "{'durable':'c','stream':'DLQ','dead_letter_subject':'','ack_wait':'30s',"
     "'max_deliver':-1,'max_ack_pending':1}]}",
     "consumer 'c': a consumer with this durable name is declared twice"},
};

ESS_TEST(bad_documents_are_invalid_and_name_the_entry)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        bus_registry *sentinel = (bus_registry *)&bad_cases[i];
        bus_registry *registry = sentinel;
        st_error err = {0};
        st_code code = parse_text(bad_cases[i].document, &registry, &err);
        if (code != ST_INVALID || strstr(err.message, bad_cases[i].expect) == NULL)
            fail_msg("case %zu: got %s \"%s\", expected invalid with \"%s\"", i, st_name(code),
                     err.message, bad_cases[i].expect);
        assert_ptr_equal(registry, sentinel); /* untouched on failure */
    }
}

ESS_TEST(long_names_are_invalid)
{
    (void)state;
    char name[BUS_NAME_MAX + 1];
    memset(name, 'N', BUS_NAME_MAX);
    name[BUS_NAME_MAX] = '\0'; /* one byte too many */
    char document[512];
    snprintf(document, sizeof(document), "{'version':1,'streams':[{'name':'%s','subjects':['a']}]}",
             name);
    bus_registry *registry = NULL;
    st_error err = {0};
    assert_int_equal(parse_text(document, &registry, &err), ST_INVALID);
    assert_non_null(strstr(err.message, "'name' is longer than 63 bytes"));

    name[BUS_NAME_MAX - 1] = '\0'; /* exactly the limit */
    snprintf(document, sizeof(document), "{'version':1,'streams':[{'name':'%s','subjects':['a']}]}",
             name);
    assert_int_equal(parse_text(document, &registry, &err), ST_OK);
    bus_registry_destroy(registry);

    char subject[BUS_SUBJECT_MAX + 1];
    memset(subject, 's', BUS_SUBJECT_MAX);
    subject[BUS_SUBJECT_MAX] = '\0';
    char big[1024];
    snprintf(big, sizeof(big), "{'version':1,'streams':[{'name':'S','subjects':['%s']}]}", subject);
    registry = NULL;
    assert_int_equal(parse_text(big, &registry, &err), ST_INVALID);
    assert_non_null(strstr(err.message, "stream 'S': subject #1"));
    assert_null(registry);
}

ESS_TEST(parse_rejects_missing_or_oversized_input)
{
    (void)state;
    bus_registry *registry = NULL;
    st_error err = {0};
    assert_int_equal(bus_registry_parse(NULL, 0, &registry, &err), ST_INVALID);
    size_t huge = 2 * 1024 * 1024;
    char *doc = malloc(huge);
    assert_non_null(doc);
    memset(doc, ' ', huge);
    assert_int_equal(bus_registry_parse(doc, huge, &registry, &err), ST_LIMIT);
    free(doc);
    /* Bytes after len are not read: a prefix that is a whole document parses. */
    const char *text = "{\"version\":1,\"streams\":[]}GARBAGE";
    assert_int_equal(bus_registry_parse(text, strlen(text) - 7, &registry, &err), ST_OK);
    assert_int_equal(registry->stream_count, 0);
    bus_registry_destroy(registry);
    bus_registry_destroy(NULL);
    assert_null(bus_registry_stream(NULL, "X"));
    assert_null(bus_registry_consumer(NULL, "x"));
}

ESS_TEST(durations_parse_with_units)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t ms;
    } good[] = {
        {"0", 0},        {"500ms", 500},    {"30s", 30000}, {"2m", 120000},
        {"1h", 3600000}, {"7d", 604800000}, {"0s", 0},      {"106751d", 106751LL * 86400000}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int64_t ms = -1;
        assert_int_equal(bus_duration_parse(good[i].text, &ms), ST_OK);
        assert_int_equal(ms, good[i].ms);
    }
    static const char *const bad[] = {"",
                                      "s",
                                      "10",
                                      "1.5s",
                                      "-1s",
                                      "10 s",
                                      "10S",
                                      "1w",
                                      "h1",
                                      "106752d",
                                      "99999999999999999999d",
                                      "1000000000000000000000000000000s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 42;
        if (bus_duration_parse(bad[i], &ms) != ST_INVALID)
            fail_msg("duration \"%s\" was accepted", bad[i]);
        assert_int_equal(ms, 42);
    }
}

ESS_TEST(subjects_validate_and_compare)
{
    (void)state;
    static const char *const valid[] = {"a", "a.b", "line.in.user.U123", "a.*.c", "a.>", ">"};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        assert_true(bus_subject_valid(valid[i], true));
    static const char *const invalid[] = {"",    "a..b", ".a",    "a.",   "a b",  "a\tb",
                                          ">.a", "a*",   "a.>.b", "a.b>", "a\r\n"};
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        if (bus_subject_valid(invalid[i], true))
            fail_msg("subject \"%s\" was accepted", invalid[i]);
    assert_false(bus_subject_valid("a.*", false));
    assert_false(bus_subject_valid("a.>", false));
    assert_true(bus_subject_valid("ess.dlq.conversation", false));

    assert_true(bus_subjects_overlap("a.>", "a.b"));
    assert_true(bus_subjects_overlap(">", "x"));
    assert_true(bus_subjects_overlap("a.*.c", "a.b.*"));
    assert_false(bus_subjects_overlap("a.*", "a.b.c"));
    assert_false(bus_subjects_overlap("a.b", "a.c"));
    assert_false(bus_subjects_overlap("a", "a.b"));
    assert_false(bus_subjects_overlap("line.in.>", "ess.dlq.>"));

    assert_true(bus_subject_within("a.b", "a.>"));
    assert_true(bus_subject_within("a.*", "a.>"));
    assert_true(bus_subject_within("a.b.c", "a.*.c"));
    assert_true(bus_subject_within("a.>", ">"));
    assert_true(bus_subject_within("a.>", "a.>"));
    assert_false(bus_subject_within("a.>", "a.*"));
    assert_false(bus_subject_within("a", "a.>"));
    assert_false(bus_subject_within("a.*", "a.b"));
    assert_false(bus_subject_within("a.b", "a.b.c"));

    assert_true(bus_name_valid("LINE_IN"));
    assert_true(bus_name_valid("notifier-out"));
    assert_false(bus_name_valid(""));
    assert_false(bus_name_valid("a.b"));
    assert_false(bus_name_valid("a b"));
    assert_false(bus_name_valid("a>"));
}

ESS_TEST_MAIN(NULL, NULL)
