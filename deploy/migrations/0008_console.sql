-- 0008_console: the accounts, sessions and login throttling of ess-console (issue 10; see
-- services/console/README.md).
--
-- 1. Accounts. `essctl user add|passwd|remove` (as the owner) writes console_users; the
--    console only reads them and notes the last login. Passwords are stored as
--    "scrypt$N$r$p$salt_b64$hash_b64" (OpenSSL EVP_PBE_scrypt, a random salt per user). An
--    admin sees every area, so its area is 'all'.
-- 2. Sessions. The browser holds a random 256-bit token in an HttpOnly cookie; only its
--    SHA-256 is kept here, so a reader of this table cannot take over a session. The CSRF
--    token is kept in clear: it is worthless without the cookie. A session ends at
--    expires_at (ESS_CONSOLE_SESSION_LIFETIME after login), or after
--    ESS_CONSOLE_SESSION_IDLE without a request (last_seen_at), or at logout; removing a user
--    or changing the password removes its sessions.
-- 3. Login throttling. One row per account name and per client address that failed
--    recently, both under a keyed hash (HMAC with a key derived from ESS_DATA_KEY): neither
--    the address nor a mistyped name (which may be a password typed in the wrong field) is
--    stored. failures counts the failures within ESS_CONSOLE_LOGIN_WINDOW; the next answer is
--    delayed ESS_CONSOLE_LOGIN_DELAY_BASE * 2^(failures-1) (at most ..._MAX), and
--    next_attempt_at spaces the attempts that arrive meanwhile, so parallel guesses are
--    served one after another instead of all at once.
--
-- What ess_service (the services' role, 0005/0007) may do with them:
--
--   table                      ess_service may              because
--   console_users              SELECT, UPDATE of            login reads the account; essctl
--                              last_login_at                (the owner) writes the rest
--   console_sessions           SELECT, INSERT, UPDATE,      login, every request (last seen),
--                              DELETE                       logout and the expiry sweep
--   console_login_failures     SELECT, INSERT, UPDATE,      failed logins; a success clears the
--                              DELETE                       account's row; the sweep prunes
--
-- The console also reads incidents, incident_events, provinces, districts, tambons, stations
-- and geo_meta, and appends to audit_log (logins, phone reveals): 0007 grants those already;
-- the grants are repeated here (idempotent) so that this file states what the console needs.

CREATE TABLE console_users (
    id                  bigserial PRIMARY KEY,
    name                text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9._@-]{1,64}$'),
    role                text NOT NULL CHECK (role IN ('admin', 'commander', 'analyst')),
    area                text NOT NULL CHECK (area = 'all' OR area ~ '^TH[0-9]{2}$'),
    password_hash       text NOT NULL CHECK (password_hash LIKE 'scrypt$%'
                                             AND length(password_hash) <= 512),
    created_at          timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    last_login_at       timestamptz,
    CHECK (role <> 'admin' OR area = 'all')
);

CREATE TABLE console_sessions (
    token_hash    bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id       bigint NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
    csrf_token    text NOT NULL CHECK (length(csrf_token) BETWEEN 32 AND 64),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

CREATE TABLE console_login_failures (
    key_hash         bytea PRIMARY KEY CHECK (octet_length(key_hash) = 32),
    kind             text NOT NULL CHECK (kind IN ('account', 'peer')),
    failures         integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_failure_at  timestamptz NOT NULL DEFAULT now(),
    next_attempt_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_login_failures_age ON console_login_failures (last_failure_at);

-- ---------------------------------------------------------------------------------------
-- Grants (REVOKE first: exactly the table above, whatever the default privileges gave).

REVOKE ALL ON console_users, console_sessions, console_login_failures FROM ess_service;
GRANT SELECT ON console_users TO ess_service;
GRANT UPDATE (last_login_at) ON console_users TO ess_service;
GRANT SELECT, INSERT, UPDATE, DELETE ON console_sessions, console_login_failures
    TO ess_service;
GRANT USAGE ON SEQUENCE console_users_id_seq TO ess_service;

-- What the console reads and appends (0007 granted it; repeated, idempotent).
GRANT SELECT ON incidents, incident_events, provinces, districts, tambons, stations, geo_meta
    TO ess_service;
GRANT SELECT, INSERT ON audit_log TO ess_service;
