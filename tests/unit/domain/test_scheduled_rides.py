"""Scheduled rides at the shard: booking within the lead time and horizon, the rider's
limit, free and charged cancellation, dispatch started, held while the rider is busy,
overdue and expired (docs/MARKETPLACE.md, "Scheduled rides")."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from dispatch.domain.ride import RIDER_BUSY, RideStatus
from dispatch.domain.scheduling import BOOKING_GRACE_S, SchedulingRules
from dispatch.matching.decisions import ExpireRequest, MarkOverdue, StartDispatch
from dispatch.shard.crossshard.messages import Envelope, OpenRide
from dispatch.shard.links import link_id
from schemas import commands as c
from schemas.fares import FareTermsData
from tests.unit.conftest import SF, SF_AIRPORT
from tests.unit.domain.test_ride_fares_recorded import terms

RULES = SchedulingRules()  # the defaults: 15 minutes to 7 days ahead, 3 a rider


def book(rider_id: UUID, at: datetime, ride_id: UUID, fare: Any = None) -> c.RequestRide:
    data = None if fare is None else FareTermsData.model_validate(fare.to_data())
    return c.RequestRide(ride_id=ride_id, rider_id=rider_id, pickup=SF, dropoff=SF_AIRPORT,
                         scheduled_for=at, fare=data)  # fmt: skip


def booked(s: Any, rider_id: UUID, ahead_s: float = 7_200.0, fare: Any = None) -> UUID:
    ride_id = s.new_id()
    s.given(book(rider_id, s.now + timedelta(seconds=ahead_s), ride_id, fare))
    return ride_id


def started(s: Any, ride_id: UUID) -> Any:
    return s.when(StartDispatch(ride_id, 240.0, 300.0))


def test_a_booked_ride_is_scheduled_and_not_the_riders_active_ride(s):
    rider_id = s.rider()
    ride_id = s.new_id()
    at = s.now + timedelta(hours=20)

    then = s.when(book(rider_id, at, ride_id))

    assert then.accepted
    assert sorted(then.topics) == ["dispatch.Ride.Scheduled", "dispatch.Rider.RideBooked"]
    ride = s.get(ride_id)
    assert (ride.status, ride.scheduled_for) == (RideStatus.SCHEDULED, at)
    assert ride.expires_at == at + timedelta(seconds=RULES.search_after_s)
    assert ride.free_cancel_until == at - timedelta(seconds=RULES.free_cancel_s)
    rider = s.get(rider_id)
    assert (rider.active_ride, rider.scheduled) == (None, [str(ride_id)])


@pytest.mark.parametrize(
    ("ahead_s", "says"),
    [
        (RULES.min_lead_s - 1, "at least 15 minutes ahead"),
        (-60.0, "1 minutes past"),
        (RULES.horizon_s + 1, "at most 7 days ahead"),
    ],
)
def test_a_booking_nearer_than_the_lead_time_or_beyond_the_horizon_is_refused(s, ahead_s, says):
    rider_id = s.rider()
    ride_id = s.new_id()

    then = s.when(book(rider_id, s.now + timedelta(seconds=ahead_s), ride_id))

    then.assert_rejected("scheduled_time_out_of_range")
    assert says in then.outcome.reason
    assert s.working(ride_id) is None
    assert s.get(rider_id).scheduled == []


def test_the_lead_time_and_horizon_themselves_are_bookable(s):
    rider_id = s.rider()
    assert s.when(book(rider_id, s.now + timedelta(seconds=RULES.min_lead_s), s.new_id())).accepted
    assert s.when(book(rider_id, s.now + timedelta(seconds=RULES.horizon_s), s.new_id())).accepted


def test_a_rider_holds_at_most_the_configured_number_of_scheduled_rides(s):
    rider_id = s.rider()
    for _ in range(RULES.max_per_rider):
        booked(s, rider_id)

    then = s.when(book(rider_id, s.now + timedelta(hours=3), s.new_id()))

    then.assert_rejected("too_many_scheduled")
    assert len(s.get(rider_id).scheduled) == RULES.max_per_rider


def test_a_rider_with_an_active_ride_may_book_and_a_booking_does_not_block_requests(s):
    rider_id = s.rider()
    active = s.request(rider_id)
    later = booked(s, rider_id)
    rider = s.get(rider_id)
    assert (rider.active_ride, rider.scheduled) == (active, [str(later)])

    other = s.rider()
    booked(s, other)
    assert s.when(s.request_ride(s.new_id(), other)).accepted


def test_cancelling_before_the_cutoff_is_free_and_after_it_charges_the_minimum_fare(s):
    rider_id = s.rider()
    early = booked(s, rider_id, ahead_s=7_200.0, fare=terms())
    late = booked(s, rider_id, ahead_s=7_200.0, fare=terms())

    free = s.when(c.CancelRide(ride_id=early, rider_id=rider_id))
    s.advance(7_200.0 - RULES.free_cancel_s)  # at the cutoff: no longer free
    charged = s.when(c.CancelRide(ride_id=late, rider_id=rider_id))

    assert free.event("dispatch.Ride.CancelledByRider").fee is None
    assert charged.event("dispatch.Ride.CancelledByRider").fee == "7.00"  # the rule's minimum
    assert s.get(rider_id).scheduled == []
    assert {s.get(early).status, s.get(late).status} == {RideStatus.CANCELLED}


def test_a_ride_booked_inside_the_cutoff_is_free_to_cancel_for_a_grace_period(s):
    rider_id = s.rider()
    ride_id = booked(s, rider_id, ahead_s=RULES.min_lead_s, fare=terms())
    assert s.get(ride_id).free_cancel_until == s.now + timedelta(seconds=BOOKING_GRACE_S)

    s.advance(BOOKING_GRACE_S - 1)
    then = s.when(c.CancelRide(ride_id=ride_id, rider_id=rider_id))

    assert then.event("dispatch.Ride.CancelledByRider").fee is None


def test_an_unpriced_ride_cancelled_late_is_not_charged(s):
    rider_id = s.rider()
    ride_id = booked(s, rider_id, ahead_s=RULES.min_lead_s)
    s.advance(BOOKING_GRACE_S + 60)

    then = s.when(c.CancelRide(ride_id=ride_id, rider_id=rider_id))

    assert then.event("dispatch.Ride.CancelledByRider").fee is None


def test_a_due_ride_of_an_idle_rider_starts_its_dispatch_and_takes_the_riders_lock(s):
    rider_id = s.rider()
    ride_id = booked(s, rider_id)

    then = started(s, ride_id)

    assert sorted(then.topics) == [
        "dispatch.Ride.DispatchDue",
        "dispatch.Ride.DispatchStarted",
        "dispatch.Rider.ScheduledRideActivated",
    ]
    due = then.event("dispatch.Ride.DispatchDue")
    assert (due.expected_pickup_s, due.margin_s) == (240.0, 300.0)
    assert s.get(ride_id).status == RideStatus.REQUESTED
    rider = s.get(rider_id)
    assert (rider.active_ride, rider.scheduled) == (ride_id, [])
    # and it is an active ride like any other: no on-demand request beside it
    s.when(s.request_ride(s.new_id(), rider_id)).assert_rejected("illegal_transition")


def test_a_due_ride_of_a_busy_rider_is_held_and_starts_once_the_other_ride_ends(s):
    rider_id = s.rider()
    ride_id = booked(s, rider_id)
    active = s.request(rider_id)

    held = started(s, ride_id)

    assert held.topics == ["dispatch.Ride.DispatchDue", "dispatch.Ride.DispatchHeld"]
    event = held.event("dispatch.Ride.DispatchHeld")
    assert (event.reason, event.busy_with) == (RIDER_BUSY, str(active))
    assert s.get(ride_id).status == RideStatus.SCHEDULED
    assert s.get(rider_id).active_ride == active  # the ride already active wins

    s.given(c.CancelRide(ride_id=active, rider_id=rider_id))
    again = started(s, ride_id)

    assert "dispatch.Ride.DispatchStarted" in again.topics
    assert s.get(rider_id).active_ride == ride_id


def test_a_ride_asking_for_its_riders_lock_is_not_started_twice(s):
    rider_id = s.rider()
    ride_id = booked(s, rider_id)
    started(s, ride_id)

    assert s.when(StartDispatch(ride_id, 240.0, 300.0)).topics == []  # no longer applies


def test_a_held_ride_still_scheduled_at_the_end_of_its_search_expires_and_leaves_the_rider(s):
    rider_id = s.rider()
    ride_id = booked(s, rider_id, ahead_s=RULES.min_lead_s)
    active = s.request(rider_id)
    started(s, ride_id)
    s.advance(RULES.min_lead_s + RULES.search_after_s)

    then = s.when(ExpireRequest(ride_id))

    assert "dispatch.Ride.Expired" in then.topics
    rider = s.get(rider_id)
    assert (rider.active_ride, rider.scheduled) == (active, [])


def test_a_scheduled_ride_expires_no_earlier_than_its_time_plus_the_search_window(s):
    rider_id = s.rider()
    ride_id = booked(s, rider_id, ahead_s=RULES.min_lead_s)
    s.advance(RULES.min_lead_s + RULES.search_after_s - 1)

    assert s.when(ExpireRequest(ride_id)).topics == []
    assert s.get(ride_id).status == RideStatus.SCHEDULED


def test_a_dispatched_ride_without_a_driver_at_its_time_is_overdue_once(s):
    rider_id = s.rider()
    ride_id = booked(s, rider_id, ahead_s=RULES.min_lead_s)
    started(s, ride_id)
    assert s.when(MarkOverdue(ride_id)).topics == []  # not yet its time

    s.advance(RULES.min_lead_s)
    then = s.when(MarkOverdue(ride_id))

    assert then.topics == ["dispatch.Ride.Overdue"]
    assert s.get(ride_id).status == RideStatus.REQUESTED  # still searched for
    assert s.when(MarkOverdue(ride_id)).topics == []


def test_an_immediate_ride_is_never_overdue_nor_started(s):
    ride_id = s.request(s.rider())
    assert s.when(MarkOverdue(ride_id)).topics == []
    assert s.when(StartDispatch(ride_id, 1.0, 1.0)).topics == []


def test_a_rider_with_a_scheduled_ride_cannot_be_erased_until_it_is_cancelled(s):
    rider_id = s.rider()
    booked(s, rider_id)

    with pytest.raises(Exception, match="scheduled ride"):
        s.get(rider_id).erase(None, s.now)


def test_a_pickup_in_another_shard_is_booked_there_by_message(s):
    rider_id = s.rider()
    ride_id = s.new_id(s.OTHER_SHARD)
    at = s.now + timedelta(hours=2)
    link = s.working(link_id(s.SHARD, s.OTHER_SHARD))
    seq = 1 if link is None else link.out_next

    then = s.when(book(rider_id, at, ride_id))

    assert then.accepted
    sent = Envelope.from_data(
        {"from": s.SHARD, "to": s.OTHER_SHARD, "seq": seq, **_sent(then)}
    ).body
    assert isinstance(sent, OpenRide)
    assert (sent.ride, sent.scheduled_for) == (str(ride_id), at.timestamp())
    assert s.get(rider_id).scheduled == [str(ride_id)]


def _sent(then: Any) -> dict[str, Any]:
    event = then.event("dispatch.Link.Sent")
    return {"kind": event.kind, "body": event.body}
