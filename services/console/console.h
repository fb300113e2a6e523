/* console: what the modules of ess-console share — its configuration and state.
 *
 * Threads (see README.md, "How it runs"):
 *   - the event loop (libs/svc, h2o): parses requests, serves the embedded web files, keeps the
 *     Server-Sent-Events streams and their buffers, timers (login delays, heartbeats); it never
 *     waits for PostgreSQL;
 *   - query workers (ESS_CONSOLE_WORKERS), each with its own PostgreSQL connection: sessions,
 *     cases, statistics, the map, logins; they hand each answer back to the loop;
 *   - export workers (ESS_CONSOLE_EXPORT_WORKERS), each with its own connection: one export at
 *     a time each, fetched in chunks, each chunk sent only once the client took the previous;
 *   - the live thread (nats.c's delivery thread of the ordered consumer) with its own
 *     connection: reads the incident of each ESS event and hands the CASE to the loop.
 * The shared state below is read-only after init, except where a lock is named. */
#ifndef CONSOLE_H
#define CONSOLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "console_auth.h"
#include "metrics.h"
#include "vault.h"

struct svc;

typedef struct console_config {
    int64_t ack_timeout_ms;        /* ESS_ACK_TIMEOUT: the take clock turns red past it */
    int64_t session_lifetime_ms;   /* ESS_CONSOLE_SESSION_LIFETIME */
    int64_t session_idle_ms;       /* ESS_CONSOLE_SESSION_IDLE */
    int64_t login_delay_base_ms;   /* ESS_CONSOLE_LOGIN_DELAY_BASE */
    int64_t login_delay_max_ms;    /* ESS_CONSOLE_LOGIN_DELAY_MAX */
    int64_t login_window_ms;       /* ESS_CONSOLE_LOGIN_WINDOW */
    int64_t sse_heartbeat_ms;      /* ESS_CONSOLE_SSE_HEARTBEAT */
    int64_t sse_max_clients;       /* ESS_CONSOLE_SSE_MAX_CLIENTS */
    int64_t sse_buffer_bytes;      /* ESS_CONSOLE_SSE_BUFFER */
    int64_t export_max_rows;       /* ESS_CONSOLE_EXPORT_MAX_ROWS */
    int64_t workers;               /* ESS_CONSOLE_WORKERS */
    int64_t export_workers;        /* ESS_CONSOLE_EXPORT_WORKERS */
    int64_t queue_max;             /* ESS_CONSOLE_QUEUE */
    int64_t query_timeout_ms;      /* ESS_CONSOLE_QUERY_TIMEOUT */
    cfg_key data_key;              /* ESS_DATA_KEY */
    bool secure_cookie;            /* ESS_CONSOLE_SECURE_COOKIE */
    bool trust_proxy;              /* ESS_CONSOLE_TRUST_PROXY */
} console_config;

typedef struct console_metrics {
    met_counter *logins_ok, *logins_failed, *logins_refused;
    met_gauge *login_last_delay_ms; /* the delay of the latest failed login (tests, alerts) */
    met_counter *requests_rejected;  /* 429: the work queue was full */
    met_gauge *sse_clients;
    met_counter *sse_events, *sse_dropped;
    met_counter *live_events, *live_errors;
    met_counter *export_rows;
    met_counter *phone_reveals;
    met_histogram *query_seconds;
} console_metrics;

/* The province map, built once per geo version (console_stats.c). Guarded by lock. */
typedef struct console_map_cache {
    pthread_mutex_t lock;
    int64_t geo_version; /* -1: not built */
    char *body;          /* GeoJSON text, heap */
    size_t len;
    char etag[48];
} console_map_cache;

typedef struct console_server console_server;
typedef struct console_live console_live;

typedef struct console_app {
    console_config config;
    vault_keys keys;
    /* scrypt hash of a random password: what an unknown name is checked against */
    char dummy_hash[CONSOLE_HASH_TEXT_MAX];
    struct svc *svc; /* the runtime (svc.h) */
    console_metrics metrics;
    console_map_cache map;
    console_server *server; /* the loop side (console_server.c) */
    console_live *live;     /* the JetStream side (console_live.c) */
} console_app;

/* The throttle settings of the configuration. */
console_login_throttle console_app_throttle(const console_app *app);

#endif
