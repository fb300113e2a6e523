#include "emu_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "emu_validate.h"

/* h2o refuses bodies above this before our handler runs; ours answers LINE's 413 above 2 MB. */
#define HTTP_BODY_LIMIT (8 * 1024 * 1024)

/* A request whose answer is held back by a "hang" fault. Allocated in the request's pool with
 * a dispose hook, so it unlinks itself if h2o frees the request first. */
typedef struct hung_request {
    h2o_timeout_entry_t timer;
    h2o_linklist_t link;
    h2o_req_t *req;
    int status;
    h2o_iovec_t body;
    h2o_iovec_t request_id;
    h2o_iovec_t accepted_request_id;
} hung_request;

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 503:
        return "Service Unavailable";
    case 507:
        return "Insufficient Storage";
    default:
        return status >= 500 ? "Internal Server Error" : "Error";
    }
}

static void send_answer(h2o_req_t *req, int status, h2o_iovec_t body, h2o_iovec_t request_id,
                        h2o_iovec_t accepted_request_id)
{
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    if (request_id.len > 0)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-line-request-id"), 0,
                              NULL, request_id.base, request_id.len);
    if (accepted_request_id.len > 0)
        h2o_add_header_by_str(&req->pool, &req->res.headers,
                              H2O_STRLIT("x-line-accepted-request-id"), 0, NULL,
                              accepted_request_id.base, accepted_request_id.len);
    req->res.content_length = body.len;
    h2o_send_inline(req, body.base, body.len);
}

static h2o_iovec_t pool_copy(h2o_req_t *req, const char *text, size_t len)
{
    return h2o_strdup(&req->pool, text != NULL ? text : "", text != NULL ? len : 0);
}

/* ---- late answers ---- */

static void answer_hung(hung_request *hung)
{
    if (h2o_timeout_is_linked(&hung->timer))
        h2o_timeout_unlink(&hung->timer);
    if (h2o_linklist_is_linked(&hung->link))
        h2o_linklist_unlink(&hung->link);
    h2o_req_t *req = hung->req;
    hung->req = NULL;
    if (req != NULL)
        send_answer(req, hung->status, hung->body, hung->request_id, hung->accepted_request_id);
}

static void on_hang_elapsed(h2o_timeout_entry_t *entry)
{
    hung_request *hung = H2O_STRUCT_FROM_MEMBER(hung_request, timer, entry);
    answer_hung(hung);
}

static void on_hung_dispose(void *object)
{
    hung_request *hung = object;
    if (h2o_timeout_is_linked(&hung->timer))
        h2o_timeout_unlink(&hung->timer);
    if (h2o_linklist_is_linked(&hung->link))
        h2o_linklist_unlink(&hung->link);
}

static h2o_timeout_t *hang_timeout(emu_service *service, uint64_t ms)
{
    for (int i = 0; i < service->hang_timeout_count; i++)
        if (service->hang_timeout_ms[i] == ms)
            return &service->hang_timeouts[i];
    if (service->hang_timeout_count == EMU_HANG_TIMEOUTS_MAX)
        return NULL;
    int slot = service->hang_timeout_count++;
    service->hang_timeout_ms[slot] = ms;
    h2o_timeout_init(svc_loop(service->runtime), &service->hang_timeouts[slot], ms);
    return &service->hang_timeouts[slot];
}

static void hold_answer(emu_service *service, h2o_req_t *req, const emu_response *response,
                        h2o_iovec_t body, h2o_iovec_t request_id, h2o_iovec_t accepted)
{
    h2o_timeout_t *timeout = hang_timeout(service, (uint64_t)response->hang_ms);
    if (timeout == NULL) /* more distinct durations than slots: use the configured one */
        timeout = hang_timeout(service, (uint64_t)service->config.fault_hang_ms);
    if (timeout == NULL) {
        send_answer(req, response->status, body, request_id, accepted);
        return;
    }
    hung_request *hung = h2o_mem_alloc_shared(&req->pool, sizeof(*hung), on_hung_dispose);
    memset(hung, 0, sizeof(*hung));
    hung->req = req;
    hung->status = response->status;
    hung->body = body;
    hung->request_id = request_id;
    hung->accepted_request_id = accepted;
    hung->timer.cb = on_hang_elapsed;
    h2o_linklist_insert(&service->hung, &hung->link);
    h2o_timeout_link(svc_loop(service->runtime), timeout, &hung->timer);
}

/* ---- the route handler ---- */

static emu_str header_value(h2o_req_t *req, const h2o_token_t *token, const char *name)
{
    ssize_t at = token != NULL ? h2o_find_header(&req->headers, token, -1)
                               : h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (at < 0)
        return (emu_str){NULL, 0};
    h2o_iovec_t value = req->headers.entries[at].value;
    return (emu_str){value.base != NULL ? value.base : "", value.len};
}

int emu_service_handle(svc *s, h2o_req_t *req, void *closure)
{
    (void)s;
    emu_service *service = closure;
    emu_request request = {0};
    request.method = (emu_str){req->method.base, req->method.len};
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    request.path = (emu_str){req->path.base, path_len};
    if (req->query_at != SIZE_MAX)
        request.query =
            (emu_str){req->path.base + req->query_at + 1, req->path.len - req->query_at - 1};
    request.authorization = header_value(req, H2O_TOKEN_AUTHORIZATION, NULL);
    request.content_type = header_value(req, H2O_TOKEN_CONTENT_TYPE, NULL);
    request.retry_key = header_value(req, NULL, "x-line-retry-key");
    request.body = (emu_str){req->entity.base != NULL ? req->entity.base : "", req->entity.len};

    emu_response response;
    emu_app_handle(&service->app, &request, &response);
    if (response.status == 0) { /* a handler bug; never leave a request unanswered */
        response.status = 500;
    }
    h2o_iovec_t body = pool_copy(req, response.body, response.body_len);
    h2o_iovec_t request_id = pool_copy(req, response.request_id, strlen(response.request_id));
    h2o_iovec_t accepted =
        pool_copy(req, response.accepted_request_id, strlen(response.accepted_request_id));

    if (response.drop) {
        /* Close the connection under h2o's feet without an answer: the client sees EOF.
         * h2o's own write of the answer then fails and it frees the connection. */
        h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL
                                 ? req->conn->callbacks->get_socket(req->conn)
                                 : NULL;
        int fd = sock != NULL ? h2o_socket_get_fd(sock) : -1;
        if (fd >= 0)
            shutdown(fd, SHUT_RDWR);
        send_answer(req, response.status, body, request_id, accepted);
    } else if (response.hang_ms > 0) {
        hold_answer(service, req, &response, body, request_id, accepted);
    } else {
        send_answer(req, response.status, body, request_id, accepted);
    }
    emu_response_done(&response);
    return 0;
}

/* ---- svc hooks ---- */

static void observe_delivery(const emu_delivery_outcome *outcome, void *closure)
{
    emu_service *service = closure;
    if (outcome->delivered) {
        met_counter_add(service->webhook_delivered, 1);
        return;
    }
    met_counter_add(outcome->will_retry ? service->webhook_retried : service->webhook_failed, 1);
    /* No body, no ids of users: the delivery id and attempt say which one. */
    log_event(outcome->will_retry ? LOG_INFO : LOG_WARN, "emulator.webhook",
              outcome->will_retry ? "webhook not accepted, will redeliver"
                                  : "webhook not accepted, giving up",
              LOG_INT("delivery", (int64_t)outcome->delivery_id),
              LOG_INT("attempt", outcome->attempt), LOG_INT("status", outcome->status),
              LOG_STR("error", outcome->error != NULL ? outcome->error : ""),
              LOG_INT("duration_ms", outcome->duration_ms));
}

st_code emu_service_init(svc *s, void *closure, st_error *err)
{
    emu_service *service = closure;
    service->runtime = s;
    h2o_linklist_init_anchor(&service->hung);
    svc_http_set_max_body(s, HTTP_BODY_LIMIT);
    met_registry *metrics = svc_metrics(s);
    met_counter_get(metrics, "ess_emulator_webhooks_total", "webhook attempts by outcome",
                    "outcome=\"delivered\"", &service->webhook_delivered);
    met_counter_get(metrics, "ess_emulator_webhooks_total", "webhook attempts by outcome",
                    "outcome=\"retried\"", &service->webhook_retried);
    met_counter_get(metrics, "ess_emulator_webhooks_total", "webhook attempts by outcome",
                    "outcome=\"failed\"", &service->webhook_failed);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return st_fail(err, ST_INTERNAL, "curl_global_init failed");
    st_code code = emu_app_init(&service->app, &service->config, observe_delivery, service, err);
    if (code != ST_OK) {
        emu_app_done(&service->app);
        return code;
    }
    service->app_ready = true;
    log_event(LOG_INFO, "emulator.ready", "LINE platform emulator started",
              LOG_STR("webhook_url", service->config.webhook_url),
              LOG_INT("reply_token_ttl_ms", service->config.reply_token_ttl_ms),
              LOG_INT("rate_limit", service->config.rate_limit),
              LOG_INT("redelivery", service->config.redelivery));
    return ST_OK;
}

void emu_service_stop(svc *s, void *closure)
{
    (void)s;
    emu_service *service = closure;
    /* Answer held-back requests now so that the HTTP drain does not wait for them. */
    while (!h2o_linklist_is_empty(&service->hung)) {
        hung_request *hung = H2O_STRUCT_FROM_MEMBER(hung_request, link, service->hung.next);
        answer_hung(hung);
    }
}

void emu_service_fini(svc *s, void *closure)
{
    emu_service *service = closure;
    if (service->app_ready) {
        emu_app_done(&service->app);
        service->app_ready = false;
        curl_global_cleanup();
    }
    if (service->runtime != NULL) {
        emu_service_stop(s, closure);
        for (int i = 0; i < service->hang_timeout_count; i++)
            h2o_timeout_dispose(svc_loop(service->runtime), &service->hang_timeouts[i]);
        service->hang_timeout_count = 0;
    }
}
