/* libFuzzer target: the postback-data parser (services/conversation/conv_postback.c) on
 * arbitrary bytes. For every accepted input: at most CONV_POSTBACK_PAIRS_MAX pairs, keys
 * unique, "v" = "1" and "a" present, every key and value within its alphabet and length; and
 * formatting the pairs again gives data that parses to the same pairs (round trip). A
 * violation aborts (a finding). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv_postback.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_token(const char *text, size_t max, bool key)
{
    size_t len = strnlen(text, max + 1);
    if (len == 0 || len > max)
        abort();
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        bool ok = (c >= 'a' && c <= 'z') ||
                  (!key && ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                            c == '-'));
        if (!ok)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    conv_postback postback;
    memset(&postback, 0, sizeof(postback));
    st_code status = conv_postback_parse((const char *)data, size, &postback);
    if (status != ST_OK) {
        if (status != ST_INVALID && status != ST_LIMIT)
            abort();
        return 0;
    }
    if (size > CONV_POSTBACK_MAX || postback.count < 2 || postback.count > CONV_POSTBACK_PAIRS_MAX)
        abort();
    const char *version = conv_postback_get(&postback, "v");
    const char *action = conv_postback_get(&postback, "a");
    if (version == NULL || strcmp(version, CONV_POSTBACK_VERSION) != 0 || action == NULL)
        abort();
    const char *keys[CONV_POSTBACK_PAIRS_MAX], *values[CONV_POSTBACK_PAIRS_MAX];
    size_t others = 0;
    for (size_t i = 0; i < postback.count; i++) {
        check_token(postback.pairs[i].key, CONV_POSTBACK_KEY_MAX, true);
        check_token(postback.pairs[i].value, CONV_POSTBACK_VALUE_MAX, false);
        for (size_t j = i + 1; j < postback.count; j++)
            if (strcmp(postback.pairs[i].key, postback.pairs[j].key) == 0)
                abort();
        if (strcmp(postback.pairs[i].key, "v") != 0 && strcmp(postback.pairs[i].key, "a") != 0) {
            keys[others] = postback.pairs[i].key;
            values[others] = postback.pairs[i].value;
            others++;
        }
    }
    char formatted[CONV_POSTBACK_MAX + 1];
    if (conv_postback_format(action, keys, values, others, formatted, sizeof(formatted)) != ST_OK)
        abort();
    conv_postback again;
    if (conv_postback_parse(formatted, strlen(formatted), &again) != ST_OK ||
        again.count != postback.count)
        abort();
    for (size_t i = 0; i < postback.count; i++) {
        const char *value = conv_postback_get(&again, postback.pairs[i].key);
        if (value == NULL || strcmp(value, postback.pairs[i].value) != 0)
            abort();
    }
    return 0;
}
