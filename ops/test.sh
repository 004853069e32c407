#!/usr/bin/env bash
# The whole test suite: unit tests, integration tests (real server on 127.0.0.1:0 against
# SQLite and a fresh Postgres database per test), and browser tests (headless Debian
# Chromium driven by playwright-core). Installs what it needs and starts Postgres and Redis
# if they are down. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/studyon/target}"
export STUDYON_TEST_PG_URL="${STUDYON_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
step() { printf '\n==> %s\n' "$*"; }

step "services"
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 1 50); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.2; done
fi
pg_isready -h 127.0.0.1 -p 5432
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
redis-cli -h 127.0.0.1 ping
# Throwaway databases left by an interrupted earlier run.
psql "$STUDYON_TEST_PG_URL" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'studyon_it_%'" |
  while read -r db; do psql "$STUDYON_TEST_PG_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"; done

step "S3-compatible test server (moto, in memory, loopback only)"
# moto over s3s-fs: it installs from PyPI in seconds instead of a 2.5-minute cargo build, and
# keeps nothing on disk between runs. Pinned so every run tests against the same server.
MOTO_VENV="${STUDYON_MOTO_VENV:-$HOME/.cache/studyon/moto-venv}"
MOTO_VERSION=5.2.5
if ! "$MOTO_VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
MOTO_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"${TMPDIR:-/tmp}/studyon-moto.log" 2>&1 &
MOTO_PID=$!
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$MOTO_PORT/" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$MOTO_PORT/" >/dev/null
export STUDYON_TEST_S3_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
# Test credentials for the test server only; the suite never talks to AWS.
export AWS_ACCESS_KEY_ID=studyon-test AWS_SECRET_ACCESS_KEY=studyon-test
unset AWS_SESSION_TOKEN AWS_PROFILE

step "packages"
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
# coturn: tests/it/turn.rs runs its own turnserver (loopback, free ports) and turnutils_uclient.
if ! command -v turnserver >/dev/null || ! command -v turnutils_uclient >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends coturn
  # The package's own service must not run here (stock config, port 3478). Its init script
  # starts nothing unless /etc/default/coturn sets TURNSERVER_ENABLED=1; only a booted
  # systemd starts the unit on install, so stop and disable it there.
  if [ -d /run/systemd/system ]; then systemctl disable --now coturn.service; fi
fi
(cd web && npm ci --no-audit --no-fund && npm run build)

step "rust: unit and integration tests"
cargo build --workspace --all-targets
cargo test --workspace --all-targets

step "API contract: the web client's types against the OpenAPI document"
# The document is derived from the server's types; openapi-typescript turns it into types,
# and tsc fails if an answer no longer fits the type the client reads it as.
"$CARGO_TARGET_DIR/debug/studyon" openapi >web/tests/contract/openapi.json
(cd web && npx openapi-typescript tests/contract/openapi.json -o tests/contract/api.gen.ts >/dev/null \
  && npx tsc -p tests/contract/tsconfig.json)

step "API fuzzed against its own schema (Schemathesis, loopback, bounded)"
ops/schemathesis.sh "$CARGO_TARGET_DIR/debug/studyon"

step "load harness smoke (loopback, bounded, no baseline)"
# Proves the harness and the chat fan-out path still work end to end: it fails on any lost or
# duplicated message. The full benchmark is a separate command (see loadtest/README.md).
"$CARGO_TARGET_DIR/debug/loadtest" chat-fanout --smoke --server-bin "$CARGO_TARGET_DIR/debug/studyon"
# The co-editing path the same way: one document, writers and readers; fails on any update
# lost, duplicated or refused.
"$CARGO_TARGET_DIR/debug/loadtest" doc --smoke --server-bin "$CARGO_TARGET_DIR/debug/studyon"
# The SFU the same way: str0m participants, 1→3, 3×3 and 2 rooms of 2; fails if under 90 %
# of the packets arrive or none are forwarded.
"$CARGO_TARGET_DIR/debug/loadtest" video --smoke --server-bin "$CARGO_TARGET_DIR/debug/studyon"

# The cluster's fan-out path the same way: two nodes of a real cluster (its own redis-server,
# a throwaway Postgres database), rooms owned by both; fails on any delivery lost,
# duplicated or out of order.
"$CARGO_TARGET_DIR/debug/loadtest" cluster-fanout --smoke --server-bin "$CARGO_TARGET_DIR/debug/studyon"

step "local cluster script (ops/cluster.sh: three nodes behind HAProxy)"
# The README's cluster command, end to end: up, a session through the load balancer, one node
# killed, the session still served by the others, down. (The multi-node behaviour itself is
# tested in tests/it/cluster.rs.)
CLUSTER_DIR="$(mktemp -d)"
export CLUSTER_SH_DIR="$CLUSTER_DIR/run" CLUSTER_SH_BUILD=0 STUDYON_BIN="$CARGO_TARGET_DIR/debug/studyon"
cluster_down() { ops/cluster.sh down >/dev/null 2>&1 || true; ops/cluster.sh reset >/dev/null 2>&1 || true; }
trap 'cluster_down; kill "$MOTO_PID" 2>/dev/null || true' EXIT
ops/cluster.sh up >/dev/null
curl -sf -c "$CLUSTER_DIR/cookies" -H 'Origin: http://127.0.0.1:8080' -H 'Content-Type: application/json' \
  -d '{"login_id":"cluster_sh","display_name":"cluster","password":"correct horse battery"}' \
  http://127.0.0.1:8080/api/auth/signup >/dev/null
ops/cluster.sh kill 2 >/dev/null
for _ in 1 2 3 4 5 6; do
  curl -sf -b "$CLUSTER_DIR/cookies" http://127.0.0.1:8080/api/auth/me | grep -q '"cluster_sh"'
done
cluster_down
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
unset CLUSTER_SH_DIR CLUSTER_SH_BUILD STUDYON_BIN
rm -rf "$CLUSTER_DIR"

step "browser tests"
(cd web && STUDYON_BIN="$CARGO_TARGET_DIR/debug/studyon" npm test)

step "browser tests of tasks, posts, files and co-editing on Postgres + S3"
# The second deployment in the browser too: the same test files (and the stock Yjs clients)
# against a server on a fresh Postgres database and a fresh bucket of the loopback S3 server.
BROWSER_DB="studyon_it_browser_$$"
psql "$STUDYON_TEST_PG_URL" -qc "CREATE DATABASE $BROWSER_DB"
BROWSER_DB_URL="$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$STUDYON_TEST_PG_URL" "$BROWSER_DB")"
(cd web && STUDYON_BIN="$CARGO_TARGET_DIR/debug/studyon" STUDYON_TEST_DATABASE_URL="$BROWSER_DB_URL" \
  STUDYON_S3_BUCKET="studyon-browser-$$" STUDYON_S3_ENDPOINT="$STUDYON_TEST_S3_ENDPOINT" STUDYON_S3_PATH_STYLE=true \
  node --test --test-concurrency=1 tests/tasks-posts.test.mjs tests/coedit.test.mjs tests/yjs-compat.test.mjs)
psql "$STUDYON_TEST_PG_URL" -qc "DROP DATABASE IF EXISTS $BROWSER_DB WITH (FORCE)"

step "all tests passed"
