/* ess-console against real servers (console_harness.h): logins, sessions and CSRF, login
 * throttling, authorization per object (by id, by export, by event stream), no personal data
 * for analysts, the live stream fed by JetStream, audited phone reveals, streamed exports,
 * essctl user, statistics, the map and the web files. */
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <strings.h>

#include "console_harness.h"

/* Fails when text holds the test reporter's phone (or most of it) or LINE id, or a LINE group
 * id. what names the endpoint in the message. */
static void assert_nothing_personal(const char *what, const char *text)
{
    if (text == NULL)
        return;
    if (strstr(text, CH_PHONE_TAIL) != NULL)
        fail_msg("%s returned the phone number: %.400s", what, text);
    if (strstr(text, CH_REPORTER) != NULL || strstr(text, CH_REPORTER + 1) != NULL)
        fail_msg("%s returned the reporter's LINE id: %.400s", what, text);
    if (strstr(text, CH_GROUP) != NULL)
        fail_msg("%s returned a LINE group id: %.400s", what, text);
    if (strstr(text, "text_sealed") != NULL || strstr(text, "18.123456") != NULL)
        fail_msg("%s returned a typed text or an exact added location: %.400s", what, text);
}

static void expect_status(ch_response *r, long status, const char *what)
{
    if (r->status != status)
        fail_msg("%s: status %ld, want %ld: %.300s", what, r->status, status, r->body);
}

static void expect_error(ch_response *r, long status, const char *code, const char *what)
{
    expect_status(r, status, what);
    char want[64];
    snprintf(want, sizeof(want), "\"error\":\"%s\"", code);
    if (strstr(r->body, want) == NULL)
        fail_msg("%s: want error %s, got %.300s", what, code, r->body);
}

static ch_response get(ch_env *env, const char *path, const ch_session *session)
{
    return ch_request(env, "GET", path, session, NULL, NULL);
}

static ch_response post(ch_env *env, const char *path, const ch_session *session,
                        const char *csrf, const char *body)
{
    char header[128];
    snprintf(header, sizeof(header), "X-CSRF-Token: %s", csrf != NULL ? csrf : "");
    const char *headers[] = {"Content-Type: application/json", csrf != NULL ? header : NULL,
                             NULL};
    return ch_request(env, "POST", path, session, headers, body);
}

/* ------------------------------------------------------------------------------------- */

ESS_TEST(login_cookie_is_httponly_strict_and_secure_behind_tls)
{
    ch_env env;
    ch_start(&env, NULL);
    ch_user(&env, "cmd50", "commander", "TH50");

    ch_session session;
    ch_response r = ch_login_response(&env, "cmd50", CH_PASSWORD, NULL, &session);
    expect_status(&r, 200, "login");
    char cookie[256];
    assert_true(ch_header(&r, "set-cookie", cookie, sizeof(cookie)));
    assert_non_null(strstr(cookie, "; Path=/"));
    assert_non_null(strstr(cookie, "; HttpOnly"));
    assert_non_null(strstr(cookie, "; SameSite=Strict"));
    assert_null(strstr(cookie, "Secure")); /* plain HTTP, switch off */
    assert_int_equal(strlen(session.token), 43); /* 256 bits, base64url */
    assert_non_null(strstr(r.body, "\"user\":{\"name\":\"cmd50\",\"role\":\"commander\","
                                   "\"area\":\"TH50\"}"));
    ch_response_free(&r);

    /* Behind a TLS proxy: Secure. */
    const char *https[] = {"X-Forwarded-Proto: https", NULL};
    r = ch_login_response(&env, "cmd50", CH_PASSWORD, https, NULL);
    expect_status(&r, 200, "login behind TLS");
    assert_true(ch_header(&r, "set-cookie", cookie, sizeof(cookie)));
    assert_non_null(strstr(cookie, "; Secure"));
    assert_non_null(strstr(cookie, "; HttpOnly"));
    ch_response_free(&r);

    /* The session works; the table keeps only a hash of the token. */
    r = get(&env, "/api/me", &session);
    expect_status(&r, 200, "me");
    assert_non_null(strstr(r.body, session.csrf));
    ch_response_free(&r);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM console_sessions WHERE token_hash = sha256('%s'::bytea)",
             session.token);
    assert_int_equal(ch_sql_int(&env, sql), 1);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM console_sessions WHERE encode(token_hash, 'escape') LIKE "
             "'%%%s%%' OR csrf_token = '%s'",
             session.token, session.token);
    assert_int_equal(ch_sql_int(&env, sql), 0);
    /* Every login is in the audit chain (the password never). */
    assert_int_equal(ch_sql_int(&env, "SELECT count(*) FROM audit_log WHERE subject = "
                                      "'audit.console.login' AND payload ->> 'user' = 'cmd50' "
                                      "AND (payload ->> 'ok')::boolean"),
                     2);
    assert_int_equal(ch_sql_int(&env, "SELECT count(*) FROM audit_log WHERE payload::text LIKE "
                                      "'%" CH_PASSWORD "%'"),
                     0);

    /* No cookie, a forged one: 401. */
    r = get(&env, "/api/me", NULL);
    expect_error(&r, 401, "unauthenticated", "me without a session");
    ch_response_free(&r);
    ch_session forged = session;
    forged.token[0] = forged.token[0] == 'A' ? 'B' : 'A';
    r = get(&env, "/api/cases", &forged);
    expect_error(&r, 401, "unauthenticated", "forged cookie");
    ch_response_free(&r);
    ch_stop(&env);
}

ESS_TEST(csrf_is_required_for_state_changes)
{
    ch_env env;
    ch_start(&env, NULL);
    ch_user(&env, "cmd50", "commander", "TH50");
    ch_incident(&env, "ESS-2569-000050", "threat", "TH50", "routed", CH_PHONE);
    ch_session session;
    ch_login(&env, "cmd50", &session);

    static const char reason[] = "{\"reason\":\"call back the reporter\"}";
    ch_response r = post(&env, "/api/cases/ESS-2569-000050/reveal-phone", &session, NULL, reason);
    expect_error(&r, 403, "csrf", "reveal without a token");
    ch_response_free(&r);
    r = post(&env, "/api/cases/ESS-2569-000050/reveal-phone", &session,
             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", reason);
    expect_error(&r, 403, "csrf", "reveal with a wrong token");
    ch_response_free(&r);
    r = post(&env, "/api/logout", &session, NULL, NULL);
    expect_error(&r, 403, "csrf", "logout without a token");
    ch_response_free(&r);
    /* Nothing happened: no reveal was recorded, the session lives. */
    assert_int_equal(ch_sql_int(&env, "SELECT count(*) FROM audit_log WHERE subject = "
                                      "'audit.pii.read'"),
                     0);
    r = get(&env, "/api/me", &session);
    expect_status(&r, 200, "me after refused logout");
    ch_response_free(&r);

    /* A login is no form post from elsewhere: JSON only. */
    const char *form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    r = ch_request(&env, "POST", "/api/login", NULL, form,
                   "{\"name\":\"cmd50\",\"password\":\"" CH_PASSWORD "\"}");
    expect_error(&r, 400, "bad_request", "form login");
    assert_null(strstr(r.headers, "ess_session="));
    ch_response_free(&r);

    /* With the token it works. */
    r = post(&env, "/api/logout", &session, session.csrf, NULL);
    expect_status(&r, 204, "logout");
    ch_response_free(&r);
    ch_stop(&env);
}

ESS_TEST(login_delay_grows_with_failures)
{
    ch_env env;
    ch_start(&env, NULL);
    ch_user(&env, "cmd50", "commander", "TH50");
    /* Base 10 ms, doubling, at most 80 ms (the harness's settings). */
    static const double want[] = {10, 20, 40, 80, 80};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        ch_response r = ch_login_response(&env, "cmd50", "wrong-password-1", NULL, NULL);
        expect_error(&r, 401, "login_failed", "wrong password");
        assert_null(strstr(r.headers, "ess_session="));
        ch_response_free(&r);
        assert_true(ch_metric(&env, "ess_console_login_last_delay_ms") == want[i]);
        char sql[160];
        snprintf(sql, sizeof(sql),
                 "SELECT max(failures) FROM console_login_failures WHERE kind = 'account'");
        assert_int_equal(ch_sql_int(&env, sql), (long long)i + 1);
    }
    /* An unknown name fails the same way and is throttled too. */
    ch_response r = ch_login_response(&env, "nobody", "wrong-password-1", NULL, NULL);
    expect_error(&r, 401, "login_failed", "unknown name");
    ch_response_free(&r);
    assert_true(ch_metric(&env, "ess_console_logins_total{result=\"failed\"}") == 6);
    /* The right password still works (after its wait) and clears the account's count; the
     * address keeps its own. */
    ch_session session;
    ch_login(&env, "cmd50", &session);
    assert_int_equal(ch_sql_int(&env, "SELECT count(*) FROM console_login_failures WHERE "
                                      "kind = 'account' AND failures = 5"),
                     0);
    assert_int_equal(ch_sql_int(&env, "SELECT max(failures) FROM console_login_failures WHERE "
                                      "kind = 'peer'"),
                     6);
    /* Failures are audited; neither the password nor the address in clear. */
    assert_int_equal(ch_sql_int(&env, "SELECT count(*) FROM audit_log WHERE subject = "
                                      "'audit.console.login' AND NOT (payload ->> 'ok')::boolean"),
                     6);
    assert_int_equal(ch_sql_int(&env, "SELECT count(*) FROM audit_log WHERE payload::text LIKE "
                                      "'%wrong-password%' OR payload::text LIKE '%127.0.0.1%'"),
                     0);
    ch_stop(&env);
}

ESS_TEST(commander_gets_404_outside_their_province)
{
    ch_env env;
    ch_start(&env, NULL);
    ch_user(&env, "cmd50", "commander", "TH50");
    ch_incident(&env, "ESS-2569-000050", "threat", "TH50", "routed", CH_PHONE);
    ch_incident(&env, "ESS-2569-000010", "sexual", "TH10", "routed", CH_PHONE);
    ch_session session;
    ch_login(&env, "cmd50", &session);

    /* Own case: visible, phone masked. */
    ch_response r = get(&env, "/api/cases/ESS-2569-000050", &session);
    expect_status(&r, 200, "own case");
    assert_non_null(strstr(r.body, "\"phone_masked\":\"08x-xxx-x678\""));
    assert_non_null(strstr(r.body, "\"province_en\":\"Chiang Mai\""));
    assert_non_null(strstr(r.body, "\"acknowledged\""));
    assert_nothing_personal("GET /api/cases/{own}", r.body);
    ch_response_free(&r);

    /* The other province's case, every way: exactly as a case that does not exist. */
    r = get(&env, "/api/cases/ESS-2569-000010", &session);
    expect_error(&r, 404, "not_found", "TH10 case by id");
    ch_response missing = get(&env, "/api/cases/ESS-2569-999999", &session);
    expect_error(&missing, 404, "not_found", "missing case");
    assert_string_equal(r.body, missing.body);
    ch_response_free(&missing);
    ch_response_free(&r);
    r = post(&env, "/api/cases/ESS-2569-000010/reveal-phone", &session, session.csrf,
             "{\"reason\":\"curious\"}");
    expect_error(&r, 404, "not_found", "TH10 reveal");
    ch_response_free(&r);
    r = get(&env, "/api/export.csv?case=ESS-2569-000010", &session);
    expect_error(&r, 404, "not_found", "TH10 csv export");
    ch_response_free(&r);
    r = get(&env, "/api/export.eido?case=ESS-2569-000010", &session);
    expect_error(&r, 404, "not_found", "TH10 eido export");
    ch_response_free(&r);
    r = get(&env, "/api/events?case=ESS-2569-000010", &session);
    expect_error(&r, 404, "not_found", "TH10 event stream");
    char type[96];
    assert_true(ch_header(&r, "content-type", type, sizeof(type)));
    assert_non_null(strstr(type, "application/json"));
    ch_response_free(&r);

    /* Lists and range exports hold only TH50. */
    r = get(&env, "/api/cases?state=all", &session);
    expect_status(&r, 200, "list");
    assert_non_null(strstr(r.body, "ESS-2569-000050"));
    assert_null(strstr(r.body, "ESS-2569-000010"));
    assert_non_null(strstr(r.body, "\"ack_timeout_s\":180"));
    ch_response_free(&r);
    r = get(&env, "/api/export.csv", &session);
    expect_status(&r, 200, "csv export");
    assert_non_null(strstr(r.body, "ESS-2569-000050"));
    assert_null(strstr(r.body, "ESS-2569-000010"));
    ch_response_free(&r);
    r = get(&env, "/api/export.eido", &session);
    expect_status(&r, 200, "eido export");
    assert_non_null(strstr(r.body, "ESS-2569-000050"));
    assert_null(strstr(r.body, "ESS-2569-000010"));
    assert_nothing_personal("GET /api/export.eido", r.body);
    ch_response_free(&r);
    r = get(&env, "/api/stats", &session);
    expect_status(&r, 200, "stats");
    assert_non_null(strstr(r.body, "TH50"));
    assert_null(strstr(r.body, "TH10"));
    ch_response_free(&r);
    ch_stop(&env);
}

ESS_TEST(analyst_never_receives_personal_data)
{
    ch_env env;
    ch_start(&env, NULL);
    ch_user(&env, "ana", "analyst", "all");
    ch_incident(&env, "ESS-2569-000050", "threat", "TH50", "acknowledged", CH_PHONE);
    ch_incident(&env, "ESS-2569-000010", "sexual", "TH10", "routed", CH_PHONE);
    ch_session session;
    ch_login(&env, "ana", &session);

    static const struct {
        const char *path;
        long status;
    } reads[] = {
        {"/api/me", 200},
        {"/api/stats", 200},
        {"/api/map/provinces", 200},
        {"/api/export.csv", 200},
        {"/api/export.csv?case=ESS-2569-000050", 200},
        {"/api/cases", 404},
        {"/api/cases?state=all", 404},
        {"/api/cases/ESS-2569-000050", 404},
        {"/api/export.eido", 404},
        {"/api/export.eido?case=ESS-2569-000050", 404},
        {"/api/events", 403},
        {"/api/events?case=ESS-2569-000050", 403},
    };
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
        ch_response r = get(&env, reads[i].path, &session);
        expect_status(&r, reads[i].status, reads[i].path);
        assert_nothing_personal(reads[i].path, r.body);
        assert_null(strstr(r.body, "08x-xxx"));
        assert_null(strstr(r.body, "phone_masked"));
        ch_response_free(&r);
    }
    ch_response r = get(&env, "/api/events", &session);
    expect_error(&r, 403, "forbidden", "analyst events");
    ch_response_free(&r);
    r = post(&env, "/api/cases/ESS-2569-000050/reveal-phone", &session, session.csrf,
             "{\"reason\":\"statistics\"}");
    expect_error(&r, 404, "not_found", "analyst reveal");
    assert_nothing_personal("POST reveal-phone (analyst)", r.body);
    ch_response_free(&r);
    /* The anonymous CSV: case numbers and facts, nothing else. */
    r = get(&env, "/api/export.csv", &session);
    assert_true(strncmp(r.body,
                        "case_number,category,status,province_code,district_code,tambon_code,"
                        "station_id,reported_at,routed_at,acknowledged_at,on_scene_at,closed_at,"
                        "cancelled_at,escalation_level,outcome\r\n",
                        178) == 0);
    assert_non_null(
        strstr(r.body, "ESS-2569-000050,threat,acknowledged,TH50,TH5001,TH500101,S50,"));
    assert_null(strstr(r.body, "18.79"));
    assert_null(strstr(r.body, "สมชาย"));
    ch_response_free(&r);

    /* The commander's answers carry the masked phone and nothing more. */
    ch_user(&env, "admin", "admin", "all");
    ch_session admin;
    ch_login(&env, "admin", &admin);
    static const char *const commander_reads[] = {
        "/api/cases",        "/api/cases/ESS-2569-000050", "/api/export.csv",
        "/api/export.eido",  "/api/stats",                 "/api/me",
    };
    for (size_t i = 0; i < sizeof(commander_reads) / sizeof(commander_reads[0]); i++) {
        r = get(&env, commander_reads[i], &admin);
        expect_status(&r, 200, commander_reads[i]);
        assert_nothing_personal(commander_reads[i], r.body);
        ch_response_free(&r);
    }
    ch_stop(&env);
}

ESS_TEST(event_stream_pushes_a_case_after_an_ess_event)
{
    ch_env env;
    ch_start(&env, NULL);
    ch_user(&env, "cmd50", "commander", "TH50");
    ch_user(&env, "cmd10", "commander", "TH10");
    ch_user(&env, "admin", "admin", "all");
    int64_t id50 = ch_incident(&env, "ESS-2569-000050", "threat", "TH50", "routed", CH_PHONE);
    int64_t id10 = ch_incident(&env, "ESS-2569-000010", "sexual", "TH10", "routed", NULL);
    ch_session s50, s10, admin;
    ch_login(&env, "cmd50", &s50);
    ch_login(&env, "cmd10", &s10);
    ch_login(&env, "admin", &admin);

    ch_stream *stream50 = ch_stream_open(&env, &s50, NULL);
    ch_stream *stream10 = ch_stream_open(&env, &s10, NULL);
    ch_stream *only10 = ch_stream_open(&env, &admin, "?case=ESS-2569-000010");
    /* Connected: the retry line, then heartbeats. */
    assert_true(ch_stream_wait(stream50, "retry: 2000\n\n", 10000));
    assert_true(ch_stream_wait(stream10, "retry: 2000\n\n", 10000));
    assert_true(ch_stream_wait(only10, ": ping\n\n", 10000));

    /* The TH50 case is taken; the event says so; the stream shows the row as it is now. */
    ch_sql(&env, "UPDATE incidents SET status = 'acknowledged', acknowledged_at = now(), "
                 "acknowledged_by = 'ด.ต. ทดสอบ' WHERE case_number = 'ESS-2569-000050'");
    int64_t published = testkit_now_ms();
    ch_publish(&env, "acknowledged", id50, "ESS-2569-000050");
    assert_true(ch_stream_wait(stream50, "\"acknowledged_by\":\"ด.ต. ทดสอบ\"", 10000));
    int64_t took = testkit_now_ms() - published;
    /* Then a TH10 event: once the TH10 stream has it, it would have had the TH50 one too. */
    ch_publish(&env, "note", id10, "ESS-2569-000010");
    assert_true(ch_stream_wait(stream10, "ESS-2569-000010", 10000));
    assert_true(ch_stream_wait(only10, "ESS-2569-000010", 10000));
    assert_true(ch_stream_wait(stream50, ": ping", 10000));

    char *text50 = ch_stream_text(stream50);
    char *text10 = ch_stream_text(stream10);
    char *text_only10 = ch_stream_text(only10);
    assert_non_null(strstr(text50, "event: case\ndata: {\"case_number\":\"ESS-2569-000050\""));
    assert_non_null(strstr(text50, "\"phone_masked\":\"08x-xxx-x678\""));
    assert_null(strstr(text50, "ESS-2569-000010"));
    assert_null(strstr(text10, "ESS-2569-000050"));
    assert_null(strstr(text_only10, "ESS-2569-000050"));
    assert_nothing_personal("event stream", text50);
    print_message("event delivered %lld ms after the publish\n", (long long)took);
    assert_true(took < 5000);
    free(text50);
    free(text10);
    free(text_only10);
    assert_true(ch_metric(&env, "ess_console_sse_clients") == 3);
    ch_stream_close(stream50);
    ch_stream_close(stream10);
    ch_stream_close(only10);
    ch_stop(&env);
}

ESS_TEST(logout_ends_the_session_and_its_streams)
{
    ch_env env;
    ch_start(&env, NULL);
    ch_user(&env, "cmd50", "commander", "TH50");
    ch_session session, other;
    ch_login(&env, "cmd50", &session);
    ch_login(&env, "cmd50", &other);
    ch_stream *stream = ch_stream_open(&env, &session, NULL);
    ch_stream *other_stream = ch_stream_open(&env, &other, NULL);
    assert_true(ch_stream_wait(stream, "retry: 2000", 10000));
    assert_true(ch_stream_wait(other_stream, "retry: 2000", 10000));

    ch_response r = post(&env, "/api/logout", &session, session.csrf, NULL);
    expect_status(&r, 204, "logout");
    char cookie[256];
    assert_true(ch_header(&r, "set-cookie", cookie, sizeof(cookie)));
    assert_non_null(strstr(cookie, "ess_session=;"));
    assert_non_null(strstr(cookie, "Max-Age=0"));
    ch_response_free(&r);
    r = get(&env, "/api/me", &session);
    expect_error(&r, 401, "unauthenticated", "me after logout");
    ch_response_free(&r);
    /* The session's stream ends; the other session's goes on. */
    int64_t deadline = testkit_now_ms() + 10000;
    while (!ch_stream_ended(stream) && testkit_now_ms() < deadline)
        ch_stream_wait(stream, "never-sent", 50);
    assert_true(ch_stream_ended(stream));
    assert_false(ch_stream_ended(other_stream));

    /* essctl user passwd ends every session of the account. */
    const char *passwd[] = {"user", "passwd", "--name", "cmd50", "--password-stdin", NULL};
    char *output = NULL;
    assert_int_equal(ch_essctl(&env, passwd, "another-Password-77\n", &output), 0);
    assert_non_null(strstr(output, "1 session(s) ended"));
    free(output);
    r = get(&env, "/api/me", &other);
    expect_error(&r, 401, "unauthenticated", "me after passwd");
    ch_response_free(&r);
    ch_session renewed;
    r = ch_login_response(&env, "cmd50", "another-Password-77", NULL, &renewed);
    expect_status(&r, 200, "login with the new password");
    ch_response_free(&r);

    /* SIGTERM with a stream open: the stream ends cleanly and the console exits 0 at once
     * (well within ESS_DRAIN_TIMEOUT), with no sanitizer report. */
    ch_stream *open_stream = ch_stream_open(&env, &renewed, NULL);
    assert_true(ch_stream_wait(open_stream, "retry: 2000", 10000));
    int64_t asked = testkit_now_ms();
    assert_int_equal(ch_console_stop(&env), 0);
    assert_true(testkit_now_ms() - asked < 4000);
    deadline = testkit_now_ms() + 10000;
    while (!ch_stream_ended(open_stream) && testkit_now_ms() < deadline)
        ch_stream_wait(open_stream, "never-sent", 50);
    assert_true(ch_stream_ended(open_stream));
    ch_stream_close(open_stream);
    ch_stream_close(stream);
    ch_stream_close(other_stream);
    ch_stop(&env);
}

ESS_TEST(reveal_phone_is_audited_first)
{
    ch_env env;
    ch_start(&env, NULL);
    ch_user(&env, "cmd50", "commander", "TH50");
    ch_incident(&env, "ESS-2569-000050", "threat", "TH50", "routed", CH_PHONE);
    ch_incident(&env, "ESS-2569-000051", "frenzy", "TH50", "closed", NULL);
    ch_session session;
    ch_login(&env, "cmd50", &session);

    ch_response r = post(&env, "/api/cases/ESS-2569-000050/reveal-phone", &session, session.csrf,
                         "{\"reason\":\"โทรกลับผู้แจ้ง call back\"}");
    expect_status(&r, 200, "reveal");
    assert_string_equal(r.body, "{\"phone\":\"" CH_PHONE "\"}");
    ch_response_free(&r);
    assert_int_equal(ch_sql_int(&env, "SELECT count(*) FROM audit_log WHERE subject = "
                                      "'audit.pii.read' AND payload ->> 'case_number' = "
                                      "'ESS-2569-000050' AND payload ->> 'field' = 'phone' AND "
                                      "payload ->> 'reader' = 'cmd50' AND payload ->> 'reason' = "
                                      "'โทรกลับผู้แจ้ง call back' AND payload ->> 'tool' = "
                                      "'ess-console'"),
                     1);
    assert_int_equal(ch_sql_int(&env, "SELECT count(*) FROM audit_log WHERE payload::text LIKE "
                                      "'%" CH_PHONE_TAIL "%'"),
                     0);
    /* A reason is required (1..200 characters); no phone → 409. */
    r = post(&env, "/api/cases/ESS-2569-000050/reveal-phone", &session, session.csrf,
             "{\"reason\":\"  \"}");
    expect_error(&r, 400, "bad_request", "empty reason");
    ch_response_free(&r);
    char long_reason[700];
    memcpy(long_reason, "{\"reason\":\"", 11);
    memset(long_reason + 11, 'x', 201);
    memcpy(long_reason + 212, "\"}", 3);
    r = post(&env, "/api/cases/ESS-2569-000050/reveal-phone", &session, session.csrf,
             long_reason);
    expect_error(&r, 400, "bad_request", "201-character reason");
    ch_response_free(&r);
    r = post(&env, "/api/cases/ESS-2569-000051/reveal-phone", &session, session.csrf,
             "{\"reason\":\"call back\"}");
    expect_error(&r, 409, "phone_erased", "no phone");
    ch_response_free(&r);

    /* No audit record, no phone: with the log closed to the console, the reveal fails. */
    ch_sql(&env, "REVOKE INSERT ON audit_log FROM ess_service");
    r = post(&env, "/api/cases/ESS-2569-000050/reveal-phone", &session, session.csrf,
             "{\"reason\":\"call back again\"}");
    expect_status(&r, 503, "reveal without an audit record");
    assert_nothing_personal("failed reveal", r.body);
    ch_response_free(&r);
    ch_sql(&env, "GRANT INSERT ON audit_log TO ess_service");

    /* The chain holds: the console appended as essctl and ess-audit do. */
    const char *verify[] = {"audit", "verify", NULL};
    char *output = NULL;
    int code = ch_essctl(&env, verify, NULL, &output);
    if (code != 0)
        fail_msg("essctl audit verify exited %d: %s", code, output);
    assert_non_null(strstr(output, "audit log intact"));
    free(output);
    /* The console's log has no phone either. */
    char *log = testkit_read_file(env.log_path);
    assert_non_null(log);
    assert_nothing_personal("the console's log", log);
    assert_null(strstr(log, CH_PASSWORD));
    free(log);
    ch_stop(&env);
}

/* A GET that samples the console's resident memory while the body arrives. */
typedef struct sampled_get {
    ch_env *env;
    size_t bytes, next_sample;
    long rss_max_kib;
    size_t objects; /* EIDO objects seen ("eidoMessageIdentifier") */
    char tail[32];  /* the end of the previous piece: a marker may straddle two */
    char transfer_encoding[32];
} sampled_get;

static size_t sample_header(char *data, size_t size, size_t count, void *closure)
{
    sampled_get *get = closure;
    size_t n = size * count;
    static const char name[] = "transfer-encoding:";
    if (n > sizeof(name) && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        size_t start = sizeof(name) - 1;
        while (start < n && data[start] == ' ')
            start++;
        size_t end = n;
        while (end > start && (data[end - 1] == '\r' || data[end - 1] == '\n'))
            end--;
        snprintf(get->transfer_encoding, sizeof(get->transfer_encoding), "%.*s",
                 (int)(end - start), data + start);
    }
    return n;
}

static size_t sample_body(char *data, size_t size, size_t count, void *closure)
{
    sampled_get *get = closure;
    size_t n = size * count;
    static const char marker[] = "\"eidoMessageIdentifier\"";
    char joined[64 + 16384];
    for (size_t offset = 0; offset < n; offset += 16384) {
        size_t piece = n - offset < 16384 ? n - offset : 16384;
        size_t tail_len = strlen(get->tail);
        memcpy(joined, get->tail, tail_len);
        memcpy(joined + tail_len, data + offset, piece);
        joined[tail_len + piece] = '\0';
        for (const char *p = joined; (p = strstr(p, marker)) != NULL; p += sizeof(marker) - 1)
            if ((size_t)(p - joined) + sizeof(marker) - 1 > tail_len)
                get->objects++;
        size_t keep = tail_len + piece < sizeof(get->tail) - 1 ? tail_len + piece
                                                              : sizeof(get->tail) - 1;
        memcpy(get->tail, joined + tail_len + piece - keep, keep);
        get->tail[keep] = '\0';
    }
    get->bytes += n;
    if (get->bytes >= get->next_sample) {
        long rss = ch_console_rss_kib(get->env);
        if (rss > get->rss_max_kib)
            get->rss_max_kib = rss;
        get->next_sample = get->bytes + 256 * 1024;
    }
    return n;
}

static void sampled_export(ch_env *env, const ch_session *session, const char *path,
                           sampled_get *ret_get, char *transfer_encoding, size_t te_size)
{
    char url[256], cookie[128];
    snprintf(url, sizeof(url), "%s%s", env->base_url, path);
    snprintf(cookie, sizeof(cookie), "Cookie: ess_session=%s", session->token);
    CURL *curl = curl_easy_init();
    struct curl_slist *list = curl_slist_append(NULL, cookie);
    memset(ret_get, 0, sizeof(*ret_get));
    ret_get->env = env;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 100000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, sample_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, ret_get);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, sample_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, ret_get);
    assert_int_equal(curl_easy_perform(curl), CURLE_OK);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    assert_int_equal(status, 200);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    snprintf(transfer_encoding, te_size, "%s", ret_get->transfer_encoding);
}

ESS_TEST(export_streams_many_rows_in_bounded_memory)
{
    /* No ASan quarantine: memory the export frees is reused at once, not counted as held. */
    const char *console_env[] = {
        "ASAN_OPTIONS=quarantine_size_mb=0:thread_local_quarantine_size_kb=0", NULL};
    ch_env env;
    ch_start(&env, console_env);
    ch_user(&env, "admin", "admin", "all");
    /* 20000 cases: 2000 reported the day before yesterday, the rest yesterday (Bangkok). */
    ch_sql(&env, "INSERT INTO incidents (case_number, category, status, lat, lon, tambon_code, "
                 "district_code, province_code, station_id, reported_at, routed_at) "
                 "SELECT 'ESS-2569-' || lpad(g::text, 6, '0'), 'threat', 'routed', 18.79, 98.98, "
                 "'TH500101', 'TH5001', 'TH50', 'S50', "
                 "(((now() AT TIME ZONE 'Asia/Bangkok')::date - CASE WHEN g <= 2000 THEN 2 "
                 "ELSE 1 END)::timestamp + g * interval '1 second') AT TIME ZONE 'Asia/Bangkok', "
                 "now() FROM generate_series(1, 20000) g");
    char *day_before = ch_sql_text(&env, "SELECT ((now() AT TIME ZONE 'Asia/Bangkok')::date - 2)"
                                         "::text");
    ch_session session;
    ch_login(&env, "admin", &session);

    /* Warm up with the first day (the allocator's pools fill once), then measure the whole. */
    char path[128], framing[64];
    snprintf(path, sizeof(path), "/api/export.eido?from=%s&to=%s", day_before, day_before);
    sampled_get sample;
    sampled_export(&env, &session, path, &sample, framing, sizeof(framing));
    assert_int_equal(sample.objects, 2000);
    long before = ch_console_rss_kib(&env);
    sampled_export(&env, &session, "/api/export.eido", &sample, framing, sizeof(framing));
    assert_int_equal(sample.objects, 20000);
    assert_string_equal(framing, "chunked");
    print_message("EIDO export of 20000 cases, %zu KiB: console RSS %ld KiB before, at most "
                  "%ld KiB while streaming\n",
                  sample.bytes / 1024, before, sample.rss_max_kib);
    /* Holding the export (or its JSON) would take more than the text itself; streaming takes
     * a page (~100 KiB) and its chunk. */
    assert_true(sample.rss_max_kib - before < (long)(sample.bytes / 1024) / 2);

    ch_response r = get(&env, "/api/export.csv", &session);
    expect_status(&r, 200, "csv export");
    char value[128];
    assert_false(ch_header(&r, "content-length", value, sizeof(value)));
    assert_true(ch_header(&r, "content-disposition", value, sizeof(value)));
    assert_non_null(strstr(value, "attachment; filename=\"ess-"));
    size_t lines = 0; /* a plain loop: strstr under ASan rescans the whole rest each call */
    for (size_t i = 0; i + 1 < r.len; i++)
        lines += r.body[i] == '\r' && r.body[i + 1] == '\n';
    assert_int_equal(lines, 20001);
    ch_response_free(&r);
    assert_true(ch_metric(&env, "ess_console_export_rows_total") == 42000);
    free(day_before);
    ch_stop(&env);
}

ESS_TEST(essctl_user_manages_accounts)
{
    ch_env env;
    ch_start(&env, NULL);
    char *output = NULL;
    /* Refused: a short password, an admin with one province, an unknown province. */
    const char *short_pw[] = {"user", "add", "--name", "a", "--role", "commander", "--area",
                              "TH50", "--password-stdin", NULL};
    assert_int_equal(ch_essctl(&env, short_pw, "short\n", &output), 2);
    assert_null(strstr(output, "short\n"));
    free(output);
    const char *admin_area[] = {"user", "add", "--name", "b", "--role", "admin", "--area",
                                "TH50", "--password-stdin", NULL};
    assert_int_equal(ch_essctl(&env, admin_area, CH_PASSWORD "\n", NULL), 2);
    const char *unknown_area[] = {"user", "add", "--name", "c", "--role", "analyst", "--area",
                                  "TH99", "--password-stdin", NULL};
    assert_int_equal(ch_essctl(&env, unknown_area, CH_PASSWORD "\n", &output), 1);
    assert_non_null(strstr(output, "not on record"));
    free(output);
    const char *bad_name[] = {"user", "add", "--name", "a b", "--role", "analyst", "--area",
                              "all", "--password-stdin", NULL};
    assert_int_equal(ch_essctl(&env, bad_name, CH_PASSWORD "\n", NULL), 2);

    ch_user(&env, "cmd50", "commander", "TH50");
    const char *again[] = {"user", "add", "--name", "cmd50", "--role", "analyst", "--area", "all",
                           "--password-stdin", NULL};
    assert_int_equal(ch_essctl(&env, again, CH_PASSWORD "\n", &output), 1);
    assert_non_null(strstr(output, "exists already"));
    free(output);
    /* Stored as scrypt$32768$8$1$salt$hash, never the password. */
    char *hash = ch_sql_text(&env, "SELECT password_hash FROM console_users WHERE name = 'cmd50'");
    assert_true(strncmp(hash, "scrypt$32768$8$1$", 17) == 0);
    assert_null(strstr(hash, CH_PASSWORD));
    free(hash);

    ch_session session;
    ch_login(&env, "cmd50", &session);
    const char *list[] = {"user", "list", "--json", NULL};
    assert_int_equal(ch_essctl(&env, list, NULL, &output), 0);
    cJSON *root = cJSON_Parse(output);
    free(output);
    const cJSON *users = cJSON_GetObjectItemCaseSensitive(root, "users");
    assert_int_equal(cJSON_GetArraySize(users), 1);
    const cJSON *user = cJSON_GetArrayItem(users, 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(user, "role")->valuestring, "commander");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(user, "area")->valuestring, "TH50");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(user, "sessions")->valueint, 1);
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(user, "last_login_at")));
    assert_null(cJSON_GetObjectItemCaseSensitive(user, "password_hash"));
    cJSON_Delete(root);

    /* Removed: its session ends at once. */
    const char *remove[] = {"user", "remove", "--name", "cmd50", NULL};
    assert_int_equal(ch_essctl(&env, remove, NULL, NULL), 0);
    assert_int_equal(ch_essctl(&env, remove, NULL, NULL), 1);
    ch_response r = get(&env, "/api/me", &session);
    expect_error(&r, 401, "unauthenticated", "me after remove");
    ch_response_free(&r);
    r = ch_login_response(&env, "cmd50", CH_PASSWORD, NULL, NULL);
    expect_error(&r, 401, "login_failed", "removed user");
    ch_response_free(&r);
    ch_stop(&env);
}

ESS_TEST(stats_map_and_web_files)
{
    ch_env env;
    ch_start(&env, NULL);
    ch_user(&env, "ana50", "analyst", "TH50");
    ch_incident(&env, "ESS-2569-000050", "threat", "TH50", "acknowledged", CH_PHONE);
    ch_incident(&env, "ESS-2569-000051", "threat", "TH50", "routed", NULL);
    ch_incident(&env, "ESS-2569-000010", "sexual", "TH10", "routed", NULL);
    ch_sql(&env, "UPDATE incidents SET escalation_level = 1 WHERE case_number = "
                 "'ESS-2569-000051'");
    ch_session session;
    ch_login(&env, "ana50", &session);

    ch_response r = get(&env, "/api/stats", &session);
    expect_status(&r, 200, "stats");
    cJSON *root = cJSON_Parse(r.body);
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows");
    assert_int_equal(cJSON_GetArraySize(rows), 1);
    const cJSON *row = cJSON_GetArrayItem(rows, 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(row, "province_code")->valuestring,
                        "TH50");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(row, "category")->valuestring, "threat");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(row, "reports")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(row, "escalations")->valueint, 1);
    /* One case taken 5 minutes after the report. */
    assert_true(cJSON_GetObjectItemCaseSensitive(row, "take_p50_s")->valuedouble > 290 &&
                cJSON_GetObjectItemCaseSensitive(row, "take_p50_s")->valuedouble < 310);
    const cJSON *totals = cJSON_GetObjectItemCaseSensitive(root, "totals");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(totals, "reports")->valueint, 2);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(totals, "scene_p50_s")));
    cJSON_Delete(root);
    ch_response_free(&r);
    r = get(&env, "/api/stats?from=2026-13-01", &session);
    expect_error(&r, 400, "bad_request", "bad date");
    ch_response_free(&r);
    r = get(&env, "/api/stats?from=2020-01-01&to=2026-01-01", &session);
    expect_error(&r, 400, "bad_request", "too long a range");
    ch_response_free(&r);

    /* The map: GeoJSON, 3 decimals, repeated points dropped, ETag and 304. */
    r = get(&env, "/api/map/provinces", &session);
    expect_status(&r, 200, "map");
    assert_non_null(strstr(r.body, "\"type\":\"FeatureCollection\""));
    assert_non_null(strstr(r.body, "\"code\":\"TH10\",\"name_th\":\"กรุงเทพมหานคร\""));
    assert_non_null(strstr(r.body, "[[[100.512,13.712],[100.61,13.71],[100.61,13.81],"
                                   "[100.512,13.712]]]"));
    char etag[64];
    assert_true(ch_header(&r, "etag", etag, sizeof(etag)));
    ch_response_free(&r);
    char if_none_match[96];
    snprintf(if_none_match, sizeof(if_none_match), "If-None-Match: %s", etag);
    const char *conditional[] = {if_none_match, NULL};
    r = ch_request(&env, "GET", "/api/map/provinces", &session, conditional, NULL);
    expect_status(&r, 304, "map unchanged");
    ch_response_free(&r);

    /* The web files, embedded: no session needed, strict CSP. */
    r = get(&env, "/", NULL);
    expect_status(&r, 200, "index");
    char value[256];
    assert_true(ch_header(&r, "content-type", value, sizeof(value)));
    assert_string_equal(value, "text/html; charset=utf-8");
    assert_true(ch_header(&r, "content-security-policy", value, sizeof(value)));
    assert_true(strncmp(value, "default-src 'self'", 18) == 0);
    assert_true(ch_header(&r, "cache-control", value, sizeof(value)));
    assert_string_equal(value, "no-cache");
    assert_true(ch_header(&r, "etag", etag, sizeof(etag)));
    ch_response_free(&r);
    snprintf(if_none_match, sizeof(if_none_match), "If-None-Match: %s", etag);
    r = ch_request(&env, "GET", "/", NULL, conditional, NULL);
    expect_status(&r, 304, "index unchanged");
    ch_response_free(&r);
    r = get(&env, "/static/../../etc/passwd", NULL);
    assert_true(r.status == 404 || r.status == 400);
    ch_response_free(&r);
    r = get(&env, "/static/no-such-file.js", NULL);
    expect_status(&r, 404, "missing file");
    ch_response_free(&r);
    r = get(&env, "/api/nothing-here", &session);
    expect_error(&r, 404, "not_found", "unknown API path");
    ch_response_free(&r);
    r = ch_request(&env, "DELETE", "/api/cases", &session, NULL, NULL);
    expect_error(&r, 405, "method_not_allowed", "DELETE cases");
    ch_response_free(&r);
    ch_stop(&env);
}

ESS_TEST_MAIN(NULL, ch_teardown)
