#!/usr/bin/env bash
# Run the whole test suite, including the real-Kafka tests.
# Starts the local Kafka broker (scripts/kafka-local.sh) if none is running and stops it
# again afterwards; a broker that was already running is left alone.
# Extra arguments go to pytest, e.g. scripts/test.sh -k matcher
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if [[ ! -x $PY ]]; then
  echo "no virtualenv: run  python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'" >&2
  exit 2
fi
# The tests find the broker through DISPATCH_TEST_KAFKA (the script's port by default).
export DISPATCH_TEST_KAFKA=${DISPATCH_TEST_KAFKA:-127.0.0.1:${KAFKA_LOCAL_PORT:-9092}}
started=0
if ! scripts/kafka-local.sh status >/dev/null 2>&1; then
  scripts/kafka-local.sh start
  started=1
fi
cleanup() {
  if [[ $started == 1 ]]; then
    scripts/kafka-local.sh stop --wipe || true
  fi
}
trap cleanup EXIT
"$PY" -m pytest "$@"
