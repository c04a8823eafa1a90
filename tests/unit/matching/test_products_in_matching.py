"""The matcher offers a ride only to drivers whose vehicle serves the ride's product, and
the filter never leaves a ride unmatched that an idle serving driver could take (as far
as the strategy promises: with every driver within reach among its candidates)."""

from __future__ import annotations

import random
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.checkpoints import assemble, encode_chunks, load_into
from dispatch.domain.driver import DriverStatus
from dispatch.domain.products import DEFAULT_CATALOG, Vehicle
from dispatch.matching.decisions import MakeOffer
from dispatch.matching.eta import StraightLineEta
from dispatch.matching.fleet import Fleet
from dispatch.matching.geo import haversine_m
from dispatch.matching.index import DriverIndex
from dispatch.matching.matcher import Matcher, MatcherConfig
from dispatch.matching.state import capture
from dispatch.matching.strategies import PendingRide, SearchLimits, make_strategy

CENTRE = (37.77, -122.42)
NOW = 1_000.0
# At least as many candidates as drivers: every driver within reach is one, so the
# promise checked below is the strategy's (greedy: the nearest untaken; batch: the most
# rides matched among the candidates).
LIMITS = SearchLimits(radius_m=3_000, max_eta_s=600, candidates=10)
VEHICLES = [
    Vehicle("standard", 4, False),
    Vehicle("standard", 7, False),
    Vehicle("xl", 6, False),
    Vehicle("accessible", 3, True),
    Vehicle("accessible", 4, True),
    Vehicle("accessible", 6, True),
]
offset = st.floats(-0.02, 0.02)
drivers_st = st.lists(st.tuples(st.sampled_from(VEHICLES), offset, offset), max_size=10)
rides_st = st.lists(
    st.tuples(st.sampled_from(DEFAULT_CATALOG.names), offset, offset), min_size=1, max_size=6
)


def matcher(strategy: str) -> Matcher:
    return Matcher(
        DriverIndex[uuid.UUID](9, ttl_s=60),
        StraightLineEta(),
        make_strategy(strategy, 1.0),
        MatcherConfig(limits=LIMITS),
    )


def populate(
    m: Matcher,
    drivers: list[tuple[Vehicle, float, float]],
    rides: list[tuple[str, float, float]],
) -> tuple[dict[uuid.UUID, tuple[Vehicle, float, float]], dict[uuid.UUID, PendingRide]]:
    placed = {}
    for n, (vehicle, dlat, dlng) in enumerate(drivers):
        driver_id = uuid.UUID(int=n + 1)
        m.know_vehicle(driver_id, vehicle)
        m.load_driver(driver_id, (DriverStatus.AVAILABLE, False))
        m.ping(driver_id, CENTRE[0] + dlat, CENTRE[1] + dlng, NOW)
        placed[driver_id] = (vehicle, CENTRE[0] + dlat, CENTRE[1] + dlng)
    pending = {}
    for n, (product, dlat, dlng) in enumerate(rides):
        ride = PendingRide(uuid.UUID(int=1_000 + n), CENTRE[0] + dlat, CENTRE[1] + dlng,
                           float(n), NOW + 300, product=product)  # fmt: skip
        m.load_pending(ride)
        pending[ride.ride_id] = ride
    return placed, pending


def within_reach(ride: PendingRide, lat: float, lng: float) -> bool:
    distance = haversine_m(ride.lat, ride.lng, lat, lng)
    eta = StraightLineEta().etas_s(ride.lat, ride.lng, [(lat, lng, distance)])[0]
    return distance <= LIMITS.radius_m and eta <= LIMITS.max_eta_s


@settings(max_examples=150, deadline=None)
@given(strategy=st.sampled_from(["greedy", "batch"]), drivers=drivers_st, rides=rides_st)
def test_every_offer_goes_to_a_vehicle_that_serves_the_product_and_none_is_missed(
    strategy: str,
    drivers: list[tuple[Vehicle, float, float]],
    rides: list[tuple[str, float, float]],
) -> None:
    m = matcher(strategy)
    placed, pending = populate(m, drivers, rides)

    offers = [d for d in m.tick(NOW) if isinstance(d, MakeOffer)]

    for offer in offers:
        vehicle = placed[offer.driver_id][0]
        assert pending[offer.ride_id].product in DEFAULT_CATALOG.serves(vehicle)
    taken = {o.driver_id for o in offers}
    assert len(taken) == len(offers)  # one ride a driver
    matched = {o.ride_id for o in offers}
    for ride in pending.values():
        if ride.ride_id in matched:
            continue
        could = {
            driver_id
            for driver_id, (vehicle, lat, lng) in placed.items()
            if ride.product in DEFAULT_CATALOG.serves(vehicle) and within_reach(ride, lat, lng)
        }
        assert could <= taken, f"{ride.product} ride left unmatched beside {could - taken}"


def test_a_ride_no_driver_serves_waits_and_is_offered_when_one_comes() -> None:
    m = matcher("greedy")
    _, pending = populate(m, [(VEHICLES[0], 0.0, 0.0)], [("xl", 0.001, 0.0)])
    assert [d for d in m.tick(NOW) if isinstance(d, MakeOffer)] == []

    xl = uuid.UUID(int=99)
    m.know_vehicle(xl, Vehicle("xl", 6, False))
    m.load_driver(xl, (DriverStatus.AVAILABLE, False))
    m.ping(xl, CENTRE[0] + 0.01, CENTRE[1], NOW + 1)
    offers = [d for d in m.tick(NOW + 1) if isinstance(d, MakeOffer)]

    assert [(o.ride_id, o.driver_id) for o in offers] == [(*pending, xl)]


def test_a_driver_is_searched_for_its_products_only_after_its_vehicle_changes() -> None:
    m = matcher("greedy")
    placed, _ = populate(m, [(VEHICLES[2], 0.0, 0.0)], [])
    (driver_id,) = placed
    assert m.fleet.serves(driver_id) == {"standard", "xl"}

    m.know_vehicle(driver_id, Vehicle("standard", 4, False), foreign=True)  # not its own
    assert m.fleet.serves(driver_id) == {"standard", "xl"}
    m.know_vehicle(driver_id, Vehicle("standard", 4, False))
    assert m.fleet.serves(driver_id) == {"standard"}
    assert m.fleet.nearest("xl", *CENTRE, 1, 1_000.0) == []


def test_a_silent_driver_leaves_every_products_index() -> None:
    m = matcher("greedy")
    placed, _ = populate(m, [(VEHICLES[5], 0.0, 0.0)], [])
    m.fleet.expire(NOW + 61)
    for product in DEFAULT_CATALOG.names:
        assert m.fleet.nearest(product, *CENTRE, 1, 1_000.0) == []
    assert not m.fleet.serves(*placed)


def test_a_matcher_restored_from_a_checkpoint_knows_vehicles_and_products() -> None:
    m = matcher("greedy")
    near, far = (VEHICLES[0], 0.0, 0.0), (VEHICLES[4], 0.0, 0.002)  # standard, accessible
    populate(m, [near, far], [("accessible", 0.0, 0.0)])
    chunks = list(encode_chunks(capture(m), 7, NOW, NOW, rows=1))
    fresh = matcher("greedy")
    load_into(fresh, assemble(7, chunks))
    for driver_id, (lat, lng, at) in m.positions.items():
        fresh.ping(driver_id, lat, lng, at)

    (offer,) = [d for d in fresh.tick(NOW) if isinstance(d, MakeOffer)]

    assert offer.driver_id == uuid.UUID(int=2)  # the accessible one, not the nearer standard
    assert fresh.pending[offer.ride_id].product == "accessible"


def test_a_rare_products_index_goes_coarser_and_answers_the_same() -> None:
    fleet = Fleet(DriverIndex[uuid.UUID](9, 60.0), DEFAULT_CATALOG.names)
    rng = random.Random(7)
    for n in range(800):
        vehicle = VEHICLES[2] if n % 50 == 0 else VEHICLES[0]  # 2% xl
        lat, lng = CENTRE[0] + rng.uniform(-0.05, 0.05), CENTRE[1] + rng.uniform(-0.05, 0.05)
        fleet.upsert(uuid.UUID(int=n + 1), lat, lng, NOW, DEFAULT_CATALOG.serves(vehicle))
    before = fleet.nearest("xl", *CENTRE, 5, 8_000.0, NOW)

    assert fleet.rebalance() == ["xl"]

    assert fleet.by_product["xl"].resolution == 7  # 50x fewer drivers: two coarser
    assert fleet.by_product["standard"].resolution == 9
    assert fleet.nearest("xl", *CENTRE, 5, 8_000.0, NOW) == before != []
    assert fleet.rebalance() == []  # settled: no rebuild again
