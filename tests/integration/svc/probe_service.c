/* probe: the smallest real service on the svc runtime, used to test the runtime itself.
 * PROBE_NEEDS_NATS=1 / PROBE_NEEDS_PG=1 switch the dependencies on (read before svc_main,
 * because a svc_def is fixed for the process). */
#include <stdlib.h>
#include <string.h>

#include <h2o.h>

#include "svc.h"

typedef struct probe_config {
    char *required;
    int64_t count;
    char *secret;
} probe_config;

static probe_config config;

static const cfg_field probe_fields[] = {
    CFG_REQUIRED_STRING("PROBE_REQUIRED", 64, "a required value", probe_config, required),
    CFG_INT("PROBE_COUNT", "3", 1, 10, "a bounded number", probe_config, count),
    CFG_SECRET("PROBE_SECRET", 128, "a secret that must never be printed", probe_config, secret),
};

static int serve_probe(svc *s, struct st_h2o_req_t *req, void *closure)
{
    (void)s;
    (void)closure;
    static const char body[] = "probe\n";
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_send_inline(req, body, sizeof(body) - 1);
    return 0;
}

static void stop_hook(svc *s, void *closure)
{
    (void)s;
    (void)closure;
    log_event(LOG_INFO, "probe.stop_hook", "stop hook ran");
}

static const svc_route probe_routes[] = {{.path = "/probe", .handler = serve_probe}};

int main(int argc, char **argv)
{
    const char *nats = getenv("PROBE_NEEDS_NATS");
    const char *pg = getenv("PROBE_NEEDS_PG");
    svc_def def = {
        .name = "probe",
        .summary = "runtime test service",
        .listen_var = "ESS_PROBE_LISTEN",
        .listen_default = "127.0.0.1:8099",
        .config = probe_fields,
        .config_count = sizeof(probe_fields) / sizeof(probe_fields[0]),
        .config_target = &config,
        .needs_nats = nats != NULL && strcmp(nats, "1") == 0,
        .needs_pg = pg != NULL && strcmp(pg, "1") == 0,
        .routes = probe_routes,
        .route_count = 1,
        .stop = stop_hook,
    };
    return svc_main(&def, argc, argv);
}
