/* geo_route: from a decision and the teams on record to the target groups, and the JSON that
 * carries both (ess.incident.routed, `essctl geo locate --json`). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "geo.h"

const char *geo_team_kind_name(geo_team_kind kind)
{
    switch (kind) {
    case GEO_TEAM_PROVINCIAL_COMMAND:
        return "provincial_command";
    case GEO_TEAM_NATIONAL_CENTRE:
        return "national_centre";
    case GEO_TEAM_MULTIDISCIPLINARY:
    default:
        return "multidisciplinary";
    }
}

bool geo_team_kind_parse(const char *text, geo_team_kind *ret_kind)
{
    static const geo_team_kind kinds[] = {GEO_TEAM_MULTIDISCIPLINARY, GEO_TEAM_PROVINCIAL_COMMAND,
                                          GEO_TEAM_NATIONAL_CENTRE};
    for (size_t i = 0; text != NULL && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(text, geo_team_kind_name(kinds[i])) == 0) {
            *ret_kind = kinds[i];
            return true;
        }
    }
    return false;
}

const char *geo_reason_name(geo_reason reason)
{
    switch (reason) {
    case GEO_REASON_NEAREST_POLYGON:
        return "nearest_polygon";
    case GEO_REASON_OUTSIDE_THAILAND:
        return "outside_thailand";
    case GEO_REASON_NO_TEAM:
        return "no_team";
    case GEO_REASON_IN_POLYGON:
    default:
        return "in_polygon";
    }
}

static bool same(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

typedef struct target_list {
    geo_target *items;
    size_t count;
} target_list;

static void add_target(target_list *list, const geo_team_group *g, int level)
{
    if (list->count == GEO_TARGETS_MAX || g->group_id == NULL || g->group_id[0] == '\0')
        return;
    for (size_t i = 0; i < list->count; i++)
        if (strcmp(list->items[i].group_id, g->group_id) == 0)
            return; /* a group serves one team; listed once whatever the rows say */
    list->items[list->count++] = (geo_target){.team_id = g->team_id,
                                              .team_name = g->team_name,
                                              .kind = g->kind,
                                              .group_id = g->group_id,
                                              .level = level};
}

typedef enum team_role {
    ROLE_NONE,
    ROLE_STATION,
    ROLE_PROVINCE,
    ROLE_COMMAND,
    ROLE_NATIONAL
} team_role;

static team_role role_of(const geo_decision *d, const geo_team_group *g)
{
    if (g->kind == GEO_TEAM_NATIONAL_CENTRE)
        return ROLE_NATIONAL;
    if (d->match == GEO_MATCH_NONE || !same(g->province_code, d->province.code))
        return ROLE_NONE;
    if (g->kind == GEO_TEAM_PROVINCIAL_COMMAND)
        return g->station_id == NULL || (d->has_station && same(g->station_id, d->station.id))
                   ? ROLE_COMMAND
                   : ROLE_NONE;
    if (g->station_id == NULL)
        return ROLE_PROVINCE;
    return d->has_station && same(g->station_id, d->station.id) ? ROLE_STATION : ROLE_NONE;
}

/* A team whose area is the n-th next nearest station of the province. */
static bool next_station_team(const geo_decision *d, const geo_team_group *g, size_t n)
{
    return g->kind == GEO_TEAM_MULTIDISCIPLINARY && g->station_id != NULL &&
           d->match != GEO_MATCH_NONE && same(g->province_code, d->province.code) &&
           same(g->station_id, d->nearest[n].id) &&
           !(d->has_station && same(g->station_id, d->station.id));
}

void geo_select_targets(const geo_decision *decision, const geo_team_group *groups,
                        size_t group_count, geo_target *ret_targets, size_t *ret_count,
                        geo_reason *ret_reason)
{
    target_list list = {.items = ret_targets, .count = 0};
    /* Level 0: the station's own team first (it is nearest), then the province's. */
    static const team_role level0[] = {ROLE_STATION, ROLE_PROVINCE};
    for (size_t r = 0; r < sizeof(level0) / sizeof(level0[0]); r++)
        for (size_t i = 0; i < group_count; i++)
            if (role_of(decision, &groups[i]) == level0[r])
                add_target(&list, &groups[i], 0);
    bool local = list.count > 0;
    /* Then the next nearest stations' own teams, nearest first: escalation's first step. */
    int command_level = 0;
    if (local) {
        size_t before = list.count;
        for (size_t n = 0; n < decision->nearest_count && n < GEO_NEAREST_MAX; n++)
            for (size_t i = 0; i < group_count; i++)
                if (next_station_team(decision, &groups[i], n))
                    add_target(&list, &groups[i], 1);
        command_level = list.count > before ? 2 : 1; /* levels stay consecutive */
    }
    /* With nobody local, the command and the national centre are told at once. */
    size_t before_command = list.count;
    for (size_t i = 0; i < group_count; i++)
        if (role_of(decision, &groups[i]) == ROLE_COMMAND)
            add_target(&list, &groups[i], command_level);
    int national_level = !local                       ? 0
                         : list.count > before_command ? command_level + 1
                                                       : command_level;
    for (size_t i = 0; i < group_count; i++)
        if (role_of(decision, &groups[i]) == ROLE_NATIONAL)
            add_target(&list, &groups[i], national_level);
    *ret_count = list.count;
    if (decision->match == GEO_MATCH_NONE)
        *ret_reason = GEO_REASON_OUTSIDE_THAILAND;
    else if (!local)
        *ret_reason = GEO_REASON_NO_TEAM;
    else if (decision->match == GEO_MATCH_NEAREST_POLYGON)
        *ret_reason = GEO_REASON_NEAREST_POLYGON;
    else
        *ret_reason = GEO_REASON_IN_POLYGON;
}

/* ---- JSON -------------------------------------------------------------------------------- */

static double metres(double distance)
{
    return isfinite(distance) ? round(distance) : 0.0;
}

/* Coordinates rounded to 6 decimals (about 0.1 m): the same text on every platform. */
static double degrees(double value)
{
    return round(value * 1e6) / 1e6;
}

static bool add_station(cJSON *list, const geo_station_hit *s, const char *role)
{
    cJSON *item = cJSON_CreateObject();
    if (item == NULL || !cJSON_AddItemToArray(list, item))
        return false;
    return cJSON_AddStringToObject(item, "station_id", s->id) != NULL &&
           cJSON_AddStringToObject(item, "name_th", s->name_th) != NULL &&
           cJSON_AddStringToObject(item, "name_en", s->name_en) != NULL &&
           cJSON_AddNumberToObject(item, "distance_m", metres(s->distance_m)) != NULL &&
           cJSON_AddStringToObject(item, "role", role) != NULL &&
           cJSON_AddNumberToObject(item, "lat", degrees(s->lat)) != NULL &&
           cJSON_AddNumberToObject(item, "lon", degrees(s->lon)) != NULL &&
           (s->phone == NULL || s->phone[0] == '\0' ||
            cJSON_AddStringToObject(item, "phone", s->phone) != NULL);
}

static bool add_area_names(cJSON *area, const char *prefix, const geo_area_ref *ref)
{
    char key[32];
    snprintf(key, sizeof(key), "%s_code", prefix);
    if (cJSON_AddStringToObject(area, key, ref->code) == NULL)
        return false;
    snprintf(key, sizeof(key), "%s_name_th", prefix);
    if (cJSON_AddStringToObject(area, key, ref->name_th) == NULL)
        return false;
    snprintf(key, sizeof(key), "%s_name_en", prefix);
    return cJSON_AddStringToObject(area, key, ref->name_en) != NULL;
}

st_code geo_decision_json(const geo_json_input *input, char **ret_json, st_error *err)
{
    const geo_decision *d = input->decision;
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    if (ok && input->incident_id > 0) {
        ok = cJSON_AddNumberToObject(root, "incident_id", (double)input->incident_id) != NULL &&
             (input->case_number == NULL ||
              cJSON_AddStringToObject(root, "case_number", input->case_number) != NULL) &&
             (input->category == NULL ||
              cJSON_AddStringToObject(root, "category", input->category) != NULL);
    }
    cJSON *location = ok ? cJSON_AddObjectToObject(root, "location") : NULL;
    ok = location != NULL && cJSON_AddNumberToObject(location, "lat", degrees(d->lat)) != NULL &&
         cJSON_AddNumberToObject(location, "lon", degrees(d->lon)) != NULL;
    cJSON *area = ok ? cJSON_AddObjectToObject(root, "area") : NULL;
    ok = area != NULL;
    if (ok && d->match != GEO_MATCH_NONE)
        ok = add_area_names(area, "province", &d->province) &&
             add_area_names(area, "district", &d->district) &&
             add_area_names(area, "tambon", &d->tambon);
    ok = ok && cJSON_AddStringToObject(area, "match", geo_match_name(d->match)) != NULL &&
         (d->match == GEO_MATCH_NONE ||
          cJSON_AddNumberToObject(area, "distance_m", metres(d->area_distance_m)) != NULL);
    cJSON *stations = ok ? cJSON_AddArrayToObject(root, "stations") : NULL;
    ok = stations != NULL;
    if (ok && d->has_station)
        ok = add_station(stations, &d->station,
                         d->station_by_jurisdiction ? "jurisdiction" : "nearest_standing_in");
    for (size_t i = 0; ok && i < d->nearest_count; i++)
        ok = add_station(stations, &d->nearest[i], "next");
    cJSON *targets = NULL;
    if (ok && !input->without_teams) {
        targets = cJSON_AddArrayToObject(root, "targets");
        ok = targets != NULL;
    }
    for (size_t i = 0; ok && targets != NULL && i < input->target_count; i++) {
        const geo_target *t = &input->targets[i];
        cJSON *item = cJSON_CreateObject();
        ok = item != NULL && cJSON_AddItemToArray(targets, item) &&
             cJSON_AddNumberToObject(item, "team_id", (double)t->team_id) != NULL &&
             cJSON_AddStringToObject(item, "team_name", t->team_name != NULL ? t->team_name : "") !=
                 NULL &&
             cJSON_AddStringToObject(item, "kind", geo_team_kind_name(t->kind)) != NULL &&
             cJSON_AddStringToObject(item, "group_id", t->group_id) != NULL &&
             cJSON_AddNumberToObject(item, "level", t->level) != NULL;
    }
    ok = ok &&
         (input->without_teams ||
          cJSON_AddStringToObject(root, "reason", geo_reason_name(input->reason)) != NULL) &&
         cJSON_AddNumberToObject(root, "geo_version", (double)d->version) != NULL &&
         (input->routed_at == NULL ||
          cJSON_AddStringToObject(root, "routed_at", input->routed_at) != NULL);
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (text == NULL)
        return st_fail(err, ST_NOMEM, "out of memory building the decision's JSON");
    *ret_json = text;
    return ST_OK;
}
