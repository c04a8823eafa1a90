"""What the fault tests make outside pytest's temp dirs, written down so that a run killed
before its fixtures' ``finally`` blocks ran can still be cleaned up (issue #16).

A fault test records each such thing here *before* it makes it, and forgets it once it has
undone it itself: a local cluster's state dir (its node JVMs run in sessions of their own
and outlive pytest), fault 3's firewall rule and its worker's data dir, fault 4's tmpfs
mounts. One JSON file per thing, in ``$DISPATCH_FAULT_REGISTRY`` (``.ci/run`` makes a dir
of its own per run, with mktemp; unset, ``<temp dir>/dispatch-fault-registry``), with the
pid and start time of the process that recorded it.

``python tests/fault_registry.py`` undoes every recorded thing whose recorder is no longer
running (a live one is still using it, and is left alone), and says what it did: clusters
stopped through ``scripts/kafka-local.sh stop --brokers 3`` with their state dir (the
script stops the nodes by their own pid files), mounts unmounted, firewall rules deleted
by their exact specification (comment included), dirs removed. It exits 1 if something
could not be undone (its entry is kept). With ``--strict`` (``.ci/run``, once the tests'
processes are gone) an entry left because its recorder is still running fails too: by
then nothing should be. ``.ci/run`` calls it when it exits, whatever happened. Standard
library only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "DISPATCH_FAULT_REGISTRY"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "kafka-local.sh"
# Undone in this order: the clusters' JVMs hold files on the mounts.
KINDS = ("cluster", "mount", "iptables", "dir")


def registry_dir() -> Path:
    return Path(os.environ.get(ENV) or Path(tempfile.gettempdir()) / "dispatch-fault-registry")


def run_tag() -> str:
    """A name for what this run makes that others might make too (fault 3's firewall rule
    carries it as its comment): the registry dir's name and this process's pid."""
    return f"dispatch-{registry_dir().name.removeprefix('dispatch-')}-{os.getpid()}"


def _started(pid: int) -> int | None:
    """The process's start time (clock ticks after boot, /proc/PID/stat field 22), or None
    if there is no such process or it is a zombie; with the pid it names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[19])


def record(kind: str, spec: str | list[str]) -> Path:
    """Write down that this process is about to make ``spec`` (a cluster's state dir, a
    mount point, a firewall rule's arguments after ``iptables -A``, a dir); the entry."""
    assert kind in KINDS, kind
    directory = registry_dir()
    directory.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    entry = {"kind": kind, "spec": spec, "owner": pid, "owner_started": _started(pid)}
    path = directory / f"{kind}-{pid}-{uuid.uuid4().hex[:12]}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entry))
    tmp.replace(path)
    return path


def forget(entry: Path) -> None:
    """The thing was undone by its maker."""
    entry.unlink(missing_ok=True)


def _run(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), capture_output=True, text=True, timeout=120, check=False, env=env
    )


def _cluster_processes(state_dir: str) -> list[int]:
    """Pids of node JVMs of this state dir still running (the script's own match:
    ``kafka.Kafka <state dir>/node-N/server.properties`` on the command line)."""
    found: list[int] = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"kafka.Kafka {state_dir}/node-" in command and _started(int(cmdline.parent.name)):
            found.append(int(cmdline.parent.name))
    return found


def _stop_cluster(state_dir: str) -> str:
    env = {**os.environ, "KAFKA_LOCAL_CLUSTER_DIR": state_dir, "KAFKA_LOCAL_STOP_TIMEOUT": "20"}
    env.pop("KAFKA_LOCAL_CLUSTER_PORTS", None)  # the cluster's own cluster.env says
    env.pop("KAFKA_LOCAL_CLUSTER_CONTROLLER_PORTS", None)
    done = _run(str(SCRIPT), "stop", "--brokers", "3", env=env)
    said = " ".join(done.stdout.split()) or " ".join(done.stderr.split())
    if done.returncode != 0:
        raise RuntimeError(f"kafka-local.sh stop exited {done.returncode}: {said}")
    left = _cluster_processes(state_dir)
    if left:
        raise RuntimeError(f"node pids {left} still running after kafka-local.sh stop: {said}")
    return f"kafka-local.sh stop --brokers 3: {said}"


def mounted(path: str) -> bool:
    """Whether ``path`` is a mount point now (/proc/self/mountinfo)."""
    target = os.path.realpath(path)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")  # \040 for a space
        if point == target:
            return True
    return False


def _unmount(path: str) -> str:
    if not mounted(path):
        return "not mounted"
    done = _run("umount", path)
    if done.returncode != 0:
        done = _run("umount", "-l", path)  # busy: detached now, freed when let go
    if mounted(path):
        raise RuntimeError(f"umount failed: {done.stderr.strip()}")
    return "unmounted"


def _delete_rule(rule: list[str]) -> str:
    deleted = 0
    while _run("iptables", "-w", "5", "-C", *rule).returncode == 0:
        done = _run("iptables", "-w", "5", "-D", *rule)
        if done.returncode != 0:
            raise RuntimeError(f"iptables -D failed: {done.stderr.strip()}")
        deleted += 1
    return f"deleted {deleted} cop{'y' if deleted == 1 else 'ies'}" if deleted else "not there"


def _remove_dir(path: str) -> str:
    if not os.path.lexists(path):
        return "not there"
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        raise RuntimeError("could not remove it")
    return "removed"


UNDO: dict[str, Callable[[Any], str]] = {
    "cluster": _stop_cluster,
    "mount": _unmount,
    "iptables": _delete_rule,
    "dir": _remove_dir,
}


def clean(say: Callable[[str], None] = print, *, strict: bool = False) -> bool:
    """Undo every recorded thing whose recorder is gone; True if nothing failed. ``strict``:
    a thing left because its recorder is still running is a failure too."""
    directory = registry_dir()
    entries = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            entries.append((path, json.loads(path.read_text())))
        except (OSError, ValueError) as e:
            say(f"fault cleanup: {path} unreadable ({e}); left")
    entries.sort(key=lambda e: KINDS.index(e[1]["kind"]))
    ok = True
    for path, entry in entries:
        kind, spec, owner = entry["kind"], entry["spec"], entry["owner"]
        what = " ".join(spec) if isinstance(spec, list) else spec
        if _started(owner) is not None and _started(owner) == entry["owner_started"]:
            say(
                f"fault cleanup: {kind} {what}: left, its test (pid {owner}) is running"
                + ("; FAILED: nothing should be running now (--strict)" if strict else "")
            )
            ok = ok and not strict
            continue
        try:
            done = UNDO[kind](spec)
        except Exception as e:
            ok = False
            say(f"fault cleanup: {kind} {what}: FAILED, {e}")
            continue
        forget(path)
        say(f"fault cleanup: {kind} {what}: {done}")
    if not entries:
        say(f"fault cleanup: nothing recorded in {directory}")
    return ok


if __name__ == "__main__":
    args = sys.argv[1:]
    if args not in ([], ["--strict"]):
        sys.exit(f"usage: {sys.argv[0]} [--strict]")
    sys.exit(0 if clean(strict=args == ["--strict"]) else 1)
