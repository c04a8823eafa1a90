"""A driver serving shared rides, through offers, declines, insertions, arrivals, pickups,
drop-offs and cancellations by riders and by the driver in any order (hypothesis' state
machine over the real aggregates): the driver holds exactly the rides assigned to it, its
status is the shared fold's over the events it recorded, it is on trip exactly while
someone is aboard, its plan is served in order and never seats more than the vehicle has,
and a driver serving single rides is untouched by it."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from dispatch.domain.driver import REGISTERED, Driver, DriverStatus, next_availability
from dispatch.domain.errors import IllegalTransition
from dispatch.domain.geo import Point
from dispatch.domain.pooling import Route, Sharing, Stop, plan_of, walk
from dispatch.domain.products import Vehicle
from dispatch.domain.ride import ASSIGNED, DrivenTrip, Ride, RideStatus
from dispatch.invariants import InvariantChecker
from dispatch.log import LogEvent

T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
_ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic"}
TRIP = DrivenTrip(1_000, 300, {"distance": "test", "duration": "test"})


def _seats_only(a: tuple[float, float], b: tuple[float, float]) -> float:
    return 0.0  # no time passes: only the seats and the order of stops are judged


class PooledDriver(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.t = T0
        self.ids = iter(range(1, 10_000))  # the same ids every run: hypothesis replays draws
        self.driver = Driver.register(self._id(), "d", self.t, Vehicle("standard", 4, False))
        self.driver.go_online(self._tick())
        self.checker, self.position = InvariantChecker(), 0  # the log checker, as verify runs it
        self.topics: list[str] = []
        self.rides: dict[UUID, Ride] = {}
        self._record()

    def _id(self) -> UUID:
        return UUID(int=next(self.ids))

    def _times(self, plan: tuple[Stop, ...] | None) -> list[float] | None:
        """Stop times from now a second apart: within every rider's bounds here, so the
        log checker's walk of each plan has nothing to find."""
        if plan is None:
            return None
        now = self.t.timestamp()
        return [now + i for i in range(len(plan))]

    def _tick(self) -> datetime:
        self.t += timedelta(seconds=1)
        return self.t

    def _record(self) -> None:
        """Collect what the rides and the driver recorded (rides first, as the shard
        records a decision) and check it as ``replay verify`` would."""
        events = [e for r in self.rides.values() for e in r.collect_events()]
        mine = self.driver.collect_events()
        self.topics += [e.TOPIC for e in mine]
        for e in [*events, *mine]:
            self.position += 1
            data = {k: v for k, v in vars(e).items() if k not in _ENVELOPE}
            data = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in data.items()}
            self.checker.check(LogEvent(0, self.position, str(e.originator_id),
                                        e.originator_version, e.TOPIC, e.timestamp.timestamp(),
                                        data))  # fmt: skip

    def _in(self, *statuses: RideStatus) -> list[UUID]:
        return sorted((r.id for r in self.rides.values() if r.status in statuses), key=str)

    def _riders(self) -> dict[object, object]:
        out: dict[object, object] = {}
        for ride in self.rides.values():
            terms = ride.terms_of_sharing
            if terms is not None:
                out[str(ride.id)] = terms.rider(str(ride.id), (0.0, 0.0), (0.0, 0.0), 0.0)
        return out

    def _route(self) -> Route:
        return Route("d", 4, (0.0, 0.0), 0.0, {r: 0.0 for r in self.driver.aboard}, ())

    @initialize(start_pooled=st.booleans(), seats=st.integers(1, 2))
    def start(self, start_pooled: bool, seats: int) -> None:
        """Half the runs start with the driver serving a shared ride (more steps go to
        plans with several rides)."""
        if start_pooled:
            self.request(True, seats)
            (ride,) = self.rides.values()
            at = self._tick()
            plan = (Stop(str(ride.id), True), Stop(str(ride.id), False))
            self.driver.receive_offer(
                ride.id, at + timedelta(seconds=15), at, plan=plan, times=self._times(plan)
            )
            ride.offer(self.driver.id, at + timedelta(seconds=15), 60.0, 500.0, at)
            self.driver.assign(ride.id, at)
            ride.accept(self.driver.id, at)
            self._record()

    @rule(shared=st.sampled_from([True, True, True, False]), seats=st.integers(1, 2))
    def request(self, shared: bool, seats: int) -> None:
        sharing = Sharing(seats, 600.0, 1.5, 300.0) if shared else None
        ride = Ride.request(self._id(), self._id(), Point(37.77, -122.42), Point(37.78, -122.41),
                            3_600, self._tick(), sharing=sharing)  # fmt: skip
        self.rides[ride.id] = ride
        self._record()

    @precondition(lambda self: self.driver.status == DriverStatus.AVAILABLE)
    @rule(data=st.data())
    def offer(self, data: st.DataObject) -> None:
        waiting = self._in(RideStatus.REQUESTED)
        if not waiting:
            return
        ride = self.rides[data.draw(st.sampled_from(waiting))]
        if self.driver.id in ride.excluded:
            return
        at = self._tick()
        plan = (Stop(str(ride.id), True), Stop(str(ride.id), False)) if ride.sharing else None
        self.driver.receive_offer(
            ride.id, at + timedelta(seconds=15), at, plan=plan, times=self._times(plan)
        )
        ride.offer(self.driver.id, at + timedelta(seconds=15), 60.0, 500.0, at)
        self._record()

    @precondition(lambda self: self.driver.status == DriverStatus.OFFERED)
    @rule(accept=st.booleans())
    def answer(self, accept: bool) -> None:
        ride = self.rides[self.driver.ride_id]  # type: ignore[index]
        at = self._tick()
        if accept:
            self.driver.assign(ride.id, at)
            ride.accept(self.driver.id, at)
        else:
            ride.decline(self.driver.id, at)
            self.driver.close_offer(ride.id, "declined", at)
        self._record()

    @precondition(lambda self: self.driver.pooled and not self.driver.offline_after_trip)
    @rule(data=st.data())
    def insert(self, data: st.DataObject) -> None:
        waiting = [
            r for r in self._in(RideStatus.REQUESTED)
            if self.rides[r].sharing and self.driver.id not in self.rides[r].excluded
        ]  # fmt: skip
        if not waiting:
            return
        ride = self.rides[data.draw(st.sampled_from(waiting))]
        key = str(ride.id)
        from dispatch.matching.pooling.insertion import placements

        riders = self._riders()
        current = plan_of(self.driver.plan)
        first = 1 if current and current[0].pickup else 0  # a pickup next is committed
        fits = [p for p in placements(current, key, first=first)
                if walk(self._route(), p, riders, _seats_only).ok]  # type: ignore[arg-type]  # fmt: skip
        if not fits:
            return
        plan = data.draw(st.sampled_from(fits))
        at = self._tick()
        ride.pool(self.driver.id, at)
        self.driver.extend_plan(ride.id, plan, self._times(plan), at)
        self._record()

    def _serving(self) -> tuple[Ride, bool]:
        """The ride of the driver's next stop, and whether that stop is its pickup."""
        if not self.driver.pooled:
            ride = self.rides[self.driver.ride_id]  # type: ignore[index]
            return ride, ride.status != RideStatus.IN_PROGRESS
        ride_id, kind = self.driver.plan[0]
        return self.rides[UUID(ride_id)], kind == "P"

    @precondition(lambda self: self.driver.status in (DriverStatus.EN_ROUTE, DriverStatus.ON_TRIP))
    @rule()
    def arrive(self) -> None:
        ride, pickup = self._serving()
        if pickup and ride.status == RideStatus.ACCEPTED:
            ride.arrive(self.driver.id, self._tick())

    @precondition(lambda self: self.driver.status in (DriverStatus.EN_ROUTE, DriverStatus.ON_TRIP))
    @rule()
    def serve_next_stop(self) -> None:
        ride, pickup = self._serving()
        at = self._tick()
        if pickup:
            if ride.status == RideStatus.ACCEPTED:
                ride.arrive(self.driver.id, at)
            ride.start_trip(self.driver.id, at)
            self.driver.start_trip(ride.id, at)
        else:
            ride.complete(self.driver.id, at, TRIP)
            self.driver.release(ride.id, "completed", at)
        self._record()

    @rule(data=st.data(), by_driver=st.booleans(), now=st.integers(0, 2))
    def cancel(self, data: st.DataObject, by_driver: bool, now: int) -> None:
        if now:  # (one cancel step in three cancels: the plans grow meanwhile)
            return
        mine = [r for r in self._in(RideStatus.ACCEPTED, RideStatus.DRIVER_ARRIVED)
                if self.rides[r].driver_id == self.driver.id]  # fmt: skip
        if not mine:
            return
        ride = self.rides[data.draw(st.sampled_from(mine))]
        at = self._tick()
        if by_driver:  # e.g. a no-show: the ride goes back to dispatch without this driver
            ride.cancel_by_driver(self.driver.id, "no_show", at)
            self.driver.release(ride.id, "cancelled_by_driver", at)
        else:
            assert ride.cancel_by_rider(ride.rider_id, "changed plans", at) == self.driver.id
            self.driver.release(ride.id, "cancelled_by_rider", at)
        self._record()

    @precondition(lambda self: self.driver.pooled)
    @rule()
    def out_of_order_stops_are_refused(self) -> None:
        later = [s for s in self.driver.plan[1:] if s[1] == "D"]
        for ride_id, _ in later[:1]:
            with pytest.raises(IllegalTransition, match="next stop"):
                self.driver.release(UUID(ride_id), "completed", self.t)

    @invariant()
    def the_driver_holds_exactly_its_assigned_rides(self) -> None:
        assigned = {
            r.id
            for r in self.rides.values()
            if r.driver_id == self.driver.id and r.status in ASSIGNED
        }
        offered = {r.id for r in self.rides.values() if r.status == RideStatus.OFFERED}
        held = {r.id for r in self.rides.values() if self.driver.holds(r.id)}
        assert held == assigned | offered
        assert len(offered) <= 1 and (not offered or not assigned)
        aboard = {r.id for r in self.rides.values() if r.status == RideStatus.IN_PROGRESS}
        assert {UUID(r) for r in self.driver.aboard} == (aboard if self.driver.pooled else set())

    @invariant()
    def the_log_checker_finds_nothing_wrong(self) -> None:
        assert self.checker.violations == []

    @invariant()
    def the_status_is_the_shared_fold_of_the_recorded_events(self) -> None:
        state = REGISTERED
        for topic in self.topics:
            state = next_availability(state, topic)
        assert state == (self.driver.status, self.driver.offline_after_trip)

    @invariant()
    def a_shared_plan_is_on_trip_exactly_while_someone_is_aboard_and_keeps_its_seats(self) -> None:
        if not self.driver.pooled:
            assert not self.driver.plan and not self.driver.aboard
            return
        next_ride = UUID(self.driver.plan[0][0]) if self.driver.plan else None
        assert self.driver.ride_id == next_ride
        assert self.driver.status == (
            DriverStatus.ON_TRIP if self.driver.aboard else DriverStatus.EN_ROUTE
        )
        done = walk(self._route(), plan_of(self.driver.plan), self._riders(), _seats_only)  # type: ignore[arg-type]
        assert done.ok, done.problem


PooledDriver.TestCase.settings = settings(max_examples=200, stateful_step_count=50, deadline=None)
test_a_driver_serving_shared_rides_holds_exactly_its_plan = PooledDriver.TestCase


def test_a_single_ride_is_not_pooled_and_a_shared_offer_names_its_plan_and_times() -> None:
    driver = Driver.register(uuid4(), "d", T0)
    driver.go_online(T0)
    ride = Ride.request(uuid4(), uuid4(), Point(1, 1), Point(1, 2), 600, T0)
    p, d = Stop(str(ride.id), True), Stop(str(ride.id), False)
    with pytest.raises(IllegalTransition, match="not shared"):
        ride.pool(driver.id, T0)
    with pytest.raises(IllegalTransition, match="serves no shared rides"):
        driver.extend_plan(ride.id, (p, d), [1.0, 2.0], T0)
    with pytest.raises(IllegalTransition, match="pickup and then its drop-off"):
        driver.receive_offer(ride.id, T0, T0, plan=(d, p), times=[1.0, 2.0])
    with pytest.raises(IllegalTransition, match="not offered across shards"):
        driver.receive_offer(ride.id, T0, T0, resv="x/1", plan=(p, d), times=[1.0, 2.0])
    for times in ([1.0], [2.0, 1.0], [1.0, math.nan], None):
        with pytest.raises(IllegalTransition, match="times"):
            driver.receive_offer(ride.id, T0, T0, plan=(p, d), times=times)
    driver.receive_offer(ride.id, T0, T0, plan=(p, d), times=[10.04, 20.0])
    (offered,) = [e for e in driver.collect_events() if e.TOPIC.endswith("OfferReceived")]
    assert offered.plan == [[str(ride.id), "P"], [str(ride.id), "D"]]
    assert offered.times == [10.0, 20.0]


def test_an_insertion_must_keep_the_plan_and_add_only_its_ride() -> None:
    driver = Driver.register(uuid4(), "d", T0)
    driver.go_online(T0)
    a, b = uuid4(), uuid4()
    pa, da, pb, db = (
        Stop(str(a), True),
        Stop(str(a), False),
        Stop(str(b), True),
        Stop(str(b), False),
    )
    driver.receive_offer(a, T0 + timedelta(seconds=15), T0, plan=(pa, da), times=[1.0, 2.0])
    driver.assign(a, T0)
    four = [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(IllegalTransition, match="keep its stops in their order"):
        driver.extend_plan(b, (da, pb, pa, db), four, T0)
    with pytest.raises(IllegalTransition, match="already in"):
        driver.extend_plan(a, (pa, da), [1.0, 2.0], T0)
    with pytest.raises(IllegalTransition, match="is committed"):  # it may be there already
        driver.extend_plan(b, (pb, pa, da, db), four, T0)
    with pytest.raises(IllegalTransition, match="needs 4 times"):
        driver.extend_plan(b, (pa, pb, da, db), [1.0], T0)
    driver.extend_plan(b, (pa, pb, da, db), four, T0)
    assert driver.plan == [[str(a), "P"], [str(b), "P"], [str(a), "D"], [str(b), "D"]]
    assert driver.ride_id == a  # the ride of the next stop
    driver.go_offline(after_trip=True, at=T0)
    with pytest.raises(IllegalTransition, match="goes offline after its trips"):
        driver.extend_plan(uuid4(), (), [], T0)


def test_a_drop_off_next_is_not_committed_a_rider_may_be_picked_up_on_the_way() -> None:
    driver = Driver.register(uuid4(), "d", T0)
    driver.go_online(T0)
    a, b = uuid4(), uuid4()
    pa, da = Stop(str(a), True), Stop(str(a), False)
    pb, db = Stop(str(b), True), Stop(str(b), False)
    driver.receive_offer(a, T0 + timedelta(seconds=15), T0, plan=(pa, da), times=[1.0, 2.0])
    driver.assign(a, T0)
    driver.start_trip(a, T0)  # aboard: the drop-off is next
    driver.extend_plan(b, (pb, da, db), [3.0, 4.0, 5.0], T0)
    assert driver.plan == [[str(b), "P"], [str(a), "D"], [str(b), "D"]]
    assert driver.ride_id == b  # the ride of the next stop
    assert driver.aboard == [str(a)]


def test_a_shared_ride_request_records_its_terms_and_an_older_one_reads_as_single() -> None:
    ride = Ride.request(
        uuid4(), uuid4(), Point(1, 1), Point(1, 2), 600, T0, sharing=Sharing(2, 300, 1.5, 420)
    )
    (created,) = ride.collect_events()
    assert created.sharing == {"seats": 2, "max_wait_s": 300, "detour_factor": 1.5, "direct_s": 420}
    assert ride.terms_of_sharing == Sharing(2, 300.0, 1.5, 420.0)
    state = {"rider_id": str(uuid4()), "fare": None, "product": "standard"}
    Ride.Created.upcast_v3_v4(state)
    assert state["sharing"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((3, 300, 1.5, 60), "seats"),
        ((1, 300, 0.5, 60), "detour_factor"),
        ((1, 300, 1.5, -1), "direct_s"),
    ],
)
def test_sharing_terms_out_of_range_are_refused(
    args: tuple[int, float, float, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Sharing(*args)
