#!/usr/bin/env bash
# `make demo`: starts a private etcd, nomad-sim (3 workers, 2 hubs) and the nomarch controller,
# creates a local bare state repository with a post-receive hook that calls nomarch's webhook,
# pushes manifests/examples/ to it through a working clone, bootstraps a GitSource pointing at
# it, shows everything converging, then streams events until Ctrl-C, and stops everything it
# started.
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
"$nomarch" controller --listen "127.0.0.1:$controller_port" --resync 30s \
  --git-cache "$state/git-cache" >"$state/controller.log" 2>&1 &
pids+=($!)

# The webhook secret lives in a Nomad variable, where the GitSource's webhookSecretRef points.
secret=$(openssl rand -hex 16)
curl -sf -X PUT "$NOMAD_ADDR/v1/var/nomarch/webhooks/state" -H 'Content-Type: application/json' \
  --data "{\"Path\":\"nomarch/webhooks/state\",\"Items\":{\"secret\":\"$secret\"}}" >/dev/null

# The examples' secrets too: a task reads them through its template before it starts, and
# waits (as on Nomad) while a variable is missing. Each sits under its job's own path, which
# the task's workload identity may read without an ACL policy.
for secret in "nomad/jobs/api database_password" "nomad/jobs/nightly-backup restic_password"; do
  set -- $secret
  curl -sf -X PUT "$NOMAD_ADDR/v1/var/$1" -H 'Content-Type: application/json' \
    --data "{\"Path\":\"$1\",\"Items\":{\"$2\":\"$(openssl rand -hex 12)\"}}" >/dev/null
done

echo "== a bare state repository with a post-receive hook that calls the webhook"
repo="$state/state.git"
work="$state/work"
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@nomarch.invalid
export GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@nomarch.invalid
git init -q --bare -b main "$repo"
cp "$root/manifests/hooks/post-receive" "$repo/hooks/post-receive"
git -C "$repo" config nomarch.webhookUrl "http://127.0.0.1:$controller_port/api/v1/webhooks/git/state"
git -C "$repo" config nomarch.webhookSecret "$secret"
git clone -q "$repo" "$work" 2>/dev/null
git -C "$work" checkout -q -b main
cp -r "$root/manifests/examples/." "$work/"
git -C "$work" add -A
git -C "$work" commit -q -m "the examples"
echo "== git push (the examples: apps, pubs, cron jobs, a Nomad job in HCL)"
git -C "$work" push -q origin main
echo
echo "== nomarch apply -f manifests/gitsource.yaml (url: file://$repo)"
sed "s|url: .*|url: file://$repo|" "$root/manifests/gitsource.yaml" | "$nomarch" apply -f -
echo
echo "== waiting for the commit to sync and the apps to converge on nomad-sim"
for _ in $(seq 1 60); do
  apps=$("$nomarch" get apps 2>/dev/null | awk 'NR > 1' | wc -l)
  not_ready=$("$nomarch" get apps 2>/dev/null | awk 'NR > 1 && $3 != "True"' | wc -l)
  [ "$apps" -gt 0 ] && [ "$not_ready" -eq 0 ] && break
  sleep 0.5
done
for kind in gitsources apps pubs cronjobs nomadjobs; do
  echo
  echo "== nomarch get $kind -o wide"
  "$nomarch" get "$kind" -o wide
done

# A token for the dashboard and the HTTP API (an admin's, every namespace, for this demo only).
api_token=$("$nomarch" token create demo-admin --all --role admin --expires 24h 2>/dev/null || true)

cat <<MSG

Try, in another terminal:
  export NOMARCH_ETCD_ENDPOINTS=$NOMARCH_ETCD_ENDPOINTS NOMAD_ADDR=$NOMAD_ADDR CONSUL_HTTP_ADDR=$CONSUL_HTTP_ADDR
  cd $work                                            # the working clone of the state repo
  sed -i 's/replicas: 3/replicas: 5/' apps/website.yaml && git commit -qam 'website: 5' && git push -q
  git rm -q apps/redis.yaml && git commit -qm 'no redis' && git push -q    # pruned
  echo 'oops: [' > apps/bad.yaml && git add -A && git commit -qm bad && git push -q   # nothing applied
  curl -s -X DELETE \$NOMAD_ADDR/v1/job/website      # stop it behind nomarch's back: it comes back
  $nomad_sim ctl --addr \$NOMAD_ADDR set-check critical --service website
  $nomad_sim ctl --addr \$NOMAD_ADDR kill-node hub-1   # a hub: its pubs move after the grace
  $nomarch get gitsources -o wide; $nomarch events --kind gitsource
  curl -N -H "Authorization: Bearer $api_token" http://127.0.0.1:$controller_port/api/v1/events/stream   # the same events as SSE
  curl -H "Authorization: Bearer $api_token" http://127.0.0.1:$controller_port/api/v1/objects?kind=app
Dashboard: http://127.0.0.1:$controller_port/   sign in with the token $api_token
Metrics: http://127.0.0.1:$controller_port/metrics   Logs: $state/

== nomarch events --watch (Ctrl-C stops the demo)
MSG
"$nomarch" events --watch &
pids+=($!)
wait
