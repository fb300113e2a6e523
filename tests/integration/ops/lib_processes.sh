#!/usr/bin/env bash
# shellcheck disable=SC2016 # bash -c scripts expand in their own shell
# unit: deploy/local/lib.sh's process and port helpers, with no server:
#   - a process is signalled only when its command line proves it is ours;
#   - a process that ignores SIGTERM still ends (SIGKILL after the bounded wait);
#   - waits are bounded; free ports are distinct, below the ephemeral range, and unused;
#   - paths and NATS store keys that would be misread in a configuration are refused.
# shellcheck source=tests/integration/ops/common.sh
. "$(dirname "$0")/common.sh"

pids=()
cleanup() {
  local rc=$? pid
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  exit "$rc"
}
trap cleanup EXIT

# --- never signal a process that is not ours --------------------------------------------
sleep 301 &
stranger=$!
pids+=("$stranger")
# Until the fork has exec'd, /proc shows this shell's command line.
check "ess_proc_has_arg sees an exact argument" ess_wait_until 5 ess_proc_has_arg "$stranger" 301
ess_stop_process "$stranger" /nonexistent/ess-home 1 TERM
check "a process without our argument is left alone" kill -0 "$stranger"
if ess_proc_has_arg "$stranger" 30; then fail "ess_proc_has_arg matched a partial argument"; fi
echo "ok: and not a part of one"
check "our own process is stopped" ess_stop_process "$stranger" 301 5 TERM
check "and is gone" ess_proc_gone "$stranger"

# --- SIGTERM ignored: SIGKILL after the bounded wait --------------------------------------
env --ignore-signal=TERM sleep 302 &
stubborn=$!
pids+=("$stubborn")
ess_wait_until 5 ess_proc_has_arg "$stubborn" 302
started=$SECONDS
check "a process ignoring SIGTERM is stopped" ess_stop_process "$stubborn" 302 1 TERM
check "and is gone" ess_proc_gone "$stubborn"
check "within the bounded wait" test $((SECONDS - started)) -le 4

# --- bounded waits ------------------------------------------------------------------------
started=$SECONDS
if ess_wait_until 1 false; then fail "ess_wait_until false succeeded"; fi
check "ess_wait_until gives up after its timeout" test $((SECONDS - started)) -le 3
check "ess_wait_until returns at once when true" ess_wait_until 0 true

# --- ports --------------------------------------------------------------------------------
declare -A seen=()
for _ in $(seq 1 100); do
  ess_free_port port
  [[ -z "${seen[$port]:-}" ]] || fail "ess_free_port handed out $port twice"
  ((port >= 20000 && port < 32768)) || fail "port $port outside 20000-32767"
  if ess_port_listening "$port"; then fail "port $port is in use"; fi
  seen[$port]=1
done
echo "ok: 100 free ports, distinct, in 20000-32767, unused"
if command -v python3 >/dev/null; then
  ess_free_port port
  python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); time.sleep(60)' \
    "$port" &
  listener=$!
  pids+=("$listener")
  check "a listening port is seen as listening" ess_wait_until 10 ess_port_listening "$port"
  check "ess_pid_listens names the process that listens" ess_pid_listens "$listener" "$port"
  if ess_pid_listens $$ "$port"; then fail "ess_pid_listens took another process for the listener"; fi
  echo "ok: and not another process"
  other_port=""
  ess_free_port other_port
  if ess_pid_listens "$listener" "$other_port"; then fail "ess_pid_listens matched another port"; fi
  echo "ok: nor another port"
  kill "$listener"
  wait "$listener" 2>/dev/null || true
  check "and free once closed" ess_wait_until 10 bash -c \
    '. "$1/deploy/local/lib.sh"; ! ess_port_listening "$2"' _ "$OPS_SOURCE" "$port"
fi

# --- paths and keys -----------------------------------------------------------------------
for bad in "relative/path" "/tmp/a b" "/tmp//x" "/tmp/x#y" "/tmp/\$HOME"; do
  if (ess_check_path "$bad") 2>/dev/null; then fail "ess_check_path accepted '$bad'"; fi
done
echo "ok: unsafe paths refused"
check "a plain absolute path is accepted" bash -c \
  '. "$1/deploy/local/lib.sh"; ess_check_path /tmp/ess-ops.Ab12_x/home' _ "$OPS_SOURCE"
check "a generated store key is valid" ess_nats_key_valid "$(ess_new_nats_key)"
for bad in 1234567890123456789012345678901234 "kshort" "k#23456789012345678901234567890123" \
  "k/2345678901234567890123456789012//"; do
  if ess_nats_key_valid "$bad"; then fail "store key '$bad' accepted"; fi
done
echo "ok: store keys a configuration would misread are refused"
check "ESS_DATA_KEY-style secret is 32 bytes" \
  test "$(ess_random_base64 32 | base64 -d | wc -c)" = 32
