#include "notifier_text.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define ELLIPSIS "\xE2\x80\xA6" /* U+2026, one UTF-16 unit, three bytes */
#define BANGKOK_OFFSET_SECONDS (7 * 3600)

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
static bool next_code_point(const char *text, size_t len, size_t *pos, uint32_t *ret_cp)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t at = *pos;
    unsigned char lead = s[at];
    uint32_t cp;
    size_t extra;
    if (lead < 0x80) {
        *ret_cp = lead;
        *pos = at + 1;
        return true;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
        cp = lead & 0x1F;
        extra = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        cp = lead & 0x0F;
        extra = 2;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        cp = lead & 0x07;
        extra = 3;
    } else {
        return false;
    }
    if (len - at <= extra)
        return false;
    for (size_t i = 1; i <= extra; i++) {
        if ((s[at + i] & 0xC0) != 0x80)
            return false;
        cp = (cp << 6) | (s[at + i] & 0x3F);
    }
    if ((extra == 2 && cp < 0x800) || (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return false;
    *ret_cp = cp;
    *pos = at + 1 + extra;
    return true;
}

/* Code points that continue the cluster before them (Extend and SpacingMark of UAX #29 for
 * the scripts we write). */
static const struct {
    uint32_t first, last;
} extending[] = {
    {0x0300, 0x036F},   /* combining diacritical marks */
    {0x0E31, 0x0E31},   /* Thai MAI HAN-AKAT */
    {0x0E33, 0x0E3A},   /* Thai SARA AM (a spacing mark) and the vowels above and below */
    {0x0E47, 0x0E4E},   /* Thai tone marks, MAITAIKHU, THANTHAKHAT ... */
    {0x0EB1, 0x0EB1},   /* Lao vowel sign MAI KAN */
    {0x0EB3, 0x0EBC},   /* Lao vowels */
    {0x0EC8, 0x0ECE},   /* Lao tone marks */
    {0x1AB0, 0x1AFF},   /* combining diacritical marks extended */
    {0x1DC0, 0x1DFF},   /* combining diacritical marks supplement */
    {0x200C, 0x200D},   /* ZWNJ, ZWJ */
    {0x20D0, 0x20FF},   /* combining marks for symbols (keycaps) */
    {0xFE00, 0xFE0F},   /* variation selectors */
    {0xFE20, 0xFE2F},   /* combining half marks */
    {0x1F3FB, 0x1F3FF}, /* emoji skin tones */
    {0xE0020, 0xE007F}, /* tags (subdivision flags) */
    {0xE0100, 0xE01EF}, /* variation selectors supplement */
};

static bool extends(uint32_t cp)
{
    for (size_t i = 0; i < sizeof(extending) / sizeof(extending[0]); i++)
        if (cp >= extending[i].first && cp <= extending[i].last)
            return true;
    return false;
}

static bool regional_indicator(uint32_t cp)
{
    return cp >= 0x1F1E6 && cp <= 0x1F1FF;
}

st_code notifier_text_units(const char *text, size_t len, size_t *ret_units)
{
    size_t units = 0, pos = 0;
    while (pos < len) {
        uint32_t cp;
        if (!next_code_point(text, len, &pos, &cp))
            return ST_INVALID;
        units += cp >= 0x10000 ? 2 : 1;
    }
    *ret_units = units;
    return ST_OK;
}

st_code notifier_text_prefix(const char *text, size_t len, size_t max_units, size_t max_bytes,
                             size_t *ret_bytes, size_t *ret_units)
{
    size_t pos = 0, units = 0, best_bytes = 0, best_units = 0;
    uint32_t previous = 0;
    size_t regional_run = 0; /* regional indicators right before this code point */
    bool fits = true;
    while (pos < len) {
        size_t start = pos;
        uint32_t cp;
        if (!next_code_point(text, len, &pos, &cp))
            return ST_INVALID;
        bool joins =
            start > 0 && (extends(cp) || previous == 0x200D || (previous == '\r' && cp == '\n') ||
                          (regional_indicator(cp) && regional_run % 2 == 1));
        if (!joins && fits) {
            if (units <= max_units && start <= max_bytes) {
                best_bytes = start;
                best_units = units;
            } else {
                fits = false; /* keep reading: the rest must still be valid UTF-8 */
            }
        }
        units += cp >= 0x10000 ? 2 : 1;
        regional_run = regional_indicator(cp) ? regional_run + 1 : 0;
        previous = cp;
    }
    if (fits && units <= max_units && len <= max_bytes) {
        best_bytes = len;
        best_units = units;
    }
    *ret_bytes = best_bytes;
    *ret_units = best_units;
    return ST_OK;
}

st_code notifier_text_fit(const char *text, size_t max_units, char *out, size_t out_size,
                          bool *ret_cut)
{
    if (out_size < 4 || max_units < 1 || text == NULL) {
        if (out_size > 0)
            out[0] = '\0';
        return ST_INVALID;
    }
    size_t len = strlen(text), bytes = 0, units = 0;
    st_code code = notifier_text_prefix(text, len, max_units, out_size - 1, &bytes, &units);
    if (code != ST_OK) {
        out[0] = '\0';
        return code;
    }
    bool cut = bytes < len;
    if (cut) /* room for the ellipsis: one unit, three bytes */
        code = notifier_text_prefix(text, len, max_units - 1, out_size - 4, &bytes, &units);
    if (code != ST_OK) {
        out[0] = '\0';
        return code;
    }
    memcpy(out, text, bytes);
    if (cut) {
        /* A cut right after a space looks unfinished twice: drop trailing spaces first. */
        while (bytes > 0 && out[bytes - 1] == ' ')
            bytes--;
        memcpy(out + bytes, ELLIPSIS, 3);
        bytes += 3;
    }
    out[bytes] = '\0';
    if (ret_cut != NULL)
        *ret_cut = cut;
    return ST_OK;
}

void notifier_text_thai_time(int64_t epoch_seconds, char *out, size_t out_size)
{
    static const char *const months[12] = {"ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.",
                                           "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.",  "พ.ย.", "ธ.ค."};
    time_t local = (time_t)(epoch_seconds + BANGKOK_OFFSET_SECONDS);
    struct tm parts;
    if (gmtime_r(&local, &parts) == NULL) {
        snprintf(out, out_size, "-");
        return;
    }
    snprintf(out, out_size, "%d %s %d เวลา %02d:%02d น.", parts.tm_mday, months[parts.tm_mon],
             parts.tm_year + 1900 + 543, parts.tm_hour, parts.tm_min);
}

void notifier_text_distance(int64_t meters, char *out, size_t out_size)
{
    if (meters < 0)
        meters = 0;
    int64_t tenths = (meters + 50) / 100; /* of a kilometre, rounded */
    if (meters < 1000)
        snprintf(out, out_size, "%lld ม.", (long long)meters);
    else if (tenths < 100)
        snprintf(out, out_size, "%lld.%lld กม.", (long long)(tenths / 10),
                 (long long)(tenths % 10));
    else
        snprintf(out, out_size, "%lld กม.", (long long)((meters + 500) / 1000));
}
