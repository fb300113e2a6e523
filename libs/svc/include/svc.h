/* svc: the runtime every ESS service runs in.
 *
 * A service's main.c fills a svc_def (what it is: name, config table, consumers, hooks) and
 * calls svc_main. The runtime then:
 *   1. handles --help (config table) and --version;
 *   2. loads the common config (ESS_NATS_URL, ESS_PG_DSN, ESS_LOG_LEVEL, ESS_DRAIN_TIMEOUT,
 *      the service's listen variable) together with the service's own table, reporting every
 *      problem of both in one message and exiting 2;
 *   3. sets up JSON logging, blocks SIGTERM/SIGINT/SIGPIPE in every thread and waits for them
 *      on a dedicated thread;
 *   4. connects NATS (retrying forever, readiness false meanwhile) and ensures the registry's
 *      streams and consumers when needs_nats; opens PostgreSQL when needs_pg;
 *   5. serves HTTP/1.1 on the listen address: GET /healthz (alive), GET /readyz (every
 *      dependency reachable, not draining), GET /metrics (Prometheus text), plus the
 *      service's own routes;
 *   6. runs one thread per declared consumer: poll, handle, ack; a service with needs_pg
 *      fetches nothing while its health check finds PostgreSQL unreachable, so an outage
 *      longer than the retry budget leaves messages waiting in JetStream, not dead-lettered;
 *   7. on SIGTERM/SIGINT: readiness turns false, consumers stop fetching and finish the
 *      message in hand, the stop hook runs, pending publishes flush; bounded by
 *      ESS_DRAIN_TIMEOUT; exit 0.
 * Exit codes: 0 clean stop, 1 start-up failure (logged), 2 configuration problem. */
#ifndef ESS_SVC_H
#define ESS_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "cfg.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "status.h"

struct st_h2o_req_t;
typedef struct svc svc;

/* The common configuration, readable by services through svc_common(). */
typedef struct svc_common_config {
    char *nats_url;              /* ESS_NATS_URL */
    int64_t nats_replicas;       /* ESS_NATS_REPLICAS: 0 = as proto/registry.json declares */
    char *pg_dsn;                /* ESS_PG_DSN */
    char *log_level;             /* ESS_LOG_LEVEL */
    char *listen;                /* the service's listen variable */
    int64_t drain_timeout_ms;    /* ESS_DRAIN_TIMEOUT */
    int64_t http_max_connections; /* ESS_HTTP_MAX_CONNECTIONS */
    int64_t http_request_timeout_ms; /* ESS_HTTP_REQUEST_TIMEOUT: headers + body */
} svc_common_config;

/* An HTTP route handler, called on the event-loop thread: must not block. Returns 0 when it
 * answered (h2o_send_inline etc.), -1 to decline (404 from the runtime). */
typedef int (*svc_http_fn)(svc *s, struct st_h2o_req_t *req, void *closure);

typedef struct svc_route {
    const char *path; /* exact path prefix, e.g. "/line/webhook" */
    svc_http_fn handler;
} svc_route;

typedef struct svc_consumer_spec {
    const char *durable;   /* consumer name in proto/registry.json */
    bus_handler_fn handler;
    int batch;             /* messages per fetch; 0 = 16 */
    int threads;           /* polling threads; 0 = 1 (each its own db handle if needs_pg) */
    /* Back-pressure for handlers that hold deliveries (BUS_DEFER): how many more messages
     * the service can take now. The runtime fetches at most that many, and none while it is
     * 0 (it asks again shortly). NULL = always `batch`. Called on the polling thread. */
    int (*capacity)(void *closure);
} svc_consumer_spec;

/* A readiness check beyond NATS/PostgreSQL (e.g. "streams present"); called from the health
 * thread about once a second, may block briefly. Return ST_OK when ready. */
typedef st_code (*svc_ready_fn)(svc *s, void *closure, st_error *err);

typedef struct svc_def {
    const char *name;           /* "ingress": logs "svc":"ingress", client "ess-ingress" */
    const char *summary;        /* one line for --help */
    const char *listen_var;     /* "ESS_INGRESS_LISTEN" */
    const char *listen_default; /* "127.0.0.1:8080" */
    const cfg_field *config;    /* the service's own variables; may be NULL */
    size_t config_count;
    void *config_target;        /* struct the config fields' offsets point into */
    bool needs_nats;
    bool needs_pg;
    const svc_consumer_spec *consumers;
    size_t consumer_count;
    const svc_route *routes;
    size_t route_count;
    void *closure;              /* the service's state, passed to every hook */
    /* After config, logging and dependencies; before serving. Fail = exit 1. */
    st_code (*init)(svc *s, void *closure, st_error *err);
    /* When draining starts (after consumers stopped). */
    void (*stop)(svc *s, void *closure);
    /* Last, after every thread stopped. */
    void (*fini)(svc *s, void *closure);
    svc_ready_fn ready;
} svc_def;

/* Runs the service; returns the process exit code. Blocks until stopped. */
int svc_main(const svc_def *def, int argc, char **argv);

/* Accessors for hooks and handlers; all borrowed, valid until svc_main returns. */
const svc_common_config *svc_common(const svc *s);
const svc_def *svc_definition(const svc *s);
bus *svc_bus(svc *s);                  /* NULL unless needs_nats */
const bus_registry *svc_registry(const svc *s);
met_registry *svc_metrics(svc *s);
/* The db handle of the calling consumer thread, or of the main thread in init/stop/fini.
 * NULL unless needs_pg. */
db *svc_db(svc *s);
/* HTTP limits for the service's routes; call from init. max_body: request bodies above it
 * are answered 413 before any handler runs. */
void svc_http_set_max_body(svc *s, size_t max_body_bytes);

/* The event loop (h2o_evloop_t *) for services that need timers or sockets on it. */
void *svc_loop(svc *s);
/* True once a stop was requested. */
bool svc_stopping(const svc *s);
/* Requests a stop as SIGTERM would (thread-safe). */
void svc_request_stop(svc *s);

#endif
