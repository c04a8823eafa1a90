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
    """(The child keeps no descriptor of the parent's to be told by: it reads the rows half
    a second after the fork, long after the parent changed them.)"""
    rows = {"d1": "available"}

    def encode() -> bytes:
        time.sleep(0.5)
        return repr(sorted(rows.items())).encode()

    job = ForkedBackground().start(encode)
    rows["d1"], rows["d2"] = "busy", "available"
    assert wait(job) == b"[('d1', 'available')]"


def test_a_cancelled_child_is_killed_and_reaped_and_its_file_closed() -> None:
    job = ForkedBackground().start(lambda: time.sleep(60) or b"")
    pid = job.pid  # type: ignore[attr-defined]
    job.cancel()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone, and reaped: no zombie answers
    assert job._out.closed  # type: ignore[attr-defined]


def test_a_result_file_that_cannot_be_made_is_a_failure_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The keeper then keeps the views on its own thread (it falls back on JobFailed)."""

    def no_file() -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr("dispatch.adapters.posix.forked._result_file", no_file)
    with pytest.raises(JobFailed, match=r"no file for the child's result.*Too many open"):
        ForkedBackground().start(lambda: b"")


def test_the_child_keeps_none_of_the_parents_descriptors() -> None:
    """So a restarted server can bind its port while a child still runs."""
    kept = open(os.devnull, "rb")  # noqa: SIM115 - closed below

    def still_open() -> bytes:
        try:
            os.fstat(kept.fileno())
        except OSError:
            return b"closed"
        return b"open"

    try:
        assert wait(ForkedBackground().start(still_open)) == b"closed"
    finally:
        kept.close()


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
