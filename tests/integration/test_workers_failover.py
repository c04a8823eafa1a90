"""Sharded workers on the real broker: placement, failover, fencing and poison records.

Worker processes are started by the tests (``python -m dispatch worker``) and stopped by
their own pids; every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import TopicPartition

from dispatch.adapters.kafka.config import new_consumer, new_producer
from dispatch.adapters.kafka.follower import Follower
from dispatch.adapters.kafka.logsource import KafkaLogSource
from dispatch.adapters.kafka.processes import start_worker as start_process
from dispatch.adapters.kafka.processes import stop_worker
from dispatch.adapters.kafka.topics import Topics, create_topics, delete_topics
from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.bootstrap import build_kafka_worker, build_personal
from dispatch.domain.ids import new_id
from dispatch.messages import Ping
from dispatch.replay.operations import verify
from dispatch.settings import Settings
from dispatch.shard.inbound import Inbound
from dispatch.simulator.kafka import run_on_kafka
from dispatch.simulator.runner import SimConfig
from schemas import commands as c
from schemas.common import LatLng

pytestmark = pytest.mark.kafka
SHARDS = 4


@pytest.fixture
def deployment(kafka_bootstrap: str) -> Iterator[Settings]:
    prefix = f"test-w-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, prefix, SHARDS)
    yield Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, shards=SHARDS)
    delete_topics(kafka_bootstrap, prefix)


def start_worker(settings: Settings, name: str, log_dir: Path) -> subprocess.Popen[bytes]:
    return start_process(settings, log_dir / f"{name}.log", name)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if sig == signal.SIGTERM:
        stop_worker(proc)
    elif proc.poll() is None:
        proc.send_signal(sig)
        proc.wait(timeout=30)


def envelope(command: c.Command) -> c.CommandEnvelope:
    return c.CommandEnvelope(
        command_id=str(uuid.uuid4()), issued_at=datetime.now(UTC), command=command
    )


def opened_names(settings: Settings, shard: int) -> list[Any]:
    """The names in the shard's log, opened with the keys topic (the workers seal them)."""
    assert settings.kafka_bootstrap is not None
    source = KafkaLogSource(settings.kafka_bootstrap, settings.topic_prefix)
    personal = build_personal(settings)
    try:
        return [personal.open(e.data.get("name"), "name") for e in source.read(shard)]
    finally:
        personal.keys.close()


def subject_key_records(settings: Settings) -> set[bytes]:
    """The keys of the committed records of the subject-keys topic."""
    assert settings.kafka_bootstrap is not None
    topic = Topics(settings.topic_prefix).subject_keys
    found: set[bytes] = set()
    for partition in range(settings.shards):  # a follower reads one partition to its end
        follower = Follower(settings.kafka_bootstrap, topic, [partition], name="test")
        try:
            follower.seek(partition, follower.beginning_offset(partition))
            found |= {r.key for records in follower.read_to_end() for r in records}
        finally:
            follower.close()
    return found


def test_two_workers_split_the_partitions_and_load_flows_through_a_rebalance(
    deployment: Settings,
    tmp_path: Path,
    outcome_counts: Callable[[Settings], Counter[str]],
) -> None:
    assert deployment.kafka_bootstrap is not None
    a = start_worker(deployment, "a", tmp_path)
    b = start_worker(deployment, "b", tmp_path)
    bus = KafkaTransport(deployment.kafka_bootstrap, deployment.topic_prefix)
    sent: list[str] = []
    stop_load = threading.Event()
    errors: list[str] = []

    def load() -> None:
        i = 0
        while not stop_load.is_set():
            env = envelope(c.RegisterDriver(driver_id=new_id(i % SHARDS), name=f"d{i}"))
            bus.send_command(env)
            sent.append(env.command_id)
            i += 1
            time.sleep(0.02)

    try:
        thread = threading.Thread(target=load)
        thread.start()
        time.sleep(6)
        c_ = start_worker(deployment, "c", tmp_path)  # a third joins
        time.sleep(6)
        stop(b)  # one leaves
        time.sleep(6)
        stop_load.set()
        thread.join()
        missing = [cid for cid in sent if bus.wait_outcome(cid, 60) is None]
        assert not missing, f"{len(missing)} of {len(sent)} commands got no outcome"
        assert all(bus.outcome(cid).accepted for cid in sent)  # type: ignore[union-attr]
        logs = {p.name: p.read_text() for p in tmp_path.glob("*.log")}
        assert "restored" in logs["a.log"] and "restored" in logs["b.log"]
        assert "restored" in logs["c.log"]
        assert not errors
    finally:
        stop_load.set()
        bus.close()
        for proc in (a, b):
            stop(proc)
        if "c_" in locals():
            stop(c_)
    counts = outcome_counts(deployment)
    assert {cid: n for cid, n in counts.items() if n != 1} == {}
    assert set(sent) <= set(counts)
    events, violations = verify(KafkaLogSource(deployment.kafka_bootstrap, deployment.topic_prefix))
    assert events >= 2 * len(sent) and violations == []


def test_kill_9_of_a_worker_under_load_loses_nothing_and_duplicates_nothing(
    deployment: Settings,
    tmp_path: Path,
    outcome_counts: Callable[[Settings], Counter[str]],
) -> None:
    assert deployment.kafka_bootstrap is not None
    settings = deployment.model_copy(update={"offer_timeout_s": 20.0})
    pids: list[int] = []
    killed: list[int] = []

    def chaos(now: float) -> None:
        if not killed and now - started[0] >= 90:  # 90 simulated seconds in: kill one
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    started = [0.0]

    def on_start(worker_pids: list[int]) -> None:
        pids.extend(worker_pids)
        started[0] = time.time()

    report = run_on_kafka(
        SimConfig(
            drivers=120, minutes=4, seed=5, demand_per_min=9, warmup_minutes=0, drain_minutes=0
        ),
        settings,
        2,
        tmp_path / "logs",
        on_start=on_start,
        on_tick=lambda now: (started.__setitem__(0, started[0] or now), chaos(now)),
    ).finished
    assert killed, "the chaos hook never fired"
    assert report.violations == []
    assert report.requests > 20 and report.served > 0
    counts = outcome_counts(deployment)
    assert {cid: n for cid, n in counts.items() if n != 1} == {}
    events, violations = verify(KafkaLogSource(deployment.kafka_bootstrap, deployment.topic_prefix))
    assert violations == [] and events == report.events


def test_a_stale_worker_cannot_write_after_its_partitions_moved(
    deployment: Settings,
    tmp_path: Path,
    outcome_counts: Callable[[Settings], Counter[str]],
) -> None:
    assert deployment.kafka_bootstrap is not None
    # A member that stops polling is dropped from the group after max_poll_interval_ms.
    stale = build_kafka_worker(deployment, member="stale", max_poll_interval_ms=6_000)
    deadline = time.monotonic() + 30
    while len(stale.shards) < SHARDS and time.monotonic() < deadline:
        stale.run_once()
    assert len(stale.shards) == SHARDS
    shard = 1
    host = stale.shards[shard]
    # The stale worker stops polling; a new worker takes every shard over.
    fresh = start_worker(deployment, "fresh", tmp_path)
    bus = KafkaTransport(deployment.kafka_bootstrap, deployment.topic_prefix)
    try:
        probe = envelope(c.RegisterDriver(driver_id=new_id(shard), name="probe"))
        bus.send_command(probe)
        outcome = bus.wait_outcome(probe.command_id, 60)
        assert outcome is not None and outcome.accepted  # the new owner serves the shard
        zombie_id = new_id(shard)
        zombie = envelope(c.RegisterDriver(driver_id=zombie_id, name="zombie"))
        stale._process(shard, host, Inbound(commands=[zombie]), {})
        assert stale.stats.fenced == 1 and shard not in stale.shards
        assert stale.lost[shard].fenced  # a real fence, from the new owner's producer
        stale._reopen_due()  # the group names the fresh member: the zombie does not reopen
        assert shard not in stale.shards and stale.stats.reopened == 0
        again = envelope(c.RegisterDriver(driver_id=new_id(shard), name="still served"))
        bus.send_command(again)
        outcome = bus.wait_outcome(again.command_id, 60)
        assert outcome is not None and outcome.accepted  # the new owner was not fenced
    finally:
        bus.close()
        stop(fresh)
        stale.consumer.close()
    counts = outcome_counts(deployment)
    assert counts[probe.command_id] == 1 and counts[again.command_id] == 1
    assert zombie.command_id not in counts
    names = opened_names(deployment, shard)
    assert "probe" in names and "zombie" not in names
    # the key the zombie made for its driver went with its fenced transaction
    assert str(zombie_id).encode() not in subject_key_records(deployment)


def test_a_poison_record_lands_in_dead_letters_and_processing_continues(
    deployment: Settings,
    tmp_path: Path,
) -> None:
    assert deployment.kafka_bootstrap is not None
    topics = Topics(deployment.topic_prefix)
    worker = start_worker(deployment, "w", tmp_path)
    bus = KafkaTransport(deployment.kafka_bootstrap, deployment.topic_prefix)
    producer = new_producer(deployment.kafka_bootstrap)
    try:
        producer.send(topics.commands, value=b"{not json", partition=2)
        producer.send(topics.commands, value=b'{"command_id": "x"}', partition=2)
        producer.send(topics.locations, value=b'{"pings": [["nope", 91, 0, 1]]}', partition=2)
        producer.flush()
        good = envelope(c.RegisterRider(rider_id=new_id(2), name="after the poison"))
        bus.send_command(good)
        outcome = bus.wait_outcome(good.command_id, 60)
        assert outcome is not None and outcome.accepted
    finally:
        producer.close()
        bus.close()
        stop(worker)
    consumer = new_consumer(deployment.kafka_bootstrap, group_id=None)
    tp = TopicPartition(topics.dead_letters, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    letters = []
    deadline = time.monotonic() + 20
    while len(letters) < 3 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            letters.extend(orjson.loads(r.value) for r in records)
    consumer.close()
    assert len(letters) == 3
    reasons = " | ".join(letter["reason"] for letter in letters)
    assert "invalid command" in reasons and "invalid ping" in reasons
    assert {letter["position"].split("@")[0] for letter in letters} >= {
        f"{topics.commands}[2]",
        f"{topics.locations}[2]#0".split("#")[0],
    }
    assert all("@" in letter["position"] for letter in letters)


def test_after_a_takeover_matching_resumes_from_recent_pings_without_waiting_for_new_ones(
    deployment: Settings,
    tmp_path: Path,
) -> None:
    """The new owner warms its matcher with the last TTL of pings from the locations topic:
    a request right after the takeover is offered before any driver pings again."""
    assert deployment.kafka_bootstrap is not None
    bus = KafkaTransport(deployment.kafka_bootstrap, deployment.topic_prefix)
    first = start_worker(deployment, "first", tmp_path)
    try:
        driver, rider = new_id(0), new_id(0)
        for command in (
            c.RegisterDriver(driver_id=driver, name="d"),
            c.GoOnline(driver_id=driver),
            c.RegisterRider(rider_id=rider, name="r"),
        ):
            env = envelope(command)
            bus.send_command(env)
            assert bus.wait_outcome(env.command_id, 60) is not None
        bus.send_pings([Ping(driver, 37.7749, -122.4194, time.time())])
        bus.flush()
        time.sleep(1.0)
    finally:
        stop(first)  # the shard's owner goes away; its matcher state goes with it
    second = start_worker(deployment, "second", tmp_path)
    try:
        ride = new_id(0)
        request = envelope(
            c.RequestRide(
                ride_id=ride,
                rider_id=rider,
                pickup=LatLng(lat=37.775, lng=-122.419),
                dropoff=LatLng(lat=37.8, lng=-122.4),
            )
        )
        bus.send_command(request)
        outcome = bus.wait_outcome(request.command_id, 60)
        assert outcome is not None and outcome.accepted
        source = KafkaLogSource(deployment.kafka_bootstrap, deployment.topic_prefix)
        deadline = time.monotonic() + 10
        offered: list[str] = []
        while not offered and time.monotonic() < deadline:
            offered = [
                e.data["driver_id"]
                for e in source.read(0)
                if e.topic == "dispatch.Ride.Offered" and e.aggregate_id == str(ride)
            ]
            time.sleep(0.2)
        assert offered == [str(driver)]
    finally:
        bus.close()
        stop(second)


def test_a_failed_batch_aborts_its_events_outcomes_and_offsets_and_is_decided_again(
    deployment: Settings,
    outcome_counts: Callable[[Settings], Counter[str]],
) -> None:
    """The batch owner (adapters/kafka/batch.py): a failure after the worker saved its
    events aborts the transaction as a whole; the consumer is rewound, the shard refolded,
    and the same command is decided again, once."""
    assert deployment.kafka_bootstrap is not None
    worker = build_kafka_worker(deployment, member="owner")
    bus = KafkaTransport(deployment.kafka_bootstrap, deployment.topic_prefix)
    try:
        deadline = time.monotonic() + 30
        while len(worker.shards) < SHARDS and time.monotonic() < deadline:
            worker.run_once()
        assert len(worker.shards) == SHARDS
        shard = 3
        host = worker.shards[shard]
        decide = host.worker.process
        failures: list[int] = []

        def fails_once(inbound: Inbound) -> object:
            batch = decide(inbound)  # the events are in the open transaction now
            if inbound.commands and not failures:
                failures.append(1)
                raise RuntimeError("the batch fails after saving")
            return batch

        host.worker.process = fails_once  # type: ignore[method-assign]
        probe = envelope(c.RegisterDriver(driver_id=new_id(shard), name="twice decided"))
        bus.send_command(probe)
        bus.flush()
        while (
            outcome := bus.outcome(probe.command_id)
        ) is None and time.monotonic() < deadline + 30:
            worker.run_once()
        assert outcome is not None and outcome.accepted and not outcome.duplicate
        assert failures == [1] and worker.stats.aborted == 1
    finally:
        bus.close()
        worker.close()
    assert outcome_counts(deployment)[probe.command_id] == 1
    names = opened_names(deployment, shard)
    assert names.count("twice decided") == 1  # sealed under a key committed with it
