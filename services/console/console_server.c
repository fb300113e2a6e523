/* console_server: the event loop's side of ess-console. See console_server.h.
 *
 * Who owns a job: the pool from submit until a worker posts its final message; then the loop,
 * which frees it after answering (or after a delay timer ran out). Nothing else frees a job: a
 * client that goes away only unhooks the request (request_link) and cancels the job, and the
 * job comes back to the loop as usual. A streamed export posts two kinds of message through
 * two separate message slots — chunks (one in flight at a time: the worker waits until the
 * client took it) and the final one — and the loop's queue is first-in first-out, so the final
 * message is always the last the loop sees of a job. */
#include "console_server.h"

#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <h2o.h>
#include <openssl/crypto.h>

#include "console_export.h"
#include "console_http.h"
#include "console_live.h"
#include "console_pool.h"
#include "console_static.h"
#include "log.h"

#define DELAY_LEVELS 16                /* 1 ms .. 32 s, powers of two */
#define HOUSEKEEPING_MS 60000
#define SWEEP_EVERY 10                 /* housekeeping rounds between sweeps */
#define STREAM_RETRY "retry: 2000\n\n"
#define CSP "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
#define JSON_TYPE "application/json; charset=utf-8"

typedef enum message_type { MSG_JOB_CHUNK, MSG_JOB_FINAL, MSG_LIVE } message_type;

typedef struct loop_message {
    h2o_multithread_message_t super;
    message_type type;
} loop_message;

typedef enum job_kind { JOB_API, JOB_EXPORT, JOB_TOUCH, JOB_SWEEP } job_kind;
typedef enum job_end { END_ANSWER, END_STREAM_DONE, END_STREAM_CUT } job_end;

typedef struct request_link request_link;
typedef struct console_job console_job;

struct console_job {
    loop_message chunk_message;
    loop_message final_message;
    console_server *server;
    job_kind kind;
    int phase;
    console_request request;
    console_response response;
    request_link *link; /* loop thread only; NULL once the request is gone */
    h2o_timeout_entry_t delay_entry;
    int64_t delay_deadline_ms;
    /* export streaming */
    h2o_generator_t generator;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool cancelled; /* lock: the client went away, or the service stops */
    bool taken;     /* lock: the client took the last chunk */
    const char *chunk;
    size_t chunk_len;
    const char *stream_type;
    char stream_disposition[192];
    bool stream_started; /* loop only */
    job_end end;
    console_job *next_active; /* server->active_lock: exports running on a worker */
    /* housekeeping: the sessions of open streams, and which are still alive */
    unsigned char (*hashes)[32];
    bool *alive;
    size_t hash_count;
};

/* In the request's pool: the request's side of a job (NULL job: the job is finished). */
struct request_link {
    console_job *job;
    h2o_req_t *req;
};

typedef struct sse_stream {
    h2o_generator_t generator; /* first: h2o hands it back */
    console_server *server;
    h2o_req_t *req;
    h2o_linklist_t link; /* in server->streams while it may receive events */
    console_user user;
    char case_filter[CONSOLE_CASE_MAX];
    unsigned char session_hash[32];
    int64_t expires_unix_ms;
    char *sending; /* in flight until proceed */
    size_t sending_len, sending_cap;
    char *pending; /* what waits for the next write */
    size_t pending_len, pending_cap;
    bool in_flight, closing, finished;
} sse_stream;

typedef struct live_event {
    loop_message message;
    char case_number[CONSOLE_CASE_MAX];
    char province[CONSOLE_AREA_MAX];
    char *json;
} live_event;

struct console_server {
    console_app *app;
    svc *svc;
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    console_pool *queries, *exports;
    h2o_linklist_t streams;
    size_t stream_count;
    h2o_timeout_t delays[DELAY_LEVELS];
    h2o_timeout_t heartbeat;
    h2o_timeout_entry_t heartbeat_entry;
    h2o_timeout_t housekeeping;
    h2o_timeout_entry_t housekeeping_entry;
    int housekeeping_rounds;
    bool touch_pending;
    atomic_bool stopping;
    pthread_mutex_t active_lock;
    console_job *active_exports;
};

static console_server server_instance;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- answers ----------------------------------------------------------------------------- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    default: return "Service Unavailable";
    }
}

/* h2o keeps pointers to header values until the head is written: copied into the request's
 * pool, so a value from the stack or a job that is freed first stays valid. */
static void add_header(h2o_req_t *req, const h2o_token_t *token, const char *value)
{
    h2o_iovec_t copy = h2o_strdup(&req->pool, value, strlen(value));
    h2o_add_header(&req->pool, &req->res.headers, token, NULL, copy.base, copy.len);
}

static void add_header_by_name(h2o_req_t *req, const char *name, const char *value)
{
    h2o_iovec_t copy = h2o_strdup(&req->pool, value, strlen(value));
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, copy.base,
                          copy.len);
}

/* Headers every answer of the console carries. */
static void add_common_headers(h2o_req_t *req, const char *cache_control)
{
    add_header(req, H2O_TOKEN_CACHE_CONTROL, cache_control);
    add_header_by_name(req, "x-content-type-options", "nosniff");
    add_header_by_name(req, "content-security-policy", CSP);
    add_header_by_name(req, "referrer-policy", "no-referrer");
    add_header_by_name(req, "x-frame-options", "DENY");
}

/* Sends a whole answer (body copied into the request's pool). */
static void send_answer(h2o_req_t *req, const console_response *resp)
{
    req->res.status = resp->status;
    req->res.reason = reason_phrase(resp->status);
    add_common_headers(req, "no-store");
    if (resp->content_type != NULL && resp->status != 204 && resp->status != 304)
        add_header(req, H2O_TOKEN_CONTENT_TYPE, resp->content_type);
    if (resp->set_cookie[0] != '\0')
        add_header(req, H2O_TOKEN_SET_COOKIE, resp->set_cookie);
    if (resp->etag[0] != '\0')
        add_header(req, H2O_TOKEN_ETAG, resp->etag);
    if (resp->disposition[0] != '\0')
        add_header(req, H2O_TOKEN_CONTENT_DISPOSITION, resp->disposition);
    if (resp->allow != NULL)
        add_header(req, H2O_TOKEN_ALLOW, resp->allow);
    size_t len = resp->status == 204 || resp->status == 304 ? 0 : resp->body_len;
    /* A length on every answer: h2o 2.2 closes the connection after a non-200 without one. */
    req->res.content_length = len;
    h2o_send_inline(req, len > 0 ? resp->body : "", len);
}

static void send_error(h2o_req_t *req, int status, const char *code, const char *message)
{
    console_response resp = {0};
    console_response_error(&resp, status, code, message);
    send_answer(req, &resp);
    console_response_done(&resp);
}

/* ---- jobs -------------------------------------------------------------------------------- */

static void on_link_dispose(void *data)
{
    request_link *link = data;
    console_job *job = link->job;
    if (job == NULL)
        return;
    job->link = NULL;
    pthread_mutex_lock(&job->lock);
    job->cancelled = true;
    pthread_cond_broadcast(&job->cond);
    pthread_mutex_unlock(&job->lock);
}

/* The request behind a job (loop thread), or NULL when it went away. */
static h2o_req_t *job_req(console_job *job)
{
    return job->link != NULL ? job->link->req : NULL;
}

static console_job *job_create(console_server *server, job_kind kind)
{
    console_job *job = calloc(1, sizeof(*job));
    if (job == NULL)
        return NULL;
    job->server = server;
    job->kind = kind;
    job->chunk_message.type = MSG_JOB_CHUNK;
    job->final_message.type = MSG_JOB_FINAL;
    pthread_mutex_init(&job->lock, NULL);
    pthread_cond_init(&job->cond, NULL);
    return job;
}

/* Loop thread. */
static void job_free(console_job *job)
{
    if (job == NULL)
        return;
    if (h2o_timeout_is_linked(&job->delay_entry))
        h2o_timeout_unlink(&job->delay_entry);
    if (job->link != NULL)
        job->link->job = NULL;
    console_response_done(&job->response);
    if (job->request.body != NULL) {
        OPENSSL_cleanse(job->request.body, job->request.body_len);
        free(job->request.body);
    }
    free(job->hashes);
    free(job->alive);
    pthread_mutex_destroy(&job->lock);
    pthread_cond_destroy(&job->cond);
    free(job);
}

/* Worker thread: hands the job back to the loop for good. */
static void post_final(console_job *job)
{
    h2o_multithread_send_message(&job->server->receiver, &job->final_message.super);
}

/* ---- delays on the loop ------------------------------------------------------------------ */

static void job_delay_done(console_job *job);

static void arm_delay(console_server *server, console_job *job)
{
    int64_t remaining = job->delay_deadline_ms - now_ms();
    if (remaining <= 0) {
        job_delay_done(job);
        return;
    }
    int level = 0;
    while (level + 1 < DELAY_LEVELS && (INT64_C(1) << (level + 1)) <= remaining)
        level++;
    h2o_timeout_link(server->loop, &server->delays[level], &job->delay_entry);
}

static void on_delay(h2o_timeout_entry_t *entry)
{
    console_job *job = H2O_STRUCT_FROM_MEMBER(console_job, delay_entry, entry);
    arm_delay(job->server, job);
}

static void delay_job(console_server *server, console_job *job, int64_t ms)
{
    job->delay_entry.cb = on_delay;
    job->delay_deadline_ms = now_ms() + ms;
    arm_delay(server, job);
}

/* ---- event streams ----------------------------------------------------------------------- */

static void stream_flush(sse_stream *stream);

static void stream_unlist(sse_stream *stream)
{
    if (h2o_linklist_is_linked(&stream->link))
        h2o_linklist_unlink(&stream->link);
}

static void on_stream_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    (void)req;
    sse_stream *stream = (sse_stream *)generator;
    stream->in_flight = false;
    stream_flush(stream);
}

static void on_stream_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    (void)req;
    sse_stream *stream = (sse_stream *)generator;
    stream->finished = true;
    stream->in_flight = false;
    stream_unlist(stream);
}

static void on_stream_dispose(void *data)
{
    sse_stream *stream = data;
    console_server *server = stream->server;
    stream_unlist(stream);
    free(stream->sending);
    free(stream->pending);
    stream->sending = stream->pending = NULL;
    server->stream_count--;
    met_gauge_set(server->app->metrics.sse_clients, (int64_t)server->stream_count);
}

static void stream_flush(sse_stream *stream)
{
    if (stream->in_flight || stream->finished)
        return;
    if (stream->pending_len == 0) {
        if (stream->closing) {
            stream->finished = true;
            stream_unlist(stream);
            h2o_send(stream->req, NULL, 0, H2O_SEND_STATE_FINAL);
        }
        return;
    }
    /* The buffer in flight must stay untouched until proceed: swap the two. */
    char *buffer = stream->sending;
    size_t cap = stream->sending_cap;
    stream->sending = stream->pending;
    stream->sending_cap = stream->pending_cap;
    stream->sending_len = stream->pending_len;
    stream->pending = buffer;
    stream->pending_cap = cap;
    stream->pending_len = 0;
    stream->in_flight = true;
    h2o_iovec_t buf = h2o_iovec_init(stream->sending, stream->sending_len);
    h2o_send(stream->req, &buf, 1, H2O_SEND_STATE_IN_PROGRESS);
}

static void stream_close(sse_stream *stream)
{
    stream->closing = true;
    stream_unlist(stream);
    stream_flush(stream);
}

/* Appends text; a stream whose buffer would pass the bound is dropped. */
static void stream_write(console_server *server, sse_stream *stream, const char *text,
                         size_t len)
{
    if (stream->closing || stream->finished)
        return;
    size_t bound = (size_t)server->app->config.sse_buffer_bytes;
    if (stream->pending_len + len > bound) {
        met_counter_add(server->app->metrics.sse_dropped, 1);
        log_event(LOG_INFO, "console.sse_drop", "a slow event-stream client was dropped",
                  LOG_STR("user", stream->user.name));
        stream->pending_len = 0;
        stream_close(stream);
        return;
    }
    if (stream->pending_len + len > stream->pending_cap) {
        size_t cap = stream->pending_cap > 0 ? stream->pending_cap : 4096;
        while (cap < stream->pending_len + len)
            cap *= 2;
        if (cap > bound)
            cap = bound;
        char *grown = realloc(stream->pending, cap);
        if (grown == NULL) {
            stream_close(stream);
            return;
        }
        stream->pending = grown;
        stream->pending_cap = cap;
    }
    memcpy(stream->pending + stream->pending_len, text, len);
    stream->pending_len += len;
    stream_flush(stream);
}

static void open_stream(console_server *server, h2o_req_t *req, const console_response *resp)
{
    if (server->stream_count >= (size_t)server->app->config.sse_max_clients) {
        send_error(req, 429, "too_many_streams", "too many open event streams; try again later");
        return;
    }
    sse_stream *stream = h2o_mem_alloc_shared(&req->pool, sizeof(*stream), on_stream_dispose);
    memset(stream, 0, sizeof(*stream));
    stream->generator.proceed = on_stream_proceed;
    stream->generator.stop = on_stream_stop;
    stream->server = server;
    stream->req = req;
    stream->user = resp->session.user;
    memcpy(stream->case_filter, resp->case_filter, sizeof(stream->case_filter));
    memcpy(stream->session_hash, resp->session.token_hash, sizeof(stream->session_hash));
    stream->expires_unix_ms = resp->session.expires_unix_ms;
    server->stream_count++;
    met_gauge_set(server->app->metrics.sse_clients, (int64_t)server->stream_count);
    h2o_linklist_insert(&server->streams, &stream->link);

    req->res.status = 200;
    req->res.reason = "OK";
    add_common_headers(req, "no-store");
    add_header(req, H2O_TOKEN_CONTENT_TYPE, "text/event-stream; charset=utf-8");
    add_header_by_name(req, "x-accel-buffering", "no");
    h2o_start_response(req, &stream->generator);
    stream_write(server, stream, STREAM_RETRY, sizeof(STREAM_RETRY) - 1);
}

static void close_streams_of_session(console_server *server, const unsigned char hash[32])
{
    h2o_linklist_t *node = server->streams.next;
    while (node != &server->streams) {
        h2o_linklist_t *next = node->next;
        sse_stream *stream = H2O_STRUCT_FROM_MEMBER(sse_stream, link, node);
        if (memcmp(stream->session_hash, hash, 32) == 0)
            stream_close(stream);
        node = next;
    }
}

static void on_live_event(console_server *server, live_event *event)
{
    if (atomic_load(&server->stopping))
        return;
    size_t json_len = strlen(event->json);
    size_t len = json_len + 32;
    char *text = malloc(len);
    if (text == NULL)
        return;
    int n = snprintf(text, len, "event: case\ndata: %s\n\n", event->json);
    h2o_linklist_t *node = server->streams.next;
    while (node != &server->streams) {
        h2o_linklist_t *next = node->next;
        sse_stream *stream = H2O_STRUCT_FROM_MEMBER(sse_stream, link, node);
        bool wanted = (stream->case_filter[0] == '\0' ||
                       strcmp(stream->case_filter, event->case_number) == 0) &&
                      console_user_sees_cases(&stream->user) &&
                      console_user_sees_province(&stream->user, event->province[0] != '\0'
                                                                    ? event->province
                                                                    : NULL);
        if (wanted) {
            stream_write(server, stream, text, (size_t)n);
            met_counter_add(server->app->metrics.sse_events, 1);
        }
        node = next;
    }
    free(text);
}

static void on_heartbeat(h2o_timeout_entry_t *entry)
{
    console_server *server = H2O_STRUCT_FROM_MEMBER(console_server, heartbeat_entry, entry);
    static const char ping[] = ": ping\n\n";
    int64_t now = unix_ms();
    h2o_linklist_t *node = server->streams.next;
    while (node != &server->streams) {
        h2o_linklist_t *next = node->next;
        sse_stream *stream = H2O_STRUCT_FROM_MEMBER(sse_stream, link, node);
        if (stream->expires_unix_ms > 0 && stream->expires_unix_ms <= now)
            stream_close(stream); /* the session's lifetime is over */
        else
            stream_write(server, stream, ping, sizeof(ping) - 1);
        node = next;
    }
    if (!atomic_load(&server->stopping))
        h2o_timeout_link(server->loop, &server->heartbeat, &server->heartbeat_entry);
}

/* ---- job results on the loop ------------------------------------------------------------- */

static void submit(console_server *server, console_job *job, h2o_req_t *req);

static void job_delay_done(console_job *job)
{
    console_server *server = job->server;
    h2o_req_t *req = job_req(job);
    if (req == NULL) {
        job_free(job);
        return;
    }
    if (job->response.kind == CONSOLE_REPLY_AGAIN) {
        job->phase = job->response.next_phase;
        console_response_done(&job->response);
        memset(&job->response, 0, sizeof(job->response));
        submit(server, job, NULL);
        return;
    }
    send_answer(req, &job->response);
    job_free(job);
}

static void on_api_final(console_server *server, console_job *job)
{
    h2o_req_t *req = job_req(job);
    console_response *resp = &job->response;
    if (resp->session_ended)
        close_streams_of_session(server, resp->ended_token_hash);
    if (req == NULL) {
        job_free(job);
        return;
    }
    switch (resp->kind) {
    case CONSOLE_REPLY_LATER:
    case CONSOLE_REPLY_AGAIN:
        delay_job(server, job, resp->delay_ms);
        return;
    case CONSOLE_REPLY_EVENTS:
        if (atomic_load(&server->stopping))
            send_error(req, 503, "unavailable", "the console is stopping");
        else
            open_stream(server, req, resp);
        break;
    case CONSOLE_REPLY_NOW:
        send_answer(req, resp);
        break;
    }
    job_free(job);
}

static void on_export_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    (void)req;
    console_job *job = H2O_STRUCT_FROM_MEMBER(console_job, generator, generator);
    pthread_mutex_lock(&job->lock);
    job->cancelled = true;
    pthread_cond_broadcast(&job->cond);
    pthread_mutex_unlock(&job->lock);
}

static void on_export_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    (void)req;
    console_job *job = H2O_STRUCT_FROM_MEMBER(console_job, generator, generator);
    pthread_mutex_lock(&job->lock);
    job->taken = true;
    pthread_cond_broadcast(&job->cond);
    pthread_mutex_unlock(&job->lock);
}

static void start_export_response(console_server *server, console_job *job, h2o_req_t *req)
{
    char limit[32];
    snprintf(limit, sizeof(limit), "%lld", (long long)server->app->config.export_max_rows);
    req->res.status = 200;
    req->res.reason = "OK";
    add_common_headers(req, "no-store");
    add_header(req, H2O_TOKEN_CONTENT_TYPE, job->stream_type);
    add_header(req, H2O_TOKEN_CONTENT_DISPOSITION, job->stream_disposition);
    add_header_by_name(req, "x-ess-row-limit", limit);
    job->generator.proceed = on_export_proceed;
    job->generator.stop = on_export_stop;
    h2o_start_response(req, &job->generator);
    job->stream_started = true;
}

static void on_export_chunk(console_server *server, console_job *job)
{
    h2o_req_t *req = job_req(job);
    bool cancelled = atomic_load(&server->stopping);
    pthread_mutex_lock(&job->lock);
    cancelled = cancelled || job->cancelled || req == NULL;
    if (cancelled) {
        job->cancelled = true;
        pthread_cond_broadcast(&job->cond);
    }
    pthread_mutex_unlock(&job->lock);
    if (cancelled)
        return;
    if (!job->stream_started)
        start_export_response(server, job, req);
    h2o_iovec_t buf = h2o_iovec_init(job->chunk, job->chunk_len);
    h2o_send(req, &buf, 1, H2O_SEND_STATE_IN_PROGRESS);
}

static void on_export_final(console_server *server, console_job *job)
{
    h2o_req_t *req = job_req(job);
    if (req != NULL) {
        switch (job->end) {
        case END_ANSWER:
            send_answer(req, &job->response);
            break;
        case END_STREAM_DONE:
            if (!job->stream_started)
                start_export_response(server, job, req);
            h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
            break;
        case END_STREAM_CUT:
            if (job->stream_started)
                h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
            else
                send_error(req, 503, "unavailable", "the export failed; try again");
            break;
        }
    }
    job_free(job);
}

static void on_touch_final(console_server *server, console_job *job)
{
    server->touch_pending = false;
    for (size_t i = 0; job->alive != NULL && i < job->hash_count; i++)
        if (!job->alive[i])
            close_streams_of_session(server, job->hashes[i]);
    job_free(job);
}

static void on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    console_server *server = H2O_STRUCT_FROM_MEMBER(console_server, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *message =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&message->link);
        loop_message *m = (loop_message *)message;
        if (m->type == MSG_LIVE) {
            live_event *event = (live_event *)m;
            on_live_event(server, event);
            free(event->json);
            free(event);
            continue;
        }
        console_job *job = m->type == MSG_JOB_CHUNK
                               ? H2O_STRUCT_FROM_MEMBER(console_job, chunk_message, m)
                               : H2O_STRUCT_FROM_MEMBER(console_job, final_message, m);
        if (m->type == MSG_JOB_CHUNK) {
            on_export_chunk(server, job);
            continue;
        }
        switch (job->kind) {
        case JOB_API: on_api_final(server, job); break;
        case JOB_EXPORT: on_export_final(server, job); break;
        case JOB_TOUCH: on_touch_final(server, job); break;
        case JOB_SWEEP: job_free(job); break;
        }
    }
}

/* ---- workers ----------------------------------------------------------------------------- */

static void touch_sessions(console_job *job, db *d)
{
    /* '{"\\x…","\\x…"}': a bytea[] literal of the sessions of open streams. */
    size_t cap = job->hash_count * 72 + 4;
    char *array = malloc(cap);
    job->alive = calloc(job->hash_count, sizeof(bool));
    if (array == NULL || job->alive == NULL) {
        free(array);
        return;
    }
    size_t used = 0;
    array[used++] = '{';
    for (size_t i = 0; i < job->hash_count; i++) {
        char hex[65];
        vault_hex(job->hashes[i], 32, hex);
        used += (size_t)snprintf(array + used, cap - used, "%s\"\\\\x%s\"", i > 0 ? "," : "", hex);
    }
    snprintf(array + used, cap - used, "}");
    const char *params[] = {array};
    db_result *r = NULL;
    st_error err = {0};
    st_code status = db_exec(d,
                             "UPDATE console_sessions SET last_seen_at = now() "
                             "WHERE token_hash = ANY($1::bytea[]) AND expires_at > now() "
                             "RETURNING encode(token_hash, 'hex')",
                             1, params, &r, &err);
    if (status != ST_OK) {
        /* Unknown: keep every stream open this round. */
        for (size_t i = 0; i < job->hash_count; i++)
            job->alive[i] = true;
    } else {
        for (int row = 0; row < db_result_rows(r); row++) {
            const char *hex = db_result_value(r, row, 0);
            for (size_t i = 0; i < job->hash_count; i++) {
                char mine[65];
                vault_hex(job->hashes[i], 32, mine);
                if (strcmp(mine, hex) == 0)
                    job->alive[i] = true;
            }
        }
    }
    db_result_destroy(r);
    free(array);
}

static void run_query_job(void *item, db *d, void *closure)
{
    console_job *job = item;
    console_app *app = closure;
    int64_t started = now_ms();
    switch (job->kind) {
    case JOB_API:
        console_http_handle(app, d, &job->request, job->phase, &job->response);
        met_histogram_observe(app->metrics.query_seconds, (double)(now_ms() - started) / 1000.0);
        break;
    case JOB_TOUCH:
        touch_sessions(job, d);
        break;
    case JOB_SWEEP: {
        st_error err = {0};
        int64_t removed = 0;
        if (console_auth_sweep(d, app->config.session_idle_ms, app->config.login_window_ms,
                               &removed, &err) != ST_OK)
            log_event(LOG_WARN, "console.sweep", "cannot remove expired sessions",
                      LOG_ERR(&err));
        break;
    }
    case JOB_EXPORT:
        break;
    }
    post_final(job);
}

/* The sink of an export: the worker's side of the chunk handshake. */
static void sink_answer(void *closure, console_response *resp)
{
    console_job *job = closure;
    job->response = *resp;
    memset(resp, 0, sizeof(*resp)); /* the job owns the body now */
    job->end = END_ANSWER;
}

static bool sink_write(void *closure, const char *content_type, const char *disposition,
                       const char *data, size_t len)
{
    console_job *job = closure;
    console_server *server = job->server;
    pthread_mutex_lock(&job->lock);
    bool cancelled = job->cancelled || atomic_load(&server->stopping);
    if (!cancelled) {
        job->chunk = data;
        job->chunk_len = len;
        job->stream_type = content_type;
        snprintf(job->stream_disposition, sizeof(job->stream_disposition), "%s", disposition);
        job->taken = false;
    }
    pthread_mutex_unlock(&job->lock);
    if (cancelled)
        return false;
    h2o_multithread_send_message(&server->receiver, &job->chunk_message.super);
    /* Until the client took the chunk (h2o reads it until then) or the request is gone: a
     * stop does not end this wait, console_fini cancels what is left. */
    pthread_mutex_lock(&job->lock);
    while (!job->taken && !job->cancelled)
        pthread_cond_wait(&job->cond, &job->lock);
    bool ok = job->taken && !job->cancelled;
    pthread_mutex_unlock(&job->lock);
    return ok;
}

static void sink_finish(void *closure, bool ok)
{
    console_job *job = closure;
    job->end = ok ? END_STREAM_DONE : END_STREAM_CUT;
}

static void run_export_job(void *item, db *d, void *closure)
{
    console_job *job = item;
    console_app *app = closure;
    console_sink sink = {.closure = job,
                         .answer = sink_answer,
                         .write = sink_write,
                         .finish = sink_finish};
    console_server *server = job->server;
    job->end = END_STREAM_CUT;
    pthread_mutex_lock(&server->active_lock);
    job->next_active = server->active_exports;
    server->active_exports = job;
    pthread_mutex_unlock(&server->active_lock);
    console_export_run(app, d, &job->request, &sink);
    pthread_mutex_lock(&server->active_lock);
    for (console_job **link = &server->active_exports; *link != NULL;
         link = &(*link)->next_active) {
        if (*link == job) {
            *link = job->next_active;
            break;
        }
    }
    pthread_mutex_unlock(&server->active_lock);
    post_final(job);
}

/* ---- requests ---------------------------------------------------------------------------- */

/* Queues job for a worker; req is the request when the job is new (NULL when it comes back
 * from a delay). Answers 429 / 503 and frees the job when it cannot be queued. */
static void submit(console_server *server, console_job *job, h2o_req_t *req)
{
    if (req != NULL) {
        request_link *link = h2o_mem_alloc_shared(&req->pool, sizeof(*link), on_link_dispose);
        link->job = job;
        link->req = req;
        job->link = link;
    }
    console_pool *pool = job->kind == JOB_EXPORT ? server->exports : server->queries;
    st_code status = console_pool_submit(pool, job);
    if (status == ST_OK)
        return;
    h2o_req_t *target = job_req(job);
    if (target != NULL) {
        if (status == ST_LIMIT) {
            met_counter_add(server->app->metrics.requests_rejected, 1);
            send_error(target, 429, "busy", "the console is busy; try again in a moment");
        } else {
            send_error(target, 503, "unavailable", "the console is stopping");
        }
    }
    job_free(job);
}

static bool header_value(h2o_req_t *req, const char *name, h2o_iovec_t *ret_value)
{
    ssize_t index = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (index < 0)
        return false;
    *ret_value = req->headers.entries[index].value;
    return true;
}

static bool token_header(h2o_iovec_t value, char *out)
{
    if (value.len != CONSOLE_TOKEN_TEXT - 1)
        return false;
    memcpy(out, value.base, value.len);
    out[value.len] = '\0';
    if (!console_token_text_valid(out)) {
        out[0] = '\0';
        return false;
    }
    return true;
}

/* The client's address: the socket peer, or with ESS_CONSOLE_TRUST_PROXY the last address of
 * X-Forwarded-For (the one the proxy in front of us added). */
static void peer_address(console_server *server, h2o_req_t *req, char *out, size_t out_size)
{
    h2o_iovec_t forwarded;
    if (server->app->config.trust_proxy && header_value(req, "x-forwarded-for", &forwarded)) {
        size_t end = forwarded.len, start = end;
        while (start > 0 && forwarded.base[start - 1] != ',')
            start--;
        while (start < end && forwarded.base[start] == ' ')
            start++;
        while (end > start && forwarded.base[end - 1] == ' ')
            end--;
        if (end > start && end - start < out_size) {
            memcpy(out, forwarded.base + start, end - start);
            out[end - start] = '\0';
            return;
        }
    }
    struct sockaddr_storage address;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&address);
    if (len == 0 || getnameinfo((struct sockaddr *)&address, len, out, (socklen_t)out_size, NULL,
                                0, NI_NUMERICHOST) != 0)
        snprintf(out, out_size, "unknown");
}

static bool media_type_is_json(h2o_iovec_t value)
{
    static const char json[] = "application/json";
    size_t len = sizeof(json) - 1;
    if (value.len < len)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = value.base[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != json[i])
            return false;
    }
    return value.len == len || value.base[len] == ';' || value.base[len] == ' ';
}

/* Copies what the workers need from req into job->request; false after answering 4xx. */
static bool capture(console_server *server, h2o_req_t *req, console_request *out)
{
    if (req->method.len >= sizeof(out->method) || req->path_normalized.len >= CONSOLE_PATH_MAX) {
        send_error(req, 400, "bad_request", "request line too long");
        return false;
    }
    memcpy(out->method, req->method.base, req->method.len);
    out->method[req->method.len] = '\0';
    memcpy(out->path, req->path_normalized.base, req->path_normalized.len);
    out->path[req->path_normalized.len] = '\0';
    if (req->query_at != SIZE_MAX) {
        size_t len = req->path.len - req->query_at - 1;
        if (len > CONSOLE_QUERY_MAX) {
            send_error(req, 400, "bad_request", "query string too long");
            return false;
        }
        memcpy(out->query, req->path.base + req->query_at + 1, len);
        out->query[len] = '\0';
        out->query_len = len;
    }
    /* Every Cookie header; the first ess_session wins. */
    for (ssize_t index = -1;
         (index = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, index)) != -1;) {
        h2o_iovec_t value = req->headers.entries[index].value;
        char token[CONSOLE_TOKEN_TEXT + 1];
        if (console_cookie_value(value.base, value.len, CONSOLE_SESSION_COOKIE, token,
                                 sizeof(token)) == ST_OK &&
            console_token_text_valid(token)) {
            memcpy(out->session_token, token, CONSOLE_TOKEN_TEXT);
            break;
        }
    }
    h2o_iovec_t value;
    if (header_value(req, "x-csrf-token", &value))
        token_header(value, out->csrf_token);
    ssize_t type = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    out->json_body = type >= 0 && media_type_is_json(req->headers.entries[type].value);
    if (header_value(req, "x-forwarded-proto", &value))
        out->https = h2o_lcstris(value.base, value.len, H2O_STRLIT("https"));
    ssize_t etag = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, -1);
    if (etag >= 0 && req->headers.entries[etag].value.len < sizeof(out->if_none_match)) {
        memcpy(out->if_none_match, req->headers.entries[etag].value.base,
               req->headers.entries[etag].value.len);
        out->if_none_match[req->headers.entries[etag].value.len] = '\0';
    }
    peer_address(server, req, out->peer, sizeof(out->peer));
    if (req->entity.base != NULL && req->entity.len > 0) {
        if (req->entity.len > CONSOLE_BODY_MAX) {
            send_error(req, 413, "too_large", "the body is too large");
            return false;
        }
        out->body = malloc(req->entity.len + 1);
        if (out->body == NULL) {
            send_error(req, 503, "unavailable", "out of memory");
            return false;
        }
        memcpy(out->body, req->entity.base, req->entity.len);
        out->body[req->entity.len] = '\0';
        out->body_len = req->entity.len;
    }
    return true;
}

static int serve_static(h2o_req_t *req)
{
    bool get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
               h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    const console_static_file *file =
        console_static_find(req->path_normalized.base, req->path_normalized.len);
    if (file == NULL) {
        send_error(req, 404, "not_found", "no such page");
        return 0;
    }
    if (!get) {
        console_response resp = {0};
        console_response_error(&resp, 405, "method_not_allowed", "method not allowed here");
        resp.allow = "GET";
        send_answer(req, &resp);
        console_response_done(&resp);
        return 0;
    }
    ssize_t etag = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, -1);
    bool unchanged = etag >= 0 && h2o_memis(req->headers.entries[etag].value.base,
                                            req->headers.entries[etag].value.len, file->etag,
                                            strlen(file->etag));
    req->res.status = unchanged ? 304 : 200;
    req->res.reason = unchanged ? "Not Modified" : "OK";
    add_common_headers(req, "no-cache");
    add_header(req, H2O_TOKEN_ETAG, file->etag);
    add_header(req, H2O_TOKEN_CONTENT_TYPE, file->content_type);
    req->res.content_length = unchanged ? 0 : file->file->len;
    /* The embedded data is static storage: no copy needed. */
    if (unchanged) {
        h2o_send_inline(req, "", 0);
    } else {
        static h2o_generator_t generator = {NULL, NULL};
        h2o_start_response(req, &generator);
        h2o_iovec_t body = h2o_iovec_init(file->file->data, file->file->len);
        h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
    }
    return 0;
}

int console_route(svc *s, h2o_req_t *req, void *closure)
{
    (void)s;
    console_app *app = closure;
    console_server *server = app->server;
    const char *path = req->path_normalized.base;
    size_t len = req->path_normalized.len;
    if (len < 5 || memcmp(path, "/api/", 5) != 0)
        return serve_static(req);
    if (atomic_load(&server->stopping)) {
        send_error(req, 503, "unavailable", "the console is stopping");
        return 0;
    }
    console_job *job = job_create(server, JOB_API);
    if (job == NULL) {
        send_error(req, 503, "unavailable", "out of memory");
        return 0;
    }
    if (!capture(server, req, &job->request)) {
        job_free(job);
        return 0;
    }
    if (console_http_is_export(job->request.path))
        job->kind = JOB_EXPORT;
    submit(server, job, req);
    return 0;
}

/* ---- live -------------------------------------------------------------------------------- */

static void post_live(void *closure, const char *case_number, const char *province,
                      char *case_json)
{
    console_server *server = closure;
    live_event *event = calloc(1, sizeof(*event));
    if (event == NULL) {
        free(case_json);
        return;
    }
    event->message.type = MSG_LIVE;
    snprintf(event->case_number, sizeof(event->case_number), "%s", case_number);
    snprintf(event->province, sizeof(event->province), "%s", province);
    event->json = case_json;
    h2o_multithread_send_message(&server->receiver, &event->message.super);
}

/* ---- housekeeping ------------------------------------------------------------------------ */

static void on_housekeeping(h2o_timeout_entry_t *entry)
{
    console_server *server =
        H2O_STRUCT_FROM_MEMBER(console_server, housekeeping_entry, entry);
    if (atomic_load(&server->stopping))
        return;
    h2o_timeout_link(server->loop, &server->housekeeping, &server->housekeeping_entry);
    if (++server->housekeeping_rounds % SWEEP_EVERY == 1) {
        console_job *sweep = job_create(server, JOB_SWEEP);
        if (sweep != NULL && console_pool_submit(server->queries, sweep) != ST_OK)
            job_free(sweep);
    }
    if (server->touch_pending || server->stream_count == 0)
        return;
    console_job *touch = job_create(server, JOB_TOUCH);
    if (touch == NULL)
        return;
    touch->hashes = calloc(server->stream_count, sizeof(*touch->hashes));
    if (touch->hashes == NULL) {
        job_free(touch);
        return;
    }
    for (h2o_linklist_t *node = server->streams.next;
         node != &server->streams && touch->hash_count < server->stream_count;
         node = node->next) {
        sse_stream *stream = H2O_STRUCT_FROM_MEMBER(sse_stream, link, node);
        bool seen = false;
        for (size_t i = 0; i < touch->hash_count && !seen; i++)
            seen = memcmp(touch->hashes[i], stream->session_hash, 32) == 0;
        if (!seen)
            memcpy(touch->hashes[touch->hash_count++], stream->session_hash, 32);
    }
    if (touch->hash_count == 0 || console_pool_submit(server->queries, touch) != ST_OK) {
        job_free(touch);
        return;
    }
    server->touch_pending = true;
}

/* ---- hooks ------------------------------------------------------------------------------- */

static void metrics_init(console_app *app)
{
    met_registry *registry = svc_metrics(app->svc);
    console_metrics *m = &app->metrics;
    met_counter_get(registry, "ess_console_logins_total", "console logins by result",
                    "result=\"ok\"", &m->logins_ok);
    met_counter_get(registry, "ess_console_logins_total", "console logins by result",
                    "result=\"failed\"", &m->logins_failed);
    met_counter_get(registry, "ess_console_logins_total", "console logins by result",
                    "result=\"refused\"", &m->logins_refused);
    met_gauge_get(registry, "ess_console_login_last_delay_ms",
                  "delay given to the latest failed login (ms)", NULL, &m->login_last_delay_ms);
    met_counter_get(registry, "ess_console_requests_rejected_total",
                    "API requests answered 429 because the work queue was full", NULL,
                    &m->requests_rejected);
    met_gauge_get(registry, "ess_console_sse_clients", "open event streams", NULL,
                  &m->sse_clients);
    met_counter_get(registry, "ess_console_sse_events_total", "case events sent to streams",
                    NULL, &m->sse_events);
    met_counter_get(registry, "ess_console_sse_dropped_total",
                    "event streams dropped because the client did not keep up", NULL,
                    &m->sse_dropped);
    met_counter_get(registry, "ess_console_live_events_total", "ESS events received", NULL,
                    &m->live_events);
    met_counter_get(registry, "ess_console_live_errors_total",
                    "ESS events that could not be turned into a case", NULL, &m->live_errors);
    met_counter_get(registry, "ess_console_export_rows_total", "cases exported", NULL,
                    &m->export_rows);
    met_counter_get(registry, "ess_console_phone_reveals_total", "phone numbers revealed",
                    NULL, &m->phone_reveals);
    met_histogram_get(registry, "ess_console_query_seconds", "time a worker spent on a request",
                      NULL, met_latency_bounds, met_latency_bound_count, &m->query_seconds);
}

st_code console_init(svc *s, void *closure, st_error *err)
{
    console_app *app = closure;
    console_server *server = &server_instance;
    const svc_common_config *common = svc_common(s);
    app->svc = s;
    app->server = server;
    server->app = app;
    server->svc = s;
    server->loop = svc_loop(s);
    pthread_mutex_init(&app->map.lock, NULL);
    app->map.geo_version = -1;
    vault_keys_derive(app->config.data_key.bytes, &app->keys);
    OPENSSL_cleanse(app->config.data_key.bytes, sizeof(app->config.data_key.bytes));
    metrics_init(app);
    /* Bodies up to 4x the API's bound reach the handler, which answers a JSON 413 for more
     * than CONSOLE_BODY_MAX; beyond that h2o answers 413 itself before reading them. */
    svc_http_set_max_body(s, 4 * CONSOLE_BODY_MAX);
    if (app->config.login_delay_base_ms > app->config.login_delay_max_ms)
        return st_fail(err, ST_INVALID,
                       "ESS_CONSOLE_LOGIN_DELAY_BASE is longer than ESS_CONSOLE_LOGIN_DELAY_MAX");
    st_code status = console_static_init(err);
    if (status != ST_OK)
        return status;
    if (console_static_count() == 0)
        log_event(LOG_WARN, "console.no_web_app",
                  "no web files were built in (services/console/web/): the API only");

    /* What an unknown name is checked against: the same cost as a real account. */
    char random_password[CONSOLE_TOKEN_TEXT];
    if ((status = console_token_new(random_password, err)) != ST_OK ||
        (status = console_password_hash(random_password, app->dummy_hash, err)) != ST_OK)
        return status;
    OPENSSL_cleanse(random_password, sizeof(random_password));

    h2o_linklist_init_anchor(&server->streams);
    pthread_mutex_init(&server->active_lock, NULL);
    server->queue = h2o_multithread_create_queue(server->loop);
    h2o_multithread_register_receiver(server->queue, &server->receiver, on_messages);
    for (int level = 0; level < DELAY_LEVELS; level++)
        h2o_timeout_init(server->loop, &server->delays[level], (uint64_t)1 << level);
    h2o_timeout_init(server->loop, &server->heartbeat, (uint64_t)app->config.sse_heartbeat_ms);
    server->heartbeat_entry.cb = on_heartbeat;
    h2o_timeout_link(server->loop, &server->heartbeat, &server->heartbeat_entry);
    h2o_timeout_init(server->loop, &server->housekeeping, HOUSEKEEPING_MS);
    server->housekeeping_entry.cb = on_housekeeping;
    h2o_timeout_link(server->loop, &server->housekeeping, &server->housekeeping_entry);

    console_pool_options queries = {.name = "query",
                                    .threads = (int)app->config.workers,
                                    .queue_max = (size_t)app->config.queue_max,
                                    .dsn = common->pg_dsn,
                                    .statement_timeout_ms = app->config.query_timeout_ms,
                                    .run = run_query_job,
                                    .closure = app};
    console_pool_options exports = queries;
    exports.name = "export";
    exports.threads = (int)app->config.export_workers;
    exports.queue_max = (size_t)app->config.export_workers * 4;
    exports.run = run_export_job;
    if ((status = console_pool_create(&queries, &server->queries, err)) != ST_OK ||
        (status = console_pool_create(&exports, &server->exports, err)) != ST_OK)
        return status;
    console_live_options live = {.nats_url = common->nats_url,
                                 .pg_dsn = common->pg_dsn,
                                 .statement_timeout_ms = app->config.query_timeout_ms,
                                 .post = post_live,
                                 .closure = server};
    return console_live_start(app, &live, &app->live, err);
}

static void answer_unstarted(void *item, void *closure)
{
    console_job *job = item;
    (void)closure;
    h2o_req_t *req = job_req(job);
    if (req != NULL && (job->kind == JOB_API || job->kind == JOB_EXPORT))
        send_error(req, 503, "unavailable", "the console is stopping");
    job_free(job);
}

void console_stop(svc *s, void *closure)
{
    (void)s;
    console_app *app = closure;
    console_server *server = app->server;
    if (server == NULL || server->queries == NULL)
        return;
    atomic_store(&server->stopping, true);
    /* Streams end cleanly (the browser reconnects elsewhere); exports are cut; queued work
     * is answered 503; what workers hold finishes and is answered while svc drains HTTP. */
    h2o_linklist_t *node = server->streams.next;
    while (node != &server->streams) {
        h2o_linklist_t *next = node->next;
        stream_close(H2O_STRUCT_FROM_MEMBER(sse_stream, link, node));
        node = next;
    }
    if (h2o_timeout_is_linked(&server->heartbeat_entry))
        h2o_timeout_unlink(&server->heartbeat_entry);
    if (h2o_timeout_is_linked(&server->housekeeping_entry))
        h2o_timeout_unlink(&server->housekeeping_entry);
    console_pool_close(server->queries, answer_unstarted, server);
    console_pool_join(server->queries);
    /* Export workers may wait for a client to take a chunk, which needs the loop: they are
     * joined in console_fini, after svc drained HTTP. */
    console_pool_close(server->exports, answer_unstarted, server);
}

void console_fini(svc *s, void *closure)
{
    (void)s;
    console_app *app = closure;
    console_live_stop(app->live);
    app->live = NULL;
    if (app->server != NULL && app->server->exports != NULL) {
        /* The loop runs no more: nothing reads a chunk in flight now. */
        console_server *server = app->server;
        console_pool_close(server->exports, answer_unstarted, server);
        pthread_mutex_lock(&server->active_lock);
        for (console_job *job = server->active_exports; job != NULL; job = job->next_active) {
            pthread_mutex_lock(&job->lock);
            job->cancelled = true;
            pthread_cond_broadcast(&job->cond);
            pthread_mutex_unlock(&job->lock);
        }
        pthread_mutex_unlock(&server->active_lock);
        console_pool_join(server->exports);
    }
    if (app->server != NULL) {
        /* Stopped already unless start-up failed after init (console_stop did not run). */
        console_pool_close(app->server->queries, answer_unstarted, app->server);
        console_pool_join(app->server->queries);
        console_pool_destroy(app->server->queries);
        console_pool_destroy(app->server->exports);
        app->server->queries = app->server->exports = NULL;
    }
    /* The loop's queue and timers are not disposed: like svc's h2o context, they may still be
     * linked to the loop, and the process ends here. */
    free(app->map.body);
    app->map.body = NULL;
    vault_keys_wipe(&app->keys);
}

st_code console_ready(svc *s, void *closure, st_error *err)
{
    (void)s;
    console_app *app = closure;
    if (app->server == NULL || app->server->queries == NULL ||
        console_pool_connected(app->server->queries) == 0)
        return st_fail(err, ST_UNAVAILABLE, "console workers not connected to PostgreSQL");
    if (!console_live_ready(app->live))
        return st_fail(err, ST_UNAVAILABLE, "live stream not subscribed");
    return ST_OK;
}
