#!/usr/bin/env bash
# The HTTP API fuzzed against its own OpenAPI document with Schemathesis (PyPI): a real
# server on loopback, signed in as the leader of a study with a member, a task, a post, a
# chat room and a file, so the generated requests reach real rows. Bounded: 10 examples an
# operation, two passes (everything but DELETE, then DELETE, so the data lives through the
# first). Fails on any 5xx, an undocumented status code or content type, or a response
# that breaks its documented schema.
#   usage: ops/schemathesis.sh path/to/studyon
set -euo pipefail
BIN="$1"
ST_VERSION=4.32.5
VENV="${STUDYON_SCHEMATHESIS_VENV:-$HOME/.cache/studyon/schemathesis-venv}"
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$ST_VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$ST_VERSION"
fi

WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
O="http://127.0.0.1:$PORT"
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --metrics-listen off \
  --write-burst 100000 --signup-burst 1000 --log warn >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do curl -sf "$O/healthz" >/dev/null && break; sleep 0.1; done

# Sign up two users; the first leads study 1 (task 1, post 1, room 1, file 1), the second
# is accepted into it (application 1).
signup() {
  curl -sf -c "$WORK/$1.jar" -H "Origin: $O" -H 'Content-Type: application/json' \
    -d "{\"login_id\":\"$1\",\"display_name\":\"$1\",\"password\":\"correct horse battery\"}" \
    "$O/api/auth/signup" >/dev/null
  awk '$6 == "studyon_session" { print $7 }' "$WORK/$1.jar"
}
LEAD="$(signup fuzz_lead)"
MEMBER="$(signup fuzz_member)"
call() { # who method path [json]
  curl -sf -X "$2" -b "studyon_session=$1" -H "Origin: $O" -H 'Content-Type: application/json' \
    ${4:+-d "$4"} "$O$3" >/dev/null
}
call "$LEAD" POST /api/studies '{"title":"Fuzzed","description":"**d**","tags":["a"],"capacity":5,"recruit_opens_on":"2026-01-01","recruit_closes_on":"2099-12-31","starts_on":"2100-01-01","ends_on":"2100-03-01"}'
call "$MEMBER" POST /api/studies/1/applications '{"message":"hi"}'
call "$LEAD" POST /api/studies/1/applications/1/decision '{"accept":true}'
call "$LEAD" POST /api/studies/1/tasks '{"title":"t"}'
call "$LEAD" POST /api/studies/1/tasks/1/posts '{"title":"p","body":"b"}'
call "$LEAD" POST /api/studies/1/chat_rooms '{"name":"r","category":"general"}'
curl -sf -b "studyon_session=$LEAD" -H "Origin: $O" -H 'Content-Type: text/plain' \
  --data-binary 'hello' "$O/api/studies/1/posts/1/attachments?name=a.txt" >/dev/null

cat >"$WORK/schemathesis.toml" <<TOML
[parameters]
"path.study_id" = 1
"path.task_id" = 1
"path.post_id" = 1
"path.room_id" = 1
"path.file_id" = 1
"path.user_id" = 2
"path.review_id" = 1
"path.application_id" = 1
"path.notification_id" = 1
TOML

run() {
  (cd "$WORK" && "$VENV/bin/schemathesis" run "$O/api/openapi.json" \
    -H "Cookie: studyon_session=$LEAD" -H "Origin: $O" \
    --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
    --max-examples 10 --phases examples,coverage,fuzzing --seed 20261130 \
    --generation-database none --no-color --request-timeout 10 \
    --exclude-path /ws --exclude-path /api/auth/logout "$@")
}
run --exclude-method DELETE
run --include-method DELETE
