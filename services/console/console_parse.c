/* console_parse: bounded parsers of what browsers send. See console_parse.h. */
#include "console_parse.h"

#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "vault.h"

bool console_utf8_text(const char *text, size_t len, bool allow_tab, size_t *ret_chars)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t chars = 0;
    for (size_t i = 0; i < len; chars++) {
        unsigned char c = s[i];
        if (c < 0x80) {
            if ((c < 0x20 && !(allow_tab && c == '\t')) || c == 0x7f)
                return false;
            i++;
            continue;
        }
        size_t extra;
        uint32_t code;
        if (c >= 0xc2 && c <= 0xdf) {
            extra = 1;
            code = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            extra = 2;
            code = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            extra = 3;
            code = c & 0x07;
        } else {
            return false;
        }
        if (i + extra >= len)
            return false;
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            code = (code << 6) | (s[i + k] & 0x3f);
        }
        /* overlongs, surrogates, beyond U+10FFFF; C1 controls are refused too */
        if ((extra == 2 && code < 0x800) || (extra == 3 && (code < 0x10000 || code > 0x10ffff)) ||
            (code >= 0xd800 && code <= 0xdfff) || (code >= 0x80 && code <= 0x9f))
            return false;
        i += extra + 1;
    }
    if (ret_chars != NULL)
        *ret_chars = chars;
    return true;
}

/* Decodes one query component (key or value): '+' is a space, %XX a byte. */
static st_code decode_component(const char *text, size_t len, char *out, size_t out_size,
                                size_t *ret_len)
{
    size_t used = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '%') {
            if (i + 2 >= len)
                return ST_INVALID;
            int high = vault_hex_digit(text[i + 1]), low = vault_hex_digit(text[i + 2]);
            if (high < 0 || low < 0)
                return ST_INVALID;
            c = (char)(high * 16 + low);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (used + 1 >= out_size)
            return ST_LIMIT;
        out[used++] = c;
    }
    out[used] = '\0';
    if (!console_utf8_text(out, used, false, NULL))
        return ST_INVALID;
    *ret_len = used;
    return ST_OK;
}

st_code console_query_param(const char *query, size_t len, const char *name, char *out,
                            size_t out_size)
{
    if (query == NULL || name == NULL || out == NULL || out_size == 0)
        return ST_INVALID;
    if (len > CONSOLE_QUERY_MAX)
        return ST_LIMIT;
    char value[CONSOLE_PARAM_MAX];
    bool found = false;
    size_t value_len = 0;
    size_t pos = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && query[end] != '&')
            end++;
        size_t eq = pos;
        while (eq < end && query[eq] != '=')
            eq++;
        char key[64];
        size_t key_len = 0;
        /* A key longer than any we know is not ours: skipped, as long as it is well-formed. */
        st_code status = decode_component(query + pos, eq - pos, key, sizeof(key), &key_len);
        if (status == ST_INVALID)
            return ST_INVALID;
        if (status == ST_OK && strcmp(key, name) == 0) {
            if (found)
                return ST_INVALID; /* given twice: which one was meant? */
            const char *raw = eq < end ? query + eq + 1 : query + end;
            size_t raw_len = eq < end ? end - eq - 1 : 0;
            status = decode_component(raw, raw_len, value, sizeof(value), &value_len);
            if (status != ST_OK)
                return status;
            found = true;
        } else if (eq < end) {
            /* Other parameters must still be well-formed. */
            char ignored[CONSOLE_QUERY_MAX + 1];
            size_t ignored_len = 0;
            if (decode_component(query + eq + 1, end - eq - 1, ignored, sizeof(ignored),
                                 &ignored_len) == ST_INVALID)
                return ST_INVALID;
        }
        pos = end + 1;
    }
    if (!found)
        return ST_NOT_FOUND;
    if (value_len + 1 > out_size)
        return ST_LIMIT;
    memcpy(out, value, value_len + 1);
    return ST_OK;
}

/* RFC 6265 cookie-octet: visible ASCII except '"', ',', ';' and '\'. */
static bool cookie_octet(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
           (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

st_code console_cookie_value(const char *header, size_t len, const char *name, char *out,
                             size_t out_size)
{
    if (header == NULL || name == NULL || out == NULL || out_size == 0)
        return ST_INVALID;
    if (len > CONSOLE_COOKIE_HEADER_MAX)
        return ST_LIMIT;
    size_t name_len = strlen(name);
    size_t pos = 0;
    while (pos < len) {
        while (pos < len && (header[pos] == ' ' || header[pos] == '\t' || header[pos] == ';'))
            pos++;
        size_t end = pos;
        while (end < len && header[end] != ';')
            end++;
        size_t eq = pos;
        while (eq < end && header[eq] != '=')
            eq++;
        size_t key_end = eq;
        while (key_end > pos && (header[key_end - 1] == ' ' || header[key_end - 1] == '\t'))
            key_end--;
        if (eq < end && key_end - pos == name_len && memcmp(header + pos, name, name_len) == 0) {
            size_t value_start = eq + 1, value_end = end;
            while (value_start < value_end && header[value_start] == ' ')
                value_start++;
            while (value_end > value_start &&
                   (header[value_end - 1] == ' ' || header[value_end - 1] == '\t'))
                value_end--;
            /* A value may be quoted (RFC 6265 §4.1.1). */
            if (value_end - value_start >= 2 && header[value_start] == '"' &&
                header[value_end - 1] == '"') {
                value_start++;
                value_end--;
            }
            size_t value_len = value_end - value_start;
            for (size_t i = value_start; i < value_end; i++)
                if (!cookie_octet((unsigned char)header[i]))
                    return ST_INVALID;
            if (value_len + 1 > out_size)
                return ST_LIMIT;
            memcpy(out, header + value_start, value_len);
            out[value_len] = '\0';
            return ST_OK;
        }
        pos = end + 1;
    }
    return ST_NOT_FOUND;
}

bool console_token_text_valid(const char *text)
{
    if (text == NULL || strnlen(text, CONSOLE_TOKEN_TEXT) != CONSOLE_TOKEN_TEXT - 1)
        return false;
    for (size_t i = 0; i < CONSOLE_TOKEN_TEXT - 1; i++) {
        char c = text[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

static bool leap_year(int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && leap_year(year) ? 29 : days[month - 1];
}

st_code console_parse_date(const char *text, console_date *ret_date)
{
    if (text == NULL || ret_date == NULL || strnlen(text, 11) != 10 || text[4] != '-' ||
        text[7] != '-')
        return ST_INVALID;
    int digits[8];
    int n = 0;
    for (int i = 0; i < 10; i++) {
        if (i == 4 || i == 7)
            continue;
        if (text[i] < '0' || text[i] > '9')
            return ST_INVALID;
        digits[n++] = text[i] - '0';
    }
    console_date date = {
        .year = digits[0] * 1000 + digits[1] * 100 + digits[2] * 10 + digits[3],
        .month = digits[4] * 10 + digits[5],
        .day = digits[6] * 10 + digits[7],
    };
    if (date.year < 2000 || date.year > 2999 || date.month < 1 || date.month > 12 ||
        date.day < 1 || date.day > days_in_month(date.year, date.month))
        return ST_INVALID;
    *ret_date = date;
    return ST_OK;
}

void console_date_text(const console_date *date, char out[11])
{
    /* Bounded by console_parse_date: 4-digit year, 2-digit month and day. */
    int year = date->year % 10000, month = date->month % 100, day = date->day % 100;
    out[0] = (char)('0' + year / 1000);
    out[1] = (char)('0' + year / 100 % 10);
    out[2] = (char)('0' + year / 10 % 10);
    out[3] = (char)('0' + year % 10);
    out[4] = '-';
    out[5] = (char)('0' + month / 10);
    out[6] = (char)('0' + month % 10);
    out[7] = '-';
    out[8] = (char)('0' + day / 10);
    out[9] = (char)('0' + day % 10);
    out[10] = '\0';
}

/* Days since 1970-01-01 (proleptic Gregorian; H. Hinnant's days_from_civil). */
static int64_t days_from_civil(const console_date *date)
{
    int64_t y = date->year - (date->month <= 2);
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t mp = (date->month + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + date->day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int64_t console_date_days_between(const console_date *a, const console_date *b)
{
    return days_from_civil(b) - days_from_civil(a);
}

bool console_case_number_valid(const char *text)
{
    if (text == NULL)
        return false;
    size_t len = strnlen(text, CONSOLE_CASE_MAX);
    if (len >= CONSOLE_CASE_MAX)
        return false;
    size_t i = 0, letters = 0, year = 0, number = 0;
    while (i < len && text[i] >= 'A' && text[i] <= 'Z') {
        i++;
        letters++;
    }
    if (letters < 2 || letters > 8 || i >= len || text[i++] != '-')
        return false;
    while (i < len && text[i] >= '0' && text[i] <= '9') {
        i++;
        year++;
    }
    if (year != 4 || i >= len || text[i++] != '-')
        return false;
    while (i < len && text[i] >= '0' && text[i] <= '9') {
        i++;
        number++;
    }
    return number >= 1 && number <= 12 && i == len;
}

st_code console_parse_int(const char *text, int64_t min, int64_t max, int64_t *ret_value)
{
    if (text == NULL || ret_value == NULL || text[0] == '\0')
        return ST_INVALID;
    int64_t value = 0;
    for (size_t i = 0; text[i] != '\0'; i++) {
        if (text[i] < '0' || text[i] > '9' || i >= 18)
            return ST_INVALID;
        value = value * 10 + (text[i] - '0');
    }
    if (value < min || value > max)
        return ST_INVALID;
    *ret_value = value;
    return ST_OK;
}

bool console_user_name_valid(const char *name)
{
    if (name == NULL)
        return false;
    size_t len = strnlen(name, CONSOLE_NAME_MAX);
    if (len == 0 || len >= CONSOLE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '@' || c == '-'))
            return false;
    }
    return true;
}

/* The body as a JSON object (bounded size and nesting); caller deletes. */
static cJSON *parse_object(const char *body, size_t len)
{
    if (body == NULL || len == 0 || len > CONSOLE_BODY_MAX)
        return NULL;
    /* cJSON recurses per nesting level: refuse deep documents before parsing. */
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (c == '\0')
            return NULL;
        if (in_string) {
            if (c == '\\') {
                /* An escaped NUL would cut the C string cJSON hands back: refused. */
                if (i + 5 < len && body[i + 1] == 'u' && body[i + 2] == '0' &&
                    body[i + 3] == '0' && body[i + 4] == '0' && body[i + 5] == '0')
                    return NULL;
                i++;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > 8)
                return NULL;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (root != NULL && !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

st_code console_parse_login(const char *body, size_t len, char *name_out, char *password_out)
{
    if (name_out == NULL || password_out == NULL)
        return ST_INVALID;
    if (len > CONSOLE_BODY_MAX)
        return ST_LIMIT;
    cJSON *root = parse_object(body, len);
    st_code status = ST_INVALID;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    const cJSON *password = cJSON_GetObjectItemCaseSensitive(root, "password");
    if (!cJSON_IsString(name) || !cJSON_IsString(password) ||
        !console_user_name_valid(name->valuestring))
        goto cleanup;
    size_t password_len = strnlen(password->valuestring, CONSOLE_PASSWORD_MAX + 1);
    if (password_len == 0 || password_len > CONSOLE_PASSWORD_MAX)
        goto cleanup;
    memcpy(name_out, name->valuestring, strlen(name->valuestring) + 1);
    memcpy(password_out, password->valuestring, password_len + 1);
    status = ST_OK;
cleanup:
    if (cJSON_IsString(password))
        OPENSSL_cleanse(password->valuestring, strlen(password->valuestring));
    cJSON_Delete(root);
    return status;
}

st_code console_parse_reason(const char *body, size_t len, char *out)
{
    if (out == NULL)
        return ST_INVALID;
    if (len > CONSOLE_BODY_MAX)
        return ST_LIMIT;
    cJSON *root = parse_object(body, len);
    st_code status = ST_INVALID;
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(root, "reason");
    if (!cJSON_IsString(reason))
        goto cleanup;
    const char *text = reason->valuestring;
    size_t text_len = strlen(text);
    while (text_len > 0 && (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')) {
        text++;
        text_len--;
    }
    while (text_len > 0 && (text[text_len - 1] == ' ' || text[text_len - 1] == '\t' ||
                            text[text_len - 1] == '\n' || text[text_len - 1] == '\r'))
        text_len--;
    size_t chars = 0;
    if (text_len == 0 || text_len >= CONSOLE_REASON_MAX ||
        !console_utf8_text(text, text_len, false, &chars) || chars > CONSOLE_REASON_CHARS_MAX)
        goto cleanup;
    memcpy(out, text, text_len);
    out[text_len] = '\0';
    status = ST_OK;
cleanup:
    cJSON_Delete(root);
    return status;
}
