"""An operator who dispatches cancels a ride: the ride's event names them (the audit
trail), its driver is let go with that reason, and its rider may ride again."""

from __future__ import annotations

from collections import Counter
from uuid import UUID

import pytest

from dispatch.domain.driver import DriverStatus
from dispatch.domain.operators import operator_id
from dispatch.domain.ride import RideStatus
from dispatch.matching.decisions import ExpireRequest
from schemas import commands as c

DANA = operator_id("dana")


def _cancel(ride_id: UUID, reason: str = "rider called in") -> c.OperatorCancelRide:
    return c.OperatorCancelRide(
        ride_id=ride_id,
        operator_id=DANA,
        operator_name="dana",
        operator_role="dispatcher",
        reason=reason,
    )


def test_an_operator_cancelling_a_waiting_ride_is_named_in_its_event(s):
    rider_id = s.rider()
    ride_id = s.request(rider_id)

    then = s.when(_cancel(ride_id))

    assert then.accepted
    assert Counter(then.topics) == Counter(
        ["dispatch.Ride.CancelledByOperator", "dispatch.Rider.RideEnded"]
    )
    event = then.event("dispatch.Ride.CancelledByOperator")
    assert (event.operator_id, event.operator_name, event.operator_role, event.reason) == (
        str(DANA),
        "dana",
        "dispatcher",
        "rider called in",
    )
    assert then.event("dispatch.Rider.RideEnded").outcome == "cancelled"
    assert s.get(ride_id).status == RideStatus.CANCELLED
    assert s.get(rider_id).active_ride is None


def test_an_operator_cancelling_an_offered_ride_withdraws_the_offer(s):
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = s.offered(rider_id, driver_id)

    then = s.when(_cancel(ride_id))

    closed = then.event("dispatch.Driver.OfferClosed")
    assert (closed.ride_id, closed.outcome) == (str(ride_id), "withdrawn")
    assert s.get(driver_id).status == DriverStatus.AVAILABLE


@pytest.mark.parametrize("stage", ["accepted", "arrived"])
def test_an_operator_cancelling_an_assigned_ride_releases_the_driver_saying_so(s, stage):
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = getattr(s, stage)(rider_id, driver_id)

    then = s.when(_cancel(ride_id))

    released = then.event("dispatch.Driver.Released")
    assert (released.ride_id, released.reason) == (str(ride_id), "cancelled_by_operator")
    driver = s.get(driver_id)
    assert (driver.status, driver.ride_id) == (DriverStatus.AVAILABLE, None)
    assert s.get(rider_id).active_ride is None


def test_an_operator_cannot_cancel_a_trip_under_way(s):
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = s.in_progress(rider_id, driver_id)

    s.when(_cancel(ride_id)).assert_rejected("illegal_transition")
    assert s.get(ride_id).status == RideStatus.IN_PROGRESS


# A refusal of the transition (illegal_transition) is the API's 409.
def test_an_operator_cannot_cancel_a_completed_ride(s):
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = s.completed(rider_id, driver_id)

    s.when(_cancel(ride_id)).assert_rejected("illegal_transition")
    assert s.get(ride_id).status == RideStatus.COMPLETED


@pytest.mark.parametrize("by", ["rider", "operator"])
def test_an_operator_cannot_cancel_a_ride_already_cancelled(s, by):
    rider_id = s.rider()
    ride_id = s.request(rider_id)
    first = c.CancelRide(ride_id=ride_id, rider_id=rider_id) if by == "rider" else _cancel(ride_id)
    s.given(first)

    s.when(_cancel(ride_id, "again")).assert_rejected("illegal_transition")
    assert s.get(ride_id).status == RideStatus.CANCELLED


def test_an_operator_cannot_cancel_an_expired_ride(s):
    rider_id = s.rider()
    ride_id = s.request(rider_id)
    s.advance(s.MAX_WAIT_S)
    s.given(ExpireRequest(ride_id))

    s.when(_cancel(ride_id)).assert_rejected("illegal_transition")
    assert s.get(ride_id).status == RideStatus.EXPIRED


def test_an_operator_cancelling_an_unknown_ride_is_not_found(s):
    s.when(_cancel(s.new_id())).assert_rejected("not_found")


def test_an_operator_cancel_needs_a_reason_and_an_operator_name():
    with pytest.raises(ValueError, match="at least 1 character"):
        c.OperatorCancelRide(
            ride_id=DANA, operator_id=DANA, operator_name="dana", operator_role="admin", reason=""
        )
    with pytest.raises(ValueError, match="pattern"):
        c.OperatorCancelRide(
            ride_id=DANA, operator_id=DANA, operator_name="Dana", operator_role="admin", reason="x"
        )


def test_an_operator_cancel_whose_id_is_not_its_operators_is_refused():
    with pytest.raises(ValueError, match="is not the id of operator 'dana'"):
        c.OperatorCancelRide(
            ride_id=DANA,
            operator_id=operator_id("mallory"),
            operator_name="dana",
            operator_role="dispatcher",
            reason="x",
        )


def test_an_operator_cancel_in_a_role_that_may_not_cancel_is_refused():
    with pytest.raises(ValueError, match="'dispatcher' or 'admin'"):
        c.OperatorCancelRide(
            ride_id=DANA, operator_id=DANA, operator_name="dana", operator_role="viewer", reason="x"
        )
