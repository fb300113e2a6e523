-- PostGIS tables for tests/bench/georouter (bench_geo --postgis). Only when Debian's
-- postgresql-15-postgis-3 is installed; benchmark only, the georouter never needs PostGIS.
CREATE EXTENSION IF NOT EXISTS postgis;
DROP TABLE IF EXISTS bench_tambon_geom, bench_station_geom;
CREATE TABLE bench_tambon_geom AS
SELECT code, ST_SetSRID(ST_GeomFromGeoJSON(boundary::text), 4326) AS geom
FROM tambons WHERE boundary IS NOT NULL;
ALTER TABLE bench_tambon_geom ADD COLUMN geog geography;
UPDATE bench_tambon_geom SET geog = geom::geography;
CREATE INDEX bench_tambon_geom_gist ON bench_tambon_geom USING gist (geom);
CREATE INDEX bench_tambon_geog_gist ON bench_tambon_geom USING gist (geog);
CREATE TABLE bench_station_geom AS
SELECT id, ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography AS geog FROM stations;
CREATE INDEX bench_station_geom_gist ON bench_station_geom USING gist (geog);
ANALYZE bench_tambon_geom;
ANALYZE bench_station_geom;
