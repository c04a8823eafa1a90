"""`replay verify` holds every completed ride's recorded fare to the one its terms give for
its recorded trip (``fare_mismatch``), and the recorded trip to its events
(``trip_mismatch``: a clock-timed duration is the time from trip start to completion, the
distance the great circle between the requested ends times the terms' road factor); rides
completed before fares are not checked."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from test_verify_finds_violations import CraftedLog, iso, kinds

from dispatch.adapters.crypto.aesgcm import AesGcmCipher
from dispatch.adapters.sqlite.keystore import SqliteKeyStore, key_store_path
from dispatch.domain.fares import FareRule
from dispatch.domain.ids import new_id
from dispatch.domain.ride_fare import FareTerms, final_fare
from dispatch.matching.geo import haversine_m
from dispatch.privacy import PersonalData
from dispatch.replay.operations import verify

D = Decimal
T0 = 1_767_600_000.0
STANDARD = FareRule("USD", D("2.50"), D("1.10"), D("0.30"), D("7.00"))
TERMS = FareTerms("standard", "san-francisco", "sha256:0123456789abcdef", STANDARD, D("1.00"))
TRIP = {"distance_m": 5_000, "duration_s": 600,
        "trip_by": {"distance": "straight_line", "duration": "clock"}}  # fmt: skip


def completed(terms: FareTerms | None, **trip: Any) -> CraftedLog:
    ride, driver, rider = new_id(0), new_id(0), new_id(0)
    log = CraftedLog()
    log.add(rider, "Rider.Registered", name="r")
    log.add(driver, "Driver.Registered", name="d").add(driver, "Driver.WentOnline")
    log.add(ride, "Ride.Requested", rider_id=str(rider), pickup=[37.7, -122.4],
            dropoff=[37.8, -122.4], expires_at=iso(T0 + 300),
            fare=None if terms is None else terms.to_data())  # fmt: skip
    log.add(rider, "Rider.RideRequested", ride_id=str(ride))
    log.add(ride, "Ride.Offered", driver_id=str(driver), offer_expires_at=iso(T0 + 15),
            pickup_eta_s=60.0, distance_m=400.0)  # fmt: skip
    log.add(driver, "Driver.OfferReceived", ride_id=str(ride), expires_at=iso(T0 + 15))
    finish(log, ride, driver, rider, **trip)
    return log


def finish(log: CraftedLog, ride: UUID, driver: UUID, rider: UUID, **trip: Any) -> None:
    log.add(ride, "Ride.Accepted", driver_id=str(driver))
    log.add(driver, "Driver.Assigned", ride_id=str(ride))
    log.add(ride, "Ride.DriverArrived", driver_id=str(driver))
    log.add(ride, "Ride.TripStarted", driver_id=str(driver))
    log.add(driver, "Driver.TripStarted", ride_id=str(ride))
    end = T0 + trip.pop("took_s", trip.get("duration_s") or 0)  # the shard's clock at the end
    log.add(ride, "Ride.Completed", at=end, driver_id=str(driver), **trip)
    log.add(driver, "Driver.Released", at=end, ride_id=str(ride), reason="completed")
    log.add(rider, "Rider.RideEnded", at=end, ride_id=str(ride), outcome="completed")


def test_a_fare_its_terms_give_is_no_violation() -> None:
    fare = final_fare(TERMS, 5_000, 600).to_data()
    assert kinds(completed(TERMS, **TRIP, fare=fare)) == []


def test_a_fare_its_terms_do_not_give_is_a_fare_mismatch() -> None:
    fare = final_fare(TERMS, 5_000, 600).to_data() | {"total": "9.99", "total_minor": 999}
    assert kinds(completed(TERMS, **TRIP, fare=fare)) == ["fare_mismatch"]


def test_a_fare_for_a_ride_without_terms_is_a_fare_mismatch() -> None:
    fare = final_fare(TERMS, 5_000, 600).to_data()
    assert kinds(completed(None, **TRIP, fare=fare)) == ["fare_mismatch"]
    assert kinds(completed(None, **TRIP, fare=None)) == []


def test_a_ride_completed_before_fares_is_not_checked() -> None:
    assert kinds(completed(None)) == []  # version 1: no trip, no fare


def test_a_clock_timed_duration_the_events_do_not_give_is_a_trip_mismatch() -> None:
    fare = final_fare(TERMS, 5_000, 600).to_data()
    assert kinds(completed(TERMS, **TRIP, fare=fare, took_s=600.4)) == []  # rounding
    # 600 s recorded, but the trip ran 60 s: a fare consistent with the 600 s is caught
    assert kinds(completed(TERMS, **TRIP, fare=fare, took_s=60)) == ["trip_mismatch"]


GREAT_CIRCLE_M = haversine_m(37.7, -122.4, 37.8, -122.4)  # the crafted ride's ends


def test_a_distance_the_recorded_road_factor_does_not_give_is_a_trip_mismatch() -> None:
    terms = replace(TERMS, road_factor=D("1.35"))
    metres = round(GREAT_CIRCLE_M * 1.35)
    trip = TRIP | {"distance_m": metres}
    fare = final_fare(terms, metres, 600).to_data()
    assert kinds(completed(terms, **trip, fare=fare)) == []
    longer = TRIP | {"distance_m": metres * 2}
    fare = final_fare(terms, metres * 2, 600).to_data()
    assert kinds(completed(terms, **longer, fare=fare)) == ["trip_mismatch"]
    # terms recorded before the factor was: the distance cannot be checked
    assert (
        kinds(completed(TERMS, **longer, fare=final_fare(TERMS, metres * 2, 600).to_data())) == []
    )


def sealed_ride(tmp_path: Path, metres: int) -> tuple[CraftedLog, PersonalData, UUID]:
    """A priced ride completed over ``metres``, its pickup and drop-off sealed under its
    rider's key as a sealing shard writes them (docs/PRIVACY.md)."""
    personal = PersonalData(AesGcmCipher(), SqliteKeyStore(key_store_path(tmp_path)))
    terms = replace(TERMS, road_factor=D("1.35"))
    ride, driver, rider = new_id(0), new_id(0), new_id(0)
    key = personal.keys.create(rider)
    log = CraftedLog()
    log.add(rider, "Rider.Registered", name=personal.seal(key, "name", "r"))
    log.add(driver, "Driver.Registered", name="d").add(driver, "Driver.WentOnline")
    log.add(ride, "Ride.Requested", rider_id=str(rider),
            pickup=personal.seal(key, "pickup", [37.7, -122.4]),
            dropoff=personal.seal(key, "dropoff", [37.8, -122.4]),
            expires_at=iso(T0 + 300), fare=terms.to_data())  # fmt: skip
    log.add(rider, "Rider.RideRequested", ride_id=str(ride))
    log.add(ride, "Ride.Offered", driver_id=str(driver), offer_expires_at=iso(T0 + 15),
            pickup_eta_s=60.0, distance_m=400.0)  # fmt: skip
    log.add(driver, "Driver.OfferReceived", ride_id=str(ride), expires_at=iso(T0 + 15))
    trip = TRIP | {"distance_m": metres}
    finish(log, ride, driver, rider, **trip, fare=final_fare(terms, metres, 600).to_data())
    return log, personal, rider


def test_a_sealed_ride_s_distance_is_checked_against_its_opened_ends(tmp_path: Path) -> None:
    right = round(GREAT_CIRCLE_M * 1.35)
    log, personal, _ = sealed_ride(tmp_path / "a", right)
    assert [v.kind for v in verify(log, None, personal.open)[1]] == []
    log, personal, _ = sealed_ride(tmp_path / "b", right * 2)
    assert [v.kind for v in verify(log, None, personal.open)[1]] == ["trip_mismatch"]
    # without an opener (the tokens as they are) the distance is not checked, no crash
    assert kinds(log) == []


def test_an_erased_ride_s_distance_is_not_checked(tmp_path: Path) -> None:
    log, personal, rider = sealed_ride(tmp_path, round(GREAT_CIRCLE_M * 1.35) * 2)
    personal.keys.erase(rider)
    assert [v.kind for v in verify(log, None, personal.open)[1]] == []


ROAD_TRIP_BY = {"distance": "road_network", "road_graph": "city.osm.pbf sha256:0123 speeds v1",
                "duration": "clock"}  # fmt: skip


def test_a_trip_routed_over_roads_is_held_to_the_great_circle_and_must_name_its_graph() -> None:
    """A road route is checked without the graph: no shorter than the great circle between
    the requested ends (less 1 % and a metre), and naming the graph it was routed over."""
    terms = replace(TERMS, road_factor=D("1.35"))

    def routed(metres: int, trip_by: dict[str, str]) -> list[str]:
        trip = {"distance_m": metres, "duration_s": 600, "trip_by": trip_by}
        return kinds(completed(terms, **trip, fare=final_fare(terms, metres, 600).to_data()))

    # a route far longer than the road factor gives: no violation (the road is the river's)
    assert routed(round(GREAT_CIRCLE_M * 2.1), ROAD_TRIP_BY) == []
    assert routed(round(GREAT_CIRCLE_M * 0.995), ROAD_TRIP_BY) == []  # the router's leeway
    assert routed(round(GREAT_CIRCLE_M * 0.9), ROAD_TRIP_BY) == ["trip_mismatch"]
    unnamed = {k: v for k, v in ROAD_TRIP_BY.items() if k != "road_graph"}
    assert routed(round(GREAT_CIRCLE_M * 2.1), unnamed) == ["trip_mismatch"]
