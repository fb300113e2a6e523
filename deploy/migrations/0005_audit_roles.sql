-- 0005_audit_roles: the audit log's own columns and indexes, and the database roles of
-- issue 8 (see services/audit/README.md for the whole design).
--
-- Roles are cluster-wide while this file runs once per database: they are created only when
-- missing, and a concurrent creation by another database's migration (tests migrate many
-- databases of one cluster at once) is tolerated. Creating them needs CREATEROLE; a migrating
-- role without it still succeeds when an administrator created the two roles beforehand
-- (deploy/local/ess does so), and otherwise fails with a message saying what to run.
--
--   ess_service    what the services connect as (through a login role that is a member):
--                  reads and writes the operational tables; on audit_log only SELECT and
--                  INSERT — no UPDATE, DELETE or TRUNCATE, so a service can append to the
--                  log but never rewrite it.
--   ess_retention  what `essctl retention run` (and ess-audit's daily retention) may do: read
--                  incidents, set their personal fields to NULL (column privileges: nothing
--                  else of an incident can change), and append the erasures to audit_log.

-- ---------------------------------------------------------------------------------------
-- audit_log: the origin of each record, part of the hashed canonical record.
--   stream      JetStream stream the message came from ('' for records written by essctl
--               or by the retention job)
--   stream_seq  its sequence in that stream (0 when not from a stream)
-- msg_id keeps its UNIQUE constraint from 0001 and holds the record's identity:
-- "<stream>/<Nats-Msg-Id>", or "<stream>/#<stream_seq>@<stored_ns>" for a message without one.

ALTER TABLE audit_log ADD COLUMN stream text NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN stream_seq bigint NOT NULL DEFAULT 0 CHECK (stream_seq >= 0);

-- essctl audit show --incident: rows by case number or incident id inside the payload, and
-- a reporter's own events by the keyed hash of the LINE user id.
CREATE INDEX audit_log_case_number ON audit_log ((payload ->> 'case_number'))
    WHERE payload ? 'case_number';
CREATE INDEX audit_log_incident_id ON audit_log ((payload ->> 'incident_id'))
    WHERE payload ? 'incident_id';
CREATE INDEX audit_log_source_user ON audit_log ((payload -> 'source' ->> 'userId'))
    WHERE payload ? 'source';
CREATE INDEX audit_log_stream ON audit_log (stream, seq) WHERE stream <> '';

-- ---------------------------------------------------------------------------------------
-- Roles

DO $roles$
DECLARE
    wanted text;
BEGIN
    FOREACH wanted IN ARRAY ARRAY['ess_service', 'ess_retention'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = wanted) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', wanted);
            EXCEPTION
                -- another database's migration created it meanwhile
                WHEN duplicate_object OR unique_violation THEN NULL;
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'migration 0005 cannot create role %: the migrating role '
                        'lacks CREATEROLE. As a superuser run: CREATE ROLE ess_service NOLOGIN; '
                        'CREATE ROLE ess_retention NOLOGIN; then migrate again', wanted;
            END;
        END IF;
    END LOOP;
END
$roles$;

-- ---------------------------------------------------------------------------------------
-- ess_service: every table that exists now (0001..0004), and those created later by the
-- migrating role (default privileges); audit_log is the exception.

GRANT USAGE ON SCHEMA public TO ess_service;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ess_service;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO ess_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ess_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO ess_service;

-- Migrations are essctl's business, run as the owner.
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM ess_service;

-- The audit log is append-only for the services.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM ess_service;
GRANT SELECT, INSERT ON audit_log TO ess_service;

-- ---------------------------------------------------------------------------------------
-- ess_retention: erase personal fields, nothing else.

GRANT USAGE ON SCHEMA public TO ess_retention;
GRANT SELECT ON incidents TO ess_retention;
GRANT UPDATE (phone_encrypted, reporter_id_encrypted, reporter_key_hash, pii_erased_at,
              updated_at) ON incidents TO ess_retention;
GRANT SELECT, INSERT ON audit_log TO ess_retention;
