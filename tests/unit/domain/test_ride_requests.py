"""Requesting a ride, the rider cancelling it, the request expiring, and routing checks."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from dispatch.domain.driver import DriverStatus
from dispatch.domain.ride import RideStatus
from dispatch.matching.decisions import ExpireRequest
from dispatch.shard.links import link_id
from schemas import commands as c


def test_rider_requests_a_ride_and_it_waits_for_dispatch(s):
    rider_id = s.rider()
    ride_id = s.new_id()

    then = s.when(s.request_ride(ride_id, rider_id))

    assert then.accepted
    # the order of the two is covered by test_event_order.py
    assert Counter(then.topics) == Counter(
        ["dispatch.Ride.Requested", "dispatch.Rider.RideRequested"]
    )
    ride = s.get(ride_id)
    assert (ride.status, ride.rider_id, ride.offered_to, ride.driver_id, ride.excluded) == (
        RideStatus.REQUESTED,
        rider_id,
        None,
        None,
        [],
    )
    assert ride.expires_at == s.now + timedelta(seconds=s.MAX_WAIT_S)
    assert (ride.pickup.lat, ride.pickup.lng) == (37.77, -122.42)
    assert s.get(rider_id).active_ride == ride_id


def test_rider_with_an_active_ride_cannot_request_another(s):
    rider_id = s.rider()
    first = s.request(rider_id)

    s.when(s.request_ride(s.new_id(), rider_id)).assert_rejected("illegal_transition")
    assert s.get(rider_id).active_ride == first


def test_requesting_with_a_ride_id_already_taken_is_refused(s):
    rider_id = s.rider()
    ride_id = s.request(rider_id)
    s.given(c.CancelRide(ride_id=ride_id, rider_id=rider_id))

    s.when(s.request_ride(ride_id, rider_id)).assert_rejected("already_exists")
    assert s.get(ride_id).status == RideStatus.CANCELLED
    assert s.get(rider_id).active_ride is None


def test_requesting_for_an_unknown_rider_is_refused_as_not_found(s):
    s.when(s.request_ride(s.new_id(), s.new_id())).assert_rejected("not_found")


def test_a_request_for_a_rider_of_another_shard_is_refused_as_misrouted(s):
    # a request is handled at the rider's home shard, where the rider's lock is
    rider_elsewhere = s.new_id(s.OTHER_SHARD)

    then = s.when(s.request_ride(s.new_id(), rider_elsewhere))

    then.assert_rejected("misrouted")


def test_a_pickup_in_another_shard_takes_the_riders_lock_here_and_sends_the_ride_there(s):
    rider_id = s.rider()
    ride_id = s.new_id(s.OTHER_SHARD)
    # the link's next message: 1 on a fresh log; on Kafka the session's tests share one log
    # and its links (tests/unit/conftest.py), so another test may have sent on it before
    link = s.working(link_id(s.SHARD, s.OTHER_SHARD))
    expected_seq = 1 if link is None else link.out_next

    then = s.when(s.request_ride(ride_id, rider_id))

    assert then.accepted, then.outcome
    assert s.get(rider_id).active_ride == ride_id
    assert s.working(ride_id) is None  # the ride opens at its pickup's shard, not here
    sent = then.event("dispatch.Link.Sent")
    assert (sent.peer, sent.seq, sent.kind) == (s.OTHER_SHARD, expected_seq, "OpenRide")
    assert sent.body["ride"] == str(ride_id) and sent.body["rider"] == str(rider_id)


def test_a_busy_rider_asking_for_a_pickup_in_another_shard_is_refused_and_sends_nothing(s):
    rider_id = s.rider()
    s.request(rider_id)

    then = s.when(s.request_ride(s.new_id(s.OTHER_SHARD), rider_id))

    then.assert_rejected("illegal_transition")
    assert "dispatch.Link.Sent" not in then.recorded_topics


@pytest.mark.parametrize(
    "make",
    [
        lambda other: c.RegisterDriver(driver_id=other, name="x"),
        lambda other: c.RegisterRider(rider_id=other, name="x"),
        lambda other: c.GoOnline(driver_id=other),
        lambda other: c.GoOffline(driver_id=other),
        lambda other: c.CancelRide(ride_id=other, rider_id=other),
        lambda other: c.AcceptOffer(ride_id=other, driver_id=other),
        lambda other: c.DeclineOffer(ride_id=other, driver_id=other),
        lambda other: c.MarkArrived(ride_id=other, driver_id=other),
        lambda other: c.StartTrip(ride_id=other, driver_id=other),
        lambda other: c.CompleteTrip(ride_id=other, driver_id=other),
        lambda other: c.DriverCancel(ride_id=other, driver_id=other),
    ],
)
def test_command_whose_target_lives_in_another_shard_is_rejected_as_misrouted(s, make):
    other = s.new_id(s.OTHER_SHARD)

    then = s.when(make(other))

    then.assert_rejected("misrouted")
    assert f"shard {s.OTHER_SHARD}" in then.outcome.reason
    assert s.working(other) is None


# -- rider cancel -------------------------------------------------------------------------
def test_rider_cancels_a_waiting_ride(s):
    rider_id = s.rider()
    ride_id = s.request(rider_id)

    then = s.when(c.CancelRide(ride_id=ride_id, rider_id=rider_id, reason="changed my mind"))

    assert then.accepted
    assert Counter(then.topics) == Counter(
        ["dispatch.Ride.CancelledByRider", "dispatch.Rider.RideEnded"]
    )
    assert then.event("dispatch.Ride.CancelledByRider").reason == "changed my mind"
    assert then.event("dispatch.Rider.RideEnded").outcome == "cancelled"
    assert s.get(ride_id).status == RideStatus.CANCELLED
    assert s.get(rider_id).active_ride is None


def test_rider_cancelling_an_offered_ride_withdraws_the_offer_from_the_driver(s):
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = s.offered(rider_id, driver_id)

    then = s.when(c.CancelRide(ride_id=ride_id, rider_id=rider_id))

    assert Counter(then.topics) == Counter(
        [
            "dispatch.Ride.CancelledByRider",
            "dispatch.Rider.RideEnded",
            "dispatch.Driver.OfferClosed",
        ]
    )
    closed = then.event("dispatch.Driver.OfferClosed")
    assert (closed.ride_id, closed.outcome) == (str(ride_id), "withdrawn")
    driver = s.get(driver_id)
    assert (driver.status, driver.ride_id, driver.trips) == (DriverStatus.AVAILABLE, None, 0)
    ride = s.get(ride_id)
    assert (ride.status, ride.offered_to, ride.offer_expires_at) == (
        RideStatus.CANCELLED,
        None,
        None,
    )


@pytest.mark.parametrize("stage", ["accepted", "arrived"])
def test_rider_cancelling_after_the_driver_accepted_releases_the_driver(s, stage):
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = getattr(s, stage)(rider_id, driver_id)

    then = s.when(c.CancelRide(ride_id=ride_id, rider_id=rider_id))

    assert Counter(then.topics) == Counter(
        ["dispatch.Ride.CancelledByRider", "dispatch.Rider.RideEnded", "dispatch.Driver.Released"]
    )
    released = then.event("dispatch.Driver.Released")
    assert (released.ride_id, released.reason) == (str(ride_id), "cancelled_by_rider")
    driver = s.get(driver_id)
    assert (driver.status, driver.ride_id, driver.trips) == (DriverStatus.AVAILABLE, None, 0)
    assert s.get(ride_id).status == RideStatus.CANCELLED
    assert s.get(rider_id).active_ride is None


def test_rider_cannot_cancel_after_the_trip_started(s):
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = s.in_progress(rider_id, driver_id)

    s.when(c.CancelRide(ride_id=ride_id, rider_id=rider_id)).assert_rejected("illegal_transition")
    assert s.get(ride_id).status == RideStatus.IN_PROGRESS
    assert s.get(driver_id).status == DriverStatus.ON_TRIP
    assert s.get(rider_id).active_ride == ride_id


def test_rider_cannot_cancel_a_completed_ride(s):
    rider_id = s.rider()
    ride_id = s.completed(rider_id, s.driver())

    s.when(c.CancelRide(ride_id=ride_id, rider_id=rider_id)).assert_rejected("illegal_transition")


def test_cancelling_twice_is_refused_the_second_time(s):
    rider_id = s.rider()
    ride_id = s.request(rider_id)
    s.given(c.CancelRide(ride_id=ride_id, rider_id=rider_id))

    s.when(c.CancelRide(ride_id=ride_id, rider_id=rider_id)).assert_rejected("illegal_transition")


def test_another_rider_cannot_cancel_the_ride(s):
    rider_id, intruder = s.rider(), s.rider()
    driver_id = s.driver()
    ride_id = s.offered(rider_id, driver_id)

    s.when(c.CancelRide(ride_id=ride_id, rider_id=intruder)).assert_rejected("forbidden")
    assert s.get(ride_id).status == RideStatus.OFFERED
    assert s.get(driver_id).status == DriverStatus.OFFERED


def test_cancelling_an_unknown_ride_is_refused_as_not_found(s):
    s.when(c.CancelRide(ride_id=s.new_id(), rider_id=s.rider())).assert_rejected("not_found")


def test_rider_can_request_again_after_cancelling(s):
    rider_id = s.rider()
    s.given(c.CancelRide(ride_id=s.request(rider_id), rider_id=rider_id))
    ride_id = s.new_id()

    assert s.when(s.request_ride(ride_id, rider_id)).accepted
    assert s.get(rider_id).active_ride == ride_id
    assert s.get(rider_id).rides == 2


# -- request expiry -------------------------------------------------------------------------
def test_request_expiry_is_refused_before_the_max_wait(s):
    rider_id = s.rider()
    ride_id = s.request(rider_id)
    s.advance(s.MAX_WAIT_S - 1)
    before = s.position()

    then = s.when(ExpireRequest(ride_id))

    assert then.returned == [] and then.events == []
    assert s.position() == before
    assert s.get(ride_id).status == RideStatus.REQUESTED


def test_unserved_request_expires_at_its_max_wait_and_frees_the_rider(s):
    rider_id = s.rider()
    ride_id = s.request(rider_id)
    s.advance(s.MAX_WAIT_S)

    then = s.when(ExpireRequest(ride_id))

    assert then.topics == ["dispatch.Ride.Expired", "dispatch.Rider.RideEnded"]
    assert then.event("dispatch.Rider.RideEnded").outcome == "expired"
    assert s.get(ride_id).status == RideStatus.EXPIRED
    assert s.get(rider_id).active_ride is None
    assert s.when(s.request_ride(s.new_id(), rider_id)).accepted


def test_request_with_an_open_offer_does_not_expire(s):
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = s.request(rider_id)
    s.advance(s.MAX_WAIT_S - 5)
    s.given(s.offer(ride_id, driver_id))
    s.advance(10)

    then = s.when(ExpireRequest(ride_id))

    assert then.events == []
    assert s.get(ride_id).status == RideStatus.OFFERED
    assert s.get(rider_id).active_ride == ride_id


def test_expiring_an_unknown_request_records_nothing(s):
    before = s.position()

    assert s.when(ExpireRequest(s.new_id())).events == []
    assert s.position() == before
