"""With a service area, the simulator draws its trips inside it (a trip outside is drawn
again), so the engine refuses none of them as outside_service_area; every simulated
request's pickup and drop-off lie in the area."""

from __future__ import annotations

from pathlib import Path

from dispatch.settings import MarketConfig, Settings
from dispatch.simulator.embedded import simulate_embedded
from dispatch.simulator.runner import SimConfig

# The city's northern half only (the simulated city is a 30 x 30 km square around SF).
AREA = {"type": "Polygon", "coordinates": [[[-122.62, 37.77], [-122.22, 37.77],
        [-122.22, 37.95], [-122.62, 37.95], [-122.62, 37.77]]]}  # fmt: skip


def test_simulated_trips_are_drawn_inside_the_service_area(tmp_path: Path) -> None:
    market = MarketConfig(name="san-francisco", shard=0, lat=37.77, lng=-122.42,
                          radius_km=40, service_area=AREA)  # fmt: skip
    config = SimConfig(drivers=20, minutes=5, seed=4, demand_per_min=10, warmup_minutes=0)
    sim = simulate_embedded(config, Settings(data_dir=tmp_path, markets=[market]))
    assert len(sim.demand) > 20
    for request in sim.demand:
        for lat, lng in (request.pickup, request.dropoff):
            assert lat >= 37.77 and -122.62 <= lng <= -122.22
    assert sim.outcomes["outside_service_area"] == 0 and sim.outcomes["accepted"] > 0
