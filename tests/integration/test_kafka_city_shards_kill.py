"""A simulated city split over 4 shards on the real broker, served by 2 ``dispatch worker``
processes, one of them killed with SIGKILL while offers across shards are in flight
(issue #14), once with driver hand-offs off and once with them on
(``DISPATCH_HANDOFF_AFTER_S``: a free driver whose pings stay in another shard's region
is handed to that shard).

The simulator runs through ``run_on_kafka``; its ``on_start`` hook hands the test the
workers' pids and its ``on_tick`` hook (with hand-offs on, its reading of each
``Driver.HandedOff`` too) decides when to kill: once the run is well under way and a first
ride was matched with a driver of another shard, when a ride is asking a driver of
another shard (its ``Ride.DriverAsked``, not let go of yet; later, or with hand-offs on at
once, a ride offered a driver it asked for will do) and one of the two shards is hosted
by the victim (the shards each worker restored, from its log; the worker of the driver's
owner, the commit point, rather than the ride's). With hand-offs on, a hand-off must be
in flight too: the kill comes as soon as the simulator reads a ``Driver.HandedOff`` (its
sender committed it with the ``HandOff`` message; the receiver may not have applied it)
or, at a tick, while the receiver's ``Driver.Arrived`` or ``Driver.Returned`` is not seen
yet; later in the run a hand-off made within ``JUST_S`` will do too. The victim hosts one
of its two shards (rather the receiver's). The other worker takes every shard over from
the committed offsets and the logs, and the simulation goes on.

Afterwards: every command has exactly one final outcome (the simulator waits for each,
and the outcomes topic holds one a command, besides the ``moved`` answers of a shard the
driver had left), no ride was opened twice, no driver was held or assigned for two rides
at once: each shard's stream of each driver is walked on its own (held, assigned, let go,
never handed off while held, nothing after a hand-off but a hand-back), and its tenures
across shards, ordered by epoch, form one chain (each begun at exactly one shard, the one
the tenure before handed the driver to: never two shards serving it at once); every
acceptance across shards was committed by a shard serving the driver, ``replay verify``
over every shard is clean, and rides were matched with drivers of another shard both
before and after the kill. With hand-offs on, drivers were handed off (the report's
``handoffs``), and the hand-off seen at the kill is in the logs, committed by its sender
before the kill and applied once by its receiver; where it stood at the kill (applied or
not, acknowledged or not, from every partition's end read right after the SIGKILL) is
logged with the run's figures.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from uuid import UUID

import orjson
import pytest

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.eventstore.codec import notification_id
from dispatch.adapters.kafka.follower import Follower
from dispatch.adapters.kafka.logsource import KafkaLogSource
from dispatch.adapters.kafka.topics import Topics, create_topics, delete_topics
from dispatch.bootstrap import build_personal
from dispatch.domain.driver import Driver
from dispatch.domain.ids import shard_of
from dispatch.domain.ride import Ride
from dispatch.log import LogEvent
from dispatch.replay.operations import verify
from dispatch.settings import Settings
from dispatch.shard.crossshard.messages import Envelope
from dispatch.shard.links import Link
from dispatch.shard.personal import Sealer
from dispatch.simulator import kafka as sim_kafka
from dispatch.simulator.cityshards import split_city
from dispatch.simulator.runner import SimConfig, Simulation

pytestmark = pytest.mark.kafka
log = logging.getLogger(__name__)

SHARDS = 4
WORKERS = 2


@dataclass(frozen=True)
class Scenario:
    config: SimConfig
    handoff_after_s: float  # DISPATCH_HANDOFF_AFTER_S; 0: hand-offs off
    # Until then (simulated seconds), only a ride asking (its Reserve or the Granted on the
    # wire) will do at the kill; from then on, a ride offered a driver it asked for too.
    asks_only_until_s: float
    kill_by_s: float  # the latest kill, in simulated seconds (room for matches after it)


# An overloaded market (more requests than its drivers serve): drivers run out near many
# pickups, so rides are offered drivers across region borders all along the run.
OFF = Scenario(
    SimConfig(
        drivers=150,
        minutes=4,
        seed=5,
        demand_per_min=40,
        warmup_minutes=0,
        drain_minutes=1,
        city_shards=SHARDS,
    ),
    handoff_after_s=0.0,
    asks_only_until_s=140.0,
    kill_by_s=170.0,
)
# With hand-offs, drivers must also be free in another shard's region for a while: more of
# them, driving fast on short trips, so that in 4 minutes some free ones cross region
# borders (about 30 hand-offs a run) while rides still ask drivers across borders (about
# 30 matches across shards); a 10 s dwell before a hand-off. A hand-off and an ask at the
# same tick are rarer than either: a ride offered a driver of another shard (held there
# for it, waiting for its answer) will do from the start.
ON = Scenario(
    SimConfig(
        drivers=600,
        minutes=4,
        seed=5,
        demand_per_min=120,
        warmup_minutes=0,
        drain_minutes=1,
        city_shards=SHARDS,
        trip_mean_m=2_000.0,
        speed_kmh=60.0,
    ),
    handoff_after_s=10.0,
    asks_only_until_s=0.0,
    kill_by_s=200.0,
)
# When to kill, in simulated seconds: after KILL_AFTER_S and a first match across shards,
# when a ride asks a driver of another shard (from the scenario's asks_only_until_s, a ride
# offered a driver it asked for will do too) and, with hand-offs on, a hand-off is in
# flight as far as the simulator has read (its HandedOff read, its arrival not yet) or,
# from JUST_FROM_S, was made within JUST_S; at the scenario's kill_by_s, whatever is in
# flight (and the assertions say what was missing).
KILL_AFTER_S = 75.0
JUST_S = 2.0
JUST_FROM_S = 120.0  # before, only a hand-off not seen arriving yet will do
# Answers that are not final: the command is sent again, to the shard the driver went to.
NOT_FINAL = frozenset({"moved", "not_here_yet"})

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
_BEGINS = frozenset({Driver.Arrived.TOPIC, Driver.Returned.TOPIC})  # a later tenure
_HOSTING = re.compile(r"dispatch\.adapters\.kafka\.worker shard (\d+) (restored|released)\b")


@pytest.fixture(params=[OFF, ON], ids=["handoff-off", "handoff-on"])
def scenario(request: pytest.FixtureRequest) -> Scenario:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path, scenario: Scenario) -> Iterator[Settings]:
    # The settings below are the worker processes' (worker_env passes every one on, and
    # sets DISPATCH_HANDOFF_AFTER_S to 0 when the test runs without hand-offs).
    prefix = f"test-cityk-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, prefix, SHARDS)
    base = Settings(
        data_dir=tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=prefix,
        shards=SHARDS,
        handoff_after_s=scenario.handoff_after_s,
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
class HandOffSeen:
    driver: str
    epoch: int
    sender: int
    receiver: int
    at: float  # the sender's clock, simulated
    stage: str  # "in flight" (not arrived yet, as the simulator saw it) or "just"


@dataclass(frozen=True)
class Kill:
    at_s: float  # simulated seconds into the run
    now: float  # the simulated clock
    wall: float  # monotonic
    when: str  # at a tick, at a HandedOff as soon as the simulator read it, at the deadline
    worker: int
    shards: list[int]  # the shards it hosted
    in_flight: dict[str, tuple[int, int, str]]  # ride -> (its shard, the owner, stage)
    handoffs: list[HandOffSeen]  # in flight or just made, between shards the victim hosts
    cut: dict[int, int]  # shard -> the first position not committed at the kill


@dataclass
class Watch:
    """What the simulator has seen committed: the rides counting on a driver of another
    shard right now, the hand-offs, and the acceptances across shards before and after the
    kill."""

    # ride -> (its shard, the driver's owner asked, "asked" or "offered")
    in_flight: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    asked: dict[str, str] = field(default_factory=dict)  # ride -> the driver it asked
    matches: Counter[str] = field(default_factory=Counter)  # "before" / "after" the kill
    # (driver, epoch) -> (the shard that handed it off, the one it goes to, at)
    handed: dict[tuple[str, int], tuple[int, int, float]] = field(default_factory=dict)
    begun: set[tuple[str, int]] = field(default_factory=set)  # tenures begun by a hand-off
    handoffs: Counter[str] = field(default_factory=Counter)  # tenures begun, before / after
    killed: Kill | None = None

    @property
    def phase(self) -> str:
        return "before" if self.killed is None else "after"

    def see(self, e: LogEvent) -> None:
        topic = e.topic
        if topic == Driver.HandedOff.TOPIC:
            to = int(e.data["to_shard"])
            self.handed[e.aggregate_id, int(e.data["epoch"])] = (e.shard, to, e.at)
            return
        if topic in _BEGINS:
            self.begun.add((e.aggregate_id, int(e.data["epoch"])))
            self.handoffs[self.phase] += 1
            return
        if not topic.startswith(Ride.TOPIC + "."):
            return
        ride = e.aggregate_id
        # Across shards as the simulator counts it: a driver the ride's shard asked for (it
        # does not serve it), whatever the driver's home.
        if topic == Ride.DriverAsked.TOPIC:
            driver = e.data["driver_id"]
            owner = int(e.data.get("owner", -1))
            owner = shard_of(UUID(driver)) if owner < 0 else owner
            self.asked[ride] = driver
            self.in_flight[ride] = (e.shard, owner, "asked")
        elif topic == Ride.Offered.TOPIC:
            asking = self.in_flight.get(ride)
            if asking is not None and self.asked.get(ride) == e.data["driver_id"]:
                self.in_flight[ride] = (asking[0], asking[1], "offered")
            else:  # a driver the ride's shard serves
                self.in_flight.pop(ride, None)
        elif topic in _LET_GO:
            self.in_flight.pop(ride, None)
            if topic == Ride.Accepted.TOPIC and self.asked.get(ride) == e.data["driver_id"]:
                self.matches[self.phase] += 1
            if topic == Ride.AskEnded.TOPIC:
                self.asked.pop(ride, None)

    def handoffs_near(self, now: float) -> list[HandOffSeen]:
        """Hand-offs not arrived yet (as far as the simulator has read), or made within
        JUST_S of ``now``."""
        out = []
        for (driver, epoch), (sender, receiver, at) in self.handed.items():
            if (driver, epoch) not in self.begun:
                out.append(HandOffSeen(driver, epoch, sender, receiver, at, "in flight"))
            elif at >= now - JUST_S:
                out.append(HandOffSeen(driver, epoch, sender, receiver, at, "just"))
        return out


def read_cut(ends: Follower) -> dict[int, int]:
    """Each shard's first position not committed now (read_committed: before any
    transaction still open); none when the broker does not answer (a test of what was
    committed at the kill is then skipped: this is the run's record, not its subject)."""
    for _ in range(3):
        try:
            return {s: notification_id(ends.end_offset(s), 0) for s in range(SHARDS)}
        except Exception:  # kafka-python 3.0 now and then drops a partition from its answer
            log.warning("reading the partitions' ends at the kill failed", exc_info=True)
    return {}


def choose_victim(
    shards: dict[int, set[int]],
    asks: list[tuple[int, int]],
    handoffs: list[HandOffSeen] | None,
) -> int | None:
    """The worker to kill: one hosting a shard of an ask in flight (rather the driver's
    owner, the commit point, than the ride's), and with hand-offs on (``handoffs`` not
    None), one of a hand-off's shards: rather one in flight, at the shard it goes to (which
    must apply it after the takeover), then one just made, at the shard it left (which
    may not have its acknowledgement yet, and sends it again after the takeover)."""
    best: tuple[int, int] | None = None
    victim = None
    for worker, hosts in sorted(shards.items()):
        asking = max((2 if o in hosts else 1 if r in hosts else 0 for r, o in asks), default=0)
        if not asking:
            continue
        handing = 0
        for h in handoffs or ():
            first, second = (
                (h.receiver, h.sender) if h.stage == "in flight" else (h.sender, h.receiver)
            )
            side = 2 if first in hosts else 1 if second in hosts else 0
            handing = max(handing, side and side + (2 if h.stage == "in flight" else 0))
        if handoffs is not None and not handing:
            continue
        if best is None or (handing, asking) > best:
            best, victim = (handing, asking), worker
    return victim


def read_all(settings: Settings) -> list[LogEvent]:
    assert settings.kafka_bootstrap is not None
    source = KafkaLogSource(settings.kafka_bootstrap, settings.topic_prefix)
    try:
        return [e for shard in range(SHARDS) for e in source.read(shard)]
    finally:
        source.close()


def outcome_codes(settings: Settings) -> dict[str, list[str]]:
    """The codes of the outcomes each command got on the outcomes topic (every partition,
    read_committed)."""
    assert settings.kafka_bootstrap is not None
    topic = Topics(settings.topic_prefix).outcomes
    codes: dict[str, list[str]] = defaultdict(list)
    for shard in range(SHARDS):  # a follower reads one partition to its end
        follower = Follower(settings.kafka_bootstrap, topic, [shard], name="test")
        try:
            for records in follower.read_to_end():
                for record in records:
                    outcome = orjson.loads(record.value)
                    codes[outcome["command_id"]].append(outcome.get("code", "ok"))
        finally:
            follower.close()
    return codes


@dataclass
class ShardMessages:
    """The messages between shards on their topic: how many records carried each (the
    copies a sender sends again until it is acknowledged, after a takeover too)."""

    copies: Counter[str]  # message id (sender>receiver#seq) -> records
    kinds: Counter[str]  # messages by kind

    def __str__(self) -> str:
        return f"{len(self.copies)} messages {dict(self.kinds)} in {self.copies.total()} records"


def shard_messages(settings: Settings) -> ShardMessages:
    assert settings.kafka_bootstrap is not None
    topic = Topics(settings.topic_prefix).shard_messages
    out = ShardMessages(Counter(), Counter())
    sealer = Sealer(build_personal(settings))  # the bodies' personal fields are sealed
    for shard in range(SHARDS):  # a follower reads one partition to its end
        follower = Follower(settings.kafka_bootstrap, topic, [shard], name="test")
        try:
            for records in follower.read_to_end():
                for record in records:
                    decoded = wire.decode_shard_message(
                        record.value, "test", shard, sealer.open_record
                    )
                    if isinstance(decoded, Envelope):
                        if decoded.id not in out.copies:
                            out.kinds[type(decoded.body).__name__] += 1
                        out.copies[decoded.id] += 1
        finally:
            follower.close()
    sealer.personal.keys.close()
    return out


@dataclass
class Tenure:
    """A spell of a driver at one shard: from its registration (epoch 0, at its home) or
    a hand-off to the shard (Arrived, Returned) until it is handed off from there."""

    shard: int
    epoch: int
    where: str  # the event that began it
    handed_to: int | None = None  # the shard it was handed off to (None: serving)


@dataclass
class Drivers:
    tenures: dict[str, list[Tenure]]  # driver -> its tenures, by epoch
    assigned: Counter[tuple[str, str]]  # (driver, ride) -> Driver.Assigned events

    @property
    def on_their_way(self) -> list[str]:
        """Drivers whose last tenure was handed off, arrived nowhere (yet): a HandOff still
        on its way when the workers stopped (replay verify flags it unless it is)."""
        return [d for d, spells in self.tenures.items() if spells[-1].handed_to is not None]


def walk_drivers(events: list[LogEvent]) -> Drivers:
    """Walk each shard's stream of each driver on its own, in log order: held for one ride
    at a time (offered, assigned, let go of the ride it holds), never handed off while
    held, and nothing recorded after a hand-off but a hand-back (a later tenure). Then
    each driver's tenures across shards, ordered by epoch: epochs 0, 1, 2... each begun at
    exactly one shard, the one the tenure before handed the driver to, so that no two
    shards ever serve it at once."""
    streams: dict[tuple[str, int], list[LogEvent]] = defaultdict(list)
    for e in events:  # each shard's events in its log's order
        if e.topic.startswith(Driver.TOPIC + "."):
            streams[e.aggregate_id, e.shard].append(e)
    tenures: dict[str, list[Tenure]] = defaultdict(list)
    assigned: Counter[tuple[str, str]] = Counter()
    for (driver, shard), stream in streams.items():
        first = stream[0]
        if first.topic == Driver.Created.TOPIC:
            assert shard == shard_of(UUID(driver)), f"{driver} registered at {first.where}"
            tenure = Tenure(shard, 0, first.where)
        else:
            assert first.topic == Driver.Arrived.TOPIC, (
                f"{driver}'s stream at shard {shard} begins with {first.topic} ({first.where})"
            )
            assert shard != shard_of(UUID(driver)), f"{driver} arrived home at {first.where}"
            tenure = Tenure(shard, int(first.data["epoch"]), first.where)
        tenures[driver].append(tenure)
        holding: str | None = None  # the ride it is held or assigned for, here
        for e in stream[1:]:
            if tenure.handed_to is not None:  # handed off: only a hand-back may follow
                assert e.topic == Driver.Returned.TOPIC, (
                    f"{driver}: {e.topic} at {e.where}, a shard that had handed it off"
                )
                assert int(e.data["epoch"]) > tenure.epoch, f"{driver} back in the past"
                tenure = Tenure(shard, int(e.data["epoch"]), e.where)
                tenures[driver].append(tenure)
                continue
            ride = str(e.data.get("ride_id"))
            if e.topic == Driver.HandedOff.TOPIC:
                assert holding is None, f"{driver} handed off at {e.where} while on {holding}"
                assert int(e.data["epoch"]) == tenure.epoch + 1, f"{driver} at {e.where}"
                tenure.handed_to = int(e.data["to_shard"])
            elif e.topic == Driver.OfferReceived.TOPIC:
                assert holding is None, f"{driver} offered {ride} while on {holding} ({e.where})"
                holding = ride
            elif e.topic == Driver.Assigned.TOPIC:
                assert holding == ride, f"{driver} assigned {ride} it did not hold ({e.where})"
                assigned[driver, ride] += 1
            elif e.topic in (Driver.OfferClosed.TOPIC, Driver.Released.TOPIC):
                assert holding == ride, f"{driver} let go of {ride} it did not hold ({e.where})"
                holding = None
            else:
                assert e.topic not in (Driver.Created.TOPIC, *_BEGINS), (
                    f"{driver}: {e.topic} at {e.where}, a shard that serves it already"
                )
    for driver, spells in tenures.items():
        spells.sort(key=lambda t: t.epoch)
        epochs = [t.epoch for t in spells]
        assert epochs == list(range(len(spells))), f"{driver}'s tenures: epochs {epochs}"
        for before, after in pairwise(spells):
            assert before.handed_to == after.shard, (
                f"{driver}: tenure {after.epoch} begun at shard {after.shard} ({after.where}), "
                f"but tenure {before.epoch} at shard {before.shard} ({before.where}) was "
                f"handed to {before.handed_to}"
            )
    return Drivers(dict(tenures), assigned)


def assert_nothing_doubled(events: list[LogEvent]) -> Drivers:
    """No ride opened twice; no event away from its aggregate's home shard but a driver's
    at the shards it was handed to; no driver held or assigned for two rides at once, nor
    served by two shards at once (``walk_drivers``); every acceptance was committed by the
    shard serving the driver (the commit point), once."""
    opened = Counter(e.aggregate_id for e in events if e.topic == Ride.Created.TOPIC)
    assert [ride for ride, n in opened.items() if n != 1] == [], "a ride opened twice"
    strays = [
        e.where
        for e in events
        if shard_of(UUID(e.aggregate_id)) != e.shard and not e.topic.startswith(Driver.TOPIC + ".")
    ]
    assert strays == [], "a stray event"
    drivers = walk_drivers(events)
    assigned = drivers.assigned
    assert [pair for pair, n in assigned.items() if n != 1] == [], "assigned twice"
    accepted = [
        (e.aggregate_id, e.data["driver_id"]) for e in events if e.topic == Ride.Accepted.TOPIC
    ]
    assert [(r, d) for r, d in accepted if (d, r) not in assigned] == [], (
        "a ride accepted a driver no shard serving it assigned"
    )
    return drivers


def where_handoffs_stood(
    events: list[LogEvent], kill: Kill, messages: ShardMessages
) -> dict[str, list[str]]:
    """Where each hand-off the test saw at the kill stood then, from the logs and the
    partitions' ends read right after the SIGKILL (``Kill.cut``): its ``HandOff`` sent
    (``Link.Sent`` at the old shard, with ``Driver.HandedOff``: committed before the kill,
    since the simulator read it), then applied by the new shard (``Link.Applied``, with
    ``Driver.Arrived`` or ``Returned``) and acknowledged back (``Link.Acknowledged``),
    each before the kill or after it; and how many records carried it. Also the
    hand-offs sent in the tick after the kill to a shard of the victim, from a shard of
    the survivor: in flight until the victim's shard was taken over."""
    links: dict[str, tuple[int, int]] = {}  # link id -> (its shard, the peer)
    handed: dict[tuple[str, int], LogEvent] = {}  # (driver, epoch) -> Driver.HandedOff
    sent: dict[tuple[str, int], tuple[int, int, int, LogEvent]] = {}  # -> S, T, seq, Sent
    begun: dict[tuple[str, int], list[LogEvent]] = defaultdict(list)
    applied: dict[tuple[int, int, int], list[LogEvent]] = defaultdict(list)  # (S, T, seq)
    acked: dict[tuple[int, int], list[tuple[int, LogEvent]]] = defaultdict(list)  # (S, T)
    for e in events:  # a link is opened in its shard's log before it is used
        if e.topic == Link.Created.TOPIC:
            links[e.aggregate_id] = (e.shard, int(e.data["peer"]))
        elif e.topic == Driver.HandedOff.TOPIC:
            handed[e.aggregate_id, int(e.data["epoch"])] = e
        elif e.topic in _BEGINS:
            begun[e.aggregate_id, int(e.data["epoch"])].append(e)
        elif e.topic == Link.Sent.TOPIC and e.data["kind"] == "HandOff":
            body = e.data["body"]
            key = (str(body["driver"]), int(body["epoch"]))
            sent[key] = (e.shard, int(e.data["peer"]), int(e.data["seq"]), e)
        elif e.topic == Link.Applied.TOPIC:
            shard, peer = links[e.aggregate_id]
            applied[peer, shard, int(e.data["seq"])].append(e)
        elif e.topic == Link.Acknowledged.TOPIC:
            shard, peer = links[e.aggregate_id]
            acked[shard, peer].append((int(e.data["upto"]), e))

    def before(e: LogEvent) -> bool:
        return e.position < kill.cut[e.shard]

    stood: dict[str, list[str]] = defaultdict(list)
    if not kill.cut:
        return {"not known (the partitions' ends could not be read at the kill)": []}
    for h in kill.handoffs:
        key = (h.driver, h.epoch)
        assert key in handed and key in sent, f"hand-off {key} seen at the kill not in the logs"
        sender, receiver, seq, message = sent[key]
        assert (sender, receiver) == (h.sender, h.receiver) == (handed[key].shard, receiver)
        assert before(handed[key]) and before(message), f"hand-off {key} seen, not committed"
        arrivals, applies = begun.get(key, []), applied.get((sender, receiver, seq), [])
        assert [a.shard for a in arrivals] == [receiver], f"hand-off {key}: arrived {arrivals}"
        assert [a.shard for a in applies] == [receiver], f"hand-off {key}: applied {applies}"
        acks = [e for upto, e in acked.get((sender, receiver), []) if upto >= seq]
        if not before(applies[0]):
            stage = "sent, applied after the kill"
        elif not (acks and before(acks[0])):
            stage = "applied, acknowledged after the kill"
        else:
            stage = "acknowledged before the kill"
        copies = messages.copies[f"{sender}>{receiver}#{seq}"]
        stood[stage].append(
            f"{h.driver[:8]}#{h.epoch} {sender}->{receiver} (seen {h.stage}, "
            f"{kill.now - h.at:.0f} s before; {copies} record(s))"
        )
    for (driver, epoch), e in handed.items():
        to = int(e.data["to_shard"])
        late = not before(e) and e.at <= kill.now + 1
        if late and to in kill.shards and e.shard not in kill.shards:
            stood["sent after the kill to the victim's shard"].append(
                f"{driver[:8]}#{epoch} {e.shard}->{to}"
            )
    return dict(stood)


def test_a_worker_killed_while_offers_cross_shards_loses_and_doubles_nothing(
    scenario: Scenario,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handing_off = scenario.handoff_after_s > 0
    watch = Watch()

    class Watched(Simulation):
        def on_event(self, e: LogEvent) -> None:
            super().on_event(e)
            watch.see(e)
            if e.topic == Driver.HandedOff.TOPIC and handing_off and first_tick:
                # Read as soon as its sender committed it: its receiver may not have
                # applied it yet. Kill now, rather the receiver's worker.
                handed = (e.aggregate_id, int(e.data["epoch"]))
                if handed in watch.begun:  # its arrival was read first
                    return
                sender, receiver, at = watch.handed[handed]
                seen = HandOffSeen(*handed, sender, receiver, at, "in flight")
                try_kill(self.clock.now, [seen], "at its HandedOff")

    monkeypatch.setattr(sim_kafka, "Simulation", Watched)
    logs = tmp_path / "logs"
    pids: list[int] = []
    first_tick: list[float] = []
    assert settings.kafka_bootstrap is not None
    # To tell, after the run, what was committed when the victim died: every partition's
    # end (read_committed: before any transaction still open) read right after the kill.
    ends = Follower(settings.kafka_bootstrap, Topics(settings.topic_prefix).events, None)

    def on_start(worker_pids: list[int]) -> None:
        pids.extend(worker_pids)

    def on_tick(now: float) -> None:
        first_tick[:] = first_tick or [now]
        elapsed = now - first_tick[0]
        handoffs = None
        if handing_off:  # hand-offs the simulator has not seen arrive, or just made
            handoffs = [
                h
                for h in watch.handoffs_near(now)
                if h.stage == "in flight" or elapsed >= JUST_FROM_S
            ]
        try_kill(now, handoffs, "at a tick", late=elapsed >= scenario.kill_by_s)

    def try_kill(
        now: float, handoffs: list[HandOffSeen] | None, when: str, late: bool = False
    ) -> None:
        elapsed = now - first_tick[0]
        if watch.killed or elapsed < KILL_AFTER_S:
            return
        stages = {"asked"} if elapsed < scenario.asks_only_until_s else {"asked", "offered"}
        asks = [(r, o) for r, o, stage in watch.in_flight.values() if stage in stages]
        if not (asks and watch.matches["before"]) and not late:
            return
        if handoffs == [] and not late:
            return
        shards = {i: hosted(logs / f"worker-{i}.log") for i in range(WORKERS)}
        victim = choose_victim(shards, asks, handoffs)
        if victim is None and not late:
            return
        victim = victim if victim is not None else 0
        os.kill(pids[victim], signal.SIGKILL)
        wall = time.monotonic()
        cut = read_cut(ends)
        hosts = shards[victim]
        near = [h for h in handoffs or () if h.sender in hosts or h.receiver in hosts]
        in_flight = dict(watch.in_flight)
        when = "at the deadline" if late else when
        watch.killed = Kill(elapsed, now, wall, when, victim, sorted(hosts), in_flight, near, cut)

    started = time.monotonic()
    try:
        report = sim_kafka.run_on_kafka(
            scenario.config, settings, WORKERS, logs, on_start=on_start, on_tick=on_tick
        ).finished
    finally:
        ends.close()
    ended = time.monotonic()
    kill = watch.killed
    assert kill is not None, "the kill never came"
    events = read_all(settings)
    messages = shard_messages(settings)
    stood = where_handoffs_stood(events, kill, messages)
    codes = outcome_codes(settings)
    log.warning(
        "%s: run %.0f s (wall), worker %s (shards %s) killed %s %.0f simulated s in, %.0f s "
        "(wall) before the end, with %d ride(s) counting on a driver of another shard (ride: "
        "(its shard, the owner, stage)) %s and hand-offs %s; shard-messages: %s; %d "
        "requests, %d served, cross-shard matches %s, hand-offs %s (report %d), events %d, "
        "outcomes %s",
        "hand-offs on" if handing_off else "hand-offs off", ended - started, kill.worker,
        kill.shards, kill.when, kill.at_s, ended - kill.wall, len(kill.in_flight),
        kill.in_flight, stood, messages, report.requests_total, report.served,
        dict(watch.matches), dict(watch.handoffs), report.handoffs, report.events,
        report.outcomes,
    )  # fmt: skip
    assert kill.in_flight, "nothing was in flight across shards at the kill"
    assert report.violations == []
    assert report.served > 0 and report.cross_shard_matches == watch.matches.total()
    assert watch.matches["before"] > 0 and watch.matches["after"] > 0, dict(watch.matches)
    # Nothing lost, nothing decided twice: one final outcome a command the simulator sent
    # (a shard the driver had left answers moved first, and the command goes on).
    finals = {cid: [c for c in cs if c not in NOT_FINAL] for cid, cs in codes.items()}
    assert {cid: cs for cid, cs in codes.items() if len(finals[cid]) != 1} == {}
    not_final = sum(n for code, n in report.outcomes.items() if code in NOT_FINAL)
    assert len(codes) == sum(report.outcomes.values()) - not_final
    assert sum(len(cs) for cs in codes.values()) == sum(report.outcomes.values())
    drivers = assert_nothing_doubled(events)
    tenures_begun = sum(len(spells) - 1 for spells in drivers.tenures.values())
    log.warning(
        "drivers: %d, tenures begun by a hand-off %d (in the logs), on their way at the end %s",
        len(drivers.tenures), tenures_begun, drivers.on_their_way,
    )  # fmt: skip
    if handing_off:
        assert kill.handoffs, "no hand-off was in flight, nor just made, at the kill"
        assert report.handoffs > 0 and watch.handoffs.total() == report.handoffs
        assert tenures_begun >= report.handoffs  # the simulator may stop reading first
    else:
        assert tenures_begun == 0 and report.handoffs == 0
        assert [e.where for e in events if e.topic == Driver.HandedOff.TOPIC] == []
    source = KafkaLogSource(settings.kafka_bootstrap, settings.topic_prefix)
    try:
        checked, violations = verify(source)
    finally:
        source.close()
    # The workers may commit a little after the simulator's last read (a message a shard
    # sent in the last tick, applied by its receiver): the log may hold more than it saw.
    assert violations == [] and checked == len(events) >= report.events
