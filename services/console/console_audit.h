/* console_audit: the console's records in the audit chain (services/audit/audit_store.h), as
 * essctl writes its own (tools/essctl/essctl_audit.c):
 *   audit.console.login  {"user","ok","peer_hash","tool":"ess-console"}    every login attempt
 *   audit.pii.read       {"case_number","incident_id","field":"phone","reader","reason",
 *                         "tool":"ess-console"}                           every phone reveal
 * Free text (a typed name, a reason) is scrubbed of phone-like runs and LINE ids before it is
 * stored; the client address only as a keyed hash; never a password.
 * Each call is one transaction of its own; blocks on the database. */
#ifndef CONSOLE_AUDIT_H
#define CONSOLE_AUDIT_H

#include <stdbool.h>
#include <stdint.h>

#include "db.h"
#include "status.h"

st_code console_audit_login(db *d, const char *user_name, bool ok,
                            const unsigned char peer_hash[32], st_error *err);

st_code console_audit_pii_read(db *d, const char *case_number, int64_t incident_id,
                               const char *reader, const char *reason, st_error *err);

#endif
