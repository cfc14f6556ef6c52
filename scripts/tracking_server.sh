#!/usr/bin/env bash
# A shared MLflow tracking server as a cluster would run one: PostgreSQL (Debian's packages) as
# the backend store, a file artifact root served by the tracking server, `mlflow server` on a
# loopback port. Jobs on every node log to it with mlflow.tracking_uri=http://<host>:<port>.
#
#   bash scripts/tracking_server.sh up        install PostgreSQL if missing, start it and the server
#   bash scripts/tracking_server.sh down      stop the server and PostgreSQL (the data stays)
#   bash scripts/tracking_server.sh status    what runs (exit 1 unless both run and /health answers)
#   bash scripts/tracking_server.sh restart   stop and start the tracking server (TERM), the database stays up
#   bash scripts/tracking_server.sh kill      SIGKILL the tracking server, as a crash would (then: up)
#   bash scripts/tracking_server.sh reset     down + delete the data (runs, metrics, artifacts)
#   bash scripts/tracking_server.sh uri       print the tracking URI
#
# Settings (environment):
#   TRACKING_DIR      database cluster, artifacts, pid files and logs (default /var/lib/al-tracking
#                     as root, else ~/.al-tracking); as root, PostgreSQL runs as user postgres, which
#                     must be able to enter this folder
#   TRACKING_PORT     the tracking server's port on 127.0.0.1 (default 5050)
#   TRACKING_PG_PORT  PostgreSQL's port on 127.0.0.1 (default 5433, beside a system one on 5432)
#   TRACKING_HOST     the address the server binds (default 127.0.0.1; 0.0.0.0 for other nodes)
#   TRACKING_WORKERS  the server's worker processes (default 4)
#   TRACKING_ACCESS_LOG=1  log every request in mlflow-server.log (off: a loaded server writes a line per round)
#   MLFLOW            the mlflow command (default: this project's .venv/bin/mlflow, else PATH's);
#                     its environment needs psycopg2 (`pip install "al-experiments[server]"`)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [[ $(id -u) == 0 ]]; then DEFAULT_DIR=/var/lib/al-tracking; else DEFAULT_DIR=$HOME/.al-tracking; fi
DIR=${TRACKING_DIR:-$DEFAULT_DIR}
PORT=${TRACKING_PORT:-5050}
PG_PORT=${TRACKING_PG_PORT:-5433}
HOST=${TRACKING_HOST:-127.0.0.1}
WORKERS=${TRACKING_WORKERS:-4}
if [[ -n ${MLFLOW:-} ]]; then :; elif [[ -x $ROOT/.venv/bin/mlflow ]]; then MLFLOW=$ROOT/.venv/bin/mlflow; else MLFLOW=$(command -v mlflow || echo mlflow); fi
PGDATA=$DIR/postgres
SERVER_PID=$DIR/mlflow-server.pid
URI=http://127.0.0.1:$PORT
DB_URI=postgresql://mlflow@127.0.0.1:$PG_PORT/mlflow

log() { echo "tracking_server: $*" >&2; }

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do [[ -x $dir/pg_ctl ]] && { echo "$dir"; return 0; }; done
  return 1
}

# PostgreSQL refuses to run as root: as root it runs as the postgres user of Debian's package.
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

install_postgres() {
  pg_bin >/dev/null && return 0
  if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    log "PostgreSQL is not installed; install Debian's postgresql package (as root: apt-get install postgresql) and run this again"
    exit 1
  fi
  log "installing postgresql"
  # The package's postinst tries to start its own cluster; without systemd that is refused, harmlessly.
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql
}

pg_running() { [[ -f $PGDATA/postmaster.pid ]] && as_pg "$(pg_bin)/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

start_postgres() {
  local bin; bin=$(pg_bin)
  mkdir -p "$DIR"
  if [[ $(id -u) == 0 ]]; then
    install -d -o postgres -g postgres -m 700 "$PGDATA"
    if ! runuser -u postgres -- test -x "$DIR"; then
      log "user postgres cannot enter $DIR; choose a TRACKING_DIR whose parent folders others may enter"
      exit 1
    fi
  else
    mkdir -p -m 700 "$PGDATA"
  fi
  if [[ ! -f $PGDATA/PG_VERSION ]]; then
    # trust on loopback only: the database never listens beyond 127.0.0.1; the tracking server is the gate
    as_pg "$bin/initdb" -D "$PGDATA" -U mlflow --auth=trust --encoding=UTF8 >"$DIR/initdb.log"
    cat >>"$PGDATA/postgresql.conf" <<EOF
# written by al-experiments/scripts/tracking_server.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
EOF
  fi
  if ! pg_running && ! as_pg "$bin/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -o "-p $PG_PORT" -w -t 60 start >/dev/null 2>&1; then
    log "PostgreSQL did not start ($(tail -n 5 "$PGDATA/server.log" | grep -E 'FATAL|ERROR' | tail -n 1 | sed 's/.*\(FATAL\|ERROR\): *//')); if port $PG_PORT is taken, choose another with TRACKING_PG_PORT"
    exit 1
  fi
  as_pg "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U mlflow -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'mlflow'" | grep -q 1 \
    || as_pg "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U mlflow mlflow
}

server_running() { [[ -f $SERVER_PID ]] && kill -0 "$(cat "$SERVER_PID")" 2>/dev/null; }
healthy() { curl -fsS -m 2 "$URI/health" >/dev/null; }

# start_server [upgrade]: with "upgrade", bring the database's schema to this MLflow's first
start_server() {
  server_running && return 0
  if (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    log "port $PORT already answers (another server?); stop it or choose another with TRACKING_PORT"
    exit 1
  fi
  if [[ ${1:-} == upgrade ]]; then
    # in one process: the server's workers would each migrate a fresh database, and race
    "$MLFLOW" db upgrade "$DB_URI" >>"$DIR/mlflow-server.log" 2>&1 \
      || { log "mlflow db upgrade failed; see $DIR/mlflow-server.log (is psycopg2 installed: pip install 'al-experiments[server]'?)"; exit 1; }
  fi
  mkdir -p "$DIR/artifacts"
  # gunicorn, not MLflow's default uvicorn: uvicorn's workers leave Nagle's algorithm on, so each
  # request on a kept-alive connection waits for the client's delayed ACK (44 ms against 1 ms
  # a /health here). TERM lets requests in flight finish (20 s at most).
  local options="--timeout 60 --graceful-timeout 20 --log-level warning"
  [[ ${TRACKING_ACCESS_LOG:-0} == 1 ]] && options+=" --access-logfile -"
  # its own session, so that stopping it stops its workers too
  setsid "$MLFLOW" server --backend-store-uri "$DB_URI" --artifacts-destination "$DIR/artifacts" \
    --host "$HOST" --port "$PORT" --workers "$WORKERS" --gunicorn-opts "$options" \
    </dev/null >>"$DIR/mlflow-server.log" 2>&1 &
  echo $! >"$SERVER_PID"
  until_ok 120 healthy || { log "the tracking server did not answer; see $DIR/mlflow-server.log"; exit 1; }
}

stop_server() {
  local signal=${1:-TERM} pid
  server_running || { rm -f "$SERVER_PID"; return 0; }
  pid=$(cat "$SERVER_PID")
  kill "-$signal" -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$SERVER_PID"
}

up() {
  install_postgres
  start_postgres
  start_server upgrade
  echo "$URI"
}

down() {
  stop_server TERM
  if pg_running; then as_pg "$(pg_bin)/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null; fi
}

status() {
  local ok=0
  if pg_running; then echo "running: postgresql on 127.0.0.1:$PG_PORT ($PGDATA)"; else echo "stopped: postgresql"; ok=1; fi
  if server_running; then echo "running: mlflow server ($(cat "$SERVER_PID")) at $URI"; else echo "stopped: mlflow server"; ok=1; fi
  if ((ok == 0)) && ! healthy; then echo "not answering: $URI/health"; ok=1; fi
  return $ok
}

case "${1:-}" in
  up | down | status) "$1" ;;
  restart) stop_server TERM; start_server ;;
  kill) stop_server KILL ;;
  reset) down; rm -rf "$DIR" ;;
  uri) echo "$URI" ;;
  *) echo "usage: $0 up|down|status|restart|kill|reset|uri" >&2; exit 2 ;;
esac
