"""Rides across shards on the real broker: the messages between shards go through the
``shard-messages`` topic, in the batches' transactions, and a worker that dies loses none
and repeats none (issue #14).

The happy path over HTTP, with a ``dispatch worker`` process and ``replay verify`` after it,
is ``tests/e2e/test_rides_across_markets.py`` (its ``kafka`` variants). Here the home shard
H accepts a burst of requests whose pickups are in the other shard R, and the worker that
hosts both goes: killed with SIGKILL as soon as the first request is accepted (the
OpenRides committed at H, the rides, in practice, not open at R yet), or, made certain in
process, after R opened every ride and committed its ack but before H took the ack. A
``dispatch worker`` process takes both shards over from the committed offsets and the
logs: every ride opens exactly once, each channel is applied in order without a gap or a
repeat, every command has exactly one outcome, the rides' ends free their riders at home,
and ``replay verify`` is clean.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import AggregateNotFoundError

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka import worker as worker_module
from dispatch.adapters.kafka.batch import Ended, KafkaBatch, Offsets
from dispatch.adapters.kafka.follower import Follower
from dispatch.adapters.kafka.logsource import KafkaLogSource
from dispatch.adapters.kafka.processes import start_worker, stop_worker
from dispatch.adapters.kafka.topics import Topics
from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.adapters.kafka.worker import KafkaWorker
from dispatch.bootstrap import build_kafka_worker, build_log_source, build_personal
from dispatch.domain.ids import new_id
from dispatch.domain.operators import operator_id
from dispatch.domain.ride import Ride
from dispatch.domain.rider import Rider
from dispatch.log import LogEvent
from dispatch.messages import Poison
from dispatch.replay.operations import verify
from dispatch.settings import MarketConfig, Settings
from dispatch.shard.crossshard.messages import Envelope
from dispatch.shard.inbound import Inbound
from dispatch.shard.links import Link, link_id
from dispatch.shard.personal import Sealer
from schemas import commands as c
from schemas.common import LatLng

pytestmark = pytest.mark.kafka
log = logging.getLogger(__name__)

H, R = 0, 1  # the riders' home shard (San Francisco), the pickups' shard (San Jose)
SF = LatLng(lat=37.7749, lng=-122.4194)
SAN_JOSE = LatLng(lat=37.3382, lng=-121.8863)
SAN_JOSE_DROPOFF = LatLng(lat=37.3440, lng=-121.8800)
DANA = operator_id("dana")
MARKETS = [
    MarketConfig(name="sf", shard=H, lat=SF.lat, lng=SF.lng, radius_km=6),
    MarketConfig(name="san-jose", shard=R, lat=SAN_JOSE.lat, lng=SAN_JOSE.lng, radius_km=6),
]
RIDERS = 20
WAIT_S = 60.0  # a takeover after a SIGKILL waits for the dead member's session to time out


@pytest.fixture
def settings(kafka_topics: Any, tmp_path: Path) -> Settings:
    assert kafka_topics.partitions == 2, "one shard a market"
    return Settings(
        data_dir=tmp_path,
        kafka_bootstrap=kafka_topics.bootstrap,
        topic_prefix=kafka_topics.prefix,
        shards=2,
        markets=MARKETS,
        offer_timeout_s=60.0,
    )


@pytest.fixture
def bus(settings: Settings) -> Iterator[KafkaTransport]:
    assert settings.kafka_bootstrap is not None
    transport = KafkaTransport(settings.kafka_bootstrap, settings.topic_prefix)
    yield transport
    transport.close()


def send(bus: KafkaTransport, command: c.Command) -> str:
    envelope = c.CommandEnvelope(
        command_id=str(uuid.uuid4()), issued_at=datetime.now(UTC), command=command
    )
    bus.send_command(envelope)
    return envelope.command_id


def decided(bus: KafkaTransport, command_id: str, wait_s: float = WAIT_S) -> c.Outcome:
    outcome = bus.wait_outcome(command_id, wait_s)
    assert outcome is not None, f"no outcome for {command_id} in {wait_s} s"
    return outcome


def events(settings: Settings, shard: int) -> list[LogEvent]:
    assert settings.kafka_bootstrap is not None
    source = KafkaLogSource(settings.kafka_bootstrap, settings.topic_prefix)
    try:
        return list(source.read(shard))
    finally:
        source.close()


def opened(settings: Settings) -> Counter[str]:
    """How many times each ride was opened at R (a ``Ride.Requested`` in R's log, the
    ride's ``Created`` event)."""
    return Counter(e.aggregate_id for e in events(settings, R) if e.topic == Ride.Created.TOPIC)


def wait_for(what: str, done: Callable[[], bool], wait_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + wait_s
    while not done():
        assert time.monotonic() < deadline, f"{what}: not within {wait_s} s"
        time.sleep(0.25)


Until = Callable[[Callable[[], bool]], None]


def run_until(worker: KafkaWorker, done: Callable[[], bool], wait_s: float = WAIT_S) -> None:
    """Drive an in-process worker until ``done``."""
    deadline = time.monotonic() + wait_s
    while not done():
        assert time.monotonic() < deadline, f"not done within {wait_s} s"
        worker.run_once()


def applied(log: list[LogEvent], shard: int, peer: int) -> list[int]:
    """The numbers of ``peer``'s messages ``shard`` applied, in log order."""
    link = str(link_id(shard, peer))
    return [
        int(e.data["seq"]) for e in log if e.aggregate_id == link and e.topic == Link.Applied.TOPIC
    ]


def messages_to(settings: Settings, shard: int) -> Counter[str]:
    """The records on ``shard``'s partition of shard-messages, by kind ("ack" for acks),
    opened as a worker opens them (their personal fields are sealed)."""
    assert settings.kafka_bootstrap is not None
    topic = Topics(settings.topic_prefix).shard_messages
    follower = Follower(settings.kafka_bootstrap, topic, [shard], name="test")
    sealer = Sealer(build_personal(settings))
    found: Counter[str] = Counter()
    try:
        for records in follower.read_to_end():
            for record in records:
                decoded = wire.decode_shard_message(record.value, "test", shard, sealer.open_record)
                assert not isinstance(decoded, Poison), decoded
                found[type(decoded.body).__name__ if isinstance(decoded, Envelope) else "ack"] += 1
    finally:
        follower.close()
        sealer.personal.keys.close()
    return found


@dataclass
class Burst:
    """Riders of H, each asking for a ride in R, and every command sent for them."""

    rides: dict[UUID, UUID]  # rider -> ride
    requests: list[str]
    commands: list[str] = field(default_factory=list)


def a_burst_of_requests(bus: KafkaTransport, until: Until) -> Burst:
    """Register the riders (``until`` they are), then send every request at once."""
    riders = [new_id(H) for _ in range(RIDERS)]
    registered = [send(bus, c.RegisterRider(rider_id=r, name="Ray")) for r in riders]
    bus.flush()
    until(lambda: all(bus.outcome(cid) is not None for cid in registered))
    assert all(decided(bus, cid, 0).accepted for cid in registered)
    rides = {r: new_id(R) for r in riders}
    requests = [
        send(bus, c.RequestRide(ride_id=rides[r], rider_id=r, pickup=SAN_JOSE,
                                dropoff=SAN_JOSE_DROPOFF))
        for r in riders
    ]  # fmt: skip
    bus.flush()
    return Burst(rides, requests, registered + requests)


def served_after_the_takeover(settings: Settings, bus: KafkaTransport, burst: Burst) -> float:
    """Every request decided, every ride open at R, then cancelled (by its rider or an
    operator), which frees its rider at H (one rider rides again); returns when every ride
    was open (monotonic)."""
    for cid in burst.requests:  # those the first worker did not commit are decided again
        assert decided(bus, cid).accepted
    want = {str(ride) for ride in burst.rides.values()}
    wait_for("every ride opens at R", lambda: set(opened(settings)) >= want)
    open_at = time.monotonic()
    cancels = [  # every other one by an operator: its command and event cross Kafka too
        send(bus, c.CancelRide(ride_id=ride, rider_id=rider, reason="changed plans"))
        if i % 2
        else send(bus, c.OperatorCancelRide(ride_id=ride, operator_id=DANA,
                                            operator_name="dana", operator_role="dispatcher",
                                            reason="duplicate"))
        for i, (rider, ride) in enumerate(burst.rides.items())
    ]  # fmt: skip
    assert all(decided(bus, cid).accepted for cid in cancels)

    def unlocked() -> set[str]:
        return {e.data["ride_id"] for e in events(settings, H) if e.topic == Rider.RideEnded.TOPIC}

    wait_for("every ride's end frees its rider at home", lambda: unlocked() >= want)
    rider = next(iter(burst.rides))
    again = send(bus, c.RequestRide(ride_id=new_id(H), rider_id=rider, pickup=SF, dropoff=SF))
    assert decided(bus, again).accepted
    burst.commands += [*cancels, again]
    return open_at


def assert_once(settings: Settings, burst: Burst, outcomes: Counter[str]) -> None:
    """Every ride opened once, each channel applied in order without a gap or a repeat,
    one outcome a command, and ``replay verify`` clean."""
    counts = opened(settings)
    assert {str(ride) for ride in burst.rides.values()} <= set(counts)
    assert [n for n in counts.values() if n != 1] == [], "a ride opened twice"
    assert applied(events(settings, R), R, H) == list(range(1, RIDERS + 1))
    assert applied(events(settings, H), H, R) == list(range(1, RIDERS + 1))
    every = burst.commands
    assert {cid: outcomes[cid] for cid in every} == dict.fromkeys(every, 1)
    source = build_log_source(settings)
    try:
        checked, violations = verify(source)
    finally:
        source.close()
    assert checked > 0 and violations == []


def test_a_worker_killed_right_after_cross_shard_requests_were_accepted_loses_and_repeats_nothing(
    settings: Settings,
    bus: KafkaTransport,
    tmp_path: Path,
    outcome_counts: Callable[[Settings], Counter[str]],
) -> None:
    """SIGKILL as soon as H accepted the first request: H's OpenRides are committed with
    the requests' outcomes; R usually has not opened any ride yet (the log says how many it
    had). The new worker decides any request the first did not commit, H sends every
    unacknowledged OpenRide again, and R, reading the first sends and the second from its
    committed offset, opens each ride once."""
    started = time.monotonic()
    first = start_worker(settings, tmp_path / "first.log", "first")
    second = None
    try:
        burst = a_burst_of_requests(bus, lambda done: wait_for("registered", done))
        outcome = decided(bus, burst.requests[0])
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        killed = time.monotonic()
        assert outcome.accepted, outcome
        at_kill = len(opened(settings))
        second = start_worker(settings, tmp_path / "second.log", "second")
        open_at = served_after_the_takeover(settings, bus, burst)
    finally:
        if first.poll() is None:
            stop_worker(first)
        if second is not None:
            stop_worker(second)
    log.warning(
        "SIGKILL %.1f s in, %d of %d rides open then; every ride open %.1f s after the "
        "kill; %.1f s in all; records to R: %s, to H: %s", killed - started, at_kill,
        RIDERS, open_at - killed, time.monotonic() - started,
        dict(messages_to(settings, R)), dict(messages_to(settings, H)),
    )  # fmt: skip
    assert_once(settings, burst, outcome_counts(settings))


def test_opened_rides_whose_acks_home_never_took_are_not_opened_again(
    settings: Settings,
    bus: KafkaTransport,
    tmp_path: Path,
    outcome_counts: Callable[[Settings], Counter[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The other side of the window, made certain: R has applied every OpenRide and
    committed its ack, and H stopped before it took the ack (its batches after the
    requests are not run), when the worker goes. The new worker's H sends every OpenRide
    again; R, restored from its log, drops them all and acknowledges again."""
    requests: set[str] = set()  # H stops once it has decided all of these
    decided_at_home: set[str] = set()

    class HomeStopsAfterTheRequests(KafkaBatch):
        def run(self, inbound: Inbound, offsets: Offsets) -> Ended:
            if self.host.shard == H and requests and decided_at_home >= requests:
                return Ended("aborted")  # not run, nothing committed: as if the process died
            ended = super().run(inbound, offsets)
            if self.host.shard == H and ended.state == "committed":
                decided_at_home.update(e.command_id for e in inbound.commands)
            return ended

    monkeypatch.setattr(worker_module, "KafkaBatch", HomeStopsAfterTheRequests)
    first = build_kafka_worker(settings, member="first")
    second, closed = None, False
    try:
        run_until(first, lambda: len(first.shards) == 2)
        burst = a_burst_of_requests(bus, lambda done: run_until(first, done))
        requests.update(burst.requests)

        def applied_at_r() -> int:
            try:
                link: Any = first.shards[R].worker.app.repository.get(link_id(R, H))
            except AggregateNotFoundError:
                return 0
            return int(link.in_next) - 1

        run_until(first, lambda: decided_at_home >= requests)
        run_until(first, lambda: applied_at_r() == RIDERS)
        stop_at = time.monotonic() + 1.0  # R's ack is there for H, which has stopped
        run_until(first, lambda: time.monotonic() > stop_at)
        link: Any = first.shards[H].worker.app.repository.get(link_id(H, R))
        assert len(link.pending()) == RIDERS, "H took no ack"
        first.close()  # gone, with nothing more committed
        closed = True
        second = start_worker(settings, tmp_path / "second.log", "second")
        served_after_the_takeover(settings, bus, burst)
    finally:
        if not closed:
            first.close()
        if second is not None:
            stop_worker(second)
    to_r = messages_to(settings, R)
    log.warning("records to R: %s, to H: %s", dict(to_r), dict(messages_to(settings, H)))
    assert to_r["OpenRide"] >= 2 * RIDERS, "H sent its unacknowledged OpenRides again"
    assert_once(settings, burst, outcome_counts(settings))
