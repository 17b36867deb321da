#!/usr/bin/env bash
# `make demo`: starts a private etcd, nomad-sim (3 workers, 2 hubs) and the nomarch controller,
# applies manifests/examples, shows the objects converging, then streams events until Ctrl-C,
# and stops everything it started.
#
# Ports: NOMARCH_DEMO_ETCD_PORT (default 32379; the peer port is the next),
# NOMARCH_DEMO_NOMAD_PORT (34646), NOMARCH_DEMO_CONSUL_PORT (38500),
# NOMARCH_DEMO_CONTROLLER_PORT (39430).
# NOMARCH_BIN and NOMAD_SIM_BIN point at the binaries (default: target/debug/).
# NOMARCH_DEMO_STATE is the folder for etcd data and logs (default: .demo).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state=${NOMARCH_DEMO_STATE:-$root/.demo}
port=${NOMARCH_DEMO_ETCD_PORT:-32379}
peer=$((port + 1))
nomad_port=${NOMARCH_DEMO_NOMAD_PORT:-34646}
consul_port=${NOMARCH_DEMO_CONSUL_PORT:-38500}
controller_port=${NOMARCH_DEMO_CONTROLLER_PORT:-39430}
nomarch=${NOMARCH_BIN:-$root/target/debug/nomarch}
nomad_sim=${NOMAD_SIM_BIN:-$root/target/debug/nomad-sim}
pids=()

cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo
  echo "demo stopped; nothing is left running (state was in $state)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$state"
mkdir -p "$state"
etcd --name demo --data-dir "$state/etcd" \
  --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
  --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
  --initial-cluster "demo=http://127.0.0.1:$peer" --log-level warn >"$state/etcd.log" 2>&1 &
pids+=($!)

export NOMARCH_ETCD_ENDPOINTS="http://127.0.0.1:$port"
export NOMAD_ADDR="http://127.0.0.1:$nomad_port"
export CONSUL_HTTP_ADDR="http://127.0.0.1:$consul_port"
"$nomad_sim" --nomad-addr "127.0.0.1:$nomad_port" --consul-addr "127.0.0.1:$consul_port" >"$state/nomad-sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  "$nomarch" get apps >/dev/null 2>&1 && break
  sleep 0.2
done
"$nomarch" controller --listen "127.0.0.1:$controller_port" --resync 30s >"$state/controller.log" 2>&1 &
pids+=($!)

echo "== nomarch apply -f manifests/examples"
"$nomarch" apply -f "$root/manifests/examples"
echo
echo "== waiting for the apps to converge on nomad-sim"
for _ in $(seq 1 60); do
  not_ready=$("$nomarch" get apps | awk 'NR > 1 && $3 != "True"' | wc -l)
  [ "$not_ready" -eq 0 ] && break
  sleep 0.5
done
for kind in apps pubs cronjobs; do
  echo
  echo "== nomarch get $kind -o wide"
  "$nomarch" get "$kind" -o wide
done

cat <<MSG

Try, in another terminal:
  export NOMARCH_ETCD_ENDPOINTS=$NOMARCH_ETCD_ENDPOINTS NOMAD_ADDR=$NOMAD_ADDR CONSUL_HTTP_ADDR=$CONSUL_HTTP_ADDR
  sed 's/replicas: 3/replicas: 5/' manifests/examples/apps/website.yaml > /tmp/website.yaml
  $nomarch diff -f /tmp/website.yaml && $nomarch apply -f /tmp/website.yaml
  curl -s -X DELETE \$NOMAD_ADDR/v1/job/website      # stop it behind nomarch's back: it comes back
  $nomad_sim ctl --addr \$NOMAD_ADDR set-check critical --service website
  $nomad_sim ctl --addr \$NOMAD_ADDR kill-node node-1
  $nomarch delete app redis
Metrics: http://127.0.0.1:$controller_port/metrics   Logs: $state/

== nomarch events --watch (Ctrl-C stops the demo)
MSG
"$nomarch" events --watch &
pids+=($!)
wait
