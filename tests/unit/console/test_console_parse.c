/* console_parse: what browsers send, good and bad in the same tables. */
#include "testkit.h"

#include <stdio.h>
#include <string.h>

#include "console_parse.h"

typedef struct query_case {
    const char *query;
    const char *name;
    st_code status;
    const char *value; /* when ST_OK */
} query_case;

ESS_TEST(query_parameters)
{
    static const query_case cases[] = {
        {"state=open&limit=10", "state", ST_OK, "open"},
        {"state=open&limit=10", "limit", ST_OK, "10"},
        {"state=open&limit=10", "from", ST_NOT_FOUND, NULL},
        {"", "state", ST_NOT_FOUND, NULL},
        {"case=ESS-2569-000123", "case", ST_OK, "ESS-2569-000123"},
        {"case=ESS%2D2569%2d000123", "case", ST_OK, "ESS-2569-000123"},
        {"reason=a+b%20c", "reason", ST_OK, "a b c"},
        {"x=%E0%B8%81", "x", ST_OK, "ก"},
        {"state", "state", ST_OK, ""},
        {"state=", "state", ST_OK, ""},
        {"&&state=all&&", "state", ST_OK, "all"},
        {"st%61te=all", "state", ST_OK, "all"},
        /* malformed: bad escapes, NUL or control characters, invalid UTF-8, given twice */
        {"state=%4", "state", ST_INVALID, NULL},
        {"state=%zz", "state", ST_INVALID, NULL},
        {"state=a%00b", "state", ST_INVALID, NULL},
        {"state=a%0Ab", "state", ST_INVALID, NULL},
        {"state=%C0%AF", "state", ST_INVALID, NULL},
        {"state=%ED%A0%80", "state", ST_INVALID, NULL},
        {"state=open&state=all", "state", ST_INVALID, NULL},
        {"other=%zz&state=open", "state", ST_INVALID, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[CONSOLE_PARAM_MAX] = "untouched";
        st_code status = console_query_param(cases[i].query, strlen(cases[i].query),
                                             cases[i].name, out, sizeof(out));
        if (status != cases[i].status)
            fail_msg("query \"%s\" %s: %d, want %d", cases[i].query, cases[i].name, status,
                     cases[i].status);
        if (status == ST_OK)
            assert_string_equal(out, cases[i].value);
        else
            assert_string_equal(out, "untouched");
    }
    /* Bounds: a value longer than the output, a query longer than the limit. */
    char big[CONSOLE_QUERY_MAX + 64] = "case=";
    memset(big + 5, 'A', 300);
    big[305] = '\0';
    char out[CONSOLE_PARAM_MAX];
    assert_int_equal(console_query_param(big, strlen(big), "case", out, sizeof(out)), ST_LIMIT);
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(console_query_param(big, strlen(big), "a", out, sizeof(out)), ST_LIMIT);
    /* Not NUL-terminated input is read only up to len. */
    assert_int_equal(console_query_param("state=openXYZ", 10, "state", out, sizeof(out)), ST_OK);
    assert_string_equal(out, "open");
}

ESS_TEST(cookie_header)
{
    static const struct {
        const char *header;
        st_code status;
        const char *value;
    } cases[] = {
        {"ess_session=abc", ST_OK, "abc"},
        {"a=1; ess_session=abc; b=2", ST_OK, "abc"},
        {"a=1;ess_session=abc", ST_OK, "abc"},
        {"ess_session=\"abc\"", ST_OK, "abc"},
        {"ess_session=first; ess_session=second", ST_OK, "first"},
        {"xess_session=abc", ST_NOT_FOUND, NULL},
        {"ess_sessionx=abc", ST_NOT_FOUND, NULL},
        {"ess_session", ST_NOT_FOUND, NULL},
        {"", ST_NOT_FOUND, NULL},
        {"ess_session=a b", ST_INVALID, NULL},
        {"ess_session=a\\b", ST_INVALID, NULL},
        {"ess_session=a,b", ST_INVALID, NULL},
        {"ess_session=\x01", ST_INVALID, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[CONSOLE_TOKEN_TEXT + 1] = "untouched";
        st_code status = console_cookie_value(cases[i].header, strlen(cases[i].header),
                                              "ess_session", out, sizeof(out));
        if (status != cases[i].status)
            fail_msg("cookie \"%s\": %d, want %d", cases[i].header, status, cases[i].status);
        if (status == ST_OK)
            assert_string_equal(out, cases[i].value);
    }
    char out[8];
    assert_int_equal(console_cookie_value("ess_session=0123456789", 22, "ess_session", out,
                                          sizeof(out)),
                     ST_LIMIT);
    assert_true(console_token_text_valid("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn-_0"));
    assert_false(console_token_text_valid("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn-_"));
    assert_false(console_token_text_valid("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn-_01"));
    assert_false(console_token_text_valid("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn+/0"));
    assert_false(console_token_text_valid(NULL));
}

ESS_TEST(dates_and_numbers)
{
    static const struct {
        const char *text;
        bool ok;
    } dates[] = {
        {"2026-11-30", true}, {"2024-02-29", true}, {"2000-01-01", true},
        {"2999-12-31", true}, {"2023-02-29", false}, {"2100-02-29", false},
        {"2026-13-01", false}, {"2026-00-10", false}, {"2026-04-31", false},
        {"2026-1-01", false},  {"2026/11/30", false}, {"1999-12-31", false},
        {"2026-11-30x", false}, {"", false},          {"２026-11-30", false},
    };
    for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
        console_date date;
        st_code status = console_parse_date(dates[i].text, &date);
        if ((status == ST_OK) != dates[i].ok)
            fail_msg("date \"%s\": %d", dates[i].text, status);
    }
    int64_t value = 0;
    assert_int_equal(console_parse_int("500", 1, 5000, &value), ST_OK);
    assert_int_equal(value, 500);
    assert_int_equal(console_parse_int("5001", 1, 5000, &value), ST_INVALID);
    assert_int_equal(console_parse_int("0", 1, 5000, &value), ST_INVALID);
    assert_int_equal(console_parse_int("-1", 1, 5000, &value), ST_INVALID);
    assert_int_equal(console_parse_int("1e3", 1, 5000, &value), ST_INVALID);
    assert_int_equal(console_parse_int("99999999999999999999999", 1, 5000, &value), ST_INVALID);
    assert_int_equal(console_parse_int("", 1, 5000, &value), ST_INVALID);
}

ESS_TEST(case_numbers_and_names)
{
    assert_true(console_case_number_valid("ESS-2569-000123"));
    assert_true(console_case_number_valid("ESS-2569-1"));
    assert_false(console_case_number_valid("ess-2569-000123"));
    assert_false(console_case_number_valid("ESS-256-000123"));
    assert_false(console_case_number_valid("ESS-2569-"));
    assert_false(console_case_number_valid("ESS-2569-0001234567890"));
    assert_false(console_case_number_valid("ESS-2569-000123/x"));
    assert_false(console_case_number_valid("ESS-2569-000123 "));
    assert_false(console_case_number_valid("../etc"));
    assert_false(console_case_number_valid(""));
    assert_true(console_user_name_valid("cmd50"));
    assert_true(console_user_name_valid("somchai.k@police-th_1"));
    assert_false(console_user_name_valid(""));
    assert_false(console_user_name_valid("a b"));
    assert_false(console_user_name_valid("สมชาย"));
    char long_name[80];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    assert_false(console_user_name_valid(long_name));
    long_name[64] = '\0';
    assert_true(console_user_name_valid(long_name));
}

ESS_TEST(login_body)
{
    char name[CONSOLE_NAME_MAX], password[CONSOLE_PASSWORD_MAX + 1];
    static const char good[] = "{\"name\":\"cmd50\",\"password\":\"secret pass\"}";
    assert_int_equal(console_parse_login(good, strlen(good), name, password), ST_OK);
    assert_string_equal(name, "cmd50");
    assert_string_equal(password, "secret pass");
    static const char *const bad[] = {
        "",
        "[]",
        "null",
        "{\"name\":\"cmd50\"}",
        "{\"password\":\"x\"}",
        "{\"name\":5,\"password\":\"x\"}",
        "{\"name\":\"cmd50\",\"password\":5}",
        "{\"name\":\"cmd 50\",\"password\":\"x\"}",
        "{\"name\":\"cmd50\",\"password\":\"\"}",
        "{\"name\":\"cmd50\",\"password\":\"x\"",
        "{\"name\":\"cmd50\",\"password\":\"x\",\"a\":[[[[[[[[[[1]]]]]]]]]]}",
        "{\"name\":\"cmd50\",\"password\":\"a\\u0000b\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (console_parse_login(bad[i], strlen(bad[i]), name, password) != ST_INVALID)
            fail_msg("login body %s was accepted", bad[i]);
    /* A password over the bound. */
    char body[CONSOLE_PASSWORD_MAX + 100];
    int n = snprintf(body, sizeof(body), "{\"name\":\"a\",\"password\":\"");
    memset(body + n, 'p', CONSOLE_PASSWORD_MAX + 1);
    memcpy(body + n + CONSOLE_PASSWORD_MAX + 1, "\"}", 3);
    assert_int_equal(console_parse_login(body, strlen(body), name, password), ST_INVALID);
    assert_int_equal(console_parse_login(body, CONSOLE_BODY_MAX + 1, name, password), ST_LIMIT);
}

ESS_TEST(reveal_reason)
{
    char reason[CONSOLE_REASON_MAX];
    static const char thai[] = "{\"reason\":\"  โทรกลับผู้แจ้ง  \"}";
    assert_int_equal(console_parse_reason(thai, strlen(thai), reason), ST_OK);
    assert_string_equal(reason, "โทรกลับผู้แจ้ง");
    static const char *const bad[] = {
        "{\"reason\":\"\"}",        "{\"reason\":\"   \"}",     "{\"reason\":5}",
        "{\"why\":\"x\"}",          "{\"reason\":\"a\\nb\"}",   "{\"reason\":\"a\\u0007\"}",
        "{\"reason\":\"\\u0085x\"}", "not json",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (console_parse_reason(bad[i], strlen(bad[i]), reason) != ST_INVALID)
            fail_msg("reason body %s was accepted", bad[i]);
    /* 200 characters pass, 201 do not — characters, not bytes (Thai is 3 bytes each). */
    char body[1024];
    int n = snprintf(body, sizeof(body), "{\"reason\":\"");
    for (int i = 0; i < 200; i++)
        n += snprintf(body + n, sizeof(body) - (size_t)n, "ก");
    snprintf(body + n, sizeof(body) - (size_t)n, "\"}");
    assert_int_equal(console_parse_reason(body, strlen(body), reason), ST_OK);
    n = snprintf(body, sizeof(body), "{\"reason\":\"");
    for (int i = 0; i < 201; i++)
        n += snprintf(body + n, sizeof(body) - (size_t)n, "ก");
    snprintf(body + n, sizeof(body) - (size_t)n, "\"}");
    assert_int_equal(console_parse_reason(body, strlen(body), reason), ST_INVALID);
}

ESS_TEST(utf8_text)
{
    size_t chars = 0;
    assert_true(console_utf8_text("aก€😀", strlen("aก€😀"), false, &chars));
    assert_int_equal(chars, 4);
    assert_false(console_utf8_text("\xc3", 1, false, NULL));
    assert_false(console_utf8_text("\xc0\x80", 2, false, NULL));
    assert_false(console_utf8_text("\xf4\x90\x80\x80", 4, false, NULL));
    assert_false(console_utf8_text("a\tb", 3, false, NULL));
    assert_true(console_utf8_text("a\tb", 3, true, NULL));
    assert_false(console_utf8_text("a\x7f", 2, false, NULL));
}

ESS_TEST_MAIN(NULL, NULL)
