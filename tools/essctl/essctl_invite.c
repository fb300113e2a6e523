/* essctl team invite: a one-time code that binds a LINE group to a team (issue 7).
 *
 *   essctl team invite (--province TH50 | --national) [--station ID] [--agency LIST]
 *                      [--kind KIND] [--name NAME] [--json]
 *
 * The team is the active team of that kind, province and station (and name, when given);
 * when there is none it is created (name from --name, else made from the area's Thai name).
 * The code (12 characters of Crockford base32, 60 random bits, XXXX-XXXX-XXXX) is printed
 * once and never stored: team_invites keeps its SHA-256 (services/conversation/conv_invite.h),
 * valid for 24 hours and for one group. An officer adds the bot to the team's LINE group and
 * types `/ess bind CODE` there; ess-conversation binds the group (team_groups) and answers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "conv_invite.h"
#include "essctl.h"
#include "geo.h"
#include "vault.h"

int essctl_team_invite(const essctl_command *command, int argc, char **argv);

#define INVITE_VALIDITY "24 hours"
#define NAME_MAX_BYTES 200


typedef struct invite_spec {
    geo_team_kind kind;
    char province[GEO_CODE_MAX]; /* "" for the national centre */
    const char *station;         /* NULL = the whole province */
    const char *name;            /* NULL = find any / make one up */
    char agencies[160];          /* {police,shelter} */
    char canonical[CONV_INVITE_CHARS + 1];
    /* results */
    char team_id[24];
    char team_name[NAME_MAX_BYTES * 2];
    bool created;
    char expires_at[40];
} invite_spec;

/* Checks the area, finds or creates the team. */
static st_code find_team(db *d, invite_spec *spec, st_error *err)
{
    db_result *r = NULL;
    st_code status = ST_OK;
    const char *province = spec->province[0] != '\0' ? spec->province : NULL;
    const char *area[] = {province, spec->station};
    /* The area's Thai name, which also proves it exists. */
    status = db_exec(d,
                     "SELECT (SELECT name_th FROM provinces WHERE code = $1::text), "
                     "(SELECT name_th FROM stations WHERE id = $2::text), "
                     "(SELECT province_code FROM stations WHERE id = $2::text)",
                     2, area, &r, err);
    if (status != ST_OK)
        goto cleanup;
    if (province != NULL && db_result_is_null(r, 0, 0)) {
        status = st_fail(err, ST_NOT_FOUND,
                         "province %s is not on record (essctl geo import loads them)", province);
        goto cleanup;
    }
    if (spec->station != NULL && db_result_is_null(r, 0, 1)) {
        status = st_fail(err, ST_NOT_FOUND, "station %.64s is not in the directory", spec->station);
        goto cleanup;
    }
    if (spec->station != NULL && strcmp(db_result_value(r, 0, 2), spec->province) != 0) {
        status = st_fail(err, ST_INVALID, "station %.64s is in province %s, not %s", spec->station,
                         db_result_value(r, 0, 2), spec->province);
        goto cleanup;
    }
    char made_up[NAME_MAX_BYTES * 2];
    if (spec->kind == GEO_TEAM_NATIONAL_CENTRE)
        snprintf(made_up, sizeof(made_up), "ศูนย์ปฏิบัติการ ESS ส่วนกลาง");
    else if (spec->kind == GEO_TEAM_PROVINCIAL_COMMAND)
        snprintf(made_up, sizeof(made_up), "ศูนย์สั่งการ จ.%.150s", db_result_value(r, 0, 0));
    else if (spec->station != NULL)
        snprintf(made_up, sizeof(made_up), "ทีมสหวิชาชีพ %.150s", db_result_value(r, 0, 1));
    else
        snprintf(made_up, sizeof(made_up), "ทีมสหวิชาชีพ จ.%.150s", db_result_value(r, 0, 0));
    db_result_destroy(r);
    r = NULL;

    const char *kind = geo_team_kind_name(spec->kind);
    const char *match[] = {kind, province, spec->station, spec->name};
    if ((status = db_exec(d,
                          "SELECT id, name FROM teams WHERE active AND kind = $1 "
                          "AND province_code IS NOT DISTINCT FROM $2::text "
                          "AND station_id IS NOT DISTINCT FROM $3::text "
                          "AND ($4::text IS NULL OR name = $4::text) ORDER BY id LIMIT 1",
                          4, match, &r, err)) != ST_OK)
        goto cleanup;
    if (db_result_rows(r) == 0) {
        db_result_destroy(r);
        r = NULL;
        const char *team[] = {spec->name != NULL ? spec->name : made_up, kind, province,
                              spec->station, spec->agencies};
        status = db_exec(d,
                         "INSERT INTO teams (name, kind, province_code, station_id, agencies) "
                         "VALUES ($1, $2, $3, $4, $5::text[]) RETURNING id, name",
                         5, team, &r, err);
        if (status == ST_CONFLICT)
            st_fail(err, ST_CONFLICT,
                    "an active team is already named \"%.60s\" with another area or kind: give "
                    "--name",
                    team[0]);
        if (status != ST_OK)
            goto cleanup;
        spec->created = true;
    }
    snprintf(spec->team_id, sizeof(spec->team_id), "%s", db_result_value(r, 0, 0));
    snprintf(spec->team_name, sizeof(spec->team_name), "%s", db_result_value(r, 0, 1));
cleanup:
    db_result_destroy(r);
    return status;
}

static st_code invite_tx(db *d, void *closure, st_error *err)
{
    invite_spec *spec = closure;
    spec->created = false;
    st_code status = find_team(d, spec, err);
    if (status != ST_OK)
        return status;
    unsigned char hash[CONV_INVITE_HASH_BYTES];
    conv_invite_hash(spec->canonical, hash);
    char hash_param[2 * CONV_INVITE_HASH_BYTES + 3] = "\\x";
    vault_hex(hash, sizeof(hash), hash_param + 2);
    const char *params[] = {hash_param, spec->team_id};
    db_result *r = NULL;
    status = db_exec(d,
                     "INSERT INTO team_invites (code_hash, team_id, expires_at) "
                     "VALUES ($1::bytea, $2::bigint, now() + interval '" INVITE_VALIDITY "') "
                     "RETURNING to_char(expires_at AT TIME ZONE 'UTC', "
                     "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
                     2, params, &r, err);
    if (status == ST_OK)
        snprintf(spec->expires_at, sizeof(spec->expires_at), "%s", db_result_value(r, 0, 0));
    db_result_destroy(r);
    return status;
}

int essctl_team_invite(const essctl_command *command, int argc, char **argv)
{
    invite_spec spec = {.kind = GEO_TEAM_MULTIDISCIPLINARY};
    const char *province = NULL, *kind = NULL, *agencies = NULL;
    bool json = essctl_take_flag(&argc, argv, "--json");
    bool national = essctl_take_flag(&argc, argv, "--national");
    if (!essctl_take_option(command, &argc, argv, "--province", &province) ||
        !essctl_take_option(command, &argc, argv, "--station", &spec.station) ||
        !essctl_take_option(command, &argc, argv, "--agency", &agencies) ||
        !essctl_take_option(command, &argc, argv, "--kind", &kind) ||
        !essctl_take_option(command, &argc, argv, "--name", &spec.name))
        return ESSCTL_EXIT_USAGE;
    int exit_code = essctl_no_more_args(command, argc, argv);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;
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
    if (spec.kind == GEO_TEAM_NATIONAL_CENTRE && (province != NULL || spec.station != NULL))
        return essctl_usage_error(command, "the national centre has no province or station");
    if (spec.kind != GEO_TEAM_NATIONAL_CENTRE && spec.province[0] == '\0')
        return essctl_usage_error(command, "--province is required (or --national)");
    if (spec.station != NULL && (strlen(spec.station) == 0 || strlen(spec.station) > 64))
        return essctl_usage_error(command, "--station is a station id (1..64 characters)");
    if (spec.name != NULL && (strlen(spec.name) == 0 || strlen(spec.name) > NAME_MAX_BYTES))
        return essctl_usage_error(command, "--name is 1..%d bytes", NAME_MAX_BYTES);
    if ((exit_code = essctl_parse_agencies(command, agencies, spec.kind == GEO_TEAM_MULTIDISCIPLINARY,
                                                 spec.agencies, sizeof(spec.agencies))) != ESSCTL_EXIT_OK)
        return exit_code;

    unsigned char random[CONV_INVITE_RANDOM_BYTES];
    char code[CONV_INVITE_TEXT_MAX];
    st_error err = {0};
    if (vault_random(random, sizeof(random), &err) != ST_OK)
        return essctl_fail(command, &err);
    conv_invite_format(random, code);
    OPENSSL_cleanse(random, sizeof(random));
    if (!conv_invite_normalise(code, spec.canonical)) {
        fprintf(stderr, "essctl %s: internal error making a code\n", command->name);
        return ESSCTL_EXIT_FAILURE;
    }
    db *d = NULL;
    if ((exit_code = essctl_open_db(command, 0, &d)) != ESSCTL_EXIT_OK)
        return exit_code;
    if (db_tx(d, 0, invite_tx, &spec, &err) != ST_OK) {
        exit_code = essctl_fail(command, &err);
    } else if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "code", code);
        cJSON_AddNumberToObject(root, "team_id", strtod(spec.team_id, NULL));
        cJSON_AddStringToObject(root, "team_name", spec.team_name);
        cJSON_AddBoolToObject(root, "team_created", spec.created);
        cJSON_AddStringToObject(root, "expires_at", spec.expires_at);
        char *text = cJSON_PrintUnformatted(root);
        if (text != NULL)
            printf("%s\n", text);
        exit_code = text != NULL ? ESSCTL_EXIT_OK : ESSCTL_EXIT_FAILURE;
        free(text);
        cJSON_Delete(root);
    } else {
        printf("invite code  %s\n"
               "team         %s \"%s\" (%s%s%s%s%s)%s\n"
               "valid until  %s, for one group\n"
               "In the team's LINE group, after adding the ESS bot, an officer types:\n"
               "  /ess bind %s\n",
               code, spec.team_id, spec.team_name, geo_team_kind_name(spec.kind),
               spec.province[0] != '\0' ? ", " : "", spec.province,
               spec.station != NULL ? ", station " : "", spec.station != NULL ? spec.station : "",
               spec.created ? " — created now" : "", spec.expires_at, code);
    }
    OPENSSL_cleanse(code, sizeof(code));
    db_destroy(d);
    return exit_code;
}
