/* db: the PostgreSQL layer (libpq underneath).
 *
 * - parameterised statements only: there is no call that runs a caller-built SQL string with
 *   values inside (migrations are the one exception, db_exec_script, fed from files in the
 *   repository, never from input);
 * - reconnect: a broken connection is reset on the next call; a statement outside a
 *   transaction that failed because the connection broke is retried once on the new one;
 * - transactions: db_tx runs a function in BEGIN/COMMIT, rolls back on any failure, and
 *   retries on serialization failures and deadlocks;
 * - errors carry the SQLSTATE in st_error.cause ("sqlstate 23505") and map to st_code:
 *   08xxx/57Pxx connection → ST_UNAVAILABLE; 23505 unique → ST_CONFLICT; 22xxx/23xxx → ST_INVALID;
 *   57014 statement timeout → ST_TIMEOUT; others ST_INTERNAL. Messages never contain
 *   parameter values (they may be personal data).
 *
 * Every session sets synchronous_commit=on explicitly (the report path must never lose an
 * acknowledged commit), application_name, and a statement timeout.
 *
 * Thread-safety: a db handle is used by one thread at a time (a libpq connection is not
 * shareable); each consumer thread opens its own. */
#ifndef ESS_DB_H
#define ESS_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ess_embedded.h"
#include "status.h"

#define DB_PARAMS_MAX 64

typedef struct db db;
typedef struct db_result db_result;

typedef struct db_options {
    const char *dsn;              /* libpq URI or key=value string */
    const char *application_name; /* "ess-ingress" */
    int64_t connect_timeout_ms;   /* default 3000 when 0 */
    int64_t statement_timeout_ms; /* default 10000 when 0 */
} db_options;

/* Connects (blocking). Caller owns *ret_db. ST_UNAVAILABLE when the server cannot be reached
 * (the DSN's password is never echoed in err). */
st_code db_connect(const db_options *options, db **ret_db, st_error *err);
void db_destroy(db *d); /* accepts NULL */

/* Runs one parameterised statement ($1..$n; params[i] NULL = SQL NULL; text format).
 * nparams <= DB_PARAMS_MAX. ret_result may be NULL when rows are not needed; otherwise the
 * caller owns *ret_result (db_result_destroy). Blocks up to the statement timeout. */
st_code db_exec(db *d, const char *sql, int nparams, const char *const *params,
                db_result **ret_result, st_error *err);

/* Result access; row/col out of range returns NULL / false / 0. Strings are borrowed from
 * the result and live until db_result_destroy. */
int db_result_rows(const db_result *r);
int db_result_cols(const db_result *r);
const char *db_result_value(const db_result *r, int row, int col); /* NULL for SQL NULL */
bool db_result_is_null(const db_result *r, int row, int col);
/* Rows affected by INSERT/UPDATE/DELETE. */
int64_t db_result_affected(const db_result *r);
void db_result_destroy(db_result *r); /* accepts NULL */

/* Transactions. db_tx: BEGIN; fn; COMMIT. When fn fails (non-ST_OK) the transaction is
 * rolled back and fn's status returned. Serialization failures (40001) and deadlocks (40P01)
 * rerun fn, at most max_attempts times in all (0 = 3). fn must be safe to rerun. */
typedef st_code (*db_tx_fn)(db *d, void *closure, st_error *err);
st_code db_tx(db *d, int max_attempts, db_tx_fn fn, void *closure, st_error *err);
st_code db_begin(db *d, st_error *err);
st_code db_commit(db *d, st_error *err);
st_code db_rollback(db *d, st_error *err); /* safe to call when no transaction is open */
bool db_in_transaction(const db *d);

/* Cheap liveness check ("SELECT 1"), reconnecting if needed. */
st_code db_ping(db *d, st_error *err);

/* Migrations: files named NNNN_name.sql, applied in name order, each in its own transaction
 * with a row in schema_migrations(version, name, checksum, applied_at); an advisory lock
 * serialises concurrent migrators. A file already applied with a different checksum is an
 * error (ST_CONFLICT): migrations are append-only. *ret_applied = files applied now. */
st_code db_migrate(db *d, const ess_embedded_file *files, size_t count, int *ret_applied,
                   st_error *err);

/* Runs a multi-statement SQL script verbatim (simple query protocol). Only for migration
 * files shipped in the repository. */
st_code db_exec_script(db *d, const char *sql, st_error *err);

#endif
