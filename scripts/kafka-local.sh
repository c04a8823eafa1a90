#!/usr/bin/env bash
# Run a REAL single-node Kafka broker (KRaft, combined broker+controller) on this
# machine without Docker: the broker jars come from Maven Central (mvn) into a
# cache folder, and the broker runs as a plain background JVM.
#
#   scripts/kafka-local.sh start|stop|status|logs|fetch   (see --help)
#
# Files: scripts/kafka/pom.xml (which jars), scripts/kafka/log4j2.xml (logging),
# scripts/kafka/server.properties.template (broker config).
set -euo pipefail

# ---------------------------------------------------------------- settings --
KAFKA_VERSION_PINNED=4.1.1   # the one place the Kafka version is pinned
LOG4J_VERSION_PINNED=2.24.3  # log4j2 of the Kafka release (2.24.3 <-> Kafka 4.1)

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd -- "$SCRIPT_DIR/.." && pwd)
KAFKA_CONF_DIR=$SCRIPT_DIR/kafka
POM=$KAFKA_CONF_DIR/pom.xml
LOG4J_CONF=$KAFKA_CONF_DIR/log4j2.xml
PROPS_TEMPLATE=$KAFKA_CONF_DIR/server.properties.template

HOST=127.0.0.1  # listen on loopback only
VERSION=${KAFKA_LOCAL_VERSION:-$KAFKA_VERSION_PINNED}
LOG4J_VERSION=${KAFKA_LOCAL_LOG4J_VERSION:-$LOG4J_VERSION_PINNED}
PORT=${KAFKA_LOCAL_PORT:-9092}
CONTROLLER_PORT=${KAFKA_LOCAL_CONTROLLER_PORT:-9093}
STATE_DIR=${KAFKA_LOCAL_STATE_DIR:-$REPO_DIR/.kafka-local/broker-$PORT}
HEAP=${KAFKA_LOCAL_HEAP:-512m}
CACHE_DIR=${KAFKA_LOCAL_CACHE:-$HOME/.cache/dispatch-kafka/$VERSION}
START_TIMEOUT=${KAFKA_LOCAL_START_TIMEOUT:-90}
STOP_TIMEOUT=${KAFKA_LOCAL_STOP_TIMEOUT:-30}
EXTRA_JAVA_OPTS=${KAFKA_LOCAL_JAVA_OPTS:-}
EXTRA_PROPERTIES=${KAFKA_LOCAL_EXTRA_PROPERTIES:-}
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
# Absolute paths: the pid check matches the broker's command line, and the
# commands may run from different working directories.
[[ $STATE_DIR == /* ]] || STATE_DIR=$PWD/$STATE_DIR
[[ $CACHE_DIR == /* ]] || CACHE_DIR=$PWD/$CACHE_DIR

LIBS_DIR=$CACHE_DIR/libs
LIBS_MARKER=$CACHE_DIR/libs.complete
DATA_DIR=$STATE_DIR/data
LOG_DIR=$STATE_DIR/logs
PID_FILE=$STATE_DIR/kafka.pid
PROPS_FILE=$STATE_DIR/server.properties
SERVER_LOG=$LOG_DIR/server.log   # log4j2 output
OUT_LOG=$LOG_DIR/kafka.out       # JVM stdout/stderr (crashes before logging starts)

PROG=$(basename -- "$0")

usage() {
  cat <<EOF
Usage: $PROG <command> [options]

Run a real single-node Kafka $VERSION broker (KRaft, broker+controller in one
JVM) on $HOST without Docker. Jars come from Maven Central via mvn.

Commands:
  fetch            Download the broker jars into the cache (idempotent; no-op
                   when already complete).
  start            Fetch if needed, write server.properties, format the storage
                   on first use, start the broker in the background and wait
                   until it accepts connections (at most ${START_TIMEOUT}s). No-op if
                   already running. Prints the bootstrap address.
  stop [--wipe]    SIGTERM the broker (its own pid from the pid file), wait up to
                   ${STOP_TIMEOUT}s, then SIGKILL it. No-op if not running.
                   --wipe (or KAFKA_LOCAL_WIPE=1) also deletes the data dir.
  status           Exit 0 and print pid/address if running, exit 1 otherwise.
  logs [-f] [-n N] Show the last N (default 100) lines of the broker log;
                   -f follows it.
  -h, --help       This help.

Environment (current value):
  KAFKA_LOCAL_PORT             client port               ($PORT)
  KAFKA_LOCAL_CONTROLLER_PORT  KRaft controller port     ($CONTROLLER_PORT)
  KAFKA_LOCAL_STATE_DIR        data, pid file and logs   ($STATE_DIR)
  KAFKA_LOCAL_HEAP             max JVM heap              ($HEAP)
  KAFKA_LOCAL_VERSION          Kafka version             ($VERSION)
  KAFKA_LOCAL_LOG4J_VERSION    log4j2 binding version    ($LOG4J_VERSION)
  KAFKA_LOCAL_CACHE            jar cache for the version ($CACHE_DIR)
  KAFKA_LOCAL_START_TIMEOUT    seconds to wait for ready ($START_TIMEOUT)
  KAFKA_LOCAL_STOP_TIMEOUT     seconds before SIGKILL    ($STOP_TIMEOUT)
  KAFKA_LOCAL_JAVA_OPTS        extra JVM options
  KAFKA_LOCAL_EXTRA_PROPERTIES file appended to server.properties (overrides)
  KAFKA_LOCAL_WIPE=1           make 'stop' delete the data dir
  JAVA_HOME                    Java 17+ to use (default: java on PATH)

Every setting is keyed off these variables, so a second broker only needs its
own KAFKA_LOCAL_PORT / KAFKA_LOCAL_CONTROLLER_PORT (the default state dir
follows the port), e.g.:
  KAFKA_LOCAL_PORT=19092 KAFKA_LOCAL_CONTROLLER_PORT=19093 $PROG start
EOF
}

say() { printf 'kafka-local: %s\n' "$*"; }
warn() { printf 'kafka-local: %s\n' "$*" >&2; }
die() { warn "error: $*"; exit 1; }

now() {  # seconds since the epoch, with fractions where date supports %N
  local t
  t=$(date +%s.%N)
  [[ $t == *N ]] && t=$(date +%s)
  printf '%s\n' "$t"
}
elapsed_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

validate_settings() {
  local v
  for v in PORT CONTROLLER_PORT START_TIMEOUT STOP_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "KAFKA_LOCAL_$v must be a number, got '${!v}'"
  done
  [[ $PORT != "$CONTROLLER_PORT" ]] || die "KAFKA_LOCAL_PORT and KAFKA_LOCAL_CONTROLLER_PORT must differ"
  [[ $HEAP =~ ^[0-9]+[kKmMgG]?$ ]] || die "KAFKA_LOCAL_HEAP must look like 512m, got '$HEAP'"
  [[ -n $STATE_DIR && $STATE_DIR != / ]] || die "bad KAFKA_LOCAL_STATE_DIR '$STATE_DIR'"
}

# take_lock FD FILE: hold an exclusive lock on FILE through file descriptor FD
# (8: jar cache, 9: state dir) until the fd is closed or this script exits.
# The broker JVM is started with both fds closed so it does not inherit them.
take_lock() {
  local fd=$1 lock=$2
  command -v flock >/dev/null 2>&1 || return 0
  mkdir -p -- "$(dirname -- "$lock")"
  eval "exec $fd>\"\$lock\""
  if ! flock -n "$fd"; then
    say "waiting for another $PROG using $(dirname -- "$lock") ..."
    flock -w 600 "$fd" || die "timed out waiting for lock $lock"
  fi
}

port_open() {  # true if something accepts TCP connections on $HOST:$1
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

pid_alive() {  # true if pid $1 exists and is not a zombie
  local pid=$1 stat
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  if [[ -r /proc/$pid/stat ]]; then
    stat=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ ${stat%% *} != Z ]]
  else
    kill -0 "$pid" 2>/dev/null
  fi
}

pid_cmdline() {
  if [[ -r /proc/$1/cmdline ]]; then
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
  else
    ps -p "$1" -o command= 2>/dev/null || true
  fi
}

# True if pid $1 is the broker of THIS state dir (guards against pid reuse).
is_our_broker() {
  pid_alive "$1" || return 1
  local cmd
  cmd=$(pid_cmdline "$1")
  [[ $cmd == *"kafka.Kafka $PROPS_FILE"* ]]
}

read_pid() {  # prints the pid from the pid file, if any
  [[ -f $PID_FILE ]] || return 1
  local pid
  pid=$(tr -dc '0-9' <"$PID_FILE")
  [[ -n $pid ]] || return 1
  printf '%s\n' "$pid"
}

running_pid() {  # prints the pid if our broker process is alive
  local pid
  pid=$(read_pid) || return 1
  is_our_broker "$pid" || return 1
  printf '%s\n' "$pid"
}

check_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found (install Java 17+ or set JAVA_HOME)"
  local ver major
  ver=$("$JAVA" -version 2>&1 | awk -F'"' '/version/ { print $2; exit }')
  major=${ver%%.*}
  [[ $major == 1 ]] && major=$(cut -d. -f2 <<<"$ver")
  [[ $major =~ ^[0-9]+$ ]] || die "cannot read the Java version from '$JAVA -version'"
  (( major >= 17 )) || die "Kafka $VERSION needs Java 17+, found $ver ($JAVA)"
}

# ------------------------------------------------------------------- fetch --
marker_content() {
  local pom_sum
  pom_sum=$(cksum <"$POM" | awk '{ print $1 }')
  printf 'kafka=%s log4j=%s pom-cksum=%s\n' "$VERSION" "$LOG4J_VERSION" "$pom_sum"
}

libs_complete() {
  [[ -f $LIBS_MARKER && -f $LIBS_DIR/kafka_2.13-$VERSION.jar ]] || return 1
  [[ $(cat "$LIBS_MARKER") == "$(marker_content)" ]]
}

fetch_libs() {
  libs_complete && return 0
  take_lock 8 "$CACHE_DIR/.lock"
  if libs_complete; then  # another process fetched while we waited
    exec 8>&-
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found: Maven is needed to fetch the Kafka jars"
  local t0 tmp
  t0=$(now)
  tmp=$CACHE_DIR/libs.tmp.$$
  rm -rf -- "$tmp" "$tmp.mvn.log"
  say "fetching Kafka $VERSION (+ log4j $LOG4J_VERSION binding) into $LIBS_DIR via Maven ..."
  if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" \
      -Dkafka.version="$VERSION" -Dlog4j.version="$LOG4J_VERSION" >"$tmp.mvn.log" 2>&1; then
    cat -- "$tmp.mvn.log" >&2
    rm -rf -- "$tmp" "$tmp.mvn.log"
    die "mvn could not fetch org.apache.kafka:kafka_2.13:$VERSION (is Maven Central reachable?)"
  fi
  local jar
  for jar in "kafka_2.13-$VERSION.jar" "kafka-clients-$VERSION.jar" \
             "log4j-slf4j-impl-$LOG4J_VERSION.jar" "log4j-core-$LOG4J_VERSION.jar"; do
    [[ -f $tmp/$jar ]] || { rm -rf -- "$tmp"; die "fetched jars lack $jar"; }
  done
  # Kafka 4.x logs through SLF4J 1.7; log4j-slf4j-impl only binds to 1.x.
  if ! compgen -G "$tmp/slf4j-api-1.*.jar" >/dev/null; then
    warn "warning: Kafka $VERSION does not use slf4j-api 1.x; the log4j binding in"
    warn "  $POM may not bind (the broker would log nothing)."
  fi
  rm -f -- "$tmp.mvn.log"
  rm -rf -- "$LIBS_DIR"
  mv -- "$tmp" "$LIBS_DIR"
  marker_content >"$LIBS_MARKER"
  exec 8>&-
  say "fetched $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars in $(elapsed_since "$t0")s"
}

cmd_fetch() {
  [[ $# -eq 0 ]] || die "fetch takes no arguments"
  if libs_complete; then
    say "Kafka $VERSION jars already cached in $LIBS_DIR"
  else
    fetch_libs
  fi
}

# ------------------------------------------------------------------- start --
render_properties() {
  local esc_data
  esc_data=$(printf '%s' "$DATA_DIR" | sed 's/[\\|&]/\\&/g')
  {
    sed -e "s|@HOST@|$HOST|g" -e "s|@PORT@|$PORT|g" \
        -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" -e "s|@DATA_DIR@|$esc_data|g" \
        "$PROPS_TEMPLATE"
    if [[ -n $EXTRA_PROPERTIES ]]; then
      [[ -f $EXTRA_PROPERTIES ]] || die "KAFKA_LOCAL_EXTRA_PROPERTIES: no such file $EXTRA_PROPERTIES"
      printf '\n# --- from %s\n' "$EXTRA_PROPERTIES"
      cat -- "$EXTRA_PROPERTIES"
    fi
  } >"$PROPS_FILE.tmp"
  mv -- "$PROPS_FILE.tmp" "$PROPS_FILE"
}

java_cp() { printf '%s/*' "$LIBS_DIR"; }

format_storage_if_needed() {
  [[ -f $DATA_DIR/meta.properties ]] && return 0
  local cluster_id
  cluster_id=$("$JAVA" -cp "$(java_cp)" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  [[ $cluster_id =~ ^[A-Za-z0-9_-]{22}$ ]] || die "StorageTool random-uuid printed '$cluster_id'"
  say "formatting storage in $DATA_DIR (cluster id $cluster_id)"
  mkdir -p -- "$DATA_DIR"
  if ! "$JAVA" -cp "$(java_cp)" \
      -Dkafka.logs.dir="$LOG_DIR" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS_FILE" >"$LOG_DIR/format.out" 2>&1; then
    cat -- "$LOG_DIR/format.out" >&2
    die "formatting the storage failed"
  fi
  sed 's/^/kafka-local:   /' "$LOG_DIR/format.out"
}

xms_for_heap() {  # -Xms256m, or the heap itself if that is smaller
  local n=${HEAP%[kKmMgG]} unit=${HEAP: -1} mb
  case $unit in
    g|G) mb=$((n * 1024)) ;;
    m|M) mb=$n ;;
    k|K) mb=$((n / 1024)) ;;
    *) mb=$((n / 1048576)) ;;
  esac
  if (( mb < 256 )); then printf '%s' "$HEAP"; else printf '256m'; fi
}

print_tails() {
  if [[ -s $OUT_LOG ]]; then
    warn "---- last lines of $OUT_LOG"
    tail -n 20 -- "$OUT_LOG" >&2 || true
  fi
  if [[ -s $SERVER_LOG ]]; then
    warn "---- last lines of $SERVER_LOG"
    tail -n 40 -- "$SERVER_LOG" >&2 || true
  fi
}

# Waits until the broker's client port accepts connections. Kafka binds that
# port only when it enables request processing, right before it logs
# "Kafka Server started", so an open port (with our pid alive and the port
# free before the start) means ready.
wait_ready() {
  local pid=$1 t0=$2 deadline
  deadline=$(( $(date +%s) + START_TIMEOUT ))
  while :; do
    if ! pid_alive "$pid"; then
      warn "error: the broker (pid $pid) exited during start-up"
      print_tails
      rm -f -- "$PID_FILE"
      exit 1
    fi
    port_open "$PORT" && return 0
    if (( $(date +%s) >= deadline )); then
      warn "error: the broker (pid $pid) did not accept connections on $HOST:$PORT within ${START_TIMEOUT}s"
      print_tails
      stop_pid "$pid"
      rm -f -- "$PID_FILE"
      exit 1
    fi
    sleep 0.2
  done
}

cmd_start() {
  [[ $# -eq 0 ]] || die "start takes no arguments"
  local t0 pid
  t0=$(now)
  take_lock 9 "$STATE_DIR/.lock"

  if pid=$(running_pid); then
    if port_open "$PORT"; then
      say "already running (pid $pid); bootstrap servers: $HOST:$PORT"
      return 0
    fi
    say "broker pid $pid is alive but not ready yet; waiting ..."
    wait_ready "$pid" "$t0"
    say "ready (pid $pid); bootstrap servers: $HOST:$PORT"
    return 0
  fi
  if [[ -f $PID_FILE ]]; then
    say "removing stale pid file $PID_FILE"
    rm -f -- "$PID_FILE"
  fi

  local p
  for p in "$PORT" "$CONTROLLER_PORT"; do
    if port_open "$p"; then
      die "port $HOST:$p is already in use by another process (not the broker of $STATE_DIR); set KAFKA_LOCAL_PORT / KAFKA_LOCAL_CONTROLLER_PORT"
    fi
  done

  fetch_libs
  check_java
  mkdir -p -- "$STATE_DIR" "$DATA_DIR" "$LOG_DIR"
  render_properties
  format_storage_if_needed

  # Fresh log per start; keep the previous run's log next to it.
  [[ -f $SERVER_LOG ]] && mv -f -- "$SERVER_LOG" "$LOG_DIR/server-previous.log"
  [[ -f $OUT_LOG ]] && mv -f -- "$OUT_LOG" "$LOG_DIR/kafka-previous.out"

  local -a jvm_opts=(
    "-Xms$(xms_for_heap)" "-Xmx$HEAP"
    -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$LOG4J_CONF"
    "-Dkafka.logs.dir=$LOG_DIR"
  )
  if [[ -n $EXTRA_JAVA_OPTS ]]; then
    local -a extra
    read -r -a extra <<<"$EXTRA_JAVA_OPTS"
    jvm_opts+=("${extra[@]}")
  fi

  local t_launch
  t_launch=$(now)
  # setsid: own session, so the broker outlives the calling shell/terminal.
  # The inner shell writes its own pid, then execs (same pid) into the JVM.
  rm -f -- "$PID_FILE"
  # shellcheck disable=SC2016  # $$/$@ are for the inner shell
  setsid bash -c 'echo $$ >"$1"; shift; exec nohup "$@"' kafka-local-launch \
    "$PID_FILE" "$JAVA" "${jvm_opts[@]}" -cp "$(java_cp)" kafka.Kafka "$PROPS_FILE" \
    </dev/null >"$OUT_LOG" 2>&1 8>&- 9>&- &

  local _
  for _ in $(seq 1 50); do
    pid=$(read_pid) && break
    sleep 0.1
  done
  [[ -n ${pid:-} ]] || { print_tails; die "the broker did not write its pid file $PID_FILE"; }
  say "started broker pid $pid (Kafka $VERSION, state dir $STATE_DIR); waiting for $HOST:$PORT ..."

  wait_ready "$pid" "$t0"
  say "ready in $(elapsed_since "$t_launch")s (total $(elapsed_since "$t0")s); bootstrap servers: $HOST:$PORT"
}

# -------------------------------------------------------------------- stop --
stop_pid() {  # SIGTERM, bounded wait, then SIGKILL -- only this one pid
  local pid=$1 polls=0
  kill -TERM "$pid" 2>/dev/null || true
  while pid_alive "$pid"; do
    if (( polls++ >= STOP_TIMEOUT * 5 )); then
      warn "broker pid $pid still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      local _
      for _ in $(seq 1 50); do pid_alive "$pid" || return 0; sleep 0.1; done
      die "broker pid $pid survived SIGKILL"
    fi
    sleep 0.2
  done
}

cmd_stop() {
  local wipe=${KAFKA_LOCAL_WIPE:-0}
  while [[ $# -gt 0 ]]; do
    case $1 in
      --wipe) wipe=1 ;;
      *) die "unknown option for stop: $1" ;;
    esac
    shift
  done
  [[ -d $STATE_DIR ]] || { say "not running (no state dir $STATE_DIR)"; return 0; }
  take_lock 9 "$STATE_DIR/.lock"

  local pid t0
  if pid=$(running_pid); then
    t0=$(now)
    say "stopping broker pid $pid ..."
    stop_pid "$pid"
    rm -f -- "$PID_FILE"
    say "stopped in $(elapsed_since "$t0")s"
  else
    if pid=$(read_pid); then
      say "not running (stale pid file for pid $pid removed)"
    else
      say "not running"
    fi
    rm -f -- "$PID_FILE"
  fi

  if [[ $wipe == 1 ]]; then
    rm -rf -- "$DATA_DIR"
    say "wiped data dir $DATA_DIR"
  fi
}

# ------------------------------------------------------------------ status --
cmd_status() {
  [[ $# -eq 0 ]] || die "status takes no arguments"
  local pid
  if pid=$(running_pid); then
    if port_open "$PORT"; then
      say "running: pid $pid, bootstrap servers $HOST:$PORT, controller $HOST:$CONTROLLER_PORT, state dir $STATE_DIR"
      return 0
    fi
    say "not ready: pid $pid is alive but $HOST:$PORT does not accept connections (starting or stopping?)"
    return 1
  fi
  say "not running (port $PORT, state dir $STATE_DIR)"
  return 1
}

# -------------------------------------------------------------------- logs --
cmd_logs() {
  local follow=0 lines=100
  while [[ $# -gt 0 ]]; do
    case $1 in
      -f|--follow) follow=1 ;;
      -n) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || die "-n needs a number"; lines=$2; shift ;;
      *) die "unknown option for logs: $1" ;;
    esac
    shift
  done
  local log=$SERVER_LOG
  [[ -f $log ]] || log=$OUT_LOG
  [[ -f $log ]] || die "no broker log yet in $LOG_DIR"
  if [[ $follow == 1 ]]; then
    exec tail -n "$lines" -F -- "$log"
  fi
  tail -n "$lines" -- "$log"
}

# -------------------------------------------------------------------- main --
main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case $cmd in
    -h|--help|help) usage; return 0 ;;
    "") usage >&2; return 2 ;;
  esac
  validate_settings
  case $cmd in
    fetch) cmd_fetch "$@" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    logs) cmd_logs "$@" ;;
    *) warn "unknown command: $cmd"; usage >&2; return 2 ;;
  esac
}

main "$@"
