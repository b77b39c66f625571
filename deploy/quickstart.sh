#!/usr/bin/env bash
# Ferry quickstart: builds the binaries, starts a private nats-server (JetStream, a user
# per service), a control plane over an embedded SQLite catalogue and an agent; registers two
# file-system sites, a dataset of generated files and a tiering policy with the `ferry`
# CLI; records access events, asks for a recommendation, approves it, watches the
# migration copy, verify and switch to completion, and checks the bytes at the
# destination.
#
#   deploy/quickstart.sh                 run the demo, then stop everything
#   deploy/quickstart.sh --keep-running  leave the services running for your own commands
#
# Environment: FERRY_QUICKSTART_PORT (default 50051), FERRY_QUICKSTART_DIR (default: a
# new temporary directory), CARGO_TARGET_DIR (where cargo builds).
set -euo pipefail
cd "$(dirname "$0")/.."

keep_running=false
[[ "${1:-}" == "--keep-running" ]] && keep_running=true

port="${FERRY_QUICKSTART_PORT:-50051}"
work="${FERRY_QUICKSTART_DIR:-$(mktemp -d -t ferry-quickstart.XXXXXX)}"
mkdir -p "$work"
log() { printf '\n==> %s\n' "$*"; }

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
[[ -x /usr/sbin/nats-server ]] || command -v nats-server >/dev/null 2>&1 || need_apt+=(nats-server)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
nats_server=$(command -v nats-server || echo /usr/sbin/nats-server)

log "building ferry-control-plane, ferry-agent and ferry"
cargo build --locked --bin ferry-control-plane --bin ferry-agent --bin ferry
bin="${CARGO_TARGET_DIR:-target}/debug"
export FERRY_SERVER="http://127.0.0.1:$port"
ferry() { "$bin/ferry" "$@"; }

pids=()
stop() {
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap stop EXIT

# A private broker on a free port, so the demo never touches another NATS.
# (Never the control plane's own port, which the kernel may hand out as free.)
nats_port=$(python3 -c '
import socket, sys
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p != int(sys.argv[1]): print(p); break
' "$port")
# It runs with authentication, as in production: a user for the control plane and one
# per agent site, whose subject permissions confine that site's agents to its own work
# (docs/operations.md, "NATS authentication"). `ferry nats-user` writes each entry, its
# password bcrypt-hashed; the passwords stay in files only their owners read.
mkdir -p "$work/nats/users"
write_nats_conf() {
  {
    printf 'listen: "127.0.0.1:%s"\npid_file: "%s"\n' "$nats_port" "$work/nats/nats-server.pid"
    printf 'jetstream { store_dir: "%s" }\n' "$work/jetstream"
    printf 'authorization {\n  users = [\n'
    cat "$work"/nats/users/*.conf
    printf '  ]\n}\n'
  } >"$work/nats/nats-server.conf.tmp"
  mv "$work/nats/nats-server.conf.tmp" "$work/nats/nats-server.conf"
}
# Adds a user: rewrites the configuration and has nats-server reload it.
reload_nats() {
  local before
  before=$(grep -c "Reloaded server configuration" "$work/nats-server.log" || true)
  write_nats_conf
  kill -HUP "$(cat "$work/nats/nats-server.pid")"
  for _ in $(seq 1 100); do
    (($(grep -c "Reloaded server configuration" "$work/nats-server.log" || true) > before)) && return
    sleep 0.1
  done
  echo "nats-server did not reload its configuration" >&2
  exit 1
}
ferry nats-user --control-plane --password-file "$work/nats/control-plane.password" \
  >"$work/nats/users/control-plane.conf"
write_nats_conf
log "starting nats-server with JetStream and authentication on 127.0.0.1:$nats_port"
"$nats_server" -c "$work/nats/nats-server.conf" -l "$work/nats-server.log" &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q "Server is ready" "$work/nats-server.log" 2>/dev/null && break
  sleep 0.1
done

log "starting the control plane on 127.0.0.1:$port (data and logs in $work)"
FERRY_NATS__USER=ferry-control-plane FERRY_NATS__PASSWORD_FILE="$work/nats/control-plane.password" \
"$bin/ferry-control-plane" --listen "127.0.0.1:$port" --data-dir "$work/data" \
  --nats-url "nats://127.0.0.1:$nats_port" >"$work/control-plane.log" 2>&1 &
cp_pid=$!
pids+=("$cp_pid")
# On its first start the control plane writes an admin token to its data directory;
# the CLI calls with it from here on.
export FERRY_TOKEN_FILE="$work/data/admin.token"
for _ in $(seq 1 300); do
  ferry site list >/dev/null 2>&1 && break
  if ! kill -0 "$cp_pid" 2>/dev/null; then
    cat "$work/control-plane.log"
    echo "the control plane exited during start-up" >&2
    exit 1
  fi
  sleep 0.2
done

log "generating a dataset: 24 files under $work/sites/fast/projects/genome"
mkdir -p "$work/sites/fast/projects/genome/reads" "$work/sites/archive"
for i in $(seq 1 24); do
  head -c $((4096 * i)) /dev/urandom >"$work/sites/fast/projects/genome/reads/sample-$i.fastq"
done
head -c $((12 * 1024 * 1024)) /dev/urandom >"$work/sites/fast/projects/genome/reference.bin"
size=$(du -sb "$work/sites/fast/projects/genome" | cut -f1)

log "registering two sites"
ferry site create fast --uri "file://$work/sites/fast" --tier hot --latency-ms 2 \
  --price-storage-gb-month 0.023 --price-egress-gb 0.09 --price-per-1000-requests 0.005
ferry site create archive --uri "file://$work/sites/archive" --tier cold --latency-ms 180 \
  --price-storage-gb-month 0.004 --price-retrieval-gb 0.01 --min-storage-days 90
ferry site list

log "registering the dataset"
ferry dataset create genome --site fast --path projects/genome --size-bytes "$size" \
  --object-count 25 --owner research --slo-ms 500 --label team=genomics --label stage=raw
ferry dataset list

log "a policy for the genomics team: hot data on 'fast', cold data on 'archive'"
ferry policy create genomics-tiering --selector team=genomics --hot-after 60s --warm-after 10m \
  --place hot=fast --place cold=archive --verify full

log "starting an agent for the site 'fast', with a token and a NATS user bound to that site"
ferry token create agent-fast --role agent --site fast --secret-file "$work/agent-fast.token"
ferry nats-user --site fast --password-file "$work/nats/agent-fast.password" \
  | tee "$work/nats/users/agent-fast.conf"
reload_nats
FERRY_AGENT_TOKEN_FILE="$work/agent-fast.token" FERRY_AGENT_NATS_USER=ferry-agent-fast \
FERRY_AGENT_NATS_PASSWORD_FILE="$work/nats/agent-fast.password" \
"$bin/ferry-agent" --site fast --control-plane "$FERRY_SERVER" \
  --nats-url "nats://127.0.0.1:$nats_port" --state-dir "$work/agent" \
  --metrics-listen 127.0.0.1:0 >"$work/agent.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  ferry --json agent list | grep -q '"alive"' && break
  sleep 0.2
done
ferry agent list

log "access events: 20 reads of 'genome', two hours ago"
ferry events record genome --op read --bytes 256KiB --count 20 --ago 2h --latency-ms 3
for _ in $(seq 1 100); do
  ferry --json events stats genome | grep -q '"reads":20' && break
  sleep 0.2
done
ferry events stats genome

log "a recommendation: idle for two hours, so cold, on the archive the policy places cold data on"
ferry recommend genome
rec=$(ferry --json recommend genome | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d; print(d["id"])')

log "approving it: the migration copies, verifies (full re-read) and switches, watched live"
ferry recommend approve "$rec" --watch

log "the dataset now lives on the archive; the source stays as a secondary replica"
ferry dataset get genome
job=$(ferry --json job list --dataset genome | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
ferry job objects "$job" | head -8

log "checking the bytes at the destination independently (sha256sum)"
(cd "$work/sites/fast/projects/genome" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$work/source.sha256"
(cd "$work/sites/archive/projects/genome" && sha256sum --quiet -c "$work/source.sha256")
echo "all $(wc -l <"$work/source.sha256") files identical"

log "what Prometheus would scrape: the control plane's and the agent's /metrics"
agent_metrics=$(sed -n 's/.*metrics listening addr=\([0-9.:]*\).*/\1/p' "$work/agent.log" | tail -1)
python3 - "$FERRY_SERVER/metrics" "http://$agent_metrics/metrics" <<'PY'
import sys, urllib.request
wanted = ("ferry_jobs{", "ferry_agent_objects_copied_total", "ferry_agent_bytes_verified_total")
for url in sys.argv[1:]:
    for line in urllib.request.urlopen(url).read().decode().splitlines():
        if line.startswith(wanted):
            print(line)
PY

log "the catalogue protects itself: a site that holds data cannot be deleted"
if ferry site delete archive; then
  echo "unexpected: the site was deleted" >&2
  exit 1
fi

log "every change is in the audit log, with who made it"
ferry audit --limit 8

if $keep_running; then
  log "everything keeps running; the control plane is at $FERRY_SERVER. Ctrl-C stops it all"
  echo "try: FERRY_TOKEN_FILE=$FERRY_TOKEN_FILE $bin/ferry --server $FERRY_SERVER job list"
  echo "or open the console at $FERRY_SERVER/ and sign in with the token in $FERRY_TOKEN_FILE"
  wait "$cp_pid"
else
  log "done; stopping the agent, the control plane and nats-server (run with --keep-running to keep them)"
fi
