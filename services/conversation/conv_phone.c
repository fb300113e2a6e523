#include "conv_phone.h"

#include <string.h>

/* Thai digits are U+0E50..U+0E59, UTF-8 E0 B9 90..99. Returns the digit (0..9) and the bytes
 * it took, or -1. */
static int digit_at(const unsigned char *text, size_t len, size_t at, size_t *ret_width)
{
    if (text[at] >= '0' && text[at] <= '9') {
        *ret_width = 1;
        return text[at] - '0';
    }
    if (at + 2 < len && text[at] == 0xE0 && text[at + 1] == 0xB9 && text[at + 2] >= 0x90 &&
        text[at + 2] <= 0x99) {
        *ret_width = 3;
        return text[at + 2] - 0x90;
    }
    return -1;
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_separator(unsigned char c)
{
    return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')';
}

st_code conv_phone_parse(const char *text, size_t len, char ret_phone[CONV_PHONE_MAX])
{
    if (text == NULL)
        return ST_INVALID;
    if (len > CONV_PHONE_INPUT_MAX)
        return ST_LIMIT;
    const unsigned char *bytes = (const unsigned char *)text;
    size_t start = 0, end = len;
    while (start < end && is_space(bytes[start]))
        start++;
    while (end > start && is_space(bytes[end - 1]))
        end--;
    if (start == end)
        return ST_INVALID;

    bool plus = false;
    if (bytes[start] == '+') {
        plus = true;
        start++;
    }
    char digits[CONV_PHONE_INPUT_MAX + 1];
    size_t count = 0;
    for (size_t at = start; at < end;) {
        size_t width = 0;
        int digit = digit_at(bytes, end, at, &width);
        if (digit >= 0) {
            digits[count++] = (char)('0' + digit);
            at += width;
        } else if (is_separator(bytes[at])) {
            at++;
        } else {
            return ST_INVALID;
        }
    }
    digits[count] = '\0';
    if (count == 0)
        return ST_INVALID;

    /* International form: 66 then the national number without (or with) its trunk 0. */
    const char *national_tail = NULL;
    if (count >= 2 && digits[0] == '6' && digits[1] == '6' && (plus || count >= 10)) {
        national_tail = digits + 2;
        if (national_tail[0] == '0')
            national_tail++;
    } else if (plus) {
        return ST_INVALID; /* another country */
    }
    char national[CONV_PHONE_INPUT_MAX + 2];
    if (national_tail != NULL) {
        size_t tail_len = strlen(national_tail);
        national[0] = '0';
        memcpy(national + 1, national_tail, tail_len + 1);
    } else {
        memcpy(national, digits, count + 1);
    }

    size_t national_len = strlen(national);
    if (national[0] != '0')
        return ST_INVALID;
    char second = national[1];
    bool mobile = national_len == 10 && (second == '6' || second == '8' || second == '9');
    bool landline = national_len == 9 && (second == '2' || second == '3' || second == '4' ||
                                          second == '5' || second == '7');
    if (!mobile && !landline)
        return ST_INVALID;
    memcpy(ret_phone, national, national_len + 1);
    return ST_OK;
}

bool conv_phone_looks_attempted(const char *text, size_t len, int min_digits)
{
    if (text == NULL)
        return false;
    const unsigned char *bytes = (const unsigned char *)text;
    int found = 0;
    for (size_t at = 0; at < len;) {
        size_t width = 1;
        if (digit_at(bytes, len, at, &width) >= 0)
            found++;
        at += width;
    }
    return found >= min_digits;
}

void conv_phone_mask(const char *phone, char ret_masked[CONV_PHONE_MASKED_MAX])
{
    size_t len = phone != NULL ? strnlen(phone, CONV_PHONE_MAX) : 0;
    bool digits_only = len > 0;
    for (size_t i = 0; i < len; i++)
        if (phone[i] < '0' || phone[i] > '9')
            digits_only = false;
    if (digits_only && len == 10) {
        /* 08x-xxx-x678 */
        memcpy(ret_masked, phone, 2);
        memcpy(ret_masked + 2, "x-xxx-x", 7);
        memcpy(ret_masked + 9, phone + 7, 3);
        ret_masked[12] = '\0';
    } else if (digits_only && len == 9) {
        /* 02x-xxx-567 */
        memcpy(ret_masked, phone, 2);
        memcpy(ret_masked + 2, "x-xxx-", 6);
        memcpy(ret_masked + 8, phone + 6, 3);
        ret_masked[11] = '\0';
    } else {
        memcpy(ret_masked, "x", 2);
    }
}
