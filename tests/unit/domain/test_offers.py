"""Offers: the matcher offering a ride, the driver accepting or declining, offers expiring."""

from __future__ import annotations

from datetime import timedelta

from dispatch.domain.driver import DriverStatus
from dispatch.domain.ride import RideStatus
from dispatch.matching.decisions import ExpireOffer, MakeOffer
from schemas import commands as c


# -- the matcher's offer ----------------------------------------------------------------------
def test_offer_hands_a_waiting_ride_to_an_available_driver(s):
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = s.request(rider_id)

    then = s.when(s.offer(ride_id, driver_id))

    assert then.topics == ["dispatch.Ride.Offered", "dispatch.Driver.OfferReceived"]
    offered = then.event("dispatch.Ride.Offered")
    expires = s.now + timedelta(seconds=s.OFFER_TIMEOUT_S)
    assert (offered.driver_id, offered.offer_expires_at) == (str(driver_id), expires)
    assert (offered.pickup_eta_s, offered.distance_m) == (120.0, 800.0)
    ride, driver = s.get(ride_id), s.get(driver_id)
    assert (ride.status, ride.offered_to, ride.offer_expires_at, ride.offers) == (
        RideStatus.OFFERED,
        driver_id,
        expires,
        1,
    )
    assert (driver.status, driver.ride_id) == (DriverStatus.OFFERED, ride_id)


def test_offering_a_driver_who_is_not_available_changes_neither_ride_nor_driver(s):
    offline = s.driver(online=False)
    busy = s.driver()
    s.offered(s.rider(), busy)
    ride_id = s.request(s.rider())
    ride_before = s.state_of(s.get(ride_id))
    before = s.position()

    for driver_id in (offline, busy):
        then = s.when(s.offer(ride_id, driver_id))
        assert then.returned == [] and then.events == []

    assert s.position() == before
    # the ride's Offered event was triggered before the driver refused: it must be undone
    assert s.state_of(s.get(ride_id)) == ride_before


def test_offering_a_ride_that_is_not_waiting_is_refused(s):
    d1, d2 = s.driver(), s.driver()
    ride_id = s.offered(s.rider(), d1)
    before = s.position()

    assert s.when(s.offer(ride_id, d2)).events == []
    assert s.position() == before
    assert s.get(ride_id).offered_to == d1
    assert s.get(d2).status == DriverStatus.AVAILABLE


def test_offering_an_unknown_ride_or_driver_records_nothing(s):
    driver_id = s.driver()
    ride_id = s.request(s.rider())
    before = s.position()

    assert s.when(s.offer(s.new_id(), driver_id)).events == []
    assert s.when(s.offer(ride_id, s.new_id())).events == []
    # ids of the wrong aggregate type are unknown too
    assert s.when(MakeOffer(driver_id, ride_id, 1.0, 1.0, s.now.timestamp() + 15)).events == []
    assert s.position() == before
    assert s.get(ride_id).status == RideStatus.REQUESTED


# -- accept -----------------------------------------------------------------------------------
def test_driver_accepts_the_offer_and_is_assigned_to_the_ride(s):
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = s.offered(rider_id, driver_id)
    s.advance(s.OFFER_TIMEOUT_S - 1)

    then = s.when(c.AcceptOffer(ride_id=ride_id, driver_id=driver_id))

    assert then.accepted
    assert then.topics == ["dispatch.Ride.Accepted", "dispatch.Driver.Assigned"]
    ride, driver = s.get(ride_id), s.get(driver_id)
    assert (ride.status, ride.driver_id, ride.offered_to, ride.offer_expires_at) == (
        RideStatus.ACCEPTED,
        driver_id,
        None,
        None,
    )
    assert (driver.status, driver.ride_id) == (DriverStatus.EN_ROUTE, ride_id)


def test_accepting_once_the_offer_expired_is_refused_even_before_the_matcher_expires_it(s):
    driver_id = s.driver()
    ride_id = s.offered(s.rider(), driver_id)
    s.advance(s.OFFER_TIMEOUT_S)

    then = s.when(c.AcceptOffer(ride_id=ride_id, driver_id=driver_id))

    then.assert_rejected("illegal_transition")
    assert s.get(ride_id).status == RideStatus.OFFERED
    assert s.get(driver_id).status == DriverStatus.OFFERED


def test_driver_not_offered_the_ride_cannot_accept_it(s):
    offered_to, other = s.driver(), s.driver()
    ride_id = s.offered(s.rider(), offered_to)

    s.when(c.AcceptOffer(ride_id=ride_id, driver_id=other)).assert_rejected("forbidden")
    assert s.get(ride_id).offered_to == offered_to
    assert s.get(other).status == DriverStatus.AVAILABLE


def test_accepting_a_ride_that_was_not_offered_is_refused(s):
    driver_id = s.driver()
    ride_id = s.request(s.rider())

    s.when(c.AcceptOffer(ride_id=ride_id, driver_id=driver_id)).assert_rejected(
        "illegal_transition"
    )


def test_accepting_twice_is_refused_the_second_time(s):
    driver_id = s.driver()
    ride_id = s.accepted(s.rider(), driver_id)

    s.when(c.AcceptOffer(ride_id=ride_id, driver_id=driver_id)).assert_rejected(
        "illegal_transition"
    )
    assert s.get(driver_id).status == DriverStatus.EN_ROUTE


def test_accepting_with_unknown_ids_is_refused_as_not_found(s):
    driver_id = s.driver()
    ride_id = s.offered(s.rider(), driver_id)

    s.when(c.AcceptOffer(ride_id=s.new_id(), driver_id=driver_id)).assert_rejected("not_found")
    s.when(c.AcceptOffer(ride_id=ride_id, driver_id=s.new_id())).assert_rejected("not_found")
    assert s.get(ride_id).status == RideStatus.OFFERED


# -- decline ----------------------------------------------------------------------------------
def test_declined_offer_sends_ride_back_to_dispatch_without_that_driver(s):
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = s.offered(rider_id, driver_id)

    then = s.when(c.DeclineOffer(ride_id=ride_id, driver_id=driver_id))

    assert then.accepted
    assert then.topics == ["dispatch.Ride.OfferDeclined", "dispatch.Driver.OfferClosed"]
    assert then.event("dispatch.Driver.OfferClosed").outcome == "declined"
    ride, driver = s.get(ride_id), s.get(driver_id)
    assert (ride.status, ride.offered_to, ride.excluded) == (
        RideStatus.REQUESTED,
        None,
        [driver_id],
    )
    assert (driver.status, driver.ride_id) == (DriverStatus.AVAILABLE, None)
    assert s.get(rider_id).active_ride == ride_id


def test_driver_who_declined_is_not_offered_the_ride_again_but_another_driver_is(s):
    declined, other = s.driver(), s.driver()
    ride_id = s.offered(s.rider(), declined)
    s.given(c.DeclineOffer(ride_id=ride_id, driver_id=declined))

    assert s.when(s.offer(ride_id, declined)).events == []
    assert s.get(ride_id).status == RideStatus.REQUESTED
    assert s.get(declined).status == DriverStatus.AVAILABLE

    then = s.when(s.offer(ride_id, other))
    assert then.topics == ["dispatch.Ride.Offered", "dispatch.Driver.OfferReceived"]
    assert s.get(ride_id).offers == 2


def test_driver_not_offered_the_ride_cannot_decline_it(s):
    offered_to, other = s.driver(), s.driver()
    ride_id = s.offered(s.rider(), offered_to)

    s.when(c.DeclineOffer(ride_id=ride_id, driver_id=other)).assert_rejected("forbidden")
    assert s.get(ride_id).offered_to == offered_to
    assert s.get(ride_id).excluded == []


def test_declining_an_accepted_ride_is_refused(s):
    driver_id = s.driver()
    ride_id = s.accepted(s.rider(), driver_id)

    s.when(c.DeclineOffer(ride_id=ride_id, driver_id=driver_id)).assert_rejected(
        "illegal_transition"
    )
    assert s.get(ride_id).status == RideStatus.ACCEPTED


def test_declining_an_unknown_ride_is_refused_as_not_found(s):
    s.when(c.DeclineOffer(ride_id=s.new_id(), driver_id=s.driver())).assert_rejected("not_found")


# -- offer expiry -----------------------------------------------------------------------------
def test_offer_expiry_is_refused_before_the_offer_expires(s):
    driver_id = s.driver()
    ride_id = s.offered(s.rider(), driver_id)
    s.advance(s.OFFER_TIMEOUT_S - 0.001)
    before = s.position()

    assert s.when(ExpireOffer(ride_id)).events == []
    assert s.position() == before
    assert s.get(ride_id).status == RideStatus.OFFERED
    assert s.get(driver_id).status == DriverStatus.OFFERED


def test_expired_offer_sends_ride_back_to_dispatch_without_that_driver(s):
    driver_id = s.driver()
    ride_id = s.offered(s.rider(), driver_id)
    s.advance(s.OFFER_TIMEOUT_S)

    then = s.when(ExpireOffer(ride_id))

    assert then.topics == ["dispatch.Ride.OfferExpired", "dispatch.Driver.OfferClosed"]
    assert then.event("dispatch.Ride.OfferExpired").driver_id == str(driver_id)
    assert then.event("dispatch.Driver.OfferClosed").outcome == "expired"
    ride, driver = s.get(ride_id), s.get(driver_id)
    assert (ride.status, ride.offered_to, ride.excluded) == (
        RideStatus.REQUESTED,
        None,
        [driver_id],
    )
    assert (driver.status, driver.ride_id) == (DriverStatus.AVAILABLE, None)
    assert s.when(s.offer(ride_id, driver_id)).events == []


def test_expiring_an_offer_that_was_already_answered_records_nothing(s):
    driver_id = s.driver()
    ride_id = s.accepted(s.rider(), driver_id)
    s.advance(s.OFFER_TIMEOUT_S * 2)
    before = s.position()

    assert s.when(ExpireOffer(ride_id)).events == []
    assert s.when(ExpireOffer(s.new_id())).events == []
    assert s.position() == before
    assert s.get(ride_id).status == RideStatus.ACCEPTED
