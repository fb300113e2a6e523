/* console_export: GET /api/export.csv and /api/export.eido, streamed.
 *
 * An export never holds a whole table: it reads CONSOLE_EXPORT_PAGE cases at a time (keyset
 * pages on (reported_at, id), each a short statement of its own, so no transaction stays
 * open while a slow client reads), formats them into one chunk, hands the chunk to the sink
 * and waits until the client took it before reading the next page. Memory is one page and one
 * chunk, whatever the size of the export.
 *
 *   CSV  (every role): anonymous — case_number, category, status, area codes, station,
 *        timestamps, escalation level, outcome; no location, phone or name.
 *   EIDO (commanders, admins; analysts get 404): a JSON array of NENA-EIDO-shaped objects,
 *        one per case, with the timeline as notes; no phone.
 * Both cover the user's area only; ?case=CASE outside it is 404, like a case that does not
 * exist. At most ESS_CONSOLE_EXPORT_MAX_ROWS cases per request (the rest is cut; the
 * X-Ess-Row-Limit header says the bound).
 *
 * Runs on an export worker (blocks on the database and on the sink). */
#ifndef CONSOLE_EXPORT_H
#define CONSOLE_EXPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "console.h"
#include "console_http.h"
#include "db.h"

#define CONSOLE_EXPORT_PAGE 500
#define CONSOLE_EXPORT_EIDO_PAGE 100
#define CONSOLE_EXPORT_DAYS_MAX 3660

/* Where an export goes (console_server.c: to the h2o request through the loop). */
typedef struct console_sink {
    void *closure;
    /* A whole answer instead of a stream (an error before the first byte); ends the sink.
     * Takes resp's body. */
    void (*answer)(void *closure, console_response *resp);
    /* Sends len bytes; the first call sends the head (200, content_type, disposition) too.
     * Blocks until the client took them (data stays the caller's and must stay valid until
     * this returns). False when the client went away or the service stops. */
    bool (*write)(void *closure, const char *content_type, const char *disposition,
                  const char *data, size_t len);
    /* The end: complete (ok) or cut (the client sees a truncated chunked response). */
    void (*finish)(void *closure, bool ok);
} console_sink;

void console_export_run(console_app *app, db *d, const console_request *req, console_sink *sink);

/* Appends value to buf as one CSV field (quoted when it holds , " CR or LF; NULL = empty). */
bool console_csv_field(char **buf, size_t *len, size_t *cap, const char *value, bool last);

#endif
