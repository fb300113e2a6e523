/* The Messaging API and the control API driven as functions (emu_app_handle), with a fake
 * clock: LINE's status codes, error bodies, reply tokens, retry keys, rate limit, faults, and
 * the control side (users, follow, tap, batches, conversations). Webhooks go nowhere here
 * (the integration tests deliver them for real). */
#include "testkit.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "emu_app.h"

#define TOKEN "channel-token"
#define AUTH "Bearer " TOKEN
#define JSON_TYPE "application/json"

static int64_t fake_wall = 1796029981997;
static int64_t fake_mono = 1000000000;

static int64_t fake_wall_ms(void)
{
    return fake_wall;
}

static int64_t fake_mono_ns(void)
{
    return fake_mono;
}

static emu_config test_config(void)
{
    emu_config config = {
        .channel_secret = "test_secret",
        .channel_token = TOKEN,
        .webhook_url = "http://127.0.0.1:9/nowhere",
        .bot_user_id = "",
        .reply_token_ttl_ms = 60000,
        .retry_key_ttl_ms = 86400000,
        .rate_limit = 2000,
        .redelivery = false,
        .webhook_timeout_ms = 200,
        .redelivery_interval_ms = 100,
        .redelivery_max_interval_ms = 100,
        .redelivery_attempts = 1,
        .escape_non_ascii = "sometimes",
        .webhook_workers = 1,
        .record_max = 100,
        .conversation_max = 100,
        .fault_hang_ms = 30000,
    };
    return config;
}

/* The app of the running case. cmocka hands cases a copy of the group state, so the fixture
 * lives here; every case starts from a new app (fresh). */
static emu_app *current_app;

static void drop_app(void)
{
    if (current_app != NULL) {
        emu_app_done(current_app);
        free(current_app);
        current_app = NULL;
    }
}

static emu_app *fresh(void **state)
{
    (void)state;
    static emu_config config;
    drop_app();
    config = test_config();
    current_app = calloc(1, sizeof(*current_app));
    assert_non_null(current_app);
    st_error err = {0};
    if (emu_app_init(current_app, &config, NULL, NULL, &err) != ST_OK)
        fail_msg("emu_app_init: %s", err.message);
    fake_wall = 1796029981997;
    fake_mono = 1000000000;
    current_app->wall_ms = fake_wall_ms;
    current_app->mono_ns = fake_mono_ns;
    return current_app;
}

static int teardown(void **state)
{
    (void)state;
    drop_app();
    return 0;
}

/* ---- request helpers ---- */

typedef struct answer {
    int status;
    cJSON *json;
    char request_id[EMU_UUID_LEN + 1];
    char accepted_request_id[EMU_UUID_LEN + 1];
    int64_t hang_ms;
    bool drop;
} answer;

static emu_str text(const char *value)
{
    return (emu_str){value, value != NULL ? strlen(value) : 0};
}

static answer send_raw(emu_app *app, const char *method, const char *path, const char *auth,
                       const char *content_type, const char *retry_key, const char *body,
                       size_t body_len)
{
    emu_request request = {0};
    request.method = text(method);
    const char *query = strchr(path, '?');
    request.path = (emu_str){path, query != NULL ? (size_t)(query - path) : strlen(path)};
    if (query != NULL)
        request.query = text(query + 1);
    request.authorization = text(auth);
    request.content_type = text(content_type);
    request.retry_key = text(retry_key);
    request.body = (emu_str){body != NULL ? body : "", body != NULL ? body_len : 0};
    emu_response response;
    emu_app_handle(app, &request, &response);
    answer result = {.status = response.status, .hang_ms = response.hang_ms, .drop = response.drop};
    result.json =
        response.body != NULL ? cJSON_ParseWithLength(response.body, response.body_len) : NULL;
    memcpy(result.request_id, response.request_id, sizeof(result.request_id));
    memcpy(result.accepted_request_id, response.accepted_request_id,
           sizeof(result.accepted_request_id));
    emu_response_done(&response);
    return result;
}

static answer api(emu_app *app, const char *method, const char *path, const char *retry_key,
                  const char *body)
{
    return send_raw(app, method, path, AUTH, JSON_TYPE, retry_key, body,
                    body != NULL ? strlen(body) : 0);
}

static answer control(emu_app *app, const char *method, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static answer control(emu_app *app, const char *method, const char *path, const char *fmt, ...)
{
    char body[8192] = "";
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(body, sizeof(body), fmt, ap);
        va_end(ap);
    }
    return send_raw(app, method, path, NULL, NULL, NULL, body, strlen(body));
}

static void done(answer *result)
{
    cJSON_Delete(result->json);
    result->json = NULL;
}

static const char *message_of(const answer *result)
{
    const cJSON *message = cJSON_GetObjectItemCaseSensitive(result->json, "message");
    return cJSON_IsString(message) ? message->valuestring : "";
}

static void expect(answer *result, int status, const char *message)
{
    if (result->status != status ||
        (message != NULL && strstr(message_of(result), message) == NULL))
        fail_msg("expected %d '%s', got %d '%s'", status, message != NULL ? message : "",
                 result->status, message_of(result));
}

/* A user who follows the bot; returns the userId into out. */
static void follower(emu_app *app, const char *name, char out[EMU_CHAT_ID_SIZE])
{
    answer created = control(app, "POST", "/_emulator/users", "{\"displayName\":\"%s\"}", name);
    expect(&created, 201, NULL);
    snprintf(out, EMU_CHAT_ID_SIZE, "%s",
             cJSON_GetObjectItemCaseSensitive(created.json, "userId")->valuestring);
    done(&created);
    char path[128];
    snprintf(path, sizeof(path), "/_emulator/users/%s/follow", out);
    answer followed = control(app, "POST", path, NULL);
    expect(&followed, 202, NULL);
    done(&followed);
}

/* The replyToken of the user's (or group's) latest incoming event. */
static void latest_reply_token(emu_app *app, const char *chat_id, char out[64])
{
    char path[128];
    snprintf(path, sizeof(path), "/_emulator/conversations/%s", chat_id);
    answer history = control(app, "GET", path, NULL);
    expect(&history, 200, NULL);
    const cJSON *entries = cJSON_GetObjectItemCaseSensitive(history.json, "entries");
    out[0] = '\0';
    const cJSON *entry;
    cJSON_ArrayForEach(entry, entries)
    {
        const cJSON *event = cJSON_GetObjectItemCaseSensitive(entry, "event");
        const cJSON *token = cJSON_GetObjectItemCaseSensitive(event, "replyToken");
        if (cJSON_IsString(token))
            snprintf(out, 64, "%s", token->valuestring);
    }
    done(&history);
    assert_true(out[0] != '\0');
}

static size_t recorded_count(emu_app *app, const char *to)
{
    char path[128];
    snprintf(path, sizeof(path), "/_emulator/messages?to=%s", to);
    answer list = control(app, "GET", path, NULL);
    expect(&list, 200, NULL);
    size_t count =
        (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(list.json, "messages"));
    done(&list);
    return count;
}

#define PUSH_TO(to) "{\"to\":\"" to "\",\"messages\":[{\"type\":\"text\",\"text\":\"hello\"}]}"

static char *push_body(const char *to)
{
    static char body[256];
    snprintf(body, sizeof(body),
             "{\"to\":\"%s\",\"messages\":[{\"type\":\"text\",\"text\":"
             "\"สวัสดี\"}]}",
             to);
    return body;
}

/* ---- Messaging API ---- */

ESS_TEST(bearer_token_is_required)
{
    emu_app *app = fresh(state);
    const char *body = PUSH_TO("U0123456789abcdef0123456789abcdef");
    answer missing =
        send_raw(app, "POST", "/v2/bot/message/push", NULL, JSON_TYPE, NULL, body, strlen(body));
    expect(&missing, 401, "no token");
    assert_null(cJSON_GetObjectItemCaseSensitive(missing.json, "details"));
    assert_int_equal(strlen(missing.request_id), EMU_UUID_LEN);
    done(&missing);
    answer wrong = send_raw(app, "POST", "/v2/bot/message/push", "Bearer nope", JSON_TYPE, NULL,
                            body, strlen(body));
    expect(&wrong, 401, "invalid token");
    done(&wrong);
    answer prefix = send_raw(app, "GET", "/v2/bot/profile/U0123456789abcdef0123456789abcdef",
                             "Bearer " TOKEN "x", NULL, NULL, NULL, 0);
    expect(&prefix, 401, "invalid token");
    done(&prefix);
}

ESS_TEST(content_type_size_and_json_are_checked)
{
    emu_app *app = fresh(state);
    const char *body = PUSH_TO("U0123456789abcdef0123456789abcdef");
    answer plain =
        send_raw(app, "POST", "/v2/bot/message/push", AUTH, "text/plain", NULL, body, strlen(body));
    expect(&plain, 415, "The content type, text/plain, is not supported");
    done(&plain);
    answer none =
        send_raw(app, "POST", "/v2/bot/message/push", AUTH, NULL, NULL, body, strlen(body));
    expect(&none, 415, NULL);
    done(&none);
    /* A charset parameter is fine: the request gets as far as the recipient check. */
    answer charset = send_raw(app, "POST", "/v2/bot/message/push", AUTH,
                              "application/json; charset=UTF-8", NULL, body, strlen(body));
    expect(&charset, 400, "Failed to send messages");
    done(&charset);

    size_t big = EMU_BODY_BYTES_MAX + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    answer too_large =
        send_raw(app, "POST", "/v2/bot/message/push", AUTH, JSON_TYPE, NULL, huge, big);
    expect(&too_large, 413, NULL);
    done(&too_large);
    free(huge);

    answer broken = api(app, "POST", "/v2/bot/message/push", NULL, "{\"to\":\n \"U1\",}");
    expect(&broken, 400, "could not be parsed as JSON (line: 2");
    done(&broken);
    answer invalid_utf8 = api(app, "POST", "/v2/bot/message/push", NULL, "{\"to\":\"\xff\"}");
    expect(&invalid_utf8, 400, "could not be parsed as JSON");
    done(&invalid_utf8);
}

ESS_TEST(validation_errors_come_with_details)
{
    emu_app *app = fresh(state);
    answer bad = api(app, "POST", "/v2/bot/message/push", NULL,
                     "{\"messages\":[{\"type\":\"text\",\"text\":\"\"},{\"type\":\"sticker\"}]}");
    expect(&bad, 400, "The request body has 4 error(s)");
    const cJSON *details = cJSON_GetObjectItemCaseSensitive(bad.json, "details");
    assert_int_equal(cJSON_GetArraySize(details), 4);
    const char *expected[] = {"to", "messages[0].text", "messages[1].packageId",
                              "messages[1].stickerId"};
    for (int i = 0; i < 4; i++) {
        const cJSON *detail = cJSON_GetArrayItem(details, i);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(detail, "property")->valuestring,
                            expected[i]);
        assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(detail, "message")));
    }
    done(&bad);
}

ESS_TEST(push_only_to_followers_and_joined_groups)
{
    emu_app *app = fresh(state);
    answer stranger = api(app, "POST", "/v2/bot/message/push", NULL,
                          PUSH_TO("U0123456789abcdef0123456789abcdef"));
    expect(&stranger, 400, "Failed to send messages");
    done(&stranger);

    answer created = control(app, "POST", "/_emulator/users", "{\"displayName\":\"ไม่ติดตาม\"}");
    char user_id[EMU_CHAT_ID_SIZE];
    snprintf(user_id, sizeof(user_id), "%s",
             cJSON_GetObjectItemCaseSensitive(created.json, "userId")->valuestring);
    done(&created);
    answer not_following = api(app, "POST", "/v2/bot/message/push", NULL, push_body(user_id));
    expect(&not_following, 400, "Failed to send messages");
    done(&not_following);
    assert_int_equal(recorded_count(app, user_id), 0);

    char path[128];
    snprintf(path, sizeof(path), "/_emulator/users/%s/follow", user_id);
    answer follow = control(app, "POST", path, NULL);
    expect(&follow, 202, NULL);
    done(&follow);
    answer sent = api(app, "POST", "/v2/bot/message/push", NULL, push_body(user_id));
    expect(&sent, 200, NULL);
    const cJSON *sent_messages = cJSON_GetObjectItemCaseSensitive(sent.json, "sentMessages");
    assert_int_equal(cJSON_GetArraySize(sent_messages), 1);
    assert_true(cJSON_IsString(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(sent_messages, 0), "id")));
    assert_true(cJSON_IsString(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(sent_messages, 0), "quoteToken")));
    done(&sent);
    assert_int_equal(recorded_count(app, user_id), 1);

    /* A group: only once the bot has joined. */
    answer group = control(app, "POST", "/_emulator/groups",
                           "{\"groupName\":\"ทีมสหวิชาชีพ\",\"members\":[\"%s\"]}", user_id);
    expect(&group, 201, NULL);
    char group_id[EMU_CHAT_ID_SIZE];
    snprintf(group_id, sizeof(group_id), "%s",
             cJSON_GetObjectItemCaseSensitive(group.json, "groupId")->valuestring);
    done(&group);
    answer before_join = api(app, "POST", "/v2/bot/message/push", NULL, push_body(group_id));
    expect(&before_join, 400, "Failed to send messages");
    done(&before_join);
    snprintf(path, sizeof(path), "/_emulator/groups/%s/join", group_id);
    answer join = control(app, "POST", path, NULL);
    expect(&join, 202, NULL);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(join.json, "events"), 0), "type")
            ->valuestring,
        "join");
    done(&join);
    answer after_join = api(app, "POST", "/v2/bot/message/push", NULL, push_body(group_id));
    expect(&after_join, 200, NULL);
    done(&after_join);
}

ESS_TEST(retry_key_answers_409_with_the_accepted_request_id)
{
    emu_app *app = fresh(state);
    char user_id[EMU_CHAT_ID_SIZE];
    follower(app, "ผู้แจ้ง", user_id);
    const char *key = "123e4567-e89b-12d3-a456-426614174000";
    answer first = api(app, "POST", "/v2/bot/message/push", key, push_body(user_id));
    expect(&first, 200, NULL);
    answer second = api(app, "POST", "/v2/bot/message/push", key, push_body(user_id));
    expect(&second, 409, "The retry key is already accepted");
    assert_string_equal(second.accepted_request_id, first.request_id);
    assert_string_not_equal(second.request_id, first.request_id);
    /* The 409 repeats what was sent the first time. */
    const cJSON *original = cJSON_GetObjectItemCaseSensitive(first.json, "sentMessages");
    const cJSON *repeated = cJSON_GetObjectItemCaseSensitive(second.json, "sentMessages");
    assert_string_equal(cJSON_GetArrayItem(original, 0)->child->valuestring,
                        cJSON_GetArrayItem(repeated, 0)->child->valuestring);
    done(&first);
    done(&second);
    /* Upper-case spelling of the same UUID is the same key. */
    answer upper = api(app, "POST", "/v2/bot/message/push", "123E4567-E89B-12D3-A456-426614174000",
                       push_body(user_id));
    expect(&upper, 409, NULL);
    done(&upper);
    assert_int_equal(recorded_count(app, user_id), 1);

    answer listed = control(app, "GET", "/_emulator/messages", NULL);
    const cJSON *record =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(listed.json, "messages"), 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(record, "retryKey")->valuestring, key);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(record, "to")->valuestring, user_id);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(record, "endpoint")->valuestring, "push");
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(record, "time")));
    done(&listed);

    answer malformed = api(app, "POST", "/v2/bot/message/push", "not-a-uuid", push_body(user_id));
    expect(&malformed, 400, "X-Line-Retry-Key");
    done(&malformed);

    /* After 24 h the key is forgotten and the same key sends again. */
    fake_wall += 86400000;
    answer later = api(app, "POST", "/v2/bot/message/push", key, push_body(user_id));
    expect(&later, 200, NULL);
    done(&later);
}

ESS_TEST(reply_tokens_are_single_use_and_expire)
{
    emu_app *app = fresh(state);
    char user_id[EMU_CHAT_ID_SIZE], token[64];
    follower(app, "ผู้ตอบ", user_id);
    latest_reply_token(app, user_id, token);
    char body[512];
    snprintf(body, sizeof(body),
             "{\"replyToken\":\"%s\",\"messages\":[{\"type\":\"text\",\"text\":\"รับทราบ\"}]}",
             token);

    answer with_key =
        api(app, "POST", "/v2/bot/message/reply", "123e4567-e89b-12d3-a456-426614174000", body);
    expect(&with_key, 400, "X-Line-Retry-Key");
    done(&with_key);
    answer first = api(app, "POST", "/v2/bot/message/reply", NULL, body);
    expect(&first, 200, NULL);
    done(&first);
    answer again = api(app, "POST", "/v2/bot/message/reply", NULL, body);
    expect(&again, 400, "Invalid reply token");
    assert_null(cJSON_GetObjectItemCaseSensitive(again.json, "details"));
    done(&again);

    /* A second event's token, used after its lifetime. */
    char path[128];
    snprintf(path, sizeof(path), "/_emulator/users/%s/text", user_id);
    answer text_event = control(app, "POST", path, "{\"text\":\"ช่วยด้วย\"}");
    expect(&text_event, 202, NULL);
    done(&text_event);
    latest_reply_token(app, user_id, token);
    snprintf(path, sizeof(path), "/_emulator/reply-tokens/%s", token);
    answer status = control(app, "GET", path, NULL);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(status.json, "status")->valuestring,
                        "valid");
    done(&status);
    fake_wall += 60000;
    status = control(app, "GET", path, NULL);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(status.json, "status")->valuestring,
                        "expired");
    done(&status);
    snprintf(body, sizeof(body),
             "{\"replyToken\":\"%s\",\"messages\":[{\"type\":\"text\",\"text\":\"late\"}]}", token);
    answer late = api(app, "POST", "/v2/bot/message/reply", NULL, body);
    expect(&late, 400, "Invalid reply token");
    done(&late);
    answer unknown = api(app, "POST", "/v2/bot/message/reply", NULL,
                         "{\"replyToken\":\"feedfeedfeedfeedfeedfeedfeedfeed\",\"messages\":"
                         "[{\"type\":\"text\",\"text\":\"x\"}]}");
    expect(&unknown, 400, "Invalid reply token");
    done(&unknown);
}

ESS_TEST(rate_limit_answers_429)
{
    emu_app *app = fresh(state);
    answer setting = control(app, "PUT", "/_emulator/settings", "{\"rateLimit\":2}");
    expect(&setting, 200, NULL);
    done(&setting);
    const char *path = "/v2/bot/profile/U0123456789abcdef0123456789abcdef";
    for (int i = 0; i < 2; i++) {
        answer ok = api(app, "GET", path, NULL, NULL);
        expect(&ok, 404, NULL); /* not limited: an unknown user */
        done(&ok);
    }
    answer limited = api(app, "GET", path, NULL, NULL);
    expect(&limited, 429, "The API rate limit has been exceeded");
    done(&limited);
    /* Per endpoint: push still has its own tokens. */
    answer push = api(app, "POST", "/v2/bot/message/push", NULL,
                      PUSH_TO("U0123456789abcdef0123456789abcdef"));
    expect(&push, 400, NULL);
    done(&push);
    fake_mono += 1000000000; /* a second later the bucket is full again */
    answer refilled = api(app, "GET", path, NULL, NULL);
    expect(&refilled, 404, NULL);
    done(&refilled);
}

/* latencyMs (benchmarks): every API answer waits, control answers do not; a hang fault's own
 * delay wins. */
ESS_TEST(latency_setting_delays_api_answers)
{
    emu_app *app = fresh(state);
    answer bad = control(app, "PUT", "/_emulator/settings", "{\"latencyMs\":-1}");
    expect(&bad, 400, NULL);
    done(&bad);
    answer setting = control(app, "PUT", "/_emulator/settings", "{\"latencyMs\":50}");
    expect(&setting, 200, NULL);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(setting.json, "latencyMs")->valueint, 50);
    assert_int_equal(setting.hang_ms, 0);
    done(&setting);
    const char *path = "/v2/bot/profile/U0123456789abcdef0123456789abcdef";
    answer slow = api(app, "GET", path, NULL, NULL);
    expect(&slow, 404, NULL);
    assert_int_equal(slow.hang_ms, 50);
    done(&slow);
    answer fault = control(app, "POST", "/_emulator/faults",
                           "{\"endpoint\":\"profile\",\"kind\":\"hang\",\"hangMs\":7}");
    expect(&fault, 201, NULL);
    done(&fault);
    answer hung = api(app, "GET", path, NULL, NULL);
    assert_int_equal(hung.hang_ms, 7);
    done(&hung);
}

ESS_TEST(profiles_and_groups)
{
    emu_app *app = fresh(state);
    char user_id[EMU_CHAT_ID_SIZE], path[160];
    follower(app, "สมหญิง", user_id);
    snprintf(path, sizeof(path), "/v2/bot/profile/%s", user_id);
    answer profile = api(app, "GET", path, NULL, NULL);
    expect(&profile, 200, NULL);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(profile.json, "displayName")->valuestring,
                        "สมหญิง");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(profile.json, "userId")->valuestring,
                        user_id);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(profile.json, "language")->valuestring,
                        "th");
    done(&profile);
    answer unknown =
        api(app, "GET", "/v2/bot/profile/Uffffffffffffffffffffffffffffffff", NULL, NULL);
    expect(&unknown, 404, "Not found");
    done(&unknown);

    answer group = control(app, "POST", "/_emulator/groups",
                           "{\"groupName\":\"สภ.เมือง\",\"members\":[\"%s\"]}", user_id);
    char group_id[EMU_CHAT_ID_SIZE];
    snprintf(group_id, sizeof(group_id), "%s",
             cJSON_GetObjectItemCaseSensitive(group.json, "groupId")->valuestring);
    done(&group);
    snprintf(path, sizeof(path), "/v2/bot/group/%s/summary", group_id);
    answer hidden = api(app, "GET", path, NULL, NULL);
    expect(&hidden, 404, NULL); /* the bot is not in it yet */
    done(&hidden);
    snprintf(path, sizeof(path), "/_emulator/groups/%s/join", group_id);
    answer join = control(app, "POST", path, NULL);
    done(&join);
    snprintf(path, sizeof(path), "/v2/bot/group/%s/summary", group_id);
    answer summary = api(app, "GET", path, NULL, NULL);
    expect(&summary, 200, NULL);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(summary.json, "groupName")->valuestring,
                        "สภ.เมือง");
    done(&summary);
    snprintf(path, sizeof(path), "/v2/bot/group/%s/member/%s", group_id, user_id);
    answer member = api(app, "GET", path, NULL, NULL);
    expect(&member, 200, NULL);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(member.json, "userId")->valuestring,
                        user_id);
    done(&member);
    answer wrong_method = api(app, "POST", path, NULL, "{}");
    expect(&wrong_method, 405, NULL);
    done(&wrong_method);
    answer nowhere = api(app, "GET", "/v2/bot/info", NULL, NULL);
    expect(&nowhere, 404, NULL);
    done(&nowhere);
}

ESS_TEST(faults_fail_the_next_requests_in_order)
{
    emu_app *app = fresh(state);
    char user_id[EMU_CHAT_ID_SIZE];
    follower(app, "fault", user_id);
    answer added = control(app, "POST", "/_emulator/faults",
                           "{\"endpoint\":\"push\",\"kind\":\"500\",\"count\":2}");
    expect(&added, 201, NULL);
    done(&added);
    answer second_rule =
        control(app, "POST", "/_emulator/faults", "{\"endpoint\":\"push\",\"kind\":\"429\"}");
    done(&second_rule);
    for (int i = 0; i < 2; i++) {
        answer failed = api(app, "POST", "/v2/bot/message/push", NULL, push_body(user_id));
        expect(&failed, 500, NULL);
        done(&failed);
    }
    answer limited = api(app, "POST", "/v2/bot/message/push", NULL, push_body(user_id));
    expect(&limited, 429, NULL);
    done(&limited);
    assert_int_equal(recorded_count(app, user_id), 0);
    answer fine = api(app, "POST", "/v2/bot/message/push", NULL, push_body(user_id));
    expect(&fine, 200, NULL);
    done(&fine);

    /* A hang that carries the request out: recorded now, answered late. */
    answer hang =
        control(app, "POST", "/_emulator/faults",
                "{\"endpoint\":\"push\",\"kind\":\"hang\",\"hangMs\":5000,\"accept\":true}");
    done(&hang);
    answer late = api(app, "POST", "/v2/bot/message/push", "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
                      push_body(user_id));
    expect(&late, 200, NULL);
    assert_int_equal(late.hang_ms, 5000);
    done(&late);
    assert_int_equal(recorded_count(app, user_id), 2);
    /* A drop that does not: nothing recorded, connection to be closed. */
    answer drop =
        control(app, "POST", "/_emulator/faults", "{\"endpoint\":\"*\",\"kind\":\"drop\"}");
    done(&drop);
    answer dropped = api(app, "POST", "/v2/bot/message/push", NULL, push_body(user_id));
    assert_true(dropped.drop);
    done(&dropped);
    assert_int_equal(recorded_count(app, user_id), 2);
    answer cleared = control(app, "DELETE", "/_emulator/faults", NULL);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(cleared.json, "faults")),
                     0);
    done(&cleared);
    answer bad =
        control(app, "POST", "/_emulator/faults", "{\"endpoint\":\"push\",\"kind\":\"418\"}");
    expect(&bad, 400, NULL);
    done(&bad);
}

/* ---- control API ---- */

ESS_TEST(tap_presses_what_the_bot_offered)
{
    emu_app *app = fresh(state);
    char user_id[EMU_CHAT_ID_SIZE], token[64], path[160];
    follower(app, "ผู้ประสบเหตุ", user_id);
    snprintf(path, sizeof(path), "/_emulator/users/%s/tap", user_id);
    answer nothing = control(app, "POST", path, "{\"index\":1}");
    expect(&nothing, 409, "no quick reply");
    done(&nothing);

    latest_reply_token(app, user_id, token);
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"replyToken\":\"%s\",\"messages\":[{\"type\":\"text\",\"text\":\"เลือก\","
             "\"quickReply\":{\"items\":["
             "{\"type\":\"action\",\"action\":{\"type\":\"postback\",\"label\":\"คนคลุ้มคลั่งก่อเหตุ\","
             "\"data\":\"category=frenzy\",\"displayText\":\"คนคลุ้มคลั่งก่อเหตุ\"}},"
             "{\"type\":\"action\",\"action\":{\"type\":\"location\",\"label\":\"ส่งตำแหน่ง\"}},"
             "{\"type\":\"action\",\"action\":{\"type\":\"message\",\"label\":\"ยกเลิก\","
             "\"text\":\"ยกเลิก\"}}]}}]}",
             token);
    answer reply = api(app, "POST", "/v2/bot/message/reply", NULL, body);
    expect(&reply, 200, NULL);
    done(&reply);

    snprintf(path, sizeof(path), "/_emulator/conversations/%s", user_id);
    answer history = control(app, "GET", path, NULL);
    const cJSON *entries = cJSON_GetObjectItemCaseSensitive(history.json, "entries");
    const cJSON *last = cJSON_GetArrayItem(entries, cJSON_GetArraySize(entries) - 1);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(last, "direction")->valuestring, "out");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(last, "via")->valuestring, "reply");
    const cJSON *quick = cJSON_GetObjectItemCaseSensitive(last, "quickReply");
    assert_int_equal(cJSON_GetArraySize(quick), 3);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(quick, 0), "label")->valuestring,
        "คนคลุ้มคลั่งก่อเหตุ");
    done(&history);

    snprintf(path, sizeof(path), "/_emulator/users/%s/tap", user_id);
    answer no_location = control(app, "POST", path, "{\"index\":2}");
    expect(&no_location, 400, "latitude");
    done(&no_location);
    answer out_of_range = control(app, "POST", path, "{\"index\":4}");
    expect(&out_of_range, 409, NULL);
    done(&out_of_range);
    answer tapped = control(app, "POST", path, "{\"index\":1}");
    expect(&tapped, 202, NULL);
    const cJSON *event =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(tapped.json, "events"), 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(event, "type")->valuestring, "postback");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(
                            cJSON_GetObjectItemCaseSensitive(event, "postback"), "data")
                            ->valuestring,
                        "category=frenzy");
    done(&tapped);
    /* The tap was the last word in the chat: the quick reply is gone. */
    answer gone = control(app, "POST", path, "{\"index\":1}");
    expect(&gone, 409, NULL);
    done(&gone);
}

ESS_TEST(location_tap_and_batches)
{
    emu_app *app = fresh(state);
    char first[EMU_CHAT_ID_SIZE], second[EMU_CHAT_ID_SIZE], token[64], path[160];
    follower(app, "หนึ่ง", first);
    follower(app, "สอง", second);
    latest_reply_token(app, first, token);
    char body[512];
    snprintf(body, sizeof(body),
             "{\"replyToken\":\"%s\",\"messages\":[{\"type\":\"text\",\"text\":\"ส่งตำแหน่ง\","
             "\"quickReply\":{\"items\":[{\"type\":\"action\",\"action\":{\"type\":\"location\","
             "\"label\":\"ส่งตำแหน่ง\"}}]}}]}",
             token);
    answer reply = api(app, "POST", "/v2/bot/message/reply", NULL, body);
    expect(&reply, 200, NULL);
    done(&reply);
    snprintf(path, sizeof(path), "/_emulator/users/%s/tap", first);
    answer located =
        control(app, "POST", path, "{\"index\":1,\"latitude\":18.7883,\"longitude\":98.9853}");
    expect(&located, 202, NULL);
    const cJSON *message = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(located.json, "events"), 0), "message");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(message, "type")->valuestring, "location");
    assert_true(cJSON_GetObjectItemCaseSensitive(message, "latitude")->valuedouble == 18.7883);
    done(&located);

    answer batch = control(app, "POST", "/_emulator/webhook",
                           "{\"events\":[{\"type\":\"text\",\"userId\":\"%s\",\"text\":\"a\"},"
                           "{\"type\":\"postback\",\"userId\":\"%s\",\"data\":\"b\"},"
                           "{\"type\":\"location\",\"userId\":\"%s\",\"latitude\":13.7,"
                           "\"longitude\":100.5,\"title\":\"ตลาด\",\"address\":\"กทม\"}]}",
                           first, second, second);
    expect(&batch, 202, NULL);
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(batch.json, "events");
    assert_int_equal(cJSON_GetArraySize(events), 3);
    const char *ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(events, i), "webhookEventId")
                     ->valuestring;
    assert_true(strcmp(ids[0], ids[1]) < 0 && strcmp(ids[1], ids[2]) < 0);
    done(&batch);

    answer bad_batch = control(app, "POST", "/_emulator/webhook",
                               "{\"events\":[{\"type\":\"text\",\"userId\":\"%s\",\"text\":\"a\"},"
                               "{\"type\":\"dance\",\"userId\":\"%s\"}]}",
                               first, first);
    expect(&bad_batch, 400, "events[1]");
    done(&bad_batch);
}

ESS_TEST(follow_rules_and_group_membership)
{
    emu_app *app = fresh(state);
    char user_id[EMU_CHAT_ID_SIZE], path[160];
    follower(app, "บล็อก", user_id);
    snprintf(path, sizeof(path), "/_emulator/users/%s/follow", user_id);
    answer twice = control(app, "POST", path, NULL);
    expect(&twice, 409, "already follows");
    done(&twice);
    snprintf(path, sizeof(path), "/_emulator/users/%s/unfollow", user_id);
    answer unfollow = control(app, "POST", path, NULL);
    expect(&unfollow, 202, NULL);
    assert_null(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(unfollow.json, "events"), 0),
        "replyToken"));
    done(&unfollow);
    snprintf(path, sizeof(path), "/_emulator/users/%s/text", user_id);
    answer blocked = control(app, "POST", path, "{\"text\":\"hi\"}");
    expect(&blocked, 409, "blocked");
    done(&blocked);
    answer push = api(app, "POST", "/v2/bot/message/push", NULL, push_body(user_id));
    expect(&push, 400, "Failed to send messages");
    done(&push);
    snprintf(path, sizeof(path), "/_emulator/users/%s/follow", user_id);
    answer refollow = control(app, "POST", path, NULL);
    expect(&refollow, 202, NULL);
    const cJSON *follow = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(refollow.json, "events"), 0), "follow");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(follow, "isUnblocked")));
    done(&refollow);

    answer group = control(app, "POST", "/_emulator/groups", "{\"groupName\":\"g\"}");
    char group_id[EMU_CHAT_ID_SIZE];
    snprintf(group_id, sizeof(group_id), "%s",
             cJSON_GetObjectItemCaseSensitive(group.json, "groupId")->valuestring);
    done(&group);
    snprintf(path, sizeof(path), "/_emulator/users/%s/text", user_id);
    answer no_bot = control(app, "POST", path, "{\"text\":\"hi\",\"groupId\":\"%s\"}", group_id);
    expect(&no_bot, 409, "bot is not in this group");
    done(&no_bot);
    snprintf(path, sizeof(path), "/_emulator/groups/%s/join", group_id);
    answer join = control(app, "POST", path, NULL);
    done(&join);
    snprintf(path, sizeof(path), "/_emulator/users/%s/text", user_id);
    answer not_member =
        control(app, "POST", path, "{\"text\":\"hi\",\"groupId\":\"%s\"}", group_id);
    expect(&not_member, 409, "not a member");
    done(&not_member);
    snprintf(path, sizeof(path), "/_emulator/groups/%s/members", group_id);
    answer joined = control(app, "POST", path, "{\"userIds\":[\"%s\"]}", user_id);
    expect(&joined, 202, NULL);
    const cJSON *event =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(joined.json, "events"), 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(event, "type")->valuestring,
                        "memberJoined");
    done(&joined);
    snprintf(path, sizeof(path), "/_emulator/users/%s/text", user_id);
    answer in_group =
        control(app, "POST", path, "{\"text\":\"รับเคส\",\"groupId\":\"%s\"}", group_id);
    expect(&in_group, 202, NULL);
    const cJSON *source = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(in_group.json, "events"), 0), "source");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(source, "type")->valuestring, "group");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(source, "userId")->valuestring, user_id);
    done(&in_group);
    answer anonymous = control(app, "POST", path,
                               "{\"text\":\"x\",\"groupId\":\"%s\",\"anonymous\":true}", group_id);
    source = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(anonymous.json, "events"), 0),
        "source");
    assert_null(cJSON_GetObjectItemCaseSensitive(source, "userId"));
    done(&anonymous);
    snprintf(path, sizeof(path), "/_emulator/groups/%s/members/leave", group_id);
    answer left = control(app, "POST", path, "{\"userIds\":[\"%s\"]}", user_id);
    expect(&left, 202, NULL);
    done(&left);

    answer clear = control(app, "POST", "/_emulator/clear", NULL);
    expect(&clear, 200, NULL);
    done(&clear);
    answer users = control(app, "GET", "/_emulator/users", NULL);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(users.json, "users")), 0);
    done(&users);
}

ESS_TEST_MAIN(NULL, teardown)
