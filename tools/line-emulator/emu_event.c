#include "emu_event.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "emu_text.h"

static const char *const kind_names[EMU_EV_KIND_COUNT] = {
    [EMU_EV_FOLLOW] = "follow",
    [EMU_EV_UNFOLLOW] = "unfollow",
    [EMU_EV_TEXT] = "text",
    [EMU_EV_LOCATION] = "location",
    [EMU_EV_STICKER] = "sticker",
    [EMU_EV_IMAGE] = "image",
    [EMU_EV_POSTBACK] = "postback",
    [EMU_EV_JOIN] = "join",
    [EMU_EV_LEAVE] = "leave",
    [EMU_EV_MEMBER_JOINED] = "memberJoined",
    [EMU_EV_MEMBER_LEFT] = "memberLeft",
};

const char *emu_event_kind_name(emu_event_kind kind)
{
    return (unsigned)kind < EMU_EV_KIND_COUNT ? kind_names[kind] : "unknown";
}

st_code emu_event_kind_parse(const char *name, emu_event_kind *ret_kind)
{
    for (int kind = 0; kind < EMU_EV_KIND_COUNT; kind++) {
        if (strcmp(kind_names[kind], name) == 0) {
            *ret_kind = (emu_event_kind)kind;
            return ST_OK;
        }
    }
    return ST_NOT_FOUND;
}

bool emu_event_kind_replyable(emu_event_kind kind)
{
    return kind != EMU_EV_UNFOLLOW && kind != EMU_EV_LEAVE && kind != EMU_EV_MEMBER_LEFT;
}

bool emu_event_kind_group_only(emu_event_kind kind)
{
    return kind == EMU_EV_JOIN || kind == EMU_EV_LEAVE || kind == EMU_EV_MEMBER_JOINED ||
           kind == EMU_EV_MEMBER_LEFT;
}

static bool is_message(emu_event_kind kind)
{
    return kind == EMU_EV_TEXT || kind == EMU_EV_LOCATION || kind == EMU_EV_STICKER ||
           kind == EMU_EV_IMAGE;
}

/* Adds every pair; false when any allocation failed (the caller deletes the whole tree). */
static bool add_string(cJSON *object, const char *name, const char *value)
{
    return cJSON_AddStringToObject(object, name, value) != NULL;
}

static cJSON *build_source(const emu_event_spec *spec)
{
    cJSON *source = cJSON_CreateObject();
    if (source == NULL)
        return NULL;
    bool ok;
    if (spec->group_id != NULL) {
        ok = add_string(source, "type", "group") && add_string(source, "groupId", spec->group_id);
        if (ok && spec->user_id != NULL && !emu_event_kind_group_only(spec->kind))
            ok = add_string(source, "userId", spec->user_id);
    } else {
        ok = add_string(source, "type", "user") &&
             (spec->user_id == NULL || add_string(source, "userId", spec->user_id));
    }
    if (!ok) {
        cJSON_Delete(source);
        return NULL;
    }
    return source;
}

static cJSON *build_message(const emu_event_spec *spec, const emu_event_ids *ids)
{
    cJSON *message = cJSON_CreateObject();
    if (message == NULL)
        return NULL;
    bool ok = true;
    switch (spec->kind) {
    case EMU_EV_TEXT:
        ok = add_string(message, "type", "text") && add_string(message, "id", ids->message_id) &&
             add_string(message, "quoteToken", ids->quote_token) &&
             add_string(message, "text", spec->text != NULL ? spec->text : "");
        break;
    case EMU_EV_LOCATION:
        ok = add_string(message, "type", "location") &&
             add_string(message, "id", ids->message_id) &&
             (spec->title == NULL || add_string(message, "title", spec->title)) &&
             (spec->address == NULL || add_string(message, "address", spec->address)) &&
             cJSON_AddNumberToObject(message, "latitude", spec->latitude) != NULL &&
             cJSON_AddNumberToObject(message, "longitude", spec->longitude) != NULL;
        break;
    case EMU_EV_STICKER:
        ok = add_string(message, "type", "sticker") && add_string(message, "id", ids->message_id) &&
             add_string(message, "quoteToken", ids->quote_token) &&
             add_string(message, "stickerId",
                        spec->sticker_id != NULL ? spec->sticker_id : "52002734") &&
             add_string(message, "packageId",
                        spec->package_id != NULL ? spec->package_id : "11537") &&
             add_string(message, "stickerResourceType", "STATIC");
        break;
    case EMU_EV_IMAGE: {
        ok = add_string(message, "type", "image") && add_string(message, "id", ids->message_id) &&
             add_string(message, "quoteToken", ids->quote_token);
        cJSON *provider = ok ? cJSON_AddObjectToObject(message, "contentProvider") : NULL;
        ok = provider != NULL && add_string(provider, "type", "line");
        break;
    }
    default:
        ok = false;
        break;
    }
    if (!ok) {
        cJSON_Delete(message);
        return NULL;
    }
    return message;
}

static cJSON *build_members(const emu_event_spec *spec)
{
    cJSON *holder = cJSON_CreateObject();
    cJSON *members = holder != NULL ? cJSON_AddArrayToObject(holder, "members") : NULL;
    if (members == NULL) {
        cJSON_Delete(holder);
        return NULL;
    }
    for (size_t i = 0; i < spec->member_count; i++) {
        cJSON *member = cJSON_CreateObject();
        if (member == NULL) {
            cJSON_Delete(holder);
            return NULL;
        }
        cJSON_AddItemToArray(members, member);
        if (!add_string(member, "type", "user") ||
            !add_string(member, "userId", spec->member_ids[i])) {
            cJSON_Delete(holder);
            return NULL;
        }
    }
    return holder;
}

st_code emu_event_build(const emu_event_spec *spec, const emu_event_ids *ids, int64_t timestamp_ms,
                        cJSON **ret_event)
{
    if ((unsigned)spec->kind >= EMU_EV_KIND_COUNT)
        return ST_INVALID;
    if (emu_event_kind_group_only(spec->kind) && spec->group_id == NULL)
        return ST_INVALID;
    if (!emu_event_kind_group_only(spec->kind) && spec->user_id == NULL && spec->group_id == NULL)
        return ST_INVALID;

    st_code code = ST_NOMEM;
    cJSON *event = cJSON_CreateObject();
    if (event == NULL)
        goto done;
    const char *type = is_message(spec->kind) ? "message" : kind_names[spec->kind];
    if (!add_string(event, "type", type))
        goto done;
    if (is_message(spec->kind)) {
        cJSON *message = build_message(spec, ids);
        if (message == NULL)
            goto done;
        cJSON_AddItemToObject(event, "message", message);
    } else if (spec->kind == EMU_EV_FOLLOW) {
        cJSON *follow = cJSON_AddObjectToObject(event, "follow");
        if (follow == NULL ||
            cJSON_AddBoolToObject(follow, "isUnblocked", spec->is_unblocked) == NULL)
            goto done;
    } else if (spec->kind == EMU_EV_POSTBACK) {
        cJSON *postback = cJSON_AddObjectToObject(event, "postback");
        if (postback == NULL ||
            !add_string(postback, "data", spec->postback_data != NULL ? spec->postback_data : ""))
            goto done;
        if (spec->postback_params != NULL) {
            cJSON *params = cJSON_Duplicate(spec->postback_params, true);
            if (params == NULL)
                goto done;
            cJSON_AddItemToObject(postback, "params", params);
        }
    } else if (spec->kind == EMU_EV_MEMBER_JOINED || spec->kind == EMU_EV_MEMBER_LEFT) {
        cJSON *members = build_members(spec);
        if (members == NULL)
            goto done;
        cJSON_AddItemToObject(event, spec->kind == EMU_EV_MEMBER_JOINED ? "joined" : "left",
                              members);
    }
    if (!add_string(event, "webhookEventId", ids->webhook_event_id))
        goto done;
    cJSON *context = cJSON_AddObjectToObject(event, "deliveryContext");
    if (context == NULL || cJSON_AddBoolToObject(context, "isRedelivery", false) == NULL)
        goto done;
    if (cJSON_AddNumberToObject(event, "timestamp", (double)timestamp_ms) == NULL)
        goto done;
    cJSON *source = build_source(spec);
    if (source == NULL)
        goto done;
    cJSON_AddItemToObject(event, "source", source);
    if (!spec->standby && emu_event_kind_replyable(spec->kind) && ids->reply_token[0] != '\0' &&
        !add_string(event, "replyToken", ids->reply_token))
        goto done;
    if (!add_string(event, "mode", spec->standby ? "standby" : "active"))
        goto done;
    *ret_event = event;
    event = NULL;
    code = ST_OK;
done:
    cJSON_Delete(event);
    return code;
}

st_code emu_webhook_body(const char *destination, const cJSON *events, bool redelivery,
                         bool escape_non_ascii, char **ret_body, size_t *ret_len)
{
    if (!cJSON_IsArray(events))
        return ST_INVALID;
    st_code code = ST_NOMEM;
    char *printed = NULL;
    cJSON *root = cJSON_CreateObject();
    if (root == NULL || !add_string(root, "destination", destination))
        goto done;
    cJSON *copy = cJSON_Duplicate(events, true);
    if (copy == NULL)
        goto done;
    cJSON_AddItemToObject(root, "events", copy);
    cJSON *event;
    cJSON_ArrayForEach(event, copy)
    {
        cJSON *context = cJSON_GetObjectItemCaseSensitive(event, "deliveryContext");
        if (context != NULL)
            cJSON_ReplaceItemInObjectCaseSensitive(context, "isRedelivery",
                                                   cJSON_CreateBool(redelivery));
    }
    printed = cJSON_PrintUnformatted(root);
    if (printed == NULL)
        goto done;
    size_t len = strlen(printed);
    if (escape_non_ascii) {
        char *escaped = NULL;
        code = emu_json_escape_non_ascii(printed, len, &escaped, &len);
        if (code != ST_OK)
            goto done;
        cJSON_free(printed);
        printed = escaped;
    }
    *ret_body = printed;
    *ret_len = len;
    printed = NULL;
    code = ST_OK;
done:
    cJSON_free(printed);
    cJSON_Delete(root);
    return code;
}

st_code emu_signature(const char *secret, size_t secret_len, const char *body, size_t body_len,
                      char out[EMU_SIGNATURE_LEN + 1])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (secret_len > INT32_MAX ||
        HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)body, body_len, digest,
             &digest_len) == NULL ||
        digest_len != 32)
        return ST_INTERNAL;
    int written = EVP_EncodeBlock((unsigned char *)out, digest, (int)digest_len);
    return written == EMU_SIGNATURE_LEN ? ST_OK : ST_INTERNAL;
}

const char *emu_signature_header_name(uint64_t n)
{
    static const char *const spellings[] = {"x-line-signature", "X-Line-Signature",
                                            "X-LINE-SIGNATURE", "x-Line-signature"};
    return spellings[n % (sizeof(spellings) / sizeof(spellings[0]))];
}
