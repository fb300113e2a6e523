/* console_parse: the console's parsers of outside input — query strings, the Cookie header,
 * the JSON bodies of login and reveal-phone, dates, case numbers and tokens.
 *
 * Every parser is bounded (input length, output size), never allocates except where said
 * (cJSON inside the body parsers, freed before returning), is thread-safe, and leaves its
 * out-parameters untouched on failure. Nothing here logs or echoes input in an error text.
 * tests/fuzz/console_parse drives them with arbitrary bytes. */
#ifndef CONSOLE_PARSE_H
#define CONSOLE_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define CONSOLE_QUERY_MAX 2048        /* bytes of a query string looked at */
#define CONSOLE_PARAM_MAX 128         /* a decoded parameter value, with its NUL */
#define CONSOLE_COOKIE_HEADER_MAX 8192
#define CONSOLE_TOKEN_BYTES 32        /* session and CSRF tokens: 256 random bits */
#define CONSOLE_TOKEN_TEXT 44         /* base64url without padding: 43 characters + NUL */
#define CONSOLE_CASE_MAX 32           /* "ESS-2569-000123" and a margin, with the NUL */
#define CONSOLE_NAME_MAX 65           /* a console user name: 1..64 of [A-Za-z0-9._@-] */
#define CONSOLE_PASSWORD_MAX 1024     /* bytes of a password accepted for checking */
#define CONSOLE_REASON_CHARS_MAX 200  /* characters (code points) of a reveal reason */
#define CONSOLE_REASON_MAX (CONSOLE_REASON_CHARS_MAX * 4 + 1)
#define CONSOLE_BODY_MAX (16 * 1024)  /* JSON bodies of the API */

/* The value of parameter name in query (the text after '?', need not be NUL-terminated),
 * '+' and %XX decoded, into out (NUL-terminated). ST_NOT_FOUND when absent; ST_INVALID when
 * the query is malformed (a bad escape, a control character or NUL after decoding, invalid
 * UTF-8) or the parameter is given twice; ST_LIMIT when query is longer than
 * CONSOLE_QUERY_MAX or the value does not fit out. */
st_code console_query_param(const char *query, size_t len, const char *name, char *out,
                            size_t out_size);

/* The value of cookie name in one Cookie header value ("a=b; ess_session=XYZ"), into out.
 * The first cookie of that name wins. ST_NOT_FOUND when absent; ST_LIMIT when the header is
 * longer than CONSOLE_COOKIE_HEADER_MAX or the value does not fit; ST_INVALID when the value
 * holds characters a cookie value may not. */
st_code console_cookie_value(const char *header, size_t len, const char *name, char *out,
                             size_t out_size);

/* True when text is a token as the console issues them: 43 characters of base64url. */
bool console_token_text_valid(const char *text);

typedef struct console_date {
    int year, month, day;
} console_date;

/* "YYYY-MM-DD", a real calendar date between 2000-01-01 and 2999-12-31. */
st_code console_parse_date(const char *text, console_date *ret_date);
/* "YYYY-MM-DD" into out (11 bytes). */
void console_date_text(const console_date *date, char out[11]);
/* Days from a to b (b - a), for range checks. */
int64_t console_date_days_between(const console_date *a, const console_date *b);

/* True when text looks like a case number: 2..8 capital letters, '-', 4 digits, '-',
 * 1..12 digits ("ESS-2569-000123"), shorter than CONSOLE_CASE_MAX. */
bool console_case_number_valid(const char *text);

/* A decimal integer in [min, max] (no sign, no spaces). */
st_code console_parse_int(const char *text, int64_t min, int64_t max, int64_t *ret_value);

/* A user name as essctl accepts it: 1..64 of [A-Za-z0-9._@-]. */
bool console_user_name_valid(const char *name);

/* The login body {"name": "...", "password": "..."} (len <= CONSOLE_BODY_MAX). name goes
 * into name_out (CONSOLE_NAME_MAX bytes; a name that is not valid yields ST_INVALID like any
 * malformed body), the password into password_out (CONSOLE_PASSWORD_MAX + 1 bytes; 1..
 * CONSOLE_PASSWORD_MAX bytes, no NUL). The caller wipes password_out when done. */
st_code console_parse_login(const char *body, size_t len, char *name_out,
                            char *password_out);

/* The reveal-phone body {"reason": "..."}: 1..CONSOLE_REASON_CHARS_MAX characters of UTF-8
 * without control characters, surrounding white space removed, into out
 * (CONSOLE_REASON_MAX bytes). */
st_code console_parse_reason(const char *body, size_t len, char *out);

/* True when len bytes are well-formed UTF-8 without NUL or other C0 control characters
 * (tab excepted when allow_tab). *ret_chars (may be NULL) = code points. */
bool console_utf8_text(const char *text, size_t len, bool allow_tab, size_t *ret_chars);

#endif
