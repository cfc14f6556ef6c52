#!/usr/bin/env bash
# A shared MLflow tracking server as a cluster would run one, open only to the users it knows:
# PostgreSQL (Debian's packages) as the backend store, reached with a password over loopback
# only; a file artifact root served by the tracking server; `mlflow server` with MLflow's
# basic-auth app (users, per-experiment permissions, nothing visible without a grant), HTTPS on
# its port (gunicorn's TLS), and MLflow's Host-header and CORS checks limited to this host's names.
#
#   bash scripts/tracking_server.sh up        install PostgreSQL if missing, start it and the server
#   bash scripts/tracking_server.sh down      stop the server and PostgreSQL (the data stays)
#   bash scripts/tracking_server.sh status    what runs (exit 1 unless both run and /health answers)
#   bash scripts/tracking_server.sh restart   stop and start the tracking server (TERM), the database stays up
#   bash scripts/tracking_server.sh kill      SIGKILL the tracking server, as a crash would (then: up)
#   bash scripts/tracking_server.sh reset     down + delete the data (runs, metrics, artifacts, users)
#   bash scripts/tracking_server.sh uri       print the tracking URI
#   bash scripts/tracking_server.sh cert      print the path of the certificate clients verify against
#   bash scripts/tracking_server.sh add-user NAME [EXPERIMENT...]
#                                             create a user with a generated password, written to a
#                                             credentials file only the caller can read (its path is
#                                             printed), and let them manage each EXPERIMENT (created
#                                             if missing)
#   bash scripts/tracking_server.sh grant NAME EXPERIMENT [READ|EDIT|MANAGE|NO_PERMISSIONS]
#
# Secrets live in TRACKING_DIR/secrets (mode 700, each file 600): the database password (and the
# libpq password file that carries it), the admin's password and MLflow credentials file, the
# Flask secret key, the users' credentials files. None of them is ever put on a command line.
#
# Settings (environment):
#   TRACKING_DIR      database cluster, artifacts, secrets, certificate, pid files and logs (default
#                     /var/lib/al-tracking as root, else ~/.al-tracking); as root, PostgreSQL runs as
#                     user postgres, which must be able to enter this folder
#   TRACKING_PORT     the tracking server's HTTPS port (default 5050)
#   TRACKING_PG_PORT  PostgreSQL's port on 127.0.0.1 (default 5433, beside a system one on 5432)
#   TRACKING_HOST     the address the server binds (default 127.0.0.1; 0.0.0.0 for other nodes)
#   TRACKING_NAMES    extra names (or addresses) clients use for this host, comma-separated: added to
#                     the certificate made here, the allowed Host headers and CORS origins (this
#                     host's name, full name and addresses, localhost and 127.0.0.1 are always in)
#   TRACKING_TLS_CERT, TRACKING_TLS_KEY
#                     a real certificate (chain) and its key, instead of the self-signed one made here
#   TRACKING_WORKERS  the server's worker processes (default 4)
#   TRACKING_AUTH_CACHE_S  how long a worker trusts a checked password (default 60; MLflow checks
#                     one with scrypt, about 0.3 s of CPU here, which every request would pay; a
#                     changed password reaches every worker within this time)
#   TRACKING_ACCESS_LOG=1  log every request in mlflow-server.log (off: a loaded server writes a line per round)
#   MLFLOW            the mlflow command (default: this project's .venv/bin/mlflow, else PATH's);
#                     its environment needs psycopg2 and Flask-WTF (`pip install "al-experiments[server]"`)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [[ $(id -u) == 0 ]]; then DEFAULT_DIR=/var/lib/al-tracking; else DEFAULT_DIR=$HOME/.al-tracking; fi
DIR=${TRACKING_DIR:-$DEFAULT_DIR}
PORT=${TRACKING_PORT:-5050}
PG_PORT=${TRACKING_PG_PORT:-5433}
HOST=${TRACKING_HOST:-127.0.0.1}
WORKERS=${TRACKING_WORKERS:-4}
AUTH_CACHE_S=${TRACKING_AUTH_CACHE_S:-60}
if [[ -n ${MLFLOW:-} ]]; then :; elif [[ -x $ROOT/.venv/bin/mlflow ]]; then MLFLOW=$ROOT/.venv/bin/mlflow; else MLFLOW=$(command -v mlflow || echo mlflow); fi
PGDATA=$DIR/postgres
SERVER_PID=$DIR/mlflow-server.pid
SECRETS=$DIR/secrets
PGPASSFILE_PATH=$SECRETS/pgpass
CERT=${TRACKING_TLS_CERT:-$DIR/tls/cert.pem}
KEY=${TRACKING_TLS_KEY:-$DIR/tls/key.pem}
if [[ $HOST == 127.0.0.1 || $HOST == localhost ]]; then URI_HOST=127.0.0.1; else URI_HOST=$(hostname -f 2>/dev/null || hostname); fi
URI=https://$URI_HOST:$PORT
# no password in a URI (they show in `ps` and in logs): libpq reads it from PGPASSFILE
DB_URI=postgresql://mlflow@127.0.0.1:$PG_PORT/mlflow
AUTH_DB_URI=postgresql://mlflow@127.0.0.1:$PG_PORT/mlflow_auth

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

# secret FILE: print FILE's content, first making it (32 random bytes, URL-safe) if missing
secret() {
  local file=$SECRETS/$1
  if [[ ! -s $file ]]; then
    (umask 077; head -c 32 /dev/urandom | base64 | tr -d '\n=' | tr '+/' '-_' >"$file.tmp" && mv "$file.tmp" "$file")
  fi
  cat "$file"
}

make_secrets() {
  (umask 077; mkdir -p "$SECRETS" "$SECRETS/users")
  chmod 700 "$SECRETS" "$SECRETS/users"
  local pg_password; pg_password=$(secret pg-password)
  (umask 077; printf '127.0.0.1:%s:*:mlflow:%s\n' "$PG_PORT" "$pg_password" >"$PGPASSFILE_PATH")
  (umask 077; printf '[mlflow]\nmlflow_tracking_username = admin\nmlflow_tracking_password = %s\n' \
    "$(secret admin-password)" >"$SECRETS/admin.credentials")
  secret flask-secret-key >/dev/null
}

psql_mlflow() { PGPASSFILE=$PGPASSFILE_PATH "$(pg_bin)/psql" -h 127.0.0.1 -p "$PG_PORT" -U mlflow "$@"; }

write_pg_hba() {
  # the role mlflow from loopback with its password (SCRAM); nothing else, no Unix socket
  as_pg sh -c "cat >'$PGDATA/pg_hba.conf'" <<EOF
# written by al-experiments/scripts/tracking_server.sh
host all mlflow 127.0.0.1/32 scram-sha-256
EOF
}

start_postgres() {
  local bin; bin=$(pg_bin)
  mkdir -p "$DIR"
  make_secrets
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
    # initdb reads the superuser's password from a file the database's account can read, removed at once
    local pwfile=$DIR/.initdb-password
    (umask 077; cat "$SECRETS/pg-password" >"$pwfile")
    [[ $(id -u) == 0 ]] && chown postgres "$pwfile"
    as_pg "$bin/initdb" -D "$PGDATA" -U mlflow --auth=scram-sha-256 --pwfile="$pwfile" --encoding=UTF8 >"$DIR/initdb.log" \
      || { rm -f "$pwfile"; log "initdb failed; see $DIR/initdb.log"; exit 1; }
    rm -f "$pwfile"
    as_pg sh -c "cat >>'$PGDATA/postgresql.conf'" <<EOF
# written by al-experiments/scripts/tracking_server.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
password_encryption = 'scram-sha-256'
max_connections = 200
EOF
    write_pg_hba
  fi
  if ! pg_running && ! as_pg "$bin/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -o "-p $PG_PORT" -w -t 60 start >/dev/null 2>&1; then
    log "PostgreSQL did not start ($(tail -n 5 "$PGDATA/server.log" | grep -E 'FATAL|ERROR' | tail -n 1 | sed 's/.*\(FATAL\|ERROR\): *//')); if port $PG_PORT is taken, choose another with TRACKING_PG_PORT"
    exit 1
  fi
  if as_pg grep -q '^[^#]*trust' "$PGDATA/pg_hba.conf"; then
    # a cluster made before passwords: give the role its password (over stdin, not argv), then require it
    log "moving PostgreSQL from trust to password (SCRAM) authentication"
    printf "SET password_encryption = 'scram-sha-256';\nALTER ROLE mlflow PASSWORD '%s';\n" "$(cat "$SECRETS/pg-password")" \
      | "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U mlflow -d postgres -q -v ON_ERROR_STOP=1 -f - >/dev/null
    write_pg_hba
    as_pg "$bin/pg_ctl" -D "$PGDATA" reload >/dev/null
  fi
  local db
  for db in mlflow mlflow_auth; do
    psql_mlflow -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
      || psql_mlflow -d postgres -qc "CREATE DATABASE $db" >/dev/null
  done
}

# the names clients reach this host by: in the certificate made here, the allowed Host headers
# and the allowed CORS origins (MLflow's UI posts with its own https origin)
host_names() {
  { echo localhost; echo 127.0.0.1; hostname; hostname -f 2>/dev/null; hostname -I 2>/dev/null | tr ' ' '\n'
    tr ',' '\n' <<<"${TRACKING_NAMES:-}"; } | sed '/^$/d' | sort -u
}

make_certificate() {
  [[ -n ${TRACKING_TLS_CERT:-} ]] && { [[ -r $CERT && -r $KEY ]] || { log "TRACKING_TLS_CERT or TRACKING_TLS_KEY cannot be read"; exit 1; }; return 0; }
  [[ -s $CERT && -s $KEY ]] && return 0
  local sans="" name
  for name in $(host_names); do
    if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then sans+="IP:$name,"; else sans+="DNS:$name,"; fi
  done
  mkdir -p "$DIR/tls"
  (umask 077; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
    -subj "/CN=$(hostname)" -addext "subjectAltName=${sans%,}" -keyout "$KEY.tmp" -out "$CERT.tmp" 2>"$DIR/tls/openssl.log") \
    || { log "openssl could not make the certificate; see $DIR/tls/openssl.log"; exit 1; }
  chmod 644 "$CERT.tmp"
  mv "$KEY.tmp" "$KEY"; mv "$CERT.tmp" "$CERT"
}

write_auth_config() {
  (umask 077; cat >"$SECRETS/basic_auth.ini" <<EOF
# written by al-experiments/scripts/tracking_server.sh: MLflow's basic-auth app
[mlflow]
# nothing is visible to a user without a grant; a user who creates an experiment manages it
default_permission = NO_PERMISSIONS
database_uri = $AUTH_DB_URI
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = $AUTH_CACHE_S
EOF
  )
}

server_running() { [[ -f $SERVER_PID ]] && kill -0 "$(cat "$SERVER_PID")" 2>/dev/null; }
# a liveness probe on loopback that sends nothing secret: it does not check the certificate, whose
# names (a real one's) need not include 127.0.0.1; clients always check it
healthy() { curl -fsSk -m 2 "https://127.0.0.1:$PORT/health" >/dev/null 2>&1; }

joined() { local IFS=,; echo "$*"; }

# start_server [upgrade]: with "upgrade", bring the database's schema to this MLflow's first
start_server() {
  server_running && return 0
  if (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    log "port $PORT already answers (another server?); stop it or choose another with TRACKING_PORT"
    exit 1
  fi
  make_certificate
  write_auth_config
  export PGPASSFILE=$PGPASSFILE_PATH
  if [[ ${1:-} == upgrade ]]; then
    # in one process: the server's workers would each migrate a fresh database, and race
    "$MLFLOW" db upgrade "$DB_URI" >>"$DIR/mlflow-server.log" 2>&1 \
      || { log "mlflow db upgrade failed; see $DIR/mlflow-server.log (is psycopg2 installed: pip install 'al-experiments[server]'?)"; exit 1; }
  fi
  mkdir -p "$DIR/artifacts"
  local hosts=() origins=() name
  for name in $(host_names); do
    [[ $name == *:* ]] && name="[$name]"
    hosts+=("$name:$PORT"); origins+=("https://$name:$PORT")
  done
  # gunicorn, not MLflow's default uvicorn: uvicorn's workers leave Nagle's algorithm on, so each
  # request on a kept-alive connection waits for the client's delayed ACK (44 ms against 1 ms
  # a /health here). `mlflow server` refuses its security options beside --gunicorn-opts, but
  # its Flask app applies the same Host-header, CORS and X-Frame-Options checks under gunicorn,
  # read from the MLFLOW_SERVER_* variables set below (tests/test_tracking_server.py holds it to
  # that); gunicorn terminates TLS itself. Threaded workers keep a connection open between a
  # job's rounds (4.5 s apart in the Gal protocol), so a job pays the TLS handshake once, and a
  # thread checking a password (scrypt, 0.1 s idle, up to 1 s under load, once a minute per
  # worker with the cache) holds up no other request. TERM lets requests in flight finish, 5 s at
  # most: a worker holds its idle kept-alive connections for the whole grace while new ones wait
  # in the listen queue, so every job stalls for as long as the grace lasts.
  local options="--timeout 60 --graceful-timeout 5 --log-level warning --certfile $CERT --keyfile $KEY --worker-class gthread --threads 4 --keep-alive 30"
  [[ ${TRACKING_ACCESS_LOG:-0} == 1 ]] && options+=" --access-logfile -"
  # secrets reach the server through its environment (readable by its owner alone), never argv;
  # its own session, so that stopping it stops its workers too
  (
    export MLFLOW_AUTH_CONFIG_PATH=$SECRETS/basic_auth.ini
    MLFLOW_AUTH_ADMIN_PASSWORD=$(cat "$SECRETS/admin-password"); export MLFLOW_AUTH_ADMIN_PASSWORD
    MLFLOW_FLASK_SERVER_SECRET_KEY=$(cat "$SECRETS/flask-secret-key"); export MLFLOW_FLASK_SERVER_SECRET_KEY
    MLFLOW_SERVER_ALLOWED_HOSTS=$(joined "${hosts[@]}"); export MLFLOW_SERVER_ALLOWED_HOSTS
    MLFLOW_SERVER_CORS_ALLOWED_ORIGINS=$(joined "${origins[@]}"); export MLFLOW_SERVER_CORS_ALLOWED_ORIGINS
    export MLFLOW_SERVER_X_FRAME_OPTIONS=DENY
    # MLflow's GenAI job runner (judges, prompt optimisation) serves nothing of an experiment
    # tracker, and its 8 extra processes would double the CPU each start and restart takes
    export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
    exec setsid "$MLFLOW" server --app-name basic-auth --backend-store-uri "$DB_URI" \
      --artifacts-destination "$DIR/artifacts" --host "$HOST" --port "$PORT" --workers "$WORKERS" \
      --gunicorn-opts "$options" </dev/null >>"$DIR/mlflow-server.log" 2>&1
  ) &
  echo $! >"$SERVER_PID"
  local tries=600
  until healthy; do
    if ! server_running || ((tries-- == 0)); then
      log "the tracking server did not answer ($(tail -n 1 "$DIR/mlflow-server.log")); see $DIR/mlflow-server.log"
      stop_server KILL
      exit 1
    fi
    sleep 0.2
  done
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

# users NAME...: scripts/tracking_users.py as the admin, with the server's certificate
users() {
  server_running && healthy || { log "the tracking server is not running; start it with: $0 up"; exit 1; }
  local python; python=$(dirname "$MLFLOW")/python; [[ -x $python ]] || python=python3
  MLFLOW_TRACKING_SERVER_CERT_PATH=$CERT \
    MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD=$(cat "$SECRETS/admin-password") \
    "$python" "$ROOT/scripts/tracking_users.py" "$URI" "$SECRETS/users" "$@"
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
  reset) stop_server KILL; down; rm -rf "$DIR" ;;  # what is deleted needs no graceful stop
  uri) echo "$URI" ;;
  cert) echo "$CERT" ;;
  add-user | grant) users "$@" ;;
  *) echo "usage: $0 up|down|status|restart|kill|reset|uri|cert|add-user NAME [EXPERIMENT...]|grant NAME EXPERIMENT [PERMISSION]" >&2; exit 2 ;;
esac
