/* status: the one error vocabulary of ESS.
 *
 * Every function that can fail returns an st_code; results go through out-parameters placed
 * last (ret_...) and are left untouched on failure. A function that can say more fills an
 * optional st_error (NULL is accepted everywhere). Libraries fill st_error and return;
 * services decide and log once (see log.h). */
#ifndef ESS_STATUS_H
#define ESS_STATUS_H

#include <stdarg.h>
#include <stddef.h>

typedef enum st_code {
    ST_OK = 0,
    ST_INVALID,     /* malformed input or a broken precondition of the caller */
    ST_LIMIT,       /* input exceeded a configured bound (size, count, depth) */
    ST_NOMEM,       /* allocation failed */
    ST_NOT_FOUND,   /* the thing asked for does not exist */
    ST_CONFLICT,    /* already exists / already done (duplicate msg-id, unique key) */
    ST_UNAVAILABLE, /* a dependency is down or not ready: retrying later may succeed */
    ST_TIMEOUT,     /* a bounded wait ran out: retrying later may succeed */
    ST_IO,          /* an operating-system call failed */
    ST_INTERNAL,    /* a bug or an unexpected answer from a dependency */
} st_code;

#define ST_CAUSE_MAX 24
#define ST_MESSAGE_MAX 232

/* Detail of the last failure. Embedded by value; no heap. The message is for operators: it
 * must never contain personal data, secrets or message bodies. */
typedef struct st_error {
    st_code code;
    char cause[ST_CAUSE_MAX];     /* dependency's own code: "sqlstate 23505", "nats 12", "" */
    char message[ST_MESSAGE_MAX]; /* human sentence, truncated to fit */
} st_error;

/* Stable lower-case name of a code ("ok", "invalid", ...). Static storage. */
const char *st_name(st_code code);

/* Fills err (if not NULL) with code and a printf-style message; returns code, so that
 * `return st_fail(err, ST_INVALID, "...")` reads naturally. Clears cause. */
st_code st_fail(st_error *err, st_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
st_code st_vfail(st_error *err, st_code code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Sets the dependency's own code on an already-filled err (printf-style). err may be NULL. */
void st_set_cause(st_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes err->message with "what: " (keeps truncation safe). err may be NULL. */
void st_wrap(st_error *err, const char *what);

/* Resets err to ST_OK with empty texts. err may be NULL. */
void st_clear(st_error *err);

/* True for codes where the same call may succeed later (ST_UNAVAILABLE, ST_TIMEOUT, ST_IO). */
int st_is_transient(st_code code);

#endif
