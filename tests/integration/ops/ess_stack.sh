#!/usr/bin/env bash
# shellcheck disable=SC2016 # bash -c scripts expand in their own shell
# e2e: deploy/local/ess with this build's binaries (never rebuilt: ESS_SKIP_BUILD=1), in a
# temporary ESS_HOME on free ports.
#   up -> status: nats, pg and every built service healthy -> env is eval-able and usable
#   -> the services run as ess_app, the retention run as ess_janitor, essctl as the owner;
#   a citizen's messages go through; ess_app cannot rewrite the audit log nor erase personal
#   data -> the JetStream store holds no message in clear -> up again starts nothing new
#   -> down -> no process of this ESS_HOME is left, no pid file remains -> with a stranger
#   answering /healthz on the ingress's port, up fails naming the ingress.
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
# ess-audit's retention run every second instead of daily (checked below).
export ESS_RETENTION_INTERVAL=1s

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

# --- database roles (migrations 0005, 0007) ------------------------------------------------
# The services connect as ess_app (member of ess_service), ess-audit's retention run as
# ess_janitor (ess_retention); ESS_PG_DSN, the owner, is essctl's.
built() { [[ -x "$BUILD/bin/$1" ]]; }
owner_sql() { psql -X -At "$ESS_PG_DSN" -c "$1"; }
db_services=()
for name in ess-audit ess-console ess-conversation ess-georouter ess-notifier; do
  if built "$name"; then db_services+=("$name"); fi
done
service_sessions() {
  owner_sql "SELECT usename || ' ' || application_name FROM pg_stat_activity
             WHERE application_name LIKE 'ess-%' ORDER BY 1"
}
all_connected() {
  local sessions name
  sessions=$(service_sessions) || return 1
  for name in "${db_services[@]}"; do
    grep -q " $name" <<<"$sessions" || return 1
  done
  [[ -n "$sessions" ]]
}
if ((${#db_services[@]} > 0)); then
  check "every service that uses PostgreSQL holds a session" ess_wait_until 30 all_connected
  sessions=$(service_sessions)
  printf '%s\n' "$sessions" | sort | uniq -c
  check "every service session is ess_app's (ess-audit-retention: ess_janitor's)" \
    test -z "$(grep -Ev '^ess_app ess-|^ess_janitor ess-audit-retention$' <<<"$sessions" || true)"
  for name in "${db_services[@]}"; do
    check "$name connects as ess_app" grep -q "^ess_app $name" <<<"$sessions"
    child=$(ess_read_pid "$HOME_DIR/run/$name.child")
    has_retention_dsn=0
    if tr '\0' '\n' <"/proc/$child/environ" | grep -q '^ESS_RETENTION_PG_DSN='; then
      has_retention_dsn=1
    fi
    if [[ "$name" == ess-audit ]]; then
      check "ess-audit is given the retention login" test "$has_retention_dsn" = 1
    else
      check "$name is not given the retention login" test "$has_retention_dsn" = 0
    fi
  done
fi

pg_address=${ESS_PG_DSN#*@}
app_password=$(sed -n 's/^ESS_PG_APP_PASSWORD=//p' "$HOME_DIR/secrets.env")
check "secrets.env holds the services' database password" test -n "$app_password"
app_sql() { PGPASSWORD=$app_password psql -X -At "postgresql://ess_app@$pg_address" -c "$1"; }
# app_denied SQL: ess_app may not run SQL, for lack of privilege.
app_denied() {
  local output
  if output=$(app_sql "$1" 2>&1); then return 1; fi
  [[ "$output" == *"permission denied"* ]]
}
check "ess_app logs in with its password" test "$(app_sql 'SELECT current_user')" = ess_app
check "ess_app with a wrong password is refused" \
  bash -c '! PGPASSWORD=wrong-password psql -X -At "$1" -c "SELECT 1" 2>/dev/null' _ \
  "postgresql://ess_app@$pg_address"
check "ess_app reads the reference data" test "$(app_sql 'SELECT count(*) FROM geo_meta')" = 1
check "ess_app cannot delete audit rows" app_denied "DELETE FROM audit_log"
check "ess_app cannot rewrite audit rows" app_denied "UPDATE audit_log SET subject = 'x'"
check "ess_app cannot truncate the audit log" app_denied "TRUNCATE audit_log"
check "ess_app cannot erase a phone number" app_denied "UPDATE incidents SET phone_encrypted = NULL"
check "ess_app cannot delete incidents" app_denied "DELETE FROM incidents"

if built ess-audit; then
  # An old closed case: the retention run, as ess_janitor, erases its phone and audits that.
  owner_sql "INSERT INTO incidents (case_number, category, status, phone_encrypted,
               reporter_key_hash, closed_at)
             VALUES ('ESS-2569-990001', 'threat', 'closed', '\\x01'::bytea,
                     decode(repeat('22', 32), 'hex'), now() - interval '100 days')" >/dev/null
  erased() {
    [[ "$(owner_sql "SELECT count(*) FROM incidents i JOIN audit_log a
                     ON a.msg_id = 'retention.erased/' || i.id
                     WHERE i.case_number = 'ESS-2569-990001' AND i.phone_encrypted IS NULL
                       AND i.pii_erased_at IS NOT NULL")" == 1 ]]
  }
  check "ess-audit's retention run (ess_janitor) erased an old case's phone" \
    ess_wait_until 30 erased
fi

if built line-emulator && built ess-ingress && built ess-conversation && built ess-notifier; then
  # A citizen writes: ingress, conversation, notifier (and audit) do their work as ess_app.
  emulator="http://$ESS_EMULATOR_LISTEN/_emulator"
  user=$(curl -fsS -X POST "$emulator/users" -d '{"displayName":"ops roles","language":"th"}' |
    sed -n 's/.*"userId":"\(U[0-9a-f]*\)".*/\1/p')
  check "the emulator created a user" test -n "$user"
  check "the user follows the bot" curl -fsS -o /dev/null -X POST "$emulator/users/$user/follow"
  check "the user writes" curl -fsS -o /dev/null -X POST "$emulator/users/$user/text" \
    -d '{"text":"ช่วยด้วย"}'
  answered() { [[ "$(curl -fsS "$emulator/messages?to=$user")" == *'"endpoint":"reply"'* ]]; }
  check "the bot answered through the services" ess_wait_until 30 answered
  applied() { (($(owner_sql "SELECT count(*) FROM processed_events") >= 2)); }
  check "the conversation recorded the events it applied" ess_wait_until 30 applied
  if built ess-audit; then
    audited() {
      (($(owner_sql "SELECT count(DISTINCT stream) FROM audit_log
                     WHERE stream IN ('LINE_IN', 'LINE_OUT')") == 2))
    }
    check "ess-audit appended the messages" ess_wait_until 30 audited
  fi
fi
denied_logs=$(grep -l -e '42501' -e 'permission denied' "$HOME_DIR"/log/ess-*.log 2>/dev/null ||
  true)
check "no service log reports a missing privilege" test -z "$denied_logs"

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

# --- a stranger on a service's port is not taken for the service ----------------------------
# Another process holds the ingress's port and answers GET /healthz with 200, as a service
# of another stack would: `up` must not report the ingress healthy.
if built ess-ingress && command -v python3 >/dev/null; then
  mkdir -p "$OPS_TMP/stranger"
  : >"$OPS_TMP/stranger/healthz"
  ingress_port=${ESS_INGRESS_LISTEN##*:}
  python3 -m http.server "$ingress_port" --bind 127.0.0.1 --directory "$OPS_TMP/stranger" \
    </dev/null >"$OPS_TMP/stranger.log" 2>&1 &
  stranger=$!
  stranger_answers() { curl -fsS -m 2 -o /dev/null "http://$ESS_INGRESS_LISTEN/healthz"; }
  check "the stranger answers /healthz on the ingress's port" ess_wait_until 10 stranger_answers
  if stranger_up=$(ESS_UP_TIMEOUT=8 "$OPS_ESS" up 2>&1); then
    printf '%s\n' "$stranger_up" >&2
    kill "$stranger"
    fail "up succeeded while a stranger held the ingress's port"
  fi
  kill "$stranger"
  wait "$stranger" 2>/dev/null || true
  check "up names the ingress as not healthy" grep -q 'not healthy:.*ess-ingress' <<<"$stranger_up"
  "$OPS_ESS" down
  check "down after the failed up leaves no process" test -z "$(ops_leftovers "$OPS_TMP")"
fi
