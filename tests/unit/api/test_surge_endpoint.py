"""``GET /surge?lat=&lng=``: any signed-in caller gets the multiplier of the place's surge
cell (1.00 where no change was recorded), out-of-range coordinates are a 422 with the
reason; a quote is priced at its pickup cell's surge; the heatmap carries the surge layer.
The view is fed a recorded change as the log would give it (the shard's writer is
``tests/unit/shard/test_surge_per_cell.py``'s)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import h3
import pytest
from api_world import DROPOFF, PICKUP, World

from dispatch.domain.fares import price
from dispatch.domain.surge import SURGE_RESOLUTION, Surge
from dispatch.log import LogEvent

CELL = h3.latlng_to_cell(PICKUP["lat"], PICKUP["lng"], SURGE_RESOLUTION)
FAR = {"lat": 37.70, "lng": -122.48}  # another cell, no surge recorded
_SHARD = 999  # a shard of its own, so the views' positions of the world's shards stay put
_position = iter(range(1, 1_000))


def _recorded(world: World, cell: str, multiplier: str, at: float = 1.0) -> None:
    """The views fold a ``Surge.Changed`` as they would read it from the log."""
    data = {"cell": cell, "multiplier": multiplier, "previous": "1.00", "target": "3.00",
            "demand": 9, "supply": 0, "window_s": 300.0}  # fmt: skip
    views = world.client.app.state.ctx.runtime.views  # type: ignore[attr-defined]
    event = LogEvent(_SHARD, next(_position), "surge", 1, Surge.Changed.TOPIC, at, data)
    with views.lock:
        views.apply(event)


def _surge(world: World, who: str, **where: Any) -> Any:
    return world.client.get("/surge", params=where, headers=world.tokens[who])


@pytest.mark.parametrize("who", ["rider_r", "driver_a", "operator", "dispatcher"])
def test_any_signed_in_caller_gets_1_00_where_no_change_was_recorded(
    world: World, who: str
) -> None:
    r = _surge(world, who, **FAR)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["multiplier"] == "1.00" and body["resolution"] == SURGE_RESOLUTION
    assert body["cell"] == h3.latlng_to_cell(FAR["lat"], FAR["lng"], SURGE_RESOLUTION)


def test_the_answer_is_the_cells_recorded_multiplier(world: World) -> None:
    _recorded(world, CELL, "1.85", at=10.0)
    assert _surge(world, "rider_r", **PICKUP).json()["multiplier"] == "1.85"
    assert _surge(world, "rider_r", **FAR).json()["multiplier"] == "1.00"
    _recorded(world, CELL, "1.00", at=20.0)  # back to 1.00: out of the view
    assert _surge(world, "rider_r", **PICKUP).json()["multiplier"] == "1.00"


@pytest.mark.parametrize(
    ("where", "field"),
    [({"lat": 91, "lng": 0}, "lat"), ({"lat": 0, "lng": -181}, "lng"),
     ({"lat": "nan", "lng": 0}, "lat"), ({"lng": 0}, "lat")],
)  # fmt: skip
def test_coordinates_out_of_range_are_a_422_with_the_reason(
    world: World, where: dict[str, Any], field: str
) -> None:
    r = _surge(world, "rider_r", **where)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_request"
    assert field in r.json()["reason"]


def test_without_a_token_the_answer_is_401(world: World) -> None:
    assert world.client.get("/surge", params=PICKUP).status_code == 401


def test_a_quote_is_priced_at_its_pickup_cells_surge(world: World) -> None:
    _recorded(world, CELL, "2.00", at=30.0)
    trip = {"pickup": PICKUP, "dropoff": DROPOFF}
    r = world.client.post("/fares/estimate", headers=world.tokens["rider_r"], json=trip)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["surge"] == "2.00"
    rule = body["rule"]
    from dispatch.domain.fares import FareRule

    plain = FareRule("USD", *(Decimal(rule[k]) for k in ("base", "per_km", "per_min", "minimum")))
    assert body["total"] == str(price(plain, body["distance_m"], body["duration_s"], Decimal(2)))
    reverse = {"pickup": DROPOFF, "dropoff": PICKUP}  # the pickup's cell prices it, not the end
    r = world.client.post("/fares/estimate", headers=world.tokens["rider_r"], json=reverse)
    assert r.json()["surge"] == "1.00"
    _recorded(world, CELL, "1.00", at=40.0)


def test_the_heatmap_has_a_surge_layer(world: World) -> None:
    _recorded(world, CELL, "1.40", at=50.0)
    r = world.client.get("/heatmap", params={"resolution": 6}, headers=world.tokens["operator"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["surge_resolution"] == SURGE_RESOLUTION
    assert {"cell": CELL, "multiplier": "1.40"} in body["surge"]
    _recorded(world, CELL, "1.00", at=60.0)
    r = world.client.get("/heatmap", params={"resolution": 6}, headers=world.tokens["operator"])
    assert r.json()["surge"] == []


def test_the_openapi_document_shows_the_surge_query(world: World) -> None:
    document = world.client.get("/openapi.json").json()
    operation = document["paths"]["/surge"]["get"]
    assert {"200", "401", "422"} <= set(operation["responses"])
    answer = document["components"]["schemas"]["Surge"]
    assert answer["properties"]["multiplier"]["examples"] == ["1.35"]
    assert answer["examples"][0]["multiplier"] == "1.35"
    assert operation["parameters"][0]["name"] == "lat"


def test_the_answer_follows_a_recomputed_cadence_as_the_engine_writes_it(world: World) -> None:
    """(Last in the module, after the changes of the tests above: its times are later.)
    The shard writes one ``Surge.Recomputed`` a cadence (each change a row): the view
    folds every row, and a row back at 1.00 takes the cell out."""
    other = h3.latlng_to_cell(FAR["lat"], FAR["lng"], SURGE_RESOLUTION)
    views = world.client.app.state.ctx.runtime.views  # type: ignore[attr-defined]

    def cadence(at: float, rows: list[tuple[str, str]]) -> None:
        data = {"cells": [c for c, _ in rows], "multipliers": [m for _, m in rows],
                "previous": ["1.00"] * len(rows), "targets": ["3.00"] * len(rows),
                "demand": [9] * len(rows), "supply": [0] * len(rows), "window_s": 300.0,
                "curve": {"cap": "3.00"}}  # fmt: skip
        event = LogEvent(_SHARD, next(_position), "surge", 1, Surge.Recomputed.TOPIC, at, data)
        with views.lock:
            views.apply(event)

    cadence(130.0, [(CELL, "2.10"), (other, "1.40")])
    assert _surge(world, "rider_r", **PICKUP).json()["multiplier"] == "2.10"
    assert _surge(world, "rider_r", **FAR).json()["multiplier"] == "1.40"
    cadence(160.0, [(other, "1.00")])
    assert _surge(world, "rider_r", **FAR).json()["multiplier"] == "1.00"
    assert _surge(world, "rider_r", **PICKUP).json()["multiplier"] == "2.10"  # unchanged
    cadence(190.0, [(CELL, "1.00")])
    assert _surge(world, "rider_r", **PICKUP).json()["multiplier"] == "1.00"
