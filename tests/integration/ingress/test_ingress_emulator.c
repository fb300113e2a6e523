/* ess-ingress driven by tools/line-emulator, as LINE would drive it: the emulator builds the
 * events, signs them (header case varying), escapes non-ASCII every other attempt and
 * redelivers what did not get a 2xx in time. Each case: a fresh ingress and emulator sharing
 * a channel secret; users are the emulator's (unique ids), so cases share LINE_IN safely. */
#include "testkit.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ingress_harness.h"

#define EVENTS_MAX 8

typedef struct emulator {
    char base_url[64];
    char log_path[256];
    int pid;
} emulator;

static bool emulator_alive(void *closure)
{
    const emulator *e = closure;
    char url[128];
    snprintf(url, sizeof(url), "%s/healthz", e->base_url);
    long status = 0;
    testkit_http("GET", url, NULL, NULL, 0, 1000, &status, NULL);
    return status == 200;
}

static void emulator_start(emulator *e, const ingress_proc *target)
{
    char unique[40];
    testkit_unique(unique, sizeof(unique));
    memset(e, 0, sizeof(*e));
    int port = testkit_free_port();
    assert_true(port > 0);
    snprintf(e->base_url, sizeof(e->base_url), "http://127.0.0.1:%d", port);
    snprintf(e->log_path, sizeof(e->log_path), "/tmp/ess-ingress-emulator-%s.log", unique);
    char listen_env[64], secret_env[128], webhook_env[160], binary[512];
    snprintf(listen_env, sizeof(listen_env), "ESS_EMULATOR_LISTEN=127.0.0.1:%d", port);
    snprintf(secret_env, sizeof(secret_env), "ESS_LINE_CHANNEL_SECRET=%s", target->secret);
    snprintf(webhook_env, sizeof(webhook_env), "ESS_EMULATOR_WEBHOOK_URL=%s/line/webhook",
             target->base_url);
    snprintf(binary, sizeof(binary), "%s/line-emulator", testkit_bin_dir());
    const char *argv[] = {binary, NULL};
    const char *env[] = {listen_env,
                         secret_env,
                         webhook_env,
                         "ESS_LINE_CHANNEL_TOKEN=emulator-test-token",
                         "ESS_EMULATOR_REDELIVERY_INTERVAL=200ms",
                         "ESS_EMULATOR_REDELIVERY_MAX_INTERVAL=1s",
                         NULL};
    e->pid = testkit_spawn(argv, env, e->log_path);
    assert_true(e->pid > 0);
    testkit_track(e->pid);
    assert_true(testkit_wait_until(emulator_alive, e, 20000));
}

static void emulator_stop(emulator *e)
{
    assert_int_equal(harness_stop_process(e->pid, 15000), 0);
    unlink(e->log_path);
}

/* One control call; fails the test unless the answer is want_status. Caller deletes. */
static cJSON *control(const emulator *e, const char *method, const char *path, const char *body,
                      long want_status)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/_emulator%s", e->base_url, path);
    const char *headers[] = {"Content-Type: application/json", NULL};
    long status = 0;
    char *answer = NULL;
    testkit_http(method, url, headers, body, body != NULL ? strlen(body) : 0, 10000, &status,
                 &answer);
    if (status != want_status)
        fail_msg("%s %s: %ld (want %ld): %s", method, path, status, want_status,
                 answer != NULL ? answer : "");
    cJSON *json = cJSON_Parse(answer != NULL ? answer : "");
    free(answer);
    assert_non_null(json);
    return json;
}

static void create_user(const emulator *e, char *ret_user_id, size_t size)
{
    char unique[40], body[128];
    testkit_unique(unique, sizeof(unique));
    snprintf(body, sizeof(body), "{\"displayName\":\"ผู้แจ้ง %s\",\"language\":\"th\"}", unique);
    cJSON *user = control(e, "POST", "/users", body, 201);
    const cJSON *user_id = cJSON_GetObjectItem(user, "userId");
    assert_true(cJSON_IsString(user_id));
    snprintf(ret_user_id, size, "%s", user_id->valuestring);
    cJSON_Delete(user);
}

typedef struct sent {
    char event_ids[EVENTS_MAX][64];
    size_t count;
} sent;

/* Acts (202) and appends the events' webhookEventIds to s; returns the delivery id. */
static int act(const emulator *e, const char *path, const char *body, sent *s)
{
    cJSON *answer = control(e, "POST", path, body, 202);
    const cJSON *delivery = cJSON_GetObjectItem(answer, "deliveryId");
    assert_true(cJSON_IsNumber(delivery));
    const cJSON *event;
    cJSON_ArrayForEach(event, cJSON_GetObjectItem(answer, "events"))
    {
        const cJSON *id = cJSON_GetObjectItem(event, "webhookEventId");
        assert_true(cJSON_IsString(id));
        assert_true(s->count < EVENTS_MAX);
        snprintf(s->event_ids[s->count++], 64, "%s", id->valuestring);
    }
    int delivery_id = delivery->valueint;
    cJSON_Delete(answer);
    return delivery_id;
}

/* The delivery's record (a detached copy; caller deletes) or NULL. */
static cJSON *delivery_record(const emulator *e, int delivery_id)
{
    cJSON *all = control(e, "GET", "/deliveries?after=0", NULL, 200);
    cJSON *found = NULL;
    cJSON *delivery;
    cJSON_ArrayForEach(delivery, cJSON_GetObjectItem(all, "deliveries"))
    {
        const cJSON *id = cJSON_GetObjectItem(delivery, "id");
        if (cJSON_IsNumber(id) && id->valueint == delivery_id)
            found = cJSON_Duplicate(delivery, true);
    }
    cJSON_Delete(all);
    return found;
}

typedef struct delivery_wait {
    const emulator *e;
    int id;
    const char *state; /* wait for this state, or */
    long first_status; /* for a first attempt answered with this status */
} delivery_wait;

static bool delivery_reached(void *closure)
{
    const delivery_wait *w = closure;
    cJSON *record = delivery_record(w->e, w->id);
    bool reached = false;
    if (record != NULL && w->state != NULL) {
        const cJSON *state = cJSON_GetObjectItem(record, "state");
        reached = cJSON_IsString(state) && strcmp(state->valuestring, w->state) == 0;
    } else if (record != NULL) {
        const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(record, "attempts"), 0);
        const cJSON *status = cJSON_GetObjectItem(first, "status");
        reached = cJSON_IsNumber(status) && status->valueint == w->first_status;
    }
    cJSON_Delete(record);
    return reached;
}

static void wait_delivered(const emulator *e, int delivery_id)
{
    delivery_wait w = {e, delivery_id, "delivered", 0};
    if (!testkit_wait_until(delivery_reached, &w, 30000)) {
        cJSON *record = delivery_record(e, delivery_id);
        char *text = record != NULL ? cJSON_PrintUnformatted(record) : NULL;
        fail_msg("delivery %d not delivered: %s", delivery_id, text != NULL ? text : "(none)");
    }
}

/* LINE_IN holds exactly the events of s under the user's subject, each once, in order. */
static void expect_stored_once(const char *nats_url, const char *secret, const char *user_id,
                               const sent *s)
{
    line_in l;
    line_in_open(&l, nats_url);
    char subject[128];
    subject_for(subject, sizeof(subject), secret, "user", user_id);
    char stored[EVENTS_MAX + 2][64];
    size_t count = line_in_msg_ids(&l, subject, stored, EVENTS_MAX + 2);
    if (count != s->count)
        fail_msg("%zu events stored for the user, %zu sent", count, s->count);
    for (size_t i = 0; i < count; i++)
        assert_string_equal(stored[i], s->event_ids[i]);
    line_in_close(&l);
}

static uint64_t metric(const ingress_proc *p, const char *series)
{
    char url[128], *text = NULL;
    long status = 0;
    snprintf(url, sizeof(url), "%s/metrics", p->base_url);
    testkit_http("GET", url, NULL, NULL, 0, 2000, &status, &text);
    assert_int_equal(status, 200);
    char line_start[160];
    snprintf(line_start, sizeof(line_start), "\n%s", series); /* not the # HELP line */
    const char *at = strstr(text, line_start);
    assert_non_null(at);
    uint64_t value = strtoull(at + strlen(line_start), NULL, 10);
    free(text);
    return value;
}

ESS_TEST(follow_text_location_postback_are_stored_once_each)
{
    (void)state;
    ingress_proc p;
    ingress_start(&p, shared_nats(), true);
    emulator e;
    emulator_start(&e, &p);
    char user[64], path[128];
    create_user(&e, user, sizeof(user));
    sent s = {0};
    int deliveries[4];
    snprintf(path, sizeof(path), "/users/%s/follow", user);
    deliveries[0] = act(&e, path, NULL, &s);
    snprintf(path, sizeof(path), "/users/%s/text", user);
    deliveries[1] = act(&e, path, "{\"text\":\"ช่วยด้วย มีคนขู่จะทำร้าย\"}", &s);
    snprintf(path, sizeof(path), "/users/%s/location", user);
    deliveries[2] = act(&e, path,
                        "{\"latitude\":18.7883,\"longitude\":98.9853,\"title\":\"บ้าน\","
                        "\"address\":\"เชียงใหม่\"}",
                        &s);
    snprintf(path, sizeof(path), "/users/%s/postback", user);
    deliveries[3] = act(&e, path, "{\"data\":\"category=threat\"}", &s);
    for (int i = 0; i < 4; i++)
        wait_delivered(&e, deliveries[i]);

    expect_stored_once(shared_nats(), p.secret, user, &s);
    assert_int_equal(metric(&p, "ess_ingress_signature_failures_total "), 0);
    assert_int_equal(metric(&p, "ess_ingress_events_total{type=\"postback\"} "), 1);

    emulator_stop(&e);
    assert_int_equal(ingress_stop(&p, false), 0);
}

ESS_TEST(forged_signature_is_refused_and_the_redelivery_stored)
{
    (void)state;
    ingress_proc p;
    ingress_start(&p, shared_nats(), true);
    emulator e;
    emulator_start(&e, &p);
    char user[64], path[128];
    create_user(&e, user, sizeof(user));
    cJSON_Delete(control(&e, "PUT", "/settings", "{\"corruptSignatures\":1}", 200));
    sent s = {0};
    snprintf(path, sizeof(path), "/users/%s/text", user);
    int delivery = act(&e, path, "{\"text\":\"help\"}", &s);
    wait_delivered(&e, delivery);

    cJSON *record = delivery_record(&e, delivery);
    const cJSON *attempts = cJSON_GetObjectItem(record, "attempts");
    assert_true(cJSON_GetArraySize(attempts) >= 2);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(attempts, 0), "status")->valueint, 401);
    cJSON_Delete(record);
    expect_stored_once(shared_nats(), p.secret, user, &s);
    assert_int_equal(metric(&p, "ess_ingress_signature_failures_total "), 1);

    emulator_stop(&e);
    assert_int_equal(ingress_stop(&p, false), 0);
}

ESS_TEST(event_stored_before_a_503_is_not_duplicated_by_the_redelivery)
{
    (void)state;
    testkit_nats n;
    testkit_nats_start(&n, "ingress");
    ingress_proc p;
    ingress_start(&p, n.url, true);
    emulator e;
    emulator_start(&e, &p);
    char user[64], path[128];
    create_user(&e, user, sizeof(user));
    sent s = {0};
    snprintf(path, sizeof(path), "/users/%s/follow", user);
    wait_delivered(&e, act(&e, path, NULL, &s));

    /* Frozen, NATS takes the publish but acks nothing: the ingress answers 503 after its
     * publish timeout. Thawed, it stores the event; LINE's redelivery is then a duplicate. */
    assert_int_equal(kill(n.pid, SIGSTOP), 0);
    snprintf(path, sizeof(path), "/users/%s/text", user);
    int delivery = act(&e, path, "{\"text\":\"ช่วยด้วย\"}", &s);
    delivery_wait first_503 = {&e, delivery, NULL, 503};
    bool refused = testkit_wait_until(delivery_reached, &first_503, 10000);
    assert_int_equal(kill(n.pid, SIGCONT), 0);
    assert_true(refused);
    wait_delivered(&e, delivery);

    expect_stored_once(n.url, p.secret, user, &s);
    assert_true(metric(&p, "ess_ingress_publish_results_total{result=\"duplicate\"} ") >= 1);
    cJSON *record = delivery_record(&e, delivery);
    cJSON *attempts = cJSON_GetObjectItem(record, "attempts");
    cJSON *last = cJSON_GetArrayItem(attempts, cJSON_GetArraySize(attempts) - 1);
    assert_int_equal(cJSON_GetObjectItem(last, "status")->valueint, 200);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(last, "isRedelivery")));
    cJSON_Delete(record);

    emulator_stop(&e);
    assert_int_equal(ingress_stop(&p, false), 0);
    testkit_nats_stop(&n);
}

ESS_TEST(nats_stopped_503_then_redelivery_stores_every_event_once)
{
    (void)state;
    testkit_nats n;
    testkit_nats_start(&n, "ingress");
    ingress_proc p;
    ingress_start(&p, n.url, true);
    emulator e;
    emulator_start(&e, &p);
    char user[64], path[128], body[512];
    create_user(&e, user, sizeof(user));
    sent s = {0};
    snprintf(path, sizeof(path), "/users/%s/follow", user);
    wait_delivered(&e, act(&e, path, NULL, &s));

    testkit_nats_halt(&n);
    snprintf(body, sizeof(body),
             "{\"events\":[{\"type\":\"text\",\"userId\":\"%s\",\"text\":\"ช่วยด้วย\"},"
             "{\"type\":\"location\",\"userId\":\"%s\",\"latitude\":13.7563,"
             "\"longitude\":100.5018},"
             "{\"type\":\"postback\",\"userId\":\"%s\",\"data\":\"category=confinement\"}]}",
             user, user, user);
    int delivery = act(&e, "/webhook", body, &s);
    delivery_wait first_503 = {&e, delivery, NULL, 503};
    assert_true(testkit_wait_until(delivery_reached, &first_503, 10000));

    testkit_nats_restart(&n); /* same port, same store */
    wait_delivered(&e, delivery);
    expect_stored_once(n.url, p.secret, user, &s);

    emulator_stop(&e);
    assert_int_equal(ingress_stop(&p, false), 0);
    testkit_nats_stop(&n);
}

ESS_TEST_MAIN(NULL, harness_teardown)
