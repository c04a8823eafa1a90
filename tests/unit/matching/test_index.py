"""DriverIndex: exact k-nearest (checked against brute force), moves, removal, expiry."""

from __future__ import annotations

import math
import pickle
import random
import uuid
from collections.abc import Container, Hashable

import h3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch.matching.geo import cell_disc, hav_term, haversine_m
from dispatch.matching.index import DriverIndex

SF = (37.77, -122.42)
M_PER_DEG = math.pi * 6_371_008.8 / 180.0
TTL = 30.0


class Model:
    """The index under test plus a plain dict of the same drivers, for brute force."""

    def __init__(self, resolution: int = 9, max_radius_m: float = 10_000.0) -> None:
        self.index = DriverIndex(resolution=resolution, ttl_s=TTL, max_radius_m=max_radius_m)
        self.max_radius_m = max_radius_m
        self.drivers: dict[Hashable, tuple[float, float, float, int]] = {}
        self.order = 0

    def upsert(self, driver_id: Hashable, lat: float, lng: float, at: float) -> None:
        self.index.upsert(driver_id, lat, lng, at)
        old = self.drivers.get(driver_id)
        if old is None:
            self.order += 1
        self.drivers[driver_id] = (lat, lng, at, old[3] if old else self.order)

    def remove(self, driver_id: Hashable) -> None:
        assert self.index.remove(driver_id) == (driver_id in self.drivers)
        self.drivers.pop(driver_id, None)

    def brute_force(
        self,
        lat: float,
        lng: float,
        k: int,
        radius_m: float,
        now: float | None = None,
        exclude: Container[Hashable] = frozenset(),
    ) -> list[tuple[Hashable, float]]:
        radius = min(radius_m, self.max_radius_m)
        hits = []
        for driver_id, (dlat, dlng, at, order) in self.drivers.items():
            d = haversine_m(lat, lng, dlat, dlng)
            fresh = now is None or at >= now - TTL
            if d <= radius and fresh and driver_id not in exclude:
                hits.append((d, order, driver_id))
        hits.sort(key=lambda h: (h[0], h[1]))
        return [(driver_id, d) for d, _, driver_id in hits[:k]]

    def check(self, lat: float, lng: float, k: int, radius_m: float, **kw: object) -> None:
        got = self.index.nearest(lat, lng, k, radius_m, **kw)  # type: ignore[arg-type]
        assert got == self.brute_force(lat, lng, k, radius_m, **kw)  # type: ignore[arg-type]


def offset(point: tuple[float, float], north_m: float, east_m: float) -> tuple[float, float]:
    """A point ``north_m``/``east_m`` metres away (flat approximation; wraps longitude)."""
    lat, lng = point
    new_lat = max(-90.0, min(90.0, lat + north_m / M_PER_DEG))
    new_lng = lng + east_m / (M_PER_DEG * max(math.cos(math.radians(lat)), 1e-6))
    return new_lat, (new_lng + 180.0) % 360.0 - 180.0


def scatter(model: Model, centre: tuple[float, float], n: int, half_m: float, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        lat, lng = offset(centre, rng.uniform(-half_m, half_m), rng.uniform(-half_m, half_m))
        model.upsert(uuid.UUID(int=rng.getrandbits(128)), lat, lng, rng.uniform(0.0, 60.0))


class Opaque:
    """A Container that is not a Collection (like the matcher's exclusion view)."""

    def __init__(self, items: frozenset[Hashable]) -> None:
        self.items = items

    def __contains__(self, item: object) -> bool:
        return item in self.items


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Model, list[tuple[float, float]], dict[str, object]]:
    resolution = draw(st.sampled_from([7, 8, 9, 10]))
    model = Model(resolution, max_radius_m=draw(st.sampled_from([3_000.0, 10_000.0])))
    half_m = draw(st.sampled_from([300.0, 2_000.0, 15_000.0]))  # dense .. sparse
    n = draw(st.integers(0, 250))
    seed = draw(st.integers(0, 2**32))
    scatter(model, SF, n, half_m, seed)
    rng = random.Random(seed + 1)
    ids = list(model.drivers)
    for driver_id in rng.sample(ids, min(len(ids), draw(st.integers(0, 30)))):  # moves
        lat, lng = offset(model.drivers[driver_id][:2], rng.gauss(0, 200), rng.gauss(0, 200))
        model.upsert(driver_id, lat, lng, rng.uniform(0.0, 60.0))
    for driver_id in rng.sample(ids, min(len(ids), draw(st.integers(0, 10)))):  # removals
        model.remove(driver_id)
    if draw(st.booleans()) and ids:  # exact duplicates exercise the tie-break
        lat, lng, at, _ = model.drivers.get(ids[-1], (*SF, 1.0, 0))
        for _ in range(3):
            model.upsert(uuid.uuid4(), lat, lng, at)
    queries = [offset(SF, rng.uniform(-half_m, half_m), rng.uniform(-half_m, half_m))]
    queries += [
        model.drivers[i][:2] for i in rng.sample(list(model.drivers), min(2, len(model.drivers)))
    ]
    n_excluded = draw(st.sampled_from([0, 3, 100]))  # up to 64 are pre-resolved, more are lazy
    excluded = frozenset(rng.sample(list(model.drivers), min(len(model.drivers), n_excluded)))
    kwargs: dict[str, object] = {
        "k": draw(st.integers(1, 20)),
        "radius_m": draw(st.sampled_from([50.0, 250.0, 1_000.0, 2_500.0, 20_000.0])),
        "now": draw(st.sampled_from([None, 45.0, 80.0])),
        "exclude": excluded if draw(st.booleans()) else Opaque(excluded),
    }
    return model, queries, kwargs


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_nearest_equals_brute_force_for_random_driver_sets(
    scenario: tuple[Model, list[tuple[float, float]], dict[str, object]],
) -> None:
    model, queries, kwargs = scenario
    for lat, lng in queries:
        model.check(lat, lng, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("resolution", [7, 8, 9, 10])
@pytest.mark.parametrize(("n", "half_m"), [(3_000, 3_000.0), (40, 8_000.0)])
def test_nearest_equals_brute_force_for_every_k_on_dense_and_sparse_sets(
    resolution: int, n: int, half_m: float
) -> None:
    model = Model(resolution)
    scatter(model, SF, n, half_m, seed=resolution)
    rng = random.Random(resolution)
    for k in range(1, 21):
        lat, lng = offset(SF, rng.uniform(-half_m, half_m), rng.uniform(-half_m, half_m))
        for radius_m in (100.0, 1_500.0, 10_000.0):
            model.check(lat, lng, k, radius_m, now=40.0)
            model.check(lat, lng, k, radius_m)


def test_nearest_orders_equal_distances_by_insertion() -> None:
    index = DriverIndex()
    for name in "cab":
        index.upsert(name, *SF, at=0.0)
    index.upsert("c", *SF, at=1.0)  # moving keeps the original insertion rank
    assert index.nearest(*SF, k=3, radius_m=10.0) == [("c", 0.0), ("a", 0.0), ("b", 0.0)]


@pytest.mark.parametrize("resolution", [8, 9, 10])
def test_query_near_a_pentagon_matches_brute_force(resolution: int) -> None:
    pentagon = sorted(h3.get_pentagons(9))[3]
    centre = h3.cell_to_latlng(pentagon)
    model = Model(resolution)
    scatter(model, centre, 1_500, 2_500.0, seed=7)
    rng = random.Random(7)
    for _ in range(30):
        lat, lng = offset(centre, rng.uniform(-800, 800), rng.uniform(-800, 800))
        model.check(lat, lng, rng.randint(1, 20), rng.choice([200.0, 1_000.0, 4_000.0]))
    model.check(centre[0], centre[1], k=20, radius_m=3_000.0)


@pytest.mark.parametrize("lng", [179.9995, -179.9995, 180.0, -180.0])
def test_query_near_the_antimeridian_matches_brute_force(lng: float) -> None:
    centre = (-16.8, 179.9999)  # Fiji, where the dateline crosses land
    model = Model(9)
    scatter(model, centre, 800, 3_000.0, seed=11)
    assert {round(p[1]) for p in model.drivers.values()} == {-180, 180}  # both sides populated
    for k in (1, 5, 20):
        for radius_m in (300.0, 2_000.0):
            model.check(centre[0], lng, k, radius_m)


@pytest.mark.parametrize("lat", [89.999, -89.999, 90.0])
def test_query_near_a_pole_matches_brute_force(lat: float) -> None:
    model = Model(9)
    scatter(model, (89.99 if lat > 0 else -89.99, 0.0), 300, 800.0, seed=3)
    for lng in (-170.0, 0.0, 45.0):
        model.check(lat, lng, k=15, radius_m=3_000.0)


@pytest.mark.parametrize("resolution", [0, 3, 7, 9, 10])
def test_cell_disc_contains_every_point_h3_assigns_to_the_cell(resolution: int) -> None:
    rng = random.Random(resolution)
    centres = [h3.cell_to_latlng(p) for p in h3.get_pentagons(resolution)]
    for _ in range(3_000):
        if rng.random() < 0.5:  # near pentagons (distorted cells) or anywhere on the sphere
            lat, lng = offset(rng.choice(centres), rng.gauss(0, 3_000), rng.gauss(0, 3_000))
        else:
            lat = math.degrees(math.asin(rng.uniform(-1.0, 1.0)))
            lng = rng.uniform(-180.0, 180.0)
        cell = h3.latlng_to_cell(lat, lng, resolution)
        la, ln, _, radius_m = cell_disc(h3.str_to_int(cell))
        assert haversine_m(math.degrees(la), math.degrees(ln), lat, lng) <= radius_m


def test_moving_a_driver_changes_its_cell_and_its_answers() -> None:
    model = Model(9)
    model.upsert("d", *SF, at=0.0)
    first = model.index.cell("d")
    far = offset(SF, 2_000.0, 0.0)
    model.upsert("d", *far, at=1.0)
    assert model.index.cell("d") != first
    assert model.index.cell("d") == h3.latlng_to_cell(*far, 9)
    assert model.index.position("d") == (*far, 1.0)
    assert model.index.nearest(*SF, k=1, radius_m=500.0) == []
    model.check(*far, k=1, radius_m=500.0)
    assert len(model.index) == 1


def test_removed_drivers_are_never_returned() -> None:
    model = Model(9)
    scatter(model, SF, 200, 500.0, seed=5)
    for driver_id in list(model.drivers)[::2]:
        model.remove(driver_id)
        assert driver_id not in model.index
        assert model.index.position(driver_id) is None
    assert not model.index.remove("never-there")
    returned = {d for d, _ in model.index.nearest(*SF, k=200, radius_m=5_000.0)}
    assert returned == set(model.drivers)


def test_stale_drivers_are_never_returned_when_now_is_given() -> None:
    index = DriverIndex(ttl_s=TTL)
    index.upsert("stale", *SF, at=0.0)
    index.upsert("fresh", *offset(SF, 100.0, 0.0), at=50.0)
    assert [d for d, _ in index.nearest(*SF, k=5, radius_m=1_000.0, now=60.0)] == ["fresh"]
    assert [d for d, _ in index.nearest(*SF, k=5, radius_m=1_000.0)] == ["stale", "fresh"]
    assert [d for d, _ in index.nearest(*SF, k=5, radius_m=1_000.0, now=30.0)] == ["stale", "fresh"]


def test_expire_removes_and_returns_only_stale_drivers() -> None:
    index = DriverIndex(ttl_s=TTL)
    for i in range(10):
        index.upsert(i, *offset(SF, 10.0 * i, 0.0), at=float(i))
    index.upsert(0, *SF, at=100.0)  # refreshed: must survive
    index.upsert(1, *SF, at=0.5)  # out-of-order ping moves its expiry earlier
    assert index.expire(now=30.0) == []
    assert set(index.expire(now=35.0)) == {1, 2, 3, 4}  # pings < 5.0
    assert set(index.expire(now=200.0)) == {0, 5, 6, 7, 8, 9}
    assert len(index) == 0
    assert index.nearest(*SF, k=10, radius_m=10_000.0) == []
    index.upsert(3, *SF, at=300.0)  # re-added after expiry
    assert index.expire(now=320.0) == []
    assert index.expire(now=331.0) == [3]


def test_exclude_accepts_any_container() -> None:
    class Odd:
        def __contains__(self, item: object) -> bool:
            return isinstance(item, int) and item % 2 == 1

    model = Model(9)
    for i in range(20):
        model.upsert(i, *offset(SF, 15.0 * i, 0.0), at=0.0)
    got = model.index.nearest(*SF, k=5, radius_m=1_000.0, exclude=Odd())
    assert [d for d, _ in got] == [0, 2, 4, 6, 8]
    assert [d for d, _ in model.index.nearest(*SF, k=3, radius_m=1_000.0, exclude={0, 99})] == [
        1,
        2,
        3,
    ]


def test_radius_is_capped_at_max_radius_m() -> None:
    model = Model(9, max_radius_m=1_000.0)
    model.upsert("near", *offset(SF, 900.0, 0.0), at=0.0)
    model.upsert("far", *offset(SF, 1_100.0, 0.0), at=0.0)
    assert [d for d, _ in model.index.nearest(*SF, k=5, radius_m=50_000.0)] == ["near"]
    model.check(*SF, k=5, radius_m=50_000.0)


@pytest.mark.parametrize(
    ("lat", "lng"),
    [
        (math.nan, 0.0),
        (0.0, math.nan),
        (math.inf, 0.0),
        (0.0, -math.inf),
        (90.5, 0.0),
        (-91.0, 0.0),
        (0.0, 180.01),
        (0.0, -200.0),
    ],
)
def test_invalid_coordinates_raise_value_error(lat: float, lng: float) -> None:
    index = DriverIndex()
    with pytest.raises(ValueError, match=r"latitude|longitude"):
        index.upsert("d", lat, lng, at=0.0)
    with pytest.raises(ValueError, match=r"latitude|longitude"):
        index.nearest(lat, lng, k=1, radius_m=100.0)
    assert len(index) == 0


@pytest.mark.parametrize(
    ("k", "radius_m"), [(0, 100.0), (-1, 100.0), (1, 0.0), (1, -5.0), (1, math.nan)]
)
def test_invalid_k_or_radius_raise_value_error(k: int, radius_m: float) -> None:
    with pytest.raises(ValueError, match=r"k must|radius_m must"):
        DriverIndex().nearest(*SF, k=k, radius_m=radius_m)


def test_non_finite_ping_time_raises_value_error() -> None:
    with pytest.raises(ValueError, match="ping time"):
        DriverIndex().upsert("d", *SF, at=math.nan)


def test_an_index_restored_from_a_pickle_answers_and_updates_like_the_original() -> None:
    model = Model()
    scatter(model, SF, 300, 1_500.0, seed=3)
    copy = Model()
    copy.index = pickle.loads(pickle.dumps(model.index))
    copy.drivers, copy.order = dict(model.drivers), model.order
    rng = random.Random(4)
    for driver_id in rng.sample(list(model.drivers), 40):  # moves and removals after restore
        lat, lng = offset(model.drivers[driver_id][:2], rng.gauss(0, 300), rng.gauss(0, 300))
        for m in (model, copy):
            m.upsert(driver_id, lat, lng, 50.0)
    for driver_id in rng.sample(list(model.drivers), 20):
        model.remove(driver_id)
        copy.remove(driver_id)
    for lat, lng in (SF, offset(SF, 700.0, -400.0)):
        assert copy.index.nearest(lat, lng, 15, 2_000.0) == model.index.nearest(
            lat, lng, 15, 2_000.0
        )
        copy.check(lat, lng, 15, 2_000.0)


def test_drivers_at_the_same_distance_in_metres_rank_by_insertion_even_if_their_terms_differ() -> (
    None
):
    query = (37.77, -122.42)
    first = (37.76468661922094, -122.4100871032898)
    second = (37.76988105402726, -122.40802370547111)
    q_la, f_la, s_la = (math.radians(p[0]) for p in (query, first, second))

    def term(la: float, lng: float) -> float:
        return hav_term(
            q_la, math.radians(query[1]), math.cos(q_la), la, math.radians(lng), math.cos(la)
        )

    assert haversine_m(*query, *first) == haversine_m(*query, *second)
    assert term(f_la, first[1]) > term(s_la, second[1])  # `second` is a hair closer before rounding
    index = DriverIndex()
    index.upsert("first", *first, at=0.0)
    index.upsert("second", *second, at=0.0)
    assert [d for d, _ in index.nearest(*query, 1, 5_000.0)] == ["first"]
    assert [d for d, _ in index.nearest(*query, 2, 5_000.0)] == ["first", "second"]


@pytest.mark.parametrize("now", [math.nan, math.inf])
def test_a_non_finite_now_is_refused(now: float) -> None:
    index = DriverIndex()
    index.upsert("a", *SF, at=0.0)
    with pytest.raises(ValueError, match="now must be a finite time"):
        index.nearest(*SF, 1, 100.0, now=now)
