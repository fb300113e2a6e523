/* notifier_routed: the ess.incident.routed event (proto/schemas/ess.incident.routed.schema.json)
 * as far as the notifier needs it: which incident, which area and station, and the LINE groups
 * of the first escalation level (the lowest `level` among the targets), which get the card now.
 * Later levels are the escalation service's business.
 *
 * Optional fields the georouter may add are used when present and never required:
 * area.<tambon|district|province>_name(_th), stations[0].name(_th). Names missing here come
 * from PostgreSQL (notifier_incident.c).
 *
 * Pure; thread-safe. */
#ifndef NOTIFIER_ROUTED_H
#define NOTIFIER_ROUTED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define NOTIFIER_ROUTED_GROUPS_MAX 32
#define NOTIFIER_ROUTED_BYTES_MAX (256 * 1024)
#define NOTIFIER_GROUP_ID_MAX 64

typedef struct notifier_routed {
    int64_t incident_id;
    char case_number[64];
    char tambon_code[16], district_code[16], province_code[16]; /* "" = not given */
    char tambon_name[256], district_name[256], province_name[256];
    char station_id[65]; /* stations[0]: the responsible (nearest) station; "" = none */
    char station_name[512];
    bool has_station_distance;
    int64_t station_distance_m;
    int first_level;    /* lowest target level, -1 without targets */
    size_t group_count; /* distinct groups of first_level, in event order */
    char groups[NOTIFIER_ROUTED_GROUPS_MAX][NOTIFIER_GROUP_ID_MAX + 1];
    size_t groups_dropped; /* groups of first_level beyond NOTIFIER_ROUTED_GROUPS_MAX */
} notifier_routed;

/* Parses the event. ST_INVALID with a reason (no values) when it breaks the schema's required
 * parts: incident_id >= 1, case_number, targets (group ids must be LINE ids). A target list
 * that is empty is valid (group_count 0: nobody to notify). */
st_code notifier_routed_parse(const char *data, size_t len, notifier_routed *ret_routed,
                              st_error *err);

/* Parses ess.incident.escalated (proto/schemas/ess.incident.escalated.schema.json) into the
 * same shape: the incident, first_level = the event's level, groups = its "groups" (the level
 * the case was raised to; empty for a reminder-only step). Area and station come from the
 * incident row (the georouter recorded them). ST_INVALID as notifier_routed_parse. */
st_code notifier_escalated_parse(const char *data, size_t len, notifier_routed *ret_routed,
                                 st_error *err);

#endif
