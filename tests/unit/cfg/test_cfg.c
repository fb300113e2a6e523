#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"

typedef struct sample_config {
    char *listen;
    char *url;
    char *level;
    char *secret;
    char *name;
    int64_t workers;
    int64_t timeout_ms;
    int64_t max_body;
    bool redelivery;
    cfg_key key;
} sample_config;

static const cfg_field sample_fields[] = {
    CFG_LISTEN("T_LISTEN", "127.0.0.1:8080", "address", sample_config, listen),
    CFG_URL("T_URL", "nats://127.0.0.1:4222", "nats|tls", "bus", sample_config, url),
    CFG_ENUM("T_LEVEL", "info", "debug|info|warn|error", "level", sample_config, level),
    CFG_SECRET("T_SECRET", 256, "channel secret", sample_config, secret),
    CFG_STRING("T_NAME", "ess", 8, "short name", sample_config, name),
    CFG_INT("T_WORKERS", "4", 1, 64, "workers", sample_config, workers),
    CFG_DURATION("T_TIMEOUT", "2s", 10, 60000, "timeout", sample_config, timeout_ms),
    CFG_SIZE("T_MAX_BODY", "1MiB", 1, 64 << 20, "body limit", sample_config, max_body),
    CFG_BOOL("T_REDELIVERY", "on", "redelivery", sample_config, redelivery),
    CFG_KEY32("T_KEY", "data key", sample_config, key),
};
#define SAMPLE_COUNT (sizeof(sample_fields) / sizeof(sample_fields[0]))

/* A fake environment: NULL-terminated "NAME=value" list. */
static const char *fake_lookup(const char *name, void *closure)
{
    const char *const *env = closure;
    size_t len = strlen(name);
    for (size_t i = 0; env[i] != NULL; i++)
        if (strncmp(env[i], name, len) == 0 && env[i][len] == '=')
            return env[i] + len + 1;
    return NULL;
}

#define GOOD_KEY "T_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

ESS_TEST(defaults_fill_every_field)
{
    (void)state;
    const char *env[] = {"T_SECRET=s3cr3t-value", GOOD_KEY, NULL};
    sample_config config = {0};
    char *problems = NULL;
    assert_int_equal(cfg_load(sample_fields, SAMPLE_COUNT, fake_lookup, env, &config, &problems),
                     ST_OK);
    assert_null(problems);
    assert_string_equal(config.listen, "127.0.0.1:8080");
    assert_string_equal(config.level, "info");
    assert_string_equal(config.secret, "s3cr3t-value");
    assert_int_equal(config.workers, 4);
    assert_int_equal(config.timeout_ms, 2000);
    assert_int_equal(config.max_body, 1048576);
    assert_true(config.redelivery);
    assert_true(config.key.present);
    assert_memory_equal(config.key.bytes, "0123456789abcdef0123456789abcdef", 32);
    cfg_release(sample_fields, SAMPLE_COUNT, &config);
    assert_null(config.listen);
}

ESS_TEST(every_problem_is_reported_at_once)
{
    (void)state;
    const char *env[] = {"T_LISTEN=nowhere", "T_URL=http://x", "T_LEVEL=loud",
                         "T_NAME=much-too-long", "T_WORKERS=65", "T_TIMEOUT=soon",
                         "T_MAX_BODY=1TB", "T_REDELIVERY=maybe", "T_KEY=c2hvcnQ=", NULL};
    sample_config config = {0};
    char *problems = NULL;
    assert_int_equal(cfg_load(sample_fields, SAMPLE_COUNT, fake_lookup, env, &config, &problems),
                     ST_INVALID);
    assert_non_null(problems);
    assert_non_null(strstr(problems, "configuration has 10 problems"));
    const char *names[] = {"T_LISTEN", "T_URL", "T_LEVEL", "T_SECRET is required", "T_NAME",
                           "T_WORKERS", "T_TIMEOUT", "T_MAX_BODY", "T_REDELIVERY", "T_KEY"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_non_null(strstr(problems, names[i]));
    /* Nothing allocated is left behind in the target on failure. */
    assert_null(config.listen);
    assert_null(config.level);
    free(problems);
}

ESS_TEST(secret_values_never_appear_in_problems)
{
    (void)state;
    const char *env[] = {"T_SECRET=", "T_KEY=not-base64-but-secret-XYZZY", NULL};
    sample_config config = {0};
    char *problems = NULL;
    assert_int_equal(cfg_load(sample_fields, SAMPLE_COUNT, fake_lookup, env, &config, &problems),
                     ST_INVALID);
    assert_null(strstr(problems, "XYZZY"));
    assert_non_null(strstr(problems, "T_KEY"));
    assert_non_null(strstr(problems, "T_SECRET is required")); /* empty = not given */
    free(problems);

    FILE *help = tmpfile();
    cfg_print_help(help, sample_fields, SAMPLE_COUNT);
    rewind(help);
    char text[4096] = {0};
    size_t n = fread(text, 1, sizeof(text) - 1, help);
    fclose(help);
    assert_true(n > 0);
    assert_non_null(strstr(text, "T_SECRET"));
    assert_non_null(strstr(text, "(secret)"));
    assert_non_null(strstr(text, "default: 127.0.0.1:8080"));
}

ESS_TEST(value_from_file)
{
    (void)state;
    char path[] = "/tmp/ess-cfg-secret-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "from-file\n", 10), 10);
    close(fd);
    char file_var[128];
    snprintf(file_var, sizeof(file_var), "T_SECRET_FILE=%s", path);
    const char *env[] = {file_var, GOOD_KEY, NULL};
    sample_config config = {0};
    char *problems = NULL;
    assert_int_equal(cfg_load(sample_fields, SAMPLE_COUNT, fake_lookup, env, &config, &problems),
                     ST_OK);
    assert_string_equal(config.secret, "from-file");
    cfg_release(sample_fields, SAMPLE_COUNT, &config);

    const char *both[] = {file_var, "T_SECRET=x", GOOD_KEY, NULL};
    assert_int_equal(cfg_load(sample_fields, SAMPLE_COUNT, fake_lookup, both, &config, &problems),
                     ST_INVALID);
    assert_non_null(strstr(problems, "both given"));
    free(problems);
    unlink(path);
}

ESS_TEST(durations_and_sizes_parse)
{
    (void)state;
    static const struct {
        const char *text;
        st_code status;
        int64_t ms;
    } durations[] = {
        {"250ms", ST_OK, 250}, {"2s", ST_OK, 2000},  {"1.5s", ST_OK, 1500},
        {"30m", ST_OK, 1800000}, {"1h", ST_OK, 3600000}, {"7d", ST_OK, 604800000},
        {"100", ST_OK, 100},   {"", ST_INVALID, 0},  {"s", ST_INVALID, 0},
        {"-1s", ST_INVALID, 0}, {"3 weeks", ST_INVALID, 0}, {"1e300h", ST_LIMIT, 0},
    };
    for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        int64_t ms = -1;
        assert_int_equal(cfg_parse_duration_ms(durations[i].text, &ms), durations[i].status);
        if (durations[i].status == ST_OK)
            assert_int_equal(ms, durations[i].ms);
    }
    static const struct {
        const char *text;
        st_code status;
        int64_t bytes;
    } sizes[] = {
        {"512", ST_OK, 512},         {"64KiB", ST_OK, 65536}, {"1MiB", ST_OK, 1048576},
        {"2GiB", ST_OK, 2147483648}, {"1MB", ST_OK, 1000000}, {"1 MiB", ST_OK, 1048576},
        {"1XB", ST_INVALID, 0},      {"MiB", ST_INVALID, 0},
    };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        int64_t bytes = -1;
        assert_int_equal(cfg_parse_size(sizes[i].text, &bytes), sizes[i].status);
        if (sizes[i].status == ST_OK)
            assert_int_equal(bytes, sizes[i].bytes);
    }
}

ESS_TEST(listen_addresses_split)
{
    (void)state;
    char host[64];
    uint16_t port = 0;
    assert_int_equal(cfg_split_listen("127.0.0.1:8080", host, sizeof(host), &port), ST_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(cfg_split_listen("[::1]:9", host, sizeof(host), &port), ST_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 9);
    assert_int_equal(cfg_split_listen("localhost:0", host, sizeof(host), &port), ST_OK);
    assert_int_equal(cfg_split_listen("::1:80", host, sizeof(host), &port), ST_INVALID);
    assert_int_equal(cfg_split_listen("host", host, sizeof(host), &port), ST_INVALID);
    assert_int_equal(cfg_split_listen("host:70000", host, sizeof(host), &port), ST_INVALID);
    assert_int_equal(cfg_split_listen(":80", host, sizeof(host), &port), ST_INVALID);
    assert_int_equal(cfg_split_listen("a b:80", host, sizeof(host), &port), ST_INVALID);
}

ESS_TEST(several_tables_make_one_message)
{
    (void)state;
    typedef struct {
        int64_t a;
    } first_config;
    typedef struct {
        int64_t b;
    } second_config;
    static const cfg_field first[] = {CFG_INT("T_A", NULL, 0, 5, "a", first_config, a)};
    static const cfg_field second[] = {CFG_INT("T_B", "1", 0, 5, "b", second_config, b)};
    first_config one = {0};
    second_config two = {0};
    const cfg_table tables[] = {{first, 1, &one}, {second, 1, &two}};
    const char *env[] = {"T_A=9", "T_B=x", NULL};
    char *problems = NULL;
    assert_int_equal(cfg_load_tables(tables, 2, fake_lookup, env, &problems), ST_INVALID);
    assert_non_null(strstr(problems, "2 problems"));
    assert_non_null(strstr(problems, "T_A"));
    assert_non_null(strstr(problems, "T_B"));
    free(problems);
}

ESS_TEST_MAIN(NULL, NULL)
