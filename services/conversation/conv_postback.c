#include "conv_postback.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool key_char(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool value_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

static bool valid_token(const char *text, size_t len, size_t max, bool (*allowed)(char))
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!allowed(text[i]))
            return false;
    return true;
}

const char *conv_postback_get(const conv_postback *postback, const char *key)
{
    if (postback == NULL || key == NULL)
        return NULL;
    for (size_t i = 0; i < postback->count; i++)
        if (strcmp(postback->pairs[i].key, key) == 0)
            return postback->pairs[i].value;
    return NULL;
}

st_code conv_postback_parse(const char *data, size_t len, conv_postback *ret_postback)
{
    if (data == NULL || ret_postback == NULL)
        return ST_INVALID;
    if (len > CONV_POSTBACK_MAX)
        return ST_LIMIT;
    if (len == 0)
        return ST_INVALID;
    conv_postback parsed;
    memset(&parsed, 0, sizeof(parsed));
    size_t at = 0;
    while (at <= len) {
        const char *pair = data + at;
        size_t remaining = len - at;
        const char *amp = memchr(pair, '&', remaining);
        size_t pair_len = amp != NULL ? (size_t)(amp - pair) : remaining;
        const char *eq = memchr(pair, '=', pair_len);
        if (eq == NULL)
            return ST_INVALID;
        size_t key_len = (size_t)(eq - pair);
        size_t value_len = pair_len - key_len - 1;
        if (!valid_token(pair, key_len, CONV_POSTBACK_KEY_MAX, key_char) ||
            !valid_token(eq + 1, value_len, CONV_POSTBACK_VALUE_MAX, value_char))
            return ST_INVALID;
        if (parsed.count == CONV_POSTBACK_PAIRS_MAX)
            return ST_INVALID;
        conv_postback_pair *slot = &parsed.pairs[parsed.count];
        memcpy(slot->key, pair, key_len);
        slot->key[key_len] = '\0';
        memcpy(slot->value, eq + 1, value_len);
        slot->value[value_len] = '\0';
        if (conv_postback_get(&parsed, slot->key) != NULL)
            return ST_INVALID; /* each key once */
        parsed.count++;
        if (amp == NULL)
            break;
        at += pair_len + 1;
        if (at == len)
            return ST_INVALID; /* trailing '&' */
    }
    const char *version = conv_postback_get(&parsed, "v");
    if (version == NULL || strcmp(version, CONV_POSTBACK_VERSION) != 0 ||
        conv_postback_get(&parsed, "a") == NULL)
        return ST_INVALID;
    *ret_postback = parsed;
    return ST_OK;
}

st_code conv_postback_format(const char *action, const char *const *keys,
                             const char *const *values, size_t count, char *out,
                             size_t out_size)
{
    if (action == NULL || out == NULL || out_size == 0 || count + 2 > CONV_POSTBACK_PAIRS_MAX ||
        (count > 0 && (keys == NULL || values == NULL)))
        return ST_INVALID;
    if (!valid_token(action, strlen(action), CONV_POSTBACK_VALUE_MAX, value_char))
        return ST_INVALID;
    char text[CONV_POSTBACK_MAX + 1];
    int used = snprintf(text, sizeof(text), "v=%s&a=%s", CONV_POSTBACK_VERSION, action);
    for (size_t i = 0; i < count; i++) {
        if (keys[i] == NULL || values[i] == NULL ||
            !valid_token(keys[i], strlen(keys[i]), CONV_POSTBACK_KEY_MAX, key_char) ||
            !valid_token(values[i], strlen(values[i]), CONV_POSTBACK_VALUE_MAX, value_char) ||
            strcmp(keys[i], "v") == 0 || strcmp(keys[i], "a") == 0)
            return ST_INVALID;
        for (size_t j = 0; j < i; j++)
            if (strcmp(keys[i], keys[j]) == 0)
                return ST_INVALID;
        if (used < 0 || (size_t)used >= sizeof(text))
            return ST_LIMIT;
        used += snprintf(text + used, sizeof(text) - (size_t)used, "&%s=%s", keys[i], values[i]);
    }
    if (used < 0 || (size_t)used >= sizeof(text) || (size_t)used >= out_size)
        return ST_LIMIT;
    memcpy(out, text, (size_t)used + 1);
    return ST_OK;
}
