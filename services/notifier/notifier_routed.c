#include "notifier_routed.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "notifier_command.h"

/* Copies the first string member among names that fits out; "" when none. */
static void copy_string(const cJSON *object, const char *const *names, char *out, size_t out_size)
{
    out[0] = '\0';
    for (size_t i = 0; names[i] != NULL; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, names[i]);
        if (cJSON_IsString(item) && strlen(item->valuestring) < out_size) {
            memcpy(out, item->valuestring, strlen(item->valuestring) + 1);
            return;
        }
    }
}

static bool whole_number(const cJSON *item, double min, double max, int64_t *ret_value)
{
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) || item->valuedouble < min ||
        item->valuedouble > max || floor(item->valuedouble) != item->valuedouble)
        return false;
    *ret_value = (int64_t)item->valuedouble;
    return true;
}

static void read_area(const cJSON *area, notifier_routed *routed)
{
    static const char *const tambon_code[] = {"tambon_code", NULL};
    static const char *const district_code[] = {"district_code", NULL};
    static const char *const province_code[] = {"province_code", NULL};
    static const char *const tambon_name[] = {"tambon_name_th", "tambon_name", NULL};
    static const char *const district_name[] = {"district_name_th", "district_name", NULL};
    static const char *const province_name[] = {"province_name_th", "province_name", NULL};
    copy_string(area, tambon_code, routed->tambon_code, sizeof(routed->tambon_code));
    copy_string(area, district_code, routed->district_code, sizeof(routed->district_code));
    copy_string(area, province_code, routed->province_code, sizeof(routed->province_code));
    copy_string(area, tambon_name, routed->tambon_name, sizeof(routed->tambon_name));
    copy_string(area, district_name, routed->district_name, sizeof(routed->district_name));
    copy_string(area, province_name, routed->province_name, sizeof(routed->province_name));
}

static void read_station(const cJSON *stations, notifier_routed *routed)
{
    static const char *const id[] = {"station_id", NULL};
    static const char *const name[] = {"name_th", "name", "station_name", NULL};
    const cJSON *first = cJSON_IsArray(stations) ? cJSON_GetArrayItem(stations, 0) : NULL;
    if (!cJSON_IsObject(first))
        return;
    copy_string(first, id, routed->station_id, sizeof(routed->station_id));
    copy_string(first, name, routed->station_name, sizeof(routed->station_name));
    int64_t distance = 0;
    if (whole_number(cJSON_GetObjectItemCaseSensitive(first, "distance_m"), 0, 1e9, &distance)) {
        routed->has_station_distance = true;
        routed->station_distance_m = distance;
    }
}

st_code notifier_routed_parse(const char *data, size_t len, notifier_routed *ret_routed,
                              st_error *err)
{
    notifier_routed parsed; /* ret_routed stays untouched on failure */
    notifier_routed *routed = &parsed;
    st_code code = ST_INVALID;
    cJSON *root = NULL;
    if (data == NULL || len == 0 || len > NOTIFIER_ROUTED_BYTES_MAX)
        return st_fail(err, ST_INVALID, "routed: body empty or larger than %d bytes",
                       NOTIFIER_ROUTED_BYTES_MAX);
    root = cJSON_ParseWithLength(data, len);
    if (!cJSON_IsObject(root)) {
        st_fail(err, ST_INVALID, "routed: body is not a JSON object");
        goto cleanup;
    }
    memset(routed, 0, sizeof(*routed));
    routed->first_level = -1;
    if (!whole_number(cJSON_GetObjectItemCaseSensitive(root, "incident_id"), 1, 9.0e15,
                      &routed->incident_id)) {
        st_fail(err, ST_INVALID, "routed: incident_id must be an integer >= 1");
        goto cleanup;
    }
    static const char *const case_number[] = {"case_number", NULL};
    copy_string(root, case_number, routed->case_number, sizeof(routed->case_number));
    if (routed->case_number[0] == '\0') {
        st_fail(err, ST_INVALID, "routed: case_number must be a string of 1..63 bytes");
        goto cleanup;
    }
    read_area(cJSON_GetObjectItemCaseSensitive(root, "area"), routed);
    read_station(cJSON_GetObjectItemCaseSensitive(root, "stations"), routed);

    const cJSON *targets = cJSON_GetObjectItemCaseSensitive(root, "targets");
    if (!cJSON_IsArray(targets)) {
        st_fail(err, ST_INVALID, "routed: targets must be an array");
        goto cleanup;
    }
    const cJSON *target;
    cJSON_ArrayForEach(target, targets) /* first pass: checks and the first level */
    {
        const cJSON *group = cJSON_GetObjectItemCaseSensitive(target, "group_id");
        int64_t level = 0;
        if (!cJSON_IsString(group) || !notifier_target_valid(group->valuestring) ||
            !whole_number(cJSON_GetObjectItemCaseSensitive(target, "level"), 0, 1000, &level)) {
            st_fail(err, ST_INVALID,
                    "routed: every target needs a group_id (a LINE id) and a level >= 0");
            goto cleanup;
        }
        if (routed->first_level < 0 || level < routed->first_level)
            routed->first_level = (int)level;
    }
    cJSON_ArrayForEach(target, targets)
    {
        int64_t level = 0;
        whole_number(cJSON_GetObjectItemCaseSensitive(target, "level"), 0, 1000, &level);
        if (level != routed->first_level)
            continue;
        const char *group = cJSON_GetObjectItemCaseSensitive(target, "group_id")->valuestring;
        bool seen = false;
        for (size_t i = 0; i < routed->group_count && !seen; i++)
            seen = strcmp(routed->groups[i], group) == 0;
        if (seen)
            continue;
        if (routed->group_count == NOTIFIER_ROUTED_GROUPS_MAX) {
            routed->groups_dropped++;
            continue;
        }
        memcpy(routed->groups[routed->group_count++], group, strlen(group) + 1);
    }
    *ret_routed = parsed;
    code = ST_OK;
cleanup:
    cJSON_Delete(root);
    return code;
}

/* Adds group to routed's groups once; counts what does not fit. */
static void add_group(notifier_routed *routed, const char *group)
{
    for (size_t i = 0; i < routed->group_count; i++)
        if (strcmp(routed->groups[i], group) == 0)
            return;
    if (routed->group_count == NOTIFIER_ROUTED_GROUPS_MAX) {
        routed->groups_dropped++;
        return;
    }
    memcpy(routed->groups[routed->group_count++], group, strlen(group) + 1);
}

st_code notifier_escalated_parse(const char *data, size_t len, notifier_routed *ret_routed,
                                 st_error *err)
{
    notifier_routed parsed;
    st_code code = ST_INVALID;
    cJSON *root = NULL;
    if (data == NULL || len == 0 || len > NOTIFIER_ROUTED_BYTES_MAX)
        return st_fail(err, ST_INVALID, "escalated: body empty or larger than %d bytes",
                       NOTIFIER_ROUTED_BYTES_MAX);
    root = cJSON_ParseWithLength(data, len);
    if (!cJSON_IsObject(root)) {
        st_fail(err, ST_INVALID, "escalated: body is not a JSON object");
        goto cleanup;
    }
    memset(&parsed, 0, sizeof(parsed));
    int64_t level = 0;
    static const char *const case_number[] = {"case_number", NULL};
    copy_string(root, case_number, parsed.case_number, sizeof(parsed.case_number));
    if (!whole_number(cJSON_GetObjectItemCaseSensitive(root, "incident_id"), 1, 9.0e15,
                      &parsed.incident_id) ||
        parsed.case_number[0] == '\0' ||
        !whole_number(cJSON_GetObjectItemCaseSensitive(root, "level"), 0, 1000, &level)) {
        st_fail(err, ST_INVALID,
                "escalated: incident_id >= 1, case_number and level >= 0 are required");
        goto cleanup;
    }
    parsed.first_level = (int)level;
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(root, "groups");
    if (groups != NULL && !cJSON_IsArray(groups)) {
        st_fail(err, ST_INVALID, "escalated: groups must be an array");
        goto cleanup;
    }
    const cJSON *group;
    cJSON_ArrayForEach(group, groups)
    {
        if (!cJSON_IsString(group) || !notifier_target_valid(group->valuestring)) {
            st_fail(err, ST_INVALID, "escalated: every group must be a LINE id");
            goto cleanup;
        }
        add_group(&parsed, group->valuestring);
    }
    *ret_routed = parsed;
    code = ST_OK;
cleanup:
    cJSON_Delete(root);
    return code;
}
