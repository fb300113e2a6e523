/* line-emulator: a local LINE platform for development, demos and tests.
 *
 *   line-emulator                 serve the Messaging API and the /_emulator/ control API
 *   line-emulator chat --user N   play a LINE user against a running emulator (emu_chat.c)
 *
 * The configuration table below is the whole contract of the environment (README.md). */
#include <stddef.h>
#include <string.h>

#include "emu_chat.h"
#include "emu_service.h"

static emu_service service;

static const cfg_field config_fields[] = {
    CFG_SECRET("ESS_LINE_CHANNEL_SECRET", 256,
               "channel secret: signs the webhooks (x-line-signature)", emu_service,
               config.channel_secret),
    CFG_SECRET("ESS_LINE_CHANNEL_TOKEN", 1024, "channel access token the API accepts as Bearer",
               emu_service, config.channel_token),
    CFG_URL("ESS_EMULATOR_WEBHOOK_URL", "http://127.0.0.1:8080/line/webhook", "http|https",
            "where webhooks are POSTed (the ingress)", emu_service, config.webhook_url),
    CFG_STRING("ESS_EMULATOR_BOT_USER_ID", "", 33,
               "the bot's user id (webhook `destination`); empty = derived from the secret",
               emu_service, config.bot_user_id),
    CFG_DURATION("ESS_EMULATOR_REPLY_TOKEN_TTL", "60s", 100, 3600000,
                 "how long a reply token stays valid", emu_service, config.reply_token_ttl_ms),
    CFG_DURATION("ESS_EMULATOR_RETRY_KEY_TTL", "24h", 1000, 7 * 86400000LL,
                 "how long an accepted X-Line-Retry-Key is remembered", emu_service,
                 config.retry_key_ttl_ms),
    CFG_INT("ESS_EMULATOR_RATE_LIMIT", "2000", 1, 1000000,
            "requests per second per API endpoint before 429", emu_service, config.rate_limit),
    CFG_BOOL("ESS_EMULATOR_REDELIVERY", "on",
             "redeliver webhooks that got no 2xx answer (isRedelivery: true)", emu_service,
             config.redelivery),
    CFG_DURATION("ESS_EMULATOR_WEBHOOK_TIMEOUT", "2s", 100, 60000,
                 "how long a webhook POST may take before it counts as unanswered", emu_service,
                 config.webhook_timeout_ms),
    CFG_DURATION("ESS_EMULATOR_REDELIVERY_INTERVAL", "1s", 10, 3600000,
                 "wait before the first redelivery (doubles after each failure)", emu_service,
                 config.redelivery_interval_ms),
    CFG_DURATION("ESS_EMULATOR_REDELIVERY_MAX_INTERVAL", "30s", 10, 86400000,
                 "longest wait between redeliveries", emu_service,
                 config.redelivery_max_interval_ms),
    CFG_INT("ESS_EMULATOR_REDELIVERY_ATTEMPTS", "100", 1, 100000,
            "attempts per webhook before giving up (first delivery included)", emu_service,
            config.redelivery_attempts),
    CFG_ENUM("ESS_EMULATOR_ESCAPE_NON_ASCII", "sometimes", "never|sometimes|always",
             "write non-ASCII in webhook bodies as \\uXXXX (sometimes = every other attempt)",
             emu_service, config.escape_non_ascii),
    CFG_INT("ESS_EMULATOR_WEBHOOK_WORKERS", "1", 1, 16,
            "webhook POSTs in flight at once (1 keeps deliveries in order)", emu_service,
            config.webhook_workers),
    CFG_INT("ESS_EMULATOR_RECORD_MAX", "10000", 1, 1000000,
            "accepted outbound messages kept for /_emulator/messages", emu_service,
            config.record_max),
    CFG_INT("ESS_EMULATOR_CONVERSATION_MAX", "1000", 1, 100000, "entries kept per conversation",
            emu_service, config.conversation_max),
    CFG_DURATION("ESS_EMULATOR_FAULT_HANG", "30s", 1, 600000,
                 "how long a \"hang\" fault holds the answer unless the fault says", emu_service,
                 config.fault_hang_ms),
};

static const svc_route routes[] = {
    {.path = "/v2/", .handler = emu_service_handle},
    {.path = "/_emulator/", .handler = emu_service_handle},
};

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "chat") == 0)
        return emu_chat_main(argc - 1, argv + 1);
    const svc_def def = {
        .name = "line-emulator",
        .summary = "a local LINE platform: Messaging API, signed webhooks, control API "
                   "(subcommand: chat --user NAME)",
        .listen_var = "ESS_EMULATOR_LISTEN",
        .listen_default = "127.0.0.1:8090",
        .config = config_fields,
        .config_count = sizeof(config_fields) / sizeof(config_fields[0]),
        .config_target = &service,
        .routes = routes,
        .route_count = sizeof(routes) / sizeof(routes[0]),
        .closure = &service,
        .init = emu_service_init,
        .stop = emu_service_stop,
        .fini = emu_service_fini,
    };
    return svc_main(&def, argc, argv);
}
