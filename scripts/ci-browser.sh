#!/usr/bin/env bash
# Install Debian's chromium, which tests/e2e/test_report_in_browser.py renders the
# simulator's HTML report with, unless it is already there. Idempotent: run it as often as
# you like (CI calls it before the tests). Needs root (or sudo) and Debian's package lists;
# they are refreshed only if the first install attempt fails.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  echo "chromium already installed: $(command -v chromium)"
  exit 0
fi

SUDO=()
if [[ $(id -u) != 0 ]]; then
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
install=("${SUDO[@]}" apt-get install -y --no-install-recommends chromium)

if ! "${install[@]}"; then
  echo "installing chromium failed; refreshing the package lists and trying again" >&2
  "${SUDO[@]}" apt-get update
  "${install[@]}"
fi
command -v chromium >/dev/null 2>&1 || { echo "chromium still missing after install" >&2; exit 1; }
echo "chromium installed: $(command -v chromium)"
