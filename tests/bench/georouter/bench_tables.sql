-- Tables for tests/bench/georouter (bench_geo --plain-sql, and --postgis when the extension
-- exists): the tambons and stations that `essctl geo import` loaded, in the shapes that each
-- SQL variant indexes. Benchmark only: the georouter never needs any of this.

-- Plain PostgreSQL: each tambon's bounding box under a GiST index, its rings as arrays, and an
-- even-odd ray cast in PL/pgSQL (the same rule as services/georouter/geo_index.c).
DROP TABLE IF EXISTS bench_rings, bench_tambon_box, bench_station_point;
CREATE TABLE bench_rings AS
SELECT t.code, r.ordinality AS ring_no,
       array_agg((p.pt ->> 0)::float8 ORDER BY p.ordinality) AS xs,
       array_agg((p.pt ->> 1)::float8 ORDER BY p.ordinality) AS ys
FROM tambons t,
     LATERAL jsonb_path_query(t.boundary,
                              CASE WHEN t.boundary ->> 'type' = 'Polygon'
                                   THEN '$.coordinates[*]'::jsonpath
                                   ELSE '$.coordinates[*][*]'::jsonpath END)
         WITH ORDINALITY AS r(ring, ordinality),
     LATERAL jsonb_array_elements(r.ring) WITH ORDINALITY AS p(pt, ordinality)
WHERE t.boundary IS NOT NULL
GROUP BY t.code, r.ordinality;
CREATE INDEX bench_rings_code ON bench_rings (code);

CREATE TABLE bench_tambon_box AS
SELECT code, box(point(min(x), min(y)), point(max(x), max(y))) AS bbox
FROM bench_rings, LATERAL unnest(xs, ys) AS u(x, y)
GROUP BY code;
CREATE INDEX bench_tambon_box_gist ON bench_tambon_box USING gist (bbox);

CREATE OR REPLACE FUNCTION bench_pip(tambon text, x float8, y float8) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    ring record;
    inside boolean := false;
    n int;
    j int;
BEGIN
    FOR ring IN SELECT xs, ys FROM bench_rings WHERE code = tambon LOOP
        n := array_length(ring.xs, 1);
        j := n;
        FOR i IN 1..n LOOP
            IF (ring.ys[i] > y) <> (ring.ys[j] > y) AND
               x < (ring.xs[j] - ring.xs[i]) * (y - ring.ys[i]) / (ring.ys[j] - ring.ys[i])
                   + ring.xs[i] THEN
                inside := NOT inside;
            END IF;
            j := i;
        END LOOP;
    END LOOP;
    RETURN inside;
END;
$$;

CREATE TABLE bench_station_point AS SELECT id, point(lon, lat) AS pt FROM stations;
CREATE INDEX bench_station_point_gist ON bench_station_point USING gist (pt);
ANALYZE bench_rings;
ANALYZE bench_tambon_box;
ANALYZE bench_station_point;
