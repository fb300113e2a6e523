#include "ingress_webhook.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* Event types LINE documents (webhook.yml, Event.discriminator); anything else is counted as
 * "other" so that metric labels stay a fixed, small set. */
static const char *const known_event_types[] = {
    "message",     "unsend",       "follow",     "unfollow", "join",
    "leave",       "memberJoined", "memberLeft", "postback", "videoPlayComplete",
    "beacon",      "accountLink",  "membership", "module",   "activated",
    "deactivated", "botSuspended", "botResumed", "delivery",
};

#define EVENT_TYPE_MAX 32
/* Integers above 2^53 do not survive a round trip through cJSON's double. */
#define TIMESTAMP_MAX 9007199254740992.0

static bool is_id_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static bool is_valid_id(const char *id)
{
    size_t len = strnlen(id, INGRESS_ID_MAX + 1);
    if (len == 0 || len > INGRESS_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_id_char((unsigned char)id[i]))
            return false;
    return true;
}

static const char *metric_event_type(const char *type)
{
    for (size_t i = 0; i < sizeof(known_event_types) / sizeof(known_event_types[0]); i++)
        if (strcmp(type, known_event_types[i]) == 0)
            return known_event_types[i];
    return "other";
}

static bool is_event_type(const char *type)
{
    size_t len = strnlen(type, EVENT_TYPE_MAX + 1);
    if (len == 0 || len > EVENT_TYPE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = type[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return false;
    }
    return true;
}

/* Length of the UTF-8 sequence starting at s (at most avail bytes), or 0 when it is not
 * well-formed (overlong forms, surrogates and code points above U+10FFFF are rejected). */
static size_t utf8_sequence_length(const unsigned char *s, size_t avail)
{
    unsigned char lead = s[0];
    size_t len;
    uint32_t min, cp;
    if (lead < 0x80)
        return 1;
    if (lead >= 0xC2 && lead <= 0xDF) {
        len = 2, min = 0x80, cp = lead & 0x1F;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        len = 3, min = 0x800, cp = lead & 0x0F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        len = 4, min = 0x10000, cp = lead & 0x07;
    } else {
        return 0;
    }
    if (avail < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* One pass over the raw bytes before cJSON sees them: well-formed UTF-8, no control
 * characters inside strings or between tokens (cJSON would treat NUL as white space), no
 * escaped NUL, and nesting no deeper than max_depth (cJSON's own limit is 1000, too deep for
 * a handler). */
static st_code prescan(const unsigned char *body, size_t len, int max_depth, st_error *err)
{
    int depth = 0;
    bool in_string = false;
    size_t i = 0;
    while (i < len) {
        unsigned char c = body[i];
        if (c >= 0x80) {
            size_t seq = utf8_sequence_length(body + i, len - i);
            if (seq == 0)
                return st_fail(err, ST_INVALID, "body is not UTF-8 (byte %zu)", i);
            i += seq;
            continue;
        }
        if (in_string) {
            if (c < 0x20)
                return st_fail(err, ST_INVALID, "control character in a string (byte %zu)", i);
            if (c == '\\') {
                /* cJSON decodes \u0000 into a NUL that silently cuts the string short: the
                 * stored event would differ from the signed one. */
                if (len - i >= 6 && memcmp(body + i + 1, "u0000", 5) == 0)
                    return st_fail(err, ST_INVALID, "escaped NUL in a string (byte %zu)", i);
                i++; /* the escaped character cannot end the string; cJSON checks the rest */
            } else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth)
                return st_fail(err, ST_LIMIT, "JSON nested deeper than %d", max_depth);
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            return st_fail(err, ST_INVALID, "control character in the body (byte %zu)", i);
        }
        i++;
    }
    return ST_OK;
}

static const char *get_string(const cJSON *object, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    return cJSON_IsString(item) && item->valuestring != NULL ? item->valuestring : NULL;
}

/* Checks the source and fills out's source fields. ST_NOT_FOUND when the event has none. */
static st_code event_source(const cJSON *event, size_t index, ingress_webhook_event *out,
                            st_error *err)
{
    const cJSON *source = cJSON_GetObjectItemCaseSensitive(event, "source");
    if (source == NULL)
        return ST_NOT_FOUND;
    if (!cJSON_IsObject(source))
        return st_fail(err, ST_INVALID, "event %zu: source is not an object", index);
    const char *source_type = get_string(source, "type");
    if (source_type == NULL)
        return st_fail(err, ST_INVALID, "event %zu: source.type missing", index);
    static const struct {
        const char *kind, *id_key;
    } kinds[] = {{"user", "userId"}, {"group", "groupId"}, {"room", "roomId"}};
    const char *id_key = NULL;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]) && id_key == NULL; k++)
        if (strcmp(source_type, kinds[k].kind) == 0) {
            id_key = kinds[k].id_key;
            out->source_kind = kinds[k].kind;
        }
    if (id_key == NULL)
        return st_fail(err, ST_INVALID, "event %zu: source.type is not user, group or room", index);
    const char *source_id = get_string(source, id_key);
    if (source_id == NULL)
        return st_fail(err, ST_INVALID, "event %zu: source.%s missing", index, id_key);
    if (!is_valid_id(source_id))
        return st_fail(err, ST_INVALID,
                       "event %zu: source.%s is not 1..%d characters of [A-Za-z0-9_-]", index,
                       id_key, INGRESS_ID_MAX);
    /* A group or room source may carry a userId too: it must not be able to break anything
     * downstream either, although it is not part of the subject. */
    if (strcmp(id_key, "userId") != 0) {
        const cJSON *user_id = cJSON_GetObjectItemCaseSensitive(source, "userId");
        if (user_id != NULL && (!cJSON_IsString(user_id) || !is_valid_id(user_id->valuestring)))
            return st_fail(err, ST_INVALID, "event %zu: source.userId is malformed", index);
    }
    memcpy(out->source_id, source_id, strlen(source_id) + 1); /* length checked by is_valid_id */
    return ST_OK;
}

/* Validates one event and fills out (payload included). ST_NOT_FOUND: no source, skip. */
static st_code parse_event(const cJSON *event, size_t index, ingress_webhook_event *out,
                           st_error *err)
{
    if (!cJSON_IsObject(event))
        return st_fail(err, ST_INVALID, "event %zu is not an object", index);

    const char *type = get_string(event, "type");
    if (type == NULL || !is_event_type(type))
        return st_fail(err, ST_INVALID, "event %zu: type missing or malformed", index);

    const char *event_id = get_string(event, "webhookEventId");
    if (event_id == NULL || !is_valid_id(event_id))
        return st_fail(err, ST_INVALID, "event %zu: webhookEventId missing or malformed", index);

    const cJSON *timestamp = cJSON_GetObjectItemCaseSensitive(event, "timestamp");
    if (!cJSON_IsNumber(timestamp) || !isfinite(timestamp->valuedouble) ||
        timestamp->valuedouble < 0 || timestamp->valuedouble > TIMESTAMP_MAX ||
        floor(timestamp->valuedouble) != timestamp->valuedouble)
        return st_fail(err, ST_INVALID, "event %zu: timestamp is not a millisecond count", index);

    const char *mode = get_string(event, "mode");
    if (mode == NULL || (strcmp(mode, "active") != 0 && strcmp(mode, "standby") != 0))
        return st_fail(err, ST_INVALID, "event %zu: mode is not active or standby", index);

    const cJSON *context = cJSON_GetObjectItemCaseSensitive(event, "deliveryContext");
    const cJSON *redelivery = cJSON_GetObjectItemCaseSensitive(context, "isRedelivery");
    if (!cJSON_IsObject(context) || !cJSON_IsBool(redelivery))
        return st_fail(err, ST_INVALID, "event %zu: deliveryContext.isRedelivery missing", index);

    st_code code = event_source(event, index, out, err);
    if (code != ST_OK)
        return code;

    char *payload = cJSON_PrintUnformatted(event);
    if (payload == NULL)
        return st_fail(err, ST_NOMEM, "event %zu: no memory to serialise", index);
    memcpy(out->msg_id, event_id, strlen(event_id) + 1); /* length checked by is_valid_id */
    out->type = metric_event_type(type);
    out->payload = payload;
    out->payload_len = strlen(payload);
    out->redelivery = cJSON_IsTrue(redelivery);
    out->standby = strcmp(mode, "standby") == 0;
    return ST_OK;
}

static bool only_white_space(const char *from, const char *to)
{
    for (; from < to; from++)
        if (*from != ' ' && *from != '\t' && *from != '\n' && *from != '\r')
            return false;
    return true;
}

st_code ingress_webhook_parse(const char *body, size_t body_len, const ingress_limits *limits,
                              ingress_webhook **ret_webhook, st_error *err)
{
    size_t max_body = INGRESS_DEFAULT_MAX_BODY;
    size_t max_events = INGRESS_DEFAULT_MAX_EVENTS;
    int max_depth = INGRESS_DEFAULT_MAX_DEPTH;
    if (limits != NULL) {
        if (limits->max_body > 0)
            max_body = limits->max_body;
        if (limits->max_events > 0)
            max_events = limits->max_events;
        if (limits->max_depth > 0)
            max_depth = limits->max_depth;
    }

    cJSON *root = NULL;
    ingress_webhook *webhook = NULL;
    st_code code = ST_OK;

    if (body == NULL && body_len > 0) {
        code = st_fail(err, ST_INVALID, "body missing");
        goto cleanup;
    }
    if (body_len > max_body) {
        code = st_fail(err, ST_LIMIT, "body larger than %zu bytes", max_body);
        goto cleanup;
    }
    if (body_len == 0) {
        code = st_fail(err, ST_INVALID, "body is empty");
        goto cleanup;
    }
    code = prescan((const unsigned char *)body, body_len, max_depth, err);
    if (code != ST_OK)
        goto cleanup;

    const char *parse_end = NULL;
    root = cJSON_ParseWithLengthOpts(body, body_len, &parse_end, false);
    if (root == NULL) {
        /* cJSON cannot tell an allocation failure from bad syntax; bounded input makes the
         * former unlikely, and 400 vs 500 both end in LINE's retry logic. */
        code = st_fail(err, ST_INVALID, "body is not JSON");
        goto cleanup;
    }
    if (parse_end == NULL || parse_end < body || parse_end > body + body_len ||
        !only_white_space(parse_end, body + body_len)) {
        code = st_fail(err, ST_INVALID, "body has content after the JSON value");
        goto cleanup;
    }
    if (!cJSON_IsObject(root)) {
        code = st_fail(err, ST_INVALID, "body is not a JSON object");
        goto cleanup;
    }
    const char *destination = get_string(root, "destination");
    if (destination == NULL || !is_valid_id(destination)) {
        code = st_fail(err, ST_INVALID, "destination missing or malformed");
        goto cleanup;
    }
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(root, "events");
    if (!cJSON_IsArray(events)) {
        code = st_fail(err, ST_INVALID, "events missing or not an array");
        goto cleanup;
    }
    size_t event_total = 0;
    for (const cJSON *item = events->child; item != NULL; item = item->next)
        if (++event_total > max_events) {
            code = st_fail(err, ST_LIMIT, "more than %zu events", max_events);
            goto cleanup;
        }

    webhook = calloc(1, sizeof(*webhook));
    if (webhook == NULL ||
        (event_total > 0 &&
         (webhook->events = calloc(event_total, sizeof(*webhook->events))) == NULL)) {
        code = st_fail(err, ST_NOMEM, "no memory for %zu events", event_total);
        goto cleanup;
    }
    size_t index = 0;
    for (const cJSON *item = events->child; item != NULL; item = item->next, index++) {
        code = parse_event(item, index, &webhook->events[webhook->event_count], err);
        if (code == ST_NOT_FOUND) {
            webhook->skipped++;
            code = ST_OK;
            continue;
        }
        if (code != ST_OK)
            goto cleanup;
        webhook->event_count++;
    }

    *ret_webhook = webhook;
    webhook = NULL;

cleanup:
    ingress_webhook_destroy(webhook);
    cJSON_Delete(root);
    return code;
}

void ingress_webhook_destroy(ingress_webhook *webhook)
{
    if (webhook == NULL)
        return;
    for (size_t i = 0; i < webhook->event_count; i++)
        cJSON_free(webhook->events[i].payload);
    free(webhook->events);
    free(webhook);
}

void ingress_subject(const vault_pseudonym_key *key, const ingress_webhook_event *event,
                     char ret_subject[INGRESS_SUBJECT_SIZE])
{
    char pseudonym[VAULT_PSEUDONYM_HEX + 1];
    vault_pseudonym(key, event->source_id, pseudonym);
    snprintf(ret_subject, INGRESS_SUBJECT_SIZE, "line.in.%s.%s", event->source_kind, pseudonym);
}
