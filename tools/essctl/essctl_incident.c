/* essctl incident: the incident record (issue 4).
 *
 *   essctl incident list [--json] [--limit N] [--status S]
 *       newest first: case number, status, category, province, reported at, phone given
 *   essctl incident show CASE [--json] [--reveal-phone [--as NAME]]
 *       one incident with its timeline. The phone is shown masked (08x-xxx-x678) when
 *       ESS_DATA_KEY is set, "encrypted" otherwise; --reveal-phone (needs ESS_DATA_KEY) shows
 *       it whole, only after the read is recorded in the audit log (essctl_audit.h: who read
 *       which field of which case), and says so on stderr.
 *       The reporter's LINE user id is never shown; text the reporter added stays sealed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "cfg.h"
#include "conv_phone.h"
#include "essctl.h"
#include "essctl_audit.h"
#include "vault.h"

int essctl_incident_list(const essctl_command *command, int argc, char **argv);
int essctl_incident_show(const essctl_command *command, int argc, char **argv);

#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX 10000

static const char *value_or(const db_result *r, int row, int col, const char *fallback)
{
    const char *value = db_result_value(r, row, col);
    return value != NULL ? value : fallback;
}

static void add_text(cJSON *object, const char *key, const char *value)
{
    if (value != NULL)
        cJSON_AddStringToObject(object, key, value);
    else
        cJSON_AddNullToObject(object, key);
}

static int print_json(cJSON *root)
{
    char *text = cJSON_PrintUnformatted(root);
    if (text == NULL)
        return ESSCTL_EXIT_FAILURE;
    printf("%s\n", text);
    free(text);
    return ESSCTL_EXIT_OK;
}

/* ---- list ------------------------------------------------------------------------------ */

static bool valid_status(const char *status)
{
    static const char *const statuses[] = {"new",     "routed", "acknowledged",
                                           "on_scene", "closed", "cancelled"};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (strcmp(status, statuses[i]) == 0)
            return true;
    return false;
}

int essctl_incident_list(const essctl_command *command, int argc, char **argv)
{
    bool json = essctl_take_flag(&argc, argv, "--json");
    const char *limit_text = NULL, *status_filter = NULL;
    if (!essctl_take_option(command, &argc, argv, "--limit", &limit_text) ||
        !essctl_take_option(command, &argc, argv, "--status", &status_filter))
        return ESSCTL_EXIT_USAGE;
    int exit_code = essctl_no_more_args(command, argc, argv);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;
    long limit = LIST_LIMIT_DEFAULT;
    if (limit_text != NULL) {
        char *end = NULL;
        limit = strtol(limit_text, &end, 10);
        if (end == limit_text || *end != '\0' || limit < 1 || limit > LIST_LIMIT_MAX)
            return essctl_usage_error(command, "--limit must be 1..%d", LIST_LIMIT_MAX);
    }
    if (status_filter != NULL && !valid_status(status_filter))
        return essctl_usage_error(command,
                                  "--status must be new, routed, acknowledged, on_scene, closed "
                                  "or cancelled");
    db *d = NULL;
    db_result *rows = NULL;
    cJSON *root = NULL;
    if ((exit_code = essctl_open_db(command, 0, &d)) != ESSCTL_EXIT_OK)
        return exit_code;
    char limit_param[24];
    snprintf(limit_param, sizeof(limit_param), "%ld", limit);
    const char *params[] = {limit_param, status_filter};
    st_error err = {0};
    if (db_exec(d,
                "SELECT id, case_number, status, category, province_code, "
                "  to_char(reported_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                "  phone_encrypted IS NOT NULL "
                "FROM incidents WHERE ($2::text IS NULL OR status = $2) "
                "ORDER BY reported_at DESC, id DESC LIMIT $1::int",
                2, params, &rows, &err) != ST_OK) {
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    int count = db_result_rows(rows);
    if (json) {
        root = cJSON_CreateObject();
        cJSON *list = cJSON_AddArrayToObject(root, "incidents");
        for (int i = 0; i < count; i++) {
            cJSON *item = cJSON_CreateObject();
            cJSON_AddNumberToObject(item, "incident_id",
                                    strtod(db_result_value(rows, i, 0), NULL));
            add_text(item, "case_number", db_result_value(rows, i, 1));
            add_text(item, "status", db_result_value(rows, i, 2));
            add_text(item, "category", db_result_value(rows, i, 3));
            add_text(item, "province_code", db_result_value(rows, i, 4));
            add_text(item, "reported_at", db_result_value(rows, i, 5));
            cJSON_AddBoolToObject(item, "has_phone",
                                  strcmp(db_result_value(rows, i, 6), "t") == 0);
            cJSON_AddItemToArray(list, item);
        }
        exit_code = print_json(root);
        goto cleanup;
    }
    printf("%-18s %-13s %-12s %-9s %-21s %s\n", "CASE", "STATUS", "CATEGORY", "PROVINCE",
           "REPORTED (UTC)", "PHONE");
    for (int i = 0; i < count; i++)
        printf("%-18s %-13s %-12s %-9s %-21s %s\n", value_or(rows, i, 1, "-"),
               value_or(rows, i, 2, "-"), value_or(rows, i, 3, "-"), value_or(rows, i, 4, "-"),
               value_or(rows, i, 5, "-"), strcmp(db_result_value(rows, i, 6), "t") == 0 ? "yes" : "no");
    if (count == 0)
        printf("(no incidents)\n");
cleanup:
    cJSON_Delete(root);
    db_result_destroy(rows);
    db_destroy(d);
    return exit_code;
}

/* ---- show ------------------------------------------------------------------------------ */

typedef struct key_config {
    cfg_key data_key;
} key_config;

/* ESS_DATA_KEY (or ESS_DATA_KEY_FILE) when given; not required to list or show. */
static const cfg_field key_fields[] = {
    CFG_FIELD_("ESS_DATA_KEY", CFG_T_KEY32, NULL, false, true, 0, 0, NULL,
               "32 bytes, base64: opens phone numbers (masked unless --reveal-phone)",
               key_config, data_key),
};

/* 1 = keys loaded, 0 = no key given, -1 = a key given but invalid (printed). */
static int load_keys(const essctl_command *command, vault_keys *ret_keys)
{
    key_config config = {0};
    char *problems = NULL;
    if (cfg_load(key_fields, 1, NULL, NULL, &config, &problems) != ST_OK) {
        fprintf(stderr, "essctl %s: %s\n", command->name,
                problems != NULL ? problems : "ESS_DATA_KEY is invalid");
        free(problems);
        return -1;
    }
    if (!config.data_key.present)
        return 0;
    vault_keys_derive(config.data_key.bytes, ret_keys);
    OPENSSL_cleanse(&config, sizeof(config));
    return 1;
}

/* Opens the bytea text ("\\x...") of a sealed phone; ST_OK fills phone (CONV_PHONE_MAX). */
static st_code open_phone(const vault_keys *keys, const char *bytea_text, char *phone,
                          st_error *err)
{
    char *plain = NULL;
    size_t plain_len = 0;
    st_code status = vault_open_hex(keys, "incident.phone", bytea_text, &plain, &plain_len, err);
    if (status != ST_OK) {
        st_wrap(err, "the phone does not open with this ESS_DATA_KEY");
        goto cleanup;
    }
    if (plain_len >= CONV_PHONE_MAX) {
        status = st_fail(err, ST_INVALID, "the sealed phone is not a phone number");
        goto cleanup;
    }
    memcpy(phone, plain, plain_len + 1);
cleanup:
    if (plain != NULL) {
        OPENSSL_cleanse(plain, plain_len);
        free(plain);
    }
    return status;
}

/* The timeline entry's detail as operators may see it: sealed texts stay sealed. */
static cJSON *shown_detail(const char *detail_text)
{
    cJSON *detail = cJSON_Parse(detail_text != NULL ? detail_text : "{}");
    if (detail == NULL)
        detail = cJSON_CreateObject();
    if (cJSON_GetObjectItemCaseSensitive(detail, "text_sealed") != NULL)
        cJSON_ReplaceItemInObjectCaseSensitive(detail, "text_sealed",
                                               cJSON_CreateString("(sealed)"));
    return detail;
}

enum {
    COL_ID,
    COL_CASE,
    COL_STATUS,
    COL_CATEGORY,
    COL_LAT,
    COL_LON,
    COL_TITLE,
    COL_ADDRESS,
    COL_TAMBON,
    COL_DISTRICT,
    COL_PROVINCE,
    COL_STATION,
    COL_LANGUAGE,
    COL_REPORTED,
    COL_ROUTED,
    COL_ACKNOWLEDGED,
    COL_ON_SCENE,
    COL_CLOSED,
    COL_CANCELLED,
    COL_ACK_BY,
    COL_OUTCOME,
    COL_ESCALATION,
    COL_PHONE,
    COL_COUNT
};

static const char *const column_names[COL_COUNT] = {
    "incident_id", "case_number", "status", "category", "lat", "lon", "location_title",
    "location_address", "tambon_code", "district_code", "province_code", "station_id",
    "language", "reported_at", "routed_at", "acknowledged_at", "on_scene_at", "closed_at",
    "cancelled_at", "acknowledged_by", "outcome", "escalation_level", "phone"};

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

int essctl_incident_show(const essctl_command *command, int argc, char **argv)
{
    bool json = essctl_take_flag(&argc, argv, "--json");
    bool reveal = essctl_take_flag(&argc, argv, "--reveal-phone");
    const char *reader_option = NULL;
    if (!essctl_take_option(command, &argc, argv, "--as", &reader_option))
        return ESSCTL_EXIT_USAGE;
    if (argc < 1)
        return essctl_usage_error(command, "which case? (e.g. ESS-2569-000123)");
    const char *case_number = argv[0];
    int exit_code = essctl_no_more_args(command, argc - 1, argv + 1);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;
    if (strlen(case_number) > 40)
        return essctl_usage_error(command, "a case number looks like ESS-2569-000123");
    vault_keys keys;
    int have_keys = load_keys(command, &keys);
    if (have_keys < 0)
        return ESSCTL_EXIT_USAGE;
    if (reveal && have_keys == 0)
        return essctl_usage_error(command, "--reveal-phone needs ESS_DATA_KEY");

    db *d = NULL;
    db_result *row = NULL, *timeline = NULL;
    cJSON *root = NULL;
    char phone_shown[CONV_PHONE_MASKED_MAX + CONV_PHONE_MAX] = "";
    const char *phone_state = "none";
    if ((exit_code = essctl_open_db(command, 0, &d)) != ESSCTL_EXIT_OK)
        goto cleanup;
    st_error err = {0};
    const char *params[] = {case_number};
    if (db_exec(d,
                "SELECT id, case_number, status, category, lat, lon, location_title, "
                "  location_address, tambon_code, district_code, province_code, station_id, "
                "  language, " TS("reported_at") ", " TS("routed_at") ", " TS("acknowledged_at")
                ", " TS("on_scene_at") ", " TS("closed_at") ", " TS("cancelled_at")
                ", acknowledged_by, outcome, escalation_level, phone_encrypted "
                "FROM incidents WHERE case_number = $1",
                1, params, &row, &err) != ST_OK) {
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    if (db_result_rows(row) != 1) {
        fprintf(stderr, "essctl %s: no incident %s\n", command->name, case_number);
        exit_code = ESSCTL_EXIT_FAILURE;
        goto cleanup;
    }
    if (!db_result_is_null(row, 0, COL_PHONE)) {
        phone_state = "encrypted";
        if (have_keys > 0) {
            char phone[CONV_PHONE_MAX];
            if (open_phone(&keys, db_result_value(row, 0, COL_PHONE), phone, &err) != ST_OK) {
                exit_code = essctl_fail(command, &err);
                goto cleanup;
            }
            if (reveal) {
                /* Recorded first: no record, no reveal. */
                if (essctl_audit_pii_read(d, case_number,
                                          strtoll(db_result_value(row, 0, COL_ID), NULL, 10),
                                          "phone", essctl_audit_operator(reader_option),
                                          &err) != ST_OK) {
                    OPENSSL_cleanse(phone, sizeof(phone));
                    exit_code = essctl_fail(command, &err);
                    goto cleanup;
                }
                snprintf(phone_shown, sizeof(phone_shown), "%s", phone);
                phone_state = "revealed";
                fprintf(stderr, "essctl %s: the reporter's phone number of %s is shown in full\n",
                        command->name, case_number);
            } else {
                conv_phone_mask(phone, phone_shown);
                phone_state = "masked";
            }
            OPENSSL_cleanse(phone, sizeof(phone));
        }
    }
    const char *id_params[] = {db_result_value(row, 0, COL_ID)};
    if (db_exec(d,
                "SELECT " TS("at") ", kind, actor_type, actor, group_id, detail::text "
                "FROM incident_events WHERE incident_id = $1::bigint ORDER BY at, id",
                1, id_params, &timeline, &err) != ST_OK) {
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }

    if (json) {
        root = cJSON_CreateObject();
        for (int col = 0; col < COL_PHONE; col++) {
            const char *value = db_result_value(row, 0, col);
            if ((col == COL_ID || col == COL_LAT || col == COL_LON || col == COL_ESCALATION) &&
                value != NULL)
                cJSON_AddNumberToObject(root, column_names[col], strtod(value, NULL));
            else
                add_text(root, column_names[col], value);
        }
        add_text(root, "phone", phone_shown[0] != '\0' ? phone_shown : NULL);
        cJSON_AddStringToObject(root, "phone_state", phone_state);
        cJSON *entries = cJSON_AddArrayToObject(root, "timeline");
        for (int i = 0; i < db_result_rows(timeline); i++) {
            cJSON *entry = cJSON_CreateObject();
            add_text(entry, "at", db_result_value(timeline, i, 0));
            add_text(entry, "kind", db_result_value(timeline, i, 1));
            add_text(entry, "actor_type", db_result_value(timeline, i, 2));
            add_text(entry, "actor", db_result_value(timeline, i, 3));
            add_text(entry, "group_id", db_result_value(timeline, i, 4));
            cJSON_AddItemToObject(entry, "detail", shown_detail(db_result_value(timeline, i, 5)));
            cJSON_AddItemToArray(entries, entry);
        }
        exit_code = print_json(root);
        goto cleanup;
    }
    for (int col = 0; col < COL_PHONE; col++)
        printf("%-18s %s\n", column_names[col], value_or(row, 0, col, "-"));
    printf("%-18s %s\n", "phone",
           phone_shown[0] != '\0' ? phone_shown
           : strcmp(phone_state, "encrypted") == 0 ? "(encrypted; set ESS_DATA_KEY to see it masked)"
                                                   : "(none given)");
    printf("\ntimeline:\n");
    for (int i = 0; i < db_result_rows(timeline); i++) {
        cJSON *detail = shown_detail(db_result_value(timeline, i, 5));
        char *detail_text = cJSON_PrintUnformatted(detail);
        printf("  %s  %-20s %-9s %s\n", value_or(timeline, i, 0, "-"),
               value_or(timeline, i, 1, "-"), value_or(timeline, i, 2, "-"),
               detail_text != NULL ? detail_text : "{}");
        free(detail_text);
        cJSON_Delete(detail);
    }
cleanup:
    OPENSSL_cleanse(phone_shown, sizeof(phone_shown));
    if (have_keys > 0)
        vault_keys_wipe(&keys);
    cJSON_Delete(root);
    db_result_destroy(row);
    db_result_destroy(timeline);
    db_destroy(d);
    return exit_code;
}
