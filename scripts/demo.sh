#!/usr/bin/env bash
# `make demo`: starts a private etcd, applies manifests/examples, shows the objects, then
# streams events until Ctrl-C, and stops everything it started.
#
# NOMARCH_DEMO_ETCD_PORT picks the etcd client port (default 32379; the peer port is the next).
# NOMARCH_BIN points at the nomarch binary (default: target/debug/nomarch).
# NOMARCH_DEMO_STATE is the folder for etcd data and logs (default: .demo).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state=${NOMARCH_DEMO_STATE:-$root/.demo}
port=${NOMARCH_DEMO_ETCD_PORT:-32379}
peer=$((port + 1))
nomarch=${NOMARCH_BIN:-$root/target/debug/nomarch}
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
for _ in $(seq 1 100); do
  "$nomarch" get apps >/dev/null 2>&1 && break
  sleep 0.2
done

echo "== nomarch apply -f manifests/examples"
"$nomarch" apply -f "$root/manifests/examples"
for kind in apps pubs cronjobs; do
  echo
  echo "== nomarch get $kind -o wide"
  "$nomarch" get "$kind" -o wide
done

cat <<MSG

Try, in another terminal:
  export NOMARCH_ETCD_ENDPOINTS=$NOMARCH_ETCD_ENDPOINTS
  $nomarch get app website -o yaml
  sed 's/replicas: 3/replicas: 5/' manifests/examples/apps/website.yaml | $nomarch apply -f -
  $nomarch delete app redis

== nomarch events --watch (Ctrl-C stops the demo)
MSG
"$nomarch" events --watch &
pids+=($!)
wait
