"""Records no decoder can use become dead letters with a reason, never a crash or a stall."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

import orjson

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.batch import KafkaBatch
from dispatch.adapters.kafka.topics import Topics
from dispatch.bootstrap import build_embedded_engine
from dispatch.domain.ids import new_id
from dispatch.messages import MAX_PING_AHEAD_S, Ping, Poison
from dispatch.settings import Settings
from dispatch.shard.inbound import Inbound
from dispatch.shard.worker import ShardWorker

T0 = 1_767_600_000.0


def test_a_record_without_a_value_is_poison_that_can_be_dead_lettered() -> None:
    command = wire.decode_command(None, "commands[0]@7")
    pings, bad = wire.decode_pings(None, "locations[0]@8")
    assert not isinstance(command, Ping) and not pings
    for poison in (command, *bad):
        assert poison.reason == "empty record (no value)"  # type: ignore[union-attr]
        letter = orjson.loads(wire.encode_dead_letter(poison))  # type: ignore[arg-type]
        assert letter["raw"] == "" and letter["reason"] == "empty record (no value)"


def test_a_ping_timed_too_far_ahead_of_the_shard_clock_is_dead_lettered(tmp_path: Path) -> None:
    engine = build_embedded_engine(Settings(data_dir=tmp_path, shards=1), lambda: T0)
    worker = engine.workers[0]
    driver = new_id(0)  # the engine's one shard
    ahead = Ping(driver, 37.77, -122.42, T0 + MAX_PING_AHEAD_S + 1.0)
    fine = Ping(new_id(0), 37.77, -122.42, T0)
    engine.transport.send_pings([ahead, fine])
    (report,) = engine.run_once()
    assert report.pings == 2 and worker.matcher.positions.keys() == {fine.driver_id}
    (letter,) = engine.transport.dead_letters  # type: ignore[attr-defined]
    assert letter.source == "locations" and "ahead of" in letter.reason
    assert orjson.loads(letter.raw) == [str(driver), 37.77, -122.42, ahead.at]


class _Producer:
    """What a batch sends in its transaction, kept."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def send(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        self.sent.append((topic, value))


class _Host:
    """The part of a ``ShardHost`` a ``KafkaBatch`` uses, around an embedded shard worker."""

    def __init__(self, worker: ShardWorker, producer: _Producer) -> None:
        self.shard, self.worker, self.writer, self.producer = worker.shard, worker, self, producer
        self.app, self.keys = worker.app, None  # keys: the Kafka key store a batch joins
        self.checkpoints = None
        self.tells_others = self.announce = False  # no driver-availability records here

    def advance(self, inbound: Inbound) -> None:
        pass

    @contextmanager
    def transaction(self) -> Iterator[_Producer]:
        yield self.producer


def test_a_locations_record_in_a_format_from_before_batching_is_dead_lettered(
    tmp_path: Path,
) -> None:
    """Nothing writes one ping object a record, or pings as objects, any more: the Kafka
    worker's batch dead-letters them with a reason saying what is expected, and keeps the
    valid pings of the record."""
    driver = str(new_id(0))
    one = {"driver_id": driver, "lat": 37.77, "lng": -122.42, "at": T0}
    records = [orjson.dumps(one), orjson.dumps({"pings": [one, [driver, 37.78, -122.42, T0]]})]
    inbound = Inbound()
    for offset, value in enumerate(records):
        pings, bad = wire.decode_pings(value, f"dispatch.locations[0]@{offset}")
        inbound.pings.extend(pings)
        inbound.poison.extend(bad)
    assert [(str(p.driver_id), p.lat) for p in inbound.pings] == [(driver, 37.78)]

    engine = build_embedded_engine(Settings(data_dir=tmp_path, shards=1), lambda: T0)
    producer, topics = _Producer(), Topics("dispatch")
    host = _Host(engine.workers[0], producer)
    ended = KafkaBatch(host, topics, consumer=None).run(inbound, {})  # type: ignore[arg-type]

    assert ended.state == "committed"
    letters = [
        orjson.loads(value) for topic, value in producer.sent if topic == topics.dead_letters
    ]
    expected = 'not a batch of pings: a record is {"pings": [[driver_id, lat, lng, at], ...]}'
    assert [(letter["position"], letter["reason"]) for letter in letters] == [
        ("dispatch.locations[0]@0", expected),
        ("dispatch.locations[0]@1#0", "invalid ping: a ping is [driver_id, lat, lng, at]"),
    ]
    assert [orjson.loads(letter["raw"]) for letter in letters] == [one, one]
    assert engine.workers[0].matcher.positions.keys() == {UUID(driver)}  # the valid ping was taken


def test_an_operator_cancel_naming_another_operators_id_is_poison_with_the_reason() -> None:
    from dispatch.domain.operators import operator_id

    cancel = {
        "type": "operator_cancel_ride",
        "ride_id": str(new_id(0)),
        "operator_id": str(operator_id("mallory")),
        "operator_name": "dana",
        "operator_role": "dispatcher",
        "reason": "rider called in",
    }
    envelope = {"command_id": "c-1", "issued_at": "2026-01-05T08:00:00Z", "command": cancel}
    raw = orjson.dumps(envelope)
    poison = wire.decode_command(raw, "commands[0]@9")
    assert isinstance(poison, Poison)
    assert poison.reason.startswith("invalid command: command.operator_cancel_ride: ")
    assert f"is not the id of operator 'dana' ({operator_id('dana')})" in poison.reason
    letter = orjson.loads(wire.encode_dead_letter(poison))
    assert letter["raw"] == raw.decode() and letter["reason"] == poison.reason
