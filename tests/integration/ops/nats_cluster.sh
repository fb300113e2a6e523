#!/usr/bin/env bash
# integration: deploy/nats/ess-cluster.conf makes three nats-servers one JetStream cluster
# (names, authenticated routes, the encrypted store of ess.conf), and an ESS service started
# against it with ESS_NATS_REPLICAS=3 creates its streams with three copies
# (docs/high-availability.md). What survives the loss of a node is proven by
# integration_bus_cluster; this checks the shipped configuration file and the service's
# wiring of the variable.
# shellcheck source=tests/integration/ops/common.sh
. "$(dirname "$0")/common.sh"
# shellcheck source=deploy/local/lib.sh
. "$OPS_SOURCE/deploy/local/lib.sh"

ops_unset_ess_env
ops_tmpdir
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    ess_wait_until 10 ess_proc_gone "$pid" || kill -9 "$pid" 2>/dev/null || true
  done
  [[ -n "${KEEP_OPS_TMP:-}" ]] || rm -rf "$OPS_TMP"
}
trap cleanup EXIT

nodes=(1 2 3)
declare -A client_port monitor_port route_port
for i in "${nodes[@]}"; do
  ess_free_port "client_port[$i]"
  ess_free_port "monitor_port[$i]"
  ess_free_port "route_port[$i]"
done
# A letter first, as for the store key: nats-server reads a value starting with a digit as a
# number and refuses the configuration.
route_password=p$(ess_random_hex 16)
store_key=$(ess_new_nats_key)

for i in "${nodes[@]}"; do
  dir=$OPS_TMP/nats-$i
  mkdir -p "$dir"
  # ess-cluster.conf includes ./ess.conf: the two files travel together.
  cp "$OPS_SOURCE/deploy/nats/ess.conf" "$OPS_SOURCE/deploy/nats/ess-cluster.conf" "$dir/"
  ESS_NATS_HOST=127.0.0.1 ESS_NATS_PORT=${client_port[$i]} \
    ESS_NATS_MONITOR_PORT=${monitor_port[$i]} ESS_NATS_PID_FILE=$dir/nats.pid \
    ESS_NATS_STORE_DIR=$dir/store ESS_NATS_STORE_KEY=$store_key \
    ESS_NATS_SERVER_NAME=ess-nats-$i ESS_NATS_CLUSTER_LISTEN=127.0.0.1:${route_port[$i]} \
    ESS_NATS_CLUSTER_USER=route ESS_NATS_CLUSTER_PASSWORD=$route_password \
    ESS_NATS_ROUTE_1=nats-route://route:$route_password@127.0.0.1:${route_port[1]} \
    ESS_NATS_ROUTE_2=nats-route://route:$route_password@127.0.0.1:${route_port[2]} \
    ESS_NATS_ROUTE_3=nats-route://route:$route_password@127.0.0.1:${route_port[3]} \
    nats-server -c "$dir/ess-cluster.conf" </dev/null >"$dir/log" 2>&1 &
  pids+=("$!")
done

# Every member sees a three-member JetStream cluster with an elected leader.
cluster_formed() {
  local jsz
  jsz=$(curl -fsS -m 2 "http://127.0.0.1:${monitor_port[$1]}/jsz" 2>/dev/null) || return 1
  /usr/bin/python3 -c '
import json, sys
meta = json.load(sys.stdin).get("meta_cluster", {})
sys.exit(0 if meta.get("cluster_size") == 3 and meta.get("leader") else 1)' <<<"$jsz"
}
for i in "${nodes[@]}"; do
  if ! ess_wait_until 30 cluster_formed "$i"; then
    tail -n 20 "$OPS_TMP/nats-$i/log" >&2
    fail "node $i did not join a three-member JetStream cluster"
  fi
done
echo "ok: three nodes formed one JetStream cluster from deploy/nats/ess-cluster.conf"
check "the members' stores are encrypted at rest (the server says so)" \
  grep -q "Encryption:.*ChaCha" "$OPS_TMP/nats-1/log"

# A route without the members' credentials is refused.
stranger_port="" stranger_route="" ingress_port=""
ess_free_port stranger_port
ess_free_port stranger_route
nats-server -js -a 127.0.0.1 -p "$stranger_port" --name stranger --cluster_name ess \
  --cluster "nats://127.0.0.1:$stranger_route" \
  --routes "nats-route://route:wrong@127.0.0.1:${route_port[1]}" -sd "$OPS_TMP/stranger" \
  </dev/null >"$OPS_TMP/stranger.log" 2>&1 &
pids+=("$!")
authorization_refused() { grep -q "Router connection closed: Authentication Failure" "$OPS_TMP/nats-1/log"; }
check "a route with a wrong password is refused" ess_wait_until 20 authorization_refused

ess_free_port ingress_port
binary=$ESS_BUILD_DIR/bin/ess-ingress
[[ -x "$binary" ]] || skip "$binary is not built"
urls=nats://127.0.0.1:${client_port[1]},nats://127.0.0.1:${client_port[2]},nats://127.0.0.1:${client_port[3]}
ESS_NATS_URL=$urls ESS_NATS_REPLICAS=3 ESS_LINE_CHANNEL_SECRET=cluster-test-secret \
  ESS_INGRESS_LISTEN=127.0.0.1:$ingress_port "$binary" </dev/null >"$OPS_TMP/ingress.log" 2>&1 &
pids+=("$!")
ready() { ess_http_ok "http://127.0.0.1:$ingress_port/readyz"; }
if ! ess_wait_until 60 ready; then
  tail -n 20 "$OPS_TMP/ingress.log" >&2
  fail "ess-ingress is not ready against the cluster"
fi
echo "ok: ess-ingress is ready against the three nodes"

stream_replicas() {
  curl -fsS -m 2 "http://127.0.0.1:${monitor_port[$1]}/jsz?streams=true&config=true" |
    /usr/bin/python3 -c '
import json, sys
for account in json.load(sys.stdin).get("account_details", []):
    for stream in account.get("stream_detail", []):
        if stream["name"] == sys.argv[1]:
            print(stream["config"]["num_replicas"], len(stream.get("cluster", {}).get("replicas", [])))' "$2"
}
# Every member holds a copy, and each reports the stream's configuration and its peers.
for i in "${nodes[@]}"; do
  check "node $i: LINE_IN has three copies (num_replicas 3, two peers beside the leader)" \
    grep -qx "3 2" <<<"$(stream_replicas "$i" LINE_IN)"
done
