/* ess-ingress end to end: signed webhooks over HTTP in, events in LINE_IN out.
 *
 * Each case starts its own ess-ingress (from ESS_BIN_DIR) on a free port. The service ensures
 * the real registry streams on the shared server, so cases share LINE_IN: each one uses its
 * own user/group ids and webhookEventIds and looks messages up by subject. The outage cases
 * run their own nats-server so that they can stop, freeze and restart it. */
#include "testkit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <nats/nats.h>

#include "ingress_harness.h"
#include "ingress_signature.h"

#define BOT "U0123456789abcdef0123456789abcdef"
#define BODY_MAX 8192
/* A 503 must come within the publish timeout plus this (scheduling, sanitizers). */
#define ANSWER_SLACK_MS 700

typedef struct http_answer {
    long status;
    int64_t elapsed_ms;
    char *body;
} http_answer;

/* POSTs body to path; header_name NULL = no signature header; signature NULL = the right
 * one. */
static http_answer post_raw(const ingress_proc *p, const char *path, const char *header_name,
                            const char *signature, const char *body, size_t len)
{
    char right[INGRESS_SIGNATURE_B64_SIZE];
    assert_int_equal(
        ingress_signature_compute(p->secret, strlen(p->secret), body, len, right, NULL), ST_OK);
    char signature_header[160];
    snprintf(signature_header, sizeof(signature_header), "%s: %s",
             header_name != NULL ? header_name : "X-Unused", signature != NULL ? signature : right);
    const char *headers[] = {"Content-Type: application/json; charset=utf-8",
                             "Expect:", header_name != NULL ? signature_header : NULL, NULL};
    char url[160];
    snprintf(url, sizeof(url), "%s%s", p->base_url, path);
    http_answer answer = {0};
    int64_t started = testkit_now_ms();
    testkit_http("POST", url, headers, body, len, 10000, &answer.status, &answer.body);
    answer.elapsed_ms = testkit_now_ms() - started;
    return answer;
}

static long post(const ingress_proc *p, const char *body)
{
    http_answer answer = post_raw(p, "/line/webhook", "x-line-signature", NULL, body, strlen(body));
    free(answer.body);
    return answer.status;
}

/* ---- webhook bodies --------------------------------------------------------------------- */

typedef struct ids {
    char user[40], user2[40], group[40];
    char event[4][40];
} ids;

/* LINE-shaped ids (U/C + 32 hex), unique per call, and ULID-like event ids. */
static void make_ids(ids *out)
{
    static unsigned counter;
    unsigned pid = (unsigned)getpid();
    unsigned long long now = (unsigned long long)testkit_now_ms();
    counter++;
    snprintf(out->user, sizeof(out->user), "U%08x%08x%016llx", pid, counter, now);
    snprintf(out->user2, sizeof(out->user2), "U%08x%08x%016llx", pid, counter + 0x10000u, now);
    snprintf(out->group, sizeof(out->group), "C%08x%08x%016llx", pid, counter, now);
    for (int i = 0; i < 4; i++)
        snprintf(out->event[i], sizeof(out->event[i]), "01HT%08X%04X%010llX%d", pid,
                 counter & 0xffff, now, i);
}

static char *user_source(const char *user_id, char *out, size_t size)
{
    snprintf(out, size, "{\"type\":\"user\",\"userId\":\"%s\"}", user_id);
    return out;
}

/* One event object; rest is a JSON fragment starting with ',' or "". */
static void event_json(char *out, size_t size, const char *type, const char *event_id,
                       const char *mode, bool redelivery, const char *source, const char *rest)
{
    int n = snprintf(out, size,
                     "{\"type\":\"%s\",\"mode\":\"%s\",\"timestamp\":1700000000123,"
                     "\"source\":%s,\"webhookEventId\":\"%s\","
                     "\"deliveryContext\":{\"isRedelivery\":%s}%s}",
                     type, mode, source, event_id, redelivery ? "true" : "false", rest);
    assert_true(n > 0 && (size_t)n < size);
}

static void body_json(char *out, size_t size, const char *events)
{
    int n = snprintf(out, size, "{\"destination\":\"%s\",\"events\":[%s]}", BOT, events);
    assert_true(n > 0 && (size_t)n < size);
}

static void text_webhook(char *out, size_t size, const char *user_id, const char *event_id,
                         const char *mode, bool redelivery, const char *text)
{
    char source[128], rest[512], event[1024];
    snprintf(rest, sizeof(rest),
             ",\"replyToken\":\"nHuyWiB7yP5Zw52FIkcQobQuGDXCTA\",\"message\":{\"type\":"
             "\"text\",\"id\":\"444573844083572737\",\"quoteToken\":\"q\",\"text\":\"%s\"}",
             text);
    event_json(event, sizeof(event), "message", event_id, mode, redelivery,
               user_source(user_id, source, sizeof(source)), rest);
    body_json(out, size, event);
}

/* The last message on subject: its Nats-Msg-Id must be event_id and its payload must be the
 * event object with that id in body. */
static void expect_stored_event(line_in *l, const char *subject, const char *body,
                                const char *event_id)
{
    natsMsg *msg = NULL;
    jsErrCode jerr = 0;
    assert_int_equal(js_GetLastMsg(&msg, l->js, "LINE_IN", subject, NULL, &jerr), NATS_OK);
    const char *msg_id = NULL;
    assert_int_equal(natsMsgHeader_Get(msg, "Nats-Msg-Id", &msg_id), NATS_OK);
    assert_string_equal(msg_id, event_id);

    cJSON *stored = cJSON_ParseWithLength(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
    cJSON *root = cJSON_Parse(body);
    assert_non_null(stored);
    assert_non_null(root);
    cJSON *match = NULL;
    cJSON *event;
    cJSON_ArrayForEach(event, cJSON_GetObjectItem(root, "events"))
    {
        const cJSON *id = cJSON_GetObjectItem(event, "webhookEventId");
        if (cJSON_IsString(id) && strcmp(id->valuestring, event_id) == 0)
            match = event;
    }
    assert_non_null(match);
    assert_true(cJSON_Compare(match, stored, true));
    cJSON_Delete(root);
    cJSON_Delete(stored);
    natsMsg_Destroy(msg);
}

/* ---- the table of single-request cases --------------------------------------------------- */

typedef enum body_kind {
    BODY_TEXT,           /* one text message from the case's user */
    BODY_TEXT_STANDBY,   /* the same in standby mode */
    BODY_EMPTY_EVENTS,   /* "events":[] */
    BODY_MALFORMED_JSON, /* cut in the middle */
    BODY_NOT_LINE,       /* JSON, but an event without webhookEventId */
    BODY_BAD_SOURCE_ID,  /* a user id with a '.' (would split the subject) */
    BODY_OVERSIZED,      /* a good body padded past 1 MiB */
} body_kind;

typedef enum signature_kind {
    SIGN_RIGHT,
    SIGN_WRONG_SECRET,
    SIGN_OTHER_BODY,
    SIGN_NONE,
} signature_kind;

typedef struct http_case {
    const char *name;
    body_kind body;
    const char *header_name; /* signature header as sent */
    signature_kind signature;
    long want_status;
    uint64_t want_stored; /* messages on the case's user subject afterwards */
} http_case;

static const http_case http_cases[] = {
    {"good", BODY_TEXT, "x-line-signature", SIGN_RIGHT, 200, 1},
    {"header Title-Case", BODY_TEXT, "X-Line-Signature", SIGN_RIGHT, 200, 1},
    {"header UPPER", BODY_TEXT, "X-LINE-SIGNATURE", SIGN_RIGHT, 200, 1},
    {"header mixed", BODY_TEXT, "x-LiNe-SiGnAtUrE", SIGN_RIGHT, 200, 1},
    {"standby mode is stored", BODY_TEXT_STANDBY, "x-line-signature", SIGN_RIGHT, 200, 1},
    {"bad signature (other secret)", BODY_TEXT, "x-line-signature", SIGN_WRONG_SECRET, 401, 0},
    {"bad signature (other body)", BODY_TEXT, "x-line-signature", SIGN_OTHER_BODY, 401, 0},
    {"missing signature", BODY_TEXT, NULL, SIGN_NONE, 401, 0},
    {"empty events", BODY_EMPTY_EVENTS, "x-line-signature", SIGN_RIGHT, 200, 0},
    {"malformed JSON", BODY_MALFORMED_JSON, "x-line-signature", SIGN_RIGHT, 400, 0},
    {"not LINE's shape", BODY_NOT_LINE, "x-line-signature", SIGN_RIGHT, 400, 0},
    {"source id that would split a subject", BODY_BAD_SOURCE_ID, "x-line-signature", SIGN_RIGHT,
     400, 0},
    {"oversized body", BODY_OVERSIZED, "x-line-signature", SIGN_RIGHT, 413, 0},
    {"bad signature on malformed JSON", BODY_MALFORMED_JSON, "x-line-signature", SIGN_WRONG_SECRET,
     401, 0},
};

/* Builds the case's body (heap). */
static char *case_body(const http_case *c, const ids *id, size_t *ret_len)
{
    char *body = NULL;
    size_t len = 0;
    if (c->body == BODY_OVERSIZED) {
        size_t size = (1u << 20) + 2;
        body = malloc(size);
        assert_non_null(body);
        text_webhook(body, BODY_MAX, id->user, id->event[0], "active", false, "help");
        len = strlen(body);
        /* white space after the value is valid JSON: only the size is wrong */
        memset(body + len, ' ', size - 1 - len);
        body[size - 1] = '\0';
        *ret_len = size - 1;
        return body;
    }
    body = calloc(1, BODY_MAX);
    assert_non_null(body);
    switch (c->body) {
    case BODY_TEXT:
        text_webhook(body, BODY_MAX, id->user, id->event[0], "active", false, "help");
        break;
    case BODY_TEXT_STANDBY:
        text_webhook(body, BODY_MAX, id->user, id->event[0], "standby", false, "help");
        break;
    case BODY_EMPTY_EVENTS:
        body_json(body, BODY_MAX, "");
        break;
    case BODY_MALFORMED_JSON:
        text_webhook(body, BODY_MAX, id->user, id->event[0], "active", false, "help");
        body[strlen(body) / 2] = '\0';
        break;
    case BODY_NOT_LINE: {
        char event[512], source[128];
        snprintf(event, sizeof(event),
                 "{\"type\":\"follow\",\"mode\":\"active\",\"timestamp\":1,\"source\":%s,"
                 "\"deliveryContext\":{\"isRedelivery\":false}}",
                 user_source(id->user, source, sizeof(source)));
        body_json(body, BODY_MAX, event);
        break;
    }
    case BODY_BAD_SOURCE_ID: {
        char bad_user[64];
        snprintf(bad_user, sizeof(bad_user), "%s.x", id->user);
        text_webhook(body, BODY_MAX, bad_user, id->event[0], "active", false, "help");
        break;
    }
    case BODY_OVERSIZED:
        break;
    }
    *ret_len = strlen(body);
    return body;
}

ESS_TEST(webhook_cases)
{
    (void)state;
    ingress_proc p;
    ingress_start(&p, shared_nats(), true);
    line_in l;
    line_in_open(&l, shared_nats());

    for (size_t i = 0; i < sizeof(http_cases) / sizeof(http_cases[0]); i++) {
        const http_case *c = &http_cases[i];
        ids id;
        make_ids(&id);
        size_t len = 0;
        char *body = case_body(c, &id, &len);
        char signature[INGRESS_SIGNATURE_B64_SIZE];
        const char *sent = NULL;
        if (c->signature == SIGN_WRONG_SECRET) {
            ingress_signature_compute("not-the-secret", 14, body, len, signature, NULL);
            sent = signature;
        } else if (c->signature == SIGN_OTHER_BODY) {
            ingress_signature_compute(p.secret, strlen(p.secret), "{}", 2, signature, NULL);
            sent = signature;
        }
        http_answer answer = post_raw(&p, "/line/webhook", c->header_name, sent, body, len);
        char subject[128];
        subject_for(subject, sizeof(subject), p.secret, "user", id.user);
        uint64_t stored = line_in_count(&l, subject);
        if (answer.status != c->want_status || stored != c->want_stored)
            fail_msg("case '%s': status %ld (want %ld), stored %llu (want %llu), body %s", c->name,
                     answer.status, c->want_status, (unsigned long long)stored,
                     (unsigned long long)c->want_stored, answer.body != NULL ? answer.body : "");
        if (c->want_stored > 0)
            expect_stored_event(&l, subject, body, id.event[0]);
        free(answer.body);
        free(body);
    }
    line_in_close(&l);
    ingress_stop(&p, false);
}

ESS_TEST(several_events_from_different_sources)
{
    (void)state;
    ingress_proc p;
    ingress_start(&p, shared_nats(), true);
    line_in l;
    line_in_open(&l, shared_nats());
    ids id;
    make_ids(&id);

    char events[4096], event[1024], source[128];
    size_t used = 0;
    event_json(event, sizeof(event), "follow", id.event[0], "active", false,
               user_source(id.user, source, sizeof(source)),
               ",\"replyToken\":\"r0\",\"follow\":{\"isUnblocked\":false}");
    used += (size_t)snprintf(events + used, sizeof(events) - used, "%s,", event);
    event_json(event, sizeof(event), "postback", id.event[1], "active", false,
               user_source(id.user2, source, sizeof(source)),
               ",\"replyToken\":\"r1\",\"postback\":{\"data\":\"category=threat\"}");
    used += (size_t)snprintf(events + used, sizeof(events) - used, "%s,", event);
    snprintf(source, sizeof(source), "{\"type\":\"group\",\"groupId\":\"%s\"}", id.group);
    event_json(event, sizeof(event), "join", id.event[2], "active", false, source,
               ",\"replyToken\":\"r2\"");
    used += (size_t)snprintf(events + used, sizeof(events) - used, "%s,", event);
    event_json(event, sizeof(event), "message", id.event[3], "active", false,
               user_source(id.user, source, sizeof(source)),
               ",\"replyToken\":\"r3\",\"message\":{\"type\":\"location\",\"id\":\"9\","
               "\"latitude\":13.7563,\"longitude\":100.5018,\"title\":\"t\",\"address\":\"a\"}");
    snprintf(events + used, sizeof(events) - used, "%s", event);
    char body[BODY_MAX];
    body_json(body, sizeof(body), events);

    assert_int_equal(post(&p, body), 200);
    char subject_a[128], subject_b[128], subject_group[128];
    subject_for(subject_a, sizeof(subject_a), p.secret, "user", id.user);
    subject_for(subject_b, sizeof(subject_b), p.secret, "user", id.user2);
    subject_for(subject_group, sizeof(subject_group), p.secret, "group", id.group);
    assert_int_equal(line_in_count(&l, subject_a), 2);
    assert_int_equal(line_in_count(&l, subject_b), 1);
    assert_int_equal(line_in_count(&l, subject_group), 1);
    expect_stored_event(&l, subject_a, body, id.event[3]); /* the later of user A's two */
    expect_stored_event(&l, subject_b, body, id.event[1]);
    expect_stored_event(&l, subject_group, body, id.event[2]);

    line_in_close(&l);
    ingress_stop(&p, false);
}

ESS_TEST(redelivered_event_is_stored_once)
{
    (void)state;
    ingress_proc p;
    ingress_start(&p, shared_nats(), true);
    line_in l;
    line_in_open(&l, shared_nats());
    ids id;
    make_ids(&id);
    char first[BODY_MAX], again[BODY_MAX], subject[128];
    text_webhook(first, sizeof(first), id.user, id.event[0], "active", false, "help");
    text_webhook(again, sizeof(again), id.user, id.event[0], "active", true, "help");
    subject_for(subject, sizeof(subject), p.secret, "user", id.user);

    assert_int_equal(post(&p, first), 200);
    assert_int_equal(post(&p, again), 200);
    assert_int_equal(post(&p, first), 200);
    assert_int_equal(line_in_count(&l, subject), 1);
    expect_stored_event(&l, subject, first, id.event[0]);

    char url[128], *metrics = NULL;
    long status = 0;
    snprintf(url, sizeof(url), "%s/metrics", p.base_url);
    testkit_http("GET", url, NULL, NULL, 0, 2000, &status, &metrics);
    assert_int_equal(status, 200);
    assert_non_null(strstr(metrics, "ess_ingress_publish_results_total{result=\"stored\"} 1\n"));
    assert_non_null(strstr(metrics, "ess_ingress_publish_results_total{result=\"duplicate\"} 2\n"));
    assert_non_null(strstr(metrics, "ess_ingress_requests_total{status=\"200\"} 3\n"));
    assert_non_null(strstr(metrics, "ess_ingress_events_total{type=\"message\"} 3\n"));
    assert_non_null(strstr(metrics, "ess_ingress_publish_seconds_count 3\n"));
    free(metrics);

    line_in_close(&l);
    ingress_stop(&p, false);
}

ESS_TEST(only_post_on_the_exact_path)
{
    (void)state;
    ingress_proc p;
    ingress_start(&p, shared_nats(), true);
    assert_int_equal(get_status(&p, "/line/webhook"), 405);
    ids id;
    make_ids(&id);
    char body[BODY_MAX];
    text_webhook(body, sizeof(body), id.user, id.event[0], "active", false, "help");
    http_answer answer =
        post_raw(&p, "/line/webhook/extra", "x-line-signature", NULL, body, strlen(body));
    assert_int_equal(answer.status, 404);
    free(answer.body);

    char url[128], *metrics = NULL;
    long status = 0;
    snprintf(url, sizeof(url), "%s/metrics", p.base_url);
    testkit_http("GET", url, NULL, NULL, 0, 2000, &status, &metrics);
    assert_non_null(strstr(metrics, "ess_ingress_requests_total{status=\"405\"} 1\n"));
    free(metrics);
    ingress_stop(&p, false);
}

ESS_TEST(secrets_signatures_ids_and_bodies_stay_out_of_the_log)
{
    (void)state;
    ingress_proc p;
    ingress_start(&p, shared_nats(), true);
    ids id;
    make_ids(&id);
    /* Ids the log scrubber does not recognise as LINE ids: only the ingress' own care keeps
     * them out. */
    char user[64], user2[64];
    snprintf(user, sizeof(user), "Uleaky_%s", id.event[0]);
    snprintf(user2, sizeof(user2), "Uleaky_%s", id.event[1]);
    const char *text = "please-help-me-leaktext";
    char good[BODY_MAX], bad_shape[BODY_MAX], wrong_signed[BODY_MAX];
    text_webhook(good, sizeof(good), user, id.event[0], "active", false, text);
    text_webhook(wrong_signed, sizeof(wrong_signed), user2, id.event[1], "active", false, text);
    text_webhook(bad_shape, sizeof(bad_shape), user2, "bad.event.id", "active", false, text);

    char good_signature[INGRESS_SIGNATURE_B64_SIZE], forged[INGRESS_SIGNATURE_B64_SIZE];
    ingress_signature_compute(p.secret, strlen(p.secret), good, strlen(good), good_signature, NULL);
    ingress_signature_compute("forger", 6, wrong_signed, strlen(wrong_signed), forged, NULL);

    assert_int_equal(post(&p, good), 200);
    assert_int_equal(post(&p, bad_shape), 400);
    http_answer answer = post_raw(&p, "/line/webhook", "X-Line-Signature", forged, wrong_signed,
                                  strlen(wrong_signed));
    assert_int_equal(answer.status, 401);
    free(answer.body);

    assert_int_equal(ingress_stop(&p, true), 0); /* clean drain, no leak reports */
    char *log = testkit_read_file(p.log_path);
    assert_non_null(log);
    assert_non_null(strstr(log, "ingress.signature")); /* the log was written at all */
    assert_non_null(strstr(log, "ingress.invalid"));
    const char *never[] = {p.secret, good_signature, forged,      user,
                           user2,    text,           id.event[0], "bad.event.id"};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
        if (strstr(log, never[i]) != NULL)
            fail_msg("the log contains '%s':\n%s", never[i], log);
    free(log);
    unlink(p.log_path);
}

/* ---- slow clients and the connection cap ------------------------------------------------ */

static int raw_connect(const ingress_proc *p)
{
    const char *port_text = strrchr(p->base_url, ':');
    assert_non_null(port_text);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)strtol(port_text + 1, NULL, 10))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    return fd;
}

/* True when the server closes fd (EOF or reset) within timeout_ms; answers are drained. */
static bool closed_within(int fd, int64_t timeout_ms)
{
    int64_t deadline = testkit_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - testkit_now_ms();
        if (left <= 0)
            return false;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        char sink[512];
        ssize_t n = recv(fd, sink, sizeof(sink), 0);
        if (n <= 0)
            return true;
    }
}

ESS_TEST(slow_clients_time_out_and_connections_are_capped)
{
    (void)state;
    ingress_proc p;
    const char *env[] = {"ESS_HTTP_REQUEST_TIMEOUT=1s", "ESS_HTTP_MAX_CONNECTIONS=2", NULL};
    ingress_start_with(&p, shared_nats(), true, env);

    /* Headers that never end, and a body that never comes: cut off after the timeout. */
    int slow_headers = raw_connect(&p);
    const char partial[] = "POST /line/webhook HTTP/1.1\r\nHost: x\r\nX-Line-Sig";
    assert_true(send(slow_headers, partial, sizeof(partial) - 1, MSG_NOSIGNAL) > 0);
    int slow_body = raw_connect(&p);
    const char head[] = "POST /line/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                        "\r\n{\"destination\":";
    assert_true(send(slow_body, head, sizeof(head) - 1, MSG_NOSIGNAL) > 0);

    /* Both slots are taken: a third connection is closed at once. */
    int third = raw_connect(&p);
    assert_true(closed_within(third, 500));
    close(third);

    int64_t started = testkit_now_ms();
    assert_true(closed_within(slow_headers, 5000));
    assert_true(closed_within(slow_body, 5000));
    assert_true(testkit_now_ms() - started >= 500);
    close(slow_headers);
    close(slow_body);

    /* Slots are free again. */
    wait_status alive = {&p, "/healthz", 200};
    assert_true(testkit_wait_until(status_is, &alive, 5000));
    ingress_stop(&p, false);
}

/* ---- outages: a nats-server of our own ------------------------------------------------- */

/* Three events from two users, the body LINE would redeliver. */
static void outage_body(char *out, size_t size, const ids *id, bool redelivery)
{
    char events[3072], event[1024], source[128];
    size_t used = 0;
    for (int i = 0; i < 3; i++) {
        event_json(event, sizeof(event), "message", id->event[i], "active", redelivery,
                   user_source(i == 1 ? id->user2 : id->user, source, sizeof(source)),
                   ",\"replyToken\":\"r\",\"message\":{\"type\":\"text\",\"id\":\"1\","
                   "\"quoteToken\":\"q\",\"text\":\"help\"}");
        used += (size_t)snprintf(events + used, sizeof(events) - used, "%s%s", i ? "," : "", event);
    }
    body_json(out, size, events);
}

static void expect_each_stored_once(testkit_nats *n, const char *secret, const ids *id)
{
    line_in l;
    line_in_open(&l, n->url);
    char subject_a[128], subject_b[128];
    subject_for(subject_a, sizeof(subject_a), secret, "user", id->user);
    subject_for(subject_b, sizeof(subject_b), secret, "user", id->user2);
    assert_int_equal(line_in_count(&l, subject_a), 2);
    assert_int_equal(line_in_count(&l, subject_b), 1);
    line_in_close(&l);
}

ESS_TEST(nats_stopped_gives_503_and_redelivery_stores_once)
{
    (void)state;
    testkit_nats n;
    testkit_nats_start(&n, "ingress");
    ingress_proc p;
    ingress_start(&p, n.url, true);
    ids id;
    make_ids(&id);
    char body[BODY_MAX], redelivered[BODY_MAX];
    outage_body(body, sizeof(body), &id, false);
    outage_body(redelivered, sizeof(redelivered), &id, true);

    testkit_nats_halt(&n);
    http_answer answer =
        post_raw(&p, "/line/webhook", "x-line-signature", NULL, body, strlen(body));
    assert_int_equal(answer.status, 503);
    assert_true(answer.elapsed_ms <= PUBLISH_TIMEOUT_MS + ANSWER_SLACK_MS);
    free(answer.body);
    wait_status unready = {&p, "/readyz", 503};
    assert_true(testkit_wait_until(status_is, &unready, 10000));
    /* still refused while NATS is away, and quickly */
    answer =
        post_raw(&p, "/line/webhook", "x-line-signature", NULL, redelivered, strlen(redelivered));
    assert_int_equal(answer.status, 503);
    assert_true(answer.elapsed_ms <= PUBLISH_TIMEOUT_MS + ANSWER_SLACK_MS);
    free(answer.body);

    testkit_nats_restart(&n); /* same port, same store */
    wait_status ready = {&p, "/readyz", 200};
    assert_true(testkit_wait_until(status_is, &ready, 20000));
    assert_int_equal(post(&p, redelivered), 200);
    assert_int_equal(post(&p, redelivered), 200); /* LINE may redeliver twice */
    expect_each_stored_once(&n, p.secret, &id);

    assert_int_equal(ingress_stop(&p, false), 0);
    testkit_nats_stop(&n);
}

ESS_TEST(nats_frozen_gives_503_within_the_publish_timeout)
{
    (void)state;
    testkit_nats n;
    testkit_nats_start(&n, "ingress");
    ingress_proc p;
    ingress_start(&p, n.url, true);
    ids id;
    make_ids(&id);
    char body[BODY_MAX], redelivered[BODY_MAX];
    outage_body(body, sizeof(body), &id, false);
    outage_body(redelivered, sizeof(redelivered), &id, true);

    /* A frozen server keeps the TCP connection up but acknowledges nothing: the batch must
     * time out on its own. */
    assert_int_equal(kill(n.pid, SIGSTOP), 0);
    http_answer answer =
        post_raw(&p, "/line/webhook", "x-line-signature", NULL, body, strlen(body));
    assert_int_equal(kill(n.pid, SIGCONT), 0);
    assert_int_equal(answer.status, 503);
    assert_true(answer.elapsed_ms >= PUBLISH_TIMEOUT_MS - 50);
    assert_true(answer.elapsed_ms <= PUBLISH_TIMEOUT_MS + ANSWER_SLACK_MS);
    free(answer.body);

    wait_status ready = {&p, "/readyz", 200};
    assert_true(testkit_wait_until(status_is, &ready, 20000));
    assert_int_equal(post(&p, redelivered), 200);
    expect_each_stored_once(&n, p.secret, &id);

    assert_int_equal(ingress_stop(&p, false), 0);
    testkit_nats_stop(&n);
}

ESS_TEST(client_gone_before_the_answer_is_harmless)
{
    (void)state;
    testkit_nats n;
    testkit_nats_start(&n, "ingress");
    ingress_proc p;
    ingress_start(&p, n.url, true);
    ids id;
    make_ids(&id);
    char body[BODY_MAX];
    outage_body(body, sizeof(body), &id, false);
    char signature_header[128], url[128];
    char signature[INGRESS_SIGNATURE_B64_SIZE];
    ingress_signature_compute(p.secret, strlen(p.secret), body, strlen(body), signature, NULL);
    snprintf(signature_header, sizeof(signature_header), "x-line-signature: %s", signature);
    snprintf(url, sizeof(url), "%s/line/webhook", p.base_url);
    const char *headers[] = {"Content-Type: application/json", "Expect:", signature_header, NULL};

    /* NATS frozen: the webhooks wait for acks; their clients give up after 100 ms. */
    assert_int_equal(kill(n.pid, SIGSTOP), 0);
    for (int i = 0; i < 3; i++) {
        long status = 0;
        testkit_http("POST", url, headers, body, strlen(body), 100, &status, NULL);
        assert_int_equal(status, 0);
    }
    /* The batches time out with nobody to answer; the service carries on. */
    wait_status unready = {&p, "/healthz", 200};
    int64_t started = testkit_now_ms();
    while (testkit_now_ms() - started < PUBLISH_TIMEOUT_MS + 300)
        assert_true(testkit_wait_until(status_is, &unready, 2000));
    assert_int_equal(kill(n.pid, SIGCONT), 0);
    wait_status ready = {&p, "/readyz", 200};
    assert_true(testkit_wait_until(status_is, &ready, 20000));
    assert_int_equal(post(&p, body), 200);
    expect_each_stored_once(&n, p.secret, &id);

    assert_int_equal(ingress_stop(&p, false), 0);
    testkit_nats_stop(&n);
}

ESS_TEST_MAIN(NULL, harness_teardown)
