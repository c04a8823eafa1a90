"""Scheduled rides through a real shard worker: dispatched at their time less the expected
pickup and the margin, on the shard's clock alone; told overdue and expired when no driver
comes; held while the rider is busy; and all of it after a restart between booking and
dispatch (from the log, and from a checkpoint), and across shards."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from engine_commands import decide

from dispatch.adapters.embedded.engine import EmbeddedEngine
from dispatch.bootstrap import build_embedded_engine
from dispatch.domain.ids import new_id
from dispatch.domain.ride import RideStatus
from dispatch.matching.geo import haversine_m
from dispatch.messages import Ping
from dispatch.settings import Settings
from schemas import commands as c
from schemas.common import LatLng

T0 = 1_767_600_000.0
PICKUP = (37.77, -122.42)
HOUR = 3_600.0
MARGIN_S = 300.0
MAX_ETA_S = 900.0
SEARCH_AFTER_S = 900.0
STEP_S = 5.0


class World:
    def __init__(self, tmp: Path, shards: int = 1, checkpoint_every: int = 0) -> None:
        self.now, self.tmp = T0, tmp
        self.shards, self.checkpoint_every = shards, checkpoint_every
        self.drivers: dict[uuid.UUID, tuple[float, float]] = {}
        self.engine = self.start()

    def start(self) -> EmbeddedEngine:
        settings = Settings(
            data_dir=self.tmp,
            shards=self.shards,
            max_pickup_eta_s=MAX_ETA_S,
            scheduled_margin_s=MARGIN_S,
            scheduled_search_after_s=SEARCH_AFTER_S,
            checkpoint_every_events=self.checkpoint_every,
            checkpoint_chunk_rows=2,
            ping_ttl_s=3_600,
            surge_cadence_s=0,
            handoff_after_s=0,
        )
        self.engine = build_embedded_engine(settings, lambda: self.now)
        return self.engine

    def restart(self) -> None:
        self.engine.stop()
        self.start()
        self.ping_all()

    def send(self, command: c.Command) -> c.Outcome:
        if self.shards == 1:
            return decide(self.engine, self.now, command)
        issued = datetime.fromtimestamp(self.now, UTC)
        env = c.CommandEnvelope(command_id=str(uuid.uuid4()), issued_at=issued, command=command)
        self.engine.transport.send_command(env)
        outcomes = [o for r in self.engine.run_once() for o in r.outcomes]
        (outcome,) = [o for o in outcomes if o.command_id == env.command_id]
        return outcome

    def rider(self, shard: int = 0) -> uuid.UUID:
        rider = new_id(shard)
        assert self.send(c.RegisterRider(rider_id=rider, name="r")).accepted
        return rider

    def book(self, rider: uuid.UUID, at: float, shard: int = 0) -> uuid.UUID:
        ride = new_id(shard)
        outcome = self.send(
            c.RequestRide(
                ride_id=ride,
                rider_id=rider,
                pickup=LatLng(lat=PICKUP[0], lng=PICKUP[1]),
                dropoff=LatLng(lat=37.8, lng=-122.4),
                scheduled_for=datetime.fromtimestamp(at, UTC),
            )
        )
        assert outcome.accepted, outcome
        self.settle()
        return ride

    def driver(self, north: float) -> uuid.UUID:
        d = new_id(0)
        assert self.send(c.RegisterDriver(driver_id=d, name="d")).accepted
        assert self.send(c.GoOnline(driver_id=d)).accepted
        self.drivers[d] = (PICKUP[0] + north, PICKUP[1])
        self.ping_all()
        return d

    def ping_all(self) -> None:
        pings = [Ping(d, lat, lng, self.now) for d, (lat, lng) in self.drivers.items()]
        self.engine.transport.send_pings(pings)
        self.engine.run_once()

    def settle(self) -> None:
        for _ in range(4):  # messages between shards, and their answers
            self.engine.run_once()

    def run_until(self, until: float, done: Any) -> float | None:
        """Step the clock to ``until``; the first time ``done()`` holds, or None."""
        while self.now < until:
            self.now += STEP_S
            self.settle()
            if done():
                return self.now
        return None

    def ride(self, ride: uuid.UUID) -> Any:
        shard = self.engine.workers[_shard(ride)]
        return shard.app.repository.get(ride)

    def rider_state(self, rider: uuid.UUID) -> Any:
        return self.engine.workers[_shard(rider)].app.repository.get(rider)

    def topics(self, aggregate_id: uuid.UUID) -> list[str]:
        app = self.engine.workers[_shard(aggregate_id)].app
        return [type(e).TOPIC for e in app.repository.event_store.get(aggregate_id)]

    def matcher(self, shard: int = 0) -> Any:
        return self.engine.workers[shard].matcher


def _shard(aggregate_id: uuid.UUID) -> int:
    return aggregate_id.int >> 112 & 0xFFFF


def busy_with_a_booking(world: World) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A rider with a booking for T0 + 1 h who requests a ride now, before the booking is
    watched: the rider, the booking and the ride requested now."""
    rider = world.rider()
    scheduled = world.book(rider, T0 + HOUR)
    world.now = T0 + HOUR - MAX_ETA_S - MARGIN_S - 60
    now_ride = new_id(0)
    request = c.RequestRide(ride_id=now_ride, rider_id=rider,
                            pickup=LatLng(lat=PICKUP[0], lng=PICKUP[1]),
                            dropoff=LatLng(lat=37.8, lng=-122.4))  # fmt: skip
    assert world.send(request).accepted
    return rider, scheduled, now_ride


def requested(world: World, ride: uuid.UUID) -> Any:
    return lambda: world.ride(ride).status != RideStatus.SCHEDULED


def test_with_a_driver_near_the_dispatch_starts_at_its_time_less_the_pickup_and_margin(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    world.driver(0.009)  # about 1 km north
    ride = world.book(world.rider(), T0 + HOUR)
    eta = haversine_m(PICKUP[0] + 0.009, PICKUP[1], *PICKUP) * 1.35 / (25 / 3.6)
    due = T0 + HOUR - eta - MARGIN_S

    started = world.run_until(T0 + HOUR, requested(world, ride))

    assert started is not None and due <= started < due + 10.0 + STEP_S
    events = world.ride(ride)
    assert events.status in (RideStatus.REQUESTED, RideStatus.OFFERED)
    due_event = [t for t in world.topics(ride) if t == "dispatch.Ride.DispatchDue"]
    assert due_event == ["dispatch.Ride.DispatchDue"]


def test_with_no_driver_in_reach_the_dispatch_starts_a_longest_pickup_earlier(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    ride = world.book(world.rider(), T0 + HOUR)
    due = T0 + HOUR - MAX_ETA_S - MARGIN_S

    started = world.run_until(T0 + HOUR, requested(world, ride))

    assert started is not None and due <= started < due + STEP_S + 0.001


def test_a_booked_ride_is_not_offered_before_its_dispatch_starts(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.driver(0.001)
    ride = world.book(world.rider(), T0 + HOUR)
    world.run_until(T0 + HOUR - MAX_ETA_S - MARGIN_S - STEP_S, lambda: False)
    assert world.ride(ride).status == RideStatus.SCHEDULED
    assert ride not in world.matcher().pending and ride not in world.matcher().offers

    world.run_until(T0 + HOUR, lambda: world.ride(ride).status == RideStatus.OFFERED)
    assert world.ride(ride).status == RideStatus.OFFERED


def test_with_no_driver_by_its_time_the_rider_is_told_and_the_ride_expires_after_the_window(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    ride = world.book(world.rider(), T0 + HOUR)

    overdue = world.run_until(T0 + 2 * HOUR, lambda: "dispatch.Ride.Overdue" in world.topics(ride))
    expired = world.run_until(T0 + 2 * HOUR, lambda: world.ride(ride).status == RideStatus.EXPIRED)

    assert overdue is not None and T0 + HOUR <= overdue < T0 + HOUR + STEP_S + 0.001
    assert expired is not None
    assert T0 + HOUR + SEARCH_AFTER_S <= expired < T0 + HOUR + SEARCH_AFTER_S + STEP_S + 0.001
    assert world.topics(ride).count("dispatch.Ride.Overdue") == 1


def test_a_ride_assigned_before_its_time_is_never_overdue(tmp_path: Path) -> None:
    world = World(tmp_path)
    driver = world.driver(0.001)
    ride = world.book(world.rider(), T0 + HOUR)
    world.run_until(T0 + HOUR, lambda: world.ride(ride).status == RideStatus.OFFERED)
    assert world.send(c.AcceptOffer(ride_id=ride, driver_id=driver)).accepted

    world.run_until(T0 + HOUR + 120, lambda: False)

    assert "dispatch.Ride.Overdue" not in world.topics(ride)
    assert world.ride(ride).status == RideStatus.ACCEPTED


def test_a_ride_due_while_its_rider_rides_is_held_then_dispatched_when_that_ride_ends(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    rider, scheduled, now_ride = busy_with_a_booking(world)

    held = world.run_until(
        T0 + HOUR, lambda: "dispatch.Ride.DispatchHeld" in world.topics(scheduled)
    )
    assert held is not None
    assert world.ride(scheduled).status == RideStatus.SCHEDULED
    assert world.rider_state(rider).active_ride == now_ride

    assert world.send(c.CancelRide(ride_id=now_ride, rider_id=rider)).accepted
    started = world.run_until(T0 + HOUR, requested(world, scheduled))

    assert started is not None and started <= held + 30.0 + STEP_S  # it asks again
    assert world.rider_state(rider).active_ride == scheduled


@pytest.mark.parametrize("checkpoint_every", [0, 3], ids=["from the log", "from a checkpoint"])
def test_a_restart_between_booking_and_dispatch_keeps_the_booking_and_its_timing(
    tmp_path: Path, checkpoint_every: int
) -> None:
    world = World(tmp_path, checkpoint_every=checkpoint_every)
    for north in (0.02, 0.03):  # events enough for a checkpoint after the bookings
        world.driver(north)
    rider = world.rider()
    ride = world.book(rider, T0 + HOUR)
    gone = world.book(world.rider(), T0 + 2 * HOUR)
    world.driver(0.04)
    world.now += 600
    world.restart()
    if checkpoint_every:
        assert world.engine.workers[0].restored_from is not None
        assert len(world.matcher().scheduled) == 2  # from the checkpoint's part

    started = world.run_until(T0 + HOUR, requested(world, ride))

    assert started is not None and started < T0 + HOUR - MARGIN_S
    assert world.ride(gone).status == RideStatus.SCHEDULED
    assert world.rider_state(rider).active_ride == ride


def test_a_ride_booked_in_another_shard_asks_the_riders_home_for_the_lock(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, shards=2)
    rider = world.rider(shard=0)
    ride = world.book(rider, T0 + HOUR, shard=1)
    assert world.ride(ride).status == RideStatus.SCHEDULED
    assert world.rider_state(rider).scheduled == [str(ride)]

    started = world.run_until(T0 + HOUR, requested(world, ride))

    assert started is not None
    assert world.rider_state(rider).active_ride == ride
    assert world.rider_state(rider).scheduled == []
    assert ride in world.matcher(1).pending


def test_a_ride_booked_in_another_shard_is_held_while_its_rider_is_busy_at_home(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, shards=2)
    rider = world.rider(shard=0)
    ride = world.book(rider, T0 + HOUR, shard=1)
    world.now = T0 + HOUR - MAX_ETA_S - MARGIN_S - 60  # requested just before it is due
    busy = new_id(0)
    request = c.RequestRide(ride_id=busy, rider_id=rider,
                            pickup=LatLng(lat=PICKUP[0], lng=PICKUP[1]),
                            dropoff=LatLng(lat=37.8, lng=-122.4))  # fmt: skip
    assert world.send(request).accepted

    held = world.run_until(T0 + HOUR, lambda: "dispatch.Ride.DispatchHeld" in world.topics(ride))

    assert held is not None
    assert world.rider_state(rider).active_ride == busy
    assert world.ride(ride).status == RideStatus.SCHEDULED
    assert world.send(c.CancelRide(ride_id=ride, rider_id=rider)).accepted
    world.settle()
    assert world.rider_state(rider).scheduled == []
    assert world.rider_state(rider).active_ride == busy
