/* essctl: argument helpers, error lines and the database connection shared by commands. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "essctl.h"
#include "log.h"

#define DSN_MAX 4096

typedef struct essctl_config {
    char *pg_dsn;
} essctl_config;

/* The DSN may hold a password: marked secret so that no problem text ever quotes it. */
static const cfg_field config_fields[] = {
    CFG_FIELD_("ESS_PG_DSN", CFG_T_STRING, "postgresql://ess@127.0.0.1:5432/ess", false, true, 0,
               DSN_MAX, NULL,
               "PostgreSQL, URI or key=value (default postgresql://ess@127.0.0.1:5432/ess)",
               essctl_config, pg_dsn),
};

void essctl_print_environment(FILE *out)
{
    cfg_print_help(out, config_fields, sizeof(config_fields) / sizeof(config_fields[0]));
}

static void remove_args(int *argc, char **argv, int at, int count)
{
    for (int i = at; i + count <= *argc; i++)
        argv[i] = argv[i + count];
    *argc -= count;
}

bool essctl_take_flag(int *argc, char **argv, const char *flag)
{
    bool found = false;
    for (int i = 0; i < *argc;) {
        if (strcmp(argv[i], flag) == 0) {
            remove_args(argc, argv, i, 1);
            found = true;
        } else {
            i++;
        }
    }
    return found;
}

bool essctl_take_option(const essctl_command *command, int *argc, char **argv, const char *name,
                        const char **ret_value)
{
    size_t name_len = strlen(name);
    *ret_value = NULL;
    for (int i = 0; i < *argc;) {
        if (strcmp(argv[i], name) == 0) {
            if (i + 1 >= *argc) {
                essctl_usage_error(command, "%s needs a value", name);
                return false;
            }
            *ret_value = argv[i + 1];
            remove_args(argc, argv, i, 2);
        } else if (strncmp(argv[i], name, name_len) == 0 && argv[i][name_len] == '=') {
            *ret_value = argv[i] + name_len + 1;
            remove_args(argc, argv, i, 1);
        } else {
            i++;
        }
    }
    return true;
}

int essctl_usage_error(const essctl_command *command, const char *fmt, ...)
{
    char problem[256];
    char shown[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof(problem), fmt, ap);
    va_end(ap);
    log_scrub(problem, shown, sizeof(shown));
    fprintf(stderr, "essctl %s: %s (usage: essctl %s%s%s)\n", command->name, shown, command->name,
            command->usage[0] != '\0' ? " " : "", command->usage);
    return ESSCTL_EXIT_USAGE;
}

int essctl_no_more_args(const essctl_command *command, int argc, char **argv)
{
    if (argc > 0)
        return essctl_usage_error(command, "unexpected argument \"%.40s\"", argv[0]);
    return ESSCTL_EXIT_OK;
}

int essctl_fail(const essctl_command *command, const st_error *err)
{
    char message[ST_MESSAGE_MAX];
    log_scrub(err != NULL && err->message[0] != '\0' ? err->message : "failed", message,
              sizeof(message));
    if (err != NULL && err->cause[0] != '\0')
        fprintf(stderr, "essctl %s: %s (%s)\n", command->name, message, err->cause);
    else
        fprintf(stderr, "essctl %s: %s\n", command->name, message);
    return ESSCTL_EXIT_FAILURE;
}

int essctl_open_db(const essctl_command *command, int64_t statement_timeout_ms, db **ret_db)
{
    essctl_config config = {0};
    char *problems = NULL;
    const size_t count = sizeof(config_fields) / sizeof(config_fields[0]);
    if (cfg_load(config_fields, count, NULL, NULL, &config, &problems) != ST_OK) {
        fprintf(stderr, "essctl %s: %s\n", command->name,
                problems != NULL ? problems : "configuration problem");
        free(problems);
        return ESSCTL_EXIT_USAGE;
    }
    db_options options = {.dsn = config.pg_dsn,
                          .application_name = "essctl",
                          .statement_timeout_ms = statement_timeout_ms};
    st_error err = {0};
    st_code rc = db_connect(&options, ret_db, &err);
    cfg_release(config_fields, count, &config);
    if (rc != ST_OK) {
        essctl_fail(command, &err);
        /* A DSN that is not a connection string is a configuration problem. */
        return rc == ST_INVALID || rc == ST_LIMIT ? ESSCTL_EXIT_USAGE : ESSCTL_EXIT_FAILURE;
    }
    return ESSCTL_EXIT_OK;
}

/* The agencies a team can have, in the order every listing prints them (DESIGN.md §1). */
static const char *const agency_names[] = {"police", "social_development", "shelter", "prosecutor",
                                           "local_network"};
#define AGENCY_COUNT (sizeof(agency_names) / sizeof(agency_names[0]))

int essctl_parse_agencies(const essctl_command *command, const char *list, bool all_by_default,
                          char *out, size_t out_size)
{
    bool chosen[AGENCY_COUNT] = {false};
    for (size_t a = 0; list == NULL && a < AGENCY_COUNT; a++)
        chosen[a] = all_by_default;
    for (const char *cursor = list; cursor != NULL && *cursor != '\0';) {
        size_t len = strcspn(cursor, ",");
        bool known = false;
        for (size_t a = 0; a < AGENCY_COUNT; a++)
            if (strlen(agency_names[a]) == len && strncmp(agency_names[a], cursor, len) == 0)
                known = chosen[a] = true;
        if (!known)
            return essctl_usage_error(
                command, "agencies are police, social_development, shelter, prosecutor, "
                         "local_network");
        cursor += len;
        if (*cursor == ',')
            cursor++;
    }
    size_t used = (size_t)snprintf(out, out_size, "{");
    for (size_t a = 0; a < AGENCY_COUNT && used < out_size; a++)
        if (chosen[a])
            used += (size_t)snprintf(out + used, out_size - used, "%s%s", used > 1 ? "," : "",
                                     agency_names[a]);
    if (used < out_size)
        snprintf(out + used, out_size - used, "}");
    return ESSCTL_EXIT_OK;
}
