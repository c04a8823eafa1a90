"""Geofences (``dispatch.geofences``): entering agrees with an independent ray-casting
oracle (the H3 cell table never changes an answer), a driver inside leaves only past the
exit margin, and a driver jittering on the boundary crosses at most once."""

from __future__ import annotations

import math
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from test_service_areas import distance_to_ring, inside_ring, star

from dispatch.geofences import Geofences, places_of
from dispatch.settings import MarketConfig, PlaceConfig

CENTRE = (37.77, -122.42)
M_PER_DEG = 111_320.0


def fences(areas: list[dict[str, Any]], margin_m: float = 50.0, queue: bool = True) -> Geofences:
    places = [PlaceConfig(id=f"p{n}", area=a, queue=queue, exit_margin_m=margin_m)
              for n, a in enumerate(areas)]  # fmt: skip
    market = MarketConfig(name="sf", shard=0, lat=CENTRE[0], lng=CENTRE[1], radius_km=40,
                          places=places)  # fmt: skip
    return Geofences(places_of([market]))


def polygon(ring: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [ring]}


# small star-shaped places (some hundreds of metres to 2 km across), as airports and stations
radii = st.lists(st.floats(0.002, 0.012), min_size=5, max_size=10)


@settings(max_examples=60, deadline=None)
@given(shell=radii, turn=st.floats(0, 6.28), seed=st.integers(0, 2**32 - 1))
def test_entering_agrees_with_a_ray_casting_oracle(shell: list[float], turn: float,
                                                   seed: int) -> None:  # fmt: skip
    ring = star(CENTRE, shell, turn)
    g = fences([polygon(ring)], margin_m=0.0)
    rng = random.Random(seed)
    for _ in range(300):
        lat = CENTRE[0] + rng.uniform(-0.015, 0.015)
        lng = CENTRE[1] + rng.uniform(-0.015, 0.015)
        if distance_to_ring(lng, lat, ring) < 1e-9:
            continue  # on the boundary: inside by rule, the oracle cannot say
        expected = inside_ring(lng, lat, ring)
        assert (g.locate(lat, lng, frozenset()) == {"p0"}) == expected, (lat, lng)
        assert (g.queue_place(lat, lng) == "p0") == expected


@settings(max_examples=60, deadline=None)
@given(shell=radii, margin=st.floats(20, 300), seed=st.integers(0, 2**32 - 1))
def test_a_driver_inside_leaves_only_past_the_exit_margin(shell: list[float], margin: float,
                                                           seed: int) -> None:  # fmt: skip
    ring = star(CENTRE, shell)
    g = fences([polygon(ring)], margin_m=margin)
    rng = random.Random(seed)
    scale = M_PER_DEG * math.cos(math.radians(CENTRE[0]))  # the smaller: longitude's metres
    for _ in range(300):
        lat = CENTRE[0] + rng.uniform(-0.02, 0.02)
        lng = CENTRE[1] + rng.uniform(-0.02, 0.02)
        kept = g.locate(lat, lng, frozenset({"p0"})) == {"p0"}
        if inside_ring(lng, lat, ring):
            assert kept
            continue
        # distance in degrees, bounded in metres by the two scales of a degree
        d = distance_to_ring(lng, lat, ring)
        if d * M_PER_DEG < margin * 0.98:
            assert kept, f"left {d * scale:.0f}-{d * M_PER_DEG:.0f} m out, margin {margin:.0f}"
        elif d * scale > margin * 1.02:
            assert not kept, f"kept {d * scale:.0f} m out, margin {margin:.0f}"


def test_a_driver_waiting_on_the_boundary_does_not_flap() -> None:
    ring = star(CENTRE, [0.01] * 8)
    g = fences([polygon(ring)], margin_m=50.0)
    edge_lng = CENTRE[1] + 0.01  # the ring's eastern vertex, on the boundary
    rng = random.Random(7)
    inside: frozenset[str] = frozenset()
    changes = 0
    for _ in range(2_000):  # pings scattered 20 m either side of the boundary
        lng = edge_lng + rng.uniform(-20, 20) / (M_PER_DEG * math.cos(math.radians(CENTRE[0])))
        now = g.locate(CENTRE[0], lng, inside)
        changes += now != inside
        inside = now
    assert changes == 1 and inside == {"p0"}


def test_a_pickup_is_given_to_the_first_place_with_a_queue_that_holds_it() -> None:
    big, small = star(CENTRE, [0.01] * 6), star(CENTRE, [0.003] * 6)
    places = [PlaceConfig(id="terminal", area=polygon(small), queue=False),
              PlaceConfig(id="airport", area=polygon(big), queue=True)]  # fmt: skip
    market = MarketConfig(name="sf", shard=0, lat=CENTRE[0], lng=CENTRE[1], radius_km=40,
                          places=places)  # fmt: skip
    g = Geofences(places_of([market]))
    assert g.locate(*CENTRE, frozenset()) == {"terminal", "airport"}
    assert g.queue_place(*CENTRE) == "airport"
    assert g.queue_place(CENTRE[0] + 0.5, CENTRE[1]) is None
