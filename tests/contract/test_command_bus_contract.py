"""The command bus port (``dispatch.ports.CommandBus``): the same cases over every adapter,
the embedded transport and the Kafka one.

Each case plays both ends: a client sends commands and pings and waits for outcomes; the
shard side takes what reached a shard and publishes outcomes the way the adapter's batch
owner does. Embedded, that is the transport's own poll and ``publish_outcomes``; on Kafka
it reads the commands and locations topics and sends outcomes with ``send_outcomes``, the
function ``KafkaBatch`` sends a batch's outcomes with."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from dispatch.domain.ids import new_id, shard_of
from dispatch.messages import Ping
from dispatch.ports import CommandBus
from dispatch.shard.inbound import Inbound
from schemas import commands as c

WAIT_S = 10.0


@dataclass
class Bus:
    """The client end (``bus``) and the shard end of one adapter."""

    bus: CommandBus
    received: Callable[[int], Inbound]  # what reached a shard since the last call
    publish: Callable[[list[c.Outcome]], None]  # outcomes, as the shard's worker sends them
    close: Callable[[], None]


def _embedded() -> Bus:
    from dispatch.adapters.embedded.transport import EmbeddedTransport

    transport = EmbeddedTransport()
    return Bus(
        transport,
        lambda shard: transport.poll(shard, 1_000, 0.0),
        transport.publish_outcomes,
        lambda: None,
    )


def _kafka(topics: Any) -> Bus:
    from dispatch.adapters.kafka import wire
    from dispatch.adapters.kafka.config import new_producer
    from dispatch.adapters.kafka.follower import Follower
    from dispatch.adapters.kafka.outcomes import send_outcomes
    from dispatch.adapters.kafka.topics import Topics
    from dispatch.adapters.kafka.transport import KafkaTransport

    names = Topics(topics.prefix)
    transport = KafkaTransport(topics.bootstrap, topics.prefix)
    producer = new_producer(topics.bootstrap)
    readers: dict[tuple[str, int], Follower] = {}

    def reader(topic: str, shard: int) -> Follower:
        if (topic, shard) not in readers:
            readers[topic, shard] = Follower(topics.bootstrap, topic, [shard])
        return readers[topic, shard]

    def received(shard: int) -> Inbound:
        transport.flush()
        inbound = Inbound()
        for topic in (names.commands, names.locations):
            for batch in reader(topic, shard).read_to_end():
                for record in batch:
                    if topic == names.commands:
                        inbound.commands.append(wire.decode_command(record.value, "test"))
                    else:
                        inbound.pings.extend(wire.decode_pings(record.value, "test")[0])
        return inbound

    def publish(outcomes: list[c.Outcome]) -> None:
        for shard in sorted({o.shard for o in outcomes}):
            send_outcomes(producer, names, shard, [o for o in outcomes if o.shard == shard])
        producer.flush()

    def close() -> None:
        transport.close()
        producer.close()
        for reader in readers.values():
            reader.close()

    return Bus(transport, received, publish, close)


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    made = (
        _embedded()
        if request.param == "embedded"
        else _kafka(request.getfixturevalue("kafka_topics"))
    )
    yield made
    made.close()


def envelope(
    target: uuid.UUID, fingerprint: str | None = None, command_id: str = ""
) -> c.CommandEnvelope:
    return c.CommandEnvelope(
        command_id=command_id or str(uuid.uuid4()),
        fingerprint=fingerprint,
        issued_at=datetime.now(UTC),
        command=c.GoOnline(driver_id=target),
    )


def accepted(command: c.CommandEnvelope, position: int = 7) -> c.Outcome:
    return c.Outcome(
        command_id=command.command_id,
        shard=shard_of(command.target_id),
        accepted=True,
        position=position,
        fingerprint=command.fingerprint,
    )


def test_a_command_reaches_the_shard_of_its_target(bus: Bus) -> None:
    to_zero, to_one = envelope(new_id(0)), envelope(new_id(1))
    bus.bus.send_command(to_zero)
    bus.bus.send_command(to_one)

    assert bus.received(0).commands == [to_zero]
    assert bus.received(1).commands == [to_one]


def test_pings_reach_the_shards_of_their_drivers(bus: Bus) -> None:
    pings = [Ping(new_id(s % 2), 37.77, -122.42 + s / 100, 1_767_600_000.0 + s) for s in range(5)]
    bus.bus.send_pings(pings)

    assert bus.received(0).pings == pings[0::2]
    assert bus.received(1).pings == pings[1::2]


def test_a_waiter_gets_the_outcome_published_while_it_waits(bus: Bus) -> None:
    command = envelope(new_id(1))
    bus.bus.send_command(command)
    later = threading.Timer(0.2, bus.publish, args=([accepted(command)],))
    later.start()
    try:
        assert bus.bus.wait_outcome(command.command_id, WAIT_S) == accepted(command)
    finally:
        later.join()


def test_an_outcome_published_before_the_wait_is_not_missed(bus: Bus) -> None:
    command = envelope(new_id(0))
    bus.bus.send_command(command)
    bus.publish([accepted(command)])

    assert bus.bus.wait_outcome(command.command_id, WAIT_S) == accepted(command)


def test_without_an_outcome_the_wait_ends_with_none(bus: Bus) -> None:
    command = envelope(new_id(0))
    bus.bus.send_command(command)
    assert bus.bus.wait_outcome(command.command_id, 0.2) is None


def test_each_fingerprint_waits_for_its_own_outcome(bus: Bus) -> None:
    """Two requests sharing a command id get their own answers (the first accepted, the
    other refused as a reused key): a waiter is never handed another request's outcome."""
    key = str(uuid.uuid4())
    first, second = envelope(new_id(0), "print-a", key), envelope(new_id(0), "print-b", key)
    bus.bus.send_command(first)
    bus.bus.send_command(second)
    refused = c.Outcome(
        command_id=key, shard=0, accepted=False, code="idempotency_key_reused",
        duplicate=True, fingerprint="print-b",
    )  # fmt: skip

    bus.publish([accepted(first), refused])

    assert bus.bus.wait_outcome(key, WAIT_S, "print-a") == accepted(first)
    assert bus.bus.wait_outcome(key, WAIT_S, "print-b") == refused
    assert bus.bus.wait_outcome(key, 0.2) is None, "no unfingerprinted command was answered"


def test_a_resend_waits_for_its_new_outcome_not_the_earlier_one(bus: Bus) -> None:
    command = envelope(new_id(1))
    bus.bus.send_command(command)
    bus.publish([accepted(command, position=3)])
    assert bus.bus.wait_outcome(command.command_id, WAIT_S) == accepted(command, position=3)

    bus.bus.send_command(command)
    assert bus.bus.wait_outcome(command.command_id, 0.2) is None
    bus.publish([accepted(command, position=9)])
    assert bus.bus.wait_outcome(command.command_id, WAIT_S) == accepted(command, position=9)


@pytest.mark.kafka
def test_on_kafka_an_outcome_is_keyed_by_its_command_id_on_its_shards_partition(
    kafka_topics: Any,
) -> None:
    """The outcomes topic as a worker's batches write it (``wire``'s layout): the cases
    above only see what the transport decodes, which a key or partition would not change."""
    from dispatch.adapters.kafka.config import new_producer
    from dispatch.adapters.kafka.follower import Follower
    from dispatch.adapters.kafka.outcomes import send_outcomes
    from dispatch.adapters.kafka.topics import Topics

    names, command = Topics(kafka_topics.prefix), envelope(new_id(1))
    producer = new_producer(kafka_topics.bootstrap)
    try:
        send_outcomes(producer, names, 1, [accepted(command)])
        producer.flush()
    finally:
        producer.close()
    on_partition: dict[int, list[bytes]] = {}
    for shard in (0, 1):
        follower = Follower(kafka_topics.bootstrap, names.outcomes, [shard])
        try:
            on_partition[shard] = [r.key for batch in follower.read_to_end() for r in batch]
        finally:
            follower.close()

    assert on_partition == {0: [], 1: [command.command_id.encode()]}


def test_a_wait_of_zero_right_after_a_send_answers_none_instead_of_failing(bus: Bus) -> None:
    """A poll (``timeout_s=0``) while the command is still on its way to the log is "no
    outcome yet", not an error: the caller polls again."""
    commands = [envelope(new_id(s % 2)) for s in range(50)]
    for command in commands:
        bus.bus.send_command(command)

    assert bus.bus.wait_outcome(commands[-1].command_id, 0) is None
    bus.publish([accepted(commands[-1])])
    assert bus.bus.wait_outcome(commands[-1].command_id, WAIT_S) == accepted(commands[-1])
