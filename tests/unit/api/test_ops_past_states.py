"""``GET /ops/state?at=`` runs ``dispatch replay state --ops`` as a child process
(``dispatch.api.ops_page.past``): one at a time (a second is 429 with Retry-After), killed
past its time (504), and a failing child's reason is the answer's (502)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from dispatch.api.errors import ApiError
from dispatch.api.ops_page.past import PastStates
from dispatch.settings import Settings


def test_the_child_is_the_replay_cli_with_the_serving_processs_data_dir_and_brokers(
    tmp_path: Path,
) -> None:
    embedded = PastStates(Settings(data_dir=tmp_path), 5.0).command(0.0)
    kafka = PastStates(Settings(data_dir=tmp_path, kafka_bootstrap="127.0.0.1:1"), 5.0)

    assert embedded[1:] == ["-m", "dispatch", "replay", "state", "--ops", "--at",
                            "1970-01-01T00:00:00+00:00", "--data-dir", str(tmp_path)]  # fmt: skip
    assert kafka.command(0.0)[-2:] == ["--kafka", "127.0.0.1:1"]


def test_a_child_that_fails_is_502_with_its_reason(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("not a data dir")
    past = PastStates(Settings(data_dir=not_a_dir), 60.0)

    with pytest.raises(ApiError) as raised:
        asyncio.run(past.at(time.time() - 60))

    assert raised.value.status == 502 and raised.value.error == "past_state_failed"
    assert raised.value.reason.startswith("the replay failed: ") and len(raised.value.reason) > 20


def test_a_child_past_its_time_is_killed_and_504(tmp_path: Path) -> None:
    past = PastStates(Settings(data_dir=tmp_path), 0.05)  # python alone takes longer to start

    with pytest.raises(ApiError) as raised:
        asyncio.run(past.at(time.time() - 60))

    assert raised.value.status == 504 and "longer than 0.05 s" in raised.value.reason


def test_a_second_past_state_while_one_is_computed_is_429(tmp_path: Path) -> None:
    past = PastStates(Settings(data_dir=tmp_path), 60.0)

    async def both() -> list[object]:
        first = asyncio.create_task(past.at(time.time() - 60))
        await asyncio.sleep(0.05)  # the first holds the lock, its child starting
        second = await asyncio.gather(past.at(time.time() - 60), return_exceptions=True)
        return [await asyncio.gather(first, return_exceptions=True), second]

    first, second = asyncio.run(both())

    (refused,) = second  # type: ignore[misc]
    assert isinstance(refused, ApiError) and refused.status == 429
    assert refused.headers.get("Retry-After") == "2"
    (answer,) = first  # type: ignore[misc]
    # the first ran to its end: an empty data dir, so the replay's own reason
    assert isinstance(answer, ApiError) and answer.status == 502
    assert "holds no embedded event log" in answer.reason


def test_a_past_state_whose_asker_went_away_kills_its_child(tmp_path: Path) -> None:
    past = PastStates(Settings(data_dir=tmp_path), 60.0)
    started: list[int] = []
    real = asyncio.create_subprocess_exec

    async def spy(*args: object, **kw: object) -> asyncio.subprocess.Process:
        child = await real(*args, **kw)  # type: ignore[arg-type]
        started.append(child.pid)
        return child

    async def ask_then_leave() -> None:
        asyncio.create_subprocess_exec = spy  # type: ignore[assignment]
        try:
            task = asyncio.create_task(past.at(time.time() - 60))
            while not started:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            asyncio.create_subprocess_exec = real

    asyncio.run(ask_then_leave())

    import os

    with pytest.raises(ProcessLookupError):  # killed and reaped: no such process
        os.kill(started[0], 0)
    assert not past._lock.locked()
