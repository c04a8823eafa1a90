"""Shared rides matched through a real shard worker (issue #21, step 3): a free vehicle is
offered a shared ride with the plan of its two stops; once it serves it, later shared rides
are put into its plan (``Ride.Pooled``) within its seats and every rider's bounds, by the
greedy strategy and by the batch one; a rider who declined a vehicle is not put into it;
after a restart from a checkpoint and the log the matcher still knows the plans and terms;
the vehicle serves its plan in order, and the log it leaves passes the log checker."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from engine_commands import decide

from dispatch.adapters.embedded.engine import EmbeddedEngine
from dispatch.bootstrap import build_embedded_engine
from dispatch.domain.ids import new_id
from dispatch.domain.pooling import PoolRider, Route, Stop, walk
from dispatch.invariants import InvariantChecker
from dispatch.log import decode
from dispatch.matching.matcher import Matcher
from dispatch.matching.pooling.travel import StraightLineTravel
from dispatch.messages import Ping
from dispatch.settings import Settings
from schemas import commands as c
from schemas.common import LatLng, VehicleData

T0 = 1_767_600_000.0
PICKUP = (37.77, -122.42)
DROPOFF = (37.80, -122.40)


class World:
    def __init__(
        self, tmp: Path, strategy: str = "greedy", pool: bool = True, checkpoints: bool = True
    ) -> None:
        self.now, self.tmp, self.strategy, self.pool = T0, tmp, strategy, pool
        self.checkpoints = checkpoints
        self.drivers: dict[uuid.UUID, tuple[float, float]] = {}
        self.engine = self.start()

    def start(self) -> EmbeddedEngine:
        settings = Settings(
            data_dir=self.tmp, shards=1, offer_timeout_s=15, max_wait_s=600, ping_ttl_s=60,
            checkpoint_every_events=5 if self.checkpoints else 0, checkpoint_chunk_rows=3,
            strategy=self.strategy,
            batch_window_s=2.0, pool=self.pool,
        )  # fmt: skip
        self.engine = build_embedded_engine(settings, lambda: self.now)
        return self.engine

    @property
    def matcher(self) -> Matcher:
        return self.engine.workers[0].matcher

    def restart(self) -> None:
        self.engine.stop()
        self.start()
        self.ping_all()

    def send(self, command: c.Command) -> c.Outcome:
        self.now += 2.5  # past the batch strategy's window
        return decide(self.engine, self.now, command)

    def driver(self, north: float, seats: int = 4) -> uuid.UUID:
        d = new_id(0)
        vehicle = VehicleData(product="standard", seats=seats)
        assert self.send(c.RegisterDriver(driver_id=d, name="d", vehicle=vehicle)).accepted
        assert self.send(c.GoOnline(driver_id=d)).accepted
        self.drivers[d] = (PICKUP[0] + north, PICKUP[1])
        self.ping_all()
        return d

    def ping_all(self) -> None:
        self.now += 2.5
        pings = [Ping(d, lat, lng, self.now) for d, (lat, lng) in self.drivers.items()]
        self.engine.transport.send_pings(pings)
        self.engine.run_once()

    def request(self, north: float = 0.0, seats: int = 1, shared: bool = True) -> uuid.UUID:
        rider, ride = new_id(0), new_id(0)
        assert self.send(c.RegisterRider(rider_id=rider, name="r")).accepted
        here = LatLng(lat=PICKUP[0] + north, lng=PICKUP[1])
        there = LatLng(lat=DROPOFF[0] + north / 2, lng=DROPOFF[1])
        outcome = self.send(c.RequestRide(ride_id=ride, rider_id=rider, pickup=here,
                                          dropoff=there, shared=shared,
                                          seats=seats if shared else 1))  # fmt: skip
        assert outcome.accepted, outcome
        self.ping_all()  # a window for it
        return ride

    def offered_to(self, ride: uuid.UUID) -> uuid.UUID | None:
        offer = self.matcher.offers.get(ride)
        return offer[0] if offer else None

    def plan(self, driver: uuid.UUID) -> list[list[str]]:
        state = self.matcher.pool.plans.get(driver)
        return [] if state is None else list(state.plan)

    def serve(self, driver: uuid.UUID) -> list[str]:
        """Drive the plan in its order (arrive, board, drop off): the stops served."""
        served = []
        while self.plan(driver):
            served.append(self.serve_next(driver))
        return served

    def serve_next(self, driver: uuid.UUID) -> str:
        """Serve the plan's next stop (arrive and board, or drop off)."""
        ride_s, kind = self.plan(driver)[0]
        ride = uuid.UUID(ride_s)
        self.now += 60
        if kind == "P":
            assert self.send(c.MarkArrived(ride_id=ride, driver_id=driver)).accepted
            assert self.send(c.StartTrip(ride_id=ride, driver_id=driver)).accepted
        else:
            assert self.send(c.CompleteTrip(ride_id=ride, driver_id=driver)).accepted
        return f"{kind}:{ride}"

    def violations(self) -> list[str]:
        checker = InvariantChecker()
        app = self.engine.workers[0].app
        for n in app.recorder.select_notifications(1, 100_000):
            checker.check(decode(n, 0))
        return [f"{v.kind}: {v.detail}" for v in checker.finish()]


@pytest.mark.parametrize("strategy", ["greedy", "batch"])
def test_a_vehicle_is_offered_one_shared_ride_then_others_are_put_into_its_plan(
    tmp_path: Path, strategy: str
) -> None:
    world = World(tmp_path, strategy)
    driver = world.driver(0.001)
    first = world.request()
    assert world.offered_to(first) == driver
    offer = world.matcher.pool.plans[driver].offer_plan
    assert offer == [[str(first), "P"], [str(first), "D"]]
    assert world.send(c.AcceptOffer(ride_id=first, driver_id=driver)).accepted
    second = world.request(north=0.002)
    assert second in world.matcher.assigned and second not in world.matcher.pending
    plan = world.plan(driver)
    assert plan[0] == [str(first), "P"]  # the next stop stays first
    assert sorted(plan) == sorted([[str(r), k] for r in (first, second) for k in "PD"])
    served = world.serve(driver)
    assert len(served) == 4 and served[0] == f"P:{first}"
    assert world.violations() == []
    assert world.matcher.pool.plans == {} and driver in world.matcher.available
    world.engine.stop()


def test_plans_keep_the_seats_of_the_vehicle(tmp_path: Path) -> None:
    """A 4-seat vehicle serving a rider of 2 seats takes another rider of 2 seats, and then
    not a rider of 1 more (it would need 5 at once, and could not pick them up in time
    after a drop-off)."""
    world = World(tmp_path)
    driver = world.driver(0.001)
    first = world.request(seats=2)
    assert world.offered_to(first) == driver
    assert world.send(c.AcceptOffer(ride_id=first, driver_id=driver)).accepted
    two = world.request(north=0.001, seats=2)
    assert two in world.matcher.assigned
    one = world.request(north=0.001, seats=1)
    assert one in world.matcher.pending and one not in world.matcher.assigned
    assert {r for r, _ in world.plan(driver)} == {str(first), str(two)}
    world.serve(driver)
    assert world.violations() == []
    world.engine.stop()


def test_a_declined_vehicle_is_not_offered_the_shared_ride_again(tmp_path: Path) -> None:
    world = World(tmp_path)
    near = world.driver(0.001)
    far = world.driver(0.01)
    ride = world.request()
    assert world.offered_to(ride) == near
    assert world.send(c.DeclineOffer(ride_id=ride, driver_id=near)).accepted
    world.ping_all()
    assert world.offered_to(ride) == far
    world.engine.stop()


def test_after_a_restart_the_plans_and_terms_are_known_and_extended(tmp_path: Path) -> None:
    world = World(tmp_path)
    driver = world.driver(0.001)
    first = world.request()
    assert world.send(c.AcceptOffer(ride_id=first, driver_id=driver)).accepted
    world.now += 60
    assert world.send(c.MarkArrived(ride_id=first, driver_id=driver)).accepted
    assert world.send(c.StartTrip(ride_id=first, driver_id=driver)).accepted
    for _ in range(3):  # enough events for a checkpoint, and some after it
        world.driver(0.05)
    before = (world.plan(driver), dict(world.matcher.pool.picked_up))
    world.restart()
    assert world.engine.workers[0].restored_from is not None  # a checkpoint, then the log
    assert (world.plan(driver), world.matcher.pool.picked_up) == before
    assert world.matcher.pool.terms.keys() == {first}
    second = world.request(north=0.0015)
    assert second in world.matcher.assigned
    assert world.plan(driver)[0] == [str(second), "P"] or world.plan(driver)[0][0] == str(first)
    world.serve(driver)
    assert world.violations() == []
    world.engine.stop()


def test_shared_rides_are_refused_where_pooling_is_off(tmp_path: Path) -> None:
    world = World(tmp_path, pool=False)
    rider = new_id(0)
    assert world.send(c.RegisterRider(rider_id=rider, name="r")).accepted
    here, there = LatLng(lat=PICKUP[0], lng=PICKUP[1]), LatLng(lat=DROPOFF[0], lng=DROPOFF[1])
    outcome = world.send(c.RequestRide(ride_id=new_id(0), rider_id=rider, pickup=here,
                                       dropoff=there, shared=True))  # fmt: skip
    assert outcome.code == "invalid_command" and "DISPATCH_POOL" in (outcome.reason or "")
    world.engine.stop()


def test_a_shared_ride_goes_first_and_a_single_one_in_the_same_tick_takes_another_car(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    near = world.driver(0.001)
    farther = world.driver(0.01)  # about a kilometre north
    world.engine.transport.send_pings([])  # nothing: the two requests land in one batch
    rider_a, rider_b = new_id(0), new_id(0)
    assert world.send(c.RegisterRider(rider_id=rider_a, name="a")).accepted
    assert world.send(c.RegisterRider(rider_id=rider_b, name="b")).accepted
    here, there = LatLng(lat=PICKUP[0], lng=PICKUP[1]), LatLng(lat=DROPOFF[0], lng=DROPOFF[1])
    single, shared = new_id(0), new_id(0)
    for ride, rider, is_shared in ((single, rider_a, False), (shared, rider_b, True)):
        env = c.CommandEnvelope(command_id=str(uuid.uuid4()), issued_at=_at(world.now),
                                command=c.RequestRide(ride_id=ride, rider_id=rider, pickup=here,
                                                      dropoff=there, shared=is_shared))  # fmt: skip
        world.engine.transport.send_command(env)
    world.now += 2.5
    world.engine.run_once()
    # the shared ride takes the nearer vehicle; the single one, in the same tick, the other
    assert (world.offered_to(shared), world.offered_to(single)) == (near, farther)
    world.engine.stop()


def _at(now: float):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.fromtimestamp(now, UTC)


def test_the_extension_times_are_the_rules_own(tmp_path: Path) -> None:
    """The times recorded with an extension are the plan walked from the vehicle."""
    world = World(tmp_path)
    driver = world.driver(0.001)
    first = world.request()
    assert world.send(c.AcceptOffer(ride_id=first, driver_id=driver)).accepted
    second = world.request(north=0.002)
    app = world.engine.workers[0].app
    extended = [decode(n, 0) for n in app.recorder.select_notifications(1, 100_000)
                if n.topic == "dispatch.Driver.PlanExtended"]  # fmt: skip
    assert len(extended) == 1
    event = extended[0].data
    assert event["ride_id"] == str(second) and len(event["times"]) == 4
    m = world.matcher
    riders: dict[object, PoolRider] = {}
    for ride in (first, second):
        sharing, dropoff = m.pool.terms[ride]
        held = m.assigned[ride]
        riders[str(ride)] = sharing.rider(str(ride), (held.lat, held.lng), dropoff,
                                          held.requested_at)  # fmt: skip
    plan = tuple(Stop(r, k == "P") for r, k in event["plan"])
    assert all(isinstance(t, float) for t in event["times"])
    assert sorted(event["times"]) == event["times"]
    pace = StraightLineTravel(1.35 / (25.0 / 3.6))
    ping = world.drivers[driver]
    route = Route(driver, 4, ping, event["times"][0] - pace(ping, riders[str(first)].pickup))
    assert walk(route, plan, riders, pace).ok
    world.engine.stop()


def test_replay_verify_prints_the_shared_rides_past_their_bounds_on_the_road(
    tmp_path: Path,
) -> None:
    """A rider picked up after their latest pickup (the driver took 400 s, not the plan's
    estimate) is counted and printed, not a violation: the log passes."""
    from typer.testing import CliRunner

    from dispatch.cli import app

    world = World(tmp_path)
    driver = world.driver(0.001)
    ride = world.request()
    assert world.send(c.AcceptOffer(ride_id=ride, driver_id=driver)).accepted
    world.now += 400  # past the 300 s bound
    assert world.send(c.MarkArrived(ride_id=ride, driver_id=driver)).accepted
    assert world.send(c.StartTrip(ride_id=ride, driver_id=driver)).accepted
    assert world.send(c.CompleteTrip(ride_id=ride, driver_id=driver)).accepted
    world.engine.stop()
    result = CliRunner().invoke(app, ["replay", "verify", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # as the console wrapped it
    assert "1 picked up after their latest pickup, 0 longer in the vehicle" in said
    assert "0 violation(s)" in result.output


def test_a_silent_vehicle_serving_a_plan_gets_no_more_riders(tmp_path: Path) -> None:
    """A vehicle whose last ping is older than the ping TTL may have gone: nobody is put
    into its plan (no offer asks it) on the word of that old ping."""
    world = World(tmp_path)
    driver = world.driver(0.001)
    first = world.request()
    assert world.send(c.AcceptOffer(ride_id=first, driver_id=driver)).accepted
    del world.drivers[driver]  # it pings no more
    world.now += 90  # past the 60 s TTL
    later = world.request(north=0.002)
    assert later not in world.matcher.assigned and later in world.matcher.pending
    assert world.violations() == []
    world.engine.stop()


def test_a_shared_ride_expires_at_its_latest_pickup(tmp_path: Path) -> None:
    """With requests waiting up to 600 s (DISPATCH_MAX_WAIT_S) and shared riders picked up
    within 300 s (DISPATCH_POOL_MAX_WAIT_S), a shared request nobody took expires at 300 s:
    no vehicle could pick it up within its bound after it."""
    world = World(tmp_path)
    shared = world.request()
    single = world.request(shared=False)
    asked = {r: world.matcher.pending[r] for r in (shared, single)}
    waits = {r: ride.expires_at - ride.requested_at for r, ride in asked.items()}
    assert waits == {shared: 300.0, single: 600.0}
    world.now += 301
    world.ping_all()
    assert shared not in world.matcher.pending and single in world.matcher.pending
    world.engine.stop()


def test_an_erased_riders_offer_still_starts_the_plan_a_restart_folds(tmp_path: Path) -> None:
    """The ride that started a vehicle's plan belongs to a rider erased after it ended; a
    shard restored from its whole log (no checkpoint) still knows the plan the vehicle's
    other riders are in, and puts a third rider into it."""
    world = World(tmp_path, checkpoints=False)
    driver = world.driver(0.001)
    first = world.request()
    assert world.send(c.AcceptOffer(ride_id=first, driver_id=driver)).accepted
    second = world.request(north=0.002)
    assert second in world.matcher.assigned
    while world.plan(driver) and world.plan(driver)[0] != [str(first), "D"]:
        world.serve_next(driver)
    world.serve_next(driver)  # the first rider dropped off
    rider = world.engine.workers[0].app.repository.get(first).rider_id
    assert world.send(c.EraseRider(rider_id=rider, by="self")).accepted
    before = world.plan(driver)
    world.restart()
    assert world.engine.workers[0].restored_from is None  # the whole log folded
    assert world.plan(driver) == before and world.matcher.pool.serving(driver)
    third = world.request(north=0.0025)
    assert third in world.matcher.assigned
    assert world.violations() == []
    world.engine.stop()
