/* notifier_harness: what the ess-notifier integration tests share.
 *
 * Every case gets a world of its own, so cases run in any order and in parallel: a
 * nats-server on a free port (JetStream, store in /tmp), a line-emulator on a free port, and
 * an ess-notifier pointed at both (the notifier's durable consumers have fixed names, so
 * sharing one NATS server between cases would let one case's notifier take another's
 * messages). PostgreSQL is the shared ESS_TEST_PG_DSN server; cases that read incidents get a
 * fresh migrated database (testkit_fresh_database).
 *
 * Every helper fails the running test (cmocka assert) when something it needs does not work.
 * Pass nh_teardown as the group teardown of ESS_TEST_MAIN: a failed case leaves nothing
 * running. */
#ifndef NOTIFIER_HARNESS_H
#define NOTIFIER_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <nats/nats.h>

#include "bus.h"
#include "testkit.h"

#define NH_DATA_KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" /* bytes 0..31 */
#define NH_NOTIFIER_ENV_MAX 8

typedef struct nh_proc {
    int pid;
    int port;
    char base_url[64];
    char log_path[256];
} nh_proc;

typedef struct nh_env {
    char unique[40];
    char token[64]; /* the channel access token both sides use */
    testkit_nats nats; /* the case's own nats-server */
    nh_proc emulator;
    nh_proc notifier;
    char pg_dsn[512];
    bool own_database;
    const char *notifier_env[NH_NOTIFIER_ENV_MAX + 1]; /* extra "K=V", NULL-terminated */
    bus *bus;
    natsConnection *nc;
    jsCtx *js;
} nh_env;

/* Starts NATS (streams and consumers of proto/registry.json ensured), the emulator and — when
 * start_notifier — ess-notifier with the test settings (1 s request timeout, 50–500 ms
 * backoff) plus notifier_env (up to NH_NOTIFIER_ENV_MAX "K=V", NULL-terminated, may be NULL;
 * later entries override the defaults). fresh_database: a migrated database of its own. */
void nh_start(nh_env *env, bool fresh_database, bool start_notifier,
              const char *const *notifier_env);
/* Starts (again) the notifier of env and waits until it is ready. */
void nh_notifier_start(nh_env *env);
/* Sends sig to the notifier and waits for it (SIGKILL after 20 s); returns its exit status as
 * testkit_stop does. */
int nh_notifier_stop(nh_env *env, int sig);
/* Stops everything; removes logs, the NATS store and the database. */
void nh_stop(nh_env *env);
int nh_teardown(void **state);

/* ---- the emulator's control API ---- */

/* method path (under /_emulator) with an optional JSON body; asserts the status and returns
 * the parsed answer (caller cJSON_Deletes; NULL when the body is not JSON). */
cJSON *nh_emu(nh_env *env, const char *method, const char *path, const char *body,
              long want_status);
/* A user who follows the bot; its id into user_id (40 bytes). */
void nh_emu_user(nh_env *env, const char *display_name, char *user_id);
/* A group with member in it and the bot joined; its id into group_id (40 bytes). */
void nh_emu_group(nh_env *env, const char *name, const char *member, char *group_id);
/* A fresh reply token for user (the user writes to the bot). Into token (128 bytes). */
void nh_emu_reply_token(nh_env *env, const char *user_id, char *token);
void nh_emu_fault(nh_env *env, const char *fault_json);
/* Every accepted message to `to` ("" = all), oldest first: the "messages" array of the
 * answer, detached (caller cJSON_Deletes). */
cJSON *nh_emu_messages(nh_env *env, const char *to);
size_t nh_emu_message_count(nh_env *env, const char *to);

/* ---- NATS ---- */

void nh_publish(nh_env *env, const char *subject, const char *json, const char *msg_id);
/* Publishes count messages asynchronously (subject, body and msg-id from make(i)). */
void nh_publish_many(nh_env *env, size_t count,
                     void (*make)(size_t i, char *subject, char *body, size_t body_size,
                                  char *msg_id, void *closure),
                     void *closure);
/* True when the durable has nothing pending and nothing unacknowledged. */
bool nh_consumer_settled(nh_env *env, const char *durable);
/* Waits for nh_consumer_settled. */
void nh_wait_settled(nh_env *env, const char *durable, int64_t timeout_ms);
/* Messages stored on the DLQ stream under subject. */
uint64_t nh_dlq_count(nh_env *env, const char *subject);
/* The last dead letter on subject (caller natsMsg_Destroys), or NULL. */
natsMsg *nh_dlq_last(nh_env *env, const char *subject);

/* ---- the notifier ---- */

/* The value of one series of GET /metrics (exact name{labels} text), 0 when absent. */
double nh_metric(nh_env *env, const char *series);
/* Waits until the series reaches at least want. */
void nh_wait_metric(nh_env *env, const char *series, double want, int64_t timeout_ms);
/* The notifier's log so far (caller frees). */
char *nh_notifier_log(nh_env *env);

#endif
