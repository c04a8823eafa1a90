"""Sealed commands on the real broker (docs/PRIVACY.md, "Sealed commands").

The API's transport seals a registration's name and a ride request's pickup and drop-off
under a one-time key it writes to the command-keys topic first; the commands topic holds
none of them in the clear; the worker opens the command, decides it, and tombstones its
key in the same transaction. A sealed command whose key is gone is dead-lettered with the
reason (the raw record, sealed), and the shard goes on deciding the next command."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaTimeoutError
from kafka_deployment import one_shard
from kafka_shard_host import ShardZero
from pydantic import SecretStr

from dispatch.adapters.crypto.aesgcm import AesGcmCipher
from dispatch.adapters.kafka.commandkeys import CommandKeyWriter
from dispatch.adapters.kafka.keystore import key_record
from dispatch.adapters.kafka.topics import Topics
from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.bootstrap import build_key_wrap
from dispatch.domain.ids import new_id
from dispatch.ports import NotDelivered
from dispatch.privacy import NoWrap, SubjectKey, new_subject_key
from dispatch.sealed_commands import KEY_FIELD, CommandSealer
from dispatch.settings import Settings
from schemas import commands as c

pytestmark = pytest.mark.kafka
NAME = "Philippa Quarrington"
PICKUP = {"lat": 37.7749, "lng": -122.4194}
DROPOFF = {"lat": 37.7599, "lng": -122.4148}
WAIT_S = 30.0


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Settings]:
    yield from one_shard(kafka_bootstrap, tmp_path, "sealed")


def sealing_bus(settings: Settings, make: Any = None) -> tuple[KafkaTransport, CommandKeyWriter]:
    assert settings.kafka_bootstrap is not None
    topics = Topics(settings.topic_prefix)
    bus = KafkaTransport(settings.kafka_bootstrap, settings.topic_prefix)
    writer = CommandKeyWriter(
        settings.kafka_bootstrap, topics.command_keys, build_key_wrap(settings)
    )
    bus.seal = CommandSealer(AesGcmCipher(), make or writer.make).seal
    bus.closing.append(writer.close)
    return bus, writer


class UnwrittenKeys:
    """A key maker that makes each subject's one-time key and never writes it to the
    command-keys topic (``made`` keeps them, so a test can write one late, or never)."""

    def __init__(self) -> None:
        self.made: list[SubjectKey] = []

    def __call__(self, subject: uuid.UUID) -> SubjectKey:
        self.made.append(new_subject_key(subject))
        return self.made[-1]


def send_registration(bus: KafkaTransport) -> c.CommandEnvelope:
    """Send (and flush) a rider's registration carrying ``NAME``; its envelope."""
    envelope = c.CommandEnvelope(
        command_id=str(uuid.uuid4()),
        issued_at=datetime.now(UTC),
        command=c.RegisterRider(rider_id=new_id(0), name=NAME),
    )
    bus.send_command(envelope)
    bus.flush()
    return envelope


def records(settings: Settings, role: str) -> list[Any]:
    assert settings.kafka_bootstrap is not None
    name = Topics(settings.topic_prefix).name(role)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    found: list[Any] = []
    try:
        tp = TopicPartition(name, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        deadline = time.monotonic() + WAIT_S
        while consumer.position(tp) < end:
            assert time.monotonic() < deadline, f"{name} not read to its end"
            for batch in consumer.poll(timeout_ms=500).values():
                found.extend(batch)
    finally:
        consumer.close()
    return found


def test_a_sealed_command_is_decided_and_its_key_tombstoned_with_it(
    deployment: Settings,
) -> None:
    bus, _ = sealing_bus(deployment)
    shard = ShardZero(deployment, "sealed", bus)
    try:
        rider = new_id(0)
        assert shard.send(c.RegisterRider(rider_id=rider, name=NAME)).accepted
        ride = c.RequestRide(ride_id=new_id(0), rider_id=rider, pickup=PICKUP, dropoff=DROPOFF)
        assert shard.send(ride).accepted
        assert shard.worker.shards[0].app.repository.get(rider).name == NAME  # opened
    finally:
        shard.worker.close()
        bus.close()
    commands = records(deployment, "commands")
    assert len(commands) == 2
    for record in commands:
        value = record.value
        assert NAME.encode() not in value
        assert b"37.7749" not in value and b"-122.4148" not in value
        assert KEY_FIELD.encode() in value
    keys = records(deployment, "command-keys")
    subjects = {orjson.loads(r.value)[KEY_FIELD] for r in commands}
    last = {r.key.decode(): r.value for r in keys}  # the latest record of each key
    assert set(last) == subjects
    assert all(value is None for value in last.values()), "every key tombstoned"


def test_a_command_key_wrapped_under_a_kek_is_opened_by_the_worker_that_has_the_kek(
    deployment: Settings,
) -> None:
    """With DISPATCH_KEY_ENCRYPTION_KEYS, the API writes each command's one-time key wrapped
    (docs/PRIVACY.md, "Wrapped keys"): the topic holds no key as it is, and the worker,
    given the same KEK, opens and decides the command."""
    keks = json.dumps({"kek-c": base64.urlsafe_b64encode(os.urandom(32)).decode()})
    settings = deployment.model_copy(update={"key_encryption_keys": SecretStr(keks)})
    bus, _ = sealing_bus(settings)
    shard = ShardZero(settings, "sealed", bus)
    try:
        rider = new_id(0)
        assert shard.send(c.RegisterRider(rider_id=rider, name=NAME)).accepted
        assert shard.worker.shards[0].app.repository.get(rider).name == NAME  # opened
    finally:
        shard.worker.close()
        bus.close()
    written = [orjson.loads(r.value) for r in records(deployment, "command-keys") if r.value]
    assert written and all(v.get("kek") == "kek-c" and "key" not in v for v in written)


def test_a_sealed_command_whose_key_is_gone_is_dead_lettered_and_the_shard_goes_on(
    deployment: Settings,
) -> None:
    lost = UnwrittenKeys()
    bus, writer = sealing_bus(deployment, lost)
    shard = ShardZero(deployment, "sealed-lost", bus)
    shard.worker.command_key_deadline_s = 0.0  # a key not there: poison at once
    try:
        envelope = send_registration(bus)
        bus.seal = CommandSealer(AesGcmCipher(), writer.make).seal  # keys written again
        rider = new_id(0)
        assert shard.send(c.RegisterRider(rider_id=rider, name="Next")).accepted
        assert bus.outcome(envelope.command_id) is None  # never decided
    finally:
        shard.worker.close()
        bus.close()
    (dead,) = records(deployment, "dead-letters")
    letter = orjson.loads(dead.value)
    assert "sealed command" in letter["reason"] and str(lost.made[0].subject) in letter["reason"]
    assert NAME.encode() not in dead.value


def test_a_command_whose_key_is_not_written_is_not_sent(deployment: Settings) -> None:
    def broker_gone(subject: uuid.UUID) -> SubjectKey:
        raise KafkaTimeoutError("the key record was not acknowledged")

    bus, _ = sealing_bus(deployment, broker_gone)
    try:
        envelope = c.CommandEnvelope(
            command_id=str(uuid.uuid4()),
            issued_at=datetime.now(UTC),
            command=c.RegisterRider(rider_id=new_id(0), name=NAME),
        )
        with pytest.raises(NotDelivered, match="the key to seal command"):
            bus.send_command(envelope)
        bus.flush()
    finally:
        bus.close()
    assert records(deployment, "commands") == []


def produce(settings: Settings, role: str, key: bytes, value: bytes | None) -> None:
    assert settings.kafka_bootstrap is not None
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    try:
        name = Topics(settings.topic_prefix).name(role)
        producer.send(name, key=key, value=value, partition=0).get(timeout=WAIT_S)
    finally:
        producer.close()


def test_a_redelivered_command_whose_key_was_tombstoned_is_poison_at_once(
    deployment: Settings,
) -> None:
    """Review M1: a command key known deleted (its tombstone read) makes the command
    poison with that reason, not a wait for a key that will never show."""
    bus, _ = sealing_bus(deployment)
    first = ShardZero(deployment, "sealed-first", bus)
    try:
        assert first.send(c.RegisterRider(rider_id=new_id(0), name=NAME)).accepted
    finally:
        first.worker.close()
    (decided,) = records(deployment, "commands")
    subject = orjson.loads(decided.value)[KEY_FIELD]
    produce(deployment, "commands", decided.key, decided.value)  # delivered again
    shard = ShardZero(deployment, "sealed-again", bus)
    shard.worker.command_key_deadline_s = float("inf")  # only a known deletion poisons it
    try:
        assert shard.send(c.RegisterRider(rider_id=new_id(0), name="Next")).accepted
    finally:
        shard.worker.close()
        bus.close()
    (dead,) = records(deployment, "dead-letters")
    assert f"its key ({subject}) is deleted" in orjson.loads(dead.value)["reason"]


def test_a_command_whose_key_is_late_is_read_again_and_decided(deployment: Settings) -> None:
    """Review M2: a key not yet visible holds its command back (the shard is read again),
    it is never dead-lettered for it; once the key shows, the command is decided."""
    held = UnwrittenKeys()
    bus, _ = sealing_bus(deployment, held)
    shard = ShardZero(deployment, "sealed-late", bus)
    try:
        envelope = send_registration(bus)
        for _ in range(10):  # several polls meet the command, its key not there
            shard.worker.run_once(100)
        assert bus.outcome(envelope.command_id) is None
        assert records(deployment, "dead-letters") == []
        _, key, value = key_record(held.made[0], NoWrap())
        produce(deployment, "command-keys", key, value)  # the key shows, late
        deadline = time.monotonic() + WAIT_S
        outcome = None
        while outcome is None and time.monotonic() < deadline:
            shard.worker.run_once(100)
            outcome = bus.wait_outcome(envelope.command_id, 0)
        assert outcome is not None and outcome.accepted
    finally:
        shard.worker.close()
        bus.close()
    assert records(deployment, "dead-letters") == []


def test_a_batch_that_tombstoned_a_key_and_aborted_leaves_it_readable(
    deployment: Settings,
) -> None:
    """Review L6: the tombstone goes in the batch's transaction, so a batch that aborts
    after sending it deletes nothing: the key is still readable (by a new reader too), and
    the command is opened and decided at the retry."""
    bus, _ = sealing_bus(deployment)
    shard = ShardZero(deployment, "sealed-abort", bus)
    host = shard.worker.shards[0]
    real = host.writer.send_offsets
    failed: list[int] = []

    def fails_once(*args: Any) -> Any:
        if not failed:
            failed.append(1)
            raise RuntimeError("injected: the batch fails after the tombstone was sent")
        return real(*args)

    host.writer.send_offsets = fails_once  # type: ignore[method-assign]
    rider = new_id(0)
    try:
        assert shard.send(c.RegisterRider(rider_id=rider, name=NAME)).accepted
        assert failed == [1] and shard.worker.stats.aborted >= 1
        assert shard.worker.shards[0].app.repository.get(rider).name == NAME
    finally:
        shard.worker.close()
        bus.close()
    keys = records(deployment, "command-keys")
    (command,) = records(deployment, "commands")
    subject = orjson.loads(command.value)[KEY_FIELD]
    mine = [r for r in keys if r.key.decode() == subject]
    # read_committed: the aborted tombstone is not there; the committed retry's is, last
    assert [r.value is None for r in mine] == [False, True]


def test_the_commands_topic_holds_no_unkeyed_fingerprint_of_a_sealed_command(
    deployment: Settings,
) -> None:
    """Review H1, on the broker: the legacy SHA-256 a keyed registration sends as an
    alternate is nowhere in the commands topic in the clear; the worker still opens and
    decides the command."""
    from dispatch.api.idempotency import Fingerprinter, legacy_fingerprint

    body = orjson.dumps({"name": NAME, "home": None}).decode()
    made = Fingerprinter({"k1": "s" * 32}, "k1", True).of("POST", "/riders", "reg", body)
    guess = legacy_fingerprint("POST", "/riders", "reg", body)
    assert made.alternates == (guess,)
    bus, _ = sealing_bus(deployment)
    shard = ShardZero(deployment, "sealed-print", bus)
    try:
        envelope = c.CommandEnvelope(
            command_id=str(uuid.uuid4()),
            fingerprint=made.primary,
            fingerprint_alternates=made.alternates,
            issued_at=datetime.now(UTC),
            command=c.RegisterRider(rider_id=new_id(0), name=NAME),
        )
        bus.send_command(envelope)
        deadline = time.monotonic() + WAIT_S
        outcome = None
        while outcome is None and time.monotonic() < deadline:
            shard.worker.run_once(100)
            outcome = bus.wait_outcome(envelope.command_id, 0, made.primary)
        assert outcome is not None and outcome.accepted
    finally:
        shard.worker.close()
        bus.close()
    (command,) = records(deployment, "commands")
    assert guess.encode() not in command.value and NAME.encode() not in command.value
