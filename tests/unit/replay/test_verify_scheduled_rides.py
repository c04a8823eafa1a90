"""`replay verify` checks every booking: dispatched (or ended) by its time, never left
scheduled past its search window, its rider told when it has no driver past its time;
and a rider's booking and active ride are folded apart (a booking ended before its
dispatch is not taken for the active ride)."""

from __future__ import annotations

from uuid import UUID

from test_verify_finds_violations import T0, CraftedLog, iso, kinds

from dispatch.domain.ids import new_id

HOUR = 3_600.0


def booked(log: CraftedLog, ride: UUID, rider: UUID, at: float = T0 + HOUR) -> CraftedLog:
    log.add(rider, "Rider.Registered", name="r")
    log.add(ride, "Ride.Scheduled", rider_id=str(rider), pickup=[37.7, -122.4],
            dropoff=[37.8, -122.4], expires_at=iso(at + 900), scheduled_for=iso(at),
            free_cancel_until=iso(at - HOUR), product="standard", fare=None)  # fmt: skip
    log.add(rider, "Rider.RideBooked", ride_id=str(ride), scheduled_for=iso(at))
    return log


def dispatched(log: CraftedLog, ride: UUID, rider: UUID) -> CraftedLog:
    log.add(ride, "Ride.DispatchDue", at=T0 + HOUR - 600, expected_pickup_s=300.0, margin_s=300.0)
    log.add(ride, "Ride.DispatchStarted", at=T0 + HOUR - 600)
    log.add(rider, "Rider.ScheduledRideActivated", at=T0 + HOUR - 600, ride_id=str(ride))
    return log


def held(log: CraftedLog, ride: UUID) -> CraftedLog:
    """Found due while its rider rides another ride: held."""
    log.add(ride, "Ride.DispatchDue", at=T0 + HOUR - 600, expected_pickup_s=300.0, margin_s=300.0)
    log.add(ride, "Ride.DispatchHeld", at=T0 + HOUR - 600, reason="rider_busy",
            busy_with=str(new_id(0)))  # fmt: skip
    return log


def test_a_booking_dispatched_ahead_of_its_time_then_expired_is_clean() -> None:
    ride, rider, other = new_id(0), new_id(0), new_id(0)
    log = booked(CraftedLog(), ride, rider)
    dispatched(log, ride, rider)
    log.add(ride, "Ride.Overdue", at=T0 + HOUR)
    log.add(ride, "Ride.Expired", at=T0 + HOUR + 900)
    log.add(rider, "Rider.RideEnded", at=T0 + HOUR + 900, ride_id=str(ride), outcome="expired")
    log.add(other, "Rider.Registered", at=T0 + 3 * HOUR, name="o")  # the clock moves on
    assert kinds(log) == []


def test_a_booking_never_found_due_by_its_time_is_found() -> None:
    ride, rider, other = new_id(0), new_id(0), new_id(0)
    log = booked(CraftedLog(), ride, rider)
    log.add(other, "Rider.Registered", at=T0 + HOUR + 61, name="o")
    # (nor was its rider told: a distinct failure, found apart)
    assert kinds(log) == ["scheduled_not_dispatched", "scheduled_not_told_overdue"]


def test_a_booking_waiting_within_its_time_is_not_flagged() -> None:
    ride, rider, other = new_id(0), new_id(0), new_id(0)
    log = booked(CraftedLog(), ride, rider)
    log.add(other, "Rider.Registered", at=T0 + HOUR - 1, name="o")
    assert kinds(log) == []


def test_a_booking_held_past_its_search_window_and_never_expired_is_found() -> None:
    ride, rider, other = new_id(0), new_id(0), new_id(0)
    log = booked(CraftedLog(), ride, rider)
    held(log, ride)
    log.add(other, "Rider.Registered", at=T0 + HOUR + 901, name="o")
    assert kinds(log) == ["scheduled_not_expired", "scheduled_not_told_overdue"]


def test_a_booking_cancelled_before_its_dispatch_ends_it_for_the_rider_alone() -> None:
    ride, rider, now = new_id(0), new_id(0), new_id(0)
    log = booked(CraftedLog(), ride, rider)
    log.add(now, "Ride.Requested", rider_id=str(rider), pickup=[37.7, -122.4],
            dropoff=[37.8, -122.4], expires_at=iso(T0 + 300))  # fmt: skip
    log.add(rider, "Rider.RideRequested", ride_id=str(now))
    log.add(ride, "Ride.CancelledByRider", reason="", fee=None)
    log.add(rider, "Rider.RideEnded", ride_id=str(ride), outcome="cancelled")
    log.add(now, "Ride.Expired", at=T0 + 300)
    log.add(rider, "Rider.RideEnded", at=T0 + 300, ride_id=str(now), outcome="expired")
    assert kinds(log) == []


def test_a_booking_activated_while_the_rider_has_an_active_ride_is_found() -> None:
    ride, rider, now = new_id(0), new_id(0), new_id(0)
    log = booked(CraftedLog(), ride, rider)
    log.add(now, "Ride.Requested", rider_id=str(rider), pickup=[37.7, -122.4],
            dropoff=[37.8, -122.4], expires_at=iso(T0 + 300))  # fmt: skip
    log.add(rider, "Rider.RideRequested", ride_id=str(now))
    log.add(ride, "Ride.DispatchDue", expected_pickup_s=300.0, margin_s=300.0)
    log.add(ride, "Ride.DispatchStarted")
    log.add(rider, "Rider.ScheduledRideActivated", ride_id=str(ride))
    assert "rider_with_two_rides" in kinds(log)


def test_a_booking_held_past_its_time_and_never_told_overdue_is_found() -> None:
    ride, rider, other = new_id(0), new_id(0), new_id(0)
    log = booked(CraftedLog(), ride, rider)
    held(log, ride)
    log.add(other, "Rider.Registered", at=T0 + HOUR + 61, name="o")
    assert kinds(log) == ["scheduled_not_told_overdue"]


def test_a_booking_held_past_its_time_and_told_overdue_is_clean() -> None:
    ride, rider, other = new_id(0), new_id(0), new_id(0)
    log = booked(CraftedLog(), ride, rider)
    held(log, ride)
    log.add(ride, "Ride.Overdue", at=T0 + HOUR)
    log.add(other, "Rider.Registered", at=T0 + HOUR + 61, name="o")
    assert kinds(log) == []


def test_a_booking_whose_driver_declined_after_its_time_must_be_told_a_minute_later() -> None:
    ride, rider, driver = new_id(0), new_id(0), new_id(0)
    log = booked(CraftedLog(), ride, rider)
    log.add(driver, "Driver.Registered", name="d").add(driver, "Driver.WentOnline")
    dispatched(log, ride, rider)
    log.add(ride, "Ride.Offered", at=T0 + HOUR - 10, driver_id=str(driver),
            offer_expires_at=iso(T0 + HOUR + 5), pickup_eta_s=60.0, distance_m=400.0)  # fmt: skip
    log.add(driver, "Driver.OfferReceived", at=T0 + HOUR - 10, ride_id=str(ride),
            expires_at=iso(T0 + HOUR + 5))  # fmt: skip
    log.add(ride, "Ride.OfferDeclined", at=T0 + HOUR + 10, driver_id=str(driver))
    log.add(driver, "Driver.OfferClosed", at=T0 + HOUR + 10, ride_id=str(ride),
            outcome="declined")  # fmt: skip
    log.add(new_id(0), "Rider.Registered", at=T0 + HOUR + 65, name="a")
    assert kinds(log) == []  # offered at its time; without a driver for 55 s only

    log.add(new_id(0), "Rider.Registered", at=T0 + HOUR + 71, name="b")
    assert kinds(log) == ["scheduled_not_told_overdue"]


def test_a_held_booking_that_expired_without_ever_being_told_is_found() -> None:
    """Left untold for its whole search: found when it ends, not only at the log's end."""
    ride, rider, other = new_id(0), new_id(0), new_id(0)
    log = booked(CraftedLog(), ride, rider)
    held(log, ride)
    log.add(ride, "Ride.Expired", at=T0 + HOUR + 900)
    log.add(rider, "Rider.RideEnded", at=T0 + HOUR + 900, ride_id=str(ride), outcome="expired")
    log.add(other, "Rider.Registered", at=T0 + 3 * HOUR, name="o")
    assert "scheduled_not_told_overdue" in kinds(log)


def test_a_dispatched_booking_that_expired_without_ever_being_told_is_found() -> None:
    ride, rider, other = new_id(0), new_id(0), new_id(0)
    log = dispatched(booked(CraftedLog(), ride, rider), ride, rider)
    log.add(ride, "Ride.Expired", at=T0 + HOUR + 900)
    log.add(rider, "Rider.RideEnded", at=T0 + HOUR + 900, ride_id=str(ride), outcome="expired")
    log.add(other, "Rider.Registered", at=T0 + 3 * HOUR, name="o")
    assert kinds(log) == ["scheduled_not_told_overdue"]


def test_a_booking_cancelled_within_the_minute_after_its_time_is_clean() -> None:
    ride, rider, other = new_id(0), new_id(0), new_id(0)
    log = dispatched(booked(CraftedLog(), ride, rider), ride, rider)
    log.add(ride, "Ride.CancelledByRider", at=T0 + HOUR + 30, reason="", fee=None)
    log.add(rider, "Rider.RideEnded", at=T0 + HOUR + 30, ride_id=str(ride), outcome="cancelled")
    log.add(other, "Rider.Registered", at=T0 + 3 * HOUR, name="o")
    assert kinds(log) == []


def test_a_booking_driverless_ten_minutes_past_its_time_then_offered_is_found() -> None:
    """A driver who comes late does not hide that the rider was left untold meanwhile."""
    ride, rider, driver = new_id(0), new_id(0), new_id(0)
    log = booked(CraftedLog(), ride, rider)
    log.add(driver, "Driver.Registered", name="d").add(driver, "Driver.WentOnline")
    dispatched(log, ride, rider)
    log.add(ride, "Ride.Offered", at=T0 + HOUR + 600, driver_id=str(driver),
            offer_expires_at=iso(T0 + HOUR + 615), pickup_eta_s=60.0, distance_m=400.0)  # fmt: skip
    log.add(driver, "Driver.OfferReceived", at=T0 + HOUR + 600, ride_id=str(ride),
            expires_at=iso(T0 + HOUR + 615))  # fmt: skip
    log.add(new_id(0), "Rider.Registered", at=T0 + HOUR + 610, name="a")
    assert kinds(log) == ["scheduled_not_told_overdue"]


def test_a_driver_asked_on_another_shard_counts_as_a_driver_until_the_ask_ends() -> None:
    """As the matcher counts it: no notice is due while the ask is open (an offer timeout
    longer than the minute's slack would otherwise be flagged), and one is due a minute
    after the ask ends without a driver."""
    ride, rider, driver = new_id(0), new_id(0), new_id(1)
    log = dispatched(booked(CraftedLog(), ride, rider), ride, rider)
    log.add(ride, "Ride.DriverAsked", at=T0 + HOUR - 5, driver_id=str(driver), resv="r-1",
            pickup_eta_s=60.0, distance_m=400.0, owner=1)  # fmt: skip
    log.add(new_id(0), "Rider.Registered", at=T0 + HOUR + 90, name="a")
    assert kinds(log) == []  # asking for 95 s, past the minute: not untold
    log.add(ride, "Ride.AskEnded", at=T0 + HOUR + 95, driver_id=str(driver), reason="refused")
    log.add(new_id(0), "Rider.Registered", at=T0 + HOUR + 150, name="b")
    assert kinds(log) == []
    log.add(new_id(0), "Rider.Registered", at=T0 + HOUR + 160, name="c")
    assert kinds(log) == ["scheduled_not_told_overdue"]


def test_a_rider_told_overdue_before_the_time_or_twice_is_found() -> None:
    ride, rider, other = new_id(0), new_id(0), new_id(0)
    log = dispatched(booked(CraftedLog(), ride, rider), ride, rider)
    log.add(ride, "Ride.Overdue", at=T0 + HOUR - 30)
    log.add(ride, "Ride.Overdue", at=T0 + HOUR + 30)
    log.add(other, "Rider.Registered", at=T0 + HOUR + 40, name="o")
    assert kinds(log) == ["scheduled_told_overdue_early", "scheduled_told_overdue_twice"]
