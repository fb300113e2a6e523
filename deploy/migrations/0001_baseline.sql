-- 0001_baseline: the tables of DESIGN.md §2 that later issues fill.
--
-- Applied by `essctl db migrate` in one transaction together with its schema_migrations row,
-- so it either lands whole or not at all. Migrations are append-only: once applied anywhere,
-- this file never changes (db_migrate refuses a changed checksum); later changes are new files.
--
-- Choices that hold for every table:
-- - No extensions. PostGIS is not needed: the georouter does point-in-polygon in memory
--   (issue 5), so polygons are stored as GeoJSON geometry in jsonb. pgcrypto is not needed:
--   encryption and keyed hashes are done by the services with OpenSSL, so keys never reach
--   the database.
-- - Personal data is never stored in clear: phone numbers and LINE user ids are bytea holding
--   AES-256-GCM ciphertext (key ESS_DATA_KEY) or an HMAC-SHA256 keyed hash for look-ups.
-- - Idempotent writes: every table written from an event has a natural key that the writer
--   uses with ON CONFLICT, so a redelivered event changes nothing.
-- - Codes are text with CHECKs rather than enums: adding a value is a one-line migration of a
--   CHECK, without ALTER TYPE's restrictions inside transactions.
-- - Roles and grants are left to a later migration (issue 8), so this file needs no superuser.

-- ---------------------------------------------------------------------------------------
-- Reference data: administrative areas, with TIS-1099 codes as in deploy/data/geo
-- ("TH50" province, "TH5001" district, "TH500101" tambon). Loaded by `essctl geo import`.
-- Each code begins with its parent's code; the CHECKs keep the hierarchy consistent.

CREATE TABLE provinces (
    code          text PRIMARY KEY CHECK (code ~ '^TH[0-9]{2}$'),
    name_th       text NOT NULL,
    name_en       text NOT NULL,
    centroid_lat  double precision CHECK (centroid_lat BETWEEN -90 AND 90),
    centroid_lon  double precision CHECK (centroid_lon BETWEEN -180 AND 180),
    boundary      jsonb,            -- GeoJSON geometry (Polygon or MultiPolygon), lon/lat
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE districts (
    code          text PRIMARY KEY CHECK (code ~ '^TH[0-9]{4}$'),
    province_code text NOT NULL REFERENCES provinces (code),
    name_th       text NOT NULL,
    name_en       text NOT NULL,
    centroid_lat  double precision CHECK (centroid_lat BETWEEN -90 AND 90),
    centroid_lon  double precision CHECK (centroid_lon BETWEEN -180 AND 180),
    boundary      jsonb,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (left(code, 4) = province_code)
);
CREATE INDEX districts_province ON districts (province_code);

-- The code lists hold a few more tambons than the boundary file: boundary may be NULL.
CREATE TABLE tambons (
    code          text PRIMARY KEY CHECK (code ~ '^TH[0-9]{6}$'),
    district_code text NOT NULL REFERENCES districts (code),
    province_code text NOT NULL REFERENCES provinces (code),
    name_th       text NOT NULL,
    name_en       text NOT NULL,
    postal_code   text CHECK (postal_code ~ '^[0-9]{5}$'),
    centroid_lat  double precision CHECK (centroid_lat BETWEEN -90 AND 90),
    centroid_lon  double precision CHECK (centroid_lon BETWEEN -180 AND 180),
    boundary      jsonb,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (left(code, 6) = district_code AND left(code, 4) = province_code)
);
CREATE INDEX tambons_district ON tambons (district_code);
CREATE INDEX tambons_province ON tambons (province_code);

-- ---------------------------------------------------------------------------------------
-- Police stations: the synthetic directory shipped with the project, or the real one from
-- `essctl stations import FILE.csv`. The id is the directory's own identifier (text, so a
-- real directory's codes fit as they are).

CREATE TABLE stations (
    id            text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    name_th       text NOT NULL,
    name_en       text,
    lat           double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon           double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    district_code text REFERENCES districts (code),
    province_code text REFERENCES provinces (code),
    phone         text,             -- the station's public number: not personal data
    synthetic     boolean NOT NULL DEFAULT false, -- true for the generated directory
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stations_province ON stations (province_code);

-- Jurisdiction: every tambon belongs to exactly one station (the primary key says so); a
-- station answers for one or more tambons. Replaced with the station directory.
CREATE TABLE station_tambons (
    tambon_code   text PRIMARY KEY REFERENCES tambons (code),
    station_id    text NOT NULL REFERENCES stations (id) ON DELETE CASCADE
);
CREATE INDEX station_tambons_station ON station_tambons (station_id);

-- ---------------------------------------------------------------------------------------
-- Teams (ทีมสหวิชาชีพ) and their LINE groups.
--
-- A team's area is a province, or one station within it; `kind` separates the
-- multidisciplinary teams that receive cases from the provincial command groups and the
-- national centre that escalation reaches later (issue 7). The national centre is the
-- fallback of routing and has no province. Removing a team deactivates it, so incidents and
-- the audit log keep pointing at a row that exists.

CREATE TABLE teams (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind          text NOT NULL DEFAULT 'multidisciplinary'
                  CHECK (kind IN ('multidisciplinary', 'provincial_command', 'national_centre')),
    province_code text REFERENCES provinces (code),
    station_id    text REFERENCES stations (id),
    -- police, provincial social development office (พมจ.), children and family shelter,
    -- provincial prosecutor, local network
    agencies      text[] NOT NULL DEFAULT '{}'
                  CHECK (agencies <@ ARRAY['police', 'social_development', 'shelter',
                                           'prosecutor', 'local_network']::text[]),
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'national_centre' OR province_code IS NOT NULL)
);
-- Operators address teams by name (`essctl team remove`): unique among active teams.
CREATE UNIQUE INDEX teams_active_name ON teams (name) WHERE active;
CREATE INDEX teams_province ON teams (province_code) WHERE active;
CREATE INDEX teams_station ON teams (station_id) WHERE active AND station_id IS NOT NULL;

-- A LINE group the bot is a member of. It exists from the `join` event on, before it is bound
-- to a team (team_id NULL until `/ess bind CODE`); `leave` sets active = false and routing
-- skips it. A group serves at most one team (the group id is the key).
CREATE TABLE team_groups (
    group_id      text PRIMARY KEY CHECK (length(group_id) BETWEEN 1 AND 64),
    team_id       bigint REFERENCES teams (id),
    active        boolean NOT NULL DEFAULT true,
    member_count  integer NOT NULL DEFAULT 0 CHECK (member_count >= 0),
    joined_at     timestamptz NOT NULL DEFAULT now(),
    bound_at      timestamptz,
    left_at       timestamptz,
    last_activity timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX team_groups_team ON team_groups (team_id) WHERE active;

-- ---------------------------------------------------------------------------------------
-- Conversations: one row per citizen talking to the bot (issue 4).
--
-- The key is an HMAC-SHA256 of the LINE user id (never the id itself), so the table can be
-- searched without holding the id in clear; user_id_encrypted lets the bot push the draft's
-- expiry note. slots holds the draft (category, location, phone); the application encrypts
-- the phone inside it. last_event_ts is the LINE timestamp (ms) of the last applied event:
-- an older event arriving late is recognised and does not move the state back.

CREATE TABLE conversations (
    user_key          bytea PRIMARY KEY CHECK (octet_length(user_key) = 32),
    user_id_encrypted bytea,
    state             text NOT NULL,
    slots             jsonb NOT NULL DEFAULT '{}'::jsonb,
    language          text NOT NULL DEFAULT 'th',
    last_event_ts     bigint,
    incident_id       bigint,       -- the open case after submission (see the FK below)
    updated_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz   -- a draft untouched until then expires (ESS_DRAFT_TTL)
);
CREATE INDEX conversations_expiry ON conversations (expires_at) WHERE expires_at IS NOT NULL;

-- ---------------------------------------------------------------------------------------
-- Incidents: the system of record of every report (issues 4, 5, 7, 8, 10).
--
-- Status moves new → routed → acknowledged → on_scene → closed, or to cancelled; each step has
-- its own timestamp for the time-to-take and time-to-scene statistics. Area codes and the
-- station are facts recorded at routing time, deliberately without foreign keys: reference
-- data may be re-imported, an incident keeps what was true when it happened.
-- Escalation deadlines live here, not in memory, so they survive restarts: ack_deadline is
-- when the next escalation step is due (NULL once taken, closed or cancelled).
-- Retention (issue 8) erases phone_encrypted and reporter_id_encrypted of old closed cases
-- and sets pii_erased_at; the anonymous facts stay for analysis.

CREATE TABLE incidents (
    id                    bigserial PRIMARY KEY,
    case_number           text NOT NULL UNIQUE, -- e.g. ESS-2569-000123 (Buddhist-era year)
    category              text NOT NULL
                          CHECK (category IN ('threat', 'confinement', 'sexual', 'frenzy',
                                              'gathering')),
    status                text NOT NULL DEFAULT 'new'
                          CHECK (status IN ('new', 'routed', 'acknowledged', 'on_scene',
                                            'closed', 'cancelled')),
    lat                   double precision CHECK (lat BETWEEN -90 AND 90),
    lon                   double precision CHECK (lon BETWEEN -180 AND 180),
    location_title        text,     -- LINE location message title/address (≤ 100 each)
    location_address      text,
    tambon_code           text,
    district_code         text,
    province_code         text,
    station_id            text,     -- the responsible station
    station_distance_m    integer CHECK (station_distance_m >= 0),
    -- AES-256-GCM ciphertext (nonce ‖ ciphertext ‖ tag); NULL when none was given or erased
    phone_encrypted       bytea,
    -- HMAC-SHA256 of the reporter's LINE user id: joins conversations.user_key, rate limits
    reporter_key_hash     bytea CHECK (octet_length(reporter_key_hash) = 32),
    -- the reporter's LINE user id, encrypted: only to push status back to the reporter
    reporter_id_encrypted bytea,
    language              text NOT NULL DEFAULT 'th',
    reported_at           timestamptz NOT NULL DEFAULT now(),
    routed_at             timestamptz,
    acknowledged_at       timestamptz,
    on_scene_at           timestamptz,
    closed_at             timestamptz,
    cancelled_at          timestamptz,
    acknowledged_by       text,     -- officer's display name, or "a member of <group>"
    acknowledged_group_id text,
    outcome               text CHECK (outcome IN ('helped', 'referred', 'false_alarm',
                                                  'not_found')),
    escalation_level      integer NOT NULL DEFAULT 0 CHECK (escalation_level >= 0),
    ack_deadline          timestamptz,
    pii_erased_at         timestamptz,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK ((lat IS NULL) = (lon IS NULL))
);
CREATE INDEX incidents_reported_at ON incidents (reported_at);
CREATE INDEX incidents_province_reported ON incidents (province_code, reported_at);
CREATE INDEX incidents_open ON incidents (status) WHERE status NOT IN ('closed', 'cancelled');
CREATE INDEX incidents_ack_due ON incidents (ack_deadline) WHERE ack_deadline IS NOT NULL;
-- a reporter's recent reports: the per-hour limit and their open case
CREATE INDEX incidents_reporter ON incidents (reporter_key_hash, reported_at);
CREATE INDEX incidents_retention ON incidents (closed_at)
    WHERE pii_erased_at IS NULL AND closed_at IS NOT NULL;

ALTER TABLE conversations
    ADD CONSTRAINT conversations_incident FOREIGN KEY (incident_id) REFERENCES incidents (id);

-- Case numbers count per Buddhist-era year without gaps. The writer increments the year's row
-- in the transaction that creates the incident
-- (INSERT ... ON CONFLICT (be_year) DO UPDATE SET last_number = case_counters.last_number + 1
-- RETURNING last_number),
-- so a rolled-back report leaves no hole and two writers never share a number.
CREATE TABLE case_counters (
    be_year       integer PRIMARY KEY CHECK (be_year BETWEEN 2500 AND 3000),
    last_number   bigint NOT NULL CHECK (last_number >= 0)
);

-- The timeline of an incident: who did what, when (shaped after NENA EIDO). event_key is the
-- idempotency key, e.g. the msg-id of the event that caused the entry, so a redelivery adds
-- nothing. actor never holds the reporter's LINE id; detail holds no phone in clear.
CREATE TABLE incident_events (
    id            bigserial PRIMARY KEY,
    incident_id   bigint NOT NULL REFERENCES incidents (id),
    event_key     text NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    kind          text NOT NULL,    -- reported, routed, acknowledged, on_scene, closed,
                                    -- cancelled, escalated, reminder, info_added, note, ...
    actor_type    text NOT NULL CHECK (actor_type IN ('reporter', 'responder', 'system',
                                                      'operator')),
    actor         text,             -- display name, group, service or operator
    group_id      text,
    detail        jsonb NOT NULL DEFAULT '{}'::jsonb,
    UNIQUE (incident_id, event_key)
);
CREATE INDEX incident_events_time ON incident_events (incident_id, at);

-- ---------------------------------------------------------------------------------------
-- Outbox: events written in the same transaction as the change that implies them; a relay
-- publishes unpublished rows in id order with Nats-Msg-Id = msg_id and then sets
-- published_at. A crash between commit and publish loses nothing (the row waits), and a
-- publish repeated after a crash duplicates nothing (JetStream dedupes by msg-id).
-- payload is the exact bytes to publish. A payload may carry personal data (a push command's
-- recipient), so published rows are pruned, not kept: the audit log is the history.

CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    subject       text NOT NULL,
    msg_id        text NOT NULL UNIQUE,
    payload       bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;

-- Event ids a consumer has applied (webhookEventId, msg-id): inserted in the transaction that
-- applies the event, so "already processed" is exact however late a redelivery arrives
-- (JetStream's own duplicate window is finite). Old rows may be pruned by processed_at.
CREATE TABLE processed_events (
    consumer      text NOT NULL,
    event_id      text NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX processed_events_age ON processed_events (processed_at);

-- ---------------------------------------------------------------------------------------
-- Audit log (issue 8): one row per message of every stream, hash-chained:
-- hash = SHA-256(prev_hash ‖ canonical record). seq is assigned by ess-audit without gaps, so
-- a deleted row shows as a gap; msg_id unique makes a redelivery add no row. payload has
-- personal data removed or encrypted; digest is the SHA-256 of the original payload.
-- UPDATE/DELETE are revoked from the services' role by a later migration.

CREATE TABLE audit_log (
    seq           bigint PRIMARY KEY CHECK (seq > 0),
    at            timestamptz NOT NULL DEFAULT now(),
    subject       text NOT NULL,
    msg_id        text NOT NULL UNIQUE,
    digest        bytea NOT NULL CHECK (octet_length(digest) = 32),
    payload       jsonb NOT NULL,
    prev_hash     bytea NOT NULL CHECK (octet_length(prev_hash) = 32), -- zeros for seq 1
    hash          bytea NOT NULL CHECK (octet_length(hash) = 32)
);
CREATE INDEX audit_log_at ON audit_log (at);
