/* console_harness: what the ess-console integration tests share.
 *
 * Every case gets a world of its own: a nats-server on a free port (JetStream; the console's
 * ordered consumer and the ESS events the test publishes stay in it), a fresh migrated
 * database on the ESS_TEST_PG_DSN server with a little reference geography (TH10 Bangkok,
 * TH50 Chiang Mai), a login role of its own that is a member of ess_service (the console
 * connects as the services do, so the grants of migration 0008 are what is tested), and an
 * ess-console pointed at them. Incidents are inserted directly (the phone sealed with vault as
 * the conversation seals it); ESS events are published by the test.
 *
 * Every helper fails the running test when something it needs does not work. Pass
 * ch_teardown as the group teardown: a failed case leaves nothing running. */
#ifndef CONSOLE_HARNESS_H
#define CONSOLE_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "testkit.h"
#include "db.h"
#include "vault.h"

#define CH_DATA_KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" /* bytes 0..31 */
#define CH_PASSWORD "console-Test-pass-42"
#define CH_PHONE "0812345678"                          /* the test reporter's phone */
#define CH_PHONE_TAIL "2345678"                        /* any longer run would be a leak */
#define CH_REPORTER "U0123456789abcdef0123456789abcdef" /* the test reporter's LINE id */
#define CH_GROUP "Cfedcba9876543210fedcba9876543210"    /* a responders' LINE group */
#define CH_ENV_MAX 12

typedef struct ch_env {
    char unique[40];
    char admin_dsn[512]; /* the fresh database, as the tests' superuser */
    char app_login[64];
    char app_dsn[640];   /* the same database as the services' login */
    testkit_nats nats; /* the case's own nats-server */
    int console_pid;
    int console_port;
    char base_url[64];
    char log_path[256];
    db *admin;
    bus *bus;
    vault_keys keys;
} ch_env;

/* Starts NATS, the database, the login role, and ess-console with the test settings (login
 * delay base 10 ms, heartbeat 200 ms) plus console_env ("K=V", NULL-terminated, may be NULL;
 * later entries override). Waits until the console is ready. */
void ch_start(ch_env *env, const char *const *console_env);
/* Stops and removes everything. */
void ch_stop(ch_env *env);
int ch_teardown(void **state);
/* (Re)starts / stops only the console. */
void ch_console_start(ch_env *env, const char *const *console_env);
int ch_console_stop(ch_env *env);

/* ---- data ---- */

/* Runs SQL as the superuser (fails the test on error). */
void ch_sql(ch_env *env, const char *sql);
long long ch_sql_int(ch_env *env, const char *sql);
/* The first column of the first row as text (heap, caller frees). */
char *ch_sql_text(ch_env *env, const char *sql);
/* An incident in province (TH10 or TH50) with its timeline (reported, a typed text, a
 * location, a responder's take from CH_GROUP); phone NULL = none given. Returns its id. */
int64_t ch_incident(ch_env *env, const char *case_number, const char *category,
                    const char *province, const char *status, const char *phone);
/* essctl with ESS_PG_DSN = the admin DSN and stdin_text on its standard input (may be NULL);
 * returns the exit code, output into *ret_output (caller frees; may be NULL). */
int ch_essctl(ch_env *env, const char *const *args, const char *stdin_text, char **ret_output);
/* essctl user add NAME with CH_PASSWORD (asserts success). */
void ch_user(ch_env *env, const char *name, const char *role, const char *area);
/* Publishes ess.incident.<kind> for a case on the test's NATS. */
void ch_publish(ch_env *env, const char *kind, int64_t incident_id, const char *case_number);

/* ---- HTTP ---- */

typedef struct ch_response {
    long status;
    char *body;    /* heap, NUL-terminated */
    size_t len;
    char *headers; /* raw header block, heap */
} ch_response;

void ch_response_free(ch_response *r);
/* The value of header name (case-insensitive) into out; false when absent. */
bool ch_header(const ch_response *r, const char *name, char *out, size_t out_size);

typedef struct ch_session {
    char token[64]; /* the ess_session cookie */
    char csrf[64];
} ch_session;

/* method path with optional body, the session's cookie (session may be NULL) and extra
 * headers (NULL-terminated, may be NULL). */
ch_response ch_request(ch_env *env, const char *method, const char *path,
                       const ch_session *session, const char *const *headers, const char *body);
/* POST /api/login; on 200 fills *ret_session. Returns the response (caller frees). */
ch_response ch_login_response(ch_env *env, const char *name, const char *password,
                              const char *const *headers, ch_session *ret_session);
/* Logs in with CH_PASSWORD and asserts 200. */
void ch_login(ch_env *env, const char *name, ch_session *ret_session);

/* The value of a metric line of /metrics ("name" or "name{labels}"); -1 when absent. */
double ch_metric(ch_env *env, const char *series);
/* Resident memory of the console, KiB (from /proc). */
long ch_console_rss_kib(ch_env *env);

/* ---- event streams ---- */

typedef struct ch_stream ch_stream;
/* GET /api/events<query> with the session, read on a thread of its own. */
ch_stream *ch_stream_open(ch_env *env, const ch_session *session, const char *query);
/* Waits until the received text contains needle. */
bool ch_stream_wait(ch_stream *stream, const char *needle, int64_t timeout_ms);
/* A copy of everything received so far (caller frees). */
char *ch_stream_text(ch_stream *stream);
/* True once the server ended the response. */
bool ch_stream_ended(ch_stream *stream);
/* The response status (0 until the head arrived). */
long ch_stream_status(ch_stream *stream);
void ch_stream_close(ch_stream *stream);

#endif
