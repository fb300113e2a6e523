#include "emu_text.h"

#include <stdlib.h>

st_code emu_utf8_next(const char *text, size_t len, size_t *pos, uint32_t *ret_code_point)
{
    const unsigned char *bytes = (const unsigned char *)text;
    size_t at = *pos;
    if (at >= len)
        return ST_INVALID;
    unsigned char lead = bytes[at];
    uint32_t code_point;
    size_t extra;
    uint32_t minimum;
    if (lead < 0x80) {
        *ret_code_point = lead;
        *pos = at + 1;
        return ST_OK;
    } else if ((lead & 0xE0) == 0xC0) {
        code_point = lead & 0x1F;
        extra = 1;
        minimum = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
        code_point = lead & 0x0F;
        extra = 2;
        minimum = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
        code_point = lead & 0x07;
        extra = 3;
        minimum = 0x10000;
    } else {
        return ST_INVALID;
    }
    if (len - at - 1 < extra)
        return ST_INVALID;
    for (size_t i = 1; i <= extra; i++) {
        unsigned char next = bytes[at + i];
        if ((next & 0xC0) != 0x80)
            return ST_INVALID;
        code_point = (code_point << 6) | (next & 0x3F);
    }
    if (code_point < minimum || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF))
        return ST_INVALID;
    *ret_code_point = code_point;
    *pos = at + 1 + extra;
    return ST_OK;
}

bool emu_utf8_valid(const char *text, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        uint32_t code_point;
        if (emu_utf8_next(text, len, &pos, &code_point) != ST_OK)
            return false;
    }
    return true;
}

st_code emu_utf16_units(const char *text, size_t len, size_t *ret_units)
{
    size_t pos = 0, units = 0;
    while (pos < len) {
        uint32_t code_point;
        if (emu_utf8_next(text, len, &pos, &code_point) != ST_OK)
            return ST_INVALID;
        units += code_point >= 0x10000 ? 2 : 1;
    }
    *ret_units = units;
    return ST_OK;
}

/* ---- grapheme clusters (UAX #29, the rules GB3..GB13 over the tables below) ---- */

typedef enum break_class {
    GB_OTHER = 0,
    GB_CR,
    GB_LF,
    GB_CONTROL,
    GB_EXTEND,
    GB_ZWJ,
    GB_REGIONAL,
    GB_PREPEND,
    GB_SPACING_MARK,
    GB_L,
    GB_V,
    GB_T,
    GB_LV,
    GB_LVT,
} break_class;

typedef struct code_range {
    uint32_t first, last;
    unsigned char klass;
} code_range;

/* Sorted, non-overlapping. Extend = Mn/Me marks (and the emoji modifiers, variation
 * selectors, tags, ZWNJ); SpacingMark = the Mc vowel signs that attach to a base. */
static const code_range break_ranges[] = {
    {0x0000, 0x0009, GB_CONTROL},
    {0x000A, 0x000A, GB_LF},
    {0x000B, 0x000C, GB_CONTROL},
    {0x000D, 0x000D, GB_CR},
    {0x000E, 0x001F, GB_CONTROL},
    {0x007F, 0x009F, GB_CONTROL},
    {0x00AD, 0x00AD, GB_CONTROL},
    {0x0300, 0x036F, GB_EXTEND},
    {0x0483, 0x0489, GB_EXTEND},
    {0x0591, 0x05BD, GB_EXTEND},
    {0x05BF, 0x05BF, GB_EXTEND},
    {0x05C1, 0x05C2, GB_EXTEND},
    {0x05C4, 0x05C5, GB_EXTEND},
    {0x05C7, 0x05C7, GB_EXTEND},
    {0x0600, 0x0605, GB_PREPEND},
    {0x0610, 0x061A, GB_EXTEND},
    {0x061C, 0x061C, GB_CONTROL},
    {0x064B, 0x065F, GB_EXTEND},
    {0x0670, 0x0670, GB_EXTEND},
    {0x06D6, 0x06DC, GB_EXTEND},
    {0x06DD, 0x06DD, GB_PREPEND},
    {0x06DF, 0x06E4, GB_EXTEND},
    {0x06E7, 0x06E8, GB_EXTEND},
    {0x06EA, 0x06ED, GB_EXTEND},
    {0x070F, 0x070F, GB_PREPEND},
    {0x0900, 0x0902, GB_EXTEND},
    {0x0903, 0x0903, GB_SPACING_MARK},
    {0x093A, 0x093A, GB_EXTEND},
    {0x093B, 0x093B, GB_SPACING_MARK},
    {0x093C, 0x093C, GB_EXTEND},
    {0x093E, 0x0940, GB_SPACING_MARK},
    {0x0941, 0x0948, GB_EXTEND},
    {0x0949, 0x094C, GB_SPACING_MARK},
    {0x094D, 0x094D, GB_EXTEND},
    {0x094E, 0x094F, GB_SPACING_MARK},
    {0x0951, 0x0957, GB_EXTEND},
    {0x0962, 0x0963, GB_EXTEND},
    {0x0981, 0x0981, GB_EXTEND},
    {0x0982, 0x0983, GB_SPACING_MARK},
    {0x09BC, 0x09BC, GB_EXTEND},
    {0x09BE, 0x09BE, GB_EXTEND},
    {0x09BF, 0x09C0, GB_SPACING_MARK},
    {0x09C1, 0x09C4, GB_EXTEND},
    {0x09C7, 0x09C8, GB_SPACING_MARK},
    {0x09CB, 0x09CC, GB_SPACING_MARK},
    {0x09CD, 0x09CD, GB_EXTEND},
    {0x09D7, 0x09D7, GB_EXTEND},
    {0x09E2, 0x09E3, GB_EXTEND},
    {0x0B82, 0x0B82, GB_EXTEND},
    {0x0BBE, 0x0BBE, GB_EXTEND},
    {0x0BBF, 0x0BBF, GB_SPACING_MARK},
    {0x0BC0, 0x0BC0, GB_EXTEND},
    {0x0BC1, 0x0BC2, GB_SPACING_MARK},
    {0x0BC6, 0x0BC8, GB_SPACING_MARK},
    {0x0BCA, 0x0BCC, GB_SPACING_MARK},
    {0x0BCD, 0x0BCD, GB_EXTEND},
    {0x0BD7, 0x0BD7, GB_EXTEND},
    /* Thai: MAI HAN-AKAT, SARA I..PHINTHU, MAITAIKHU..YAMAKKAN join the consonant before;
     * SARA AM is a spacing mark; leading vowels (U+0E40..U+0E44) stand alone. */
    {0x0E31, 0x0E31, GB_EXTEND},
    {0x0E33, 0x0E33, GB_SPACING_MARK},
    {0x0E34, 0x0E3A, GB_EXTEND},
    {0x0E47, 0x0E4E, GB_EXTEND},
    /* Lao */
    {0x0EB1, 0x0EB1, GB_EXTEND},
    {0x0EB3, 0x0EB3, GB_SPACING_MARK},
    {0x0EB4, 0x0EBC, GB_EXTEND},
    {0x0EC8, 0x0ECE, GB_EXTEND},
    /* Tibetan */
    {0x0F18, 0x0F19, GB_EXTEND},
    {0x0F35, 0x0F35, GB_EXTEND},
    {0x0F37, 0x0F37, GB_EXTEND},
    {0x0F39, 0x0F39, GB_EXTEND},
    {0x0F71, 0x0F7E, GB_EXTEND},
    {0x0F7F, 0x0F7F, GB_SPACING_MARK},
    {0x0F80, 0x0F84, GB_EXTEND},
    {0x0F86, 0x0F87, GB_EXTEND},
    {0x0F8D, 0x0FBC, GB_EXTEND},
    /* Myanmar */
    {0x102D, 0x1030, GB_EXTEND},
    {0x1031, 0x1031, GB_SPACING_MARK},
    {0x1032, 0x1037, GB_EXTEND},
    {0x1039, 0x103A, GB_EXTEND},
    {0x103B, 0x103C, GB_SPACING_MARK},
    {0x103D, 0x103E, GB_EXTEND},
    {0x1056, 0x1057, GB_SPACING_MARK},
    {0x1058, 0x1059, GB_EXTEND},
    {0x105E, 0x1060, GB_EXTEND},
    {0x1071, 0x1074, GB_EXTEND},
    {0x1082, 0x1082, GB_EXTEND},
    {0x1084, 0x1084, GB_SPACING_MARK},
    {0x1085, 0x1086, GB_EXTEND},
    {0x108D, 0x108D, GB_EXTEND},
    {0x109D, 0x109D, GB_EXTEND},
    /* Hangul Jamo */
    {0x1100, 0x115F, GB_L},
    {0x1160, 0x11A7, GB_V},
    {0x11A8, 0x11FF, GB_T},
    /* Khmer */
    {0x17B4, 0x17B5, GB_EXTEND},
    {0x17B6, 0x17B6, GB_SPACING_MARK},
    {0x17B7, 0x17BD, GB_EXTEND},
    {0x17BE, 0x17C5, GB_SPACING_MARK},
    {0x17C6, 0x17C6, GB_EXTEND},
    {0x17C7, 0x17C8, GB_SPACING_MARK},
    {0x17C9, 0x17D3, GB_EXTEND},
    {0x17DD, 0x17DD, GB_EXTEND},
    {0x180B, 0x180D, GB_EXTEND},
    {0x180E, 0x180E, GB_CONTROL},
    {0x1AB0, 0x1AFF, GB_EXTEND},
    {0x1DC0, 0x1DFF, GB_EXTEND},
    {0x200B, 0x200B, GB_CONTROL},
    {0x200C, 0x200C, GB_EXTEND},
    {0x200D, 0x200D, GB_ZWJ},
    {0x200E, 0x200F, GB_CONTROL},
    {0x2028, 0x202E, GB_CONTROL},
    {0x2060, 0x206F, GB_CONTROL},
    {0x20D0, 0x20F0, GB_EXTEND},
    {0x302A, 0x302F, GB_EXTEND},
    {0x3099, 0x309A, GB_EXTEND},
    {0xA960, 0xA97C, GB_L},
    /* 0xAC00..0xD7A3 (Hangul syllables) are classified arithmetically. */
    {0xD7B0, 0xD7C6, GB_V},
    {0xD7CB, 0xD7FB, GB_T},
    {0xFE00, 0xFE0F, GB_EXTEND},
    {0xFE20, 0xFE2F, GB_EXTEND},
    {0xFEFF, 0xFEFF, GB_CONTROL},
    {0xFFF0, 0xFFFB, GB_CONTROL},
    {0x1F1E6, 0x1F1FF, GB_REGIONAL},
    {0x1F3FB, 0x1F3FF, GB_EXTEND},
    {0xE0000, 0xE001F, GB_CONTROL},
    {0xE0020, 0xE007F, GB_EXTEND},
    {0xE0080, 0xE00FF, GB_CONTROL},
    {0xE0100, 0xE01EF, GB_EXTEND},
};

/* Extended_Pictographic (emoji and pictographs), for ZWJ sequences (GB11). */
static const code_range pictographic_ranges[] = {
    {0x00A9, 0x00A9, 1},   {0x00AE, 0x00AE, 1},   {0x203C, 0x203C, 1},   {0x2049, 0x2049, 1},
    {0x2122, 0x2122, 1},   {0x2139, 0x2139, 1},   {0x2194, 0x2199, 1},   {0x21A9, 0x21AA, 1},
    {0x231A, 0x231B, 1},   {0x2328, 0x2328, 1},   {0x2388, 0x2388, 1},   {0x23CF, 0x23CF, 1},
    {0x23E9, 0x23F3, 1},   {0x23F8, 0x23FA, 1},   {0x24C2, 0x24C2, 1},   {0x25AA, 0x25AB, 1},
    {0x25B6, 0x25B6, 1},   {0x25C0, 0x25C0, 1},   {0x25FB, 0x25FE, 1},   {0x2600, 0x2605, 1},
    {0x2607, 0x2612, 1},   {0x2614, 0x2685, 1},   {0x2690, 0x2705, 1},   {0x2708, 0x2712, 1},
    {0x2714, 0x2714, 1},   {0x2716, 0x2716, 1},   {0x271D, 0x271D, 1},   {0x2721, 0x2721, 1},
    {0x2728, 0x2728, 1},   {0x2733, 0x2734, 1},   {0x2744, 0x2744, 1},   {0x2747, 0x2747, 1},
    {0x274C, 0x274C, 1},   {0x274E, 0x274E, 1},   {0x2753, 0x2755, 1},   {0x2757, 0x2757, 1},
    {0x2763, 0x2767, 1},   {0x2795, 0x2797, 1},   {0x27A1, 0x27A1, 1},   {0x27B0, 0x27B0, 1},
    {0x27BF, 0x27BF, 1},   {0x2934, 0x2935, 1},   {0x2B05, 0x2B07, 1},   {0x2B1B, 0x2B1C, 1},
    {0x2B50, 0x2B50, 1},   {0x2B55, 0x2B55, 1},   {0x3030, 0x3030, 1},   {0x303D, 0x303D, 1},
    {0x3297, 0x3297, 1},   {0x3299, 0x3299, 1},   {0x1F000, 0x1F0FF, 1}, {0x1F10D, 0x1F10F, 1},
    {0x1F12F, 0x1F12F, 1}, {0x1F16C, 0x1F171, 1}, {0x1F17E, 0x1F17F, 1}, {0x1F18E, 0x1F18E, 1},
    {0x1F191, 0x1F19A, 1}, {0x1F1AD, 0x1F1E5, 1}, {0x1F201, 0x1F20F, 1}, {0x1F21A, 0x1F21A, 1},
    {0x1F22F, 0x1F22F, 1}, {0x1F232, 0x1F23A, 1}, {0x1F23C, 0x1F23F, 1}, {0x1F249, 0x1F3FA, 1},
    {0x1F400, 0x1F53D, 1}, {0x1F546, 0x1F64F, 1}, {0x1F680, 0x1F6FF, 1}, {0x1F774, 0x1F77F, 1},
    {0x1F7D5, 0x1F7FF, 1}, {0x1F80C, 0x1F80F, 1}, {0x1F848, 0x1F84F, 1}, {0x1F85A, 0x1F85F, 1},
    {0x1F888, 0x1F88F, 1}, {0x1F8AE, 0x1F8FF, 1}, {0x1F90C, 0x1F93A, 1}, {0x1F93C, 0x1F945, 1},
    {0x1F947, 0x1FAFF, 1}, {0x1FC00, 0x1FFFD, 1},
};

static const code_range *find_range(const code_range *ranges, size_t count, uint32_t code_point)
{
    size_t low = 0, high = count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (code_point < ranges[middle].first)
            high = middle;
        else if (code_point > ranges[middle].last)
            low = middle + 1;
        else
            return &ranges[middle];
    }
    return NULL;
}

static break_class classify(uint32_t code_point)
{
    if (code_point >= 0xAC00 && code_point <= 0xD7A3)
        return (code_point - 0xAC00) % 28 == 0 ? GB_LV : GB_LVT;
    const code_range *range =
        find_range(break_ranges, sizeof(break_ranges) / sizeof(break_ranges[0]), code_point);
    return range != NULL ? (break_class)range->klass : GB_OTHER;
}

static bool is_pictographic(uint32_t code_point)
{
    return find_range(pictographic_ranges,
                      sizeof(pictographic_ranges) / sizeof(pictographic_ranges[0]),
                      code_point) != NULL;
}

typedef struct cluster_state {
    break_class previous;
    size_t regional_run;    /* regional indicators in a row, ending at previous */
    bool pictographic_run;  /* previous ends "ExtPict Extend*" */
    bool zwj_after_picture; /* previous is the ZWJ of "ExtPict Extend* ZWJ" */
} cluster_state;

static bool breaks_before(const cluster_state *state, break_class current, bool pictographic)
{
    break_class previous = state->previous;
    if (previous == GB_CR && current == GB_LF)
        return false; /* GB3 */
    if (previous == GB_CR || previous == GB_LF || previous == GB_CONTROL)
        return true; /* GB4 */
    if (current == GB_CR || current == GB_LF || current == GB_CONTROL)
        return true; /* GB5 */
    if (previous == GB_L &&
        (current == GB_L || current == GB_V || current == GB_LV || current == GB_LVT))
        return false; /* GB6 */
    if ((previous == GB_LV || previous == GB_V) && (current == GB_V || current == GB_T))
        return false; /* GB7 */
    if ((previous == GB_LVT || previous == GB_T) && current == GB_T)
        return false; /* GB8 */
    if (current == GB_EXTEND || current == GB_ZWJ || current == GB_SPACING_MARK)
        return false; /* GB9, GB9a */
    if (previous == GB_PREPEND)
        return false; /* GB9b */
    if (state->zwj_after_picture && pictographic)
        return false; /* GB11 */
    if (previous == GB_REGIONAL && current == GB_REGIONAL && state->regional_run % 2 == 1)
        return false; /* GB12, GB13 */
    return true;
}

st_code emu_grapheme_count(const char *text, size_t len, size_t *ret_count)
{
    size_t pos = 0, count = 0;
    cluster_state state = {.previous = GB_OTHER};
    while (pos < len) {
        uint32_t code_point;
        if (emu_utf8_next(text, len, &pos, &code_point) != ST_OK)
            return ST_INVALID;
        break_class current = classify(code_point);
        bool pictographic = is_pictographic(code_point);
        if (count == 0 || breaks_before(&state, current, pictographic))
            count++;
        bool zwj_after_picture = current == GB_ZWJ && state.pictographic_run;
        if (pictographic)
            state.pictographic_run = true;
        else if (current != GB_EXTEND)
            state.pictographic_run = false;
        state.zwj_after_picture = zwj_after_picture;
        state.regional_run = current == GB_REGIONAL ? state.regional_run + 1 : 0;
        state.previous = current;
    }
    *ret_count = count;
    return ST_OK;
}

/* ---- \uXXXX escaping ---- */

static size_t put_escape(char *out, uint32_t unit)
{
    static const char hex[] = "0123456789abcdef";
    out[0] = '\\';
    out[1] = 'u';
    out[2] = hex[(unit >> 12) & 0xF];
    out[3] = hex[(unit >> 8) & 0xF];
    out[4] = hex[(unit >> 4) & 0xF];
    out[5] = hex[unit & 0xF];
    return 6;
}

st_code emu_json_escape_non_ascii(const char *json, size_t len, char **ret_out, size_t *ret_out_len)
{
    /* Worst case: every 4-byte sequence becomes 12 bytes (3x); every 2-byte one 6 (3x). */
    if (len > (SIZE_MAX - 1) / 3)
        return ST_LIMIT;
    char *out = malloc(len * 3 + 1);
    if (out == NULL)
        return ST_NOMEM;
    size_t pos = 0, written = 0;
    while (pos < len) {
        unsigned char byte = (unsigned char)json[pos];
        if (byte < 0x80) {
            out[written++] = (char)byte;
            pos++;
            continue;
        }
        uint32_t code_point;
        if (emu_utf8_next(json, len, &pos, &code_point) != ST_OK) {
            free(out);
            return ST_INVALID;
        }
        if (code_point >= 0x10000) {
            uint32_t offset = code_point - 0x10000;
            written += put_escape(out + written, 0xD800 + (offset >> 10));
            written += put_escape(out + written, 0xDC00 + (offset & 0x3FF));
        } else {
            written += put_escape(out + written, code_point);
        }
    }
    out[written] = '\0';
    *ret_out = out;
    *ret_out_len = written;
    return ST_OK;
}
