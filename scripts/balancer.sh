#!/usr/bin/env bash
# A local HAProxy in front of two API instances (deploy/haproxy/haproxy.cfg), for tests
# and load runs on one machine (docs/OPERATIONS.md, "A balanced deployment"):
#   scripts/balancer.sh start --port 8080 --backends 127.0.0.1:8101,127.0.0.1:8102 [--dir D]
#   scripts/balancer.sh status [--dir D]
#   scripts/balancer.sh stop [--dir D]
# It listens on 127.0.0.1 only, writes its pid to D/haproxy.pid (default
# ${TMPDIR:-/tmp}/dispatch-balancer) and its log to D/haproxy.log, and is stopped by that
# pid. HAProxy comes from Debian's package (scripts/ci-balancer.sh installs it).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
config=$here/deploy/haproxy/haproxy.cfg

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
(( $# >= 1 )) || usage
action=$1
shift
port="" backends="" dir=${TMPDIR:-/tmp}/dispatch-balancer
while (( $# )); do
  case $1 in
    --port) port=${2:?--port needs a value}; shift 2 ;;
    --backends) backends=${2:?--backends needs a value}; shift 2 ;;
    --dir) dir=${2:?--dir needs a value}; shift 2 ;;
    *) echo "unknown option: $1" >&2; usage ;;
  esac
done
pidfile=$dir/haproxy.pid

running() { [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case $action in
  start)
    [[ $port =~ ^[0-9]+$ ]] && (( port >= 1 && port <= 65535 )) \
      || { echo "--port: a port number, 1 to 65535, not '$port'" >&2; exit 2; }
    IFS=, read -r -a list <<<"$backends"
    (( ${#list[@]} == 2 )) \
      || { echo "--backends: two instances, host:port,host:port (for more, add server lines to $config)" >&2; exit 2; }
    for b in "${list[@]}"; do
      [[ $b =~ ^[A-Za-z0-9.-]+:[0-9]+$ ]] || { echo "--backends: not host:port: '$b'" >&2; exit 2; }
    done
    command -v haproxy >/dev/null || { echo "haproxy is not installed (scripts/ci-balancer.sh)" >&2; exit 1; }
    if running; then echo "already running (pid $(cat "$pidfile"))" >&2; exit 1; fi
    mkdir -p "$dir"
    export DISPATCH_BALANCER_BIND=127.0.0.1:$port DISPATCH_API_1=${list[0]} DISPATCH_API_2=${list[1]}
    haproxy -c -q -f "$config"  # refuse a config that does not parse, before starting
    # In the foreground (-db) as a child of no one's: its own pid in the pid file, its log
    # lines (one a request) in the log file.
    nohup haproxy -db -f "$config" >>"$dir/haproxy.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 50); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "balancer ready: http://127.0.0.1:$port (pid $(cat "$pidfile"))"
        exit 0
      fi
      sleep 0.1
    done
    echo "the balancer did not listen on 127.0.0.1:$port within 5 s (see $dir/haproxy.log)" >&2
    exit 1
    ;;
  status)
    if running; then echo "running (pid $(cat "$pidfile"))"; else echo "not running"; exit 1; fi
    ;;
  stop)
    if running; then
      pid=$(cat "$pidfile")
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      echo "stopped (pid $pid)"
    else
      echo "not running"
    fi
    rm -f "$pidfile"
    ;;
  *) usage ;;
esac
