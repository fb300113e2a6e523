/* db: the PostgreSQL layer over libpq. The contract is in include/db.h.
 *
 * Why the code looks the way it does:
 * - Error texts are built from the server's primary message only for SQLSTATE classes whose
 *   messages name identifiers (tables, constraints, columns) and never values; for the others
 *   (22 data exceptions quote the offending input, P0 carries RAISE text) the text is a
 *   generic description plus identifiers. The DETAIL field, which holds key values, is never
 *   used. So an error text cannot carry a parameter value.
 * - A connection failure is recognised by the connection status and by SQLSTATE class 08 and
 *   57P01..57P03 (the server going away), because libpq reports a lost connection sometimes
 *   as a result with a SQLSTATE and sometimes with none at all.
 * - Every reset bumps a generation counter: a session-level state (an advisory lock) is lost
 *   on a reset, and db_migrate must notice that rather than carry on unprotected. */
#include "db.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#define DSN_MAX 4096
#define APPLICATION_NAME_MAX 63 /* PostgreSQL truncates longer names (NAMEDATALEN - 1) */
#define SQL_MAX (1024 * 1024)
#define SCRIPT_MAX (16 * 1024 * 1024)
#define TIMEOUT_MAX_MS (24LL * 3600 * 1000)
#define TX_ATTEMPTS_MAX 100
#define MIGRATIONS_MAX 10000
#define MIGRATION_PATH_MAX 255
#define WHERE_MAX 160
#define DEFAULT_CONNECT_TIMEOUT_MS 3000
#define DEFAULT_STATEMENT_TIMEOUT_MS 10000

/* Fixed key of the session advisory lock that serialises migrators ("ESSDBMIG" in ASCII). */
#define MIGRATION_LOCK_KEY "4995427964319254855"

struct db {
    PGconn *conn;
    bool in_transaction;
    bool tx_retryable;     /* this transaction saw 40001/40P01: db_tx may rerun it */
    st_error tx_error;     /* first failure inside the open transaction */
    unsigned generation;   /* incremented on every reset */
    char where[WHERE_MAX]; /* "host 127.0.0.1 port 5432 database ess" or "" */
    char *password;        /* only to scrub it out of libpq's texts; NULL when none */
};

struct db_result {
    PGresult *res;
};

/* ---------------------------------------------------------------------------------------- */
/* Error texts */

static bool is_sqlstate(const char *state)
{
    if (state == NULL || strlen(state) != 5)
        return false;
    for (size_t i = 0; i < 5; i++)
        if (!isupper((unsigned char)state[i]) && !isdigit((unsigned char)state[i]))
            return false;
    return true;
}

static bool class_is(const char *state, const char *cls)
{
    return state[0] == cls[0] && state[1] == cls[1];
}

static st_code code_for_sqlstate(const char *state)
{
    if (strcmp(state, "57014") == 0)
        return ST_TIMEOUT;
    if (class_is(state, "08") || strncmp(state, "57P", 3) == 0)
        return ST_UNAVAILABLE;
    if (strcmp(state, "23505") == 0)
        return ST_CONFLICT;
    if (class_is(state, "22") || class_is(state, "23"))
        return ST_INVALID;
    return ST_INTERNAL;
}

static bool is_connection_sqlstate(const char *state)
{
    return is_sqlstate(state) && (class_is(state, "08") || strcmp(state, "57P01") == 0 ||
                                  strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0);
}

static bool is_retryable_sqlstate(const char *state)
{
    return is_sqlstate(state) && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0);
}

/* Classes whose primary messages name only identifiers and SQL text, never values. */
static bool primary_message_is_safe(const char *state)
{
    static const char *const safe_classes[] = {"08", "0A", "21", "23", "25", "26", "28",
                                               "2B", "34", "3D", "3F", "40", "42", "44",
                                               "53", "54", "55", "57", "58"};
    for (size_t i = 0; i < sizeof(safe_classes) / sizeof(safe_classes[0]); i++)
        if (class_is(state, safe_classes[i]))
            return true;
    return false;
}

static const char *class_description(const char *state)
{
    if (class_is(state, "22"))
        return "invalid data value";
    if (class_is(state, "P0"))
        return "error raised by a database function";
    if (class_is(state, "XX"))
        return "internal database error";
    if (class_is(state, "38") || class_is(state, "39"))
        return "error in a database routine";
    return "database error";
}

/* Copies text into out on one line: control characters become spaces, runs of spaces
 * collapse, and every occurrence of the secret (if any) becomes "***". */
static void one_line(const char *text, const char *secret, char *out, size_t out_size)
{
    /* Masking a one- or two-letter secret would only garble the text. */
    size_t secret_len = secret != NULL && strlen(secret) >= 3 ? strlen(secret) : 0;
    size_t used = 0;
    bool last_space = true;
    if (out_size == 0)
        return;
    for (const char *p = text; *p != '\0' && used + 1 < out_size;) {
        if (secret_len > 0 && strncmp(p, secret, secret_len) == 0) {
            for (const char *mask = "***"; *mask != '\0' && used + 1 < out_size; mask++)
                out[used++] = *mask;
            p += secret_len;
            last_space = false;
            continue;
        }
        unsigned char c = (unsigned char)*p++;
        if (c < 0x20 || c == 0x7f)
            c = ' ';
        if (c == ' ' && last_space)
            continue;
        out[used++] = (char)c;
        last_space = c == ' ';
    }
    while (used > 0 && out[used - 1] == ' ')
        used--;
    out[used] = '\0';
}

static void append_identifier(char *out, size_t out_size, const char *label, const char *name)
{
    if (name == NULL || name[0] == '\0')
        return;
    size_t used = strlen(out);
    if (used + 1 >= out_size)
        return;
    char clean[96];
    one_line(name, NULL, clean, sizeof(clean));
    snprintf(out + used, out_size - used, "%s%s %s", used > 0 ? ", " : "", label, clean);
}

/* Fills err from a failed result (res may be NULL: then the connection's state decides). */
static st_code fail_from_result(db *d, const PGresult *res, const char *what, st_error *err)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char text[ST_MESSAGE_MAX];
    st_code code;
    if (!is_sqlstate(state)) {
        /* A client-side failure: libpq found the connection broken (no SQLSTATE) or refused
         * the call. Its texts are about the connection, never about values. */
        if (PQstatus(d->conn) != CONNECTION_OK) {
            state = "08006";
            code = ST_UNAVAILABLE;
            snprintf(text, sizeof(text), "connection to PostgreSQL lost");
        } else {
            state = "XX000";
            code = ST_INTERNAL;
            one_line(PQerrorMessage(d->conn), d->password, text, sizeof(text));
            if (text[0] == '\0')
                snprintf(text, sizeof(text), "PostgreSQL client error");
        }
    } else {
        code = code_for_sqlstate(state);
        if (primary_message_is_safe(state)) {
            one_line(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) != NULL
                         ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                         : "",
                     d->password, text, sizeof(text));
        } else {
            char names[160] = "";
            append_identifier(names, sizeof(names), "table",
                              PQresultErrorField(res, PG_DIAG_TABLE_NAME));
            append_identifier(names, sizeof(names), "column",
                              PQresultErrorField(res, PG_DIAG_COLUMN_NAME));
            append_identifier(names, sizeof(names), "constraint",
                              PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME));
            append_identifier(names, sizeof(names), "type",
                              PQresultErrorField(res, PG_DIAG_DATATYPE_NAME));
            snprintf(text, sizeof(text), "%s%s%s%s", class_description(state),
                     names[0] != '\0' ? " (" : "", names, names[0] != '\0' ? ")" : "");
        }
    }
    if (d->in_transaction) {
        if (is_retryable_sqlstate(state))
            d->tx_retryable = true;
    }
    st_fail(err, code, "%s: %s", what, text);
    st_set_cause(err, "sqlstate %s", state);
    if (d->in_transaction && d->tx_error.code == ST_OK) {
        st_fail(&d->tx_error, code, "%s: %s", what, text);
        st_set_cause(&d->tx_error, "sqlstate %s", state);
    }
    return code;
}

/* Connecting or reconnecting failed (08001: the client could not establish a connection). */
static st_code fail_unavailable(db *d, const char *what, st_error *err)
{
    /* libpq prefixes "connection to server at "h", port p failed: ": keep what follows. */
    const char *libpq_text = PQerrorMessage(d->conn);
    const char *reason_start = libpq_text;
    for (const char *p = strstr(libpq_text, "failed: "); p != NULL; p = strstr(p + 1, "failed: "))
        reason_start = p + strlen("failed: ");
    char reason[ST_MESSAGE_MAX];
    one_line(reason_start, d->password, reason, sizeof(reason));
    char target[WHERE_MAX + 4] = "";
    if (d->where[0] != '\0')
        snprintf(target, sizeof(target), " (%s)", d->where);
    st_fail(err, ST_UNAVAILABLE, "%s%s%s%s", what, target, reason[0] != '\0' ? ": " : "", reason);
    st_set_cause(err, "sqlstate 08001");
    return ST_UNAVAILABLE;
}

/* ---------------------------------------------------------------------------------------- */
/* Connecting */

/* Host names, ports and database names are shown only when they are plain identifiers. */
static bool plain_token(const char *value, size_t max)
{
    if (value == NULL || value[0] == '\0' || strlen(value) > max)
        return false;
    for (const char *p = value; *p != '\0'; p++)
        if (!isalnum((unsigned char)*p) && strchr("._-/:,[]", *p) == NULL)
            return false;
    return true;
}

static void describe_target(PQconninfoOption *parsed, char *out, size_t out_size)
{
    const char *host = NULL, *port = NULL, *dbname = NULL;
    for (PQconninfoOption *o = parsed; o != NULL && o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "host") == 0 && o->val != NULL)
            host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0 && o->val != NULL && host == NULL)
            host = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            dbname = o->val;
    }
    out[0] = '\0';
    size_t used = 0;
    if (plain_token(host, 64))
        used += (size_t)snprintf(out + used, out_size - used, "host %s", host);
    if (plain_token(port, 16) && used < out_size)
        used += (size_t)snprintf(out + used, out_size - used, "%sport %s", used ? " " : "", port);
    if (plain_token(dbname, 64) && used < out_size)
        snprintf(out + used, out_size - used, "%sdatabase %s", used ? " " : "", dbname);
}

static const char *parsed_value(PQconninfoOption *parsed, const char *keyword)
{
    for (PQconninfoOption *o = parsed; o != NULL && o->keyword != NULL; o++)
        if (strcmp(o->keyword, keyword) == 0)
            return o->val;
    return NULL;
}

/* Libraries never log: libpq's default would print server NOTICEs on stderr. */
static void discard_notice(void *closure, const char *message)
{
    (void)closure;
    (void)message;
}

static bool timeout_valid(int64_t ms)
{
    return ms >= 0 && ms <= TIMEOUT_MAX_MS;
}

st_code db_connect(const db_options *options, db **ret_db, st_error *err)
{
    st_code rc = ST_OK;
    PQconninfoOption *parsed = NULL;
    char *session_options = NULL;
    db *d = NULL;

    if (options == NULL || ret_db == NULL || options->dsn == NULL)
        return st_fail(err, ST_INVALID, "db_connect: options, dsn and ret_db are required");
    if (strnlen(options->dsn, DSN_MAX + 1) > DSN_MAX)
        return st_fail(err, ST_LIMIT, "the PostgreSQL DSN is longer than %d bytes", DSN_MAX);
    const char *application_name =
        options->application_name != NULL ? options->application_name : "ess";
    if (strnlen(application_name, APPLICATION_NAME_MAX + 1) > APPLICATION_NAME_MAX)
        return st_fail(err, ST_LIMIT, "application_name is longer than %d bytes",
                       APPLICATION_NAME_MAX);
    if (!timeout_valid(options->connect_timeout_ms) ||
        !timeout_valid(options->statement_timeout_ms))
        return st_fail(err, ST_INVALID, "timeouts must be between 0 and %lld ms",
                       (long long)TIMEOUT_MAX_MS);
    int64_t connect_ms =
        options->connect_timeout_ms > 0 ? options->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    int64_t statement_ms = options->statement_timeout_ms > 0 ? options->statement_timeout_ms
                                                             : DEFAULT_STATEMENT_TIMEOUT_MS;

    char *parse_error = NULL;
    parsed = PQconninfoParse(options->dsn, &parse_error);
    if (parsed == NULL) {
        /* libpq's parse error quotes the DSN, which may hold a password: not passed on. */
        PQfreemem(parse_error);
        rc = st_fail(err, ST_INVALID, "the PostgreSQL DSN is not a valid URI or key=value string");
        goto cleanup;
    }

    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        rc = st_fail(err, ST_NOMEM, "out of memory");
        goto cleanup;
    }
    describe_target(parsed, d->where, sizeof(d->where));
    const char *password = parsed_value(parsed, "password");
    if (password != NULL && password[0] != '\0') {
        d->password = strdup(password);
        if (d->password == NULL) {
            rc = st_fail(err, ST_NOMEM, "out of memory");
            goto cleanup;
        }
    }

    /* The DSN's own options (search_path, ...) are kept; ours come last so they win. */
    const char *dsn_options = parsed_value(parsed, "options");
    size_t options_size = (dsn_options != NULL ? strlen(dsn_options) : 0) + 128;
    session_options = malloc(options_size);
    if (session_options == NULL) {
        rc = st_fail(err, ST_NOMEM, "out of memory");
        goto cleanup;
    }
    snprintf(session_options, options_size,
             "%s%s-c synchronous_commit=on -c statement_timeout=%lld",
             dsn_options != NULL ? dsn_options : "",
             dsn_options != NULL && dsn_options[0] != '\0' ? " " : "", (long long)statement_ms);
    char connect_seconds[24];
    snprintf(connect_seconds, sizeof(connect_seconds), "%lld",
             (long long)((connect_ms + 999) / 1000));

    /* dbname first and expanded: the DSN's settings apply, and the keywords after it
     * override them. TCP keepalives notice a server machine that vanished (no FIN, no RST)
     * within about a minute instead of the kernel's two hours. */
    const char *const keywords[] = {
        "dbname",           "options",    "application_name", "connect_timeout",
        "client_encoding",  "keepalives", "keepalives_idle",  "keepalives_interval",
        "keepalives_count", NULL};
    const char *const values[] = {options->dsn,
                                  session_options,
                                  application_name,
                                  connect_seconds,
                                  "UTF8",
                                  "1",
                                  "30",
                                  "10",
                                  "3",
                                  NULL};
    d->conn = PQconnectdbParams(keywords, values, 1);
    if (d->conn == NULL) {
        rc = st_fail(err, ST_NOMEM, "out of memory");
        goto cleanup;
    }
    if (PQstatus(d->conn) != CONNECTION_OK) {
        rc = fail_unavailable(d, "cannot connect to PostgreSQL", err);
        goto cleanup;
    }
    PQsetNoticeProcessor(d->conn, discard_notice, NULL);
    *ret_db = d;
    d = NULL;

cleanup:
    db_destroy(d);
    free(session_options);
    PQconninfoFree(parsed);
    return rc;
}

void db_destroy(db *d)
{
    if (d == NULL)
        return;
    if (d->conn != NULL)
        PQfinish(d->conn);
    if (d->password != NULL) {
        memset(d->password, 0, strlen(d->password));
        free(d->password);
    }
    free(d);
}

/* ---------------------------------------------------------------------------------------- */
/* Running statements */

static st_code reset_connection(db *d, st_error *err)
{
    PQreset(d->conn);
    d->generation++;
    d->in_transaction = false;
    if (PQstatus(d->conn) != CONNECTION_OK)
        return fail_unavailable(d, "cannot reconnect to PostgreSQL", err);
    return ST_OK;
}

/* Before a statement: a broken connection is reset, except inside a transaction, whose
 * state died with the connection (the caller must roll back and start over). */
static st_code ensure_connected(db *d, st_error *err)
{
    if (PQstatus(d->conn) == CONNECTION_OK)
        return ST_OK;
    if (d->in_transaction) {
        st_fail(err, ST_UNAVAILABLE, "connection to PostgreSQL lost inside a transaction");
        st_set_cause(err, "sqlstate 08006");
        return ST_UNAVAILABLE;
    }
    return reset_connection(d, err);
}

/* COPY is not part of this interface: end it so the connection stays usable. */
static PGresult *finish_copy(db *d, PGresult *res)
{
    while (res != NULL &&
           (PQresultStatus(res) == PGRES_COPY_IN || PQresultStatus(res) == PGRES_COPY_OUT ||
            PQresultStatus(res) == PGRES_COPY_BOTH)) {
        if (PQresultStatus(res) == PGRES_COPY_IN) {
            PQputCopyEnd(d->conn, "COPY is not supported by libs/db");
        } else {
            char *row = NULL;
            while (PQgetCopyData(d->conn, &row, 0) > 0) {
                PQfreemem(row);
                row = NULL;
            }
        }
        PQclear(res);
        PGresult *last = NULL;
        PGresult *next;
        while ((next = PQgetResult(d->conn)) != NULL) {
            PQclear(last);
            last = next;
            if (PQresultStatus(next) == PGRES_COPY_IN || PQresultStatus(next) == PGRES_COPY_OUT)
                break;
        }
        res = last;
    }
    return res;
}

static bool result_ok(const PGresult *res)
{
    ExecStatusType status = PQresultStatus(res);
    return res != NULL && (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK);
}

static bool is_connection_failure(db *d, const PGresult *res)
{
    if (PQstatus(d->conn) != CONNECTION_OK)
        return true;
    return res != NULL && is_connection_sqlstate(PQresultErrorField(res, PG_DIAG_SQLSTATE));
}

static PGresult *send_statement(db *d, const char *sql, int nparams, const char *const *params,
                                bool script)
{
    PGresult *res = script ? PQexec(d->conn, sql)
                           : PQexecParams(d->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    return finish_copy(d, res);
}

/* Runs sql; on success *ret_res holds the result (caller clears). may_retry: the statement
 * runs outside a transaction and may be run again after a reconnect. */
static st_code run(db *d, const char *what, const char *sql, int nparams, const char *const *params,
                   bool script, PGresult **ret_res, st_error *err)
{
    st_code rc = ensure_connected(d, err);
    if (rc != ST_OK)
        return rc;
    bool may_retry = !script && !d->in_transaction && PQtransactionStatus(d->conn) == PQTRANS_IDLE;
    PGresult *res = send_statement(d, sql, nparams, params, script);
    if (!result_ok(res) && may_retry && is_connection_failure(d, res)) {
        PQclear(res);
        res = NULL;
        rc = reset_connection(d, err);
        if (rc != ST_OK)
            return rc;
        res = send_statement(d, sql, nparams, params, script);
    }
    if (res == NULL && PQstatus(d->conn) == CONNECTION_OK) {
        PQclear(res);
        return st_fail(err, ST_NOMEM, "%s: out of memory", what);
    }
    if (!result_ok(res)) {
        rc = fail_from_result(d, res, what, err);
        PQclear(res);
        return rc;
    }
    *ret_res = res;
    return ST_OK;
}

st_code db_exec(db *d, const char *sql, int nparams, const char *const *params,
                db_result **ret_result, st_error *err)
{
    if (d == NULL || sql == NULL)
        return st_fail(err, ST_INVALID, "db_exec: handle and sql are required");
    if (nparams < 0 || nparams > DB_PARAMS_MAX || (nparams > 0 && params == NULL))
        return st_fail(err, ST_INVALID, "db_exec: nparams must be 0..%d with params given",
                       DB_PARAMS_MAX);
    size_t sql_len = strnlen(sql, SQL_MAX + 1);
    if (sql_len > SQL_MAX)
        return st_fail(err, ST_LIMIT, "db_exec: statement longer than %d bytes", SQL_MAX);
    if (sql_len == 0)
        return st_fail(err, ST_INVALID, "db_exec: empty statement");

    db_result *result = NULL;
    if (ret_result != NULL) {
        result = calloc(1, sizeof(*result));
        if (result == NULL)
            return st_fail(err, ST_NOMEM, "out of memory");
    }
    PGresult *res = NULL;
    st_code rc = run(d, "query failed", sql, nparams, params, false, &res, err);
    if (rc != ST_OK) {
        free(result);
        return rc;
    }
    if (result != NULL) {
        result->res = res;
        *ret_result = result;
    } else {
        PQclear(res);
    }
    return ST_OK;
}

st_code db_exec_script(db *d, const char *sql, st_error *err)
{
    if (d == NULL || sql == NULL)
        return st_fail(err, ST_INVALID, "db_exec_script: handle and sql are required");
    if (strnlen(sql, SCRIPT_MAX + 1) > SCRIPT_MAX)
        return st_fail(err, ST_LIMIT, "db_exec_script: script longer than %d bytes", SCRIPT_MAX);
    PGresult *res = NULL;
    st_code rc = run(d, "script failed", sql, 0, NULL, true, &res, err);
    if (rc == ST_OK)
        PQclear(res);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Results */

static bool in_range(const db_result *r, int row, int col)
{
    return r != NULL && r->res != NULL && row >= 0 && col >= 0 && row < PQntuples(r->res) &&
           col < PQnfields(r->res);
}

int db_result_rows(const db_result *r)
{
    return r != NULL && r->res != NULL ? PQntuples(r->res) : 0;
}

int db_result_cols(const db_result *r)
{
    return r != NULL && r->res != NULL ? PQnfields(r->res) : 0;
}

const char *db_result_value(const db_result *r, int row, int col)
{
    if (!in_range(r, row, col) || PQgetisnull(r->res, row, col))
        return NULL;
    return PQgetvalue(r->res, row, col);
}

bool db_result_is_null(const db_result *r, int row, int col)
{
    return in_range(r, row, col) && PQgetisnull(r->res, row, col);
}

int64_t db_result_affected(const db_result *r)
{
    if (r == NULL || r->res == NULL)
        return 0;
    const char *count = PQcmdTuples(r->res);
    if (count == NULL || count[0] == '\0')
        return 0;
    errno = 0;
    char *end = NULL;
    long long value = strtoll(count, &end, 10);
    if (errno != 0 || end == count || *end != '\0' || value < 0)
        return 0;
    return (int64_t)value;
}

void db_result_destroy(db_result *r)
{
    if (r == NULL)
        return;
    PQclear(r->res);
    free(r);
}

/* ---------------------------------------------------------------------------------------- */
/* Transactions */

st_code db_begin(db *d, st_error *err)
{
    if (d == NULL)
        return st_fail(err, ST_INVALID, "db_begin: handle is required");
    if (d->in_transaction)
        return st_fail(err, ST_INVALID, "db_begin: a transaction is already open");
    PGresult *res = NULL;
    /* BEGIN runs outside a transaction, so a lost connection is reset and BEGIN retried. */
    st_code rc = run(d, "BEGIN failed", "BEGIN", 0, NULL, false, &res, err);
    if (rc != ST_OK)
        return rc;
    PQclear(res);
    d->in_transaction = true;
    d->tx_retryable = false;
    st_clear(&d->tx_error);
    return ST_OK;
}

st_code db_commit(db *d, st_error *err)
{
    if (d == NULL || !d->in_transaction)
        return st_fail(err, ST_INVALID, "db_commit: no transaction is open");
    st_code rc = ST_OK;
    PGresult *res = NULL;
    if (PQstatus(d->conn) != CONNECTION_OK) {
        /* The server rolls back a transaction whose connection died. */
        rc = st_fail(err, ST_UNAVAILABLE,
                     "connection to PostgreSQL lost inside a transaction (rolled back)");
        st_set_cause(err, "sqlstate 08006");
        goto cleanup;
    }
    if (PQtransactionStatus(d->conn) == PQTRANS_INERROR) {
        /* COMMIT would answer "ROLLBACK" with success: report the failure that aborted it. */
        PQclear(PQexec(d->conn, "ROLLBACK"));
        if (d->tx_error.code != ST_OK) {
            rc = d->tx_error.code;
            if (err != NULL)
                *err = d->tx_error;
            st_wrap(err, "transaction rolled back");
        } else {
            rc = st_fail(err, ST_INTERNAL, "transaction rolled back after an earlier error");
            st_set_cause(err, "sqlstate 25P02");
        }
        goto cleanup;
    }
    res = PQexec(d->conn, "COMMIT");
    if (!result_ok(res)) {
        if (PQstatus(d->conn) != CONNECTION_OK) {
            rc = st_fail(err, ST_UNAVAILABLE,
                         "connection to PostgreSQL lost during COMMIT (outcome unknown)");
            st_set_cause(err, "sqlstate 08007");
        } else {
            rc = fail_from_result(d, res, "COMMIT failed", err);
        }
        goto cleanup;
    }
    if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        rc = st_fail(err, ST_INTERNAL, "COMMIT answered %s", PQcmdStatus(res));
        goto cleanup;
    }

cleanup:
    PQclear(res);
    d->in_transaction = false;
    return rc;
}

st_code db_rollback(db *d, st_error *err)
{
    if (d == NULL)
        return st_fail(err, ST_INVALID, "db_rollback: handle is required");
    d->in_transaction = false;
    if (PQstatus(d->conn) != CONNECTION_OK)
        return ST_OK; /* the server rolled it back when the connection died */
    PGTransactionStatusType state = PQtransactionStatus(d->conn);
    if (state != PQTRANS_INTRANS && state != PQTRANS_INERROR)
        return ST_OK;
    PGresult *res = PQexec(d->conn, "ROLLBACK");
    st_code rc = ST_OK;
    if (!result_ok(res))
        rc = fail_from_result(d, res, "ROLLBACK failed", err);
    PQclear(res);
    return rc;
}

bool db_in_transaction(const db *d)
{
    return d != NULL && d->in_transaction;
}

/* A short randomised pause before rerunning a transaction, so that two transactions that
 * collided do not collide again in lockstep. */
static void backoff(int attempt)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long cap_ms = 1L << (attempt < 6 ? attempt : 6); /* 2, 4, ... 64 ms */
    long pause_ms = 1 + (long)((unsigned long)now.tv_nsec % (unsigned long)cap_ms);
    struct timespec pause = {.tv_sec = 0, .tv_nsec = pause_ms * 1000000L};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
    }
}

st_code db_tx(db *d, int max_attempts, db_tx_fn fn, void *closure, st_error *err)
{
    if (d == NULL || fn == NULL)
        return st_fail(err, ST_INVALID, "db_tx: handle and function are required");
    if (max_attempts < 0 || max_attempts > TX_ATTEMPTS_MAX)
        return st_fail(err, ST_INVALID, "db_tx: max_attempts must be 0..%d", TX_ATTEMPTS_MAX);
    if (d->in_transaction)
        return st_fail(err, ST_INVALID, "db_tx: a transaction is already open");
    int attempts = max_attempts == 0 ? 3 : max_attempts;
    st_error attempt_err;
    st_code rc = ST_INTERNAL;
    for (int attempt = 1; attempt <= attempts; attempt++) {
        st_clear(&attempt_err);
        rc = db_begin(d, &attempt_err);
        if (rc != ST_OK)
            break;
        rc = fn(d, closure, &attempt_err);
        if (rc == ST_OK && d->in_transaction) {
            rc = db_commit(d, &attempt_err);
        } else if (rc == ST_OK) {
            rc = st_fail(&attempt_err, ST_INVALID, "db_tx: the function ended the transaction");
        } else {
            if (attempt_err.code == ST_OK) /* fn failed without saying why */
                st_fail(&attempt_err, rc, "transaction function failed");
            db_rollback(d, NULL);
        }
        if (rc == ST_OK)
            break;
        bool retryable = d->tx_retryable;
        d->tx_retryable = false;
        if (!retryable || attempt == attempts)
            break;
        backoff(attempt);
    }
    if (rc != ST_OK && err != NULL)
        *err = attempt_err;
    return rc;
}

st_code db_ping(db *d, st_error *err)
{
    if (d == NULL)
        return st_fail(err, ST_INVALID, "db_ping: handle is required");
    if (d->in_transaction)
        return st_fail(err, ST_INVALID, "db_ping: not inside a transaction");
    return db_exec(d, "SELECT 1", 0, NULL, NULL, err);
}

/* ---------------------------------------------------------------------------------------- */
/* Migrations */

typedef struct migration {
    const ess_embedded_file *file;
    char version[MIGRATION_PATH_MAX + 1];
    char name[MIGRATION_PATH_MAX + 1];
    char checksum[2 * EVP_MAX_MD_SIZE + 1];
} migration;

static int compare_by_path(const void *a, const void *b)
{
    const migration *left = a, *right = b;
    return strcmp(left->file->path, right->file->path);
}

/* "0001_baseline.sql" (optionally under directories) → version "0001", name "baseline". */
static st_code parse_migration(const ess_embedded_file *file, migration *m, st_error *err)
{
    if (file->path == NULL || file->data == NULL)
        return st_fail(err, ST_INVALID, "migration file without a path or data");
    size_t path_len = strnlen(file->path, MIGRATION_PATH_MAX + 1);
    if (path_len > MIGRATION_PATH_MAX)
        return st_fail(err, ST_LIMIT, "migration path longer than %d bytes", MIGRATION_PATH_MAX);
    const char *base = strrchr(file->path, '/');
    base = base != NULL ? base + 1 : file->path;
    size_t base_len = strlen(base);
    size_t digits = 0;
    while (isdigit((unsigned char)base[digits]))
        digits++;
    const char *suffix = ".sql";
    if (digits < 4 || base[digits] != '_' || base_len <= digits + 1 + strlen(suffix) ||
        strcmp(base + base_len - strlen(suffix), suffix) != 0)
        return st_fail(err, ST_INVALID, "migration %.64s is not named NNNN_name.sql", base);
    memcpy(m->version, base, digits);
    m->version[digits] = '\0';
    size_t name_len = base_len - digits - 1 - strlen(suffix);
    memcpy(m->name, base + digits + 1, name_len);
    m->name[name_len] = '\0';
    if (file->len > SCRIPT_MAX || strlen(file->data) != file->len)
        return st_fail(err, ST_INVALID, "migration %s: too large or holds a NUL byte", m->version);

    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (EVP_Digest(file->data, file->len, digest, &digest_len, EVP_sha256(), NULL) != 1)
        return st_fail(err, ST_INTERNAL, "migration %s: SHA-256 failed", m->version);
    for (unsigned int i = 0; i < digest_len; i++)
        snprintf(m->checksum + 2 * i, 3, "%02x", digest[i]);
    m->file = file;
    return ST_OK;
}

static st_code apply_migration(db *d, const migration *m, st_error *err)
{
    st_code rc = db_begin(d, err);
    if (rc != ST_OK)
        return rc;
    rc = db_exec_script(d, m->file->data, err);
    if (rc == ST_OK && PQtransactionStatus(d->conn) != PQTRANS_INTRANS)
        rc = st_fail(err, ST_INVALID, "the file must not end its transaction (COMMIT/ROLLBACK)");
    if (rc == ST_OK) {
        const char *params[] = {m->version, m->name, m->checksum};
        rc = db_exec(d,
                     "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                     3, params, NULL, err);
    }
    if (rc == ST_OK)
        rc = db_commit(d, err);
    else
        db_rollback(d, NULL);
    return rc;
}

st_code db_migrate(db *d, const ess_embedded_file *files, size_t count, int *ret_applied,
                   st_error *err)
{
    st_code rc = ST_OK;
    migration *list = NULL;
    db_result *applied = NULL;
    bool locked = false;
    unsigned locked_generation = 0;
    const char *lock_params[] = {MIGRATION_LOCK_KEY};
    int applied_now = 0;

    if (d == NULL || (files == NULL && count > 0))
        return st_fail(err, ST_INVALID, "db_migrate: handle and files are required");
    if (count > MIGRATIONS_MAX)
        return st_fail(err, ST_LIMIT, "db_migrate: more than %d files", MIGRATIONS_MAX);
    if (d->in_transaction)
        return st_fail(err, ST_INVALID, "db_migrate: not inside a transaction");

    list = calloc(count > 0 ? count : 1, sizeof(*list));
    if (list == NULL)
        return st_fail(err, ST_NOMEM, "out of memory");
    for (size_t i = 0; i < count; i++) {
        rc = parse_migration(&files[i], &list[i], err);
        if (rc != ST_OK)
            goto cleanup;
    }
    qsort(list, count, sizeof(*list), compare_by_path);
    for (size_t i = 1; i < count; i++) {
        if (strcmp(list[i - 1].version, list[i].version) == 0) {
            rc = st_fail(err, ST_INVALID, "two migration files have version %s", list[i].version);
            goto cleanup;
        }
    }

    rc = db_exec(d, "SELECT pg_advisory_lock($1::bigint)", 1, lock_params, NULL, err);
    if (rc != ST_OK) {
        st_wrap(err, "taking the migration lock");
        goto cleanup;
    }
    locked = true;
    locked_generation = d->generation;

    rc = db_exec(d,
                 "CREATE TABLE IF NOT EXISTS schema_migrations ("
                 " version text PRIMARY KEY,"
                 " name text NOT NULL,"
                 " checksum text NOT NULL,"
                 " applied_at timestamptz NOT NULL DEFAULT now())",
                 0, NULL, NULL, err);
    if (rc == ST_OK)
        rc = db_exec(d, "SELECT version, checksum FROM schema_migrations", 0, NULL, &applied, err);
    if (rc != ST_OK) {
        st_wrap(err, "reading schema_migrations");
        goto cleanup;
    }

    for (size_t i = 0; i < count; i++) {
        const migration *m = &list[i];
        const char *applied_checksum = NULL;
        bool is_applied = false;
        for (int row = 0; row < db_result_rows(applied); row++) {
            if (strcmp(db_result_value(applied, row, 0), m->version) == 0) {
                is_applied = true;
                applied_checksum = db_result_value(applied, row, 1);
                break;
            }
        }
        if (is_applied) {
            if (applied_checksum == NULL || strcmp(applied_checksum, m->checksum) != 0) {
                rc = st_fail(err, ST_CONFLICT,
                             "migration %s (%s) was changed after it was applied: its checksum "
                             "differs; migrations are append-only, add a new file instead",
                             m->version, m->name);
                goto cleanup;
            }
            continue;
        }
        rc = apply_migration(d, m, err);
        if (rc == ST_OK && d->generation != locked_generation) {
            /* The connection was reset since the lock was taken: the lock is gone. */
            rc = st_fail(err, ST_UNAVAILABLE, "connection to PostgreSQL lost while migrating");
            st_set_cause(err, "sqlstate 08006");
        }
        if (rc != ST_OK) {
            char what[2 * MIGRATION_PATH_MAX + 16];
            snprintf(what, sizeof(what), "migration %s (%s)", m->version, m->name);
            st_wrap(err, what);
            goto cleanup;
        }
        applied_now++;
    }
    if (ret_applied != NULL)
        *ret_applied = applied_now;

cleanup:
    if (locked && d->generation == locked_generation && PQstatus(d->conn) == CONNECTION_OK) {
        PGresult *res = PQexecParams(d->conn, "SELECT pg_advisory_unlock($1::bigint)", 1, NULL,
                                     lock_params, NULL, NULL, 0);
        PQclear(res);
    }
    db_result_destroy(applied);
    free(list);
    return rc;
}
