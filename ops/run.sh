#!/usr/bin/env bash
# Runs StudyOn on the embedded default (SQLite + local files under ./data, in-process
# registry) at http://127.0.0.1:8080, building the web client first. Extra arguments go to
# `studyon serve` (e.g. `ops/run.sh --listen 127.0.0.1:9000`).
set -euo pipefail
cd "$(dirname "$0")/.."
# A build cache outside the clone survives fresh clones on the same machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/studyon/target}"
profile="${STUDYON_PROFILE:-release}"

if [ ! -d web/node_modules ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  (cd web && npm ci --no-audit --no-fund)
fi
(cd web && npm run build)

if [ "$profile" = release ]; then
  cargo build --release --bin studyon
else
  cargo build --bin studyon
fi
exec "$CARGO_TARGET_DIR/$profile/studyon" serve "$@"
