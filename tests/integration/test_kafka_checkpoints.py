"""Shard checkpoints on the real broker: written in the batch transactions, used on takeover.

One worker runs a shard with a checkpoint every 40 events, 3 rows a chunk, while drivers
register, go online and ping and riders request rides (some offered, some waiting for a
driver); then it stops and a second worker takes the shard over. The second restores its
matcher from the newest checkpoint in the checkpoints topic plus the events after it, and
must hold exactly what a full replay of the events partition gives.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dispatch.adapters.kafka.checkpoints import KafkaCheckpointStore
from dispatch.adapters.kafka.logsource import KafkaLogSource
from dispatch.adapters.kafka.processes import start_worker, stop_worker
from dispatch.adapters.kafka.topics import Topics, create_topics, delete_topics
from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.adapters.kafka.worker import KafkaWorker
from dispatch.bootstrap import build_kafka_worker, build_matcher, build_personal, kafka_env
from dispatch.domain.ids import new_id
from dispatch.matching.matcher import Matcher
from dispatch.messages import Ping
from dispatch.replay.operations import verify
from dispatch.settings import Settings
from dispatch.shard.application import ShardApplication
from dispatch.shard.personal import Sealer
from dispatch.shard.worker import ShardWorker
from schemas import commands as c
from schemas.common import LatLng

pytestmark = pytest.mark.kafka
CENTRE = (37.77, -122.42)


@pytest.fixture
def deployment(kafka_bootstrap: str) -> Iterator[Settings]:
    prefix = f"test-cp-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, prefix, 1)
    yield Settings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, shards=1,
        checkpoint_every_events=40, checkpoint_chunk_rows=3,
    )  # fmt: skip
    delete_topics(kafka_bootstrap, prefix)


def hosting(worker: KafkaWorker, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while 0 not in worker.shards and time.monotonic() < deadline:
        worker.run_once()
    assert 0 in worker.shards, "the group never assigned the shard"


def drive(worker: KafkaWorker, bus: KafkaTransport, *commands: c.Command) -> None:
    ids = []
    for command in commands:
        env = c.CommandEnvelope(
            command_id=str(uuid.uuid4()), issued_at=datetime.now(UTC), command=command
        )
        bus.send_command(env)
        ids.append(env.command_id)
    deadline = time.monotonic() + 60
    waiting = set(ids)
    while waiting and time.monotonic() < deadline:
        worker.run_once()
        waiting = {i for i in waiting if bus.wait_outcome(i, 0) is None}
    assert not waiting, f"{len(waiting)} commands got no outcome"


def test_a_takeover_restores_from_the_checkpoints_topic_and_equals_a_full_replay(
    deployment: Settings,
    matcher_state: Callable[[Matcher], dict[str, Any]],
) -> None:
    assert deployment.kafka_bootstrap is not None
    bus = KafkaTransport(deployment.kafka_bootstrap, deployment.topic_prefix)
    first = build_kafka_worker(deployment, member="first")
    try:
        hosting(first)
        drivers = [new_id(0) for _ in range(12)]
        riders = [new_id(0) for _ in range(10)]
        drive(first, bus, *(c.RegisterDriver(driver_id=d, name="d") for d in drivers))
        drive(first, bus, *(c.RegisterRider(rider_id=r, name="r") for r in riders))
        drive(first, bus, *(c.GoOnline(driver_id=d) for d in drivers[:8]))
        bus.send_pings([Ping(d, CENTRE[0] + i * 1e-3, CENTRE[1], time.time())
                        for i, d in enumerate(drivers[:8])])  # fmt: skip
        here = LatLng(lat=CENTRE[0], lng=CENTRE[1])
        nowhere = LatLng(lat=CENTRE[0] + 0.5, lng=CENTRE[1])  # 55 km: nobody near
        requests = [
            c.RequestRide(ride_id=new_id(0), rider_id=r, pickup=here if i < 6 else nowhere,
                          dropoff=here)
            for i, r in enumerate(riders)
        ]  # fmt: skip
        drive(first, bus, *requests)
        deadline = time.monotonic() + 20  # idle ticks carry the remaining chunks
        host = first.shards[0]
        while host.worker.checkpoints and time.monotonic() < deadline:
            first.run_once()
            if host.checkpoints and len(host.checkpoints.complete) >= 2:
                break
        assert host.checkpoints is not None and len(host.checkpoints.complete) >= 2
        newest = max(position for position, _ in host.checkpoints.complete.values())
        before = matcher_state(host.worker.matcher)
        assert before["pending"] and before["offers"] and before["available"]
    finally:
        first.close()

    store = KafkaCheckpointStore(
        deployment.kafka_bootstrap, Topics(deployment.topic_prefix).checkpoints, 0
    )
    assert store.checkpoint_positions()[0] == newest

    second = build_kafka_worker(deployment, member="second")
    try:
        hosting(second)
        restored = second.shards[0].worker
        assert restored.restored_from == newest
        assert matcher_state(restored.matcher) == before
        env = {**kafka_env(deployment.kafka_bootstrap, deployment.topic_prefix, 0),
               "KAFKA_READ_ONLY": "y"}  # fmt: skip
        reader = ShardApplication(0, env=env, sealer=Sealer(build_personal(deployment)))
        full = ShardWorker(0, reader, lambda: build_matcher(deployment), time.time)
        full.restore()
        assert full.restored_from is None
        assert matcher_state(full.matcher) == before
        # The taker's store holds only the log after the checkpoint, and every aggregate
        # rebuilt from the checkpoint's snapshot plus that tail equals a full replay's.
        assert restored.floor == newest
        tail = restored.app.recorder.select_notifications(1, 10_000)
        assert all(n.id > newest for n in tail)
        assert len(tail) < len(reader.recorder.select_notifications(1, 10_000))
        for aggregate_id in [*drivers, *riders, *(r.ride_id for r in requests)]:
            assert state_of(restored.app, aggregate_id) == state_of(reader, aggregate_id)
        reader.close()
    finally:
        second.close()


def state_of(app: ShardApplication, aggregate_id: uuid.UUID) -> dict[str, str]:
    aggregate = app.repository.get(aggregate_id)
    return {k: str(v) for k, v in vars(aggregate).items() if k != "_pending_events"}


def test_after_a_takeover_from_a_checkpoint_commands_on_older_aggregates_apply_once(
    deployment: Settings,
) -> None:
    """Aggregates and command records written before the checkpoint a takeover restores
    from are not in the tail it reads: they come from the checkpoint. A retried command
    gets its first outcome; a command on an older aggregate applies on its last version."""
    assert deployment.kafka_bootstrap is not None
    bus = KafkaTransport(deployment.kafka_bootstrap, deployment.topic_prefix)
    first = build_kafka_worker(deployment, member="first")
    driver, rider, ride = new_id(0), new_id(0), new_id(0)
    register = c.CommandEnvelope(
        command_id=str(uuid.uuid4()), issued_at=datetime.now(UTC),
        command=c.RegisterDriver(driver_id=driver, name="older"),
    )  # fmt: skip
    try:
        hosting(first)
        bus.send_command(register)
        drive(first, bus, c.RegisterRider(rider_id=rider, name="r"), c.GoOnline(driver_id=driver))
        far = LatLng(lat=CENTRE[0] + 0.5, lng=CENTRE[1])
        drive(first, bus, c.RequestRide(ride_id=ride, rider_id=rider, pickup=far, dropoff=far))
        filler = [new_id(0) for _ in range(30)]  # enough events for complete checkpoints
        drive(first, bus, *(c.RegisterDriver(driver_id=d, name="f") for d in filler))
        host = first.shards[0]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            first.run_once()
            if host.checkpoints and host.checkpoints.complete:
                break
        assert host.checkpoints is not None and host.checkpoints.complete
    finally:
        first.close()

    second = build_kafka_worker(deployment, member="second")
    try:
        hosting(second)
        worker = second.shards[0].worker
        assert worker.floor > 0, "the takeover read the whole log"
        tail = {n.originator_id for n in worker.app.recorder.select_notifications(1, 10_000)}
        assert not {driver, rider, ride} & tail  # all three come from the checkpoint
        bus.send_command(register)  # a retry of a command from before the checkpoint
        commands = (c.GoOffline(driver_id=driver), c.CancelRide(ride_id=ride, rider_id=rider))
        offline, cancel = (
            c.CommandEnvelope(command_id=str(uuid.uuid4()), issued_at=datetime.now(UTC),
                              command=command)
            for command in commands
        )  # fmt: skip
        for envelope in (offline, cancel):
            bus.send_command(envelope)
        deadline = time.monotonic() + 30
        second.run_once()
        while time.monotonic() < deadline and bus.wait_outcome(cancel.command_id, 0) is None:
            second.run_once()
        for envelope in (offline, cancel):
            outcome = bus.wait_outcome(envelope.command_id, 5)
            assert outcome is not None and outcome.accepted, outcome
        retried = bus.wait_outcome(register.command_id, 10)
        assert retried is not None and retried.accepted and retried.duplicate
        app = second.shards[0].worker.app  # (a rebalance may have reopened the shard)
        assert str(app.repository.get(driver).status) == "offline"
        assert str(app.repository.get(ride).status) == "cancelled"
        assert app.repository.get(rider).active_ride is None
    finally:
        second.close()
    source = KafkaLogSource(deployment.kafka_bootstrap, deployment.topic_prefix)
    count, violations = verify(source)
    assert count > 0 and violations == []


def test_after_kill_9_during_a_checkpoint_a_takeover_never_uses_the_half_written_one(
    deployment: Settings,
    tmp_path: Path,
    matcher_state: Callable[[Matcher], dict[str, Any]],
) -> None:
    """A worker process writes checkpoints one row a chunk (each spans dozens of batches)
    while commands flow; it is killed with SIGKILL. The checkpoint it was writing is left
    half written in the topic; a takeover restores from a complete one, holds what a full
    replay gives, every command has one outcome, and the log verifies clean."""
    assert deployment.kafka_bootstrap is not None
    # the worker process is given these settings (worker_env passes every one of them)
    deployment = deployment.model_copy(
        update={"checkpoint_every_events": 20, "checkpoint_chunk_rows": 1}
    )
    bus = KafkaTransport(deployment.kafka_bootstrap, deployment.topic_prefix)
    topic = Topics(deployment.topic_prefix).checkpoints
    store = KafkaCheckpointStore(deployment.kafka_bootstrap, topic, 0)
    proc = start_worker(deployment, tmp_path / "worker.log", "doomed")
    sent: list[str] = []
    try:
        drivers = [new_id(0) for _ in range(40)]
        deadline = time.monotonic() + 90
        i = 0
        while time.monotonic() < deadline:
            command: c.Command
            if i < len(drivers):
                command = c.RegisterDriver(driver_id=drivers[i], name="d")
            else:
                d = drivers[i % len(drivers)]
                command = c.GoOnline(driver_id=d) if i % 2 else c.GoOffline(driver_id=d)
            envelope = c.CommandEnvelope(
                command_id=str(uuid.uuid4()), issued_at=datetime.now(UTC), command=command
            )
            bus.send_command(envelope)
            sent.append(envelope.command_id)
            i += 1
            time.sleep(0.02)
            if i % 25 == 0 and store.checkpoint_positions() and store.unfinished():
                break
        assert store.checkpoint_positions(), "no checkpoint was completed in time"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            stop_worker(proc)
    complete = store.checkpoint_positions()
    unfinished = store.unfinished()
    assert complete and unfinished, (complete, unfinished)

    second = build_kafka_worker(deployment, member="second")
    try:
        hosting(second)
        restored = second.shards[0].worker
        assert restored.restored_from == complete[0]
        assert restored.restored_from not in unfinished
        missing = [cid for cid in sent if bus.wait_outcome(cid, 0) is None]
        deadline = time.monotonic() + 60
        while missing and time.monotonic() < deadline:
            second.run_once()
            missing = [cid for cid in missing if bus.wait_outcome(cid, 0) is None]
        assert missing == []
        env = {**kafka_env(deployment.kafka_bootstrap, deployment.topic_prefix, 0),
               "KAFKA_READ_ONLY": "y"}  # fmt: skip
        reader = ShardApplication(0, env=env, sealer=Sealer(build_personal(deployment)))
        full = ShardWorker(0, reader, lambda: build_matcher(deployment), time.time)
        full.restore()
        assert matcher_state(full.matcher) == matcher_state(restored.matcher)
        reader.close()
    finally:
        second.close()
    source = KafkaLogSource(deployment.kafka_bootstrap, deployment.topic_prefix)
    events, violations = verify(source)
    assert violations == [] and events > 0


def test_a_worker_joining_alone_opens_its_shard_once(deployment: Settings) -> None:
    """The first join must not race the subscription's metadata: kafka-python would assign
    against an empty snapshot of the topics and rebalance when the metadata lands, and every
    start would restore each shard twice."""
    worker = build_kafka_worker(deployment, member="alone")
    try:
        hosting(worker)
        settle = time.monotonic() + 4  # past the metadata update that would rebalance
        while time.monotonic() < settle:
            worker.run_once()
        assert 0 in worker.shards
        assert worker.stats.opened == 1
    finally:
        worker.close()
