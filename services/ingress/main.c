/* ess-ingress: LINE webhook -> JetStream stream LINE_IN. What the service is; the runtime
 * (libs/svc) does the rest. The webhook path is in ingress_http.c, the parser in
 * ingress_webhook.c, the signature in ingress_signature.c. */
#include <stddef.h>

#include "ingress_http.h"
#include "svc.h"

static ingress_service service;

static const cfg_field config[] = {
    CFG_SECRET("ESS_LINE_CHANNEL_SECRET", 256,
               "LINE channel secret: key of the webhook signature (x-line-signature)",
               ingress_service, config.channel_secret),
    CFG_SIZE("ESS_INGRESS_MAX_BODY", "1MiB", 1024, 16 << 20,
             "largest webhook body accepted; larger ones are answered 413", ingress_service,
             config.max_body),
    CFG_INT("ESS_INGRESS_MAX_EVENTS", "100", 1, 1000,
            "most events in one webhook; more are answered 400", ingress_service,
            config.max_events),
    CFG_DURATION("ESS_INGRESS_PUBLISH_TIMEOUT", "1s", 10, 1900,
                 "how long a webhook waits for JetStream to store its events before 503 "
                 "(LINE waits 2 s)",
                 ingress_service, config.publish_timeout_ms),
};

static const svc_route routes[] = {
    {.path = "/line/webhook", .handler = ingress_handle_webhook},
};

int main(int argc, char **argv)
{
    const svc_def def = {
        .name = "ingress",
        .summary = "receives LINE webhooks and stores each event in JetStream (LINE_IN)",
        .listen_var = "ESS_INGRESS_LISTEN",
        .listen_default = "127.0.0.1:8080",
        .config = config,
        .config_count = sizeof(config) / sizeof(config[0]),
        .config_target = &service,
        .needs_nats = true,
        .routes = routes,
        .route_count = sizeof(routes) / sizeof(routes[0]),
        .closure = &service,
        .init = ingress_init,
        .fini = ingress_fini,
        .ready = ingress_ready,
    };
    return svc_main(&def, argc, argv);
}
