#!/usr/bin/env bash
# Install HAProxy from Debian's packages for the balanced-deployment tests
# (scripts/balancer.sh), unless it is there. Idempotent; CI calls it before the tests. Needs
# root (or sudo) and Debian's package lists, refreshed only if the first attempt fails.
set -euo pipefail
if command -v haproxy >/dev/null 2>&1; then
  echo "haproxy already installed: $(haproxy -v | head -1)"
  exit 0
fi
SUDO=()
[[ $(id -u) == 0 ]] || SUDO=(sudo)
export DEBIAN_FRONTEND=noninteractive
install=("${SUDO[@]}" apt-get install -y --no-install-recommends haproxy)
if ! "${install[@]}"; then
  echo "installing haproxy failed; refreshing the package lists and trying again" >&2
  "${SUDO[@]}" apt-get update
  "${install[@]}"
fi
command -v haproxy >/dev/null 2>&1 || { echo "haproxy still missing after install" >&2; exit 1; }
