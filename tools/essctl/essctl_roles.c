/* essctl db login-role: a login role for the services (or the retention job), member of one
 * of the group roles of migrations 0005/0007.
 *
 *   essctl db login-role NAME --member-of ess_service|ess_retention --password-env VAR
 *       creates NAME (LOGIN, no other attribute) when missing, sets its password to the one in
 *       the environment variable VAR (never on the command line: others can read that) and
 *       makes it a member of the group. Idempotent: run it at every deployment, it converges
 *       and rotates the password to VAR's value. Refuses a role that could do more than its
 *       group lets it: one with administrative attributes, the connecting role itself, one
 *       that belongs to another group, or one that owns objects. Needs a connection
 *       (ESS_PG_DSN) with CREATEROLE — the database administrator's, not the services'.
 *
 * deploy/local/ess and docker-compose.yml's migrate job run it for ess_app (ess_service) and
 * ess_janitor (ess_retention). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "essctl.h"
#include "essctl_roles.h"

#define ROLE_NAME_MAX 63
#define PASSWORD_MIN 16
#define PASSWORD_MAX 1024
#define SALT_BYTES 16
#define ENV_NAME_MAX 128

int essctl_db_login_role(const essctl_command *command, int argc, char **argv);

static const char *const login_groups[] = {"ess_service", "ess_retention"};

bool essctl_login_password_ok(const char *password)
{
    if (password == NULL)
        return false;
    size_t len = strnlen(password, PASSWORD_MAX + 1);
    if (len < PASSWORD_MIN || len > PASSWORD_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (password[i] < 0x21 || password[i] > 0x7e)
            return false;
    return true;
}

static void base64(const unsigned char *data, size_t len, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
}

st_code essctl_scram_verifier(const char *password, const unsigned char *salt, size_t salt_len,
                              int iterations, char *ret_verifier, size_t verifier_size,
                              st_error *err)
{
    if (!essctl_login_password_ok(password) || salt == NULL || salt_len < 1 ||
        salt_len > ESSCTL_SCRAM_SALT_MAX || iterations < 1 || iterations > 1000000 ||
        ret_verifier == NULL || verifier_size < ESSCTL_SCRAM_VERIFIER_MAX)
        return st_fail(err, ST_INVALID, "a SCRAM verifier needs a valid password, salt and size");
    static const char client_label[] = "Client Key";
    static const char server_label[] = "Server Key";
    unsigned char salted[SHA256_DIGEST_LENGTH];
    unsigned char client_key[SHA256_DIGEST_LENGTH];
    unsigned char stored_key[SHA256_DIGEST_LENGTH];
    unsigned char server_key[SHA256_DIGEST_LENGTH];
    unsigned int key_len = 0;
    st_code status = ST_OK;
    /* SaltedPassword = Hi(password, salt, i) = PBKDF2-HMAC-SHA-256; the keys as RFC 5802. */
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, iterations,
                          EVP_sha256(), sizeof(salted), salted) != 1 ||
        HMAC(EVP_sha256(), salted, sizeof(salted), (const unsigned char *)client_label,
             sizeof(client_label) - 1, client_key, &key_len) == NULL ||
        SHA256(client_key, sizeof(client_key), stored_key) == NULL ||
        HMAC(EVP_sha256(), salted, sizeof(salted), (const unsigned char *)server_label,
             sizeof(server_label) - 1, server_key, &key_len) == NULL) {
        status = st_fail(err, ST_INTERNAL, "OpenSSL could not derive the SCRAM keys");
        goto cleanup;
    }
    char salt_text[(ESSCTL_SCRAM_SALT_MAX + 2) / 3 * 4 + 1];
    char stored_text[(SHA256_DIGEST_LENGTH + 2) / 3 * 4 + 1];
    char server_text[(SHA256_DIGEST_LENGTH + 2) / 3 * 4 + 1];
    base64(salt, salt_len, salt_text);
    base64(stored_key, sizeof(stored_key), stored_text);
    base64(server_key, sizeof(server_key), server_text);
    char verifier[ESSCTL_SCRAM_VERIFIER_MAX];
    int written = snprintf(verifier, sizeof(verifier), "SCRAM-SHA-256$%d:%s$%s:%s", iterations,
                           salt_text, stored_text, server_text);
    if (written < 0 || (size_t)written >= sizeof(verifier))
        status = st_fail(err, ST_LIMIT, "the SCRAM verifier does not fit");
    else
        memcpy(ret_verifier, verifier, (size_t)written + 1);
cleanup:
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    OPENSSL_cleanse(server_key, sizeof(server_key));
    return status;
}

/* A name PostgreSQL takes unquoted and that is not one of its own or one of our groups. */
static bool login_name_ok(const char *name)
{
    size_t len = strnlen(name, ROLE_NAME_MAX + 1);
    if (len < 1 || len > ROLE_NAME_MAX || name[0] < 'a' || name[0] > 'z' ||
        strncmp(name, "pg_", 3) == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    for (size_t i = 0; i < sizeof(login_groups) / sizeof(login_groups[0]); i++)
        if (strcmp(name, login_groups[i]) == 0)
            return false;
    return true;
}

static bool env_name_ok(const char *name)
{
    size_t len = strnlen(name, ENV_NAME_MAX + 1);
    if (len < 1 || len > ENV_NAME_MAX || (name[0] >= '0' && name[0] <= '9'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

typedef struct login_job {
    const char *login;
    const char *group;
    const char *verifier;
} login_job;

/* Refuses a role that would give the services more than its group: see the file comment. */
static st_code check_existing(db *d, const login_job *job, st_error *err)
{
    const char *params[] = {job->login, job->group};
    db_result *r = NULL;
    st_code status =
        db_exec(d, "SELECT 1 FROM pg_roles WHERE rolname = $1", 1, params + 1, &r, err);
    if (status != ST_OK)
        goto cleanup;
    if (db_result_rows(r) != 1) {
        status =
            st_fail(err, ST_NOT_FOUND,
                    "role %s is missing: run essctl db migrate first (migration 0005)", job->group);
        goto cleanup;
    }
    db_result_destroy(r);
    r = NULL;
    status = db_exec(d,
                     "SELECT r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication"
                     "       OR r.rolbypassrls,"
                     "       r.rolname = current_user,"
                     "       coalesce((SELECT string_agg(g.rolname, ', ' ORDER BY g.rolname)"
                     "                   FROM pg_auth_members m JOIN pg_roles g"
                     "                     ON g.oid = m.roleid"
                     "                  WHERE m.member = r.oid AND g.rolname <> $2), ''),"
                     "       EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner = r.oid)"
                     "       OR EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspowner = r.oid)"
                     "       OR EXISTS (SELECT 1 FROM pg_database b WHERE b.datdba = r.oid)"
                     "  FROM pg_roles r WHERE r.rolname = $1",
                     2, params, &r, err);
    if (status != ST_OK || db_result_rows(r) == 0)
        goto cleanup; /* a new role */
    const char *other_groups = db_result_value(r, 0, 2);
    if (strcmp(db_result_value(r, 0, 0), "t") == 0)
        status = st_fail(err, ST_CONFLICT,
                         "role %s has administrative attributes (superuser, createrole, "
                         "createdb, replication or bypassrls): not a service login",
                         job->login);
    else if (strcmp(db_result_value(r, 0, 1), "t") == 0)
        status = st_fail(err, ST_CONFLICT,
                         "role %s is the connecting role itself: not a service login", job->login);
    else if (other_groups != NULL && other_groups[0] != '\0')
        status = st_fail(err, ST_CONFLICT,
                         "role %s is also a member of %.80s: a service login belongs to one "
                         "group only",
                         job->login, other_groups);
    else if (strcmp(db_result_value(r, 0, 3), "t") == 0)
        status =
            st_fail(err, ST_CONFLICT,
                    "role %s owns tables, schemas or databases: not a service login", job->login);
cleanup:
    db_result_destroy(r);
    return status;
}

/* The DDL is built by the server (format %I, %L) from the transaction's settings: no value
 * is ever pasted into SQL text here (db.h). */
static const char apply_sql[] =
    "DO $login$\n"
    "DECLARE\n"
    "    login text := current_setting('ess.login_role');\n"
    "    member_of text := current_setting('ess.login_group');\n"
    "BEGIN\n"
    "    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = login) THEN\n"
    "        BEGIN\n"
    "            EXECUTE format('CREATE ROLE %I LOGIN', login);\n"
    "        EXCEPTION\n"
    "            -- created meanwhile by another deployment of the same cluster\n"
    "            WHEN duplicate_object OR unique_violation THEN NULL;\n"
    "        END;\n"
    "    END IF;\n"
    "    EXECUTE format('ALTER ROLE %I LOGIN PASSWORD %L', login,\n"
    "                   current_setting('ess.login_verifier'));\n"
    "    BEGIN\n"
    "        EXECUTE format('GRANT %I TO %I', member_of, login);\n"
    "    EXCEPTION WHEN unique_violation THEN NULL;\n"
    "    END;\n"
    "END\n"
    "$login$";

static st_code apply_login(db *d, void *closure, st_error *err)
{
    const login_job *job = closure;
    st_code status = check_existing(d, job, err);
    if (status != ST_OK)
        return status;
    const char *settings[] = {job->login, job->group, job->verifier};
    status = db_exec(d,
                     "SELECT set_config('ess.login_role', $1, true),"
                     "       set_config('ess.login_group', $2, true),"
                     "       set_config('ess.login_verifier', $3, true)",
                     3, settings, NULL, err);
    if (status == ST_OK)
        status = db_exec(d, apply_sql, 0, NULL, NULL, err);
    if (status != ST_OK && err != NULL && strcmp(err->cause, "sqlstate 42501") == 0) {
        char cause[ST_CAUSE_MAX];
        memcpy(cause, err->cause, sizeof(cause));
        st_fail(err, status,
                "cannot create or change role %s: the connecting role needs CREATEROLE "
                "(use the database administrator's connection)",
                job->login);
        st_set_cause(err, "%s", cause);
    }
    return status;
}

int essctl_db_login_role(const essctl_command *command, int argc, char **argv)
{
    const char *group = NULL;
    const char *password_env = NULL;
    if (!essctl_take_option(command, &argc, argv, "--member-of", &group) ||
        !essctl_take_option(command, &argc, argv, "--password-env", &password_env))
        return ESSCTL_EXIT_USAGE;
    if (argc < 1)
        return essctl_usage_error(command, "name the login role");
    const char *login = argv[0];
    int exit_code = essctl_no_more_args(command, argc - 1, argv + 1);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;
    if (!login_name_ok(login))
        return essctl_usage_error(command,
                                  "the role name must be 1..63 of a-z, 0-9 and _, start with a "
                                  "letter, and be neither pg_* nor a group role");
    bool group_ok = false;
    for (size_t i = 0; group != NULL && i < sizeof(login_groups) / sizeof(login_groups[0]); i++)
        group_ok = group_ok || strcmp(group, login_groups[i]) == 0;
    if (!group_ok)
        return essctl_usage_error(command, "--member-of must be ess_service or ess_retention");
    if (password_env == NULL || !env_name_ok(password_env))
        return essctl_usage_error(command,
                                  "--password-env must name an environment variable (A-Z, 0-9, _)");
    const char *password = getenv(password_env);
    if (password == NULL || password[0] == '\0')
        return essctl_usage_error(command, "%s is not set", password_env);
    if (!essctl_login_password_ok(password))
        return essctl_usage_error(command,
                                  "%s must hold %d..%d printable ASCII characters without spaces",
                                  password_env, PASSWORD_MIN, PASSWORD_MAX);

    unsigned char salt[SALT_BYTES];
    char verifier[ESSCTL_SCRAM_VERIFIER_MAX];
    st_error err = {0};
    if (RAND_bytes(salt, sizeof(salt)) != 1) {
        st_fail(&err, ST_INTERNAL, "no randomness available");
        return essctl_fail(command, &err);
    }
    if (essctl_scram_verifier(password, salt, sizeof(salt), ESSCTL_SCRAM_ITERATIONS, verifier,
                              sizeof(verifier), &err) != ST_OK)
        return essctl_fail(command, &err);

    db *d = NULL;
    exit_code = essctl_open_db(command, 0, &d);
    if (exit_code == ESSCTL_EXIT_OK) {
        login_job job = {.login = login, .group = group, .verifier = verifier};
        if (db_tx(d, 0, apply_login, &job, &err) != ST_OK)
            exit_code = essctl_fail(command, &err);
        else
            printf("%s logs in as a member of %s\n", login, group);
    }
    db_destroy(d);
    OPENSSL_cleanse(verifier, sizeof(verifier));
    return exit_code;
}
