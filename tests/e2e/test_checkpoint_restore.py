"""Shard checkpoints on the embedded engine: restore = newest usable checkpoint + the tail.

A short simulation writes the log; the matcher's folded state after a restore from a
checkpoint (at any position, in chunks of any size) plus the events after it must equal a
full replay's. On SQLite the checkpoints are written by the engine itself, a chunk a batch;
a damaged one is passed over for the one before it, or for a full replay.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch.adapters.sqlite.checkpoints import TABLE
from dispatch.adapters.sqlite.datadir import shard_path
from dispatch.bootstrap import build_embedded_engine, build_markets, build_worker
from dispatch.checkpoints import assemble, encode_chunks, load_into
from dispatch.matching.matcher import Matcher
from dispatch.matching.state import capture
from dispatch.settings import Settings
from dispatch.shard.live import TIMED_TOPICS, LiveAggregates
from dispatch.shard.worker import _TIMESTAMP_JSON, ShardWorker, snapshot_of
from dispatch.simulator.clock import SimClock
from dispatch.simulator.runner import SimConfig, Simulation


def simulate(data_dir: Path, **checkpointing: int) -> Settings:
    s = Settings(data_dir=data_dir, shards=1, **checkpointing)  # type: ignore[arg-type]
    clock = SimClock()
    engine = build_embedded_engine(s, clock)

    def step(_sent: list[str]) -> list[Any]:
        return [o for report in engine.run_once() for o in report.outcomes]

    config = SimConfig(drivers=80, minutes=6, seed=5, demand_per_min=6, warmup_minutes=0)
    sim = Simulation(config, engine.transport, step, clock, build_markets(s))
    for worker in engine.workers.values():
        worker.listeners.append(sim.on_commit)
    report = sim.run()
    assert report.events > 1_000 and report.served > 10
    engine.stop()
    for worker in engine.workers.values():
        worker.app.close()
    return s


def replayed(s: Settings) -> ShardWorker:
    """A worker restored by folding the whole log (no checkpoint store)."""
    worker = build_worker(s, 0, lambda: 0.0)
    worker.checkpoint_store = None
    worker.restore()
    return worker


@pytest.fixture(scope="module")
def log_without_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return simulate(tmp_path_factory.mktemp("log"), checkpoint_every_events=0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.floats(0.0, 1.0), rows=st.integers(1, 400))
def test_a_checkpoint_at_any_position_plus_the_tail_restores_what_a_full_replay_does(
    log_without_checkpoints: Settings,
    where: float,
    rows: int,
    matcher_state: Callable[[Matcher], dict[str, Any]],
) -> None:
    s = log_without_checkpoints
    full = replayed(s)
    end = full.app.position()
    position = int(where * end)
    worker = build_worker(s, 0, lambda: 0.0)
    worker.fold(1, position)
    at_p = worker.last_event_time
    chunks = list(encode_chunks(capture(worker.matcher), position, at_p, 0.0, rows))
    assert [c.seq for c in chunks] == list(range(len(chunks))) and chunks[-1].last
    checkpoint = assemble(position, chunks)
    assert checkpoint.last_event_time == at_p
    restored = build_worker(s, 0, lambda: 0.0)
    load_into(restored.matcher, checkpoint)
    assert matcher_state(restored.matcher) == matcher_state(
        worker.matcher
    )  # exactly the state at P
    assert restored.fold(position + 1) == end - position  # and only the tail is read
    assert matcher_state(restored.matcher) == matcher_state(full.matcher)
    full.app.close(), worker.app.close(), restored.app.close()


@pytest.fixture
def checkpointed(tmp_path: Path) -> Settings:
    """A log whose engine wrote checkpoints every 100 events, 7 rows a chunk."""
    return simulate(tmp_path, checkpoint_every_events=100, checkpoint_chunk_rows=7)


def positions(s: Settings) -> list[int]:
    with sqlite3.connect(shard_path(s.data_dir, 0)) as db:
        rows = db.execute(f"SELECT position FROM {TABLE} WHERE last = 1 ORDER BY position DESC")
        return [int(r[0]) for r in rows]


def damage(s: Settings, position: int) -> None:
    with sqlite3.connect(shard_path(s.data_dir, 0)) as db:
        db.execute(f"UPDATE {TABLE} SET data = x'7b7d' WHERE position = ? AND seq = 0", (position,))


def replays_the_whole_log(
    worker: ShardWorker,
    s: Settings,
    caplog: pytest.LogCaptureFixture,
    matcher_state: Callable[[Matcher], dict[str, Any]],
    says: str,
) -> None:
    """The worker restores by folding the whole log, says why, and holds a full replay's
    state."""
    with caplog.at_level(logging.WARNING):
        read = worker.restore()
    assert worker.restored_from is None and read == worker.app.position()
    assert says in caplog.text
    assert matcher_state(worker.matcher) == matcher_state(replayed(s).matcher)


def test_the_engine_writes_checkpoints_a_chunk_a_batch_and_keeps_two_complete_ones(
    checkpointed: Settings,
) -> None:
    with sqlite3.connect(shard_path(checkpointed.data_dir, 0)) as db:
        chunks = db.execute(f"SELECT position, COUNT(*) FROM {TABLE} GROUP BY position").fetchall()
    complete = positions(checkpointed)
    assert len(complete) == 2 and complete[0] > complete[1]
    assert all(count > 1 for _, count in chunks)  # each checkpoint spanned several batches
    assert {p for p, _ in chunks} - set(complete) <= {max(p for p, _ in chunks)}  # in progress


def test_a_restart_restores_from_the_newest_checkpoint_and_equals_a_full_replay(
    checkpointed: Settings,
    matcher_state: Callable[[Matcher], dict[str, Any]],
) -> None:
    worker = build_worker(checkpointed, 0, lambda: 0.0)
    read = worker.restore()
    full = replayed(checkpointed)
    newest = positions(checkpointed)[0]
    assert worker.restored_from == newest
    assert read == full.app.position() - newest  # only the tail was read
    assert matcher_state(worker.matcher) == matcher_state(full.matcher)
    # The engine labelled its checkpoint with the position whose state it holds.
    upto = build_worker(checkpointed, 0, lambda: 0.0)
    upto.fold(1, newest)
    written = build_worker(checkpointed, 0, lambda: 0.0)
    assert written.checkpoint_store is not None
    chunks = written.checkpoint_store.checkpoint_chunks(newest)
    load_into(written.matcher, assemble(newest, chunks), written.app.open_personal)
    assert matcher_state(written.matcher) == matcher_state(upto.matcher)


def test_a_damaged_checkpoint_is_passed_over_for_the_one_before_it_and_the_log_says_so(
    checkpointed: Settings,
    caplog: pytest.LogCaptureFixture,
    matcher_state: Callable[[Matcher], dict[str, Any]],
) -> None:
    newest, previous = positions(checkpointed)
    damage(checkpointed, newest)
    worker = build_worker(checkpointed, 0, lambda: 0.0)
    with caplog.at_level(logging.WARNING):
        worker.restore()
    assert worker.restored_from == previous
    assert f"checkpoint at {newest} is unusable" in caplog.text
    assert matcher_state(worker.matcher) == matcher_state(replayed(checkpointed).matcher)


def test_with_every_checkpoint_damaged_the_shard_replays_its_whole_log_and_says_so(
    checkpointed: Settings,
    caplog: pytest.LogCaptureFixture,
    matcher_state: Callable[[Matcher], dict[str, Any]],
) -> None:
    for position in positions(checkpointed):
        damage(checkpointed, position)
    worker = build_worker(checkpointed, 0, lambda: 0.0)
    replays_the_whole_log(worker, checkpointed, caplog, matcher_state,
                          says="no usable checkpoint; replaying the whole log")  # fmt: skip


def test_after_kill_9_during_a_checkpoint_the_half_written_one_is_never_used(
    tmp_path: Path,
    matcher_state: Callable[[Matcher], dict[str, Any]],
) -> None:
    """A simulation whose checkpoints span a hundred batches each (300 drivers, 3 rows a
    chunk) is killed with SIGKILL while one is being written; a restart restores from a
    complete one, equals a full replay, and `replay verify` finds the log clean."""
    data = tmp_path / "log"
    env = {
        **os.environ,
        "DISPATCH_SHARDS": "1",
        "DISPATCH_CHECKPOINT_EVERY_EVENTS": "200",
        "DISPATCH_CHECKPOINT_CHUNK_ROWS": "3",
    }
    command = [sys.executable, "-m", "dispatch", "simulate", "--drivers", "300",
               "--minutes", "60", "--data-dir", str(data)]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    s = Settings(data_dir=data, shards=1)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            complete, partial = _complete_and_partial(s)
            if complete and partial:
                break
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    complete, partial = _complete_and_partial(s)
    assert partial and complete
    worker = build_worker(s, 0, lambda: 0.0)
    worker.restore()
    assert worker.restored_from == complete[0] and worker.restored_from not in partial
    assert matcher_state(worker.matcher) == matcher_state(replayed(s).matcher)
    worker.app.close()
    verify = subprocess.run(
        [sys.executable, "-m", "dispatch", "replay", "verify", "--data-dir", str(data)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _complete_and_partial(s: Settings) -> tuple[list[int], set[int]]:
    """The complete checkpoints (newest first) and those with chunks but no last one."""
    try:
        with sqlite3.connect(f"file:{shard_path(s.data_dir, 0)}?mode=ro", uri=True) as db:
            rows = db.execute(f"SELECT position, MAX(last) FROM {TABLE} GROUP BY position")
            found = rows.fetchall()
    except sqlite3.OperationalError:  # not created yet, or locked for a moment
        return [], set()
    complete = sorted((p for p, last in found if last), reverse=True)
    return complete, {p for p, last in found if not last}


class Unreadable:
    def checkpoint_positions(self) -> list[int]:
        raise TimeoutError("the checkpoints topic did not answer")

    def checkpoint_chunks(self, position: int) -> list[Any]:
        raise AssertionError("not reached")


def test_a_checkpoint_store_that_cannot_be_read_means_a_full_replay_not_a_lost_state(
    checkpointed: Settings,
    caplog: pytest.LogCaptureFixture,
    matcher_state: Callable[[Matcher], dict[str, Any]],
) -> None:
    worker = build_worker(checkpointed, 0, lambda: 0.0)
    worker.checkpoint_store = Unreadable()
    replays_the_whole_log(worker, checkpointed, caplog, matcher_state,
                          says="checkpoints unreadable")  # fmt: skip


def test_a_store_holding_only_the_tail_recovers_from_its_opening_checkpoint_when_unreadable(
    checkpointed: Settings,
    caplog: pytest.LogCaptureFixture,
    matcher_state: Callable[[Matcher], dict[str, Any]],
) -> None:
    """A Kafka store opened from a checkpoint holds no log before it: a recover after a
    failed batch cannot replay the whole log, and a checkpoints topic that does not answer
    just then must not take the shard down: it restores from the checkpoint it opened from."""
    opened = build_worker(checkpointed, 0, lambda: 0.0)
    opened.restore()
    assert opened.checkpoint_store is not None and opened.restored_from is not None
    position = opened.restored_from
    chosen = assemble(position, opened.checkpoint_store.checkpoint_chunks(position))
    worker = build_worker(checkpointed, 0, lambda: 0.0)
    worker.floor = position  # as open_shard sets it for a tail-only store
    worker.restore(chosen)
    worker.checkpoint_store = Unreadable()
    with caplog.at_level(logging.WARNING):
        worker.recover()
    assert worker.restored_from == position
    assert "restoring from the checkpoint it was opened from" in caplog.text
    assert matcher_state(worker.matcher) == matcher_state(replayed(checkpointed).matcher)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    where=st.floats(0.0, 1.0),
    later=st.floats(0.0, 1.0),
    retention_s=st.sampled_from([20.0, 90.0, 86_400.0]),
)
def test_live_aggregates_at_any_position_with_fuzzy_snapshots_plus_the_tail_equal_a_full_replay(
    log_without_checkpoints: Settings, where: float, later: float, retention_s: float
) -> None:
    """What a checkpoint carries for a store that keeps only the tail (Kafka): the live
    aggregates fixed at position P, each snapshot taken at some later position Q (a chunk
    is written batches after P). Every aggregate the tail after P changes is live at P or
    created after it, and each live one rebuilt from its snapshot plus its events after the
    snapshot's version equals the full replay's."""
    s = log_without_checkpoints
    full = replayed(s)
    end = full.app.position()
    position = int(where * end)
    upto = position + int(later * (end - position))
    at_p = build_worker(s, 0, lambda: 0.0)
    at_p.live = LiveAggregates(retention_s)
    at_p.fold(1, position)
    live = {aggregate_id for aggregate_id, _, _ in at_p.live_rows()}
    versions_at_q: dict[Any, int] = {}
    tail: dict[Any, list[Any]] = {}
    created_after_p: set[Any] = set()
    for n in full.app.recorder.select_notifications(1, 10_000_000):
        if n.id <= upto:
            versions_at_q[n.originator_id] = n.originator_version
        if n.id > position:
            tail.setdefault(n.originator_id, []).append(n)
            if n.originator_version == 1:
                created_after_p.add(n.originator_id)
    assert set(tail) <= live | created_after_p
    mapper = full.app.mapper
    for aggregate_id in live:
        snapshot = snapshot_of(full.app, aggregate_id, versions_at_q[aggregate_id])
        assert snapshot is not None
        version, topic, state = snapshot
        stored = StoredEvent(aggregate_id, version, topic, state)
        aggregate = mapper.to_domain_event(stored).mutate(None)
        for n in tail.get(aggregate_id, []):
            if n.originator_version > version:
                aggregate = mapper.to_domain_event(n).mutate(aggregate)
        expected = full.app.repository.get(aggregate_id)
        assert _state(aggregate) == _state(expected), aggregate_id
    full.app.close(), at_p.app.close()


def _state(aggregate: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def test_the_fold_reads_each_timed_event_s_time_as_the_decoded_event_has_it(
    log_without_checkpoints: Settings,
) -> None:
    """The live set's times come from the front of the stored state, not a full decode."""
    worker = replayed(log_without_checkpoints)
    timed = [
        n
        for n in worker.app.recorder.select_notifications(1, 10_000_000)
        if n.topic in TIMED_TOPICS
    ]
    assert len(timed) > 100
    for n in timed:
        assert n.state.startswith(_TIMESTAMP_JSON)  # the fast path, not the fallback
        decoded: Any = worker.app.mapper.to_domain_event(n)
        assert worker._event_time(n) == decoded.timestamp.timestamp()
    worker.app.close()
