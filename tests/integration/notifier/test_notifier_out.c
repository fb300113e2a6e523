/* ess-notifier against the real line-emulator: LINE_OUT commands published with bus_publish,
 * faults injected through the emulator's control API, and the outcome read back from the
 * emulator (what it recorded), the DLQ stream and the notifier's own metrics.
 *
 * Table-driven: one row per behaviour, one CTest entry per row. Each row runs in a world of
 * its own (notifier_harness.h). */
#include "testkit.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "notifier_command.h"
#include "notifier_harness.h"

typedef enum command_kind {
    PUSH,             /* a text push to a follower */
    PUSH_INVALID,     /* a text push LINE refuses: empty text */
    PUSH_TO_STRANGER, /* a push to a user who does not follow: LINE's 400 */
    REPLY_FRESH,      /* a reply with a token the emulator just issued */
    REPLY_STALE,      /* a reply with a token LINE does not know, fallback_to the user */
    BROKEN,           /* no messages: breaks the schema */
} command_kind;

typedef struct series_value {
    const char *series;
    double value;
} series_value;

typedef struct out_case {
    command_kind kind;
    size_t commands;
    const char *faults[2];
    const char *notifier_env[2];
    /* The notifier starts only once the commands are older than this (ms): a command it
     * pulls the instant it is published may be 0 ms old, whatever the age limit. */
    int64_t start_when_older_ms;
    size_t want_messages;
    const char *want_endpoint;    /* of every recorded message */
    bool want_fallback_key;       /* pushes carry the key of command_id + ".fallback" */
    const char *want_dead_letter; /* a part of the DLQ reason; NULL = no dead letter */
    series_value want[5];         /* exact metric values at the end */
} out_case;

#define REQ(endpoint, status)                                                                      \
    "ess_notifier_requests_total{endpoint=\"" endpoint "\",status=\"" status "\"}"
#define SENT_PUSH "ess_notifier_sent_total{endpoint=\"push\"}"
#define SENT_REPLY "ess_notifier_sent_total{endpoint=\"reply\"}"
#define RETRIED "ess_notifier_retried_total"
#define DEAD "ess_notifier_dead_lettered_total"
#define FALLBACKS "ess_notifier_fallbacks_total"

static const out_case case_push_500_then_200 = {
    .kind = PUSH,
    .commands = 1,
    .faults = {"{\"endpoint\":\"push\",\"kind\":\"500\",\"count\":1}"},
    .want_messages = 1,
    .want_endpoint = "push",
    .want = {{REQ("push", "500"), 1}, {REQ("push", "200"), 1}, {RETRIED, 1}, {SENT_PUSH, 1}},
};

/* The emulator stores the message but its answer never comes in time: the retry carries the
 * same X-Line-Retry-Key and LINE says 409, which counts as delivered. */
static const out_case case_push_timeout_after_accept_gets_409 = {
    .kind = PUSH,
    .commands = 1,
    .faults = {"{\"endpoint\":\"push\",\"kind\":\"hang\",\"hangMs\":3000,\"accept\":true}"},
    .want_messages = 1,
    .want_endpoint = "push",
    .want = {{REQ("push", "timeout"), 1},
             {REQ("push", "409"), 1},
             {REQ("push", "200"), 0},
             {SENT_PUSH, 1}},
};

static const out_case case_push_429_storm_delivers_each_once = {
    .kind = PUSH,
    .commands = 20,
    .faults = {"{\"endpoint\":\"push\",\"kind\":\"429\",\"count\":30}"},
    .want_messages = 20,
    .want_endpoint = "push",
    .want = {{REQ("push", "429"), 30}, {SENT_PUSH, 20}, {DEAD, 0}},
};

static const out_case case_push_dropped_connection_is_retried = {
    .kind = PUSH,
    .commands = 1,
    .faults = {"{\"endpoint\":\"push\",\"kind\":\"drop\"}"},
    .want_messages = 1,
    .want_endpoint = "push",
    .want = {{REQ("push", "transport_error"), 1}, {REQ("push", "200"), 1}, {SENT_PUSH, 1}},
};

static const out_case case_push_refused_400_is_dead_lettered = {
    .kind = PUSH_INVALID,
    .commands = 1,
    .want_messages = 0,
    .want_dead_letter = "LINE answered 400: The request body has 1 error(s) "
                        "[messages[0].text: May not be empty]",
    .want = {{REQ("push", "400"), 1}, {RETRIED, 0}, {DEAD, 1}, {SENT_PUSH, 0}},
};

static const out_case case_push_to_stranger_is_dead_lettered = {
    .kind = PUSH_TO_STRANGER,
    .commands = 1,
    .want_messages = 0,
    .want_dead_letter = "LINE answered 400: Failed to send messages",
    .want = {{REQ("push", "400"), 1}, {RETRIED, 0}, {DEAD, 1}},
};

static const out_case case_reply_with_fresh_token = {
    .kind = REPLY_FRESH,
    .commands = 1,
    .want_messages = 1,
    .want_endpoint = "reply",
    .want = {{REQ("reply", "200"), 1}, {SENT_REPLY, 1}, {SENT_PUSH, 0}, {FALLBACKS, 0}},
};

static const out_case case_reply_stale_token_falls_back_to_push = {
    .kind = REPLY_STALE,
    .commands = 1,
    .want_messages = 1,
    .want_endpoint = "push",
    .want_fallback_key = true,
    .want = {{REQ("reply", "400"), 1}, {REQ("push", "200"), 1}, {FALLBACKS, 1}, {DEAD, 0}},
};

static const out_case case_reply_failing_500_falls_back_to_push = {
    .kind = REPLY_FRESH,
    .commands = 1,
    .faults = {"{\"endpoint\":\"reply\",\"kind\":\"500\"}"},
    .want_messages = 1,
    .want_endpoint = "push",
    .want_fallback_key = true,
    .want = {{REQ("reply", "500"), 1}, {REQ("push", "200"), 1}, {FALLBACKS, 1}},
};

static const out_case case_reply_too_old_goes_by_push = {
    .kind = REPLY_FRESH,
    .commands = 1,
    .notifier_env = {"ESS_NOTIFIER_REPLY_MAX_AGE=1ms"},
    .start_when_older_ms = 5,
    .want_messages = 1,
    .want_endpoint = "push",
    .want_fallback_key = true,
    .want = {{REQ("reply", "200"), 0}, {REQ("push", "200"), 1}, {FALLBACKS, 1}},
};

static const out_case case_broken_command_is_dead_lettered = {
    .kind = BROKEN,
    .commands = 1,
    .want_messages = 0,
    .want_dead_letter = "command: messages must be an array of 1..5 objects",
    .want = {{DEAD, 1}, {REQ("push", "200"), 0}},
};

/* ---- the runner ---------------------------------------------------------------------------- */

static void command_id_of(const nh_env *env, size_t i, char *out, size_t size)
{
    snprintf(out, size, "cmd-%s-%zu", env->unique, i);
}

static void publish_command(nh_env *env, const out_case *c, size_t i, const char *user,
                            const char *stranger, const char *reply_token)
{
    char id[96], body[1024];
    command_id_of(env, i, id, sizeof(id));
    const char *subject = "line.out.push";
    switch (c->kind) {
    case PUSH:
        snprintf(body, sizeof(body),
                 "{\"command_id\":\"%s\",\"to\":\"%s\",\"messages\":[{\"type\":\"text\","
                 "\"text\":\"ทดสอบ %s\"}]}",
                 id, user, id);
        break;
    case PUSH_INVALID:
        snprintf(body, sizeof(body),
                 "{\"command_id\":\"%s\",\"to\":\"%s\",\"messages\":[{\"type\":\"text\","
                 "\"text\":\"\"}]}",
                 id, user);
        break;
    case PUSH_TO_STRANGER:
        snprintf(body, sizeof(body),
                 "{\"command_id\":\"%s\",\"to\":\"%s\",\"messages\":[{\"type\":\"text\","
                 "\"text\":\"ทดสอบ %s\"}]}",
                 id, stranger, id);
        break;
    case REPLY_FRESH:
    case REPLY_STALE:
        subject = "line.out.reply";
        snprintf(body, sizeof(body),
                 "{\"command_id\":\"%s\",\"reply_token\":\"%s\",\"fallback_to\":\"%s\","
                 "\"notification_disabled\":true,\"messages\":[{\"type\":\"text\","
                 "\"text\":\"ทดสอบ %s\"}]}",
                 id, c->kind == REPLY_STALE ? "0123456789abcdef0123456789abcdef" : reply_token,
                 user, id);
        break;
    case BROKEN:
    default:
        snprintf(body, sizeof(body), "{\"command_id\":\"%s\",\"to\":\"%s\"}", id, user);
        break;
    }
    nh_publish(env, subject, body, id);
}

typedef struct dlq_probe {
    nh_env *env;
} dlq_probe;

static bool dead_lettered(void *closure)
{
    dlq_probe *probe = closure;
    return nh_dlq_count(probe->env, "ess.dlq.notifier") >= 1;
}

typedef struct count_probe {
    nh_env *env;
    const char *to;
    size_t want;
} count_probe;

static bool enough_messages(void *closure)
{
    count_probe *probe = closure;
    return nh_emu_message_count(probe->env, probe->to) >= probe->want;
}

static void check_messages(nh_env *env, const out_case *c, const char *user)
{
    cJSON *messages = nh_emu_messages(env, user);
    assert_int_equal(cJSON_GetArraySize(messages), (int)c->want_messages);
    bool *seen = calloc(c->commands, sizeof(bool));
    assert_non_null(seen);
    const cJSON *record;
    cJSON_ArrayForEach(record, messages)
    {
        const cJSON *endpoint = cJSON_GetObjectItemCaseSensitive(record, "endpoint");
        assert_string_equal(endpoint->valuestring, c->want_endpoint);
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(record, "message"), "text");
        assert_true(cJSON_IsString(text));
        /* Which command: the text ends with its id. Each exactly once. */
        const char *id = strstr(text->valuestring, "cmd-");
        assert_non_null(id);
        size_t index = (size_t)strtoul(strrchr(id, '-') + 1, NULL, 10);
        assert_true(index < c->commands);
        assert_false(seen[index]);
        seen[index] = true;
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(record, "retryKey");
        if (strcmp(c->want_endpoint, "reply") == 0) {
            assert_true(cJSON_IsNull(key));
        } else {
            char want_key[VAULT_UUID_TEXT];
            notifier_retry_key(id, c->want_fallback_key, want_key);
            assert_true(cJSON_IsString(key));
            assert_string_equal(key->valuestring, want_key);
        }
    }
    free(seen);
    cJSON_Delete(messages);
}

static void check_dead_letter(nh_env *env, const out_case *c)
{
    if (c->want_dead_letter == NULL) {
        assert_int_equal(nh_dlq_count(env, "ess.dlq.notifier"), 0);
        return;
    }
    assert_int_equal(nh_dlq_count(env, "ess.dlq.notifier"), 1);
    natsMsg *letter = nh_dlq_last(env, "ess.dlq.notifier");
    assert_non_null(letter);
    const char *reason = NULL, *delivered = NULL, *consumer = NULL;
    assert_int_equal(natsMsgHeader_Get(letter, "Ess-Dlq-Reason", &reason), NATS_OK);
    assert_int_equal(natsMsgHeader_Get(letter, "Ess-Dlq-Delivered", &delivered), NATS_OK);
    assert_int_equal(natsMsgHeader_Get(letter, "Ess-Dlq-Consumer", &consumer), NATS_OK);
    if (strstr(reason, c->want_dead_letter) == NULL)
        fail_msg("dead-letter reason \"%s\" lacks \"%s\"", reason, c->want_dead_letter);
    assert_string_equal(delivered, "1"); /* refused at once: never retried */
    assert_string_equal(consumer, "notifier-out");
    natsMsg_Destroy(letter);
}

static int64_t wall_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

typedef struct age_probe {
    int64_t published_ms;
    int64_t older_than_ms;
} age_probe;

static bool commands_old_enough(void *closure)
{
    age_probe *probe = closure;
    return wall_ms() - probe->published_ms > probe->older_than_ms;
}

static void run(const out_case *c)
{
    nh_env env;
    bool start_now = c->start_when_older_ms == 0;
    nh_start(&env, false, start_now, c->notifier_env[0] != NULL ? c->notifier_env : NULL);
    char user[40], stranger[40], reply_token[128] = "";
    nh_emu_user(&env, "ผู้แจ้ง", user);
    cJSON_Delete(nh_emu(&env, "POST", "/users", "{\"displayName\":\"คนแปลกหน้า\"}", 201));
    cJSON *strangers = nh_emu(&env, "GET",
                              "/users?displayName=%E0%B8%84%E0%B8%99%E0%B9%81"
                              "%E0%B8%9B%E0%B8%A5%E0%B8%81%E0%B8%AB%E0%B8%99"
                              "%E0%B9%89%E0%B8%B2",
                              NULL, 200);
    const cJSON *first =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(strangers, "users"), 0);
    snprintf(stranger, sizeof(stranger), "%s",
             cJSON_GetObjectItemCaseSensitive(first, "userId")->valuestring);
    cJSON_Delete(strangers);
    if (c->kind == REPLY_FRESH)
        nh_emu_reply_token(&env, user, reply_token);
    for (size_t i = 0; i < 2 && c->faults[i] != NULL; i++)
        nh_emu_fault(&env, c->faults[i]);

    for (size_t i = 0; i < c->commands; i++)
        publish_command(&env, c, i, user, stranger, reply_token);
    if (!start_now) {
        age_probe age = {wall_ms(), c->start_when_older_ms};
        assert_true(testkit_wait_until(commands_old_enough, &age, 10000));
        nh_notifier_start(&env);
    }

    if (c->want_dead_letter != NULL) {
        dlq_probe probe = {&env};
        assert_true(testkit_wait_until(dead_lettered, &probe, 30000));
    } else {
        count_probe probe = {&env, user, c->want_messages};
        assert_true(testkit_wait_until(enough_messages, &probe, 30000));
    }
    nh_wait_settled(&env, "notifier-out", 30000);
    check_messages(&env, c, user);
    check_dead_letter(&env, c);
    for (size_t i = 0; i < sizeof(c->want) / sizeof(c->want[0]) && c->want[i].series; i++) {
        double value = nh_metric(&env, c->want[i].series);
        if (value != c->want[i].value)
            fail_msg("%s = %g, want %g", c->want[i].series, value, c->want[i].value);
    }
    /* Nothing personal or secret in the log: no token, no user id, no message text. */
    char *log = nh_notifier_log(&env);
    assert_non_null(log);
    assert_null(strstr(log, env.token));
    assert_null(strstr(log, user));
    assert_null(strstr(log, "ทดสอบ"));
    free(log);
    assert_int_equal(nh_notifier_stop(&env, SIGTERM), 0);
    nh_stop(&env);
}

ESS_TEST(push_500_then_200)
{
    run(&case_push_500_then_200);
}

ESS_TEST(push_timeout_after_accept_gets_409)
{
    run(&case_push_timeout_after_accept_gets_409);
}

ESS_TEST(push_429_storm_delivers_each_once)
{
    run(&case_push_429_storm_delivers_each_once);
}

ESS_TEST(push_dropped_connection_is_retried)
{
    run(&case_push_dropped_connection_is_retried);
}

ESS_TEST(push_refused_400_is_dead_lettered)
{
    run(&case_push_refused_400_is_dead_lettered);
}

ESS_TEST(push_to_stranger_is_dead_lettered)
{
    run(&case_push_to_stranger_is_dead_lettered);
}

ESS_TEST(reply_with_fresh_token)
{
    run(&case_reply_with_fresh_token);
}

ESS_TEST(reply_stale_token_falls_back_to_push)
{
    run(&case_reply_stale_token_falls_back_to_push);
}

ESS_TEST(reply_failing_500_falls_back_to_push)
{
    run(&case_reply_failing_500_falls_back_to_push);
}

ESS_TEST(reply_too_old_goes_by_push)
{
    run(&case_reply_too_old_goes_by_push);
}

ESS_TEST(broken_command_is_dead_lettered)
{
    run(&case_broken_command_is_dead_lettered);
}

ESS_TEST_MAIN(NULL, nh_teardown)
