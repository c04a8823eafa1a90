"""The forked background runs its job in a child of its own, on the state as it was at
the fork (the parent may change it meanwhile), kills a child that runs past its time, and
says how a child that died ended."""

from __future__ import annotations

import os
import signal
import time

import pytest

from dispatch.adapters.posix.forked import ForkedBackground
from projections.background import Job, JobFailed


def wait(job: Job, timeout_s: float = 30.0) -> bytes:
    deadline = time.monotonic() + timeout_s
    while (out := job.result()) is None:
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.01)
    return out


def test_the_job_runs_in_another_process() -> None:
    job = ForkedBackground().start(lambda: str(os.getpid()).encode())
    assert int(wait(job)) != os.getpid()


def test_the_child_sees_the_state_as_it_was_at_the_fork() -> None:
    rows = {"d1": "available"}

    def encode() -> bytes:
        time.sleep(0.2)  # the parent changes the rows meanwhile
        return repr(sorted(rows.items())).encode()

    job = ForkedBackground().start(encode)
    rows["d1"], rows["d2"] = "busy", "available"
    assert wait(job) == b"[('d1', 'available')]"


def test_a_child_that_runs_past_its_time_is_killed() -> None:
    now = [0.0]
    background = ForkedBackground(timeout_s=5, clock=lambda: now[0])
    job = background.start(lambda: time.sleep(60) or b"")
    assert job.result() is None
    now[0] = 6.0
    with pytest.raises(JobFailed, match="ran past 5 s and was killed"):
        job.result()
    pid = job.pid  # type: ignore[attr-defined]
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: no zombie left


def test_a_child_that_dies_is_told_by_its_signal() -> None:
    def die() -> bytes:
        os.kill(os.getpid(), signal.SIGKILL)
        return b"never"

    with pytest.raises(JobFailed, match="signal SIGKILL"):
        wait(ForkedBackground().start(die))


def test_a_job_time_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        ForkedBackground(timeout_s=0)
