/* notifier_incident: what the responder card shows, read from PostgreSQL.
 *
 * One statement joins the incident (deploy/migrations/0001_baseline.sql, table incidents) with
 * the names of its tambon, district, province and responsible station. Codes and the station
 * given by the routed event win over the row's (the row may be updated later than the event
 * is built); names given by the event win over the tables'. The phone number is opened with
 * vault_open (context "incident.phone"); the reporter's LINE id is never selected.
 *
 * Blocking (one query); uses the caller's db handle (one thread at a time). */
#ifndef NOTIFIER_INCIDENT_H
#define NOTIFIER_INCIDENT_H

#include "db.h"
#include "notifier_card.h"
#include "notifier_routed.h"
#include "status.h"
#include "vault.h"

#define NOTIFIER_PHONE_CONTEXT "incident.phone"

/* Fills *ret_incident (wipe it after use: it holds the phone number). ST_NOT_FOUND when no
 * incident has the id; ST_UNAVAILABLE / ST_TIMEOUT from the database; ST_INVALID when the
 * phone does not open under the key (it is then left out, and the card still goes: the code
 * is ST_OK and *ret_phone_unreadable says so). */
st_code notifier_incident_load(db *d, const vault_keys *keys, const notifier_routed *routed,
                               notifier_incident *ret_incident, bool *ret_phone_unreadable,
                               st_error *err);

#endif
