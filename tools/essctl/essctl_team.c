/* essctl team: the teams that receive cases, and their LINE groups.
 *
 *   essctl team add --name NAME --province TH50 --group GROUP_ID [--group GROUP_ID ...]
 *                   [--station ID] [--agency LIST] [--kind KIND] [--national]
 *       a team whose area is the province (or one station in it, with --station). KIND is
 *       multidisciplinary (default), provincial_command or national_centre; --national is
 *       short for --kind national_centre (no province: the fallback of routing). LIST is a
 *       comma-separated subset of police, social_development, shelter, prosecutor,
 *       local_network (default: all five for a multidisciplinary team, none otherwise).
 *       --group may repeat or hold a comma-separated list; a group serves one active team.
 *   essctl team list [--json] [--all]
 *       the active teams (--all: also removed ones) with their groups.
 *   essctl team remove NAME | --id ID
 *       deactivates a team (incidents and the audit log keep pointing at it); its groups are
 *       free to serve another team. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "essctl.h"
#include "geo.h"

int essctl_team_add(const essctl_command *command, int argc, char **argv);
int essctl_team_list(const essctl_command *command, int argc, char **argv);
int essctl_team_remove(const essctl_command *command, int argc, char **argv);

#define TEAM_NAME_MAX 200
#define GROUP_ID_MAX 64
#define GROUPS_MAX 16


static bool group_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > GROUP_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return false; /* a LINE id: letters and digits (the notifier checks the same) */
    }
    return true;
}

static bool name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > TEAM_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return false;
    return true;
}

typedef struct team_spec {
    const char *name;
    geo_team_kind kind;
    char province[GEO_CODE_MAX]; /* "" for the national centre */
    const char *station;         /* NULL: the whole province */
    char agencies[160];          /* PostgreSQL array literal: {police,shelter} */
    char groups[GROUPS_MAX][GROUP_ID_MAX + 1];
    size_t group_count;
    /* results */
    int64_t team_id;
} team_spec;

/* Adds a comma-separated list of group ids to spec; returns an exit code. */
static int add_group_list(const essctl_command *command, const char *value, team_spec *spec)
{
    const char *cursor = value;
    while (*cursor != '\0') {
        size_t len = strcspn(cursor, ",");
        if (!group_id_valid(cursor, len))
            return essctl_usage_error(
                command, "a group id is a LINE group id: 1..%d letters and digits", GROUP_ID_MAX);
        if (spec->group_count == GROUPS_MAX)
            return essctl_usage_error(command, "at most %d groups", GROUPS_MAX);
        memcpy(spec->groups[spec->group_count], cursor, len);
        spec->groups[spec->group_count++][len] = '\0';
        cursor += len;
        if (*cursor == ',')
            cursor++;
    }
    return ESSCTL_EXIT_OK;
}

/* Collects every --group VALUE / --group=VALUE (essctl_take_option keeps only the last of
 * several) and removes them from argv; returns an exit code. */
static int take_groups(const essctl_command *command, int *argc, char **argv, team_spec *spec)
{
    int kept = 0;
    for (int i = 0; i < *argc; i++) {
        const char *value = NULL;
        if (strcmp(argv[i], "--group") == 0) {
            if (i + 1 >= *argc)
                return essctl_usage_error(command, "--group needs a value");
            value = argv[++i];
        } else if (strncmp(argv[i], "--group=", 8) == 0) {
            value = argv[i] + 8;
        } else {
            argv[kept++] = argv[i];
            continue;
        }
        int exit_code = add_group_list(command, value, spec);
        if (exit_code != ESSCTL_EXIT_OK)
            return exit_code;
    }
    *argc = kept;
    argv[kept] = NULL;
    return ESSCTL_EXIT_OK;
}

static st_code add_tx(db *d, void *closure, st_error *err)
{
    team_spec *spec = closure;
    db_result *r = NULL;
    st_code status = ST_OK;
    if (spec->province[0] != '\0') {
        const char *params[] = {spec->province};
        if ((status = db_exec(d, "SELECT 1 FROM provinces WHERE code = $1", 1, params, &r, err)) !=
            ST_OK)
            goto cleanup;
        if (db_result_rows(r) == 0) {
            status = st_fail(err, ST_NOT_FOUND,
                             "province %s is not on record (essctl geo import loads them)",
                             spec->province);
            goto cleanup;
        }
        db_result_destroy(r);
        r = NULL;
    }
    if (spec->station != NULL) {
        const char *params[] = {spec->station};
        if ((status = db_exec(d, "SELECT coalesce(province_code, '') FROM stations WHERE id = $1",
                              1, params, &r, err)) != ST_OK)
            goto cleanup;
        if (db_result_rows(r) == 0) {
            status =
                st_fail(err, ST_NOT_FOUND, "station %.64s is not in the directory", spec->station);
            goto cleanup;
        }
        if (strcmp(db_result_value(r, 0, 0), spec->province) != 0) {
            status = st_fail(err, ST_INVALID, "station %.64s is in province %s, not %s",
                             spec->station, db_result_value(r, 0, 0), spec->province);
            goto cleanup;
        }
        db_result_destroy(r);
        r = NULL;
    }
    const char *team[] = {spec->name, geo_team_kind_name(spec->kind),
                          spec->province[0] != '\0' ? spec->province : NULL, spec->station,
                          spec->agencies};
    status = db_exec(d,
                     "INSERT INTO teams (name, kind, province_code, station_id, agencies) "
                     "VALUES ($1, $2, $3, $4, $5::text[]) RETURNING id",
                     5, team, &r, err);
    if (status == ST_CONFLICT) {
        st_fail(err, ST_CONFLICT, "an active team is already named \"%.60s\"", spec->name);
        goto cleanup;
    }
    if (status != ST_OK)
        goto cleanup;
    spec->team_id = strtoll(db_result_value(r, 0, 0), NULL, 10);
    char team_id[24];
    snprintf(team_id, sizeof(team_id), "%lld", (long long)spec->team_id);
    for (size_t i = 0; i < spec->group_count; i++) {
        db_result_destroy(r);
        r = NULL;
        const char *group[] = {spec->groups[i], team_id};
        if ((status = db_exec(d,
                              "SELECT t.name FROM team_groups g JOIN teams t ON t.id = g.team_id "
                              "WHERE g.group_id = $1 AND t.active AND t.id <> $2::bigint",
                              2, group, &r, err)) != ST_OK)
            goto cleanup;
        if (db_result_rows(r) > 0) {
            status = st_fail(err, ST_CONFLICT, "group %s already serves team \"%.60s\"",
                             spec->groups[i], db_result_value(r, 0, 0));
            goto cleanup;
        }
        /* A group the bot already knows keeps its active flag (join/leave say where it is). */
        if ((status = db_exec(d,
                              "INSERT INTO team_groups (group_id, team_id, bound_at) "
                              "VALUES ($1, $2::bigint, now()) ON CONFLICT (group_id) DO UPDATE "
                              "SET team_id = EXCLUDED.team_id, bound_at = now(), "
                              "updated_at = now()",
                              2, group, NULL, err)) != ST_OK)
            goto cleanup;
    }
cleanup:
    db_result_destroy(r);
    return status;
}

int essctl_team_add(const essctl_command *command, int argc, char **argv)
{
    team_spec spec = {.kind = GEO_TEAM_MULTIDISCIPLINARY};
    const char *province = NULL, *kind = NULL, *agencies = NULL;
    bool national = essctl_take_flag(&argc, argv, "--national");
    if (!essctl_take_option(command, &argc, argv, "--name", &spec.name) ||
        !essctl_take_option(command, &argc, argv, "--province", &province) ||
        !essctl_take_option(command, &argc, argv, "--station", &spec.station) ||
        !essctl_take_option(command, &argc, argv, "--agency", &agencies) ||
        !essctl_take_option(command, &argc, argv, "--kind", &kind))
        return ESSCTL_EXIT_USAGE;
    int exit_code = take_groups(command, &argc, argv, &spec);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;
    if ((exit_code = essctl_no_more_args(command, argc, argv)) != ESSCTL_EXIT_OK)
        return exit_code;
    if (spec.name == NULL || !name_valid(spec.name))
        return essctl_usage_error(command, "--name is required: 1..%d characters", TEAM_NAME_MAX);
    if (kind != NULL && !geo_team_kind_parse(kind, &spec.kind))
        return essctl_usage_error(command, "--kind is multidisciplinary, provincial_command or "
                                           "national_centre");
    if (national) {
        if (kind != NULL && spec.kind != GEO_TEAM_NATIONAL_CENTRE)
            return essctl_usage_error(command, "--national contradicts --kind %s", kind);
        spec.kind = GEO_TEAM_NATIONAL_CENTRE;
    }
    if (province != NULL) {
        bool prefixed = strncmp(province, "TH", 2) == 0;
        if (prefixed ? !geo_code_valid(GEO_PROVINCE, province)
                     : geo_code_from_digits(GEO_PROVINCE, province, spec.province,
                                            sizeof(spec.province), NULL) != ST_OK)
            return essctl_usage_error(command, "--province is TH + 2 digits, e.g. TH50");
        if (prefixed)
            snprintf(spec.province, sizeof(spec.province), "%s", province);
    }
    if (spec.kind != GEO_TEAM_NATIONAL_CENTRE && spec.province[0] == '\0')
        return essctl_usage_error(command, "--province is required (or --national)");
    if (spec.kind == GEO_TEAM_NATIONAL_CENTRE && spec.station != NULL)
        return essctl_usage_error(command, "the national centre has no station");
    if (spec.station != NULL && (strlen(spec.station) == 0 || strlen(spec.station) > 64))
        return essctl_usage_error(command, "--station is a station id (1..64 characters)");
    if (spec.group_count == 0)
        return essctl_usage_error(command, "--group is required: the team's LINE group id");
    if ((exit_code = essctl_parse_agencies(command, agencies, spec.kind == GEO_TEAM_MULTIDISCIPLINARY,
                                                 spec.agencies, sizeof(spec.agencies))) != ESSCTL_EXIT_OK)
        return exit_code;

    db *d = NULL;
    if ((exit_code = essctl_open_db(command, 0, &d)) != ESSCTL_EXIT_OK)
        return exit_code;
    st_error err = {0};
    if (db_tx(d, 0, add_tx, &spec, &err) != ST_OK) {
        exit_code = essctl_fail(command, &err);
    } else {
        printf("added team %lld \"%s\" (%s%s%s%s%s) with %zu group%s\n", (long long)spec.team_id,
               spec.name, geo_team_kind_name(spec.kind), spec.province[0] != '\0' ? ", " : "",
               spec.province, spec.station != NULL ? ", station " : "",
               spec.station != NULL ? spec.station : "", spec.group_count,
               spec.group_count == 1 ? "" : "s");
    }
    db_destroy(d);
    return exit_code;
}

/* ---- list ----------------------------------------------------------------------------------- */

/* What a group entry "id:active:members:YYYYMMDDTHHMMSSZ" says beyond its id (issue 7:
 * member_count from memberJoined/memberLeft, last activity in the group). */
typedef struct group_facts {
    long long members;
    char last_activity[24]; /* "2026-11-30T10:05:00Z", "" when none */
} group_facts;

static void read_group_facts(const char *entry, size_t len, group_facts *ret)
{
    char copy[GROUP_ID_MAX + 64];
    snprintf(copy, sizeof(copy), "%.*s", (int)(len < sizeof(copy) - 1 ? len : sizeof(copy) - 1),
             entry);
    memset(ret, 0, sizeof(*ret));
    char *members = strchr(copy, ':');
    members = members != NULL ? strchr(members + 1, ':') : NULL;
    if (members == NULL)
        return;
    char *end = NULL;
    ret->members = strtoll(members + 1, &end, 10);
    const char *at = end != NULL && *end == ':' ? end + 1 : "";
    if (strlen(at) == 16) /* YYYYMMDDTHHMMSSZ */
        snprintf(ret->last_activity, sizeof(ret->last_activity), "%.4s-%.2s-%.2sT%.2s:%.2s:%.2sZ",
                 at, at + 4, at + 6, at + 9, at + 11, at + 13);
}

int essctl_team_list(const essctl_command *command, int argc, char **argv)
{
    bool json = essctl_take_flag(&argc, argv, "--json");
    bool all = essctl_take_flag(&argc, argv, "--all");
    int exit_code = essctl_no_more_args(command, argc, argv);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;
    db *d = NULL;
    db_result *r = NULL;
    cJSON *root = NULL;
    char *text = NULL;
    if ((exit_code = essctl_open_db(command, 0, &d)) != ESSCTL_EXIT_OK)
        return exit_code;
    st_error err = {0};
    const char *params[] = {all ? "true" : "false"};
    /* Groups as "id:1:members:last,id2:0:members:" (1 = active; last activity as
     * YYYYMMDDTHHMMSSZ, empty when none): group ids hold no ':' or ','. */
    if (db_exec(d,
                "SELECT t.id, t.name, t.kind, coalesce(t.province_code, ''), "
                "coalesce(t.station_id, ''), array_to_string(t.agencies, ','), t.active, "
                "coalesce(string_agg(g.group_id || ':' || CASE WHEN g.active THEN '1' ELSE '0' "
                "END || ':' || g.member_count || ':' || coalesce(to_char(g.last_activity "
                "AT TIME ZONE 'UTC', 'YYYYMMDD\"T\"HH24MISS\"Z\"'), ''), ',' "
                "ORDER BY g.group_id), ''), "
                "to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                "FROM teams t LEFT JOIN team_groups g ON g.team_id = t.id "
                "WHERE t.active OR $1::boolean GROUP BY t.id ORDER BY t.id",
                1, params, &r, &err) != ST_OK) {
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    int rows = db_result_rows(r);
    if (!json) {
        printf("%-5s %-28s %-18s %-8s %-16s %-6s %s\n", "ID", "NAME", "KIND", "PROVINCE", "STATION",
               "ACTIVE", "GROUPS (* = bot not in the group; members, last activity UTC)");
        for (int i = 0; i < rows; i++) {
            char groups[1024] = "";
            const char *cursor = db_result_value(r, i, 7);
            size_t used = 0;
            while (*cursor != '\0' && used < sizeof(groups) - 1) {
                size_t len = strcspn(cursor, ",");
                const char *colon = memchr(cursor, ':', len);
                size_t id_len = colon != NULL ? (size_t)(colon - cursor) : len;
                bool active = colon != NULL && colon[1] == '1';
                group_facts facts;
                read_group_facts(cursor, len, &facts);
                used += (size_t)snprintf(groups + used, sizeof(groups) - used,
                                         "%s%.*s%s(%lld, %s)", used > 0 ? " " : "", (int)id_len,
                                         cursor, active ? "" : "*", facts.members,
                                         facts.last_activity[0] ? facts.last_activity : "-");
                cursor += len;
                if (*cursor == ',')
                    cursor++;
            }
            printf("%-5s %-28s %-18s %-8s %-16s %-6s %s\n", db_result_value(r, i, 0),
                   db_result_value(r, i, 1), db_result_value(r, i, 2),
                   db_result_value(r, i, 3)[0] ? db_result_value(r, i, 3) : "-",
                   db_result_value(r, i, 4)[0] ? db_result_value(r, i, 4) : "-",
                   strcmp(db_result_value(r, i, 6), "t") == 0 ? "yes" : "no", groups);
        }
        goto cleanup;
    }
    root = cJSON_CreateObject();
    cJSON *teams = cJSON_AddArrayToObject(root, "teams");
    bool ok = teams != NULL;
    for (int i = 0; ok && i < rows; i++) {
        cJSON *item = cJSON_CreateObject();
        ok = item != NULL && cJSON_AddItemToArray(teams, item);
        if (!ok) {
            cJSON_Delete(item);
            break;
        }
        const char *province = db_result_value(r, i, 3), *station = db_result_value(r, i, 4);
        ok = cJSON_AddNumberToObject(item, "id", strtod(db_result_value(r, i, 0), NULL)) &&
             cJSON_AddStringToObject(item, "name", db_result_value(r, i, 1)) &&
             cJSON_AddStringToObject(item, "kind", db_result_value(r, i, 2)) &&
             (province[0] ? cJSON_AddStringToObject(item, "province_code", province) != NULL
                          : cJSON_AddNullToObject(item, "province_code") != NULL) &&
             (station[0] ? cJSON_AddStringToObject(item, "station_id", station) != NULL
                         : cJSON_AddNullToObject(item, "station_id") != NULL) &&
             cJSON_AddBoolToObject(item, "active", strcmp(db_result_value(r, i, 6), "t") == 0) &&
             cJSON_AddStringToObject(item, "created_at", db_result_value(r, i, 8));
        cJSON *agencies = ok ? cJSON_AddArrayToObject(item, "agencies") : NULL;
        cJSON *groups = ok ? cJSON_AddArrayToObject(item, "groups") : NULL;
        ok = agencies != NULL && groups != NULL;
        const char *cursor = db_result_value(r, i, 5);
        while (ok && *cursor != '\0') {
            size_t len = strcspn(cursor, ",");
            char agency[64];
            snprintf(agency, sizeof(agency), "%.*s", (int)(len < 63 ? len : 63), cursor);
            ok = cJSON_AddItemToArray(agencies, cJSON_CreateString(agency));
            cursor += len;
            if (*cursor == ',')
                cursor++;
        }
        cursor = db_result_value(r, i, 7);
        while (ok && *cursor != '\0') {
            size_t len = strcspn(cursor, ",");
            const char *colon = memchr(cursor, ':', len);
            char group_id[GROUP_ID_MAX + 1];
            size_t id_len = colon != NULL ? (size_t)(colon - cursor) : len;
            snprintf(group_id, sizeof(group_id), "%.*s",
                     (int)(id_len < GROUP_ID_MAX ? id_len : GROUP_ID_MAX), cursor);
            cJSON *group = cJSON_CreateObject();
            ok = group != NULL && cJSON_AddItemToArray(groups, group) &&
                 cJSON_AddStringToObject(group, "group_id", group_id) &&
                 cJSON_AddBoolToObject(group, "active", colon != NULL && colon[1] == '1');
            group_facts facts;
            read_group_facts(cursor, len, &facts);
            ok = ok && cJSON_AddNumberToObject(group, "member_count", (double)facts.members) &&
                 (facts.last_activity[0] != '\0'
                      ? cJSON_AddStringToObject(group, "last_activity", facts.last_activity) != NULL
                      : cJSON_AddNullToObject(group, "last_activity") != NULL);
            cursor += len;
            if (*cursor == ',')
                cursor++;
        }
    }
    text = ok ? cJSON_PrintUnformatted(root) : NULL;
    if (text == NULL) {
        fprintf(stderr, "essctl %s: out of memory\n", command->name);
        exit_code = ESSCTL_EXIT_FAILURE;
        goto cleanup;
    }
    printf("%s\n", text);
cleanup:
    free(text);
    cJSON_Delete(root);
    db_result_destroy(r);
    db_destroy(d);
    return exit_code;
}

/* ---- remove --------------------------------------------------------------------------------- */

int essctl_team_remove(const essctl_command *command, int argc, char **argv)
{
    const char *id_text = NULL;
    if (!essctl_take_option(command, &argc, argv, "--id", &id_text))
        return ESSCTL_EXIT_USAGE;
    const char *name = NULL;
    if (id_text == NULL) {
        if (argc < 1)
            return essctl_usage_error(command, "give the team's NAME or --id ID");
        name = argv[0];
        argc--;
        argv++;
    }
    int exit_code = essctl_no_more_args(command, argc, argv);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;
    if (id_text != NULL) {
        char *end = NULL;
        errno = 0;
        long long id = strtoll(id_text, &end, 10);
        if (errno != 0 || end == id_text || *end != '\0' || id < 1)
            return essctl_usage_error(command, "--id is a positive number");
    }
    db *d = NULL;
    db_result *r = NULL;
    if ((exit_code = essctl_open_db(command, 0, &d)) != ESSCTL_EXIT_OK)
        return exit_code;
    st_error err = {0};
    const char *params[] = {name, id_text};
    if (db_exec(d,
                "UPDATE teams SET active = false, updated_at = now() WHERE active AND "
                "(name = $1::text OR id = $2::bigint) RETURNING id, name",
                2, params, &r, &err) != ST_OK) {
        exit_code = essctl_fail(command, &err);
    } else if (db_result_rows(r) == 0) {
        fprintf(stderr, "essctl %s: no active team %s\n", command->name,
                name != NULL ? "with that name" : "with that id");
        exit_code = ESSCTL_EXIT_FAILURE;
    } else {
        printf("removed team %s \"%s\"\n", db_result_value(r, 0, 0), db_result_value(r, 0, 1));
    }
    db_result_destroy(r);
    db_destroy(d);
    return exit_code;
}
