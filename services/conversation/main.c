/* ess-conversation: the citizen's dialogue over LINE and the incident record (issue 4), and
 * the responders' side in their LINE groups: enrolment, taking a case, status back to the
 * reporter, escalation (issue 7).
 * What the service is; the runtime (libs/svc) does the rest. The handler, the relay and the
 * sweep are in conv_service.c, the transaction in conv_store.c, the dialogue in
 * conv_machine.c, every word in conv_catalog.c. See README.md. */
#include <stddef.h>

#include "conv_service.h"

static conv_service service;

static const cfg_field config[] = {
    CFG_KEY32("ESS_DATA_KEY", "32 bytes, base64: encrypts phone numbers and LINE user ids at rest",
              conv_service, config.data_key),
    CFG_DURATION("ESS_DRAFT_TTL", "30m", 1000, 7LL * 24 * 3600 * 1000,
                 "an unfinished report untouched this long expires with a short note", conv_service,
                 config.draft_ttl_ms),
    CFG_INT("ESS_REPORTS_PER_HOUR", "5", 1, 1000,
            "reports one user may submit per hour; beyond it the answer gives the hotlines",
            conv_service, config.reports_per_hour),
    CFG_DURATION("ESS_REPLY_TOKEN_MAX_AGE", "50s", 0, 60000,
                 "answer with the event's reply token while the event is at most this old "
                 "(LINE: about a minute), else push",
                 conv_service, config.reply_token_max_age_ms),
    CFG_DURATION("ESS_DRAFT_SWEEP_INTERVAL", "30s", 100, 3600 * 1000,
                 "how often expired drafts are looked for", conv_service, config.sweep_interval_ms),
    CFG_DURATION("ESS_ACK_TIMEOUT", "3m", 1000, 24LL * 3600 * 1000,
                 "a case nobody took this long is re-sent to its groups as a reminder and sent "
                 "to the next level (each level its own timer)",
                 conv_service, config.ack_timeout_ms),
    CFG_DURATION("ESS_ESCALATION_SCAN_INTERVAL", "1s", 100, 60000,
                 "how often due escalation deadlines are looked for", conv_service,
                 config.escalation_scan_ms),
    CFG_INT("ESS_ESCALATION_LAST_REMINDERS", "3", 1, 100,
            "reminders at the last level before a case is left to the console", conv_service,
            config.last_level_reminders),
#ifdef ESS_FAILPOINTS /* test builds only: see ESS_FAILPOINTS in CMakeLists.txt */
    CFG_ENUM("ESS_CONVERSATION_FAILPOINT", "none", "none|before_commit|after_commit",
             "tests only: SIGKILL itself at this point of an event", conv_service,
             config.failpoint),
    CFG_INT("ESS_CONVERSATION_FAILPOINT_AT", "1", 1, 1000000,
            "tests only: the event (1 = first) at which the failpoint fires", conv_service,
            config.failpoint_at),
#endif
};

static const svc_consumer_spec consumers[] = {
    /* One thread per process keeps LINE_IN's order within a process; replicas serialise a
     * user on the conversation row (see README.md, "Order"). */
    {.durable = "conversation", .handler = conv_handle_line_event, .batch = 16, .threads = 1},
    /* The targets of every routed case, for takes, reminders and escalation. */
    {.durable = "conversation-routed", .handler = conv_handle_routed, .batch = 16, .threads = 1},
};

int main(int argc, char **argv)
{
    const svc_def def = {
        .name = "conversation",
        .summary = "the citizen's report dialogue over LINE, the incident record, and the "
                   "responders' groups: enrolment, taking a case, escalation",
        .listen_var = "ESS_CONVERSATION_LISTEN",
        .listen_default = "127.0.0.1:8082",
        .config = config,
        .config_count = sizeof(config) / sizeof(config[0]),
        .config_target = &service,
        .needs_nats = true,
        .needs_pg = true,
        .consumers = consumers,
        .consumer_count = sizeof(consumers) / sizeof(consumers[0]),
        .closure = &service,
        .init = conv_init,
        .stop = conv_stop,
        .fini = conv_fini,
    };
    return svc_main(&def, argc, argv);
}
