#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "log.h"

/* Captures what the logger writes into a memory stream. */
typedef struct capture {
    char *text;
    size_t len;
    FILE *stream;
} capture;

static void capture_start(capture *c, log_level level)
{
    c->text = NULL;
    c->len = 0;
    c->stream = open_memstream(&c->text, &c->len);
    assert_non_null(c->stream);
    log_setup("testsvc", level, c->stream);
}

static void capture_end(capture *c)
{
    log_setup("testsvc", LOG_INFO, NULL);
    fclose(c->stream);
}

static cJSON *only_line(const capture *c)
{
    const char *newline = strchr(c->text, '\n');
    assert_non_null(newline);
    assert_int_equal((size_t)(newline - c->text) + 1, c->len); /* exactly one line */
    cJSON *line = cJSON_ParseWithLength(c->text, c->len);
    assert_non_null(line);
    return line;
}

ESS_TEST(writes_fixed_keys_as_json)
{
    (void)state;
    capture c;
    capture_start(&c, LOG_INFO);
    st_error err = {0};
    st_fail(&err, ST_UNAVAILABLE, "server gone");
    st_set_cause(&err, "nats %d", 12);
    log_event(LOG_ERROR, "bus.publish", "cannot publish \"x\"\n", LOG_STR("stream", "LINE_IN"),
              LOG_INT("attempt", 3), LOG_ERR(&err));
    capture_end(&c);
    cJSON *line = only_line(&c);
    assert_string_equal(cJSON_GetObjectItem(line, "level")->valuestring, "error");
    assert_string_equal(cJSON_GetObjectItem(line, "svc")->valuestring, "testsvc");
    assert_string_equal(cJSON_GetObjectItem(line, "code")->valuestring, "bus.publish");
    assert_string_equal(cJSON_GetObjectItem(line, "msg")->valuestring, "cannot publish \"x\"\n");
    assert_string_equal(cJSON_GetObjectItem(line, "stream")->valuestring, "LINE_IN");
    assert_int_equal(cJSON_GetObjectItem(line, "attempt")->valueint, 3);
    assert_string_equal(cJSON_GetObjectItem(line, "err")->valuestring, "unavailable");
    assert_string_equal(cJSON_GetObjectItem(line, "cause")->valuestring, "nats 12");
    assert_string_equal(cJSON_GetObjectItem(line, "detail")->valuestring, "server gone");
    const char *ts = cJSON_GetObjectItem(line, "ts")->valuestring;
    assert_int_equal(strlen(ts), 24); /* 2026-11-30T09:00:00.123Z */
    assert_int_equal(ts[23], 'Z');
    cJSON_Delete(line);
    free(c.text);
}

ESS_TEST(levels_below_minimum_are_dropped)
{
    (void)state;
    capture c;
    capture_start(&c, LOG_WARN);
    log_event(LOG_INFO, "x.info", "not shown");
    log_event(LOG_DEBUG, "x.debug", "not shown");
    log_event(LOG_WARN, "x.warn", "shown");
    capture_end(&c);
    cJSON *line = only_line(&c);
    assert_string_equal(cJSON_GetObjectItem(line, "code")->valuestring, "x.warn");
    cJSON_Delete(line);
    free(c.text);

    log_level level = LOG_ERROR;
    assert_int_equal(log_level_parse("DEBUG", &level), ST_OK);
    assert_int_equal(level, LOG_DEBUG);
    assert_int_equal(log_level_parse("verbose", &level), ST_INVALID);
}

ESS_TEST(personal_data_never_in_clear)
{
    (void)state;
    static const char *const phones[] = {"0812345678", "081-234-5678", "+66 81 234 5678",
                                         "66812345678", "02 123 4567"};
    const char *user_id = "U4af4980629a0b1c2d3e4f5a6b7c8d9e0";
    capture c;
    capture_start(&c, LOG_DEBUG);
    for (size_t i = 0; i < sizeof(phones) / sizeof(phones[0]); i++) {
        char msg[128];
        snprintf(msg, sizeof(msg), "caller gave %s as number", phones[i]);
        st_error err = {0};
        st_fail(&err, ST_INVALID, "bad phone %s from %s", phones[i], user_id);
        log_event(LOG_INFO, "t.pii", msg, LOG_STR("note", phones[i]), LOG_PII("user", user_id),
                  LOG_PII("phone", phones[i]), LOG_ERR(&err));
    }
    capture_end(&c);
    assert_null(strstr(c.text, user_id));
    assert_null(strstr(c.text, "4af4980629a0b1c2d3e4f5a6b7c8d9e0"));
    for (size_t i = 0; i < sizeof(phones) / sizeof(phones[0]); i++)
        assert_null(strstr(c.text, phones[i]));
    assert_null(strstr(c.text, "812345678"));
    assert_null(strstr(c.text, "1234567"));
    assert_non_null(strstr(c.text, "[redacted]"));
    /* The same value gives the same digest within a process, so lines can be correlated. */
    const char *first = strstr(c.text, "\"user\":\"~");
    assert_non_null(first);
    const char *second = strstr(first + 1, "\"user\":\"~");
    assert_non_null(second);
    assert_memory_equal(first, second, 22);
    free(c.text);
}

ESS_TEST(ordinary_numbers_survive_scrubbing)
{
    (void)state;
    char out[256];
    log_scrub("case ESS-2569-000123 seq 42 took 1500 ms at 2026-11-30", out, sizeof(out));
    assert_string_equal(out, "case ESS-2569-000123 seq 42 took 1500 ms at 2026-11-30");
    log_scrub("call 0812345678 now", out, sizeof(out));
    assert_string_equal(out, "call [redacted] now");
    log_scrub("group Cdeadbeefdeadbeefdeadbeefdeadbeef left", out, sizeof(out));
    assert_string_equal(out, "group [redacted] left");
    log_scrub("tiny", out, 3);
    assert_string_equal(out, "ti");
}

ESS_TEST(long_lines_stay_valid_json)
{
    (void)state;
    char *big = malloc(20000);
    memset(big, 'a', 19999);
    big[19999] = '\0';
    capture c;
    capture_start(&c, LOG_INFO);
    log_event(LOG_INFO, "t.long", "many fields", LOG_STR("a", big), LOG_STR("b", big),
              LOG_STR("c", big), LOG_STR("d", big), LOG_STR("e", big));
    capture_end(&c);
    assert_true(c.len <= LOG_LINE_MAX);
    cJSON *line = only_line(&c);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(line, "truncated")));
    assert_non_null(cJSON_GetObjectItem(line, "a"));
    cJSON_Delete(line);
    free(c.text);
    free(big);
}

ESS_TEST_MAIN(NULL, NULL)
