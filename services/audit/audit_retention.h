/* audit_retention: personal data kept only as long as needed.
 *
 * Erases phone_encrypted, reporter_id_encrypted and reporter_key_hash of incidents closed or
 * cancelled more than `days` days ago (closed_at, else cancelled_at), sets pii_erased_at, and
 * appends one audit record per erased incident in the same transaction (subject
 * "audit.retention.erased", msg_id "retention.erased/<incident id>", payload
 * {"incident_id","case_number","status","ended_at","erased":[...],"retention_days","actor"} —
 * which fields held a value, never the values). Category, area, station and times stay for
 * analysis. Works in transactions of at most AUDIT_RETENTION_BATCH incidents; rows locked by
 * another run are skipped (FOR UPDATE SKIP LOCKED), so two runs at once erase each incident
 * once. Needs the privileges of the ess_retention role (migration 0005).
 *
 * Used by `essctl retention run` and by ess-audit's daily run. Blocks; never logs. */
#ifndef ESS_AUDIT_RETENTION_H
#define ESS_AUDIT_RETENTION_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "status.h"

#define AUDIT_RETENTION_BATCH 200
#define AUDIT_RETENTION_DAYS_DEFAULT 90
#define AUDIT_RETENTION_DAYS_MAX 36500

/* actor: who runs it ("essctl retention run", "ess-audit"), borrowed, stored in the records.
 * *ret_erased = incidents erased by this run (also when it fails part-way: the committed
 * batches stay). */
st_code audit_retention_run(db *d, int days, const char *actor, size_t *ret_erased,
                            st_error *err);

#endif
