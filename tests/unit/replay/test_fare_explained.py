"""``dispatch.replay.fares.explain_fare``: a ride's fare explained from its events alone,
priced again by the pure core; a recorded fare that the terms do not give is a mismatch;
a ride without terms, or completed before fares, is said to be so."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from dispatch.domain.fares import FareRule
from dispatch.domain.geo import Point
from dispatch.domain.ids import new_id
from dispatch.domain.ride import DrivenTrip, Ride
from dispatch.domain.ride_fare import FareTerms, QuotedPrice
from dispatch.replay.fares import explain_fare

D = Decimal
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
STANDARD = FareRule("USD", D("2.50"), D("1.10"), D("0.30"), D("7.00"))
QUOTE = QuotedPrice("q-1", D("11.00"), 5_000, 600, "straight_line", False)
TERMS = FareTerms("standard", "san-francisco", "sha256:0123456789abcdef", STANDARD, D("1.00"),
                  QUOTE)  # fmt: skip


def completed_ride(
    terms: FareTerms | None, metres: int, seconds: int, found: dict[str, str] | None = None
) -> list[object]:
    driver = new_id(0)
    ride = Ride.request(new_id(0), new_id(0), Point(37.77, -122.42), Point(37.80, -122.42),
                        300, T0, terms)  # fmt: skip
    ride.offer(driver, T0 + timedelta(seconds=30), 60, 300, T0)
    ride.accept(driver, T0)
    ride.arrive(driver, T0)
    ride.start_trip(driver, T0)
    found = found or {"distance": "straight_line", "duration": "clock"}
    at = T0 + timedelta(seconds=seconds)
    ride.complete(driver, at, DrivenTrip(metres, seconds, found))
    return list(ride.collect_events())


def test_a_quoted_fare_is_explained_with_its_arithmetic_and_the_quote() -> None:
    explained = explain_fare(completed_ride(TERMS, 5_400, 660))
    text = "\n".join(explained.lines)
    assert "standard in san-francisco, rules sha256:0123456789abcdef, USD" in text
    assert "rule: base 2.50, per_km 1.10, per_min 0.30, minimum 7.00; surge 1.00" in text
    assert "quote q-1: 5,000 m, 600 s (straight_line) -> 11.00 USD" in text
    assert "trip driven: 5,400 m (straight_line: great circle 3,336 m x 1.62), 660 s" in text
    assert ("metered: max(7.00, 2.50 + 1.10 x 5.4 km + 0.30 x 11 min) x 1.00 = "
            "max(7.00, 11.74) x 1.00 = 11.74") in text  # fmt: skip
    assert ("pays 11.00 USD: the quoted total, upfront (the metered fare, 11.74, is 0.74 "
            "above it, for comparison only)") in text  # fmt: skip
    assert explained.agrees is True


def test_a_fare_the_terms_do_not_give_is_a_mismatch() -> None:
    events = completed_ride(TERMS, 5_400, 660)
    events[-1] = replace(events[-1], fare={**events[-1].fare, "total": "9.00"})  # type: ignore
    explained = explain_fare(events)
    assert explained.agrees is False and "MISMATCH" in explained.lines[-1]


def test_a_ride_without_terms_is_not_priced() -> None:
    explained = explain_fare(completed_ride(None, 5_400, 660))
    assert explained.lines[0].endswith("not priced (no fare terms in its requested event)")
    assert explained.agrees is None


def test_the_trip_distance_is_explained_by_the_road_factor_the_terms_recorded() -> None:
    terms = replace(TERMS, road_factor=D("1.35"))
    text = "\n".join(explain_fare(completed_ride(terms, 4_505, 660)).lines)
    assert "trip driven: 4,505 m (straight_line: great circle 3,336 m x road factor 1.35)" in text


def test_an_erased_ride_s_fare_is_explained_without_its_ends() -> None:
    events = completed_ride(TERMS, 5_400, 660)
    # as the sealing mapper reads a ride whose rider was erased (docs/PRIVACY.md)
    events[0] = replace(events[0], pickup=None, dropoff=None)  # type: ignore
    explained = explain_fare(events)
    text = "\n".join(explained.lines)
    assert "trip driven: 5,400 m (straight_line: pickup and drop-off erased, great circle " in text
    assert explained.agrees is True


def test_a_trip_routed_over_roads_is_explained_by_the_graph_it_names() -> None:
    found = {"distance": "road_network", "road_graph": "sf.osm.pbf sha256:0011 speeds v1",
             "duration": "clock"}  # fmt: skip
    explained = explain_fare(completed_ride(TERMS, 7_812, 660, found))
    text = "\n".join(explained.lines)
    assert ("trip driven: 7,812 m (road_network: routed over sf.osm.pbf sha256:0011 speeds v1; "
            "great circle 3,336 m), 660 s") in text  # fmt: skip
    assert explained.agrees is True
