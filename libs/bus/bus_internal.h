/* bus_internal: helpers shared by bus.c and bus_registry.c (and their unit tests). Not part of
 * the public contract. */
#ifndef ESS_BUS_INTERNAL_H
#define ESS_BUS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "status.h"

/* Stream and durable names: 1..BUS_NAME_MAX-1 bytes of A-Z a-z 0-9 _ -. */
bool bus_name_valid(const char *name);
/* NATS subject: '.'-separated non-empty tokens, no whitespace or control characters, shorter
 * than BUS_SUBJECT_MAX; '*' and a final '>' only when allow_wildcards. */
bool bus_subject_valid(const char *subject, bool allow_wildcards);
/* True when some subject matches both patterns. Both must be valid subjects. */
bool bus_subjects_overlap(const char *a, const char *b);
/* True when every subject matched by `subject` is matched by `pattern`. */
bool bus_subject_within(const char *subject, const char *pattern);
/* "500ms", "30s", "2m", "1h", "7d", or "0" → milliseconds. ST_INVALID otherwise (also when
 * the value in nanoseconds would overflow int64). */
st_code bus_duration_parse(const char *text, int64_t *ret_ms);

#endif
