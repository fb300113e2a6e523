/* console_http: the JSON API (services/console/README.md, section API),
 * as plain functions: a parsed request in, a response out. They run on a query worker with
 * its own PostgreSQL connection (console_server.c moves requests and answers between the
 * event loop and the workers), so they may block on the database; they never touch h2o.
 *
 * Order of checks for every route: the route and its method (404 / 405), the session
 * (401 unauthenticated), the CSRF token for POST (403 csrf), the role (analyst: 404 for case
 * routes, 403 for the event stream), the input (400), then the object's area (404). */
#ifndef CONSOLE_HTTP_H
#define CONSOLE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "console.h"
#include "console_auth.h"
#include "console_parse.h"
#include "db.h"

#define CONSOLE_PATH_MAX 256
#define CONSOLE_PEER_MAX 64
#define CONSOLE_ETAG_MAX 64
#define CONSOLE_SESSION_COOKIE "ess_session"

/* What the loop took from an HTTP request (copied: the worker never sees h2o's memory). */
typedef struct console_request {
    char method[8];
    char path[CONSOLE_PATH_MAX];             /* normalised, without the query */
    char query[CONSOLE_QUERY_MAX + 1];       /* after '?', "" when none */
    size_t query_len;
    char session_token[CONSOLE_TOKEN_TEXT];  /* the ess_session cookie, "" when none/invalid */
    char csrf_token[CONSOLE_TOKEN_TEXT];     /* X-CSRF-Token, "" when none/invalid */
    bool json_body;                          /* Content-Type: application/json */
    bool https;                              /* X-Forwarded-Proto: https */
    char if_none_match[CONSOLE_ETAG_MAX];
    char peer[CONSOLE_PEER_MAX];             /* client address, numeric */
    char *body;                              /* heap copy (wiped and freed with the job) */
    size_t body_len;
} console_request;

typedef enum console_reply_kind {
    CONSOLE_REPLY_NOW,     /* send the response */
    CONSOLE_REPLY_LATER,   /* send the response after delay_ms (a failed login) */
    CONSOLE_REPLY_AGAIN,   /* wait delay_ms, then handle the request again at next_phase */
    CONSOLE_REPLY_EVENTS,  /* open the event stream for session / case_filter */
} console_reply_kind;

typedef struct console_response {
    console_reply_kind kind;
    int status;
    const char *content_type;                /* static text */
    char *body;                              /* heap, NULL for none */
    size_t body_len;
    char set_cookie[256];
    char etag[CONSOLE_ETAG_MAX];
    char disposition[192];                   /* Content-Disposition, "" for none */
    const char *allow;                       /* Allow of a 405 */
    int64_t delay_ms;
    int next_phase;
    /* CONSOLE_REPLY_EVENTS: who listens, and to which case ("" = every case they see) */
    console_session session;
    char case_filter[CONSOLE_CASE_MAX];
    /* logout: streams of this session end too */
    bool session_ended;
    unsigned char ended_token_hash[32];
} console_response;

/* Handles one API request (path under /api/, exports excepted) at phase (0 first; a login
 * comes back at 1 after its wait). Fills resp (zeroed by the caller). */
void console_http_handle(console_app *app, db *d, const console_request *req, int phase,
                         console_response *resp);

/* True when req is one of the streamed exports (handled by console_export_run). */
bool console_http_is_export(const char *path);

/* The session of req; false with resp filled (401, or 503 when the database failed). */
bool console_http_authenticate(console_app *app, db *d, const console_request *req,
                               console_session *ret_session, console_response *resp);

/* Error answer {"error":code,"message":message}. */
void console_response_error(console_response *resp, int status, const char *code,
                            const char *message);
/* JSON answer; deletes root. */
void console_response_json(console_response *resp, int status, cJSON *root);
/* Frees the body (wiped first: it may hold a phone number). */
void console_response_done(console_response *resp);

/* Set-Cookie value for a session token ("" token: the clearing cookie). */
void console_session_cookie(const console_app *app, const console_request *req,
                            const char *token, char *out, size_t out_size);

#endif
