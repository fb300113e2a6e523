-- 0006_responders: what the responder side of ess-conversation (issue 7) adds.
--
-- 1. Enrolment. `essctl team invite` stores a one-time code for a team; an officer types
--    `/ess bind CODE` in the team's LINE group. Only a SHA-256 of the normalised code is kept:
--    the code itself exists on the operator's screen and in the group for a moment, and a
--    reader of this table cannot bind a group with what is stored here. Codes carry 60 random
--    bits, live 24 hours and bind once, so an unkeyed hash is enough (and lets essctl issue
--    codes without ESS_DATA_KEY).
-- 2. Targets. ess-conversation records the ordered targets of ess.incident.routed per
--    incident (the georouter decides; this is the conversation's copy, so a take, a reminder
--    or a forwarded note knows which groups a case went to without asking anybody).
-- 3. Escalation. incidents.ack_deadline (0001) is when the next escalation step is due;
--    escalation_level (0001) is the highest level notified. escalation_step counts the steps
--    taken (reminders and level changes), for idempotent command ids; reminders_at_level
--    counts reminders at the current level, so the last level is reminded a bounded number of
--    times instead of for ever.
-- 4. Language of a conversation: where it came from. A choice of the user (keyword, button)
--    wins over the LINE profile's language, which wins over the default.

CREATE TABLE team_invites (
    id             bigserial PRIMARY KEY,
    code_hash      bytea NOT NULL UNIQUE CHECK (octet_length(code_hash) = 32),
    team_id        bigint NOT NULL REFERENCES teams (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz,
    used_by_group  text,
    CHECK ((used_at IS NULL) = (used_by_group IS NULL))
);
CREATE INDEX team_invites_team ON team_invites (team_id);

CREATE TABLE incident_targets (
    incident_id   bigint NOT NULL REFERENCES incidents (id),
    group_id      text NOT NULL CHECK (length(group_id) BETWEEN 1 AND 64),
    team_id       bigint,       -- as the routed event named it (no FK: a fact of that moment)
    level         integer NOT NULL CHECK (level >= 0),
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (incident_id, group_id)
);
CREATE INDEX incident_targets_level ON incident_targets (incident_id, level);

ALTER TABLE incidents
    ADD COLUMN escalation_step integer NOT NULL DEFAULT 0 CHECK (escalation_step >= 0),
    ADD COLUMN reminders_at_level integer NOT NULL DEFAULT 0 CHECK (reminders_at_level >= 0),
    ADD COLUMN targets_recorded_at timestamptz;

ALTER TABLE conversations
    ADD COLUMN language_source text NOT NULL DEFAULT 'default'
        CHECK (language_source IN ('default', 'profile', 'user'));
