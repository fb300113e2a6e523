#include "emu_api.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "emu_text.h"

/* LINE's own wording, kept in one place. */
#define MSG_NOT_FOUND "Not found"
#define MSG_METHOD "Method not allowed"
#define MSG_AUTH_NONE                                                                              \
    "Authentication failed due to the following reason: no token. Confirm that the access "        \
    "token in the authorization header is valid."
#define MSG_AUTH_INVALID                                                                           \
    "Authentication failed due to the following reason: invalid token. Confirm that the "          \
    "access token in the authorization header is valid."
#define MSG_RATE "The API rate limit has been exceeded. Try again later."
#define MSG_TOO_LARGE "Request entity too large"
#define MSG_INTERNAL "Internal server error"
#define MSG_REPLY_TOKEN "Invalid reply token"
#define MSG_RETRY_KEY_NOT_SUPPORTED "X-Line-Retry-Key header is not supported by this API"
#define MSG_RETRY_KEY_INVALID "The value of X-Line-Retry-Key header is invalid"
#define MSG_RETRY_KEY_ACCEPTED "The retry key is already accepted"
#define MSG_SEND_FAILED "Failed to send messages"

typedef struct route {
    emu_endpoint endpoint;
    char first_id[EMU_CHAT_ID_SIZE];  /* userId or groupId from the path */
    char second_id[EMU_CHAT_ID_SIZE]; /* userId of group member */
} route;

/* Copies the path segment starting at *at (up to '/' or the end) into out. */
static bool take_segment(emu_str path, size_t *at, char *out, size_t out_size)
{
    size_t start = *at, end = start;
    while (end < path.len && path.ptr[end] != '/')
        end++;
    if (end == start)
        return false;
    *at = end;
    emu_str segment = {path.ptr + start, end - start};
    return emu_str_copy(segment, out, out_size);
}

/* Keeps an id from the path when it fits; "" otherwise (then nothing matches it: 404). */
static void keep_id(char out[EMU_CHAT_ID_SIZE], const char *id)
{
    size_t len = strlen(id);
    if (len >= EMU_CHAT_ID_SIZE)
        len = 0;
    memcpy(out, id, len);
    out[len] = '\0';
}

static bool rest_is(emu_str path, size_t at, const char *text)
{
    emu_str rest = {path.ptr + at, path.len - at};
    return emu_str_is(rest, text);
}

/* Matches a path; false = not one of ours (404). Ids that do not fit are kept as "" so that
 * the handler answers "Not found" like LINE does for unknown ids. */
static bool match_route(emu_str path, route *ret_route)
{
    static const char profile[] = "/v2/bot/profile/";
    static const char group[] = "/v2/bot/group/";
    memset(ret_route, 0, sizeof(*ret_route));
    if (emu_str_is(path, "/v2/bot/message/reply")) {
        ret_route->endpoint = EMU_EP_REPLY;
        return true;
    }
    if (emu_str_is(path, "/v2/bot/message/push")) {
        ret_route->endpoint = EMU_EP_PUSH;
        return true;
    }
    size_t at;
    if (path.len > sizeof(profile) - 1 && memcmp(path.ptr, profile, sizeof(profile) - 1) == 0) {
        at = sizeof(profile) - 1;
        char id[256];
        if (!take_segment(path, &at, id, sizeof(id)) || at != path.len)
            return false;
        keep_id(ret_route->first_id, id);
        ret_route->endpoint = EMU_EP_PROFILE;
        return true;
    }
    if (path.len > sizeof(group) - 1 && memcmp(path.ptr, group, sizeof(group) - 1) == 0) {
        at = sizeof(group) - 1;
        char id[256];
        if (!take_segment(path, &at, id, sizeof(id)))
            return false;
        keep_id(ret_route->first_id, id);
        if (rest_is(path, at, "/summary")) {
            ret_route->endpoint = EMU_EP_GROUP_SUMMARY;
            return true;
        }
        static const char member[] = "/member/";
        if (path.len - at > sizeof(member) - 1 &&
            memcmp(path.ptr + at, member, sizeof(member) - 1) == 0) {
            at += sizeof(member) - 1;
            char user[256];
            if (!take_segment(path, &at, user, sizeof(user)) || at != path.len)
                return false;
            keep_id(ret_route->second_id, user);
            ret_route->endpoint = EMU_EP_GROUP_MEMBER;
            return true;
        }
    }
    return false;
}

static bool is_post(emu_endpoint endpoint)
{
    return endpoint == EMU_EP_REPLY || endpoint == EMU_EP_PUSH;
}

/* ---- checks ---- */

static bool authorized(const emu_app *app, emu_str authorization, const char **ret_message)
{
    static const char scheme[] = "Bearer ";
    if (authorization.ptr == NULL || authorization.len <= sizeof(scheme) - 1 ||
        strncasecmp(authorization.ptr, scheme, sizeof(scheme) - 1) != 0) {
        *ret_message = MSG_AUTH_NONE;
        return false;
    }
    const char *token = authorization.ptr + sizeof(scheme) - 1;
    size_t token_len = authorization.len - (sizeof(scheme) - 1);
    size_t expected_len = strlen(app->config.channel_token);
    /* Constant time over the expected token; the length itself is not secret. */
    if (token_len != expected_len ||
        CRYPTO_memcmp(token, app->config.channel_token, expected_len) != 0) {
        *ret_message = MSG_AUTH_INVALID;
        return false;
    }
    return true;
}

static bool json_content_type(emu_str content_type)
{
    static const char json[] = "application/json";
    if (content_type.ptr == NULL || content_type.len < sizeof(json) - 1 ||
        strncasecmp(content_type.ptr, json, sizeof(json) - 1) != 0)
        return false;
    if (content_type.len == sizeof(json) - 1)
        return true;
    char next = content_type.ptr[sizeof(json) - 1];
    return next == ';' || next == ' ';
}

static void unsupported_type(emu_response *response, emu_str content_type)
{
    char shown[96];
    if (content_type.ptr == NULL || content_type.len == 0) {
        snprintf(shown, sizeof(shown), "(none)");
    } else {
        size_t n = content_type.len < sizeof(shown) - 1 ? content_type.len : sizeof(shown) - 1;
        for (size_t i = 0; i < n; i++)
            shown[i] = isprint((unsigned char)content_type.ptr[i]) ? content_type.ptr[i] : '?';
        shown[n] = '\0';
    }
    char message[160];
    snprintf(message, sizeof(message), "The content type, %s, is not supported", shown);
    emu_respond_error(response, 415, message, NULL);
}

/* Parses the body as JSON; on failure answers LINE's 400 with the line and column. */
static cJSON *parse_body(emu_str body, emu_response *response)
{
    const char *end = NULL;
    cJSON *root = NULL;
    if (body.ptr != NULL && emu_utf8_valid(body.ptr, body.len))
        root = cJSON_ParseWithLengthOpts(body.ptr, body.len, &end, false);
    if (root != NULL && cJSON_IsObject(root)) {
        /* Trailing garbage after the object is a parse error too. */
        while (end < body.ptr + body.len && isspace((unsigned char)*end))
            end++;
        if (end == body.ptr + body.len)
            return root;
    }
    size_t offset =
        end != NULL && body.ptr != NULL && end >= body.ptr ? (size_t)(end - body.ptr) : 0;
    if (root == NULL && body.ptr != NULL) {
        const char *error_at = cJSON_GetErrorPtr();
        if (error_at != NULL && error_at >= body.ptr && error_at <= body.ptr + body.len)
            offset = (size_t)(error_at - body.ptr);
    }
    cJSON_Delete(root);
    size_t line = 1, column = 1;
    for (size_t i = 0; body.ptr != NULL && i < offset && i < body.len; i++) {
        if (body.ptr[i] == '\n') {
            line++;
            column = 1;
        } else {
            column++;
        }
    }
    char message[128];
    snprintf(message, sizeof(message),
             "The request body could not be parsed as JSON (line: %zu, column: %zu)", line, column);
    emu_respond_error(response, 400, message, NULL);
    return NULL;
}

static void check_notification_disabled(const cJSON *root, emu_problems *problems)
{
    const cJSON *flag = cJSON_GetObjectItemCaseSensitive(root, "notificationDisabled");
    if (flag != NULL && !cJSON_IsBool(flag) && !cJSON_IsNull(flag))
        emu_problems_add(problems, "notificationDisabled", "Must be a boolean");
}

/* ---- accepting messages ---- */

static bool quotable(const cJSON *message)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(message, "type");
    return cJSON_IsString(type) &&
           (strcmp(type->valuestring, "text") == 0 || strcmp(type->valuestring, "textV2") == 0 ||
            strcmp(type->valuestring, "sticker") == 0 || strcmp(type->valuestring, "image") == 0 ||
            strcmp(type->valuestring, "video") == 0);
}

/* Records the messages as sent to chat_id and builds the sentMessages array (caller deletes). */
static st_code accept_messages(emu_app *app, const char *endpoint, const char *chat_id,
                               const cJSON *messages, const char *retry_key, const char *request_id,
                               cJSON **ret_sent)
{
    st_code code = ST_NOMEM;
    cJSON *sent = cJSON_CreateArray();
    if (sent == NULL)
        goto done;
    int64_t now = app->wall_ms();
    const cJSON *message;
    cJSON_ArrayForEach(message, messages)
    {
        char message_id[EMU_MESSAGE_ID_MAX];
        emu_message_id_new(now, message_id);
        cJSON *item = cJSON_CreateObject();
        if (item == NULL)
            goto done;
        cJSON_AddItemToArray(sent, item);
        if (cJSON_AddStringToObject(item, "id", message_id) == NULL)
            goto done;
        if (quotable(message)) {
            char quote_token[EMU_QUOTE_TOKEN_LEN + 1];
            if ((code = emu_quote_token_new(quote_token)) != ST_OK)
                goto done;
            code = ST_NOMEM;
            if (cJSON_AddStringToObject(item, "quoteToken", quote_token) == NULL)
                goto done;
        }
        char *message_json = cJSON_PrintUnformatted(message);
        if (message_json == NULL)
            goto done;
        emu_record record = {.time_ms = now, .message_json = message_json};
        snprintf(record.endpoint, sizeof(record.endpoint), "%s", endpoint);
        snprintf(record.to, sizeof(record.to), "%s", chat_id);
        snprintf(record.request_id, sizeof(record.request_id), "%s", request_id);
        snprintf(record.retry_key, sizeof(record.retry_key), "%s",
                 retry_key != NULL ? retry_key : "");
        snprintf(record.message_id, sizeof(record.message_id), "%s", message_id);
        code = emu_state_record(app->state, &record, NULL);
        if (code == ST_OK)
            code = emu_state_append(app->state, chat_id, EMU_DIR_OUT, endpoint, request_id, "",
                                    message_json, now, NULL);
        cJSON_free(message_json);
        if (code != ST_OK)
            goto done;
        code = ST_NOMEM;
    }
    *ret_sent = sent;
    sent = NULL;
    code = ST_OK;
done:
    cJSON_Delete(sent);
    return code;
}

static void answer_sent(emu_response *response, cJSON *sent)
{
    cJSON *root = cJSON_CreateObject();
    if (root != NULL)
        cJSON_AddItemToObject(root, "sentMessages", sent);
    else
        cJSON_Delete(sent);
    emu_respond_json(response, 200, root);
    cJSON_Delete(root);
}

/* ---- endpoints ---- */

static void handle_reply(emu_app *app, const emu_request *request, const cJSON *root,
                         emu_response *response)
{
    if (request->retry_key.ptr != NULL) {
        emu_respond_error(response, 400, MSG_RETRY_KEY_NOT_SUPPORTED, NULL);
        return;
    }
    emu_problems problems = {0};
    const cJSON *token = cJSON_GetObjectItemCaseSensitive(root, "replyToken");
    if (token == NULL || cJSON_IsNull(token))
        emu_problems_add(&problems, "replyToken", "must be specified");
    else if (!cJSON_IsString(token))
        emu_problems_add(&problems, "replyToken", "Must be a string");
    emu_validate_messages(cJSON_GetObjectItemCaseSensitive(root, "messages"), &problems);
    check_notification_disabled(root, &problems);
    if (problems.total > 0) {
        char *body = NULL;
        size_t len = 0;
        if (emu_validation_error_body(&problems, &body, &len) == ST_OK) {
            response->status = 400;
            response->body = body;
            response->body_len = len;
        } else {
            emu_respond_error(response, 500, MSG_INTERNAL, NULL);
        }
        return;
    }
    char chat_id[EMU_CHAT_ID_SIZE];
    if (emu_state_use_reply_token(app->state, token->valuestring, app->wall_ms(), chat_id) !=
        ST_OK) {
        emu_respond_error(response, 400, MSG_REPLY_TOKEN, NULL);
        return;
    }
    cJSON *sent = NULL;
    if (accept_messages(app, "reply", chat_id, cJSON_GetObjectItemCaseSensitive(root, "messages"),
                        NULL, response->request_id, &sent) != ST_OK) {
        emu_respond_error(response, 500, MSG_INTERNAL, NULL);
        return;
    }
    answer_sent(response, sent);
}

static bool push_target_ok(const emu_app *app, const char *to)
{
    if (emu_line_id_valid(to, 'U')) {
        const emu_user *user = emu_state_user(app->state, to);
        return user != NULL && user->following;
    }
    if (emu_line_id_valid(to, 'C')) {
        const emu_group *group = emu_state_group(app->state, to);
        return group != NULL && group->bot_member;
    }
    return false; /* rooms are not emulated */
}

static void handle_push(emu_app *app, const emu_request *request, const cJSON *root,
                        emu_response *response)
{
    char retry_key[EMU_UUID_LEN + 1] = "";
    if (request->retry_key.ptr != NULL) {
        if (!emu_uuid_valid(request->retry_key.ptr, request->retry_key.len)) {
            emu_respond_error(response, 400, MSG_RETRY_KEY_INVALID, NULL);
            return;
        }
        emu_str_copy(request->retry_key, retry_key, sizeof(retry_key));
        /* LINE compares keys as UUIDs: one key, whatever the letter case. */
        for (char *at = retry_key; *at != '\0'; at++)
            *at = (char)tolower((unsigned char)*at);
        const emu_retry_entry *seen = emu_state_retry_key(app->state, retry_key, app->wall_ms());
        if (seen != NULL) {
            cJSON *body = cJSON_CreateObject();
            cJSON *sent = cJSON_Parse(seen->sent_messages_json);
            if (body != NULL &&
                cJSON_AddStringToObject(body, "message", MSG_RETRY_KEY_ACCEPTED) != NULL &&
                sent != NULL) {
                cJSON_AddItemToObject(body, "sentMessages", sent);
                sent = NULL;
            }
            emu_respond_json(response, 409, body);
            cJSON_Delete(body);
            cJSON_Delete(sent);
            snprintf(response->accepted_request_id, sizeof(response->accepted_request_id), "%s",
                     seen->request_id);
            return;
        }
    }
    emu_problems problems = {0};
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(root, "to");
    if (to == NULL || cJSON_IsNull(to))
        emu_problems_add(&problems, "to", "must be specified");
    else if (!cJSON_IsString(to))
        emu_problems_add(&problems, "to", "Must be a string");
    emu_validate_messages(cJSON_GetObjectItemCaseSensitive(root, "messages"), &problems);
    check_notification_disabled(root, &problems);
    if (problems.total > 0) {
        char *body = NULL;
        size_t len = 0;
        if (emu_validation_error_body(&problems, &body, &len) == ST_OK) {
            response->status = 400;
            response->body = body;
            response->body_len = len;
        } else {
            emu_respond_error(response, 500, MSG_INTERNAL, NULL);
        }
        return;
    }
    if (!push_target_ok(app, to->valuestring)) {
        emu_respond_error(response, 400, MSG_SEND_FAILED, NULL);
        return;
    }
    cJSON *sent = NULL;
    if (accept_messages(
            app, "push", to->valuestring, cJSON_GetObjectItemCaseSensitive(root, "messages"),
            retry_key[0] != '\0' ? retry_key : NULL, response->request_id, &sent) != ST_OK) {
        emu_respond_error(response, 500, MSG_INTERNAL, NULL);
        return;
    }
    if (retry_key[0] != '\0') {
        char *sent_json = cJSON_PrintUnformatted(sent);
        st_code code = sent_json != NULL ? emu_state_remember_retry_key(app->state, retry_key,
                                                                        response->request_id,
                                                                        sent_json, app->wall_ms())
                                         : ST_NOMEM;
        cJSON_free(sent_json);
        if (code != ST_OK) {
            cJSON_Delete(sent);
            emu_respond_error(response, 500, MSG_INTERNAL, NULL);
            return;
        }
    }
    answer_sent(response, sent);
}

static void handle_profile(emu_app *app, const route *matched, emu_response *response)
{
    const emu_user *user = emu_state_user(app->state, matched->first_id);
    if (user == NULL || !user->following) {
        emu_respond_error(response, 404, MSG_NOT_FOUND, NULL);
        return;
    }
    cJSON *root = cJSON_CreateObject();
    if (root != NULL) {
        cJSON_AddStringToObject(root, "displayName", user->display_name);
        cJSON_AddStringToObject(root, "userId", user->user_id);
        if (user->language[0] != '\0')
            cJSON_AddStringToObject(root, "language", user->language);
        if (user->picture_url[0] != '\0')
            cJSON_AddStringToObject(root, "pictureUrl", user->picture_url);
        if (user->status_message[0] != '\0')
            cJSON_AddStringToObject(root, "statusMessage", user->status_message);
    }
    emu_respond_json(response, 200, root);
    cJSON_Delete(root);
}

static void handle_group_summary(emu_app *app, const route *matched, emu_response *response)
{
    const emu_group *group = emu_state_group(app->state, matched->first_id);
    if (group == NULL || !group->bot_member) {
        emu_respond_error(response, 404, MSG_NOT_FOUND, NULL);
        return;
    }
    cJSON *root = cJSON_CreateObject();
    if (root != NULL) {
        cJSON_AddStringToObject(root, "groupId", group->group_id);
        cJSON_AddStringToObject(root, "groupName", group->group_name);
        if (group->picture_url[0] != '\0')
            cJSON_AddStringToObject(root, "pictureUrl", group->picture_url);
    }
    emu_respond_json(response, 200, root);
    cJSON_Delete(root);
}

static void handle_group_member(emu_app *app, const route *matched, emu_response *response)
{
    const emu_group *group = emu_state_group(app->state, matched->first_id);
    const emu_user *user = emu_state_user(app->state, matched->second_id);
    if (group == NULL || !group->bot_member || user == NULL ||
        !emu_group_has_member(group, user->user_id)) {
        emu_respond_error(response, 404, MSG_NOT_FOUND, NULL);
        return;
    }
    cJSON *root = cJSON_CreateObject();
    if (root != NULL) {
        cJSON_AddStringToObject(root, "displayName", user->display_name);
        cJSON_AddStringToObject(root, "userId", user->user_id);
        if (user->picture_url[0] != '\0')
            cJSON_AddStringToObject(root, "pictureUrl", user->picture_url);
    }
    emu_respond_json(response, 200, root);
    cJSON_Delete(root);
}

static void answer_fault(const emu_fault *fault, int64_t default_hang_ms, emu_response *response)
{
    switch (fault->kind) {
    case EMU_FAULT_429:
        emu_respond_error(response, 429, MSG_RATE, NULL);
        break;
    case EMU_FAULT_HANG:
        emu_respond_error(response, 500, MSG_INTERNAL, NULL);
        response->hang_ms = fault->hang_ms > 0 ? fault->hang_ms : default_hang_ms;
        break;
    case EMU_FAULT_DROP:
        emu_respond_error(response, 500, MSG_INTERNAL, NULL);
        response->drop = true;
        break;
    default:
        emu_respond_error(response, 500, MSG_INTERNAL, NULL);
        break;
    }
}

void emu_api_handle(emu_app *app, const emu_request *request, emu_response *response)
{
    cJSON *root = NULL;
    if (emu_uuid_new(response->request_id) != ST_OK)
        response->request_id[0] = '\0';
    route matched;
    if (!match_route(request->path, &matched)) {
        emu_respond_error(response, 404, MSG_NOT_FOUND, NULL);
        goto done;
    }
    bool post = is_post(matched.endpoint);
    if (!emu_str_is(request->method, post ? "POST" : "GET")) {
        emu_respond_error(response, 405, MSG_METHOD, NULL);
        goto done;
    }
    emu_fault fault = {0};
    bool faulted = emu_faults_take(&app->faults, matched.endpoint, &fault);
    bool carry_out =
        faulted && (fault.kind == EMU_FAULT_HANG || fault.kind == EMU_FAULT_DROP) && fault.accept;
    if (faulted && !carry_out) {
        answer_fault(&fault, app->config.fault_hang_ms, response);
        goto done;
    }

    const char *auth_message = NULL;
    if (!authorized(app, request->authorization, &auth_message)) {
        emu_respond_error(response, 401, auth_message, NULL);
        goto apply_fault;
    }
    if (!emu_rate_allow(&app->rate, matched.endpoint, app->mono_ns())) {
        emu_respond_error(response, 429, MSG_RATE, NULL);
        goto apply_fault;
    }
    if (post) {
        if (request->body.len > EMU_BODY_BYTES_MAX) {
            emu_respond_error(response, 413, MSG_TOO_LARGE, NULL);
            goto apply_fault;
        }
        if (!json_content_type(request->content_type)) {
            unsupported_type(response, request->content_type);
            goto apply_fault;
        }
        root = parse_body(request->body, response);
        if (root == NULL)
            goto apply_fault;
    }
    switch (matched.endpoint) {
    case EMU_EP_REPLY:
        handle_reply(app, request, root, response);
        break;
    case EMU_EP_PUSH:
        handle_push(app, request, root, response);
        break;
    case EMU_EP_PROFILE:
        handle_profile(app, &matched, response);
        break;
    case EMU_EP_GROUP_SUMMARY:
        handle_group_summary(app, &matched, response);
        break;
    case EMU_EP_GROUP_MEMBER:
        handle_group_member(app, &matched, response);
        break;
    default:
        emu_respond_error(response, 404, MSG_NOT_FOUND, NULL);
        break;
    }
apply_fault:
    if (carry_out) {
        /* The request was carried out; only its answer is late or lost. */
        if (fault.kind == EMU_FAULT_HANG)
            response->hang_ms = fault.hang_ms > 0 ? fault.hang_ms : app->config.fault_hang_ms;
        else
            response->drop = true;
    }
done:
    /* A platform's own latency (settings latencyMs): the answer waits, the request is served. */
    if (app->latency_ms > 0 && response->hang_ms == 0 && !response->drop)
        response->hang_ms = app->latency_ms;
    cJSON_Delete(root);
}
