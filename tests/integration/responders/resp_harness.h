/* resp_harness: the whole ESS path for a responders case (issue 7), real binaries only:
 *
 *   line-emulator ─webhook─▶ ess-ingress ─LINE_IN─▶ ess-conversation ─ESS─▶ ess-georouter
 *        ▲                                   │ LINE_OUT            ▲  ESS (routed, escalated)
 *        └──────────── ess-notifier ◀────────┴─────────────────────┘
 *
 * Per case: a nats-server of its own (the durable names are fixed), a fresh database on the
 * ESS_TEST_PG_DSN server migrated and loaded with `essctl geo import`, and the five processes
 * above. Teams come from `essctl team invite` and `/ess bind CODE` typed in a group, as an
 * operator and an officer do it. Every helper fails the running case when something it needs
 * does not work; rs_teardown (the group teardown) stops what a failed case left running. */
#ifndef RESP_HARNESS_H
#define RESP_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <nats/nats.h>

#include "db.h"
#include "testkit.h"

#define RS_DATA_KEY "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
#define RS_WAIT_MS 40000
#define RS_ID_MAX 72

typedef struct rs_proc {
    const char *binary; /* in build/bin */
    const char *listen_var;
    int pid;
    int port;
    char base_url[64];
    char log_path[256];
    char env[12][600]; /* the process's own variables, kept for restarts */
    size_t env_count;
} rs_proc;

typedef struct rs_stack {
    char token[48];
    testkit_nats nats; /* the case's own nats-server */
    char dsn[512];
    char secret[64];
    rs_proc emulator, ingress, conversation, notifier, georouter;
    rs_proc audit; /* started only by rs_audit_start */
    natsConnection *nc;
    jsCtx *js;
    db *d;
} rs_stack;

extern rs_stack rs;

/* Everything started and ready; conversation_env: extra "K=V" for ess-conversation
 * (NULL-terminated, may be NULL). */
void rs_start(rs_stack *s, const char *const *conversation_env);
int rs_teardown(void **state);
/* Starts ess-audit too (not part of rs_start); extra "K=V" NULL-terminated, may be NULL. */
void rs_audit_start(rs_stack *s, const char *const *extra_env);

/* (Re)starts a process; env NULL = the variables it had last time, else replaces them.
 * Waits for /readyz (the emulator: /healthz). */
void rs_proc_start(rs_stack *s, rs_proc *p, const char *const *env);
/* Stops a process with sig (SIGKILL, SIGTERM); returns its exit status. */
int rs_proc_stop(rs_proc *p, int sig);
/* Waits for a process that kills itself (failpoint) to die; returns its status. */
int rs_proc_wait_exit(rs_proc *p, int64_t timeout_ms);

/* essctl with the case's database; fails unless it exits 0. Heap output (caller frees). */
char *rs_essctl(rs_stack *s, const char *const *args);
/* `essctl team invite ARGS --json`: the code. */
void rs_invite(rs_stack *s, const char *const *args, char *ret_code, size_t size);

/* Emulator control API; fails unless the answer has want_status. Caller deletes. */
cJSON *rs_emu(rs_stack *s, const char *method, const char *path, const char *body,
              long want_status);
void rs_user(rs_stack *s, const char *display_name, const char *language, char *ret_id,
             size_t size);
/* A group with these members (NULL-terminated); the bot joins it (join event) and its
 * introduction is awaited. */
void rs_group(rs_stack *s, const char *name, const char *const *members, char *ret_id, size_t size);
/* Acts as a user: POST /users/U/<action> with body; returns the first event's
 * webhookEventId in ret_event_id when not NULL. */
void rs_act(rs_stack *s, const char *user, const char *action, const char *body, char *ret_event_id,
            size_t size);
/* An officer binds group to the team of code: "/ess bind CODE", then waits for the answer. */
void rs_bind(rs_stack *s, const char *officer, const char *group, const char *code);

/* Bot messages (direction out) in a chat whose JSON contains needle (NULL = all). */
size_t rs_bot_count(rs_stack *s, const char *chat, const char *needle);
/* Waits until at least count such messages are there; fails after RS_WAIT_MS. Returns the seq
 * of the last of them. */
int64_t rs_wait_bot(rs_stack *s, const char *chat, const char *needle, size_t count);
/* The text of the last bot message in a chat containing needle (heap; caller frees). */
char *rs_last_bot_json(rs_stack *s, const char *chat, const char *needle);

/* A citizen's whole report by taps: follow, the first category, the location, the phone.
 * Waits for the case number; returns the incident id. */
int64_t rs_report(rs_stack *s, const char *citizen, double lat, double lon, const char *phone);

/* SQL on the case's database: the first column of the first row as a number / heap text. */
long long rs_sql(rs_stack *s, const char *sql);
char *rs_sql_text(rs_stack *s, const char *sql);
/* Waits until rs_sql(sql) == expected; fails with what it saw. */
void rs_wait_sql(rs_stack *s, const char *sql, long long expected);

/* Stream inspection: messages with exactly subject; a message's payload (heap) by sequence. */
uint64_t rs_subject_count(rs_stack *s, const char *stream, const char *subject);
uint64_t rs_last_seq(rs_stack *s, const char *stream);
char *rs_stream_get(rs_stack *s, const char *stream, uint64_t seq, char *ret_msg_id, size_t id_size,
                    char *ret_subject, size_t subject_size);
/* The payload (heap) of the message of stream with this msg-id, or NULL. */
char *rs_find_msg(rs_stack *s, const char *stream, const char *msg_id);
/* Publishes data to subject with msg_id (a redelivery beyond JetStream's window). */
void rs_publish(rs_stack *s, const char *subject, const char *data, size_t len, const char *msg_id);

/* The value of a series ("name{labels}") in a process's /metrics (0 when absent). */
long long rs_metric(rs_proc *p, const char *series);

/* Waits until the series exceeds above. */
void rs_wait_metric_above(rs_proc *p, const char *series, long long above);
/* Waits until ess-conversation applied every LINE_IN event (processed_events). */
void rs_wait_all_applied(rs_stack *s);

/* True when needle appears in a log of a process of the case. */
bool rs_logs_contain(rs_stack *s, const char *needle);

#endif
