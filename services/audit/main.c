/* ess-audit: every message of every stream into the hash-chained audit_log, with personal
 * data removed or sealed; the chain head in the logs; the daily retention run. What the
 * service is; the runtime (libs/svc) does the rest. Receiving and writing are in
 * audit_service.c, redaction in audit_redact.c, the chain in audit_record.c and
 * audit_store.c, the order rules in audit_queue.c, retention in audit_retention.c. */
#include <stddef.h>

#include "audit_retention.h"
#include "audit_service.h"
#include "audit_store.h"
#include "svc.h"

static audit_main service;

#define DAY_MS (24LL * 3600 * 1000)

static const cfg_field config[] = {
    CFG_KEY32("ESS_DATA_KEY",
              "32 bytes, base64: seals typed texts and keys the hashes of LINE user ids",
              audit_main, config.data_key),
    CFG_INT("ESS_AUDIT_BATCH", "500", 1, AUDIT_APPEND_MAX,
            "most rows written in one transaction", audit_main, config.batch),
    CFG_DURATION("ESS_AUDIT_FLUSH", "200ms", 1, 10000,
                 "longest wait before a partial batch is written", audit_main,
                 config.flush_ms),
    CFG_DURATION("ESS_AUDIT_HEAD_INTERVAL", "5m", 100, DAY_MS,
                 "how often the chain head (seq, hash) is logged (code audit.head)",
                 audit_main, config.head_interval_ms),
    CFG_STRING("ESS_AUDIT_HEAD_FILE", "", 4096,
               "also append each chain head to this file, one JSON line each (\"\" = no file)",
               audit_main, config.head_file),
    CFG_DURATION("ESS_AUDIT_GAP_WAIT", "45s", 1000, DAY_MS,
                 "how long rows of a stream wait for a missing earlier message (must exceed "
                 "the consumers' ack_wait, 30 s)",
                 audit_main, config.gap_wait_ms),
    CFG_INT("ESS_AUDIT_MAX_PENDING", "4096", 16, 8192,
            "most messages held per stream while waiting to be written", audit_main,
            config.max_pending),
    CFG_STRING("ESS_AUDIT_DURABLE_PREFIX", "", 32,
               "prefix of the durable consumer names (side-by-side runs and tests; \"\" = the "
               "registry's audit-*)",
               audit_main, config.durable_prefix),
    CFG_DURATION("ESS_RETENTION_INTERVAL", "1d", 0, 30 * DAY_MS,
                 "how often the retention run erases old incidents' personal data; the first "
                 "run is at start (0 = never: run essctl retention run instead)",
                 audit_main, config.retention_interval_ms),
    CFG_INT("ESS_PII_RETENTION_DAYS", "90", 1, AUDIT_RETENTION_DAYS_MAX,
            "days after closing (or cancelling) an incident before its phone number and "
            "reporter LINE id are erased",
            audit_main, config.retention_days),
    CFG_FIELD_("ESS_RETENTION_PG_DSN", CFG_T_STRING, "", false, true, 0, 4096, NULL,
               "PostgreSQL for the retention run, as a member of ess_retention (\"\" = "
               "ESS_PG_DSN)",
               audit_main, config.retention_pg_dsn),
};

int main(int argc, char **argv)
{
    const svc_def def = {
        .name = "audit",
        .summary = "appends every message of every stream to the hash-chained audit log",
        .listen_var = "ESS_AUDIT_LISTEN",
        .listen_default = "127.0.0.1:8085",
        .config = config,
        .config_count = sizeof(config) / sizeof(config[0]),
        .config_target = &service,
        .needs_nats = true,
        .needs_pg = true,
        .closure = &service,
        .init = audit_service_init,
        .stop = audit_service_stop,
        .fini = audit_service_fini,
        .ready = audit_service_ready,
    };
    return svc_main(&def, argc, argv);
}
