/* notifier_text: measuring and cutting the Thai text that goes into LINE messages.
 *
 * LINE counts lengths in UTF-16 code units (altText <= 400, location title and address
 * <= 100). A cut must never split a user-perceived character: a Thai consonant keeps its
 * vowel and tone marks (น้ำ is one character of three code points), an emoji keeps its
 * modifiers and ZWJ partners, a flag its two regional indicators. The cluster rules here are
 * the subset of UAX #29 that the scripts of ESS need (combining marks, Thai and Lao vowel and
 * tone marks including the spacing SARA AM, ZWJ/ZWNJ, variation selectors, emoji modifiers,
 * tags, regional-indicator pairs, CR LF); a character they do not know starts a new cluster,
 * which can only make a cut shorter, never split a Thai syllable's marks off.
 *
 * Also the formats of the responder card: time in Asia/Bangkok with a Buddhist-era date, and
 * distances. All functions are pure and thread-safe; inputs are bounded by their lengths. */
#ifndef NOTIFIER_TEXT_H
#define NOTIFIER_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* UTF-16 code units of len bytes of UTF-8. ST_INVALID for malformed UTF-8. */
st_code notifier_text_units(const char *text, size_t len, size_t *ret_units);

/* The longest prefix of text (len bytes of UTF-8) that ends on a cluster boundary, takes at
 * most max_units UTF-16 units and at most max_bytes bytes: its length in bytes and units.
 * ST_INVALID for malformed UTF-8 (nothing returned). */
st_code notifier_text_prefix(const char *text, size_t len, size_t max_units, size_t max_bytes,
                             size_t *ret_bytes, size_t *ret_units);

/* Copies text into out (NUL-terminated, out_size >= 4) so that it takes at most max_units
 * UTF-16 units (max_units >= 1) and fits out: whole when it fits, otherwise cut on a cluster
 * boundary and ended with "…" (U+2026, one unit). *ret_cut (may be NULL) says whether it was
 * cut. ST_INVALID for malformed UTF-8 (out = ""). */
st_code notifier_text_fit(const char *text, size_t max_units, char *out, size_t out_size,
                          bool *ret_cut);

/* "14 มี.ค. 2569 เวลา 09:05 น." for a UTC epoch second, in Asia/Bangkok (UTC+7, no daylight
 * saving) with the Buddhist-era year (Gregorian + 543). out_size >= 64. */
void notifier_text_thai_time(int64_t epoch_seconds, char *out, size_t out_size);

/* "850 ม.", "1.2 กม.", "12 กม." (metres below 1 km, one decimal below 10 km). */
void notifier_text_distance(int64_t meters, char *out, size_t out_size);

#endif
