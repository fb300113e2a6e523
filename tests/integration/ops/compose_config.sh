#!/usr/bin/env bash
# integration: docker-compose.yml is valid for Debian's docker-compose (`config -q`), refuses
# to load without each required secret, and has the shape of DESIGN.md §3: nats 2.9 with
# JetStream, a volume and the encrypted store; postgres:15 with a volume and a healthcheck;
# a one-shot migrate job every service waits for; each service with its variables and a
# Dockerfile target; the LINE emulator only under the `dev` profile; the services connect as
# ess_app, ess-audit's retention run as ess_janitor, the migrate job as the owner and makes
# the two logins.
# shellcheck source=tests/integration/ops/common.sh
. "$(dirname "$0")/common.sh"

command -v docker-compose >/dev/null || skip "docker-compose is not installed"
cd "$OPS_SOURCE"
ops_unset_ess_env

required=(ESS_LINE_CHANNEL_SECRET ESS_LINE_CHANNEL_TOKEN ESS_DATA_KEY ESS_PG_PASSWORD
  ESS_PG_APP_PASSWORD ESS_PG_RETENTION_PASSWORD ESS_NATS_STORE_KEY)
dummy_env() {
  local name
  for name in "${required[@]}"; do printf '%s=dummy-%s\n' "$name" "${name,,}"; done
}

# `env` with only the dummies (and PATH/HOME): nothing from the caller's shell leaks in.
compose() {
  local -a assignments
  mapfile -t assignments < <(dummy_env)
  env -i PATH="$PATH" HOME="${HOME:-/tmp}" "${assignments[@]}" "$@" \
    docker-compose -f docker-compose.yml "${COMPOSE_ARGS[@]}"
}

COMPOSE_ARGS=(config -q)
check "docker-compose config -q accepts the file" compose
for name in "${required[@]}"; do
  message=$(compose "$name=" 2>&1) && fail "the file loads without $name"
  check "without $name it names the variable" grep -q "$name" <<<"$message"
done

COMPOSE_ARGS=(config)
resolved=$(compose)
python=/usr/bin/python3 # Debian's, which has the yaml module docker-compose itself uses
"$python" -c 'import yaml' 2>/dev/null || skip "python3-yaml (comes with docker-compose) is missing"
if ! "$python" "$(dirname "$0")/compose_shape.py" "$OPS_SOURCE" <<<"$resolved"; then
  fail "the resolved docker-compose.yml lacks something (see above)"
fi
echo "ok: the resolved file has the expected shape"
