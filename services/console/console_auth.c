/* console_auth: passwords, sessions, roles, login throttling. See console_auth.h. */
#include "console_auth.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#define SCRYPT_N_MAX (1u << 17)
#define SCRYPT_R_MAX 16
#define SCRYPT_P_MAX 16
#define SCRYPT_MEMORY_MAX (128ULL * 1024 * 1024)
#define SCRYPT_OUT_MAX 64
#define SALT_MIN 8
#define SALT_MAX 64
/* last_seen_at is written at most this often: a busy page does not write on every request. */
#define SEEN_NOTE_PERIOD "1 minute"

/* ---- passwords ------------------------------------------------------------------------- */

st_code console_scrypt(const char *password, size_t password_len, const unsigned char *salt,
                       size_t salt_len, uint64_t n, uint64_t r, uint64_t p, unsigned char *out,
                       size_t out_len, st_error *err)
{
    if (password == NULL || salt == NULL || out == NULL || out_len == 0 ||
        out_len > SCRYPT_OUT_MAX || password_len > CONSOLE_PASSWORD_MAX || salt_len > SALT_MAX)
        return st_fail(err, ST_INVALID, "scrypt: invalid arguments");
    if (n < 2 || n > SCRYPT_N_MAX || (n & (n - 1)) != 0 || r < 1 || r > SCRYPT_R_MAX || p < 1 ||
        p > SCRYPT_P_MAX || 128ULL * r * n > SCRYPT_MEMORY_MAX)
        return st_fail(err, ST_INVALID, "scrypt: parameters out of bounds");
    /* The working memory is 128*r*N for V plus 128*r*p for B (and a little): allow it. */
    uint64_t max_memory = 128ULL * r * (n + p + 2) + 1024 * 1024;
    if (EVP_PBE_scrypt(password, password_len, salt, salt_len, n, r, p, max_memory, out,
                       out_len) != 1)
        return st_fail(err, ST_INTERNAL, "scrypt: the computation failed");
    return ST_OK;
}

st_code console_password_acceptable(const char *password, st_error *err)
{
    if (password == NULL)
        return st_fail(err, ST_INVALID, "no password given");
    size_t len = strnlen(password, CONSOLE_PASSWORD_MAX + 1);
    if (len > CONSOLE_PASSWORD_MAX)
        return st_fail(err, ST_INVALID, "the password is longer than %d bytes",
                       CONSOLE_PASSWORD_MAX);
    size_t chars = 0;
    if (!console_utf8_text(password, len, false, &chars))
        return st_fail(err, ST_INVALID, "the password must be UTF-8 text without control "
                                        "characters");
    if (chars < CONSOLE_PASSWORD_MIN)
        return st_fail(err, ST_INVALID, "the password must have at least %d characters",
                       CONSOLE_PASSWORD_MIN);
    return ST_OK;
}

static void base64(const unsigned char *bytes, size_t len, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, bytes, (int)len);
}

/* Standard base64 with padding into out (at most max bytes); *ret_len decoded bytes. */
static bool unbase64(const char *text, size_t text_len, unsigned char *out, size_t max,
                     size_t *ret_len)
{
    if (text_len == 0 || text_len % 4 != 0 || text_len / 4 * 3 > max + 2)
        return false;
    for (size_t i = 0; i < text_len; i++) {
        char c = text[i];
        bool pad = c == '=' && i >= text_len - 2;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || pad))
            return false;
        if (pad && i == text_len - 2 && text[text_len - 1] != '=')
            return false;
    }
    unsigned char decoded[SALT_MAX + SCRYPT_OUT_MAX + 4];
    if (text_len / 4 * 3 > sizeof(decoded))
        return false;
    int n = EVP_DecodeBlock(decoded, (const unsigned char *)text, (int)text_len);
    if (n < 0)
        return false;
    size_t len = (size_t)n;
    if (text[text_len - 1] == '=')
        len--;
    if (text[text_len - 2] == '=')
        len--;
    if (len > max)
        return false;
    memcpy(out, decoded, len);
    *ret_len = len;
    return true;
}

st_code console_password_hash(const char *password, char *ret_encoded, st_error *err)
{
    st_code status = console_password_acceptable(password, err);
    if (status != ST_OK)
        return status;
    unsigned char salt[CONSOLE_SALT_BYTES], key[CONSOLE_KEY_BYTES];
    if ((status = vault_random(salt, sizeof(salt), err)) != ST_OK)
        return status;
    status = console_scrypt(password, strlen(password), salt, sizeof(salt), CONSOLE_SCRYPT_N,
                            CONSOLE_SCRYPT_R, CONSOLE_SCRYPT_P, key, sizeof(key), err);
    if (status == ST_OK) {
        char salt_text[32], key_text[48];
        base64(salt, sizeof(salt), salt_text);
        base64(key, sizeof(key), key_text);
        snprintf(ret_encoded, CONSOLE_HASH_TEXT_MAX, "scrypt$%d$%d$%d$%s$%s", CONSOLE_SCRYPT_N,
                 CONSOLE_SCRYPT_R, CONSOLE_SCRYPT_P, salt_text, key_text);
    }
    OPENSSL_cleanse(key, sizeof(key));
    return status;
}

/* Splits "scrypt$N$r$p$salt$hash". */
typedef struct parsed_hash {
    uint64_t n, r, p;
    unsigned char salt[SALT_MAX];
    size_t salt_len;
    unsigned char key[SCRYPT_OUT_MAX];
    size_t key_len;
} parsed_hash;

static bool parse_number(const char **cursor, uint64_t max, uint64_t *ret_value)
{
    const char *p = *cursor;
    uint64_t value = 0;
    size_t digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 10) {
        value = value * 10 + (uint64_t)(*p - '0');
        p++;
        digits++;
    }
    if (digits == 0 || *p != '$' || value > max)
        return false;
    *cursor = p + 1;
    *ret_value = value;
    return true;
}

static bool parse_hash(const char *encoded, parsed_hash *ret)
{
    if (encoded == NULL || strnlen(encoded, CONSOLE_HASH_TEXT_MAX) >= CONSOLE_HASH_TEXT_MAX ||
        strncmp(encoded, "scrypt$", 7) != 0)
        return false;
    const char *cursor = encoded + 7;
    if (!parse_number(&cursor, SCRYPT_N_MAX, &ret->n) ||
        !parse_number(&cursor, SCRYPT_R_MAX, &ret->r) ||
        !parse_number(&cursor, SCRYPT_P_MAX, &ret->p))
        return false;
    const char *dollar = strchr(cursor, '$');
    if (dollar == NULL ||
        !unbase64(cursor, (size_t)(dollar - cursor), ret->salt, SALT_MAX, &ret->salt_len) ||
        ret->salt_len < SALT_MIN)
        return false;
    const char *key_text = dollar + 1;
    return unbase64(key_text, strlen(key_text), ret->key, SCRYPT_OUT_MAX, &ret->key_len) &&
           ret->key_len >= 16;
}

st_code console_password_verify(const char *encoded, const char *password, bool *ret_match,
                                st_error *err)
{
    parsed_hash hash;
    if (password == NULL || ret_match == NULL)
        return st_fail(err, ST_INVALID, "password check: invalid arguments");
    if (!parse_hash(encoded, &hash))
        return st_fail(err, ST_INVALID, "the stored password hash is not scrypt$N$r$p$salt$hash");
    size_t len = strnlen(password, CONSOLE_PASSWORD_MAX + 1);
    if (len > CONSOLE_PASSWORD_MAX) {
        *ret_match = false;
        return ST_OK;
    }
    unsigned char key[SCRYPT_OUT_MAX];
    st_code status = console_scrypt(password, len, hash.salt, hash.salt_len, hash.n, hash.r,
                                    hash.p, key, hash.key_len, err);
    if (status == ST_OK)
        *ret_match = CRYPTO_memcmp(key, hash.key, hash.key_len) == 0;
    OPENSSL_cleanse(key, sizeof(key));
    return status;
}

/* ---- tokens ------------------------------------------------------------------------------ */

st_code console_token_new(char *ret_text, st_error *err)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char bytes[CONSOLE_TOKEN_BYTES + 1] = {0};
    st_code status = vault_random(bytes, CONSOLE_TOKEN_BYTES, err);
    if (status != ST_OK)
        return status;
    /* 32 bytes = 256 bits = 42 groups of 6 bits and 4 bits left: 43 characters. */
    size_t out = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < CONSOLE_TOKEN_BYTES; i++) {
        acc = (acc << 8) | bytes[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            ret_text[out++] = alphabet[(acc >> bits) & 0x3f];
        }
    }
    if (bits > 0)
        ret_text[out++] = alphabet[(acc << (6 - bits)) & 0x3f];
    ret_text[out] = '\0';
    OPENSSL_cleanse(bytes, sizeof(bytes));
    return ST_OK;
}

void console_token_hash(const char *text, unsigned char ret_hash[32])
{
    SHA256((const unsigned char *)text, strnlen(text, CONSOLE_TOKEN_TEXT), ret_hash);
}

bool console_token_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return false;
    size_t len = strnlen(a, CONSOLE_TOKEN_TEXT);
    if (len != strnlen(b, CONSOLE_TOKEN_TEXT) || len == 0)
        return false;
    return CRYPTO_memcmp(a, b, len) == 0;
}

/* ---- roles and areas --------------------------------------------------------------------- */

static const char *const role_names[] = {"admin", "commander", "analyst"};

st_code console_role_parse(const char *text, console_role *ret_role)
{
    for (size_t i = 0; text != NULL && i < sizeof(role_names) / sizeof(role_names[0]); i++) {
        if (strcmp(text, role_names[i]) == 0) {
            *ret_role = (console_role)i;
            return ST_OK;
        }
    }
    return ST_INVALID;
}

const char *console_role_name(console_role role)
{
    return (size_t)role < sizeof(role_names) / sizeof(role_names[0]) ? role_names[role] : "?";
}

bool console_area_valid(const char *area)
{
    if (area == NULL)
        return false;
    if (strcmp(area, "all") == 0)
        return true;
    return strlen(area) == 4 && area[0] == 'T' && area[1] == 'H' && area[2] >= '0' &&
           area[2] <= '9' && area[3] >= '0' && area[3] <= '9';
}

bool console_user_sees_all(const console_user *user)
{
    return user->role == CONSOLE_ROLE_ADMIN || strcmp(user->area, "all") == 0;
}

bool console_user_sees_province(const console_user *user, const char *province_code)
{
    if (console_user_sees_all(user))
        return true;
    return province_code != NULL && strcmp(province_code, user->area) == 0;
}

bool console_user_sees_cases(const console_user *user)
{
    return user->role == CONSOLE_ROLE_ADMIN || user->role == CONSOLE_ROLE_COMMANDER;
}

const char *console_user_area_param(const console_user *user)
{
    return console_user_sees_all(user) ? "all" : user->area;
}

/* ---- sessions ---------------------------------------------------------------------------- */

/* "\x<hex>" for a bytea parameter (out: 2 + 64 + 1 bytes). */
static void bytea_param(const unsigned char hash[32], char out[67])
{
    out[0] = '\\';
    out[1] = 'x';
    vault_hex(hash, 32, out + 2);
}

static void ms_text(int64_t ms, char out[24])
{
    snprintf(out, 24, "%" PRId64, ms);
}

/* Fills user from columns id, name, role, area starting at col. */
static st_code user_from_row(const db_result *r, int row, int col, console_user *ret_user,
                             st_error *err)
{
    console_user user = {0};
    const char *id = db_result_value(r, row, col), *name = db_result_value(r, row, col + 1);
    const char *role = db_result_value(r, row, col + 2), *area = db_result_value(r, row, col + 3);
    if (id == NULL || !console_user_name_valid(name) ||
        console_role_parse(role, &user.role) != ST_OK || !console_area_valid(area))
        return st_fail(err, ST_INTERNAL, "a console_users row is not as migration 0008 says");
    user.id = strtoll(id, NULL, 10);
    memcpy(user.name, name, strlen(name) + 1);
    snprintf(user.area, sizeof(user.area), "%s",
             user.role == CONSOLE_ROLE_ADMIN ? "all" : area);
    *ret_user = user;
    return ST_OK;
}

st_code console_session_create(db *d, const console_user *user, int64_t lifetime_ms,
                               char *ret_token, console_session *ret_session, st_error *err)
{
    char token[CONSOLE_TOKEN_TEXT], hash_param[67], user_id[24], lifetime[24];
    console_session session = {.user = *user};
    db_result *r = NULL;
    st_code status = console_token_new(token, err);
    if (status == ST_OK)
        status = console_token_new(session.csrf, err);
    if (status != ST_OK)
        goto cleanup;
    console_token_hash(token, session.token_hash);
    bytea_param(session.token_hash, hash_param);
    snprintf(user_id, sizeof(user_id), "%" PRId64, user->id);
    ms_text(lifetime_ms, lifetime);
    const char *params[] = {hash_param, user_id, session.csrf, lifetime};
    if ((status = db_exec(d,
                          "INSERT INTO console_sessions (token_hash, user_id, csrf_token, "
                          "expires_at) VALUES ($1::bytea, $2::bigint, $3, now() + $4::bigint * "
                          "interval '1 millisecond') "
                          "RETURNING (extract(epoch FROM expires_at) * 1000)::bigint",
                          4, params, &r, err)) != ST_OK)
        goto cleanup;
    session.expires_unix_ms = strtoll(db_result_value(r, 0, 0), NULL, 10);
    if ((status = db_exec(d, "UPDATE console_users SET last_login_at = now() WHERE id = $1::bigint",
                          1, params + 1, NULL, err)) != ST_OK)
        goto cleanup;
    memcpy(ret_token, token, sizeof(token));
    *ret_session = session;
cleanup:
    OPENSSL_cleanse(token, sizeof(token));
    db_result_destroy(r);
    return status;
}

st_code console_session_find(db *d, const char *token, int64_t idle_ms,
                             console_session *ret_session, st_error *err)
{
    if (!console_token_text_valid(token))
        return ST_NOT_FOUND;
    console_session session = {0};
    char hash_param[67], idle[24];
    console_token_hash(token, session.token_hash);
    bytea_param(session.token_hash, hash_param);
    ms_text(idle_ms, idle);
    const char *params[] = {hash_param, idle};
    db_result *r = NULL;
    st_code status = db_exec(
        d,
        "SELECT u.id, u.name, u.role, u.area, s.csrf_token, "
        "  (extract(epoch FROM s.expires_at) * 1000)::bigint, "
        "  s.last_seen_at < now() - interval '" SEEN_NOTE_PERIOD "' "
        "FROM console_sessions s JOIN console_users u ON u.id = s.user_id "
        "WHERE s.token_hash = $1::bytea AND s.expires_at > now() "
        "  AND s.last_seen_at > now() - $2::bigint * interval '1 millisecond'",
        2, params, &r, err);
    if (status != ST_OK)
        goto cleanup;
    if (db_result_rows(r) != 1) {
        status = ST_NOT_FOUND;
        goto cleanup;
    }
    if ((status = user_from_row(r, 0, 0, &session.user, err)) != ST_OK)
        goto cleanup;
    const char *csrf = db_result_value(r, 0, 4);
    snprintf(session.csrf, sizeof(session.csrf), "%s", csrf != NULL ? csrf : "");
    session.expires_unix_ms = strtoll(db_result_value(r, 0, 5), NULL, 10);
    if (strcmp(db_result_value(r, 0, 6), "t") == 0 &&
        (status = db_exec(d, "UPDATE console_sessions SET last_seen_at = now() "
                             "WHERE token_hash = $1::bytea",
                          1, params, NULL, err)) != ST_OK)
        goto cleanup;
    *ret_session = session;
cleanup:
    db_result_destroy(r);
    return status;
}

st_code console_session_delete(db *d, const unsigned char token_hash[32], st_error *err)
{
    char hash_param[67];
    bytea_param(token_hash, hash_param);
    const char *params[] = {hash_param};
    return db_exec(d, "DELETE FROM console_sessions WHERE token_hash = $1::bytea", 1, params,
                   NULL, err);
}

st_code console_auth_sweep(db *d, int64_t idle_ms, int64_t window_ms, int64_t *ret_removed,
                           st_error *err)
{
    char idle[24], window[24];
    ms_text(idle_ms, idle);
    ms_text(window_ms, window);
    const char *params[] = {idle, window};
    db_result *r = NULL;
    st_code status = db_exec(
        d,
        "WITH sessions AS (DELETE FROM console_sessions WHERE expires_at <= now() OR "
        "  last_seen_at <= now() - $1::bigint * interval '1 millisecond' RETURNING 1), "
        "failures AS (DELETE FROM console_login_failures WHERE next_attempt_at <= now() AND "
        "  last_failure_at <= now() - $2::bigint * interval '1 millisecond' RETURNING 1) "
        "SELECT (SELECT count(*) FROM sessions) + (SELECT count(*) FROM failures)",
        2, params, &r, err);
    if (status == ST_OK && ret_removed != NULL)
        *ret_removed = strtoll(db_result_value(r, 0, 0), NULL, 10);
    db_result_destroy(r);
    return status;
}

/* ---- login ------------------------------------------------------------------------------- */

int64_t console_login_delay_ms(int64_t failures, int64_t base_ms, int64_t max_ms)
{
    if (failures <= 0 || base_ms <= 0)
        return 0;
    int64_t delay = base_ms;
    for (int64_t i = 1; i < failures && delay < max_ms; i++)
        delay *= 2;
    return delay < max_ms ? delay : max_ms;
}

void console_login_keys_for(const vault_keys *keys, const char *name, const char *peer,
                            console_login_keys *ret_keys)
{
    vault_lookup_hash(keys, "console.login.account", name != NULL ? name : "",
                      ret_keys->account);
    vault_lookup_hash(keys, "console.login.peer", peer != NULL ? peer : "", ret_keys->peer);
}

typedef struct reserve_run {
    const console_login_keys *keys;
    const console_login_throttle *throttle;
    int64_t wait_ms;
    bool refused;
} reserve_run;

static st_code reserve_tx(db *d, void *closure, st_error *err)
{
    reserve_run *run = closure;
    char account[67], peer[67], window[24];
    bytea_param(run->keys->account, account);
    bytea_param(run->keys->peer, peer);
    ms_text(run->throttle->window_ms, window);
    const char *params[] = {account, peer, window};
    db_result *r = NULL;
    run->wait_ms = 0;
    run->refused = false;
    st_code status = db_exec(
        d,
        "SELECT key_hash, failures, "
        "  greatest(0, (extract(epoch FROM (next_attempt_at - now())) * 1000))::bigint "
        "FROM console_login_failures WHERE key_hash IN ($1::bytea, $2::bytea) "
        "  AND failures > 0 AND last_failure_at > now() - $3::bigint * interval '1 millisecond' "
        "ORDER BY key_hash FOR UPDATE",
        3, params, &r, err);
    if (status != ST_OK)
        goto cleanup;
    for (int row = 0; row < db_result_rows(r); row++) {
        int64_t wait = strtoll(db_result_value(r, row, 2), NULL, 10);
        if (wait > run->wait_ms)
            run->wait_ms = wait;
    }
    if (run->wait_ms > 2 * run->throttle->max_ms) {
        run->refused = true;
        goto cleanup;
    }
    /* Each key's next attempt moves one of its delays further: the attempts that arrive
     * meanwhile queue up behind this one. */
    for (int row = 0; row < db_result_rows(r); row++) {
        int64_t failures = strtoll(db_result_value(r, row, 1), NULL, 10);
        char delay[24];
        ms_text(console_login_delay_ms(failures, run->throttle->base_ms, run->throttle->max_ms),
                delay);
        const char *update[] = {db_result_value(r, row, 0), delay};
        if ((status = db_exec(d,
                              "UPDATE console_login_failures SET next_attempt_at = "
                              "greatest(next_attempt_at, now()) + $2::bigint * "
                              "interval '1 millisecond' WHERE key_hash = $1::bytea",
                              2, update, NULL, err)) != ST_OK)
            goto cleanup;
    }
cleanup:
    db_result_destroy(r);
    return status;
}

st_code console_login_reserve(db *d, const console_login_keys *keys,
                              const console_login_throttle *throttle, int64_t *ret_wait_ms,
                              bool *ret_refused, st_error *err)
{
    reserve_run run = {.keys = keys, .throttle = throttle};
    st_code status = db_tx(d, 0, reserve_tx, &run, err);
    if (status == ST_OK) {
        *ret_wait_ms = run.wait_ms;
        *ret_refused = run.refused;
    }
    return status;
}

st_code console_login_check(db *d, const char *name, const char *password,
                            const char *dummy_hash, console_user *ret_user, bool *ret_ok,
                            st_error *err)
{
    const char *params[] = {name};
    db_result *r = NULL;
    console_user user = {0};
    bool match = false, known = false;
    st_code status = db_exec(d,
                             "SELECT id, name, role, area, password_hash FROM console_users "
                             "WHERE name = $1",
                             1, params, &r, err);
    if (status != ST_OK)
        goto cleanup;
    known = db_result_rows(r) == 1;
    if (known && (status = user_from_row(r, 0, 0, &user, err)) != ST_OK)
        goto cleanup;
    /* An unknown name costs one scrypt too: the answer's timing does not tell names apart. */
    status = console_password_verify(known ? db_result_value(r, 0, 4) : dummy_hash, password,
                                     &match, err);
    if (status != ST_OK)
        goto cleanup;
    *ret_ok = known && match;
    if (*ret_ok)
        *ret_user = user;
cleanup:
    db_result_destroy(r);
    return status;
}

typedef struct failed_run {
    const console_login_keys *keys;
    const console_login_throttle *throttle;
    int64_t failures;
} failed_run;

static st_code failed_tx(db *d, void *closure, st_error *err)
{
    failed_run *run = closure;
    char window[24];
    ms_text(run->throttle->window_ms, window);
    const unsigned char *hashes[2] = {run->keys->account, run->keys->peer};
    const char *kinds[2] = {"account", "peer"};
    run->failures = 0;
    st_code status = ST_OK;
    for (int k = 0; k < 2 && status == ST_OK; k++) {
        char key[67], delay[24];
        bytea_param(hashes[k], key);
        const char *params[] = {key, kinds[k], window};
        db_result *r = NULL;
        status = db_exec(
            d,
            "INSERT INTO console_login_failures AS f (key_hash, kind, failures) "
            "VALUES ($1::bytea, $2, 1) ON CONFLICT (key_hash) DO UPDATE SET "
            "  failures = CASE WHEN f.last_failure_at > now() - $3::bigint * "
            "    interval '1 millisecond' THEN least(f.failures + 1, 1000) ELSE 1 END, "
            "  last_failure_at = now() "
            "RETURNING failures",
            3, params, &r, err);
        int64_t failures = status == ST_OK ? strtoll(db_result_value(r, 0, 0), NULL, 10) : 0;
        db_result_destroy(r);
        if (status != ST_OK)
            break;
        if (failures > run->failures)
            run->failures = failures;
        ms_text(console_login_delay_ms(failures, run->throttle->base_ms, run->throttle->max_ms),
                delay);
        const char *update[] = {key, delay};
        status = db_exec(d,
                         "UPDATE console_login_failures SET next_attempt_at = "
                         "greatest(next_attempt_at, now() + $2::bigint * "
                         "interval '1 millisecond') WHERE key_hash = $1::bytea",
                         2, update, NULL, err);
    }
    return status;
}

st_code console_login_failed(db *d, const console_login_keys *keys,
                             const console_login_throttle *throttle, int64_t *ret_failures,
                             int64_t *ret_delay_ms, st_error *err)
{
    failed_run run = {.keys = keys, .throttle = throttle};
    st_code status = db_tx(d, 0, failed_tx, &run, err);
    if (status == ST_OK) {
        *ret_failures = run.failures;
        *ret_delay_ms = console_login_delay_ms(run.failures, throttle->base_ms, throttle->max_ms);
    }
    return status;
}

st_code console_login_succeeded(db *d, const console_login_keys *keys, st_error *err)
{
    char account[67];
    bytea_param(keys->account, account);
    const char *params[] = {account};
    return db_exec(d, "DELETE FROM console_login_failures WHERE key_hash = $1::bytea", 1, params,
                   NULL, err);
}
