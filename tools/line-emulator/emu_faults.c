#include "emu_faults.h"

#include <string.h>

static const char *const kind_names[] = {
    [EMU_FAULT_NONE] = "none", [EMU_FAULT_500] = "500",   [EMU_FAULT_429] = "429",
    [EMU_FAULT_HANG] = "hang", [EMU_FAULT_DROP] = "drop",
};

const char *emu_fault_kind_name(emu_fault_kind kind)
{
    return (unsigned)kind <= EMU_FAULT_DROP ? kind_names[kind] : "unknown";
}

st_code emu_fault_kind_parse(const char *name, emu_fault_kind *ret_kind)
{
    for (int kind = EMU_FAULT_500; kind <= EMU_FAULT_DROP; kind++) {
        if (strcmp(kind_names[kind], name) == 0) {
            *ret_kind = (emu_fault_kind)kind;
            return ST_OK;
        }
    }
    return ST_NOT_FOUND;
}

void emu_faults_init(emu_faults *faults)
{
    memset(faults, 0, sizeof(*faults));
}

st_code emu_faults_add(emu_faults *faults, emu_endpoint endpoint, const emu_fault *fault,
                       int64_t count)
{
    if ((unsigned)endpoint >= EMU_EP_COUNT || count < 1 || count > EMU_FAULT_COUNT_MAX ||
        fault->kind == EMU_FAULT_NONE)
        return ST_INVALID;
    if (faults->rule_count[endpoint] >= EMU_FAULT_RULES_MAX)
        return ST_LIMIT;
    emu_fault_rule *rule = &faults->rules[endpoint][faults->rule_count[endpoint]++];
    rule->fault = *fault;
    rule->remaining = count;
    return ST_OK;
}

bool emu_faults_take(emu_faults *faults, emu_endpoint endpoint, emu_fault *ret_fault)
{
    if ((unsigned)endpoint >= EMU_EP_COUNT || faults->rule_count[endpoint] == 0)
        return false;
    emu_fault_rule *rules = faults->rules[endpoint];
    *ret_fault = rules[0].fault;
    if (--rules[0].remaining == 0) {
        memmove(&rules[0], &rules[1],
                (size_t)(faults->rule_count[endpoint] - 1) * sizeof(rules[0]));
        faults->rule_count[endpoint]--;
    }
    return true;
}

void emu_faults_clear(emu_faults *faults)
{
    emu_faults_init(faults);
}

cJSON *emu_faults_to_json(const emu_faults *faults)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *list = root != NULL ? cJSON_AddArrayToObject(root, "faults") : NULL;
    if (list == NULL)
        goto fail;
    for (int endpoint = 0; endpoint < EMU_EP_COUNT; endpoint++) {
        for (int i = 0; i < faults->rule_count[endpoint]; i++) {
            const emu_fault_rule *rule = &faults->rules[endpoint][i];
            cJSON *item = cJSON_CreateObject();
            if (item == NULL)
                goto fail;
            cJSON_AddItemToArray(list, item);
            if (cJSON_AddStringToObject(item, "endpoint",
                                        emu_endpoint_name((emu_endpoint)endpoint)) == NULL ||
                cJSON_AddStringToObject(item, "kind", emu_fault_kind_name(rule->fault.kind)) ==
                    NULL ||
                cJSON_AddNumberToObject(item, "remaining", (double)rule->remaining) == NULL ||
                cJSON_AddNumberToObject(item, "hangMs", (double)rule->fault.hang_ms) == NULL ||
                cJSON_AddBoolToObject(item, "accept", rule->fault.accept) == NULL)
                goto fail;
        }
    }
    return root;
fail:
    cJSON_Delete(root);
    return NULL;
}
