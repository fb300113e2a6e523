#include "emu_control.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "emu_event.h"
#include "emu_text.h"

#define SEGMENTS_MAX 6
#define SEGMENT_MAX 128
#define BATCH_EVENTS_MAX 100
#define LIST_LIMIT_DEFAULT 1000
#define LIST_LIMIT_MAX 10000

typedef struct control_call {
    emu_app *app;
    const emu_request *request;
    emu_response *response;
    cJSON *body; /* parsed JSON object body; {} when there was none */
    char segments[SEGMENTS_MAX][SEGMENT_MAX];
    size_t segment_count;
} control_call;

static void fail(emu_response *response, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(emu_response *response, int status, const char *fmt, ...)
{
    char message[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    emu_respond_error(response, status, message, NULL);
}

static void answer(emu_response *response, int status, cJSON *root)
{
    emu_respond_json(response, status, root);
    cJSON_Delete(root);
}

static bool method_is(const control_call *call, const char *method)
{
    return emu_str_is(call->request->method, method);
}

static bool segment_is(const control_call *call, size_t index, const char *text)
{
    return index < call->segment_count && strcmp(call->segments[index], text) == 0;
}

/* ---- JSON argument helpers ---- */

static const cJSON *arg(const cJSON *args, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(args, name);
    return cJSON_IsNull(item) ? NULL : item;
}

/* String argument: NULL when absent; *ret_bad set when present but not a string or too long. */
static const char *string_arg(const cJSON *args, const char *name, size_t max_bytes, bool *ret_bad)
{
    const cJSON *item = arg(args, name);
    if (item == NULL)
        return NULL;
    if (!cJSON_IsString(item) || strlen(item->valuestring) > max_bytes) {
        *ret_bad = true;
        return NULL;
    }
    return item->valuestring;
}

static bool bool_arg(const cJSON *args, const char *name, bool fallback)
{
    const cJSON *item = arg(args, name);
    return cJSON_IsBool(item) ? cJSON_IsTrue(item) : fallback;
}

static int64_t query_int(const control_call *call, const char *name, int64_t fallback, int64_t max)
{
    char text[32];
    if (!emu_query_get(call->request->query, name, text, sizeof(text)))
        return fallback;
    char *end = NULL;
    long long value = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || value < 0)
        return fallback;
    return value > max ? max : (int64_t)value;
}

/* ---- JSON views of the state ---- */

static cJSON *user_json(const emu_user *user)
{
    cJSON *item = cJSON_CreateObject();
    if (item == NULL)
        return NULL;
    cJSON_AddStringToObject(item, "userId", user->user_id);
    cJSON_AddStringToObject(item, "displayName", user->display_name);
    cJSON_AddStringToObject(item, "language", user->language);
    if (user->picture_url[0] != '\0')
        cJSON_AddStringToObject(item, "pictureUrl", user->picture_url);
    if (user->status_message[0] != '\0')
        cJSON_AddStringToObject(item, "statusMessage", user->status_message);
    cJSON_AddBoolToObject(item, "following", user->following);
    return item;
}

static cJSON *group_json(const emu_group *group)
{
    cJSON *item = cJSON_CreateObject();
    if (item == NULL)
        return NULL;
    cJSON_AddStringToObject(item, "groupId", group->group_id);
    cJSON_AddStringToObject(item, "groupName", group->group_name);
    if (group->picture_url[0] != '\0')
        cJSON_AddStringToObject(item, "pictureUrl", group->picture_url);
    cJSON_AddBoolToObject(item, "botInGroup", group->bot_member);
    cJSON *members = cJSON_AddArrayToObject(item, "members");
    for (size_t i = 0; members != NULL && i < group->member_count; i++)
        cJSON_AddItemToArray(members, cJSON_CreateString(group->members[i]));
    return item;
}

/* ---- acting as users: one event ---- */

typedef struct event_args {
    emu_event_kind kind;
    const char *user_id;  /* from the path or the batch item */
    const char *group_id; /* from the path, the batch item or args.groupId */
    const cJSON *args;    /* kind-specific fields */
} event_args;

/* Checks the event against the platform state, builds it, applies its effect (follow, join,
 * membership), records it in the conversation and appends it to events. On failure answers
 * the error and returns false. */
static bool add_event(emu_app *app, const event_args *input, cJSON *events, emu_response *response)
{
    emu_event_spec spec = {.kind = input->kind};
    bool bad = false;
    const char *group_id = input->group_id;
    if (group_id == NULL)
        group_id = string_arg(input->args, "groupId", SEGMENT_MAX, &bad);
    const char *mode = string_arg(input->args, "mode", 16, &bad);
    if (bad || (mode != NULL && strcmp(mode, "active") != 0 && strcmp(mode, "standby") != 0)) {
        fail(response, 400, "groupId must be a group id and mode active or standby");
        return false;
    }
    spec.standby = mode != NULL && strcmp(mode, "standby") == 0;
    bool group_only = emu_event_kind_group_only(input->kind);

    emu_user *user = NULL;
    if (!group_only) {
        user = emu_state_user(app->state, input->user_id);
        if (user == NULL) {
            fail(response, 404, "no such user");
            return false;
        }
    }
    emu_group *group = NULL;
    if (group_id != NULL) {
        group = emu_state_group(app->state, group_id);
        if (group == NULL) {
            fail(response, 404, "no such group");
            return false;
        }
    } else if (group_only) {
        fail(response, 400, "%s needs a group", emu_event_kind_name(input->kind));
        return false;
    }
    if (group != NULL && (input->kind == EMU_EV_FOLLOW || input->kind == EMU_EV_UNFOLLOW)) {
        fail(response, 400, "%s happens in a 1:1 chat, not in a group",
             emu_event_kind_name(input->kind));
        return false;
    }
    if (group != NULL && input->kind != EMU_EV_JOIN && !group->bot_member) {
        fail(response, 409, "the bot is not in this group (join it first)");
        return false;
    }
    if (group != NULL && user != NULL && !emu_group_has_member(group, user->user_id)) {
        fail(response, 409, "the user is not a member of this group");
        return false;
    }

    /* What the kind needs, and the state it requires. */
    const char *member_ids[EMU_GROUP_MEMBERS_MAX];
    switch (input->kind) {
    case EMU_EV_FOLLOW:
        if (user->following) {
            fail(response, 409, "the user already follows the bot");
            return false;
        }
        spec.is_unblocked = user->ever_followed;
        break;
    case EMU_EV_UNFOLLOW:
        if (!user->following) {
            fail(response, 409, "the user does not follow the bot");
            return false;
        }
        break;
    case EMU_EV_JOIN:
        if (group->bot_member) {
            fail(response, 409, "the bot is already in this group");
            return false;
        }
        break;
    case EMU_EV_LEAVE:
        break;
    case EMU_EV_MEMBER_JOINED:
    case EMU_EV_MEMBER_LEFT: {
        const cJSON *ids = arg(input->args, "userIds");
        int count = cJSON_IsArray(ids) ? cJSON_GetArraySize(ids) : 0;
        if (count < 1 || count > EMU_GROUP_MEMBERS_MAX) {
            fail(response, 400, "userIds must list 1 to %d users", EMU_GROUP_MEMBERS_MAX);
            return false;
        }
        const cJSON *id;
        cJSON_ArrayForEach(id, ids)
        {
            if (!cJSON_IsString(id) || emu_state_user(app->state, id->valuestring) == NULL) {
                fail(response, 404, "userIds names an unknown user");
                return false;
            }
            bool member = emu_group_has_member(group, id->valuestring);
            if (member == (input->kind == EMU_EV_MEMBER_JOINED)) {
                fail(response, 409,
                     input->kind == EMU_EV_MEMBER_JOINED ? "a user in userIds is already a member"
                                                         : "a user in userIds is not a member");
                return false;
            }
            member_ids[spec.member_count++] = id->valuestring;
        }
        spec.member_ids = member_ids;
        break;
    }
    default:
        /* Messages and postbacks: a user who blocked the bot cannot reach it. */
        if (group == NULL && user->ever_followed && !user->following) {
            fail(response, 409, "the user has blocked the bot (follow again first)");
            return false;
        }
        break;
    }
    switch (input->kind) {
    case EMU_EV_TEXT: {
        spec.text = string_arg(input->args, "text", 20000, &bad);
        size_t units = 0;
        if (bad || spec.text == NULL || spec.text[0] == '\0' ||
            emu_utf16_units(spec.text, strlen(spec.text), &units) != ST_OK ||
            units > EMU_TEXT_UNITS_MAX) {
            fail(response, 400, "text must be 1 to 5000 UTF-16 units of valid UTF-8");
            return false;
        }
        break;
    }
    case EMU_EV_LOCATION: {
        const cJSON *latitude = arg(input->args, "latitude");
        const cJSON *longitude = arg(input->args, "longitude");
        spec.title = string_arg(input->args, "title", 400, &bad);
        spec.address = string_arg(input->args, "address", 400, &bad);
        if (bad || !cJSON_IsNumber(latitude) || !cJSON_IsNumber(longitude) ||
            latitude->valuedouble < -90 || latitude->valuedouble > 90 ||
            longitude->valuedouble < -180 || longitude->valuedouble > 180 ||
            (spec.title != NULL && !emu_utf8_valid(spec.title, strlen(spec.title))) ||
            (spec.address != NULL && !emu_utf8_valid(spec.address, strlen(spec.address)))) {
            fail(response, 400,
                 "location needs latitude (-90..90) and longitude (-180..180); "
                 "title and address are optional strings");
            return false;
        }
        spec.latitude = latitude->valuedouble;
        spec.longitude = longitude->valuedouble;
        break;
    }
    case EMU_EV_STICKER:
        spec.package_id = string_arg(input->args, "packageId", 64, &bad);
        spec.sticker_id = string_arg(input->args, "stickerId", 64, &bad);
        if (bad) {
            fail(response, 400, "packageId and stickerId must be strings");
            return false;
        }
        break;
    case EMU_EV_POSTBACK: {
        spec.postback_data = string_arg(input->args, "data", 4096, &bad);
        size_t units = 0;
        if (bad || spec.postback_data == NULL ||
            emu_utf16_units(spec.postback_data, strlen(spec.postback_data), &units) != ST_OK ||
            units > EMU_POSTBACK_DATA_MAX) {
            fail(response, 400, "postback needs data of at most 300 characters");
            return false;
        }
        const cJSON *params = arg(input->args, "params");
        if (params != NULL && !cJSON_IsObject(params)) {
            fail(response, 400, "params must be an object");
            return false;
        }
        spec.postback_params = params;
        break;
    }
    default:
        break;
    }
    spec.user_id = user != NULL ? user->user_id : NULL;
    if (group != NULL && user != NULL && bool_arg(input->args, "anonymous", false))
        spec.user_id = NULL; /* LINE omits userId for some group members */
    spec.group_id = group != NULL ? group->group_id : NULL;

    /* Identifiers, as LINE assigns them. */
    int64_t now = app->wall_ms();
    emu_event_ids ids = {0};
    const char *chat_id = group != NULL ? group->group_id : user->user_id;
    if (emu_ulid_next(&app->ulid, now, ids.webhook_event_id) != ST_OK) {
        fail(response, 500, "could not make a webhookEventId");
        return false;
    }
    if (!spec.standby && emu_event_kind_replyable(input->kind) &&
        emu_state_issue_reply_token(app->state, chat_id, now, ids.reply_token) != ST_OK) {
        fail(response, 500, "could not issue a reply token");
        return false;
    }
    emu_message_id_new(now, ids.message_id);
    if (emu_quote_token_new(ids.quote_token) != ST_OK) {
        fail(response, 500, "could not make a quote token");
        return false;
    }
    cJSON *event = NULL;
    if (emu_event_build(&spec, &ids, now, &event) != ST_OK) {
        fail(response, 500, "could not build the event");
        return false;
    }

    /* Effects on the platform. */
    switch (input->kind) {
    case EMU_EV_FOLLOW:
        user->following = true;
        user->ever_followed = true;
        break;
    case EMU_EV_UNFOLLOW:
        user->following = false;
        break;
    case EMU_EV_JOIN:
        group->bot_member = true;
        break;
    case EMU_EV_LEAVE:
        group->bot_member = false;
        break;
    case EMU_EV_MEMBER_JOINED:
        for (size_t i = 0; i < spec.member_count; i++)
            emu_group_add_member(group, spec.member_ids[i]);
        break;
    case EMU_EV_MEMBER_LEFT:
        for (size_t i = 0; i < spec.member_count; i++)
            emu_group_remove_member(group, spec.member_ids[i]);
        break;
    default:
        break;
    }
    char *event_json = cJSON_PrintUnformatted(event);
    if (event_json != NULL) {
        emu_state_append(app->state, chat_id, EMU_DIR_IN, "webhook", ids.webhook_event_id,
                         user != NULL ? user->user_id : "", event_json, now, NULL);
        cJSON_free(event_json);
    }
    cJSON_AddItemToArray(events, event);
    return true;
}

/* Hands the events to the webhook workers and answers 202 with them. Takes events. */
static void submit_events(emu_app *app, cJSON *events, emu_response *response)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *copy = cJSON_Duplicate(events, true);
    uint64_t delivery_id = 0;
    st_code code = emu_delivery_submit(app->delivery, events, &delivery_id);
    if (code != ST_OK) {
        cJSON_Delete(root);
        cJSON_Delete(copy);
        fail(response, code == ST_LIMIT ? 503 : 500, "could not queue the webhook: %s",
             st_name(code));
        return;
    }
    if (root != NULL) {
        cJSON_AddNumberToObject(root, "deliveryId", (double)delivery_id);
        if (copy != NULL)
            cJSON_AddItemToObject(root, "events", copy);
        else
            cJSON_Delete(copy);
    } else {
        cJSON_Delete(copy);
    }
    answer(response, 202, root);
}

static void act_one(control_call *call, const event_args *input)
{
    cJSON *events = cJSON_CreateArray();
    if (events == NULL) {
        fail(call->response, 500, "out of memory");
        return;
    }
    if (!add_event(call->app, input, events, call->response)) {
        cJSON_Delete(events);
        return;
    }
    submit_events(call->app, events, call->response);
}

/* ---- tapping what the bot offered ---- */

/* Appends the tappable actions of a template or flex message (not its quick reply). */
static void collect_actions(const cJSON *node, cJSON *out, int depth)
{
    if (depth > 40 || node == NULL)
        return;
    const cJSON *child;
    cJSON_ArrayForEach(child, node)
    {
        if (child->string != NULL && strcmp(child->string, "quickReply") == 0)
            continue;
        if (child->string != NULL &&
            (strcmp(child->string, "action") == 0 || strcmp(child->string, "defaultAction") == 0) &&
            cJSON_IsObject(child)) {
            cJSON_AddItemToArray(out, cJSON_Duplicate(child, true));
        } else if (cJSON_IsArray(child) || cJSON_IsObject(child)) {
            collect_actions(child, out, depth + 1);
        }
    }
}

static cJSON *message_actions(const cJSON *message)
{
    cJSON *actions = cJSON_CreateArray();
    if (actions != NULL)
        collect_actions(message, actions, 0);
    return actions;
}

static const cJSON *quick_reply_items(const cJSON *message)
{
    const cJSON *quick_reply = cJSON_GetObjectItemCaseSensitive(message, "quickReply");
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(quick_reply, "items");
    return cJSON_IsArray(items) && cJSON_GetArraySize(items) > 0 ? items : NULL;
}

static void today_in(const char *mode, char *out, size_t out_size, int64_t now_ms)
{
    time_t seconds = (time_t)(now_ms / 1000) + 7 * 3600; /* Asia/Bangkok, no DST */
    struct tm parts;
    gmtime_r(&seconds, &parts);
    if (strcmp(mode, "time") == 0)
        strftime(out, out_size, "%H:%M", &parts);
    else if (strcmp(mode, "datetime") == 0)
        strftime(out, out_size, "%Y-%m-%dT%H:%M", &parts);
    else
        strftime(out, out_size, "%Y-%m-%d", &parts);
}

/* Turns a tapped action into the event LINE would send (into *ret_kind and args). Returns false
 * for actions that send nothing (uri, clipboard), answering the tap itself. */
static bool action_to_event(control_call *call, const cJSON *action, cJSON *args,
                            emu_event_kind *ret_kind)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(action, "type");
    const char *name = cJSON_IsString(type) ? type->valuestring : "";
    const cJSON *body = call->body;
    if (strcmp(name, "message") == 0) {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(action, "text");
        cJSON_AddStringToObject(args, "text", cJSON_IsString(text) ? text->valuestring : "");
        *ret_kind = EMU_EV_TEXT;
        return true;
    }
    if (strcmp(name, "postback") == 0 || strcmp(name, "datetimepicker") == 0) {
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(action, "data");
        cJSON_AddStringToObject(args, "data", cJSON_IsString(data) ? data->valuestring : "");
        if (strcmp(name, "datetimepicker") == 0) {
            const cJSON *given = arg(body, "params");
            if (cJSON_IsObject(given)) {
                cJSON_AddItemToObject(args, "params", cJSON_Duplicate(given, true));
            } else {
                const cJSON *mode = cJSON_GetObjectItemCaseSensitive(action, "mode");
                const char *mode_name = cJSON_IsString(mode) ? mode->valuestring : "date";
                const cJSON *initial = cJSON_GetObjectItemCaseSensitive(action, "initial");
                char value[32];
                if (cJSON_IsString(initial))
                    snprintf(value, sizeof(value), "%s", initial->valuestring);
                else
                    today_in(mode_name, value, sizeof(value), call->app->wall_ms());
                cJSON *params = cJSON_AddObjectToObject(args, "params");
                if (params != NULL)
                    cJSON_AddStringToObject(params, mode_name, value);
            }
        }
        *ret_kind = EMU_EV_POSTBACK;
        return true;
    }
    if (strcmp(name, "location") == 0) {
        const char *fields[] = {"latitude", "longitude", "title", "address"};
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
            const cJSON *value = arg(body, fields[i]);
            if (value != NULL)
                cJSON_AddItemToObject(args, fields[i], cJSON_Duplicate(value, true));
        }
        *ret_kind = EMU_EV_LOCATION;
        return true;
    }
    if (strcmp(name, "camera") == 0 || strcmp(name, "cameraRoll") == 0) {
        *ret_kind = EMU_EV_IMAGE;
        return true;
    }
    cJSON *root = cJSON_CreateObject();
    if (root != NULL) {
        cJSON_AddStringToObject(root, "tapped", name);
        cJSON_AddItemToObject(root, "action", cJSON_Duplicate(action, true));
        cJSON_AddStringToObject(root, "note", "this action sends no webhook event");
    }
    answer(call->response, 200, root);
    return false;
}

static void tap(control_call *call, const char *user_id)
{
    bool bad = false;
    const char *group_id = string_arg(call->body, "groupId", SEGMENT_MAX, &bad);
    const char *chat_id = group_id != NULL ? group_id : user_id;
    const cJSON *seq = arg(call->body, "seq");
    const cJSON *index = arg(call->body, seq != NULL ? "action" : "index");
    if (bad || !cJSON_IsNumber(index) || index->valuedouble < 1 ||
        (seq != NULL && !cJSON_IsNumber(seq))) {
        fail(call->response, 400,
             "tap needs {\"index\": N} (quick reply item N of the last message) or "
             "{\"seq\": S, \"action\": N} (action N of message S)");
        return;
    }
    int wanted = (int)index->valuedouble;
    const emu_entry *entry = NULL;
    cJSON *message = NULL, *list = NULL;
    const cJSON *action = NULL;
    if (seq != NULL) {
        entry = emu_state_entry_by_seq(call->app->state, chat_id, (uint64_t)seq->valuedouble);
    } else {
        size_t count = emu_state_entry_count(call->app->state, chat_id);
        entry = count > 0 ? emu_state_entry_at(call->app->state, chat_id, count - 1) : NULL;
    }
    if (entry == NULL || entry->direction != EMU_DIR_OUT) {
        fail(call->response, 409,
             seq != NULL ? "no bot message with that seq in this chat"
                         : "the last message of this chat is not from the bot, "
                           "so no quick reply is on screen");
        return;
    }
    message = cJSON_Parse(entry->json);
    if (seq != NULL) {
        list = message_actions(message);
        action = cJSON_GetArrayItem(list, wanted - 1);
    } else {
        const cJSON *items = quick_reply_items(message);
        const cJSON *item = items != NULL ? cJSON_GetArrayItem(items, wanted - 1) : NULL;
        action = cJSON_GetObjectItemCaseSensitive(item, "action");
    }
    if (!cJSON_IsObject(action)) {
        fail(call->response, 409, "the message has no %s number %d",
             seq != NULL ? "action" : "quick reply item", wanted);
        goto done;
    }
    cJSON *args = cJSON_CreateObject();
    emu_event_kind kind;
    if (args != NULL && action_to_event(call, action, args, &kind)) {
        if (group_id != NULL)
            cJSON_AddStringToObject(args, "groupId", group_id);
        const cJSON *mode = arg(call->body, "mode");
        if (cJSON_IsString(mode))
            cJSON_AddStringToObject(args, "mode", mode->valuestring);
        event_args input = {.kind = kind, .user_id = user_id, .args = args};
        act_one(call, &input);
    } else if (args == NULL) {
        fail(call->response, 500, "out of memory");
    }
    cJSON_Delete(args);
done:
    cJSON_Delete(list);
    cJSON_Delete(message);
}

/* ---- users and groups ---- */

static void create_user(control_call *call)
{
    bool bad = false;
    const char *user_id = string_arg(call->body, "userId", SEGMENT_MAX, &bad);
    const char *name = string_arg(call->body, "displayName", 4096, &bad);
    const char *language = string_arg(call->body, "language", 4096, &bad);
    const char *picture = string_arg(call->body, "pictureUrl", 4096, &bad);
    const char *status = string_arg(call->body, "statusMessage", 4096, &bad);
    if (bad || name == NULL) {
        fail(call->response, 400,
             "displayName (1..%d bytes) is required; userId, language, "
             "pictureUrl and statusMessage are optional strings",
             EMU_NAME_MAX);
        return;
    }
    emu_user *user = NULL;
    st_code code =
        emu_state_add_user(call->app->state, user_id, name, language, picture, status, &user);
    if (code == ST_CONFLICT) {
        fail(call->response, 409, "a user with this userId exists");
    } else if (code == ST_INVALID) {
        fail(call->response, 400,
             "userId must be U + 32 lower-case hex digits; displayName 1..%d "
             "bytes; language up to %d; urls and status up to %d",
             EMU_NAME_MAX, EMU_LANGUAGE_MAX, EMU_URL_FIELD_MAX);
    } else if (code != ST_OK) {
        fail(call->response, code == ST_LIMIT ? 507 : 500, "could not add the user: %s",
             st_name(code));
    } else {
        answer(call->response, 201, user_json(user));
    }
}

static void list_users(control_call *call)
{
    char name[EMU_NAME_MAX * 3 + 1];
    bool by_name = emu_query_get(call->request->query, "displayName", name, sizeof(name));
    cJSON *root = cJSON_CreateObject();
    cJSON *list = root != NULL ? cJSON_AddArrayToObject(root, "users") : NULL;
    size_t count = emu_state_user_count(call->app->state);
    for (size_t i = 0; list != NULL && i < count; i++) {
        const emu_user *user = emu_state_user_at(call->app->state, i);
        if (!by_name || strcmp(user->display_name, name) == 0)
            cJSON_AddItemToArray(list, user_json(user));
    }
    answer(call->response, 200, root);
}

static void create_group(control_call *call)
{
    bool bad = false;
    const char *group_id = string_arg(call->body, "groupId", SEGMENT_MAX, &bad);
    const char *name = string_arg(call->body, "groupName", 4096, &bad);
    const char *picture = string_arg(call->body, "pictureUrl", 4096, &bad);
    const cJSON *members = arg(call->body, "members");
    if (bad || name == NULL || (members != NULL && !cJSON_IsArray(members))) {
        fail(call->response, 400,
             "groupName is required; groupId, pictureUrl (strings) and "
             "members (user ids) are optional");
        return;
    }
    const cJSON *member;
    cJSON_ArrayForEach(member, members)
    {
        if (!cJSON_IsString(member) ||
            emu_state_user(call->app->state, member->valuestring) == NULL) {
            fail(call->response, 404, "members names an unknown user");
            return;
        }
    }
    if (cJSON_GetArraySize(members) > EMU_GROUP_MEMBERS_MAX) {
        fail(call->response, 400, "at most %d members", EMU_GROUP_MEMBERS_MAX);
        return;
    }
    emu_group *group = NULL;
    st_code code = emu_state_add_group(call->app->state, group_id, name, picture, &group);
    if (code == ST_CONFLICT) {
        fail(call->response, 409, "a group with this groupId exists");
        return;
    }
    if (code == ST_INVALID) {
        fail(call->response, 400,
             "groupId must be C + 32 lower-case hex digits; groupName 1..%d "
             "bytes",
             EMU_NAME_MAX);
        return;
    }
    if (code != ST_OK) {
        fail(call->response, code == ST_LIMIT ? 507 : 500, "could not add the group: %s",
             st_name(code));
        return;
    }
    cJSON_ArrayForEach(member, members)
        emu_group_add_member(group, member->valuestring); /* duplicates are ignored */
    answer(call->response, 201, group_json(group));
}

static void list_groups(control_call *call)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *list = root != NULL ? cJSON_AddArrayToObject(root, "groups") : NULL;
    size_t count = emu_state_group_count(call->app->state);
    for (size_t i = 0; list != NULL && i < count; i++)
        cJSON_AddItemToArray(list, group_json(emu_state_group_at(call->app->state, i)));
    answer(call->response, 200, root);
}

/* ---- read-back ---- */

static cJSON *entry_json(const emu_entry *entry)
{
    cJSON *item = cJSON_CreateObject();
    if (item == NULL)
        return NULL;
    cJSON_AddNumberToObject(item, "seq", (double)entry->seq);
    cJSON_AddNumberToObject(item, "time", (double)entry->time_ms);
    cJSON_AddStringToObject(item, "direction", entry->direction == EMU_DIR_IN ? "in" : "out");
    cJSON_AddStringToObject(item, "via", entry->via);
    cJSON *content = cJSON_Parse(entry->json);
    if (entry->direction == EMU_DIR_IN) {
        cJSON_AddStringToObject(item, "webhookEventId", entry->ref_id);
        if (entry->user_id[0] != '\0')
            cJSON_AddStringToObject(item, "userId", entry->user_id);
        cJSON_AddItemToObject(item, "event", content != NULL ? content : cJSON_CreateNull());
        return item;
    }
    cJSON_AddStringToObject(item, "requestId", entry->ref_id);
    const cJSON *items = quick_reply_items(content);
    if (items != NULL) {
        cJSON *quick = cJSON_AddArrayToObject(item, "quickReply");
        int index = 1;
        const cJSON *quick_item;
        cJSON_ArrayForEach(quick_item, items)
        {
            const cJSON *action = cJSON_GetObjectItemCaseSensitive(quick_item, "action");
            cJSON *shown = cJSON_CreateObject();
            if (quick == NULL || shown == NULL) {
                cJSON_Delete(shown);
                break;
            }
            cJSON_AddNumberToObject(shown, "index", index++);
            const cJSON *label = cJSON_GetObjectItemCaseSensitive(action, "label");
            if (cJSON_IsString(label))
                cJSON_AddStringToObject(shown, "label", label->valuestring);
            cJSON_AddItemToObject(shown, "action", cJSON_Duplicate(action, true));
            cJSON_AddItemToArray(quick, shown);
        }
    }
    cJSON *actions = message_actions(content);
    if (actions != NULL && cJSON_GetArraySize(actions) > 0) {
        cJSON *numbered = cJSON_AddArrayToObject(item, "actions");
        int index = 1;
        cJSON *action;
        cJSON_ArrayForEach(action, actions)
        {
            cJSON *shown = cJSON_CreateObject();
            if (numbered == NULL || shown == NULL) {
                cJSON_Delete(shown);
                break;
            }
            cJSON_AddNumberToObject(shown, "index", index++);
            const cJSON *label = cJSON_GetObjectItemCaseSensitive(action, "label");
            if (cJSON_IsString(label))
                cJSON_AddStringToObject(shown, "label", label->valuestring);
            cJSON_AddItemToObject(shown, "action", cJSON_Duplicate(action, true));
            cJSON_AddItemToArray(numbered, shown);
        }
    }
    cJSON_Delete(actions);
    cJSON_AddItemToObject(item, "message", content != NULL ? content : cJSON_CreateNull());
    return item;
}

static void conversation(control_call *call, const char *chat_id)
{
    if (emu_state_user(call->app->state, chat_id) == NULL &&
        emu_state_group(call->app->state, chat_id) == NULL) {
        fail(call->response, 404, "no such user or group");
        return;
    }
    uint64_t after = (uint64_t)query_int(call, "after", 0, INT64_MAX);
    int64_t limit = query_int(call, "limit", LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX);
    cJSON *root = cJSON_CreateObject();
    cJSON *list = NULL;
    if (root != NULL) {
        cJSON_AddStringToObject(root, "chatId", chat_id);
        list = cJSON_AddArrayToObject(root, "entries");
    }
    size_t count = emu_state_entry_count(call->app->state, chat_id);
    int64_t listed = 0;
    for (size_t i = 0; list != NULL && i < count && listed < limit; i++) {
        const emu_entry *entry = emu_state_entry_at(call->app->state, chat_id, i);
        if (entry->seq <= after)
            continue;
        cJSON_AddItemToArray(list, entry_json(entry));
        listed++;
    }
    answer(call->response, 200, root);
}

static void recorded_messages(control_call *call)
{
    char to[SEGMENT_MAX];
    bool by_target = emu_query_get(call->request->query, "to", to, sizeof(to));
    uint64_t after = (uint64_t)query_int(call, "after", 0, INT64_MAX);
    int64_t limit = query_int(call, "limit", LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX);
    cJSON *root = cJSON_CreateObject();
    cJSON *list = root != NULL ? cJSON_AddArrayToObject(root, "messages") : NULL;
    size_t count = emu_state_record_count(call->app->state);
    int64_t listed = 0;
    for (size_t i = 0; list != NULL && i < count && listed < limit; i++) {
        const emu_record *record = emu_state_record_at(call->app->state, i);
        if (record->seq <= after || (by_target && strcmp(record->to, to) != 0))
            continue;
        cJSON *item = cJSON_CreateObject();
        if (item == NULL)
            break;
        cJSON_AddNumberToObject(item, "seq", (double)record->seq);
        cJSON_AddNumberToObject(item, "time", (double)record->time_ms);
        cJSON_AddStringToObject(item, "endpoint", record->endpoint);
        cJSON_AddStringToObject(item, "to", record->to);
        cJSON_AddStringToObject(item, "requestId", record->request_id);
        if (record->retry_key[0] != '\0')
            cJSON_AddStringToObject(item, "retryKey", record->retry_key);
        else
            cJSON_AddNullToObject(item, "retryKey");
        cJSON_AddStringToObject(item, "messageId", record->message_id);
        cJSON *message = cJSON_Parse(record->message_json);
        cJSON_AddItemToObject(item, "message", message != NULL ? message : cJSON_CreateNull());
        cJSON_AddItemToArray(list, item);
        listed++;
    }
    answer(call->response, 200, root);
}

static void reply_token(control_call *call, const char *token)
{
    int64_t expires = 0;
    emu_token_status status =
        emu_state_reply_token_status(call->app->state, token, call->app->wall_ms(), &expires);
    static const char *const names[] = {"valid", "unknown", "used", "expired"};
    cJSON *root = cJSON_CreateObject();
    if (root != NULL) {
        cJSON_AddStringToObject(root, "replyToken", token);
        cJSON_AddStringToObject(root, "status", names[status]);
        if (status != EMU_TOKEN_UNKNOWN)
            cJSON_AddNumberToObject(root, "expiresAt", (double)expires);
    }
    answer(call->response, 200, root);
}

/* ---- faults, settings, clear ---- */

static void add_fault(control_call *call)
{
    bool bad = false;
    const char *endpoint_name = string_arg(call->body, "endpoint", 32, &bad);
    const char *kind_name = string_arg(call->body, "kind", 16, &bad);
    const cJSON *count = arg(call->body, "count");
    const cJSON *hang = arg(call->body, "hangMs");
    emu_fault fault = {.accept = bool_arg(call->body, "accept", false)};
    emu_endpoint endpoint = EMU_EP_REPLY;
    bool every_endpoint = endpoint_name != NULL && strcmp(endpoint_name, "*") == 0;
    if (bad || endpoint_name == NULL || kind_name == NULL ||
        (!every_endpoint && emu_endpoint_parse(endpoint_name, &endpoint) != ST_OK) ||
        emu_fault_kind_parse(kind_name, &fault.kind) != ST_OK ||
        (count != NULL && (!cJSON_IsNumber(count) || count->valuedouble < 1 ||
                           count->valuedouble > EMU_FAULT_COUNT_MAX)) ||
        (hang != NULL &&
         (!cJSON_IsNumber(hang) || hang->valuedouble < 1 || hang->valuedouble > 600000))) {
        fail(call->response, 400,
             "a fault needs endpoint (reply, push, profile, groupSummary, groupMember or *), "
             "kind (500, 429, hang, drop), optional count (1..%d), hangMs (1..600000), accept",
             EMU_FAULT_COUNT_MAX);
        return;
    }
    fault.hang_ms = hang != NULL ? (int64_t)hang->valuedouble : 0;
    int64_t times = count != NULL ? (int64_t)count->valuedouble : 1;
    for (int e = 0; e < EMU_EP_COUNT; e++) {
        if (!every_endpoint && e != (int)endpoint)
            continue;
        if (emu_faults_add(&call->app->faults, (emu_endpoint)e, &fault, times) != ST_OK) {
            fail(call->response, 409, "too many fault rules queued for %s (at most %d)",
                 emu_endpoint_name((emu_endpoint)e), EMU_FAULT_RULES_MAX);
            return;
        }
    }
    answer(call->response, 201, emu_faults_to_json(&call->app->faults));
}

static cJSON *settings_json(emu_app *app)
{
    cJSON *root = emu_delivery_settings_json(app->delivery);
    if (root == NULL)
        return NULL;
    cJSON_AddNumberToObject(root, "rateLimit", app->rate.per_second);
    cJSON_AddNumberToObject(root, "latencyMs", (double)app->latency_ms);
    cJSON_AddNumberToObject(root, "replyTokenTtlMs", (double)app->config.reply_token_ttl_ms);
    cJSON_AddNumberToObject(root, "retryKeyTtlMs", (double)app->config.retry_key_ttl_ms);
    cJSON_AddStringToObject(root, "botUserId", app->bot_user_id);
    return root;
}

static void change_settings(control_call *call)
{
    bool bad = false;
    const char *url = string_arg(call->body, "webhookUrl", 2048, &bad);
    const char *escape_name = string_arg(call->body, "escapeNonAscii", 16, &bad);
    const cJSON *redelivery = arg(call->body, "redelivery");
    const cJSON *rate = arg(call->body, "rateLimit");
    const cJSON *corrupt = arg(call->body, "corruptSignatures");
    const cJSON *latency = arg(call->body, "latencyMs");
    emu_escape_mode escape = EMU_ESCAPE_SOMETIMES;
    if (bad ||
        (url != NULL && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
        (escape_name != NULL && emu_escape_mode_parse(escape_name, &escape) != ST_OK) ||
        (redelivery != NULL && !cJSON_IsBool(redelivery)) ||
        (rate != NULL &&
         (!cJSON_IsNumber(rate) || rate->valuedouble < 1 || rate->valuedouble > EMU_RATE_MAX)) ||
        (corrupt != NULL && (!cJSON_IsNumber(corrupt) || corrupt->valuedouble < 0 ||
                             corrupt->valuedouble > 1000000)) ||
        (latency != NULL && (!cJSON_IsNumber(latency) || latency->valuedouble < 0 ||
                             latency->valuedouble > 60000))) {
        fail(call->response, 400,
             "settings: webhookUrl (http/https), redelivery (bool), escapeNonAscii (never, "
             "sometimes, always), rateLimit (1..%d), corruptSignatures (0..1000000), "
             "latencyMs (0..60000)",
             EMU_RATE_MAX);
        return;
    }
    if (url != NULL && emu_delivery_set_url(call->app->delivery, url) != ST_OK) {
        fail(call->response, 500, "out of memory");
        return;
    }
    if (escape_name != NULL)
        emu_delivery_set_escape(call->app->delivery, escape);
    if (redelivery != NULL)
        emu_delivery_set_redelivery(call->app->delivery, cJSON_IsTrue(redelivery));
    if (rate != NULL)
        emu_rate_set(&call->app->rate, (int64_t)rate->valuedouble, call->app->mono_ns());
    if (corrupt != NULL)
        emu_delivery_corrupt_signatures(call->app->delivery, (int)corrupt->valuedouble);
    if (latency != NULL)
        call->app->latency_ms = (int64_t)latency->valuedouble;
    answer(call->response, 200, settings_json(call->app));
}

static void clear_all(control_call *call)
{
    bool keep_users = bool_arg(call->body, "keepUsers", false);
    emu_state_clear(call->app->state, keep_users);
    emu_faults_clear(&call->app->faults);
    emu_delivery_clear(call->app->delivery);
    emu_rate_set(&call->app->rate, (int64_t)call->app->rate.per_second, call->app->mono_ns());
    cJSON *root = cJSON_CreateObject();
    if (root != NULL)
        cJSON_AddBoolToObject(root, "cleared", true);
    answer(call->response, 200, root);
}

static void batch(control_call *call)
{
    const cJSON *list = arg(call->body, "events");
    int count = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 0;
    if (count < 1 || count > BATCH_EVENTS_MAX) {
        fail(call->response, 400, "events must list 1 to %d events", BATCH_EVENTS_MAX);
        return;
    }
    cJSON *events = cJSON_CreateArray();
    if (events == NULL) {
        fail(call->response, 500, "out of memory");
        return;
    }
    int index = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        const cJSON *type = arg(item, "type");
        const cJSON *user_id = arg(item, "userId");
        event_args input = {.args = item};
        if (!cJSON_IsObject(item) || !cJSON_IsString(type) ||
            emu_event_kind_parse(type->valuestring, &input.kind) != ST_OK ||
            (user_id != NULL && !cJSON_IsString(user_id))) {
            fail(call->response, 400,
                 "events[%d] needs a type (follow, unfollow, text, "
                 "location, sticker, image, postback, join, leave, "
                 "memberJoined, memberLeft) and userId or groupId",
                 index);
            cJSON_Delete(events);
            return;
        }
        input.user_id = user_id != NULL ? user_id->valuestring : NULL;
        if (!add_event(call->app, &input, events, call->response)) {
            /* Prefix the problem with the index; earlier events' effects stay applied. */
            cJSON *problem = cJSON_Parse(call->response->body);
            const cJSON *message = cJSON_GetObjectItemCaseSensitive(problem, "message");
            char text[256];
            snprintf(text, sizeof(text), "events[%d]: %s", index,
                     cJSON_IsString(message) ? message->valuestring : "rejected");
            int status = call->response->status;
            cJSON_Delete(problem);
            fail(call->response, status, "%s", text);
            cJSON_Delete(events);
            return;
        }
        index++;
    }
    submit_events(call->app, events, call->response);
}

static cJSON *index_json(emu_app *app)
{
    static const char *const endpoints[] = {
        "GET  /_emulator/",
        "GET|POST /_emulator/users",
        "GET  /_emulator/users/{userId}",
        "POST /_emulator/users/{userId}/{follow|unfollow|text|location|sticker|image|postback|tap}",
        "GET|POST /_emulator/groups",
        "GET  /_emulator/groups/{groupId}",
        "POST /_emulator/groups/{groupId}/{join|leave|members|members/leave}",
        "POST /_emulator/webhook",
        "GET  /_emulator/conversations/{userId|groupId}",
        "GET  /_emulator/messages",
        "GET  /_emulator/deliveries",
        "GET  /_emulator/reply-tokens/{replyToken}",
        "GET|POST|DELETE /_emulator/faults",
        "GET|PUT /_emulator/settings",
        "POST /_emulator/clear",
    };
    cJSON *root = cJSON_CreateObject();
    if (root == NULL)
        return NULL;
    cJSON_AddStringToObject(root, "botUserId", app->bot_user_id);
    cJSON *list = cJSON_AddArrayToObject(root, "endpoints");
    for (size_t i = 0; list != NULL && i < sizeof(endpoints) / sizeof(endpoints[0]); i++)
        cJSON_AddItemToArray(list, cJSON_CreateString(endpoints[i]));
    return root;
}

/* ---- routing ---- */

static bool split_path(emu_str path, control_call *call)
{
    static const char prefix[] = "/_emulator";
    size_t at = sizeof(prefix) - 1;
    call->segment_count = 0;
    while (at < path.len) {
        if (path.ptr[at] == '/') {
            at++;
            continue;
        }
        size_t end = at;
        while (end < path.len && path.ptr[end] != '/')
            end++;
        if (call->segment_count >= SEGMENTS_MAX)
            return false;
        emu_str segment = {path.ptr + at, end - at};
        if (!emu_str_copy(segment, call->segments[call->segment_count++], SEGMENT_MAX))
            return false;
        at = end;
    }
    return true;
}

static bool parse_json_body(control_call *call)
{
    const emu_str body = call->request->body;
    if (body.len > EMU_BODY_BYTES_MAX) {
        fail(call->response, 413, "body over %d bytes", EMU_BODY_BYTES_MAX);
        return false;
    }
    size_t start = 0;
    while (start < body.len && (body.ptr[start] == ' ' || body.ptr[start] == '\n' ||
                                body.ptr[start] == '\r' || body.ptr[start] == '\t'))
        start++;
    if (body.ptr == NULL || start == body.len) {
        call->body = cJSON_CreateObject();
    } else if (emu_utf8_valid(body.ptr, body.len)) {
        call->body = cJSON_ParseWithLength(body.ptr, body.len);
        if (call->body != NULL && !cJSON_IsObject(call->body)) {
            cJSON_Delete(call->body);
            call->body = NULL;
        }
    }
    if (call->body == NULL) {
        fail(call->response, 400, "the body must be a JSON object");
        return false;
    }
    return true;
}

static void route_user(control_call *call)
{
    const char *user_id = call->segments[1];
    if (call->segment_count == 2) {
        const emu_user *user = emu_state_user(call->app->state, user_id);
        if (!method_is(call, "GET"))
            fail(call->response, 405, "use GET");
        else if (user == NULL)
            fail(call->response, 404, "no such user");
        else
            answer(call->response, 200, user_json(user));
        return;
    }
    if (call->segment_count != 3) {
        fail(call->response, 404, "Not found");
        return;
    }
    if (!method_is(call, "POST")) {
        fail(call->response, 405, "use POST");
        return;
    }
    if (segment_is(call, 2, "tap")) {
        if (emu_state_user(call->app->state, user_id) == NULL)
            fail(call->response, 404, "no such user");
        else
            tap(call, user_id);
        return;
    }
    event_args input = {.user_id = user_id, .args = call->body};
    if (emu_event_kind_parse(call->segments[2], &input.kind) != ST_OK ||
        emu_event_kind_group_only(input.kind)) {
        fail(call->response, 404,
             "users can follow, unfollow, text, location, sticker, image, "
             "postback or tap");
        return;
    }
    act_one(call, &input);
}

static void route_group(control_call *call)
{
    const char *group_id = call->segments[1];
    if (call->segment_count == 2) {
        const emu_group *group = emu_state_group(call->app->state, group_id);
        if (!method_is(call, "GET"))
            fail(call->response, 405, "use GET");
        else if (group == NULL)
            fail(call->response, 404, "no such group");
        else
            answer(call->response, 200, group_json(group));
        return;
    }
    if (!method_is(call, "POST")) {
        fail(call->response, 405, "use POST");
        return;
    }
    event_args input = {.group_id = group_id, .args = call->body};
    if (call->segment_count == 3 && segment_is(call, 2, "join"))
        input.kind = EMU_EV_JOIN;
    else if (call->segment_count == 3 && segment_is(call, 2, "leave"))
        input.kind = EMU_EV_LEAVE;
    else if (call->segment_count == 3 && segment_is(call, 2, "members"))
        input.kind = EMU_EV_MEMBER_JOINED;
    else if (call->segment_count == 4 && segment_is(call, 2, "members") &&
             segment_is(call, 3, "leave"))
        input.kind = EMU_EV_MEMBER_LEFT;
    else {
        fail(call->response, 404, "groups have join, leave, members and members/leave");
        return;
    }
    act_one(call, &input);
}

void emu_control_handle(emu_app *app, const emu_request *request, emu_response *response)
{
    control_call call = {.app = app, .request = request, .response = response};
    if (!split_path(request->path, &call)) {
        fail(response, 404, "Not found");
        return;
    }
    if (!parse_json_body(&call))
        return;
    const char *first = call.segment_count > 0 ? call.segments[0] : "";
    size_t n = call.segment_count;
    if (n == 0) {
        answer(response, 200, index_json(app));
    } else if (strcmp(first, "users") == 0 && n == 1) {
        if (method_is(&call, "POST"))
            create_user(&call);
        else if (method_is(&call, "GET"))
            list_users(&call);
        else
            fail(response, 405, "use GET or POST");
    } else if (strcmp(first, "users") == 0) {
        route_user(&call);
    } else if (strcmp(first, "groups") == 0 && n == 1) {
        if (method_is(&call, "POST"))
            create_group(&call);
        else if (method_is(&call, "GET"))
            list_groups(&call);
        else
            fail(response, 405, "use GET or POST");
    } else if (strcmp(first, "groups") == 0) {
        route_group(&call);
    } else if (strcmp(first, "webhook") == 0 && n == 1 && method_is(&call, "POST")) {
        batch(&call);
    } else if (strcmp(first, "conversations") == 0 && n == 2 && method_is(&call, "GET")) {
        conversation(&call, call.segments[1]);
    } else if (strcmp(first, "messages") == 0 && n == 1 && method_is(&call, "GET")) {
        recorded_messages(&call);
    } else if (strcmp(first, "deliveries") == 0 && n == 1 && method_is(&call, "GET")) {
        uint64_t after = (uint64_t)query_int(&call, "after", 0, INT64_MAX);
        size_t limit = (size_t)query_int(&call, "limit", LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX);
        answer(response, 200, emu_delivery_log_json(app->delivery, after, limit));
    } else if (strcmp(first, "reply-tokens") == 0 && n == 2 && method_is(&call, "GET")) {
        reply_token(&call, call.segments[1]);
    } else if (strcmp(first, "faults") == 0 && n == 1) {
        if (method_is(&call, "POST")) {
            add_fault(&call);
        } else if (method_is(&call, "DELETE")) {
            emu_faults_clear(&app->faults);
            answer(response, 200, emu_faults_to_json(&app->faults));
        } else {
            answer(response, 200, emu_faults_to_json(&app->faults));
        }
    } else if (strcmp(first, "settings") == 0 && n == 1) {
        if (method_is(&call, "PUT") || method_is(&call, "POST"))
            change_settings(&call);
        else
            answer(response, 200, settings_json(app));
    } else if (strcmp(first, "clear") == 0 && n == 1 && method_is(&call, "POST")) {
        clear_all(&call);
    } else {
        fail(response, 404, "Not found");
    }
    cJSON_Delete(call.body);
}
