/* console_server: the event-loop side of ess-console and its svc hooks.
 *
 * The loop (libs/svc's h2o loop) never waits for PostgreSQL. A request under /api/ is copied
 * into a job (console_request) and queued to a worker pool (console_pool.c): queries to the
 * query workers, exports to the export workers; a full queue answers 429 {"error":"busy"}.
 * The worker runs the API (console_http.c / console_export.c) on its own connection and posts
 * the result back with h2o_multithread (one message per result, or per export chunk); the loop
 * sends it if the client is still there. Other paths are the embedded web files
 * (console_static.c), served on the loop.
 *
 * Timers on the loop: the delayed answer of a failed login and the wait before checking a
 * throttled one (power-of-two h2o timeouts chained to any duration), the event streams'
 * heartbeat, and a minute's housekeeping (touch the sessions of open streams and close those
 * whose session ended; remove expired sessions and old login failures).
 *
 * Event streams (GET /api/events): each open stream has a bounded buffer
 * (ESS_CONSOLE_SSE_BUFFER); h2o takes one write at a time, the rest waits in the buffer; a
 * client whose buffer would overflow is dropped (the browser reconnects and reloads the
 * board) rather than let memory grow. At most ESS_CONSOLE_SSE_MAX_CLIENTS streams (429). */
#ifndef CONSOLE_SERVER_H
#define CONSOLE_SERVER_H

#include "console.h"
#include "svc.h"

struct st_h2o_req_t;

st_code console_init(svc *s, void *closure, st_error *err);
void console_stop(svc *s, void *closure);
void console_fini(svc *s, void *closure);
st_code console_ready(svc *s, void *closure, st_error *err);
/* The route "/": API, exports, event streams, web files. */
int console_route(svc *s, struct st_h2o_req_t *req, void *closure);

#endif
