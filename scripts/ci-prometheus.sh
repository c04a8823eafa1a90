#!/usr/bin/env bash
# Install Debian's prometheus package for its promtool, which
# tests/unit/api/test_alerts_and_dashboard.py checks the alert rules with
# (deploy/prometheus/), unless promtool is already there. Idempotent: CI calls it before the
# tests. Needs root (or sudo) and Debian's package lists; they are refreshed only if the
# first install attempt fails. The package's server is not started by this script.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  echo "promtool already installed: $(command -v promtool)"
  exit 0
fi

SUDO=()
if [[ $(id -u) != 0 ]]; then
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
install=("${SUDO[@]}" apt-get install -y --no-install-recommends prometheus)

if ! "${install[@]}"; then
  echo "installing prometheus failed; refreshing the package lists and trying again" >&2
  "${SUDO[@]}" apt-get update
  "${install[@]}"
fi
command -v promtool >/dev/null 2>&1 || { echo "promtool still missing after install" >&2; exit 1; }
echo "promtool installed: $(command -v promtool)"
