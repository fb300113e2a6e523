#!/usr/bin/env bash
# shellcheck disable=SC2016 # bash -c scripts expand in their own shell
# e2e: what deploy/local/ess does with service processes, using stand-in services (python3)
# in a bin directory of our own:
#   - a service killed with SIGKILL is restarted by its supervisor (same supervisor pid);
#   - `up` on a running stack starts only what is missing (a service built since);
#   - a service that exits 2 (configuration problem) is not restarted, and `up` fails fast;
#   - two stacks run side by side; `down` of one leaves the other running;
#   - `down` never signals a process it did not start (a pid file pointing at a stranger);
#   - after `down` no process of the stack is left.
# shellcheck source=tests/integration/ops/common.sh
. "$(dirname "$0")/common.sh"

command -v python3 >/dev/null || skip "python3 (the stand-in services) is missing"

ops_unset_ess_env
ops_tmpdir
BIN=$OPS_TMP/build/bin
OTHER_BIN=$OPS_TMP/other/bin
mkdir -p "$BIN" "$OTHER_BIN"
export ESS_SKIP_BUILD=1 ESS_UP_TIMEOUT=30 ESS_STOP_TIMEOUT=10
STRANGER=""

cleanup() {
  local rc=$? leftovers home
  for home in "$OPS_TMP/a" "$OPS_TMP/b"; do
    [[ -d "$home" ]] || continue
    ESS_HOME=$home ESS_BUILD_DIR=$OPS_TMP/build "$OPS_ESS" down >/dev/null 2>&1 || true
    if ((rc != 0)); then ops_dump_logs "$home"; fi
  done
  if [[ -n "$STRANGER" ]]; then kill "$STRANGER" 2>/dev/null || true; fi
  leftovers=$(ops_leftovers "$OPS_TMP")
  if [[ -n "$leftovers" ]]; then
    # shellcheck disable=SC2086 # a list of pids
    kill -KILL $leftovers 2>/dev/null || true
  fi
  rm -rf "$OPS_TMP"
  exit "$rc"
}
trap cleanup EXIT

# In a subshell: each stack gets its own environment.
ess_a() { (ops_stack_env_a && ESS_BUILD_DIR=$OPS_TMP/build "$OPS_ESS" "$@"); }
ess_b() { (ops_stack_env_b && ESS_BUILD_DIR=$OPS_TMP/other "$OPS_ESS" "$@"); }
# Stack A's and B's addresses, chosen once and replayed ("export", not "declare -x": a
# declare inside a function would make locals).
stack_exports() {
  export -p | grep -E '^declare -x ESS_(HOME|NATS_URL|NATS_MONITOR_PORT|PG_DSN|[A-Z]+_LISTEN)=' |
    sed 's/^declare -x /export /'
}
ops_stack_env "$OPS_TMP/a"
STACK_A=$(stack_exports)
ops_stack_env "$OPS_TMP/b"
STACK_B=$(stack_exports)
ops_stack_env_a() { eval "$STACK_A"; }
ops_stack_env_b() { eval "$STACK_B"; }
ops_stack_env_a
listen_of() { # listen_of VAR: stack A's address for VAR
  (eval "$STACK_A" && printf '%s' "${!1}")
}

service_line() { ess_a status 2>/dev/null | grep -E "^$1 " || true; }
child_of() { tr -d "\n" 2>/dev/null <"$OPS_TMP/a/run/$1.child" || true; }
pid_of() { tr -d "\n" 2>/dev/null <"$OPS_TMP/a/run/$1.pid" || true; }

# --- stack A with one service -----------------------------------------------------------
ops_fake_service "$BIN" ess-audit
check "up with a stand-in ess-audit" ess_a up
check "ess-audit is healthy" grep -Eq '^ess-audit +[0-9]+ +healthy' <<<"$(service_line ess-audit)"
supervisor=$(pid_of ess-audit)
first_child=$(child_of ess-audit)
check "the supervisor's pid file" test -n "$supervisor"
check "the service's pid file" test -n "$first_child"
check "the service process is a child of its supervisor" \
  test "$(ps -o ppid= -p "$first_child" | tr -d ' ')" = "$supervisor"

# --- SIGKILL -> restarted -----------------------------------------------------------------
kill -KILL "$first_child"
restarted() {
  local child
  child=$(child_of ess-audit)
  [[ -n "$child" && "$child" != "$first_child" ]] &&
    ess_http_ok "http://$(listen_of ESS_AUDIT_LISTEN)/healthz"
}
check "a killed service is restarted and healthy again" ess_wait_until 20 restarted
check "by the same supervisor" test "$(pid_of ess-audit)" = "$supervisor"
check "the restart is logged as JSON" \
  grep -q '"msg":"service exited; restarting","exit_code":137' "$OPS_TMP/a/log/ess-audit.log"

# --- up starts only what is missing -------------------------------------------------------
before=$(ops_pids "$OPS_TMP/a")
ops_fake_service "$BIN" ess-console
check "up after a new service was built" ess_a up
after=$(ops_pids "$OPS_TMP/a")
check "everything that ran keeps its pid" \
  test -z "$(comm -23 <(printf '%s\n' "$before") <(printf '%s\n' "$after"))"
check "ess-console was started" grep -Eq '^ess-console +[0-9]+ +healthy' \
  <<<"$(service_line ess-console)"

# --- exit code 2: not restarted, up fails fast --------------------------------------------
ops_fake_service "$BIN" ess-notifier config-error
started=$SECONDS
if ess_a up; then fail "up fails when a service has a configuration problem"; fi
echo "ok: up fails when a service has a configuration problem"
check "and fails fast (no wait for the timeout)" test $((SECONDS - started)) -lt 20
check "its supervisor gave up" test -z "$(pid_of ess-notifier)"
check "the others still run" ess_http_ok "http://$(listen_of ESS_AUDIT_LISTEN)/healthz"
rm -f "$BIN/ess-notifier"

# --- a second stack side by side ----------------------------------------------------------
check "stack B comes up beside A" ess_b up
check "stack B is healthy" ess_b status
a_nats=$(pid_of nats)
check "stack A is untouched" test "$(ess_a status >/dev/null && echo ok)" = ok

# --- down never touches a stranger --------------------------------------------------------
setsid sleep 600 </dev/null >/dev/null 2>&1 &
STRANGER=$!
printf '%s\n' "$STRANGER" >"$OPS_TMP/a/run/ess-georouter.pid"
printf '%s\n' "$STRANGER" >"$OPS_TMP/a/run/ess-georouter.child"
check "down of stack A" ess_a down
check "the stranger behind a stale pid file survived" kill -0 "$STRANGER"
check "stack A's nats has ended" ess_proc_gone "$a_nats"
check "no process of stack A is left" test -z "$(ops_leftovers "$OPS_TMP/a/")"
check "no supervisor of stack A is left" \
  test -z "$(pgrep -f -- "__supervise $OPS_TMP/a " || true)"
check "no service of stack A is left" test -z "$(ops_leftovers "$BIN/")"
check "stack B still runs and is healthy" ess_b status
check "down of stack B" ess_b down
check "no process of either stack is left" test -z "$(ops_leftovers "$OPS_TMP/[ab]/")"
kill "$STRANGER"
STRANGER=""
