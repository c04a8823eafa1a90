"""Assignment strategies: batch is never worse than greedy; both respect the limits."""

from __future__ import annotations

import random
import uuid

from any_product_fleet import AnyProductFleet
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.matching.eta import StraightLineEta
from dispatch.matching.strategies import (
    UNMATCHED_COST,
    Batch,
    Greedy,
    Pairing,
    PendingRide,
    SearchLimits,
)

CENTRE = (37.77, -122.42)
NOW = 1_000.0


def world(
    seed: int, drivers: int, rides: int, spread_deg: float
) -> tuple[AnyProductFleet, list[PendingRide]]:
    rng = random.Random(seed)
    index = AnyProductFleet(9, ttl_s=60)
    for _ in range(drivers):
        index.add(
            uuid.UUID(int=rng.getrandbits(128)),
            CENTRE[0] + rng.uniform(-spread_deg, spread_deg),
            CENTRE[1] + rng.uniform(-spread_deg, spread_deg),
            NOW,
        )
    pending = [
        PendingRide(
            uuid.UUID(int=rng.getrandbits(128)),
            CENTRE[0] + rng.uniform(-spread_deg, spread_deg),
            CENTRE[1] + rng.uniform(-spread_deg, spread_deg),
            float(i),
            NOW + 300,
        )
        for i in range(rides)
    ]
    return index, pending


def objective(pairs: list[Pairing], rides: int) -> float:
    """Total pickup ETA plus a penalty per unmatched ride (what batch minimises)."""
    return sum(p.eta_s for p in pairs) + UNMATCHED_COST * (rides - len(pairs))


def valid(pairs: list[Pairing], limits: SearchLimits) -> bool:
    drivers = [p.driver_id for p in pairs]
    rides = [p.ride_id for p in pairs]
    return (
        len(set(drivers)) == len(drivers)
        and len(set(rides)) == len(rides)
        and all(p.eta_s <= limits.max_eta_s and p.distance_m <= limits.radius_m for p in pairs)
    )


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    drivers=st.integers(0, 40),
    rides=st.integers(1, 12),
    spread=st.sampled_from([0.005, 0.02, 0.05]),
)
def test_batch_assignment_is_never_worse_in_total_eta_than_greedy(
    seed: int,
    drivers: int,
    rides: int,
    spread: float,
) -> None:
    index, pending = world(seed, drivers, rides, spread)
    eta, limits = StraightLineEta(), SearchLimits(radius_m=3_000, max_eta_s=900, candidates=4)
    greedy = Greedy().assign(pending, index, eta, limits, NOW)
    batch = Batch(window_s=1).assign(pending, index, eta, limits, NOW)
    assert valid(greedy, limits) and valid(batch, limits)
    assert len(batch) >= len(greedy)
    assert objective(batch, rides) <= objective(greedy, rides) + 1e-6
    if len(batch) == len(greedy):
        assert sum(p.eta_s for p in batch) <= sum(p.eta_s for p in greedy) + 1e-6


def test_greedy_serves_the_oldest_request_first_when_drivers_are_scarce() -> None:
    index = AnyProductFleet(9)
    only = uuid.uuid4()
    index.add(only, *CENTRE, NOW)
    old = PendingRide(uuid.uuid4(), CENTRE[0] + 0.01, CENTRE[1], 1.0, NOW + 300)
    new = PendingRide(uuid.uuid4(), CENTRE[0] + 0.001, CENTRE[1], 2.0, NOW + 300)
    (pair,) = Greedy().assign([new, old], index, StraightLineEta(), SearchLimits(), NOW)
    assert pair.ride_id == old.ride_id and pair.driver_id == only


def test_no_driver_beyond_the_pickup_eta_cutoff_is_offered() -> None:
    index = AnyProductFleet(9)
    index.add(uuid.uuid4(), CENTRE[0] + 0.02, CENTRE[1], NOW)  # about 2.2 km away
    ride = PendingRide(uuid.uuid4(), *CENTRE, 0.0, NOW + 300)
    limits = SearchLimits(radius_m=5_000, max_eta_s=60)
    assert Greedy().assign([ride], index, StraightLineEta(), limits, NOW) == []
    assert Batch().assign([ride], index, StraightLineEta(), limits, NOW) == []


def test_an_excluded_driver_is_never_offered_the_ride_again() -> None:
    index = AnyProductFleet(9)
    declined = uuid.uuid4()
    index.add(declined, *CENTRE, NOW)
    ride = PendingRide(uuid.uuid4(), *CENTRE, 0.0, NOW + 300, excluded={declined})
    assert Greedy().assign([ride], index, StraightLineEta(), SearchLimits(), NOW) == []
    assert Batch().assign([ride], index, StraightLineEta(), SearchLimits(), NOW) == []


def test_batch_waits_for_its_window() -> None:
    batch = Batch(window_s=2.0)
    assert batch.due(10.0) and not batch.due(11.0) and batch.due(12.0)


def test_batch_beats_greedy_on_the_classic_crossing_case() -> None:
    # Two rides, two drivers on a line: greedy gives the first (older) ride the driver
    # nearest to it, which leaves the second ride the far driver; batch swaps them.
    index = AnyProductFleet(9)
    a, b = uuid.uuid4(), uuid.uuid4()
    lat, lng = CENTRE
    index.add(a, lat, lng + 0.010, NOW)
    index.add(b, lat, lng + 0.030, NOW)
    first = PendingRide(uuid.uuid4(), lat, lng + 0.018, 0.0, NOW + 300)
    second = PendingRide(uuid.uuid4(), lat, lng + 0.000, 1.0, NOW + 300)
    eta, limits = StraightLineEta(), SearchLimits(radius_m=5_000, max_eta_s=2_000)
    greedy = Greedy().assign([first, second], index, eta, limits, NOW)
    batch = Batch().assign([first, second], index, eta, limits, NOW)
    assert sum(p.eta_s for p in batch) < sum(p.eta_s for p in greedy)
