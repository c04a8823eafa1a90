"""The trip: arrival, start, completion, and the driver cancelling before the start."""

from __future__ import annotations

from collections import Counter

import pytest

from dispatch.domain.driver import DriverStatus
from dispatch.domain.ride import RideStatus
from schemas import commands as c

DRIVER_RIDE_COMMANDS = [
    c.AcceptOffer,
    c.DeclineOffer,
    c.MarkArrived,
    c.StartTrip,
    c.CompleteTrip,
    c.DriverCancel,
]


# -- arrival ----------------------------------------------------------------------------------
def test_assigned_driver_marks_arrival_at_the_pickup(s):
    driver_id = s.driver()
    ride_id = s.accepted(s.rider(), driver_id)

    then = s.when(c.MarkArrived(ride_id=ride_id, driver_id=driver_id))

    assert then.accepted
    assert then.topics == ["dispatch.Ride.DriverArrived"]
    assert s.get(ride_id).status == RideStatus.DRIVER_ARRIVED
    assert s.get(driver_id).status == DriverStatus.EN_ROUTE


def test_another_driver_cannot_mark_arrival(s):
    driver_id, other = s.driver(), s.driver()
    ride_id = s.accepted(s.rider(), driver_id)

    s.when(c.MarkArrived(ride_id=ride_id, driver_id=other)).assert_rejected("forbidden")
    assert s.get(ride_id).status == RideStatus.ACCEPTED


def test_arrival_before_acceptance_or_twice_is_refused(s):
    driver_id = s.driver()
    offered = s.offered(s.rider(), driver_id)
    # the driver it is offered to, too early: a conflict with the ride's state, not a stranger
    s.when(c.MarkArrived(ride_id=offered, driver_id=driver_id)).assert_rejected(
        "illegal_transition"
    )

    other = s.driver()
    arrived = s.arrived(s.rider(), other)
    s.when(c.MarkArrived(ride_id=arrived, driver_id=other)).assert_rejected("illegal_transition")


# -- start ------------------------------------------------------------------------------------
def test_driver_starts_the_trip_after_arriving(s):
    driver_id = s.driver()
    ride_id = s.arrived(s.rider(), driver_id)

    then = s.when(c.StartTrip(ride_id=ride_id, driver_id=driver_id))

    assert then.topics == ["dispatch.Ride.TripStarted", "dispatch.Driver.TripStarted"]
    assert s.get(ride_id).status == RideStatus.IN_PROGRESS
    assert s.get(driver_id).status == DriverStatus.ON_TRIP


def test_trip_cannot_start_before_the_driver_arrived(s):
    driver_id = s.driver()
    ride_id = s.accepted(s.rider(), driver_id)

    s.when(c.StartTrip(ride_id=ride_id, driver_id=driver_id)).assert_rejected("illegal_transition")
    assert s.get(ride_id).status == RideStatus.ACCEPTED
    assert s.get(driver_id).status == DriverStatus.EN_ROUTE


def test_another_driver_cannot_start_the_trip(s):
    driver_id, other = s.driver(), s.driver()
    ride_id = s.arrived(s.rider(), driver_id)

    s.when(c.StartTrip(ride_id=ride_id, driver_id=other)).assert_rejected("forbidden")
    assert s.get(ride_id).status == RideStatus.DRIVER_ARRIVED


# -- completion -------------------------------------------------------------------------------
def test_completing_the_trip_frees_driver_and_rider(s):
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = s.in_progress(rider_id, driver_id)

    then = s.when(c.CompleteTrip(ride_id=ride_id, driver_id=driver_id))

    assert then.topics == [
        "dispatch.Ride.Completed",
        "dispatch.Driver.Released",
        "dispatch.Rider.RideEnded",
    ]
    assert then.event("dispatch.Driver.Released").reason == "completed"
    assert then.event("dispatch.Rider.RideEnded").outcome == "completed"
    driver = s.get(driver_id)
    assert (driver.status, driver.ride_id, driver.trips) == (DriverStatus.AVAILABLE, None, 1)
    assert s.get(ride_id).status == RideStatus.COMPLETED
    assert s.get(rider_id).active_ride is None


def test_trip_cannot_complete_before_it_started(s):
    driver_id = s.driver()
    ride_id = s.arrived(s.rider(), driver_id)

    s.when(c.CompleteTrip(ride_id=ride_id, driver_id=driver_id)).assert_rejected(
        "illegal_transition"
    )
    assert s.get(ride_id).status == RideStatus.DRIVER_ARRIVED


def test_another_driver_cannot_complete_the_trip(s):
    driver_id, other = s.driver(), s.driver()
    ride_id = s.in_progress(s.rider(), driver_id)

    s.when(c.CompleteTrip(ride_id=ride_id, driver_id=other)).assert_rejected("forbidden")
    assert s.get(ride_id).status == RideStatus.IN_PROGRESS
    assert s.get(driver_id).status == DriverStatus.ON_TRIP


def test_completed_trip_cannot_complete_again(s):
    driver_id = s.driver()
    ride_id = s.completed(s.rider(), driver_id)

    s.when(c.CompleteTrip(ride_id=ride_id, driver_id=driver_id)).assert_rejected(
        "illegal_transition"
    )
    assert s.get(driver_id).trips == 1


# -- driver cancel ----------------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["accepted", "arrived"])
def test_driver_cancel_sends_ride_back_to_dispatch_with_the_driver_excluded(s, stage):
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = getattr(s, stage)(rider_id, driver_id)

    then = s.when(c.DriverCancel(ride_id=ride_id, driver_id=driver_id, reason="flat tyre"))

    assert then.topics == ["dispatch.Ride.CancelledByDriver", "dispatch.Driver.Released"]
    assert then.event("dispatch.Ride.CancelledByDriver").reason == "flat tyre"
    assert then.event("dispatch.Driver.Released").reason == "cancelled_by_driver"
    ride, driver = s.get(ride_id), s.get(driver_id)
    assert (ride.status, ride.driver_id, ride.offered_to, ride.excluded) == (
        RideStatus.REQUESTED,
        None,
        None,
        [driver_id],
    )
    assert (driver.status, driver.ride_id, driver.trips) == (DriverStatus.AVAILABLE, None, 0)
    assert s.get(rider_id).active_ride == ride_id


def test_driver_who_cancelled_cannot_be_offered_the_ride_again(s):
    driver_id, other = s.driver(), s.driver()
    ride_id = s.accepted(s.rider(), driver_id)
    s.given(c.DriverCancel(ride_id=ride_id, driver_id=driver_id))
    before = s.position()

    assert s.when(s.offer(ride_id, driver_id)).events == []
    assert s.position() == before
    assert s.get(driver_id).status == DriverStatus.AVAILABLE

    assert s.when(s.offer(ride_id, other)).topics == [
        "dispatch.Ride.Offered",
        "dispatch.Driver.OfferReceived",
    ]


def test_driver_cannot_cancel_after_the_trip_started(s):
    driver_id = s.driver()
    ride_id = s.in_progress(s.rider(), driver_id)

    s.when(c.DriverCancel(ride_id=ride_id, driver_id=driver_id)).assert_rejected(
        "illegal_transition"
    )
    assert s.get(ride_id).status == RideStatus.IN_PROGRESS


def test_driver_cannot_cancel_an_offer_instead_of_declining_it(s):
    driver_id = s.driver()
    ride_id = s.offered(s.rider(), driver_id)

    s.when(c.DriverCancel(ride_id=ride_id, driver_id=driver_id)).assert_rejected(
        "illegal_transition"
    )
    assert s.get(ride_id).status == RideStatus.OFFERED


def test_another_driver_cannot_cancel_the_ride(s):
    driver_id, other = s.driver(), s.driver()
    ride_id = s.accepted(s.rider(), driver_id)

    s.when(c.DriverCancel(ride_id=ride_id, driver_id=other)).assert_rejected("forbidden")
    assert s.get(ride_id).driver_id == driver_id
    assert s.get(driver_id).status == DriverStatus.EN_ROUTE


# -- wrong actor / unknown ids, for every driver command --------------------------------------
@pytest.mark.parametrize("command", DRIVER_RIDE_COMMANDS, ids=lambda k: k.__name__)
def test_driver_command_for_an_unknown_ride_is_refused_as_not_found(s, command):
    s.when(command(ride_id=s.new_id(), driver_id=s.driver())).assert_rejected("not_found")


@pytest.mark.parametrize(
    "command",
    [k for k in DRIVER_RIDE_COMMANDS if k is not c.MarkArrived],
    ids=lambda k: k.__name__,
)
def test_driver_command_from_an_unknown_driver_is_refused_as_not_found(s, command):
    driver_id = s.driver()
    ride_id = s.accepted(s.rider(), driver_id)

    s.when(command(ride_id=ride_id, driver_id=s.new_id())).assert_rejected("not_found")
    assert s.get(ride_id).status == RideStatus.ACCEPTED


def test_mark_arrived_from_an_unknown_driver_is_refused_as_not_found(s):
    # Every other driver command loads the driver and answers not_found for an unknown id;
    # mark_arrived never loads the driver, so it answers forbidden instead.
    driver_id = s.driver()
    ride_id = s.accepted(s.rider(), driver_id)

    s.when(c.MarkArrived(ride_id=ride_id, driver_id=s.new_id())).assert_rejected("not_found")
    assert s.get(ride_id).status == RideStatus.ACCEPTED


@pytest.mark.parametrize("command", DRIVER_RIDE_COMMANDS, ids=lambda k: k.__name__)
def test_driver_command_from_a_driver_holding_another_ride_is_forbidden(s, command):
    # every stage the command could apply to: the intruder holds a ride of its own there
    driver_id, intruder = s.driver(), s.driver()
    stage = {
        c.AcceptOffer: s.offered,
        c.DeclineOffer: s.offered,
        c.MarkArrived: s.accepted,
        c.StartTrip: s.arrived,
        c.CompleteTrip: s.in_progress,
        c.DriverCancel: s.accepted,
    }[command]
    ride_id = stage(s.rider(), driver_id)
    stage(s.rider(), intruder)
    ride_before = s.state_of(s.get(ride_id))
    driver_before = s.state_of(s.get(driver_id))

    then = s.when(command(ride_id=ride_id, driver_id=intruder))

    then.assert_rejected("forbidden")
    assert s.state_of(s.get(ride_id)) == ride_before
    assert s.state_of(s.get(driver_id)) == driver_before


def test_full_trip_records_one_command_record_per_command(s):
    rider_id, driver_id = s.rider(), s.driver()
    start = s.position()

    s.completed(rider_id, driver_id)

    topics = [n.topic for n in s.app.recorder.select_notifications(start + 1, 100)]
    counts = Counter(topics)
    # request, accept, arrive, start, complete (the offer is a decision, not a command)
    assert counts[s.COMMAND_RECORD_TOPIC] == 5
    assert counts["dispatch.Ride.Completed"] == 1
