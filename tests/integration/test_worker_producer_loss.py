"""A shard whose producer is lost, on the real broker (``KafkaWorker``, worker.py).

- a loss that is not a confirmed fence (kafka-python refused to end the transaction): the
  shard is reopened by the member the group assigns it to, its lost batch is read again
  from the committed offsets and decided once, and later commands are served;
- a fence from outside the group (another producer of the shard's transactional id, or the
  transaction coordinator rolling a transaction back on its timeout, here made for real):
  the member the group still assigns the shard to reopens it, and no record taken before
  is skipped or decided twice;
- a member the group evicted (but that has not heard of it) never reopens the shard, fenced
  or not, so never fences the member that serves it now.

The losses are made by the shard's real producer, told to fail (``commit_transaction``,
``abort_transaction``) at the batch that decides a chosen command. Every wait is bounded
and generous; the assertions are on outcomes and on the log, not on times.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka.errors import KafkaError, ProducerFencedError
from kafka.structs import MemberState

from dispatch.adapters.kafka import worker as worker_module
from dispatch.adapters.kafka.batch import Ended, KafkaBatch, Offsets
from dispatch.adapters.kafka.eventstore import ProducerLostError, clients
from dispatch.adapters.kafka.eventstore.writer import PartitionWriter
from dispatch.adapters.kafka.logsource import KafkaLogSource
from dispatch.adapters.kafka.processes import start_worker, stop_worker
from dispatch.adapters.kafka.shard_host import ShardHost
from dispatch.adapters.kafka.topics import Topics, create_topics, delete_topics
from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.adapters.kafka.worker import KafkaWorker
from dispatch.bootstrap import build_kafka_worker, build_personal
from dispatch.domain.ids import new_id
from dispatch.replay.operations import verify
from dispatch.settings import Settings
from dispatch.shard.inbound import Inbound
from schemas import commands as c

pytestmark = pytest.mark.kafka
SHARDS = 2
SHARD = 1  # the shard whose producer is lost
WAIT_S = 120.0  # generous: a bound on a wait, never a condition of the test


@pytest.fixture
def deployment(kafka_bootstrap: str) -> Iterator[Settings]:
    prefix = f"test-pl-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, prefix, SHARDS)
    yield Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, shards=SHARDS)
    delete_topics(kafka_bootstrap, prefix)


def envelope(name: str) -> c.CommandEnvelope:
    return c.CommandEnvelope(
        command_id=str(uuid.uuid4()),
        issued_at=datetime.now(UTC),
        command=c.RegisterDriver(driver_id=new_id(SHARD), name=name),
    )


def open_worker(settings: Settings, member: str, **overrides: Any) -> KafkaWorker:
    worker = build_kafka_worker(settings, member=member, **overrides)
    deadline = time.monotonic() + WAIT_S
    while len(worker.shards) < SHARDS and time.monotonic() < deadline:
        worker.run_once()
    assert len(worker.shards) == SHARDS
    run_until(worker, lambda: False, wait_s=2.0)  # a follow-up rebalance, if any, settles
    return worker


def run_until(worker: KafkaWorker, done: Callable[[], bool], wait_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + wait_s
    while not done() and time.monotonic() < deadline:
        worker.run_once()


def fail_batch_of(
    command_id: str, failures: dict[str, BaseException], monkeypatch: pytest.MonkeyPatch
) -> list[ShardHost]:
    """The batch that decides ``command_id`` (whichever host runs it: a rebalance may have
    reopened the shard since) gets each producer call named in ``failures`` raising its
    error, from then on. Returns the host it happened to, once it has."""
    armed: list[ShardHost] = []

    def raising(error: BaseException) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise error

        return call

    class FailingBatch(KafkaBatch):
        def run(self, inbound: Inbound, offsets: Offsets) -> Ended:
            if not armed and any(cmd.command_id == command_id for cmd in inbound.commands):
                armed.append(self.host)
                for name, error in failures.items():
                    monkeypatch.setattr(self.host.writer.producer, name, raising(error))
            return super().run(inbound, offsets)

    monkeypatch.setattr(worker_module, "KafkaBatch", FailingBatch)
    return armed


# kafka-python refuses to end a transaction once its producer is in a fatal state.
NOT_A_FENCE = {
    "commit_transaction": KafkaError("commit refused: the producer is in a fatal state"),
    "abort_transaction": KafkaError("abort refused: the producer is in a fatal state"),
}


def assert_each_decided_once(
    settings: Settings, counts: Counter[str], commands: dict[str, str]
) -> None:
    """Each command (id -> driver name) has one committed outcome (``counts``, from the
    ``outcome_counts`` fixture) and one registration in the shard's log, and the log
    verifies."""
    assert settings.kafka_bootstrap is not None
    assert {cid: counts[cid] for cid in commands} == dict.fromkeys(commands, 1)
    source = KafkaLogSource(settings.kafka_bootstrap, settings.topic_prefix)
    personal = build_personal(settings)  # names are sealed: opened with the keys topic
    try:
        names = Counter(personal.open(e.data.get("name"), "name") for e in source.read(SHARD))
    finally:
        personal.keys.close()
    assert {name: names[name] for name in commands.values()} == dict.fromkeys(commands.values(), 1)
    _, violations = verify(source)
    assert violations == []


def test_a_producer_lost_without_a_fence_is_reopened_and_its_batch_decided_again_once(
    deployment: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    outcome_counts: Callable[[Settings], Counter[str]],
) -> None:
    assert deployment.kafka_bootstrap is not None
    caplog.set_level(logging.INFO, logger="dispatch.adapters.kafka.worker")
    worker = open_worker(deployment, "owner")
    bus = KafkaTransport(deployment.kafka_bootstrap, deployment.topic_prefix)
    try:
        lost = envelope("in the lost batch")
        armed = fail_batch_of(lost.command_id, NOT_A_FENCE, monkeypatch)
        bus.send_command(lost)
        bus.flush()
        run_until(worker, lambda: bus.outcome(lost.command_id) is not None)
        # The batch's transaction (events, outcome, offsets) could be neither committed nor
        # aborted: the producer was lost, and the member, still the group's owner of the
        # shard, reopened it with a new producer and decided the command again.
        first = bus.outcome(lost.command_id)
        assert first is not None and first.accepted and not first.duplicate
        assert len(armed) == 1 and worker.stats.fenced == 1 and worker.stats.reopened == 1
        assert worker.shards[SHARD] is not armed[0] and not worker.lost

        after = envelope("after the loss")
        bus.send_command(after)
        bus.flush()
        run_until(worker, lambda: bus.outcome(after.command_id) is not None)
        second = bus.outcome(after.command_id)
        assert second is not None and second.accepted
    finally:
        bus.close()
        worker.close()
    assert "lost without a fence" in caplog.text and "reopened in place" in caplog.text
    assert_each_decided_once(
        deployment,
        outcome_counts(deployment),
        {lost.command_id: "in the lost batch", after.command_id: "after the loss"},
    )


def test_a_fence_from_outside_the_group_is_answered_by_the_member_the_group_names(
    deployment: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    outcome_counts: Callable[[Settings], Counter[str]],
) -> None:
    """A producer outside the group takes the shard's transactional id (its init fences the
    worker's producer for real), but no rebalance comes: the group, stable, still assigns
    the shard to this member. Waiting for the group would leave the shard paused for good;
    the member reopens it, its new producer fencing the outsider in turn, and decides the
    commands sent meanwhile, once."""
    assert deployment.kafka_bootstrap is not None
    caplog.set_level(logging.INFO, logger="dispatch.adapters.kafka.worker")
    worker = open_worker(deployment, "owner")
    first_host = worker.shards[SHARD]
    bus = KafkaTransport(deployment.kafka_bootstrap, deployment.topic_prefix)
    tid = f"{deployment.topic_prefix}.shard-{SHARD}"
    outsider = PartitionWriter(deployment.kafka_bootstrap, tid)  # fences the worker's producer
    try:
        names = ["after the outsider's takeover", "and another"]
        sent = [envelope(name) for name in names]
        for env in sent:
            bus.send_command(env)
        bus.flush()
        run_until(worker, lambda: all(bus.outcome(e.command_id) is not None for e in sent))
        for env in sent:
            outcome = bus.outcome(env.command_id)
            assert outcome is not None and outcome.accepted and not outcome.duplicate
        assert worker.stats.fenced >= 1 and worker.stats.reopened >= 1 and not worker.lost
        assert worker.shards[SHARD] is not first_host

        # The outsider was fenced in its turn by the reopened shard's producer (kafka-python
        # says so in the state it refuses the commit in).
        dead_letters = Topics(deployment.topic_prefix).dead_letters
        with pytest.raises(ProducerLostError, match="ProducerFencedError"):
            producer = outsider.begin()
            producer.send(dead_letters, value=b"from outside the group", partition=0)
            outsider.commit()
        # Fenced again soon after: the member backs off instead of reopening at once.
        second = PartitionWriter(deployment.kafka_bootstrap, tid)
        second.close()
        probe = envelope("after the second takeover")
        names.append("after the second takeover")
        sent.append(probe)
        bus.send_command(probe)
        bus.flush()
        run_until(worker, lambda: SHARD in worker.lost)
        lost = worker.lost[SHARD]
        assert lost.attempts >= 1 and lost.next_try - lost.since >= 0.99
        run_until(worker, lambda: bus.outcome(probe.command_id) is not None)
        assert worker.stats.reopened >= 2
    finally:
        outsider.close()
        bus.close()
        worker.close()
    assert "fenced by a newer owner or rolled back" in caplog.text
    assert "reopened in place" in caplog.text
    assert_each_decided_once(
        deployment,
        outcome_counts(deployment),
        {env.command_id: name for env, name in zip(sent, names, strict=True)},
    )


def test_a_transaction_the_coordinator_rolled_back_on_its_timeout_does_not_stall_the_shard(
    deployment: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    outcome_counts: Callable[[Settings], Counter[str]],
) -> None:
    """A real rollback: the shard's producers ask for a 1 s transaction timeout, and one
    batch's commit is held back until the coordinator has rolled the transaction back (it
    looks for timed-out transactions every 10 s by default). kafka-python then reports the
    commit as a fence. The member, still the group's owner, reopens the shard and decides
    the rolled-back command again, once."""
    assert deployment.kafka_bootstrap is not None
    caplog.set_level(logging.INFO, logger="dispatch.adapters.kafka.worker")
    monkeypatch.setattr(clients, "TRANSACTION_TIMEOUT_MS", 1_000)
    worker = open_worker(deployment, "owner")
    bus = KafkaTransport(deployment.kafka_bootstrap, deployment.topic_prefix)
    try:
        rolled_back = envelope("in the rolled-back batch")
        armed = hold_commit_of(rolled_back.command_id, ROLLBACK_WAIT_S, monkeypatch)
        bus.send_command(rolled_back)
        bus.flush()
        run_until(worker, lambda: bus.outcome(rolled_back.command_id) is not None)
        outcome = bus.outcome(rolled_back.command_id)
        assert outcome is not None and outcome.accepted and not outcome.duplicate
        assert len(armed) == 1 and worker.stats.fenced >= 1 and worker.stats.reopened >= 1
        assert not worker.lost and worker.shards[SHARD] is not armed[0]
    finally:
        bus.close()
        worker.close()
    assert "fenced by a newer owner or rolled back" in caplog.text
    assert_each_decided_once(
        deployment, outcome_counts(deployment), {rolled_back.command_id: "in the rolled-back batch"}
    )


# Past the 1 s transaction timeout and the coordinator's 10 s sweep for timed-out ones.
ROLLBACK_WAIT_S = 16.0


def hold_commit_of(
    command_id: str, wait_s: float, monkeypatch: pytest.MonkeyPatch
) -> list[ShardHost]:
    """The batch that decides ``command_id`` waits ``wait_s`` once its records are in the
    transaction (sent and acknowledged: the coordinator counts the transaction's time from
    its first partition), before it adds the offsets and commits. Returns the host it
    happened to, once it has."""
    armed: list[ShardHost] = []

    class HeldBatch(KafkaBatch):
        def run(self, inbound: Inbound, offsets: Offsets) -> Ended:
            if not armed and any(cmd.command_id == command_id for cmd in inbound.commands):
                armed.append(self.host)
            return super().run(inbound, offsets)

        def _send(self, producer: Any, batch: Any) -> None:
            super()._send(producer, batch)
            if armed and armed[0] is self.host and not held:
                held.append(True)
                producer.flush(timeout=10)
                time.sleep(wait_s)

    held: list[bool] = []
    monkeypatch.setattr(worker_module, "KafkaBatch", HeldBatch)
    return armed


@pytest.mark.parametrize(
    "loss",
    [
        KafkaError("begin refused: the producer is in a fatal state"),
        ProducerFencedError(),
    ],
    ids=["lost", "fenced"],
)
def test_an_evicted_member_that_has_not_heard_of_it_never_reopens_a_lost_shard(
    loss: KafkaError,
    deployment: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    outcome_counts: Callable[[Settings], Counter[str]],
) -> None:
    """Its own view says it still owns the shard; the group says otherwise, and a producer
    it opened would fence the member that serves the shard now."""
    assert deployment.kafka_bootstrap is not None
    caplog.set_level(logging.INFO, logger="dispatch.adapters.kafka.worker")
    # A member that stops polling is dropped from the group after max_poll_interval_ms.
    stale = open_worker(deployment, "stale", max_poll_interval_ms=6_000)
    # What it will keep believing: its member id, in a stable group.
    believed = stale.consumer.group_metadata()._replace(state=MemberState.STABLE)
    host = stale.shards[SHARD]
    fresh = start_worker(deployment, tmp_path / "fresh.log", "fresh")
    bus = KafkaTransport(deployment.kafka_bootstrap, deployment.topic_prefix)
    try:
        before = envelope("served by the fresh member")
        bus.send_command(before)
        outcome = bus.wait_outcome(before.command_id, WAIT_S)
        assert outcome is not None and outcome.accepted  # the group moved every shard

        # Its producer is refused a new transaction before anything reaches the broker
        # (a fatal state, or a fence it had heard of).
        def refused() -> None:
            raise loss

        monkeypatch.setattr(host.writer.producer, "begin_transaction", refused)
        monkeypatch.setattr(stale.consumer, "group_metadata", lambda: believed)
        zombie = envelope("zombie")
        stale._process(SHARD, host, Inbound(commands=[zombie]), {})
        assert stale.stats.fenced == 1
        assert stale.lost[SHARD].fenced == isinstance(loss, ProducerFencedError)
        stale._reopen_due()  # its own view passes; the group's does not
        assert SHARD not in stale.shards and stale.stats.reopened == 0
        assert "the group has no member" in caplog.text or "another member" in caplog.text

        after = envelope("still served by the fresh member")
        bus.send_command(after)
        outcome = bus.wait_outcome(after.command_id, WAIT_S)
        assert outcome is not None and outcome.accepted  # the fresh member was not fenced
    finally:
        bus.close()
        stop_worker(fresh)
        stale.consumer.close()
    counts = outcome_counts(deployment)
    assert zombie.command_id not in counts
    assert_each_decided_once(
        deployment,
        counts,
        {
            before.command_id: "served by the fresh member",
            after.command_id: "still served by the fresh member",
        },
    )
