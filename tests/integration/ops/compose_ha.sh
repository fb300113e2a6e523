#!/usr/bin/env bash
# integration: deploy/docker/docker-compose.ha.yml, over the root docker-compose.yml, is valid
# for Debian's docker-compose, refuses to load without its two secrets, and has the replicated
# shape of docs/high-availability.md: three NATS members of one cluster, each with its own
# store; every ESS service on the three with ESS_NATS_REPLICAS=3 and a two-host read-write
# DSN; a primary waiting for a synchronous standby that copies it at its first start; the
# migrations waiting for the standby. The configuration file of the members is tested by
# ops.nats_cluster, the replication recipe by integration_db_failover.
# shellcheck source=tests/integration/ops/common.sh
. "$(dirname "$0")/common.sh"

command -v docker-compose >/dev/null || skip "docker-compose is not installed"
cd "$OPS_SOURCE"
ops_unset_ess_env

required=(ESS_LINE_CHANNEL_SECRET ESS_LINE_CHANNEL_TOKEN ESS_DATA_KEY ESS_PG_PASSWORD
  ESS_PG_APP_PASSWORD ESS_PG_RETENTION_PASSWORD ESS_NATS_STORE_KEY
  ESS_NATS_CLUSTER_PASSWORD ESS_PG_REPLICATION_PASSWORD)
compose() {
  local -a assignments=()
  local name
  for name in "${required[@]}"; do assignments+=("$name=dummy-${name,,}"); done
  env -i PATH="$PATH" HOME="${HOME:-/tmp}" "${assignments[@]}" "$@" \
    docker-compose -f docker-compose.yml -f deploy/docker/docker-compose.ha.yml \
    "${COMPOSE_ARGS[@]}"
}

COMPOSE_ARGS=(config -q)
check "docker-compose config -q accepts the two files" compose
for name in ESS_NATS_CLUSTER_PASSWORD ESS_PG_REPLICATION_PASSWORD; do
  message=$(compose "$name=" 2>&1) && fail "the files load without $name"
  check "without $name it names the variable" grep -q "$name" <<<"$message"
done

COMPOSE_ARGS=(config)
resolved=$(compose)
python=/usr/bin/python3
"$python" -c 'import yaml' 2>/dev/null || skip "python3-yaml (comes with docker-compose) is missing"
if ! "$python" "$(dirname "$0")/compose_ha_shape.py" "$OPS_SOURCE" <<<"$resolved"; then
  fail "the resolved HA files lack something (see above)"
fi
echo "ok: the resolved HA files have the replicated shape"
