"""Random command and decision sequences against one shard application (in memory, and
again on SQLite).

Drivers and riders are registered up front; the rules then send random commands (often
illegal: wrong actor, wrong state, unknown or misrouted ids, repeated command ids; pickups
in another shard) and random matcher decisions, move the clock forward, and commit at
random points. After every step the domain rules must hold, a rejected command must have
changed nothing, and the committed log must pass ``dispatch.invariants.InvariantChecker``.
"""

from __future__ import annotations

import os
import random
import tempfile
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from dispatch.domain.driver import Driver, DriverStatus
from dispatch.domain.ids import new_id, shard_of
from dispatch.domain.ride import TERMINAL, Ride, RideStatus
from dispatch.domain.rider import Rider
from dispatch.invariants import InvariantChecker
from dispatch.log import decode
from dispatch.matching.decisions import ExpireOffer, ExpireRequest, MakeOffer
from dispatch.shard.application import ShardApplication
from dispatch.shard.crossshard.messages import OpenRide
from dispatch.shard.links import Link, link_id
from dispatch.shard.policy import Policy
from schemas import commands as c

# Refusals not recorded: they hold until a message from another shard arrives
# (``DomainError.final``): a ride not opened here yet, a rider busy with a ride elsewhere.
NOT_FINAL = {"not_found", "illegal_transition"}

SHARD, OTHER = 1, 2
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
MAX_WAIT_S = 120.0
DRIVERS, RIDERS = 3, 3
COMMAND_RECORD = "dispatch.CommandRecord.Handled"
EVERYTHING = 10**9

index = st.integers(min_value=0, max_value=30)
ride_index = st.integers(min_value=0, max_value=7)  # 7: an unknown ride id
who = st.sampled_from(["holder", "holder", "random", "unknown"])
DRIVER_COMMANDS = [
    c.AcceptOffer,
    c.DeclineOffer,
    c.MarkArrived,
    c.StartTrip,
    c.CompleteTrip,
    c.DriverCancel,
]
NEXT = {
    RideStatus.ACCEPTED: c.MarkArrived,
    RideStatus.DRIVER_ARRIVED: c.StartTrip,
    RideStatus.IN_PROGRESS: c.CompleteTrip,
}


def _state(agg: Aggregate) -> dict[str, Any]:
    return {
        k: (list(v) if isinstance(v, list) else v)
        for k, v in vars(agg).items()
        if k != "_pending_events"
    }


def _forget_the_note(
    before: dict[UUID, dict[str, Any]],
    after: dict[UUID, dict[str, Any]],
    envelope: c.CommandEnvelope,
) -> None:
    """Take back a refused driver command's note on its driver (``Driver.CommandNoted``:
    one version more, the command's id among its commands), so the rest can be compared."""
    target = envelope.target_id
    then, now = before.get(target), after.get(target)
    if then is None or now is None or now["_version"] != then["_version"] + 1:
        return
    commands = dict(now["commands"])
    assert commands.pop(envelope.command_id, None) is not None, "one more version: the note"
    assert commands.keys() <= then["commands"].keys()
    after[target] = then


class ShardMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.app = ShardApplication(SHARD, env=self.env(), policy=Policy(max_wait_s=MAX_WAIT_S))
        self.rng = random.Random(0)  # ids only: deterministic, so examples replay
        self.now = T0
        self.seq = 0
        self.drivers = [new_id(SHARD, self.rng) for _ in range(DRIVERS)]
        self.riders = [new_id(SHARD, self.rng) for _ in range(RIDERS)]
        self.rides: list[UUID] = []
        self.sent: list[c.CommandEnvelope] = []
        # the open batch's commands: (command_id, whether handle() applied it)
        self.batch: list[tuple[str, bool]] = []
        self.first_outcome: dict[str, c.Outcome] = {}
        self.checker = InvariantChecker()
        self.checked_upto = 0

    def env(self) -> dict[str, str]:
        return {}  # in memory (POPO)

    # -- plumbing --------------------------------------------------------------------------
    def find(self, aggregate_id: UUID) -> Aggregate | None:
        return self.app._uow.find(Aggregate, aggregate_id)

    def domain_ids(self) -> list[UUID]:
        return [*self.drivers, *self.riders, *self.rides]

    def snapshot(self) -> dict[UUID, dict[str, Any]]:
        out = {}
        for aggregate_id in self.domain_ids():
            agg = self.find(aggregate_id)
            if agg is not None:
                out[aggregate_id] = _state(agg)
        return out

    def send(self, command: Any, envelope: c.CommandEnvelope | None = None) -> None:
        if envelope is None:
            self.seq += 1
            envelope = c.CommandEnvelope(
                command_id=f"cmd-{self.seq}", issued_at=self.now, command=command
            )
            self.sent.append(envelope)
        before = self.snapshot()
        events = self.app.handle(envelope, self.now)
        after = self.snapshot()
        event(f"{envelope.command.type}: {'applied' if events else 'not applied'}")
        if not events:
            # rejected (or a repeat): no domain aggregate changed, in version or state, but
            # for the note of a refused driver command on its driver
            _forget_the_note(before, after, envelope)
            assert after == before
        else:
            topics = [type(e).TOPIC for e in events]
            assert topics.count(COMMAND_RECORD) == 1
            changed = {e.originator_id for e in events if type(e).TOPIC != COMMAND_RECORD}
            for aggregate_id in set(before) | set(after):
                if aggregate_id not in changed:
                    assert before.get(aggregate_id) == after.get(aggregate_id)
        self.batch.append((envelope.command_id, bool(events)))

    def decide(self, decision: Any) -> None:
        before = self.snapshot()
        events = self.app.decide(decision, self.now)
        event(f"{type(decision).__name__}: {'applied' if events else 'not applied'}")
        if not events:
            assert self.snapshot() == before
        else:
            assert all(type(e).TOPIC != COMMAND_RECORD for e in events)

    def ride(self, i: int) -> UUID:
        """One of the latest requested rides (some never got created), or an unknown id."""
        if not self.rides or i == 7:
            return new_id(SHARD, self.rng)
        return self.rides[-1 - i % min(len(self.rides), 7)]

    def holder(self, ride_id: UUID) -> UUID | None:
        ride = self.find(ride_id)
        if isinstance(ride, Ride):
            return ride.offered_to or ride.driver_id
        return None

    def driver(self, how: str, i: int, ride_id: UUID) -> UUID:
        if how == "holder":
            held = self.holder(ride_id)
            if held is not None:
                return held
        if how == "unknown":
            return new_id(SHARD, self.rng)
        return self.drivers[i % len(self.drivers)]

    # -- set-up ----------------------------------------------------------------------------
    @initialize()
    def register(self) -> None:
        for i, driver_id in enumerate(self.drivers):
            self.send(c.RegisterDriver(driver_id=driver_id, name=f"driver {i}"))
        for i, rider_id in enumerate(self.riders):
            self.send(c.RegisterRider(rider_id=rider_id, name=f"rider {i}"))
        for driver_id in self.drivers[:-1]:  # the last driver starts offline
            self.send(c.GoOnline(driver_id=driver_id))
        self.commit()

    # -- client commands ----------------------------------------------------------------------
    @rule(i=index)
    def go_online(self, i: int) -> None:
        self.send(c.GoOnline(driver_id=self.drivers[i % DRIVERS]))

    @rule(i=index, after_trip=st.booleans())
    def go_offline(self, i: int, after_trip: bool) -> None:
        self.send(c.GoOffline(driver_id=self.drivers[i % DRIVERS], after_trip=after_trip))

    @rule(i=index, kind=st.sampled_from(["new", "new", "new", "reuse", "elsewhere", "foreign"]))
    def request_ride(self, i: int, kind: str) -> None:
        rider_id = self.riders[i % RIDERS]
        if kind == "reuse" and self.rides:
            ride_id = self.rides[i % len(self.rides)]
        elif kind == "elsewhere":  # a pickup in another shard: the lock here, the ride there
            ride_id = new_id(OTHER, self.rng)
        else:
            ride_id = new_id(SHARD, self.rng)
            self.rides.append(ride_id)
        if kind == "foreign":
            rider_id = new_id(OTHER, self.rng)
        pickup, dropoff = {"lat": 37.77, "lng": -122.42}, {"lat": 37.7, "lng": -122.4}
        self.send(c.RequestRide(ride_id=ride_id, rider_id=rider_id, pickup=pickup, dropoff=dropoff))

    @rule(r=ride_index, own=st.booleans(), i=index)
    def cancel_ride(self, r: int, own: bool, i: int) -> None:
        ride_id = self.ride(r)
        ride = self.find(ride_id)
        rider_id = self.riders[i % RIDERS]
        if own and isinstance(ride, Ride):
            rider_id = ride.rider_id
        self.send(c.CancelRide(ride_id=ride_id, rider_id=rider_id, reason="random"))

    @rule(command=st.sampled_from(DRIVER_COMMANDS), r=ride_index, how=who, i=index)
    def driver_command(self, command: Any, r: int, how: str, i: int) -> None:
        ride_id = self.ride(r)
        self.send(command(ride_id=ride_id, driver_id=self.driver(how, i, ride_id)))

    @rule(
        r=ride_index,
        steps=st.integers(min_value=1, max_value=4),
        answers=st.lists(st.integers(min_value=0, max_value=3), min_size=4, max_size=4),
        i=index,
    )
    def progress_ride(self, r: int, steps: int, answers: list[int], i: int) -> None:
        """The natural next steps of a ride, so that rides get deep into their lifecycle.

        An answer of 0 takes the other branch: decline the offer, cancel as the driver, or
        ask to go offline after the trip."""
        ride_id = self.ride(r)
        for step in range(steps):
            ride = self.find(ride_id)
            if not isinstance(ride, Ride):
                return
            held = ride.offered_to or ride.driver_id
            if ride.status == RideStatus.REQUESTED:
                self.make_offer(r, "available", i, 60)
            elif ride.status == RideStatus.OFFERED and held is not None:
                command = c.AcceptOffer if answers[step] else c.DeclineOffer
                self.send(command(ride_id=ride_id, driver_id=held))
            elif held is not None and ride.status in NEXT:
                if answers[step]:
                    self.send(NEXT[ride.status](ride_id=ride_id, driver_id=held))
                elif ride.status == RideStatus.IN_PROGRESS:
                    self.send(c.GoOffline(driver_id=held, after_trip=True))
                else:
                    self.send(c.DriverCancel(ride_id=ride_id, driver_id=held))

    @rule(i=st.integers(min_value=0, max_value=10_000))
    def repeat_a_command(self, i: int) -> None:
        if self.sent:
            self.send(None, envelope=self.sent[i % len(self.sent)])

    # -- matcher decisions --------------------------------------------------------------------
    @rule(
        r=ride_index,
        how=st.sampled_from(["available", "random", "unknown"]),
        i=index,
        timeout=st.sampled_from([1, 15, 60]),
    )
    def make_offer(self, r: int, how: str, i: int, timeout: int) -> None:
        ride_id = self.ride(r)
        if how == "available":
            free = [
                d
                for d in self.drivers
                if (agg := self.find(d)) is not None and agg.status == DriverStatus.AVAILABLE
            ]
            driver_id = free[i % len(free)] if free else self.drivers[i % DRIVERS]
        else:
            driver_id = self.driver(how, i, ride_id)
        expires = (self.now + timedelta(seconds=timeout)).timestamp()
        self.decide(MakeOffer(ride_id, driver_id, 60.0, 500.0, expires))

    @rule(r=ride_index)
    def expire_offer(self, r: int) -> None:
        self.decide(ExpireOffer(self.ride(r)))

    @rule(r=ride_index)
    def expire_request(self, r: int) -> None:
        self.decide(ExpireRequest(self.ride(r)))

    @rule(seconds=st.sampled_from([0.5, 1, 5, 15, 60, 200]))
    def advance_clock(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    @rule()
    def commit(self) -> None:
        outcomes, recordings = self.app.commit()
        assert [o.command_id for o in outcomes] == [cid for cid, _ in self.batch]
        records = [r for r in recordings if type(r.domain_event).TOPIC == COMMAND_RECORD]
        recorded = {r.domain_event.command_id for r in records}  # type: ignore[attr-defined]
        unsettled: set[str] = set()  # refused in this batch, maybe not recorded (not final)
        for outcome, (command_id, applied) in zip(outcomes, self.batch, strict=True):
            first = self.first_outcome.get(command_id)
            if first is not None and command_id in unsettled and not outcome.duplicate:
                # The earlier attempt was a refusal that holds only until another shard's
                # message arrives: not recorded, so this attempt was decided afresh.
                unsettled.discard(command_id)
                del self.first_outcome[command_id]
                first = None
            if first is None:
                assert not outcome.duplicate
                assert outcome.accepted == applied
                if command_id in recorded:
                    self.first_outcome[command_id] = outcome
                    if not outcome.accepted and outcome.code in NOT_FINAL:
                        unsettled.add(command_id)
                else:  # a refusal that holds only until another shard's message arrives
                    assert not outcome.accepted and outcome.code in NOT_FINAL, outcome
            else:
                assert outcome.duplicate and not applied
                assert (outcome.accepted, outcome.code, outcome.reason) == (
                    first.accepted,
                    first.code,
                    first.reason,
                )
        self.batch = []
        assert len(records) == len(recorded)  # one record a command at most
        assert recorded <= {o.command_id for o in outcomes if not o.duplicate}
        self.check_log()
        # what is in memory now is exactly what the log folds to
        for aggregate_id in self.domain_ids():
            agg = self.find(aggregate_id)
            if agg is not None:
                stored = self.app.repository.get(aggregate_id, version=EVERYTHING)
                assert _state(agg) == _state(stored)

    def check_log(self) -> None:
        page = self.app.recorder.select_notifications(self.checked_upto + 1, 100_000)
        for notification in page:
            self.checker.check(decode(notification, SHARD))
            self.checked_upto = notification.id
        assert self.checker.violations == [], [str(v) for v in self.checker.violations]

    # -- invariants ---------------------------------------------------------------------------
    @invariant()
    def domain_rules_hold(self) -> None:
        drivers = {d: self.find(d) for d in self.drivers}
        riders = {r: self.find(r) for r in self.riders}
        rides = {r: a for r in self.rides if isinstance(a := self.find(r), Ride)}
        holders: dict[UUID, UUID] = {}
        for ride_id, ride in rides.items():
            rider = riders[ride.rider_id]
            assert isinstance(rider, Rider)
            if ride.status in TERMINAL:
                assert rider.active_ride != ride_id
                continue
            # a rider has at most one active ride, and it is this one
            assert rider.active_ride == ride_id
            if ride.status == RideStatus.REQUESTED:
                assert (ride.offered_to, ride.driver_id) == (None, None)
                continue
            if ride.status == RideStatus.OFFERED:
                assert ride.driver_id is None and ride.offered_to is not None
                driver_id, expected = ride.offered_to, {DriverStatus.OFFERED}
            else:
                assert ride.offered_to is None and ride.driver_id is not None
                driver_id = ride.driver_id
                expected = (
                    {DriverStatus.ON_TRIP}
                    if ride.status == RideStatus.IN_PROGRESS
                    else {DriverStatus.EN_ROUTE}
                )
            # exactly one driver, who holds this ride, and no other active ride has them
            assert driver_id not in holders, (ride_id, holders[driver_id])
            holders[driver_id] = ride_id
            driver = drivers[driver_id]
            assert isinstance(driver, Driver)
            assert driver.ride_id == ride_id and driver.status in expected
        for driver_id, driver in drivers.items():
            assert isinstance(driver, Driver)
            if driver.status in (DriverStatus.OFFLINE, DriverStatus.AVAILABLE):
                assert driver.ride_id is None and not driver.offline_after_trip
                assert driver_id not in holders
            else:
                # a driver holds at most one ride: the one that names them
                assert holders.get(driver_id) == driver.ride_id
        for rider_id, rider in riders.items():
            assert isinstance(rider, Rider)
            if rider.active_ride is not None and shard_of(rider.active_ride) != SHARD:
                # a ride at another shard's pickup: its OpenRide was sent from here
                link = self.find(link_id(SHARD, shard_of(rider.active_ride)))
                assert isinstance(link, Link)
                opened = [e.body.ride for e in link.pending() if isinstance(e.body, OpenRide)]
                assert str(rider.active_ride) in opened
            elif rider.active_ride is not None:
                ride = rides.get(rider.active_ride)
                assert ride is not None and ride.rider_id == rider_id and ride.is_active

    def teardown(self) -> None:
        # resolve what a real matcher would have resolved by now, then check the whole log
        if self.batch:
            self.commit()
        self.now += timedelta(seconds=3_600)
        for ride_id in self.rides:
            ride = self.find(ride_id)
            if isinstance(ride, Ride) and ride.status == RideStatus.OFFERED:
                assert self.app.decide(ExpireOffer(ride_id), self.now)
        self.commit()
        self.check_log()
        assert self.checker.finish() == []
        assert self.checker.events == self.app.recorder.max_notification_id()


ShardMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestShardApplicationStateMachine = ShardMachine.TestCase


class SqliteShardMachine(ShardMachine):
    """The same rules on SQLite, where rollbacks re-read aggregates from the database."""

    def env(self) -> dict[str, str]:
        self._dir = tempfile.TemporaryDirectory()
        path = os.path.join(self._dir.name, "shard.db")
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path}

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            self.app.close()
            self._dir.cleanup()


SqliteShardMachine.TestCase.settings = settings(ShardMachine.TestCase.settings, max_examples=50)
TestShardApplicationStateMachineOnSqlite = SqliteShardMachine.TestCase


def test_a_retry_in_the_batch_after_a_refusal_that_was_not_final_is_decided_afresh(
    monkeypatch: Any,
) -> None:
    """The sequence hypothesis found (seed-independent: the machine's ids come from its own
    generator): a request refused while its rider's ride elsewhere may still be ending (not
    recorded), sent again in the same batch, is decided again and recorded then."""
    monkeypatch.setitem(globals(), "event", lambda *_a, **_k: None)  # outside hypothesis
    m = ShardMachine()
    m.register()
    m.request_ride(i=0, kind="elsewhere")
    for _ in range(5):
        m.go_online(i=0)
    m.go_offline(after_trip=False, i=0)
    for _ in range(3):
        m.request_ride(i=0, kind="new")
    m.cancel_ride(i=0, own=False, r=0)
    m.driver_command(command=c.AcceptOffer, how="holder", i=0, r=0)
    m.make_offer(how="available", i=0, r=0, timeout=1)
    m.make_offer(how="available", i=0, r=0, timeout=1)
    m.go_offline(after_trip=False, i=0)
    m.go_offline(after_trip=False, i=3)
    m.request_ride(i=1, kind="reuse")
    m.request_ride(i=2, kind="new")
    m.cancel_ride(i=0, own=False, r=1)
    m.progress_ride(answers=[0, 0, 0, 0], i=0, r=1, steps=1)
    m.progress_ride(answers=[0, 1, 0, 0], i=0, r=0, steps=3)
    m.repeat_a_command(i=259)
    m.commit()  # its checks pass: the retry was not a duplicate of an unrecorded refusal
    m.teardown()
