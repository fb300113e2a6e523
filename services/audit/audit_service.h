/* audit_service: ess-audit's moving parts behind the svc runtime.
 *
 *   pollers (one thread per audited stream) ──hold + redact──▶ queue ──▶ writer thread
 *                                                                         │ one transaction
 *                                                                         ▼ per batch
 *                                                                     audit_log ──▶ settle (ack)
 *   housekeeping thread: the chain head every ESS_AUDIT_HEAD_INTERVAL, retention daily.
 *
 * Why ess-audit polls its consumers itself instead of through svc_consumer_spec: it holds
 * deliveries (BUS_DEFER) across threads, and a held delivery must be settled before its
 * consumer is destroyed; svc destroys a consumer as soon as its thread stops, before the stop
 * hook could write and settle what is held. Here the stop hook stops the pollers, writes what
 * may be written, settles everything (ack, or nak for what must wait), and only then destroys
 * the consumers. */
#ifndef ESS_AUDIT_SERVICE_H
#define ESS_AUDIT_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"
#include "svc.h"

typedef struct audit_config {
    cfg_key data_key;          /* ESS_DATA_KEY */
    int64_t batch;             /* ESS_AUDIT_BATCH: rows per transaction */
    int64_t flush_ms;          /* ESS_AUDIT_FLUSH: longest wait before a partial batch */
    int64_t head_interval_ms;  /* ESS_AUDIT_HEAD_INTERVAL */
    char *head_file;           /* ESS_AUDIT_HEAD_FILE ("" = none) */
    int64_t gap_wait_ms;       /* ESS_AUDIT_GAP_WAIT */
    int64_t max_pending;       /* ESS_AUDIT_MAX_PENDING: held messages per stream */
    char *durable_prefix;      /* ESS_AUDIT_DURABLE_PREFIX */
    int64_t retention_interval_ms; /* ESS_RETENTION_INTERVAL (0 = off) */
    int64_t retention_days;    /* ESS_PII_RETENTION_DAYS */
    char *retention_pg_dsn;    /* ESS_RETENTION_PG_DSN ("" = ESS_PG_DSN) */
} audit_config;

typedef struct audit_service audit_service;

/* The service state handed to svc as closure: config first (the cfg table's target). */
typedef struct audit_main {
    audit_config config;
    audit_service *service;
} audit_main;

st_code audit_service_init(svc *s, void *closure, st_error *err);
void audit_service_stop(svc *s, void *closure);
void audit_service_fini(svc *s, void *closure);
st_code audit_service_ready(svc *s, void *closure, st_error *err);

#endif
