#!/usr/bin/env bash
# Install what the fault tests use besides Java (tests/faults): iptables (fault 3 cuts a
# worker off with an owner rule on loopback), setpriv (util-linux: runs that worker under a
# uid of its own) and mount (fault 4's tmpfs), unless they are there. Idempotent; CI calls
# it before the tests. Needs root (or sudo) and Debian's package lists, refreshed only if
# the first install attempt fails.
set -euo pipefail

missing=()
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v mount >/dev/null 2>&1 || missing+=(mount)
if (( ${#missing[@]} == 0 )); then
  echo "fault-test tools already installed"
  exit 0
fi

SUDO=()
if [[ $(id -u) != 0 ]]; then
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
install=("${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}")
if ! "${install[@]}"; then
  echo "installing ${missing[*]} failed; refreshing the package lists and trying again" >&2
  "${SUDO[@]}" apt-get update
  "${install[@]}"
fi
for tool in iptables setpriv mount; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool still missing after install" >&2; exit 1; }
done
echo "fault-test tools installed: ${missing[*]}"
