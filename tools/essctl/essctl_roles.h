/* essctl db login-role: the login roles the services connect as (migrations 0005, 0007).
 *
 * The verifier is computed here, not by the server, so the password itself never travels to
 * PostgreSQL nor lands in its logs (what psql's \password does too). */
#ifndef ESSCTL_ROLES_H
#define ESSCTL_ROLES_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

/* "SCRAM-SHA-256$4096:" + base64 of a 64-byte salt + "$" + two base64 keys + ":" + NUL. */
#define ESSCTL_SCRAM_VERIFIER_MAX 256
#define ESSCTL_SCRAM_SALT_MAX 64
#define ESSCTL_SCRAM_ITERATIONS 4096

/* True when password may be used for a login role: 16..1024 printable ASCII characters
 * without spaces (SASLprep leaves such a password as it is; it also fits a DSN's userinfo
 * once percent-encoded, and the deployments use URL-safe ones). */
bool essctl_login_password_ok(const char *password);

/* Writes into ret_verifier (verifier_size bytes, at least ESSCTL_SCRAM_VERIFIER_MAX) the
 * verifier PostgreSQL stores in pg_authid.rolpassword for password (essctl_login_password_ok)
 * with this salt (1..ESSCTL_SCRAM_SALT_MAX bytes) and iteration count (1..1000000):
 * "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>", base64 (RFC 5802, 7677).
 * The caller owns the buffer; nothing is kept. */
st_code essctl_scram_verifier(const char *password, const unsigned char *salt, size_t salt_len,
                              int iterations, char *ret_verifier, size_t verifier_size,
                              st_error *err);

#endif
