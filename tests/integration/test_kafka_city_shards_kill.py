"""A simulated city split over 4 shards on the real broker, served by 2 ``dispatch worker``
processes, one of them killed with SIGKILL while offers across shards are in flight
(issue #14).

The simulator runs through ``run_on_kafka``; its ``on_start`` hook hands the test the
workers' pids and ``on_tick`` decides when to kill: once the run is well under way and a
first ride was matched with a driver of another shard, at the first tick after which a
ride is asking a driver of another shard (a ``Reserve`` or its ``Granted`` on the
shard-messages topic; later, a hold waiting for its driver's answer will do) and one of
the two shards is hosted by the victim (the shards each worker restored, from its log;
the worker of the driver's owner, the commit point, rather than the ride's). The other
worker takes every shard over from the committed offsets and the logs, and the
simulation goes on.
Afterwards: every command has exactly one outcome (the simulator waits for each, and the
outcomes topic holds one a command), no ride was opened twice, no driver was held or
assigned for two rides at once, every acceptance across shards was committed at the
driver's owner, ``replay verify`` over every shard is clean, and rides were matched with
drivers of another shard both before and after the kill.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import pytest

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.follower import Follower
from dispatch.adapters.kafka.logsource import KafkaLogSource
from dispatch.adapters.kafka.topics import Topics, create_topics, delete_topics
from dispatch.domain.driver import Driver
from dispatch.domain.ids import shard_of
from dispatch.domain.ride import Ride
from dispatch.log import LogEvent
from dispatch.replay.operations import verify
from dispatch.settings import Settings
from dispatch.shard.crossshard.messages import Envelope
from dispatch.simulator import kafka as sim_kafka
from dispatch.simulator.cityshards import split_city
from dispatch.simulator.runner import SimConfig, Simulation

pytestmark = pytest.mark.kafka
log = logging.getLogger(__name__)

SHARDS = 4
WORKERS = 2
# An overloaded market (more requests than its drivers serve): drivers run out near many
# pickups, so rides are offered drivers across region borders all along the run.
CONFIG = SimConfig(
    drivers=150,
    minutes=4,
    seed=5,
    demand_per_min=40,
    warmup_minutes=0,
    drain_minutes=1,
    city_shards=SHARDS,
)
# When to kill, in simulated seconds: after KILL_AFTER_S and a first match across shards,
# at a tick that leaves a ride asking a driver of another shard (its Reserve or the Granted
# on the wire); from ASK_BY_S a ride offered one of them will do too; at KILL_BY_S, whatever
# is in flight (room for matches after the kill).
KILL_AFTER_S = 75.0
ASK_BY_S = 140.0
KILL_BY_S = 170.0

# A ride's events that end what it counted on in another shard (an ask or an offer).
_LET_GO = {
    Ride.Accepted.TOPIC,
    Ride.AskEnded.TOPIC,
    Ride.OfferDeclined.TOPIC,
    Ride.OfferExpired.TOPIC,
    Ride.CancelledByRider.TOPIC,
    Ride.CancelledByDriver.TOPIC,
    Ride.Expired.TOPIC,
}
_HOSTING = re.compile(r"dispatch\.adapters\.kafka\.worker shard (\d+) (restored|released)\b")


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Settings]:
    prefix = f"test-cityk-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, prefix, SHARDS)
    base = Settings(
        data_dir=tmp_path, kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, shards=SHARDS
    )
    yield split_city(base, SHARDS)
    delete_topics(kafka_bootstrap, prefix)


def hosted(worker_log: Path) -> set[int]:
    """The shards a worker hosts now, from its log (restored, not released since)."""
    shards: set[int] = set()
    if not worker_log.exists():
        return shards
    for match in _HOSTING.finditer(worker_log.read_text(errors="replace")):
        shard = int(match.group(1))
        if match.group(2) == "restored":
            shards.add(shard)
        else:
            shards.discard(shard)
    return shards


@dataclass(frozen=True)
class Kill:
    at_s: float  # simulated seconds into the run
    wall: float  # monotonic
    worker: int
    shards: list[int]  # the shards it hosted
    in_flight: dict[str, tuple[int, int, str]]  # ride -> (its shard, the owner, stage)


@dataclass
class Watch:
    """What the simulator has seen committed: the rides counting on a driver of another
    shard right now, and the acceptances across shards before and after the kill."""

    # ride -> (its shard, the driver's owner, "asked" or "offered")
    in_flight: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    matches: Counter[str] = field(default_factory=Counter)  # "before" / "after" the kill
    killed: Kill | None = None

    def see(self, e: LogEvent) -> None:
        if not e.topic.startswith(Ride.TOPIC + "."):
            return
        ride = e.aggregate_id
        if e.topic in (Ride.DriverAsked.TOPIC, Ride.Offered.TOPIC):
            owner = shard_of(UUID(e.data["driver_id"]))
            if owner != e.shard:
                stage = "asked" if e.topic == Ride.DriverAsked.TOPIC else "offered"
                self.in_flight[ride] = (e.shard, owner, stage)
            else:
                self.in_flight.pop(ride, None)
        elif e.topic in _LET_GO:
            self.in_flight.pop(ride, None)
            if e.topic == Ride.Accepted.TOPIC and shard_of(UUID(e.data["driver_id"])) != e.shard:
                self.matches["before" if self.killed is None else "after"] += 1


def read_all(settings: Settings) -> list[LogEvent]:
    assert settings.kafka_bootstrap is not None
    source = KafkaLogSource(settings.kafka_bootstrap, settings.topic_prefix)
    try:
        return [e for shard in range(SHARDS) for e in source.read(shard)]
    finally:
        source.close()


def shard_messages(settings: Settings) -> str:
    """The messages between shards on their topic, and how many records carried them (the
    copies a sender sends again until it is acknowledged, after a takeover too)."""
    assert settings.kafka_bootstrap is not None
    topic = Topics(settings.topic_prefix).shard_messages
    copies: Counter[str] = Counter()  # message id -> records
    kinds: Counter[str] = Counter()  # messages by kind
    for shard in range(SHARDS):  # a follower reads one partition to its end
        follower = Follower(settings.kafka_bootstrap, topic, [shard], name="test")
        try:
            for records in follower.read_to_end():
                for record in records:
                    decoded = wire.decode_shard_message(record.value, "test", shard)
                    if isinstance(decoded, Envelope):
                        if decoded.id not in copies:
                            kinds[type(decoded.body).__name__] += 1
                        copies[decoded.id] += 1
        finally:
            follower.close()
    return f"{len(copies)} messages {dict(kinds)} in {copies.total()} records"


def assert_nothing_doubled(events: list[LogEvent]) -> None:
    """No ride opened twice; no driver held or assigned for two rides at once (folded at
    its owner, the commit point); every acceptance was committed at the driver's owner."""
    opened = Counter(e.aggregate_id for e in events if e.topic == Ride.Created.TOPIC)
    assert [ride for ride, n in opened.items() if n != 1] == [], "a ride opened twice"
    assert all(shard_of(UUID(e.aggregate_id)) == e.shard for e in events), "a stray event"
    holding: dict[str, str] = {}  # driver -> the ride it is held or assigned for
    assigned: Counter[tuple[str, str]] = Counter()
    for e in events:  # a driver's events are all in its owner's log, in order
        if not e.topic.startswith(Driver.TOPIC + "."):
            continue
        driver, ride = e.aggregate_id, str(e.data.get("ride_id"))
        if e.topic == Driver.OfferReceived.TOPIC:
            assert driver not in holding, f"{driver} offered {ride} while on {holding[driver]}"
            holding[driver] = ride
        elif e.topic == Driver.Assigned.TOPIC:
            assert holding.get(driver) == ride, f"{driver} assigned {ride} it did not hold"
            assigned[driver, ride] += 1
        elif e.topic in (Driver.OfferClosed.TOPIC, Driver.Released.TOPIC):
            assert holding.get(driver) == ride, f"{driver} let go of {ride} it did not hold"
            del holding[driver]
    assert [pair for pair, n in assigned.items() if n != 1] == [], "assigned twice"
    accepted = [
        (e.aggregate_id, e.data["driver_id"]) for e in events if e.topic == Ride.Accepted.TOPIC
    ]
    assert [(r, d) for r, d in accepted if (d, r) not in assigned] == [], (
        "a ride accepted a driver its owner never assigned"
    )


def test_a_worker_killed_while_offers_cross_shards_loses_and_doubles_nothing(
    settings: Settings,
    tmp_path: Path,
    outcome_counts: Callable[[Settings], Counter[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watch = Watch()

    class Watched(Simulation):
        def on_event(self, e: LogEvent) -> None:
            super().on_event(e)
            watch.see(e)

    monkeypatch.setattr(sim_kafka, "Simulation", Watched)
    logs = tmp_path / "logs"
    pids: list[int] = []
    first_tick: list[float] = []

    def on_start(worker_pids: list[int]) -> None:
        pids.extend(worker_pids)

    def on_tick(now: float) -> None:
        first_tick[:] = first_tick or [now]
        elapsed = now - first_tick[0]
        if watch.killed or elapsed < KILL_AFTER_S:
            return
        stages = {"asked"} if elapsed < ASK_BY_S else {"asked", "offered"}
        wanted = [(r, o) for r, o, stage in watch.in_flight.values() if stage in stages]
        if not (wanted and watch.matches["before"]) and elapsed < KILL_BY_S:
            return
        # Rather the worker hosting a driver's owner (the commit point), else a ride's shard.
        owners = {o for _, o in wanted}
        rides = {r for r, _ in wanted}
        shards = {i: hosted(logs / f"worker-{i}.log") for i in range(WORKERS)}
        victims = [i for i in shards if shards[i] & owners] + [
            i for i in shards if shards[i] & rides
        ]
        if not victims and elapsed < KILL_BY_S:
            return
        victim = victims[0] if victims else 0
        os.kill(pids[victim], signal.SIGKILL)
        in_flight = dict(watch.in_flight)
        watch.killed = Kill(elapsed, time.monotonic(), victim, sorted(shards[victim]), in_flight)

    started = time.monotonic()
    report = sim_kafka.run_on_kafka(
        CONFIG, settings, WORKERS, logs, on_start=on_start, on_tick=on_tick
    ).finished
    ended = time.monotonic()
    kill = watch.killed
    assert kill is not None, "the kill never came"
    log.warning(
        "run %.0f s (wall), worker %s (shards %s) killed %.0f simulated s in, %.0f s (wall) "
        "before the end, with %d ride(s) counting on a driver of another shard (ride: "
        "(its shard, the owner, stage)) %s; shard-messages: %s; %d requests, %d served, "
        "cross-shard matches %s, events %d, outcomes %s",
        ended - started, kill.worker, kill.shards, kill.at_s, ended - kill.wall,
        len(kill.in_flight), kill.in_flight, shard_messages(settings), report.requests_total,
        report.served, dict(watch.matches), report.events, report.outcomes,
    )  # fmt: skip
    assert kill.in_flight, "nothing was in flight across shards at the kill"
    assert report.violations == []
    assert report.served > 0 and report.cross_shard_matches == watch.matches.total()
    assert watch.matches["before"] > 0 and watch.matches["after"] > 0, dict(watch.matches)
    # Nothing lost, nothing decided twice: one outcome a command the simulator sent.
    counts = outcome_counts(settings)
    assert {cid: n for cid, n in counts.items() if n != 1} == {}
    assert len(counts) == sum(report.outcomes.values())
    events = read_all(settings)
    assert_nothing_doubled(events)
    assert settings.kafka_bootstrap is not None
    source = KafkaLogSource(settings.kafka_bootstrap, settings.topic_prefix)
    try:
        checked, violations = verify(source)
    finally:
        source.close()
    # The workers may commit a little after the simulator's last read (a message a shard
    # sent in the last tick, applied by its receiver): the log may hold more than it saw.
    assert violations == [] and checked == len(events) >= report.events
