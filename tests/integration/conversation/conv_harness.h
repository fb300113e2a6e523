/* conv_harness: the stack a conversation integration case runs against.
 *
 * Per case, so cases run in parallel without sharing a durable consumer:
 *   - a nats-server of its own (JetStream, store under /tmp), on a free port;
 *   - a fresh PostgreSQL database (testkit_fresh_database, migrated by essctl);
 *   - line-emulator -> ess-ingress -> LINE_IN -> ess-conversation (one or two processes);
 *   - the notifier's part, played by the test: stack_pump reads every command on LINE_OUT,
 *     checks it against the schema's bounds and the emulator's validator (emu_validate.c),
 *     and delivers it to the emulator's Messaging API (reply, push with a retry key, reply's
 *     fallback push), so the emulator's chat shows what the bot said and a user can tap it.
 * Every helper fails the running case when something it needs does not work; stack_teardown
 * (the group teardown) stops what a failed case left running. */
#ifndef CONV_HARNESS_H
#define CONV_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <nats/nats.h>

#include "db.h"
#include "testkit.h"
#include "vault.h"

#define HARNESS_DATA_KEY "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
#define HARNESS_COMMANDS_MAX 256
#define HARNESS_CONVERSATIONS 2

typedef struct proc {
    int pid;
    int port;
    char base_url[64];
    char log_path[256];
    char env[8][256]; /* extra "K=V" given at start, kept for restarts */
    size_t env_count;
} proc;

typedef struct command_record {
    char subject[32];
    char command_id[128];
    char to[72];      /* push target or reply fallback */
    char text[2048];  /* the texts of its messages, joined by " | " */
    bool reply;
    bool notification_disabled;
} command_record;

typedef struct stack {
    char token[48];
    testkit_nats nats; /* the case's own nats-server */
    char dsn[512];
    char secret[64];
    proc emulator, ingress;
    proc conversation[HARNESS_CONVERSATIONS];
    natsConnection *nc;
    jsCtx *js;
    db *d;
    vault_keys keys;
    uint64_t line_out_seen; /* LINE_OUT sequence delivered so far */
    command_record commands[HARNESS_COMMANDS_MAX];
    size_t command_count;
} stack;

extern stack the_stack;

/* Servers, database, emulator, ingress and conversation #0 (extra env for it, NULL-terminated
 * or NULL). */
void stack_start(stack *s, const char *const *conversation_env);
int stack_teardown(void **state);

/* (Re)starts conversation #index with env (NULL = as last time) and waits until it is ready. */
void conversation_start(stack *s, int index, const char *const *env);
/* SIGKILL; returns the exit status (128 + 9). */
int conversation_kill(stack *s, int index);
/* Waits for a conversation that kills itself (failpoint) to die; returns its status. */
int conversation_wait_exit(stack *s, int index, int64_t timeout_ms);
/* SIGTERM; returns the exit status (0 = clean). */
int conversation_stop(stack *s, int index);
/* The value of a counter series in conversation #index's /metrics (0 when absent). */
long long conversation_metric(stack *s, int index, const char *series);

/* Emulator: a new user (display name unique), language "th" or "en". */
void user_create(stack *s, const char *language, char *ret_user_id, size_t size);
/* One control call; fails unless want_status. Returns the answer (caller deletes). */
cJSON *emulator_call(stack *s, const char *method, const char *path, const char *body,
                     long want_status);
/* Acts as the user (POST /_emulator/users/U/<action>); returns the (first) webhookEventId
 * in ret_event_id when not NULL. */
void user_act(stack *s, const char *user_id, const char *action, const char *body,
              char *ret_event_id, size_t size);

/* Waits until LINE_OUT holds total commands, then delivers the new ones (see above). */
void stack_pump(stack *s, size_t total);
/* Messages in a stream with exactly this subject. stream_total counts LINE_OUT's send
 * commands only (line.out.reply|push): the profile look-ups the conversation asks for
 * (line.out.profile, issue 7) are ess-notifier's business and not played by this harness. */
uint64_t stream_subject_count(stack *s, const char *stream, const char *subject);
uint64_t stream_total(stack *s, const char *stream);
/* The payload (heap, caller frees) and msg-id of message seq of stream. */
char *stream_get(stack *s, const char *stream, uint64_t seq, char *ret_msg_id, size_t size,
                 char *ret_subject, size_t subject_size);

/* SQL on the case's database: the first column of the first row, as a number / heap text. */
long long sql_number(stack *s, const char *sql);
char *sql_text(stack *s, const char *sql);

/* True when needle (or its bytes in hex, as bytea shows them) appears in any row of any table
 * of the case's database; ret_table names the first table found. */
bool database_contains(stack *s, const char *needle, char *ret_table, size_t size);
/* True when needle appears in the log of a process started here. */
bool logs_contain(stack *s, const char *needle);

#endif
