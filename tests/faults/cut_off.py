"""Cutting one process off from the brokers (fault 3, issue #16): the process runs under a
user id of its own, and a firewall rule drops its TCP traffic on the loopback interface
(``iptables -A OUTPUT -o lo -p tcp -m owner --uid-owner U -j DROP``): its connections stay
open but carry nothing, as in a network split, while every other process on the machine
reaches the brokers. Needs root and iptables (Debian's ``iptables`` package; the nf_tables
backend works): without them the test skips, or fails under CI.

The user id is a free number (no passwd entry is made, so none is left behind); the
process gets a data dir it owns, removed afterwards. The rule is deleted by the exact
specification it was added with, whatever happens.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

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
    used = set()
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
    """The rule that drops the loopback TCP traffic of one user id."""

    def __init__(self, uid: int) -> None:
        self.rule = ["OUTPUT", "-o", "lo", "-p", "tcp", "-m", "owner", "--uid-owner",
                     str(uid), "-j", "DROP"]  # fmt: skip

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
    data_dir = Path(tempfile.mkdtemp(prefix="fault3-worker-"))
    try:
        os.chown(data_dir, uid, uid)
        yield uid, firewall, data_dir
    finally:
        try:
            firewall.restore()
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        assert not firewall.present, f"the rule {firewall.rule} is still there"
