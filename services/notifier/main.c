/* ess-notifier: the only service that calls the LINE API. What the service is; the runtime
 * (libs/svc) does the rest. Handlers and hooks are in notifier_service.c, the HTTP client in
 * notifier_sender.c, the responder card in notifier_card.c. See README.md. */
#include <stddef.h>

#include "notifier_service.h"

static notifier_service service;

static const cfg_field config[] = {
    CFG_SECRET("ESS_LINE_CHANNEL_TOKEN", 1024,
               "LINE channel access token (Authorization: Bearer) for reply and push",
               notifier_service, config.channel_token),
    CFG_SECRET("ESS_LINE_CHANNEL_SECRET", 1024,
               "LINE channel secret: keys the pseudonym of the source in the line.in subject a "
               "profile answer is published on, as ess-ingress does for LINE's events",
               notifier_service, config.channel_secret),
    CFG_URL("ESS_LINE_API_BASE", "https://api.line.me", "http|https",
            "LINE Messaging API base address (the line-emulator in development and tests)",
            notifier_service, config.api_base),
    CFG_KEY32("ESS_DATA_KEY",
              "data key (32 bytes, base64): opens the reporter's phone number for the card",
              notifier_service, config.data_key),
    CFG_INT("ESS_NOTIFIER_QUEUE", "1024", 1, 100000,
            "deliveries held at once (waiting for LINE); fetching pauses when full",
            notifier_service, config.queue_max),
    CFG_INT("ESS_NOTIFIER_CONCURRENCY", "128", 1, 1024,
            "LINE requests in flight at once (needed: rate x LINE latency, e.g. 2000/s x 50 ms)",
            notifier_service, config.concurrency),
    CFG_DURATION("ESS_NOTIFIER_CONNECT_TIMEOUT", "3s", 100, 60000,
                 "time to open a connection to LINE", notifier_service, config.connect_timeout_ms),
    CFG_DURATION("ESS_NOTIFIER_REQUEST_TIMEOUT", "10s", 100, 120000,
                 "time for a whole LINE request; past it the request counts as failed and is "
                 "retried with the same retry key",
                 notifier_service, config.request_timeout_ms),
    CFG_INT("ESS_LINE_RATE_LIMIT", "2000", 1, 1000000,
            "LINE requests per second at most (token bucket; LINE allows 2,000 per channel)",
            notifier_service, config.rate_limit),
    CFG_DURATION("ESS_NOTIFIER_BACKOFF_MIN", "500ms", 1, 60000,
                 "first retry delay (and first pause after a 429); doubles per attempt",
                 notifier_service, config.backoff_min_ms),
    CFG_DURATION("ESS_NOTIFIER_BACKOFF_MAX", "60s", 1, 3600000,
                 "longest retry delay and longest pause after repeated 429s", notifier_service,
                 config.backoff_max_ms),
    CFG_DURATION("ESS_NOTIFIER_REPLY_MAX_AGE", "50s", 1, 3600000,
                 "older reply commands go by push at once (LINE's reply tokens live about a "
                 "minute)",
                 notifier_service, config.reply_max_age_ms),
};

static const svc_consumer_spec consumers[] = {
    {.durable = "notifier-out",
     .handler = notifier_handle_out,
     .batch = 64,
     .capacity = notifier_capacity},
    {.durable = "notifier-routed",
     .handler = notifier_handle_routed,
     .batch = 16,
     .capacity = notifier_capacity},
    {.durable = "notifier-escalated",
     .handler = notifier_handle_escalated,
     .batch = 16,
     .capacity = notifier_capacity},
};

int main(int argc, char **argv)
{
    const svc_def def = {
        .name = "notifier",
        .summary = "sends LINE replies and pushes (LINE_OUT), the responder card of every "
                   "routed or escalated incident, each exactly once, and looks profiles up",
        .listen_var = "ESS_NOTIFIER_LISTEN",
        .listen_default = "127.0.0.1:8084",
        .config = config,
        .config_count = sizeof(config) / sizeof(config[0]),
        .config_target = &service,
        .needs_nats = true,
        .needs_pg = true,
        .consumers = consumers,
        .consumer_count = sizeof(consumers) / sizeof(consumers[0]),
        .closure = &service,
        .init = notifier_init,
        .stop = notifier_stop,
        .fini = notifier_fini,
    };
    return svc_main(&def, argc, argv);
}
