"""Model test of the cross-shard matching protocol (dispatch/shard/crossshard/).

Three shards, each a ``ShardNode`` with its own clock, exchange messages over a network
that delivers in any order, duplicates, loses, and is refilled from the senders' outboxes
(at-least-once). Every shard works in batches: what it decides since its last commit (state
and the messages it numbered) is lost when it crashes, and only committed messages and
acks reach the network; a crash restores the last committed capture (through JSON) and
resends what was not acknowledged. After every step the safety invariants hold; after
``quiesce`` (and at the end of every run) every reservation, hold and rider lock is
resolved and both sides agree.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from dispatch.domain.errors import DomainError
from dispatch.shard.crossshard.messages import (
    KINDS,
    Accept,
    Ack,
    ActivateRide,
    Body,
    Confirmed,
    Envelope,
    Expired,
    Granted,
    HandOff,
    Moved,
    OpenRide,
    Refused,
    Release,
    Reserve,
    RideActivated,
    Started,
    UnlockRider,
)
from dispatch.shard.crossshard.node import ProtocolConfig, ShardNode
from dispatch.shard.crossshard.owner import ASSIGNED, CLAIMED, FREE, HELD, OWNED
from dispatch.shard.crossshard.riders import RiderLocks
from dispatch.shard.crossshard.rides import (
    ACCEPTED,
    ACTIVE,
    ASKED,
    ENDED,
    OFFERED,
    ON_TRIP,
    RESERVING,
    SEARCHING,
    Rides,
    RideState,
)
from dispatch.shard.crossshard.rides import ASSIGNED as RIDE_ASSIGNED

SHARDS = 3
CONFIG = ProtocolConfig(hold_s=10.0, max_wait_s=120.0)
DRIVERS = ["d0", "d1", "d2", "d3"]
RIDERS = {"p0": 0, "p1": 1, "p2": 2, "p3": 0}  # rider -> home shard
T0 = 1_000.0
PICKUP, DROPOFF = (52.52, 13.40), (52.50, 13.45)
DRIVING = frozenset({RIDE_ASSIGNED, ON_TRIP})


# -- the cluster: shards, their committed captures, clocks and the network -------------------
@dataclass
class Cluster:
    nodes: list[ShardNode] = field(default_factory=list)
    committed: list[str] = field(default_factory=list)  # each shard's capture, as JSON
    clocks: list[float] = field(default_factory=list)
    net: list[Envelope | Ack] = field(default_factory=list)
    parked: list[Envelope] = field(default_factory=list)  # published, but slow to arrive
    delivered: list[Envelope] = field(default_factory=list)  # every message delivered so far
    ride_shard: dict[str, int] = field(default_factory=dict)

    @classmethod
    def start(cls, shards: int = SHARDS, drivers: dict[str, int] | None = None) -> Cluster:
        """Drivers registered and online at their first owner (default: d<i> at i % shards)."""
        cluster = cls([ShardNode(s, CONFIG) for s in range(shards)])
        cluster.clocks = [T0] * shards
        homes = drivers or {d: i % shards for i, d in enumerate(DRIVERS)}
        for driver, shard in homes.items():
            cluster.nodes[shard].owners.register(driver)
            cluster.nodes[shard].owners.go_online(driver)
        cluster.committed = [""] * shards
        for s in range(shards):
            cluster.commit(s)
        return cluster

    def commit(self, shard: int, delay: bool = False) -> None:
        """The shard's batch commits and publishes its messages (``delay``: they are slow to
        arrive, so the later messages of their channels wait for them) and its acks."""
        node = self.nodes[shard]
        fresh, acks = node.take_outgoing()
        data = json.dumps(node.capture())
        assert ShardNode.restore(json.loads(data), CONFIG).capture() == json.loads(data)
        self.committed[shard] = data
        (self.parked if delay else self.net).extend(fresh)
        self.net.extend(acks)

    def arrive(self) -> None:
        """The slow messages arrive in the network at last."""
        self.net.extend(self.parked)
        self.parked.clear()

    def crash(self, shard: int) -> None:
        """Lose everything since the last commit; restore it; resend the unacknowledged."""
        self.nodes[shard] = ShardNode.restore(json.loads(self.committed[shard]), CONFIG)
        self.net.extend(self.nodes[shard].outbox.resend())

    def deliver(self, i: int, keep: bool = False, refuse_open: bool = False) -> Envelope | Ack:
        """Deliver the ``i``-th item in flight (``keep``: a copy; ``refuse_open``: the
        receiver cannot open the rides it is asked to in this batch)."""
        item = self.net[i] if keep else self.net.pop(i)
        node = self.nodes[item.receiver]
        if isinstance(item, Ack):
            node.acknowledged(item)
            return item
        self.delivered.append(item)
        held_until = _hold_expiry(node, item.body)
        node.receive(item, self.clocks[item.receiver], _cannot_open if refuse_open else None)
        if held_until is not None and isinstance(item.body, Accept):
            after = node.owners.drivers.get(item.body.driver)
            if after is not None and after.status == ASSIGNED and after.resv == item.body.resv:
                now = self.clocks[item.receiver]
                assert now < held_until, (
                    f"{item.body.driver} confirmed at {now} on its owner's clock, after its "
                    f"hold {item.body.resv} expired at {held_until}"
                )
        return item

    def tick(self, shard: int, dt: float) -> None:
        self.clocks[shard] += dt
        self.nodes[shard].tick(self.clocks[shard])

    def do(self, shard: int, action: Callable[[ShardNode], object]) -> bool:
        """A command at ``shard``; a refused one must change nothing and send nothing."""
        node = self.nodes[shard]
        before, sent = node.capture(), len(node.outbox.fresh)
        try:
            action(node)
        except DomainError:
            assert node.capture() == before and len(node.outbox.fresh) == sent
            return False
        return True

    def flow(self) -> None:
        """Commit everywhere and deliver until the network is empty (no resends; slow
        messages stay slow)."""
        for _ in range(100):
            for s in range(len(self.nodes)):
                self.commit(s)
            if not self.net:
                return
            while self.net:
                self.deliver(0)
        raise AssertionError("the network did not go quiet")

    def quiesce(self) -> None:
        """Deliver everything, resending the unacknowledged, until no message is pending."""
        self.arrive()
        for _ in range(20):
            self.flow()
            resent = [e for node in self.nodes for e in node.outbox.resend()]
            if not resent:
                return
            self.net.extend(resent)
        raise AssertionError("messages still unacknowledged after 20 rounds of resends")

    # -- reading the state --------------------------------------------------------------------
    def owners(self, driver: str) -> list[int]:
        return [s for s, n in enumerate(self.nodes) if _status(n, driver) in OWNED]

    def ride(self, ride: str) -> RideState | None:
        shard = self.ride_shard.get(ride)
        return None if shard is None else self.nodes[shard].rides.rides.get(ride)

    def pending(self, shard: int) -> list[Body]:
        return [e.body for e in self.nodes[shard].outbox.pending()]


def _body(item: Envelope | Ack) -> Body | None:
    return item.body if isinstance(item, Envelope) else None


def _cannot_open(order: OpenRide) -> str:
    return "cannot open"


def _hold_expiry(node: ShardNode, body: Body) -> float | None:
    """When the hold an ``Accept`` is about expires at its owner (None: not held)."""
    if not isinstance(body, Accept):
        return None
    state = node.owners.drivers.get(body.driver)
    if state is None or state.status != HELD or state.resv != body.resv:
        return None
    return state.expires_at


def _status(node: ShardNode, driver: str) -> str | None:
    state = node.owners.drivers.get(driver)
    return None if state is None else state.status


def _rides(cluster: Cluster) -> list[tuple[int, str, RideState]]:
    return [(s, r, st) for s, n in enumerate(cluster.nodes) for r, st in n.rides.rides.items()]


# -- the invariants --------------------------------------------------------------------------
def check_safety(cluster: Cluster) -> None:
    for driver in DRIVERS:
        assert len(cluster.owners(driver)) <= 1, f"{driver} owned by {cluster.owners(driver)}"
    _check_claims(cluster)
    _check_rides(cluster)
    _check_locks(cluster)


def _released(cluster: Cluster, ride_shard: int, resv: str | None) -> bool:
    return any(isinstance(b, Release) and b.resv == resv for b in cluster.pending(ride_shard))


def _check_claims(cluster: Cluster) -> None:
    """Each driver an owner holds or assigned is the claiming ride's current reservation, or
    that ride's release is on its way; a ride has at most one assigned driver it has not
    released (a driver cancel lets the ride search again before its owner applies the
    release: that old claim can never be used again)."""
    assigned_to: dict[str, list[str]] = {}
    for o, node in enumerate(cluster.nodes):
        for driver, claim in node.owners.drivers.items():
            if claim.status not in CLAIMED:
                continue
            assert claim.ride is not None and claim.ride_shard is not None
            ride = cluster.nodes[claim.ride_shard].rides.rides.get(claim.ride)
            live = RESERVING if claim.status == HELD else {ACCEPTED, *DRIVING}
            current = ride is not None and ride.resv == claim.resv and ride.status in live
            released = _released(cluster, claim.ride_shard, claim.resv)
            assert current or released, f"{driver} {claim.status} at {o} for a dropped {claim.resv}"
            if claim.status == ASSIGNED and not released:
                assigned_to.setdefault(claim.ride, []).append(driver)
    for ride_id, drivers in assigned_to.items():
        assert len(drivers) <= 1, f"ride {ride_id} assigned to {drivers}"


def _check_rides(cluster: Cluster) -> None:
    """A ride that believes it has its driver has it, a hold it was granted is real or its
    end is on its way, and each rider's active ride holds the rider's lock (so one at most)."""
    driving: dict[str, list[str]] = {}
    active: dict[str, list[str]] = {}
    for _, ride_id, ride in _rides(cluster):
        if ride.status in DRIVING or (ride.status in RESERVING and ride.granted):
            assert ride.owner is not None and ride.driver is not None
            claim = cluster.nodes[ride.owner].owners.drivers.get(ride.driver)
            has = claim is not None and claim.status in CLAIMED and claim.resv == ride.resv
            if ride.status in DRIVING:
                assert has and claim is not None and claim.status == ASSIGNED, ride_id
                driving.setdefault(ride.driver, []).append(ride_id)
            else:
                ending = any(
                    isinstance(b, Expired | Refused) and b.resv == ride.resv
                    for b in cluster.pending(ride.owner)
                )
                assert has or ending, f"ride {ride_id} believes in a hold that is gone"
        if ride.status in ACTIVE:
            active.setdefault(ride.rider, []).append(ride_id)
            assert cluster.nodes[ride.home].riders.locks.get(ride.rider) == ride_id
    for driver, rides in driving.items():
        assert len(rides) <= 1, f"driver {driver} drives {rides}"
    for rider, rides in active.items():
        assert len(rides) <= 1, f"rider {rider} has active rides {rides}"


def _check_locks(cluster: Cluster) -> None:
    """A rider lock belongs to a ride live at its shard, or not yet opened there with its
    ``OpenRide`` on its way, or ended with its ``UnlockRider`` on its way."""
    for h, node in enumerate(cluster.nodes):
        for rider, ride_id in node.riders.locks.items():
            ride = cluster.ride(ride_id)
            live = ride is not None and ride.status in ACTIVE
            opening = ride is None and any(
                isinstance(b, OpenRide) and b.ride == ride_id for b in cluster.pending(h)
            )
            unlocking = any(
                isinstance(b, UnlockRider) and b.ride == ride_id
                for b in cluster.pending(cluster.ride_shard[ride_id])
            )
            assert live or opening or unlocking, f"rider {rider} locked by {ride_id}, let go"


def check_resolved(cluster: Cluster) -> None:
    """After quiesce: nothing in flight, and both sides agree on everything."""
    check_safety(cluster)
    assert not cluster.net and all(not n.outbox.pending() for n in cluster.nodes)
    for driver in DRIVERS:
        assert len(cluster.owners(driver)) == 1, f"{driver} is between owners"
    for _, ride_id, ride in _rides(cluster):
        assert ride.status not in (ASKED, ACCEPTED), f"{ride_id} still {ride.status}"
        if ride.status == OFFERED:
            assert ride.owner is not None and ride.driver is not None
            claim = cluster.nodes[ride.owner].owners.drivers[ride.driver]
            assert claim.status == HELD and claim.resv == ride.resv
        if ride.status in (SEARCHING, ENDED):
            assert ride.resv is None
    for node in cluster.nodes:
        for claim in node.owners.drivers.values():
            if claim.status in CLAIMED:  # no stale hold: the ride has it as its current one
                assert claim.ride is not None
                claimant = cluster.ride(claim.ride)
                assert claimant is not None and claimant.resv == claim.resv
        for ride_id in node.riders.locks.values():
            holder = cluster.ride(ride_id)
            assert holder is not None and holder.status in ACTIVE


# -- the state machine -------------------------------------------------------------------------
shard_index = st.integers(0, SHARDS - 1)
driver_index = st.integers(0, len(DRIVERS) - 1)
pick = st.integers(0, 63)
wild = st.sampled_from([False, False, False, True])  # any ride or actor, not a fitting one
# after a step: commit the batch, commit it with its messages slow to arrive, or keep it open
COMMIT, SLOW, OPEN = "commit", "commit, messages slow", "keep the batch open"
then_commit = st.sampled_from([COMMIT, COMMIT, SLOW, OPEN])
MAX_RIDES = 8


class CrossShardMachine(RuleBasedStateMachine):
    """Few, broad rules (each picks a fitting target, or with ``wild`` any): hypothesis
    then chains the steps of a ride's life often enough to reach trips, re-dispatches and
    the races between them."""

    def __init__(self) -> None:
        super().__init__()
        self.c = Cluster.start()
        self.rides: list[str] = []
        self.located = {d: i % SHARDS for i, d in enumerate(DRIVERS)}  # the location stream
        self.step_count = 0

    def _ride(self, i: int, statuses: frozenset[str], any_ride: bool) -> tuple[str, int]:
        """A ride in one of ``statuses`` when there is one (and not ``any_ride``)."""
        fitting = [r for r in self.rides if (s := self.c.ride(r)) and s.status in statuses]
        ride = (self.rides if any_ride or not fitting else fitting)[i % len(fitting or self.rides)]
        return ride, self.c.ride_shard[ride]

    def _driver(self, ride: str, d: int, stranger: bool) -> str:
        state = self.c.ride(ride)
        if stranger or state is None or state.driver is None:
            return DRIVERS[d]
        return state.driver

    def _at(
        self, shard: int, commit: str, action: Callable[[ShardNode], object], what: str
    ) -> None:
        event(f"{what}: {'applied' if self.c.do(shard, action) else 'refused'}")
        self._commit(shard, commit)

    def _commit(self, shard: int, how: str) -> None:
        if how != OPEN:
            self.c.commit(shard, delay=how == SLOW)

    def _request(self, rider: str, shard: int, commit: str) -> None:
        """The rider asks, at its home shard, for a ride at ``shard`` (the pickup's)."""
        ride = f"r{len(self.rides)}"
        self.rides.append(ride)
        self.c.ride_shard[ride] = shard
        home = RIDERS[rider]
        now = self.c.clocks[home]
        request = lambda n: n.request(ride, rider, shard, PICKUP, DROPOFF, now)  # noqa: E731
        self._at(home, commit, request, "request here" if home == shard else "request")

    @initialize(rides=st.lists(st.tuples(st.sampled_from(sorted(RIDERS)), shard_index), max_size=3))
    def first_rides(self, rides: list[tuple[str, int]]) -> None:
        for rider, shard in rides:
            self._request(rider, shard, COMMIT)

    # -- riders, the matcher and drivers ----------------------------------------------------------
    @rule(
        rider=st.sampled_from(sorted(RIDERS)),
        shard=shard_index,
        cancel=st.sampled_from([False, False, False, True]),
        i=pick,
        any_ride=wild,
        other_rider=wild,
        commit=then_commit,
    )
    def rider_acts(
        self,
        rider: str,
        shard: int,
        cancel: bool,
        i: int,
        any_ride: bool,
        other_rider: bool,
        commit: str,
    ) -> None:
        """A rider requests a ride (at its home shard, for a pickup in any shard), or
        cancels one (at the ride's shard, which may not know it yet)."""
        if not cancel and len(self.rides) < MAX_RIDES:
            self._request(rider, shard, commit)
        elif self.rides:
            ride, at = self._ride(i, ACTIVE, any_ride)
            state = self.c.ride(ride)
            who = rider if other_rider or state is None else state.rider
            self._at(at, commit, lambda n: n.rides.rider_cancel(ride, who), "rider cancel")

    @precondition(lambda self: self.rides)
    @rule(i=pick, d=driver_index, any_ride=wild, stale=wild, other=shard_index, commit=then_commit)
    def ask(self, i: int, d: int, any_ride: bool, stale: bool, other: int, commit: str) -> None:
        """The matcher asks the shard where it last saw a driver (or a stale one)."""
        ride, shard = self._ride(i, frozenset({SEARCHING}), any_ride)
        state = self.c.ride(ride)
        drivers = [x for x in DRIVERS if state is None or x not in state.excluded] or DRIVERS
        driver = drivers[d % len(drivers)]
        owner = other if stale else self.located[driver]
        self._at(shard, commit, lambda n: n.rides.ask(ride, driver, owner), "ask")

    @precondition(lambda self: self.rides)
    @rule(
        i=pick,
        d=driver_index,
        any_ride=wild,
        stranger=wild,
        what=st.sampled_from(["accept", "decline", "withdraw", "start", "complete", "cancel"]),
        commit=then_commit,
    )
    def driver_acts(
        self, i: int, d: int, any_ride: bool, stranger: bool, what: str, commit: str
    ) -> None:
        """The driver answers an offer (or the ride withdraws it), or drives the trip."""
        needs = {"start": RIDE_ASSIGNED, "cancel": RIDE_ASSIGNED, "complete": ON_TRIP}
        statuses = frozenset({needs[what]}) if what in needs else RESERVING
        ride, shard = self._ride(i, statuses, any_ride)
        driver = self._driver(ride, d, stranger)
        actions: dict[str, Callable[[ShardNode], object]] = {
            "accept": lambda n: n.rides.accept(ride, driver),
            "decline": lambda n: n.rides.decline(ride, driver),
            "withdraw": lambda n: n.rides.withdraw(ride),
            "start": lambda n: n.rides.start_trip(ride, driver),
            "complete": lambda n: n.rides.complete(ride, driver),
            "cancel": lambda n: n.rides.driver_cancel(ride, driver),
        }
        self._at(shard, commit, actions[what], f"driver {what}")

    @precondition(lambda self: self.rides)
    @rule(i=pick, pump=st.booleans(), hops=st.integers(1, 3))
    def progress(self, i: int, pump: bool, hops: int) -> None:
        """A ride's natural next steps (ask, accept, start, complete), each committed; with
        ``pump``, everything in flight is delivered after each (one protocol hop a step)."""
        ride, shard = self._ride(i, ACTIVE - {ACCEPTED}, any_ride=False)
        for _ in range(hops):
            if not self._next_step(ride, shard, i):
                return
            if pump:
                self.c.flow()

    def _next_step(self, ride: str, shard: int, i: int) -> bool:
        state = self.c.ride(ride)
        if state is None or state.status not in ACTIVE - {ACCEPTED}:
            return False
        driver, owner = state.driver or "", state.owner or 0
        if state.status == SEARCHING:
            free = [d for d in DRIVERS if d not in state.excluded] or DRIVERS
            driver = free[i % len(free)]
            owner = self.located[driver]
        steps: dict[str, Callable[[ShardNode], object]] = {
            SEARCHING: lambda n: n.rides.ask(ride, driver, owner),
            ASKED: lambda n: n.rides.accept(ride, driver),
            OFFERED: lambda n: n.rides.accept(ride, driver),
            RIDE_ASSIGNED: lambda n: n.rides.start_trip(ride, driver),
            ON_TRIP: lambda n: n.rides.complete(ride, driver),
        }
        self._at(shard, COMMIT, steps[state.status], f"progress from {state.status}")
        return True

    @rule(
        d=driver_index,
        to=shard_index,
        what=st.sampled_from(["hand off", "hand off", "hand off", "online or offline"]),
        commit=then_commit,
    )
    def driver_moves(self, d: int, to: int, what: str, commit: str) -> None:
        """The owner hands a driver off (its ping is in another region), or the driver
        goes offline or online."""
        driver = DRIVERS[d]
        for owner in self.c.owners(driver):
            if what == "hand off":
                moved = self.c.do(owner, lambda n: n.owners.hand_off(driver, to))
                event(f"hand-off: {'applied' if moved else 'refused'}")
                self.located[driver] = to if moved else self.located[driver]
            elif _status(self.c.nodes[owner], driver) == FREE:
                self.c.do(owner, lambda n: n.owners.go_offline(driver))
            else:
                event(f"online: {self.c.do(owner, lambda n: n.owners.go_online(driver))}")
            self._commit(owner, commit)

    # -- shards: clocks, batches, crashes ---------------------------------------------------------
    @rule(
        shard=shard_index,
        what=st.sampled_from(["tick", "tick", "advance", "commit", "crash"]),
        dt=st.sampled_from([0.5, 2.0, 5.0, 11.0]),
        commit=then_commit,
    )
    def shard_event(self, shard: int, what: str, dt: float, commit: str) -> None:
        """The shard's clock moves (holds and rides expire on it), its batch commits, or it
        crashes and restores its last committed state. ``advance`` moves the clock without
        the shard's tick, as a batch that handles its messages before its timers would: a
        message then meets a hold whose time is up but which is not yet expired."""
        if what == "tick":
            self.c.tick(shard, dt)
            self._commit(shard, commit)
        elif what == "advance":
            self.c.clocks[shard] += dt
        elif what == "commit":
            self.c.commit(shard)
        else:
            lost = self.c.nodes[shard].outbox.fresh
            event(f"crash: {'lost messages of a batch' if lost else 'no message lost'}")
            self.c.crash(shard)

    # -- the network ------------------------------------------------------------------------------
    @rule(
        what=st.sampled_from(
            [
                "one",
                "one",
                "all",
                "duplicate",
                "replay",
                "replay",
                "lose",
                "resend",
                "arrive",
                "refuse",
            ]
        ),
        i=pick,
        shard=shard_index,
        seed=st.integers(0, 2**16),
        commit=then_commit,
    )
    def network(self, what: str, i: int, shard: int, seed: int, commit: str) -> None:
        """One message delivered (any of those in flight), or all in flight in a shuffled
        order, or one delivered twice, or lost; any message delivered before comes again
        (``replay``: a consumer that restarts from an older offset); a shard resends what is
        unacknowledged; the slow messages arrive; ``refuse``: one delivered to a shard that
        cannot open the rides it is asked to (an ``OpenRide``, or one that waited for it)."""
        net = self.c.net
        if what == "resend":
            net.extend(self.c.nodes[shard].outbox.resend())
        elif what == "arrive":
            self.c.arrive()
        elif net and what in ("one", "duplicate", "refuse"):
            opens = [k for k, x in enumerate(net) if isinstance(_body(x), OpenRide)]
            k = opens[i % len(opens)] if what == "refuse" and opens else i % len(net)
            item = self.c.deliver(k, keep=what == "duplicate", refuse_open=what == "refuse")
            event(f"delivered {type(item.body).__name__ if isinstance(item, Envelope) else 'Ack'}")
            self._commit(item.receiver, COMMIT if what == "duplicate" else commit)
        elif what == "replay" and self.c.delivered:
            self.c.net.insert(0, self.c.delivered[i % len(self.c.delivered)])
            item = self.c.deliver(0)
            self._commit(item.receiver, commit)
        elif net and what == "lose":
            net.pop(i % len(net))
        elif net and what == "all":
            batch, self.c.net = net, []
            random.Random(seed).shuffle(batch)
            for item in batch:
                self.c.net.insert(0, item)
                self.c.deliver(0)
            for receiver in {item.receiver for item in batch}:
                self._commit(receiver, commit)

    @rule()
    def quiesce(self) -> None:
        self.c.quiesce()
        check_resolved(self.c)

    @invariant()
    def safe(self) -> None:
        check_safety(self.c)
        self.step_count += 1
        self._coverage()

    def _coverage(self) -> None:
        for shard, _, ride in _rides(self.c):
            event(f"reached: a ride {ride.ended or ride.status}")
            if ride.status in DRIVING and ride.excluded:
                event("reached: a ride driven after a decline, expiry or driver cancel")
            if ride.status in DRIVING and ride.home != shard:
                event("reached: a ride driven away from its rider's home shard")
            if ride.status in DRIVING and ride.owner != shard:
                event("reached: a ride driven by another shard's driver")
        for node in self.c.nodes:
            for claim in node.owners.drivers.values():
                ride_shard = claim.ride_shard if claim.status == ASSIGNED else None
                if ride_shard is not None and _released(self.c, ride_shard, claim.resv):
                    event("reached: an assignment released, the release not yet applied")
        if any(node.inbox.waiting() for node in self.c.nodes):
            event("reached: a message waiting for a gap in its channel")

    def teardown(self) -> None:
        """Every run ends resolved (unless a step already failed: that is the report)."""
        event(f"steps: {self.step_count // 20 * 20}+")
        if sys.exc_info()[0] is None:
            self.c.quiesce()
            check_resolved(self.c)


CrossShardMachine.TestCase.settings = settings(
    max_examples=250,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCrossShardProtocol = CrossShardMachine.TestCase


# -- targeted races --------------------------------------------------------------------------
R, OWNER, H = 0, 1, 2  # the ride's shard, the driver's owner, the rider's home


def _request(cluster: Cluster, ride: str, rider: str, shard: int = R) -> bool:
    """``rider`` asks at its home shard for ``ride`` at ``shard``; whether it was taken."""
    cluster.ride_shard[ride] = shard
    home = RIDERS[rider]
    now = cluster.clocks[home]
    return cluster.do(home, lambda n: n.request(ride, rider, shard, PICKUP, DROPOFF, now))


def _offered(cluster: Cluster, ride: str = "r0", driver: str = "d1", rider: str = "p2") -> str:
    """A ride at R for a rider of H, offered ``driver`` (at OWNER); returns its reservation."""
    assert _request(cluster, ride, rider)
    cluster.flow()
    resv = cluster.nodes[R].rides.ask(ride, driver, OWNER)
    cluster.flow()
    state = cluster.ride(ride)
    assert state is not None and state.status == OFFERED and state.resv == resv
    return resv


def _send_only(cluster: Cluster, shard: int, kind: type[Body]) -> Envelope:
    """Commit ``shard`` and take its one message of ``kind`` off the network."""
    cluster.commit(shard)
    found = [e for e in cluster.net if isinstance(e, Envelope) and isinstance(e.body, kind)]
    assert len(found) == 1
    cluster.net.remove(found[0])
    return found[0]


@pytest.mark.parametrize("owner_ticked_first", [False, True])
def test_an_accept_reaching_the_owner_after_the_hold_expired_is_refused_and_frees_the_driver(
    owner_ticked_first: bool,
) -> None:
    cluster = Cluster.start()
    resv = _offered(cluster)
    cluster.nodes[R].rides.accept("r0", "d1")
    accept = _send_only(cluster, R, Accept)
    cluster.clocks[OWNER] += CONFIG.hold_s  # the hold's expiry, on the owner's clock only
    if owner_ticked_first:
        cluster.tick(OWNER, 0.0)  # the owner expires the hold before the accept arrives
    cluster.nodes[OWNER].receive(accept, cluster.clocks[OWNER])
    cluster.flow()
    check_resolved(cluster)
    ride = cluster.ride("r0")
    assert ride is not None and ride.status == SEARCHING and ride.excluded == ["d1"]
    assert _status(cluster.nodes[OWNER], "d1") == FREE
    assert resv not in {s.resv for s in cluster.nodes[OWNER].owners.drivers.values()}


def test_an_ask_racing_a_hand_off_is_answered_moved_and_the_new_owner_grants_it() -> None:
    cluster = Cluster.start()
    assert _request(cluster, "r0", "p0")  # p0's home is R: opened in the request
    cluster.nodes[R].rides.ask("r0", "d1", OWNER)  # where the location stream last saw it
    reserve = _send_only(cluster, R, Reserve)
    cluster.nodes[OWNER].owners.hand_off("d1", H)
    hand_off = _send_only(cluster, OWNER, HandOff)
    cluster.nodes[OWNER].receive(reserve, T0)
    moved = _send_only(cluster, OWNER, Moved)
    assert isinstance(moved.body, Moved) and moved.body.owner == H
    cluster.nodes[R].receive(moved, T0)
    ride = cluster.ride("r0")
    assert ride is not None and ride.status == SEARCHING and ride.excluded == []
    # asked at the new owner before the hand-off arrived: not its driver yet
    cluster.nodes[R].rides.ask("r0", "d1", H)
    cluster.nodes[H].receive(_send_only(cluster, R, Reserve), T0)
    early = _send_only(cluster, H, Moved)
    assert isinstance(early.body, Moved) and early.body.owner is None
    cluster.nodes[R].receive(early, T0)
    cluster.nodes[H].receive(hand_off, T0)
    cluster.nodes[R].rides.ask("r0", "d1", H)
    cluster.flow()
    check_resolved(cluster)
    ride = cluster.ride("r0")
    assert ride is not None and ride.status == OFFERED and ride.owner == H
    assert cluster.owners("d1") == [H]


def test_a_duplicate_confirm_is_applied_once_and_acknowledged_again() -> None:
    cluster = Cluster.start()
    _offered(cluster)
    cluster.nodes[R].rides.accept("r0", "d1")
    cluster.commit(R)
    cluster.nodes[OWNER].receive(_send_only(cluster, R, Accept), cluster.clocks[OWNER])
    confirmed = _send_only(cluster, OWNER, Confirmed)
    assert cluster.nodes[R].receive(confirmed, T0) == 1
    cluster.nodes[R].rides.driver_cancel("r0", "d1")  # back to dispatch, d1 excluded
    assert cluster.nodes[R].receive(confirmed, T0) == 0  # the duplicate changes nothing
    fresh, acks = cluster.nodes[R].take_outgoing()
    assert acks == [Ack(R, OWNER, confirmed.seq)]  # the one ack, sent again
    cluster.net.extend([*fresh, *acks])
    cluster.flow()
    check_resolved(cluster)
    ride = cluster.ride("r0")
    assert ride is not None and ride.status == SEARCHING and ride.excluded == ["d1"]
    assert _status(cluster.nodes[OWNER], "d1") == FREE


@pytest.mark.parametrize("granted_reached_the_ride", [False, True])
def test_an_owner_restored_between_a_grant_and_its_ack_resends_it_and_it_applies_once(
    granted_reached_the_ride: bool,
) -> None:
    cluster = Cluster.start()
    assert _request(cluster, "r0", "p0")
    resv = cluster.nodes[R].rides.ask("r0", "d1", OWNER)
    cluster.nodes[OWNER].receive(_send_only(cluster, R, Reserve), T0)
    granted = _send_only(cluster, OWNER, Granted)  # committed at the owner, then lost
    if granted_reached_the_ride:  # ... or applied, but the ride shard's ack is lost
        cluster.nodes[R].receive(granted, T0)
        cluster.commit(R)
    cluster.net.clear()
    cluster.crash(OWNER)
    assert cluster.net == [granted]  # sent again by the restored owner, same id
    cluster.quiesce()  # (the ride shard resends its Reserve too: its ack was lost)
    check_resolved(cluster)
    ride = cluster.ride("r0")
    assert ride is not None and ride.status == OFFERED and ride.resv == resv
    claim = cluster.nodes[OWNER].owners.drivers["d1"]
    assert claim.status == HELD and claim.resv == resv
    assert cluster.nodes[R].inbox.expected[OWNER] == granted.seq + 1


def test_a_busy_rider_is_refused_at_once_at_home_whatever_the_ride_shard() -> None:
    cluster = Cluster.start()
    assert _request(cluster, "r0", "p2", R)  # H locks p2 for r0, OpenRide in flight to R
    assert cluster.nodes[H].riders.locks == {"p2": "r0"}
    assert not _request(cluster, "r1", "p2", OWNER)  # refused in the request: no message
    assert not _request(cluster, "r2", "p2", H)
    assert [type(b) for b in cluster.pending(H)] == [OpenRide]
    cluster.flow()
    check_resolved(cluster)
    assert cluster.ride("r1") is None and cluster.ride("r2") is None
    ride = cluster.ride("r0")
    assert ride is not None and ride.status == SEARCHING and ride.home == H
    cluster.nodes[R].rides.rider_cancel("r0", "p2")
    assert not _request(cluster, "r3", "p2", OWNER)  # the unlock has not reached H yet
    cluster.flow()
    assert cluster.nodes[H].riders.locks == {}
    assert _request(cluster, "r4", "p2", OWNER)
    cluster.flow()
    check_resolved(cluster)
    assert cluster.nodes[H].riders.locks == {"p2": "r4"}


def test_a_cancel_before_the_ride_is_opened_is_refused_as_unknown_and_can_be_retried() -> None:
    cluster = Cluster.start()
    assert _request(cluster, "r0", "p2")
    opening = _send_only(cluster, H, OpenRide)
    assert not cluster.do(R, lambda n: n.rides.rider_cancel("r0", "p2"))  # not found: retry
    cluster.nodes[R].receive(opening, cluster.clocks[R])
    cluster.nodes[R].rides.ask("r0", "d1", OWNER)
    cluster.nodes[R].rides.rider_cancel("r0", "p2")  # the retry, with the ask in flight
    cluster.flow()  # Reserve then Release at the owner: held, then free again
    check_resolved(cluster)
    assert _status(cluster.nodes[OWNER], "d1") == FREE
    assert cluster.nodes[H].riders.locks == {}
    ride = cluster.ride("r0")
    assert ride is not None and ride.ended == "cancelled"


def test_a_ride_its_shard_cannot_open_ends_refused_and_frees_the_lock() -> None:
    cluster = Cluster.start()
    assert _request(cluster, "r0", "p2")
    opening = _send_only(cluster, H, OpenRide)
    cluster.nodes[R].receive(opening, cluster.clocks[R], _cannot_open)
    unlock = _send_only(cluster, R, UnlockRider)
    assert unlock.body == UnlockRider("p2", "r0", "refused")
    cluster.nodes[R].receive(opening, cluster.clocks[R])  # a duplicate: nothing
    cluster.nodes[H].receive(unlock, cluster.clocks[H])
    cluster.flow()
    check_resolved(cluster)
    assert cluster.nodes[H].riders.locks == {}
    ride = cluster.ride("r0")
    assert ride is not None and (ride.status, ride.ended) == (ENDED, "refused")


def test_an_open_for_a_ride_the_shard_has_or_had_changes_nothing() -> None:
    cluster = Cluster.start()
    assert _request(cluster, "r0", "p2")
    cluster.flow()
    cluster.nodes[R].rides.ask("r0", "d1", OWNER)
    node, order = cluster.nodes[R], OpenRide("r0", "p2", *PICKUP, *DROPOFF, requested_at=T0)
    before = node.capture()
    node.rides.on_open(H, order, T0 + 50.0)  # (past the inbox: the handler is idempotent)
    node.rides.refuse_open(H, order, T0 + 50.0)
    assert node.capture() == before
    node.rides.rider_cancel("r0", "p2")
    ended = node.capture()
    node.rides.on_open(H, order, T0 + 60.0)
    assert node.capture() == ended


def test_an_unlock_for_a_ride_that_does_not_hold_the_lock_changes_nothing() -> None:
    locks = RiderLocks(H, lambda to, body: None)
    locks.request(OpenRide("r1", "p2", *PICKUP, *DROPOFF, requested_at=T0), R)
    locks.on_unlock(R, UnlockRider("p2", "r0", "completed"))
    assert locks.locks == {"p2": "r1"}
    locks.on_unlock(R, UnlockRider("p2", "r1", "completed"))
    assert locks.locks == {}


def test_a_locally_homed_rider_is_refused_at_once_while_a_ride_is_active() -> None:
    cluster = Cluster.start()
    node = cluster.nodes[R]
    assert _request(cluster, "r0", "p0")  # p0's home is R: the lock and the ride, one batch
    assert not _request(cluster, "r1", "p0")
    assert not _request(cluster, "r0", "p0")  # the same ride again: already exists
    node.rides.rider_cancel("r0", "p0")
    assert _request(cluster, "r1", "p0")  # the lock was freed in the same batch
    assert node.riders.locks == {"p0": "r1"} and not node.outbox.pending()


def test_every_message_kind_round_trips_through_plain_data() -> None:
    bodies: list[Body] = [
        OpenRide("r0", "p2", *PICKUP, *DROPOFF, requested_at=T0),
        UnlockRider("p2", "r0", "completed"),
        OpenRide("r3", "p2", *PICKUP, *DROPOFF, requested_at=T0, scheduled_for=T0 + 3_600.0),
        ActivateRide("p2", "r3"),
        RideActivated("p2", "r3", None),
        RideActivated("p2", "r3", "r0"),
        Reserve("r0/1", "r0", "d1"),
        Granted("r0/1", "r0", "d1", T0 + 10.0),
        Refused("r0/1", "r0", "d1", "held"),
        Moved("r0/1", "r0", "d1", None),
        Accept("r0/1", "r0", "d1"),
        Confirmed("r0/1", "r0", "d1"),
        Expired("r0/1", "r0", "d1"),
        Release("r0/1", "r0", "d1", "declined"),
        Started("r0/1", "r0", "d1"),
        HandOff("d1", 2),
    ]
    assert sorted({type(b).__name__ for b in bodies}) == sorted(KINDS)
    for seq, body in enumerate(bodies, 1):
        envelope = Envelope(H, R, seq, body)
        data = json.loads(json.dumps(envelope.to_data()))
        assert Envelope.from_data(data) == envelope


def test_captured_state_is_plain_data_and_restores_to_the_same_state() -> None:
    cluster = Cluster.start()
    _offered(cluster)
    cluster.nodes[R].rides.accept("r0", "d1")
    for shard, node in enumerate(cluster.nodes):
        data = node.capture()
        assert json.loads(json.dumps(data)) == data
        restored = ShardNode.restore(data, CONFIG)
        assert restored.capture() == data
        assert [e.id for e in restored.outbox.pending()] == [e.id for e in node.outbox.pending()]
        assert shard == restored.shard


def test_a_ride_reassigned_after_a_driver_cancel_counts_only_its_new_driver() -> None:
    cluster = Cluster.start()
    _offered(cluster, driver="d1")
    cluster.nodes[R].rides.accept("r0", "d1")
    cluster.flow()
    cluster.nodes[R].rides.driver_cancel("r0", "d1")
    release = _send_only(cluster, R, Release)  # held back: d1 stays assigned at its owner
    cluster.nodes[R].rides.ask("r0", "d2", H)
    cluster.flow()
    cluster.nodes[R].rides.accept("r0", "d2")
    cluster.flow()
    ride = cluster.ride("r0")
    assert ride is not None and ride.status == RIDE_ASSIGNED and ride.driver == "d2"
    assert _status(cluster.nodes[OWNER], "d1") == ASSIGNED  # released, not yet applied
    check_safety(cluster)
    cluster.net.append(release)
    cluster.quiesce()
    check_resolved(cluster)
    assert _status(cluster.nodes[OWNER], "d1") == FREE


def _one_ride(state: RideState) -> tuple[Rides, list[tuple[int, object]]]:
    sent: list[tuple[int, object]] = []

    def send(to: int, body: object) -> None:
        sent.append((to, body))

    rides = Rides(0, send, RiderLocks(0, send), max_wait_s=60.0)  # type: ignore[arg-type]
    rides.rides["r0"] = state
    return rides, sent


def test_a_late_answer_for_another_driver_under_a_reused_reservation_id_is_ignored() -> None:
    # r0/1 is now the reservation of d2 at shard 2 (say the counter came round again after
    # a restore); a late Expired about d1 at shard 1 under the same id must not touch it.
    current = RideState("u0", 0, "accepted", 1e9, attempts=1, resv="r0/1", driver="d2",
                        owner=2, granted=True)  # fmt: skip
    rides, sent = _one_ride(current)
    rides.on_expired(1, Expired("r0/1", "r0", "d1"))
    rides.on_refused(2, Refused("r0/1", "r0", "d1", "held"))
    assert (current.status, current.driver, current.excluded, sent) == ("accepted", "d2", [], [])
    rides.on_confirmed(2, Confirmed("r0/1", "r0", "d2"))
    assert current.status == "assigned"


def test_a_ride_whose_driver_accepted_waits_for_the_owner_past_its_max_wait() -> None:
    accepted = RideState("u0", 0, "accepted", 100.0, attempts=1, resv="r0/1", driver="d1",
                         owner=1, granted=True)  # fmt: skip
    rides, sent = _one_ride(accepted)
    rides.expire(now=500.0)
    assert accepted.status == "accepted" and sent == []  # the owner decides
    rides.on_expired(1, Expired("r0/1", "r0", "d1"))  # its verdict: too late
    rides.expire(now=501.0)
    assert accepted.status == "ended" and accepted.ended == "expired"
