"""scripts/kafka/secure.sh's broker settings, as its own functions make them: secure.sh
sourced in bash (no Java, no broker) with its helpers from kafka-local.sh stubbed, a fake
secrets dir holding the password files it reads, and the selected node's globals set."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECURE_SH = ROOT / "scripts" / "kafka" / "secure.sh"
# Stand-ins for what is made per node or per machine, so that a caller can tell them apart.
HOST = "HOST.invalid"
STORE_PASSWORD = "STORE-PASSWORD"
ADMIN_PASSWORD = "ADMIN-PASSWORD"
CLIENT_PORTS = (19092, 19093, 19094)
CONTROLLER_PORTS = (19192, 19193, 19194)

_SCRIPT = r"""
set -euo pipefail
say() { printf 'kafka-local: %s\n' "$*" >&2; }
warn() { printf 'kafka-local: %s\n' "$*" >&2; }
die() { warn "error: $*"; exit 1; }
usage_error() { warn "error: $*"; exit 2; }
parse_port_list() {  # as kafka-local.sh's, enough for the benchmark listeners
  local name=$1 spec=$2 p
  local -a ports
  IFS=, read -r -a ports <<<"$spec"
  (( ${#ports[@]} == CLUSTER_SIZE )) || usage_error "$name must list $CLUSTER_SIZE ports"
  for p in "${ports[@]}"; do
    [[ $p =~ ^[0-9]+$ ]] || usage_error "$name: bad port '$p' in '$spec'"
    printf '%s\n' "$p"
  done
}
cluster_exists() { false; }
CLUSTER_SIZE=3
CLUSTER_DIR=$1
CLUSTER_ENV=$CLUSTER_DIR/cluster.env
source "$2"
SECURE=1
if [[ -n $4 ]]; then secure_bench_ask "$4"; fi
secure_bench_init '' 1
NODE_ID=$3
HOST=$7
PORT=$5
CONTROLLER_PORT=$6
secure_bench_node_ports
secure_properties
"""


def secure_properties_text(tmp: Path, node: int = 1, bench: str = "") -> str:
    """What secure_properties appends to node NODE's server.properties on a new cluster made
    with ``--bench-listeners BENCH`` ('' for none)."""
    secrets = tmp / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "store.password").write_text(STORE_PASSWORD + "\n")
    (secrets / "admin.password").write_text(ADMIN_PASSWORD + "\n")
    done = subprocess.run(
        ["bash", "-c", _SCRIPT, "secure-properties", str(tmp), str(SECURE_SH),
         str(node), bench, str(CLIENT_PORTS[node - 1]), str(CONTROLLER_PORTS[node - 1]), HOST],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def properties_of(text: str) -> dict[str, str]:
    """key=value lines of a Java properties text (no continuation lines are used here)."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


def secure_properties(tmp: Path, node: int = 1, bench: str = "") -> dict[str, str]:
    return properties_of(secure_properties_text(tmp, node, bench))
