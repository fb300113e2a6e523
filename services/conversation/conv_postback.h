/* conv_postback: the data of the postback buttons the bot offers.
 *
 * Format (version 1), at most CONV_POSTBACK_MAX bytes (LINE allows 300):
 *     v=1&a=<action>[&<key>=<value>]...
 * - pairs separated by '&', key and value separated by '=';
 * - keys: 1..8 of [a-z]; values: 1..32 of [A-Za-z0-9_-]; no escaping is ever needed;
 * - at most CONV_POSTBACK_PAIRS_MAX pairs, each key once, "v" and "a" required, any order;
 * - v must be "1": a button from another version is refused (ST_INVALID), so a change of
 *   meaning needs a new version number rather than a silent reinterpretation.
 * Examples: "v=1&a=cat&c=threat", "v=1&a=cancel&i=42", "v=1&a=lang&l=en".
 *
 * The parser is a fuzz target (tests/fuzz/conversation_postback). Pure, thread-safe. */
#ifndef CONV_POSTBACK_H
#define CONV_POSTBACK_H

#include <stddef.h>

#include "status.h"

#define CONV_POSTBACK_MAX 300
#define CONV_POSTBACK_VERSION "1"
#define CONV_POSTBACK_PAIRS_MAX 8
#define CONV_POSTBACK_KEY_MAX 8
#define CONV_POSTBACK_VALUE_MAX 32

typedef struct conv_postback_pair {
    char key[CONV_POSTBACK_KEY_MAX + 1];
    char value[CONV_POSTBACK_VALUE_MAX + 1];
} conv_postback_pair;

typedef struct conv_postback {
    conv_postback_pair pairs[CONV_POSTBACK_PAIRS_MAX];
    size_t count;
} conv_postback;

/* Parses len bytes (need not be NUL-terminated). ST_INVALID for a malformed or foreign
 * format, ST_LIMIT when longer than CONV_POSTBACK_MAX. *ret_postback untouched on failure. */
st_code conv_postback_parse(const char *data, size_t len, conv_postback *ret_postback);

/* The value of key (borrowed from postback), or NULL. */
const char *conv_postback_get(const conv_postback *postback, const char *key);

/* Writes "v=1&a=<action>" followed by "&key=value" for each pair of keys/values (count
 * entries). ST_INVALID when a key or value breaks the format, ST_LIMIT when out is too small
 * or the result is longer than CONV_POSTBACK_MAX. */
st_code conv_postback_format(const char *action, const char *const *keys,
                             const char *const *values, size_t count, char *out,
                             size_t out_size);

#endif
