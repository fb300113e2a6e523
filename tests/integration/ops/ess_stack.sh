#!/usr/bin/env bash
# shellcheck disable=SC2016 # bash -c scripts expand in their own shell
# e2e: deploy/local/ess with this build's binaries (never rebuilt: ESS_SKIP_BUILD=1), in a
# temporary ESS_HOME on free ports.
#   up -> status: nats, pg and every built service healthy -> env is eval-able and usable
#   -> the JetStream store holds no message in clear -> up again starts nothing new
#   -> down -> no process of this ESS_HOME is left, no pid file remains.
# shellcheck source=tests/integration/ops/common.sh
. "$(dirname "$0")/common.sh"

BUILD=${ESS_BUILD_DIR:?ESS_BUILD_DIR names the build under test}
declare -A LISTEN_VAR=(
  [line-emulator]=ESS_EMULATOR_LISTEN [ess-audit]=ESS_AUDIT_LISTEN
  [ess-conversation]=ESS_CONVERSATION_LISTEN [ess-georouter]=ESS_GEOROUTER_LISTEN
  [ess-notifier]=ESS_NOTIFIER_LISTEN [ess-ingress]=ESS_INGRESS_LISTEN
  [ess-console]=ESS_CONSOLE_LISTEN)

ops_unset_ess_env
ops_tmpdir
HOME_DIR=$OPS_TMP/home
# Set before the trap: cleanup's `down` must never fall back to ./.ess.
export ESS_HOME=$HOME_DIR

cleanup() {
  local rc=$? leftovers
  "$OPS_ESS" down >/dev/null 2>&1 || true
  leftovers=$(ops_leftovers "$OPS_TMP")
  if [[ -n "$leftovers" ]]; then
    # shellcheck disable=SC2086 # a list of pids
    kill -KILL $leftovers 2>/dev/null || true
  fi
  if ((rc != 0)); then ops_dump_logs "$HOME_DIR"; fi
  rm -rf "$OPS_TMP"
  exit "$rc"
}
trap cleanup EXIT
ops_stack_env "$HOME_DIR"
export ESS_SKIP_BUILD=1 ESS_BUILD_DIR=$BUILD ESS_UP_TIMEOUT=90 ESS_STOP_TIMEOUT=20

# --- up ---------------------------------------------------------------------------------
up_output=$("$OPS_ESS" up 2>&1) || {
  printf '%s\n' "$up_output" >&2
  fail "ess up"
}
printf '%s\n' "$up_output"

status=$("$OPS_ESS" status) || {
  printf '%s\n' "$status" >&2
  fail "ess status reports every component healthy"
}
check "status: nats healthy" grep -Eq '^nats +[0-9]+ +healthy ' <<<"$status"
check "status: pg healthy" grep -Eq '^pg +[0-9]+ +healthy ' <<<"$status"
for name in "${!LISTEN_VAR[@]}"; do
  if [[ -x "$BUILD/bin/$name" ]]; then
    check "status: $name healthy" grep -Eq "^$name +[0-9]+ +healthy " <<<"$status"
    listen_var=${LISTEN_VAR[$name]}
    check "$name answers /healthz on ${!listen_var}" ess_http_ok "http://${!listen_var}/healthz"
  else
    check "status: $name not built" grep -Eq "^$name +- +not built " <<<"$status"
  fi
done

check "secrets.env is private (600)" test "$(stat -c %a "$HOME_DIR/secrets.env")" = 600
check "stack.env is private (600)" test "$(stat -c %a "$HOME_DIR/stack.env")" = 600
for name in nats pg; do
  check "pid file run/$name.pid" test -s "$HOME_DIR/run/$name.pid"
done

# --- env ----------------------------------------------------------------------------------
"$OPS_ESS" env >"$OPS_TMP/env.sh"
# A clean shell: only what `env` printed.
check "env output is eval-able and names this stack" \
  env -i PATH="$PATH" EXPECT_NATS="$ESS_NATS_URL" EXPECT_PG="$ESS_PG_DSN" \
  EXPECT_HOME="$HOME_DIR" ENV_FILE="$OPS_TMP/env.sh" bash -c '
    set -euo pipefail
    eval "$(cat "$ENV_FILE")"
    [[ "$ESS_NATS_URL" == "$EXPECT_NATS" && "$ESS_PG_DSN" == "$EXPECT_PG" ]]
    [[ "$ESS_HOME" -ef "$EXPECT_HOME" ]]
    [[ -n "$ESS_LINE_CHANNEL_SECRET" && -n "$ESS_LINE_CHANNEL_TOKEN" ]]
    [[ "$(printf "%s" "$ESS_DATA_KEY" | base64 -d | wc -c)" == 32 ]]'
check "the env's DSN reaches the ess database" \
  env -i PATH="$PATH" ENV_FILE="$OPS_TMP/env.sh" bash -c '
    set -euo pipefail
    eval "$(cat "$ENV_FILE")"
    [[ "$(psql -X -At "$ESS_PG_DSN" -c "SELECT current_user || current_database()")" == essess ]]'
if [[ -x "$BUILD/bin/essctl" ]]; then
  check "essctl db migrate runs against the env (idempotent)" \
    env -i PATH="$PATH" ENV_FILE="$OPS_TMP/env.sh" ESSCTL="$BUILD/bin/essctl" bash -c '
      set -euo pipefail
      eval "$(cat "$ENV_FILE")"
      "$ESSCTL" db migrate >/dev/null'
fi

# --- the JetStream store is encrypted at rest ---------------------------------------------
marker="ops-marker-$(ess_random_hex 12)"
nats_port=${ESS_NATS_URL##*:}
check "a message is stored in a file stream" \
  nats_js_publish 127.0.0.1 "$nats_port" OPS_AT_REST ops.at.rest "$marker-0812345678"
stored_block() {
  [[ -n "$(find "$HOME_DIR/nats/store" -name '*.blk' -size +40c 2>/dev/null)" ]]
}
check "the message reached the store's block file" ess_wait_until 10 stored_block
check "no file under ESS_HOME holds the message in clear" \
  test -z "$(grep -rlaF "$marker" "$HOME_DIR" 2>/dev/null || true)"

# --- up again starts nothing --------------------------------------------------------------
before=$(ops_pids "$HOME_DIR")
again=$("$OPS_ESS" up 2>&1) || {
  printf '%s\n' "$again" >&2
  fail "second ess up"
}
after=$(ops_pids "$HOME_DIR")
check "second up keeps every pid" test "$before" = "$after"
check "second up says nats is running" grep -q 'nats: running' <<<"$again"
check "second up starts nothing" test -z "$(grep ': started' <<<"$again" || true)"

# --- down leaves nothing ------------------------------------------------------------------
pids=$(awk '{ print $2 }' <<<"$after")
"$OPS_ESS" down
check "no process mentions the stack's directory" test -z "$(ops_leftovers "$OPS_TMP")"
for pid in $pids; do
  check "pid $pid has ended" ess_proc_gone "$pid"
done
check "no pid file remains" test -z "$(ops_pids "$HOME_DIR")"
check "status after down says stopped (exit 1)" \
  bash -c '! "$1" status >/dev/null' _ "$OPS_ESS"
check "down again is harmless" "$OPS_ESS" down
