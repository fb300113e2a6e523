#include "conv_event.h"

#include <math.h>
#include <string.h>

#include <cjson/cJSON.h>

void conv_copy_utf8(char *out, size_t size, const char *text)
{
    if (size == 0)
        return;
    size_t len = text != NULL ? strnlen(text, size) : 0;
    if (len >= size) {
        len = size - 1;
        /* Back off continuation bytes so that a character is never split. */
        while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
            len--;
    }
    if (len > 0)
        memcpy(out, text, len);
    out[len] = '\0';
}

static const char *string_item(const cJSON *object, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static void copy_item(char *out, size_t size, const cJSON *object, const char *key)
{
    conv_copy_utf8(out, size, string_item(object, key));
}

static conv_event_kind message_kind(const char *type, conv_event *event)
{
    if (strcmp(type, "text") == 0)
        return CONV_EV_TEXT;
    if (strcmp(type, "location") == 0)
        return CONV_EV_LOCATION;
    if (strcmp(type, "sticker") == 0)
        return CONV_EV_STICKER;
    if (strcmp(type, "image") == 0 || strcmp(type, "video") == 0 || strcmp(type, "audio") == 0 ||
        strcmp(type, "file") == 0) {
        conv_copy_utf8(event->media_type, sizeof(event->media_type), type);
        return CONV_EV_MEDIA;
    }
    return CONV_EV_IGNORED;
}

static st_code parse_message(const cJSON *root, conv_event *event, st_error *err)
{
    const cJSON *message = cJSON_GetObjectItemCaseSensitive(root, "message");
    const char *type = string_item(message, "type");
    if (type == NULL)
        return st_fail(err, ST_INVALID, "message event without message.type");
    event->kind = message_kind(type, event);
    copy_item(event->message_id, sizeof(event->message_id), message, "id");
    switch (event->kind) {
    case CONV_EV_TEXT: {
        const char *text = string_item(message, "text");
        if (text == NULL)
            return st_fail(err, ST_INVALID, "text message without text");
        conv_copy_utf8(event->text, sizeof(event->text), text);
        break;
    }
    case CONV_EV_LOCATION: {
        const cJSON *lat = cJSON_GetObjectItemCaseSensitive(message, "latitude");
        const cJSON *lon = cJSON_GetObjectItemCaseSensitive(message, "longitude");
        if (!cJSON_IsNumber(lat) || !cJSON_IsNumber(lon) || !isfinite(lat->valuedouble) ||
            !isfinite(lon->valuedouble) || fabs(lat->valuedouble) > 90 ||
            fabs(lon->valuedouble) > 180)
            return st_fail(err, ST_INVALID, "location message without a valid position");
        event->location.present = true;
        event->location.lat = lat->valuedouble;
        event->location.lon = lon->valuedouble;
        copy_item(event->location.title, sizeof(event->location.title), message, "title");
        copy_item(event->location.address, sizeof(event->location.address), message, "address");
        break;
    }
    case CONV_EV_STICKER:
        copy_item(event->sticker_package, sizeof(event->sticker_package), message, "packageId");
        copy_item(event->sticker_id, sizeof(event->sticker_id), message, "stickerId");
        break;
    default:
        break;
    }
    return ST_OK;
}

/* ess.profile: {"profile": {"language"?, "displayName"?} | absent, "context": "..."}. */
static st_code parse_profile(const cJSON *root, conv_event *event, st_error *err)
{
    const char *context = string_item(root, "context");
    if (context == NULL || context[0] == '\0' || strlen(context) >= CONV_PROFILE_CONTEXT_MAX)
        return st_fail(err, ST_INVALID, "profile event without a context");
    memcpy(event->profile_context, context, strlen(context) + 1);
    event->kind = CONV_EV_PROFILE;
    const cJSON *profile = cJSON_GetObjectItemCaseSensitive(root, "profile");
    if (!cJSON_IsObject(profile))
        return ST_OK; /* LINE had no profile to give (not a follower, not a member) */
    event->profile_found = true;
    const char *language = string_item(profile, "language");
    if (language != NULL && strlen(language) < sizeof(event->profile_language))
        memcpy(event->profile_language, language, strlen(language) + 1);
    copy_item(event->profile_display_name, sizeof(event->profile_display_name), profile,
              "displayName");
    return ST_OK;
}

st_code conv_event_parse(const char *json, size_t len, conv_event *ret_event, st_error *err)
{
    if (json == NULL || ret_event == NULL)
        return st_fail(err, ST_INVALID, "no event");
    if (len > CONV_EVENT_JSON_MAX)
        return st_fail(err, ST_LIMIT, "event larger than %d bytes", CONV_EVENT_JSON_MAX);
    memset(ret_event, 0, sizeof(*ret_event));
    conv_event *event = ret_event;
    st_code status = ST_OK;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        status = st_fail(err, ST_INVALID, "event is not a JSON object");
        goto cleanup;
    }
    const char *type = string_item(root, "type");
    const char *event_id = string_item(root, "webhookEventId");
    const cJSON *timestamp = cJSON_GetObjectItemCaseSensitive(root, "timestamp");
    const cJSON *source = cJSON_GetObjectItemCaseSensitive(root, "source");
    const char *source_type = string_item(source, "type");
    if (type == NULL || event_id == NULL || event_id[0] == '\0' ||
        strlen(event_id) >= CONV_ID_MAX || !cJSON_IsNumber(timestamp) ||
        !isfinite(timestamp->valuedouble) || timestamp->valuedouble < 0 ||
        timestamp->valuedouble > 9.0e15 || source_type == NULL) {
        status = st_fail(err, ST_INVALID, "event lacks type, webhookEventId, timestamp or source");
        goto cleanup;
    }
    memcpy(event->webhook_event_id, event_id, strlen(event_id) + 1);
    event->timestamp_ms = (int64_t)timestamp->valuedouble;
    const char *mode = string_item(root, "mode");
    event->standby = mode != NULL && strcmp(mode, "standby") == 0;
    if (strcmp(source_type, "user") == 0) {
        event->source = CONV_SOURCE_USER;
    } else if (strcmp(source_type, "group") == 0) {
        event->source = CONV_SOURCE_GROUP;
    } else if (strcmp(source_type, "room") == 0) {
        event->source = CONV_SOURCE_ROOM;
    } else {
        status = st_fail(err, ST_INVALID, "unknown source type");
        goto cleanup;
    }
    const char *group_id =
        string_item(source, event->source == CONV_SOURCE_ROOM ? "roomId" : "groupId");
    if (event->source != CONV_SOURCE_USER && group_id != NULL && strlen(group_id) < CONV_ID_MAX)
        memcpy(event->group_id, group_id, strlen(group_id) + 1);
    const char *user_id = string_item(source, "userId");
    if (user_id != NULL && strlen(user_id) < CONV_ID_MAX)
        memcpy(event->user_id, user_id, strlen(user_id) + 1);
    const char *reply_token = string_item(root, "replyToken");
    if (reply_token != NULL && strlen(reply_token) < CONV_REPLY_TOKEN_MAX)
        memcpy(event->reply_token, reply_token, strlen(reply_token) + 1);

    if (strcmp(type, "follow") == 0) {
        event->kind = CONV_EV_FOLLOW;
    } else if (strcmp(type, "unfollow") == 0) {
        event->kind = CONV_EV_UNFOLLOW;
    } else if (strcmp(type, "message") == 0) {
        status = parse_message(root, event, err);
    } else if (strcmp(type, "postback") == 0) {
        const cJSON *postback = cJSON_GetObjectItemCaseSensitive(root, "postback");
        const char *data = string_item(postback, "data");
        event->kind = CONV_EV_POSTBACK;
        /* Longer than LINE allows: keep it empty, the dialogue treats it as unknown input. */
        if (data != NULL && strlen(data) < sizeof(event->postback_data))
            memcpy(event->postback_data, data, strlen(data) + 1);
    } else if (strcmp(type, "join") == 0) {
        event->kind = CONV_EV_JOIN;
    } else if (strcmp(type, "leave") == 0) {
        event->kind = CONV_EV_LEAVE;
    } else if (strcmp(type, "memberJoined") == 0 || strcmp(type, "memberLeft") == 0) {
        bool joined = strcmp(type, "memberJoined") == 0;
        const cJSON *members = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(root, joined ? "joined" : "left"), "members");
        event->kind = joined ? CONV_EV_MEMBER_JOINED : CONV_EV_MEMBER_LEFT;
        int count = cJSON_IsArray(members) ? cJSON_GetArraySize(members) : 0;
        event->member_count = count > 10000 ? 10000 : count;
    } else if (strcmp(type, CONV_PROFILE_EVENT_TYPE) == 0) {
        status = parse_profile(root, event, err);
    } else {
        event->kind = CONV_EV_IGNORED;
    }
cleanup:
    cJSON_Delete(root);
    return status;
}
