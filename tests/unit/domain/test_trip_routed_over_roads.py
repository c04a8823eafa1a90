"""Where a road network is configured, a shard meters the trip a completed ride drove over
the road route between its pickup and drop-off (the quotes' own estimate), and names the
graph in the event; off the network it keeps the straight-line estimate."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from dispatch.domain.fares import FareRule
from dispatch.domain.ride_fare import FareTerms, final_fare
from dispatch.matching.geo import haversine_m
from dispatch.pricing.trip import Place, Trip
from dispatch.shard.application import ShardApplication
from dispatch.shard.policy import Policy, RoadTrips
from schemas import commands as c
from schemas.fares import FareTermsData, TripFoundBy
from tests.unit.conftest import SF, SF_AIRPORT, Scenario

D = Decimal
GRAPH = "bay-area.osm.pbf sha256:00112233445566 speeds v1"
RULE = FareRule("USD", D("2.50"), D("1.10"), D("0.30"), D("7.00"))
TERMS = FareTerms("standard", "san-francisco", "sha256:0123456789abcdef", RULE, D("1.00"),
                  None, D("1.35"))  # fmt: skip
ROUTED = Trip(31_234, 1_700, "road_network")


class Roads:
    """Routes the trip to the airport over roads; any other is off the network."""

    def __init__(self) -> None:
        self.asked: list[tuple[Place, Place]] = []

    def trip(self, pickup: Place, dropoff: Place) -> Trip:
        self.asked.append((pickup, dropoff))
        if dropoff == (SF_AIRPORT["lat"], SF_AIRPORT["lng"]):
            return ROUTED
        return Trip(1, 1, "straight_line")


@pytest.fixture
def roads() -> Roads:
    return Roads()


@pytest.fixture
def s(roads: Roads) -> Any:
    policy = Policy(max_wait_s=Scenario.MAX_WAIT_S, road_trips=RoadTrips(roads, GRAPH))
    app = ShardApplication(Scenario.SHARD, policy=policy)
    yield Scenario(app)
    app.close()


def complete(s: Any, dropoff: dict[str, float], seconds: float) -> Any:
    ride_id, driver_id = s.new_id(), s.driver()
    fare = FareTermsData.model_validate(TERMS.to_data())
    s.given(c.RequestRide(ride_id=ride_id, rider_id=s.rider(), pickup=SF, dropoff=dropoff,
                          fare=fare))  # fmt: skip
    s.given(s.offer(ride_id, driver_id))
    for command in (c.AcceptOffer, c.MarkArrived, c.StartTrip):
        s.given(command(ride_id=ride_id, driver_id=driver_id))
    s.advance(seconds)
    then = s.when(c.CompleteTrip(ride_id=ride_id, driver_id=driver_id))
    assert then.accepted
    return then.event("dispatch.Ride.Completed")


def test_a_trip_on_the_network_is_metered_over_its_road_route(s: Any, roads: Roads) -> None:
    completed = complete(s, SF_AIRPORT, 1_500)
    assert (completed.distance_m, completed.duration_s) == (ROUTED.distance_m, 1_500)
    assert completed.trip_by == {"distance": "road_network", "road_graph": GRAPH,
                                 "duration": "clock"}  # fmt: skip
    assert completed.fare == final_fare(TERMS, ROUTED.distance_m, 1_500).to_data()
    assert TripFoundBy.model_validate(completed.trip_by).road_graph == GRAPH  # the wire's
    assert roads.asked == [((SF["lat"], SF["lng"]), (SF_AIRPORT["lat"], SF_AIRPORT["lng"]))]


def test_a_trip_off_the_network_keeps_the_straight_line_estimate(s: Any) -> None:
    elsewhere = {"lat": 37.80, "lng": -122.27}
    completed = complete(s, elsewhere, 900)
    crow = haversine_m(SF["lat"], SF["lng"], elsewhere["lat"], elsewhere["lng"])
    assert completed.distance_m == round(crow * 1.35)
    assert completed.trip_by == {"distance": "straight_line", "duration": "clock"}
    assert TripFoundBy.model_validate(completed.trip_by).road_graph is None
