"""The shard is the authority on service areas: a ride request whose pickup or drop-off
lies outside its market's area is rejected ``outside_service_area`` (a command on Kafka may
come from any producer, not only the API), records nothing but its command record, and
leaves the rider free to request again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dispatch.markets import MarketMap
from dispatch.settings import MarketConfig
from dispatch.shard.application import ShardApplication
from dispatch.shard.policy import Policy
from schemas import commands as c
from schemas.common import LatLng
from tests.unit.conftest import Scenario

# The city's north-east quarter only: the airport (south) is outside.
AREA = {"type": "Polygon", "coordinates": [[[-122.52, 37.70], [-122.35, 37.70],
        [-122.35, 37.83], [-122.52, 37.83], [-122.52, 37.70]]]}  # fmt: skip
MARKET = MarketConfig(name="san-francisco", shard=0, lat=37.77, lng=-122.42, radius_km=40,
                      service_area=AREA)  # fmt: skip
INSIDE, ALSO_INSIDE = LatLng(lat=37.7749, lng=-122.4194), LatLng(lat=37.80, lng=-122.41)
AIRPORT = LatLng(lat=37.6213, lng=-122.379)


@pytest.fixture
def s() -> Iterator[Any]:
    check = MarketMap([MARKET], 2).check_stops
    app = ShardApplication(Scenario.SHARD, policy=Policy(max_wait_s=300, check_stops=check))
    yield Scenario(app)
    app.close()


def request(s: Any, rider: Any, pickup: LatLng, dropoff: LatLng) -> Any:
    return s.when(c.RequestRide(ride_id=s.new_id(), rider_id=rider, pickup=pickup,
                                dropoff=dropoff))  # fmt: skip


@pytest.mark.parametrize(
    ("pickup", "dropoff", "named"),
    [(INSIDE, AIRPORT, "drop-off"), (AIRPORT, INSIDE, "pickup")],
)
def test_a_stop_outside_the_area_is_rejected_and_nothing_is_recorded(
    s: Any, pickup: LatLng, dropoff: LatLng, named: str
) -> None:
    rider = s.rider()
    then = request(s, rider, pickup, dropoff)
    then.assert_rejected("outside_service_area")
    assert f"the {named} (" in then.outcome.reason
    assert s.app.repository.get(rider).active_ride is None
    assert request(s, rider, INSIDE, ALSO_INSIDE).accepted  # free to request again
