#!/usr/bin/env bash
# Run a REAL single-node Kafka broker (KRaft, combined broker+controller) on this
# machine without Docker: the broker jars come from Maven Central (mvn) into a
# cache folder, and the broker runs as a plain background JVM.
#
#   scripts/kafka-local.sh start|stop|status|logs|fetch   (see --help)
#
# With --brokers 3 it runs a local three-node KRaft cluster instead (for fault
# tests), next to the single broker on its own ports and state dir:
#
#   scripts/kafka-local.sh start|stop|status|logs --brokers 3
#   scripts/kafka-local.sh kill N | restart N            (N = node id 1-3)
#   scripts/kafka-local.sh pause N | resume N            (SIGSTOP / SIGCONT node N)
#
# Cluster design: three JVMs, each a combined broker+controller and a voter of
# one static quorum (controller.quorum.voters lists all three), rather than three
# brokers plus separate controllers: the quorum and the data both survive the
# loss of any one node, six JVMs would not fit two shared cores and 512 MB
# heaps each, and killing a node can take the active controller with it, which
# a fault test wants to see too. The cluster's defaults
# (scripts/kafka/cluster.properties.template) suit three nodes:
#   default.replication.factor=3, min.insync.replicas=2,
#   unclean.leader.election.enable=false,
#   offsets / transaction state / share-coordinator state topics RF 3, min ISR 2;
# failure detection tuned for the fault tests (issue #16): a broker is fenced, and
# its partitions' leaderships move, 3 s after its last heartbeat
# (broker.session.timeout.ms=3000, heartbeats every 500 ms; Kafka's defaults are
# 9000 / 2000 ms, which alone take most of a 10 s recovery goal); the template says why
# not shorter. The quorum's timeouts stay at Kafka's defaults.
# Ports: clients 19092-19094, controllers 19192-19194 (KAFKA_LOCAL_CLUSTER_PORTS,
# KAFKA_LOCAL_CLUSTER_CONTROLLER_PORTS); state in .kafka-local/cluster-<first
# client port>/node-N (KAFKA_LOCAL_CLUSTER_DIR), each node with its own data,
# logs and pid file; cluster.env there records the ports and the cluster id, so
# stop/status/kill/restart/pause/resume find a cluster by its dir alone.
#
# The jar cache also holds Kafka's command-line tools (kafka-tools: the console consumer,
# org.apache.kafka.tools.consumer.ConsoleConsumer, which the fault tests read the log with).
#
# With --secure (start --brokers 3 --secure) the cluster's client listeners take only
# SASL_SSL with SCRAM credentials, and ACLs are enforced (scripts/kafka/secure.sh).
# --bench-listeners SPEC adds open listeners to such a cluster when it is made, for
# scripts/bench_kafka_security.py only (secure.sh says what and why).
#
# Files: scripts/kafka/pom.xml (which jars), scripts/kafka/log4j2.xml (logging),
# scripts/kafka/server.properties.template (broker config),
# scripts/kafka/cluster.properties.template (a cluster node's config),
# scripts/kafka/ClusterCheck.java (the cluster's readiness check),
# scripts/kafka/secure.sh (the secured cluster's CA, credentials and settings).
set -euo pipefail

# ---------------------------------------------------------------- settings --
KAFKA_VERSION_PINNED=4.1.1   # the one place the Kafka version is pinned
LOG4J_VERSION_PINNED=2.24.3  # log4j2 of the Kafka release (2.24.3 <-> Kafka 4.1)

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd -- "$SCRIPT_DIR/.." && pwd)
KAFKA_CONF_DIR=$SCRIPT_DIR/kafka
# shellcheck source=kafka/secure.sh
source "$KAFKA_CONF_DIR/secure.sh"
SECURE=0  # the cluster's client listeners take TLS + SASL/SCRAM, with ACLs (--secure)
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
# The three-node cluster (--brokers 3, kill, restart); checked only when used.
CLUSTER_TEMPLATE=$KAFKA_CONF_DIR/cluster.properties.template
CLUSTER_CHECK_SRC=$KAFKA_CONF_DIR/ClusterCheck.java
CLUSTER_SIZE=3
CLUSTER_PORTS_SPEC=${KAFKA_LOCAL_CLUSTER_PORTS:-19092,19093,19094}
CLUSTER_CONTROLLER_PORTS_SPEC=${KAFKA_LOCAL_CLUSTER_CONTROLLER_PORTS:-19192,19193,19194}
CLUSTER_DIR=${KAFKA_LOCAL_CLUSTER_DIR:-}  # default set by cluster_init (follows the first port)
NODE_ID=    # set per node by select_node (cluster only)
VOTERS=     # controller.quorum.voters of the cluster
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
JVM) on $HOST without Docker, or with --brokers 3 a three-node cluster for
fault tests. Jars come from Maven Central via mvn.

Commands (one broker, the default; --brokers 1 means the same):
  fetch            Download the broker and tools jars into the cache (idempotent;
                   no-op when already complete; a cache fetched for another
                   scripts/kafka/pom.xml is fetched again).
  classpath        Fetch if needed, then print the classpath of the cached jars
                   (broker and tools), e.g. for Kafka's console consumer:
                   java -cp "\$($PROG classpath)" org.apache.kafka.tools.consumer.ConsoleConsumer ...
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

Three-node cluster (each node a combined broker+controller and quorum voter,
node ids 1-3; the cluster is found by its state dir, KAFKA_LOCAL_CLUSTER_DIR):
  start --brokers 3
                   Format all nodes with one cluster id on first use, start the
                   nodes that are not running, wait (at most ${START_TIMEOUT}s) until
                   every node accepts connections, the quorum has a leader and all
                   three brokers are registered and unfenced; the last line on
                   stdout is the bootstrap list, e.g. $HOST:19092,$HOST:19093,$HOST:19094.
  start --brokers 3 --secure
                   The same, secured (at the cluster's first start; a cluster stays
                   as it was made): the client ports take SASL_SSL only (SCRAM-SHA-512),
                   the controller ports TLS with client certificates, and every request
                   is authorized (no ACL: no access; super user admin). A local CA and
                   one credential each for admin, dispatch-api, dispatch-worker,
                   dispatch-simulator and dispatch-operator are made in
                   <cluster dir>/secrets (mode 700), with a <user>.env of DISPATCH_KAFKA_*
                   settings for each. Then, as admin: dispatch topics create and
                   dispatch topics acls --apply (scripts/kafka/secure.sh).
  start --brokers 3 --secure --bench-listeners SPEC
                   Benchmark only, never to run the engine: SPEC, e.g.
                   "PLAINTEXT:p1,p2,p3 SSL:p4,p5,p6 SASL_PLAINTEXT:p7,p8,p9" (any of the
                   three; ports of nodes 1,2,3), adds client listeners of those protocols,
                   and with PLAINTEXT or SSL ANONYMOUS becomes a super user. Taken by the
                   start that makes the cluster and recorded; every later start must
                   repeat the same SPEC. start, restart and status warn about them.
  stop --brokers 3 [--wipe]
                   SIGTERM every node (own pid files), wait up to ${STOP_TIMEOUT}s, then
                   SIGKILL the rest. --wipe also deletes the nodes' data and the
                   cluster id (the next start formats a new cluster).
  status --brokers 3
                   One line per node, then the controller and the registered brokers;
                   exit 0 (last line: the bootstrap list) if all three are up, else 1.
  logs --brokers 3 [--node N] [-f] [-n N]
                   The log of node N (default 1).
  kill N           SIGKILL node N (its own pid file) and wait until it is gone.
  restart N        Start node N again on its state (SIGTERM it first if it runs);
                   wait until it is registered with the nodes that run; the last line
                   is the bootstrap list.
  pause N          SIGSTOP node N (its own pid file): a broker that stalls, its
                   JVM frozen with its connections open, until resume N (or stop
                   and restart, which wake it first). No-op if already paused.
  resume N         SIGCONT node N. No-op if it is not paused.
  Bad input (--brokers 2, kill 7, kill with no cluster, a node not running)
  is a one-line error with exit code 2.

Environment (current value):
  KAFKA_LOCAL_PORT             client port               ($PORT)
  KAFKA_LOCAL_CONTROLLER_PORT  KRaft controller port     ($CONTROLLER_PORT)
  KAFKA_LOCAL_STATE_DIR        data, pid file and logs   ($STATE_DIR)
  KAFKA_LOCAL_HEAP             max JVM heap (per node)   ($HEAP)
  KAFKA_LOCAL_VERSION          Kafka version             ($VERSION)
  KAFKA_LOCAL_LOG4J_VERSION    log4j2 binding version    ($LOG4J_VERSION)
  KAFKA_LOCAL_CACHE            jar cache for the version ($CACHE_DIR)
  KAFKA_LOCAL_START_TIMEOUT    seconds to wait for ready ($START_TIMEOUT)
  KAFKA_LOCAL_STOP_TIMEOUT     seconds before SIGKILL    ($STOP_TIMEOUT)
  KAFKA_LOCAL_JAVA_OPTS        extra JVM options
  KAFKA_LOCAL_EXTRA_PROPERTIES file appended to server.properties (overrides;
                               every cluster node's too)
  KAFKA_LOCAL_WIPE=1           make 'stop' delete the data dir
  JAVA_HOME                    Java 17+ to use (default: java on PATH)
 Cluster only:
  KAFKA_LOCAL_CLUSTER_PORTS             client ports of nodes 1,2,3
                                        ($CLUSTER_PORTS_SPEC)
  KAFKA_LOCAL_CLUSTER_CONTROLLER_PORTS  controller ports of nodes 1,2,3
                                        ($CLUSTER_CONTROLLER_PORTS_SPEC)
  KAFKA_LOCAL_CLUSTER_DIR               state dir (node-N/, cluster.env; default
                                        .kafka-local/cluster-<first client port>)
  A cluster's ports are recorded in its cluster.env at its first start; later
  commands on that dir use them (a start with other ports set is an error).

Every setting is keyed off these variables, so a second broker only needs its
own KAFKA_LOCAL_PORT / KAFKA_LOCAL_CONTROLLER_PORT (the default state dir
follows the port), e.g.:
  KAFKA_LOCAL_PORT=29092 KAFKA_LOCAL_CONTROLLER_PORT=29093 $PROG start
EOF
}

say() { printf 'kafka-local: %s\n' "$*"; }
warn() { printf 'kafka-local: %s\n' "$*" >&2; }
die() { warn "error: $*"; exit 1; }
usage_error() { warn "error: $*"; exit 2; }  # bad input: exit code 2

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

# The marker records the pom's checksum, so a cache fetched for another pom (one without
# the tools jar, say) is fetched again; the jars checked here are the ones used by name.
libs_complete() {
  [[ -f $LIBS_MARKER && -f $LIBS_DIR/kafka_2.13-$VERSION.jar ]] || return 1
  [[ -f $LIBS_DIR/kafka-tools-$VERSION.jar ]] || return 1
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
  say "fetching Kafka $VERSION (broker, tools, log4j $LOG4J_VERSION binding) into $LIBS_DIR via Maven ..."
  if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" \
      -Dkafka.version="$VERSION" -Dlog4j.version="$LOG4J_VERSION" >"$tmp.mvn.log" 2>&1; then
    cat -- "$tmp.mvn.log" >&2
    rm -rf -- "$tmp" "$tmp.mvn.log"
    die "mvn could not fetch org.apache.kafka:kafka_2.13:$VERSION (is Maven Central reachable?)"
  fi
  local jar
  for jar in "kafka_2.13-$VERSION.jar" "kafka-clients-$VERSION.jar" "kafka-tools-$VERSION.jar" \
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

cmd_classpath() {  # the jars' classpath, for running Kafka's tools (fetched first if needed)
  [[ $# -eq 0 ]] || usage_error "classpath takes no arguments"
  fetch_libs >&2
  java_cp
  printf '\n'
}

cmd_fetch() {
  [[ $# -eq 0 ]] || usage_error "fetch takes no arguments"
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
  # Owner-only: a secured node's file holds the admin's SCRAM password and the stores'.
  (umask 077 && : >"$PROPS_FILE.tmp")
  {
    # @NODE_ID@ and @VOTERS@ occur only in the cluster's template.
    sed -e "s|@HOST@|$HOST|g" -e "s|@PORT@|$PORT|g" \
        -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" -e "s|@DATA_DIR@|$esc_data|g" \
        -e "s|@NODE_ID@|$NODE_ID|g" -e "s|@VOTERS@|$VOTERS|g" \
        "$PROPS_TEMPLATE"
    if [[ $SECURE == 1 ]]; then
      secure_properties
    fi
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
      stop_pids "$pid"
      rm -f -- "$PID_FILE"
      exit 1
    fi
    sleep 0.2
  done
}

# Starts the broker of the current STATE_DIR/PROPS_FILE as a background JVM in its own
# session; sets LAUNCHED_PID (read back from the pid file) and T_LAUNCH.
LAUNCHED_PID=
T_LAUNCH=
launch_broker() {
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

  T_LAUNCH=$(now)
  # setsid: own session, so the broker outlives the calling shell/terminal.
  # The inner shell writes its own pid, then execs (same pid) into the JVM.
  rm -f -- "$PID_FILE"
  # shellcheck disable=SC2016  # $$/$@ are for the inner shell
  setsid bash -c 'echo $$ >"$1"; shift; exec nohup "$@"' kafka-local-launch \
    "$PID_FILE" "$JAVA" "${jvm_opts[@]}" -cp "$(java_cp)" kafka.Kafka "$PROPS_FILE" \
    </dev/null >"$OUT_LOG" 2>&1 8>&- 9>&- &

  local _ pid=
  for _ in $(seq 1 50); do
    pid=$(read_pid) && break
    sleep 0.1
  done
  [[ -n ${pid:-} ]] || { print_tails; die "the broker did not write its pid file $PID_FILE"; }
  LAUNCHED_PID=$pid
}

cmd_start() {
  [[ ${1:-} != --secure ]] || usage_error "--secure is for the three-node cluster (start --brokers $CLUSTER_SIZE --secure): the single broker stays open on loopback"
  local a
  for a in "$@"; do
    [[ $a != --bench-listeners* ]] || usage_error "--bench-listeners is for benchmarking the secured three-node cluster only (start --brokers $CLUSTER_SIZE --secure --bench-listeners SPEC)"
  done
  [[ $# -eq 0 ]] || usage_error "start takes no arguments"
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

  local t_launch
  launch_broker
  pid=$LAUNCHED_PID
  t_launch=$T_LAUNCH
  say "started broker pid $pid (Kafka $VERSION, state dir $STATE_DIR); waiting for $HOST:$PORT ..."

  wait_ready "$pid" "$t0"
  say "ready in $(elapsed_since "$t_launch")s (total $(elapsed_since "$t0")s); bootstrap servers: $HOST:$PORT"
}

# -------------------------------------------------------------------- stop --
stop_pids() {  # SIGTERM, bounded wait, then SIGKILL -- only these pids
  local pid deadline alive
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  # A paused node (pause N) takes the SIGTERM only once it runs again.
  for pid in "$@"; do kill -CONT "$pid" 2>/dev/null || true; done
  deadline=$(( $(date +%s) + STOP_TIMEOUT ))
  while :; do
    alive=()
    for pid in "$@"; do pid_alive "$pid" && alive+=("$pid"); done
    (( ${#alive[@]} == 0 )) && return 0
    (( $(date +%s) >= deadline )) && break
    sleep 0.2
  done
  warn "broker pid(s) ${alive[*]} still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
  for pid in "${alive[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  local _
  for _ in $(seq 1 50); do
    alive=()
    for pid in "$@"; do pid_alive "$pid" && alive+=("$pid"); done
    (( ${#alive[@]} == 0 )) && return 0
    sleep 0.1
  done
  die "broker pid(s) ${alive[*]} survived SIGKILL"
}

cmd_stop() {
  local wipe=${KAFKA_LOCAL_WIPE:-0}
  while [[ $# -gt 0 ]]; do
    case $1 in
      --wipe) wipe=1 ;;
      *) usage_error "unknown option for stop: $1" ;;
    esac
    shift
  done
  [[ -d $STATE_DIR ]] || { say "not running (no state dir $STATE_DIR)"; return 0; }
  take_lock 9 "$STATE_DIR/.lock"

  local pid t0
  if pid=$(running_pid); then
    t0=$(now)
    say "stopping broker pid $pid ..."
    stop_pids "$pid"
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
  [[ $# -eq 0 ]] || usage_error "status takes no arguments"
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
      -n) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage_error "-n needs a number"; lines=$2; shift ;;
      *) usage_error "unknown option for logs: $1" ;;
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

# ----------------------------------------------------------------- cluster --
# The three-node cluster reuses the single broker's helpers (running_pid,
# launch_broker, stop_pids, print_tails, ...) by pointing their globals at one
# node at a time (select_node).

C_PORTS=()        # client ports of nodes 1..3
C_CTRL_PORTS=()   # controller ports of nodes 1..3
CLUSTER_ENV=
CLUSTER_ID=

parse_port_list() {  # parse_port_list NAME SPEC: prints the three ports, one a line
  local name=$1 spec=$2 p
  local -a ports
  IFS=, read -r -a ports <<<"$spec"
  (( ${#ports[@]} == CLUSTER_SIZE )) || usage_error "$name must list $CLUSTER_SIZE ports separated by commas, got '$spec'"
  for p in "${ports[@]}"; do
    if ! [[ $p =~ ^[0-9]+$ ]] || (( 10#$p < 1 || 10#$p > 65535 )); then
      usage_error "$name: bad port '$p' in '$spec'"
    fi
    printf '%s\n' "$p"
  done
}

# Resolves the cluster's ports and state dir from the environment, then from its
# cluster.env when there is one (recorded at the first start; it wins, except that
# a start with other ports set explicitly is an error).
cluster_init() {
  local for_start=${1:-0} p
  mapfile -t C_PORTS < <(parse_port_list KAFKA_LOCAL_CLUSTER_PORTS "$CLUSTER_PORTS_SPEC")
  mapfile -t C_CTRL_PORTS < <(parse_port_list KAFKA_LOCAL_CLUSTER_CONTROLLER_PORTS "$CLUSTER_CONTROLLER_PORTS_SPEC")
  # mapfile in a process substitution cannot exit for us: check what it read.
  (( ${#C_PORTS[@]} == CLUSTER_SIZE && ${#C_CTRL_PORTS[@]} == CLUSTER_SIZE )) || exit 2
  CLUSTER_DIR=${CLUSTER_DIR:-$REPO_DIR/.kafka-local/cluster-${C_PORTS[0]}}
  [[ $CLUSTER_DIR == /* ]] || CLUSTER_DIR=$PWD/$CLUSTER_DIR
  [[ $CLUSTER_DIR != / ]] || usage_error "bad KAFKA_LOCAL_CLUSTER_DIR '$CLUSTER_DIR'"
  CLUSTER_ENV=$CLUSTER_DIR/cluster.env

  if [[ -f $CLUSTER_ENV ]]; then
    local key value rec_ports='' rec_ctrl='' rec_secure=0 rec_bench=''
    while IFS='=' read -r key value; do
      case $key in
        CLUSTER_ID) CLUSTER_ID=$value ;;
        PORTS) rec_ports=$value ;;
        CONTROLLER_PORTS) rec_ctrl=$value ;;
        SECURE) rec_secure=$value ;;
        BENCH_LISTENERS) rec_bench=$value ;;
      esac
    done <"$CLUSTER_ENV"
    [[ -n $rec_ports && -n $rec_ctrl ]] || die "$CLUSTER_ENV is incomplete (stop --brokers 3 --wipe to start afresh)"
    if [[ $for_start == 1 && $SECURE != "$rec_secure" ]]; then
      local was=open
      [[ $rec_secure == 1 ]] && was=secured
      usage_error "the cluster in $CLUSTER_DIR was made $was; start it as it was made (with or without --secure), or stop --brokers 3 --wipe it first"
    fi
    SECURE=$rec_secure
    if [[ $for_start == 1 ]]; then
      if [[ -n ${KAFKA_LOCAL_CLUSTER_PORTS:-} && $CLUSTER_PORTS_SPEC != "$rec_ports" ]] ||
         [[ -n ${KAFKA_LOCAL_CLUSTER_CONTROLLER_PORTS:-} && $CLUSTER_CONTROLLER_PORTS_SPEC != "$rec_ctrl" ]]; then
        usage_error "the cluster in $CLUSTER_DIR uses ports $rec_ports (controllers $rec_ctrl); stop --brokers 3 --wipe it or use another KAFKA_LOCAL_CLUSTER_DIR"
      fi
    fi
    mapfile -t C_PORTS < <(parse_port_list "PORTS in $CLUSTER_ENV" "$rec_ports")
    mapfile -t C_CTRL_PORTS < <(parse_port_list "CONTROLLER_PORTS in $CLUSTER_ENV" "$rec_ctrl")
    (( ${#C_PORTS[@]} == CLUSTER_SIZE && ${#C_CTRL_PORTS[@]} == CLUSTER_SIZE )) || exit 2
  fi

  secure_bench_init "${rec_bench:-}" "$for_start"
  local -A seen=()
  for p in "${C_PORTS[@]}" "${C_CTRL_PORTS[@]}" "${SECURE_BENCH_PORTS[@]}"; do
    [[ -z ${seen[$p]:-} ]] || usage_error "cluster port $p is listed twice (client and controller ports must all differ)"
    seen[$p]=1
  done
  local n
  VOTERS=
  for n in $(seq 1 "$CLUSTER_SIZE"); do
    VOTERS+="${VOTERS:+,}$n@$HOST:${C_CTRL_PORTS[n-1]}"
  done
}

cluster_exists() { [[ -f $CLUSTER_ENV ]]; }

write_cluster_env() {
  local ports ctrl
  ports=$(IFS=,; printf '%s' "${C_PORTS[*]}")
  ctrl=$(IFS=,; printf '%s' "${C_CTRL_PORTS[*]}")
  mkdir -p -- "$CLUSTER_DIR"
  printf 'BROKERS=%s\nCLUSTER_ID=%s\nPORTS=%s\nCONTROLLER_PORTS=%s\nSECURE=%s\n' \
    "$CLUSTER_SIZE" "$CLUSTER_ID" "$ports" "$ctrl" "$SECURE" >"$CLUSTER_ENV.tmp"
  if [[ -n $SECURE_BENCH ]]; then
    printf 'BENCH_LISTENERS=%s\n' "$SECURE_BENCH" >>"$CLUSTER_ENV.tmp"
  fi
  mv -- "$CLUSTER_ENV.tmp" "$CLUSTER_ENV"
}

select_node() {  # point the broker globals at node $1 of the cluster
  NODE_ID=$1
  STATE_DIR=$CLUSTER_DIR/node-$NODE_ID
  DATA_DIR=$STATE_DIR/data
  LOG_DIR=$STATE_DIR/logs
  PID_FILE=$STATE_DIR/kafka.pid
  PROPS_FILE=$STATE_DIR/server.properties
  SERVER_LOG=$LOG_DIR/server.log
  OUT_LOG=$LOG_DIR/kafka.out
  PORT=${C_PORTS[NODE_ID-1]}
  CONTROLLER_PORT=${C_CTRL_PORTS[NODE_ID-1]}
  PROPS_TEMPLATE=$CLUSTER_TEMPLATE
  secure_bench_node_ports
}

bootstrap_list() {
  local p out=
  for p in "${C_PORTS[@]}"; do out+="${out:+,}$HOST:$p"; done
  printf '%s\n' "$out"
}

parse_node_id() {  # prints the node id in $2, or exits 2
  local what=$1 id=${2:-}
  [[ -n $id ]] || usage_error "$what needs a node id (1-$CLUSTER_SIZE)"
  if ! [[ $id =~ ^[0-9]+$ ]] || (( 10#$id < 1 || 10#$id > CLUSTER_SIZE )); then
    usage_error "$what: no node '$id' (the cluster's nodes are 1-$CLUSTER_SIZE)"
  fi
  printf '%s\n' "$((10#$id))"
}

nodes_running() {  # prints the ids of the nodes whose JVM runs, space-separated
  local n
  local -a found=()
  for n in $(seq 1 "$CLUSTER_SIZE"); do
    select_node "$n"
    if running_pid >/dev/null; then found+=("$n"); fi
  done
  printf '%s\n' "${found[*]}"
}

# The readiness check (scripts/kafka/ClusterCheck.java): compiled once into the
# cluster dir when javac is there, else run as a single-file source program.
check_class_dir() {
  local sum dir tmp
  sum=$(cksum <"$CLUSTER_CHECK_SRC" | awk '{ print $1 }')
  dir=$CLUSTER_DIR/tools/$VERSION-$sum
  if [[ ! -f $dir/ClusterCheck.class ]] && command -v javac >/dev/null 2>&1; then
    tmp=$dir.tmp.$$
    mkdir -p -- "$tmp"
    if javac -nowarn -cp "$(java_cp)" -d "$tmp" "$CLUSTER_CHECK_SRC" >"$tmp.log" 2>&1; then
      rm -rf -- "$dir"
      mv -- "$tmp" "$dir"
      rm -f -- "$tmp.log"
    else
      warn "warning: javac could not compile $CLUSTER_CHECK_SRC (running it as a source file):"
      sed 's/^/  /' "$tmp.log" >&2
      rm -rf -- "$tmp" "$tmp.log"
    fi
  fi
  [[ -f $dir/ClusterCheck.class ]] && printf '%s\n' "$dir"
}

# cluster_check IDS TIMEOUT: wait until the quorum has a leader and brokers IDS
# (comma-separated) are registered and unfenced; prints the check's one line.
cluster_check() {
  local ids=$1 timeout=$2 dir
  local -a opts=(-Xmx64m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true)
  local -a client=()
  [[ $SECURE == 1 ]] && client=("$(secure_dir)/admin.properties")
  if dir=$(check_class_dir); then
    "$JAVA" "${opts[@]}" -cp "$dir:$(java_cp)" ClusterCheck "$(bootstrap_list)" "$ids" "$timeout" "${client[@]}" 2>/dev/null
  else
    "$JAVA" "${opts[@]}" -cp "$(java_cp)" "$CLUSTER_CHECK_SRC" "$(bootstrap_list)" "$ids" "$timeout" "${client[@]}" 2>/dev/null
  fi
}

# Stops the given pids all at once (SIGTERM, bounded wait, then SIGKILL): a node's
# controlled shutdown needs the quorum, which one-at-a-time stops would lose.
# The nodes a failed start launched are stopped again, so nothing is left running.
STARTED_PIDS=()
abort_start() {
  warn "error: $*"
  if (( ${#STARTED_PIDS[@]} > 0 )); then
    warn "stopping the node(s) this start launched: pid(s) ${STARTED_PIDS[*]}"
    stop_pids "${STARTED_PIDS[@]}" || true
    local n
    for n in $(seq 1 "$CLUSTER_SIZE"); do
      select_node "$n"
      running_pid >/dev/null || rm -f -- "$PID_FILE"
    done
  fi
  exit 1
}

format_node_if_needed() {  # node already selected; formats with CLUSTER_ID
  if [[ -f $DATA_DIR/meta.properties ]]; then
    grep -qx "cluster.id=$CLUSTER_ID" "$DATA_DIR/meta.properties" ||
      die "node $NODE_ID's data ($DATA_DIR) belongs to another cluster than $CLUSTER_ID (stop --brokers 3 --wipe to start afresh)"
    return 0
  fi
  mkdir -p -- "$DATA_DIR" "$LOG_DIR"
  # Static quorum (controller.quorum.voters): no --standalone. A secured cluster's SCRAM
  # credentials go into the metadata here, so they exist before the first start.
  local -a scram=()
  [[ $SECURE == 1 ]] && mapfile -t scram < <(secure_scram_args)
  "$JAVA" -cp "$(java_cp)" -Dkafka.logs.dir="$LOG_DIR" \
    kafka.tools.StorageTool format -t "$CLUSTER_ID" -c "$PROPS_FILE" "${scram[@]}" >"$LOG_DIR/format.out" 2>&1
}

# Launches node $1 (selected), after checking its ports are free; records its pid.
launch_node() {
  local p
  for p in "$PORT" "$CONTROLLER_PORT"; do
    port_open "$p" && abort_start "port $HOST:$p (node $NODE_ID) is already in use by another process; set KAFKA_LOCAL_CLUSTER_PORTS / KAFKA_LOCAL_CLUSTER_CONTROLLER_PORTS"
  done
  for p in "${SECURE_BENCH_NODE_PORTS[@]}"; do
    port_open "$p" && abort_start "benchmark listener port $HOST:$p (node $NODE_ID) is already in use by another process; the cluster's --bench-listeners ($SECURE_BENCH) are fixed: free the port, or stop --brokers 3 --wipe the cluster and start it with other --bench-listeners"
  done
  launch_broker
  STARTED_PIDS+=("$LAUNCHED_PID")
  say "started node $NODE_ID pid $LAUNCHED_PID ($HOST:$PORT, controller $HOST:$CONTROLLER_PORT)"
}

# wait_nodes_listening DEADLINE IDS...: every node's client port accepts connections.
wait_nodes_listening() {
  local deadline=$1 n pid waiting
  shift
  while :; do
    waiting=()
    for n in "$@"; do
      select_node "$n"
      pid=$(read_pid) || pid=
      if ! pid_alive "$pid"; then
        print_tails
        abort_start "node $NODE_ID (pid ${pid:-?}) exited during start-up (log: $SERVER_LOG)"
      fi
      port_open "$PORT" || waiting+=("$n")
    done
    (( ${#waiting[@]} == 0 )) && return 0
    if (( $(date +%s) >= deadline )); then
      for n in "${waiting[@]}"; do select_node "$n"; print_tails; done
      abort_start "node(s) ${waiting[*]} did not accept connections within ${START_TIMEOUT}s"
    fi
    sleep 0.2
  done
}

# wait_registered DEADLINE IDS: the quorum has a leader and brokers IDS are unfenced.
wait_registered() {
  local deadline=$1 ids=$2 left line
  left=$(( deadline - $(date +%s) ))
  (( left > 5 )) || left=5
  if ! line=$(cluster_check "$ids" "$left"); then
    abort_start "the cluster was not ready within ${START_TIMEOUT}s (${line:-no answer}); logs: $CLUSTER_DIR/node-*/logs/server.log"
  fi
  READY_LINE=$line
}
READY_LINE=

cluster_start() {
  while [[ $# -gt 0 ]]; do
    case $1 in
      --secure) SECURE=1 ;;
      --bench-listeners)
        [[ $# -ge 2 && -n $2 ]] || usage_error "--bench-listeners needs a SPEC, e.g. \"PLAINTEXT:p1,p2,p3 SSL:p4,p5,p6 SASL_PLAINTEXT:p7,p8,p9\""
        secure_bench_ask "$2"; shift ;;
      --bench-listeners=*) secure_bench_ask "${1#--bench-listeners=}" ;;
      *) usage_error "start --brokers $CLUSTER_SIZE takes no arguments but --secure and --bench-listeners SPEC, got '$1'" ;;
    esac
    shift
  done
  if [[ -n $SECURE_BENCH_ASKED && $SECURE != 1 ]]; then  # before anything else
    usage_error "--bench-listeners is for benchmarking the secured cluster only (start --brokers $CLUSTER_SIZE --secure --bench-listeners SPEC)"
  fi
  cluster_init 1
  secure_bench_warn
  local t0 n p pid deadline
  local -a to_start=() to_format=()
  t0=$(now)
  deadline=$(( $(date +%s) + START_TIMEOUT ))
  take_lock 9 "$CLUSTER_DIR/.lock"

  for n in $(seq 1 "$CLUSTER_SIZE"); do
    select_node "$n"
    if pid=$(running_pid); then
      say "node $n already running (pid $pid)"
      continue
    fi
    if [[ -f $PID_FILE ]]; then
      say "removing stale pid file $PID_FILE"
      rm -f -- "$PID_FILE"
    fi
    to_start+=("$n")
  done

  if (( ${#to_start[@]} > 0 )); then
    for n in "${to_start[@]}"; do  # all ports free before any node starts
      select_node "$n"
      for p in "$PORT" "$CONTROLLER_PORT"; do
        ! port_open "$p" || die "port $HOST:$p (node $n) is already in use by another process; set KAFKA_LOCAL_CLUSTER_PORTS / KAFKA_LOCAL_CLUSTER_CONTROLLER_PORTS"
      done
      for p in "${SECURE_BENCH_NODE_PORTS[@]}"; do
        ! port_open "$p" || die "benchmark listener port $HOST:$p (node $n) is already in use by another process; choose other ports with --bench-listeners (a cluster already made keeps its own: stop --brokers 3 --wipe it first)"
      done
    done
    fetch_libs
    check_java
    if [[ -z $CLUSTER_ID ]]; then
      CLUSTER_ID=$("$JAVA" -cp "$(java_cp)" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
      [[ $CLUSTER_ID =~ ^[A-Za-z0-9_-]{22}$ ]] || die "StorageTool random-uuid printed '$CLUSTER_ID'"
      write_cluster_env
      say "new cluster $CLUSTER_ID in $CLUSTER_DIR"
    fi
    [[ $SECURE == 1 ]] && secure_init
    for n in "${to_start[@]}"; do
      select_node "$n"
      mkdir -p -- "$STATE_DIR" "$LOG_DIR"
      render_properties
      if [[ -f $DATA_DIR/meta.properties ]]; then
        format_node_if_needed  # only checks the cluster id
      else
        to_format+=("$n")
      fi
    done
    if (( ${#to_format[@]} > 0 )); then
      say "formatting node(s) ${to_format[*]} (cluster id $CLUSTER_ID) ..."
      local -a fpids=()
      for n in "${to_format[@]}"; do
        select_node "$n"
        format_node_if_needed &
        fpids+=("$!")
      done
      local i
      for i in "${!fpids[@]}"; do
        if ! wait "${fpids[i]}"; then
          select_node "${to_format[i]}"
          cat -- "$LOG_DIR/format.out" >&2 || true
          die "formatting node $NODE_ID failed"
        fi
      done
    fi
    for n in "${to_start[@]}"; do
      select_node "$n"
      launch_node
    done
    say "waiting for $(bootstrap_list) ..."
    wait_nodes_listening "$deadline" "${to_start[@]}"
  fi

  local all
  all=$(seq -s, 1 "$CLUSTER_SIZE")
  [[ $SECURE == 1 ]] && secure_client_files
  wait_registered "$deadline" "$all"
  say "cluster ready in $(elapsed_since "$t0")s: $READY_LINE (state dir $CLUSTER_DIR)"
  if [[ $SECURE == 1 && -n $SECURE_BENCH ]]; then
    say "secured on the client ports only: SASL_SSL (SCRAM-SHA-512) there, TLS with client certificates between controllers; NOT secured on the benchmark listeners ($SECURE_BENCH)"
    secure_bench_warn
  elif [[ $SECURE == 1 ]]; then
    say "secured: SASL_SSL (SCRAM-SHA-512) on the client ports, TLS with client certificates between controllers, ACLs enforced"
  fi
  if [[ $SECURE == 1 ]]; then
    say "connect as a role with its settings: set -a; . $(secure_dir)/dispatch-worker.env; set +a"
    say "then, as admin (. $(secure_dir)/admin.env): dispatch topics create && dispatch topics acls --apply"
  fi
  bootstrap_list
}

cluster_stop() {
  local wipe=${KAFKA_LOCAL_WIPE:-0}
  while [[ $# -gt 0 ]]; do
    case $1 in
      --wipe) wipe=1 ;;
      *) usage_error "unknown option for stop --brokers $CLUSTER_SIZE: $1" ;;
    esac
    shift
  done
  cluster_init
  [[ -d $CLUSTER_DIR ]] || { say "not running (no cluster dir $CLUSTER_DIR)"; return 0; }
  take_lock 9 "$CLUSTER_DIR/.lock"

  local n pid t0
  local -a pids=() names=()
  for n in $(seq 1 "$CLUSTER_SIZE"); do
    select_node "$n"
    if pid=$(running_pid); then
      pids+=("$pid")
      names+=("node $n pid $pid")
    else
      rm -f -- "$PID_FILE"
    fi
  done
  if (( ${#pids[@]} > 0 )); then
    t0=$(now)
    say "stopping ${names[*]} ..."
    stop_pids "${pids[@]}"
    for n in $(seq 1 "$CLUSTER_SIZE"); do select_node "$n"; rm -f -- "$PID_FILE"; done
    say "stopped in $(elapsed_since "$t0")s"
  else
    say "not running (cluster dir $CLUSTER_DIR)"
  fi

  if [[ $wipe == 1 ]]; then
    for n in $(seq 1 "$CLUSTER_SIZE"); do select_node "$n"; rm -rf -- "$DATA_DIR"; done
    rm -f -- "$CLUSTER_ENV"
    say "wiped the nodes' data and the cluster id in $CLUSTER_DIR"
  fi
}

cluster_status() {
  [[ $# -eq 0 ]] || usage_error "status --brokers $CLUSTER_SIZE takes no other arguments"
  cluster_init
  if ! cluster_exists; then
    say "not running (no cluster in $CLUSTER_DIR)"
    return 1
  fi
  secure_bench_warn
  local n pid up=0 line
  for n in $(seq 1 "$CLUSTER_SIZE"); do
    select_node "$n"
    if pid=$(running_pid); then
      if pid_paused "$pid"; then
        say "node $n: paused (SIGSTOP; resume $n), pid $pid, $HOST:$PORT"
      elif port_open "$PORT"; then
        say "node $n: running, pid $pid, $HOST:$PORT, controller $HOST:$CONTROLLER_PORT"
        up=$((up + 1))
      else
        say "node $n: pid $pid is alive but $HOST:$PORT does not accept connections"
      fi
    else
      say "node $n: not running ($HOST:$PORT)"
    fi
  done
  (( up > 0 )) || return 1
  if line=$(cluster_check "$(seq -s, 1 "$CLUSTER_SIZE")" 5); then
    say "cluster $CLUSTER_ID: $line (state dir $CLUSTER_DIR)"
    (( up == CLUSTER_SIZE )) || return 1
    bootstrap_list
    return 0
  fi
  say "cluster $CLUSTER_ID: ${line:-no answer} (state dir $CLUSTER_DIR)"
  return 1
}

cluster_logs() {
  local node=1 follow=0 lines=100
  while [[ $# -gt 0 ]]; do
    case $1 in
      --node) node=$(parse_node_id "logs --node" "${2:-}") || exit 2; shift ;;
      -f|--follow) follow=1 ;;
      -n) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage_error "-n needs a number"; lines=$2; shift ;;
      *) usage_error "unknown option for logs --brokers $CLUSTER_SIZE: $1" ;;
    esac
    shift
  done
  cluster_init
  select_node "$node"
  local -a args=(-n "$lines")
  (( follow )) && args+=(-f)
  cmd_logs "${args[@]}"
}

cluster_kill() {
  local node
  [[ $# -le 1 ]] || usage_error "kill takes one node id (1-$CLUSTER_SIZE)"
  node=$(parse_node_id kill "${1:-}") || exit 2
  cluster_init
  cluster_exists || usage_error "kill $node: no cluster in $CLUSTER_DIR (start it with: $PROG start --brokers $CLUSTER_SIZE)"
  take_lock 9 "$CLUSTER_DIR/.lock"
  select_node "$node"
  local pid _
  pid=$(running_pid) || usage_error "kill $node: node $node is not running (cluster $CLUSTER_DIR)"
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    pid_alive "$pid" || break
    sleep 0.1
  done
  pid_alive "$pid" && die "node $node (pid $pid) survived SIGKILL"
  rm -f -- "$PID_FILE"
  say "killed node $node (pid $pid, $HOST:$PORT)"
}

pid_paused() {  # true if pid $1 is stopped by a signal (state T)
  local stat
  stat=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ ${stat%% *} == T ]]
}

# pause N / resume N: SIGSTOP / SIGCONT node N by its own pid file; waits until the
# kernel shows the new state (a broker that stalls with its connections open, for tests).
cluster_signal() {
  local what=$1 node
  shift
  [[ $# -le 1 ]] || usage_error "$what takes one node id (1-$CLUSTER_SIZE)"
  node=$(parse_node_id "$what" "${1:-}") || exit 2
  cluster_init
  cluster_exists || usage_error "$what $node: no cluster in $CLUSTER_DIR (start it with: $PROG start --brokers $CLUSTER_SIZE)"
  take_lock 9 "$CLUSTER_DIR/.lock"
  select_node "$node"
  local pid _ want=1
  pid=$(running_pid) || usage_error "$what $node: node $node is not running (cluster $CLUSTER_DIR)"
  [[ $what == pause ]] || want=0
  if pid_paused "$pid"; then
    (( want )) && { say "node $node (pid $pid) is already paused"; return 0; }
    kill -CONT "$pid"
  else
    (( want )) || { say "node $node (pid $pid) is not paused"; return 0; }
    kill -STOP "$pid"
  fi
  for _ in $(seq 1 50); do
    if pid_paused "$pid"; then (( want )) && break; else (( want )) || break; fi
    sleep 0.1
  done
  if (( want )); then
    pid_paused "$pid" || die "node $node (pid $pid) did not stop on SIGSTOP"
    say "paused node $node (pid $pid, $HOST:$PORT): resume it with: $PROG resume $node"
  else
    pid_paused "$pid" && die "node $node (pid $pid) did not go on after SIGCONT"
    say "resumed node $node (pid $pid, $HOST:$PORT)"
  fi
}

cluster_pause() { cluster_signal pause "$@"; }
cluster_resume() { cluster_signal resume "$@"; }

cluster_restart() {
  local node
  [[ $# -le 1 ]] || usage_error "restart takes one node id (1-$CLUSTER_SIZE)"
  node=$(parse_node_id restart "${1:-}") || exit 2
  cluster_init
  cluster_exists || usage_error "restart $node: no cluster in $CLUSTER_DIR (start it with: $PROG start --brokers $CLUSTER_SIZE)"
  secure_bench_warn
  local t0 deadline pid
  t0=$(now)
  deadline=$(( $(date +%s) + START_TIMEOUT ))
  take_lock 9 "$CLUSTER_DIR/.lock"
  select_node "$node"
  if pid=$(running_pid); then
    say "stopping node $node (pid $pid) ..."
    stop_pids "$pid"
  fi
  rm -f -- "$PID_FILE"
  fetch_libs
  check_java
  render_properties
  format_node_if_needed || { cat -- "$LOG_DIR/format.out" >&2; die "formatting node $node failed"; }
  launch_node
  wait_nodes_listening "$deadline" "$node"
  # Ready: the quorum has a leader and this node and every other running one are unfenced.
  local ids
  ids=$(nodes_running)
  wait_registered "$deadline" "${ids// /,}"
  say "node $node back in $(elapsed_since "$t0")s: $READY_LINE"
  secure_bench_warn
  bootstrap_list
}

# parse_brokers ARGS...: sets BROKERS (1 or 3) from --brokers N / --brokers=N and
# REST_ARGS to the other arguments.
BROKERS=1
REST_ARGS=()
parse_brokers() {
  local value
  while [[ $# -gt 0 ]]; do
    case $1 in
      --brokers) [[ $# -ge 2 ]] || usage_error "--brokers needs a number (1 or $CLUSTER_SIZE)"; value=$2; shift ;;
      --brokers=*) value=${1#--brokers=} ;;
      *) REST_ARGS+=("$1"); shift; continue ;;
    esac
    [[ $value == 1 || $value == "$CLUSTER_SIZE" ]] ||
      usage_error "--brokers must be 1 or $CLUSTER_SIZE, got '$value'"
    BROKERS=$value
    shift
  done
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
    classpath) cmd_classpath "$@" ;;
    start|stop|status|logs)
      parse_brokers "$@"
      if [[ $BROKERS == 1 ]]; then
        "cmd_$cmd" "${REST_ARGS[@]}"
      else
        "cluster_$cmd" "${REST_ARGS[@]}"
      fi ;;
    kill|restart|pause|resume)
      parse_brokers "$@"
      [[ $BROKERS == "$CLUSTER_SIZE" || $# == "${#REST_ARGS[@]}" ]] ||
        usage_error "$cmd works on the $CLUSTER_SIZE-node cluster only"
      "cluster_$cmd" "${REST_ARGS[@]}" ;;
    *) warn "unknown command: $cmd"; usage >&2; return 2 ;;
  esac
}

main "$@"
