#!/usr/bin/env bash
# A local StudyOn cluster on loopback: three nodes behind HAProxy, sharing one Postgres
# database, Redis (the cluster registry) and an S3-compatible store (moto, in memory). For
# trying cluster mode by hand: kill or drain a node and watch its clients reconnect to the
# others. See "Running a cluster" in README.md and ops/SCALING.md.
#
#   ops/cluster.sh [up] [-- ARG...]   build, start whatever is not running, print the URLs;
#                                     ARGs go to every node's `studyon serve`
#   ops/cluster.sh status             each process, each node's /readyz and sockets, the
#                                     load balancer's view of each node
#   ops/cluster.sh kill NODE          SIGKILL one node (failover)
#   ops/cluster.sh drain NODE [--no-lb]
#                                     take NODE out of HAProxy, then SIGTERM it (the node
#                                     closes its sockets with 1001; clients reconnect through
#                                     HAProxy); --no-lb skips the HAProxy step
#   ops/cluster.sh start NODE         start a stopped node again (no build)
#   ops/cluster.sh logs [NODE|haproxy|moto]
#                                     the last 100 lines of a log (node1 by default)
#   ops/cluster.sh down               SIGTERM every process it started (SIGKILL after 15 s)
#   ops/cluster.sh reset              when down: drop the cluster's database and run dir
#   ops/cluster.sh haproxy-config     print the HAProxy config `up` writes
#
# NODE is 1..N or node1..nodeN. Addresses, all on 127.0.0.1: the app through HAProxy on
# :8080, HAProxy's stats on :8404; node i serves HTTP on 8080+i, talks to the other nodes
# on 7100+i and serves /metrics on 9100+i.
#
# Settings (environment): CLUSTER_SH_NODES (3; 1-9), CLUSTER_SH_DIR (run dir: logs, pid
# files, node data dirs; ${TMPDIR:-/tmp}/studyon-cluster), CLUSTER_SH_PG_URL (an admin URL
# of the Postgres server; postgres://postgres@127.0.0.1:5432/postgres), CLUSTER_SH_REDIS_URL
# (redis://127.0.0.1:6379), CLUSTER_SH_BUILD=0 (skip the web and cargo builds),
# STUDYON_BIN (run this server binary instead of building one), STUDYON_PROFILE=debug (as
# in ops/run.sh), CARGO_TARGET_DIR ($HOME/.cache/studyon/target).
#
# Postgres and Redis are started if they are down, as ops/test.sh does, and are left running
# by `down` (other work on this machine uses them). moto keeps objects in memory only, so
# files uploaded before a `down` are gone after the next `up` while their rows remain;
# `reset` starts over from an empty database.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/studyon/target}"
PROFILE="${STUDYON_PROFILE:-release}"
RUN_DIR="${CLUSTER_SH_DIR:-${TMPDIR:-/tmp}/studyon-cluster}"
PG_ADMIN_URL="${CLUSTER_SH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
REDIS_URL_CLUSTER="${CLUSTER_SH_REDIS_URL:-redis://127.0.0.1:6379}"
# Every Redis key of this cluster starts with this (--redis-prefix), apart from the keys of
# tests or other clusters sharing the Redis.
REDIS_PREFIX=studyon-cluster
DB_NAME=studyon_cluster
BUCKET=studyon-cluster
LB_PORT=8080
STATS_PORT=8404
# Same pin and venv as ops/test.sh, so the two share one install (change both together).
MOTO_VENV="${STUDYON_MOTO_VENV:-$HOME/.cache/studyon/moto-venv}"
MOTO_VERSION=5.2.5
# Credentials for the loopback moto server only; nothing here talks to AWS.
S3_KEY=studyon-cluster
# Bounds on every wait, in tenths of a second.
READY_WAIT=600   # a node's /readyz (its first start runs the migrations)
STOP_WAIT=150    # a node's exit after SIGTERM (it promises 10 s)

say() { printf '==> %s\n' "$*"; }
die() {
  printf 'cluster.sh: %s\n' "$*" >&2
  exit 1
}
usage() { sed -n '2,/^set -euo/{/^#/{s/^# \{0,1\}//;p;};}' "$0"; }

# ---------------------------------------------------------------------------------------
# Processes: each has a pid file in the run dir and a marker its command line must contain,
# so a stale pid file (reboot, pid reuse) never gets an unrelated process signalled.

node_http() { echo "127.0.0.1:$((LB_PORT + $1))"; }
node_cluster() { echo "127.0.0.1:$((7100 + $1))"; }
node_metrics() { echo "127.0.0.1:$((9100 + $1))"; }

marker() {
  case "$1" in
    node*) echo "--data-dir $RUN_DIR/$1 " ;;
    haproxy) echo "$RUN_DIR/haproxy.cfg" ;;
    moto) echo "moto_server" ;;
    *) die "no process called $1" ;;
  esac
}

# Prints NAME's pid when its pid file names a live process that is NAME; else fails.
pid_of() {
  local f="$RUN_DIR/$1.pid" pid cmdline
  [ -f "$f" ] || return 1
  pid="$(<"$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  # A zombie's command line is empty, so a dead process that is not yet reaped fails too.
  cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
  [[ "$cmdline" == *"$(marker "$1")"* ]] || return 1
  echo "$pid"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

need_free_port() {
  if port_busy "$1"; then die "127.0.0.1:$1 is taken ($2 needs it); stop what listens there"; fi
}

# Waits (bounded) until NAME's process is gone.
wait_gone() {
  local name="$1" tenths="$2"
  for _ in $(seq 1 "$tenths"); do
    pid_of "$name" >/dev/null || return 0
    sleep 0.1
  done
  return 1
}

# SIGTERM, then SIGKILL if it outlives the bound.
stop_proc() {
  local name="$1" tenths="$2" pid
  pid="$(pid_of "$name")" || {
    rm -f "$RUN_DIR/$name.pid"
    return 0
  }
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$name" "$tenths"; then
    echo "$name (pid $pid) still running after $((tenths / 10)) s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$name" 50 || die "$name (pid $pid) survived SIGKILL"
  fi
  rm -f "$RUN_DIR/$name.pid"
}

node_count() {
  local n="${CLUSTER_SH_NODES:-}"
  if [ -z "$n" ] && [ -f "$RUN_DIR/nodes" ]; then n="$(<"$RUN_DIR/nodes")"; fi
  n="${n:-3}"
  [[ "$n" =~ ^[1-9]$ ]] || die "CLUSTER_SH_NODES must be 1-9 (ports 8081-8089), not '$n'"
  echo "$n"
}

# NODE argument (2 or node2) → 2, checked against the cluster's size.
node_index() {
  local arg="${1:-}" n
  n="$(node_count)"
  arg="${arg#node}"
  if ! [[ "$arg" =~ ^[1-9]$ ]] || [ "$arg" -gt "$n" ]; then die "NODE must be 1-$n or node1-node$n"; fi
  echo "$arg"
}

any_running() {
  local i
  pid_of haproxy >/dev/null && return 0
  pid_of moto >/dev/null && return 0
  for i in $(seq 1 9); do pid_of "node$i" >/dev/null && return 0; done
  return 1
}

# ---------------------------------------------------------------------------------------
# HAProxy: its admin socket (for drain and status) through Python, which moto needs anyway.

lb_cmd() {
  python3 - "$RUN_DIR/haproxy.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
out = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    out += chunk
sys.stdout.write(out.decode(errors="replace"))
PY
}

# The config, for `nodes` servers. Reasoning behind each choice is in the comments it
# carries, so they travel with the generated file.
haproxy_cfg() {
  local n="$1" i fds maxconn
  # Two descriptors per proxied connection; stay inside the limit HAProxy may not raise.
  fds="$(ulimit -Hn)"
  [[ "$fds" =~ ^[0-9]+$ ]] || fds=1048576
  maxconn=$(((fds - 200) / 2))
  [ "$maxconn" -le 20000 ] || maxconn=20000
  cat <<EOF
# Generated by ops/cluster.sh for a local StudyOn cluster; rewritten on every \`up\`.
global
    # Logs (requests, health-check state changes) go to haproxy.log in the run dir.
    log stdout format raw local0 info
    maxconn $maxconn
    # Admin socket: \`ops/cluster.sh drain\` sets a server to drain, \`status\` reads it.
    stats socket "$RUN_DIR/haproxy.sock" mode 600 level admin
    stats timeout 10s

defaults
    mode http
    log global
    option httplog
    option dontlognull
    maxconn $maxconn
    # Nodes take the client's address for their per-address limits from X-Forwarded-For,
    # and only when it comes from --trusted-proxies (127.0.0.1/32 here): the rightmost hop
    # that is not a trusted proxy. HAProxy appends the address it sees.
    option forwardfor
    # Not \`option http-server-close\`: HAProxy 2.x handles every request of a keep-alive
    # connection (X-Forwarded-For included) and reuses idle server connections across
    # clients, so closing the server side after each response would only add a TCP
    # handshake per request. A WebSocket upgrade (101) turns the connection into a tunnel
    # in either mode.
    timeout connect 2s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 5s
    # Inactivity, not duration: an upload must keep 8 KiB/s anyway (--upload-min-rate).
    timeout client 30s
    timeout server 30s
    # After the upgrade this replaces client/server. The server pings every 20 s and closes
    # a socket silent for 40 s (--ws-heartbeat-secs), so a dead peer is found by the
    # server long before this; it only bounds a tunnel both ends forgot.
    timeout tunnel 1h
    timeout client-fin 10s
    timeout server-fin 10s
    # A connect that fails (a killed node: connection refused) is retried on another node.
    # Requests that got no answer, or a 503, are retried too, but only reads: a POST that
    # reached a node may have been done.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response 503

frontend app
    bind 127.0.0.1:$LB_PORT
    # HAProxy is the edge here: an X-Forwarded-For the client sent is dropped before HAProxy
    # adds its own. Kept, it would be believed on loopback, where the browser has the
    # trusted proxy's address.
    http-request del-header X-Forwarded-For
    default_backend nodes

backend nodes
    # No stickiness: any node serves any client (the session is the cookie, actors are
    # found through Redis). leastconn, not roundrobin: sockets are long-lived, so what
    # matters is how many each node holds, and a node that comes back (0 sockets) takes new
    # connections until it has caught up; slowstart spreads that over 5 s.
    balance leastconn
    # METH_GET is GET or HEAD (WebSocket upgrades are GETs).
    http-request disable-l7-retry if !METH_GET
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host 127.0.0.1
    http-check expect status 200
    # /readyz answers 503 while a node drains or cannot reach Postgres: it is out after two
    # failed checks (1 s, then 250 ms apart), and back after two good ones. A refused
    # connection takes it out at once (observe layer4). Sockets already open are left
    # alone when a node is marked down: a node that still runs keeps serving them.
    default-server check inter 1s fastinter 250ms downinter 1s fall 2 rise 2 slowstart 5s observe layer4 error-limit 1 on-error mark-down
EOF
  for i in $(seq 1 "$n"); do
    printf '    server node%s %s\n' "$i" "$(node_http "$i")"
  done
  cat <<EOF

frontend stats
    bind 127.0.0.1:$STATS_PORT
    http-request use-service prometheus-exporter if { path /metrics }
    stats enable
    stats uri /
    stats refresh 2s
EOF
}

# Debian's haproxy, with the package's own service stopped and disabled: only the
# instance this script runs (its own config, loopback) may run.
ensure_haproxy_installed() {
  command -v haproxy >/dev/null && return 0
  say "installing haproxy (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy
  # Under a booted systemd the install starts haproxy.service (stock config); elsewhere the
  # init script starts it unless policy-rc.d forbids starts, as container images usually do.
  # Either way: stop it and keep it from starting at boot.
  if [ -d /run/systemd/system ]; then
    systemctl disable --now haproxy.service
  else
    if [ -f /run/haproxy.pid ]; then /etc/init.d/haproxy stop >/dev/null || true; fi
    if command -v update-rc.d >/dev/null; then update-rc.d haproxy disable >/dev/null 2>&1 || true; fi
  fi
}

# ---------------------------------------------------------------------------------------
# Shared services.

ensure_postgres() {
  if [ -z "${CLUSTER_SH_PG_URL:-}" ] && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    say "starting Postgres"
    local version
    version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | head -n1)"
    [ -n "$version" ] || die "no Postgres cluster under /etc/postgresql (apt-get install postgresql)"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 50); do
      pg_isready -h 127.0.0.1 -p 5432 -q && break
      sleep 0.2
    done
  fi
  psql "$PG_ADMIN_URL" -qAtc 'SELECT 1' >/dev/null || die "Postgres at $PG_ADMIN_URL does not answer"
  if [ "$(psql "$PG_ADMIN_URL" -qAtc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]; then
    say "creating database $DB_NAME"
    psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $DB_NAME"
  fi
}

# The admin URL with the cluster's database in its path.
db_url() {
  python3 - "$PG_ADMIN_URL" "$DB_NAME" <<'PY'
import sys
from urllib.parse import urlsplit, urlunsplit
url = urlsplit(sys.argv[1])
print(urlunsplit(url._replace(path="/" + sys.argv[2])))
PY
}

ensure_redis() {
  if [ -z "${CLUSTER_SH_REDIS_URL:-}" ] && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    say "starting Redis"
    command -v redis-server >/dev/null || die "redis-server is not installed (apt-get install redis-server)"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/studyon.log
    for _ in $(seq 1 50); do
      redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
      sleep 0.2
    done
  fi
  [ "$(redis-cli -u "$REDIS_URL_CLUSTER" ping 2>/dev/null)" = PONG ] ||
    die "Redis at $REDIS_URL_CLUSTER does not answer"
}

ensure_moto() {
  if pid_of moto >/dev/null; then return 0; fi
  local i
  for i in $(seq 1 9); do
    pid_of "node$i" >/dev/null &&
      die "moto is gone while node$i still runs (its objects went with it): ops/cluster.sh down, then up"
  done
  if ! "$MOTO_VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    say "installing moto $MOTO_VERSION into $MOTO_VENV"
    python3 -m venv "$MOTO_VENV"
    "$MOTO_VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  fi
  local port
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  say "starting moto (S3, in memory) on 127.0.0.1:$port"
  setsid "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" </dev/null >"$RUN_DIR/moto.log" 2>&1 &
  echo $! >"$RUN_DIR/moto.pid"
  echo "$port" >"$RUN_DIR/moto.port"
  for _ in $(seq 1 100); do
    curl -sf --max-time 1 "http://127.0.0.1:$port/" >/dev/null && return 0
    pid_of moto >/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$RUN_DIR/moto.log" >&2
  die "moto did not start (log: $RUN_DIR/moto.log)"
}

# ---------------------------------------------------------------------------------------
# Build and nodes.

build() {
  if [ "${CLUSTER_SH_BUILD:-1}" != 0 ]; then
    say "building the web client"
    if [ ! -d web/node_modules ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
      (cd web && npm ci --no-audit --no-fund)
    fi
    (cd web && npm run build)
    if [ -z "${STUDYON_BIN:-}" ]; then
      say "building the server ($PROFILE)"
      if [ "$PROFILE" = release ]; then
        cargo build --release --bin studyon
      else
        cargo build --bin studyon
      fi
    fi
  fi
  local bin="${STUDYON_BIN:-$CARGO_TARGET_DIR/$PROFILE/studyon}"
  [ -x "$bin" ] || die "no server binary at $bin"
  [ -d web/dist ] || echo "warning: web/dist is missing; the nodes serve the API but no web client" >&2
  # Fails early, with a clear message, on a build from before cluster mode.
  "$bin" serve --help 2>/dev/null | grep -- '--cluster-listen' >/dev/null ||
    die "$bin has no --cluster-listen: this build has no cluster mode"
  echo "$bin" >"$RUN_DIR/bin"
}

start_node() {
  local i="$1" bin moto_port args=()
  bin="$(<"$RUN_DIR/bin")"
  moto_port="$(<"$RUN_DIR/moto.port")"
  if [ -s "$RUN_DIR/serve-args" ]; then mapfile -d '' -t args <"$RUN_DIR/serve-args"; fi
  need_free_port "$((LB_PORT + i))" "node$i (HTTP)"
  need_free_port "$((7100 + i))" "node$i (cluster)"
  need_free_port "$((9100 + i))" "node$i (metrics)"
  mkdir -p "$RUN_DIR/node$i"
  printf '\n=== %s: starting node%s\n' "$(date -Is)" "$i" >>"$RUN_DIR/node$i.log"
  # Every per-node value is a flag (flags win over the environment), so a STUDYON_* variable
  # in the caller's environment cannot give two nodes the same address. The origins: the
  # load balancer's, which browsers use, and the node's own for poking at one node directly.
  env -u AWS_SESSION_TOKEN -u AWS_PROFILE AWS_ACCESS_KEY_ID="$S3_KEY" AWS_SECRET_ACCESS_KEY="$S3_KEY" \
    setsid "$bin" serve \
    --listen "$(node_http "$i")" \
    --data-dir "$RUN_DIR/node$i" \
    --database-url "$(<"$RUN_DIR/db-url")" \
    --redis-url "$REDIS_URL_CLUSTER" \
    --redis-prefix "$REDIS_PREFIX" \
    --cluster-listen "$(node_cluster "$i")" \
    --cluster-advertise "$(node_cluster "$i")" \
    --metrics-listen "$(node_metrics "$i")" \
    --public-origin "http://127.0.0.1:$LB_PORT,http://localhost:$LB_PORT,http://$(node_http "$i"),http://localhost:$((LB_PORT + i))" \
    --trusted-proxies 127.0.0.1/32 \
    --web-dir "$ROOT/web/dist" \
    --s3-bucket "$BUCKET" \
    --s3-endpoint "http://127.0.0.1:$moto_port" \
    --s3-region us-east-1 \
    --s3-path-style \
    --video-udp-listen 127.0.0.1:0 \
    "${args[@]}" \
    </dev/null >>"$RUN_DIR/node$i.log" 2>&1 &
  echo $! >"$RUN_DIR/node$i.pid"
}

# Whether PID is a live process (not a zombie). Unlike pid_of, it does not look at the
# command line, which right after the start is still this script's until setsid execs.
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [ "${stat%% *}" != Z ]
}

wait_ready() {
  local i="$1" pid
  pid="$(<"$RUN_DIR/node$i.pid")"
  for _ in $(seq 1 "$READY_WAIT"); do
    curl -sf -o /dev/null --max-time 1 "http://$(node_http "$i")/readyz" && return 0
    alive "$pid" || {
      tail -n 30 "$RUN_DIR/node$i.log" >&2
      die "node$i exited while starting (log: $RUN_DIR/node$i.log)"
    }
    sleep 0.1
  done
  tail -n 30 "$RUN_DIR/node$i.log" >&2
  die "node$i not ready after $((READY_WAIT / 10)) s (log: $RUN_DIR/node$i.log; ops/cluster.sh down stops the rest)"
}

# ---------------------------------------------------------------------------------------
# Commands.

cmd_up() {
  local n i started=()
  n="$(node_count)"
  mkdir -p -- "$(dirname -- "$RUN_DIR")"
  [ -d "$RUN_DIR" ] || mkdir -m 700 -- "$RUN_DIR"
  [ -O "$RUN_DIR" ] || die "$RUN_DIR belongs to someone else; set CLUSTER_SH_DIR"
  if [ -f "$RUN_DIR/nodes" ] && [ "$(<"$RUN_DIR/nodes")" != "$n" ] && any_running; then
    die "the cluster runs with $(<"$RUN_DIR/nodes") nodes; ops/cluster.sh down first to change to $n"
  fi
  touch "$RUN_DIR/.studyon-cluster"
  echo "$n" >"$RUN_DIR/nodes"
  printf '%s\0' "$@" >"$RUN_DIR/serve-args"
  [ $# -gt 0 ] || : >"$RUN_DIR/serve-args"

  # Ports first, so a clash (ops/run.sh on :8080, say) fails before a long build.
  if ! pid_of haproxy >/dev/null; then
    need_free_port "$LB_PORT" "HAProxy"
    need_free_port "$STATS_PORT" "HAProxy stats"
  fi
  for i in $(seq 1 "$n"); do
    if ! pid_of "node$i" >/dev/null; then
      need_free_port "$((LB_PORT + i))" "node$i (HTTP)"
      need_free_port "$((7100 + i))" "node$i (cluster)"
      need_free_port "$((9100 + i))" "node$i (metrics)"
    fi
  done

  say "services: Postgres, Redis"
  ensure_postgres
  db_url >"$RUN_DIR/db-url"
  ensure_redis
  ensure_haproxy_installed
  build
  ensure_moto

  # Room for many sockets per node and through HAProxy (it raises its own limit as root).
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

  # One node first: it runs the migrations and creates the bucket, so the others never race
  # on either.
  for i in $(seq 1 "$n"); do
    pid_of "node$i" >/dev/null && continue
    say "starting node$i on $(node_http "$i")"
    start_node "$i"
    started+=("$i")
    if [ "${#started[@]}" = 1 ]; then wait_ready "$i"; fi
  done
  for i in "${started[@]}"; do wait_ready "$i"; done

  if ! pid_of haproxy >/dev/null; then
    say "starting HAProxy on 127.0.0.1:$LB_PORT"
    haproxy_cfg "$n" >"$RUN_DIR/haproxy.cfg"
    haproxy -c -q -f "$RUN_DIR/haproxy.cfg" || die "HAProxy refused $RUN_DIR/haproxy.cfg"
    printf '\n=== %s: starting haproxy\n' "$(date -Is)" >>"$RUN_DIR/haproxy.log"
    setsid haproxy -db -f "$RUN_DIR/haproxy.cfg" </dev/null >>"$RUN_DIR/haproxy.log" 2>&1 &
    echo $! >"$RUN_DIR/haproxy.pid"
  else
    # Nodes started above may carry a drain left by an earlier `drain`.
    for i in "${started[@]}"; do lb_cmd "set server nodes/node$i state ready" >/dev/null || true; done
  fi
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$LB_PORT/readyz" && break
    pid_of haproxy >/dev/null || break
    sleep 0.1
  done
  curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$LB_PORT/readyz" ||
    die "no answer through HAProxy on :$LB_PORT (log: $RUN_DIR/haproxy.log)"

  summary "$n"
}

summary() {
  local n="$1" i
  cat <<EOF

StudyOn cluster: $n nodes behind HAProxy (run dir $RUN_DIR)
  app              http://127.0.0.1:$LB_PORT   <- open this one
  HAProxy stats    http://127.0.0.1:$STATS_PORT/   (Prometheus: /metrics)
EOF
  for i in $(seq 1 "$n"); do
    printf '  node%s            http://%s   cluster %s   metrics http://%s/metrics   log %s\n' \
      "$i" "$(node_http "$i")" "$(node_cluster "$i")" "$(node_metrics "$i")" "$RUN_DIR/node$i.log"
  done
  cat <<EOF
  Postgres         $(<"$RUN_DIR/db-url")
  Redis            $REDIS_URL_CLUSTER  keys $REDIS_PREFIX:*
  S3 (moto)        http://127.0.0.1:$(<"$RUN_DIR/moto.port")  bucket $BUCKET

  ops/cluster.sh status      who is up, sockets per node
  ops/cluster.sh kill 2      SIGKILL node2; its clients reconnect to the others
  ops/cluster.sh drain 3     take node3 out of HAProxy and stop it gracefully
  ops/cluster.sh start 2     bring node2 back
  ops/cluster.sh down        stop everything
EOF
}

# One line per node: process, /readyz, sockets and owned actor keys (from its /metrics),
# and HAProxy's view (status, current sessions).
cmd_status() {
  local n i pid ready metrics sockets owned lb="" lb_line lb_state lb_cur
  n="$(node_count)"
  [ -d "$RUN_DIR" ] || {
    echo "no cluster (no $RUN_DIR)"
    return 0
  }
  if pid="$(pid_of haproxy)"; then
    echo "haproxy  pid $pid   http://127.0.0.1:$LB_PORT   stats http://127.0.0.1:$STATS_PORT/"
    lb="$(lb_cmd 'show stat' 2>/dev/null || true)"
  else
    echo "haproxy  stopped"
  fi
  if pid="$(pid_of moto)"; then
    echo "moto     pid $pid   http://127.0.0.1:$(<"$RUN_DIR/moto.port")"
  else
    echo "moto     stopped"
  fi
  # The cluster as Redis sees it: node heartbeats and actor leases (a dead node's lapse
  # within 3 s).
  if redis-cli -u "$REDIS_URL_CLUSTER" ping >/dev/null 2>&1; then
    echo "redis    $(redis-cli -u "$REDIS_URL_CLUSTER" --scan --pattern "$REDIS_PREFIX:node:*" | wc -l) nodes announced," \
      "$(redis-cli -u "$REDIS_URL_CLUSTER" --scan --pattern "$REDIS_PREFIX:lease:*" | wc -l) actor leases"
  else
    echo "redis    not answering at $REDIS_URL_CLUSTER"
  fi
  printf '%-6s %-8s %-16s %-7s %-8s %-6s %-14s %s\n' node pid http readyz sockets keys haproxy lb-sessions
  for i in $(seq 1 "$n"); do
    pid="$(pid_of "node$i" || echo -)"
    ready="$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$(node_http "$i")/readyz" || true)"
    [ "$ready" != 000 ] && [ -n "$ready" ] || ready=-
    sockets=-
    owned=-
    if metrics="$(curl -sf --max-time 1 "http://$(node_metrics "$i")/metrics")"; then
      sockets="$(awk '$1 == "studyon_ws_connections" { v = $2 } END { print v == "" ? 0 : v }' <<<"$metrics")"
      owned="$(awk '$1 ~ /^studyon_cluster_owned_keys/ { s += $2; seen = 1 } END { print seen ? s : "-" }' <<<"$metrics")"
    fi
    lb_state=-
    lb_cur=-
    if [ -n "$lb" ]; then
      # show stat is CSV: field 2 svname, 5 scur (current sessions), 18 status.
      lb_line="$(awk -F, -v s="node$i" '$1 == "nodes" && $2 == s { print $18 " " $5 }' <<<"$lb")"
      if [ -n "$lb_line" ]; then
        lb_state="${lb_line% *}"
        lb_cur="${lb_line##* }"
      fi
    fi
    printf '%-6s %-8s %-16s %-7s %-8s %-6s %-14s %s\n' "node$i" "$pid" "$(node_http "$i")" "$ready" \
      "$sockets" "$owned" "$lb_state" "$lb_cur"
  done
}

cmd_kill() {
  local i pid
  i="$(node_index "${1:-}")"
  pid="$(pid_of "node$i")" || die "node$i is not running"
  kill -KILL "$pid"
  wait_gone "node$i" 50 || die "node$i (pid $pid) survived SIGKILL"
  rm -f "$RUN_DIR/node$i.pid"
  printf '=== %s: SIGKILL from ops/cluster.sh\n' "$(date -Is)" >>"$RUN_DIR/node$i.log"
  cat <<EOF
node$i (pid $pid) killed with SIGKILL. Its sockets are cut (clients see 1006 and reconnect
through HAProxy, which retries refused connects on other nodes and marks node$i down); its
actors come back on other nodes on next use once its leases lapse (3 s).
Watch: ops/cluster.sh status    Bring it back: ops/cluster.sh start $i
EOF
}

cmd_drain() {
  local i pid lb=1 t0 t1
  i="$(node_index "${1:-}")"
  [ "${2:-}" = --no-lb ] && lb=0
  pid="$(pid_of "node$i")" || die "node$i is not running"
  if [ "$lb" = 1 ] && pid_of haproxy >/dev/null; then
    # As a deployment's load balancer controller would: no new connections go to the node
    # before it starts closing sockets, so clients reconnecting at once (250-500 ms) do not
    # land on it again.
    lb_cmd "set server nodes/node$i state drain" >/dev/null
    echo "HAProxy: node$i set to drain (no new connections)"
  fi
  t0="$(date +%s%N)"
  kill -TERM "$pid"
  echo "node$i (pid $pid): SIGTERM; waiting for it to close its sockets (1001) and exit"
  if ! wait_gone "node$i" "$STOP_WAIT"; then
    die "node$i (pid $pid) still running after $((STOP_WAIT / 10)) s (ops/cluster.sh kill $i ends it)"
  fi
  t1="$(date +%s%N)"
  rm -f "$RUN_DIR/node$i.pid"
  echo "node$i exited after $(((t1 - t0) / 1000000)) ms. Bring it back: ops/cluster.sh start $i"
}

cmd_start() {
  local i
  i="$(node_index "${1:-}")"
  if [ ! -f "$RUN_DIR/bin" ] || [ ! -f "$RUN_DIR/db-url" ]; then die "no cluster set up yet: ops/cluster.sh up"; fi
  pid_of moto >/dev/null || die "moto is not running: ops/cluster.sh up"
  if pid_of "node$i" >/dev/null; then
    echo "node$i already runs"
  else
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    start_node "$i"
    wait_ready "$i"
    echo "node$i ready on http://$(node_http "$i")"
  fi
  # Back into rotation (a `drain` left it set to drain); HAProxy sends it new connections
  # once two health checks pass.
  if pid_of haproxy >/dev/null; then
    lb_cmd "set server nodes/node$i state ready" >/dev/null || true
    echo "HAProxy: node$i set to ready"
  fi
}

cmd_logs() {
  local what="${1:-node1}"
  case "$what" in
    haproxy | moto) ;;
    *) what="node$(node_index "$what")" ;;
  esac
  [ -f "$RUN_DIR/$what.log" ] || die "no log $RUN_DIR/$what.log"
  tail -n 100 "$RUN_DIR/$what.log"
  echo "(follow it: tail -F $RUN_DIR/$what.log)"
}

cmd_down() {
  local i pid
  [ -d "$RUN_DIR" ] || {
    echo "nothing to stop (no $RUN_DIR)"
    return 0
  }
  # Nodes first, in parallel, so each flushes its writes while Postgres, Redis and S3 are
  # still there; then the load balancer; moto last.
  for i in $(seq 1 9); do
    if pid="$(pid_of "node$i")"; then
      echo "node$i (pid $pid): SIGTERM"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for i in $(seq 1 9); do stop_proc "node$i" "$STOP_WAIT"; done
  stop_proc haproxy 50
  stop_proc moto 50
  echo "haproxy, moto: stopped"
  echo "stopped. Postgres and Redis are left running; database $DB_NAME is kept (ops/cluster.sh reset drops it)."
}

cmd_reset() {
  any_running && die "the cluster is running: ops/cluster.sh down first"
  say "dropping database $DB_NAME"
  psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)"
  if [ -f "$RUN_DIR/.studyon-cluster" ]; then
    say "removing $RUN_DIR"
    rm -rf -- "$RUN_DIR"
  fi
}

cmd="${1:-up}"
[ $# -eq 0 ] || shift
case "$cmd" in
  up)
    [ "${1:-}" != -- ] || shift
    cmd_up "$@"
    ;;
  --) cmd_up "$@" ;;
  status) cmd_status ;;
  kill) cmd_kill "$@" ;;
  drain) cmd_drain "$@" ;;
  start) cmd_start "$@" ;;
  logs) cmd_logs "$@" ;;
  down) cmd_down ;;
  reset) cmd_reset ;;
  haproxy-config) haproxy_cfg "$(node_count)" ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
esac
