"""A Kafka worker opening shards collects the heap first, pauses the collector while the
restores run, and freezes what they built without collecting it (a collection of it took
about 0.3 s of a takeover for a few hundred cyclic objects); it leaves the collector as it
found it, and freezes nothing of a restore that failed."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from dispatch.adapters.kafka import worker as worker_module
from dispatch.adapters.kafka.worker import KafkaWorker, WorkerStats


def bare_worker(open_: Any) -> KafkaWorker:
    worker = KafkaWorker.__new__(KafkaWorker)
    worker.lost, worker.shards, worker.stats = {}, {}, WorkerStats()
    worker.board, worker._foreign, worker._unrewound = None, {}, set()
    worker._next_offset = {}
    worker._open = open_  # type: ignore[method-assign]
    return worker


@pytest.mark.parametrize("fails", [False, True])
def test_shards_open_after_a_collection_and_are_frozen_uncollected(
    monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    calls: list[str] = []

    def collect(*args: Any) -> int:
        calls.append("collect")
        return 0

    monkeypatch.setattr(gc, "collect", collect)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))

    def open_(shard: int) -> Any:
        calls.append(f"open {shard} {'paused' if not gc.isenabled() else 'running'}")
        if fails and shard == 1:
            raise ConnectionError("the broker went away")
        return object()

    was = gc.isenabled()
    try:
        for enabled in (True, False):
            calls.clear()
            (gc.enable if enabled else gc.disable)()
            worker = bare_worker(open_)
            if fails:
                with pytest.raises(ConnectionError):
                    worker.assign({0, 1})
                assert calls == ["collect", "open 0 paused", "open 1 paused"]
            else:
                worker.assign({0, 1})
                assert calls == ["collect", "open 0 paused", "open 1 paused", "freeze"]
                assert set(worker.shards) == {0, 1} and worker.stats.opened == 2
            assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_an_assignment_that_opens_nothing_collects_and_freezes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(worker_module, "_freeze", lambda: calls.append("collect, freeze"))
    worker = bare_worker(lambda shard: pytest.fail("nothing to open"))
    worker.assign(set())
    assert calls == ["collect, freeze"]  # what a revoke let go
