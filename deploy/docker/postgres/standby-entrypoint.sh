#!/usr/bin/env bash
# deploy/docker/postgres/standby-entrypoint.sh: the entrypoint of the postgres:15 container
# that runs the synchronous standby (deploy/docker/docker-compose.ha.yml). On an empty
# volume it copies the primary with pg_basebackup -R (standby.signal, and a primary_conninfo
# carrying the application name the primary's synchronous_standby_names waits for), then
# hands over to the image's own entrypoint, which skips initdb on a volume that has data.
#
#   ESS_PG_PRIMARY_HOST            the primary's host name (port 5432)
#   ESS_PG_REPLICATION_PASSWORD    password of ess_replicator (primary-replication.sh)
#   ESS_PG_STANDBY_NAME            the application name (default ess_standby)
#
# Promote it when the primary's machine is lost (docs/high-availability.md):
#   docker-compose exec -u postgres postgres-standby pg_ctl promote
set -euo pipefail
: "${PGDATA:=/var/lib/postgresql/data}"
: "${ESS_PG_PRIMARY_HOST:?set ESS_PG_PRIMARY_HOST}"
: "${ESS_PG_REPLICATION_PASSWORD:?set ESS_PG_REPLICATION_PASSWORD}"
standby_name=${ESS_PG_STANDBY_NAME:-ess_standby}

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  install -d -m 700 -o postgres -g postgres "$PGDATA"
  # The password reaches pg_basebackup through its environment; -R writes it into the
  # standby's postgresql.auto.conf, inside the volume (mode 600), as streaming needs it.
  gosu postgres env PGPASSWORD="$ESS_PG_REPLICATION_PASSWORD" \
    pg_basebackup -D "$PGDATA" -R -X stream --checkpoint=fast \
    -d "host=$ESS_PG_PRIMARY_HOST port=5432 user=ess_replicator application_name=$standby_name"
fi
# Without synchronous_standby_names: once promoted it is alone, and must not wait for a
# standby that does not exist yet (every commit would hang).
exec docker-entrypoint.sh postgres -c synchronous_commit=on -c fsync=on -c hot_standby=on
