"""Every endpoint that needs a token: none -> 401 (with a Bearer challenge), someone
else's -> 403, the right one -> 2xx, or a 409 when the domain refuses the transition."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_world import PICKUP, World

ACROSS_THE_BAY = {"lat": 37.8044, "lng": -122.2712}  # about 13 km from PICKUP


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # with {driver_a}, {ride}, ... placeholders
    right: str
    wrong: tuple[str, ...]
    body: Any = None
    expect: int | None = None  # the right caller's status, when only one will do

    def url(self, world: World) -> str:
        return self.path.format(**world.ids)


PING = {"lat": PICKUP["lat"], "lng": PICKUP["lng"]}
# a scheduled ride's time, well within the lead time and horizon for the whole module
BOOKED_FOR = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
MATRIX = [
    Row("POST", "/drivers/{driver_a}/online", "driver_a", ("driver_b", "rider_r", "operator")),
    Row("POST", "/drivers/{driver_a}/offline", "driver_a", ("driver_b", "rider_r"), {}),
    Row("POST", "/drivers/{driver_a}/location", "driver_a", ("driver_b", "rider_r"), PING),
    Row("POST", "/drivers/{driver_a}/locations", "driver_a", ("driver_b",), {"pings": [PING]}),
    Row(
        "POST", "/rides", "rider_r", ("driver_a", "operator"), {"pickup": PICKUP, "dropoff": PICKUP}
    ),
    Row(
        "POST",
        "/rides",
        "rider_s",
        ("operator",),  # (drivers: the row above; driver_a is near its rate limit here)
        {"pickup": PICKUP, "dropoff": PICKUP, "scheduled_for": BOOKED_FOR},
        expect=201,
    ),
    # (a driver's refusal: test_scheduled_ride_endpoints.py, as drivers near their rate here)
    Row("GET", "/riders/{rider_s}/scheduled-rides", "rider_s", ("rider_r",), expect=200),
    Row("GET", "/riders/{rider_s}/scheduled-rides", "operator", ("rider_r",), expect=200),
    Row(
        "POST",
        "/fares/estimate",
        "rider_r",
        ("driver_b", "operator", "admin"),
        {"pickup": PICKUP, "dropoff": PICKUP, "product": "xl"},
        expect=200,
    ),
    Row("GET", "/rides/{ride}", "rider_r", ("rider_s", "driver_b")),
    Row("GET", "/rides/{ride}", "driver_a", ("rider_s",)),
    Row("GET", "/rides/{ride}", "operator", ("driver_b",)),
    Row("GET", "/drivers/nearby?lat=37.77&lng=-122.42", "rider_r", ("driver_a",)),
    Row("GET", "/drivers/nearby?lat=37.77&lng=-122.42", "operator", ("driver_b",)),
    Row("GET", "/drivers/{driver_a}", "driver_a", ("driver_b", "rider_s")),
    Row("GET", "/drivers/{driver_a}", "operator", ("rider_r",)),
    Row("GET", "/heatmap?resolution=6", "operator", ("rider_r", "driver_a")),
    # any signed-in caller, none refused (a rider, a driver and each operator role get it in
    # test_surge_endpoint.py: here, one row, as each caller has a request rate)
    Row("GET", "/surge?lat=37.77&lng=-122.42", "admin", (), expect=200),
    # drivers and operators, not riders (test_place_queue_endpoint.py: what each sees, a
    # driver included: here a driver's calls would pass its request rate)
    Row("GET", "/places/sfo/queue", "operator", ("rider_r", "rider_s"), expect=200),
    Row("GET", "/rides/{ride}/events?max_s=0.2", "rider_r", ("rider_s", "driver_b")),
    Row("GET", "/drivers/{driver_a}/offers?max_s=0.2", "driver_a", ("driver_b", "rider_r")),
    # The ride is offered to driver_a: it is theirs to answer, nobody else's. In this order
    # the right callers take it through the trip, and what no longer fits is a 409.
    Row("POST", "/rides/{ride}/accept", "driver_a", ("driver_b", "rider_r")),
    Row("POST", "/rides/{ride}/arrived", "driver_a", ("driver_b", "rider_r")),
    Row("POST", "/rides/{ride}/start", "driver_a", ("driver_b",)),
    Row("POST", "/rides/{ride}/decline", "driver_a", ("driver_b",)),
    Row("POST", "/rides/{ride}/driver-cancel", "driver_a", ("driver_b",), {"reason": "flat tyre"}),
    Row("POST", "/rides/{ride}/cancel", "rider_r", ("rider_s", "driver_a")),
    Row("POST", "/rides/{ride}/complete", "driver_a", ("driver_b",)),
    # an operator action: a dispatcher's (or admin's), not a viewer's (`operator`), rider's
    # or driver's, on a ride still open (rider_o's, see `open_ride`)
    Row(
        "POST",
        "/rides/{open_ride}/operator-cancel",
        "dispatcher",
        ("operator", "rider_r", "driver_a"),
        {"reason": "rider called in"},
        expect=200,
    ),
    # revoking another's tokens: an admin's (here an operator's who never had a token)
    Row(
        "POST",
        "/auth/revoke",
        "admin",
        ("operator", "dispatcher", "rider_s"),  # (driver_a is near its rate limit here)
        {"operator": "nobody", "reason": "left the company"},
        expect=200,
    ),
]


@pytest.fixture(scope="module", autouse=True)
def open_ride(world: World) -> None:
    """A ride of a rider of its own (rider_o), waiting: one an operator may still cancel."""
    r = world.client.post("/riders", json={"name": "rider_o"})
    assert r.status_code == 201, r.text
    rider = {"Authorization": f"Bearer {r.json()['token']['access_token']}"}
    ride = world.client.post("/rides", headers=rider, json={"pickup": PICKUP, "dropoff": PICKUP})
    assert ride.status_code == 201, ride.text
    world.ids["open_ride"] = ride.json()["ride_id"]


def _call(world: World, row: Row, headers: dict[str, str]) -> Any:
    return world.client.request(row.method, row.url(world), headers=headers, json=row.body)


def _label(row: Row) -> str:
    return f"{row.method} {row.path} as {row.right}"


@pytest.mark.parametrize("row", MATRIX, ids=_label)
def test_without_a_token_the_answer_is_401_with_a_bearer_challenge(world: World, row: Row) -> None:
    r = _call(world, row, {})
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json()["error"] == "unauthorized"


@pytest.mark.parametrize("row", MATRIX, ids=_label)
def test_someone_elses_token_gets_403_with_a_reason(world: World, row: Row) -> None:
    for wrong in row.wrong:
        r = _call(world, row, world.tokens[wrong])
        assert r.status_code == 403, (wrong, r.text)
        assert r.json()["error"] == "forbidden"
        assert r.json()["reason"]


@pytest.mark.parametrize("row", MATRIX, ids=_label)
def test_the_right_token_is_let_through(world: World, row: Row) -> None:
    r = _call(world, row, world.tokens[row.right])
    assert r.status_code < 300 or r.status_code == 409, r.text
    if row.expect is not None:
        assert r.status_code == row.expect, r.text
    if r.status_code == 409:
        assert r.json()["error"] == "illegal_transition"  # the domain said no, not the API


def test_a_rider_sees_the_driver_serving_their_ride_only_while_it_is_active(world: World) -> None:
    c, ids, tokens = world.client, world.ids, world.tokens
    driver_b, rider = ids["driver_b"], tokens["rider_s"]
    look = f"/drivers/{driver_b}"
    assert c.get(look, headers=rider).status_code == 403
    assert c.post(f"/drivers/{driver_b}/online", headers=tokens["driver_b"]).is_success
    c.post(f"/drivers/{driver_b}/location", headers=tokens["driver_b"], json=ACROSS_THE_BAY)
    body = {"pickup": ACROSS_THE_BAY, "dropoff": PICKUP}
    ride = c.post("/rides", headers=rider, json=body)
    assert ride.status_code == 201, ride.text
    ride_id, written = ride.json()["ride_id"], {"after": ride.json()["position"]}
    deadline = time.monotonic() + 5
    while (
        c.get(f"/rides/{ride_id}", headers=rider, params=written).json()["offered_to"] != driver_b
    ):
        assert time.monotonic() < deadline, "the ride was never offered to driver_b"
        time.sleep(0.02)
    assert c.get(look, headers=rider).status_code == 403, "an offer is not a driver serving"
    accepted = c.post(f"/rides/{ride_id}/accept", headers=tokens["driver_b"])
    assert accepted.status_code == 200, accepted.text
    seen = c.get(look, headers=rider, params={"after": accepted.json()["position"]})
    assert seen.status_code == 200
    assert seen.json()["ride_id"] == ride_id
    cancelled = c.post(f"/rides/{ride_id}/cancel", headers=rider)
    assert cancelled.status_code == 200
    after = {"after": cancelled.json()["position"]}
    assert c.get(look, headers=rider, params=after).status_code == 403
