"""A booking still held at its time (its rider riding another ride) has no driver by then
either: its rider is told ``Ride.Overdue`` while it stays scheduled, once, through a
restart, and not again when its dispatch starts (through a real shard worker)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.domain.ride import RideStatus
from schemas import commands as c
from tests.unit.matching.test_scheduled_dispatch import (
    HOUR,
    STEP_S,
    T0,
    World,
    busy_with_a_booking,
    requested,
)

OVERDUE = "dispatch.Ride.Overdue"


def _riding_when_booking_is_due(world: World) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A rider with a booking for T0 + 1 h, riding another ride from before it is due."""
    driver = world.driver(0.001)
    rider, scheduled, now_ride = busy_with_a_booking(world)
    world.run_until(T0 + HOUR, lambda: world.ride(now_ride).status == RideStatus.OFFERED)
    assert world.send(c.AcceptOffer(ride_id=now_ride, driver_id=driver)).accepted
    return rider, scheduled, now_ride


def test_a_held_booking_with_no_driver_by_its_time_tells_the_rider(tmp_path: Path) -> None:
    world = World(tmp_path)
    _, scheduled, _ = _riding_when_booking_is_due(world)

    told = world.run_until(T0 + HOUR + 120, lambda: OVERDUE in world.topics(scheduled))
    world.run_until(T0 + HOUR + 120, lambda: False)

    assert told is not None and T0 + HOUR <= told < T0 + HOUR + STEP_S + 0.001
    assert world.ride(scheduled).status == RideStatus.SCHEDULED  # still held: a notice
    assert world.ride(scheduled).is_overdue
    assert world.topics(scheduled).count(OVERDUE) == 1
    assert "dispatch.Ride.DispatchHeld" in world.topics(scheduled)
    # the matcher decided it once (the ride refuses a second notice; this is the matcher's
    # own once, which would otherwise send a refused MarkOverdue every tick)
    assert world.matcher().stats.overdue == 1


def test_a_held_overdue_booking_is_not_told_again_once_its_dispatch_starts(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    rider, scheduled, now_ride = _riding_when_booking_is_due(world)
    told = world.run_until(T0 + HOUR + 60, lambda: OVERDUE in world.topics(scheduled))
    assert told is not None, "told while held (its rider still riding)"
    assert world.ride(scheduled).status == RideStatus.SCHEDULED

    assert world.send(c.CancelRide(ride_id=now_ride, rider_id=rider)).accepted
    started = world.run_until(T0 + HOUR + 300, requested(world, scheduled))
    world.run_until(T0 + HOUR + 400, lambda: False)

    assert started is not None
    assert world.rider_state(rider).active_ride == scheduled
    assert world.topics(scheduled).count(OVERDUE) == 1


@pytest.mark.parametrize("checkpoint_every", [0, 3], ids=["from the log", "from a checkpoint"])
def test_a_held_booking_told_overdue_before_a_restart_is_not_told_again(
    tmp_path: Path, checkpoint_every: int
) -> None:
    world = World(tmp_path, checkpoint_every=checkpoint_every)
    _, scheduled, _ = _riding_when_booking_is_due(world)
    told = world.run_until(T0 + HOUR + 60, lambda: OVERDUE in world.topics(scheduled))
    assert told is not None
    notice_at = SqliteLogSource(tmp_path).head(0)  # the notice is at or before this
    for north in (0.05, 0.06, 0.07):  # events enough for a checkpoint after the notice
        world.driver(north)

    world.restart()
    if checkpoint_every:
        restored = world.engine.workers[0].restored_from
        assert restored is not None and restored >= notice_at, "restored past the notice"
    world.run_until(T0 + HOUR + 300, lambda: False)

    assert world.topics(scheduled).count(OVERDUE) == 1
    assert world.ride(scheduled).status == RideStatus.SCHEDULED


def test_a_held_booking_due_after_a_restart_is_told_once_then(tmp_path: Path) -> None:
    world = World(tmp_path, checkpoint_every=3)
    _, scheduled, _ = _riding_when_booking_is_due(world)
    world.driver(0.05)

    world.restart()
    told = world.run_until(T0 + HOUR + 120, lambda: OVERDUE in world.topics(scheduled))
    world.run_until(T0 + HOUR + 200, lambda: False)

    assert told is not None
    assert world.topics(scheduled).count(OVERDUE) == 1


def test_a_ride_that_loses_its_driver_after_its_time_is_told_then(tmp_path: Path) -> None:
    world = World(tmp_path)
    driver = world.driver(0.001)
    ride = world.book(world.rider(), T0 + HOUR)
    world.run_until(T0 + HOUR, lambda: world.ride(ride).status == RideStatus.OFFERED)
    assert world.send(c.AcceptOffer(ride_id=ride, driver_id=driver)).accepted
    world.run_until(T0 + HOUR + 60, lambda: False)
    assert OVERDUE not in world.topics(ride)  # it had a driver at its time

    assert world.send(c.DriverCancel(ride_id=ride, driver_id=driver)).accepted
    told = world.run_until(T0 + HOUR + 120, lambda: OVERDUE in world.topics(ride))

    assert told is not None and told <= T0 + HOUR + 60 + STEP_S + 0.001
