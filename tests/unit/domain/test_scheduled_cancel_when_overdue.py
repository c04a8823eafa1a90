"""A booking the engine found no driver for by its time is free to cancel (review of #20)."""

from __future__ import annotations

from dispatch.matching.decisions import MarkOverdue
from schemas import commands as c
from tests.unit.domain.test_ride_fares_recorded import terms
from tests.unit.domain.test_scheduled_rides import booked, started


def test_a_rider_cancelling_a_booking_the_platform_found_no_driver_for_is_not_charged(s):
    # Booked 2 h ahead, priced; dispatched; no driver by its time: Overdue (the rider is
    # told the platform failed). The rider gives up and cancels: charging the minimum fare
    # for the platform's own failure is wrong.
    rider_id = s.rider()
    ride_id = booked(s, rider_id, ahead_s=7_200.0, fare=terms())
    s.advance(7_200.0 - 600.0)
    started(s, ride_id)
    s.advance(600.0)
    assert s.when(MarkOverdue(ride_id)).topics == ["dispatch.Ride.Overdue"]

    then = s.when(c.CancelRide(ride_id=ride_id, rider_id=rider_id))

    assert then.event("dispatch.Ride.CancelledByRider").fee is None


def test_a_booking_still_held_at_its_time_is_told_overdue_keeps_its_status_and_is_free_to_cancel(
    s,
):
    # Its rider rides another ride: the booking was never dispatched. At its time it has no
    # driver either: the rider is told (a notice: it stays scheduled), and cancelling is free.
    rider_id = s.rider()
    ride_id = booked(s, rider_id, ahead_s=7_200.0, fare=terms())
    s.advance(7_200.0)

    assert s.when(MarkOverdue(ride_id)).topics == ["dispatch.Ride.Overdue"]
    assert s.get(ride_id).status == "scheduled"
    then = s.when(c.CancelRide(ride_id=ride_id, rider_id=rider_id))

    assert then.event("dispatch.Ride.CancelledByRider").fee is None


def test_a_booking_is_not_told_overdue_before_its_time_nor_twice(s):
    rider_id = s.rider()
    ride_id = booked(s, rider_id, ahead_s=7_200.0, fare=terms())
    s.advance(7_200.0 - 1.0)
    assert s.when(MarkOverdue(ride_id)).topics == []
    s.advance(1.0)
    assert s.when(MarkOverdue(ride_id)).topics == ["dispatch.Ride.Overdue"]

    assert s.when(MarkOverdue(ride_id)).topics == []
