"""Cutting one process off from the brokers (fault 3, issue #16): the process runs under a
user id of its own, and a firewall rule drops its TCP traffic on the loopback interface
(``iptables -A OUTPUT -o lo -p tcp -m owner --uid-owner U -m comment --comment
dispatch-<run> -j DROP``, the comment naming this run): its connections stay open but
carry nothing, as in a network split, while every other process on the machine
reaches the brokers. Needs root and iptables (Debian's ``iptables`` package; the nf_tables
backend works): without them the test skips, or fails under CI.

The user id is a free number (no passwd entry is made, so none is left behind); the
process gets a data dir it owns, removed afterwards. The rule is deleted by the exact
specification it was added with, whatever happens; both are written down first in
tests/fault_registry.py, for a run killed before it could undo them.

``dump_batches`` tells who wrote what: every record batch of a node's partitions with its
producer id and epoch, read from the segment files by Kafka's own ``DumpLogSegments``, and
whether its transaction committed.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import fault_registry
import pytest
from local_cluster import LOG4J_CONFIG

IPTABLES = "iptables"
UIDS = range(61_000, 62_000)  # a free one is taken from here


def root_and_iptables_or_skip() -> None:
    """Skip unless root with iptables on PATH (under CI: fail, never go green by skipping)."""
    if os.geteuid() == 0 and shutil.which(IPTABLES) and shutil.which("setpriv"):
        return
    message = "cutting a worker off needs root, iptables (apt-get install iptables) and setpriv"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _uids_in_use() -> set[int]:
    used: set[int] = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            for line in status.read_text().splitlines():
                if line.startswith("Uid:"):
                    used.update(int(u) for u in line.split()[1:])
        except OSError:
            continue
    return used


def free_uid() -> int:
    """A user id with no passwd entry and no process running as it."""
    used = _uids_in_use()
    for uid in UIDS:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            if uid not in used:
                return uid
    raise RuntimeError(f"no free user id in {UIDS}")


def as_user(uid: int) -> list[str]:
    """The command prefix that runs a program as ``uid`` (group ``uid``, no other groups).
    setpriv rather than Popen's ``user=``: the interpreter lives under /root here (pyenv),
    which setpriv still reaches when it runs the program; the program itself runs with no
    capability."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


class Firewall:
    """The rule that drops the loopback TCP traffic of one user id. It carries a comment
    naming this run (``fault_registry.run_tag()``: the registry dir's name and this
    process's pid), so that it is told apart from any other run's rule, and it is checked
    and deleted by that exact specification, comment included."""

    def __init__(self, uid: int) -> None:
        self.rule = ["OUTPUT", "-o", "lo", "-p", "tcp", "-m", "owner", "--uid-owner",
                     str(uid), "-m", "comment", "--comment", fault_registry.run_tag(),
                     "-j", "DROP"]  # fmt: skip

    def _iptables(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [IPTABLES, "-w", "5", action, *self.rule],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    @property
    def present(self) -> bool:
        return self._iptables("-C").returncode == 0

    def cut(self) -> None:
        assert not self.present, f"a rule {self.rule} is there already"
        done = self._iptables("-A")
        assert done.returncode == 0, done.stderr

    def restore(self) -> None:
        """Delete the rule (every copy of it); a no-op when it is not there."""
        while self.present:
            done = self._iptables("-D")
            assert done.returncode == 0, done.stderr


@contextmanager
def own_user() -> Iterator[tuple[int, Firewall, Path]]:
    """A free user id, its firewall rule (not added yet) and a data dir it owns; at the
    end the rule is gone and the dir removed, whatever happened."""
    root_and_iptables_or_skip()
    uid = free_uid()
    firewall = Firewall(uid)
    # Written down before they exist: if this process dies before the ``finally`` below
    # (a SIGKILL), tests/fault_registry.py deletes the rule and the dir. The dir's name is
    # chosen first (random, as mkdtemp's) so that it can be recorded before it is made; the
    # mkdir fails rather than take a dir that is there already (then neither entry stands:
    # nothing was made, and such a dir is not this run's to remove).
    rule = fault_registry.record("iptables", firewall.rule)
    data_dir = Path(tempfile.gettempdir()) / f"fault3-worker-{secrets.token_hex(8)}"
    made = fault_registry.record("dir", str(data_dir))
    try:
        data_dir.mkdir(mode=0o700)
    except BaseException:
        fault_registry.forget(made)
        fault_registry.forget(rule)
        raise
    try:
        os.chown(data_dir, uid, uid)
        yield uid, firewall, data_dir
    finally:
        try:
            firewall.restore()
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        assert not firewall.present, f"the rule {firewall.rule} is still there"
        fault_registry.forget(rule)
        if not data_dir.exists():
            fault_registry.forget(made)


# -- who wrote what: the record batches' producer ids and epochs, from the brokers' files --

DUMP_LOG_SEGMENTS = "kafka.tools.DumpLogSegments"  # Kafka's kafka-dump-log.sh


@dataclass(frozen=True)
class LogBatch:
    """One record batch of a partition's log, as Kafka's ``DumpLogSegments`` prints its
    header: the producer id and epoch are the writer's, stamped by its client and checked by
    the broker, so a batch says which producer (and which opening of a transactional id)
    wrote it. ``state``: ``committed`` / ``aborted`` (a transactional batch, by the next
    marker of its producer in the partition), ``open`` (no marker after it), ``plain`` (not
    transactional), ``marker`` (a control batch)."""

    topic: str
    partition: int
    base_offset: int
    last_offset: int  # the batch's last offset (kept when compaction removes records)
    count: int
    producer_id: int
    producer_epoch: int
    create_time_ms: int  # the batch's CreateTime: the latest of its records'
    state: str


def dump_batches(
    classpath: str, data_dir: Path, topics: Iterable[str], log_dir: Path
) -> list[LogBatch]:
    """Every batch of every partition of ``topics`` in one node's data dir, read from its
    segment files by Kafka's own ``DumpLogSegments`` (``--deep-iteration``, for the markers'
    COMMIT / ABORT), in log order; each transactional batch is given the outcome of its
    producer's next marker in the partition, as a ``read_committed`` reader decides it."""
    wanted = set(topics)
    files = [
        str(segment)
        for d in sorted(data_dir.iterdir())
        if d.is_dir() and d.name.rsplit("-", 1)[0] in wanted
        for segment in sorted(d.glob("*.log"))
    ]
    assert files, f"no segment of {sorted(wanted)} under {data_dir}"
    command = [
        "java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", f"-Dkafka.logs.dir={log_dir}",
        "-cp", classpath, DUMP_LOG_SEGMENTS, "--deep-iteration", "--files", ",".join(files),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"DumpLogSegments exited {done.returncode}:\n{done.stderr}"
    return _decide(_parse_dump(done.stdout))


_FIELD = re.compile(r"(\w+): (\S+)")


def _parse_dump(out: str) -> list[tuple[LogBatch, str | None]]:
    """(batch with state "?" , its marker's type for a control batch), in the order printed."""
    found: list[tuple[LogBatch, str | None]] = []
    topic, partition = "", -1
    for line in out.splitlines():
        if line.startswith("Dumping "):
            name = Path(line.removeprefix("Dumping ").strip()).parent.name
            head, _, number = name.rpartition("-")
            topic, partition = head, int(number)
        elif line.startswith("baseOffset: "):
            f = dict(_FIELD.findall(line))
            control = f["isControl"] == "true"
            batch = LogBatch(
                topic, partition, int(f["baseOffset"]), int(f["lastOffset"]), int(f["count"]),
                int(f["producerId"]), int(f["producerEpoch"]), int(f["CreateTime"]),
                "marker" if control else ("?" if f["isTransactional"] == "true" else "plain"),
            )  # fmt: skip
            found.append((batch, None))
        elif "endTxnMarker: " in line:
            batch, _ = found[-1]
            assert batch.state == "marker", line
            found[-1] = (batch, line.split("endTxnMarker: ", 1)[1].split()[0])
    return found


def _decide(parsed: list[tuple[LogBatch, str | None]]) -> list[LogBatch]:
    """Each transactional batch's state by its producer's next marker in its partition."""
    decided: list[LogBatch] = []
    pending: dict[tuple[str, int, int], list[int]] = {}  # (topic, partition, pid) -> indexes
    for batch, marker in parsed:
        key = (batch.topic, batch.partition, batch.producer_id)
        if batch.state == "?":
            pending.setdefault(key, []).append(len(decided))
        elif batch.state == "marker":
            assert marker in ("COMMIT", "ABORT"), (batch, marker)
            state = "committed" if marker == "COMMIT" else "aborted"
            for i in pending.pop(key, []):
                decided[i] = replace(decided[i], state=state)
        decided.append(batch)
    for indexes in pending.values():
        for i in indexes:
            decided[i] = replace(decided[i], state="open")
    return decided
