"""Rides across shards on the embedded engine (issue #14): the rider's lock at home, the
ride at its pickup's shard, the messages between them through each shard's links, kept in
the SQLite log, sent again after a restart, applied once; ``replay verify`` checks them
over all shards together."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from dispatch.adapters.embedded.engine import EmbeddedEngine
from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.bootstrap import build_embedded_engine
from dispatch.domain.driver import Driver, DriverStatus
from dispatch.domain.ids import new_id
from dispatch.domain.operators import operator_id
from dispatch.domain.ride import Ride, RideStatus
from dispatch.domain.rider import Rider
from dispatch.messages import Ping
from dispatch.replay.operations import verify
from dispatch.settings import Settings
from dispatch.shard import handlers
from dispatch.shard.crossing import MESSAGE_HANDLERS
from dispatch.shard.crossshard.messages import OpenRide
from dispatch.shard.links import Link, link_id
from dispatch.simulator.clock import SimClock
from schemas import commands as c

H, R = 0, 1  # the rider's home shard, the pickup's shard
PICKUP = {"lat": 37.3382, "lng": -121.8863}
DROPOFF = {"lat": 37.3440, "lng": -121.8800}


class City:
    def __init__(self, data_dir: Path) -> None:
        self.settings = Settings(data_dir=data_dir, shards=2)
        self.clock = SimClock()
        self.clock.now = 1_767_600_000.0
        self.engine = build_embedded_engine(self.settings, self.clock)
        self.seq = 0

    def restart(self) -> None:
        self.engine = build_embedded_engine(self.settings, self.clock)

    def send(self, command: Any, key: str | None = None) -> str:
        """Send a command (with ``key``: as an app retrying with an Idempotency-Key)."""
        self.seq += 1
        command_id = key or f"cmd-{self.seq}"
        envelope = c.CommandEnvelope(command_id=command_id, issued_at=self.clock.now,
                                     command=command)  # fmt: skip
        self.engine.transport.send_command(envelope)
        return command_id

    def run_before_messages(self, shard: int) -> None:
        """Run the shard's batch as if the messages from other shards were late."""
        queues = self.engine.transport._messages
        held = queues.pop(shard, None)
        self.run(shard)
        if held is not None:
            held.extend(queues.pop(shard, ()))
            queues[shard] = held

    def run(self, shard: int) -> None:
        self.clock.now += 1.0
        self.engine.run_batch(self.engine.workers[shard])

    def settle(self) -> None:
        for _ in range(4):
            self.run(H)
            self.run(R)

    def outcome(self, command_id: str) -> c.Outcome:
        outcome = self.engine.transport.wait_outcome(command_id, 0)
        assert outcome is not None, command_id
        return outcome

    def get(self, engine: EmbeddedEngine, shard: int, aggregate_id: UUID) -> Any:
        return engine.workers[shard].app.repository.get(aggregate_id)

    def rider_ride(self, rider: UUID) -> UUID | None:
        rider_agg: Rider = self.get(self.engine, H, rider)
        return rider_agg.active_ride

    def verify(self) -> list[Any]:
        source = SqliteLogSource(self.settings.data_dir)
        try:
            return verify(source)[1]
        finally:
            source.close()


def a_rider(city: City) -> UUID:
    rider = new_id(H)
    city.send(c.RegisterRider(rider_id=rider, name="Ray"))
    city.run(H)
    return rider


def request(city: City, rider: UUID) -> tuple[UUID, str]:
    ride = new_id(R)
    command = c.RequestRide(ride_id=ride, rider_id=rider, pickup=PICKUP, dropoff=DROPOFF)
    return ride, city.send(command)


def test_a_ride_opens_at_its_pickups_shard_and_its_end_frees_the_rider_at_home(
    tmp_path: Path,
) -> None:
    city = City(tmp_path)
    rider = a_rider(city)
    ride, command_id = request(city, rider)
    city.run(H)
    assert city.outcome(command_id).accepted
    assert city.rider_ride(rider) == ride
    assert city.verify() == []  # the OpenRide is on its way: not a violation

    city.run(R)
    opened: Ride = city.get(city.engine, R, ride)
    assert opened.status == RideStatus.REQUESTED and opened.rider_id == rider
    cancel = city.send(c.CancelRide(ride_id=ride, rider_id=rider, reason="changed plans"))
    city.settle()
    assert city.outcome(cancel).accepted
    assert city.rider_ride(rider) is None
    assert city.verify() == []
    # every message was acknowledged: nothing left to send on either side
    for shard, peer in ((H, R), (R, H)):
        link: Link = city.get(city.engine, shard, link_id(shard, peer))
        assert link.pending() == []


def test_a_message_lost_with_the_process_is_sent_again_after_a_restart_and_applied_once(
    tmp_path: Path,
) -> None:
    city = City(tmp_path)
    rider = a_rider(city)
    ride, command_id = request(city, rider)
    city.run(H)  # committed at H: the OpenRide is in H's log and in the process's queue
    assert city.outcome(command_id).accepted

    city.restart()  # the queue is gone with the old process; H's link still holds it
    city.settle()
    opened: Ride = city.get(city.engine, R, ride)
    assert opened.rider_id == rider
    # and a second restart sends nothing twice: the ride opened once, the link is settled
    city.restart()
    city.settle()
    link: Link = city.get(city.engine, H, link_id(H, R))
    assert link.pending() == [] and link.out_next == 2
    assert city.get(city.engine, R, link_id(R, H)).in_next == 2
    assert city.verify() == []


def test_a_duplicate_message_is_dropped_and_acknowledged_again(tmp_path: Path) -> None:
    city = City(tmp_path)
    rider = a_rider(city)
    ride, _ = request(city, rider)
    city.run(H)
    sent = city.engine.workers[H].app.pending_messages([R])
    assert [type(m.body).__name__ for m in sent] == ["OpenRide"]
    city.settle()
    # the same message delivered again (a resend racing its ack)
    city.engine.transport.send_between_shards(sent, [])
    city.settle()
    ride_agg: Ride = city.get(city.engine, R, ride)
    assert ride_agg.version == 1  # opened once
    assert city.get(city.engine, R, link_id(R, H)).in_next == 2
    assert city.verify() == []


def test_a_ride_that_expires_at_its_pickups_shard_frees_its_rider(tmp_path: Path) -> None:
    city = City(tmp_path)
    rider = a_rider(city)
    ride, _ = request(city, rider)
    city.settle()
    city.clock.now += city.settings.max_wait_s + 1  # nobody drives there: it expires at R
    city.settle()
    expired: Ride = city.get(city.engine, R, ride)
    assert expired.status == RideStatus.EXPIRED
    assert city.rider_ride(rider) is None
    assert city.verify() == []


# -- offers across shards: the ride's shard asks the driver's owner ---------------------------
NEAR_PICKUP = (37.3388, -121.8856)


def a_driver_online_near_the_pickup(city: City, shard: int) -> UUID:
    driver = new_id(shard)
    city.send(c.RegisterDriver(driver_id=driver, name="Dee"))
    city.settle()
    city.send(c.GoOnline(driver_id=driver))
    city.settle()
    city.engine.transport.send_pings([Ping(driver, *NEAR_PICKUP, city.clock.now)])
    city.settle()
    return driver


def test_a_ride_is_offered_a_driver_of_another_shard_who_is_assigned_at_its_owner(
    tmp_path: Path,
) -> None:
    city = City(tmp_path)
    rider = a_rider(city)
    driver = a_driver_online_near_the_pickup(city, H)  # owned by H, the ride is at R
    ride, _ = request(city, rider)
    city.settle()
    offered: Ride = city.get(city.engine, R, ride)
    assert offered.status == RideStatus.OFFERED and offered.offered_to == driver
    held: Driver = city.get(city.engine, H, driver)
    assert held.status == DriverStatus.OFFERED and held.ride_id == ride

    accept = city.send(c.AcceptOffer(ride_id=ride, driver_id=driver))  # to its owner
    city.settle()
    assert city.outcome(accept).accepted and city.outcome(accept).shard == H
    assert city.get(city.engine, R, ride).status == RideStatus.ACCEPTED
    seen_at_owner = []
    for command in (c.MarkArrived, c.StartTrip, c.CompleteTrip):
        done = city.send(command(ride_id=ride, driver_id=driver))
        city.settle()
        assert city.outcome(done).accepted, city.outcome(done)
        seen_at_owner.append(city.get(city.engine, H, driver).status)
    assert seen_at_owner == [DriverStatus.EN_ROUTE, DriverStatus.ON_TRIP, DriverStatus.AVAILABLE]
    assert city.get(city.engine, R, ride).status == RideStatus.COMPLETED
    freed: Driver = city.get(city.engine, H, driver)
    assert freed.status == DriverStatus.AVAILABLE and freed.trips == 1
    assert city.rider_ride(rider) is None
    assert city.verify() == []


def test_an_operator_cancel_releases_a_driver_of_another_shard_at_its_owner(
    tmp_path: Path,
) -> None:
    city = City(tmp_path)
    rider = a_rider(city)
    driver = a_driver_online_near_the_pickup(city, H)  # owned by H, the ride is at R
    ride, _ = request(city, rider)
    city.settle()
    accept = city.send(c.AcceptOffer(ride_id=ride, driver_id=driver))
    city.settle()
    assert city.outcome(accept).accepted

    cancel = city.send(
        c.OperatorCancelRide(
            ride_id=ride,
            operator_id=operator_id("dana"),
            operator_name="dana",
            operator_role="dispatcher",
            reason="dup",
        )
    )
    city.settle()

    assert city.outcome(cancel).accepted and city.outcome(cancel).shard == R
    assert city.get(city.engine, R, ride).status == RideStatus.CANCELLED
    assert city.get(city.engine, H, driver).status == DriverStatus.AVAILABLE
    assert city.rider_ride(rider) is None
    source = SqliteLogSource(city.settings.data_dir)
    try:
        reasons = [e.data["reason"] for e in source.read(H) if e.topic == Driver.Released.TOPIC]
    finally:
        source.close()
    assert reasons == ["cancelled_by_operator"]
    assert city.verify() == []


def test_a_driver_held_by_its_owner_for_one_ride_is_refused_to_another(tmp_path: Path) -> None:
    city = City(tmp_path)
    driver = a_driver_online_near_the_pickup(city, H)
    first_rider, second_rider = a_rider(city), a_rider(city)
    first, _ = request(city, first_rider)
    city.settle()
    assert city.get(city.engine, R, first).offered_to == driver
    # a local ride at the owner wants the same driver: it is held, nobody else gets it
    local = new_id(H)
    city.send(c.RequestRide(ride_id=local, rider_id=second_rider, pickup=PICKUP, dropoff=DROPOFF))
    city.settle()
    assert city.get(city.engine, H, local).status == RideStatus.REQUESTED
    decline = city.send(c.DeclineOffer(ride_id=first, driver_id=driver))
    city.settle()
    assert city.outcome(decline).accepted
    # released at its owner by the decline, the driver goes to the waiting local ride
    assert city.get(city.engine, H, local).offered_to == driver
    assert driver in city.get(city.engine, R, first).excluded
    assert city.verify() == []


def test_an_acceptance_after_the_owners_expiry_is_refused_and_the_ride_searches_again(
    tmp_path: Path,
) -> None:
    city = City(tmp_path)
    rider = a_rider(city)
    driver = a_driver_online_near_the_pickup(city, H)
    ride, _ = request(city, rider)
    city.settle()
    city.clock.now += city.settings.offer_timeout_s + 1
    accept = city.send(c.AcceptOffer(ride_id=ride, driver_id=driver))
    city.settle()
    assert city.outcome(accept).code == "illegal_transition"
    again: Ride = city.get(city.engine, R, ride)
    assert again.status == RideStatus.REQUESTED and driver in again.excluded
    assert city.get(city.engine, H, driver).status == DriverStatus.AVAILABLE
    assert city.verify() == []


# -- refusals that hold only until a message arrives are not the command's outcome ------------


def test_a_keyed_cancel_that_arrives_before_its_ride_opened_is_decided_again_on_retry(
    tmp_path: Path,
) -> None:
    city = City(tmp_path)
    rider = a_rider(city)
    ride, _ = request(city, rider)
    city.run(H)  # the lock is taken at home; the ride is not open at R yet
    cancel = c.CancelRide(ride_id=ride, rider_id=rider, reason="")
    city.send(cancel, "rider:cancel-1")
    city.run_before_messages(R)  # the cancel before the OpenRide
    first = city.outcome("rider:cancel-1")
    assert (first.accepted, first.code) == (False, "not_found")
    city.settle()  # the ride opens
    city.send(cancel, "rider:cancel-1")  # the app retries with the same key
    city.settle()
    again = city.outcome("rider:cancel-1")
    assert again.accepted and not again.duplicate
    assert city.get(city.engine, R, ride).status == RideStatus.CANCELLED
    assert city.verify() == []


def test_a_keyed_request_refused_while_the_last_rides_end_is_on_its_way_is_decided_again(
    tmp_path: Path,
) -> None:
    city = City(tmp_path)
    rider = a_rider(city)
    ride, _ = request(city, rider)
    city.settle()
    city.send(c.CancelRide(ride_id=ride, rider_id=rider, reason=""))
    city.run(R)  # cancelled at R; its UnlockRider is not at home yet
    second = new_id(R)
    command = c.RequestRide(ride_id=second, rider_id=rider, pickup=PICKUP, dropoff=DROPOFF)
    city.send(command, "rider:ride-2")
    city.run_before_messages(H)  # the request before the UnlockRider
    first = city.outcome("rider:ride-2")
    assert (first.accepted, first.code) == (False, "illegal_transition")
    city.settle()  # the unlock arrives
    city.send(command, "rider:ride-2")
    city.settle()
    assert city.outcome("rider:ride-2").accepted
    assert city.rider_ride(rider) == second
    assert city.verify() == []


def test_a_message_that_fails_to_apply_is_numbered_and_its_riders_lock_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    city = City(tmp_path)
    rider = a_rider(city)

    def broken(*_args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setitem(MESSAGE_HANDLERS, OpenRide, broken)
    _, command_id = request(city, rider)
    city.settle()
    assert city.outcome(command_id).accepted
    assert city.rider_ride(rider) is None  # let go by the UnlockRider sent back
    assert city.get(city.engine, R, link_id(R, H)).in_next == 2  # applied, not stuck
    assert city.get(city.engine, H, link_id(H, R)).pending() == []


def test_the_first_batch_after_a_restart_sends_each_message_once(tmp_path: Path) -> None:
    city = City(tmp_path)
    rider = a_rider(city)
    request(city, rider)
    city.restart()  # the next batch sends everything unacknowledged, and its own new sends
    another = a_rider(city)
    request(city, another)
    city.clock.now += 1.0
    batch = city.engine.workers[H].process(city.engine.transport.poll(H, 100, 0))
    ids = [m.id for m in batch.messages]
    assert len(ids) == len(set(ids))


def test_verify_flags_a_driver_held_for_a_ride_that_let_go_of_it_without_a_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    city = City(tmp_path)
    rider = a_rider(city)
    driver = a_driver_online_near_the_pickup(city, H)
    ride, _ = request(city, rider)
    city.settle()
    assert city.get(city.engine, R, ride).offered_to == driver
    monkeypatch.setattr(handlers, "let_go", lambda *_args: None)  # the decline's Release lost
    city.send(c.DeclineOffer(ride_id=ride, driver_id=driver))
    city.settle()
    held: Driver = city.get(city.engine, H, driver)
    assert held.status == DriverStatus.OFFERED and held.ride_id == ride  # held for ever
    assert [v.kind for v in city.verify()] == ["hold_not_released"]
