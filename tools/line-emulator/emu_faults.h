/* emu_faults: scripted failures of the Messaging API, per endpoint.
 *
 * A rule says "the next N requests to this endpoint fail like this": answer 500, answer 429,
 * hang (answer only after hang_ms, past the client's timeout), or drop the connection without
 * an answer. With `accept`, a hung or dropped request is still carried out (the message is
 * sent and recorded) and only the answer is late or lost — the case retry keys exist for.
 * Rules of one endpoint apply in the order they were added. At most EMU_FAULT_RULES_MAX rules
 * per endpoint.
 *
 * Not thread-safe: the event-loop thread owns it. */
#ifndef EMU_FAULTS_H
#define EMU_FAULTS_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "emu_endpoint.h"
#include "status.h"

#define EMU_FAULT_RULES_MAX 8
#define EMU_FAULT_COUNT_MAX 1000000

typedef enum emu_fault_kind {
    EMU_FAULT_NONE,
    EMU_FAULT_500,
    EMU_FAULT_429,
    EMU_FAULT_HANG,
    EMU_FAULT_DROP,
} emu_fault_kind;

typedef struct emu_fault {
    emu_fault_kind kind;
    int64_t hang_ms; /* EMU_FAULT_HANG */
    bool accept;     /* HANG / DROP: carry the request out, lose only the answer */
} emu_fault;

typedef struct emu_fault_rule {
    emu_fault fault;
    int64_t remaining;
} emu_fault_rule;

typedef struct emu_faults {
    emu_fault_rule rules[EMU_EP_COUNT][EMU_FAULT_RULES_MAX];
    int rule_count[EMU_EP_COUNT];
} emu_faults;

/* "500" | "429" | "hang" | "drop" and back. */
const char *emu_fault_kind_name(emu_fault_kind kind);
st_code emu_fault_kind_parse(const char *name, emu_fault_kind *ret_kind);

void emu_faults_init(emu_faults *faults);
/* ST_LIMIT when the endpoint already has EMU_FAULT_RULES_MAX rules; ST_INVALID for count
 * outside 1..EMU_FAULT_COUNT_MAX. */
st_code emu_faults_add(emu_faults *faults, emu_endpoint endpoint, const emu_fault *fault,
                       int64_t count);
/* When a rule applies to the next request of endpoint: consumes one use and returns true with
 * the fault; otherwise false. */
bool emu_faults_take(emu_faults *faults, emu_endpoint endpoint, emu_fault *ret_fault);
void emu_faults_clear(emu_faults *faults);
/* {"faults":[{"endpoint","kind","remaining","hangMs","accept"}...]}; caller cJSON_Deletes. */
cJSON *emu_faults_to_json(const emu_faults *faults);

#endif
