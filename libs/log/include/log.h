/* log: JSON-lines logging with levels and redaction.
 *
 * One line per event on the configured stream, fixed keys first:
 *   {"ts":"2026-11-30T09:00:00.123Z","level":"error","svc":"ingress","code":"bus.publish",
 *    "msg":"...", "err":"unavailable", "cause":"...", <fields...>}
 * `code` is a stable, greppable identifier of the event ("db.connect", "cfg.invalid").
 * Levels mean something: error = someone must act; warn = it will repair itself;
 * info = a state change worth knowing; debug = for developers.
 *
 * Redaction, in two layers:
 *  - fields declared LOG_PII(...) are never written in clear: they become "~" followed by 12
 *    hex digits of an HMAC-SHA256 under a per-process random key (correlates lines of one
 *    process, reveals nothing);
 *  - every string written (msg, err detail, string fields) is scrubbed: runs that look like
 *    phone numbers (9+ digits, with spaces, dashes, dots or a leading +) and LINE ids
 *    ([UCR] + 32 hex digits) are replaced by "[redacted]".
 * Message bodies, secrets and signatures must never be passed at all.
 *
 * Thread-safe: each line is built in a bounded buffer (LOG_LINE_MAX) and written with one
 * write under a lock. Never blocks on anything but the output stream. */
#ifndef ESS_LOG_H
#define ESS_LOG_H

#include <stdint.h>
#include <stdio.h>

#include "status.h"

#define LOG_LINE_MAX 4096

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

typedef enum log_field_kind {
    LOG_KIND_STR, /* string, scrubbed */
    LOG_KIND_INT, /* int64 */
    LOG_KIND_PII, /* personal data: written as a keyed digest only */
    LOG_KIND_ERR, /* an st_error: adds "err" (code name), "cause" and "detail" */
} log_field_kind;

typedef struct log_field {
    const char *key;
    log_field_kind kind;
    const char *str;      /* STR, PII; borrowed for the call; NULL is written as null */
    int64_t num;          /* INT */
    const st_error *err;  /* ERR; borrowed for the call */
} log_field;

#define LOG_STR(k, v) ((log_field){.key = (k), .kind = LOG_KIND_STR, .str = (v)})
#define LOG_INT(k, v) ((log_field){.key = (k), .kind = LOG_KIND_INT, .num = (int64_t)(v)})
#define LOG_PII(k, v) ((log_field){.key = (k), .kind = LOG_KIND_PII, .str = (v)})
#define LOG_ERR(e) ((log_field){.key = "err", .kind = LOG_KIND_ERR, .err = (e)})

/* Sets the service name written in "svc", the minimum level, and the stream (borrowed until
 * the next log_setup; NULL = stderr). Safe to call again (tests redirect to a memstream). */
void log_setup(const char *service, log_level min_level, FILE *out);

/* Parses "debug" | "info" | "warn" | "error" (case-insensitive). */
st_code log_level_parse(const char *text, log_level *ret_level);
const char *log_level_name(log_level level);

/* True when a line at this level would be written. */
int log_enabled(log_level level);

/* Writes one line. code and msg are required; fields may be NULL when count is 0. */
void log_write(log_level level, const char *code, const char *msg, const log_field *fields,
               size_t count);

/* log_event(LOG_WARN, "bus.reconnect", "reconnected to NATS", LOG_INT("attempt", n)); */
#define log_event(level, code, msg, ...)                                                     \
    log_write((level), (code), (msg), (const log_field[]){{.key = NULL}, __VA_ARGS__} + 1,   \
              sizeof((const log_field[]){{.key = NULL}, __VA_ARGS__}) / sizeof(log_field) - 1)

/* Scrubs personal-data look-alikes from text into out (always NUL-terminated, truncated to
 * out_size). Exposed for other writers of operator-facing text (error bodies, metrics). */
void log_scrub(const char *text, char *out, size_t out_size);

#endif
