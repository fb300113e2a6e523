-- 0007_service_grants: what the services' role may do, table by table (issue 8).
--
-- 0005 gave ess_service every DML privilege on every table but audit_log and
-- schema_migrations, and the same by default on later tables. This file narrows that to
-- what the services' code runs (services/*/*.c, libs/outbox), so that a service — or whoever
-- takes over its connection — can do its job and nothing more:
--
--   table                      ess_service may              because
--   provinces, districts,      SELECT                       the georouter loads them, the
--   tambons, stations,                                      notifier names the place; only
--   station_tambons, geo_meta                               `essctl geo|stations import` writes
--   teams                      SELECT                       routing and `/ess bind` read them;
--                                                           `essctl team` writes
--   team_groups                SELECT, INSERT, UPDATE       join, leave, bind, activity
--   team_invites               SELECT, UPDATE               `/ess bind CODE` uses a code;
--                                                           `essctl team invite` creates it
--   conversations              SELECT, INSERT, UPDATE       the dialogue state
--   incidents                  SELECT, INSERT, UPDATE of    reports, routing, taking a case,
--                              every column except id,      escalation, closing
--                              case_number, reported_at and
--                              the personal fields (below)
--   case_counters              SELECT, INSERT, UPDATE       case numbers (upsert)
--   incident_events            SELECT, INSERT, UPDATE       the timeline (a responder's name
--                                                           is filled in later)
--   incident_targets           SELECT, INSERT               the routed targets of a case
--   outbox                     SELECT, INSERT, UPDATE,      every relay marks what it
--                              DELETE                       published and prunes it
--   processed_events           SELECT, INSERT               the redelivery guard (nobody
--                                                           prunes it yet: an operator's job)
--   audit_log                  SELECT, INSERT               append-only: never UPDATE,
--                                                           DELETE or TRUNCATE
--   schema_migrations          SELECT                       migrations are essctl's, as owner
--   sequences                  USAGE                        nextval() of the bigserial ids
--
-- Nothing is granted TRUNCATE, REFERENCES or TRIGGER, and nothing may create objects.
--
-- Personal fields of an incident — phone_encrypted, reporter_id_encrypted, reporter_key_hash —
-- are written once, by the INSERT that records the report; afterwards only ess_retention (0005)
-- may change them, to erase them, together with pii_erased_at. Column privileges say so:
-- ess_service holds UPDATE on the other columns of incidents, one by one, as they are now.
-- A later migration that adds a column the services update grants it explicitly:
--     GRANT UPDATE (new_column) ON incidents TO ess_service;
--
-- Tables created later by the migrating role get SELECT, INSERT, UPDATE (default privileges,
-- as 0005 set them, without DELETE); a migration whose table the services delete from, or
-- must not update, says so itself. tests/integration/roles checks this table against the
-- database and fails on any table it does not know.
--
-- Everything here is per database and idempotent (REVOKE first, then GRANT); the roles are
-- 0005's, cluster-wide, and this file creates none. The login roles that use ess_service and
-- ess_retention (ess_app, ess_janitor) are made by `essctl db login-role` (deploy/local/ess,
-- docker-compose.yml's migrate job), never by a migration: they carry passwords.

-- Start from nothing on every table and sequence, column privileges included.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ess_service;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM ess_service;

GRANT USAGE ON SCHEMA public TO ess_service;
-- PostgreSQL 15 no longer lets PUBLIC create in schema public; said again for clusters
-- upgraded from an older version.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Reference data and teams: read only.
GRANT SELECT ON provinces, districts, tambons, stations, station_tambons, geo_meta, teams
    TO ess_service;

-- Teams' LINE groups and enrolment codes.
GRANT SELECT, INSERT, UPDATE ON team_groups TO ess_service;
GRANT SELECT, UPDATE ON team_invites TO ess_service;

-- Conversations and incidents.
GRANT SELECT, INSERT, UPDATE ON conversations, case_counters, incident_events TO ess_service;
GRANT SELECT, INSERT ON incidents, incident_targets TO ess_service;

DO $incident_columns$
DECLARE
    updatable text;
BEGIN
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)
      INTO updatable
      FROM pg_attribute
     WHERE attrelid = 'public.incidents'::regclass AND attnum > 0 AND NOT attisdropped
       AND attname NOT IN ('id', 'case_number', 'reported_at', 'phone_encrypted',
                           'reporter_id_encrypted', 'reporter_key_hash', 'pii_erased_at');
    EXECUTE format('GRANT UPDATE (%s) ON incidents TO ess_service', updatable);
END
$incident_columns$;

-- The transactional outbox and the redelivery guard (libs/outbox).
GRANT SELECT, INSERT, UPDATE, DELETE ON outbox TO ess_service;
GRANT SELECT, INSERT ON processed_events TO ess_service;

-- The audit log: append only.
GRANT SELECT, INSERT ON audit_log TO ess_service;

GRANT SELECT ON schema_migrations TO ess_service;

GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ess_service;

-- Later tables and sequences of the migrating role.
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM ess_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE ON TABLES TO ess_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM ess_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO ess_service;
