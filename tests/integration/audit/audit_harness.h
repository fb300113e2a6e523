/* What the audit integration tests share: a fresh migrated database per case, publishing to
 * the registry's streams on the shared test server (isolated by unique subjects and ids),
 * ess-audit processes with their own durable names, essctl runs. */
#ifndef ESS_AUDIT_HARNESS_H
#define ESS_AUDIT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "db.h"

/* 32 bytes, base64: the data key of every test process. */
#define TEST_DATA_KEY "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

typedef struct audit_env {
    char unique[40]; /* "t<pid>x<n>": in ids and subjects */
    char dsn[512];   /* the case's own database */
    db *db;          /* superuser connection to it */
    bus *bus;        /* NULL unless opened with NATS */
} audit_env;

void env_open(audit_env *e, bool with_nats);
void env_close(audit_env *e); /* drops the database */

/* One statement; the first column of the first row as an integer (0 when no row/NULL). */
int64_t db_int(audit_env *e, const char *sql, const char *param);
/* One statement that must succeed. */
void db_ok(audit_env *e, const char *sql);
/* One statement (params may be NULL); returns its status. */
st_code db_try(audit_env *e, const char *sql, int nparams, const char *const *params,
               st_error *err);

/* Publishes one message (msg_id NULL: none); fails the case when not stored. */
void publish(audit_env *e, const char *subject, const char *msg_id, const char *payload);

/* Runs essctl with ESS_PG_DSN = dsn (NULL: the case's) and extra env; returns its exit
 * code; *ret_output (may be NULL) the output, heap. */
int run_essctl(audit_env *e, const char *dsn, const char *const *args, const char *extra_env,
               char **ret_output);

typedef struct audit_proc {
    int pid;
    char log_path[256];
    char base_url[64];
    char env_text[10][600];
} audit_proc;

/* Starts ess-audit on the case's database with durable prefix `prefix` (unique per case) and
 * up to 5 extra "K=V"; waits until /readyz answers 200. */
void audit_start(audit_proc *p, audit_env *e, const char *prefix, const char *const *extra_env);
/* SIGTERM; returns the exit status. */
int audit_stop(audit_proc *p);
/* SIGKILL. */
void audit_kill(audit_proc *p);

/* Waits (at most timeout_ms) until `sql` with param gives at least want; returns the last
 * value seen. */
int64_t wait_count(audit_env *e, const char *sql, const char *param, int64_t want,
                   int64_t timeout_ms);

/* A whole file contains needle (bytes)? */
bool file_contains(const char *path, const char *needle);

#endif
