#include "svc.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <h2o.h>

#define SVC_CONSUMER_THREADS_MAX 64
#define SVC_READY_REASONS_MAX 512
#define SVC_HEALTH_PERIOD_MS 500

typedef struct svc_handler {
    h2o_handler_t base;
    svc *owner;
    const svc_route *route; /* NULL for the built-in endpoints */
    const char *path;       /* static text */
    int (*builtin)(svc *s, h2o_req_t *req);
} svc_handler;

typedef struct consumer_slot {
    svc *owner;
    const svc_consumer_spec *spec;
    pthread_t thread;
    bool started;
} consumer_slot;

struct svc {
    const svc_def *def;
    svc_common_config common;
    bus *bus;
    bus_registry *registry;
    db *main_db;
    met_registry *metrics;

    h2o_globalconf_t h2o_config;
    h2o_context_t h2o_ctx;
    bool h2o_ctx_ready;
    h2o_evloop_t *loop;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    _Atomic long open_connections;

    _Atomic bool stop_requested;
    _Atomic bool draining;
    _Atomic bool ensured;
    _Atomic bool ready;
    /* The health check found PostgreSQL unreachable (needs_pg): consumers fetch nothing. */
    _Atomic bool pg_unreachable;
    pthread_mutex_t state_lock;
    pthread_cond_t state_cond;
    char ready_reasons[SVC_READY_REASONS_MAX];

    pthread_t signal_thread, health_thread;
    bool health_started;
    consumer_slot consumers[SVC_CONSUMER_THREADS_MAX];
    size_t consumer_threads;

    met_gauge *ready_gauge;
    met_counter *http_rejected_connections;
};

static __thread db *thread_db;

/* ---- small helpers ------------------------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits up to ms or until a stop is requested; true when stopping. */
static bool wait_for_stop(svc *s, int64_t ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->state_lock);
    while (!atomic_load(&s->stop_requested)) {
        if (pthread_cond_timedwait(&s->state_cond, &s->state_lock, &deadline) == ETIMEDOUT)
            break;
    }
    bool stopping = atomic_load(&s->stop_requested);
    pthread_mutex_unlock(&s->state_lock);
    return stopping;
}

void svc_request_stop(svc *s)
{
    pthread_mutex_lock(&s->state_lock);
    atomic_store(&s->stop_requested, true);
    pthread_cond_broadcast(&s->state_cond);
    pthread_mutex_unlock(&s->state_lock);
}

bool svc_stopping(const svc *s)
{
    return atomic_load(&((svc *)s)->stop_requested);
}

const svc_common_config *svc_common(const svc *s) { return &s->common; }
const svc_def *svc_definition(const svc *s) { return s->def; }
bus *svc_bus(svc *s) { return s->bus; }
const bus_registry *svc_registry(const svc *s) { return s->registry; }
met_registry *svc_metrics(svc *s) { return s->metrics; }
void *svc_loop(svc *s) { return s->loop; }
db *svc_db(svc *s) { return thread_db != NULL ? thread_db : s->main_db; }

void svc_http_set_max_body(svc *s, size_t max_body_bytes)
{
    s->h2o_config.max_request_entity_size = max_body_bytes;
}

/* ---- configuration ------------------------------------------------------------------------ */

static const char *const common_help[] = {
    "NATS server URL(s), comma-separated",
    "PostgreSQL connection string (libpq URI or key=value)",
    "log level: debug, info, warn or error",
    "address of this service's HTTP endpoint (health, readiness, metrics and its own routes)",
    "how long a graceful stop may take before the process exits anyway",
    "open HTTP connections accepted at once; more are closed at accept",
    "time allowed to receive one request's headers and body",
    "copies of every JetStream stream: 3 on a three-node NATS cluster (the same value for "
    "every service); 0 = as proto/registry.json declares (1, a single server)",
};

static size_t build_common_fields(const svc_def *def, cfg_field *out)
{
    size_t n = 0;
    if (def->needs_nats)
        out[n++] = (cfg_field)CFG_URL("ESS_NATS_URL", "nats://127.0.0.1:4222", "nats|tls",
                                      common_help[0], svc_common_config, nats_url);
    if (def->needs_nats)
        out[n++] = (cfg_field)CFG_INT("ESS_NATS_REPLICAS", "0", 0, 5, common_help[7],
                                      svc_common_config, nats_replicas);
    if (def->needs_pg)
        /* Secret: a DSN may hold a password, so its value is never quoted back. */
        out[n++] = (cfg_field)CFG_FIELD_("ESS_PG_DSN", CFG_T_STRING,
                                         "postgresql://ess@127.0.0.1:5432/ess", false, true, 1,
                                         4096, NULL, common_help[1], svc_common_config, pg_dsn);
    out[n++] = (cfg_field)CFG_ENUM("ESS_LOG_LEVEL", "info", "debug|info|warn|error",
                                   common_help[2], svc_common_config, log_level);
    if (def->listen_var != NULL)
        out[n++] = (cfg_field)CFG_LISTEN(def->listen_var, def->listen_default, common_help[3],
                                         svc_common_config, listen);
    out[n++] = (cfg_field)CFG_DURATION("ESS_DRAIN_TIMEOUT", "10s", 100, 600000, common_help[4],
                                       svc_common_config, drain_timeout_ms);
    out[n++] = (cfg_field)CFG_INT("ESS_HTTP_MAX_CONNECTIONS", "1024", 1, 1000000,
                                  common_help[5], svc_common_config, http_max_connections);
    out[n++] = (cfg_field)CFG_DURATION("ESS_HTTP_REQUEST_TIMEOUT", "10s", 100, 600000,
                                       common_help[6], svc_common_config,
                                       http_request_timeout_ms);
    return n;
}

/* ---- HTTP --------------------------------------------------------------------------------- */

static int send_response(h2o_req_t *req, int status, const char *reason, const char *type,
                         const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type,
                   strlen(type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, "no-store",
                   8);
    /* h2o 2.2 closes the connection after a non-200 answer without a length: keep it. */
    req->res.content_length = len;
    h2o_send_inline(req, body, len);
    return 0;
}

static bool is_get(h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
           h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
}

static int method_not_allowed(h2o_req_t *req)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET"));
    return send_response(req, 405, "Method Not Allowed", "text/plain; charset=utf-8",
                         H2O_STRLIT("method not allowed\n"));
}

static int serve_healthz(svc *s, h2o_req_t *req)
{
    (void)s;
    if (!is_get(req))
        return method_not_allowed(req);
    return send_response(req, 200, "OK", "application/json", H2O_STRLIT("{\"status\":\"alive\"}\n"));
}

static int serve_readyz(svc *s, h2o_req_t *req)
{
    if (!is_get(req))
        return method_not_allowed(req);
    if (atomic_load(&s->ready) && !atomic_load(&s->draining))
        return send_response(req, 200, "OK", "application/json",
                             H2O_STRLIT("{\"ready\":true}\n"));
    char body[SVC_READY_REASONS_MAX + 64];
    pthread_mutex_lock(&s->state_lock);
    int n = snprintf(body, sizeof(body), "{\"ready\":false,\"reason\":\"%s\"}\n",
                     atomic_load(&s->draining) ? "draining" : s->ready_reasons);
    pthread_mutex_unlock(&s->state_lock);
    size_t len = n < 0 ? 0 : (size_t)n >= sizeof(body) ? sizeof(body) - 1 : (size_t)n;
    return send_response(req, 503, "Service Unavailable", "application/json", body, len);
}

static int serve_metrics(svc *s, h2o_req_t *req)
{
    if (!is_get(req))
        return method_not_allowed(req);
    char *text = NULL;
    size_t len = 0;
    if (met_render(s->metrics, &text, &len) != ST_OK)
        return send_response(req, 500, "Internal Server Error", "text/plain",
                             H2O_STRLIT("metrics unavailable\n"));
    send_response(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
    return 0;
}

static int on_request(h2o_handler_t *self, h2o_req_t *req)
{
    svc_handler *handler = (svc_handler *)self;
    if (handler->builtin != NULL) {
        /* Exact match only: "/healthz/x" is not health. */
        if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, handler->path,
                       strlen(handler->path)))
            return -1;
        return handler->builtin(handler->owner, req);
    }
    return handler->route->handler(handler->owner, req, handler->owner->def->closure);
}

static void add_handler(svc *s, h2o_hostconf_t *host, const char *path,
                        int (*builtin)(svc *, h2o_req_t *), const svc_route *route)
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, path, 0);
    svc_handler *handler = (svc_handler *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->base.on_req = on_request;
    handler->owner = s;
    handler->builtin = builtin;
    handler->route = route;
    handler->path = path;
}

static void on_connection_close(void *data)
{
    svc *s = data;
    atomic_fetch_sub(&s->open_connections, 1);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    svc *s = listener->data;
    if (err != NULL)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock == NULL)
        return;
    if (atomic_load(&s->open_connections) >= s->common.http_max_connections ||
        atomic_load(&s->draining)) {
        met_counter_add(s->http_rejected_connections, 1);
        h2o_socket_close(sock);
        return;
    }
    atomic_fetch_add(&s->open_connections, 1);
    sock->on_close.cb = on_connection_close;
    sock->on_close.data = s;
    h2o_accept(&s->accept_ctx, sock);
}

static st_code open_listener(svc *s, st_error *err)
{
    char host[256];
    uint16_t port = 0;
    if (cfg_split_listen(s->common.listen, host, sizeof(host), &port) != ST_OK)
        return st_fail(err, ST_INVALID, "listen address is not host:port");
    char port_text[8];
    snprintf(port_text, sizeof(port_text), "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *found = NULL;
    int gai = getaddrinfo(host, port_text, &hints, &found);
    if (gai != 0)
        return st_fail(err, ST_INVALID, "cannot resolve listen host %s: %s", host,
                       gai_strerror(gai));
    int fd = -1;
    st_code status = ST_IO;
    for (struct addrinfo *ai = found; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0)
            continue;
        int on = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) {
            status = ST_OK;
            break;
        }
        st_fail(err, ST_IO, "cannot listen on %s: %s", s->common.listen, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(found);
    if (status != ST_OK) {
        if (err != NULL && err->code != ST_IO)
            st_fail(err, ST_IO, "cannot listen on %s", s->common.listen);
        return status;
    }
    s->listener = h2o_evloop_socket_create(s->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    s->listener->data = s;
    h2o_socket_read_start(s->listener, on_accept);
    return ST_OK;
}

/* ---- threads ------------------------------------------------------------------------------ */

static void *signal_main(void *arg)
{
    svc *s = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (atomic_load(&s->stop_requested)) {
            /* A second signal: the operator means it. */
            log_event(LOG_WARN, "svc.forced_exit", "second stop signal: exiting at once",
                      LOG_INT("signal", sig));
            _exit(1);
        }
        log_event(LOG_INFO, "svc.stopping", "stop signal received, draining",
                  LOG_INT("signal", sig));
        svc_request_stop(s);
    }
    return NULL;
}

static void set_readiness(svc *s, bool ready, const char *reasons)
{
    pthread_mutex_lock(&s->state_lock);
    snprintf(s->ready_reasons, sizeof(s->ready_reasons), "%s", reasons);
    pthread_mutex_unlock(&s->state_lock);
    bool was = atomic_exchange(&s->ready, ready);
    met_gauge_set(s->ready_gauge, ready ? 1 : 0);
    if (was != ready) {
        if (ready)
            log_event(LOG_INFO, "svc.ready", "ready");
        else
            log_event(LOG_WARN, "svc.not_ready", "not ready", LOG_STR("reason", reasons));
    }
}

static void append_reason(char *reasons, size_t size, const char *reason)
{
    size_t len = strlen(reasons);
    snprintf(reasons + len, size - len, "%s%s", len > 0 ? "; " : "", reason);
}

static void *health_main(void *arg)
{
    svc *s = arg;
    const svc_def *def = s->def;
    db *health_db = NULL;
    st_error err = {0};
    do {
        char reasons[SVC_READY_REASONS_MAX] = "";
        if (def->needs_nats) {
            if (!bus_connected(s->bus)) {
                append_reason(reasons, sizeof(reasons), "NATS not connected");
            } else if (!atomic_load(&s->ensured)) {
                if (bus_ensure(s->bus, s->registry, &err) == ST_OK) {
                    atomic_store(&s->ensured, true);
                    log_event(LOG_INFO, "bus.ensured", "streams and consumers ensured");
                } else {
                    log_event(LOG_WARN, "bus.ensure", "cannot ensure streams yet",
                              LOG_ERR(&err));
                    append_reason(reasons, sizeof(reasons), "streams not ensured");
                }
            }
        }
        if (def->needs_pg) {
            if (health_db == NULL) {
                db_options options = {.dsn = s->common.pg_dsn,
                                      .application_name = "ess-health",
                                      .connect_timeout_ms = 2000,
                                      .statement_timeout_ms = 2000};
                if (db_connect(&options, &health_db, &err) != ST_OK)
                    health_db = NULL;
            }
            bool reachable = health_db != NULL && db_ping(health_db, &err) == ST_OK;
            atomic_store(&s->pg_unreachable, !reachable);
            if (!reachable)
                append_reason(reasons, sizeof(reasons), "PostgreSQL not reachable");
        }
        if (def->ready != NULL && reasons[0] == '\0') {
            st_error ready_err = {0};
            if (def->ready(s, def->closure, &ready_err) != ST_OK)
                append_reason(reasons, sizeof(reasons),
                              ready_err.message[0] != '\0' ? ready_err.message : "not ready");
        }
        set_readiness(s, reasons[0] == '\0', reasons);
    } while (!wait_for_stop(s, SVC_HEALTH_PERIOD_MS));
    db_destroy(health_db);
    return NULL;
}

static st_code connect_db_until_stop(svc *s, const char *application, db **ret_db)
{
    db_options options = {.dsn = s->common.pg_dsn, .application_name = application};
    int64_t backoff = 200;
    for (int attempt = 1;; attempt++) {
        st_error err = {0};
        db *d = NULL;
        if (db_connect(&options, &d, &err) == ST_OK) {
            *ret_db = d;
            return ST_OK;
        }
        if (attempt == 1 || attempt % 10 == 0)
            log_event(LOG_WARN, "db.connect", "PostgreSQL not reachable yet, retrying",
                      LOG_ERR(&err), LOG_INT("attempt", attempt));
        if (wait_for_stop(s, backoff))
            return ST_UNAVAILABLE;
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
}

static void *consumer_main(void *arg)
{
    consumer_slot *slot = arg;
    svc *s = slot->owner;
    const svc_consumer_spec *spec = slot->spec;
    bus_consumer *consumer = NULL;
    db *own_db = NULL;
    st_error err = {0};

    if (s->def->needs_pg) {
        char application[64];
        snprintf(application, sizeof(application), "ess-%s-%s", s->def->name, spec->durable);
        if (connect_db_until_stop(s, application, &own_db) != ST_OK)
            goto done;
        thread_db = own_db;
    }
    while (!atomic_load(&s->ensured))
        if (wait_for_stop(s, 100))
            goto done;
    const bus_consumer_def *def = bus_registry_consumer(s->registry, spec->durable);
    if (def == NULL) {
        log_event(LOG_ERROR, "svc.consumer_unknown",
                  "consumer is not declared in proto/registry.json; stopping",
                  LOG_STR("consumer", spec->durable));
        svc_request_stop(s);
        goto done;
    }
    int64_t backoff = 200;
    while (consumer == NULL) {
        if (bus_consumer_create(s->bus, def, s->def->name, spec->handler, s->def->closure,
                                &consumer, &err) == ST_OK)
            break;
        consumer = NULL;
        log_event(LOG_WARN, "bus.consumer_create", "cannot bind consumer yet, retrying",
                  LOG_STR("consumer", spec->durable), LOG_ERR(&err));
        if (wait_for_stop(s, backoff))
            goto done;
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }

    char labels[128];
    met_counter *acked = NULL, *retried = NULL, *dead = NULL;
    snprintf(labels, sizeof(labels), "consumer=\"%s\",result=\"ack\"", spec->durable);
    met_counter_get(s->metrics, "ess_consumer_messages_total", "messages handled by outcome",
                    labels, &acked);
    snprintf(labels, sizeof(labels), "consumer=\"%s\",result=\"nak\"", spec->durable);
    met_counter_get(s->metrics, "ess_consumer_messages_total", "messages handled by outcome",
                    labels, &retried);
    snprintf(labels, sizeof(labels), "consumer=\"%s\",result=\"dead_letter\"", spec->durable);
    met_counter_get(s->metrics, "ess_consumer_messages_total", "messages handled by outcome",
                    labels, &dead);
    bus_consumer_stats last = {0};
    int batch = spec->batch > 0 ? spec->batch : 16;
    int failures = 0;
    while (!atomic_load(&s->stop_requested)) {
        /* While PostgreSQL is unreachable a service that needs it fetches nothing: every
         * delivery would fail and count against max_deliver, so an outage longer than the
         * retry budget (a slow restart, a failover) would dead-letter messages that only wait
         * for the database. They wait in JetStream instead, with their delivery counts
         * intact, until the health check (every SVC_HEALTH_PERIOD_MS) reaches it again. */
        if (s->def->needs_pg && atomic_load(&s->pg_unreachable)) {
            if (wait_for_stop(s, 50))
                break;
            continue;
        }
        size_t handled = 0;
        int room = batch;
        if (spec->capacity != NULL) {
            room = spec->capacity(s->def->closure);
            if (room <= 0) {
                if (wait_for_stop(s, 20))
                    break;
                continue;
            }
            if (room > batch)
                room = batch;
        }
        st_code status = bus_consumer_poll(consumer, room, 500, &handled, &err);
        bus_consumer_stats now = {0};
        bus_consumer_get_stats(consumer, &now);
        met_counter_add(acked, now.acked - last.acked);
        met_counter_add(retried, now.naked - last.naked);
        met_counter_add(dead, now.dead_lettered - last.dead_lettered);
        last = now;
        if (status == ST_OK) {
            failures = 0;
            continue;
        }
        if (failures++ % 20 == 0)
            log_event(LOG_WARN, "bus.poll", "cannot fetch messages, retrying",
                      LOG_STR("consumer", spec->durable), LOG_ERR(&err));
        if (wait_for_stop(s, 250))
            break;
    }
done:
    bus_consumer_destroy(consumer);
    thread_db = NULL;
    db_destroy(own_db);
    return NULL;
}

/* ---- main --------------------------------------------------------------------------------- */

static void print_help(const svc_def *def, const cfg_field *common, size_t common_count)
{
    printf("ess-%s: %s\n\nUsage: ess-%s [--help] [--version]\n\n", def->name,
           def->summary != NULL ? def->summary : "", def->name);
    printf("Configuration (environment variables; NAME_FILE=path reads a value from a file):\n");
    cfg_print_help(stdout, common, common_count);
    if (def->config_count > 0)
        cfg_print_help(stdout, def->config, def->config_count);
    printf("\nHTTP: GET /healthz, GET /readyz, GET /metrics");
    for (size_t i = 0; i < def->route_count; i++)
        printf(", %s", def->routes[i].path);
    printf("\nExit codes: 0 stopped cleanly, 1 start-up failure, 2 configuration problem.\n");
}

static void drain_http(svc *s, int64_t deadline)
{
    if (s->listener != NULL) {
        h2o_socket_read_stop(s->listener);
        h2o_socket_close(s->listener);
        s->listener = NULL;
    }
    if (s->h2o_ctx_ready)
        h2o_context_request_shutdown(&s->h2o_ctx);
    while (atomic_load(&s->open_connections) > 0 && now_ms() < deadline)
        h2o_evloop_run(s->loop, 50);
}

int svc_main(const svc_def *def, int argc, char **argv)
{
    static svc instance; /* one service per process; static so signal paths can reach it */
    svc *s = &instance;
    cfg_field common_fields[9];
    size_t common_count = build_common_fields(def, common_fields);
    int exit_code = 1;
    st_error err = {0};

    s->def = def;
    pthread_mutex_init(&s->state_lock, NULL);
    pthread_cond_init(&s->state_cond, NULL);
    snprintf(s->ready_reasons, sizeof(s->ready_reasons), "starting");

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help(def, common_fields, common_count);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("ess-%s %s\n", def->name, ESS_VERSION);
            return 0;
        }
        fprintf(stderr, "ess-%s: unknown argument '%s' (try --help)\n", def->name, argv[i]);
        return 2;
    }

    const cfg_table tables[2] = {
        {.fields = common_fields, .count = common_count, .target = &s->common},
        {.fields = def->config, .count = def->config_count, .target = def->config_target},
    };
    char *problems = NULL;
    st_code status = cfg_load_tables(tables, def->config_count > 0 ? 2 : 1, NULL, NULL, &problems);
    if (status != ST_OK) {
        log_setup(def->name, LOG_ERROR, stderr);
        log_event(LOG_ERROR, "cfg.invalid", problems != NULL ? problems : "configuration invalid");
        free(problems);
        return 2;
    }
    log_level level = LOG_INFO;
    log_level_parse(s->common.log_level, &level);
    log_setup(def->name, level, stderr);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_create(&s->signal_thread, NULL, signal_main, s);
    pthread_detach(s->signal_thread);

    if (met_registry_create(&s->metrics) != ST_OK)
        goto cleanup;
    met_gauge_get(s->metrics, "ess_ready", "1 when the service is ready", NULL, &s->ready_gauge);
    met_counter_get(s->metrics, "ess_http_rejected_connections_total",
                    "connections closed at accept (cap reached or draining)", NULL,
                    &s->http_rejected_connections);
    met_gauge *up = NULL;
    met_gauge_get(s->metrics, "ess_up", "1 while the process runs", NULL, &up);
    met_gauge_set(up, 1);

    if (def->needs_nats) {
        if (bus_registry_builtin(&s->registry, &err) != ST_OK) {
            log_event(LOG_ERROR, "bus.registry", "built-in registry is invalid", LOG_ERR(&err));
            goto cleanup;
        }
        if (s->common.nats_replicas > 0 &&
            bus_registry_set_replicas(s->registry, (int)s->common.nats_replicas, &err) != ST_OK) {
            log_event(LOG_ERROR, "bus.registry", "cannot set the stream replicas", LOG_ERR(&err));
            goto cleanup;
        }
        char client[96];
        snprintf(client, sizeof(client), "ess-%s", def->name);
        bus_options options = {.url = s->common.nats_url, .client_name = client,
                               .retry_on_failed_connect = true};
        if (bus_connect(&options, &s->bus, &err) != ST_OK) {
            log_event(LOG_ERROR, "bus.connect", "cannot set up the NATS connection",
                      LOG_ERR(&err));
            goto cleanup;
        }
    }
    if (def->needs_pg) {
        char application[96];
        snprintf(application, sizeof(application), "ess-%s", def->name);
        if (connect_db_until_stop(s, application, &s->main_db) != ST_OK) {
            exit_code = 0; /* stopped while waiting: a clean stop */
            goto cleanup;
        }
    }

    s->loop = h2o_evloop_create();
    h2o_config_init(&s->h2o_config);
    s->h2o_config.http1.req_timeout = (uint64_t)s->common.http_request_timeout_ms;
    s->h2o_config.http1.upgrade_to_http2 = 0; /* HTTP/1.1 only (DESIGN.md §2) */
    s->h2o_config.max_request_entity_size = 1024 * 1024;
    s->h2o_config.server_name = h2o_iovec_init(H2O_STRLIT("ess"));
    h2o_hostconf_t *host =
        h2o_config_register_host(&s->h2o_config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    add_handler(s, host, "/healthz", serve_healthz, NULL);
    add_handler(s, host, "/readyz", serve_readyz, NULL);
    add_handler(s, host, "/metrics", serve_metrics, NULL);
    for (size_t i = 0; i < def->route_count; i++)
        add_handler(s, host, def->routes[i].path, NULL, &def->routes[i]);

    if (def->init != NULL && def->init(s, def->closure, &err) != ST_OK) {
        log_event(LOG_ERROR, "svc.init", "service failed to start", LOG_ERR(&err));
        goto cleanup;
    }
    h2o_context_init(&s->h2o_ctx, s->loop, &s->h2o_config);
    s->h2o_ctx_ready = true;
    s->accept_ctx.ctx = &s->h2o_ctx;
    s->accept_ctx.hosts = s->h2o_config.hosts;
    if (open_listener(s, &err) != ST_OK) {
        log_event(LOG_ERROR, "svc.listen", "cannot open the HTTP listener", LOG_ERR(&err));
        goto cleanup;
    }

    pthread_create(&s->health_thread, NULL, health_main, s);
    s->health_started = true;
    for (size_t i = 0; i < def->consumer_count; i++) {
        int threads = def->consumers[i].threads > 0 ? def->consumers[i].threads : 1;
        for (int t = 0; t < threads && s->consumer_threads < SVC_CONSUMER_THREADS_MAX; t++) {
            consumer_slot *slot = &s->consumers[s->consumer_threads++];
            slot->owner = s;
            slot->spec = &def->consumers[i];
            slot->started = pthread_create(&slot->thread, NULL, consumer_main, slot) == 0;
        }
    }
    log_event(LOG_INFO, "svc.started", "serving", LOG_STR("listen", s->common.listen));

    while (!atomic_load(&s->stop_requested))
        h2o_evloop_run(s->loop, 100);

    /* Graceful drain: not ready, consumers finish the message in hand, hooks, HTTP. */
    int64_t deadline = now_ms() + s->common.drain_timeout_ms;
    atomic_store(&s->draining, true);
    for (size_t i = 0; i < s->consumer_threads; i++)
        if (s->consumers[i].started)
            pthread_join(s->consumers[i].thread, NULL);
    if (def->stop != NULL)
        def->stop(s, def->closure);
    drain_http(s, deadline);
    exit_code = 0;
    log_event(LOG_INFO, "svc.stopped", "stopped cleanly");

cleanup:
    svc_request_stop(s);
    if (s->health_started)
        pthread_join(s->health_thread, NULL);
    if (exit_code != 0) {
        for (size_t i = 0; i < s->consumer_threads; i++)
            if (s->consumers[i].started)
                pthread_join(s->consumers[i].thread, NULL);
    }
    if (def->fini != NULL)
        def->fini(s, def->closure);
    if (s->listener != NULL) {
        h2o_socket_close(s->listener);
        s->listener = NULL;
    }
    /* The h2o context and config are not disposed: h2o 2.2 asserts that no timer is linked,
     * and its internal timers (date cache, closing sockets) may still be; the process ends
     * here and everything stays reachable from the static instance. */
    bus_destroy(s->bus);
    bus_registry_destroy(s->registry);
    db_destroy(s->main_db);
    met_registry_destroy(s->metrics);
    cfg_release(common_fields, common_count, &s->common);
    if (def->config_count > 0)
        cfg_release(def->config, def->config_count, def->config_target);
    return exit_code;
}
