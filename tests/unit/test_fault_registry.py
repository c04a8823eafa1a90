"""tests/fault_registry.py: what a killed fault run left behind is undone by the cleanup
``.ci/run`` calls, for real: a cluster's node process stopped through
``scripts/kafka-local.sh stop --brokers 3`` (a stand-in process with a node's command
line, so no Java is needed), a firewall rule with its run's comment and a tmpfs mount
(root and iptables: a failure under CI, a skip elsewhere without them), a dir; and what a
running test still uses is left alone (and fails the ``--strict`` cleanup)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import fault_registry
import pytest


@pytest.fixture(autouse=True)
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "registry"
    monkeypatch.setenv(fault_registry.ENV, str(directory))
    yield directory


def orphaned(entry: Path) -> None:
    """Make the entry's recorder look gone (a pid whose process started at another time:
    what a recorder killed and its pid reused looks like)."""
    data = json.loads(entry.read_text())
    data["owner_started"] = -1
    entry.write_text(json.dumps(data))


def clean() -> tuple[bool, str]:
    said: list[str] = []
    ok = fault_registry.clean(said.append)
    return ok, "\n".join(said)


def root_with(*tools: str) -> None:
    if os.geteuid() == 0 and all(shutil.which(t) for t in tools):
        return
    message = f"needs root and {', '.join(tools)}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def test_a_left_over_cluster_is_stopped_through_kafka_local_sh_by_its_pid_file(
    tmp_path: Path,
) -> None:
    state = tmp_path / "cluster"
    node = state / "node-1"
    node.mkdir(parents=True)
    (state / "cluster.env").write_text(
        "BROKERS=3\nCLUSTER_ID=x\nPORTS=29092,29093,29094\n"
        "CONTROLLER_PORTS=29192,29193,29194\nSECURE=0\n"
    )
    props = node / "server.properties"
    # A stand-in for the node's JVM: its command line is what the script looks for.
    jvm = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", "kafka.Kafka", str(props)]
    )
    try:
        (node / "kafka.pid").write_text(f"{jvm.pid}\n")
        entry = fault_registry.record("cluster", str(state))
        orphaned(entry)
        ok, said = clean()
        assert ok, said
        assert jvm.wait(timeout=30) == -15  # SIGTERM, from kafka-local.sh stop
        assert not entry.exists()
        assert f"cluster {state}: kafka-local.sh stop --brokers 3" in said, said
        assert "stopping node 1 pid" in said, said
    finally:
        if jvm.poll() is None:
            jvm.kill()
            jvm.wait()


def test_a_left_over_firewall_rule_is_deleted_by_its_specification() -> None:
    root_with("iptables")
    # A uid that no process runs as and no passwd entry names (the rule matches nothing).
    uid = next(u for u in range(62_000, 63_000) if not Path(f"/run/user/{u}").exists())
    # With the run's comment, as fault 3's rule: deleted by that exact specification.
    rule = ["OUTPUT", "-o", "lo", "-p", "tcp", "-m", "owner", "--uid-owner", str(uid),
            "-m", "comment", "--comment", fault_registry.run_tag(), "-j", "DROP"]  # fmt: skip

    def present() -> bool:
        return subprocess.run(["iptables", "-w", "5", "-C", *rule], check=False,
                              capture_output=True).returncode == 0  # fmt: skip

    assert not present()
    entry = fault_registry.record("iptables", rule)
    subprocess.run(["iptables", "-w", "5", "-A", *rule], check=True)
    try:
        orphaned(entry)
        ok, said = clean()
        assert ok, said
        assert not present(), said
        assert not entry.exists()
        assert "deleted 1 copy" in said, said
    finally:
        while present():
            subprocess.run(["iptables", "-w", "5", "-D", *rule], check=False)


def test_a_left_over_tmpfs_mount_is_unmounted(tmp_path: Path) -> None:
    root_with("mount", "umount")
    point = tmp_path / "data"
    point.mkdir()
    entry = fault_registry.record("mount", str(point))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)], check=True)
    try:
        assert fault_registry.mounted(str(point))
        (point / "held").write_bytes(b"x")
        orphaned(entry)
        ok, said = clean()
        assert ok, said
        assert not fault_registry.mounted(str(point)), said
        assert not entry.exists()
        assert f"mount {point}: unmounted" in said, said
    finally:
        if fault_registry.mounted(str(point)):
            subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_left_over_dir_is_removed_and_what_a_running_test_uses_is_left(
    tmp_path: Path,
) -> None:
    gone, kept = tmp_path / "gone", tmp_path / "kept"
    for d in (gone, kept):
        (d / "sub").mkdir(parents=True)
    left_over = fault_registry.record("dir", str(gone))
    orphaned(left_over)
    in_use = fault_registry.record("dir", str(kept))  # recorded by this (running) process
    ok, said = clean()
    assert ok, said
    assert not gone.exists() and not left_over.exists()
    assert kept.exists() and in_use.exists()
    assert f"its test (pid {os.getpid()}) is running" in said, said
    # Strict (.ci/run, once the tests' processes are gone): an entry still held fails.
    strict = subprocess.run(
        [sys.executable, fault_registry.__file__, "--strict"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "FAILED: nothing should be running now (--strict)" in strict.stdout, strict.stdout
    assert kept.exists() and in_use.exists()
    fault_registry.forget(in_use)
    assert clean() == (True, f"fault cleanup: nothing recorded in {in_use.parent}")


def test_what_cannot_be_undone_is_reported_and_kept(tmp_path: Path) -> None:
    state = tmp_path / "cluster"
    node = state / "node-1"
    node.mkdir(parents=True)
    props = node / "server.properties"
    # A node process the script cannot find (no pid file): the cleanup must not say done.
    jvm = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", "kafka.Kafka", str(props)]
    )
    try:
        deadline = time.monotonic() + 10
        while str(props) not in Path(f"/proc/{jvm.pid}/cmdline").read_bytes().decode():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        entry = fault_registry.record("cluster", str(state))
        orphaned(entry)
        ok, said = clean()
        assert not ok
        assert "still running after kafka-local.sh stop" in said, said
        assert entry.exists()
    finally:
        jvm.kill()
        jvm.wait()
