"""A ride records the fare terms it was requested on, and its completion the trip driven
(straight-line distance, measured duration) and the final fare by those terms; events
written before fares (version 1) still load, as a ride that is not priced."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

from eventsourcing.domain import Snapshot

from dispatch.domain.fares import FareRule
from dispatch.domain.ride import Ride
from dispatch.domain.ride_fare import FareTerms, QuotedPrice
from dispatch.matching.geo import haversine_m
from dispatch.shard.crossshard.messages import Envelope, OpenRide
from schemas import commands as c
from schemas.fares import FareTermsData
from tests.unit.conftest import SF, SF_AIRPORT

D = Decimal
STANDARD = FareRule("USD", D("2.50"), D("1.10"), D("0.30"), D("7.00"))
# SF to the airport: the great circle times the road factor (1.35), whole metres.
DRIVEN_M = round(haversine_m(SF["lat"], SF["lng"], SF_AIRPORT["lat"], SF_AIRPORT["lng"]) * 1.35)


def terms(quoted_total: str | None = None) -> FareTerms:
    quote = None
    if quoted_total is not None:
        quote = QuotedPrice("q-1", D(quoted_total), DRIVEN_M, 1_500, "straight_line", False)
    return FareTerms("standard", "san-francisco", "sha256:0123456789abcdef", STANDARD,
                     D("1.00"), quote)  # fmt: skip


def priced_request(s: Any, rider_id: Any, fare: FareTerms | None) -> Any:
    ride_id = s.new_id()
    data = None if fare is None else FareTermsData.model_validate(fare.to_data())
    s.given(c.RequestRide(ride_id=ride_id, rider_id=rider_id, pickup=SF, dropoff=SF_AIRPORT,
                          fare=data))  # fmt: skip
    return ride_id


def drive(s: Any, ride_id: Any, driver_id: Any, seconds: float) -> Any:
    s.given(s.offer(ride_id, driver_id))
    s.given(c.AcceptOffer(ride_id=ride_id, driver_id=driver_id))
    s.given(c.MarkArrived(ride_id=ride_id, driver_id=driver_id))
    s.given(c.StartTrip(ride_id=ride_id, driver_id=driver_id))
    s.advance(seconds)
    then = s.when(c.CompleteTrip(ride_id=ride_id, driver_id=driver_id))
    assert then.accepted
    return then.event("dispatch.Ride.Completed")


def metered(seconds: int) -> D:
    exact = D("2.50") + D("1.10") * D(DRIVEN_M) / 1000 + D("0.30") * D(seconds) / 60
    return exact.quantize(D("0.01"))


def test_the_requested_event_records_the_fare_terms(s):
    ride_id = priced_request(s, s.rider(), terms("30.00"))
    assert s.get(ride_id).fare == terms("30.00").to_data()
    assert s.get(ride_id).fare_terms == terms("30.00")


def test_a_completed_ride_records_the_trip_driven_and_its_metered_fare(s):
    ride_id = priced_request(s, s.rider(), terms())
    completed = drive(s, ride_id, s.driver(), 1_500.4)
    assert (completed.distance_m, completed.duration_s) == (DRIVEN_M, 1_500)
    assert completed.trip_by == {"distance": "straight_line", "duration": "clock"}
    assert completed.fare["basis"] == "metered"
    assert D(completed.fare["total"]) == metered(1_500)
    assert completed.fare["total_minor"] == int(metered(1_500) * 100)


def test_a_quoted_ride_pays_the_quoted_total_for_a_trip_close_to_the_quote(s):
    quoted = str(metered(1_500) + D("1.00"))
    completed = drive(s, priced_request(s, s.rider(), terms(quoted)), s.driver(), 1_500)
    assert (completed.fare["total"], completed.fare["basis"]) == (quoted, "quoted")
    assert D(completed.fare["metered"]) == metered(1_500)


def test_a_quoted_ride_pays_the_quoted_total_for_a_much_longer_trip(s):
    quoted = str(metered(1_500))
    completed = drive(s, priced_request(s, s.rider(), terms(quoted)), s.driver(), 6_000)
    assert (completed.fare["total"], completed.fare["basis"]) == (quoted, "quoted")
    assert D(completed.fare["metered"]) == metered(6_000)  # recorded, for comparison


def test_a_ride_without_fare_terms_records_its_trip_and_no_fare(s):
    completed = drive(s, priced_request(s, s.rider(), None), s.driver(), 600)
    assert (completed.distance_m, completed.duration_s, completed.fare) == (DRIVEN_M, 600, None)


def test_a_request_whose_quote_expired_by_the_shards_clock_is_refused(s):
    """The API lets a keyed request's expired quote through (a retry is answered from the
    record first); the shard refuses it when it is a new request."""
    late = replace(terms("30.00"), quote=replace(terms("30.00").quote, expires_at=int(
        s.now.timestamp()) - 30))  # fmt: skip
    command = c.RequestRide(ride_id=s.new_id(), rider_id=s.rider(), pickup=SF,
                            dropoff=SF_AIRPORT,
                            fare=FareTermsData.model_validate(late.to_data()))  # fmt: skip
    s.when(command).assert_rejected("quote_expired")
    live = replace(late, quote=replace(late.quote, expires_at=int(s.now.timestamp()) - 29))
    assert priced_request(s, command.rider_id, live) is not None  # within the 30 s leeway


def test_malformed_fare_terms_are_refused_and_record_nothing(s):
    bad = terms().to_data()
    bad["rule"]["minimum"] = "0.001"  # not whole cents
    command = c.RequestRide(ride_id=s.new_id(), rider_id=s.rider(), pickup=SF,
                            dropoff=SF_AIRPORT, fare=FareTermsData.model_validate(bad))  # fmt: skip
    s.when(command).assert_rejected("invalid_command")


def as_version_1(s: Any, event: Any, *dropped: str) -> Any:
    """``event`` as it was stored before fares: without ``dropped``, no class version."""
    stored = s.app.mapper.to_stored_event(event)
    state = json.loads(stored.state)
    for name in (*dropped, "class_version"):
        state.pop(name)
    return s.app.mapper.to_domain_event(replace(stored, state=json.dumps(state).encode()))


def test_events_written_before_fares_load_as_a_ride_that_is_not_priced(s):
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = priced_request(s, rider_id, terms())
    completed = drive(s, ride_id, driver_id, 600)
    events = s.app.repository.event_store.get(ride_id)
    old = [as_version_1(s, e, "fare") if isinstance(e, Ride.Created) else e for e in events]
    old[-1] = as_version_1(s, completed, "distance_m", "duration_s", "trip_by", "fare")

    ride = None
    for event in old:
        ride = event.mutate(ride)
    assert ride is not None and ride.fare is None and ride.fare_terms is None
    assert (old[0].fare, old[-1].distance_m, old[-1].duration_s, old[-1].fare) == (
        None, None, None, None)  # fmt: skip


def test_a_ride_opened_at_another_shard_takes_its_fare_terms_there(s):
    rider_id, ride_id = s.rider(), s.new_id(s.OTHER_SHARD)
    data = FareTermsData.model_validate(terms("30.00").to_data())
    then = s.when(c.RequestRide(ride_id=ride_id, rider_id=rider_id, pickup=SF,
                                dropoff=SF_AIRPORT, fare=data))  # fmt: skip
    sent = then.event("dispatch.Link.Sent")
    assert sent.kind == "OpenRide" and sent.body["fare"] == terms("30.00").to_data()
    wire = Envelope(s.SHARD, s.OTHER_SHARD, sent.seq, OpenRide(**sent.body)).to_data()
    opened = Envelope.from_data(json.loads(json.dumps(wire))).body
    assert isinstance(opened, OpenRide) and opened.fare == terms("30.00").to_data()


def test_a_ride_on_its_trip_keeps_its_terms_and_start_through_a_snapshot(s):
    """A checkpoint holds live rides as snapshots: a priced ride restored mid-trip still
    has its terms and its trip's start, so its completion is timed and priced the same."""
    driver_id, ride_id = s.driver(), priced_request(s, s.rider(), terms("30.00"))
    s.given(s.offer(ride_id, driver_id))
    for command in (c.AcceptOffer, c.MarkArrived, c.StartTrip):
        s.given(command(ride_id=ride_id, driver_id=driver_id))
    ride = s.get(ride_id)
    stored = s.app.mapper.to_stored_event(Snapshot.take(ride))
    restored = s.app.mapper.to_domain_event(stored).mutate(None)
    assert restored.fare_terms == terms("30.00")
    assert restored.trip_started_at == ride.trip_started_at == s.now
