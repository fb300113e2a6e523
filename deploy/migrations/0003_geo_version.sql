-- 0003_geo_version: the version of the reference data that ess-georouter holds in memory.
--
-- The georouter loads provinces, districts, tambons (with their polygons), stations and
-- jurisdictions from PostgreSQL at start and keeps them in memory (issue 5). To learn that
-- they changed, it reads geo_meta.version every ESS_GEO_RELOAD_PERIOD (a cheap primary-key
-- read) and reloads when the number moved: no bus message is needed, and a georouter that was
-- down during an import still sees it. `essctl geo import` and `essctl stations import`
-- increment the version in the transaction that changes the data, so a reader sees the new
-- number only together with the new rows.
--
-- One row, always present (id is true and the primary key).

CREATE TABLE geo_meta (
    id              boolean PRIMARY KEY DEFAULT true CHECK (id),
    version         bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
    data_sha256     text CHECK (data_sha256 ~ '^[0-9a-f]{64}$'), -- files of the last geo import
    stations_source text CHECK (stations_source IN ('synthetic', 'imported')),
    imported_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO geo_meta (id) VALUES (true);

-- Routing reads the active teams of one province (or the national centre) with their active
-- groups on every incident: teams_province (0001) serves the first, this one the second.
CREATE INDEX teams_national ON teams (id) WHERE active AND kind = 'national_centre';
