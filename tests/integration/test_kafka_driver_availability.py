"""Driver availability between shards on the real broker (issue #14): the compacted
driver-availability topic each shard's batches write in their transaction, and its reading
side, ``AvailabilityBoard``, checked on records of a plain producer, then with in-process
``KafkaWorker``s over two shards (a change told on the owner's partition reaches the other
shard's matcher; an aborted batch tells nothing committed; a takeover tells nothing again,
a shard opened on an empty partition tells of all its drivers). Every wait is bounded and
generous, never a condition of a test."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from kafka import TopicPartition

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka import worker as worker_module
from dispatch.adapters.kafka.availability import AvailabilityBoard
from dispatch.adapters.kafka.batch import KafkaBatch
from dispatch.adapters.kafka.config import new_admin, new_consumer, new_producer
from dispatch.adapters.kafka.topics import Topics, create_topics
from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.adapters.kafka.worker import KafkaWorker
from dispatch.bootstrap import build_kafka_worker
from dispatch.domain.driver import Driver, DriverStatus
from dispatch.domain.ids import new_id, shard_of
from dispatch.domain.products import Vehicle
from dispatch.settings import Settings
from dispatch.shard.inbound import ForeignDriver as Told
from dispatch.shard.worker import Batch
from schemas import commands as c
from schemas.common import VehicleData

pytestmark = pytest.mark.kafka
WAIT_S = 90.0
ONLINE, OFFLINE = Driver.WentOnline.TOPIC, Driver.WentOffline.TOPIC
OFFERED, ASSIGNED = Driver.OfferReceived.TOPIC, Driver.Assigned.TOPIC
Write = Callable[[int, bytes, bytes], None]


@pytest.fixture
def settings(kafka_topics: Any, tmp_path: Path) -> Settings:
    assert kafka_topics.partitions == 2
    bootstrap, prefix = kafka_topics.bootstrap, kafka_topics.prefix
    return Settings(data_dir=tmp_path, kafka_bootstrap=bootstrap, topic_prefix=prefix, shards=2)


@pytest.fixture
def board(settings: Settings) -> Iterator[AvailabilityBoard]:
    made = AvailabilityBoard(settings.kafka_bootstrap or "", topic_of(settings), 2)
    yield made
    made.stop()


@pytest.fixture
def bus(settings: Settings) -> Iterator[KafkaTransport]:
    transport = KafkaTransport(settings.kafka_bootstrap or "", settings.topic_prefix)
    yield transport
    transport.close()


@pytest.fixture
def write(settings: Settings) -> Iterator[Write]:
    """Write one raw record to a partition of the topic (a plain, idempotent producer)."""
    producer = new_producer(settings.kafka_bootstrap or "")

    def send(partition: int, key: bytes, value: bytes) -> None:
        producer.send(topic_of(settings), key=key, value=value, partition=partition)
        producer.flush(timeout=WAIT_S)

    yield send
    producer.close(timeout=5)


def topic_of(settings: Settings) -> str:
    return Topics(settings.topic_prefix).driver_availability


def tell(write: Write, driver: UUID, *leads_to: str, epoch: int = 0) -> Told:
    """A driver's state, as the shard its id names (its partition) writes it."""
    state = Told(driver, shard_of(driver), epoch, leads_to)
    write(state.owner, *wire.encode_availability(state))
    return state


def told(settings: Settings, partition: int, committed: bool = True) -> list[Told]:
    """The records of a partition of the topic, from its beginning to its end now
    (``read_committed``, or ``read_uncommitted`` to see what aborted transactions wrote)."""
    isolation = "read_committed" if committed else "read_uncommitted"
    consumer = new_consumer(settings.kafka_bootstrap or "", isolation_level=isolation)
    tp = TopicPartition(topic_of(settings), partition)
    found: list[Told] = []
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        deadline = time.monotonic() + WAIT_S
        while consumer.position(tp) < end:
            assert time.monotonic() < deadline, f"{tp} not read to {end} in {WAIT_S} s"
            for records in consumer.poll(timeout_ms=200).values():
                found += [wire.decode_availability(r.key, r.value, partition) for r in records]
    finally:
        consumer.close()
    return found


def of(driver: UUID, records: list[Told]) -> list[tuple[str, ...]]:
    return [r.leads_to for r in records if r.driver_id == driver]


def drained(board: AvailabilityBoard, count: int) -> list[Told]:
    """Drain the board until ``count`` records have arrived."""
    got: list[Told] = []
    deadline = time.monotonic() + WAIT_S
    while len(got) < count:
        assert time.monotonic() < deadline, f"{len(got)} of {count} records in {WAIT_S} s"
        got += board.drain()
        time.sleep(0.05)
    return got


def run_until(worker: KafkaWorker, what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done():
        assert time.monotonic() < deadline, f"{what}: not within {WAIT_S} s"
        worker.run_once()


def hosting(worker: KafkaWorker) -> KafkaWorker:
    """The worker, once it hosts both shards and a possible follow-up rebalance settled."""
    run_until(worker, "both shards hosted", lambda: len(worker.shards) == 2)
    settle = time.monotonic() + 2.0
    run_until(worker, "settled", lambda: time.monotonic() > settle and len(worker.shards) == 2)
    return worker


def send(bus: KafkaTransport, command: c.Command) -> str:
    cid = str(uuid.uuid4())
    bus.send_command(
        c.CommandEnvelope(command_id=cid, issued_at=datetime.now(UTC), command=command)
    )
    return cid


def drive(worker: KafkaWorker, bus: KafkaTransport, *commands: c.Command) -> None:
    """Send the commands and run the worker until each is accepted."""
    ids = [send(bus, command) for command in commands]
    bus.flush()
    run_until(worker, "every outcome", lambda: all(bus.outcome(i) for i in ids))
    assert all(o is not None and o.accepted for o in map(bus.outcome, ids))


def test_a_board_started_after_the_records_knows_each_drivers_latest_state(
    board: AvailabilityBoard, write: Write
) -> None:
    first, second = new_id(0), new_id(1)
    tell(write, first, ONLINE)
    assigned = tell(write, first, ASSIGNED)
    online = tell(write, second, ONLINE)

    assert board.start(timeout_s=WAIT_S) == 2
    assert board.latest == {first: assigned, second: online}
    assert board.skipped == 0
    assert board.known_to(0) == [online]  # the other shards' drivers, not its own
    assert board.known_to(1) == [assigned]


def test_a_record_that_is_not_a_drivers_availability_is_skipped_and_the_next_are_read(
    board: AvailabilityBoard, write: Write
) -> None:
    driver, later = new_id(1), new_id(1)
    key = str(driver).encode()
    write(1, b"not-a-driver", b'{"leads_to": ["%s"]}' % ONLINE.encode())
    write(1, key, b"{not json")
    write(1, key, b'{"leads_to": ["dispatch.Ride.Requested"]}')
    write(1, key, b'{"leads_to": ["%s"], "epoch": -1}' % ONLINE.encode())
    online = tell(write, driver, ONLINE)

    assert board.start(timeout_s=WAIT_S) == 1
    assert board.skipped == 4
    assert board.latest == {driver: online}

    write(1, str(later).encode(), b'{"leads_to": []}')  # while it follows, too
    offered = tell(write, later, OFFERED)
    assert drained(board, 1) == [offered]
    assert board.skipped == 5


def test_records_written_after_start_arrive_through_drain_in_order(
    board: AvailabilityBoard, write: Write
) -> None:
    assert board.start(timeout_s=WAIT_S) == 0
    assert board.drain() == []
    theirs, mine = new_id(1), new_id(0)
    states = [
        tell(write, theirs, ONLINE),
        tell(write, theirs, OFFERED),
        tell(write, mine, ONLINE),
        tell(write, theirs, ASSIGNED, Driver.OfflineAfterTripRequested.TOPIC),
        tell(write, theirs, OFFLINE),
    ]

    got = drained(board, len(states))
    # In order within each partition (Kafka orders nothing across partitions).
    assert [s for s in got if s.owner == 1] == [s for s in states if s.owner == 1]
    assert [s for s in got if s.owner == 0] == [states[2]]
    assert board.drain() == []
    assert board.latest == {theirs: states[-1], mine: states[2]}
    assert board.known_to(0) == [states[-1]]

    newer = tell(write, theirs, ONLINE, epoch=1)
    stale = tell(write, theirs, OFFLINE)  # an older tenure's word, read after a newer one
    assert drained(board, 2) == [newer, stale]
    assert board.latest[theirs] == newer


def test_a_driver_going_online_at_one_shard_is_told_on_its_partition_and_to_the_other_shard(
    settings: Settings, bus: KafkaTransport, board: AvailabilityBoard
) -> None:
    worker = hosting(build_kafka_worker(settings, member="only"))
    try:
        driver, xl = new_id(0), Vehicle("xl", 6, False)
        register = c.RegisterDriver(driver_id=driver, name="Dee", vehicle=VehicleData.of(xl))
        drive(worker, bus, register)
        drive(worker, bus, c.GoOnline(driver_id=driver))
        online = Told(driver, 0, 0, (ONLINE,), xl)  # with its vehicle, for other shards
        assert [r for r in told(settings, 0) if r.driver_id == driver][-1] == online
        assert of(driver, told(settings, 1)) == []

        board.start(timeout_s=WAIT_S)  # as another worker process would read it
        assert board.latest[driver] == online
        assert online in board.known_to(1) and online not in board.known_to(0)
        other = worker.shards[1].worker.matcher
        run_until(worker, "shard 1 knows the driver free", lambda: driver in other.available)
        assert driver not in other.own
        assert other.products_of(driver) == {"standard", "xl"}

        drive(worker, bus, c.GoOffline(driver_id=driver))
        assert of(driver, told(settings, 0))[-1] == (OFFLINE,)
        run_until(worker, "shard 1 knows it gone", lambda: driver not in other.available)
        assert other.drivers[driver][0] == DriverStatus.OFFLINE
        assert drained(board, 1) == [Told(driver, 0, 0, (OFFLINE,), xl)]
    finally:
        worker.close()


def test_an_aborted_batch_tells_nothing_a_committed_reader_sees_and_its_shard_is_told_again(
    settings: Settings, bus: KafkaTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shard 0's batch that puts its driver online sends the availability record into its
    transaction, flushes it to the broker, then fails: the transaction is aborted. Only a
    ``read_uncommitted`` reader sees that record; the batch, decided again, tells it once.
    Shard 0's matcher, refolded from its log, is told again of shard 1's driver."""
    aborted: list[int] = []

    class AbortsOnce(KafkaBatch):
        def _send(self, producer: Any, batch: Batch) -> None:
            super()._send(producer, batch)
            if not aborted and self.host.shard == 0 and batch.told:
                producer.flush()  # the record is in the log, in the open transaction
                aborted.append(self.host.shard)
                raise RuntimeError("provoked: this batch must abort")

    worker = hosting(build_kafka_worker(settings, member="only"))
    try:
        driver, theirs = new_id(0), new_id(1)
        drive(worker, bus, *(c.RegisterDriver(driver_id=d, name="Dee") for d in (driver, theirs)))
        drive(worker, bus, c.GoOnline(driver_id=theirs))
        home = worker.shards[0].worker
        run_until(worker, "shard 0 knows theirs", lambda: theirs in home.matcher.available)
        monkeypatch.setattr(worker_module, "KafkaBatch", AbortsOnce)
        online = send(bus, c.GoOnline(driver_id=driver))
        bus.flush()
        run_until(worker, "the batch aborted", lambda: worker.stats.aborted > 0)
        assert aborted and worker.stats.aborted == 1
        assert of(driver, told(settings, 0, committed=False)) == [(ONLINE,)]
        assert of(driver, told(settings, 0)) == []
        assert bus.outcome(online) is None
        assert theirs not in home.matcher.available  # a new matcher, folded from the log

        run_until(worker, "decided again", lambda: bus.outcome(online) is not None)
        outcome = bus.outcome(online)
        assert outcome is not None and outcome.accepted
        assert of(driver, told(settings, 0)) == [(ONLINE,)]
        other = worker.shards[1].worker.matcher
        run_until(worker, "shard 1 knows the driver free", lambda: driver in other.available)
        run_until(worker, "shard 0 told again", lambda: theirs in home.matcher.available)
        assert worker.stats.aborted == 1
    finally:
        worker.close()


def test_a_takeover_tells_nothing_again_and_a_shard_opened_on_an_empty_partition_tells_all(
    settings: Settings, bus: KafkaTransport
) -> None:
    """A new owner reads the shard's drivers from the topic (compacted: each one's last
    record) and writes none again; with the topic made again (a log that predates it), the
    owner's first batch tells of all of them, and the other shard learns of them."""
    drivers = [new_id(0) for _ in range(5)]
    online, gone = drivers[:3], drivers[3:]
    first = hosting(build_kafka_worker(settings, member="first"))
    try:
        drive(first, bus, *(c.RegisterDriver(driver_id=d, name="Dee") for d in drivers))
        drive(first, bus, *(c.GoOnline(driver_id=d) for d in drivers))
        drive(first, bus, *(c.GoOffline(driver_id=d) for d in gone))
    finally:
        first.close()
    want = {d: (ONLINE,) for d in online} | {d: (OFFLINE,) for d in gone}
    before = told(settings, 0)
    assert {d: of(d, before)[-1] for d in drivers} == want

    def taken_over(member: str) -> list[tuple[UUID, tuple[str, ...]]]:
        """What a new owner wrote by the time its shard 1 knows the drivers."""
        worker = hosting(build_kafka_worker(settings, member=member))
        try:
            run_until(worker, "an announcement", lambda: not worker.shards[0].announce)
            other = worker.shards[1].worker.matcher
            run_until(worker, "shard 1 knows them", lambda: set(online) <= other.available)
            statuses = {d: other.drivers[d][0] for d in gone}
            assert statuses == dict.fromkeys(gone, DriverStatus.OFFLINE)
        finally:
            worker.close()
        after = told(settings, 0)
        assert after[: len(before)] == before
        return [(r.driver_id, r.leads_to) for r in after[len(before) :]]

    assert taken_over("second") == []  # known from the topic alone
    remake_topic(settings)
    before = []
    announced = taken_over("third")
    assert len(announced) == len(drivers) and dict(announced) == want


def remake_topic(settings: Settings) -> None:
    """Delete the driver-availability topic and create it again, empty."""
    bootstrap, name = settings.kafka_bootstrap or "", topic_of(settings)
    admin = new_admin(bootstrap)
    try:
        admin.delete_topics([name], timeout_ms=int(WAIT_S * 1000))
        deadline = time.monotonic() + WAIT_S
        while name in admin.list_topics():
            assert time.monotonic() < deadline, f"{name} not deleted in {WAIT_S} s"
            time.sleep(0.2)
    finally:
        admin.close()
    deadline, made = time.monotonic() + WAIT_S, False
    while not made:  # the broker may still be removing the old one for a moment
        assert time.monotonic() < deadline, f"{name} not made again in {WAIT_S} s"
        with suppress(Exception):
            made = name in create_topics(bootstrap, settings.topic_prefix, settings.shards)
        time.sleep(0.5)
    assert told(settings, 0) == [] and told(settings, 1) == []


def test_a_partition_holding_only_an_aborted_announcement_is_announced_to_by_the_next_owner(
    settings: Settings, bus: KafkaTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a topic made again, the first owner's announcing batch aborts and it goes before
    a retry: the partition holds records and an abort marker but nothing committed, so the
    next owner announces all of the shard's drivers."""
    drivers = [new_id(0) for _ in range(3)]
    first = hosting(build_kafka_worker(settings, member="first"))
    try:
        drive(first, bus, *(c.RegisterDriver(driver_id=d, name="Dee") for d in drivers))
        drive(first, bus, *(c.GoOnline(driver_id=d) for d in drivers))
    finally:
        first.close()
    remake_topic(settings)

    class AbortsTheAnnouncement(KafkaBatch):
        def _send(self, producer: Any, batch: Batch) -> None:
            announcing = self.host.announce
            super()._send(producer, batch)
            if announcing and self.host.shard == 0:
                producer.flush()
                raise RuntimeError("provoked: the announcing batch fails")

    monkeypatch.setattr(worker_module, "KafkaBatch", AbortsTheAnnouncement)
    second = build_kafka_worker(settings, member="second")
    try:
        run_until(second, "the announcement aborted", lambda: second.stats.aborted > 0)
    finally:
        second.close()
    monkeypatch.undo()
    assert told(settings, 0) == [] and told(settings, 0, committed=False) != []

    third = hosting(build_kafka_worker(settings, member="third"))
    try:
        other = third.shards[1].worker.matcher
        run_until(third, "shard 1 knows them", lambda: set(drivers) <= other.available)
    finally:
        third.close()
    assert {of(d, told(settings, 0))[-1] for d in drivers} == {(ONLINE,)}
