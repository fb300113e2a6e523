/* Text measures: UTF-16 units (LINE's text limit), grapheme clusters (label limit), strict
 * UTF-8, and the \uXXXX escaping of webhook bodies. */
#include "testkit.h"

#include <stdlib.h>
#include <string.h>

#include "emu_text.h"

typedef struct measure_case {
    const char *name;
    const char *text;
    size_t graphemes;
    size_t utf16_units;
} measure_case;

static const measure_case cases[] = {
    {"empty", "", 0, 0},
    {"ascii", "abc", 3, 3},
    /* DESIGN.md §1 short labels: vowels and tone marks join their consonant. */
    {"thai frenzy label", "คนคลุ้มคลั่งก่อเหตุ", 13, 19},
    {"thai threat label (sara am joins)", "ถูกข่มขู่/ทำร้าย", 10, 16},
    {"thai confinement label", "กักขังหน่วงเหนี่ยว", 13, 18},
    {"thai leading vowel stands alone", "เก", 2, 2},
    {"combining acute", "e\xcc\x81", 1, 2},
    {"zwj family",
     "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7"
     "\xe2\x80\x8d\xf0\x9f\x91\xa6",
     1, 11},
    {"skin tone modifier", "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", 1, 4},
    {"flag", "\xf0\x9f\x87\xb9\xf0\x9f\x87\xad", 1, 4},
    {"two flags", "\xf0\x9f\x87\xb9\xf0\x9f\x87\xad\xf0\x9f\x87\xaf\xf0\x9f\x87\xb5", 2, 8},
    {"flag and a lone indicator", "\xf0\x9f\x87\xb9\xf0\x9f\x87\xad\xf0\x9f\x87\xaf", 2, 6},
    {"keycap", "1\xef\xb8\x8f\xe2\x83\xa3", 1, 3},
    {"heart with variation selector", "\xe2\x9d\xa4\xef\xb8\x8f", 1, 2},
    {"crlf", "\r\n", 1, 2},
    {"lfcr", "\n\r", 2, 2},
    {"hangul syllables", "한국어", 3, 3},
    {"hangul jamo", "\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", 1, 3},
    {"emoji then text",
     "\xf0\x9f\x98\x80"
     "a",
     2, 3},
};

ESS_TEST(graphemes_and_utf16_units)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t graphemes = 0, units = 0;
        assert_int_equal(emu_grapheme_count(cases[i].text, strlen(cases[i].text), &graphemes),
                         ST_OK);
        assert_int_equal(emu_utf16_units(cases[i].text, strlen(cases[i].text), &units), ST_OK);
        if (graphemes != cases[i].graphemes || units != cases[i].utf16_units)
            fail_msg("%s: %zu graphemes (want %zu), %zu UTF-16 units (want %zu)", cases[i].name,
                     graphemes, cases[i].graphemes, units, cases[i].utf16_units);
    }
}

ESS_TEST(malformed_utf8_is_rejected)
{
    (void)state;
    static const char *const bad[] = {
        "\xc3",             /* truncated */
        "\xc0\xaf",         /* overlong '/' */
        "\xed\xa0\x80",     /* UTF-16 surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\x80",             /* lone continuation */
        "a\xffz",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = 0;
        assert_false(emu_utf8_valid(bad[i], strlen(bad[i])));
        assert_int_equal(emu_grapheme_count(bad[i], strlen(bad[i]), &n), ST_INVALID);
        assert_int_equal(emu_utf16_units(bad[i], strlen(bad[i]), &n), ST_INVALID);
    }
    assert_true(emu_utf8_valid("ก\xf0\x9f\x98\x80", 7));
}

ESS_TEST(escape_non_ascii_writes_utf16_escapes)
{
    (void)state;
    const char *json = "{\"text\":\"ก😀é\"}";
    char *escaped = NULL;
    size_t len = 0;
    assert_int_equal(emu_json_escape_non_ascii(json, strlen(json), &escaped, &len), ST_OK);
    assert_string_equal(escaped, "{\"text\":\"\\u0e01\\ud83d\\ude00\\u00e9\"}");
    assert_int_equal(len, strlen(escaped));
    free(escaped);
    assert_int_equal(emu_json_escape_non_ascii("\"\xc3\"", 3, &escaped, &len), ST_INVALID);
}
ESS_TEST_MAIN(NULL, NULL)
