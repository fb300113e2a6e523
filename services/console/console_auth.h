/* console_auth: who may use the console — passwords, sessions, CSRF tokens, login throttling,
 * roles and areas.
 *
 * Passwords: scrypt (OpenSSL EVP_PBE_scrypt; N=2^15, r=8, p=1, a random 16-byte salt, 32-byte
 * key), stored as "scrypt$N$r$p$salt_b64$hash_b64" (standard base64). Verification accepts
 * other parameters within bounds (so they can be raised later) and compares in constant time.
 *
 * Sessions: a random 256-bit token (base64url) in the cookie; the table keeps its SHA-256
 * only (migration 0008). A session ends ESS_CONSOLE_SESSION_LIFETIME after login, after
 * ESS_CONSOLE_SESSION_IDLE without a request, at logout, or when the user is removed.
 *
 * Login throttling (console_login_*): failures are counted per account name and per client
 * address (keyed hashes) within a window; the answer to a failure is delayed
 * base * 2^(failures - 1), at most max; attempts arriving while one is pending are spaced by
 * the same delay (next_attempt_at), so guessing in parallel is no faster than in sequence.
 *
 * Database functions block (one db handle per thread, db.h) and are thread-safe otherwise.
 * Nothing here logs; errors never carry a password, token or address. */
#ifndef CONSOLE_AUTH_H
#define CONSOLE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "console_parse.h"
#include "db.h"
#include "status.h"
#include "vault.h"

#define CONSOLE_SCRYPT_N 32768
#define CONSOLE_SCRYPT_R 8
#define CONSOLE_SCRYPT_P 1
#define CONSOLE_SALT_BYTES 16
#define CONSOLE_KEY_BYTES 32
#define CONSOLE_PASSWORD_MIN 10      /* characters */
#define CONSOLE_HASH_TEXT_MAX 256
#define CONSOLE_AREA_MAX 8           /* "all" or "TH50", with the NUL */

/* ---- passwords ------------------------------------------------------------------------- */

/* Raw scrypt (RFC 7914) of password with salt into out (out_len bytes, 1..64). Bounds:
 * N a power of two in [2, 2^17], r in [1, 16], p in [1, 16], 128*r*N <= 128 MiB. Blocks for
 * the computation (tens of milliseconds at the defaults, 32 MiB of memory). */
st_code console_scrypt(const char *password, size_t password_len, const unsigned char *salt,
                       size_t salt_len, uint64_t n, uint64_t r, uint64_t p, unsigned char *out,
                       size_t out_len, st_error *err);

/* Whether password may be set: CONSOLE_PASSWORD_MIN..CONSOLE_PASSWORD_MAX, UTF-8 without
 * control characters. err says which rule failed (never the password). */
st_code console_password_acceptable(const char *password, st_error *err);

/* Hashes password with a fresh salt and the default parameters into ret_encoded
 * (CONSOLE_HASH_TEXT_MAX bytes). */
st_code console_password_hash(const char *password, char *ret_encoded, st_error *err);

/* *ret_match = whether password matches encoded. ST_INVALID when encoded is not a hash this
 * code can check (malformed, parameters out of bounds). Constant time in the password. */
st_code console_password_verify(const char *encoded, const char *password, bool *ret_match,
                                st_error *err);

/* ---- tokens ------------------------------------------------------------------------------ */

/* A new random token (base64url of CONSOLE_TOKEN_BYTES bytes) into ret_text
 * (CONSOLE_TOKEN_TEXT bytes). */
st_code console_token_new(char *ret_text, st_error *err);
/* SHA-256 of the token text. */
void console_token_hash(const char *text, unsigned char ret_hash[32]);
/* Constant-time comparison of two NUL-terminated tokens (false when either is NULL). */
bool console_token_equal(const char *a, const char *b);

/* ---- roles and areas --------------------------------------------------------------------- */

typedef enum console_role {
    CONSOLE_ROLE_ADMIN,
    CONSOLE_ROLE_COMMANDER,
    CONSOLE_ROLE_ANALYST,
} console_role;

st_code console_role_parse(const char *text, console_role *ret_role);
const char *console_role_name(console_role role); /* "admin", "commander", "analyst" */
/* "all" or a province code "TH" + two digits. */
bool console_area_valid(const char *area);

typedef struct console_user {
    int64_t id;
    char name[CONSOLE_NAME_MAX];
    console_role role;
    char area[CONSOLE_AREA_MAX]; /* "all" or "TH50"; an admin's is always "all" */
} console_user;

/* Admin, or area "all". */
bool console_user_sees_all(const console_user *user);
/* Whether the user may see a case of that province (NULL: not routed yet / at sea, which
 * only users of every area see). */
bool console_user_sees_province(const console_user *user, const char *province_code);
/* Commanders and admins see cases; analysts only aggregates. */
bool console_user_sees_cases(const console_user *user);
/* The area parameter for SQL: "all" for users of every area, else the province code. */
const char *console_user_area_param(const console_user *user);

/* ---- sessions ---------------------------------------------------------------------------- */

typedef struct console_session {
    console_user user;
    char csrf[CONSOLE_TOKEN_TEXT];
    unsigned char token_hash[32];
    int64_t expires_unix_ms; /* absolute end (lifetime) */
} console_session;

/* A new session for user: *ret_token (the cookie value) and the CSRF token into ret_session
 * (with the user copied). Sets the user's last_login_at. */
st_code console_session_create(db *d, const console_user *user, int64_t lifetime_ms,
                               char *ret_token, console_session *ret_session, st_error *err);

/* The live session of token (the cookie value): ST_NOT_FOUND when there is none, it expired
 * (lifetime or idle_ms), or its user was removed. Notes the request (last_seen_at) when the
 * last note is older than a minute. */
st_code console_session_find(db *d, const char *token, int64_t idle_ms,
                             console_session *ret_session, st_error *err);

/* Ends the session (logout); no error when it is gone already. */
st_code console_session_delete(db *d, const unsigned char token_hash[32], st_error *err);

/* Removes expired sessions and failures older than window_ms; *ret_removed (may be NULL). */
st_code console_auth_sweep(db *d, int64_t idle_ms, int64_t window_ms, int64_t *ret_removed,
                           st_error *err);

/* ---- login ------------------------------------------------------------------------------- */

/* The delay before answering a login after `failures` recent failures: 0 for none, else
 * base_ms * 2^(failures - 1), at most max_ms. */
int64_t console_login_delay_ms(int64_t failures, int64_t base_ms, int64_t max_ms);

typedef struct console_login_throttle {
    int64_t window_ms;     /* failures older than this are forgotten */
    int64_t base_ms;       /* first delay */
    int64_t max_ms;        /* longest delay */
} console_login_throttle;

/* The keyed hashes a login is throttled by: the account name and the client address. */
typedef struct console_login_keys {
    unsigned char account[VAULT_HASH_BYTES];
    unsigned char peer[VAULT_HASH_BYTES];
} console_login_keys;

void console_login_keys_for(const vault_keys *keys, const char *name, const char *peer,
                            console_login_keys *ret_keys);

/* Before checking a password: takes this attempt's turn. *ret_wait_ms = how long to wait
 * before checking (0 without recent failures); *ret_refused = true when the queue of
 * attempts is longer than twice the longest delay (answer 429, check nothing). */
st_code console_login_reserve(db *d, const console_login_keys *keys,
                              const console_login_throttle *throttle, int64_t *ret_wait_ms,
                              bool *ret_refused, st_error *err);

/* Checks name and password. *ret_ok false for an unknown name or a wrong password (the
 * unknown name costs the same scrypt as a known one: dummy_hash, a hash of a random
 * password). On a match *ret_user is the account. */
st_code console_login_check(db *d, const char *name, const char *password,
                            const char *dummy_hash, console_user *ret_user, bool *ret_ok,
                            st_error *err);

/* After a failure: counts it for both keys; *ret_failures = the larger count now, and
 * *ret_delay_ms the delay to answer with. */
st_code console_login_failed(db *d, const console_login_keys *keys,
                             const console_login_throttle *throttle, int64_t *ret_failures,
                             int64_t *ret_delay_ms, st_error *err);

/* After a success: forgets the account's failures (the address's stay until the window
 * passes: one's own good login does not clear the address for guesses at others). */
st_code console_login_succeeded(db *d, const console_login_keys *keys, st_error *err);

#endif
