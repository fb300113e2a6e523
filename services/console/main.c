/* ess-console: the commanders' console — live cases, map, statistics, exports. What the
 * service is; the runtime (libs/svc) does the rest. The loop side is console_server.c, the API
 * console_http.c, the live stream console_live.c. See README.md. */
#include <stddef.h>

#include "console.h"
#include "console_server.h"

static console_app app;

static const cfg_field config[] = {
    CFG_KEY32("ESS_DATA_KEY",
              "data key (32 bytes, base64): opens phone numbers (masked, or revealed and "
              "audited) and keys the hashes of login throttling",
              console_app, config.data_key),
    CFG_DURATION("ESS_ACK_TIMEOUT", "3m", 1000, 24LL * 3600 * 1000,
                 "as for ess-conversation: a case not taken this long shows a red clock",
                 console_app, config.ack_timeout_ms),
    CFG_DURATION("ESS_CONSOLE_SESSION_LIFETIME", "12h", 60000, 7LL * 24 * 3600 * 1000,
                 "a session ends this long after login, whatever happens",
                 console_app, config.session_lifetime_ms),
    CFG_DURATION("ESS_CONSOLE_SESSION_IDLE", "1h", 60000, 7LL * 24 * 3600 * 1000,
                 "a session ends after this long without a request (an open live board "
                 "counts as activity)",
                 console_app, config.session_idle_ms),
    CFG_DURATION("ESS_CONSOLE_LOGIN_DELAY_BASE", "250ms", 1, 60000,
                 "delay of the answer to the first failed login of an account or address; "
                 "doubles with each further failure",
                 console_app, config.login_delay_base_ms),
    CFG_DURATION("ESS_CONSOLE_LOGIN_DELAY_MAX", "8s", 1, 600000,
                 "longest delay of a failed login", console_app, config.login_delay_max_ms),
    CFG_DURATION("ESS_CONSOLE_LOGIN_WINDOW", "15m", 1000, 24LL * 3600 * 1000,
                 "failed logins older than this are forgotten", console_app,
                 config.login_window_ms),
    CFG_DURATION("ESS_CONSOLE_SSE_HEARTBEAT", "15s", 100, 600000,
                 "comment line sent on every event stream this often (keeps proxies from "
                 "closing it)",
                 console_app, config.sse_heartbeat_ms),
    CFG_INT("ESS_CONSOLE_SSE_MAX_CLIENTS", "256", 1, 100000,
            "event streams open at once; more are answered 429", console_app,
            config.sse_max_clients),
    CFG_SIZE("ESS_CONSOLE_SSE_BUFFER", "256KiB", 4096, 64 << 20,
             "events waiting for one slow client at most; a client that falls further behind "
             "is dropped (its browser reconnects)",
             console_app, config.sse_buffer_bytes),
    CFG_INT("ESS_CONSOLE_EXPORT_MAX_ROWS", "1000000", 1, 100000000,
            "cases in one export at most (the rest is cut; X-Ess-Row-Limit says so)",
            console_app, config.export_max_rows),
    CFG_INT("ESS_CONSOLE_WORKERS", "4", 1, 64,
            "threads (each with a PostgreSQL connection) answering API requests", console_app,
            config.workers),
    CFG_INT("ESS_CONSOLE_EXPORT_WORKERS", "2", 1, 64,
            "exports streamed at once (each a thread and a PostgreSQL connection); a few more "
            "wait, further ones are answered 429",
            console_app, config.export_workers),
    CFG_INT("ESS_CONSOLE_QUEUE", "256", 1, 100000,
            "API requests waiting for a worker at most; more are answered 429", console_app,
            config.queue_max),
    CFG_DURATION("ESS_CONSOLE_QUERY_TIMEOUT", "10s", 100, 600000,
                 "statement timeout of the console's queries (each export page is one)",
                 console_app, config.query_timeout_ms),
    CFG_BOOL("ESS_CONSOLE_SECURE_COOKIE", "0",
             "mark the session cookie Secure (set it behind TLS; also done per request when "
             "X-Forwarded-Proto is https)",
             console_app, config.secure_cookie),
    CFG_BOOL("ESS_CONSOLE_TRUST_PROXY", "0",
             "take the client address for login throttling from the last X-Forwarded-For "
             "entry (only behind a reverse proxy that sets it)",
             console_app, config.trust_proxy),
};

static const svc_route routes[] = {
    {.path = "/", .handler = console_route},
};

int main(int argc, char **argv)
{
    const svc_def def = {
        .name = "console",
        .summary = "the commanders' console: live cases over Server-Sent Events, map, "
                   "statistics, exports, behind logins with sessions and CSRF protection",
        .listen_var = "ESS_CONSOLE_LISTEN",
        .listen_default = "127.0.0.1:8081",
        .config = config,
        .config_count = sizeof(config) / sizeof(config[0]),
        .config_target = &app,
        .needs_nats = true,
        .needs_pg = true,
        .routes = routes,
        .route_count = sizeof(routes) / sizeof(routes[0]),
        .closure = &app,
        .init = console_init,
        .stop = console_stop,
        .fini = console_fini,
        .ready = console_ready,
    };
    return svc_main(&def, argc, argv);
}
