#!/usr/bin/env bash
#
# services.sh - local test services for docshift (MongoDB -> Kafka -> PostgreSQL).
#
# Usage: scripts/services.sh up|down|status|env|restart-pg-restart|restart-mongo
#
#   up      Start (or keep) the real servers as local background processes and wait
#           until each is ready:
#             kafka     Apache Kafka 4.1.1, single KRaft node      127.0.0.1:19092
#             postgres  PostgreSQL 15                             127.0.0.1:15432
#             postgres-restart  a second PostgreSQL 15, only for  127.0.0.1:15433
#                       the test that restarts its server mid-load
#             mongo     mongo-java-server (in memory, oplog on)   127.0.0.1:27117
#           Services that are already running are left alone (after a readiness check); a
#           running mongo is not rebuilt either, but if testenv/mongo changed since it started,
#           up says so (switch with restart-mongo).
#           Installs missing Debian packages (Java 17, Maven, PostgreSQL 15) with apt-get.
#           Writes .services/env and prints it.
#   down    Stop them all (pid files in .services/) and wipe their data.
#   status  Say which services are up (exit status 0 only if all are).
#   env     Print .services/env (export KAFKA_SEEDS=..., KAFKA_CLUSTER_ID=..., PG_URL=...,
#           MONGO_URI=..., PG_RESTART_URL=..., PG_RESTART_CTL=...; KAFKA_CLUSTER_ID is the id
#           the broker's storage was formatted with; PG_RESTART_CTL is the command below).
#   restart-pg-restart  Restart the postgres-restart server (fast stop, start, wait ready).
#   restart-mongo  Stop mongo, rebuild the launcher if testenv/mongo changed, start it again
#           (same address; its in-memory data is lost). Kafka and postgres are not touched.
#           DOCSHIFT_MONGO_HEAP sets its Java heap (default 3g; a 4M-document benchmark
#           needs about 12g).
#
# Typical use:   scripts/services.sh up && . .services/env && go test ./...
#
# Files (relative to the repo root, both git-ignored):
#   .services/          pid files, env file, Kafka data, logs/<name>.log
#   .cache/             Kafka jars (.cache/kafka-4.1.1/libs) and the mongo launcher (.cache/mongo)
# Maven downloads go to ~/.m2 (Maven's default). PostgreSQL's data dir lives under /tmp
# (it must be owned by the non-root user 'docshift-pg', see PG_RUN_DIR below).
# Works from any directory and with CI=true (no prompts, no colours, log tails on failure).
#
set -euo pipefail

# ---------------------------------------------------------------- settings --

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd -P)"
TESTENV_DIR="$REPO_ROOT/testenv"
SERVICES_DIR="$REPO_ROOT/.services"
LOG_DIR="$SERVICES_DIR/logs"
CACHE_DIR="$REPO_ROOT/.cache"
ENV_FILE="$SERVICES_DIR/env"

HOST=127.0.0.1

KAFKA_VERSION=4.1.1
KAFKA_PORT=19092
KAFKA_CONTROLLER_PORT=19093
KAFKA_LIBS="$CACHE_DIR/kafka-$KAFKA_VERSION/libs"
KAFKA_DATA="$SERVICES_DIR/kafka-data"
KAFKA_CONF="$SERVICES_DIR/kafka/server.properties"

PG_PORT=15432
PG_BIN=/usr/lib/postgresql/15/bin
PG_USER=docshift-pg # initdb/postgres refuse to run as root
PG_DB=docshift_test
# The data dir must be reachable by $PG_USER, which a checkout under /root is not,
# so it lives under /tmp, in a directory named after this checkout.
PG_RUN_DIR="${TMPDIR:-/tmp}/docshift-services-$(printf '%s' "$REPO_ROOT" | md5sum | cut -c1-10)"
PG_DATA="$PG_RUN_DIR/pg/data"
PG_SOCKET_DIR="$PG_RUN_DIR/pg"

MONGO_PORT=27117
# The in-memory server's heap: every document and oplog entry lives in it
# (about 1 GiB per million small documents). Raise it for big benchmarks:
#   DOCSHIFT_MONGO_HEAP=12g scripts/services.sh restart-mongo
MONGO_HEAP="${DOCSHIFT_MONGO_HEAP:-3g}"
MONGO_BUILD="$CACHE_DIR/mongo"

READY_TIMEOUT="${SERVICES_READY_TIMEOUT:-90}" # seconds per service

KAFKA_SEEDS="$HOST:$KAFKA_PORT"
PG_URL="postgres://postgres@$HOST:$PG_PORT/$PG_DB?sslmode=disable"
MONGO_URI="mongodb://$HOST:$MONGO_PORT/?directConnection=true"

export DEBIAN_FRONTEND=noninteractive
MVN=(mvn -q -B -Dstyle.color=never)
BUILD_LOG="$LOG_DIR/build.log" # Maven output (cold runs only)

# ----------------------------------------------------------------- helpers --

log() { printf '%s\n' "services: $*" >&2; }
die() {
  printf '%s\n' "services: ERROR: $*" >&2
  exit 1
}
rel() { printf '%s' "${1#"$REPO_ROOT"/}"; } # path relative to the repo root, for messages

now() { date +%s.%N; }
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1fs", e - s }'; }

# port_open PORT: true if something accepts TCP connections on $HOST:PORT.
port_open() {
  # shellcheck disable=SC2016 # $0/$1 belong to the inner shell
  timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$1" 2>/dev/null
}

# pid_alive PIDFILE MARKER: true if the pid in PIDFILE runs a command line containing MARKER
# (guards against a stale pid file whose pid was reused by another process).
pid_alive() {
  local pidfile=$1 marker=$2 pid
  [[ -f $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker"
}

# stop_pid NAME PIDFILE MARKER: SIGTERM, wait up to 30s, then SIGKILL.
stop_pid() {
  local name=$1 pidfile=$2 marker=$3 pid i
  if pid_alive "$pidfile" "$marker"; then
    pid=$(<"$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
      pid_alive "$pidfile" "$marker" || break
      sleep 0.1
    done
    if pid_alive "$pidfile" "$marker"; then
      log "$name did not stop within 30s, killing pid $pid"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
    log "$name: stopped"
  fi
  rm -f "$pidfile"
}

# fail_service NAME LOGFILE MESSAGE: error naming the service and its log (tail shown too).
fail_service() {
  local name=$1 logfile=$2 msg=$3
  {
    printf '%s\n' "services: ERROR: $name $msg"
    printf '%s\n' "services: read $(rel "$logfile") (last lines below)"
    tail -n 25 "$logfile" 2>/dev/null | sed 's/^/    /'
    printf '%s\n' "services: (scripts/services.sh down stops whatever was started)"
  } >&2
  exit 1
}

# wait_ready NAME LOGFILE PIDFILE MARKER CHECK...: poll CHECK until it succeeds, the
# process dies, or READY_TIMEOUT passes.
wait_ready() {
  local name=$1 logfile=$2 pidfile=$3 marker=$4 deadline
  shift 4
  deadline=$((SECONDS + READY_TIMEOUT))
  until "$@"; do
    pid_alive "$pidfile" "$marker" || fail_service "$name" "$logfile" "exited during startup"
    ((SECONDS < deadline)) || fail_service "$name" "$logfile" "not ready after ${READY_TIMEOUT}s"
    sleep 0.2
  done
}

# ensure_port_free NAME PORT: refuse to start if a foreign process holds the port.
ensure_port_free() {
  local name=$1 port=$2
  if port_open "$port"; then
    die "$name: port $HOST:$port is already in use by a process this script did not start" \
      "(another checkout's services? stop them with its scripts/services.sh down)"
  fi
}

# start_background PIDFILE LOGFILE CMD...: start CMD detached (own session), stdout+stderr to
# LOGFILE (previous log kept as LOGFILE.prev), its pid in PIDFILE.
start_background() {
  local pidfile=$1 logfile=$2
  shift 2
  [[ -f $logfile ]] && mv -f "$logfile" "$logfile.prev"
  # shellcheck disable=SC2016 # $$/$0/$@ belong to the inner shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >"$logfile" 2>&1 </dev/null &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s $pidfile ]] && return 0
    sleep 0.05
  done
  die "could not start: $*"
}

# cache_stamp FILE...: a checksum of the inputs of a cached build.
cache_stamp() { cat "$@" | sha256sum | cut -d' ' -f1; }

# ---------------------------------------------------------- system packages --

APT_UPDATED=false
apt_install() {
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "need root (or sudo) to install: $*"
    sudo=(sudo -E)
  fi
  if [[ $APT_UPDATED == false ]]; then
    log "apt-get update"
    "${sudo[@]}" apt-get update -qq
    APT_UPDATED=true
  fi
  log "apt-get install $*"
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

java_cmd() {
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
    printf '%s' "$JAVA_HOME/bin/java"
  else
    printf '%s' java
  fi
}

java_major() {
  local spec
  spec=$("$(java_cmd)" -XshowSettings:properties -version 2>&1 |
    awk -F'= ' '/java.specification.version/ { print $2 }') || true
  printf '%s' "${spec%%.*}"
}

ensure_packages() {
  local missing=() major=""
  if command -v "$(java_cmd)" >/dev/null; then major=$(java_major); fi
  if [[ -z $major || $major -lt 17 ]] || ! command -v javac >/dev/null; then
    missing+=(openjdk-17-jdk-headless)
  fi
  command -v mvn >/dev/null || missing+=(maven)
  [[ -x $PG_BIN/postgres && -x $PG_BIN/initdb && -x $PG_BIN/pg_isready ]] || missing+=(postgresql-15)
  ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
  JAVA=$(java_cmd)
}

# ------------------------------------------------------------------ kafka --

kafka_pidfile() { printf '%s' "$SERVICES_DIR/kafka.pid"; }
KAFKA_MARKER=kafka.Kafka

ensure_kafka_libs() {
  local pom="$TESTENV_DIR/kafka/pom.xml" stamp
  stamp=$(cache_stamp "$pom")
  if [[ -f $KAFKA_LIBS/.stamp && $(<"$KAFKA_LIBS/.stamp") == "$stamp" ]]; then
    return 0
  fi
  log "kafka: resolving Kafka $KAFKA_VERSION jars with Maven (first run only)"
  rm -rf "$KAFKA_LIBS"
  "${MVN[@]}" -f "$pom" dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIBS" \
    >>"$BUILD_LOG" 2>&1 || fail_service kafka "$BUILD_LOG" "jars could not be resolved (mvn, $(rel "$pom"))"
  printf '%s\n' "$stamp" >"$KAFKA_LIBS/.stamp"
}

kafka_started() {
  grep -q 'Kafka Server started' "$LOG_DIR/kafka.log" 2>/dev/null && port_open "$KAFKA_PORT"
}

kafka_running() { pid_alive "$(kafka_pidfile)" "$KAFKA_MARKER"; }

# start_kafka: format a fresh data dir and launch the broker (see wait_kafka).
start_kafka() {
  ensure_port_free kafka "$KAFKA_PORT"
  ensure_port_free kafka "$KAFKA_CONTROLLER_PORT"

  rm -rf "$KAFKA_DATA"
  mkdir -p "$KAFKA_DATA" "$(dirname "$KAFKA_CONF")"
  sed "s#@DATA_DIR@#$KAFKA_DATA#g" "$TESTENV_DIR/kafka/server.properties" >"$KAFKA_CONF"

  # A new random cluster id per format: tests compare the broker's answer with
  # it to prove they talk to this broker and not to a fake. It is passed as
  # --cluster-id=ID: an id that starts with '-' (1 in 64) would otherwise be
  # taken for an option.
  local jvm=(-Dlog4j2.configurationFile="$TESTENV_DIR/kafka/log4j2.properties" -Djava.awt.headless=true)
  local cluster_id
  cluster_id=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  "$JAVA" "${jvm[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format \
    --cluster-id="$cluster_id" --config "$KAFKA_CONF" --ignore-formatted \
    >"$LOG_DIR/kafka-format.log" 2>&1 ||
    fail_service kafka "$LOG_DIR/kafka-format.log" "storage format failed"

  start_background "$(kafka_pidfile)" "$LOG_DIR/kafka.log" \
    "$JAVA" -Xms256m -Xmx768m -XX:+ExitOnOutOfMemoryError "${jvm[@]}" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONF"
}

wait_kafka() {
  wait_ready kafka "$LOG_DIR/kafka.log" "$(kafka_pidfile)" "$KAFKA_MARKER" kafka_started
}

check_running_kafka() {
  wait_ready kafka "$LOG_DIR/kafka.log" "$(kafka_pidfile)" "$KAFKA_MARKER" port_open "$KAFKA_PORT"
}

stop_kafka() {
  stop_pid kafka "$(kafka_pidfile)" "$KAFKA_MARKER"
  rm -rf "$KAFKA_DATA" "$(dirname "$KAFKA_CONF")"
}

# --------------------------------------------------------------- postgres --

pg_pidfile() { printf '%s' "$SERVICES_DIR/postgres.pid"; }
PG_MARKER=postgres

as_pg() { runuser -u "$PG_USER" -- "$@"; }

ensure_pg_user() {
  id -u "$PG_USER" >/dev/null 2>&1 && return 0
  log "postgres: creating system user $PG_USER"
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$PG_USER"
}

pg_ready() { "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -U postgres -d postgres; }

postgres_running() { pid_alive "$(pg_pidfile)" "$PG_MARKER"; }

# start_postgres: initdb + start + create the database (pg_ctl -w waits until it is up).
start_postgres() {
  local logfile="$LOG_DIR/postgres.log"
  ensure_port_free postgres "$PG_PORT"
  ensure_pg_user

  rm -rf "$PG_RUN_DIR/pg"
  mkdir -p "$PG_DATA"
  chmod 755 "$PG_RUN_DIR"
  chown -R "$PG_USER:" "$PG_RUN_DIR/pg"
  chmod 700 "$PG_DATA"
  [[ -f $logfile ]] && mv -f "$logfile" "$logfile.prev"

  # -N: no fsync; C locale + UTF8: deterministic and available everywhere
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C -N \
    >"$logfile" 2>&1 || fail_service postgres "$logfile" "initdb failed"
  cat >>"$PG_DATA/postgresql.conf" <<EOF

# --- docshift test settings (scripts/services.sh) ---
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$PG_SOCKET_DIR'
max_connections = 200
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
log_connections = off
EOF

  # pg_ctl without -l: the server's output goes to pg_ctl's stdout, i.e. our log file (opened
  # here by root, so $PG_USER needs no access to .services/).
  setsid -w runuser -u "$PG_USER" -- "$PG_BIN/pg_ctl" start -D "$PG_DATA" -w -t "$READY_TIMEOUT" \
    >>"$logfile" 2>&1 </dev/null || fail_service postgres "$logfile" "did not start (pg_ctl start failed)"
  head -n 1 "$PG_DATA/postmaster.pid" >"$(pg_pidfile)"
  wait_ready postgres "$logfile" "$(pg_pidfile)" "$PG_MARKER" pg_ready

  "$PG_BIN/psql" -q -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "CREATE DATABASE $PG_DB" >>"$logfile" 2>&1 ||
    fail_service postgres "$logfile" "could not create database $PG_DB"
}

check_running_postgres() {
  wait_ready postgres "$LOG_DIR/postgres.log" "$(pg_pidfile)" "$PG_MARKER" pg_ready
}

stop_postgres() {
  if postgres_running && [[ -f $PG_DATA/postmaster.pid ]]; then
    if as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 30 >/dev/null 2>&1; then
      log "postgres: stopped"
    fi
  fi
  stop_pid postgres "$(pg_pidfile)" "$PG_MARKER" # signals only if pg_ctl failed
  rm -rf "$PG_RUN_DIR"
}

# ------------------------------------------------------- postgres-restart --
# A second PostgreSQL server, only for the test that restarts its server mid-load
# (consumer.TestPostgresRestartMidLoad): restarting the shared one would break the
# tests that run beside it. Same binaries, user and settings; its own port and data dir.

PGR_PORT=15433
PGR_DIR="$PG_RUN_DIR/pg-restart"
PGR_DATA="$PGR_DIR/data"
PG_RESTART_URL="postgres://postgres@$HOST:$PGR_PORT/$PG_DB?sslmode=disable"

pgr_pidfile() { printf '%s' "$SERVICES_DIR/postgres-restart.pid"; }
pgr_logfile() { printf '%s' "$LOG_DIR/postgres-restart.log"; }

pgr_ready() { "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PGR_PORT" -U postgres -d postgres; }

pgr_running() { pid_alive "$(pgr_pidfile)" "$PG_MARKER"; }

# pgr_start_server: start the server on its existing data dir and wait until it answers.
pgr_start_server() {
  setsid -w runuser -u "$PG_USER" -- "$PG_BIN/pg_ctl" start -D "$PGR_DATA" -w -t "$READY_TIMEOUT" \
    >>"$(pgr_logfile)" 2>&1 </dev/null ||
    fail_service postgres-restart "$(pgr_logfile)" "did not start (pg_ctl start failed)"
  head -n 1 "$PGR_DATA/postmaster.pid" >"$(pgr_pidfile)"
  wait_ready postgres-restart "$(pgr_logfile)" "$(pgr_pidfile)" "$PG_MARKER" pgr_ready
}

# start_pg_restart: initdb + start + create the database.
start_pg_restart() {
  local logfile
  logfile=$(pgr_logfile)
  ensure_port_free postgres-restart "$PGR_PORT"
  ensure_pg_user

  rm -rf "$PGR_DIR"
  mkdir -p "$PGR_DATA"
  chmod 755 "$PG_RUN_DIR"
  chown -R "$PG_USER:" "$PGR_DIR"
  chmod 700 "$PGR_DATA"
  [[ -f $logfile ]] && mv -f "$logfile" "$logfile.prev"

  as_pg "$PG_BIN/initdb" -D "$PGR_DATA" -U postgres --auth=trust -E UTF8 --locale=C -N \
    >"$logfile" 2>&1 || fail_service postgres-restart "$logfile" "initdb failed"
  cat >>"$PGR_DATA/postgresql.conf" <<EOF

# --- docshift test settings (scripts/services.sh, restart-test server) ---
listen_addresses = '$HOST'
port = $PGR_PORT
unix_socket_directories = '$PGR_DIR'
max_connections = 100
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
log_connections = off
EOF
  pgr_start_server
  "$PG_BIN/psql" -q -h "$HOST" -p "$PGR_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "CREATE DATABASE $PG_DB" >>"$logfile" 2>&1 ||
    fail_service postgres-restart "$logfile" "could not create database $PG_DB"
}

check_running_pg_restart() {
  wait_ready postgres-restart "$(pgr_logfile)" "$(pgr_pidfile)" "$PG_MARKER" pgr_ready
}

# restart_pg_restart: stop the server (fast: open connections are cut, as in a failover)
# and start it again on the same data.
restart_pg_restart() {
  pgr_running || die "postgres-restart is not running: run scripts/services.sh up"
  as_pg "$PG_BIN/pg_ctl" stop -D "$PGR_DATA" -m fast -w -t 30 >>"$(pgr_logfile)" 2>&1 ||
    fail_service postgres-restart "$(pgr_logfile)" "did not stop (pg_ctl stop failed)"
  pgr_start_server
  log "postgres-restart: restarted (pid $(<"$(pgr_pidfile)"))"
}

stop_pg_restart() {
  if pgr_running && [[ -f $PGR_DATA/postmaster.pid ]]; then
    if as_pg "$PG_BIN/pg_ctl" stop -D "$PGR_DATA" -m fast -w -t 30 >/dev/null 2>&1; then
      log "postgres-restart: stopped"
    fi
  fi
  stop_pid postgres-restart "$(pgr_pidfile)" "$PG_MARKER" # signals only if pg_ctl failed
  rm -rf "$PGR_DIR"
}

# ------------------------------------------------------------------ mongo --

mongo_pidfile() { printf '%s' "$SERVICES_DIR/mongo.pid"; }
MONGO_MARKER=io.docshift.testenv.mongo.Launcher

# The stamp of the build the running server was started from (compared with the sources by up).
mongo_stampfile() { printf '%s' "$SERVICES_DIR/mongo.stamp"; }

# mongo_source_stamp: a checksum of the launcher's sources (pom.xml and src/).
mongo_source_stamp() {
  (cd "$TESTENV_DIR/mongo" && find pom.xml src -type f | LC_ALL=C sort | xargs cat | sha256sum | cut -d' ' -f1)
}

# mongo_stale: true if the running server was built from other sources than testenv/mongo's
# (a server started before mongo.stamp existed was started from the cached build's sources).
mongo_stale() {
  local running
  running=$(cat "$(mongo_stampfile)" 2>/dev/null || cat "$MONGO_BUILD/.stamp" 2>/dev/null || true)
  [[ $running != "$(mongo_source_stamp)" ]]
}

# ensure_mongo_launcher: (re)build .cache/mongo when the sources changed. Only call it while
# mongo is stopped: the build replaces the jars a running server loads its classes from.
ensure_mongo_launcher() {
  local dir="$TESTENV_DIR/mongo" stamp
  stamp=$(mongo_source_stamp)
  if [[ -f $MONGO_BUILD/.stamp && $(<"$MONGO_BUILD/.stamp") == "$stamp" &&
    -f $MONGO_BUILD/build/launcher.jar ]]; then
    return 0
  fi
  log "mongo: building the launcher in $(rel "$dir") with Maven (first run, or its sources changed)"
  rm -rf "$MONGO_BUILD"
  "${MVN[@]}" -f "$dir/pom.xml" package dependency:copy-dependencies \
    -Ddocshift.cache.dir="$MONGO_BUILD" >>"$BUILD_LOG" 2>&1 ||
    fail_service mongo "$BUILD_LOG" "launcher build failed (mvn, $(rel "$dir"))"
  printf '%s\n' "$stamp" >"$MONGO_BUILD/.stamp"
}

# mongo_ping: send an OP_MSG {ping: 1, $db: "admin"} and expect {ok: 1.0} back.
mongo_ping() {
  # header (length 51, requestID 1, responseTo 0, opCode 2013), flags 0, section kind 0, BSON doc
  # shellcheck disable=SC2016 # '$db' is the literal field name
  local msg='\x33\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00\x00\x00\x00\x00\x00'
  # shellcheck disable=SC2016
  msg+='\x1e\x00\x00\x00\x10ping\x00\x01\x00\x00\x00\x02$db\x00\x06\x00\x00\x00admin\x00\x00'
  local reply
  # shellcheck disable=SC2016 # $0/$1 belong to the inner shell
  reply=$(timeout 3 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "$2" >&3
    len=$(head -c 4 <&3 | od -An -tu4 | tr -d " ")
    [[ $len =~ ^[0-9]+$ ]] && head -c $((len - 4)) <&3 | od -An -tx1 -v | tr -d " \n"
  ' "$HOST" "$MONGO_PORT" "$msg" 2>/dev/null) || return 1
  # element: type 0x01 (double) "ok\0" = 1.0
  [[ $reply == *016f6b00000000000000f03f* ]]
}

mongo_ready() { port_open "$MONGO_PORT" && mongo_ping; }

mongo_running() { pid_alive "$(mongo_pidfile)" "$MONGO_MARKER"; }

# start_mongo: launch the in-memory server (see wait_mongo).
start_mongo() {
  ensure_port_free mongo "$MONGO_PORT"
  start_background "$(mongo_pidfile)" "$LOG_DIR/mongo.log" \
    "$JAVA" -Xms256m "-Xmx$MONGO_HEAP" -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -cp "$MONGO_BUILD/build/launcher.jar:$MONGO_BUILD/libs/*" "$MONGO_MARKER" \
    --host "$HOST" --port "$MONGO_PORT"
  cp "$MONGO_BUILD/.stamp" "$(mongo_stampfile)"
}

wait_mongo() {
  wait_ready mongo "$LOG_DIR/mongo.log" "$(mongo_pidfile)" "$MONGO_MARKER" mongo_ready
}

stop_mongo() {
  stop_pid mongo "$(mongo_pidfile)" "$MONGO_MARKER" # in memory: nothing to wipe
  rm -f "$(mongo_stampfile)"
}

# restart_mongo: stop, rebuild if the sources changed, start, wait ready (down + up for mongo only).
restart_mongo() {
  local t
  mkdir -p "$SERVICES_DIR" "$LOG_DIR" "$CACHE_DIR"
  ensure_packages
  stop_mongo
  ensure_mongo_launcher
  t=$(now)
  ensure_port_free mongo "$MONGO_PORT"
  start_mongo
  wait_mongo
  log "mongo: ready on $HOST:$MONGO_PORT (restarted in $(elapsed "$t"), pid $(<"$(mongo_pidfile)"))"
}

# --------------------------------------------------------------- commands --

write_env() {
  local KAFKA_CLUSTER_ID
  KAFKA_CLUSTER_ID=$(sed -n 's/^cluster\.id=//p' "$KAFKA_DATA/meta.properties" 2>/dev/null || true)
  cat >"$ENV_FILE" <<EOF
export KAFKA_SEEDS=$KAFKA_SEEDS
export KAFKA_CLUSTER_ID=$KAFKA_CLUSTER_ID
export PG_URL=$PG_URL
export MONGO_URI=$MONGO_URI
export PG_RESTART_URL=$PG_RESTART_URL
export PG_RESTART_CTL=$(printf '%q' "$SCRIPT_DIR/services.sh restart-pg-restart")
EOF
}

cmd_up() {
  local t0 t kafka_was_up=false mongo_was_up=false pg_was_up=false pgr_was_up=false
  t0=$(now)
  mkdir -p "$SERVICES_DIR" "$LOG_DIR" "$CACHE_DIR"
  ensure_packages
  ensure_kafka_libs # no-op when .cache/ is up to date

  # Refuse early (before starting anything) if a foreign process holds one of our ports.
  if kafka_running; then kafka_was_up=true; else
    ensure_port_free kafka "$KAFKA_PORT"
    ensure_port_free kafka "$KAFKA_CONTROLLER_PORT"
  fi
  if mongo_running; then mongo_was_up=true; else
    ensure_port_free mongo "$MONGO_PORT"
    ensure_mongo_launcher # no-op when .cache/ is up to date; never under a running server
  fi
  if postgres_running; then pg_was_up=true; else ensure_port_free postgres "$PG_PORT"; fi
  if pgr_running; then pgr_was_up=true; else ensure_port_free postgres-restart "$PGR_PORT"; fi

  # Kafka and mongo start in the background while postgres is set up; then wait for both.
  t=$(now)
  if [[ $kafka_was_up == false ]]; then start_kafka; fi
  if [[ $mongo_was_up == false ]]; then start_mongo; fi

  if [[ $pg_was_up == true ]]; then
    check_running_postgres
    log "postgres: already running (pid $(<"$(pg_pidfile)"))"
  else
    start_postgres
    log "postgres: ready on $HOST:$PG_PORT (started in $(elapsed "$t"))"
  fi
  if [[ $pgr_was_up == true ]]; then
    check_running_pg_restart
    log "postgres-restart: already running (pid $(<"$(pgr_pidfile)"))"
  else
    start_pg_restart
    log "postgres-restart: ready on $HOST:$PGR_PORT (started in $(elapsed "$t"))"
  fi

  if [[ $kafka_was_up == true ]]; then
    check_running_kafka
    log "kafka: already running (pid $(<"$(kafka_pidfile)"))"
  else
    wait_kafka
    log "kafka: ready on $KAFKA_SEEDS (started in $(elapsed "$t"))"
  fi

  wait_mongo
  if [[ $mongo_was_up == true ]]; then
    log "mongo: already running (pid $(<"$(mongo_pidfile)"))"
    if mongo_stale; then
      log "mongo: NOTE: it runs an older build: $(rel "$TESTENV_DIR/mongo") changed since it started;"
      log "mongo:   scripts/services.sh restart-mongo switches to the new one (mongo's data is lost)"
    fi
  else
    log "mongo: ready on $HOST:$MONGO_PORT (started in $(elapsed "$t"))"
  fi

  write_env
  log "all services up in $(elapsed "$t0"); environment ($(rel "$ENV_FILE")):"
  cat "$ENV_FILE"
}

cmd_down() {
  stop_kafka
  stop_mongo
  stop_pg_restart # before stop_postgres, which removes their common run dir
  stop_postgres
  rm -f "$ENV_FILE"
  log "all services down"
}

cmd_status() {
  local all=0
  if kafka_running && port_open "$KAFKA_PORT"; then
    echo "kafka:    up   (pid $(<"$(kafka_pidfile)"), $KAFKA_SEEDS)"
  else
    echo "kafka:    down"
    all=1
  fi
  if postgres_running && pg_ready; then
    echo "postgres: up   (pid $(<"$(pg_pidfile)"), $HOST:$PG_PORT, data in $PG_DATA)"
  else
    echo "postgres: down"
    all=1
  fi
  if pgr_running && pgr_ready; then
    echo "postgres-restart: up (pid $(<"$(pgr_pidfile)"), $HOST:$PGR_PORT, for the restart test)"
  else
    echo "postgres-restart: down"
    all=1
  fi
  if mongo_running && mongo_ready; then
    local stale=""
    mongo_stale && stale=", older build: see restart-mongo"
    echo "mongo:    up   (pid $(<"$(mongo_pidfile)"), $HOST:$MONGO_PORT$stale)"
  else
    echo "mongo:    down"
    all=1
  fi
  return "$all"
}

cmd_env() {
  [[ -f $ENV_FILE ]] || die "no $(rel "$ENV_FILE"): run scripts/services.sh up first"
  cat "$ENV_FILE"
}

main() {
  case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  restart-pg-restart) restart_pg_restart ;;
  restart-mongo) restart_mongo ;;
  *)
    sed -n '3,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
  esac
}

main "$@"
