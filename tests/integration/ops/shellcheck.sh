#!/usr/bin/env bash
# unit: every operational script is shellcheck-clean and runs with `set -euo pipefail`.
# shellcheck source=tests/integration/ops/common.sh
. "$(dirname "$0")/common.sh"

cd "$OPS_SOURCE"
scripts=(deploy/install-deps deploy/local/ess deploy/docker/build-release tests/run .ci/run
  tests/support/pg_pair deploy/docker/postgres/primary-replication.sh
  deploy/docker/postgres/standby-entrypoint.sh)
for script in "${scripts[@]}"; do
  check "$script is executable" test -x "$script"
  check "$script sets -euo pipefail" grep -qx 'set -euo pipefail' "$script"
done
command -v shellcheck >/dev/null || skip "shellcheck is not installed (apt-get install shellcheck)"
check "shellcheck finds nothing" shellcheck -x "${scripts[@]}" deploy/local/lib.sh \
  tests/integration/ops/*.sh
