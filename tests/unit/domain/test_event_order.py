"""The log records a command's events in the order they were decided.

``UnitOfWork.seal`` promises: "The journal holds the batch's events in the order they were
decided, which is the order they are recorded in: a log reader sees causes before their
effects." A log reader (projection, replica, the matcher on restore) must never meet a
reference to a ride before the ride itself.
"""

from __future__ import annotations


def test_request_ride_records_the_ride_before_the_riders_reference_to_it(s):
    rider_id = s.rider()
    ride_id = s.new_id()

    then = s.when(s.request_ride(ride_id, rider_id))

    # handlers.request_ride creates the Ride (Ride.request) and only then records
    # Rider.RideRequested(ride_id=...), so that is the order decided.
    assert then.topics == ["dispatch.Ride.Requested", "dispatch.Rider.RideRequested"]
    assert [type(e).TOPIC for e in then.returned][:2] == then.topics


def test_every_reference_to_a_ride_in_the_log_comes_after_the_ride_was_requested(s):
    driver_id = s.driver()
    s.completed(s.rider(), driver_id)

    seen: set[str] = set()
    late = []
    for notification in s.app.recorder.select_notifications(1, 1_000):
        event = s.app.mapper.to_domain_event(notification)
        if type(event).TOPIC == "dispatch.Ride.Requested":
            seen.add(str(event.originator_id))
        ride_ref = getattr(event, "ride_id", None)
        if ride_ref is not None and ride_ref not in seen:
            late.append((notification.id, type(event).TOPIC))
    assert seen, "the log holds no ride request: nothing was checked"
    assert late == []
