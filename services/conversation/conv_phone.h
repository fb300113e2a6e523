/* conv_phone: Thai phone numbers as a reporter types them.
 *
 * Accepted (after trimming surrounding white space):
 *   - mobile: 10 digits beginning 06, 08 or 09           0812345678
 *   - landline: 9 digits beginning 02, 03, 04, 05 or 07  021234567
 *   - separated by spaces, dashes, dots or parentheses   081-234-5678, (02) 123 4567
 *   - in international form, +66 or 66 instead of the 0  +66 81 234 5678, 66812345678,
 *     also with the trunk 0 kept after it                +66 (0)81 234 5678
 *   - Thai digits (๐..๙) as well as ASCII digits
 * Anything else (letters, short numbers such as 191, other countries) is refused.
 * The result is the national form "0XXXXXXXX[X]", digits only.
 *
 * Pure functions, no allocation, thread-safe. */
#ifndef CONV_PHONE_H
#define CONV_PHONE_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

/* Longest input looked at, in bytes; longer text is not a phone number (ST_LIMIT). */
#define CONV_PHONE_INPUT_MAX 64
/* Normalised number: at most 10 digits + NUL. */
#define CONV_PHONE_MAX 11
/* Masked form, "08x-xxx-x678": at most 13 characters + NUL. */
#define CONV_PHONE_MASKED_MAX 16

/* Parses len bytes of text (need not be NUL-terminated). On ST_OK ret_phone holds the
 * normalised number; ST_INVALID when the text is not a Thai phone number, ST_LIMIT when it
 * is longer than CONV_PHONE_INPUT_MAX. ret_phone is untouched on failure. */
st_code conv_phone_parse(const char *text, size_t len, char ret_phone[CONV_PHONE_MAX]);

/* True when text (NUL-terminated) holds at least min_digits ASCII or Thai digits: the reporter
 * probably meant a phone number. */
bool conv_phone_looks_attempted(const char *text, size_t len, int min_digits);

/* Masks a normalised number for operators: "0812345678" -> "08x-xxx-x678",
 * "021234567" -> "02x-xxx-567". Anything else becomes "x". */
void conv_phone_mask(const char *phone, char ret_masked[CONV_PHONE_MASKED_MAX]);

#endif
