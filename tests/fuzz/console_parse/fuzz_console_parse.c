/* libFuzzer target: ess-console's parsers of outside input on arbitrary bytes. The first byte
 * picks the parser, the rest is its input.
 *
 * Besides "no crash, no leak, no undefined behaviour" it checks what the console relies on:
 * a decoded query value is bounded UTF-8 text without control characters; a cookie value
 * holds cookie octets only; an accepted login has a valid user name and a bounded password;
 * an accepted reason is 1..200 characters of clean text; an accepted date prints back to the
 * same text; a case number accepted is short and plain. A violation aborts (a finding). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "console_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *text, size_t max)
{
    size_t len = strnlen(text, max);
    if (len >= max || !console_utf8_text(text, len, false, NULL))
        abort();
}

static void query(const char *input, size_t len)
{
    static const char *const names[] = {"state", "from", "to", "limit", "case", "province"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char out[CONSOLE_PARAM_MAX];
        if (console_query_param(input, len, names[i], out, sizeof(out)) == ST_OK)
            check_text(out, sizeof(out));
    }
}

static void cookie(const char *input, size_t len)
{
    char out[CONSOLE_TOKEN_TEXT + 1];
    if (console_cookie_value(input, len, "ess_session", out, sizeof(out)) != ST_OK)
        return;
    for (const char *p = out; *p != '\0'; p++)
        if (*p <= ' ' || *p == '"' || *p == ',' || *p == ';' || *p == '\\' || *p == 0x7f)
            abort();
    (void)console_token_text_valid(out);
}

static void login(const char *input, size_t len)
{
    char name[CONSOLE_NAME_MAX], password[CONSOLE_PASSWORD_MAX + 1];
    if (console_parse_login(input, len, name, password) != ST_OK)
        return;
    size_t password_len = strnlen(password, sizeof(password));
    if (!console_user_name_valid(name) || password_len == 0 || password_len > CONSOLE_PASSWORD_MAX)
        abort();
}

static void reason(const char *input, size_t len)
{
    char out[CONSOLE_REASON_MAX];
    if (console_parse_reason(input, len, out) != ST_OK)
        return;
    size_t chars = 0;
    size_t out_len = strnlen(out, sizeof(out));
    if (out_len == 0 || out_len >= sizeof(out) ||
        !console_utf8_text(out, out_len, false, &chars) || chars > CONSOLE_REASON_CHARS_MAX ||
        out[0] == ' ' || out[out_len - 1] == ' ')
        abort();
}

static void date_and_case(const char *input)
{
    console_date date;
    if (console_parse_date(input, &date) == ST_OK) {
        char text[11];
        console_date_text(&date, text);
        if (strcmp(text, input) != 0)
            abort();
        console_date other = {.year = 2000, .month = 1, .day = 1};
        if (console_date_days_between(&other, &date) < 0)
            abort();
    }
    if (console_case_number_valid(input) &&
        (strlen(input) >= CONSOLE_CASE_MAX || strpbrk(input, "/.%? ") != NULL))
        abort();
    int64_t value = 0;
    if (console_parse_int(input, 1, 5000, &value) == ST_OK && (value < 1 || value > 5000))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 20000)
        return 0;
    size_t len = size - 1;
    /* A NUL-terminated copy for the parsers that take C strings; the others get len. */
    char *input = malloc(len + 1);
    if (input == NULL)
        return 0;
    memcpy(input, data + 1, len);
    input[len] = '\0';
    switch (data[0] % 5) {
    case 0: query(input, len); break;
    case 1: cookie(input, len); break;
    case 2: login(input, len); break;
    case 3: reason(input, len); break;
    default: date_and_case(input); break;
    }
    free(input);
    return 0;
}
