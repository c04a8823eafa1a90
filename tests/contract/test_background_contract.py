"""The background port (``projections.background.Background``) over its two adapters, the
inline reference and the forked child: a job's bytes come back whole (10 MB
too), once; a job that raises is a ``JobFailed`` naming the error, never a silent
empty result."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from projections.background import Background, InlineBackground, Job, JobFailed


@pytest.fixture(params=["inline", "forked"])
def background(request: pytest.FixtureRequest) -> Background:
    if request.param == "inline":
        return InlineBackground()
    from dispatch.adapters.posix.forked import ForkedBackground

    return ForkedBackground(timeout_s=30)


def wait(job: Job, timeout_s: float = 30.0) -> bytes:
    deadline = time.monotonic() + timeout_s
    while True:
        out = job.result()
        if out is not None:
            return out
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.01)


def test_a_jobs_bytes_come_back_whole(background: Background) -> None:
    big = bytes(range(256)) * 40_000  # 10 MB
    assert wait(background.start(lambda: big)) == big
    assert wait(background.start(lambda: b"")) == b""


def test_the_result_is_given_once(background: Background) -> None:
    job = background.start(lambda: b"x")
    assert wait(job) == b"x"
    with pytest.raises(JobFailed, match="taken already"):
        job.result()


def test_a_job_that_raises_fails_naming_the_error(background: Background) -> None:
    def broken() -> bytes:
        raise ValueError("no such view")

    job = background.start(broken)
    with pytest.raises(JobFailed, match="no such view"):
        wait(job)


def test_a_cancelled_job_gives_no_result(background: Background) -> None:
    slow: Callable[[], bytes] = lambda: time.sleep(0.3) or b"late"  # noqa: E731
    job = background.start(slow)
    job.cancel()
    with pytest.raises(JobFailed):
        job.result()
    job.cancel()  # twice: nothing
