/* e2e_stack: the whole ESS stack for an end-to-end test, started by `deploy/local/ess up` —
 * the very code a developer and an operator use — in a temporary ESS_HOME, on free ports,
 * with this build's binaries (ESS_SKIP_BUILD=1, ESS_BUILD_DIR = the build under test).
 *
 *   ESS_TEST(x) { e2e_stack *s = &e2e_the_stack; e2e_stack_up(s, extra_env); ...;
 *                 e2e_stack_passed(s); }
 *   ESS_TEST_MAIN(NULL, e2e_stack_teardown)
 *
 * `ess up` starts nats-server and a PostgreSQL cluster inside ESS_HOME, migrates, imports the
 * geography, creates the services' login roles and starts every ess-* binary of the build
 * (and the line-emulator) under its supervisor. The teardown takes `ess down` and removes
 * ESS_HOME, also when the case failed. A guardian process (a grandchild of the test, in its own
 * session) does the same if the test process dies without its teardown (a crash, or CTest's
 * timeout): no stack outlives its test.
 *
 * Every function that takes no `ret_status`-style out-parameter fails the running cmocka case
 * on a problem, so it may be called from the test's main thread only. Functions documented
 * "thread-safe" neither fail nor assert: driver threads may call them. */
#ifndef E2E_STACK_H
#define E2E_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "vault.h"

#define E2E_PATH_MAX 512
#define E2E_ENV_MAX 48
#define E2E_ENV_LEN 640
#define E2E_WAIT_MS 60000

/* The processes `ess up` supervises, in its start order (ess-console only when built). */
typedef enum e2e_service_id {
    E2E_EMULATOR = 0,
    E2E_AUDIT,
    E2E_CONVERSATION,
    E2E_GEOROUTER,
    E2E_NOTIFIER,
    E2E_INGRESS,
    E2E_CONSOLE,
    E2E_SERVICE_COUNT
} e2e_service_id;

typedef struct e2e_service {
    const char *name;       /* binary and supervisor name, e.g. "ess-ingress" */
    const char *listen_var; /* ESS_INGRESS_LISTEN */
    int port;
    char url[64]; /* http://127.0.0.1:PORT */
    bool built;   /* the binary is in the build: `ess up` starts it */
} e2e_service;

typedef struct e2e_stack {
    char root[128];                     /* the temporary directory (removed by the teardown) */
    char home[192];                     /* ESS_HOME = root/home */
    char script[E2E_PATH_MAX];          /* deploy/local/ess */
    char build_dir[E2E_PATH_MAX];       /* ESS_BUILD_DIR */
    char env[E2E_ENV_MAX][E2E_ENV_LEN]; /* "K=V" given to every `ess` command */
    size_t env_count;
    char nats_url[64];
    char nats_monitor_url[64];
    char pg_dsn[160];   /* the owner's DSN (ESS_PG_DSN): migrations, essctl, the test's SQL */
    char data_key[128]; /* ESS_DATA_KEY of the stack (from `ess env`) */
    vault_keys keys;    /* derived from data_key: the reporters' lookup hashes */
    e2e_service services[E2E_SERVICE_COUNT];
    PGconn *pg;
    int guardian_fd; /* write end of the guardian's pipe; -1 when none */
    bool up;
    bool passed; /* set by e2e_stack_passed: the teardown keeps quiet */
} e2e_stack;

/* Starts the stack (`ess up`) with these extra variables ("K=V", NULL-terminated, may be NULL;
 * they reach every process `ess up` starts), waits until every started service answers
 * /readyz, and connects the test's SQL session. Fails the case on any problem (with the
 * logs' tails). */
void e2e_stack_up(e2e_stack *s, const char *const *extra_env);

/* `ess down`, then ESS_HOME removed (kept with ESS_TEST_KEEP_LOGS=1); the logs' tails are
 * printed first unless e2e_stack_passed was called. Idempotent; never fails the case. */
void e2e_stack_down(e2e_stack *s);

/* Marks the running case as passed (the teardown then prints no logs). */
void e2e_stack_passed(e2e_stack *s);

/* Runs `deploy/local/ess COMMAND` with the stack's environment; fails unless it exits 0.
 * Returns its output (heap, caller frees). */
char *e2e_ess(e2e_stack *s, const char *command, int64_t timeout_ms);

/* essctl with the stack's owner DSN and data key. e2e_essctl fails unless it exits 0 and
 * returns the output (heap, caller frees); e2e_essctl_status returns the exit status and
 * the output in *ret_output (heap, caller frees; may be NULL when not wanted). */
char *e2e_essctl(e2e_stack *s, const char *const *args);
int e2e_essctl_status(e2e_stack *s, const char *const *args, char **ret_output);

/* Waits until every service the stack runs answers /readyz (the emulator /healthz), NATS
 * answers its health check and PostgreSQL accepts the test's session. False on timeout. */
bool e2e_stack_wait_ready(e2e_stack *s, int64_t timeout_ms);

/* True when the service answers /readyz with 200 (the emulator: /healthz). Thread-safe. */
bool e2e_service_ready(e2e_stack *s, e2e_service_id id);

/* SQL through the test's own session (reconnected when the server restarted). params are
 * text ($1..), nparams <= 8. e2e_sql_text: the first column of the first row (heap, caller
 * frees; NULL for no row or SQL NULL). e2e_sql: the same as a number (0 for none). Fail the
 * case on an error. e2e_wait_sql waits until e2e_sql equals expected. */
char *e2e_sql_text(e2e_stack *s, const char *sql, int nparams, const char *const *params);
long long e2e_sql(e2e_stack *s, const char *sql, int nparams, const char *const *params);
void e2e_wait_sql(e2e_stack *s, const char *sql, int nparams, const char *const *params,
                  long long expected);

/* The pid of the process a service's supervisor runs now (run/<name>.child), checked to be
 * this build's binary; 0 when none runs. */
int e2e_service_pid(e2e_stack *s, e2e_service_id id);

/* SIGKILLs the service's process (never its supervisor) and waits until the supervisor has
 * started a new one and it is ready again. */
void e2e_kill_service(e2e_stack *s, e2e_service_id id);

/* SIGKILLs the stack's nats-server. Nothing restarts it but `ess up` (e2e_ess(s, "up")). */
void e2e_kill_nats(e2e_stack *s);

/* Crashes the stack's PostgreSQL: immediate shutdown (SIGQUIT to the postmaster: no
 * checkpoint, crash recovery at the next start), and waits until it is gone. `ess up`
 * starts it again. */
void e2e_crash_pg(e2e_stack *s);

/* The lookup hash hex (64 digits + NUL) of a LINE user id under the stack's ESS_DATA_KEY:
 * incidents.reporter_key_hash, the audit log's "h:" ids. Thread-safe. */
void e2e_user_hash_hex(e2e_stack *s, const char *user_id, char ret_hex[65]);

/* Every file under the stack's directory ESS_HOME (the PostgreSQL cluster with its WAL, the
 * JetStream store, every log, the pid and environment files) searched byte for byte for each
 * of needles (NULL-terminated; each at least 8 bytes long, any number of them: one pass per
 * file), skipping files whose path contains one of skip
 * (NULL-terminated, may be NULL). Appends "path: needle" lines to ret_found (NUL-terminated,
 * truncated at size) and returns the number of (file, needle) pairs found. Files are read as
 * they are: run `ess down` first so that everything is on disk. */
size_t e2e_home_files_holding(e2e_stack *s, const char *const *needles, const char *const *skip,
                              char *ret_found, size_t size);

/* cmocka group teardown for a binary whose cases use one e2e_stack each (see above). */
int e2e_stack_teardown(void **state);
extern e2e_stack e2e_the_stack;

#endif
