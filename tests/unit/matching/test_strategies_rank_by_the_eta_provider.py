"""Greedy and batch alike rank candidates by the ETA provider's answer (a road router's),
not by straight-line distance, and drop the drivers it cannot route."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence

import pytest
from any_product_fleet import AnyProductFleet

from dispatch.matching.eta import Source
from dispatch.matching.strategies import Batch, Greedy, PendingRide, SearchLimits, Strategy

LAT0, LNG0 = 60.17, 24.94


class FartherIsFaster:
    """A provider where the nearest driver cannot reach the pickup and the farthest is
    quickest (a river between, a motorway beyond)."""

    def etas_s(self, to_lat: float, to_lng: float, sources: Sequence[Source]) -> list[float]:
        return [math.inf if d < 50 else 10_000.0 / d for _, _, d in sources]


@pytest.mark.parametrize("strategy", [Greedy(), Batch()], ids=["greedy", "batch"])
def test_the_strategy_takes_the_driver_the_provider_says_is_quickest(strategy: Strategy) -> None:
    index = AnyProductFleet(9, 60.0)
    near, middle, far = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for driver, north in ((near, 0.0002), (middle, 0.002), (far, 0.01)):
        index.add(driver, LAT0 + north, LNG0, 1_000.0)
    ride = PendingRide(uuid.uuid4(), LAT0, LNG0, 0.0, 2_000.0)

    (pairing,) = strategy.assign([ride], index, FartherIsFaster(), SearchLimits(), 1_000.0)

    assert pairing.driver_id == far
    assert pairing.eta_s == pytest.approx(10_000.0 / pairing.distance_m)
