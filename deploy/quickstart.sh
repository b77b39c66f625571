#!/usr/bin/env bash
# Ferry quickstart: builds the binaries, starts a local control plane over an embedded
# SQLite catalogue, and uses the `ferry` CLI to register two file-system sites, a
# dataset of generated files and a tiering policy, then shows what the catalogue holds.
#
#   deploy/quickstart.sh                 run the demo, then stop the control plane
#   deploy/quickstart.sh --keep-running  leave it running for your own commands
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

if ! command -v cc >/dev/null 2>&1; then
  log "installing a C compiler (build-essential)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential >/dev/null
fi

log "building ferry-control-plane and ferry"
cargo build --locked --bin ferry-control-plane --bin ferry
bin="${CARGO_TARGET_DIR:-target}/debug"
export FERRY_SERVER="http://127.0.0.1:$port"
ferry() { "$bin/ferry" "$@"; }

log "starting the control plane on 127.0.0.1:$port (data and log in $work)"
"$bin/ferry-control-plane" --listen "127.0.0.1:$port" --data-dir "$work/data" \
  >"$work/control-plane.log" 2>&1 &
cp_pid=$!
stop() {
  if kill -0 "$cp_pid" 2>/dev/null; then
    kill -TERM "$cp_pid" && wait "$cp_pid" || true
  fi
}
trap stop EXIT
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
size=$(du -sb "$work/sites/fast/projects/genome" | cut -f1)

log "registering two sites"
ferry site create fast --uri "file://$work/sites/fast" --tier hot --latency-ms 2 \
  --price-storage-gb-month 0.023 --price-egress-gb 0.09 --price-per-1000-requests 0.005
ferry site create archive --uri "file://$work/sites/archive" --tier cold --latency-ms 180 \
  --price-storage-gb-month 0.004 --price-retrieval-gb 0.01 --min-storage-days 90
ferry site list

log "registering the dataset"
ferry dataset create genome --site fast --path projects/genome --size-bytes "$size" \
  --object-count 24 --owner research --slo-ms 500 --label team=genomics --label stage=raw
ferry dataset list

log "a policy for the genomics team: hot data on 'fast', cold data on 'archive'"
ferry policy create genomics-tiering --selector team=genomics --hot-after 60s --warm-after 10m \
  --place hot=fast --place cold=archive --min-residency 1h --verify full
ferry dataset get genome

log "the catalogue protects itself: a site that holds data cannot be deleted"
if ferry site delete fast; then
  echo "unexpected: the site was deleted" >&2
  exit 1
fi

log "machine-readable output"
ferry --json dataset get genome

if $keep_running; then
  log "the control plane keeps running at $FERRY_SERVER; press Ctrl-C to stop it"
  echo "try: $bin/ferry --server $FERRY_SERVER site list"
  wait "$cp_pid"
else
  log "done; stopping the control plane (run with --keep-running to keep it)"
fi
