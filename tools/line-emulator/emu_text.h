/* emu_text: the text measures LINE applies to message fields.
 *
 * LINE counts a text message in UTF-16 code units (an emoji outside the BMP counts 2) and we
 * count labels in user-perceived characters (extended grapheme clusters, UAX #29): a Thai
 * consonant with its vowel and tone marks is one, a ZWJ emoji family is one, a flag is one.
 * The grapheme tables cover the scripts ESS users write (Thai, Lao, Burmese, Khmer, Latin,
 * Devanagari, Bengali, Tamil, Arabic, Hebrew, Hangul, kana) and emoji; other scripts fall back
 * to one cluster per code point, which is never more lenient than LINE.
 *
 * All functions are pure and thread-safe. Input is (pointer, length); no NUL needed. */
#ifndef EMU_TEXT_H
#define EMU_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Decodes one code point of strict UTF-8 at text[*pos] (no overlongs, no surrogates, no
 * values above U+10FFFF) and advances *pos. ST_INVALID at a malformed sequence (*pos is then
 * left unchanged). */
st_code emu_utf8_next(const char *text, size_t len, size_t *pos, uint32_t *ret_code_point);

/* True when text is well-formed UTF-8. */
bool emu_utf8_valid(const char *text, size_t len);

/* Number of UTF-16 code units the text occupies. ST_INVALID for malformed UTF-8. */
st_code emu_utf16_units(const char *text, size_t len, size_t *ret_units);

/* Number of extended grapheme clusters. ST_INVALID for malformed UTF-8. */
st_code emu_grapheme_count(const char *text, size_t len, size_t *ret_count);

/* Rewrites a JSON text so that every non-ASCII character is written as \uXXXX (surrogate
 * pairs above the BMP), as LINE's webhook sender sometimes does. The input must be valid
 * UTF-8 JSON (non-ASCII bytes can then only occur inside strings). *ret_out is heap, NUL
 * terminated, caller frees; *ret_out_len its length. */
st_code emu_json_escape_non_ascii(const char *json, size_t len, char **ret_out,
                                  size_t *ret_out_len);

#endif
