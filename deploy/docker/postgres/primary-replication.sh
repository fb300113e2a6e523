#!/usr/bin/env bash
# deploy/docker/postgres/primary-replication.sh: run once by the postgres:15 image when it
# creates the primary's cluster (mounted into /docker-entrypoint-initdb.d by
# deploy/docker/docker-compose.ha.yml). Creates the login the standby streams with and lets it
# in for replication only, with a password. A primary whose volume already exists skips
# this: docs/high-availability.md gives the same two steps by hand.
set -euo pipefail
: "${ESS_PG_REPLICATION_PASSWORD:?set ESS_PG_REPLICATION_PASSWORD}"
# psql quotes the password as a literal (:'password'); it never appears in a command line.
psql -X -q -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v password="$ESS_PG_REPLICATION_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE ess_replicator WITH REPLICATION LOGIN PASSWORD %L', :'password')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ess_replicator') \gexec
SQL
printf 'host replication ess_replicator all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
