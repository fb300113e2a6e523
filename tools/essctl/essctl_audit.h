/* essctl audit: what other essctl commands use to leave a trace in the audit log.
 *
 * A command that shows personal data (essctl incident show --reveal-phone) records the read
 * first, and shows the value only when the record is stored:
 *
 *   const char *reader = essctl_audit_operator(as_option);   // --as NAME, or the login
 *   if (essctl_audit_pii_read(d, case_number, incident_id, "phone", reader, &err) != ST_OK)
 *       return essctl_fail(command, &err);                    // nothing revealed
 *   ... decrypt and print ...
 *
 * The record (subject "audit.pii.read", msg_id "pii.read/<random>") is appended to the same
 * hash chain as every message (services/audit/audit_store.h), in a transaction of its own;
 * its payload is {"incident_id","case_number","field","reader","tool","host"} — who read which
 * field of which case, never the value. */
#ifndef ESSCTL_AUDIT_H
#define ESSCTL_AUDIT_H

#include <stdint.h>

#include "db.h"
#include "status.h"

#define ESSCTL_AUDIT_READER_MAX 100

/* Appends the record; blocks on the database. d must not be inside a transaction.
 * case_number and field are required; incident_id 0 = unknown. reader: who reads (see
 * essctl_audit_operator). ST_INVALID for a missing argument; database errors as db.h. */
st_code essctl_audit_pii_read(db *d, const char *case_number, int64_t incident_id,
                              const char *field, const char *reader, st_error *err);

/* The reader's name: as_option when given and not empty, else $ESS_OPERATOR, else $LOGNAME,
 * else $USER, else "unknown". Borrowed (from the argument or the environment). */
const char *essctl_audit_operator(const char *as_option);

#endif
