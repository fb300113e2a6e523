/* essctl user: the accounts of ess-console (issue 10; services/console/README.md).
 *
 *   essctl user add --name NAME --role commander|analyst|admin --area TH50|all
 *                   [--password-stdin]
 *       a new account. NAME: 1..64 of letters, digits, . _ @ -. An admin sees every area
 *       (--area all). A province area must be on record (essctl geo import).
 *   essctl user list [--json]
 *       the accounts: role, area, created, last login, open sessions. Never a password hash.
 *   essctl user remove --name NAME
 *       removes the account; its sessions end at once.
 *   essctl user passwd --name NAME [--password-stdin]
 *       sets a new password; every session of the account ends.
 *
 * The password: with --password-stdin the first line of standard input; else, on a terminal,
 * asked twice without echo; else the variable ESS_CONSOLE_PASSWORD. At least 10 characters.
 * It is hashed with scrypt (services/console/console_auth.h) and never printed or logged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "console_auth.h"
#include "console_parse.h"
#include "essctl.h"

int essctl_user_add(const essctl_command *command, int argc, char **argv);
int essctl_user_list(const essctl_command *command, int argc, char **argv);
int essctl_user_remove(const essctl_command *command, int argc, char **argv);
int essctl_user_passwd(const essctl_command *command, int argc, char **argv);

#define PASSWORD_BUFFER (CONSOLE_PASSWORD_MAX + 2)
#define PASSWORD_VAR "ESS_CONSOLE_PASSWORD"

/* One line from in into out (without the line end); false when none or too long. */
static bool read_line(FILE *in, char *out, size_t size)
{
    if (fgets(out, (int)size, in) == NULL)
        return false;
    size_t len = strlen(out);
    if (len > 0 && out[len - 1] != '\n' && !feof(in))
        return false; /* longer than the buffer */
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r'))
        out[--len] = '\0';
    return true;
}

/* Asks on the terminal without echo. */
static bool prompt(const char *question, char *out, size_t size)
{
    FILE *tty = fopen("/dev/tty", "r+");
    if (tty == NULL)
        return false;
    struct termios saved, quiet;
    int fd = fileno(tty);
    bool restore = tcgetattr(fd, &saved) == 0;
    if (restore) {
        quiet = saved;
        quiet.c_lflag &= (tcflag_t)~ECHO;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    fprintf(tty, "%s", question);
    fflush(tty);
    bool ok = read_line(tty, out, size);
    fprintf(tty, "\n");
    if (restore)
        tcsetattr(fd, TCSAFLUSH, &saved);
    fclose(tty);
    return ok;
}

/* The new password into out (PASSWORD_BUFFER bytes); returns an exit code. */
static int read_password(const essctl_command *command, bool from_stdin, char *out)
{
    char again[PASSWORD_BUFFER];
    int exit_code = ESSCTL_EXIT_OK;
    out[0] = '\0';
    if (from_stdin) {
        if (!read_line(stdin, out, PASSWORD_BUFFER))
            exit_code = essctl_usage_error(command, "--password-stdin: no password line on "
                                                    "standard input (or one too long)");
    } else if (isatty(STDIN_FILENO)) {
        if (!prompt("new password: ", out, PASSWORD_BUFFER) ||
            !prompt("again: ", again, sizeof(again)))
            exit_code = essctl_usage_error(command, "cannot read the password from the "
                                                    "terminal");
        else if (strcmp(out, again) != 0)
            exit_code = essctl_usage_error(command, "the two passwords differ");
    } else {
        const char *value = getenv(PASSWORD_VAR);
        if (value == NULL || strlen(value) >= PASSWORD_BUFFER)
            exit_code = essctl_usage_error(command,
                                           "no password: use --password-stdin, a terminal, or "
                                           "%s",
                                           PASSWORD_VAR);
        else
            memcpy(out, value, strlen(value) + 1);
    }
    st_error err = {0};
    if (exit_code == ESSCTL_EXIT_OK && console_password_acceptable(out, &err) != ST_OK)
        exit_code = essctl_usage_error(command, "%s", err.message);
    OPENSSL_cleanse(again, sizeof(again));
    return exit_code;
}

static int take_name(const essctl_command *command, int *argc, char **argv,
                     const char **ret_name)
{
    if (!essctl_take_option(command, argc, argv, "--name", ret_name))
        return ESSCTL_EXIT_USAGE;
    if (*ret_name == NULL)
        return essctl_usage_error(command, "--name NAME is required");
    if (!console_user_name_valid(*ret_name))
        return essctl_usage_error(command,
                                  "a user name is 1..64 letters, digits, '.', '_', '@' or '-'");
    return ESSCTL_EXIT_OK;
}

/* The new password (read_password), its hash into hash, and the database: what adding a user
 * and changing a password both need first. The password is wiped before returning. */
static int hash_password_and_open_db(const essctl_command *command, bool from_stdin,
                                     char hash[CONSOLE_HASH_TEXT_MAX], db **ret_db)
{
    char password[PASSWORD_BUFFER];
    st_error err = {0};
    int exit_code = read_password(command, from_stdin, password);
    if (exit_code == ESSCTL_EXIT_OK && console_password_hash(password, hash, &err) != ST_OK)
        exit_code = essctl_fail(command, &err);
    OPENSSL_cleanse(password, sizeof(password));
    if (exit_code == ESSCTL_EXIT_OK)
        exit_code = essctl_open_db(command, 0, ret_db);
    return exit_code;
}

int essctl_user_add(const essctl_command *command, int argc, char **argv)
{
    const char *name = NULL, *role_text = NULL, *area = NULL;
    bool from_stdin = essctl_take_flag(&argc, argv, "--password-stdin");
    int exit_code = take_name(command, &argc, argv, &name);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;
    if (!essctl_take_option(command, &argc, argv, "--role", &role_text) ||
        !essctl_take_option(command, &argc, argv, "--area", &area))
        return ESSCTL_EXIT_USAGE;
    if ((exit_code = essctl_no_more_args(command, argc, argv)) != ESSCTL_EXIT_OK)
        return exit_code;
    console_role role;
    if (role_text == NULL || console_role_parse(role_text, &role) != ST_OK)
        return essctl_usage_error(command, "--role must be commander, analyst or admin");
    if (area == NULL || !console_area_valid(area))
        return essctl_usage_error(command, "--area must be a province code (TH50) or all");
    if (role == CONSOLE_ROLE_ADMIN && strcmp(area, "all") != 0)
        return essctl_usage_error(command, "an admin sees every area: --area all");

    char hash[CONSOLE_HASH_TEXT_MAX];
    db *d = NULL;
    db_result *r = NULL;
    st_error err = {0};
    if ((exit_code = hash_password_and_open_db(command, from_stdin, hash, &d)) != ESSCTL_EXIT_OK)
        goto cleanup;
    if (strcmp(area, "all") != 0) {
        const char *params[] = {area};
        if (db_exec(d, "SELECT 1 FROM provinces WHERE code = $1", 1, params, &r, &err) != ST_OK) {
            exit_code = essctl_fail(command, &err);
            goto cleanup;
        }
        if (db_result_rows(r) == 0) {
            fprintf(stderr,
                    "essctl %s: province %s is not on record (essctl geo import loads them)\n",
                    command->name, area);
            exit_code = ESSCTL_EXIT_FAILURE;
            goto cleanup;
        }
    }
    const char *params[] = {name, console_role_name(role), area, hash};
    st_code status = db_exec(d,
                             "INSERT INTO console_users (name, role, area, password_hash) "
                             "VALUES ($1, $2, $3, $4)",
                             4, params, NULL, &err);
    if (status == ST_CONFLICT) {
        fprintf(stderr, "essctl %s: user %s exists already (essctl user passwd changes its "
                        "password)\n",
                command->name, name);
        exit_code = ESSCTL_EXIT_FAILURE;
        goto cleanup;
    }
    if (status != ST_OK) {
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    printf("user %s added: %s, area %s\n", name, console_role_name(role), area);
cleanup:
    OPENSSL_cleanse(hash, sizeof(hash));
    db_result_destroy(r);
    db_destroy(d);
    return exit_code;
}

int essctl_user_list(const essctl_command *command, int argc, char **argv)
{
    bool json = essctl_take_flag(&argc, argv, "--json");
    int exit_code = essctl_no_more_args(command, argc, argv);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;
    db *d = NULL;
    db_result *r = NULL;
    st_error err = {0};
    if ((exit_code = essctl_open_db(command, 0, &d)) != ESSCTL_EXIT_OK)
        return exit_code;
    if (db_exec(d,
                "SELECT u.name, u.role, u.area, "
                "  to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                "  to_char(u.last_login_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                "  (SELECT count(*) FROM console_sessions s WHERE s.user_id = u.id "
                "     AND s.expires_at > now()) "
                "FROM console_users u ORDER BY u.name",
                0, NULL, &r, &err) != ST_OK) {
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    int rows = db_result_rows(r);
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON *users = cJSON_AddArrayToObject(root, "users");
        for (int row = 0; row < rows; row++) {
            cJSON *user = cJSON_CreateObject();
            cJSON_AddStringToObject(user, "name", db_result_value(r, row, 0));
            cJSON_AddStringToObject(user, "role", db_result_value(r, row, 1));
            cJSON_AddStringToObject(user, "area", db_result_value(r, row, 2));
            cJSON_AddStringToObject(user, "created_at", db_result_value(r, row, 3));
            if (db_result_value(r, row, 4) != NULL)
                cJSON_AddStringToObject(user, "last_login_at", db_result_value(r, row, 4));
            else
                cJSON_AddNullToObject(user, "last_login_at");
            cJSON_AddNumberToObject(user, "sessions", strtod(db_result_value(r, row, 5), NULL));
            cJSON_AddItemToArray(users, user);
        }
        char *text = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        if (text != NULL)
            printf("%s\n", text);
        free(text);
        goto cleanup;
    }
    printf("%-24s %-10s %-5s %-21s %-21s %s\n", "NAME", "ROLE", "AREA", "CREATED (UTC)",
           "LAST LOGIN (UTC)", "SESSIONS");
    for (int row = 0; row < rows; row++) {
        const char *last = db_result_value(r, row, 4);
        printf("%-24s %-10s %-5s %-21s %-21s %s\n", db_result_value(r, row, 0),
               db_result_value(r, row, 1), db_result_value(r, row, 2),
               db_result_value(r, row, 3), last != NULL ? last : "-",
               db_result_value(r, row, 5));
    }
    if (rows == 0)
        printf("(no users; essctl user add creates one)\n");
cleanup:
    db_result_destroy(r);
    db_destroy(d);
    return exit_code;
}

int essctl_user_remove(const essctl_command *command, int argc, char **argv)
{
    const char *name = NULL;
    int exit_code = take_name(command, &argc, argv, &name);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;
    if ((exit_code = essctl_no_more_args(command, argc, argv)) != ESSCTL_EXIT_OK)
        return exit_code;
    db *d = NULL;
    db_result *r = NULL;
    st_error err = {0};
    if ((exit_code = essctl_open_db(command, 0, &d)) != ESSCTL_EXIT_OK)
        return exit_code;
    const char *params[] = {name};
    /* Its sessions go with it (ON DELETE CASCADE): a removed user is logged out at once. */
    if (db_exec(d, "DELETE FROM console_users WHERE name = $1 RETURNING id", 1, params, &r,
                &err) != ST_OK) {
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    if (db_result_rows(r) == 0) {
        fprintf(stderr, "essctl %s: no user %s\n", command->name, name);
        exit_code = ESSCTL_EXIT_FAILURE;
        goto cleanup;
    }
    printf("user %s removed; its sessions ended\n", name);
cleanup:
    db_result_destroy(r);
    db_destroy(d);
    return exit_code;
}

int essctl_user_passwd(const essctl_command *command, int argc, char **argv)
{
    const char *name = NULL;
    bool from_stdin = essctl_take_flag(&argc, argv, "--password-stdin");
    int exit_code = take_name(command, &argc, argv, &name);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;
    if ((exit_code = essctl_no_more_args(command, argc, argv)) != ESSCTL_EXIT_OK)
        return exit_code;
    char hash[CONSOLE_HASH_TEXT_MAX];
    db *d = NULL;
    db_result *r = NULL;
    st_error err = {0};
    if ((exit_code = hash_password_and_open_db(command, from_stdin, hash, &d)) != ESSCTL_EXIT_OK)
        goto cleanup;
    const char *params[] = {name, hash};
    if (db_exec(d,
                "WITH changed AS (UPDATE console_users SET password_hash = $2, "
                "  password_changed_at = now() WHERE name = $1 RETURNING id), "
                "ended AS (DELETE FROM console_sessions WHERE user_id IN "
                "  (SELECT id FROM changed) RETURNING 1) "
                "SELECT (SELECT count(*) FROM changed), (SELECT count(*) FROM ended)",
                2, params, &r, &err) != ST_OK) {
        exit_code = essctl_fail(command, &err);
        goto cleanup;
    }
    if (strcmp(db_result_value(r, 0, 0), "0") == 0) {
        fprintf(stderr, "essctl %s: no user %s\n", command->name, name);
        exit_code = ESSCTL_EXIT_FAILURE;
        goto cleanup;
    }
    printf("password of %s changed; %s session(s) ended\n", name, db_result_value(r, 0, 1));
cleanup:
    OPENSSL_cleanse(hash, sizeof(hash));
    db_result_destroy(r);
    db_destroy(d);
    return exit_code;
}
