/* ess-notifier stopped in the middle of its work: killed with SIGKILL during 1,000 pushes, or
 * stopped with SIGTERM while LINE holds its answers. After a restart the emulator has each
 * message exactly once: JetStream redelivers what was not acknowledged, and the retry keys
 * make LINE answer 409 for what had already gone out. */
#include "testkit.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notifier_command.h"
#include "notifier_harness.h"

#define USERS 10

typedef struct push_plan {
    const char *unique;
    char users[USERS][40];
} push_plan;

static void make_push(size_t i, char *subject, char *body, size_t body_size, char *msg_id,
                      void *closure)
{
    push_plan *plan = closure;
    snprintf(msg_id, BUS_MSG_ID_MAX, "cmd-%s-%zu", plan->unique, i);
    snprintf(subject, BUS_SUBJECT_MAX, "line.out.push");
    snprintf(body, body_size,
             "{\"command_id\":\"%s\",\"to\":\"%s\",\"messages\":[{\"type\":\"text\","
             "\"text\":\"ข้อความ %s\"}]}",
             msg_id, plan->users[i % USERS], msg_id);
}

typedef struct total_probe {
    nh_env *env;
    size_t want;
} total_probe;

static bool emulator_has(void *closure)
{
    total_probe *probe = closure;
    return nh_emu_message_count(probe->env, "") >= probe->want;
}

/* Each of count commands exactly once, to the right user, with its own retry key. */
static void check_exactly_once(nh_env *env, const push_plan *plan, size_t count)
{
    cJSON *messages = nh_emu_messages(env, "");
    assert_int_equal(cJSON_GetArraySize(messages), (int)count);
    unsigned char *seen = calloc(count, 1);
    assert_non_null(seen);
    const cJSON *record;
    cJSON_ArrayForEach(record, messages)
    {
        const char *text = cJSON_GetObjectItemCaseSensitive(
                               cJSON_GetObjectItemCaseSensitive(record, "message"), "text")
                               ->valuestring;
        const char *id = strstr(text, "cmd-");
        assert_non_null(id);
        size_t index = (size_t)strtoul(strrchr(id, '-') + 1, NULL, 10);
        assert_true(index < count);
        if (seen[index]++)
            fail_msg("command %zu was delivered twice", index);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(record, "to")->valuestring,
                            plan->users[index % USERS]);
        char key[VAULT_UUID_TEXT];
        notifier_retry_key(id, false, key);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(record, "retryKey")->valuestring, key);
    }
    free(seen);
    cJSON_Delete(messages);
}

ESS_TEST(sigkill_during_1000_pushes_delivers_each_once)
{
    enum { PUSHES = 1000 };
    nh_env env;
    /* Slow enough (400 requests/s) that the kill lands in the middle. */
    nh_start(&env, false, true,
             (const char *const[]){"ESS_NOTIFIER_CONCURRENCY=8", "ESS_LINE_RATE_LIMIT=400",
                                   "ESS_NOTIFIER_REQUEST_TIMEOUT=3s", "ESS_LOG_LEVEL=info", NULL});
    push_plan plan = {.unique = env.unique};
    for (size_t u = 0; u < USERS; u++) {
        char name[32];
        snprintf(name, sizeof(name), "ผู้ใช้ %zu", u);
        nh_emu_user(&env, name, plan.users[u]);
    }
    int64_t started = testkit_now_ms();
    nh_publish_many(&env, PUSHES, make_push, &plan);
    nh_wait_metric(&env, "ess_notifier_sent_total{endpoint=\"push\"}", 250, 30000);
    assert_int_equal(nh_notifier_stop(&env, SIGKILL), 128 + SIGKILL);
    size_t at_kill = nh_emu_message_count(&env, "");
    assert_true(at_kill >= 250);
    assert_true(at_kill < PUSHES);

    nh_notifier_start(&env);
    total_probe probe = {&env, PUSHES};
    assert_true(testkit_wait_until(emulator_has, &probe, 60000));
    nh_wait_settled(&env, "notifier-out", 60000);
    check_exactly_once(&env, &plan, PUSHES);
    printf("# killed with %zu of %d delivered; after the restart: %g new (200), %g already "
           "accepted (409); %.1f s in all\n",
           at_kill, PUSHES,
           nh_metric(&env, "ess_notifier_requests_total{endpoint=\"push\",status=\"200\"}"),
           nh_metric(&env, "ess_notifier_requests_total{endpoint=\"push\",status=\"409\"}"),
           (double)(testkit_now_ms() - started) / 1000.0);
    assert_int_equal(nh_dlq_count(&env, "ess.dlq.notifier"), 0);
    assert_int_equal(nh_notifier_stop(&env, SIGTERM), 0);
    nh_stop(&env);
}

ESS_TEST(sigterm_hands_back_what_line_has_not_answered)
{
    enum { PUSHES = 3 };
    nh_env env;
    nh_start(
        &env, false, true,
        (const char *const[]){"ESS_NOTIFIER_REQUEST_TIMEOUT=30s", "ESS_DRAIN_TIMEOUT=2s", NULL});
    push_plan plan = {.unique = env.unique};
    for (size_t u = 0; u < USERS; u++)
        nh_emu_user(&env, "ผู้ใช้", plan.users[u]);
    /* LINE takes the messages but holds its answers past the drain budget. */
    nh_emu_fault(&env, "{\"endpoint\":\"push\",\"kind\":\"hang\",\"hangMs\":20000,"
                       "\"accept\":true,\"count\":3}");
    nh_publish_many(&env, PUSHES, make_push, &plan);
    nh_wait_metric(&env, "ess_notifier_in_flight", PUSHES, 30000);
    int64_t asked = testkit_now_ms();
    assert_int_equal(nh_notifier_stop(&env, SIGTERM), 0); /* clean, sanitizers quiet */
    assert_true(testkit_now_ms() - asked < 6000);
    assert_false(nh_consumer_settled(&env, "notifier-out")); /* handed back, not acked */

    nh_notifier_start(&env);
    nh_wait_settled(&env, "notifier-out", 30000);
    check_exactly_once(&env, &plan, PUSHES);
    assert_true(nh_metric(&env, "ess_notifier_requests_total{endpoint=\"push\",status=\"409\"}") ==
                PUSHES);
    assert_int_equal(nh_notifier_stop(&env, SIGTERM), 0);
    nh_stop(&env);
}

ESS_TEST_MAIN(NULL, nh_teardown)
