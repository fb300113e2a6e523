/* essctl: the operations CLI of ESS.
 *
 * Adding a command is one file (essctl_<group>.c with the handler) and one line below. */
#include <stdio.h>
#include <string.h>

#include "essctl.h"
#include "log.h"

/* X(words, handler, options usage, help) */
#define ESSCTL_COMMANDS(X)                                                                         \
    X("db migrate", essctl_db_migrate, "", "apply pending database migrations")                    \
    X("db status", essctl_db_status, "[--json]", "list migrations: applied, pending, changed") \
    X("db login-role", essctl_db_login_role,                                                     \
      "NAME --member-of ess_service|ess_retention --password-env VAR",                          \
      "create or update a services' login role (needs CREATEROLE; password from VAR)")          \
    X("geo import", essctl_geo_import, "[--data DIR] [--force] [--replace-stations]",          \
      "load provinces, districts, tambons, stations and jurisdictions from deploy/data/geo")     \
    X("geo locate", essctl_geo_locate, "LAT LON [--json] [--data DIR]",                          \
      "the georouter's decision for a point: area, stations, target teams")                      \
    X("stations import", essctl_stations_import, "FILE.csv [--dry-run]",                        \
      "replace the police station directory (validates every row first)")                       \
    X("team add", essctl_team_add,                                                               \
      "--name N --province TH50|--national --group G [--station ID] [--agency A,B] [--kind K]",  \
      "add a team and its LINE group(s)")                                                        \
    X("team list", essctl_team_list, "[--json] [--all]", "the teams and their LINE groups")     \
    X("team remove", essctl_team_remove, "NAME | --id ID", "deactivate a team")                 \
    X("team invite", essctl_team_invite,                                                         \
      "(--province TH50 | --national) [--station ID] [--agency LIST] [--kind KIND] "             \
      "[--name NAME] [--json]",                                                                  \
      "a one-time code (24 h) that binds a LINE group to the team: /ess bind CODE")              \
    X("incident list", essctl_incident_list, "[--json] [--limit N] [--status S]",                \
      "incidents, newest first")                                                                 \
    X("incident show", essctl_incident_show, "CASE [--json] [--reveal-phone [--as NAME]]",       \
      "one incident and its timeline; phone masked unless --reveal-phone (ESS_DATA_KEY)")        \
    X("audit verify", essctl_audit_verify, "[--from SEQ] [--head-file PATH] [--json]",          \
      "recompute the audit hash chain; name the first broken row (exit 1)")                     \
    X("audit show", essctl_audit_show, "--incident CASE [--json]",                              \
      "the whole history of a case from the audit log")                                         \
    X("retention run", essctl_retention_run, "[--days N]",                                      \
      "erase phone numbers and reporter LINE ids of incidents closed > ESS_PII_RETENTION_DAYS") \
    X("user add", essctl_user_add,                                                              \
      "--name NAME --role commander|analyst|admin --area TH50|all [--password-stdin]",         \
      "a console account (password: stdin, a prompt, or ESS_CONSOLE_PASSWORD)")                \
    X("user list", essctl_user_list, "[--json]", "the console accounts")                       \
    X("user remove", essctl_user_remove, "--name NAME",                                         \
      "remove a console account; its sessions end")                                              \
    X("user passwd", essctl_user_passwd, "--name NAME [--password-stdin]",                      \
      "set a console account's password; its sessions end")

#define DECLARE_HANDLER(words, handler, usage, help)                                               \
    int handler(const essctl_command *command, int argc, char **argv);
ESSCTL_COMMANDS(DECLARE_HANDLER)

#define COMMAND_ROW(words, handler, usage, help) {words, handler, usage, help},
static const essctl_command commands[] = {ESSCTL_COMMANDS(COMMAND_ROW)};
#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

static bool is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

#define SYNOPSIS_COLUMN 28

static void print_commands(FILE *out, const char *group)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        size_t group_len = group != NULL ? strlen(group) : 0;
        if (group != NULL && (strncmp(commands[i].name, group, group_len) != 0 ||
                              commands[i].name[group_len] != ' '))
            continue;
        char synopsis[512];
        int len = snprintf(synopsis, sizeof(synopsis), "%s%s%s", commands[i].name,
                           commands[i].usage[0] != '\0' ? " " : "", commands[i].usage);
        /* A synopsis longer than the column gets a line of its own, whole. */
        if (len > SYNOPSIS_COLUMN)
            fprintf(out, "  %s\n  %-*s %s\n", synopsis, SYNOPSIS_COLUMN, "", commands[i].help);
        else
            fprintf(out, "  %-*s %s\n", SYNOPSIS_COLUMN, synopsis, commands[i].help);
    }
}

static void print_usage(FILE *out)
{
    fprintf(out, "usage: essctl <command> [options]      (essctl <command> --help)\n\n"
                 "Operations CLI of ESS, Emergency Social Services.\n\ncommands:\n");
    print_commands(out, NULL);
    fprintf(out, "\nenvironment:\n");
    essctl_print_environment(out);
    fprintf(out, "\nexit codes: 0 ok, 1 failure, 2 usage or configuration problem\n");
}

/* The longest command whose words are the first arguments; *ret_words = how many matched. */
static const essctl_command *find_command(int argc, char **argv, int *ret_words)
{
    const essctl_command *best = NULL;
    int best_words = 0;
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        const char *word = commands[i].name;
        int words = 0;
        bool matches = true;
        while (matches && *word != '\0') {
            size_t len = strcspn(word, " ");
            matches =
                words < argc && strlen(argv[words]) == len && strncmp(argv[words], word, len) == 0;
            words++;
            word += len;
            while (*word == ' ')
                word++;
        }
        if (matches && words > best_words) {
            best = &commands[i];
            best_words = words;
        }
    }
    *ret_words = best_words;
    return best;
}

static bool is_group(const char *word)
{
    size_t len = strlen(word);
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strncmp(commands[i].name, word, len) == 0 && commands[i].name[len] == ' ')
            return true;
    return false;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return ESSCTL_EXIT_USAGE;
    }
    if (is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return ESSCTL_EXIT_OK;
    }
    int words = 0;
    const essctl_command *command = find_command(argc - 1, argv + 1, &words);
    if (command == NULL) {
        if (is_group(argv[1])) {
            bool asked = argc > 2 && is_help(argv[2]);
            FILE *out = asked ? stdout : stderr;
            fprintf(out, "usage: essctl %s <command>\n\ncommands:\n", argv[1]);
            print_commands(out, argv[1]);
            return asked ? ESSCTL_EXIT_OK : ESSCTL_EXIT_USAGE;
        }
        char shown[64];
        log_scrub(argv[1], shown, sizeof(shown));
        fprintf(stderr, "essctl: unknown command \"%s\"; see essctl --help\n", shown);
        return ESSCTL_EXIT_USAGE;
    }
    int rest_argc = argc - 1 - words;
    char **rest_argv = argv + 1 + words;
    for (int i = 0; i < rest_argc; i++) {
        if (is_help(rest_argv[i])) {
            printf("usage: essctl %s%s%s\n\n%s\n", command->name, command->usage[0] ? " " : "",
                   command->usage, command->help);
            return ESSCTL_EXIT_OK;
        }
    }
    return command->run(command, rest_argc, rest_argv);
}
